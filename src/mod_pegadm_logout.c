/* Logout: PegaDMForget drops the chat session of the browser's user at the
 * portal's logout URL, so that the chat follows the portal login.
 *
 * Where the logout location authenticates (the portal's own logout URL
 * behind mod_auth_openidc or mod_auth_mellon, say), a fixup runs with
 * REMOTE_USER set; where it authenticates nobody (mod_auth_form's
 * form-logout-handler), the log-ins mod_auth_form keeps in mod_session's
 * session name the user.
 *
 * Where the logout location knows nobody at all, the browser carries it:
 * mod_auth_openidc answers its ?logout= in its authentication hook, so no
 * fixup runs there; mod_auth_mellon serves its logout endpoint without
 * authentication and without the MELLON_ variables. So where the module
 * hands a session to a log-in, the caller of the session call sets a
 * cookie sealing the customer ID (AES-256-GCM under the key derived from
 * the JWT secret, bound to the widget), which reveals nothing and cannot be
 * made for another customer; a PegaDMForget scope opens it before any
 * authentication runs, drops that customer's session and expires it.
 *
 * The owner check of the browser side is in mod_pegadm_handlers.c. */
#include "mod_pegadm.h"

#include <string.h>

#include <apr_strings.h>
#include <http_protocol.h>
#include <util_cookies.h>
#include <apr_optional.h>
#include <http_core.h>
#include <http_request.h>
#include <mod_session.h>

#include "pegadm_b64.h"

APLOG_USE_MODULE(pegadm);

#define LOGOUT_COOKIE "pegadm_logout"
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

/* The customer a logout cookie's value names, or NULL. */
static const char *value_customer(request_rec *r, const pegadm_dir_conf_t *d, const char *value)
{
    unsigned char *sealed, *plain;
    apr_size_t sealed_len, plain_len, aad_len;
    const unsigned char *aad = cookie_aad(r, d, &aad_len);

    if (pegadm_b64url_decode(r->pool, value, strlen(value), &sealed, &sealed_len) !=
            APR_SUCCESS ||
        pegadm_unseal(r->pool, &d->secret->keys, aad, aad_len, sealed, sealed_len, &plain,
                      &plain_len) != APR_SUCCESS ||
        memchr(plain, '\0', plain_len)) {
        return NULL;
    }
    return apr_pstrmemdup(r->pool, (const char *)plain, plain_len);
}

/* The customer the request's cookie names, or NULL. */
static const char *cookie_customer(request_rec *r, const pegadm_dir_conf_t *d)
{
    const char *value = cookie_value(r);
    return value ? value_customer(r, d, value) : NULL;
}

static const char *cookie_attributes(request_rec *r)
{
    return !strcmp(ap_http_scheme(r), "https") ? "Path=/; HttpOnly; SameSite=Lax; Secure"
                                               : "Path=/; HttpOnly; SameSite=Lax";
}

static pegadm_server_conf_t *server_conf(server_rec *s)
{
    return ap_get_module_config(s->module_config, &pegadm_module);
}

