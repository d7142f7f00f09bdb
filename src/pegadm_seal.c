/* Keys derived from the JWT secret (HKDF), cache keys (HMAC) and sealed
 * cache entries (AES-256-GCM) on OpenSSL, as pegadm_seal.h promises. What
 * is sealed, and where it is stored, is the callers' business. */
#include "pegadm_seal.h"

#include <string.h>

#include <apr_strings.h>

#include "pegadm_bytes.h"
#include "pegadm_localcache.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#define NONCE_LEN 12
#define TAG_LEN   16

/* HKDF-SHA256 with no salt: the secret is already a high-entropy key, and a
 * distinct label per purpose keeps the derived keys independent of each other
 * and of the JWT signing key itself. */
static apr_status_t hkdf_sha256(const unsigned char *secret, apr_size_t secret_len,
                                const char *label, unsigned char out[32])
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM params[4];
    int ok = 0;

    if (ctx) {
        params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0);
        params[1] =
            OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, secret_len);
        params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)label,
                                                      strlen(label));
        params[3] = OSSL_PARAM_construct_end();
        ok = EVP_KDF_derive(ctx, out, 32, params) == 1;
    }
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    return ok ? APR_SUCCESS : APR_EGENERAL;
}

static EVP_MAC_CTX *keyed_hmac_sha256(const unsigned char *key, apr_size_t key_len)
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    OSSL_PARAM params[2];

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();
    if (ctx && EVP_MAC_init(ctx, key, key_len, params) != 1) {
        EVP_MAC_CTX_free(ctx);
        ctx = NULL;
    }
    EVP_MAC_free(mac); /* the context holds its own reference */
    return ctx;
}

apr_status_t pegadm_keys_derive(pegadm_keys_t *keys, const unsigned char *secret,
                                apr_size_t secret_len)
{
    unsigned char tag_key[32];

    memset(keys, 0, sizeof(*keys));
    if (hkdf_sha256(secret, secret_len, "mod_pegadm cache tag v1", tag_key) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    memcpy(keys->tag_key, tag_key, sizeof(keys->tag_key));
    OPENSSL_cleanse(tag_key, sizeof(tag_key));
    if (hkdf_sha256(secret, secret_len, "mod_pegadm cache id v1", keys->id_key) !=
            APR_SUCCESS ||
        hkdf_sha256(secret, secret_len, "mod_pegadm cache seal v1", keys->enc_key) !=
            APR_SUCCESS ||
        !(keys->id_mac = keyed_hmac_sha256(keys->id_key, sizeof(keys->id_key))) ||
        !(keys->aead = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL))) {
        pegadm_keys_release(keys);
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

void pegadm_keys_release(pegadm_keys_t *keys)
{
    EVP_MAC_CTX_free(keys->id_mac);
    EVP_CIPHER_free(keys->aead);
    OPENSSL_cleanse(keys, sizeof(*keys));
}

apr_status_t pegadm_cache_id(const pegadm_keys_t *keys, const char *purpose,
                             const char *widget_id, const char *customer_id,
                             unsigned char out[PEGADM_CACHE_ID_LEN])
{
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(keys->id_mac);
    size_t len = 0;
    int ok;

    /* The NUL separators (strlen + 1) make the encoding unambiguous. */
    ok = ctx && EVP_MAC_update(ctx, (const unsigned char *)purpose, strlen(purpose) + 1) == 1 &&
         EVP_MAC_update(ctx, (const unsigned char *)widget_id, strlen(widget_id) + 1) == 1 &&
         EVP_MAC_update(ctx, (const unsigned char *)customer_id, strlen(customer_id)) == 1 &&
         EVP_MAC_final(ctx, out, &len, PEGADM_CACHE_ID_LEN) == 1;
    EVP_MAC_CTX_free(ctx);
    return ok ? APR_SUCCESS : APR_EGENERAL;
}

/* SipHash rather than HMAC: every cache key computed carries the tag, and
 * the request path computes several. */
void pegadm_customer_tag(const pegadm_keys_t *keys, const char *widget_id,
                         const char *customer_id, unsigned char out[PEGADM_CUSTOMER_TAG_LEN])
{
    unsigned char buf[1024];
    apr_size_t wlen = strlen(widget_id), clen = strlen(customer_id);
    apr_uint64_t h;

    if (wlen + 1 + clen + 1 > sizeof(buf)) {
        /* longer than any valid pair; still one tag per customer */
        unsigned char mac[PEGADM_CACHE_ID_LEN] = {0};
        pegadm_cache_id(keys, "customer tag", widget_id, customer_id, mac);
        memcpy(out, mac, PEGADM_CUSTOMER_TAG_LEN);
        return;
    }
    memcpy(buf, widget_id, wlen + 1); /* with its NUL: unambiguous */
    memcpy(buf + wlen + 1, customer_id, clen + 1);
    h = pegadm_siphash24(buf, wlen + 1 + clen, keys->tag_key);
    for (int i = 0; i < PEGADM_CUSTOMER_TAG_LEN; i++) {
        out[i] = (unsigned char)(h >> (8 * i));
    }
}

apr_status_t pegadm_random(unsigned char *out, apr_size_t len)
{
    EVP_RAND_CTX *drbg = RAND_get0_public(NULL);

    return drbg && EVP_RAND_generate(drbg, out, len, 0, 0, NULL, 0) == 1 ? APR_SUCCESS
                                                                         : APR_EGENERAL;
}

apr_status_t pegadm_seal(apr_pool_t *p, const pegadm_keys_t *keys, const unsigned char *aad,
                         apr_size_t aad_len, const unsigned char *plain, apr_size_t plain_len,
                         unsigned char **sealed, apr_size_t *sealed_len)
{
    unsigned char *buf = apr_palloc(p, plain_len + PEGADM_SEAL_OVERHEAD);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    EVP_RAND_CTX *drbg = RAND_get0_public(NULL);
    int n = 0, fin = 0, ok;

    /* the thread's own generator: RAND_bytes would first look up the RAND
     * method under a lock that every thread takes for writing */
    ok = ctx && drbg && EVP_RAND_generate(drbg, buf, NONCE_LEN, 0, 0, NULL, 0) == 1 &&
         EVP_EncryptInit_ex(ctx, keys->aead, NULL, keys->enc_key, buf) == 1 &&
         EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aad_len) == 1 &&
         EVP_EncryptUpdate(ctx, buf + NONCE_LEN, &n, plain, (int)plain_len) == 1 &&
         EVP_EncryptFinal_ex(ctx, buf + NONCE_LEN + n, &fin) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, buf + NONCE_LEN + plain_len) ==
             1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) {
        return APR_EGENERAL;
    }
    *sealed = buf;
    *sealed_len = plain_len + PEGADM_SEAL_OVERHEAD;
    return APR_SUCCESS;
}

