/* The session endpoint's optional POST body, {"proactiveTrigger": "..."}:
 * untrusted input from the browser. */
#ifndef PEGADM_TRIGGER_H
#define PEGADM_TRIGGER_H

#include <apr_pools.h>

#define PEGADM_TRIGGER_BODY_MAX 4096 /* bytes; larger bodies are refused unread */

/* Parses len bytes of body; trailing white space is ignored and an empty
 * body carries no trigger. APR_SUCCESS with *trigger (in p, NULL if none),
 * or APR_EINVAL with *problem, a message for the client. */
apr_status_t pegadm_parse_trigger_body(apr_pool_t *p, const char *body, apr_size_t len,
                                       const char **trigger, const char **problem);

#endif
