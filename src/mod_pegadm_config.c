/* The directives of mod_pegadm, every one of them: the command table and
 * the handlers that parse and check each value, the per-directory and
 * server records (with their sub-records: the local cache's settings, the
 * operator record and the preflight's) and their merge, the one home of
 * every default and the accessors that apply them, the widget list the
 * counters are made for, and the JWT secret withheld from what mod_info and
 * DUMP_CONFIG show.
 *
 * The checks of single values are in pegadm_confcheck.c, where they can be
 * fuzzed; the checks across scopes at start-up are mod_pegadm_checks.c's.
 *
 * What the configuration shows of the JWT secret: nothing. mod_info's
 * /server-info and "apachectl -t -D DUMP_CONFIG" print every directive's
 * arguments from the configuration tree, with ${VAR} already replaced, so
 * the secret's directive (and a Define that holds it) get a placeholder
 * there once it has been read. A secret written in a configuration file is
 * only as private as that file: one readable by group or others draws the
 * warning a secret file would. */
#include "mod_pegadm.h"

#include <string.h>
#include <sys/stat.h>

#include <apr_dbd.h>
#include <apr_file_info.h>
#include <apr_file_io.h>
#include <apr_fnmatch.h>
#include <apr_hash.h>
#include <apr_md5.h>
#include <apr_optional.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <http_core.h>
#include <http_protocol.h>
#include <mod_dbd.h>

#include "mod_pegadm_operator.h"
#include "pegadm_confcheck.h"
#include "pegadm_waiters.h"

APLOG_USE_MODULE(pegadm);

#define PEGADM_DEFAULT_SERVICE_URL      "https://widget.chat.pega.digital"
#define PEGADM_DEFAULT_SESSION_ENDPOINT "/pegadm/session"
#define PEGADM_DEFAULT_BOOTSTRAP_URL    "/pegadm/bootstrap.js"
#define PEGADM_DEFAULT_CACHE_TTL        1800
#define PEGADM_DEFAULT_TIMEOUT          5
#define PEGADM_DEFAULT_CONNECT_TIMEOUT  2
#define PEGADM_DEFAULT_TOKEN_LIFETIME   60
#define PEGADM_DEFAULT_CREATE_LIMIT     10
#define PEGADM_DEFAULT_CREATE_WINDOW    60
#define SECRET_MAX                      4096

#define PEGADM_DEFAULT_BREAKER_THRESHOLD 5
#define PEGADM_DEFAULT_BREAKER_COOLDOWN  30

/* server-wide settings */
#define DEFAULT_CACHE_CUSTOMERS      100000
#define DEFAULT_LOCAL_CUSTOMERS      10000
#define MAX_LOCAL_CUSTOMERS          5000000
#define DEFAULT_LOCAL_MAX_AGE        apr_time_from_sec(1)
#define MAX_LOCAL_MAX_AGE            apr_time_from_sec(3600)
#define DEFAULT_READS_PER_CHILD      2
#define MAX_READS_PER_CHILD          1000
#define PRIVATE_DATA_REFRESH_DEFAULT 60
#define PRIVATE_DATA_REFRESH_MAX     86400
#define DEFAULT_WARN_DAYS            14
#define DEFAULT_INTERVAL             600
#define QUERY_TTL_MAX                86400

/* mod_dbd's default DBDMax: the connections a child opens to a database */
#define DEFAULT_CID_QUERY_CONCURRENCY 10
#define MAX_CID_QUERY_CONCURRENCY     10000

#define UNSET        (-1)
#define MERGE_PTR(f) (add->f ? add->f : base->f)
#define MERGE_NUM(f) (add->f != UNSET ? add->f : base->f)

void *pegadm_create_dir_conf(apr_pool_t *p, char *dir)
{
    pegadm_dir_conf_t *d = apr_pcalloc(p, sizeof(*d));
    /* Records are made at request time only for .htaccess files: whatever
     * AllowOverride or AllowOverrideList lets through, a tenant's file never
     * sets anything of the module (mod_pegadm_tenants.c). */
    d->from_htaccess = ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_RUN_MPM;
    d->enabled = UNSET;
    d->metrics_widget = UNSET;
    d->cache_ttl = UNSET;
    d->timeout = UNSET;
    d->connect_timeout = UNSET;
    d->token_lifetime = UNSET;
    d->create_limit = UNSET;
    d->create_window = UNSET;
    d->create_waiters = UNSET;
    d->breaker_threshold = UNSET;
    d->breaker_cooldown = UNSET;
    d->cid_query_ttl = UNSET;
    d->inject = UNSET;
    d->forget = UNSET;
    d->private_data_refresh = UNSET;
    d->allow_in_frame = UNSET;
    return d;
}

void *pegadm_merge_dir_conf(apr_pool_t *p, void *basev, void *addv)
{
    const pegadm_dir_conf_t *base = basev, *add = addv;
    /* zeroed: a field the lines below forget is NULL, not garbage
     * (scripts/check-merge fails the tests on such a field) */
    pegadm_dir_conf_t *d = apr_pcalloc(p, sizeof(*d));

    if (add->from_htaccess) {
        *d = *base;
        return d;
    }
    d->from_htaccess = base->from_htaccess;
    d->enabled = MERGE_NUM(enabled);
    d->widget_id = MERGE_PTR(widget_id);
    d->metrics_widget = add->widget_id ? add->metrics_widget : base->metrics_widget;
    d->secret = MERGE_PTR(secret);
    /* the next secret goes with the secret it follows */
    d->secret_next = add->secret || add->secret_next ? add->secret_next : base->secret_next;
    d->service_url = MERGE_PTR(service_url);
    d->private_data_url = MERGE_PTR(private_data_url);
    d->customer_id = MERGE_PTR(customer_id);
    d->private_data = MERGE_PTR(private_data);
    d->cache_ttl = MERGE_NUM(cache_ttl);
    d->timeout = MERGE_NUM(timeout);
    d->connect_timeout = MERGE_NUM(connect_timeout);
    d->ca_file = MERGE_PTR(ca_file);
    d->proxy = MERGE_PTR(proxy);
    d->token_lifetime = MERGE_NUM(token_lifetime);
    /* count and window are one directive: keep them together */
    d->create_limit = MERGE_NUM(create_limit);
    d->create_window = add->create_limit != UNSET ? add->create_window : base->create_window;
    d->create_waiters = MERGE_NUM(create_waiters);
    d->session_endpoint = MERGE_PTR(session_endpoint);
    d->breaker_threshold = MERGE_NUM(breaker_threshold);
    d->breaker_cooldown = MERGE_NUM(breaker_cooldown);
    /* the query and its cache lifetime are separate settings */
    d->cid_query = MERGE_PTR(cid_query);
    d->cid_query_label = add->cid_query ? add->cid_query_label : base->cid_query_label;
    d->cid_query_ttl = MERGE_NUM(cid_query_ttl);
    d->inject = MERGE_NUM(inject);
    d->script_nonce = MERGE_PTR(script_nonce);
    d->bootstrap_url = MERGE_PTR(bootstrap_url);
    d->forget = MERGE_NUM(forget);
    d->private_data_refresh = MERGE_NUM(private_data_refresh);
    d->allow_in_frame = MERGE_NUM(allow_in_frame);
    return d;
}

/* The sub-records are made with the record: the directives fill them, and
 * the start-up sequence finds them whether any directive was given or not. */
