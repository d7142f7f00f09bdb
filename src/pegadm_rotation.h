/* Which of a widget's two JWT secrets the service accepts, during a
 * rotation (PegaDMJWTSecretNext): a small table that every child process
 * of the server maps, one entry per widget ID, so that a switch one process
 * sees serves all of them. It is a block of its own, not a part of the
 * counters' block: rotation must not depend on the counters being there.
 * The table may be ordinary memory (the unit tests use malloc; the module
 * uses process memory when it cannot make shared memory). No httpd
 * dependency; the glue (mod_pegadm_session.c) keeps it across restarts. */
#ifndef PEGADM_ROTATION_H
#define PEGADM_ROTATION_H

#include <apr.h>

/* A widget ID with its terminating NUL fits in this (a UUID does). */
#define PEGADM_ROTATION_WIDGET_ID_MAX 40

typedef struct pegadm_rotation_t pegadm_rotation_t;

/* Bytes a table for up to widgets widgets needs. */
apr_size_t pegadm_rotation_size(int widgets);

/* Lays out a fresh, empty table in mem (size bytes, zeroed by this call);
 * NULL if size is too small or widgets < 1. */
pegadm_rotation_t *pegadm_rotation_init(void *mem, apr_size_t size, int widgets);

/* Widget IDs compare without regard to case, as the configuration's do. */

/* Adds widget_id (nothing if it is there already); 0 if the table is
 * full or the ID too long. Called by the parent process alone, before
 * children run. */
int pegadm_rotation_add(pegadm_rotation_t *t, const char *widget_id);

/* Copies every entry of from into t (the parent, when a table replaces a
 * smaller one); 0 if one does not fit. */
int pegadm_rotation_copy(pegadm_rotation_t *t, const pegadm_rotation_t *from);

/* How many widgets the table holds. */
int pegadm_rotation_count(const pegadm_rotation_t *t);

/* The fingerprint of the secret the service last accepted for widget_id
 * (0: not known yet, or widget_id not in the table; t may be NULL). */
apr_uint32_t pegadm_rotation_accepted(const pegadm_rotation_t *t, const char *widget_id);

/* Records that the service accepted the secret of this fingerprint (not
 * 0), and whether it is PegaDMJWTSecretNext; returns the fingerprint it
 * replaced, so that only the process that saw the switch first logs it.
 * A widget not in the table records nothing and gets fingerprint back. */
apr_uint32_t pegadm_rotation_set_accepted(pegadm_rotation_t *t, const char *widget_id,
                                          apr_uint32_t fingerprint, int is_next);

/* 1 once the service accepts PegaDMJWTSecretNext rather than
 * PegaDMJWTSecret (what pegadm-status shows as secretInUse). */
int pegadm_rotation_next_in_use(const pegadm_rotation_t *t, const char *widget_id);

#endif
