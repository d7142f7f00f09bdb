/* Typed private-data values: each type's accepted spellings, what it
 * refuses, and that nothing is silently reinterpreted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pegadm_fields.h"

/* The value as compact JSON text, or NULL if the conversion did not give OK. */
static char *convert(pegadm_field_type_t type, const char *text, pegadm_field_status_t *st)
{
    json_t *value = NULL;
    const char *why = NULL;
    char *dumped = NULL;

    *st = pegadm_field_value(type, text, strlen(text), &value, &why);
    if (*st == PEGADM_FIELD_OK) {
        assert_non_null(value);
        dumped = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(value);
    } else if (*st == PEGADM_FIELD_INVALID) {
        assert_non_null(why);
    }
    return dumped;
}

static void assert_converts(pegadm_field_type_t type, const char *text, const char *json)
{
    pegadm_field_status_t st;
    char *got = convert(type, text, &st);

    assert_int_equal(st, PEGADM_FIELD_OK);
    assert_string_equal(got, json);
    free(got);
}

static void assert_refused(pegadm_field_type_t type, const char *text)
{
    pegadm_field_status_t st;
    char *got = convert(type, text, &st);

    if (st != PEGADM_FIELD_INVALID) {
        fail_msg("'%s' as %s gave %d (%s)", text, pegadm_field_type_name(type), st,
                 got ? got : "-");
    }
}

static void type_names_round_trip(void **state)
{
    static const char *const names[] = {"string", "boolean", "number", "json"};
    pegadm_field_type_t type;

    for (int i = 0; i < 4; i++) {
        assert_int_equal(pegadm_field_type_parse(names[i], &type), APR_SUCCESS);
        assert_int_equal(type, i);
        assert_string_equal(pegadm_field_type_name(type), names[i]);
    }
    assert_int_equal(pegadm_field_type_parse("Boolean", &type), APR_SUCCESS);
    assert_int_equal(type, PEGADM_FIELD_BOOLEAN);
    assert_int_equal(pegadm_field_type_parse("bool", &type), APR_EINVAL);
    assert_int_equal(pegadm_field_type_parse("integer", &type), APR_EINVAL);
    assert_int_equal(pegadm_field_type_parse("", &type), APR_EINVAL);
}

static void strings_are_taken_as_they_are(void **state)
{
    assert_converts(PEGADM_FIELD_STRING, "true", "\"true\"");
    assert_converts(PEGADM_FIELD_STRING, "42", "\"42\"");
    assert_converts(PEGADM_FIELD_STRING, " padded ", "\" padded \"");
    assert_converts(PEGADM_FIELD_STRING, "", "\"\"");
    assert_converts(PEGADM_FIELD_STRING, "{\"a\":1}", "\"{\\\"a\\\":1}\"");
    assert_converts(PEGADM_FIELD_STRING, "Zo\xc3\xab", "\"Zo\xc3\xab\"");
    assert_refused(PEGADM_FIELD_STRING, "bad \xc3\x28 utf-8");
    assert_refused(PEGADM_FIELD_STRING, "\xed\xa0\x80"); /* a surrogate */
}

static void booleans_accept_the_usual_words(void **state)
{
    static const char *const yes[] = {"true", "TRUE", "True", "yes",
                                      "on",   "On",   "1",    " true\n"};
    static const char *const no[] = {"false", "FALSE", "no", "off", "0", "\tfalse "};

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        assert_converts(PEGADM_FIELD_BOOLEAN, yes[i], "true");
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        assert_converts(PEGADM_FIELD_BOOLEAN, no[i], "false");
    }
    assert_refused(PEGADM_FIELD_BOOLEAN, "t");
    assert_refused(PEGADM_FIELD_BOOLEAN, "truex");
    assert_refused(PEGADM_FIELD_BOOLEAN, "2");
    assert_refused(PEGADM_FIELD_BOOLEAN, "null");
    assert_refused(PEGADM_FIELD_BOOLEAN, "tr ue");
}

static void numbers_follow_the_json_grammar(void **state)
{
    assert_converts(PEGADM_FIELD_NUMBER, "0", "0");
    assert_converts(PEGADM_FIELD_NUMBER, "-12", "-12");
    assert_converts(PEGADM_FIELD_NUMBER, " 4711 ", "4711");
    assert_converts(PEGADM_FIELD_NUMBER, "9223372036854775807", "9223372036854775807");
    assert_converts(PEGADM_FIELD_NUMBER, "3.5", "3.5");
    assert_converts(PEGADM_FIELD_NUMBER, "2.5e2", "250.0");
    assert_converts(PEGADM_FIELD_NUMBER, "-1E-2", "-0.01");
    assert_refused(PEGADM_FIELD_NUMBER, "+1");
    assert_refused(PEGADM_FIELD_NUMBER, "01");
    assert_refused(PEGADM_FIELD_NUMBER, ".5");
    assert_refused(PEGADM_FIELD_NUMBER, "1.");
    assert_refused(PEGADM_FIELD_NUMBER, "0x1A");
    assert_refused(PEGADM_FIELD_NUMBER, "1,5");
    assert_refused(PEGADM_FIELD_NUMBER, "12abc");
    assert_refused(PEGADM_FIELD_NUMBER, "1 2");
    assert_refused(PEGADM_FIELD_NUMBER, "NaN");
    assert_refused(PEGADM_FIELD_NUMBER, "Infinity");
    assert_refused(PEGADM_FIELD_NUMBER, "\"12\"");
    assert_refused(PEGADM_FIELD_NUMBER, "true");
}

