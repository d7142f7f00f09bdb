/* HS256 tokens for the Pega service. The key is only ever handed to
 * OpenSSL's HMAC; nothing here logs. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "pegadm_b64.h"
#include "pegadm_jwt.h"

static const char pegadm_jwt_header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

const char *pegadm_jws_hs256_compact(apr_pool_t *p, const unsigned char *key,
                                     apr_size_t key_len, const char *header,
                                     apr_size_t header_len, const char *payload,
                                     apr_size_t payload_len)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    const char *signing_input;

    if (key_len > INT_MAX) {
        return NULL;
    }
    signing_input =
        apr_pstrcat(p, pegadm_b64url_encode(p, (const unsigned char *)header, header_len), ".",
                    pegadm_b64url_encode(p, (const unsigned char *)payload, payload_len), NULL);
    /* An empty key is legal HMAC, but EVP_MAC refuses it as NULL (openssl#31068). */
    if (!HMAC(EVP_sha256(), key_len ? key : (const unsigned char *)"", (int)key_len,
              (const unsigned char *)signing_input, strlen(signing_input), mac, &mac_len)) {
        return NULL;
    }
    return apr_pstrcat(p, signing_input, ".", pegadm_b64url_encode(p, mac, mac_len), NULL);
}

/* {"iss":...,"iat":...,"exp":...} in that order, compact, malloc'ed; NULL
 * if iss is not valid UTF-8 (json_pack checks). */
static char *pegadm_jwt_claims_json(const char *iss, apr_int64_t iat, apr_int64_t exp)
{
    json_t *claims = json_pack("{s:s, s:I, s:I}", "iss", iss, "iat", (json_int_t)iat, "exp",
                               (json_int_t)exp);
    char *text = claims ? json_dumps(claims, JSON_COMPACT) : NULL;

    json_decref(claims);
    return text;
}

const char *pegadm_jwt_sign_hs256(apr_pool_t *p, const unsigned char *key, apr_size_t key_len,
                                  const char *iss, apr_int64_t iat, apr_int64_t exp)
{
    char *claims = pegadm_jwt_claims_json(iss, iat, exp);
    const char *token;

    if (!claims) {
        return NULL;
    }
    token = pegadm_jws_hs256_compact(p, key, key_len, pegadm_jwt_header,
                                     sizeof(pegadm_jwt_header) - 1, claims, strlen(claims));
    free(claims);
    return token;
}
