/* What outlives one configuration: shared memory and mutexes that children
 * of the generation before a graceful restart still use while they finish
 * their requests, kept by the parent process (httpd's retained data, in its
 * process pool) and found again by the next generation's post_config.
 *
 * Each kept thing has a pool of its own under the process pool: replacing
 * it destroys that pool, and the parent's exit destroys the last one. Only
 * APR's own cleanups may be registered in it: the module and the providers
 * it uses are unloaded with the configuration, before the parent exits. */
#include "mod_pegadm.h"

#include <http_core.h>

typedef struct {
    apr_pool_t *pool;
    void *data;
} kept_t;

static kept_t *entry(const char *key)
{
    kept_t *k = ap_retained_data_get(key);
    return k ? k : ap_retained_data_create(key, sizeof(*k));
}

void *pegadm_kept(const char *key)
{
    kept_t *k = ap_retained_data_get(key);
    return k ? k->data : NULL;
}

void pegadm_keep_drop(const char *key)
{
    kept_t *k = ap_retained_data_get(key);

    if (k && k->pool) {
        apr_pool_destroy(k->pool);
        k->pool = NULL;
        k->data = NULL;
    }
}

apr_pool_t *pegadm_keep_anew(server_rec *s, const char *key)
{
    kept_t *k = entry(key);

    pegadm_keep_drop(key);
    apr_pool_create(&k->pool, s->process->pool);
    apr_pool_tag(k->pool, "pegadm-kept");
    return k->pool;
}

void pegadm_keep(const char *key, void *data)
{
    entry(key)->data = data;
}
