/* The bound on requests waiting for one create (pegadm_waiters.h): a
 * small table of keys with their number of waiters, under one mutex; a
 * free slot is one whose count is 0. */
#include "pegadm_waiters.h"

#include <string.h>

#include <apr_thread_mutex.h>

#define KEY_MAX 32

typedef struct {
    unsigned char key[KEY_MAX];
    apr_size_t len;
    int count; /* 0: the slot is free */
} slot_t;

struct pegadm_waiters_t {
    apr_thread_mutex_t *mutex;
    slot_t *slots;
    int nslots;
};

apr_status_t pegadm_waiters_create(apr_pool_t *p, int slots, pegadm_waiters_t **out)
{
    pegadm_waiters_t *w = apr_pcalloc(p, sizeof(*w));
    apr_status_t rv = apr_thread_mutex_create(&w->mutex, APR_THREAD_MUTEX_DEFAULT, p);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    w->nslots = slots > 0 ? slots : 1;
    w->slots = apr_pcalloc(p, (apr_size_t)w->nslots * sizeof(*w->slots));
    *out = w;
    return APR_SUCCESS;
}

static slot_t *find(pegadm_waiters_t *w, const unsigned char *key, apr_size_t len)
{
    for (int i = 0; i < w->nslots; i++) {
        slot_t *s = &w->slots[i];
        if (s->count && s->len == len && !memcmp(s->key, key, len)) {
            return s;
        }
    }
    return NULL;
}

static slot_t *free_slot(pegadm_waiters_t *w)
{
    for (int i = 0; i < w->nslots; i++) {
        if (!w->slots[i].count) {
            return &w->slots[i];
        }
    }
    return NULL;
}

int pegadm_waiters_enter(pegadm_waiters_t *w, const unsigned char *key, apr_size_t len, int max)
{
    slot_t *s;
    int entered = 1;

    if (len > KEY_MAX || apr_thread_mutex_lock(w->mutex) != APR_SUCCESS) {
        return -1;
    }
    if ((s = find(w, key, len)) != NULL) {
        entered = s->count < max;
        s->count += entered;
    } else if (max <= 0) {
        entered = 0;
    } else if ((s = free_slot(w)) != NULL) {
        memcpy(s->key, key, len);
        s->len = len;
        s->count = 1;
    } else {
        entered = -1;
    }
    apr_thread_mutex_unlock(w->mutex);
    return entered;
}

void pegadm_waiters_leave(pegadm_waiters_t *w, const unsigned char *key, apr_size_t len)
{
    slot_t *s;

    if (len > KEY_MAX || apr_thread_mutex_lock(w->mutex) != APR_SUCCESS) {
        return;
    }
    if ((s = find(w, key, len)) != NULL) {
        s->count--;
    }
    apr_thread_mutex_unlock(w->mutex);
}

int pegadm_waiters_default_max(int threads)
{
    return threads >= 8 ? threads / 4 : 1 + (threads >= 4);
}
