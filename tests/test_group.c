/*
 * Groups: Go's WaitGroup / errgroup with SetLimit. One rule per test: the
 * limit, the first error, cancellation, nesting inside tasks (help while
 * waiting), WP_DISCARD, errors. No test asserts a timing.
 *
 * WPOOL_TEST_SMALL=1 shrinks the sizes (valgrind); WPOOL_TEST_SCALE grows them.
 */
#include "helpers.h"
#include "test.h"
#include "wpool.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

static int count_member(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    return 0;
}

/* ---------------------------------------------------------- arguments -- */

TEST(null_arguments)
{
    wp_pool *p = make_pool(1, 0);
    ASSERT(p);
    wp_group *g = NULL;
    ASSERT_ERR(wp_group_create(NULL, p, 0), EINVAL);
    ASSERT_ERR(wp_group_create(&g, NULL, 0), EINVAL);
    ASSERT_PTR_EQ(g, NULL);
    ASSERT_OK(wp_group_create(&g, p, 0));
    atomic_int n = 0;
    ASSERT_ERR(wp_group_go(NULL, count_member, &n), EINVAL);
    ASSERT_ERR(wp_group_go(g, NULL, &n), EINVAL);
    ASSERT_ERR(wp_group_wait(NULL), EINVAL);
    wp_group_cancel(NULL);
    ASSERT_EQ(wp_group_cancelled(NULL), 0);
    wp_group_destroy(NULL);
    ASSERT_OK(wp_group_wait(g)); /* no members: returns at once */
    ASSERT_EQ(atomic_load(&n), 0);
    wp_group_destroy(g);
    wp_pool_destroy(p);
}

/* ------------------------------------------------------------- basics -- */

TEST(wait_waits_for_every_member)
{
    wp_pool *p = make_pool(4, 16);
    ASSERT(p);
    wp_group *g;
    ASSERT_OK(wp_group_create(&g, p, 0));
    atomic_int n = 0;
    int total = (int)test_iters(5000);
    for (int i = 0; i < total; i++) ASSERT_OK(wp_group_go(g, count_member, &n));
    ASSERT_OK(wp_group_wait(g));
    ASSERT_EQ(atomic_load(&n), total);
    ASSERT_EQ(wp_group_cancelled(g), 0);
    wp_group_destroy(g);
    wp_pool_destroy(p);
}

TEST(destroy_waits_for_members)
{
    wp_pool *p = make_pool(2, 0);
    ASSERT(p);
    wp_group *g;
    ASSERT_OK(wp_group_create(&g, p, 0));
    atomic_int n = 0;
    int total = (int)test_iters(1000);
    for (int i = 0; i < total; i++) ASSERT_OK(wp_group_go(g, count_member, &n));
    wp_group_destroy(g); /* no wait first */
    ASSERT_EQ(atomic_load(&n), total);
    wp_pool_destroy(p);
}

TEST(reused_after_a_clean_wait)
{
    wp_pool *p = make_pool(2, 4);
    ASSERT(p);
    wp_group *g;
    ASSERT_OK(wp_group_create(&g, p, 2));
    atomic_int n = 0;
    for (int round = 1; round <= 3; round++) {
        for (int i = 0; i < 50; i++) ASSERT_OK(wp_group_go(g, count_member, &n));
        ASSERT_OK(wp_group_wait(g));
        ASSERT_EQ(atomic_load(&n), 50 * round);
    }
    wp_group_destroy(g);
    wp_pool_destroy(p);
}

/* -------------------------------------------------------------- limit -- */

typedef struct limit_probe {
    atomic_int running, max, done;
    int limit;
} limit_probe;

/* Counts how many members run at once, and lingers (up to 50 ms) until the
   limit has been reached, so that reaching it does not hang on timing: a
   worker may have claimed several queued members at once, and then its
   first one must end before the others start. */
static int limit_member(void *arg)
{
    limit_probe *lp = arg;
    int now = atomic_fetch_add(&lp->running, 1) + 1;
    int m = atomic_load(&lp->max);
    while (now > m && !atomic_compare_exchange_weak(&lp->max, &m, now)) {
    }
    for (int i = 0; i < 50 && atomic_load(&lp->max) < lp->limit; i++) test_sleep_ms(1);
    atomic_fetch_sub(&lp->running, 1);
    atomic_fetch_add(&lp->done, 1);
    return 0;
}

