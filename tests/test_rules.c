/*
 * The rules that round 1 left loose (DESIGN.md, "Rules that round 1 left
 * loose"): no task waits behind a running one, every pool the thread is
 * inside counts, shutdown waits for every running task, destroy is safe
 * against blocked callers and against its own tasks, fork() leaves the
 * child with dead pools. Cases that used to hang run in a child process
 * with an alarm, so a regression fails in seconds instead of stalling.
 */
#include "helpers.h"
#include "wpool.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

/* The fork test starts threads in a child of a process that has some, which
   TSan refuses by default; what it checks there is the library's, not
   TSan's business. */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
    return "die_after_fork=0";
}

/* Runs fn in a child process that must pass within secs seconds. */
static int in_child(void (*fn)(void), unsigned secs)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return 0;
    if (pid == 0) {
        alarm(secs);
        test_failed_now = 0;
        fn();
        fflush(NULL);
        _exit(test_failed_now ? 1 : 0);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0) {
    }
    if (WIFSIGNALED(st))
        fprintf(stderr, "  child died of signal %d (%s)\n", WTERMSIG(st),
                WTERMSIG(st) == SIGALRM ? "hung" : "crashed");
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* Counts one run in the atomic_int at arg. */
static void mark(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
}

/* Short tasks, then a wait: the workers' claims grow to their largest, so
   the next tasks queued together are claimed together. */
static void grow_claims(wp_pool *p)
{
    atomic_int n = 0;
    for (int i = 0; i < 1000; i++) wp_submit(p, mark, &n);
    wp_wait(p);
}

/* ------------------------------------------- nothing waits behind a task -- */

typedef struct nest {
    wp_group *g;
    atomic_int member_ran;
    atomic_int wait_rc;
} nest;

static int member(void *arg)
{
    atomic_fetch_add(&((nest *)arg)->member_ran, 1);
    return 0;
}

static void group_waiter(void *arg)
{
    nest *n = arg;
    atomic_store(&n->wait_rc, wp_group_wait(n->g));
}

/* A task waits for a group whose member was claimed in the same run. */
static void group_member_claimed_behind_its_waiter(void)
{
    for (unsigned workers = 1; workers <= 2; workers++) {
        for (int round = 0; round < 10; round++) {
            wp_pool *p = make_pool(workers, 0);
            ASSERT(p != NULL);
            nest n = {.member_ran = 0, .wait_rc = -1};
            ASSERT_OK(wp_group_create(&n.g, p, 0));
            grow_claims(p);
            wp_pool_pause(p);
            ASSERT_OK(wp_submit(p, group_waiter, &n));
            ASSERT_OK(wp_group_go(n.g, member, &n));
            wp_pool_resume(p);
            ASSERT_OK(wp_wait(p));
            ASSERT_EQ(atomic_load(&n.member_ran), 1);
            ASSERT_EQ(atomic_load(&n.wait_rc), 0);
            wp_group_destroy(n.g);
            wp_pool_destroy(p);
        }
    }
}

TEST(group_member_claimed_behind_its_waiter_runs)
{
    ASSERT(in_child(group_member_claimed_behind_its_waiter, 60));
}

typedef struct pair {
    wp_chan *c;
    atomic_int got, sent;
} pair;

static void receiver(void *arg)
{
    pair *pr = arg;
    int v = 0;
    if (wp_chan_recv(pr->c, &v) == 0) atomic_store(&pr->got, v);
}

static void sender(void *arg)
{
    pair *pr = arg;
    int v = 42;
    if (wp_chan_send(pr->c, &v) == 0) atomic_store(&pr->sent, 1);
}

/* A receiver and its sender queued together on an unbuffered channel. */
static void chan_partners_claimed_together(void)
{
    wp_pool *p = make_pool(2, 0);
    ASSERT(p != NULL);
    for (int round = 0; round < 10; round++) {
        pair pr = {.got = 0, .sent = 0};
        ASSERT_OK(wp_chan_create(&pr.c, sizeof(int), 0));
        grow_claims(p);
        test_sleep_ms(2); /* both workers go to sleep */
        wp_pool_pause(p);
        ASSERT_OK(wp_submit(p, receiver, &pr));
        ASSERT_OK(wp_submit(p, sender, &pr));
        wp_pool_resume(p);
        ASSERT_OK(wp_wait(p));
        ASSERT_EQ(atomic_load(&pr.got), 42);
        ASSERT_EQ(atomic_load(&pr.sent), 1);
        wp_chan_destroy(pr.c);
    }
    wp_pool_destroy(p);
}

