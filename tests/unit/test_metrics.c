/* The shared counters: layout, slots, sums, and what the renderers print. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <jansson.h>

#include "pegadm_metrics.h"
#include "pegadm_test_pool.h"

#define W1 "0b6c3d52-5b7a-4c53-9a55-2f6f3c2d8e11"
#define W2 "7d1e4f0a-2b3c-4d5e-8f90-a1b2c3d4e5f6"

static apr_uint32_t living_pid;

static int only_living(apr_uint32_t pid)
{
    return pid == living_pid;
}

static pegadm_metrics_t *block(apr_pool_t *p, int slots, int widgets)
{
    apr_size_t size = pegadm_metrics_size(slots, widgets);
    pegadm_metrics_t *m = pegadm_metrics_init(apr_palloc(p, size), size, slots, widgets);
    assert_non_null(m);
    return m;
}

static void too_small_a_block_is_refused(void **state)
{
    apr_size_t size = pegadm_metrics_size(4, 2);
    void *mem = apr_palloc(*state, size);
    assert_null(pegadm_metrics_init(mem, size - 1, 4, 2));
    assert_null(pegadm_metrics_init(mem, size, 0, 2));
    assert_non_null(pegadm_metrics_init(mem, size, 4, 2));
}

static void widgets_are_appended_once_until_full(void **state)
{
    pegadm_metrics_t *m = block(*state, 2, 2);
    assert_int_equal(pegadm_metrics_widget(m, W1), 0);
    assert_int_equal(pegadm_metrics_widget(m, W2), 1);
    assert_int_equal(pegadm_metrics_widget(m, W1), 0);
    assert_int_equal(pegadm_metrics_widget(m, "another"), -1);
    assert_int_equal(pegadm_metrics_widgets(m), 2);
}

static void adds_of_all_slots_are_summed(void **state)
{
    pegadm_metrics_t *m = block(*state, 3, 2);
    pegadm_metrics_slot_t *a, *b;
    pegadm_metrics_widget_totals_t t;

    pegadm_metrics_widget(m, W1);
    pegadm_metrics_widget(m, W2);
    living_pid = 0;
    a = pegadm_metrics_claim_slot(m, 100, only_living);
    living_pid = 100;
    b = pegadm_metrics_claim_slot(m, 101, only_living);
    assert_ptr_not_equal(a, b);
    pegadm_metrics_add(a, 0, PEGADM_M_CREATES + PEGADM_CALL_OK);
    pegadm_metrics_add(b, 0, PEGADM_M_CREATES + PEGADM_CALL_OK);
    pegadm_metrics_add(b, 1, PEGADM_M_FORGETS);
    pegadm_metrics_add(b, -1, PEGADM_M_FORGETS); /* a widget not in the block */
    pegadm_metrics_add(NULL, 0, PEGADM_M_FORGETS);
    pegadm_metrics_totals(m, 0, &t);
    assert_string_equal(t.widget_id, W1);
    assert_int_equal(t.counters[PEGADM_M_CREATES + PEGADM_CALL_OK], 2);
    assert_int_equal(t.counters[PEGADM_M_FORGETS], 0);
    pegadm_metrics_totals(m, 1, &t);
    assert_int_equal(t.counters[PEGADM_M_FORGETS], 1);
}

static void a_dead_owners_slot_is_reused_and_keeps_its_counts(void **state)
{
    pegadm_metrics_t *m = block(*state, 1, 1);
    pegadm_metrics_slot_t *a, *b;
    pegadm_metrics_widget_totals_t t;

    pegadm_metrics_widget(m, W1);
    living_pid = 0;
    a = pegadm_metrics_claim_slot(m, 7, only_living);
    pegadm_metrics_add(a, 0, PEGADM_M_RATE_LIMITED);
    b = pegadm_metrics_claim_slot(m, 8, only_living); /* 7 died */
    assert_ptr_equal(a, b);
    pegadm_metrics_add(b, 0, PEGADM_M_RATE_LIMITED);
    living_pid = 8;
    /* all slots taken by the living: shared, and still exact */
    assert_ptr_equal(pegadm_metrics_claim_slot(m, 9, only_living), b);
    pegadm_metrics_totals(m, 0, &t);
    assert_int_equal(t.counters[PEGADM_M_RATE_LIMITED], 2);
}

