/* The memcached client: libmemcached for what it does well, the key's
 * server (its ketama continuum, the one other libmemcached clients with
 * KETAMA_WEIGHTED use), and the text protocol on our own sockets for the
 * rest, because libmemcached's I/O cannot keep one deadline per operation:
 * its connect timeout counts per address tried and its poll timeout per
 * wait, so one operation may take several of them; a failed server is then
 * skipped for RETRY_TIMEOUT seconds (more failed requests after a restart
 * than the one that found the dead connection); and it resolves names
 * inside requests without a bound. Here one deadline (monotonic clock) is
 * counted down by the wait for a pooled connection, the connect, every
 * write and every read.
 *
 * Where it stops: values are opaque bytes (flags 0), one key per request,
 * no binary or meta protocol (the text protocol's get, set, add, delete,
 * gets and cas, which every memcached and its proxies speak). */
#include "pegadm_memcache.h"
#include "pegadm_cacheerr.h"

#include <apr_atomic.h>
#include <apr_lib.h>
#include <apr_network_io.h>
#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>

#include <libmemcached/memcached.h>

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Longest answer line: "VALUE <250-byte key> <flags> <bytes> <cas>" */
#define CONN_BUF 4096
/* How long a host name that did not resolve is answered RESOLVE at once */
#define RESOLVE_RETRY apr_time_from_sec(5)
/* memcached reads an expiry beyond 30 days as a point in time */
#define RELATIVE_EXPIRY_MAX ((apr_int64_t)30 * 24 * 3600)

typedef struct conn_t {
    struct conn_t *next; /* in its server's idle list */
    int fd;
    int got;  /* a byte of the answer arrived during this operation */
    int more; /* the last recv() filled the buffer: more may be waiting */
    apr_size_t start, end;
    char buf[CONN_BUF];
} conn_t;

typedef struct {
    const char *name; /* as configured, for logs */
    const char *host; /* NULL for a unix socket */
    const char *path; /* the unix socket, or NULL */
    apr_port_t port;
    apr_thread_mutex_t *mutex;
    apr_thread_cond_t *freed;
    struct addrinfo *addrs; /* set once, freed with the client */
    apr_time_t resolve_after;
    conn_t *idle;
    unsigned int open; /* this process's connections, idle or in use */
    pid_t pid;         /* the process the connections belong to */
    volatile apr_uint32_t *connects;
} server_t;

struct pegadm_memcache_t {
    server_t *servers;
    int nservers;
    memcached_st *ring; /* only read after create: thread-safe */
    apr_interval_time_t timeout;
    unsigned int max_conns;
    pegadm_memcache_observe_fn observer;
    void *baton;
    volatile apr_uint32_t connects;
};

static apr_time_t mono_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (apr_time_t)ts.tv_sec * APR_USEC_PER_SEC + ts.tv_nsec / 1000;
}

/* ---- the server list ---- */

static const char *parse_port(const char *s, apr_port_t *port)
{
    long v = 0;

    if (!*s) {
        return "an empty port";
    }
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || (v = v * 10 + (*s - '0')) > 65535) {
            return "a port that is not a number from 1 to 65535";
        }
    }
    if (v == 0) {
        return "a port that is not a number from 1 to 65535";
    }
    *port = (apr_port_t)v;
    return NULL;
}

static int host_char(char c)
{
    return apr_isalnum(c) || c == '.' || c == '-' || c == '_' || c == ':' || c == '%';
}

/* One entry: "/path", "[v6]", "[v6]:port", "host", "host:port", or a bare
 * IPv6 address (more than one colon) on the default port. */
static const char *parse_server(apr_pool_t *p, char *entry, server_t *s)
{
    char *colon;

    s->name = apr_pstrdup(p, entry);
    s->port = PEGADM_MEMCACHE_PORT;
    if (entry[0] == '/') {
        if (strlen(entry) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
            return "a unix socket path too long";
        }
        s->path = s->name;
        return NULL;
    }
    if (entry[0] == '[') {
        char *close = strchr(entry, ']');
        if (!close || close == entry + 1 || (close[1] && close[1] != ':')) {
            return "an IPv6 address not written [address] or [address]:port";
        }
        *close = '\0';
        s->host = entry + 1;
        colon = close[1] ? close + 1 : NULL;
    } else {
        colon = strchr(entry, ':');
        s->host = entry;
        if (colon && strchr(colon + 1, ':')) {
            colon = NULL; /* a bare IPv6 address */
        }
        if (colon) {
            *colon = '\0';
        }
    }
    if (!*s->host) {
        return "an empty host";
    }
    for (const char *c = s->host; *c; c++) {
        if (!host_char(*c)) {
            return "a host name with a character no host name has";
        }
    }
    s->host = apr_pstrdup(p, s->host);
    return colon ? parse_port(colon + 1, &s->port) : NULL;
}

