/*
 * Channels: Go's chan in C. A bounded ring of elements plus two queues of
 * waiting operations, all behind one mutex per channel (see chan.h for the
 * structures and the invariants).
 *
 * Who touches what:
 *   - Everything in struct wp_chan but elem_size/cap is protected by c->lock.
 *   - A sudog is on its owner's stack. While it is queued, other threads read
 *     it under the channel lock. The one thread that claims its waiter
 *     (CAS done 0 -> 1, always under the lock of the channel it dequeues
 *     from) copies the value to or from sg->elem, sets success and fired,
 *     drops the lock and wakes the owner with a single atomic exchange on
 *     w->state: after that exchange nobody but the owner touches the
 *     waiter, and the owner may return (its stack goes away).
 *   - The owner sleeps until it sees WOKEN. If its timeout passes first it
 *     tries to claim itself; if a partner won instead, the value is on its
 *     way and the owner keeps waiting (without limit: the partner is
 *     between its CAS and its wake, which takes no time).
 *
 * Close sets closed, claims every queued waiter with success = 0 (senders
 * get EPIPE, receivers EPIPE) and wakes them after dropping the lock. What
 * is buffered stays deliverable; a receive on a closed, drained channel
 * returns EPIPE.
 *
 * No operation allocates: buffers are made in wp_chan_create, waiters and
 * sudogs live on the stack. A thread that must wait spins briefly (the
 * partner is often running on another CPU and about to arrive), then
 * sleeps on a futex (Linux) or a condition variable (elsewhere). A partner
 * makes a system call to wake it only if it really went to sleep.
 */
#include "chan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef WP_CHAN_FUTEX
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

/* Spins of the owner before it sleeps (each a CPU pause, ~10-150 cycles). */
#define WP_CHAN_SPIN 256

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

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
   thread manages to claim off q and returns it (NULL: none). Stale sudogs
   met on the way are dropped from the queue. */
static struct wp__chan_sudog *waitq_claim(struct wp__chan_waitq *q)
{
    struct wp__chan_sudog *sg;
    while ((sg = q->first) != NULL) {
        waitq_remove(q, sg);
        uint32_t open = 0;
        /* relaxed: the CAS only has to pick one winner, which any order
           does. What the winner then writes (value, success, fired) reaches
           the owner through the release in wp__chan_wake; what the owner
           wrote into the sudog reached us through the channel lock. */
        if (atomic_compare_exchange_strong_explicit(&sg->w->done, &open, 1, memory_order_relaxed,
                                                    memory_order_relaxed))
            return sg;
    }
    return NULL;
}

/* Records how a claimed sudog completed; the wake follows once unlocked. */
static void finish(struct wp__chan_sudog *sg, int success)
{
    sg->success = success;
    sg->w->fired = sg;
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

#ifdef WP_CHAN_FUTEX
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
#endif

void wp__chan_waiter_init(struct wp__chan_waiter *w)
{
    /* relaxed: w is not shared yet; queueing it under a lock publishes it. */
    atomic_init(&w->state, WP__CHAN_RUNNING);
    atomic_init(&w->done, 0);
    w->fired = NULL;
#ifndef WP_CHAN_FUTEX
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &a);
    pthread_condattr_destroy(&a);
    pthread_mutex_init(&w->m, NULL);
#endif
}

void wp__chan_waiter_fini(struct wp__chan_waiter *w)
{
#ifndef WP_CHAN_FUTEX
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->m);
#else
    (void)w;
#endif
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

    for (int i = 0; i < WP_CHAN_SPIN; i++) {
        /* acquire: pairs with the release exchange in wp__chan_wake, so the
           value and fired written before it are visible. */
        if (atomic_load_explicit(&w->state, memory_order_acquire) == WP__CHAN_WOKEN) return 0;
        cpu_relax();
    }
#ifdef WP_CHAN_FUTEX
    uint32_t st = WP__CHAN_RUNNING;
    /* acquire on failure: the state is WOKEN, pairs as above. Success needs
       no order: it only tells the waker to make the futex call. */
    if (!atomic_compare_exchange_strong_explicit(&w->state, &st, WP__CHAN_SLEEPING,
                                                 memory_order_acquire, memory_order_acquire))
        return 0;
    for (;;) {
        futex_wait(&w->state, WP__CHAN_SLEEPING, timed ? &ts : NULL);
        /* acquire: pairs with the release exchange in wp__chan_wake. */
        if (atomic_load_explicit(&w->state, memory_order_acquire) == WP__CHAN_WOKEN) return 0;
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
#else
    int r = 0;
    pthread_mutex_lock(&w->m);
    /* acquire: pairs with the release store in wp__chan_wake (the mutex
       would do as well; the atomic keeps the spin above race-free). */
    while (atomic_load_explicit(&w->state, memory_order_acquire) != WP__CHAN_WOKEN) {
        if (!timed) {
            pthread_cond_wait(&w->cv, &w->m);
        } else if (pthread_cond_timedwait(&w->cv, &w->m, &ts) == ETIMEDOUT || past(&ts)) {
            uint32_t open = 0;
            /* relaxed: as in the futex version above. */
            if (atomic_compare_exchange_strong_explicit(&w->done, &open, 1, memory_order_relaxed,
                                                        memory_order_relaxed)) {
                r = ETIMEDOUT;
                break;
            }
            timed = 0;
        }
    }
    pthread_mutex_unlock(&w->m);
    return r;
#endif
}

