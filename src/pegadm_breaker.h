/* A circuit breaker for the service, shared by every process that reaches
 * the same store: after a run of consecutive failures no calls go out for a
 * cool-down period, then exactly one probe does; its success closes the
 * breaker, its failure re-opens it. The transitions are pure functions on a
 * record; enter/leave keep that record sealed in a pegadm_store_t. */
#ifndef PEGADM_BREAKER_H
#define PEGADM_BREAKER_H

#include <apr_pools.h>
#include <apr_time.h>

#include "pegadm_dm.h"
#include "pegadm_seal.h"
#include "pegadm_store.h"

typedef enum {
    PEGADM_BREAKER_CLOSED = 0, /* calls go out; failures are counted */
    PEGADM_BREAKER_OPEN,       /* no calls until `until` */
    PEGADM_BREAKER_PROBING,    /* one probe is out; taken as lost at `until` */
} pegadm_breaker_state_t;

typedef struct {
    pegadm_breaker_state_t state;
    apr_uint32_t failures; /* consecutive, while closed */
    apr_time_t until;
} pegadm_breaker_t;

typedef struct {
    int threshold;                 /* consecutive failures that open it; 0: never */
    apr_interval_time_t cooldown;  /* how long it stays open */
    apr_interval_time_t probe_max; /* after this a probe counts as lost */
} pegadm_breaker_conf_t;

typedef enum {
    PEGADM_BREAKER_PASS = 0, /* closed: make the call */
    PEGADM_BREAKER_PROBE,    /* make the call: it is the one probe */
    PEGADM_BREAKER_REJECT,   /* do not call */
} pegadm_breaker_verdict_t;

typedef enum {
    PEGADM_BREAKER_UNCHANGED = 0,
    PEGADM_BREAKER_OPENED,   /* the threshold was reached */
    PEGADM_BREAKER_REOPENED, /* the probe failed */
    PEGADM_BREAKER_RECLOSED, /* the probe succeeded */
} pegadm_breaker_change_t;

/* Whether a call may go out now; moves an open breaker whose cool-down is
 * over (or whose probe is lost) to probing, admitting this caller. */
pegadm_breaker_verdict_t pegadm_breaker_admit(pegadm_breaker_t *b,
                                              const pegadm_breaker_conf_t *c, apr_time_t now);

/* When calls may go out again for a caller rejected at now: the end of the
 * cool-down, or now while a probe is out (its outcome may come any moment). */
apr_time_t pegadm_breaker_reopens(const pegadm_breaker_t *b, const pegadm_breaker_conf_t *c,
                                  apr_time_t now);

/* Records the outcome of a call admitted with verdict. The result of a call
 * admitted while closed no longer matters once the breaker has opened. */
pegadm_breaker_change_t pegadm_breaker_record(pegadm_breaker_t *b,
                                              const pegadm_breaker_conf_t *c,
                                              pegadm_breaker_verdict_t verdict, int ok,
                                              apr_time_t now);

/* Whether a failed call says the service is down for everyone, and so
 * counts towards opening the breaker: no answer (connect, TLS, timeout), an
 * answer of the wrong shape, a 5xx, or a 429 (the service sheds load).
 * Any other 4xx answers one customer's request (his data, his ID): the
 * service is up, and that customer's failure is never everyone's. Failures
 * of our own making (PEGADM_DM_INTERNAL) say nothing about the service. */
int pegadm_breaker_says_down(pegadm_dm_status_t st, long http_status);

/* One breaker per (widget ID, service URL) in a store, sealed like the
 * session entries. A record that is missing or fails authentication reads
 * as closed with no failures. */
typedef struct {
    const pegadm_store_t *store;
    const pegadm_keys_t *keys;
    const char *widget_id;
    const char *service_url;
    pegadm_breaker_conf_t conf;
} pegadm_breaker_ref_t;

/* pegadm_breaker_admit on the stored record, under the store's lock; *after
 * (may be NULL) receives the record as left. An error means the store could
 * not be used (*verdict is then PASS). */
apr_status_t pegadm_breaker_enter(apr_pool_t *p, const pegadm_breaker_ref_t *ref,
                                  apr_time_t now, pegadm_breaker_verdict_t *verdict,
                                  pegadm_breaker_t *after);

/* pegadm_breaker_record on the stored record, under the store's lock; *after
 * (may be NULL) receives the record as left. */
apr_status_t pegadm_breaker_leave(apr_pool_t *p, const pegadm_breaker_ref_t *ref,
                                  pegadm_breaker_verdict_t verdict, int ok, apr_time_t now,
                                  pegadm_breaker_change_t *change, pegadm_breaker_t *after);

#endif
