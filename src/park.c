/*
 * park: the futex side of wp__event (see park.h for the protocol).
 *
 * Linux: FUTEX_WAIT_BITSET with an absolute CLOCK_MONOTONIC deadline, private
 * futexes (the pool never crosses processes).
 */
#include "park.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

uint64_t wp__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t wp__deadline(uint64_t timeout_ns)
{
    uint64_t now = wp__now_ns();
    if (timeout_ns == UINT64_MAX || timeout_ns > UINT64_MAX - 1 - now) return WP__NO_DEADLINE;
    return now + timeout_ns;
}

static long futex(_Atomic uint32_t *addr, int op, uint32_t val, const struct timespec *ts)
{
    return syscall(SYS_futex, (uint32_t *)addr, op | FUTEX_PRIVATE_FLAG, val, ts, NULL,
                   FUTEX_BITSET_MATCH_ANY);
}

void wp__event_init(wp__event *ev)
{
    atomic_init(&ev->seq, 0);
    atomic_init(&ev->waiters, 0);
    atomic_init(&ev->pending, 0);
}

uint32_t wp__event_prepare(wp__event *ev)
{
    /* acquire: a wake that bumped seq before this load is seen as such, and
       what the waker published before it is visible to our recheck. */
    uint32_t key = atomic_load_explicit(&ev->seq, memory_order_acquire);
    atomic_fetch_add_explicit(&ev->waiters, 1, memory_order_seq_cst);
    /* seq_cst fence: orders waiters++ before the caller's recheck of its
       condition; pairs with the fence the waker issues between making the
       condition true and reading waiters. */
    atomic_thread_fence(memory_order_seq_cst);
    return key;
}

static void leave(wp__event *ev)
{
    /* relaxed: the count is only a hint for wakers; the futex word carries
       the synchronisation. */
    atomic_fetch_sub_explicit(&ev->waiters, 1, memory_order_relaxed);
    /* Whoever returns takes the in-flight wake token off: a later waker may
       wake someone again. A spare wake only costs a system call. */
    if (atomic_load_explicit(&ev->pending, memory_order_relaxed))
        atomic_store_explicit(&ev->pending, 0, memory_order_relaxed);
}

void wp__event_cancel(wp__event *ev)
{
    leave(ev);
}

int wp__event_wait(wp__event *ev, uint32_t key, uint64_t deadline)
{
    int rc = 0;
    if (deadline == WP__NO_DEADLINE) {
        futex(&ev->seq, FUTEX_WAIT_BITSET, key, NULL);
    } else if (wp__now_ns() >= deadline) {
        rc = ETIMEDOUT;
    } else {
        struct timespec ts = {(time_t)(deadline / 1000000000u), (long)(deadline % 1000000000u)};
        if (futex(&ev->seq, FUTEX_WAIT_BITSET, key, &ts) == -1 && errno == ETIMEDOUT)
            rc = ETIMEDOUT;
    }
    leave(ev);
    return rc;
}

void wp__event_wake_one(wp__event *ev)
{
    /* relaxed loads: the caller's fence orders them after its condition. */
    if (atomic_load_explicit(&ev->waiters, memory_order_relaxed) == 0) return;
    uint32_t expected = 0;
    if (atomic_load_explicit(&ev->pending, memory_order_relaxed) ||
        !atomic_compare_exchange_strong_explicit(&ev->pending, &expected, 1, memory_order_relaxed,
                                                 memory_order_relaxed))
        return; /* a wake is in flight; the woken thread passes it on */
    /* release: a sleeper whose futex_wait fails on the new seq sees what the
       waker published before. */
    atomic_fetch_add_explicit(&ev->seq, 1, memory_order_release);
    if (futex(&ev->seq, FUTEX_WAKE, 1, NULL) <= 0) {
        /* Nobody was asleep in the kernel: every registered waiter is still
           on its way to futex_wait and will fail it on the new seq. Drop the
           token so the next wake is not lost. */
        atomic_store_explicit(&ev->pending, 0, memory_order_relaxed);
    }
}

void wp__event_wake_all(wp__event *ev)
{
    /* release: pairs with the acquire in wp__event_prepare. */
    atomic_fetch_add_explicit(&ev->seq, 1, memory_order_release);
    if (atomic_load_explicit(&ev->waiters, memory_order_relaxed) != 0)
        futex(&ev->seq, FUTEX_WAKE, INT_MAX, NULL);
}
