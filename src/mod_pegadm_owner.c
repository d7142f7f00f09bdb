/* The owner of a login, for the owner check of the bootstrap script: an
 * opaque value that names the customer's login without revealing the
 * customer or anything usable elsewhere. It is a keyed hash (the cache-key
 * HMAC, derived from the JWT secret, under a purpose label of its own) of
 * (widget, customer, when the customer's session was last forgotten), so it
 * changes with the user and at every logout (PegaDMForget, DELETE), and not
 * when a session is renewed or expires: a long chat outlives
 * PegaDMCacheTTL. Learning it creates no session. During a rotation of the
 * secret the same login also has a value under PegaDMJWTSecretNext's key
 * (with that key's record of the last logout), which the bootstrap accepts
 * and replaces: swapping the two secrets ends no chat. */
#include "mod_pegadm.h"

#include <apr_strings.h>

#include "pegadm_b64.h"

APLOG_USE_MODULE(pegadm);

/* Bytes of the HMAC kept: enough that no one guesses another's value. */
#define OWNER_BYTES 18

/* The owner under keys, for a customer last forgotten at forgotten_at. */
static const char *owner_under(request_rec *r, const pegadm_dir_conf_t *d,
                               const pegadm_keys_t *keys, const char *customer_id,
                               apr_time_t forgotten_at)
{
    unsigned char mac[PEGADM_CACHE_ID_LEN];
    /* a customer ID holds no control character: "\n" separates */
    const char *subject =
        apr_psprintf(r->pool, "%s\n%" APR_TIME_T_FMT, customer_id, forgotten_at);

    if (pegadm_cache_id(keys, "owner", d->widget_id, subject, mac) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "PEGADM505: computing the owner of the chat failed (OpenSSL)");
        return NULL;
    }
    return pegadm_b64url_encode(r->pool, mac, OWNER_BYTES);
}

pegadm_session_status_t pegadm_owner_of(request_rec *r, const pegadm_dir_conf_t *d,
                                        const char *customer_id, const char **owner,
                                        const char **previous)
{
    pegadm_session_result_t res;
    pegadm_session_status_t st;

    *previous = NULL;
    st = pegadm_session_op(r, d, customer_id, PEGADM_OP_LAST_FORGET, NULL, &res);
    if (st != PEGADM_SESSION_OK) {
        return st;
    }
    *owner = owner_under(r, d, &d->secret->keys, customer_id, res.forgotten_at);
    if (*owner && d->secret_next) {
        *previous =
            owner_under(r, d, &d->secret_next->keys, customer_id, res.forgotten_previous);
    }
    return *owner && (!d->secret_next || *previous) ? PEGADM_SESSION_OK : PEGADM_SESSION_STORE;
}
