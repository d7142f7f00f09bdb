/* Why a shared cache server (memcached, Redis, Valkey) could not be used:
 * the status codes the module's own cache clients answer besides
 * APR_SUCCESS, APR_NOTFOUND (a miss) and APR_EEXIST (a create lock held by
 * another), and their names for logs, the audit log and the counters. A
 * server that cannot be used is never a miss. */
#ifndef PEGADM_CACHEERR_H
#define PEGADM_CACHEERR_H

#include <apr_errno.h>

#define PEGADM_CACHE_ERR_BASE (APR_OS_START_USERERR + 4200)

typedef enum {
    PEGADM_CACHE_TIMEOUT = PEGADM_CACHE_ERR_BASE, /* no answer within the deadline */
    PEGADM_CACHE_REFUSED,     /* connection refused, reset, or the server closed it */
    PEGADM_CACHE_TLS,         /* handshake failed: chain, host name, client certificate */
    PEGADM_CACHE_AUTH,        /* AUTH or SELECT refused (WRONGPASS, NOAUTH, NOPERM) */
    PEGADM_CACHE_REDIRECTS,   /* MOVED/ASK hops beyond the limit, or to an unknown node */
    PEGADM_CACHE_PROTOCOL,    /* an answer that is not what was asked for */
    PEGADM_CACHE_BUSY,        /* no pooled connection free within the deadline */
    PEGADM_CACHE_SERVER,      /* an error reply: LOADING, READONLY, CLUSTERDOWN, OOM... */
    PEGADM_CACHE_RESOLVE,     /* the host name does not resolve */
    PEGADM_CACHE_NOT_CLUSTER, /* several Redis hosts given, and they are no cluster */
    PEGADM_CACHE_ERR_END
} pegadm_cache_err_t;

/* A short, stable name for rv: "timeout", "refused", "tls", "auth",
 * "redirects", "protocol", "busy", "server", "resolve", "not_cluster", or
 * "error" for any other failure. Never NULL; static storage. */
static inline const char *pegadm_cache_err_name(apr_status_t rv)
{
    static const char *const names[] = {"timeout",   "refused",    "tls",  "auth",
                                        "redirects", "protocol",   "busy", "server",
                                        "resolve",   "not_cluster"};

    if (rv >= PEGADM_CACHE_ERR_BASE && rv < PEGADM_CACHE_ERR_END) {
        return names[rv - PEGADM_CACHE_ERR_BASE];
    }
    return rv == APR_TIMEUP ? "timeout" : "error";
}

#endif
