/* The session cache's whole life in httpd: the socache provider (shmcb
 * unless PegaDMCache names another), the default shmcb sized for
 * PegaDMCacheCustomers, the instance made in post_config with its global
 * mutex (a shmcb one kept by the parent across reloads) and re-attached in
 * child_init, and the pegadm_store_t that the session flow
 * (pegadm_session.c) reads and writes through. What goes into the cache is
 * the session flow's business; this file stops at the store. */
#include "mod_pegadm.h"

#include <string.h>

#include <apr_atomic.h>
#include <apr_strings.h>
#include <http_core.h>
#include <util_mutex.h>

#include "pegadm_confcheck.h"
#include "pegadm_shmcb.h"

APLOG_USE_MODULE(pegadm);

/* socache_memcache and socache_redis take at most 16 bytes of namespace */
#define CACHE_NAMESPACE   "mod_pegadm"
#define DEFAULT_CUSTOMERS 100000
#define DEFAULT_FILE      "pegadm-sessions.cache"

static pegadm_server_conf_t *server_conf(server_rec *s)
{
    return ap_get_module_config(s->module_config, &pegadm_module);
}

/* ---- sizing the shmcb cache ----
 * shmcb pushes its oldest entries out when full, expired or not, and a
 * customer whose session was pushed out gets a new session ID on the next
 * request. So the default cache is sized for PegaDMCacheCustomers
 * customers (100,000 unless set), and a size given with
 * "PegaDMCache shmcb:path(bytes)" that is too small draws a warning saying
 * how big it must be. memcached and Redis are sized by their own
 * configuration. */

static apr_size_t customers_wanted(const pegadm_server_conf_t *sc)
{
    return sc->cache_customers > 0 ? (apr_size_t)sc->cache_customers : DEFAULT_CUSTOMERS;
}

/* The arguments of the default shmcb cache: sized for PegaDMCacheCustomers. */
static const char *default_args(apr_pool_t *p, const pegadm_server_conf_t *sc)
{
    const char *file = ap_runtime_dir_relative(p, DEFAULT_FILE);

    /* PegaDMCacheCustomers is bounded so that this size is one shmcb takes. */
    return apr_psprintf(p, "%s(%" APR_SIZE_T_FMT ")", file ? file : DEFAULT_FILE,
                        pegadm_shmcb_size_for(customers_wanted(sc)));
}

/* The size in "path(bytes)" as shmcb reads it, which has accepted it. */
static apr_size_t configured_size(const char *args)
{
    return pegadm_shmcb_args_size(args, PEGADM_SHMCB_DEFAULT_SIZE);
}

static void warn_too_small(const pegadm_server_conf_t *sc, apr_pool_t *ptemp, apr_size_t size,
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

static apr_status_t create_shmcb(const pegadm_server_conf_t *sc, ap_socache_instance_t **cache,
                                 apr_pool_t *ptemp, apr_pool_t *pool)
{
    const char *err = sc->cache_provider->create(cache, sc->cache_args, ptemp, pool);
    if (err) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_CRIT, 0, NULL,
                     "PEGADM021: creating the shmcb session cache failed: %s", err);
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

/* A shmcb cache without a size given: the default one, sized. */
static apr_status_t create_default_shmcb(apr_pool_t *pconf, apr_pool_t *ptemp,
                                         pegadm_server_conf_t *sc)
{
    sc->cache_args = default_args(pconf, sc);
    return create_shmcb(sc, &sc->cache, ptemp, pconf);
}

static apr_status_t init_cache(const pegadm_server_conf_t *sc, ap_socache_instance_t *cache,
                               server_rec *s, apr_pool_t *pool)
{
    struct ap_socache_hints hints = {PEGADM_SHMCB_HINT_ID_LEN, PEGADM_SHMCB_HINT_OBJ_SIZE, 60};
    apr_status_t rv = sc->cache_provider->init(cache, CACHE_NAMESPACE, &hints, s, pool);

    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "PEGADM022: initialising the %s session cache failed",
                     sc->cache_provider_name);
    }
    return rv;
}

