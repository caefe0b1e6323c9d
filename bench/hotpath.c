/*
 * hotpath.c: wpool_hotpath, the pool's own costs, apart from any workload.
 *
 *   Empty    tasks that do nothing, from one producer, through wp_submit and
 *            wp_submit_batch (chunks of 1024), for 1, 2 and 4 workers:
 *            millions of tasks a second, submit to wp_wait.
 *   Wakeup   every worker asleep (the submitter waits 1 ms between samples,
 *            far past the 20 us the workers spin): time from wp_submit to
 *            the task's first instruction, p50 and p99 over the samples
 *            (the submitter sleeps in wp_wait meanwhile).
 *   Idle     CPU time the whole process used over 1 s with an idle pool.
 *   Nested   a recursive merge sort of 10,000,000 ints, split down to 8192
 *            elements, children started from inside tasks with groups, against
 *            the same sort on one thread: the speed-up.
 *
 * Each figure is the median of --rounds runs (default 5). Options:
 *   --rounds N  --samples N (Wakeup, default 10000)  --sort N (default 10M)
 *   --only Empty|Wakeup|Idle|Nested
 * It prints a table and writes DIR/hotpath.csv with --out DIR.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "wpool.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static wp_pool *make_pool(unsigned workers)
{
    wp_config cfg;
    wp_config_init(&cfg);
    cfg.workers = workers;
    cfg.name = "hotpath";
    wp_pool *p;
    int e = wp_pool_create(&p, &cfg);
    if (e) {
        fprintf(stderr, "hotpath: wp_pool_create: error %d\n", e);
        exit(3);
    }
    return p;
}

static FILE *csv;

static void report(const char *row, unsigned workers, const char *what, double value,
                   const char *unit, const char *target)
{
    printf("%-8s %7u   %-26s %12.2f %-10s %s\n", row, workers, what, value, unit, target);
    if (csv) fprintf(csv, "%s,%u,%s,%.3f,%s\n", row, workers, what, value, unit);
}

/* ---------------------------------------------------------------- Empty -- */

static void empty_task(void *arg)
{
    (void)arg;
}

#define EMPTY_TASKS 2097152u /* a multiple of EMPTY_CHUNK */
#define EMPTY_CHUNK 1024u

static void bench_empty(int rounds)
{
    static void *args[EMPTY_CHUNK];
    unsigned counts[] = {1, 2, 4};
    for (size_t k = 0; k < 3; k++) {
        wp_pool *p = make_pool(counts[k]);
        double single[64], batch[64];
        for (int r = 0; r < rounds; r++) {
            uint64_t t0 = now_ns();
            for (unsigned i = 0; i < EMPTY_TASKS; i++)
                if (wp_submit(p, empty_task, NULL) != 0) exit(3);
            wp_wait(p);
            single[r] = EMPTY_TASKS / ((now_ns() - t0) / 1e9) / 1e6;
            t0 = now_ns();
            for (unsigned i = 0; i < EMPTY_TASKS; i += EMPTY_CHUNK)
                if (wp_submit_batch(p, empty_task, args, EMPTY_CHUNK) != 0) exit(3);
            wp_wait(p);
            batch[r] = EMPTY_TASKS / ((now_ns() - t0) / 1e9) / 1e6;
        }
        wp_stats st;
        wp_pool_stats(p, &st);
        if (st.completed != 2ull * rounds * EMPTY_TASKS) {
            fprintf(stderr, "hotpath: Empty lost tasks: %llu of %llu (submitted %llu)\n",
                    (unsigned long long)st.completed, 2ull * rounds * EMPTY_TASKS,
                    (unsigned long long)st.submitted);
            exit(3);
        }
        report("Empty", counts[k], "wp_submit", median(single, rounds), "M tasks/s", ">= 30");
        report("Empty", counts[k], "wp_submit_batch", median(batch, rounds), "M tasks/s", ">= 100");
        wp_pool_destroy(p);
    }
}

/* --------------------------------------------------------------- Wakeup -- */

static _Atomic uint64_t woke_at;

static void stamp_task(void *arg)
{
    (void)arg;
    atomic_store_explicit(&woke_at, now_ns(), memory_order_release);
}

static void bench_wakeup(int samples)
{
    wp_pool *p = make_pool(0);
    uint64_t *lat = malloc(sizeof *lat * (size_t)samples);
    if (!lat) exit(3);
    for (int i = 0; i < samples; i++) {
        sleep_ns(1000000); /* every worker has spun out and sleeps */
        atomic_store_explicit(&woke_at, 0, memory_order_relaxed);
        uint64_t t0 = now_ns();
        if (wp_submit(p, stamp_task, NULL) != 0) exit(3);
        /* Sleep, not spin, while waiting: a spinning submitter would hold
           the CPU the woken worker may be placed on. */
        wp_wait(p);
        lat[i] = atomic_load_explicit(&woke_at, memory_order_acquire) - t0;
    }
    qsort(lat, (size_t)samples, sizeof *lat, cmp_u64);
    unsigned w = wp_pool_workers(p);
    report("Wakeup", w, "submit to start, p50", lat[samples / 2] / 1e3, "us", "<= 10");
    report("Wakeup", w, "submit to start, p99", lat[samples * 99 / 100] / 1e3, "us", "<= 50");
    free(lat);
    wp_pool_destroy(p);
}

/* ----------------------------------------------------------------- Idle -- */

static double cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec * 1e3 + ru.ru_utime.tv_usec / 1e3 + ru.ru_stime.tv_sec * 1e3 +
           ru.ru_stime.tv_usec / 1e3;
}

