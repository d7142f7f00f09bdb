/* Cache control: how caches may keep the module's answers. The decision
 * is taken in an output filter that runs after the other modules' (mod_session's cookie,
 * mod_headers' Header, mod_expires) and before mod_cache stores anything,
 * so it sees the final headers:
 * - a page for which eager mode exported PEGADM_SESSION_ID is
 *   "private, no-store", added to whatever Cache-Control is there;
 * - the bootstrap script is "public, max-age=300" only when nothing else
 *   set a Cache-Control and the answer sets no cookie; with a cookie it is
 *   private, and another module's Cache-Control is never replaced;
 * - eager pages and the session endpoint's answers lose every field a CDN
 *   caches by instead of Cache-Control (CDN-Cache-Control,
 *   Surrogate-Control...: pegadm_cache_control_is_targeted) and say
 *   Pragma: no-cache for HTTP/1.0 caches.
 * A session never leaves the privacy of the top-level answer: a subrequest
 * whose top-level answer was found public (an SSI page including an eager
 * page) exports nothing, and the session endpoint refuses subrequests
 * (mod_pegadm_handlers.c). */
#include "mod_pegadm.h"

#include <string.h>

#include <apr_strings.h>
#include <http_request.h>
#include <util_filter.h>

#include "pegadm_cachectl.h"

APLOG_USE_MODULE(pegadm);

#define BOOTSTRAP_CACHE "public, max-age=300"
#define EAGER_CACHE     "private, no-store" /* for_eager, joined */
/* r->notes of a top-level request whose answer may be cached publicly */
#define PUBLIC_NOTE "pegadm-public"

enum { FOR_EAGER, FOR_BOOTSTRAP, FOR_SESSION };

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

typedef struct {
    request_rec *r;
    apr_array_header_t *targeted;
} targeted_t;

static int note_targeted(void *baton, const char *key, const char *value)
{
    targeted_t *t = baton;
    if (pegadm_cache_control_is_targeted(key)) {
        APR_ARRAY_PUSH(t->targeted, const char *) = key;
    }
    return 1;
}

/* Drops the fields a CDN would cache by; says no-cache to HTTP/1.0 caches. */
static void drop_targeted(request_rec *r)
{
    targeted_t t = {r, apr_array_make(r->pool, 2, sizeof(const char *))};

    apr_table_do(note_targeted, &t, r->headers_out, NULL);
    apr_table_do(note_targeted, &t, r->err_headers_out, NULL);
    for (int i = 0; i < t.targeted->nelts; i++) {
        apr_table_unset(r->headers_out, APR_ARRAY_IDX(t.targeted, i, const char *));
        apr_table_unset(r->err_headers_out, APR_ARRAY_IDX(t.targeted, i, const char *));
    }
    apr_table_unset(r->headers_out, "Pragma");
    apr_table_setn(r->err_headers_out, "Pragma", "no-cache");
}

static void decide(request_rec *r, int kind)
{
    const char *value = cache_control(r);

    if (kind != FOR_BOOTSTRAP) {
        drop_targeted(r);
    }
    if (kind == FOR_SESSION) {
        return; /* its handler set no-store in err_headers_out */
    }
    if (kind == FOR_EAGER) {
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
    decide(f->r, f->ctx ? *(const int *)f->ctx : FOR_EAGER);
    ap_remove_output_filter(f);
    return ap_pass_brigade(f->next, bb);
}

void pegadm_cache_control_bootstrap(request_rec *r)
{
    static const int bootstrap = FOR_BOOTSTRAP;
    ap_add_output_filter(PEGADM_CACHE_CONTROL_FILTER, (void *)&bootstrap, r, r->connection);
}

void pegadm_cache_control_session(request_rec *r)
{
    static const int session = FOR_SESSION;
    ap_add_output_filter(PEGADM_CACHE_CONTROL_FILTER, (void *)&session, r, r->connection);
}

int pegadm_cache_control_top_is_public(const request_rec *r)
{
    while (r->main) {
        r = r->main;
    }
    return apr_table_get(r->notes, PUBLIC_NOTE) != NULL;
}

/* Last of the insert_filter hooks, so that the filter comes after those
 * that mod_session, mod_headers and others add there. */
void pegadm_cache_control_insert(request_rec *r)
{
    if (r->main) {
        return;
    }
    if (apr_table_get(r->subprocess_env, "PEGADM_SESSION_ID")) {
        ap_add_output_filter(PEGADM_CACHE_CONTROL_FILTER, NULL, r, r->connection);
    } else {
        /* from here on the answer is made: a subrequest (an SSI include)
         * can no longer make it private */
        apr_table_setn(r->notes, PUBLIC_NOTE, "1");
    }
}
