/* Checks of directive values that need no httpd, so that they can be
 * fuzzed and unit tested: each returns NULL or a message that starts with
 * the directive's name. Results and messages live in p. */
#ifndef PEGADM_CONFCHECK_H
#define PEGADM_CONFCHECK_H

#include <apr_pools.h>

/* A whole decimal number from min to max (no sign, no spaces) in *out. */
const char *pegadm_check_int(apr_pool_t *p, const char *name, const char *arg, long min,
                             long max, long *out);

/* The size in bytes of shmcb's arguments "path(bytes)", or none if they
 * give no size. The arguments are shmcb's to check: it has accepted them. */
apr_size_t pegadm_shmcb_args_size(const char *args, apr_size_t none);

/* True if s is a UUID in its 8-4-4-4-12 hex form, nothing before or after. */
int pegadm_is_uuid(const char *s);

/* True for localhost, 127.0.0.0/8 and ::1. */
int pegadm_is_loopback_host(const char *host);

/* An absolute https:// URL (http:// for a loopback host only) without
 * credentials, query or fragment; *out is arg without trailing slashes. */
const char *pegadm_check_service_url(apr_pool_t *p, const char *name, const char *arg,
                                     const char **out);

/* An http:// or https:// proxy URL with a host, and without a user name or
 * password (which httpd would show: refused without repeating the URL). */
const char *pegadm_check_proxy_url(apr_pool_t *p, const char *name, const char *arg);

/* NULL if a call to url through proxy (NULL: none) keeps its bearer token
 * off the network in clear; else why not: url is plain http:// (allowed
 * for loopback only) and the proxy is not on loopback, so the request,
 * token included, would cross the network to the proxy unencrypted. */
const char *pegadm_check_cleartext_proxy(apr_pool_t *p, const char *url, const char *proxy);

/* A path on this server, starting with a single /, that can go into a
 * script or an HTML attribute as it is. */
const char *pegadm_check_local_path(apr_pool_t *p, const char *name, const char *arg);

/* Whether the addresses of httpd's address arguments (those of Require ip,
 * -ipmatch and -R: "10", "10.1.0.0/16", "10.0.0.0/255.0.0.0",
 * "2001:db8::/32") together admit every address of IPv4 or of IPv6: their
 * shares of a family's space add up to all of it. An argument that is not
 * an address counts as admitting everything. */
int pegadm_subnets_admit_all(const char *const *args, int n);

/* Whether an ap_expr condition holds only if each of its parts does: no
 * "||" or -or, no negation ("!" other than in != and !~, or -not), outside
 * quoted strings and regular expressions. A client-address test in such a
 * condition limits it; anywhere else it may not. */
int pegadm_expr_is_conjunction(const char *expr);

#endif
