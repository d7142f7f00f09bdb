/* The session store and the create mark over the Redis client, against a
 * real redis-server: the keys' layout (one hash slot per customer), expiry,
 * marks released only by their token, marks left by a cache writer (no
 * expiry, a foreign value, a forged lapse time) that block a customer for
 * no longer than the mark's TTL, and one create across two nodes. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <apr_strings.h>
#include <apr_thread_mutex.h>

#include "pegadm_bytes.h"
#include "pegadm_kvstore.h"
#include "pegadm_redis.h"
#include "redis_fixture.h"
#include "session_fixture.h"

#define WIDGET "0b6c3d52-5b7a-4c53-9a55-2f6f3c2d8e11"

static apr_pool_t *pool;
static int port;
static pegadm_keys_t keys;

static pegadm_kv_t redis_kv(void)
{
    static char host[64];
    static const char *hosts[1] = {host};
    pegadm_redis_conf_t conf = {.hosts = hosts,
                                .nhosts = 1,
                                .timeout = apr_time_from_sec(1),
                                .pool_max = 8,
                                .max_value = 4096};
    pegadm_redis_t *r = NULL;
    const char *why;

    snprintf(host, sizeof(host), "127.0.0.1:%d", port);
    assert_int_equal(pegadm_redis_create(&r, &conf, pool, &why), APR_SUCCESS);
    return pegadm_redis_kv(r);
}

/* A customer's key for purpose, with its tag. */
typedef struct {
    unsigned char id[PEGADM_CACHE_ID_LEN];
    unsigned char tag[PEGADM_CUSTOMER_TAG_LEN];
    pegadm_store_key_t key;
} customer_key_t;

static void customer_key(customer_key_t *k, const char *purpose, const char *customer)
{
    assert_int_equal(pegadm_cache_id(&keys, purpose, WIDGET, customer, k->id), APR_SUCCESS);
    pegadm_customer_tag(&keys, WIDGET, customer, k->tag);
    k->key = (pegadm_store_key_t){k->id, sizeof(k->id), k->tag, sizeof(k->tag)};
}

static void redis_cli(const char *args, char *out, size_t size)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "redis-cli -p %d %s", port, args);
    rf_sh_out(cmd, out, size);
}

static void keys_keep_a_customer_in_one_slot(void **state)
{
    pegadm_kv_t kv = redis_kv();
    pegadm_kvstore_t *ks = pegadm_kvstore_create(pool, &kv, "pegadm:", NULL, NULL, NULL);
    customer_key_t entry, mark, other;
    char k[256], m[256], args[300], out[64];
    unsigned char buf[64];
    unsigned int len = sizeof(buf);

    customer_key(&entry, "session", "alice");
    customer_key(&mark, "create-mark", "alice");
    customer_key(&other, "session", "bob");
    assert_true(pegadm_kvstore_key(ks, &entry.key, k, sizeof(k)) > 0);
    assert_true(pegadm_kvstore_key(ks, &mark.key, m, sizeof(m)) > 0);
    assert_int_equal(strncmp(k, "pegadm:{", 8), 0);
    assert_int_equal(strlen(k), 8 + 16 + 2 + 64);
    assert_int_equal(pegadm_redis_slot(k, strlen(k)), pegadm_redis_slot(m, strlen(m)));
    assert_int_equal(pegadm_kvstore_key(ks, &other.key, m, sizeof(m)), strlen(k));
    assert_string_not_equal(k, m);
    /* the entry, on the server under that key, expiring at its expiry */
    assert_int_equal(ks->store.put(ks, &entry.key, apr_time_now() + apr_time_from_sec(30),
                                   (const unsigned char *)"sealed", 6, pool),
                     APR_SUCCESS);
    snprintf(args, sizeof(args), "pttl '%s'", k);
    redis_cli(args, out, sizeof(out));
    assert_true(atoi(out) > 28000 && atoi(out) <= 30000);
    assert_int_equal(ks->store.get(ks, &entry.key, buf, &len, pool), APR_SUCCESS);
    assert_int_equal(len, 6);
    assert_memory_equal(buf, "sealed", 6);
    /* an expiry already past removes it */
    assert_int_equal(ks->store.put(ks, &entry.key, apr_time_now() - 1,
                                   (const unsigned char *)"old", 3, pool),
                     APR_SUCCESS);
    len = sizeof(buf);
    assert_int_equal(ks->store.get(ks, &entry.key, buf, &len, pool), APR_NOTFOUND);
    assert_int_equal(ks->store.put(ks, &entry.key, apr_time_now() + apr_time_from_sec(30),
                                   (const unsigned char *)"again", 5, pool),
                     APR_SUCCESS);
    assert_int_equal(ks->store.del(ks, &entry.key, pool), APR_SUCCESS);
    len = sizeof(buf);
    assert_int_equal(ks->store.get(ks, &entry.key, buf, &len, pool), APR_NOTFOUND);
}

