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
 * cookie of the widget's own (pegadm_logout_<widget>) sealing the customer
 * ID, padded to one length, and when it was issued (AES-256-GCM under the
 * key derived from the JWT secret, bound to the widget), which reveals
 * nothing and cannot be made for another customer; a PegaDMForget scope
 * opens it before any authentication runs, drops that customer's session
 * and expires it. A value older than the customer's last logout, or than
 * COOKIE_MAX_AGE, drops nothing: a captured one is good for one logout at
 * most.
 *
 * The owner check of the browser side is in mod_pegadm_handlers.c. */
#include "mod_pegadm.h"

#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>
#include <http_protocol.h>
#include <apr_optional.h>
#include <http_core.h>
#include <http_request.h>
#include <mod_session.h>

#include "pegadm_b64.h"

APLOG_USE_MODULE(pegadm);

/* One cookie per widget: its name carries the widget ID's first 12 hex
 * digits, so two widgets on one host never overwrite each other's. */
#define COOKIE_PREFIX "pegadm_logout_"
#define COOKIE_TAG    12
/* the one name of every widget's cookie before: replaced at a hand-out */
#define OLD_COOKIE "pegadm_logout"
/* A value older than this is refused, and one older than half of it is
 * replaced at a hand-out: twice the longest PegaDMCacheTTL, so a chat in
 * use always has a value young enough. */
#define COOKIE_MAX_AGE 172800
/* a sealed, padded customer ID in base64url is 392 bytes */
#define LOGOUT_COOKIE_MAX 512
/* values of the cookie tried per request (a planted duplicate or two) */
#define COOKIE_VALUES_MAX 4

static const char *cookie_name(request_rec *r, const pegadm_dir_conf_t *d)
{
    char tag[COOKIE_TAG + 1];
    int n = 0;

    for (const char *c = d->widget_id; *c && n < COOKIE_TAG; c++) {
        if (*c != '-') {
            tag[n++] = (char)apr_tolower(*c);
        }
    }
    tag[n] = '\0';
    return apr_pstrcat(r->pool, COOKIE_PREFIX, tag, NULL);
}

/* The keys that seal the cookie: those of the widget's secret. */
static const pegadm_keys_t *cookie_keys(const pegadm_dir_conf_t *d)
{
    return &d->secret->keys;
}

static const unsigned char *cookie_aad(request_rec *r, const pegadm_dir_conf_t *d,
                                       apr_size_t *len)
{
    const char *aad = apr_pstrcat(r->pool, "logout:v2:", d->widget_id, NULL);
    *len = strlen(aad);
    return (const unsigned char *)aad;
}

typedef struct {
    request_rec *r;
    const char *name;
    apr_array_header_t *values;
} cookie_scan_t;

/* Takes every value of the name in one Cookie header: a browser sends
 * duplicates (one planted from a sibling domain, say) side by side, and
 * each is tried rather than all refused. */
static int scan_cookie_header(void *baton, const char *key, const char *header)
{
    cookie_scan_t *scan = baton;
    char *last = NULL, *copy = apr_pstrdup(scan->r->pool, header);
    apr_size_t name_len = strlen(scan->name);

    for (char *pair = apr_strtok(copy, ";", &last); pair; pair = apr_strtok(NULL, ";", &last)) {
        apr_size_t len;
        while (*pair == ' ' || *pair == '\t') {
            pair++;
        }
        if (strncmp(pair, scan->name, name_len) != 0 || pair[name_len] != '=') {
            continue;
        }
        pair += name_len + 1;
        len = strcspn(pair, " \t");
        if (len && len <= LOGOUT_COOKIE_MAX && scan->values->nelts < COOKIE_VALUES_MAX) {
            APR_ARRAY_PUSH(scan->values, const char *) =
                apr_pstrmemdup(scan->r->pool, pair, len);
        }
    }
    return 1;
}

