/* A bound on how many threads of one process do something at once: the
 * reads a child process sends to a shared cache server without the node's
 * mutex. The others wait and are let through in the order they came.
 * Thread-safe. */
#ifndef PEGADM_GATE_H
#define PEGADM_GATE_H

#include <apr_pools.h>

typedef struct pegadm_gate_t pegadm_gate_t;

/* A gate that lets at most n (at least 1) through at once. Up to threads
 * waiters (one per thread of the process is enough) are each woken alone
 * when it is their turn; more share wake-ups. In p. */
apr_status_t pegadm_gate_create(apr_pool_t *p, unsigned int n, unsigned int threads,
                                pegadm_gate_t **out);

/* Waits for a place, first come first served. APR_SUCCESS: the caller
 * holds one and gives it back with pegadm_gate_leave; anything else: it
 * holds none (and must not leave). */
apr_status_t pegadm_gate_enter(pegadm_gate_t *g);

/* Takes a place only if one is free now and nobody waits for one:
 * APR_SUCCESS (give it back with pegadm_gate_leave), or APR_EBUSY at once,
 * for callers that answer "unavailable" rather than wait (the customer
 * database's lookups). */
apr_status_t pegadm_gate_try_enter(pegadm_gate_t *g);

void pegadm_gate_leave(pegadm_gate_t *g);

/* How many wait at this moment. */
unsigned int pegadm_gate_waiting(pegadm_gate_t *g);

#endif
