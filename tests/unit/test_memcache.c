/* The memcached client against real memcached processes on loopback (and
 * ::1, and a unix socket): the key-value semantics, keys that stay on
 * their own server when it is down, hung and dead servers bounded by the
 * deadline and never read as a miss, recovery after a restart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "pegadm_test_pool.h"

#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>
#include <apr_time.h>

#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "memcached_procs.h"
#include "pegadm_cacheerr.h"
#include "pegadm_memcache.h"

#define TTL   apr_time_from_sec(60)
#define NKEYS 120
/* what a bounded operation may take beyond its deadline on a busy machine */
#define MARGIN apr_time_from_sec(1)

static const unsigned char V1[] = "value-1", V2[] = "value-2";

static pegadm_memcache_t *client(apr_pool_t *p, const char *servers,
                                 apr_interval_time_t timeout, unsigned int max_conns)
{
    pegadm_memcache_t *mc = NULL;
    const char *why = NULL;

    assert_int_equal(pegadm_memcache_create(p, servers, timeout, max_conns, &mc, &why),
                     APR_SUCCESS);
    return mc;
}

static void start(mcd_t *m)
{
    if (!mcd_available()) {
        skip();
    }
    assert_int_equal(mcd_start(m), 0);
}

static const char *key_of(apr_pool_t *p, int i)
{
    return apr_psprintf(p, "pegadm-test-%d", i);
}

static apr_status_t get(pegadm_memcache_t *mc, const char *key, char *out, apr_size_t size,
                        apr_pool_t *p)
{
    apr_size_t len = size - 1;
    apr_status_t rv = pegadm_memcache_get(mc, key, strlen(key), (unsigned char *)out, &len, p);

    out[rv == APR_SUCCESS ? len : 0] = '\0';
    return rv;
}

static apr_status_t set(pegadm_memcache_t *mc, const char *key, const unsigned char *v,
                        apr_pool_t *p)
{
    return pegadm_memcache_set(mc, key, strlen(key), v, strlen((const char *)v), TTL, p);
}

static apr_status_t add(pegadm_memcache_t *mc, const char *key, const unsigned char *v,
                        apr_interval_time_t ttl, apr_pool_t *p)
{
    return pegadm_memcache_add(mc, key, strlen(key), v, strlen((const char *)v), ttl, p);
}

static apr_status_t del_if(pegadm_memcache_t *mc, const char *key, const unsigned char *v,
                           apr_pool_t *p)
{
    return pegadm_memcache_del_if(mc, key, strlen(key), v, strlen((const char *)v), p);
}

/* ---- semantics ---- */

static void test_get_set_del(void **state)
{
    apr_pool_t *p = *state;
    mcd_t m = {0};
    pegadm_memcache_t *mc;
    pegadm_kv_t kv;
    char out[64];
    apr_size_t small = 3;

    start(&m);
    mc = client(p, m.spec, apr_time_from_sec(2), 4);
    kv = pegadm_memcache_kv(mc);
    assert_ptr_equal(kv.ctx, mc);
    assert_int_equal(get(mc, "k", out, sizeof(out), p), APR_NOTFOUND);
    assert_int_equal(set(mc, "k", V1, p), APR_SUCCESS);
    assert_int_equal(get(mc, "k", out, sizeof(out), p), APR_SUCCESS);
    assert_string_equal(out, (const char *)V1);
    /* a value larger than the buffer is refused, never cut */
    assert_int_equal(kv.get(mc, "k", 1, (unsigned char *)out, &small, p),
                     PEGADM_CACHE_PROTOCOL);
    assert_int_equal(set(mc, "k", V2, p), APR_SUCCESS);
    assert_int_equal(get(mc, "k", out, sizeof(out), p), APR_SUCCESS);
    assert_string_equal(out, (const char *)V2);
    assert_int_equal(kv.del(mc, "k", 1, p), APR_SUCCESS);
    assert_int_equal(get(mc, "k", out, sizeof(out), p), APR_NOTFOUND);
    assert_int_equal(kv.del(mc, "k", 1, p), APR_SUCCESS); /* absent: still done */
    /* an empty value and one with every byte */
    assert_int_equal(pegadm_memcache_set(mc, "e", 1, (const unsigned char *)"", 0, TTL, p),
                     APR_SUCCESS);
    assert_int_equal(get(mc, "e", out, sizeof(out), p), APR_SUCCESS);
    assert_string_equal(out, "");
    {
        unsigned char all[256], back[256];
        apr_size_t len = sizeof(back);
        for (int i = 0; i < 256; i++) {
            all[i] = (unsigned char)i;
        }
        assert_int_equal(pegadm_memcache_set(mc, "b", 1, all, sizeof(all), TTL, p),
                         APR_SUCCESS);
        assert_int_equal(pegadm_memcache_get(mc, "b", 1, back, &len, p), APR_SUCCESS);
        assert_int_equal(len, sizeof(all));
        assert_memory_equal(back, all, sizeof(all));
    }
    mcd_kill(&m);
}

