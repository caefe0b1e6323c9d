/*
 * Blocking work: elastic pools (max_workers > workers) replace a worker that
 * blocks, with wp_blocking_begin/end or without them (the monitor sees it
 * asleep in the kernel); tasks that never block run at most `workers` at
 * once; resize; worker ids and hooks across threads that come and go.
 * Counts only, never durations (a barrier's timeout only ends a test that
 * would otherwise hang).
 */
#include "helpers.h"
#include "pool.h"
#include "pool.h"
#include "wpool.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

/* Under valgrind every thread but one sleeps in the kernel, waiting for
   valgrind's lock: the monitor rightly sees them blocked. Checks that a
   pool without hints never grows are left out there (said once). */
static bool under_valgrind(void)
{
    return RUNNING_ON_VALGRIND;
}

static wp_pool *make_elastic(unsigned workers, unsigned max, uint64_t idle_ns)
{
    wp_config cfg;
    wp_config_init(&cfg);
    cfg.workers = workers;
    cfg.max_workers = max;
    cfg.idle_timeout_ns = idle_ns;
    cfg.queue_capacity = 1024;
    wp_pool *p = NULL;
    return wp_pool_create(&p, &cfg) == 0 ? p : NULL;
}

/* A barrier that gives up after a while (so a pool that cannot run all its
   parties fails the test instead of hanging it). */
typedef struct barrier {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned parties, arrived;
    atomic_int passed, gave_up;
    bool hint;
    unsigned timeout_s;
} barrier;

static void barrier_init(barrier *b, unsigned parties, bool hint, unsigned timeout_s)
{
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    b->parties = parties;
    b->arrived = 0;
    atomic_init(&b->passed, 0);
    atomic_init(&b->gave_up, 0);
    b->hint = hint;
    b->timeout_s = timeout_s;
}

static void barrier_destroy(barrier *b)
{
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
}

/* The pool whose state a party that times out prints (what held the
   others back), or NULL. */
static wp_pool *dump_pool;

static void dump_state(wp_pool *p)
{
    fprintf(stderr, "  timed out: limit %d holders %d spares %u back %u threads %u stolen %llu\n",
            atomic_load(&p->limit), atomic_load(&p->holders), atomic_load(&p->nspare),
            atomic_load(&p->nback), atomic_load(&p->threads),
            (unsigned long long)wp__pool_stolen(p));
    fprintf(stderr, "  ring: produced %llu consumed %llu; spinning %u, work_ev waiters %u\n",
            (unsigned long long)wp__ring_produced(&p->ring),
            (unsigned long long)wp__ring_consumed(&p->ring), atomic_load(&p->spinning),
            (unsigned)atomic_load(&p->work_ev.waiters));
    for (unsigned i = 0; i < atomic_load(&p->used); i++) {
        wp__worker *w = &p->workers[i];
        fprintf(stderr, "  worker %u: next %llu end %llu seen %llu lock %u active %u spare %u\n", i,
                (unsigned long long)atomic_load(&w->run_next),
                (unsigned long long)atomic_load(&w->run_end),
                (unsigned long long)atomic_load(&w->seen_next), atomic_load(&w->run_lock),
                atomic_load(&w->active), atomic_load(&w->spare));
    }
}

static void barrier_task(void *arg)
{
    barrier *b = arg;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += b->timeout_s;
    if (b->hint) wp_blocking_begin();
    pthread_mutex_lock(&b->mu);
    b->arrived++;
    pthread_cond_broadcast(&b->cv);
    int rc = 0;
    while (b->arrived < b->parties && rc == 0) rc = pthread_cond_timedwait(&b->cv, &b->mu, &until);
    bool ok = b->arrived >= b->parties;
    pthread_mutex_unlock(&b->mu);
    if (!ok && dump_pool) dump_state(dump_pool);
    if (b->hint) wp_blocking_end();
    atomic_fetch_add(ok ? &b->passed : &b->gave_up, 1);
}

static void barrier_round(bool hint)
{
    const unsigned workers = 2, k = 6;
    wp_pool *p = make_elastic(workers, 64, 0);
    ASSERT(p != NULL);
    barrier b;
    barrier_init(&b, workers + k, hint, 60);
    for (unsigned i = 0; i < workers + k; i++) ASSERT_OK(wp_submit(p, barrier_task, &b));
    ASSERT_OK(wp_wait(p));
    ASSERT_EQ(atomic_load(&b.passed), (int)(workers + k));
    ASSERT_EQ(atomic_load(&b.gave_up), 0);
    wp_stats st;
    wp_pool_stats(p, &st);
    ASSERT_GE(st.threads, workers + k);
    ASSERT_LE(st.threads, 64);
    ASSERT_EQ(st.max_workers, 64);
    ASSERT_EQ(st.workers, workers);
    wp_pool_destroy(p);
    barrier_destroy(&b);
}

