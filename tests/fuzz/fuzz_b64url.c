/* base64url decoding (pegadm_b64url_decode): whatever decodes encodes back
 * to the same text (one spelling per byte string), and any bytes survive
 * an encode and decode round trip. */
#include <string.h>

#include "fuzz_support.h"
#include "pegadm_b64.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = pegadm_fuzz_pool();
    const char *text = size ? (const char *)data : "";
    unsigned char *out;
    apr_size_t out_len;
    char *encoded;

    if (pegadm_b64url_decode(p, text, size, &out, &out_len) == APR_SUCCESS) {
        encoded = pegadm_b64url_encode(p, out, out_len);
        PEGADM_FUZZ_CHECK(strlen(encoded) == size && !memcmp(encoded, text, size));
    }
    encoded = pegadm_b64url_encode(p, (const unsigned char *)text, size);
    PEGADM_FUZZ_CHECK(pegadm_b64url_decode(p, encoded, strlen(encoded), &out, &out_len) ==
                      APR_SUCCESS);
    PEGADM_FUZZ_CHECK(out_len == size && !memcmp(out, text, size));
    apr_pool_destroy(p);
    return 0;
}
