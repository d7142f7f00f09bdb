/* Finding or creating a customer's chat session in a shared store, with
 * single-flight creation and a per-customer rate limit. The store is
 * abstract (pegadm_store.h: httpd's socache in the module, a table in the unit tests);
 * entries are sealed with pegadm_seal. */
#ifndef PEGADM_SESSION_H
#define PEGADM_SESSION_H

#include <apr_pools.h>
#include <apr_time.h>

#include "pegadm_gate.h"
#include "pegadm_localcache.h"
#include "pegadm_seal.h"
#include "pegadm_store.h"
#include "pegadm_waiters.h"

/* Bytes of an entry's plain header (version, type, time, expiry, count),
 * before the session ID; a session entry adds PEGADM_SESSION_ENTRY_EXTRA
 * (the private data's digest, when it was pushed), a sealed entry
 * PEGADM_SEAL_OVERHEAD. For sizing the store. */
#define PEGADM_SESSION_ENTRY_HEADER 22
#define PEGADM_SESSION_ENTRY_EXTRA  (PEGADM_DATA_DIGEST_LEN + 8)

/* Makes a brand-new session upstream (calls 1 and 2). Returns APR_SUCCESS
 * with *session_id in p, or an error with *why for the log. An error without
 * calling the service, because it is deemed down (an open circuit
 * breaker), also sets *held_until: when calls may go out again. */
typedef apr_status_t (*pegadm_create_fn)(void *baton, apr_pool_t *p, const char **session_id,
                                         const char **why, apr_time_t *held_until);

/* Pushes the request's private data to an existing session (call 2, JWT
 * iss = session_id). APR_SUCCESS, or an error with *why for the log. */
typedef apr_status_t (*pegadm_push_fn)(void *baton, apr_pool_t *p, const char *session_id,
                                       const char **why);

typedef struct {
    const pegadm_store_t *store;
    const pegadm_mark_t *mark;  /* NULL: the store is this node's alone */
    pegadm_localcache_t *local; /* NULL: every lookup reads the store */
    int read_unlocked;          /* 1: the store is safe for a plain read without its lock */
    pegadm_gate_t *read_gate;   /* NULL, or the bound on such reads at once (read_unlocked) */
    const pegadm_keys_t *keys;
    /* NULL, or the keys of the other secret of a rotation: a session found
     * filed under them is filed anew under keys (after the two secrets are
     * swapped in the configuration, no cached session is lost) */
    const pegadm_keys_t *keys_previous;
    const char *widget_id;
    const char *customer_id;      /* already validated */
    apr_interval_time_t ttl;      /* how long a session ID is reused */
    apr_interval_time_t wait_max; /* how long to wait for another's create */
    int create_limit;             /* fresh sessions per window (POST) */
    apr_interval_time_t create_window;
    pegadm_create_fn create;
    void *create_baton;
    pegadm_waiters_t *waiters; /* NULL: any number may wait for one create */
    int waiters_max;           /* of this process, for one customer's create */
    /* Private data follows the identity: a session handed out whose last
     * pushed private data differs from data_digest gets it again through
     * push, at most once per refresh. NULL data_digest or refresh 0: never
     * (e.g. the private data is the customer ID, which the key fixes). */
    const unsigned char *data_digest; /* PEGADM_DATA_DIGEST_LEN bytes, or NULL */
    apr_interval_time_t refresh;
    pegadm_push_fn push;
    void *push_baton;
    /* for an eager page: a session created now is kept for the widget's
     * first renewal, which takes it instead of creating another */
    int for_page;
} pegadm_session_call_t;

typedef enum {
    PEGADM_SESSION_OK = 0,
    PEGADM_SESSION_UPSTREAM,     /* the service failed (ours or a concurrent create) */
    PEGADM_SESSION_STORE,        /* the store could not be read or written */
    PEGADM_SESSION_RATE_LIMITED, /* *retry_after says when to try again */
} pegadm_session_status_t;

typedef struct {
    const char *session_id;          /* on OK */
    int created;                     /* 1 if this call made it upstream */
    apr_interval_time_t retry_after; /* on RATE_LIMITED, and on UPSTREAM if refused */
    int refused;                     /* on UPSTREAM: the service was deemed down, not called */
    const char *why;                 /* on failure, for the log */
    apr_status_t store_status;       /* on STORE: the store's own status */
    int discarded;                   /* entries that failed authentication */
    int local;                       /* on OK: answered by this process's own copy */
    int pushed;                      /* on OK: changed private data was re-pushed */
    int push_failed;                 /* on OK: a re-push failed (*why); the session stands */
    int push_failed_before;          /* with push_failed: the previous re-push failed too */
    apr_time_t forgotten_at;         /* of pegadm_session_last_forget */
    apr_time_t forgotten_previous;   /* the same under keys_previous (a rotation) */
} pegadm_session_result_t;

/* The cached session, or a new one if there is none. Concurrent callers for
 * the same customer wait for the first one's create instead of making their
 * own; they share its failure too. Past waiters_max waiting in this
 * process, the rest are refused at once (UPSTREAM, refused, retry_after). */
pegadm_session_status_t pegadm_session_get(apr_pool_t *p, const pegadm_session_call_t *call,
                                           pegadm_session_result_t *res);

/* A new session, replacing the cached one, within the create limit; but a
 * session created for an eager page (for_page) and not yet renewed is
 * taken as it is, once. */
pegadm_session_status_t pegadm_session_renew(apr_pool_t *p, const pegadm_session_call_t *call,
                                             pegadm_session_result_t *res);

/* When the customer's session was last forgotten (res->forgotten_at; 0:
 * not within the TTL), creating nothing: it marks the end of a login. With
 * keys_previous, res->forgotten_previous is what those keys' record says. */
pegadm_session_status_t pegadm_session_last_forget(apr_pool_t *p,
                                                   const pegadm_session_call_t *call,
                                                   pegadm_session_result_t *res);

/* Forgets the customer's session, noting when (pegadm_session_last_forget):
 * an entry made before then is not honoured again, even if a cache writer
 * puts it back. */
pegadm_session_status_t pegadm_session_forget(apr_pool_t *p, const pegadm_session_call_t *call,
                                              pegadm_session_result_t *res);

#endif
