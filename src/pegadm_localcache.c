/* The per-process read cache (pegadm_localcache.h): a direct-mapped table,
 * its slots guarded by a few mutexes of this process only. */
#include "pegadm_localcache.h"

#include <stdlib.h>
#include <string.h>

#include <apr_atomic.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>

#include "pegadm_bytes.h"

#define STRIPES 64

typedef struct {
    unsigned char id[PEGADM_CACHE_ID_LEN];
    apr_uint32_t gen;
    apr_time_t valid_until;
    unsigned char used;
    char sid[PEGADM_SESSION_ID_MAX + 1];
} slot_t;

struct pegadm_localcache {
    volatile apr_uint32_t *gens;
    apr_interval_time_t max_age;
    apr_uint32_t mask; /* slots - 1 */
    slot_t *slots;
    apr_thread_mutex_t *stripes[STRIPES];
};

/* Keys are HMACs: any of their bytes are uniformly spread. */
static apr_uint32_t bucket_of(const unsigned char *id)
{
    return (apr_uint32_t)pegadm_get_be(id, 4) % PEGADM_LOCALCACHE_BUCKETS;
}

static apr_uint32_t slot_of(const pegadm_localcache_t *lc, const unsigned char *id)
{
    return (apr_uint32_t)pegadm_get_be(id + 4, 4) & lc->mask;
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

apr_status_t pegadm_localcache_create(apr_pool_t *p, apr_uint32_t customers, void *generations,
                                      apr_interval_time_t max_age, pegadm_localcache_t **out)
{
    pegadm_localcache_t *lc = apr_pcalloc(p, sizeof(*lc));
    apr_uint32_t slots = 1;

    while (slots < customers && slots < 0x40000000u) {
        slots <<= 1;
    }
    lc->gens = generations;
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

apr_uint32_t pegadm_localcache_generation(const pegadm_localcache_t *lc,
                                          const unsigned char id[PEGADM_CACHE_ID_LEN])
{
    return apr_atomic_read32(&lc->gens[bucket_of(id)]);
}

const char *pegadm_localcache_get(pegadm_localcache_t *lc,
                                  const unsigned char id[PEGADM_CACHE_ID_LEN], apr_time_t now,
                                  apr_pool_t *p)
{
    apr_uint32_t n = slot_of(lc, id);
    apr_thread_mutex_t *stripe = lc->stripes[n % STRIPES];
    apr_uint32_t gen = pegadm_localcache_generation(lc, id);
    slot_t *s = &lc->slots[n];
    const char *sid = NULL;

    apr_thread_mutex_lock(stripe);
    if (s->used && s->gen == gen && now < s->valid_until && !memcmp(s->id, id, sizeof(s->id))) {
        sid = apr_pstrdup(p, s->sid);
    }
    apr_thread_mutex_unlock(stripe);
    return sid;
}

void pegadm_localcache_put(pegadm_localcache_t *lc, const unsigned char id[PEGADM_CACHE_ID_LEN],
                           apr_uint32_t gen, const char *sid, apr_time_t now,
                           apr_time_t expires)
{
    apr_uint32_t n = slot_of(lc, id);
    apr_thread_mutex_t *stripe = lc->stripes[n % STRIPES];
    apr_size_t len = strlen(sid);
    slot_t *s = &lc->slots[n];

    if (len > PEGADM_SESSION_ID_MAX) {
        return;
    }
    if (lc->max_age && now + lc->max_age < expires) {
        expires = now + lc->max_age;
    }
    apr_thread_mutex_lock(stripe);
    memcpy(s->id, id, sizeof(s->id));
    memcpy(s->sid, sid, len + 1);
    s->gen = gen;
    s->valid_until = expires;
    s->used = 1;
    apr_thread_mutex_unlock(stripe);
}

void pegadm_localcache_changed(pegadm_localcache_t *lc,
                               const unsigned char id[PEGADM_CACHE_ID_LEN])
{
    apr_atomic_inc32(&lc->gens[bucket_of(id)]);
}
