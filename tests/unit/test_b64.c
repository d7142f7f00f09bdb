/* base64url: RFC 4648 vectors in the url alphabet, strict decoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "pegadm_test_pool.h"

#include <apr_general.h>
#include <apr_pools.h>

#include "pegadm_b64.h"

static const struct {
    const char *plain;
    const char *encoded;
} rfc4648_vectors[] = {
    {"", ""},           {"f", "Zg"},          {"fo", "Zm8"},          {"foo", "Zm9v"},
    {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"},
};

static void encode_rfc4648_vectors(void **state)
{
    size_t i;
    for (i = 0; i < sizeof(rfc4648_vectors) / sizeof(rfc4648_vectors[0]); i++) {
        const char *plain = rfc4648_vectors[i].plain;
        assert_string_equal(
            pegadm_b64url_encode(*state, (const unsigned char *)plain, strlen(plain)),
            rfc4648_vectors[i].encoded);
    }
}

static void decode_rfc4648_vectors(void **state)
{
    size_t i;
    for (i = 0; i < sizeof(rfc4648_vectors) / sizeof(rfc4648_vectors[0]); i++) {
        const char *encoded = rfc4648_vectors[i].encoded;
        unsigned char *out = NULL;
        apr_size_t out_len = 99;
        assert_int_equal(pegadm_b64url_decode(*state, encoded, strlen(encoded), &out, &out_len),
                         APR_SUCCESS);
        assert_int_equal(out_len, strlen(rfc4648_vectors[i].plain));
        assert_memory_equal(out, rfc4648_vectors[i].plain, out_len);
        assert_int_equal(out[out_len], '\0');
    }
}

/* 0xfb 0xff 0xbf is "+/+/" in standard base64: here - and _. */
static void url_alphabet_characters(void **state)
{
    static const unsigned char bytes[] = {0xfb, 0xff, 0xbf};
    unsigned char *out;
    apr_size_t out_len;

    assert_string_equal(pegadm_b64url_encode(*state, bytes, 2), "-_8");
    assert_string_equal(pegadm_b64url_encode(*state, bytes, 3), "-_-_");
    assert_int_equal(pegadm_b64url_decode(*state, "-_-_", 4, &out, &out_len), APR_SUCCESS);
    assert_int_equal(out_len, 3);
    assert_memory_equal(out, bytes, 3);
    assert_int_equal(pegadm_b64url_decode(*state, "-_8", 3, &out, &out_len), APR_SUCCESS);
    assert_int_equal(out_len, 2);
    assert_memory_equal(out, bytes, 2);
}

static void assert_decode_rejects(apr_pool_t *p, const char *in, apr_size_t in_len)
{
    unsigned char *out = NULL;
    apr_size_t out_len = 0;
    assert_int_equal(pegadm_b64url_decode(p, in, in_len, &out, &out_len), APR_EINVAL);
}

static void decode_rejects_foreign_characters(void **state)
{
    assert_decode_rejects(*state, "Zg==", 4);
    assert_decode_rejects(*state, "Zm9vYg=", 7);
    assert_decode_rejects(*state, "+_-_", 4);
    assert_decode_rejects(*state, "-/-_", 4);
    assert_decode_rejects(*state, " Zm9v", 5);
    assert_decode_rejects(*state, "Zm9v\n", 5);
    assert_decode_rejects(*state, "Zm 9v", 5);
    assert_decode_rejects(*state, "Zm\t9v", 5);
    assert_decode_rejects(*state, "Zm9v\0Zg", 7);
    assert_decode_rejects(*state, "Zm9v\xc3\xa9", 6);
    assert_decode_rejects(*state, "Zm9.", 4);
}

static void decode_rejects_impossible_length(void **state)
{
    assert_decode_rejects(*state, "Z", 1);
    assert_decode_rejects(*state, "Zm9vY", 5);
    assert_decode_rejects(*state, "Zm9vYmFyZ", 9);
}

/* Unused trailing bits must be zero: "Zg" is "f", "Zh" is not a second way
 * of writing it. */
static void decode_rejects_noncanonical_trailing_bits(void **state)
{
    assert_decode_rejects(*state, "Zh", 2);
    assert_decode_rejects(*state, "Zv", 2);
    assert_decode_rejects(*state, "Zm9", 3);
    assert_decode_rejects(*state, "Zm_", 3);
    assert_decode_rejects(*state, "Zm9vYmF", 7);
}

static void decode_reads_only_in_len_characters(void **state)
{
    unsigned char *out;
    apr_size_t out_len;

    assert_int_equal(pegadm_b64url_decode(*state, "Zm9vYmFy", 4, &out, &out_len), APR_SUCCESS);
    assert_int_equal(out_len, 3);
    assert_memory_equal(out, "foo", 3);
    assert_int_equal(pegadm_b64url_decode(*state, NULL, 0, &out, &out_len), APR_SUCCESS);
    assert_int_equal(out_len, 0);
}

/* Every byte value, at every length (so every remainder mod 3). */
static void round_trip_all_byte_values(void **state)
{
    unsigned char bytes[256];
    apr_size_t len;

    for (len = 0; len < sizeof(bytes); len++) {
        bytes[len] = (unsigned char)len;
    }
    for (len = 0; len <= sizeof(bytes); len++) {
        const char *encoded = pegadm_b64url_encode(*state, bytes, len);
        unsigned char *decoded;
        apr_size_t decoded_len;

        assert_int_equal(strlen(encoded), (len * 4 + 2) / 3);
        assert_int_equal(strspn(encoded, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                         "0123456789-_"),
                         strlen(encoded));
        assert_int_equal(
            pegadm_b64url_decode(*state, encoded, strlen(encoded), &decoded, &decoded_len),
            APR_SUCCESS);
        assert_int_equal(decoded_len, len);
        assert_memory_equal(decoded, bytes, len);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        POOL_TEST(encode_rfc4648_vectors),
        POOL_TEST(decode_rfc4648_vectors),
        POOL_TEST(url_alphabet_characters),
        POOL_TEST(decode_rejects_foreign_characters),
        POOL_TEST(decode_rejects_impossible_length),
        POOL_TEST(decode_rejects_noncanonical_trailing_bits),
        POOL_TEST(decode_reads_only_in_len_characters),
        POOL_TEST(round_trip_all_byte_values),
    };
    int failed;

    apr_initialize();
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    apr_terminate();
    return failed;
}
