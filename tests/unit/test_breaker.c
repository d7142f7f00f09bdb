/* The circuit breaker: its transitions, and its record in a shared store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <apr_general.h>
#include <apr_pools.h>

#include "pegadm_breaker.h"

#define SEC(n) apr_time_from_sec(n)
#define T0     SEC(1700000000)

static const pegadm_breaker_conf_t conf = {3, SEC(30), SEC(5)};

/* Fails n calls admitted while closed, at now. */
static pegadm_breaker_change_t fail_times(pegadm_breaker_t *b, int n, apr_time_t now)
{
    pegadm_breaker_change_t change = PEGADM_BREAKER_UNCHANGED;
    for (int i = 0; i < n; i++) {
        assert_int_equal(pegadm_breaker_admit(b, &conf, now), PEGADM_BREAKER_PASS);
        change = pegadm_breaker_record(b, &conf, PEGADM_BREAKER_PASS, 0, now);
    }
    return change;
}

static void opens_after_threshold_consecutive_failures(void **state)
{
    pegadm_breaker_t b = {0};

    assert_int_equal(fail_times(&b, 2, T0), PEGADM_BREAKER_UNCHANGED);
    assert_int_equal(b.state, PEGADM_BREAKER_CLOSED);
    assert_int_equal(fail_times(&b, 1, T0), PEGADM_BREAKER_OPENED);
    assert_int_equal(b.state, PEGADM_BREAKER_OPEN);
    assert_int_equal(b.until, T0 + SEC(30));
    assert_int_equal(pegadm_breaker_admit(&b, &conf, T0 + SEC(29)), PEGADM_BREAKER_REJECT);
}

static void a_success_resets_the_count(void **state)
{
    pegadm_breaker_t b = {0};

    fail_times(&b, 2, T0);
    assert_int_equal(pegadm_breaker_record(&b, &conf, PEGADM_BREAKER_PASS, 1, T0),
                     PEGADM_BREAKER_UNCHANGED);
    assert_int_equal(b.failures, 0);
    assert_int_equal(fail_times(&b, 2, T0), PEGADM_BREAKER_UNCHANGED);
    assert_int_equal(b.state, PEGADM_BREAKER_CLOSED);
}

static void exactly_one_probe_after_the_cooldown(void **state)
{
    pegadm_breaker_t b = {0};

    fail_times(&b, 3, T0);
    assert_int_equal(pegadm_breaker_admit(&b, &conf, T0 + SEC(30)), PEGADM_BREAKER_PROBE);
    assert_int_equal(b.state, PEGADM_BREAKER_PROBING);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(pegadm_breaker_admit(&b, &conf, T0 + SEC(31)), PEGADM_BREAKER_REJECT);
    }
}

static void a_successful_probe_closes_it(void **state)
{
    pegadm_breaker_t b = {0};

    fail_times(&b, 3, T0);
    pegadm_breaker_admit(&b, &conf, T0 + SEC(30));
    assert_int_equal(pegadm_breaker_record(&b, &conf, PEGADM_BREAKER_PROBE, 1, T0 + SEC(31)),
                     PEGADM_BREAKER_RECLOSED);
    assert_int_equal(b.state, PEGADM_BREAKER_CLOSED);
    assert_int_equal(b.failures, 0);
    assert_int_equal(pegadm_breaker_admit(&b, &conf, T0 + SEC(31)), PEGADM_BREAKER_PASS);
    /* and it takes a whole run of failures again to open it */
    assert_int_equal(fail_times(&b, 2, T0 + SEC(32)), PEGADM_BREAKER_UNCHANGED);
}

static void a_failed_probe_reopens_it_for_a_whole_cooldown(void **state)
{
    pegadm_breaker_t b = {0};

    fail_times(&b, 3, T0);
    pegadm_breaker_admit(&b, &conf, T0 + SEC(30));
    assert_int_equal(pegadm_breaker_record(&b, &conf, PEGADM_BREAKER_PROBE, 0, T0 + SEC(32)),
                     PEGADM_BREAKER_REOPENED);
    assert_int_equal(b.state, PEGADM_BREAKER_OPEN);
    assert_int_equal(pegadm_breaker_admit(&b, &conf, T0 + SEC(61)), PEGADM_BREAKER_REJECT);
    assert_int_equal(pegadm_breaker_admit(&b, &conf, T0 + SEC(62)), PEGADM_BREAKER_PROBE);
}

