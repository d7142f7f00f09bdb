/* The session endpoint's answer where its shape is fixed, built without a
 * JSON library: {"sessionId":"…","widgetId":"…"} and a newline, the bytes
 * jansson's compact output gives. */
#ifndef PEGADM_ANSWER_H
#define PEGADM_ANSWER_H

#include <apr_pools.h>

/* The answer in p, *len its length; NULL if a value holds a character that
 * JSON would escape (a quote, a backslash, a control or non-ASCII byte):
 * such values take the general path. */
const char *pegadm_session_answer(apr_pool_t *p, const char *session_id, const char *widget_id,
                                  apr_size_t *len);

#endif