/* Logs (info) how many customers a shmcb cache keeps. */
static void log_size(server_rec *s, const pegadm_server_conf_t *sc)
{
    pegadm_shmcb_layout_t l;
    apr_size_t size;

    if (strcmp(sc->cache_provider_name, "shmcb") != 0 || !sc->cache_args) {
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

/* ---- start-up and child processes ---- */

static apr_status_t destroy_cache(void *data)
{
    server_rec *s = data;
    pegadm_server_conf_t *sc = server_conf(s);
    if (sc->cache) {
        sc->cache_provider->destroy(sc->cache, s);
        sc->cache = NULL;
    }
    return APR_SUCCESS;
}

apr_status_t pegadm_cache_check_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s)
{
    pegadm_server_conf_t *sc = server_conf(s);
    apr_size_t size, holds;

    if (!sc->cache_provider) {
        sc->cache_provider =
            ap_lookup_provider(AP_SOCACHE_PROVIDER_GROUP, "shmcb", AP_SOCACHE_PROVIDER_VERSION);
        if (!sc->cache_provider) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_CRIT, 0, NULL,
                         "PEGADM020: the session cache needs mod_socache_shmcb loaded "
                         "(or PegaDMCache naming a loaded socache provider)");
            return APR_EGENERAL;
        }
        sc->cache_provider_name = "shmcb";
    } else if (strcmp(sc->cache_provider_name, "shmcb") != 0) {
        return APR_SUCCESS;
    }
    if (!sc->cache_args || !*sc->cache_args) {
        return create_default_shmcb(pconf, ptemp, sc);
    }
    size = configured_size(sc->cache_args);
    holds = pegadm_shmcb_customers(size);
    if (holds < customers_wanted(sc)) {
        warn_too_small(sc, ptemp, size, holds);
    }
    return APR_SUCCESS;
}

/* ---- the shmcb cache kept across reloads ----
 * A shmcb cache lives in the parent: made with the configuration, it would
 * be emptied by every graceful restart and restart, and every customer would
 * get a new session. So it is made once, with its mutex, in a pool the
 * parent keeps (mod_pegadm_keep.c), and each later generation takes it over
 * while its arguments and the Mutex settings for it are the same; children
 * of the generation before still finishing requests use the same memory and
 * the same mutex. Memory and mutex go with the parent's exit. */

#define KEPT_KEY "pegadm-cache-shmcb"

typedef struct {
    const char *signature; /* what it was made from */
    ap_socache_instance_t *cache;
    apr_global_mutex_t *mutex;
} kept_cache_t;

static int names_our_mutex(apr_pool_t *p, const char *args)
{
    const char *word;
    int names = 0;

    ap_getword_conf(p, &args); /* the mechanism */
    while (*(word = ap_getword_conf(p, &args))) {
        if (!strcasecmp(word, "OmitPID")) {
            continue;
        }
        names++;
        if (!strcasecmp(word, "default") || !strcasecmp(word, PEGADM_MUTEX_TYPE)) {
            return 1;
        }
    }
    return names == 0; /* "Mutex mechanism" alone sets the default */
}

/* The Mutex lines that apply to the pegadm-cache mutex (they are at the top
 * of the configuration tree, never in a virtual host), and the runtime
 * directory a lock file goes to by default. */
static const char *mutex_settings(apr_pool_t *p)
{
    const char *dir = ap_runtime_dir_relative(p, ""), *all = dir ? dir : "";

    for (const ap_directive_t *d = ap_conftree; d; d = d->next) {
        if (!strcasecmp(d->directive, "Mutex") && names_our_mutex(p, d->args)) {
            all = apr_pstrcat(p, all, "\n", d->args, NULL);
        }
    }
    return all;
}

