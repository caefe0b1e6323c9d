/*
 * C-Thread-Pool's API (compat/thpool) as its users call it: only thpool.h.
 * Each case is a promise of the header: the upstream behaviour where it is
 * kept, and the differences (backpressure, nothing global, nothing hangs).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "test.h"
#include "thpool.h"

/* Smaller sizes under valgrind (tests/run_memcheck.sh sets it). */
static unsigned many(unsigned n)
{
    return getenv("WPOOL_TEST_SMALL") ? n / 20 + 1 : n * test_scale();
}

static void count_job(void *arg)
{
    atomic_fetch_add_explicit((atomic_uint *)arg, 1, memory_order_relaxed);
}

/* A gate that jobs wait at until the test opens it. */
static atomic_uint gate_started;
static atomic_bool gate_open;

static void gate_job(void *arg)
{
    atomic_fetch_add(&gate_started, 1);
    while (!atomic_load(&gate_open)) test_sleep_ms(1);
    if (arg) atomic_fetch_add((atomic_uint *)arg, 1);
}

static void gate_reset(void)
{
    atomic_store(&gate_started, 0);
    atomic_store(&gate_open, false);
}

static void wait_started(unsigned n)
{
    while (atomic_load(&gate_started) < n) test_sleep_ms(1);
}

TEST(wait_with_no_work_returns)
{
    threadpool tp = thpool_init(4);
    ASSERT(tp != NULL);
    thpool_wait(tp);
    thpool_wait(tp);
    ASSERT_EQ(thpool_num_threads_working(tp), 0);
    thpool_destroy(tp);
}

TEST(pause_add_resume)
{
    atomic_uint ran = 0;
    threadpool tp = thpool_init(4);
    ASSERT(tp != NULL);
    thpool_pause(tp);
    for (int i = 0; i < 100; i++) ASSERT_OK(thpool_add_work(tp, count_job, &ran));
    test_sleep_ms(20);
    ASSERT_EQ(atomic_load(&ran), 0); /* paused: nothing starts */
    thpool_resume(tp);
    thpool_wait(tp);
    ASSERT_EQ(atomic_load(&ran), 100);
    thpool_destroy(tp);
}

TEST(working_count_while_jobs_run_and_after_wait)
{
    gate_reset();
    threadpool tp = thpool_init(4);
    ASSERT(tp != NULL);
    for (int i = 0; i < 4; i++) ASSERT_OK(thpool_add_work(tp, gate_job, NULL));
    wait_started(4);
    int working = thpool_num_threads_working(tp);
    atomic_store(&gate_open, true);
    thpool_wait(tp);
    int after = thpool_num_threads_working(tp);
    thpool_destroy(tp);
    ASSERT_EQ(working, 4);
    ASSERT_EQ(after, 0);
}

/* As in C-Thread-Pool: destroy waits for the running job, drops the queued
   ones, and returns. The gate opens only after destroy has begun. */
static void *open_gate_later(void *arg)
{
    (void)arg;
    test_sleep_ms(50);
    atomic_store(&gate_open, true);
    return NULL;
}

TEST(destroy_with_work_still_queued_returns)
{
    atomic_uint ran = 0;
    gate_reset();
    threadpool tp = thpool_init(1);
    ASSERT(tp != NULL);
    ASSERT_OK(thpool_add_work(tp, gate_job, &ran));
    for (int i = 0; i < 500; i++) ASSERT_OK(thpool_add_work(tp, count_job, &ran));
    wait_started(1);
    pthread_t t;
    ASSERT_OK(pthread_create(&t, NULL, open_gate_later, NULL));
    thpool_destroy(tp);
    unsigned after = atomic_load(&ran);
    pthread_join(t, NULL);
    ASSERT_EQ(after, 1); /* the running job finished; the 500 queued never ran */
}

/* C-Thread-Pool hangs here: its held threads never see the destroy. */
TEST(destroy_paused_pool_returns_and_runs_nothing_queued)
{
    atomic_uint ran = 0;
    threadpool tp = thpool_init(2);
    ASSERT(tp != NULL);
    thpool_pause(tp);
    for (int i = 0; i < 100; i++) ASSERT_OK(thpool_add_work(tp, count_job, &ran));
    thpool_destroy(tp);
    ASSERT_EQ(atomic_load(&ran), 0);
}

/* A binary tree of jobs, each adding its two children: more jobs than the
   queue holds, so jobs add to a full queue of their own pool. */
struct tree {
    threadpool tp;
    atomic_uint ran;
    atomic_uint add_failed;
};
static struct tree tree;

static void tree_job(void *arg)
{
    uintptr_t depth = (uintptr_t)arg;
    atomic_fetch_add(&tree.ran, 1);
    if (depth == 0) return;
    for (int i = 0; i < 2; i++)
        if (thpool_add_work(tree.tp, tree_job, (void *)(depth - 1)) != 0)
            atomic_fetch_add(&tree.add_failed, 1);
}

TEST(jobs_adding_jobs_are_waited_for)
{
    unsigned depth = getenv("WPOOL_TEST_SMALL") ? 10 : 14;
    tree.tp = thpool_init(3);
    ASSERT(tree.tp != NULL);
    atomic_store(&tree.ran, 0);
    atomic_store(&tree.add_failed, 0);
    ASSERT_OK(thpool_add_work(tree.tp, tree_job, (void *)(uintptr_t)depth));
    thpool_wait(tree.tp);
    unsigned ran = atomic_load(&tree.ran);
    thpool_destroy(tree.tp);
    ASSERT_EQ(atomic_load(&tree.add_failed), 0);
    ASSERT_EQ(ran, (1u << (depth + 1)) - 1);
}