static void a_value_no_entry_can_be_is_removed(void **state)
{
    pegadm_kv_t kv = redis_kv();
    pegadm_kvstore_t *ks = pegadm_kvstore_create(pool, &kv, "pegadm:", NULL, NULL, NULL);
    customer_key_t entry;
    char k[256], args[300], out[64];
    unsigned char buf[64];
    unsigned int len = sizeof(buf);

    customer_key(&entry, "session", "frank");
    pegadm_kvstore_key(ks, &entry.key, k, sizeof(k));
    snprintf(args, sizeof(args), "rpush '%s' a-list", k); /* another type */
    redis_cli(args, out, sizeof(out));
    assert_int_equal(ks->store.get(ks, &entry.key, buf, &len, pool), APR_SUCCESS);
    assert_int_equal(len, 0);
    len = sizeof(buf);
    assert_int_equal(ks->store.get(ks, &entry.key, buf, &len, pool), APR_NOTFOUND);
}

static void a_mark_is_released_only_by_its_token(void **state)
{
    pegadm_kv_t kv = redis_kv();
    pegadm_kvstore_t *ks = pegadm_kvstore_create(pool, &kv, "pegadm:", NULL, NULL, NULL);
    const unsigned char a[PEGADM_MARK_TOKEN_LEN] = "token a", b[PEGADM_MARK_TOKEN_LEN] = "b";
    apr_interval_time_t ttl = apr_time_from_sec(5);
    customer_key_t mark;
    char k[256], args[300], out[64];

    customer_key(&mark, "create-mark", "carol");
    assert_int_equal(ks->mark.take(ks, &mark.key, a, ttl, pool), APR_SUCCESS);
    assert_int_equal(ks->mark.take(ks, &mark.key, b, ttl, pool), APR_EEXIST);
    assert_int_equal(ks->mark.release(ks, &mark.key, b, pool), APR_NOTFOUND);
    assert_int_equal(ks->mark.take(ks, &mark.key, b, ttl, pool), APR_EEXIST);
    /* the server expires it: SET NX PX */
    pegadm_kvstore_key(ks, &mark.key, k, sizeof(k));
    snprintf(args, sizeof(args), "pttl '%s'", k);
    redis_cli(args, out, sizeof(out));
    assert_true(atoi(out) > 0 && atoi(out) <= 5000);
    assert_int_equal(ks->mark.release(ks, &mark.key, a, pool), APR_SUCCESS);
    assert_int_equal(ks->mark.release(ks, &mark.key, a, pool), APR_NOTFOUND);
    assert_int_equal(ks->mark.take(ks, &mark.key, b, ttl, pool), APR_SUCCESS);
    assert_int_equal(ks->mark.release(ks, &mark.key, b, pool), APR_SUCCESS);
}

/* Writes value under the mark's key with no expiry, as a cache writer
 * could (or a mark whose expiry was removed). */
static void leave_mark(pegadm_kvstore_t *ks, const customer_key_t *mark,
                       const unsigned char *value, apr_size_t len)
{
    char k[256], args[300], out[64];

    pegadm_kvstore_key(ks, &mark->key, k, sizeof(k));
    assert_int_equal(
        ks->kv.set(ks->kv.ctx, k, strlen(k), value, len, apr_time_from_sec(60), pool),
        APR_SUCCESS);
    snprintf(args, sizeof(args), "persist '%s'", k);
    redis_cli(args, out, sizeof(out));
    assert_string_equal(out, "1");
}

