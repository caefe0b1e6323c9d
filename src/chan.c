/*
 * Channels: Go's chan in C. Two queues of waiting operations behind one
 * lock per channel and, for a buffered channel, a lock-free ring of
 * elements (see chan.h for the structures and the invariants of both kinds).
 *
 * Who touches what:
 *   - closed, efd, efd_up and the two queues are protected by c->lock
 *     (wp__chan_lock); flags is written under it and read without it.
 *     elem_size, cap, stride, mark, one_lap and buf never change.
 *   - The ring (buffered only): head, tail and each slot's stamp are
 *     atomics; a slot's element belongs to whoever won the CAS on its
 *     position until that thread stores the stamp (ring_push, ring_pop).
 *   - A sudog is on its owner's stack. While it is queued, other threads read
 *     it under the channel lock. The one thread that claims its waiter
 *     (CAS done from 0 to the sudog's index and success, always under the
 *     lock of the channel it dequeues from) completes the operation: copies
 *     the value to or from sg->elem (for an element of up to 8 bytes, the
 *     waiter's own val, on the line the claimant writes anyway), or, on a
 *     buffered channel, does it through the ring and sets retry if it
 *     could not. Then it drops the lock and wakes the owner with a single
 *     atomic exchange on w->state: after that exchange nobody but the owner
 *     touches the waiter, and the owner may return (its stack goes away),
 *     unless the owner had gone to sleep: then the waker also makes the
 *     futex call on w->state and stores RELEASED after it, and the owner,
 *     which may wake early (timeout, spurious wake) and see WOKEN, waits for
 *     RELEASED before it returns, so no futex call ever names a stack that
 *     is gone.
 *   - On an unbuffered channel the first plain op to wait while its queue
 *     is empty uses the channel's own waiter (`fast`, on the lock's line)
 *     instead of one on its stack: fast_op says which op holds it, a
 *     partner claims it before any sudog (it is the oldest), and the owner
 *     clears fast_op once it has its result. A handoff then moves the
 *     channel's one line between the two threads, as a pinned ping-pong
 *     of one word does.
 *   - The owner sleeps until it sees WOKEN. If its timeout passes first it
 *     tries to claim itself; if a partner won instead, the value is on its
 *     way and the owner keeps waiting (without limit: the partner is
 *     between its CAS and its wake, which takes no time).
 *
 * Close sets closed (and, buffered, tail's mark bit), claims every queued
 * waiter with success 0 and wakes them after dropping the lock: unbuffered
 * ones return EPIPE, buffered ones retry and find the mark (senders: EPIPE)
 * or what is still buffered (receivers get it, then EPIPE).
 *
 * No operation allocates: buffers are made in wp_chan_create, waiters and
 * sudogs live on the stack. A thread that must wait spins briefly (the
 * partner is often running on another CPU and about to arrive), then
 * sleeps on a futex. A partner makes a system call to wake it only if it
 * really went to sleep. The channel lock is a futex lock too: a short spin,
 * then sleep (critical sections are a few dozen instructions).
 *
 * The descriptor (wp_chan_fd) is an eventfd that holds 1 exactly while a
 * receive would not wait. wp__chan_unlock compares that state with efd_up
 * and writes 1 on the rising edge or reads it back on the falling edge,
 * still holding the lock: the edges then reach the eventfd in the order the
 * states changed (done after the unlock, a rising write could land after a
 * later falling read and leave a drained channel readable). An unbuffered
 * channel changes that state only under the lock; a buffered one with a
 * descriptor sets HAS_FD in flags, and each ring operation that sees it
 * takes the lock afterwards so that the unlock moves the level. That bends
 * "wake no thread under a lock" only for the loop's one wake per edge; a
 * write to an eventfd never blocks, and a burst of sends into a drained
 * channel pays one write, not one each. A channel without a descriptor
 * pays one branch (unbuffered) or one flag test (buffered) for it.
 */
#include "chan.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <linux/futex.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

/* How long an owner spins before it sleeps (ns). A partner that shows up
   within this time hands over without any system call on either side. */
#ifndef WP_CHAN_SPIN_NS
#define WP_CHAN_SPIN_NS 20000
#endif

/* Spin rounds that pause the CPU; later rounds sched_yield instead, so a
   partner waiting for this very CPU gets to run. */
#ifndef WP_CHAN_PAUSES
#define WP_CHAN_PAUSES 64
#endif

/* Polls of the next slot (a CPU pause each) by a buffered op that found the
   ring full or empty, before it queues a sudog. */
#ifndef WP_CHAN_RING_SPIN
#define WP_CHAN_RING_SPIN 128
#endif

/* Rounds of (exponentially growing) pauses for the channel lock before
   sleeping on it. */
#ifndef WP_CHAN_LOCK_SPIN
#define WP_CHAN_LOCK_SPIN 16
#endif

/* ---------------------------------------------------------- wait queues -- */

