/* The fixed-shape session answer: the very bytes jansson's compact output
 * gives for safe values, and no answer for values JSON would escape. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <jansson.h>

#include "pegadm_answer.h"
#include "pegadm_test_pool.h"

static const char widget[] = "0b6c3d52-5b7a-4c53-9a55-2f6f3c2d8e11";

static void assert_as_jansson(apr_pool_t *p, const char *sid)
{
    json_t *obj = json_pack("{s:s, s:s}", "sessionId", sid, "widgetId", widget);
    char *expected = json_dumps(obj, JSON_COMPACT);
    apr_size_t len = 0;
    const char *got = pegadm_session_answer(p, sid, widget, &len);

    assert_non_null(got);
    assert_int_equal(len, strlen(expected) + 1);
    assert_memory_equal(got, expected, strlen(expected));
    assert_string_equal(got + strlen(expected), "\n");
    free(expected);
    json_decref(obj);
}

static void test_safe_values_give_janssons_bytes(void **state)
{
    char longest[129];
    memset(longest, 'A', 128);
    longest[128] = '\0';
    assert_as_jansson(*state, "e1f3c0a2-7d7a-4c1e-9f0b-1a2b3c4d5e6f");
    assert_as_jansson(*state, "a.b_c~d:e-f/");
    assert_as_jansson(*state, longest);
    assert_as_jansson(*state, "");
}

static void test_values_json_would_escape_are_refused(void **state)
{
    const char *unsafe[] = {"a\"b", "a\\b", "a\nb", "a\x1f", "caf\xc3\xa9", "\x7f"};
    apr_size_t len;
    for (size_t i = 0; i < sizeof(unsafe) / sizeof(unsafe[0]); i++) {
        assert_null(pegadm_session_answer(*state, unsafe[i], widget, &len));
        assert_null(pegadm_session_answer(*state, "sid", unsafe[i], &len));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        POOL_TEST(test_safe_values_give_janssons_bytes),
        POOL_TEST(test_values_json_would_escape_are_refused),
    };
    int failed;
    apr_initialize();
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    apr_terminate();
    return failed;
}