static void test_add_and_del_if(void **state)
{
    apr_pool_t *p = *state;
    mcd_t m = {0};
    pegadm_memcache_t *mc;
    char out[64];

    start(&m);
    mc = client(p, m.spec, apr_time_from_sec(2), 4);
    assert_int_equal(add(mc, "mark", V1, TTL, p), APR_SUCCESS);
    assert_int_equal(add(mc, "mark", V2, TTL, p), APR_EEXIST);
    assert_int_equal(get(mc, "mark", out, sizeof(out), p), APR_SUCCESS);
    assert_string_equal(out, (const char *)V1); /* the second add changed nothing */

    /* another value, a value of another length, an absent key: left alone */
    assert_int_equal(del_if(mc, "mark", V2, p), APR_NOTFOUND);
    assert_int_equal(del_if(mc, "mark", (const unsigned char *)"value-1-longer", p),
                     APR_NOTFOUND);
    assert_int_equal(del_if(mc, "absent", V1, p), APR_NOTFOUND);
    assert_int_equal(get(mc, "mark", out, sizeof(out), p), APR_SUCCESS);
    assert_string_equal(out, (const char *)V1);

    /* the owner's value: deleted, for every reader, and free to take again */
    assert_int_equal(del_if(mc, "mark", V1, p), APR_SUCCESS);
    assert_int_equal(get(mc, "mark", out, sizeof(out), p), APR_NOTFOUND);
    assert_int_equal(del_if(mc, "mark", V1, p), APR_NOTFOUND);
    assert_int_equal(add(mc, "mark", V2, TTL, p), APR_SUCCESS);
    mcd_kill(&m);
}

static void test_expiry(void **state)
{
    apr_pool_t *p = *state;
    mcd_t m = {0};
    pegadm_memcache_t *mc;
    char out[64];

    start(&m);
    mc = client(p, m.spec, apr_time_from_sec(2), 4);
    /* a part of a second is rounded up, never down to "no expiry" (0) */
    assert_int_equal(add(mc, "mark", V1, apr_time_from_msec(300), p), APR_SUCCESS);
    assert_int_equal(pegadm_memcache_set(mc, "entry", 5, V1, 7, apr_time_from_msec(300), p),
                     APR_SUCCESS);
    assert_int_equal(add(mc, "mark", V2, TTL, p), APR_EEXIST);
    apr_sleep(apr_time_from_msec(2100)); /* memcached counts whole seconds */
    assert_int_equal(get(mc, "entry", out, sizeof(out), p), APR_NOTFOUND);
    assert_int_equal(add(mc, "mark", V2, TTL, p), APR_SUCCESS);
    assert_int_equal(pegadm_memcache_set(mc, "entry", 5, V1, 7, 0, p), APR_EINVAL);
    mcd_kill(&m);
}

