/* The Redis/Valkey client against real redis-server processes on loopback
 * (plain, password, ACL user, TLS, SELECT, IPv6, a unix socket, a cluster)
 * and a fake server for the error replies: each operation's answer, each
 * failure's cause, and the deadline kept when the server hangs. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <apr_strings.h>

#include "pegadm_redis.h"
#include "pegadm_test_pool.h"
#include "redis_fixture.h"
#include "proc_state.h"

#define TIMEOUT apr_time_from_msec(500)
/* the bound the issue sets on a hung cache: the deadline plus a margin */
#define HUNG_BOUND (TIMEOUT + apr_time_from_sec(2))

static pegadm_redis_conf_t conf_for(const char *host)
{
    static const char *hosts[1];

    hosts[0] = host;
    return (pegadm_redis_conf_t){
        .hosts = hosts, .nhosts = 1, .timeout = TIMEOUT, .pool_max = 4, .max_value = 65536};
}

static pegadm_redis_t *client(apr_pool_t *p, const pegadm_redis_conf_t *conf)
{
    pegadm_redis_t *r = NULL;
    const char *why = NULL;

    assert_int_equal(pegadm_redis_create(&r, conf, p, &why), APR_SUCCESS);
    return r;
}

static const char *at(int port)
{
    static char buf[4][64];
    static int next;
    char *out = buf[next++ % 4];
    snprintf(out, sizeof(buf[0]), "127.0.0.1:%d", port);
    return out;
}

static apr_status_t put(pegadm_redis_t *r, const char *key, const char *val, apr_pool_t *p)
{
    return pegadm_redis_set(r, key, strlen(key), (const unsigned char *)val, strlen(val),
                            apr_time_from_sec(60), p);
}

/* GET key into a string ("" when absent); the status. */
static apr_status_t fetch(pegadm_redis_t *r, const char *key, char *out, apr_size_t size,
                          apr_pool_t *p)
{
    apr_size_t len = size - 1;
    apr_status_t rv = pegadm_redis_get(r, key, strlen(key), (unsigned char *)out, &len, p);

    out[rv == APR_SUCCESS ? len : 0] = '\0';
    return rv;
}

static void assert_round_trip(pegadm_redis_t *r, apr_pool_t *p)
{
    char got[64];

    assert_int_equal(put(r, "k", "value", p), APR_SUCCESS);
    assert_int_equal(fetch(r, "k", got, sizeof(got), p), APR_SUCCESS);
    assert_string_equal(got, "value");
}

/* ---- the operations ---- */

static void operations_answer_as_the_kv_interface_says(void **state)
{
    apr_pool_t *p = *state;
    int port = rf_free_port(AF_INET);
    pid_t pid = rf_redis(port, NULL);
    pegadm_redis_conf_t conf = conf_for(at(port));
    pegadm_redis_t *r = client(p, &conf);
    const unsigned char bin[] = {'a', 0, '\r', '\n', 0xff};
    unsigned char buf[16];
    apr_size_t len = sizeof(buf);
    char got[64];

    assert_int_equal(fetch(r, "absent", got, sizeof(got), p), APR_NOTFOUND);
    assert_round_trip(r, p);
    /* binary keys and values */
    assert_int_equal(pegadm_redis_set(r, "b\0\r\n", 4, bin, sizeof(bin), 1000000, p),
                     APR_SUCCESS);
    assert_int_equal(pegadm_redis_get(r, "b\0\r\n", 4, buf, &len, p), APR_SUCCESS);
    assert_int_equal(len, sizeof(bin));
    assert_memory_equal(buf, bin, sizeof(bin));
    /* a value larger than the buffer is refused, not cut */
    len = 2;
    assert_int_equal(pegadm_redis_get(r, "k", 1, buf, &len, p), PEGADM_CACHE_PROTOCOL);
    assert_round_trip(r, p);
    assert_int_equal(pegadm_redis_del(r, "k", 1, p), APR_SUCCESS);
    assert_int_equal(pegadm_redis_del(r, "k", 1, p), APR_SUCCESS);
    assert_int_equal(fetch(r, "k", got, sizeof(got), p), APR_NOTFOUND);
    /* add: only when absent; del_if: only the same value */
    assert_int_equal(pegadm_redis_add(r, "m", 1, (const unsigned char *)"t1", 2, 1000000, p),
                     APR_SUCCESS);
    assert_int_equal(pegadm_redis_add(r, "m", 1, (const unsigned char *)"t2", 2, 1000000, p),
                     APR_EEXIST);
    assert_int_equal(pegadm_redis_del_if(r, "m", 1, (const unsigned char *)"t2", 2, p),
                     APR_NOTFOUND);
    assert_int_equal(fetch(r, "m", got, sizeof(got), p), APR_SUCCESS);
    assert_string_equal(got, "t1");
    assert_int_equal(pegadm_redis_del_if(r, "m", 1, (const unsigned char *)"t1", 2, p),
                     APR_SUCCESS);
    assert_int_equal(pegadm_redis_del_if(r, "m", 1, (const unsigned char *)"t1", 2, p),
                     APR_NOTFOUND);
    assert_int_equal(pegadm_redis_add(r, "m", 1, (const unsigned char *)"t2", 2, 1000000, p),
                     APR_SUCCESS);
    /* the expiry is the one asked for: 1 s, in ms */
    usleep(1200 * 1000);
    assert_int_equal(fetch(r, "m", got, sizeof(got), p), APR_NOTFOUND);
    /* one connection served all of it */
    assert_int_equal(pegadm_redis_handshakes(r), 1);
    rf_stop(pid);
}

