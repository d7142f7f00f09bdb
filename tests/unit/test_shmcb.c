/* The shmcb sizing arithmetic, and the proof that the default cache holds
 * 100,000 customers: their real cache keys are spread over the subcaches
 * of the computed layout, each writing all it writes within one TTL, and
 * no subcache may run out of index slots or data. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <apr_general.h>

#include "pegadm_dm.h"
#include "pegadm_seal.h"
#include "pegadm_session.h"
#include "pegadm_shmcb.h"

#define WIDGET "0b6c3d52-5b7a-4c53-9a55-2f6f3c2d8e11"
#define MIB    (1024 * 1024)

#define MARKER  (PEGADM_CACHE_ID_LEN + PEGADM_SESSION_ENTRY_HEADER + PEGADM_SEAL_OVERHEAD)
#define SESSION (MARKER + PEGADM_SESSION_ENTRY_EXTRA + PEGADM_SESSION_ID_MAX)

static pegadm_keys_t keys;

static void customer_footprint(void **state)
{
    /* pending marker + session, rate counter + renewed session, forgotten
     * marker: 5 slots */
    assert_int_equal(MARKER, 32 + 22 + 28);
    assert_int_equal(SESSION, 32 + 22 + 28 + 24 + 128);
    assert_int_equal(pegadm_shmcb_customer_bytes(), 3 * MARKER + 2 * SESSION + 5 * 24);
}

/* shmcb's own numbers for its default size, as it logs them at debug level
 * (AH00822, AH00828) for these hints. */
static void layout_of_shmcb_default(void **state)
{
    pegadm_shmcb_layout_t l;

    assert_int_equal(pegadm_shmcb_layout(PEGADM_SHMCB_DEFAULT_SIZE, &l), APR_SUCCESS);
    assert_int_equal(l.subcaches, 32);
    assert_int_equal(l.indexes, 101);                     /* (524288 - 88) / 161 / 32 */
    assert_int_equal(l.data_size, 16376 - 16 - 101 * 24); /* aligned subcache - index */
}

static void layout_refuses_what_shmcb_refuses(void **state)
{
    pegadm_shmcb_layout_t l;

    assert_int_equal(pegadm_shmcb_layout(8191, &l), APR_ENOSPC);
    assert_int_equal(pegadm_shmcb_layout((apr_size_t)4 * 1024 * MIB, &l), APR_ENOSPC);
    assert_int_equal(pegadm_shmcb_customers(100), 0);
}

/* Why the module gives shmcb an explicit size: its default holds only a
 * few hundred customers. */
static void shmcb_default_is_far_too_small(void **state)
{
    apr_size_t n = pegadm_shmcb_customers(PEGADM_SHMCB_DEFAULT_SIZE);
    assert_true(n > 100);
    assert_true(n < 1000);
}

static void size_for_is_enough_and_not_much_more(void **state)
{
    static const apr_size_t counts[] = {1, 1000, 100000, 1000000};

    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        apr_size_t size = pegadm_shmcb_size_for(counts[i]);
        assert_true(size > 0 && size % 1024 == 0);
        assert_true(pegadm_shmcb_customers(size) >= counts[i]);
        if (size > 64 * 1024) {
            assert_true(pegadm_shmcb_customers(size - size / 32) < counts[i]);
        }
    }
    /* 100,000 customers: about 83 MB of entries plus room for the spread */
    assert_true(pegadm_shmcb_size_for(100000) < 112 * MIB);
    assert_int_equal(pegadm_shmcb_size_for((apr_size_t)100 * 1000 * 1000), 0);
}

typedef struct {
    apr_size_t slots;
    apr_size_t bytes;
} fill_t;

/* Writes what `customers` customers write within one TTL into a model of
 * the layout's subcaches: a session key (a pending marker, a session, a
 * renewed session; each replaced entry keeps its room until it is the
 * oldest) and a rate key (one counter). Returns how many subcaches would
 * have pushed out an entry before its time. */
static int overflowing_subcaches(apr_size_t size, int customers)
{
    pegadm_shmcb_layout_t l;
    fill_t *fill;
    int overflowing = 0;

    assert_int_equal(pegadm_shmcb_layout(size, &l), APR_SUCCESS);
    fill = calloc(l.subcaches, sizeof(*fill));
    assert_non_null(fill);
    for (int i = 0; i < customers; i++) {
        unsigned char session_key[PEGADM_CACHE_ID_LEN], rate_key[PEGADM_CACHE_ID_LEN];
        char customer[32];
        fill_t *f;

        snprintf(customer, sizeof(customer), "customer-%d", i);
        assert_int_equal(pegadm_cache_id(&keys, "session", WIDGET, customer, session_key),
                         APR_SUCCESS);
        assert_int_equal(pegadm_cache_id(&keys, "rate", WIDGET, customer, rate_key),
                         APR_SUCCESS);
        f = &fill[session_key[0] & (l.subcaches - 1)];
        f->slots += 3;
        f->bytes += MARKER + 2 * SESSION;
        f = &fill[rate_key[0] & (l.subcaches - 1)];
        f->slots += 1;
        f->bytes += MARKER;
    }
    for (unsigned int s = 0; s < l.subcaches; s++) {
        overflowing += fill[s].slots > l.indexes || fill[s].bytes > l.data_size;
    }
    free(fill);
    return overflowing;
}

static void default_size_holds_100000_customers(void **state)
{
    apr_size_t size = pegadm_shmcb_size_for(100000);

    assert_int_equal(overflowing_subcaches(size, 100000), 0);
    /* the model can fail: a third more customers do overflow */
    assert_true(overflowing_subcaches(size, 133000) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(customer_footprint),
        cmocka_unit_test(layout_of_shmcb_default),
        cmocka_unit_test(layout_refuses_what_shmcb_refuses),
        cmocka_unit_test(shmcb_default_is_far_too_small),
        cmocka_unit_test(size_for_is_enough_and_not_much_more),
        cmocka_unit_test(default_size_holds_100000_customers),
    };
    const char secret[] = "a JWT secret for the sizing test";

    apr_initialize();
    if (pegadm_keys_derive(&keys, (const unsigned char *)secret, strlen(secret)) !=
        APR_SUCCESS) {
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
