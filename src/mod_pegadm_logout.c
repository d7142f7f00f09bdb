/* PegaDMForget where the logout location knows nobody. mod_auth_openidc
 * answers its ?logout= in its authentication hook, so no fixup runs there;
 * mod_auth_mellon serves its logout endpoint without authentication and
 * without the MELLON_ variables. Neither says who is logging out. So the
 * browser carries it: where the module hands a session to a log-in, it sets
 * a cookie sealing the customer ID (AES-256-GCM under the key derived from
 * the JWT secret, bound to the widget), which reveals nothing and cannot be
 * made for another customer; a PegaDMForget scope opens it before any
 * authentication runs, drops that customer's session and expires it. */
#include "mod_pegadm.h"

#include <string.h>

#include <apr_strings.h>
#include <http_protocol.h>
#include <util_cookies.h>

#include "pegadm_b64.h"

APLOG_USE_MODULE(pegadm);

#define LOGOUT_COOKIE "pegadm_logout"
/* userdata of the configuration pool: some scope has PegaDMForget On */
#define LOGOUT_WANTED "pegadm-logout-cookie"
/* a sealed customer ID (at most 256 bytes) in base64url, with room */
#define LOGOUT_COOKIE_MAX 512

static const unsigned char *cookie_aad(request_rec *r, const pegadm_dir_conf_t *d,
                                       apr_size_t *len)
{
    const char *aad = apr_pstrcat(r->pool, "logout:", d->widget_id, NULL);
    *len = strlen(aad);
    return (const unsigned char *)aad;
}

/* The request's logout cookie, or NULL. */
static const char *cookie_value(request_rec *r)
{
    const char *value = NULL;

    if (ap_cookie_read(r, LOGOUT_COOKIE, &value, 0) != APR_SUCCESS || !value ||
        strlen(value) > LOGOUT_COOKIE_MAX) {
        return NULL;
    }
    return value;
}

/* The customer a logout cookie's value names, or NULL. During a rotation a
 * cookie sealed under PegaDMJWTSecretNext's key opens too (*stale is then
 * set): swapping the two secrets leaves every browser's cookie working
 * until its next hand-out seals it anew. */
static const char *value_customer(request_rec *r, const pegadm_dir_conf_t *d, const char *value,
                                  int *stale)
{
    unsigned char *sealed, *plain;
    apr_size_t sealed_len, plain_len, aad_len;
    const unsigned char *aad = cookie_aad(r, d, &aad_len);
    int opened;

    *stale = 0;
    if (pegadm_b64url_decode(r->pool, value, strlen(value), &sealed, &sealed_len) !=
        APR_SUCCESS) {
        return NULL;
    }
    opened = pegadm_unseal(r->pool, &d->secret->keys, aad, aad_len, sealed, sealed_len, &plain,
                           &plain_len) == APR_SUCCESS;
    if (!opened && d->secret_next) {
        opened = *stale = pegadm_unseal(r->pool, &d->secret_next->keys, aad, aad_len, sealed,
                                        sealed_len, &plain, &plain_len) == APR_SUCCESS;
    }
    if (!opened || memchr(plain, '\0', plain_len)) {
        return NULL;
    }
    return apr_pstrmemdup(r->pool, (const char *)plain, plain_len);
}

/* The customer the request's cookie names, or NULL. */
static const char *cookie_customer(request_rec *r, const pegadm_dir_conf_t *d)
{
    const char *value = cookie_value(r);
    int stale;
    return value ? value_customer(r, d, value, &stale) : NULL;
}

static const char *cookie_attributes(request_rec *r)
{
    return !strcmp(ap_http_scheme(r), "https") ? "Path=/; HttpOnly; SameSite=Lax; Secure"
                                               : "Path=/; HttpOnly; SameSite=Lax";
}

void pegadm_logout_cookie_wanted(cmd_parms *cmd)
{
    /* a property of this configuration: gone with its pool on a restart */
    apr_pool_userdata_setn("1", LOGOUT_WANTED, NULL, cmd->pool);
}