void *pegadm_create_server_conf(apr_pool_t *p, server_rec *s)
{
    pegadm_server_conf_t *sc = apr_pcalloc(p, sizeof(*sc));

    sc->cid_query_concurrency = UNSET;
    sc->local_conf = apr_pcalloc(p, sizeof(*sc->local_conf));
    sc->local_conf->read_lock = UNSET;
    sc->local_conf->customers = UNSET;
    sc->local_conf->max_age = UNSET;
    sc->operator_rec = apr_pcalloc(p, sizeof(*sc->operator_rec));
    sc->operator_rec->preflight = apr_pcalloc(p, sizeof(*sc->operator_rec->preflight));
    sc->operator_rec->preflight->enabled = UNSET;
    sc->operator_rec->preflight->warn_days = UNSET;
    sc->operator_rec->preflight->every = UNSET;
    return sc;
}

/* One cache serves the whole server: virtual hosts share the main record. */
void *pegadm_merge_server_conf(apr_pool_t *p, void *base, void *add)
{
    return base;
}

const char *pegadm_conf_service_url(const pegadm_dir_conf_t *d)
{
    return d->service_url ? d->service_url : PEGADM_DEFAULT_SERVICE_URL;
}

static const char *pegadm_conf_private_data_url(apr_pool_t *p, const pegadm_dir_conf_t *d)
{
    if (d->private_data_url) {
        return d->private_data_url;
    }
    return apr_pstrcat(p, pegadm_conf_service_url(d), "/private-data", NULL);
}

const char *pegadm_conf_session_endpoint(const pegadm_dir_conf_t *d)
{
    return d->session_endpoint ? d->session_endpoint : PEGADM_DEFAULT_SESSION_ENDPOINT;
}

const char *pegadm_conf_bootstrap_url(const pegadm_dir_conf_t *d)
{
    return d->bootstrap_url ? d->bootstrap_url : PEGADM_DEFAULT_BOOTSTRAP_URL;
}

apr_interval_time_t pegadm_conf_cache_ttl(const pegadm_dir_conf_t *d)
{
    return d->cache_ttl != UNSET ? d->cache_ttl : apr_time_from_sec(PEGADM_DEFAULT_CACHE_TTL);
}

apr_interval_time_t pegadm_conf_timeout(const pegadm_dir_conf_t *d)
{
    return d->timeout != UNSET ? d->timeout : apr_time_from_sec(PEGADM_DEFAULT_TIMEOUT);
}

void pegadm_conf_create_limit(const pegadm_dir_conf_t *d, int *count,
                              apr_interval_time_t *window)
{
    *count = d->create_limit != UNSET ? d->create_limit : PEGADM_DEFAULT_CREATE_LIMIT;
    *window = d->create_limit != UNSET ? d->create_window
                                       : apr_time_from_sec(PEGADM_DEFAULT_CREATE_WINDOW);
}

int pegadm_conf_create_waiters(const pegadm_dir_conf_t *d, int threads)
{
    return d->create_waiters != UNSET ? d->create_waiters : pegadm_waiters_default_max(threads);
}

void pegadm_conf_dm_target(apr_pool_t *p, const pegadm_dir_conf_t *d, pegadm_dm_target_t *t)
{
    memset(t, 0, sizeof(*t));
    t->service_url = pegadm_conf_service_url(d);
    t->private_data_url = pegadm_conf_private_data_url(p, d);
    t->widget_id = d->widget_id;
    t->secret = d->secret->bytes;
    t->secret_len = d->secret->len;
    t->token_lifetime =
        d->token_lifetime != UNSET ? d->token_lifetime : PEGADM_DEFAULT_TOKEN_LIFETIME;
    t->http.ca_file = d->ca_file;
    t->http.proxy = d->proxy;
    t->http.timeout = pegadm_conf_timeout(d);
    t->http.connect_timeout = d->connect_timeout != UNSET
                                  ? d->connect_timeout
                                  : apr_time_from_sec(PEGADM_DEFAULT_CONNECT_TIMEOUT);
}

void pegadm_conf_breaker(const pegadm_dir_conf_t *d, pegadm_breaker_conf_t *c)
{
    c->threshold =
        d->breaker_threshold != UNSET ? d->breaker_threshold : PEGADM_DEFAULT_BREAKER_THRESHOLD;
    c->cooldown = d->breaker_cooldown != UNSET
                      ? d->breaker_cooldown
                      : apr_time_from_sec(PEGADM_DEFAULT_BREAKER_COOLDOWN);
    /* a probe is a whole create: two calls, each within the timeout */
    c->probe_max = 2 * pegadm_conf_timeout(d) + apr_time_from_sec(1);
}

apr_interval_time_t pegadm_conf_private_data_refresh(const pegadm_dir_conf_t *d)
{
    return d->private_data_refresh >= 0 ? d->private_data_refresh
                                        : apr_time_from_sec(PRIVATE_DATA_REFRESH_DEFAULT);
}

int pegadm_conf_cache_customers(const pegadm_server_conf_t *sc)
{
    return sc->cache_customers > 0 ? sc->cache_customers : DEFAULT_CACHE_CUSTOMERS;
}

int pegadm_conf_local_customers(const pegadm_local_conf_t *lc)
{
    return lc->customers != UNSET ? lc->customers : DEFAULT_LOCAL_CUSTOMERS;
}

apr_interval_time_t pegadm_conf_local_max_age(const pegadm_local_conf_t *lc)
{
    return lc->max_age != UNSET ? lc->max_age : DEFAULT_LOCAL_MAX_AGE;
}

/* 0: no bound */
int pegadm_conf_reads_per_child(const pegadm_server_conf_t *sc)
{
    return sc->reads_directive ? sc->reads_per_child : DEFAULT_READS_PER_CHILD;
}

/* 0: no bound */
int pegadm_conf_cid_query_concurrency(const pegadm_server_conf_t *sc)
{
    return sc->cid_query_concurrency != UNSET ? sc->cid_query_concurrency
                                              : DEFAULT_CID_QUERY_CONCURRENCY;
}

int pegadm_conf_preflight_warn_days(const pegadm_preflight_t *pf)
{
    return pf->warn_days != UNSET ? pf->warn_days : DEFAULT_WARN_DAYS;
}

apr_interval_time_t pegadm_conf_preflight_interval(const pegadm_preflight_t *pf)
{
    return pf->every != UNSET ? pf->every : apr_time_from_sec(DEFAULT_INTERVAL);
}

/* ---- value parsers: each returns NULL or a message naming the directive ---- */

/* The checks themselves are in pegadm_confcheck.c, where they can be
 * fuzzed without httpd. */
static const char *parse_int(cmd_parms *cmd, const char *arg, long min, long max, long *out)
{
    return pegadm_check_int(cmd->pool, cmd->cmd->name, arg, min, max, out);
}

static const char *parse_service_url(cmd_parms *cmd, const char *arg, const char **out)
{
    return pegadm_check_service_url(cmd->pool, cmd->cmd->name, arg, out);
}

/* ---- directive handlers ---- */

static pegadm_server_conf_t *server_conf(server_rec *s)
{
    return ap_get_module_config(s->module_config, &pegadm_module);
}

static void logout_cookie_wanted_by(cmd_parms *cmd)
{
    /* a property of this configuration: gone with its pool on a restart */
    apr_pool_userdata_setn("1", PEGADM_LOGOUT_WANTED_KEY, NULL, cmd->pool);
}

static int register_widget(cmd_parms *cmd, const char *widget_id)
{
    apr_array_header_t *ids = NULL;

    apr_pool_userdata_get((void **)&ids, PEGADM_WIDGETS_KEY, cmd->pool);
    if (!ids) {
        ids = apr_array_make(cmd->pool, 4, sizeof(const char *));
        apr_pool_userdata_set(ids, PEGADM_WIDGETS_KEY, apr_pool_cleanup_null, cmd->pool);
    }
    for (int i = 0; i < ids->nelts; i++) {
        if (!strcasecmp(APR_ARRAY_IDX(ids, i, const char *), widget_id)) {
            return i;
        }
    }
    APR_ARRAY_PUSH(ids, const char *) = apr_pstrdup(cmd->pool, widget_id);
    return ids->nelts - 1;
}

