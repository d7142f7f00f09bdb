/* What every fuzz target shares: APR set up once, a pool per input, and a
 * check that aborts, which libFuzzer reports as a crash and the corpus
 * replay as a failed test. */
#ifndef PEGADM_FUZZ_SUPPORT_H
#define PEGADM_FUZZ_SUPPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <apr_pools.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A fresh pool for one input; the caller destroys it. */
apr_pool_t *pegadm_fuzz_pool(void);

#define PEGADM_FUZZ_CHECK(cond)                                                                \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

#endif
