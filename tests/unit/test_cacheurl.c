/* PegaDMCache's value and the shared cache directives beside it: every
 * form the module accepts, what it refuses and how it says so. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "pegadm_test_pool.h"

#include <string.h>

#include "pegadm_cacheurl.h"

static pegadm_cache_url_t *parse_ok(apr_pool_t *p, const char *arg)
{
    pegadm_cache_url_t *u = NULL;
    const char *err = pegadm_cacheurl_parse(p, "PegaDMCache", arg, &u);

    if (err) {
        fail_msg("%s: %s", arg, err);
    }
    return u;
}

/* The refusal's message, which must contain `want`. */
static void refused(apr_pool_t *p, const char *arg, const char *want)
{
    pegadm_cache_url_t *u = NULL;
    const char *err = pegadm_cacheurl_parse(p, "PegaDMCache", arg, &u);

    if (!err) {
        fail_msg("%s was accepted", arg);
    }
    assert_int_equal(strncmp(err, "PegaDMCache: ", 13), 0);
    if (!strstr(err, want)) {
        fail_msg("%s: '%s' does not say '%s'", arg, err, want);
    }
}

static void test_redis_forms(void **state)
{
    pegadm_cache_url_t *u = parse_ok(*state, "redis://cache.example");

    assert_int_equal(u->kind, PEGADM_CACHE_REDIS);
    assert_false(u->tls || u->legacy || u->db);
    assert_int_equal(u->nhosts, 1);
    assert_string_equal(u->hosts[0].host, "cache.example");
    assert_int_equal(u->hosts[0].port, 6379);

    u = parse_ok(*state, "REDISS://10.1.2.3:6380/3");
    assert_true(u->tls);
    assert_int_equal(u->db, 3);
    assert_int_equal(u->hosts[0].port, 6380);
    assert_string_equal(pegadm_cacheurl_describe(*state, u), "rediss://10.1.2.3:6380/3");

    u = parse_ok(*state, "redis://[::1]:7000/");
    assert_string_equal(u->hosts[0].host, "::1");
    assert_int_equal(u->db, 0);
    assert_string_equal(pegadm_cacheurl_describe(*state, u), "redis://[::1]:7000");
}

static void test_cluster_seeds(void **state)
{
    pegadm_cache_url_t *u =
        parse_ok(*state, "rediss://a.example:7000,b.example,[2001:db8::5]:7002/0");

    assert_int_equal(u->nhosts, 3);
    assert_int_equal(u->hosts[1].port, 6379);
    assert_string_equal(u->hosts[2].host, "2001:db8::5");
    assert_string_equal(pegadm_cacheurl_describe(*state, u),
                        "rediss://a.example:7000,b.example:6379,[2001:db8::5]:7002");
    refused(*state, "redis://a:7000,b:7001/3", "database 0 only");
}

static void test_memcache_forms(void **state)
{
    pegadm_cache_url_t *u = parse_ok(*state, "memcache://m1,m2:11300,[::1]");

    assert_int_equal(u->kind, PEGADM_CACHE_MEMCACHE);
    assert_int_equal(u->nhosts, 3);
    assert_int_equal(u->hosts[0].port, 11211);
    assert_int_equal(u->hosts[1].port, 11300);
    assert_int_equal(u->hosts[2].port, 11211);
    refused(*state, "memcache://m1/3", "no databases");
}

static void test_unix_sockets(void **state)
{
    pegadm_cache_url_t *u = parse_ok(*state, "redis:///run/redis/redis.sock?db=2");

    assert_string_equal(u->hosts[0].host, "/run/redis/redis.sock");
    assert_int_equal(u->hosts[0].port, 0);
    assert_int_equal(u->db, 2);
    assert_string_equal(pegadm_cacheurl_describe(*state, u),
                        "redis:///run/redis/redis.sock?db=2");
    u = parse_ok(*state, "memcache:///run/memcached/memcached.sock");
    assert_int_equal(u->hosts[0].port, 0);
    refused(*state, "rediss:///run/redis.sock", "not offered on a unix socket");
    refused(*state, "memcache:///run/m.sock?db=1", "only for Redis");
    refused(*state, "redis:///run/", "no socket path");
}

static void test_earlier_forms(void **state)
{
    pegadm_cache_url_t *u = parse_ok(*state, "redis:127.0.0.1:6390");

    assert_int_equal(u->kind, PEGADM_CACHE_REDIS);
    assert_true(u->legacy);
    assert_int_equal(u->hosts[0].port, 6390);
    assert_string_equal(pegadm_cacheurl_describe(*state, u), "redis://127.0.0.1:6390");
    u = parse_ok(*state, "memcache:h1:11211,h2");
    assert_int_equal(u->kind, PEGADM_CACHE_MEMCACHE);
    assert_int_equal(u->nhosts, 2);
    assert_string_equal(pegadm_cacheurl_describe(*state, u), "memcache://h1:11211,h2:11211");
    refused(*state, "rediss:cache:6380", "rediss://host");
    refused(*state, "redis:/run/redis.sock", "redis:///path");
}

static void test_socache_untouched(void **state)
{
    pegadm_cache_url_t *u = parse_ok(*state, "shmcb:/var/cache/pegadm(512000)");

    assert_int_equal(u->kind, PEGADM_CACHE_SOCACHE);
    assert_string_equal(u->provider, "shmcb");
    assert_string_equal(u->args, "/var/cache/pegadm(512000)");
    u = parse_ok(*state, "shmcb");
    assert_null(u->args);
    assert_int_equal(u->nhosts, 0);
}

