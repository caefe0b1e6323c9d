/*
 * The pool's contract, one rule per test: every function, every error code.
 */
#include "helpers.h"
#include "test.h"
#include "wpool.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ helpers -- */

static void count_task(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
}

static void mark_task(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
}

static void nop_task(void *arg)
{
    (void)arg;
}

/* ---------------------------------------------------------- creation -- */

TEST(config_init_sets_defaults)
{
    wp_config cfg;
    memset(&cfg, 0xab, sizeof cfg);
    wp_config_init(&cfg);
    ASSERT_EQ(cfg.workers, 0);
    ASSERT_EQ(cfg.queue_capacity, 0);
    ASSERT_EQ(cfg.full_policy, WP_FULL_BLOCK);
    ASSERT(cfg.name == NULL);
    ASSERT_EQ(cfg.stack_size, 0);
    ASSERT(cfg.worker_start == NULL && cfg.worker_stop == NULL && cfg.on_discard == NULL);
    ASSERT(cfg.user == NULL);
    wp_config_init(NULL); /* must not crash */
}

TEST(create_with_null_config_uses_cpu_count)
{
    unsetenv("WPOOL_WORKERS");
    wp_pool *p = NULL;
    ASSERT_OK(wp_pool_create(&p, NULL));
    ASSERT(p != NULL);
    ASSERT_EQ(wp_pool_workers(p), wp_cpu_count());
    wp_stats st;
    wp_pool_stats(p, &st);
    ASSERT_EQ(st.workers, wp_cpu_count());
    ASSERT_EQ(st.capacity, 4096);
    wp_pool_destroy(p);
}

TEST(create_rejects_bad_arguments)
{
    wp_config cfg;
    wp_pool *p = (wp_pool *)&cfg; /* must stay untouched on error */
    wp_pool *const sentinel = p;
    ASSERT_ERR(wp_pool_create(NULL, NULL), EINVAL);

    wp_config_init(&cfg);
    cfg.full_policy = 3;
    ASSERT_ERR(wp_pool_create(&p, &cfg), EINVAL);
    cfg.full_policy = -1;
    ASSERT_ERR(wp_pool_create(&p, &cfg), EINVAL);

    wp_config_init(&cfg);
    cfg.workers = WP_MAX_WORKERS + 1;
    ASSERT_ERR(wp_pool_create(&p, &cfg), EINVAL);

    wp_config_init(&cfg);
    cfg.queue_capacity = SIZE_MAX;
    ASSERT_ERR(wp_pool_create(&p, &cfg), EINVAL);
    cfg.queue_capacity = SIZE_MAX / 16;
    ASSERT_ERR(wp_pool_create(&p, &cfg), EINVAL);

    wp_config_init(&cfg);
    cfg.stack_size = 1; /* below PTHREAD_STACK_MIN */
    ASSERT_ERR(wp_pool_create(&p, &cfg), EINVAL);
    ASSERT_PTR_EQ(p, sentinel);
}

TEST(workers_env_overrides_default_only)
{
    setenv("WPOOL_WORKERS", "3", 1);
    wp_pool *p = make_pool_policy(0, 0, WP_FULL_BLOCK);
    ASSERT(p != NULL);
    ASSERT_EQ(wp_pool_workers(p), 3);
    wp_pool_destroy(p);

    p = make_pool_policy(2, 0, WP_FULL_BLOCK); /* explicit count wins */
    ASSERT(p != NULL);
    ASSERT_EQ(wp_pool_workers(p), 2);
    wp_pool_destroy(p);

    const char *bad[] = {"0", "-2", "abc", "4x", "", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        setenv("WPOOL_WORKERS", bad[i], 1);
        p = make_pool_policy(0, 0, WP_FULL_BLOCK);
        ASSERT(p != NULL);
        ASSERT_EQ(wp_pool_workers(p), wp_cpu_count());
        wp_pool_destroy(p);
    }
    unsetenv("WPOOL_WORKERS");
}

TEST(capacity_is_exact_for_any_size)
{
    size_t caps[] = {1, 3, 5, 8, 1000};
    for (size_t i = 0; i < sizeof caps / sizeof *caps; i++) {
        wp_pool *p = make_pool_policy(1, caps[i], WP_FULL_REJECT);
        ASSERT(p != NULL);
        gate g;
        gate_init(&g);
        ASSERT_OK(wp_submit(p, gate_task, &g));
        ASSERT(wait_for(&g.entered, 1));
        atomic_int ran = 0;
        size_t accepted = 0;
        while (wp_try_submit(p, count_task, &ran) == 0) accepted++;
        ASSERT_EQ(accepted, caps[i]);
        wp_stats st;
        wp_pool_stats(p, &st);
        ASSERT_EQ(st.queued, caps[i]);
        ASSERT_EQ(st.capacity, caps[i]);
        ASSERT_EQ(st.active, 1);
        ASSERT_EQ(st.rejected, 1);
        gate_open(&g);
        ASSERT_OK(wp_wait(p));
        ASSERT_EQ(atomic_load(&ran), (int)caps[i]);
        wp_pool_destroy(p);
        gate_destroy(&g);
    }
}

