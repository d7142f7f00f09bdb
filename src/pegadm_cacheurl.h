/* PegaDMCache's value and the shared cache directives that go with it:
 * which servers the module's own Redis/Valkey and memcached clients talk
 * to, or which httpd socache provider (shmcb) keeps the sessions. Only
 * the syntax and the combinations that can be judged without a network;
 * whether several Redis hosts really are a cluster is found when the
 * servers first answer (the preflight at start-up).
 *
 * The forms:
 *   redis://host[:port][/db]          Redis or Valkey (port 6379)
 *   rediss://host[:port][/db]         the same over TLS
 *   redis://h1[:port],h2[:port]...    a Redis Cluster's seed nodes (db 0 only)
 *   memcache://host[:port][,host...]  memcached (port 11211), keys hashed
 *   redis:///path/to.sock[?db=N]      a unix socket (also memcache:///path)
 *   redis:host[:port][,...]           the earlier forms: the same servers as
 *   memcache:host[:port][,...]        redis:// and memcache://
 *   anything else (shmcb, shmcb:path(bytes)...) is an httpd socache
 *   provider's name and arguments, handed over untouched.
 * host is a name, an IPv4 address or an IPv6 address in brackets.
 * Credentials never go into the value (it shows in mod_info and
 * DUMP_CONFIG): user:password@ is refused, without echoing it. */
#ifndef PEGADM_CACHEURL_H
#define PEGADM_CACHEURL_H

#include <apr_pools.h>
#include <apr_time.h>

#define PEGADM_CACHEURL_MAX_HOSTS     32
#define PEGADM_CACHEURL_MAX_DB        65535
#define PEGADM_CACHEURL_REDIS_PORT    6379
#define PEGADM_CACHEURL_MEMCACHE_PORT 11211

typedef enum {
    PEGADM_CACHE_SOCACHE,  /* an httpd socache provider: shmcb and the like */
    PEGADM_CACHE_REDIS,    /* the module's Redis/Valkey client */
    PEGADM_CACHE_MEMCACHE, /* the module's memcached client */
} pegadm_cache_kind_t;

typedef struct {
    const char *host; /* a name, a dotted IPv4 or a bare IPv6 address; the
                       * socket's path when port is 0 */
    int port;         /* 0 for a unix socket */
} pegadm_cache_host_t;

typedef struct {
    pegadm_cache_kind_t kind;
    int tls;    /* rediss:// */
    int legacy; /* written redis:host... or memcache:host... */
    int db;     /* the Redis database (SELECT); 0 when none is given */
    int nhosts; /* 1 or more for REDIS and MEMCACHE; 0 for SOCACHE */
    pegadm_cache_host_t *hosts;
    const char *provider; /* SOCACHE: the provider's name ("shmcb") */
    const char *args;     /* SOCACHE: what follows its ':', or NULL */
} pegadm_cache_url_t;

/* Parses arg as PegaDMCache's value into *out. NULL, or a message that
 * starts with name and never holds the part of arg before an '@'.
 * Results and messages live in p. */
const char *pegadm_cacheurl_parse(apr_pool_t *p, const char *name, const char *arg,
                                  pegadm_cache_url_t **out);

/* The servers as the module writes them in logs and status pages: the
 * canonical new form, e.g. "rediss://cache.example:6380/3",
 * "memcache://10.0.0.1:11211,10.0.0.2:11211", "redis:///run/r.sock?db=2",
 * or the provider name for SOCACHE. */
const char *pegadm_cacheurl_describe(apr_pool_t *p, const pegadm_cache_url_t *url);

/* Which of the other shared cache directives are set, for the start-up
 * check of their combination with PegaDMCache. */
typedef struct {
    int user, password, password_file, ca_file, cert_file, key_file;
} pegadm_cache_opts_set_t;

/* NULL if the directives set can go with url, else a message naming the
 * directive at fault (and why): TLS files without rediss://, AUTH on
 * memcached or a socache provider, a certificate without its key or the
 * reverse, a user without a password, a password given twice. */
const char *pegadm_cacheurl_check_options(apr_pool_t *p, const pegadm_cache_url_t *url,
                                          const pegadm_cache_opts_set_t *set);

/* PegaDMCacheTimeout's value: seconds, with up to three decimals ("1",
 * "0.25"), from 0.01 to 60, in *out. NULL or a message starting with name. */
const char *pegadm_cacheurl_parse_timeout(apr_pool_t *p, const char *name, const char *arg,
                                          apr_interval_time_t *out);

#endif
