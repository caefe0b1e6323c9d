/*
 * seed.c: wpool_bench, the seed benchmark's own rows and its runner.
 *
 * Rows (one op = SEED_JOBS jobs, see harness.h):
 *   Serial                 one thread, a plain loop: the baseline
 *   UnboundedThreads       one pthread per job, all created, then all joined
 *                          (the C counterpart of one goroutine per task)
 *   SplitThreads           no pool: as many long-lived pthreads as the pool
 *                          has workers, each runs a fixed contiguous share
 *                          of the jobs between two barriers. What this many
 *                          threads can do on this machine with no queue at
 *                          all: the ceiling for the pool rows below
 *   WorkerPool             wpool, one wp_submit per job, then wp_wait
 *   WorkerPoolBatch        wpool, one wp_submit_batch of all jobs, then wp_wait
 *   WorkerPoolParallelFor  wp_parallel_for over the jobs (grain chosen by
 *                          wpool); only when the build found wp_parallel_for
 *
 * The pool is made once per process, outside the timed region, and reused by
 * every op; each worker makes its EVP_MD_CTX in worker_start and tasks find
 * it through wp_worker_id(). Run without --row/--list the program is the
 * runner (runner.c) that runs every row in child processes.
 */
#include "harness.h"
#include "runner.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "wpool.h"

/* ---------------------------------------------------------------- Serial -- */

static EVP_MD_CTX *serial_ctx;

static int serial_setup(unsigned workers)
{
    (void)workers;
    serial_ctx = seed_ctx_new();
    return 0;
}

static void serial_op(void)
{
    for (size_t i = 0; i < SEED_JOBS; i++) seed_job(i, serial_ctx);
}

static unsigned one_thread(void)
{
    return 1;
}

static void serial_teardown(void)
{
    seed_ctx_free(serial_ctx);
}

/* ------------------------------------------------------ UnboundedThreads -- */

/* Each thread makes its own EVP_MD_CTX (seed_job_tls): a thread that lives
   for one job has nothing to reuse, as a goroutine per task has nothing. */
static pthread_t tids[SEED_JOBS];

static void *thread_job(void *arg)
{
    seed_job_tls((size_t)(uintptr_t)arg);
    return NULL;
}

static void threads_op(void)
{
    for (size_t i = 0; i < SEED_JOBS; i++) {
        int e = pthread_create(&tids[i], NULL, thread_job, (void *)(uintptr_t)i);
        if (e != 0)
            bench_fail("UnboundedThreads: pthread_create: error %d after %zu threads", e, i);
    }
    for (size_t i = 0; i < SEED_JOBS; i++) pthread_join(tids[i], NULL);
}

/* Flood: a thread per job, at most FLOOD_LIVE alive at once (the oldest is
   joined before the next is made), so that the machine survives. */
#define FLOOD_LIVE 1000

static unsigned threads_used(void)
{
    return bench_is_flood() ? FLOOD_LIVE : SEED_JOBS;
}

static uint64_t threads_flood(uint64_t n)
{
    static pthread_t live[FLOOD_LIVE];
    uint64_t i = 0;
    for (; i < n; i++) {
        if (i % 1024 == 0 && bench_flood_expired()) break;
        if (i >= FLOOD_LIVE) pthread_join(live[i % FLOOD_LIVE], NULL);
        int e = pthread_create(&live[i % FLOOD_LIVE], NULL, thread_job, (void *)(uintptr_t)i);
        if (e != 0) bench_fail("UnboundedThreads flood: pthread_create: error %d", e);
    }
    for (uint64_t j = i > FLOOD_LIVE ? i - FLOOD_LIVE : 0; j < i; j++)
        pthread_join(live[j % FLOOD_LIVE], NULL);
    return i;
}

/* ---------------------------------------------------------- SplitThreads -- */

static unsigned split_n;
static pthread_t split_tids[WP_MAX_WORKERS];
static pthread_barrier_t split_go, split_done; /* split_n threads + the caller */
static int split_quit;                         /* written before a split_go wait */

static void *split_thread(void *arg)
{
    size_t id = (size_t)(uintptr_t)arg;
    EVP_MD_CTX *ctx = seed_ctx_new();
    size_t lo = SEED_JOBS * id / split_n, hi = SEED_JOBS * (id + 1) / split_n;
    for (;;) {
        pthread_barrier_wait(&split_go);
        if (split_quit) break;
        for (size_t i = lo; i < hi; i++) seed_job(i, ctx);
        pthread_barrier_wait(&split_done);
    }
    seed_ctx_free(ctx);
    return NULL;
}

static int split_setup(unsigned workers)
{
    /* The pool's default: $WPOOL_WORKERS, else wp_cpu_count(). */
    const char *env = getenv("WPOOL_WORKERS");
    split_n = workers ? workers : env && atoi(env) > 0 ? (unsigned)atoi(env) : wp_cpu_count();
    if (split_n > WP_MAX_WORKERS) split_n = WP_MAX_WORKERS;
    pthread_barrier_init(&split_go, NULL, split_n + 1);
    pthread_barrier_init(&split_done, NULL, split_n + 1);
    for (unsigned i = 0; i < split_n; i++) {
        int e = pthread_create(&split_tids[i], NULL, split_thread, (void *)(uintptr_t)i);
        if (e != 0) {
            fprintf(stderr, "bench: SplitThreads: pthread_create: error %d\n", e);
            exit(1);
        }
    }
    return 0;
}

