/* PegaDMAuditLog: one JSON line per create, private-data push, forget and
 * refusal, to a file or to a program (rotatelogs) through httpd's piped
 * logs. A request thread never waits for a slow program: the pipe is made
 * non-blocking in every child, a line (far below PIPE_BUF, so written whole
 * or not at all) that does not fit is dropped and counted. */
#include "mod_pegadm_operator.h"

#include <apr_atomic.h>
#include <apr_file_io.h>
#include <apr_network_io.h>
#include <apr_strings.h>
#include <http_core.h>

#include "pegadm_audit.h"

APLOG_USE_MODULE(pegadm);

static const char *node_name(apr_pool_t *p, server_rec *s)
{
    char host[APRMAXHOSTLEN + 1];
    if (apr_gethostname(host, sizeof(host), p) == APR_SUCCESS && *host) {
        return apr_pstrdup(p, host);
    }
    return s->server_hostname;
}

apr_status_t pegadm_audit_post_config(apr_pool_t *pconf, server_rec *s)
{
    pegadm_operator_t *oper = pegadm_operator_of(s);
    apr_status_t rv;

    if (!oper->audit_target) {
        return APR_SUCCESS;
    }
    oper->node = node_name(pconf, s);
    if (oper->audit_is_pipe) {
        piped_log *pl = ap_open_piped_log_ex(
            pconf, oper->audit_target, oper->audit_shell ? APR_SHELLCMD_ENV : APR_PROGRAM_ENV);
        if (!pl) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s,
                         "PEGADM610: PegaDMAuditLog: cannot start '%s'", oper->audit_target);
            return APR_EGENERAL;
        }
        oper->audit_file = ap_piped_log_write_fd(pl);
        return APR_SUCCESS;
    }
    rv = apr_file_open(&oper->audit_file, oper->audit_target,
                       APR_FOPEN_WRITE | APR_FOPEN_APPEND | APR_FOPEN_CREATE |
                           APR_FOPEN_LARGEFILE,
                       APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_GREAD, pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "PEGADM611: PegaDMAuditLog: cannot open '%s'", oper->audit_target);
    }
    return rv;
}

void pegadm_audit_child_init(apr_pool_t *p, server_rec *s)
{
    pegadm_operator_t *oper = pegadm_operator_of(s);
    apr_status_t rv;

    if (oper->audit_file && oper->audit_is_pipe) {
        /* a zero timeout makes the pipe non-blocking: a full pipe answers EAGAIN */
        rv = apr_file_pipe_timeout_set(oper->audit_file, 0);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s,
                         "PEGADM612: PegaDMAuditLog: cannot make the pipe non-blocking; a "
                         "slow program may hold up requests");
        }
    }
}

/* Dropped lines are counted always and logged at most once a minute per
 * process. */
static void audit_dropped(request_rec *r, pegadm_operator_t *oper, apr_status_t rv)
{
    static const apr_uint32_t every = 60;
    apr_uint32_t now = (apr_uint32_t)apr_time_sec(apr_time_now());
    apr_uint32_t last = apr_atomic_read32(&oper->audit_dropped_logged_at);

    pegadm_metrics_count_audit_dropped(oper->metrics);
    if (now - last >= every &&
        apr_atomic_cas32(&oper->audit_dropped_logged_at, now, last) == last) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r,
                      "PEGADM613: PegaDMAuditLog: dropped an audit line (the log's program "
                      "does not keep up, or the file cannot be written); see "
                      "pegadm_audit_dropped_total");
    }
}

void pegadm_audit(request_rec *r, const pegadm_dir_conf_t *d, const char *event,
                  const char *outcome, const char *customer_id, const char *session_id,
                  apr_interval_time_t took)
{
    pegadm_server_conf_t *sc = ap_get_module_config(r->server->module_config, &pegadm_module);
    pegadm_operator_t *oper = sc->operator_rec;
    pegadm_audit_event_t e;
    const char *line;
    apr_size_t len;
    apr_status_t rv;

    if (!oper || !oper->audit_file || !d->secret) {
        return;
    }
    e.time = apr_time_now();
    e.node = oper->node;
    e.widget = d->widget_id;
    e.event = event;
    e.outcome = outcome;
    e.latency = took;
    e.customer = pegadm_audit_hash(r->pool, &d->secret->keys, "audit customer", d->widget_id,
                                   customer_id);
    e.session =
        pegadm_audit_hash(r->pool, &d->secret->keys, "audit session", d->widget_id, session_id);
    line = pegadm_audit_line(r->pool, &e);
    if (!line) {
        return;
    }
    len = strlen(line);
    rv = apr_file_write(oper->audit_file, line, &len);
    if (rv != APR_SUCCESS || len != strlen(line)) {
        audit_dropped(r, oper, rv);
    }
}
