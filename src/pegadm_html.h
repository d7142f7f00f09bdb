/* Where the bootstrap <script> tag goes in an HTML document that streams by
 * in pieces split anywhere: right before the first "</body", unless a
 * marker (the bootstrap URL, the widget script's id) comes first, which
 * means the page already loads the widget. */
#ifndef PEGADM_HTML_H
#define PEGADM_HTML_H

#include <apr_pools.h>

typedef struct pegadm_html_scan_t pegadm_html_scan_t;

typedef enum {
    PEGADM_HTML_MORE = 0, /* neither seen yet: hold back pegadm_html_held() bytes */
    PEGADM_HTML_BODY_END, /* "</body" found: the tag goes at *at */
    PEGADM_HTML_MARKER,   /* a marker came first: leave the page alone */
    PEGADM_HTML_DONE      /* an earlier call returned BODY_END or MARKER */
} pegadm_html_event_t;

/* A scanner for one document. markers: a NULL-terminated list of non-empty
 * strings, copied into p. All matching is ASCII case-insensitive. */
pegadm_html_scan_t *pegadm_html_scan_make(apr_pool_t *p, const char *const *markers);

/* How many bytes at the end of what was fed so far may be the start of
 * "</body" (0 to 5). The caller holds them back, unsent, and sends them in
 * front of the next piece (or as they are at the end of the document). */
apr_size_t pegadm_html_held(const pegadm_html_scan_t *s);

/* Scans the next len bytes. On BODY_END, *at is where "</body" starts,
 * counted from the first held byte: an offset into (held bytes, then buf). */
pegadm_html_event_t pegadm_html_scan(pegadm_html_scan_t *s, const char *buf, apr_size_t len,
                                     apr_size_t *at);

/* <script src="SRC" nonce="NONCE" defer></script> with both values escaped
 * for a quoted attribute; without the nonce attribute when nonce is NULL or
 * empty. Allocated in p. */
char *pegadm_html_script_tag(apr_pool_t *p, const char *src, const char *nonce);

#endif