TEST(limit_is_reached_and_never_exceeded)
{
    static const unsigned limits[] = {1, 2, 3, 5};
    wp_pool *p = make_pool(8, 64);
    ASSERT(p);
    for (size_t k = 0; k < sizeof limits / sizeof limits[0]; k++) {
        limit_probe lp = {.limit = (int)limits[k]};
        wp_group *g;
        ASSERT_OK(wp_group_create(&g, p, limits[k]));
        int total = (int)test_iters(400);
        for (int i = 0; i < total; i++) ASSERT_OK(wp_group_go(g, limit_member, &lp));
        ASSERT_OK(wp_group_wait(g));
        ASSERT_EQ(atomic_load(&lp.done), total);
        ASSERT_EQ(atomic_load(&lp.max), limits[k]);
        wp_group_destroy(g);
    }
    wp_pool_destroy(p);
}

typedef struct many_go {
    wp_group *g;
    limit_probe *lp;
    int n;
} many_go;

static void *go_thread(void *arg)
{
    many_go *m = arg;
    for (int i = 0; i < m->n; i++) EXPECT(wp_group_go(m->g, limit_member, m->lp) == 0);
    return NULL;
}

TEST(limit_holds_with_many_threads_calling_go)
{
    wp_pool *p = make_pool(6, 8);
    ASSERT(p);
    limit_probe lp = {.limit = 4};
    wp_group *g;
    ASSERT_OK(wp_group_create(&g, p, 4));
    pthread_t t[4];
    many_go m = {g, &lp, (int)test_iters(300)};
    for (int i = 0; i < 4; i++) ASSERT_OK(pthread_create(&t[i], NULL, go_thread, &m));
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    ASSERT_OK(wp_group_wait(g));
    ASSERT_EQ(atomic_load(&lp.done), 4 * m.n);
    ASSERT_EQ(atomic_load(&lp.max), 4);
    wp_group_destroy(g);
    wp_pool_destroy(p);
}

/* ------------------------------------------------------ errors, cancel -- */

typedef struct fail_at {
    atomic_int ran;
    int at, code;
} fail_at;

static int numbered_member(void *arg)
{
    fail_at *f = arg;
    int i = atomic_fetch_add(&f->ran, 1);
    return i == f->at ? f->code : 0;
}

TEST(first_error_is_returned_and_cancels_the_rest)
{
    /* Limit 1: members run one after another, in go() order. */
    wp_pool *p = make_pool(2, 0);
    ASSERT(p);
    wp_group *g;
    ASSERT_OK(wp_group_create(&g, p, 1));
    fail_at f = {.at = 10, .code = 42};
    int rc = 0, i = 0;
    for (; i < 100 && rc == 0; i++) rc = wp_group_go(g, numbered_member, &f);
    ASSERT_ERR(rc, ECANCELED); /* some go() after the failure saw the cancel */
    ASSERT_ERR(wp_group_wait(g), 42);
    ASSERT_EQ(atomic_load(&f.ran), 11); /* nothing ran after the failing one */
    ASSERT(wp_group_cancelled(g));
    ASSERT_ERR(wp_group_go(g, numbered_member, &f), ECANCELED);
    ASSERT_ERR(wp_group_wait(g), 42); /* sticky */
    wp_group_destroy(g);
    wp_pool_destroy(p);
}

typedef struct gated {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open;
    atomic_int entered, ran;
    int code;
    void *code_pool; /* the pool, for tasks that need it */
} gated;

static void gated_init(gated *gt, int code)
{
    pthread_mutex_init(&gt->mu, NULL);
    pthread_cond_init(&gt->cv, NULL);
    gt->open = 0;
    atomic_init(&gt->entered, 0);
    atomic_init(&gt->ran, 0);
    gt->code = code;
}

static void gated_open(gated *gt)
{
    pthread_mutex_lock(&gt->mu);
    gt->open = 1;
    pthread_cond_broadcast(&gt->cv);
    pthread_mutex_unlock(&gt->mu);
}

