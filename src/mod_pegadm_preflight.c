/* Preflight: at start-up the parent process resolves each configured
 * service, connects, verifies its certificate chain (PegaDMCAFile or the
 * system store) and records when the certificate expires; an unreachable
 * service or a certificate expiring within PegaDMCertificateWarnDays is
 * warned about, and httpd starts regardless. mod_watchdog (built into
 * Debian's httpd) repeats the check every PegaDMPreflightInterval in one
 * child; every child warms a connection to each reachable service as it
 * starts, so the first customer pays no handshake. */
#include "mod_pegadm_operator.h"

#include <apr_optional.h>
#include <apr_strings.h>
#include <http_core.h>
#include <mod_watchdog.h>

#include "pegadm_confcheck.h"

APLOG_USE_MODULE(pegadm);

#define WATCHDOG_NAME "_pegadm_preflight_"

/* One service a scope of the configuration calls, for one widget. */
typedef struct {
    const char *widget_id;
    int widget; /* index in the counters */
    const char *service_url;
    const char *warm_url; /* the widget script: a cheap HEAD */
    pegadm_http_opts_t http;
    int reachable;     /* as last checked; children inherit the start-up result */
    int expiry_warned; /* per process */
} target_t;

/* ---- the services of the configuration ---- */

static void add_target(apr_pool_t *p, server_rec *s, pegadm_preflight_t *pf,
                       const pegadm_dir_conf_t *d)
{
    pegadm_dm_target_t dm;
    target_t *t;

    if (!d || !d->widget_id || !d->secret) {
        return;
    }
    pegadm_conf_dm_target(p, d, &dm);
    for (int i = 0; i < pf->targets->nelts; i++) {
        t = &APR_ARRAY_IDX(pf->targets, i, target_t);
        if (!strcmp(t->widget_id, d->widget_id) && !strcmp(t->service_url, dm.service_url)) {
            return;
        }
    }
    t = apr_array_push(pf->targets);
    memset(t, 0, sizeof(*t));
    t->widget_id = d->widget_id;
    t->widget = pegadm_operator_of(s)->widget_map && d->metrics_widget >= 0
                    ? pegadm_operator_of(s)->widget_map[d->metrics_widget]
                    : -1;
    t->service_url = dm.service_url;
    t->warm_url = apr_pstrcat(p, dm.service_url, "/", d->widget_id, "/widget.js", NULL);
    t->http = dm.http;
    t->reachable = 1;
}

static void add_sections(apr_pool_t *p, server_rec *s, pegadm_preflight_t *pf,
                         const pegadm_dir_conf_t *base, apr_array_header_t *sections)
{
    for (int i = 0; sections && i < sections->nelts; i++) {
        ap_conf_vector_t *v = APR_ARRAY_IDX(sections, i, ap_conf_vector_t *);
        const pegadm_dir_conf_t *d = ap_get_module_config(v, &pegadm_module);
        if (d) {
            add_target(p, s, pf, pegadm_merge_dir_conf(p, (void *)base, (void *)d));
        }
    }
}

/* Every server's own scope, and its <Directory> and <Location> sections
 * merged over it. */
static void collect_targets(apr_pool_t *p, server_rec *main, pegadm_preflight_t *pf)
{
    pf->targets = apr_array_make(p, 4, sizeof(target_t));
    for (server_rec *s = main; s; s = s->next) {
        const pegadm_dir_conf_t *base =
            ap_get_module_config(s->lookup_defaults, &pegadm_module);
        core_server_config *core = ap_get_core_module_config(s->module_config);
        add_target(p, main, pf, base);
        add_sections(p, main, pf, base, core->sec_dir);
        add_sections(p, main, pf, base, core->sec_url);
    }
}

/* ---- the check ---- */

static int warn_days(const pegadm_preflight_t *pf)
{
    return pegadm_conf_preflight_warn_days(pf);
}

/* Checks t, records the expiry, logs what changed. at_start: every
 * finding is logged; later, only changes of reachability and the first
 * expiry warning of the process. */
