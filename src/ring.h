/*
 * ring: the pool's bounded MPMC task queue (internal).
 *
 * Dmitry Vyukov's bounded queue: cap slots, each with a sequence number that
 * says whose turn it is. Positions grow without wrapping (64 bits); slot
 * i holds positions i, i + cap, i + 2 cap, ...
 *
 *   slot(pos).seq == 2 pos        free for the producer of position pos
 *   slot(pos).seq == 2 pos + 1    holds the task of position pos (published)
 *   otherwise                     another lap is using it (full / empty)
 *
 * (Doubling keeps "published for pos" and "free for pos + cap" apart even
 * when cap is 1, where Vyukov's original pos / pos + 1 would collide.)
 *
 * Producers claim positions with a CAS on `enq`, write {fn, arg}, then
 * publish with a release store of seq. Consumers claim positions with a CAS
 * on `deq`. Both sides claim several consecutive positions per CAS when they
 * can (a batch submit; a worker taking a run of tasks).
 *
 * Claiming is not taking. A claimed task stays in its slot until its owner
 * takes it to start it: reads {fn, arg} and frees the slot (seq from
 * 2 pos + 1 to 2 (pos + cap)). The owner is the claimer, or a thread it
 * passed the position to: pool.c lets an idle worker take claimed tasks
 * from the end of a busy worker's run, and decides who owns which position
 * with the run's bounds, not here. A task keeps its slot until it starts,
 * so at no moment do more than cap tasks wait that have not started: the
 * bound is exact.
 *
 * Closing sets WP__RING_CLOSED in `enq` with one fetch_or: from then on no
 * producer can claim, and enq (without the bit) is the final count. A
 * producer that claimed before the close publishes its slot soon after;
 * consumers wait for it (it never blocks between claim and publish).
 *
 * `enq` and `deq` live on their own cache lines; the slot array and its
 * size on a third, read-only after init.
 */
#ifndef WP_RING_H
#define WP_RING_H

#include "park.h"
#include "wpool.h"

#include <errno.h>
#include <stdalign.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#define WP__RING_CLOSED (UINT64_C(1) << 63) /* positions stay below 2^62 */

typedef struct wp__slot {
    _Atomic uint64_t seq; /* turn, see above */
    /* Written by the claiming producer before it publishes seq; read by
       whoever takes the task. Atomic (relaxed) because a would-be taker may
       read them while the winner frees the slot and the next lap's producer
       writes them again: its CAS then fails and it drops what it read. */
    _Atomic(wp_task_fn) fn;
    _Atomic(void *) arg;
    uint64_t pad_; /* 32 bytes: two slots per cache line, never straddling */
} wp__slot;

typedef struct wp__ring {
    alignas(WP__CACHE_LINE) _Atomic uint64_t enq; /* next position to produce | CLOSED */
    alignas(WP__CACHE_LINE) _Atomic uint64_t deq; /* next position to consume */
    alignas(WP__CACHE_LINE) wp__slot *slots;      /* read-only after init */
    uint64_t cap;
    uint64_t mask;   /* cap - 1 when cap is a power of two, else 0 (use %) */
    bool prefetch_w; /* the CPU has a write prefetch (wp__ring_prefetch_take) */
} wp__ring;

/* Largest capacity accepted (the slot array's size must fit a size_t). */
#define WP__RING_MAX_CAP                                                                           \
    ((SIZE_MAX / sizeof(wp__slot)) < (UINT64_C(1) << 40) ? (SIZE_MAX / sizeof(wp__slot))           \
                                                         : (UINT64_C(1) << 40))

/* The slot index of position pos: a mask for a power-of-two capacity (the
   default), a division otherwise. Loops step from there with
   wp__ring_next, so a run of slots costs one division at most. */
static inline uint64_t wp__ring_index(const wp__ring *r, uint64_t pos)
{
    return r->mask ? (pos & r->mask) : (pos % r->cap);
}

static inline uint64_t wp__ring_next(uint64_t idx, uint64_t cap)
{
    return idx + 1 == cap ? 0 : idx + 1;
}

static inline wp__slot *wp__ring_slot(const wp__ring *r, uint64_t pos)
{
    return &r->slots[wp__ring_index(r, pos)];
}

