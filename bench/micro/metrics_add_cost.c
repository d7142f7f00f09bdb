/* What one counter add of the request path costs: pegadm_metrics_add on
 * a process's slot, by one thread, and by several threads of one process
 * adding to the same slot at once (the worst case: their cache line moves
 * between cores). Prints one JSON object.
 *
 * Built and run by bench/metrics_cost.py against build/libpegadm_core.a. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <apr_general.h>

#include "pegadm_metrics.h"

#define ROUNDS 20000000L

static pegadm_metrics_slot_t *slot;

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int alive(apr_uint32_t pid)
{
    return 0;
}

static void *adder(void *arg)
{
    for (long i = 0; i < ROUNDS; i++) {
        pegadm_metrics_add(slot, 0, PEGADM_M_LOOKUPS + PEGADM_LOOKUP_HIT);
    }
    return arg;
}

/* ns per add, with n threads adding ROUNDS times each */
static double ns_per_add(int n)
{
    pthread_t threads[8];
    double start = now_ns();

    for (int i = 0; i < n; i++) {
        pthread_create(&threads[i], NULL, adder, NULL);
    }
    for (int i = 0; i < n; i++) {
        pthread_join(threads[i], NULL);
    }
    return (now_ns() - start) / ROUNDS;
}

int main(void)
{
    apr_size_t size = pegadm_metrics_size(16, 4);
    pegadm_metrics_t *m = pegadm_metrics_init(malloc(size), size, 16, 4);
    pegadm_metrics_widget_totals_t t;
    double one, two;

    apr_initialize();
    pegadm_metrics_widget(m, "0b6c3d52-5b7a-4c53-9a55-2f6f3c2d8e11");
    slot = pegadm_metrics_claim_slot(m, 4711, alive);
    ns_per_add(1); /* warm-up */
    one = ns_per_add(1);
    two = ns_per_add(2);
    pegadm_metrics_totals(m, 0, &t);
    printf("{\"ns_per_add\": {\"one_thread\": %.2f, \"two_threads_same_slot\": %.2f}, "
           "\"adds\": %llu}\n",
           one, two, (unsigned long long)t.counters[PEGADM_M_LOOKUPS + PEGADM_LOOKUP_HIT]);
    return 0;
}
