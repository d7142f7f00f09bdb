/* The session op of a request: the session flow (pegadm_session.c) run
 * over the cache's store (mod_pegadm_cache.c) for a customer already known
 * (mod_pegadm_customer.c), with the create it calls on a miss: the
 * upstream calls with the request's private data, behind the circuit
 * breaker. The answer to the browser is the handlers' and eager mode's. */
#include "mod_pegadm.h"

#include <string.h>

#include <apr_atomic.h>
#include <apr_strings.h>

#include "mod_pegadm_ops.h"

APLOG_USE_MODULE(pegadm);

static pegadm_server_conf_t *server_conf(server_rec *s)
{
    return ap_get_module_config(s->module_config, &pegadm_module);
}

/* ---- the upstream create ---- */

typedef struct {
    request_rec *r;
    const pegadm_dir_conf_t *d;
    const char *customer_id;
    /* for the circuit breaker around the create (guarded_create) */
    const pegadm_store_t *store;
    pegadm_dm_status_t dm_status; /* of the last attempt */
    long answered;                /* its HTTP status (0: no answer) */
    json_t *payload;              /* the private data, evaluated once per request */
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
    json_t *payload = b->payload ? json_incref(b->payload) : private_data_payload(b, why);
    apr_time_t started;

    if (!payload) {
        pegadm_count_call(b->r, b->d, PEGADM_UPSTREAM_CREATE, PEGADM_CALL_INTERNAL, 0);
        return APR_EGENERAL;
    }
    pegadm_conf_dm_target(p, b->d, &target);
    target.http.handles = server_conf(b->r->server)->http_handles;
    target.answered = &b->answered;
    st = pegadm_rotation_create(b->r, b->d, &target, b->customer_id, sid, why);
    if (st == PEGADM_DM_OK) {
        started = apr_time_now();
        st = pegadm_dm_push_private_data(p, &target, *sid, payload, started, why);
        pegadm_observe_call(b->r, b->d, PEGADM_UPSTREAM_PRIVATE_DATA, st, b->customer_id, *sid,
                            started);
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

/* Private data follows the identity: call 2 again, to the session handed
 * out, with this request's private data (pegadm_session.c decides when). */
static apr_status_t push_upstream(void *baton, apr_pool_t *p, const char *sid, const char **why)
{
    create_baton_t *b = baton;
    pegadm_dm_target_t target;
    apr_time_t started = apr_time_now();
    pegadm_dm_status_t st;

    pegadm_conf_dm_target(p, b->d, &target);
    target.http.handles = server_conf(b->r->server)->http_handles;
    pegadm_rotation_use_accepted(b->r, b->d, &target);
    st = pegadm_dm_push_private_data(p, &target, sid, b->payload, started, why);
    pegadm_observe_call(b->r, b->d, PEGADM_UPSTREAM_PRIVATE_DATA, st, b->customer_id, sid,
                        started);
    return st == PEGADM_DM_OK ? APR_SUCCESS : APR_EGENERAL;
}

/* With PegaDMPrivateData fields and re-pushing on, the payload is
 * evaluated for every request handing out a session, and its keyed digest
 * compared with that of the data last pushed. Without fields it is the
 * customer ID, which the cache key already fixes: nothing to compare. */
static const unsigned char *private_data_digest(create_baton_t *b, apr_pool_t *p)
{
    unsigned char mac[PEGADM_CACHE_ID_LEN];
    const char *why = NULL;
    char *text;
    apr_status_t rv;

    if (!b->d->private_data || pegadm_conf_private_data_refresh(b->d) == 0) {
        return NULL;
    }
    b->payload = private_data_payload(b, &why);
    if (!b->payload) {
        return NULL; /* a create reports the failing expression */
    }
    text = json_dumps(b->payload, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text) {
        return NULL;
    }
    rv = pegadm_cache_id(&b->d->secret->keys, "private-data", b->d->widget_id, text, mac);
    free(text);
    return rv == APR_SUCCESS ? apr_pmemdup(p, mac, PEGADM_DATA_DIGEST_LEN) : NULL;
}

static void log_push(request_rec *r, const pegadm_dir_conf_t *d,
                     const pegadm_session_result_t *res)
{
    if (res->pushed) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "PEGADM503: the private data changed; pushed it again to the "
                      "customer's chat session");
    } else if (res->push_failed) {
        /* every request of the window would repeat it: once per failing streak */
        ap_log_rerror(APLOG_MARK, res->push_failed_before ? APLOG_DEBUG : APLOG_WARNING, 0, r,
                      "PEGADM504: pushing changed private data to the chat session failed: "
                      "%s; the session keeps the older data, tried again in %" APR_TIME_T_FMT
                      "s (PegaDMPrivateDataRefresh)",
                      res->why, apr_time_sec(pegadm_conf_private_data_refresh(d)));
    }
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

/* The create, unless the breaker is open. Only failures that say the
 * service is down for everyone are counted (pegadm_breaker_says_down): one
 * customer's 4xx is his, counted and audited as his call's outcome, and
 * failures of our own making (a private-data expression) say nothing. A store that cannot be
 * read lets the call through: the session flow reports the store itself. */
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
        pegadm_observe_refusal(b->r, b->d, "breaker_open", b->customer_id);
        *held_until = pegadm_breaker_reopens(&record, &ref.conf, now);
        *why = apr_pstrcat(p, "circuit breaker open: not calling ", ref.service_url, NULL);
        return APR_EGENERAL;
    }
    b->dm_status = PEGADM_DM_INTERNAL;
    b->answered = 0;
    rv = create_upstream(b, p, sid, why);
    if (rv == APR_SUCCESS || b->dm_status != PEGADM_DM_INTERNAL) {
        pegadm_breaker_leave(p, &ref, verdict,
                             rv == APR_SUCCESS ||
                                 !pegadm_breaker_says_down(b->dm_status, b->answered),
                             apr_time_now(), &change, NULL);
        log_breaker_change(b->r, &ref, change);
        pegadm_observe_breaker(b->r, b->d, change);
    }
    return rv;
}

