/*
 * Stress: many producers, tiny queues, shutdown and pause racing with
 * submits. Every task marks its own slot, so "exactly once" is checked task
 * by task, and the stats must agree with the marks.
 *
 * Size: WPOOL_TEST_SCALE multiplies the task counts (soak by hand);
 * WPOOL_TEST_SMALL=1 shrinks them (valgrind).
 */
#include "helpers.h"
#include "test.h"
#include "pool.h"
#include "wpool.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static size_t scaled(size_t n)
{
    if (getenv("WPOOL_TEST_SMALL")) return n / 50 ? n / 50 : 1;
    return n * test_scale();
}

static void mark(void *arg)
{
    atomic_fetch_add_explicit((atomic_uchar *)arg, 1, memory_order_relaxed);
}

enum { PRODUCERS = 4 };

typedef struct run {
    wp_pool *pool;
    atomic_uchar *slots;
    size_t per_producer;
    int id;
    int mode;         /* 0 submit, 1 try_submit retry, 2 submit_timeout, 3 batch */
    size_t accepted;  /* tasks the pool took (the rest got EPIPE) */
    size_t uncertain; /* a batch cut short by EPIPE: some of these may be in */
    atomic_int *stop; /* set: stop producing */
} run;

static void *producer(void *arg)
{
    run *r = arg;
    size_t base = (size_t)r->id * r->per_producer;
    void *args[16];
    for (size_t i = 0; i < r->per_producer;) {
        if (r->stop && atomic_load(r->stop)) break;
        int rc;
        size_t took = 1;
        switch (r->mode) {
        case 1:
            rc = wp_try_submit(r->pool, mark, &r->slots[base + i]);
            if (rc == EAGAIN) {
                /* Retry as a caller should: let the workers have the CPU
                   (with one CPU, a bare retry loop starves them for whole
                   time slices). */
                sched_yield();
                continue;
            }
            break;
        case 2:
            rc = wp_submit_timeout(r->pool, mark, &r->slots[base + i], 100000);
            if (rc == ETIMEDOUT) continue;
            break;
        case 3:
            took = r->per_producer - i < 16 ? r->per_producer - i : 16;
            for (size_t k = 0; k < took; k++) args[k] = &r->slots[base + i + k];
            rc = wp_submit_batch(r->pool, mark, args, took);
            break;
        default:
            rc = wp_submit(r->pool, mark, &r->slots[base + i]);
        }
        if (rc == EPIPE) {
            if (r->mode == 3) r->uncertain = took;
            break;
        }
        EXPECT(rc == 0);
        if (rc) break;
        i += took;
        r->accepted = i;
    }
    return NULL;
}

/* Runs PRODUCERS producers into p (mode -1: a different mode each) and
   waits for them; r receives what each one managed. */
static void run_producers(wp_pool *p, atomic_uchar *slots, size_t per, int mode, run *r)
{
    pthread_t t[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        r[i] = (run){.pool = p,
                     .slots = slots,
                     .per_producer = per,
                     .id = i,
                     .mode = mode < 0 ? i % 4 : mode};
        pthread_create(&t[i], NULL, producer, &r[i]);
    }
    for (int i = 0; i < PRODUCERS; i++) pthread_join(t[i], NULL);
}

/* Slots among the first n that were not marked exactly once. */
static size_t not_once(const atomic_uchar *slots, size_t n)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += slots[i] != 1;
    return bad;
}

/* ---------------------------------------------------------- ring claims -- */

static void nop_task(void *arg)
{
    (void)arg;
}

/* Claims n tasks with wp__ring_claim_share(max, fair) and checks the count
   and *more; then takes them, in order, as their owner would. */
static void claim_expect(wp__ring *r, uint64_t max, uint64_t fair, uint64_t want, bool more_want,
                         uint64_t *next)
{
    uint64_t first = 0;
    bool more = !more_want;
    uint64_t n = wp__ring_claim_share(r, max, fair, &first, &more);
    ASSERT_UEQ(n, want);
    if (n == 0) return;
    ASSERT_UEQ(first, *next);
    ASSERT_EQ(more, more_want);
    for (uint64_t i = 0; i < n; i++) {
        wp_task_fn fn;
        void *arg;
        wp__ring_take(r, first + i, &fn, &arg);
        ASSERT_PTR_EQ(arg, (void *)(uintptr_t)(first + i));
    }
    *next += n;
}

static void push_expect(wp__ring *r, uint64_t from, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        ASSERT_EQ(wp__ring_push1(r, nop_task, (void *)(uintptr_t)(from + i)), 1);
}