/* Nothing is global: pausing or destroying pool a leaves pool b working. */
TEST(two_pools_one_paused_then_destroyed_while_the_other_works)
{
    atomic_uint ran_a = 0, ran_b = 0;
    unsigned n = many(20000);
    threadpool a = thpool_init(2), b = thpool_init(2);
    ASSERT(a != NULL && b != NULL);

    thpool_pause(a);
    for (int i = 0; i < 10; i++) ASSERT_OK(thpool_add_work(a, count_job, &ran_a));
    for (unsigned i = 0; i < n; i++) ASSERT_OK(thpool_add_work(b, count_job, &ran_b));
    thpool_wait(b); /* would hang if a's pause held b's threads */
    ASSERT_EQ(atomic_load(&ran_b), n);
    ASSERT_EQ(atomic_load(&ran_a), 0);

    thpool_resume(a);
    for (unsigned i = 0; i < n; i++) {
        ASSERT_OK(thpool_add_work(b, count_job, &ran_b));
        if (i == n / 2) thpool_destroy(a); /* while b has work queued and running */
    }
    thpool_wait(b);
    ASSERT_EQ(atomic_load(&ran_b), 2 * n);
    ASSERT_OK(thpool_add_work(b, count_job, &ran_b));
    thpool_wait(b);
    ASSERT_EQ(atomic_load(&ran_b), 2 * n + 1);
    thpool_destroy(b);
}

static void mark_job(void *arg)
{
    atomic_fetch_add_explicit((atomic_uchar *)arg, 1, memory_order_relaxed);
}

TEST(many_jobs_each_run_exactly_once)
{
    unsigned n = many(200000);
    atomic_uchar *seen = calloc(n, sizeof *seen);
    ASSERT(seen != NULL);
    threadpool tp = thpool_init(4);
    ASSERT(tp != NULL);
    for (unsigned i = 0; i < n; i++) ASSERT_OK(thpool_add_work(tp, mark_job, &seen[i]));
    thpool_wait(tp);
    thpool_destroy(tp);
    unsigned wrong = 0;
    for (unsigned i = 0; i < n; i++) wrong += atomic_load(&seen[i]) != 1;
    free(seen);
    ASSERT_EQ(wrong, 0);
}

/* Backpressure: with the pool paused, a producer adding far more jobs than
   the queue holds is held in thpool_add_work (C-Thread-Pool would queue
   them all). It can only finish after resume, and every job then runs. */
struct producer {
    threadpool tp;
    unsigned n;
    atomic_uint added, ran;
};

static void *produce(void *arg)
{
    struct producer *pr = arg;
    for (unsigned i = 0; i < pr->n; i++) {
        if (thpool_add_work(pr->tp, count_job, &pr->ran) != 0) break;
        atomic_fetch_add(&pr->added, 1);
    }
    return NULL;
}

TEST(add_work_waits_while_the_queue_is_full)
{
    struct producer pr = {.tp = thpool_init(2), .n = 100000};
    ASSERT(pr.tp != NULL);
    thpool_pause(pr.tp);
    pthread_t t;
    ASSERT_OK(pthread_create(&t, NULL, produce, &pr));
    unsigned before;
    do { /* until the producer is held: the count stops moving */
        before = atomic_load(&pr.added);
        test_sleep_ms(20);
    } while (atomic_load(&pr.added) != before);
    unsigned held_at = atomic_load(&pr.added);
    thpool_resume(pr.tp);
    pthread_join(t, NULL);
    thpool_wait(pr.tp);
    thpool_destroy(pr.tp);
    ASSERT_LT(held_at, pr.n);
    ASSERT_EQ(atomic_load(&pr.added), pr.n);
    ASSERT_EQ(atomic_load(&pr.ran), pr.n);
}

/* C-Thread-Pool deadlocks when a job waits for its own pool; here the call
   returns at once. */
static threadpool self_pool;
static atomic_bool self_wait_returned;

static void wait_on_own_pool(void *arg)
{
    (void)arg;
    thpool_wait(self_pool);
    atomic_store(&self_wait_returned, true);
}

TEST(wait_from_inside_a_job_returns)
{
    self_pool = thpool_init(2);
    ASSERT(self_pool != NULL);
    atomic_store(&self_wait_returned, false);
    ASSERT_OK(thpool_add_work(self_pool, wait_on_own_pool, NULL));
    thpool_wait(self_pool);
    thpool_destroy(self_pool);
    ASSERT(atomic_load(&self_wait_returned));
}

TEST(zero_threads_means_the_default_size)
{
    atomic_uint ran = 0;
    threadpool tp = thpool_init(0);
    ASSERT(tp != NULL);
    for (int i = 0; i < 10; i++) ASSERT_OK(thpool_add_work(tp, count_job, &ran));
    thpool_wait(tp);
    thpool_destroy(tp);
    ASSERT_EQ(atomic_load(&ran), 10);
    ASSERT(thpool_init(100000) == NULL); /* over wpool's limit */
}

TEST(null_arguments_are_harmless)
{
    atomic_uint ran = 0;
    ASSERT_EQ(thpool_add_work(NULL, count_job, &ran), -1);
    ASSERT_EQ(thpool_num_threads_working(NULL), 0);
    thpool_wait(NULL);
    thpool_pause(NULL);
    thpool_resume(NULL);
    thpool_destroy(NULL);
    threadpool tp = thpool_init(1);
    ASSERT(tp != NULL);
    ASSERT_EQ(thpool_add_work(tp, NULL, &ran), -1);
    thpool_destroy(tp);
}

TEST_MAIN()
