/* The module's own Redis or memcached client as PegaDMCache and the
 * directives beside it describe it, wrapped for the glue: timed for the
 * counters, guarded against several Redis hosts that are no cluster, and
 * checked by the preflight. */
#include "pegadm_sharedcache.h"

#include <string.h>

#include <apr_file_io.h>
#include <apr_strings.h>
#include <openssl/crypto.h>

#include "pegadm_memcache.h"
#include "pegadm_redis.h"

#define LOG_INTERVAL apr_time_from_sec(60)
#define PASSWORD_MAX 1024
/* After a server could not be used, the process's next operations on it
 * fail at once for this long (at most the deadline): a hung server costs
 * one deadline per process and window, not one per request, and threads
 * queued behind the node's mutex or the read gate do not wait out a
 * deadline each. An answer is still never taken for a miss. */
#define FAIL_FAST_MAX apr_time_from_sec(1)

enum { TOPOLOGY_UNKNOWN = 0, TOPOLOGY_CLUSTER, TOPOLOGY_NOT_CLUSTER };

struct pegadm_shared_t {
    pegadm_kv_t client;    /* the Redis or memcached client's operations */
    pegadm_redis_t *redis; /* one of the two */
    pegadm_memcache_t *memc;
    pegadm_redis_t *first;     /* several Redis hosts: a client of the first alone */
    apr_uint32_t topology;     /* TOPOLOGY_*, learned from first */
    pegadm_metrics_t *metrics; /* NULL until pegadm_shared_count */
    pegadm_metrics_slot_t *slot;
    apr_int64_t logged_at; /* when a failure was last logged (µs); 0: never */
    const char *where;     /* the first server, for messages */
    /* per server (memcached) or for all of them (Redis): until when
     * operations fail at once, and with what */
    int nservers;
    const char **servers;
    apr_int64_t *failed_until;
    apr_uint32_t *failed_with;
    apr_interval_time_t fail_fast;
};

static int usable(apr_status_t rv)
{
    return rv == APR_SUCCESS || rv == APR_NOTFOUND || rv == APR_EEXIST;
}

/* The clients' observer: the histogram, and pegadm_cache_up written only
 * when it changes (every process writes the same cell). */
static void observe(void *baton, const char *op, double seconds, apr_status_t rv)
{
    pegadm_shared_t *s = baton;
    int o = pegadm_cache_op_of(op);
    int up = usable(rv);

    if (!s->metrics) {
        return;
    }
    if (o >= 0) {
        pegadm_metrics_observe_cache(s->slot, (pegadm_cache_op_t)o,
                                     (apr_interval_time_t)(seconds * APR_USEC_PER_SEC));
    }
    if (pegadm_metrics_cache_up(s->metrics) != up) {
        pegadm_metrics_set_cache_up(s->metrics, up);
    }
}

static const char *host_text(apr_pool_t *p, const pegadm_cache_host_t *h)
{
    if (h->port == 0) {
        return h->host;
    }
    return strchr(h->host, ':') ? apr_psprintf(p, "[%s]:%d", h->host, h->port)
                                : apr_psprintf(p, "%s:%d", h->host, h->port);
}

static apr_status_t open_redis(apr_pool_t *p, const pegadm_shared_conf_t *conf,
                               pegadm_shared_t *s, const char **why)
{
    const pegadm_cache_url_t *u = conf->url;
    const char **hosts = apr_pcalloc(p, sizeof(*hosts) * (apr_size_t)u->nhosts);
    pegadm_redis_conf_t rc = {.hosts = hosts,
                              .nhosts = u->nhosts,
                              .tls = u->tls,
                              .ca_file = conf->ca_file,
                              .cert_file = conf->cert_file,
                              .key_file = conf->key_file,
                              .user = conf->user,
                              .password = conf->password,
                              .db = u->db,
                              .timeout = conf->timeout,
                              .pool_max = conf->pool_max,
                              .max_value = conf->max_value,
                              .observe = observe,
                              .observe_baton = s};
    apr_status_t rv;

    for (int i = 0; i < u->nhosts; i++) {
        hosts[i] = host_text(p, &u->hosts[i]);
    }
    rv = pegadm_redis_create(&s->redis, &rc, p, why);
    if (rv == APR_SUCCESS && u->nhosts > 1) {
        rc.nhosts = 1; /* alone, it tells what INFO says, not what the seeds imply */
        rc.pool_max = 1;
        rc.observe = NULL;
        rv = pegadm_redis_create(&s->first, &rc, p, why);
    }
    if (rv == APR_SUCCESS) {
        s->client = pegadm_redis_kv(s->redis);
    }
    return rv;
}

