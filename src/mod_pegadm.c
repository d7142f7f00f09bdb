/* mod_pegadm: connects a portal's logged-in customers to Pega Digital
 * Messaging. The module record, every hook the module registers, the
 * start-up sequences that call each part in order, and eager mode's fixup.
 * The rest of the Apache glue is in the other mod_pegadm_*.c (src/README.md
 * says which file holds what), the httpd-free core in pegadm_*.c. */
#include "mod_pegadm.h"

#include <string.h>

#include <apr_optional_hooks.h>
#include <apr_strings.h>
#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>
#include <ap_mpm.h>
#include <mod_status.h>
#include <util_mutex.h>

#include "mod_pegadm_operator.h"
#include "pegadm_http.h"

static int pegadm_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    return ap_mutex_register(pconf, PEGADM_MUTEX_TYPE, NULL, APR_LOCK_DEFAULT, 0) == APR_SUCCESS
               ? OK
               : HTTP_INTERNAL_SERVER_ERROR;
}

static int pegadm_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                               server_rec *s)
{
    if (pegadm_cache_check_config(pconf, ptemp, s) != APR_SUCCESS) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    pegadm_dbd_note_databases(s);
    return pegadm_check_config_tree(ptemp, s);
}

/* Idle upstream handles kept per child: at most one per worker thread,
 * and a handful is plenty for the rare creates once sessions are cached. */
#define HTTP_IDLE_MAX 16

/* The start-up sequence, once per configuration: each part in order, the
 * later ones using what the earlier made (the cache's provider, the
 * counters' block). */
static int pegadm_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                              server_rec *s)
{
    /* The first pass only checks the configuration; nothing to attach yet. */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    if (pegadm_cache_post_config(pconf, ptemp, s) != APR_SUCCESS) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    pegadm_localcache_post_config(ptemp, s);
    pegadm_read_gate_log(s, ptemp);
    pegadm_logout_post_config(pconf, s);
    pegadm_inject_post_config();
    pegadm_tenants_post_config(pconf, s);
    if (pegadm_http_global_init() != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, "PEGADM002: initialising libcurl failed");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (pegadm_metrics_post_config(pconf, s) != APR_SUCCESS ||
        pegadm_audit_post_config(pconf, s) != APR_SUCCESS ||
        pegadm_preflight_post_config(pconf, ptemp, s) != APR_SUCCESS) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, "PEGADM602: mod_pegadm %s ready",
                 PEGADM_VERSION);
    return OK;
}

/* "apachectl -t": what post_config would say of the read gate. */
static void pegadm_test_config(apr_pool_t *pconf, server_rec *s)
{
    pegadm_read_gate_log(s, pconf);
}

/* Upstream connections live as long as the child: its pool frees them. */
static void http_child_init(apr_pool_t *p, server_rec *s)
{
    pegadm_server_conf_t *sc = ap_get_module_config(s->module_config, &pegadm_module);
    int threads = 1;
    apr_status_t rv;

    ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads);
    sc->threads = threads > 0 ? threads : 1;
    rv = pegadm_http_handles_create(p, threads < HTTP_IDLE_MAX ? threads : HTTP_IDLE_MAX,
                                    &sc->http_handles);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s,
                     "PEGADM403: cannot keep upstream connections; each call to the "
                     "service connects afresh");
    }
    /* a waiting request waits for one create: a place per thread is enough */
    if (pegadm_waiters_create(p, threads, &sc->waiters) != APR_SUCCESS) {
        sc->waiters = NULL;
    }
}

/* The same parts in each child; the preflight's warm connection goes into
 * the upstream handles made before it. */
static void pegadm_child_init(apr_pool_t *p, server_rec *s)
{
    pegadm_metrics_child_init(p, s); /* the slot first: the cache client counts in it */
    pegadm_cache_child_init(p, s);
    pegadm_localcache_child_init(p, s);
    pegadm_read_gate_child_init(p, s);
    pegadm_dbd_child_init(p, s);
    pegadm_create_lock_child_init(p, s);
    http_child_init(p, s);
    pegadm_audit_child_init(p, s);
    pegadm_preflight_child_init(p, s);
}

/* Marks a request whose eager work is done (or failed). */
#define EAGER_NOTE "pegadm-eager"

static int is_own_handler(const request_rec *r)
{
    return r->handler && (!strcmp(r->handler, PEGADM_HANDLER_SESSION) ||
                          !strcmp(r->handler, PEGADM_HANDLER_BOOTSTRAP));
}

static void export_session(request_rec *r, const char *sid, const char *widget_id)
{
    apr_table_setn(r->subprocess_env, "PEGADM_SESSION_ID", sid);
    apr_table_setn(r->subprocess_env, "PEGADM_WIDGET_ID", widget_id);
}

/* Eager mode: after authentication and authorization, make sure the user
 * has a session and export it. A failure is logged and the page is served
 * without the variables: chat trouble never takes the portal down. */
