/* The start-up checks of the configuration tree, which still knows file
 * and line here; each message names the directive, file and line.
 *
 * The scopes that act: where PegaDM On or a pegadm handler is configured,
 * the widget ID and the secret must be set in the same scope, an enclosing
 * one, or a sibling section that httpd is sure to merge for it
 * (section_covers). Anything the check cannot see is caught per
 * request (the handlers answer 500, eager mode stays off) and logged.
 *
 * Security: combinations of directives that are each valid alone but
 * unsafe together are refused; risky uses of the module's variables draw a
 * warning. What httpd does not let a module see at start-up (.htaccess
 * files, values made by other modules at request time) is covered per
 * request or documented in docs/security.md.
 *
 * The directives themselves are parsed in mod_pegadm_config.c. */
#include "mod_pegadm.h"

#include <string.h>
#include <strings.h>

#include <apr_fnmatch.h>
#include <apr_strings.h>
#include <ap_regex.h>
#include <http_config.h>

#include "pegadm_confcheck.h"

APLOG_USE_MODULE(pegadm);

/* Whether d is a section that only decides whether its contents count
 * (<IfModule>, <IfDefine>...), not a scope of its own. */
static int directive_is_conditional(const ap_directive_t *d);
/* Whether httpd surely merges the sibling section for every request that
 * reaches section: <Location /> covers everything, and a <Location> or
 * <Directory> covers those of its kind below its path. */
static int section_covers(apr_pool_t *p, const ap_directive_t *sibling,
                          const ap_directive_t *section);

/* What a scope inherits from the scopes that enclose it. */
typedef struct {
    const ap_directive_t *service_url;
    const ap_directive_t *private_data_url;
    const ap_directive_t *proxy;
    const ap_directive_t *session;  /* mod_session's Session On|Off */
    int client_address_condition;   /* an enclosing <If> or Require on the client address */
    const char *const *unset_early; /* headers RequestHeader unsets early, NULL-terminated */
    const apr_hash_t *tainted;      /* environment variables copied from client input */
    const apr_array_header_t *session_sections; /* sections holding Session On */
} scope_t;

static const char *first_arg(apr_pool_t *p, const ap_directive_t *d)
{
    const char *args = d->args;
    return ap_getword_conf(p, &args);
}

static int is_require_container(const ap_directive_t *d)
{
    return !strcasecmp(d->directive, "<RequireAll") || !strcasecmp(d->directive, "<RequireAny");
}

/* The words of a directive's arguments, at most max of them; returns how many. */
static int words(apr_pool_t *p, const ap_directive_t *d, const char **out, int max)
{
    const char *args = d->args ? d->args : "";
    int n = 0;

    while (n < max && *args) {
        const char *w = ap_getword_conf(p, &args);
        if (!*w && !*args) {
            break;
        }
        out[n++] = w;
    }
    return n;
}

/* Remembers the header of a "RequestHeader unset <name> early". */
static void note_unset_early(apr_pool_t *p, const ap_directive_t *d, scope_t *scope)
{
    const char *w[4];
    const char **list;
    int n = words(p, d, w, 4), have = 0;

    if (n != 3 || strcasecmp(w[0], "unset") != 0 || strcasecmp(w[2], "early") != 0) {
        return;
    }
    while (scope->unset_early && scope->unset_early[have]) {
        have++;
    }
    list = apr_pcalloc(p, (apr_size_t)(have + 2) * sizeof(*list));
    if (have) {
        memcpy(list, scope->unset_early, (apr_size_t)have * sizeof(*list));
    }
    list[have] = w[1];
    scope->unset_early = list;
}

/* Whether "Require ip a b ..." admits only some addresses. */
static int require_ip_is_narrow(apr_pool_t *p, const ap_directive_t *d)
{
    const char *w[32];
    int n = words(p, d, w, 32);

    return n >= 2 && !strcasecmp(w[0], "ip") && !pegadm_subnets_admit_all(w + 1, n - 1);
}

static int alternatives_limit_address(apr_pool_t *p, const ap_directive_t *first, int all);

