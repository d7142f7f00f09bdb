/* Customer IDs end up in cache keys, JSON, and the admin's log: only
 * well-formed UTF-8 without control characters gets that far. */
#include <apr_general.h>

#include "pegadm_identity.h"

/* Decodes the UTF-8 sequence at s (avail bytes left) into *cp. Returns its
 * length, or 0 if it is not well-formed per Unicode table 3-7: that rules
 * out overlongs, surrogates, code points over U+10FFFF and truncation. */
static apr_size_t pegadm_utf8_decode(const unsigned char *s, apr_size_t avail, apr_uint32_t *cp)
{
    unsigned char lead = s[0], lo = 0x80, hi = 0xBF;
    apr_size_t len, i;

    if (lead < 0x80) {
        *cp = lead;
        return 1;
    }
    if (lead >= 0xC2 && lead <= 0xDF) {
        len = 2;
        *cp = lead & 0x1F;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        len = 3;
        *cp = lead & 0x0F;
        lo = lead == 0xE0 ? 0xA0 : lo;
        hi = lead == 0xED ? 0x9F : hi;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        len = 4;
        *cp = lead & 0x07;
        lo = lead == 0xF0 ? 0x90 : lo;
        hi = lead == 0xF4 ? 0x8F : hi;
    } else {
        return 0;
    }
    if (len > avail) {
        return 0;
    }
    for (i = 1; i < len; i++) {
        if (s[i] < lo || s[i] > hi) {
            return 0;
        }
        *cp = *cp << 6 | (s[i] & 0x3F);
        lo = 0x80;
        hi = 0xBF;
    }
    return len;
}

static int pegadm_is_control(apr_uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F);
}

pegadm_id_check_t pegadm_customer_id_check(const char *id, apr_size_t len)
{
    const unsigned char *s = (const unsigned char *)id;
    apr_size_t i = 0;

    if (len == 0) {
        return PEGADM_ID_EMPTY;
    }
    if (len > PEGADM_CUSTOMER_ID_MAX) {
        return PEGADM_ID_TOO_LONG;
    }
    while (i < len) {
        apr_uint32_t cp;
        apr_size_t n = pegadm_utf8_decode(s + i, len - i, &cp);
        if (n == 0) {
            return PEGADM_ID_BAD_UTF8;
        }
        if (pegadm_is_control(cp)) {
            return PEGADM_ID_CONTROL_CHAR;
        }
        i += n;
    }
    return PEGADM_ID_OK;
}

const char *pegadm_id_check_reason(pegadm_id_check_t check)
{
    switch (check) {
    case PEGADM_ID_OK:
        return "valid";
    case PEGADM_ID_EMPTY:
        return "empty";
    case PEGADM_ID_TOO_LONG:
        return "longer than " APR_STRINGIFY(PEGADM_CUSTOMER_ID_MAX) " bytes";
    case PEGADM_ID_CONTROL_CHAR:
        return "contains a control character";
    case PEGADM_ID_BAD_UTF8:
        return "not valid UTF-8";
    }
    return "unknown check result";
}
