/* pegadm_redis: the client's pool, handshake, command exchange and
 * cluster routing. libhiredis 0.14 (Debian 12) only formats commands and
 * parses replies here; the transport is pegadm_netconn. Connections are
 * malloc'ed (they come and go for the process's life) and guarded by the
 * client's one mutex only while in the pool. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <apr_strings.h>
#include <hiredis/hiredis.h>

#include "pegadm_netconn.h"
#include "pegadm_redis.h"

#define SLOT_COUNT     16384
#define MAX_HOPS       5
#define MAX_NODES      1024
#define REPLY_OVERHEAD 64         /* a bulk reply's header and trailer */
#define REPLY_LARGE    (1u << 20) /* CLUSTER SLOTS, INFO */

typedef struct conn_t {
    pegadm_netconn_t *nc;
    redisReader *reader;
    struct conn_t *next;
    int node;
    int answered; /* the server has sent a byte on this connection */
} conn_t;

typedef struct {
    char *host; /* a name, an address or a unix socket path */
    int port;
    conn_t *idle; /* a stack: the connection used last is likeliest alive */
} node_t;

struct pegadm_redis_t {
    pegadm_redis_conf_t conf;
    pegadm_netconn_tls_t *tls;
    pthread_mutex_t mutex;
    pthread_cond_t freed; /* a connection was returned or closed */
    node_t *nodes;        /* [0, nseeds): the configured hosts */
    int nnodes, nseeds;
    int open;     /* connections open, idle or in use */
    short *slots; /* node of each hash slot, -1 unknown */
    int cluster;  /* -1 not known yet, 0 no, 1 yes */
    int refreshing;
    int seed; /* the seed asked about slots not in the map */
    apr_uint64_t handshakes;
    pid_t pid; /* the process the pooled connections belong to */
};

typedef struct {
    const char *cmd;
    apr_size_t cmd_len;
    apr_size_t cap; /* bytes a reply may take */
    int slot;       /* -1: any node */
} command_t;

static const char DEL_IF_SCRIPT[] =
    "if redis.call('get',KEYS[1])==ARGV[1] then return redis.call('del',KEYS[1]) end return 0";

/* ---- the hash slot ---- */

static unsigned int crc16_xmodem(const char *buf, apr_size_t len)
{
    unsigned int crc = 0;

    for (apr_size_t i = 0; i < len; i++) {
        crc ^= (unsigned int)(unsigned char)buf[i] << 8;
        for (int b = 0; b < 8; b++) {
            crc = (crc & 0x8000) ? ((crc << 1) ^ 0x1021) : (crc << 1);
        }
    }
    return crc & 0xffff;
}

unsigned int pegadm_redis_slot(const char *key, apr_size_t key_len)
{
    const char *open = memchr(key, '{', key_len);

    if (open) {
        apr_size_t from = (apr_size_t)(open - key) + 1;
        const char *close = memchr(open + 1, '}', key_len - from);
        if (close && close > open + 1) {
            return crc16_xmodem(open + 1, (apr_size_t)(close - open - 1)) % SLOT_COUNT;
        }
    }
    return crc16_xmodem(key, key_len) % SLOT_COUNT;
}

/* ---- errors ---- */

static int starts(const redisReply *reply, const char *word)
{
    apr_size_t n = strlen(word);
    return reply->len >= n && memcmp(reply->str, word, n) == 0 &&
           (reply->len == n || reply->str[n] == ' ');
}

/* Why an error reply means the server cannot serve. */
static apr_status_t error_status(const redisReply *reply)
{
    static const char *const unavailable[] = {
        "LOADING", "READONLY", "CLUSTERDOWN", "TRYAGAIN", "OOM", "MASTERDOWN", "BUSY"};
    static const char *const refused[] = {"WRONGPASS", "NOAUTH", "NOPERM"};

    for (apr_size_t i = 0; i < sizeof(unavailable) / sizeof(unavailable[0]); i++) {
        if (starts(reply, unavailable[i])) {
            return PEGADM_CACHE_SERVER;
        }
    }
    for (apr_size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        if (starts(reply, refused[i])) {
            return PEGADM_CACHE_AUTH;
        }
    }
    return PEGADM_CACHE_PROTOCOL;
}

/* ---- one connection ---- */

static void conn_free(conn_t *c)
{
    if (c) {
        pegadm_netconn_close(c->nc);
        if (c->reader) {
            redisReaderFree(c->reader);
        }
        free(c);
    }
}

/* Sends cmd and reads one reply of at most cap bytes. *answered: a byte of
 * the reply came (so the server got the command). */
