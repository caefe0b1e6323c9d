/*
 * pool internals shared with group.c (internal).
 */
#ifndef WP_POOL_H
#define WP_POOL_H

#include "wpool.h"

#include <stdbool.h>

/* Whether the calling thread runs a task of p, at any depth: on one of p's
   workers, or inline (caller-runs) inside a task of another pool. */
bool wp__in_pool(const wp_pool *p);

/* Whether the calling thread is one of p's workers. */
bool wp__worker_of(const wp_pool *p);

/* Whether p was inherited across fork(): its workers are not here. */
bool wp__pool_forked(wp_pool *p);

/* On a worker of p: takes one queued task, or one that another worker
   claimed and has not started, and runs it here, as the worker would.
   Returns false when none was ready. Used by waits that must not sleep on
   a worker (help while waiting). */
bool wp__pool_run_one(wp_pool *p);

/* group.c: for a task WP_DISCARD drops. A group member or parallel-for
   helper is finished as dropped (it never runs) and true is returned: the
   user's on_discard is not called for it. Any other task: false. */
bool wp__group_discard(wp_task_fn fn, void *arg);

#endif
