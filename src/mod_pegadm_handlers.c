/* The session endpoint and the bootstrap script: the pegadm-session
 * handler (JSON) with the owner of a login it answers to GET ...?owner,
 * the pegadm-bootstrap handler (JavaScript), and which requests to them
 * come from the portal's own pages (Fetch Metadata, Origin, the media
 * type of a POST body).
 *
 * A cross-site page can make a browser send a form or a no-cors fetch with
 * the user's cookies; it cannot make it claim Sec-Fetch-Site: same-origin,
 * send the portal's own Origin, or post application/json without a
 * preflight the endpoint never answers.
 *
 * The owner is an opaque value that names the customer's login without
 * revealing the customer or anything usable elsewhere: a keyed hash (the
 * cache-key HMAC, derived from the JWT secret, under a purpose label of its
 * own) of (widget, customer, when the customer's session was last
 * forgotten), so it changes with the user and at every logout
 * (PegaDMForget, DELETE), and not when a session is renewed or expires: a
 * long chat outlives PegaDMCacheTTL. Learning it creates no session. A POST
 * answers it with the session it made, for the bootstrap to keep with the
 * chat. During a rotation of the secret the same login also has a value
 * under PegaDMJWTSecretNext's key (with that key's record of the last
 * logout), which the bootstrap accepts and replaces: swapping the two
 * secrets ends no chat. */
#include "mod_pegadm.h"
#include "mod_pegadm_operator.h"

#include <string.h>

#include <apr_strings.h>
#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>
#include <apr_uri.h>

#include "pegadm_answer.h"
#include "pegadm_trigger.h"
#include "pegadm_b64.h"

APLOG_USE_MODULE(pegadm);

/* True unless r comes from the portal's own pages: Sec-Fetch-Site
 * same-origin or none; without it, GET passes (unless strict) and POST,
 * DELETE or a strict GET need an Origin equal to the request's own. */
static int pegadm_is_cross_site(request_rec *r, int strict);
/* True if a POST's body is application/json, or there is no body. */
static int pegadm_post_body_is_json(request_rec *r);
/* The opaque owner of the login, for the bootstrap's owner check
 * (GET {session endpoint}?owner, and the POST's answer); creates no
 * session. With PegaDMJWTSecretNext, *previous (else NULL) is the same
 * login's value under that secret's key. */
static pegadm_session_status_t pegadm_owner_of(request_rec *r, const pegadm_dir_conf_t *d,
                                               const char *customer_id, const char **owner,
                                               const char **previous);

#define BODY_MAX          PEGADM_TRIGGER_BODY_MAX
#define RETRY_UNAVAILABLE "10"

static void no_store_headers(request_rec *r)
{
    /* err_headers_out: they must survive error responses too */
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->err_headers_out, "X-Content-Type-Options", "nosniff");
}

static int send_json(request_rec *r, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    r->status = status;
    ap_set_content_type(r, "application/json");
    if (text) {
        ap_rputs(text, r);
        ap_rputs("\n", r);
        free(text);
    }
    return OK;
}

static int send_error(request_rec *r, int status, const char *code, const char *message)
{
    return send_json(r, status, json_pack("{s:s, s:s}", "error", code, "message", message));
}

/* Both values are checked to a safe character set already (a UUID, and
 * pegadm_session_id_is_valid): the fixed shape needs no JSON library. */
static int send_session(request_rec *r, const pegadm_dir_conf_t *d, const char *sid)
{
    apr_size_t len;
    const char *text = pegadm_session_answer(r->pool, sid, d->widget_id, &len);

    if (!text) {
        return send_json(r, HTTP_OK,
                         json_pack("{s:s, s:s}", "sessionId", sid, "widgetId", d->widget_id));
    }
    r->status = HTTP_OK;
    ap_set_content_type(r, "application/json");
    ap_rwrite(text, (int)len, r);
    return OK;
}

/* Reads the optional JSON body of a POST. Returns OK with *trigger (or
 * NULL), or an HTTP status for a body that is not what the widget sends. */
