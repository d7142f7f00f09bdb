/* PegaDMInject: an output filter that adds the bootstrap <script> tag right
 * before </body> of HTML pages, for portals whose templates nobody can
 * change (a proxied legacy application, say). The scanning itself is the
 * httpd-free pegadm_html.c; this file is the bucket plumbing. */
#include "mod_pegadm.h"

#include <string.h>

#include <apr_buckets.h>
#include <apr_strings.h>
#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>
#include <util_filter.h>

#include "pegadm_html.h"

APLOG_USE_MODULE(pegadm);

/* Set on a request whose page got the tag, so that a second instance of
 * the filter in the same chain adds none. */
#define INJECTED_NOTE "pegadm-injected"
/* The client's Accept-Encoding, taken away before the handler so that a
 * proxied backend answers uncompressed, and put back once the answer is
 * here so mod_deflate can still compress what the client gets. */
#define ACCEPT_ENCODING_NOTE "pegadm-accept-encoding"
/* The id of the widget's own <script>: a page with such a script loads the widget. */
#define WIDGET_SCRIPT_ID "pega-wm-chat"
#define CARRY_MAX        8 /* >= the longest partial "</body" held back */

typedef struct {
    int scanning; /* 0 once the tag is in or the page is left alone */
    pegadm_html_scan_t *scan;
    const char *tag;
    char carry[CARRY_MAX]; /* a partial "</body" held back from the last piece */
    apr_size_t carry_len;
} inject_ctx_t;

static int is_html(const char *content_type)
{
    apr_size_t n;

    if (!content_type) {
        return 0;
    }
    n = strcspn(content_type, "; \t");
    return (n == 9 && !strncasecmp(content_type, "text/html", n)) ||
           (n == 21 && !strncasecmp(content_type, "application/xhtml+xml", n));
}

static int is_encoded(const request_rec *r)
{
    const char *enc = apr_table_get(r->headers_out, "Content-Encoding");
    if (!enc) {
        enc = r->content_encoding;
    }
    return enc && *enc && strcasecmp(enc, "identity") != 0;
}

static void restore_accept_encoding(request_rec *r)
{
    /* an internal redirect shares headers_in but starts with fresh notes */
    for (const request_rec *rr = r; rr; rr = rr->prev) {
        const char *saved = apr_table_get(rr->notes, ACCEPT_ENCODING_NOTE);
        if (saved) {
            apr_table_setn(r->headers_in, "Accept-Encoding", saved);
            return;
        }
    }
}

static const char *script_nonce(request_rec *r, const pegadm_dir_conf_t *d)
{
    const char *err = NULL, *nonce;

    if (!d->script_nonce) {
        return NULL;
    }
    nonce = ap_expr_str_exec(r, d->script_nonce, &err);
    if (err) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "PEGADM102: PegaDMScriptNonce could not be evaluated (%s); "
                      "the script tag goes in without a nonce",
                      err);
        return NULL;
    }
    return nonce;
}

/* The filter's state for a response it may change, or NULL to leave it
 * alone. Content-Length goes now: the headers may leave with the first
 * piece, before the scan knows whether the tag goes in. */
static inject_ctx_t *inject_start(ap_filter_t *f)
{
    request_rec *r = f->r;
    const pegadm_dir_conf_t *d = ap_get_module_config(r->per_dir_config, &pegadm_module);
    inject_ctx_t *ctx;

    /* no body, or a part of one (a backend's 206) whose offsets a tag would shift */
    if (r->main || r->header_only || r->status == HTTP_NO_CONTENT ||
        r->status == HTTP_NOT_MODIFIED || r->status == HTTP_PARTIAL_CONTENT ||
        !is_html(r->content_type)) {
        return NULL;
    }
    if (is_encoded(r)) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "PEGADM103: page left alone: it is content-encoded");
        return NULL;
    }
    ctx = apr_pcalloc(r->pool, sizeof(*ctx));
    ctx->scanning = 1;
    ctx->scan = pegadm_html_scan_make(r->pool, pegadm_conf_bootstrap_url(d), WIDGET_SCRIPT_ID);
    ctx->tag =
        pegadm_html_script_tag(r->pool, pegadm_conf_bootstrap_url(d), script_nonce(r, d));
    apr_table_unset(r->headers_out, "Content-Length");
    return ctx;
}

/* Replaces b by a heap bucket holding the held-back bytes, then b's. */
static apr_bucket *prepend_carry(ap_filter_t *f, inject_ctx_t *ctx, apr_bucket *b,
                                 const char **data, apr_size_t *len)
{
    apr_size_t total = ctx->carry_len + *len;
    char *buf = apr_bucket_alloc(total, f->c->bucket_alloc);
    apr_bucket *merged;

    memcpy(buf, ctx->carry, ctx->carry_len);
    memcpy(buf + ctx->carry_len, *data, *len);
    merged = apr_bucket_heap_create(buf, total, apr_bucket_free, f->c->bucket_alloc);
    APR_BUCKET_INSERT_BEFORE(b, merged);
    apr_bucket_delete(b);
    ctx->carry_len = 0;
    *data = buf;
    *len = total;
    return merged;
}

