/* Preflight's pieces that need no service: certificate times as libcurl
 * prints them, and a probe of a port nobody listens on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <apr_general.h>
#include <apr_network_io.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include "pegadm_http.h"
#include "pegadm_test_pool.h"

static void certificate_times_parse(void **state)
{
    apr_time_t t;

    assert_int_equal(pegadm_http_parse_cert_time("Dec  2 08:00:00 2026 GMT", &t), APR_SUCCESS);
    assert_int_equal(apr_time_sec(t), 1796198400);
    assert_int_equal(pegadm_http_parse_cert_time("Jan 31 23:59:59 2030 GMT", &t), APR_SUCCESS);
    assert_int_equal(apr_time_sec(t), 1896134399);
}

static void other_text_is_refused(void **state)
{
    apr_time_t t;
    const char *bad[] = {"", "Dec  2 08:00:00 2026", "Dec  2 08:00:00 2026 GMT trailing",
                         "2026-12-02 08:00:00 GMT", "Foo  2 08:00:00 2026 GMT"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(pegadm_http_parse_cert_time(bad[i], &t), APR_EINVAL);
    }
}

/* A port bound but not listening refuses connections. */
static void a_probe_of_a_closed_port_fails_to_connect(void **state)
{
    apr_pool_t *p = *state;
    apr_socket_t *sock;
    apr_sockaddr_t *sa;
    pegadm_http_opts_t opts = {NULL, NULL, apr_time_from_sec(2), apr_time_from_sec(1), NULL};
    apr_time_t not_after = 1;
    const char *error = NULL;

    assert_int_equal(apr_sockaddr_info_get(&sa, "127.0.0.1", APR_INET, 0, 0, p), APR_SUCCESS);
    assert_int_equal(apr_socket_create(&sock, APR_INET, SOCK_STREAM, APR_PROTO_TCP, p),
                     APR_SUCCESS);
    assert_int_equal(apr_socket_bind(sock, sa), APR_SUCCESS);
    assert_int_equal(apr_socket_addr_get(&sa, APR_LOCAL, sock), APR_SUCCESS);
    assert_int_equal(pegadm_http_probe(p, apr_psprintf(p, "https://127.0.0.1:%d", sa->port),
                                       &opts, &not_after, &error),
                     PEGADM_HTTP_CONNECT);
    assert_int_equal(not_after, 0);
    assert_non_null(error);
    apr_socket_close(sock);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        POOL_TEST(certificate_times_parse),
        POOL_TEST(other_text_is_refused),
        POOL_TEST(a_probe_of_a_closed_port_fails_to_connect),
    };
    apr_initialize();
    pegadm_http_global_init();
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    apr_terminate();
    return failed;
}