static apr_status_t exchange(conn_t *c, const char *cmd, apr_size_t len, apr_size_t cap,
                             redisReply **reply, int *answered, apr_time_t deadline)
{
    apr_size_t fed = 0;
    apr_status_t rv = pegadm_netconn_write(c->nc, cmd, len, deadline);

    *reply = NULL;
    *answered = 0;
    while (rv == APR_SUCCESS) {
        char buf[16384];
        apr_size_t n = sizeof(buf);
        void *got = NULL;

        if (redisReaderGetReply(c->reader, &got) != REDIS_OK) {
            return PEGADM_CACHE_PROTOCOL;
        }
        if (got && c->reader->pos < c->reader->len) {
            /* more than one reply to one command: out of step, and
             * whatever follows would be taken for the next answer */
            freeReplyObject(got);
            return PEGADM_CACHE_PROTOCOL;
        }
        if (got) {
            *reply = got;
            return APR_SUCCESS;
        }
        if (fed > cap) {
            return PEGADM_CACHE_PROTOCOL; /* never read an oversized value to its end */
        }
        rv = pegadm_netconn_read(c->nc, buf, &n, deadline);
        if (rv == APR_SUCCESS) {
            *answered = c->answered = 1;
            fed += n;
            if (redisReaderFeed(c->reader, buf, n) != REDIS_OK) {
                return PEGADM_CACHE_PROTOCOL;
            }
        }
    }
    return rv;
}

/* A command of the handshake, formatted here; its reply kept in *reply. */
static apr_status_t exchange_argv(conn_t *c, int argc, const char **argv, redisReply **reply,
                                  apr_time_t deadline)
{
    size_t lens[4];
    char *cmd = NULL;
    int len, answered;
    apr_status_t rv;

    for (int i = 0; i < argc; i++) {
        lens[i] = strlen(argv[i]);
    }
    len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (len < 0) {
        return APR_ENOMEM;
    }
    rv = exchange(c, cmd, (apr_size_t)len, REPLY_LARGE, reply, &answered, deadline);
    redisFreeCommand(cmd);
    return rv;
}

/* Sends a command that must answer +OK; an error reply's text goes to
 * why (the server's words, which never repeat the password). */
static apr_status_t expect_ok(conn_t *c, int argc, const char **argv, apr_time_t deadline,
                              apr_status_t refused, char *why)
{
    redisReply *reply;
    apr_status_t rv = exchange_argv(c, argc, argv, &reply, deadline);

    if (rv == APR_SUCCESS) {
        if (reply->type == REDIS_REPLY_ERROR) {
            rv = error_status(reply);
            rv = rv == PEGADM_CACHE_PROTOCOL ? refused : rv;
            if (why) {
                apr_snprintf(why, PEGADM_REDIS_DETAIL_LEN, "%s: %.*s", argv[0],
                             (int)(reply->len > 120 ? 120 : reply->len), reply->str);
            }
        }
        freeReplyObject(reply);
    }
    return rv;
}

/* What INFO cluster says: *verdict 1 cluster mode, 0 not, -1 the server
 * would not say (an ACL without INFO). */
static apr_status_t ask_cluster(conn_t *c, apr_time_t deadline, int *verdict)
{
    const char *argv[] = {"INFO", "cluster"};
    redisReply *reply;
    apr_status_t rv = exchange_argv(c, 2, argv, &reply, deadline);

    *verdict = -1;
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS) {
        *verdict = strstr(reply->str, "cluster_enabled:1") != NULL;
    }
    freeReplyObject(reply);
    return APR_SUCCESS;
}

/* Learns once whether the server runs in cluster mode. A server that does
 * not answer INFO is found out by its first MOVED. */
static apr_status_t learn_cluster(pegadm_redis_t *r, conn_t *c, apr_time_t deadline)
{
    int on;
    apr_status_t rv = ask_cluster(c, deadline, &on);

    if (rv == APR_SUCCESS && on >= 0) {
        pthread_mutex_lock(&r->mutex);
        if (r->cluster < 0 || on) {
            r->cluster = on;
        }
        pthread_mutex_unlock(&r->mutex);
    }
    return rv;
}

static int cluster_state(pegadm_redis_t *r)
{
    int cluster;

    pthread_mutex_lock(&r->mutex);
    cluster = r->cluster;
    pthread_mutex_unlock(&r->mutex);
    return cluster;
}

static apr_status_t send_auth(const pegadm_redis_conf_t *conf, conn_t *c, apr_time_t deadline,
                              char *why)
{
    const char *with_user[] = {"AUTH", conf->user, conf->password};
    const char *alone[] = {"AUTH", conf->password};

    return conf->user ? expect_ok(c, 3, with_user, deadline, PEGADM_CACHE_AUTH, why)
                      : expect_ok(c, 2, alone, deadline, PEGADM_CACHE_AUTH, why);
}

/* A cluster has database 0 only: asked for another, the configuration
 * cannot work, and says so rather than use the wrong database. */
static apr_status_t send_select(const pegadm_redis_conf_t *conf, conn_t *c, int cluster,
                                apr_time_t deadline, char *why)
{
    char db[16];
    const char *argv[] = {"SELECT", db};

    if (cluster == 1) {
        if (why) {
            apr_snprintf(why, PEGADM_REDIS_DETAIL_LEN,
                         "a cluster has database 0 only: SELECT %d cannot be had", conf->db);
        }
        return PEGADM_CACHE_AUTH;
    }
    apr_snprintf(db, sizeof(db), "%d", conf->db);
    return expect_ok(c, 2, argv, deadline, PEGADM_CACHE_AUTH, why);
}

