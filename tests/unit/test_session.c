/* Session logic over an in-memory store: caching, single flight, failures,
 * tampering, renewal with its limit, and forgetting. */
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

#include "pegadm_cacheerr.h"
#include "pegadm_session.h"
#include "session_fixture.h"

typedef struct {
    fake_slot_t slots[FAKE_SLOTS];
    apr_thread_mutex_t *mutex;
    apr_status_t fail_get, fail_put, fail_lock;
    /* Another node's write landing right after ours: when put_countdown
     * puts have been made, the slot written last becomes `injected`. */
    int put_countdown;
    fake_slot_t injected;
} fake_store_t;

static apr_status_t fake_lock(void *c)
{
    fake_store_t *f = c;
    return f->fail_lock ? f->fail_lock : apr_thread_mutex_lock(f->mutex);
}

static apr_status_t fake_unlock(void *c)
{
    return apr_thread_mutex_unlock(((fake_store_t *)c)->mutex);
}

static fake_slot_t *find(fake_store_t *f, const unsigned char *id)
{
    return fake_slot_find(f->slots, id);
}

static apr_status_t fake_get(void *c, const pegadm_store_key_t *key, unsigned char *buf,
                             unsigned int *len, apr_pool_t *p)
{
    fake_store_t *f = c;
    fake_slot_t *s = find(f, key->id);
    if (f->fail_get) {
        return f->fail_get;
    }
    if (!s) {
        return APR_NOTFOUND;
    }
    assert_true(s->len <= *len);
    memcpy(buf, s->val, s->len);
    *len = s->len;
    return APR_SUCCESS;
}

static apr_status_t fake_put(void *c, const pegadm_store_key_t *key, apr_time_t expiry,
                             const unsigned char *val, unsigned int len, apr_pool_t *p)
{
    fake_store_t *f = c;
    fake_slot_t *s = find(f, key->id);
    if (f->fail_put) {
        return f->fail_put;
    }
    s = s ? s : fake_slot_free(f->slots);
    assert_true(len <= sizeof(s->val));
    fake_slot_key(s, key);
    memcpy(s->val, val, len);
    s->len = len;
    s->expiry = expiry;
    s->used = 1;
    if (f->put_countdown > 0 && --f->put_countdown == 0) {
        *s = f->injected;
    }
    return APR_SUCCESS;
}

static apr_status_t fake_del(void *c, const pegadm_store_key_t *key, apr_pool_t *p)
{
    fake_slot_t *s = find(c, key->id);
    if (!s) {
        return APR_NOTFOUND;
    }
    s->used = 0;
    return APR_SUCCESS;
}

/* The upstream: counts creates, can fail, can take its time, can be deemed
 * down (refusing without a call, as an open circuit breaker does). */
typedef struct {
    int creates;
    int fail;
    apr_interval_time_t delay;
    apr_interval_time_t held_for;
} upstream_t;

static apr_status_t fake_create(void *baton, apr_pool_t *p, const char **sid, const char **why,
                                apr_time_t *held_until)
{
    upstream_t *u = baton;
    int n = ++u->creates; /* serialised by the single flight under test */
    if (u->delay) {
        apr_sleep(u->delay);
    }
    if (u->held_for) {
        *why = "deemed down";
        *held_until = apr_time_now() + u->held_for;
        return APR_EGENERAL;
    }
    if (u->fail) {
        *why = "service said no";
        return APR_EGENERAL;
    }
    *sid = apr_psprintf(p, "sess-%d", n);
    return APR_SUCCESS;
}

static apr_pool_t *pool;
static fake_store_t store_data;
static pegadm_store_t store;
static pegadm_keys_t keys;
static upstream_t upstream;

static int setup(void **state)
{
    memset(&store_data.slots, 0, sizeof(store_data.slots));
    store_data.fail_get = store_data.fail_put = store_data.fail_lock = APR_SUCCESS;
    store_data.put_countdown = 0;
    memset(&upstream, 0, sizeof(upstream));
    return 0;
}

static pegadm_session_call_t request_for(const char *customer)
{
    return session_request(&store, &keys, customer, fake_create, &upstream);
}

static void test_get_creates_once_and_reuses(void **state)
{
    pegadm_session_call_t call = request_for("alice");
    pegadm_session_result_t r1, r2;

    assert_int_equal(pegadm_session_get(pool, &call, &r1), PEGADM_SESSION_OK);
    assert_int_equal(r1.created, 1);
    assert_int_equal(pegadm_session_get(pool, &call, &r2), PEGADM_SESSION_OK);
    assert_int_equal(r2.created, 0);
    assert_string_equal(r1.session_id, r2.session_id);
    assert_int_equal(upstream.creates, 1);
}

static void test_customers_never_share(void **state)
{
    pegadm_session_call_t a = request_for("alice"), b = request_for("alice ");
    pegadm_session_result_t ra, rb;

    assert_int_equal(pegadm_session_get(pool, &a, &ra), PEGADM_SESSION_OK);
    assert_int_equal(pegadm_session_get(pool, &b, &rb), PEGADM_SESSION_OK);
    assert_string_not_equal(ra.session_id, rb.session_id);
    assert_int_equal(upstream.creates, 2);
}

