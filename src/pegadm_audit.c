/* The audit log's lines (pegadm_audit.h): a JSON object per session
 * event with its UTC time, and customer and session IDs replaced by keyed
 * hashes that identify them across lines without revealing them. */
#include "pegadm_audit.h"

#include <stdlib.h>

#include <apr_strings.h>
#include <jansson.h>

const char *pegadm_audit_hash(apr_pool_t *p, const pegadm_keys_t *keys, const char *kind,
                              const char *widget, const char *value)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char mac[PEGADM_CACHE_ID_LEN];
    char *out;

    if (!value || pegadm_cache_id(keys, kind, widget, value, mac) != APR_SUCCESS) {
        return NULL;
    }
    out = apr_palloc(p, PEGADM_AUDIT_HASH_HEX + 1);
    for (apr_size_t i = 0; i < PEGADM_AUDIT_HASH_HEX / 2; i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 15];
    }
    out[PEGADM_AUDIT_HASH_HEX] = '\0';
    return out;
}

/* RFC 3339 in UTC with milliseconds: what log shippers parse. */
static const char *utc_time(apr_pool_t *p, apr_time_t t)
{
    apr_time_exp_t x;
    apr_time_exp_gmt(&x, t);
    return apr_psprintf(p, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", x.tm_year + 1900,
                        x.tm_mon + 1, x.tm_mday, x.tm_hour, x.tm_min, x.tm_sec,
                        x.tm_usec / 1000);
}

char *pegadm_audit_line(apr_pool_t *p, const pegadm_audit_event_t *e)
{
    json_t *o = json_pack("{s:s, s:s?, s:s?, s:s, s:s, s:f}", "time", utc_time(p, e->time),
                          "node", e->node, "widget", e->widget, "event", e->event, "outcome",
                          e->outcome, "latencyMs", (double)e->latency / 1000.0);
    char *text, *line = NULL;

    if (!o) {
        return NULL;
    }
    if (e->customer) {
        json_object_set_new(o, "customer", json_string(e->customer));
    }
    if (e->session) {
        json_object_set_new(o, "session", json_string(e->session));
    }
    text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    json_decref(o);
    if (text) {
        line = apr_pstrcat(p, text, "\n", NULL);
        free(text);
    }
    return line;
}
