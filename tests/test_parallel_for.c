/*
 * wp_parallel_for: every index exactly once, in chunks of at most `grain`,
 * for odd sizes and grains, from outside and inside the pool (nested loops),
 * on a full queue, and its errors. No test asserts a timing.
 *
 * WPOOL_TEST_SMALL=1 shrinks the sizes (valgrind).
 */
#include "helpers.h"
#include "test.h"
#include "wpool.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

/* Marks every index it is given; checks the chunk's shape. */
typedef struct cover {
    size_t begin, end, grain;
    atomic_uchar *seen; /* [end - begin] */
    atomic_int calls, bad;
} cover;

static void cover_body(size_t lo, size_t hi, void *arg)
{
    cover *c = arg;
    atomic_fetch_add(&c->calls, 1);
    if (lo >= hi || lo < c->begin || hi > c->end || (c->grain && hi - lo > c->grain)) {
        atomic_fetch_add(&c->bad, 1);
        return;
    }
    for (size_t i = lo; i < hi; i++) atomic_fetch_add(&c->seen[i - c->begin], 1);
}

/* Runs one loop over [begin, begin + n) and checks it covered each index
   exactly once. Returns the number of faults (0: all good). */
static int check_cover(wp_pool *p, size_t begin, size_t n, size_t grain)
{
    cover c = {begin, begin + n, grain, calloc(n ? n : 1, 1), 0, 0};
    if (!c.seen) return 1;
    int faults = 0;
    if (wp_parallel_for(p, begin, begin + n, grain, cover_body, &c) != 0) faults++;
    for (size_t i = 0; i < n; i++) faults += atomic_load(&c.seen[i]) != 1;
    faults += atomic_load(&c.bad);
    if (n == 0) faults += atomic_load(&c.calls) != 0;
    if (grain && n) faults += atomic_load(&c.calls) != (int)((n + grain - 1) / grain);
    free(c.seen);
    return faults;
}

static size_t big(void)
{
    return getenv("WPOOL_TEST_SMALL") ? 20011 : 100003;
}

TEST(every_index_exactly_once)
{
    const size_t sizes[] = {0, 1, 7, 1000, big()};
    const unsigned workers[] = {1, 2, 4};
    for (size_t w = 0; w < sizeof workers / sizeof workers[0]; w++) {
        wp_pool *p = make_pool(workers[w], 0);
        ASSERT(p);
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            size_t grains[] = {0, 1, 3, 64, sizes[s] + 5};
            for (size_t g = 0; g < sizeof grains / sizeof grains[0]; g++) {
                if (grains[g] == 1 && sizes[s] > 1000 && getenv("WPOOL_TEST_SMALL")) continue;
                ASSERT_EQ(check_cover(p, 0, sizes[s], grains[g]), 0);
                ASSERT_EQ(check_cover(p, 12345, sizes[s], grains[g]), 0);
            }
        }
        wp_pool_destroy(p);
    }
}

TEST(empty_range_calls_nothing)
{
    wp_pool *p = make_pool(2, 0);
    ASSERT(p);
    ASSERT_EQ(check_cover(p, 0, 0, 0), 0);
    ASSERT_EQ(check_cover(p, 99, 0, 7), 0);
    wp_pool_destroy(p);
}

TEST(bad_arguments_are_einval)
{
    wp_pool *p = make_pool(2, 0);
    ASSERT(p);
    cover c = {0};
    ASSERT_ERR(wp_parallel_for(NULL, 0, 10, 0, cover_body, &c), EINVAL);
    ASSERT_ERR(wp_parallel_for(p, 0, 10, 0, NULL, &c), EINVAL);
    ASSERT_ERR(wp_parallel_for(p, 10, 0, 0, cover_body, &c), EINVAL);
    ASSERT_ERR(wp_parallel_for(p, 10, 9, 1, cover_body, &c), EINVAL);
    ASSERT_EQ(atomic_load(&c.calls), 0);
    wp_pool_destroy(p);
}

TEST(shut_down_pool_is_epipe)
{
    wp_pool *p = make_pool(2, 0);
    ASSERT(p);
    ASSERT_OK(wp_pool_shutdown(p, WP_DRAIN));
    cover c = {0, 10, 0, NULL, 0, 0};
    ASSERT_ERR(wp_parallel_for(p, 0, 10, 0, cover_body, &c), EPIPE);
    ASSERT_ERR(wp_parallel_for(p, 0, 10, 1, cover_body, &c), EPIPE);
    ASSERT_EQ(atomic_load(&c.calls), 0);
    wp_pool_destroy(p);
}

/* Records the first and last chunk of a grain-0 loop. */
typedef struct shape {
    size_t end;
    atomic_size_t first, last; /* sizes of [0, ...) and [..., end) */
    atomic_int calls;
} shape;

static void shape_body(size_t lo, size_t hi, void *arg)
{
    shape *s = arg;
    atomic_fetch_add(&s->calls, 1);
    if (lo == 0) atomic_store(&s->first, hi - lo);
    if (hi == s->end) atomic_store(&s->last, hi - lo);
}