static apr_status_t make_kept_shmcb(apr_pool_t *ptemp, server_rec *s, pegadm_server_conf_t *sc,
                                    const char *signature)
{
    apr_pool_t *pool = pegadm_keep_anew(s, KEPT_KEY);
    kept_cache_t *k = apr_pcalloc(pool, sizeof(*k));
    apr_status_t rv;

    k->signature = apr_pstrdup(pool, signature);
    rv = create_shmcb(sc, &k->cache, ptemp, pool);
    if (rv == APR_SUCCESS) {
        rv = ap_global_mutex_create(&k->mutex, NULL, PEGADM_MUTEX_TYPE, NULL, s, pool, 0);
    }
    /* shmcb's init registers only APR's cleanup of its memory in pool */
    if (rv == APR_SUCCESS) {
        rv = init_cache(sc, k->cache, s, pool);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    pegadm_keep(KEPT_KEY, k);
    sc->cache = k->cache;
    sc->mutex = k->mutex;
    return APR_SUCCESS;
}

static apr_status_t attach_kept_shmcb(apr_pool_t *ptemp, server_rec *s,
                                      pegadm_server_conf_t *sc)
{
    const char *signature = apr_pstrcat(ptemp, sc->cache_args ? sc->cache_args : "", "\n",
                                        mutex_settings(ptemp), NULL);
    kept_cache_t *k = pegadm_kept(KEPT_KEY);

    if (k && !strcmp(k->signature, signature)) {
        sc->cache = k->cache;
        sc->mutex = k->mutex;
        return APR_SUCCESS;
    }
    if (k) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                     "PEGADM404: session cache: the shmcb arguments or the %s mutex "
                     "settings changed; starting a new, empty cache (every customer gets a "
                     "new session ID once)",
                     PEGADM_MUTEX_TYPE);
    }
    return make_kept_shmcb(ptemp, s, sc, signature);
}

apr_status_t pegadm_cache_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s)
{
    pegadm_server_conf_t *sc = server_conf(s);
    apr_status_t rv;

    if (!strcmp(sc->cache_provider_name, "shmcb")) {
        rv = attach_kept_shmcb(ptemp, s, sc);
        if (rv == APR_SUCCESS) {
            log_size(s, sc);
        }
        return rv;
    }
    /* memcache, redis and the like: outside httpd, made with each generation;
     * a shmcb cache kept from before PegaDMCache named them goes */
    pegadm_keep_drop(KEPT_KEY);
    rv = ap_global_mutex_create(&sc->mutex, NULL, PEGADM_MUTEX_TYPE, NULL, s, pconf, 0);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = init_cache(sc, sc->cache, s, pconf);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    apr_pool_cleanup_register(pconf, s, destroy_cache, apr_pool_cleanup_null);
    return APR_SUCCESS;
}

void pegadm_cache_child_init(apr_pool_t *p, server_rec *s)
{
    pegadm_server_conf_t *sc = server_conf(s);
    apr_status_t rv;

    if (!sc->mutex) {
        return;
    }
    rv = apr_global_mutex_child_init(&sc->mutex, apr_global_mutex_lockfile(sc->mutex), p);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "PEGADM023: attaching to the session cache mutex failed");
    }
}

/* ---- pegadm_store_t over socache ---- */

typedef struct {
    pegadm_store_t store;
    pegadm_server_conf_t *sc;
    server_rec *s;
} store_ctx_t;

static apr_status_t store_lock(void *ctx)
{
    return apr_global_mutex_lock(((store_ctx_t *)ctx)->sc->mutex);
}

static apr_status_t store_unlock(void *ctx)
{
    return apr_global_mutex_unlock(((store_ctx_t *)ctx)->sc->mutex);
}

/* A cache server that fails is held for dead by apr_memcache and apr_redis
 * for 5 seconds, during which they answer "not found" without asking it
 * (their retry, a ping, fails silently too). Such an answer is no miss: a
 * "not found" counts only once this process has seen no cache failure
 * for longer than that; before, the cache counts as unreachable. */
