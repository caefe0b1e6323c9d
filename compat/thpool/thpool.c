/*
 * thpool.c: C-Thread-Pool's API on top of wpool's public API.
 *
 * A threadpool is a wp_pool in disguise: struct thpool_ is never defined,
 * the handle is the wp_pool pointer converted, so this layer adds no memory,
 * no lock and no state of its own. Everything lives in the wp_pool, one per
 * pool (no globals): pausing or destroying one pool touches no other. Jobs
 * go into wpool's preallocated bounded queue, so thpool_add_work allocates
 * nothing and waits while the queue is full (WP_FULL_BLOCK).
 */
#include "thpool.h"

#include <errno.h>

#include "wpool.h"

static wp_pool *pool_of(threadpool tp)
{
    return (wp_pool *)(void *)tp;
}

threadpool thpool_init(int num_threads)
{
    wp_config cfg;
    wp_config_init(&cfg);
    cfg.workers = num_threads > 0 ? (unsigned)num_threads : 0; /* 0: wpool's default */
    cfg.name = "thread-pool";                                  /* as C-Thread-Pool names them */
    wp_pool *p = NULL;
    if (wp_pool_create(&p, &cfg) != 0) return NULL;
    return (threadpool)(void *)p;
}

int thpool_add_work(threadpool tp, void (*function_p)(void *), void *arg_p)
{
    return wp_submit(pool_of(tp), function_p, arg_p) == 0 ? 0 : -1;
}

void thpool_wait(threadpool tp)
{
    (void)wp_wait(pool_of(tp)); /* EDEADLK from one of its own jobs: return, not hang */
}

void thpool_pause(threadpool tp)
{
    wp_pool_pause(pool_of(tp));
}

void thpool_resume(threadpool tp)
{
    wp_pool_resume(pool_of(tp));
}

void thpool_destroy(threadpool tp)
{
    wp_pool *p = pool_of(tp);
    if (!p) return;
    /* C-Thread-Pool lets running jobs finish and drops the queued ones. A
       pool cannot be freed from one of its own jobs: do nothing there. */
    if (wp_pool_shutdown(p, WP_DISCARD) == EDEADLK) return;
    wp_pool_destroy(p);
}

int thpool_num_threads_working(threadpool tp)
{
    wp_stats st = {0};
    wp_pool_stats(pool_of(tp), &st);
    return (int)st.active;
}
