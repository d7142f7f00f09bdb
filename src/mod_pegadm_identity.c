/* The customer of a request: PegaDMCustomerID's expression (REMOTE_USER
 * unless set), the check that the value is a usable Pega customer ID, and,
 * with PegaDMCustomerIDQuery, the log-in name mapped to the customer ID by
 * a statement prepared through mod_dbd. Answers may be kept for
 * PegaDMCustomerIDQueryTTL in the module's socache, sealed like sessions;
 * at most PegaDMCustomerIDQueryConcurrency requests of a child wait on the
 * database at once. What is done with the ID is the session call's
 * (mod_pegadm_session.c). */
#include "mod_pegadm.h"

#include <string.h>

#include <ap_mpm.h>
#include <apr_atomic.h>
#include <apr_dbd.h>
#include <apr_lib.h>
#include <apr_md5.h>
#include <apr_optional.h>
#include <apr_strings.h>
#include <mod_dbd.h>

#include "pegadm_identity.h"
#include "pegadm_bytes.h"
#include "pegadm_confcheck.h"
#include "pegadm_gate.h"

APLOG_USE_MODULE(pegadm);

/* Maps login with the scope's query (or its cached answer). On OK, *value
 * is the raw first column, not yet validated; NONE and UNAVAILABLE are logged. */
static pegadm_customer_status_t pegadm_dbd_customer_id(request_rec *r,
                                                       const pegadm_dir_conf_t *d,
                                                       const char *login, const char **value);

/* Whether id may be used; refusals other than "empty" are logged. */
static int usable_customer_id(request_rec *r, const char *id)
{
    pegadm_id_check_t check = id ? pegadm_customer_id_check(id, strlen(id)) : PEGADM_ID_EMPTY;

    if (check != PEGADM_ID_OK && check != PEGADM_ID_EMPTY) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "PEGADM032: refusing customer ID (%" APR_SIZE_T_FMT
                      " bytes): %s; treated as "
                      "not authenticated",
                      strlen(id), pegadm_id_check_reason(check));
    }
    return check == PEGADM_ID_OK;
}

/* With PegaDMCustomerIDQuery the expression gives the log-in name, and the
 * database the customer ID; both are checked. */
pegadm_customer_status_t pegadm_customer_id(request_rec *r, const pegadm_dir_conf_t *d,
                                            const char **out)
{
    const char *id = r->user, *err = NULL;
    pegadm_customer_status_t st = PEGADM_CUSTOMER_OK;

    if (d->customer_id) {
        id = ap_expr_str_exec(r, d->customer_id, &err);
        if (err) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          "PEGADM031: PegaDMCustomerID: evaluating the expression failed: %s",
                          err);
            return PEGADM_CUSTOMER_NONE;
        }
    }
    if (!usable_customer_id(r, id)) {
        return PEGADM_CUSTOMER_NONE;
    }
    if (d->cid_query) {
        st = pegadm_dbd_customer_id(r, d, id, &id);
        if (st == PEGADM_CUSTOMER_OK && !usable_customer_id(r, id)) {
            st = PEGADM_CUSTOMER_NONE;
        }
    }
    if (st == PEGADM_CUSTOMER_OK) {
        apr_table_setn(r->notes, PEGADM_CUSTOMER_NOTE, id);
        *out = id;
    }
    return st;
}

/* A cached answer is one of these tags, then the customer ID if found. */
#define CACHED_FOUND 'F'
#define CACHED_NONE  'N'

/* ---- which database a server's answers come from ----
 * mod_dbd keeps its settings to itself; the configuration tree shows them.
 * A virtual host without DBDriver or DBDParams of its own uses the main
 * server's, as mod_dbd does. */

#define MAIN_SERVER_KEY "main"

