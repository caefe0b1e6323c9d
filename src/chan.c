/*
 * Channels: Go's chan in C. A bounded ring of elements plus two queues of
 * waiting operations, all behind one lock per channel (see chan.h for the
 * structures and the invariants).
 *
 * Who touches what:
 *   - Everything in struct wp_chan but elem_size/cap/buf is protected by
 *     c->lock (wp__chan_lock).
 *   - A sudog is on its owner's stack. While it is queued, other threads read
 *     it under the channel lock. The one thread that claims its waiter
 *     (CAS done from 0 to the sudog's index and success, always under the
 *     lock of the channel it dequeues from) copies the value to or from
 *     sg->elem (for an element of up to 8 bytes, the waiter's own val, on
 *     the line the claimant writes anyway), drops the lock and wakes the owner with a single atomic exchange on
 *     w->state: after that exchange nobody but the owner touches the
 *     waiter, and the owner may return (its stack goes away), unless the
 *     owner had gone to sleep: then the waker also makes the futex call on
 *     w->state and stores RELEASED after it, and the owner, which may wake
 *     early (timeout, spurious wake) and see WOKEN, waits for RELEASED
 *     before it returns, so no futex call ever names a stack that is gone.
 *   - The owner sleeps until it sees WOKEN. If its timeout passes first it
 *     tries to claim itself; if a partner won instead, the value is on its
 *     way and the owner keeps waiting (without limit: the partner is
 *     between its CAS and its wake, which takes no time).
 *
 * Close sets closed, claims every queued waiter with success 0 (senders
 * get EPIPE, receivers EPIPE) and wakes them after dropping the lock. What
 * is buffered stays deliverable; a receive on a closed, drained channel
 * returns EPIPE.
 *
 * No operation allocates: buffers are made in wp_chan_create, waiters and
 * sudogs live on the stack. A thread that must wait spins briefly (the
 * partner is often running on another CPU and about to arrive), then
 * sleeps on a futex. A partner makes a system call to wake it only if it
 * really went to sleep. The channel lock is a futex lock too: a short spin,
 * then sleep (critical sections are a few dozen instructions).
 *
 * The descriptor (wp_chan_fd) is an eventfd that holds 1 exactly while a
 * receive would not wait. Every operation changes that state under the lock,
 * so wp__chan_unlock compares it with efd_up and writes 1 on the rising edge
 * or reads it back on the falling edge, still holding the lock: the edges
 * then reach the eventfd in the order the states changed (done after the
 * unlock, a rising write could land after a later falling read and leave a
 * drained channel readable). That bends "wake no thread under a lock" only
 * for the loop's one wake per edge; a write to an eventfd never blocks, and a
 * burst of sends into a drained channel pays one write, not one each. A
 * channel without a descriptor pays the one branch on efd.
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
    if (c->count > 0 || c->closed) return 1;
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

void wp__chan_unlock(wp_chan *c)
{
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

/* Absolute CLOCK_MONOTONIC deadline timeout_ns from now; 0 if there is none
   (WP_FOREVER or too far to represent). */
static int deadline(uint64_t timeout_ns, struct timespec *ts)
{
    if (timeout_ns == WP_FOREVER) return 0;
    clock_gettime(CLOCK_MONOTONIC, ts);
    uint64_t sec = timeout_ns / 1000000000u + (uint64_t)ts->tv_sec;
    long nsec = (long)(timeout_ns % 1000000000u) + ts->tv_nsec;
    if (nsec >= 1000000000L) {
        nsec -= 1000000000L;
        sec++;
    }
    if (sec > (uint64_t)INT32_MAX * 2) return 0; /* centuries away: no limit */
    ts->tv_sec = (time_t)sec;
    ts->tv_nsec = nsec;
    return 1;
}

static int past(const struct timespec *ts)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > ts->tv_sec || (now.tv_sec == ts->tv_sec && now.tv_nsec >= ts->tv_nsec);
}

int wp__chan_park(struct wp__chan_waiter *w, uint64_t timeout_ns)
{
    struct timespec ts;
    int timed = deadline(timeout_ns, &ts);

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
        if (i == 16 && !deadline(WP_CHAN_SPIN_NS, &spin_end)) break;
        if (i % 16 == 0 && (past(&spin_end) || (timed && past(&ts)))) break;
    }
    uint32_t st = WP__CHAN_RUNNING;
    /* acquire on failure: the state is WOKEN, pairs as above. Success needs
       no order: it only tells the waker to make the futex call. */
    if (!atomic_compare_exchange_strong_explicit(&w->state, &st, WP__CHAN_SLEEPING,
                                                 memory_order_acquire, memory_order_acquire))
        return 0;
    for (;;) {
        futex_wait(&w->state, WP__CHAN_SLEEPING, timed ? &ts : NULL);
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
        if (timed && past(&ts)) {
            uint32_t open = 0;
            /* relaxed: only one of us and the partners may win (see
               waitq_claim); if we win, nobody writes to our sudogs again and
               the caller takes them off their queues under the locks. */
            if (atomic_compare_exchange_strong_explicit(&w->done, &open, 1, memory_order_relaxed,
                                                        memory_order_relaxed))
                return ETIMEDOUT;
            timed = 0; /* a partner claimed us: its wake is on the way */
        }
    }
}

void wp__chan_wake(struct wp__chan_waiter *w)
{
    /* release: publishes the value copied for the owner and done; pairs with the acquire loads in wp__chan_park. If the owner did not
       sleep, this is our last touch of *w: it may return right after. */
    if (atomic_exchange_explicit(&w->state, WP__CHAN_WOKEN, memory_order_release) ==
        WP__CHAN_SLEEPING) {
        futex_wake(&w->state);
        /* release: our last touch; the owner waits for it (acquire in
           wp__chan_park) before it returns. */
        atomic_store_explicit(&w->state, WP__CHAN_RELEASED, memory_order_release);
    }
}