static void waitq_push(struct wp__chan_waitq *q, struct wp__chan_sudog *sg)
{
    sg->next = NULL;
    sg->prev = q->last;
    if (q->last)
        q->last->next = sg;
    else
        q->first = sg;
    q->last = sg;
    sg->queued = 1;
}

static void waitq_remove(struct wp__chan_waitq *q, struct wp__chan_sudog *sg)
{
    if (sg->prev)
        sg->prev->next = sg->next;
    else
        q->first = sg->next;
    if (sg->next)
        sg->next->prev = sg->prev;
    else
        q->last = sg->prev;
    sg->next = sg->prev = NULL;
    sg->queued = 0;
}

/* Lock of the queue's channel held. Takes the first sudog whose waiter this
   thread manages to claim off q and returns it (NULL: none), recording in
   the waiter that this sudog completed it, with a value passed (success 1)
   or by close (0). Stale sudogs met on the way are dropped from the queue. */
static struct wp__chan_sudog *waitq_claim(struct wp__chan_waitq *q, int success)
{
    struct wp__chan_sudog *sg;
    while ((sg = q->first) != NULL) {
        waitq_remove(q, sg);
        uint32_t open = 0;
        /* relaxed: the CAS only has to pick one winner, which any order
           does. What the winner then writes (the value) and the CAS itself
           reach the owner through the release in wp__chan_wake; what the
           owner wrote into the sudog reached us through the channel lock. */
        if (atomic_compare_exchange_strong_explicit(&sg->w->done, &open,
                                                    WP__CHAN_DONE(sg->index, success),
                                                    memory_order_relaxed, memory_order_relaxed))
            return sg;
    }
    return NULL;
}

void wp__chan_enqueue(struct wp__chan_sudog *sg)
{
    waitq_push(sg->op == WP_SEND ? &sg->c->sendq : &sg->c->recvq, sg);
}

void wp__chan_unqueue(struct wp__chan_sudog *sg)
{
    if (sg->queued) waitq_remove(sg->op == WP_SEND ? &sg->c->sendq : &sg->c->recvq, sg);
}

/* ------------------------------------------------------ sleep and wake -- */

static void futex_wait(_Atomic uint32_t *addr, uint32_t val, const struct timespec *abs)
{
    /* FUTEX_WAIT_BITSET takes an absolute time on CLOCK_MONOTONIC. Spurious
       returns (EINTR, EAGAIN, stale wakes) are fine: callers loop. */
    syscall(SYS_futex, (void *)addr, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, val, abs, NULL,
            FUTEX_BITSET_MATCH_ANY);
}

static void futex_wake(_Atomic uint32_t *addr)
{
    syscall(SYS_futex, (void *)addr, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1, NULL, NULL, 0);
}

/* ------------------------------------------------------------- the lock -- */

/* 0 free, 1 held, 2 held and a thread may sleep on it: Drepper's third
   mutex ("Futexes Are Tricky"), with a short spin first, since a critical
   section here is a few dozen instructions and a memcpy of one element. */
