/*
 * group: Go's sync.WaitGroup / errgroup (with SetLimit), and parallel-for.
 *
 * Member records
 *   A member is {fn, arg, group}. A group owns a fixed array of records,
 *   made in wp_group_create: `limit` of them, or with limit 0 as many as the
 *   pool can hold queued and running (queue_capacity, at most
 *   GROUP_MAX_UNLIMITED, plus max_workers). wp_group_go pops a free record,
 *   counts the member and submits the trampoline member_run with the record
 *   as its argument; the record goes back on the free list when the member
 *   is done (run, skipped because the group was cancelled, or discarded by
 *   WP_DISCARD). A record is thus held from go() until its member is done,
 *   which is errgroup's SetLimit: the free list is the semaphore, and nothing
 *   is allocated per member.
 *   The free list is a Treiber stack of record indices whose head carries a
 *   tag bumped by every push and pop: a pop that read a stale `next` fails
 *   its CAS (no ABA). A popped record belongs to its member alone.
 *   Limit 0: a go() that finds every record in use waits for one, except
 *   inside a task of the pool, where it runs the member at once on the
 *   calling thread with a record on its stack (as wp_submit runs a task on
 *   its own full pool): a wait there could be a wait on itself.
 *
 * Counting (struct latch)
 *   One 64-bit word: members from go() until done in the low 40 bits, and
 *   above them the finishers still touching the group. The last member to
 *   finish (count 1 -> 0) marks itself touching in the same CAS, wakes the
 *   waiters, then unmarks itself; a wait returns only when the whole word is
 *   0. So once wp_group_wait returns no member touches the group any more,
 *   and it may be destroyed or reused at once. parallel_for counts its
 *   helper tasks with the same latch.
 *
 * Help while waiting
 *   A thread that waits (wp_group_wait, a go() at the limit, parallel_for
 *   waiting for its helpers) on a worker of the group's pool runs queued
 *   tasks of that pool meanwhile (wp__pool_run_one), so nested groups never
 *   deadlock, even on one worker with a queue of one. With nothing to run it
 *   sleeps in naps of NAP_MIN_NS, doubling to NAP_MAX_NS (woken early when
 *   the members finish): a task only it could run may be queued meanwhile.
 *   Any other thread spins briefly, then sleeps until woken. A wait that
 *   could only end if the waiting thread itself returned (wp_group_wait
 *   inside one of the group's own members; a go() at the limit when every
 *   record is held by members running on this very thread) returns EDEADLK:
 *   each thread keeps the chain of members it runs (tls_running).
 *
 * Cancellation
 *   `cancelled` goes 0 -> 1 once (wp_group_cancel, or the first member to
 *   fail, whose result goes to first_err first); members that start after
 *   it return at once without calling fn, and go() returns ECANCELED. The
 *   state is sticky: a group, once cancelled, stays cancelled. A group that
 *   ended without error may be reused (go() again, wait again), like a
 *   WaitGroup.
 *
 * Shutdown
 *   A member dropped by WP_DISCARD reaches wp__group_discard (pool.c's
 *   discard_task asks it first): it is done without running, marks the group
 *   `discarded` (its wait returns ECANCELED unless an error came first), and
 *   the user's on_discard is not called for it: its record is internal, and
 *   fn/arg were the group's business. Dropped parallel-for helpers likewise.
 *
 * parallel_for
 *   The loop's state (struct pfor) lives on the caller's stack, with the
 *   next index to claim on its own cache line. With a grain given, chunks
 *   are fixed (one fetch_add of a chunk counter each). With grain 0 they are
 *   guided, as OpenMP's schedule(guided): each claim (one CAS) takes the
 *   remaining range divided by twice the threads, but no less than a floor
 *   of about 1/PFOR_MIN_CHUNKS of a thread's share, so the first chunks are
 *   large (few claims) and the last ones small (the threads finish
 *   together even when one of them was slowed down).
 *   The loop runs on the pool's `workers` threads, the caller being one of
 *   them: the caller submits one helper task, and each helper, as it
 *   starts, submits the next while chunks are left, up to workers - 1 in
 *   all (so at most one helper of a loop waits in the queue, and no worker
 *   claims two at once); a full queue ends the chain. Every thread claims
 *   chunks until none is left; the caller then waits, helping, until every
 *   helper has finished touching the state (a latch counts them).
 */
