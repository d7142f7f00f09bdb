/* pegadm_kvstore: key building, expiry, and the mark's value checks. */
#include <string.h>

#include <apr_strings.h>

#include "pegadm_bytes.h"
#include "pegadm_cacheerr.h"
#include "pegadm_kvstore.h"

#define PREFIX_MAX 64
#define KEY_MAX    512
/* Clocks of the nodes sharing a cache differ a little: a mark that says it
 * lapses up to this much later than a full TTL from now is still taken for
 * one of ours, not for a forgery. */
#define MARK_CLOCK_SLACK apr_time_from_sec(1)

apr_size_t pegadm_kvstore_key(const pegadm_kvstore_t *ks, const pegadm_store_key_t *key,
                              char *out, apr_size_t size)
{
    static const char hex[] = "0123456789abcdef";
    apr_size_t n = strlen(ks->prefix);
    apr_size_t need =
        n + (key->tag_len ? (apr_size_t)key->tag_len * 2 + 3 : 0) + (apr_size_t)key->id_len * 2;

    if (need >= size) {
        return 0;
    }
    memcpy(out, ks->prefix, n);
    if (key->tag_len) {
        out[n++] = '{';
        for (unsigned int i = 0; i < key->tag_len; i++) {
            out[n++] = hex[key->tag[i] >> 4];
            out[n++] = hex[key->tag[i] & 15];
        }
        out[n++] = '}';
        out[n++] = ':';
    }
    for (unsigned int i = 0; i < key->id_len; i++) {
        out[n++] = hex[key->id[i] >> 4];
        out[n++] = hex[key->id[i] & 15];
    }
    out[n] = '\0';
    return n;
}

/* ---- the store ---- */

static apr_status_t kvs_lock(void *ctx)
{
    pegadm_kvstore_t *ks = ctx;
    return ks->lock ? ks->lock(ks->lock_ctx) : APR_SUCCESS;
}

static apr_status_t kvs_unlock(void *ctx)
{
    pegadm_kvstore_t *ks = ctx;
    return ks->unlock ? ks->unlock(ks->lock_ctx) : APR_SUCCESS;
}

static apr_status_t kvs_get(void *ctx, const pegadm_store_key_t *key, unsigned char *buf,
                            unsigned int *len, apr_pool_t *p)
{
    pegadm_kvstore_t *ks = ctx;
    char k[KEY_MAX];
    apr_size_t klen = pegadm_kvstore_key(ks, key, k, sizeof(k)), vlen = *len;
    apr_status_t rv;

    if (!klen) {
        return APR_EINVAL;
    }
    rv = ks->kv.get(ks->kv.ctx, k, klen, buf, &vlen, p);
    if (rv == PEGADM_CACHE_PROTOCOL && ks->kv.del(ks->kv.ctx, k, klen, p) == APR_SUCCESS) {
        /* a value no entry can be (too large, a Redis key of another
         * type) is no outage while the server answers: removed, and read
         * as an entry that fails authentication */
        vlen = 0;
        rv = APR_SUCCESS;
    }
    if (rv == APR_SUCCESS) {
        *len = (unsigned int)vlen;
    }
    return rv;
}

/* An entry whose expiry has passed is as good as none: removed. */
static apr_status_t kvs_put(void *ctx, const pegadm_store_key_t *key, apr_time_t expiry,
                            const unsigned char *val, unsigned int len, apr_pool_t *p)
{
    pegadm_kvstore_t *ks = ctx;
    char k[KEY_MAX];
    apr_size_t klen = pegadm_kvstore_key(ks, key, k, sizeof(k));
    apr_interval_time_t ttl = expiry - apr_time_now();

    if (!klen) {
        return APR_EINVAL;
    }
    if (ttl <= 0) {
        return ks->kv.del(ks->kv.ctx, k, klen, p);
    }
    return ks->kv.set(ks->kv.ctx, k, klen, val, len, ttl, p);
}

static apr_status_t kvs_del(void *ctx, const pegadm_store_key_t *key, apr_pool_t *p)
{
    pegadm_kvstore_t *ks = ctx;
    char k[KEY_MAX];
    apr_size_t klen = pegadm_kvstore_key(ks, key, k, sizeof(k));

    return klen ? ks->kv.del(ks->kv.ctx, k, klen, p) : APR_EINVAL;
}

/* ---- the mark ---- */

/* Whether a mark's value found at now can be a live mark of any node's:
 * our layout, lapsing after now and no later than a full TTL ahead. */
static int mark_is_live(const unsigned char *val, apr_size_t len, apr_time_t now,
                        apr_interval_time_t ttl)
{
    apr_time_t lapses;

    if (len != PEGADM_KVSTORE_MARK_LEN) {
        return 0;
    }
    lapses = (apr_time_t)pegadm_get_be(val + PEGADM_MARK_TOKEN_LEN, 8);
    return lapses > now && lapses <= now + ttl + MARK_CLOCK_SLACK;
}