/* The key of a server's record: where its <VirtualHost> starts. */
static const char *server_key(apr_pool_t *p, const server_rec *s)
{
    return s->is_virtual ? apr_psprintf(p, "%s:%d", s->defn_name, (int)s->defn_line_number)
                         : MAIN_SERVER_KEY;
}

typedef struct {
    const char *driver;
    const char *params;
} database_t;

static void find_database(const ap_directive_t *first, database_t *db)
{
    for (const ap_directive_t *d = first; d; d = d->next) {
        if (!strcasecmp(d->directive, "DBDriver")) {
            db->driver = d->args;
        } else if (!strcasecmp(d->directive, "DBDParams")) {
            db->params = d->args;
        } else if (d->first_child && strcasecmp(d->directive, "<VirtualHost") != 0) {
            find_database(d->first_child, db);
        }
    }
}

static void note_databases(apr_pool_t *p, apr_hash_t *found, const ap_directive_t *first,
                           const database_t *main_db)
{
    for (const ap_directive_t *d = first; d; d = d->next) {
        if (!strcasecmp(d->directive, "<VirtualHost")) {
            database_t db = *main_db;
            find_database(d->first_child, &db);
            apr_hash_set(found, apr_psprintf(p, "%s:%d", d->filename, d->line_num),
                         APR_HASH_KEY_STRING,
                         apr_pstrcat(p, db.driver ? db.driver : "", "\n",
                                     db.params ? db.params : "", NULL));
        } else if (d->first_child) {
            note_databases(p, found, d->first_child, main_db);
        }
    }
}

void pegadm_dbd_note_databases(server_rec *s)
{
    pegadm_server_conf_t *sc = ap_get_module_config(s->module_config, &pegadm_module);
    apr_pool_t *p = s->process->pconf;
    database_t main_db = {NULL, NULL};

    find_database(ap_conftree, &main_db);
    sc->databases = apr_hash_make(p);
    apr_hash_set(sc->databases, MAIN_SERVER_KEY, APR_HASH_KEY_STRING,
                 apr_pstrcat(p, main_db.driver ? main_db.driver : "", "\n",
                             main_db.params ? main_db.params : "", NULL));
    note_databases(p, sc->databases, ap_conftree, &main_db);
}

/* ---- the lookup ---- */

/* mod_dbd prepares the statement once, when it opens a connection. A
 * connection that a database restart broke is reset by mod_dbd's check when
 * it is next drawn (libpq's PQreset): the same connection, on a new server
 * session that knows no prepared statement, so every query through it
 * would fail for as long as the connection lives. So after a failed query
 * the statement is prepared again under its name on this connection, for
 * every later request too. Where it was not lost, that fails (pgsql: the
 * name exists; a database that is down: no connection). Each statement
 * made here lives in its own pool under the connection's, and replacing
 * it frees the one before: repeated failures cannot pile them up. */
static apr_dbd_prepared_t *prepare_again(request_rec *r, ap_dbd_t *dbd,
                                         const pegadm_dir_conf_t *d)
{
    const char *key = apr_pstrcat(r->pool, "pegadm-prepared:", d->cid_query_label, NULL);
    apr_dbd_prepared_t *stmt = NULL; /* the drivers fill in a statement given */
    apr_pool_t *before = NULL, *own;

    if (apr_pool_create(&own, dbd->pool) != APR_SUCCESS) {
        return NULL;
    }
    if (apr_dbd_prepare(dbd->driver, own, dbd->handle, d->cid_query, d->cid_query_label,
                        &stmt) != 0) {
        apr_pool_destroy(own);
        return NULL;
    }
    apr_hash_set(dbd->prepared, d->cid_query_label, APR_HASH_KEY_STRING, stmt);
    apr_pool_userdata_get((void **)&before, key, dbd->pool);
    apr_pool_userdata_set(own, key, NULL, dbd->pool);
    if (before) {
        apr_pool_destroy(before);
    }
    return stmt;
}

/* The rows for login, or an error with *why. Random access: the drivers
 * read the whole (small) result at once and leave nothing pending on the
 * connection. */
