/* Cache-Control merging (pegadm_cache_control_private) over any header
 * value a backend may send: the result always has the directives asked
 * for, never "public", and is a list the merge itself leaves unchanged. */
#include <string.h>

#include <apr_strings.h>

#include "fuzz_support.h"
#include "pegadm_cachectl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const eager[] = {"private", "no-store", NULL};
    apr_pool_t *p = pegadm_fuzz_pool();
    const char *value = apr_pstrmemdup(p, (const char *)data, size);
    const char *merged = pegadm_cache_control_private(p, value, eager);

    PEGADM_FUZZ_CHECK(pegadm_cache_control_has(merged, "private"));
    PEGADM_FUZZ_CHECK(pegadm_cache_control_has(merged, "no-store"));
    PEGADM_FUZZ_CHECK(!pegadm_cache_control_has(merged, "public"));
    PEGADM_FUZZ_CHECK(!pegadm_cache_control_has(merged, "s-maxage"));
    PEGADM_FUZZ_CHECK(!strcmp(pegadm_cache_control_private(p, merged, eager), merged));
    apr_pool_destroy(p);
    return 0;
}
