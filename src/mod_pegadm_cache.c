/* The session cache's whole life in httpd: the socache provider (shmcb
 * unless PegaDMCache names another, or the module's own Redis or memcached
 * client for redis://, rediss://, memcache://), the default shmcb sized for
 * PegaDMCacheCustomers, the instance made in post_config with its global
 * mutex (a shmcb one retained by the parent across reloads) and
 * re-attached in child_init, and the pegadm_store_t that the session flow
 * (pegadm_session.c) reads and writes through. What goes into the cache is
 * the session flow's business; this file stops at the store.
 *
 * Retained data: what outlives one configuration (shared memory and
 * mutexes that children of the generation before a graceful restart still
 * use while they finish their requests) is retained by the parent process
 * (httpd's retained data, in its process pool) and found again by the next
 * generation's post_config. Each retained thing has a pool of its own under
 * the process pool: replacing it destroys that pool, and the parent's exit
 * destroys the last one. Only APR's own cleanups may be registered in it:
 * the module and the providers it uses are unloaded with the
 * configuration, before the parent exits.
 *
 * With the module's own client, the store and the cross-node create lock
 * (pegadm_mark_t) are pegadm_kvstore's over it (see "the module's own
 * clients" below). */
#include "mod_pegadm.h"
#include "mod_pegadm_operator.h"

#include <string.h>

#include <apr_atomic.h>
#include <apr_strings.h>
#include <http_core.h>
#include <util_mutex.h>
#include <ap_mpm.h>

#include "pegadm_confcheck.h"
#include "pegadm_shmcb.h"

APLOG_USE_MODULE(pegadm);

/* Destroys what is retained under key, if anything. */
static void pegadm_retain_drop(const char *key);

/* socache_memcache and socache_redis take at most 16 bytes of namespace */
#define CACHE_NAMESPACE "mod_pegadm"
#define DEFAULT_FILE    "pegadm-sessions.cache"

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
    return (apr_size_t)pegadm_conf_cache_customers(sc);
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

/* The directives beside PegaDMCache that its value cannot use, or that
 * need another: refused, naming the directive's file and line. */
static apr_status_t check_shared_options(const pegadm_server_conf_t *sc, apr_pool_t *ptemp)
{
    static const char *const names[PEGADM_CACHE_OPTS] = {
        "PegaDMCacheUser",   "PegaDMCachePassword",        "PegaDMCachePasswordFile",
        "PegaDMCacheCAFile", "PegaDMCacheCertificateFile", "PegaDMCacheKeyFile",
        "PegaDMCacheTimeout"};
    const ap_directive_t *const *w = sc->shared.where;
    pegadm_cache_opts_set_t set = {w[0] != NULL, w[1] != NULL, w[2] != NULL,
                                   w[3] != NULL, w[4] != NULL, w[5] != NULL};
    pegadm_cache_url_t shmcb = {.kind = PEGADM_CACHE_SOCACHE,
                                .provider = sc->cache_provider_name};
    const char *err =
        pegadm_cacheurl_check_options(ptemp, sc->shared.url ? sc->shared.url : &shmcb, &set);
    const char *at = "";

    if (!err && w[PEGADM_CACHE_OPT_TIMEOUT] && !sc->shared.url) {
        err = apr_psprintf(ptemp,
                           "PegaDMCacheTimeout: only for redis://, rediss:// or "
                           "memcache:// servers, not for PegaDMCache %s",
                           sc->cache_provider_name);
    }
    if (!err) {
        return APR_SUCCESS;
    }
    for (int i = 0; i < PEGADM_CACHE_OPTS; i++) {
        size_t n = strlen(names[i]);
        if (w[i] && !strncmp(err, names[i], n) && err[n] == ':') {
            at = apr_psprintf(ptemp, " (%s:%d)", w[i]->filename, w[i]->line_num);
        }
    }
    ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_CRIT, 0, NULL, "PEGADM905: %s%s", err, at);
    return APR_EGENERAL;
}

