/* The cross-node create mark (pegadm_mark_t) on the memcached or Redis
 * servers that PegaDMCache names, through apr_memcache and apr_redis, the
 * clients httpd's own socache providers are built on. Each child process
 * opens a client of its own, used for the mark only; the cache itself
 * stays with the socache provider. */
#include "mod_pegadm.h"

#include <string.h>

#include <apr_memcache.h>
#include <apr_redis.h>
#include <apr_strings.h>
#include <ap_mpm.h>

APLOG_USE_MODULE(pegadm);

#define MARK_PREFIX   "mod_pegadm:mark:"
#define MEMCACHE_PORT 11211
#define REDIS_PORT    6379
/* how long an idle connection is kept, and socache_redis's I/O timeout */
#define CONN_TTL   apr_time_from_sec(15)
#define REDIS_RWTO 5
/* Redis has no atomic "set if absent with expiry" that apr_redis sends:
 * the mark is an INCR (1: ours), then given its expiry by a SETEX to this
 * value. An INCR answering less than it met a mark still without expiry
 * (its holder between the two commands, or dead there): the loser sets
 * the expiry itself, so that no mark can stay for ever. */
#define REDIS_ARMED 1000000

typedef struct {
    pegadm_mark_t mark;
    apr_memcache_t *mc; /* one of the two, or neither if creation failed */
    apr_redis_t *rc;
} mark_client_t;

static const char *mark_key(apr_pool_t *p, const unsigned char *id, unsigned int id_len)
{
    static const char hex[] = "0123456789abcdef";
    apr_size_t prefix = sizeof(MARK_PREFIX) - 1;
    char *key = apr_palloc(p, prefix + (apr_size_t)id_len * 2 + 1);
    char *at = key + prefix;

    memcpy(key, MARK_PREFIX, prefix);
    for (unsigned int i = 0; i < id_len; i++) {
        *at++ = hex[id[i] >> 4];
        *at++ = hex[id[i] & 0x0f];
    }
    *at = '\0';
    return key;
}

static apr_uint32_t ttl_seconds(apr_interval_time_t ttl)
{
    return (apr_uint32_t)((ttl + APR_USEC_PER_SEC - 1) / APR_USEC_PER_SEC);
}

static apr_status_t memcache_take(void *ctx, const pegadm_store_key_t *k,
                                  const unsigned char *token, apr_interval_time_t ttl,
                                  apr_pool_t *p)
{
    mark_client_t *c = ctx;
    char one[] = "1";

    if (!c->mc) {
        return APR_EGENERAL;
    }
    return apr_memcache_add(c->mc, mark_key(p, k->id, k->id_len), one, 1, ttl_seconds(ttl), 0);
}

static apr_status_t memcache_release(void *ctx, const pegadm_store_key_t *k,
                                     const unsigned char *token, apr_pool_t *p)
{
    mark_client_t *c = ctx;
    return c->mc ? apr_memcache_delete(c->mc, mark_key(p, k->id, k->id_len), 0) : APR_EGENERAL;
}

static apr_status_t redis_arm(mark_client_t *c, const char *key, apr_interval_time_t ttl)
{
    char armed[] = APR_STRINGIFY(REDIS_ARMED);
    return apr_redis_setex(c->rc, key, armed, sizeof(armed) - 1, ttl_seconds(ttl), 0);
}

static apr_status_t redis_take(void *ctx, const pegadm_store_key_t *k,
                               const unsigned char *token, apr_interval_time_t ttl,
                               apr_pool_t *p)
{
    mark_client_t *c = ctx;
    const char *key = mark_key(p, k->id, k->id_len);
    apr_uint32_t count = 0;
    apr_status_t rv;

    if (!c->rc) {
        return APR_EGENERAL;
    }
    rv = apr_redis_incr(c->rc, key, 1, &count);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (count == 1) {
        rv = redis_arm(c, key, ttl);
        if (rv != APR_SUCCESS) { /* a mark without expiry must not stay */
            apr_redis_delete(c->rc, key, 0);
        }
        return rv;
    }
    if (count < REDIS_ARMED) {
        redis_arm(c, key, ttl);
    }
    return APR_EEXIST;
}