/* AUTH, whether a cluster, SELECT: all within the operation's deadline. */
static apr_status_t conn_handshake(pegadm_redis_t *r, conn_t *c, apr_time_t deadline, char *why)
{
    apr_status_t rv = r->conf.password ? send_auth(&r->conf, c, deadline, why) : APR_SUCCESS;

    if (rv == APR_SUCCESS && cluster_state(r) < 0) {
        rv = learn_cluster(r, c, deadline);
    }
    if (rv == APR_SUCCESS && r->conf.db > 0) {
        rv = send_select(&r->conf, c, cluster_state(r), deadline, why);
    }
    return rv;
}

/* A new connection to node: connect, TLS, AUTH, SELECT. why (NULL, or
 * PEGADM_REDIS_DETAIL_LEN bytes) receives what went wrong, if known. */
static apr_status_t conn_open(pegadm_redis_t *r, int node, conn_t **out, apr_time_t deadline,
                              char *why)
{
    conn_t *c = calloc(1, sizeof(*c));
    char *host;
    int port;
    apr_status_t rv;

    *out = NULL;
    if (!c || !(c->reader = redisReaderCreate())) {
        conn_free(c);
        return APR_ENOMEM;
    }
    c->node = node;
    pthread_mutex_lock(&r->mutex);
    host = r->nodes[node].host; /* node entries are never freed or moved */
    port = r->nodes[node].port;
    pthread_mutex_unlock(&r->mutex);
    __atomic_add_fetch(&r->handshakes, 1, __ATOMIC_RELAXED);
    rv = pegadm_netconn_open(&c->nc, host, port, r->conf.tls ? r->tls : NULL,
                             r->conf.server_name, deadline, why,
                             why ? PEGADM_REDIS_DETAIL_LEN : 0);
    if (rv == APR_SUCCESS) {
        rv = conn_handshake(r, c, deadline, why);
        /* TLS 1.3 servers check the client's certificate after the
         * handshake: one they refuse shows as the connection dropped
         * before any answer */
        if (rv == PEGADM_CACHE_REFUSED && r->conf.tls && !c->answered) {
            rv = PEGADM_CACHE_TLS;
        }
        if (rv == PEGADM_CACHE_TLS && why && !why[0]) {
            const char *alert = pegadm_netconn_failure(c->nc);
            apr_snprintf(why, PEGADM_REDIS_DETAIL_LEN,
                         "the server ended the connection after the TLS handshake%s%s%s: "
                         "does it require a client certificate?",
                         alert[0] ? " (" : "", alert, alert[0] ? ")" : "");
        }
    }
    if (rv != APR_SUCCESS) {
        conn_free(c);
        return rv;
    }
    *out = c;
    return APR_SUCCESS;
}

/* ---- the pool ---- */

static void wait_until(pegadm_redis_t *r, apr_time_t deadline)
{
    struct timespec ts;
    ts.tv_sec = (time_t)apr_time_sec(deadline);
    ts.tv_nsec = (long)apr_time_usec(deadline) * 1000;
    pthread_cond_timedwait(&r->freed, &r->mutex, &ts);
}

/* Under the mutex: frees a place by taking an idle connection of any node
 * (closed by the caller outside the mutex). */
static conn_t *take_any_idle(pegadm_redis_t *r)
{
    for (int i = 0; i < r->nnodes; i++) {
        conn_t *c = r->nodes[i].idle;
        if (c) {
            r->nodes[i].idle = c->next;
            r->open--;
            return c;
        }
    }
    return NULL;
}

/* Under the mutex, in a process forked from the one that opened the
 * pool's connections: they are the parent's, and its replies would be
 * read here. Their memory and descriptors are this process's copies,
 * closed without a word to the server. */
static void forget_inherited(pegadm_redis_t *r)
{
    for (int i = 0; i < r->nnodes; i++) {
        while (r->nodes[i].idle) {
            conn_t *c = r->nodes[i].idle;
            r->nodes[i].idle = c->next;
            conn_free(c);
        }
    }
    r->open = 0;
    r->pid = getpid();
}

/* A connection to node: an idle one unless fresh, else a new one when the
 * pool has room, else the first one freed before the deadline. */
static apr_status_t conn_acquire(pegadm_redis_t *r, int node, int fresh, conn_t **out,
                                 int *reused, apr_time_t deadline, char *why)
{
    apr_status_t rv;

    pthread_mutex_lock(&r->mutex);
    if (r->pid != getpid()) {
        forget_inherited(r);
    }
    for (int rounds = 0; rounds < 100000; rounds++) {
        conn_t *victim;

        if (!fresh && r->nodes[node].idle) {
            *out = r->nodes[node].idle;
            r->nodes[node].idle = (*out)->next;
            pthread_mutex_unlock(&r->mutex);
            *reused = 1;
            return APR_SUCCESS;
        }
        if (r->open < r->conf.pool_max) {
            r->open++;
            pthread_mutex_unlock(&r->mutex);
            *reused = 0;
            rv = conn_open(r, node, out, deadline, why);
            if (rv != APR_SUCCESS) {
                pthread_mutex_lock(&r->mutex);
                r->open--;
                pthread_cond_signal(&r->freed);
                pthread_mutex_unlock(&r->mutex);
            }
            return rv;
        }
        if ((victim = take_any_idle(r)) != NULL) {
            pthread_mutex_unlock(&r->mutex);
            conn_free(victim);
            pthread_mutex_lock(&r->mutex);
            continue;
        }
        if (apr_time_now() >= deadline) {
            break;
        }
        wait_until(r, deadline);
    }
    pthread_mutex_unlock(&r->mutex);
    return PEGADM_CACHE_BUSY;
}

