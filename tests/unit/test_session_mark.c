/* The cross-node create mark: two "nodes" (two locks) over one shared
 * store, and a mark held by the store's server. First requests on both
 * make one create; a mark held elsewhere is waited for, boundedly; a mark
 * that cannot be taken is a store failure; the mark never outlives the
 * create, failed or not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>

#include "pegadm_session.h"
#include "session_fixture.h"

/* The shared server: entries and marks, each access atomic. A missing
 * entry is answered slowly, so that first requests on two nodes both read
 * "nothing" before either writes. */
static struct {
    apr_thread_mutex_t *data;
    fake_slot_t slots[FAKE_SLOTS];
    fake_slot_t marks[FAKE_SLOTS];
    apr_status_t fail_mark;
    int takes, releases;
    int foreign_releases; /* releases that named another take's token */
    unsigned char last_token[PEGADM_MARK_TOKEN_LEN];
    void (*on_take)(void); /* runs before the first take is answered */
} shared;

static apr_thread_mutex_t *node_lock[2];

static apr_status_t node_lock_take(void *c)
{
    return apr_thread_mutex_lock(c);
}

static apr_status_t node_lock_give(void *c)
{
    return apr_thread_mutex_unlock(c);
}

static apr_status_t shared_get(void *c, const pegadm_store_key_t *key, unsigned char *buf,
                               unsigned int *len, apr_pool_t *p)
{
    fake_slot_t *s;
    apr_thread_mutex_lock(shared.data);
    s = fake_slot_find(shared.slots, key->id);
    if (s) {
        assert_true(s->len <= *len);
        memcpy(buf, s->val, s->len);
        *len = s->len;
    }
    apr_thread_mutex_unlock(shared.data);
    if (!s) {
        apr_sleep(apr_time_from_msec(100));
    }
    return s ? APR_SUCCESS : APR_NOTFOUND;
}

static apr_status_t shared_put(void *c, const pegadm_store_key_t *key, apr_time_t expiry,
                               const unsigned char *val, unsigned int len, apr_pool_t *p)
{
    fake_slot_t *s;
    apr_thread_mutex_lock(shared.data);
    s = fake_slot_find(shared.slots, key->id);
    s = s ? s : fake_slot_free(shared.slots);
    fake_slot_key(s, key);
    memcpy(s->val, val, len);
    s->len = len;
    s->expiry = expiry;
    s->used = 1;
    apr_thread_mutex_unlock(shared.data);
    return APR_SUCCESS;
}

static apr_status_t shared_del(void *c, const pegadm_store_key_t *key, apr_pool_t *p)
{
    fake_slot_t *s;
    apr_thread_mutex_lock(shared.data);
    s = fake_slot_find(shared.slots, key->id);
    if (s) {
        s->used = 0;
    }
    apr_thread_mutex_unlock(shared.data);
    return s ? APR_SUCCESS : APR_NOTFOUND;
}

/* As a cache server takes a mark: atomically, with the token given, and
 * released only by that token. */
static apr_status_t mark_take(void *c, const pegadm_store_key_t *key,
                              const unsigned char *token, apr_interval_time_t ttl,
                              apr_pool_t *p)
{
    apr_status_t rv = APR_SUCCESS;
    void (*hook)(void) = shared.on_take;

    shared.on_take = NULL;
    if (hook) {
        hook();
    }
    apr_thread_mutex_lock(shared.data);
    shared.takes++;
    if (shared.fail_mark) {
        rv = shared.fail_mark;
    } else if (fake_slot_find(shared.marks, key->id)) {
        rv = APR_EEXIST;
    } else {
        fake_slot_t *s = fake_slot_free(shared.marks);
        fake_slot_key(s, key);
        memcpy(s->token, token, PEGADM_MARK_TOKEN_LEN);
        memcpy(shared.last_token, token, PEGADM_MARK_TOKEN_LEN);
        s->expiry = apr_time_now() + ttl;
        s->used = 1;
    }
    apr_thread_mutex_unlock(shared.data);
    return rv;
}

static apr_status_t mark_release(void *c, const pegadm_store_key_t *key,
                                 const unsigned char *token, apr_pool_t *p)
{
    fake_slot_t *s;
    apr_thread_mutex_lock(shared.data);
    shared.releases++;
    s = fake_slot_find(shared.marks, key->id);
    if (s && memcmp(s->token, token, PEGADM_MARK_TOKEN_LEN) != 0) {
        shared.foreign_releases++;
        s = NULL; /* another's mark: left as it is */
    }
    if (s) {
        s->used = 0;
    }
    apr_thread_mutex_unlock(shared.data);
    return s ? APR_SUCCESS : APR_NOTFOUND;
}