TEST(channel_partners_claimed_together_meet)
{
    ASSERT(in_child(chan_partners_claimed_together, 60));
}

typedef struct blocker {
    atomic_int shorts;
    int seen; /* shorts done when the blocker stopped waiting */
    pthread_mutex_t mu;
    pthread_cond_t cv;
} blocker;

static void short_task(void *arg)
{
    blocker *b = arg;
    pthread_mutex_lock(&b->mu);
    atomic_fetch_add(&b->shorts, 1);
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

/* Blocks until the 20 short tasks queued behind it have run (or 10 s). */
static void blocking_task(void *arg)
{
    blocker *b = arg;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&b->mu);
    while (atomic_load(&b->shorts) < 20)
        if (pthread_cond_timedwait(&b->cv, &b->mu, &until) != 0) break;
    b->seen = atomic_load(&b->shorts);
    pthread_mutex_unlock(&b->mu);
}

/* The tasks queued behind a blocked one run on the idle worker meanwhile:
   the blocker sees all 20 done (it would see none before its 10 s ran out if
   they waited behind it). Not a timing: only who can run what. */
TEST(tasks_behind_a_blocked_task_run_on_an_idle_worker)
{
    wp_pool *p = make_pool(2, 0);
    ASSERT(p != NULL);
    for (int round = 0; round < 3; round++) {
        blocker b = {.shorts = 0, .seen = -1};
        pthread_mutex_init(&b.mu, NULL);
        pthread_cond_init(&b.cv, NULL);
        grow_claims(p);
        wp_pool_pause(p);
        ASSERT_OK(wp_submit(p, blocking_task, &b));
        for (int i = 0; i < 20; i++) ASSERT_OK(wp_submit(p, short_task, &b));
        wp_pool_resume(p);
        ASSERT_OK(wp_wait(p));
        ASSERT_EQ(b.seen, 20);
        ASSERT_EQ(atomic_load(&b.shorts), 20);
        pthread_mutex_destroy(&b.mu);
        pthread_cond_destroy(&b.cv);
    }
    wp_stats st;
    wp_pool_stats(p, &st);
    ASSERT_UEQ(st.submitted, st.completed);
    wp_pool_destroy(p);
}

/* Many claimed runs, many thieves: every task runs exactly once. */
static void mark_once(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    if ((((uintptr_t)arg) >> 2) % 97 == 0) sched_yield(); /* some tasks are slower */
}

TEST(stolen_and_claimed_tasks_run_exactly_once)
{
    enum { N = 20000 };
    static atomic_int slots[N];
    for (unsigned workers = 2; workers <= 4; workers += 2) {
        for (int i = 0; i < N; i++) atomic_init(&slots[i], 0);
        wp_pool *p = make_pool(workers, 256);
        ASSERT(p != NULL);
        unsigned rounds = test_iters(20);
        for (unsigned r = 0; r < rounds; r++) {
            for (int i = (int)(r * N / rounds); i < (int)((r + 1) * N / rounds); i++)
                ASSERT_OK(wp_submit(p, mark_once, &slots[i]));
            ASSERT_OK(wp_wait(p));
            wp_stats st;
            wp_pool_stats(p, &st);
            ASSERT_EQ(st.active, 0);
            ASSERT_EQ(st.queued, 0);
        }
        int bad = 0;
        for (int i = 0; i < N; i++) bad += atomic_load(&slots[i]) != 1;
        ASSERT_EQ(bad, 0);
        wp_pool_destroy(p);
    }
}

/* ------------------------------------------- every pool the thread is in -- */

typedef struct nested {
    wp_pool *a, *b;
    gate hold_b;
    atomic_int wait_rc, shutdown_rc, id, inline_ran, filler_ran, ran;
} nested;

static void noop(void *arg)
{
    (void)arg;
}

