/* The bound on concurrent reads of one process: never more than n through
 * at once, every waiter served, in the order they came. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "pegadm_test_pool.h"

#include <apr_atomic.h>
#include <apr_general.h>
#include <apr_thread_proc.h>
#include <apr_time.h>

#include "pegadm_gate.h"

#define THREADS 12
#define ROUNDS  200

typedef struct {
    pegadm_gate_t *gate;
    volatile apr_uint32_t inside, most, served, failed;
    int order[THREADS];
    volatile apr_uint32_t entered;
} run_t;

static void *APR_THREAD_FUNC crowd(apr_thread_t *t, void *data)
{
    run_t *run = data;

    for (int i = 0; i < ROUNDS; i++) {
        apr_uint32_t now, most;

        if (pegadm_gate_enter(run->gate) != APR_SUCCESS) {
            apr_atomic_inc32(&run->failed);
            continue;
        }
        now = apr_atomic_inc32(&run->inside) + 1;
        while ((most = apr_atomic_read32(&run->most)) < now &&
               apr_atomic_cas32(&run->most, now, most) != most) {
        }
        apr_sleep(50); /* a read in flight */
        apr_atomic_dec32(&run->inside);
        apr_atomic_inc32(&run->served);
        pegadm_gate_leave(run->gate);
    }
    return NULL;
}

static void crowd_through(apr_pool_t *p, unsigned int n, unsigned int wakeups)
{
    run_t run = {0};
    apr_thread_t *threads[THREADS];
    apr_status_t rv;

    assert_int_equal(pegadm_gate_create(p, n, wakeups, &run.gate), APR_SUCCESS);
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(apr_thread_create(&threads[i], NULL, crowd, &run, p), APR_SUCCESS);
    }
    for (int i = 0; i < THREADS; i++) {
        apr_thread_join(&rv, threads[i]);
    }
    assert_int_equal(run.failed, 0);
    assert_int_equal(run.served, THREADS * ROUNDS);
    assert_int_equal(run.most, n); /* at most n, and the crowd does reach n */
    assert_int_equal(pegadm_gate_waiting(run.gate), 0);
    /* and all n places are free again */
    for (unsigned int i = 0; i < n; i++) {
        assert_int_equal(pegadm_gate_enter(run.gate), APR_SUCCESS);
    }
    assert_int_equal(pegadm_gate_waiting(run.gate), 0);
}

static void never_more_than_n_at_once(void **state)
{
    crowd_through(*state, 1, THREADS);
    crowd_through(*state, 2, THREADS);
    crowd_through(*state, 4, THREADS);
    /* more waiters than wake-ups: they share them */
    crowd_through(*state, 1, 3);
    crowd_through(*state, 2, 1);
}

static void a_gate_has_a_place_at_least(void **state)
{
    pegadm_gate_t *g;

    assert_int_equal(pegadm_gate_create(*state, 0, THREADS, &g), APR_EINVAL);
}

static void *APR_THREAD_FUNC queue_up(apr_thread_t *t, void *data)
{
    run_t *run = data;
    int me = (int)apr_atomic_inc32(&run->served);

    if (pegadm_gate_enter(run->gate) != APR_SUCCESS) {
        apr_atomic_inc32(&run->failed);
        return NULL;
    }
    run->order[apr_atomic_inc32(&run->entered)] = me;
    pegadm_gate_leave(run->gate);
    return NULL;
}

/* Waits until the gate has `count` waiters, for at most 10 s. */
static void until_waiting(pegadm_gate_t *g, unsigned int count)
{
    for (int i = 0; i < 10000 && pegadm_gate_waiting(g) != count; i++) {
        apr_sleep(1000);
    }
    assert_int_equal(pegadm_gate_waiting(g), count);
}