void wp__chan_lock(wp_chan *c)
{
    uint32_t v = 0;
    /* acquire: pairs with the release in wp__chan_unlock, so the critical
       section sees everything the previous holder wrote. */
    if (atomic_compare_exchange_strong_explicit(&c->lock, &v, 1, memory_order_acquire,
                                                memory_order_relaxed))
        return;
    for (int i = 0; i < WP_CHAN_LOCK_SPIN; i++) {
        /* Exponential backoff: fewer reads of the line the holder is
           about to write (its unlock) make that write cheaper. */
        for (int k = 0; k < (1 << (i < 5 ? i : 5)); k++) wp__cpu_relax();
        v = 0;
        /* relaxed load: only a hint to try the CAS, which acquires as above. */
        if (atomic_load_explicit(&c->lock, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_strong_explicit(&c->lock, &v, 1, memory_order_acquire,
                                                    memory_order_relaxed))
            return;
    }
    /* acquire: as above. Taking it as 2 may cost one needless wake later. */
    while (atomic_exchange_explicit(&c->lock, 2, memory_order_acquire) != 0)
        futex_wait(&c->lock, 2, NULL);
}

/* c locked. Whether a receive would complete now without waiting. */
static int receivable(wp_chan *c)
{
    if (c->closed) return 1;
    if (c->cap > 0) {
        /* seq_cst: after the flag store of wp_chan_fd (see chan.h); an
           element in flight (tail moved, slot not yet stamped) counts. */
        size_t tail = atomic_load_explicit(&c->tail, memory_order_seq_cst);
        return (tail & ~c->mark) != atomic_load_explicit(&c->head, memory_order_seq_cst);
    }
    /* relaxed: a hint, as below. */
    if (atomic_load_explicit(&c->fast_op, memory_order_relaxed) == 1 + WP_SEND &&
        atomic_load_explicit(&c->fast.done, memory_order_relaxed) == 0)
        return 1;
    for (struct wp__chan_sudog *sg = c->sendq.first; sg; sg = sg->next)
        /* relaxed: a hint. A claim we miss was made by a partner or the
           owner, who takes the sudog off (or a receive drops it) under
           this lock, and that unlock syncs again. */
        if (atomic_load_explicit(&sg->w->done, memory_order_relaxed) == 0) return 1;
    return 0;
}

/* c locked, c->efd >= 0. Moves the eventfd to the channel's level. Neither
   call can fail on a valid nonblocking eventfd that holds 0 or 1. */
static void fd_sync(wp_chan *c)
{
    int up = receivable(c);
    if (up == c->efd_up) return;
    c->efd_up = up;
    uint64_t one = 1;
    if ((up ? write(c->efd, &one, sizeof one) : read(c->efd, &one, sizeof one)) < 0) {
        /* EAGAIN only if someone else read it, which the contract forbids */
    }
}

/* c locked, c buffered. Brings flags in line with the queues and the
   descriptor. seq_cst store: see the invariants in chan.h. */
static void flags_sync(wp_chan *c)
{
    uint32_t f = (c->recvq.first ? WP__CHAN_RECV_WAIT : 0) |
                 (c->sendq.first ? WP__CHAN_SEND_WAIT : 0) | (c->efd >= 0 ? WP__CHAN_HAS_FD : 0);
    /* relaxed: only lock holders write flags. */
    if (atomic_load_explicit(&c->flags, memory_order_relaxed) != f)
        atomic_store_explicit(&c->flags, f, memory_order_seq_cst);
}

void wp__chan_unlock(wp_chan *c)
{
    if (c->cap > 0) flags_sync(c);
    if (c->efd >= 0) fd_sync(c);
    /* release: publishes the critical section; pairs with the acquires in
       wp__chan_lock. Wakes one sleeper only if one may be asleep. */
    if (atomic_exchange_explicit(&c->lock, 0, memory_order_release) == 2) futex_wake(&c->lock);
}

void wp__chan_waiter_init(struct wp__chan_waiter *w)
{
    /* relaxed: w is not shared yet; queueing it under a lock publishes it. */
    atomic_init(&w->state, WP__CHAN_RUNNING);
    atomic_init(&w->done, 0);
}

const struct timespec *wp__chan_deadline(uint64_t timeout_ns, struct timespec *ts)
{
    if (timeout_ns == WP_FOREVER) return NULL;
    clock_gettime(CLOCK_MONOTONIC, ts);
    uint64_t sec = timeout_ns / 1000000000u + (uint64_t)ts->tv_sec;
    long nsec = (long)(timeout_ns % 1000000000u) + ts->tv_nsec;
    if (nsec >= 1000000000L) {
        nsec -= 1000000000L;
        sec++;
    }
    if (sec > (uint64_t)INT32_MAX * 2) return NULL; /* centuries away: no limit */
    ts->tv_sec = (time_t)sec;
    ts->tv_nsec = nsec;
    return ts;
}

static int past(const struct timespec *ts)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > ts->tv_sec || (now.tv_sec == ts->tv_sec && now.tv_nsec >= ts->tv_nsec);
}

int wp__chan_park(struct wp__chan_waiter *w, const struct timespec *deadline)
{

    /* Spin: first with CPU pauses, then yielding the CPU, in case the
       partner we wait for is waiting for this very CPU. The spin's own
       clock is read only once the first pauses have passed: a partner on
       another CPU usually arrives within them. */
    struct timespec spin_end;
    for (unsigned i = 1; WP_CHAN_SPIN_NS > 0; i++) {
        /* acquire: pairs with the release exchange in wp__chan_wake, so
           the value and done written before it are visible. */
        if (atomic_load_explicit(&w->state, memory_order_acquire) == WP__CHAN_WOKEN) return 0;
        if (i < WP_CHAN_PAUSES)
            wp__cpu_relax();
        else
            sched_yield();
        if (i == 16) wp__chan_deadline(WP_CHAN_SPIN_NS, &spin_end);
        if (i % 16 == 0 && (past(&spin_end) || (deadline && past(deadline)))) break;
    }
    uint32_t st = WP__CHAN_RUNNING;
    /* acquire on failure: the state is WOKEN, pairs as above. Success needs
       no order: it only tells the waker to make the futex call. */
    if (!atomic_compare_exchange_strong_explicit(&w->state, &st, WP__CHAN_SLEEPING,
                                                 memory_order_acquire, memory_order_acquire))
        return 0;
    for (;;) {
        futex_wait(&w->state, WP__CHAN_SLEEPING, deadline);
        /* acquire: pairs with the release store of RELEASED in
           wp__chan_wake. We slept, so the waker makes a futex call on
           w->state after its exchange: wait until it has (it is between
           the two, which takes no time) before our stack can go away. */
        uint32_t now = atomic_load_explicit(&w->state, memory_order_acquire);
        for (unsigned i = 0; now == WP__CHAN_WOKEN; i++) {
            if (i < WP_CHAN_PAUSES)
                wp__cpu_relax();
            else
                sched_yield();
            now = atomic_load_explicit(&w->state, memory_order_acquire);
        }
        if (now == WP__CHAN_RELEASED) return 0;
        if (deadline && past(deadline)) {
            uint32_t open = 0;
            /* relaxed: only one of us and the partners may win (see
               waitq_claim); if we win, nobody writes to our sudogs again and
               the caller takes them off their queues under the locks. */
            if (atomic_compare_exchange_strong_explicit(&w->done, &open, WP__CHAN_SELF,
                                                        memory_order_relaxed, memory_order_relaxed))
                return ETIMEDOUT;
            deadline = NULL; /* a partner claimed us: its wake is on the way */
        }
    }
}

