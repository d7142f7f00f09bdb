/* PegaDMInject: an output filter that adds the bootstrap <script> tag right
 * before </body> of HTML pages, for portals whose templates nobody can
 * change (a proxied legacy application, say). The scanning itself is the
 * httpd-free pegadm_html.c; this file is the bucket plumbing: which answers
 * it may change (GET and HEAD of HTML in an ASCII-compatible charset, never
 * a document WebDAV may save back), the headers HTTP then asks for (no
 * length, no strong ETag), and passing the page on as it comes. */
#include "mod_pegadm.h"

#include <dlfcn.h>
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
/* The client's Accept-Encoding, taken away before the handler of a request
 * for a page so that a proxied backend answers uncompressed, and put back
 * once the answer is here so mod_deflate can still compress what the
 * client gets. */
#define ACCEPT_ENCODING_NOTE "pegadm-accept-encoding"
/* The id of the widget's own <script>: a page with such a script loads the widget. */
#define WIDGET_SCRIPT_ID "pega-wm-chat"
#define CARRY_MAX        8 /* >= the longest partial "</body" held back */
/* Data that waits to go on while the page is read: passed on beyond this,
 * so that a page of any size costs a child about this much (plus one read
 * of a bucket: 8 KB, or 4 MB of a memory-mapped file). */
#define PASS_AT ((apr_off_t)64 * 1024)

/* mod_dav's dav_get_provider(), when mod_dav is loaded: it names the
 * provider of a request's scope, NULL where Dav is off. Looked up by name
 * so that this module loads without mod_dav. */
typedef const void *(*dav_provider_fn)(request_rec *r);
static dav_provider_fn dav_get_provider_fn;

typedef struct {
    int scanning; /* 0 once the tag is in or the page is left alone */
    pegadm_html_scan_t *scan;
    const char *tag;
    char carry[CARRY_MAX]; /* a partial "</body" held back from the last piece */
    apr_size_t carry_len;
    apr_bucket_brigade *out; /* scanned, on its way to the next filter */
    apr_off_t out_len;
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

/* Why the answer to r is a document a client may save back, which must
 * reach it as stored: NULL when it is not. */
static const char *saved_back(request_rec *r)
{
    const char *translate = apr_table_get(r->headers_in, "Translate");

    if (r->method_number != M_GET) {
        return "the method is not GET or HEAD";
    }
    if (translate && !strcasecmp(translate, "f")) {
        return "the request has Translate: f";
    }
    if (dav_get_provider_fn && dav_get_provider_fn(r)) {
        return "WebDAV is on for it (Dav)";
    }
    return NULL;
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

/* The changed body is another representation: a strong ETag of the stored
 * one would let a range or a cache join pieces of both. Weak, and told
 * apart; dropped when it is not a quoted value. */
static void weaken_etag(request_rec *r)
{
    const char *etag = apr_table_get(r->headers_out, "ETag");
    apr_size_t len;

    if (!etag) {
        return;
    }
    if (!strncmp(etag, "W/", 2)) {
        etag += 2;
    }
    len = strlen(etag);
    if (len < 2 || etag[0] != '"' || etag[len - 1] != '"') {
        apr_table_unset(r->headers_out, "ETag");
        return;
    }
    apr_table_setn(r->headers_out, "ETag",
                   apr_psprintf(r->pool, "W/%.*s-pegadm\"", (int)(len - 1), etag));
}

/* Whether the answer is one the filter may change; logs why not where an
 * administrator may wonder. */
static int may_change(request_rec *r)
{
    const char *why;

    /* no body, or a part of one (a backend's 206) whose offsets a tag would shift */
    if (r->main || r->status == HTTP_NO_CONTENT || r->status == HTTP_NOT_MODIFIED ||
        r->status == HTTP_PARTIAL_CONTENT || !is_html(r->content_type)) {
        return 0;
    }
    if ((why = saved_back(r)) != NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "PEGADM108: page left alone: a client may save it back (%s)", why);
        return 0;
    }
    if (is_encoded(r)) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "PEGADM103: page left alone: it is content-encoded");
        return 0;
    }
    if (!pegadm_html_charset_ascii(r->content_type)) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "PEGADM107: page left alone: its charset is not ASCII-compatible (%s)",
                      r->content_type);
        return 0;
    }
    return 1;
}

