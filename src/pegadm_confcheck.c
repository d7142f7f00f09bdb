/* Checks of directive values without httpd (pegadm_confcheck.h): numbers,
 * shmcb's size, UUIDs, service and proxy URLs, local paths. Fuzzed by
 * tests/fuzz/fuzz_confcheck.c; the directive handlers that call them are in
 * mod_pegadm_config.c. */
#include "pegadm_confcheck.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_uri.h>

const char *pegadm_check_int(apr_pool_t *p, const char *name, const char *arg, long min,
                             long max, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(arg, &end, 10);
    if (!*arg || *end || errno || !apr_isdigit(*arg) || v < min || v > max) {
        return apr_psprintf(p, "%s: '%s' is not a whole number from %ld to %ld", name, arg, min,
                            max);
    }
    *out = v;
    return NULL;
}

apr_size_t pegadm_shmcb_args_size(const char *args, apr_size_t none)
{
    const char *open = strrchr(args, '(');
    return open ? (apr_size_t)strtol(open + 1, NULL, 10) : none;
}

int pegadm_is_uuid(const char *s)
{
    static const char shape[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
    for (size_t i = 0; i < sizeof(shape) - 1; i++) {
        if (shape[i] == '-' ? s[i] != '-' : !apr_isxdigit(s[i])) {
            return 0;
        }
    }
    return s[sizeof(shape) - 1] == '\0';
}

int pegadm_is_loopback_host(const char *host)
{
    struct in_addr v4;
    struct in6_addr v6;

    if (!strcasecmp(host, "localhost")) {
        return 1;
    }
    if (inet_pton(AF_INET, host, &v4) == 1) {
        return (ntohl(v4.s_addr) >> 24) == 127;
    }
    return inet_pton(AF_INET6, host, &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

/* https:// anywhere; http:// only to this machine, where nothing can listen in. */
const char *pegadm_check_service_url(apr_pool_t *p, const char *name, const char *arg,
                                     const char **out)
{
    apr_uri_t uri;
    apr_size_t len = strlen(arg);

    if (apr_uri_parse(p, arg, &uri) != APR_SUCCESS || !uri.scheme || !uri.hostname ||
        !*uri.hostname) {
        return apr_psprintf(p, "%s: '%s' is not an absolute URL", name, arg);
    }
    if (uri.user || uri.password || uri.query || uri.fragment) {
        return apr_psprintf(p, "%s: the URL must not carry credentials, a query or a fragment",
                            name);
    }
    if (strcasecmp(uri.scheme, "https") != 0 &&
        !(!strcasecmp(uri.scheme, "http") && pegadm_is_loopback_host(uri.hostname))) {
        return apr_psprintf(p,
                            "%s: '%s' must be an https:// URL (plain http:// is accepted only "
                            "for a loopback host: 127.0.0.0/8, localhost, [::1])",
                            name, arg);
    }
    while (len > 0 && arg[len - 1] == '/') {
        len--;
    }
    *out = apr_pstrmemdup(p, arg, len);
    return NULL;
}

const char *pegadm_check_proxy_url(apr_pool_t *p, const char *name, const char *arg)
{
    apr_uri_t uri;
    if (apr_uri_parse(p, arg, &uri) != APR_SUCCESS || !uri.scheme || !uri.hostname ||
        (strcasecmp(uri.scheme, "http") != 0 && strcasecmp(uri.scheme, "https") != 0)) {
        return apr_psprintf(p, "%s: '%s' is not an http:// or https:// proxy URL", name, arg);
    }
    return NULL;
}

const char *pegadm_check_cleartext_proxy(apr_pool_t *p, const char *url, const char *proxy)
{
    apr_uri_t target, via;

    if (!proxy || apr_uri_parse(p, url, &target) != APR_SUCCESS || !target.scheme ||
        strcasecmp(target.scheme, "http") != 0) {
        return NULL;
    }
    if (apr_uri_parse(p, proxy, &via) == APR_SUCCESS && via.hostname &&
        pegadm_is_loopback_host(via.hostname)) {
        return NULL;
    }
    return apr_psprintf(p,
                        "'%s' is plain http:// and the proxy '%s' is not on loopback: the "
                        "bearer token would cross the network in clear",
                        url, proxy);
}

const char *pegadm_check_local_path(apr_pool_t *p, const char *name, const char *arg)
{
    for (const char *c = arg; *c; c++) {
        if (!apr_isgraph(*c) || *c == '"' || *c == '\'' || *c == '\\' || *c == '<' ||
            *c == '>') {
            return apr_psprintf(p, "%s: '%s' contains characters not allowed in a path", name,
                                arg);
        }
    }
    if (arg[0] != '/' || arg[1] == '/') {
        return apr_psprintf(
            p, "%s: '%s' must be a path on this server, starting with a single /", name, arg);
    }
    return NULL;
}