static const char *strip_scheme(const char *servers)
{
    if (strncmp(servers, "memcache://", 11) == 0) {
        return servers + 11;
    }
    return strncmp(servers, "memcache:", 9) == 0 ? servers + 9 : servers;
}

static const char *parse_servers(apr_pool_t *p, const char *servers, server_t **out, int *n)
{
    char *list = apr_pstrdup(p, strip_scheme(servers));
    char *entry = list;
    int count = 1;
    server_t *s;

    for (const char *c = list; *c; c++) {
        count += *c == ',';
    }
    s = apr_pcalloc(p, count * sizeof(*s));
    for (*n = 0; entry; (*n)++) {
        char *next = strchr(entry, ',');
        const char *why;

        if (next) {
            *next++ = '\0';
        }
        if (!*entry) {
            return "an empty entry (two commas, or a comma at an end)";
        }
        why = parse_server(p, entry, &s[*n]);
        if (why) {
            return apr_psprintf(p, "%s: %s", s[*n].name, why);
        }
        for (int i = 0; i < *n; i++) {
            if (strcmp(s[i].name, s[*n].name) == 0) {
                return apr_psprintf(p, "%s is listed twice", s[i].name);
            }
        }
        entry = next;
    }
    *out = s;
    return NULL;
}

const char *pegadm_memcache_check_servers(apr_pool_t *p, const char *servers)
{
    server_t *s;
    int n;

    return parse_servers(p, servers, &s, &n);
}

/* ---- sockets with a deadline ---- */

/* What a failed socket call means for the operation. */
static apr_status_t errno_status(int e)
{
    switch (e) {
    case ECONNREFUSED:
    case ECONNRESET:
    case ECONNABORTED:
    case EPIPE:
    case ENOTCONN:
    case ENOENT: /* a unix socket nobody listens on */
    case EHOSTUNREACH:
    case ENETUNREACH:
    case ENETDOWN:
    case EHOSTDOWN:
        return PEGADM_CACHE_REFUSED;
    case ETIMEDOUT:
        return PEGADM_CACHE_TIMEOUT;
    default:
        return APR_FROM_OS_ERROR(e);
    }
}

/* Waits until fd is ready for events, or the deadline passes. Past the
 * deadline it still looks once without waiting, so that an answer already
 * there is read rather than taken for a timeout. */
static apr_status_t wait_fd(int fd, short events, apr_time_t deadline)
{
    for (;;) {
        apr_time_t left = deadline - mono_now();
        struct pollfd pfd = {.fd = fd, .events = events};
        int n = poll(&pfd, 1, left > 0 ? (int)((left + 999) / 1000) : 0);

        if (n > 0) {
            return APR_SUCCESS; /* the next call on fd tells an error */
        }
        if (n < 0 && errno != EINTR) {
            return APR_FROM_OS_ERROR(errno);
        }
        if (n == 0 && left <= 0) {
            return PEGADM_CACHE_TIMEOUT;
        }
    }
}

static apr_status_t connect_addr(const struct sockaddr *sa, socklen_t len, apr_time_t deadline,
                                 int *out)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1, e = 0;
    socklen_t elen = sizeof(e);

    *out = -1;
    if (fd < 0) {
        return APR_FROM_OS_ERROR(errno);
    }
    if (sa->sa_family != AF_UNIX) {
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    if (connect(fd, sa, len) != 0) {
        e = errno;
        if (e == EINPROGRESS || e == EINTR) {
            apr_status_t rv = wait_fd(fd, POLLOUT, deadline);
            if (rv != APR_SUCCESS) {
                close(fd);
                return rv;
            }
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen) != 0) {
                e = errno;
            }
        }
    }
    if (e != 0) {
        close(fd);
        /* a unix socket whose listener stopped accepting (its backlog is
         * full): what a hung server looks like there */
        return e == EAGAIN ? PEGADM_CACHE_TIMEOUT : errno_status(e);
    }
    *out = fd;
    return APR_SUCCESS;
}

/* The server's addresses: resolved once, and again after a failure no
 * sooner than RESOLVE_RETRY later (getaddrinfo has no deadline of ours;
 * numeric addresses never ask a resolver). */
static apr_status_t server_addrs(server_t *s, struct addrinfo **out)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    char port[8];
    apr_time_t now = mono_now();
    int gai;

    apr_thread_mutex_lock(s->mutex);
    *out = s->addrs;
    if (!*out && now < s->resolve_after) {
        apr_thread_mutex_unlock(s->mutex);
        return PEGADM_CACHE_RESOLVE;
    }
    apr_thread_mutex_unlock(s->mutex);
    if (*out) {
        return APR_SUCCESS;
    }
    apr_snprintf(port, sizeof(port), "%u", (unsigned int)s->port);
    gai = getaddrinfo(s->host, port, &hints, &res);
    apr_thread_mutex_lock(s->mutex);
    if (gai == 0 && !s->addrs) {
        s->addrs = res;
        res = NULL;
    } else if (gai != 0) {
        s->resolve_after = now + RESOLVE_RETRY;
    }
    *out = s->addrs;
    apr_thread_mutex_unlock(s->mutex);
    if (res) {
        freeaddrinfo(res);
    }
    return *out ? APR_SUCCESS : PEGADM_CACHE_RESOLVE;
}

