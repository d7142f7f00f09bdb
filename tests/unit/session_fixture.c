/* The shared parts of the session unit tests (session_fixture.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "session_fixture.h"

fake_slot_t *fake_slot_find(fake_slot_t *table, const unsigned char *id)
{
    for (int i = 0; i < FAKE_SLOTS; i++) {
        if (table[i].used && !memcmp(table[i].id, id, PEGADM_CACHE_ID_LEN) &&
            table[i].expiry > apr_time_now()) {
            return &table[i];
        }
    }
    return NULL;
}

fake_slot_t *fake_slot_free(fake_slot_t *table)
{
    for (int i = 0; i < FAKE_SLOTS; i++) {
        if (!table[i].used || table[i].expiry <= apr_time_now()) {
            return &table[i];
        }
    }
    fail_msg("the fake store is full");
    return NULL;
}

void fake_slot_key(fake_slot_t *slot, const pegadm_store_key_t *key)
{
    assert_int_equal(key->id_len, PEGADM_CACHE_ID_LEN);
    assert_int_equal(key->tag_len, PEGADM_CUSTOMER_TAG_LEN);
    memcpy(slot->id, key->id, PEGADM_CACHE_ID_LEN);
    memcpy(slot->tag, key->tag, PEGADM_CUSTOMER_TAG_LEN);
    slot->tag_len = key->tag_len;
}

pegadm_session_call_t session_request(pegadm_store_t *store, pegadm_keys_t *keys,
                                      const char *customer, pegadm_create_fn create,
                                      void *baton)
{
    pegadm_session_call_t call = {0};
    call.store = store;
    call.keys = keys;
    call.widget_id = "0b6c3d52-5b7a-4c53-9a55-2f6f3c2d8e11";
    call.customer_id = customer;
    call.ttl = apr_time_from_sec(60);
    call.wait_max = apr_time_from_sec(2);
    call.create_limit = 2;
    call.create_window = apr_time_from_sec(60);
    call.create = create;
    call.create_baton = baton;
    return call;
}

static void *APR_THREAD_FUNC run_get(apr_thread_t *t, void *data)
{
    session_job_t *job = data;
    apr_pool_t *p;
    apr_pool_create(&p, NULL);
    job->status = pegadm_session_get(p, &job->call, &job->res);
    job->res.session_id = job->res.session_id ? strdup(job->res.session_id) : NULL;
    apr_pool_destroy(p);
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

apr_thread_t *session_job_start(session_job_t *job, apr_pool_t *pool)
{
    apr_thread_t *thread;
    assert_int_equal(apr_thread_create(&thread, NULL, run_get, job, pool), APR_SUCCESS);
    return thread;
}

void session_job_join(apr_thread_t *thread)
{
    apr_status_t rv;
    apr_thread_join(&rv, thread);
}

void session_jobs_run(session_job_t *jobs, int n, apr_pool_t *pool)
{
    apr_thread_t *threads[SESSION_JOBS_MAX];
    assert_true(n <= SESSION_JOBS_MAX);
    for (int i = 0; i < n; i++) {
        threads[i] = session_job_start(&jobs[i], pool);
    }
    for (int i = 0; i < n; i++) {
        session_job_join(threads[i]);
    }
}
