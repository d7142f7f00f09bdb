/* The shared cache as the glue uses it: the client PegaDMCache names, each
 * operation counted, several Redis hosts that are no cluster refused, the
 * preflight naming the server at fault, the password file, and failures
 * logged once a minute. Real redis-server and memcached on loopback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "pegadm_test_pool.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <apr_strings.h>

#include "memcached_procs.h"
#include "pegadm_memcache.h"
#include "pegadm_sharedcache.h"
#include "redis_fixture.h"

static pegadm_shared_t *open_ok(apr_pool_t *p, const char *value, apr_interval_time_t timeout)
{
    pegadm_cache_url_t *url = NULL;
    pegadm_shared_conf_t conf = {.timeout = timeout, .pool_max = 4, .max_value = 65536};
    pegadm_shared_t *s = NULL;
    const char *why = NULL;

    assert_null(pegadm_cacheurl_parse(p, "PegaDMCache", value, &url));
    conf.url = url;
    if (pegadm_shared_open(p, &conf, &s, &why) != APR_SUCCESS) {
        fail_msg("%s: %s", value, why);
    }
    return s;
}

static pegadm_metrics_t *metrics(apr_pool_t *p)
{
    apr_size_t size = pegadm_metrics_size(2, 1);
    pegadm_metrics_t *m = pegadm_metrics_init(apr_palloc(p, size), size, 2, 1);

    pegadm_metrics_set_cache_kind(m, "redis");
    return m;
}

static int alive(apr_uint32_t pid)
{
    return pid == 1;
}

static void redis_operations_are_counted(void **state)
{
    apr_pool_t *p = *state;
    int port = rf_free_port(AF_INET);
    pid_t pid = rf_redis(port, NULL);
    pegadm_shared_t *s =
        open_ok(p, apr_psprintf(p, "redis://127.0.0.1:%d/2", port), apr_time_from_sec(1));
    pegadm_metrics_t *m = metrics(p);
    apr_uint64_t c[PEGADM_CACHE_COUNTERS];
    pegadm_kv_t kv = pegadm_shared_kv(s);
    unsigned char buf[16];
    apr_size_t len = sizeof(buf);
    pegadm_shared_finding_t found;

    pegadm_shared_count(s, m, pegadm_metrics_claim_slot(m, 1, alive));
    assert_int_equal(
        kv.set(kv.ctx, "k", 1, (const unsigned char *)"v", 1, apr_time_from_sec(9), p),
        APR_SUCCESS);
    assert_int_equal(kv.get(kv.ctx, "k", 1, buf, &len, p), APR_SUCCESS);
    assert_int_equal(
        kv.add(kv.ctx, "k", 1, (const unsigned char *)"w", 1, apr_time_from_sec(9), p),
        APR_EEXIST);
    assert_int_equal(kv.del(kv.ctx, "k", 1, p), APR_SUCCESS);
    pegadm_metrics_cache_totals(m, c);
    for (int op = 0; op < PEGADM_CACHE_OPS; op++) {
        apr_uint64_t n = 0;
        for (int i = 0; i <= PEGADM_CACHE_BUCKETS; i++) {
            n += c[PEGADM_CACHE_HISTOGRAM(op) + i];
        }
        assert_int_equal(n, 1);
    }
    assert_int_equal(pegadm_metrics_cache_up(m), 1);
    assert_int_equal(pegadm_shared_check(s, p, &found), APR_SUCCESS);
    assert_int_equal(found.cluster, 0);
    rf_stop(pid);
    len = sizeof(buf);
    assert_int_equal(kv.get(kv.ctx, "k", 1, buf, &len, p), PEGADM_CACHE_REFUSED);
    assert_int_equal(pegadm_metrics_cache_up(m), 0);
    assert_int_equal(pegadm_shared_check(s, p, &found), PEGADM_CACHE_REFUSED);
    assert_string_equal(found.where, apr_psprintf(p, "127.0.0.1:%d", port));
}

/* Two servers that each run alone: no key may go to one node's idea of a
 * server, so nothing is used and the check says why. */
static void several_redis_hosts_must_be_a_cluster(void **state)
{
    apr_pool_t *p = *state;
    int a = rf_free_port(AF_INET), b = rf_free_port(AF_INET);
    pid_t pa = rf_redis(a, NULL), pb = rf_redis(b, NULL);
    pegadm_shared_t *s = open_ok(p, apr_psprintf(p, "redis://127.0.0.1:%d,127.0.0.1:%d", a, b),
                                 apr_time_from_sec(1));
    pegadm_kv_t kv = pegadm_shared_kv(s);
    unsigned char buf[16];
    apr_size_t len = sizeof(buf);
    pegadm_shared_finding_t found;
    char out[64];

    assert_int_equal(
        kv.set(kv.ctx, "k", 1, (const unsigned char *)"v", 1, apr_time_from_sec(9), p),
        PEGADM_CACHE_NOT_CLUSTER);
    assert_int_equal(kv.get(kv.ctx, "k", 1, buf, &len, p), PEGADM_CACHE_NOT_CLUSTER);
    assert_int_equal(pegadm_shared_check(s, p, &found), PEGADM_CACHE_NOT_CLUSTER);
    assert_non_null(strstr(found.detail, "without cluster mode"));
    assert_string_equal(pegadm_cache_err_name(PEGADM_CACHE_NOT_CLUSTER), "not_cluster");
    rf_sh_out(apr_psprintf(p, "redis-cli -p %d DBSIZE", a), out, sizeof(out));
    assert_string_equal(out, "0");
    rf_stop(pa);
    rf_stop(pb);
}