static void check_target(apr_pool_t *p, server_rec *s, pegadm_preflight_t *pf, target_t *t,
                         int at_start)
{
    pegadm_operator_t *oper = pegadm_operator_of(s);
    apr_time_t not_after = 0, now = apr_time_now();
    const char *error = NULL;
    pegadm_http_status_t st =
        pegadm_http_probe(p, t->service_url, &t->http, &not_after, &error);
    apr_interval_time_t left = not_after - now;
    char date[APR_RFC822_DATE_LEN];

    if (st != PEGADM_HTTP_OK) {
        if (at_start || t->reachable) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                         "PEGADM630: preflight: %s (widget %s) cannot be reached: %s; chat "
                         "sessions fail until it answers",
                         t->service_url, t->widget_id, error ? error : "unknown error");
        }
        t->reachable = 0;
        pegadm_metrics_set_reachable(oper->metrics, t->widget, 0);
        return;
    }
    if (!t->reachable && !at_start) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                     "PEGADM631: preflight: %s (widget %s) answers again", t->service_url,
                     t->widget_id);
    }
    t->reachable = 1;
    pegadm_metrics_set_reachable(oper->metrics, t->widget, 1);
    if (!not_after) {
        return; /* plain http on loopback: no certificate */
    }
    pegadm_metrics_set_cert_expiry(oper->metrics, t->widget, not_after);
    apr_rfc822_date(date, not_after);
    if (left < apr_time_from_sec((apr_int64_t)warn_days(pf) * 86400)) {
        if (at_start || !t->expiry_warned) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                         "PEGADM632: preflight: the certificate of %s (widget %s) expires "
                         "in %" APR_INT64_T_FMT " hours, on %s (PegaDMCertificateWarnDays %d)",
                         t->service_url, t->widget_id, apr_time_sec(left) / 3600, date,
                         warn_days(pf));
        }
        t->expiry_warned = 1;
    } else if (at_start) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                     "PEGADM633: preflight: %s (widget %s) is reachable; its certificate "
                     "is valid until %s",
                     t->service_url, t->widget_id, date);
    }
}

/* ---- the shared cache servers (PegaDMCache redis://, memcache://) ----
 * At start-up the parent checks them with a client of its own, closed with
 * ptemp before any child starts; later the watchdog's child checks them
 * with its copy of the children's client. */

static void check_cache(apr_pool_t *p, server_rec *s, pegadm_preflight_t *pf,
                        pegadm_shared_t *client, int at_start)
{
    pegadm_server_conf_t *sc = ap_get_module_config(s->module_config, &pegadm_module);
    pegadm_shared_finding_t found;
    apr_status_t rv = pegadm_shared_check(client, p, &found);

    if (rv != APR_SUCCESS) {
        if (at_start || pf->cache_usable) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                         "PEGADM901: preflight: the shared cache %s cannot be used: %s at "
                         "%s%s%s; pages are served without chat sessions until it answers",
                         sc->cache_args, pegadm_cache_err_name(rv), found.where,
                         *found.detail ? ": " : "", found.detail);
        }
        pf->cache_usable = 0;
        return;
    }
    if (at_start) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                     "PEGADM900: preflight: the shared cache %s answers%s", sc->cache_args,
                     found.cluster ? " (a Redis Cluster)" : "");
    } else if (!pf->cache_usable) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                     "PEGADM902: preflight: the shared cache %s answers again", sc->cache_args);
    }
    pf->cache_usable = 1;
}

static void check_cache_at_start(apr_pool_t *ptemp, server_rec *s, pegadm_preflight_t *pf)
{
    pegadm_server_conf_t *sc = ap_get_module_config(s->module_config, &pegadm_module);
    pegadm_shared_conf_t conf = pegadm_shared_conf_of(sc);
    pegadm_shared_t *client = NULL;
    const char *why = NULL;

    conf.pool_max = 1;
    conf.plain_lookup = 1; /* the parent forks its children afterwards */
    if (pegadm_shared_open(ptemp, &conf, &client, &why) != APR_SUCCESS) {
        return; /* the cache's own post_config has said why */
    }
    pegadm_shared_count(client, pegadm_operator_of(s)->metrics, NULL); /* pegadm_cache_up */
    check_cache(ptemp, s, pf, client, 1);
}

