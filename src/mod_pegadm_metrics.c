/* The shared counters on the Apache side: for the widgets the
 * configuration named (collected by mod_pegadm_config.c), one block of anonymous shared memory
 * made by the parent process and retained by it (mod_pegadm_cache.c), so that the counts
 * survive graceful restarts (and restarts that keep the parent), a slot per child process, and
 * the counting calls of the request path; and what operators read of them: the pegadm-status
 * handler (JSON, or the Prometheus text format with ?format=prometheus) and a section of
 * mod_status's server-status page ("PegaDM...: value" lines with ?auto).
 * Neither shows anything per customer or session: the counters hold none. */
#include "mod_pegadm_operator.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <apr_shm.h>
#include <apr_strings.h>
#include <ap_mpm.h>
#include <apr_optional_hooks.h>
#include <http_protocol.h>
#include <http_request.h>
#include <mod_status.h>

APLOG_USE_MODULE(pegadm);

/* The key of the shared block the parent retains across reloads
 * (mod_pegadm_cache.c). */
#define BLOCK_KEY "pegadm-metrics-block"

/* Room for widgets added by later graceful restarts. */
#define WIDGET_HEADROOM 8

typedef struct {
    apr_shm_t *shm;
    pegadm_metrics_t *metrics;
    int slots;
} block_t;

/* Maps every configured widget into the block; 0 if one does not fit. */
static int map_widgets(pegadm_metrics_t *m, const apr_array_header_t *ids, int *map)
{
    for (int i = 0; i < ids->nelts; i++) {
        map[i] = pegadm_metrics_widget(m, APR_ARRAY_IDX(ids, i, const char *));
        if (map[i] < 0) {
            return 0;
        }
    }
    return 1;
}

static block_t *new_block(server_rec *s, int slots, int widgets)
{
    apr_pool_t *pool = pegadm_retain_anew(s, BLOCK_KEY);
    apr_size_t size = pegadm_metrics_size(slots, widgets);
    block_t *b = apr_pcalloc(pool, sizeof(*b));
    apr_status_t rv = apr_shm_create(&b->shm, size, NULL, pool);

    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s,
                     "PEGADM600: cannot create %" APR_SIZE_T_FMT
                     " bytes of shared memory for the counters; pegadm-status shows none",
                     size);
        return NULL;
    }
    b->metrics = pegadm_metrics_init(apr_shm_baseaddr_get(b->shm), size, slots, widgets);
    b->slots = slots;
    return b;
}

/* The shared cache's series are shown only for the module's own clients. */
static void use_block(pegadm_operator_t *oper, server_rec *s, block_t *block)
{
    pegadm_server_conf_t *sc = ap_get_module_config(s->module_config, &pegadm_module);

    oper->metrics = block->metrics;
    pegadm_metrics_set_cache_kind(oper->metrics,
                                  sc->shared.url ? sc->cache_provider_name : NULL);
}

apr_status_t pegadm_metrics_post_config(apr_pool_t *pconf, server_rec *s)
{
    pegadm_operator_t *oper = pegadm_operator_of(s);
    apr_array_header_t *ids = NULL;
    block_t *block = NULL;
    int slots = 0;

    apr_pool_userdata_get((void **)&ids, PEGADM_WIDGETS_KEY, pconf);
    if (!ids) {
        ids = apr_array_make(pconf, 1, sizeof(const char *));
    }
    ap_mpm_query(AP_MPMQ_HARD_LIMIT_DAEMONS, &slots);
    slots = slots > 0 ? slots : 1;
    oper->widget_map = apr_pcalloc(pconf, sizeof(int) * (apr_size_t)(ids->nelts + 1));

    block = pegadm_retained(BLOCK_KEY);
    if (block && block->slots == slots && map_widgets(block->metrics, ids, oper->widget_map)) {
        use_block(oper, s, block);
        return APR_SUCCESS;
    }
    if (block) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                     "PEGADM601: the counters start again from zero: the new configuration's "
                     "widgets or process limit do not fit the old ones");
    }
    /* replaces the old block; children of the old generation keep their own mapping */
    block = new_block(s, slots, ids->nelts + WIDGET_HEADROOM);
    pegadm_retain(BLOCK_KEY, block);
    if (!block || !block->metrics || !map_widgets(block->metrics, ids, oper->widget_map)) {
        return block ? APR_EGENERAL : APR_SUCCESS;
    }
    use_block(oper, s, block);
    return APR_SUCCESS;
}

