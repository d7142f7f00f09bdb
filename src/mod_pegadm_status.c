/* What operators read: the pegadm-status handler (JSON, or the Prometheus
 * text format with ?format=prometheus) and a section of mod_status's
 * server-status page ("PegaDM...: value" lines with ?auto). Neither shows
 * anything per customer or session: the counters hold none. */
#include "mod_pegadm_ops.h"

#include <string.h>

#include <apr_optional_hooks.h>
#include <apr_strings.h>
#include <http_protocol.h>
#include <http_request.h>
#include <mod_status.h>

APLOG_USE_MODULE(pegadm);

static int wants_prometheus(const request_rec *r)
{
    const char *args = r->args;
    while (args && *args) {
        const char *end = strchr(args, '&');
        apr_size_t len = end ? (apr_size_t)(end - args) : strlen(args);
        if (len == strlen("format=prometheus") && !strncmp(args, "format=prometheus", len)) {
            return 1;
        }
        args = end ? end + 1 : NULL;
    }
    return 0;
}

int pegadm_status_handler(request_rec *r)
{
    pegadm_ops_t *ops;
    pegadm_metrics_context_t ctx = {PEGADM_VERSION, 0};
    char *text;
    int prometheus;

    if (!r->handler || strcmp(r->handler, PEGADM_HANDLER_STATUS) != 0) {
        return DECLINED;
    }
    if (!pegadm_handler_is_trusted(r)) {
        return HTTP_FORBIDDEN;
    }
    ctx.now = apr_time_now();
    r->allowed = (AP_METHOD_BIT << M_GET);
    if (r->method_number != M_GET) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    ops = pegadm_ops_of(r->server);
    if (!ops->metrics) {
        return HTTP_SERVICE_UNAVAILABLE; /* logged at start-up (PEGADM600) */
    }
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
    prometheus = wants_prometheus(r);
    text = prometheus ? pegadm_metrics_prometheus(r->pool, ops->metrics, &ctx)
                      : pegadm_metrics_json(r->pool, ops->metrics, &ctx);
    if (!text) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    ap_set_content_type(r, prometheus ? "text/plain; version=0.0.4; charset=utf-8"
                                      : "application/json");
    if (!r->header_only) {
        ap_rputs(text, r);
    }
    return OK;
}

/* ---- mod_status ---- */

typedef struct {
    apr_uint64_t creates, create_failures, pushes, push_failures;
    apr_uint64_t hits, misses, errors, forgets, rate_limited;
    int breakers_open;
} sums_t;

static void add_widget(sums_t *s, const pegadm_metrics_widget_totals_t *w)
{
    for (int o = 0; o < PEGADM_CALL_OUTCOMES; o++) {
        apr_uint64_t c = w->counters[PEGADM_M_CREATES + o];
        apr_uint64_t p = o < PEGADM_CALL_BREAKER_OPEN ? w->counters[PEGADM_M_PUSHES + o] : 0;
        s->creates += o == PEGADM_CALL_OK ? c : 0;
        s->create_failures += o == PEGADM_CALL_OK ? 0 : c;
        s->pushes += o == PEGADM_CALL_OK ? p : 0;
        s->push_failures += o == PEGADM_CALL_OK ? 0 : p;
    }
    s->hits += w->counters[PEGADM_M_LOOKUPS + PEGADM_LOOKUP_HIT];
    s->misses += w->counters[PEGADM_M_LOOKUPS + PEGADM_LOOKUP_MISS];
    s->errors += w->counters[PEGADM_M_LOOKUPS + PEGADM_LOOKUP_ERROR];
    s->forgets += w->counters[PEGADM_M_FORGETS];
    s->rate_limited += w->counters[PEGADM_M_RATE_LIMITED];
    s->breakers_open += w->breaker_open;
}

