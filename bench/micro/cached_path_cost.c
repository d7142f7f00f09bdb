/* What the cached path of mod_pegadm spends on its own work, call by call:
 * the HMAC that names the cache entry, the AES-GCM open of the entry, the
 * JSON answer, and a process-shared mutex like the one around the cache.
 * Each is timed as the module calls it, and the two OpenSSL operations also
 * with their algorithm fetched once instead of per call, which shows what
 * OpenSSL 3's per-call algorithm fetch costs. Prints one JSON object.
 *
 * Built and run by bench/cached_path_cost.py against build/libpegadm_core.a. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>

#include "pegadm_seal.h"

#define ROUNDS 200000

static const char *const widget = "0b6c3d52-5b7a-4c53-9a55-2f6f3c2d8e11";
static const char *const customer = "customer000042";
static const char *const session = "8d922a67-6b7e-4516-aaa2-ef70edc9a134";

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

typedef void (*op_fn)(void *ctx);

static double ns_per_call(op_fn op, void *ctx)
{
    double start;
    for (int i = 0; i < ROUNDS / 10; i++) {
        op(ctx);
    }
    start = now_ns();
    for (int i = 0; i < ROUNDS; i++) {
        op(ctx);
    }
    return (now_ns() - start) / ROUNDS;
}

typedef struct {
    pegadm_keys_t keys;
    apr_pool_t *pool;
    unsigned char id[PEGADM_CACHE_ID_LEN];
    unsigned char *sealed;
    apr_size_t sealed_len;
    EVP_MAC_CTX *mac_template;
    EVP_CIPHER *gcm;
    pthread_mutex_t mutex;
} bench_t;

static void module_cache_id(void *ctx)
{
    bench_t *b = ctx;
    pegadm_cache_id(&b->keys, "session", widget, customer, b->id);
}

static void module_unseal(void *ctx)
{
    bench_t *b = ctx;
    unsigned char *plain;
    apr_size_t len;
    pegadm_unseal(b->pool, &b->keys, b->id, sizeof(b->id), b->sealed, b->sealed_len, &plain,
                  &len);
    apr_pool_clear(b->pool);
}

/* The same HMAC from a context set up once (EVP_MAC_CTX_dup per call). */
static void prefetched_cache_id(void *ctx)
{
    bench_t *b = ctx;
    EVP_MAC_CTX *mac = EVP_MAC_CTX_dup(b->mac_template);
    size_t len = 0;
    EVP_MAC_update(mac, (const unsigned char *)"session", 8);
    EVP_MAC_update(mac, (const unsigned char *)widget, strlen(widget) + 1);
    EVP_MAC_update(mac, (const unsigned char *)customer, strlen(customer));
    EVP_MAC_final(mac, b->id, &len, sizeof(b->id));
    EVP_MAC_CTX_free(mac);
}

/* The same AES-GCM open with the cipher fetched once. */
static void prefetched_unseal(void *ctx)
{
    bench_t *b = ctx;
    unsigned char out[128];
    int n = 0;
    apr_size_t len = b->sealed_len - PEGADM_SEAL_OVERHEAD;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    EVP_DecryptInit_ex2(c, b->gcm, b->keys.enc_key, b->sealed, NULL);
    EVP_DecryptUpdate(c, NULL, &n, b->id, sizeof(b->id));
    EVP_DecryptUpdate(c, out, &n, b->sealed + 12, (int)len);
    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, (void *)(b->sealed + 12 + len));
    EVP_DecryptFinal_ex(c, out + n, &n);
    EVP_CIPHER_CTX_free(c);
}

static void answer_json(void *ctx)
{
    json_t *doc = json_pack("{s:s, s:s}", "sessionId", session, "widgetId", widget);
    char *text = json_dumps(doc, JSON_COMPACT);
    free(text);
    json_decref(doc);
}

static void mutex_pair(void *ctx)
{
    bench_t *b = ctx;
    pthread_mutex_lock(&b->mutex);
    pthread_mutex_unlock(&b->mutex);
}

static void setup(bench_t *b)
{
    static const char secret[] = "Qx7rT2vLm9Kp4Wz8Ns3Hd6Fj1Bc5Vy0Ga2Ue7Io9";
    unsigned char entry[13 + 36];
    OSSL_PARAM params[2];
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    pthread_mutexattr_t attr;

    apr_pool_create(&b->pool, NULL);
    pegadm_keys_derive(&b->keys, (const unsigned char *)secret, sizeof(secret) - 1);
    pegadm_cache_id(&b->keys, "session", widget, customer, b->id);
    memset(entry, 'S', 13);
    memcpy(entry + 13, session, 36);
    apr_pool_t *keep;
    apr_pool_create(&keep, NULL);
    pegadm_seal(keep, &b->keys, b->id, sizeof(b->id), entry, sizeof(entry), &b->sealed,
                &b->sealed_len);
    b->mac_template = EVP_MAC_CTX_new(mac);
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();
    EVP_MAC_init(b->mac_template, b->keys.id_key, sizeof(b->keys.id_key), params);
    EVP_MAC_free(mac);
    b->gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    /* like APR's process-shared pthread mutex: robust, priority inheritance */
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutexattr_setprotocol(&attr, PTHREAD_PRIO_INHERIT);
    pthread_mutex_init(&b->mutex, &attr);
}

int main(void)
{
    bench_t b;

    apr_initialize();
    setup(&b);
    printf("{\"rounds\": %d, \"ns_per_call\": {", ROUNDS);
    printf("\"cache_id (module)\": %.0f, ", ns_per_call(module_cache_id, &b));
    printf("\"cache_id (HMAC set up once)\": %.0f, ", ns_per_call(prefetched_cache_id, &b));
    printf("\"unseal (module)\": %.0f, ", ns_per_call(module_unseal, &b));
    printf("\"unseal (cipher fetched once)\": %.0f, ", ns_per_call(prefetched_unseal, &b));
    printf("\"JSON answer (jansson)\": %.0f, ", ns_per_call(answer_json, &b));
    printf("\"mutex lock+unlock, uncontended\": %.0f", ns_per_call(mutex_pair, &b));
    printf("}}\n");
    return 0;
}
