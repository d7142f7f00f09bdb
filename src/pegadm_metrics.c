/* The shared block of counters: its layout, the lock-free adds of the
 * request path and the sums of the readers. Where it lives (shared memory
 * kept across graceful restarts) is the glue's business. */
#include "pegadm_metrics.h"

#include <string.h>

#define MAGIC       0x50474d32u /* "PGM2" */
#define CACHE_LINE  64
#define ALIGN_UP(n) (((n) + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE)

const char *const pegadm_metrics_bucket_labels[PEGADM_METRICS_BUCKETS] = {
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10"};

/* The same bounds in microseconds: the request path compares integers. */
static const apr_interval_time_t bucket_bounds_us[PEGADM_METRICS_BUCKETS] = {
    5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};

const char *const pegadm_cache_bucket_labels[PEGADM_CACHE_BUCKETS] = {
    "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01",
    "0.025",   "0.05",   "0.1",   "0.25",   "0.5",   "1"};

static const apr_interval_time_t cache_bounds_us[PEGADM_CACHE_BUCKETS] = {
    250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000};

struct pegadm_metrics_t {
    apr_uint32_t magic;
    apr_uint32_t slots;
    apr_uint32_t widget_cap;
    apr_uint32_t widgets;
    apr_uint64_t audit_dropped;
    apr_uint32_t slot_size;  /* bytes, a multiple of CACHE_LINE */
    apr_uint32_t cache_up;   /* 0: not known yet, 1: no, 2: yes */
    apr_uint32_t cache_kind; /* 0: none, 1: redis, 2: memcache */
};

typedef struct {
    char id[PEGADM_METRICS_WIDGET_ID_MAX];
    apr_uint32_t breaker_open;
    apr_uint32_t reachable; /* 0: not checked, 1: no, 2: yes */
    apr_int64_t cert_not_after;
} widget_cell_t;

/* A slot: its owner in a line of its own, then the widgets' counters, then
 * the server-wide cache histograms. */
struct pegadm_metrics_slot_t {
    apr_uint32_t owner;
    apr_uint32_t widget_cap;
};

#define HEADER_SIZE ALIGN_UP(sizeof(struct pegadm_metrics_t))
#define CELL_SIZE   ALIGN_UP(sizeof(widget_cell_t))

static apr_size_t widget_counters_size(apr_uint32_t widgets)
{
    return ALIGN_UP((apr_size_t)widgets * PEGADM_M_COUNTERS * sizeof(apr_uint64_t));
}

static apr_size_t slot_size(int widgets)
{
    return CACHE_LINE + widget_counters_size((apr_uint32_t)widgets) +
           ALIGN_UP((apr_size_t)PEGADM_CACHE_COUNTERS * sizeof(apr_uint64_t));
}

apr_size_t pegadm_metrics_size(int slots, int widgets)
{
    return HEADER_SIZE + (apr_size_t)widgets * CELL_SIZE +
           (apr_size_t)slots * slot_size(widgets);
}

static widget_cell_t *cell(const pegadm_metrics_t *m, int widget)
{
    return (widget_cell_t *)((char *)m + HEADER_SIZE + (apr_size_t)widget * CELL_SIZE);
}

static pegadm_metrics_slot_t *slot_at(const pegadm_metrics_t *m, apr_uint32_t i)
{
    return (pegadm_metrics_slot_t *)((char *)m + HEADER_SIZE + m->widget_cap * CELL_SIZE +
                                     (apr_size_t)i * m->slot_size);
}

static apr_uint64_t *counters(const pegadm_metrics_slot_t *slot, int widget)
{
    return (apr_uint64_t *)((char *)slot + CACHE_LINE) + (apr_size_t)widget * PEGADM_M_COUNTERS;
}

static apr_uint64_t *cache_counters(const pegadm_metrics_slot_t *slot)
{
    return (apr_uint64_t *)((char *)slot + CACHE_LINE + widget_counters_size(slot->widget_cap));
}

pegadm_metrics_t *pegadm_metrics_init(void *mem, apr_size_t size, int slots, int widgets)
{
    pegadm_metrics_t *m = mem;

    if (slots < 1 || widgets < 1 || size < pegadm_metrics_size(slots, widgets)) {
        return NULL;
    }
    memset(mem, 0, size);
    m->magic = MAGIC;
    m->slots = (apr_uint32_t)slots;
    m->widget_cap = (apr_uint32_t)widgets;
    m->slot_size = (apr_uint32_t)slot_size(widgets);
    for (int i = 0; i < slots; i++) {
        slot_at(m, (apr_uint32_t)i)->widget_cap = (apr_uint32_t)widgets;
    }
    return m;
}

int pegadm_metrics_widget(pegadm_metrics_t *m, const char *widget_id)
{
    apr_size_t len = strlen(widget_id);
    apr_uint32_t i;

    if (len >= PEGADM_METRICS_WIDGET_ID_MAX) {
        return -1;
    }
    for (i = 0; i < m->widgets; i++) {
        if (!strcmp(cell(m, (int)i)->id, widget_id)) {
            return (int)i;
        }
    }
    if (i == m->widget_cap) {
        return -1;
    }
    memcpy(cell(m, (int)i)->id, widget_id, len + 1);
    __atomic_store_n(&m->widgets, i + 1, __ATOMIC_RELEASE);
    return (int)i;
}

pegadm_metrics_slot_t *pegadm_metrics_claim_slot(pegadm_metrics_t *m, apr_uint32_t pid,
                                                 int (*alive)(apr_uint32_t pid))
{
    apr_uint32_t start = pid % m->slots;

    for (apr_uint32_t n = 0; n < m->slots; n++) {
        pegadm_metrics_slot_t *slot = slot_at(m, (start + n) % m->slots);
        apr_uint32_t owner = __atomic_load_n(&slot->owner, __ATOMIC_ACQUIRE);

        if (owner == pid) {
            return slot;
        }
        if ((owner == 0 || !alive(owner)) &&
            __atomic_compare_exchange_n(&slot->owner, &owner, pid, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE)) {
            return slot;
        }
    }
    return slot_at(m, start);
}

void pegadm_metrics_add(pegadm_metrics_slot_t *slot, int widget, pegadm_metric_t metric)
{
    if (slot && widget >= 0 && (apr_uint32_t)widget < slot->widget_cap) {
        __atomic_fetch_add(&counters(slot, widget)[metric], 1, __ATOMIC_RELAXED);
    }
}

void pegadm_metrics_observe(pegadm_metrics_slot_t *slot, int widget,
                            pegadm_upstream_call_t call, apr_interval_time_t took)
{
    int bucket = 0;

    if (!slot || widget < 0 || (apr_uint32_t)widget >= slot->widget_cap) {
        return;
    }
    while (bucket < PEGADM_METRICS_BUCKETS && took > bucket_bounds_us[bucket]) {
        bucket++;
    }
    __atomic_fetch_add(&counters(slot, widget)[PEGADM_M_HISTOGRAM(call) + bucket], 1,
                       __ATOMIC_RELAXED);
    __atomic_fetch_add(&counters(slot, widget)[PEGADM_M_HISTOGRAM_SUM(call)],
                       (apr_uint64_t)(took > 0 ? took : 0), __ATOMIC_RELAXED);
}

void pegadm_metrics_observe_cache(pegadm_metrics_slot_t *slot, pegadm_cache_op_t op,
                                  apr_interval_time_t took)
{
    int bucket = 0;

    if (!slot || op < 0 || op >= PEGADM_CACHE_OPS) {
        return;
    }
    while (bucket < PEGADM_CACHE_BUCKETS && took > cache_bounds_us[bucket]) {
        bucket++;
    }
    __atomic_fetch_add(&cache_counters(slot)[PEGADM_CACHE_HISTOGRAM(op) + bucket], 1,
                       __ATOMIC_RELAXED);
    __atomic_fetch_add(&cache_counters(slot)[PEGADM_CACHE_HISTOGRAM_SUM(op)],
                       (apr_uint64_t)(took > 0 ? took : 0), __ATOMIC_RELAXED);
}

static const char *const cache_op_names[PEGADM_CACHE_OPS] = {"get", "set", "delete", "mark"};

int pegadm_cache_op_of(const char *name)
{
    for (int i = 0; name && i < PEGADM_CACHE_OPS; i++) {
        if (!strcmp(name, cache_op_names[i])) {
            return i;
        }
    }
    return -1;
}

const char *pegadm_cache_op_name(pegadm_cache_op_t op)
{
    return cache_op_names[op];
}

void pegadm_metrics_set_cache_kind(pegadm_metrics_t *m, const char *kind)
{
    apr_uint32_t k = !kind ? 0 : !strcmp(kind, "redis") ? 1 : !strcmp(kind, "memcache") ? 2 : 0;

    if (m) {
        __atomic_store_n(&m->cache_kind, k, __ATOMIC_RELAXED);
        __atomic_store_n(&m->cache_up, 0u, __ATOMIC_RELAXED); /* unknown again */
    }
}

const char *pegadm_metrics_cache_kind(const pegadm_metrics_t *m)
{
    static const char *const kinds[] = {NULL, "redis", "memcache"};
    apr_uint32_t k = m ? __atomic_load_n(&m->cache_kind, __ATOMIC_RELAXED) : 0;

    return k < 3 ? kinds[k] : NULL;
}

void pegadm_metrics_set_cache_up(pegadm_metrics_t *m, int up)
{
    if (m) {
        __atomic_store_n(&m->cache_up, up ? 2u : 1u, __ATOMIC_RELAXED);
    }
}

int pegadm_metrics_cache_up(const pegadm_metrics_t *m)
{
    return m ? (int)__atomic_load_n(&m->cache_up, __ATOMIC_RELAXED) - 1 : -1;
}

void pegadm_metrics_cache_totals(const pegadm_metrics_t *m,
                                 apr_uint64_t out[PEGADM_CACHE_COUNTERS])
{
    memset(out, 0, (apr_size_t)PEGADM_CACHE_COUNTERS * sizeof(*out));
    for (apr_uint32_t s = 0; m && s < m->slots; s++) {
        const apr_uint64_t *v = cache_counters(slot_at(m, s));
        for (int i = 0; i < PEGADM_CACHE_COUNTERS; i++) {
            out[i] += __atomic_load_n(&v[i], __ATOMIC_RELAXED);
        }
    }
}

static int valid_widget(const pegadm_metrics_t *m, int widget)
{
    return m && widget >= 0 && (apr_uint32_t)widget < m->widgets;
}

void pegadm_metrics_set_breaker_open(pegadm_metrics_t *m, int widget, int open)
{
    if (valid_widget(m, widget)) {
        __atomic_store_n(&cell(m, widget)->breaker_open, open ? 1u : 0u, __ATOMIC_RELAXED);
    }
}

void pegadm_metrics_set_cert_expiry(pegadm_metrics_t *m, int widget, apr_time_t not_after)
{
    if (valid_widget(m, widget)) {
        __atomic_store_n(&cell(m, widget)->cert_not_after, not_after, __ATOMIC_RELAXED);
    }
}

void pegadm_metrics_set_reachable(pegadm_metrics_t *m, int widget, int reachable)
{
    if (valid_widget(m, widget)) {
        __atomic_store_n(&cell(m, widget)->reachable, reachable ? 2u : 1u, __ATOMIC_RELAXED);
    }
}

int pegadm_metrics_is_current(const pegadm_metrics_t *m)
{
    return m && m->magic == MAGIC;
}

void pegadm_metrics_count_audit_dropped(pegadm_metrics_t *m)
{
    if (m) {
        __atomic_fetch_add(&m->audit_dropped, 1, __ATOMIC_RELAXED);
    }
}

apr_uint64_t pegadm_metrics_audit_dropped(const pegadm_metrics_t *m)
{
    return m ? __atomic_load_n(&m->audit_dropped, __ATOMIC_RELAXED) : 0;
}

int pegadm_metrics_widgets(const pegadm_metrics_t *m)
{
    return m ? (int)__atomic_load_n(&m->widgets, __ATOMIC_ACQUIRE) : 0;
}

void pegadm_metrics_totals(const pegadm_metrics_t *m, int widget,
                           pegadm_metrics_widget_totals_t *out)
{
    const widget_cell_t *c = cell(m, widget);

    memset(out, 0, sizeof(*out));
    memcpy(out->widget_id, c->id, sizeof(out->widget_id));
    out->breaker_open = (int)__atomic_load_n(&c->breaker_open, __ATOMIC_RELAXED);
    out->cert_not_after = __atomic_load_n(&c->cert_not_after, __ATOMIC_RELAXED);
    out->reachable = (int)__atomic_load_n(&c->reachable, __ATOMIC_RELAXED) - 1;
    for (apr_uint32_t s = 0; s < m->slots; s++) {
        const apr_uint64_t *v = counters(slot_at(m, s), widget);
        for (int i = 0; i < PEGADM_M_COUNTERS; i++) {
            out->counters[i] += __atomic_load_n(&v[i], __ATOMIC_RELAXED);
        }
    }
}

const char *pegadm_call_outcome_name(pegadm_call_outcome_t o)
{
    static const char *const names[PEGADM_CALL_OUTCOMES] = {
        "ok", "unreachable", "http_error", "bad_answer", "internal", "breaker_open"};
    return names[o];
}

const char *pegadm_lookup_result_name(pegadm_lookup_result_t r)
{
    static const char *const names[PEGADM_LOOKUP_RESULTS] = {"hit", "miss", "error"};
    return names[r];
}

const char *pegadm_upstream_call_name(pegadm_upstream_call_t c)
{
    return c == PEGADM_UPSTREAM_CREATE ? "create" : "private_data";
}
