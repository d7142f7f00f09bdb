/* The hooks of the operator-facing parts: the shared counters and the
 * audit log made at start-up, attached in every child, the status handler
 * and mod_status's section. */
#include "mod_pegadm_ops.h"

#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>

APLOG_USE_MODULE(pegadm);

static int ops_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                           server_rec *s)
{
    /* The first pass only checks the configuration. */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    pegadm_ops_of(s);
    if (pegadm_metrics_post_config(pconf, s) != APR_SUCCESS ||
        pegadm_audit_post_config(pconf, s) != APR_SUCCESS ||
        pegadm_preflight_post_config(pconf, ptemp, s) != APR_SUCCESS) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, "PEGADM602: mod_pegadm %s ready",
                 PEGADM_VERSION);
    return OK;
}

static void ops_child_init(apr_pool_t *p, server_rec *s)
{
    pegadm_metrics_child_init(p, s);
    pegadm_audit_child_init(p, s);
    pegadm_preflight_child_init(p, s);
}

void pegadm_ops_register_hooks(apr_pool_t *p)
{
    ap_hook_post_config(ops_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    /* after the module's own, which makes the upstream handles the warm-up uses */
    ap_hook_child_init(ops_child_init, NULL, NULL, APR_HOOK_LAST);
    ap_hook_handler(pegadm_status_handler, NULL, NULL, APR_HOOK_MIDDLE);
    pegadm_status_register_hooks(p);
}