/* Read from the configuration once, not on every hand-out. */
void pegadm_logout_post_config(apr_pool_t *pconf, server_rec *s)
{
    void *wanted = NULL;

    apr_pool_userdata_get(&wanted, PEGADM_LOGOUT_WANTED_KEY, pconf);
    server_conf(s)->logout_cookie_wanted = wanted != NULL;
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

    if (!logout_cookie_wanted(r)) {
        return; /* no logout location would read it */
    }
    value = cookie_value(r);
    if (value && lc &&
        pegadm_localcache_cookie_known(lc, d->widget_id, customer_id, value, strlen(value))) {
        return; /* the browser has it already */
    }
    known = value ? value_customer(r, d, value) : NULL;
    if (known && !strcmp(known, customer_id)) {
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
int pegadm_logout_header_parser(request_rec *r)
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

/* The log-ins that mod_auth_form keeps in mod_session's session, for a
 * logout location that requires no authentication (form-logout-handler):
 * there nobody sets REMOTE_USER, but the session cookie is still readable.
 * mod_auth_form names the entry "<AuthName>-user"; a location without
 * AuthName cannot tell which realm, so every such entry counts (a browser
 * logged in to several realms is logged out of all of them). The password
 * beside the name is not checked here (the location names no provider):
 * the session is trusted to be the browser's own, as it is with
 * mod_session_crypto, which any mod_auth_form deployment needs anyway (the
 * session holds the password). A forged plain cookie could at most drop
 * someone's chat session. */
#define SESSION_USER_SUFFIX "-" MOD_SESSION_USER

typedef struct {
    apr_array_header_t *users;
    const char *key; /* the entry of ap_auth_name, or NULL: any realm's */
} session_users_t;

static int add_session_user(void *baton, const char *key, const char *value)
{
    session_users_t *found = baton;
    apr_size_t len = strlen(key), suffix = sizeof(SESSION_USER_SUFFIX) - 1;

    if (!value || !*value) {
        return 1;
    }
    if (found->key ? !strcmp(key, found->key)
                   : len > suffix && !strcmp(key + len - suffix, SESSION_USER_SUFFIX)) {
        APR_ARRAY_PUSH(found->users, const char *) = value;
    }
    return 1;
}

static apr_array_header_t *session_users(request_rec *r)
{
    APR_OPTIONAL_FN_TYPE(ap_session_load) *load = APR_RETRIEVE_OPTIONAL_FN(ap_session_load);
    const char *realm = ap_auth_name(r);
    session_users_t found = {apr_array_make(r->pool, 1, sizeof(const char *)), NULL};
    session_rec *z = NULL;

    if (load && load(r, &z) == APR_SUCCESS && z && z->entries) {
        found.key = realm ? apr_pstrcat(r->pool, realm, SESSION_USER_SUFFIX, NULL) : NULL;
        apr_table_do(add_session_user, &found, z->entries, NULL);
    }
    return found.users;
}

/* Drops the session of the customer of r as it is. */
static void forget_customer(request_rec *r, const pegadm_dir_conf_t *d)
{
    pegadm_session_result_t res;
    const char *id;

    if (pegadm_customer_id(r, d, &id) != PEGADM_CUSTOMER_OK) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "PEGADM501: PegaDMForget: no customer known for %s; nothing to drop",
                      r->user ? "the log-in" : "this request");
        return;
    }
    if (pegadm_session_op(r, d, id, PEGADM_OP_FORGET, NULL, &res) == PEGADM_SESSION_OK) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "PEGADM502: PegaDMForget: dropped the chat session of customer '%s'",
                      ap_escape_logitem(r->pool, id));
    }
}

/* The customer is PegaDMCustomerID as usual where the location
 * authenticates (the portal's own logout URL behind mod_auth_openidc or
 * mod_auth_mellon, say); else it is evaluated with REMOTE_USER taken from the session
 * for the time of the evaluation only, so that nothing else of the request
 * (the access log, the handler) sees a user the location did not
 * authenticate. */
int pegadm_forget_fixups(request_rec *r)
{
    const pegadm_dir_conf_t *d = ap_get_module_config(r->per_dir_config, &pegadm_module);
    apr_array_header_t *users;

    if (d->forget != 1 || r->main) {
        return DECLINED; /* a subrequest: the main request has done it */
    }
    if (!d->widget_id || !d->secret) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "PEGADM500: PegaDMForget needs PegaDMWidgetID and PegaDMJWTSecret in "
                      "this scope; no chat session dropped");
        return DECLINED;
    }
    if (r->user) {
        forget_customer(r, d);
        return DECLINED;
    }
    users = session_users(r);
    if (users->nelts == 0) {
        forget_customer(r, d); /* an expression that needs no REMOTE_USER */
    }
    for (int i = 0; i < users->nelts; i++) {
        r->user = (char *)APR_ARRAY_IDX(users, i, const char *);
        forget_customer(r, d);
        r->user = NULL;
    }
    return DECLINED;
}
