/* The session flow over an abstract store (pegadm_session.h): entries,
 * single-flight creation, the per-customer create limit. It calls the
 * create it is given and knows nothing of httpd or of the service. */
#include "pegadm_session.h"

#include <string.h>

#include <apr_strings.h>

#include "pegadm_bytes.h"
#include "pegadm_dm.h"

/* What the store holds for a customer, before sealing:
 *   version (1 byte) | type (1) | time (8 bytes, big-endian microseconds) |
 *   expiry (8) | count (4) | session ID
 * The expiry is the entry's own: past it the entry is not honoured,
 * whatever expiry the cache server applies (a cache writer can keep an
 * entry or put an old one back; it cannot make one that authenticates).
 * A pending entry marks a create in progress until its time; a failed entry
 * tells those who waited for that create that it failed at its time; a
 * refused one that it was refused then, the service being deemed down for
 * count more milliseconds. A forgotten entry, under a key of its own, says
 * that the customer's sessions made before its time are not to be used. */
enum entry_type {
    ENTRY_NONE = 0,
    ENTRY_SESSION = 'S',
    ENTRY_PENDING = 'P',
    ENTRY_FAILED = 'F',
    ENTRY_REFUSED = 'N',
    ENTRY_RATE = 'R',
    ENTRY_FORGOTTEN = 'X',
};

#define ENTRY_VERSION 2

typedef struct {
    enum entry_type type;
    apr_time_t time;
    apr_time_t expiry;
    apr_uint32_t count;
    const char *session_id;
} entry_t;

#define ENTRY_HEADER  PEGADM_SESSION_ENTRY_HEADER
#define ENTRY_MAX     (ENTRY_HEADER + PEGADM_SESSION_ID_MAX + PEGADM_SEAL_OVERHEAD)
#define POLL_INTERVAL apr_time_from_msec(20)
/* A refused entry's count holds milliseconds; this fits, with room. */
#define HELD_MAX apr_time_from_sec(86400)

typedef struct {
    unsigned char bytes[PEGADM_CACHE_ID_LEN];
} cache_id_t;

/* Decodes a sealed entry read from the store; one that fails
 * authentication or decoding reads as no entry. */
static void open_entry(apr_pool_t *p, const pegadm_session_req_t *req, const cache_id_t *id,
                       const unsigned char *buf, unsigned int len, entry_t *e,
                       pegadm_session_result_t *res)
{
    unsigned char *plain;
    apr_size_t plain_len;

    if (pegadm_unseal(p, req->keys, id->bytes, sizeof(id->bytes), buf, len, &plain,
                      &plain_len) != APR_SUCCESS ||
        plain_len < ENTRY_HEADER) {
        res->discarded++; /* tampered, unreadable, or sealed under an older secret */
        return;
    }
    if (plain[0] != ENTRY_VERSION) {
        return; /* written by an older release: as good as none */
    }
    e->type = (enum entry_type)plain[1];
    e->time = (apr_time_t)pegadm_get_be(plain + 2, 8);
    e->expiry = (apr_time_t)pegadm_get_be(plain + 10, 8);
    e->count = (apr_uint32_t)pegadm_get_be(plain + 18, 4);
    e->session_id = (const char *)plain + ENTRY_HEADER; /* unseal NUL-terminates */
    if (e->type == ENTRY_SESSION &&
        !pegadm_session_id_is_valid(e->session_id, plain_len - ENTRY_HEADER)) {
        e->type = ENTRY_NONE;
        res->discarded++;
    } else if (e->expiry <= apr_time_now()) {
        e->type = ENTRY_NONE; /* past its own time, kept or put back by the cache */
    }
}

static apr_status_t load(apr_pool_t *p, const pegadm_session_req_t *req, const cache_id_t *id,
                         entry_t *e, pegadm_session_result_t *res)
{
    unsigned char buf[ENTRY_MAX];
    unsigned int len = sizeof(buf);
    apr_status_t rv;

    memset(e, 0, sizeof(*e));
    rv = req->store->get(req->store->ctx, id->bytes, sizeof(id->bytes), buf, &len, p);
    if (rv == APR_NOTFOUND) {
        return APR_SUCCESS;
    }
    if (rv == APR_SUCCESS) {
        open_entry(p, req, id, buf, len, e, res);
    }
    return rv;
}