static apr_status_t redis_release(void *ctx, const pegadm_store_key_t *k,
                                  const unsigned char *token, apr_pool_t *p)
{
    mark_client_t *c = ctx;
    return c->rc ? apr_redis_delete(c->rc, mark_key(p, k->id, k->id_len), 0) : APR_EGENERAL;
}

/* Parses host[:port][,host[:port]...] as socache_memcache and socache_redis
 * do, adding each server to the client of the kind at hand. */
static apr_status_t add_servers(apr_pool_t *p, mark_client_t *c, const char *args,
                                apr_port_t default_port, int threads)
{
    char *list = apr_pstrdup(p, args), *last = NULL;

    for (char *item = apr_strtok(list, ",", &last); item; item = apr_strtok(NULL, ",", &last)) {
        char *host = NULL, *scope = NULL;
        apr_port_t port = 0;
        apr_status_t rv = apr_parse_addr_port(&host, &scope, &port, item, p);

        if (rv != APR_SUCCESS || !host) {
            return rv != APR_SUCCESS ? rv : APR_EINVAL;
        }
        port = port ? port : default_port;
        if (c->mc) {
            apr_memcache_server_t *ms;
            rv = apr_memcache_server_create(p, host, port, 0, threads, threads, CONN_TTL, &ms);
            rv = rv == APR_SUCCESS ? apr_memcache_add_server(c->mc, ms) : rv;
        } else {
            apr_redis_server_t *rs;
            rv = apr_redis_server_create(p, host, port, 0, threads, threads, CONN_TTL,
                                         REDIS_RWTO, &rs);
            rv = rv == APR_SUCCESS ? apr_redis_add_server(c->rc, rs) : rv;
        }
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    return APR_SUCCESS;
}

static apr_uint16_t count_servers(const char *args)
{
    apr_uint16_t n = 1;
    for (const char *s = args; *s; s++) {
        n += *s == ',';
    }
    return n;
}

/* One connection per worker thread at most, kept while used: no thread
 * waits for another's connection, and none is opened per request. */
static void pegadm_mark_child_init(apr_pool_t *p, server_rec *s)
{
    pegadm_server_conf_t *sc = ap_get_module_config(s->module_config, &pegadm_module);
    int memcache = sc->cache_provider_name && !strcmp(sc->cache_provider_name, "memcache");
    int redis = sc->cache_provider_name && !strcmp(sc->cache_provider_name, "redis");
    mark_client_t *c;
    int threads = 1;
    apr_status_t rv;

    if ((!memcache && !redis) || !sc->cache_args) {
        return; /* shmcb, or another node-local cache: the node lock decides */
    }
    c = apr_pcalloc(p, sizeof(*c));
    c->mark.ctx = c;
    c->mark.take = memcache ? memcache_take : redis_take;
    c->mark.release = memcache ? memcache_release : redis_release;
    ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads);
    threads = threads > 0 ? threads : 1;
    if (memcache) {
        rv = apr_memcache_create(p, count_servers(sc->cache_args), 0, &c->mc);
    } else {
        rv = apr_redis_create(p, count_servers(sc->cache_args), 0, &c->rc);
    }
    if (rv == APR_SUCCESS) {
        rv = add_servers(p, c, sc->cache_args, memcache ? MEMCACHE_PORT : REDIS_PORT, threads);
    }
    if (rv != APR_SUCCESS) {
        c->mc = NULL;
        c->rc = NULL;
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "PEGADM800: cannot open a %s client to %s for the create mark; first "
                     "requests are answered as if the service were unavailable",
                     sc->cache_provider_name, sc->cache_args);
    }
    sc->create_mark = &c->mark;
}

void pegadm_mark_register_hooks(apr_pool_t *p)
{
    ap_hook_child_init(pegadm_mark_child_init, NULL, NULL, APR_HOOK_MIDDLE);
}
