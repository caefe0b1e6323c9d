/*
 * C-Thread-Pool's API (compat/thpool) as its users call it: only thpool.h.
 * Each case is a promise of the header: the upstream behaviour where it is
 * kept (add_work never waits, init returns with its threads alive, ...), and
 * the differences (opt-in backpressure, nothing global, nothing hangs).
 */
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/syscall.h>
#include <sys/wait.h>

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
    for (int i = 0; i < 30000; i++) ASSERT_OK(thpool_add_work(tp, count_job, &ran));
    thpool_destroy(tp); /* the ring's jobs and the overflow's */
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

/* A pool made with $WPOOL_THPOOL_BOUND set to bound (NULL: unset). */
static threadpool init_with_bound(int threads, const char *bound)
{
    if (bound)
        setenv("WPOOL_THPOOL_BOUND", bound, 1);
    else
        unsetenv("WPOOL_THPOOL_BOUND");
    threadpool tp = thpool_init(threads);
    unsetenv("WPOOL_THPOOL_BOUND");
    return tp;
}

/* The scheduler state of thread tid of this process ('R', 'S', ...). */
static char thread_state(pid_t tid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    FILE *f = fopen(path, "r");
    if (!f) return '?';
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *paren = strrchr(buf, ')'); /* "tid (comm) S ..." */
    return paren && paren[1] == ' ' ? paren[2] : '?';
}

/* Opt-in backpressure: with WPOOL_THPOOL_BOUND=64 and the pool paused, a
   producer adding more jobs than that is held in thpool_add_work with
   exactly 64 queued, asleep (C-Thread-Pool, and the default, would queue
   them all). It can only finish after resume, and every job then runs. */
struct producer {
    threadpool tp;
    unsigned n;
    atomic_uint added, ran;
    atomic_int tid;
    atomic_bool finished;
};

static void *produce(void *arg)
{
    struct producer *pr = arg;
    atomic_store(&pr->tid, (int)syscall(SYS_gettid));
    for (unsigned i = 0; i < pr->n; i++) {
        if (thpool_add_work(pr->tp, count_job, &pr->ran) != 0) break;
        atomic_fetch_add(&pr->added, 1);
    }
    atomic_store(&pr->finished, true);
    return NULL;
}

TEST(add_work_waits_while_the_queue_is_full)
{
    const unsigned bound = 64;
    struct producer pr = {.tp = init_with_bound(2, "64"), .n = bound + 100};
    ASSERT(pr.tp != NULL);
    thpool_pause(pr.tp);
    pthread_t t;
    ASSERT_OK(pthread_create(&t, NULL, produce, &pr));
    /* Until the producer is asleep with the queue full, or has finished. */
    while (!atomic_load(&pr.finished) &&
           !(atomic_load(&pr.added) == bound && atomic_load(&pr.tid) != 0 &&
             thread_state((pid_t)atomic_load(&pr.tid)) == 'S'))
        test_sleep_ms(1);
    bool finished_paused = atomic_load(&pr.finished);
    unsigned held_at = atomic_load(&pr.added), ran_paused = atomic_load(&pr.ran);
    thpool_resume(pr.tp);
    pthread_join(t, NULL);
    thpool_wait(pr.tp);
    unsigned ran = atomic_load(&pr.ran);
    thpool_destroy(pr.tp);
    ASSERT(!finished_paused);
    ASSERT_EQ(held_at, bound);
    ASSERT_EQ(ran_paused, 0);
    ASSERT_EQ(atomic_load(&pr.added), pr.n);
    ASSERT_EQ(ran, pr.n);
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

/* ---- What C-Thread-Pool users rely on, and the issue-17 hang. ---- */

/* Threads of this process whose name starts with prefix. */
static unsigned threads_named(const char *prefix)
{
    DIR *d = opendir("/proc/self/task");
    if (!d) return 0;
    unsigned n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char path[300], name[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue; /* exited meanwhile */
        if (fgets(name, sizeof name, f) && strncmp(name, prefix, strlen(prefix)) == 0) n++;
        fclose(f);
    }
    closedir(d);
    return n;
}

/* As C-Thread-Pool's: thpool_init returns once all its threads are alive. */
TEST(init_returns_with_every_thread_alive)
{
    unsigned rounds = many(50), short_of = 0;
    for (unsigned r = 0; r < rounds; r++) {
        /* The last round's threads, joined, may linger in /proc a moment
           (a pool an earlier failed case left behind fails this one). */
        for (unsigned ms = 0; threads_named("thread-pool-") != 0; ms++) {
            ASSERT_LT(ms, 10000);
            test_sleep_ms(1);
        }
        int want = 1 + (int)(r % 8);
        threadpool tp = thpool_init(want);
        ASSERT(tp != NULL);
        short_of += threads_named("thread-pool-") != (unsigned)want;
        thpool_destroy(tp);
    }
    ASSERT_EQ(short_of, 0);
}

/* Issue 17's reproducer: jobs are added under a lock each job takes, far
   more than the ring holds. C-Thread-Pool prints done=5000; a drop-in that
   waits for room in thpool_add_work hangs here for good. */
static pthread_mutex_t gil = PTHREAD_MUTEX_INITIALIZER;
static int gil_done;

static void gil_job(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&gil);
    gil_done++;
    pthread_mutex_unlock(&gil);
}