static void test_failure_caches_nothing(void **state)
{
    pegadm_session_call_t call = request_for("alice");
    pegadm_session_result_t res;

    upstream.fail = 1;
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_UPSTREAM);
    assert_string_equal(res.why, "service said no");
    assert_false(res.refused);
    assert_int_equal(res.retry_after, 0);
    upstream.fail = 0;
    /* a later request is not answered by the old failure */
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_OK);
    assert_int_equal(res.created, 1);
    assert_int_equal(upstream.creates, 2);
}

/* A service deemed down: the answer says how long it stays so, for
 * a first request and a renewal alike, and the next request tries again. */
static void test_refusal_says_when_to_retry(void **state)
{
    pegadm_session_call_t call = request_for("alice");
    pegadm_session_result_t res;

    upstream.held_for = apr_time_from_sec(20);
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_UPSTREAM);
    assert_true(res.refused);
    assert_true(res.retry_after > apr_time_from_sec(19));
    assert_true(res.retry_after <= apr_time_from_sec(20));
    assert_int_equal(pegadm_session_renew(pool, &call, &res), PEGADM_SESSION_UPSTREAM);
    assert_true(res.refused);
    assert_true(res.retry_after > apr_time_from_sec(19));
    upstream.held_for = 0;
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_OK);
    assert_false(res.refused);
    assert_int_equal(upstream.creates, 3);
}

/* Held for down right now (a probe is out): refused, with nothing to wait. */
static void test_refusal_with_no_time_left_is_still_a_refusal(void **state)
{
    pegadm_session_call_t call = request_for("alice");
    pegadm_session_result_t res;

    upstream.held_for = -1;
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_UPSTREAM);
    assert_true(res.refused);
    assert_int_equal(res.retry_after, 0);
}

static void test_tampered_entry_is_discarded(void **state)
{
    pegadm_session_call_t call = request_for("alice");
    pegadm_session_result_t res;

    pegadm_session_get(pool, &call, &res);
    for (int i = 0; i < FAKE_SLOTS; i++) {
        if (store_data.slots[i].used) {
            store_data.slots[i].val[store_data.slots[i].len - 1] ^= 0x80;
        }
    }
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_OK);
    assert_int_equal(res.discarded, 2); /* the session and the create count */
    assert_int_equal(res.created, 1);
    assert_string_equal(res.session_id, "sess-2");
}

/* An entry copied under another customer's key does not authenticate. */
static void test_entry_moved_between_customers_is_discarded(void **state)
{
    pegadm_session_call_t a = request_for("alice"), b = request_for("bob");
    pegadm_session_result_t ra, rb;
    fake_slot_t *sa = NULL, *sb = NULL;

    pegadm_session_get(pool, &a, &ra);
    pegadm_session_get(pool, &b, &rb);
    for (int i = 0; i < FAKE_SLOTS; i++) {
        if (store_data.slots[i].used) {
            if (!sa) {
                sa = &store_data.slots[i];
            } else {
                sb = &store_data.slots[i];
            }
        }
    }
    assert_non_null(sb);
    memcpy(sb->val, sa->val, sa->len);
    sb->len = sa->len;
    assert_int_equal(pegadm_session_get(pool, &a, &ra), PEGADM_SESSION_OK);
    assert_int_equal(pegadm_session_get(pool, &b, &rb), PEGADM_SESSION_OK);
    assert_int_equal(ra.discarded + rb.discarded, 1);
    assert_string_not_equal(ra.session_id, rb.session_id);
}

static void test_store_failures(void **state)
{
    pegadm_session_call_t call = request_for("alice");
    pegadm_session_result_t res;

    store_data.fail_get = APR_ECONNREFUSED;
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_STORE);
    assert_int_equal(upstream.creates, 0); /* never mint what cannot be stored */
    store_data.fail_get = APR_SUCCESS;
    store_data.fail_put = APR_ECONNREFUSED;
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_STORE);
    assert_null(res.session_id);
    assert_int_equal(upstream.creates, 0);
    /* a cache client's reason is named as the logs and the audit log say it */
    store_data.fail_put = APR_SUCCESS;
    store_data.fail_get = PEGADM_CACHE_TIMEOUT;
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_STORE);
    assert_non_null(strstr(res.why, "failed: timeout"));
    assert_int_equal(res.store_status, PEGADM_CACHE_TIMEOUT);
    store_data.fail_get = PEGADM_CACHE_TLS;
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_STORE);
    assert_non_null(strstr(res.why, "failed: tls"));
    store_data.fail_get = APR_SUCCESS;
}

static void test_renew_replaces_and_is_limited(void **state)
{
    pegadm_session_call_t call = request_for("alice");
    pegadm_session_result_t first, renewed, again;

    pegadm_session_get(pool, &call, &first);
    assert_int_equal(pegadm_session_renew(pool, &call, &renewed), PEGADM_SESSION_OK);
    assert_string_not_equal(first.session_id, renewed.session_id);
    assert_int_equal(pegadm_session_get(pool, &call, &again), PEGADM_SESSION_OK);
    assert_string_equal(again.session_id, renewed.session_id);
    /* the first create counted too: the limit of 2 is reached */
    assert_int_equal(pegadm_session_renew(pool, &call, &again), PEGADM_SESSION_RATE_LIMITED);
    assert_true(again.retry_after > 0);
    assert_true(again.retry_after <= apr_time_from_sec(60));
    assert_int_equal(upstream.creates, 2);
    /* another customer has a window of their own */
    call = request_for("bob");
    assert_int_equal(pegadm_session_renew(pool, &call, &again), PEGADM_SESSION_OK);
}