TEST(tasks_blocking_on_a_barrier_all_run_with_hints)
{
    barrier_round(true);
}

TEST(tasks_blocking_on_a_barrier_all_run_without_hints)
{
    barrier_round(false);
}

/* The same barrier deadlocks a fixed pool of `workers`: only they ever
   arrive, until the barrier gives up (in a child, so nothing of it stays). */
TEST(a_fixed_pool_deadlocks_on_the_same_barrier)
{
    fflush(NULL);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        alarm(60);
        wp_pool *p = make_pool(2, 64);
        barrier b;
        barrier_init(&b, 8, false, 1);
        for (int i = 0; i < 8; i++)
            if (!p || wp_submit(p, barrier_task, &b) != 0) _exit(2);
        /* The first two arrive and give up after their timeout: no one
           ever passes. Then the rest are dropped. */
        if (!wait_for(&b.gave_up, 2)) _exit(3);
        wp_pool_shutdown(p, WP_DISCARD);
        int ok = atomic_load(&b.passed) == 0 && atomic_load(&b.gave_up) >= 2;
        wp_pool_destroy(p);
        barrier_destroy(&b);
        _exit(ok ? 0 : 1);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0) {
    }
    ASSERT(WIFEXITED(st));
    ASSERT_EQ(WEXITSTATUS(st), 0);
}

/* ------------------------------------------------------ never too many -- */

typedef struct conc {
    atomic_int now, most;
    atomic_long ran;
    atomic_uint sink;
} conc;

static void cpu_task(void *arg)
{
    conc *c = arg;
    int n = atomic_fetch_add(&c->now, 1) + 1;
    int m = atomic_load(&c->most);
    while (n > m && !atomic_compare_exchange_weak(&c->most, &m, n)) {
    }
    unsigned x = 0;
    for (unsigned i = 0; i < 20000; i++) x = x * 31 + i;
    atomic_store_explicit(&c->sink, x, memory_order_relaxed); /* keeps the loop */
    atomic_fetch_sub(&c->now, 1);
    atomic_fetch_add(&c->ran, 1);
}

TEST(tasks_that_never_block_run_at_most_workers_at_once)
{
    if (under_valgrind()) {
        fprintf(stderr, "  under valgrind threads sleep on its lock: concurrency not checked\n");
    }
    wp_pool *p = make_elastic(2, 64, 0);
    ASSERT(p != NULL);
    conc c = {0};
    unsigned n = test_iters(20000);
    for (unsigned i = 0; i < n; i++) ASSERT_OK(wp_submit(p, cpu_task, &c));
    ASSERT_OK(wp_wait(p));
    ASSERT_EQ(atomic_load(&c.ran), (long)n);
    if (!under_valgrind()) ASSERT_LE(atomic_load(&c.most), 2);
    wp_pool_destroy(p);
}

/* -------------------------------------------------------------- resize -- */

static void mark_task_helper(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
}

TEST(resize_up_and_down_under_load_runs_every_task_once)
{
    enum { N = 6000 };
    static atomic_int slots[N];
    for (int i = 0; i < N; i++) atomic_init(&slots[i], 0);
    wp_pool *p = make_elastic(2, 8, 0);
    ASSERT(p != NULL);
    dump_pool = p;
    static const unsigned targets[] = {4, 1, 8, 3, 2};
    int next = 0;
    for (unsigned t = 0; t < sizeof targets / sizeof targets[0]; t++) {
        for (int i = 0; i < N / 10; i++) ASSERT_OK(wp_submit(p, mark_task_helper, &slots[next++]));
        ASSERT_OK(wp_pool_resize(p, targets[t])); /* while those run */
        ASSERT_EQ(wp_pool_workers(p), targets[t]);
        for (int i = 0; i < N / 10; i++) ASSERT_OK(wp_submit(p, mark_task_helper, &slots[next++]));
        ASSERT_OK(wp_wait(p));
        /* The target is what runs now: a barrier of `target` parties passes
           (each party hints, so that the monitor's view does not matter). */
        barrier b;
        barrier_init(&b, targets[t], true, 60);
        for (unsigned i = 0; i < targets[t]; i++) ASSERT_OK(wp_submit(p, barrier_task, &b));
        ASSERT_OK(wp_wait(p));
        ASSERT_EQ(atomic_load(&b.passed), (int)targets[t]);
        barrier_destroy(&b);
        /* And CPU tasks run at most that many at once. */
        if (!under_valgrind()) {
            conc c = {0};
            for (int i = 0; i < 200; i++) ASSERT_OK(wp_submit(p, cpu_task, &c));
            ASSERT_OK(wp_wait(p));
            ASSERT_LE(atomic_load(&c.most), (int)targets[t]);
        }
    }
    int bad = 0;
    for (int i = 0; i < next; i++) bad += atomic_load(&slots[i]) != 1;
    ASSERT_EQ(bad, 0);
    wp_stats st;
    wp_pool_stats(p, &st);
    ASSERT_UEQ(st.submitted, st.completed);
    ASSERT_OK(wp_pool_shutdown(p, WP_DRAIN));
    ASSERT_ERR(wp_pool_resize(p, 2), EPIPE);
    dump_pool = NULL;
    wp_pool_destroy(p);
}