/* Adds n gil_jobs holding the gil, waits; returns how many adds failed. */
static unsigned add_under_the_gil(threadpool tp, unsigned n)
{
    unsigned failed = 0;
    gil_done = 0;
    pthread_mutex_lock(&gil);
    for (unsigned i = 0; i < n; i++) failed += thpool_add_work(tp, gil_job, NULL) != 0;
    pthread_mutex_unlock(&gil);
    thpool_wait(tp);
    return failed;
}

TEST(add_work_never_waits_under_a_lock_its_jobs_take)
{
    threadpool tp = thpool_init(4);
    ASSERT(tp != NULL);
    unsigned failed = add_under_the_gil(tp, 5000);
    int done = gil_done; /* thpool_wait returned: every job's write is seen */
    /* And with far more than the ring's 16384 slots, so that most go
       through the overflow while the workers wait for the lock. */
    unsigned failed_more = add_under_the_gil(tp, 50000);
    int done_more = gil_done;
    thpool_destroy(tp);
    ASSERT_EQ(failed, 0);
    ASSERT_EQ(done, 5000);
    ASSERT_EQ(failed_more, 0);
    ASSERT_EQ(done_more, 50000);
}

/* Only a positive number turns the bound on: anything else keeps the
   default, which passes the reproducer. */
TEST(invalid_bound_values_are_ignored)
{
    static const char *const bad[] = {"", "0", "-5", "abc", "12x", " 64"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        threadpool tp = init_with_bound(2, bad[i]);
        ASSERT(tp != NULL);
        unsigned failed = add_under_the_gil(tp, 20000);
        int done = gil_done;
        thpool_destroy(tp);
        ASSERT_EQ(failed, 0);
        ASSERT_EQ(done, 20000);
    }
}

TEST(a_bound_too_large_for_memory_makes_init_fail)
{
    ASSERT(init_with_bound(1, "99999999999999999999") == NULL);
}

/* The bound holds a producer back, but with no lock held it makes room
   as the jobs run, and everything finishes. */
TEST(bounded_pool_runs_everything_when_no_lock_is_held)
{
    atomic_uint ran = 0;
    threadpool tp = init_with_bound(4, "16");
    ASSERT(tp != NULL);
    for (int i = 0; i < 5000; i++) ASSERT_OK(thpool_add_work(tp, count_job, &ran));
    thpool_wait(tp);
    unsigned after_wait = atomic_load(&ran);
    thpool_destroy(tp);
    ASSERT_EQ(after_wait, 5000);
}

/* With one thread, jobs start in the order they were added: the ring's
   16384 first, then the overflow's, then those added once it drained. */
static atomic_uint fifo_next;
static unsigned *fifo_seen;

static void fifo_job(void *arg)
{
    fifo_seen[atomic_fetch_add_explicit(&fifo_next, 1, memory_order_relaxed)] =
        (unsigned)(uintptr_t)arg;
}

TEST(jobs_start_in_the_order_they_were_added)
{
    unsigned n = many(20000);
    fifo_seen = calloc(2 * n, sizeof *fifo_seen);
    ASSERT(fifo_seen != NULL);
    atomic_store(&fifo_next, 0);
    threadpool tp = thpool_init(1);
    ASSERT(tp != NULL);
    thpool_pause(tp); /* everything after the first 16384 goes to the overflow */
    for (unsigned i = 0; i < n; i++) ASSERT_OK(thpool_add_work(tp, fifo_job, (void *)(uintptr_t)i));
    thpool_resume(tp);
    for (unsigned i = n; i < 2 * n; i++) /* while the overflow drains */
        ASSERT_OK(thpool_add_work(tp, fifo_job, (void *)(uintptr_t)i));
    thpool_wait(tp);
    thpool_destroy(tp);
    unsigned out_of_order = 0;
    for (unsigned i = 0; i < 2 * n; i++) out_of_order += fifo_seen[i] != i;
    free(fifo_seen);
    ASSERT_EQ(atomic_load(&fifo_next), 2 * n);
    ASSERT_EQ(out_of_order, 0);
}