/* Forgetting a session and asking again is a create like any other. */
static void test_every_create_counts_against_the_limit(void **state)
{
    pegadm_session_call_t call = request_for("alice");
    pegadm_session_result_t res;

    for (int i = 0; i < 2; i++) {
        assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_OK);
        assert_int_equal(pegadm_session_forget(pool, &call, &res), PEGADM_SESSION_OK);
    }
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_RATE_LIMITED);
    assert_true(res.retry_after > 0);
    assert_int_equal(upstream.creates, 2);
}

/* The longest entry in the store: the session (it holds the ID). */
static fake_slot_t *session_slot(void)
{
    fake_slot_t *best = NULL;
    for (int i = 0; i < FAKE_SLOTS; i++) {
        if (store_data.slots[i].used && (!best || store_data.slots[i].len > best->len)) {
            best = &store_data.slots[i];
        }
    }
    return best;
}

/* A cache writer puts back a session entry saved before the forget, and
 * one kept past its own expiry: neither is honoured. */
static void test_entries_put_back_are_not_honoured(void **state)
{
    pegadm_session_call_t call = request_for("alice");
    pegadm_session_result_t res;
    fake_slot_t saved, *slot;

    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_OK);
    assert_string_equal(res.session_id, "sess-1");
    saved = *session_slot();
    assert_int_equal(pegadm_session_forget(pool, &call, &res), PEGADM_SESSION_OK);
    for (slot = &store_data.slots[0]; slot->used; slot++) {
    }
    *slot = saved; /* written back, under its own key */
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_OK);
    assert_string_equal(res.session_id, "sess-2");

    call.ttl = apr_time_from_msec(50);
    call.customer_id = "bob";
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_OK);
    slot = session_slot();
    slot->expiry = apr_time_now() + apr_time_from_sec(3600); /* the cache keeps it */
    apr_sleep(apr_time_from_msec(80));
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_OK);
    assert_true(res.created);
}

/* A refused create (the service deemed down) calls nobody: it is not counted. */
static void test_refused_creates_do_not_count(void **state)
{
    pegadm_session_call_t call = request_for("alice");
    pegadm_session_result_t res;

    upstream.held_for = apr_time_from_sec(20);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_UPSTREAM);
        assert_true(res.refused);
    }
    upstream.held_for = 0;
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_OK);
}

static void test_failed_renew_keeps_session(void **state)
{
    pegadm_session_call_t call = request_for("alice");
    pegadm_session_result_t first, res;

    pegadm_session_get(pool, &call, &first);
    upstream.fail = 1;
    assert_int_equal(pegadm_session_renew(pool, &call, &res), PEGADM_SESSION_UPSTREAM);
    upstream.fail = 0;
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_OK);
    assert_string_equal(res.session_id, first.session_id);
}

static void test_forget(void **state)
{
    pegadm_session_call_t call = request_for("alice");
    pegadm_session_result_t first, res;

    pegadm_session_get(pool, &call, &first);
    assert_int_equal(pegadm_session_forget(pool, &call, &res), PEGADM_SESSION_OK);
    assert_int_equal(pegadm_session_forget(pool, &call, &res), PEGADM_SESSION_OK);
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_OK);
    assert_string_not_equal(res.session_id, first.session_id);
}

/* ---- a rotation's swap of the two secrets: sessions filed under the
 * other secret's keys are kept ---- */

static pegadm_keys_t other_keys;

static void test_a_session_filed_under_the_previous_keys_is_kept(void **state)
{
    pegadm_session_call_t before = request_for("alice"), after = request_for("alice");
    pegadm_session_call_t only_new = request_for("alice");
    pegadm_session_result_t first, res;

    before.keys = &other_keys;
    after.keys_previous = &other_keys;
    assert_int_equal(pegadm_session_get(pool, &before, &first), PEGADM_SESSION_OK);
    /* without the previous keys, a new session: what the swap must avoid */
    only_new.create = NULL;
    assert_int_equal(pegadm_session_get(pool, &after, &res), PEGADM_SESSION_OK);
    assert_string_equal(res.session_id, first.session_id);
    assert_int_equal(res.created, 0);
    /* filed anew under the current keys */
    assert_int_equal(pegadm_session_get(pool, &only_new, &res), PEGADM_SESSION_OK);
    assert_string_equal(res.session_id, first.session_id);
    assert_int_equal(upstream.creates, 1);
}