/* After an add found the mark held: removes it if it cannot be a live one
 * (exactly the value read, so that a mark taken meanwhile stays), then
 * tries once more. */
static apr_status_t take_over(pegadm_kvstore_t *ks, const char *k, apr_size_t klen,
                              const unsigned char *mine, apr_interval_time_t ttl, apr_pool_t *p)
{
    unsigned char found[PEGADM_KVSTORE_MARK_LEN + 1];
    apr_size_t len = sizeof(found);
    apr_status_t rv = ks->kv.get(ks->kv.ctx, k, klen, found, &len, p);

    if (rv == PEGADM_CACHE_PROTOCOL) {
        /* larger than any mark: not one; removed whatever it holds */
        rv = ks->kv.del(ks->kv.ctx, k, klen, p);
    } else if (rv == APR_SUCCESS) {
        if (mark_is_live(found, len, apr_time_now(), ttl)) {
            return APR_EEXIST;
        }
        rv = ks->kv.del_if(ks->kv.ctx, k, klen, found, len, p);
        rv = rv == APR_NOTFOUND ? APR_SUCCESS : rv;
    } else if (rv == APR_NOTFOUND) {
        rv = APR_SUCCESS; /* lapsed meanwhile */
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    return ks->kv.add(ks->kv.ctx, k, klen, mine, PEGADM_KVSTORE_MARK_LEN, ttl, p);
}

static apr_status_t kvs_take(void *ctx, const pegadm_store_key_t *key,
                             const unsigned char *token, apr_interval_time_t ttl, apr_pool_t *p)
{
    pegadm_kvstore_t *ks = ctx;
    unsigned char mine[PEGADM_KVSTORE_MARK_LEN];
    char k[KEY_MAX];
    apr_size_t klen = pegadm_kvstore_key(ks, key, k, sizeof(k));
    apr_status_t rv;

    if (!klen) {
        return APR_EINVAL;
    }
    memcpy(mine, token, PEGADM_MARK_TOKEN_LEN);
    pegadm_put_be(mine + PEGADM_MARK_TOKEN_LEN, (apr_uint64_t)(apr_time_now() + ttl), 8);
    rv = ks->kv.add(ks->kv.ctx, k, klen, mine, sizeof(mine), ttl, p);
    return rv == APR_EEXIST ? take_over(ks, k, klen, mine, ttl, p) : rv;
}

/* The value holds the lapse time the taker wrote, which only the server
 * knows now: read, then deleted only if it is still exactly that. */
static apr_status_t kvs_release(void *ctx, const pegadm_store_key_t *key,
                                const unsigned char *token, apr_pool_t *p)
{
    pegadm_kvstore_t *ks = ctx;
    unsigned char found[PEGADM_KVSTORE_MARK_LEN + 1];
    apr_size_t len = sizeof(found);
    char k[KEY_MAX];
    apr_size_t klen = pegadm_kvstore_key(ks, key, k, sizeof(k));
    apr_status_t rv;

    if (!klen) {
        return APR_EINVAL;
    }
    rv = ks->kv.get(ks->kv.ctx, k, klen, found, &len, p);
    if (rv != APR_SUCCESS) {
        return rv == PEGADM_CACHE_PROTOCOL ? APR_NOTFOUND : rv; /* not ours */
    }
    if (len != PEGADM_KVSTORE_MARK_LEN || memcmp(found, token, PEGADM_MARK_TOKEN_LEN) != 0) {
        return APR_NOTFOUND; /* another's */
    }
    return ks->kv.del_if(ks->kv.ctx, k, klen, found, len, p);
}

pegadm_kvstore_t *pegadm_kvstore_create(apr_pool_t *p, const pegadm_kv_t *kv,
                                        const char *prefix,
                                        apr_status_t (*lock)(void *lock_ctx),
                                        apr_status_t (*unlock)(void *lock_ctx), void *lock_ctx)
{
    pegadm_kvstore_t *ks;

    if (strlen(prefix) > PREFIX_MAX) {
        return NULL;
    }
    ks = apr_pcalloc(p, sizeof(*ks));
    ks->kv = *kv;
    ks->prefix = apr_pstrdup(p, prefix);
    ks->lock = lock;
    ks->unlock = unlock;
    ks->lock_ctx = lock_ctx;
    ks->store = (pegadm_store_t){ks, kvs_lock, kvs_unlock, kvs_get, kvs_put, kvs_del};
    ks->mark = (pegadm_mark_t){ks, kvs_take, kvs_release};
    return ks;
}