/* Back to the pool: only a connection with nothing left unread. */
static void conn_release(pegadm_redis_t *r, conn_t *c)
{
    pthread_mutex_lock(&r->mutex);
    c->next = r->nodes[c->node].idle;
    r->nodes[c->node].idle = c;
    pthread_cond_signal(&r->freed);
    pthread_mutex_unlock(&r->mutex);
}

static void conn_discard(pegadm_redis_t *r, conn_t *c)
{
    conn_free(c);
    pthread_mutex_lock(&r->mutex);
    r->open--;
    pthread_cond_signal(&r->freed);
    pthread_mutex_unlock(&r->mutex);
}

/* After a pooled connection to node was found dead (the server restarted
 * or dropped idle clients): its other idle ones are likely dead too. */
static void drop_idle(pegadm_redis_t *r, int node)
{
    conn_t *list;

    pthread_mutex_lock(&r->mutex);
    list = r->nodes[node].idle;
    r->nodes[node].idle = NULL;
    for (conn_t *c = list; c; c = c->next) {
        r->open--;
    }
    pthread_cond_broadcast(&r->freed);
    pthread_mutex_unlock(&r->mutex);
    while (list) {
        conn_t *next = list->next;
        conn_free(list);
        list = next;
    }
}

static apr_status_t pool_cleanup(void *data)
{
    pegadm_redis_t *r = data;

    for (int i = 0; i < r->nnodes; i++) {
        drop_idle(r, i);
        free(r->nodes[i].host);
    }
    free(r->nodes);
    free(r->slots);
    pthread_cond_destroy(&r->freed);
    pthread_mutex_destroy(&r->mutex);
    return APR_SUCCESS;
}

/* ---- one command on one node ---- */

/* Sends cmd (after ASKING when asking) to node. A pooled connection that
 * turns out closed before any byte of the reply is replaced once by a new
 * one; a timeout is never retried. */
static apr_status_t node_run(pegadm_redis_t *r, int node, int asking, const command_t *cmd,
                             redisReply **reply, apr_time_t deadline)
{
    static const char asking_cmd[] = "*1\r\n$6\r\nASKING\r\n";

    for (int attempt = 0; attempt < 2; attempt++) {
        conn_t *c;
        int reused = 0, answered = 0;
        apr_status_t rv = conn_acquire(r, node, attempt > 0, &c, &reused, deadline, NULL);

        if (rv != APR_SUCCESS) {
            return rv;
        }
        if (asking) {
            rv = exchange(c, asking_cmd, sizeof(asking_cmd) - 1, REPLY_OVERHEAD, reply,
                          &answered, deadline);
            if (rv == APR_SUCCESS) {
                rv = (*reply)->type == REDIS_REPLY_ERROR ? error_status(*reply) : APR_SUCCESS;
                freeReplyObject(*reply);
                *reply = NULL;
            }
        }
        if (rv == APR_SUCCESS) {
            rv = exchange(c, cmd->cmd, cmd->cmd_len, cmd->cap, reply, &answered, deadline);
        }
        if (rv == APR_SUCCESS) {
            conn_release(r, c);
            return APR_SUCCESS;
        }
        conn_discard(r, c);
        if (rv != PEGADM_CACHE_REFUSED || !reused || answered) {
            return rv;
        }
        drop_idle(r, node);
    }
    return PEGADM_CACHE_REFUSED;
}

/* ---- cluster routing ---- */

/* The node of host:port, added if new. -1 when there are too many. */
static int node_find(pegadm_redis_t *r, const char *host, apr_size_t host_len, int port)
{
    int found = -1;

    pthread_mutex_lock(&r->mutex);
    for (int i = 0; i < r->nnodes && found < 0; i++) {
        if (r->nodes[i].port == port && strlen(r->nodes[i].host) == host_len &&
            memcmp(r->nodes[i].host, host, host_len) == 0) {
            found = i;
        }
    }
    if (found < 0 && r->nnodes < MAX_NODES) {
        char *copy = strndup(host, host_len);
        if (copy) {
            found = r->nnodes++;
            r->nodes[found] = (node_t){copy, port, NULL};
        }
    }
    pthread_mutex_unlock(&r->mutex);
    return found;
}

static int node_of_slot(pegadm_redis_t *r, int slot)
{
    int node;

    pthread_mutex_lock(&r->mutex);
    node = slot >= 0 && r->slots[slot] >= 0 ? r->slots[slot] : r->seed;
    pthread_mutex_unlock(&r->mutex);
    return node;
}

