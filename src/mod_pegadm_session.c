/* The Apache side of sessions: httpd's socache and a global mutex as the
 * store, the upstream create with the request's private data, and the
 * customer ID of a request. */
#include "mod_pegadm.h"

#include <string.h>

#include <apr_atomic.h>
#include <apr_strings.h>
#include <http_protocol.h>
#include <http_request.h>
#include <util_mutex.h>

#include "pegadm_identity.h"
#include "pegadm_shmcb.h"

APLOG_USE_MODULE(pegadm);

/* socache_memcache and socache_redis take at most 16 bytes of namespace */
#define CACHE_NAMESPACE "mod_pegadm"

static pegadm_server_conf_t *server_conf(server_rec *s)
{
    return ap_get_module_config(s->module_config, &pegadm_module);
}

static apr_status_t destroy_cache(void *data)
{
    server_rec *s = data;
    pegadm_server_conf_t *sc = server_conf(s);
    if (sc->cache) {
        sc->cache_provider->destroy(sc->cache, s);
        sc->cache = NULL;
    }
    return APR_SUCCESS;
}

apr_status_t pegadm_cache_check_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s)
{
    pegadm_server_conf_t *sc = server_conf(s);
    const char *err;

    if (sc->cache_provider) {
        return pegadm_cache_check_size(pconf, ptemp, s);
    }
    sc->cache_provider =
        ap_lookup_provider(AP_SOCACHE_PROVIDER_GROUP, "shmcb", AP_SOCACHE_PROVIDER_VERSION);
    if (!sc->cache_provider) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_CRIT, 0, NULL,
                     "PEGADM020: the session cache needs mod_socache_shmcb loaded "
                     "(or PegaDMCache naming a loaded socache provider)");
        return APR_EGENERAL;
    }
    sc->cache_provider_name = "shmcb";
    sc->cache_args = pegadm_cache_default_args(pconf, s);
    err = sc->cache_provider->create(&sc->cache, sc->cache_args, ptemp, pconf);
    if (err) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_CRIT, 0, NULL,
                     "PEGADM021: creating the shmcb session cache failed: %s", err);
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

apr_status_t pegadm_cache_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s)
{
    pegadm_server_conf_t *sc = server_conf(s);
    struct ap_socache_hints hints = {PEGADM_SHMCB_HINT_ID_LEN, PEGADM_SHMCB_HINT_OBJ_SIZE, 60};
    apr_status_t rv;

    rv = ap_global_mutex_create(&sc->mutex, NULL, PEGADM_MUTEX_TYPE, NULL, s, pconf, 0);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = sc->cache_provider->init(sc->cache, CACHE_NAMESPACE, &hints, s, pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "PEGADM022: initialising the %s session cache failed",
                     sc->cache_provider_name);
        return rv;
    }
    apr_pool_cleanup_register(pconf, s, destroy_cache, apr_pool_cleanup_null);
    pegadm_cache_log_size(s);
    return APR_SUCCESS;
}

void pegadm_cache_child_init(apr_pool_t *p, server_rec *s)
{
    pegadm_server_conf_t *sc = server_conf(s);
    apr_status_t rv;

    if (!sc->mutex) {
        return;
    }
    rv = apr_global_mutex_child_init(&sc->mutex, apr_global_mutex_lockfile(sc->mutex), p);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "PEGADM023: attaching to the session cache mutex failed");
    }
}

/* ---- pegadm_store_t over socache ---- */

typedef struct {
    pegadm_server_conf_t *sc;
    server_rec *s;
} store_ctx_t;

static apr_status_t store_lock(void *ctx)
{
    return apr_global_mutex_lock(((store_ctx_t *)ctx)->sc->mutex);
}

static apr_status_t store_unlock(void *ctx)
{
    return apr_global_mutex_unlock(((store_ctx_t *)ctx)->sc->mutex);
}

/* A cache server that fails is held for dead by apr_memcache and apr_redis
 * for 5 seconds, during which they answer "not found" without asking it
 * (their retry, a ping, fails silently too). Such an answer is no miss: a
 * "not found" counts only once this process has seen no cache failure
 * for longer than that; before, the cache counts as unreachable. */
#define CACHE_DEAD_SECONDS 7

