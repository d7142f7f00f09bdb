/* The session call of a request: the session flow (pegadm_session.c) run
 * over the cache's store (mod_pegadm_cache.c) for a customer already known
 * (mod_pegadm_identity.c), with the create it calls on a miss: the
 * upstream calls with the request's private data, behind the circuit
 * breaker, signed with the secret the service accepts. The answer to the
 * browser is the handlers' and eager mode's.
 *
 * Rotating the Web Messaging connection's JWT secret without downtime:
 * with PegaDMJWTSecretNext set, a create goes out signed with whichever of
 * the two secrets the service last accepted (remembered in shared memory,
 * so every child process knows); a refused token (401 or 403) is tried once
 * more with the other secret. Once the service has accepted one of them, a
 * refusal is most likely one customer's own (his ID, his data), not a
 * switch: the other secret is then tried at most once per OTHER_RECHECK per
 * process, which still finds a later switch within that time and never
 * doubles one customer's calls. The process that sees the service switch
 * logs it, once. Sealing and naming cache entries never depend on the secret in
 * use: they use PegaDMJWTSecret's keys (see pegadm_session_call_t's
 * keys_previous for a swap of the two). */
#include "mod_pegadm.h"
#include "mod_pegadm_operator.h"

#include <string.h>

#include <apr_atomic.h>
#include <apr_strings.h>

APLOG_USE_MODULE(pegadm);

/* Call 1 signed with the secret the service accepts; a refused token is
 * tried with the other configured secret (see OTHER_RECHECK). t is left
 * holding the secret of the last attempt (the one to sign call 2 with);
 * *answered receives the HTTP status of the last answer (0: none). */
static pegadm_dm_status_t pegadm_rotation_create(request_rec *r, const pegadm_dir_conf_t *d,
                                                 pegadm_dm_target_t *t, const char *customer_id,
                                                 const char **sid, long *answered,
                                                 const char **why);

/* Sets t to sign with the secret the service last accepted (a call to an
 * existing session: private data pushed again). */
static void pegadm_rotation_use_accepted(request_rec *r, const pegadm_dir_conf_t *d,
                                         pegadm_dm_target_t *t);

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
    st = pegadm_rotation_create(b->r, b->d, &target, b->customer_id, sid, &b->answered, why);
    if (st == PEGADM_DM_OK) {
        started = apr_time_now();
        st = pegadm_dm_push_private_data(p, &target, *sid, payload, started, &b->answered, why);
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
    st = pegadm_dm_push_private_data(p, &target, sid, b->payload, started, NULL, why);
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
    pegadm_session_call_t call;
    pegadm_session_status_t st;

    memset(&call, 0, sizeof(call));
    call.store = store;
    call.mark = sc->create_lock;
    call.local = sc->localcache;
    call.read_unlocked = pegadm_localcache_read_unlocked(sc);
    call.read_gate = sc->read_gate;
    call.keys = &d->secret->keys;
    call.keys_previous = d->secret_next ? &d->secret_next->keys : NULL;
    call.widget_id = d->widget_id;
    call.customer_id = customer_id;
    call.ttl = pegadm_conf_cache_ttl(d);
    /* two sequential calls, each bounded by the timeout, plus slack */
    call.wait_max = 2 * pegadm_conf_timeout(d) + apr_time_from_sec(1);
    pegadm_conf_create_limit(d, &call.create_limit, &call.create_window);
    call.create = guarded_create;
    call.create_baton = &baton;
    call.waiters = sc->waiters;
    call.waiters_max = pegadm_conf_create_waiters(d, sc->threads);
    if (op != PEGADM_OP_FORGET && op != PEGADM_OP_LAST_FORGET) {
        call.data_digest = private_data_digest(&baton, r->pool);
        call.refresh = pegadm_conf_private_data_refresh(d);
        call.push = push_upstream;
        call.push_baton = &baton;
    }
    call.for_page = op == PEGADM_OP_PAGE;

    if (op == PEGADM_OP_RENEW && trigger) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "PEGADM034: fresh session requested with proactive trigger '%s'",
                      ap_escape_logitem(r->pool, trigger));
    }
    st = op == PEGADM_OP_RENEW         ? pegadm_session_renew(r->pool, &call, res)
         : op == PEGADM_OP_FORGET      ? pegadm_session_forget(r->pool, &call, res)
         : op == PEGADM_OP_LAST_FORGET ? pegadm_session_last_forget(r->pool, &call, res)
                                       : pegadm_session_get(r->pool, &call, res);
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
    switch (st) {
    case PEGADM_SESSION_STORE:
        pegadm_cache_log_failure(r, res->why);
        /* the audit line names why: cache_timeout, cache_tls, cache_auth... */
        pegadm_audit(
            r, d, "refusal",
            apr_pstrcat(r->pool, "cache_", pegadm_cache_err_name(res->store_status), NULL),
            customer_id, NULL, 0);
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

/* A fingerprint of a secret for the shared cell; never 0 (unknown). */
static apr_uint32_t fingerprint(const pegadm_secret_t *secret, const char *widget_id)
{
    unsigned char mac[PEGADM_CACHE_ID_LEN];
    if (pegadm_cache_id(&secret->keys, "secret fingerprint", widget_id, "", mac) !=
        APR_SUCCESS) {
        return 1;
    }
    return ((apr_uint32_t)mac[0] << 24 | (apr_uint32_t)mac[1] << 16 |
            (apr_uint32_t)mac[2] << 8 | mac[3]) |
           1u;
}

static void use_secret(pegadm_dm_target_t *t, const pegadm_secret_t *secret)
{
    t->secret = secret->bytes;
    t->secret_len = secret->len;
}

static int token_refused(pegadm_dm_status_t st, long answered)
{
    return st == PEGADM_DM_HTTP_STATUS && (answered == 401 || answered == 403);
}

static void remember(request_rec *r, const pegadm_dir_conf_t *d, pegadm_metrics_t *m,
                     int widget, int next)
{
    const pegadm_secret_t *accepted = next ? d->secret_next : d->secret;
    apr_uint32_t fp = fingerprint(accepted, d->widget_id);

    if (pegadm_metrics_set_accepted_secret(m, widget, fp, next) == fp) {
        return; /* another process saw it first and said so */
    }
    if (next) {
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                      "PEGADM620: widget %s: the service refused a token signed with "
                      "PegaDMJWTSecret and accepted PegaDMJWTSecretNext; the next secret is "
                      "in use now (swap the two in the configuration when convenient)",
                      d->widget_id);
    } else {
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                      "PEGADM621: widget %s: the service refused a token signed with "
                      "PegaDMJWTSecretNext and accepted PegaDMJWTSecret; PegaDMJWTSecret is "
                      "in use now",
                      d->widget_id);
    }
}

