/* Rotating the Web Messaging connection's JWT secret without downtime.
 * With PegaDMJWTSecretNext set, a create goes out signed with whichever of
 * the two secrets the service last accepted (remembered in shared memory,
 * so every child process knows); a refused token (401 or 403) is tried once
 * more with the other secret. Once the service has accepted one of them, a
 * refusal is most likely one customer's own (his ID, his data), not a
 * switch: the other secret is then tried at most once per OTHER_RECHECK per
 * process, which still finds a later switch within that time and never
 * doubles one customer's calls. The process that sees the service switch logs
 * it, once. Sealing and naming cache entries never depend on the secret in
 * use: they use PegaDMJWTSecret's keys (see pegadm_session_req_t's
 * keys_previous for a swap of the two). */
#include "mod_pegadm_ops.h"

#include <apr_atomic.h>

APLOG_USE_MODULE(pegadm);

#define OTHER_RECHECK 10 /* seconds */

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

void pegadm_rotation_use_accepted(request_rec *r, const pegadm_dir_conf_t *d,
                                  pegadm_dm_target_t *t)
{
    pegadm_server_conf_t *sc = ap_get_module_config(r->server->module_config, &pegadm_module);
    pegadm_metrics_t *m = sc->ops ? sc->ops->metrics : NULL;

    use_secret(t, d->secret_next &&
                          pegadm_metrics_accepted_secret(m, pegadm_metrics_index(r, d)) ==
                              fingerprint(d->secret_next, d->widget_id)
                      ? d->secret_next
                      : d->secret);
}

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

pegadm_dm_status_t pegadm_rotation_create(request_rec *r, const pegadm_dir_conf_t *d,
                                          pegadm_dm_target_t *t, const char *customer_id,
                                          const char **sid, const char **why)
{
    pegadm_server_conf_t *sc = ap_get_module_config(r->server->module_config, &pegadm_module);
    pegadm_metrics_t *m = sc->ops ? sc->ops->metrics : NULL;
    int widget = pegadm_metrics_index(r, d);
    int next = 0, known = 0;
    long answered = 0, *answered_to = t->answered;
    apr_time_t started = apr_time_now();
    pegadm_dm_status_t st;

    if (d->secret_next) {
        apr_uint32_t accepted = pegadm_metrics_accepted_secret(m, widget);
        next = accepted == fingerprint(d->secret_next, d->widget_id);
        known = accepted != 0;
    }
    use_secret(t, next ? d->secret_next : d->secret);
    t->answered = &answered;
    st = pegadm_dm_create_session(r->pool, t, customer_id, started, sid, why);
    pegadm_observe_call(r, d, PEGADM_UPSTREAM_CREATE, st, customer_id, *sid, started);
    if (d->secret_next && token_refused(st, answered) && may_try_other(sc, known)) {
        next = !next;
        use_secret(t, next ? d->secret_next : d->secret);
        started = apr_time_now();
        st = pegadm_dm_create_session(r->pool, t, customer_id, started, sid, why);
        pegadm_observe_call(r, d, PEGADM_UPSTREAM_CREATE, st, customer_id, *sid, started);
        if (st == PEGADM_DM_OK) {
            remember(r, d, m, widget, next);
        }
    }
    if (answered_to) {
        *answered_to = answered;
    }
    t->answered = answered_to;
    return st;
}
