/* mod_pegadm: connects a portal's logged-in customers to Pega Digital
 * Messaging. The module record and hooks, and eager mode's fixup; the rest of
 * the Apache glue is in the other mod_pegadm_*.c, the httpd-free core in
 * pegadm_*.c. */
#include "mod_pegadm.h"

#include <string.h>

#include <apr_strings.h>
#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>
#include <ap_mpm.h>
#include <util_mutex.h>

#include "mod_pegadm_ops.h"
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
    if (pegadm_dbd_check_config(ptemp, s) != OK) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (pegadm_check_security(ptemp, s) != OK) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return pegadm_check_scopes(ptemp, s);
}

static int pegadm_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                              server_rec *s)
{
    /* The first pass only checks the configuration; nothing to attach yet. */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    if (pegadm_http_global_init() != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, "PEGADM002: initialising libcurl failed");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return pegadm_cache_post_config(pconf, ptemp, s) == APR_SUCCESS
               ? OK
               : HTTP_INTERNAL_SERVER_ERROR;
}

/* Idle upstream handles kept per child: at most one per worker thread,
 * and a handful is plenty for the rare creates once sessions are cached. */
#define HTTP_IDLE_MAX 16

static void pegadm_child_init(apr_pool_t *p, server_rec *s)
{
    pegadm_server_conf_t *sc = ap_get_module_config(s->module_config, &pegadm_module);
    int threads = 1;
    apr_status_t rv;

    pegadm_cache_child_init(p, s);
    /* Connections live as long as the child: its pool frees the handles. */
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
        return DECLINED; /* a logout URL: no new session (mod_pegadm_lifecycle.c) */
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

static void pegadm_register_hooks(apr_pool_t *p)
{
    static const char *const after_env[] = {"mod_ssl.c", "mod_env.c", NULL};

    ap_hook_pre_config(pegadm_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_config(pegadm_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(pegadm_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(pegadm_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    /* before mod_headers (APR_HOOK_LAST), so RequestHeader can forward the ID;
     * after mod_ssl's and mod_env's, so that expressions see the variables
     * of SSLOptions +StdEnvVars and SetEnv */
    ap_hook_fixups(pegadm_fixups, after_env, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(pegadm_handler, NULL, NULL, APR_HOOK_MIDDLE);
    pegadm_inject_register_hooks(p);
    pegadm_cache_control_register_hooks(p);
    pegadm_mark_register_hooks(p);
    pegadm_localcache_register_hooks(p);
    pegadm_reads_register_hooks(p);
    pegadm_ops_register_hooks(p);
    pegadm_lifecycle_register_hooks(p);
    pegadm_logout_register_hooks(p);
    pegadm_tenants_register_hooks(p);
}

AP_DECLARE_MODULE(pegadm) = {
    STANDARD20_MODULE_STUFF,  pegadm_create_dir_conf,
    pegadm_merge_dir_conf,    pegadm_create_server_conf,
    pegadm_merge_server_conf, pegadm_cmds,
    pegadm_register_hooks,    0,
};