static void the_kv_interface_is_the_client(void **state)
{
    apr_pool_t *p = *state;
    int port = rf_free_port(AF_INET);
    pid_t pid = rf_redis(port, NULL);
    pegadm_redis_conf_t conf = conf_for(at(port));
    pegadm_kv_t kv = pegadm_redis_kv(client(p, &conf));
    unsigned char buf[8];
    apr_size_t len = sizeof(buf);

    assert_int_equal(kv.add(kv.ctx, "x", 1, (const unsigned char *)"1", 1, 1000000, p),
                     APR_SUCCESS);
    assert_int_equal(kv.get(kv.ctx, "x", 1, buf, &len, p), APR_SUCCESS);
    assert_int_equal(kv.del_if(kv.ctx, "x", 1, (const unsigned char *)"1", 1, p), APR_SUCCESS);
    rf_stop(pid);
}

/* ---- addressing ---- */

static void ipv6_and_unix_sockets_work(void **state)
{
    apr_pool_t *p = *state;
    int port = rf_free_port(AF_INET6);
    const char *sock = rf_path("redis.sock");
    const char *extra[] = {"--unixsocket", sock, NULL};
    pid_t pid = rf_redis(port, extra);
    char host[64];
    pegadm_redis_conf_t conf;

    snprintf(host, sizeof(host), "[::1]:%d", port);
    conf = conf_for(host);
    assert_round_trip(client(p, &conf), p);
    conf = conf_for(sock);
    assert_round_trip(client(p, &conf), p);
    /* a name, looked up by the resolver within the deadline */
    snprintf(host, sizeof(host), "localhost:%d", port);
    conf = conf_for(host);
    assert_round_trip(client(p, &conf), p);
    rf_stop(pid);
}

static void hosts_that_do_not_parse_are_refused(void **state)
{
    apr_pool_t *p = *state;
    const char *bad[] = {"host:", "host:0", "host:70000", "[::1", "[::1]x", ":6379"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        pegadm_redis_conf_t conf = conf_for(bad[i]);
        pegadm_redis_t *r = NULL;
        const char *why = NULL;

        assert_int_equal(pegadm_redis_create(&r, &conf, p, &why), APR_EINVAL);
        assert_non_null(why);
    }
}

/* ---- AUTH and SELECT ---- */

static void a_password_and_an_acl_user_are_sent(void **state)
{
    apr_pool_t *p = *state;
    int port = rf_free_port(AF_INET);
    const char *extra[] = {"--requirepass", "s3cret-token", "--user", "pegadm", "on",
                           ">user-pass",    "~pegadm:*",    "~k",     "+@all",  NULL};
    pid_t pid = rf_redis(port, extra);
    pegadm_redis_conf_t conf = conf_for(at(port));
    pegadm_redis_info_t info;
    char got[64];

    assert_int_equal(fetch(client(p, &conf), "k", got, sizeof(got), p), PEGADM_CACHE_AUTH);
    conf.password = "wrong";
    assert_int_equal(fetch(client(p, &conf), "k", got, sizeof(got), p), PEGADM_CACHE_AUTH);
    conf.user = "pegadm";
    conf.password = "bad-pass-9z";
    assert_int_equal(pegadm_redis_check(client(p, &conf), &info), PEGADM_CACHE_AUTH);
    assert_non_null(strstr(info.detail, "WRONGPASS"));
    assert_null(strstr(info.detail, "bad-pass-9z"));
    conf.user = NULL;
    conf.password = "s3cret-token";
    assert_round_trip(client(p, &conf), p);
    conf.user = "pegadm";
    assert_int_equal(fetch(client(p, &conf), "k", got, sizeof(got), p), PEGADM_CACHE_AUTH);
    conf.password = "user-pass";
    assert_round_trip(client(p, &conf), p);
    /* a key outside the user's patterns: NOPERM, not a miss */
    assert_int_equal(fetch(client(p, &conf), "other", got, sizeof(got), p), PEGADM_CACHE_AUTH);
    rf_stop(pid);
}

/* Several hosts are taken for a cluster's seeds; the preflight says
 * whether the server agrees, so that start-up can refuse the rest. */
static void several_hosts_that_are_no_cluster_are_told(void **state)
{
    apr_pool_t *p = *state;
    int port = rf_free_port(AF_INET);
    pid_t pid = rf_redis(port, NULL);
    char v4[64], v6[64];
    const char *hosts[2] = {v4, v6};
    pegadm_redis_conf_t conf = conf_for(at(port));
    pegadm_redis_info_t info;

    snprintf(v4, sizeof(v4), "127.0.0.1:%d", port);
    snprintf(v6, sizeof(v6), "[::1]:%d", port);
    conf.hosts = hosts;
    conf.nhosts = 2;
    assert_int_equal(pegadm_redis_check(client(p, &conf), &info), APR_SUCCESS);
    assert_int_equal(info.cluster, 0);
    rf_stop(pid);
}