/* A worker's claim takes all it finds up to `fair`; past that, half of what
   it found when it reached the last published task (at least fair), and
   all of max when the ring holds more. Single-threaded: exact counts. */
TEST(ring_claims_past_fair_take_half_of_a_shallow_ring)
{
    wp__ring r;
    ASSERT_OK(wp__ring_init(&r, 1024));
    uint64_t next = 0;
    push_expect(&r, 0, 20);
    claim_expect(&r, 512, 32, 20, false, &next); /* up to fair: all */
    push_expect(&r, 20, 100);
    claim_expect(&r, 512, 32, 50, true, &next); /* reached the end: half */
    claim_expect(&r, 512, 32, 32, true, &next); /* half of 50 is below fair */
    claim_expect(&r, 512, 32, 18, false, &next);
    push_expect(&r, 120, 600);
    claim_expect(&r, 512, 32, 512, true, &next); /* a deeper ring: all of max */
    claim_expect(&r, 512, 32, 44, true, &next);
    claim_expect(&r, 512, 32, 32, true, &next);
    claim_expect(&r, 512, 32, 12, false, &next);
    push_expect(&r, 720, 10);
    claim_expect(&r, 8, 8, 8, true, &next); /* wp__ring_claim: no share */
    claim_expect(&r, 8, 8, 2, false, &next);
    claim_expect(&r, 512, 32, 0, false, &next);
    ASSERT_UEQ(next, 730);
    wp__ring_free(&r);
}

TEST(producers_through_a_tiny_queue_every_task_once)
{
    size_t per = scaled(20000);
    for (int mode = 0; mode < 4; mode++) {
        for (size_t cap = 1; cap <= 4; cap += 3) {
            atomic_uchar *slots = calloc(per * PRODUCERS, 1);
            ASSERT(slots != NULL);
            wp_pool *p = make_pool(3, cap);
            ASSERT(p != NULL);
            run r[PRODUCERS];
            run_producers(p, slots, per, mode, r);
            ASSERT_OK(wp_wait(p));
            ASSERT_EQ(not_once(slots, per * PRODUCERS), 0);
            wp_stats st;
            wp_pool_stats(p, &st);
            ASSERT_UEQ(st.submitted, per * PRODUCERS);
            ASSERT_UEQ(st.completed, per * PRODUCERS);
            ASSERT_EQ(st.queued, 0);
            wp_pool_destroy(p);
            free(slots);
        }
    }
}

static void on_discard(wp_task_fn fn, void *arg, void *user)
{
    (void)fn;
    atomic_fetch_add((atomic_size_t *)user, 1);
    atomic_fetch_add_explicit((atomic_uchar *)arg, 2, memory_order_relaxed); /* 2: discarded */
}

TEST(shutdown_racing_with_producers_loses_nothing)
{
    size_t per = scaled(20000);
    int rounds = getenv("WPOOL_TEST_SMALL") ? 4 : 24;
    for (int round = 0; round < rounds; round++) {
        int how = round % 2 ? WP_DISCARD : WP_DRAIN;
        atomic_uchar *slots = calloc(per * PRODUCERS, 1);
        ASSERT(slots != NULL);
        atomic_size_t discarded = 0;
        wp_config cfg;
        wp_config_init(&cfg);
        cfg.workers = 2;
        cfg.queue_capacity = (size_t)(round % 3) * 7 + 1;
        cfg.on_discard = on_discard;
        cfg.user = &discarded;
        wp_pool *p;
        ASSERT_OK(wp_pool_create(&p, &cfg));
        run r[PRODUCERS];
        pthread_t t[PRODUCERS];
        for (int i = 0; i < PRODUCERS; i++) {
            r[i] = (run){
                .pool = p, .slots = slots, .per_producer = per, .id = i, .mode = (round / 2) % 4};
            pthread_create(&t[i], NULL, producer, &r[i]);
        }
        test_sleep_ms((unsigned)(round % 5));
        ASSERT_OK(wp_pool_shutdown(p, how));
        for (int i = 0; i < PRODUCERS; i++) pthread_join(t[i], NULL);
        /* Each accepted task ran once (1) or was discarded once (2); the
           rest were never accepted (0). */
        size_t ran = 0, disc = 0, bad = 0;
        for (int i = 0; i < PRODUCERS; i++) {
            for (size_t k = 0; k < per; k++) {
                unsigned char v = slots[(size_t)i * per + k];
                if (k < r[i].accepted) {
                    ran += v == 1;
                    disc += v == 2;
                    bad += v != 1 && v != 2;
                } else if (k < r[i].accepted + r[i].uncertain) {
                    ran += v == 1;
                    disc += v == 2;
                    bad += v > 2;
                } else {
                    bad += v != 0;
                }
            }
        }
        ASSERT_EQ(bad, 0);
        if (how == WP_DRAIN) ASSERT_EQ(disc, 0);
        ASSERT_EQ(disc, atomic_load(&discarded));
        wp_stats st;
        wp_pool_stats(p, &st);
        ASSERT_UEQ(st.completed, ran);
        ASSERT_UEQ(st.discarded, disc);
        ASSERT_UEQ(st.submitted, st.completed + st.discarded);
        ASSERT_EQ(st.queued, 0);
        ASSERT_EQ(st.active, 0);
        wp_pool_destroy(p);
        free(slots);
    }
}