/* Whether one authorization alternative admits only some client addresses. */
static int alternative_limits_address(apr_pool_t *p, const ap_directive_t *d)
{
    if (!strcasecmp(d->directive, "Require")) {
        return require_ip_is_narrow(p, d);
    }
    if (!strcasecmp(d->directive, "<RequireAll")) {
        return alternatives_limit_address(p, d->first_child, 1);
    }
    if (!strcasecmp(d->directive, "<RequireAny")) {
        return alternatives_limit_address(p, d->first_child, 0);
    }
    return 0; /* <RequireNone>: it admits what its children do not */
}

/* The Require lines and containers of a level: any one of them admits a
 * request (<RequireAny>, and a level's own lines), unless all is set
 * (<RequireAll>, where one that limits the address is enough). */
static int alternatives_limit_address(apr_pool_t *p, const ap_directive_t *first, int all)
{
    int seen = 0, limiting = 0;

    for (const ap_directive_t *d = first; d; d = d->next) {
        if (d->first_child && directive_is_conditional(d)) {
            int inner = alternatives_limit_address(p, d->first_child, all);
            seen += inner >= 0;
            limiting += inner > 0;
        } else if (!strcasecmp(d->directive, "Require") || is_require_container(d)) {
            seen++;
            limiting += alternative_limits_address(p, d);
        }
    }
    if (!seen) {
        return -1; /* no authorization here */
    }
    return all ? limiting > 0 : limiting == seen;
}

static int requires_limit_address(apr_pool_t *p, const ap_directive_t *first)
{
    return alternatives_limit_address(p, first, 0) > 0;
}

/* Takes in the settings of one level (and of the conditional sections in
 * it, which httpd reads as if they were not there). */
static void collect(apr_pool_t *p, const ap_directive_t *first, scope_t *scope)
{
    for (const ap_directive_t *d = first; d; d = d->next) {
        if (!strcasecmp(d->directive, PEGADM_DIRECTIVE_SERVICE_URL)) {
            scope->service_url = d;
        } else if (!strcasecmp(d->directive, PEGADM_DIRECTIVE_PRIVATE_DATA_URL)) {
            scope->private_data_url = d;
        } else if (!strcasecmp(d->directive, PEGADM_DIRECTIVE_PROXY)) {
            scope->proxy = d;
        } else if (!strcasecmp(d->directive, "Session")) {
            scope->session = d;
        } else if (!strcasecmp(d->directive, "RequestHeader")) {
            note_unset_early(p, d, scope);
        } else if (d->first_child && directive_is_conditional(d)) {
            collect(p, d->first_child, scope);
        }
    }
    scope->client_address_condition |= requires_limit_address(p, first);
}

/* The later of the two directives is the one that made the pair. */
static const ap_directive_t *later(const ap_directive_t *a, const ap_directive_t *b)
{
    int cmp = strcmp(a->filename, b->filename);
    return cmp ? (cmp > 0 ? a : b) : (a->line_num > b->line_num ? a : b);
}

static int check_cleartext(apr_pool_t *p, const ap_directive_t *url,
                           const ap_directive_t *proxy)
{
    const char *why;
    const ap_directive_t *at;

    if (!url || !proxy) {
        return 0;
    }
    why = pegadm_check_cleartext_proxy(p, first_arg(p, url), first_arg(p, proxy));
    if (!why) {
        return 0;
    }
    at = later(url, proxy);
    ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_CRIT, 0, NULL,
                 "PEGADM700: %s at %s:%d: with %s (%s:%d), %s; use https:// or a proxy "
                 "on loopback",
                 at->directive, at->filename, at->line_num,
                 at == url ? proxy->directive : url->directive,
                 at == url ? proxy->filename : url->filename,
                 at == url ? proxy->line_num : url->line_num, why);
    return 1;
}

