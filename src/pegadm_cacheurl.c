/* PegaDMCache's value: the servers of the module's own cache clients, or an
 * httpd socache provider; and the start-up check of the directives that go
 * with it. Syntax only: whether a server answers, and whether several
 * Redis hosts form a cluster, is the preflight's to find. */
#include <arpa/inet.h>
#include <string.h>

#include <apr_strings.h>
#include <apr_tables.h>

#include "pegadm_cacheurl.h"

#define MAX_VALUE_LEN   4096
#define MAX_HOSTNAME    253
#define MAX_SOCKET_PATH 107 /* sun_path holds 108 bytes with the NUL */

static int is_digits(const char *s, apr_size_t len)
{
    if (len == 0) {
        return 0;
    }
    for (apr_size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
    }
    return 1;
}

/* A decimal from 0 to max written in s[0..len), else -1. */
static long small_number(const char *s, apr_size_t len, long max)
{
    long v = 0;

    if (!is_digits(s, len) || len > 6) {
        return -1;
    }
    for (apr_size_t i = 0; i < len; i++) {
        v = v * 10 + (s[i] - '0');
    }
    return v <= max ? v : -1;
}

static int is_host_name(const char *s)
{
    apr_size_t len = strlen(s);

    if (len == 0 || len > MAX_HOSTNAME || s[0] == '-' || s[0] == '.') {
        return 0;
    }
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") ==
           len;
}

/* One host[:port] or [v6][:port] of s[0..len) into *h. */
static const char *parse_host(apr_pool_t *p, const char *name, const char *s, apr_size_t len,
                              int default_port, pegadm_cache_host_t *h)
{
    const char *item = apr_pstrmemdup(p, s, len);
    const char *port = NULL, *end;
    unsigned char addr[16];

    if (len == 0) {
        return apr_psprintf(p, "%s: an empty host in the list", name);
    }
    if (item[0] == '[') {
        end = strchr(item, ']');
        if (!end) {
            return apr_psprintf(p, "%s: '%s' opens a '[' it does not close", name, item);
        }
        h->host = apr_pstrmemdup(p, item + 1, end - item - 1);
        if (inet_pton(AF_INET6, h->host, addr) != 1) {
            return apr_psprintf(p, "%s: '%s' is no IPv6 address", name, h->host);
        }
        if (end[1] && end[1] != ':') {
            return apr_psprintf(p, "%s: '%s': only ':port' may follow ']'", name, item);
        }
        port = end[1] ? end + 2 : NULL;
    } else {
        const char *colon = strchr(item, ':');
        if (colon && strchr(colon + 1, ':')) {
            return apr_psprintf(p, "%s: '%s': an IPv6 address goes in brackets, [::1]:6379",
                                name, item);
        }
        h->host = colon ? apr_pstrmemdup(p, item, colon - item) : item;
        port = colon ? colon + 1 : NULL;
        if (!is_host_name(h->host)) {
            return apr_psprintf(p, "%s: '%s' is no host name or address", name, h->host);
        }
    }
    h->port = port ? (int)small_number(port, strlen(port), 65535) : default_port;
    if (h->port < 1) {
        return apr_psprintf(p, "%s: the port of '%s' is not a number from 1 to 65535", name,
                            item);
    }
    return NULL;
}