TEST(null_handles_are_safe)
{
    wp_pool_destroy(NULL);
    wp_pool_pause(NULL);
    wp_pool_resume(NULL);
    ASSERT_EQ(wp_pool_workers(NULL), 0);
    wp_stats st;
    memset(&st, 0x5a, sizeof st);
    wp_pool_stats(NULL, &st);
    ASSERT_ERR(wp_wait(NULL), EINVAL);
    ASSERT_ERR(wp_pool_shutdown(NULL, WP_DRAIN), EINVAL);
    ASSERT_ERR(wp_submit(NULL, nop_task, NULL), EINVAL);
    ASSERT_ERR(wp_try_submit(NULL, nop_task, NULL), EINVAL);
    ASSERT_ERR(wp_submit_timeout(NULL, nop_task, NULL, 1), EINVAL);
    void *args[1] = {NULL};
    ASSERT_ERR(wp_submit_batch(NULL, nop_task, args, 1), EINVAL);

    wp_pool *p = make_pool_policy(1, 4, WP_FULL_BLOCK);
    ASSERT(p != NULL);
    ASSERT_ERR(wp_submit(p, NULL, NULL), EINVAL);
    ASSERT_ERR(wp_try_submit(p, NULL, NULL), EINVAL);
    ASSERT_ERR(wp_submit_timeout(p, NULL, NULL, 1), EINVAL);
    ASSERT_ERR(wp_submit_batch(p, NULL, args, 1), EINVAL);
    ASSERT_ERR(wp_submit_batch(p, nop_task, NULL, 1), EINVAL);
    ASSERT_OK(wp_submit_batch(p, nop_task, NULL, 0));
    ASSERT_ERR(wp_pool_shutdown(p, 7), EINVAL);
    wp_pool_stats(p, NULL);
    wp_stats s2;
    wp_pool_stats(p, &s2);
    ASSERT_EQ(s2.submitted, 0);
    wp_pool_destroy(p);
}

/* ------------------------------------------------------------ running -- */

TEST(every_task_runs_exactly_once)
{
    enum { N = 20000 };
    static atomic_int slots[N];
    for (int i = 0; i < N; i++) atomic_init(&slots[i], 0);
    wp_pool *p = make_pool_policy(4, 64, WP_FULL_BLOCK);
    ASSERT(p != NULL);
    for (int i = 0; i < N; i++) ASSERT_OK(wp_submit(p, mark_task, &slots[i]));
    ASSERT_OK(wp_wait(p));
    for (int i = 0; i < N; i++) ASSERT_EQ(atomic_load(&slots[i]), 1);
    wp_stats st;
    wp_pool_stats(p, &st);
    ASSERT_UEQ(st.submitted, N);
    ASSERT_UEQ(st.completed, N);
    ASSERT_EQ(st.queued, 0);
    ASSERT_EQ(st.active, 0);
    ASSERT_UEQ(st.rejected, 0);
    ASSERT_UEQ(st.discarded, 0);
    wp_pool_destroy(p);
}

TEST(wait_on_idle_pool_returns_at_once)
{
    wp_pool *p = make_pool_policy(2, 0, WP_FULL_BLOCK);
    ASSERT(p != NULL);
    ASSERT_OK(wp_wait(p));
    ASSERT_OK(wp_wait(p));
    wp_pool_destroy(p);
}

typedef struct fan {
    wp_pool *pool;
    atomic_int count;
    int depth;
} fan;

typedef struct fan_node {
    fan *f;
    int depth;
} fan_node;

static fan_node fan_nodes[1 << 12];
static atomic_int fan_next;

static void fan_task(void *arg)
{
    fan_node *n = arg;
    atomic_fetch_add(&n->f->count, 1);
    if (n->depth == 0) return;
    for (int c = 0; c < 2; c++) {
        int i = atomic_fetch_add(&fan_next, 1);
        fan_nodes[i] = (fan_node){n->f, n->depth - 1};
        EXPECT(wp_submit(n->f->pool, fan_task, &fan_nodes[i]) == 0);
    }
}

TEST(wait_covers_tasks_submitted_by_tasks)
{
    /* A binary tree of depth 10 = 2047 tasks, children submitted by tasks,
       through a queue far smaller than the tree. */
    size_t caps[] = {1024, 2};
    for (size_t k = 0; k < 2; k++) {
        wp_pool *p = make_pool_policy(2, caps[k], WP_FULL_BLOCK);
        ASSERT(p != NULL);
        fan f = {.pool = p, .depth = 10};
        atomic_init(&f.count, 0);
        atomic_store(&fan_next, 1);
        fan_nodes[0] = (fan_node){&f, 10};
        ASSERT_OK(wp_submit(p, fan_task, &fan_nodes[0]));
        ASSERT_OK(wp_wait(p));
        ASSERT_EQ(atomic_load(&f.count), 2047);
        wp_stats st;
        wp_pool_stats(p, &st);
        ASSERT_UEQ(st.submitted, 2047);
        ASSERT_UEQ(st.completed, 2047);
        wp_pool_destroy(p);
    }
}

typedef struct probe {
    wp_pool *pool;
    atomic_int rc_wait, rc_shutdown, id, done;
} probe;

static void probe_task(void *arg)
{
    probe *pr = arg;
    atomic_store(&pr->rc_wait, wp_wait(pr->pool));
    atomic_store(&pr->rc_shutdown, wp_pool_shutdown(pr->pool, WP_DRAIN));
    atomic_store(&pr->id, wp_worker_id());
    atomic_store(&pr->done, 1);
}

