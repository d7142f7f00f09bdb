/* What the Apache-side files of mod_pegadm share: the configuration
 * records, and what each mod_pegadm_*.c file offers the others, grouped by
 * file. The httpd-free core has a header per file (pegadm_*.h). */
#ifndef MOD_PEGADM_H
#define MOD_PEGADM_H

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <ap_expr.h>
#include <ap_socache.h>
#include <apr_global_mutex.h>
#include <apr_hash.h>

#include "pegadm_breaker.h"
#include "pegadm_dm.h"
#include "pegadm_fields.h"
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

/* metrics, audit log, preflight (src/mod_pegadm_ops.h) */
typedef struct pegadm_ops_t pegadm_ops_t;

typedef struct {
    const char *key;
    ap_expr_info_t *expr;
    pegadm_field_type_t type;
    apr_uint32_t failure_logged; /* per process: a bad value is warned about once */
} pegadm_field_t;

/* Per-directory configuration. Unset values are NULL or -1; the accessors
 * below apply the defaults after merging. */
typedef struct {
    int from_htaccess; /* made from a .htaccess file at request time: never merged */
    int enabled;
    const char *widget_id;
    int metrics_widget; /* the widget's index for the counters (mod_pegadm_metrics.c) */
    const pegadm_secret_t *secret;
    const pegadm_secret_t
        *secret_next; /* PegaDMJWTSecretNext: rotation (mod_pegadm_rotation.c) */
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
    int create_waiters; /* per process, for one customer's create */
    const char *session_endpoint;
    /* the bootstrap tag filter (mod_pegadm_inject.c) */
    int inject;
    ap_expr_info_t *script_nonce; /* NULL: no nonce attribute */
    const char *bootstrap_url;
    /* the customer ID looked up through mod_dbd (mod_pegadm_dbd.c) */
    const char *cid_query;             /* NULL: the expression's value is the ID */
    const char *cid_query_label;       /* mod_dbd's name for the prepared statement */
    apr_interval_time_t cid_query_ttl; /* -1 or 0: answers are not cached */
    /* the circuit breaker around the create (mod_pegadm_session.c) */
    int breaker_threshold;
    apr_interval_time_t breaker_cooldown;
    /* the chat follows the portal login (mod_pegadm_lifecycle.c) */
    int forget;                               /* PegaDMForget */
    apr_interval_time_t private_data_refresh; /* -1: the default; 0: off */
} pegadm_dir_conf_t;

typedef struct pegadm_local_conf pegadm_local_conf_t; /* mod_pegadm_localcache.c */

/* Server-wide: one cache and one mutex for the whole server. */
typedef struct {
    const char *cache_provider_name;
    const ap_socache_provider_t *cache_provider;
    ap_socache_instance_t *cache;
    apr_global_mutex_t *mutex;
    apr_uint32_t cache_error_logged_at; /* seconds; per process */
    /* many nodes, many customers (mod_pegadm_cache.c, child_init) */
    const char *cache_args;                /* PegaDMCache's after the ':' */
    const ap_directive_t *cache_directive; /* where PegaDMCache is, for messages */
    int cache_customers;                   /* PegaDMCacheCustomers; 0: unset */
    apr_uint32_t cache_failed_at;          /* seconds; per process */
    pegadm_http_handles_t *http_handles;   /* per process, from child_init */
    pegadm_waiters_t *waiters;             /* per process, from child_init */
    int threads;                           /* worker threads per child, from child_init */
    apr_hash_t *databases;                 /* server key -> its DBDriver and DBDParams */
    const pegadm_mark_t *create_mark;      /* per process, from child_init; NULL: none */
    pegadm_local_conf_t *local_conf;       /* PegaDMLocalCache*; NULL: defaults */
    pegadm_localcache_t *localcache;       /* per process, from child_init; NULL: off */
    int reads_per_child;                   /* PegaDMCacheReadsPerChild; 0: no bound */
    const ap_directive_t *reads_directive; /* where it is; NULL: unset */
    pegadm_gate_t *read_gate;              /* per process, from child_init; NULL: none */
    pegadm_ops_t *ops;                     /* metrics and audit log (mod_pegadm_ops.h) */
    int logout_cookie_wanted;              /* some scope has PegaDMForget On (post_config) */
    apr_uint32_t rotation_tried_at;        /* seconds; per process (mod_pegadm_rotation.c) */
    apr_hash_t *main_handlers;             /* SetHandler expressions of the main config */
    apr_uint32_t tenant_refusal_logged;    /* per process (mod_pegadm_tenants.c) */
} pegadm_server_conf_t;

