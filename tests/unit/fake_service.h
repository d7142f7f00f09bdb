/* A fake HTTP service on 127.0.0.1 for the unit tests of the upstream calls:
 * a thread accepts connections (up to FAKE_SERVICE_MAX_CONNS, each served by
 * a thread of its own) and answers each request as its mode says. It
 * records the first request it reads and counts connections and answers.
 * Include after cmocka.h: starting it asserts. It lives in the pool given;
 * the pool's cleanup (or fake_service_stop) ends its threads. */
#ifndef PEGADM_FAKE_SERVICE_H
#define PEGADM_FAKE_SERVICE_H

#include <pthread.h>
#include <stddef.h>

#include <apr_pools.h>

#define FAKE_SERVICE_MAX_CONNS 8

typedef enum {
    FAKE_ANSWER,         /* read the request, send the answer given, close */
    FAKE_ANSWER_AT_ONCE, /* send the answer before reading (a plain server where
                          * TLS is expected), then wait for the client to go */
    FAKE_SILENT,         /* read the request, never answer: the client gives up */
    FAKE_COUNT           /* keep-alive: answer every request {"n":N}, N counting
                          * the requests of the whole service from 1 */
} fake_mode_t;

typedef struct {
    int port;
    /* the first request read, complete once fake_service_stop has returned */
    char request[16384];
    size_t request_len;
    /* the rest is the service's own: read the counts with fake_service_count */
    fake_mode_t mode;
    const char *answer;
    int listen_fd;
    pthread_t acceptor;
    pthread_t threads[FAKE_SERVICE_MAX_CONNS];
    int fds[FAKE_SERVICE_MAX_CONNS];
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int accepted;  /* connections */
    int closed;    /* connections the client closed */
    int answered;  /* requests answered */
    int in_flight; /* requests read and not yet answered */
    int hold;      /* answer once this many requests are in flight */
} fake_service_t;

typedef enum { FAKE_ACCEPTED, FAKE_CLOSED, FAKE_ANSWERED } fake_count_t;

/* Starts the service; answer is a whole HTTP answer, for FAKE_ANSWER and
 * FAKE_ANSWER_AT_ONCE only. */
fake_service_t *fake_service_start(apr_pool_t *p, fake_mode_t mode, const char *answer);

/* Ends the service now: waits for its threads, closing what is still open. */
void fake_service_stop(apr_pool_t *p, fake_service_t *svc);

/* A count so far; only while the service runs (before fake_service_stop). */
int fake_service_count(fake_service_t *svc, fake_count_t which);

/* Requests wait (5 s at most) until this many are in flight, then all are
 * answered: proof that calls ran at the same time. 1 by default. */
void fake_service_set_hold(fake_service_t *svc, int hold);

/* A port nobody listens on: bound, then closed. */
int fake_service_closed_port(void);

/* A whole HTTP answer with a JSON body and Connection: close, in p. */
const char *fake_http_answer(apr_pool_t *p, const char *status_line, const char *body);

#endif