/* ---- the JWT secret withheld from what the configuration shows ----
 * mod_info's /server-info and "apachectl -t -D DUMP_CONFIG" print every
 * directive's arguments from the configuration tree, with ${VAR} already
 * replaced, so the secret's directive gets a placeholder there once it has
 * been read (a Define leaves no directive in the tree). A secret written in
 * a configuration file is only as private as that file (or the file of the
 * Define or <Macro> it comes from): one readable by group or others draws
 * the warning a secret file would. A secret given through Define draws a
 * warning of its own: httpd prints the values of Defines. */

#define WITHHELD "(withheld)"
#define CONFIG_READ                                                                            \
    ((apr_size_t)1024 * 1024) /* a configuration file larger than this is not searched */

#define FILES_MAX 256 /* configuration files searched for a Define's */

/* A configuration file's text (its first CONFIG_READ bytes), or NULL. The
 * caller wipes it (wipe) once done: it may hold the secret. */
static char *read_config(apr_pool_t *p, const char *path, apr_size_t *len)
{
    apr_file_t *f;
    char *buf;

    if (apr_file_open(&f, path, APR_FOPEN_READ, 0, p) != APR_SUCCESS) {
        return NULL;
    }
    buf = apr_palloc(p, CONFIG_READ + 1);
    *len = 0;
    apr_file_read_full(f, buf, CONFIG_READ, len);
    apr_file_close(f);
    buf[*len] = '\0';
    return buf;
}

static void wipe(char *text, apr_size_t len)
{
    if (text) {
        memset(text, 0, len);
    }
}

/* Whether the secret stands in the file as it is (not through ${VAR}). */
static int file_holds(apr_pool_t *p, const char *path, const char *secret)
{
    apr_size_t len = 0;
    char *text = read_config(p, path, &len);
    int found = text && strstr(text, secret) != NULL;

    wipe(text, len);
    return found;
}

/* Warns if path, readable by group or others, holds the secret; where
 * says which directive put it there. */
static void check_file(cmd_parms *cmd, const char *path, const char *where, const char *secret)
{
    apr_finfo_t fi;

    if (apr_stat(&fi, path, APR_FINFO_PROT | APR_FINFO_TYPE, cmd->temp_pool) != APR_SUCCESS ||
        fi.filetype != APR_REG || !(fi.protection & (APR_GREAD | APR_WREAD)) ||
        !file_holds(cmd->temp_pool, path, secret)) {
        return;
    }
    ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_WARNING, 0, NULL,
                 "PEGADM701: %s: the secret is written in '%s' (%s), which is readable by "
                 "group or others; make the file readable by root only (chmod 600), or use "
                 "%sFile",
                 cmd->cmd->name, path, where, cmd->cmd->name);
}

/* The files a directive's text comes from: its own, or for one that
 * mod_macro expanded ("macro 'M' (defined on line n of "F") used on line
 * m of "G"") the macro's file and the file of its Use line. */
static apr_array_header_t *source_files(apr_pool_t *p, const ap_directive_t *d)
{
    apr_array_header_t *files = apr_array_make(p, 2, sizeof(const char *));
    const char *rest = d->filename;

    if (rest && strncmp(rest, "macro '", 7) != 0) {
        APR_ARRAY_PUSH(files, const char *) = rest;
    }
    while (rest && (rest = strstr(rest, " of \"")) != NULL) {
        const char *end = strchr(rest + 5, '"');
        if (!end) {
            break;
        }
        APR_ARRAY_PUSH(files, const char *) = apr_pstrmemdup(p, rest + 5, end - rest - 5);
        rest = end;
    }
    return files;
}

/* The name of a Define whose value holds the secret, among the ${NAME}s
 * of text; NULL if none (the secret is inline, or from the environment). */
static const char *define_holding(apr_pool_t *p, const char *text, const char *secret)
{
    const char *at = text;

    while ((at = strstr(at, "${")) != NULL) {
        const char *end = strchr(at + 2, '}');
        const char *name, *value;

        if (!end) {
            break;
        }
        name = apr_pstrmemdup(p, at + 2, end - at - 2);
        if (ap_exists_config_define(name)) {
            value = ap_resolve_env(p, apr_pstrmemdup(p, at, end - at + 1));
            if (value && strstr(value, secret)) {
                return name;
            }
        }
        at = end;
    }
    return NULL;
}

/* Adds path (or the files its glob matches) to the files to search. */
static void add_files(apr_pool_t *p, const char *path, apr_hash_t *seen,
                      apr_array_header_t *queue)
{
    apr_array_header_t *matches = NULL;

    if (!path) {
        return;
    }
    if (strpbrk(path, "*?[") && apr_match_glob(path, &matches, p) == APR_SUCCESS) {
        for (int i = 0; i < matches->nelts; i++) {
            add_files(p, APR_ARRAY_IDX(matches, i, const char *), seen, queue);
        }
        return;
    }
    if (!apr_hash_get(seen, path, APR_HASH_KEY_STRING) && apr_hash_count(seen) < FILES_MAX) {
        apr_hash_set(seen, path, APR_HASH_KEY_STRING, path);
        APR_ARRAY_PUSH(queue, const char *) = path;
    }
}

static void add_tree_files(apr_pool_t *p, const ap_directive_t *d, apr_hash_t *seen,
                           apr_array_header_t *queue)
{
    for (; d; d = d->next) {
        apr_array_header_t *files = source_files(p, d);
        for (int i = 0; i < files->nelts; i++) {
            add_files(p, APR_ARRAY_IDX(files, i, const char *), seen, queue);
        }
        if (d->first_child) {
            add_tree_files(p, d->first_child, seen, queue);
        }
    }
}

/* Scans text line by line: queues the files its Include and
 * IncludeOptional lines name; returns the line number of "Define name"
 * in it, or 0. */
static int scan_config(apr_pool_t *p, char *text, const char *name, apr_hash_t *seen,
                       apr_array_header_t *queue)
{
    int number = 0, found = 0;
    char *line = text;

    while (line && *line) {
        char *next = strchr(line, '\n');
        const char *args = line, *word;

        if (next) {
            *next++ = '\0';
        }
        number++;
        word = ap_getword_conf(p, &args);
        if (!strcasecmp(word, "Include") || !strcasecmp(word, "IncludeOptional")) {
            word = ap_resolve_env(p, ap_getword_conf(p, &args));
            add_files(p, ap_server_root_relative(p, word), seen, queue);
        } else if (!found && !strcasecmp(word, "Define") &&
                   !strcmp(ap_getword_conf(p, &args), name)) {
            found = number;
        }
        line = next;
    }
    return found;
}

/* Where "Define name" is: a Define leaves no directive in the tree, so it
 * is looked for in the files of the tree's directives and in those their
 * Include lines name. */
static const char *find_define(apr_pool_t *p, const char *name, int *line)
{
    apr_hash_t *seen = apr_hash_make(p);
    apr_array_header_t *queue = apr_array_make(p, 16, sizeof(const char *));

    add_tree_files(p, ap_conftree, seen, queue);
    for (int i = 0; i < queue->nelts; i++) {
        const char *path = APR_ARRAY_IDX(queue, i, const char *);
        apr_size_t len = 0;
        char *text = read_config(p, path, &len);

        *line = text ? scan_config(p, text, name, seen, queue) : 0;
        wipe(text, len);
        if (*line) {
            return path;
        }
    }
    return NULL;
}

/* httpd prints every Define's value (apachectl -S, -t -D DUMP_RUN_CFG),
 * which no module can withhold; and the Define's file is as private as an
 * inline secret's must be. */