static int select_customer(request_rec *r, ap_dbd_t *dbd, const pegadm_dir_conf_t *d,
                           apr_dbd_prepared_t *stmt, const char *login, apr_dbd_results_t **res,
                           const char **why)
{
    int rv = apr_dbd_pvselect(dbd->driver, r->pool, dbd->handle, res, stmt, 1, login, NULL);

    if (rv == 0) {
        return 0;
    }
    /* copied: the driver's message is overwritten by its next call */
    *why = apr_pstrdup(r->pool, apr_dbd_error(dbd->driver, dbd->handle, rv));
    if ((stmt = prepare_again(r, dbd, d)) != NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "PEGADM207: PegaDMCustomerIDQuery failed (%s); its statement was "
                      "prepared again on this database connection",
                      *why);
        *res = NULL;
        rv = apr_dbd_pvselect(dbd->driver, r->pool, dbd->handle, res, stmt, 1, login, NULL);
        if (rv) {
            *why = apr_pstrdup(r->pool, apr_dbd_error(dbd->driver, dbd->handle, rv));
        }
    }
    return rv;
}

/* The statement's answer for login. */
static pegadm_customer_status_t query_database(request_rec *r, const pegadm_dir_conf_t *d,
                                               const char *login, const char **value)
{
    APR_OPTIONAL_FN_TYPE(ap_dbd_acquire) *acquire = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_acquire);
    ap_dbd_t *dbd = acquire ? acquire(r) : NULL;
    apr_dbd_prepared_t *stmt;
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    const char *why = "reading the row";
    int rv, rows;

    stmt = dbd ? apr_hash_get(dbd->prepared, d->cid_query_label, APR_HASH_KEY_STRING) : NULL;
    if (!stmt) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "PEGADM201: PegaDMCustomerIDQuery: no database connection with the "
                      "statement prepared (see mod_dbd's messages); customer unknown for now");
        return PEGADM_CUSTOMER_UNAVAILABLE;
    }
    rv = select_customer(r, dbd, d, stmt, login, &res, &why);
    rows = rv ? -1 : apr_dbd_num_tuples(dbd->driver, res);
    if (rows < 0 || (rows > 0 && apr_dbd_get_row(dbd->driver, r->pool, res, &row, 1))) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "PEGADM202: PegaDMCustomerIDQuery failed: %s; customer unknown for now",
                      why);
        return PEGADM_CUSTOMER_UNAVAILABLE;
    }
    if (rows > 1) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "PEGADM203: PegaDMCustomerIDQuery gave %d rows for log-in '%s', "
                      "where one is needed; treated as not authenticated",
                      rows, ap_escape_logitem(r->pool, login));
        return PEGADM_CUSTOMER_NONE;
    }
    /* pgsql gives "" for NULL, sqlite3 NULL: either way, no customer ID */
    *value = rows ? apr_dbd_get_entry(dbd->driver, row, 0) : NULL;
    if (!*value || !**value) {
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                      "PEGADM204: PegaDMCustomerIDQuery has %s for log-in '%s'; treated as "
                      "not authenticated",
                      rows ? "a NULL or empty customer ID" : "no row",
                      ap_escape_logitem(r->pool, login));
        return PEGADM_CUSTOMER_NONE;
    }
    *value = apr_pstrdup(r->pool, *value);
    return PEGADM_CUSTOMER_OK;
}

/* ---- the bound on lookups waiting at once ----
 * apr_dbd gives a query no deadline: against a database that hangs, each
 * lookup holds its worker thread until the database answers. Past the
 * bound a lookup does not wait at all, so a hung database costs new
 * customers their chat and each child that many threads, never the
 * threads of static files, other pages and cached customers. */