static apr_array_header_t *cookie_values(request_rec *r, const char *name)
{
    cookie_scan_t scan = {r, name, apr_array_make(r->pool, 2, sizeof(const char *))};
    apr_table_do(scan_cookie_header, &scan, r->headers_in, "Cookie", NULL);
    return scan.values;
}

/* Opens a value under the signing secret's key or, during a rotation,
 * under PegaDMJWTSecretNext's (*stale is then set): swapping the two
 * secrets leaves every browser's cookie working until its next hand-out
 * seals it anew. */
static apr_status_t open_value(request_rec *r, const pegadm_dir_conf_t *d,
                               const unsigned char *sealed, apr_size_t sealed_len,
                               unsigned char **plain, apr_size_t *plain_len, int *stale)
{
    apr_size_t aad_len;
    const unsigned char *aad = cookie_aad(r, d, &aad_len);
    apr_status_t rv = pegadm_unseal(r->pool, cookie_keys(d), aad, aad_len, sealed, sealed_len,
                                    plain, plain_len);

    *stale = 0;
    if (rv != APR_SUCCESS && d->secret_next) {
        rv = pegadm_unseal(r->pool, &d->secret_next->keys, aad, aad_len, sealed, sealed_len,
                           plain, plain_len);
        *stale = rv == APR_SUCCESS;
    }
    return rv;
}

/* The customer a value names and when it was issued; NULL if it does not
 * open, or is older than COOKIE_MAX_AGE (or from the future). */
static const char *value_customer(request_rec *r, const pegadm_dir_conf_t *d, const char *value,
                                  apr_time_t *issued, int *stale)
{
    unsigned char *sealed, *plain;
    apr_size_t sealed_len, plain_len;
    const char *customer;
    apr_time_t now = apr_time_now();

    *stale = 0;
    if (pegadm_b64url_decode(r->pool, value, strlen(value), &sealed, &sealed_len) !=
            APR_SUCCESS ||
        open_value(r, d, sealed, sealed_len, &plain, &plain_len, stale) != APR_SUCCESS ||
        pegadm_logout_plain_decode(r->pool, plain, plain_len, &customer, issued) !=
            APR_SUCCESS ||
        *issued > now + apr_time_from_sec(60) ||
        now - *issued > apr_time_from_sec(COOKIE_MAX_AGE)) {
        return NULL;
    }
    return customer;
}

static const char *cookie_attributes(request_rec *r)
{
    return !strcmp(ap_http_scheme(r), "https") ? "Path=/; HttpOnly; SameSite=Lax; Secure"
                                               : "Path=/; HttpOnly; SameSite=Lax";
}

static void expire_cookie(request_rec *r, const char *name)
{
    apr_table_addn(r->err_headers_out, "Set-Cookie",
                   apr_pstrcat(r->pool, name, "=; Max-Age=0; ", cookie_attributes(r), NULL));
}

/* A cookie of the earlier form (one name for every widget, no issue time)
 * is expired where it is seen: the next hand-out gives the new one. */
