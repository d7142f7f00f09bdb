/* What the Apache-side files of mod_pegadm share: the configuration
 * records, and what each mod_pegadm_*.c file offers the others, grouped by
 * file in the order of the layers (a file calls only those below it or
 * beside it, never back into its caller: scripts/check-layout). The
 * operator record and its calls are in mod_pegadm_operator.h; the
 * httpd-free core has a header per file (pegadm_*.h). */
#ifndef MOD_PEGADM_H
#define MOD_PEGADM_H

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <util_filter.h>
#include <ap_expr.h>
#include <ap_socache.h>
#include <apr_global_mutex.h>
#include <apr_hash.h>

#include "pegadm_breaker.h"
#include "pegadm_cacheurl.h"
#include "pegadm_dm.h"
#include "pegadm_fields.h"
#include "pegadm_kvstore.h"
#include "pegadm_seal.h"
#include "pegadm_session.h"
#include "pegadm_sharedcache.h"

/* Log messages start with a stable number, "PEGADMnnn: ", so that
 * administrators can grep for them. */

#define PEGADM_HANDLER_SESSION   "pegadm-session"
#define PEGADM_HANDLER_BOOTSTRAP "pegadm-bootstrap"
#define PEGADM_MUTEX_TYPE        "pegadm-cache"

/* Directive names that the start-up checks look for in the configuration
 * tree, as the command table (mod_pegadm_config.c) spells them (checked by
 * scripts/check-docs). */
#define PEGADM_DIRECTIVE_ENABLED          "PegaDM"
#define PEGADM_DIRECTIVE_WIDGET_ID        "PegaDMWidgetID"
#define PEGADM_DIRECTIVE_SECRET           "PegaDMJWTSecret"
#define PEGADM_DIRECTIVE_SECRET_FILE      "PegaDMJWTSecretFile"
#define PEGADM_DIRECTIVE_SERVICE_URL      "PegaDMServiceURL"
#define PEGADM_DIRECTIVE_PRIVATE_DATA_URL "PegaDMPrivateDataURL"
#define PEGADM_DIRECTIVE_PROXY            "PegaDMProxy"
#define PEGADM_DIRECTIVE_CUSTOMER_ID      "PegaDMCustomerID"
#define PEGADM_DIRECTIVE_CID_QUERY        "PegaDMCustomerIDQuery"

typedef struct {
    const unsigned char *bytes;
    apr_size_t len;
    pegadm_keys_t keys; /* derived once, at start-up */
} pegadm_secret_t;

/* metrics, audit log, preflight (src/mod_pegadm_operator.h) */
typedef struct pegadm_operator_t pegadm_operator_t;

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
        *secret_next; /* PegaDMJWTSecretNext: rotation (mod_pegadm_session.c) */
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
    /* the customer ID looked up through mod_dbd (mod_pegadm_identity.c) */
    const char *cid_query;             /* NULL: the expression's value is the ID */
    const char *cid_query_label;       /* mod_dbd's name for the prepared statement */
    apr_interval_time_t cid_query_ttl; /* -1 or 0: answers are not cached */
    /* the circuit breaker around the create (mod_pegadm_session.c) */
    int breaker_threshold;
    apr_interval_time_t breaker_cooldown;
    /* the chat follows the portal login (mod_pegadm_logout.c, pegadm_session.c) */
    int forget;                               /* PegaDMForget */
    apr_interval_time_t private_data_refresh; /* -1: the default; 0: off */
    int allow_in_frame; /* PegaDMAllowInFrame: the bootstrap acts inside frames */
} pegadm_dir_conf_t;

/* The local cache's settings (mod_pegadm_localcache.c), made with the
 * server record. */
typedef struct {
    int read_lock;               /* PegaDMCacheReadLock; -1: unset (On) */
    int customers;               /* -1: unset; 0: off */
    apr_interval_time_t max_age; /* -1: unset; 0: always read a shared cache */
    void *generations;           /* shared memory, from post_config */
} pegadm_local_conf_t;

/* The shared cache servers the module talks to itself (PegaDMCache
 * redis://, rediss://, memcache://) and the directives beside it. */
typedef enum {
    PEGADM_CACHE_OPT_USER = 0,
    PEGADM_CACHE_OPT_PASSWORD,
    PEGADM_CACHE_OPT_PASSWORD_FILE,
    PEGADM_CACHE_OPT_CA_FILE,
    PEGADM_CACHE_OPT_CERT_FILE,
    PEGADM_CACHE_OPT_KEY_FILE,
    PEGADM_CACHE_OPT_TIMEOUT,
    PEGADM_CACHE_OPTS
} pegadm_cache_opt_t;