void pegadm_dbd_child_init(apr_pool_t *p, server_rec *s)
{
    pegadm_server_conf_t *sc = ap_get_module_config(s->module_config, &pegadm_module);
    int n = pegadm_conf_cid_query_concurrency(sc), threads = 1;
    apr_status_t rv;

    sc->cid_query_gate = NULL;
    ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads);
    if (n == 0 || threads <= n) {
        return; /* no bound, or one no child can reach */
    }
    rv = pegadm_gate_create(p, (unsigned int)n, (unsigned int)threads, &sc->cid_query_gate);
    if (rv != APR_SUCCESS) {
        sc->cid_query_gate = NULL;
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s,
                     "PEGADM209: cannot bound this child's lookups waiting on the customer "
                     "database (PegaDMCustomerIDQueryConcurrency); they go unbounded");
    }
}

/* Logged at most once a minute per process: while the database hangs,
 * every new customer's request would repeat it. */
static void log_bound_reached(request_rec *r, pegadm_server_conf_t *sc)
{
    apr_uint32_t now = (apr_uint32_t)apr_time_sec(apr_time_now());
    apr_uint32_t last = apr_atomic_read32(&sc->cid_query_full_logged_at);

    if (now - last >= 60 &&
        apr_atomic_cas32(&sc->cid_query_full_logged_at, now, last) == last) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "PEGADM208: PegaDMCustomerIDQueryConcurrency %d requests of this child "
                      "already wait on the customer database; customer unknown for now, "
                      "without asking it (the database hangs or is slow)",
                      pegadm_conf_cid_query_concurrency(sc));
    }
}

static pegadm_customer_status_t bounded_query(request_rec *r, const pegadm_dir_conf_t *d,
                                              const char *login, const char **value)
{
    pegadm_server_conf_t *sc = ap_get_module_config(r->server->module_config, &pegadm_module);
    pegadm_gate_t *gate = sc->cid_query_gate;
    pegadm_customer_status_t st;

    if (gate && pegadm_gate_try_enter(gate) != APR_SUCCESS) {
        log_bound_reached(r, sc);
        return PEGADM_CUSTOMER_UNAVAILABLE;
    }
    st = query_database(r, d, login, value);
    if (gate) {
        pegadm_gate_leave(gate);
    }
    return st;
}

/* ---- the cache ----
 * Keyed by an HMAC of (query, server, database, widget, log-in name) under the scope's
 * secret and sealed with the cache id as associated data, so an entry
 * can neither be read nor moved to another key or widget. A cache that
 * fails is only an optimisation lost: the database answers instead. */

typedef struct {
    pegadm_server_conf_t *sc;
    unsigned char id[PEGADM_CACHE_ID_LEN];
} answer_key_t;

/* The answers of one query are scoped to the server asking and the
 * database it asks: two virtual hosts with the same SQL and widget but
 * customer databases of their own never share one (nor, so, a session). */
static int answer_key(request_rec *r, const pegadm_dir_conf_t *d, const char *login,
                      answer_key_t *key)
{
    const char *server = server_key(r->pool, r->server);
    const char *database;
    const char *purpose;

    key->sc = ap_get_module_config(r->server->module_config, &pegadm_module);
    database = key->sc->databases
                   ? apr_hash_get(key->sc->databases, server, APR_HASH_KEY_STRING)
                   : NULL;
    if (!database) {
        return 0; /* a server the start-up did not see: ask the database */
    }
    purpose = apr_pstrcat(r->pool, "customer-id ", d->cid_query_label, "\n", server, "\n",
                          database, NULL);
    return key->sc->mutex && d->secret &&
           pegadm_cache_id(&d->secret->keys, purpose, d->widget_id, login, key->id) ==
               APR_SUCCESS;
}

/* A cached answer, before sealing: kind (1 byte) | expiry (8, big-endian
 * microseconds) | the customer ID. Past its own expiry an answer is not
 * used, whatever the cache server keeps. */
#define ANSWER_HEADER 9