apr_status_t pegadm_cache_check_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s)
{
    pegadm_server_conf_t *sc = server_conf(s);
    apr_size_t size, holds;

    if (!sc->cache_provider && !sc->shared.url) {
        sc->cache_provider =
            ap_lookup_provider(AP_SOCACHE_PROVIDER_GROUP, "shmcb", AP_SOCACHE_PROVIDER_VERSION);
        if (!sc->cache_provider) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_CRIT, 0, NULL,
                         "PEGADM020: the session cache needs mod_socache_shmcb loaded "
                         "(or PegaDMCache naming a loaded socache provider)");
            return APR_EGENERAL;
        }
        sc->cache_provider_name = "shmcb";
    }
    if (check_shared_options(sc, ptemp) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (strcmp(sc->cache_provider_name, "shmcb") != 0) {
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
 * parent keeps (retained data, below), and each later generation takes it over
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

static apr_status_t make_retained_shmcb(apr_pool_t *ptemp, server_rec *s,
                                        pegadm_server_conf_t *sc, const char *signature)
{
    apr_pool_t *pool = pegadm_retain_anew(s, KEPT_KEY);
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
    pegadm_retain(KEPT_KEY, k);
    sc->cache = k->cache;
    sc->mutex = k->mutex;
    return APR_SUCCESS;
}

static apr_status_t attach_retained_shmcb(apr_pool_t *ptemp, server_rec *s,
                                          pegadm_server_conf_t *sc)
{
    const char *signature = apr_pstrcat(ptemp, sc->cache_args ? sc->cache_args : "", "\n",
                                        mutex_settings(ptemp), NULL);
    kept_cache_t *k = pegadm_retained(KEPT_KEY);

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
    return make_retained_shmcb(ptemp, s, sc, signature);
}

static apr_status_t open_shared_client(apr_pool_t *pconf, server_rec *s,
                                       pegadm_server_conf_t *sc);
static void log_unreadable_removed(server_rec *s, apr_status_t rv);

apr_status_t pegadm_cache_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s)
{
    pegadm_server_conf_t *sc = server_conf(s);
    apr_status_t rv;

    if (!strcmp(sc->cache_provider_name, "shmcb")) {
        rv = attach_retained_shmcb(ptemp, s, sc);
        if (rv == APR_SUCCESS) {
            log_size(s, sc);
        }
        return rv;
    }
    /* memcache, redis and the like: outside httpd, made with each generation;
     * a shmcb cache kept from before PegaDMCache named them goes */
    pegadm_retain_drop(KEPT_KEY);
    rv = ap_global_mutex_create(&sc->mutex, NULL, PEGADM_MUTEX_TYPE, NULL, s, pconf, 0);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (sc->shared.url) {
        return open_shared_client(pconf, s, sc);
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

static void log_unreadable_removed(server_rec *s, apr_status_t rv)
{
    ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s,
                 "PEGADM706: removed a session cache entry that could not be read "
                 "(too large, or not written by mod_pegadm)");
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
            log_unreadable_removed(c->s, rv);
            *len = 0;
            return APR_SUCCESS;
        }
    }
    return rv;
}

static apr_status_t store_put(void *ctx, const pegadm_store_key_t *k, apr_time_t expiry,
                              const unsigned char *val, unsigned int len, apr_pool_t *p)
{
    store_ctx_t *c = ctx;
    apr_status_t rv = c->sc->cache_provider->store(c->sc->cache, c->s, k->id, k->id_len, expiry,
                                                   (unsigned char *)val, len, p);
    return rv == APR_NOTFOUND ? APR_ECONNREFUSED : rv;
}

static apr_status_t store_del(void *ctx, const pegadm_store_key_t *k, apr_pool_t *p)
{
    store_ctx_t *c = ctx;
    return c->sc->cache_provider->remove(c->sc->cache, c->s, k->id, k->id_len, p);
}

const pegadm_store_t *pegadm_cache_store(apr_pool_t *p, server_rec *s)
{
    pegadm_server_conf_t *sc = server_conf(s);
    store_ctx_t *c;

    if (sc->shared.store) {
        return sc->shared.store;
    }
    c = apr_palloc(p, sizeof(*c));

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
                      "PEGADM033: %s (%s%s%s); answering as if the service were unavailable",
                      why, sc->cache_provider_name, sc->shared.url ? " " : "",
                      sc->shared.url ? sc->cache_args : "");
    }
}

typedef struct {
    apr_pool_t *pool;
    void *data;
} retained_t;

static retained_t *entry(const char *key)
{
    retained_t *k = ap_retained_data_get(key);
    return k ? k : ap_retained_data_create(key, sizeof(*k));
}

void *pegadm_retained(const char *key)
{
    retained_t *k = ap_retained_data_get(key);
    return k ? k->data : NULL;
}

static void pegadm_retain_drop(const char *key)
{
    retained_t *k = ap_retained_data_get(key);

    if (k && k->pool) {
        apr_pool_destroy(k->pool);
        k->pool = NULL;
        k->data = NULL;
    }
}

apr_pool_t *pegadm_retain_anew(server_rec *s, const char *key)
{
    retained_t *k = entry(key);

    pegadm_retain_drop(key);
    apr_pool_create(&k->pool, s->process->pool);
    apr_pool_tag(k->pool, "pegadm-kept");
    return k->pool;
}

void pegadm_retain(const char *key, void *data)
{
    entry(key)->data = data;
}

/* ---- the module's own clients: Redis, Valkey, memcached ----
 * PegaDMCache redis://, rediss://, memcache:// (and the earlier redis: and
 * memcache: forms). The client is made by the parent in post_config,
 * where the TLS files and the password can be read, and used by the
 * children only: it opens no connection before its first use, so each
 * child gets a copy of its own with an empty pool. The parent checks the
 * servers with a client of its own (the preflight), closed before any
 * child starts. Every shared key goes through it: sessions, the create
 * mark, the customer database's answers, the breaker's record. */

#define KEY_PREFIX "pegadm:"
/* the largest value the module stores: a session entry, a cached answer */
#define MAX_VALUE 65536