static int check_scope(apr_pool_t *p, const scope_t *scope, const scope_t *outer)
{
    int failures = 0;

    /* only pairs this scope completes: the enclosing one reported its own */
    if (scope->service_url != outer->service_url || scope->proxy != outer->proxy) {
        failures += check_cleartext(p, scope->service_url, scope->proxy);
    }
    if (scope->private_data_url != outer->private_data_url || scope->proxy != outer->proxy) {
        failures += check_cleartext(p, scope->private_data_url, scope->proxy);
    }
    return failures;
}

static int is_bootstrap_handler(apr_pool_t *p, const ap_directive_t *d)
{
    return (!strcasecmp(d->directive, "SetHandler") ||
            !strcasecmp(d->directive, "AddHandler")) &&
           !strcasecmp(first_arg(p, d), PEGADM_HANDLER_BOOTSTRAP);
}

/* The path of a section (<Location /x>, <Directory "/y">), or its regular
 * expression (<LocationMatch re>, <Location ~ re>); *regex says which. */
static const char *section_arg(apr_pool_t *p, const ap_directive_t *d, int *regex)
{
    const char *args = d->args ? d->args : "";
    char *word = ap_getword_conf(p, &args);
    apr_size_t len;

    *regex = ap_strcasestr(d->directive, "Match") != NULL;
    if (!strcmp(word, "~")) {
        *regex = 1;
        word = ap_getword_conf(p, &args);
    }
    len = strlen(word);
    if (len && word[len - 1] == '>') {
        word[len - 1] = '\0';
    }
    return word;
}

static int matches(apr_pool_t *p, const char *re, const char *subject)
{
    ap_regex_t *compiled = ap_pregcomp(p, re, AP_REG_EXTENDED);
    return compiled && ap_regexec(compiled, subject, 0, NULL, 0) == 0;
}

static const char *document_root(apr_pool_t *p)
{
    for (const ap_directive_t *d = ap_conftree; d; d = d->next) {
        if (!strcasecmp(d->directive, "DocumentRoot")) {
            return first_arg(p, d);
        }
    }
    return "/";
}

/* Whether a <Directory*>, <LocationMatch> or <Location ~> section applies
 * to the bootstrap's location at path: a location's regular expression
 * matches it; a directory holds the document root its file would be in. */
static int section_covers_path(apr_pool_t *p, const ap_directive_t *section, const char *path)
{
    int regex;
    const char *arg = section_arg(p, section, &regex);
    const char *file = apr_pstrcat(p, document_root(p), path, NULL);

    if (!strncasecmp(section->directive, "<Location", 9)) {
        return regex && matches(p, arg, path);
    }
    if (regex) {
        return matches(p, arg, file);
    }
    return !strcmp(arg, "/") || apr_fnmatch(arg, document_root(p), APR_FNM_PATHNAME) == 0 ||
           !strncmp(file, arg, strlen(arg));
}

/* A section with Session On that a plain <Location> walk does not see
 * but that covers the bootstrap's location; NULL if none. */
static const ap_directive_t *session_section_covering(apr_pool_t *p, const scope_t *scope,
                                                      const ap_directive_t *handler)
{
    const char *path;
    int regex;

    if (!scope->session_sections || !handler->parent ||
        strcasecmp(handler->parent->directive, "<Location") != 0) {
        return NULL;
    }
    path = section_arg(p, handler->parent, &regex);
    for (int i = 0; !regex && i < scope->session_sections->nelts; i++) {
        const ap_directive_t *on = APR_ARRAY_IDX(scope->session_sections, i, ap_directive_t *);
        if (section_covers_path(p, on->parent, path)) {
            return on;
        }
    }
    return NULL;
}

/* mod_session writes its cookie on every answer of a scope with Session On
 * (and SessionMaxAge renews it each time): the bootstrap script is then
 * kept private (mod_pegadm_cachecontrol.c), and a shared cache in front that
 * ignores that would hand the cookie, a login, to the next visitor. */