static void gated_destroy(gated *gt)
{
    pthread_mutex_destroy(&gt->mu);
    pthread_cond_destroy(&gt->cv);
}

/* Blocks until the gate opens, then returns the gate's code. */
static int gated_member(void *arg)
{
    gated *gt = arg;
    atomic_fetch_add(&gt->entered, 1);
    pthread_mutex_lock(&gt->mu);
    while (!gt->open) pthread_cond_wait(&gt->cv, &gt->mu);
    pthread_mutex_unlock(&gt->mu);
    return gt->code;
}

static int ran_member(void *arg)
{
    atomic_fetch_add(&((gated *)arg)->ran, 1);
    return 0;
}

static void gated_task(void *arg)
{
    (void)gated_member(arg);
}

TEST(wait_is_for_the_group_not_the_pool)
{
    wp_pool *p = make_pool(2, 0);
    ASSERT(p);
    gated gt;
    gated_init(&gt, 0);
    ASSERT_OK(wp_submit(p, gated_task, &gt)); /* a pool task that will not end yet */
    ASSERT(wait_for(&gt.entered, 1));
    wp_group *g;
    ASSERT_OK(wp_group_create(&g, p, 0));
    ASSERT_OK(wp_group_go(g, ran_member, &gt));
    ASSERT_OK(wp_group_wait(g)); /* a wp_wait here would block */
    ASSERT_EQ(atomic_load(&gt.ran), 1);
    gated_open(&gt);
    ASSERT_OK(wp_wait(p));
    wp_group_destroy(g);
    gated_destroy(&gt);
    wp_pool_destroy(p);
}

TEST(queued_members_of_a_failed_group_are_skipped)
{
    wp_pool *p = make_pool(1, 0);
    ASSERT(p);
    wp_group *g;
    ASSERT_OK(wp_group_create(&g, p, 0));
    gated gt;
    gated_init(&gt, 7);
    ASSERT_OK(wp_group_go(g, gated_member, &gt));
    for (int i = 0; i < 50; i++) ASSERT_OK(wp_group_go(g, ran_member, &gt));
    ASSERT(wait_for(&gt.entered, 1));
    gated_open(&gt); /* the one worker returns 7; everything queued is skipped */
    ASSERT_ERR(wp_group_wait(g), 7);
    ASSERT_EQ(atomic_load(&gt.ran), 0);
    wp_stats st;
    wp_pool_stats(p, &st);
    ASSERT_UEQ(st.completed, 51); /* skipped members still complete as tasks */
    wp_group_destroy(g);
    gated_destroy(&gt);
    wp_pool_destroy(p);
}

typedef struct canceller {
    wp_group *g;
    atomic_int *started;
    int want;
} canceller;

static void *cancel_thread(void *arg)
{
    canceller *c = arg;
    EXPECT(wait_for(c->started, c->want));
    wp_group_cancel(c->g);
    return NULL;
}

typedef struct until_cancel {
    wp_group *g;
    atomic_int started, ran_fn;
} until_cancel;

static int until_cancelled_member(void *arg)
{
    until_cancel *u = arg;
    atomic_fetch_add(&u->ran_fn, 1);
    atomic_fetch_add(&u->started, 1);
    while (!wp_group_cancelled(u->g)) test_sleep_ms(1);
    return 0;
}

TEST(cancel_from_another_thread)
{
    wp_pool *p = make_pool(2, 0);
    ASSERT(p);
    until_cancel u = {0};
    ASSERT_OK(wp_group_create(&u.g, p, 0));
    for (int i = 0; i < 10; i++) ASSERT_OK(wp_group_go(u.g, until_cancelled_member, &u));
    canceller c = {u.g, &u.started, 2};
    pthread_t t;
    ASSERT_OK(pthread_create(&t, NULL, cancel_thread, &c));
    ASSERT_ERR(wp_group_wait(u.g), ECANCELED);
    pthread_join(t, NULL);
    ASSERT_EQ(atomic_load(&u.ran_fn), 2); /* the 8 queued ones were skipped */
    ASSERT(wp_group_cancelled(u.g));
    ASSERT_ERR(wp_group_go(u.g, until_cancelled_member, &u), ECANCELED);
    wp_group_destroy(u.g);
    wp_pool_destroy(p);
}