static void select_puts_keys_in_the_database_asked(void **state)
{
    apr_pool_t *p = *state;
    int port = rf_free_port(AF_INET);
    pid_t pid = rf_redis(port, NULL);
    pegadm_redis_conf_t conf = conf_for(at(port));
    pegadm_redis_t *db0 = client(p, &conf);
    pegadm_redis_info_t info;
    char got[64];

    conf.db = 3;
    assert_int_equal(pegadm_redis_check(client(p, &conf), &info), APR_SUCCESS);
    assert_int_equal(info.cluster, 0);
    assert_int_equal(put(client(p, &conf), "in3", "three", p), APR_SUCCESS);
    assert_int_equal(fetch(client(p, &conf), "in3", got, sizeof(got), p), APR_SUCCESS);
    assert_int_equal(fetch(db0, "in3", got, sizeof(got), p), APR_NOTFOUND);
    conf.db = 99; /* beyond the server's 16 databases */
    assert_int_equal(pegadm_redis_check(client(p, &conf), &info), PEGADM_CACHE_AUTH);
    rf_stop(pid);
}

/* ---- TLS ---- */

static pid_t tls_redis(int port, const char *auth_clients)
{
    char portstr[16];
    const char *argv[] = {"redis-server",
                          "--port",
                          "0",
                          "--tls-port",
                          portstr,
                          "--bind",
                          "127.0.0.1",
                          "-::1",
                          "--save",
                          "",
                          "--dir",
                          rf_dir(),
                          "--tls-cert-file",
                          rf_path("server.crt"),
                          "--tls-key-file",
                          rf_path("server.key"),
                          "--tls-ca-cert-file",
                          rf_path("ca.crt"),
                          "--tls-auth-clients",
                          auth_clients,
                          "--requirepass",
                          "pw",
                          NULL};

    snprintf(portstr, sizeof(portstr), "%d", port);
    return rf_start("redis-tls", "127.0.0.1", port, argv);
}

static pegadm_redis_conf_t tls_conf(const char *host)
{
    static char ca[512];
    pegadm_redis_conf_t conf = conf_for(host);

    snprintf(ca, sizeof(ca), "%s", rf_path("ca.crt"));
    conf.tls = 1;
    conf.ca_file = ca;
    conf.password = "pw";
    return conf;
}

static void tls_verifies_the_chain_and_the_host_name(void **state)
{
    apr_pool_t *p = *state;
    int port;
    pid_t pid;
    pegadm_redis_conf_t conf;
    pegadm_redis_info_t info;
    char v6[64], other[512];

    rf_make_certs();
    port = rf_free_port(AF_INET);
    pid = tls_redis(port, "no");
    conf = tls_conf(at(port));
    assert_int_equal(pegadm_redis_check(client(p, &conf), &info), APR_SUCCESS);
    assert_round_trip(client(p, &conf), p);
    snprintf(v6, sizeof(v6), "[::1]:%d", port);
    conf = tls_conf(v6); /* the certificate names ::1 too */
    assert_round_trip(client(p, &conf), p);
    conf = tls_conf(at(port));
    conf.server_name = "cache.test";
    assert_round_trip(client(p, &conf), p);
    conf.server_name = "wrong.test";
    assert_int_equal(pegadm_redis_check(client(p, &conf), &info), PEGADM_CACHE_TLS);
    assert_non_null(strstr(info.detail, "hostname mismatch"));
    conf.server_name = "127.0.0.2"; /* an address the certificate does not name */
    assert_int_equal(pegadm_redis_check(client(p, &conf), &info), PEGADM_CACHE_TLS);
    conf = tls_conf(at(port));
    snprintf(other, sizeof(other), "%s", rf_path("other-ca.crt"));
    conf.ca_file = other;
    assert_int_equal(pegadm_redis_check(client(p, &conf), &info), PEGADM_CACHE_TLS);
    assert_non_null(strstr(info.detail, "certificate verify failed"));
    conf = tls_conf(at(port));
    conf.tls = 0; /* plain text to a TLS port: the server drops it */
    assert_int_not_equal(pegadm_redis_check(client(p, &conf), &info), APR_SUCCESS);
    rf_stop(pid);
}

static void a_client_certificate_is_sent_when_required(void **state)
{
    apr_pool_t *p = *state;
    int port;
    pid_t pid;
    pegadm_redis_conf_t conf;
    pegadm_redis_info_t info;
    char cert[512], key[512];

    rf_make_certs();
    port = rf_free_port(AF_INET);
    pid = tls_redis(port, "yes");
    conf = tls_conf(at(port));
    assert_int_equal(pegadm_redis_check(client(p, &conf), &info), PEGADM_CACHE_TLS);
    assert_non_null(strstr(info.detail, "client certificate"));
    snprintf(cert, sizeof(cert), "%s", rf_path("client.crt"));
    snprintf(key, sizeof(key), "%s", rf_path("client.key"));
    conf.cert_file = cert;
    conf.key_file = key;
    assert_int_equal(pegadm_redis_check(client(p, &conf), &info), APR_SUCCESS);
    assert_round_trip(client(p, &conf), p);
    rf_stop(pid);
}