static void warn_define(cmd_parms *cmd, const char *name, const char *where, const char *secret)
{
    int line = 0;
    const char *path = find_define(cmd->temp_pool, name, &line);
    const char *at = path ? apr_psprintf(cmd->temp_pool, " at %s:%d", path, line) : "";

    ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_WARNING, 0, NULL,
                 "PEGADM710: %s at %s takes the secret from Define %s%s, and httpd prints "
                 "every Define's value (apachectl -S, -t -D DUMP_RUN_CFG); give the secret "
                 "with PegaDMJWTSecretFile instead",
                 cmd->cmd->name, where, name, at);
    if (path && strcmp(path, cmd->directive->filename) != 0) { /* its own was checked */
        check_file(cmd, path, apr_psprintf(cmd->temp_pool, "Define %s%s", name, at), secret);
    }
}

/* A secret written in the directive's files, or given through a Define. */
static void check_sources(cmd_parms *cmd, const char *secret)
{
    apr_array_header_t *files = source_files(cmd->temp_pool, cmd->directive);
    const char *where = apr_psprintf(cmd->temp_pool, "%s:%d", cmd->directive->filename,
                                     cmd->directive->line_num);
    const char *define = NULL;

    for (int i = 0; i < files->nelts; i++) {
        const char *path = APR_ARRAY_IDX(files, i, const char *);
        apr_size_t len = 0;
        char *text = read_config(cmd->temp_pool, path, &len);

        if (text && !define) {
            define = define_holding(cmd->temp_pool, text, secret);
        }
        wipe(text, len);
        check_file(cmd, path, where, secret);
    }
    if (define) {
        warn_define(cmd, define, where, secret);
    }
}

static void secret_withhold(cmd_parms *cmd, const char *secret)
{
    check_sources(cmd, secret);
    cmd->directive->args = WITHHELD;
}

/* A .htaccess file never makes the module act (mod_pegadm_tenants.c): the
 * directives that switch it on are refused there whatever AllowOverride
 * and AllowOverrideList say. */
const char *pegadm_refuse_htaccess(cmd_parms *cmd)
{
    return ap_check_cmd_context(cmd, NOT_IN_HTACCESS);
}

static const char *set_enabled(cmd_parms *cmd, void *dv, int on)
{
    const char *err = pegadm_refuse_htaccess(cmd);
    if (!err) {
        ((pegadm_dir_conf_t *)dv)->enabled = on;
    }
    return err;
}

static const char *set_widget_id(cmd_parms *cmd, void *dv, const char *arg)
{
    if (!pegadm_is_uuid(arg)) {
        return apr_psprintf(cmd->pool,
                            "%s: '%s' is not a UUID (the widget ID from the "
                            "Web Messaging connection)",
                            cmd->cmd->name, arg);
    }
    ((pegadm_dir_conf_t *)dv)->widget_id = apr_pstrdup(cmd->pool, arg);
    ((pegadm_dir_conf_t *)dv)->metrics_widget = register_widget(cmd, arg);
    return NULL;
}

/* The keys live as long as the configuration: a graceful restart reads the
 * secret anew and frees the old keys' OpenSSL objects with the old pool. */
static apr_status_t release_keys(void *keys)
{
    pegadm_keys_release(keys);
    return APR_SUCCESS;
}

/* PegaDMJWTSecret(File) set d->secret, PegaDMJWTSecretNext(File) d->secret_next. */
static const char *make_secret(cmd_parms *cmd, pegadm_dir_conf_t *d, const char *bytes,
                               apr_size_t len)
{
    int next = cmd->info != NULL;
    const pegadm_secret_t **target = next ? &d->secret_next : &d->secret;
    pegadm_secret_t *secret;

    if (*target) {
        return apr_psprintf(cmd->pool,
                            "%s: a secret is already set in this scope "
                            "(give %s or %sFile, once)",
                            cmd->cmd->name, next ? "PegaDMJWTSecretNext" : "PegaDMJWTSecret",
                            next ? "PegaDMJWTSecretNext" : "PegaDMJWTSecret");
    }
    if (len == 0) {
        return apr_psprintf(cmd->pool, "%s: the secret is empty", cmd->cmd->name);
    }
    secret = apr_pcalloc(cmd->pool, sizeof(*secret));
    secret->bytes = (const unsigned char *)apr_pstrmemdup(cmd->pool, bytes, len);
    secret->len = len;
    if (pegadm_keys_derive(&secret->keys, secret->bytes, len) != APR_SUCCESS) {
        return apr_psprintf(cmd->pool, "%s: deriving the cache keys failed", cmd->cmd->name);
    }
    apr_pool_cleanup_register(cmd->pool, &secret->keys, release_keys, apr_pool_cleanup_null);
    *target = secret;
    return NULL;
}

static const char *set_secret(cmd_parms *cmd, void *dv, const char *arg)
{
    const char *err;

    /* httpd leaves an undefined ${VAR} in place: never take that as a key. */
    if (strstr(arg, "${")) {
        return apr_psprintf(cmd->pool, "%s: the value contains an undefined ${...} variable",
                            cmd->cmd->name);
    }
    err = make_secret(cmd, dv, arg, strlen(arg));
    if (!err) {
        secret_withhold(cmd, arg);
    }
    return err;
}

static const char *read_secret_file(cmd_parms *cmd, const char *path, char *buf,
                                    apr_size_t *len)
{
    apr_file_t *f;
    apr_finfo_t fi;
    apr_status_t rv;
    char err[120];

    rv = apr_file_open(&f, path, APR_FOPEN_READ, 0, cmd->temp_pool);
    if (rv == APR_SUCCESS) {
        rv = apr_file_info_get(&fi, APR_FINFO_PROT | APR_FINFO_SIZE | APR_FINFO_TYPE, f);
        if (rv == APR_SUCCESS && (fi.filetype != APR_REG || fi.size > SECRET_MAX)) {
            apr_file_close(f);
            return apr_psprintf(cmd->pool, "%s: '%s' is not a regular file of at most %d bytes",
                                cmd->cmd->name, path, SECRET_MAX);
        }
        if (rv == APR_SUCCESS) {
            rv = apr_file_read_full(f, buf, (apr_size_t)fi.size, len);
        }
        apr_file_close(f);
    }
    if (rv != APR_SUCCESS) {
        return apr_psprintf(cmd->pool, "%s: cannot read '%s': %s", cmd->cmd->name, path,
                            apr_strerror(rv, err, sizeof(err)));
    }
    if (fi.protection & (APR_GREAD | APR_WREAD)) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_WARNING, 0, NULL,
                     "PEGADM001: %s: '%s' (%s:%d) is readable by group or others; "
                     "make it readable by root only (chmod 600)",
                     cmd->cmd->name, path, cmd->directive->filename, cmd->directive->line_num);
    }
    return NULL;
}

static const char *set_secret_file(cmd_parms *cmd, void *dv, const char *arg)
{
    const char *path = ap_server_root_relative(cmd->temp_pool, arg);
    char *buf = apr_palloc(cmd->temp_pool, SECRET_MAX + 1);
    apr_size_t len = 0, start = 0;
    const char *err;

    if (!path) {
        return apr_psprintf(cmd->pool, "%s: invalid path '%s'", cmd->cmd->name, arg);
    }
    if ((err = read_secret_file(cmd, path, buf, &len)) != NULL) {
        return err;
    }
    while (start < len && apr_isspace(buf[start])) {
        start++;
    }
    while (len > start && apr_isspace(buf[len - 1])) {
        len--;
    }
    err = make_secret(cmd, dv, buf + start, len - start);
    memset(buf, 0, SECRET_MAX + 1); /* no copy of the key left in the temp pool */
    return err;
}