/* What PegaDMCache and the directives beside it make, for one client. */
pegadm_shared_conf_t pegadm_shared_conf_of(const pegadm_server_conf_t *sc)
{
    const pegadm_shared_settings_t *sh = &sc->shared;
    pegadm_shared_conf_t conf = {.url = sh->url,
                                 .timeout = sh->timeout ? sh->timeout : apr_time_from_sec(1),
                                 .user = sh->user,
                                 .password = sh->password,
                                 .ca_file = sh->ca_file,
                                 .cert_file = sh->cert_file,
                                 .key_file = sh->key_file,
                                 .pool_max = 1,
                                 .max_value = MAX_VALUE};
    int threads = 1;

    ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads);
    conf.pool_max = threads > 0 ? threads : 1; /* no thread waits for another's connection */
    return conf;
}

static apr_status_t open_shared_client(apr_pool_t *pconf, server_rec *s,
                                       pegadm_server_conf_t *sc)
{
    pegadm_shared_conf_t conf = pegadm_shared_conf_of(sc);
    const char *why = NULL;
    apr_status_t rv = pegadm_shared_open(pconf, &conf, &sc->shared.client, &why);

    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_CRIT, rv, NULL,
                     "PEGADM904: PegaDMCache %s (%s:%d): cannot make its client: %s",
                     sc->cache_args, sc->cache_directive->filename,
                     sc->cache_directive->line_num, why ? why : "unknown reason");
    }
    return rv;
}

static apr_status_t kv_lock(void *ctx)
{
    return apr_global_mutex_lock(((pegadm_server_conf_t *)ctx)->mutex);
}

static apr_status_t kv_unlock(void *ctx)
{
    return apr_global_mutex_unlock(((pegadm_server_conf_t *)ctx)->mutex);
}

/* The kvstore's store, saying so when it removed a value the client could
 * not hand over (larger than any entry, a Redis key of another type): the
 * kvstore reads it as an empty value, which no entry of the module ever
 * is, and the session flow discards it like a tampered entry rather than
 * take the cache for down. */
typedef struct {
    pegadm_store_t store;
    const pegadm_store_t *inner;
    server_rec *s;
} shared_store_t;

static apr_status_t shared_get(void *ctx, const pegadm_store_key_t *k, unsigned char *buf,
                               unsigned int *len, apr_pool_t *p)
{
    shared_store_t *c = ctx;
    apr_status_t rv = c->inner->get(c->inner->ctx, k, buf, len, p);

    if (rv == APR_SUCCESS && *len == 0) {
        log_unreadable_removed(c->s, PEGADM_CACHE_PROTOCOL);
    }
    return rv;
}

static apr_status_t shared_put(void *ctx, const pegadm_store_key_t *k, apr_time_t expiry,
                               const unsigned char *val, unsigned int len, apr_pool_t *p)
{
    const pegadm_store_t *inner = ((shared_store_t *)ctx)->inner;
    return inner->put(inner->ctx, k, expiry, val, len, p);
}

static apr_status_t shared_del(void *ctx, const pegadm_store_key_t *k, apr_pool_t *p)
{
    const pegadm_store_t *inner = ((shared_store_t *)ctx)->inner;
    return inner->del(inner->ctx, k, p);
}

static apr_status_t shared_lock(void *ctx)
{
    const pegadm_store_t *inner = ((shared_store_t *)ctx)->inner;
    return inner->lock(inner->ctx);
}

static apr_status_t shared_unlock(void *ctx)
{
    const pegadm_store_t *inner = ((shared_store_t *)ctx)->inner;
    return inner->unlock(inner->ctx);
}

static const pegadm_store_t *shared_store(apr_pool_t *p, server_rec *s,
                                          const pegadm_store_t *inner)
{
    shared_store_t *c = apr_pcalloc(p, sizeof(*c));

    c->inner = inner;
    c->s = s;
    c->store =
        (pegadm_store_t){c, shared_lock, shared_unlock, shared_get, shared_put, shared_del};
    return &c->store;
}

/* The child's store and create mark over its copy of the client, its
 * operations counted in the child's slot. */
void pegadm_create_lock_child_init(apr_pool_t *p, server_rec *s)
{
    pegadm_server_conf_t *sc = ap_get_module_config(s->module_config, &pegadm_module);
    pegadm_kv_t kv;

    if (!sc->shared.client) {
        return; /* shmcb, or another node-local cache: the node lock decides */
    }
    if (sc->operator_rec) {
        pegadm_shared_count(sc->shared.client, sc->operator_rec->metrics,
                            sc->operator_rec->slot);
    }
    kv = pegadm_shared_kv(sc->shared.client);
    sc->shared.kvstore = pegadm_kvstore_create(p, &kv, KEY_PREFIX, kv_lock, kv_unlock, sc);
    sc->create_lock = sc->shared.kvstore ? &sc->shared.kvstore->mark : NULL;
    sc->shared.store =
        sc->shared.kvstore ? shared_store(p, s, &sc->shared.kvstore->store) : NULL;
}
