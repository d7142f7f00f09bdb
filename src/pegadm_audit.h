/* The audit log's lines: one JSON object per session event, customer and
 * session present only as keyed hashes. No httpd dependency. */
#ifndef PEGADM_AUDIT_H
#define PEGADM_AUDIT_H

#include <apr_pools.h>
#include <apr_time.h>

#include "pegadm_seal.h"

/* Hex characters of a hash in the log: 128 bits of HMAC-SHA256. */
#define PEGADM_AUDIT_HASH_HEX 32

typedef struct {
    apr_time_t time;
    const char *node;    /* the host name */
    const char *widget;  /* widget ID */
    const char *event;   /* create, private_data, forget, refusal */
    const char *outcome; /* ok, or why not */
    apr_interval_time_t latency;
    const char *customer; /* a hash from pegadm_audit_hash, or NULL */
    const char *session;  /* a hash from pegadm_audit_hash, or NULL */
} pegadm_audit_event_t;

/* HMAC-SHA256 of (kind, widget, value) under the cache-key key derived from
 * the secret, as hex: stable for one customer, unlinkable without the
 * secret. NULL if OpenSSL fails. */
const char *pegadm_audit_hash(apr_pool_t *p, const pegadm_keys_t *keys, const char *kind,
                              const char *widget, const char *value);

/* The event as one line of JSON, newline included, in p (NULL on failure). */
char *pegadm_audit_line(apr_pool_t *p, const pegadm_audit_event_t *e);

#endif