static apr_status_t open_memcache(apr_pool_t *p, const pegadm_shared_conf_t *conf,
                                  pegadm_shared_t *s, const char **why)
{
    const char *servers = "";
    apr_status_t rv;

    for (int i = 0; i < conf->url->nhosts; i++) {
        servers =
            apr_pstrcat(p, servers, i ? "," : "", host_text(p, &conf->url->hosts[i]), NULL);
    }
    rv = pegadm_memcache_create(p, servers, conf->timeout,
                                (unsigned int)(conf->pool_max > 0 ? conf->pool_max : 1),
                                &s->memc, why);
    if (rv == APR_SUCCESS) {
        pegadm_memcache_observe(s->memc, observe, s);
        s->client = pegadm_memcache_kv(s->memc);
    }
    return rv;
}

apr_status_t pegadm_shared_open(apr_pool_t *p, const pegadm_shared_conf_t *conf,
                                pegadm_shared_t **out, const char **why)
{
    pegadm_shared_t *s = apr_pcalloc(p, sizeof(*s));
    apr_status_t rv;

    *why = NULL;
    if (conf->url->kind == PEGADM_CACHE_SOCACHE || conf->url->nhosts < 1) {
        *why = "not a redis:// or memcache:// cache";
        return APR_EINVAL;
    }
    s->where = host_text(p, &conf->url->hosts[0]);
    s->nservers = conf->url->kind == PEGADM_CACHE_MEMCACHE ? conf->url->nhosts : 1;
    s->servers = apr_pcalloc(p, sizeof(*s->servers) * (apr_size_t)s->nservers);
    for (int i = 0; i < s->nservers; i++) {
        s->servers[i] = host_text(p, &conf->url->hosts[i]);
    }
    s->failed_until = apr_pcalloc(p, sizeof(*s->failed_until) * (apr_size_t)s->nservers);
    s->failed_with = apr_pcalloc(p, sizeof(*s->failed_with) * (apr_size_t)s->nservers);
    s->fail_fast = conf->timeout < FAIL_FAST_MAX ? conf->timeout : FAIL_FAST_MAX;
    rv = conf->url->kind == PEGADM_CACHE_REDIS ? open_redis(p, conf, s, why)
                                               : open_memcache(p, conf, s, why);
    *out = rv == APR_SUCCESS ? s : NULL;
    return rv;
}

void pegadm_shared_count(pegadm_shared_t *s, pegadm_metrics_t *m, pegadm_metrics_slot_t *slot)
{
    s->metrics = m;
    s->slot = slot;
}

/* Several Redis hosts: once the first has told whether it is a cluster,
 * the verdict holds for the client's life (a server turned into a cluster
 * needs a restart of httpd anyway). A first host that cannot be asked now
 * fails this operation only. */
static apr_status_t learn_topology(pegadm_shared_t *s, char *detail)
{
    pegadm_redis_info_t info;
    apr_status_t rv = pegadm_redis_check(s->first, &info);

    if (detail) {
        apr_cpystrn(detail,
                    rv == APR_SUCCESS && info.cluster == 0
                        ? "the first host runs without cluster mode"
                        : info.detail,
                    PEGADM_REDIS_DETAIL_LEN);
    }
    if (rv != APR_SUCCESS) {
        observe(s, "check", 0, rv);
        return rv;
    }
    __atomic_store_n(&s->topology, info.cluster != 0 ? TOPOLOGY_CLUSTER : TOPOLOGY_NOT_CLUSTER,
                     __ATOMIC_RELEASE);
    return APR_SUCCESS;
}

static apr_status_t topology(pegadm_shared_t *s)
{
    apr_uint32_t t =
        s->first ? __atomic_load_n(&s->topology, __ATOMIC_ACQUIRE) : TOPOLOGY_CLUSTER;
    apr_status_t rv;

    if (t == TOPOLOGY_UNKNOWN) {
        if ((rv = learn_topology(s, NULL)) != APR_SUCCESS) {
            return rv;
        }
        t = __atomic_load_n(&s->topology, __ATOMIC_ACQUIRE);
    }
    if (t == TOPOLOGY_NOT_CLUSTER) {
        observe(s, "check", 0, PEGADM_CACHE_NOT_CLUSTER);
        return PEGADM_CACHE_NOT_CLUSTER;
    }
    return APR_SUCCESS;
}