TEST(wait_and_shutdown_inside_a_task_are_edeadlk)
{
    wp_pool *p = make_pool_policy(2, 0, WP_FULL_BLOCK);
    ASSERT(p != NULL);
    probe pr = {.pool = p};
    ASSERT_OK(wp_submit(p, probe_task, &pr));
    ASSERT_OK(wp_wait(p));
    ASSERT_EQ(atomic_load(&pr.done), 1);
    ASSERT_ERR(atomic_load(&pr.rc_wait), EDEADLK);
    ASSERT_ERR(atomic_load(&pr.rc_shutdown), EDEADLK);
    ASSERT(atomic_load(&pr.id) >= 0 && atomic_load(&pr.id) < 2);
    ASSERT_EQ(wp_worker_id(), -1);
    wp_pool_destroy(p);
}

static void wait_other_task(void *arg)
{
    probe *pr = arg;
    atomic_store(&pr->rc_wait, wp_wait(pr->pool)); /* another pool: fine */
    atomic_store(&pr->done, 1);
}

TEST(wait_on_another_pool_inside_a_task)
{
    wp_pool *a = make_pool_policy(1, 0, WP_FULL_BLOCK);
    wp_pool *b = make_pool_policy(1, 0, WP_FULL_BLOCK);
    ASSERT(a && b);
    atomic_int n = 0;
    for (int i = 0; i < 100; i++) ASSERT_OK(wp_submit(b, count_task, &n));
    probe pr = {.pool = b};
    ASSERT_OK(wp_submit(a, wait_other_task, &pr));
    ASSERT_OK(wp_wait(a));
    ASSERT_EQ(atomic_load(&pr.rc_wait), 0);
    ASSERT_EQ(atomic_load(&n), 100);
    wp_pool_destroy(a);
    wp_pool_destroy(b);
}

/* ------------------------------------------------------- full policies -- */

TEST(reject_policy_returns_eagain_and_counts)
{
    wp_pool *p = make_pool_policy(1, 2, WP_FULL_REJECT);
    ASSERT(p != NULL);
    gate g;
    ASSERT(hold_worker(p, &g));
    atomic_int n = 0;
    ASSERT_OK(wp_submit(p, count_task, &n));
    ASSERT_OK(wp_submit(p, count_task, &n));
    ASSERT_ERR(wp_submit(p, count_task, &n), EAGAIN);
    ASSERT_ERR(wp_submit(p, count_task, &n), EAGAIN);
    wp_stats st;
    wp_pool_stats(p, &st);
    ASSERT_UEQ(st.rejected, 2);
    ASSERT_UEQ(st.submitted, 3);
    gate_open(&g);
    ASSERT_OK(wp_wait(p));
    ASSERT_EQ(atomic_load(&n), 2);
    wp_pool_destroy(p);
    gate_destroy(&g);
}

typedef struct where {
    atomic_int id;
    atomic_int ran;
    pthread_t thread;
    wp_pool *pool;
    unsigned active_seen;
} where;

static void where_task(void *arg)
{
    where *w = arg;
    atomic_store(&w->id, wp_worker_id());
    w->thread = pthread_self();
    wp_stats st;
    wp_pool_stats(w->pool, &st);
    w->active_seen = st.active;
    atomic_store(&w->ran, 1);
}

TEST(caller_runs_policy_runs_on_the_caller)
{
    wp_pool *p = make_pool_policy(1, 1, WP_FULL_CALLER_RUNS);
    ASSERT(p != NULL);
    gate g;
    ASSERT(hold_worker(p, &g));
    atomic_int n = 0;
    ASSERT_OK(wp_submit(p, count_task, &n)); /* fills the queue */
    where w = {.pool = p};
    atomic_init(&w.id, 99);
    ASSERT_OK(wp_submit(p, where_task, &w)); /* full: runs here, now */
    ASSERT_EQ(atomic_load(&w.ran), 1);
    ASSERT_EQ(atomic_load(&w.id), -1);
    ASSERT(pthread_equal(w.thread, pthread_self()));
    ASSERT_EQ(w.active_seen, 1); /* only the gated worker */
    wp_stats st;
    wp_pool_stats(p, &st);
    ASSERT_UEQ(st.submitted, 3);
    ASSERT_UEQ(st.completed, 1);
    ASSERT_UEQ(st.rejected, 0);
    /* try_submit and submit_timeout ignore the policy. */
    ASSERT_ERR(wp_try_submit(p, count_task, &n), EAGAIN);
    ASSERT_ERR(wp_submit_timeout(p, count_task, &n, 0), ETIMEDOUT);
    ASSERT_ERR(wp_submit_timeout(p, count_task, &n, 1000000), ETIMEDOUT);
    wp_pool_stats(p, &st);
    ASSERT_UEQ(st.rejected, 3);
    gate_open(&g);
    ASSERT_OK(wp_wait(p));
    ASSERT_EQ(atomic_load(&n), 1);
    wp_pool_stats(p, &st);
    ASSERT_UEQ(st.submitted, 3);
    ASSERT_UEQ(st.completed, 3);
    wp_pool_destroy(p);
    gate_destroy(&g);
}

typedef struct submitter {
    wp_pool *pool;
    atomic_int *counter;
    atomic_int done;
    atomic_int rc;
    uint64_t timeout;
    int use_timeout;
} submitter;

static void *submit_thread(void *arg)
{
    submitter *s = arg;
    int rc = s->use_timeout ? wp_submit_timeout(s->pool, count_task, s->counter, s->timeout)
                            : wp_submit(s->pool, count_task, s->counter);
    atomic_store(&s->rc, rc);
    atomic_store(&s->done, 1);
    return NULL;
}

