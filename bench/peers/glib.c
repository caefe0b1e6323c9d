/*
 * glib.c: the GThreadPool row. A pool of exclusive threads (started at once
 * and kept, like every other pool here); one g_thread_pool_push per job.
 * GThreadPool cannot wait for idle, so the op counts its jobs down: pending
 * is set before the pushes, each job decrements it (the atomic also
 * publishes the job's result), and the last one wakes the waiting caller.
 */
#include "harness.h"

#include <glib.h>
#include <stdint.h>

static GThreadPool *gp;
static unsigned nthreads;
static gint pending; /* jobs pushed and not finished; atomic */
static GMutex mu;
static GCond cond;
static gboolean done; /* protected by mu */

static void finish(void)
{
    g_mutex_lock(&mu);
    done = TRUE;
    g_cond_signal(&cond);
    g_mutex_unlock(&mu);
}

static void job(gpointer data, gpointer user)
{
    (void)user;
    seed_job_tls(GPOINTER_TO_SIZE(data) - 1); /* data is n + 1: NULL is not allowed */
    if (g_atomic_int_dec_and_test(&pending)) finish();
}

static int setup(unsigned workers)
{
    GError *err = NULL;
    nthreads = workers ? workers : bench_affinity_cpus();
    gp = g_thread_pool_new(job, NULL, (gint)nthreads, TRUE, &err);
    if (gp == NULL) {
        g_printerr("g_thread_pool_new: %s\n", err ? err->message : "?");
        return 1;
    }
    return 0;
}

static void push(size_t i)
{
    GError *err = NULL;
    if (!g_thread_pool_push(gp, GSIZE_TO_POINTER(i + 1), &err))
        bench_fail("g_thread_pool_push: %s", err ? err->message : "?");
}

static void wait_done(void)
{
    g_mutex_lock(&mu);
    while (!done) g_cond_wait(&cond, &mu);
    done = FALSE;
    g_mutex_unlock(&mu);
}

static void op(void)
{
    g_atomic_int_set(&pending, SEED_JOBS);
    for (size_t i = 0; i < SEED_JOBS; i++) push(i);
    wait_done();
}

static uint64_t flood(uint64_t n)
{
    if (n > G_MAXINT) n = G_MAXINT;
    g_atomic_int_set(&pending, (gint)n);
    uint64_t i = 0;
    for (; i < n; i++) {
        if (i % 4096 == 0 && bench_flood_expired()) break;
        push(i);
    }
    /* stopped early: take back the jobs never pushed; 0 left means the
       pushed ones are all done already and nobody else will call finish */
    if (i < n && g_atomic_int_add(&pending, -(gint)(n - i)) == (gint)(n - i)) finish();
    wait_done();
    return i;
}

static unsigned used(void)
{
    return nthreads;
}

static void teardown(void)
{
    g_thread_pool_free(gp, FALSE, TRUE);
}

static const bench_row rows[] = {{"GThreadPool", 1, setup, op, flood, used, teardown}};

int main(int argc, char **argv)
{
    return bench_child_main(argc, argv, rows, 1);
}