typedef struct toggler {
    wp_pool *pool;
    atomic_int stop;
} toggler;

static void *pause_toggler(void *arg)
{
    toggler *tg = arg;
    while (!atomic_load(&tg->stop)) {
        wp_pool_pause(tg->pool);
        test_sleep_ms(1);
        wp_pool_resume(tg->pool);
        sched_yield();
    }
    wp_pool_resume(tg->pool);
    return NULL;
}

TEST(pause_resume_under_load)
{
    size_t per = scaled(20000);
    atomic_uchar *slots = calloc(per * PRODUCERS, 1);
    ASSERT(slots != NULL);
    wp_pool *p = make_pool(3, 16);
    ASSERT(p != NULL);
    toggler tg = {.pool = p};
    pthread_t tt;
    pthread_create(&tt, NULL, pause_toggler, &tg);
    run r[PRODUCERS];
    run_producers(p, slots, per, -1, r);
    atomic_store(&tg.stop, 1);
    pthread_join(tt, NULL);
    ASSERT_OK(wp_wait(p));
    ASSERT_EQ(not_once(slots, per * PRODUCERS), 0);
    wp_stats st;
    wp_pool_stats(p, &st);
    ASSERT_UEQ(st.completed, per * PRODUCERS);
    wp_pool_destroy(p);
    free(slots);
}

typedef struct tree {
    wp_pool *pool;
    atomic_long nodes;
    atomic_int errors;
} tree;

typedef struct tnode {
    tree *t;
    int depth;
} tnode;

static void tree_task(void *arg);

static void spawn(tree *t, int depth)
{
    /* Children live in a static pool of nodes indexed by a counter. */
    static tnode nodes[1 << 17];
    static atomic_long next;
    long i = atomic_fetch_add(&next, 1) % (1 << 17);
    nodes[i] = (tnode){t, depth};
    if (wp_submit(t->pool, tree_task, &nodes[i]) != 0) atomic_fetch_add(&t->errors, 1);
}

static void tree_task(void *arg)
{
    tnode n = *(tnode *)arg;
    atomic_fetch_add(&n.t->nodes, 1);
    if (n.depth > 0)
        for (int c = 0; c < 3; c++) spawn(n.t, n.depth - 1);
}

TEST(nested_submission_into_a_full_pool)
{
    int depth = getenv("WPOOL_TEST_SMALL") ? 6 : 9; /* 3^0 + ... + 3^9 = 29524 tasks */
    long want = 0;
    for (int d = 0, w = 1; d <= depth; d++, w *= 3) want += w;
    for (size_t cap = 1; cap <= 8; cap *= 8) {
        wp_pool *p = make_pool(2, cap);
        ASSERT(p != NULL);
        tree t = {.pool = p};
        spawn(&t, depth);
        ASSERT_OK(wp_wait(p));
        ASSERT_EQ(atomic_load(&t.errors), 0);
        ASSERT_EQ(atomic_load(&t.nodes), want);
        wp_stats st;
        wp_pool_stats(p, &st);
        ASSERT_UEQ(st.completed, (uint64_t)want);
        wp_pool_destroy(p);
    }
}

static void tick(void *arg)
{
    atomic_fetch_add_explicit((atomic_uint *)arg, 1, memory_order_relaxed);
}

/* wp_wait returning means every task's effects are visible and no worker
   counts as active: a worker must clear `active` before it counts its last
   task done, or a waiter that polls at that moment sees it busy. */
