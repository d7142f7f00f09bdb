/* The session endpoint's POST body (pegadm_parse_trigger_body), straight
 * from the browser. */
#include <string.h>

#include "fuzz_support.h"
#include "pegadm_trigger.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = pegadm_fuzz_pool();
    const char *trigger = "unset", *problem = NULL;
    apr_status_t rv =
        pegadm_parse_trigger_body(p, size ? (const char *)data : "", size, &trigger, &problem);

    if (rv == APR_SUCCESS) {
        PEGADM_FUZZ_CHECK(!problem);
        PEGADM_FUZZ_CHECK(!trigger || strlen(trigger) < size);
    } else {
        PEGADM_FUZZ_CHECK(rv == APR_EINVAL && problem && !trigger);
    }
    apr_pool_destroy(p);
    return 0;
}