#include "park.h"
#include "pool.h"
#include "wpool.h"

#include <errno.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NAP_MIN_NS          50000u   /* first nap of a waiting worker */
#define NAP_MAX_NS          1000000u /* longest nap of a waiting worker */
#define SPIN_NS             20000u   /* other waiters poll this long before sleeping */
#define GROUP_MAX_UNLIMITED 65536u   /* most records of a limit-0 group, besides workers */
#define PFOR_MIN_CHUNKS     64u      /* grain 0: smallest chunk, per thread's share */

/* Whether the calling thread is a worker of p, which must help, not sleep. */
static bool helps(wp_pool *p)
{
    return wp__worker_of(p);
}

/* Spins until SPIN_NS after the first call (*until 0); false once past it. */
static bool spin_more(uint64_t *until)
{
    uint64_t now = wp__now_ns();
    if (*until == 0) *until = now + SPIN_NS;
    if (now >= *until) return false;
    wp__cpu_relax();
    return true;
}

/* ---------------------------------------------------------------- latch -- */

#define LATCH_TOUCH (UINT64_C(1) << 40) /* one finisher touching the latch */
#define LATCH_COUNT (LATCH_TOUCH - 1)   /* the things in flight */

typedef struct latch {
    _Atomic uint64_t word; /* TOUCH * touching + count; RMW by adders and finishers */
    wp__event ev;          /* latch_wait sleepers */
} latch;

static void latch_init(latch *l)
{
    atomic_init(&l->word, 0);
    wp__event_init(&l->ev);
}

/* One more thing in flight, before it is handed to another thread. */
static void latch_add(latch *l)
{
    /* relaxed: the submit that hands the thing out publishes it (the ring's
       release); a wait racing with an add is the caller's race, as with
       Go's WaitGroup.Add. */
    atomic_fetch_add_explicit(&l->word, 1, memory_order_relaxed);
}

/* Takes back a latch_add whose thing was never handed out. The count cannot
   reach 0 here while someone waits: either nobody waits yet, or the thread
   that undoes is itself still counted. */
static void latch_undo(latch *l)
{
    /* relaxed: nothing happened that a waiter must see. */
    atomic_fetch_sub_explicit(&l->word, 1, memory_order_relaxed);
}

/* One thing is done. Once this returns, the latch may be gone. */
static void latch_done(latch *l)
{
    uint64_t v = atomic_load_explicit(&l->word, memory_order_relaxed);
    uint64_t nv;
    /* seq_cst: release publishes the finished work to the waiter's acquire
       (every later change of the word is an RMW, so the release sequence
       reaches the final 0); and it orders the count before the check of
       ev's waiters below (park.h's protocol). The last one to finish marks
       itself touching in the same step. */
    do {
        nv = (v & LATCH_COUNT) == 1 ? v - 1 + LATCH_TOUCH : v - 1;
    } while (!atomic_compare_exchange_weak_explicit(&l->word, &v, nv, memory_order_seq_cst,
                                                    memory_order_relaxed));
    if ((v & LATCH_COUNT) != 1) return;        /* not the last: never touched again */
    atomic_thread_fence(memory_order_seq_cst); /* park.h: condition, fence, check waiters */
    if (wp__event_has_waiters(&l->ev)) wp__event_wake_all(&l->ev);
    /* release: our last touch; the waiter that reads 0 may free the latch. */
    atomic_fetch_sub_explicit(&l->word, LATCH_TOUCH, memory_order_release);
}

/* Waits until nothing is in flight and no finisher touches the latch,
   helping p on one of its workers (see the top of the file). */
