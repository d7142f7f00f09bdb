/* The insertion-point scanner: the body's end tag and the scripts that load
 * the widget found where an HTML parser sees markup, wherever the document
 * is split, case-insensitively; the script tag's escaping. */
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
#define NOT_ASCII (-3)

#define SRC "/pegadm/bootstrap.js"
#define ID  "pega-wm-chat"

/* Feeds doc in pieces of at most piece bytes, the way the filter does, and
 * returns the absolute offset of the insertion point (the document's length
 * when the tag goes at its end), NOT_FOUND, SKIPPED or NOT_ASCII.
 * Checks on the way that the held bytes always are a tail of what was fed. */
static long feed(apr_pool_t *p, const char *doc, size_t first, size_t piece)
{
    pegadm_html_scan_t *s = pegadm_html_scan_make(p, SRC, ID);
    size_t len = strlen(doc), fed = 0;

    while (fed < len) {
        size_t n = fed == 0 && first ? first : piece;
        size_t held = pegadm_html_held(s);
        apr_size_t at = 0;
        pegadm_html_event_t ev;

        if (n > len - fed) {
            n = len - fed;
        }
        assert_true(held <= PEGADM_HTML_HELD_MAX && held <= fed);
        ev = pegadm_html_scan(s, doc + fed, n, &at);
        if (ev == PEGADM_HTML_BODY_END) {
            assert_true(at <= held + n);
            return (long)(fed - held + at);
        }
        if (ev == PEGADM_HTML_MARKER) {
            return SKIPPED;
        }
        if (ev == PEGADM_HTML_NOT_ASCII) {
            return NOT_ASCII;
        }
        assert_int_equal(ev, PEGADM_HTML_MORE);
        fed += n;
    }
    return pegadm_html_at_end(s) ? (long)len : NOT_FOUND;
}

