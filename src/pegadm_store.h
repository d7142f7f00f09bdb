/* The shared store the session flow (pegadm_session.c) and the circuit
 * breaker (pegadm_breaker.c) keep their records in, and the create lock
 * across nodes that share it: interfaces only, so that the module backs
 * them with httpd's socache and memcached or Redis clients and the unit
 * tests with a table in memory. */
#ifndef PEGADM_STORE_H
#define PEGADM_STORE_H

#include <apr_pools.h>
#include <apr_time.h>

/* A key/value store with expiry and one lock that serialises short
 * read-modify-write sequences (never held across an upstream call).
 * get returns APR_NOTFOUND for a missing entry; any other failure means
 * the store cannot be used. *len is the buffer size in, the value size out. */
typedef struct {
    void *ctx;
    apr_status_t (*lock)(void *ctx);
    apr_status_t (*unlock)(void *ctx);
    apr_status_t (*get)(void *ctx, const unsigned char *id, unsigned int id_len,
                        unsigned char *buf, unsigned int *len, apr_pool_t *p);
    apr_status_t (*put)(void *ctx, const unsigned char *id, unsigned int id_len,
                        apr_time_t expiry, const unsigned char *val, unsigned int len,
                        apr_pool_t *p);
    apr_status_t (*del)(void *ctx, const unsigned char *id, unsigned int id_len, apr_pool_t *p);
} pegadm_store_t;

/* A mark held by the shared store's server itself, taken atomically (a
 * memcached "add", a Redis INCR): of the nodes sharing the store, one at a
 * time creates a given customer's session. take answers APR_SUCCESS when
 * the mark is now the caller's, APR_EEXIST when another holds it; anything
 * else means the server could not be asked. A mark lapses by itself after
 * ttl, so that a node that dies holding one blocks nobody for longer. */
typedef struct {
    void *ctx;
    apr_status_t (*take)(void *ctx, const unsigned char *id, unsigned int id_len,
                         apr_interval_time_t ttl, apr_pool_t *p);
    apr_status_t (*release)(void *ctx, const unsigned char *id, unsigned int id_len,
                            apr_pool_t *p);
} pegadm_mark_t;

#endif
