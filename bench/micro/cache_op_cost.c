/* What one operation on a shared Redis costs the module's own client
 * (pegadm_redis over pegadm_netconn), over plain TCP or TLS: a GET of a
 * session-sized value and a SET of one, each timed alone, by one thread and
 * by several threads sharing one client as a child's threads do; the
 * connections the client opened (each one a connect, TLS handshake and
 * AUTH) per 1,000 operations; and, for comparison, the first operation of a
 * client that has no connection yet (what every operation would cost
 * without the pool). Prints one JSON object.
 *
 *   cache_op_cost host port tls ca_file server_name threads ops fresh
 *
 * Built and run by bench/cache_ops.py against build/libpegadm_core.a. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <apr_general.h>
#include <apr_strings.h>

#include "pegadm_redis.h"

#define VALUE_LEN   320 /* about a sealed session entry */
#define KEYS        1000
#define MAX_THREADS 16

static pegadm_redis_t *client;
static long ops_per_thread;
static unsigned char value[VALUE_LEN];

typedef struct {
    int index;
    double *get_us;
    double *set_us;
    long failed;
} worker_t;

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void key_of(char *key, apr_size_t size, long i)
{
    apr_snprintf(key, size, "pegadm:bench:{customer%06ld}", i % KEYS);
}

/* Each round: one SET, then one GET of another key, each timed alone. */
static void *worker(void *arg)
{
    worker_t *w = arg;
    apr_pool_t *p;
    unsigned char buf[VALUE_LEN * 2];
    char key[64];

    apr_pool_create(&p, NULL);
    for (long i = 0; i < ops_per_thread; i++) {
        apr_size_t len = sizeof(buf);
        double t0, t1, t2;

        key_of(key, sizeof(key), w->index * ops_per_thread + i);
        t0 = now_us();
        if (pegadm_redis_set(client, key, strlen(key), value, VALUE_LEN, apr_time_from_sec(60),
                             p) != APR_SUCCESS) {
            w->failed++;
        }
        t1 = now_us();
        key_of(key, sizeof(key), w->index * ops_per_thread + i + KEYS / 2);
        if (pegadm_redis_get(client, key, strlen(key), buf, &len, p) != APR_SUCCESS) {
            w->failed++;
        }
        t2 = now_us();
        w->set_us[i] = t1 - t0;
        w->get_us[i] = t2 - t1;
        apr_pool_clear(p);
    }
    apr_pool_destroy(p);
    return NULL;
}

/* Every key set once before the timed rounds, so each GET finds its value
 * (and the pool's first connection is open). */
