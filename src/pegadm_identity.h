/* Validation of customer IDs before they reach the cache or the service. */
#ifndef PEGADM_IDENTITY_H
#define PEGADM_IDENTITY_H

#include <apr.h>

#define PEGADM_CUSTOMER_ID_MAX 256 /* bytes */

typedef enum {
    PEGADM_ID_OK = 0,
    PEGADM_ID_EMPTY,        /* "not authenticated" */
    PEGADM_ID_TOO_LONG,     /* over PEGADM_CUSTOMER_ID_MAX bytes */
    PEGADM_ID_CONTROL_CHAR, /* C0, DEL or C1 control character (NUL included) */
    PEGADM_ID_BAD_UTF8      /* not well-formed UTF-8 (overlong, surrogate, truncated) */
} pegadm_id_check_t;

/* Checks len bytes of id (id may be NULL when len is 0). */
pegadm_id_check_t pegadm_customer_id_check(const char *id, apr_size_t len);

/* A short English reason for logs, e.g. "longer than 256 bytes". */
const char *pegadm_id_check_reason(pegadm_id_check_t check);

#endif