static void test_bad_keys_refused_before_any_io(void **state)
{
    apr_pool_t *p = *state;
    char spec[64], long_key[PEGADM_MEMCACHE_KEY_MAX + 2];
    pegadm_memcache_t *mc;
    apr_size_t len = 8;
    unsigned char buf[8];
    const char *bad[] = {"with space", "tab\tkey", "new\nline", "nul\0key", "del\x7f"};

    /* nothing listens there: a key that went out would be "refused" */
    apr_snprintf(spec, sizeof(spec), "127.0.0.1:%d", mcd_free_port(0));
    mc = client(p, spec, apr_time_from_sec(1), 2);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(pegadm_memcache_get(mc, bad[i], 8, buf, &len, p),
                         PEGADM_CACHE_PROTOCOL);
        assert_int_equal(pegadm_memcache_set(mc, bad[i], 8, V1, 7, TTL, p),
                         PEGADM_CACHE_PROTOCOL);
    }
    assert_int_equal(pegadm_memcache_del(mc, "", 0, p), PEGADM_CACHE_PROTOCOL);
    memset(long_key, 'k', sizeof(long_key));
    assert_int_equal(
        pegadm_memcache_add(mc, long_key, PEGADM_MEMCACHE_KEY_MAX + 1, V1, 7, TTL, p),
        PEGADM_CACHE_PROTOCOL);
    assert_int_equal(pegadm_memcache_add(mc, long_key, PEGADM_MEMCACHE_KEY_MAX, V1, 7, TTL, p),
                     PEGADM_CACHE_REFUSED);
}

static void test_server_lists(void **state)
{
    apr_pool_t *p = *state;
    const char *good[] = {"127.0.0.1",
                          "memcache://127.0.0.1:11211",
                          "memcache:cache-1.example:11211,cache-2.example:11212",
                          "[::1]:11211,[::1]:11212",
                          "::1",
                          "[fe80::1%eth0]:11211",
                          "/run/memcached/memcached.sock,127.0.0.1"};
    const char *bad[] = {"",
                         "memcache://",
                         "127.0.0.1:",
                         "127.0.0.1:0",
                         "127.0.0.1:65536",
                         "127.0.0.1:11211x",
                         "a,,b",
                         "a,",
                         "[::1",
                         "[]:11211",
                         "[::1]11211",
                         "host name",
                         "a:1,a:1"};

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        const char *why = pegadm_memcache_check_servers(p, good[i]);
        if (why) {
            fail_msg("%s: %s", good[i], why);
        }
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (!pegadm_memcache_check_servers(p, bad[i])) {
            fail_msg("accepted: \"%s\"", bad[i]);
        }
    }
    /* every kind of entry on one continuum (no name to resolve here) */
    {
        pegadm_memcache_t *mc =
            client(p, "[::1]:11211,[::1]:11212,127.0.0.1:11213,/run/memcached.sock",
                   apr_time_from_sec(1), 1);
        int seen[4] = {0, 0, 0, 0};
        const char *names[] = {"[::1]:11211", "[::1]:11212", "127.0.0.1:11213",
                               "/run/memcached.sock"};
        for (int k = 0; k < NKEYS; k++) {
            const char *key = key_of(p, k);
            const char *server = pegadm_memcache_server_of(mc, key, strlen(key));
            for (int i = 0; i < 4; i++) {
                seen[i] += strcmp(server, names[i]) == 0;
            }
        }
        for (int i = 0; i < 4; i++) {
            assert_true(seen[i] > 0);
        }
    }
}

static void test_ipv6_and_unix_socket(void **state)
{
    apr_pool_t *p = *state;
    mcd_t v6 = {.v6 = 1}, local = {0};
    char dir[96], out[64];
    pegadm_memcache_t *mc;

    assert_int_equal(mcd_socket_dir(dir, sizeof(dir)), 0);
    apr_snprintf(local.path, sizeof(local.path), "%s/memcached.sock", dir);
    start(&v6);
    start(&local);
    mc = client(p, v6.spec, apr_time_from_sec(2), 2);
    assert_int_equal(set(mc, "k", V1, p), APR_SUCCESS);
    assert_int_equal(get(mc, "k", out, sizeof(out), p), APR_SUCCESS);
    mc = client(p, local.spec, apr_time_from_sec(2), 2);
    assert_int_equal(get(mc, "k", out, sizeof(out), p), APR_NOTFOUND);
    assert_int_equal(set(mc, "k", V2, p), APR_SUCCESS);
    assert_int_equal(get(mc, "k", out, sizeof(out), p), APR_SUCCESS);
    assert_string_equal(out, (const char *)V2);
    mcd_kill(&v6);
    mcd_kill(&local);
    /* the socket's server is gone: refused, not a miss */
    assert_int_equal(get(mc, "k", out, sizeof(out), p), PEGADM_CACHE_REFUSED);
    unlink(local.path);
    rmdir(dir);
}