/* Whether wp__ring_prefetch_take can ask for a line in exclusive state.
   x86: PREFETCHW, where CPUID announces it (the PRFCHW bit: AMD since
   K10, Intel since Broadwell); elsewhere the compiler's write prefetch
   (PRFM PSTL1KEEP on arm64), or nothing where it has none. Called once
   per pool: CPUID traps to the hypervisor in a VM. */
static inline bool wp__prefetch_w_usable(void)
{
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    return __get_cpuid(0x80000001u, &a, &b, &c, &d) && (c & (1u << 8)) != 0; /* PRFCHW */
#else
    return true;
#endif
}

/* 0, EINVAL (cap 0 or too large) or ENOMEM. */
static inline int wp__ring_init(wp__ring *r, uint64_t cap)
{
    if (cap == 0 || cap > WP__RING_MAX_CAP) return EINVAL;
    void *mem = NULL;
    if (posix_memalign(&mem, WP__CACHE_LINE, (size_t)cap * sizeof(wp__slot)) != 0) return ENOMEM;
    r->slots = mem;
    r->cap = cap;
    r->mask = (cap & (cap - 1)) == 0 ? cap - 1 : 0;
    r->prefetch_w = wp__prefetch_w_usable();
    for (uint64_t i = 0; i < cap; i++) {
        atomic_init(&r->slots[i].seq, 2 * i);
        atomic_init(&r->slots[i].fn, NULL);
        atomic_init(&r->slots[i].arg, NULL);
        r->slots[i].pad_ = 0;
    }
    atomic_init(&r->enq, 0);
    atomic_init(&r->deq, 0);
    return 0;
}

static inline void wp__ring_free(wp__ring *r)
{
    free(r->slots);
    r->slots = NULL;
}

/*
 * Claims up to n free consecutive positions and fills them with fn(args[i])
 * (args NULL: arg for all). Returns how many were pushed (0: full), or -1
 * when closed. The claim is a seq_cst CAS: it pairs with the seq_cst
 * fence in wp__event_prepare of a worker about to sleep (see park.h).
 */
static inline long wp__ring_push(wp__ring *r, wp_task_fn fn, void *const *args, void *arg,
                                 uint64_t n)
{
    /* Read-only after init: kept in registers across the atomics below. */
    wp__slot *const slots = r->slots;
    const uint64_t cap = r->cap;
    if (n > cap) n = cap;
    /* relaxed: only a guess, the CAS validates it. */
    uint64_t pos = atomic_load_explicit(&r->enq, memory_order_relaxed);
    uint64_t got;
    for (;;) {
        if (pos & WP__RING_CLOSED) return -1;
        got = 0;
        /* acquire: the consumer's release of the slot (after it read the old
           fn/arg) happens before we overwrite it. */
        for (uint64_t idx = wp__ring_index(r, pos);
             got < n &&
             atomic_load_explicit(&slots[idx].seq, memory_order_acquire) == 2 * (pos + got);
             idx = wp__ring_next(idx, cap))
            got++;
        if (got == 0) {
            uint64_t now = atomic_load_explicit(&r->enq, memory_order_relaxed);
            if (now == pos) return 0; /* the slot still holds last lap's task: full */
            pos = now;
            continue;
        }
        if (atomic_compare_exchange_weak_explicit(&r->enq, &pos, pos + got, memory_order_seq_cst,
                                                  memory_order_relaxed))
            break;
    }
    uint64_t idx = wp__ring_index(r, pos);
    for (uint64_t i = 0; i < got; i++, idx = wp__ring_next(idx, cap)) {
        wp__slot *s = &slots[idx];
        /* relaxed: published by the release store of seq below. */
        atomic_store_explicit(&s->fn, fn, memory_order_relaxed);
        atomic_store_explicit(&s->arg, args ? args[i] : arg, memory_order_relaxed);
        /* release: publishes fn/arg; pairs with the acquire in wp__ring_claim. */
        atomic_store_explicit(&s->seq, 2 * (pos + i) + 1, memory_order_release);
    }
    return (long)got;
}

/* wp__ring_push of one task (wp_submit's fast path): 1, 0 (full) or -1
   (closed), with the same orders as wp__ring_push. */