static void a_mark_left_behind_blocks_for_at_most_its_ttl(void **state)
{
    pegadm_kv_t kv = redis_kv();
    pegadm_kvstore_t *ks = pegadm_kvstore_create(pool, &kv, "pegadm:", NULL, NULL, NULL);
    const unsigned char mine[PEGADM_MARK_TOKEN_LEN] = "mine";
    apr_interval_time_t ttl = apr_time_from_sec(1);
    unsigned char left[PEGADM_KVSTORE_MARK_LEN] = "someone else's";
    customer_key_t mark;
    apr_time_t began;
    int taken = 0;

    customer_key(&mark, "create-mark", "dave");
    /* a foreign value without expiry: not a mark, taken over at once */
    leave_mark(ks, &mark, (const unsigned char *)"1", 1);
    assert_int_equal(ks->mark.take(ks, &mark.key, mine, ttl, pool), APR_SUCCESS);
    assert_int_equal(ks->mark.release(ks, &mark.key, mine, pool), APR_SUCCESS);
    /* a mark that claims to last an hour: no mark of a TTL this short */
    pegadm_put_be(left + PEGADM_MARK_TOKEN_LEN,
                  (apr_uint64_t)(apr_time_now() + apr_time_from_sec(3600)), 8);
    leave_mark(ks, &mark, left, sizeof(left));
    assert_int_equal(ks->mark.take(ks, &mark.key, mine, ttl, pool), APR_SUCCESS);
    assert_int_equal(ks->mark.release(ks, &mark.key, mine, pool), APR_SUCCESS);
    /* a real mark without expiry: held until the time it names, no later */
    began = apr_time_now();
    pegadm_put_be(left + PEGADM_MARK_TOKEN_LEN, (apr_uint64_t)(began + ttl), 8);
    leave_mark(ks, &mark, left, sizeof(left));
    assert_int_equal(ks->mark.take(ks, &mark.key, mine, ttl, pool), APR_EEXIST);
    for (int i = 0; i < 100 && !taken; i++) {
        apr_status_t rv = ks->mark.take(ks, &mark.key, mine, ttl, pool);
        assert_true(rv == APR_SUCCESS || rv == APR_EEXIST);
        taken = rv == APR_SUCCESS;
        if (!taken) {
            apr_sleep(apr_time_from_msec(50));
        }
    }
    assert_true(taken);
    assert_true(apr_time_now() - began >= ttl);
    assert_true(apr_time_now() - began < ttl + apr_time_from_msec(500));
}

/* ---- the session flow over two nodes sharing the server ---- */

static apr_thread_mutex_t *node_mutex[2];
static apr_thread_mutex_t *creates_lock;
static int creates;

static apr_status_t node_lock(void *m)
{
    return apr_thread_mutex_lock(m);
}

static apr_status_t node_unlock(void *m)
{
    return apr_thread_mutex_unlock(m);
}

static apr_status_t slow_create(void *baton, apr_pool_t *p, const char **sid, const char **why,
                                apr_time_t *held_until)
{
    int n;
    apr_thread_mutex_lock(creates_lock);
    n = ++creates;
    apr_thread_mutex_unlock(creates_lock);
    apr_sleep(apr_time_from_msec(200));
    *sid = apr_psprintf(p, "sess-%d", n);
    return APR_SUCCESS;
}

static void two_nodes_make_one_create(void **state)
{
    pegadm_kvstore_t *nodes[2];
    session_job_t jobs[SESSION_JOBS_MAX];

    for (int i = 0; i < 2; i++) {
        pegadm_kv_t kv = redis_kv(); /* a client per node, as per process */
        apr_thread_mutex_create(&node_mutex[i], APR_THREAD_MUTEX_DEFAULT, pool);
        nodes[i] =
            pegadm_kvstore_create(pool, &kv, "pegadm:", node_lock, node_unlock, node_mutex[i]);
    }
    apr_thread_mutex_create(&creates_lock, APR_THREAD_MUTEX_DEFAULT, pool);
    for (int i = 0; i < SESSION_JOBS_MAX; i++) {
        pegadm_kvstore_t *ks = nodes[i % 2];
        jobs[i].call = session_request(&ks->store, &keys, "erin", slow_create, NULL);
        jobs[i].call.mark = &ks->mark;
    }
    session_jobs_run(jobs, SESSION_JOBS_MAX, pool);
    assert_int_equal(creates, 1);
    for (int i = 0; i < SESSION_JOBS_MAX; i++) {
        assert_int_equal(jobs[i].status, PEGADM_SESSION_OK);
        assert_string_equal(jobs[i].res.session_id, "sess-1");
        free((void *)jobs[i].res.session_id);
    }
}

static int start_redis(void **state)
{
    if (!rf_have("redis-server")) {
        return -1;
    }
    port = rf_free_port(AF_INET);
    rf_redis(port, NULL);
    return 0;
}

static int stop_redis(void **state)
{
    rf_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keys_keep_a_customer_in_one_slot),
        cmocka_unit_test(a_value_no_entry_can_be_is_removed),
        cmocka_unit_test(a_mark_is_released_only_by_its_token),
        cmocka_unit_test(a_mark_left_behind_blocks_for_at_most_its_ttl),
        cmocka_unit_test(two_nodes_make_one_create),
    };
    const char secret[] = "correct horse battery staple, 40 bytes!!";
    int failed;

    signal(SIGPIPE, SIG_DFL);
    apr_initialize();
    apr_pool_create(&pool, NULL);
    pegadm_keys_derive(&keys, (const unsigned char *)secret, strlen(secret));
    failed = cmocka_run_group_tests(tests, start_redis, stop_redis);
    pegadm_keys_release(&keys);
    apr_pool_destroy(pool);
    apr_terminate();
    return failed;
}