TEST(no_worker_active_once_wait_returns)
{
    unsigned rounds = (unsigned)scaled(20000);
    for (unsigned workers = 1; workers <= 3; workers += 2) {
        wp_pool *p = make_pool(workers, 64);
        ASSERT(p != NULL);
        atomic_uint n = 0;
        for (unsigned r = 0; r < rounds; r++) {
            for (unsigned i = 0; i < 1 + r % 40; i++) ASSERT_OK(wp_submit(p, tick, &n));
            ASSERT_OK(wp_wait(p));
            wp_stats st;
            wp_pool_stats(p, &st);
            ASSERT_EQ(st.active, 0);
            ASSERT_EQ(st.queued, 0);
            ASSERT_UEQ(st.completed, atomic_load_explicit(&n, memory_order_relaxed));
        }
        wp_pool_destroy(p);
    }
}

static void *waiter(void *arg)
{
    return (void *)(intptr_t)wp_wait(arg);
}

TEST(many_waiters_at_once)
{
    size_t n = scaled(100000);
    atomic_uchar *slots = calloc(n, 1);
    ASSERT(slots != NULL);
    wp_pool *p = make_pool(2, 32);
    ASSERT(p != NULL);
    pthread_t w[4];
    for (size_t i = 0; i < n; i++) {
        ASSERT_OK(wp_submit(p, mark, &slots[i]));
        if (i == n / 2)
            for (int k = 0; k < 4; k++) pthread_create(&w[k], NULL, waiter, p);
    }
    ASSERT_OK(wp_wait(p));
    for (int k = 0; k < 4; k++) {
        void *rc;
        pthread_join(w[k], &rc);
        ASSERT_EQ((intptr_t)rc, 0);
    }
    ASSERT_EQ(not_once(slots, n), 0);
    wp_pool_destroy(p);
    free(slots);
}

/* Tasks that stall their worker for about as long as thieves wait before
   they steal (WP__STALL_NS, 50 us), so that owners resume right as thieves
   take from the end of their runs, racing for the same positions: every
   task still runs exactly once, and a discard racing with the steals hands
   on_discard exactly what did not run. */
typedef struct stall_arg {
    atomic_uchar *slot;
    unsigned us; /* 0: a short task */
} stall_arg;

static void stall_task(void *arg)
{
    stall_arg *a = arg;
    if (a->us) {
        struct timespec ts = {0, (long)a->us * 1000};
        nanosleep(&ts, NULL);
    }
    atomic_fetch_add_explicit(a->slot, 1, memory_order_relaxed);
}

static void stall_discarded(wp_task_fn fn, void *arg, void *user)
{
    (void)fn;
    (void)user;
    stall_arg *a = arg;
    atomic_fetch_add_explicit(a->slot, 1, memory_order_relaxed);
}

TEST(owners_resuming_while_thieves_steal_run_each_task_once)
{
    enum { BURST = 64 };
    size_t bursts = scaled(1500);
    size_t n = bursts * BURST;
    atomic_uchar *slots = calloc(n, 1);
    stall_arg *args = calloc(n, sizeof *args);
    void **ptrs = calloc(n, sizeof *ptrs);
    ASSERT(slots && args && ptrs);
    unsigned seed = 12345;
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        args[i].slot = &slots[i];
        /* The first task of each burst stalls 20..100 us. */
        args[i].us = i % BURST == 0 ? 20 + (seed >> 8) % 81 : 0;
        ptrs[i] = &args[i];
    }
    for (int round = 0; round < 3; round++) {
        memset(slots, 0, n);
        wp_config cfg;
        wp_config_init(&cfg);
        cfg.workers = 2 + (unsigned)round; /* 2, 3, 4 */
        cfg.on_discard = stall_discarded;
        wp_pool *p;
        ASSERT_OK(wp_pool_create(&p, &cfg));
        /* A burst into an idle pool: its first worker claims the stalling
           task with a run behind it, the others finish theirs and steal. */
        for (size_t b = 0; b < bursts; b++) {
            ASSERT_OK(wp_submit_batch(p, stall_task, ptrs + b * BURST, BURST));
            if (round < 2 || b + 1 < bursts) ASSERT_OK(wp_wait(p));
        }
        /* The last round ends with WP_DISCARD in mid-burst. */
        ASSERT_OK(wp_pool_shutdown(p, round == 2 ? WP_DISCARD : WP_DRAIN));
        wp_stats st;
        wp_pool_stats(p, &st);
        ASSERT_EQ(not_once(slots, n), (size_t)0);
        ASSERT_EQ(st.completed + st.discarded, (uint64_t)n);
        ASSERT_EQ(st.submitted, (uint64_t)n);
        fprintf(stderr, "  %u workers: %llu tasks taken by thieves, %llu discarded\n", cfg.workers,
                (unsigned long long)wp__pool_stolen(p), (unsigned long long)st.discarded);
        wp_pool_destroy(p);
    }
    free(ptrs);
    free(args);
    free(slots);
}

TEST_MAIN()
