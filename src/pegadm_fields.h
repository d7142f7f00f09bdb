/* Typed private-data values: the text an expression gives becomes a JSON
 * string, boolean, number or any JSON value, so that Pega receives
 * `"authenticated": true` rather than `"authenticated": "true"`. */
#ifndef PEGADM_FIELDS_H
#define PEGADM_FIELDS_H

#include <apr_errno.h>
#include <jansson.h>

typedef enum {
    PEGADM_FIELD_STRING = 0, /* the text as it is (the default) */
    PEGADM_FIELD_BOOLEAN,    /* true|false, yes|no, on|off, 1|0, any case */
    PEGADM_FIELD_NUMBER,     /* a JSON number, e.g. -12 or 3.5e2 */
    PEGADM_FIELD_JSON        /* any JSON document: object, array, literal */
} pegadm_field_type_t;

typedef enum {
    PEGADM_FIELD_OK = 0,
    PEGADM_FIELD_EMPTY,  /* a typed value with nothing but white space: absent */
    PEGADM_FIELD_INVALID /* the text is not a value of the type */
} pegadm_field_status_t;

/* Whether key can name a field: not empty, and UTF-8 that jansson takes as
 * an object key (it refuses others, and the field would be dropped). */
int pegadm_field_key_is_valid(const char *key);

/* The type called name (case-insensitive); APR_EINVAL for another name. */
apr_status_t pegadm_field_type_parse(const char *name, pegadm_field_type_t *type);

/* "string", "boolean", "number" or "json". */
const char *pegadm_field_type_name(pegadm_field_type_t type);

/* Converts len bytes of text into *value (a new reference for the caller).
 * Typed values ignore surrounding white space; a string is taken as it is
 * and may be empty. On INVALID, *why is a short static English reason. */
pegadm_field_status_t pegadm_field_value(pegadm_field_type_t type, const char *text,
                                         apr_size_t len, json_t **value, const char **why);

#endif