static void test_refusals(void **state)
{
    refused(*state, "redis://h:0", "1 to 65535");
    refused(*state, "redis://h:65536", "1 to 65535");
    refused(*state, "redis://h:6379x", "1 to 65535");
    refused(*state, "redis://h/65536", "from 0 to 65535");
    refused(*state, "redis://h/-1", "from 0 to 65535");
    refused(*state, "redis://::1:6379", "brackets");
    refused(*state, "redis://[::1:6379", "does not close");
    refused(*state, "redis://[::g]:6379", "no IPv6 address");
    refused(*state, "redis://a,,b", "empty host");
    refused(*state, "redis://a:1,A:1", "named twice");
    refused(*state, "redis://h?db=1", "no query");
    refused(*state, "redis://", "empty host");
    refused(*state, "redis:", "names no server");
    refused(*state, "memcache://bad host", "no host name");
    refused(*state, "", "empty value");
}

/* A password written into the value is refused without being repeated:
 * start-up errors go to the console and the error log. */
static void test_credentials_never_echoed(void **state)
{
    const char *values[] = {"rediss://default:Sup3rSecret@cache:6380",
                            "redis://Sup3rSecret@cache", "redis:user:Sup3rSecret@cache:6379"};

    for (unsigned i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        pegadm_cache_url_t *u = NULL;
        const char *err = pegadm_cacheurl_parse(*state, "PegaDMCache", values[i], &u);
        assert_non_null(err);
        assert_null(strstr(err, "Sup3rSecret"));
        assert_non_null(strstr(err, "PegaDMCachePasswordFile"));
    }
}

static const char *options(apr_pool_t *p, const char *arg, pegadm_cache_opts_set_t set)
{
    return pegadm_cacheurl_check_options(p, parse_ok(p, arg), &set);
}

static void test_option_combinations(void **state)
{
    apr_pool_t *p = *state;
    const pegadm_cache_opts_set_t none = {0}, ca = {.ca_file = 1}, cert = {.cert_file = 1},
                                  both = {.cert_file = 1, .key_file = 1}, pw = {.password = 1},
                                  user = {.user = 1},
                                  twice = {.password = 1, .password_file = 1},
                                  full = {.user = 1,
                                          .password_file = 1,
                                          .ca_file = 1,
                                          .cert_file = 1,
                                          .key_file = 1};

    assert_null(options(p, "shmcb", none));
    assert_null(options(p, "rediss://h", full));
    assert_null(options(p, "redis://h/3", pw));
    assert_null(options(p, "memcache://a,b", none));
    assert_int_equal(strncmp(options(p, "memcache://a", pw), "PegaDMCachePassword:", 20), 0);
    assert_int_equal(strncmp(options(p, "memcache://a", ca), "PegaDMCacheCAFile:", 18), 0);
    assert_int_equal(
        strncmp(options(p, "redis://h", ca), "PegaDMCacheCAFile: only for rediss", 34), 0);
    assert_int_equal(strncmp(options(p, "redis://h", both), "PegaDMCacheCertificateFile:", 27),
                     0);
    assert_int_equal(strncmp(options(p, "shmcb", user), "PegaDMCacheUser: only for", 25), 0);
    assert_int_equal(strncmp(options(p, "rediss://h", cert),
                             "PegaDMCacheCertificateFile: needs "
                             "PegaDMCacheKeyFile",
                             52),
                     0);
    assert_int_equal(strncmp(options(p, "rediss://h", user), "PegaDMCacheUser: needs", 22), 0);
    assert_int_equal(strncmp(options(p, "rediss://h", twice), "PegaDMCachePasswordFile:", 24),
                     0);
}

static void test_timeout(void **state)
{
    apr_interval_time_t t = 0;
    const char *bad[] = {"0",      "0.009", "60.001", "61", ".5", "1.",
                         "1.0000", "-1",    "1s",     "",   "0x1"};

    assert_null(pegadm_cacheurl_parse_timeout(*state, "PegaDMCacheTimeout", "0.25", &t));
    assert_int_equal(t, apr_time_from_msec(250));
    assert_null(pegadm_cacheurl_parse_timeout(*state, "PegaDMCacheTimeout", "2", &t));
    assert_int_equal(t, apr_time_from_sec(2));
    assert_null(pegadm_cacheurl_parse_timeout(*state, "PegaDMCacheTimeout", "0.5", &t));
    assert_int_equal(t, apr_time_from_msec(500));
    assert_null(pegadm_cacheurl_parse_timeout(*state, "PegaDMCacheTimeout", "60.000", &t));
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *err =
            pegadm_cacheurl_parse_timeout(*state, "PegaDMCacheTimeout", bad[i], &t);
        if (!err) {
            fail_msg("'%s' was accepted", bad[i]);
        }
        assert_int_equal(strncmp(err, "PegaDMCacheTimeout: ", 20), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        POOL_TEST(test_redis_forms),
        POOL_TEST(test_cluster_seeds),
        POOL_TEST(test_memcache_forms),
        POOL_TEST(test_unix_sockets),
        POOL_TEST(test_earlier_forms),
        POOL_TEST(test_socache_untouched),
        POOL_TEST(test_refusals),
        POOL_TEST(test_credentials_never_echoed),
        POOL_TEST(test_option_combinations),
        POOL_TEST(test_timeout),
    };

    apr_initialize();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