/* ---- several servers ---- */

/* What the observer saw: how many operations, the longest. */
typedef struct {
    apr_thread_mutex_t *mutex;
    int calls, failed;
    double longest;
    char last_op[16];
    apr_status_t last_rv;
} seen_t;

static void observe(void *baton, const char *op, double seconds, apr_status_t rv)
{
    seen_t *seen = baton;

    apr_thread_mutex_lock(seen->mutex);
    seen->calls++;
    seen->failed += rv != APR_SUCCESS && rv != APR_NOTFOUND && rv != APR_EEXIST;
    if (seconds > seen->longest) {
        seen->longest = seconds;
    }
    apr_cpystrn(seen->last_op, op, sizeof(seen->last_op));
    seen->last_rv = rv;
    apr_thread_mutex_unlock(seen->mutex);
}

static seen_t *watch(apr_pool_t *p, pegadm_memcache_t *mc)
{
    seen_t *seen = apr_pcalloc(p, sizeof(*seen));

    assert_int_equal(apr_thread_mutex_create(&seen->mutex, APR_THREAD_MUTEX_DEFAULT, p),
                     APR_SUCCESS);
    pegadm_memcache_observe(mc, observe, seen);
    return seen;
}

/* Every operation seen ended within the deadline (and a margin). */
static void assert_bounded(seen_t *seen, apr_interval_time_t timeout)
{
    if (seen->longest > (double)(timeout + MARGIN) / APR_USEC_PER_SEC) {
        fail_msg("an operation took %.3f s, the deadline is %.3f s", seen->longest,
                 (double)timeout / APR_USEC_PER_SEC);
    }
}

static const char *spec_of(apr_pool_t *p, mcd_t *m, int n)
{
    const char *spec = m[0].spec;

    for (int i = 1; i < n; i++) {
        spec = apr_pstrcat(p, spec, ",", m[i].spec, NULL);
    }
    return spec;
}

static int index_of(mcd_t *m, int n, const char *server)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(m[i].spec, server) == 0) {
            return i;
        }
    }
    fail_msg("no server %s", server);
    return 0; /* not reached */
}

/* Every key is on the server the ring names, and only there; every
 * server holds some; a node that lists the servers in another order
 * agrees on each key. */
static void test_keys_spread_and_stay(void **state)
{
    apr_pool_t *p = *state;
    mcd_t m[3] = {{0}, {0}, {0}};
    pegadm_memcache_t *mc, *reversed, *one[3];
    int held[3] = {0, 0, 0};
    char out[64];

    for (int i = 0; i < 3; i++) {
        start(&m[i]);
        one[i] = client(p, m[i].spec, apr_time_from_sec(2), 2);
    }
    mc = client(p, spec_of(p, m, 3), apr_time_from_sec(2), 4);
    reversed = client(p, apr_pstrcat(p, m[2].spec, ",", m[1].spec, ",", m[0].spec, NULL),
                      apr_time_from_sec(2), 4);
    for (int k = 0; k < NKEYS; k++) {
        const char *key = key_of(p, k);
        const char *server = pegadm_memcache_server_of(mc, key, strlen(key));
        int at = index_of(m, 3, server);

        assert_string_equal(pegadm_memcache_server_of(reversed, key, strlen(key)), server);
        assert_int_equal(set(mc, key, V1, p), APR_SUCCESS);
        for (int i = 0; i < 3; i++) {
            assert_int_equal(get(one[i], key, out, sizeof(out), p),
                             i == at ? APR_SUCCESS : APR_NOTFOUND);
        }
        held[at]++;
    }
    for (int i = 0; i < 3; i++) {
        assert_true(held[i] > NKEYS / 10);
        mcd_kill(&m[i]);
    }
}

