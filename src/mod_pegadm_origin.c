/* Which requests to the session endpoint come from the portal's own pages:
 * an allow-list over the browser's Fetch Metadata and Origin headers, and
 * the media type of a POST body. A cross-site page can make a browser send
 * a form or a no-cors fetch with the user's cookies; it cannot make it
 * claim Sec-Fetch-Site: same-origin, send the portal's own Origin, or post
 * application/json without a preflight the endpoint never answers. */
#include "mod_pegadm.h"

#include <string.h>

#include <apr_strings.h>
#include <apr_uri.h>
#include <http_core.h>
#include <http_protocol.h>

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

int pegadm_is_cross_site(request_rec *r, int strict)
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

int pegadm_post_body_is_json(request_rec *r)
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