/* Runs inline on A's worker, as B's caller-runs overflow. */
static void inner_of_b(void *arg)
{
    nested *n = arg;
    atomic_store(&n->wait_rc, wp_wait(n->a));
    atomic_store(&n->shutdown_rc, wp_pool_shutdown(n->a, WP_DRAIN));
    atomic_store(&n->id, wp_worker_id());
    /* A is full (its one worker is here, its queue of 1 taken): a submit
       into it must run the task here, not wait. */
    atomic_int *r = (atomic_int *)&n->filler_ran;
    if (wp_submit(n->a, mark, r) != 0) return;
    if (wp_submit(n->a, mark, (atomic_int *)&n->inline_ran) != 0) return;
    atomic_fetch_add(&n->ran, 1);
}

static void task_of_a(void *arg)
{
    nested *n = arg;
    if (wp_submit(n->b, gate_task, &n->hold_b) != 0) return;
    if (!wait_for(&n->hold_b.entered, 1)) return;
    if (wp_submit(n->b, noop, NULL) != 0) return; /* B's queue of 1 is full now */
    wp_submit(n->b, inner_of_b, n);               /* runs here */
    gate_open(&n->hold_b);
}

static void every_pool_counts(void)
{
    nested n = {.wait_rc = -1, .shutdown_rc = -1, .id = -2};
    gate_init(&n.hold_b);
    n.a = make_pool(1, 1);
    n.b = make_pool_policy(1, 1, WP_FULL_CALLER_RUNS);
    ASSERT(n.a && n.b);
    ASSERT_OK(wp_submit(n.a, task_of_a, &n));
    ASSERT_OK(wp_wait(n.a));
    ASSERT_OK(wp_wait(n.b));
    ASSERT_EQ(atomic_load(&n.ran), 1);
    ASSERT_ERR(atomic_load(&n.wait_rc), EDEADLK);
    ASSERT_ERR(atomic_load(&n.shutdown_rc), EDEADLK);
    ASSERT_EQ(atomic_load(&n.id), 0); /* still A's worker 0 */
    ASSERT_EQ(atomic_load(&n.filler_ran), 1);
    ASSERT_EQ(atomic_load(&n.inline_ran), 1);
    wp_pool_destroy(n.b);
    wp_pool_destroy(n.a);
    gate_destroy(&n.hold_b);
}

TEST(rules_hold_for_every_pool_the_thread_is_inside)
{
    ASSERT(in_child(every_pool_counts, 60));
}

/* A worker of a pool runs its own full pool's overflow inline, also with
   wp_submit_timeout (room only it could make). */
typedef struct own {
    wp_pool *p;
    atomic_int ran, rc;
} own;

static void submits_into_own_full_pool(void *arg)
{
    own *o = arg;
    if (wp_submit(o->p, noop, NULL) != 0) return; /* the queue of 1 is full */
    atomic_store(&o->rc, wp_submit_timeout(o->p, mark, &o->ran, 30ull * 1000000000u));
}

TEST(submit_timeout_into_own_full_pool_runs_inline)
{
    own o = {.ran = 0, .rc = -1};
    o.p = make_pool(1, 1);
    ASSERT(o.p != NULL);
    ASSERT_OK(wp_submit(o.p, submits_into_own_full_pool, &o));
    ASSERT_OK(wp_wait(o.p));
    ASSERT_EQ(atomic_load(&o.rc), 0);
    ASSERT_EQ(atomic_load(&o.ran), 1);
    wp_stats st;
    wp_pool_stats(o.p, &st);
    ASSERT_UEQ(st.rejected, 0);
    ASSERT_UEQ(st.submitted, 3);
    ASSERT_UEQ(st.completed, 3);
    wp_pool_destroy(o.p);
}

static void rejects_into_own_full_pool(void *arg)
{
    own *o = arg;
    if (wp_submit(o->p, noop, NULL) != 0) return;
    atomic_store(&o->rc, wp_submit(o->p, mark, &o->ran));
}

/* WP_FULL_REJECT says EAGAIN, also to a task of the pool (documented). */
TEST(reject_policy_into_own_full_pool_says_eagain)
{
    own o = {.ran = 0, .rc = -1};
    o.p = make_pool_policy(1, 1, WP_FULL_REJECT);
    ASSERT(o.p != NULL);
    ASSERT_OK(wp_submit(o.p, rejects_into_own_full_pool, &o));
    ASSERT_OK(wp_wait(o.p));
    ASSERT_ERR(atomic_load(&o.rc), EAGAIN);
    ASSERT_EQ(atomic_load(&o.ran), 0);
    wp_pool_destroy(o.p);
}

/* ------------------------------------------------------------ shutdown -- */

