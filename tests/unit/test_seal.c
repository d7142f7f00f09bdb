/* Keys derived from the secret, cache IDs, and sealing of cache entries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <apr_general.h>
#include <apr_pools.h>

#include "pegadm_seal.h"

static const char secret[] = "correct horse battery staple, 40 bytes!!";
static const char widget[] = "0b6c3d52-5b7a-4c53-9a55-2f6f3c2d8e11";
static apr_pool_t *pool;

static void hex(const unsigned char *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        sprintf(out + 2 * i, "%02x", b[i]);
    }
}

static apr_status_t release(void *keys)
{
    pegadm_keys_release(keys);
    return APR_SUCCESS;
}

/* Keys that live until the end of the run (released with the pool). */
static pegadm_keys_t *derive(const char *s)
{
    pegadm_keys_t *k = apr_palloc(pool, sizeof(*k));
    assert_int_equal(pegadm_keys_derive(k, (const unsigned char *)s, strlen(s)), APR_SUCCESS);
    apr_pool_cleanup_register(pool, k, release, apr_pool_cleanup_null);
    return k;
}

/* Expected values computed with Python's hmac (RFC 5869 HKDF, empty salt). */
static void test_keys_known_answer(void **state)
{
    const pegadm_keys_t *k = derive(secret);
    char out[65];
    hex(k->id_key, 32, out);
    assert_string_equal(out,
                        "eb2e102553a6ea52f649990f0dc8f5d004c6195bfea650c28add84280f95f124");
    hex(k->enc_key, 32, out);
    assert_string_equal(out,
                        "2729b23e17ae8ac5024000eb51f7fffe8e642f59e33aef31baa8a6c566def923");
}

static void test_cache_id_known_answer(void **state)
{
    const pegadm_keys_t *k = derive(secret);
    unsigned char id[PEGADM_CACHE_ID_LEN];
    char out[65];
    assert_int_equal(pegadm_cache_id(k, "session", widget, "j\xc3\xb6rg \"x\"", id),
                     APR_SUCCESS);
    hex(id, sizeof(id), out);
    assert_string_equal(out,
                        "e98e08c611c7b16e8f0767774623210a099f7c5429a7299f04b032814ef229b4");
}

static void test_cache_id_separates_inputs(void **state)
{
    const pegadm_keys_t *k = derive(secret), *other = derive("another secret");
    unsigned char a[32], b[32], c[32], d[32], e[32];
    pegadm_cache_id(k, "session", widget, "alice", a);
    pegadm_cache_id(k, "session", widget, "bob", b);
    pegadm_cache_id(k, "rate", widget, "alice", c);
    pegadm_cache_id(other, "session", widget, "alice", d);
    pegadm_cache_id(k, "session", "0b6c3d52-5b7a-4c53-9a55-2f6f3c2d8e12", "alice", e);
    assert_memory_not_equal(a, b, 32);
    assert_memory_not_equal(a, c, 32);
    assert_memory_not_equal(a, d, 32);
    assert_memory_not_equal(a, e, 32);
}

static void test_seal_round_trip_and_nonce(void **state)
{
    const pegadm_keys_t *k = derive(secret);
    const unsigned char aad[] = "id-1", plain[] = "S-session-0001";
    unsigned char *s1, *s2, *out;
    apr_size_t n1, n2, out_len;

    assert_int_equal(pegadm_seal(pool, k, aad, 4, plain, 14, &s1, &n1), APR_SUCCESS);
    assert_int_equal(pegadm_seal(pool, k, aad, 4, plain, 14, &s2, &n2), APR_SUCCESS);
    assert_int_equal(n1, 14 + PEGADM_SEAL_OVERHEAD);
    assert_memory_not_equal(s1, s2, n1);       /* fresh nonce every time */
    assert_null(memmem(s1, n1, "session", 7)); /* nothing readable */
    assert_int_equal(pegadm_unseal(pool, k, aad, 4, s1, n1, &out, &out_len), APR_SUCCESS);
    assert_int_equal(out_len, 14);
    assert_memory_equal(out, plain, 14);
}

