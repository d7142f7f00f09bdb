/* A per-process read cache of customers' session IDs in front of the
 * session store, so that a cached lookup takes no lock shared with other
 * processes and no cryptography. It is kept exact on the node by
 * generation counters in memory that every process of the node shares:
 * each change to the store bumps the counter of the customer's bucket, and
 * a cached copy is used only while the counter still reads as it did before
 * the copy was read from the store. Changes made by other nodes to a shared
 * store bump nothing here: there max_age bounds how long a copy is used.
 *
 * Customers are told apart by a 128-bit SipHash-2-4 of (widget, customer)
 * under a random key of the node's, never stored outside this process;
 * logout cookies by one under a second key. */
#ifndef PEGADM_LOCALCACHE_H
#define PEGADM_LOCALCACHE_H

#include <apr_pools.h>
#include <apr_time.h>

/* Memory shared by the node's processes: the generation counters (a
 * collision only costs a read) and the hash key. */
#define PEGADM_LOCALCACHE_BUCKETS 65536
#define PEGADM_LOCALCACHE_KEY_LEN 32
#define PEGADM_LOCALCACHE_SHARED_SIZE                                                          \
    (PEGADM_LOCALCACHE_BUCKETS * sizeof(apr_uint32_t) + PEGADM_LOCALCACHE_KEY_LEN)

/* Bytes of the keyed digest of the private data kept with a session. */
#define PEGADM_DATA_DIGEST_LEN 16

typedef struct pegadm_localcache pegadm_localcache_t;

/* Bytes one cached customer takes in each process (two slots of a table
 * with a few ways per set, so that sets seldom overflow). */
apr_size_t pegadm_localcache_bytes_per_customer(void);

/* Makes shared (PEGADM_LOCALCACHE_SHARED_SIZE bytes) ready, once, before
 * any process uses it: zero counters, a random key. */
apr_status_t pegadm_localcache_init_shared(void *shared);

/* A cache for customers customers (rounded up to a power of two) in p,
 * over shared. max_age: how long a copy is used after it was read (0: until
 * it changes or expires). */
apr_status_t pegadm_localcache_create(apr_pool_t *p, apr_uint32_t customers, void *shared,
                                      apr_interval_time_t max_age, pegadm_localcache_t **lc);

/* The customer's session ID, if a valid copy is cached at now, in p; NULL
 * if none. With digest (PEGADM_DATA_DIGEST_LEN bytes), only a copy whose
 * entry recorded that digest of the private data last pushed answers.
 * *gen: the generation to pass to pegadm_localcache_put with what is read
 * from the store next. */
const char *pegadm_localcache_get(pegadm_localcache_t *lc, const char *widget_id,
                                  const char *customer_id, const unsigned char *digest,
                                  apr_time_t now, apr_pool_t *p, apr_uint32_t *gen);

/* Caches sid (already validated) for the customer, read at now under
 * generation gen, until expires at the latest, with the digest of the
 * private data its entry records (NULL: none). */
void pegadm_localcache_put(pegadm_localcache_t *lc, const char *widget_id,
                           const char *customer_id, apr_uint32_t gen, const char *sid,
                           const unsigned char *digest, apr_time_t now, apr_time_t expires);

/* The customer's generation now. Read while holding the lock under which
 * every change to the store is made (and its generation bumped), it is the
 * generation of what the store holds for the customer at that moment: a
 * session just stored by this process can be put with it. */
apr_uint32_t pegadm_localcache_generation(pegadm_localcache_t *lc, const char *widget_id,
                                          const char *customer_id);

/* Invalidates every process's copy for the customer: called after each
 * change to the customer's entry in the store. */
void pegadm_localcache_changed(pegadm_localcache_t *lc, const char *widget_id,
                               const char *customer_id);

/* Logout cookies (mod_pegadm_logout.c): whether value (len bytes) is the
 * cookie that this process last noted as naming the customer, by a keyed
 * 128-bit tag of it compared in constant time; and noting that it is (a
 * cookie this process opened or sealed for the customer). Only a customer
 * with a copy in this process keeps a note; a copy given to another
 * customer drops it. */
int pegadm_localcache_cookie_known(pegadm_localcache_t *lc, const char *widget_id,
                                   const char *customer_id, const char *value, apr_size_t len);
void pegadm_localcache_cookie_note(pegadm_localcache_t *lc, const char *widget_id,
                                   const char *customer_id, const char *value, apr_size_t len);

/* SipHash-2-4 of in under the 16-byte key k (for the tests), and its
 * 128-bit variant (out: 16 bytes, little-endian halves). */
apr_uint64_t pegadm_siphash24(const unsigned char *in, apr_size_t len,
                              const unsigned char k[16]);
void pegadm_siphash24_128(const unsigned char *in, apr_size_t len, const unsigned char k[16],
                          unsigned char out[16]);

#endif