static pegadm_server_conf_t *server_conf(server_rec *s)
{
    return ap_get_module_config(s->module_config, &pegadm_module);
}

/* Read from the configuration once, not on every hand-out. */
static int logout_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                              server_rec *s)
{
    void *wanted = NULL;

    apr_pool_userdata_get(&wanted, LOGOUT_WANTED, pconf);
    server_conf(s)->logout_cookie_wanted = wanted != NULL;
    return OK;
}

static int logout_cookie_wanted(request_rec *r)
{
    return server_conf(r->server)->logout_cookie_wanted;
}

/* The common case, a browser that holds the customer's cookie already, is
 * answered by this child's note of it (a keyed tag in the local cache, set
 * when the child opened or sealed that value for the customer) without
 * opening it again. Anything else opens it: a value the note does not
 * match is never taken for the customer's. */
void pegadm_logout_cookie_set(request_rec *r, const pegadm_dir_conf_t *d,
                              const char *customer_id)
{
    pegadm_localcache_t *lc = server_conf(r->server)->localcache;
    unsigned char *sealed;
    apr_size_t sealed_len, aad_len;
    const unsigned char *aad;
    const char *value, *known, *fresh;
    int stale = 0;

    if (!logout_cookie_wanted(r)) {
        return; /* no logout location would read it */
    }
    value = cookie_value(r);
    if (value && lc &&
        pegadm_localcache_cookie_known(lc, d->widget_id, customer_id, value, strlen(value))) {
        return; /* the browser has it already */
    }
    known = value ? value_customer(r, d, value, &stale) : NULL;
    if (known && !stale && !strcmp(known, customer_id)) {
        if (lc) {
            pegadm_localcache_cookie_note(lc, d->widget_id, customer_id, value, strlen(value));
        }
        return; /* the browser has it already */
    }
    aad = cookie_aad(r, d, &aad_len);
    if (pegadm_seal(r->pool, &d->secret->keys, aad, aad_len, (const unsigned char *)customer_id,
                    strlen(customer_id), &sealed, &sealed_len) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "PEGADM506: sealing the logout cookie failed (OpenSSL); "
                      "PegaDMForget cannot drop this session where nobody is logged in");
        return;
    }
    fresh = pegadm_b64url_encode(r->pool, sealed, sealed_len);
    if (lc) {
        pegadm_localcache_cookie_note(lc, d->widget_id, customer_id, fresh, strlen(fresh));
    }
    apr_table_addn(
        r->err_headers_out, "Set-Cookie",
        apr_pstrcat(r->pool, LOGOUT_COOKIE "=", fresh, "; ", cookie_attributes(r), NULL));
}

/* header_parser: runs before any authentication of the request. */
static int logout_header_parser(request_rec *r)
{
    const pegadm_dir_conf_t *d = ap_get_module_config(r->per_dir_config, &pegadm_module);
    pegadm_session_result_t res;
    const char *customer_id;

    if (d->forget != 1 || !d->widget_id || !d->secret || r->main) {
        return DECLINED;
    }
    customer_id = cookie_customer(r, d);
    if (!customer_id) {
        return DECLINED;
    }
    if (pegadm_session_op(r, d, customer_id, PEGADM_OP_FORGET, NULL, &res) ==
        PEGADM_SESSION_OK) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "PEGADM507: PegaDMForget: dropped the chat session of customer '%s' "
                      "named by the logout cookie",
                      ap_escape_logitem(r->pool, customer_id));
    }
    apr_table_addn(
        r->err_headers_out, "Set-Cookie",
        apr_pstrcat(r->pool, LOGOUT_COOKIE "=; Max-Age=0; ", cookie_attributes(r), NULL));
    return DECLINED;
}

void pegadm_logout_register_hooks(apr_pool_t *p)
{
    ap_hook_post_config(logout_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_header_parser(logout_header_parser, NULL, NULL, APR_HOOK_MIDDLE);
}
