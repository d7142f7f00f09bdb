/* The per-process read cache (pegadm_localcache.h): a direct-mapped table,
 * its slots guarded by a few mutexes of this process only. */
#include "pegadm_localcache.h"

#include <stdlib.h>
#include <string.h>

#include <apr_atomic.h>
#include <apr_general.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>

#include "pegadm_dm.h"
#include "pegadm_identity.h"

#define STRIPES 64

typedef struct {
    apr_uint64_t a, b;
} customer_key_t;

typedef struct {
    customer_key_t key;
    apr_time_t valid_until;
    apr_uint32_t gen;
    unsigned char used;
    char sid[PEGADM_SESSION_ID_MAX + 1];
} slot_t;

struct pegadm_localcache {
    volatile apr_uint32_t *gens;
    const unsigned char *hash_key; /* two SipHash keys */
    apr_interval_time_t max_age;
    apr_uint32_t mask; /* slots - 1 */
    slot_t *slots;
    apr_thread_mutex_t *stripes[STRIPES];
};

static apr_uint64_t le64(const unsigned char *p)
{
    apr_uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

#define ROTL(x, b) (apr_uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                               \
    do {                                                                                       \
        v0 += v1;                                                                              \
        v1 = ROTL(v1, 13);                                                                     \
        v1 ^= v0;                                                                              \
        v0 = ROTL(v0, 32);                                                                     \
        v2 += v3;                                                                              \
        v3 = ROTL(v3, 16);                                                                     \
        v3 ^= v2;                                                                              \
        v0 += v3;                                                                              \
        v3 = ROTL(v3, 21);                                                                     \
        v3 ^= v0;                                                                              \
        v2 += v1;                                                                              \
        v1 = ROTL(v1, 17);                                                                     \
        v1 ^= v2;                                                                              \
        v2 = ROTL(v2, 32);                                                                     \
    } while (0)

apr_uint64_t pegadm_siphash24(const unsigned char *in, apr_size_t len,
                              const unsigned char k[16])
{
    apr_uint64_t k0 = le64(k), k1 = le64(k + 8);
    apr_uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    apr_uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    apr_uint64_t last = (apr_uint64_t)len << 56;
    apr_size_t whole = len - len % 8;

    for (apr_size_t i = 0; i < whole; i += 8) {
        apr_uint64_t m = le64(in + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    for (apr_size_t i = whole; i < len; i++) {
        last |= (apr_uint64_t)in[i] << (8 * (i - whole));
    }
    v3 ^= last;
    SIPROUND;
    SIPROUND;
    v0 ^= last;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* The NUL after the widget ID makes the encoding unambiguous. */
static customer_key_t key_of(const pegadm_localcache_t *lc, const char *widget_id,
                             const char *customer_id)
{
    unsigned char buf[64 + 1 + PEGADM_CUSTOMER_ID_MAX];
    apr_size_t wlen = strlen(widget_id), clen = strlen(customer_id);
    customer_key_t key = {0, 0};

    if (wlen > 64 || clen > PEGADM_CUSTOMER_ID_MAX) {
        return key; /* never cached: see usable() */
    }
    memcpy(buf, widget_id, wlen);
    buf[wlen] = '\0';
    memcpy(buf + wlen + 1, customer_id, clen);
    key.a = pegadm_siphash24(buf, wlen + 1 + clen, lc->hash_key);
    key.b = pegadm_siphash24(buf, wlen + 1 + clen, lc->hash_key + 16);
    return key;
}

static int usable(customer_key_t key)
{
    return key.a || key.b;
}

static volatile apr_uint32_t *gen_of(const pegadm_localcache_t *lc, customer_key_t key)
{
    return &lc->gens[key.b % PEGADM_LOCALCACHE_BUCKETS];
}

static apr_status_t free_slots(void *slots)
{
    free(slots);
    return APR_SUCCESS;
}

apr_size_t pegadm_localcache_bytes_per_customer(void)
{
    return sizeof(slot_t);
}

apr_status_t pegadm_localcache_init_shared(void *shared)
{
    unsigned char *key =
        (unsigned char *)shared + PEGADM_LOCALCACHE_BUCKETS * sizeof(apr_uint32_t);
    memset(shared, 0, PEGADM_LOCALCACHE_BUCKETS * sizeof(apr_uint32_t));
    return apr_generate_random_bytes(key, PEGADM_LOCALCACHE_KEY_LEN);
}

apr_status_t pegadm_localcache_create(apr_pool_t *p, apr_uint32_t customers, void *shared,
                                      apr_interval_time_t max_age, pegadm_localcache_t **out)
{
    pegadm_localcache_t *lc = apr_pcalloc(p, sizeof(*lc));
    apr_uint32_t slots = 1;

    while (slots < customers && slots < 0x40000000u) {
        slots <<= 1;
    }
    lc->gens = shared;
    lc->hash_key =
        (const unsigned char *)shared + PEGADM_LOCALCACHE_BUCKETS * sizeof(apr_uint32_t);
    lc->max_age = max_age;
    lc->mask = slots - 1;
    /* calloc: untouched slots cost no memory (zero pages, mapped on use) */
    lc->slots = calloc(slots, sizeof(slot_t));
    if (!lc->slots) {
        return APR_ENOMEM;
    }
    apr_pool_cleanup_register(p, lc->slots, free_slots, apr_pool_cleanup_null);
    for (int i = 0; i < STRIPES; i++) {
        apr_status_t rv = apr_thread_mutex_create(&lc->stripes[i], APR_THREAD_MUTEX_DEFAULT, p);
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    *out = lc;
    return APR_SUCCESS;
}

const char *pegadm_localcache_get(pegadm_localcache_t *lc, const char *widget_id,
                                  const char *customer_id, apr_time_t now, apr_pool_t *p,
                                  apr_uint32_t *gen)
{
    customer_key_t key = key_of(lc, widget_id, customer_id);
    apr_uint32_t n = (apr_uint32_t)key.a & lc->mask;
    slot_t *s = &lc->slots[n];
    const char *sid = NULL;

    *gen = apr_atomic_read32(gen_of(lc, key));
    if (!usable(key)) {
        return NULL;
    }
    apr_thread_mutex_lock(lc->stripes[n % STRIPES]);
    if (s->used && s->gen == *gen && now < s->valid_until && s->key.a == key.a &&
        s->key.b == key.b) {
        sid = apr_pstrdup(p, s->sid);
    }
    apr_thread_mutex_unlock(lc->stripes[n % STRIPES]);
    return sid;
}

void pegadm_localcache_put(pegadm_localcache_t *lc, const char *widget_id,
                           const char *customer_id, apr_uint32_t gen, const char *sid,
                           apr_time_t now, apr_time_t expires)
{
    customer_key_t key = key_of(lc, widget_id, customer_id);
    apr_uint32_t n = (apr_uint32_t)key.a & lc->mask;
    apr_size_t len = strlen(sid);
    slot_t *s = &lc->slots[n];

    if (!usable(key) || len > PEGADM_SESSION_ID_MAX) {
        return;
    }
    if (lc->max_age && now + lc->max_age < expires) {
        expires = now + lc->max_age;
    }
    apr_thread_mutex_lock(lc->stripes[n % STRIPES]);
    s->key = key;
    memcpy(s->sid, sid, len + 1);
    s->gen = gen;
    s->valid_until = expires;
    s->used = 1;
    apr_thread_mutex_unlock(lc->stripes[n % STRIPES]);
}

void pegadm_localcache_changed(pegadm_localcache_t *lc, const char *widget_id,
                               const char *customer_id)
{
    apr_atomic_inc32(gen_of(lc, key_of(lc, widget_id, customer_id)));
}
