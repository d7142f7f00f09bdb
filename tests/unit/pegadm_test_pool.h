/* A fresh APR pool per test: cmocka setup/teardown shared by the unit tests.
 * Include after cmocka.h. */
#ifndef PEGADM_TEST_POOL_H
#define PEGADM_TEST_POOL_H

#include <apr_pools.h>

static int pool_setup(void **state)
{
    apr_pool_t *p;
    if (apr_pool_create(&p, NULL) != APR_SUCCESS) {
        return -1;
    }
    *state = p;
    return 0;
}

static int pool_teardown(void **state)
{
    apr_pool_destroy(*state);
    return 0;
}

#define POOL_TEST(f) cmocka_unit_test_setup_teardown(f, pool_setup, pool_teardown)

#endif
