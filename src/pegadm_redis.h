/* The module's own Redis/Valkey client: RESP through libhiredis's command
 * formatter and reply reader (no redisContext), over pegadm_netconn (TLS,
 * IPv6, unix sockets, a deadline on every step). One client per process,
 * shared by its threads: a bounded pool of connections, AUTH [user] and
 * SELECT on each new one, a dead pooled connection replaced once without
 * failing the request, and Redis Cluster (MOVED, ASK, the slot map).
 *
 * Every operation finishes within conf->timeout of its start, waiting for a
 * pooled connection, connecting, the TLS handshake and AUTH included. Its
 * status is APR_SUCCESS, the operation's own answer (APR_NOTFOUND,
 * APR_EEXIST, as pegadm_kv.h says), or why the server could not be used:
 *   PEGADM_CACHE_TIMEOUT    no answer within the deadline (never retried)
 *   PEGADM_CACHE_REFUSED    connection refused, reset or closed
 *   PEGADM_CACHE_RESOLVE    the host name does not resolve
 *   PEGADM_CACHE_TLS        handshake failed: chain, host name, client cert
 *   PEGADM_CACHE_AUTH       WRONGPASS, NOAUTH, NOPERM; SELECT refused, or a
 *                           database other than 0 asked of a cluster
 *   PEGADM_CACHE_SERVER     LOADING, READONLY, CLUSTERDOWN, TRYAGAIN, OOM,
 *                           MASTERDOWN, BUSY: the server cannot serve now
 *   PEGADM_CACHE_REDIRECTS  more MOVED/ASK hops than a few
 *   PEGADM_CACHE_PROTOCOL   any other error reply, an unexpected answer, a
 *                           value larger than asked for or than max_value
 *   PEGADM_CACHE_BUSY       every pooled connection in use until the deadline
 * None of these is ever a miss.
 *
 * Create the client in the process that uses it (httpd: child_init); it
 * opens no connection until first used. One used before a fork (a start-up
 * preflight in the parent) is still safe: a forked process drops the
 * pooled connections it inherited and opens its own. */
#ifndef PEGADM_REDIS_H
#define PEGADM_REDIS_H

#include <apr_pools.h>
#include <apr_time.h>

#include "pegadm_cacheerr.h"
#include "pegadm_kv.h"

typedef struct pegadm_redis_t pegadm_redis_t;

#define PEGADM_REDIS_DETAIL_LEN 160

/* Called after each operation: op is "get", "set", "delete", "mark" (add
 * and del_if) or "check"; seconds its duration; rv its status. From any
 * thread; must not block. */
typedef void (*pegadm_redis_observe_fn)(void *baton, const char *op, double seconds,
                                        apr_status_t rv);

typedef struct {
    /* "host", "host:port", "[v6addr]:port", "v6addr" or one "/unix/path";
     * port 6379 when none is given. Several hosts: seed nodes of a cluster. */
    const char *const *hosts;
    int nhosts;
    int tls;               /* 1: TLS (rediss://) */
    const char *ca_file;   /* NULL: the system's trust store */
    const char *cert_file; /* client certificate and key, or both NULL */
    const char *key_file;
    const char *server_name;         /* name the certificate must carry; NULL: the first host */
    const char *user;                /* ACL user, or NULL */
    const char *password;            /* NULL: no AUTH */
    int db;                          /* SELECT db when > 0 (a cluster refuses it) */
    apr_interval_time_t timeout;     /* of one operation, everything included */
    int pool_max;                    /* connections open at once, all nodes together */
    apr_size_t max_value;            /* largest value read; larger is PROTOCOL */
    pegadm_redis_observe_fn observe; /* or NULL */
    void *observe_baton;
} pegadm_redis_conf_t;

/* Makes a client in p, copying conf's strings; no I/O. Fails with *why (in
 * p, never holding the password) on a host that does not parse, or TLS
 * files that cannot be loaded (PEGADM_CACHE_TLS). Idle connections are
 * closed when p is cleared. */
apr_status_t pegadm_redis_create(pegadm_redis_t **r, const pegadm_redis_conf_t *conf,
                                 apr_pool_t *p, const char **why);

/* The client's operations as a pegadm_kv_t (ctx = r). */
pegadm_kv_t pegadm_redis_kv(pegadm_redis_t *r);

/* The operations of pegadm_kv.h: GET; SET PX; DEL; SET NX PX; an EVAL that
 * deletes the key only if it holds val. */
apr_status_t pegadm_redis_get(void *r, const char *key, apr_size_t key_len, unsigned char *buf,
                              apr_size_t *len, apr_pool_t *p);
apr_status_t pegadm_redis_set(void *r, const char *key, apr_size_t key_len,
                              const unsigned char *val, apr_size_t len, apr_interval_time_t ttl,
                              apr_pool_t *p);
apr_status_t pegadm_redis_del(void *r, const char *key, apr_size_t key_len, apr_pool_t *p);
apr_status_t pegadm_redis_add(void *r, const char *key, apr_size_t key_len,
                              const unsigned char *val, apr_size_t len, apr_interval_time_t ttl,
                              apr_pool_t *p);
apr_status_t pegadm_redis_del_if(void *r, const char *key, apr_size_t key_len,
                                 const unsigned char *val, apr_size_t len, apr_pool_t *p);

typedef struct {
    /* 1: the server runs in cluster mode (INFO cluster, or a MOVED); 0: it
     * does not; -1: it would not say (an ACL without INFO). With several
     * hosts, the first that answers is asked, so that a start-up check can
     * refuse several hosts that are no cluster. */
    int cluster;
    /* on failure, what the server or OpenSSL said, if anything: e.g.
     * "certificate verify failed: hostname mismatch", "WRONGPASS invalid
     * username-password pair or user is disabled."; never a password */
    char detail[PEGADM_REDIS_DETAIL_LEN];
} pegadm_redis_info_t;

/* For the start-up and periodic preflight: opens a new connection to the
 * first host (TLS handshake, AUTH, INFO cluster, SELECT), sends PING, and
 * keeps the connection in the pool if there is room; with several hosts,
 * each in turn until one answers. APR_SUCCESS when all of it worked.
 * A database other than 0 against a cluster is PEGADM_CACHE_AUTH with
 * info->cluster = 1: the configuration cannot work. */
apr_status_t pegadm_redis_check(pegadm_redis_t *r, pegadm_redis_info_t *info);

/* Connections opened so far (each one a connect, TLS handshake and AUTH),
 * for the benchmarks' handshakes per 1,000 requests. */
apr_uint64_t pegadm_redis_handshakes(pegadm_redis_t *r);

/* The Redis Cluster hash slot of key: CRC16-XMODEM of the key, or of the
 * part between the first '{' and the next '}' when that part is not empty. */
unsigned int pegadm_redis_slot(const char *key, apr_size_t key_len);

#endif
