/* Connection reuse: calls through a pegadm_http_handles_t set share one
 * keep-alive connection; the set keeps a bounded number of idle handles and
 * closes their connections when its pool goes. Against a keep-alive server
 * on the loopback interface that counts connections. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "pegadm_test_pool.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include "pegadm_http.h"

#define MAX_CONNS    8
#define HOLD_MAX_SEC 5 /* a held answer goes out after this at the latest */

typedef struct {
    int listen_fd;
    int port;
    pthread_t acceptor;
    pthread_t threads[MAX_CONNS];
    int fds[MAX_CONNS];
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int accepted; /* connections */
    int closed;   /* connections the client closed */
    int answered; /* requests */
    int in_flight;
    int hold; /* answer once this many requests are in flight */
} keepalive_service_t;

typedef struct {
    keepalive_service_t *svc;
    int fd;
} conn_arg_t;

/* One request: headers, then Content-Length bytes. 0 at end of stream. */
static int read_request(int fd)
{
    char buf[8192];
    size_t len = 0, need = sizeof(buf) - 1;

    while (len < need) {
        ssize_t n = recv(fd, buf + len, need - len, 0);
        const char *end, *length;
        if (n <= 0) {
            return 0;
        }
        len += (size_t)n;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
        length = strcasestr(buf, "\r\nContent-Length: ");
        if (end && length && length < end) {
            need = (size_t)(end + 4 - buf) + strtoul(length + 18, NULL, 10);
        } else if (end) {
            need = (size_t)(end + 4 - buf);
        }
    }
    return 1;
}

/* Waits (bounded) until svc->hold requests are in flight; returns this
 * request's number. Called with svc->lock held. */
static int hold_and_count(keepalive_service_t *svc)
{
    struct timespec until;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += HOLD_MAX_SEC;
    svc->in_flight++;
    pthread_cond_broadcast(&svc->cond);
    while (svc->in_flight < svc->hold &&
           pthread_cond_timedwait(&svc->cond, &svc->lock, &until) != ETIMEDOUT) {
    }
    return ++svc->answered;
}

/* No cmocka asserts here: they only work in the test's own thread. */
static void *serve_connection(void *data)
{
    conn_arg_t *arg = data;
    keepalive_service_t *svc = arg->svc;

    while (read_request(arg->fd)) {
        char answer[256], body[32];
        int n;

        pthread_mutex_lock(&svc->lock);
        n = hold_and_count(svc);
        pthread_mutex_unlock(&svc->lock);
        snprintf(body, sizeof(body), "{\"n\":%d}", n);
        snprintf(answer, sizeof(answer),
                 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                 "Content-Length: %zu\r\n\r\n%s",
                 strlen(body), body);
        send(arg->fd, answer, strlen(answer), MSG_NOSIGNAL);
        pthread_mutex_lock(&svc->lock);
        svc->in_flight--;
        pthread_mutex_unlock(&svc->lock);
    }
    pthread_mutex_lock(&svc->lock);
    svc->closed++;
    pthread_cond_broadcast(&svc->cond);
    pthread_mutex_unlock(&svc->lock);
    free(arg);
    return NULL;
}

static void *accept_connections(void *data)
{
    keepalive_service_t *svc = data;

    for (;;) {
        int fd = accept(svc->listen_fd, NULL, NULL);
        conn_arg_t *arg;
        if (fd < 0) {
            return NULL;
        }
        pthread_mutex_lock(&svc->lock);
        arg = svc->accepted < MAX_CONNS ? malloc(sizeof(*arg)) : NULL;
        if (arg) {
            arg->svc = svc;
            arg->fd = fd;
            svc->fds[svc->accepted] = fd;
            if (pthread_create(&svc->threads[svc->accepted], NULL, serve_connection, arg)) {
                free(arg);
                arg = NULL;
            }
        }
        if (arg) {
            svc->accepted++;
        } else {
            close(fd);
        }
        pthread_mutex_unlock(&svc->lock);
    }
}

static apr_status_t service_cleanup(void *data)
{
    keepalive_service_t *svc = data;

    shutdown(svc->listen_fd, SHUT_RDWR);
    pthread_join(svc->acceptor, NULL);
    for (int i = 0; i < svc->accepted; i++) {
        shutdown(svc->fds[i], SHUT_RDWR);
        pthread_join(svc->threads[i], NULL);
        close(svc->fds[i]);
    }
    close(svc->listen_fd);
    return APR_SUCCESS;
}

