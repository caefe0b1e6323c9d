/*
 * openmp.c: the OpenMP rows (gcc's libgomp).
 *   OpenMP/task  one thread creates an explicit task per job inside a
 *                parallel region; the region's closing barrier waits for them
 *   OpenMP/for   `parallel for` over the jobs, static schedule
 * libgomp keeps its threads between regions, so the team is made once, in
 * setup. Threads hash with their own thread-local context.
 */
#include "harness.h"

#include <omp.h>
#include <stdint.h>

static int nthreads;

static int setup(unsigned workers)
{
    nthreads = (int)(workers ? workers : bench_affinity_cpus());
#pragma omp parallel num_threads(nthreads)
    seed_tls_ctx(); /* start the team, make each thread's context */
    return 0;
}

static void task_op(void)
{
#pragma omp parallel num_threads(nthreads)
#pragma omp single
    for (size_t i = 0; i < SEED_JOBS; i++) {
#pragma omp task firstprivate(i)
        seed_job_tls(i);
    }
}

static void for_op(void)
{
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (size_t i = 0; i < SEED_JOBS; i++) seed_job_tls(i);
}

static unsigned used(void)
{
    return (unsigned)nthreads;
}

static const bench_row rows[] = {
    {"OpenMP/task", 1, setup, task_op, NULL, used, NULL},
    {"OpenMP/for", 1, setup, for_op, NULL, used, NULL},
};

int main(int argc, char **argv)
{
    return bench_child_main(argc, argv, rows, sizeof rows / sizeof rows[0]);
}