TEST(block_policy_waits_for_room)
{
    wp_pool *p = make_pool_policy(1, 1, WP_FULL_BLOCK);
    ASSERT(p != NULL);
    gate g;
    ASSERT(hold_worker(p, &g));
    atomic_int n = 0;
    ASSERT_OK(wp_submit(p, count_task, &n)); /* full now */
    submitter s = {.pool = p, .counter = &n};
    pthread_t t;
    pthread_create(&t, NULL, submit_thread, &s);
    test_sleep_ms(50);
    ASSERT_EQ(atomic_load(&s.done), 0); /* still blocked: no room */
    gate_open(&g);
    pthread_join(t, NULL);
    ASSERT_EQ(atomic_load(&s.rc), 0);
    ASSERT_OK(wp_wait(p));
    ASSERT_EQ(atomic_load(&n), 2);
    wp_stats st;
    wp_pool_stats(p, &st);
    ASSERT_UEQ(st.rejected, 0);
    wp_pool_destroy(p);
    gate_destroy(&g);
}

TEST(submit_timeout_gets_room_in_time)
{
    wp_pool *p = make_pool_policy(1, 1, WP_FULL_REJECT);
    ASSERT(p != NULL);
    gate g;
    ASSERT(hold_worker(p, &g));
    atomic_int n = 0;
    ASSERT_OK(wp_submit(p, count_task, &n));
    submitter s = {.pool = p, .counter = &n, .use_timeout = 1, .timeout = WP_FOREVER};
    pthread_t t;
    pthread_create(&t, NULL, submit_thread, &s);
    test_sleep_ms(20);
    gate_open(&g);
    pthread_join(t, NULL);
    ASSERT_EQ(atomic_load(&s.rc), 0);
    ASSERT_OK(wp_wait(p));
    ASSERT_EQ(atomic_load(&n), 2);
    wp_pool_destroy(p);
    gate_destroy(&g);
}

static void *shutdown_thread(void *arg)
{
    wp_pool *p = arg;
    return (void *)(intptr_t)wp_pool_shutdown(p, WP_DRAIN);
}

TEST(blocked_submitter_gets_epipe_at_shutdown)
{
    for (int use_timeout = 0; use_timeout < 2; use_timeout++) {
        wp_pool *p = make_pool_policy(1, 1, WP_FULL_BLOCK);
        ASSERT(p != NULL);
        gate g;
        gate_init(&g);
        ASSERT_OK(wp_submit(p, gate_task, &g));
        ASSERT(wait_for(&g.entered, 1));
        atomic_int n = 0;
        ASSERT_OK(wp_submit(p, count_task, &n)); /* full */
        submitter s = {.pool = p, .counter = &n, .use_timeout = use_timeout, .timeout = WP_FOREVER};
        pthread_t t, sd;
        pthread_create(&t, NULL, submit_thread, &s);
        test_sleep_ms(20);
        pthread_create(&sd, NULL, shutdown_thread, p);
        ASSERT(wait_for(&s.done, 1)); /* woke up although the worker is still gated */
        ASSERT_ERR(atomic_load(&s.rc), EPIPE);
        gate_open(&g);
        void *rc;
        pthread_join(sd, &rc);
        pthread_join(t, NULL);
        ASSERT_EQ((intptr_t)rc, 0);
        ASSERT_EQ(atomic_load(&n), 1); /* the queued one drained */
        wp_pool_destroy(p);
        gate_destroy(&g);
    }
}

TEST(submit_timeout_times_out_and_counts)
{
    wp_pool *p = make_pool_policy(1, 1, WP_FULL_BLOCK);
    ASSERT(p != NULL);
    gate g;
    ASSERT(hold_worker(p, &g));
    atomic_int n = 0;
    ASSERT_OK(wp_submit_timeout(p, count_task, &n, 0)); /* room: no wait needed */
    ASSERT_ERR(wp_submit_timeout(p, count_task, &n, 0), ETIMEDOUT);
    ASSERT_ERR(wp_submit_timeout(p, count_task, &n, 2000000), ETIMEDOUT);
    wp_stats st;
    wp_pool_stats(p, &st);
    ASSERT_UEQ(st.rejected, 2);
    ASSERT_UEQ(st.submitted, 2);
    gate_open(&g);
    ASSERT_OK(wp_wait(p));
    ASSERT_EQ(atomic_load(&n), 1);
    wp_pool_destroy(p);
    gate_destroy(&g);
}

/* ---------------------------------------------------------------- batch -- */

static void batch_task(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
}

TEST(batch_submits_all_through_a_small_queue)
{
    enum { N = 5000 };
    static atomic_int slots[N];
    static void *args[N];
    int policies[] = {WP_FULL_BLOCK, WP_FULL_REJECT, WP_FULL_CALLER_RUNS};
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < N; i++) {
            atomic_init(&slots[i], 0);
            args[i] = &slots[i];
        }
        wp_pool *p = make_pool_policy(2, 7, policies[k]);
        ASSERT(p != NULL);
        ASSERT_OK(wp_submit_batch(p, batch_task, args, N));
        ASSERT_OK(wp_wait(p));
        for (int i = 0; i < N; i++) ASSERT_EQ(atomic_load(&slots[i]), 1);
        wp_stats st;
        wp_pool_stats(p, &st);
        ASSERT_UEQ(st.submitted, N);
        ASSERT_UEQ(st.completed, N);
        ASSERT_UEQ(st.rejected, 0);
        wp_pool_destroy(p);
    }
}