static void split_op(void)
{
    pthread_barrier_wait(&split_go);
    pthread_barrier_wait(&split_done);
}

static unsigned split_used(void)
{
    return split_n;
}

static void split_teardown(void)
{
    split_quit = 1;
    pthread_barrier_wait(&split_go); /* the barrier orders split_quit */
    for (unsigned i = 0; i < split_n; i++) pthread_join(split_tids[i], NULL);
    pthread_barrier_destroy(&split_go);
    pthread_barrier_destroy(&split_done);
}

/* ----------------------------------------------------------------- wpool -- */

static wp_pool *pool;
static EVP_MD_CTX *worker_ctx[WP_MAX_WORKERS]; /* [id] written by worker id only */
static void *batch_args[SEED_JOBS];

static void worker_start(unsigned id, void *user)
{
    (void)user;
    worker_ctx[id] = seed_ctx_new();
}

static void worker_stop(unsigned id, void *user)
{
    (void)user;
    seed_ctx_free(worker_ctx[id]);
    worker_ctx[id] = NULL;
}

/* The worker's context; a thread-local one off the workers (a task run on
   the caller, or wp_parallel_for's share of the caller's thread). */
static EVP_MD_CTX *my_ctx(void)
{
    int id = wp_worker_id();
    return id >= 0 ? worker_ctx[id] : seed_tls_ctx();
}

static void pool_task(void *arg)
{
    seed_job((size_t)(uintptr_t)arg, my_ctx());
}

static int pool_setup(unsigned workers)
{
    wp_config cfg;
    wp_config_init(&cfg);
    cfg.workers = workers; /* 0: $WPOOL_WORKERS, else wp_cpu_count() */
    cfg.name = "bench";
    if (getenv("XCAP")) cfg.queue_capacity = (size_t)atoi(getenv("XCAP"));
    cfg.worker_start = worker_start;
    cfg.worker_stop = worker_stop;
    int e = wp_pool_create(&pool, &cfg);
    if (e != 0) {
        fprintf(stderr, "bench: wp_pool_create: error %d\n", e);
        return e;
    }
    for (size_t i = 0; i < SEED_JOBS; i++) batch_args[i] = (void *)(uintptr_t)i;
    return 0;
}

static unsigned pool_workers(void)
{
    return wp_pool_workers(pool);
}

static void pool_teardown(void)
{
    wp_pool_destroy(pool);
}

static void pool_wait(void)
{
    int e = wp_wait(pool);
    if (e != 0) bench_fail("wp_wait: error %d", e);
}

static void pool_op(void)
{
    for (size_t i = 0; i < SEED_JOBS; i++) {
        int e = wp_submit(pool, pool_task, (void *)(uintptr_t)i);
        if (e != 0) bench_fail("wp_submit: error %d", e);
    }
    pool_wait();
}

static void batch_op(void)
{
    int e = wp_submit_batch(pool, pool_task, batch_args, SEED_JOBS);
    if (e != 0) bench_fail("wp_submit_batch: error %d", e);
    pool_wait();
}

static uint64_t pool_flood(uint64_t n)
{
    uint64_t i = 0;
    for (; i < n; i++) {
        if (i % 4096 == 0 && bench_flood_expired()) break;
        int e = wp_submit(pool, pool_task, (void *)(uintptr_t)i);
        if (e != 0) bench_fail("wp_submit: error %d", e);
    }
    pool_wait();
    return i;
}

#ifdef WPOOL_BENCH_HAVE_PARALLEL_FOR
static void pfor_body(size_t lo, size_t hi, void *arg)
{
    (void)arg;
    EVP_MD_CTX *ctx = my_ctx();
    for (size_t i = lo; i < hi; i++) seed_job(i, ctx);
}

static void pfor_op(void)
{
    int e = wp_parallel_for(pool, 0, SEED_JOBS, 0, pfor_body, NULL);
    if (e != 0) bench_fail("wp_parallel_for: error %d", e);
}
#endif

static const bench_row rows[] = {
    {"Serial", 0, serial_setup, serial_op, NULL, one_thread, serial_teardown},
    {"UnboundedThreads", 0, NULL, threads_op, threads_flood, threads_used, NULL},
    {"SplitThreads", 1, split_setup, split_op, NULL, split_used, split_teardown},
    {"WorkerPool", 1, pool_setup, pool_op, pool_flood, pool_workers, pool_teardown},
    {"WorkerPoolBatch", 1, pool_setup, batch_op, NULL, pool_workers, pool_teardown},
#ifdef WPOOL_BENCH_HAVE_PARALLEL_FOR
    {"WorkerPoolParallelFor", 1, pool_setup, pfor_op, NULL, pool_workers, pool_teardown},
#endif
};

int main(int argc, char **argv)
{
    size_t nrows = sizeof rows / sizeof rows[0];
    if (bench_is_child(argc, argv)) return bench_child_main(argc, argv, rows, nrows);
    return runner_main(argc, argv);
}