static void latencies_fall_in_their_buckets(void **state)
{
    pegadm_metrics_t *m = block(*state, 1, 1);
    pegadm_metrics_slot_t *s;
    pegadm_metrics_widget_totals_t t;
    const int h = PEGADM_M_HISTOGRAM(PEGADM_UPSTREAM_PRIVATE_DATA);

    pegadm_metrics_widget(m, W1);
    s = pegadm_metrics_claim_slot(m, 1, only_living);
    pegadm_metrics_observe(s, 0, PEGADM_UPSTREAM_PRIVATE_DATA, 5000); /* 5 ms */
    pegadm_metrics_observe(s, 0, PEGADM_UPSTREAM_PRIVATE_DATA, 5001); /* > 5 ms */
    pegadm_metrics_observe(s, 0, PEGADM_UPSTREAM_PRIVATE_DATA,
                           apr_time_from_sec(11)); /* +Inf */
    pegadm_metrics_totals(m, 0, &t);
    assert_int_equal(t.counters[h + 0], 1);
    assert_int_equal(t.counters[h + 1], 1);
    assert_int_equal(t.counters[h + PEGADM_METRICS_BUCKETS], 1);
    assert_int_equal(t.counters[PEGADM_M_HISTOGRAM_SUM(PEGADM_UPSTREAM_PRIVATE_DATA)],
                     5000 + 5001 + 11000000);
    assert_int_equal(t.counters[PEGADM_M_HISTOGRAM(PEGADM_UPSTREAM_CREATE)], 0);
}

static void shared_cells(void **state)
{
    pegadm_metrics_t *m = block(*state, 1, 2);
    pegadm_metrics_widget_totals_t t;

    pegadm_metrics_widget(m, W1);
    pegadm_metrics_set_breaker_open(m, 0, 1);
    pegadm_metrics_set_breaker_open(m, 1, 1); /* not yet a widget: ignored */
    pegadm_metrics_set_cert_expiry(m, 0, apr_time_from_sec(1000));
    assert_true(pegadm_metrics_is_current(m));
    pegadm_metrics_count_audit_dropped(m);
    assert_int_equal(pegadm_metrics_audit_dropped(m), 1);
    pegadm_metrics_totals(m, 0, &t);
    assert_int_equal(t.reachable, -1);
    pegadm_metrics_set_reachable(m, 0, 0);
    pegadm_metrics_totals(m, 0, &t);
    assert_int_equal(t.reachable, 0);
    pegadm_metrics_set_reachable(m, 0, 1);
    pegadm_metrics_totals(m, 0, &t);
    assert_int_equal(t.reachable, 1);
    assert_int_equal(t.breaker_open, 1);
    assert_int_equal(t.cert_not_after, apr_time_from_sec(1000));
    assert_int_equal(t.secret_in_use, 0);
}

static pegadm_metrics_t *filled(apr_pool_t *p)
{
    pegadm_metrics_t *m = block(p, 2, 2);
    pegadm_metrics_slot_t *s;

    pegadm_metrics_widget(m, W1);
    s = pegadm_metrics_claim_slot(m, 1, only_living);
    pegadm_metrics_add(s, 0, PEGADM_M_CREATES + PEGADM_CALL_OK);
    pegadm_metrics_add(s, 0, PEGADM_M_CREATES + PEGADM_CALL_HTTP_ERROR);
    pegadm_metrics_add(s, 0, PEGADM_M_LOOKUPS + PEGADM_LOOKUP_HIT);
    pegadm_metrics_observe(s, 0, PEGADM_UPSTREAM_CREATE, 30000);
    pegadm_metrics_set_cert_expiry(m, 0, apr_time_from_sec(1000 + 86400));
    return m;
}