TEST(batch_caller_runs_the_overflow)
{
    wp_pool *p = make_pool_policy(1, 2, WP_FULL_CALLER_RUNS);
    ASSERT(p != NULL);
    gate g;
    ASSERT(hold_worker(p, &g));
    where w[5];
    void *args[5];
    for (int i = 0; i < 5; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].pool = p;
        atomic_init(&w[i].id, 99);
        args[i] = &w[i];
    }
    ASSERT_OK(wp_submit_batch(p, where_task, args, 5));
    /* Two fit in the queue; the other three ran here, in order. */
    ASSERT_EQ(atomic_load(&w[0].ran), 0);
    ASSERT_EQ(atomic_load(&w[1].ran), 0);
    for (int i = 2; i < 5; i++) {
        ASSERT_EQ(atomic_load(&w[i].ran), 1);
        ASSERT_EQ(atomic_load(&w[i].id), -1);
    }
    gate_open(&g);
    ASSERT_OK(wp_wait(p));
    ASSERT_EQ(atomic_load(&w[0].ran), 1);
    ASSERT_EQ(atomic_load(&w[1].ran), 1);
    wp_pool_destroy(p);
    gate_destroy(&g);
}

/* ------------------------------------------------------------ nesting -- */

typedef struct nest {
    wp_pool *pool;
    atomic_int children;
    atomic_int errors;
} nest;

static void nest_child(void *arg)
{
    atomic_fetch_add(&((nest *)arg)->children, 1);
}

static void nest_parent(void *arg)
{
    nest *n = arg;
    for (int i = 0; i < 100; i++)
        if (wp_submit(n->pool, nest_child, n) != 0) atomic_fetch_add(&n->errors, 1);
    void *args[50];
    for (int i = 0; i < 50; i++) args[i] = n;
    if (wp_submit_batch(n->pool, nest_child, args, 50) != 0) atomic_fetch_add(&n->errors, 1);
    if (wp_submit_timeout(n->pool, nest_child, n, WP_FOREVER) != 0) atomic_fetch_add(&n->errors, 1);
}

TEST(task_submitting_to_its_own_full_pool_never_deadlocks)
{
    /* One worker, queue of one: the worker is the only one who can make
       room, so a blocking submit from it must run the child itself. */
    wp_pool *p = make_pool_policy(1, 1, WP_FULL_BLOCK);
    ASSERT(p != NULL);
    nest n = {.pool = p};
    for (int i = 0; i < 3; i++) ASSERT_OK(wp_submit(p, nest_parent, &n));
    ASSERT_OK(wp_wait(p));
    ASSERT_EQ(atomic_load(&n.errors), 0);
    ASSERT_EQ(atomic_load(&n.children), 3 * 151);
    wp_stats st;
    wp_pool_stats(p, &st);
    ASSERT_UEQ(st.submitted, 3 + 3 * 151);
    ASSERT_UEQ(st.completed, 3 + 3 * 151);
    wp_pool_destroy(p);
}

/* -------------------------------------------------------- pause/resume -- */

TEST(pause_stops_starting_tasks)
{
    wp_pool *p = make_pool_policy(2, 256, WP_FULL_BLOCK);
    ASSERT(p != NULL);
    wp_pool_pause(p);
    atomic_int n = 0;
    for (int i = 0; i < 100; i++) ASSERT_OK(wp_submit(p, count_task, &n));
    test_sleep_ms(30);
    ASSERT_EQ(atomic_load(&n), 0);
    wp_stats st;
    wp_pool_stats(p, &st);
    ASSERT_EQ(st.queued, 100);
    ASSERT_EQ(st.active, 0);
    wp_pool_resume(p);
    ASSERT_OK(wp_wait(p));
    ASSERT_EQ(atomic_load(&n), 100);
    /* pause again after work ran */
    wp_pool_pause(p);
    ASSERT_OK(wp_submit(p, count_task, &n));
    test_sleep_ms(10);
    ASSERT_EQ(atomic_load(&n), 100);
    wp_pool_resume(p);
    ASSERT_OK(wp_wait(p));
    ASSERT_EQ(atomic_load(&n), 101);
    wp_pool_destroy(p);
}

TEST(pause_lets_running_task_finish)
{
    wp_pool *p = make_pool_policy(1, 16, WP_FULL_BLOCK);
    ASSERT(p != NULL);
    gate g;
    ASSERT(hold_worker(p, &g));
    atomic_int n = 0;
    for (int i = 0; i < 5; i++) ASSERT_OK(wp_submit(p, count_task, &n));
    wp_pool_pause(p);
    gate_open(&g);
    test_sleep_ms(30);
    ASSERT_EQ(atomic_load(&n), 0);
    wp_stats st;
    wp_pool_stats(p, &st);
    ASSERT_UEQ(st.completed, 1);
    ASSERT_EQ(st.queued, 5);
    wp_pool_resume(p);
    ASSERT_OK(wp_wait(p));
    ASSERT_EQ(atomic_load(&n), 5);
    wp_pool_destroy(p);
    gate_destroy(&g);
}

TEST(shutdown_ends_a_pause_and_drains)
{
    wp_pool *p = make_pool_policy(2, 64, WP_FULL_BLOCK);
    ASSERT(p != NULL);
    wp_pool_pause(p);
    atomic_int n = 0;
    for (int i = 0; i < 50; i++) ASSERT_OK(wp_submit(p, count_task, &n));
    ASSERT_OK(wp_pool_shutdown(p, WP_DRAIN));
    ASSERT_EQ(atomic_load(&n), 50);
    wp_pool_destroy(p);
}

