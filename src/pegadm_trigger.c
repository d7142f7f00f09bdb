/* Parsing the session endpoint's POST body (pegadm_trigger.h); fuzzed by
 * tests/fuzz/fuzz_trigger_body.c. */
#include "pegadm_trigger.h"

#include <apr_lib.h>
#include <apr_strings.h>
#include <jansson.h>

apr_status_t pegadm_parse_trigger_body(apr_pool_t *p, const char *body, apr_size_t len,
                                       const char **trigger, const char **problem)
{
    json_t *doc, *value;
    json_error_t jerr;

    *trigger = NULL;
    while (len > 0 && apr_isspace(body[len - 1])) {
        len--;
    }
    if (len == 0) {
        return APR_SUCCESS;
    }
    doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    value = json_is_object(doc) ? json_object_get(doc, "proactiveTrigger") : NULL;
    if (!json_is_object(doc) || (value && !json_is_string(value) && !json_is_null(value))) {
        json_decref(doc);
        *problem = "the body must be a JSON object with an optional string proactiveTrigger";
        return APR_EINVAL;
    }
    if (json_is_string(value)) {
        *trigger = apr_pstrmemdup(p, json_string_value(value), json_string_length(value));
    }
    json_decref(doc);
    return APR_SUCCESS;
}
