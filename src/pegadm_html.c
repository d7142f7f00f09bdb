/* Streaming search for the insertion point: a small HTML tokenizer after
 * the states of the WHATWG parsing algorithm that matter for where markup
 * is (data, tags and their attributes, comments, raw text elements, script
 * data with its escaped and double-escaped states, CDATA sections), one
 * byte at a time, so that a document split anywhere is read the same way.
 * Of tree construction it follows only what decides whether a script tag
 * would run where it stands: open <template> elements and foreign (SVG,
 * MathML) content, with the start and end tags that break out of it. Not
 * followed: character references, the integration points inside foreign
 * content (their HTML counts as foreign: the tag goes at the end instead),
 * the elements around foreign content (an end tag that closes an HTML
 * element around an unclosed <svg> leaves it foreign for the scanner). */
#include <string.h>
#include <strings.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include "pegadm_html.h"

#define TAG_NAME_MAX 16      /* longer tag and attribute names match nothing */
#define VALUE_MAX    2048    /* longer attribute values match nothing */
#define FOREIGN_MAX  32      /* foreign elements tracked by name; deeper ones are counted */
#define DEPTH_MAX    1000000 /* open templates or untracked foreign elements counted */

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
    S_MARKUP_CDATA,  /* "<![" in foreign content, on the way to "<![CDATA[" */
    S_CDATA,         /* up to "]]>" */
    S_RAWTEXT,       /* inside style, textarea, ...: up to its end tag */
    S_SCRIPT,        /* inside an HTML script: script data, in sub-state sd */
    S_PLAINTEXT      /* everything after <plaintext> is text */
} state_t;

/* The script data states of the WHATWG tokenizer: "<!--" inside a script
 * escapes it, and a "<script" inside the escape double-escapes it, so that
 * the first "</script>" after it does not end the script. */
typedef enum {
    SD_DATA,
    SD_LT,             /* after '<' */
    SD_END,            /* after "</": the end tag's name */
    SD_ESC_START,      /* after "<!" */
    SD_ESC_START_DASH, /* after "<!-" */
    SD_ESC,
    SD_ESC_DASH,
    SD_ESC_DASH_DASH,
    SD_ESC_LT,
    SD_ESC_END,
    SD_DBL_START, /* a start tag's name in the escape: "script" double-escapes */
    SD_DBL,
    SD_DBL_DASH,
    SD_DBL_DASH_DASH,
    SD_DBL_LT,
    SD_DBL_END /* an end tag's name in the double escape: "script" ends it */
} script_state_t;

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
    script_state_t sd;
    apr_size_t tmp_len; /* the script data's temporary buffer, as a match of "script" */
    int tmp_script;
    int slash;        /* the last character of the tag so far was a self-closing '/' */
    int font_breaks;  /* a <font> with color, face or size: it ends foreign content */
    apr_size_t match; /* characters of "[CDATA[", or of "]]" in a CDATA section */
    long templates;   /* open <template> elements */
    name_t foreign[FOREIGN_MAX]; /* open foreign elements, innermost last */
    int foreign_len;
    long foreign_deep; /* open foreign elements beyond FOREIGN_MAX */
    int body_end_skipped;
    unsigned char lead[4]; /* the first bytes: a byte order mark? */
    apr_size_t lead_len;
    int done;
};

static const char *const raw_text_elements[] = {
    "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes", "noscript", NULL};

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

