/* The session flow over an abstract store (pegadm_session.h): entries,
 * single-flight creation, the per-customer create limit. It calls the
 * create it is given and knows nothing of httpd or of the service. */
#include "pegadm_session.h"

#include <string.h>

#include <apr_strings.h>

#include "pegadm_bytes.h"
#include "pegadm_cacheerr.h"
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
 * count more milliseconds. A session entry (type 'T') carries, between the
 * count (its flags) and the session ID, the digest of the private data last
 * pushed to it and when the last push was tried:
 *   ... | digest (PEGADM_DATA_DIGEST_LEN) | pushed at (8) | session ID
 * Type 'S' is the session entry without them, still read. A forgotten
 * entry ('L'), under a key of its own, says when the customer's session was
 * last forgotten: sessions made no later than its time are not to be used. */
enum entry_type {
    ENTRY_NONE = 0,
    ENTRY_SESSION = 'T',
    ENTRY_SESSION_V1 = 'S',
    ENTRY_PENDING = 'P',
    ENTRY_FAILED = 'F',
    ENTRY_REFUSED = 'N',
    ENTRY_RATE = 'R',
    ENTRY_FORGOTTEN = 'L', /* under its own key: when the session was last forgotten */
};

#define ENTRY_VERSION 2

/* The flags of a session entry (its count). */
#define FLAG_FOR_PAGE     0x1 /* created for an eager page, not yet renewed */
#define FLAG_DIGEST_KNOWN 0x2 /* digest holds the private data last pushed */
#define FLAG_PUSH_FAILED  0x4 /* the last re-push failed */

typedef struct {
    enum entry_type type;
    apr_time_t time;
    apr_time_t expiry;
    apr_uint32_t count;
    const char *session_id;
    unsigned char digest[PEGADM_DATA_DIGEST_LEN];
    apr_time_t pushed_at;
} entry_t;

#define ENTRY_HEADER  PEGADM_SESSION_ENTRY_HEADER
#define SESSION_EXTRA PEGADM_SESSION_ENTRY_EXTRA
#define ENTRY_MAX     (ENTRY_HEADER + SESSION_EXTRA + PEGADM_SESSION_ID_MAX + PEGADM_SEAL_OVERHEAD)
#define POLL_INTERVAL apr_time_from_msec(20)
/* A refused entry's count holds milliseconds; this fits, with room. */
#define HELD_MAX apr_time_from_sec(86400)

/* A store key: the entry's own id (sealed entries are bound to it) and
 * the customer's tag, shared by all the customer's keys. */
typedef struct {
    unsigned char bytes[PEGADM_CACHE_ID_LEN];
    unsigned char tag[PEGADM_CUSTOMER_TAG_LEN];
} cache_id_t;

static pegadm_store_key_t store_key(const cache_id_t *id)
{
    return (pegadm_store_key_t){id->bytes, sizeof(id->bytes), id->tag, sizeof(id->tag)};
}

/* id's bytes and tag under keys. */
static apr_status_t make_id(const pegadm_keys_t *keys, const char *purpose,
                            const pegadm_session_call_t *call, cache_id_t *id)
{
    pegadm_customer_tag(keys, call->widget_id, call->customer_id, id->tag);
    return pegadm_cache_id(keys, purpose, call->widget_id, call->customer_id, id->bytes);
}

/* Decodes a sealed entry read from the store; one that fails
 * authentication or decoding reads as no entry. */