static int prefill(void)
{
    apr_pool_t *p;
    char key[64];
    int rv = 0;

    apr_pool_create(&p, NULL);
    for (long i = 0; i < KEYS && rv == 0; i++) {
        key_of(key, sizeof(key), i);
        if (pegadm_redis_set(client, key, strlen(key), value, VALUE_LEN, apr_time_from_sec(600),
                             p) != APR_SUCCESS) {
            fprintf(stderr, "the server did not take %s\n", key);
            rv = 1;
        }
    }
    apr_pool_destroy(p);
    return rv;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void print_percentiles(const char *name, double *v, long n)
{
    qsort(v, (size_t)n, sizeof(*v), by_value);
    printf("\"%s\": {\"50\": %.1f, \"99\": %.1f, \"99.9\": %.1f, \"max\": %.1f}", name,
           v[n / 2], v[(long)(n * 0.99)], v[(long)(n * 0.999)], v[n - 1]);
}

static pegadm_redis_conf_t conf_of(char **argv, int threads)
{
    static const char *hosts[1];
    static char host[300];
    pegadm_redis_conf_t conf = {0};

    apr_snprintf(host, sizeof(host), "%s:%s", argv[1], argv[2]);
    hosts[0] = host;
    conf.hosts = hosts;
    conf.nhosts = 1;
    conf.tls = atoi(argv[3]);
    conf.ca_file = conf.tls ? argv[4] : NULL;
    conf.server_name = conf.tls ? argv[5] : NULL;
    conf.timeout = apr_time_from_sec(2);
    conf.pool_max = threads; /* as the module sizes it: no thread waits for a connection */
    conf.max_value = VALUE_LEN * 2;
    return conf;
}

/* The first GET of n clients that have no connection yet, each made,
 * used once and destroyed (closing its connection). */
static void fresh_clients(char **argv, long n)
{
    double *us = calloc((size_t)n, sizeof(*us));
    pegadm_redis_conf_t conf = conf_of(argv, 1);
    unsigned char buf[VALUE_LEN * 2];
    long failed = 0;

    for (long i = 0; i < n; i++) {
        apr_pool_t *p;
        pegadm_redis_t *r;
        const char *why = NULL;
        apr_size_t len = sizeof(buf);
        double t0;

        apr_pool_create(&p, NULL);
        if (pegadm_redis_create(&r, &conf, p, &why) != APR_SUCCESS) {
            fprintf(stderr, "client: %s\n", why ? why : "?");
            exit(1);
        }
        t0 = now_us();
        if (pegadm_redis_get(r, "pegadm:bench:{customer000001}", 29, buf, &len, p) !=
            APR_SUCCESS) {
            failed++;
        }
        us[i] = now_us() - t0;
        apr_pool_destroy(p);
    }
    printf(", \"fresh\": {\"clients\": %ld, \"failed\": %ld, ", n, failed);
    print_percentiles("first_get_us", us, n);
    printf("}");
    free(us);
}

int main(int argc, char **argv)
{
    apr_pool_t *pool;
    const char *why = NULL;
    pthread_t threads[MAX_THREADS];
    worker_t workers[MAX_THREADS];
    int nthreads;
    long total, failed = 0;
    double *get_us, *set_us, start, wall;
    pegadm_redis_conf_t conf;

    if (argc != 9) {
        fprintf(stderr, "usage: %s host port tls ca_file server_name threads ops fresh\n",
                argv[0]);
        return 2;
    }
    apr_initialize();
    apr_pool_create(&pool, NULL);
    nthreads = atoi(argv[6]);
    nthreads = nthreads < 1 ? 1 : nthreads > MAX_THREADS ? MAX_THREADS : nthreads;
    ops_per_thread = atol(argv[7]) / nthreads;
    total = ops_per_thread * nthreads;
    memset(value, 'x', sizeof(value));
    conf = conf_of(argv, nthreads);
    if (pegadm_redis_create(&client, &conf, pool, &why) != APR_SUCCESS) {
        fprintf(stderr, "client: %s\n", why ? why : "?");
        return 1;
    }
    if (prefill() != 0) {
        return 1;
    }
    get_us = calloc((size_t)total, sizeof(*get_us));
    set_us = calloc((size_t)total, sizeof(*set_us));
    start = now_us();
    for (int i = 0; i < nthreads; i++) {
        workers[i] = (worker_t){.index = i,
                                .get_us = get_us + i * ops_per_thread,
                                .set_us = set_us + i * ops_per_thread};
        pthread_create(&threads[i], NULL, worker, &workers[i]);
    }
    for (int i = 0; i < nthreads; i++) {
        pthread_join(threads[i], NULL);
        failed += workers[i].failed;
    }
    wall = now_us() - start;
    printf("{\"threads\": %d, \"operations\": %ld, \"failed\": %ld, \"seconds\": %.3f, "
           "\"handshakes\": %llu, ",
           nthreads, 2 * total, failed, wall / 1e6,
           (unsigned long long)pegadm_redis_handshakes(client));
    print_percentiles("get_us", get_us, total);
    printf(", ");
    print_percentiles("set_us", set_us, total);
    if (atol(argv[8]) > 0) {
        fresh_clients(argv, atol(argv[8]));
    }
    printf("}\n");
    apr_pool_destroy(pool);
    return 0;
}
