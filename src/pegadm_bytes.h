/* Fixed-width big-endian integers, the encoding of the records the module
 * keeps in its cache (the same bytes on every node, whatever its CPU). */
#ifndef PEGADM_BYTES_H
#define PEGADM_BYTES_H

#include <apr.h>

/* Writes the low n bytes of v (n <= 8) at at, most significant first. */
static inline void pegadm_put_be(unsigned char *at, apr_uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8) {
        at[i] = (unsigned char)(v & 0xff);
    }
}

/* Reads n bytes (n <= 8) written by pegadm_put_be. */
static inline apr_uint64_t pegadm_get_be(const unsigned char *at, int n)
{
    apr_uint64_t v = 0;
    for (int i = 0; i < n; i++) {
        v = (v << 8) | at[i];
    }
    return v;
}

#endif
