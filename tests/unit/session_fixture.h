/* What the unit tests of the session logic share: the slots of an
 * in-memory store, and session requests run on threads of their own.
 * Include after cmocka.h: a full store fails the test. */
#ifndef PEGADM_SESSION_FIXTURE_H
#define PEGADM_SESSION_FIXTURE_H

#include <apr_pools.h>
#include <apr_thread_proc.h>
#include <apr_time.h>

#include "pegadm_session.h"

#define FAKE_SLOTS 16

typedef struct {
    unsigned char id[PEGADM_CACHE_ID_LEN];
    unsigned char tag[PEGADM_CUSTOMER_TAG_LEN]; /* the store key's tag */
    unsigned int tag_len;
    unsigned char token[PEGADM_MARK_TOKEN_LEN]; /* a mark's */
    unsigned char val[512];
    unsigned int len;
    apr_time_t expiry;
    int used;
} fake_slot_t;

/* The unexpired slot of id among the FAKE_SLOTS of table; NULL if none. */
fake_slot_t *fake_slot_find(fake_slot_t *table, const unsigned char *id);
/* A slot of table that is unused or expired; fails the test if none is. */
fake_slot_t *fake_slot_free(fake_slot_t *table);
/* Files slot under key: its id and its tag (checked: a customer's tag). */
void fake_slot_key(fake_slot_t *slot, const pegadm_store_key_t *key);

/* A request of customer to the tests' widget through store and keys, with
 * the tests' TTL and limits, creating with create(baton). */
pegadm_session_call_t session_request(pegadm_store_t *store, pegadm_keys_t *keys,
                                      const char *customer, pegadm_create_fn create,
                                      void *baton);

typedef struct {
    pegadm_session_call_t call;
    pegadm_session_result_t res;
    pegadm_session_status_t status;
} session_job_t;

/* Runs pegadm_session_get for job on a thread of its own, created in pool,
 * with a pool of its own; res.session_id is then malloc'd: free it. */
apr_thread_t *session_job_start(session_job_t *job, apr_pool_t *pool);
void session_job_join(apr_thread_t *thread);
/* Runs the n jobs (at most SESSION_JOBS_MAX) at once and waits for all. */
#define SESSION_JOBS_MAX 8
void session_jobs_run(session_job_t *jobs, int n, apr_pool_t *pool);

#endif