TEST(go_after_cancel_is_ecanceled)
{
    wp_pool *p = make_pool(1, 0);
    ASSERT(p);
    wp_group *g;
    ASSERT_OK(wp_group_create(&g, p, 3));
    wp_group_cancel(g);
    wp_group_cancel(g); /* twice is fine */
    ASSERT(wp_group_cancelled(g));
    atomic_int n = 0;
    ASSERT_ERR(wp_group_go(g, count_member, &n), ECANCELED);
    ASSERT_ERR(wp_group_wait(g), ECANCELED);
    ASSERT_EQ(atomic_load(&n), 0);
    wp_group_destroy(g);
    wp_pool_destroy(p);
}

/* A go() blocked at the limit returns ECANCELED when the group is cancelled. */
TEST(cancel_releases_go_blocked_at_the_limit)
{
    wp_pool *p = make_pool(1, 0);
    ASSERT(p);
    until_cancel u = {0};
    ASSERT_OK(wp_group_create(&u.g, p, 1));
    ASSERT_OK(wp_group_go(u.g, until_cancelled_member, &u));
    canceller c = {u.g, &u.started, 1};
    pthread_t t;
    ASSERT_OK(pthread_create(&t, NULL, cancel_thread, &c));
    ASSERT_ERR(wp_group_go(u.g, until_cancelled_member, &u), ECANCELED);
    pthread_join(t, NULL);
    ASSERT_ERR(wp_group_wait(u.g), ECANCELED);
    wp_group_destroy(u.g);
    wp_pool_destroy(p);
}

/* ------------------------------------------------------------- nesting -- */

typedef struct node {
    wp_pool *pool;
    int depth;
    unsigned limit;
    atomic_int *visited;
} node;

/* Visits a tree of fan-out 3: each node makes a group for its children,
   waits for them, and returns their first error. */
static int node_member(void *arg)
{
    node *n = arg;
    atomic_fetch_add(n->visited, 1);
    if (n->depth == 0) return 0;
    wp_group *g;
    int rc = wp_group_create(&g, n->pool, n->limit);
    if (rc) return rc;
    node kids[3];
    for (int i = 0; i < 3 && rc == 0; i++) {
        kids[i] = (node){n->pool, n->depth - 1, n->limit, n->visited};
        rc = wp_group_go(g, node_member, &kids[i]);
    }
    int w = wp_group_wait(g);
    wp_group_destroy(g);
    return rc ? rc : w;
}

TEST(nested_groups_on_one_worker_and_a_queue_of_one)
{
    static const unsigned limits[] = {0, 1, 2, 3};
    int depth = getenv("WPOOL_TEST_SMALL") ? 3 : 5;
    int nodes = 0;
    for (int d = 0, w = 1; d <= depth; d++, w *= 3) nodes += w;
    wp_pool *p = make_pool(1, 1);
    ASSERT(p);
    for (size_t k = 0; k < sizeof limits / sizeof limits[0]; k++) {
        atomic_int visited = 0;
        node root = {p, depth, limits[k], &visited};
        wp_group *g;
        ASSERT_OK(wp_group_create(&g, p, limits[k]));
        ASSERT_OK(wp_group_go(g, node_member, &root));
        ASSERT_OK(wp_group_wait(g));
        ASSERT_EQ(atomic_load(&visited), nodes);
        wp_group_destroy(g);
    }
    wp_pool_destroy(p);
}

TEST(nested_groups_on_many_workers)
{
    int depth = getenv("WPOOL_TEST_SMALL") ? 3 : 6;
    int nodes = 0;
    for (int d = 0, w = 1; d <= depth; d++, w *= 3) nodes += w;
    wp_pool *p = make_pool(4, 2);
    ASSERT(p);
    for (unsigned limit = 0; limit <= 2; limit++) {
        atomic_int visited = 0;
        node root = {p, depth, limit, &visited};
        ASSERT_OK(node_member(&root)); /* from outside the pool */
        ASSERT_EQ(atomic_load(&visited), nodes);
    }
    wp_pool_destroy(p);
}