apr_status_t pegadm_unseal(apr_pool_t *p, const pegadm_keys_t *keys, const unsigned char *aad,
                           apr_size_t aad_len, const unsigned char *sealed,
                           apr_size_t sealed_len, unsigned char **plain, apr_size_t *plain_len)
{
    apr_size_t len;
    unsigned char *buf;
    EVP_CIPHER_CTX *ctx;
    int n = 0, fin = 0, ok;

    if (sealed_len < PEGADM_SEAL_OVERHEAD) {
        return APR_EGENERAL;
    }
    len = sealed_len - PEGADM_SEAL_OVERHEAD;
    buf = apr_palloc(p, len + 1);
    ctx = EVP_CIPHER_CTX_new();
    ok = ctx && EVP_DecryptInit_ex(ctx, keys->aead, NULL, keys->enc_key, sealed) == 1 &&
         EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aad_len) == 1 &&
         EVP_DecryptUpdate(ctx, buf, &n, sealed + NONCE_LEN, (int)len) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN,
                             (void *)(sealed + NONCE_LEN + len)) == 1 &&
         EVP_DecryptFinal_ex(ctx, buf + n, &fin) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) {
        return APR_EGENERAL;
    }
    buf[len] = '\0';
    *plain = buf;
    *plain_len = len;
    return APR_SUCCESS;
}

apr_status_t pegadm_logout_plain_encode(unsigned char *out, const char *customer_id,
                                        apr_time_t issued)
{
    /* at most one past the longest: anything longer is refused unread */
    size_t len = strnlen(customer_id, PEGADM_LOGOUT_ID_MAX + 1);

    if (len == 0 || len > PEGADM_LOGOUT_ID_MAX) {
        return APR_EINVAL;
    }
    memset(out, 0, PEGADM_LOGOUT_PLAIN_LEN);
    pegadm_put_be(out, (apr_uint64_t)issued, 8);
    pegadm_put_be(out + 8, len, 2);
    memcpy(out + 10, customer_id, len);
    return APR_SUCCESS;
}

apr_status_t pegadm_logout_plain_decode(apr_pool_t *p, const unsigned char *plain,
                                        apr_size_t len, const char **customer_id,
                                        apr_time_t *issued)
{
    apr_size_t id_len;

    if (len != PEGADM_LOGOUT_PLAIN_LEN) {
        return APR_EGENERAL;
    }
    id_len = (apr_size_t)pegadm_get_be(plain + 8, 2);
    if (id_len == 0 || id_len > PEGADM_LOGOUT_ID_MAX || memchr(plain + 10, '\0', id_len)) {
        return APR_EGENERAL;
    }
    for (apr_size_t i = 10 + id_len; i < len; i++) {
        if (plain[i]) {
            return APR_EGENERAL;
        }
    }
    *issued = (apr_time_t)pegadm_get_be(plain, 8);
    *customer_id = apr_pstrmemdup(p, (const char *)plain + 10, id_len);
    return APR_SUCCESS;
}
