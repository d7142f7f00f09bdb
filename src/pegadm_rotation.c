/* Which secret the service accepts, per widget: the table's layout and its
 * lock-free reads and writes (see pegadm_rotation.h). */
#include "pegadm_rotation.h"

#include <string.h>
#include <strings.h>

#define MAGIC 0x50475231u /* "PGR1" */

typedef struct {
    char id[PEGADM_ROTATION_WIDGET_ID_MAX];
    apr_uint32_t accepted; /* the fingerprint; 0: not known */
    apr_uint32_t next;     /* 1: the accepted one is PegaDMJWTSecretNext */
} entry_t;

struct pegadm_rotation_t {
    apr_uint32_t magic;
    apr_uint32_t cap;
    apr_uint32_t used; /* entries with an ID; grows in the parent only */
    apr_uint32_t pad;
    entry_t entries[];
};

apr_size_t pegadm_rotation_size(int widgets)
{
    return sizeof(pegadm_rotation_t) +
           (apr_size_t)(widgets > 0 ? widgets : 0) * sizeof(entry_t);
}

pegadm_rotation_t *pegadm_rotation_init(void *mem, apr_size_t size, int widgets)
{
    pegadm_rotation_t *t = mem;

    if (!mem || widgets < 1 || size < pegadm_rotation_size(widgets)) {
        return NULL;
    }
    memset(mem, 0, size);
    t->magic = MAGIC;
    t->cap = (apr_uint32_t)widgets;
    return t;
}

static entry_t *find(const pegadm_rotation_t *t, const char *widget_id)
{
    apr_uint32_t used;

    if (!t || !widget_id) {
        return NULL;
    }
    used = __atomic_load_n(&t->used, __ATOMIC_ACQUIRE);
    for (apr_uint32_t i = 0; i < used; i++) {
        if (!strcasecmp(t->entries[i].id, widget_id)) {
            return (entry_t *)&t->entries[i];
        }
    }
    return NULL;
}

static entry_t *add(pegadm_rotation_t *t, const char *widget_id)
{
    apr_size_t len = strlen(widget_id);
    entry_t *e = find(t, widget_id);

    if (e) {
        return e;
    }
    if (len >= PEGADM_ROTATION_WIDGET_ID_MAX || t->used == t->cap) {
        return NULL;
    }
    e = &t->entries[t->used];
    memcpy(e->id, widget_id, len + 1);
    __atomic_store_n(&t->used, t->used + 1, __ATOMIC_RELEASE);
    return e;
}

int pegadm_rotation_add(pegadm_rotation_t *t, const char *widget_id)
{
    return t && widget_id && add(t, widget_id) != NULL;
}

int pegadm_rotation_copy(pegadm_rotation_t *t, const pegadm_rotation_t *from)
{
    for (apr_uint32_t i = 0; from && i < from->used; i++) {
        const entry_t *src = &from->entries[i];
        entry_t *e = t ? add(t, src->id) : NULL;

        if (!e) {
            return 0;
        }
        e->next = __atomic_load_n(&src->next, __ATOMIC_RELAXED);
        e->accepted = __atomic_load_n(&src->accepted, __ATOMIC_ACQUIRE);
    }
    return 1;
}

int pegadm_rotation_count(const pegadm_rotation_t *t)
{
    return t ? (int)__atomic_load_n(&t->used, __ATOMIC_ACQUIRE) : 0;
}

apr_uint32_t pegadm_rotation_accepted(const pegadm_rotation_t *t, const char *widget_id)
{
    const entry_t *e = find(t, widget_id);
    return e ? __atomic_load_n(&e->accepted, __ATOMIC_ACQUIRE) : 0;
}

apr_uint32_t pegadm_rotation_set_accepted(pegadm_rotation_t *t, const char *widget_id,
                                          apr_uint32_t fingerprint, int is_next)
{
    entry_t *e = find(t, widget_id);

    if (!e) {
        return fingerprint;
    }
    __atomic_store_n(&e->next, is_next ? 1u : 0u, __ATOMIC_RELAXED);
    return __atomic_exchange_n(&e->accepted, fingerprint, __ATOMIC_ACQ_REL);
}

int pegadm_rotation_next_in_use(const pegadm_rotation_t *t, const char *widget_id)
{
    const entry_t *e = find(t, widget_id);
    return e ? (int)__atomic_load_n(&e->next, __ATOMIC_RELAXED) : 0;
}