static int pegadm_fixups(request_rec *r)
{
    const pegadm_dir_conf_t *d = ap_get_module_config(r->per_dir_config, &pegadm_module);
    pegadm_session_result_t res;
    const char *customer_id;

    if (d->forget == 1) {
        return DECLINED; /* a logout URL: no new session (mod_pegadm_logout.c) */
    }
    if (d->enabled != 1 || !d->widget_id || !d->secret || is_own_handler(r)) {
        return DECLINED;
    }
    if (r->main && pegadm_cache_control_top_is_public(r)) {
        return DECLINED; /* its answer may be cached for anyone */
    }
    if (r->main && apr_table_get(r->main->notes, EAGER_NOTE)) {
        /* A subrequest (SSI include) shares the outcome of its main request
         * instead of asking again. One whose main request was outside eager
         * scope (a DirectoryIndex lookup from "/") does the work itself:
         * mod_dir carries its variables over to the main request. */
        const char *sid = apr_table_get(r->main->subprocess_env, "PEGADM_SESSION_ID");
        if (sid) {
            export_session(r, sid, d->widget_id);
        }
        return DECLINED;
    }
    apr_table_setn(r->notes, EAGER_NOTE, "1");
    if (pegadm_customer_id(r, d, &customer_id) == PEGADM_CUSTOMER_OK &&
        pegadm_session_op(r, d, customer_id, PEGADM_OP_PAGE, NULL, &res) == PEGADM_SESSION_OK) {
        pegadm_logout_cookie_set(r, d, customer_id, res.created);
        export_session(r, res.session_id, d->widget_id);
    }
    return DECLINED;
}

static int pegadm_handler(request_rec *r)
{
    int status;

    if (is_own_handler(r) && !pegadm_handler_is_trusted(r)) {
        return HTTP_FORBIDDEN;
    }
    status = pegadm_session_handler(r);
    return status == DECLINED ? pegadm_bootstrap_handler(r) : status;
}

/* Every hook of the module, here and nowhere else. Within one hook and
 * order, httpd runs the module's functions in the order registered. */
static void pegadm_register_hooks(apr_pool_t *p)
{
    static const char *const after_env[] = {"mod_ssl.c", "mod_env.c", NULL};

    /* start-up */
    ap_hook_pre_config(pegadm_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_config(pegadm_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_test_config(pegadm_test_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(pegadm_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(pegadm_child_init, NULL, NULL, APR_HOOK_MIDDLE);

    /* logout: the cookie before any authentication, the user after it and
     * before every other module's fixups (a RewriteRule [R] or the handler
     * may end the request there, and the session must be gone by then) */
    ap_hook_header_parser(pegadm_logout_header_parser, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_fixups(pegadm_forget_fixups, NULL, NULL, APR_HOOK_REALLY_FIRST);
    /* eager mode: before mod_headers (APR_HOOK_LAST), so RequestHeader can
     * forward the ID; after mod_ssl's and mod_env's, so that expressions
     * see the variables of SSLOptions +StdEnvVars and SetEnv */
    ap_hook_fixups(pegadm_fixups, after_env, NULL, APR_HOOK_MIDDLE);

    /* answers */
    ap_hook_handler(pegadm_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(pegadm_status_handler, NULL, NULL, APR_HOOK_MIDDLE);
    APR_OPTIONAL_HOOK(ap, status_hook, pegadm_status_hook, NULL, NULL, APR_HOOK_MIDDLE);

    /* output filters. PegaDMInject's is a resource filter, before
     * mod_deflate (a content-set filter); it is added last, so that filters
     * added by name (SetOutputFilter INCLUDES) are in the chain before it
     * and the tag goes into their output. Cache-Control's is a content-set
     * filter, as mod_session's and mod_headers' are; mod_cache stores after
     * all of those. */
    ap_register_output_filter(PEGADM_INJECT_FILTER, pegadm_inject_filter, NULL,
                              AP_FTYPE_RESOURCE);
    ap_hook_insert_filter(pegadm_inject_insert, NULL, NULL, APR_HOOK_LAST);
    ap_register_output_filter(PEGADM_CACHE_CONTROL_FILTER, pegadm_cache_control_filter, NULL,
                              AP_FTYPE_CONTENT_SET);
    ap_hook_insert_filter(pegadm_cache_control_insert, NULL, NULL, APR_HOOK_REALLY_LAST);
}

AP_DECLARE_MODULE(pegadm) = {
    STANDARD20_MODULE_STUFF,
    pegadm_create_dir_conf,    /* per-directory record */
    pegadm_merge_dir_conf,     /* its merge */
    pegadm_create_server_conf, /* server record, with its sub-records */
    pegadm_merge_server_conf,  /* virtual hosts share the main server's */
    pegadm_cmds,               /* the directives (mod_pegadm_config.c) */
    pegadm_register_hooks,     /* every hook, above */
    0,                         /* flags */
};