/* ------------------------------------------------------------ shutdown -- */

typedef struct discards {
    atomic_int count;
    atomic_int wrong_fn;
    atomic_int *seen; /* per task arg index */
} discards;

static void on_discard(wp_task_fn fn, void *arg, void *user)
{
    discards *d = user;
    if (fn != count_task) atomic_fetch_add(&d->wrong_fn, 1);
    atomic_fetch_add(&d->count, 1);
    atomic_fetch_add((atomic_int *)arg, 100); /* mark: discarded, not run */
}

static void *discard_thread(void *arg)
{
    return (void *)(intptr_t)wp_pool_shutdown(arg, WP_DISCARD);
}

TEST(discard_hands_queued_tasks_to_on_discard)
{
    discards d = {0};
    wp_config cfg;
    wp_config_init(&cfg);
    cfg.workers = 1;
    cfg.queue_capacity = 16;
    cfg.on_discard = on_discard;
    cfg.user = &d;
    wp_pool *p;
    ASSERT_OK(wp_pool_create(&p, &cfg));
    gate g;
    ASSERT(hold_worker(p, &g));
    atomic_int marks[10];
    for (int i = 0; i < 10; i++) {
        atomic_init(&marks[i], 0);
        ASSERT_OK(wp_submit(p, count_task, &marks[i]));
    }
    /* Shutdown waits for the running (gated) task: call it from a thread. */
    pthread_t sd;
    pthread_create(&sd, NULL, discard_thread, p);
    test_sleep_ms(20);
    gate_open(&g);
    void *rc;
    pthread_join(sd, &rc);
    ASSERT_EQ((intptr_t)rc, 0);
    ASSERT_EQ(atomic_load(&d.count), 10);
    ASSERT_EQ(atomic_load(&d.wrong_fn), 0);
    for (int i = 0; i < 10; i++) ASSERT_EQ(atomic_load(&marks[i]), 100);
    wp_stats st;
    wp_pool_stats(p, &st);
    ASSERT_UEQ(st.submitted, 11);
    ASSERT_UEQ(st.completed, 1);
    ASSERT_UEQ(st.discarded, 10);
    ASSERT_EQ(st.queued, 0);
    ASSERT_UEQ(st.submitted, st.completed + st.discarded);
    wp_pool_destroy(p);
    gate_destroy(&g);
}

TEST(discard_without_callback_still_counts)
{
    wp_pool *p = make_pool_policy(1, 8, WP_FULL_BLOCK);
    ASSERT(p != NULL);
    wp_pool_pause(p);
    atomic_int n = 0;
    for (int i = 0; i < 8; i++) ASSERT_OK(wp_submit(p, count_task, &n));
    ASSERT_OK(wp_pool_shutdown(p, WP_DISCARD));
    ASSERT_EQ(atomic_load(&n), 0);
    wp_stats st;
    wp_pool_stats(p, &st);
    ASSERT_UEQ(st.discarded, 8);
    ASSERT_UEQ(st.completed, 0);
    wp_pool_destroy(p);
}

TEST(drain_runs_everything_queued)
{
    wp_pool *p = make_pool_policy(1, 64, WP_FULL_BLOCK);
    ASSERT(p != NULL);
    gate g;
    ASSERT(hold_worker(p, &g));
    atomic_int n = 0;
    for (int i = 0; i < 40; i++) ASSERT_OK(wp_submit(p, count_task, &n));
    pthread_t sd;
    pthread_create(&sd, NULL, shutdown_thread, p);
    test_sleep_ms(10);
    gate_open(&g);
    void *rc;
    pthread_join(sd, &rc);
    ASSERT_EQ((intptr_t)rc, 0);
    ASSERT_EQ(atomic_load(&n), 40);
    wp_stats st;
    wp_pool_stats(p, &st);
    ASSERT_UEQ(st.completed, 41);
    ASSERT_UEQ(st.discarded, 0);
    wp_pool_destroy(p);
    gate_destroy(&g);
}

TEST(after_shutdown_everything_is_epipe)
{
    int modes[] = {WP_DRAIN, WP_DISCARD};
    for (int m = 0; m < 2; m++) {
        wp_pool *p = make_pool_policy(2, 4, WP_FULL_CALLER_RUNS);
        ASSERT(p != NULL);
        ASSERT_OK(wp_pool_shutdown(p, modes[m]));
        atomic_int n = 0;
        void *args[2] = {&n, &n};
        ASSERT_ERR(wp_submit(p, count_task, &n), EPIPE);
        ASSERT_ERR(wp_try_submit(p, count_task, &n), EPIPE);
        ASSERT_ERR(wp_submit_timeout(p, count_task, &n, 0), EPIPE);
        ASSERT_ERR(wp_submit_timeout(p, count_task, &n, WP_FOREVER), EPIPE);
        ASSERT_ERR(wp_submit_batch(p, count_task, args, 2), EPIPE);
        ASSERT_ERR(wp_pool_shutdown(p, WP_DRAIN), EPIPE);
        ASSERT_ERR(wp_pool_shutdown(p, WP_DISCARD), EPIPE);
        ASSERT_OK(wp_wait(p));
        wp_pool_pause(p); /* harmless */
        wp_pool_resume(p);
        ASSERT_EQ(atomic_load(&n), 0);
        wp_stats st;
        wp_pool_stats(p, &st);
        ASSERT_UEQ(st.submitted, 0);
        ASSERT_EQ(st.workers, 2);
        wp_pool_destroy(p);
    }
}