/* A number the payload cannot carry exactly is refused, not rounded. */
static void numbers_out_of_range_are_refused(void **state)
{
    assert_refused(PEGADM_FIELD_NUMBER, "9223372036854775808");
    assert_refused(PEGADM_FIELD_NUMBER, "-99999999999999999999");
    assert_refused(PEGADM_FIELD_NUMBER, "1e400");
}

static void json_takes_any_document(void **state)
{
    assert_converts(PEGADM_FIELD_JSON, "{\"tier\": \"gold\", \"ids\": [1, 2]}",
                    "{\"tier\":\"gold\",\"ids\":[1,2]}");
    assert_converts(PEGADM_FIELD_JSON, "[]", "[]");
    assert_converts(PEGADM_FIELD_JSON, "null", "null");
    assert_converts(PEGADM_FIELD_JSON, "\"text\"", "\"text\"");
    assert_converts(PEGADM_FIELD_JSON, " 7 ", "7");
    assert_refused(PEGADM_FIELD_JSON, "{\"a\": 1, \"a\": 2}");
    assert_refused(PEGADM_FIELD_JSON, "{\"a\": 1} trailing");
    assert_refused(PEGADM_FIELD_JSON, "{'a': 1}");
    assert_refused(PEGADM_FIELD_JSON, "text");
    assert_refused(PEGADM_FIELD_JSON, "\"\\u0000\"");
    assert_refused(PEGADM_FIELD_JSON, "\"\xc3\x28\"");
}

static void typed_values_of_white_space_are_empty(void **state)
{
    static const pegadm_field_type_t typed[] = {PEGADM_FIELD_BOOLEAN, PEGADM_FIELD_NUMBER,
                                                PEGADM_FIELD_JSON};
    pegadm_field_status_t st;

    for (size_t i = 0; i < sizeof(typed) / sizeof(typed[0]); i++) {
        assert_null(convert(typed[i], "", &st));
        assert_int_equal(st, PEGADM_FIELD_EMPTY);
        assert_null(convert(typed[i], " \t\r\n", &st));
        assert_int_equal(st, PEGADM_FIELD_EMPTY);
    }
}

/* The length counts, not a terminating NUL: the expression's value may be
 * a slice of a larger buffer. */
static void only_len_bytes_are_read(void **state)
{
    json_t *value = NULL;
    const char *why = NULL;

    assert_int_equal(pegadm_field_value(PEGADM_FIELD_NUMBER, "12345", 2, &value, &why),
                     PEGADM_FIELD_OK);
    assert_int_equal(json_integer_value(value), 12);
    json_decref(value);
    assert_int_equal(pegadm_field_value(PEGADM_FIELD_BOOLEAN, "onward", 2, &value, &why),
                     PEGADM_FIELD_OK);
    assert_true(json_is_true(value));
    json_decref(value);
}

/* A key jansson would refuse must be caught at start-up: at run time the
 * field would silently be missing from every payload. */
static void keys_must_be_utf8_jansson_accepts(void **state)
{
    static const char *const good[] = {
        "customerId", "x", "kundennummer_\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80 emoji",
        "a b"};
    static const char *const bad[] = {"",
                                      "caf\xe9",          /* latin-1 */
                                      "\xc3",             /* truncated */
                                      "\xc0\xaf",         /* overlong */
                                      "\xed\xa0\x80",     /* a surrogate */
                                      "\xf4\x90\x80\x80", /* over U+10FFFF */
                                      "\xff"};
    json_t *obj = json_object();

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_true(pegadm_field_key_is_valid(good[i]));
        assert_int_equal(json_object_set_new(obj, good[i], json_true()), 0);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(pegadm_field_key_is_valid(bad[i]));
        if (*bad[i]) {
            assert_int_equal(json_object_set_new(obj, bad[i], json_true()), -1);
        }
    }
    json_decref(obj);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(type_names_round_trip),
        cmocka_unit_test(strings_are_taken_as_they_are),
        cmocka_unit_test(booleans_accept_the_usual_words),
        cmocka_unit_test(numbers_follow_the_json_grammar),
        cmocka_unit_test(numbers_out_of_range_are_refused),
        cmocka_unit_test(json_takes_any_document),
        cmocka_unit_test(typed_values_of_white_space_are_empty),
        cmocka_unit_test(only_len_bytes_are_read),
        cmocka_unit_test(keys_must_be_utf8_jansson_accepts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
