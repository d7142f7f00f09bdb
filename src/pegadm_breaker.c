/* The circuit breaker (pegadm_breaker.h): the pure transitions of its
 * record, and enter/leave, which keep the record sealed in a store. When
 * and why it is consulted, and the logging of its changes, is the glue's
 * (mod_pegadm_session.c). */
#include "pegadm_breaker.h"

#include <string.h>

#include "pegadm_bytes.h"

/* The stored record, before sealing:
 *   state (1 byte) | failures (4, big-endian) | until (8, big-endian microseconds) */
#define RECORD_LEN    13
#define RECORD_SEALED (RECORD_LEN + PEGADM_SEAL_OVERHEAD)
/* Closed records with a failure count are kept this long after the last
 * write: long enough to count a slow run of failures, short enough not to
 * hold cache space for a service that has long recovered. */
#define RECORD_KEEP apr_time_from_sec(3600)

/* A deadline further away than its period allows comes from a clock that
 * went back: it is treated as passed rather than trusted. */
static int deadline_passed(apr_time_t until, apr_interval_time_t period, apr_time_t now)
{
    return now >= until || until - now > period;
}

pegadm_breaker_verdict_t pegadm_breaker_admit(pegadm_breaker_t *b,
                                              const pegadm_breaker_conf_t *c, apr_time_t now)
{
    switch (b->state) {
    case PEGADM_BREAKER_OPEN:
        if (!deadline_passed(b->until, c->cooldown, now)) {
            return PEGADM_BREAKER_REJECT;
        }
        break;
    case PEGADM_BREAKER_PROBING:
        if (!deadline_passed(b->until, c->probe_max, now)) {
            return PEGADM_BREAKER_REJECT;
        }
        break;
    default:
        return PEGADM_BREAKER_PASS;
    }
    b->state = PEGADM_BREAKER_PROBING;
    b->until = now + c->probe_max;
    return PEGADM_BREAKER_PROBE;
}

apr_time_t pegadm_breaker_reopens(const pegadm_breaker_t *b, const pegadm_breaker_conf_t *c,
                                  apr_time_t now)
{
    if (b->state != PEGADM_BREAKER_OPEN || deadline_passed(b->until, c->cooldown, now)) {
        return now;
    }
    return b->until;
}

static pegadm_breaker_change_t open_breaker(pegadm_breaker_t *b, const pegadm_breaker_conf_t *c,
                                            apr_time_t now, pegadm_breaker_change_t change)
{
    b->state = PEGADM_BREAKER_OPEN;
    b->until = now + c->cooldown;
    return change;
}

pegadm_breaker_change_t pegadm_breaker_record(pegadm_breaker_t *b,
                                              const pegadm_breaker_conf_t *c,
                                              pegadm_breaker_verdict_t verdict, int ok,
                                              apr_time_t now)
{
    if (c->threshold <= 0 || verdict == PEGADM_BREAKER_REJECT) {
        return PEGADM_BREAKER_UNCHANGED;
    }
    if (verdict == PEGADM_BREAKER_PROBE) {
        if (b->state != PEGADM_BREAKER_PROBING) {
            return PEGADM_BREAKER_UNCHANGED; /* another probe's outcome came first */
        }
        if (!ok) {
            return open_breaker(b, c, now, PEGADM_BREAKER_REOPENED);
        }
        memset(b, 0, sizeof(*b));
        return PEGADM_BREAKER_RECLOSED;
    }
    if (b->state != PEGADM_BREAKER_CLOSED) {
        return PEGADM_BREAKER_UNCHANGED; /* a straggler from before it opened */
    }
    if (ok) {
        b->failures = 0;
        return PEGADM_BREAKER_UNCHANGED;
    }
    if (b->failures < (apr_uint32_t)c->threshold) {
        b->failures++;
    }
    if (b->failures < (apr_uint32_t)c->threshold) {
        return PEGADM_BREAKER_UNCHANGED;
    }
    b->failures = 0;
    return open_breaker(b, c, now, PEGADM_BREAKER_OPENED);
}

int pegadm_breaker_says_down(pegadm_dm_status_t st, long http_status)
{
    switch (st) {
    case PEGADM_DM_UNREACHABLE:
    case PEGADM_DM_BAD_ANSWER:
        return 1;
    case PEGADM_DM_HTTP_STATUS:
        return http_status >= 500 || http_status == 429 || http_status < 400;
    default:
        return 0;
    }
}

/* ---- the record in the store ---- */

static apr_status_t record_id(const pegadm_breaker_ref_t *ref,
                              unsigned char id[PEGADM_CACHE_ID_LEN])
{
    return pegadm_cache_id(ref->keys, "breaker", ref->widget_id, ref->service_url, id);
}