static const char *set_service_url(cmd_parms *cmd, void *dv, const char *arg)
{
    return parse_service_url(cmd, arg, &((pegadm_dir_conf_t *)dv)->service_url);
}

static const char *set_private_data_url(cmd_parms *cmd, void *dv, const char *arg)
{
    return parse_service_url(cmd, arg, &((pegadm_dir_conf_t *)dv)->private_data_url);
}

static const char *parse_expr(cmd_parms *cmd, const char *arg, ap_expr_info_t **out)
{
    const char *err = NULL;
    *out = ap_expr_parse_cmd(cmd, arg, AP_EXPR_FLAG_STRING_RESULT, &err, NULL);
    if (err) {
        return apr_psprintf(cmd->pool, "%s: cannot parse expression '%s': %s", cmd->cmd->name,
                            arg, err);
    }
    return NULL;
}

static const char *set_customer_id(cmd_parms *cmd, void *dv, const char *arg)
{
    return parse_expr(cmd, arg, &((pegadm_dir_conf_t *)dv)->customer_id);
}

/* A typed field whose value is a constant (no %{...}, $n or backslash in it) is
 * converted now: one that can never convert stops the start-up instead
 * of being left out of every session's private data. */
static const char *check_constant_field(cmd_parms *cmd, const pegadm_field_t *f,
                                        const char *value)
{
    json_t *jv = NULL;
    const char *why = "empty";
    pegadm_field_status_t st;

    if (f->type == PEGADM_FIELD_STRING || strpbrk(value, "%$\\")) {
        return NULL;
    }
    st = pegadm_field_value(f->type, value, strlen(value), &jv, &why);
    json_decref(jv);
    if (st == PEGADM_FIELD_OK) {
        return NULL;
    }
    return apr_psprintf(cmd->pool, "%s %s: '%s' is %s, so never a %s", cmd->cmd->name, f->key,
                        value, why, pegadm_field_type_name(f->type));
}

static const char *add_private_data(cmd_parms *cmd, void *dv, const char *key,
                                    const char *value, const char *type)
{
    pegadm_dir_conf_t *d = dv;
    pegadm_field_t *field;
    const char *err;

    if (!*key) {
        return apr_psprintf(cmd->pool, "%s: the key is empty", cmd->cmd->name);
    }
    /* printed as httpd prints every message, its bytes past ASCII escaped (\xe9) */
    if (!pegadm_field_key_is_valid(key)) {
        return apr_psprintf(cmd->pool,
                            "%s: key '%s' is not valid UTF-8 (the JSON of the "
                            "private data cannot carry it)",
                            cmd->cmd->name, key);
    }
    if (!d->private_data) {
        d->private_data = apr_array_make(cmd->pool, 4, sizeof(pegadm_field_t));
    }
    for (int i = 0; i < d->private_data->nelts; i++) {
        if (!strcmp(APR_ARRAY_IDX(d->private_data, i, pegadm_field_t).key, key)) {
            return apr_psprintf(cmd->pool, "%s: key '%s' is given twice in this scope",
                                cmd->cmd->name, key);
        }
    }
    field = apr_array_push(d->private_data);
    field->key = apr_pstrdup(cmd->pool, key);
    field->type = PEGADM_FIELD_STRING;
    field->failure_logged = 0;
    if (type && pegadm_field_type_parse(type, &field->type) != APR_SUCCESS) {
        return apr_psprintf(cmd->pool,
                            "%s %s: unknown type '%s' (string, boolean, number or json)",
                            cmd->cmd->name, key, type);
    }
    err = parse_expr(cmd, value, &field->expr);
    return err ? err : check_constant_field(cmd, field, value);
}

static const char *set_seconds(cmd_parms *cmd, const char *arg, long max,
                               apr_interval_time_t *out)
{
    long v;
    const char *err = parse_int(cmd, arg, 1, max, &v);
    if (!err) {
        *out = apr_time_from_sec(v);
    }
    return err;
}

static const char *set_cache_ttl(cmd_parms *cmd, void *dv, const char *arg)
{
    return set_seconds(cmd, arg, 86400, &((pegadm_dir_conf_t *)dv)->cache_ttl);
}

static const char *set_timeout(cmd_parms *cmd, void *dv, const char *arg)
{
    return set_seconds(cmd, arg, 60, &((pegadm_dir_conf_t *)dv)->timeout);
}

static const char *set_connect_timeout(cmd_parms *cmd, void *dv, const char *arg)
{
    return set_seconds(cmd, arg, 60, &((pegadm_dir_conf_t *)dv)->connect_timeout);
}

static const char *set_token_lifetime(cmd_parms *cmd, void *dv, const char *arg)
{
    long v;
    const char *err = parse_int(cmd, arg, 1, 300, &v);
    if (!err) {
        ((pegadm_dir_conf_t *)dv)->token_lifetime = (int)v;
    }
    return err;
}

static const char *set_create_limit(cmd_parms *cmd, void *dv, const char *count,
                                    const char *seconds)
{
    pegadm_dir_conf_t *d = dv;
    long n;
    const char *err = parse_int(cmd, count, 1, 100000, &n);
    if (!err) {
        err = set_seconds(cmd, seconds, 86400, &d->create_window);
    }
    if (!err) {
        d->create_limit = (int)n;
    }
    return err;
}

static const char *set_create_waiters(cmd_parms *cmd, void *dv, const char *arg)
{
    long v;
    const char *err = parse_int(cmd, arg, 1, 10000, &v);
    if (!err) {
        ((pegadm_dir_conf_t *)dv)->create_waiters = (int)v;
    }
    return err;
}

static const char *set_ca_file(cmd_parms *cmd, void *dv, const char *arg)
{
    const char *path = ap_server_root_relative(cmd->pool, arg);
    apr_finfo_t fi;

    if (!path || apr_stat(&fi, path, APR_FINFO_TYPE, cmd->temp_pool) != APR_SUCCESS ||
        fi.filetype != APR_REG) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a readable file", cmd->cmd->name, arg);
    }
    ((pegadm_dir_conf_t *)dv)->ca_file = path;
    return NULL;
}

static const char *set_proxy(cmd_parms *cmd, void *dv, const char *arg)
{
    const char *err = pegadm_check_proxy_url(cmd->pool, cmd->cmd->name, arg);
    if (!err) {
        ((pegadm_dir_conf_t *)dv)->proxy = apr_pstrdup(cmd->pool, arg);
    }
    return err;
}

/* A path on this server that goes into a script or an HTML attribute as
 * it is: no quotes, no angle brackets, no white space. */
static const char *parse_local_path(cmd_parms *cmd, const char *arg, const char **out)
{
    const char *err = pegadm_check_local_path(cmd->pool, cmd->cmd->name, arg);
    if (!err) {
        *out = apr_pstrdup(cmd->pool, arg);
    }
    return err;
}

static const char *set_session_endpoint(cmd_parms *cmd, void *dv, const char *arg)
{
    return parse_local_path(cmd, arg, &((pegadm_dir_conf_t *)dv)->session_endpoint);
}

static const char *set_inject(cmd_parms *cmd, void *dv, int on)
{
    const char *err = pegadm_refuse_htaccess(cmd);
    if (!err) {
        ((pegadm_dir_conf_t *)dv)->inject = on;
    }
    return err;
}

static const char *set_script_nonce(cmd_parms *cmd, void *dv, const char *arg)
{
    return parse_expr(cmd, arg, &((pegadm_dir_conf_t *)dv)->script_nonce);
}

static const char *set_bootstrap_url(cmd_parms *cmd, void *dv, const char *arg)
{
    return parse_local_path(cmd, arg, &((pegadm_dir_conf_t *)dv)->bootstrap_url);
}

