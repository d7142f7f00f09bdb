/* What the Apache-side files of mod_pegadm share: configuration records,
 * the session operations on a request, and the handlers. */
#ifndef MOD_PEGADM_H
#define MOD_PEGADM_H

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <ap_expr.h>
#include <ap_socache.h>
#include <apr_global_mutex.h>

#include "pegadm_dm.h"
#include "pegadm_seal.h"
#include "pegadm_session.h"

/* Log messages start with a stable number, "PEGADMnnn: ", so that
 * administrators can grep for them. */

#define PEGADM_HANDLER_SESSION   "pegadm-session"
#define PEGADM_HANDLER_BOOTSTRAP "pegadm-bootstrap"
#define PEGADM_MUTEX_TYPE        "pegadm-cache"

typedef struct {
    const unsigned char *bytes;
    apr_size_t len;
    pegadm_keys_t keys; /* derived once, at start-up */
} pegadm_secret_t;

typedef struct {
    const char *key;
    ap_expr_info_t *expr;
} pegadm_field_t;

/* Per-directory configuration. Unset values are NULL or -1; the accessors
 * below apply the defaults after merging. */
typedef struct {
    int enabled;
    const char *widget_id;
    const pegadm_secret_t *secret;
    const char *service_url;
    const char *private_data_url;
    ap_expr_info_t *customer_id;      /* NULL: REMOTE_USER */
    apr_array_header_t *private_data; /* of pegadm_field_t; NULL: customerId */
    apr_interval_time_t cache_ttl;
    apr_interval_time_t timeout;
    apr_interval_time_t connect_timeout;
    const char *ca_file;
    const char *proxy;
    int token_lifetime;
    int create_limit;
    apr_interval_time_t create_window;
    const char *session_endpoint;
} pegadm_dir_conf_t;

/* Server-wide: one cache and one mutex for the whole server. */
typedef struct {
    const char *cache_provider_name;
    const ap_socache_provider_t *cache_provider;
    ap_socache_instance_t *cache;
    apr_global_mutex_t *mutex;
    apr_uint32_t cache_error_logged_at; /* seconds; per process */
} pegadm_server_conf_t;

extern module AP_MODULE_DECLARE_DATA pegadm_module;

/* mod_pegadm_config.c */
extern const command_rec pegadm_cmds[];
void *pegadm_create_dir_conf(apr_pool_t *p, char *dir);
void *pegadm_merge_dir_conf(apr_pool_t *p, void *base, void *add);
void *pegadm_create_server_conf(apr_pool_t *p, server_rec *s);
void *pegadm_merge_server_conf(apr_pool_t *p, void *base, void *add);
const char *pegadm_conf_service_url(const pegadm_dir_conf_t *d);
const char *pegadm_conf_private_data_url(apr_pool_t *p, const pegadm_dir_conf_t *d);
const char *pegadm_conf_session_endpoint(const pegadm_dir_conf_t *d);
apr_interval_time_t pegadm_conf_cache_ttl(const pegadm_dir_conf_t *d);
void pegadm_conf_dm_target(apr_pool_t *p, const pegadm_dir_conf_t *d, pegadm_dm_target_t *t);
/* Refuses scopes where PegaDM On or a pegadm handler lacks a widget or secret. */
int pegadm_check_scopes(apr_pool_t *ptemp, server_rec *s);

/* mod_pegadm_session.c */
/* Resolves the cache provider (shmcb unless PegaDMCache says otherwise). */
apr_status_t pegadm_cache_check_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s);
apr_status_t pegadm_cache_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s);
void pegadm_cache_child_init(apr_pool_t *p, server_rec *s);
/* The validated customer ID of r, or NULL for "not authenticated". */
const char *pegadm_customer_id(request_rec *r, const pegadm_dir_conf_t *d);

typedef enum { PEGADM_OP_GET, PEGADM_OP_RENEW, PEGADM_OP_FORGET } pegadm_op_t;
/* Runs op for the customer, logging failures once at the place that knows
 * why. trigger is the widget's proactive trigger (RENEW only, may be NULL). */
pegadm_session_status_t pegadm_session_op(request_rec *r, const pegadm_dir_conf_t *d,
                                          const char *customer_id, pegadm_op_t op,
                                          const char *trigger, pegadm_session_result_t *res);

/* mod_pegadm_handlers.c */
int pegadm_session_handler(request_rec *r);
int pegadm_bootstrap_handler(request_rec *r);

#endif
