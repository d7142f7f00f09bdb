/* The shared store the session flow (pegadm_session.c) and the circuit
 * breaker (pegadm_breaker.c) keep their records in, and the create lock
 * across nodes that share it: interfaces only, so that the module backs
 * them with httpd's socache, the module's memcached and Redis clients
 * (pegadm_kvstore) and the unit tests with a table in memory. */
#ifndef PEGADM_STORE_H
#define PEGADM_STORE_H

#include <apr_pools.h>
#include <apr_time.h>

/* Where a store files a value. id is the key proper; tag is the same for
 * every key of one customer (tag_len 0 for a key of no customer), so that
 * a clustered cache server keeps a customer's keys in one hash slot: the
 * create mark and the session entry on one node. A store that has no use
 * for it (shmcb) files by the bytes of id alone, as it always has. */
typedef struct {
    const unsigned char *id;
    unsigned int id_len;
    const unsigned char *tag;
    unsigned int tag_len;
} pegadm_store_key_t;

/* A key/value store with expiry and one lock that serialises short
 * read-modify-write sequences (never held across an upstream call).
 * get returns APR_NOTFOUND for a missing entry; any other failure means
 * the store cannot be used. *len is the buffer size in, the value size out. */
typedef struct {
    void *ctx;
    apr_status_t (*lock)(void *ctx);
    apr_status_t (*unlock)(void *ctx);
    apr_status_t (*get)(void *ctx, const pegadm_store_key_t *key, unsigned char *buf,
                        unsigned int *len, apr_pool_t *p);
    apr_status_t (*put)(void *ctx, const pegadm_store_key_t *key, apr_time_t expiry,
                        const unsigned char *val, unsigned int len, apr_pool_t *p);
    apr_status_t (*del)(void *ctx, const pegadm_store_key_t *key, apr_pool_t *p);
} pegadm_store_t;

/* Bytes of a create mark's token: random, made anew for every take. */
#define PEGADM_MARK_TOKEN_LEN 16

/* A mark held by the shared store's server itself, taken atomically with
 * its expiry (Redis SET NX PX, memcached add): of the nodes sharing the
 * store, one at a time creates a given customer's session. take answers
 * APR_SUCCESS when the mark now holds the caller's token, APR_EEXIST when
 * another holds it; anything else means the server could not be asked. A
 * mark lapses by itself after ttl, so that a node that dies holding one
 * blocks nobody for longer; release removes it only while it still holds
 * token (never a mark another took after ours lapsed). */
typedef struct {
    void *ctx;
    apr_status_t (*take)(void *ctx, const pegadm_store_key_t *key, const unsigned char *token,
                         apr_interval_time_t ttl, apr_pool_t *p);
    apr_status_t (*release)(void *ctx, const pegadm_store_key_t *key,
                            const unsigned char *token, apr_pool_t *p);
} pegadm_mark_t;

#endif
