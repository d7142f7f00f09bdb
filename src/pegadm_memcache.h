/* The module's memcached client: one or more servers sharing keys by
 * consistent hashing (ketama), each key always on its own server, a
 * bounded pool of connections per server and process, and one deadline
 * per operation that covers waiting for a connection, connecting and every
 * read and write. It offers the operations of pegadm_kv.h; a server that
 * cannot be used answers a code of pegadm_cacheerr.h, never a miss.
 *
 * Made in the process that uses it (a child process's child_init):
 * connections are never shared with another process. Thread-safe. */
#ifndef PEGADM_MEMCACHE_H
#define PEGADM_MEMCACHE_H

#include <apr_pools.h>
#include <apr_time.h>

#include "pegadm_kv.h"

#define PEGADM_MEMCACHE_PORT 11211
/* memcached's limit on a key's length */
#define PEGADM_MEMCACHE_KEY_MAX 250

typedef struct pegadm_memcache_t pegadm_memcache_t;

/* Told after every operation: its name as the metrics have it ("get",
 * "set", "delete", "mark" for add and del_if, "check"), how long it took
 * and its status. Runs on the calling thread, so it must be quick and
 * thread-safe (the Redis client's observer has the same signature). */
typedef void (*pegadm_memcache_observe_fn)(void *baton, const char *op, double seconds,
                                           apr_status_t rv);

/* Checks a server list without using it: "host[:port][,host[:port]...]",
 * optionally after "memcache://" or "memcache:"; an IPv6 address in
 * brackets ("[::1]:11211"), a unix socket as its absolute path. NULL when
 * fit, else why not (in p). */
const char *pegadm_memcache_check_servers(apr_pool_t *p, const char *servers);

/* A client of the servers (a list as above). timeout: the deadline of one
 * operation (> 0). max_conns: how many connections to one server the
 * process may hold (>= 1; the threads of a process are enough). No I/O
 * but resolving the host names, once: their addresses serve the process
 * for its life (a graceful restart resolves them again); a name that does
 * not resolve now is tried again when its server is used, at most every 5
 * seconds. APR_EINVAL with *why (in p) for an unfit list. Lives as long as
 * p (its connections are closed with it). */
apr_status_t pegadm_memcache_create(apr_pool_t *p, const char *servers,
                                    apr_interval_time_t timeout, unsigned int max_conns,
                                    pegadm_memcache_t **out, const char **why);

/* Calls fn after every operation from now on (NULL: no more). Set it
 * before the client is used by more than one thread. */
void pegadm_memcache_observe(pegadm_memcache_t *mc, pegadm_memcache_observe_fn fn, void *baton);

/* The client as pegadm_kv.h's operations (ctx is mc). */
pegadm_kv_t pegadm_memcache_kv(pegadm_memcache_t *mc);

/* The operations, as pegadm_kv.h describes them. Keys are 1 to 250 bytes
 * without spaces or control characters (others: PEGADM_CACHE_PROTOCOL). */
apr_status_t pegadm_memcache_get(void *mc, const char *key, apr_size_t key_len,
                                 unsigned char *buf, apr_size_t *len, apr_pool_t *p);
apr_status_t pegadm_memcache_set(void *mc, const char *key, apr_size_t key_len,
                                 const unsigned char *val, apr_size_t len,
                                 apr_interval_time_t ttl, apr_pool_t *p);
apr_status_t pegadm_memcache_del(void *mc, const char *key, apr_size_t key_len, apr_pool_t *p);
apr_status_t pegadm_memcache_add(void *mc, const char *key, apr_size_t key_len,
                                 const unsigned char *val, apr_size_t len,
                                 apr_interval_time_t ttl, apr_pool_t *p);
apr_status_t pegadm_memcache_del_if(void *mc, const char *key, apr_size_t key_len,
                                    const unsigned char *val, apr_size_t len, apr_pool_t *p);

/* One server's answer to the preflight. */
typedef struct {
    const char *server;  /* as configured: host:port, [v6]:port or a path */
    apr_status_t rv;     /* APR_SUCCESS, or why it cannot be used */
    const char *version; /* what it says it is ("1.6.18"), NULL unless rv is APR_SUCCESS */
} pegadm_memcache_server_check_t;

/* The preflight: asks every server for its version on a new connection,
 * each within the deadline. *results (in p) gets one entry per server, in
 * the configured order, *n their count. APR_SUCCESS when every server
 * answered, else the first failure. */
apr_status_t pegadm_memcache_check(pegadm_memcache_t *mc, apr_pool_t *p,
                                   pegadm_memcache_server_check_t **results, int *n);

/* Connections opened so far, to every server (for the benchmarks'
 * connection reuse). */
apr_uint32_t pegadm_memcache_connects(pegadm_memcache_t *mc);

/* The configured name of the server that holds key (for logs and tests).
 * A key with a non-empty "{tag}" is placed by its tag alone, as in a Redis
 * Cluster: keys with one tag share a server. */
const char *pegadm_memcache_server_of(pegadm_memcache_t *mc, const char *key,
                                      apr_size_t key_len);

/* Closes the idle connections now (also done when the pool is cleared).
 * No operation may be running or start afterwards. */
void pegadm_memcache_destroy(pegadm_memcache_t *mc);

#endif
