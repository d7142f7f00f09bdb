/* The start-up check of the scopes that act: where PegaDM On or a pegadm
 * handler is configured, the widget ID and the secret must be set in the
 * same scope, an enclosing one, or a sibling section that httpd is sure to
 * merge for it (pegadm_section_covers). The configuration tree still knows file
 * and line here; anything the check cannot see is caught per request (the
 * handlers answer 500, eager mode stays off) and logged. The directives
 * themselves are parsed in mod_pegadm_config.c. */
#include "mod_pegadm.h"

#include <string.h>
#include <strings.h>

#include <apr_strings.h>
#include <http_config.h>

APLOG_USE_MODULE(pegadm);

typedef struct {
    int widget;
    int secret;
} scope_has_t;

int pegadm_directive_is_conditional(const ap_directive_t *d)
{
    static const char *const transparent[] = {
        "<IfModule", "<IfDefine", "<IfVersion", "<IfFile", "<IfDirective", "<IfSection", NULL};
    for (int i = 0; transparent[i]; i++) {
        if (!strcasecmp(d->directive, transparent[i])) {
            return 1;
        }
    }
    return 0;
}

static void scan_level(const ap_directive_t *first, scope_has_t *has)
{
    for (const ap_directive_t *d = first; d; d = d->next) {
        if (!strcasecmp(d->directive, "PegaDMWidgetID")) {
            has->widget = 1;
        } else if (!strcasecmp(d->directive, "PegaDMJWTSecret") ||
                   !strcasecmp(d->directive, "PegaDMJWTSecretFile")) {
            has->secret = 1;
        } else if (d->first_child && pegadm_directive_is_conditional(d)) {
            scan_level(d->first_child, has);
        }
    }
}

static const char *section_path(apr_pool_t *p, const ap_directive_t *d)
{
    const char *args = d->args;
    char *word = ap_getword_conf(p, &args);
    apr_size_t len = strlen(word);
    if (len && word[len - 1] == '>') {
        word[len - 1] = '\0';
    }
    return word;
}

static int path_is_prefix(const char *prefix, const char *path)
{
    apr_size_t len = strlen(prefix);
    if (prefix[0] == '~' || strncmp(prefix, path, len) != 0) {
        return 0;
    }
    return len == 0 || prefix[len - 1] == '/' || path[len] == '/' || path[len] == '\0';
}

/* Regular expressions are not followed: their sections cover nothing. */
int pegadm_section_covers(apr_pool_t *p, const ap_directive_t *sibling,
                          const ap_directive_t *section)
{
    const char *prefix;

    if (sibling == section || !sibling->first_child) {
        return 0;
    }
    prefix = section_path(p, sibling);
    if (!strcasecmp(sibling->directive, "<Location") && !strcmp(prefix, "/")) {
        return 1;
    }
    if (strcasecmp(sibling->directive, section->directive) != 0 ||
        (strcasecmp(section->directive, "<Location") != 0 &&
         strcasecmp(section->directive, "<Directory") != 0)) {
        return 0;
    }
    return path_is_prefix(prefix, section_path(p, section));
}

static int acts_here(apr_pool_t *p, const ap_directive_t *d, const char **what)
{
    const char *args = d->args, *word;

    if (!strcasecmp(d->directive, "PegaDM")) {
        *what = "PegaDM On";
        return !strcasecmp(ap_getword_conf(p, &args), "on");
    }
    if (!strcasecmp(d->directive, "SetHandler") || !strcasecmp(d->directive, "AddHandler")) {
        word = ap_getword_conf(p, &args);
        *what = apr_pstrcat(p, d->directive, " ", word, NULL);
        return !strcasecmp(word, PEGADM_HANDLER_SESSION) ||
               !strcasecmp(word, PEGADM_HANDLER_BOOTSTRAP);
    }
    return 0;
}

static int check_level(apr_pool_t *p, const ap_directive_t *first, scope_has_t inherited,
                       const ap_directive_t *siblings, const ap_directive_t *section)
{
    scope_has_t has = inherited;
    int failures = 0;
    const char *what;

    scan_level(first, &has);
    for (const ap_directive_t *s = section ? siblings : NULL; s; s = s->next) {
        if (pegadm_section_covers(p, s, section)) {
            scan_level(s->first_child, &has);
        }
    }
    for (const ap_directive_t *d = first; d; d = d->next) {
        if (d->first_child) {
            const ap_directive_t *level_siblings =
                pegadm_directive_is_conditional(d) ? NULL : first;
            failures += check_level(p, d->first_child, has, level_siblings,
                                    pegadm_directive_is_conditional(d) ? section : d);
        } else if (acts_here(p, d, &what) && !(has.widget && has.secret)) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_CRIT, 0, NULL,
                         "PEGADM010: %s at %s:%d is in a scope without %s%s%s", what,
                         d->filename, d->line_num, has.widget ? "" : "PegaDMWidgetID",
                         has.widget || has.secret ? "" : " and ",
                         has.secret ? "" : "PegaDMJWTSecret (or PegaDMJWTSecretFile)");
            failures++;
        }
    }
    return failures;
}

int pegadm_check_scopes(apr_pool_t *ptemp, server_rec *s)
{
    scope_has_t none = {0, 0};
    return check_level(ptemp, ap_conftree, none, NULL, NULL) ? HTTP_INTERNAL_SERVER_ERROR : OK;
}