static void a_lost_probe_is_replaced(void **state)
{
    pegadm_breaker_t b = {0};

    fail_times(&b, 3, T0);
    assert_int_equal(pegadm_breaker_admit(&b, &conf, T0 + SEC(30)), PEGADM_BREAKER_PROBE);
    assert_int_equal(pegadm_breaker_admit(&b, &conf, T0 + SEC(34)), PEGADM_BREAKER_REJECT);
    assert_int_equal(pegadm_breaker_admit(&b, &conf, T0 + SEC(35)), PEGADM_BREAKER_PROBE);
}

static void stragglers_do_not_move_it(void **state)
{
    pegadm_breaker_t b = {0};

    fail_times(&b, 3, T0);
    /* calls admitted before it opened, finishing late */
    assert_int_equal(pegadm_breaker_record(&b, &conf, PEGADM_BREAKER_PASS, 1, T0 + SEC(1)),
                     PEGADM_BREAKER_UNCHANGED);
    assert_int_equal(pegadm_breaker_record(&b, &conf, PEGADM_BREAKER_PASS, 0, T0 + SEC(1)),
                     PEGADM_BREAKER_UNCHANGED);
    assert_int_equal(b.state, PEGADM_BREAKER_OPEN);
    assert_int_equal(b.until, T0 + SEC(30));
    /* and while the probe is out */
    pegadm_breaker_admit(&b, &conf, T0 + SEC(30));
    assert_int_equal(pegadm_breaker_record(&b, &conf, PEGADM_BREAKER_PASS, 1, T0 + SEC(31)),
                     PEGADM_BREAKER_UNCHANGED);
    assert_int_equal(b.state, PEGADM_BREAKER_PROBING);
    assert_int_equal(pegadm_breaker_record(&b, &conf, PEGADM_BREAKER_REJECT, 1, T0 + SEC(31)),
                     PEGADM_BREAKER_UNCHANGED);
    assert_int_equal(b.state, PEGADM_BREAKER_PROBING);
}

/* What a refused caller is told: the rest of the cool-down, or "now" once
 * a probe is out, whose outcome decides any moment. */
static void a_rejected_caller_learns_when_calls_resume(void **state)
{
    pegadm_breaker_t b = {0};

    fail_times(&b, 3, T0);
    assert_int_equal(pegadm_breaker_reopens(&b, &conf, T0), T0 + SEC(30));
    assert_int_equal(pegadm_breaker_admit(&b, &conf, T0 + SEC(12)), PEGADM_BREAKER_REJECT);
    assert_int_equal(pegadm_breaker_reopens(&b, &conf, T0 + SEC(12)), T0 + SEC(30));
    assert_int_equal(pegadm_breaker_admit(&b, &conf, T0 + SEC(30)), PEGADM_BREAKER_PROBE);
    assert_int_equal(pegadm_breaker_admit(&b, &conf, T0 + SEC(31)), PEGADM_BREAKER_REJECT);
    assert_int_equal(pegadm_breaker_reopens(&b, &conf, T0 + SEC(31)), T0 + SEC(31));
    /* the failed probe starts a whole new cool-down */
    pegadm_breaker_record(&b, &conf, PEGADM_BREAKER_PROBE, 0, T0 + SEC(32));
    assert_int_equal(pegadm_breaker_reopens(&b, &conf, T0 + SEC(33)), T0 + SEC(62));
}

static void a_reopening_from_a_clock_that_went_back_is_not_trusted(void **state)
{
    pegadm_breaker_t open = {PEGADM_BREAKER_OPEN, 0, T0 + SEC(3600)};
    pegadm_breaker_t closed = {0};

    assert_int_equal(pegadm_breaker_reopens(&open, &conf, T0), T0);
    assert_int_equal(pegadm_breaker_reopens(&closed, &conf, T0), T0);
}