static void test_forget_removes_the_session_under_both_keys(void **state)
{
    pegadm_session_call_t before = request_for("alice"), after = request_for("alice");
    pegadm_session_result_t first, res;

    before.keys = &other_keys;
    after.keys_previous = &other_keys;
    assert_int_equal(pegadm_session_get(pool, &before, &first), PEGADM_SESSION_OK);
    assert_int_equal(pegadm_session_forget(pool, &after, &res), PEGADM_SESSION_OK);
    assert_int_equal(pegadm_session_get(pool, &after, &res), PEGADM_SESSION_OK);
    assert_int_equal(res.created, 1);
    assert_string_not_equal(res.session_id, first.session_id);
}

/* The owner of a login (mod_pegadm_handlers.c) during a rotation: each key's
 * record of the last logout, the one written before the next secret was
 * set as well as those written since. */
static void test_last_forget_is_read_under_both_keys(void **state)
{
    pegadm_session_call_t before = request_for("alice"), after = request_for("alice");
    pegadm_session_result_t res;
    apr_time_t old;

    before.keys = &other_keys; /* a logout before the next secret was set */
    assert_int_equal(pegadm_session_forget(pool, &before, &res), PEGADM_SESSION_OK);
    assert_int_equal(pegadm_session_last_forget(pool, &before, &res), PEGADM_SESSION_OK);
    old = res.forgotten_at;
    assert_true(old > 0);
    after.keys_previous = &other_keys;
    assert_int_equal(pegadm_session_last_forget(pool, &after, &res), PEGADM_SESSION_OK);
    assert_int_equal(res.forgotten_at, 0);
    assert_int_equal(res.forgotten_previous, old);
    apr_sleep(10);
    assert_int_equal(pegadm_session_forget(pool, &after, &res), PEGADM_SESSION_OK);
    assert_int_equal(pegadm_session_last_forget(pool, &after, &res), PEGADM_SESSION_OK);
    assert_true(res.forgotten_at > old);
    assert_int_equal(res.forgotten_previous, res.forgotten_at);
    store_data.fail_get = APR_EGENERAL;
    assert_int_equal(pegadm_session_last_forget(pool, &after, &res), PEGADM_SESSION_STORE);
}

/* ---- several nodes on one shared store: the lock is per node, so another
 * node's session can land while ours is being created ---- */

/* The upstream of a node whose create overlaps another node's: that one's
 * session (sess-1) is stored first, then ours (sess-2) comes back. */
static apr_status_t create_overlapping_another_node(void *baton, apr_pool_t *p,
                                                    const char **sid, const char **why,
                                                    apr_time_t *held_until)
{
    pegadm_session_call_t other = request_for(baton);
    pegadm_session_result_t res;

    assert_int_equal(pegadm_session_renew(p, &other, &res), PEGADM_SESSION_OK);
    assert_string_equal(res.session_id, "sess-1");
    return fake_create(&upstream, p, sid, why, held_until);
}

static void test_first_request_adopts_a_session_stored_meanwhile(void **state)
{
    pegadm_session_call_t call = request_for("frank");
    pegadm_session_result_t res;

    call.create = create_overlapping_another_node;
    call.create_baton = "frank";
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_OK);
    assert_int_equal(upstream.creates, 2);
    assert_int_equal(res.created, 1);
    assert_string_equal(res.session_id, "sess-1");
    call = request_for("frank");
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_OK);
    assert_string_equal(res.session_id, "sess-1");
    assert_int_equal(upstream.creates, 2);
}

/* Both nodes write; the one that wrote first reads back the other's
 * session and hands that out, so both give the customer the same one. */
static void test_first_request_hands_out_what_the_store_holds(void **state)
{
    pegadm_session_call_t call = request_for("grace");
    pegadm_session_result_t res;

    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_OK);
    assert_string_equal(res.session_id, "sess-1");
    for (int i = 0; i < FAKE_SLOTS; i++) {
        if (store_data.slots[i].used) {
            store_data.injected = store_data.slots[i];
        }
    }
    memset(&store_data.slots, 0, sizeof(store_data.slots)); /* the store lost it */
    store_data.put_countdown = 2; /* the pending marker, then our session */
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_OK);
    assert_int_equal(upstream.creates, 2);
    assert_string_equal(res.session_id, "sess-1");
}

/* A renewal replaces whatever is stored: it never adopts. */
static void test_renew_does_not_adopt(void **state)
{
    pegadm_session_call_t call = request_for("heidi");
    pegadm_session_result_t res;

    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_OK);
    assert_int_equal(pegadm_session_renew(pool, &call, &res), PEGADM_SESSION_OK);
    assert_string_equal(res.session_id, "sess-2");
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_OK);
    assert_string_equal(res.session_id, "sess-2");
}

static void test_concurrent_first_requests_make_one_create(void **state)
{
    session_job_t jobs[8];
    upstream.delay = apr_time_from_msec(150);
    for (int i = 0; i < 8; i++) {
        jobs[i].call = request_for("carol");
    }
    session_jobs_run(jobs, 8, pool);
    assert_int_equal(upstream.creates, 1);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(jobs[i].status, PEGADM_SESSION_OK);
        assert_string_equal(jobs[i].res.session_id, "sess-1");
        free((void *)jobs[i].res.session_id);
    }
}

