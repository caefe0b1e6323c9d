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
 *     `done` from 0 to 1. That is either a partner operation (or close),
 *     which takes the sudog off its queue, copies the value under the
 *     channel lock, records `fired` and `success`, drops the lock and wakes
 *     the owner; or the owner itself when its timeout expires, after which no
 *     partner touches its sudogs and the owner takes them off the queues.
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

/* One sleeping thread. Lives on the owner's stack for one operation. */
struct wp__chan_waiter {
    /* WP__CHAN_RUNNING -> SLEEPING (owner, before it sleeps) -> WOKEN (the
       claimant, last thing it does) or, if the owner slept, WOKEN then
       RELEASED once the claimant's futex call is made. The futex word. */
    _Atomic uint32_t state;
    /* 0 until claimed; see the top of this file. */
    _Atomic uint32_t done;
    /* The sudog that completed the wait: written by the claimant under that
       sudog's channel lock, before it wakes the owner; read by the owner
       after it sees WOKEN. NULL if the owner claimed itself (timeout). */
    struct wp__chan_sudog *fired;
};

enum { WP__CHAN_RUNNING, WP__CHAN_SLEEPING, WP__CHAN_WOKEN, WP__CHAN_RELEASED };

/* One pending operation on one channel. */
struct wp__chan_sudog {
    struct wp__chan_sudog *next, *prev; /* in c's queue: protected by c->lock */
    struct wp__chan_waiter *w;          /* set before queueing, then immutable */
    wp_chan *c;                         /* idem */
    void *elem;   /* idem. send: the value (only read); recv: where to put it, NULL drops it */
    int op;       /* idem. WP_SEND or WP_RECV */
    int queued;   /* on c's queue: protected by c->lock */
    int success;  /* written by the claimant under c->lock: 1 value passed, 0 closed */
    size_t index; /* select case index, for the owner only */
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
 * A "stale" sudog (its waiter already claimed) may sit on a queue until the
 * next dequeue or its owner removes it; it never counts.
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
    /* wp__chan_lock's futex word, alone on its cache line: threads spinning
       on it then do not steal the line the holder is writing. */
    alignas(WP__CACHE_LINE) _Atomic uint32_t lock;
    alignas(WP__CACHE_LINE) size_t elem_size, cap; /* immutable */
    size_t count, recvx, sendx;                    /* ring of cap slots: protected by lock */
    int closed;                                    /* protected by lock */
    int efd;    /* wp_chan_fd's eventfd, -1 until asked for: written and read under lock */
    int efd_up; /* the eventfd holds 1 (readable): protected by lock */
    struct wp__chan_waitq recvq, sendq; /* protected by lock */
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

/* Prepares a waiter: running, not claimed, fired NULL. */
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
