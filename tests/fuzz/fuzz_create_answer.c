/* The service's answer to call 1 (pegadm_dm_parse_create_answer): the first
 * byte picks the HTTP status (mostly 200, where the body matters), the rest
 * is the body. A session ID that comes out is always safe to hand on; a
 * refusal always says why, briefly. */
#include <string.h>

#include "fuzz_support.h"
#include "pegadm_dm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = pegadm_fuzz_pool();
    long status = size && data[0] >= 0xf0 ? 100 + (data[0] - 0xf0) * 50 : 200;
    const char *body = size ? (const char *)data + 1 : "";
    const char *sid = NULL, *why = NULL;
    pegadm_dm_status_t st =
        pegadm_dm_parse_create_answer(p, status, body, size ? size - 1 : 0, &sid, &why);

    if (st == PEGADM_DM_OK) {
        PEGADM_FUZZ_CHECK(status >= 200 && status <= 299 && !why && sid);
        PEGADM_FUZZ_CHECK(pegadm_session_id_is_valid(sid, strlen(sid)));
    } else {
        PEGADM_FUZZ_CHECK(!sid && why && strlen(why) < 200);
    }
    apr_pool_destroy(p);
    return 0;
}