/* An httpd socache provider (shmcb, or another) with its arguments. */
static const char *set_socache(cmd_parms *cmd, pegadm_server_conf_t *sc,
                               const pegadm_cache_url_t *url)
{
    const char *err;

    sc->cache_provider = ap_lookup_provider(AP_SOCACHE_PROVIDER_GROUP, url->provider,
                                            AP_SOCACHE_PROVIDER_VERSION);
    if (!sc->cache_provider) {
        return apr_psprintf(cmd->pool,
                            "%s: unknown socache provider '%s' (is "
                            "mod_socache_%s loaded before mod_pegadm?)",
                            cmd->cmd->name, url->provider, url->provider);
    }
    sc->cache_provider_name = url->provider;
    sc->cache_args = url->args;
    err = sc->cache_provider->create(&sc->cache, url->args, cmd->temp_pool, cmd->pool);
    return err ? apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err) : NULL;
}

/* redis://, rediss://, memcache:// and the earlier redis: and memcache:
 * forms go to the module's own clients; anything else to httpd's socache. */
static const char *set_cache(cmd_parms *cmd, void *dv, const char *arg)
{
    pegadm_server_conf_t *sc = ap_get_module_config(cmd->server->module_config, &pegadm_module);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    pegadm_cache_url_t *url = NULL;

    if (err || (err = pegadm_cacheurl_parse(cmd->pool, cmd->cmd->name, arg, &url)) != NULL) {
        return err;
    }
    sc->cache_directive = cmd->directive;
    if (url->kind == PEGADM_CACHE_SOCACHE) {
        sc->shared.url = NULL;
        return set_socache(cmd, sc, url);
    }
    sc->shared.url = url;
    sc->cache_provider = NULL;
    sc->cache = NULL;
    sc->cache_provider_name = url->kind == PEGADM_CACHE_REDIS ? "redis" : "memcache";
    sc->cache_args = pegadm_cacheurl_describe(cmd->pool, url);
    return NULL;
}

/* The shared cache's settings, noting where the directive at hand is. */
static pegadm_shared_settings_t *shared_of(cmd_parms *cmd, pegadm_cache_opt_t opt)
{
    pegadm_server_conf_t *sc = ap_get_module_config(cmd->server->module_config, &pegadm_module);

    sc->shared.where[opt] = cmd->directive;
    return &sc->shared;
}

static const char *set_cache_timeout(cmd_parms *cmd, void *dv, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    pegadm_shared_settings_t *sh = shared_of(cmd, PEGADM_CACHE_OPT_TIMEOUT);

    return err ? err
               : pegadm_cacheurl_parse_timeout(cmd->pool, cmd->cmd->name, arg, &sh->timeout);
}

static const char *set_cache_user(cmd_parms *cmd, void *dv, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    pegadm_shared_settings_t *sh = shared_of(cmd, PEGADM_CACHE_OPT_USER);

    if (!err && (!*arg || strpbrk(arg, " \t\r\n"))) {
        err = apr_psprintf(cmd->pool, "%s: a user name without spaces", cmd->cmd->name);
    }
    sh->user = err ? NULL : apr_pstrdup(cmd->pool, arg);
    return err;
}

/* Withheld from mod_info and the dumps as the JWT secret is. */
static const char *set_cache_password(cmd_parms *cmd, void *dv, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    pegadm_shared_settings_t *sh = shared_of(cmd, PEGADM_CACHE_OPT_PASSWORD);

    if (!err && (!*arg || strchr(arg, '\n') || (arg[0] == '$' && arg[1] == '{'))) {
        err = apr_psprintf(cmd->pool, "%s: empty, or an undefined variable", cmd->cmd->name);
    }
    if (!err) {
        sh->password = apr_pstrdup(cmd->pool, arg);
        secret_withhold(cmd, arg);
    }
    return err;
}

static const char *set_cache_password_file(cmd_parms *cmd, void *dv, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    pegadm_shared_settings_t *sh = shared_of(cmd, PEGADM_CACHE_OPT_PASSWORD_FILE);
    const char *path = ap_server_root_relative(cmd->pool, arg);
    int exposed = 0;

    if (err || !path) {
        return err ? err
                   : apr_psprintf(cmd->pool, "%s: invalid path '%s'", cmd->cmd->name, arg);
    }
    err = pegadm_shared_read_password(cmd->pool, path, &sh->password, &exposed);
    if (!err && exposed) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_WARNING, 0, NULL,
                     "PEGADM903: %s: %s (%s:%d) is readable by group or others; make it "
                     "readable by root only (chmod 600)",
                     cmd->cmd->name, path, cmd->directive->filename, cmd->directive->line_num);
    }
    return err;
}

/* PegaDMCacheCAFile, PegaDMCacheCertificateFile, PegaDMCacheKeyFile: a
 * file that exists now, for a start that fails at once rather than later. */
static const char *set_cache_tls_file(cmd_parms *cmd, void *dv, const char *arg)
{
    pegadm_cache_opt_t opt = (pegadm_cache_opt_t)(apr_uintptr_t)cmd->info;
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    pegadm_shared_settings_t *sh = shared_of(cmd, opt);
    const char *path = ap_server_root_relative(cmd->pool, arg);
    apr_finfo_t fi;

    if (err) {
        return err;
    }
    if (!path || apr_stat(&fi, path, APR_FINFO_TYPE, cmd->temp_pool) != APR_SUCCESS ||
        fi.filetype != APR_REG) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a file that can be read",
                            cmd->cmd->name, arg);
    }
    *(opt == PEGADM_CACHE_OPT_CA_FILE     ? &sh->ca_file
      : opt == PEGADM_CACHE_OPT_CERT_FILE ? &sh->cert_file
                                          : &sh->key_file) = path;
    return NULL;
}

/* Up to 5,000,000: the most a shmcb cache (under 4 GiB) can be sized for. */
static const char *set_cache_customers(cmd_parms *cmd, void *dv, const char *arg)
{
    pegadm_server_conf_t *sc = ap_get_module_config(cmd->server->module_config, &pegadm_module);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    long v;

    if (!err) {
        err = parse_int(cmd, arg, 1, 5000000, &v);
    }
    if (!err) {
        sc->cache_customers = (int)v;
    }
    return err;
}

static const char *set_breaker_threshold(cmd_parms *cmd, void *dv, const char *arg)
{
    long v;
    const char *err = parse_int(cmd, arg, 0, 100000, &v);
    if (!err) {
        ((pegadm_dir_conf_t *)dv)->breaker_threshold = (int)v;
    }
    return err;
}

static const char *set_breaker_cooldown(cmd_parms *cmd, void *dv, const char *arg)
{
    return set_seconds(cmd, arg, 3600, &((pegadm_dir_conf_t *)dv)->breaker_cooldown);
}

/* apr_dbd takes every %<letter> for a parameter and %% for a literal
 * percent sign; the statement gets exactly one, the log-in name. */

static const char *check_placeholders(cmd_parms *cmd, const char *query)
{
    int params = 0, strings = 0;

    for (const char *q = query; *q; q++) {
        if (q[0] == '%' && q[1] == '%') {
            q++;
        } else if (q[0] == '%' && apr_isalpha(q[1])) {
            params++;
            strings += q[1] == 's';
        }
    }
    if (params != 1 || strings != 1) {
        return apr_psprintf(cmd->pool,
                            "%s: the SQL statement must take exactly one parameter, "
                            "written %%s (the log-in name), and no other %%-parameter",
                            cmd->cmd->name);
    }
    return NULL;
}

