/* The pure directive value checks (pegadm_confcheck.c): the first byte
 * picks the check, the rest up to any NUL is the value, as httpd would
 * hand it over. What passes has the promised shape; what fails is named. */
#include <string.h>
#include <strings.h>

#include <apr_strings.h>
#include <apr_uri.h>

#include "fuzz_support.h"
#include "pegadm_confcheck.h"

static const char *check_int(apr_pool_t *p, const char *name, const char *arg, long min,
                             long max)
{
    long v = -1;
    const char *err = pegadm_check_int(p, name, arg, min, max, &v);
    PEGADM_FUZZ_CHECK(err ||
                      (v >= min && v <= max && strspn(arg, "0123456789") == strlen(arg)));
    return err;
}

/* Whatever the arguments, a size comes back; without "(" it is the default. */
static void check_shmcb_size(const char *arg)
{
    apr_size_t size = pegadm_shmcb_args_size(arg, 12345);
    PEGADM_FUZZ_CHECK(strchr(arg, '(') || size == 12345);
}

static const char *check_service_url(apr_pool_t *p, const char *arg)
{
    const char *out = NULL;
    const char *err = pegadm_check_service_url(p, "PegaDMServiceURL", arg, &out);
    if (!err) {
        size_t len = strlen(out);
        PEGADM_FUZZ_CHECK(!strncasecmp(out, "https://", 8) || !strncasecmp(out, "http://", 7));
        PEGADM_FUZZ_CHECK(len > 0 && out[len - 1] != '/' && !strncmp(out, arg, len));
    }
    return err;
}

static const char *check_local_path(apr_pool_t *p, const char *arg)
{
    const char *err = pegadm_check_local_path(p, "PegaDMSessionEndpoint", arg);
    PEGADM_FUZZ_CHECK(err || (arg[0] == '/' && arg[1] != '/' && !strpbrk(arg, "\"'<> \\")));
    return err;
}

static int has_userinfo(apr_pool_t *p, const char *arg)
{
    apr_uri_t uri;
    return apr_uri_parse(p, arg, &uri) != APR_SUCCESS || uri.user || uri.password;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {
        "PegaDMTimeout",           "PegaDMServiceURL", "PegaDMProxy",
        "PegaDMSessionEndpoint",   "PegaDMWidgetID",   "PegaDMCache",
        "PegaDMCustomerIDQueryTTL"};
    apr_pool_t *p;
    const char *arg, *err = NULL;
    unsigned which;

    if (size == 0) {
        return 0;
    }
    p = pegadm_fuzz_pool();
    arg = apr_pstrmemdup(p, (const char *)data + 1, size - 1);
    which = data[0] % 7;
    switch (which) {
    case 0:
        err = check_int(p, names[0], arg, 1, 60);
        break;
    case 1:
        err = check_service_url(p, arg);
        break;
    case 2:
        err = pegadm_check_proxy_url(p, names[2], arg);
        /* a user or password never passes, and a refusal never repeats one */
        PEGADM_FUZZ_CHECK(err || !has_userinfo(p, arg));
        PEGADM_FUZZ_CHECK(!err || !strchr(arg, '@') || !strstr(err, arg));
        break;
    case 3:
        err = check_local_path(p, arg);
        break;
    case 4:
        PEGADM_FUZZ_CHECK(!pegadm_is_uuid(arg) || strlen(arg) == 36);
        break;
    case 5:
        check_shmcb_size(arg);
        break;
    default:
        err = check_int(p, names[6], arg, 0, 86400);
    }
    PEGADM_FUZZ_CHECK(!err || !strncmp(err, names[which], strlen(names[which])));
    apr_pool_destroy(p);
    return 0;
}
