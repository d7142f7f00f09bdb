/* Sizing the shmcb session cache. shmcb pushes its oldest entries out when
 * full, expired or not, and a customer whose session was pushed out gets a
 * new session ID on the next request. So the default cache is sized for
 * PegaDMCacheCustomers customers (100,000 unless set), and a size given
 * with "PegaDMCache shmcb:path(bytes)" that is too small draws a warning
 * saying how big it must be. memcached and Redis are sized by their own
 * configuration. */
#include "mod_pegadm.h"

#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <http_core.h>

#include "pegadm_shmcb.h"

APLOG_USE_MODULE(pegadm);

#define DEFAULT_CUSTOMERS 100000
#define DEFAULT_FILE      "pegadm-sessions.cache"

static pegadm_server_conf_t *server_conf(server_rec *s)
{
    return ap_get_module_config(s->module_config, &pegadm_module);
}

static apr_size_t customers_wanted(const pegadm_server_conf_t *sc)
{
    return sc->cache_customers > 0 ? (apr_size_t)sc->cache_customers : DEFAULT_CUSTOMERS;
}

const char *pegadm_cache_default_args(apr_pool_t *p, server_rec *s)
{
    const char *file = ap_runtime_dir_relative(p, DEFAULT_FILE);

    /* PegaDMCacheCustomers is bounded so that this size is one shmcb takes. */
    return apr_psprintf(p, "%s(%" APR_SIZE_T_FMT ")", file ? file : DEFAULT_FILE,
                        pegadm_shmcb_size_for(customers_wanted(server_conf(s))));
}

/* The size in "path(bytes)" as shmcb reads it, which has accepted it. */
static apr_size_t configured_size(const char *args)
{
    const char *open = strrchr(args, '(');
    return open ? (apr_size_t)strtol(open + 1, NULL, 10) : PEGADM_SHMCB_DEFAULT_SIZE;
}

static void warn_too_small(pegadm_server_conf_t *sc, apr_pool_t *ptemp, apr_size_t size,
                           apr_size_t holds)
{
    apr_size_t wanted = customers_wanted(sc), need = pegadm_shmcb_size_for(wanted);
    const char *args = apr_pstrndup(ptemp, sc->cache_args, strcspn(sc->cache_args, "("));

    ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_WARNING, 0, NULL,
                 "PEGADM401: PegaDMCache (%s:%d): %" APR_SIZE_T_FMT
                 " bytes of shmcb keep the sessions of about %" APR_SIZE_T_FMT
                 " customers, fewer than PegaDMCacheCustomers (%" APR_SIZE_T_FMT
                 "); beyond that shmcb pushes sessions out before PegaDMCacheTTL and "
                 "their customers get new session IDs. Give at least %" APR_SIZE_T_FMT
                 " bytes: PegaDMCache \"shmcb:%s(%" APR_SIZE_T_FMT ")\"",
                 sc->cache_directive->filename, sc->cache_directive->line_num, size, holds,
                 wanted, need, args, need);
}

apr_status_t pegadm_cache_check_size(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s)
{
    pegadm_server_conf_t *sc = server_conf(s);
    apr_size_t size, holds;
    const char *err;

    if (strcmp(sc->cache_provider_name, "shmcb")) {
        return APR_SUCCESS;
    }
    if (!sc->cache_args || !*sc->cache_args) {
        sc->cache_args = pegadm_cache_default_args(pconf, s);
        err = sc->cache_provider->create(&sc->cache, sc->cache_args, ptemp, pconf);
        if (err) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_CRIT, 0, NULL,
                         "PEGADM400: creating the shmcb session cache failed: %s", err);
            return APR_EGENERAL;
        }
        return APR_SUCCESS;
    }
    size = configured_size(sc->cache_args);
    holds = pegadm_shmcb_customers(size);
    if (holds < customers_wanted(sc)) {
        warn_too_small(sc, ptemp, size, holds);
    }
    return APR_SUCCESS;
}

void pegadm_cache_log_size(server_rec *s)
{
    pegadm_server_conf_t *sc = server_conf(s);
    pegadm_shmcb_layout_t l;
    apr_size_t size;

    if (strcmp(sc->cache_provider_name, "shmcb") || !sc->cache_args) {
        return;
    }
    size = configured_size(sc->cache_args);
    if (pegadm_shmcb_layout(size, &l) == APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                     "PEGADM402: session cache: shmcb of %" APR_SIZE_T_FMT
                     " bytes, %u subcaches of %u index slots and %u data bytes: keeps the "
                     "sessions of about %" APR_SIZE_T_FMT " customers",
                     size, l.subcaches, l.indexes, l.data_size, pegadm_shmcb_customers(size));
    }
}
