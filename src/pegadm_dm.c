/* The two Pega Digital Messaging calls. Every why is for the admin's log:
 * it names the call and what went wrong, never the token, the secret, the
 * session ID or the raw text of the service's answer. */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "pegadm_dm.h"
#include "pegadm_jwt.h"

static int pegadm_session_id_char_ok(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '~' || c == ':' || c == '-';
}

int pegadm_session_id_is_valid(const char *sid, apr_size_t len)
{
    apr_size_t i;

    if (!sid || len == 0 || len > PEGADM_SESSION_ID_MAX) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (!pegadm_session_id_char_ok(sid[i])) {
            return 0;
        }
    }
    return 1;
}

static int pegadm_dm_status_is_2xx(apr_pool_t *p, long http_status, const char **why)
{
    if (http_status >= 200 && http_status <= 299) {
        return 1;
    }
    /* 401 and 403 are what a wrong secret or widget ID earns: say so. */
    *why = apr_psprintf(p, "service answered HTTP %ld%s", http_status,
                        http_status == 401 || http_status == 403
                            ? " (it refused the token: check PegaDMJWTSecret and "
                              "PegaDMWidgetID)"
                            : "");
    return 0;
}

/* What was wrong with a body jansson refused. jansson's own text quotes
 * the offending token, so it is not used: the body is untrusted. */
static const char *pegadm_dm_json_error(apr_pool_t *p, const json_error_t *err)
{
    switch (json_error_code(err)) {
    case json_error_premature_end_of_input:
        return "answer is truncated JSON";
    case json_error_duplicate_key:
        return "answer is JSON with a duplicate key";
    case json_error_end_of_input_expected:
        return "answer has data after the JSON value";
    case json_error_invalid_utf8:
        return "answer is not valid UTF-8";
    default:
        return apr_psprintf(p, "answer is not JSON (error at byte %d)", err->position);
    }
}

static pegadm_dm_status_t pegadm_dm_session_id_from(apr_pool_t *p, const json_t *answer,
                                                    const char **session_id, const char **why)
{
    const json_t *sid = json_object_get(answer, "sessionId");
    apr_size_t len = json_string_length(sid);

    if (!json_is_object(answer)) {
        *why = "answer is not a JSON object";
    } else if (!sid) {
        *why = "answer has no sessionId";
    } else if (!json_is_string(sid)) {
        *why = "sessionId in the answer is not a string";
    } else if (len == 0) {
        *why = "sessionId in the answer is empty";
    } else if (len > PEGADM_SESSION_ID_MAX) {
        *why = apr_psprintf(p, "sessionId in the answer is longer than %d bytes",
                            PEGADM_SESSION_ID_MAX);
    } else if (!pegadm_session_id_is_valid(json_string_value(sid), len)) {
        *why = "sessionId in the answer has characters outside [A-Za-z0-9._~:-]";
    } else {
        *session_id = apr_pstrmemdup(p, json_string_value(sid), len);
        return PEGADM_DM_OK;
    }
    return PEGADM_DM_BAD_ANSWER;
}

pegadm_dm_status_t pegadm_dm_parse_create_answer(apr_pool_t *p, long http_status,
                                                 const char *body, apr_size_t body_len,
                                                 const char **session_id, const char **why)
{
    json_error_t err;
    json_t *answer;
    pegadm_dm_status_t status;

    *session_id = NULL;
    *why = NULL;
    if (!pegadm_dm_status_is_2xx(p, http_status, why)) {
        return PEGADM_DM_HTTP_STATUS;
    }
    answer = json_loadb(body ? body : "", body_len, JSON_REJECT_DUPLICATES, &err);
    if (!answer) {
        *why = pegadm_dm_json_error(p, &err);
        return PEGADM_DM_BAD_ANSWER;
    }
    status = pegadm_dm_session_id_from(p, answer, session_id, why);
    json_decref(answer);
    return status;
}

static pegadm_dm_status_t pegadm_dm_status_from_http(apr_pool_t *p, pegadm_http_status_t hs,
                                                     const pegadm_http_response_t *resp,
                                                     const char **why)
{
    switch (hs) {
    case PEGADM_HTTP_OK:
        return PEGADM_DM_OK;
    case PEGADM_HTTP_CONNECT:
        *why = apr_pstrcat(p, "cannot connect: ", resp->error, NULL);
        return PEGADM_DM_UNREACHABLE;
    case PEGADM_HTTP_TIMEOUT:
        *why = apr_pstrcat(p, "timed out: ", resp->error, NULL);
        return PEGADM_DM_UNREACHABLE;
    case PEGADM_HTTP_TLS:
        *why = apr_pstrcat(p, "TLS failure: ", resp->error, NULL);
        return PEGADM_DM_UNREACHABLE;
    case PEGADM_HTTP_TOO_LARGE:
        *why = resp->error;
        return PEGADM_DM_BAD_ANSWER;
    default:
        *why = apr_pstrcat(p, "transport error: ", resp->error, NULL);
        return PEGADM_DM_UNREACHABLE;
    }
}

