/* Typed private-data values. Numbers and JSON documents go through
 * jansson's own parser: it is strict about the grammar, refuses integers
 * it cannot hold, and does not depend on the process locale the way
 * strtod does. */
#include "pegadm_fields.h"

#include <string.h>
#include <strings.h>

static const char *const type_names[] = {"string", "boolean", "number", "json"};

/* jansson's own check decides, not a copy of it: json_object_set_new
 * applies the same one to keys as json_string does to values. */
int pegadm_field_key_is_valid(const char *key)
{
    json_t *probe = *key ? json_string(key) : NULL;

    if (!probe) {
        return 0;
    }
    json_decref(probe);
    return 1;
}

apr_status_t pegadm_field_type_parse(const char *name, pegadm_field_type_t *type)
{
    for (size_t i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++) {
        if (!strcasecmp(name, type_names[i])) {
            *type = (pegadm_field_type_t)i;
            return APR_SUCCESS;
        }
    }
    return APR_EINVAL;
}

const char *pegadm_field_type_name(pegadm_field_type_t type)
{
    return type_names[type];
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Whether len bytes of text spell word, ignoring case. */
static int is_word(const char *text, apr_size_t len, const char *word)
{
    return len == strlen(word) && !strncasecmp(text, word, len);
}

static pegadm_field_status_t to_boolean(const char *text, apr_size_t len, json_t **value,
                                        const char **why)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (is_word(text, len, yes[i]) || is_word(text, len, no[i])) {
            *value = json_boolean(is_word(text, len, yes[i]));
            return PEGADM_FIELD_OK;
        }
    }
    *why = "not a boolean (true|false, yes|no, on|off, 1|0)";
    return PEGADM_FIELD_INVALID;
}

static pegadm_field_status_t to_json(pegadm_field_type_t type, const char *text, apr_size_t len,
                                     json_t **value, const char **why)
{
    json_error_t err;
    json_t *doc = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);

    if (type == PEGADM_FIELD_NUMBER && doc && !json_is_number(doc)) {
        json_decref(doc);
        doc = NULL;
    }
    if (!doc) {
        *why = type == PEGADM_FIELD_NUMBER ? "not a JSON number (or out of range)"
                                           : "not a JSON document";
        return PEGADM_FIELD_INVALID;
    }
    *value = doc;
    return PEGADM_FIELD_OK;
}

pegadm_field_status_t pegadm_field_value(pegadm_field_type_t type, const char *text,
                                         apr_size_t len, json_t **value, const char **why)
{
    if (type == PEGADM_FIELD_STRING) {
        *value = json_stringn(text ? text : "", len);
        if (!*value) {
            *why = "not valid UTF-8";
            return PEGADM_FIELD_INVALID;
        }
        return PEGADM_FIELD_OK;
    }
    while (len > 0 && is_blank(text[len - 1])) {
        len--;
    }
    while (len > 0 && is_blank(*text)) {
        text++;
        len--;
    }
    if (len == 0) {
        return PEGADM_FIELD_EMPTY;
    }
    if (type == PEGADM_FIELD_BOOLEAN) {
        return to_boolean(text, len, value, why);
    }
    return to_json(type, text, len, value, why);
}