extern module AP_MODULE_DECLARE_DATA pegadm_module;

/* mod_pegadm_config.c */
extern const command_rec pegadm_cmds[];
void *pegadm_create_dir_conf(apr_pool_t *p, char *dir);
/* NULL, or the refusal of a directive that switches the module on, in a
 * .htaccess file (whatever AllowOverride and AllowOverrideList allow). */
const char *pegadm_refuse_htaccess(cmd_parms *cmd);
void *pegadm_merge_dir_conf(apr_pool_t *p, void *base, void *add);
void *pegadm_create_server_conf(apr_pool_t *p, server_rec *s);
void *pegadm_merge_server_conf(apr_pool_t *p, void *base, void *add);
const char *pegadm_conf_service_url(const pegadm_dir_conf_t *d);
const char *pegadm_conf_private_data_url(apr_pool_t *p, const pegadm_dir_conf_t *d);
const char *pegadm_conf_session_endpoint(const pegadm_dir_conf_t *d);
const char *pegadm_conf_bootstrap_url(const pegadm_dir_conf_t *d);
apr_interval_time_t pegadm_conf_cache_ttl(const pegadm_dir_conf_t *d);
apr_interval_time_t pegadm_conf_timeout(const pegadm_dir_conf_t *d);
void pegadm_conf_create_limit(const pegadm_dir_conf_t *d, int *count,
                              apr_interval_time_t *window);
/* PegaDMCreateWaiters, or by default a share of a child's threads. */
int pegadm_conf_create_waiters(const pegadm_dir_conf_t *d, int threads);
void pegadm_conf_dm_target(apr_pool_t *p, const pegadm_dir_conf_t *d, pegadm_dm_target_t *t);
void pegadm_conf_breaker(const pegadm_dir_conf_t *d, pegadm_breaker_conf_t *c);

/* mod_pegadm_scopes.c */
/* Refuses scopes where PegaDM On or a pegadm handler lacks a widget or secret. */
int pegadm_check_scopes(apr_pool_t *ptemp, server_rec *s);
/* Whether d is a section that only decides whether its contents count
 * (<IfModule>, <IfDefine>...), not a scope of its own. */
int pegadm_directive_is_conditional(const ap_directive_t *d);
/* Whether httpd surely merges the sibling section for every request that
 * reaches section: <Location /> covers everything, and a <Location> or
 * <Directory> covers those of its kind below its path. */
int pegadm_section_covers(apr_pool_t *p, const ap_directive_t *sibling,
                          const ap_directive_t *section);

/* mod_pegadm_keep.c: what the parent keeps across graceful restarts and
 * restarts, under a key, until it is replaced or the parent exits. */
/* What is kept under key; NULL if nothing. */
void *pegadm_kept(const char *key);
/* Destroys what is kept under key (its pool) and returns a new pool, under
 * the process pool, for its replacement; then pegadm_keep records it. Only
 * APR's cleanups may go into that pool. */
apr_pool_t *pegadm_keep_anew(server_rec *s, const char *key);
void pegadm_keep(const char *key, void *data);
/* Destroys what is kept under key, if anything. */
void pegadm_keep_drop(const char *key);

/* mod_pegadm_cache.c */
/* Resolves the cache provider (shmcb unless PegaDMCache says otherwise),
 * creates the default shmcb cache sized for PegaDMCacheCustomers, and warns
 * about a given shmcb size too small for them. */