static void latch_wait(latch *l, wp_pool *p)
{
    bool helper = helps(p);
    uint64_t nap = NAP_MIN_NS, spin_until = 0;
    for (;;) {
        /* acquire: pairs with latch_done's release; the work is visible. */
        uint64_t v = atomic_load_explicit(&l->word, memory_order_acquire);
        if (v == 0) return;
        if ((v & LATCH_COUNT) == 0) { /* the last finisher is between its wake and its exit */
            sched_yield();
            continue;
        }
        if (helper && wp__pool_run_one(p)) continue;
        if (spin_more(&spin_until)) continue;
        uint32_t key = wp__event_prepare(&l->ev);
        /* acquire: as above; after prepare's fence (park.h). */
        if ((atomic_load_explicit(&l->word, memory_order_acquire) & LATCH_COUNT) == 0) {
            wp__event_cancel(&l->ev);
            continue;
        }
        wp__event_wait(&l->ev, key, helper ? wp__now_ns() + nap : WP__NO_DEADLINE);
        if (nap < NAP_MAX_NS) nap *= 2;
    }
}

/* ---------------------------------------------------------------- group -- */

typedef struct member {
    wp_group_fn fn;        /* written by go() before the submit that publishes it */
    void *arg;             /* likewise */
    wp_group *group;       /* read-only after create */
    struct member *outer;  /* the member the running thread ran before this one */
    _Atomic uint32_t next; /* free-list link: index + 1 of the next free record, 0: none */
    bool pooled;           /* one of group->recs (false: on go()'s stack); read-only */
} member;

struct wp_group {
    /* Read-only after create. */
    wp_pool *pool;
    unsigned limit;
    uint32_t nrecs;
    member *recs;
    /* The free list: tag << 32 | (index + 1) of the top record, 0 when empty.
       CAS by go() (pop) and by finishing members (push). */
    alignas(WP__CACHE_LINE) _Atomic uint64_t free_head;
    wp__event room_ev; /* go() waiting for a free record */
    /* The outcome. first_err: CAS 0 -> r by the first failing member.
       cancelled, discarded: 0 -> 1 once. */
    alignas(WP__CACHE_LINE) _Atomic int first_err;
    _Atomic int cancelled;
    _Atomic int discarded;
    latch members; /* members from go() until done */
};

/* The innermost member this thread runs (a chain through member.outer). */
static _Thread_local member *tls_running;

/* Members of g running on this thread (pooled: only those holding a record). */
static uint32_t running_here(const wp_group *g, bool pooled)
{
    uint32_t n = 0;
    for (const member *m = tls_running; m; m = m->outer)
        if (m->group == g && (m->pooled || !pooled)) n++;
    return n;
}

static member *rec_pop(wp_group *g)
{
    /* acquire: pairs with rec_push's release; the record's last member is
       done with it, and its `next` is the one pushed with this head. */
    uint64_t h = atomic_load_explicit(&g->free_head, memory_order_acquire);
    for (;;) {
        uint32_t i = (uint32_t)h;
        if (i == 0) return NULL;
        /* relaxed: stale only if the record was popped meanwhile, and then
           the tag has changed and the CAS fails. */
        uint32_t next = atomic_load_explicit(&g->recs[i - 1].next, memory_order_relaxed);
        uint64_t nh = (((h >> 32) + 1) << 32) | next;
        if (atomic_compare_exchange_weak_explicit(&g->free_head, &h, nh, memory_order_acquire,
                                                  memory_order_acquire))
            return &g->recs[i - 1];
    }
}

/* Frees m's record and wakes go() callers waiting for one. */
static void rec_push(wp_group *g, member *m)
{
    uint32_t i = (uint32_t)(m - g->recs) + 1;
    uint64_t h = atomic_load_explicit(&g->free_head, memory_order_relaxed);
    uint64_t nh;
    do {
        /* relaxed: published by the CAS's release. */
        atomic_store_explicit(&m->next, (uint32_t)h, memory_order_relaxed);
        nh = (((h >> 32) + 1) << 32) | i;
        /* seq_cst: release hands the record over (pairs with rec_pop's
           acquire); and it orders the push before the check of room_ev's
           waiters (park.h). */
    } while (!atomic_compare_exchange_weak_explicit(&g->free_head, &h, nh, memory_order_seq_cst,
                                                    memory_order_relaxed));
    atomic_thread_fence(memory_order_seq_cst);
    if (wp__event_has_waiters(&g->room_ev)) wp__event_wake_all(&g->room_ev);
}