void wp__chan_wake(struct wp__chan_waiter *w)
{
    /* release: publishes the value copied for the owner and done; pairs
       with the acquire loads in wp__chan_park. If the owner did not sleep,
       this is our last touch of *w: it may return right after. */
    if (atomic_exchange_explicit(&w->state, WP__CHAN_WOKEN, memory_order_release) ==
        WP__CHAN_SLEEPING) {
        futex_wake(&w->state);
        /* release: our last touch; the owner waits for it (acquire in
           wp__chan_park) before it returns. */
        atomic_store_explicit(&w->state, WP__CHAN_RELEASED, memory_order_release);
    }
}

/* ------------------------------------------------------- the ring (cap > 0) -- */

/* One slot: its stamp, then the element (stride bytes in all). A slot at
   index i holds the element of position p (lap | i) when stamp == p + 1 and
   is free for position p when stamp == p. */
struct slot {
    _Atomic size_t stamp;
    unsigned char val[];
};

static inline struct slot *ring_slot(wp_chan *c, size_t index)
{
    return (struct slot *)(void *)(c->buf + index * c->stride);
}

/* The position after pos: the next index, or index 0 of the next lap. */
static inline size_t ring_next(const wp_chan *c, size_t pos)
{
    size_t index = pos & (c->mark - 1);
    return index + 1 < c->cap ? pos + 1 : (pos & ~(c->one_lap - 1)) + c->one_lap;
}

/* Waits a little for a thread that is between its CAS and its stamp (or
   lost a CAS to us): pauses, then yields, in case it waits for this CPU. */
static void ring_backoff(unsigned *step)
{
    if (*step < 6) {
        for (unsigned i = 0; i < 1u << *step; i++) wp__cpu_relax();
        ++*step;
    } else {
        sched_yield();
    }
}

/* Sends elem into the ring: 0, EPIPE (closed) or EAGAIN (full). Lock-free;
   a caller holding the lock may call it too. */
static int ring_push(wp_chan *c, const void *elem)
{
    unsigned step = 0;
    /* relaxed: a guess, checked against the slot's stamp and by the CAS. */
    size_t tail = atomic_load_explicit(&c->tail, memory_order_relaxed);
    for (;;) {
        if (tail & c->mark) return EPIPE;
        struct slot *s = ring_slot(c, tail & (c->mark - 1));
        /* acquire: pairs with the release stamp in ring_pop, so the last
           lap's receive had copied the element out before we overwrite. */
        size_t stamp = atomic_load_explicit(&s->stamp, memory_order_acquire);
        if (stamp == tail) {
            /* seq_cst: the position is ours; ordered before our load of
               flags in ring_after (see chan.h). On failure, tail is reread. */
            if (atomic_compare_exchange_weak_explicit(&c->tail, &tail, ring_next(c, tail),
                                                      memory_order_seq_cst, memory_order_relaxed)) {
                memcpy(s->val, elem, c->elem_size);
                /* release: publishes the element; pairs with the acquire in
                   ring_pop. */
                atomic_store_explicit(&s->stamp, tail + 1, memory_order_release);
                return 0;
            }
            ring_backoff(&step);
            continue;
        }
        if (stamp + c->one_lap == tail + 1) {
            /* The slot still holds last lap's element: full, unless a
               receive has taken it and not stamped it yet. seq_cst fence:
               head is read after the stamp. */
            atomic_thread_fence(memory_order_seq_cst);
            if (atomic_load_explicit(&c->head, memory_order_relaxed) + c->one_lap == tail)
                return EAGAIN;
        }
        ring_backoff(&step);
        tail = atomic_load_explicit(&c->tail, memory_order_relaxed);
    }
}

/* Receives from the ring into elem (NULL drops): 0, EPIPE (closed and
   drained) or EAGAIN (empty). Lock-free, like ring_push. */