/* Keeps the last held bytes of b back for the next piece. */
static void hold_tail(inject_ctx_t *ctx, apr_bucket *b, const char *data, apr_size_t len,
                      apr_size_t held)
{
    apr_bucket *tail;

    memcpy(ctx->carry, data + len - held, held);
    ctx->carry_len = held;
    apr_bucket_split(b, len - held);
    tail = APR_BUCKET_NEXT(b);
    apr_bucket_delete(tail);
}

static void insert_tag(ap_filter_t *f, inject_ctx_t *ctx, apr_bucket *b, apr_size_t at)
{
    apr_bucket *tag;

    if (apr_table_get(f->r->notes, INJECTED_NOTE)) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, f->r,
                      "PEGADM104: page left alone: it already got the tag");
        return;
    }
    tag = apr_bucket_pool_create(ctx->tag, strlen(ctx->tag), f->r->pool, f->c->bucket_alloc);
    if (at > 0) {
        apr_bucket_split(b, at);
        APR_BUCKET_INSERT_AFTER(b, tag);
    } else {
        APR_BUCKET_INSERT_BEFORE(b, tag);
    }
    apr_table_setn(f->r->notes, INJECTED_NOTE, "1");
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, f->r,
                  "PEGADM100: added the bootstrap script tag before </body>");
}

/* Scans one data bucket, which may become another (*pb) on the way. */
static apr_status_t scan_bucket(ap_filter_t *f, inject_ctx_t *ctx, apr_bucket **pb)
{
    apr_size_t held = pegadm_html_held(ctx->scan), len, at = 0;
    const char *data;
    apr_status_t rv = apr_bucket_read(*pb, &data, &len, APR_BLOCK_READ);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (ctx->carry_len) {
        *pb = prepend_carry(f, ctx, *pb, &data, &len);
    }
    /* the scanner has seen the held bytes already: feed it only what is new */
    switch (pegadm_html_scan(ctx->scan, data + held, len - held, &at)) {
    case PEGADM_HTML_BODY_END:
        insert_tag(f, ctx, *pb, at);
        ctx->scanning = 0;
        break;
    case PEGADM_HTML_MARKER:
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, f->r,
                      "PEGADM101: page left alone: it already loads the widget");
        ctx->scanning = 0;
        break;
    default:
        held = pegadm_html_held(ctx->scan);
        if (held) {
            hold_tail(ctx, *pb, data, len, held);
        }
    }
    return APR_SUCCESS;
}

apr_status_t pegadm_inject_filter(ap_filter_t *f, apr_bucket_brigade *bb)
{
    inject_ctx_t *ctx = f->ctx;
    apr_status_t rv;

    if (!ctx) {
        restore_accept_encoding(f->r);
        f->ctx = ctx = inject_start(f);
        if (!ctx) {
            ap_remove_output_filter(f);
            return ap_pass_brigade(f->next, bb);
        }
    }
    for (apr_bucket *b = APR_BRIGADE_FIRST(bb); ctx->scanning && b != APR_BRIGADE_SENTINEL(bb);
         b = APR_BUCKET_NEXT(b)) {
        if (APR_BUCKET_IS_EOS(b)) {
            /* no </body> in the whole page: the held bytes go out as they are */
            if (ctx->carry_len) {
                APR_BUCKET_INSERT_BEFORE(b, apr_bucket_heap_create(ctx->carry, ctx->carry_len,
                                                                   NULL, f->c->bucket_alloc));
                ctx->carry_len = 0;
            }
            ctx->scanning = 0;
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, f->r,
                          "PEGADM105: page left alone: it has no </body>");
        } else if (!APR_BUCKET_IS_METADATA(b) &&
                   (rv = scan_bucket(f, ctx, &b)) != APR_SUCCESS) {
            return rv;
        }
        /* A FLUSH passes; a held partial "</body" (at most 6 bytes) stays
         * until the next piece shows whether the tag goes before it. */
    }
    if (!ctx->scanning) {
        ap_remove_output_filter(f);
    }
    return ap_pass_brigade(f->next, bb);
}

/* Adds the filter to main requests where PegaDMInject is On. */
void pegadm_inject_insert(request_rec *r)
{
    const pegadm_dir_conf_t *d = ap_get_module_config(r->per_dir_config, &pegadm_module);
    const char *accept_encoding;

    if (d->inject != 1 || r->main) {
        return;
    }
    accept_encoding = apr_table_get(r->headers_in, "Accept-Encoding");
    if (accept_encoding) {
        apr_table_setn(r->notes, ACCEPT_ENCODING_NOTE, accept_encoding);
        apr_table_unset(r->headers_in, "Accept-Encoding");
    }
    ap_add_output_filter(PEGADM_INJECT_FILTER, NULL, r, r->connection);
}