static apr_status_t note_cache_result(store_ctx_t *c, apr_status_t rv)
{
    apr_uint32_t now = (apr_uint32_t)apr_time_sec(apr_time_now());

    if (rv != APR_SUCCESS && rv != APR_NOTFOUND) {
        apr_atomic_set32(&c->sc->cache_failed_at, now);
    } else if (rv == APR_NOTFOUND &&
               now - apr_atomic_read32(&c->sc->cache_failed_at) < CACHE_DEAD_SECONDS) {
        return APR_ECONNREFUSED;
    }
    return rv;
}

/* A value the provider cannot hand over (larger than any entry, a Redis
 * key of another type) is no outage if the server still answers: removing
 * it succeeds. It is then discarded like a tampered entry (an empty value
 * fails authentication), instead of holding the cache for down. */
static apr_status_t store_get(void *ctx, const unsigned char *id, unsigned int id_len,
                              unsigned char *buf, unsigned int *len, apr_pool_t *p)
{
    store_ctx_t *c = ctx;
    apr_status_t rv =
        c->sc->cache_provider->retrieve(c->sc->cache, c->s, id, id_len, buf, len, p);
    apr_status_t removed;

    if (rv != APR_SUCCESS && rv != APR_NOTFOUND) {
        removed = c->sc->cache_provider->remove(c->sc->cache, c->s, id, id_len, p);
        if (removed == APR_SUCCESS || removed == APR_NOTFOUND) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, rv, c->s,
                         "PEGADM706: removed a session cache entry that could not be read "
                         "(too large, or not written by mod_pegadm)");
            *len = 0;
            return APR_SUCCESS;
        }
    }
    return note_cache_result(c, rv);
}

/* A store never answers "not found" but for a server held for dead. */
static apr_status_t store_put(void *ctx, const unsigned char *id, unsigned int id_len,
                              apr_time_t expiry, const unsigned char *val, unsigned int len,
                              apr_pool_t *p)
{
    store_ctx_t *c = ctx;
    apr_status_t rv = c->sc->cache_provider->store(c->sc->cache, c->s, id, id_len, expiry,
                                                   (unsigned char *)val, len, p);
    return note_cache_result(c, rv == APR_NOTFOUND ? APR_ECONNREFUSED : rv);
}

static apr_status_t store_del(void *ctx, const unsigned char *id, unsigned int id_len,
                              apr_pool_t *p)
{
    store_ctx_t *c = ctx;
    return note_cache_result(c,
                             c->sc->cache_provider->remove(c->sc->cache, c->s, id, id_len, p));
}

/* ---- the upstream create ---- */

typedef struct {
    request_rec *r;
    const pegadm_dir_conf_t *d;
    const char *customer_id;
    /* for the circuit breaker around the create (guarded_create) */
    const pegadm_store_t *store;
    pegadm_dm_status_t dm_status; /* of the last attempt */
} create_baton_t;

/* A field whose value does not convert to its type is left out: the chat
 * goes ahead with what is known. Every create of the scope would repeat
 * the warning, so it is given once per field and process. */
static void log_field_left_out(request_rec *r, pegadm_field_t *f, const char *why)
{
    int first = apr_atomic_cas32(&f->failure_logged, 1, 0) == 0;

    ap_log_rerror(APLOG_MARK, first ? APLOG_WARNING : APLOG_DEBUG, 0, r,
                  "PEGADM206: PegaDMPrivateData %s: the value is %s (%s expected); the field "
                  "is left out of the private data%s",
                  f->key, why, pegadm_field_type_name(f->type),
                  first ? " (repeats are logged at debug level)" : "");
}

/* The private-data payload: {"customerId": id} unless PegaDMPrivateData
 * fields are configured, then those whose value is present and converts.
 * NULL with *why if an expression fails. */
