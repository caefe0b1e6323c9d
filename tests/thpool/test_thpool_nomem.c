/*
 * thpool_add_work when the overflow cannot grow: it returns -1 as
 * C-Thread-Pool's does when malloc fails, the job is not queued, and the
 * pool goes on working once memory is back. malloc is wrapped at link time
 * (--wrap=malloc, see tests/CMakeLists.txt); skipped under sanitizers.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "test.h"
#include "thpool.h"

static _Thread_local bool malloc_fails; /* on this thread only */

void *__real_malloc(size_t size);
void *__wrap_malloc(size_t size);
void *__wrap_malloc(size_t size)
{
    return malloc_fails ? NULL : __real_malloc(size);
}

static void count_job(void *arg)
{
    atomic_fetch_add_explicit((atomic_uint *)arg, 1, memory_order_relaxed);
}

TEST(add_work_returns_minus_one_when_the_overflow_cannot_grow)
{
    atomic_uint ran = 0;
    threadpool tp = thpool_init(1);
    ASSERT(tp != NULL);
    thpool_pause(tp);
    malloc_fails = true;
    unsigned queued = 0;
    int rc;
    while ((rc = thpool_add_work(tp, count_job, &ran)) == 0 && queued < 100000) queued++;
    malloc_fails = false;
    int rc_later = thpool_add_work(tp, count_job, &ran); /* into the overflow now */
    thpool_resume(tp);
    thpool_wait(tp);
    unsigned after_wait = atomic_load(&ran);
    thpool_destroy(tp);
    ASSERT_EQ(rc, -1);
    ASSERT_EQ(queued, 16384); /* the ring's slots need no memory */
    ASSERT_EQ(rc_later, 0);
    ASSERT_EQ(after_wait, queued + 1); /* the refused job never ran */
}

TEST_MAIN()
