/*
 * Fault injection: every allocation and every thread creation inside
 * wp_pool_create fails in turn. Each time the error must come back, *out
 * stay untouched, no memory stay allocated and no thread stay alive.
 *
 * malloc, calloc, realloc, posix_memalign, aligned_alloc and pthread_create
 * are wrapped at link time (-Wl,--wrap=..., see tests/CMakeLists.txt), so
 * the library is the same code users get.
 */
#include "test.h"
#include "wpool.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
int __real_posix_memalign(void **p, size_t a, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
int __real_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg);
void __real_free(void *p);

static atomic_int fail_at;  /* fail the fail_at-th call from now (1-based); 0: never */
static atomic_int calls;    /* calls counted since arming */
static atomic_long live;    /* allocations made through the wrappers, not yet freed */
static atomic_int injected; /* how many failures were injected */

static int should_fail(void)
{
    int at = atomic_load(&fail_at);
    if (at == 0) return 0;
    if (atomic_fetch_add(&calls, 1) + 1 == at) {
        atomic_fetch_add(&injected, 1);
        return 1;
    }
    return 0;
}

void *__wrap_malloc(size_t n)
{
    if (should_fail()) return NULL;
    void *p = __real_malloc(n);
    if (p) atomic_fetch_add(&live, 1);
    return p;
}

void *__wrap_calloc(size_t n, size_t m)
{
    if (should_fail()) return NULL;
    void *p = __real_calloc(n, m);
    if (p) atomic_fetch_add(&live, 1);
    return p;
}

void *__wrap_realloc(void *old, size_t n)
{
    if (should_fail()) return NULL;
    void *p = __real_realloc(old, n);
    if (p && !old) atomic_fetch_add(&live, 1);
    return p;
}

int __wrap_posix_memalign(void **out, size_t a, size_t n)
{
    if (should_fail()) return ENOMEM;
    int rc = __real_posix_memalign(out, a, n);
    if (rc == 0) atomic_fetch_add(&live, 1);
    return rc;
}

void *__wrap_aligned_alloc(size_t a, size_t n)
{
    if (should_fail()) return NULL;
    void *p = __real_aligned_alloc(a, n);
    if (p) atomic_fetch_add(&live, 1);
    return p;
}

void __wrap_free(void *p)
{
    if (p) atomic_fetch_sub(&live, 1);
    __real_free(p);
}

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg)
{
    if (should_fail()) return EAGAIN;
    return __real_pthread_create(t, a, fn, arg);
}