TEST(grain_zero_chunks_shrink_towards_the_end)
{
    const unsigned workers[] = {1, 2, 4};
    const size_t n = 100000;
    for (size_t w = 0; w < sizeof workers / sizeof workers[0]; w++) {
        wp_pool *p = make_pool(workers[w], 0);
        ASSERT(p);
        for (int round = 0; round < 3; round++) {
            shape s = {.end = n};
            ASSERT_OK(wp_parallel_for(p, 0, n, 0, shape_body, &s));
            size_t t = workers[w];
            size_t floor = (n + t * 64 - 1) / (t * 64);
            /* Whoever claims first takes what is left over twice the
               threads; the last chunk is at most the floor; every chunk but
               the last is at least the floor. */
            ASSERT_UEQ(atomic_load(&s.first), n / (2 * t));
            ASSERT(atomic_load(&s.last) <= floor && atomic_load(&s.last) > 0);
            ASSERT(atomic_load(&s.calls) <= (int)(t * 64 + 1));
            ASSERT(atomic_load(&s.calls) > (int)(2 * t));
        }
        wp_pool_destroy(p);
    }
}

/* ------------------------------------------------------------- nesting -- */

typedef struct grid {
    wp_pool *pool;
    size_t rows, cols;
    atomic_uchar *seen; /* [rows * cols] */
    atomic_int errors;
} grid;

typedef struct row_arg {
    grid *g;
    size_t row;
} row_arg;

static void col_body(size_t lo, size_t hi, void *arg)
{
    row_arg *r = arg;
    for (size_t j = lo; j < hi; j++) atomic_fetch_add(&r->g->seen[r->row * r->g->cols + j], 1);
}

/* An inner loop per row, from inside the outer loop's body. */
static void row_body(size_t lo, size_t hi, void *arg)
{
    grid *g = arg;
    for (size_t i = lo; i < hi; i++) {
        row_arg r = {g, i};
        if (wp_parallel_for(g->pool, 0, g->cols, i % 3, col_body, &r) != 0)
            atomic_fetch_add(&g->errors, 1);
    }
}

static void grid_task(void *arg)
{
    grid *g = arg;
    if (wp_parallel_for(g->pool, 0, g->rows, 1, row_body, g) != 0) atomic_fetch_add(&g->errors, 1);
}

static int grid_faults(grid *g)
{
    int faults = atomic_load(&g->errors);
    for (size_t i = 0; i < g->rows * g->cols; i++) faults += atomic_load(&g->seen[i]) != 1;
    return faults;
}

TEST(nested_loops_from_outside_and_inside_a_task)
{
    const unsigned workers[] = {1, 3};
    const size_t capacities[] = {1, 64};
    for (size_t w = 0; w < 2; w++) {
        for (size_t c = 0; c < 2; c++) {
            wp_pool *p = make_pool(workers[w], capacities[c]);
            ASSERT(p);
            grid g = {p, 37, 129, calloc(37 * 129, 1), 0};
            ASSERT(g.seen);
            ASSERT_OK(wp_parallel_for(p, 0, g.rows, 2, row_body, &g)); /* from outside */
            ASSERT_EQ(grid_faults(&g), 0);

            for (size_t i = 0; i < g.rows * g.cols; i++) atomic_store(&g.seen[i], 0);
            ASSERT_OK(wp_submit(p, grid_task, &g)); /* from inside a task */
            ASSERT_OK(wp_wait(p));
            ASSERT_EQ(grid_faults(&g), 0);
            free(g.seen);
            wp_pool_destroy(p);
        }
    }
}

/* Loops inside group members, which run inside each other on one worker. */
static int member_loop(void *arg)
{
    grid *g = arg;
    grid_task(g);
    return 0;
}

TEST(loops_inside_group_members)
{
    wp_pool *p = make_pool(1, 1);
    ASSERT(p);
    grid gs[3];
    wp_group *grp;
    ASSERT_OK(wp_group_create(&grp, p, 0));
    for (int k = 0; k < 3; k++) {
        gs[k] = (grid){p, 9, 17, calloc(9 * 17, 1), 0};
        ASSERT(gs[k].seen);
        ASSERT_OK(wp_group_go(grp, member_loop, &gs[k]));
    }
    ASSERT_OK(wp_group_wait(grp));
    for (int k = 0; k < 3; k++) {
        ASSERT_EQ(grid_faults(&gs[k]), 0);
        free(gs[k].seen);
    }
    wp_group_destroy(grp);
    wp_pool_destroy(p);
}

/* --------------------------------------------------------- concurrency -- */

static void *loop_thread(void *arg)
{
    wp_pool *p = arg;
    for (int r = 0; r < 20; r++) EXPECT(check_cover(p, (size_t)r, 5000 + (size_t)r, 0) == 0);
    return NULL;
}

TEST(loops_from_many_threads_at_once)
{
    wp_pool *p = make_pool(3, 8);
    ASSERT(p);
    pthread_t t[4];
    for (int i = 0; i < 4; i++) ASSERT_OK(pthread_create(&t[i], NULL, loop_thread, p));
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    wp_pool_destroy(p);
}

TEST(full_queue_the_caller_does_it_all)
{
    wp_pool *p = make_pool(2, 1);
    ASSERT(p);
    gate g;
    gate_init(&g);
    ASSERT_OK(wp_submit(p, gate_task, &g));
    ASSERT_OK(wp_submit(p, gate_task, &g));
    ASSERT(wait_for(&g.entered, 2));
    ASSERT_OK(wp_submit(p, gate_task, &g)); /* the queue of one is full now */
    /* Had the loop queued a helper it would wait for the gate: it must not. */
    ASSERT_EQ(check_cover(p, 0, 1000, 10), 0);
    gate_open(&g);
    ASSERT_OK(wp_wait(p));
    wp_pool_destroy(p);
    gate_destroy(&g);
}

TEST_MAIN()