#define CACHE_DEAD_SECONDS 7

static apr_status_t note_cache_result(store_ctx_t *c, apr_status_t rv)
{
    apr_uint32_t now = (apr_uint32_t)apr_time_sec(apr_time_now());

    if (rv != APR_SUCCESS && rv != APR_NOTFOUND) {
        apr_atomic_set32(&c->sc->cache_failed_at, now);
    } else if (rv == APR_NOTFOUND &&
               now - apr_atomic_read32(&c->sc->cache_failed_at) < CACHE_DEAD_SECONDS) {
        return APR_ECONNREFUSED;
    }
    return rv;
}

/* A value the provider cannot hand over (larger than any entry, a Redis
 * key of another type) is no outage if the server still answers: removing
 * it succeeds. It is then discarded like a tampered entry (an empty value
 * fails authentication), instead of holding the cache for down. */
static apr_status_t store_get(void *ctx, const pegadm_store_key_t *k, unsigned char *buf,
                              unsigned int *len, apr_pool_t *p)
{
    store_ctx_t *c = ctx;
    const unsigned char *id = k->id; /* the tag has no use in socache */
    unsigned int id_len = k->id_len;
    apr_status_t rv =
        c->sc->cache_provider->retrieve(c->sc->cache, c->s, id, id_len, buf, len, p);
    apr_status_t removed;

    if (rv != APR_SUCCESS && rv != APR_NOTFOUND) {
        removed = c->sc->cache_provider->remove(c->sc->cache, c->s, id, id_len, p);
        if (removed == APR_SUCCESS || removed == APR_NOTFOUND) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, rv, c->s,
                         "PEGADM706: removed a session cache entry that could not be read "
                         "(too large, or not written by mod_pegadm)");
            *len = 0;
            return APR_SUCCESS;
        }
    }
    return note_cache_result(c, rv);
}

/* A store never answers "not found" but for a server held for dead. */
static apr_status_t store_put(void *ctx, const pegadm_store_key_t *k, apr_time_t expiry,
                              const unsigned char *val, unsigned int len, apr_pool_t *p)
{
    store_ctx_t *c = ctx;
    apr_status_t rv = c->sc->cache_provider->store(c->sc->cache, c->s, k->id, k->id_len, expiry,
                                                   (unsigned char *)val, len, p);
    return note_cache_result(c, rv == APR_NOTFOUND ? APR_ECONNREFUSED : rv);
}

static apr_status_t store_del(void *ctx, const pegadm_store_key_t *k, apr_pool_t *p)
{
    store_ctx_t *c = ctx;
    return note_cache_result(
        c, c->sc->cache_provider->remove(c->sc->cache, c->s, k->id, k->id_len, p));
}

const pegadm_store_t *pegadm_cache_store(apr_pool_t *p, server_rec *s)
{
    store_ctx_t *c = apr_palloc(p, sizeof(*c));

    c->sc = server_conf(s);
    c->s = s;
    c->store.ctx = c;
    c->store.lock = store_lock;
    c->store.unlock = store_unlock;
    c->store.get = store_get;
    c->store.put = store_put;
    c->store.del = store_del;
    return &c->store;
}

/* The cache's own trouble is logged at most once a minute per process:
 * every request would otherwise repeat it. */
void pegadm_cache_log_failure(request_rec *r, const char *why)
{
    pegadm_server_conf_t *sc = server_conf(r->server);
    apr_uint32_t now = (apr_uint32_t)apr_time_sec(apr_time_now());
    apr_uint32_t last = apr_atomic_read32(&sc->cache_error_logged_at);

    if (now - last >= 60 && apr_atomic_cas32(&sc->cache_error_logged_at, now, last) == last) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "PEGADM033: %s (%s); answering as if the service were unavailable", why,
                      sc->cache_provider_name);
    }
}