static int cached_answer(request_rec *r, const pegadm_dir_conf_t *d, const answer_key_t *key,
                         pegadm_customer_status_t *st, const char **value)
{
    unsigned char buf[ANSWER_HEADER + PEGADM_CUSTOMER_ID_MAX + PEGADM_SEAL_OVERHEAD];
    unsigned int len = sizeof(buf);
    unsigned char *plain;
    apr_size_t plain_len;
    const pegadm_store_t *store = pegadm_cache_store(r->pool, r->server);
    pegadm_store_key_t k = {key->id, sizeof(key->id), NULL, 0};
    apr_status_t rv;

    if (store->lock(store->ctx) != APR_SUCCESS) {
        return 0;
    }
    rv = store->get(store->ctx, &k, buf, &len, r->pool);
    store->unlock(store->ctx);
    if (rv != APR_SUCCESS ||
        pegadm_unseal(r->pool, &d->secret->keys, key->id, sizeof(key->id), buf, len, &plain,
                      &plain_len) != APR_SUCCESS ||
        plain_len < ANSWER_HEADER ||
        (apr_time_t)pegadm_get_be(plain + 1, 8) <= apr_time_now()) {
        return 0;
    }
    if (plain_len == ANSWER_HEADER && plain[0] == CACHED_NONE) {
        *st = PEGADM_CUSTOMER_NONE;
        return 1;
    }
    if (plain_len > ANSWER_HEADER && plain[0] == CACHED_FOUND) {
        *st = PEGADM_CUSTOMER_OK;
        *value = (const char *)plain + ANSWER_HEADER;
        return 1;
    }
    return 0;
}

static void remember_answer(request_rec *r, const pegadm_dir_conf_t *d, const answer_key_t *key,
                            pegadm_customer_status_t st, const char *value)
{
    apr_size_t value_len = st == PEGADM_CUSTOMER_OK ? strlen(value) : 0;
    apr_time_t expiry = apr_time_now() + d->cid_query_ttl;
    unsigned char plain[ANSWER_HEADER + PEGADM_CUSTOMER_ID_MAX];
    unsigned char *sealed;
    apr_size_t sealed_len;
    const pegadm_store_t *store = pegadm_cache_store(r->pool, r->server);
    pegadm_store_key_t k = {key->id, sizeof(key->id), NULL, 0};
    apr_status_t rv;

    if (value_len > PEGADM_CUSTOMER_ID_MAX) {
        return;
    }
    plain[0] = st == PEGADM_CUSTOMER_OK ? CACHED_FOUND : CACHED_NONE;
    pegadm_put_be(plain + 1, (apr_uint64_t)expiry, 8);
    memcpy(plain + ANSWER_HEADER, value_len ? value : "", value_len);
    if (pegadm_seal(r->pool, &d->secret->keys, key->id, sizeof(key->id), plain,
                    ANSWER_HEADER + value_len, &sealed, &sealed_len) != APR_SUCCESS ||
        store->lock(store->ctx) != APR_SUCCESS) {
        return;
    }
    rv = store->put(store->ctx, &k, expiry, sealed, (unsigned int)sealed_len, r->pool);
    store->unlock(store->ctx);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, rv, r,
                      "PEGADM205: could not cache the PegaDMCustomerIDQuery answer");
    }
}

static pegadm_customer_status_t pegadm_dbd_customer_id(request_rec *r,
                                                       const pegadm_dir_conf_t *d,
                                                       const char *login, const char **value)
{
    answer_key_t key;
    pegadm_customer_status_t st;
    int caching = d->cid_query_ttl > 0 && answer_key(r, d, login, &key);

    if (caching && cached_answer(r, d, &key, &st, value)) {
        return st;
    }
    st = bounded_query(r, d, login, value);
    if (caching && st != PEGADM_CUSTOMER_UNAVAILABLE) {
        remember_answer(r, d, &key, st, *value);
    }
    return st;
}