static void threshold_zero_never_opens(void **state)
{
    pegadm_breaker_conf_t off = {0, SEC(30), SEC(5)};
    pegadm_breaker_t b = {0};

    for (int i = 0; i < 100; i++) {
        assert_int_equal(pegadm_breaker_admit(&b, &off, T0), PEGADM_BREAKER_PASS);
        assert_int_equal(pegadm_breaker_record(&b, &off, PEGADM_BREAKER_PASS, 0, T0),
                         PEGADM_BREAKER_UNCHANGED);
    }
    assert_int_equal(b.state, PEGADM_BREAKER_CLOSED);
}

static void a_deadline_from_a_clock_that_went_back_is_not_trusted(void **state)
{
    pegadm_breaker_t open = {PEGADM_BREAKER_OPEN, 0, T0 + SEC(3600)};
    pegadm_breaker_t probing = {PEGADM_BREAKER_PROBING, 0, T0 + SEC(3600)};

    assert_int_equal(pegadm_breaker_admit(&open, &conf, T0), PEGADM_BREAKER_PROBE);
    assert_int_equal(pegadm_breaker_admit(&probing, &conf, T0), PEGADM_BREAKER_PROBE);
}

static void only_what_says_the_service_is_down_counts(void **state)
{
    assert_true(pegadm_breaker_says_down(PEGADM_DM_UNREACHABLE, 0));
    assert_true(pegadm_breaker_says_down(PEGADM_DM_BAD_ANSWER, 200));
    assert_true(pegadm_breaker_says_down(PEGADM_DM_HTTP_STATUS, 500));
    assert_true(pegadm_breaker_says_down(PEGADM_DM_HTTP_STATUS, 503));
    assert_true(pegadm_breaker_says_down(PEGADM_DM_HTTP_STATUS, 429));
    /* one customer's request: his data, his ID, his token's refusal */
    assert_false(pegadm_breaker_says_down(PEGADM_DM_HTTP_STATUS, 400));
    assert_false(pegadm_breaker_says_down(PEGADM_DM_HTTP_STATUS, 401));
    assert_false(pegadm_breaker_says_down(PEGADM_DM_HTTP_STATUS, 403));
    assert_false(pegadm_breaker_says_down(PEGADM_DM_HTTP_STATUS, 422));
    assert_false(pegadm_breaker_says_down(PEGADM_DM_INTERNAL, 0));
    assert_false(pegadm_breaker_says_down(PEGADM_DM_OK, 200));
}

/* ---- the record in a store ---- */

typedef struct {
    unsigned char id[PEGADM_CACHE_ID_LEN];
    unsigned char val[256];
    unsigned int len;
    int used;
    int puts;
    int locked;
    apr_status_t fail;
} one_slot_store_t;

static apr_status_t slot_lock(void *c)
{
    one_slot_store_t *s = c;
    assert_false(s->locked);
    s->locked = !s->fail;
    return s->fail;
}

static apr_status_t slot_unlock(void *c)
{
    ((one_slot_store_t *)c)->locked = 0;
    return APR_SUCCESS;
}

static apr_status_t slot_get(void *c, const pegadm_store_key_t *key, unsigned char *buf,
                             unsigned int *len, apr_pool_t *p)
{
    one_slot_store_t *s = c;
    assert_true(s->locked);
    assert_int_equal(key->tag_len, 0); /* the record is no customer's */
    if (!s->used || memcmp(s->id, key->id, key->id_len)) {
        return APR_NOTFOUND;
    }
    assert_true(s->len <= *len);
    memcpy(buf, s->val, s->len);
    *len = s->len;
    return APR_SUCCESS;
}

static apr_status_t slot_put(void *c, const pegadm_store_key_t *key, apr_time_t expiry,
                             const unsigned char *val, unsigned int len, apr_pool_t *p)
{
    one_slot_store_t *s = c;
    assert_true(s->locked);
    assert_true(len <= sizeof(s->val));
    assert_true(expiry > apr_time_now());
    memcpy(s->id, key->id, key->id_len);
    memcpy(s->val, val, len);
    s->len = len;
    s->used = 1;
    s->puts++;
    return APR_SUCCESS;
}

static apr_status_t slot_del(void *c, const pegadm_store_key_t *key, apr_pool_t *p)
{
    return APR_ENOTIMPL;
}

