/* The per-process read cache (pegadm_localcache.h): a set-associative
 * table of WAYS copies per set, the keys of a set in two cache lines apart
 * from their copies, the sets guarded by a few mutexes of this process
 * only. A set with no free way gives up its oldest copy. */
#include "pegadm_localcache.h"

#include <stdlib.h>
#include <string.h>

#include <apr_atomic.h>
#include <apr_general.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>

#include "pegadm_dm.h"
#include "pegadm_identity.h"

#define STRIPES 256
#define WAYS    8
/* Slots per customer. A table this full loses about 0.8% of its
 * customers to sets that overflow (of 8 ways, at random; a direct-mapped
 * table as full loses 21%). */
#define SLOTS_PER_CUSTOMER 2
#define LINE               64

typedef struct {
    apr_uint64_t a, b;
} customer_key_t;

typedef struct {
    apr_time_t valid_until;
    customer_key_t cookie; /* tag of a logout cookie known to name the customer */
    unsigned char digest[PEGADM_DATA_DIGEST_LEN];
    apr_uint32_t gen;
    unsigned char digest_known;
    unsigned char cookie_known;
    char sid[PEGADM_SESSION_ID_MAX + 1];
} copy_t;

typedef struct {
    customer_key_t key[WAYS]; /* {0, 0}: a free way */
} set_t;

struct pegadm_localcache {
    volatile apr_uint32_t *gens;
    const unsigned char *hash_key; /* two SipHash keys */
    apr_interval_time_t max_age;
    apr_uint32_t sets;
    set_t *keys;          /* sets, each one cache line */
    copy_t *copies;       /* sets * WAYS */
    unsigned char *hands; /* per set: the way to give up next */
    void *memory;
    apr_thread_mutex_t *stripes[STRIPES];
};

static apr_uint64_t le64(const unsigned char *p)
{
    apr_uint64_t v;
    memcpy(&v, p, sizeof(v)); /* one load */
#if APR_IS_BIGENDIAN
    v = __builtin_bswap64(v);
#endif
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

/* SipHash-2-4 of in under the key k: the 64-bit output, or with out128
 * the 128-bit variant (its first half in the return value, the second in
 * *out128). */
static apr_uint64_t siphash(const unsigned char *in, apr_size_t len, const unsigned char k[16],
                            apr_uint64_t *out128)
{
    apr_uint64_t k0 = le64(k), k1 = le64(k + 8);
    apr_uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    apr_uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    apr_uint64_t last = (apr_uint64_t)len << 56, first;
    apr_size_t whole = len - len % 8;

    if (out128) {
        v1 ^= 0xee;
    }
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
    v2 ^= out128 ? 0xee : 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    first = v0 ^ v1 ^ v2 ^ v3;
    if (out128) {
        v1 ^= 0xdd;
        SIPROUND;
        SIPROUND;
        SIPROUND;
        SIPROUND;
        *out128 = v0 ^ v1 ^ v2 ^ v3;
    }
    return first;
}

apr_uint64_t pegadm_siphash24(const unsigned char *in, apr_size_t len,
                              const unsigned char k[16])
{
    return siphash(in, len, k, NULL);
}

void pegadm_siphash24_128(const unsigned char *in, apr_size_t len, const unsigned char k[16],
                          unsigned char out[16])
{
    apr_uint64_t b, a = siphash(in, len, k, &b);
    for (int i = 0; i < 8; i++) {
        out[i] = (unsigned char)(a >> (8 * i));
        out[8 + i] = (unsigned char)(b >> (8 * i));
    }
}

/* The NUL after the widget ID makes the encoding unambiguous: one 128-bit
 * SipHash under the first key. */
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
    key.a = siphash(buf, wlen + 1 + clen, lc->hash_key, &key.b);
    return key;
}
static int usable(customer_key_t key)
{
    return key.a || key.b;
}

static int same_key(customer_key_t x, customer_key_t y)
{
    return x.a == y.a && x.b == y.b;
}