static void tls_files_that_cannot_be_loaded_are_refused(void **state)
{
    apr_pool_t *p = *state;
    pegadm_redis_conf_t conf = tls_conf("127.0.0.1");
    pegadm_redis_t *r;
    const char *why = NULL;

    conf.ca_file = rf_path("no-such-ca.crt");
    assert_int_equal(pegadm_redis_create(&r, &conf, p, &why), PEGADM_CACHE_TLS);
    assert_non_null(strstr(why, "no-such-ca.crt"));
    assert_null(strstr(why, "pw"));
}

/* ---- failures ---- */

static apr_interval_time_t timed_get(pegadm_redis_t *r, apr_status_t *rv, apr_pool_t *p)
{
    apr_time_t start = apr_time_now();
    char got[64];

    *rv = fetch(r, "k", got, sizeof(got), p);
    return apr_time_now() - start;
}

static void a_hung_server_costs_at_most_the_deadline(void **state)
{
    apr_pool_t *p = *state;
    int port = rf_free_port(AF_INET);
    pid_t pid = rf_redis(port, NULL);
    pegadm_redis_conf_t conf = conf_for(at(port));
    pegadm_redis_t *pooled = client(p, &conf);
    apr_status_t rv;

    assert_round_trip(pooled, p);
    pegadm_test_stop(pid);
    /* a pooled connection, and a new one (the kernel completes its connect) */
    assert_true(timed_get(pooled, &rv, p) < HUNG_BOUND);
    assert_int_equal(rv, PEGADM_CACHE_TIMEOUT);
    assert_true(timed_get(client(p, &conf), &rv, p) < HUNG_BOUND);
    assert_int_equal(rv, PEGADM_CACHE_TIMEOUT);
    assert_int_equal(
        pegadm_redis_add(pooled, "m", 1, (const unsigned char *)"t", 1, 1000000, p),
        PEGADM_CACHE_TIMEOUT);
    assert_int_equal(pegadm_redis_del_if(pooled, "m", 1, (const unsigned char *)"t", 1, p),
                     PEGADM_CACHE_TIMEOUT);
    kill(pid, SIGCONT);
    assert_round_trip(pooled, p);
    rf_stop(pid);
}

static void tls_to_a_plain_server_fails_within_the_deadline(void **state)
{
    apr_pool_t *p = *state;
    int port = rf_free_port(AF_INET);
    pid_t pid = rf_redis(port, NULL);
    pegadm_redis_conf_t conf;
    pegadm_redis_info_t info;
    apr_time_t start = apr_time_now();

    rf_make_certs();
    conf = tls_conf(at(port));
    /* redis-server waits for the end of a line the ClientHello never has */
    assert_int_equal(pegadm_redis_check(client(p, &conf), &info), PEGADM_CACHE_TIMEOUT);
    assert_true(apr_time_now() - start < HUNG_BOUND);
    rf_stop(pid);
}

static void a_closed_port_is_refused(void **state)
{
    apr_pool_t *p = *state;
    pegadm_redis_conf_t conf = conf_for(at(rf_free_port(AF_INET)));
    pegadm_redis_info_t info;
    apr_status_t rv;

    assert_true(timed_get(client(p, &conf), &rv, p) < HUNG_BOUND);
    assert_int_equal(rv, PEGADM_CACHE_REFUSED);
    assert_int_equal(pegadm_redis_check(client(p, &conf), &info), PEGADM_CACHE_REFUSED);
    conf = conf_for("no-such-host.invalid:6379");
    assert_int_equal(timed_get(client(p, &conf), &rv, p) >= 0, 1);
    assert_int_equal(rv, PEGADM_CACHE_RESOLVE);
}

static void a_restarted_server_fails_no_request(void **state)
{
    apr_pool_t *p = *state;
    int port = rf_free_port(AF_INET);
    pid_t pid = rf_redis(port, NULL);
    pegadm_redis_conf_t conf = conf_for(at(port));
    pegadm_redis_t *r = client(p, &conf);
    char got[64];

    assert_round_trip(r, p);
    assert_int_equal(pegadm_redis_handshakes(r), 1);
    rf_stop(pid);
    pid = rf_redis(port, NULL);
    assert_int_equal(fetch(r, "k", got, sizeof(got), p), APR_NOTFOUND);
    assert_int_equal(pegadm_redis_handshakes(r), 2);
    assert_round_trip(r, p);
    rf_stop(pid);
}

static void the_pool_is_bounded_by_the_deadline(void **state)
{
    apr_pool_t *p = *state;
    int port = rf_free_port(AF_INET);
    pid_t pid = rf_redis(port, NULL);
    pegadm_redis_conf_t conf = conf_for(at(port));
    pegadm_redis_t *r;
    pegadm_redis_info_t info;

    conf.pool_max = 1;
    r = client(p, &conf);
    assert_round_trip(r, p);
    /* the preflight takes a new connection in place of the idle one */
    assert_int_equal(pegadm_redis_check(r, &info), APR_SUCCESS);
    assert_round_trip(r, p);
    assert_int_equal(pegadm_redis_handshakes(r), 2);
    rf_stop(pid);
}