TEST(resize_and_create_check_their_arguments)
{
    wp_pool *p = make_elastic(2, 4, 0);
    ASSERT(p != NULL);
    ASSERT_ERR(wp_pool_resize(NULL, 1), EINVAL);
    ASSERT_ERR(wp_pool_resize(p, 0), EINVAL);
    ASSERT_ERR(wp_pool_resize(p, 5), EINVAL);
    ASSERT_OK(wp_pool_resize(p, 4));
    ASSERT_EQ(wp_pool_workers(p), 4);
    wp_pool_destroy(p);
    /* A fixed pool may shrink and grow back to its size. */
    wp_pool *f = make_pool(3, 16);
    ASSERT(f != NULL);
    ASSERT_ERR(wp_pool_resize(f, 4), EINVAL);
    ASSERT_OK(wp_pool_resize(f, 1));
    ASSERT_OK(wp_pool_resize(f, 3));
    wp_stats st;
    wp_pool_stats(f, &st);
    ASSERT_EQ(st.threads, 3);
    ASSERT_EQ(st.max_workers, 3);
    wp_pool_destroy(f);
    wp_config cfg;
    wp_config_init(&cfg);
    cfg.workers = 4;
    cfg.max_workers = 3;
    ASSERT_ERR(wp_pool_create(&p, &cfg), EINVAL);
    cfg.max_workers = WP_MAX_WORKERS + 1;
    ASSERT_ERR(wp_pool_create(&p, &cfg), EINVAL);
}

/* ------------------------------------------------------ ids and hooks -- */

enum { MAXW = 16 };
static atomic_int live_ids[MAXW], starts[MAXW], stops[MAXW], id_bad;

static void on_start(unsigned id, void *user)
{
    (void)user;
    if (id >= MAXW || wp_worker_id() != (int)id || atomic_exchange(&live_ids[id], 1) != 0) {
        atomic_fetch_add(&id_bad, 1);
        return;
    }
    atomic_fetch_add(&starts[id], 1);
}

static void on_stop(unsigned id, void *user)
{
    (void)user;
    if (id >= MAXW || atomic_exchange(&live_ids[id], 0) != 1) {
        atomic_fetch_add(&id_bad, 1);
        return;
    }
    atomic_fetch_add(&stops[id], 1);
}

static void id_task(void *arg)
{
    (void)arg;
    int id = wp_worker_id();
    if (id < 0 || id >= MAXW || atomic_load(&live_ids[id]) != 1) atomic_fetch_add(&id_bad, 1);
}

/* Threads come (barriers) and go (a short idle timeout), many times: ids
   stay in range and unique among live threads, hooks pair up. */
TEST(ids_stay_unique_and_hooks_pair_across_threads_that_come_and_go)
{
    for (int i = 0; i < MAXW; i++) {
        atomic_store(&live_ids[i], 0);
        atomic_store(&starts[i], 0);
        atomic_store(&stops[i], 0);
    }
    atomic_store(&id_bad, 0);
    wp_config cfg;
    wp_config_init(&cfg);
    cfg.workers = 2;
    cfg.max_workers = MAXW;
    cfg.idle_timeout_ns = 2000000; /* 2 ms */
    cfg.worker_start = on_start;
    cfg.worker_stop = on_stop;
    wp_pool *p = NULL;
    ASSERT_OK(wp_pool_create(&p, &cfg));
    unsigned rounds = test_iters(20), most = 0;
    for (unsigned r = 0; r < rounds; r++) {
        unsigned parties = 2 + r % (MAXW - 2);
        if (parties > most) most = parties;
        barrier b;
        barrier_init(&b, parties, true, 60);
        for (unsigned i = 0; i < parties; i++) ASSERT_OK(wp_submit(p, barrier_task, &b));
        for (int i = 0; i < 50; i++) ASSERT_OK(wp_submit(p, id_task, NULL));
        ASSERT_OK(wp_wait(p));
        ASSERT_EQ(atomic_load(&b.passed), (int)parties);
        barrier_destroy(&b);
        test_sleep_ms(5); /* some spares time out */
    }
    ASSERT_OK(wp_pool_shutdown(p, WP_DRAIN));
    ASSERT_EQ(atomic_load(&id_bad), 0);
    int total = 0;
    for (int i = 0; i < MAXW; i++) {
        ASSERT_EQ(atomic_load(&starts[i]), atomic_load(&stops[i]));
        ASSERT_EQ(atomic_load(&live_ids[i]), 0);
        total += atomic_load(&starts[i]);
    }
    ASSERT_GE(total, (int)most); /* at least that many threads ran at once */
    wp_pool_destroy(p);
}