static void memcached_check_names_the_server_at_fault(void **state)
{
    apr_pool_t *p = *state;
    mcd_t one = {0}, two = {0};
    pegadm_shared_t *s;
    pegadm_kv_t kv;
    pegadm_shared_finding_t found;

    if (!mcd_available() || mcd_start(&one) != 0 || mcd_start(&two) != 0) {
        fail_msg("memcached did not start");
    }
    s = open_ok(p, apr_psprintf(p, "memcache://127.0.0.1:%d,127.0.0.1:%d", one.port, two.port),
                apr_time_from_msec(500));
    kv = pegadm_shared_kv(s);
    assert_int_equal(
        kv.add(kv.ctx, "m", 1, (const unsigned char *)"1", 1, apr_time_from_sec(5), p),
        APR_SUCCESS);
    assert_int_equal(pegadm_shared_check(s, p, &found), APR_SUCCESS);
    mcd_kill(&two);
    assert_int_not_equal(pegadm_shared_check(s, p, &found), APR_SUCCESS);
    assert_string_equal(found.where, apr_psprintf(p, "127.0.0.1:%d", two.port));
    mcd_kill(&one);
}

static apr_uint64_t operations_seen(pegadm_metrics_t *m)
{
    apr_uint64_t c[PEGADM_CACHE_COUNTERS], n = 0;

    pegadm_metrics_cache_totals(m, c);
    for (int op = 0; op < PEGADM_CACHE_OPS; op++) {
        for (int i = 0; i <= PEGADM_CACHE_BUCKETS; i++) {
            n += c[PEGADM_CACHE_HISTOGRAM(op) + i];
        }
    }
    return n;
}

/* A hung server costs one deadline: the next operations fail at once with
 * the same cause, without asking it, until the window ends. */
static void a_hung_redis_fails_the_next_operations_at_once(void **state)
{
    apr_pool_t *p = *state;
    int port = rf_free_port(AF_INET);
    pid_t pid = rf_redis(port, NULL);
    pegadm_shared_t *s =
        open_ok(p, apr_psprintf(p, "redis://127.0.0.1:%d", port), apr_time_from_msec(300));
    pegadm_metrics_t *m = metrics(p);
    pegadm_kv_t kv = pegadm_shared_kv(s);
    unsigned char buf[16];
    apr_size_t len = sizeof(buf);
    apr_uint64_t seen;

    pegadm_shared_count(s, m, pegadm_metrics_claim_slot(m, 1, alive));
    assert_int_equal(
        kv.set(kv.ctx, "k", 1, (const unsigned char *)"v", 1, apr_time_from_sec(9), p),
        APR_SUCCESS);
    kill(pid, SIGSTOP);
    assert_int_equal(kv.get(kv.ctx, "k", 1, buf, &len, p), PEGADM_CACHE_TIMEOUT);
    seen = operations_seen(m);
    assert_int_equal(kv.get(kv.ctx, "k", 1, buf, &len, p), PEGADM_CACHE_TIMEOUT);
    assert_int_equal(kv.del(kv.ctx, "k", 1, p), PEGADM_CACHE_TIMEOUT);
    assert_int_equal(operations_seen(m), seen); /* the server was not asked */
    kill(pid, SIGCONT);
    apr_sleep(apr_time_from_msec(350)); /* the window ends */
    len = sizeof(buf);
    assert_int_equal(kv.get(kv.ctx, "k", 1, buf, &len, p), APR_SUCCESS);
    assert_int_equal(operations_seen(m), seen + 1);
    rf_stop(pid);
}

/* memcached: only the keys of the server that failed fail at once. */
static void a_dead_memcached_fails_only_its_keys_at_once(void **state)
{
    apr_pool_t *p = *state;
    mcd_t one = {0}, two = {0};
    pegadm_shared_t *s;
    pegadm_kv_t kv;
    char key[16];
    int dead = 0, alive_keys = 0;

    if (mcd_start(&one) != 0 || mcd_start(&two) != 0) {
        fail_msg("memcached did not start");
    }
    s = open_ok(p, apr_psprintf(p, "memcache://127.0.0.1:%d,127.0.0.1:%d", one.port, two.port),
                apr_time_from_sec(1));
    kv = pegadm_shared_kv(s);
    mcd_kill(&two);
    for (int i = 0; i < 40; i++) {
        apr_status_t first, again;
        snprintf(key, sizeof(key), "key-%d", i);
        first = kv.set(kv.ctx, key, strlen(key), (const unsigned char *)"v", 1,
                       apr_time_from_sec(9), p);
        again = kv.set(kv.ctx, key, strlen(key), (const unsigned char *)"v", 1,
                       apr_time_from_sec(9), p);
        assert_int_equal(first, again);
        dead += first != APR_SUCCESS;
        alive_keys += first == APR_SUCCESS;
    }
    assert_true(dead > 0 && alive_keys > 0);
    mcd_kill(&one);
}

