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
 *     channel lock (on a buffered channel: does the operation through the
 *     ring, see below), drops the lock and wakes the owner; or the owner itself
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
#include <time.h>

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

#define WP__CHAN_SELF                 1u
#define WP__CHAN_DONE(index, success) (((uint32_t)(index) + 1u) << 1 | (uint32_t)(success))
#define WP__CHAN_DONE_INDEX(d)        (((d) >> 1) - 1u)
#define WP__CHAN_DONE_SUCCESS(d)      ((int)((d)&1u))

/* One pending operation on one channel. */
struct wp__chan_sudog {
    struct wp__chan_sudog *next, *prev; /* in c's queue: protected by c->lock */
    struct wp__chan_waiter *w;          /* set before queueing, then immutable */
    wp_chan *c;                         /* idem */
    void *elem;     /* idem. send: the value (only read); recv: where to put it, NULL drops it */
    uint16_t index; /* idem. Returned in w->done when this sudog completes */
    uint8_t op;     /* idem. WP_SEND or WP_RECV */
    uint8_t queued; /* on c's queue: protected by c->lock */
    /* Buffered only, written by the claimant before its wake: 1 if it could
       not complete the operation through the ring (another thread took the
       element or the room first), so the owner retries. */
    uint8_t retry;
};

/* A single send or receive that waits: waiter and sudog on one line. */
struct wp__chan_op {
    alignas(WP__CACHE_LINE) struct wp__chan_waiter w;
    struct wp__chan_sudog sg;
};
_Static_assert(sizeof(struct wp__chan_op) == WP__CACHE_LINE, "a waiting op fills one line");

struct wp__chan_waitq {
    struct wp__chan_sudog *first, *last;
};

/*
 * Two kinds of channel share the waiting machinery (lock, queues, sudogs):
 *
 * Unbuffered (cap 0): Go's. Everything is under the lock. A sender and a
 * receiver meet through the queues: the one that comes second claims the
 * other's sudog and copies the value across. The first plain op to wait
 * while its queue is empty waits in the channel's own `fast` waiter
 * instead, as if at the head of its queue. Invariants (under lock):
 *   - At most one of recvq and sendq holds live (unclaimed) sudogs, and
 *     a live fast waiter (fast_op set, fast.done 0) is of that kind.
 *   - A live fast waiter is older than every live sudog of its kind.
 *   - closed implies both queues hold no live sudog and fast no live waiter.
 *
 * Buffered (cap > 0): the elements live in a lock-free ring of cap slots
 * (Vyukov's bounded queue, as crossbeam's array channel): head and tail are
 * positions (index | lap, mark bit in tail = closed), each slot has a stamp
 * saying whether it holds the element of a given position. A send claims a
 * position with one CAS on tail, writes the slot and publishes it with its
 * stamp; a receive does the same on head. Neither takes the lock while the
 * ring has room or elements. The queues hold only operations that found the
 * ring full (sendq) or empty (recvq). A send that then sees a receiver
 * waiting takes the lock, claims it and receives from the ring on its
 * behalf (a receive does the same for a waiting sender: sends its value
 * into the room it made), so as in Go a waiting receiver has its value when
 * the send returns. If another thread got to the ring first, the claimed
 * waiter is woken with retry set and tries again itself. Invariants:
 *   - flags has WP__CHAN_RECV_WAIT (SEND_WAIT) set whenever recvq (sendq) is
 *     not empty: set under the lock before the waiter's last look at the
 *     ring, both seq_cst, so a send that does not see it (its CAS on tail
 *     and its load of flags are seq_cst too) happened before that look.
 *   - Each element claims at most one waiter, which gets it (or one before
 *     it), or retries at least once when another receive beat it: so no
 *     element stays buffered while a receiver sleeps. Close claims all
 *     waiters; they retry, and find the ring drained or the mark.
 *   - closed (under lock) and tail's mark bit are set together, once.
 *
 * A "stale" sudog (its waiter already claimed) may sit on a queue until the
 * next dequeue or its owner removes it; it never counts.
 *
 * The descriptor (wp_chan_fd), once made: efd_up says whether the eventfd
 * holds 1 (polls readable), and wp__chan_unlock brings it in line with
 * "a receive would not wait" (an element buffered, closed, or a live sudog
 * on sendq) before it drops the lock, so the edges are written in the order
 * the states changed. A buffered channel with a descriptor sets HAS_FD in
 * flags, and every ring operation that sees it takes the lock afterwards to
 * move the level (one that raced with the descriptor's making is seen by the
 * making's own first look). The one lag: a sudog made stale without this
 * lock (a select that fired on another channel, an owner that timed out)
 * still counts until its owner, or the next receive here, takes it off the
 * queue under this lock.
 */