static int thread_count(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* thread_count() once it equals want, or after 2 s whatever it is then. A
   joined thread can stay listed in /proc/self/task for a moment: glibc's
   join returns when the kernel clears the thread's tid, a little before it
   removes the task. */
static int thread_count_settled(int want)
{
    int n = thread_count();
    for (int i = 0; i < 2000 && n != want; i++) {
        test_sleep_ms(1);
        n = thread_count();
    }
    return n;
}

static atomic_int started, stopped;

static void on_start(unsigned id, void *user)
{
    (void)id;
    (void)user;
    atomic_fetch_add(&started, 1);
}

static void on_stop(unsigned id, void *user)
{
    (void)id;
    (void)user;
    atomic_fetch_add(&stopped, 1);
}

static void nop(void *arg)
{
    (void)arg;
}

TEST(every_failure_point_of_create_is_undone)
{
    int threads_before = thread_count();
    long live_before = atomic_load(&live);
    int points = 0;
    for (int k = 1; k < 1000; k++) {
        atomic_store(&started, 0);
        atomic_store(&stopped, 0);
        atomic_store(&calls, 0);
        atomic_store(&injected, 0);
        wp_config cfg;
        wp_config_init(&cfg);
        cfg.workers = 4;
        cfg.queue_capacity = 100;
        cfg.worker_start = on_start;
        cfg.worker_stop = on_stop;
        wp_pool *p = (wp_pool *)&cfg, *const untouched = p;
        atomic_store(&fail_at, k);
        int rc = wp_pool_create(&p, &cfg);
        atomic_store(&fail_at, 0);
        if (atomic_load(&injected) == 0) {
            /* Past the last failure point: created for real. */
            ASSERT_OK(rc);
            ASSERT_OK(wp_submit(p, nop, NULL));
            wp_pool_destroy(p);
            points = k - 1;
            break;
        }
        ASSERT(rc == ENOMEM || rc == EAGAIN);
        ASSERT_PTR_EQ(p, untouched);
        ASSERT_EQ(atomic_load(&live), live_before);
        ASSERT_EQ(atomic_load(&started), atomic_load(&stopped)); /* started ones stopped */
        ASSERT_EQ(thread_count_settled(threads_before), threads_before);
    }
    /* pool, ring, worker array, and 4 thread creations at least */
    ASSERT_GE(points, 7);
    ASSERT_EQ(atomic_load(&live), live_before);
    ASSERT_EQ(thread_count_settled(threads_before), threads_before);
    fprintf(stderr, "  %d failure points checked\n", points);
}

TEST(no_allocation_after_create)
{
    wp_config cfg;
    wp_config_init(&cfg);
    cfg.workers = 2;
    cfg.queue_capacity = 8;
    wp_pool *p;
    ASSERT_OK(wp_pool_create(&p, &cfg));
    atomic_store(&calls, 0);
    atomic_store(&injected, 0);
    atomic_store(&fail_at, 1); /* any allocation from now on fails and is counted */
    void *args[100] = {0};
    for (int round = 0; round < 100; round++) {
        for (int i = 0; i < 100; i++) ASSERT_OK(wp_submit(p, nop, NULL));
        ASSERT_OK(wp_submit_batch(p, nop, args, 100));
        wp_try_submit(p, nop, NULL);
        wp_submit_timeout(p, nop, NULL, 1000);
        ASSERT_OK(wp_wait(p));
    }
    wp_pool_pause(p);
    wp_pool_resume(p);
    wp_stats st;
    wp_pool_stats(p, &st);
    ASSERT_OK(wp_pool_shutdown(p, WP_DRAIN));
    atomic_store(&fail_at, 0);
    ASSERT_EQ(atomic_load(&calls), 0); /* not one malloc, calloc, ... or thread */
    wp_pool_destroy(p);
}

typedef struct blocker {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open;
    atomic_int inside;
} blocker;

static void hinted_wait(void *arg)
{
    blocker *b = arg;
    wp_blocking_begin();
    atomic_fetch_add(&b->inside, 1);
    pthread_mutex_lock(&b->mu);
    while (!b->open) pthread_cond_wait(&b->cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
    wp_blocking_end();
}

/* An elastic pool that cannot start the threads it wants (pthread_create
   fails while it grows, from a hint or a resize) keeps working with those
   it has. */
TEST(a_failed_thread_start_while_growing_leaves_a_working_pool)
{
    wp_config cfg;
    wp_config_init(&cfg);
    cfg.workers = 1;
    cfg.max_workers = 8;
    cfg.queue_capacity = 64;
    wp_pool *p;
    ASSERT_OK(wp_pool_create(&p, &cfg));
    blocker b = {.open = 0, .inside = 0};
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cv, NULL);
    atomic_store(&calls, 0);
    atomic_store(&injected, 0);
    atomic_store(&fail_at, 1); /* the next thread creation fails */
    ASSERT_OK(wp_submit(p, hinted_wait, &b));
    for (int i = 0; i < 2000 && atomic_load(&injected) == 0; i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    ASSERT_EQ(atomic_load(&injected), 1);
    atomic_store(&fail_at, 0);
    ASSERT_EQ(atomic_load(&b.inside), 1);
    /* resize reports the error of a failed start, and the target is set */
    atomic_store(&calls, 0);
    atomic_store(&fail_at, 1);
    int rc = wp_pool_resize(p, 4);
    atomic_store(&fail_at, 0);
    ASSERT_ERR(rc, EAGAIN);
    ASSERT_EQ(wp_pool_workers(p), 4);
    /* The pool still runs tasks (the blocked one's replacement comes now,
       or the next grow starts it). */
    pthread_mutex_lock(&b.mu);
    b.open = 1;
    pthread_cond_broadcast(&b.cv);
    pthread_mutex_unlock(&b.mu);
    for (int i = 0; i < 100; i++) ASSERT_OK(wp_submit(p, nop, NULL));
    ASSERT_OK(wp_wait(p));
    wp_stats st;
    wp_pool_stats(p, &st);
    ASSERT_UEQ(st.completed, 101);
    ASSERT_GE(st.threads, 1);
    wp_pool_destroy(p);
    pthread_mutex_destroy(&b.mu);
    pthread_cond_destroy(&b.cv);
}

TEST_MAIN()
