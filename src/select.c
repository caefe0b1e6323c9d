/*
 * wp_select: Go's select over channels (runtime/select.go, same protocol).
 *
 *   1. Order the cases twice: a random permutation (poll order: the first
 *      ready case in it is uniform among the ready ones) and by channel
 *      address (lock order: every select locks in the same global order, so
 *      two selects over the same channels cannot deadlock; a channel named
 *      by several cases is locked once).
 *   2. Lock all channels, and complete the first ready case in poll order.
 *   3. None ready and time allowed: queue one sudog per case, all sharing
 *      one waiter, unlock all and sleep. The first partner (or close) to
 *      claim the waiter's `done` flag completes its case; every other
 *      sudog has become stale and no partner will complete it.
 *   4. Woken (or timed out after claiming ourselves): lock all channels
 *      again and take every sudog still queued off its queue.
 *
 * A channel's descriptor (wp_chan_fd) needs nothing here: unlock_all goes
 * through wp__chan_unlock, which sets its level after each of these steps
 * (a send case queued in 3 raises it; taking it off again in 4 lowers it).
 *
 * All of this lives on the caller's stack: at most WP_SELECT_MAX cases, no
 * allocation. The winning sudog's value and the waiter's done (which sudog,
 * closed or not) are written by the claimant under that channel's lock and
 * published by its wake (see chan.c).
 */
#include "chan.h"

#include <errno.h>
#include <string.h>
#include <time.h>

/* xorshift64*, one state per thread, seeded from the clock and the address
   of the state (distinct per thread). */
static _Thread_local uint64_t rng_state;

static uint32_t rng_next(void)
{
    uint64_t x = rng_state;
    if (x == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        x = ((uint64_t)ts.tv_nsec << 32 ^ (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)&rng_state) |
            1;
    }
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return (uint32_t)((x * 0x2545F4914F6CDD1DULL) >> 32);
}

static void lock_all(const wp_select_case *cases, const uint16_t *order, size_t m)
{
    for (size_t k = 0; k < m; k++) {
        wp_chan *c = cases[order[k]].chan;
        if (k == 0 || c != cases[order[k - 1]].chan) wp__chan_lock(c);
    }
}

static void unlock_all(const wp_select_case *cases, const uint16_t *order, size_t m)
{
    for (size_t k = m; k-- > 0;) {
        wp_chan *c = cases[order[k]].chan;
        if (k == 0 || c != cases[order[k - 1]].chan) wp__chan_unlock(c);
    }
}

int wp_select(wp_select_case *cases, size_t n, uint64_t timeout_ns)
{
    if (!cases && n > 0) return -1;
    if (n > WP_SELECT_MAX) {
        for (size_t i = 0; i < n; i++) cases[i].err = EINVAL;
        return -1;
    }
    uint16_t poll[WP_SELECT_MAX],
        lock[WP_SELECT_MAX] = {0}; /* {0}: quiets gcc -Wmaybe-uninitialized */
    size_t m = 0;                  /* cases with a channel */
    for (size_t i = 0; i < n; i++) {
        wp_select_case *cs = &cases[i];
        if ((cs->op != WP_SEND && cs->op != WP_RECV) || (cs->op == WP_SEND && !cs->elem)) {
            cs->err = EINVAL;
            return -1;
        }
        if (!cs->chan) continue;
        /* Inside-out Fisher-Yates: poll[0..m] stays a uniform permutation. */
        size_t j = rng_next() % (m + 1);
        poll[m] = poll[j];
        poll[j] = (uint16_t)i;
        /* Insertion sort by channel address. */
        size_t k = m;
        for (; k > 0 && (uintptr_t)cases[lock[k - 1]].chan > (uintptr_t)cs->chan; k--)
            lock[k] = lock[k - 1];
        lock[k] = (uint16_t)i;
        m++;
    }

    struct timespec ts;
    const struct timespec *deadline = NULL;
    for (int first = 1;; first = 0) {
        lock_all(cases, lock, m);
        for (size_t k = 0; k < m; k++) {
            wp_select_case *cs = &cases[poll[k]];
            struct wp__chan_waiter *wake = NULL;
            int r = cs->op == WP_SEND ? wp__chan_send_locked(cs->chan, cs->elem, &wake)
                                      : wp__chan_recv_locked(cs->chan, cs->elem, &wake);
            if (r != EAGAIN) {
                unlock_all(cases, lock, m);
                if (wake) wp__chan_wake(wake);
                cs->err = r;
                return poll[k];
            }
        }
        if (timeout_ns == 0) {
            unlock_all(cases, lock, m);
            return -1;
        }
        if (first) deadline = wp__chan_deadline(timeout_ns, &ts);

        /* Receive cases of small elements share the waiter's val: only the
           one that fires is written, and it is copied out below. */
        struct wp__chan_waiter w;
        struct wp__chan_sudog sg[WP_SELECT_MAX];
        wp__chan_waiter_init(&w);
        int ready = 0;
        for (size_t k = 0; k < m; k++) {
            wp_select_case *cs = &cases[lock[k]];
            void *elem = cs->elem;
            if (cs->op == WP_RECV && elem && cs->chan->elem_size <= sizeof w.val) elem = w.val;
            sg[k] = (struct wp__chan_sudog){
                .w = &w, .c = cs->chan, .elem = elem, .op = (uint8_t)cs->op, .index = (uint16_t)k};
            wp__chan_enqueue(&sg[k]);
        }
        /* A buffered channel's ring moves without its lock: look at it once
           more now that our waiting flags are out (see chan.h). */
        for (size_t k = 0; k < m && !ready; k++)
            if (sg[k].c->cap > 0) ready = wp__chan_ring_recheck(sg[k].c, sg[k].op);
        if (ready) {
            for (size_t k = 0; k < m; k++) wp__chan_unqueue(&sg[k]);
            unlock_all(cases, lock, m);
            continue;
        }
        unlock_all(cases, lock, m);

        int r = wp__chan_park(&w, deadline);

        lock_all(cases, lock, m);
        for (size_t k = 0; k < m; k++) wp__chan_unqueue(&sg[k]);
        unlock_all(cases, lock, m);

        if (r != 0) return -1;
        /* relaxed: the acquire in wp__chan_park ordered the claimant's CAS. */
        uint32_t done = atomic_load_explicit(&w.done, memory_order_relaxed);
        size_t k = WP__CHAN_DONE_INDEX(done);
        wp_select_case *cs = &cases[lock[k]];
        if (WP__CHAN_DONE_SUCCESS(done) && !sg[k].retry) {
            /* The claimant completed the case. */
            cs->err = 0;
            if (sg[k].elem == w.val) memcpy(cs->elem, w.val, cs->chan->elem_size);
            return (int)lock[k];
        }
        if (cs->chan->cap == 0) {
            cs->err = EPIPE; /* closed */
            return (int)lock[k];
        }
        /* Buffered and closed, or the claimant was beaten to the ring: this
           case first, so the element (or the room) that woke us is not left
           behind while another waiter sleeps. Taken meanwhile: wait again. */
        struct wp__chan_waiter *wake = NULL;
        wp__chan_lock(cs->chan);
        r = cs->op == WP_SEND ? wp__chan_send_locked(cs->chan, cs->elem, &wake)
                              : wp__chan_recv_locked(cs->chan, cs->elem, &wake);
        wp__chan_unlock(cs->chan);
        if (wake) wp__chan_wake(wake);
        if (r != EAGAIN) {
            cs->err = r;
            return (int)lock[k];
        }
    }
}