static void warn_session_on(apr_pool_t *p, const scope_t *scope, const ap_directive_t *handler)
{
    const ap_directive_t *on = scope->session;

    if (!on || strcasecmp(first_arg(p, on), "off") != 0) {
        const ap_directive_t *other = session_section_covering(p, scope, handler);
        on = other ? other : on;
    }
    if (on && !strcasecmp(first_arg(p, on), "on")) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_WARNING, 0, NULL,
                     "PEGADM702: Session On at %s:%d covers %s %s at %s:%d: its answers "
                     "carry the session cookie and so are never cached publicly; give the "
                     "bootstrap's location Session Off",
                     on->filename, on->line_num, handler->directive, handler->args,
                     handler->filename, handler->line_num);
    }
}

/* ap_expr forms that read what the client sends: a header, the request
 * line, the URI or its query, and the environment's copies of them, are
 * whatever the client says, unless only a trusted front end can reach the
 * scope. */
static int reads_client_input(apr_pool_t *p, const scope_t *scope, const char *expr)
{
    static const char *const forms[] = {"%{http:",
                                        "%{req:",
                                        "%{req_novary:",
                                        "%{http_",
                                        "req(",
                                        "http(",
                                        "req_novary(",
                                        "%{query_string",
                                        "%{request_uri",
                                        "%{the_request",
                                        "%{request_filename",
                                        "%{path_info",
                                        "%{script_filename",
                                        "%{document_uri",
                                        "%{env:http_",
                                        "%{reqenv:http_",
                                        "%{env:match_",
                                        "%{reqenv:match_",
                                        "%{env:query_string",
                                        "%{env:request_uri",
                                        NULL};
    char *lower = apr_pstrdup(p, expr);
    const char *at = lower;

    ap_str_tolower(lower);
    for (int i = 0; forms[i]; i++) {
        if (strstr(lower, forms[i])) {
            return 1;
        }
    }
    /* %{env:NAME}, %{reqenv:NAME}, env('NAME')... of a copy of client input */
    while (scope->tainted && (at = strpbrk(at, ":(")) != NULL) {
        const char *name = ++at;
        apr_size_t len = strcspn(name, "}')\" ");
        if (*name == '\'') {
            name++;
            len = strcspn(name, "'");
        }
        if (len && apr_hash_get((apr_hash_t *)scope->tainted, name, (apr_ssize_t)len)) {
            return 1;
        }
    }
    return 0;
}

/* Remembers (lower-cased) the environment variables a directive sets from
 * a capture of client input: SetEnvIf* with $n in a value, RewriteRule or
 * RewriteCond [E=name:value] with $n or %n or %{...} in the value. */
static void note_tainted(apr_pool_t *p, const ap_directive_t *d, apr_hash_t *tainted)
{
    const char *w[16];
    int n = words(p, d, w, 16);

    if (!strncasecmp(d->directive, "SetEnvIf", 8) ||
        !strcasecmp(d->directive, "BrowserMatch")) {
        for (int i = 1; i < n; i++) {
            const char *eq = strchr(w[i], '=');
            if (eq && strpbrk(eq, "$")) {
                char *name = apr_pstrmemdup(p, w[i], eq - w[i]);
                ap_str_tolower(name);
                apr_hash_set(tainted, name, APR_HASH_KEY_STRING, "");
            }
        }
    } else if (!strncasecmp(d->directive, "Rewrite", 7) && n) {
        for (const char *e = ap_strcasestr(w[n - 1], "E="); e; e = ap_strcasestr(e + 2, "E=")) {
            const char *colon = strchr(e, ':');
            const char *end = colon ? strpbrk(colon, ",]") : NULL;
            if (colon && strpbrk(apr_pstrmemdup(
                                     p, colon, end ? (apr_size_t)(end - colon) : strlen(colon)),
                                 "$%")) {
                char *name = apr_pstrmemdup(p, e + 2, colon - e - 2);
                ap_str_tolower(name);
                apr_hash_set(tainted, name, APR_HASH_KEY_STRING, "");
            }
        }
    }
}

/* The whole configuration, before the walk: the environment's copies of
 * client input, and the sections (not plain <Location>s, which the walk
 * follows) holding Session On. */