static void test_concurrent_waiters_share_a_failure(void **state)
{
    session_job_t jobs[4];
    upstream.delay = apr_time_from_msec(150);
    upstream.fail = 1;
    for (int i = 0; i < 4; i++) {
        jobs[i].call = request_for("dave");
    }
    session_jobs_run(jobs, 4, pool);
    assert_int_equal(upstream.creates, 1);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(jobs[i].status, PEGADM_SESSION_UPSTREAM);
    }
}

/* Those who waited for a refused create are refused too, told the same
 * time to retry, and say whose refusal it was. */
static void test_concurrent_waiters_share_a_refusal(void **state)
{
    session_job_t jobs[4];
    upstream.delay = apr_time_from_msec(150);
    upstream.held_for = apr_time_from_sec(20);
    for (int i = 0; i < 4; i++) {
        jobs[i].call = request_for("dave");
    }
    session_jobs_run(jobs, 4, pool);
    assert_int_equal(upstream.creates, 1);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(jobs[i].status, PEGADM_SESSION_UPSTREAM);
        assert_true(jobs[i].res.refused);
        assert_true(jobs[i].res.retry_after > apr_time_from_sec(19));
        assert_true(jobs[i].res.retry_after <= apr_time_from_sec(20) + apr_time_from_msec(1));
        if (strcmp(jobs[i].res.why, "deemed down")) {
            assert_string_equal(jobs[i].res.why, "a concurrent request's create was refused: "
                                                 "the service is deemed down");
        }
    }
}

/* A waiter's patience is bounded: it answers "unavailable" rather than
 * holding a worker thread for as long as a slow create takes. */
static void test_waiter_gives_up_after_wait_max(void **state)
{
    session_job_t jobs[4];
    upstream.delay = apr_time_from_msec(400);
    for (int i = 0; i < 4; i++) {
        jobs[i].call = request_for("erin");
        jobs[i].call.wait_max = apr_time_from_msec(i == 0 ? 2000 : 100);
    }
    {
        apr_thread_t *first = session_job_start(&jobs[0], pool);
        apr_sleep(apr_time_from_msec(50)); /* let it mark the create as pending */
        session_jobs_run(jobs + 1, 3, pool);
        session_job_join(first);
    }
    assert_int_equal(upstream.creates, 1);
    assert_int_equal(jobs[0].status, PEGADM_SESSION_OK);
    for (int i = 1; i < 4; i++) {
        assert_int_equal(jobs[i].status, PEGADM_SESSION_UPSTREAM);
        assert_string_equal(jobs[i].res.why,
                            "timed out waiting for a concurrent request's create");
    }
    for (int i = 0; i < 4; i++) {
        free((void *)jobs[i].res.session_id);
    }
}

/* ---- the chat follows the portal login ---- */

typedef struct {
    int pushes;
    int fail;
    const char *last_sid;
} pusher_t;

static apr_status_t fake_push(void *baton, apr_pool_t *p, const char *sid, const char **why)
{
    pusher_t *u = baton;
    u->pushes++;
    u->last_sid = apr_pstrdup(p, sid);
    if (u->fail) {
        *why = "private data refused";
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

static pusher_t pusher;
static const unsigned char data_v1[PEGADM_DATA_DIGEST_LEN] = "first-data-16-b";
static const unsigned char data_v2[PEGADM_DATA_DIGEST_LEN] = "other-data-16-b";

static pegadm_session_call_t refreshing(const unsigned char *digest,
                                        apr_interval_time_t refresh)
{
    pegadm_session_call_t call = request_for("alice");
    call.data_digest = digest;
    call.refresh = refresh;
    call.push = fake_push;
    call.push_baton = &pusher;
    return call;
}

static void test_changed_data_is_pushed_to_the_same_session(void **state)
{
    pegadm_session_call_t call = refreshing(data_v1, 1);
    pegadm_session_result_t first, res;

    memset(&pusher, 0, sizeof(pusher));
    assert_int_equal(pegadm_session_get(pool, &call, &first), PEGADM_SESSION_OK);
    call = refreshing(data_v2, 1); /* a refresh window of 1 µs has passed */
    apr_sleep(10);
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_OK);
    assert_true(res.pushed);
    assert_int_equal(pusher.pushes, 1);
    assert_string_equal(pusher.last_sid, first.session_id);
    assert_string_equal(res.session_id, first.session_id);
    apr_sleep(10);
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_OK);
    assert_false(res.pushed); /* unchanged since */
    assert_int_equal(pusher.pushes, 1);
    assert_int_equal(upstream.creates, 1);
}

/* With re-pushing on, the process's copy answers while the private data is
 * what was last pushed; changed data goes to the entry, which pushes it,
 * and the copy then records the new digest. */
