/* The layout arithmetic of httpd 2.4's mod_socache_shmcb, so that the
 * module can size its default session cache for a number of customers and
 * tell whether a configured size holds them. No httpd dependency. */
#ifndef PEGADM_SHMCB_H
#define PEGADM_SHMCB_H

#include <apr.h>
#include <apr_errno.h>

/* shmcb's size when none is given */
#define PEGADM_SHMCB_DEFAULT_SIZE (512 * (apr_size_t)1024)

/* The hints (struct ap_socache_hints) the module gives shmcb. They decide
 * how shmcb splits its memory between index slots and data; these balance
 * the two for the entries a customer leaves (pegadm_shmcb_customer_bytes). */
#define PEGADM_SHMCB_HINT_ID_LEN   32
#define PEGADM_SHMCB_HINT_OBJ_SIZE 129

typedef struct {
    unsigned int subcaches;
    unsigned int indexes;   /* index slots per subcache */
    unsigned int data_size; /* bytes of data per subcache */
} pegadm_shmcb_layout_t;

/* What shmcb makes of size bytes with the module's hints; APR_ENOSPC where
 * shmcb refuses the size (under 8 KiB, 4 GiB or more, too few slots). */
apr_status_t pegadm_shmcb_layout(apr_size_t size, pegadm_shmcb_layout_t *layout);

/* Bytes one customer takes per TTL, index slots included: a pending marker
 * and a session, then a rate counter and a renewed session, each session
 * ID as long as the service may make it. */
apr_size_t pegadm_shmcb_customer_bytes(void);

/* How many customers with a live session a shmcb cache of size bytes keeps
 * without evicting one before its TTL runs out, allowing for the uneven
 * spread of customers over shmcb's subcaches. 0 if shmcb refuses the size. */
apr_size_t pegadm_shmcb_customers(apr_size_t size);

/* The smallest size, a whole number of KiB, for which pegadm_shmcb_customers
 * reaches customers; 0 if that is beyond what shmcb can allocate. */
apr_size_t pegadm_shmcb_size_for(apr_size_t customers);

#endif