static void expire_old_cookie(request_rec *r)
{
    if (cookie_values(r, OLD_COOKIE)->nelts) {
        expire_cookie(r, OLD_COOKIE);
    }
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

/* Whether the browser holds a value naming the customer, young enough to
 * keep. The common case is answered by this child's note of the value (a
 * keyed tag in the local cache, set when the child opened or sealed it
 * for the customer) without opening it again; a value the note does not
 * match is opened, never taken for the customer's as it is. */
static int browser_has_it(request_rec *r, const pegadm_dir_conf_t *d, const char *customer_id,
                          const apr_array_header_t *values)
{
    pegadm_localcache_t *lc = server_conf(r->server)->localcache;

    for (int i = 0; i < values->nelts; i++) {
        const char *value = APR_ARRAY_IDX(values, i, const char *);
        apr_time_t issued;
        const char *known;
        int stale;

        if (lc && pegadm_localcache_cookie_known(lc, d->widget_id, customer_id, value,
                                                 strlen(value))) {
            return 1;
        }
        known = value_customer(r, d, value, &issued, &stale);
        if (known && !stale && !strcmp(known, customer_id) &&
            apr_time_now() - issued < apr_time_from_sec(COOKIE_MAX_AGE / 2)) {
            if (lc) {
                pegadm_localcache_cookie_note(lc, d->widget_id, customer_id, value,
                                              strlen(value));
            }
            return 1;
        }
    }
    return 0;
}

void pegadm_logout_cookie_set(request_rec *r, const pegadm_dir_conf_t *d,
                              const char *customer_id, int created)
{
    pegadm_localcache_t *lc = server_conf(r->server)->localcache;
    unsigned char plain[PEGADM_LOGOUT_PLAIN_LEN], *sealed;
    apr_size_t sealed_len, aad_len;
    const unsigned char *aad;
    const char *name, *fresh;
    apr_status_t rv;

    if (!logout_cookie_wanted(r)) {
        return; /* no logout location would read it */
    }
    expire_old_cookie(r);
    name = cookie_name(r, d);
    /* a session made now follows any logout: its cookie must be younger */
    if (!created && browser_has_it(r, d, customer_id, cookie_values(r, name))) {
        return;
    }
    aad = cookie_aad(r, d, &aad_len);
    rv = pegadm_logout_plain_encode(plain, customer_id, apr_time_now());
    if (rv == APR_SUCCESS) {
        rv = pegadm_seal(r->pool, cookie_keys(d), aad, aad_len, plain, sizeof(plain), &sealed,
                         &sealed_len);
    }
    memset(plain, 0, sizeof(plain));
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "PEGADM506: sealing the logout cookie failed (OpenSSL); "
                      "PegaDMForget cannot drop this session where nobody is logged in");
        return;
    }
    fresh = pegadm_b64url_encode(r->pool, sealed, sealed_len);
    if (lc) {
        pegadm_localcache_cookie_note(lc, d->widget_id, customer_id, fresh, strlen(fresh));
    }
    apr_table_addn(r->err_headers_out, "Set-Cookie",
                   apr_psprintf(r->pool, "%s=%s; Max-Age=%d; %s", name, fresh, COOKIE_MAX_AGE,
                                cookie_attributes(r)));
}

/* Whether a logout of the customer since issued supersedes the value: a
 * captured value then drops nothing more. */
static int superseded(request_rec *r, const pegadm_dir_conf_t *d, const char *customer_id,
                      apr_time_t issued)
{
    pegadm_session_result_t res;

    return pegadm_session_op(r, d, customer_id, PEGADM_OP_LAST_FORGET, NULL, &res) !=
               PEGADM_SESSION_OK ||
           res.forgotten_at > issued;
}

/* header_parser: runs before any authentication of the request. Each
 * value of the cookie is tried in turn; the first that names a customer
 * and that no logout has superseded is used. */
int pegadm_logout_header_parser(request_rec *r)
{
    const pegadm_dir_conf_t *d = ap_get_module_config(r->per_dir_config, &pegadm_module);
    pegadm_session_result_t res;
    apr_array_header_t *values;
    const char *name;

    if (d->forget != 1 || !d->widget_id || !d->secret || r->main) {
        return DECLINED;
    }
    expire_old_cookie(r);
    name = cookie_name(r, d);
    values = cookie_values(r, name);
    for (int i = 0; i < values->nelts; i++) {
        apr_time_t issued;
        int stale;
        const char *customer_id =
            value_customer(r, d, APR_ARRAY_IDX(values, i, const char *), &issued, &stale);

        if (!customer_id || superseded(r, d, customer_id, issued)) {
            continue;
        }
        if (pegadm_session_op(r, d, customer_id, PEGADM_OP_FORGET, NULL, &res) ==
            PEGADM_SESSION_OK) {
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                          "PEGADM507: PegaDMForget: dropped the chat session of customer '%s' "
                          "named by the logout cookie",
                          ap_escape_logitem(r->pool, customer_id));
        }
        break;
    }
    if (values->nelts) {
        expire_cookie(r, name);
    }
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