static int is_cancelled(const wp_group *g)
{
    /* acquire: pairs with the seq_cst exchange in group_cancel. */
    return atomic_load_explicit(&g->cancelled, memory_order_acquire);
}

static void group_cancel(wp_group *g)
{
    /* seq_cst: ordered before the check of room_ev's waiters (park.h). */
    if (atomic_exchange_explicit(&g->cancelled, 1, memory_order_seq_cst)) return;
    atomic_thread_fence(memory_order_seq_cst);
    if (wp__event_has_waiters(&g->room_ev)) wp__event_wake_all(&g->room_ev);
}

/* The member is done: frees its record, then uncounts it (the last touch). */
static void member_done(wp_group *g, member *m)
{
    if (m->pooled) rec_push(g, m);
    latch_done(&g->members);
}

/* The pool task of every member; also run directly for go()'s stack records. */
static void member_run(void *arg)
{
    member *m = arg;
    wp_group *g = m->group;
    if (!is_cancelled(g)) {
        m->outer = tls_running;
        tls_running = m;
        int r = m->fn(m->arg);
        tls_running = m->outer;
        if (r != 0) {
            int expected = 0;
            /* relaxed: read by wait after the latch's acquire, and our
               latch_done (release) comes later. */
            atomic_compare_exchange_strong_explicit(&g->first_err, &expected, r,
                                                    memory_order_relaxed, memory_order_relaxed);
            group_cancel(g);
        }
    }
    member_done(g, m);
}

/* Takes a free record into *out, waiting (helping) while there is none.
   *out NULL with 0: limit 0 inside a task of the pool, run it here.
   ECANCELED: the group is cancelled. EDEADLK: every record is held by
   members running on this thread. */
static int rec_get(wp_group *g, member **out)
{
    wp_pool *p = g->pool;
    bool in_task = wp__in_pool(p);
    bool helper = helps(p);
    uint64_t nap = NAP_MIN_NS;
    *out = NULL;
    for (;;) {
        if (is_cancelled(g)) return ECANCELED;
        if ((*out = rec_pop(g)) != NULL) return 0;
        if (in_task && g->limit == 0) return 0;
        if (helper && wp__pool_run_one(p)) continue;
        if (in_task && running_here(g, true) >= g->nrecs) return EDEADLK;
        uint32_t key = wp__event_prepare(&g->room_ev);
        /* relaxed: after prepare's fence; a stale "empty" is caught by the
           pusher's check of waiters (park.h). */
        if (is_cancelled(g) ||
            (uint32_t)atomic_load_explicit(&g->free_head, memory_order_relaxed) != 0) {
            wp__event_cancel(&g->room_ev);
            continue;
        }
        wp__event_wait(&g->room_ev, key, in_task ? wp__now_ns() + nap : WP__NO_DEADLINE);
        if (nap < NAP_MAX_NS) nap *= 2;
    }
}

int wp_group_create(wp_group **out, wp_pool *p, unsigned limit)
{
    if (!out || !p) return EINVAL;
    uint64_t n = limit;
    if (n == 0) {
        wp_stats st;
        wp_pool_stats(p, &st);
        n = (st.capacity < GROUP_MAX_UNLIMITED ? st.capacity : GROUP_MAX_UNLIMITED) +
            st.max_workers; /* an elastic pool may run that many at once */
    }
    if (n >= UINT32_MAX || n > SIZE_MAX / sizeof(member)) return ENOMEM;
    void *mem = NULL;
    if (posix_memalign(&mem, WP__CACHE_LINE, sizeof(wp_group)) != 0) return ENOMEM;
    wp_group *g = mem;
    memset(g, 0, sizeof *g);
    g->recs = malloc((size_t)n * sizeof(member));
    if (!g->recs) {
        free(g);
        return ENOMEM;
    }
    g->pool = p;
    g->limit = limit;
    g->nrecs = (uint32_t)n;
    for (uint32_t i = 0; i < g->nrecs; i++) {
        member *m = &g->recs[i];
        m->fn = NULL;
        m->arg = NULL;
        m->group = g;
        m->outer = NULL;
        m->pooled = true;
        atomic_init(&m->next, i + 1 < g->nrecs ? i + 2 : 0);
    }
    atomic_init(&g->free_head, 1);
    wp__event_init(&g->room_ev);
    atomic_init(&g->first_err, 0);
    atomic_init(&g->cancelled, 0);
    atomic_init(&g->discarded, 0);
    latch_init(&g->members);
    *out = g;
    return 0;
}