static void prescan(apr_pool_t *p, const ap_directive_t *first, apr_hash_t *tainted,
                    apr_array_header_t *sessions)
{
    for (const ap_directive_t *d = first; d; d = d->next) {
        if (d->first_child) {
            prescan(p, d->first_child, tainted, sessions);
            continue;
        }
        note_tainted(p, d, tainted);
        if (!strcasecmp(d->directive, "Session") && d->parent &&
            (!strncasecmp(d->parent->directive, "<Directory", 10) ||
             !strcasecmp(d->parent->directive, "<LocationMatch") ||
             (!strcasecmp(d->parent->directive, "<Location") && d->parent->args &&
              !strncmp(d->parent->args, "~", 1))) &&
            !strcasecmp(first_arg(p, d), "on")) {
            APR_ARRAY_PUSH(sessions, const ap_directive_t *) = d;
        }
    }
}

/* What the parse of a condition met: address tests and their arguments. */
typedef struct {
    int address_var; /* %{REMOTE_ADDR} or %{CONN_REMOTE_ADDR} */
    int narrow_test; /* -R, or -ipmatch, with a narrow argument */
    int broad_test;  /* one with an argument that admits everyone */
} condition_seen_t;

#define CONDITION_SEEN "pegadm-condition-seen"

/* The lookup of ap_expr_parse: notes address tests, then resolves each
 * name as httpd does. */
static int note_condition(ap_expr_lookup_parms *parms)
{
    condition_seen_t *seen = NULL;

    apr_pool_userdata_get((void **)&seen, CONDITION_SEEN, parms->ptemp);
    if (seen && parms->type == AP_EXPR_FUNC_VAR &&
        (!strcasecmp(parms->name, "REMOTE_ADDR") ||
         !strcasecmp(parms->name, "CONN_REMOTE_ADDR"))) {
        seen->address_var = 1;
    } else if (seen && parms->arg &&
               ((parms->type == AP_EXPR_FUNC_OP_UNARY && !strcmp(parms->name, "R")) ||
                (parms->type == AP_EXPR_FUNC_OP_BINARY && !strcmp(parms->name, "ipmatch")))) {
        if (pegadm_subnets_admit_all(&parms->arg, 1)) {
            seen->broad_test = 1;
        } else {
            seen->narrow_test = 1;
        }
    }
    return ap_run_expr_lookup(parms);
}

/* "%{REMOTE_ADDR} == 'address'", the one comparison the lookup never sees. */
static int compares_address_literal(const char *expr)
{
    const char *var = ap_strcasestr(expr, "REMOTE_ADDR}");
    const char *eq = var ? strstr(var, "==") : NULL;

    while (eq && (eq[2] == ' ' || eq[2] == '\t')) {
        eq++;
    }
    return eq && (eq[2] == '\'' || eq[2] == '"') && eq[3] && eq[3] != eq[2];
}

/* Whether an <If> or <ElseIf> holds only for some client addresses: its
 * condition, parsed as httpd parses it, tests the address (-R, -ipmatch on
 * the client address, == an address) against less than every address,
 * and holds only if each of its parts does. */
static int is_client_address_condition(apr_pool_t *ptemp, const ap_directive_t *d)
{
    condition_seen_t seen = {0, 0, 0};
    ap_expr_info_t info;
    apr_pool_t *p;
    const char *args = d->args, *expr;
    char *text;
    apr_size_t len;
    int narrow;

    if ((strcasecmp(d->directive, "<If") != 0 && strcasecmp(d->directive, "<ElseIf") != 0) ||
        !args) {
        return 0;
    }
    text = apr_pstrdup(ptemp, args);
    len = strlen(text);
    if (len && text[len - 1] == '>') {
        text[len - 1] = '\0';
    }
    args = text;
    expr = ap_getword_conf(ptemp, &args);
    apr_pool_create(&p, ptemp);
    apr_pool_userdata_setn(&seen, CONDITION_SEEN, NULL, p);
    memset(&info, 0, sizeof(info));
    info.filename = d->filename;
    info.line_number = d->line_num;
    narrow = ap_expr_parse(p, p, &info, expr, note_condition) == NULL &&
             pegadm_expr_is_conjunction(expr) && !seen.broad_test &&
             ((seen.narrow_test && (seen.address_var || ap_strcasestr(expr, "-R"))) ||
              compares_address_literal(expr));
    apr_pool_destroy(p);
    return narrow;
}