/* A new connection to s: each address in turn until one connects or the
 * deadline passes. */
static apr_status_t connect_any(server_t *s, apr_time_t deadline, int *fd)
{
    struct addrinfo *ai;
    apr_status_t rv;

    if (s->path) {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        memcpy(sun.sun_path, s->path, strlen(s->path) + 1);
        return connect_addr((struct sockaddr *)&sun, sizeof(sun), deadline, fd);
    }
    rv = server_addrs(s, &ai);
    for (; rv == APR_SUCCESS; ai = ai->ai_next) {
        rv =
            ai ? connect_addr(ai->ai_addr, ai->ai_addrlen, deadline, fd) : PEGADM_CACHE_RESOLVE;
        if (rv == APR_SUCCESS || rv == PEGADM_CACHE_TIMEOUT || !ai || !ai->ai_next) {
            return rv;
        }
        rv = APR_SUCCESS; /* refused there: the next address */
    }
    return rv;
}

static apr_status_t server_connect(server_t *s, apr_time_t deadline, int *fd)
{
    apr_status_t rv = connect_any(s, deadline, fd);

    if (rv == APR_SUCCESS) {
        apr_atomic_inc32(s->connects);
    }
    return rv;
}

/* Sends every byte of iov, without SIGPIPE from a closed connection. */
static apr_status_t send_all(conn_t *c, struct iovec *iov, int iovcnt, apr_time_t deadline)
{
    while (iovcnt > 0) {
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)iovcnt};
        ssize_t n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);

        if (n < 0) {
            apr_status_t rv;
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                return errno_status(errno);
            }
            rv = wait_fd(c->fd, POLLOUT, deadline);
            if (rv != APR_SUCCESS) {
                return rv;
            }
            continue;
        }
        while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            iov->iov_base = (char *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
        }
    }
    return APR_SUCCESS;
}

/* Reads what has arrived (waiting for something) after the unread bytes.
 * It polls first: an answer is awaited right after its request, and a
 * recv() would nearly always find nothing yet (EAGAIN, poll, recv: three
 * calls for one); it reads at once only after a recv that filled the
 * buffer. An end of file or a reset wakes poll too. */
static apr_status_t fill(conn_t *c, apr_time_t deadline)
{
    int wait = !c->more;

    if (c->start > 0) {
        memmove(c->buf, c->buf + c->start, c->end - c->start);
        c->end -= c->start;
        c->start = 0;
    }
    if (c->end == CONN_BUF) {
        return PEGADM_CACHE_PROTOCOL; /* a line longer than any answer */
    }
    for (;;) {
        apr_status_t rv = wait ? wait_fd(c->fd, POLLIN, deadline) : APR_SUCCESS;
        ssize_t n;

        if (rv != APR_SUCCESS) {
            return rv;
        }
        n = recv(c->fd, c->buf + c->end, CONN_BUF - c->end, 0);
        if (n > 0) {
            c->more = (apr_size_t)n == CONN_BUF - c->end;
            c->end += (apr_size_t)n;
            c->got = 1;
            return APR_SUCCESS;
        }
        if (n == 0) {
            return PEGADM_CACHE_REFUSED; /* the server closed the connection */
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            return errno_status(errno);
        }
        wait = 1;
    }
}

/* The next answer line, without its "\r\n", NUL-terminated in c->buf:
 * valid until the next read. */
