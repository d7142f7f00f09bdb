/* A shared cache server's key-value operations, as the module's own cache
 * clients (Redis/Valkey, memcached) offer them, so that one adapter
 * (pegadm_kvstore) turns any of them into the session store and the
 * create mark. Keys and values are byte strings (keys not NUL-terminated).
 *
 * Every operation answers within the client's deadline. Besides the results
 * named below, any other status means the server could not be used (the
 * codes of pegadm_cacheerr.h: timeout, refused, tls, auth, ...), never a
 * miss, and the caller must treat the key's state as unknown.
 *
 * The signatures, exactly:
 *
 *   apr_status_t get(void *ctx, const char *key, apr_size_t key_len,
 *                    unsigned char *buf, apr_size_t *len, apr_pool_t *p);
 *     *len is buf's size in, the value's size out. APR_SUCCESS: the value
 *     is in buf. APR_NOTFOUND: a real miss (the server answered that the
 *     key is absent), and only then. A value larger than *len in is
 *     refused (PEGADM_CACHE_PROTOCOL), never truncated.
 *
 *   apr_status_t set(void *ctx, const char *key, apr_size_t key_len,
 *                    const unsigned char *val, apr_size_t len,
 *                    apr_interval_time_t ttl, apr_pool_t *p);
 *     Stores val whatever was there, expiring after ttl (> 0; rounded up
 *     to what the server can express: ms for Redis, s for memcached).
 *
 *   apr_status_t del(void *ctx, const char *key, apr_size_t key_len,
 *                    apr_pool_t *p);
 *     APR_SUCCESS whether or not the key existed.
 *
 *   apr_status_t add(void *ctx, const char *key, apr_size_t key_len,
 *                    const unsigned char *val, apr_size_t len,
 *                    apr_interval_time_t ttl, apr_pool_t *p);
 *     Stores val with expiry ttl only if the key is absent, atomically on
 *     the server (Redis SET NX PX, memcached add). APR_SUCCESS: stored.
 *     APR_EEXIST: the key is present (nothing changed).
 *
 *   apr_status_t del_if(void *ctx, const char *key, apr_size_t key_len,
 *                       const unsigned char *val, apr_size_t len,
 *                       apr_pool_t *p);
 *     Deletes the key only if it holds exactly val, atomically on the
 *     server (Redis: a compare-and-delete script; memcached: gets + delete
 *     by cas). APR_SUCCESS: deleted. APR_NOTFOUND: absent, or holding
 *     another value (left as it is).
 *
 * p is for the call's scratch allocations only; nothing of it is kept past
 * the call. ctx is the client; the functions are thread-safe. */
#ifndef PEGADM_KV_H
#define PEGADM_KV_H

#include <apr_pools.h>
#include <apr_time.h>

typedef struct {
    void *ctx;
    apr_status_t (*get)(void *ctx, const char *key, apr_size_t key_len, unsigned char *buf,
                        apr_size_t *len, apr_pool_t *p);
    apr_status_t (*set)(void *ctx, const char *key, apr_size_t key_len,
                        const unsigned char *val, apr_size_t len, apr_interval_time_t ttl,
                        apr_pool_t *p);
    apr_status_t (*del)(void *ctx, const char *key, apr_size_t key_len, apr_pool_t *p);
    apr_status_t (*add)(void *ctx, const char *key, apr_size_t key_len,
                        const unsigned char *val, apr_size_t len, apr_interval_time_t ttl,
                        apr_pool_t *p);
    apr_status_t (*del_if)(void *ctx, const char *key, apr_size_t key_len,
                           const unsigned char *val, apr_size_t len, apr_pool_t *p);
} pegadm_kv_t;

#endif
