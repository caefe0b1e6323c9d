/*
 * thpool.c: the C-Thread-Pool rows. The same source is built twice: against
 * Debian's cthreadpool-dev (its thpool.c compiled in, row "CThreadPool") and
 * against wpool's drop-in compat/thpool/thpool.h (row
 * "CThreadPool/wpool-thpool"), so the second row is exactly what a
 * C-Thread-Pool user gets by relinking.
 *
 * One thpool_add_work per job, then thpool_wait. Each pool thread hashes
 * with its own thread-local context (seed_job_tls), made on first use.
 */
#include "harness.h"
#include "thpool.h"

#include <stdint.h>

#ifndef PEER_ROW
#define PEER_ROW "CThreadPool"
#endif

static threadpool tp;
static unsigned nthreads;

static void job(void *arg)
{
    seed_job_tls((size_t)(uintptr_t)arg);
}

static int setup(unsigned workers)
{
    nthreads = workers ? workers : bench_affinity_cpus();
    tp = thpool_init((int)nthreads);
    return tp == NULL;
}

static void add(size_t i)
{
    if (thpool_add_work(tp, job, (void *)(uintptr_t)i) != 0)
        bench_fail(PEER_ROW ": thpool_add_work failed");
}

static void op(void)
{
    for (size_t i = 0; i < SEED_JOBS; i++) add(i);
    thpool_wait(tp);
}

static uint64_t flood(uint64_t n)
{
    uint64_t i = 0;
    for (; i < n; i++) {
        if (i % 4096 == 0 && bench_flood_expired()) break;
        add(i);
    }
    thpool_wait(tp);
    return i;
}

static unsigned used(void)
{
    return nthreads;
}

static void teardown(void)
{
    thpool_destroy(tp);
}

static const bench_row rows[] = {{PEER_ROW, 1, setup, op, flood, used, teardown}};

int main(int argc, char **argv)
{
    return bench_child_main(argc, argv, rows, 1);
}