static json_t *private_data_payload(const create_baton_t *b, const char **why)
{
    json_t *obj = json_object();
    const apr_array_header_t *fields = b->d->private_data;

    if (!fields) {
        json_object_set_new(obj, "customerId", json_string(b->customer_id));
        return obj;
    }
    for (int i = 0; i < fields->nelts; i++) {
        pegadm_field_t *f = &APR_ARRAY_IDX(fields, i, pegadm_field_t);
        const char *err = NULL, *bad = NULL;
        const char *value = ap_expr_str_exec(b->r, f->expr, &err);
        json_t *jv = NULL;

        if (err) {
            *why = apr_psprintf(b->r->pool, "PegaDMPrivateData %s: %s", f->key, err);
            json_decref(obj);
            return NULL;
        }
        value = value ? value : "";
        switch (pegadm_field_value(f->type, value, strlen(value), &jv, &bad)) {
        case PEGADM_FIELD_OK:
            json_object_set_new(obj, f->key, jv);
            break;
        case PEGADM_FIELD_INVALID:
            log_field_left_out(b->r, f, bad);
            break;
        default: /* a typed value that is absent */
            break;
        }
    }
    return obj;
}

static apr_status_t create_upstream(void *baton, apr_pool_t *p, const char **sid,
                                    const char **why)
{
    create_baton_t *b = baton;
    pegadm_dm_target_t target;
    pegadm_dm_status_t st;
    json_t *payload = private_data_payload(b, why);

    if (!payload) {
        return APR_EGENERAL;
    }
    pegadm_conf_dm_target(p, b->d, &target);
    target.http.handles = server_conf(b->r->server)->http_handles;
    st = pegadm_dm_create_session(p, &target, b->customer_id, apr_time_now(), sid, why);
    if (st == PEGADM_DM_OK) {
        st = pegadm_dm_push_private_data(p, &target, *sid, payload, apr_time_now(), why);
        if (st != PEGADM_DM_OK) {
            *why = apr_pstrcat(p, "private data: ", *why, NULL);
        }
    } else {
        *why = apr_pstrcat(p, "create: ", *why, NULL);
    }
    json_decref(payload);
    b->dm_status = st;
    if (st != PEGADM_DM_OK) {
        return APR_EGENERAL;
    }
    ap_log_rerror(
        APLOG_MARK, APLOG_DEBUG, 0, b->r,
        "PEGADM030: created a chat session and sent its private data for customer '%s'",
        ap_escape_logitem(p, b->customer_id));
    return APR_SUCCESS;
}

/* ---- the circuit breaker around the create ----
 * Its record lives in the session cache, sealed like the sessions: every
 * child process, and with a shared cache every node, sees one breaker per
 * (widget, service), and the healthy path only reads it. */

static void log_breaker_change(request_rec *r, const pegadm_breaker_ref_t *ref,
                               pegadm_breaker_change_t change)
{
    int cooldown = (int)apr_time_sec(ref->conf.cooldown);

    if (change == PEGADM_BREAKER_OPENED) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "PEGADM300: circuit breaker opened: %d consecutive failures of %s "
                      "(widget %s); no calls for %ds (PegaDMBreakerCooldown), then one probe",
                      ref->conf.threshold, ref->service_url, ref->widget_id, cooldown);
    } else if (change == PEGADM_BREAKER_REOPENED) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "PEGADM301: circuit breaker re-opened: the probe of %s (widget %s) "
                      "failed; no calls for another %ds",
                      ref->service_url, ref->widget_id, cooldown);
    } else if (change == PEGADM_BREAKER_RECLOSED) {
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                      "PEGADM302: circuit breaker closed: %s (widget %s) answered the probe",
                      ref->service_url, ref->widget_id);
    }
}

/* The create, unless the breaker is open. Failures of our own making
 * (PEGADM_DM_INTERNAL, a private-data expression) say nothing about the
 * service and are not counted. A store that cannot be read lets the call
 * through: the session flow reports the store itself. */