static const char *set_cid_query(cmd_parms *cmd, void *dv, const char *query)
{
    APR_OPTIONAL_FN_TYPE(ap_dbd_prepare) *prepare = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_prepare);
    pegadm_dir_conf_t *d = dv;
    unsigned char digest[APR_MD5_DIGESTSIZE];
    char hex[2 * APR_MD5_DIGESTSIZE + 1];
    const char *err;

    if (!prepare) {
        return apr_psprintf(cmd->pool, "%s needs mod_dbd: load it (LoadModule dbd_module ...)",
                            cmd->cmd->name);
    }
    if ((err = check_placeholders(cmd, query)) != NULL) {
        return err;
    }
    /* The label follows from the SQL alone: mod_dbd keeps statements per
     * server and lets virtual hosts inherit the main server's, so one label
     * must never stand for two different statements. */
    apr_md5(digest, query, strlen(query));
    ap_bin2hex(digest, sizeof(digest), hex);
    d->cid_query = apr_pstrdup(cmd->pool, query);
    d->cid_query_label = apr_pstrcat(cmd->pool, "pegadm_cid_", hex, NULL);
    prepare(cmd->server, d->cid_query, d->cid_query_label);
    return NULL;
}

static const char *set_cid_query_ttl(cmd_parms *cmd, void *dv, const char *arg)
{
    long v;
    const char *err = pegadm_check_int(cmd->pool, cmd->cmd->name, arg, 0, 86400, &v);

    if (!err) {
        ((pegadm_dir_conf_t *)dv)->cid_query_ttl = apr_time_from_sec(v);
    }
    return err;
}

static const char *set_audit_log(cmd_parms *cmd, void *dv, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    pegadm_operator_t *oper;

    if (err) {
        return err;
    }
    oper = server_conf(cmd->server)->operator_rec;
    /* as CustomLog: "|prog" and "||prog" run prog directly, "|$cmd" through the shell */
    if (*arg == '|') {
        arg++;
        oper->audit_is_pipe = 1;
        oper->audit_shell = *arg == '$';
        arg += *arg == '$' || *arg == '|';
        oper->audit_target = apr_pstrdup(cmd->pool, arg);
    } else {
        oper->audit_is_pipe = 0;
        oper->audit_target = ap_server_root_relative(cmd->pool, arg);
        if (!oper->audit_target) {
            return apr_psprintf(cmd->pool, "%s: invalid path '%s'", cmd->cmd->name, arg);
        }
    }
    return NULL;
}

static const char *set_preflight(cmd_parms *cmd, void *dv, int on)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    if (!err) {
        server_conf(cmd->server)->operator_rec->preflight->enabled = on;
    }
    return err;
}

static const char *set_preflight_warn_days(cmd_parms *cmd, void *dv, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    long v;
    if (!err) {
        err = pegadm_check_int(cmd->pool, cmd->cmd->name, arg, 0, 3650, &v);
    }
    if (!err) {
        server_conf(cmd->server)->operator_rec->preflight->warn_days = (int)v;
    }
    return err;
}

static const char *set_preflight_interval(cmd_parms *cmd, void *dv, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    long v;
    if (!err) {
        err = pegadm_check_int(cmd->pool, cmd->cmd->name, arg, 0, 86400, &v);
    }
    if (!err) {
        server_conf(cmd->server)->operator_rec->preflight->every = apr_time_from_sec(v);
    }
    return err;
}

static const char *set_local_customers(cmd_parms *cmd, void *dv, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    long v;

    if (!err) {
        err = pegadm_check_int(cmd->pool, cmd->cmd->name, arg, 0, MAX_LOCAL_CUSTOMERS, &v);
    }
    if (err) {
        return err;
    }
    server_conf(cmd->server)->local_conf->customers = (int)v;
    return NULL;
}

static const char *set_local_max_age(cmd_parms *cmd, void *dv, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    apr_interval_time_t t;

    if (err) {
        return err;
    }
    if (ap_timeout_parameter_parse(arg, &t, "s") != APR_SUCCESS || t < 0 ||
        t > MAX_LOCAL_MAX_AGE) {
        return apr_psprintf(cmd->pool,
                            "%s: '%s' is not a time from 0 to 3600 seconds (e.g. 1, 250ms)",
                            cmd->cmd->name, arg);
    }
    server_conf(cmd->server)->local_conf->max_age = t;
    return NULL;
}

static const char *set_read_lock(cmd_parms *cmd, void *dv, int on)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    if (!err) {
        server_conf(cmd->server)->local_conf->read_lock = on;
    }
    return err;
}

static const char *set_reads_per_child(cmd_parms *cmd, void *dv, const char *arg)
{
    pegadm_server_conf_t *sc = ap_get_module_config(cmd->server->module_config, &pegadm_module);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    long v;

    if (!err) {
        err = pegadm_check_int(cmd->pool, cmd->cmd->name, arg, 0, MAX_READS_PER_CHILD, &v);
    }
    if (err) {
        return err;
    }
    sc->reads_per_child = (int)v;
    sc->reads_directive = cmd->directive;
    return NULL;
}

static const char *set_cid_query_concurrency(cmd_parms *cmd, void *dv, const char *arg)
{
    pegadm_server_conf_t *sc = ap_get_module_config(cmd->server->module_config, &pegadm_module);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    long v;

    if (!err) {
        err =
            pegadm_check_int(cmd->pool, cmd->cmd->name, arg, 0, MAX_CID_QUERY_CONCURRENCY, &v);
    }
    if (!err) {
        sc->cid_query_concurrency = (int)v;
    }
    return err;
}

static const char *set_forget(cmd_parms *cmd, void *dv, int on)
{
    const char *err = pegadm_refuse_htaccess(cmd);
    if (err) {
        return err;
    }
    ((pegadm_dir_conf_t *)dv)->forget = on;
    if (on) {
        logout_cookie_wanted_by(cmd);
    }
    return NULL;
}

static const char *set_private_data_refresh(cmd_parms *cmd, void *dv, const char *arg)
{
    char *end;
    apr_int64_t v = apr_strtoi64(arg, &end, 10);

    if (!*arg || *end || v < 0 || v > PRIVATE_DATA_REFRESH_MAX) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a number of seconds from 0 to %d",
                            cmd->cmd->name, arg, PRIVATE_DATA_REFRESH_MAX);
    }
    ((pegadm_dir_conf_t *)dv)->private_data_refresh = apr_time_from_sec(v);
    return NULL;
}

/* The bootstrap script's configuration: it acts inside frames too. */
static const char *set_allow_in_frame(cmd_parms *cmd, void *dv, int on)
{
    ((pegadm_dir_conf_t *)dv)->allow_in_frame = on;
    return NULL;
}

#define DIR_SCOPE (RSRC_CONF | ACCESS_CONF)

