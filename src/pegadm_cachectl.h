/* Cache-Control values: adding what the module needs to what other
 * modules set, never weakening it. A value is a comma-separated list of
 * directives ("no-cache", "max-age=60", no-cache="set-cookie"); commas in
 * quoted strings do not separate. */
#ifndef PEGADM_CACHECTL_H
#define PEGADM_CACHECTL_H

#include <apr_pools.h>

/* True if value (NULL: none) has the directive name, alone or with "=...";
 * names compare ASCII case-insensitively. */
int pegadm_cache_control_has(const char *value, const char *name);

/* value's directives in order, without "public" and "s-maxage" (which let
 * a shared cache keep the answer), followed by each of ensure (a
 * NULL-terminated list of directive names) that value lacks, joined by
 * ", ". In p; value may be NULL or empty. */
const char *pegadm_cache_control_private(apr_pool_t *p, const char *value,
                                         const char *const *ensure);

/* True if the header field name is one that a CDN or another cache in
 * front caches by instead of Cache-Control: the targeted fields of RFC 9213
 * (CDN-Cache-Control, and every "<name>-CDN-Cache-Control" or
 * "<name>-Cache-Control"), Surrogate-Control, Edge-Control and
 * X-Accel-Expires. Names compare ASCII case-insensitively. */
int pegadm_cache_control_is_targeted(const char *name);

#endif
