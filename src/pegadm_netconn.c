/* pegadm_netconn on POSIX sockets and OpenSSL 3. The socket is
 * non-blocking from the start, and every wait is a poll() bounded by the
 * operation's absolute deadline. A read polls first: it awaits the reply to
 * a request just sent, which a recv() would nearly always find not there
 * yet (EAGAIN, then poll, then recv again: three calls for one); it reads
 * at once only while data is known to wait (a recv that filled the buffer,
 * or what OpenSSL holds). Writes send first: a request fits in an idle
 * socket's buffer. TLS goes through a BIO of our own that
 * sends with MSG_NOSIGNAL: OpenSSL's socket BIO uses write(), which raises
 * SIGPIPE on a reset connection, and standalone programs do not ignore it. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <apr_strings.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "pegadm_netconn.h"

struct pegadm_netconn_tls_t {
    SSL_CTX *ctx;
};

struct pegadm_netconn_t {
    int fd;
    int more; /* the last recv() filled the buffer: more may be waiting */
    SSL *ssl;
    char why[128]; /* why TLS failed on this connection, or "" */
};

/* ---- waiting ---- */

/* Waits until fd is ready for events or the deadline passes. Past the
 * deadline it still looks once without waiting, so that a reply already
 * there is read rather than taken for a timeout. */
static apr_status_t wait_fd(int fd, short events, apr_time_t deadline)
{
    for (int tries = 0; tries < 1000; tries++) {
        apr_time_t left = deadline - apr_time_now();
        struct pollfd pfd = {fd, events, 0};
        int n = poll(&pfd, 1, left > 0 ? (int)((left + 999) / 1000) : 0);

        if (n > 0) {
            return APR_SUCCESS; /* errors and hang-ups show in the next call */
        }
        if (n < 0 && errno != EINTR) {
            return PEGADM_CACHE_REFUSED;
        }
        if (n == 0 && left <= 0) {
            return PEGADM_CACHE_TIMEOUT;
        }
    }
    return PEGADM_CACHE_TIMEOUT;
}

/* ---- a BIO on the socket that never raises SIGPIPE ---- */

static int nosig_write(BIO *b, const char *buf, int len)
{
    ssize_t n = send(*(int *)BIO_get_data(b), buf, (size_t)len, MSG_NOSIGNAL);

    BIO_clear_retry_flags(b);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        BIO_set_retry_write(b);
    }
    return (int)n;
}

static int nosig_read(BIO *b, char *buf, int len)
{
    ssize_t n = recv(*(int *)BIO_get_data(b), buf, (size_t)len, 0);

    BIO_clear_retry_flags(b);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        BIO_set_retry_read(b);
    }
    return (int)n;
}

static long nosig_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static BIO_METHOD *nosig;
static pthread_once_t nosig_once = PTHREAD_ONCE_INIT;

/* Made once per process and never freed: every connection's BIO uses it. */
static void nosig_make(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "pegadm");

    if (m) {
        BIO_meth_set_write(m, nosig_write);
        BIO_meth_set_read(m, nosig_read);
        BIO_meth_set_ctrl(m, nosig_ctrl);
    }
    nosig = m;
}

static BIO_METHOD *nosig_method(void)
{
    pthread_once(&nosig_once, nosig_make);
    return nosig;
}

/* ---- TLS settings ---- */

static apr_status_t tls_ctx_cleanup(void *data)
{
    SSL_CTX_free(((pegadm_netconn_tls_t *)data)->ctx);
    return APR_SUCCESS;
}

static const char *ssl_reason(apr_pool_t *p)
{
    unsigned long e = ERR_get_error();
    char buf[256];

    ERR_clear_error();
    if (!e) {
        return "no reason given";
    }
    ERR_error_string_n(e, buf, sizeof(buf));
    return apr_pstrdup(p, buf);
}

