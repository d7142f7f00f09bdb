/* A bound on the requests of one process that wait for the same create:
 * one customer's flood of first requests holds at most that many worker
 * threads, not all of them. The places are counted per key (the session's
 * cache key) in a small table; thread-safe. */
#ifndef PEGADM_WAITERS_H
#define PEGADM_WAITERS_H

#include <apr_pools.h>

typedef struct pegadm_waiters_t pegadm_waiters_t;

/* A table for up to slots different keys waited on at once (one per
 * worker thread is enough: a waiting request waits for one key). In p. */
apr_status_t pegadm_waiters_create(apr_pool_t *p, int slots, pegadm_waiters_t **out);

/* Takes a place among the at most max waiting for key (len <= 32 bytes):
 * 1 if taken (give it back with pegadm_waiters_leave), 0 if all are, -1
 * if the caller may wait uncounted (nothing to give back): a full table,
 * which one sized per worker thread never is. */
int pegadm_waiters_enter(pegadm_waiters_t *w, const unsigned char *key, apr_size_t len,
                         int max);

/* The default bound for one customer in a process of threads worker
 * threads: a quarter of them, at least 1, so that one customer's tabs (or
 * a flood of his requests) never hold more than that share of a child. */
int pegadm_waiters_default_max(int threads);

void pegadm_waiters_leave(pegadm_waiters_t *w, const unsigned char *key, apr_size_t len);

#endif