/* A cluster node that cannot be reached may have failed over to a replica
 * nobody has told us of: its slots are asked of a seed again, which
 * answers MOVED to the new owner; a seed that cannot be reached hands over
 * to the next. */
static void forget_node(pegadm_redis_t *r, int node)
{
    pthread_mutex_lock(&r->mutex);
    if (r->cluster == 1) {
        for (int s = 0; s < SLOT_COUNT; s++) {
            if (r->slots[s] == node) {
                r->slots[s] = -1;
            }
        }
        if (node == r->seed) {
            r->seed = (r->seed + 1) % r->nseeds;
        }
    }
    pthread_mutex_unlock(&r->mutex);
}

/* The node of host:port as a cluster names it; an empty host (an endpoint
 * the server does not know) is the host of the node that answered. */
static int node_named(pegadm_redis_t *r, int from, const char *host, apr_size_t host_len,
                      int port)
{
    char *from_host;

    if (host_len > 0 && !(host_len == 1 && host[0] == '?')) {
        return node_find(r, host, host_len, port);
    }
    pthread_mutex_lock(&r->mutex);
    from_host = r->nodes[from].host;
    pthread_mutex_unlock(&r->mutex);
    return node_find(r, from_host, strlen(from_host), port);
}

/* "MOVED 3999 127.0.0.1:6381" or "ASK ...": the node named, or -1. An
 * empty host is the answering node's. */
static int redirect_node(pegadm_redis_t *r, int from, const redisReply *reply, int *slot)
{
    const char *sp = memchr(reply->str, ' ', reply->len);
    const char *addr =
        sp ? memchr(sp + 1, ' ', reply->len - (apr_size_t)(sp + 1 - reply->str)) : NULL;
    const char *colon;
    int port;

    if (!addr) {
        return -1;
    }
    *slot = atoi(sp + 1);
    addr++;
    colon = memrchr(addr, ':', reply->len - (apr_size_t)(addr - reply->str));
    if (!colon || *slot < 0 || *slot >= SLOT_COUNT) {
        return -1;
    }
    port = atoi(colon + 1);
    return node_named(r, from, addr, (apr_size_t)(colon - addr), port);
}

static void map_slots(pegadm_redis_t *r, int from, const redisReply *range)
{
    const redisReply *master;
    int node;

    if (range->type != REDIS_REPLY_ARRAY || range->elements < 3 ||
        range->element[0]->type != REDIS_REPLY_INTEGER ||
        range->element[1]->type != REDIS_REPLY_INTEGER ||
        range->element[2]->type != REDIS_REPLY_ARRAY || range->element[2]->elements < 2) {
        return;
    }
    master = range->element[2];
    if (master->element[0]->type != REDIS_REPLY_STRING ||
        master->element[1]->type != REDIS_REPLY_INTEGER) {
        return;
    }
    node = node_named(r, from, master->element[0]->str, master->element[0]->len,
                      (int)master->element[1]->integer);
    if (node < 0) {
        return;
    }
    pthread_mutex_lock(&r->mutex);
    for (long long s = range->element[0]->integer;
         s <= range->element[1]->integer && s < SLOT_COUNT; s++) {
        if (s >= 0) {
            r->slots[s] = (short)node;
        }
    }
    pthread_mutex_unlock(&r->mutex);
}

/* Fills the slot map from CLUSTER SLOTS asked of node, once at a time;
 * a failure leaves the map as it was (MOVED replies still route). */
static void refresh_slots(pegadm_redis_t *r, int node, apr_time_t deadline)
{
    static const char slots_cmd[] = "*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n";
    const command_t cmd = {slots_cmd, sizeof(slots_cmd) - 1, REPLY_LARGE, -1};
    redisReply *reply = NULL;
    int busy;

    pthread_mutex_lock(&r->mutex);
    busy = r->refreshing;
    r->refreshing = 1;
    pthread_mutex_unlock(&r->mutex);
    if (busy) {
        return;
    }
    if (node_run(r, node, 0, &cmd, &reply, deadline) == APR_SUCCESS &&
        reply->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < reply->elements; i++) {
            map_slots(r, node, reply->element[i]);
        }
    }
    if (reply) {
        freeReplyObject(reply);
    }
    pthread_mutex_lock(&r->mutex);
    r->refreshing = 0;
    pthread_mutex_unlock(&r->mutex);
}

/* Follows MOVED (the slot map corrected, and refreshed after the answer)
 * and ASK (ASKING first, the map left alone) up to MAX_HOPS. */
