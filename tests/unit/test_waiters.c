/* The bound on waiters for one create: per key, given back on leaving. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "pegadm_test_pool.h"

#include <apr_general.h>

#include "pegadm_waiters.h"

static const unsigned char alice[32] = {1}, bob[32] = {2};

static void places_are_bounded_per_key(void **state)
{
    pegadm_waiters_t *w;

    assert_int_equal(pegadm_waiters_create(*state, 4, &w), APR_SUCCESS);
    assert_int_equal(pegadm_waiters_enter(w, alice, sizeof(alice), 2), 1);
    assert_int_equal(pegadm_waiters_enter(w, alice, sizeof(alice), 2), 1);
    assert_int_equal(pegadm_waiters_enter(w, alice, sizeof(alice), 2), 0);
    assert_int_equal(pegadm_waiters_enter(w, bob, sizeof(bob), 2), 1);
    pegadm_waiters_leave(w, alice, sizeof(alice));
    assert_int_equal(pegadm_waiters_enter(w, alice, sizeof(alice), 2), 1);
    assert_int_equal(pegadm_waiters_enter(w, alice, sizeof(alice), 2), 0);
}

static void a_freed_slot_serves_another_key(void **state)
{
    pegadm_waiters_t *w;

    assert_int_equal(pegadm_waiters_create(*state, 1, &w), APR_SUCCESS);
    assert_int_equal(pegadm_waiters_enter(w, alice, sizeof(alice), 1), 1);
    /* a full table lets the caller wait uncounted */
    assert_int_equal(pegadm_waiters_enter(w, bob, sizeof(bob), 1), -1);
    pegadm_waiters_leave(w, alice, sizeof(alice));
    assert_int_equal(pegadm_waiters_enter(w, bob, sizeof(bob), 1), 1);
    assert_int_equal(pegadm_waiters_enter(w, bob, sizeof(bob), 1), 0);
}

static void the_default_is_a_quarter_of_the_threads(void **state)
{
    assert_int_equal(pegadm_waiters_default_max(1), 1);
    assert_int_equal(pegadm_waiters_default_max(3), 1);
    assert_int_equal(pegadm_waiters_default_max(4), 2);
    assert_int_equal(pegadm_waiters_default_max(10), 2);
    assert_int_equal(pegadm_waiters_default_max(25), 6);
    assert_int_equal(pegadm_waiters_default_max(64), 16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        POOL_TEST(places_are_bounded_per_key),
        POOL_TEST(a_freed_slot_serves_another_key),
        cmocka_unit_test(the_default_is_a_quarter_of_the_threads),
    };
    apr_initialize();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