apr_status_t pegadm_cache_check_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s);
/* Creates the mutex and initialises the cache (a shmcb one and its mutex are
 * kept across reloads while its arguments and Mutex settings are unchanged);
 * logs (info) a shmcb's size. */
apr_status_t pegadm_cache_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s);
void pegadm_cache_child_init(apr_pool_t *p, server_rec *s);
/* The session cache as a pegadm_store_t, allocated in p. */
const pegadm_store_t *pegadm_cache_store(apr_pool_t *p, server_rec *s);
/* Logs the store's failure why, at most once a minute per process. */
void pegadm_cache_log_failure(request_rec *r, const char *why);

/* mod_pegadm_customer.c */
typedef enum {
    PEGADM_CUSTOMER_OK = 0,
    PEGADM_CUSTOMER_NONE,       /* not authenticated, or no customer for the log-in */
    PEGADM_CUSTOMER_UNAVAILABLE /* the customer database cannot answer now */
} pegadm_customer_status_t;
/* The request note holding the customer ID once it is known, for
 * expressions such as PegaDMPrivateData's: %{note:PEGADM_CUSTOMER_ID}. */
#define PEGADM_CUSTOMER_NOTE "PEGADM_CUSTOMER_ID"
/* The validated customer ID of r in *id (on OK only); failures are logged. */
pegadm_customer_status_t pegadm_customer_id(request_rec *r, const pegadm_dir_conf_t *d,
                                            const char **id);

/* mod_pegadm_session.c */
/* PAGE is GET for an eager page: a session it creates is kept for the
 * widget's first POST (RENEW), which takes it instead of creating one.
 * LAST_FORGET tells when the session was last forgotten (res->forgotten_at). */
typedef enum {
    PEGADM_OP_GET,
    PEGADM_OP_PAGE,
    PEGADM_OP_RENEW,
    PEGADM_OP_FORGET,
    PEGADM_OP_LAST_FORGET
} pegadm_op_t;
/* Runs op for the customer, logging failures once at the place that knows
 * why. trigger is the widget's proactive trigger (RENEW only, may be NULL). */
pegadm_session_status_t pegadm_session_op(request_rec *r, const pegadm_dir_conf_t *d,
                                          const char *customer_id, pegadm_op_t op,
                                          const char *trigger, pegadm_session_result_t *res);

/* mod_pegadm_dbd.c: the customer ID from a database, through mod_dbd */
const char *pegadm_dbd_set_query(cmd_parms *cmd, void *dv, const char *query);
const char *pegadm_dbd_set_query_ttl(cmd_parms *cmd, void *dv, const char *arg);
/* Refuses PegaDMCustomerIDQuery in a server without DBDriver. */
int pegadm_dbd_check_config(apr_pool_t *ptemp, server_rec *s);
/* Maps login with the scope's query (or its cached answer). On OK, *value
 * is the raw first column, not yet validated; NONE and UNAVAILABLE are logged. */
pegadm_customer_status_t pegadm_dbd_customer_id(request_rec *r, const pegadm_dir_conf_t *d,
                                                const char *login, const char **value);

/* mod_pegadm_handlers.c */
int pegadm_session_handler(request_rec *r);
int pegadm_bootstrap_handler(request_rec *r);

/* mod_pegadm_origin.c */
/* True unless r comes from the portal's own pages: Sec-Fetch-Site
 * same-origin or none; without it, GET passes (unless strict) and POST,
 * DELETE or a strict GET need an Origin equal to the request's own. */
int pegadm_is_cross_site(request_rec *r, int strict);
/* True if a POST's body is application/json, or there is no body. */
int pegadm_post_body_is_json(request_rec *r);

/* mod_pegadm_secretview.c */
/* Called by PegaDMJWTSecret once the secret is read: warns if it is written
 * in a configuration file readable by group or others, and withholds it
 * from what mod_info and DUMP_CONFIG print of the configuration. */
void pegadm_secret_withhold(cmd_parms *cmd, const char *secret);

