/*
 * pool internals shared with group.c (internal).
 */
#ifndef WP_POOL_H
#define WP_POOL_H

#include "wpool.h"

#include <stdbool.h>

/* The pool the calling thread runs a task of (on a worker, or inline on the
   caller), else NULL. */
wp_pool *wp__current_pool(void);

/* On a worker of p: takes one queued task and runs it here, as the worker
   would. Returns false when none was ready. Used by waits that must not
   sleep on a worker (help while waiting). */
bool wp__pool_run_one(wp_pool *p);

/* group.c: for a task WP_DISCARD drops. A group member or parallel-for
   helper is finished as dropped (it never runs) and true is returned: the
   user's on_discard is not called for it. Any other task: false. */
bool wp__group_discard(wp_task_fn fn, void *arg);

#endif