/* The filter's state for a response it may change, or NULL to leave it
 * alone. The headers may leave with the first piece, before the scan knows
 * whether the tag goes in: the length goes now (HEAD too, whose answer
 * must not announce the stored page's length where GET sends more), and
 * the ETag is made weak. A HEAD is scanned as GET is, so that where the
 * content-length filter counts the body, both count the tag. */
static inject_ctx_t *inject_start(ap_filter_t *f)
{
    request_rec *r = f->r;
    const pegadm_dir_conf_t *d = ap_get_module_config(r->per_dir_config, &pegadm_module);
    inject_ctx_t *ctx;

    if (!may_change(r)) {
        return NULL;
    }
    ctx = apr_pcalloc(r->pool, sizeof(*ctx));
    ctx->scanning = 1;
    ctx->scan = pegadm_html_scan_make(r->pool, pegadm_conf_bootstrap_url(d), WIDGET_SCRIPT_ID);
    ctx->tag =
        pegadm_html_script_tag(r->pool, pegadm_conf_bootstrap_url(d), script_nonce(r, d));
    ctx->out = apr_brigade_create(r->pool, f->c->bucket_alloc);
    apr_table_unset(r->headers_out, "Content-Length");
    weaken_etag(r);
    return ctx;
}

static apr_bucket *tag_bucket(ap_filter_t *f, inject_ctx_t *ctx)
{
    return apr_bucket_pool_create(ctx->tag, strlen(ctx->tag), f->r->pool, f->c->bucket_alloc);
}

/* Puts the tag at offset at of b (b's length: after it). */
static void insert_tag(ap_filter_t *f, inject_ctx_t *ctx, apr_bucket *b, apr_size_t at)
{
    if (apr_table_get(f->r->notes, INJECTED_NOTE)) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, f->r,
                      "PEGADM104: page left alone: it already got the tag");
        return;
    }
    if (at > 0) {
        if (at < b->length) {
            apr_bucket_split(b, at);
        }
        APR_BUCKET_INSERT_AFTER(b, tag_bucket(f, ctx));
    } else {
        APR_BUCKET_INSERT_BEFORE(b, tag_bucket(f, ctx));
    }
    apr_table_setn(f->r->notes, INJECTED_NOTE, "1");
}

/* Puts the held-back bytes in front of b, whose data is *data: merged with
 * a short b into one bucket (the bytes held next may then reach into the
 * old ones), a bucket of their own before a longer one. Returns the bucket
 * the scan's offsets count from. */
static apr_bucket *put_carry_back(ap_filter_t *f, inject_ctx_t *ctx, apr_bucket **pb,
                                  const char **data, apr_size_t *len)
{
    apr_bucket *carry;

    if (*len < CARRY_MAX) {
        char *buf = apr_bucket_alloc(ctx->carry_len + *len, f->c->bucket_alloc);
        memcpy(buf, ctx->carry, ctx->carry_len);
        memcpy(buf + ctx->carry_len, *data, *len);
        carry = apr_bucket_heap_create(buf, ctx->carry_len + *len, apr_bucket_free,
                                       f->c->bucket_alloc);
        APR_BUCKET_INSERT_BEFORE(*pb, carry);
        apr_bucket_delete(*pb);
        *pb = carry;
        *data = buf;
        *len = carry->length;
    } else {
        carry = apr_bucket_heap_create(ctx->carry, ctx->carry_len, NULL, f->c->bucket_alloc);
        APR_BUCKET_INSERT_BEFORE(*pb, carry);
    }
    ctx->carry_len = 0;
    return carry;
}

