/* base64url without padding. Decoding is strict: exactly one spelling is
 * accepted for each byte string (unused trailing bits must be zero), so two
 * different strings never decode to the same bytes. */
#include <apr_strings.h>

#include "pegadm_b64.h"

static const char pegadm_b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *pegadm_b64url_encode(apr_pool_t *p, const unsigned char *data, apr_size_t len)
{
    char *out = apr_palloc(p, (len + 2) / 3 * 4 + 1);
    char *o = out;
    apr_size_t i = 0;

    for (; len - i >= 3; i += 3) {
        apr_uint32_t v =
            (apr_uint32_t)data[i] << 16 | (apr_uint32_t)data[i + 1] << 8 | data[i + 2];
        *o++ = pegadm_b64url_alphabet[v >> 18];
        *o++ = pegadm_b64url_alphabet[v >> 12 & 63];
        *o++ = pegadm_b64url_alphabet[v >> 6 & 63];
        *o++ = pegadm_b64url_alphabet[v & 63];
    }
    if (len - i > 0) {
        apr_uint32_t v = (apr_uint32_t)data[i] << 16;
        if (len - i == 2) {
            v |= (apr_uint32_t)data[i + 1] << 8;
        }
        *o++ = pegadm_b64url_alphabet[v >> 18];
        *o++ = pegadm_b64url_alphabet[v >> 12 & 63];
        if (len - i == 2) {
            *o++ = pegadm_b64url_alphabet[v >> 6 & 63];
        }
    }
    *o = '\0';
    return out;
}

/* The 6-bit value of c, or -1 if c is not in the url alphabet. */
static int pegadm_b64url_value(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '-') {
        return 62;
    }
    if (c == '_') {
        return 63;
    }
    return -1;
}

apr_status_t pegadm_b64url_decode(apr_pool_t *p, const char *in, apr_size_t in_len,
                                  unsigned char **out, apr_size_t *out_len)
{
    unsigned char *buf;
    apr_size_t n = 0, i;
    apr_uint32_t acc = 0;
    int bits = 0;

    /* One character alone carries 6 bits: not even one byte. */
    if (in_len % 4 == 1) {
        return APR_EINVAL;
    }
    buf = apr_palloc(p, in_len / 4 * 3 + 3);
    for (i = 0; i < in_len; i++) {
        int v = pegadm_b64url_value(in[i]);
        if (v < 0) {
            return APR_EINVAL;
        }
        acc = (acc << 6 | (apr_uint32_t)v) & 0x3fff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[n++] = (unsigned char)(acc >> bits);
        }
    }
    if (acc & ((1u << bits) - 1)) {
        return APR_EINVAL;
    }
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return APR_SUCCESS;
}
