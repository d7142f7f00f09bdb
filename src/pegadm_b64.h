/* base64url without padding (RFC 7515, section 2), the JOSE encoding. */
#ifndef PEGADM_B64_H
#define PEGADM_B64_H

#include <apr_pools.h>

/* Encodes len bytes of data; the result is NUL-terminated and lives in p. */
char *pegadm_b64url_encode(apr_pool_t *p, const unsigned char *data, apr_size_t len);

/* Decodes in_len characters of in (no padding, no white space, alphabet
 * A-Z a-z 0-9 - _ only). On success *out (NUL-terminated for convenience,
 * in p) holds *out_len bytes; on malformed input (including non-zero unused
 * trailing bits: one spelling per byte string) returns APR_EINVAL. */
apr_status_t pegadm_b64url_decode(apr_pool_t *p, const char *in, apr_size_t in_len,
                                  unsigned char **out, apr_size_t *out_len);

#endif