/* ---- many threads on one client ---- */

#define THREADS 8

typedef struct {
    pegadm_redis_t *r;
    int id, rounds;
    int ok;                      /* operations that answered as expected */
    apr_status_t last;           /* the last failure */
    apr_interval_time_t longest; /* of one operation */
} worker_t;

static void *work(void *data)
{
    worker_t *w = data;
    apr_pool_t *p;
    char key[32], val[32], got[64];

    apr_pool_create(&p, NULL);
    snprintf(key, sizeof(key), "w%d", w->id);
    for (int i = 0; i < w->rounds; i++) {
        apr_time_t start = apr_time_now();
        apr_status_t rv;

        snprintf(val, sizeof(val), "%d-%d", w->id, i);
        rv = put(w->r, key, val, p);
        if (rv == APR_SUCCESS) {
            rv = fetch(w->r, key, got, sizeof(got), p);
        }
        if (rv == APR_SUCCESS && strcmp(got, val) == 0) {
            w->ok++;
        } else {
            w->last = rv;
        }
        if (apr_time_now() - start > w->longest) {
            w->longest = apr_time_now() - start;
        }
        apr_pool_clear(p);
    }
    apr_pool_destroy(p);
    return NULL;
}

static void run_workers(worker_t *w, pegadm_redis_t *r, int rounds)
{
    pthread_t t[THREADS];

    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker_t){.r = r, .id = i, .rounds = rounds};
        assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
    }
}

static void threads_share_the_pool(void **state)
{
    apr_pool_t *p = *state;
    int port = rf_free_port(AF_INET);
    pid_t pid = rf_redis(port, NULL);
    pegadm_redis_conf_t conf = conf_for(at(port));
    pegadm_redis_t *r;
    worker_t w[THREADS];

    conf.pool_max = 3;
    r = client(p, &conf);
    run_workers(w, r, 200);
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(w[i].ok, 200);
    }
    assert_true(pegadm_redis_handshakes(r) <= 3);
    rf_stop(pid);
}

static void threads_waiting_for_a_hung_server_keep_the_deadline(void **state)
{
    apr_pool_t *p = *state;
    int port = rf_free_port(AF_INET);
    pid_t pid = rf_redis(port, NULL);
    pegadm_redis_conf_t conf = conf_for(at(port));
    pegadm_redis_t *r;
    worker_t w[THREADS];
    int busy = 0;

    conf.pool_max = 2;
    r = client(p, &conf);
    assert_round_trip(r, p);
    pegadm_test_stop(pid);
    run_workers(w, r, 3);
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(w[i].ok, 0);
        assert_true(w[i].last == PEGADM_CACHE_TIMEOUT || w[i].last == PEGADM_CACHE_BUSY);
        busy += w[i].last == PEGADM_CACHE_BUSY;
        /* a set, then nothing more: one operation's deadline, plus margin */
        assert_true(w[i].longest < HUNG_BOUND);
    }
    assert_true(busy > 0); /* more threads than connections: some never got one */
    kill(pid, SIGCONT);
    assert_round_trip(r, p);
    rf_stop(pid);
}

/* ---- error replies, from a fake server ---- */

static apr_status_t fake_get(const char *reply, apr_pool_t *parent)
{
    rf_fake_t fake;
    apr_pool_t *p;
    apr_status_t rv;
    char got[64];
    pegadm_redis_conf_t conf;

    rf_fake_start(&fake, reply);
    apr_pool_create(&p, parent);
    conf = conf_for(at(fake.port));
    conf.max_value = 1000;
    rv = fetch(client(p, &conf), "k", got, sizeof(got), p);
    apr_pool_destroy(p); /* closes the connection, so the fake can stop */
    rf_fake_stop(&fake);
    return rv;
}

static void error_replies_are_unavailability_never_a_miss(void **state)
{
    const char *server[] = {"-LOADING Redis is loading the dataset in memory\r\n",
                            "-READONLY You can't write against a read only replica.\r\n",
                            "-CLUSTERDOWN The cluster is down\r\n",
                            "-TRYAGAIN Multiple keys request during rehashing of slot\r\n",
                            "-OOM command not allowed when used memory > 'maxmemory'.\r\n"};

    for (size_t i = 0; i < sizeof(server) / sizeof(server[0]); i++) {
        assert_int_equal(fake_get(server[i], *state), PEGADM_CACHE_SERVER);
    }
    assert_int_equal(fake_get("-NOAUTH Authentication required.\r\n", *state),
                     PEGADM_CACHE_AUTH);
    assert_int_equal(fake_get("-WRONGTYPE Operation against a key\r\n", *state),
                     PEGADM_CACHE_PROTOCOL);
    assert_int_equal(fake_get(":12\r\n", *state), PEGADM_CACHE_PROTOCOL);
    assert_int_equal(fake_get("garbage\r\n", *state), PEGADM_CACHE_PROTOCOL);
}

