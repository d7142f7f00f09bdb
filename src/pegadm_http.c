/* pegadm_http on libcurl. Transport options (which depend only on the
 * target) are kept apart from per-request ones; a handle from a
 * pegadm_http_handles_t set keeps its connections between calls. */
#include <string.h>
#include <time.h>

#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <curl/curl.h>

#include "pegadm_confcheck.h"
#include "pegadm_http.h"

typedef struct {
    apr_pool_t *p;
    char *data;
    apr_size_t len;
    apr_size_t cap; /* always > len: room for the final NUL */
    int too_large;
} pegadm_http_sink_t;

apr_status_t pegadm_http_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? APR_SUCCESS : APR_EGENERAL;
}

/* ---- the set of idle handles: a stack, so the handle used last (with the
 * connection most likely still open) is taken first ---- */

struct pegadm_http_handles_t {
    apr_thread_mutex_t *mutex;
    CURL **idle;
    int count;
    int max;
};

static apr_status_t pegadm_http_handles_cleanup(void *data)
{
    pegadm_http_handles_t *hs = data;
    while (hs->count > 0) {
        curl_easy_cleanup(hs->idle[--hs->count]);
    }
    return APR_SUCCESS;
}

apr_status_t pegadm_http_handles_create(apr_pool_t *p, int max_idle,
                                        pegadm_http_handles_t **handles)
{
    pegadm_http_handles_t *hs = apr_pcalloc(p, sizeof(*hs));
    apr_status_t rv = apr_thread_mutex_create(&hs->mutex, APR_THREAD_MUTEX_DEFAULT, p);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    hs->max = max_idle > 0 ? max_idle : 1;
    hs->idle = apr_pcalloc(p, sizeof(CURL *) * (apr_size_t)hs->max);
    /* Registered after the mutex's own cleanup, so it runs before it. */
    apr_pool_cleanup_register(p, hs, pegadm_http_handles_cleanup, apr_pool_cleanup_null);
    *handles = hs;
    return APR_SUCCESS;
}

int pegadm_http_handles_idle(pegadm_http_handles_t *hs)
{
    int count = 0;
    if (apr_thread_mutex_lock(hs->mutex) == APR_SUCCESS) {
        count = hs->count;
        apr_thread_mutex_unlock(hs->mutex);
    }
    return count;
}

/* An idle handle of the set, or a new one; NULL if out of memory. */
static CURL *pegadm_http_take(pegadm_http_handles_t *hs)
{
    CURL *h = NULL;
    if (hs && apr_thread_mutex_lock(hs->mutex) == APR_SUCCESS) {
        if (hs->count > 0) {
            h = hs->idle[--hs->count];
        }
        apr_thread_mutex_unlock(hs->mutex);
    }
    return h ? h : curl_easy_init();
}

/* Keeps h for a later call, or closes it. curl_easy_reset drops every
 * option, and with them the pointers into this call's memory (headers,
 * body, error buffer, sink), but keeps the open connections and the TLS
 * session and DNS caches: what reuse is for. */
static void pegadm_http_give_back(pegadm_http_handles_t *hs, CURL *h)
{
    if (!h) {
        return;
    }
    curl_easy_reset(h);
    if (hs && apr_thread_mutex_lock(hs->mutex) == APR_SUCCESS) {
        if (hs->count < hs->max) {
            hs->idle[hs->count++] = h;
            h = NULL;
        }
        apr_thread_mutex_unlock(hs->mutex);
    }
    if (h) {
        curl_easy_cleanup(h);
    }
}

/* Collects the body in the pool; returning short makes curl abort the
 * transfer with CURLE_WRITE_ERROR once the answer is too large. */
static size_t pegadm_http_sink_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    pegadm_http_sink_t *sink = userdata;
    apr_size_t n = size * nmemb;

    if (n > PEGADM_HTTP_MAX_BODY - sink->len) {
        sink->too_large = 1;
        return 0;
    }
    if (sink->len + n >= sink->cap) {
        apr_size_t cap = sink->cap * 2;
        char *grown;
        while (cap <= sink->len + n) {
            cap *= 2;
        }
        grown = apr_palloc(sink->p, cap);
        memcpy(grown, sink->data, sink->len);
        sink->data = grown;
        sink->cap = cap;
    }
    memcpy(sink->data + sink->len, ptr, n);
    sink->len += n;
    return n;
}