static void waiters_pass_in_the_order_they_came(void **state)
{
    run_t run = {0};
    apr_thread_t *threads[THREADS];
    apr_status_t rv;

    assert_int_equal(pegadm_gate_create(*state, 1, THREADS / 4, &run.gate), APR_SUCCESS);
    assert_int_equal(pegadm_gate_enter(run.gate), APR_SUCCESS);
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(apr_thread_create(&threads[i], NULL, queue_up, &run, *state),
                         APR_SUCCESS);
        until_waiting(run.gate, (unsigned int)i + 1);
    }
    pegadm_gate_leave(run.gate);
    for (int i = 0; i < THREADS; i++) {
        apr_thread_join(&rv, threads[i]);
    }
    assert_int_equal(run.failed, 0);
    assert_int_equal(run.entered, THREADS);
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(run.order[i], i);
    }
}

/* A place given back while someone waits is the waiter's: a thread that
 * comes after it does not take it. */
static void a_newcomer_does_not_overtake_a_waiter(void **state)
{
    run_t run = {0};
    apr_thread_t *waiter;
    apr_status_t rv;

    assert_int_equal(pegadm_gate_create(*state, 2, THREADS, &run.gate), APR_SUCCESS);
    assert_int_equal(pegadm_gate_enter(run.gate), APR_SUCCESS);
    assert_int_equal(pegadm_gate_enter(run.gate), APR_SUCCESS);
    run.served = 7; /* the waiter's number */
    assert_int_equal(apr_thread_create(&waiter, NULL, queue_up, &run, *state), APR_SUCCESS);
    until_waiting(run.gate, 1);
    pegadm_gate_leave(run.gate);
    apr_thread_join(&rv, waiter);
    assert_int_equal(run.entered, 1);
    assert_int_equal(run.order[0], 7);
    /* the waiter gave its place back: one is inside, one free */
    assert_int_equal(pegadm_gate_enter(run.gate), APR_SUCCESS);
    assert_int_equal(pegadm_gate_waiting(run.gate), 0);
}

/* try_enter never waits: a place while one is free and nobody queues,
 * else APR_EBUSY at once; a place it took counts like any other. */
static void try_enter_takes_a_free_place_or_none(void **state)
{
    run_t run = {0};
    apr_thread_t *waiter;
    apr_status_t rv;

    assert_int_equal(pegadm_gate_create(*state, 2, THREADS, &run.gate), APR_SUCCESS);
    assert_int_equal(pegadm_gate_try_enter(run.gate), APR_SUCCESS);
    assert_int_equal(pegadm_gate_try_enter(run.gate), APR_SUCCESS);
    assert_int_equal(pegadm_gate_try_enter(run.gate), APR_EBUSY);
    pegadm_gate_leave(run.gate);
    assert_int_equal(pegadm_gate_try_enter(run.gate), APR_SUCCESS);
    /* a waiter queues for the next place: try_enter does not take it */
    assert_int_equal(apr_thread_create(&waiter, NULL, queue_up, &run, *state), APR_SUCCESS);
    until_waiting(run.gate, 1);
    assert_int_equal(pegadm_gate_try_enter(run.gate), APR_EBUSY);
    pegadm_gate_leave(run.gate);
    apr_thread_join(&rv, waiter);
    assert_int_equal(run.entered, 1);
    pegadm_gate_leave(run.gate);
    assert_int_equal(pegadm_gate_try_enter(run.gate), APR_SUCCESS);
    assert_int_equal(pegadm_gate_try_enter(run.gate), APR_SUCCESS);
    assert_int_equal(pegadm_gate_try_enter(run.gate), APR_EBUSY);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        POOL_TEST(a_gate_has_a_place_at_least),
        POOL_TEST(never_more_than_n_at_once),
        POOL_TEST(waiters_pass_in_the_order_they_came),
        POOL_TEST(a_newcomer_does_not_overtake_a_waiter),
        POOL_TEST(try_enter_takes_a_free_place_or_none),
    };
    apr_initialize();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