/* The bucket of generations: from other bits than the set's. */
static volatile apr_uint32_t *gen_of(const pegadm_localcache_t *lc, customer_key_t key)
{
    return &lc->gens[key.b % PEGADM_LOCALCACHE_BUCKETS];
}

static apr_uint32_t set_of(const pegadm_localcache_t *lc, customer_key_t key)
{
    return (apr_uint32_t)(((key.a & 0xffffffffu) * lc->sets) >> 32);
}

static apr_thread_mutex_t *stripe_of(const pegadm_localcache_t *lc, apr_uint32_t set)
{
    return lc->stripes[set % STRIPES];
}

/* Under the set's stripe: the way holding key, or -1. */
static int way_of(const pegadm_localcache_t *lc, apr_uint32_t set, customer_key_t key)
{
    const set_t *keys = &lc->keys[set];
    for (int w = 0; w < WAYS; w++) {
        if (same_key(keys->key[w], key)) {
            return w;
        }
    }
    return -1;
}

static copy_t *copy_at(const pegadm_localcache_t *lc, apr_uint32_t set, int way)
{
    return &lc->copies[(apr_size_t)set * WAYS + (apr_size_t)way];
}

static apr_status_t free_memory(void *memory)
{
    free(memory);
    return APR_SUCCESS;
}

apr_size_t pegadm_localcache_bytes_per_customer(void)
{
    return SLOTS_PER_CUSTOMER * (sizeof(copy_t) + sizeof(customer_key_t));
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
    apr_uint64_t slots = (apr_uint64_t)(customers ? customers : 1) * SLOTS_PER_CUSTOMER;
    apr_size_t keys_size, copies_size;
    unsigned char *m;

    lc->sets = (apr_uint32_t)((slots + WAYS - 1) / WAYS);
    lc->gens = shared;
    lc->hash_key =
        (const unsigned char *)shared + PEGADM_LOCALCACHE_BUCKETS * sizeof(apr_uint32_t);
    lc->max_age = max_age;
    keys_size = (apr_size_t)lc->sets * sizeof(set_t);
    copies_size = (apr_size_t)lc->sets * WAYS * sizeof(copy_t);
    /* calloc: untouched sets cost no memory (zero pages, mapped on use);
     * the keys aligned on a cache line */
    lc->memory = calloc(1, LINE + keys_size + copies_size + lc->sets);
    if (!lc->memory) {
        return APR_ENOMEM;
    }
    apr_pool_cleanup_register(p, lc->memory, free_memory, apr_pool_cleanup_null);
    m = (unsigned char *)lc->memory + (LINE - (apr_uintptr_t)lc->memory % LINE);
    lc->keys = (set_t *)m;
    lc->copies = (copy_t *)(m + keys_size);
    lc->hands = m + keys_size + copies_size;
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
                                  const char *customer_id, const unsigned char *digest,
                                  apr_time_t now, apr_pool_t *p, apr_uint32_t *gen)
{
    customer_key_t key = key_of(lc, widget_id, customer_id);
    apr_uint32_t set = set_of(lc, key);
    const char *sid = NULL;
    int w;

    *gen = apr_atomic_read32(gen_of(lc, key));
    if (!usable(key)) {
        return NULL;
    }
    apr_thread_mutex_lock(stripe_of(lc, set));
    w = way_of(lc, set, key);
    if (w >= 0) {
        const copy_t *c = copy_at(lc, set, w);
        if (c->gen == *gen && now < c->valid_until &&
            (!digest ||
             (c->digest_known && !memcmp(c->digest, digest, PEGADM_DATA_DIGEST_LEN)))) {
            sid = apr_pstrdup(p, c->sid);
        }
    }
    apr_thread_mutex_unlock(stripe_of(lc, set));
    return sid;
}

/* Under the set's stripe: the way to (re)use for key: its own (which keeps
 * its cookie tag), else a
 * free way first, then one whose
 * copy is past its time, then the oldest taken. */
