/*
 * queue.h: the wp_redis handle (internal to libwpool-redis).
 *
 * A handle owns its copy of the configuration, one connection for pushes
 * and dead-letter requeues (push_c, made at open, remade after a loss), and
 * the counters. wp_redis_serve (serve.c) makes its own two connections and
 * keeps its state on its own stack and heap; the handle only records that a
 * serve is in progress, so that close can wait for it.
 *
 * Locks and atomics:
 *   push_lock  guards push_c: one push, batch or requeue at a time.
 *   lock/cond  guard `serving`; close waits on cond until it is 0.
 *   stopped    0 running, 1 stopped (wp_redis_stop), 2 closing; set with a
 *              plain atomic store so that stop is async-signal-safe; read
 *              relaxed by every call (it only ever grows, and nothing else
 *              is published through it).
 *   st.*       counters, relaxed atomic adds: statistics, read by
 *              wp_redis_get_stats with no ordering against anything else.
 */
#ifndef WPOOL_REDIS_QUEUE_H
#define WPOOL_REDIS_QUEUE_H

#include "conn.h"

#include <wpool_redis.h>

#include <pthread.h>
#include <stdatomic.h>

struct wp_redis {
    struct wp__redis_url url;
    char *stream; /* the stream's key */
    char *dead;   /* "<stream>:dead" */
    char *group, *consumer;
    unsigned prefetch, max_deliveries;
    uint64_t visibility_ns, max_len, timeout_ns;
    char max_len_txt[24]; /* max_len in decimal, for XADD MAXLEN ~ */

    pthread_mutex_t push_lock;
    redisContext *push_c; /* protected by push_lock; NULL or in error: remade on next use */

    pthread_mutex_t lock;
    pthread_cond_t cond; /* signalled when serving drops to 0 */
    int serving;         /* protected by lock */

    atomic_int stopped; /* 0, 1 stopped, 2 closing: see above */

    struct {
        _Atomic uint64_t pushed, fetched, acked, failed, reclaimed, dead, reconnects;
    } st;
};

/* Relaxed add to one counter: a statistic, ordered against nothing. */
#define WP__COUNT(q, field, n) atomic_fetch_add_explicit(&(q)->st.field, (n), memory_order_relaxed)

/* Fills argv/argvlen (at least 8 slots) with XADD <key> [MAXLEN ~ n] * <field>
   <data>; returns argc. */
int wp__redis_xadd_argv(const wp_redis *q, const char *key, const char *field, const void *data,
                        size_t len, const char **argv, size_t *argvlen);

/* XGROUP CREATE <stream> <group> 0 MKSTREAM on c; an existing group is fine.
   0 or an errno (EPROTO: the key holds something else). */
int wp__redis_make_group(const wp_redis *q, redisContext *c);

/* Monotonic nanoseconds. */
uint64_t wp__redis_now(void);

#endif
