/* The session store (pegadm_store_t) and the cross-node create mark
 * (pegadm_mark_t) over a shared cache server's key-value operations
 * (pegadm_kv_t: the module's Redis/Valkey or memcached client).
 *
 * Keys are "<prefix>{<tag in hex>}:<id in hex>" (without the braces and
 * colon for a key of no customer), so that all of one customer's keys share
 * a Redis Cluster hash slot. Entries expire on the server at their expiry.
 *
 * A mark holds the taker's token and the time it lapses; it is taken with
 * add (SET NX PX, memcached add) and released with del_if, only while it
 * holds the token. A mark found that cannot be one of ours (a foreign
 * value, or a lapse time past or further than the TTL ahead: a cache writer
 * that stored it without expiry, or copied it) is removed by the next take,
 * so that no customer is blocked longer than the mark's TTL.
 *
 * A value that cannot be an entry (larger than the buffer, a Redis key of
 * another type) is removed and read as an empty entry, which fails
 * authentication: it is no outage while the server answers.
 *
 * The store's lock is the caller's (the node mutex); the server needs none
 * for the mark. */
#ifndef PEGADM_KVSTORE_H
#define PEGADM_KVSTORE_H

#include <apr_pools.h>

#include "pegadm_kv.h"
#include "pegadm_store.h"

/* Bytes of a mark's value: the token, then when it lapses (microseconds
 * since the epoch, big-endian). */
#define PEGADM_KVSTORE_MARK_LEN (PEGADM_MARK_TOKEN_LEN + 8)

typedef struct {
    pegadm_store_t store; /* ctx: this */
    pegadm_mark_t mark;   /* ctx: this */
    pegadm_kv_t kv;
    const char *prefix;
    apr_status_t (*lock)(void *lock_ctx);
    apr_status_t (*unlock)(void *lock_ctx);
    void *lock_ctx;
} pegadm_kvstore_t;

/* A store and a mark over kv, in p. prefix (copied; at most 64 bytes, e.g.
 * "pegadm:") starts every key. lock and unlock (NULL: none) serialise the
 * session flow's read-modify-write sequences on this node. NULL if prefix
 * is too long. */
pegadm_kvstore_t *pegadm_kvstore_create(apr_pool_t *p, const pegadm_kv_t *kv,
                                        const char *prefix,
                                        apr_status_t (*lock)(void *lock_ctx),
                                        apr_status_t (*unlock)(void *lock_ctx), void *lock_ctx);

/* The server's key for key, into out (size bytes); its length, or 0 when
 * it does not fit. For tests and tools that look at the server. */
apr_size_t pegadm_kvstore_key(const pegadm_kvstore_t *ks, const pegadm_store_key_t *key,
                              char *out, apr_size_t size);

#endif