static void test_local_copies_know_the_private_data_pushed(void **state)
{
    static unsigned char shared[PEGADM_LOCALCACHE_SHARED_SIZE];
    pegadm_session_call_t call = refreshing(data_v1, 1);
    pegadm_session_result_t first, res;

    memset(&pusher, 0, sizeof(pusher));
    assert_int_equal(pegadm_localcache_init_shared(shared), APR_SUCCESS);
    assert_int_equal(pegadm_localcache_create(pool, 16, shared, 0, &call.local), APR_SUCCESS);
    assert_int_equal(pegadm_session_get(pool, &call, &first), PEGADM_SESSION_OK);
    store_data.fail_get = APR_EGENERAL; /* only a copy can answer now */
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_OK);
    assert_string_equal(res.session_id, first.session_id);
    call.data_digest = data_v2; /* a changed claim: the copy does not answer */
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_STORE);
    store_data.fail_get = APR_SUCCESS;
    apr_sleep(10);
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_OK);
    assert_true(res.pushed);
    assert_int_equal(pusher.pushes, 1);
    store_data.fail_get = APR_EGENERAL;
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_OK);
    assert_false(res.pushed);
    assert_string_equal(res.session_id, first.session_id);
    call.data_digest = data_v1; /* the data before: pushed no longer */
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_STORE);
    call.refresh = 0; /* re-pushing off: any copy answers */
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_OK);
    assert_int_equal(pusher.pushes, 1);
    assert_int_equal(upstream.creates, 1);
}

static void test_pushes_wait_for_the_refresh_window(void **state)
{
    pegadm_session_call_t call = refreshing(data_v1, apr_time_from_sec(60));
    pegadm_session_result_t res;

    memset(&pusher, 0, sizeof(pusher));
    pegadm_session_get(pool, &call, &res);
    call.data_digest = data_v2;
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_OK);
    assert_int_equal(pusher.pushes, 0);
    call.refresh = 0; /* off */
    apr_sleep(10);
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_OK);
    assert_int_equal(pusher.pushes, 0);
    call.refresh = 1;
    call.data_digest = NULL; /* nothing to compare */
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_OK);
    assert_int_equal(pusher.pushes, 0);
}

static void test_a_failed_push_still_hands_out_the_session(void **state)
{
    pegadm_session_call_t call = refreshing(data_v1, 1);
    pegadm_session_result_t first, res;

    memset(&pusher, 0, sizeof(pusher));
    pegadm_session_get(pool, &call, &first);
    call.data_digest = data_v2;
    pusher.fail = 1;
    for (int i = 0; i < 2; i++) {
        apr_sleep(10);
        assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_OK);
        assert_string_equal(res.session_id, first.session_id);
        assert_true(res.push_failed);
        assert_int_equal(res.push_failed_before, i); /* logged once per streak */
        assert_string_equal(res.why, "private data refused");
    }
    pusher.fail = 0;
    apr_sleep(10);
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_OK);
    assert_true(res.pushed);
    assert_int_equal(pusher.pushes, 3);
    assert_int_equal(upstream.creates, 1);
}

static void test_a_renewal_takes_the_eager_pages_session_once(void **state)
{
    pegadm_session_call_t call = request_for("alice");
    pegadm_session_result_t page, res;

    call.create_limit = 3; /* the first create counts; the hand-over does not */
    call.for_page = 1;
    assert_int_equal(pegadm_session_get(pool, &call, &page), PEGADM_SESSION_OK);
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_OK);
    call.for_page = 0;
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_OK);
    assert_int_equal(pegadm_session_renew(pool, &call, &res), PEGADM_SESSION_OK);
    assert_string_equal(res.session_id, page.session_id);
    assert_int_equal(res.created, 0);
    assert_int_equal(upstream.creates, 1);
    assert_int_equal(pegadm_session_renew(pool, &call, &res), PEGADM_SESSION_OK);
    assert_string_not_equal(res.session_id, page.session_id);
    assert_int_equal(upstream.creates, 2);
    /* a page that finds a session does not mark it */
    call.for_page = 1;
    assert_int_equal(pegadm_session_get(pool, &call, &page), PEGADM_SESSION_OK);
    assert_int_equal(pegadm_session_renew(pool, &call, &res), PEGADM_SESSION_OK);
    assert_string_not_equal(res.session_id, page.session_id);
    assert_int_equal(upstream.creates, 3);
}

static void test_a_forget_is_noted_and_nothing_else_is(void **state)
{
    pegadm_session_call_t call = request_for("alice"), other = request_for("bob");
    pegadm_session_result_t got, res;
    apr_time_t first;

    assert_int_equal(pegadm_session_last_forget(pool, &call, &res), PEGADM_SESSION_OK);
    assert_int_equal(res.forgotten_at, 0);
    pegadm_session_get(pool, &call, &got);
    pegadm_session_renew(pool, &call, &got);
    assert_int_equal(pegadm_session_last_forget(pool, &call, &res), PEGADM_SESSION_OK);
    assert_int_equal(res.forgotten_at, 0);
    assert_int_equal(upstream.creates, 2);
    pegadm_session_forget(pool, &call, &res);
    assert_int_equal(pegadm_session_last_forget(pool, &call, &res), PEGADM_SESSION_OK);
    first = res.forgotten_at;
    assert_true(first > 0);
    apr_sleep(10);
    pegadm_session_forget(pool, &call, &res); /* even with no session left */
    pegadm_session_last_forget(pool, &call, &res);
    assert_true(res.forgotten_at > first);
    assert_int_equal(pegadm_session_last_forget(pool, &other, &res), PEGADM_SESSION_OK);
    assert_int_equal(res.forgotten_at, 0);
    assert_int_equal(upstream.creates, 2);
    store_data.fail_get = APR_EGENERAL;
    assert_int_equal(pegadm_session_last_forget(pool, &call, &res), PEGADM_SESSION_STORE);
}

