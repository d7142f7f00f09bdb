/* Which secret the service accepts: the rotation's table, apart from the
 * counters, so that rotation works when they cannot be made. */
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
#include "pegadm_rotation.h"
#include "pegadm_test_pool.h"

#define W1 "0b6c3d52-5b7a-4c53-9a55-2f6f3c2d8e11"
#define W2 "7d1e4f0a-2b3c-4d5e-8f90-a1b2c3d4e5f6"

static pegadm_rotation_t *table(apr_pool_t *p, int widgets)
{
    apr_size_t size = pegadm_rotation_size(widgets);
    pegadm_rotation_t *t = pegadm_rotation_init(apr_palloc(p, size), size, widgets);
    assert_non_null(t);
    return t;
}

static void too_small_a_table_is_refused(void **state)
{
    apr_size_t size = pegadm_rotation_size(2);
    assert_null(pegadm_rotation_init(apr_palloc(*state, size), size - 1, 2));
    assert_null(pegadm_rotation_init(apr_palloc(*state, size), size, 0));
}

static void the_accepted_secret_is_remembered_per_widget(void **state)
{
    pegadm_rotation_t *t = table(*state, 2);

    assert_true(pegadm_rotation_add(t, W1));
    assert_true(pegadm_rotation_add(t, W2));
    assert_true(pegadm_rotation_add(t, W1)); /* there already */
    assert_int_equal(pegadm_rotation_count(t), 2);
    assert_int_equal(pegadm_rotation_accepted(t, W1), 0);
    assert_int_equal(pegadm_rotation_next_in_use(t, W1), 0);
    /* the first process to see the switch gets 0 back and logs it */
    assert_int_equal(pegadm_rotation_set_accepted(t, W1, 0xabcd, 1), 0);
    assert_int_equal(pegadm_rotation_set_accepted(t, W1, 0xabcd, 1), 0xabcd);
    assert_int_equal(pegadm_rotation_accepted(t, W1), 0xabcd);
    assert_int_equal(pegadm_rotation_next_in_use(t, W1), 1);
    assert_int_equal(pegadm_rotation_accepted(t, W2), 0);
    assert_int_equal(pegadm_rotation_next_in_use(t, W2), 0);
    /* and back to the first secret */
    assert_int_equal(pegadm_rotation_set_accepted(t, W1, 0x1234, 0), 0xabcd);
    assert_int_equal(pegadm_rotation_next_in_use(t, W1), 0);
}

static void widget_ids_compare_without_case(void **state)
{
    pegadm_rotation_t *t = table(*state, 1);
    char upper[] = W1;

    for (char *c = upper; *c; c++) {
        *c = (char)(*c >= 'a' && *c <= 'f' ? *c - 'a' + 'A' : *c);
    }
    assert_true(pegadm_rotation_add(t, W1));
    assert_true(pegadm_rotation_add(t, upper));
    assert_int_equal(pegadm_rotation_set_accepted(t, upper, 7, 1), 0);
    assert_int_equal(pegadm_rotation_accepted(t, W1), 7);
}

static void a_full_table_or_an_unknown_widget_records_nothing(void **state)
{
    pegadm_rotation_t *t = table(*state, 1);

    assert_true(pegadm_rotation_add(t, W1));
    assert_false(pegadm_rotation_add(t, W2));
    assert_false(pegadm_rotation_add(t, W1 W1)); /* longer than an ID may be */
    assert_int_equal(pegadm_rotation_set_accepted(t, W2, 9, 1), 9);
    assert_int_equal(pegadm_rotation_accepted(t, W2), 0);
    assert_int_equal(pegadm_rotation_accepted(NULL, W1), 0);
    assert_int_equal(pegadm_rotation_set_accepted(NULL, W1, 9, 1), 9);
    assert_int_equal(pegadm_rotation_next_in_use(NULL, W1), 0);
}

static void a_larger_table_takes_over_what_was_learned(void **state)
{
    pegadm_rotation_t *small = table(*state, 1), *large = table(*state, 3);

    assert_true(pegadm_rotation_add(small, W1));
    pegadm_rotation_set_accepted(small, W1, 0xabcd, 1);
    assert_true(pegadm_rotation_copy(large, small));
    assert_true(pegadm_rotation_add(large, W2));
    assert_int_equal(pegadm_rotation_accepted(large, W1), 0xabcd);
    assert_int_equal(pegadm_rotation_next_in_use(large, W1), 1);
    assert_false(pegadm_rotation_copy(small, large)); /* W2 does not fit */
}

/* pegadm-status shows which secret is in use from the table, not from the
 * counters' block. */
static void the_status_shows_the_tables_secret(void **state)
{
    apr_size_t size = pegadm_metrics_size(1, 1);
    pegadm_metrics_t *m = pegadm_metrics_init(apr_palloc(*state, size), size, 1, 1);
    pegadm_rotation_t *t = table(*state, 1);
    pegadm_metrics_context_t ctx = {"9.8.7", 0, t};
    json_t *doc, *w;

    pegadm_metrics_widget(m, W1);
    pegadm_rotation_add(t, W1);
    pegadm_rotation_set_accepted(t, W1, 0xabcd, 1);
    assert_non_null(strstr(pegadm_metrics_prometheus(*state, m, &ctx),
                           "pegadm_secret_next_in_use{widget=\"" W1 "\"} 1\n"));
    doc = json_loads(pegadm_metrics_json(*state, m, &ctx), 0, NULL);
    w = json_array_get(json_object_get(doc, "widgets"), 0);
    assert_string_equal(json_string_value(json_object_get(w, "secretInUse")), "next");
    json_decref(doc);
    ctx.rotation = NULL;
    assert_non_null(strstr(pegadm_metrics_prometheus(*state, m, &ctx),
                           "pegadm_secret_next_in_use{widget=\"" W1 "\"} 0\n"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        POOL_TEST(too_small_a_table_is_refused),
        POOL_TEST(the_accepted_secret_is_remembered_per_widget),
        POOL_TEST(widget_ids_compare_without_case),
        POOL_TEST(a_full_table_or_an_unknown_widget_records_nothing),
        POOL_TEST(a_larger_table_takes_over_what_was_learned),
        POOL_TEST(the_status_shows_the_tables_secret),
    };
    apr_initialize();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