/* A customer's keys carry one "{tag}": they share a memcached server, so
 * that a server down fails its customers whole, never half of one. */
static void keys_of_one_tag_share_a_memcached(void **state)
{
    apr_pool_t *p = *state;
    pegadm_memcache_t *mc = NULL;
    const char *why = NULL;
    int apart = 0;

    assert_int_equal(pegadm_memcache_create(p, "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3",
                                            apr_time_from_sec(1), 1, &mc, &why),
                     APR_SUCCESS);
    for (int t = 0; t < 50; t++) {
        const char *a = apr_psprintf(p, "pegadm:{%08x}:aa", t * 7919);
        const char *b = apr_psprintf(p, "pegadm:{%08x}:bbbbbb", t * 7919);
        assert_string_equal(pegadm_memcache_server_of(mc, a, strlen(a)),
                            pegadm_memcache_server_of(mc, b, strlen(b)));
        apart += strcmp(pegadm_memcache_server_of(mc, a, strlen(a)),
                        pegadm_memcache_server_of(mc, "pegadm:{00000000}:aa", 20)) != 0;
    }
    assert_true(apart > 0); /* tags still spread over the servers */
}

static void the_password_file(void **state)
{
    apr_pool_t *p = *state;
    const char *path = rf_path("password"), *pw = NULL, *err;
    int exposed = -1;
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs("s3cret-Pass\r\nsecond line\n", f);
    fclose(f);
    chmod(path, 0600);
    assert_null(pegadm_shared_read_password(p, path, &pw, &exposed));
    assert_string_equal(pw, "s3cret-Pass");
    assert_int_equal(exposed, 0);
    chmod(path, 0640);
    assert_null(pegadm_shared_read_password(p, path, &pw, &exposed));
    assert_int_equal(exposed, 1);
    f = fopen(path, "w");
    fputs("\n", f);
    fclose(f);
    err = pegadm_shared_read_password(p, path, &pw, &exposed);
    assert_non_null(err);
    assert_non_null(strstr(err, path));
    err = pegadm_shared_read_password(p, rf_path("missing"), &pw, &exposed);
    assert_non_null(err);
    assert_non_null(strstr(err, "PegaDMCachePasswordFile: cannot read"));
}

static void failures_are_logged_once_a_minute(void **state)
{
    apr_pool_t *p = *state;
    pegadm_shared_t *s = open_ok(p, "memcache://127.0.0.1:1", apr_time_from_msec(100));
    apr_time_t t = apr_time_from_sec(1000);

    assert_true(pegadm_shared_log_due(s, t));
    assert_false(pegadm_shared_log_due(s, t + apr_time_from_sec(59)));
    assert_true(pegadm_shared_log_due(s, t + apr_time_from_sec(60)));
    assert_false(pegadm_shared_log_due(s, t + apr_time_from_sec(61)));
}

static void not_for_a_socache_provider(void **state)
{
    pegadm_cache_url_t *url = NULL;
    pegadm_shared_conf_t conf = {.timeout = apr_time_from_sec(1)};
    pegadm_shared_t *s = NULL;
    const char *why = NULL;

    assert_null(pegadm_cacheurl_parse(*state, "PegaDMCache", "shmcb", &url));
    conf.url = url;
    assert_int_equal(pegadm_shared_open(*state, &conf, &s, &why), APR_EINVAL);
    assert_non_null(why);
}

static int servers_available(void **state)
{
    return rf_have("redis-server") && rf_have("redis-cli") ? 0 : -1;
}

static int servers_cleanup(void **state)
{
    rf_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        POOL_TEST(redis_operations_are_counted),
        POOL_TEST(several_redis_hosts_must_be_a_cluster),
        POOL_TEST(memcached_check_names_the_server_at_fault),
        POOL_TEST(a_hung_redis_fails_the_next_operations_at_once),
        POOL_TEST(a_dead_memcached_fails_only_its_keys_at_once),
        POOL_TEST(keys_of_one_tag_share_a_memcached),
        POOL_TEST(the_password_file),
        POOL_TEST(failures_are_logged_once_a_minute),
        POOL_TEST(not_for_a_socache_provider),
    };

    signal(SIGPIPE, SIG_DFL); /* the clients must never raise it */
    apr_initialize();
    return cmocka_run_group_tests(tests, servers_available, servers_cleanup);
}