const command_rec pegadm_cmds[] = {
    AP_INIT_FLAG("PegaDM", set_enabled, NULL, DIR_SCOPE,
                 "On to find or create the user's chat session after authentication"),
    AP_INIT_TAKE1("PegaDMWidgetID", set_widget_id, NULL, DIR_SCOPE,
                  "the Web Messaging widget ID (a UUID)"),
    AP_INIT_TAKE1("PegaDMJWTSecret", set_secret, NULL, DIR_SCOPE, "the widget's JWT secret"),
    AP_INIT_TAKE1("PegaDMJWTSecretFile", set_secret_file, NULL, DIR_SCOPE,
                  "a file holding the widget's JWT secret, read at start-up"),
    AP_INIT_TAKE1("PegaDMJWTSecretNext", set_secret, "next", DIR_SCOPE,
                  "the secret the Web Messaging connection uses next (rotation)"),
    AP_INIT_TAKE1("PegaDMJWTSecretNextFile", set_secret_file, "next", DIR_SCOPE,
                  "a file holding the secret the connection uses next, read at start-up"),
    AP_INIT_TAKE1("PegaDMServiceURL", set_service_url, NULL, DIR_SCOPE,
                  "the Digital Messaging service base URL"),
    AP_INIT_TAKE1("PegaDMPrivateDataURL", set_private_data_url, NULL, DIR_SCOPE,
                  "the private-data endpoint (default: {service}/private-data)"),
    AP_INIT_TAKE1("PegaDMCustomerID", set_customer_id, NULL, DIR_SCOPE,
                  "an expression giving the Pega customer ID (default %{REMOTE_USER})"),
    AP_INIT_TAKE23("PegaDMPrivateData", add_private_data, NULL, DIR_SCOPE,
                   "a private-data field: key, expression, and optionally its type "
                   "(string, boolean, number or json)"),
    AP_INIT_TAKE1("PegaDMCache", set_cache, NULL, RSRC_CONF,
                  "where sessions are kept: redis://, rediss://, memcache:// or shmcb[:args]"),
    AP_INIT_TAKE1("PegaDMCacheTimeout", set_cache_timeout, NULL, RSRC_CONF,
                  "deadline of one shared cache operation, in seconds (decimals allowed)"),
    AP_INIT_TAKE1("PegaDMCacheUser", set_cache_user, NULL, RSRC_CONF, "Redis ACL user name"),
    AP_INIT_TAKE1("PegaDMCachePassword", set_cache_password, NULL, RSRC_CONF,
                  "Redis password or access key"),
    AP_INIT_TAKE1("PegaDMCachePasswordFile", set_cache_password_file, NULL, RSRC_CONF,
                  "file holding the Redis password or access key"),
    AP_INIT_TAKE1("PegaDMCacheCAFile", set_cache_tls_file, (void *)PEGADM_CACHE_OPT_CA_FILE,
                  RSRC_CONF, "CA certificates for the cache server (rediss://)"),
    AP_INIT_TAKE1("PegaDMCacheCertificateFile", set_cache_tls_file,
                  (void *)PEGADM_CACHE_OPT_CERT_FILE, RSRC_CONF,
                  "client certificate for the cache server (rediss://)"),
    AP_INIT_TAKE1("PegaDMCacheKeyFile", set_cache_tls_file, (void *)PEGADM_CACHE_OPT_KEY_FILE,
                  RSRC_CONF, "the client certificate's key (rediss://)"),
    AP_INIT_TAKE1("PegaDMCacheCustomers", set_cache_customers, NULL, RSRC_CONF,
                  "customers holding a session at once, for sizing the shmcb cache"),
    AP_INIT_TAKE1("PegaDMLocalCache", set_local_customers, NULL, RSRC_CONF,
                  "customers whose session IDs each child process keeps (0: off)"),
    AP_INIT_TAKE1("PegaDMLocalCacheMaxAge", set_local_max_age, NULL, RSRC_CONF,
                  "how long a child reuses what it read from a shared cache (0: never)"),
    AP_INIT_FLAG("PegaDMCacheReadLock", set_read_lock, NULL, RSRC_CONF,
                 "Off: memcache and redis reads skip the node's pegadm-cache mutex"),
    AP_INIT_TAKE1("PegaDMCacheReadsPerChild", set_reads_per_child, NULL, RSRC_CONF,
                  "reads of a memcache or redis cache one child sends at once (0: no bound)"),
    AP_INIT_TAKE1("PegaDMCacheTTL", set_cache_ttl, NULL, DIR_SCOPE,
                  "seconds a user's session ID is reused"),
    AP_INIT_TAKE1("PegaDMTimeout", set_timeout, NULL, DIR_SCOPE,
                  "seconds one upstream call may take, connect included"),
    AP_INIT_TAKE1("PegaDMConnectTimeout", set_connect_timeout, NULL, DIR_SCOPE,
                  "seconds connecting to the service may take"),
    AP_INIT_TAKE1("PegaDMCAFile", set_ca_file, NULL, DIR_SCOPE,
                  "CA bundle to verify the service's certificate"),
    AP_INIT_TAKE1("PegaDMProxy", set_proxy, NULL, DIR_SCOPE,
                  "outbound proxy URL for the service calls"),
    AP_INIT_TAKE1("PegaDMTokenLifetime", set_token_lifetime, NULL, DIR_SCOPE,
                  "seconds between iat and exp of minted tokens (1 to 300)"),
    AP_INIT_TAKE2("PegaDMCreateLimit", set_create_limit, NULL, DIR_SCOPE,
                  "fresh sessions one customer may force, and the window in seconds"),
    AP_INIT_TAKE1("PegaDMCreateWaiters", set_create_waiters, NULL, DIR_SCOPE,
                  "requests of one customer that may wait for one create, per process"),
    AP_INIT_TAKE1("PegaDMSessionEndpoint", set_session_endpoint, NULL, DIR_SCOPE,
                  "the session endpoint's path, as the bootstrap script calls it"),
    AP_INIT_TAKE1("PegaDMBreakerThreshold", set_breaker_threshold, NULL, DIR_SCOPE,
                  "consecutive service failures that stop calls for a while (0: never)"),
    AP_INIT_TAKE1("PegaDMBreakerCooldown", set_breaker_cooldown, NULL, DIR_SCOPE,
                  "seconds without calls once the breaker opens, before one probe"),
    AP_INIT_FLAG("PegaDMInject", set_inject, NULL, DIR_SCOPE,
                 "On to add the bootstrap script tag before </body> of HTML responses"),
    AP_INIT_TAKE1("PegaDMScriptNonce", set_script_nonce, NULL, DIR_SCOPE,
                  "an expression giving the CSP nonce of the injected script tag"),
    AP_INIT_TAKE1("PegaDMBootstrapURL", set_bootstrap_url, NULL, DIR_SCOPE,
                  "the path of the bootstrap script, as the injected tag loads it"),
    AP_INIT_TAKE1("PegaDMCustomerIDQuery", set_cid_query, NULL, DIR_SCOPE,
                  "SQL (mod_dbd) mapping the log-in name, its one %s, to the customer ID"),
    AP_INIT_TAKE1("PegaDMCustomerIDQueryTTL", set_cid_query_ttl, NULL, DIR_SCOPE,
                  "seconds an answer of PegaDMCustomerIDQuery is cached (0: not cached)"),
    AP_INIT_TAKE1("PegaDMCustomerIDQueryConcurrency", set_cid_query_concurrency, NULL,
                  RSRC_CONF,
                  "requests of one child that may wait on the database at once "
                  "(0: no bound)"),
    AP_INIT_FLAG("PegaDMPreflight", set_preflight, NULL, RSRC_CONF,
                 "Off to skip checking the services at start-up and periodically"),
    AP_INIT_TAKE1("PegaDMPreflightInterval", set_preflight_interval, NULL, RSRC_CONF,
                  "seconds between checks of the services (0: at start-up only)"),
    AP_INIT_TAKE1("PegaDMCertificateWarnDays", set_preflight_warn_days, NULL, RSRC_CONF,
                  "warn when a service's certificate expires within this many days"),
    AP_INIT_TAKE1("PegaDMAuditLog", set_audit_log, NULL, RSRC_CONF,
                  "a file, or \"|program\", receiving one JSON line per session event"),
    AP_INIT_FLAG("PegaDMForget", set_forget, NULL, DIR_SCOPE,
                 "On for the portal's logout URL: drop the user's chat session first"),
    AP_INIT_TAKE1("PegaDMPrivateDataRefresh", set_private_data_refresh, NULL, DIR_SCOPE,
                  "seconds between re-pushes of changed private data (0: never re-push)"),
    AP_INIT_FLAG("PegaDMAllowInFrame", set_allow_in_frame, NULL, DIR_SCOPE,
                 "On to let the bootstrap script start the widget inside a frame"),
    {.name = NULL}, /* the end of the table */
};