/* One of three servers killed, or hung: its keys fail with the cause, in
 * every operation, and no other server answers for them; the other keys
 * work as before. */
static void only_its_keys_fail(apr_pool_t *p, mcd_t *m, pegadm_memcache_t *mc,
                               pegadm_memcache_t **one, int down, apr_status_t cause)
{
    char out[64];
    int sampled = 0;

    for (int k = 0; k < NKEYS; k++) {
        const char *key = key_of(p, k);
        int at = index_of(m, 3, pegadm_memcache_server_of(mc, key, strlen(key)));
        apr_status_t want = at == down ? cause : APR_SUCCESS;

        if (at == down && cause == PEGADM_CACHE_TIMEOUT && sampled++ >= 2) {
            continue; /* each costs the deadline: two of them are enough */
        }
        assert_int_equal(get(mc, key, out, sizeof(out), p), want);
        assert_int_equal(set(mc, key, V2, p), want);
        assert_int_equal(add(mc, key, V2, TTL, p), at == down ? cause : APR_EEXIST);
        assert_int_equal(del_if(mc, key, V1, p), at == down ? cause : APR_NOTFOUND);
        assert_int_equal(pegadm_memcache_del(mc, key, strlen(key), p), want);
        for (int i = 0; i < 3 && at == down; i++) {
            if (i != down) { /* never written where another server would answer */
                assert_int_equal(get(one[i], key, out, sizeof(out), p), APR_NOTFOUND);
            }
        }
    }
}

static seen_t *three_servers(apr_pool_t *p, mcd_t *m, pegadm_memcache_t **mc,
                             pegadm_memcache_t **one, apr_interval_time_t timeout)
{
    for (int i = 0; i < 3; i++) {
        start(&m[i]);
        one[i] = client(p, m[i].spec, timeout, 2);
    }
    *mc = client(p, spec_of(p, m, 3), timeout, 4);
    for (int k = 0; k < NKEYS; k++) {
        assert_int_equal(set(*mc, key_of(p, k), V1, p), APR_SUCCESS);
    }
    return watch(p, *mc);
}

static void test_killed_server_fails_only_its_keys(void **state)
{
    apr_pool_t *p = *state;
    mcd_t m[3] = {{0}, {0}, {0}};
    pegadm_memcache_t *mc, *one[3];

    seen_t *seen = three_servers(p, m, &mc, one, apr_time_from_sec(2));

    mcd_kill(&m[1]);
    only_its_keys_fail(p, m, mc, one, 1, PEGADM_CACHE_REFUSED);
    assert_true(seen->failed > 0);
    /* refused at once: within half the deadline, on a busy machine too */
    assert_true(seen->longest < 1.0);
    mcd_kill(&m[0]);
    mcd_kill(&m[2]);
}

static void test_stopped_server_fails_only_its_keys(void **state)
{
    apr_pool_t *p = *state;
    mcd_t m[3] = {{0}, {0}, {0}};
    pegadm_memcache_t *mc, *one[3];
    /* long enough that the servers still up answer within it on a busy
     * machine; each operation on the stopped one costs all of it */
    apr_interval_time_t timeout = apr_time_from_msec(800);
    char out[64];

    seen_t *seen = three_servers(p, m, &mc, one, timeout);

    mcd_signal(&m[2], SIGSTOP);
    only_its_keys_fail(p, m, mc, one, 2, PEGADM_CACHE_TIMEOUT);
    assert_true(seen->failed > 0);
    assert_bounded(seen, timeout);
    /* back: its keys answer again, on new connections (what was sent
     * before may still be applied now, so each key is written anew) */
    mcd_signal(&m[2], SIGCONT);
    for (int k = 0; k < NKEYS; k++) {
        assert_int_equal(set(mc, key_of(p, k), V1, p), APR_SUCCESS);
        assert_int_equal(get(mc, key_of(p, k), out, sizeof(out), p), APR_SUCCESS);
        assert_string_equal(out, (const char *)V1);
    }
    for (int i = 0; i < 3; i++) {
        mcd_kill(&m[i]);
    }
}

/* ---- deadlines ---- */

/* A port whose listener never accepts and whose backlog is full: the
 * connect never completes. */