int wp_group_go(wp_group *g, wp_group_fn fn, void *arg)
{
    if (!g || !fn) return EINVAL;
    if (wp__pool_forked(g->pool)) return EOWNERDEAD; /* its members are not in this process */
    member *m;
    int rc = rec_get(g, &m);
    if (rc) return rc;
    if (!m) {
        /* Limit 0, every record in use, inside a task of the pool: run it
           here. wp_submit_batch of nothing submits nothing: it says EPIPE
           exactly when the pool is shut down. */
        if ((rc = wp_submit_batch(g->pool, member_run, NULL, 0)) != 0) return rc;
        member here = {.fn = fn, .arg = arg, .group = g, .pooled = false};
        latch_add(&g->members);
        member_run(&here);
        return 0;
    }
    m->fn = fn;
    m->arg = arg;
    latch_add(&g->members);
    /* Waits for room whatever the pool's full_policy; inside a task of the
       pool it runs the member here instead. Fails only with EPIPE. */
    rc = wp_submit_timeout(g->pool, member_run, m, WP_FOREVER);
    if (rc != 0) member_done(g, m);
    return rc;
}

int wp_group_wait(wp_group *g)
{
    if (!g) return EINVAL;
    if (running_here(g, false)) return EDEADLK;
    latch_wait(&g->members, g->pool);
    /* relaxed: ordered by the latch's acquire after every member's release
       (a cancel from another thread still racing with this wait may or may
       not be seen, as it would not be if it came a moment later). */
    int err = atomic_load_explicit(&g->first_err, memory_order_relaxed);
    if (err) return err;
    if (is_cancelled(g) || atomic_load_explicit(&g->discarded, memory_order_relaxed))
        return ECANCELED;
    return 0;
}

void wp_group_cancel(wp_group *g)
{
    if (g) group_cancel(g);
}

int wp_group_cancelled(const wp_group *g)
{
    return g ? is_cancelled(g) : 0;
}

void wp_group_destroy(wp_group *g)
{
    if (!g) return;
    /* Inside one of its own members the wait could never end: leave it. */
    if (running_here(g, false)) return;
    latch_wait(&g->members, g->pool);
    free(g->recs);
    free(g);
}

/* --------------------------------------------------------- parallel for -- */

typedef struct pfor {
    /* Read-only once the first helper is submitted. */
    size_t begin, end, grain, nchunks; /* nchunks 0: guided, grain is the floor */
    size_t split;                      /* guided: a claim takes what is left / split */
    void (*body)(size_t lo, size_t hi, void *arg);
    void *arg;
    wp_pool *pool;
    /* Helpers still to submit: owned by whoever submits the next one, the
       caller first, then each helper in turn (the ring hands it over). */
    size_t spawn;
    /* Fixed: the next chunk's number (fetch_add). Guided: the next index. */
    alignas(WP__CACHE_LINE) _Atomic size_t next;
    latch helpers; /* helper tasks submitted, not finished */
} pfor;