static int read_trigger(request_rec *r, const char **trigger, const char **problem)
{
    char *buf = apr_palloc(r->pool, BODY_MAX + 1);
    apr_size_t len = 0;
    long n;

    *trigger = NULL;
    if (ap_setup_client_block(r, REQUEST_CHUNKED_DECHUNK) != OK) {
        *problem = "the request body could not be read";
        return HTTP_BAD_REQUEST;
    }
    if (ap_should_client_block(r)) {
        while ((n = ap_get_client_block(r, buf + len, BODY_MAX + 1 - len)) > 0) {
            len += (apr_size_t)n;
            if (len > BODY_MAX) {
                *problem = "the request body is too large";
                return HTTP_REQUEST_ENTITY_TOO_LARGE;
            }
        }
        if (n < 0) {
            *problem = "the request body could not be read";
            return HTTP_BAD_REQUEST;
        }
    }
    return pegadm_parse_trigger_body(r->pool, buf, len, trigger, problem) == APR_SUCCESS
               ? OK
               : HTTP_BAD_REQUEST;
}

/* Rounded up: a client that comes back on time must not be early. */
static void set_retry_after(request_rec *r, apr_interval_time_t wait)
{
    apr_int64_t secs = (wait + APR_USEC_PER_SEC - 1) / APR_USEC_PER_SEC;
    apr_table_setn(r->err_headers_out, "Retry-After",
                   apr_psprintf(r->pool, "%" APR_INT64_T_FMT, secs > 0 ? secs : 1));
}

static int answer_failure(request_rec *r, pegadm_session_status_t st,
                          const pegadm_session_result_t *res)
{
    if (st == PEGADM_SESSION_RATE_LIMITED) {
        set_retry_after(r, res->retry_after);
        return send_error(r, HTTP_TOO_MANY_REQUESTS, "rate_limited",
                          "too many new chat sessions; try again later");
    }
    /* An open breaker calls the service again no sooner than its
     * cool-down's end: a retry before then would be refused too. */
    if (st == PEGADM_SESSION_UPSTREAM && res && res->refused) {
        set_retry_after(r, res->retry_after);
    } else {
        apr_table_setn(r->err_headers_out, "Retry-After", RETRY_UNAVAILABLE);
    }
    return send_error(r, HTTP_SERVICE_UNAVAILABLE, "upstream_unavailable",
                      "the chat service is unavailable; try again later");
}

/* A POST's answer adds the owner of the login it was made for, read after
 * the session was made: the bootstrap keeps that value with the chat, and
 * ends the chat if the login changed since its page loaded (another tab
 * logged out and in while the create ran). */
static int send_renewed(request_rec *r, const pegadm_dir_conf_t *d, const char *customer_id,
                        const char *sid)
{
    const char *owner = NULL, *previous = NULL;

    if (pegadm_owner_of(r, d, customer_id, &owner, &previous) != PEGADM_SESSION_OK) {
        return answer_failure(r, PEGADM_SESSION_STORE, NULL);
    }
    return send_json(r, HTTP_OK,
                     json_pack("{s:s, s:s, s:s}", "sessionId", sid, "widgetId", d->widget_id,
                               "owner", owner));
}

static int misconfigured(request_rec *r)
{
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                  "PEGADM040: %s needs PegaDMWidgetID and PegaDMJWTSecret in this scope",
                  r->handler);
    return HTTP_INTERNAL_SERVER_ERROR;
}

