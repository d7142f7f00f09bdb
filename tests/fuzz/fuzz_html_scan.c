/* The insertion-point scanner (pegadm_html.c) over any page: the first
 * byte sets the piece size; fed in pieces the document reads exactly as in
 * one (the same event, the same insertion point, the same choice of the
 * document's end), the held bytes stay a short tail, and an insertion
 * point is always at a "</body" followed by a delimiter. */
#include <string.h>
#include <strings.h>

#include "fuzz_support.h"
#include "pegadm_html.h"

#define SRC "/pegadm/bootstrap.js"
#define ID  "pega-wm-chat"

/* The event and the absolute insertion offset of doc fed piece bytes at a
 * time; MORE with *offset len when the tag goes at the end. */
static pegadm_html_event_t feed(apr_pool_t *p, const char *doc, size_t len, size_t piece,
                                size_t *offset)
{
    pegadm_html_scan_t *s = pegadm_html_scan_make(p, SRC, ID);
    size_t fed = 0;

    while (fed < len) {
        size_t n = piece < len - fed ? piece : len - fed;
        size_t held = pegadm_html_held(s);
        apr_size_t at = 0;
        pegadm_html_event_t ev;

        PEGADM_FUZZ_CHECK(held <= PEGADM_HTML_HELD_MAX && held <= fed);
        ev = pegadm_html_scan(s, doc + fed, n, &at);
        if (ev == PEGADM_HTML_BODY_END) {
            PEGADM_FUZZ_CHECK(at <= held + n);
            *offset = fed - held + at;
            return ev;
        }
        if (ev != PEGADM_HTML_MORE) {
            PEGADM_FUZZ_CHECK(ev == PEGADM_HTML_MARKER || ev == PEGADM_HTML_NOT_ASCII);
            return ev;
        }
        fed += n;
    }
    *offset = pegadm_html_at_end(s) ? len : 0;
    return PEGADM_HTML_MORE;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    const char *doc;
    size_t len, whole_at = 0, piece_at = 0;
    pegadm_html_event_t whole, pieces;

    if (size == 0) {
        return 0;
    }
    p = pegadm_fuzz_pool();
    doc = (const char *)data + 1;
    len = size - 1;
    whole = feed(p, doc, len, len ? len : 1, &whole_at);
    pieces = feed(p, doc, len, 1 + data[0] % 8, &piece_at);
    PEGADM_FUZZ_CHECK(whole == pieces && whole_at == piece_at);
    if (whole == PEGADM_HTML_BODY_END) {
        PEGADM_FUZZ_CHECK(whole_at + 6 < len && !strncasecmp(doc + whole_at, "</body", 6));
        PEGADM_FUZZ_CHECK(strchr(" \t\n\f\r/>", doc[whole_at + 6]) != NULL &&
                          doc[whole_at + 6] != '\0');
    }
    apr_pool_destroy(p);
    return 0;
}
