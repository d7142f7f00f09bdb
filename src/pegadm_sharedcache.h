/* The shared cache server as the glue uses it: PegaDMCache's parsed value
 * and the directives beside it made into the module's own client (Redis or
 * memcached) behind pegadm_kv_t, each operation timed for the counters,
 * several Redis hosts refused unless they are a cluster, the preflight's
 * check, the password file, and the once-a-minute bound on logging a
 * failure. No httpd. */
#ifndef PEGADM_SHAREDCACHE_H
#define PEGADM_SHAREDCACHE_H

#include <apr_pools.h>
#include <apr_time.h>

#include "pegadm_cacheerr.h"
#include "pegadm_cacheurl.h"
#include "pegadm_kv.h"
#include "pegadm_metrics.h"

typedef struct {
    const pegadm_cache_url_t *url; /* kind REDIS or MEMCACHE */
    apr_interval_time_t timeout;   /* PegaDMCacheTimeout */
    const char *user;              /* PegaDMCacheUser, or NULL */
    const char *password;          /* the password itself, or NULL */
    const char *ca_file, *cert_file, *key_file;
    int pool_max;         /* connections one process may hold (its threads) */
    apr_size_t max_value; /* the largest value ever read */
    int plain_lookup;     /* 1 in a process that forks afterwards (pegadm_netconn.h) */
} pegadm_shared_conf_t;

typedef struct pegadm_shared_t pegadm_shared_t;

/* A client of the servers, in p (its connections close with p); no I/O.
 * Make it in the process that uses it (a child's child_init), never
 * before a fork. On failure *why (in p) says why, never with the password. */
apr_status_t pegadm_shared_open(apr_pool_t *p, const pegadm_shared_conf_t *conf,
                                pegadm_shared_t **out, const char **why);

/* Counts every operation from now on in slot (this process's) and sets
 * the server-wide pegadm_cache_up of m. Before the client is shared. */
void pegadm_shared_count(pegadm_shared_t *s, pegadm_metrics_t *m, pegadm_metrics_slot_t *slot);

/* The operations of pegadm_kv.h. With several Redis hosts, the first one
 * learns once whether they are a cluster: if not, every operation answers
 * PEGADM_CACHE_NOT_CLUSTER, so that no two nodes ever use different
 * servers for one key. A server that could not be used (timeout, refused,
 * tls, auth...) fails this process's next operations on it at once, with
 * the same status, for the deadline (at most a second): a memcached per
 * server, a Redis (or Redis Cluster) as a whole. */
pegadm_kv_t pegadm_shared_kv(pegadm_shared_t *s);

/* The preflight: connects anew (TLS handshake, AUTH, SELECT) and pings
 * each server. APR_SUCCESS, or the first failure's status with *where the
 * server it concerns (as written in logs: host:port or a path) and
 * *detail what it or OpenSSL said ("" if nothing; in p; never a
 * password). *cluster: whether a Redis answered as a cluster. Sets
 * pegadm_cache_up. */
typedef struct {
    const char *where;
    const char *detail;
    int cluster;
} pegadm_shared_finding_t;
apr_status_t pegadm_shared_check(pegadm_shared_t *s, apr_pool_t *p,
                                 pegadm_shared_finding_t *found);

/* True once a minute at most per client (and process): whether a failure
 * seen now should be logged. */
int pegadm_shared_log_due(pegadm_shared_t *s, apr_time_t now);

/* Reads PegaDMCachePasswordFile's first line (without its line end) into
 * *password (in p). *exposed: the file can be read by group or others.
 * NULL or why not, naming the file. */
const char *pegadm_shared_read_password(apr_pool_t *p, const char *path, const char **password,
                                        int *exposed);

#endif
