/* The operator record: what operators see and steer (the counters shared
 * by all child processes, the audit log, the preflight's settings and
 * services), made with the server record, and the calls the rest of the
 * module makes to feed it (one line at each place that knows). */
#ifndef MOD_PEGADM_OPERATOR_H
#define MOD_PEGADM_OPERATOR_H

#include "mod_pegadm.h"
#include "pegadm_metrics.h"
#include "pegadm_version.h"

#define PEGADM_HANDLER_STATUS "pegadm-status"

/* PegaDMPreflight* and the services to check (mod_pegadm_preflight.c) */
typedef struct pegadm_preflight_t pegadm_preflight_t;
struct pegadm_preflight_t {
    int enabled;               /* -1 unset: on */
    int warn_days;             /* -1 unset */
    apr_interval_time_t every; /* -1 unset; 0: only at start-up */
    apr_array_header_t *targets;
    server_rec *s;
    int cache_usable; /* the shared cache, as last checked; children inherit it */
};

/* Per server (the main one; virtual hosts share it). */
struct pegadm_operator_t {
    /* the shared counters, from post_config; the slot from child_init */
    pegadm_metrics_t *metrics;
    pegadm_metrics_slot_t *slot;
    int *widget_map; /* configuration's widget index -> index in metrics */
    /* PegaDMAuditLog (mod_pegadm_audit.c) */
    const char *audit_target;
    apr_file_t *audit_file;
    int audit_is_pipe;
    int audit_shell; /* "|$command": through the shell */
    const char *node;
    apr_uint32_t audit_dropped_logged_at; /* seconds; per process */
    pegadm_preflight_t *preflight;        /* mod_pegadm_preflight.c */
};

/* The counters' widget list of this configuration (pconf userdata): each
 * PegaDMWidgetID's index, kept in pegadm_dir_conf_t.metrics_widget. */
#define PEGADM_WIDGETS_KEY "pegadm-metrics-widgets"

/* The operator record, made with the server record (mod_pegadm_config.c). */
static inline pegadm_operator_t *pegadm_operator_of(server_rec *s)
{
    return ((pegadm_server_conf_t *)ap_get_module_config(s->module_config, &pegadm_module))
        ->operator_rec;
}

/* mod_pegadm_config.c */
int pegadm_conf_preflight_warn_days(const pegadm_preflight_t *pf);
apr_interval_time_t pegadm_conf_preflight_interval(const pegadm_preflight_t *pf);

/* mod_pegadm_metrics.c */
apr_status_t pegadm_metrics_post_config(apr_pool_t *pconf, server_rec *s);
void pegadm_metrics_child_init(apr_pool_t *p, server_rec *s);

/* One upstream call, its outcome and how long it took: lock-free, a few
 * nanoseconds. */
void pegadm_count_call(const request_rec *r, const pegadm_dir_conf_t *d,
                       pegadm_upstream_call_t call, pegadm_call_outcome_t outcome,
                       apr_interval_time_t took);

/* What the session code reports, counted and audited in one call each. */
void pegadm_observe_call(request_rec *r, const pegadm_dir_conf_t *d,
                         pegadm_upstream_call_t call, pegadm_dm_status_t st,
                         const char *customer_id, const char *session_id, apr_time_t started);
void pegadm_observe_refusal(request_rec *r, const pegadm_dir_conf_t *d, const char *why,
                            const char *customer_id);
void pegadm_observe_breaker(request_rec *r, const pegadm_dir_conf_t *d,
                            pegadm_breaker_change_t change);
void pegadm_observe_session_op(request_rec *r, const pegadm_dir_conf_t *d, pegadm_op_t op,
                               pegadm_session_status_t st, const pegadm_session_result_t *res,
                               const char *customer_id);

/* mod_pegadm_metrics.c: what operators read */
int pegadm_status_handler(request_rec *r);
/* mod_status's section */
int pegadm_status_hook(request_rec *r, int flags);

/* mod_pegadm_audit.c */
apr_status_t pegadm_audit_post_config(apr_pool_t *pconf, server_rec *s);
void pegadm_audit_child_init(apr_pool_t *p, server_rec *s);
/* One audit line: event is create, private_data, forget or refusal;
 * customer and session (either may be NULL) are written as keyed hashes. */
void pegadm_audit(request_rec *r, const pegadm_dir_conf_t *d, const char *event,
                  const char *outcome, const char *customer_id, const char *session_id,
                  apr_interval_time_t took);

/* mod_pegadm_preflight.c */
/* The start-up check (warnings only: httpd starts regardless). */
apr_status_t pegadm_preflight_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s);
void pegadm_preflight_child_init(apr_pool_t *p, server_rec *s);

#endif