typedef struct {
    apr_pool_t *pool;
    one_slot_store_t slot;
    pegadm_store_t store;
    pegadm_keys_t keys;
    pegadm_breaker_ref_t ref;
} fixture_t;

static int setup(void **state)
{
    static const unsigned char secret[] = "breaker-test-secret";
    fixture_t *f = calloc(1, sizeof(*f));
    apr_pool_create(&f->pool, NULL);
    f->store = (pegadm_store_t){&f->slot, slot_lock, slot_unlock, slot_get, slot_put, slot_del};
    assert_int_equal(pegadm_keys_derive(&f->keys, secret, sizeof(secret) - 1), APR_SUCCESS);
    f->ref = (pegadm_breaker_ref_t){&f->store, &f->keys, "widget", "https://dm.example", conf};
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    pegadm_keys_release(&f->keys);
    apr_pool_destroy(f->pool);
    free(f);
    return 0;
}

static pegadm_breaker_verdict_t enter(fixture_t *f, const pegadm_breaker_ref_t *ref,
                                      apr_time_t now)
{
    pegadm_breaker_verdict_t v = PEGADM_BREAKER_REJECT;
    assert_int_equal(pegadm_breaker_enter(f->pool, ref, now, &v, NULL), APR_SUCCESS);
    return v;
}

static pegadm_breaker_change_t leave(fixture_t *f, const pegadm_breaker_ref_t *ref,
                                     pegadm_breaker_verdict_t v, int ok, apr_time_t now)
{
    pegadm_breaker_change_t change;
    assert_int_equal(pegadm_breaker_leave(f->pool, ref, v, ok, now, &change, NULL),
                     APR_SUCCESS);
    return change;
}

static void the_stored_record_is_shared(void **state)
{
    fixture_t *f = *state;
    apr_time_t now = apr_time_now();
    /* another process: its own ref, the same store */
    pegadm_breaker_ref_t other = f->ref;

    for (int i = 0; i < 3; i++) {
        pegadm_breaker_verdict_t v = enter(f, i % 2 ? &other : &f->ref, now);
        assert_int_equal(v, PEGADM_BREAKER_PASS);
        assert_int_equal(leave(f, i % 2 ? &other : &f->ref, v, 0, now),
                         i == 2 ? PEGADM_BREAKER_OPENED : PEGADM_BREAKER_UNCHANGED);
    }
    assert_int_equal(enter(f, &other, now), PEGADM_BREAKER_REJECT);
    assert_int_equal(enter(f, &other, now + SEC(30)), PEGADM_BREAKER_PROBE);
    assert_int_equal(enter(f, &f->ref, now + SEC(30)), PEGADM_BREAKER_REJECT);
    assert_int_equal(leave(f, &other, PEGADM_BREAKER_PROBE, 1, now + SEC(31)),
                     PEGADM_BREAKER_RECLOSED);
    assert_int_equal(enter(f, &f->ref, now + SEC(31)), PEGADM_BREAKER_PASS);
}

/* The record a rejected caller sees says how long the cool-down has left. */
static void enter_hands_out_the_record(void **state)
{
    fixture_t *f = *state;
    apr_time_t now = apr_time_now();
    pegadm_breaker_verdict_t v;
    pegadm_breaker_t seen;

    for (int i = 0; i < 3; i++) {
        leave(f, &f->ref, enter(f, &f->ref, now), 0, now);
    }
    assert_int_equal(pegadm_breaker_enter(f->pool, &f->ref, now + SEC(5), &v, &seen),
                     APR_SUCCESS);
    assert_int_equal(v, PEGADM_BREAKER_REJECT);
    assert_int_equal(seen.state, PEGADM_BREAKER_OPEN);
    assert_int_equal(pegadm_breaker_reopens(&seen, &f->ref.conf, now + SEC(5)), now + SEC(30));
}

static void the_healthy_path_never_writes(void **state)
{
    fixture_t *f = *state;
    apr_time_t now = apr_time_now();

    for (int i = 0; i < 10; i++) {
        assert_int_equal(leave(f, &f->ref, enter(f, &f->ref, now), 1, now),
                         PEGADM_BREAKER_UNCHANGED);
    }
    assert_int_equal(f->slot.puts, 0);
}