/* Security-relevant settings: a failure to set any of them fails the call. */
static CURLcode pegadm_http_set_transport(CURL *h, const pegadm_http_opts_t *opts)
{
    long timeout_ms = (long)apr_time_as_msec(opts->timeout);
    long connect_timeout_ms = (long)apr_time_as_msec(opts->connect_timeout);
    int failed = 0;

    failed |= curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    failed |= curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
    failed |= curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
    failed |= curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
    failed |= curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
    failed |=
        curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2) != CURLE_OK;
    if (opts->ca_file) {
        failed |= curl_easy_setopt(h, CURLOPT_CAINFO, opts->ca_file) != CURLE_OK;
    }
    /* "" disables the proxy and the http_proxy/no_proxy environment with it. */
    failed |= curl_easy_setopt(h, CURLOPT_PROXY, opts->proxy ? opts->proxy : "") != CURLE_OK;
    failed |= curl_easy_setopt(h, CURLOPT_NOPROXY, "") != CURLE_OK;
    failed |= curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms) != CURLE_OK;
    failed |= curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect_timeout_ms) != CURLE_OK;
    failed |= curl_easy_setopt(h, CURLOPT_USERAGENT, "mod_pegadm") != CURLE_OK;
    return failed ? CURLE_FAILED_INIT : CURLE_OK;
}

/* The request headers; NULL if out of memory. Free with curl_slist_free_all. */
static struct curl_slist *pegadm_http_json_headers(apr_pool_t *p, const char *bearer)
{
    const char *lines[] = {
        "Content-Type: application/json",
        "Accept: application/json",
        /* No "100 Continue" round trip for a small body. */
        "Expect:",
        apr_pstrcat(p, "Authorization: Bearer ", bearer, NULL),
    };
    struct curl_slist *headers = NULL;
    apr_size_t i;

    for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        struct curl_slist *more = curl_slist_append(headers, lines[i]);
        if (!more) {
            curl_slist_free_all(headers);
            return NULL;
        }
        headers = more;
    }
    return headers;
}

static pegadm_http_status_t pegadm_http_status_from_curl(CURLcode rc, int too_large)
{
    switch (rc) {
    case CURLE_OK:
        return PEGADM_HTTP_OK;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_PROXY:
        return PEGADM_HTTP_CONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        return PEGADM_HTTP_TIMEOUT;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        return PEGADM_HTTP_TLS;
    case CURLE_FILESIZE_EXCEEDED:
        return PEGADM_HTTP_TOO_LARGE;
    case CURLE_WRITE_ERROR:
        return too_large ? PEGADM_HTTP_TOO_LARGE : PEGADM_HTTP_ERROR;
    default:
        return PEGADM_HTTP_ERROR;
    }
}

/* Per-request settings; sink and errbuf must outlive the transfer. */
static CURLcode pegadm_http_set_request(CURL *h, const char *url, struct curl_slist *headers,
                                        const char *body, apr_size_t body_len,
                                        pegadm_http_sink_t *sink, char *errbuf)
{
    curl_off_t max_body = PEGADM_HTTP_MAX_BODY;
    int failed = 0;

    failed |= curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf) != CURLE_OK;
    failed |= curl_easy_setopt(h, CURLOPT_URL, url) != CURLE_OK;
    failed |= curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers) != CURLE_OK;
    /* A NULL body would make curl read the body from stdin. */
    failed |= curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "") != CURLE_OK;
    failed |=
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len) != CURLE_OK;
    /* Refuses an announced oversized body before reading any of it. */
    failed |= curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, max_body) != CURLE_OK;
    failed |= curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, pegadm_http_sink_write) != CURLE_OK;
    failed |= curl_easy_setopt(h, CURLOPT_WRITEDATA, sink) != CURLE_OK;
    return failed ? CURLE_FAILED_INIT : CURLE_OK;
}

/* Runs one POST on a handle that already has its transport settings. */
static pegadm_http_status_t pegadm_http_perform(CURL *h, apr_pool_t *p, const char *url,
                                                struct curl_slist *headers, const char *body,
                                                apr_size_t body_len,
                                                pegadm_http_response_t *resp)
{
    char errbuf[CURL_ERROR_SIZE] = "";
    pegadm_http_sink_t sink = {p, apr_palloc(p, 1024), 0, 1024, 0};
    pegadm_http_status_t status;
    CURLcode rc;

    if (pegadm_http_set_request(h, url, headers, body, body_len, &sink, errbuf) != CURLE_OK) {
        resp->error = "could not configure the libcurl request";
        return PEGADM_HTTP_ERROR;
    }
    rc = curl_easy_perform(h);
    /* errbuf dies with this frame; a kept handle must not point at it. */
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    status = pegadm_http_status_from_curl(rc, sink.too_large);
    if (status == PEGADM_HTTP_TOO_LARGE) {
        resp->error = apr_psprintf(p, "answer larger than %" APR_SIZE_T_FMT " bytes",
                                   PEGADM_HTTP_MAX_BODY);
    } else if (status != PEGADM_HTTP_OK) {
        resp->error = apr_pstrdup(p, errbuf[0] ? errbuf : curl_easy_strerror(rc));
    } else if (curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status) != CURLE_OK) {
        resp->error = "no HTTP status in the answer";
        status = PEGADM_HTTP_ERROR;
    }
    sink.data[sink.len] = '\0';
    resp->body = sink.data;
    resp->body_len = sink.len;
    return status;
}

