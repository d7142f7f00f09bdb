/* The owner of a login, for the owner check of the bootstrap script: an
 * opaque value that names the customer's login without revealing the
 * customer or anything usable elsewhere. It is a keyed hash (the cache-key
 * HMAC, derived from the JWT secret, under a purpose label of its own) of
 * (widget, customer, when the customer's session was last forgotten), so it
 * changes with the user and at every logout (PegaDMForget, DELETE), and not
 * when a session is renewed or expires: a long chat outlives
 * PegaDMCacheTTL. Learning it creates no session. */
#include "mod_pegadm.h"

#include <apr_strings.h>

#include "pegadm_b64.h"

APLOG_USE_MODULE(pegadm);

/* Bytes of the HMAC kept: enough that no one guesses another's value. */
#define OWNER_BYTES 18

pegadm_session_status_t pegadm_owner_of(request_rec *r, const pegadm_dir_conf_t *d,
                                        const char *customer_id, const char **owner)
{
    unsigned char mac[PEGADM_CACHE_ID_LEN];
    pegadm_session_result_t res;
    pegadm_session_status_t st;
    const char *subject;

    st = pegadm_session_op(r, d, customer_id, PEGADM_OP_LAST_FORGET, NULL, &res);
    if (st != PEGADM_SESSION_OK) {
        return st;
    }
    /* a customer ID holds no control character: "\n" separates */
    subject = apr_psprintf(r->pool, "%s\n%" APR_TIME_T_FMT, customer_id, res.forgotten_at);
    if (pegadm_cache_id(&d->secret->keys, "owner", d->widget_id, subject, mac) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "PEGADM505: computing the owner of the chat failed (OpenSSL)");
        return PEGADM_SESSION_STORE;
    }
    *owner = pegadm_b64url_encode(r->pool, mac, OWNER_BYTES);
    return PEGADM_SESSION_OK;
}