/* mod_pegadm_cachectl.c: what caches may keep */
/* Makes the bootstrap script publicly cacheable unless the answer sets a
 * cookie or another module set a Cache-Control; call from its handler. */
void pegadm_cache_control_bootstrap(request_rec *r);
/* Drops the fields CDNs cache by from the session endpoint's answer. */
void pegadm_cache_control_session(request_rec *r);
/* Whether r's top-level answer is already under way without the privacy of
 * an eager page: a subrequest must then export no session. */
int pegadm_cache_control_top_is_public(const request_rec *r);
/* Registers the filter that keeps eager answers private, and the bootstrap's. */
void pegadm_cache_control_register_hooks(apr_pool_t *p);

/* mod_pegadm_checks.c */
/* Refuses unsafe combinations of directives, warns about risky ones. */
int pegadm_check_security(apr_pool_t *ptemp, server_rec *s);
/* mod_pegadm_lifecycle.c: the chat follows the portal login */
const char *pegadm_set_forget(cmd_parms *cmd, void *dv, int on);
const char *pegadm_set_private_data_refresh(cmd_parms *cmd, void *dv, const char *arg);
apr_interval_time_t pegadm_conf_private_data_refresh(const pegadm_dir_conf_t *d);
/* Registers PegaDMForget's hook (fixups, before any other module's). */
void pegadm_lifecycle_register_hooks(apr_pool_t *p);

/* mod_pegadm_logout.c: PegaDMForget where the logout location knows
 * nobody. Each PegaDMForget On calls pegadm_logout_cookie_wanted; only then
 * does pegadm_logout_cookie_set, where a session is handed to customer_id's
 * log-in, give the browser the logout cookie that the PegaDMForget scope
 * reads before authentication (always a fresh one when the session was
 * created by this request). */
void pegadm_logout_cookie_wanted(cmd_parms *cmd);
void pegadm_logout_cookie_set(request_rec *r, const pegadm_dir_conf_t *d,
                              const char *customer_id, int created);
void pegadm_logout_register_hooks(apr_pool_t *p);

/* mod_pegadm_owner.c: the opaque owner of the login, for the bootstrap's
 * owner check (GET {session endpoint}?owner); creates no session. */
pegadm_session_status_t pegadm_owner_of(request_rec *r, const pegadm_dir_conf_t *d,
                                        const char *customer_id, const char **owner);

/* mod_pegadm_mark.c */
/* Opens, in each child, the cross-node create mark's client to a memcache
 * or redis PegaDMCache's servers. */
void pegadm_mark_register_hooks(apr_pool_t *p);

/* mod_pegadm_localcache.c: the per-process read cache */
const char *pegadm_localcache_set_customers(cmd_parms *cmd, void *dv, const char *arg);
const char *pegadm_localcache_set_max_age(cmd_parms *cmd, void *dv, const char *arg);
const char *pegadm_localcache_set_read_lock(cmd_parms *cmd, void *dv, int on);
/* PegaDMCacheReadLock Off with a provider safe for concurrent use. */
int pegadm_localcache_read_unlocked(const pegadm_server_conf_t *sc);
void pegadm_localcache_register_hooks(apr_pool_t *p);

/* mod_pegadm_reads.c: concurrent reads of a shared cache, per child */
const char *pegadm_reads_set_per_child(cmd_parms *cmd, void *dv, const char *arg);
void pegadm_reads_register_hooks(apr_pool_t *p);

/* mod_pegadm_tenants.c: a .htaccess file never makes the module act */
/* Whether r's pegadm handler was set by the main configuration (logs a
 * refusal otherwise); call from each handler once the name matched. */
int pegadm_handler_is_trusted(request_rec *r);
void pegadm_tenants_register_hooks(apr_pool_t *p);

/* mod_pegadm_inject.c */
#define PEGADM_INJECT_FILTER "PEGADM_INJECT"
/* Registers the PegaDMInject output filter and the hooks that add it. */
void pegadm_inject_register_hooks(apr_pool_t *p);

#endif
