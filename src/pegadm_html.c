/* Streaming search for the insertion point: a small HTML tokenizer after
 * the states of the WHATWG parsing algorithm that matter for where markup
 * is (data, tags and their attributes, comments, raw text elements), one
 * byte at a time, so that a document split anywhere is read the same way.
 * Not followed: character references, foreign (SVG, MathML) content, the
 * escaped states of script data ("<!--" inside a script). */
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include "pegadm_html.h"

#define TAG_NAME_MAX 16   /* longer tag and attribute names match nothing */
#define VALUE_MAX    2048 /* longer attribute values match nothing */

typedef enum {
    S_DATA,
    S_TAG_OPEN,     /* after '<' */
    S_END_TAG_OPEN, /* after "</" */
    S_TAG_NAME,
    S_BEFORE_ATTR,
    S_ATTR_NAME,
    S_AFTER_ATTR_NAME,
    S_BEFORE_VALUE,
    S_VALUE_DQ,
    S_VALUE_SQ,
    S_VALUE_UNQ,
    S_MARKUP,      /* after "<!" */
    S_MARKUP_DASH, /* after "<!-" */
    S_COMMENT_START,
    S_COMMENT_START_DASH,
    S_COMMENT,
    S_COMMENT_END_DASH,
    S_COMMENT_END,
    S_COMMENT_END_BANG,
    S_BOGUS_COMMENT, /* "<?", "<!x", "</1": up to '>' */
    S_RAWTEXT,       /* inside script, style, textarea, ...: up to its end tag */
    S_PLAINTEXT      /* everything after <plaintext> is text */
} state_t;

typedef struct {
    char text[TAG_NAME_MAX + 1];
    apr_size_t len;
    int too_long;
} name_t;

struct pegadm_html_scan_t {
    const char *script_src, *script_id;
    state_t state;
    int end_tag;
    name_t tag, attr;
    char *value; /* VALUE_MAX + 1 bytes */
    apr_size_t value_len;
    int value_too_long;
    name_t raw;           /* the element whose end tag ends the raw text */
    apr_size_t raw_match; /* bytes of "</" + raw.text matched so far */
    int done;
};

static const char *const raw_text_elements[] = {"script",   "style",  "textarea", "title",
                                                "xmp",      "iframe", "noembed",  "noframes",
                                                "noscript", NULL};

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
}

static void name_add(name_t *n, char c)
{
    if (n->len < TAG_NAME_MAX) {
        n->text[n->len++] = (char)apr_tolower(c);
        n->text[n->len] = '\0';
    } else {
        n->too_long = 1;
    }
}

static void name_start(name_t *n, char c)
{
    n->len = 0;
    n->too_long = 0;
    n->text[0] = '\0';
    name_add(n, c);
}

/* By length: a NUL byte in a name is part of it (a parser reads U+FFFD). */
static int name_is(const name_t *n, const char *what)
{
    return !n->too_long && n->len == strlen(what) && !memcmp(n->text, what, n->len);
}

static void value_add(pegadm_html_scan_t *s, char c)
{
    if (s->value_len < VALUE_MAX) {
        s->value[s->value_len++] = c;
    } else {
        s->value_too_long = 1;
    }
}

static void value_start(pegadm_html_scan_t *s)
{
    s->value_len = 0;
    s->value_too_long = 0;
}

pegadm_html_scan_t *pegadm_html_scan_make(apr_pool_t *p, const char *script_src,
                                          const char *script_id)
{
    pegadm_html_scan_t *s = apr_pcalloc(p, sizeof(*s));

    s->script_src = apr_pstrdup(p, script_src);
    s->script_id = apr_pstrdup(p, script_id);
    s->value = apr_palloc(p, VALUE_MAX + 1);
    s->state = S_DATA;
    return s;
}

apr_size_t pegadm_html_held(const pegadm_html_scan_t *s)
{
    if (s->done) {
        return 0;
    }
    switch (s->state) {
    case S_TAG_OPEN:
        return 1;
    case S_END_TAG_OPEN:
        return 2;
    case S_TAG_NAME:
        /* "</" and a name that may still become "body" */
        return s->end_tag && !s->tag.too_long && s->tag.len <= 4 &&
                       !memcmp("body", s->tag.text, s->tag.len)
                   ? 2 + s->tag.len
                   : 0;
    default:
        return 0;
    }
}

/* Whether a script's src is the bootstrap URL: its path, after any scheme
 * and host, is script_src, followed by nothing, a query or a fragment. */