/* The server a key lives on, as an index into s->servers: memcached's
 * own choice; Redis counts as one. */
static int server_of(const pegadm_shared_t *s, const char *key, apr_size_t key_len)
{
    const char *name;

    if (!s->memc || s->nservers == 1) {
        return 0;
    }
    name = pegadm_memcache_server_of(s->memc, key, key_len);
    for (int i = 0; name && i < s->nservers; i++) {
        if (!strcmp(name, s->servers[i])) {
            return i;
        }
    }
    return 0;
}

/* Causes that say the server (not the key, not this process's pool) is
 * out of use for now. */
static int server_down(apr_status_t rv)
{
    return rv == PEGADM_CACHE_TIMEOUT || rv == PEGADM_CACHE_REFUSED || rv == PEGADM_CACHE_TLS ||
           rv == PEGADM_CACHE_AUTH || rv == PEGADM_CACHE_RESOLVE ||
           rv == PEGADM_CACHE_NOT_CLUSTER || rv == PEGADM_CACHE_SERVER || rv == APR_TIMEUP;
}

/* APR_SUCCESS to go ahead with an operation on server i, or the failure it
 * ended with, still fresh. */
static apr_status_t before(pegadm_shared_t *s, int i)
{
    apr_int64_t until = __atomic_load_n(&s->failed_until[i], __ATOMIC_ACQUIRE);

    if (until && apr_time_now() < until) {
        return (apr_status_t)__atomic_load_n(&s->failed_with[i], __ATOMIC_RELAXED);
    }
    return topology(s);
}

static apr_status_t after(pegadm_shared_t *s, int i, apr_status_t rv)
{
    if (server_down(rv)) {
        __atomic_store_n(&s->failed_with[i], (apr_uint32_t)rv, __ATOMIC_RELAXED);
        __atomic_store_n(&s->failed_until[i], (apr_int64_t)(apr_time_now() + s->fail_fast),
                         __ATOMIC_RELEASE);
    } else if (__atomic_load_n(&s->failed_until[i], __ATOMIC_RELAXED)) {
        __atomic_store_n(&s->failed_until[i], (apr_int64_t)0, __ATOMIC_RELEASE);
    }
    return rv;
}

static apr_status_t kv_get(void *ctx, const char *key, apr_size_t key_len, unsigned char *buf,
                           apr_size_t *len, apr_pool_t *p)
{
    pegadm_shared_t *s = ctx;
    int i = server_of(s, key, key_len);
    apr_status_t rv = before(s, i);

    return rv != APR_SUCCESS
               ? rv
               : after(s, i, s->client.get(s->client.ctx, key, key_len, buf, len, p));
}

static apr_status_t kv_set(void *ctx, const char *key, apr_size_t key_len,
                           const unsigned char *val, apr_size_t len, apr_interval_time_t ttl,
                           apr_pool_t *p)
{
    pegadm_shared_t *s = ctx;
    int i = server_of(s, key, key_len);
    apr_status_t rv = before(s, i);

    return rv != APR_SUCCESS
               ? rv
               : after(s, i, s->client.set(s->client.ctx, key, key_len, val, len, ttl, p));
}

static apr_status_t kv_del(void *ctx, const char *key, apr_size_t key_len, apr_pool_t *p)
{
    pegadm_shared_t *s = ctx;
    int i = server_of(s, key, key_len);
    apr_status_t rv = before(s, i);

    return rv != APR_SUCCESS ? rv : after(s, i, s->client.del(s->client.ctx, key, key_len, p));
}

static apr_status_t kv_add(void *ctx, const char *key, apr_size_t key_len,
                           const unsigned char *val, apr_size_t len, apr_interval_time_t ttl,
                           apr_pool_t *p)
{
    pegadm_shared_t *s = ctx;
    int i = server_of(s, key, key_len);
    apr_status_t rv = before(s, i);

    return rv != APR_SUCCESS
               ? rv
               : after(s, i, s->client.add(s->client.ctx, key, key_len, val, len, ttl, p));
}

