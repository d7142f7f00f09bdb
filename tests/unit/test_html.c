/* The insertion-point scanner: "</body" and markers found wherever the
 * document is split, case-insensitively; the script tag's escaping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "pegadm_test_pool.h"

#include <apr_general.h>
#include <apr_pools.h>

#include "pegadm_html.h"

#define NOT_FOUND (-1)
#define SKIPPED   (-2)

static const char *const markers[] = {"/pegadm/bootstrap.js", "pega-wm-chat", NULL};

/* Feeds doc in pieces of at most piece bytes, the way the filter does, and
 * returns the absolute offset of the insertion point, NOT_FOUND or SKIPPED.
 * Checks on the way that the held bytes always are a tail of what was fed. */
static long feed(apr_pool_t *p, const char *const *marks, const char *doc, size_t first,
                 size_t piece)
{
    pegadm_html_scan_t *s = pegadm_html_scan_make(p, marks);
    size_t len = strlen(doc), fed = 0;

    while (fed < len) {
        size_t n = fed == 0 && first ? first : piece;
        size_t held = pegadm_html_held(s);
        apr_size_t at = 0;
        pegadm_html_event_t ev;

        if (n > len - fed) {
            n = len - fed;
        }
        assert_true(held <= 5 && held <= fed);
        ev = pegadm_html_scan(s, doc + fed, n, &at);
        if (ev == PEGADM_HTML_BODY_END) {
            assert_true(at <= held + n);
            return (long)(fed - held + at);
        }
        if (ev == PEGADM_HTML_MARKER) {
            return SKIPPED;
        }
        assert_int_equal(ev, PEGADM_HTML_MORE);
        fed += n;
    }
    return NOT_FOUND;
}

/* Every split into two pieces and byte-by-byte feeding agree with one piece. */
static void assert_split_invariant(apr_pool_t *p, const char *doc, long expected)
{
    size_t len = strlen(doc);

    assert_int_equal(feed(p, markers, doc, 0, len ? len : 1), expected);
    assert_int_equal(feed(p, markers, doc, 0, 1), expected);
    for (size_t cut = 1; cut < len; cut++) {
        assert_int_equal(feed(p, markers, doc, cut, len), expected);
    }
    for (size_t piece = 2; piece < 9; piece++) {
        assert_int_equal(feed(p, markers, doc, 0, piece), expected);
    }
}

static void finds_the_first_body_end(void **state)
{
    const char *doc = "<html><body><p>hi</p></body></html>";
    assert_split_invariant(*state, doc, (long)(strstr(doc, "</body") - doc));
    assert_split_invariant(*state, "a</body>b</body>", 1);
    assert_split_invariant(*state, "</body>", 0);
}

static void matching_ignores_case(void **state)
{
    assert_split_invariant(*state, "<p>x</BODY>", 4);
    assert_split_invariant(*state, "<p>x</BoDy\n>", 4);
    assert_split_invariant(*state, "<script id=\"PEGA-WM-CHAT\"></script></body>", SKIPPED);
}

/* A '<' or "</" that does not go on to "</body" starts the match over. */
static void false_starts_restart_the_match(void **state)
{
    assert_split_invariant(*state, "<</body>", 1);
    assert_split_invariant(*state, "</</body>", 2);
    assert_split_invariant(*state, "</bod</body>", 5);
    assert_split_invariant(*state, "</bo dy></b></body>", 12);
    assert_split_invariant(*state, "</div></bod", NOT_FOUND);
    assert_split_invariant(*state, "", NOT_FOUND);
    assert_split_invariant(*state, "no end tag at all", NOT_FOUND);
}

