/* Cache control: how caches may keep the module's answers. The decision
 * is taken in an output filter that runs after the other modules' (mod_session's cookie,
 * mod_headers' Header, mod_expires) and before mod_cache stores anything,
 * so it sees the final headers:
 * - a page for which eager mode exported PEGADM_SESSION_ID is
 *   "private, no-store", added to whatever Cache-Control is there;
 * - the bootstrap script is "public, max-age=300" only when nothing else
 *   set a Cache-Control and the answer sets no cookie; with a cookie it is
 *   private, and another module's Cache-Control is never replaced. */
#include "mod_pegadm.h"

#include <string.h>

#include <apr_strings.h>
#include <http_request.h>
#include <util_filter.h>

#include "pegadm_cachectl.h"

APLOG_USE_MODULE(pegadm);

#define BOOTSTRAP_CACHE "public, max-age=300"
#define EAGER_CACHE     "private, no-store" /* for_eager, joined */

static const char *const for_eager[] = {"private", "no-store", NULL};
static const char *const for_cookie[] = {"private", NULL};

typedef struct {
    apr_pool_t *p;
    const char *joined;
} join_t;

static int join_value(void *baton, const char *key, const char *value)
{
    join_t *j = baton;
    j->joined = j->joined ? apr_pstrcat(j->p, j->joined, ", ", value, NULL) : value;
    return 1;
}

/* Every Cache-Control of the answer so far, in both header tables. */
static const char *cache_control(request_rec *r)
{
    join_t j = {r->pool, NULL};
    apr_table_do(join_value, &j, r->err_headers_out, "Cache-Control", NULL);
    apr_table_do(join_value, &j, r->headers_out, "Cache-Control", NULL);
    return j.joined;
}

static int sets_cookie(request_rec *r)
{
    return apr_table_get(r->headers_out, "Set-Cookie") ||
           apr_table_get(r->err_headers_out, "Set-Cookie") ||
           apr_table_get(r->headers_out, "Set-Cookie2") ||
           apr_table_get(r->err_headers_out, "Set-Cookie2");
}

/* err_headers_out: mod_cache reads that table first, and it survives an
 * error answer. */
static void replace_cache_control(request_rec *r, const char *value)
{
    apr_table_unset(r->headers_out, "Cache-Control");
    apr_table_setn(r->err_headers_out, "Cache-Control", value);
}

static void decide(request_rec *r, int for_bootstrap)
{
    const char *value = cache_control(r);

    if (!for_bootstrap) {
        /* most pages have no Cache-Control of their own */
        replace_cache_control(r, value ? pegadm_cache_control_private(r->pool, value, for_eager)
                                       : EAGER_CACHE);
    } else if (sets_cookie(r)) {
        replace_cache_control(r, pegadm_cache_control_private(r->pool, value, for_cookie));
    } else if (!value) {
        replace_cache_control(r, BOOTSTRAP_CACHE);
    }
}

apr_status_t pegadm_cache_control_filter(ap_filter_t *f, apr_bucket_brigade *bb)
{
    decide(f->r, f->ctx != NULL);
    ap_remove_output_filter(f);
    return ap_pass_brigade(f->next, bb);
}

void pegadm_cache_control_bootstrap(request_rec *r)
{
    static int bootstrap = 1;
    ap_add_output_filter(PEGADM_CACHE_CONTROL_FILTER, &bootstrap, r, r->connection);
}

/* Last of the insert_filter hooks, so that the filter comes after those
 * that mod_session, mod_headers and others add there. */
void pegadm_cache_control_insert(request_rec *r)
{
    if (!r->main && apr_table_get(r->subprocess_env, "PEGADM_SESSION_ID")) {
        ap_add_output_filter(PEGADM_CACHE_CONTROL_FILTER, NULL, r, r->connection);
    }
}
