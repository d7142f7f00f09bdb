/* The counters as the outside world reads them: the Prometheus text format
 * (version 0.0.4: base units, _total counters, cumulative buckets) and a
 * JSON document with the same numbers. */
#include "pegadm_metrics.h"

#include <stdarg.h>
#include <stdlib.h>

#include <apr_strings.h>
#include <apr_tables.h>
#include <jansson.h>

typedef struct {
    apr_pool_t *p;
    apr_array_header_t *parts;
} text_t;

static void emit(text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void emit(text_t *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    APR_ARRAY_PUSH(t->parts, const char *) = apr_pvsprintf(t->p, fmt, ap);
    va_end(ap);
}

static void family(text_t *t, const char *name, const char *type, const char *help)
{
    emit(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static double seconds_of_us(apr_uint64_t us)
{
    return (double)us / APR_USEC_PER_SEC;
}

typedef struct {
    int n;
    pegadm_metrics_widget_totals_t *w;
} all_totals_t;

/* Which secret is in use comes from the rotation's own table. */
static all_totals_t read_all(apr_pool_t *p, const pegadm_metrics_t *m,
                             const pegadm_metrics_context_t *ctx)
{
    all_totals_t all;
    all.n = pegadm_metrics_widgets(m);
    all.w = apr_pcalloc(p, sizeof(*all.w) * (apr_size_t)(all.n ? all.n : 1));
    for (int i = 0; i < all.n; i++) {
        pegadm_metrics_totals(m, i, &all.w[i]);
        all.w[i].secret_in_use = pegadm_rotation_next_in_use(ctx->rotation, all.w[i].widget_id);
    }
    return all;
}

static void outcome_family(text_t *t, const all_totals_t *all, const char *name,
                           const char *help, pegadm_metric_t first, int outcomes)
{
    family(t, name, "counter", help);
    for (int w = 0; w < all->n; w++) {
        for (int o = 0; o < outcomes; o++) {
            emit(t, "%s{widget=\"%s\",outcome=\"%s\"} %" APR_UINT64_T_FMT "\n", name,
                 all->w[w].widget_id, pegadm_call_outcome_name(o),
                 all->w[w].counters[first + o]);
        }
    }
}

static void histogram(text_t *t, const pegadm_metrics_widget_totals_t *w,
                      pegadm_upstream_call_t call)
{
    const apr_uint64_t *b = &w->counters[PEGADM_M_HISTOGRAM(call)];
    const char *labels = apr_psprintf(t->p, "widget=\"%s\",call=\"%s\"", w->widget_id,
                                      pegadm_upstream_call_name(call));
    apr_uint64_t cumulative = 0;

    for (int i = 0; i <= PEGADM_METRICS_BUCKETS; i++) {
        cumulative += b[i];
        if (i < PEGADM_METRICS_BUCKETS) {
            emit(t, "pegadm_upstream_seconds_bucket{%s,le=\"%s\"} %" APR_UINT64_T_FMT "\n",
                 labels, pegadm_metrics_bucket_labels[i], cumulative);
        } else {
            emit(t, "pegadm_upstream_seconds_bucket{%s,le=\"+Inf\"} %" APR_UINT64_T_FMT "\n",
                 labels, cumulative);
        }
    }
    emit(t, "pegadm_upstream_seconds_sum{%s} %.6f\n", labels,
         seconds_of_us(w->counters[PEGADM_M_HISTOGRAM_SUM(call)]));
    emit(t, "pegadm_upstream_seconds_count{%s} %" APR_UINT64_T_FMT "\n", labels, cumulative);
}

/* pegadm_cache_seconds{op} and pegadm_cache_up, for a shared cache only. */
static void cache_families(text_t *t, const pegadm_metrics_t *m)
{
    apr_uint64_t c[PEGADM_CACHE_COUNTERS];
    int up = pegadm_metrics_cache_up(m);

    pegadm_metrics_cache_totals(m, c);
    family(t, "pegadm_cache_seconds", "histogram",
           "Duration of the operations on the shared cache server (get, set, delete, mark).");
    for (int op = 0; op < PEGADM_CACHE_OPS; op++) {
        const char *name = pegadm_cache_op_name(op);
        apr_uint64_t cumulative = 0;

        for (int i = 0; i <= PEGADM_CACHE_BUCKETS; i++) {
            cumulative += c[PEGADM_CACHE_HISTOGRAM(op) + i];
            emit(t, "pegadm_cache_seconds_bucket{op=\"%s\",le=\"%s\"} %" APR_UINT64_T_FMT "\n",
                 name, i < PEGADM_CACHE_BUCKETS ? pegadm_cache_bucket_labels[i] : "+Inf",
                 cumulative);
        }
        emit(t, "pegadm_cache_seconds_sum{op=\"%s\"} %.6f\n", name,
             seconds_of_us(c[PEGADM_CACHE_HISTOGRAM_SUM(op)]));
        emit(t, "pegadm_cache_seconds_count{op=\"%s\"} %" APR_UINT64_T_FMT "\n", name,
             cumulative);
    }
    family(t, "pegadm_cache_up", "gauge",
           "1 if the shared cache server answered the last operation or check, 0 if not.");
    if (up >= 0) {
        emit(t, "pegadm_cache_up %d\n", up);
    }
}

static void single_family(text_t *t, const all_totals_t *all, const char *name,
                          const char *type, const char *help, pegadm_metric_t metric)
{
    family(t, name, type, help);
    for (int w = 0; w < all->n; w++) {
        emit(t, "%s{widget=\"%s\"} %" APR_UINT64_T_FMT "\n", name, all->w[w].widget_id,
             all->w[w].counters[metric]);
    }
}

char *pegadm_metrics_prometheus(apr_pool_t *p, const pegadm_metrics_t *m,
                                const pegadm_metrics_context_t *ctx)
{
    text_t t = {p, apr_array_make(p, 256, sizeof(const char *))};
    all_totals_t all = read_all(p, m, ctx);

    family(&t, "pegadm_build_info", "gauge", "The module's version.");
    emit(&t, "pegadm_build_info{version=\"%s\"} 1\n", ctx->version);
    outcome_family(&t, &all, "pegadm_creates_total", "Chat session creates by outcome.",
                   PEGADM_M_CREATES, PEGADM_CALL_OUTCOMES);
    outcome_family(&t, &all, "pegadm_private_data_pushes_total",
                   "Private-data pushes by outcome.", PEGADM_M_PUSHES,
                   PEGADM_CALL_BREAKER_OPEN);
    family(&t, "pegadm_cache_lookups_total", "counter",
           "Session cache lookups by result (hit, miss, error).");
    for (int w = 0; w < all.n; w++) {
        for (int r = 0; r < PEGADM_LOOKUP_RESULTS; r++) {
            emit(&t,
                 "pegadm_cache_lookups_total{widget=\"%s\",result=\"%s\"} %" APR_UINT64_T_FMT
                 "\n",
                 all.w[w].widget_id, pegadm_lookup_result_name(r),
                 all.w[w].counters[PEGADM_M_LOOKUPS + r]);
        }
    }
    single_family(&t, &all, "pegadm_forgets_total", "counter",
                  "Cached sessions forgotten (logout).", PEGADM_M_FORGETS);
    single_family(&t, &all, "pegadm_rate_limited_total", "counter",
                  "Fresh sessions refused by PegaDMCreateLimit.", PEGADM_M_RATE_LIMITED);
    family(&t, "pegadm_breaker_open", "gauge",
           "1 while the circuit breaker for the widget's service is open, else 0.");
    for (int w = 0; w < all.n; w++) {
        emit(&t, "pegadm_breaker_open{widget=\"%s\"} %d\n", all.w[w].widget_id,
             all.w[w].breaker_open);
    }
    family(&t, "pegadm_upstream_seconds", "histogram",
           "Duration of the calls to the service (create, private_data).");
    for (int w = 0; w < all.n; w++) {
        histogram(&t, &all.w[w], PEGADM_UPSTREAM_CREATE);
        histogram(&t, &all.w[w], PEGADM_UPSTREAM_PRIVATE_DATA);
    }
    family(&t, "pegadm_service_certificate_expiry_seconds", "gauge",
           "Seconds until the service's TLS certificate expires (once checked).");
    for (int w = 0; w < all.n; w++) {
        if (all.w[w].cert_not_after) {
            emit(&t,
                 "pegadm_service_certificate_expiry_seconds{widget=\"%s\"} %" APR_INT64_T_FMT
                 "\n",
                 all.w[w].widget_id, apr_time_sec(all.w[w].cert_not_after - ctx->now));
        }
    }
    family(&t, "pegadm_service_reachable", "gauge",
           "1 if the last preflight reached the widget's service, 0 if not (once checked).");
    for (int w = 0; w < all.n; w++) {
        if (all.w[w].reachable >= 0) {
            emit(&t, "pegadm_service_reachable{widget=\"%s\"} %d\n", all.w[w].widget_id,
                 all.w[w].reachable);
        }
    }
    family(&t, "pegadm_secret_next_in_use", "gauge",
           "1 once the service accepts PegaDMJWTSecretNext rather than PegaDMJWTSecret.");
    for (int w = 0; w < all.n; w++) {
        emit(&t, "pegadm_secret_next_in_use{widget=\"%s\"} %d\n", all.w[w].widget_id,
             all.w[w].secret_in_use);
    }
    family(&t, "pegadm_audit_dropped_total", "counter",
           "Audit log lines dropped because the log's pipe was full.");
    emit(&t, "pegadm_audit_dropped_total %" APR_UINT64_T_FMT "\n",
         pegadm_metrics_audit_dropped(m));
    if (pegadm_metrics_cache_kind(m)) {
        cache_families(&t, m);
    }
    return apr_array_pstrcat(p, t.parts, '\0');
}

static json_t *outcomes_json(const apr_uint64_t *v, int n, const char *(*name)(int))
{
    json_t *o = json_object();
    for (int i = 0; i < n; i++) {
        json_object_set_new(o, name(i), json_integer((json_int_t)v[i]));
    }
    return o;
}

static const char *outcome_name(int i)
{
    return pegadm_call_outcome_name(i);
}

static const char *lookup_name(int i)
{
    return pegadm_lookup_result_name(i);
}

static json_t *histogram_json(const pegadm_metrics_widget_totals_t *w,
                              pegadm_upstream_call_t call)
{
    const apr_uint64_t *b = &w->counters[PEGADM_M_HISTOGRAM(call)];
    json_t *buckets = json_object();
    apr_uint64_t cumulative = 0;

    for (int i = 0; i <= PEGADM_METRICS_BUCKETS; i++) {
        cumulative += b[i];
        json_object_set_new(
            buckets, i < PEGADM_METRICS_BUCKETS ? pegadm_metrics_bucket_labels[i] : "+Inf",
            json_integer((json_int_t)cumulative));
    }
    return json_pack("{s:I, s:f, s:o}", "count", (json_int_t)cumulative, "sum",
                     seconds_of_us(w->counters[PEGADM_M_HISTOGRAM_SUM(call)]), "buckets",
                     buckets);
}

static json_t *widget_json(const pegadm_metrics_widget_totals_t *w, apr_time_t now)
{
    json_t *o = json_pack(
        "{s:s, s:o, s:o, s:o, s:I, s:I, s:b, s:{s:o, s:o}, s:s}", "widget", w->widget_id,
        "creates",
        outcomes_json(&w->counters[PEGADM_M_CREATES], PEGADM_CALL_OUTCOMES, outcome_name),
        "privateDataPushes",
        outcomes_json(&w->counters[PEGADM_M_PUSHES], PEGADM_CALL_BREAKER_OPEN, outcome_name),
        "cacheLookups",
        outcomes_json(&w->counters[PEGADM_M_LOOKUPS], PEGADM_LOOKUP_RESULTS, lookup_name),
        "forgets", (json_int_t)w->counters[PEGADM_M_FORGETS], "rateLimited",
        (json_int_t)w->counters[PEGADM_M_RATE_LIMITED], "breakerOpen", w->breaker_open,
        "upstreamSeconds", "create", histogram_json(w, PEGADM_UPSTREAM_CREATE), "private_data",
        histogram_json(w, PEGADM_UPSTREAM_PRIVATE_DATA), "secretInUse",
        w->secret_in_use ? "next" : "first");
    json_object_set_new(o, "serviceCertificateExpirySeconds",
                        w->cert_not_after
                            ? json_integer((json_int_t)apr_time_sec(w->cert_not_after - now))
                            : json_null());
    json_object_set_new(o, "serviceReachable",
                        w->reachable >= 0 ? json_boolean(w->reachable) : json_null());
    return o;
}

/* {"kind", "up", "seconds": {op: {count, sum, buckets}}} */
static json_t *cache_json(const pegadm_metrics_t *m, const char *kind)
{
    apr_uint64_t c[PEGADM_CACHE_COUNTERS];
    json_t *seconds = json_object();
    int up = pegadm_metrics_cache_up(m);

    pegadm_metrics_cache_totals(m, c);
    for (int op = 0; op < PEGADM_CACHE_OPS; op++) {
        json_t *buckets = json_object();
        apr_uint64_t cumulative = 0;

        for (int i = 0; i <= PEGADM_CACHE_BUCKETS; i++) {
            cumulative += c[PEGADM_CACHE_HISTOGRAM(op) + i];
            json_object_set_new(
                buckets, i < PEGADM_CACHE_BUCKETS ? pegadm_cache_bucket_labels[i] : "+Inf",
                json_integer((json_int_t)cumulative));
        }
        json_object_set_new(seconds, pegadm_cache_op_name(op),
                            json_pack("{s:I, s:f, s:o}", "count", (json_int_t)cumulative, "sum",
                                      seconds_of_us(c[PEGADM_CACHE_HISTOGRAM_SUM(op)]),
                                      "buckets", buckets));
    }
    return json_pack("{s:s, s:o, s:o}", "kind", kind, "up",
                     up >= 0 ? json_boolean(up) : json_null(), "seconds", seconds);
}

char *pegadm_metrics_json(apr_pool_t *p, const pegadm_metrics_t *m,
                          const pegadm_metrics_context_t *ctx)
{
    all_totals_t all = read_all(p, m, ctx);
    json_t *widgets = json_array();
    json_t *doc;
    char *text, *copy;

    for (int w = 0; w < all.n; w++) {
        json_array_append_new(widgets, widget_json(&all.w[w], ctx->now));
    }
    doc = json_pack("{s:s, s:o, s:{s:I}}", "version", ctx->version, "widgets", widgets,
                    "auditLog", "dropped", (json_int_t)pegadm_metrics_audit_dropped(m));
    if (doc && pegadm_metrics_cache_kind(m)) {
        json_object_set_new(doc, "sharedCache", cache_json(m, pegadm_metrics_cache_kind(m)));
    }
    text = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
    json_decref(doc);
    copy = text ? apr_pstrcat(p, text, "\n", NULL) : NULL;
    free(text);
    return copy;
}