typedef struct {
    const pegadm_cache_url_t *url; /* NULL, or of kind REDIS or MEMCACHE */
    apr_interval_time_t timeout;   /* PegaDMCacheTimeout; 0: unset (1 s) */
    const char *user;              /* PegaDMCacheUser */
    const char *password;          /* inline, or read from PegaDMCachePasswordFile */
    const char *ca_file, *cert_file, *key_file;
    const ap_directive_t *where[PEGADM_CACHE_OPTS]; /* each directive set, for messages */
    pegadm_shared_t *client;     /* made in post_config, used by the children only */
    pegadm_kvstore_t *kvstore;   /* per process, from child_init */
    const pegadm_store_t *store; /* over kvstore, from child_init */
} pegadm_shared_settings_t;

/* Server-wide: one cache and one mutex for the whole server. */
typedef struct {
    const char *cache_provider_name; /* "shmcb"..., or "redis"/"memcache": the own clients */
    const ap_socache_provider_t *cache_provider; /* NULL for the own clients */
    ap_socache_instance_t *cache;
    apr_global_mutex_t *mutex;
    apr_uint32_t cache_error_logged_at; /* seconds; per process */
    /* many nodes, many customers (mod_pegadm_cache.c, child_init) */
    const char *cache_args;                /* PegaDMCache's after the ':' */
    const ap_directive_t *cache_directive; /* where PegaDMCache is, for messages */
    int cache_customers;                   /* PegaDMCacheCustomers; 0: unset */
    pegadm_shared_settings_t shared;       /* the own clients' settings and client */
    pegadm_http_handles_t *http_handles;   /* per process, from child_init */
    pegadm_waiters_t *waiters;             /* per process, from child_init */
    int threads;                           /* worker threads per child, from child_init */
    apr_hash_t *databases;                 /* server key -> its DBDriver and DBDParams */
    const pegadm_mark_t *create_lock;      /* per process, from child_init; NULL: none */
    pegadm_local_conf_t *local_conf;       /* PegaDMLocalCache* */
    pegadm_localcache_t *localcache;       /* per process, from child_init; NULL: off */
    int reads_per_child;                   /* PegaDMCacheReadsPerChild; 0: no bound */
    const ap_directive_t *reads_directive; /* where it is; NULL: unset */
    pegadm_gate_t *read_gate;              /* per process, from child_init; NULL: none */
    /* the requests of a child that wait on the customer database at once
     * (mod_pegadm_identity.c) */
    int cid_query_concurrency;             /* PegaDMCustomerIDQueryConcurrency; -1: unset */
    pegadm_gate_t *cid_query_gate;         /* per process, from child_init; NULL: none */
    apr_uint32_t cid_query_full_logged_at; /* seconds; per process */
    pegadm_operator_t
        *operator_rec;        /* counters, audit log, preflight (mod_pegadm_operator.h) */
    int logout_cookie_wanted; /* some scope has PegaDMForget On (post_config) */
    apr_uint32_t rotation_tried_at;        /* seconds; per process (mod_pegadm_session.c) */
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
apr_interval_time_t pegadm_conf_private_data_refresh(const pegadm_dir_conf_t *d);
int pegadm_conf_cache_customers(const pegadm_server_conf_t *sc);
int pegadm_conf_local_customers(const pegadm_local_conf_t *lc);
apr_interval_time_t pegadm_conf_local_max_age(const pegadm_local_conf_t *lc);
int pegadm_conf_reads_per_child(const pegadm_server_conf_t *sc);
int pegadm_conf_cid_query_concurrency(const pegadm_server_conf_t *sc);
/* userdata of the configuration pool: some scope has PegaDMForget On */
#define PEGADM_LOGOUT_WANTED_KEY "pegadm-logout-cookie"

/* mod_pegadm_checks.c: the start-up checks of the configuration tree.
 * Refuses a query without a database and scopes where PegaDM On or a pegadm
 * handler lacks a widget or secret, refuses unsafe combinations of
 * directives, warns about risky ones. */
int pegadm_check_config_tree(apr_pool_t *ptemp, server_rec *s);

/* mod_pegadm_cache.c: the session cache, retained data, the create lock */
/* Resolves the cache provider (shmcb unless PegaDMCache says otherwise),
 * creates the default shmcb cache sized for PegaDMCacheCustomers, and warns
 * about a given shmcb size too small for them. */
apr_status_t pegadm_cache_check_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s);
/* Creates the mutex and initialises the cache (a shmcb one and its mutex are
 * retained across reloads while its arguments and Mutex settings are
 * unchanged); logs (info) a shmcb's size. */
apr_status_t pegadm_cache_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s);
void pegadm_cache_child_init(apr_pool_t *p, server_rec *s);
/* With the module's own Redis or memcached client: the child's store and
 * create lock over its copy of the client, counted in its slot. */
void pegadm_create_lock_child_init(apr_pool_t *p, server_rec *s);
/* A client's settings from PegaDMCache and the directives beside it. */
pegadm_shared_conf_t pegadm_shared_conf_of(const pegadm_server_conf_t *sc);
/* The session cache as a pegadm_store_t, allocated in p. */
const pegadm_store_t *pegadm_cache_store(apr_pool_t *p, server_rec *s);
/* Logs the store's failure why, at most once a minute per process. */
void pegadm_cache_log_failure(request_rec *r, const char *why);
/* What the parent retains across graceful restarts and restarts, under a
 * key, until it is replaced or the parent exits. */