static const char *parse_host_list(apr_pool_t *p, const char *name, const char *s,
                                   apr_size_t len, int default_port, pegadm_cache_url_t *u)
{
    apr_array_header_t *hosts = apr_array_make(p, 4, sizeof(pegadm_cache_host_t));

    for (apr_size_t at = 0;;) {
        const char *comma = memchr(s + at, ',', len - at);
        apr_size_t item_len = comma ? (apr_size_t)(comma - (s + at)) : len - at;
        pegadm_cache_host_t *h = apr_array_push(hosts);
        const char *err = parse_host(p, name, s + at, item_len, default_port, h);

        if (err) {
            return err;
        }
        for (int i = 0; i < hosts->nelts - 1; i++) {
            const pegadm_cache_host_t *o = &APR_ARRAY_IDX(hosts, i, pegadm_cache_host_t);
            if (o->port == h->port && !strcasecmp(o->host, h->host)) {
                return apr_psprintf(p, "%s: %s:%d is named twice", name, h->host, h->port);
            }
        }
        if (hosts->nelts > PEGADM_CACHEURL_MAX_HOSTS) {
            return apr_psprintf(p, "%s: more than %d servers", name, PEGADM_CACHEURL_MAX_HOSTS);
        }
        if (!comma) {
            break;
        }
        at += item_len + 1;
    }
    u->hosts = (pegadm_cache_host_t *)hosts->elts;
    u->nhosts = hosts->nelts;
    return NULL;
}

/* redis:///path/to.sock[?db=N], memcache:///path/to.sock */
static const char *parse_socket(apr_pool_t *p, const char *name, const char *rest,
                                pegadm_cache_url_t *u)
{
    const char *query = strchr(rest, '?');
    apr_size_t len = query ? (apr_size_t)(query - rest) : strlen(rest);

    if (u->tls) {
        return apr_psprintf(
            p, "%s: rediss:// takes a host: TLS is not offered on a unix socket", name);
    }
    if (len < 2 || len > MAX_SOCKET_PATH || rest[len - 1] == '/') {
        return apr_psprintf(p, "%s: '%s' is no socket path (at most %d bytes)", name,
                            apr_pstrmemdup(p, rest, len), MAX_SOCKET_PATH);
    }
    if (query) {
        if (u->kind != PEGADM_CACHE_REDIS || strncmp(query, "?db=", 4) != 0) {
            return apr_psprintf(
                p, "%s: '%s': a socket path takes only ?db=N, and only for Redis", name, query);
        }
        u->db = (int)small_number(query + 4, strlen(query + 4), PEGADM_CACHEURL_MAX_DB);
        if (u->db < 0) {
            return apr_psprintf(p, "%s: the database is not a number from 0 to %d", name,
                                PEGADM_CACHEURL_MAX_DB);
        }
    }
    u->hosts = apr_pcalloc(p, sizeof(*u->hosts));
    u->hosts->host = apr_pstrmemdup(p, rest, len);
    u->nhosts = 1;
    return NULL;
}

/* What follows "scheme://" when it names hosts: host[:port][,...][/db] */
static const char *parse_authority(apr_pool_t *p, const char *name, const char *rest,
                                   int default_port, pegadm_cache_url_t *u)
{
    const char *path = strchr(rest, '/');
    apr_size_t len = path ? (apr_size_t)(path - rest) : strlen(rest);
    const char *err = parse_host_list(p, name, rest, len, default_port, u);

    if (err || !path || !path[1]) {
        return err;
    }
    if (u->kind != PEGADM_CACHE_REDIS) {
        return apr_psprintf(p, "%s: memcached has no databases: drop '%s'", name, path);
    }
    u->db = (int)small_number(path + 1, strlen(path + 1), PEGADM_CACHEURL_MAX_DB);
    if (u->db < 0) {
        return apr_psprintf(p, "%s: the database '%s' is not a number from 0 to %d", name,
                            path + 1, PEGADM_CACHEURL_MAX_DB);
    }
    if (u->db > 0 && u->nhosts > 1) {
        return apr_psprintf(p,
                            "%s: several hosts are a Redis Cluster's seeds, and a cluster has "
                            "database 0 only: drop '/%d'",
                            name, u->db);
    }
    return NULL;
}