static int marks_held(void)
{
    int n = 0;
    apr_thread_mutex_lock(shared.data);
    for (int i = 0; i < FAKE_SLOTS; i++) {
        n += shared.marks[i].used && shared.marks[i].expiry > apr_time_now();
    }
    apr_thread_mutex_unlock(shared.data);
    return n;
}

typedef struct {
    apr_thread_mutex_t *lock;
    int creates;
    int fail;
    apr_interval_time_t delay;
    void (*during)(void); /* runs in the next create */
} upstream_t;

static apr_status_t fake_create(void *baton, apr_pool_t *p, const char **sid, const char **why,
                                apr_time_t *held_until)
{
    upstream_t *u = baton;
    int n;
    apr_thread_mutex_lock(u->lock);
    n = ++u->creates; /* not serialised: two nodes may call at once */
    apr_thread_mutex_unlock(u->lock);
    if (u->during) {
        void (*during)(void) = u->during;
        u->during = NULL;
        during();
    }
    apr_sleep(u->delay);
    if (u->fail) {
        *why = "service said no";
        return APR_EGENERAL;
    }
    *sid = apr_psprintf(p, "sess-%d", n);
    return APR_SUCCESS;
}

static apr_pool_t *pool;
static pegadm_store_t stores[2];
static pegadm_mark_t mark = {NULL, mark_take, mark_release};
static pegadm_keys_t keys;
static upstream_t upstream;

static int setup(void **state)
{
    memset(shared.slots, 0, sizeof(shared.slots));
    memset(shared.marks, 0, sizeof(shared.marks));
    shared.fail_mark = APR_SUCCESS;
    shared.takes = shared.releases = shared.foreign_releases = 0;
    shared.on_take = NULL;
    upstream.creates = upstream.fail = 0;
    upstream.during = NULL;
    upstream.delay = apr_time_from_msec(100);
    return 0;
}

static pegadm_session_call_t request_on(int node, const char *customer)
{
    pegadm_session_call_t call =
        session_request(&stores[node], &keys, customer, fake_create, &upstream);
    call.mark = &mark;
    return call;
}

#define JOBS 8

static void run_on_both_nodes(session_job_t *jobs, const char *customer)
{
    for (int i = 0; i < JOBS; i++) {
        jobs[i].call = request_on(i % 2, customer);
    }
    session_jobs_run(jobs, JOBS, pool);
}

static void test_first_requests_on_two_nodes_make_one_create(void **state)
{
    session_job_t jobs[JOBS];
    run_on_both_nodes(jobs, "carol");
    assert_int_equal(upstream.creates, 1);
    for (int i = 0; i < JOBS; i++) {
        assert_int_equal(jobs[i].status, PEGADM_SESSION_OK);
        assert_string_equal(jobs[i].res.session_id, "sess-1");
        free((void *)jobs[i].res.session_id);
    }
    assert_int_equal(marks_held(), 0);
}

/* Without the mark, the two nodes' locks decide nothing between them: one
 * first request on each, both reading "nothing", make two creates (so the
 * fixture shows the race the mark closes). */
static void test_without_the_mark_two_nodes_both_create(void **state)
{
    session_job_t jobs[2];
    for (int i = 0; i < 2; i++) {
        jobs[i].call = request_on(i, "carol");
        jobs[i].call.mark = NULL;
    }
    session_jobs_run(jobs, 2, pool);
    for (int i = 0; i < 2; i++) {
        free((void *)jobs[i].res.session_id);
    }
    assert_int_equal(upstream.creates, 2);
}

static void test_waiters_share_a_failure_across_nodes(void **state)
{
    session_job_t jobs[JOBS];
    upstream.fail = 1;
    run_on_both_nodes(jobs, "dave");
    assert_int_equal(upstream.creates, 1);
    for (int i = 0; i < JOBS; i++) {
        assert_int_equal(jobs[i].status, PEGADM_SESSION_UPSTREAM);
    }
    assert_int_equal(marks_held(), 0);
    upstream.fail = 0;
    {
        pegadm_session_call_t call = request_on(1, "dave");
        pegadm_session_result_t res;
        assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_OK);
        assert_int_equal(res.created, 1);
    }
}

