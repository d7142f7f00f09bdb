/* Counters and timings of the module, kept in one block of shared memory
 * that every child process of the server maps: one slot per possible child
 * process, each holding every widget's counters. A process adds to its own
 * slot with atomic adds (its threads share it) and takes no lock; a reader
 * sums all slots. Per widget there are also a few shared cells that any
 * process may set (the breaker gauge, the certificate expiry); which secret
 * the service accepts is kept apart (pegadm_rotation.h). The block may be
 * ordinary memory: the unit tests use malloc. No httpd dependency;
 * rendering is in pegadm_metrics_render.c. */
#ifndef PEGADM_METRICS_H
#define PEGADM_METRICS_H

#include <apr_pools.h>
#include <apr_time.h>

#include "pegadm_rotation.h"

#define PEGADM_METRICS_WIDGET_ID_MAX 40

/* Outcomes of a create or of a private-data push. */
typedef enum {
    PEGADM_CALL_OK = 0,
    PEGADM_CALL_UNREACHABLE,  /* connect, TLS, timeout, transport */
    PEGADM_CALL_HTTP_ERROR,   /* an answer outside 2xx */
    PEGADM_CALL_BAD_ANSWER,   /* 2xx but not what the protocol promises */
    PEGADM_CALL_INTERNAL,     /* signing or encoding failed on our side */
    PEGADM_CALL_BREAKER_OPEN, /* not called: the circuit breaker is open (creates only) */
    PEGADM_CALL_OUTCOMES
} pegadm_call_outcome_t;

typedef enum {
    PEGADM_LOOKUP_HIT = 0,
    PEGADM_LOOKUP_MISS,
    PEGADM_LOOKUP_ERROR,
    PEGADM_LOOKUP_RESULTS
} pegadm_lookup_result_t;

typedef enum {
    PEGADM_UPSTREAM_CREATE = 0,
    PEGADM_UPSTREAM_PRIVATE_DATA,
    PEGADM_UPSTREAM_CALLS
} pegadm_upstream_call_t;

/* Upper bounds of the latency histogram's buckets, in seconds as the
 * "le" label writes them (5 ms to 10 s); one more bucket (+Inf) takes the rest. */
#define PEGADM_METRICS_BUCKETS 11
extern const char *const pegadm_metrics_bucket_labels[PEGADM_METRICS_BUCKETS];

/* Which counter of a widget. */
typedef enum {
    PEGADM_M_CREATES = 0,
    PEGADM_M_PUSHES = PEGADM_M_CREATES + PEGADM_CALL_OUTCOMES,
    PEGADM_M_LOOKUPS = PEGADM_M_PUSHES + PEGADM_CALL_OUTCOMES,
    PEGADM_M_FORGETS = PEGADM_M_LOOKUPS + PEGADM_LOOKUP_RESULTS,
    PEGADM_M_RATE_LIMITED,
    /* per call: PEGADM_METRICS_BUCKETS + 1 bucket counts, then the sum in µs */
    PEGADM_M_HISTOGRAMS,
    PEGADM_M_COUNTERS =
        PEGADM_M_HISTOGRAMS + PEGADM_UPSTREAM_CALLS * (PEGADM_METRICS_BUCKETS + 2)
} pegadm_metric_t;

/* The operations on a shared cache server (the module's own Redis and
 * memcached clients), timed server-wide for pegadm_cache_seconds{op}. */
typedef enum {
    PEGADM_CACHE_OP_GET = 0,
    PEGADM_CACHE_OP_SET,
    PEGADM_CACHE_OP_DELETE,
    PEGADM_CACHE_OP_MARK, /* taking or releasing a create mark */
    PEGADM_CACHE_OPS
} pegadm_cache_op_t;

/* Their histogram's bucket bounds, 0.25 ms to 1 s: a cache answers in far
 * less than the service; one more bucket (+Inf) takes the rest. Per op:
 * PEGADM_CACHE_BUCKETS + 1 bucket counts, then the sum in µs. */
#define PEGADM_CACHE_BUCKETS 12
extern const char *const pegadm_cache_bucket_labels[PEGADM_CACHE_BUCKETS];
#define PEGADM_CACHE_HISTOGRAM(op)     ((op) * (PEGADM_CACHE_BUCKETS + 2))
#define PEGADM_CACHE_HISTOGRAM_SUM(op) (PEGADM_CACHE_HISTOGRAM(op) + PEGADM_CACHE_BUCKETS + 1)
#define PEGADM_CACHE_COUNTERS          (PEGADM_CACHE_OPS * (PEGADM_CACHE_BUCKETS + 2))

typedef struct pegadm_metrics_t pegadm_metrics_t;

/* Whether m was laid out by this build (a block an earlier build retained
 * across a graceful restart may be laid out otherwise: it is not used). */
int pegadm_metrics_is_current(const pegadm_metrics_t *m);

/* Bytes a block for slots processes and up to widgets widgets needs. */
apr_size_t pegadm_metrics_size(int slots, int widgets);

/* Lays out a fresh block (mem, size bytes, zeroed by this call); NULL if
 * size is too small. The handle points into mem. */
pegadm_metrics_t *pegadm_metrics_init(void *mem, apr_size_t size, int slots, int widgets);