static void prometheus_text(void **state)
{
    pegadm_metrics_context_t ctx = {"9.8.7", apr_time_from_sec(1000), NULL};
    char *text = pegadm_metrics_prometheus(*state, filled(*state), &ctx);

    assert_non_null(strstr(text, "# TYPE pegadm_creates_total counter\n"));
    assert_non_null(strstr(text, "pegadm_creates_total{widget=\"" W1 "\",outcome=\"ok\"} 1\n"));
    assert_non_null(
        strstr(text, "pegadm_creates_total{widget=\"" W1 "\",outcome=\"http_error\"} 1\n"));
    assert_non_null(
        strstr(text, "pegadm_cache_lookups_total{widget=\"" W1 "\",result=\"hit\"} 1\n"));
    /* cumulative buckets: 30 ms is in 0.05 and above, not in 0.025 */
    assert_non_null(strstr(text, "pegadm_upstream_seconds_bucket{widget=\"" W1
                                 "\",call=\"create\",le=\"0.025\"} 0\n"));
    assert_non_null(strstr(text, "pegadm_upstream_seconds_bucket{widget=\"" W1
                                 "\",call=\"create\",le=\"0.05\"} 1\n"));
    assert_non_null(strstr(text, "pegadm_upstream_seconds_bucket{widget=\"" W1
                                 "\",call=\"create\",le=\"+Inf\"} 1\n"));
    assert_non_null(strstr(text, "pegadm_upstream_seconds_sum{widget=\"" W1
                                 "\",call=\"create\"} 0.030000\n"));
    assert_non_null(
        strstr(text, "pegadm_service_certificate_expiry_seconds{widget=\"" W1 "\"} 86400\n"));
    assert_non_null(strstr(text, "pegadm_build_info{version=\"9.8.7\"} 1\n"));
    /* private data has no breaker_open outcome */
    assert_null(strstr(text, "pegadm_private_data_pushes_total{widget=\"" W1
                             "\",outcome=\"breaker_open\"}"));
}

static void json_document(void **state)
{
    pegadm_metrics_context_t ctx = {"9.8.7", apr_time_from_sec(1000), NULL};
    char *text = pegadm_metrics_json(*state, filled(*state), &ctx);
    json_t *doc = json_loads(text, 0, NULL), *w;

    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "version")), "9.8.7");
    w = json_array_get(json_object_get(doc, "widgets"), 0);
    assert_string_equal(json_string_value(json_object_get(w, "widget")), W1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(w, "creates"), "ok")),
                     1);
    assert_int_equal(json_integer_value(json_object_get(w, "serviceCertificateExpirySeconds")),
                     86400);
    assert_int_equal(json_array_size(json_object_get(doc, "widgets")), 1);
    json_decref(doc);
}

/* Cache operations of two processes, summed; the widgets' counters of
 * the same slots untouched; names as the clients' observers give them. */
static void cache_operations_are_timed_server_wide(void **state)
{
    pegadm_metrics_t *m = block(*state, 2, 3);
    pegadm_metrics_slot_t *a = pegadm_metrics_claim_slot(m, 7, only_living);
    pegadm_metrics_slot_t *b = pegadm_metrics_claim_slot(m, 8, only_living);
    apr_uint64_t c[PEGADM_CACHE_COUNTERS];
    pegadm_metrics_widget_totals_t t;

    living_pid = 7;
    pegadm_metrics_widget(m, W1);
    pegadm_metrics_observe_cache(a, PEGADM_CACHE_OP_GET, 100);     /* le 0.00025 */
    pegadm_metrics_observe_cache(b, PEGADM_CACHE_OP_GET, 700);     /* le 0.001 */
    pegadm_metrics_observe_cache(b, PEGADM_CACHE_OP_MARK, 900000); /* le 1 */
    pegadm_metrics_observe_cache(a, PEGADM_CACHE_OP_SET, 5000000); /* +Inf */
    pegadm_metrics_observe_cache(NULL, PEGADM_CACHE_OP_SET, 1);
    pegadm_metrics_cache_totals(m, c);
    assert_int_equal(c[PEGADM_CACHE_HISTOGRAM(PEGADM_CACHE_OP_GET) + 0], 1);
    assert_int_equal(c[PEGADM_CACHE_HISTOGRAM(PEGADM_CACHE_OP_GET) + 2], 1);
    assert_int_equal(c[PEGADM_CACHE_HISTOGRAM_SUM(PEGADM_CACHE_OP_GET)], 800);
    assert_int_equal(c[PEGADM_CACHE_HISTOGRAM(PEGADM_CACHE_OP_MARK) + 11], 1);
    assert_int_equal(c[PEGADM_CACHE_HISTOGRAM(PEGADM_CACHE_OP_SET) + PEGADM_CACHE_BUCKETS], 1);
    assert_int_equal(c[PEGADM_CACHE_HISTOGRAM(PEGADM_CACHE_OP_DELETE)], 0);
    pegadm_metrics_totals(m, 0, &t);
    for (int i = 0; i < PEGADM_M_COUNTERS; i++) {
        assert_int_equal(t.counters[i], 0);
    }
    assert_int_equal(pegadm_cache_op_of("delete"), PEGADM_CACHE_OP_DELETE);
    assert_int_equal(pegadm_cache_op_of("mark"), PEGADM_CACHE_OP_MARK);
    assert_int_equal(pegadm_cache_op_of("check"), -1);
    assert_string_equal(pegadm_cache_op_name(PEGADM_CACHE_OP_GET), "get");
    assert_int_equal(pegadm_metrics_cache_up(m), -1);
    pegadm_metrics_set_cache_up(m, 0);
    assert_int_equal(pegadm_metrics_cache_up(m), 0);
    pegadm_metrics_set_cache_up(m, 1);
    assert_int_equal(pegadm_metrics_cache_up(m), 1);
}