typedef struct slow {
    wp_pool *p;
    atomic_int started, finished, go_on, rc;
} slow;

static void slow_inline(void *arg)
{
    slow *s = arg;
    atomic_store(&s->started, 1);
    while (!atomic_load(&s->go_on)) test_sleep_ms(1);
    test_sleep_ms(50); /* shutdown has long been called */
    atomic_store(&s->finished, 1);
}

static void *caller_runs_producer(void *arg)
{
    slow *s = arg;
    atomic_store(&s->rc, wp_submit(s->p, slow_inline, s));
    return NULL;
}

TEST(shutdown_waits_for_a_caller_runs_task)
{
    slow s = {.rc = -1};
    s.p = make_pool_policy(1, 1, WP_FULL_CALLER_RUNS);
    ASSERT(s.p != NULL);
    gate g;
    ASSERT(hold_worker(s.p, &g));
    ASSERT_OK(wp_submit(s.p, noop, NULL)); /* full */
    pthread_t t;
    ASSERT_OK(pthread_create(&t, NULL, caller_runs_producer, &s));
    ASSERT(wait_for(&s.started, 1));
    gate_open(&g);
    atomic_store(&s.go_on, 1);
    ASSERT_OK(wp_pool_shutdown(s.p, WP_DRAIN));
    ASSERT_EQ(atomic_load(&s.finished), 1);
    wp_stats st;
    wp_pool_stats(s.p, &st);
    ASSERT_UEQ(st.submitted, 3);
    ASSERT_UEQ(st.completed, 3);
    ASSERT_UEQ(st.submitted, st.completed + st.discarded);
    pthread_join(t, NULL);
    ASSERT_OK(atomic_load(&s.rc));
    wp_pool_destroy(s.p);
    gate_destroy(&g);
}

typedef struct drain {
    wp_pool *p;
    atomic_int done;                  /* tasks run */
    atomic_int wait_seen, again_seen; /* done when the call returned */
    atomic_int wait_rc, again_rc, early_rc, early_seen, shutdown_rc;
} drain;

static void *waiter(void *arg)
{
    drain *d = arg;
    atomic_store(&d->wait_rc, wp_wait(d->p));
    atomic_store(&d->wait_seen, atomic_load(&d->done));
    return NULL;
}

static void *early_waiter(void *arg)
{
    drain *d = arg;
    atomic_store(&d->early_rc, wp_wait(d->p));
    atomic_store(&d->early_seen, atomic_load(&d->done));
    return NULL;
}

static void *second_shutdown(void *arg)
{
    drain *d = arg;
    atomic_store(&d->again_rc, wp_pool_shutdown(d->p, WP_DISCARD));
    atomic_store(&d->again_seen, atomic_load(&d->done));
    return NULL;
}

static void *first_shutdown(void *arg)
{
    drain *d = arg;
    atomic_store(&d->shutdown_rc, wp_pool_shutdown(d->p, WP_DRAIN));
    return NULL;
}

/* wp_wait and a second shutdown that come during a drain wait for it. */
TEST(wait_and_second_shutdown_wait_for_a_drain_in_progress)
{
    drain d = {.wait_rc = -1, .again_rc = -1, .early_rc = -1, .shutdown_rc = -1};
    d.p = make_pool(1, 256);
    ASSERT(d.p != NULL);
    gate g;
    ASSERT(hold_worker(d.p, &g));
    for (int i = 0; i < 200; i++) ASSERT_OK(wp_submit(d.p, mark, &d.done));
    pthread_t early, first, w, again;
    ASSERT_OK(pthread_create(&early, NULL, early_waiter, &d)); /* blocked before the shutdown */
    test_sleep_ms(10);
    ASSERT_OK(pthread_create(&first, NULL, first_shutdown, &d));
    int rc;
    while ((rc = wp_try_submit(d.p, mark, &d.done)) == 0) test_sleep_ms(1); /* until closed */
    ASSERT_ERR(rc, EPIPE);
    int queued_extra = atomic_load(&d.done); /* 0: nothing ran yet */
    ASSERT_EQ(queued_extra, 0);
    ASSERT_OK(pthread_create(&w, NULL, waiter, &d));
    ASSERT_OK(pthread_create(&again, NULL, second_shutdown, &d));
    test_sleep_ms(20); /* they are inside their calls (or about to be) */
    wp_stats st;
    wp_pool_stats(d.p, &st);
    int total = (int)st.submitted - 1; /* all but the gate task */
    gate_open(&g);
    pthread_join(first, NULL);
    pthread_join(w, NULL);
    pthread_join(again, NULL);
    pthread_join(early, NULL);
    ASSERT_OK(atomic_load(&d.shutdown_rc));
    ASSERT_OK(atomic_load(&d.wait_rc));
    ASSERT_OK(atomic_load(&d.early_rc));
    ASSERT_ERR(atomic_load(&d.again_rc), EPIPE);
    ASSERT_GE(total, 200);
    ASSERT_EQ(atomic_load(&d.done), total);
    ASSERT_EQ(atomic_load(&d.wait_seen), total);
    ASSERT_EQ(atomic_load(&d.early_seen), total);
    ASSERT_EQ(atomic_load(&d.again_seen), total);
    wp_pool_destroy(d.p);
    gate_destroy(&g);
}