static int ring_pop(wp_chan *c, void *elem)
{
    unsigned step = 0;
    /* relaxed: a guess, as in ring_push. */
    size_t head = atomic_load_explicit(&c->head, memory_order_relaxed);
    for (;;) {
        struct slot *s = ring_slot(c, head & (c->mark - 1));
        /* acquire: pairs with the release stamp in ring_push: the element
           is there. */
        size_t stamp = atomic_load_explicit(&s->stamp, memory_order_acquire);
        if (stamp == head + 1) {
            /* seq_cst: as in ring_push, before our load of flags. */
            if (atomic_compare_exchange_weak_explicit(&c->head, &head, ring_next(c, head),
                                                      memory_order_seq_cst, memory_order_relaxed)) {
                if (elem) memcpy(elem, s->val, c->elem_size);
                /* release: the slot is free for the next lap's send;
                   pairs with the acquire in ring_push. */
                atomic_store_explicit(&s->stamp, head + c->one_lap, memory_order_release);
                return 0;
            }
            ring_backoff(&step);
            continue;
        }
        if (stamp == head) {
            /* Nothing stamped here: empty, unless a send has moved tail
               and not stamped yet. seq_cst fence: tail after the stamp. */
            atomic_thread_fence(memory_order_seq_cst);
            size_t tail = atomic_load_explicit(&c->tail, memory_order_relaxed);
            if ((tail & ~c->mark) == head) return tail & c->mark ? EPIPE : EAGAIN;
        }
        ring_backoff(&step);
        head = atomic_load_explicit(&c->head, memory_order_relaxed);
    }
}

/* Whether an operation op would find an element (room) now: a hint read
   from the one slot it would take, for the spin before queueing. */
static int ring_hint(wp_chan *c, int op)
{
    /* relaxed: a hint; the operation it lets through rechecks all. */
    size_t pos = atomic_load_explicit(op == WP_SEND ? &c->tail : &c->head, memory_order_relaxed);
    if (pos & c->mark) return 1;
    size_t stamp =
        atomic_load_explicit(&ring_slot(c, pos & (c->mark - 1))->stamp, memory_order_relaxed);
    return stamp == (op == WP_SEND ? pos : pos + 1);
}

int wp__chan_ring_recheck(wp_chan *c, int op)
{
    flags_sync(c);
    /* seq_cst loads: after the flag store above, in the single order that
       also holds the partners' CASes on head and tail (see chan.h). */
    size_t tail = atomic_load_explicit(&c->tail, memory_order_seq_cst);
    size_t head = atomic_load_explicit(&c->head, memory_order_seq_cst);
    if (tail & c->mark) return 1;
    return op == WP_SEND ? head + c->one_lap != tail : tail != head;
}

/* c locked, c buffered, a ring operation op just done. Claims one partner
   waiting on the other queue, if any, and completes its operation through
   the ring: receives into a waiting receiver's elem, sends a waiting
   sender's value. Returns the waiter to wake once unlocked, or NULL. */
static struct wp__chan_waiter *ring_partner(wp_chan *c, int op)
{
    struct wp__chan_sudog *sg = waitq_claim(op == WP_SEND ? &c->recvq : &c->sendq, 1);
    if (!sg) return NULL;
    /* Not closed (close claims every waiter under this lock), so neither can
       fail but by EAGAIN: a lock-free operation got there first. */
    sg->retry = (op == WP_SEND ? ring_pop(c, sg->elem) : ring_push(c, sg->elem)) != 0;
    return sg->w;
}

/* After a ring operation op completed without the lock: if a partner may
   wait (or the channel has a descriptor), take the lock, complete one
   partner and let the unlock move the descriptor's level. */
static void ring_after(wp_chan *c, int op)
{
    uint32_t want = (op == WP_SEND ? WP__CHAN_RECV_WAIT : WP__CHAN_SEND_WAIT) | WP__CHAN_HAS_FD;
    /* seq_cst: after our CAS on tail (head); see chan.h. */
    if (!(atomic_load_explicit(&c->flags, memory_order_seq_cst) & want)) return;
    wp__chan_lock(c);
    struct wp__chan_waiter *w = ring_partner(c, op);
    wp__chan_unlock(c);
    if (w) wp__chan_wake(w);
}

/* Prepares a waiting op of kind op on c for elem. An element of up to 8
   bytes travels in the waiter's line (a send's is copied in now; a
   receive's is copied out by the caller once done, if this returns 1): a
   partner then writes or reads that one line of ours, not another one as
   well. */
static int op_init(struct wp__chan_op *o, wp_chan *c, int op, void *elem)
{
    int small = elem && c->elem_size <= sizeof o->w.val;
    wp__chan_waiter_init(&o->w);
    o->sg = (struct wp__chan_sudog){
        .w = &o->w, .c = c, .elem = small ? o->w.val : elem, .op = (uint8_t)op};
    if (small && op == WP_SEND) memcpy(o->w.val, elem, c->elem_size);
    return small;
}

/* ------------------------------------------------ the fast waiter (cap 0) -- */

/* Where the element of the fast waiter's op is: in its val (up to 8 bytes)
   or behind the pointer stored there (NULL: a receive that drops it). */
static void *fast_elem(wp_chan *c)
{
    if (c->elem_size <= sizeof c->fast.val) return c->fast.val;
    void *p;
    memcpy(&p, c->fast.val, sizeof p);
    return p;
}

/* c locked, unbuffered. Claims the fast waiter if an op of kind op waits
   there and nobody claimed it yet (as waitq_claim does a sudog's): returns
   it, to be woken once the lock is dropped, or NULL. */
