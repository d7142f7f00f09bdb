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

/* A password in the proxy URL would be printed wherever httpd prints the
 * configuration (mod_info, DUMP_CONFIG) and in messages naming the URL:
 * refused, and never repeated in the refusal. */
const char *pegadm_check_proxy_url(apr_pool_t *p, const char *name, const char *arg)
{
    apr_uri_t uri;
    int parsed = apr_uri_parse(p, arg, &uri) == APR_SUCCESS;

    if (strchr(arg, '@') && (!parsed || uri.user || uri.password || !uri.hostname)) {
        return apr_psprintf(p,
                            "%s: a user name or password in the proxy URL is refused: httpd "
                            "would show it (mod_info, DUMP_CONFIG); use a proxy that "
                            "admits this server by its address",
                            name);
    }
    if (!parsed || !uri.scheme || !uri.hostname ||
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

/* The prefix length of an address argument and its family (4 or 6); -1
 * if it is not one. */
static int address_bits(const char *arg, int *family)
{
    const char *slash = strchr(arg, '/');
    unsigned char mask[4];
    int bits = 0, octets = 1;

    *family = strchr(arg, ':') ? 6 : 4;
    if (!*arg || slash == arg) {
        return -1;
    }
    if (slash && strchr(slash + 1, '.')) { /* a dotted IPv4 netmask */
        if (*family != 4 || inet_pton(AF_INET, slash + 1, mask) != 1) {
            return -1;
        }
        for (int i = 0; i < 4; i++) {
            for (int b = 0; b < 8; b++) {
                bits += (mask[i] >> b) & 1;
            }
        }
        return bits;
    }
    if (slash) {
        return apr_isdigit(slash[1]) ? atoi(slash + 1) : -1;
    }
    if (*family == 6) {
        return 128;
    }
    /* httpd reads a partial IPv4 address ("10.1") as its network */
    for (const char *c = arg; *c; c++) {
        octets += *c == '.' && c[1];
    }
    return 8 * (octets > 4 ? 4 : octets);
}

/* Shares of a family's space in units of 2^-SHARE_BITS of it: a range
 * narrower than that counts as none, which never makes a bound look wider. */
#define SHARE_BITS 40

int pegadm_subnets_admit_all(const char *const *args, int n)
{
    apr_uint64_t share[2] = {0, 0}; /* of IPv4, of IPv6 */
    const apr_uint64_t all = (apr_uint64_t)1 << SHARE_BITS;

    for (int i = 0; i < n; i++) {
        int family, bits = address_bits(args[i], &family);
        if (bits < 0) {
            return 1;
        }
        share[family == 6] += bits <= SHARE_BITS ? (apr_uint64_t)1 << (SHARE_BITS - bits) : 0;
    }
    return share[0] >= all || share[1] >= all;
}

/* Skips a quoted string or /regex/ starting at s; returns what follows. */
static const char *skip_literal(const char *s)
{
    const char end = *s;

    for (s++; *s && *s != end; s++) {
        if (*s == '\\' && s[1]) {
            s++;
        }
    }
    return *s ? s + 1 : s;
}

static int is_word_at(const char *s, const char *word)
{
    size_t len = strlen(word);
    return !strncasecmp(s, word, len) && !apr_isalnum(s[len]) && s[len] != '_';
}

int pegadm_expr_is_conjunction(const char *expr)
{
    const char *s = expr;

    while (*s) {
        /* a regex follows =~ or !~ (or m, for m#...#: refused below) */
        if (*s == '\'' || *s == '"' ||
            (*s == '/' && s > expr && (s[-1] == '~' || s[-1] == ' '))) {
            s = skip_literal(s);
            continue;
        }
        if ((s[0] == '|' && s[1] == '|') || (s[0] == '!' && s[1] != '=' && s[1] != '~') ||
            is_word_at(s, "-or") || is_word_at(s, "-not") || (s[0] == 'm' && s[1] == '#')) {
            return 0;
        }
        s++;
    }
    return 1;
}