static apr_status_t read_line(conn_t *c, apr_time_t deadline, char **line)
{
    for (;;) {
        char *at = c->buf + c->start;
        char *nl = memchr(at, '\n', c->end - c->start);
        apr_status_t rv;

        if (nl) {
            if (nl == at || nl[-1] != '\r') {
                return PEGADM_CACHE_PROTOCOL;
            }
            nl[-1] = '\0';
            c->start = (apr_size_t)(nl + 1 - c->buf);
            *line = at;
            return APR_SUCCESS;
        }
        rv = fill(c, deadline);
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
}

/* A value's n bytes and their "\r\n": into dst, or dropped when dst is NULL. */
static apr_status_t read_value(conn_t *c, unsigned char *dst, apr_size_t n, apr_time_t deadline)
{
    apr_size_t done = 0;

    while (done < n + 2) {
        apr_size_t take, data;
        apr_status_t rv;

        if (c->start == c->end) {
            c->start = c->end = 0;
            rv = fill(c, deadline);
            if (rv != APR_SUCCESS) {
                return rv;
            }
        }
        take = c->end - c->start;
        if (take > n + 2 - done) {
            take = n + 2 - done;
        }
        data = done < n ? (take < n - done ? take : n - done) : 0;
        if (dst && data) {
            memcpy(dst + done, c->buf + c->start, data);
        }
        for (apr_size_t i = data; i < take; i++) {
            if (c->buf[c->start + i] != "\r\n"[done + i - n]) {
                return PEGADM_CACHE_PROTOCOL;
            }
        }
        c->start += take;
        done += take;
    }
    return APR_SUCCESS;
}

/* ---- the pool: at most max_conns connections per server and process ---- */

static void conn_close(conn_t *c)
{
    close(c->fd);
    free(c);
}

/* Connections made before a fork belong to the parent: the child closes
 * its copies of the idle ones unused and starts its own count. Locked. */
static void forget_other_process(server_t *s)
{
    pid_t pid = getpid();

    if (s->pid == pid) {
        return;
    }
    while (s->idle) {
        conn_t *c = s->idle;
        s->idle = c->next;
        conn_close(c);
    }
    s->open = 0;
    s->pid = pid;
}

/* An idle connection with something to read has been closed by the server
 * (a restart, an idle timeout) or holds an answer nobody asked for. */
static int closed_by_peer(conn_t *c)
{
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};

    return poll(&pfd, 1, 0) != 0;
}

static apr_status_t conn_open(server_t *s, apr_time_t deadline, conn_t **out)
{
    conn_t *c = malloc(sizeof(*c));
    apr_status_t rv;

    if (!c) {
        return APR_ENOMEM;
    }
    rv = server_connect(s, deadline, &c->fd);
    if (rv != APR_SUCCESS) {
        free(c);
        return rv;
    }
    c->start = c->end = 0;
    c->more = 0;
    *out = c;
    return APR_SUCCESS;
}

/* Gives a place back: the connection to the idle list when keep, else
 * closed; either way one waiter may go on. */
static void checkin(server_t *s, conn_t *c, int keep)
{
    apr_thread_mutex_lock(s->mutex);
    if (c && keep && s->pid == getpid()) {
        c->next = s->idle;
        s->idle = c;
    } else {
        if (c) {
            conn_close(c);
        }
        s->open--;
    }
    apr_thread_cond_signal(s->freed);
    apr_thread_mutex_unlock(s->mutex);
}

/* A connection to s for one operation: an idle one (*reused), else a new
 * one while fewer than max are open, else the first given back before the
 * deadline (PEGADM_CACHE_BUSY when none is). */
static apr_status_t checkout(pegadm_memcache_t *mc, server_t *s, apr_time_t deadline,
                             conn_t **out, int *reused)
{
    apr_thread_mutex_lock(s->mutex);
    for (;;) {
        apr_time_t left;

        forget_other_process(s);
        if (s->idle) {
            conn_t *c = s->idle;
            s->idle = c->next;
            apr_thread_mutex_unlock(s->mutex);
            if (!closed_by_peer(c)) {
                *out = c;
                *reused = 1;
                return APR_SUCCESS;
            }
            conn_close(c);
            apr_thread_mutex_lock(s->mutex);
            s->open--;
            continue;
        }
        if (s->open < mc->max_conns) {
            apr_status_t rv;
            s->open++;
            apr_thread_mutex_unlock(s->mutex);
            *reused = 0;
            rv = conn_open(s, deadline, out);
            if (rv != APR_SUCCESS) {
                checkin(s, NULL, 0);
            }
            return rv;
        }
        left = deadline - mono_now();
        if (left <= 0) {
            apr_thread_mutex_unlock(s->mutex);
            return PEGADM_CACHE_BUSY;
        }
        apr_thread_cond_timedwait(s->freed, s->mutex, left);
    }
}

/* ---- the operations ---- */

typedef struct op_t op_t;
typedef apr_status_t (*exchange_fn)(conn_t *c, op_t *op, apr_time_t deadline);

struct op_t {
    const char *name; /* for the observer */
    exchange_fn exchange;
    const char *key;
    apr_size_t key_len;
    const unsigned char *val; /* set, add, del_if */
    apr_size_t len;
    unsigned char *buf; /* get */
    apr_size_t *buf_len;
    const char *store; /* "set" or "add" */
    long exptime;
    apr_pool_t *p;
};

/* memcached's key rules: 1 to 250 bytes, no space and no control character */
static apr_status_t check_key(const char *key, apr_size_t len)
{
    if (len < 1 || len > PEGADM_MEMCACHE_KEY_MAX) {
        return PEGADM_CACHE_PROTOCOL;
    }
    for (apr_size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)key[i];
        if (ch <= ' ' || ch == 0x7f) {
            return PEGADM_CACHE_PROTOCOL;
        }
    }
    return APR_SUCCESS;
}