static void take_mark_elsewhere(const char *customer, apr_interval_time_t ttl)
{
    const char *widget = "0b6c3d52-5b7a-4c53-9a55-2f6f3c2d8e11";
    const unsigned char token[PEGADM_MARK_TOKEN_LEN] = "elsewhere";
    unsigned char id[PEGADM_CACHE_ID_LEN], tag[PEGADM_CUSTOMER_TAG_LEN];
    pegadm_store_key_t key = {id, sizeof(id), tag, sizeof(tag)};

    assert_int_equal(pegadm_cache_id(&keys, "create-mark", widget, customer, id), APR_SUCCESS);
    pegadm_customer_tag(&keys, widget, customer, tag);
    assert_int_equal(mark_take(NULL, &key, token, ttl, pool), APR_SUCCESS);
}

/* A mark held by a node that never finishes: the wait is bounded, and no
 * create is made while the mark is held. */
static void test_a_mark_held_elsewhere_is_waited_for_boundedly(void **state)
{
    pegadm_session_call_t call = request_on(0, "erin");
    pegadm_session_result_t res;
    apr_time_t began = apr_time_now();

    take_mark_elsewhere("erin", apr_time_from_sec(60));
    call.wait_max = apr_time_from_msec(300);
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_UPSTREAM);
    assert_string_equal(res.why, "timed out waiting for a concurrent request's create");
    assert_true(apr_time_now() - began >= apr_time_from_msec(300));
    assert_int_equal(upstream.creates, 0);
}

static void test_a_mark_that_cannot_be_taken_is_a_store_failure(void **state)
{
    pegadm_session_call_t call = request_on(0, "frank");
    pegadm_session_result_t res;

    shared.fail_mark = APR_ECONNREFUSED;
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_STORE);
    assert_non_null(strstr(res.why, "taking the create mark"));
    assert_int_equal(upstream.creates, 0);
    shared.fail_mark = APR_SUCCESS;
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_OK);
    assert_int_equal(res.created, 1);
}

/* The previous holder's session lands between our first read and our
 * take: it is read again under the mark and handed out, not duplicated. */
static void store_a_session_on_the_other_node(void)
{
    pegadm_session_call_t call = request_on(1, "grace");
    pegadm_session_result_t res;
    call.mark = NULL;
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_OK);
    assert_string_equal(res.session_id, "sess-1");
}

static void test_a_session_stored_before_the_take_is_handed_out(void **state)
{
    pegadm_session_call_t call = request_on(0, "grace");
    pegadm_session_result_t res;

    shared.on_take = store_a_session_on_the_other_node;
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_OK);
    assert_string_equal(res.session_id, "sess-1");
    assert_int_equal(res.created, 0);
    assert_int_equal(upstream.creates, 1);
    assert_int_equal(shared.releases, 1);
    assert_int_equal(marks_held(), 0);
}

/* The holder of the mark counts its create against the customer's limit,
 * like a create on one node does. */
static void test_the_marks_holder_counts_the_create(void **state)
{
    pegadm_session_call_t call = request_on(0, "heidi"), other = request_on(1, "heidi");
    pegadm_session_result_t res;

    call.create_limit = other.create_limit = 1;
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_OK);
    assert_int_equal(res.created, 1);
    assert_int_equal(pegadm_session_forget(pool, &call, &res), PEGADM_SESSION_OK);
    assert_int_equal(pegadm_session_get(pool, &other, &res), PEGADM_SESSION_RATE_LIMITED);
    assert_int_equal(upstream.creates, 1);
    assert_int_equal(marks_held(), 0);
}

/* Waiting for another node's mark takes a place among this process's
 * waiters: past PegaDMCreateWaiters, a request is refused at once. */
static void test_waiting_for_a_mark_elsewhere_is_bounded(void **state)
{
    pegadm_waiters_t *waiters;
    session_job_t first;
    apr_thread_t *thread;
    pegadm_session_call_t call = request_on(0, "ivan");
    pegadm_session_result_t res;
    apr_time_t began;

    assert_int_equal(pegadm_waiters_create(pool, 4, &waiters), APR_SUCCESS);
    take_mark_elsewhere("ivan", apr_time_from_sec(60));
    first.call = request_on(0, "ivan");
    first.call.waiters = waiters;
    first.call.waiters_max = 1;
    thread = session_job_start(&first, pool);
    apr_sleep(apr_time_from_msec(500)); /* two slow reads of nothing, then it waits */
    call.waiters = waiters;
    call.waiters_max = 1;
    began = apr_time_now();
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_UPSTREAM);
    assert_true(res.refused);
    assert_true(res.retry_after > 0);
    assert_non_null(strstr(res.why, "PegaDMCreateWaiters"));
    assert_true(apr_time_now() - began < apr_time_from_sec(1));
    session_job_join(thread);
    assert_int_equal(first.status, PEGADM_SESSION_UPSTREAM);
    assert_false(first.res.refused);
    free((void *)first.res.session_id);
    assert_int_equal(upstream.creates, 0);
}