static void held_bytes_are_a_partial_body_end(void **state)
{
    pegadm_html_scan_t *s = pegadm_html_scan_make(*state, markers);
    apr_size_t at = 99;

    assert_int_equal(pegadm_html_scan(s, "text<", 5, &at), PEGADM_HTML_MORE);
    assert_int_equal(pegadm_html_held(s), 1);
    assert_int_equal(pegadm_html_scan(s, "/bo", 3, &at), PEGADM_HTML_MORE);
    assert_int_equal(pegadm_html_held(s), 4);
    /* the match completes in the next piece: it starts at the first held byte */
    assert_int_equal(pegadm_html_scan(s, "dy>", 3, &at), PEGADM_HTML_BODY_END);
    assert_int_equal(at, 0);
    assert_int_equal(pegadm_html_held(s), 0);
    assert_int_equal(pegadm_html_scan(s, "</body>", 7, &at), PEGADM_HTML_DONE);

    s = pegadm_html_scan_make(*state, markers);
    assert_int_equal(pegadm_html_scan(s, "</b", 3, &at), PEGADM_HTML_MORE);
    assert_int_equal(pegadm_html_scan(s, "r>", 2, &at), PEGADM_HTML_MORE);
    assert_int_equal(pegadm_html_held(s), 0);
}

static void a_marker_before_the_body_end_skips(void **state)
{
    assert_split_invariant(*state, "<script src=\"/pegadm/bootstrap.js\"></script></body>",
                           SKIPPED);
    assert_split_invariant(*state, "<script id='pega-wm-chat' src=x></script></body>", SKIPPED);
    /* after the insertion point a marker no longer matters */
    assert_split_invariant(*state, "<p></body><script src=/pegadm/bootstrap.js>", 3);
    /* a marker is a substring; a near miss is none */
    assert_split_invariant(*state, "/pegadm/bootstrap.jsx", SKIPPED);
    assert_split_invariant(*state, "/pegadm/bootstrap.j</body>", 19);
}

/* Markers with borders (a prefix that is also a suffix) need the failure
 * function: a naive restart would miss these. */
static void self_overlapping_markers_are_found(void **state)
{
    static const char *const tricky[] = {"aab", "ababc", NULL};
    apr_pool_t *p = *state;

    assert_int_equal(feed(p, tricky, "aaab</body>", 0, 1), SKIPPED);
    assert_int_equal(feed(p, tricky, "xabababc</body>", 0, 3), SKIPPED);
    assert_int_equal(feed(p, tricky, "abab</body>", 0, 2), 4);
    assert_int_equal(feed(p, tricky, "abaab", 3, 100), SKIPPED);
}

static void no_markers_at_all(void **state)
{
    static const char *const none[] = {NULL};
    assert_int_equal(feed(*state, none, "pega-wm-chat</body>", 0, 4), 12);
}

static void script_tag_shape_and_escaping(void **state)
{
    apr_pool_t *p = *state;

    assert_string_equal(pegadm_html_script_tag(p, "/pegadm/bootstrap.js", NULL),
                        "<script src=\"/pegadm/bootstrap.js\" defer></script>");
    assert_string_equal(pegadm_html_script_tag(p, "/b.js", ""),
                        "<script src=\"/b.js\" defer></script>");
    assert_string_equal(pegadm_html_script_tag(p, "/b.js", "r4nd0m+/="),
                        "<script src=\"/b.js\" nonce=\"r4nd0m+/=\" defer></script>");
    assert_string_equal(pegadm_html_script_tag(p, "/b.js?a=1&b=2", "\"><script>'&"),
                        "<script src=\"/b.js?a=1&amp;b=2\" "
                        "nonce=\"&quot;&gt;&lt;script&gt;&#39;&amp;\" defer></script>");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        POOL_TEST(finds_the_first_body_end),
        POOL_TEST(matching_ignores_case),
        POOL_TEST(false_starts_restart_the_match),
        POOL_TEST(held_bytes_are_a_partial_body_end),
        POOL_TEST(a_marker_before_the_body_end_skips),
        POOL_TEST(self_overlapping_markers_are_found),
        POOL_TEST(no_markers_at_all),
        POOL_TEST(script_tag_shape_and_escaping),
    };
    int failed;

    apr_initialize();
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    apr_terminate();
    return failed;
}