static apr_status_t guarded_create(void *baton, apr_pool_t *p, const char **sid,
                                   const char **why, apr_time_t *held_until)
{
    create_baton_t *b = baton;
    pegadm_breaker_ref_t ref;
    pegadm_breaker_t record;
    pegadm_breaker_verdict_t verdict;
    pegadm_breaker_change_t change;
    apr_time_t now = apr_time_now();
    apr_status_t rv;

    ref.store = b->store;
    ref.keys = &b->d->secret->keys;
    ref.widget_id = b->d->widget_id;
    ref.service_url = pegadm_conf_service_url(b->d);
    pegadm_conf_breaker(b->d, &ref.conf);
    pegadm_breaker_enter(p, &ref, now, &verdict, &record);
    if (verdict == PEGADM_BREAKER_REJECT) {
        *held_until = pegadm_breaker_reopens(&record, &ref.conf, now);
        *why = apr_pstrcat(p, "circuit breaker open: not calling ", ref.service_url, NULL);
        return APR_EGENERAL;
    }
    b->dm_status = PEGADM_DM_INTERNAL;
    rv = create_upstream(b, p, sid, why);
    if (rv == APR_SUCCESS || b->dm_status != PEGADM_DM_INTERNAL) {
        pegadm_breaker_leave(p, &ref, verdict, rv == APR_SUCCESS, apr_time_now(), &change,
                             NULL);
        log_breaker_change(b->r, &ref, change);
    }
    return rv;
}

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

/* The cache's own trouble is logged at most once a minute per process:
 * every request would otherwise repeat it. */
static void log_store_failure(request_rec *r, pegadm_server_conf_t *sc, const char *why)
{
    apr_uint32_t now = (apr_uint32_t)apr_time_sec(apr_time_now());
    apr_uint32_t last = apr_atomic_read32(&sc->cache_error_logged_at);

    if (now - last >= 60 && apr_atomic_cas32(&sc->cache_error_logged_at, now, last) == last) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "PEGADM033: %s (%s); answering as if the service were unavailable", why,
                      sc->cache_provider_name);
    }
}

pegadm_session_status_t pegadm_session_op(request_rec *r, const pegadm_dir_conf_t *d,
                                          const char *customer_id, pegadm_op_t op,
                                          const char *trigger, pegadm_session_result_t *res)
{
    pegadm_server_conf_t *sc = server_conf(r->server);
    store_ctx_t ctx = {sc, r->server};
    pegadm_store_t store = {&ctx, store_lock, store_unlock, store_get, store_put, store_del};
    create_baton_t baton = {r, d, customer_id, &store, PEGADM_DM_INTERNAL};
    pegadm_session_req_t req;
    pegadm_session_status_t st;

    memset(&req, 0, sizeof(req));
    req.store = &store;
    req.keys = &d->secret->keys;
    req.widget_id = d->widget_id;
    req.customer_id = customer_id;
    req.ttl = pegadm_conf_cache_ttl(d);
    /* two sequential calls, each bounded by the timeout, plus slack */
    req.wait_max = 2 * pegadm_conf_timeout(d) + apr_time_from_sec(1);
    pegadm_conf_create_limit(d, &req.create_limit, &req.create_window);
    req.create = guarded_create;
    req.create_baton = &baton;
    req.waiters = sc->waiters;
    req.waiters_max = pegadm_conf_create_waiters(d);

    if (op == PEGADM_OP_RENEW && trigger) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "PEGADM034: fresh session requested with proactive trigger '%s'",
                      ap_escape_logitem(r->pool, trigger));
    }
    st = op == PEGADM_OP_GET     ? pegadm_session_get(r->pool, &req, res)
         : op == PEGADM_OP_RENEW ? pegadm_session_renew(r->pool, &req, res)
                                 : pegadm_session_forget(r->pool, &req, res);
    if (res->discarded) {
        ap_log_rerror(
            APLOG_MARK, APLOG_WARNING, 0, r,
            "PEGADM035: discarded %d session cache entries that failed authentication "
            "(tampered, or written under another secret)",
            res->discarded);
    }
    switch (st) {
    case PEGADM_SESSION_STORE:
        log_store_failure(r, sc, res->why);
        break;
    case PEGADM_SESSION_UPSTREAM:
        /* An open breaker was logged when it opened: its fast 503s, this
         * request's or those of the concurrent one it waited for, are not. */
        ap_log_rerror(APLOG_MARK, res->refused ? APLOG_DEBUG : APLOG_ERR, 0, r,
                      "PEGADM036: chat session unavailable: %s", res->why);
        break;
    case PEGADM_SESSION_RATE_LIMITED:
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                      "PEGADM037: customer exceeded PegaDMCreateLimit; fresh session refused");
        break;
    default:
        break;
    }
    return st;
}