/* One group shared by a whole recursion (WaitGroup style): members go()
   their children into the group they belong to. */
typedef struct walk {
    wp_group *g;
    int depth;
    atomic_int *visited;
} walk;

static walk walks[1 + 4 + 16 + 64 + 256 + 1024];

static int walk_member(void *arg)
{
    walk *w = arg;
    atomic_fetch_add(w->visited, 1);
    if (w->depth == 0) return 0;
    size_t me = (size_t)(w - walks);
    for (size_t i = 1; i <= 4; i++) {
        walk *kid = &walks[me * 4 + i];
        *kid = (walk){w->g, w->depth - 1, w->visited};
        int rc = wp_group_go(w->g, walk_member, kid);
        if (rc) return rc;
    }
    return 0;
}

TEST(members_go_into_their_own_unlimited_group)
{
    wp_pool *p = make_pool(2, 1);
    ASSERT(p);
    atomic_int visited = 0;
    wp_group *g;
    ASSERT_OK(wp_group_create(&g, p, 0));
    walks[0] = (walk){g, 5, &visited};
    ASSERT_OK(wp_group_go(g, walk_member, &walks[0]));
    ASSERT_OK(wp_group_wait(g));
    ASSERT_EQ(atomic_load(&visited), (int)(sizeof walks / sizeof walks[0]));
    wp_group_destroy(g);
    wp_pool_destroy(p);
}

static int wait_on_own_group(void *arg)
{
    return wp_group_wait(*(wp_group **)arg) == EDEADLK ? 0 : 1;
}

static int go_on_own_full_group(void *arg)
{
    atomic_int n = 0;
    return wp_group_go(*(wp_group **)arg, count_member, &n) == EDEADLK ? 0 : 1;
}

TEST(waiting_on_itself_is_edeadlk)
{
    wp_pool *p = make_pool(2, 0);
    ASSERT(p);
    wp_group *g;
    ASSERT_OK(wp_group_create(&g, p, 0));
    ASSERT_OK(wp_group_go(g, wait_on_own_group, &g));
    ASSERT_OK(wp_group_wait(g));
    wp_group_destroy(g);

    /* Limit 1: the one member running is the caller itself. */
    ASSERT_OK(wp_group_create(&g, p, 1));
    ASSERT_OK(wp_group_go(g, go_on_own_full_group, &g));
    ASSERT_OK(wp_group_wait(g));
    wp_group_destroy(g);
    wp_pool_destroy(p);
}

/* ------------------------------------------------------------ shutdown -- */

static atomic_int user_discards;

static void on_discard(wp_task_fn fn, void *arg, void *user)
{
    (void)fn, (void)arg, (void)user;
    atomic_fetch_add(&user_discards, 1);
}

TEST(discarded_members_make_wait_ecanceled)
{
    wp_config cfg;
    wp_config_init(&cfg);
    cfg.workers = 1;
    cfg.on_discard = on_discard;
    wp_pool *p;
    ASSERT_OK(wp_pool_create(&p, &cfg));
    atomic_store(&user_discards, 0);
    wp_group *g;
    ASSERT_OK(wp_group_create(&g, p, 0));
    atomic_int n = 0;
    wp_pool_pause(p);
    for (int i = 0; i < 10; i++) ASSERT_OK(wp_group_go(g, count_member, &n));
    ASSERT_OK(wp_pool_shutdown(p, WP_DISCARD));
    ASSERT_ERR(wp_group_wait(g), ECANCELED);
    ASSERT_EQ(atomic_load(&n), 0);
    ASSERT_EQ(atomic_load(&user_discards), 0); /* group members are the group's */
    wp_stats st;
    wp_pool_stats(p, &st);
    ASSERT_UEQ(st.discarded, 10);
    ASSERT_UEQ(st.submitted, st.completed + st.discarded);
    ASSERT_ERR(wp_group_go(g, count_member, &n), EPIPE);
    wp_group_destroy(g);
    wp_pool_destroy(p);
}

typedef struct shutter {
    wp_pool *p;
    int rc;
} shutter;

