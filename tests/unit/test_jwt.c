/* HS256 tokens. The expected tokens other than RFC 7515's were computed
 * independently with Python's hmac module (and checked with
 * `openssl dgst -sha256 -hmac`) when this test was written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "pegadm_test_pool.h"

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <jansson.h>

#include "pegadm_b64.h"
#include "pegadm_jwt.h"

#define HEADER_B64  "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9" /* {"alg":"HS256","typ":"JWT"} */
#define TEST_KEY    "pegadm-test-secret"
#define TEST_WIDGET "6f0b3a2e-9c1d-4e5f-8a7b-1c2d3e4f5a6b"

static const char *sign(apr_pool_t *p, const char *key, apr_size_t key_len, const char *iss,
                        apr_int64_t iat, apr_int64_t exp)
{
    return pegadm_jwt_sign_hs256(p, (const unsigned char *)key, key_len, iss, iat, exp);
}

/* RFC 7515, appendix A.1: the header and payload bytes include CR LF. */
static void rfc7515_a1_known_answer(void **state)
{
    static const char jwk_k[] = "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-"
                                "1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
    static const char header[] = "{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}";
    static const char payload[] = "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n "
                                  "\"http://example.com/is_root\":true}";
    unsigned char *key;
    apr_size_t key_len;

    assert_int_equal(pegadm_b64url_decode(*state, jwk_k, strlen(jwk_k), &key, &key_len),
                     APR_SUCCESS);
    assert_int_equal(key_len, 64);
    assert_string_equal(pegadm_jws_hs256_compact(*state, key, key_len, header, strlen(header),
                                                 payload, strlen(payload)),
                        "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
                        ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlL"
                        "mNvbS9pc19yb290Ijp0cnVlfQ"
                        ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
}

static void widget_token_known_answer(void **state)
{
    assert_string_equal(
        sign(*state, TEST_KEY, strlen(TEST_KEY), TEST_WIDGET, 1700000000, 1700000060),
        HEADER_B64
        ".eyJpc3MiOiI2ZjBiM2EyZS05YzFkLTRlNWYtOGE3Yi0xYzJkM2U0ZjVhNmIiLCJpYXQiOjE3MDAw"
        "MDAwMDAsImV4cCI6MTcwMDAwMDA2MH0.MuSzZOmmCrx3x_YMwZieeZCo0hp4IQZYlY1QTaM32oY");
}

/* iss = a"b\c/é€😀: jansson escapes the quote and backslash only. */
static void escaped_utf8_iss_known_answer(void **state)
{
    assert_string_equal(
        sign(*state, TEST_KEY, strlen(TEST_KEY), "a\"b\\c/\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80",
             1700000000, 1700000060),
        HEADER_B64
        ".eyJpc3MiOiJhXCJiXFxjL8Op4oKs8J-YgCIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjoxNzAwMDAw"
        "MDYwfQ.ekYBzzCiqCLTwVrdCEvIOonrFcVTEdCziL4FFRZVax0");
}

static void empty_key_known_answer(void **state)
{
    static const char expected[] = HEADER_B64 ".eyJpc3MiOiJzZXNzLTEiLCJpYXQiOjAsImV4cCI6MzAwfQ"
                                              ".XlWyWcwlCNBbSEUCmEjV9R8f1IPSWfnGLIrUMB43KSY";

    assert_string_equal(sign(*state, "", 0, "sess-1", 0, 300), expected);
    assert_string_equal(sign(*state, NULL, 0, "sess-1", 0, 300), expected);
}

/* A key longer than SHA-256's 64-byte block is hashed first (RFC 2104). */
static void long_key_known_answer(void **state)
{
    char key[100];
    size_t i;

    for (i = 0; i < sizeof(key); i++) {
        key[i] = (char)i;
    }
    assert_string_equal(sign(*state, key, sizeof(key), "sess-1", 0, 300),
                        HEADER_B64 ".eyJpc3MiOiJzZXNzLTEiLCJpYXQiOjAsImV4cCI6MzAwfQ"
                                   "._ot3ZavNwskJNmlL7xsSHE0wU3MyyRfxSI4xSiGDO8A");
}

static void wide_integer_claims_known_answer(void **state)
{
    assert_string_equal(sign(*state, "k", 1, "x", -1, APR_INT64_C(9007199254740992)),
                        HEADER_B64 ".eyJpc3MiOiJ4IiwiaWF0IjotMSwiZXhwIjo5MDA3MTk5MjU0NzQwOTkyfQ"
                                   ".m9HXaKviPLjZ1MX0SGCfN91ArKz69rLUZXGFcp3Ywnk");
}

/* Splits token into its three parts and decodes the first two. */
static void decode_token(apr_pool_t *p, const char *token, char **header, char **payload,
                         const char **signature)
{
    const char *dot1 = strchr(token, '.');
    const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    unsigned char *out;
    apr_size_t out_len;

    assert_non_null(dot2);
    assert_null(strchr(dot2 + 1, '.'));
    assert_int_equal(pegadm_b64url_decode(p, token, dot1 - token, &out, &out_len), APR_SUCCESS);
    *header = (char *)out;
    assert_int_equal(pegadm_b64url_decode(p, dot1 + 1, dot2 - dot1 - 1, &out, &out_len),
                     APR_SUCCESS);
    *payload = (char *)out;
    *signature = dot2 + 1;
}

static void claims_decode_to_expected_types(void **state)
{
    const char *iss = "quote\" backslash\\ \xc3\xa9";
    const char *token = sign(*state, TEST_KEY, strlen(TEST_KEY), iss, 1700000000, 1700000060);
    char *header, *payload;
    const char *signature;
    json_error_t err;
    json_t *claims;

    assert_non_null(token);
    decode_token(*state, token, &header, &payload, &signature);
    assert_string_equal(header, "{\"alg\":\"HS256\",\"typ\":\"JWT\"}");
    assert_string_equal(payload, "{\"iss\":\"quote\\\" backslash\\\\ \xc3\xa9\","
                                 "\"iat\":1700000000,\"exp\":1700000060}");
    assert_int_equal(strlen(signature), 43);
    claims = json_loads(payload, JSON_REJECT_DUPLICATES, &err);
    assert_non_null(claims);
    assert_int_equal(json_object_size(claims), 3);
    assert_true(json_is_string(json_object_get(claims, "iss")));
    assert_string_equal(json_string_value(json_object_get(claims, "iss")), iss);
    assert_true(json_is_integer(json_object_get(claims, "iat")));
    assert_int_equal(json_integer_value(json_object_get(claims, "iat")), 1700000000);
    assert_true(json_is_integer(json_object_get(claims, "exp")));
    assert_int_equal(json_integer_value(json_object_get(claims, "exp")), 1700000060);
    json_decref(claims);
}

static void different_keys_give_different_signatures(void **state)
{
    const char *a = sign(*state, "key-a", 5, "sess", 1, 2);
    const char *b = sign(*state, "key-b", 5, "sess", 1, 2);

    assert_non_null(a);
    assert_non_null(b);
    assert_string_not_equal(a, b);
    assert_string_equal(a, sign(*state, "key-a", 5, "sess", 1, 2));
}

static void invalid_utf8_iss_is_refused(void **state)
{
    assert_null(sign(*state, TEST_KEY, strlen(TEST_KEY), "a\xc0\xaf", 1, 2));
    assert_null(sign(*state, TEST_KEY, strlen(TEST_KEY), "\xed\xa0\x80", 1, 2));
    assert_null(sign(*state, TEST_KEY, strlen(TEST_KEY), "trunc\xe2\x82", 1, 2));
    assert_null(sign(*state, TEST_KEY, strlen(TEST_KEY), NULL, 1, 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        POOL_TEST(rfc7515_a1_known_answer),
        POOL_TEST(widget_token_known_answer),
        POOL_TEST(escaped_utf8_iss_known_answer),
        POOL_TEST(empty_key_known_answer),
        POOL_TEST(long_key_known_answer),
        POOL_TEST(wide_integer_claims_known_answer),
        POOL_TEST(claims_decode_to_expected_types),
        POOL_TEST(different_keys_give_different_signatures),
        POOL_TEST(invalid_utf8_iss_is_refused),
    };
    int failed;

    apr_initialize();
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    apr_terminate();
    return failed;
}