/* ------------------------------------------------------------- destroy -- */

typedef struct blocked {
    wp_pool *p;
    atomic_int rc, in;
} blocked;

static void *blocked_submitter(void *arg)
{
    blocked *b = arg;
    atomic_store(&b->in, 1);
    atomic_store(&b->rc, wp_submit(b->p, noop, NULL));
    return NULL;
}

static void *destroyer(void *arg)
{
    wp_pool_destroy(arg);
    return NULL;
}

static void destroy_with_blocked_submitter(void)
{
    for (int round = 0; round < 5; round++) {
        blocked b = {.rc = -1, .in = 0};
        b.p = make_pool(1, 1);
        ASSERT(b.p != NULL);
        gate g;
        ASSERT(hold_worker(b.p, &g));
        ASSERT_OK(wp_submit(b.p, noop, NULL)); /* full */
        pthread_t t, d;
        ASSERT_OK(pthread_create(&t, NULL, blocked_submitter, &b));
        ASSERT(wait_for(&b.in, 1));
        test_sleep_ms(5); /* asleep in wp_submit (or about to be) */
        ASSERT_OK(pthread_create(&d, NULL, destroyer, b.p));
        int rc;
        while ((rc = wp_try_submit(b.p, noop, NULL)) == EAGAIN) test_sleep_ms(1);
        ASSERT_ERR(rc, EPIPE); /* the destroy's shutdown closed the queue */
        gate_open(&g);
        pthread_join(t, NULL);
        pthread_join(d, NULL);
        ASSERT_ERR(atomic_load(&b.rc), EPIPE);
        gate_destroy(&g);
    }
}

TEST(destroy_wakes_a_blocked_submitter_and_frees_after_it_left)
{
    ASSERT(in_child(destroy_with_blocked_submitter, 60));
}

typedef struct self {
    wp_pool *p;
    atomic_int after;
} self;

static void destroys_own_pool(void *arg)
{
    self *s = arg;
    wp_pool_destroy(s->p); /* does nothing */
    atomic_store(&s->after, wp_submit(s->p, noop, NULL) == 0 ? 1 : 2);
}

static void destroy_from_inside(void)
{
    self s = {.after = 0};
    s.p = make_pool(2, 16);
    ASSERT(s.p != NULL);
    ASSERT_OK(wp_submit(s.p, destroys_own_pool, &s));
    ASSERT_OK(wp_wait(s.p));
    ASSERT_EQ(atomic_load(&s.after), 1);
    wp_stats st;
    wp_pool_stats(s.p, &st);
    ASSERT_UEQ(st.completed, 2);
    wp_pool_destroy(s.p);
}

TEST(destroy_from_inside_its_own_task_does_nothing)
{
    ASSERT(in_child(destroy_from_inside, 60));
}

/* ---------------------------------------------------------------- fork -- */

static atomic_int hooks_called;

static void count_stop(unsigned id, void *user)
{
    (void)id;
    (void)user;
    atomic_fetch_add(&hooks_called, 1);
}

static int group_noop(void *arg)
{
    (void)arg;
    return 0;
}

static void body_noop(size_t lo, size_t hi, void *arg)
{
    (void)lo;
    (void)hi;
    (void)arg;
}