static void test_unseal_rejects_tampering(void **state)
{
    const pegadm_keys_t *k = derive(secret), *other = derive("another secret");
    const unsigned char aad[] = "id-1", plain[] = "S-session-0001";
    unsigned char *sealed, *out;
    apr_size_t n, out_len;

    pegadm_seal(pool, k, aad, 4, plain, 14, &sealed, &n);
    for (apr_size_t i = 0; i < n; i++) {
        sealed[i] ^= 0x01;
        assert_int_not_equal(pegadm_unseal(pool, k, aad, 4, sealed, n, &out, &out_len),
                             APR_SUCCESS);
        sealed[i] ^= 0x01;
    }
    assert_int_not_equal(
        pegadm_unseal(pool, k, (const unsigned char *)"id-2", 4, sealed, n, &out, &out_len),
        APR_SUCCESS);
    assert_int_not_equal(pegadm_unseal(pool, other, aad, 4, sealed, n, &out, &out_len),
                         APR_SUCCESS);
    assert_int_not_equal(pegadm_unseal(pool, k, aad, 4, sealed, n - 1, &out, &out_len),
                         APR_SUCCESS);
    assert_int_not_equal(
        pegadm_unseal(pool, k, aad, 4, sealed, PEGADM_SEAL_OVERHEAD - 1, &out, &out_len),
        APR_SUCCESS);
    assert_int_equal(pegadm_unseal(pool, k, aad, 4, sealed, n, &out, &out_len), APR_SUCCESS);
}

static void test_logout_plain_is_padded_and_round_trips(void **state)
{
    unsigned char a[PEGADM_LOGOUT_PLAIN_LEN], b[PEGADM_LOGOUT_PLAIN_LEN];
    char longest[PEGADM_LOGOUT_ID_MAX + 2];
    const char *id;
    apr_time_t issued;

    assert_int_equal(pegadm_logout_plain_encode(a, "al", apr_time_from_sec(1800000000)),
                     APR_SUCCESS);
    assert_int_equal(pegadm_logout_plain_decode(pool, a, sizeof(a), &id, &issued), APR_SUCCESS);
    assert_string_equal(id, "al");
    assert_true(issued == apr_time_from_sec(1800000000));
    memset(longest, 'x', sizeof(longest));
    longest[PEGADM_LOGOUT_ID_MAX] = '\0';
    assert_int_equal(pegadm_logout_plain_encode(b, longest, 0), APR_SUCCESS);
    assert_int_equal(pegadm_logout_plain_decode(pool, b, sizeof(b), &id, &issued), APR_SUCCESS);
    assert_int_equal(strlen(id), PEGADM_LOGOUT_ID_MAX);
    longest[PEGADM_LOGOUT_ID_MAX] = 'x';
    longest[PEGADM_LOGOUT_ID_MAX + 1] = '\0';
    assert_int_equal(pegadm_logout_plain_encode(b, longest, 0), APR_EINVAL);
    assert_int_equal(pegadm_logout_plain_encode(b, "", 0), APR_EINVAL);
    /* what the encoder never makes is refused */
    assert_int_not_equal(pegadm_logout_plain_decode(pool, a, sizeof(a) - 1, &id, &issued),
                         APR_SUCCESS);
    a[sizeof(a) - 1] = 1; /* padding that is not zero */
    assert_int_not_equal(pegadm_logout_plain_decode(pool, a, sizeof(a), &id, &issued),
                         APR_SUCCESS);
    a[sizeof(a) - 1] = 0;
    a[9] = 0; /* an empty ID */
    assert_int_not_equal(pegadm_logout_plain_decode(pool, a, sizeof(a), &id, &issued),
                         APR_SUCCESS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_known_answer),
        cmocka_unit_test(test_cache_id_known_answer),
        cmocka_unit_test(test_cache_id_separates_inputs),
        cmocka_unit_test(test_seal_round_trip_and_nonce),
        cmocka_unit_test(test_unseal_rejects_tampering),
        cmocka_unit_test(test_logout_plain_is_padded_and_round_trips),
    };
    int failed;
    apr_initialize();
    apr_pool_create(&pool, NULL);
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    apr_terminate();
    return failed;
}
