#include "fuzz_support.h"

#include <apr_general.h>

apr_pool_t *pegadm_fuzz_pool(void)
{
    static apr_pool_t *root; /* lives as long as the fuzzing process */
    apr_pool_t *p;

    if (!root) {
        apr_initialize();
        apr_pool_create(&root, NULL);
    }
    apr_pool_create(&p, root);
    return p;
}
