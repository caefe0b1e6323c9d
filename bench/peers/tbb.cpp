/*
 * tbb.cpp: the oneTBB rows.
 *   TBB/task_group    one task_group::run per job, then wait
 *   TBB/parallel_for  parallel_for over blocked_range(0, jobs), auto partitioner
 * Both run in a task_arena of the requested concurrency (a global_control
 * lets TBB have that many threads even above the CPU count, for the sweep).
 * Threads hash with their own thread-local context.
 *
 * Allocations: TBB takes its task objects from libtbbmalloc when it finds
 * it (it does on Debian), which gets memory with mmap, not malloc: what
 * TBB allocates per task is then not in B/op and allocs/op.
 */
#include "harness.h"

#include <tbb/blocked_range.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>

static tbb::task_arena *arena;
static tbb::global_control *limit;
static unsigned nthreads;

static int setup(unsigned workers)
{
    nthreads = workers ? workers : bench_affinity_cpus();
    limit = new tbb::global_control(tbb::global_control::max_allowed_parallelism, nthreads);
    arena = new tbb::task_arena((int)nthreads);
    arena->initialize();
    return 0;
}

static void task_group_op(void)
{
    arena->execute([] {
        tbb::task_group tg;
        for (size_t i = 0; i < SEED_JOBS; i++) tg.run([i] { seed_job_tls(i); });
        tg.wait();
    });
}

static void parallel_for_op(void)
{
    arena->execute([] {
        tbb::parallel_for(tbb::blocked_range<size_t>(0, SEED_JOBS),
                          [](const tbb::blocked_range<size_t> &r) {
                              for (size_t i = r.begin(); i != r.end(); i++) seed_job_tls(i);
                          });
    });
}

static unsigned used(void)
{
    return nthreads;
}

static void teardown(void)
{
    delete arena;
    delete limit;
}

static const bench_row rows[] = {
    {"TBB/task_group", 1, setup, task_group_op, nullptr, used, teardown},
    {"TBB/parallel_for", 1, setup, parallel_for_op, nullptr, used, teardown},
};

int main(int argc, char **argv)
{
    return bench_child_main(argc, argv, rows, sizeof rows / sizeof rows[0]);
}
