/* The per-process read cache: copies are used while their generation
 * holds, until they expire or grow older than max_age; a change made
 * through any other cache sharing the memory invalidates them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <apr_general.h>
#include <apr_pools.h>

#include "pegadm_localcache.h"
#include "pegadm_test_pool.h"

static unsigned char shared[PEGADM_LOCALCACHE_SHARED_SIZE];
static const char widget[] = "0b6c3d52-5b7a-4c53-9a55-2f6f3c2d8e11";
static const apr_time_t now = APR_USEC_PER_SEC * 1000;

static pegadm_localcache_t *cache(apr_pool_t *p, apr_interval_time_t max_age)
{
    pegadm_localcache_t *lc = NULL;
    assert_int_equal(pegadm_localcache_create(p, 100, shared, max_age, &lc), APR_SUCCESS);
    return lc;
}

static const char *get(pegadm_localcache_t *lc, const char *customer, apr_time_t at,
                       apr_pool_t *p)
{
    apr_uint32_t gen;
    return pegadm_localcache_get(lc, widget, customer, NULL, at, p, &gen);
}

static void put(pegadm_localcache_t *lc, const char *customer, const char *sid)
{
    apr_uint32_t gen;
    apr_pool_t *scratch;
    apr_pool_create(&scratch, NULL);
    pegadm_localcache_get(lc, widget, customer, NULL, now, scratch, &gen);
    apr_pool_destroy(scratch);
    pegadm_localcache_put(lc, widget, customer, gen, sid, NULL, now,
                          now + apr_time_from_sec(60));
}

/* The reference vector of the SipHash paper (key 00..0f, input 00..0e). */
static void test_siphash_matches_the_reference(void **state)
{
    unsigned char key[16], in[15];
    for (int i = 0; i < 16; i++) {
        key[i] = (unsigned char)i;
    }
    for (int i = 0; i < 15; i++) {
        in[i] = (unsigned char)i;
    }
    assert_true(pegadm_siphash24(in, sizeof(in), key) == 0xa129ca6149be45e5ULL);
}

static void test_a_copy_is_used_until_it_expires(void **state)
{
    apr_pool_t *p = *state;
    pegadm_localcache_t *lc = cache(p, 0);

    assert_null(get(lc, "alice", now, p));
    put(lc, "alice", "sess-1");
    assert_string_equal(get(lc, "alice", now + apr_time_from_sec(59), p), "sess-1");
    assert_null(get(lc, "alice", now + apr_time_from_sec(60), p));
}

static void test_max_age_bounds_a_copy(void **state)
{
    apr_pool_t *p = *state;
    pegadm_localcache_t *lc = cache(p, apr_time_from_msec(1000));

    put(lc, "bob", "sess-2");
    assert_non_null(get(lc, "bob", now + apr_time_from_msec(999), p));
    assert_null(get(lc, "bob", now + apr_time_from_msec(1000), p));
}

/* Two processes: what one changes, the other's copy no longer answers. */
static void test_a_change_anywhere_invalidates_the_copy(void **state)
{
    apr_pool_t *p = *state;
    pegadm_localcache_t *reader = cache(p, 0), *writer = cache(p, 0);

    put(reader, "carol", "sess-3");
    put(reader, "dave", "sess-4");
    pegadm_localcache_changed(writer, widget, "carol");
    assert_null(get(reader, "carol", now, p));
    assert_string_equal(get(reader, "dave", now, p), "sess-4");
}

/* A copy read before a change, stored after it, is never used: its
 * generation was taken before the store was read. */
static void test_a_copy_read_before_a_change_is_not_used(void **state)
{
    apr_pool_t *p = *state;
    pegadm_localcache_t *reader = cache(p, 0), *writer = cache(p, 0);
    apr_uint32_t gen;

    assert_null(pegadm_localcache_get(reader, widget, "erin", NULL, now, p, &gen));
    pegadm_localcache_changed(writer, widget, "erin"); /* between the read and the put */
    pegadm_localcache_put(reader, widget, "erin", gen, "stale", NULL, now,
                          now + apr_time_from_sec(60));
    assert_null(get(reader, "erin", now, p));
}

/* Customers, and the same customer of two widgets, never share a copy;
 * a table smaller than the customers only evicts. */