apr_status_t pegadm_netconn_tls_create(pegadm_netconn_tls_t **tls, const char *ca_file,
                                       const char *cert_file, const char *key_file,
                                       apr_pool_t *p, const char **why)
{
    pegadm_netconn_tls_t *t = apr_pcalloc(p, sizeof(*t));

    *why = NULL;
    ERR_clear_error();
    if (!nosig_method() || !(t->ctx = SSL_CTX_new(TLS_client_method()))) {
        *why = apr_psprintf(p, "cannot make a TLS context: %s", ssl_reason(p));
        return PEGADM_CACHE_TLS;
    }
    apr_pool_cleanup_register(p, t, tls_ctx_cleanup, apr_pool_cleanup_null);
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
    /* a record in one recv() rather than its header and then its body;
     * what is read ahead shows in SSL_has_pending, checked before a poll */
    SSL_CTX_set_read_ahead(t->ctx, 1);
    SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
    if (ca_file ? SSL_CTX_load_verify_locations(t->ctx, ca_file, NULL) != 1
                : SSL_CTX_set_default_verify_paths(t->ctx) != 1) {
        *why = apr_psprintf(p, "cannot load the CA file %s: %s", ca_file ? ca_file : "(system)",
                            ssl_reason(p));
        return PEGADM_CACHE_TLS;
    }
    if ((cert_file == NULL) != (key_file == NULL)) {
        *why = "a client certificate needs both a certificate file and a key file";
        return PEGADM_CACHE_TLS;
    }
    if (cert_file && (SSL_CTX_use_certificate_chain_file(t->ctx, cert_file) != 1 ||
                      SSL_CTX_use_PrivateKey_file(t->ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
                      SSL_CTX_check_private_key(t->ctx) != 1)) {
        *why = apr_psprintf(p, "cannot use the client certificate %s and key %s: %s", cert_file,
                            key_file, ssl_reason(p));
        return PEGADM_CACHE_TLS;
    }
    *tls = t;
    return APR_SUCCESS;
}

/* ---- connecting ---- */

static int socket_nonblocking(int family)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd >= 0 && family != AF_UNIX) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    return fd;
}

/* Connects fd to addr within the deadline. */
static apr_status_t connect_fd(int fd, const struct sockaddr *addr, socklen_t len,
                               apr_time_t deadline)
{
    int err = 0;
    socklen_t errlen = sizeof(err);
    apr_status_t rv;

    if (connect(fd, addr, len) == 0) {
        return APR_SUCCESS;
    }
    if (errno != EINPROGRESS && errno != EAGAIN && errno != EINTR) {
        return errno == ETIMEDOUT ? PEGADM_CACHE_TIMEOUT : PEGADM_CACHE_REFUSED;
    }
    rv = wait_fd(fd, POLLOUT, deadline);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) != 0 || err != 0) {
        return err == ETIMEDOUT ? PEGADM_CACHE_TIMEOUT : PEGADM_CACHE_REFUSED;
    }
    return APR_SUCCESS;
}

static apr_status_t open_unix(int *fd, const char *path, apr_time_t deadline)
{
    struct sockaddr_un sun = {0};
    apr_status_t rv;

    if (strlen(path) >= sizeof(sun.sun_path)) {
        return PEGADM_CACHE_RESOLVE;
    }
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path, strlen(path));
    if ((*fd = socket_nonblocking(AF_UNIX)) < 0) {
        return PEGADM_CACHE_REFUSED;
    }
    rv = connect_fd(*fd, (struct sockaddr *)&sun, sizeof(sun), deadline);
    if (rv != APR_SUCCESS) {
        close(*fd);
        *fd = -1;
    }
    return rv;
}

/* ---- name resolution within the deadline ---- */

static int is_ip_address(const char *name)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

/* A lookup handed to glibc's resolver threads (getaddrinfo_a): it must
 * outlive a caller that gave up on it, until the resolver is done. */
typedef struct pending_t {
    struct gaicb cb;
    struct addrinfo hints;
    char service[16];
    struct pending_t *next;
    char name[];
} pending_t;

static pthread_mutex_t abandoned_lock = PTHREAD_MUTEX_INITIALIZER;
static pending_t *abandoned; /* lookups past their caller's deadline */