static void *shutdown_thread(void *arg)
{
    shutter *s = arg;
    s->rc = wp_pool_shutdown(s->p, WP_DISCARD);
    return NULL;
}

TEST(an_error_before_the_discard_wins)
{
    wp_pool *p = make_pool(1, 0);
    ASSERT(p);
    wp_group *g;
    ASSERT_OK(wp_group_create(&g, p, 0));
    gated gt;
    gated_init(&gt, 9);
    ASSERT_OK(wp_group_go(g, gated_member, &gt));
    for (int i = 0; i < 5; i++) ASSERT_OK(wp_group_go(g, ran_member, &gt));
    ASSERT(wait_for(&gt.entered, 1));
    shutter s = {p, -1};
    pthread_t t;
    ASSERT_OK(pthread_create(&t, NULL, shutdown_thread, &s));
    test_sleep_ms(20); /* either order gives the same answer */
    gated_open(&gt);
    pthread_join(t, NULL);
    ASSERT_OK(s.rc);
    ASSERT_ERR(wp_group_wait(g), 9);
    ASSERT_EQ(atomic_load(&gt.ran), 0);
    wp_group_destroy(g);
    gated_destroy(&gt);
    wp_pool_destroy(p);
}

TEST(go_on_a_shut_down_pool_is_epipe)
{
    wp_pool *p = make_pool(2, 0);
    ASSERT(p);
    wp_group *g, *limited;
    ASSERT_OK(wp_group_create(&g, p, 0));
    ASSERT_OK(wp_group_create(&limited, p, 1));
    ASSERT_OK(wp_pool_shutdown(p, WP_DRAIN));
    atomic_int n = 0;
    ASSERT_ERR(wp_group_go(g, count_member, &n), EPIPE);
    ASSERT_ERR(wp_group_go(limited, count_member, &n), EPIPE);
    ASSERT_ERR(wp_group_go(limited, count_member, &n), EPIPE); /* the record came back */
    ASSERT_OK(wp_group_wait(g));
    ASSERT_EQ(atomic_load(&n), 0);
    wp_group_destroy(g);
    wp_group_destroy(limited);
    wp_pool_destroy(p);
}

/* WP_DISCARD while a task waits for its group's members (helping): the
   queued members are dropped by the waiting worker, its wait ends with
   ECANCELED, and the shutdown can join it. */
static atomic_int discard_wait_rc;

static void waiting_parent(void *arg)
{
    gated *gt = arg;
    wp_pool *p = (wp_pool *)gt->code_pool;
    wp_group *g;
    if (wp_group_create(&g, p, 0) != 0) return;
    wp_group_go(g, gated_member, gt); /* first in the queue: this worker runs it */
    for (int i = 0; i < 3; i++) wp_group_go(g, ran_member, gt);
    atomic_store(&discard_wait_rc, wp_group_wait(g));
    wp_group_destroy(g);
}

static void *discard_shutdown(void *arg)
{
    return (void *)(intptr_t)wp_pool_shutdown(arg, WP_DISCARD);
}

TEST(discard_while_a_task_waits_on_its_group)
{
    wp_pool *p = make_pool(1, 16);
    ASSERT(p);
    gated gt;
    gated_init(&gt, 0);
    gt.code_pool = p;
    atomic_store(&discard_wait_rc, -1);
    ASSERT_OK(wp_submit(p, waiting_parent, &gt));
    ASSERT(wait_for(&gt.entered, 1)); /* the parent helps: runs the gated member */
    pthread_t sd;
    pthread_create(&sd, NULL, discard_shutdown, p);
    test_sleep_ms(20);
    gated_open(&gt);
    void *rc;
    pthread_join(sd, &rc);
    ASSERT_EQ((intptr_t)rc, 0);
    ASSERT_ERR(atomic_load(&discard_wait_rc), ECANCELED);
    ASSERT_EQ(atomic_load(&gt.ran), 0);
    wp_stats st;
    wp_pool_stats(p, &st);
    ASSERT_UEQ(st.discarded, 3);
    ASSERT_UEQ(st.submitted, st.completed + st.discarded);
    gated_destroy(&gt);
    wp_pool_destroy(p);
}

TEST_MAIN()
