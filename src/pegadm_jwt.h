/* HS256 JSON Web Tokens (RFC 7515 compact serialization, RFC 7519 claims). */
#ifndef PEGADM_JWT_H
#define PEGADM_JWT_H

#include <apr_pools.h>

/* Compact JWS over the exact header and payload bytes given:
 * b64url(header) "." b64url(payload) "." b64url(HMAC-SHA256(key, first two)).
 * Returns the token in p, or NULL if OpenSSL fails. */
const char *pegadm_jws_hs256_compact(apr_pool_t *p, const unsigned char *key,
                                     apr_size_t key_len, const char *header,
                                     apr_size_t header_len, const char *payload,
                                     apr_size_t payload_len);

/* The token the Pega service expects: header {"alg":"HS256","typ":"JWT"},
 * claims {"iss": iss, "iat": iat, "exp": exp} (seconds since the epoch).
 * iss is any UTF-8 string (JSON-encoded by jansson). Returns the token in p,
 * or NULL on failure (invalid UTF-8 in iss, OpenSSL error). */
const char *pegadm_jwt_sign_hs256(apr_pool_t *p, const unsigned char *key, apr_size_t key_len,
                                  const char *iss, apr_int64_t iat, apr_int64_t exp);

#endif