int pegadm_session_handler(request_rec *r)
{
    const pegadm_dir_conf_t *d;
    const char *customer_id, *trigger = NULL, *problem = NULL, *owner = NULL, *previous = NULL;
    pegadm_session_result_t res;
    pegadm_session_status_t st;
    int status, owner_query;

    if (!r->handler || strcmp(r->handler, PEGADM_HANDLER_SESSION) != 0) {
        return DECLINED;
    }
    if (r->main) {
        /* an SSI include or another module's subrequest: its answer would
         * land in a page with that page's caching, not the endpoint's */
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "PEGADM042: the session endpoint refuses subrequests");
        return HTTP_FORBIDDEN;
    }
    d = ap_get_module_config(r->per_dir_config, &pegadm_module);
    if (!d->widget_id || !d->secret) {
        return misconfigured(r);
    }
    no_store_headers(r);
    pegadm_cache_control_session(r);
    r->allowed =
        (AP_METHOD_BIT << M_GET) | (AP_METHOD_BIT << M_POST) | (AP_METHOD_BIT << M_DELETE);
    if (r->method_number != M_GET && r->method_number != M_POST &&
        r->method_number != M_DELETE) {
        ap_discard_request_body(r);
        apr_table_setn(r->err_headers_out, "Allow", "GET, POST, DELETE");
        return send_error(r, HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                          "use GET, POST or DELETE");
    }
    /* GET ?owner: the bootstrap's owner check, proven like a POST */
    owner_query = r->method_number == M_GET && r->args && !strcmp(r->args, "owner");
    if (pegadm_is_cross_site(r, owner_query)) {
        ap_discard_request_body(r);
        /* before the customer is known: a forged request names nobody */
        pegadm_audit(r, d, "refusal", "cross_origin", NULL, NULL, 0);
        return send_error(r, HTTP_FORBIDDEN, "cross_origin",
                          "this request must come from the portal's own pages");
    }
    if (r->method_number == M_POST && !pegadm_post_body_is_json(r)) {
        ap_discard_request_body(r);
        pegadm_audit(r, d, "refusal", "unsupported_media_type", NULL, NULL, 0);
        return send_error(r, HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
                          "the request body must be application/json");
    }
    if (r->method_number == M_POST) {
        status = read_trigger(r, &trigger, &problem);
        if (status != OK) {
            return send_error(r, status, "bad_request", problem);
        }
    } else if ((status = ap_discard_request_body(r)) != OK) {
        return status;
    }
    switch (pegadm_customer_id(r, d, &customer_id)) {
    case PEGADM_CUSTOMER_OK:
        break;
    case PEGADM_CUSTOMER_UNAVAILABLE:
        return answer_failure(r, PEGADM_SESSION_UPSTREAM, NULL);
    default:
        return send_error(r, HTTP_UNAUTHORIZED, "unauthenticated",
                          "log in to the portal first");
    }
    if (owner_query) {
        /* it fails only on the cache (or OpenSSL): a 503 like the cache's */
        st = pegadm_owner_of(r, d, customer_id, &owner, &previous);
        return st != PEGADM_SESSION_OK ? answer_failure(r, PEGADM_SESSION_STORE, NULL)
               : previous
                   ? send_json(r, HTTP_OK,
                               json_pack("{s:s, s:s}", "owner", owner, "previous", previous))
                   : send_json(r, HTTP_OK, json_pack("{s:s}", "owner", owner));
    }
    switch (r->method_number) {
    case M_GET:
        st = pegadm_session_op(r, d, customer_id, PEGADM_OP_GET, NULL, &res);
        break;
    case M_POST:
        st = pegadm_session_op(r, d, customer_id, PEGADM_OP_RENEW, trigger, &res);
        break;
    default:
        st = pegadm_session_op(r, d, customer_id, PEGADM_OP_FORGET, NULL, &res);
        if (st == PEGADM_SESSION_OK) {
            r->status = HTTP_NO_CONTENT;
            return OK;
        }
    }
    if (st != PEGADM_SESSION_OK) {
        return answer_failure(r, st, &res);
    }
    pegadm_logout_cookie_set(r, d, customer_id, res.created);
    return r->method_number == M_POST ? send_renewed(r, d, customer_id, res.session_id)
                                      : send_session(r, d, res.session_id);
}

/* The script (src/js/bootstrap.js) is one function expression, called
 * here with the scope's configuration; the same for every user of a scope,
 * never a session ID, so a foreign page that includes it learns nothing. */
#ifdef PEGADM_BOOTSTRAP_JS_HEADER
#include PEGADM_BOOTSTRAP_JS_HEADER /* made by the CMake build */
#else
#include "pegadm_bootstrap_js.h" /* the committed copy, for the apxs build */
#endif

