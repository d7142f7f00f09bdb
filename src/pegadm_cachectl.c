/* Cache-Control values (pegadm_cachectl.h): walking a value's directives,
 * quoted commas included, to tell whether one is there and to add
 * "private, no-store" without weakening what other modules set. Fuzzed. */
#include "pegadm_cachectl.h"

#include <string.h>
#include <strings.h>

#include <apr_lib.h>
#include <apr_strings.h>

/* Calls each(directive, len, baton) for every directive of value, white
 * space around it trimmed; empty list members and a last one with an
 * unterminated quoted string are skipped. */
static void each_directive(const char *value, void (*each)(const char *, apr_size_t, void *),
                           void *baton)
{
    const char *start = value, *c = value;
    int quoted = 0;

    if (!value) {
        return;
    }
    for (;; c++) {
        if (*c == '"') {
            quoted = !quoted;
        } else if (*c == '\\' && quoted && c[1]) {
            c++;
        } else if ((*c == ',' && !quoted) || !*c) {
            const char *end = c;
            while (start < end && apr_isspace(*start)) {
                start++;
            }
            while (end > start && apr_isspace(end[-1])) {
                end--;
            }
            /* an unterminated quoted string would swallow what follows */
            if (end > start && !quoted) {
                each(start, (apr_size_t)(end - start), baton);
            }
            if (!*c) {
                return;
            }
            start = c + 1;
        }
    }
}

static int is_named(const char *directive, apr_size_t len, const char *name)
{
    apr_size_t n = strlen(name);
    return len >= n && !strncasecmp(directive, name, n) &&
           (len == n || directive[n] == '=' || apr_isspace(directive[n]));
}

typedef struct {
    const char *name;
    int found;
} has_baton_t;

static void note_name(const char *directive, apr_size_t len, void *baton)
{
    has_baton_t *b = baton;
    b->found |= is_named(directive, len, b->name);
}

int pegadm_cache_control_has(const char *value, const char *name)
{
    has_baton_t b = {name, 0};
    each_directive(value, note_name, &b);
    return b.found;
}

typedef struct {
    apr_pool_t *p;
    char *out;
} join_baton_t;

static void append(join_baton_t *b, const char *directive, apr_size_t len)
{
    const char *d = apr_pstrmemdup(b->p, directive, len);
    b->out = b->out ? apr_pstrcat(b->p, b->out, ", ", d, NULL) : (char *)d;
}

static void keep_private(const char *directive, apr_size_t len, void *baton)
{
    if (!is_named(directive, len, "public") && !is_named(directive, len, "s-maxage")) {
        append(baton, directive, len);
    }
}

const char *pegadm_cache_control_private(apr_pool_t *p, const char *value,
                                         const char *const *ensure)
{
    join_baton_t b = {p, NULL};

    each_directive(value, keep_private, &b);
    for (; *ensure; ensure++) {
        if (!pegadm_cache_control_has(b.out, *ensure)) {
            append(&b, *ensure, strlen(*ensure));
        }
    }
    return b.out ? b.out : "";
}

int pegadm_cache_control_is_targeted(const char *name)
{
    static const char *const exact[] = {"Surrogate-Control", "Edge-Control", "X-Accel-Expires",
                                        NULL};
    static const char suffix[] = "-Cache-Control";
    size_t len = strlen(name), slen = sizeof(suffix) - 1;

    for (int i = 0; exact[i]; i++) {
        if (!strcasecmp(name, exact[i])) {
            return 1;
        }
    }
    return len > slen && !strcasecmp(name + len - slen, suffix);
}
