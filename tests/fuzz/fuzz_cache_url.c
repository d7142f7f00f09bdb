/* PegaDMCache's value (pegadm_cacheurl.c), as httpd hands it over: what
 * passes has the promised shape and reads back the same from its own
 * description; what fails is named, and never repeats what stood before
 * an '@' (a password written into the value). */
#include <string.h>

#include <apr_strings.h>

#include "fuzz_support.h"
#include "pegadm_cacheurl.h"

static void check_shape(apr_pool_t *p, const pegadm_cache_url_t *u)
{
    pegadm_cache_url_t *again = NULL;

    if (u->kind == PEGADM_CACHE_SOCACHE) {
        PEGADM_FUZZ_CHECK(u->provider && u->nhosts == 0);
        return;
    }
    PEGADM_FUZZ_CHECK(u->nhosts >= 1 && u->nhosts <= PEGADM_CACHEURL_MAX_HOSTS);
    PEGADM_FUZZ_CHECK(u->db >= 0 && u->db <= PEGADM_CACHEURL_MAX_DB);
    PEGADM_FUZZ_CHECK(u->db == 0 || (u->kind == PEGADM_CACHE_REDIS && u->nhosts == 1));
    for (int i = 0; i < u->nhosts; i++) {
        PEGADM_FUZZ_CHECK(u->hosts[i].host && u->hosts[i].host[0]);
        PEGADM_FUZZ_CHECK(u->hosts[i].port >= 0 && u->hosts[i].port <= 65535);
        PEGADM_FUZZ_CHECK(u->hosts[i].port > 0 || (u->nhosts == 1 && !u->tls));
    }
    PEGADM_FUZZ_CHECK(
        !pegadm_cacheurl_parse(p, "PegaDMCache", pegadm_cacheurl_describe(p, u), &again));
    PEGADM_FUZZ_CHECK(again->kind == u->kind && again->tls == u->tls && again->db == u->db);
    PEGADM_FUZZ_CHECK(again->nhosts == u->nhosts && !again->legacy);
    for (int i = 0; i < u->nhosts; i++) {
        PEGADM_FUZZ_CHECK(!strcmp(again->hosts[i].host, u->hosts[i].host));
        PEGADM_FUZZ_CHECK(again->hosts[i].port == u->hosts[i].port);
    }
}

/* In scheme://authority, the bytes before an '@' of the authority, if 4
 * or more. */
static const char *userinfo(apr_pool_t *p, const char *arg)
{
    const char *start = strchr(arg, ':'), *at, *slash;

    if (!start || strncmp(start, "://", 3) != 0 || start[3] == '/') {
        return NULL;
    }
    start += 3;
    at = strchr(start, '@');
    slash = strchr(start, '/');
    if (!at || (slash && slash < at) || at - start < 4) {
        return NULL;
    }
    return apr_pstrmemdup(p, start, at - start);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = pegadm_fuzz_pool();
    const char *arg = apr_pstrmemdup(p, (const char *)data, size);
    pegadm_cache_url_t *u = NULL;
    const char *err = pegadm_cacheurl_parse(p, "PegaDMCache", arg, &u);
    const char *secret = userinfo(p, arg);
    apr_interval_time_t t = -1;

    if (err) {
        PEGADM_FUZZ_CHECK(!strncmp(err, "PegaDMCache: ", 13));
        PEGADM_FUZZ_CHECK(!secret || !strstr(err, secret));
    } else {
        check_shape(p, u);
    }
    err = pegadm_cacheurl_parse_timeout(p, "PegaDMCacheTimeout", arg, &t);
    PEGADM_FUZZ_CHECK(err ? !strncmp(err, "PegaDMCacheTimeout: ", 20)
                          : t >= apr_time_from_msec(10) && t <= apr_time_from_sec(60));
    apr_pool_destroy(p);
    return 0;
}