static int src_is_bootstrap(const pegadm_html_scan_t *s, const char *src, apr_size_t len)
{
    apr_size_t want = strlen(s->script_src), at = 0;
    const char *scheme_end;

    while (len && is_space(*src)) {
        src++, len--;
    }
    while (len && is_space(src[len - 1])) {
        len--;
    }
    scheme_end = memchr(src, ':', len);
    if (len >= 2 && src[0] == '/' && src[1] == '/') {
        at = 2;
    } else if (scheme_end && (apr_size_t)(scheme_end - src) + 3 <= len &&
               !memcmp(scheme_end, "://", 3) &&
               !memchr(src, '/', (apr_size_t)(scheme_end - src))) {
        at = (apr_size_t)(scheme_end - src) + 3;
    }
    if (at) {
        while (at < len && src[at] != '/') {
            at++;
        }
    }
    return len - at >= want && !strncasecmp(src + at, s->script_src, want) &&
           (len - at == want || src[at + want] == '?' || src[at + want] == '#');
}

/* An attribute of the tag being read is complete: does it load the widget? */
static int attr_loads_widget(const pegadm_html_scan_t *s)
{
    if (s->end_tag || !name_is(&s->tag, "script") || s->value_too_long) {
        return 0;
    }
    if (name_is(&s->attr, "src")) {
        return src_is_bootstrap(s, s->value, s->value_len);
    }
    return name_is(&s->attr, "id") && s->value_len == strlen(s->script_id) &&
           !strncasecmp(s->value, s->script_id, s->value_len);
}

/* The '>' of a tag: raw text follows some start tags. */
static void tag_end(pegadm_html_scan_t *s)
{
    s->state = S_DATA;
    if (s->end_tag) {
        return;
    }
    if (name_is(&s->tag, "plaintext")) {
        s->state = S_PLAINTEXT;
        return;
    }
    for (int i = 0; raw_text_elements[i]; i++) {
        if (name_is(&s->tag, raw_text_elements[i])) {
            s->raw = s->tag;
            s->raw_match = 0;
            s->state = S_RAWTEXT;
            return;
        }
    }
}

/* In raw text: only "</" + the element's name + a delimiter ends it. */
static void raw_text(pegadm_html_scan_t *s, char c)
{
    apr_size_t name_len = s->raw.len;

    if (s->raw_match == 2 + name_len && (is_space(c) || c == '/' || c == '>')) {
        s->end_tag = 1;
        s->tag = s->raw;
        s->state = S_BEFORE_ATTR;
        if (c == '>') {
            tag_end(s);
        }
    } else if (s->raw_match == 0 || c == '<') {
        s->raw_match = c == '<';
    } else if (s->raw_match == 1) {
        s->raw_match = c == '/' ? 2 : 0;
    } else if (s->raw_match < 2 + name_len && apr_tolower(c) == s->raw.text[s->raw_match - 2]) {
        s->raw_match++;
    } else {
        s->raw_match = 0;
    }
}

typedef enum { STEP_ON, STEP_AGAIN, STEP_BODY_END, STEP_MARKER } step_t;

static step_t comment(pegadm_html_scan_t *s, char c)
{
    switch (s->state) {
    case S_MARKUP:
        s->state = c == '-' ? S_MARKUP_DASH : S_BOGUS_COMMENT;
        return c == '-' ? STEP_ON : STEP_AGAIN;
    case S_MARKUP_DASH:
        s->state = c == '-' ? S_COMMENT_START : S_BOGUS_COMMENT;
        return c == '-' ? STEP_ON : STEP_AGAIN;
    case S_COMMENT_START:
    case S_COMMENT_START_DASH:
        /* "<!-->" and "<!--->" end at once */
        s->state = c == '>' ? S_DATA
                   : c == '-'
                       ? (s->state == S_COMMENT_START ? S_COMMENT_START_DASH : S_COMMENT_END)
                       : S_COMMENT;
        return STEP_ON;
    case S_COMMENT:
        s->state = c == '-' ? S_COMMENT_END_DASH : S_COMMENT;
        return STEP_ON;
    case S_COMMENT_END_DASH:
        s->state = c == '-' ? S_COMMENT_END : S_COMMENT;
        return STEP_ON;
    case S_COMMENT_END:
        s->state = c == '>'   ? S_DATA
                   : c == '!' ? S_COMMENT_END_BANG
                   : c == '-' ? S_COMMENT_END
                              : S_COMMENT;
        return STEP_ON;
    case S_COMMENT_END_BANG:
        s->state = c == '>' ? S_DATA : c == '-' ? S_COMMENT_END_DASH : S_COMMENT;
        return STEP_ON;
    default: /* S_BOGUS_COMMENT */
        s->state = c == '>' ? S_DATA : S_BOGUS_COMMENT;
        return STEP_ON;
    }
}

/* The end of an attribute (with or without a value). */
static step_t attr_end(pegadm_html_scan_t *s, state_t next, char c)
{
    int loads = attr_loads_widget(s);
    s->state = next;
    if (c == '>') {
        tag_end(s);
    }
    return loads ? STEP_MARKER : STEP_ON;
}