/* The cache's series are rendered only when the module talks to a shared
 * cache server itself: with shmcb there is none to time. */
static void cache_series_only_with_a_shared_cache(void **state)
{
    pegadm_metrics_t *m = filled(*state);
    pegadm_metrics_context_t ctx = {"9.8.7", apr_time_from_sec(1000), NULL};
    char *text;
    json_t *doc, *cache;

    pegadm_metrics_observe_cache(pegadm_metrics_claim_slot(m, 1, only_living),
                                 PEGADM_CACHE_OP_GET, 300);
    assert_null(strstr(pegadm_metrics_prometheus(*state, m, &ctx), "pegadm_cache_seconds"));
    pegadm_metrics_set_cache_kind(m, "redis");
    text = pegadm_metrics_prometheus(*state, m, &ctx);
    assert_non_null(strstr(text, "# TYPE pegadm_cache_seconds histogram\n"));
    assert_non_null(strstr(text, "pegadm_cache_seconds_bucket{op=\"get\",le=\"0.00025\"} 0\n"));
    assert_non_null(strstr(text, "pegadm_cache_seconds_bucket{op=\"get\",le=\"0.0005\"} 1\n"));
    assert_non_null(strstr(text, "pegadm_cache_seconds_count{op=\"mark\"} 0\n"));
    assert_non_null(strstr(text, "pegadm_cache_seconds_sum{op=\"get\"} 0.000300\n"));
    assert_non_null(strstr(text, "# TYPE pegadm_cache_up gauge\n"));
    assert_null(strstr(text, "\npegadm_cache_up ")); /* not known yet */
    pegadm_metrics_set_cache_up(m, 1);
    assert_non_null(strstr(pegadm_metrics_prometheus(*state, m, &ctx), "pegadm_cache_up 1\n"));

    doc = json_loads(pegadm_metrics_json(*state, m, &ctx), 0, NULL);
    cache = json_object_get(doc, "sharedCache");
    assert_string_equal(json_string_value(json_object_get(cache, "kind")), "redis");
    assert_true(json_is_true(json_object_get(cache, "up")));
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(json_object_get(cache, "seconds"), "get"), "count")),
                     1);
    json_decref(doc);
    pegadm_metrics_set_cache_kind(m, NULL);
    assert_int_equal(pegadm_metrics_cache_up(m), -1);
    doc = json_loads(pegadm_metrics_json(*state, m, &ctx), 0, NULL);
    assert_null(json_object_get(doc, "sharedCache"));
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        POOL_TEST(too_small_a_block_is_refused),
        POOL_TEST(widgets_are_appended_once_until_full),
        POOL_TEST(adds_of_all_slots_are_summed),
        POOL_TEST(a_dead_owners_slot_is_reused_and_keeps_its_counts),
        POOL_TEST(latencies_fall_in_their_buckets),
        POOL_TEST(shared_cells),
        POOL_TEST(prometheus_text),
        POOL_TEST(json_document),
        POOL_TEST(cache_operations_are_timed_server_wide),
        POOL_TEST(cache_series_only_with_a_shared_cache),
    };
    apr_initialize();
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    apr_terminate();
    return failed;
}