static int process_alive(apr_uint32_t pid)
{
    return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

void pegadm_metrics_child_init(apr_pool_t *p, server_rec *s)
{
    pegadm_operator_t *oper = pegadm_operator_of(s);

    if (oper->metrics) {
        oper->slot =
            pegadm_metrics_claim_slot(oper->metrics, (apr_uint32_t)getpid(), process_alive);
    }
}

int pegadm_metrics_index(const request_rec *r, const pegadm_dir_conf_t *d)
{
    pegadm_server_conf_t *sc = ap_get_module_config(r->server->module_config, &pegadm_module);
    return sc->operator_rec && sc->operator_rec->widget_map && d->metrics_widget >= 0
               ? sc->operator_rec->widget_map[d->metrics_widget]
               : -1;
}

#ifndef PEGADM_NO_METRICS
static pegadm_metrics_slot_t *slot_of(const request_rec *r)
{
    pegadm_server_conf_t *sc = ap_get_module_config(r->server->module_config, &pegadm_module);
    return sc->operator_rec ? sc->operator_rec->slot : NULL;
}
#endif

/* PEGADM_NO_METRICS (cmake -DPEGADM_METRICS=OFF) compiles the request
 * path's counting out, for the benchmark that measures what it costs. */
static void pegadm_count(const request_rec *r, const pegadm_dir_conf_t *d,
                         pegadm_metric_t metric)
{
#ifndef PEGADM_NO_METRICS
    pegadm_metrics_add(slot_of(r), pegadm_metrics_index(r, d), metric);
#endif
}

#ifndef PEGADM_NO_METRICS
static void pegadm_count_lookup(const request_rec *r, const pegadm_dir_conf_t *d,
                                pegadm_lookup_result_t result)
{
    pegadm_count(r, d, PEGADM_M_LOOKUPS + result);
}
#endif

void pegadm_count_call(const request_rec *r, const pegadm_dir_conf_t *d,
                       pegadm_upstream_call_t call, pegadm_call_outcome_t outcome,
                       apr_interval_time_t took)
{
#ifndef PEGADM_NO_METRICS
    int widget = pegadm_metrics_index(r, d);
    pegadm_metrics_slot_t *slot = slot_of(r);

    pegadm_metrics_add(slot, widget,
                       (call == PEGADM_UPSTREAM_CREATE ? PEGADM_M_CREATES : PEGADM_M_PUSHES) +
                           outcome);
    if (outcome != PEGADM_CALL_BREAKER_OPEN && outcome != PEGADM_CALL_INTERNAL) {
        pegadm_metrics_observe(slot, widget, call, took);
    }
#endif
}

static void pegadm_count_breaker(const request_rec *r, const pegadm_dir_conf_t *d, int open)
{
    pegadm_server_conf_t *sc = ap_get_module_config(r->server->module_config, &pegadm_module);
    if (sc->operator_rec) {
        pegadm_metrics_set_breaker_open(sc->operator_rec->metrics, pegadm_metrics_index(r, d),
                                        open);
    }
}

static void pegadm_metrics_count_forget(request_rec *r, const pegadm_dir_conf_t *d,
                                        const char *customer_id)
{
    pegadm_count(r, d, PEGADM_M_FORGETS);
    pegadm_audit(r, d, "forget", "ok", customer_id, NULL, 0);
}

static pegadm_call_outcome_t outcome_of(pegadm_dm_status_t st)
{
    switch (st) {
    case PEGADM_DM_OK:
        return PEGADM_CALL_OK;
    case PEGADM_DM_UNREACHABLE:
        return PEGADM_CALL_UNREACHABLE;
    case PEGADM_DM_HTTP_STATUS:
        return PEGADM_CALL_HTTP_ERROR;
    case PEGADM_DM_BAD_ANSWER:
        return PEGADM_CALL_BAD_ANSWER;
    default:
        return PEGADM_CALL_INTERNAL;
    }
}

void pegadm_observe_call(request_rec *r, const pegadm_dir_conf_t *d,
                         pegadm_upstream_call_t call, pegadm_dm_status_t st,
                         const char *customer_id, const char *session_id, apr_time_t started)
{
    pegadm_call_outcome_t outcome = outcome_of(st);
    apr_interval_time_t took = apr_time_now() - started;

    pegadm_count_call(r, d, call, outcome, took);
    pegadm_audit(r, d, pegadm_upstream_call_name(call), pegadm_call_outcome_name(outcome),
                 customer_id, st == PEGADM_DM_OK ? session_id : NULL, took);
}

void pegadm_observe_refusal(request_rec *r, const pegadm_dir_conf_t *d, const char *why,
                            const char *customer_id)
{
    if (!strcmp(why, "breaker_open")) {
        pegadm_count_call(r, d, PEGADM_UPSTREAM_CREATE, PEGADM_CALL_BREAKER_OPEN, 0);
        pegadm_count_breaker(r, d, 1);
    } else {
        pegadm_count(r, d, PEGADM_M_RATE_LIMITED);
    }
    pegadm_audit(r, d, "refusal", why, customer_id, NULL, 0);
}

void pegadm_observe_breaker(request_rec *r, const pegadm_dir_conf_t *d,
                            pegadm_breaker_change_t change)
{
    if (change == PEGADM_BREAKER_OPENED || change == PEGADM_BREAKER_REOPENED) {
        pegadm_count_breaker(r, d, 1);
    } else if (change == PEGADM_BREAKER_RECLOSED) {
        pegadm_count_breaker(r, d, 0);
    }
}

void pegadm_observe_session_op(request_rec *r, const pegadm_dir_conf_t *d, pegadm_op_t op,
                               pegadm_session_status_t st, const pegadm_session_result_t *res,
                               const char *customer_id)
{
#ifndef PEGADM_NO_METRICS
    if (op == PEGADM_OP_GET || op == PEGADM_OP_PAGE) {
        pegadm_count_lookup(r, d,
                            st == PEGADM_SESSION_STORE                 ? PEGADM_LOOKUP_ERROR
                            : st == PEGADM_SESSION_OK && !res->created ? PEGADM_LOOKUP_HIT
                                                                       : PEGADM_LOOKUP_MISS);
    }
#endif
    if (st == PEGADM_SESSION_RATE_LIMITED) {
        pegadm_observe_refusal(r, d, "rate_limited", customer_id);
    }
    if (op == PEGADM_OP_FORGET && st == PEGADM_SESSION_OK) {
        pegadm_metrics_count_forget(r, d, customer_id);
    }
}

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
    pegadm_operator_t *oper;
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
    oper = pegadm_operator_of(r->server);
    if (!oper->metrics) {
        return HTTP_SERVICE_UNAVAILABLE; /* logged at start-up (PEGADM600) */
    }
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
    prometheus = wants_prometheus(r);
    text = prometheus ? pegadm_metrics_prometheus(r->pool, oper->metrics, &ctx)
                      : pegadm_metrics_json(r->pool, oper->metrics, &ctx);
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

/* The shared cache the module talks to itself: whether it answers, and
 * how many operations it served (from pegadm_cache_seconds). */
static void status_cache(request_rec *r, const pegadm_metrics_t *m, int short_form)
{
    const char *kind = pegadm_metrics_cache_kind(m);
    apr_uint64_t c[PEGADM_CACHE_COUNTERS], ops = 0;
    int up = pegadm_metrics_cache_up(m);

    if (!kind) {
        return;
    }
    pegadm_metrics_cache_totals(m, c);
    for (int op = 0; op < PEGADM_CACHE_OPS; op++) {
        for (int i = 0; i <= PEGADM_CACHE_BUCKETS; i++) {
            ops += c[PEGADM_CACHE_HISTOGRAM(op) + i];
        }
    }
    if (short_form) {
        ap_rprintf(
            r, "PegaDMSharedCacheUp: %d\nPegaDMSharedCacheOperations: %" APR_UINT64_T_FMT "\n",
            up > 0, ops);
        return;
    }
    ap_rprintf(r, "<p>shared cache (%s): %s, %" APR_UINT64_T_FMT " operations</p>\n", kind,
               up < 0 ? "not checked yet"
               : up   ? "answers"
                      : "cannot be used",
               ops);
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

int pegadm_status_hook(request_rec *r, int flags)
{
    pegadm_operator_t *oper = pegadm_operator_of(r->server);
    int widgets = pegadm_metrics_widgets(oper->metrics);
    apr_time_t now = apr_time_now();
    sums_t sums = {0};

    if (!oper->metrics) {
        return OK;
    }
    if (flags & AP_STATUS_SHORT) {
        for (int i = 0; i < widgets; i++) {
            pegadm_metrics_widget_totals_t w;
            pegadm_metrics_totals(oper->metrics, i, &w);
            add_widget(&sums, &w);
        }
        status_short(r, &sums, widgets);
        status_cache(r, oper->metrics, 1);
        return OK;
    }
    ap_rprintf(r, "<hr>\n<h2>mod_pegadm %s</h2>\n", PEGADM_VERSION);
    ap_rputs("<table border=\"1\"><tr><th>widget</th><th>creates</th><th>create "
             "failures</th><th>cache hits</th><th>misses</th><th>cache errors</th>"
             "<th>forgets</th><th>breaker</th><th>service certificate</th></tr>\n",
             r);
    for (int i = 0; i < widgets; i++) {
        pegadm_metrics_widget_totals_t w;
        pegadm_metrics_totals(oper->metrics, i, &w);
        status_row(r, &w, now);
    }
    ap_rputs("</table>\n", r);
    status_cache(r, oper->metrics, 0);
    return OK;
}