/* Every split into two pieces and byte-by-byte feeding agree with one piece. */
static void assert_split_invariant(apr_pool_t *p, const char *doc, long expected)
{
    size_t len = strlen(doc);

    assert_int_equal(feed(p, doc, 0, len ? len : 1), expected);
    assert_int_equal(feed(p, doc, 0, 1), expected);
    for (size_t cut = 1; cut < len; cut++) {
        assert_int_equal(feed(p, doc, cut, len), expected);
    }
    for (size_t piece = 2; piece < 9; piece++) {
        assert_int_equal(feed(p, doc, 0, piece), expected);
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
    assert_split_invariant(*state, "<SCRIPT ID=\"PEGA-WM-CHAT\"></SCRIPT></body>", SKIPPED);
}

/* A '<' or "</" that does not go on to "</body" starts the match over. */
static void false_starts_restart_the_match(void **state)
{
    assert_split_invariant(*state, "<</body>", 1);
    assert_split_invariant(*state, "</</body>", NOT_FOUND); /* "</<" opens a bogus comment */
    assert_split_invariant(*state, "</bod></body>", 6);
    assert_split_invariant(*state, "</bo dy></b></body>", 12);
    assert_split_invariant(*state, "</bodyx></body >", 8);
    assert_split_invariant(*state, "</body/>", 0);
    assert_split_invariant(*state, "</div></bod", NOT_FOUND);
    assert_split_invariant(*state, "", NOT_FOUND);
    assert_split_invariant(*state, "no end tag at all", NOT_FOUND);
}

static void held_bytes_are_a_partial_body_end(void **state)
{
    pegadm_html_scan_t *s = pegadm_html_scan_make(*state, SRC, ID);
    apr_size_t at = 99;

    assert_int_equal(pegadm_html_scan(s, "text<", 5, &at), PEGADM_HTML_MORE);
    assert_int_equal(pegadm_html_held(s), 1);
    assert_int_equal(pegadm_html_scan(s, "/bo", 3, &at), PEGADM_HTML_MORE);
    assert_int_equal(pegadm_html_held(s), 4);
    assert_int_equal(pegadm_html_scan(s, "dy", 2, &at), PEGADM_HTML_MORE);
    assert_int_equal(pegadm_html_held(s), 6);
    /* the match completes in the next piece: it starts at the first held byte */
    assert_int_equal(pegadm_html_scan(s, ">", 1, &at), PEGADM_HTML_BODY_END);
    assert_int_equal(at, 0);
    assert_int_equal(pegadm_html_held(s), 0);
    assert_int_equal(pegadm_html_scan(s, "</body>", 7, &at), PEGADM_HTML_DONE);

    s = pegadm_html_scan_make(*state, SRC, ID);
    assert_int_equal(pegadm_html_scan(s, "</b", 3, &at), PEGADM_HTML_MORE);
    assert_int_equal(pegadm_html_scan(s, "r>", 2, &at), PEGADM_HTML_MORE);
    assert_int_equal(pegadm_html_held(s), 0);
}

/* Where the last "</body" of doc starts: the real one, in the documents below. */
static long last_body_end(const char *doc)
{
    const char *at = NULL;
    for (const char *c = strstr(doc, "</body"); c; c = strstr(c + 1, "</body")) {
        at = c;
    }
    return at ? (long)(at - doc) : NOT_FOUND;
}

/* What a parser reads as text, a script, a style, a title, a textarea, a
 * comment or an attribute value holds no end tag. */
static void body_end_only_where_it_is_markup(void **state)
{
    assert_split_invariant(*state, "<script>var s = \"</body>\";</script></body>",
                           last_body_end("<script>var s = \"</body>\";</script></body>"));
    assert_split_invariant(*state, "<SCRIPT type=module>x='</body>'</SCRIPT ></body>",
                           last_body_end("<SCRIPT type=module>x='</body>'</SCRIPT ></body>"));
    assert_split_invariant(*state, "<script>a</scriptx></body></script></body>",
                           last_body_end("<script>a</scriptx></body></script></body>"));
    assert_split_invariant(*state, "<style>p::after{content:'</body>'}</style></body>",
                           last_body_end("<style>p::after{content:'</body>'}</style></body>"));
    assert_split_invariant(*state, "<title></body></title></body>",
                           last_body_end("<title></body></title></body>"));
    assert_split_invariant(*state, "<textarea></body></textarea></body>",
                           last_body_end("<textarea></body></textarea></body>"));
    assert_split_invariant(*state, "<!-- </body> --></body>",
                           last_body_end("<!-- </body> --></body>"));
    assert_split_invariant(*state, "<!-- a -- b --!></body>",
                           last_body_end("<!-- a -- b --!></body>"));
    assert_split_invariant(*state, "<!--></body>", last_body_end("<!--></body>"));
    assert_split_invariant(*state, "<!---></body>", last_body_end("<!---></body>"));
    assert_split_invariant(*state, "<!DOCTYPE html></body>",
                           last_body_end("<!DOCTYPE html></body>"));
    assert_split_invariant(*state, "<?php echo '</body>' ?></body>",
                           last_body_end("<?php echo '</body>' ?></body>"));
    assert_split_invariant(*state, "<p title=\"</body>\"></body>",
                           last_body_end("<p title=\"</body>\"></body>"));
    assert_split_invariant(*state, "<p title='a > </body>'></body>",
                           last_body_end("<p title='a > </body>'></body>"));
    assert_split_invariant(*state, "<a x=</body>>x</a></body>",
                           last_body_end("<a x=</body>>x</a></body>"));
    assert_split_invariant(*state, "<plaintext></body>", NOT_FOUND);
    assert_split_invariant(*state, "<script>never closed </body>", NOT_FOUND);
    assert_split_invariant(*state, "a < b </body>", last_body_end("a < b </body>"));
}

static void a_script_that_loads_the_widget_skips(void **state)
{
    assert_split_invariant(*state, "<script src=\"/pegadm/bootstrap.js\"></script></body>",
                           SKIPPED);
    assert_split_invariant(*state, "<script id='pega-wm-chat' src=x></script></body>", SKIPPED);
    assert_split_invariant(*state, "<script id=PEGA-WM-CHAT></script></body>", SKIPPED);
    assert_split_invariant(*state,
                           "<script defer src=https://p.example/pegadm/bootstrap.js?v=2>"
                           "</script></body>",
                           SKIPPED);
    assert_split_invariant(*state, "<script src=\"//p.example/pegadm/bootstrap.js#x\">",
                           SKIPPED);
    /* after the insertion point a script no longer matters */
    assert_split_invariant(*state, "<p></body><script src=/pegadm/bootstrap.js>", 3);
}

/* Mentions are not scripts: text, other elements, other attributes, other paths. */
static void a_mention_is_no_script(void **state)
{
    assert_split_invariant(*state, "<p>pega-wm-chat /pegadm/bootstrap.js</p></body>",
                           last_body_end("<p>pega-wm-chat /pegadm/bootstrap.js</p></body>"));
    assert_split_invariant(
        *state, "<script>document.getElementById('pega-wm-chat')</script></body>", 56);
    assert_split_invariant(*state, "<div id=pega-wm-chat></div></body>",
                           last_body_end("<div id=pega-wm-chat></div></body>"));
    assert_split_invariant(*state, "<img src=/pegadm/bootstrap.js></body>",
                           last_body_end("<img src=/pegadm/bootstrap.js></body>"));
    assert_split_invariant(*state, "<script data-id=pega-wm-chat></script></body>",
                           last_body_end("<script data-id=pega-wm-chat></script></body>"));
    assert_split_invariant(*state, "<script src=/pegadm/bootstrap.jsx></script></body>",
                           last_body_end("<script src=/pegadm/bootstrap.jsx></script></body>"));
    assert_split_invariant(
        *state, "<script src=/x/pegadm/bootstrap.js></script></body>",
        last_body_end("<script src=/x/pegadm/bootstrap.js></script></body>"));
    assert_split_invariant(*state, "<script id=pega-wm-chat-2></script></body>",
                           last_body_end("<script id=pega-wm-chat-2></script></body>"));
}

static long first_body_end(const char *doc)
{
    return (long)(strstr(doc, "</body") - doc);
}

/* "<!--" in a script escapes it, and "<script" inside double-escapes it: the
 * next "</script>" then does not end the script ("-->" or a second one does). */
static void script_data_escapes_are_followed(void **state)
{
    static const char *const last[] = {
        "<script><!--<script></script></body>--></script></body>",
        "<script><!--<script>x</script></body></script></body>",
        "<SCRIPT><!-- <SCRIPT type=x>a</SCRIPT ></body></SCRIPT></body>",
        "<script><!--<script/></script></body>--></script></body>",
        "<script>if (a<!--b) {<script>\n</script></body>}--></script></body>",
        NULL};
    static const char *const first_after_script[] = {
        "<script><!--</script></body>",
        "<script><!--<scripts></script></body>",
        "<script><!--<script>--></script></body>",
        "<script><!- <script></script></body>",
        "<script><!--<script></script></script></body>",
        "<script><!--<script>a</scrip></script></script></body></script></body>",
        NULL};

    for (int i = 0; last[i]; i++) {
        assert_split_invariant(*state, last[i], last_body_end(last[i]));
    }
    for (int i = 0; first_after_script[i]; i++) {
        const char *doc = first_after_script[i];
        assert_split_invariant(*state, doc,
                               (long)(strstr(doc, "</script>") - doc) + 9 +
                                   (long)(strstr(strstr(doc, "</script>") + 9, "</body") -
                                          (strstr(doc, "</script>") + 9)));
    }
}

/* A script inside <template> or SVG/MathML does not run: the tag does not
 * go there, and such a script does not load the widget either. */
static void no_tag_in_templates_or_foreign_content(void **state)
{
    static const char *const last[] = {
        "<template></body></template></body>",
        "<template><template></template></body></template></body>",
        "<svg><script></body></script></svg></body>",
        "<svg><![CDATA[</svg></body>]]></svg></body>",
        "<svg><style></style></body></svg></body>",
        "<math><mi></body></math></body>",
        "<svg><svg></svg></body></svg></body>",
        "<svg><g></body></g></SVG></body>",
        "<template><svg></body></template></body>",
        "<svg><font></body></svg></body>",
        "<svg><g/></body></svg></body>",
        "<template><script src=/pegadm/bootstrap.js></script></template></body>",
        "<svg><script id=pega-wm-chat></script></svg></body>",
        NULL};

    for (int i = 0; last[i]; i++) {
        assert_split_invariant(*state, last[i], last_body_end(last[i]));
    }
    /* a self-closed <svg/> opens nothing; HTML start tags end foreign content */
    assert_split_invariant(*state, "<svg/></body>", 6);
    assert_split_invariant(*state, "<svg><p></body>", first_body_end("<svg><p></body>"));
    assert_split_invariant(*state, "<math><div></body>", first_body_end("<math><div></body>"));
    assert_split_invariant(*state, "<svg><font color=red></body>",
                           first_body_end("<svg><font color=red></body>"));
    assert_split_invariant(*state, "<svg><g></g></p></body>",
                           first_body_end("<svg><g></g></p></body>"));
    /* CDATA is markup only in foreign content: elsewhere a bogus comment */
    assert_split_invariant(*state, "<![CDATA[ ]]></body>",
                           first_body_end("<![CDATA[ ]]></body>"));
    assert_split_invariant(*state, "<svg><![CDATA[x]]]></svg></body>",
                           last_body_end("<svg><![CDATA[x]]]></svg></body>"));
    assert_split_invariant(*state, "<svg><![CDATA[x]]></svg></body>",
                           last_body_end("<svg><![CDATA[x]]></svg></body>"));
    assert_split_invariant(*state, "<svg><![CDAT></svg></body>",
                           last_body_end("<svg><![CDAT></svg></body>"));
}

/* With no "</body" in HTML content, the tag goes at the end of a document
 * that had one where the tag cannot go, if the end is HTML content. */
static void the_end_when_the_body_end_was_out_of_reach(void **state)
{
    static const char *const at_end[] = {"<template></body></template>",
                                         "<svg></body></svg>\n</html>\n",
                                         "<svg></body><![CDATA[</svg>]]></svg><p>",
                                         "<template></body></template><!-- c -->", NULL};
    static const char *const left[] = {"<template></body>",
                                       "<svg></body>",
                                       "<svg></body></svg><p",
                                       "<template></body></template><!--",
                                       "<template></body></template><script>",
                                       "no end tag",
                                       NULL};

    for (int i = 0; at_end[i]; i++) {
        assert_split_invariant(*state, at_end[i], (long)strlen(at_end[i]));
    }
    for (int i = 0; left[i]; i++) {
        assert_split_invariant(*state, left[i], NOT_FOUND);
    }
}

static void utf16_and_utf32_pages_are_left_alone(void **state)
{
    static const char utf32be[] = {0, 0, (char)0xFE, (char)0xFF, 0, 0, 0, '<'};
    pegadm_html_scan_t *s = pegadm_html_scan_make(*state, SRC, ID);
    apr_size_t at;

    assert_split_invariant(*state, "\xFE\xFF<", NOT_ASCII);
    assert_split_invariant(*state, "\xFF\xFE<", NOT_ASCII);
    assert_split_invariant(*state, "\xEF\xBB\xBF</body>", 3);
    assert_int_equal(pegadm_html_scan(s, utf32be, 3, &at), PEGADM_HTML_MORE);
    assert_int_equal(pegadm_html_scan(s, utf32be + 3, 5, &at), PEGADM_HTML_NOT_ASCII);
    assert_int_equal(pegadm_html_scan(s, "</body>", 7, &at), PEGADM_HTML_DONE);
    assert_false(pegadm_html_at_end(s));

    assert_true(pegadm_html_charset_ascii(NULL));
    assert_true(pegadm_html_charset_ascii("text/html"));
    assert_true(pegadm_html_charset_ascii("text/html; charset=utf-8"));
    assert_true(pegadm_html_charset_ascii("text/html;charset=Shift_JIS"));
    assert_true(pegadm_html_charset_ascii("text/html; charset=unicode-1-1-utf-8"));
    assert_true(pegadm_html_charset_ascii("text/html; charset=windows-1252"));
    assert_false(pegadm_html_charset_ascii("text/html; charset=UTF-16"));
    assert_false(pegadm_html_charset_ascii("text/html; charset=utf-16le"));
    assert_false(pegadm_html_charset_ascii("text/html;charset=\"ISO-2022-JP\""));
    assert_false(pegadm_html_charset_ascii("text/html; q=1; charset = utf-32BE"));
    assert_false(pegadm_html_charset_ascii("text/html; charset='iso-2022-kr'"));
    assert_false(pegadm_html_charset_ascii("application/xhtml+xml; charset=unicode"));
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
        POOL_TEST(body_end_only_where_it_is_markup),
        POOL_TEST(a_script_that_loads_the_widget_skips),
        POOL_TEST(a_mention_is_no_script),
        POOL_TEST(script_data_escapes_are_followed),
        POOL_TEST(no_tag_in_templates_or_foreign_content),
        POOL_TEST(the_end_when_the_body_end_was_out_of_reach),
        POOL_TEST(utf16_and_utf32_pages_are_left_alone),
        POOL_TEST(script_tag_shape_and_escaping),
    };
    int failed;

    apr_initialize();
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    apr_terminate();
    return failed;
}
