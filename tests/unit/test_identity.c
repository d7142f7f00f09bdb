/* Customer ID validation: length, control characters, strict UTF-8. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "pegadm_identity.h"

/* For literals that may hold NUL: the length comes from sizeof. */
#define CHECK_LITERAL(s) pegadm_customer_id_check(s, sizeof(s) - 1)

static void empty_is_unauthenticated(void **state)
{
    assert_int_equal(pegadm_customer_id_check(NULL, 0), PEGADM_ID_EMPTY);
    assert_int_equal(pegadm_customer_id_check("", 0), PEGADM_ID_EMPTY);
    assert_int_equal(pegadm_customer_id_check("ignored", 0), PEGADM_ID_EMPTY);
}

static void length_limit_is_256_bytes(void **state)
{
    char id[PEGADM_CUSTOMER_ID_MAX + 1];

    memset(id, 'a', sizeof(id));
    assert_int_equal(pegadm_customer_id_check(id, 1), PEGADM_ID_OK);
    assert_int_equal(pegadm_customer_id_check(id, 256), PEGADM_ID_OK);
    assert_int_equal(pegadm_customer_id_check(id, 257), PEGADM_ID_TOO_LONG);
}

/* The limit is in bytes, not characters: 128 two-byte characters fit, a
 * 257th byte does not. */
static void length_limit_counts_bytes(void **state)
{
    char id[258];
    size_t i;

    for (i = 0; i + 1 < sizeof(id); i += 2) {
        id[i] = '\xc3';
        id[i + 1] = '\xa9';
    }
    assert_int_equal(pegadm_customer_id_check(id, 256), PEGADM_ID_OK);
    assert_int_equal(pegadm_customer_id_check(id, 258), PEGADM_ID_TOO_LONG);
}

static void every_c0_control_is_refused(void **state)
{
    char id[3] = "a?b";
    int c;

    for (c = 0x00; c < 0x20; c++) {
        id[1] = (char)c;
        assert_int_equal(pegadm_customer_id_check(id, 3), PEGADM_ID_CONTROL_CHAR);
        assert_int_equal(pegadm_customer_id_check(id + 1, 1), PEGADM_ID_CONTROL_CHAR);
    }
    assert_int_equal(CHECK_LITERAL("user\0admin"), PEGADM_ID_CONTROL_CHAR);
    assert_int_equal(CHECK_LITERAL("user\r\nX-Injected: 1"), PEGADM_ID_CONTROL_CHAR);
    assert_int_equal(CHECK_LITERAL("tab\there"), PEGADM_ID_CONTROL_CHAR);
}

static void del_and_c1_controls_are_refused(void **state)
{
    char id[2] = {'\xc2', 0};
    int c;

    assert_int_equal(CHECK_LITERAL("a\x7f"), PEGADM_ID_CONTROL_CHAR);
    assert_int_equal(CHECK_LITERAL("next line \xc2\x85"), PEGADM_ID_CONTROL_CHAR);
    for (c = 0x80; c <= 0x9f; c++) {
        id[1] = (char)c;
        assert_int_equal(pegadm_customer_id_check(id, 2), PEGADM_ID_CONTROL_CHAR);
    }
    assert_int_equal(CHECK_LITERAL("\xc2\xa0"), PEGADM_ID_OK); /* U+00A0, just past C1 */
}

static void printable_ascii_is_fine(void **state)
{
    char id[0x7f - 0x20];
    int c;

    for (c = 0x20; c < 0x7f; c++) {
        id[c - 0x20] = (char)c;
    }
    assert_int_equal(pegadm_customer_id_check(id, sizeof(id)), PEGADM_ID_OK);
    assert_int_equal(CHECK_LITERAL("x"), PEGADM_ID_OK);
    assert_int_equal(CHECK_LITERAL("\"quoted\" back\\slash {\"json\":1} <b> %00"),
                     PEGADM_ID_OK);
}

static void valid_multibyte_utf8_is_fine(void **state)
{
    assert_int_equal(CHECK_LITERAL("ren\xc3\xa9"), PEGADM_ID_OK);      /* é: 2 bytes */
    assert_int_equal(CHECK_LITERAL("\xe2\x82\xac"), PEGADM_ID_OK);     /* €: 3 bytes */
    assert_int_equal(CHECK_LITERAL("\xf0\x9f\x98\x80"), PEGADM_ID_OK); /* U+1F600 */
    assert_int_equal(CHECK_LITERAL("\xe0\xa0\x80"), PEGADM_ID_OK);     /* U+0800 */
    assert_int_equal(CHECK_LITERAL("\xed\x9f\xbf"), PEGADM_ID_OK);     /* U+D7FF */
    assert_int_equal(CHECK_LITERAL("\xee\x80\x80"), PEGADM_ID_OK);     /* U+E000 */
    assert_int_equal(CHECK_LITERAL("\xef\xbf\xbd"), PEGADM_ID_OK);     /* U+FFFD */
    assert_int_equal(CHECK_LITERAL("\xf0\x90\x80\x80"), PEGADM_ID_OK); /* U+10000 */
    assert_int_equal(CHECK_LITERAL("\xf4\x8f\xbf\xbf"), PEGADM_ID_OK); /* U+10FFFF */
}

