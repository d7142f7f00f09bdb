/* The per-process read cache: copies are used while their generation
 * holds, until they expire or grow older than max_age; a change made
 * through any other cache sharing the generations invalidates them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <apr_general.h>
#include <apr_pools.h>

#include "pegadm_localcache.h"
#include "pegadm_test_pool.h"

static apr_uint32_t generations[PEGADM_LOCALCACHE_BUCKETS];

static void id_of(unsigned char id[PEGADM_CACHE_ID_LEN], unsigned char seed)
{
    for (int i = 0; i < PEGADM_CACHE_ID_LEN; i++) {
        id[i] = (unsigned char)(seed * 31 + i * 7);
    }
}

static pegadm_localcache_t *cache(apr_pool_t *p, apr_interval_time_t max_age)
{
    pegadm_localcache_t *lc = NULL;
    assert_int_equal(pegadm_localcache_create(p, 100, generations, max_age, &lc), APR_SUCCESS);
    return lc;
}

static void test_a_copy_is_used_until_it_expires(void **state)
{
    apr_pool_t *p = *state;
    pegadm_localcache_t *lc = cache(p, 0);
    unsigned char id[PEGADM_CACHE_ID_LEN];
    apr_time_t now = apr_time_from_sec(1000);

    id_of(id, 1);
    assert_null(pegadm_localcache_get(lc, id, now, p));
    pegadm_localcache_put(lc, id, pegadm_localcache_generation(lc, id), "sess-1", now,
                          now + apr_time_from_sec(60));
    assert_string_equal(pegadm_localcache_get(lc, id, now + apr_time_from_sec(59), p),
                        "sess-1");
    assert_null(pegadm_localcache_get(lc, id, now + apr_time_from_sec(60), p));
}

static void test_max_age_bounds_a_copy(void **state)
{
    apr_pool_t *p = *state;
    pegadm_localcache_t *lc = cache(p, apr_time_from_msec(1000));
    unsigned char id[PEGADM_CACHE_ID_LEN];
    apr_time_t now = apr_time_from_sec(1000);

    id_of(id, 2);
    pegadm_localcache_put(lc, id, pegadm_localcache_generation(lc, id), "sess-2", now,
                          now + apr_time_from_sec(60));
    assert_non_null(pegadm_localcache_get(lc, id, now + apr_time_from_msec(999), p));
    assert_null(pegadm_localcache_get(lc, id, now + apr_time_from_msec(1000), p));
}

/* Two processes: what one changes, the other's copy no longer answers. */
static void test_a_change_anywhere_invalidates_the_copy(void **state)
{
    apr_pool_t *p = *state;
    pegadm_localcache_t *reader = cache(p, 0), *writer = cache(p, 0);
    unsigned char id[PEGADM_CACHE_ID_LEN], other[PEGADM_CACHE_ID_LEN];
    apr_time_t now = apr_time_from_sec(1000);

    id_of(id, 3);
    id_of(other, 4);
    pegadm_localcache_put(reader, id, pegadm_localcache_generation(reader, id), "sess-3", now,
                          now + apr_time_from_sec(60));
    pegadm_localcache_put(reader, other, pegadm_localcache_generation(reader, other), "sess-4",
                          now, now + apr_time_from_sec(60));
    pegadm_localcache_changed(writer, id);
    assert_null(pegadm_localcache_get(reader, id, now, p));
    assert_string_equal(pegadm_localcache_get(reader, other, now, p), "sess-4");
}

/* A copy read before a change, stored after it, is never used: its
 * generation was taken before the store was read. */
static void test_a_copy_read_before_a_change_is_not_used(void **state)
{
    apr_pool_t *p = *state;
    pegadm_localcache_t *reader = cache(p, 0), *writer = cache(p, 0);
    unsigned char id[PEGADM_CACHE_ID_LEN];
    apr_time_t now = apr_time_from_sec(1000);
    apr_uint32_t gen;

    id_of(id, 5);
    gen = pegadm_localcache_generation(reader, id);
    pegadm_localcache_changed(writer, id); /* lands between the read and the put */
    pegadm_localcache_put(reader, id, gen, "stale", now, now + apr_time_from_sec(60));
    assert_null(pegadm_localcache_get(reader, id, now, p));
}

static void test_a_slot_answers_for_its_own_key_only(void **state)
{
    apr_pool_t *p = *state;
    pegadm_localcache_t *lc = cache(p, 0);
    unsigned char a[PEGADM_CACHE_ID_LEN], b[PEGADM_CACHE_ID_LEN];
    apr_time_t now = apr_time_from_sec(1000);
    char too_long[PEGADM_SESSION_ID_MAX + 2];

    id_of(a, 6);
    memcpy(b, a, sizeof(b));
    b[31] ^= 1; /* same bucket and slot, another key */
    pegadm_localcache_put(lc, a, pegadm_localcache_generation(lc, a), "sess-a", now,
                          now + apr_time_from_sec(60));
    assert_null(pegadm_localcache_get(lc, b, now, p));
    pegadm_localcache_put(lc, b, pegadm_localcache_generation(lc, b), "sess-b", now,
                          now + apr_time_from_sec(60));
    assert_null(pegadm_localcache_get(lc, a, now, p)); /* evicted */
    assert_string_equal(pegadm_localcache_get(lc, b, now, p), "sess-b");
    memset(too_long, 'x', sizeof(too_long) - 1);
    too_long[sizeof(too_long) - 1] = '\0';
    pegadm_localcache_put(lc, b, pegadm_localcache_generation(lc, b), too_long, now,
                          now + apr_time_from_sec(60));
    assert_string_equal(pegadm_localcache_get(lc, b, now, p), "sess-b");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        POOL_TEST(test_a_copy_is_used_until_it_expires),
        POOL_TEST(test_max_age_bounds_a_copy),
        POOL_TEST(test_a_change_anywhere_invalidates_the_copy),
        POOL_TEST(test_a_copy_read_before_a_change_is_not_used),
        POOL_TEST(test_a_slot_answers_for_its_own_key_only),
    };
    int failed;

    apr_initialize();
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    apr_terminate();
    return failed;
}
