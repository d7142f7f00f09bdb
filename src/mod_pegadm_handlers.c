/* The two handlers: pegadm-session (JSON) and pegadm-bootstrap (JavaScript). */
#include "mod_pegadm.h"

#include <string.h>

#include <apr_strings.h>
#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>

#include "mod_pegadm_ops.h"
#include "pegadm_answer.h"
#include "pegadm_trigger.h"

APLOG_USE_MODULE(pegadm);

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
    const char *customer_id, *trigger = NULL, *problem = NULL, *owner = NULL;
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
        st = pegadm_owner_of(r, d, customer_id, &owner);
        return st == PEGADM_SESSION_OK
                   ? send_json(r, HTTP_OK, json_pack("{s:s}", "owner", owner))
                   : answer_failure(r, PEGADM_SESSION_STORE, NULL);
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
    return st == PEGADM_SESSION_OK ? send_session(r, d, res.session_id)
                                   : answer_failure(r, st, &res);
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
        "{s:s, s:s, s:s}", "sessionEndpoint", pegadm_conf_session_endpoint(d), "widgetScript",
        apr_pstrcat(r->pool, pegadm_conf_service_url(d), "/", d->widget_id, "/widget.js", NULL),
        "widgetId", d->widget_id);
    config_text = json_dumps(config, JSON_COMPACT);
    json_decref(config);
    if (!config_text) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    ap_set_content_type(r, "application/javascript; charset=utf-8");
    pegadm_cache_control_bootstrap(r);
    apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
    ap_rputs(pegadm_bootstrap_js, r);
    ap_rputs("(", r);
    ap_rputs(config_text, r);
    ap_rputs(");\n", r);
    free(config_text);
    return OK;
}