/* Index of widget_id in the block, appending it if new; -1 if the block is
 * full. Called by the parent process alone, before children run. */
int pegadm_metrics_widget(pegadm_metrics_t *m, const char *widget_id);

/* The slot a process writes to: one not owned by a living process, claimed
 * for pid (alive(pid) says whether a process still runs). A server with
 * more processes than slots shares slots: the adds stay exact. */
typedef struct pegadm_metrics_slot_t pegadm_metrics_slot_t;
pegadm_metrics_slot_t *pegadm_metrics_claim_slot(pegadm_metrics_t *m, apr_uint32_t pid,
                                                 int (*alive)(apr_uint32_t pid));

/* The request path: lock-free adds to the caller's slot. widget < 0 (not
 * in the block) is ignored, and so is a NULL slot. */
void pegadm_metrics_add(pegadm_metrics_slot_t *slot, int widget, pegadm_metric_t metric);
void pegadm_metrics_observe(pegadm_metrics_slot_t *slot, int widget,
                            pegadm_upstream_call_t call, apr_interval_time_t took);

/* A cache operation's duration, in the caller's slot (NULL: ignored). */
void pegadm_metrics_observe_cache(pegadm_metrics_slot_t *slot, pegadm_cache_op_t op,
                                  apr_interval_time_t took);

/* The op a cache client's observer names ("get", "set", "delete", "mark"),
 * or -1 for one that is not timed here (the preflight's "check"). */
int pegadm_cache_op_of(const char *name);
const char *pegadm_cache_op_name(pegadm_cache_op_t op);

/* Which shared cache server the module talks to itself: "redis" or
 * "memcache", whose series are then rendered; NULL (shmcb, or another
 * socache provider): none. Set by the parent process at each start. */
void pegadm_metrics_set_cache_kind(pegadm_metrics_t *m, const char *kind);
const char *pegadm_metrics_cache_kind(const pegadm_metrics_t *m);

/* Whether the shared cache server answered the last operation or check
 * (server-wide, any process sets it); -1 until something set it. */
void pegadm_metrics_set_cache_up(pegadm_metrics_t *m, int up);
int pegadm_metrics_cache_up(const pegadm_metrics_t *m);

/* The cache histograms summed over all slots: per op, the buckets (not
 * cumulative) then the sum in µs (see PEGADM_CACHE_HISTOGRAM). */
void pegadm_metrics_cache_totals(const pegadm_metrics_t *m,
                                 apr_uint64_t out[PEGADM_CACHE_COUNTERS]);

/* Shared per-widget cells. */
void pegadm_metrics_set_breaker_open(pegadm_metrics_t *m, int widget, int open);
void pegadm_metrics_set_cert_expiry(pegadm_metrics_t *m, int widget, apr_time_t not_after);
/* The last preflight's finding: 1 reachable, 0 not. */
void pegadm_metrics_set_reachable(pegadm_metrics_t *m, int widget, int reachable);

/* Audit lines lost because the log's pipe was full (server-wide). */
void pegadm_metrics_count_audit_dropped(pegadm_metrics_t *m);
apr_uint64_t pegadm_metrics_audit_dropped(const pegadm_metrics_t *m);

/* One widget's totals, summed over all slots. */
typedef struct {
    char widget_id[PEGADM_METRICS_WIDGET_ID_MAX];
    apr_uint64_t counters[PEGADM_M_COUNTERS];
    int breaker_open;
    apr_time_t cert_not_after; /* 0: unknown */
    int reachable;             /* -1: not checked, 0: no, 1: yes */
    int secret_in_use;         /* from ctx->rotation, by the renderers */
} pegadm_metrics_widget_totals_t;

int pegadm_metrics_widgets(const pegadm_metrics_t *m);
void pegadm_metrics_totals(const pegadm_metrics_t *m, int widget,
                           pegadm_metrics_widget_totals_t *out);

/* The histogram's counters of a call inside counters[]: buckets (not
 * cumulative) then the sum in microseconds. */
#define PEGADM_M_HISTOGRAM(call)     (PEGADM_M_HISTOGRAMS + (call) * (PEGADM_METRICS_BUCKETS + 2))
#define PEGADM_M_HISTOGRAM_SUM(call) (PEGADM_M_HISTOGRAM(call) + PEGADM_METRICS_BUCKETS + 1)

/* Names used as label values and JSON keys. */
const char *pegadm_call_outcome_name(pegadm_call_outcome_t o);
const char *pegadm_lookup_result_name(pegadm_lookup_result_t r);
const char *pegadm_upstream_call_name(pegadm_upstream_call_t c);

/* Renders every widget's totals: the Prometheus text format (0.0.4), or a
 * JSON document. version is the module's; now gives the certificate's
 * remaining seconds. The text is in p. */
typedef struct {
    const char *version;
    apr_time_t now;
    const pegadm_rotation_t *rotation; /* which secret is in use; NULL: the first */
} pegadm_metrics_context_t;
char *pegadm_metrics_prometheus(apr_pool_t *p, const pegadm_metrics_t *m,
                                const pegadm_metrics_context_t *ctx);
char *pegadm_metrics_json(apr_pool_t *p, const pegadm_metrics_t *m,
                          const pegadm_metrics_context_t *ctx);

#endif
