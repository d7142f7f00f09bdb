/* Connection reuse: calls through a pegadm_http_handles_t set share one
 * keep-alive connection; the set keeps a bounded number of idle handles and
 * closes their connections when its pool goes. Against the fake service
 * (fake_service.c) in its keep-alive mode, which counts connections. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fake_service.h"
#include "pegadm_test_pool.h"

#include <pthread.h>
#include <unistd.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include "pegadm_http.h"

/* One POST in a pool of its own that is gone before the next call: a kept
 * handle must not point into it. Returns the answer's number. */
static int post(apr_pool_t *parent, fake_service_t *svc, pegadm_http_handles_t *hs)
{
    pegadm_http_opts_t opts = {NULL, NULL, apr_time_from_sec(10), apr_time_from_sec(2), hs};
    pegadm_http_response_t resp;
    apr_pool_t *p;
    int n = -1;

    assert_int_equal(apr_pool_create(&p, parent), APR_SUCCESS);
    if (pegadm_http_post_json(p, apr_psprintf(p, "http://127.0.0.1:%d/create", svc->port),
                              "token", "{\"customerId\":\"alice\"}", 22, &opts,
                              &resp) == PEGADM_HTTP_OK &&
        resp.status == 200) {
        sscanf(resp.body, "{\"n\":%d}", &n);
    }
    apr_pool_destroy(p);
    return n;
}

static void calls_share_one_connection(void **state)
{
    apr_pool_t *p = *state;
    fake_service_t *svc = fake_service_start(p, FAKE_COUNT, NULL);
    pegadm_http_handles_t *hs;

    assert_int_equal(pegadm_http_handles_create(p, 4, &hs), APR_SUCCESS);
    assert_int_equal(pegadm_http_handles_idle(hs), 0);
    for (int i = 1; i <= 5; i++) {
        assert_int_equal(post(p, svc, hs), i);
    }
    assert_int_equal(fake_service_count(svc, FAKE_ACCEPTED), 1);
    assert_int_equal(pegadm_http_handles_idle(hs), 1);
}

static void without_a_set_each_call_connects(void **state)
{
    apr_pool_t *p = *state;
    fake_service_t *svc = fake_service_start(p, FAKE_COUNT, NULL);

    for (int i = 1; i <= 3; i++) {
        assert_int_equal(post(p, svc, NULL), i);
    }
    assert_int_equal(fake_service_count(svc, FAKE_ACCEPTED), 3);
}

typedef struct {
    apr_pool_t *p;
    fake_service_t *svc;
    pegadm_http_handles_t *hs;
    int n;
} caller_t;

static void *concurrent_post(void *data)
{
    caller_t *c = data;
    c->n = post(c->p, c->svc, c->hs);
    return NULL;
}

/* Two calls at once need two handles; a set keeping one closes the other
 * after use, and the next call reuses the kept one's connection. */
static void idle_handles_are_bounded(void **state)
{
    apr_pool_t *p = *state;
    fake_service_t *svc = fake_service_start(p, FAKE_COUNT, NULL);
    pegadm_http_handles_t *hs;
    caller_t callers[2];
    pthread_t threads[2];

    assert_int_equal(pegadm_http_handles_create(p, 1, &hs), APR_SUCCESS);
    fake_service_set_hold(svc, 2);
    for (int i = 0; i < 2; i++) {
        /* pools are not thread-safe to create from: one each, made here */
        assert_int_equal(apr_pool_create(&callers[i].p, p), APR_SUCCESS);
        callers[i].svc = svc;
        callers[i].hs = hs;
        assert_int_equal(pthread_create(&threads[i], NULL, concurrent_post, &callers[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(threads[i], NULL);
    }
    assert_int_equal(callers[0].n + callers[1].n, 1 + 2);
    assert_int_equal(fake_service_count(svc, FAKE_ACCEPTED), 2);
    assert_int_equal(pegadm_http_handles_idle(hs), 1);
    fake_service_set_hold(svc, 1);
    assert_int_equal(post(p, svc, hs), 3);
    assert_int_equal(fake_service_count(svc, FAKE_ACCEPTED), 2);
}

/* Destroying the set's pool closes the kept connections. */
static void pool_cleanup_closes_connections(void **state)
{
    apr_pool_t *p = *state, *child;
    fake_service_t *svc = fake_service_start(p, FAKE_COUNT, NULL);
    pegadm_http_handles_t *hs;
    int closed = 0;

    assert_int_equal(apr_pool_create(&child, p), APR_SUCCESS);
    assert_int_equal(pegadm_http_handles_create(child, 2, &hs), APR_SUCCESS);
    assert_int_equal(post(p, svc, hs), 1);
    assert_int_equal(fake_service_count(svc, FAKE_CLOSED), 0);
    apr_pool_destroy(child);
    for (int i = 0; i < 500 && !closed; i++) { /* at most 5 s */
        closed = fake_service_count(svc, FAKE_CLOSED);
        if (!closed) {
            usleep(10000);
        }
    }
    assert_int_equal(closed, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        POOL_TEST(calls_share_one_connection),
        POOL_TEST(without_a_set_each_call_connects),
        POOL_TEST(idle_handles_are_bounded),
        POOL_TEST(pool_cleanup_closes_connections),
    };
    int failed;

    apr_initialize();
    if (pegadm_http_global_init() != APR_SUCCESS) {
        return 1;
    }
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    apr_terminate();
    return failed;
}