void wp__chan_wake(struct wp__chan_waiter *w)
{
#ifdef WP_CHAN_FUTEX
    /* release: publishes the value copied for the owner, success and fired;
       pairs with the acquire loads in wp__chan_park. This is our last touch
       of *w: the owner may return right after it. The futex call only
       names the address (a stale address is harmless: waits loop), and is
       made only if the owner went to sleep. */
    if (atomic_exchange_explicit(&w->state, WP__CHAN_WOKEN, memory_order_release) ==
        WP__CHAN_SLEEPING)
        futex_wake(&w->state);
#else
    pthread_mutex_lock(&w->m);
    /* release: as above; the owner cannot return before we unlock m. */
    atomic_store_explicit(&w->state, WP__CHAN_WOKEN, memory_order_release);
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->m);
#endif
}

/* ----------------------------------------------------- the operations -- */

static inline unsigned char *slot(wp_chan *c, size_t i)
{
    return c->buf + i * c->elem_size;
}

int wp__chan_send_locked(wp_chan *c, const void *elem, struct wp__chan_waiter **wake)
{
    if (c->closed) return EPIPE;
    struct wp__chan_sudog *sg = waitq_claim(&c->recvq);
    if (sg) {
        /* A receiver waits, so the buffer is empty: hand the value over. */
        if (sg->elem) memcpy(sg->elem, elem, c->elem_size);
        finish(sg, 1);
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
    struct wp__chan_sudog *sg = waitq_claim(&c->sendq);
    if (sg) {
        if (c->cap == 0) {
            if (elem) memcpy(elem, sg->elem, c->elem_size);
        } else {
            /* A sender waits, so the buffer is full: take its head and put
               the sender's value in the slot it frees, now the tail. */
            unsigned char *s = slot(c, c->recvx);
            if (elem) memcpy(elem, s, c->elem_size);
            memcpy(s, sg->elem, c->elem_size);
            if (++c->recvx == c->cap) c->recvx = 0;
            c->sendx = c->recvx;
        }
        finish(sg, 1);
        *wake = sg->w;
        return 0;
    }
    if (c->count > 0) {
        if (elem) memcpy(elem, slot(c, c->recvx), c->elem_size);
        if (++c->recvx == c->cap) c->recvx = 0;
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
    pthread_mutex_lock(&c->lock);
    int r =
        op == WP_SEND ? wp__chan_send_locked(c, elem, &wake) : wp__chan_recv_locked(c, elem, &wake);
    if (r != EAGAIN || timeout_ns == 0) {
        pthread_mutex_unlock(&c->lock);
        if (wake) wp__chan_wake(wake);
        return r == EAGAIN ? busy : r;
    }
    struct wp__chan_waiter w;
    wp__chan_waiter_init(&w);
    struct wp__chan_sudog sg = {.w = &w, .c = c, .elem = elem, .op = op};
    wp__chan_enqueue(&sg);
    pthread_mutex_unlock(&c->lock);

    r = wp__chan_park(&w, timeout_ns);
    if (r == 0) {
        r = sg.success ? 0 : EPIPE;
    } else {
        pthread_mutex_lock(&c->lock);
        wp__chan_unqueue(&sg);
        pthread_mutex_unlock(&c->lock);
        r = busy;
    }
    wp__chan_waiter_fini(&w);
    return r;
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
    pthread_mutex_lock(&c->lock);
    if (c->closed) {
        pthread_mutex_unlock(&c->lock);
        return EPIPE;
    }
    c->closed = 1;
    /* Claim every waiter now, wake them once the lock is dropped. A claimed
       owner cannot leave before its wake, so the list (threaded through
       the sudogs on their stacks) stays valid until then. */
    struct wp__chan_sudog *list = NULL, *sg;
    while ((sg = waitq_claim(&c->recvq)) != NULL || (sg = waitq_claim(&c->sendq)) != NULL) {
        finish(sg, 0);
        sg->next = list;
        list = sg;
    }
    pthread_mutex_unlock(&c->lock);
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
    pthread_mutex_lock(&c->lock);
    size_t n = c->count;
    pthread_mutex_unlock(&c->lock);
    return n;
}

size_t wp_chan_cap(wp_chan *c)
{
    return c ? c->cap : 0;
}

int wp_chan_create(wp_chan **out, size_t elem_size, size_t capacity)
{
    if (!out || elem_size == 0) return EINVAL;
    if (capacity > (SIZE_MAX - sizeof(wp_chan)) / elem_size) return EINVAL;
    /* One block: the channel, then its ring. */
    wp_chan *c = malloc(sizeof *c + elem_size * capacity);
    if (!c) return ENOMEM;
    memset(c, 0, sizeof *c);
    int r = pthread_mutex_init(&c->lock, NULL);
    if (r != 0) {
        free(c);
        return r;
    }
    c->elem_size = elem_size;
    c->cap = capacity;
    c->buf = (unsigned char *)(c + 1);
    *out = c;
    return 0;
}

void wp_chan_destroy(wp_chan *c)
{
    if (!c) return;
    pthread_mutex_destroy(&c->lock);
    free(c);
}