static void each_service_has_its_own_breaker(void **state)
{
    fixture_t *f = *state;
    apr_time_t now = apr_time_now();
    pegadm_breaker_ref_t elsewhere = f->ref;
    elsewhere.service_url = "https://other.example";

    for (int i = 0; i < 3; i++) {
        leave(f, &f->ref, enter(f, &f->ref, now), 0, now);
    }
    assert_int_equal(enter(f, &f->ref, now), PEGADM_BREAKER_REJECT);
    assert_int_equal(enter(f, &elsewhere, now), PEGADM_BREAKER_PASS);
}

static void a_tampered_record_reads_as_closed(void **state)
{
    fixture_t *f = *state;
    apr_time_t now = apr_time_now();

    for (int i = 0; i < 3; i++) {
        leave(f, &f->ref, enter(f, &f->ref, now), 0, now);
    }
    assert_true(f->slot.used);
    f->slot.val[f->slot.len / 2] ^= 1;
    assert_int_equal(enter(f, &f->ref, now), PEGADM_BREAKER_PASS);
}

static void a_store_failure_lets_calls_through(void **state)
{
    fixture_t *f = *state;
    pegadm_breaker_verdict_t v = PEGADM_BREAKER_REJECT;
    pegadm_breaker_change_t change = PEGADM_BREAKER_OPENED;
    pegadm_breaker_t seen = {PEGADM_BREAKER_OPEN, 7, 1};

    f->slot.fail = APR_EGENERAL;
    assert_int_equal(pegadm_breaker_enter(f->pool, &f->ref, apr_time_now(), &v, &seen),
                     APR_EGENERAL);
    assert_int_equal(v, PEGADM_BREAKER_PASS);
    assert_int_equal(seen.state, PEGADM_BREAKER_CLOSED);
    assert_int_equal(
        pegadm_breaker_leave(f->pool, &f->ref, v, 0, apr_time_now(), &change, NULL),
        APR_EGENERAL);
    assert_int_equal(change, PEGADM_BREAKER_UNCHANGED);
    assert_false(f->slot.locked);
}

static void switched_off_it_never_touches_the_store(void **state)
{
    fixture_t *f = *state;
    pegadm_breaker_ref_t off = f->ref;
    off.conf.threshold = 0;
    f->slot.fail = APR_EGENERAL; /* any use of the store would show */

    for (int i = 0; i < 10; i++) {
        assert_int_equal(leave(f, &off, enter(f, &off, apr_time_now()), 0, apr_time_now()),
                         PEGADM_BREAKER_UNCHANGED);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(opens_after_threshold_consecutive_failures),
        cmocka_unit_test(a_success_resets_the_count),
        cmocka_unit_test(exactly_one_probe_after_the_cooldown),
        cmocka_unit_test(a_successful_probe_closes_it),
        cmocka_unit_test(a_failed_probe_reopens_it_for_a_whole_cooldown),
        cmocka_unit_test(a_lost_probe_is_replaced),
        cmocka_unit_test(stragglers_do_not_move_it),
        cmocka_unit_test(a_rejected_caller_learns_when_calls_resume),
        cmocka_unit_test(a_reopening_from_a_clock_that_went_back_is_not_trusted),
        cmocka_unit_test(threshold_zero_never_opens),
        cmocka_unit_test(a_deadline_from_a_clock_that_went_back_is_not_trusted),
        cmocka_unit_test_setup_teardown(the_stored_record_is_shared, setup, teardown),
        cmocka_unit_test_setup_teardown(enter_hands_out_the_record, setup, teardown),
        cmocka_unit_test_setup_teardown(the_healthy_path_never_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(each_service_has_its_own_breaker, setup, teardown),
        cmocka_unit_test(only_what_says_the_service_is_down_counts),
        cmocka_unit_test_setup_teardown(a_tampered_record_reads_as_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(a_store_failure_lets_calls_through, setup, teardown),
        cmocka_unit_test_setup_teardown(switched_off_it_never_touches_the_store, setup,
                                        teardown),
    };
    apr_initialize();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