static apr_status_t send_request(conn_t *c, const char *head, const unsigned char *val,
                                 apr_size_t len, apr_time_t deadline)
{
    struct iovec iov[3] = {{(void *)head, strlen(head)}, {(void *)val, len}, {"\r\n", 2}};

    return send_all(c, iov, val ? 3 : 1, deadline);
}

/* An answer that is none of the expected ones. */
static apr_status_t error_answer(const char *line)
{
    /* SERVER_ERROR: out of memory, an object too large, ... */
    return strncmp(line, "SERVER_ERROR", 12) == 0 ? PEGADM_CACHE_SERVER : PEGADM_CACHE_PROTOCOL;
}

static int digits(const char *s, apr_uint64_t *out)
{
    apr_uint64_t v = 0;

    if (!*s || strlen(s) > 19) {
        return 0;
    }
    for (; *s; s++) {
        if (*s < '0' || *s > '9') {
            return 0;
        }
        v = v * 10 + (apr_uint64_t)(*s - '0');
    }
    *out = v;
    return 1;
}

/* The first line of a get's (or with cas, a gets') answer: "END" (a miss:
 * APR_NOTFOUND) or "VALUE <key> <flags> <bytes>[ <cas>]" for this key. */
static apr_status_t read_value_line(conn_t *c, op_t *op, apr_time_t deadline,
                                    apr_uint64_t *bytes, apr_uint64_t *cas)
{
    char *line, *f[6], *last;
    apr_uint64_t flags;
    int n = 0, want = cas ? 5 : 4;
    apr_status_t rv = read_line(c, deadline, &line);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (strcmp(line, "END") == 0) {
        return APR_NOTFOUND;
    }
    if (strncmp(line, "VALUE ", 6) != 0) {
        return error_answer(line);
    }
    for (char *t = apr_strtok(line, " ", &last); t && n < 6; t = apr_strtok(NULL, " ", &last)) {
        f[n++] = t;
    }
    if (n != want || strlen(f[1]) != op->key_len || memcmp(f[1], op->key, op->key_len) != 0 ||
        !digits(f[2], &flags) || !digits(f[3], bytes) || (cas && !digits(f[4], cas))) {
        return PEGADM_CACHE_PROTOCOL;
    }
    return APR_SUCCESS;
}

static apr_status_t expect_line(conn_t *c, const char *want, apr_time_t deadline)
{
    char *line;
    apr_status_t rv = read_line(c, deadline, &line);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    return strcmp(line, want) == 0 ? APR_SUCCESS : error_answer(line);
}