static int full_listener(int *port)
{
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(in);
    int fd = socket(AF_INET, SOCK_STREAM, 0), filler = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0 && filler >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&in, len), 0);
    assert_int_equal(listen(fd, 0), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&in, &len), 0);
    assert_int_equal(connect(filler, (struct sockaddr *)&in, len), 0);
    *port = ntohs(in.sin_port);
    return fd;
}

static void test_connect_that_never_completes(void **state)
{
    apr_pool_t *p = *state;
    apr_interval_time_t timeout = apr_time_from_msec(300);
    pegadm_memcache_t *mc;
    seen_t *seen;
    char out[64];
    int port, fd = full_listener(&port);

    mc = client(p, apr_psprintf(p, "127.0.0.1:%d", port), timeout, 2);
    seen = watch(p, mc);
    assert_int_equal(get(mc, "k", out, sizeof(out), p), PEGADM_CACHE_TIMEOUT);
    assert_int_equal(set(mc, "k", V1, p), PEGADM_CACHE_TIMEOUT);
    assert_int_equal(add(mc, "k", V1, TTL, p), PEGADM_CACHE_TIMEOUT);
    assert_int_equal(seen->calls, 3);
    assert_string_equal(seen->last_op, "mark");
    assert_int_equal(seen->last_rv, PEGADM_CACHE_TIMEOUT);
    assert_true(seen->longest >= 0.25);
    assert_bounded(seen, timeout);
    close(fd);
}

typedef struct {
    pegadm_memcache_t *mc;
    apr_pool_t *p;
    apr_status_t rv;
} racer_t;

static void *APR_THREAD_FUNC race_get(apr_thread_t *t, void *data)
{
    racer_t *r = data;
    char out[64];
    apr_size_t len = sizeof(out);

    r->rv = pegadm_memcache_get(r->mc, "k", 1, (unsigned char *)out, &len, r->p);
    return NULL;
}

/* A hung server, three times more threads than connections: every thread
 * has its answer within the deadline, also those that waited for a
 * connection (TIMEOUT when they got one in time, else BUSY). */
static void test_waiting_for_a_connection_is_bounded(void **state)
{
    apr_pool_t *p = *state;
    apr_interval_time_t timeout = apr_time_from_sec(1);
    mcd_t m = {0};
    racer_t r[6];
    apr_thread_t *t[6];
    pegadm_memcache_t *mc;
    seen_t *seen;

    start(&m);
    mc = client(p, m.spec, timeout, 2);
    seen = watch(p, mc);
    mcd_signal(&m, SIGSTOP);
    for (int i = 0; i < 6; i++) {
        r[i] = (racer_t){mc, NULL, APR_SUCCESS};
        assert_int_equal(apr_pool_create(&r[i].p, p), APR_SUCCESS);
        assert_int_equal(apr_thread_create(&t[i], NULL, race_get, &r[i], p), APR_SUCCESS);
    }
    for (int i = 0; i < 6; i++) {
        apr_status_t rv;
        apr_thread_join(&rv, t[i]);
        if (r[i].rv != PEGADM_CACHE_TIMEOUT) {
            assert_int_equal(r[i].rv, PEGADM_CACHE_BUSY);
        }
    }
    assert_int_equal(seen->calls, 6);
    assert_bounded(seen, timeout);
    mcd_kill(&m);
}