static apr_status_t load(apr_pool_t *p, const pegadm_breaker_ref_t *ref,
                         const unsigned char *id, pegadm_breaker_t *b)
{
    unsigned char buf[RECORD_SEALED], *plain;
    unsigned int len = sizeof(buf);
    const pegadm_store_key_t key = {id, PEGADM_CACHE_ID_LEN, NULL, 0}; /* no customer's */
    apr_size_t plain_len;
    apr_status_t rv;

    memset(b, 0, sizeof(*b));
    rv = ref->store->get(ref->store->ctx, &key, buf, &len, p);
    if (rv == APR_NOTFOUND) {
        return APR_SUCCESS;
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (pegadm_unseal(p, ref->keys, id, PEGADM_CACHE_ID_LEN, buf, len, &plain, &plain_len) !=
            APR_SUCCESS ||
        plain_len != RECORD_LEN || plain[0] > PEGADM_BREAKER_PROBING) {
        return APR_SUCCESS; /* tampered or foreign: closed, the safe reading */
    }
    b->state = (pegadm_breaker_state_t)plain[0];
    b->failures = (apr_uint32_t)pegadm_get_be(plain + 1, 4);
    b->until = (apr_time_t)pegadm_get_be(plain + 5, 8);
    return APR_SUCCESS;
}

static apr_status_t save(apr_pool_t *p, const pegadm_breaker_ref_t *ref,
                         const unsigned char *id, const pegadm_breaker_t *b, apr_time_t now)
{
    unsigned char plain[RECORD_LEN], *sealed;
    apr_size_t sealed_len;
    apr_time_t expiry = (b->state == PEGADM_BREAKER_CLOSED ? now : b->until) + RECORD_KEEP;
    apr_status_t rv;

    plain[0] = (unsigned char)b->state;
    pegadm_put_be(plain + 1, b->failures, 4);
    pegadm_put_be(plain + 5, (apr_uint64_t)b->until, 8);
    rv = pegadm_seal(p, ref->keys, id, PEGADM_CACHE_ID_LEN, plain, sizeof(plain), &sealed,
                     &sealed_len);
    if (rv == APR_SUCCESS) {
        const pegadm_store_key_t key = {id, PEGADM_CACHE_ID_LEN, NULL, 0};
        rv =
            ref->store->put(ref->store->ctx, &key, expiry, sealed, (unsigned int)sealed_len, p);
    }
    return rv;
}

typedef struct {
    pegadm_breaker_verdict_t verdict; /* in for leave, out for enter */
    int ok;
    pegadm_breaker_change_t change;
    pegadm_breaker_t record;
} step_t;

/* Loads, applies enter's or leave's transition, and saves only a changed
 * record: the healthy path reads and never writes. */
static apr_status_t update(apr_pool_t *p, const pegadm_breaker_ref_t *ref, apr_time_t now,
                           int entering, step_t *step)
{
    unsigned char id[PEGADM_CACHE_ID_LEN];
    pegadm_breaker_t before;
    apr_status_t rv;

    if ((rv = record_id(ref, id)) != APR_SUCCESS) {
        return rv;
    }
    if ((rv = ref->store->lock(ref->store->ctx)) != APR_SUCCESS) {
        return rv;
    }
    rv = load(p, ref, id, &step->record);
    if (rv == APR_SUCCESS) {
        before = step->record;
        if (entering) {
            step->verdict = pegadm_breaker_admit(&step->record, &ref->conf, now);
        } else {
            step->change =
                pegadm_breaker_record(&step->record, &ref->conf, step->verdict, step->ok, now);
        }
        if (memcmp(&before, &step->record, sizeof(before)) != 0) {
            rv = save(p, ref, id, &step->record, now);
        }
    }
    ref->store->unlock(ref->store->ctx);
    return rv;
}

apr_status_t pegadm_breaker_enter(apr_pool_t *p, const pegadm_breaker_ref_t *ref,
                                  apr_time_t now, pegadm_breaker_verdict_t *verdict,
                                  pegadm_breaker_t *after)
{
    step_t step;
    apr_status_t rv;

    memset(&step, 0, sizeof(step));
    rv = ref->conf.threshold > 0 ? update(p, ref, now, 1, &step) : APR_SUCCESS;
    *verdict = rv == APR_SUCCESS ? step.verdict : PEGADM_BREAKER_PASS;
    if (after) {
        *after = step.record;
    }
    return rv;
}

apr_status_t pegadm_breaker_leave(apr_pool_t *p, const pegadm_breaker_ref_t *ref,
                                  pegadm_breaker_verdict_t verdict, int ok, apr_time_t now,
                                  pegadm_breaker_change_t *change, pegadm_breaker_t *after)
{
    step_t step;
    apr_status_t rv = APR_SUCCESS;

    memset(&step, 0, sizeof(step));
    step.verdict = verdict;
    step.ok = ok;
    if (ref->conf.threshold > 0 && verdict != PEGADM_BREAKER_REJECT) {
        rv = update(p, ref, now, 0, &step);
    }
    *change = rv == APR_SUCCESS ? step.change : PEGADM_BREAKER_UNCHANGED;
    if (after) {
        *after = step.record;
    }
    return rv;
}