static void warn_customer_id(apr_pool_t *p, const scope_t *scope, const ap_directive_t *d)
{
    if (!scope->client_address_condition && reads_client_input(p, scope, d->args)) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_WARNING, 0, NULL,
                     "PEGADM703: PegaDMCustomerID at %s:%d reads what the client sends (a "
                     "request header, the request line, URI or query, or a copy of them in "
                     "the environment), and no condition narrower than every client address "
                     "(<If> on %%{CONN_REMOTE_ADDR}, Require ip) encloses it: a client could "
                     "name any customer",
                     d->filename, d->line_num);
    }
}

static int is_unset_early(const scope_t *scope, const char *header)
{
    for (int i = 0; scope->unset_early && scope->unset_early[i]; i++) {
        if (!strcasecmp(scope->unset_early[i], header)) {
            return 1;
        }
    }
    return 0;
}

/* RequestHeader set|append|add|merge|setifempty|edit <name> ...PEGADM_SESSION_ID... */
static void warn_forwarded_session(apr_pool_t *p, const scope_t *scope, const ap_directive_t *d)
{
    const char *w[2];

    if (!d->args || !ap_strcasestr(d->args, "PEGADM_SESSION_ID") || words(p, d, w, 2) != 2 ||
        !strcasecmp(w[0], "unset") || is_unset_early(scope, w[1])) {
        return;
    }
    ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_WARNING, 0, NULL,
                 "PEGADM704: RequestHeader at %s:%d forwards PEGADM_SESSION_ID in %s with no "
                 "\"RequestHeader unset %s early\" before it in the server or virtual host: "
                 "where the variable is not set, the client's own %s goes through",
                 d->filename, d->line_num, w[1], w[1], w[1]);
}

static int is_log_directive(const ap_directive_t *d)
{
    static const char *const logs[] = {"LogFormat", "CustomLog",      "TransferLog",
                                       "GlobalLog", "ErrorLogFormat", NULL};
    for (int i = 0; logs[i]; i++) {
        if (!strcasecmp(d->directive, logs[i])) {
            return 1;
        }
    }
    return 0;
}

static void warn_logged_session(const ap_directive_t *d)
{
    /* %{...}e reads a table whose keys compare case-insensitively */
    if (d->args && ap_strcasestr(d->args, "PEGADM_SESSION_ID")) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_WARNING, 0, NULL,
                     "PEGADM705: %s at %s:%d logs PEGADM_SESSION_ID: a session ID is a "
                     "bearer credential for the chat, and whoever reads the log can use it",
                     d->directive, d->filename, d->line_num);
    }
}

/* The warnings about one directive of a level. */
static void warn_directive(apr_pool_t *p, const scope_t *scope, const ap_directive_t *d)
{
    if (is_bootstrap_handler(p, d)) {
        warn_session_on(p, scope, d);
    } else if (!strcasecmp(d->directive, PEGADM_DIRECTIVE_CUSTOMER_ID)) {
        warn_customer_id(p, scope, d);
    } else if (!strcasecmp(d->directive, "RequestHeader")) {
        warn_forwarded_session(p, scope, d);
    } else if (is_log_directive(d)) {
        warn_logged_session(d);
    }
}

static int walk(apr_pool_t *p, const ap_directive_t *first, const scope_t *outer,
                const ap_directive_t *siblings, const ap_directive_t *section)
{
    scope_t scope = *outer;
    int failures;

    for (const ap_directive_t *s = section ? siblings : NULL; s; s = s->next) {
        if (section_covers(p, s, section)) {
            collect(p, s->first_child, &scope);
        }
    }
    collect(p, first, &scope);
    failures = check_scope(p, &scope, outer);
    for (const ap_directive_t *d = first; d; d = d->next) {
        if (d->first_child) {
            scope_t inner = scope;
            inner.client_address_condition |= is_client_address_condition(p, d);
            /* a conditional section's settings were collected with this
             * level already: walking it again finds no new pair */
            failures += directive_is_conditional(d) || is_require_container(d)
                            ? walk(p, d->first_child, &inner, NULL, NULL)
                            : walk(p, d->first_child, &inner, first, d);
        } else {
            warn_directive(p, &scope, d);
        }
    }
    return failures;
}