/* Our mark lapses while the create runs long, and another node takes the
 * customer's mark: our release, naming our take's token, leaves theirs. */
static void lapse_and_take_elsewhere(void)
{
    apr_thread_mutex_lock(shared.data);
    for (int i = 0; i < FAKE_SLOTS; i++) {
        shared.marks[i].expiry = apr_time_now();
    }
    apr_thread_mutex_unlock(shared.data);
    take_mark_elsewhere("judy", apr_time_from_sec(60));
}

static void test_a_release_removes_only_its_own_mark(void **state)
{
    pegadm_session_call_t call = request_on(0, "judy");
    pegadm_session_result_t res;
    unsigned char first[PEGADM_MARK_TOKEN_LEN];

    upstream.during = lapse_and_take_elsewhere;
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_OK);
    assert_int_equal(res.created, 1);
    assert_int_equal(shared.releases, 1);
    assert_int_equal(shared.foreign_releases, 1);
    assert_int_equal(marks_held(), 1);
    /* each take has a token of its own */
    memcpy(first, shared.last_token, sizeof(first));
    call = request_on(0, "karl");
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_OK);
    assert_memory_not_equal(first, shared.last_token, sizeof(first));
    assert_int_equal(shared.foreign_releases, 1);
}

/* Every key of one customer (entries and mark) carries one tag, so that a
 * Redis Cluster keeps them in one hash slot; another customer's differs. */
static void test_a_customers_keys_share_one_tag(void **state)
{
    const char *widget = "0b6c3d52-5b7a-4c53-9a55-2f6f3c2d8e11";
    pegadm_session_call_t call = request_on(0, "liam");
    pegadm_session_result_t res;
    unsigned char tag[PEGADM_CUSTOMER_TAG_LEN], other[PEGADM_CUSTOMER_TAG_LEN];
    int tagged = 0;

    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_OK);
    assert_int_equal(pegadm_session_forget(pool, &call, &res), PEGADM_SESSION_OK);
    pegadm_customer_tag(&keys, widget, "liam", tag);
    pegadm_customer_tag(&keys, widget, "liam2", other);
    assert_memory_not_equal(tag, other, sizeof(tag));
    for (int i = 0; i < FAKE_SLOTS; i++) {
        if (shared.slots[i].tag_len) {
            assert_memory_equal(shared.slots[i].tag, tag, sizeof(tag));
            tagged++;
        }
        if (shared.marks[i].tag_len) {
            assert_memory_equal(shared.marks[i].tag, tag, sizeof(tag));
            tagged++;
        }
    }
    assert_true(tagged >= 3); /* the session, the rate, the forget, the mark */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_first_requests_on_two_nodes_make_one_create, setup),
        cmocka_unit_test_setup(test_without_the_mark_two_nodes_both_create, setup),
        cmocka_unit_test_setup(test_waiters_share_a_failure_across_nodes, setup),
        cmocka_unit_test_setup(test_a_mark_held_elsewhere_is_waited_for_boundedly, setup),
        cmocka_unit_test_setup(test_a_mark_that_cannot_be_taken_is_a_store_failure, setup),
        cmocka_unit_test_setup(test_a_session_stored_before_the_take_is_handed_out, setup),
        cmocka_unit_test_setup(test_the_marks_holder_counts_the_create, setup),
        cmocka_unit_test_setup(test_waiting_for_a_mark_elsewhere_is_bounded, setup),
        cmocka_unit_test_setup(test_a_release_removes_only_its_own_mark, setup),
        cmocka_unit_test_setup(test_a_customers_keys_share_one_tag, setup),
    };
    const char secret[] = "correct horse battery staple, 40 bytes!!";
    int failed;

    apr_initialize();
    apr_pool_create(&pool, NULL);
    apr_thread_mutex_create(&shared.data, APR_THREAD_MUTEX_DEFAULT, pool);
    apr_thread_mutex_create(&upstream.lock, APR_THREAD_MUTEX_DEFAULT, pool);
    for (int i = 0; i < 2; i++) {
        apr_thread_mutex_create(&node_lock[i], APR_THREAD_MUTEX_DEFAULT, pool);
        stores[i] = (pegadm_store_t){node_lock[i], node_lock_take, node_lock_give,
                                     shared_get,   shared_put,     shared_del};
    }
    pegadm_keys_derive(&keys, (const unsigned char *)secret, strlen(secret));
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    apr_terminate();
    return failed;
}
