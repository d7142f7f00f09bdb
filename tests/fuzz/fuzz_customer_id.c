/* Customer-ID validation (pegadm_customer_id_check), checked against an
 * independent reading: an ID passes exactly when it is 1 to 256 bytes of
 * UTF-8 that jansson accepts too, without C0, DEL or C1 controls. */
#include <jansson.h>

#include "fuzz_support.h"
#include "pegadm_identity.h"

static int has_control(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < size; i++) {
        if (data[i] < 0x20 || data[i] == 0x7f ||
            (data[i] == 0xc2 && i + 1 < size && data[i + 1] >= 0x80 && data[i + 1] <= 0x9f)) {
            return 1;
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *id = size ? (const char *)data : NULL;
    pegadm_id_check_t check = pegadm_customer_id_check(id, size);
    json_t *as_json = json_stringn(size ? id : "", size);
    int expected_ok =
        size > 0 && size <= PEGADM_CUSTOMER_ID_MAX && as_json && !has_control(data, size);

    json_decref(as_json);
    PEGADM_FUZZ_CHECK(pegadm_id_check_reason(check) != NULL);
    PEGADM_FUZZ_CHECK((check == PEGADM_ID_OK) == expected_ok);
    PEGADM_FUZZ_CHECK((check == PEGADM_ID_EMPTY) == (size == 0));
    return 0;
}
