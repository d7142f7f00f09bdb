/* The chat follows the portal login, on the server side: PegaDMForget drops
 * the chat session of the browser's user at the portal's logout URL, and
 * PegaDMPrivateDataRefresh paces the re-push of changed private data (the
 * re-push itself is part of the session flow, pegadm_session.c). The owner
 * check of the browser side is in mod_pegadm_owner.c. */
#include "mod_pegadm.h"

#include <string.h>

#include <apr_optional.h>
#include <apr_strings.h>
#include <http_core.h>
#include <http_request.h>
#include <mod_session.h>

APLOG_USE_MODULE(pegadm);

#define PRIVATE_DATA_REFRESH_DEFAULT 60
#define PRIVATE_DATA_REFRESH_MAX     86400

const char *pegadm_set_forget(cmd_parms *cmd, void *dv, int on)
{
    const char *err = pegadm_refuse_htaccess(cmd);
    if (err) {
        return err;
    }
    ((pegadm_dir_conf_t *)dv)->forget = on;
    if (on) {
        pegadm_logout_cookie_wanted(cmd);
    }
    return NULL;
}

const char *pegadm_set_private_data_refresh(cmd_parms *cmd, void *dv, const char *arg)
{
    char *end;
    apr_int64_t v = apr_strtoi64(arg, &end, 10);

    if (!*arg || *end || v < 0 || v > PRIVATE_DATA_REFRESH_MAX) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a number of seconds from 0 to %d",
                            cmd->cmd->name, arg, PRIVATE_DATA_REFRESH_MAX);
    }
    ((pegadm_dir_conf_t *)dv)->private_data_refresh = apr_time_from_sec(v);
    return NULL;
}

apr_interval_time_t pegadm_conf_private_data_refresh(const pegadm_dir_conf_t *d)
{
    return d->private_data_refresh >= 0 ? d->private_data_refresh
                                        : apr_time_from_sec(PRIVATE_DATA_REFRESH_DEFAULT);
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
static int forget_fixups(request_rec *r)
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

/* In fixups, after authentication (REMOTE_USER is set where the location
 * authenticates), and before every other module's fixups: a per-directory
 * RewriteRule [R] in the logout location (mod_rewrite, in fixups) or the
 * handler may end the request there, and the session must be gone by then.
 * A request answered before fixups never gets here (mod_auth_openidc
 * answers its own ?logout= while authenticating): the logout cookie of
 * mod_pegadm_logout.c covers those, before authentication. */
void pegadm_lifecycle_register_hooks(apr_pool_t *p)
{
    ap_hook_fixups(forget_fixups, NULL, NULL, APR_HOOK_REALLY_FIRST);
}