static keepalive_service_t *service_start(apr_pool_t *p)
{
    keepalive_service_t *svc = apr_pcalloc(p, sizeof(*svc));
    struct sockaddr_in addr;
    socklen_t addr_len = sizeof(addr);

    svc->hold = 1;
    pthread_mutex_init(&svc->lock, NULL);
    pthread_cond_init(&svc->cond, NULL);
    svc->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(svc->listen_fd >= 0);
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(svc->listen_fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(listen(svc->listen_fd, 8), 0);
    assert_int_equal(getsockname(svc->listen_fd, (struct sockaddr *)&addr, &addr_len), 0);
    svc->port = ntohs(addr.sin_port);
    assert_int_equal(pthread_create(&svc->acceptor, NULL, accept_connections, svc), 0);
    apr_pool_cleanup_register(p, svc, service_cleanup, apr_pool_cleanup_null);
    return svc;
}

static int service_count(keepalive_service_t *svc, const int *counter)
{
    int value;
    pthread_mutex_lock(&svc->lock);
    value = *counter;
    pthread_mutex_unlock(&svc->lock);
    return value;
}

static void service_set_hold(keepalive_service_t *svc, int hold)
{
    pthread_mutex_lock(&svc->lock);
    svc->hold = hold;
    pthread_mutex_unlock(&svc->lock);
}

/* One POST in a pool of its own that is gone before the next call: a kept
 * handle must not point into it. Returns the answer's number. */
static int post(apr_pool_t *parent, keepalive_service_t *svc, pegadm_http_handles_t *hs)
{
    pegadm_http_opts_t opts = {NULL, NULL, apr_time_from_sec(10), apr_time_from_sec(2), hs};
    pegadm_http_response_t resp;
    apr_pool_t *p;
    int n = -1;

    assert_int_equal(apr_pool_create(&p, parent), APR_SUCCESS);
    if (pegadm_http_post_json(p, apr_psprintf(p, "http://127.0.0.1:%d/create", svc->port),
                              "token", "{\"customerId\":\"alice\"}", 22, &opts,
                              &resp) == PEGADM_HTTP_OK &&
        resp.status == 200) {
        sscanf(resp.body, "{\"n\":%d}", &n);
    }
    apr_pool_destroy(p);
    return n;
}

static void calls_share_one_connection(void **state)
{
    apr_pool_t *p = *state;
    keepalive_service_t *svc = service_start(p);
    pegadm_http_handles_t *hs;

    assert_int_equal(pegadm_http_handles_create(p, 4, &hs), APR_SUCCESS);
    assert_int_equal(pegadm_http_handles_idle(hs), 0);
    for (int i = 1; i <= 5; i++) {
        assert_int_equal(post(p, svc, hs), i);
    }
    assert_int_equal(service_count(svc, &svc->accepted), 1);
    assert_int_equal(pegadm_http_handles_idle(hs), 1);
}

static void without_a_set_each_call_connects(void **state)
{
    apr_pool_t *p = *state;
    keepalive_service_t *svc = service_start(p);

    for (int i = 1; i <= 3; i++) {
        assert_int_equal(post(p, svc, NULL), i);
    }
    assert_int_equal(service_count(svc, &svc->accepted), 3);
}

typedef struct {
    apr_pool_t *p;
    keepalive_service_t *svc;
    pegadm_http_handles_t *hs;
    int n;
} caller_t;

static void *concurrent_post(void *data)
{
    caller_t *c = data;
    c->n = post(c->p, c->svc, c->hs);
    return NULL;
}

/* Two calls at once need two handles; a set keeping one closes the other
 * after use, and the next call reuses the kept one's connection. */
static void idle_handles_are_bounded(void **state)
{
    apr_pool_t *p = *state;
    keepalive_service_t *svc = service_start(p);
    pegadm_http_handles_t *hs;
    caller_t callers[2];
    pthread_t threads[2];

    assert_int_equal(pegadm_http_handles_create(p, 1, &hs), APR_SUCCESS);
    service_set_hold(svc, 2);
    for (int i = 0; i < 2; i++) {
        /* pools are not thread-safe to create from: one each, made here */
        assert_int_equal(apr_pool_create(&callers[i].p, p), APR_SUCCESS);
        callers[i].svc = svc;
        callers[i].hs = hs;
        assert_int_equal(pthread_create(&threads[i], NULL, concurrent_post, &callers[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(threads[i], NULL);
    }
    assert_int_equal(callers[0].n + callers[1].n, 1 + 2);
    assert_int_equal(service_count(svc, &svc->accepted), 2);
    assert_int_equal(pegadm_http_handles_idle(hs), 1);
    service_set_hold(svc, 1);
    assert_int_equal(post(p, svc, hs), 3);
    assert_int_equal(service_count(svc, &svc->accepted), 2);
}

/* Destroying the set's pool closes the kept connections. */
static void pool_cleanup_closes_connections(void **state)
{
    apr_pool_t *p = *state, *child;
    keepalive_service_t *svc = service_start(p);
    pegadm_http_handles_t *hs;
    int closed = 0;

    assert_int_equal(apr_pool_create(&child, p), APR_SUCCESS);
    assert_int_equal(pegadm_http_handles_create(child, 2, &hs), APR_SUCCESS);
    assert_int_equal(post(p, svc, hs), 1);
    assert_int_equal(service_count(svc, &svc->closed), 0);
    apr_pool_destroy(child);
    for (int i = 0; i < 500 && !closed; i++) { /* at most 5 s */
        closed = service_count(svc, &svc->closed);
        if (!closed) {
            usleep(10000);
        }
    }
    assert_int_equal(closed, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        POOL_TEST(calls_share_one_connection),
        POOL_TEST(without_a_set_each_call_connects),
        POOL_TEST(idle_handles_are_bounded),
        POOL_TEST(pool_cleanup_closes_connections),
    };
    int failed;

    apr_initialize();
    if (pegadm_http_global_init() != APR_SUCCESS) {
        return 1;
    }
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    apr_terminate();
    return failed;
}