/* As C-Thread-Pool's pause_resume: a paused pool starts nothing, however
   many jobs are added (here more than the ring holds), until resumed. */
TEST(pause_holds_back_jobs_beyond_the_ring)
{
    atomic_uint ran = 0;
    unsigned n = getenv("WPOOL_TEST_SMALL") ? 5000 : 20000;
    threadpool tp = thpool_init(4);
    ASSERT(tp != NULL);
    thpool_pause(tp);
    for (unsigned i = 0; i < n; i++) ASSERT_OK(thpool_add_work(tp, count_job, &ran));
    test_sleep_ms(20);
    unsigned ran_paused = atomic_load(&ran);
    int working_paused = thpool_num_threads_working(tp);
    thpool_resume(tp);
    thpool_wait(tp);
    unsigned ran_after = atomic_load(&ran);
    thpool_destroy(tp);
    ASSERT_EQ(ran_paused, 0);
    ASSERT_EQ(working_paused, 0);
    ASSERT_EQ(ran_after, n);
}

/* As C-Thread-Pool's wait test: thpool_wait on a paused pool with queued
   jobs (overflow too) returns once it was resumed and they all ran. */
static void *resume_later(void *arg)
{
    test_sleep_ms(30);
    thpool_resume(arg);
    return NULL;
}

TEST(wait_on_a_paused_pool_returns_after_resume_with_everything_run)
{
    atomic_uint ran = 0;
    unsigned n = getenv("WPOOL_TEST_SMALL") ? 5000 : 20000;
    threadpool tp = thpool_init(2);
    ASSERT(tp != NULL);
    thpool_pause(tp);
    for (unsigned i = 0; i < n; i++) ASSERT_OK(thpool_add_work(tp, count_job, &ran));
    pthread_t t;
    ASSERT_OK(pthread_create(&t, NULL, resume_later, tp));
    thpool_wait(tp);
    unsigned after_wait = atomic_load(&ran);
    pthread_join(t, NULL);
    thpool_destroy(tp);
    ASSERT_EQ(after_wait, n);
}

/* As C-Thread-Pool's api test: working counts the busy threads only. */
TEST(working_counts_only_the_threads_running_a_job)
{
    gate_reset();
    threadpool tp = thpool_init(10);
    ASSERT(tp != NULL);
    int idle = thpool_num_threads_working(tp);
    for (int i = 0; i < 4; i++) ASSERT_OK(thpool_add_work(tp, gate_job, NULL));
    wait_started(4);
    int working = thpool_num_threads_working(tp);
    atomic_store(&gate_open, true);
    thpool_wait(tp);
    int after = thpool_num_threads_working(tp);
    thpool_destroy(tp);
    ASSERT_EQ(idle, 0);
    ASSERT_EQ(working, 4);
    ASSERT_EQ(after, 0);
}

/* As in C-Thread-Pool, destroy drops what is queued, the overflow too (and
   frees it: tests/run_memcheck.sh finds no leak). */
TEST(destroy_drops_queued_jobs_in_the_overflow)
{
    atomic_uint ran = 0;
    gate_reset();
    threadpool tp = thpool_init(1);
    ASSERT(tp != NULL);
    ASSERT_OK(thpool_add_work(tp, gate_job, &ran));
    for (int i = 0; i < 30000; i++) ASSERT_OK(thpool_add_work(tp, count_job, &ran));
    wait_started(1);
    pthread_t t;
    ASSERT_OK(pthread_create(&t, NULL, open_gate_later, NULL));
    thpool_destroy(tp);
    unsigned after = atomic_load(&ran);
    pthread_join(t, NULL);
    ASSERT_EQ(after, 1); /* the running job finished; the 30000 queued never ran */
}

/* A flood from one producer: the overflow grows to about n/2 jobs while the
   pool is paused, then drains while the rest are added. Every job runs
   exactly once. */
TEST(flood_of_two_million_jobs_runs_each_once)
{
    unsigned n = many(2000000);
    atomic_uchar *seen = calloc(n, sizeof *seen);
    ASSERT(seen != NULL);
    threadpool tp = thpool_init(4);
    ASSERT(tp != NULL);
    thpool_pause(tp);
    unsigned failed = 0;
    for (unsigned i = 0; i < n; i++) {
        if (i == n / 2) thpool_resume(tp);
        failed += thpool_add_work(tp, mark_job, &seen[i]) != 0;
    }
    thpool_wait(tp);
    unsigned wrong = 0;
    for (unsigned i = 0; i < n; i++) wrong += atomic_load(&seen[i]) != 1;
    thpool_destroy(tp);
    free(seen);
    ASSERT_EQ(failed, 0);
    ASSERT_EQ(wrong, 0);
}