static void an_oversized_value_is_refused_without_reading_it(void **state)
{
    /* announces 100 MB and sends a little: refused once past max_value,
     * long before the deadline */
    apr_time_t start = apr_time_now();
    static char reply[4096];

    memset(reply, 'x', sizeof(reply) - 1);
    memcpy(reply, "$100000000\r\n", 12);
    assert_int_equal(fake_get(reply, *state), PEGADM_CACHE_PROTOCOL);
    assert_true(apr_time_now() - start < TIMEOUT);
}

static void a_connection_out_of_step_is_not_reused(void **state)
{
    rf_fake_t fake;
    apr_pool_t *p;
    pegadm_redis_conf_t conf;
    pegadm_redis_t *r;

    /* every command answered twice: the second answer must never be
     * taken for the next command's */
    rf_fake_start(&fake, ":1\r\n:7\r\n");
    apr_pool_create(&p, *state);
    conf = conf_for(at(fake.port));
    r = client(p, &conf);
    assert_int_equal(pegadm_redis_del(r, "k", 1, p), PEGADM_CACHE_PROTOCOL);
    assert_int_equal(pegadm_redis_del(r, "k", 1, p), PEGADM_CACHE_PROTOCOL);
    assert_int_equal(pegadm_redis_handshakes(r), 2);
    apr_pool_destroy(p);
    rf_fake_stop(&fake);
}

static void a_forked_process_opens_its_own_connections(void **state)
{
    apr_pool_t *p = *state;
    int port = rf_free_port(AF_INET);
    pid_t pid = rf_redis(port, NULL), child;
    pegadm_redis_conf_t conf = conf_for(at(port));
    pegadm_redis_t *r = client(p, &conf);
    int status = -1;

    assert_round_trip(r, p);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        char got[64];
        int ok = put(r, "child", "c", p) == APR_SUCCESS &&
                 fetch(r, "child", got, sizeof(got), p) == APR_SUCCESS &&
                 pegadm_redis_handshakes(r) == 2;
        _exit(ok ? 0 : 1);
    }
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_round_trip(r, p); /* the parent's connection, untouched */
    assert_int_equal(pegadm_redis_handshakes(r), 1);
    rf_stop(pid);
}

static void a_redirect_loop_ends(void **state)
{
    rf_fake_t fake;
    char reply[128];

    /* MOVED to itself, over and over */
    rf_fake_start(&fake, "+placeholder\r\n");
    snprintf(reply, sizeof(reply), "-MOVED 12539 127.0.0.1:%d\r\n", fake.port);
    fake.reply = reply;
    {
        apr_pool_t *p;
        pegadm_redis_conf_t conf = conf_for(at(fake.port));
        char got[64];

        apr_pool_create(&p, *state);
        assert_int_equal(fetch(client(p, &conf), "k", got, sizeof(got), p),
                         PEGADM_CACHE_REDIRECTS);
        apr_pool_destroy(p);
    }
    rf_fake_stop(&fake);
}

static void hash_tags_pick_the_slot(void **state)
{
    /* the values of the Redis Cluster specification */
    assert_int_equal(pegadm_redis_slot("123456789", 9), 0x31c3 % 16384);
    assert_int_equal(pegadm_redis_slot("{user1000}.following", 20),
                     pegadm_redis_slot("user1000", 8));
    assert_int_equal(pegadm_redis_slot("foo{}{bar}", 10), pegadm_redis_slot("foo{}{bar}", 10));
    assert_int_not_equal(pegadm_redis_slot("foo{}{bar}", 10), pegadm_redis_slot("bar", 3));
    assert_int_equal(pegadm_redis_slot("foo{{bar}}zap", 13), pegadm_redis_slot("{bar", 4));
}

/* ---- a Redis Cluster: three masters, and a replica each if asked ---- */

#define CLUSTER_MAX 6

typedef struct {
    int n;
    int port[CLUSTER_MAX];
    pid_t pid[CLUSTER_MAX];
    char id[CLUSTER_MAX][64];
} cluster_t;

static void cluster_node(cluster_t *c, int i)
{
    char bus[16], conf[64];
    /* replicas that sync at once and may always take over: a failover
     * within seconds */
    const char *extra[] = {"--cluster-enabled",
                           "yes",
                           "--cluster-config-file",
                           conf,
                           "--cluster-port",
                           bus,
                           "--cluster-node-timeout",
                           "1000",
                           "--repl-diskless-sync-delay",
                           "0",
                           "--cluster-replica-validity-factor",
                           "0",
                           NULL};

    c->port[i] = rf_free_port(AF_INET);
    snprintf(bus, sizeof(bus), "%d", rf_free_port(AF_INET));
    snprintf(conf, sizeof(conf), "nodes-%d.conf", c->port[i]);
    c->pid[i] = rf_redis(c->port[i], extra);
}

/* Waits until every node sees the cluster whole (bounded). */
static void cluster_wait_ok(const cluster_t *c)
{
    char cmd[256];

    for (int i = 0; i < c->n; i++) {
        for (int tries = 0; tries < 100; tries++) {
            snprintf(cmd, sizeof(cmd),
                     "redis-cli -p %d cluster info | grep -q cluster_state:ok", c->port[i]);
            if (system(cmd) == 0) {
                break;
            }
            usleep(100 * 1000);
        }
    }
}