/* ------------------------------------------------- back to its size -- */

TEST(threads_go_back_to_workers_once_the_load_is_gone)
{
    wp_pool *p = make_elastic(2, 32, 20000000); /* 20 ms */
    ASSERT(p != NULL);
    barrier b;
    barrier_init(&b, 12, true, 60);
    for (int i = 0; i < 12; i++) ASSERT_OK(wp_submit(p, barrier_task, &b));
    ASSERT_OK(wp_wait(p));
    ASSERT_EQ(atomic_load(&b.passed), 12);
    wp_stats st;
    wp_pool_stats(p, &st);
    ASSERT_GE(st.threads, 12);
    /* Bounded wait for the surplus to time out (not a timing assertion: it
       must happen, whenever it does). */
    for (int i = 0; i < 10000; i++) {
        wp_pool_stats(p, &st);
        if (st.threads == 2) break;
        test_sleep_ms(1);
    }
    ASSERT_EQ(st.threads, 2);
    ASSERT_EQ(st.blocked, 0);
    /* And it still works, and grows again. */
    barrier_destroy(&b);
    barrier_init(&b, 6, true, 60);
    for (int i = 0; i < 6; i++) ASSERT_OK(wp_submit(p, barrier_task, &b));
    ASSERT_OK(wp_wait(p));
    ASSERT_EQ(atomic_load(&b.passed), 6);
    barrier_destroy(&b);
    wp_pool_destroy(p);
}

/* ------------------------------------------------ hints and shutdown -- */

typedef struct held {
    gate g;
    atomic_int inside;
    unsigned blocked_seen;
    wp_pool *p;
} held;

static void hinted_gate_task(void *arg)
{
    held *h = arg;
    wp_blocking_begin();
    wp_blocking_begin(); /* nests */
    atomic_fetch_add(&h->inside, 1);
    gate_task(&h->g);
    wp_blocking_end();
    wp_blocking_end();
}

static void *shutdown_thread(void *arg)
{
    wp_pool_shutdown(arg, WP_DRAIN);
    return NULL;
}

TEST(shutdown_joins_blocked_workers)
{
    held h = {.inside = 0};
    gate_init(&h.g);
    wp_pool *p = make_elastic(2, 16, 0);
    ASSERT(p != NULL);
    for (int i = 0; i < 6; i++) ASSERT_OK(wp_submit(p, hinted_gate_task, &h));
    ASSERT(wait_for(&h.inside, 6)); /* all six run at once on a pool of 2 */
    wp_stats st;
    wp_pool_stats(p, &st);
    ASSERT_EQ(st.blocked, 6);
    ASSERT_GE(st.threads, 6);
    pthread_t t;
    ASSERT_OK(pthread_create(&t, NULL, shutdown_thread, p));
    test_sleep_ms(10);
    gate_open(&h.g);
    pthread_join(t, NULL);
    wp_pool_stats(p, &st);
    ASSERT_UEQ(st.completed, 6);
    ASSERT_EQ(st.threads, 0);
    wp_pool_destroy(p);
    gate_destroy(&h.g);
    /* Outside a worker the hints do nothing. */
    wp_blocking_begin();
    wp_blocking_end();
    wp_blocking_end();
}

TEST(hints_on_a_fixed_pool_only_count)
{
    held h = {.inside = 0};
    gate_init(&h.g);
    wp_pool *p = make_pool(2, 16);
    ASSERT(p != NULL);
    for (int i = 0; i < 4; i++) ASSERT_OK(wp_submit(p, hinted_gate_task, &h));
    ASSERT(wait_for(&h.inside, 2));
    test_sleep_ms(20);
    ASSERT_EQ(atomic_load(&h.inside), 2); /* no thread beyond the two */
    wp_stats st;
    wp_pool_stats(p, &st);
    ASSERT_EQ(st.threads, 2);
    ASSERT_EQ(st.blocked, 2);
    gate_open(&h.g);
    ASSERT_OK(wp_wait(p));
    ASSERT_EQ(atomic_load(&h.inside), 4);
    wp_pool_stats(p, &st);
    ASSERT_EQ(st.blocked, 0);
    wp_pool_destroy(p);
    gate_destroy(&h.g);
}

TEST_MAIN()