static int way_for(pegadm_localcache_t *lc, apr_uint32_t set, customer_key_t key,
                   apr_time_t now)
{
    set_t *keys = &lc->keys[set];
    int w = way_of(lc, set, key);

    if (w >= 0) {
        return w;
    }
    for (w = 0; w < WAYS; w++) {
        if (!usable(keys->key[w]) || copy_at(lc, set, w)->valid_until <= now) {
            break;
        }
    }
    if (w == WAYS) {
        w = lc->hands[set] % WAYS;
        lc->hands[set] = (unsigned char)((w + 1) % WAYS);
    }
    keys->key[w] = key;
    copy_at(lc, set, w)->cookie_known = 0; /* another customer's */
    return w;
}

void pegadm_localcache_put(pegadm_localcache_t *lc, const char *widget_id,
                           const char *customer_id, apr_uint32_t gen, const char *sid,
                           const unsigned char *digest, apr_time_t now, apr_time_t expires)
{
    customer_key_t key = key_of(lc, widget_id, customer_id);
    apr_uint32_t set = set_of(lc, key);
    apr_size_t len = strlen(sid);
    copy_t *c;

    if (!usable(key) || len > PEGADM_SESSION_ID_MAX) {
        return;
    }
    if (lc->max_age && now + lc->max_age < expires) {
        expires = now + lc->max_age;
    }
    apr_thread_mutex_lock(stripe_of(lc, set));
    c = copy_at(lc, set, way_for(lc, set, key, now));
    memcpy(c->sid, sid, len + 1);
    c->gen = gen;
    c->valid_until = expires;
    c->digest_known = digest != NULL;
    if (digest) {
        memcpy(c->digest, digest, PEGADM_DATA_DIGEST_LEN);
    }
    apr_thread_mutex_unlock(stripe_of(lc, set));
}

apr_uint32_t pegadm_localcache_generation(pegadm_localcache_t *lc, const char *widget_id,
                                          const char *customer_id)
{
    return apr_atomic_read32(gen_of(lc, key_of(lc, widget_id, customer_id)));
}

void pegadm_localcache_changed(pegadm_localcache_t *lc, const char *widget_id,
                               const char *customer_id)
{
    apr_atomic_inc32(gen_of(lc, key_of(lc, widget_id, customer_id)));
}

/* The tag of a logout cookie: a 128-bit SipHash under the second key,
 * which names no customer. */
static customer_key_t cookie_tag(const pegadm_localcache_t *lc, const char *value,
                                 apr_size_t len)
{
    customer_key_t tag;
    tag.a = siphash((const unsigned char *)value, len, lc->hash_key + 16, &tag.b);
    return tag;
}

int pegadm_localcache_cookie_known(pegadm_localcache_t *lc, const char *widget_id,
                                   const char *customer_id, const char *value, apr_size_t len)
{
    customer_key_t key = key_of(lc, widget_id, customer_id), tag = cookie_tag(lc, value, len);
    apr_uint32_t set = set_of(lc, key);
    apr_uint64_t differ = 1;
    int w;

    if (!usable(key)) {
        return 0;
    }
    apr_thread_mutex_lock(stripe_of(lc, set));
    w = way_of(lc, set, key);
    if (w >= 0 && copy_at(lc, set, w)->cookie_known) {
        const copy_t *c = copy_at(lc, set, w);
        /* in constant time: how much of the tag matched says nothing */
        differ = (c->cookie.a ^ tag.a) | (c->cookie.b ^ tag.b);
    }
    apr_thread_mutex_unlock(stripe_of(lc, set));
    return differ == 0;
}

void pegadm_localcache_cookie_note(pegadm_localcache_t *lc, const char *widget_id,
                                   const char *customer_id, const char *value, apr_size_t len)
{
    customer_key_t key = key_of(lc, widget_id, customer_id), tag = cookie_tag(lc, value, len);
    apr_uint32_t set = set_of(lc, key);
    int w;

    if (!usable(key)) {
        return;
    }
    apr_thread_mutex_lock(stripe_of(lc, set));
    w = way_of(lc, set, key);
    if (w >= 0) {
        copy_at(lc, set, w)->cookie = tag;
        copy_at(lc, set, w)->cookie_known = 1;
    }
    apr_thread_mutex_unlock(stripe_of(lc, set));
}