static void pegadm_rotation_use_accepted(request_rec *r, const pegadm_dir_conf_t *d,
                                         pegadm_dm_target_t *t)
{
    pegadm_server_conf_t *sc = ap_get_module_config(r->server->module_config, &pegadm_module);
    pegadm_metrics_t *m = sc->operator_rec ? sc->operator_rec->metrics : NULL;

    use_secret(t, d->secret_next &&
                          pegadm_metrics_accepted_secret(m, pegadm_metrics_index(r, d)) ==
                              fingerprint(d->secret_next, d->widget_id)
                      ? d->secret_next
                      : d->secret);
}

#define OTHER_RECHECK 10 /* seconds */

/* Whether a refused token may be tried with the other secret now; a try
 * takes the process's turn. */
static int may_try_other(pegadm_server_conf_t *sc, int accepted_known)
{
    apr_uint32_t now = (apr_uint32_t)apr_time_sec(apr_time_now());
    apr_uint32_t last = apr_atomic_read32(&sc->rotation_tried_at);

    if (accepted_known && last && now - last < OTHER_RECHECK) {
        return 0;
    }
    return apr_atomic_cas32(&sc->rotation_tried_at, now ? now : 1, last) == last ||
           !accepted_known;
}

static pegadm_dm_status_t pegadm_rotation_create(request_rec *r, const pegadm_dir_conf_t *d,
                                                 pegadm_dm_target_t *t, const char *customer_id,
                                                 const char **sid, long *answered,
                                                 const char **why)
{
    pegadm_server_conf_t *sc = ap_get_module_config(r->server->module_config, &pegadm_module);
    pegadm_metrics_t *m = sc->operator_rec ? sc->operator_rec->metrics : NULL;
    int widget = pegadm_metrics_index(r, d);
    int next = 0, known = 0;
    apr_time_t started = apr_time_now();
    pegadm_dm_status_t st;

    if (d->secret_next) {
        apr_uint32_t accepted = pegadm_metrics_accepted_secret(m, widget);
        next = accepted == fingerprint(d->secret_next, d->widget_id);
        known = accepted != 0;
    }
    use_secret(t, next ? d->secret_next : d->secret);
    st = pegadm_dm_create_session(r->pool, t, customer_id, started, sid, answered, why);
    pegadm_observe_call(r, d, PEGADM_UPSTREAM_CREATE, st, customer_id, *sid, started);
    if (d->secret_next && token_refused(st, *answered) && may_try_other(sc, known)) {
        next = !next;
        use_secret(t, next ? d->secret_next : d->secret);
        started = apr_time_now();
        st = pegadm_dm_create_session(r->pool, t, customer_id, started, sid, answered, why);
        pegadm_observe_call(r, d, PEGADM_UPSTREAM_CREATE, st, customer_id, *sid, started);
        if (st == PEGADM_DM_OK) {
            remember(r, d, m, widget, next);
        }
    }
    return st;
}