pegadm_session_status_t pegadm_session_op(request_rec *r, const pegadm_dir_conf_t *d,
                                          const char *customer_id, pegadm_op_t op,
                                          const char *trigger, pegadm_session_result_t *res)
{
    pegadm_server_conf_t *sc = server_conf(r->server);
    const pegadm_store_t *store = pegadm_cache_store(r->pool, r->server);
    create_baton_t baton = {r, d, customer_id, store, PEGADM_DM_INTERNAL, 0, NULL};
    pegadm_session_req_t req;
    pegadm_session_status_t st;

    memset(&req, 0, sizeof(req));
    req.store = store;
    req.mark = sc->create_mark;
    req.local = sc->localcache;
    req.read_unlocked = pegadm_localcache_read_unlocked(sc);
    req.read_gate = sc->read_gate;
    req.keys = &d->secret->keys;
    req.keys_previous = d->secret_next ? &d->secret_next->keys : NULL;
    req.widget_id = d->widget_id;
    req.customer_id = customer_id;
    req.ttl = pegadm_conf_cache_ttl(d);
    /* two sequential calls, each bounded by the timeout, plus slack */
    req.wait_max = 2 * pegadm_conf_timeout(d) + apr_time_from_sec(1);
    pegadm_conf_create_limit(d, &req.create_limit, &req.create_window);
    req.create = guarded_create;
    req.create_baton = &baton;
    req.waiters = sc->waiters;
    req.waiters_max = pegadm_conf_create_waiters(d, sc->threads);
    if (op != PEGADM_OP_FORGET && op != PEGADM_OP_LAST_FORGET) {
        req.data_digest = private_data_digest(&baton, r->pool);
        req.refresh = pegadm_conf_private_data_refresh(d);
        req.push = push_upstream;
        req.push_baton = &baton;
    }
    req.for_page = op == PEGADM_OP_PAGE;

    if (op == PEGADM_OP_RENEW && trigger) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "PEGADM034: fresh session requested with proactive trigger '%s'",
                      ap_escape_logitem(r->pool, trigger));
    }
    st = op == PEGADM_OP_RENEW         ? pegadm_session_renew(r->pool, &req, res)
         : op == PEGADM_OP_FORGET      ? pegadm_session_forget(r->pool, &req, res)
         : op == PEGADM_OP_LAST_FORGET ? pegadm_session_last_forget(r->pool, &req, res)
                                       : pegadm_session_get(r->pool, &req, res);
    if (baton.payload) {
        json_decref(baton.payload);
    }
    pegadm_observe_session_op(r, d, op, st, res, customer_id);
    if (res->discarded) {
        ap_log_rerror(
            APLOG_MARK, APLOG_WARNING, 0, r,
            "PEGADM035: discarded %d session cache entries that failed authentication "
            "(tampered, or written under another secret)",
            res->discarded);
    }
    if (st == PEGADM_SESSION_OK &&
        (op == PEGADM_OP_GET || op == PEGADM_OP_PAGE || op == PEGADM_OP_RENEW)) {
        pegadm_logout_cookie_set(r, d, customer_id, res->created);
    }
    switch (st) {
    case PEGADM_SESSION_STORE:
        pegadm_cache_log_failure(r, res->why);
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
        if (res->local) {
            ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                          "PEGADM820: the session came from this child's local cache");
        }
        log_push(r, d, res);
        break;
    }
    return st;
}