static const char *parse_servers(apr_pool_t *p, const char *name, const char *rest,
                                 pegadm_cache_url_t *u)
{
    int default_port = u->kind == PEGADM_CACHE_REDIS ? PEGADM_CACHEURL_REDIS_PORT
                                                     : PEGADM_CACHEURL_MEMCACHE_PORT;
    const char *at = strchr(rest, '@');

    if (at && (!strchr(rest, '/') || at < strchr(rest, '/'))) {
        /* never echo: what comes before '@' is likely a password */
        return apr_psprintf(p,
                            "%s: no user or password in the value (it shows in server-info): "
                            "use PegaDMCacheUser and PegaDMCachePasswordFile",
                            name);
    }
    if (strpbrk(rest, "#") || (rest[0] != '/' && strchr(rest, '?'))) {
        return apr_psprintf(p, "%s: '%s': no query or fragment here", name, rest);
    }
    if (u->legacy) {
        if (strchr(rest, '/')) {
            return apr_psprintf(p,
                                "%s: write a socket path or a database as %s:///path or "
                                "%s://host/db",
                                name, u->kind == PEGADM_CACHE_REDIS ? "redis" : "memcache",
                                u->kind == PEGADM_CACHE_REDIS ? "redis" : "memcache");
        }
        return parse_host_list(p, name, rest, strlen(rest), default_port, u);
    }
    if (rest[0] == '/') {
        return parse_socket(p, name, rest, u);
    }
    return parse_authority(p, name, rest, default_port, u);
}

const char *pegadm_cacheurl_parse(apr_pool_t *p, const char *name, const char *arg,
                                  pegadm_cache_url_t **out)
{
    pegadm_cache_url_t *u = apr_pcalloc(p, sizeof(*u));
    const char *colon = arg ? strchr(arg, ':') : NULL;
    apr_size_t scheme_len = colon ? (apr_size_t)(colon - arg) : (arg ? strlen(arg) : 0);
    const char *rest = colon ? colon + 1 : "";
    const char *scheme, *err;

    if (!arg || !*arg || strlen(arg) > MAX_VALUE_LEN) {
        return apr_psprintf(p, "%s: an empty value, or one longer than %d bytes", name,
                            MAX_VALUE_LEN);
    }
    scheme = apr_pstrmemdup(p, arg, scheme_len);
    if (!strcasecmp(scheme, "redis") || !strcasecmp(scheme, "rediss")) {
        u->kind = PEGADM_CACHE_REDIS;
        u->tls = scheme_len == 6;
    } else if (!strcasecmp(scheme, "memcache")) {
        u->kind = PEGADM_CACHE_MEMCACHE;
    } else {
        u->kind = PEGADM_CACHE_SOCACHE;
        u->provider = scheme;
        u->args = colon ? rest : NULL;
        *out = u;
        return NULL;
    }
    u->legacy = strncmp(rest, "//", 2) != 0;
    if (u->legacy && u->tls) {
        return apr_psprintf(p, "%s: write rediss://host[:port]", name);
    }
    if (!*rest) {
        return apr_psprintf(p, "%s: '%s' names no server", name, scheme);
    }
    err = parse_servers(p, name, u->legacy ? rest : rest + 2, u);
    if (err) {
        return err;
    }
    *out = u;
    return NULL;
}

static const char *host_text(apr_pool_t *p, const pegadm_cache_host_t *h)
{
    if (h->port == 0) {
        return h->host;
    }
    return strchr(h->host, ':') ? apr_psprintf(p, "[%s]:%d", h->host, h->port)
                                : apr_psprintf(p, "%s:%d", h->host, h->port);
}

const char *pegadm_cacheurl_describe(apr_pool_t *p, const pegadm_cache_url_t *url)
{
    const char *s;

    if (url->kind == PEGADM_CACHE_SOCACHE) {
        return url->provider;
    }
    s = url->kind == PEGADM_CACHE_MEMCACHE ? "memcache://"
        : url->tls                         ? "rediss://"
                                           : "redis://";
    for (int i = 0; i < url->nhosts; i++) {
        s = apr_pstrcat(p, s, i ? "," : "", host_text(p, &url->hosts[i]), NULL);
    }
    if (url->db > 0) {
        s = apr_psprintf(p, url->hosts[0].port ? "%s/%d" : "%s?db=%d", s, url->db);
    }
    return s;
}

