/* Where the bootstrap <script> tag goes in an HTML document that streams by
 * in pieces split anywhere: right before the first end tag "</body" that an
 * HTML parser sees as markup in HTML content (not inside a script, style,
 * textarea, title, comment or attribute value, nor inside <template>, SVG
 * or MathML, where a script does not run), unless a <script> in HTML
 * content whose src is the bootstrap URL or whose id is the widget
 * script's comes first, which means the page already loads the widget.
 * Text that merely mentions either does not count. A "</body" seen only
 * where the tag cannot go moves the tag to the document's end, if that is
 * HTML content. A page that starts with a UTF-16 or UTF-32 byte order mark
 * is left alone. */
#ifndef PEGADM_HTML_H
#define PEGADM_HTML_H

#include <apr_pools.h>

typedef struct pegadm_html_scan_t pegadm_html_scan_t;

typedef enum {
    PEGADM_HTML_MORE = 0,  /* neither seen yet: hold back pegadm_html_held() bytes */
    PEGADM_HTML_BODY_END,  /* the body's end tag found: the tag goes at *at */
    PEGADM_HTML_MARKER,    /* a script that loads the widget came first: leave the page */
    PEGADM_HTML_NOT_ASCII, /* a UTF-16 or UTF-32 byte order mark: leave the page */
    PEGADM_HTML_DONE       /* an earlier call returned another event than MORE */
} pegadm_html_event_t;

/* A scanner for one document. script_src: the bootstrap URL's path (a
 * script whose src is it, with or without scheme and host, query or
 * fragment, loads the widget); script_id: the widget script's id. Both
 * non-empty, compared ASCII case-insensitively; copied into p. */
pegadm_html_scan_t *pegadm_html_scan_make(apr_pool_t *p, const char *script_src,
                                          const char *script_id);

/* How many bytes at the end of what was fed so far may be the start of the
 * body's end tag (0 to PEGADM_HTML_HELD_MAX). The caller holds them back,
 * unsent, and sends them in front of the next piece (or as they are at the
 * end of the document). */
#define PEGADM_HTML_HELD_MAX 6
apr_size_t pegadm_html_held(const pegadm_html_scan_t *s);

/* Scans the next len bytes. On BODY_END, *at is where "</body" starts,
 * counted from the first held byte: an offset into (held bytes, then buf). */
pegadm_html_event_t pegadm_html_scan(pegadm_html_scan_t *s, const char *buf, apr_size_t len,
                                     apr_size_t *at);

/* Once the whole document was fed and every call returned MORE: whether
 * the tag goes at its very end (after the held bytes): a "</body" came only
 * inside <template>, SVG or MathML, and the document ends in HTML content,
 * outside any tag, comment or raw text. */
int pegadm_html_at_end(const pegadm_html_scan_t *s);

/* Whether a Content-Type (NULL or without a charset: yes) names a charset
 * in which ASCII bytes are ASCII characters, so that the tag can be written
 * as ASCII: not UTF-16, UTF-32, UTF-7, ISO-2022-* or EBCDIC. */
int pegadm_html_charset_ascii(const char *content_type);

/* <script src="SRC" nonce="NONCE" defer></script> with both values escaped
 * for a quoted attribute; without the nonce attribute when nonce is NULL or
 * empty. Allocated in p. */
char *pegadm_html_script_tag(apr_pool_t *p, const char *src, const char *nonce);

#endif