static void bench_idle(void)
{
    wp_pool *p = make_pool(0);
    for (int i = 0; i < 1000; i++) wp_submit(p, empty_task, NULL);
    wp_wait(p);
    double c0 = cpu_ms();
    sleep_ns(1000000000u);
    double used = cpu_ms() - c0;
    report("Idle", wp_pool_workers(p), "CPU over 1 s idle", used, "ms", "< 1");
    wp_pool_pause(p);
    c0 = cpu_ms();
    sleep_ns(1000000000u);
    used = cpu_ms() - c0;
    report("Idle", wp_pool_workers(p), "CPU over 1 s paused", used, "ms", "< 1");
    wp_pool_resume(p);
    wp_pool_destroy(p);
}

/* --------------------------------------------------------------- Nested -- */

enum { CUTOFF = 8192 };

typedef struct range {
    wp_pool *pool;
    int *a, *tmp;
    size_t n;
} range;

static void merge(int *a, int *tmp, size_t mid, size_t n)
{
    size_t i = 0, j = mid, k = 0;
    while (i < mid && j < n) tmp[k++] = a[j] < a[i] ? a[j++] : a[i++];
    while (i < mid) tmp[k++] = a[i++];
    memcpy(a, tmp, k * sizeof *a);
}

static void sort_serial(int *a, int *tmp, size_t n)
{
    if (n < 2) return;
    sort_serial(a, tmp, n / 2);
    sort_serial(a + n / 2, tmp + n / 2, n - n / 2);
    merge(a, tmp, n / 2, n);
}

/* The same recursion, the left half of every split above CUTOFF handed to
   the pool as a group member (started from inside tasks). */
static int sort_task(void *arg)
{
    range *r = arg;
    if (r->n <= CUTOFF) {
        sort_serial(r->a, r->tmp, r->n);
        return 0;
    }
    size_t half = r->n / 2;
    range left = {r->pool, r->a, r->tmp, half};
    range right = {r->pool, r->a + half, r->tmp + half, r->n - half};
    wp_group *g;
    if (wp_group_create(&g, r->pool, 1) != 0) return 1;
    int e = wp_group_go(g, sort_task, &left);
    int e2 = sort_task(&right);
    int e3 = wp_group_wait(g);
    wp_group_destroy(g);
    if (e || e2 || e3) return 1;
    merge(r->a, r->tmp, half, r->n);
    return 0;
}

static int nested_root_rc;

static void sort_root(void *arg)
{
    nested_root_rc = sort_task(arg);
}

static void fill(int *a, size_t n)
{
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        a[i] = (int)(x >> 33);
    }
}

static void check_sorted(const int *a, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (a[i - 1] > a[i]) {
            fprintf(stderr, "hotpath: Nested: not sorted at %zu\n", i);
            exit(3);
        }
}

static void bench_nested(int rounds, size_t n)
{
    int *a = malloc(n * sizeof *a), *tmp = malloc(n * sizeof *tmp);
    if (!a || !tmp) exit(3);
    wp_pool *p = make_pool(0);
    double serial[64], pooled[64], ratio[64];
    for (int r = 0; r < rounds; r++) {
        fill(a, n);
        uint64_t t0 = now_ns();
        sort_serial(a, tmp, n);
        serial[r] = (now_ns() - t0) / 1e6;
        check_sorted(a, n);
        fill(a, n);
        range all = {p, a, tmp, n};
        t0 = now_ns();
        /* The root runs as a task, so every split happens inside tasks. */
        if (wp_submit(p, sort_root, &all) != 0) exit(3);
        wp_wait(p);
        pooled[r] = (now_ns() - t0) / 1e6;
        if (nested_root_rc != 0) exit(3);
        check_sorted(a, n);
        ratio[r] = serial[r] / pooled[r];
    }
    unsigned w = wp_pool_workers(p);
    report("Nested", 1, "merge sort, one thread", median(serial, rounds), "ms", "");
    report("Nested", w, "merge sort, groups", median(pooled, rounds), "ms", "");
    report("Nested", w, "speed-up", median(ratio, rounds), "x", ">= 1.7");
    wp_pool_destroy(p);
    free(a);
    free(tmp);
}

int main(int argc, char **argv)
{
    int rounds = 5, samples = 10000;
    size_t sort_n = 10000000;
    const char *only = NULL, *out = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--rounds"))
            rounds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--samples"))
            samples = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--sort"))
            sort_n = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--only"))
            only = argv[i + 1];
        else if (!strcmp(argv[i], "--out"))
            out = argv[i + 1];
    }
    if (rounds < 1 || rounds > 64) rounds = 5;
    if (samples < 100) samples = 100;
    if (out) {
        char path[4096];
        snprintf(path, sizeof path, "%s/hotpath.csv", out);
        csv = fopen(path, "w");
        if (csv) fprintf(csv, "row,workers,what,value,unit\n");
    }
    printf("\nwpool hot path (median of %d rounds; %u CPUs usable)\n", rounds, wp_cpu_count());
    printf("%-8s %7s   %-26s %12s %-10s %s\n", "row", "workers", "what", "value", "unit", "target");
    if (!only || !strcmp(only, "Empty")) bench_empty(rounds);
    if (!only || !strcmp(only, "Wakeup")) bench_wakeup(samples);
    if (!only || !strcmp(only, "Idle")) bench_idle();
    if (!only || !strcmp(only, "Nested")) bench_nested(rounds, sort_n);
    if (csv) fclose(csv);
    return 0;
}