pegadm_http_status_t pegadm_http_post_json(apr_pool_t *p, const char *url, const char *bearer,
                                           const char *body, apr_size_t body_len,
                                           const pegadm_http_opts_t *opts,
                                           pegadm_http_response_t *resp)
{
    struct curl_slist *headers = NULL;
    pegadm_http_status_t status = PEGADM_HTTP_ERROR;
    CURL *h;

    resp->status = 0;
    resp->body = "";
    resp->body_len = 0;
    /* the start-up check sees one scope at a time; this holds for every call */
    resp->error = pegadm_check_cleartext_proxy(p, url, opts->proxy);
    if (resp->error) {
        return PEGADM_HTTP_ERROR;
    }
    h = pegadm_http_take(opts->handles);
    if (!h) {
        resp->error = "could not create a libcurl handle";
    } else if (pegadm_http_set_transport(h, opts) != CURLE_OK) {
        resp->error = "could not configure libcurl";
    } else if (!(headers = pegadm_http_json_headers(p, bearer))) {
        resp->error = "out of memory building the request headers";
    } else {
        status = pegadm_http_perform(h, p, url, headers, body, body_len, resp);
    }
    pegadm_http_give_back(opts->handles, h);
    curl_slist_free_all(headers);
    return status;
}

/* ---- preflight ---- */

apr_status_t pegadm_http_parse_cert_time(const char *text, apr_time_t *out)
{
    struct tm tm;
    const char *end;

    memset(&tm, 0, sizeof(tm));
    end = strptime(text, "%b %d %H:%M:%S %Y GMT", &tm);
    if (!end || *end) {
        return APR_EINVAL;
    }
    *out = apr_time_from_sec(timegm(&tm));
    return APR_SUCCESS;
}

/* The earliest "Expire date" of the chain libcurl collected. */
static apr_time_t pegadm_http_chain_expiry(CURL *h)
{
    static const char field[] = "Expire date:";
    struct curl_certinfo *info = NULL;
    apr_time_t earliest = 0, t;

    if (curl_easy_getinfo(h, CURLINFO_CERTINFO, &info) != CURLE_OK || !info) {
        return 0;
    }
    for (int i = 0; i < info->num_of_certs; i++) {
        for (struct curl_slist *f = info->certinfo[i]; f; f = f->next) {
            if (!strncmp(f->data, field, sizeof(field) - 1) &&
                pegadm_http_parse_cert_time(f->data + sizeof(field) - 1, &t) == APR_SUCCESS &&
                (!earliest || t < earliest)) {
                earliest = t;
            }
        }
    }
    return earliest;
}

pegadm_http_status_t pegadm_http_probe(apr_pool_t *p, const char *url,
                                       const pegadm_http_opts_t *opts, apr_time_t *not_after,
                                       const char **error)
{
    char errbuf[CURL_ERROR_SIZE] = "";
    pegadm_http_status_t status = PEGADM_HTTP_ERROR;
    CURL *h = curl_easy_init();
    CURLcode rc;

    *not_after = 0;
    *error = NULL;
    if (!h || pegadm_http_set_transport(h, opts) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_URL, url) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_CERTINFO, 1L) != CURLE_OK) {
        *error = "could not configure libcurl";
    } else {
        rc = curl_easy_perform(h);
        status = pegadm_http_status_from_curl(rc, 0);
        if (status == PEGADM_HTTP_OK) {
            *not_after = pegadm_http_chain_expiry(h);
        } else {
            *error = apr_pstrdup(p, errbuf[0] ? errbuf : curl_easy_strerror(rc));
        }
    }
    if (h) {
        curl_easy_cleanup(h);
    }
    return status;
}

pegadm_http_status_t pegadm_http_warm(apr_pool_t *p, const char *url,
                                      const pegadm_http_opts_t *opts, long *status,
                                      const char **error)
{
    char errbuf[CURL_ERROR_SIZE] = "";
    pegadm_http_status_t result = PEGADM_HTTP_ERROR;
    CURL *h = pegadm_http_take(opts->handles);
    CURLcode rc;

    *status = 0;
    *error = NULL;
    if (!h || pegadm_http_set_transport(h, opts) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_URL, url) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L) != CURLE_OK) {
        *error = "could not configure libcurl";
    } else {
        rc = curl_easy_perform(h);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
        result = pegadm_http_status_from_curl(rc, 0);
        if (result == PEGADM_HTTP_OK) {
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
        } else {
            *error = apr_pstrdup(p, errbuf[0] ? errbuf : curl_easy_strerror(rc));
        }
    }
    pegadm_http_give_back(opts->handles, h);
    return result;
}