/* Several producers at once, two job functions interleaved (the overflow
   goes back into the ring in runs of one function): each job runs once. */
static atomic_uint marked_too;

static void mark_job_too(void *arg)
{
    atomic_fetch_add_explicit((atomic_uchar *)arg, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&marked_too, 1, memory_order_relaxed);
}

struct flood_part {
    threadpool tp;
    atomic_uchar *seen;
    unsigned n;
    atomic_uint failed;
};

static void *flood_some(void *arg)
{
    struct flood_part *f = arg;
    for (unsigned i = 0; i < f->n; i++)
        if (thpool_add_work(f->tp, (i / 3) % 2 ? mark_job : mark_job_too, &f->seen[i]) != 0)
            atomic_fetch_add(&f->failed, 1);
    return NULL;
}

TEST(producers_at_once_each_job_runs_once)
{
    enum { PRODUCERS = 4 };
    unsigned n = many(100000);
    atomic_uchar *seen = calloc((size_t)n * PRODUCERS, sizeof *seen);
    ASSERT(seen != NULL);
    atomic_store(&marked_too, 0);
    threadpool tp = thpool_init(3);
    ASSERT(tp != NULL);
    struct flood_part parts[PRODUCERS];
    pthread_t t[PRODUCERS];
    for (int k = 0; k < PRODUCERS; k++) {
        parts[k] = (struct flood_part){.tp = tp, .seen = seen + (size_t)k * n, .n = n};
        ASSERT_OK(pthread_create(&t[k], NULL, flood_some, &parts[k]));
    }
    unsigned failed = 0;
    for (int k = 0; k < PRODUCERS; k++) {
        pthread_join(t[k], NULL);
        failed += atomic_load(&parts[k].failed);
    }
    thpool_wait(tp);
    unsigned wrong = 0;
    for (size_t i = 0; i < (size_t)n * PRODUCERS; i++) wrong += atomic_load(&seen[i]) != 1;
    unsigned too = 0;
    for (unsigned i = 0; i < n; i++) too += (i / 3) % 2 == 0;
    thpool_destroy(tp);
    free(seen);
    ASSERT_EQ(failed, 0);
    ASSERT_EQ(wrong, 0);
    ASSERT_EQ(atomic_load(&marked_too), too * PRODUCERS);
}

/* fork(): a child that inherited a pool, mid-overflow (feeder started,
   jobs still in the overflow) or idle, has none of its threads. There
   thpool_add_work returns -1 (no job is queued that nothing would run),
   and thpool_wait and thpool_destroy return; the parent's pool is
   untouched. The child runs under an alarm: a hang fails, not stalls. */
static threadpool forked_pool;

static void child_uses_inherited_pool(void)
{
    alarm(20);
    atomic_uint ran = 0;
    int rc = thpool_add_work(forked_pool, count_job, &ran);
    thpool_wait(forked_pool);
    thpool_destroy(forked_pool);
    _exit(rc == -1 && atomic_load(&ran) == 0 ? 0 : 1);
}

TEST(a_child_of_fork_gets_minus_one_and_destroy_returns)
{
    for (int mid_overflow = 0; mid_overflow < 2; mid_overflow++) {
        atomic_uint ran = 0;
        unsigned n = 30000;
        forked_pool = thpool_init(2);
        ASSERT(forked_pool != NULL);
        thpool_pause(forked_pool); /* past the ring's 16384: the feeder starts */
        for (unsigned i = 0; i < n; i++) ASSERT_OK(thpool_add_work(forked_pool, count_job, &ran));
        if (!mid_overflow) {
            thpool_resume(forked_pool);
            thpool_wait(forked_pool);
        }
        fflush(NULL);
        pid_t pid = fork();
        ASSERT(pid >= 0);
        if (pid == 0) child_uses_inherited_pool();
        int st = 0;
        while (waitpid(pid, &st, 0) < 0) {
        }
        thpool_resume(forked_pool);
        thpool_wait(forked_pool);
        unsigned after = atomic_load(&ran);
        thpool_destroy(forked_pool);
        ASSERT(WIFEXITED(st));
        ASSERT_EQ(WEXITSTATUS(st), 0);
        ASSERT_EQ(after, n);
    }
}

TEST_MAIN()