/* ----------------------------------------------------- the operations -- */

static inline unsigned char *slot(wp_chan *c, size_t i)
{
    return c->buf + i * c->elem_size;
}

/* c locked. Where the buffered head is. */
static inline size_t recvx(const wp_chan *c)
{
    return c->sendx >= c->count ? c->sendx - c->count : c->sendx + c->cap - c->count;
}

int wp__chan_send_locked(wp_chan *c, const void *elem, struct wp__chan_waiter **wake)
{
    if (c->closed) return EPIPE;
    struct wp__chan_sudog *sg = waitq_claim(&c->recvq, 1);
    if (sg) {
        /* A receiver waits, so the buffer is empty: hand the value over. */
        if (sg->elem) memcpy(sg->elem, elem, c->elem_size);
        *wake = sg->w;
        return 0;
    }
    if (c->count < c->cap) {
        memcpy(slot(c, c->sendx), elem, c->elem_size);
        if (++c->sendx == c->cap) c->sendx = 0;
        c->count++;
        return 0;
    }
    return EAGAIN;
}

int wp__chan_recv_locked(wp_chan *c, void *elem, struct wp__chan_waiter **wake)
{
    struct wp__chan_sudog *sg = waitq_claim(&c->sendq, 1);
    if (sg) {
        if (c->cap == 0) {
            if (elem) memcpy(elem, sg->elem, c->elem_size);
        } else {
            /* A sender waits, so the buffer is full (recvx == sendx): take
               its head and put the sender's value in the slot it frees, now
               the tail. count stays cap. */
            unsigned char *s = slot(c, c->sendx);
            if (elem) memcpy(elem, s, c->elem_size);
            memcpy(s, sg->elem, c->elem_size);
            if (++c->sendx == c->cap) c->sendx = 0;
        }
        *wake = sg->w;
        return 0;
    }
    if (c->count > 0) {
        if (elem) memcpy(elem, slot(c, recvx(c)), c->elem_size);
        c->count--;
        return 0;
    }
    return c->closed ? EPIPE : EAGAIN;
}

/* The one body of send, try_send and send_timeout (and of the receives):
   complete now if possible, else queue a sudog and sleep up to timeout_ns.
   busy: what to return when it cannot complete in time. */
static int chan_op(wp_chan *c, int op, void *elem, uint64_t timeout_ns, int busy)
{
    struct wp__chan_waiter *wake = NULL;
    wp__chan_lock(c);
    int r =
        op == WP_SEND ? wp__chan_send_locked(c, elem, &wake) : wp__chan_recv_locked(c, elem, &wake);
    if (r != EAGAIN || timeout_ns == 0) {
        wp__chan_unlock(c);
        if (wake) wp__chan_wake(wake);
        return r == EAGAIN ? busy : r;
    }
    /* A small element travels in the waiter's line: a partner then writes
       (or reads) that one line of ours, not another one as well. */
    struct wp__chan_op o;
    int small = elem && c->elem_size <= sizeof o.w.val;
    wp__chan_waiter_init(&o.w);
    o.sg = (struct wp__chan_sudog){
        .w = &o.w, .c = c, .elem = small ? o.w.val : elem, .op = (uint8_t)op};
    if (small && op == WP_SEND) memcpy(o.w.val, elem, c->elem_size);
    wp__chan_enqueue(&o.sg);
    wp__chan_unlock(c);

    r = wp__chan_park(&o.w, timeout_ns);
    if (r != 0) {
        wp__chan_lock(c);
        wp__chan_unqueue(&o.sg);
        wp__chan_unlock(c);
        return busy;
    }
    /* relaxed: the acquire in wp__chan_park ordered the claimant's CAS. */
    if (!WP__CHAN_DONE_SUCCESS(atomic_load_explicit(&o.w.done, memory_order_relaxed)))
        return EPIPE;
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
    /* Claim every waiter now, wake them once the lock is dropped. A claimed
       owner cannot leave before its wake, so the list (threaded through
       the sudogs on their stacks) stays valid until then. */
    struct wp__chan_sudog *list = NULL, *sg;
    while ((sg = waitq_claim(&c->recvq, 0)) != NULL || (sg = waitq_claim(&c->sendq, 0)) != NULL) {
        sg->next = list;
        list = sg;
    }
    wp__chan_unlock(c);
    while (list) {
        sg = list;
        list = sg->next; /* read before the wake: then sg may be gone */
        wp__chan_wake(sg->w);
    }
    return 0;
}

size_t wp_chan_len(wp_chan *c)
{
    if (!c) return 0;
    wp__chan_lock(c);
    size_t n = c->count;
    wp__chan_unlock(c);
    return n;
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
    if (capacity > (SIZE_MAX - sizeof(wp_chan) - WP__CACHE_LINE) / elem_size) return EINVAL;
    /* One block, cache-line aligned: the channel, then its ring. */
    size_t size = (sizeof(wp_chan) + elem_size * capacity + WP__CACHE_LINE - 1) &
                  ~(size_t)(WP__CACHE_LINE - 1);
    wp_chan *c = aligned_alloc(WP__CACHE_LINE, size);
    if (!c) return ENOMEM;
    memset(c, 0, sizeof *c);
    atomic_init(&c->lock, 0);
    c->elem_size = elem_size;
    c->cap = capacity;
    c->efd = -1;
    c->buf = (unsigned char *)(c + 1);
    *out = c;
    return 0;
}

void wp_chan_destroy(wp_chan *c)
{
    if (!c) return;
    if (c->efd >= 0) close(c->efd);
    free(c);
}