/* Claims the next guided chunk [*lo, *hi); false when none is left. */
static bool pfor_claim_guided(pfor *f, size_t *lo, size_t *hi)
{
    /* relaxed: the CAS only deals out disjoint ranges; the chunks' effects
       reach the caller through the helpers' latch. */
    size_t at = atomic_load_explicit(&f->next, memory_order_relaxed);
    for (;;) {
        if (at >= f->end) return false;
        size_t left = f->end - at;
        size_t take = left / f->split;
        if (take < f->grain) take = f->grain < left ? f->grain : left;
        if (atomic_compare_exchange_weak_explicit(&f->next, &at, at + take, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            *lo = at;
            *hi = at + take;
            return true;
        }
    }
}

/* Whether chunks are left to claim (a hint). */
static bool pfor_left(pfor *f)
{
    /* relaxed: a hint; a helper that comes too late returns at once. */
    size_t next = atomic_load_explicit(&f->next, memory_order_relaxed);
    return f->nchunks ? next < f->nchunks : next < f->end;
}

/* Claims and runs chunks until none is left. */
static void pfor_run(pfor *f)
{
    if (f->nchunks == 0) {
        size_t lo, hi;
        while (pfor_claim_guided(f, &lo, &hi)) f->body(lo, hi, f->arg);
        return;
    }
    for (;;) {
        /* relaxed: the counter only deals out chunk numbers; the chunks'
           effects reach the caller through the helpers' latch. */
        size_t c = atomic_fetch_add_explicit(&f->next, 1, memory_order_relaxed);
        if (c >= f->nchunks) return;
        size_t lo = f->begin + c * f->grain;
        size_t hi = f->end - lo > f->grain ? lo + f->grain : f->end;
        f->body(lo, hi, f->arg);
    }
}

static void pfor_helper(void *arg);

/* Submits the next helper, if one is left to submit and so are chunks. Not
   on a full queue: the threads already at it do those chunks. */
static void pfor_spawn(pfor *f)
{
    if (f->spawn == 0 || !pfor_left(f)) return;
    f->spawn--;
    latch_add(&f->helpers);
    if (wp_try_submit(f->pool, pfor_helper, f) != 0) latch_undo(&f->helpers);
}

static void pfor_helper(void *arg)
{
    pfor *f = arg;
    pfor_spawn(f);
    pfor_run(f);
    latch_done(&f->helpers); /* the last touch of the caller's stack */
}

/* Called by pool.c's discard_task for each task WP_DISCARD drops. */
bool wp__group_discard(wp_task_fn fn, void *arg)
{
    if (fn == member_run) {
        member *m = arg;
        /* relaxed: read by wait after the latch's acquire; member_done's
           release comes later. */
        atomic_store_explicit(&m->group->discarded, 1, memory_order_relaxed);
        member_done(m->group, m);
        return true;
    }
    if (fn == pfor_helper) {
        latch_done(&((pfor *)arg)->helpers); /* the caller does its chunks */
        return true;
    }
    return false;
}

int wp_parallel_for(wp_pool *p, size_t begin, size_t end, size_t grain,
                    void (*body)(size_t lo, size_t hi, void *arg), void *arg)
{
    if (!p || !body || begin > end) return EINVAL;
    if (begin == end) return 0;
    /* Submits nothing: EPIPE exactly when the pool is shut down
       (EOWNERDEAD: inherited across fork). */
    int rc = wp_submit_batch(p, pfor_helper, NULL, 0);
    if (rc != 0) return rc;
    size_t n = end - begin;
    size_t threads = wp_pool_workers(p); /* the caller and workers - 1 helpers */
    size_t nchunks, most;                /* most: how many chunks there can be */
    size_t grain_given = grain;
    if (grain == 0) {
        /* Guided; the floor (grain) is n / (threads * PFOR_MIN_CHUNKS). */
        size_t floor_div = threads * PFOR_MIN_CHUNKS;
        grain = n / floor_div + (n % floor_div != 0);
        nchunks = 0;
        most = n / grain + (n % grain != 0);
    } else {
        nchunks = n / grain + (n % grain != 0);
        most = nchunks;
        /* The chunk counter (one fetch_add per claim, and one more per
           thread at the end) must not wrap: so many chunks are claimed as
           guided ones instead, whose CAS never passes the end, each of
           exactly grain indices (split so large that what is left / split
           stays below grain). */
        if (nchunks > SIZE_MAX - threads) nchunks = 0;
    }

    pfor f = {.begin = begin,
              .end = end,
              .grain = grain,
              .nchunks = nchunks,
              .split = nchunks || grain_given == 0 ? 2 * threads : SIZE_MAX,
              .body = body,
              .arg = arg,
              .pool = p,
              .spawn = threads - 1 < most - 1 ? threads - 1 : most - 1};
    atomic_init(&f.next, nchunks ? 0 : begin);
    latch_init(&f.helpers);
    pfor_spawn(&f);
    pfor_run(&f);
    latch_wait(&f.helpers, p);
    return 0;
}