static apr_status_t kv_del_if(void *ctx, const char *key, apr_size_t key_len,
                              const unsigned char *val, apr_size_t len, apr_pool_t *p)
{
    pegadm_shared_t *s = ctx;
    int i = server_of(s, key, key_len);
    apr_status_t rv = before(s, i);

    return rv != APR_SUCCESS
               ? rv
               : after(s, i, s->client.del_if(s->client.ctx, key, key_len, val, len, p));
}

pegadm_kv_t pegadm_shared_kv(pegadm_shared_t *s)
{
    pegadm_kv_t kv = {s, kv_get, kv_set, kv_del, kv_add, kv_del_if};
    return kv;
}

static apr_status_t check_memcache(pegadm_shared_t *s, apr_pool_t *p, const char **where)
{
    pegadm_memcache_server_check_t *results = NULL;
    int n = 0;
    apr_status_t rv = pegadm_memcache_check(s->memc, p, &results, &n);

    for (int i = 0; i < n; i++) {
        if (results[i].rv != APR_SUCCESS) {
            *where = results[i].server;
            return results[i].rv;
        }
    }
    return rv;
}

/* Several hosts: the first is asked again whether it is a cluster (the
 * servers may have changed since), before the client checks itself. */
static apr_status_t check_redis(pegadm_shared_t *s, pegadm_shared_finding_t *found,
                                char *detail)
{
    pegadm_redis_info_t info;
    apr_status_t rv;

    if (s->first) {
        rv = learn_topology(s, detail);
        if (rv == APR_SUCCESS && s->topology == TOPOLOGY_NOT_CLUSTER) {
            rv = PEGADM_CACHE_NOT_CLUSTER;
        }
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    rv = pegadm_redis_check(s->redis, &info);
    found->cluster = info.cluster == 1;
    apr_cpystrn(detail, info.detail, PEGADM_REDIS_DETAIL_LEN);
    return rv;
}

apr_status_t pegadm_shared_check(pegadm_shared_t *s, apr_pool_t *p,
                                 pegadm_shared_finding_t *found)
{
    char detail[PEGADM_REDIS_DETAIL_LEN] = "";
    apr_status_t rv;

    found->where = s->where;
    found->cluster = 0;
    rv = s->memc ? check_memcache(s, p, &found->where) : check_redis(s, found, detail);
    found->detail = rv == APR_SUCCESS ? "" : apr_pstrdup(p, detail);
    observe(s, "check", 0, rv);
    return rv;
}

int pegadm_shared_log_due(pegadm_shared_t *s, apr_time_t now)
{
    apr_int64_t last = __atomic_load_n(&s->logged_at, __ATOMIC_RELAXED);

    return (last == 0 || now - last >= LOG_INTERVAL) &&
           __atomic_compare_exchange_n(&s->logged_at, &last, (apr_int64_t)now, 0,
                                       __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

const char *pegadm_shared_read_password(apr_pool_t *p, const char *path, const char **password,
                                        int *exposed)
{
    char buf[PASSWORD_MAX + 2];
    apr_file_t *f = NULL;
    apr_size_t len = sizeof(buf) - 1;
    apr_finfo_t fi;
    apr_status_t rv = apr_file_open(&f, path, APR_FOPEN_READ, 0, p);

    memset(&fi, 0, sizeof(fi));
    if (rv == APR_SUCCESS) {
        rv = apr_file_info_get(&fi, APR_FINFO_PROT, f);
    }
    if (rv == APR_SUCCESS) {
        rv = apr_file_read(f, buf, &len);
    }
    if (f) {
        apr_file_close(f);
    }
    if (rv != APR_SUCCESS && rv != APR_EOF) {
        char reason[120];
        return apr_psprintf(p, "PegaDMCachePasswordFile: cannot read %s: %s", path,
                            apr_strerror(rv, reason, sizeof(reason)));
    }
    buf[rv == APR_EOF ? 0 : len] = '\0';
    len = strcspn(buf, "\r\n");
    if (len == 0 || len > PASSWORD_MAX) {
        return apr_psprintf(p,
                            "PegaDMCachePasswordFile: %s holds no password on its first line "
                            "(1 to %d bytes)",
                            path, PASSWORD_MAX);
    }
    *password = apr_pstrmemdup(p, buf, len);
    *exposed = (fi.protection & (APR_GREAD | APR_WREAD)) != 0;
    OPENSSL_cleanse(buf, sizeof(buf));
    return NULL;
}