static apr_status_t run(pegadm_redis_t *r, const command_t *cmd, redisReply **reply,
                        apr_time_t deadline)
{
    int node = node_of_slot(r, cmd->slot), asking = 0, moved = -1;
    apr_status_t rv = PEGADM_CACHE_REDIRECTS;

    *reply = NULL;
    for (int hop = 0; hop <= MAX_HOPS; hop++) {
        int slot = -1, ask;

        rv = node_run(r, node, asking, cmd, reply, deadline);
        if (rv == PEGADM_CACHE_REFUSED || rv == PEGADM_CACHE_TIMEOUT ||
            rv == PEGADM_CACHE_RESOLVE) {
            forget_node(r, node);
        }
        if (rv != APR_SUCCESS || (*reply)->type != REDIS_REPLY_ERROR ||
            !((ask = starts(*reply, "ASK")) || starts(*reply, "MOVED"))) {
            break;
        }
        node = redirect_node(r, node, *reply, &slot);
        freeReplyObject(*reply);
        *reply = NULL;
        rv = PEGADM_CACHE_REDIRECTS;
        if (node < 0) {
            break;
        }
        asking = ask;
        if (!ask) {
            pthread_mutex_lock(&r->mutex);
            r->cluster = 1;
            r->slots[slot] = (short)node;
            pthread_mutex_unlock(&r->mutex);
            moved = node;
        }
    }
    if (moved >= 0 && rv == APR_SUCCESS) {
        refresh_slots(r, moved, deadline);
    }
    if (rv != APR_SUCCESS && *reply) {
        freeReplyObject(*reply);
        *reply = NULL;
    }
    return rv;
}

/* Formats argv (binary-safe), routes it by the slot of argv[key_arg], runs
 * it, and reports the operation to the observer. */
static apr_status_t command(pegadm_redis_t *r, int argc, const char **argv, const size_t *lens,
                            int key_arg, apr_size_t cap, redisReply **reply)
{
    apr_time_t start = apr_time_now();
    char *formatted = NULL;
    int len = redisFormatCommandArgv(&formatted, argc, argv, lens);
    command_t cmd;
    apr_status_t rv;

    if (len < 0) {
        *reply = NULL;
        return APR_ENOMEM;
    }
    cmd = (command_t){formatted, (apr_size_t)len, cap,
                      (int)pegadm_redis_slot(argv[key_arg], lens[key_arg])};
    rv = run(r, &cmd, reply, start + r->conf.timeout);
    redisFreeCommand(formatted);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (!*reply) {
        return PEGADM_CACHE_PROTOCOL;
    }
    if ((*reply)->type == REDIS_REPLY_ERROR) { /* an answer, never a success */
        rv = error_status(*reply);
        freeReplyObject(*reply);
        *reply = NULL;
        return rv != APR_SUCCESS ? rv : PEGADM_CACHE_PROTOCOL;
    }
    return APR_SUCCESS;
}

static apr_status_t observed(pegadm_redis_t *r, const char *op, apr_time_t start,
                             apr_status_t rv)
{
    if (r->conf.observe) {
        r->conf.observe(r->conf.observe_baton, op, (double)(apr_time_now() - start) / 1e6, rv);
    }
    return rv;
}

static void ttl_ms(apr_interval_time_t ttl, char *buf, apr_size_t size)
{
    apr_int64_t ms = (ttl + 999) / 1000;
    apr_snprintf(buf, size, "%" APR_INT64_T_FMT, ms > 0 ? ms : 1);
}

/* ---- the operations ---- */

apr_status_t pegadm_redis_get(void *ctx, const char *key, apr_size_t key_len,
                              unsigned char *buf, apr_size_t *len, apr_pool_t *p)
{
    pegadm_redis_t *r = ctx;
    apr_time_t start = apr_time_now();
    const char *argv[] = {"GET", key};
    const size_t lens[] = {3, key_len};
    apr_size_t room = *len < r->conf.max_value ? *len : r->conf.max_value;
    redisReply *reply;
    apr_status_t rv = command(r, 2, argv, lens, 1, room + REPLY_OVERHEAD, &reply);

    if (rv == APR_SUCCESS) {
        if (reply->type == REDIS_REPLY_NIL) {
            rv = APR_NOTFOUND;
        } else if (reply->type != REDIS_REPLY_STRING || (apr_size_t)reply->len > room) {
            rv = PEGADM_CACHE_PROTOCOL;
        } else {
            memcpy(buf, reply->str, reply->len);
            *len = reply->len;
        }
        freeReplyObject(reply);
    }
    return observed(r, "get", start, rv);
}

/* SET key val PX ttl, with NX when only_new: +OK stored, nil present. */
static apr_status_t set_px(pegadm_redis_t *r, const char *key, apr_size_t key_len,
                           const unsigned char *val, apr_size_t len, apr_interval_time_t ttl,
                           int only_new)
{
    char ms[24];
    const char *argv[] = {"SET", key, (const char *)val, "PX", ms, "NX"};
    size_t lens[] = {3, key_len, len, 2, 0, 2};
    redisReply *reply;
    apr_status_t rv;

    if (len > r->conf.max_value) {
        return PEGADM_CACHE_PROTOCOL;
    }
    ttl_ms(ttl, ms, sizeof(ms));
    lens[4] = strlen(ms);
    rv = command(r, only_new ? 6 : 5, argv, lens, 1, REPLY_OVERHEAD, &reply);
    if (rv == APR_SUCCESS) {
        if (reply->type == REDIS_REPLY_NIL && only_new) {
            rv = APR_EEXIST;
        } else if (reply->type != REDIS_REPLY_STATUS || strcmp(reply->str, "OK") != 0) {
            rv = PEGADM_CACHE_PROTOCOL;
        }
        freeReplyObject(reply);
    }
    return rv;
}