static void open_entry(apr_pool_t *p, const pegadm_session_call_t *call, const cache_id_t *id,
                       const unsigned char *buf, unsigned int len, entry_t *e,
                       pegadm_session_result_t *res)
{
    unsigned char *plain;
    apr_size_t plain_len, sid_len;

    if (pegadm_unseal(p, call->keys, id->bytes, sizeof(id->bytes), buf, len, &plain,
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
    sid_len = plain_len - ENTRY_HEADER;
    if (e->type == ENTRY_SESSION_V1) {
        e->type = ENTRY_SESSION;
        e->count = 0;
        e->pushed_at = e->time;
    } else if (e->type == ENTRY_SESSION) {
        if (plain_len < ENTRY_HEADER + SESSION_EXTRA) {
            e->type = ENTRY_NONE;
            res->discarded++;
            return;
        }
        memcpy(e->digest, plain + ENTRY_HEADER, PEGADM_DATA_DIGEST_LEN);
        e->pushed_at =
            (apr_time_t)pegadm_get_be(plain + ENTRY_HEADER + PEGADM_DATA_DIGEST_LEN, 8);
        e->session_id += SESSION_EXTRA;
        sid_len -= SESSION_EXTRA;
    }
    if (e->type == ENTRY_SESSION && !pegadm_session_id_is_valid(e->session_id, sid_len)) {
        e->type = ENTRY_NONE;
        res->discarded++;
    } else if (e->expiry <= apr_time_now()) {
        e->type = ENTRY_NONE; /* past its own time, kept or put back by the cache */
    }
}

static apr_status_t load(apr_pool_t *p, const pegadm_session_call_t *call, const cache_id_t *id,
                         entry_t *e, pegadm_session_result_t *res)
{
    unsigned char buf[ENTRY_MAX];
    unsigned int len = sizeof(buf);
    pegadm_store_key_t key = store_key(id);
    apr_status_t rv;

    memset(e, 0, sizeof(*e));
    rv = call->store->get(call->store->ctx, &key, buf, &len, p);
    if (rv == APR_NOTFOUND) {
        return APR_SUCCESS;
    }
    if (rv == APR_SUCCESS) {
        open_entry(p, call, id, buf, len, e, res);
    }
    return rv;
}

/* The key of the customer's forgotten entry. */
static apr_status_t forgotten_id(const pegadm_session_call_t *call, cache_id_t *id)
{
    return make_id(call->keys, "forgotten", call, id);
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
static apr_status_t load_session(apr_pool_t *p, const pegadm_session_call_t *call,
                                 const cache_id_t *id, entry_t *e, pegadm_session_result_t *res)
{
    cache_id_t fid;
    entry_t forgotten;
    apr_status_t rv = load(p, call, id, e, res);

    if (rv != APR_SUCCESS || e->type != ENTRY_SESSION) {
        return rv;
    }
    if (forgotten_id(call, &fid) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    rv = load(p, call, &fid, &forgotten, res);
    if (rv == APR_SUCCESS) {
        drop_if_forgotten(e, &forgotten);
    }
    return rv;
}

/* What a copy of the session entry e records: the digest of the private
 * data last pushed, if the entry knows it, and how long it may be used. */
static const unsigned char *known_digest(const entry_t *e)
{
    return (e->count & FLAG_DIGEST_KNOWN) ? e->digest : NULL;
}

static apr_time_t copy_expiry(const pegadm_session_call_t *call, const entry_t *e)
{
    return e->expiry < e->time + call->ttl ? e->expiry : e->time + call->ttl;
}

/* The common case, a cached session, after this process's own copy
 * (pegadm_session_get) missed: the lock is held for the raw read only (and
 * not at all by a store safe for concurrent reads, whose reads pass
 * read_gate instead, if any) and the entry opened
 * outside it, so that the requests of a busy server queue on the lock as
 * briefly as possible. gen: the copy's generation, read
 * before the store. Anything else (and any doubt) is left to the locked
 * path, which reads again. */
static int cached_session(apr_pool_t *p, const pegadm_session_call_t *call,
                          const cache_id_t *id, apr_uint32_t gen, entry_t *e,
                          pegadm_session_result_t *res)
{
    unsigned char buf[ENTRY_MAX], fbuf[ENTRY_MAX];
    unsigned int len = sizeof(buf), flen = sizeof(fbuf);
    pegadm_session_result_t scratch = {0}; /* the locked path counts discards */
    entry_t forgotten;
    cache_id_t fid;
    pegadm_store_key_t skey, fkey;
    apr_status_t rv, frv = APR_NOTFOUND;
    int locked = 0, gated = 0;

    if (forgotten_id(call, &fid) != APR_SUCCESS) {
        return 0;
    }
    if (!call->read_unlocked) {
        if (call->store->lock(call->store->ctx) != APR_SUCCESS) {
            return 0;
        }
        locked = 1;
    } else if (call->read_gate) {
        if (pegadm_gate_enter(call->read_gate) != APR_SUCCESS) {
            return 0;
        }
        gated = 1;
    }
    skey = store_key(id);
    rv = call->store->get(call->store->ctx, &skey, buf, &len, p);
    if (rv == APR_SUCCESS) {
        fkey = store_key(&fid);
        frv = call->store->get(call->store->ctx, &fkey, fbuf, &flen, p);
    }
    if (locked) {
        call->store->unlock(call->store->ctx);
    }
    if (gated) {
        pegadm_gate_leave(call->read_gate);
    }
    if (rv != APR_SUCCESS || (frv != APR_SUCCESS && frv != APR_NOTFOUND)) {
        return 0;
    }
    memset(e, 0, sizeof(*e));
    open_entry(p, call, id, buf, len, e, &scratch);
    if (frv == APR_SUCCESS) {
        memset(&forgotten, 0, sizeof(forgotten));
        open_entry(p, call, &fid, fbuf, flen, &forgotten, &scratch);
        drop_if_forgotten(e, &forgotten);
    }
    /* checked (sealed, unexpired, not forgotten) before this process keeps it */
    if (e->type != ENTRY_SESSION) {
        return 0;
    }
    if (call->local) {
        pegadm_localcache_put(call->local, call->widget_id, call->customer_id, gen,
                              e->session_id, known_digest(e), apr_time_now(),
                              copy_expiry(call, e));
    }
    res->session_id = e->session_id;
    return 1;
}

/* Under the lock, right after the store came to hold the session entry e
 * (written by this process or found there): this process keeps a copy,
 * under the generation that now stands for what the store holds. */
static void keep_copy(const pegadm_session_call_t *call, const entry_t *e)
{
    if (call->local) {
        pegadm_localcache_put(
            call->local, call->widget_id, call->customer_id,
            pegadm_localcache_generation(call->local, call->widget_id, call->customer_id),
            e->session_id, known_digest(e), apr_time_now(), copy_expiry(call, e));
    }
}

/* Every process's copy of the customer's session is void after a change. */
static void changed(const pegadm_session_call_t *call)
{
    if (call->local) {
        pegadm_localcache_changed(call->local, call->widget_id, call->customer_id);
    }
}

static apr_status_t save(apr_pool_t *p, const pegadm_session_call_t *call, const cache_id_t *id,
                         const entry_t *e, apr_time_t expiry)
{
    apr_size_t sid_len = e->session_id ? strlen(e->session_id) : 0;
    apr_size_t head = ENTRY_HEADER + (e->type == ENTRY_SESSION ? SESSION_EXTRA : 0);
    unsigned char plain[ENTRY_HEADER + SESSION_EXTRA + PEGADM_SESSION_ID_MAX];
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
    if (e->type == ENTRY_SESSION) {
        memcpy(plain + ENTRY_HEADER, e->digest, PEGADM_DATA_DIGEST_LEN);
        pegadm_put_be(plain + ENTRY_HEADER + PEGADM_DATA_DIGEST_LEN, (apr_uint64_t)e->pushed_at,
                      8);
    }
    if (sid_len) {
        memcpy(plain + head, e->session_id, sid_len);
    }
    rv = pegadm_seal(p, call->keys, id->bytes, sizeof(id->bytes), plain, head + sid_len,
                     &sealed, &sealed_len);
    if (rv == APR_SUCCESS) {
        pegadm_store_key_t key = store_key(id);
        rv = call->store->put(call->store->ctx, &key, expiry, sealed, (unsigned int)sealed_len,
                              p);
    }
    changed(call); /* a failed write may have landed all the same */
    return rv;
}

static pegadm_session_status_t store_failed(apr_pool_t *p, pegadm_session_result_t *res,
                                            apr_status_t rv, const char *doing)
{
    char err[120];
    /* the module's own cache clients name why a server could not be used */
    const char *cause = rv >= PEGADM_CACHE_ERR_BASE && rv < PEGADM_CACHE_ERR_END
                            ? pegadm_cache_err_name(rv)
                            : apr_strerror(rv, err, sizeof(err));
    res->why = apr_psprintf(p, "session cache: %s failed: %s", doing, cause);
    res->store_status = rv;
    return PEGADM_SESSION_STORE;
}

static apr_status_t cache_id(const pegadm_session_call_t *call, const char *purpose,
                             cache_id_t *id)
{
    return make_id(call->keys, purpose, call, id);
}

/* Under the lock: stores the new session *e. With converge (a first
 * request, not a renewal), a session that appeared while ours was being
 * created is handed out instead of ours, and what the store holds after
 * our write is what we hand out. The lock is per server, so on a shared
 * store another node may have created one meanwhile: this way nodes
 * racing on one customer's first request converge on one session. */
static apr_status_t store_new_session(apr_pool_t *p, const pegadm_session_call_t *call,
                                      const cache_id_t *id, const entry_t *e, int converge,
                                      pegadm_session_result_t *res)
{
    entry_t found;
    apr_status_t rv;

    res->session_id = e->session_id;
    if (converge) {
        rv = load_session(p, call, id, &found, res);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        if (found.type == ENTRY_SESSION) {
            res->session_id = found.session_id;
            keep_copy(call, &found);
            return APR_SUCCESS;
        }
    }
    rv = save(p, call, id, e, e->time + call->ttl);
    if (rv == APR_SUCCESS && converge &&
        load_session(p, call, id, &found, res) == APR_SUCCESS && found.type == ENTRY_SESSION) {
        res->session_id = found.session_id;
        keep_copy(call, &found);
    } else if (rv == APR_SUCCESS && !converge) {
        entry_t stored = *e;
        stored.expiry = e->time + call->ttl;
        keep_copy(call, &stored);
    }
    return rv;
}

static void note_refusal(pegadm_session_result_t *res, apr_time_t held_until, apr_time_t now)
{
    res->refused = 1;
    res->retry_after = held_until > now ? held_until - now : 0;
}

/* During a rotation the session may be filed under the other secret's
 * keys: it is handed out and filed anew under the current keys, keeping its
 * age and what it records (a session stored there meanwhile wins, as in
 * store_new_session). A failure to file it again is no failure: the next
 * request tries again. */
static int filed_under_previous(apr_pool_t *p, const pegadm_session_call_t *call,
                                const cache_id_t *id, pegadm_session_result_t *res)
{
    pegadm_session_call_t previous = *call;
    entry_t e;
    cache_id_t old;

    if (!call->keys_previous) {
        return 0;
    }
    previous.keys = call->keys_previous;
    previous.local = NULL; /* filed anew below, which voids any copy */
    if (cache_id(&previous, "session", &old) != APR_SUCCESS ||
        !cached_session(p, &previous, &old, 0, &e, res)) {
        return 0;
    }
    if (call->store->lock(call->store->ctx) == APR_SUCCESS) {
        store_new_session(p, call, id, &e, 1, res);
        call->store->unlock(call->store->ctx);
    }
    return 1;
}

/* Under the lock: counts one more create in the customer's window. Every
 * create counts, whatever caused it (a first or forgotten session, an
 * eager page, a POST): otherwise logging out and in again would mint
 * sessions without limit. */
static pegadm_session_status_t count_create_locked(apr_pool_t *p,
                                                   const pegadm_session_call_t *call,
                                                   pegadm_session_result_t *res)
{
    cache_id_t id;
    entry_t e;
    apr_time_t now;
    apr_status_t rv;

    if (cache_id(call, "rate", &id) != APR_SUCCESS) {
        return store_failed(p, res, APR_EGENERAL, "deriving the key");
    }
    rv = load(p, call, &id, &e, res);
    now = apr_time_now();
    if (rv == APR_SUCCESS) {
        if (e.type != ENTRY_RATE || e.time + call->create_window <= now || e.time > now) {
            e.type = ENTRY_RATE;
            e.time = now;
            e.count = 0;
        }
        if (e.count >= (apr_uint32_t)call->create_limit) {
            res->retry_after = e.time + call->create_window - now;
            res->why = "create limit reached";
            return PEGADM_SESSION_RATE_LIMITED;
        }
        e.count++;
        e.session_id = NULL;
        rv = save(p, call, &id, &e, e.time + call->create_window);
    }
    return rv == APR_SUCCESS ? PEGADM_SESSION_OK : store_failed(p, res, rv, "counting creates");
}

static pegadm_session_status_t count_create(apr_pool_t *p, const pegadm_session_call_t *call,
                                            pegadm_session_result_t *res)
{
    pegadm_session_status_t status;
    apr_status_t rv;

    if ((rv = call->store->lock(call->store->ctx)) != APR_SUCCESS) {
        return store_failed(p, res, rv, "locking");
    }
    status = count_create_locked(p, call, res);
    call->store->unlock(call->store->ctx);
    return status;
}

/* Gives back the count of a create that called nobody (the service was
 * deemed down): a customer reloading through an outage is not locked out
 * for the window once it is over. */
static void uncount_create(apr_pool_t *p, const pegadm_session_call_t *call,
                           pegadm_session_result_t *res)
{
    cache_id_t id;
    entry_t e;

    if (cache_id(call, "rate", &id) != APR_SUCCESS ||
        call->store->lock(call->store->ctx) != APR_SUCCESS) {
        return;
    }
    if (load(p, call, &id, &e, res) == APR_SUCCESS && e.type == ENTRY_RATE && e.count > 0) {
        e.count--;
        save(p, call, &id, &e, e.time + call->create_window);
    }
    call->store->unlock(call->store->ctx);
}

/* Runs the upstream create and records its outcome. For a first request
 * (first = 1) a failed or refused entry tells those waiting on our pending
 * entry, and the stored session wins over ours (store_new_session). */
static pegadm_session_status_t create_and_store(apr_pool_t *p,
                                                const pegadm_session_call_t *call,
                                                const cache_id_t *id, int first,
                                                pegadm_session_result_t *res)
{
    const char *sid = NULL, *why = NULL;
    apr_time_t held_until = 0;
    apr_status_t created = call->create(call->create_baton, p, &sid, &why, &held_until);
    apr_time_t now = apr_time_now();
    entry_t e = {0};
    apr_status_t rv;

    if (created != APR_SUCCESS) {
        res->why = why ? why : "the service failed";
        if (held_until) {
            note_refusal(res, held_until, now);
            uncount_create(p, call, res);
        }
        if (first) {
            e.type = res->refused ? ENTRY_REFUSED : ENTRY_FAILED;
            e.time = now;
            if (res->refused) { /* rounded up: waiters must not come back early */
                e.count = (apr_uint32_t)apr_time_as_msec(
                    (res->retry_after < HELD_MAX ? res->retry_after : HELD_MAX) + 999);
            }
            if (call->store->lock(call->store->ctx) == APR_SUCCESS) {
                save(p, call, id, &e, now + call->wait_max);
                call->store->unlock(call->store->ctx);
            }
        }
        return PEGADM_SESSION_UPSTREAM;
    }
    e.type = ENTRY_SESSION;
    e.time = now;
    e.session_id = sid;
    e.pushed_at = now;
    if (call->data_digest) {
        memcpy(e.digest, call->data_digest, PEGADM_DATA_DIGEST_LEN);
        e.count |= FLAG_DIGEST_KNOWN;
    }
    if (first && call->for_page) {
        e.count |= FLAG_FOR_PAGE;
    }
    rv = call->store->lock(call->store->ctx);
    if (rv == APR_SUCCESS) {
        rv = store_new_session(p, call, id, &e, first, res);
        call->store->unlock(call->store->ctx);
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

/* ---- private data follows the identity ---- */

/* The digest a session handed out must have been pushed with, or NULL if
 * any will do (re-pushing is off). */
static const unsigned char *compared_digest(const pegadm_session_call_t *call)
{
    return call->data_digest && call->refresh > 0 && call->push ? call->data_digest : NULL;
}

static int push_due(const pegadm_session_call_t *call, const entry_t *e, apr_time_t now)
{
    if (!call->data_digest || call->refresh <= 0 || !call->push) {
        return 0;
    }
    if ((e->count & FLAG_DIGEST_KNOWN) &&
        !memcmp(e->digest, call->data_digest, PEGADM_DATA_DIGEST_LEN)) {
        return 0;
    }
    return e->pushed_at + call->refresh <= now || e->pushed_at > now;
}

/* Under the lock: the entry of session sid, if it is still the stored one. */
static int reload_same(apr_pool_t *p, const pegadm_session_call_t *call, const cache_id_t *id,
                       const char *sid, entry_t *e, pegadm_session_result_t *res)
{
    return load_session(p, call, id, e, res) == APR_SUCCESS && e->type == ENTRY_SESSION &&
           !strcmp(e->session_id, sid);
}

/* Claims the re-push for this request: under the lock, a due push is
 * marked as tried now, so that of concurrent requests (and processes, and
 * nodes on a shared store) only one pushes per window. */
static int claim_push(apr_pool_t *p, const pegadm_session_call_t *call, const cache_id_t *id,
                      const char *sid, pegadm_session_result_t *res)
{
    apr_time_t now = apr_time_now();
    entry_t e;
    int claimed = 0;

    if (call->store->lock(call->store->ctx) != APR_SUCCESS) {
        return 0;
    }
    if (reload_same(p, call, id, sid, &e, res) && push_due(call, &e, now)) {
        e.pushed_at = now;
        claimed = save(p, call, id, &e, e.time + call->ttl) == APR_SUCCESS;
    }
    call->store->unlock(call->store->ctx);
    return claimed;
}

/* Records the outcome of a re-push in the session's entry. */
static void note_push(apr_pool_t *p, const pegadm_session_call_t *call, const cache_id_t *id,
                      const char *sid, int ok, pegadm_session_result_t *res)
{
    entry_t e;

    if (call->store->lock(call->store->ctx) != APR_SUCCESS) {
        return;
    }
    if (reload_same(p, call, id, sid, &e, res)) {
        res->push_failed_before = !ok && (e.count & FLAG_PUSH_FAILED);
        if (ok) {
            memcpy(e.digest, call->data_digest, PEGADM_DATA_DIGEST_LEN);
            e.count = (e.count | FLAG_DIGEST_KNOWN) & ~(apr_uint32_t)FLAG_PUSH_FAILED;
        } else {
            e.count |= FLAG_PUSH_FAILED;
        }
        if (save(p, call, id, &e, e.time + call->ttl) == APR_SUCCESS && ok) {
            keep_copy(call, &e);
        }
    }
    call->store->unlock(call->store->ctx);
}

/* The session e is handed out; first, private data that changed since the
 * last push is pushed to it, when due. A failed push leaves the session as
 * it is (the service keeps the older data) and is tried again once due. */
static pegadm_session_status_t refresh_private_data(apr_pool_t *p,
                                                    const pegadm_session_call_t *call,
                                                    const cache_id_t *id, const entry_t *e,
                                                    pegadm_session_result_t *res)
{
    const char *sid = e->session_id, *why = NULL;
    int ok;

    res->session_id = sid;
    if (!push_due(call, e, apr_time_now()) || !claim_push(p, call, id, sid, res)) {
        return PEGADM_SESSION_OK;
    }
    ok = call->push(call->push_baton, p, sid, &why) == APR_SUCCESS;
    note_push(p, call, id, sid, ok, res);
    res->pushed = ok;
    res->push_failed = !ok;
    if (!ok) {
        res->why = why ? why : "the service failed";
    }
    return PEGADM_SESSION_OK;
}

/* What the holder of the cross-node mark does. The entry is read again
 * under the mark: the previous holder's session may have landed after our
 * first read. A pending entry found now is a dead node's (marks outlast
 * pending entries), so it is taken over. The create is counted here, by
 * the holder only. The mark is released whatever happens, once the outcome
 * is stored, so that it never outlives the create; should the release
 * fail, it lapses by itself. */
static pegadm_session_status_t create_under_mark(apr_pool_t *p,
                                                 const pegadm_session_call_t *call,
                                                 const cache_id_t *id, const cache_id_t *mark,
                                                 const unsigned char *token, apr_time_t started,
                                                 pegadm_session_result_t *res)
{
    pegadm_store_key_t mark_key = store_key(mark);
    pegadm_session_status_t status = PEGADM_SESSION_OK;
    step_t step = STEP_DONE;
    entry_t e;
    apr_status_t rv;

    if ((rv = call->store->lock(call->store->ctx)) == APR_SUCCESS) {
        apr_time_t now;

        rv = load_session(p, call, id, &e, res);
        now = apr_time_now();
        if (rv == APR_SUCCESS && (step = decide(&e, now, started, &status, res)) != STEP_DONE &&
            (status = count_create_locked(p, call, res)) != PEGADM_SESSION_OK) {
            step = STEP_DONE;
        } else if (step != STEP_DONE) {
            entry_t pending = {.type = ENTRY_PENDING, .time = now + call->wait_max};
            rv = save(p, call, id, &pending, pending.time);
        }
        call->store->unlock(call->store->ctx);
    }
    if (rv != APR_SUCCESS) {
        status = store_failed(p, res, rv, "reading or marking an entry");
    } else if (step != STEP_DONE) {
        status = create_and_store(p, call, id, 1, res);
    } else if (status == PEGADM_SESSION_OK && e.type == ENTRY_SESSION) {
        res->session_id = e.session_id;
    }
    call->mark->release(call->mark->ctx, &mark_key, token, p);
    return status;
}

/* How soon a request refused for too many waiters may come back: a create
 * usually takes well under this, the pending entry's deadline is far later. */
#define WAITER_RETRY apr_time_from_sec(2)

/* Past the bound on this process's waiters for one create: refused at
 * once, told to come back about when that create should be done (due: the
 * pending entry's deadline, or 0 when another node's mark is waited for). */
static pegadm_session_status_t too_many_waiting(apr_time_t due, apr_time_t now,
                                                pegadm_session_result_t *res)
{
    res->why = "too many requests of this customer wait for one create "
               "(PegaDMCreateWaiters)";
    note_refusal(res, due > now && due - now < WAITER_RETRY ? due : now + WAITER_RETRY, now);
    return PEGADM_SESSION_UPSTREAM;
}

/* The locked loop of pegadm_session_get; *waiting says whether a place
 * among the waiters was taken (1), and must be given back. With a
 * cross-node mark, a pending entry is written by the mark's holder only:
 * written before the mark is taken, it could overwrite a session that
 * another node stored meanwhile. Without one, the node lock alone decides.
 * Those waiting for another node's mark count among this process's waiters
 * too. */
static pegadm_session_status_t wait_or_create(apr_pool_t *p, const pegadm_session_call_t *call,
                                              const cache_id_t *id, const cache_id_t *mark,
                                              apr_time_t started, int *waiting,
                                              pegadm_session_result_t *res)
{
    pegadm_session_status_t status = PEGADM_SESSION_OK;
    apr_status_t rv;

    for (;;) {
        entry_t e;
        apr_time_t now;
        step_t step;

        if ((rv = call->store->lock(call->store->ctx)) != APR_SUCCESS) {
            return store_failed(p, res, rv, "locking");
        }
        rv = load_session(p, call, id, &e, res);
        now = apr_time_now();
        step = rv == APR_SUCCESS ? decide(&e, now, started, &status, res) : STEP_DONE;
        if (step == STEP_CREATE && !call->mark &&
            (status = count_create_locked(p, call, res)) != PEGADM_SESSION_OK) {
            call->store->unlock(call->store->ctx);
            return status;
        }
        if (step == STEP_CREATE && !call->mark) {
            entry_t pending = {.type = ENTRY_PENDING, .time = now + call->wait_max};
            rv = save(p, call, id, &pending, pending.time);
        }
        call->store->unlock(call->store->ctx);

        if (rv != APR_SUCCESS) {
            return store_failed(p, res, rv, "reading or marking an entry");
        }
        if (step == STEP_DONE) {
            return status == PEGADM_SESSION_OK && e.type == ENTRY_SESSION
                       ? refresh_private_data(p, call, id, &e, res)
                       : status;
        }
        if (step == STEP_CREATE && !call->mark) {
            return create_and_store(p, call, id, 1, res);
        }
        if (step == STEP_CREATE) {
            /* a token of this take's own: the release removes our mark,
             * never one another node took after ours lapsed */
            unsigned char token[PEGADM_MARK_TOKEN_LEN];
            pegadm_store_key_t mark_key = store_key(mark);

            rv = pegadm_random(token, sizeof(token));
            if (rv == APR_SUCCESS) {
                rv = call->mark->take(call->mark->ctx, &mark_key, token,
                                      call->wait_max + apr_time_from_sec(1), p);
            }
            if (rv == APR_SUCCESS) {
                return create_under_mark(p, call, id, mark, token, started, res);
            }
            if (rv != APR_EEXIST) {
                return store_failed(p, res, rv, "taking the create mark");
            }
            /* another node is creating it: wait for the outcome */
        }
        if (!*waiting && call->waiters &&
            !(*waiting = pegadm_waiters_enter(call->waiters, id->bytes, sizeof(id->bytes),
                                              call->waiters_max))) {
            return too_many_waiting(e.type == ENTRY_PENDING ? e.time : 0, now, res);
        }
        if (now - started >= call->wait_max) {
            res->why = "timed out waiting for a concurrent request's create";
            return PEGADM_SESSION_UPSTREAM;
        }
        apr_sleep(POLL_INTERVAL);
    }
}

pegadm_session_status_t pegadm_session_get(apr_pool_t *p, const pegadm_session_call_t *call,
                                           pegadm_session_result_t *res)
{
    apr_time_t started = apr_time_now();
    pegadm_session_status_t status;
    entry_t found;
    cache_id_t id, mark;
    apr_uint32_t gen = 0;
    int waiting = 0;

    memset(res, 0, sizeof(*res));
    /* private data that may have changed: the copy answers only while it
     * records the digest of the same data as last pushed; otherwise the
     * entry decides whether to push again */
    if (call->local) {
        res->session_id = pegadm_localcache_get(call->local, call->widget_id, call->customer_id,
                                                compared_digest(call), started, p, &gen);
        if (res->session_id) {
            res->local = 1;
            return PEGADM_SESSION_OK;
        }
    }
    if (cache_id(call, "session", &id) != APR_SUCCESS ||
        (call->mark && cache_id(call, "create-mark", &mark) != APR_SUCCESS)) {
        return store_failed(p, res, APR_EGENERAL, "deriving the key");
    }
    if (cached_session(p, call, &id, gen, &found, res)) {
        return refresh_private_data(p, call, &id, &found, res);
    }
    if (filed_under_previous(p, call, &id, res)) {
        return PEGADM_SESSION_OK;
    }
    status = wait_or_create(p, call, &id, &mark, started, &waiting, res);
    if (waiting == 1) {
        pegadm_waiters_leave(call->waiters, id.bytes, sizeof(id.bytes));
    }
    return status;
}

/* Under the lock: takes the session made for an eager page that no
 * renewal has taken yet (its mark is cleared: the next renewal creates). */
static int take_page_session(apr_pool_t *p, const pegadm_session_call_t *call,
                             const cache_id_t *id, entry_t *e, pegadm_session_result_t *res)
{
    int taken = 0;

    if (call->store->lock(call->store->ctx) != APR_SUCCESS) {
        return 0;
    }
    if (load_session(p, call, id, e, res) == APR_SUCCESS && e->type == ENTRY_SESSION &&
        (e->count & FLAG_FOR_PAGE)) {
        e->count &= ~(apr_uint32_t)FLAG_FOR_PAGE;
        taken = save(p, call, id, e, e->time + call->ttl) == APR_SUCCESS;
        if (taken) {
            keep_copy(call, e);
        }
    }
    call->store->unlock(call->store->ctx);
    return taken;
}

pegadm_session_status_t pegadm_session_renew(apr_pool_t *p, const pegadm_session_call_t *call,
                                             pegadm_session_result_t *res)
{
    pegadm_session_status_t status;
    entry_t e;
    cache_id_t id;
    int placed = 0;

    memset(res, 0, sizeof(*res));
    if (cache_id(call, "session", &id) != APR_SUCCESS) {
        return store_failed(p, res, APR_EGENERAL, "deriving the key");
    }
    if (take_page_session(p, call, &id, &e, res)) {
        return refresh_private_data(p, call, &id, &e, res);
    }
    /* Each renewal is a create of its own: concurrent ones of a customer
     * take places among the same bound as those waiting for his create, so
     * that he never holds more than that share of a process's threads. */
    if (call->waiters && !(placed = pegadm_waiters_enter(
                               call->waiters, id.bytes, sizeof(id.bytes), call->waiters_max))) {
        return too_many_waiting(0, apr_time_now(), res);
    }
    status = count_create(p, call, res);
    if (status == PEGADM_SESSION_OK) {
        /* A failed renewal keeps the cached session: it still works. */
        status = create_and_store(p, call, &id, 0, res);
    }
    if (placed == 1) {
        pegadm_waiters_leave(call->waiters, id.bytes, sizeof(id.bytes));
    }
    return status;
}

/* Under the lock: the forgotten record filed under keys (0: none). */
static apr_status_t forgotten_under(apr_pool_t *p, const pegadm_session_call_t *call,
                                    const pegadm_keys_t *keys, apr_time_t *at,
                                    pegadm_session_result_t *res)
{
    pegadm_session_call_t with_keys = *call;
    cache_id_t id;
    entry_t e;
    apr_status_t rv;

    with_keys.keys = keys;
    if (forgotten_id(&with_keys, &id) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    rv = load(p, &with_keys, &id, &e, res);
    *at = rv == APR_SUCCESS && e.type == ENTRY_FORGOTTEN ? e.time : 0;
    return rv;
}

pegadm_session_status_t pegadm_session_last_forget(apr_pool_t *p,
                                                   const pegadm_session_call_t *call,
                                                   pegadm_session_result_t *res)
{
    apr_status_t rv;

    memset(res, 0, sizeof(*res));
    if ((rv = call->store->lock(call->store->ctx)) != APR_SUCCESS) {
        return store_failed(p, res, rv, "locking");
    }
    rv = forgotten_under(p, call, call->keys, &res->forgotten_at, res);
    if (rv == APR_SUCCESS && call->keys_previous) {
        rv = forgotten_under(p, call, call->keys_previous, &res->forgotten_previous, res);
    }
    call->store->unlock(call->store->ctx);
    if (rv != APR_SUCCESS) {
        return store_failed(p, res, rv, "reading an entry");
    }
    return PEGADM_SESSION_OK;
}

/* Under the lock: removes the session filed under keys. */
static apr_status_t remove_session(apr_pool_t *p, const pegadm_session_call_t *call,
                                   const pegadm_keys_t *keys)
{
    pegadm_session_call_t with_keys = *call;
    cache_id_t id;
    pegadm_store_key_t key;
    apr_status_t rv;

    with_keys.keys = keys;
    if (cache_id(&with_keys, "session", &id) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    key = store_key(&id);
    rv = call->store->del(call->store->ctx, &key, p);
    return rv == APR_NOTFOUND ? APR_SUCCESS : rv;
}

/* Under the lock: records under keys when the customer's session was
 * forgotten (a logout); a session that only expires leaves it as it is.
 * The record outlives every session made before now (each expires within
 * the TTL after it was made), so that none of them can be put back and
 * used. It is kept a week (memcached takes longer lifetimes for dates),
 * longer than any chat: the owner of the login it marks
 * (mod_pegadm_handlers.c) must not change under a chat that began after it.
 * One lost sooner (a full cache) ends such a chat: the safe side. */
#define FORGOTTEN_KEEP apr_time_from_sec(7 * 86400)

static apr_status_t note_forgotten(apr_pool_t *p, const pegadm_session_call_t *call,
                                   const pegadm_keys_t *keys, apr_time_t now)
{
    pegadm_session_call_t with_keys = *call;
    entry_t forgotten = {.type = ENTRY_FORGOTTEN, .time = now};
    cache_id_t fid;

    with_keys.keys = keys;
    if (forgotten_id(&with_keys, &fid) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    return save(p, &with_keys, &fid, &forgotten,
                now + (call->ttl > FORGOTTEN_KEEP ? call->ttl : FORGOTTEN_KEEP));
}

/* Under the lock. A create in progress stays marked: its waiters would
 * otherwise each start one of their own; what it makes is what they all
 * get. A session still filed under the other secret's keys goes too: the
 * lookup would find it there. */
static apr_status_t forget_locked(apr_pool_t *p, const pegadm_session_call_t *call,
                                  apr_time_t now, pegadm_session_result_t *res)
{
    cache_id_t id;
    entry_t e;
    apr_status_t rv;

    if (cache_id(call, "session", &id) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    rv = load(p, call, &id, &e, res);
    if (rv == APR_SUCCESS && !(e.type == ENTRY_PENDING && e.time > now)) {
        rv = remove_session(p, call, call->keys);
    }
    if (rv == APR_SUCCESS && call->keys_previous) {
        rv = remove_session(p, call, call->keys_previous);
    }
    if (rv == APR_SUCCESS) {
        rv = note_forgotten(p, call, call->keys, now);
    }
    if (rv == APR_SUCCESS && call->keys_previous) {
        rv = note_forgotten(p, call, call->keys_previous, now);
    }
    return rv;
}

pegadm_session_status_t pegadm_session_forget(apr_pool_t *p, const pegadm_session_call_t *call,
                                              pegadm_session_result_t *res)
{
    apr_time_t now = apr_time_now();
    apr_status_t rv;

    memset(res, 0, sizeof(*res));
    if ((rv = call->store->lock(call->store->ctx)) != APR_SUCCESS) {
        return store_failed(p, res, rv, "locking");
    }
    rv = forget_locked(p, call, now, res);
    call->store->unlock(call->store->ctx);
    changed(call);
    if (rv != APR_SUCCESS) {
        return store_failed(p, res, rv, "forgetting an entry");
    }
    return PEGADM_SESSION_OK;
}
