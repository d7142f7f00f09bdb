/* The fake HTTP service of fake_service.h. No cmocka asserts in the
 * service's threads: they only work in the test's own thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <apr_strings.h>

#include "fake_service.h"

#define HOLD_MAX_SEC 5 /* a held answer goes out after this at the latest */

typedef struct {
    fake_service_t *svc;
    int fd;
    int first; /* the service's first connection: its first request is recorded */
} conn_t;

/* One request, headers and Content-Length bytes, into buf (size > 1).
 * Returns its length; 0 when the client closed first. */
static size_t read_request(int fd, char *buf, size_t size)
{
    size_t len = 0, need = size - 1;

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
            need = need < size - 1 ? need : size - 1;
        } else if (end) {
            need = (size_t)(end + 4 - buf);
        }
    }
    return len;
}

static void send_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n <= 0) {
            return;
        }
        data += n;
        len -= (size_t)n;
    }
}

static void wait_for_close(int fd)
{
    char drain[4096];
    while (recv(fd, drain, sizeof(drain), 0) > 0) {
    }
}

/* Waits (bounded) until svc->hold requests are in flight; returns this
 * request's number. */
static int hold_and_count(fake_service_t *svc)
{
    struct timespec until;
    int n;

    pthread_mutex_lock(&svc->lock);
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += HOLD_MAX_SEC;
    svc->in_flight++;
    pthread_cond_broadcast(&svc->cond);
    while (svc->in_flight < svc->hold &&
           pthread_cond_timedwait(&svc->cond, &svc->lock, &until) != ETIMEDOUT) {
    }
    n = ++svc->answered;
    pthread_mutex_unlock(&svc->lock);
    return n;
}

static void answered(fake_service_t *svc)
{
    pthread_mutex_lock(&svc->lock);
    svc->in_flight--;
    pthread_mutex_unlock(&svc->lock);
}

static void send_count(int fd, int n)
{
    char answer[256], body[32];

    snprintf(body, sizeof(body), "{\"n\":%d}", n);
    snprintf(answer, sizeof(answer),
             "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    send_all(fd, answer, strlen(answer));
}

/* The requests of one connection, until the client closes it (counted)
 * or the mode closes it. */
static int serve_requests(fake_service_t *svc, const conn_t *conn)
{
    char buf[sizeof(svc->request)];

    for (int first = conn->first;; first = 0) {
        size_t len = read_request(conn->fd, buf, sizeof(buf));
        if (len == 0) {
            return 1;
        }
        if (first) {
            memcpy(svc->request, buf, len + 1);
            svc->request_len = len;
        }
        if (svc->mode == FAKE_SILENT) {
            wait_for_close(conn->fd);
            return 1;
        }
        if (svc->mode == FAKE_ANSWER) {
            hold_and_count(svc);
            send_all(conn->fd, svc->answer, strlen(svc->answer));
            answered(svc);
            /* the end of an answer without Content-Length; the cleanup closes */
            shutdown(conn->fd, SHUT_RDWR);
            return 0;
        }
        send_count(conn->fd, hold_and_count(svc));
        answered(svc);
    }
}

static void *serve_connection(void *data)
{
    conn_t *conn = data;
    fake_service_t *svc = conn->svc;
    int client_closed;

    if (svc->mode == FAKE_ANSWER_AT_ONCE) {
        send_all(conn->fd, svc->answer, strlen(svc->answer));
        wait_for_close(conn->fd);
        client_closed = 1;
    } else {
        client_closed = serve_requests(svc, conn);
    }
    pthread_mutex_lock(&svc->lock);
    svc->closed += client_closed;
    pthread_cond_broadcast(&svc->cond);
    pthread_mutex_unlock(&svc->lock);
    free(conn);
    return NULL;
}

static void *accept_connections(void *data)
{
    fake_service_t *svc = data;

    for (;;) {
        int fd = accept(svc->listen_fd, NULL, NULL);
        conn_t *conn;
        if (fd < 0) {
            return NULL;
        }
        pthread_mutex_lock(&svc->lock);
        conn = svc->accepted < FAKE_SERVICE_MAX_CONNS ? malloc(sizeof(*conn)) : NULL;
        if (conn) {
            conn->svc = svc;
            conn->fd = fd;
            conn->first = svc->accepted == 0;
            svc->fds[svc->accepted] = fd;
            if (pthread_create(&svc->threads[svc->accepted], NULL, serve_connection, conn)) {
                free(conn);
                conn = NULL;
            }
        }
        if (conn) {
            svc->accepted++;
        } else {
            close(fd);
        }
        pthread_mutex_unlock(&svc->lock);
    }
}

static int loopback_listener(int *port)
{
    struct sockaddr_in addr;
    socklen_t addr_len = sizeof(addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(listen(fd, FAKE_SERVICE_MAX_CONNS), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &addr_len), 0);
    *port = ntohs(addr.sin_port);
    return fd;
}

/* Joining in a pool cleanup keeps the threads from outliving svc even when
 * an assertion ends the test early; shutdown wakes an accept() or recv()
 * that no client will ever satisfy. */
static apr_status_t service_cleanup(void *data)
{
    fake_service_t *svc = data;

    shutdown(svc->listen_fd, SHUT_RDWR);
    pthread_join(svc->acceptor, NULL);
    for (int i = 0; i < svc->accepted; i++) {
        shutdown(svc->fds[i], SHUT_RDWR);
        pthread_join(svc->threads[i], NULL);
        close(svc->fds[i]);
    }
    close(svc->listen_fd);
    pthread_cond_destroy(&svc->cond);
    pthread_mutex_destroy(&svc->lock);
    return APR_SUCCESS;
}

fake_service_t *fake_service_start(apr_pool_t *p, fake_mode_t mode, const char *answer)
{
    fake_service_t *svc = apr_pcalloc(p, sizeof(*svc));

    assert_true((mode == FAKE_ANSWER || mode == FAKE_ANSWER_AT_ONCE) == (answer != NULL));
    svc->mode = mode;
    svc->answer = answer;
    svc->hold = 1;
    pthread_mutex_init(&svc->lock, NULL);
    pthread_cond_init(&svc->cond, NULL);
    svc->listen_fd = loopback_listener(&svc->port);
    assert_int_equal(pthread_create(&svc->acceptor, NULL, accept_connections, svc), 0);
    apr_pool_cleanup_register(p, svc, service_cleanup, apr_pool_cleanup_null);
    return svc;
}

void fake_service_stop(apr_pool_t *p, fake_service_t *svc)
{
    apr_pool_cleanup_run(p, svc, service_cleanup);
}

int fake_service_count(fake_service_t *svc, fake_count_t which)
{
    int value;

    pthread_mutex_lock(&svc->lock);
    value = which == FAKE_ACCEPTED ? svc->accepted
            : which == FAKE_CLOSED ? svc->closed
                                   : svc->answered;
    pthread_mutex_unlock(&svc->lock);
    return value;
}

void fake_service_set_hold(fake_service_t *svc, int hold)
{
    pthread_mutex_lock(&svc->lock);
    svc->hold = hold;
    pthread_mutex_unlock(&svc->lock);
}

int fake_service_closed_port(void)
{
    int port;
    close(loopback_listener(&port));
    return port;
}

const char *fake_http_answer(apr_pool_t *p, const char *status_line, const char *body)
{
    return apr_psprintf(p,
                        "HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
                        "Content-Length: %" APR_SIZE_T_FMT "\r\nConnection: close\r\n\r\n%s",
                        status_line, strlen(body), body);
}