static step_t attributes(pegadm_html_scan_t *s, char c)
{
    switch (s->state) {
    case S_BEFORE_ATTR:
        if (c == '>') {
            tag_end(s);
        } else if (!is_space(c) && c != '/') {
            name_start(&s->attr, c);
            value_start(s);
            s->state = S_ATTR_NAME;
        }
        return STEP_ON;
    case S_ATTR_NAME:
    case S_AFTER_ATTR_NAME:
        if (c == '=') {
            s->state = S_BEFORE_VALUE;
        } else if (c == '>' || c == '/') {
            return attr_end(s, S_BEFORE_ATTR, c);
        } else if (is_space(c)) {
            s->state = S_AFTER_ATTR_NAME;
        } else if (s->state == S_ATTR_NAME) {
            name_add(&s->attr, c);
        } else {
            step_t step = attr_end(s, S_BEFORE_ATTR, c);
            name_start(&s->attr, c);
            value_start(s);
            s->state = S_ATTR_NAME;
            return step;
        }
        return STEP_ON;
    case S_BEFORE_VALUE:
        if (c == '"' || c == '\'') {
            s->state = c == '"' ? S_VALUE_DQ : S_VALUE_SQ;
        } else if (c == '>') {
            return attr_end(s, S_BEFORE_ATTR, c);
        } else if (!is_space(c)) {
            value_add(s, c);
            s->state = S_VALUE_UNQ;
        }
        return STEP_ON;
    case S_VALUE_DQ:
    case S_VALUE_SQ:
        if (c == (s->state == S_VALUE_DQ ? '"' : '\'')) {
            return attr_end(s, S_BEFORE_ATTR, c);
        }
        value_add(s, c);
        return STEP_ON;
    default: /* S_VALUE_UNQ */
        if (is_space(c) || c == '>') {
            return attr_end(s, S_BEFORE_ATTR, c);
        }
        value_add(s, c);
        return STEP_ON;
    }
}

static step_t tag_open(pegadm_html_scan_t *s, char c)
{
    if (s->state == S_TAG_OPEN) {
        if (c == '!' || c == '/' || c == '?') {
            s->state = c == '!' ? S_MARKUP : c == '/' ? S_END_TAG_OPEN : S_BOGUS_COMMENT;
            return STEP_ON;
        }
        if (!apr_isalpha(c)) {
            s->state = S_DATA; /* the '<' was text */
            return STEP_AGAIN;
        }
        s->end_tag = 0;
    } else { /* S_END_TAG_OPEN */
        if (!apr_isalpha(c)) {
            s->state = c == '>' ? S_DATA : S_BOGUS_COMMENT;
            return STEP_ON;
        }
        s->end_tag = 1;
    }
    name_start(&s->tag, c);
    s->state = S_TAG_NAME;
    return STEP_ON;
}

static step_t tag_name(pegadm_html_scan_t *s, char c)
{
    if (!is_space(c) && c != '/' && c != '>') {
        name_add(&s->tag, c);
        return STEP_ON;
    }
    if (s->end_tag && name_is(&s->tag, "body")) {
        return STEP_BODY_END;
    }
    s->state = S_BEFORE_ATTR;
    if (c == '>') {
        tag_end(s);
    }
    return STEP_ON;
}

static step_t step(pegadm_html_scan_t *s, char c)
{
    switch (s->state) {
    case S_DATA:
        if (c == '<') {
            s->state = S_TAG_OPEN;
        }
        return STEP_ON;
    case S_TAG_OPEN:
    case S_END_TAG_OPEN:
        return tag_open(s, c);
    case S_TAG_NAME:
        return tag_name(s, c);
    case S_BEFORE_ATTR:
    case S_ATTR_NAME:
    case S_AFTER_ATTR_NAME:
    case S_BEFORE_VALUE:
    case S_VALUE_DQ:
    case S_VALUE_SQ:
    case S_VALUE_UNQ:
        return attributes(s, c);
    case S_RAWTEXT:
        raw_text(s, c);
        return STEP_ON;
    case S_PLAINTEXT:
        return STEP_ON;
    default:
        return comment(s, c);
    }
}

pegadm_html_event_t pegadm_html_scan(pegadm_html_scan_t *s, const char *buf, apr_size_t len,
                                     apr_size_t *at)
{
    apr_size_t held = pegadm_html_held(s);

    if (s->done) {
        return PEGADM_HTML_DONE;
    }
    for (apr_size_t i = 0; i < len; i++) {
        step_t st;
        while ((st = step(s, buf[i])) == STEP_AGAIN) {
        }
        if (st == STEP_BODY_END) {
            s->done = 1;
            *at = held + i - (2 + 4); /* back to the '<' of "</body" */
            return PEGADM_HTML_BODY_END;
        }
        if (st == STEP_MARKER) {
            s->done = 1;
            return PEGADM_HTML_MARKER;
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