static void cluster_start_with(cluster_t *c, int replicas)
{
    char cmd[1024];
    int at = 0;

    c->n = replicas ? 6 : 3;
    for (int i = 0; i < c->n; i++) {
        cluster_node(c, i);
    }
    /* masters in the order given: slots 0-5460, 5461-10922, 10923-16383 */
    at = snprintf(cmd, sizeof(cmd), "redis-cli --cluster create");
    for (int i = 0; i < c->n; i++) {
        at += snprintf(cmd + at, sizeof(cmd) - (size_t)at, " 127.0.0.1:%d", c->port[i]);
    }
    snprintf(cmd + at, sizeof(cmd) - (size_t)at,
             " --cluster-replicas %d --cluster-yes >'%s' 2>&1", replicas,
             rf_path("cluster-create.log"));
    rf_sh(cmd);
    for (int i = 0; i < c->n; i++) {
        snprintf(cmd, sizeof(cmd), "redis-cli -p %d cluster myid", c->port[i]);
        rf_sh_out(cmd, c->id[i], sizeof(c->id[i]));
    }
    cluster_wait_ok(c);
    for (int i = 3; i < c->n; i++) { /* replicas in sync */
        for (int tries = 0; tries < 100; tries++) {
            snprintf(cmd, sizeof(cmd),
                     "redis-cli -p %d info replication | grep -q master_link_status:up",
                     c->port[i]);
            if (system(cmd) == 0) {
                break;
            }
            usleep(100 * 1000);
        }
    }
}

static void cluster_start(cluster_t *c)
{
    cluster_start_with(c, 0);
}

static void cluster_stop(cluster_t *c)
{
    for (int i = 0; i < c->n; i++) {
        rf_stop(c->pid[i]);
    }
}

static int owner_of(unsigned int slot)
{
    return slot <= 5460 ? 0 : slot <= 10922 ? 1 : 2;
}

static void cluster_call(const cluster_t *c, int node, const char *args)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "redis-cli -p %d %s >/dev/null", c->port[node], args);
    rf_sh(cmd);
}

static void a_cluster_is_found_and_followed(void **state)
{
    apr_pool_t *p = *state;
    cluster_t c;
    pegadm_redis_conf_t conf;
    pegadm_redis_t *r;
    pegadm_redis_info_t info;
    char got[64], key[32];

    cluster_start(&c);
    conf = conf_for(at(c.port[0])); /* one host: found to be a cluster */
    r = client(p, &conf);
    assert_int_equal(pegadm_redis_check(r, &info), APR_SUCCESS);
    assert_int_equal(info.cluster, 1);
    for (int i = 0; i < 30; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        assert_int_equal(put(r, key, key, p), APR_SUCCESS);
    }
    for (int i = 0; i < 30; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        assert_int_equal(fetch(r, key, got, sizeof(got), p), APR_SUCCESS);
        assert_string_equal(got, key);
    }
    /* the slot map learnt: one connection to each node (the preflight's
     * kept for the first), no more */
    assert_int_equal(pegadm_redis_handshakes(r), 3);
    /* a database other than 0 cannot be had from a cluster */
    conf.db = 2;
    assert_int_equal(pegadm_redis_check(client(p, &conf), &info), PEGADM_CACHE_AUTH);
    assert_int_equal(info.cluster, 1);
    assert_non_null(strstr(info.detail, "database 0"));
    assert_int_equal(fetch(client(p, &conf), "key-1", got, sizeof(got), p), PEGADM_CACHE_AUTH);
    cluster_stop(&c);
}

static void a_slot_in_migration_is_followed(void **state)
{
    apr_pool_t *p = *state;
    cluster_t c;
    const char *key = "{pegadm-moving}:k";
    unsigned int slot = pegadm_redis_slot(key, strlen(key));
    int from, to;
    pegadm_redis_conf_t conf;
    pegadm_redis_t *r;
    char args[256], got[64];

    cluster_start(&c);
    from = owner_of(slot);
    to = (from + 1) % 3;
    conf = conf_for(at(c.port[0]));
    r = client(p, &conf);
    assert_int_equal(fetch(r, key, got, sizeof(got), p), APR_NOTFOUND);
    /* migrating: a key the old owner does not hold is asked of the new */
    snprintf(args, sizeof(args), "cluster setslot %u importing %s", slot, c.id[from]);
    cluster_call(&c, to, args);
    snprintf(args, sizeof(args), "cluster setslot %u migrating %s", slot, c.id[to]);
    cluster_call(&c, from, args);
    assert_int_equal(put(r, key, "asked", p), APR_SUCCESS);
    assert_int_equal(fetch(r, key, got, sizeof(got), p), APR_SUCCESS);
    assert_string_equal(got, "asked");
    /* moved for good: the old owner answers MOVED, and the map follows */
    snprintf(args, sizeof(args), "cluster setslot %u node %s", slot, c.id[to]);
    for (int i = 0; i < 3; i++) {
        cluster_call(&c, i, args);
    }
    assert_int_equal(fetch(r, key, got, sizeof(got), p), APR_SUCCESS);
    assert_string_equal(got, "asked");
    assert_int_equal(
        pegadm_redis_del_if(r, key, strlen(key), (const unsigned char *)"asked", 5, p),
        APR_SUCCESS);
    cluster_stop(&c);
}

