/*
 * Channel internals shared by chan.c (the channel and its single-case
 * operations) and select.c (wp_select). Nothing here is public.
 *
 * The model is Go's runtime/chan.go and select.go:
 *   - Each channel has one lock and two queues of waiting operations
 *     ("sudogs"): senders waiting for room or a receiver, receivers waiting
 *     for a value. A sudog lives on its owner's stack.
 *   - A waiter is one sleeping thread. A plain send/recv has one sudog; a
 *     select has one sudog per case, all pointing at the same waiter.
 *   - Exactly one party completes a waiter: whoever wins the CAS of
 *     `done` from 0. That is either a partner operation (or close), which
 *     takes the sudog off its queue, writes which sudog fired and whether a
 *     value passed into `done` with that CAS, copies the value under the
 *     channel lock, drops the lock and wakes the owner; or the owner itself
 *     when its timeout expires, after which no partner touches its sudogs
 *     and the owner takes them off the queues.
 *     A partner that loses the CAS drops the sudog from the queue and looks
 *     for the next one, so a select's stale sudogs never hold a value.
 */
#ifndef WP_CHAN_H
#define WP_CHAN_H

#include "park.h" /* WP__CACHE_LINE, wp__cpu_relax */
#include "wpool.h"

#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* One sleeping thread. Lives on the owner's stack for one operation, on the
   same cache line as its sudog when it has one (struct wp__chan_op), so that
   a partner completing it moves that one line and the channel's. */
struct wp__chan_waiter {
    /* WP__CHAN_RUNNING -> SLEEPING (owner, before it sleeps) -> WOKEN (the
       claimant, last thing it does) or, if the owner slept, WOKEN then
       RELEASED once the claimant's futex call is made. The futex word. */
    _Atomic uint32_t state;
    /* 0 until claimed, then how the wait ended: WP__CHAN_SELF (the owner
       claimed itself: timeout), or WP__CHAN_DONE(index, success) written by
       the claimant's CAS, index being the completed sudog's. */
    _Atomic uint32_t done;
    /* An element of at most this many bytes travels here: the owner of a
       send copies it in before queueing, the claimant of a receive copies
       it in before the wake. Written and read as sudog elem (see below). */
    alignas(8) unsigned char val[8];
};

enum { WP__CHAN_RUNNING, WP__CHAN_SLEEPING, WP__CHAN_WOKEN, WP__CHAN_RELEASED };

#define WP__CHAN_SELF 1u
#define WP__CHAN_DONE(index, success) (((uint32_t)(index) + 1u) << 1 | (uint32_t)(success))
#define WP__CHAN_DONE_INDEX(d) (((d) >> 1) - 1u)
#define WP__CHAN_DONE_SUCCESS(d) ((int)((d)&1u))

/* One pending operation on one channel. */
struct wp__chan_sudog {
    struct wp__chan_sudog *next, *prev; /* in c's queue: protected by c->lock */
    struct wp__chan_waiter *w;          /* set before queueing, then immutable */
    wp_chan *c;                         /* idem */
    void *elem;     /* idem. send: the value (only read); recv: where to put it, NULL drops it */
    uint16_t index; /* idem. Returned in w->done when this sudog completes */
    uint8_t op;     /* idem. WP_SEND or WP_RECV */
    uint8_t queued; /* on c's queue: protected by c->lock */
};

/* A single send or receive that waits: waiter and sudog on one line. */
struct wp__chan_op {
    alignas(WP__CACHE_LINE) struct wp__chan_waiter w;
    struct wp__chan_sudog sg;
};

struct wp__chan_waitq {
    struct wp__chan_sudog *first, *last;
};

/*
 * Invariants (all under lock):
 *   - At most one of recvq and sendq holds live (unclaimed) sudogs.
 *   - count > 0 implies recvq holds no live sudog; count < cap implies sendq
 *     holds no live sudog (so with cap 0, a sender waits until a receiver
 *     arrives, and the other way round).
 *   - closed implies both queues hold no live sudog.
 *   - The buffered elements are slots recvx .. recvx + count - 1 (mod cap),
 *     recvx = sendx - count (mod cap), computed, not stored.
 * A "stale" sudog (its waiter already claimed) may sit on a queue until the
 * next dequeue or its owner removes it; it never counts.
 *
 * The lock and everything it protects share one cache line: an operation
 * that finds the channel uncontended moves that one line (plus a slot of the
 * ring, plus a waiter's line when it completes one). elem_size, cap and the
 * ring pointer are on the next line, written once, read by all.
 *
 * The descriptor (wp_chan_fd), once made: efd_up says whether the eventfd
 * holds 1 (polls readable), and wp__chan_unlock brings it in line with
 * "a receive would not wait" (count > 0, closed, or a live sudog on sendq)
 * before it drops the lock, so the edges are written in the order the states
 * changed. The one lag: a sudog made stale without this lock (a select that
 * fired on another channel, an owner that timed out) still counts until its
 * owner, or the next receive here, takes it off the queue under this lock.
 */
struct wp_chan {
    /* wp__chan_lock's futex word. */
    alignas(WP__CACHE_LINE) _Atomic uint32_t lock;
    alignas(WP__CACHE_LINE) int closed; /* protected by lock */
    int efd;    /* wp_chan_fd's eventfd, -1 until asked for: written and read under lock */
    int efd_up; /* the eventfd holds 1 (readable): protected by lock */
    size_t count, sendx;                /* ring of cap slots: protected by lock */
    struct wp__chan_waitq recvq, sendq; /* protected by lock */
    alignas(WP__CACHE_LINE) size_t elem_size, cap; /* immutable */
    unsigned char *buf; /* cap * elem_size bytes after the struct, slots protected by lock */
};

/* The channel lock (spin, then sleep on a futex). Not recursive. Unlocking
   also moves the descriptor's level, if the channel has one (see above). */
void wp__chan_lock(wp_chan *c);
void wp__chan_unlock(wp_chan *c);

/* c locked. Completes a send of elem now if it can: 0 done, EPIPE closed,
   EAGAIN it would have to wait. On 0 with a receiver handed the value,
   *wake is set to the waiter to wake once the lock is dropped. */
int wp__chan_send_locked(wp_chan *c, const void *elem, struct wp__chan_waiter **wake);
/* c locked. Same for a receive into elem (NULL drops): 0, EPIPE (closed and
   drained) or EAGAIN. */
int wp__chan_recv_locked(wp_chan *c, void *elem, struct wp__chan_waiter **wake);

/* sg->c locked. Queues sg on the send or receive queue by sg->op. */
void wp__chan_enqueue(struct wp__chan_sudog *sg);
/* sg->c locked. Takes sg off its queue if it is still on it. */
void wp__chan_unqueue(struct wp__chan_sudog *sg);

/* Prepares a waiter: running, not claimed. */
void wp__chan_waiter_init(struct wp__chan_waiter *w);

/* Sleeps until a claimant wakes w (returns 0) or until timeout_ns has passed
   and the owner won the claim itself (returns ETIMEDOUT: the caller must then
   take its sudogs off their queues). WP_FOREVER: no limit. Call with no lock
   held. */
int wp__chan_park(struct wp__chan_waiter *w, uint64_t timeout_ns);
/* Wakes a waiter the caller claimed. Call with no lock held; after it w may
   be gone. */
void wp__chan_wake(struct wp__chan_waiter *w);

#endif /* WP_CHAN_H */