static inline long wp__ring_push1(wp__ring *r, wp_task_fn fn, void *arg)
{
    /* relaxed: only a guess, the CAS validates it. */
    uint64_t pos = atomic_load_explicit(&r->enq, memory_order_relaxed);
    for (;;) {
        if (pos & WP__RING_CLOSED) return -1;
        wp__slot *s = wp__ring_slot(r, pos);
        /* acquire: as in wp__ring_push. */
        if (atomic_load_explicit(&s->seq, memory_order_acquire) != 2 * pos) {
            uint64_t now = atomic_load_explicit(&r->enq, memory_order_relaxed);
            if (now == pos) return 0; /* the slot still holds last lap's task: full */
            pos = now;
            continue;
        }
        /* seq_cst: as in wp__ring_push (park.h's protocol). */
        if (atomic_compare_exchange_weak_explicit(&r->enq, &pos, pos + 1, memory_order_seq_cst,
                                                  memory_order_relaxed)) {
            /* relaxed: published by the release store of seq below. */
            atomic_store_explicit(&s->fn, fn, memory_order_relaxed);
            atomic_store_explicit(&s->arg, arg, memory_order_relaxed);
            /* release: publishes fn/arg; pairs with the acquire in wp__ring_claim. */
            atomic_store_explicit(&s->seq, 2 * pos + 1, memory_order_release);
            return 1;
        }
    }
}

/*
 * Claims up to max published consecutive positions; returns how many (0:
 * empty, or the next task is still being published) and sets *first. The
 * claimed tasks stay in their slots until wp__ring_take. *more is set when
 * a published task follows the claimed run (someone else could take it).
 *
 * Past `fair`, a claim that reached the last published task takes half
 * of what it found (at least fair): a worker that keeps pace with a
 * producer then leaves alone the tasks published last, on the lines the
 * producer is still writing, and as much for the other workers. One that
 * found max tasks (the ring is deeper) takes them all.
 */