static struct wp__chan_waiter *fast_claim(wp_chan *c, int op, int success)
{
    /* relaxed: written under this lock, or cleared by an owner that no
       claimant can still complete (its done is set), which the CAS sees. */
    if (atomic_load_explicit(&c->fast_op, memory_order_relaxed) != 1 + op) return NULL;
    uint32_t open = 0;
    /* relaxed: as in waitq_claim. */
    if (!atomic_compare_exchange_strong_explicit(&c->fast.done, &open, WP__CHAN_DONE(0, success),
                                                 memory_order_relaxed, memory_order_relaxed))
        return NULL;
    return &c->fast;
}

/* c locked, unbuffered, nobody to hand over to. Whether the fast waiter is
   free for an op of kind op: no op holds it and none of that kind is
   queued (so it stays the oldest waiter of its kind). acquire: pairs with
   the release of its last owner, whose reads of val then come first. */
static int fast_free(wp_chan *c, int op)
{
    return atomic_load_explicit(&c->fast_op, memory_order_acquire) == 0 &&
           (op == WP_SEND ? c->sendq.first : c->recvq.first) == NULL;
}

/* c locked by the caller and fast_free: waits in the fast waiter, unlocks c
   and returns as chan_op does. The owner spins on the channel's line, the
   one its partner writes to claim it: the handoff moves that line alone. */
static int fast_wait(wp_chan *c, int op, void *elem, uint64_t timeout_ns, int busy)
{
    struct wp__chan_waiter *w = &c->fast;
    int small = c->elem_size <= sizeof w->val;
    /* relaxed: partners read these under the lock we hold. */
    atomic_store_explicit(&w->state, WP__CHAN_RUNNING, memory_order_relaxed);
    atomic_store_explicit(&w->done, 0, memory_order_relaxed);
    if (!small)
        memcpy(w->val, &elem, sizeof elem);
    else if (op == WP_SEND)
        memcpy(w->val, elem, c->elem_size);
    atomic_store_explicit(&c->fast_op, (uint8_t)(1 + op), memory_order_relaxed);
    wp__chan_unlock(c);

    struct timespec ts;
    if (wp__chan_park(w, wp__chan_deadline(timeout_ns, &ts)) != 0) {
        /* We claimed ourselves: no partner writes here any more. Under the
           lock, so that the unlock moves the descriptor's level. */
        wp__chan_lock(c);
        atomic_store_explicit(&c->fast_op, 0, memory_order_relaxed);
        wp__chan_unlock(c);
        return busy;
    }
    /* relaxed: the acquire in wp__chan_park ordered the claimant's CAS. */
    int ok = WP__CHAN_DONE_SUCCESS(atomic_load_explicit(&w->done, memory_order_relaxed));
    if (ok && small && op == WP_RECV && elem) memcpy(elem, w->val, c->elem_size);
    /* release: our reads of val come before the next owner writes it (its
       acquire in fast_free). The claimant's last touch came before our
       park returned. */
    atomic_store_explicit(&c->fast_op, 0, memory_order_release);
    return ok ? 0 : EPIPE;
}

/* Send, try_send and send_timeout (and the receives) on a buffered channel:
   the ring, and when it is full (empty) a sudog on sendq (recvq) and a
   sleep until a partner wakes us to retry. */
static int ring_op(wp_chan *c, int op, void *elem, uint64_t timeout_ns, int busy)
{
    struct timespec ts;
    const struct timespec *deadline = NULL;
    for (int first = 1;; first = 0) {
        int r = op == WP_SEND ? ring_push(c, elem) : ring_pop(c, elem);
        if (r == 0) ring_after(c, op);
        if (r != EAGAIN) return r;
        if (timeout_ns == 0 || (!first && deadline && past(deadline))) return busy;
        if (first) {
            deadline = wp__chan_deadline(timeout_ns, &ts);
            /* The partner is usually running and a few elements behind:
               watch the one slot we need a little before paying for a
               queued wait (a lock and a wake on each side). */
            int seen = 0;
            for (int i = 0; i < WP_CHAN_RING_SPIN && !(seen = ring_hint(c, op)); i++)
                wp__cpu_relax();
            if (seen) continue;
        }

        struct wp__chan_op o;
        int small = op_init(&o, c, op, elem);
        wp__chan_lock(c);
        wp__chan_enqueue(&o.sg);
        if (wp__chan_ring_recheck(c, op)) {
            wp__chan_unqueue(&o.sg);
            wp__chan_unlock(c);
            continue;
        }
        wp__chan_unlock(c);
        if (wp__chan_park(&o.w, deadline) != 0) {
            wp__chan_lock(c);
            wp__chan_unqueue(&o.sg);
            wp__chan_unlock(c);
            return busy;
        }
        /* relaxed: the acquire in wp__chan_park ordered the claimant's CAS
           and its writes (retry, the value). */
        if (WP__CHAN_DONE_SUCCESS(atomic_load_explicit(&o.w.done, memory_order_relaxed)) &&
            !o.sg.retry) {
            if (small && op == WP_RECV) memcpy(elem, o.w.val, c->elem_size);
            return 0;
        }
        /* Closed, or a partner was beaten to the ring: retry. */
    }
}