static void overlong_encodings_are_refused(void **state)
{
    assert_int_equal(CHECK_LITERAL("\xc0\xaf"), PEGADM_ID_BAD_UTF8); /* '/' */
    assert_int_equal(CHECK_LITERAL("\xc1\xbf"), PEGADM_ID_BAD_UTF8);
    assert_int_equal(CHECK_LITERAL("\xc0\x80"), PEGADM_ID_BAD_UTF8); /* NUL */
    assert_int_equal(CHECK_LITERAL("\xe0\x80\xaf"), PEGADM_ID_BAD_UTF8);
    assert_int_equal(CHECK_LITERAL("\xe0\x9f\xbf"), PEGADM_ID_BAD_UTF8);
    assert_int_equal(CHECK_LITERAL("\xf0\x80\x80\xaf"), PEGADM_ID_BAD_UTF8);
    assert_int_equal(CHECK_LITERAL("\xf0\x8f\xbf\xbf"), PEGADM_ID_BAD_UTF8);
}

static void surrogates_are_refused(void **state)
{
    assert_int_equal(CHECK_LITERAL("\xed\xa0\x80"), PEGADM_ID_BAD_UTF8); /* U+D800 */
    assert_int_equal(CHECK_LITERAL("\xed\xbf\xbf"), PEGADM_ID_BAD_UTF8); /* U+DFFF */
    assert_int_equal(CHECK_LITERAL("\xed\xa0\xbd\xed\xb8\x80"), PEGADM_ID_BAD_UTF8); /* CESU */
}

static void beyond_u10ffff_is_refused(void **state)
{
    assert_int_equal(CHECK_LITERAL("\xf4\x90\x80\x80"), PEGADM_ID_BAD_UTF8);
    assert_int_equal(CHECK_LITERAL("\xf5\x80\x80\x80"), PEGADM_ID_BAD_UTF8);
    assert_int_equal(CHECK_LITERAL("\xf8\x88\x80\x80\x80"), PEGADM_ID_BAD_UTF8);
    assert_int_equal(CHECK_LITERAL("\xff"), PEGADM_ID_BAD_UTF8);
    assert_int_equal(CHECK_LITERAL("\xfe"), PEGADM_ID_BAD_UTF8);
}

static void stray_and_truncated_sequences_are_refused(void **state)
{
    assert_int_equal(CHECK_LITERAL("\x80"), PEGADM_ID_BAD_UTF8);
    assert_int_equal(CHECK_LITERAL("a\xbf"
                                   "b"),
                     PEGADM_ID_BAD_UTF8);
    assert_int_equal(CHECK_LITERAL("abc\xc3"), PEGADM_ID_BAD_UTF8);
    assert_int_equal(CHECK_LITERAL("abc\xe2\x82"), PEGADM_ID_BAD_UTF8);
    assert_int_equal(CHECK_LITERAL("abc\xf0\x9f\x98"), PEGADM_ID_BAD_UTF8);
    assert_int_equal(CHECK_LITERAL("\xe2\x82x"), PEGADM_ID_BAD_UTF8);
    assert_int_equal(CHECK_LITERAL("\xc3\xc3\xa9"), PEGADM_ID_BAD_UTF8);
    /* The length given is what counts, not a NUL later in memory. */
    assert_int_equal(pegadm_customer_id_check("ren\xc3\xa9", 4), PEGADM_ID_BAD_UTF8);
}

static void reasons_are_short_english(void **state)
{
    assert_string_equal(pegadm_id_check_reason(PEGADM_ID_EMPTY), "empty");
    assert_string_equal(pegadm_id_check_reason(PEGADM_ID_TOO_LONG), "longer than 256 bytes");
    assert_string_equal(pegadm_id_check_reason(PEGADM_ID_CONTROL_CHAR),
                        "contains a control character");
    assert_string_equal(pegadm_id_check_reason(PEGADM_ID_BAD_UTF8), "not valid UTF-8");
    assert_non_null(pegadm_id_check_reason(PEGADM_ID_OK));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(empty_is_unauthenticated),
        cmocka_unit_test(length_limit_is_256_bytes),
        cmocka_unit_test(length_limit_counts_bytes),
        cmocka_unit_test(every_c0_control_is_refused),
        cmocka_unit_test(del_and_c1_controls_are_refused),
        cmocka_unit_test(printable_ascii_is_fine),
        cmocka_unit_test(valid_multibyte_utf8_is_fine),
        cmocka_unit_test(overlong_encodings_are_refused),
        cmocka_unit_test(surrogates_are_refused),
        cmocka_unit_test(beyond_u10ffff_is_refused),
        cmocka_unit_test(stray_and_truncated_sequences_are_refused),
        cmocka_unit_test(reasons_are_short_english),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