apr_status_t pegadm_redis_set(void *ctx, const char *key, apr_size_t key_len,
                              const unsigned char *val, apr_size_t len, apr_interval_time_t ttl,
                              apr_pool_t *p)
{
    apr_time_t start = apr_time_now();
    return observed(ctx, "set", start, set_px(ctx, key, key_len, val, len, ttl, 0));
}

apr_status_t pegadm_redis_add(void *ctx, const char *key, apr_size_t key_len,
                              const unsigned char *val, apr_size_t len, apr_interval_time_t ttl,
                              apr_pool_t *p)
{
    apr_time_t start = apr_time_now();
    return observed(ctx, "mark", start, set_px(ctx, key, key_len, val, len, ttl, 1));
}

/* An integer reply: *n. */
static apr_status_t integer_command(pegadm_redis_t *r, int argc, const char **argv,
                                    const size_t *lens, int key_arg, long long *n)
{
    redisReply *reply;
    apr_status_t rv = command(r, argc, argv, lens, key_arg, REPLY_OVERHEAD, &reply);

    if (rv == APR_SUCCESS) {
        if (reply->type == REDIS_REPLY_INTEGER) {
            *n = reply->integer;
        } else {
            rv = PEGADM_CACHE_PROTOCOL;
        }
        freeReplyObject(reply);
    }
    return rv;
}

apr_status_t pegadm_redis_del(void *ctx, const char *key, apr_size_t key_len, apr_pool_t *p)
{
    apr_time_t start = apr_time_now();
    const char *argv[] = {"DEL", key};
    const size_t lens[] = {3, key_len};
    long long n;

    return observed(ctx, "delete", start, integer_command(ctx, 2, argv, lens, 1, &n));
}

apr_status_t pegadm_redis_del_if(void *ctx, const char *key, apr_size_t key_len,
                                 const unsigned char *val, apr_size_t len, apr_pool_t *p)
{
    apr_time_t start = apr_time_now();
    const char *argv[] = {"EVAL", DEL_IF_SCRIPT, "1", key, (const char *)val};
    const size_t lens[] = {4, sizeof(DEL_IF_SCRIPT) - 1, 1, key_len, len};
    long long n = 0;
    apr_status_t rv = integer_command(ctx, 5, argv, lens, 3, &n);

    if (rv == APR_SUCCESS && n != 1) {
        rv = APR_NOTFOUND;
    }
    return observed(ctx, "mark", start, rv);
}

pegadm_kv_t pegadm_redis_kv(pegadm_redis_t *r)
{
    return (pegadm_kv_t){r,
                         pegadm_redis_get,
                         pegadm_redis_set,
                         pegadm_redis_del,
                         pegadm_redis_add,
                         pegadm_redis_del_if};
}

apr_uint64_t pegadm_redis_handshakes(pegadm_redis_t *r)
{
    return __atomic_load_n(&r->handshakes, __ATOMIC_RELAXED);
}

/* ---- the preflight ---- */

/* A new connection to seed (TLS, AUTH, INFO, SELECT) and a PING on it. */
static apr_status_t check_seed(pegadm_redis_t *r, int seed, pegadm_redis_info_t *info,
                               apr_time_t deadline)
{
    static const char ping[] = "*1\r\n$4\r\nPING\r\n";
    conn_t *c = NULL;
    redisReply *reply = NULL;
    int reused, answered;
    apr_status_t rv = conn_acquire(r, seed, 1, &c, &reused, deadline, info->detail);

    /* several seeds are taken for a cluster: whether the server agrees is
     * asked here, for the start-up check */
    if (rv == APR_SUCCESS && r->nseeds > 1) {
        rv = ask_cluster(c, deadline, &info->cluster);
    } else if (rv == APR_SUCCESS) {
        info->cluster = cluster_state(r);
    }
    if (rv == APR_SUCCESS) {
        rv = exchange(c, ping, sizeof(ping) - 1, REPLY_OVERHEAD, &reply, &answered, deadline);
    }
    if (rv == APR_SUCCESS) {
        rv = reply->type == REDIS_REPLY_ERROR ? error_status(reply) : APR_SUCCESS;
        freeReplyObject(reply);
    }
    if (c && rv == APR_SUCCESS) {
        conn_release(r, c);
    } else if (c) {
        conn_discard(r, c);
    }
    return rv;
}

/* Each seed in turn until one answers, within the one deadline: a cluster
 * is usable while any of them is. */
