/* The audit log's lines and keyed hashes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <jansson.h>

#include "pegadm_audit.h"
#include "pegadm_test_pool.h"

#define W1 "0b6c3d52-5b7a-4c53-9a55-2f6f3c2d8e11"

static void hashes_are_keyed_stable_and_distinct(void **state)
{
    pegadm_keys_t k1, k2;
    const char *a, *again, *other_kind, *other_key;

    assert_int_equal(pegadm_keys_derive(&k1, (const unsigned char *)"secret one", 10),
                     APR_SUCCESS);
    assert_int_equal(pegadm_keys_derive(&k2, (const unsigned char *)"secret two", 10),
                     APR_SUCCESS);
    a = pegadm_audit_hash(*state, &k1, "audit customer", W1, "alice");
    again = pegadm_audit_hash(*state, &k1, "audit customer", W1, "alice");
    other_kind = pegadm_audit_hash(*state, &k1, "audit session", W1, "alice");
    other_key = pegadm_audit_hash(*state, &k2, "audit customer", W1, "alice");
    assert_int_equal(strlen(a), PEGADM_AUDIT_HASH_HEX);
    assert_int_equal(strspn(a, "0123456789abcdef"), PEGADM_AUDIT_HASH_HEX);
    assert_string_equal(a, again);
    assert_string_not_equal(a, other_kind);
    assert_string_not_equal(a, other_key);
    assert_null(pegadm_audit_hash(*state, &k1, "audit customer", W1, NULL));
    pegadm_keys_release(&k1);
    pegadm_keys_release(&k2);
}

static void a_line_is_one_json_object(void **state)
{
    pegadm_audit_event_t e = {
        apr_time_from_sec(1764576000) + 123456, "node-1", W1, "create", "ok", 12345,
        "00112233445566778899aabbccddeeff",     NULL};
    char *line = pegadm_audit_line(*state, &e);
    json_t *o;

    assert_non_null(line);
    assert_int_equal(line[strlen(line) - 1], '\n');
    assert_null(strchr(line, '\n') + 1 == line + strlen(line) ? NULL : "two lines");
    o = json_loads(line, 0, NULL);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "time")),
                        "2025-12-01T08:00:00.123Z");
    assert_string_equal(json_string_value(json_object_get(o, "node")), "node-1");
    assert_string_equal(json_string_value(json_object_get(o, "widget")), W1);
    assert_string_equal(json_string_value(json_object_get(o, "event")), "create");
    assert_string_equal(json_string_value(json_object_get(o, "outcome")), "ok");
    assert_true(json_real_value(json_object_get(o, "latencyMs")) == 12.345);
    assert_string_equal(json_string_value(json_object_get(o, "customer")),
                        "00112233445566778899aabbccddeeff");
    assert_null(json_object_get(o, "session"));
    json_decref(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        POOL_TEST(hashes_are_keyed_stable_and_distinct),
        POOL_TEST(a_line_is_one_json_object),
    };
    apr_initialize();
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    apr_terminate();
    return failed;
}
