/* httpd 2.4's mod_socache_shmcb lays out its memory as a header, then
 * subcaches chosen by the first byte of an entry's key. Each subcache is an
 * array of index slots and a cyclic data area; when either is full, the
 * oldest entry is pushed out, expired or not, and entries replaced or
 * removed are reclaimed only once they are the oldest. So a customer keeps
 * a session for its whole TTL only while every subcache has room for all
 * that its customers wrote within one TTL. */
#include "pegadm_shmcb.h"

#include <limits.h>

#include <apr_general.h>
#include <apr_time.h>

#include "pegadm_dm.h"
#include "pegadm_seal.h"
#include "pegadm_session.h"

/* Mirrors of shmcb's structures, for their sizes on this platform. */
typedef struct {
    unsigned long stats[8];
    unsigned int subcache_num, index_num, subcache_size, subcache_data_offset,
        subcache_data_size;
} shmcb_header_t;

typedef struct {
    unsigned int idx_pos, idx_used, data_pos, data_used;
} shmcb_subcache_t;

typedef struct {
    apr_time_t expires;
    unsigned int data_pos, data_used, id_len;
    unsigned char removed;
} shmcb_index_t;

#define ALIGNED_SIZE(t) APR_ALIGN_DEFAULT(sizeof(t))
#define SHMCB_MAX_SIZE  ((apr_size_t)UINT_MAX) /* shmcb wants less */

/* What a customer writes within one TTL (key and sealed value each): a
 * pending marker, a rate counter, a forgotten marker, two sessions. */
#define MARKER_BYTES  (PEGADM_CACHE_ID_LEN + PEGADM_SESSION_ENTRY_HEADER + PEGADM_SEAL_OVERHEAD)
#define SESSION_BYTES (MARKER_BYTES + PEGADM_SESSION_ENTRY_EXTRA + PEGADM_SESSION_ID_MAX)
#define ENTRIES       5
#define DATA_BYTES    (3 * MARKER_BYTES + 2 * SESSION_BYTES)

/* Keys are HMACs, so a subcache's share of m customers on average is
 * binomial with a standard deviation under sqrt(m). Room for SPREAD
 * deviations more leaves odds of about one in ten thousand that any of 256
 * subcaches overflows. */
#define SPREAD 5

apr_status_t pegadm_shmcb_layout(apr_size_t size, pegadm_shmcb_layout_t *layout)
{
    apr_size_t segment, indexes, subcache_size, data_offset;
    unsigned int subcaches = 256;

    if (size < 8192 || size >= SHMCB_MAX_SIZE) {
        return APR_ENOSPC;
    }
    segment = size - ALIGNED_SIZE(shmcb_header_t);
    indexes = segment / (PEGADM_SHMCB_HINT_OBJ_SIZE + PEGADM_SHMCB_HINT_ID_LEN);
    while (subcaches > 1 && indexes / subcaches < 2 * (apr_size_t)subcaches) {
        subcaches /= 2;
    }
    indexes /= subcaches;
    subcache_size = segment / subcaches;
    if (subcache_size != APR_ALIGN_DEFAULT(subcache_size)) {
        subcache_size = APR_ALIGN_DEFAULT(subcache_size) - APR_ALIGN_DEFAULT(1);
    }
    data_offset = ALIGNED_SIZE(shmcb_subcache_t) + indexes * ALIGNED_SIZE(shmcb_index_t);
    if (indexes < 5 || data_offset >= subcache_size) {
        return APR_ENOSPC;
    }
    layout->subcaches = subcaches;
    layout->indexes = (unsigned int)indexes;
    layout->data_size = (unsigned int)(subcache_size - data_offset);
    return APR_SUCCESS;
}

apr_size_t pegadm_shmcb_customer_bytes(void)
{
    return DATA_BYTES + ENTRIES * ALIGNED_SIZE(shmcb_index_t);
}

/* The smallest r with r * r >= n. */
static apr_size_t sqrt_up(apr_size_t n)
{
    apr_size_t lo = 0, hi = n < 2 ? n : n / 2 + 1;
    while (lo < hi) {
        apr_size_t mid = lo + (hi - lo) / 2;
        if (mid * mid >= n) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return lo;
}

apr_size_t pegadm_shmcb_customers(apr_size_t size)
{
    pegadm_shmcb_layout_t l;
    apr_size_t room, lo = 0, hi;

    if (pegadm_shmcb_layout(size, &l) != APR_SUCCESS) {
        return 0;
    }
    room = l.indexes / ENTRIES;
    if (l.data_size / DATA_BYTES < room) {
        room = l.data_size / DATA_BYTES;
    }
    /* the largest mean m with m + SPREAD * sqrt(m) <= room */
    hi = room;
    while (lo < hi) {
        apr_size_t mid = lo + (hi - lo + 1) / 2;
        if (mid + SPREAD * sqrt_up(mid) <= room) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    return lo * l.subcaches;
}

apr_size_t pegadm_shmcb_size_for(apr_size_t customers)
{
    apr_size_t size = customers * pegadm_shmcb_customer_bytes();

    for (int i = 0; i < 2048 && size < SHMCB_MAX_SIZE; i++) {
        size = (size + 1023) / 1024 * 1024;
        if (size >= 8192 && pegadm_shmcb_customers(size) >= customers) {
            return size;
        }
        size += size / 256 + 1024;
    }
    return 0;
}