/* A master dies and its replica takes over: the slots the client had
 * mapped to the dead master are asked of the others again. */
static void a_failover_is_followed(void **state)
{
    apr_pool_t *p = *state;
    cluster_t c;
    const char *hosts[CLUSTER_MAX];
    char spec[CLUSTER_MAX][32], cmd[256], out[64], got[64];
    pegadm_redis_conf_t conf;
    pegadm_redis_t *r;
    int owner = -1, answered = 0;
    apr_status_t last = APR_SUCCESS;

    cluster_start_with(&c, 1);
    for (int i = 0; i < c.n; i++) {
        snprintf(spec[i], sizeof(spec[i]), "127.0.0.1:%d", c.port[i]);
        hosts[i] = spec[i];
    }
    conf = conf_for(hosts[0]);
    conf.hosts = hosts;
    conf.nhosts = c.n;
    r = client(p, &conf);
    assert_int_equal(put(r, "survivor", "kept", p), APR_SUCCESS);
    for (int i = 0; i < 3 && owner < 0; i++) {
        snprintf(cmd, sizeof(cmd), "redis-cli -p %d get survivor", c.port[i]);
        rf_sh_out(cmd, out, sizeof(out));
        owner = strcmp(out, "kept") == 0 ? i : -1;
    }
    assert_true(owner >= 0);
    snprintf(cmd, sizeof(cmd), "redis-cli -p %d wait 1 2000 >/dev/null", c.port[owner]);
    rf_sh(cmd);
    rf_stop(c.pid[owner]);
    c.pid[owner] = 0;
    /* the replica is promoted after the node timeout (1 s) and a vote */
    for (int tries = 0; tries < 300 && !answered; tries++) {
        /* asynchronous replication may lose the write: a miss is an answer */
        last = fetch(r, "survivor", got, sizeof(got), p);
        answered = last == APR_SUCCESS || last == APR_NOTFOUND;
        if (!answered) {
            usleep(100 * 1000);
        }
    }
    if (!answered) {
        fail_msg("no answer after the failover: %s", pegadm_cache_err_name(last));
    }
    assert_int_equal(put(r, "survivor", "again", p), APR_SUCCESS);
    assert_int_equal(fetch(r, "survivor", got, sizeof(got), p), APR_SUCCESS);
    assert_string_equal(got, "again");
    /* the preflight passes while any seed answers: the dead one first */
    {
        const char *dead_first[2] = {hosts[owner], hosts[(owner + 1) % 3]};
        pegadm_redis_info_t info;

        conf.hosts = dead_first;
        conf.nhosts = 2;
        assert_int_equal(pegadm_redis_check(client(p, &conf), &info), APR_SUCCESS);
        assert_int_equal(info.cluster, 1);
    }
    cluster_stop(&c);
}

static int servers_available(void **state)
{
    if (!rf_have("redis-server") || !rf_have("openssl")) {
        return -1;
    }
    return 0;
}

static int servers_cleanup(void **state)
{
    rf_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hash_tags_pick_the_slot),
        POOL_TEST(operations_answer_as_the_kv_interface_says),
        POOL_TEST(the_kv_interface_is_the_client),
        POOL_TEST(ipv6_and_unix_sockets_work),
        POOL_TEST(hosts_that_do_not_parse_are_refused),
        POOL_TEST(a_password_and_an_acl_user_are_sent),
        POOL_TEST(several_hosts_that_are_no_cluster_are_told),
        POOL_TEST(select_puts_keys_in_the_database_asked),
        POOL_TEST(tls_verifies_the_chain_and_the_host_name),
        POOL_TEST(a_client_certificate_is_sent_when_required),
        POOL_TEST(tls_files_that_cannot_be_loaded_are_refused),
        POOL_TEST(a_hung_server_costs_at_most_the_deadline),
        POOL_TEST(tls_to_a_plain_server_fails_within_the_deadline),
        POOL_TEST(a_closed_port_is_refused),
        POOL_TEST(a_restarted_server_fails_no_request),
        POOL_TEST(the_pool_is_bounded_by_the_deadline),
        POOL_TEST(threads_share_the_pool),
        POOL_TEST(threads_waiting_for_a_hung_server_keep_the_deadline),
        POOL_TEST(error_replies_are_unavailability_never_a_miss),
        POOL_TEST(an_oversized_value_is_refused_without_reading_it),
        POOL_TEST(a_connection_out_of_step_is_not_reused),
        POOL_TEST(a_forked_process_opens_its_own_connections),
        POOL_TEST(a_redirect_loop_ends),
        POOL_TEST(a_cluster_is_found_and_followed),
        POOL_TEST(a_slot_in_migration_is_followed),
        POOL_TEST(a_failover_is_followed),
    };

    signal(SIGPIPE, SIG_DFL); /* the client must never raise it */
    apr_initialize();
    return cmocka_run_group_tests(tests, servers_available, servers_cleanup);
}
