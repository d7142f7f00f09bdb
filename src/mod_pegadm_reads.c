/* How many lookups one child process sends to a memcache or redis cache at
 * once when it reads without the node's mutex (PegaDMCacheReadsPerChild):
 * the directive, its start-up messages, and each child's gate
 * (pegadm_gate.h). */
#include "mod_pegadm.h"
#include "pegadm_confcheck.h"

#include <ap_mpm.h>
#include <apr_strings.h>
#include <http_core.h>

APLOG_USE_MODULE(pegadm);

#define DEFAULT_READS_PER_CHILD 2
#define MAX_READS_PER_CHILD     1000

const char *pegadm_reads_set_per_child(cmd_parms *cmd, void *dv, const char *arg)
{
    pegadm_server_conf_t *sc = ap_get_module_config(cmd->server->module_config, &pegadm_module);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    long v;

    if (!err) {
        err = pegadm_check_int(cmd->pool, cmd->cmd->name, arg, 0, MAX_READS_PER_CHILD, &v);
    }
    if (err) {
        return err;
    }
    sc->reads_per_child = (int)v;
    sc->reads_directive = cmd->directive;
    return NULL;
}

/* 0: no bound */
static int reads_per_child(const pegadm_server_conf_t *sc)
{
    return sc->reads_directive ? sc->reads_per_child : DEFAULT_READS_PER_CHILD;
}

/* Once per start, restart and configuration test. */
static void log_reads(const pegadm_server_conf_t *sc, server_rec *s, apr_pool_t *p)
{
    int n = reads_per_child(sc), threads = 1;

    if (!sc->cache_provider) {
        return;
    }
    ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads);
    threads = threads > 1 ? threads : 1;
    if (pegadm_localcache_read_unlocked(sc)) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                     "PEGADM841: lookups read the %s cache without the node's mutex, %s, so "
                     "each child process may hold up to %d connections to it",
                     sc->cache_provider_name,
                     n ? apr_psprintf(p, "at most %d at once per child process", n)
                       : "with no bound per child process (one per thread)",
                     n && n < threads ? n : threads);
    } else if (sc->reads_directive) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                     "PEGADM861: PegaDMCacheReadsPerChild (%s:%d) is ignored: %s",
                     sc->reads_directive->filename, sc->reads_directive->line_num,
                     sc->cache_provider->flags & AP_SOCACHE_FLAG_NOTMPSAFE
                         ? apr_psprintf(p,
                                        "the %s cache is not safe for concurrent use, its "
                                        "lookups take the node's mutex",
                                        sc->cache_provider_name)
                         : "PegaDMCacheReadLock On, lookups take the node's mutex");
    }
}

static int reads_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                             server_rec *s)
{
    if (ap_state_query(AP_SQ_MAIN_STATE) != AP_SQ_MS_CREATE_PRE_CONFIG) {
        log_reads(ap_get_module_config(s->module_config, &pegadm_module), s, ptemp);
    }
    return OK;
}

static void reads_test_config(apr_pool_t *pconf, server_rec *s)
{
    log_reads(ap_get_module_config(s->module_config, &pegadm_module), s, pconf);
}

/* A child with no more threads than places needs no gate. */
static void reads_child_init(apr_pool_t *p, server_rec *s)
{
    pegadm_server_conf_t *sc = ap_get_module_config(s->module_config, &pegadm_module);
    int n = reads_per_child(sc), threads = 1;
    apr_status_t rv;

    sc->read_gate = NULL;
    ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads);
    if (!sc->cache_provider || !pegadm_localcache_read_unlocked(sc) || n == 0 || threads <= n) {
        return;
    }
    rv = pegadm_gate_create(p, (unsigned int)n, (unsigned int)threads, &sc->read_gate);
    if (rv != APR_SUCCESS) {
        sc->read_gate = NULL;
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s,
                     "PEGADM862: cannot bound this child's concurrent reads of the %s cache; "
                     "they go unbounded",
                     sc->cache_provider_name);
    }
}

void pegadm_reads_register_hooks(apr_pool_t *p)
{
    /* both after the session cache's check_config, which resolves the provider */
    ap_hook_post_config(reads_post_config, NULL, NULL, APR_HOOK_LAST);
    ap_hook_test_config(reads_test_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(reads_child_init, NULL, NULL, APR_HOOK_MIDDLE);
}
