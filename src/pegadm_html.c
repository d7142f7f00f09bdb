/* Streaming search for the insertion point of the bootstrap tag. Each
 * pattern is a Knuth-Morris-Pratt matcher, so a match split across pieces
 * is found with no buffering beyond the partial "</body" the caller holds. */
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include "pegadm_html.h"

#define BODY_END "</body"

typedef struct {
    const char *pat;   /* lower case */
    apr_size_t len;    /* > 0 */
    apr_size_t *fail;  /* fail[i]: longest proper border of pat[0..i] */
    apr_size_t filled; /* bytes of pat matched at the end of the input */
} matcher_t;

struct pegadm_html_scan_t {
    matcher_t body;
    matcher_t *markers;
    int nmarkers;
    int done;
};

static void matcher_init(apr_pool_t *p, matcher_t *m, const char *pattern)
{
    char *pat = apr_pstrdup(p, pattern);
    apr_size_t k = 0;

    for (char *c = pat; *c; c++) {
        *c = (char)apr_tolower(*c);
    }
    m->pat = pat;
    m->len = strlen(pat);
    m->fail = apr_pcalloc(p, m->len * sizeof(*m->fail));
    m->filled = 0;
    for (apr_size_t i = 1; i < m->len; i++) {
        while (k > 0 && pat[i] != pat[k]) {
            k = m->fail[k - 1];
        }
        if (pat[i] == pat[k]) {
            k++;
        }
        m->fail[i] = k;
    }
}

/* Advances by one input byte; true when the whole pattern has matched. */
static int matcher_step(matcher_t *m, char c)
{
    c = (char)apr_tolower(c);
    while (m->filled > 0 && m->pat[m->filled] != c) {
        m->filled = m->fail[m->filled - 1];
    }
    if (m->pat[m->filled] == c) {
        m->filled++;
    }
    return m->filled == m->len;
}

pegadm_html_scan_t *pegadm_html_scan_make(apr_pool_t *p, const char *const *markers)
{
    pegadm_html_scan_t *s = apr_pcalloc(p, sizeof(*s));

    matcher_init(p, &s->body, BODY_END);
    while (markers[s->nmarkers]) {
        s->nmarkers++;
    }
    s->markers = apr_pcalloc(p, (apr_size_t)s->nmarkers * sizeof(*s->markers));
    for (int i = 0; i < s->nmarkers; i++) {
        matcher_init(p, &s->markers[i], markers[i]);
    }
    return s;
}

apr_size_t pegadm_html_held(const pegadm_html_scan_t *s)
{
    /* "</body" has no border: what matched so far is exactly the tail. */
    return s->done ? 0 : s->body.filled;
}

pegadm_html_event_t pegadm_html_scan(pegadm_html_scan_t *s, const char *buf, apr_size_t len,
                                     apr_size_t *at)
{
    apr_size_t held = pegadm_html_held(s);

    if (s->done) {
        return PEGADM_HTML_DONE;
    }
    for (apr_size_t i = 0; i < len; i++) {
        for (int m = 0; m < s->nmarkers; m++) {
            if (matcher_step(&s->markers[m], buf[i])) {
                s->done = 1;
                return PEGADM_HTML_MARKER;
            }
        }
        if (matcher_step(&s->body, buf[i])) {
            s->done = 1;
            *at = held + i + 1 - s->body.len;
            return PEGADM_HTML_BODY_END;
        }
    }
    return PEGADM_HTML_MORE;
}

/* The entity for a character that cannot stand in a quoted attribute. */
static const char *entity(char c)
{
    switch (c) {
    case '&':
        return "&amp;";
    case '<':
        return "&lt;";
    case '>':
        return "&gt;";
    case '"':
        return "&quot;";
    case '\'':
        return "&#39;";
    }
    return NULL;
}

static const char *attr_escape(apr_pool_t *p, const char *in)
{
    apr_size_t extra = 0, o = 0;
    const char *rep;
    char *out;

    for (const char *c = in; *c; c++) {
        extra += (rep = entity(*c)) ? strlen(rep) - 1 : 0;
    }
    if (!extra) {
        return in;
    }
    out = apr_palloc(p, strlen(in) + extra + 1);
    for (const char *c = in; *c; c++) {
        if ((rep = entity(*c)) != NULL) {
            memcpy(out + o, rep, strlen(rep));
            o += strlen(rep);
        } else {
            out[o++] = *c;
        }
    }
    out[o] = '\0';
    return out;
}

char *pegadm_html_script_tag(apr_pool_t *p, const char *src, const char *nonce)
{
    int with_nonce = nonce && *nonce;
    return apr_pstrcat(p, "<script src=\"", attr_escape(p, src), "\"",
                       with_nonce ? " nonce=\"" : "", with_nonce ? attr_escape(p, nonce) : "",
                       with_nonce ? "\"" : "", " defer></script>", NULL);
}