static void status_short(request_rec *r, const sums_t *s, int widgets)
{
    ap_rprintf(r, "PegaDMVersion: %s\n", PEGADM_VERSION);
    ap_rprintf(r, "PegaDMWidgets: %d\n", widgets);
    ap_rprintf(r, "PegaDMCreates: %" APR_UINT64_T_FMT "\n", s->creates);
    ap_rprintf(r, "PegaDMCreateFailures: %" APR_UINT64_T_FMT "\n", s->create_failures);
    ap_rprintf(r, "PegaDMPrivateDataPushes: %" APR_UINT64_T_FMT "\n", s->pushes);
    ap_rprintf(r, "PegaDMPrivateDataFailures: %" APR_UINT64_T_FMT "\n", s->push_failures);
    ap_rprintf(r, "PegaDMCacheHits: %" APR_UINT64_T_FMT "\n", s->hits);
    ap_rprintf(r, "PegaDMCacheMisses: %" APR_UINT64_T_FMT "\n", s->misses);
    ap_rprintf(r, "PegaDMCacheErrors: %" APR_UINT64_T_FMT "\n", s->errors);
    ap_rprintf(r, "PegaDMForgets: %" APR_UINT64_T_FMT "\n", s->forgets);
    ap_rprintf(r, "PegaDMRateLimited: %" APR_UINT64_T_FMT "\n", s->rate_limited);
    ap_rprintf(r, "PegaDMBreakersOpen: %d\n", s->breakers_open);
}

static void status_row(request_rec *r, const pegadm_metrics_widget_totals_t *w, apr_time_t now)
{
    sums_t s = {0};
    add_widget(&s, w);
    ap_rprintf(r,
               "<tr><td>%s</td><td>%" APR_UINT64_T_FMT "</td><td>%" APR_UINT64_T_FMT
               "</td><td>%" APR_UINT64_T_FMT "</td><td>%" APR_UINT64_T_FMT
               "</td><td>%" APR_UINT64_T_FMT "</td><td>%" APR_UINT64_T_FMT
               "</td><td>%s</td><td>%s</td></tr>\n",
               ap_escape_html(r->pool, w->widget_id), s.creates, s.create_failures, s.hits,
               s.misses, s.errors, s.forgets, w->breaker_open ? "open" : "closed",
               w->cert_not_after ? apr_psprintf(r->pool, "%" APR_INT64_T_FMT " days",
                                                apr_time_sec(w->cert_not_after - now) / 86400)
                                 : "not checked");
}

static int pegadm_status_hook(request_rec *r, int flags)
{
    pegadm_ops_t *ops = pegadm_ops_of(r->server);
    int widgets = pegadm_metrics_widgets(ops->metrics);
    apr_time_t now = apr_time_now();
    sums_t sums = {0};

    if (!ops->metrics) {
        return OK;
    }
    if (flags & AP_STATUS_SHORT) {
        for (int i = 0; i < widgets; i++) {
            pegadm_metrics_widget_totals_t w;
            pegadm_metrics_totals(ops->metrics, i, &w);
            add_widget(&sums, &w);
        }
        status_short(r, &sums, widgets);
        return OK;
    }
    ap_rprintf(r, "<hr>\n<h2>mod_pegadm %s</h2>\n", PEGADM_VERSION);
    ap_rputs("<table border=\"1\"><tr><th>widget</th><th>creates</th><th>create "
             "failures</th><th>cache hits</th><th>misses</th><th>cache errors</th>"
             "<th>forgets</th><th>breaker</th><th>service certificate</th></tr>\n",
             r);
    for (int i = 0; i < widgets; i++) {
        pegadm_metrics_widget_totals_t w;
        pegadm_metrics_totals(ops->metrics, i, &w);
        status_row(r, &w, now);
    }
    ap_rputs("</table>\n", r);
    return OK;
}

void pegadm_status_register_hooks(apr_pool_t *p)
{
    APR_OPTIONAL_HOOK(ap, status_hook, pegadm_status_hook, NULL, NULL, APR_HOOK_MIDDLE);
}