/* Keeps the last held bytes of b back for the next piece. */
static void hold_tail(inject_ctx_t *ctx, apr_bucket *b, const char *data, apr_size_t len,
                      apr_size_t held)
{
    memcpy(ctx->carry, data + len - held, held);
    ctx->carry_len = held;
    apr_bucket_split(b, len - held);
    apr_bucket_delete(APR_BUCKET_NEXT(b));
}

/* Scans the data of b (read already), which may become another bucket (*pb). */
static void scan_data(ap_filter_t *f, inject_ctx_t *ctx, apr_bucket **pb, const char *data,
                      apr_size_t len)
{
    apr_size_t held = pegadm_html_held(ctx->scan), at = 0;
    apr_bucket *from = ctx->carry_len ? put_carry_back(f, ctx, pb, &data, &len) : *pb;
    /* a merged bucket holds the held bytes, which the scanner has seen */
    apr_size_t skip = from == *pb ? held : 0;

    switch (pegadm_html_scan(ctx->scan, data + skip, len - skip, &at)) {
    case PEGADM_HTML_BODY_END:
        if (from != *pb && at >= from->length) {
            insert_tag(f, ctx, *pb, at - from->length);
        } else {
            insert_tag(f, ctx, from, at);
        }
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, f->r,
                      "PEGADM100: added the bootstrap script tag before </body>");
        ctx->scanning = 0;
        break;
    case PEGADM_HTML_MARKER:
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, f->r,
                      "PEGADM101: page left alone: it already loads the widget");
        ctx->scanning = 0;
        break;
    case PEGADM_HTML_NOT_ASCII:
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, f->r,
                      "PEGADM109: page left alone: it starts with a UTF-16 or UTF-32 "
                      "byte order mark");
        ctx->scanning = 0;
        break;
    default:
        held = pegadm_html_held(ctx->scan);
        if (held) {
            hold_tail(ctx, *pb, data, len, held);
        }
    }
}

/* The end of the page: the held bytes go out as they are, and the tag
 * after them where the only </body> was out of a script's reach. */
static void page_end(ap_filter_t *f, inject_ctx_t *ctx, apr_bucket *eos)
{
    if (ctx->carry_len) {
        APR_BUCKET_INSERT_BEFORE(
            eos, apr_bucket_heap_create(ctx->carry, ctx->carry_len, NULL, f->c->bucket_alloc));
        ctx->carry_len = 0;
    }
    if (pegadm_html_at_end(ctx->scan)) {
        insert_tag(f, ctx, eos, 0);
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, f->r,
                      "PEGADM106: added the bootstrap script tag at the end of the page: "
                      "its </body> is inside a template, SVG or MathML");
    } else {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, f->r,
                      "PEGADM105: page left alone: it has no </body> where a script runs");
    }
    ctx->scanning = 0;
}

/* Sends on what was scanned so far (the held bytes stay). */
static apr_status_t pass_out(ap_filter_t *f, inject_ctx_t *ctx)
{
    apr_status_t rv;

    if (APR_BRIGADE_EMPTY(ctx->out)) {
        return APR_SUCCESS;
    }
    rv = ap_pass_brigade(f->next, ctx->out);
    apr_brigade_cleanup(ctx->out);
    ctx->out_len = 0;
    return rv;
}

/* Reads b, a piece of the page; when the handler has nothing more yet (a
 * CGI that waits), what is here goes on to the client first. */
static apr_status_t read_bucket(ap_filter_t *f, inject_ctx_t *ctx, apr_bucket *b,
                                const char **data, apr_size_t *len)
{
    apr_status_t rv = apr_bucket_read(b, data, len, APR_NONBLOCK_READ);

    if (APR_STATUS_IS_EAGAIN(rv)) {
        APR_BRIGADE_INSERT_TAIL(ctx->out, apr_bucket_flush_create(f->c->bucket_alloc));
        if ((rv = pass_out(f, ctx)) != APR_SUCCESS) {
            return rv;
        }
        rv = apr_bucket_read(b, data, len, APR_BLOCK_READ);
    }
    return rv;
}

