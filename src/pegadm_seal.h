/* Keys derived from the JWT secret, and authenticated encryption of cache
 * entries, so that a shared cache learns neither customer IDs nor session
 * IDs and a tampered entry is detected. */
#ifndef PEGADM_SEAL_H
#define PEGADM_SEAL_H

#include <apr_pools.h>
#include <apr_time.h>
#include <openssl/types.h>

#define PEGADM_CACHE_ID_LEN 32 /* bytes of an HMAC-SHA256 cache key */

/* Every request of the cached path computes a cache key and opens an
 * entry: the OpenSSL algorithms are fetched and the HMAC keyed once, when
 * the keys are derived, not per call (a fetch takes a lock that all the
 * threads of a busy server contend for). Read-only once derived. */
typedef struct {
    unsigned char id_key[32];  /* HMAC key for cache keys */
    unsigned char enc_key[32]; /* AES-256-GCM key for cache values */
    unsigned char tag_key[16]; /* SipHash key for customer tags */
    EVP_MAC_CTX *id_mac;       /* HMAC-SHA256 keyed with id_key; duplicated per use */
    EVP_CIPHER *aead;          /* AES-256-GCM */
} pegadm_keys_t;

/* Derives both keys from the secret (HKDF-SHA256 with fixed labels) and
 * prepares the OpenSSL objects; release them with pegadm_keys_release. */
apr_status_t pegadm_keys_derive(pegadm_keys_t *keys, const unsigned char *secret,
                                apr_size_t secret_len);

/* Frees what pegadm_keys_derive prepared and wipes the keys. */
void pegadm_keys_release(pegadm_keys_t *keys);

/* out = HMAC-SHA256(id_key, purpose NUL widget_id NUL customer_id);
 * APR_EGENERAL if OpenSSL fails (out is then unusable). */
apr_status_t pegadm_cache_id(const pegadm_keys_t *keys, const char *purpose,
                             const char *widget_id, const char *customer_id,
                             unsigned char out[PEGADM_CACHE_ID_LEN]);

/* A short keyed hash of (widget, customer): the same for every cache key
 * of one customer, so that a clustered cache server (a Redis Cluster hash
 * tag) keeps them together, and as opaque to the server as the keys. */
#define PEGADM_CUSTOMER_TAG_LEN 8
void pegadm_customer_tag(const pegadm_keys_t *keys, const char *widget_id,
                         const char *customer_id, unsigned char out[PEGADM_CUSTOMER_TAG_LEN]);

/* len bytes from the calling thread's random generator (no lock taken);
 * APR_EGENERAL if OpenSSL fails. */
apr_status_t pegadm_random(unsigned char *out, apr_size_t len);

/* Encrypts plain (random nonce, AES-256-GCM, aad authenticated but not
 * stored). *sealed is in p and PEGADM_SEAL_OVERHEAD bytes longer. */
#define PEGADM_SEAL_OVERHEAD (12 + 16)
apr_status_t pegadm_seal(apr_pool_t *p, const pegadm_keys_t *keys, const unsigned char *aad,
                         apr_size_t aad_len, const unsigned char *plain, apr_size_t plain_len,
                         unsigned char **sealed, apr_size_t *sealed_len);

/* Reverses pegadm_seal; APR_EGENERAL if the entry was altered, truncated,
 * or sealed under another key or aad. */
apr_status_t pegadm_unseal(apr_pool_t *p, const pegadm_keys_t *keys, const unsigned char *aad,
                           apr_size_t aad_len, const unsigned char *sealed,
                           apr_size_t sealed_len, unsigned char **plain, apr_size_t *plain_len);

/* The plain text of a logout cookie, before sealing: when it was issued
 * and the customer ID, padded to one length so that the cookie does not
 * tell how long the ID is:
 *   issued (8 bytes, big-endian microseconds) | ID length (2, big-endian) |
 *   ID | zero bytes up to PEGADM_LOGOUT_PLAIN_LEN */
#define PEGADM_LOGOUT_ID_MAX    256 /* bytes: the longest customer ID */
#define PEGADM_LOGOUT_PLAIN_LEN (8 + 2 + PEGADM_LOGOUT_ID_MAX)

/* Fills out (PEGADM_LOGOUT_PLAIN_LEN bytes); APR_EINVAL for an ID that is
 * empty or longer than PEGADM_LOGOUT_ID_MAX. */
apr_status_t pegadm_logout_plain_encode(unsigned char *out, const char *customer_id,
                                        apr_time_t issued);

/* Reads plain (len bytes): *customer_id (in p) and *issued; APR_EGENERAL if
 * it is not what pegadm_logout_plain_encode makes (a length, padding or ID
 * that does not fit, a NUL in the ID). */
apr_status_t pegadm_logout_plain_decode(apr_pool_t *p, const unsigned char *plain,
                                        apr_size_t len, const char **customer_id,
                                        apr_time_t *issued);

#endif