TEST(a_child_process_finds_inherited_pools_dead)
{
    wp_config cfg;
    wp_config_init(&cfg);
    cfg.workers = 2;
    cfg.queue_capacity = 4;
    cfg.worker_stop = count_stop;
    wp_pool *p = NULL;
    ASSERT_OK(wp_pool_create(&p, &cfg));
    wp_group *g = NULL;
    ASSERT_OK(wp_group_create(&g, p, 0));
    atomic_int n = 0;
    ASSERT_OK(wp_submit(p, mark, &n));
    ASSERT_OK(wp_wait(p));
    fflush(NULL);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        alarm(30);
        int bad = 0;
        for (int i = 0; i < 5; i++) bad += wp_submit(p, mark, &n) != EOWNERDEAD; /* queue of 4 */
        bad += wp_try_submit(p, mark, &n) != EOWNERDEAD;
        bad += wp_submit_timeout(p, mark, &n, 1000000) != EOWNERDEAD;
        void *args[2] = {&n, &n};
        bad += wp_submit_batch(p, mark, args, 2) != EOWNERDEAD;
        bad += wp_submit_batch(p, mark, args, 0) != EOWNERDEAD;
        bad += wp_wait(p) != EOWNERDEAD;
        bad += wp_group_go(g, group_noop, NULL) != EOWNERDEAD;
        bad += wp_parallel_for(p, 0, 100, 1, body_noop, NULL) != EOWNERDEAD;
        bad += wp_pool_shutdown(p, WP_DRAIN) != EOWNERDEAD;
        bad += atomic_load(&n) != 1; /* nothing ran here */
        wp_pool_destroy(p);          /* frees, calls no hook */
        bad += atomic_load(&hooks_called) != 0;
        /* A pool made in the child works. */
        wp_pool *q = make_pool(2, 4);
        atomic_int m = 0;
        bad += q == NULL;
        if (q) {
            for (int i = 0; i < 100; i++) bad += wp_submit(q, mark, &m) != 0;
            bad += wp_wait(q) != 0;
            bad += atomic_load(&m) != 100;
            wp_pool_destroy(q);
        }
        _exit(bad ? 1 : 0);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0) {
    }
    ASSERT(WIFEXITED(st));
    ASSERT_EQ(WEXITSTATUS(st), 0);
    /* The parent's pool is untouched. */
    for (int i = 0; i < 50; i++) ASSERT_OK(wp_submit(p, mark, &n));
    ASSERT_OK(wp_wait(p));
    ASSERT_EQ(atomic_load(&n), 51);
    ASSERT_OK(wp_group_go(g, group_noop, NULL));
    ASSERT_OK(wp_group_wait(g));
    wp_group_destroy(g);
    wp_pool_destroy(p);
    ASSERT_EQ(atomic_load(&hooks_called), 2);
}

/* ------------------------------------------------------- parallel_for -- */

static atomic_size_t pf_chunks;
static atomic_int pf_bad;
static size_t pf_grain;
static int pf_pipe[2];

/* Checks each chunk; after 20000 of them reports to the parent, which
   kills the process (2^64 indices never finish; an exit with workers still
   running would count as a leak under valgrind). */
static void check_chunk(size_t lo, size_t hi, void *arg)
{
    (void)arg;
    if (hi - lo != pf_grain) atomic_fetch_add(&pf_bad, 1);
    if (atomic_fetch_add(&pf_chunks, 1) + 1 == 20000) {
        char verdict = atomic_load(&pf_bad) ? 'B' : 'G';
        if (write(pf_pipe[1], &verdict, 1) != 1) _exit(1);
    }
    if (atomic_load(&pf_chunks) >= 20000) pause();
}

/* Chunks of exactly grain indices, even over the whole size_t range. */
TEST(parallel_for_chunks_are_grain_even_over_size_max)
{
    for (pf_grain = 1; pf_grain <= 3; pf_grain += 2) {
        ASSERT_OK(pipe(pf_pipe));
        fflush(NULL);
        pid_t pid = fork();
        ASSERT(pid >= 0);
        if (pid == 0) {
            alarm(120);
            wp_pool *p = make_pool(2, 0);
            if (p) wp_parallel_for(p, 0, SIZE_MAX, pf_grain, check_chunk, NULL);
            _exit(3); /* not reached */
        }
        close(pf_pipe[1]);
        char verdict = 0;
        ssize_t got = read(pf_pipe[0], &verdict, 1);
        close(pf_pipe[0]);
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0) {
        }
        ASSERT_EQ(got, 1);
        ASSERT_EQ(verdict, 'G');
    }
}

TEST_MAIN()
