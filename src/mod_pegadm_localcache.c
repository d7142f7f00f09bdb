/* How a lookup reads: the Apache side of the per-process read cache
 * (pegadm_localcache.h), the generation counters in memory shared by the
 * node's processes (made once per httpd, retained across restarts by
 * mod_pegadm_cache.c) and each child's own cache; whether a read of a
 * shared cache takes the node's pegadm-cache mutex; and, when it does not,
 * the read gate: how many lookups one child process sends to a memcache or
 * redis cache at once (PegaDMCacheReadsPerChild, pegadm_gate.h), with its
 * start-up messages. */
#include "mod_pegadm.h"

#include <string.h>

#include <apr_shm.h>
#include <apr_strings.h>
#include <http_core.h>
#include <ap_mpm.h>

#include "pegadm_confcheck.h"

APLOG_USE_MODULE(pegadm);

#define GENERATIONS_KEY "pegadm-localcache-generations"

/* Unless PegaDMCacheReadLock On (bounded by PegaDMCacheReadsPerChild);
 * shmcb is not safe for concurrent use: its reads always take the lock. */
static int not_concurrent(const pegadm_server_conf_t *sc)
{
    return sc->cache_provider && (sc->cache_provider->flags & AP_SOCACHE_FLAG_NOTMPSAFE);
}

/* Whether a cache is configured: the module's own client, or a provider. */
static int has_cache(const pegadm_server_conf_t *sc)
{
    return sc->cache_provider || sc->shared.url;
}

int pegadm_localcache_read_unlocked(const pegadm_server_conf_t *sc)
{
    return sc->local_conf->read_lock != 1 && !not_concurrent(sc);
}

/* The counters live as long as httpd itself: children of the generation
 * before a graceful restart, still finishing requests, bump the same ones. */
static void *shared_generations(server_rec *s)
{
    void *found = pegadm_retained(GENERATIONS_KEY);
    apr_shm_t *shm;
    apr_status_t rv;

    if (found) {
        return found;
    }
    rv = apr_shm_create(&shm, PEGADM_LOCALCACHE_SHARED_SIZE, NULL,
                        pegadm_retain_anew(s, GENERATIONS_KEY));
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s,
                     "PEGADM810: cannot share the local cache's generations between child "
                     "processes; every lookup reads the session cache");
        return NULL;
    }
    found = apr_shm_baseaddr_get(shm);
    rv = pegadm_localcache_init_shared(found);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s,
                     "PEGADM813: no random key for the local cache; every lookup reads the "
                     "session cache");
        return NULL;
    }
    pegadm_retain(GENERATIONS_KEY, found);
    return found;
}

/* shmcb is the node's own: every change to it bumps a counter here. */
static int cache_is_shared(const pegadm_server_conf_t *sc)
{
    return sc->cache_provider_name && strcmp(sc->cache_provider_name, "shmcb") != 0;
}

/* PegaDMCacheReadLock Off with shmcb does nothing: it says so once per
 * start (reads without the mutex say so with the read gate, below). */
static void log_read_lock(const pegadm_server_conf_t *sc, server_rec *s)
{
    if (sc->local_conf->read_lock == 0 && not_concurrent(sc)) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "PEGADM840: PegaDMCacheReadLock Off is ignored: the %s cache is not "
                     "safe for concurrent use, its lookups take the node's mutex",
                     sc->cache_provider_name);
    }
}

void pegadm_localcache_post_config(apr_pool_t *ptemp, server_rec *s)
{
    pegadm_server_conf_t *sc = ap_get_module_config(s->module_config, &pegadm_module);
    pegadm_local_conf_t *lc = sc->local_conf;

    log_read_lock(sc, s);
    lc->customers = pegadm_conf_local_customers(lc);
    lc->max_age = pegadm_conf_local_max_age(lc);
    if (lc->customers == 0 || (cache_is_shared(sc) && lc->max_age == 0)) {
        lc->customers = 0;
        return;
    }
    lc->generations = shared_generations(s);
    if (lc->generations) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                     "PEGADM811: each child process keeps up to %d customers' session IDs "
                     "(%" APR_SIZE_T_FMT " bytes each) in front of the %s cache%s",
                     lc->customers, pegadm_localcache_bytes_per_customer(),
                     sc->cache_provider_name,
                     cache_is_shared(sc)
                         ? apr_psprintf(ptemp, ", reused for at most %" APR_TIME_T_FMT " ms",
                                        apr_time_as_msec(lc->max_age))
                         : "");
    }
}

void pegadm_localcache_child_init(apr_pool_t *p, server_rec *s)
{
    pegadm_server_conf_t *sc = ap_get_module_config(s->module_config, &pegadm_module);
    pegadm_local_conf_t *lc = sc->local_conf;
    apr_status_t rv;

    if (!lc || lc->customers <= 0 || !lc->generations) {
        return;
    }
    rv = pegadm_localcache_create(p, (apr_uint32_t)lc->customers, lc->generations,
                                  cache_is_shared(sc) ? lc->max_age : 0, &sc->localcache);
    if (rv != APR_SUCCESS) {
        sc->localcache = NULL;
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s,
                     "PEGADM812: cannot make this child's local cache; every lookup reads "
                     "the session cache");
    }
}

/* Once per start, restart and configuration test: what the read gate
 * bounds, or why PegaDMCacheReadsPerChild is ignored. */
void pegadm_read_gate_log(server_rec *s, apr_pool_t *p)
{
    const pegadm_server_conf_t *sc = ap_get_module_config(s->module_config, &pegadm_module);
    int n = pegadm_conf_reads_per_child(sc), threads = 1;

    if (!has_cache(sc)) {
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
                     not_concurrent(sc)
                         ? apr_psprintf(p,
                                        "the %s cache is not safe for concurrent use, its "
                                        "lookups take the node's mutex",
                                        sc->cache_provider_name)
                         : "PegaDMCacheReadLock On, lookups take the node's mutex");
    }
}

/* A child with no more threads than places needs no gate. */
void pegadm_read_gate_child_init(apr_pool_t *p, server_rec *s)
{
    pegadm_server_conf_t *sc = ap_get_module_config(s->module_config, &pegadm_module);
    int n = pegadm_conf_reads_per_child(sc), threads = 1;
    apr_status_t rv;

    sc->read_gate = NULL;
    ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads);
    if (!has_cache(sc) || !pegadm_localcache_read_unlocked(sc) || n == 0 || threads <= n) {
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