static apr_status_t watchdog_check(int state, void *data, apr_pool_t *pool)
{
    pegadm_preflight_t *pf = data;
    pegadm_server_conf_t *sc;

    if (state != AP_WATCHDOG_STATE_RUNNING) {
        return APR_SUCCESS;
    }
    for (int i = 0; i < pf->targets->nelts; i++) {
        check_target(pool, pf->s, pf, &APR_ARRAY_IDX(pf->targets, i, target_t), 0);
    }
    sc = ap_get_module_config(pf->s->module_config, &pegadm_module);
    if (sc->shared.client) {
        check_cache(pool, pf->s, pf, sc->shared.client, 0);
    }
    return APR_SUCCESS;
}

static void schedule(apr_pool_t *pconf, server_rec *s, pegadm_preflight_t *pf)
{
    APR_OPTIONAL_FN_TYPE(ap_watchdog_get_instance) *get_instance =
        APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_get_instance);
    APR_OPTIONAL_FN_TYPE(ap_watchdog_register_callback) *register_callback =
        APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_register_callback);
    apr_interval_time_t every = pegadm_conf_preflight_interval(pf);
    ap_watchdog_t *wd;
    apr_status_t rv;

    if (!every) {
        return;
    }
    if (!get_instance || !register_callback) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                     "PEGADM634: preflight: mod_watchdog is not loaded; the services are "
                     "checked at start-up only");
        return;
    }
    rv = get_instance(&wd, WATCHDOG_NAME, 0, 1, pconf);
    if (rv == APR_SUCCESS) {
        rv = register_callback(wd, every, pf, watchdog_check);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s,
                     "PEGADM635: preflight: cannot schedule the periodic check; the services "
                     "are checked at start-up only");
    }
}

apr_status_t pegadm_preflight_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s)
{
    pegadm_preflight_t *pf = pegadm_operator_of(s)->preflight;
    pegadm_server_conf_t *sc = ap_get_module_config(s->module_config, &pegadm_module);

    if (pf->enabled == 0) {
        return APR_SUCCESS;
    }
    pf->s = s;
    collect_targets(pconf, s, pf);
    for (int i = 0; i < pf->targets->nelts; i++) {
        check_target(ptemp, s, pf, &APR_ARRAY_IDX(pf->targets, i, target_t), 1);
    }
    if (sc->shared.url) {
        check_cache_at_start(ptemp, s, pf);
    }
    if (pf->targets->nelts || sc->shared.url) {
        schedule(pconf, s, pf);
    }
    return APR_SUCCESS;
}

/* Before the child serves: one connection per reachable service, left
 * open in the child's set of handles. */
void pegadm_preflight_child_init(apr_pool_t *p, server_rec *s)
{
    pegadm_server_conf_t *sc = ap_get_module_config(s->module_config, &pegadm_module);
    pegadm_preflight_t *pf = sc->operator_rec ? sc->operator_rec->preflight : NULL;
    apr_pool_t *tmp;

    if (!pf || !pf->targets || !sc->http_handles || apr_pool_create(&tmp, p) != APR_SUCCESS) {
        return;
    }
    for (int i = 0; i < pf->targets->nelts; i++) {
        target_t *t = &APR_ARRAY_IDX(pf->targets, i, target_t);
        pegadm_http_opts_t opts = t->http;
        const char *error;
        long status;

        if (!t->reachable) {
            continue;
        }
        opts.handles = sc->http_handles;
        if (pegadm_http_warm(tmp, t->warm_url, &opts, &status, &error) != PEGADM_HTTP_OK) {
            ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                         "PEGADM636: preflight: warming a connection to %s failed: %s",
                         t->service_url, error);
        }
    }
    apr_pool_destroy(tmp);
}