static void pending_free(pending_t *q)
{
    if (q->cb.ar_result) {
        freeaddrinfo(q->cb.ar_result);
    }
    free(q);
}

/* Frees the abandoned lookups the resolver has finished with since. */
static void reap_abandoned(void)
{
    pending_t **at, *done = NULL;

    pthread_mutex_lock(&abandoned_lock);
    for (at = &abandoned; *at;) {
        pending_t *q = *at;
        if (gai_error(&q->cb) != EAI_INPROGRESS) {
            *at = q->next;
            q->next = done;
            done = q;
        } else {
            at = &q->next;
        }
    }
    pthread_mutex_unlock(&abandoned_lock);
    while (done) {
        pending_t *next = done->next;
        pending_free(done);
        done = next;
    }
}

static void abandon(pending_t *q)
{
    if (gai_cancel(&q->cb) == EAI_CANCELED) {
        free(q); /* never started: the resolver holds nothing of it */
        return;
    }
    pthread_mutex_lock(&abandoned_lock);
    q->next = abandoned;
    abandoned = q;
    pthread_mutex_unlock(&abandoned_lock);
}

/* getaddrinfo() has no deadline, and a DNS server that does not answer
 * holds it for resolv.conf's timeout times its attempts: a name is looked
 * up by glibc's resolver threads, waited for until the deadline. An
 * address needs no lookup and is parsed here. */
static apr_status_t resolve(const char *host, int port, int flags, struct addrinfo **res,
                            apr_time_t deadline)
{
    struct addrinfo hints = {0};
    char service[16];
    struct gaicb *list[1];
    pending_t *q;

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_NUMERICHOST;
    snprintf(service, sizeof(service), "%d", port);
    if (is_ip_address(host) || (flags & PEGADM_NETCONN_PLAIN_LOOKUP)) {
        if (!is_ip_address(host)) {
            hints.ai_flags = AI_NUMERICSERV;
        }
        return getaddrinfo(host, service, &hints, res) == 0 ? APR_SUCCESS
                                                            : PEGADM_CACHE_RESOLVE;
    }
    reap_abandoned();
    if (!(q = calloc(1, sizeof(*q) + strlen(host) + 1))) {
        return APR_ENOMEM;
    }
    memcpy(q->name, host, strlen(host) + 1);
    memcpy(q->service, service, sizeof(service));
    q->hints = hints;
    q->hints.ai_flags = AI_NUMERICSERV;
    q->cb.ar_name = q->name; /* calloc'ed: no result yet */
    q->cb.ar_service = q->service;
    q->cb.ar_request = &q->hints;
    list[0] = &q->cb;
    if (getaddrinfo_a(GAI_NOWAIT, list, 1, NULL) != 0) {
        free(q);
        return PEGADM_CACHE_RESOLVE;
    }
    for (int rounds = 0; rounds < 1000; rounds++) {
        apr_time_t left = deadline - apr_time_now();
        struct timespec ts;
        int e = gai_error(&q->cb);

        if (e != EAI_INPROGRESS) {
            *res = e == 0 ? q->cb.ar_result : NULL;
            q->cb.ar_result = NULL;
            free(q);
            return *res ? APR_SUCCESS : PEGADM_CACHE_RESOLVE;
        }
        if (left <= 0) {
            break;
        }
        ts.tv_sec = (time_t)apr_time_sec(left);
        ts.tv_nsec = (long)apr_time_usec(left) * 1000;
        gai_suspend((const struct gaicb *const *)list, 1, &ts);
    }
    abandon(q);
    return PEGADM_CACHE_TIMEOUT;
}

