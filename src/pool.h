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

#endif