/* Two processes' read caches over one store: a hit reads nothing, and a
 * renewal through one is seen by the other's very next lookup. */
static void test_local_copies_follow_changes_made_elsewhere(void **state)
{
    static unsigned char shared[PEGADM_LOCALCACHE_SHARED_SIZE];
    pegadm_session_call_t a = request_for("heidi"), b = request_for("heidi");
    pegadm_session_result_t res;

    a.create_limit = b.create_limit = 3; /* every create counts */
    assert_int_equal(pegadm_localcache_init_shared(shared), APR_SUCCESS);
    assert_int_equal(pegadm_localcache_create(pool, 16, shared, 0, &a.local), APR_SUCCESS);
    assert_int_equal(pegadm_localcache_create(pool, 16, shared, 0, &b.local), APR_SUCCESS);
    assert_int_equal(pegadm_session_get(pool, &a, &res), PEGADM_SESSION_OK);
    assert_int_equal(pegadm_session_get(pool, &a, &res), PEGADM_SESSION_OK);
    assert_int_equal(pegadm_session_get(pool, &b, &res), PEGADM_SESSION_OK);
    store_data.fail_get = APR_EGENERAL;
    assert_int_equal(pegadm_session_get(pool, &a, &res), PEGADM_SESSION_OK);
    assert_int_equal(pegadm_session_get(pool, &b, &res), PEGADM_SESSION_OK);
    assert_string_equal(res.session_id, "sess-1");
    store_data.fail_get = APR_SUCCESS;
    assert_int_equal(pegadm_session_renew(pool, &a, &res), PEGADM_SESSION_OK);
    assert_string_equal(res.session_id, "sess-2");
    assert_int_equal(pegadm_session_get(pool, &b, &res), PEGADM_SESSION_OK);
    assert_string_equal(res.session_id, "sess-2");
    assert_int_equal(pegadm_session_forget(pool, &b, &res), PEGADM_SESSION_OK);
    assert_int_equal(pegadm_session_get(pool, &a, &res), PEGADM_SESSION_OK);
    assert_string_equal(res.session_id, "sess-3");
}

/* A session this process creates or renews is kept in its own copy at
 * once (the next lookup reads nothing), and still voided by a change made
 * through another process. */
static void test_a_session_made_here_is_kept_here(void **state)
{
    static unsigned char shared[PEGADM_LOCALCACHE_SHARED_SIZE];
    pegadm_session_call_t a = request_for("judy"), b = request_for("judy");
    pegadm_session_result_t res;

    assert_int_equal(pegadm_localcache_init_shared(shared), APR_SUCCESS);
    assert_int_equal(pegadm_localcache_create(pool, 16, shared, 0, &a.local), APR_SUCCESS);
    assert_int_equal(pegadm_localcache_create(pool, 16, shared, 0, &b.local), APR_SUCCESS);
    assert_int_equal(pegadm_session_get(pool, &a, &res), PEGADM_SESSION_OK);
    assert_true(res.created);
    store_data.fail_get = APR_EGENERAL; /* only a copy can answer now */
    assert_int_equal(pegadm_session_get(pool, &a, &res), PEGADM_SESSION_OK);
    assert_string_equal(res.session_id, "sess-1");
    assert_int_equal(pegadm_session_get(pool, &b, &res), PEGADM_SESSION_STORE);
    store_data.fail_get = APR_SUCCESS;
    assert_int_equal(pegadm_session_renew(pool, &a, &res), PEGADM_SESSION_OK);
    assert_string_equal(res.session_id, "sess-2");
    store_data.fail_get = APR_EGENERAL;
    assert_int_equal(pegadm_session_get(pool, &a, &res), PEGADM_SESSION_OK);
    assert_string_equal(res.session_id, "sess-2");
    store_data.fail_get = APR_SUCCESS;
    assert_int_equal(pegadm_session_forget(pool, &b, &res), PEGADM_SESSION_OK);
    store_data.fail_get = APR_EGENERAL;
    assert_int_equal(pegadm_session_get(pool, &a, &res), PEGADM_SESSION_STORE);
    assert_int_equal(upstream.creates, 2);
}

/* A store safe for concurrent reads is read without its lock; the others
 * never are. */
static void test_cached_read_without_the_lock(void **state)
{
    pegadm_session_call_t call = request_for("ivan");
    pegadm_session_result_t first, res;

    assert_int_equal(pegadm_session_get(pool, &call, &first), PEGADM_SESSION_OK);
    store_data.fail_lock = APR_EGENERAL;
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_STORE);
    call.read_unlocked = 1;
    assert_int_equal(pegadm_session_get(pool, &call, &res), PEGADM_SESSION_OK);
    assert_string_equal(res.session_id, first.session_id);
    assert_int_equal(upstream.creates, 1);
}

/* Reads without the lock pass the process's gate: one that finds the
 * gate full waits there, and one that fails gives its place back. */
