/*
 * icount.c: wpool_icount, the pool's cost per task in instructions, counted
 * by valgrind's callgrind (bench/icount.sh runs it). Instruction counts do
 * not move with the machine's noise the way times do, so a change to the
 * hot path can be judged here before it is timed.
 *
 * One phase per run (the argument), on a pool of 1 worker whose queue holds
 * every task, so that nothing ever waits for room:
 *
 *   submit   the pool paused, N wp_submit calls: the submitting side
 *   batch    the pool paused, N tasks through wp_submit_batch (chunks of 1024)
 *   worker   N queued tasks, then resume: the worker's side, from its first
 *            task to its last (N - 1 tasks' worth, the tasks' own few
 *            instructions included)
 *
 * Before a phase the worker is made to sleep waiting for the resume, as it
 * would be in a paused pool that had seen work: then no submit wakes it.
 * Counting is on only inside the phase (CALLGRIND_TOGGLE_COLLECT, with
 * valgrind's --collect-atstart=no). The toggle is per thread, so the worker
 * phase is switched by its own first and last task. The program prints how
 * many tasks the count covers; icount.sh divides. Run outside valgrind the
 * client requests do nothing and the program only checks that every task
 * ran.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "wpool.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <valgrind/callgrind.h>

#define N     65536u /* tasks per phase, a multiple of CHUNK */
#define CHUNK 1024u

static atomic_uint ran;

static void empty_task(void *arg)
{
    (void)arg;
}

/* The worker phase's tasks: the first starts the worker's count, the last
   stops it. relaxed: only the one worker writes it; main reads it after
   wp_wait. */
static void counted_task(void *arg)
{
    (void)arg;
    unsigned n = atomic_fetch_add_explicit(&ran, 1, memory_order_relaxed) + 1;
    if (n == 1 || n == N) CALLGRIND_TOGGLE_COLLECT;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

int main(int argc, char **argv)
{
    const char *phase = argc > 1 ? argv[1] : "";
    int submit = strcmp(phase, "submit") == 0, batch = strcmp(phase, "batch") == 0,
        worker = strcmp(phase, "worker") == 0;
    if (!submit && !batch && !worker) {
        fprintf(stderr, "usage: wpool_icount submit|batch|worker (see bench/icount.sh)\n");
        return 2;
    }
    wp_config cfg;
    wp_config_init(&cfg);
    cfg.workers = 1;
    cfg.queue_capacity = 2 * N; /* a power of two, as the default: no division per slot */
    wp_pool *p;
    if (wp_pool_create(&p, &cfg) != 0) return 3;
    static void *args[CHUNK];

    /* Warm up: the ring's pages touched, the code paths taken once. */
    for (unsigned i = 0; i < N; i++)
        if (wp_submit(p, empty_task, NULL) != 0) return 3;
    wp_wait(p);
    /* Paused, one task wakes the idle worker, which sees the pause and goes
       to sleep waiting for the resume (the sleep gives it the time to). */
    wp_pool_pause(p);
    if (wp_submit(p, empty_task, NULL) != 0) return 3;
    sleep_ms(50);

    if (submit) {
        CALLGRIND_TOGGLE_COLLECT;
        for (unsigned i = 0; i < N; i++)
            if (wp_submit(p, empty_task, NULL) != 0) return 3;
        CALLGRIND_TOGGLE_COLLECT;
    } else if (batch) {
        CALLGRIND_TOGGLE_COLLECT;
        for (unsigned i = 0; i < N; i += CHUNK)
            if (wp_submit_batch(p, empty_task, args, CHUNK) != 0) return 3;
        CALLGRIND_TOGGLE_COLLECT;
    } else {
        for (unsigned i = 0; i < N; i++)
            if (wp_submit(p, counted_task, NULL) != 0) return 3;
    }
    wp_pool_resume(p);
    wp_wait(p);

    wp_stats st;
    wp_pool_stats(p, &st);
    wp_pool_destroy(p);
    if (st.completed != 2ull * N + 1 || (worker && atomic_load(&ran) != N)) {
        fprintf(stderr, "wpool_icount: lost tasks (%llu completed)\n",
                (unsigned long long)st.completed);
        return 3;
    }
    printf("tasks %u\n", worker ? N - 1 : N);
    return 0;
}
