/* Tenants: a .htaccess file can never make the module act. httpd lets a
 * .htaccess file name any handler (SetHandler, AddHandler, RewriteRule [H=]
 * are FileInfo overrides, and AllowOverrideList lets any directive through),
 * and the handler would inherit the widget and secret of the scopes around
 * it: a local user with FileInfo and AuthConfig could write his own Basic
 * user "alice" and be handed the real alice's chat session.
 *
 * So a pegadm handler acts only where the main configuration named it:
 * - SetHandler: core merges the expression object of the section that set
 *   it into the request's configuration by pointer, so the objects of the
 *   main configuration's sections (and of their <If> sections), collected
 *   at start-up, tell the main configuration's SetHandler from a .htaccess
 *   file's;
 * - any other way (AddHandler through mod_mime, RewriteRule [H=]) only for a
 *   request for which no .htaccess file was read.
 * The module's own directives are refused in .htaccess files (and a record
 * made from one at request time is never merged): see mod_pegadm_config.c. */
#include "mod_pegadm.h"

#include <string.h>

#include <apr_atomic.h>
#include <apr_strings.h>
#include <http_core.h>

APLOG_USE_MODULE(pegadm);

/* The key of an expression in the table: the bytes of its pointer, which
 * the merge copies from the section that set it. */
#define EXPR_KEY_LEN sizeof(void *)

static pegadm_server_conf_t *server_conf(server_rec *s)
{
    return ap_get_module_config(s->module_config, &pegadm_module);
}

static void note_handler(apr_hash_t *known, const ap_conf_vector_t *section);

static void note_sections(apr_hash_t *known, const apr_array_header_t *sections)
{
    for (int i = 0; sections && i < sections->nelts; i++) {
        note_handler(known, APR_ARRAY_IDX(sections, i, ap_conf_vector_t *));
    }
}

/* Remembers the SetHandler expression of a section and of the <Files> and
 * <If> sections in it. */
static void note_handler(apr_hash_t *known, const ap_conf_vector_t *section)
{
    const core_dir_config *cd = section ? ap_get_core_module_config(section) : NULL;

    if (!cd) {
        return;
    }
    if (cd->expr_handler) {
        apr_hash_set(known, &cd->expr_handler, EXPR_KEY_LEN, "");
    }
    note_sections(known, cd->sec_file);
    note_sections(known, cd->sec_if);
}

void pegadm_tenants_post_config(apr_pool_t *pconf, server_rec *s)
{
    pegadm_server_conf_t *sc = server_conf(s);
    apr_hash_t *known = apr_hash_make(pconf);

    for (server_rec *vs = s; vs; vs = vs->next) {
        const core_server_config *cs = ap_get_core_module_config(vs->module_config);
        note_handler(known, vs->lookup_defaults);
        note_sections(known, cs->sec_dir);
        note_sections(known, cs->sec_url);
    }
    /* one record for the whole server (pegadm_merge_server_conf) */
    sc->main_handlers = known;
}

/* Whether a .htaccess file was read for r (or the request it came from). */
static int read_htaccess(const request_rec *r)
{
    for (const struct htaccess_result *h = r->htaccess; h; h = h->next) {
        if (h->htaccess) {
            return 1;
        }
    }
    return 0;
}

/* Whether r->handler is what a SetHandler of the main configuration says. */
static int set_by_main_config(request_rec *r)
{
    const core_dir_config *cd = ap_get_core_module_config(r->per_dir_config);
    apr_hash_t *known = server_conf(r->server)->main_handlers;
    const char *err = NULL, *value;

    if (!cd || !cd->expr_handler || !known ||
        !apr_hash_get(known, &cd->expr_handler, EXPR_KEY_LEN)) {
        return 0;
    }
    value = ap_expr_str_exec(r, cd->expr_handler, &err);
    return !err && value && !strcasecmp(value, r->handler);
}

int pegadm_handler_is_trusted(request_rec *r)
{
    pegadm_server_conf_t *sc = server_conf(r->server);
    int first;

    if (!read_htaccess(r) || set_by_main_config(r)) {
        return 1;
    }
    first = apr_atomic_cas32(&sc->tenant_refusal_logged, 1, 0) == 0;
    ap_log_rerror(APLOG_MARK, first ? APLOG_WARNING : APLOG_DEBUG, 0, r,
                  "PEGADM041: handler %s refused for %s: a .htaccess file was read for this "
                  "request and no SetHandler of the main configuration names the handler "
                  "here; the module's handlers act only where the main configuration's "
                  "SetHandler sets them%s",
                  r->handler, r->filename ? r->filename : r->uri,
                  first ? " (repeats are logged at debug level)" : "");
    return 0;
}
