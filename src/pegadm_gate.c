/* The bound on threads of one process at once (pegadm_gate.h): a mutex,
 * a count of those inside, and a queue of waiters served oldest first, so
 * that a thread coming later never takes a place before one that waits. */
#include "pegadm_gate.h"

#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>

#define MAX_WAKEUPS 1024

/* A waiter, on its own stack while it waits: a place given back while
 * anyone waits goes to the oldest one directly (passed), so that no thread
 * that comes later takes it first. */
typedef struct waiter_t {
    struct waiter_t *next;
    apr_thread_cond_t *wakeup;
    int passed;
} waiter_t;

typedef struct {
    apr_thread_cond_t *cond;
} wakeup_t;

struct pegadm_gate_t {
    apr_thread_mutex_t *mutex;
    /* the k-th to wait sleeps on wakeups[k % nwakeups]: each its own while
     * no more than nwakeups wait, so that a place given back wakes one */
    wakeup_t *wakeups;
    unsigned int nwakeups, arrivals;
    waiter_t *head, *tail; /* the queue, oldest first */
    unsigned int inside;
    unsigned int waiting;
    unsigned int n;
};

apr_status_t pegadm_gate_create(apr_pool_t *p, unsigned int n, unsigned int threads,
                                pegadm_gate_t **out)
{
    pegadm_gate_t *g;
    apr_status_t rv;

    if (n < 1) {
        return APR_EINVAL;
    }
    g = apr_pcalloc(p, sizeof(*g));
    g->n = n;
    g->nwakeups = threads < 1 ? 1 : threads > MAX_WAKEUPS ? MAX_WAKEUPS : threads;
    g->wakeups = apr_pcalloc(p, g->nwakeups * sizeof(wakeup_t));
    rv = apr_thread_mutex_create(&g->mutex, APR_THREAD_MUTEX_DEFAULT, p);
    for (unsigned int i = 0; rv == APR_SUCCESS && i < g->nwakeups; i++) {
        rv = apr_thread_cond_create(&g->wakeups[i].cond, p);
    }
    if (rv == APR_SUCCESS) {
        *out = g;
    }
    return rv;
}

/* Gives a place back, to the oldest waiter if there is one. Locked. */
static void pass_on(pegadm_gate_t *g)
{
    waiter_t *w = g->head;

    if (!w) {
        g->inside--;
        return;
    }
    g->head = w->next;
    if (!g->head) {
        g->tail = NULL;
    }
    w->passed = 1;
    /* others may share its condition: each looks at its own flag */
    apr_thread_cond_broadcast(w->wakeup);
}

static void unqueue(pegadm_gate_t *g, waiter_t *w)
{
    waiter_t **at = &g->head, *prev = NULL;

    while (*at && *at != w) {
        prev = *at;
        at = &(*at)->next;
    }
    if (*at) {
        *at = w->next;
        if (g->tail == w) {
            g->tail = prev;
        }
    }
}

apr_status_t pegadm_gate_enter(pegadm_gate_t *g)
{
    waiter_t me = {NULL, NULL, 0};
    apr_status_t rv = apr_thread_mutex_lock(g->mutex);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (g->inside < g->n && !g->head) {
        g->inside++;
        apr_thread_mutex_unlock(g->mutex);
        return APR_SUCCESS;
    }
    if (g->tail) {
        g->tail->next = &me;
    } else {
        g->head = &me;
    }
    g->tail = &me;
    g->waiting++;
    me.wakeup = g->wakeups[g->arrivals++ % g->nwakeups].cond;
    while (!me.passed) {
        rv = apr_thread_cond_wait(me.wakeup, g->mutex);
        if (rv != APR_SUCCESS) {
            /* it cannot wait: it leaves the queue, or the place it was given */
            if (me.passed) {
                pass_on(g);
            } else {
                unqueue(g, &me);
            }
            break;
        }
    }
    g->waiting--;
    apr_thread_mutex_unlock(g->mutex);
    return rv;
}

apr_status_t pegadm_gate_try_enter(pegadm_gate_t *g)
{
    apr_status_t rv = apr_thread_mutex_lock(g->mutex);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = g->inside < g->n && !g->head ? APR_SUCCESS : APR_EBUSY;
    if (rv == APR_SUCCESS) {
        g->inside++;
    }
    apr_thread_mutex_unlock(g->mutex);
    return rv;
}

/* A mutex that cannot be locked is broken beyond what the gate can mend. */
void pegadm_gate_leave(pegadm_gate_t *g)
{
    if (apr_thread_mutex_lock(g->mutex) != APR_SUCCESS) {
        return;
    }
    pass_on(g);
    apr_thread_mutex_unlock(g->mutex);
}

unsigned int pegadm_gate_waiting(pegadm_gate_t *g)
{
    unsigned int n = 0;

    if (apr_thread_mutex_lock(g->mutex) == APR_SUCCESS) {
        n = g->waiting;
        apr_thread_mutex_unlock(g->mutex);
    }
    return n;
}