/* ---------------------------------------------------- the operations -- */

int wp__chan_send_locked(wp_chan *c, const void *elem, struct wp__chan_waiter **wake)
{
    if (c->cap > 0) {
        int r = ring_push(c, elem);
        if (r == 0) *wake = ring_partner(c, WP_SEND);
        return r;
    }
    if (c->closed) return EPIPE;
    /* A receiver waits: hand the value over, to the oldest first. */
    struct wp__chan_waiter *w = fast_claim(c, WP_RECV, 1);
    if (w) {
        void *dst = fast_elem(c);
        if (dst) memcpy(dst, elem, c->elem_size);
        *wake = w;
        return 0;
    }
    struct wp__chan_sudog *sg = waitq_claim(&c->recvq, 1);
    if (!sg) return EAGAIN;
    if (sg->elem) memcpy(sg->elem, elem, c->elem_size);
    *wake = sg->w;
    return 0;
}

int wp__chan_recv_locked(wp_chan *c, void *elem, struct wp__chan_waiter **wake)
{
    if (c->cap > 0) {
        int r = ring_pop(c, elem);
        if (r == 0) *wake = ring_partner(c, WP_RECV);
        return r;
    }
    struct wp__chan_waiter *w = fast_claim(c, WP_SEND, 1);
    if (w) {
        if (elem) memcpy(elem, fast_elem(c), c->elem_size);
        *wake = w;
        return 0;
    }
    struct wp__chan_sudog *sg = waitq_claim(&c->sendq, 1);
    if (!sg) return c->closed ? EPIPE : EAGAIN;
    if (elem) memcpy(elem, sg->elem, c->elem_size);
    *wake = sg->w;
    return 0;
}

/* The one body of send, try_send and send_timeout (and of the receives):
   complete now if possible, else queue a sudog and sleep up to timeout_ns.
   busy: what to return when it cannot complete in time. */
static int chan_op(wp_chan *c, int op, void *elem, uint64_t timeout_ns, int busy)
{
    if (c->cap > 0) return ring_op(c, op, elem, timeout_ns, busy);
    struct wp__chan_waiter *wake = NULL;
    wp__chan_lock(c);
    int r =
        op == WP_SEND ? wp__chan_send_locked(c, elem, &wake) : wp__chan_recv_locked(c, elem, &wake);
    if (r != EAGAIN || timeout_ns == 0) {
        wp__chan_unlock(c);
        if (wake) wp__chan_wake(wake);
        return r == EAGAIN ? busy : r;
    }
    if (fast_free(c, op)) return fast_wait(c, op, elem, timeout_ns, busy);
    struct wp__chan_op o;
    int small = op_init(&o, c, op, elem);
    wp__chan_enqueue(&o.sg);
    wp__chan_unlock(c);

    struct timespec ts;
    r = wp__chan_park(&o.w, wp__chan_deadline(timeout_ns, &ts));
    if (r != 0) {
        wp__chan_lock(c);
        wp__chan_unqueue(&o.sg);
        wp__chan_unlock(c);
        return busy;
    }
    /* relaxed: the acquire in wp__chan_park ordered the claimant's CAS. */
    if (!WP__CHAN_DONE_SUCCESS(atomic_load_explicit(&o.w.done, memory_order_relaxed))) return EPIPE;
    if (small && op == WP_RECV) memcpy(elem, o.w.val, c->elem_size);
    return 0;
}

/* The value is only read; sudogs carry one pointer for both directions. */
static inline void *unconst(const void *p)
{
    return (void *)(uintptr_t)p;
}

int wp_chan_send(wp_chan *c, const void *elem)
{
    if (!c || !elem) return EINVAL;
    return chan_op(c, WP_SEND, unconst(elem), WP_FOREVER, 0);
}

int wp_chan_try_send(wp_chan *c, const void *elem)
{
    if (!c || !elem) return EINVAL;
    return chan_op(c, WP_SEND, unconst(elem), 0, EAGAIN);
}

int wp_chan_send_timeout(wp_chan *c, const void *elem, uint64_t timeout_ns)
{
    if (!c || !elem) return EINVAL;
    return chan_op(c, WP_SEND, unconst(elem), timeout_ns, ETIMEDOUT);
}

int wp_chan_recv(wp_chan *c, void *elem)
{
    if (!c) return EINVAL;
    return chan_op(c, WP_RECV, elem, WP_FOREVER, 0);
}

int wp_chan_try_recv(wp_chan *c, void *elem)
{
    if (!c) return EINVAL;
    return chan_op(c, WP_RECV, elem, 0, EAGAIN);
}

int wp_chan_recv_timeout(wp_chan *c, void *elem, uint64_t timeout_ns)
{
    if (!c) return EINVAL;
    return chan_op(c, WP_RECV, elem, timeout_ns, ETIMEDOUT);
}