static void test_copies_answer_for_their_own_customer_only(void **state)
{
    apr_pool_t *p = *state;
    pegadm_localcache_t *lc = NULL;
    char name[16], sid[16];
    apr_uint32_t gen;
    int kept = 0;

    assert_int_equal(pegadm_localcache_create(p, 4, shared, 0, &lc), APR_SUCCESS);
    for (int i = 0; i < 64; i++) {
        snprintf(name, sizeof(name), "c%d", i);
        snprintf(sid, sizeof(sid), "s%d", i);
        put(lc, name, sid);
    }
    for (int i = 0; i < 64; i++) {
        const char *got;
        snprintf(name, sizeof(name), "c%d", i);
        snprintf(sid, sizeof(sid), "s%d", i);
        got = get(lc, name, now, p);
        if (got) {
            assert_string_equal(got, sid);
            kept++;
        }
    }
    assert_true(kept >= 1 && kept <= 8); /* two slots per customer */
    put(lc, "c63", "s63");
    assert_null(pegadm_localcache_get(lc, "7d1e4f0a-2b3c-4d5e-8f90-a1b2c3d4e5f6", "c63", NULL,
                                      now, p, &gen));
}

/* The 128-bit variant: the first vector of the reference implementation
 * (key 00..0f, empty input). */
static void test_siphash128_matches_the_reference(void **state)
{
    static const unsigned char expected[16] = {0xa3, 0x81, 0x7f, 0x04, 0xba, 0x25, 0xa8, 0xe6,
                                               0x6d, 0xf6, 0x72, 0x14, 0xc7, 0x55, 0x02, 0x93};
    unsigned char key[16], out[16];
    for (int i = 0; i < 16; i++) {
        key[i] = (unsigned char)i;
    }
    pegadm_siphash24_128((const unsigned char *)"", 0, key, out);
    assert_memory_equal(out, expected, sizeof(out));
}

/* A table sized for n customers keeps about all n of them (a set gives up
 * a copy only when all its ways are taken), where a direct-mapped one
 * loses a fifth to a third. */
static void test_a_table_for_n_customers_keeps_them(void **state)
{
    apr_pool_t *p = *state;
    enum { N = 20000 };
    pegadm_localcache_t *lc = NULL;
    char name[16];
    int kept = 0;

    assert_int_equal(pegadm_localcache_create(p, N, shared, 0, &lc), APR_SUCCESS);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "n%d", i);
        put(lc, name, name);
    }
    for (int i = 0; i < N; i++) {
        const char *got;
        snprintf(name, sizeof(name), "n%d", i);
        got = get(lc, name, now, p);
        if (got) {
            assert_string_equal(got, name);
            kept++;
        }
    }
    assert_true(kept >= N - N / 50); /* 98%: about 99.2% expected */
}

/* A set whose ways are all taken gives up its oldest copy, and a copy past
 * its time before any other; a customer put again keeps its own way. */
static void test_a_full_set_gives_up_its_oldest_copy(void **state)
{
    apr_pool_t *p = *state;
    pegadm_localcache_t *lc = NULL;
    char name[16];
    apr_uint32_t gen;

    /* one customer: one set of 8 ways */
    assert_int_equal(pegadm_localcache_create(p, 1, shared, 0, &lc), APR_SUCCESS);
    for (int i = 0; i < 8; i++) {
        snprintf(name, sizeof(name), "w%d", i);
        put(lc, name, name);
    }
    for (int i = 0; i < 8; i++) {
        snprintf(name, sizeof(name), "w%d", i);
        assert_non_null(get(lc, name, now, p));
    }
    put(lc, "w0", "w0-again"); /* its own way: nobody else goes */
    put(lc, "w8", "w8");       /* the oldest (w0's way, the first taken) goes */
    assert_null(get(lc, "w0", now, p));
    for (int i = 1; i <= 8; i++) {
        snprintf(name, sizeof(name), "w%d", i);
        assert_string_equal(get(lc, name, now, p), name);
    }
    /* a copy past its time is given up before the oldest live one */
    pegadm_localcache_get(lc, widget, "w3", NULL, now, p, &gen);
    pegadm_localcache_put(lc, widget, "w3", gen, "w3", NULL, now, now + 1);
    pegadm_localcache_get(lc, widget, "w9", NULL, now, p, &gen);
    pegadm_localcache_put(lc, widget, "w9", gen, "w9", NULL, now + 1,
                          now + apr_time_from_sec(60));
    assert_null(get(lc, "w3", now + 1, p));
    assert_string_equal(get(lc, "w1", now + 1, p), "w1");
    assert_string_equal(get(lc, "w9", now + 1, p), "w9");
}

/* A lookup that names a digest of the private data is answered only by a
 * copy that recorded the same one. */