/* A restart behind idle pooled connections fails at most one request. */
static void test_restart_fails_at_most_one_request(void **state)
{
    apr_pool_t *p = *state;
    mcd_t m = {0};
    racer_t r[4];
    apr_thread_t *t[4];
    pegadm_memcache_t *mc;
    seen_t *seen;
    apr_uint32_t connects;
    char out[64];

    start(&m);
    mc = client(p, m.spec, apr_time_from_sec(2), 4);
    assert_int_equal(set(mc, "k", V1, p), APR_SUCCESS);
    for (int i = 0; i < 4; i++) { /* a few connections into the pool */
        r[i] = (racer_t){mc, p, APR_SUCCESS};
        assert_int_equal(apr_thread_create(&t[i], NULL, race_get, &r[i], p), APR_SUCCESS);
    }
    for (int i = 0; i < 4; i++) {
        apr_status_t rv;
        apr_thread_join(&rv, t[i]);
        assert_int_equal(r[i].rv, APR_SUCCESS);
    }
    connects = pegadm_memcache_connects(mc);
    assert_true(connects >= 1 && connects <= 4);
    mcd_kill(&m);
    assert_int_equal(mcd_start(&m), 0); /* the same port */
    seen = watch(p, mc);
    for (int i = 0; i < 10; i++) {
        (void)get(mc, "k", out, sizeof(out), p);
        (void)set(mc, "k", V2, p);
    }
    assert_true(seen->failed <= 1);
    assert_int_equal(get(mc, "k", out, sizeof(out), p), APR_SUCCESS);
    assert_string_equal(out, (const char *)V2);
    /* one new connection served all 21 requests after the restart */
    assert_int_equal(pegadm_memcache_connects(mc), connects + 1);
    mcd_kill(&m);
}

/* ---- the preflight, and a fork ---- */

static void test_check_names_each_server(void **state)
{
    apr_pool_t *p = *state;
    mcd_t m[2] = {{0}, {0}};
    pegadm_memcache_server_check_t *r;
    pegadm_memcache_t *mc;
    int n;

    start(&m[0]);
    start(&m[1]);
    mc = client(p, spec_of(p, m, 2), apr_time_from_sec(2), 2);
    assert_int_equal(pegadm_memcache_check(mc, p, &r, &n), APR_SUCCESS);
    assert_int_equal(n, 2);
    for (int i = 0; i < 2; i++) {
        assert_string_equal(r[i].server, m[i].spec);
        assert_int_equal(r[i].rv, APR_SUCCESS);
        assert_non_null(r[i].version);
        assert_true(strchr(r[i].version, '.') != NULL);
    }
    mcd_kill(&m[0]);
    assert_int_equal(pegadm_memcache_check(mc, p, &r, &n), PEGADM_CACHE_REFUSED);
    assert_int_equal(r[0].rv, PEGADM_CACHE_REFUSED);
    assert_null(r[0].version);
    assert_int_equal(r[1].rv, APR_SUCCESS);
    mcd_kill(&m[1]);
}

/* A client used before a fork: the child makes connections of its own
 * and the parent's keep working. */
static void test_fork(void **state)
{
    apr_pool_t *p = *state;
    mcd_t m = {0};
    pegadm_memcache_t *mc;
    char out[64];
    pid_t child;
    int status = -1;

    start(&m);
    mc = client(p, m.spec, apr_time_from_sec(2), 2);
    assert_int_equal(set(mc, "k", V1, p), APR_SUCCESS);
    child = fork();
    if (child == 0) {
        int ok = get(mc, "k", out, sizeof(out), p) == APR_SUCCESS &&
                 set(mc, "c", V2, p) == APR_SUCCESS;
        _exit(ok ? 0 : 1);
    }
    assert_true(child > 0);
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(get(mc, "c", out, sizeof(out), p), APR_SUCCESS);
    assert_string_equal(out, (const char *)V2);
    assert_int_equal(get(mc, "k", out, sizeof(out), p), APR_SUCCESS);
    pegadm_memcache_destroy(mc);
    mcd_kill(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        POOL_TEST(test_get_set_del),
        POOL_TEST(test_add_and_del_if),
        POOL_TEST(test_expiry),
        POOL_TEST(test_bad_keys_refused_before_any_io),
        POOL_TEST(test_server_lists),
        POOL_TEST(test_ipv6_and_unix_socket),
        POOL_TEST(test_keys_spread_and_stay),
        POOL_TEST(test_killed_server_fails_only_its_keys),
        POOL_TEST(test_stopped_server_fails_only_its_keys),
        POOL_TEST(test_connect_that_never_completes),
        POOL_TEST(test_waiting_for_a_connection_is_bounded),
        POOL_TEST(test_restart_fails_at_most_one_request),
        POOL_TEST(test_check_names_each_server),
        POOL_TEST(test_fork),
    };

    apr_initialize();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
