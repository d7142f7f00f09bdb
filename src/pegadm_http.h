/* The one outbound HTTP operation the module needs: POST a JSON body with a
 * bearer token, read a bounded answer. Implemented with libcurl. */
#ifndef PEGADM_HTTP_H
#define PEGADM_HTTP_H

#include <apr_pools.h>
#include <apr_time.h>

#define PEGADM_HTTP_MAX_BODY (64 * (apr_size_t)1024) /* larger answers are a failure */

/* A per-process set of idle libcurl handles. A call takes one and gives it
 * back, so the next call reuses its open connection and TLS session instead
 * of a handshake per call. Thread-safe. */
typedef struct pegadm_http_handles_t pegadm_http_handles_t;

typedef struct {
    const char *ca_file;         /* NULL: system trust store */
    const char *proxy;           /* NULL: no proxy (environment ignored) */
    apr_interval_time_t timeout; /* whole call, connect included */
    apr_interval_time_t connect_timeout;
    pegadm_http_handles_t *handles; /* NULL: a new connection per call */
} pegadm_http_opts_t;

typedef enum {
    PEGADM_HTTP_OK = 0,  /* a complete HTTP answer arrived (any status) */
    PEGADM_HTTP_CONNECT, /* refused, unreachable, DNS, proxy */
    PEGADM_HTTP_TIMEOUT,
    PEGADM_HTTP_TLS,       /* handshake or certificate verification failed */
    PEGADM_HTTP_TOO_LARGE, /* body over PEGADM_HTTP_MAX_BODY */
    PEGADM_HTTP_ERROR      /* anything else (reset, protocol error, internal) */
} pegadm_http_status_t;

typedef struct {
    long status;      /* HTTP status code */
    const char *body; /* NUL-terminated, in the caller's pool */
    apr_size_t body_len;
    const char *error; /* set when the call failed: why, for the log */
} pegadm_http_response_t;

/* Once per process, before threads exist. */
apr_status_t pegadm_http_global_init(void);

/* Keeps at most max_idle idle handles (more exist while more calls run at
 * once; the surplus is closed after use). Everything is freed with p, which
 * must outlive every call using the set: a child process's pool does. */
apr_status_t pegadm_http_handles_create(apr_pool_t *p, int max_idle,
                                        pegadm_http_handles_t **handles);

/* How many idle handles are kept right now. */
int pegadm_http_handles_idle(pegadm_http_handles_t *handles);

/* POSTs body (body_len bytes, Content-Type: application/json) to url with
 * "Authorization: Bearer <bearer>". Only http and https are allowed, TLS is
 * always verified, redirects are not followed. Never logs. */
pegadm_http_status_t pegadm_http_post_json(apr_pool_t *p, const char *url, const char *bearer,
                                           const char *body, apr_size_t body_len,
                                           const pegadm_http_opts_t *opts,
                                           pegadm_http_response_t *resp);

#endif

/* ---- preflight: is the service there, and how long is its certificate
 * good for ---- */

/* Resolves url's host, connects and (https) completes a verified TLS
 * handshake, sending no request. *not_after is the earliest expiry of the
 * certificates the server sent (0 for plain http or if unknown); *error
 * says why on failure. Uses a connection of its own. */
pegadm_http_status_t pegadm_http_probe(apr_pool_t *p, const char *url,
                                       const pegadm_http_opts_t *opts, apr_time_t *not_after,
                                       const char **error);

/* HEAD url with a handle of opts->handles, which goes back with its open
 * connection: the next call pays no handshake. *status is the answer's. */
pegadm_http_status_t pegadm_http_warm(apr_pool_t *p, const char *url,
                                      const pegadm_http_opts_t *opts, long *status,
                                      const char **error);

/* A certificate time as libcurl's OpenSSL back end prints it ("Dec  2
 * 08:00:00 2026 GMT"); APR_EINVAL if it is not one. */
apr_status_t pegadm_http_parse_cert_time(const char *text, apr_time_t *out);