static void test_unlocked_reads_pass_the_gate(void **state)
{
    session_job_t job;
    pegadm_session_result_t first, res;
    apr_thread_t *t;

    memset(&job, 0, sizeof(job));
    job.call = request_for("judy");
    assert_int_equal(pegadm_session_get(pool, &job.call, &first), PEGADM_SESSION_OK);
    job.call.read_unlocked = 1;
    assert_int_equal(pegadm_gate_create(pool, 1, 2, &job.call.read_gate), APR_SUCCESS);
    store_data.fail_get = APR_EGENERAL;
    store_data.fail_lock = APR_EGENERAL; /* and the locked path fails too */
    assert_int_equal(pegadm_session_get(pool, &job.call, &res), PEGADM_SESSION_STORE);
    store_data.fail_get = store_data.fail_lock = APR_SUCCESS;
    /* the place is free again: taken here, a lookup waits for it */
    assert_int_equal(pegadm_gate_enter(job.call.read_gate), APR_SUCCESS);
    t = session_job_start(&job, pool);
    for (int i = 0; i < 10000 && pegadm_gate_waiting(job.call.read_gate) == 0; i++) {
        apr_sleep(1000);
    }
    assert_int_equal(pegadm_gate_waiting(job.call.read_gate), 1);
    pegadm_gate_leave(job.call.read_gate);
    session_job_join(t);
    assert_int_equal(job.status, PEGADM_SESSION_OK);
    assert_string_equal(job.res.session_id, first.session_id);
    free((void *)job.res.session_id);
    assert_int_equal(upstream.creates, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_get_creates_once_and_reuses, setup),
        cmocka_unit_test_setup(test_a_session_made_here_is_kept_here, setup),
        cmocka_unit_test_setup(test_local_copies_know_the_private_data_pushed, setup),
        cmocka_unit_test_setup(test_customers_never_share, setup),
        cmocka_unit_test_setup(test_failure_caches_nothing, setup),
        cmocka_unit_test_setup(test_refusal_says_when_to_retry, setup),
        cmocka_unit_test_setup(test_refusal_with_no_time_left_is_still_a_refusal, setup),
        cmocka_unit_test_setup(test_tampered_entry_is_discarded, setup),
        cmocka_unit_test_setup(test_entry_moved_between_customers_is_discarded, setup),
        cmocka_unit_test_setup(test_store_failures, setup),
        cmocka_unit_test_setup(test_renew_replaces_and_is_limited, setup),
        cmocka_unit_test_setup(test_every_create_counts_against_the_limit, setup),
        cmocka_unit_test_setup(test_refused_creates_do_not_count, setup),
        cmocka_unit_test_setup(test_entries_put_back_are_not_honoured, setup),
        cmocka_unit_test_setup(test_failed_renew_keeps_session, setup),
        cmocka_unit_test_setup(test_forget, setup),
        cmocka_unit_test_setup(test_concurrent_first_requests_make_one_create, setup),
        cmocka_unit_test_setup(test_concurrent_waiters_share_a_failure, setup),
        cmocka_unit_test_setup(test_concurrent_waiters_share_a_refusal, setup),
        cmocka_unit_test_setup(test_waiter_gives_up_after_wait_max, setup),
        cmocka_unit_test_setup(test_first_request_adopts_a_session_stored_meanwhile, setup),
        cmocka_unit_test_setup(test_first_request_hands_out_what_the_store_holds, setup),
        cmocka_unit_test_setup(test_renew_does_not_adopt, setup),
        cmocka_unit_test_setup(test_changed_data_is_pushed_to_the_same_session, setup),
        cmocka_unit_test_setup(test_pushes_wait_for_the_refresh_window, setup),
        cmocka_unit_test_setup(test_a_failed_push_still_hands_out_the_session, setup),
        cmocka_unit_test_setup(test_a_renewal_takes_the_eager_pages_session_once, setup),
        cmocka_unit_test_setup(test_a_forget_is_noted_and_nothing_else_is, setup),
        cmocka_unit_test_setup(test_local_copies_follow_changes_made_elsewhere, setup),
        cmocka_unit_test_setup(test_cached_read_without_the_lock, setup),
        cmocka_unit_test_setup(test_unlocked_reads_pass_the_gate, setup),
        cmocka_unit_test_setup(test_a_session_filed_under_the_previous_keys_is_kept, setup),
        cmocka_unit_test_setup(test_forget_removes_the_session_under_both_keys, setup),
        cmocka_unit_test_setup(test_last_forget_is_read_under_both_keys, setup),
    };
    const char secret[] = "correct horse battery staple, 40 bytes!!";
    int failed;

    apr_initialize();
    apr_pool_create(&pool, NULL);
    apr_thread_mutex_create(&store_data.mutex, APR_THREAD_MUTEX_DEFAULT, pool);
    store = (pegadm_store_t){&store_data, fake_lock, fake_unlock, fake_get, fake_put, fake_del};
    pegadm_keys_derive(&keys, (const unsigned char *)secret, strlen(secret));
    pegadm_keys_derive(&other_keys, (const unsigned char *)"the other secret", 16);
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    apr_terminate();
    return failed;
}