TEST(destroy_drains_a_running_pool)
{
    atomic_int n = 0;
    wp_pool *p = make_pool_policy(2, 16, WP_FULL_BLOCK);
    ASSERT(p != NULL);
    for (int i = 0; i < 1000; i++) ASSERT_OK(wp_submit(p, count_task, &n));
    wp_pool_destroy(p);
    ASSERT_EQ(atomic_load(&n), 1000);
}

/* ------------------------------------------------------------- workers -- */

typedef struct lifecycle {
    atomic_int started[8], stopped[8];
    atomic_int bad;
    char names[8][16];
    size_t stack[8];
    int signals_blocked[8];
} lifecycle;

static void on_start(unsigned id, void *user)
{
    lifecycle *lc = user;
    if (id >= 8 || wp_worker_id() != (int)id) {
        atomic_fetch_add(&lc->bad, 1);
        return;
    }
    atomic_fetch_add(&lc->started[id], 1);
    pthread_getname_np(pthread_self(), lc->names[id], sizeof lc->names[id]);
    pthread_attr_t a;
    if (pthread_getattr_np(pthread_self(), &a) == 0) {
        pthread_attr_getstacksize(&a, &lc->stack[id]);
        pthread_attr_destroy(&a);
    }
    sigset_t set;
    pthread_sigmask(SIG_BLOCK, NULL, &set);
    lc->signals_blocked[id] = sigismember(&set, SIGINT) && sigismember(&set, SIGTERM) &&
                              sigismember(&set, SIGUSR1) && sigismember(&set, SIGCHLD);
}

static void on_stop(unsigned id, void *user)
{
    lifecycle *lc = user;
    if (id >= 8 || wp_worker_id() != (int)id || atomic_load(&lc->started[id]) != 1)
        atomic_fetch_add(&lc->bad, 1);
    else
        atomic_fetch_add(&lc->stopped[id], 1);
}

typedef struct idcheck {
    atomic_int bad;
    atomic_int seen[8];
} idcheck;

static void id_task(void *arg)
{
    idcheck *c = arg;
    int id = wp_worker_id();
    if (id < 0 || id >= 4)
        atomic_fetch_add(&c->bad, 1);
    else
        atomic_fetch_add(&c->seen[id], 1);
}

TEST(workers_named_started_stopped_with_ids_and_signals_blocked)
{
    lifecycle lc;
    memset(&lc, 0, sizeof lc);
    wp_config cfg;
    wp_config_init(&cfg);
    cfg.workers = 4;
    cfg.name = "crunch";
    cfg.stack_size = 1 << 20;
    cfg.worker_start = on_start;
    cfg.worker_stop = on_stop;
    cfg.user = &lc;
    wp_pool *p;
    ASSERT_OK(wp_pool_create(&p, &cfg));
    idcheck c;
    memset(&c, 0, sizeof c);
    for (int i = 0; i < 2000; i++) ASSERT_OK(wp_submit(p, id_task, &c));
    ASSERT_OK(wp_wait(p));
    ASSERT_EQ(atomic_load(&c.bad), 0);
    ASSERT_OK(wp_pool_shutdown(p, WP_DRAIN));
    ASSERT_EQ(atomic_load(&lc.bad), 0);
    for (int i = 0; i < 4; i++) {
        char want[16];
        snprintf(want, sizeof want, "crunch-%d", i);
        ASSERT_EQ(atomic_load(&lc.started[i]), 1);
        ASSERT_EQ(atomic_load(&lc.stopped[i]), 1);
        ASSERT_STR_EQ(lc.names[i], want);
        ASSERT_GE(lc.stack[i], 1 << 20);
        ASSERT_EQ(lc.signals_blocked[i], 1);
    }
    wp_pool_destroy(p);
}

TEST(long_names_are_cut_keeping_the_id)
{
    lifecycle lc;
    memset(&lc, 0, sizeof lc);
    wp_config cfg;
    wp_config_init(&cfg);
    cfg.workers = 2;
    cfg.name = "averyveryverylongname";
    cfg.worker_start = on_start;
    cfg.user = &lc;
    wp_pool *p;
    ASSERT_OK(wp_pool_create(&p, &cfg));
    wp_pool_destroy(p);
    ASSERT_STR_EQ(lc.names[0], "averyveryvery-0");
    ASSERT_STR_EQ(lc.names[1], "averyveryvery-1");

    memset(&lc, 0, sizeof lc);
    cfg.name = NULL;
    ASSERT_OK(wp_pool_create(&p, &cfg));
    wp_pool_destroy(p);
    ASSERT_STR_EQ(lc.names[1], "wpool-1");
}

/* Thread ids of this process whose name starts with prefix, and how many of
   them are asleep ('S'). */
static void thread_states(const char *prefix, int *total, int *sleeping)
{
    *total = *sleeping = 0;
    DIR *d = opendir("/proc/self/task");
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/self/task/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = 0;
        char *open = strchr(buf, '('), *close = strrchr(buf, ')');
        if (!open || !close) continue;
        *close = 0;
        if (strncmp(open + 1, prefix, strlen(prefix)) != 0) continue;
        (*total)++;
        if (close[2] == 'S') (*sleeping)++;
    }
    closedir(d);
}

