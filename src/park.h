/*
 * park: sleeping and waking threads without a lock (internal).
 *
 * A wp__event is a futex word `seq` plus a count of the threads that are
 * about to sleep or sleeping on it. The protocol is the classic Dekker pair:
 *
 *   sleeper                               waker
 *   key = wp__event_prepare(ev)           make the condition true
 *     (load seq; waiters++; full fence)   full fence (or a seq_cst RMW/load pair)
 *   if condition true: wp__event_cancel   if waiters > 0: wake
 *   else wp__event_wait(ev, key, ...)
 *
 * Either the sleeper sees the condition, or the waker sees waiters > 0 and
 * bumps seq, which makes a futex_wait with the old key return at once. A
 * thread therefore never sleeps through the event it waits for.
 *
 * wp__event_wake_one wakes one sleeper and then holds a `pending` token until
 * a sleeper returns, so a burst of wakers pays one system call, not one each.
 * That means a woken thread must pass the wake on (wake one more) when it
 * finds more to do than it takes: Go's and Tokio's rule for spinning workers.
 *
 * Waking never takes a lock, and costs only a load when nobody sleeps.
 */
#ifndef WP_PARK_H
#define WP_PARK_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>

#define WP__CACHE_LINE  64
#define WP__NO_DEADLINE UINT64_MAX

typedef struct wp__event {
    alignas(WP__CACHE_LINE) _Atomic uint32_t seq; /* futex word, bumped by every wake */
    _Atomic uint32_t waiters;                     /* threads between prepare and return */
    _Atomic uint32_t pending;                     /* a wake_one is in flight */
} wp__event;

/* Now on CLOCK_MONOTONIC, in ns. */
uint64_t wp__now_ns(void);
/* Absolute deadline timeout_ns from now; WP__NO_DEADLINE for WP_FOREVER or overflow. */
uint64_t wp__deadline(uint64_t timeout_ns);

void wp__event_init(wp__event *ev);
/* Registers the caller as a waiter; returns the key for wp__event_wait. */
uint32_t wp__event_prepare(wp__event *ev);
/* Unregisters after prepare, without sleeping (the condition came true). */
void wp__event_cancel(wp__event *ev);
/* Sleeps until woken, seq != key, or the absolute deadline (CLOCK_MONOTONIC
   ns; WP__NO_DEADLINE: none). Unregisters. Returns 0, or ETIMEDOUT once the
   deadline has passed. May return spuriously: callers recheck. */
int wp__event_wait(wp__event *ev, uint32_t key, uint64_t deadline);
/* Wakes one waiter, if any and none is already being woken. The caller has
   made its condition true and issued a full fence (or a seq_cst RMW). */
void wp__event_wake_one(wp__event *ev);
/* Wakes every waiter. Same precondition. */
void wp__event_wake_all(wp__event *ev);

/* Whether anybody waits: a relaxed hint for hot paths, exact after a fence. */
static inline int wp__event_has_waiters(wp__event *ev)
{
    /* relaxed: callers either tolerate a stale 0 (a later fenced check follows)
       or have issued the full fence the protocol above requires. */
    return atomic_load_explicit(&ev->waiters, memory_order_relaxed) != 0;
}

static inline void wp__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#endif