/* The key of the customer's forgotten entry. */
static apr_status_t forgotten_id(const pegadm_session_req_t *req, cache_id_t *id)
{
    return pegadm_cache_id(req->keys, "forgotten", req->widget_id, req->customer_id, id->bytes);
}

/* A session entry made no later than the customer's last forget is one a
 * cache writer put back after it: it reads as no entry. */
static void drop_if_forgotten(entry_t *e, const entry_t *forgotten)
{
    if (e->type == ENTRY_SESSION && forgotten->type == ENTRY_FORGOTTEN &&
        e->time <= forgotten->time) {
        e->type = ENTRY_NONE;
    }
}

/* Loads the customer's session entry, and for a session the forgotten
 * entry that may overrule it. */
static apr_status_t load_session(apr_pool_t *p, const pegadm_session_req_t *req,
                                 const cache_id_t *id, entry_t *e, pegadm_session_result_t *res)
{
    cache_id_t fid;
    entry_t forgotten;
    apr_status_t rv = load(p, req, id, e, res);

    if (rv != APR_SUCCESS || e->type != ENTRY_SESSION) {
        return rv;
    }
    if (forgotten_id(req, &fid) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    rv = load(p, req, &fid, &forgotten, res);
    if (rv == APR_SUCCESS) {
        drop_if_forgotten(e, &forgotten);
    }
    return rv;
}

/* The common case, a cached session: the lock is held for the raw read
 * only and the entry is opened outside it, so that the requests of a busy
 * server queue on the lock as briefly as possible. Anything else (and any
 * doubt) is left to the locked path, which reads again. */
static int cached_session(apr_pool_t *p, const pegadm_session_req_t *req, const cache_id_t *id,
                          pegadm_session_result_t *res, apr_time_t *made)
{
    unsigned char buf[ENTRY_MAX], fbuf[ENTRY_MAX];
    unsigned int len = sizeof(buf), flen = sizeof(fbuf);
    pegadm_session_result_t scratch = {0}; /* the locked path counts discards */
    entry_t e = {0}, forgotten = {0};
    cache_id_t fid;
    apr_status_t rv, frv;

    if (forgotten_id(req, &fid) != APR_SUCCESS ||
        req->store->lock(req->store->ctx) != APR_SUCCESS) {
        return 0;
    }
    rv = req->store->get(req->store->ctx, id->bytes, sizeof(id->bytes), buf, &len, p);
    frv = rv == APR_SUCCESS
              ? req->store->get(req->store->ctx, fid.bytes, sizeof(fid.bytes), fbuf, &flen, p)
              : rv;
    req->store->unlock(req->store->ctx);
    if (rv != APR_SUCCESS || (frv != APR_SUCCESS && frv != APR_NOTFOUND)) {
        return 0;
    }
    open_entry(p, req, id, buf, len, &e, &scratch);
    if (frv == APR_SUCCESS) {
        open_entry(p, req, &fid, fbuf, flen, &forgotten, &scratch);
        drop_if_forgotten(&e, &forgotten);
    }
    if (e.type != ENTRY_SESSION) {
        return 0;
    }
    res->session_id = e.session_id;
    if (made) {
        *made = e.time;
    }
    return 1;
}

static apr_status_t save(apr_pool_t *p, const pegadm_session_req_t *req, const cache_id_t *id,
                         const entry_t *e, apr_time_t expiry)
{
    apr_size_t sid_len = e->session_id ? strlen(e->session_id) : 0;
    unsigned char plain[ENTRY_HEADER + PEGADM_SESSION_ID_MAX];
    unsigned char *sealed;
    apr_size_t sealed_len;
    apr_status_t rv;

    if (sid_len > PEGADM_SESSION_ID_MAX) {
        return APR_EINVAL;
    }
    plain[0] = ENTRY_VERSION;
    plain[1] = (unsigned char)e->type;
    pegadm_put_be(plain + 2, (apr_uint64_t)e->time, 8);
    pegadm_put_be(plain + 10, (apr_uint64_t)expiry, 8);
    pegadm_put_be(plain + 18, e->count, 4);
    if (sid_len) {
        memcpy(plain + ENTRY_HEADER, e->session_id, sid_len);
    }
    rv = pegadm_seal(p, req->keys, id->bytes, sizeof(id->bytes), plain, ENTRY_HEADER + sid_len,
                     &sealed, &sealed_len);
    if (rv == APR_SUCCESS) {
        rv = req->store->put(req->store->ctx, id->bytes, sizeof(id->bytes), expiry, sealed,
                             (unsigned int)sealed_len, p);
    }
    return rv;
}

static pegadm_session_status_t store_failed(apr_pool_t *p, pegadm_session_result_t *res,
                                            apr_status_t rv, const char *doing)
{
    char err[120];
    res->why = apr_psprintf(p, "session cache: %s failed: %s", doing,
                            apr_strerror(rv, err, sizeof(err)));
    return PEGADM_SESSION_STORE;
}

static apr_status_t cache_id(const pegadm_session_req_t *req, const char *purpose,
                             cache_id_t *id)
{
    return pegadm_cache_id(req->keys, purpose, req->widget_id, req->customer_id, id->bytes);
}

/* Under the lock: stores the new session *e. With converge (a first
 * request, not a renewal), a session that appeared while ours was being
 * created is handed out instead of ours, and what the store holds after
 * our write is what we hand out. The lock is per server, so on a shared
 * store another node may have created one meanwhile: this way nodes
 * racing on one customer's first request converge on one session. */
static apr_status_t store_new_session(apr_pool_t *p, const pegadm_session_req_t *req,
                                      const cache_id_t *id, const entry_t *e, int converge,
                                      pegadm_session_result_t *res)
{
    entry_t found;
    apr_status_t rv;

    res->session_id = e->session_id;
    if (converge) {
        rv = load_session(p, req, id, &found, res);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        if (found.type == ENTRY_SESSION) {
            res->session_id = found.session_id;
            return APR_SUCCESS;
        }
    }
    rv = save(p, req, id, e, e->time + req->ttl);
    if (rv == APR_SUCCESS && converge && load_session(p, req, id, &found, res) == APR_SUCCESS &&
        found.type == ENTRY_SESSION) {
        res->session_id = found.session_id;
    }
    return rv;
}

/* During a rotation the session may be filed under the other secret's
 * keys: it is handed out and filed anew under the current keys, keeping its
 * age (a session stored there meanwhile wins, as in store_new_session). A
 * failure to file it again is no failure: the next request tries again. */
static int filed_under_previous(apr_pool_t *p, const pegadm_session_req_t *req,
                                const cache_id_t *id, pegadm_session_result_t *res)
{
    pegadm_session_req_t previous = *req;
    entry_t e = {ENTRY_SESSION, 0, 0, 0, NULL};
    cache_id_t old;

    if (!req->keys_previous) {
        return 0;
    }
    previous.keys = req->keys_previous;
    if (cache_id(&previous, "session", &old) != APR_SUCCESS ||
        !cached_session(p, &previous, &old, res, &e.time)) {
        return 0;
    }
    e.session_id = res->session_id;
    if (req->store->lock(req->store->ctx) == APR_SUCCESS) {
        store_new_session(p, req, id, &e, 1, res);
        req->store->unlock(req->store->ctx);
    }
    return 1;
}

static void note_refusal(pegadm_session_result_t *res, apr_time_t held_until, apr_time_t now)
{
    res->refused = 1;
    res->retry_after = held_until > now ? held_until - now : 0;
}

/* Under the lock: counts one more create in the customer's window. Every
 * create counts, whatever caused it (a first or forgotten session, an
 * eager page, a POST): otherwise logging out and in again would mint
 * sessions without limit. */
static pegadm_session_status_t count_create_locked(apr_pool_t *p,
                                                   const pegadm_session_req_t *req,
                                                   pegadm_session_result_t *res)
{
    cache_id_t id;
    entry_t e;
    apr_time_t now;
    apr_status_t rv;

    if (cache_id(req, "rate", &id) != APR_SUCCESS) {
        return store_failed(p, res, APR_EGENERAL, "deriving the key");
    }
    rv = load(p, req, &id, &e, res);
    now = apr_time_now();
    if (rv == APR_SUCCESS) {
        if (e.type != ENTRY_RATE || e.time + req->create_window <= now || e.time > now) {
            e.type = ENTRY_RATE;
            e.time = now;
            e.count = 0;
        }
        if (e.count >= (apr_uint32_t)req->create_limit) {
            res->retry_after = e.time + req->create_window - now;
            res->why = "create limit reached";
            return PEGADM_SESSION_RATE_LIMITED;
        }
        e.count++;
        e.session_id = NULL;
        rv = save(p, req, &id, &e, e.time + req->create_window);
    }
    return rv == APR_SUCCESS ? PEGADM_SESSION_OK : store_failed(p, res, rv, "counting creates");
}

static pegadm_session_status_t count_create(apr_pool_t *p, const pegadm_session_req_t *req,
                                            pegadm_session_result_t *res)
{
    pegadm_session_status_t status;
    apr_status_t rv;

    if ((rv = req->store->lock(req->store->ctx)) != APR_SUCCESS) {
        return store_failed(p, res, rv, "locking");
    }
    status = count_create_locked(p, req, res);
    req->store->unlock(req->store->ctx);
    return status;
}

/* Gives back the count of a create that called nobody (the service was
 * deemed down): a customer reloading through an outage is not locked out
 * for the window once it is over. */
static void uncount_create(apr_pool_t *p, const pegadm_session_req_t *req,
                           pegadm_session_result_t *res)
{
    cache_id_t id;
    entry_t e;

    if (cache_id(req, "rate", &id) != APR_SUCCESS ||
        req->store->lock(req->store->ctx) != APR_SUCCESS) {
        return;
    }
    if (load(p, req, &id, &e, res) == APR_SUCCESS && e.type == ENTRY_RATE && e.count > 0) {
        e.count--;
        save(p, req, &id, &e, e.time + req->create_window);
    }
    req->store->unlock(req->store->ctx);
}

/* Runs the upstream create and records its outcome. For a first request
 * (first = 1) a failed or refused entry tells those waiting on our pending
 * entry, and the stored session wins over ours (store_new_session). */
static pegadm_session_status_t create_and_store(apr_pool_t *p, const pegadm_session_req_t *req,
                                                const cache_id_t *id, int first,
                                                pegadm_session_result_t *res)
{
    const char *sid = NULL, *why = NULL;
    apr_time_t held_until = 0;
    apr_status_t created = req->create(req->create_baton, p, &sid, &why, &held_until);
    apr_time_t now = apr_time_now();
    entry_t e = {0};
    apr_status_t rv;

    if (created != APR_SUCCESS) {
        res->why = why ? why : "the service failed";
        if (held_until) {
            note_refusal(res, held_until, now);
            uncount_create(p, req, res);
        }
        if (first) {
            e.type = res->refused ? ENTRY_REFUSED : ENTRY_FAILED;
            e.time = now;
            if (res->refused) { /* rounded up: waiters must not come back early */
                e.count = (apr_uint32_t)apr_time_as_msec(
                    (res->retry_after < HELD_MAX ? res->retry_after : HELD_MAX) + 999);
            }
            if (req->store->lock(req->store->ctx) == APR_SUCCESS) {
                save(p, req, id, &e, now + req->wait_max);
                req->store->unlock(req->store->ctx);
            }
        }
        return PEGADM_SESSION_UPSTREAM;
    }
    e.type = ENTRY_SESSION;
    e.time = now;
    e.session_id = sid;
    rv = req->store->lock(req->store->ctx);
    if (rv == APR_SUCCESS) {
        rv = store_new_session(p, req, id, &e, first, res);
        req->store->unlock(req->store->ctx);
    }
    if (rv != APR_SUCCESS) {
        /* A session that cannot be stored is not handed out: the next
         * request would make another one. */
        res->session_id = NULL;
        return store_failed(p, res, rv, "storing a new session");
    }
    res->created = 1;
    return PEGADM_SESSION_OK;
}

/* Under the lock: what to do about the entry found. */
typedef enum { STEP_DONE, STEP_WAIT, STEP_CREATE } step_t;

static step_t decide(const entry_t *e, apr_time_t now, apr_time_t started,
                     pegadm_session_status_t *status, pegadm_session_result_t *res)
{
    switch (e->type) {
    case ENTRY_SESSION:
        res->session_id = e->session_id;
        *status = PEGADM_SESSION_OK;
        return STEP_DONE;
    case ENTRY_PENDING:
        if (e->time > now) {
            return STEP_WAIT;
        }
        return STEP_CREATE; /* its creator died or overran: take over */
    case ENTRY_FAILED:
    case ENTRY_REFUSED:
        if (e->time < started) {
            return STEP_CREATE;
        }
        *status = PEGADM_SESSION_UPSTREAM;
        if (e->type == ENTRY_FAILED) {
            res->why = "a concurrent request's create failed";
        } else {
            res->why = "a concurrent request's create was refused: the service is deemed down";
            note_refusal(res, e->time + apr_time_from_msec(e->count), now);
        }
        return STEP_DONE;
    default:
        return STEP_CREATE;
    }
}

/* How soon a request refused for too many waiters may come back: a create
 * usually takes well under this, the pending entry's deadline is far later. */
#define WAITER_RETRY apr_time_from_sec(2)

/* Past the bound on this process's waiters for one create: refused at
 * once, told to come back about when that create should be done. */
static pegadm_session_status_t too_many_waiting(const entry_t *pending, apr_time_t now,
                                                pegadm_session_result_t *res)
{
    res->why = "too many requests of this customer wait for one create "
               "(PegaDMCreateWaiters)";
    note_refusal(res, pending->time - now < WAITER_RETRY ? pending->time : now + WAITER_RETRY,
                 now);
    return PEGADM_SESSION_UPSTREAM;
}

/* The locked loop of pegadm_session_get; *waiting says whether a place
 * among the waiters was taken (1), and must be given back. */
static pegadm_session_status_t wait_or_create(apr_pool_t *p, const pegadm_session_req_t *req,
                                              const cache_id_t *id, apr_time_t started,
                                              int *waiting, pegadm_session_result_t *res)
{
    pegadm_session_status_t status = PEGADM_SESSION_OK;
    apr_status_t rv;

    for (;;) {
        entry_t e;
        apr_time_t now;
        step_t step;

        if ((rv = req->store->lock(req->store->ctx)) != APR_SUCCESS) {
            return store_failed(p, res, rv, "locking");
        }
        rv = load_session(p, req, id, &e, res);
        now = apr_time_now();
        step = rv == APR_SUCCESS ? decide(&e, now, started, &status, res) : STEP_DONE;
        if (step == STEP_CREATE &&
            (status = count_create_locked(p, req, res)) != PEGADM_SESSION_OK) {
            req->store->unlock(req->store->ctx);
            return status;
        }
        if (step == STEP_CREATE) {
            entry_t pending = {ENTRY_PENDING, now + req->wait_max, 0, 0, NULL};
            rv = save(p, req, id, &pending, pending.time);
        }
        req->store->unlock(req->store->ctx);

        if (rv != APR_SUCCESS) {
            return store_failed(p, res, rv, "reading or marking an entry");
        }
        if (step == STEP_DONE) {
            return status;
        }
        if (step == STEP_CREATE) {
            return create_and_store(p, req, id, 1, res);
        }
        if (!*waiting && req->waiters &&
            !(*waiting = pegadm_waiters_enter(req->waiters, id->bytes, sizeof(id->bytes),
                                              req->waiters_max))) {
            return too_many_waiting(&e, now, res);
        }
        if (now - started >= req->wait_max) {
            res->why = "timed out waiting for a concurrent request's create";
            return PEGADM_SESSION_UPSTREAM;
        }
        apr_sleep(POLL_INTERVAL);
    }
}

pegadm_session_status_t pegadm_session_get(apr_pool_t *p, const pegadm_session_req_t *req,
                                           pegadm_session_result_t *res)
{
    apr_time_t started = apr_time_now();
    pegadm_session_status_t status;
    int waiting = 0;
    cache_id_t id;

    memset(res, 0, sizeof(*res));
    if (cache_id(req, "session", &id) != APR_SUCCESS) {
        return store_failed(p, res, APR_EGENERAL, "deriving the key");
    }
    if (cached_session(p, req, &id, res, NULL) || filed_under_previous(p, req, &id, res)) {
        return PEGADM_SESSION_OK;
    }
    status = wait_or_create(p, req, &id, started, &waiting, res);
    if (waiting == 1) {
        pegadm_waiters_leave(req->waiters, id.bytes, sizeof(id.bytes));
    }
    return status;
}

pegadm_session_status_t pegadm_session_renew(apr_pool_t *p, const pegadm_session_req_t *req,
                                             pegadm_session_result_t *res)
{
    pegadm_session_status_t status;
    cache_id_t id;

    memset(res, 0, sizeof(*res));
    status = count_create(p, req, res);
    if (status != PEGADM_SESSION_OK) {
        return status;
    }
    if (cache_id(req, "session", &id) != APR_SUCCESS) {
        return store_failed(p, res, APR_EGENERAL, "deriving the key");
    }
    /* A failed renewal keeps the cached session: it still works. */
    return create_and_store(p, req, &id, 0, res);
}

/* Under the lock: removes the session filed under keys. */
static apr_status_t remove_session(apr_pool_t *p, const pegadm_session_req_t *req,
                                   const pegadm_keys_t *keys)
{
    pegadm_session_req_t with_keys = *req;
    cache_id_t id;
    apr_status_t rv;

    with_keys.keys = keys;
    if (cache_id(&with_keys, "session", &id) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    rv = req->store->del(req->store->ctx, id.bytes, sizeof(id.bytes), p);
    return rv == APR_NOTFOUND ? APR_SUCCESS : rv;
}

/* Under the lock: the forgotten entry filed under keys, which outlives
 * every session made before now (each expires within the TTL after it was
 * made), so that none of them can be put back and used. */
static apr_status_t mark_forgotten(apr_pool_t *p, const pegadm_session_req_t *req,
                                   const pegadm_keys_t *keys, apr_time_t now)
{
    pegadm_session_req_t with_keys = *req;
    entry_t forgotten = {ENTRY_FORGOTTEN, now, 0, 0, NULL};
    cache_id_t fid;

    with_keys.keys = keys;
    if (forgotten_id(&with_keys, &fid) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    return save(p, &with_keys, &fid, &forgotten, now + req->ttl);
}

/* Under the lock. A create in progress stays marked: its waiters would
 * otherwise each start one of their own; what it makes is what they all
 * get. A session still filed under the other secret's keys goes too: the
 * lookup would find it there. */
static apr_status_t forget_locked(apr_pool_t *p, const pegadm_session_req_t *req,
                                  apr_time_t now, pegadm_session_result_t *res)
{
    cache_id_t id;
    entry_t e;
    apr_status_t rv;

    if (cache_id(req, "session", &id) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    rv = load(p, req, &id, &e, res);
    if (rv == APR_SUCCESS && !(e.type == ENTRY_PENDING && e.time > now)) {
        rv = remove_session(p, req, req->keys);
    }
    if (rv == APR_SUCCESS && req->keys_previous) {
        rv = remove_session(p, req, req->keys_previous);
    }
    if (rv == APR_SUCCESS) {
        rv = mark_forgotten(p, req, req->keys, now);
    }
    if (rv == APR_SUCCESS && req->keys_previous) {
        rv = mark_forgotten(p, req, req->keys_previous, now);
    }
    return rv;
}

pegadm_session_status_t pegadm_session_forget(apr_pool_t *p, const pegadm_session_req_t *req,
                                              pegadm_session_result_t *res)
{
    apr_time_t now = apr_time_now();
    apr_status_t rv;

    memset(res, 0, sizeof(*res));
    if ((rv = req->store->lock(req->store->ctx)) != APR_SUCCESS) {
        return store_failed(p, res, rv, "locking");
    }
    rv = forget_locked(p, req, now, res);
    req->store->unlock(req->store->ctx);
    if (rv != APR_SUCCESS) {
        return store_failed(p, res, rv, "forgetting an entry");
    }
    return PEGADM_SESSION_OK;
}