int wp_chan_close(wp_chan *c)
{
    if (!c) return EINVAL;
    wp__chan_lock(c);
    if (c->closed) {
        wp__chan_unlock(c);
        return EPIPE;
    }
    c->closed = 1;
    /* seq_cst: senders that load tail after this fail with EPIPE; a CAS
       that raced with it failed and rereads. */
    if (c->cap > 0) atomic_fetch_or_explicit(&c->tail, c->mark, memory_order_seq_cst);
    /* Claim every waiter now, wake them once the lock is dropped. A claimed
       owner cannot leave before its wake, so the list (threaded through
       the sudogs on their stacks) stays valid until then. */
    struct wp__chan_sudog *list = NULL, *sg;
    while ((sg = waitq_claim(&c->recvq, 0)) != NULL || (sg = waitq_claim(&c->sendq, 0)) != NULL) {
        sg->next = list;
        list = sg;
    }
    struct wp__chan_waiter *fast = NULL;
    if (c->cap == 0 && (fast = fast_claim(c, WP_RECV, 0)) == NULL) fast = fast_claim(c, WP_SEND, 0);
    wp__chan_unlock(c);
    if (fast) wp__chan_wake(fast);
    while (list) {
        sg = list;
        list = sg->next; /* read before the wake: then sg may be gone */
        wp__chan_wake(sg->w);
    }
    return 0;
}

size_t wp_chan_len(wp_chan *c)
{
    if (!c || c->cap == 0) return 0;
    /* seq_cst: a head and a tail that were both current at one moment (tail
       read again unchanged after head). An element in flight counts. */
    size_t head, tail;
    do {
        tail = atomic_load_explicit(&c->tail, memory_order_seq_cst);
        head = atomic_load_explicit(&c->head, memory_order_seq_cst);
    } while (atomic_load_explicit(&c->tail, memory_order_seq_cst) != tail);
    tail &= ~c->mark;
    size_t hi = head & (c->mark - 1), ti = tail & (c->mark - 1);
    if (hi < ti) return ti - hi;
    if (hi > ti) return c->cap - hi + ti;
    return tail == head ? 0 : c->cap;
}

int wp_chan_fd(wp_chan *c, int *fd)
{
    if (!c || !fd) return EINVAL;
    int r = 0;
    wp__chan_lock(c);
    if (c->efd < 0) {
        /* Made under the lock, once per channel: no second one can race in.
           Holds 0; the unlock below raises it if the channel is already
           receivable. */
        int e = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (e >= 0) {
            c->efd = e;
            c->efd_up = 0;
        } else {
            r = errno == EMFILE || errno == ENFILE ? errno : ENOMEM;
        }
    }
    if (r == 0) *fd = c->efd;
    wp__chan_unlock(c);
    return r;
}

size_t wp_chan_cap(wp_chan *c)
{
    return c ? c->cap : 0;
}

int wp_chan_create(wp_chan **out, size_t elem_size, size_t capacity)
{
    if (!out || elem_size == 0) return EINVAL;
    /* EINVAL: the elements alone (and the header) overflow a size_t. */
    if (capacity > (SIZE_MAX - sizeof(wp_chan) - WP__CACHE_LINE) / elem_size) return EINVAL;
    /* A slot is its stamp, then the element rounded up to 8 bytes. Where
       only that larger size overflows, no allocation could succeed: ENOMEM,
       as for any other size too large to allocate. */
    size_t stride = 0;
    if (capacity > 0) {
        if (elem_size > SIZE_MAX - 2 * sizeof(size_t)) return ENOMEM;
        stride = sizeof(size_t) + ((elem_size + 7) & ~(size_t)7);
        if (capacity > (SIZE_MAX - sizeof(wp_chan) - WP__CACHE_LINE) / stride) return ENOMEM;
    }
    /* One block, cache-line aligned: the channel, then its ring. */
    size_t size =
        (sizeof(wp_chan) + stride * capacity + WP__CACHE_LINE - 1) & ~(size_t)(WP__CACHE_LINE - 1);
    wp_chan *c = aligned_alloc(WP__CACHE_LINE, size);
    if (!c) return ENOMEM;
    memset(c, 0, sizeof *c);
    atomic_init(&c->lock, 0);
    atomic_init(&c->flags, 0);
    atomic_init(&c->head, 0);
    atomic_init(&c->tail, 0);
    atomic_init(&c->fast_op, 0);
    wp__chan_waiter_init(&c->fast);
    c->elem_size = elem_size;
    c->cap = capacity;
    c->stride = stride;
    c->efd = -1;
    c->buf = (unsigned char *)(c + 1);
    if (capacity > 0) {
        /* Positions: index in the bits below mark, then the closed bit, then
           the lap. A slot starts free for its lap-0 position. */
        c->mark = 1;
        while (c->mark < capacity + 1) c->mark <<= 1;
        c->one_lap = c->mark << 1;
        for (size_t i = 0; i < capacity; i++) atomic_init(&ring_slot(c, i)->stamp, i);
    }
    *out = c;
    return 0;
}

void wp_chan_destroy(wp_chan *c)
{
    if (!c) return;
    if (c->efd >= 0) close(c->efd);
    free(c);
}