static void test_a_copy_answers_for_its_own_digest_only(void **state)
{
    apr_pool_t *p = *state;
    pegadm_localcache_t *lc = cache(p, 0);
    static const unsigned char d1[16] = "digest-number-1", d2[16] = "digest-number-2";
    apr_uint32_t gen;

    pegadm_localcache_get(lc, widget, "grace", NULL, now, p, &gen);
    pegadm_localcache_put(lc, widget, "grace", gen, "sess-6", d1, now,
                          now + apr_time_from_sec(60));
    assert_string_equal(pegadm_localcache_get(lc, widget, "grace", d1, now, p, &gen), "sess-6");
    assert_null(pegadm_localcache_get(lc, widget, "grace", d2, now, p, &gen));
    assert_string_equal(pegadm_localcache_get(lc, widget, "grace", NULL, now, p, &gen),
                        "sess-6");
    put(lc, "grace", "sess-7"); /* an entry that records no digest */
    assert_null(pegadm_localcache_get(lc, widget, "grace", d1, now, p, &gen));
    assert_string_equal(get(lc, "grace", now, p), "sess-7");
}

/* A logout cookie noted for a customer is known for that customer and
 * that value only; a customer without a copy keeps no note, and a copy
 * given to another customer drops it. */
static void test_a_noted_cookie_is_known_for_its_customer_only(void **state)
{
    apr_pool_t *p = *state;
    pegadm_localcache_t *lc = NULL;
    static const char v1[] = "c2VhbGVkLWN1c3RvbWVyLWlkLW9uZQ";
    static const char v2[] = "c2VhbGVkLWN1c3RvbWVyLWlkLW9uZR";
    char name[16];

    assert_int_equal(pegadm_localcache_create(p, 1, shared, 0, &lc), APR_SUCCESS);
    pegadm_localcache_cookie_note(lc, widget, "kim", v1, strlen(v1)); /* no copy: no note */
    assert_false(pegadm_localcache_cookie_known(lc, widget, "kim", v1, strlen(v1)));
    put(lc, "kim", "sess-8");
    put(lc, "lee", "sess-9");
    assert_false(pegadm_localcache_cookie_known(lc, widget, "kim", v1, strlen(v1)));
    pegadm_localcache_cookie_note(lc, widget, "kim", v1, strlen(v1));
    assert_true(pegadm_localcache_cookie_known(lc, widget, "kim", v1, strlen(v1)));
    assert_false(pegadm_localcache_cookie_known(lc, widget, "kim", v2, strlen(v2)));
    assert_false(pegadm_localcache_cookie_known(lc, widget, "kim", v1, strlen(v1) - 1));
    assert_false(pegadm_localcache_cookie_known(lc, widget, "lee", v1, strlen(v1)));
    assert_false(pegadm_localcache_cookie_known(lc, "7d1e4f0a-2b3c-4d5e-8f90-a1b2c3d4e5f6",
                                                "kim", v1, strlen(v1)));
    put(lc, "kim", "sess-10"); /* the customer's own way: the note stays */
    pegadm_localcache_changed(lc, widget, "kim");
    assert_true(pegadm_localcache_cookie_known(lc, widget, "kim", v1, strlen(v1)));
    for (int i = 0; i < 8; i++) { /* the one set of 8 ways goes to others */
        snprintf(name, sizeof(name), "x%d", i);
        put(lc, name, name);
    }
    put(lc, "kim", "sess-11");
    assert_false(pegadm_localcache_cookie_known(lc, widget, "kim", v1, strlen(v1)));
}

static void test_overlong_values_are_not_cached(void **state)
{
    apr_pool_t *p = *state;
    pegadm_localcache_t *lc = cache(p, 0);
    char too_long[300];

    memset(too_long, 'x', sizeof(too_long) - 1);
    too_long[sizeof(too_long) - 1] = '\0';
    put(lc, "frank", too_long); /* a session ID over 128 bytes */
    assert_null(get(lc, "frank", now, p));
    put(lc, too_long, "sess-5"); /* a customer ID over 256 bytes */
    assert_null(get(lc, too_long, now, p));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        POOL_TEST(test_siphash_matches_the_reference),
        POOL_TEST(test_a_copy_is_used_until_it_expires),
        POOL_TEST(test_max_age_bounds_a_copy),
        POOL_TEST(test_a_change_anywhere_invalidates_the_copy),
        POOL_TEST(test_a_copy_read_before_a_change_is_not_used),
        POOL_TEST(test_copies_answer_for_their_own_customer_only),
        POOL_TEST(test_overlong_values_are_not_cached),
        POOL_TEST(test_siphash128_matches_the_reference),
        POOL_TEST(test_a_copy_answers_for_its_own_digest_only),
        POOL_TEST(test_a_noted_cookie_is_known_for_its_customer_only),
        POOL_TEST(test_a_table_for_n_customers_keeps_them),
        POOL_TEST(test_a_full_set_gives_up_its_oldest_copy),
    };
    int failed;

    apr_initialize();
    assert_int_equal(pegadm_localcache_init_shared(shared), APR_SUCCESS);
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    apr_terminate();
    return failed;
}
