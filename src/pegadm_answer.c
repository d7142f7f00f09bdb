/* The fixed-shape session answer (pegadm_answer.h). */
#include "pegadm_answer.h"

#include <string.h>

static const char head[] = "{\"sessionId\":\"";
static const char middle[] = "\",\"widgetId\":\"";
static const char tail[] = "\"}\n";

/* Characters JSON carries as they are inside a string. */
static int json_plain(const char *s, apr_size_t *len)
{
    const unsigned char *c = (const unsigned char *)s;
    for (; *c; c++) {
        if (*c < 0x20 || *c >= 0x7f || *c == '"' || *c == '\\') {
            return 0;
        }
    }
    *len = (apr_size_t)((const char *)c - s);
    return 1;
}

const char *pegadm_session_answer(apr_pool_t *p, const char *session_id, const char *widget_id,
                                  apr_size_t *len)
{
    apr_size_t sid_len, wid_len;
    char *out, *at;

    if (!json_plain(session_id, &sid_len) || !json_plain(widget_id, &wid_len)) {
        return NULL;
    }
    *len = sizeof(head) - 1 + sid_len + sizeof(middle) - 1 + wid_len + sizeof(tail) - 1;
    out = at = apr_palloc(p, *len + 1);
    memcpy(at, head, sizeof(head) - 1);
    at += sizeof(head) - 1;
    memcpy(at, session_id, sid_len);
    at += sid_len;
    memcpy(at, middle, sizeof(middle) - 1);
    at += sizeof(middle) - 1;
    memcpy(at, widget_id, wid_len);
    at += wid_len;
    memcpy(at, tail, sizeof(tail)); /* with its NUL */
    return out;
}
