/* A per-process read cache of customers' session IDs in front of the
 * session store, so that a cached lookup takes no lock shared with other
 * processes. It is kept exact on the node by generation counters in memory
 * that every process of the node shares: each change to the store bumps the
 * counter of the key's bucket, and a cached copy is used only while the
 * counter still reads as it did before the copy was read from the store.
 * Changes made by other nodes to a shared store bump nothing here: there
 * max_age bounds how long a copy is used. */
#ifndef PEGADM_LOCALCACHE_H
#define PEGADM_LOCALCACHE_H

#include <apr_pools.h>
#include <apr_time.h>

#include "pegadm_dm.h"
#include "pegadm_seal.h"

/* Counters shared by the node's processes; collisions only cost a read. */
#define PEGADM_LOCALCACHE_BUCKETS          65536
#define PEGADM_LOCALCACHE_GENERATIONS_SIZE (PEGADM_LOCALCACHE_BUCKETS * sizeof(apr_uint32_t))

typedef struct pegadm_localcache pegadm_localcache_t;

/* Bytes one cached customer takes in each process. */
apr_size_t pegadm_localcache_bytes_per_customer(void);

/* A cache for customers customers (rounded up to a power of two) in p.
 * generations: PEGADM_LOCALCACHE_GENERATIONS_SIZE bytes shared by every
 * process of the node (zeroed once, before any is used). max_age: how long
 * a copy is used after it was read (0: until it changes or expires). */
apr_status_t pegadm_localcache_create(apr_pool_t *p, apr_uint32_t customers, void *generations,
                                      apr_interval_time_t max_age, pegadm_localcache_t **lc);

/* The generation to record with what is about to be read from the store:
 * read before the store is. */
apr_uint32_t pegadm_localcache_generation(const pegadm_localcache_t *lc,
                                          const unsigned char id[PEGADM_CACHE_ID_LEN]);

/* The session ID cached for id, if still valid at now, copied into p;
 * NULL if none. */
const char *pegadm_localcache_get(pegadm_localcache_t *lc,
                                  const unsigned char id[PEGADM_CACHE_ID_LEN], apr_time_t now,
                                  apr_pool_t *p);

/* Caches sid (already validated) for id, read at now under generation gen,
 * until expires at the latest. */
void pegadm_localcache_put(pegadm_localcache_t *lc, const unsigned char id[PEGADM_CACHE_ID_LEN],
                           apr_uint32_t gen, const char *sid, apr_time_t now,
                           apr_time_t expires);

/* Invalidates every process's copy of id: called after each change to the
 * store's entry for id. */
void pegadm_localcache_changed(pegadm_localcache_t *lc,
                               const unsigned char id[PEGADM_CACHE_ID_LEN]);

#endif