enum { WP__CHAN_RECV_WAIT = 1, WP__CHAN_SEND_WAIT = 2, WP__CHAN_HAS_FD = 4 };

struct wp_chan {
    /* wp__chan_lock's futex word, on one line with what it protects: a
       handoff on an unbuffered channel then moves this one line. */
    alignas(WP__CACHE_LINE) _Atomic uint32_t lock;
    int efd;        /* wp_chan_fd's eventfd, -1 until asked for: written and read under lock */
    uint8_t closed; /* protected by lock */
    uint8_t efd_up; /* the eventfd holds 1 (readable): protected by lock */
    /* Unbuffered only: 0, or 1 + the op (WP_SEND, WP_RECV) of the plain send
       or receive waiting in `fast` (see below). Set under lock by the op
       that moves in; cleared by it once it has its result (under lock only
       when it leaves by timeout). */
    _Atomic uint8_t fast_op;
    struct wp__chan_waitq recvq, sendq; /* protected by lock */
    /* Unbuffered only: the first plain send or receive to wait, when none
       of its kind is queued, waits here rather than in a waiter on its
       stack.
       It is an older waiter than any queued one of its kind, so partners
       claim it first (wp__chan_send_locked, wp__chan_recv_locked, close),
       as they would a sudog. val holds the element (up to 8 bytes) or a
       pointer to the owner's. The owner spins on this line, which its
       partner writes anyway: a handoff moves one line, not two. */
    struct wp__chan_waiter fast;
    /* Read by every ring operation, written (under lock) only when a queue
       goes from empty to not or back, or the descriptor is made. */
    alignas(WP__CACHE_LINE) _Atomic uint32_t flags;
    size_t elem_size, cap; /* immutable */
    size_t stride;         /* immutable: bytes per slot, its stamp then the element */
    size_t mark, one_lap;  /* immutable: tail's closed bit; a lap (two marks) */
    unsigned char *buf;    /* immutable: the slots, after the struct */
    /* Ring positions, each on its own line: receivers CAS head, senders tail. */
    alignas(WP__CACHE_LINE) _Atomic size_t head;
    alignas(WP__CACHE_LINE) _Atomic size_t tail;
};

_Static_assert(offsetof(struct wp_chan, fast) + sizeof(struct wp__chan_waiter) <= WP__CACHE_LINE,
               "the lock, the queues and the fast waiter share one line");

/* The channel lock (spin, then sleep on a futex). Not recursive. Unlocking
   also moves the descriptor's level, if the channel has one (see above). */
void wp__chan_lock(wp_chan *c);
void wp__chan_unlock(wp_chan *c);

/* c locked. Completes a send of elem now if it can: 0 done, EPIPE closed,
   EAGAIN it would have to wait. On 0 with a receiver handed the value (or,
   buffered, woken to retry), *wake is set to the waiter to wake once the
   lock is dropped. */
int wp__chan_send_locked(wp_chan *c, const void *elem, struct wp__chan_waiter **wake);
/* c locked. Same for a receive into elem (NULL drops): 0, EPIPE (closed and
   drained) or EAGAIN. */
int wp__chan_recv_locked(wp_chan *c, void *elem, struct wp__chan_waiter **wake);

/* c locked, c buffered, a sudog of kind op just queued on c. Publishes the
   waiting flags (seq_cst), then looks at the ring once more: 1 if an
   operation op would now complete (or closed), in which case the caller
   takes its sudogs off again instead of sleeping. */
int wp__chan_ring_recheck(wp_chan *c, int op);

/* sg->c locked. Queues sg on the send or receive queue by sg->op. */
void wp__chan_enqueue(struct wp__chan_sudog *sg);
/* sg->c locked. Takes sg off its queue if it is still on it. */
void wp__chan_unqueue(struct wp__chan_sudog *sg);

/* Prepares a waiter: running, not claimed. */
void wp__chan_waiter_init(struct wp__chan_waiter *w);

/* Sleeps until a claimant wakes w (returns 0) or until the deadline has
   passed and the owner won the claim itself (returns ETIMEDOUT: the caller
   must then take its sudogs off their queues). deadline NULL: no limit.
   Call with no lock held. */
int wp__chan_park(struct wp__chan_waiter *w, const struct timespec *deadline);

/* An absolute CLOCK_MONOTONIC deadline timeout_ns from now in *ts; returns
   ts, or NULL if there is none (WP_FOREVER or too far to represent). */
const struct timespec *wp__chan_deadline(uint64_t timeout_ns, struct timespec *ts);
/* Wakes a waiter the caller claimed. Call with no lock held; after it w may
   be gone. */
void wp__chan_wake(struct wp__chan_waiter *w);

#endif /* WP_CHAN_H */