static int check_security(apr_pool_t *ptemp, server_rec *s)
{
    apr_hash_t *tainted = apr_hash_make(ptemp);
    apr_array_header_t *sessions = apr_array_make(ptemp, 2, sizeof(const ap_directive_t *));
    scope_t none = {NULL, NULL, NULL, NULL, 0, NULL, tainted, sessions};

    prescan(ptemp, ap_conftree, tainted, sessions);
    return walk(ptemp, ap_conftree, &none, NULL, NULL) ? HTTP_INTERNAL_SERVER_ERROR : OK;
}

typedef struct {
    int widget;
    int secret;
} scope_has_t;

static int directive_is_conditional(const ap_directive_t *d)
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
        if (!strcasecmp(d->directive, PEGADM_DIRECTIVE_WIDGET_ID)) {
            has->widget = 1;
        } else if (!strcasecmp(d->directive, PEGADM_DIRECTIVE_SECRET) ||
                   !strcasecmp(d->directive, PEGADM_DIRECTIVE_SECRET_FILE)) {
            has->secret = 1;
        } else if (d->first_child && directive_is_conditional(d)) {
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
static int section_covers(apr_pool_t *p, const ap_directive_t *sibling,
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

    if (!strcasecmp(d->directive, PEGADM_DIRECTIVE_ENABLED)) {
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
        if (section_covers(p, s, section)) {
            scan_level(s->first_child, &has);
        }
    }
    for (const ap_directive_t *d = first; d; d = d->next) {
        if (d->first_child) {
            const ap_directive_t *level_siblings = directive_is_conditional(d) ? NULL : first;
            failures += check_level(p, d->first_child, has, level_siblings,
                                    directive_is_conditional(d) ? section : d);
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

static int check_scopes(apr_pool_t *ptemp, server_rec *s)
{
    scope_has_t none = {0, 0};
    return check_level(ptemp, ap_conftree, none, NULL, NULL) ? HTTP_INTERNAL_SERVER_ERROR : OK;
}

/* ---- start-up check: every query needs a DBDriver for its server ----
 * DBDriver is a server-level directive, so it can only sit at the top, in
 * a <VirtualHost>, or in conditional sections around them. */

static int level_has_driver(const ap_directive_t *first)
{
    for (const ap_directive_t *d = first; d; d = d->next) {
        if (!strcasecmp(d->directive, "DBDriver")) {
            return 1;
        }
        if (d->first_child && strcasecmp(d->directive, "<VirtualHost") != 0 &&
            level_has_driver(d->first_child)) {
            return 1;
        }
    }
    return 0;
}

static int check_queries(const ap_directive_t *first, int has_driver)
{
    int failures = 0;

    has_driver = has_driver || level_has_driver(first);
    for (const ap_directive_t *d = first; d; d = d->next) {
        if (d->first_child) {
            failures += check_queries(d->first_child, has_driver);
        } else if (!strcasecmp(d->directive, PEGADM_DIRECTIVE_CID_QUERY) && !has_driver) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_CRIT, 0, NULL,
                         "PEGADM200: PegaDMCustomerIDQuery at %s:%d has no database: "
                         "configure DBDriver and DBDParams (mod_dbd) for this server",
                         d->filename, d->line_num);
            failures++;
        }
    }
    return failures;
}

/* Each check walks the tree in its own way; the first that fails stops
 * the start-up before the next speaks. */
int pegadm_check_config_tree(apr_pool_t *ptemp, server_rec *s)
{
    if (check_queries(ap_conftree, 0)) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (check_security(ptemp, s) != OK) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return check_scopes(ptemp, s);
}