static void name_set(name_t *n, const char *what)
{
    name_start(n, *what);
    while (*++what) {
        name_add(n, *what);
    }
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

static int in_foreign(const pegadm_html_scan_t *s)
{
    return s->foreign_len || s->foreign_deep;
}

/* Where a script tag would be an HTML script that runs. */
static int in_html_content(const pegadm_html_scan_t *s)
{
    return !s->templates && !in_foreign(s);
}

apr_size_t pegadm_html_held(const pegadm_html_scan_t *s)
{
    if (s->done || !in_html_content(s)) {
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
    if (s->end_tag || !name_is(&s->tag, "script") || s->value_too_long || !in_html_content(s)) {
        return 0;
    }
    if (name_is(&s->attr, "src")) {
        return src_is_bootstrap(s, s->value, s->value_len);
    }
    return name_is(&s->attr, "id") && s->value_len == strlen(s->script_id) &&
           !strncasecmp(s->value, s->script_id, s->value_len);
}

static int name_in(const name_t *n, const char *const *names)
{
    for (int i = 0; names[i]; i++) {
        if (name_is(n, names[i])) {
            return 1;
        }
    }
    return 0;
}

/* HTML start tags that end foreign content (and "font" with color, face or size). */
static const char *const breakout_elements[] = {
    "b",      "big",  "blockquote", "body",  "br",   "center", "code",    "dd",   "div",
    "dl",     "dt",   "em",         "embed", "h1",   "h2",     "h3",      "h4",   "h5",
    "h6",     "head", "hr",         "i",     "img",  "li",     "listing", "menu", "meta",
    "nobr",   "ol",   "p",          "pre",   "ruby", "s",      "small",   "span", "strong",
    "strike", "sub",  "sup",        "table", "tt",   "u",      "ul",      "var",  NULL};

static void foreign_clear(pegadm_html_scan_t *s)
{
    s->foreign_len = 0;
    s->foreign_deep = 0;
}

static void foreign_push(pegadm_html_scan_t *s)
{
    if (s->foreign_len < FOREIGN_MAX) {
        s->foreign[s->foreign_len++] = s->tag;
    } else if (s->foreign_deep < DEPTH_MAX) {
        s->foreign_deep++;
    }
}

/* An end tag in foreign content closes the innermost element of its name
 * and those inside it; one that matches none is ignored, as a parser does
 * unless it closes an HTML element around (only <template> is known). */
static void foreign_end_tag(pegadm_html_scan_t *s)
{
    if (s->foreign_deep) {
        s->foreign_deep--;
        return;
    }
    for (int i = s->foreign_len - 1; i >= 0; i--) {
        if (!s->tag.too_long && s->foreign[i].len == s->tag.len &&
            !memcmp(s->foreign[i].text, s->tag.text, s->tag.len)) {
            s->foreign_len = i;
            return;
        }
    }
    if (name_is(&s->tag, "template") && s->templates) {
        foreign_clear(s);
        s->templates--;
    }
}

/* A tag in foreign content; 1 if it broke out, to be read again as HTML. */
static int foreign_tag(pegadm_html_scan_t *s)
{
    if (s->end_tag) {
        if (name_is(&s->tag, "br") || name_is(&s->tag, "p")) {
            foreign_clear(s);
            return 1;
        }
        foreign_end_tag(s);
        return 0;
    }
    if (name_in(&s->tag, breakout_elements) || (name_is(&s->tag, "font") && s->font_breaks)) {
        foreign_clear(s);
        return 1;
    }
    if (!s->slash) {
        foreign_push(s);
    }
    return 0;
}

/* The '>' of a tag: what follows may be raw text, script data, a template
 * or foreign content. */
static void tag_end(pegadm_html_scan_t *s)
{
    s->state = S_DATA;
    if (in_foreign(s) && !foreign_tag(s)) {
        return;
    }
    if (s->end_tag) {
        if (name_is(&s->tag, "template") && s->templates) {
            s->templates--;
        }
        return;
    }
    if (name_is(&s->tag, "svg") || name_is(&s->tag, "math")) {
        if (!s->slash) {
            foreign_push(s);
        }
    } else if (name_is(&s->tag, "template")) {
        s->templates += s->templates < DEPTH_MAX;
    } else if (name_is(&s->tag, "plaintext")) {
        s->state = S_PLAINTEXT;
    } else if (name_is(&s->tag, "script")) {
        s->sd = SD_DATA;
        s->state = S_SCRIPT;
    } else if (name_in(&s->tag, raw_text_elements)) {
        s->raw = s->tag;
        s->raw_match = 0;
        s->state = S_RAWTEXT;
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

static void tmp_start(pegadm_html_scan_t *s)
{
    s->tmp_len = 0;
    s->tmp_script = 1;
}

static void tmp_add(pegadm_html_scan_t *s, char c)
{
    if (s->tmp_len >= 6 || "script"[s->tmp_len] != apr_tolower(c)) {
        s->tmp_script = 0;
    }
    s->tmp_len += s->tmp_len < 7;
}

static int tmp_is_script(const pegadm_html_scan_t *s)
{
    return s->tmp_script && s->tmp_len == 6;
}

static int is_delimiter(char c)
{
    return is_space(c) || c == '/' || c == '>';
}

/* "</script" and a delimiter: the script's end tag, read as any end tag. */
static step_t script_end_tag(pegadm_html_scan_t *s, char c, script_state_t otherwise)
{
    if (apr_isalpha(c)) {
        tmp_add(s, c);
        return STEP_ON;
    }
    if (!is_delimiter(c) || !tmp_is_script(s)) {
        s->sd = otherwise;
        return STEP_AGAIN;
    }
    s->end_tag = 1;
    name_set(&s->tag, "script");
    s->state = S_BEFORE_ATTR;
    s->slash = c == '/';
    if (c == '>') {
        tag_end(s);
    }
    return STEP_ON;
}

/* The dashes and '<' of escaped (dbl 0) or double-escaped (dbl 1) script data. */
static step_t script_escaped(pegadm_html_scan_t *s, char c, int dbl)
{
    script_state_t text = dbl ? SD_DBL : SD_ESC, dash = dbl ? SD_DBL_DASH : SD_ESC_DASH,
                   dash_dash = dbl ? SD_DBL_DASH_DASH : SD_ESC_DASH_DASH,
                   lt = dbl ? SD_DBL_LT : SD_ESC_LT;

    if (c == '<') {
        s->sd = lt;
    } else if (c == '-') {
        s->sd = s->sd == text ? dash : dash_dash;
    } else if (c == '>' && s->sd == dash_dash) {
        s->sd = SD_DATA;
    } else {
        s->sd = text;
    }
    return STEP_ON;
}

/* The start or end tag "script" inside an escape: double escape starts or ends. */
static step_t script_dbl_tag(pegadm_html_scan_t *s, char c, script_state_t is,
                             script_state_t not )
{
    if (apr_isalpha(c)) {
        tmp_add(s, c);
        return STEP_ON;
    }
    if (is_delimiter(c)) {
        s->sd = tmp_is_script(s) ? is : not ;
        return STEP_ON;
    }
    s->sd = not ;
    return STEP_AGAIN;
}

static step_t script_data(pegadm_html_scan_t *s, char c)
{
    switch (s->sd) {
    case SD_DATA:
        s->sd = c == '<' ? SD_LT : SD_DATA;
        return STEP_ON;
    case SD_LT:
        if (c == '/' || c == '!') {
            tmp_start(s);
            s->sd = c == '/' ? SD_END : SD_ESC_START;
            return STEP_ON;
        }
        s->sd = SD_DATA;
        return STEP_AGAIN;
    case SD_END:
        return script_end_tag(s, c, SD_DATA);
    case SD_ESC_START:
    case SD_ESC_START_DASH:
        if (c != '-') {
            s->sd = SD_DATA;
            return STEP_AGAIN;
        }
        s->sd = s->sd == SD_ESC_START ? SD_ESC_START_DASH : SD_ESC_DASH_DASH;
        return STEP_ON;
    case SD_ESC_LT:
        tmp_start(s);
        s->sd = c == '/' ? SD_ESC_END : apr_isalpha(c) ? SD_DBL_START : SD_ESC;
        return c == '/' ? STEP_ON : STEP_AGAIN;
    case SD_ESC_END:
        return script_end_tag(s, c, SD_ESC);
    case SD_DBL_START:
        return script_dbl_tag(s, c, SD_DBL, SD_ESC);
    case SD_DBL_LT:
        tmp_start(s);
        s->sd = c == '/' ? SD_DBL_END : SD_DBL;
        return c == '/' ? STEP_ON : STEP_AGAIN;
    case SD_DBL_END:
        return script_dbl_tag(s, c, SD_ESC, SD_DBL);
    case SD_ESC:
    case SD_ESC_DASH:
    case SD_ESC_DASH_DASH:
        return script_escaped(s, c, 0);
    default: /* SD_DBL, SD_DBL_DASH, SD_DBL_DASH_DASH */
        return script_escaped(s, c, 1);
    }
}

/* "<![CDATA[" up to "]]>" in foreign content: text, whatever it holds. */
static step_t cdata(pegadm_html_scan_t *s, char c)
{
    if (s->state == S_MARKUP_CDATA) {
        if (c != "[CDATA["[s->match]) {
            s->state = S_BOGUS_COMMENT;
            return STEP_AGAIN;
        }
        if (++s->match == 7) {
            s->match = 0;
            s->state = S_CDATA;
        }
    } else if (c == ']') {
        s->match += s->match < 2;
    } else {
        s->state = c == '>' && s->match == 2 ? S_DATA : S_CDATA;
        s->match = 0;
    }
    return STEP_ON;
}

static step_t comment(pegadm_html_scan_t *s, char c)
{
    switch (s->state) {
    case S_MARKUP:
        if (c == '[' && in_foreign(s)) {
            s->match = 1;
            s->state = S_MARKUP_CDATA;
            return STEP_ON;
        }
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

    if (!s->end_tag && name_is(&s->tag, "font") &&
        (name_is(&s->attr, "color") || name_is(&s->attr, "face") ||
         name_is(&s->attr, "size"))) {
        s->font_breaks = 1;
    }
    s->slash = c == '/';
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
        if (c != '>') {
            s->slash = c == '/';
        }
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
    s->slash = 0;
    s->font_breaks = 0;
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
        if (in_html_content(s)) {
            return STEP_BODY_END;
        }
        s->body_end_skipped = 1;
    }
    s->state = S_BEFORE_ATTR;
    s->slash = c == '/';
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
    case S_SCRIPT:
        return script_data(s, c);
    case S_MARKUP_CDATA:
    case S_CDATA:
        return cdata(s, c);
    case S_PLAINTEXT:
        return STEP_ON;
    default:
        return comment(s, c);
    }
}

/* Takes one of the first four bytes: do they start with a UTF-16 or UTF-32
 * byte order mark (FE FF, FF FE, 00 00 FE FF)? */
static int utf16_or_32(pegadm_html_scan_t *s, unsigned char c)
{
    const unsigned char *b = s->lead;

    s->lead[s->lead_len++] = c;
    if (s->lead_len == 2) {
        return (b[0] == 0xFE && b[1] == 0xFF) || (b[0] == 0xFF && b[1] == 0xFE);
    }
    return s->lead_len == 4 && !b[0] && !b[1] && b[2] == 0xFE && b[3] == 0xFF;
}

int pegadm_html_at_end(const pegadm_html_scan_t *s)
{
    return !s->done && s->body_end_skipped && s->state == S_DATA && in_html_content(s);
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
        if (s->lead_len < sizeof(s->lead) && utf16_or_32(s, (unsigned char)buf[i])) {
            s->done = 1;
            return PEGADM_HTML_NOT_ASCII;
        }
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

/* Charset labels (WHATWG's and IANA's) whose text is not ASCII bytes:
 * families by prefix, single labels whole ("unicode-1-1-utf-8" is UTF-8). */
static const char *const not_ascii_prefixes[] = {"utf-16",        "utf-32",    "ucs-",
                                                 "iso-10646-ucs", "iso-2022-", "csiso2022",
                                                 "utf-7",         "ebcdic",    NULL};
static const char *const not_ascii_labels[] = {
    "utf16",      "utf32",       "unicode", "unicodefeff", "unicodefffe", "csunicode",
    "hz-gb-2312", "replacement", "utf7",    "csutf7",      "ibm037",      "cp037",
    "ibm500",     "cp500",       "ibm1047", "cp1047",      "ibm-1047",    NULL};

/* The value of a Content-Type's charset parameter, without quotes: where it
 * starts and how long it is. */
static int charset_param(const char *ct, const char **value, apr_size_t *len)
{
    const char *c = strchr(ct, ';');

    while (c) {
        c++;
        while (is_space(*c)) {
            c++;
        }
        if (!strncasecmp(c, "charset", 7)) {
            const char *v = c + 7;
            while (is_space(*v)) {
                v++;
            }
            if (*v == '=') {
                v++;
                while (is_space(*v) || *v == '"' || *v == '\'') {
                    v++;
                }
                *value = v;
                *len = strcspn(v, "\"'; \t");
                return 1;
            }
        }
        c = strchr(c, ';');
    }
    return 0;
}

int pegadm_html_charset_ascii(const char *content_type)
{
    const char *value;
    apr_size_t len;

    if (!content_type || !charset_param(content_type, &value, &len)) {
        return 1;
    }
    for (int i = 0; not_ascii_prefixes[i]; i++) {
        apr_size_t n = strlen(not_ascii_prefixes[i]);
        if (len >= n && !strncasecmp(value, not_ascii_prefixes[i], n)) {
            return 0;
        }
    }
    for (int i = 0; not_ascii_labels[i]; i++) {
        if (len == strlen(not_ascii_labels[i]) &&
            !strncasecmp(value, not_ascii_labels[i], len)) {
            return 0;
        }
    }
    return 1;
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