/* Signs a token for iss and POSTs body to url. On PEGADM_DM_OK, resp holds
 * the service's answer, whatever its status. */
static pegadm_dm_status_t pegadm_dm_post(apr_pool_t *p, const pegadm_dm_target_t *t,
                                         const char *url, const char *iss, const json_t *body,
                                         apr_time_t now, pegadm_http_response_t *resp,
                                         long *answered, const char **why)
{
    apr_int64_t iat = apr_time_sec(now);
    const char *token =
        pegadm_jwt_sign_hs256(p, t->secret, t->secret_len, iss, iat, iat + t->token_lifetime);
    char *text;
    pegadm_http_status_t hs;

    if (!token) {
        *why = "could not sign the token";
        return PEGADM_DM_INTERNAL;
    }
    text = json_dumps(body, JSON_COMPACT);
    if (!text) {
        *why = "could not encode the request body";
        return PEGADM_DM_INTERNAL;
    }
    hs = pegadm_http_post_json(p, url, token, text, strlen(text), &t->http, resp);
    free(text);
    if (answered) {
        *answered = hs == PEGADM_HTTP_OK ? resp->status : 0;
    }
    return pegadm_dm_status_from_http(p, hs, resp, why);
}

/* Says which call a failure came from. */
static pegadm_dm_status_t pegadm_dm_for_call(apr_pool_t *p, const char *url,
                                             pegadm_dm_status_t status, const char **why)
{
    if (status != PEGADM_DM_OK) {
        *why = apr_pstrcat(p, "POST ", url, ": ", *why, NULL);
    }
    return status;
}

/* {"customerId": id}; NULL if id is not valid UTF-8. */
static json_t *pegadm_dm_create_body(const char *customer_id)
{
    json_t *body = json_object();

    if (json_object_set_new(body, "customerId",
                            json_stringn(customer_id, strlen(customer_id))) != 0) {
        json_decref(body);
        return NULL;
    }
    return body;
}

pegadm_dm_status_t pegadm_dm_create_session(apr_pool_t *p, const pegadm_dm_target_t *t,
                                            const char *customer_id, apr_time_t now,
                                            const char **session_id, long *answered,
                                            const char **why)
{
    const char *url = apr_pstrcat(p, t->service_url, "/", t->widget_id, "/create", NULL);
    json_t *body = pegadm_dm_create_body(customer_id);
    pegadm_http_response_t resp;
    pegadm_dm_status_t status;

    *session_id = NULL;
    *why = NULL;
    if (!body) {
        *why = "customer ID is not valid UTF-8";
        return pegadm_dm_for_call(p, url, PEGADM_DM_INTERNAL, why);
    }
    status = pegadm_dm_post(p, t, url, t->widget_id, body, now, &resp, answered, why);
    json_decref(body);
    if (status == PEGADM_DM_OK) {
        status = pegadm_dm_parse_create_answer(p, resp.status, resp.body, resp.body_len,
                                               session_id, why);
    }
    return pegadm_dm_for_call(p, url, status, why);
}

pegadm_dm_status_t pegadm_dm_push_private_data(apr_pool_t *p, const pegadm_dm_target_t *t,
                                               const char *session_id, json_t *payload,
                                               apr_time_t now, long *answered, const char **why)
{
    const char *url = t->private_data_url;
    pegadm_http_response_t resp;
    pegadm_dm_status_t status;

    *why = NULL;
    if (!json_is_object(payload)) {
        *why = "private data is not a JSON object";
        return pegadm_dm_for_call(p, url, PEGADM_DM_INTERNAL, why);
    }
    status = pegadm_dm_post(p, t, url, session_id, payload, now, &resp, answered, why);
    if (status == PEGADM_DM_OK && !pegadm_dm_status_is_2xx(p, resp.status, why)) {
        status = PEGADM_DM_HTTP_STATUS;
    }
    return pegadm_dm_for_call(p, url, status, why);
}