static const char *const option_names[] = {
    "PegaDMCacheUser",   "PegaDMCachePassword",        "PegaDMCachePasswordFile",
    "PegaDMCacheCAFile", "PegaDMCacheCertificateFile", "PegaDMCacheKeyFile"};

/* The first directive set among those with the bit in mask (1 << index). */
static const char *first_set(const pegadm_cache_opts_set_t *set, unsigned mask)
{
    const int flags[] = {set->user,    set->password,  set->password_file,
                         set->ca_file, set->cert_file, set->key_file};

    for (unsigned i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        if ((mask & (1u << i)) && flags[i]) {
            return option_names[i];
        }
    }
    return NULL;
}

#define OPT_AUTH 0x07u /* user, password, password file */
#define OPT_TLS  0x38u /* CA, certificate, key */

const char *pegadm_cacheurl_check_options(apr_pool_t *p, const pegadm_cache_url_t *url,
                                          const pegadm_cache_opts_set_t *set)
{
    const char *d;

    if (url->kind == PEGADM_CACHE_SOCACHE && (d = first_set(set, OPT_AUTH | OPT_TLS))) {
        return apr_psprintf(p,
                            "%s: only for redis://, rediss:// or memcache:// servers, "
                            "not for PegaDMCache %s",
                            d, url->provider);
    }
    if (url->kind == PEGADM_CACHE_MEMCACHE && (d = first_set(set, OPT_AUTH | OPT_TLS))) {
        return apr_psprintf(p,
                            "%s: memcached takes no password and no TLS here (TLS to "
                            "memcached goes through a local stunnel)",
                            d);
    }
    if (url->kind == PEGADM_CACHE_REDIS && !url->tls && (d = first_set(set, OPT_TLS))) {
        return apr_psprintf(p, "%s: only for rediss:// (TLS), and PegaDMCache says redis://",
                            d);
    }
    if (set->password && set->password_file) {
        return apr_psprintf(p, "PegaDMCachePasswordFile: PegaDMCachePassword is set too: "
                               "give one of them");
    }
    if (set->user && !set->password && !set->password_file) {
        return apr_psprintf(p, "PegaDMCacheUser: needs PegaDMCachePasswordFile or "
                               "PegaDMCachePassword");
    }
    if (set->cert_file != set->key_file) {
        return apr_psprintf(
            p, "%s: needs %s too",
            set->cert_file ? "PegaDMCacheCertificateFile" : "PegaDMCacheKeyFile",
            set->cert_file ? "PegaDMCacheKeyFile" : "PegaDMCacheCertificateFile");
    }
    return NULL;
}

const char *pegadm_cacheurl_parse_timeout(apr_pool_t *p, const char *name, const char *arg,
                                          apr_interval_time_t *out)
{
    const char *dot = arg ? strchr(arg, '.') : NULL;
    apr_size_t whole_len = dot ? (apr_size_t)(dot - arg) : (arg ? strlen(arg) : 0);
    apr_size_t frac_len = dot ? strlen(dot + 1) : 0;
    long whole = arg ? small_number(arg, whole_len, 60) : -1;
    long ms = 0;

    if (dot && (frac_len == 0 || frac_len > 3 || !is_digits(dot + 1, frac_len))) {
        whole = -1;
    }
    for (apr_size_t i = 0; whole >= 0 && i < 3; i++) {
        ms = ms * 10 + (i < frac_len ? dot[1 + i] - '0' : 0);
    }
    ms += whole * 1000;
    if (whole < 0 || ms < 10 || ms > 60000) {
        return apr_psprintf(p,
                            "%s: '%s' is not a number of seconds from 0.01 to 60 "
                            "(at most three decimals)",
                            name, arg ? arg : "");
    }
    *out = apr_time_from_msec(ms);
    return NULL;
}