/* Each address is tried in turn within the one deadline. */
static apr_status_t open_tcp(int *fd, const char *host, int port, int flags,
                             apr_time_t deadline)
{
    struct addrinfo *res = NULL, *ai;
    apr_status_t rv = resolve(host, port, flags, &res, deadline);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = PEGADM_CACHE_REFUSED;
    for (ai = res; ai; ai = ai->ai_next) {
        *fd = socket_nonblocking(ai->ai_family);
        if (*fd < 0) {
            continue;
        }
        rv = connect_fd(*fd, ai->ai_addr, ai->ai_addrlen, deadline);
        if (rv == APR_SUCCESS) {
            break;
        }
        close(*fd);
        *fd = -1;
        if (rv == PEGADM_CACHE_TIMEOUT) {
            break;
        }
    }
    freeaddrinfo(res);
    return rv;
}

/* What made TLS fail, for the administrator: the certificate
 * check's verdict, else OpenSSL's first reason (the queue is kept). */
static void tls_failure(pegadm_netconn_t *c, char *why, apr_size_t why_size)
{
    long verdict = SSL_get_verify_result(c->ssl);
    unsigned long e = ERR_peek_error();

    if (!why || why_size == 0) {
        return;
    }
    if (verdict != X509_V_OK) {
        snprintf(why, why_size, "certificate verify failed: %s",
                 X509_verify_cert_error_string(verdict));
    } else if (e) {
        ERR_error_string_n(e, why, why_size);
    }
}

/* Waits for what an SSL call that returned ret asks for. The thread's
 * OpenSSL error queue is left empty (httpd's mod_ssl shares it). */
static apr_status_t ssl_wait(pegadm_netconn_t *c, int ret, apr_time_t deadline)
{
    switch (SSL_get_error(c->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        return wait_fd(c->fd, POLLIN, deadline);
    case SSL_ERROR_WANT_WRITE:
        return wait_fd(c->fd, POLLOUT, deadline);
    case SSL_ERROR_ZERO_RETURN:
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        return PEGADM_CACHE_REFUSED;
    default:
        tls_failure(c, c->why, sizeof(c->why));
        ERR_clear_error();
        return PEGADM_CACHE_TLS;
    }
}

static apr_status_t tls_start(pegadm_netconn_t *c, pegadm_netconn_tls_t *tls, const char *name,
                              apr_time_t deadline, char *why, apr_size_t why_size)
{
    BIO *bio;

    if (!(c->ssl = SSL_new(tls->ctx)) || !(bio = BIO_new(nosig_method()))) {
        return PEGADM_CACHE_TLS;
    }
    BIO_set_data(bio, &c->fd);
    BIO_set_init(bio, 1);
    SSL_set_bio(c->ssl, bio, bio);
    /* an address is checked against the certificate's IP addresses and
     * never sent as SNI (RFC 6066); a name against its DNS names */
    if (is_ip_address(name)
            ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), name) != 1
            : SSL_set1_host(c->ssl, name) != 1 || SSL_set_tlsext_host_name(c->ssl, name) != 1) {
        return PEGADM_CACHE_TLS;
    }
    for (int tries = 0; tries < 1000; tries++) {
        int ret;
        apr_status_t rv;

        ERR_clear_error();
        ret = SSL_connect(c->ssl);
        if (ret == 1) {
            return APR_SUCCESS;
        }
        tls_failure(c, why, why_size);
        rv = ssl_wait(c, ret, deadline);
        if (rv != APR_SUCCESS) {
            /* a peer that drops the handshake over a bad certificate */
            return rv == PEGADM_CACHE_REFUSED ? PEGADM_CACHE_TLS : rv;
        }
    }
    return PEGADM_CACHE_TLS;
}

apr_status_t pegadm_netconn_open(pegadm_netconn_t **c, const char *host, int port,
                                 pegadm_netconn_tls_t *tls, const char *server_name, int flags,
                                 apr_time_t deadline, char *why, apr_size_t why_size)
{
    pegadm_netconn_t *nc = calloc(1, sizeof(*nc));
    apr_status_t rv;

    *c = NULL;
    if (!nc) {
        return APR_ENOMEM;
    }
    nc->fd = -1;
    rv = host[0] == '/' ? open_unix(&nc->fd, host, deadline)
                        : open_tcp(&nc->fd, host, port, flags, deadline);
    if (rv == APR_SUCCESS && tls) {
        rv = tls_start(nc, tls, server_name ? server_name : host, deadline, why, why_size);
    }
    if (rv != APR_SUCCESS) {
        pegadm_netconn_close(nc);
        return rv;
    }
    *c = nc;
    return APR_SUCCESS;
}