static apr_status_t get_exchange(conn_t *c, op_t *op, apr_time_t deadline)
{
    char head[PEGADM_MEMCACHE_KEY_MAX + 16];
    apr_uint64_t bytes = 0;
    apr_status_t rv;

    apr_snprintf(head, sizeof(head), "get %.*s\r\n", (int)op->key_len, op->key);
    rv = send_request(c, head, NULL, 0, deadline);
    if (rv == APR_SUCCESS) {
        rv = read_value_line(c, op, deadline, &bytes, NULL);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (bytes > *op->buf_len) {
        return PEGADM_CACHE_PROTOCOL; /* larger than asked for: never cut */
    }
    rv = read_value(c, op->buf, (apr_size_t)bytes, deadline);
    if (rv == APR_SUCCESS) {
        rv = expect_line(c, "END", deadline);
    }
    if (rv == APR_SUCCESS) {
        *op->buf_len = (apr_size_t)bytes;
    }
    return rv;
}

static apr_status_t store_exchange(conn_t *c, op_t *op, apr_time_t deadline)
{
    char head[PEGADM_MEMCACHE_KEY_MAX + 64], *line;
    apr_status_t rv;

    apr_snprintf(head, sizeof(head), "%s %.*s 0 %ld %" APR_SIZE_T_FMT "\r\n", op->store,
                 (int)op->key_len, op->key, op->exptime, op->len);
    rv =
        send_request(c, head, op->val ? op->val : (const unsigned char *)"", op->len, deadline);
    if (rv == APR_SUCCESS) {
        rv = read_line(c, deadline, &line);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (strcmp(line, "STORED") == 0) {
        return APR_SUCCESS;
    }
    if (strcmp(line, "NOT_STORED") == 0 && strcmp(op->store, "add") == 0) {
        return APR_EEXIST;
    }
    return error_answer(line);
}

static apr_status_t del_exchange(conn_t *c, op_t *op, apr_time_t deadline)
{
    char head[PEGADM_MEMCACHE_KEY_MAX + 16], *line;
    apr_status_t rv;

    apr_snprintf(head, sizeof(head), "delete %.*s\r\n", (int)op->key_len, op->key);
    rv = send_request(c, head, NULL, 0, deadline);
    if (rv == APR_SUCCESS) {
        rv = read_line(c, deadline, &line);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (strcmp(line, "DELETED") == 0 || strcmp(line, "NOT_FOUND") == 0) {
        return APR_SUCCESS;
    }
    return error_answer(line);
}

/* gets, then the value compared: APR_SUCCESS with *cas when the key holds
 * exactly op->val, APR_NOTFOUND when it is absent or holds another. */
static apr_status_t gets_same(conn_t *c, op_t *op, apr_time_t deadline, apr_uint64_t *cas)
{
    char head[PEGADM_MEMCACHE_KEY_MAX + 16];
    unsigned char *held = NULL;
    apr_uint64_t bytes = 0;
    apr_status_t rv;

    apr_snprintf(head, sizeof(head), "gets %.*s\r\n", (int)op->key_len, op->key);
    rv = send_request(c, head, NULL, 0, deadline);
    if (rv == APR_SUCCESS) {
        rv = read_value_line(c, op, deadline, &bytes, cas);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (bytes == op->len) {
        held = apr_palloc(op->p, op->len + 1);
    }
    rv = read_value(c, held, (apr_size_t)bytes, deadline);
    if (rv == APR_SUCCESS) {
        rv = expect_line(c, "END", deadline);
    }
    if (rv == APR_SUCCESS && (!held || memcmp(held, op->val, op->len) != 0)) {
        rv = APR_NOTFOUND;
    }
    return rv;
}

/* Compare-and-delete: gets, and when the value is the one given, a cas
 * with that unique number and an expiry already past ("-1": memcached
 * stores the item as expired, so it is gone for every reader). The cas
 * fails (EXISTS) when anyone changed the key since the gets, so a newer
 * value is never deleted. The text protocol's delete takes no cas; meta
 * commands (md with C) would, but need memcached 1.6 and its proxies. */
static apr_status_t del_if_exchange(conn_t *c, op_t *op, apr_time_t deadline)
{
    char head[PEGADM_MEMCACHE_KEY_MAX + 48], *line;
    apr_uint64_t cas = 0;
    apr_status_t rv = gets_same(c, op, deadline, &cas);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    apr_snprintf(head, sizeof(head), "cas %.*s 0 -1 0 %" APR_UINT64_T_FMT "\r\n",
                 (int)op->key_len, op->key, cas);
    rv = send_request(c, head, (const unsigned char *)"", 0, deadline);
    if (rv == APR_SUCCESS) {
        rv = read_line(c, deadline, &line);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (strcmp(line, "STORED") == 0) {
        return APR_SUCCESS;
    }
    if (strcmp(line, "EXISTS") == 0 || strcmp(line, "NOT_FOUND") == 0) {
        return APR_NOTFOUND;
    }
    return error_answer(line);
}

/* ---- one operation on the key's server ---- */

/* As a Redis Cluster's hash tag: when the key holds a non-empty part
 * between its first '{' and the next '}', that part alone picks the server,
 * so that all keys of one customer (pegadm_kvstore's "{tag}") share one
 * server, and a server that is down fails its own customers only, whole. */
static int server_index(const pegadm_memcache_t *mc, const char *key, apr_size_t len)
{
    const char *open = memchr(key, '{', len);
    const char *close = open ? memchr(open + 1, '}', len - (apr_size_t)(open + 1 - key)) : NULL;
    uint32_t i;

    if (mc->nservers == 1) {
        return 0;
    }
    if (close && close > open + 1) {
        key = open + 1;
        len = (apr_size_t)(close - key);
    }
    i = memcached_generate_hash(mc->ring, key, len);
    return i < (uint32_t)mc->nservers ? (int)i : 0;
}

/* A clear answer leaves the connection ready for the next request; after
 * anything else an answer may still be on its way, so it is closed. */
static int answered(apr_status_t rv)
{
    return rv == APR_SUCCESS || rv == APR_NOTFOUND || rv == APR_EEXIST;
}

static apr_status_t on_server(pegadm_memcache_t *mc, server_t *s, op_t *op, apr_time_t deadline)
{
    conn_t *c;
    int reused, fd;
    apr_status_t rv = checkout(mc, s, deadline, &c, &reused);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    c->got = 0;
    rv = op->exchange(c, op, deadline);
    if (rv == PEGADM_CACHE_REFUSED && reused && !c->got) {
        /* a connection the server closed while it was idle (a restart)
         * fails no request: the same one again on a new connection, which
         * takes the old one's place in the pool */
        rv = server_connect(s, deadline, &fd);
        if (rv == APR_SUCCESS) {
            close(c->fd);
            c->fd = fd;
            c->start = c->end = 0;
            c->more = 0;
            rv = op->exchange(c, op, deadline);
        }
    }
    checkin(s, c, answered(rv));
    return rv;
}

static apr_status_t run_op(pegadm_memcache_t *mc, op_t *op)
{
    apr_time_t start = mono_now();
    apr_status_t rv = check_key(op->key, op->key_len);

    if (rv == APR_SUCCESS) {
        server_t *s = &mc->servers[server_index(mc, op->key, op->key_len)];
        rv = on_server(mc, s, op, start + mc->timeout);
    }
    if (mc->observer) {
        mc->observer(mc->baton, op->name, (double)(mono_now() - start) / APR_USEC_PER_SEC, rv);
    }
    return rv;
}

/* An expiry in whole seconds, rounded up; beyond 30 days memcached wants
 * the point in time. */
static long exptime_of(apr_interval_time_t ttl)
{
    apr_int64_t s = (ttl + APR_USEC_PER_SEC - 1) / APR_USEC_PER_SEC;

    if (s > RELATIVE_EXPIRY_MAX) {
        s += (apr_int64_t)time(NULL);
    }
    return (long)s;
}

apr_status_t pegadm_memcache_get(void *mc, const char *key, apr_size_t key_len,
                                 unsigned char *buf, apr_size_t *len, apr_pool_t *p)
{
    op_t op = {.name = "get",
               .exchange = get_exchange,
               .key = key,
               .key_len = key_len,
               .buf = buf,
               .buf_len = len,
               .p = p};

    return run_op(mc, &op);
}

static apr_status_t store(void *mc, const char *cmd, const char *key, apr_size_t key_len,
                          const unsigned char *val, apr_size_t len, apr_interval_time_t ttl,
                          apr_pool_t *p)
{
    op_t op = {.name = strcmp(cmd, "add") == 0 ? "mark" : cmd,
               .exchange = store_exchange,
               .key = key,
               .key_len = key_len,
               .val = val,
               .len = len,
               .store = cmd,
               .exptime = exptime_of(ttl),
               .p = p};

    if (ttl <= 0) {
        return APR_EINVAL;
    }
    return run_op(mc, &op);
}

apr_status_t pegadm_memcache_set(void *mc, const char *key, apr_size_t key_len,
                                 const unsigned char *val, apr_size_t len,
                                 apr_interval_time_t ttl, apr_pool_t *p)
{
    return store(mc, "set", key, key_len, val, len, ttl, p);
}

apr_status_t pegadm_memcache_add(void *mc, const char *key, apr_size_t key_len,
                                 const unsigned char *val, apr_size_t len,
                                 apr_interval_time_t ttl, apr_pool_t *p)
{
    return store(mc, "add", key, key_len, val, len, ttl, p);
}

apr_status_t pegadm_memcache_del(void *mc, const char *key, apr_size_t key_len, apr_pool_t *p)
{
    op_t op = {
        .name = "delete", .exchange = del_exchange, .key = key, .key_len = key_len, .p = p};

    return run_op(mc, &op);
}

apr_status_t pegadm_memcache_del_if(void *mc, const char *key, apr_size_t key_len,
                                    const unsigned char *val, apr_size_t len, apr_pool_t *p)
{
    op_t op = {.name = "mark",
               .exchange = del_if_exchange,
               .key = key,
               .key_len = key_len,
               .val = val,
               .len = len,
               .p = p};

    return run_op(mc, &op);
}

pegadm_kv_t pegadm_memcache_kv(pegadm_memcache_t *mc)
{
    pegadm_kv_t kv = {mc,
                      pegadm_memcache_get,
                      pegadm_memcache_set,
                      pegadm_memcache_del,
                      pegadm_memcache_add,
                      pegadm_memcache_del_if};

    return kv;
}

void pegadm_memcache_observe(pegadm_memcache_t *mc, pegadm_memcache_observe_fn fn, void *baton)
{
    mc->observer = fn;
    mc->baton = baton;
}

const char *pegadm_memcache_server_of(pegadm_memcache_t *mc, const char *key,
                                      apr_size_t key_len)
{
    return mc->servers[server_index(mc, key, key_len)].name;
}

apr_uint32_t pegadm_memcache_connects(pegadm_memcache_t *mc)
{
    return apr_atomic_read32(&mc->connects);
}

/* ---- the preflight ---- */

static apr_status_t ask_version(server_t *s, apr_time_t deadline, apr_pool_t *p,
                                const char **version)
{
    conn_t *c;
    char *line;
    apr_status_t rv = conn_open(s, deadline, &c);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = send_request(c, "version\r\n", NULL, 0, deadline);
    if (rv == APR_SUCCESS) {
        rv = read_line(c, deadline, &line);
    }
    if (rv == APR_SUCCESS) {
        if (strncmp(line, "VERSION ", 8) == 0) {
            *version = apr_pstrdup(p, line + 8);
        } else {
            rv = error_answer(line);
        }
    }
    conn_close(c);
    return rv;
}

apr_status_t pegadm_memcache_check(pegadm_memcache_t *mc, apr_pool_t *p,
                                   pegadm_memcache_server_check_t **results, int *n)
{
    pegadm_memcache_server_check_t *r = apr_pcalloc(p, mc->nservers * sizeof(*r));
    apr_time_t start = mono_now();
    apr_status_t first = APR_SUCCESS;

    for (int i = 0; i < mc->nservers; i++) {
        r[i].server = mc->servers[i].name;
        r[i].rv = ask_version(&mc->servers[i], mono_now() + mc->timeout, p, &r[i].version);
        if (r[i].rv != APR_SUCCESS && first == APR_SUCCESS) {
            first = r[i].rv;
        }
    }
    *results = r;
    *n = mc->nservers;
    if (mc->observer) {
        mc->observer(mc->baton, "check", (double)(mono_now() - start) / APR_USEC_PER_SEC,
                     first);
    }
    return first;
}

/* ---- making and ending the client ---- */

static apr_status_t memcache_cleanup(void *data)
{
    pegadm_memcache_t *mc = data;

    for (int i = 0; i < mc->nservers; i++) {
        server_t *s = &mc->servers[i];
        while (s->idle) {
            conn_t *c = s->idle;
            s->idle = c->next;
            conn_close(c);
        }
        if (s->addrs) {
            freeaddrinfo(s->addrs);
            s->addrs = NULL;
        }
    }
    if (mc->ring) {
        memcached_free(mc->ring);
        mc->ring = NULL;
    }
    return APR_SUCCESS;
}

/* The continuum of the servers' names (weighted ketama, MD5: libketama's);
 * it depends on the names, not on their order, so every node that names
 * the servers alike sends a key to the same one. */
static const char *ring_create(apr_pool_t *p, pegadm_memcache_t *mc)
{
    if (mc->nservers == 1) {
        return NULL;
    }
    mc->ring = memcached_create(NULL);
    if (!mc->ring || memcached_behavior_set(mc->ring, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1) !=
                         MEMCACHED_SUCCESS) {
        return "libmemcached refused a consistent hashing continuum";
    }
    for (int i = 0; i < mc->nservers; i++) {
        server_t *s = &mc->servers[i];
        const memcached_instance_st *inst;
        memcached_return_t rc = s->path ? memcached_server_add_unix_socket(mc->ring, s->path)
                                        : memcached_server_add(mc->ring, s->host, s->port);
        if (rc != MEMCACHED_SUCCESS) {
            return apr_psprintf(p, "%s: %s", s->name, memcached_strerror(mc->ring, rc));
        }
        inst = memcached_server_instance_by_position(mc->ring, (uint32_t)i);
        if (!inst || strcmp(memcached_server_name(inst), s->path ? s->path : s->host) != 0) {
            return apr_psprintf(p, "%s: libmemcached keeps the servers in another order",
                                s->name);
        }
    }
    return NULL;
}

static apr_status_t servers_init(apr_pool_t *p, pegadm_memcache_t *mc)
{
    apr_status_t rv = APR_SUCCESS;

    for (int i = 0; rv == APR_SUCCESS && i < mc->nservers; i++) {
        server_t *s = &mc->servers[i];
        s->pid = getpid();
        s->connects = &mc->connects;
        rv = apr_thread_mutex_create(&s->mutex, APR_THREAD_MUTEX_DEFAULT, p);
        if (rv == APR_SUCCESS) {
            rv = apr_thread_cond_create(&s->freed, p);
        }
    }
    return rv;
}

apr_status_t pegadm_memcache_create(apr_pool_t *p, const char *servers,
                                    apr_interval_time_t timeout, unsigned int max_conns,
                                    pegadm_memcache_t **out, const char **why)
{
    pegadm_memcache_t *mc = apr_pcalloc(p, sizeof(*mc));
    apr_status_t rv;

    *why = timeout <= 0    ? "the deadline is not positive"
           : max_conns < 1 ? "no connection allowed"
                           : parse_servers(p, servers, &mc->servers, &mc->nservers);
    if (*why) {
        return APR_EINVAL;
    }
    mc->timeout = timeout;
    mc->max_conns = max_conns;
    rv = servers_init(p, mc);
    if (rv != APR_SUCCESS) {
        *why = "no mutex";
        return rv;
    }
    apr_pool_cleanup_register(p, mc, memcache_cleanup, apr_pool_cleanup_null);
    *why = ring_create(p, mc);
    if (*why) {
        return APR_EINVAL;
    }
    for (int i = 0; i < mc->nservers; i++) {
        struct addrinfo *ai;
        if (mc->servers[i].host) {
            (void)server_addrs(&mc->servers[i], &ai);
        }
    }
    *out = mc;
    return APR_SUCCESS;
}

void pegadm_memcache_destroy(pegadm_memcache_t *mc)
{
    memcache_cleanup(mc);
}