/* A pool of 3 workers named name-0..2. */
static wp_pool *three_named(const char *name)
{
    wp_config cfg;
    wp_config_init(&cfg);
    cfg.workers = 3;
    cfg.name = name;
    wp_pool *p = NULL;
    return wp_pool_create(&p, &cfg) == 0 ? p : NULL;
}

/* Polls (up to 5 s) until the 3 threads named prefix* all sleep; returns
   how many sleep. */
static int three_asleep(const char *prefix)
{
    int total = 0, sleeping = 0;
    for (int tries = 0; tries < 500 && !(total == 3 && sleeping == 3); tries++) {
        test_sleep_ms(10);
        thread_states(prefix, &total, &sleeping);
    }
    return total == 3 ? sleeping : -1;
}

TEST(idle_and_paused_workers_sleep)
{
    wp_pool *p = three_named("sleepy");
    ASSERT(p != NULL);
    atomic_int n = 0;
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 1000; i++) ASSERT_OK(wp_submit(p, count_task, &n));
        ASSERT_OK(wp_wait(p));
        if (round == 1) wp_pool_pause(p);
        ASSERT_EQ(three_asleep("sleepy-"), 3);
    }
    wp_pool_resume(p);
    wp_pool_destroy(p);
    ASSERT_EQ(atomic_load(&n), 2000);
    int total, sleeping;
    thread_states("sleepy-", &total, &sleeping);
    ASSERT_EQ(total, 0); /* joined */
}

/* Times the threads whose name starts with prefix went to sleep (their
   voluntary context switches, summed): a sleeping worker woken for nothing
   adds one when it sleeps again. */
static long thread_sleeps(const char *prefix)
{
    long sum = 0;
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[300], line[256], name[64] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/status", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        long vol = 0;
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, "Name:", 5) == 0) sscanf(line + 5, "%63s", name);
            sscanf(line, "voluntary_ctxt_switches: %ld", &vol);
        }
        fclose(f);
        if (strncmp(name, prefix, strlen(prefix)) == 0) sum += vol;
    }
    closedir(d);
    return sum;
}

TEST(submits_into_a_paused_pool_wake_no_worker)
{
    wp_pool *p = three_named("paused");
    ASSERT(p != NULL);
    wp_pool_pause(p);
    /* Idle workers sleep waiting for work and do not know of the pause yet:
       each spaced submit wakes one, which then sleeps waiting for the
       resume. */
    atomic_int n = 0;
    for (int i = 0; i < 3; i++) {
        ASSERT_OK(wp_submit(p, count_task, &n));
        test_sleep_ms(20);
    }
    ASSERT_EQ(three_asleep("paused-"), 3);
    long before = thread_sleeps("paused-");
    ASSERT(before >= 3);
    /* Spaced out, so that a worker woken by one submit would have gone back
       to sleep before the next. */
    for (int i = 0; i < 1000; i++) {
        ASSERT_OK(wp_submit(p, count_task, &n));
        if (i % 20 == 0) test_sleep_ms(1);
    }
    test_sleep_ms(20);
    ASSERT_EQ(thread_sleeps("paused-") - before, 0); /* nobody woke */
    ASSERT_EQ(atomic_load(&n), 0);
    wp_stats st;
    wp_pool_stats(p, &st);
    ASSERT_EQ(st.queued, 1003);
    wp_pool_resume(p);
    ASSERT_OK(wp_wait(p));
    ASSERT_EQ(atomic_load(&n), 1003);
    wp_pool_destroy(p);
}

TEST(create_destroy_in_a_loop)
{
    int rounds = getenv("WPOOL_TEST_SMALL") ? 20 : 300;
    atomic_int n = 0;
    for (int i = 0; i < rounds; i++) {
        wp_pool *p = make_pool_policy((unsigned)(i % 4) + 1, (size_t)(i % 7) + 1, i % 3);
        ASSERT(p != NULL);
        for (int k = 0; k < i % 5; k++) wp_try_submit(p, count_task, &n);
        if (i % 2) wp_pool_shutdown(p, i % 4 == 1 ? WP_DISCARD : WP_DRAIN);
        wp_pool_destroy(p);
    }
}

typedef struct slow {
    atomic_int n;
} slow;

static void slow_task(void *arg)
{
    test_sleep_ms(1);
    atomic_fetch_add(&((slow *)arg)->n, 1);
}

TEST(destroying_one_pool_leaves_another_running)
{
    wp_pool *a = make_pool_policy(2, 8, WP_FULL_BLOCK);
    wp_pool *b = make_pool_policy(2, 8, WP_FULL_BLOCK);
    ASSERT(a && b);
    slow sa = {0}, sb = {0};
    for (int i = 0; i < 20; i++) ASSERT_OK(wp_submit(b, slow_task, &sb));
    for (int i = 0; i < 8; i++) ASSERT_OK(wp_submit(a, slow_task, &sa));
    wp_pool_pause(a);
    ASSERT_OK(wp_pool_shutdown(a, WP_DISCARD));
    wp_pool_destroy(a);
    for (int i = 0; i < 20; i++) ASSERT_OK(wp_submit(b, slow_task, &sb));
    ASSERT_OK(wp_wait(b));
    ASSERT_EQ(atomic_load(&sb.n), 40);
    wp_pool_destroy(b);
}

TEST(cpu_count_is_sane)
{
    unsigned n = wp_cpu_count();
    ASSERT_GE(n, 1);
    cpu_set_t set;
    ASSERT_OK(sched_getaffinity(0, sizeof set, &set));
    ASSERT_LE(n, (unsigned)CPU_COUNT(&set));
}

TEST_MAIN()