/* What is retained under key; NULL if nothing. */
void *pegadm_retained(const char *key);
/* Destroys what is retained under key (its pool) and returns a new pool,
 * under the process pool, for its replacement; then pegadm_retain records
 * it. Only APR's cleanups may go into that pool. */
apr_pool_t *pegadm_retain_anew(server_rec *s, const char *key);
void pegadm_retain(const char *key, void *data);

/* mod_pegadm_localcache.c: the per-process read cache and the read gate */
/* Makes (once per httpd) the generations shared by the node's processes. */
void pegadm_localcache_post_config(apr_pool_t *ptemp, server_rec *s);
void pegadm_localcache_child_init(apr_pool_t *p, server_rec *s);
/* PegaDMCacheReadLock Off with a provider safe for concurrent use. */
int pegadm_localcache_read_unlocked(const pegadm_server_conf_t *sc);
/* Says (post_config, test_config) how reads of a shared cache are bounded. */
void pegadm_read_gate_log(server_rec *s, apr_pool_t *p);
void pegadm_read_gate_child_init(apr_pool_t *p, server_rec *s);

/* mod_pegadm_identity.c: the customer of a request */
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
/* Notes which database (DBDriver, DBDParams) each server's queries use,
 * for the keys of their cached answers. */
void pegadm_dbd_note_databases(server_rec *s);
/* Each child's bound on its lookups waiting on the database at once. */
void pegadm_dbd_child_init(apr_pool_t *p, server_rec *s);

/* mod_pegadm_session.c: the session call */
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
 * why. trigger is the widget's proactive trigger (RENEW only, may be NULL).
 * Where it hands a session to a log-in, the caller gives the browser the
 * logout cookie (pegadm_logout_cookie_set). */
pegadm_session_status_t pegadm_session_op(request_rec *r, const pegadm_dir_conf_t *d,
                                          const char *customer_id, pegadm_op_t op,
                                          const char *trigger, pegadm_session_result_t *res);

/* mod_pegadm_handlers.c: the session endpoint and the bootstrap script */
int pegadm_session_handler(request_rec *r);
int pegadm_bootstrap_handler(request_rec *r);

/* mod_pegadm_logout.c: PegaDMForget. Each PegaDMForget On sets
 * PEGADM_LOGOUT_WANTED_KEY; only then does pegadm_logout_cookie_set, where a
 * session is handed to customer_id's log-in, give the browser the logout
 * cookie that the PegaDMForget scope reads before authentication (always a
 * fresh one when the session was created by this request). */
void pegadm_logout_post_config(apr_pool_t *pconf, server_rec *s);
void pegadm_logout_cookie_set(request_rec *r, const pegadm_dir_conf_t *d,
                              const char *customer_id, int created);
/* header_parser: the logout cookie, before any authentication */
int pegadm_logout_header_parser(request_rec *r);
/* fixups: the authenticated user, or the users of mod_session's session */
int pegadm_forget_fixups(request_rec *r);

/* mod_pegadm_cachecontrol.c: what caches may keep */
#define PEGADM_CACHE_CONTROL_FILTER "PEGADM_CACHE_CONTROL"
/* Makes the bootstrap script publicly cacheable unless the answer sets a
 * cookie or another module set a Cache-Control; call from its handler. */
void pegadm_cache_control_bootstrap(request_rec *r);
/* Drops the fields CDNs cache by from the session endpoint's answer. */
void pegadm_cache_control_session(request_rec *r);
/* Whether r's top-level answer is already under way without the privacy of
 * an eager page: a subrequest must then export no session. */
int pegadm_cache_control_top_is_public(const request_rec *r);
apr_status_t pegadm_cache_control_filter(ap_filter_t *f, apr_bucket_brigade *bb);
/* insert_filter: keeps eager answers private */
void pegadm_cache_control_insert(request_rec *r);

/* mod_pegadm_tenants.c: a .htaccess file never makes the module act */
/* post_config: notes the SetHandler expressions of the main configuration. */
void pegadm_tenants_post_config(apr_pool_t *pconf, server_rec *s);
/* Whether r's pegadm handler was set by the main configuration (logs a
 * refusal otherwise); each handler asks once its name matched. */
int pegadm_handler_is_trusted(request_rec *r);

/* mod_pegadm_inject.c: the PegaDMInject output filter */
#define PEGADM_INJECT_FILTER "PEGADM_INJECT"
apr_status_t pegadm_inject_filter(ap_filter_t *f, apr_bucket_brigade *bb);
/* insert_filter: adds the filter where PegaDMInject is On */
void pegadm_inject_insert(request_rec *r);
/* post_config: finds mod_dav, whose locations the filter leaves alone */
void pegadm_inject_post_config(void);

#endif
