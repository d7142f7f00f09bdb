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

APLOG_USE_MODULE(pegadm);

#define CACHE_NAMESPACE "mod_pegadm-sessions"

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
        return APR_SUCCESS;
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
    err = sc->cache_provider->create(&sc->cache, NULL, ptemp, pconf);
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
    struct ap_socache_hints hints = {PEGADM_CACHE_ID_LEN, 80, 60};
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

static apr_status_t store_get(void *ctx, const unsigned char *id, unsigned int id_len,
                              unsigned char *buf, unsigned int *len, apr_pool_t *p)
{
    store_ctx_t *c = ctx;
    return c->sc->cache_provider->retrieve(c->sc->cache, c->s, id, id_len, buf, len, p);
}

static apr_status_t store_put(void *ctx, const unsigned char *id, unsigned int id_len,
                              apr_time_t expiry, const unsigned char *val, unsigned int len,
                              apr_pool_t *p)
{
    store_ctx_t *c = ctx;
    return c->sc->cache_provider->store(c->sc->cache, c->s, id, id_len, expiry,
                                        (unsigned char *)val, len, p);
}

static apr_status_t store_del(void *ctx, const unsigned char *id, unsigned int id_len,
                              apr_pool_t *p)
{
    store_ctx_t *c = ctx;
    return c->sc->cache_provider->remove(c->sc->cache, c->s, id, id_len, p);
}

/* ---- the upstream create ---- */

typedef struct {
    request_rec *r;
    const pegadm_dir_conf_t *d;
    const char *customer_id;
} create_baton_t;

/* The private-data payload: {"customerId": id} unless PegaDMPrivateData
 * fields are configured, then exactly those. NULL with *why on failure. */
static json_t *private_data_payload(const create_baton_t *b, const char **why)
{
    json_t *obj = json_object();
    const apr_array_header_t *fields = b->d->private_data;

    if (!fields) {
        json_object_set_new(obj, "customerId", json_string(b->customer_id));
        return obj;
    }
    for (int i = 0; i < fields->nelts; i++) {
        const pegadm_field_t *f = &APR_ARRAY_IDX(fields, i, pegadm_field_t);
        const char *err = NULL;
        const char *value = ap_expr_str_exec(b->r, f->expr, &err);
        json_t *jv = err ? NULL : json_string(value ? value : "");
        if (!jv) {
            *why = apr_psprintf(b->r->pool, "PegaDMPrivateData %s: %s", f->key,
                                err ? err : "the value is not valid UTF-8");
            json_decref(obj);
            return NULL;
        }
        json_object_set_new(obj, f->key, jv);
    }
    return obj;
}

static apr_status_t create_upstream(void *baton, apr_pool_t *p, const char **sid,
                                    const char **why)
{
    const create_baton_t *b = baton;
    pegadm_dm_target_t target;
    pegadm_dm_status_t st;
    json_t *payload = private_data_payload(b, why);

    if (!payload) {
        return APR_EGENERAL;
    }
    pegadm_conf_dm_target(p, b->d, &target);
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
    if (st != PEGADM_DM_OK) {
        return APR_EGENERAL;
    }
    ap_log_rerror(
        APLOG_MARK, APLOG_DEBUG, 0, b->r,
        "PEGADM030: created a chat session and sent its private data for customer '%s'",
        ap_escape_logitem(p, b->customer_id));
    return APR_SUCCESS;
}

const char *pegadm_customer_id(request_rec *r, const pegadm_dir_conf_t *d)
{
    const char *id = r->user, *err = NULL;
    pegadm_id_check_t check;

    if (d->customer_id) {
        id = ap_expr_str_exec(r, d->customer_id, &err);
        if (err) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          "PEGADM031: PegaDMCustomerID: evaluating the expression failed: %s",
                          err);
            return NULL;
        }
    }
    if (!id) {
        return NULL;
    }
    check = pegadm_customer_id_check(id, strlen(id));
    if (check == PEGADM_ID_OK) {
        return id;
    }
    if (check != PEGADM_ID_EMPTY) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "PEGADM032: refusing customer ID (%" APR_SIZE_T_FMT
                      " bytes): %s; treated as "
                      "not authenticated",
                      strlen(id), pegadm_id_check_reason(check));
    }
    return NULL;
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
    create_baton_t baton = {r, d, customer_id};
    pegadm_dm_target_t target;
    pegadm_session_req_t req;
    pegadm_session_status_t st;

    pegadm_conf_dm_target(r->pool, d, &target);
    memset(&req, 0, sizeof(req));
    req.store = &store;
    req.keys = &d->secret->keys;
    req.widget_id = d->widget_id;
    req.customer_id = customer_id;
    req.ttl = pegadm_conf_cache_ttl(d);
    /* two sequential calls, each bounded by the timeout, plus slack */
    req.wait_max = 2 * target.http.timeout + apr_time_from_sec(1);
    req.create_limit = d->create_limit > 0 ? d->create_limit : 10;
    req.create_window = d->create_limit > 0 ? d->create_window : apr_time_from_sec(60);
    req.create = create_upstream;
    req.create_baton = &baton;

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
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "PEGADM036: chat session unavailable: %s",
                      res->why);
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
