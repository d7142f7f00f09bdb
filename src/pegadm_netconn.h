/* A client connection to a cache server with a deadline on every step:
 * name resolution (IPv4 and IPv6), a non-blocking connect, the optional TLS
 * handshake (OpenSSL 3: chain and host name verified, SNI sent, TLS 1.2 or
 * later, an optional client certificate), each write and each read. A call
 * never blocks past the absolute deadline it is given, and no call raises
 * SIGPIPE. Failures are the codes of pegadm_cacheerr.h.
 *
 * A connection belongs to one thread at a time and to the process that
 * opened it: never carry one across fork. The TLS settings (one SSL_CTX)
 * are shared by all connections of a client and are thread-safe. */
#ifndef PEGADM_NETCONN_H
#define PEGADM_NETCONN_H

#include <apr_pools.h>
#include <apr_time.h>

#include "pegadm_cacheerr.h"

typedef struct pegadm_netconn_tls_t pegadm_netconn_tls_t;
typedef struct pegadm_netconn_t pegadm_netconn_t;

/* TLS settings from files, freed with p. ca_file NULL: the system's trust
 * store. cert_file and key_file: a client certificate, both or neither.
 * On failure returns PEGADM_CACHE_TLS with *why (in p) naming the file and
 * OpenSSL's reason. */
apr_status_t pegadm_netconn_tls_create(pegadm_netconn_tls_t **tls, const char *ca_file,
                                       const char *cert_file, const char *key_file,
                                       apr_pool_t *p, const char **why);

/* Opens a connection to host:port (a name, an IPv4 or an IPv6 address,
 * without brackets), or to the unix socket host when it starts with '/'
 * (port ignored). With tls, the handshake is made and the server's
 * certificate must match server_name (a DNS name or an IP address; NULL:
 * host), which is also sent as SNI unless it is an IP address. Allocated
 * with malloc, freed by pegadm_netconn_close. A failed handshake writes
 * its reason into why (why_size bytes; NULL: none), e.g. "certificate
 * verify failed: hostname mismatch". */
apr_status_t pegadm_netconn_open(pegadm_netconn_t **c, const char *host, int port,
                                 pegadm_netconn_tls_t *tls, const char *server_name,
                                 apr_time_t deadline, char *why, apr_size_t why_size);

/* Writes all of buf. PEGADM_CACHE_REFUSED when the peer closed or reset. */
apr_status_t pegadm_netconn_write(pegadm_netconn_t *c, const void *buf, apr_size_t len,
                                  apr_time_t deadline);

/* Reads what is there, at least one byte: *len is buf's size in, the bytes
 * read out. PEGADM_CACHE_REFUSED on end of file or reset. */
apr_status_t pegadm_netconn_read(pegadm_netconn_t *c, void *buf, apr_size_t *len,
                                 apr_time_t deadline);

/* Why TLS failed on c after the handshake (an alert: "tlsv13 alert
 * certificate required"), or "". */
const char *pegadm_netconn_failure(const pegadm_netconn_t *c);

/* Closes and frees c (NULL allowed). Sends no TLS close_notify: it could
 * block on a hung peer. */
void pegadm_netconn_close(pegadm_netconn_t *c);

#endif