apr_status_t pegadm_redis_check(pegadm_redis_t *r, pegadm_redis_info_t *info)
{
    apr_time_t start = apr_time_now(), deadline = start + r->conf.timeout;
    apr_status_t rv = PEGADM_CACHE_TIMEOUT;

    info->cluster = 0;
    pthread_mutex_lock(&r->mutex);
    r->cluster = r->nseeds > 1 ? 1 : -1; /* asked again: the server may have changed */
    pthread_mutex_unlock(&r->mutex);
    for (int seed = 0; seed < r->nseeds && apr_time_now() < deadline; seed++) {
        info->detail[0] = '\0';
        rv = check_seed(r, seed, info, deadline);
        if (rv == APR_SUCCESS || rv == PEGADM_CACHE_AUTH || rv == PEGADM_CACHE_TLS) {
            break; /* the same on every seed: the configuration's */
        }
    }
    if (rv != APR_SUCCESS && cluster_state(r) == 1) {
        info->cluster = 1; /* a database asked of a cluster */
    }
    return observed(r, "check", start, rv);
}

/* ---- making a client ---- */

static apr_status_t parse_port(const char *digits, int *port)
{
    char *stop = NULL;
    long n = strtol(digits, &stop, 10);

    if (stop == digits || *stop != '\0' || n <= 0 || n > 65535) {
        return APR_EINVAL;
    }
    *port = (int)n;
    return APR_SUCCESS;
}

/* "host", "host:port", "[v6]:port", "v6" or "/path" into node. */
static apr_status_t parse_host(const char *spec, node_t *node)
{
    const char *colon = strchr(spec, ':');
    apr_status_t rv = APR_SUCCESS;

    node->port = 6379;
    if (spec[0] == '/') {
        node->port = 0;
        node->host = strdup(spec);
    } else if (spec[0] == '[') {
        const char *close = strchr(spec, ']');
        if (!close || (close[1] != '\0' && close[1] != ':')) {
            return APR_EINVAL;
        }
        rv = close[1] == ':' ? parse_port(close + 2, &node->port) : APR_SUCCESS;
        node->host = strndup(spec + 1, (apr_size_t)(close - spec - 1));
    } else if (colon && !strchr(colon + 1, ':')) {
        rv = parse_port(colon + 1, &node->port);
        node->host = strndup(spec, (apr_size_t)(colon - spec));
    } else {
        node->host = strdup(spec); /* a bare IPv6 address, or a name */
    }
    if (rv != APR_SUCCESS || !node->host || !node->host[0]) {
        free(node->host);
        node->host = NULL;
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

static const char *dup_or_null(apr_pool_t *p, const char *s)
{
    return s ? apr_pstrdup(p, s) : NULL;
}

static apr_status_t make_nodes(pegadm_redis_t *r, const pegadm_redis_conf_t *conf,
                               apr_pool_t *p, const char **why)
{
    r->nodes = calloc(MAX_NODES, sizeof(node_t));
    r->slots = malloc(SLOT_COUNT * sizeof(short));
    if (!r->nodes || !r->slots) {
        return APR_ENOMEM;
    }
    memset(r->slots, 0xff, SLOT_COUNT * sizeof(short)); /* -1: unknown */
    if (conf->nhosts < 1 || conf->nhosts > MAX_NODES) {
        *why = "no host given";
        return APR_EINVAL;
    }
    for (int i = 0; i < conf->nhosts; i++) {
        if (parse_host(conf->hosts[i], &r->nodes[i]) != APR_SUCCESS) {
            *why = apr_psprintf(p, "not a host[:port] or /path: %s", conf->hosts[i]);
            return APR_EINVAL;
        }
        r->nnodes = r->nseeds = i + 1;
    }
    return APR_SUCCESS;
}

apr_status_t pegadm_redis_create(pegadm_redis_t **out, const pegadm_redis_conf_t *conf,
                                 apr_pool_t *p, const char **why)
{
    pegadm_redis_t *r = apr_pcalloc(p, sizeof(*r));
    apr_status_t rv;

    *why = NULL;
    r->conf = *conf;
    r->conf.ca_file = dup_or_null(p, conf->ca_file);
    r->conf.cert_file = dup_or_null(p, conf->cert_file);
    r->conf.key_file = dup_or_null(p, conf->key_file);
    r->conf.user = dup_or_null(p, conf->user);
    r->conf.password = dup_or_null(p, conf->password);
    r->conf.hosts = NULL;
    r->conf.pool_max = conf->pool_max > 0 ? conf->pool_max : 1;
    r->cluster = conf->nhosts > 1 ? 1 : -1;
    r->pid = getpid();
    pthread_mutex_init(&r->mutex, NULL);
    pthread_cond_init(&r->freed, NULL);
    apr_pool_cleanup_register(p, r, pool_cleanup, apr_pool_cleanup_null);
    rv = make_nodes(r, conf, p, why);
    if (rv == APR_SUCCESS && conf->tls) {
        rv = pegadm_netconn_tls_create(&r->tls, r->conf.ca_file, r->conf.cert_file,
                                       r->conf.key_file, p, why);
    }
    /* the certificate of every node names the first host, as managed
     * clusters' certificates name the configuration endpoint */
    r->conf.server_name =
        conf->server_name
            ? apr_pstrdup(p, conf->server_name)
            : (r->nodes && r->nodes[0].host ? apr_pstrdup(p, r->nodes[0].host) : NULL);
    if (rv != APR_SUCCESS && !*why) {
        *why = "out of memory";
    }
    *out = rv == APR_SUCCESS ? r : NULL;
    return rv;
}