/* ---- reading and writing ---- */

static apr_status_t plain_write(pegadm_netconn_t *c, const char *buf, apr_size_t len,
                                apr_size_t *done, apr_time_t deadline)
{
    ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);

    if (n >= 0) {
        *done = (apr_size_t)n;
        return APR_SUCCESS;
    }
    *done = 0;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        return wait_fd(c->fd, POLLOUT, deadline);
    }
    return PEGADM_CACHE_REFUSED;
}

static apr_status_t tls_write(pegadm_netconn_t *c, const char *buf, apr_size_t len,
                              apr_size_t *done, apr_time_t deadline)
{
    int ret;

    ERR_clear_error();
    ret = SSL_write_ex(c->ssl, buf, len, done);
    return ret == 1 ? APR_SUCCESS : ssl_wait(c, ret, deadline);
}

apr_status_t pegadm_netconn_write(pegadm_netconn_t *c, const void *buf, apr_size_t len,
                                  apr_time_t deadline)
{
    const char *at = buf;

    /* each round moves data or waits for the socket, within the deadline */
    for (int rounds = 0; len > 0 && rounds < 100000; rounds++) {
        apr_size_t done = 0;
        apr_status_t rv = c->ssl ? tls_write(c, at, len, &done, deadline)
                                 : plain_write(c, at, len, &done, deadline);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        at += done;
        len -= done;
    }
    return len == 0 ? APR_SUCCESS : PEGADM_CACHE_TIMEOUT;
}

static apr_status_t tls_read(pegadm_netconn_t *c, void *buf, apr_size_t *len,
                             apr_time_t deadline)
{
    apr_size_t got = 0;
    int ret;

    ERR_clear_error();
    ret = SSL_read_ex(c->ssl, buf, *len, &got);
    if (ret == 1) {
        *len = got;
        return APR_SUCCESS;
    }
    *len = 0;
    return ssl_wait(c, ret, deadline); /* WANT_READ: waits for the socket */
}

static apr_status_t plain_read(pegadm_netconn_t *c, void *buf, apr_size_t *len,
                               apr_time_t deadline)
{
    ssize_t n = recv(c->fd, buf, *len, 0);

    if (n > 0) {
        c->more = (apr_size_t)n == *len;
        *len = (apr_size_t)n;
        return APR_SUCCESS;
    }
    *len = 0;
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        return PEGADM_CACHE_REFUSED;
    }
    return wait_fd(c->fd, POLLIN, deadline);
}

apr_status_t pegadm_netconn_read(pegadm_netconn_t *c, void *buf, apr_size_t *len,
                                 apr_time_t deadline)
{
    apr_size_t size = *len;
    int buffered = c->ssl ? SSL_has_pending(c->ssl) : c->more;

    /* poll first unless data is known to wait: on an empty socket a read
     * would only say EAGAIN (an end of file or a reset also wakes poll) */
    if (!buffered) {
        apr_status_t rv = wait_fd(c->fd, POLLIN, deadline);
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    for (int rounds = 0; rounds < 100000; rounds++) {
        apr_status_t rv;

        *len = size;
        rv = c->ssl ? tls_read(c, buf, len, deadline) : plain_read(c, buf, len, deadline);
        if (rv != APR_SUCCESS || *len > 0) {
            return rv;
        }
    }
    return PEGADM_CACHE_TIMEOUT;
}

const char *pegadm_netconn_failure(const pegadm_netconn_t *c)
{
    return c->why;
}

void pegadm_netconn_close(pegadm_netconn_t *c)
{
    if (!c) {
        return;
    }
    SSL_free(c->ssl);
    if (c->fd >= 0) {
        close(c->fd);
    }
    free(c);
}
