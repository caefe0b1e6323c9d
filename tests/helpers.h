/*
 * What several test programs share: sizes, pools, a gate that holds a
 * worker, and waiting for a counter. Everything is static inline, so a
 * program that does not use a helper gets no unused-function warning.
 */
#ifndef WPOOL_TEST_HELPERS_H
#define WPOOL_TEST_HELPERS_H

#include "test.h"
#include "wpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

/* n scaled by WPOOL_TEST_SCALE, or n / 20 (at least 1) under
   WPOOL_TEST_SMALL (valgrind). */
static inline unsigned test_iters(unsigned n)
{
    if (getenv("WPOOL_TEST_SMALL")) return n / 20 ? n / 20 : 1;
    return n * test_scale();
}

static inline wp_pool *make_pool_policy(unsigned workers, size_t capacity, int policy)
{
    wp_config cfg;
    wp_config_init(&cfg);
    cfg.workers = workers;
    cfg.queue_capacity = capacity;
    cfg.full_policy = policy;
    wp_pool *p = NULL;
    if (wp_pool_create(&p, &cfg) != 0) return NULL;
    return p;
}

static inline wp_pool *make_pool(unsigned workers, size_t capacity)
{
    return make_pool_policy(workers, capacity, WP_FULL_BLOCK);
}

/* Waits (up to ~10 s) until *v reaches want; 0 if it never did. */
static inline int wait_for(atomic_int *v, int want)
{
    for (int i = 0; i < 10000; i++) {
        if (atomic_load(v) >= want) return 1;
        test_sleep_ms(1);
    }
    return 0;
}

/* A gate: tasks block in gate_task until gate_open. */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open;
    atomic_int entered;
} gate;

static inline void gate_init(gate *g)
{
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->open = 0;
    atomic_init(&g->entered, 0);
}

static inline void gate_open(gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static inline void gate_task(void *arg)
{
    gate *g = arg;
    atomic_fetch_add(&g->entered, 1);
    pthread_mutex_lock(&g->mu);
    while (!g->open) pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

/* Inits g and occupies one worker of p with gate_task until gate_open;
   1 once that worker is inside the task, else 0. */
static inline int hold_worker(wp_pool *p, gate *g)
{
    gate_init(g);
    return wp_submit(p, gate_task, g) == 0 && wait_for(&g->entered, 1);
}

static inline void gate_destroy(gate *g)
{
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
}

#endif