static inline uint64_t wp__ring_claim_share(wp__ring *r, uint64_t max, uint64_t fair,
                                            uint64_t *first, bool *more)
{
    wp__slot *const slots = r->slots; /* read-only after init */
    const uint64_t cap = r->cap;
    uint64_t pos = atomic_load_explicit(&r->deq, memory_order_relaxed);
    for (;;) {
        uint64_t n = 0, idx = wp__ring_index(r, pos);
        /* acquire: pairs with the producer's release of seq; fn/arg read in
           wp__ring_take are sequenced after this load. */
        while (n < max &&
               atomic_load_explicit(&slots[idx].seq, memory_order_acquire) == 2 * (pos + n) + 1) {
            n++;
            idx = wp__ring_next(idx, cap);
        }
        if (n == 0) {
            uint64_t now = atomic_load_explicit(&r->deq, memory_order_relaxed);
            if (now == pos) return 0;
            pos = now;
            continue;
        }
        bool left = n == max; /* maybe more published past the scan */
        if (n > fair && !left) {
            left = true;
            n = n / 2 < fair ? fair : n / 2;
            idx = wp__ring_index(r, pos + n);
        }
        /* relaxed: the CAS only makes the claim exclusive (deq never repeats,
           so no ABA); visibility came from the acquire loads above. */
        if (atomic_compare_exchange_weak_explicit(&r->deq, &pos, pos + n, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            *first = pos;
            /* idx is the slot of pos + n. relaxed: a hint. */
            *more = left && atomic_load_explicit(&slots[idx].seq, memory_order_relaxed) ==
                                2 * (pos + n) + 1;
            return n;
        }
    }
}

/* wp__ring_claim_share with no share: up to max, all it finds. */
static inline uint64_t wp__ring_claim(wp__ring *r, uint64_t max, uint64_t *first, bool *more)
{
    return wp__ring_claim_share(r, max, max, first, more);
}

/* Takes the claimed task at pos, whose slot index is idx: reads {fn, arg}
   and frees the slot for the next lap. Only the thread that owns the
   position may (its claimer, or whoever it passed it to: pool.c's runs);
   it has acquired the task's publication (the claim's acquire loads, or a
   release/acquire chain from the claimer). */
static inline void wp__ring_take_at(wp__ring *r, uint64_t idx, uint64_t pos, wp_task_fn *fn,
                                    void **arg)
{
    wp__slot *s = &r->slots[idx];
    /* relaxed: ordered after the owner's acquire of seq == 2 pos + 1, and
       before the store below by its release. */
    *fn = atomic_load_explicit(&s->fn, memory_order_relaxed);
    *arg = atomic_load_explicit(&s->arg, memory_order_relaxed);
    /* release: our reads of fn/arg happen before the producer of the next
       lap overwrites them; pairs with the acquire in wp__ring_push. */
    atomic_store_explicit(&s->seq, 2 * (pos + r->cap), memory_order_release);
}

/*
 * A hint, for the owner of a run of claimed positions: slot s will be
 * taken soon. Taking a slot writes its seq, on a line that the producer
 * wrote last and the claim only read: without the hint, that store waits
 * at the head of the store buffer for the line to come over in exclusive
 * state (a cross-core round trip), and every store of the task queues
 * behind it. Asked for a few lines ahead, the line is there when the store
 * comes. Only where prefetch_w is set (pool.c's claim_adapt checks it).
 * On the 2-vCPU EPYC VM of issue 15 this took 1-6% off the seed
 * benchmark's per-task rows while both vCPUs ran at one speed (nothing
 * while one ran 40% slower).
 */
static inline void wp__ring_prefetch_take(const wp__slot *s)
{
#if defined(__x86_64__) || defined(__i386__)
    __asm__ volatile("prefetchw %0" : : "m"(*(const char *)s));
#else
    __builtin_prefetch(s, 1, 3);
#endif
}

/* wp__ring_take_at by position. */
static inline void wp__ring_take(wp__ring *r, uint64_t pos, wp_task_fn *fn, void **arg)
{
    wp__ring_take_at(r, wp__ring_index(r, pos), pos, fn, arg);
}

/* Whether the claimed task at pos has not been taken yet (a hint). */
static inline bool wp__ring_unstarted(wp__ring *r, uint64_t pos)
{
    /* relaxed: a hint; the run's bounds decide (pool.c). */
    return atomic_load_explicit(&wp__ring_slot(r, pos)->seq, memory_order_relaxed) == 2 * pos + 1;
}

/* Whether a task may be waiting (claimed by a producer, perhaps still being
   published), or the ring is closed. seq_cst: the recheck of a worker about
   to sleep, ordered after its registration (see park.h). */
static inline bool wp__ring_maybe_ready(wp__ring *r)
{
    uint64_t e = atomic_load_explicit(&r->enq, memory_order_seq_cst);
    return (e & WP__RING_CLOSED) || e != atomic_load_explicit(&r->deq, memory_order_seq_cst);
}

/* Cheap check for spinning: the next task is published. */
static inline bool wp__ring_has_task(wp__ring *r)
{
    uint64_t pos = atomic_load_explicit(&r->deq, memory_order_relaxed);
    return atomic_load_explicit(&wp__ring_slot(r, pos)->seq, memory_order_relaxed) == 2 * pos + 1;
}

/* Whether a producer could claim a slot now (or the ring is closed). */
static inline bool wp__ring_has_room(wp__ring *r)
{
    uint64_t pos = atomic_load_explicit(&r->enq, memory_order_relaxed);
    if (pos & WP__RING_CLOSED) return true;
    return atomic_load_explicit(&wp__ring_slot(r, pos)->seq, memory_order_acquire) == 2 * pos;
}

/* Closes the ring; returns the final number of positions ever claimed. */
static inline uint64_t wp__ring_close(wp__ring *r)
{
    /* seq_cst: ordered before the wake-ups the closer issues next. */
    return atomic_fetch_or_explicit(&r->enq, WP__RING_CLOSED, memory_order_seq_cst) &
           ~WP__RING_CLOSED;
}

static inline bool wp__ring_closed(wp__ring *r)
{
    return atomic_load_explicit(&r->enq, memory_order_acquire) & WP__RING_CLOSED;
}

/* Positions claimed by producers so far. */
static inline uint64_t wp__ring_produced(wp__ring *r)
{
    return atomic_load_explicit(&r->enq, memory_order_acquire) & ~WP__RING_CLOSED;
}

static inline uint64_t wp__ring_consumed(wp__ring *r)
{
    return atomic_load_explicit(&r->deq, memory_order_acquire);
}

#endif