/* Takes the first bucket of bb into ctx->out, scanning it if it is data. */
static apr_status_t take_bucket(ap_filter_t *f, inject_ctx_t *ctx, apr_bucket_brigade *bb)
{
    apr_bucket *b = APR_BRIGADE_FIRST(bb);
    const char *data;
    apr_size_t len;
    apr_status_t rv;

    if (APR_BUCKET_IS_EOS(b)) {
        page_end(f, ctx, b);
        return APR_SUCCESS; /* the rest goes on as it is */
    }
    if (!APR_BUCKET_IS_METADATA(b)) {
        if ((rv = read_bucket(f, ctx, b, &data, &len)) != APR_SUCCESS) {
            return rv;
        }
        scan_data(f, ctx, &b, data, len);
    }
    /* b, with the tag or the held-back bytes put in front of it */
    for (apr_bucket *stop = APR_BUCKET_NEXT(b); APR_BRIGADE_FIRST(bb) != stop;) {
        apr_bucket *e = APR_BRIGADE_FIRST(bb);
        APR_BUCKET_REMOVE(e);
        APR_BRIGADE_INSERT_TAIL(ctx->out, e);
        ctx->out_len += e->length == (apr_size_t)-1 ? 0 : (apr_off_t)e->length;
    }
    if (APR_BUCKET_IS_FLUSH(b) || ctx->out_len >= PASS_AT) {
        return pass_out(f, ctx);
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
    while (ctx->scanning && !APR_BRIGADE_EMPTY(bb)) {
        if ((rv = take_bucket(f, ctx, bb)) != APR_SUCCESS) {
            return rv;
        }
    }
    APR_BRIGADE_CONCAT(ctx->out, bb);
    if (!ctx->scanning) {
        ap_remove_output_filter(f);
    }
    return pass_out(f, ctx);
}

/* Whether the request asks for a page, as far as is known before the
 * handler: a file's type, or else a client that asks for HTML (a browser
 * loading a page does; its scripts, images and fetch() calls do not). */
static int asks_for_a_page(request_rec *r)
{
    const char *accept;

    if (r->finfo.filetype == APR_REG) {
        return is_html(r->content_type);
    }
    accept = apr_table_get(r->headers_in, "Accept");
    return accept && (ap_strcasestr(accept, "text/html") ||
                      ap_strcasestr(accept, "application/xhtml+xml"));
}

/* Adds the filter to main requests where PegaDMInject is On. The client's
 * Accept-Encoding is held back from the handler only where the answer is
 * a page the tag may go into. */
void pegadm_inject_insert(request_rec *r)
{
    const pegadm_dir_conf_t *d = ap_get_module_config(r->per_dir_config, &pegadm_module);
    const char *accept_encoding;

    if (d->inject != 1 || r->main) {
        return;
    }
    accept_encoding = apr_table_get(r->headers_in, "Accept-Encoding");
    if (accept_encoding && !saved_back(r) && asks_for_a_page(r)) {
        apr_table_setn(r->notes, ACCEPT_ENCODING_NOTE, accept_encoding);
        apr_table_unset(r->headers_in, "Accept-Encoding");
    }
    ap_add_output_filter(PEGADM_INJECT_FILTER, NULL, r, r->connection);
}

/* Looks mod_dav's dav_get_provider() up once it is loaded, whatever the
 * order of the LoadModule lines. */
void pegadm_inject_post_config(void)
{
    void *sym = dlsym(RTLD_DEFAULT, "dav_get_provider");

    dav_get_provider_fn = NULL;
    if (sym && ap_find_linked_module("mod_dav.c")) {
        memcpy(&dav_get_provider_fn, &sym, sizeof(dav_get_provider_fn));
    }
}