int pegadm_bootstrap_handler(request_rec *r)
{
    const pegadm_dir_conf_t *d;
    json_t *config;
    char *config_text;

    if (!r->handler || strcmp(r->handler, PEGADM_HANDLER_BOOTSTRAP) != 0) {
        return DECLINED;
    }
    d = ap_get_module_config(r->per_dir_config, &pegadm_module);
    if (!d->widget_id || !d->secret) {
        return misconfigured(r);
    }
    r->allowed = (AP_METHOD_BIT << M_GET);
    if (r->method_number != M_GET) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    config = json_pack(
        "{s:s, s:s, s:s, s:b}", "sessionEndpoint", pegadm_conf_session_endpoint(d),
        "widgetScript",
        apr_pstrcat(r->pool, pegadm_conf_service_url(d), "/", d->widget_id, "/widget.js", NULL),
        "widgetId", d->widget_id, "allowInFrame", d->allow_in_frame == 1);
    config_text = json_dumps(config, JSON_COMPACT);
    json_decref(config);
    if (!config_text) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    ap_set_content_type(r, "application/javascript; charset=utf-8");
    /* said at once: past 8 KB the answer leaves in pieces, and without a
     * length mod_cache_socache keeps nothing */
    ap_set_content_length(r,
                          (apr_off_t)(strlen(pegadm_bootstrap_js) + strlen(config_text) + 4));
    pegadm_cache_control_bootstrap(r);
    apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
    ap_rputs(pegadm_bootstrap_js, r);
    ap_rputs("(", r);
    ap_rputs(config_text, r);
    ap_rputs(");\n", r);
    free(config_text);
    return OK;
}

static int default_port(const char *scheme)
{
    return !strcasecmp(scheme, "https") ? 443 : 80;
}

/* The request's own origin is the scheme httpd serves (ap_http_scheme:
 * https with mod_ssl, or with a ServerName that says https://) and the
 * Host header; Origin must equal it in scheme, host and port. */
static int origin_is_own(request_rec *r, const char *origin)
{
    const char *scheme = ap_http_scheme(r);
    const char *host = apr_table_get(r->headers_in, "Host");
    apr_uri_t o, own;

    if (!host || apr_uri_parse(r->pool, origin, &o) != APR_SUCCESS || !o.scheme ||
        !o.hostname || o.path || o.query || o.user ||
        apr_uri_parse(r->pool, apr_pstrcat(r->pool, scheme, "://", host, NULL), &own) !=
            APR_SUCCESS ||
        !own.hostname) {
        return 0;
    }
    return !strcasecmp(o.scheme, scheme) && !strcasecmp(o.hostname, own.hostname) &&
           (o.port_str ? o.port : default_port(o.scheme)) ==
               (own.port_str ? own.port : default_port(scheme));
}

static int pegadm_is_cross_site(request_rec *r, int strict)
{
    const char *site = apr_table_get(r->headers_in, "Sec-Fetch-Site");
    const char *origin;

    if (site) {
        /* a browser's own word: only these two mean "the portal's page"
         * (none: typed in, a bookmark) */
        return strcasecmp(site, "same-origin") != 0 && strcasecmp(site, "none") != 0;
    }
    if (r->method_number == M_GET && !strict) {
        return 0; /* reading needs no proof: another site cannot read the answer */
    }
    origin = apr_table_get(r->headers_in, "Origin");
    return !origin || !origin_is_own(r, origin);
}

static int pegadm_post_body_is_json(request_rec *r)
{
    const char *type = apr_table_get(r->headers_in, "Content-Type");
    const char *length = apr_table_get(r->headers_in, "Content-Length");
    apr_size_t n;

    if (!type) {
        /* the widget's optional body is JSON; only no body at all may go untyped */
        return !apr_table_get(r->headers_in, "Transfer-Encoding") &&
               (!length || !strcmp(length, "0"));
    }
    n = strcspn(type, "; \t");
    return n == 16 && !strncasecmp(type, "application/json", n);
}

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

static pegadm_session_status_t pegadm_owner_of(request_rec *r, const pegadm_dir_conf_t *d,
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
