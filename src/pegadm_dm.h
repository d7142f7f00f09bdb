/* The Pega Digital Messaging client: call 1 (create a session) and call 2
 * (push private data), see PEGA-DM-API.md. No httpd dependency. */
#ifndef PEGADM_DM_H
#define PEGADM_DM_H

#include <apr_pools.h>
#include <jansson.h>

#include "pegadm_http.h"

#define PEGADM_SESSION_ID_MAX 128 /* bytes */

typedef struct {
    const char *service_url;      /* base URL, no trailing slash */
    const char *private_data_url; /* full URL of the private-data endpoint */
    const char *widget_id;
    const unsigned char *secret;
    apr_size_t secret_len;
    int token_lifetime; /* seconds, exp - iat */
    pegadm_http_opts_t http;
} pegadm_dm_target_t;

typedef enum {
    PEGADM_DM_OK = 0,
    PEGADM_DM_UNREACHABLE, /* connect, TLS, timeout, transport error */
    PEGADM_DM_HTTP_STATUS, /* an answer outside 2xx */
    PEGADM_DM_BAD_ANSWER,  /* 2xx but not what the protocol promises */
    PEGADM_DM_INTERNAL     /* signing or encoding failed on our side */
} pegadm_dm_status_t;

/* True if sid (len bytes) is 1..PEGADM_SESSION_ID_MAX characters from
 * [A-Za-z0-9._~:-]: safe in JSON, HTML, headers, logs and environment. */
int pegadm_session_id_is_valid(const char *sid, apr_size_t len);

/* Interprets the service's answer to call 1. On PEGADM_DM_OK *session_id is
 * a valid session ID in p; otherwise *why says what was wrong. */
pegadm_dm_status_t pegadm_dm_parse_create_answer(apr_pool_t *p, long http_status,
                                                 const char *body, apr_size_t body_len,
                                                 const char **session_id, const char **why);

/* Call 1: POST {service}/{widget}/create {"customerId": id} with a token
 * whose iss is the widget ID. now is the token's iat. answered (may be
 * NULL) receives the HTTP status of the service's answer (0: none), which
 * tells a refused token (401, 403) from other failures. */
pegadm_dm_status_t pegadm_dm_create_session(apr_pool_t *p, const pegadm_dm_target_t *t,
                                            const char *customer_id, apr_time_t now,
                                            const char **session_id, long *answered,
                                            const char **why);

/* Call 2: POST payload (borrowed, a JSON object) to the private-data URL with
 * a token whose iss is session_id. Any 2xx is success. */
pegadm_dm_status_t pegadm_dm_push_private_data(apr_pool_t *p, const pegadm_dm_target_t *t,
                                               const char *session_id, json_t *payload,
                                               apr_time_t now, long *answered,
                                               const char **why);

#endif
