/*
 * pool: the worker pool's lifecycle, submit, wait and shutdown.
 *
 * Design
 *   Tasks are {fn, arg} pairs in one bounded MPMC ring (ring.h), allocated
 *   with the pool. Submitting claims ring positions with one CAS; a worker
 *   claims a run of tasks with one CAS (1 at first, up to WP__CLAIM_MAX
 *   while a run of short tasks takes under WP__RUN_NS / 2: claim_adapt;
 *   past WP__CLAIM_FAIR, half of a shallow ring: wp__ring_claim_share) and
 *   takes them one by one as it starts them (a store and a load on lines
 *   it holds, see below). Nothing on the per-task path allocates, locks or
 *   enters the kernel while the workers are busy.
 *
 * Nothing waits behind a running task
 *   What a worker claimed and has not started stays available to the
 *   others. A worker that claims more than one task publishes the run
 *   [run_next, run_end) and wakes a sleeping worker; it takes from the front
 *   (run_next: it owns every position below), thieves from the end (they
 *   lower run_end), as in a Chase-Lev deque or Cilk's THE protocol:
 *     owner, to take pos:  run_next = pos + 1; light fence;
 *                          pos < run_end ? take it : decide under run_lock
 *     thief (run_lock held): run_end -= k; heavy fence;
 *                          run_next > run_end ? give back what the owner has
 *   The two fences make a Dekker pair: either the owner sees the lowered
 *   end, or the thief sees the owner's claim. The owner's is a compiler
 *   barrier and the thief's a membarrier(2) system call (membar.h), so
 *   that the per-task path has no atomic read-modify-write and no fence: a
 *   store and a load on two lines the owner has in its cache. The price is
 *   the thief's: tens of microseconds in a VM, where the call interrupts
 *   every CPU running the process. So thieves steal only from a run that
 *   is stuck: whose owner took no task for WP__STALL_NS (a task that
 *   blocks, or runs long). A run that moves is left to its owner, which is
 *   done with it in microseconds (runs grow only while tasks are short).
 *   An idle worker takes half of what is left, publishes it as a run of
 *   its own (it may be stolen from in turn), and runs it; a worker helping
 *   inside a wait takes one task, and takes from its own run at once (no
 *   fence: it is the same thread).
 *
 * Sleeping (park.h)
 *   work_ev   idle workers. A submitter wakes one only when one sleeps; a
 *             woken worker that leaves tasks behind wakes the next.
 *   pause_ev  paused workers, woken by resume and shutdown only: submitting
 *             into a paused pool wakes nobody.
 *   room_ev   submitters waiting for room in a full ring. Workers wake one
 *             once the ring is half empty (or empty, or the worker goes
 *             idle), so a blocked submitter comes back to fill many slots,
 *             not one per context switch. A sleeping submitter also
 *             rechecks by itself (after 1 ms, backing off to 64 ms), so no pattern
 *             of tasks (say, every worker blocked in a task that waits for
 *             this very submit) can keep it asleep while there is room.
 *   idle_ev   wp_wait callers; woken when the pool becomes quiescent.
 *   Idle workers spin for WP__SPIN_NS, then sleep: an idle pool costs no CPU.
 *
 * Counting (what wp_wait and wp_pool_stats read)
 *   submitted = ring positions claimed (ring.enq)  + inline_started
 *   completed = sum of worker.completed            + inline_done
 *   The pool is quiescent when completed + discarded == submitted. Each
 *   worker counts on its own cache line; inline (caller-runs) tasks and
 *   discards use pool-wide counters, off the hot path. A task is counted
 *   submitted before it can complete, so reading the completions first and
 *   the submissions second can only err towards "not yet".
 *
 * Shutdown
 *   wp_pool_shutdown moves `state` from WP__RUNNING to WP__DRAINING or WP__DISCARDING
 *   (one CAS: a second call sees EPIPE), closes the ring (every later
 *   submit: EPIPE; submitters asleep on a full ring wake and see it), wakes
 *   everyone and joins the workers. WP__DRAINING workers run the ring dry;
 *   WP__DISCARDING workers stop before their next task and leave the tasks they
 *   had claimed in their slots; the shutting-down thread then hands those and
 *   everything still queued to on_discard, one at a time. A pause ends at
 *   shutdown.
 *
 *   Shutdown also waits for caller-runs tasks that started before it
 *   (inline_running), and wp_wait or a second shutdown that arrive during
 *   it wait until it is done (state WP__STOPPED).
 *
 * Callers and destroy
 *   A thread that may sleep in a call on the pool (a submit that found the
 *   ring full, wp_wait, shutdown) counts itself in `callers` until its last
 *   touch of the pool. wp_pool_destroy shuts down (which wakes them all:
 *   they return EPIPE, or 0 from wp_wait) and frees nothing until callers is
 *   0. From inside one of the pool's own tasks it does nothing.
 *
 * fork()
 *   Every pool is on fork.c's list; in a child process each inherited pool
 *   is marked `forked` and its ring closed, so that the fast paths fail by
 *   themselves (no check per task) and the slow paths return EOWNERDEAD.
 *   Destroying it there frees its memory and calls no hook.
 *
 * Thread-local state: the chain of pools whose tasks the thread is running
 * (tls_frames: its own pool on a worker, one more frame per caller-runs task
 * run inline, at any depth), and the pool it is a worker of. That is how a
 * task submitting into any full pool it is inside runs the new task itself
 * instead of waiting for room only the workers can make, and how wp_wait and
 * wp_pool_shutdown detect EDEADLK.
 */
#include "cpu.h"
#include "fork.h"
#include "membar.h"
#include "park.h"
#include "pool.h"
#include "ring.h"
#include "wpool.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static bool stealable(wp_pool *p);

/* One pool whose task this thread runs; frames chain outwards. */
typedef struct frame {
    wp_pool *pool;
    const struct frame *up;
} frame;

static _Thread_local const frame *tls_frames; /* innermost first */
static _Thread_local wp__worker *tls_worker;  /* the worker this thread is, if any */
static _Thread_local wp_pool *tls_worker_of;  /* its pool */
static _Thread_local int tls_id = -1;         /* its id there */

bool wp__in_pool(const wp_pool *p)
{
    for (const frame *f = tls_frames; f; f = f->up)
        if (f->pool == p) return true;
    return false;
}

bool wp__worker_of(const wp_pool *p)
{
    return p && tls_worker_of == p;
}

wp__worker *wp__self(void)
{
    return tls_worker;
}

uint64_t wp__pool_stolen(wp_pool *p)
{
    /* relaxed: a statistic. */
    return atomic_load_explicit(&p->stolen, memory_order_relaxed);
}

bool wp__pool_has_work(wp_pool *p)
{
    return wp__ring_produced(&p->ring) != wp__ring_consumed(&p->ring) || stealable(p);
}

static bool forked(wp_pool *p)
{
    /* relaxed: written in the child before any of its threads exist. */
    return atomic_load_explicit(&p->forked, memory_order_relaxed);
}

bool wp__pool_forked(wp_pool *p)
{
    return forked(p);
}

/* Counts the calling thread in `callers` (see the top of the file). */
static void callers_enter(wp_pool *p)
{
    /* seq_cst: a thread that sleeps in the pool counts before its checks of
       the state, which destroy's shutdown changes before it reads callers. */
    atomic_fetch_add_explicit(&p->callers, 1, memory_order_seq_cst);
}

/* The caller's last touch of p. */
static void callers_leave(wp_pool *p)
{
    /* release: every access to p before it happens before destroy's free
       (acquire in wp_pool_destroy). */
    atomic_fetch_sub_explicit(&p->callers, 1, memory_order_release);
}

int wp_worker_id(void)
{
    return tls_id;
}

void wp_config_init(wp_config *cfg)
{
    if (!cfg) return;
    memset(cfg, 0, sizeof *cfg);
    cfg->full_policy = WP_FULL_BLOCK;
}

unsigned wp_pool_workers(const wp_pool *p)
{
    /* relaxed: a number that resize may change at any time. */
    return p ? atomic_load_explicit(&p->target, memory_order_relaxed) : 0;
}

static int state_of(wp_pool *p)
{
    return wp__state(p);
}

/* Worker records ever used: scans of per-worker state stop there. */
static unsigned used(wp_pool *p)
{
    /* acquire: pairs with the release in workers.c that publishes a new
       record's first use. */
    return atomic_load_explicit(&p->used, memory_order_acquire);
}

/* ------------------------------------------------------------ counting -- */

static uint64_t completed_sum(wp_pool *p)
{
    uint64_t c = 0;
    /* acquire: pairs with the release in count_done; the tasks' effects are
       visible to a wp_wait that returns. */
    for (unsigned i = 0, n = used(p); i < n; i++)
        c += atomic_load_explicit(&p->workers[i].completed, memory_order_acquire);
    return c + atomic_load_explicit(&p->inline_done, memory_order_acquire);
}

static bool quiescent(wp_pool *p)
{
    /* Completions first, submissions second: see the top of the file. */
    uint64_t c = completed_sum(p) + atomic_load_explicit(&p->discarded, memory_order_acquire);
    uint64_t s = wp__ring_produced(&p->ring) +
                 atomic_load_explicit(&p->inline_started, memory_order_acquire);
    return c == s;
}

/* Called after a thread finished tasks: wakes wp_wait callers if the pool
   is now quiescent. The caller has issued a seq_cst fence after its last
   completion count (park.h's protocol, with idle_ev). */
static void idle_notify(wp_pool *p)
{
    if (!wp__event_has_waiters(&p->idle_ev)) return;
    /* Tasks still queued: not quiescent, and whoever runs them checks again.
       Two loads, not one per worker: a wp_wait is often pending for a whole
       burst, and this runs after every claimed run. */
    if (wp__ring_produced(&p->ring) != wp__ring_consumed(&p->ring)) return;
    if (quiescent(p)) wp__event_wake_all(&p->idle_ev);
}

/* After a task was queued: wake a worker if one sleeps. seq_cst load: pairs
   with the seq_cst fence in a sleeping worker's wp__event_prepare; the
   claim in wp__ring_push was a seq_cst CAS. */
static void workers_notify(wp_pool *p)
{
    /* A spinning worker will take the task (and wake another if it leaves
       tasks behind): no system call then, Go's rule. seq_cst: pairs with the
       seq_cst decrement in worker_spin, which precedes that worker's
       recheck before it sleeps. */
    if (atomic_load_explicit(&p->work_ev.waiters, memory_order_seq_cst) &&
        atomic_load_explicit(&p->spinning, memory_order_seq_cst) == 0)
        wp__event_wake_one(&p->work_ev);
}

/* ------------------------------------------------------------- running -- */

/* Runs fn(arg) on the calling thread as a task of p (caller-runs, or a task
   submitting into its own full pool). The thread's worker id, if any, stays
   what it is: it is still the worker it was, and still inside the pools it
   was inside. */
static void run_inline(wp_pool *p, wp_task_fn fn, void *arg)
{
    frame f = {p, tls_frames};
    /* relaxed: a wp_wait racing with this submit may or may not wait for it,
       as with any submit that has not returned yet. */
    atomic_fetch_add_explicit(&p->inline_started, 1, memory_order_relaxed);
    tls_frames = &f;
    fn(arg);
    tls_frames = f.up;
    /* release: the task's effects before the count (acquire in completed_sum). */
    atomic_fetch_add_explicit(&p->inline_done, 1, memory_order_release);
    atomic_thread_fence(memory_order_seq_cst); /* idle_ev protocol */
    idle_notify(p);
}

/* A caller-runs task may start: counted in inline_running, which shutdown
   waits for, unless the pool is shutting down (false: do not run it). */
static bool inline_enter(wp_pool *p)
{
    /* seq_cst, with the seq_cst load of state: either shutdown's state
       change comes first and we see it, or our count comes first and
       shutdown's wait sees it. */
    atomic_fetch_add_explicit(&p->inline_running, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&p->state, memory_order_seq_cst) == WP__RUNNING) return true;
    atomic_fetch_sub_explicit(&p->inline_running, 1, memory_order_seq_cst);
    return false;
}

static void inline_leave(wp_pool *p)
{
    /* seq_cst: the count before the check of idle_ev's waiters (park.h),
       where shutdown waits for it. */
    atomic_fetch_sub_explicit(&p->inline_running, 1, memory_order_seq_cst);
    if (wp__event_has_waiters(&p->idle_ev)) wp__event_wake_all(&p->idle_ev);
}

static void discard_task(wp_pool *p, wp_task_fn fn, void *arg)
{
    /* Group members and parallel-for helpers are group.c's own records.
       discard_lock only makes the user's on_discard calls one at a time
       (a worker helping in a group wait may drop tasks while shutdown does). */
    if (!wp__group_discard(fn, arg) && p->cfg.on_discard) {
        pthread_mutex_lock(&p->discard_lock);
        p->cfg.on_discard(fn, arg, p->cfg.user);
        pthread_mutex_unlock(&p->discard_lock);
    }
    /* release: counted after on_discard ran (acquire in quiescent). */
    atomic_fetch_add_explicit(&p->discarded, 1, memory_order_release);
}

static void worker_pause(wp_pool *p);

/* A submitter waits for room: wake it once the ring is half empty (taken
   is a position this worker just took: the tasks after it are what is
   queued; using it rather than the shared consumer index saves a cache miss
   per task), or whatever the level with taken = UINT64_MAX (the caller is
   going idle). */
static void room_notify(wp_pool *p, uint64_t taken)
{
    if (taken != UINT64_MAX) {
        /* The producer index does not move while its submitter sleeps: a
           cached line. */
        uint64_t queued = wp__ring_produced(&p->ring) - taken;
        if (queued > p->ring.cap / 2) return;
        /* The submitter's next slot may still hold a task another worker
           claimed and has not started: waking it then is for nothing. */
        if (!wp__ring_has_room(&p->ring)) return;
    }
    wp__event_wake_one(&p->room_ev);
}

/* Waits while the pool is paused (and running), not counted as active. */
static void pause_here(wp__worker *w)
{
    wp_pool *p = w->pool;
    /* relaxed: a pause issued before the task was submitted is seen, since
       we acquired the task's publication, which came after. */
    if (!atomic_load_explicit(&p->paused, memory_order_relaxed) || state_of(p) != WP__RUNNING)
        return;
    atomic_store_explicit(&w->active, 0, memory_order_relaxed);
    while (atomic_load_explicit(&p->paused, memory_order_relaxed) && state_of(p) == WP__RUNNING)
        worker_pause(p);
    atomic_store_explicit(&w->active, 1, memory_order_relaxed);
}

/* run_lock: held by a thief for a steal (a system call, in there), and by
   an owner publishing a run or deciding who has its last task. */
static void run_lock(wp__worker *v)
{
    unsigned spins = 0;
    /* acquire: pairs with run_unlock; what the last holder wrote is seen. */
    while (atomic_exchange_explicit(&v->run_lock, 1, memory_order_acquire)) {
        /* relaxed: wait until it looks free, then try again. */
        while (atomic_load_explicit(&v->run_lock, memory_order_relaxed)) {
            if (++spins < WP__SPIN_PAUSES)
                wp__cpu_relax();
            else
                sched_yield(); /* the holder may be waiting for a CPU: this one */
        }
    }
}

static bool run_trylock(wp__worker *v)
{
    /* relaxed load: a busy lock is skipped without taking the line. */
    return !atomic_load_explicit(&v->run_lock, memory_order_relaxed) &&
           !atomic_exchange_explicit(&v->run_lock, 1, memory_order_acquire);
}

static void run_unlock(wp__worker *v)
{
    /* release: pairs with the acquire in run_lock and run_trylock. */
    atomic_store_explicit(&v->run_lock, 0, memory_order_release);
}

/* Off the per-task path: kept out of run_from's loop, whose registers it
   would take. */
#if defined(__GNUC__)
#define WP__SLOW   __attribute__((noinline, cold))
#define WP__INLINE __attribute__((always_inline)) inline
#else
#define WP__SLOW
#define WP__INLINE inline
#endif

/* The owner's take of pos from its published run, whose slot is idx (see
   the top of the file). false: a thief has it, and everything after it. */
static WP__SLOW bool run_take_slow(wp__worker *w, uint64_t idx, uint64_t pos, wp_task_fn *fn,
                                   void **arg)
{
    /* A thief lowered the end to pos or below, or is about to give some
       back: under the lock the end is final. run_next is pos + 1 already,
       so a thief that comes after leaves pos alone. */
    run_lock(w);
    /* relaxed: under the lock. */
    bool mine = pos < atomic_load_explicit(&w->run_end, memory_order_relaxed);
    run_unlock(w);
    if (mine) wp__ring_take_at(&w->pool->ring, idx, pos, fn, arg);
    return mine;
}

static inline bool run_take(wp__worker *w, uint64_t idx, uint64_t pos, wp_task_fn *fn, void **arg,
                            bool light)
{
    wp_pool *p = w->pool;
    /* relaxed, with the light fence: see the top of the file. */
    atomic_store_explicit(&w->run_next, pos + 1, memory_order_relaxed);
    wp__membar_light(light);
    if (pos < atomic_load_explicit(&w->run_end, memory_order_relaxed)) {
        wp__ring_take_at(&p->ring, idx, pos, fn, arg);
        return true;
    }
    return run_take_slow(w, idx, pos, fn, arg);
}

/* On a worker stopping in the middle of its published run (WP_DISCARD):
   what it has not taken is left for shutdown, and no thief may take it. */
static WP__SLOW void run_close(wp__worker *w, uint64_t next)
{
    run_lock(w);
    /* relaxed: under the lock. */
    uint64_t end = atomic_load_explicit(&w->run_end, memory_order_relaxed);
    if (end > next) {
        atomic_store_explicit(&w->run_end, next, memory_order_relaxed);
        w->left_first = next;
        w->left_n = end - next;
    }
    run_unlock(w);
}

/*
 * Runs fn(arg), already taken, then the tasks claimed at [next, end) one by
 * one, taking each before the checks that precede it. [next, end) is the
 * rest of a published run (next < end), or empty. Before each task at the
 * top level (top): waits while paused; stops if the pool is being discarded
 * (returns false, leaving the held task and the rest for shutdown). A
 * nested run (top false: help while waiting) runs its one task at once.
 * Stops where thieves have taken the rest. light: p->light; ahead: prefetch
 * the slots of the run ahead of their takes (wp__ring_prefetch_take). Both
 * are constants in each of the three copies (run_from, run_from_ahead and
 * run_from_fenced), so that the loop does not test them per task, and the
 * loop without prefetches stays as short as it was.
 */
static WP__INLINE bool run_from_(wp__worker *w, wp_task_fn fn, void *arg, uint64_t next,
                                 uint64_t end, bool top, bool light, bool ahead)
{
    wp_pool *p = w->pool;
    uint64_t idx = next < end ? wp__ring_index(&p->ring, next) : 0; /* the slot of next */
    uint64_t last = next - 1;                                       /* the last position taken */
    /* With ahead, the tasks before this one prefetch a slot of the run
       (run_claimed chose ahead for a run of more than WP__TAKE_AHEAD + 1
       slots, so cap > WP__TAKE_AHEAD). The last slot of the run is left
       out: its line may hold the next position too, which a producer may
       be writing now, and taking that line from it would cost the producer
       a round trip. */
    uint64_t ahead_end = ahead ? end - WP__TAKE_AHEAD - 1 : 0;
    /* relaxed: active is a statistic. It stays 1 from one task of the run to
       the next (only a pause or the run's last task clears it), and a nested
       run (top false) runs inside a task, where it is 1 already. */
    atomic_store_explicit(&w->active, 1, memory_order_relaxed);
    w->depth++; /* from here to the end of the run: it is inside a task */
    for (;;) {
        /* relaxed: as in pause_here; a discard seen a task late is a task
           run, not lost. */
        if (top && atomic_load_explicit(&p->paused, memory_order_relaxed)) {
            pause_here(w);
            if (state_of(p) == WP__DISCARDING) {
                w->left_held = true;
                w->left_fn = fn;
                w->left_arg = arg;
                w->left_n = 0;
                if (next < end) run_close(w, next);
                w->depth--;
                atomic_store_explicit(&w->active, 0, memory_order_relaxed);
                return false;
            }
        }
        /* A slot came free. relaxed hint only: the fenced check after the
           run catches a submitter that registered just now. */
        if (wp__event_has_waiters(&p->room_ev)) room_notify(p, last);
        /* While the task runs, the line of the slot WP__TAKE_AHEAD on comes
           over for its take (wp__ring_prefetch_take). */
        if (ahead && next < ahead_end) {
            uint64_t soon = idx + WP__TAKE_AHEAD; /* cap > WP__TAKE_AHEAD: see above */
            if (soon >= p->ring.cap) soon -= p->ring.cap;
            wp__ring_prefetch_take(&p->ring.slots[soon]);
        }
        fn(arg);
        bool more = next < end && run_take(w, idx, next, &fn, &arg, light);
        if (more) {
            last = next++;
            idx = wp__ring_next(idx, p->ring.cap);
        } else {
            /* Cleared before the last count, so that whoever sees this run
               complete (wp_wait) sees the worker idle too. */
            atomic_store_explicit(&w->active, w->depth > 1, memory_order_relaxed);
        }
        /* release: the task's effects (and the active store) before its
           count; pairs with the acquire in completed_sum. */
        atomic_store_explicit(&w->completed, ++w->done, memory_order_release);
        if (!more) break;
    }
    w->depth--;
    /* seq_cst fence: the completions and slot releases above come before
       the checks of room_ev and idle_ev waiters (park.h's protocol). */
    atomic_thread_fence(memory_order_seq_cst);
    if (wp__event_has_waiters(&p->room_ev)) room_notify(p, last);
    idle_notify(p);
    return true;
}

static bool run_from(wp__worker *w, wp_task_fn fn, void *arg, uint64_t next, uint64_t end, bool top)
{
    return run_from_(w, fn, arg, next, end, top, true, false);
}

/* A long run of tasks that are not too short (claim_adapt's take_ahead). */
static bool run_from_ahead(wp__worker *w, wp_task_fn fn, void *arg, uint64_t next, uint64_t end,
                           bool top)
{
    return run_from_(w, fn, arg, next, end, top, true, true);
}

/* Where membarrier(2) is missing: a fence per task instead. */
static WP__SLOW bool run_from_fenced(wp__worker *w, wp_task_fn fn, void *arg, uint64_t next,
                                     uint64_t end, bool top)
{
    return run_from_(w, fn, arg, next, end, top, false, false);
}

/* Runs the n tasks at [first, first + n), which this worker owns (claimed
   from the ring, or stolen), as in run_from. A run of more than one is
   published for thieves first, and a sleeping worker is woken to watch it:
   the first task may block. */
static bool run_claimed(wp__worker *w, uint64_t first, uint64_t n, bool top)
{
    wp_pool *p = w->pool;
    if (n > 1) {
        /* Under the lock: a thief reads both bounds of one run. */
        run_lock(w);
        /* relaxed: under the lock. */
        atomic_store_explicit(&w->run_next, first + 1, memory_order_relaxed);
        atomic_store_explicit(&w->run_end, first + n, memory_order_relaxed);
        run_unlock(w);
        /* seq_cst fence: the run is visible before workers_notify's check
           of sleepers, which pairs with a sleeper's recheck (park.h). */
        atomic_thread_fence(memory_order_seq_cst);
        workers_notify(p);
    }
    wp_task_fn fn;
    void *arg;
    wp__ring_take(&p->ring, first, &fn, &arg);
    uint64_t end = n > 1 ? first + n : first + 1;
    if (!p->light) return run_from_fenced(w, fn, arg, first + 1, end, top);
    if (w->take_ahead && n > WP__TAKE_AHEAD + 2)
        return run_from_ahead(w, fn, arg, first + 1, end, top);
    return run_from(w, fn, arg, first + 1, end, top);
}

/* Whether v's published run seems to have a task not started (a hint: the
   end's slot is still full; reads v's run_end line, not the one v writes
   per task). */
static bool run_unstarted(wp_pool *p, wp__worker *v)
{
    /* relaxed: a hint; the bounds under run_lock decide. */
    uint64_t end = atomic_load_explicit(&v->run_end, memory_order_relaxed);
    return end > 0 && wp__ring_unstarted(&p->ring, end - 1);
}

/* Whether some worker's run has a task that has not started (a hint). */
static bool stealable(wp_pool *p)
{
    for (unsigned i = 0, n = used(p); i < n; i++)
        if (run_unstarted(p, &p->workers[i])) return true;
    return false;
}

/* Whether v's run has looked stuck for WP__STALL_NS: v took no task since
   a thief first saw it so (any thief: they share what they saw, in v's
   record). Reads the line v writes per task, and writes the one v reads
   per task only when v moved: called about once a microsecond at most, by
   workers with nothing else to do. */
static bool run_stuck(wp__worker *v, uint64_t now)
{
    /* relaxed: hints; a torn pair only makes a steal come early or late. */
    uint64_t next = atomic_load_explicit(&v->run_next, memory_order_relaxed);
    if (atomic_load_explicit(&v->seen_next, memory_order_relaxed) != next) {
        atomic_store_explicit(&v->seen_next, next, memory_order_relaxed);
        atomic_store_explicit(&v->seen_at, now, memory_order_relaxed);
        return false;
    }
    return now - atomic_load_explicit(&v->seen_at, memory_order_relaxed) >= WP__STALL_NS;
}

/* Takes tasks not started from the end of v's run: half of them (at least
   one) with half, else one. Returns how many, the first at *first; they
   are self's to run. */
static uint64_t steal_from(wp__worker *self, wp__worker *v, bool half, uint64_t *first)
{
    wp_pool *p = self->pool;
    if (!run_trylock(v)) return 0; /* another thief, or v publishes: not now */
    /* relaxed: under the lock, v's run_end is ours; run_next only grows
       while the run lasts. */
    uint64_t end = atomic_load_explicit(&v->run_end, memory_order_relaxed);
    uint64_t next = atomic_load_explicit(&v->run_next, memory_order_relaxed);
    uint64_t k = 0;
    if (next < end) {
        k = half ? (end - next + 1) / 2 : 1;
        atomic_store_explicit(&v->run_end, end - k, memory_order_relaxed);
        /* The heavy side of the fence pair (none on our own run: program
           order); then v's run_next counts every position it took. */
        if (v != self) wp__membar_heavy(p->light);
        next = atomic_load_explicit(&v->run_next, memory_order_relaxed);
        if (next > end - k) {
            /* v took some of them meanwhile: ours are what it has not. v
               waits for the lock to learn where its run ends now. */
            k = next < end ? end - next : 0;
            atomic_store_explicit(&v->run_end, end - k, memory_order_relaxed);
        }
    }
    run_unlock(v);
    *first = end - k;
    return k;
}

/* Takes tasks that some worker claimed and has not started: this worker's
   own (it helps inside a wait: nested, one task) first, then a stuck run's
   (half of it at the top level: top). Returns how many, the first at
   *first. */
static uint64_t steal_some(wp__worker *self, bool top, uint64_t *first)
{
    wp_pool *p = self->pool;
    unsigned n = used(p);
    uint64_t now = 0;
    for (unsigned k = 0; k < n; k++) {
        wp__worker *v = &p->workers[(self->id + k) % n];
        if (!run_unstarted(p, v)) continue;
        if (v != self) {
            if (now == 0) now = wp__now_ns();
            if (!run_stuck(v, now)) continue;
        }
        uint64_t got = steal_from(self, v, top && v != self, first);
        if (got) {
            if (v != self) {
                /* relaxed: a statistic. */
                atomic_fetch_add_explicit(&p->stolen, got, memory_order_relaxed);
                /* Pass the wake on: what is left of v's run (or of another
                   stuck one) needs a thief too, and the others may all be
                   asleep (a run of one stolen is not published, which
                   would wake one). No system call unless one sleeps. */
                if (wp__pool_has_work(p)) workers_notify(p);
            }
            return got;
        }
    }
    return 0;
}

/* Whether a stuck run waits for a thief (for spinners, between yields). */
static bool steal_ready(wp__worker *self)
{
    wp_pool *p = self->pool;
    uint64_t now = 0;
    for (unsigned i = 0, n = used(p); i < n; i++) {
        wp__worker *v = &p->workers[i];
        if (v == self || !run_unstarted(p, v)) continue;
        if (now == 0) now = wp__now_ns();
        if (run_stuck(v, now)) return true;
    }
    return false;
}

/* Going idle: a submitter still asleep on a full ring (a pause, or the
   half-empty rule) is woken whatever the level. */
static void room_notify_idle(wp_pool *p)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (wp__event_has_waiters(&p->room_ev) && wp__ring_has_room(&p->ring))
        room_notify(p, UINT64_MAX);
}

/* A worker's sleep for work (or a resume). An elastic pool's monitor must
   not take it for blocking: the time is added to parked_ns (two clock reads
   around a system call, off the per-task path). */
static void parked_wait(wp_pool *p, wp__event *ev, uint32_t key)
{
    if (!p->elastic) {
        wp__event_wait(ev, key, WP__NO_DEADLINE);
        return;
    }
    uint64_t t0 = wp__now_ns();
    wp__event_wait(ev, key, WP__NO_DEADLINE);
    wp__worker *w = tls_worker;
    /* relaxed: a statistic for the monitor; written by this thread only. */
    atomic_store_explicit(&w->parked_ns,
                          atomic_load_explicit(&w->parked_ns, memory_order_relaxed) +
                              (wp__now_ns() - t0),
                          memory_order_relaxed);
}

/* Sleeps until there may be work or shutdown began; returns at once when
   the pool is paused (the caller then sleeps in worker_pause). true: it
   slept (and may have been woken by a wake_one that others' wakes were
   folded into: park.h). */
static bool worker_park(wp_pool *p)
{
    room_notify_idle(p);
    uint32_t key = wp__event_prepare(&p->work_ev);
    /* seq_cst loads after the registration: see park.h. */
    bool sleep = state_of(p) == WP__RUNNING &&
                 !atomic_load_explicit(&p->paused, memory_order_seq_cst) &&
                 !wp__ring_maybe_ready(&p->ring) && !stealable(p) &&
                 atomic_load_explicit(&p->holders, memory_order_relaxed) <= wp__slot_room(p);
    if (sleep) {
        parked_wait(p, &p->work_ev, key);
        if (p->elastic) wp__monitor_poke(p);
    } else {
        wp__event_cancel(&p->work_ev);
    }
    return sleep;
}

/* A worker that slept and found work: wakes the next sleeper if work is
   left (queued, or in a busy worker's run). Wakes that came while it was
   being woken were folded into its own (park.h), so it passes them on. */
static void pass_wake_on(wp_pool *p)
{
    if (wp__pool_has_work(p)) workers_notify(p);
}

/* Sleeps while the pool is paused and running. */
static void worker_pause(wp_pool *p)
{
    room_notify_idle(p);
    uint32_t key = wp__event_prepare(&p->pause_ev);
    /* seq_cst: pairs with the seq_cst stores in wp_pool_resume and
       wp_pool_shutdown, which wake pause_ev after them. */
    if (state_of(p) == WP__RUNNING && atomic_load_explicit(&p->paused, memory_order_seq_cst))
        parked_wait(p, &p->pause_ev, key);
    else
        wp__event_cancel(&p->pause_ev);
}

/* A bounded spin, shared by idle workers and submitters waiting for room:
   WP__SPIN_PAUSES polls with a pause, then yields until WP__SPIN_NS have
   passed (or the deadline). Past the first microsecond the CPU goes to
   whoever else is runnable here (a producer, or a worker, when there are as
   many threads as CPUs) instead of being burnt; sleeping at once would cost
   far more later (a futex wake and, in a VM, an IPI). */
typedef struct spin {
    unsigned polls;
    uint64_t until; /* 0 until the first yield */
} spin;

/* One step of the spin; false: time is up, go to sleep. */
static bool spin_step(spin *s, uint64_t deadline)
{
    if (s->polls < WP__SPIN_PAUSES) {
        s->polls++;
        wp__cpu_relax();
        return true;
    }
    uint64_t now = wp__now_ns();
    if (s->until == 0)
        s->until = now + WP__SPIN_NS;
    else if (now >= s->until || now >= deadline)
        return false;
    sched_yield();
    return true;
}

/* Spins up to WP__SPIN_NS for a task; true if one (or a state change, or a
   stuck run to steal from) came. Runs are looked at between yields only:
   their owners' lines are not pulled from them per poll. */
static bool worker_spin(wp__worker *w)
{
    wp_pool *p = w->pool;
    /* Go's rule for idle Ms: with more than two workers, no more spinners
       than half of them; the rest sleep at once. More spinners find no
       task sooner: they only poll the line the submitter is writing, and
       on fewer CPUs than workers take CPU time from it. relaxed: hints;
       two may pass at once, which costs a spinner, not a task. */
    unsigned target = atomic_load_explicit(&p->target, memory_order_relaxed);
    if (target > 2 && atomic_load_explicit(&p->spinning, memory_order_relaxed) >= target / 2)
        return false;
    /* seq_cst: a submitter that reads spinning > 0 skips its wake-up, so this
       count must be visible before we stop looking for work (see below). */
    atomic_fetch_add_explicit(&p->spinning, 1, memory_order_seq_cst);
    spin s = {0, 0};
    bool found;
    do {
        found = wp__ring_has_task(&p->ring) || wp__ring_closed(&p->ring) ||
                (s.until != 0 && steal_ready(w));
    } while (!found && spin_step(&s, WP__NO_DEADLINE));
    /* seq_cst: ordered before the recheck in worker_park (if we give up), so
       a task whose submitter saw us spinning is seen there. */
    atomic_fetch_sub_explicit(&p->spinning, 1, memory_order_seq_cst);
    return found;
}

/* After a run of n tasks that took dt ns: back to one task after a long
   one; grow the claim while tasks are short (under a quarter of
   WP__SHORT_TASK_NS) and a run takes under half of WP__RUN_NS; shrink it
   past twice that. Each claimed run is one CAS on the line all workers
   claim from: with short tasks, the fewer the better, but a run stays
   short enough that the tasks at its end do not wait long behind it (a
   thief only takes from a run stuck for WP__STALL_NS). The cap is
   measured: on the 2-vCPU EPYC VM of issue 15, 256 and 512 gave the same
   seed rows and Empty rows, 32 much less; of the two, the shorter runs. */
static void claim_adapt(wp__worker *w, uint64_t n, uint64_t dt)
{
    /* Prefetching a slot ahead (run_from_) pays only when the tasks in
       between take long enough for its line to arrive. */
    w->take_ahead = w->pool->ring.prefetch_w && dt >= (uint64_t)WP__TAKE_AHEAD_MIN_NS * n;
    if (dt > (uint64_t)WP__SHORT_TASK_NS * n)
        w->claim = 1;
    else if (dt < (uint64_t)WP__SHORT_TASK_NS * n / 4 && dt < WP__RUN_NS / 2)
        w->claim = w->claim * 2 > WP__CLAIM_MAX ? WP__CLAIM_MAX : w->claim * 2;
    else if (dt > 2 * (uint64_t)WP__RUN_NS && w->claim > 1)
        w->claim /= 2;
}

static void worker_name(const wp_pool *p, unsigned id, char out[16])
{
    char suffix[16];
    int sl = snprintf(suffix, sizeof suffix, "-%u", id);
    size_t keep = strlen(p->name);
    if (keep > 15 - (size_t)sl) keep = 15 - (size_t)sl;
    memcpy(out, p->name, keep);
    memcpy(out + keep, suffix, (size_t)sl + 1);
}

void *wp__worker_main(void *arg)
{
    wp__worker *w = arg;
    wp_pool *p = w->pool;
    char name[16];
    worker_name(p, w->id, name);
    pthread_setname_np(pthread_self(), name);
    frame self = {p, NULL};
    tls_frames = &self;
    tls_worker = w;
    tls_worker_of = p;
    tls_id = (int)w->id;
    w->done = atomic_load_explicit(&w->completed, memory_order_relaxed); /* an earlier thread's */
    wp__worker_began(w);
    if (p->cfg.worker_start) p->cfg.worker_start(w->id, p->cfg.user);

    /* A new thread is a spare until it takes a slot. */
    bool holder = wp__worker_spare(w);
    bool woken = false; /* it spun or slept for work, and has taken none since */
    while (holder) {
        /* More holders than the limit (a blocked worker came back, or the
           pool shrank): give the slot back between two runs. One load
           each of two read-mostly words when there is nothing to do. */
        if (wp__slot_give(p)) {
            holder = wp__worker_spare(w);
            continue;
        }
        int st = state_of(p);
        /* relaxed: see run_claimed. */
        if (st == WP__RUNNING && atomic_load_explicit(&p->paused, memory_order_relaxed)) {
            worker_pause(p);
            continue;
        }
        if (st == WP__DISCARDING) break;
        uint64_t first;
        bool more;
        uint64_t n = wp__ring_claim_share(&p->ring, w->claim, WP__CLAIM_FAIR, &first, &more);
        if (n > 0) {
            /* Pass the wake on: tasks are left in the ring (run_claimed
               wakes one itself for a run of more than one). */
            if (woken) {
                woken = false;
                pass_wake_on(p);
            } else if (more && n == 1) {
                workers_notify(p);
            }
            /* Size the next claim from this run: one in four is timed at
               full size (a clock read costs as much as a short task's
               bookkeeping). */
            bool timed = w->claim < WP__CLAIM_MAX || (++w->runs & 3) == 0;
            uint64_t t0 = timed ? wp__now_ns() : 0;
            if (!run_claimed(w, first, n, true)) break;
            if (timed) claim_adapt(w, n, wp__now_ns() - t0);
            continue;
        }
        n = steal_some(w, true, &first);
        if (n > 0) {
            if (woken) {
                woken = false;
                pass_wake_on(p);
            }
            if (!run_claimed(w, first, n, true)) break;
            continue;
        }
        if (wp__ring_closed(&p->ring)) {
            /* Draining: done once every claimed position was consumed; a
               producer that claimed before the close is still publishing. */
            if (wp__ring_consumed(&p->ring) == wp__ring_produced(&p->ring)) break;
            sched_yield();
            continue;
        }
        /* A spinner that found work is counted on by submitters that saw
           it spinning (they skip their wake): like a woken one, it passes
           the wake on once it has taken its share. */
        woken = worker_spin(w) || worker_park(p);
    }

    if (p->cfg.worker_stop) p->cfg.worker_stop(w->id, p->cfg.user);
    wp__worker_exited(w);
    return NULL;
}

bool wp__pool_run_one(wp_pool *p)
{
    if (!wp__worker_of(p)) return false;
    /* relaxed: as in pause_here. A paused pool starts nothing, also here. */
    if (state_of(p) == WP__RUNNING && atomic_load_explicit(&p->paused, memory_order_relaxed))
        return false;
    wp__worker *w = &p->workers[tls_id];
    wp_task_fn fn;
    void *arg;
    uint64_t first;
    bool more;
    if (wp__ring_claim(&p->ring, 1, &first, &more) == 0 && steal_some(w, false, &first) == 0)
        return false;
    wp__ring_take(&p->ring, first, &fn, &arg);
    if (state_of(p) == WP__DISCARDING) {
        /* A task waits inside a task (a group wait) while WP_DISCARD runs:
           what it waits for will never start. Drop it here, so that the
           wait can end and the worker be joined. */
        discard_task(p, fn, arg);
        return true;
    }
    run_from(w, fn, arg, first + 1, first + 1, false);
    return true;
}

/* ------------------------------------------------------------- submit -- */

/* Whether a submitter waiting for room should try again. An untimed one
   waits for the ring to be half empty, so that it comes back to fill many
   slots rather than one per wake-up (and does not spin against the
   workers one slot at a time); a timed one takes any free slot. */
static bool room_ready(wp_pool *p, bool exact)
{
    if (wp__ring_closed(&p->ring)) return true;
    if (!wp__ring_has_room(&p->ring)) return false;
    if (exact) return true;
    uint64_t queued = wp__ring_produced(&p->ring) - wp__ring_consumed(&p->ring);
    return queued <= p->ring.cap / 2;
}

/* Before sleeping for room: spins (spin_step) as an idle worker does. With
   a CPU to spare the submitter sees the ring drain and refills it without a
   system call on either side (nobody registered, so workers skip
   room_notify's wake-up); on a busy machine its yields hand the CPU to a
   worker. true: ready now (room_ready). */
static bool room_spin(wp_pool *p, bool exact, uint64_t deadline)
{
    spin s = {0, 0};
    while (!room_ready(p, exact))
        if (!spin_step(&s, deadline)) return false;
    return true;
}

/* Waits for room in the ring until the absolute deadline, or *poll_ns at
   most (untimed: it doubles each time it runs out, up to
   WP__ROOM_POLL_MAX_NS).
   0: there may be room now (or the ring closed); ETIMEDOUT. */
static int room_wait(wp_pool *p, uint64_t deadline, uint64_t *poll_ns)
{
    bool exact = deadline != WP__NO_DEADLINE;
    if (room_spin(p, exact, deadline)) return 0;
    uint32_t key = wp__event_prepare(&p->room_ev);
    if (room_ready(p, exact)) {
        wp__event_cancel(&p->room_ev);
        return 0;
    }
    uint64_t poll = wp__deadline(*poll_ns);
    int rc = wp__event_wait(&p->room_ev, key, poll < deadline ? poll : deadline);
    /* An untimed wait backs off; a timed one (which takes any free slot, but
       is only woken at half empty) keeps looking every millisecond. */
    if (rc == ETIMEDOUT && !exact && *poll_ns < WP__ROOM_POLL_MAX_NS) *poll_ns *= 2;
    if (rc == ETIMEDOUT && wp__now_ns() >= deadline) {
        /* We may have been the one woken for a free slot: pass it on. */
        atomic_thread_fence(memory_order_seq_cst);
        if (wp__ring_has_room(&p->ring)) wp__event_wake_one(&p->room_ev);
        return ETIMEDOUT;
    }
    return 0;
}

enum { FULL_WAIT, FULL_FAIL, FULL_INLINE };

static void count_rejected(wp_pool *p)
{
    /* relaxed: a statistic. */
    atomic_fetch_add_explicit(&p->rejected, 1, memory_order_relaxed);
}

/* Why a push failed on a closed ring. */
static int closed_error(wp_pool *p)
{
    return forked(p) ? EOWNERDEAD : EPIPE;
}

/*
 * Queues fn(args[i]) (args NULL: fn(arg), n = 1). When the ring is full:
 * FULL_WAIT waits for room until the deadline, FULL_INLINE runs the task on
 * the caller, FULL_FAIL stops. A thread inside a task of p (at any depth)
 * never waits for room: it runs the task itself. Returns 0, EPIPE,
 * EOWNERDEAD, EAGAIN (FULL_FAIL) or ETIMEDOUT (both counted as rejected);
 * *done says how many were queued or run.
 */
static int submit(wp_pool *p, wp_task_fn fn, void *const *args, void *arg, size_t n, int on_full,
                  uint64_t deadline, size_t *done)
{
    size_t i = 0;
    bool waited = false, counted = false;
    uint64_t poll_ns = WP__ROOM_POLL_MIN_NS;
    int rc = 0;
    while (i < n) {
        long got = wp__ring_push(&p->ring, fn, args ? args + i : NULL, arg, n - i);
        if (got > 0) {
            i += (size_t)got;
            workers_notify(p);
            continue;
        }
        if (got < 0) {
            rc = closed_error(p);
            break;
        }
        if (on_full == FULL_FAIL) {
            rc = EAGAIN;
            break;
        }
        if (!counted) { /* the ring is full: from here on we may sleep or run tasks */
            callers_enter(p);
            counted = true;
            if (on_full == FULL_WAIT && wp__in_pool(p)) on_full = FULL_INLINE;
        }
        if (on_full == FULL_INLINE) {
            if (!inline_enter(p)) {
                rc = closed_error(p);
                break;
            }
            run_inline(p, fn, args ? args[i] : arg);
            inline_leave(p);
            i++;
            continue;
        }
        waited = true;
        rc = room_wait(p, deadline, &poll_ns);
        if (rc) break;
    }
    /* A submitter woken for room that left room behind passes the wake on. */
    if (waited && rc == 0) {
        atomic_thread_fence(memory_order_seq_cst);
        if (wp__event_has_waiters(&p->room_ev) && wp__ring_has_room(&p->ring))
            wp__event_wake_one(&p->room_ev);
    }
    if (rc == EAGAIN || rc == ETIMEDOUT) count_rejected(p);
    *done = i;
    if (counted) callers_leave(p);
    return rc;
}

int wp_submit(wp_pool *p, wp_task_fn fn, void *arg)
{
    if (!p || !fn) return EINVAL;
    /* The fast path: room in the ring. */
    if (wp__ring_push1(&p->ring, fn, arg) == 1) {
        workers_notify(p);
        return 0;
    }
    static const int on_full[] = {[WP_FULL_BLOCK] = FULL_WAIT,
                                  [WP_FULL_REJECT] = FULL_FAIL,
                                  [WP_FULL_CALLER_RUNS] = FULL_INLINE};
    size_t done;
    return submit(p, fn, NULL, arg, 1, on_full[p->policy], WP__NO_DEADLINE, &done);
}

int wp_try_submit(wp_pool *p, wp_task_fn fn, void *arg)
{
    if (!p || !fn) return EINVAL;
    /* The fast path, as wp_submit's. */
    if (wp__ring_push1(&p->ring, fn, arg) == 1) {
        workers_notify(p);
        return 0;
    }
    size_t done;
    return submit(p, fn, NULL, arg, 1, FULL_FAIL, WP__NO_DEADLINE, &done);
}

int wp_submit_timeout(wp_pool *p, wp_task_fn fn, void *arg, uint64_t timeout_ns)
{
    if (!p || !fn) return EINVAL;
    size_t done;
    if (timeout_ns == 0) {
        /* Counted as rejected (EAGAIN) inside submit. */
        int rc = submit(p, fn, NULL, arg, 1, FULL_FAIL, WP__NO_DEADLINE, &done);
        return rc == EAGAIN ? ETIMEDOUT : rc;
    }
    /* From inside a task of p this runs the task inline rather than wait
       for room that only p's workers could make (as wp_submit does). */
    return submit(p, fn, NULL, arg, 1, FULL_WAIT, wp__deadline(timeout_ns), &done);
}

int wp_submit_batch(wp_pool *p, wp_task_fn fn, void *const *args, size_t n)
{
    if (!p || !fn || (n > 0 && !args)) return EINVAL;
    if (n == 0) return forked(p) ? EOWNERDEAD : state_of(p) == WP__RUNNING ? 0 : EPIPE;
    size_t done;
    return submit(p, fn, args, NULL, n, p->policy == WP_FULL_CALLER_RUNS ? FULL_INLINE : FULL_WAIT,
                  WP__NO_DEADLINE, &done);
}

/* --------------------------------------------------------------- wait -- */

/* Whether wp_wait may return: the pool is quiescent, or shut down. A
   shutdown in progress is neither: it is waited for. */
static bool wait_over(wp_pool *p)
{
    int st = state_of(p);
    return st == WP__STOPPED || (st == WP__RUNNING && quiescent(p));
}

/* Sleeps on idle_ev until wait_over (done) or the pool is WP__STOPPED. */
static void sleep_until(wp_pool *p, bool (*done)(wp_pool *))
{
    while (!done(p)) {
        uint32_t key = wp__event_prepare(&p->idle_ev);
        if (done(p)) {
            wp__event_cancel(&p->idle_ev);
            return;
        }
        wp__event_wait(&p->idle_ev, key, WP__NO_DEADLINE);
    }
}

int wp_wait(wp_pool *p)
{
    if (!p) return EINVAL;
    if (forked(p)) return EOWNERDEAD;
    if (wp__in_pool(p)) return EDEADLK;
    callers_enter(p);
    sleep_until(p, wait_over);
    callers_leave(p);
    return 0;
}

void wp_pool_pause(wp_pool *p)
{
    if (!p) return;
    /* seq_cst: ordered before the tasks the caller submits next, which the
       workers acquire before they look at `paused`. */
    atomic_fetch_or_explicit(&p->paused, WP__PAUSED, memory_order_seq_cst);
}

void wp_pool_resume(wp_pool *p)
{
    if (!p) return;
    atomic_fetch_and_explicit(&p->paused, ~WP__PAUSED, memory_order_seq_cst);
    /* seq_cst store, then wake: pairs with the seq_cst load of paused in
       worker_pause after its registration. */
    wp__event_wake_all(&p->pause_ev);
}

/* ----------------------------------------------------------- shutdown -- */

/* Closes the ring, wakes everybody and joins every thread. */
static void stop_workers(wp_pool *p)
{
    wp__ring_close(&p->ring);
    atomic_thread_fence(memory_order_seq_cst);
    wp__event_wake_all(&p->work_ev);
    wp__event_wake_all(&p->pause_ev);
    wp__event_wake_all(&p->room_ev);
    wp__event_wake_all(&p->idle_ev);
    wp__workers_join(p);
}

/* After the workers stopped: hands every task not started to on_discard. */
static void discard_rest(wp_pool *p)
{
    for (unsigned i = 0, n = used(p); i < n; i++) {
        wp__worker *w = &p->workers[i];
        if (w->left_held) discard_task(p, w->left_fn, w->left_arg);
        w->left_held = false;
        for (uint64_t k = 0; k < w->left_n; k++) {
            wp_task_fn fn;
            void *arg;
            wp__ring_take(&p->ring, w->left_first + k, &fn, &arg);
            discard_task(p, fn, arg);
        }
        w->left_n = 0;
    }
    uint64_t end = wp__ring_produced(&p->ring);
    while (wp__ring_consumed(&p->ring) < end) {
        uint64_t first;
        bool more;
        uint64_t n = wp__ring_claim(&p->ring, WP__CLAIM_MAX, &first, &more);
        if (n == 0) {
            sched_yield(); /* a producer that claimed before the close is publishing */
            continue;
        }
        for (uint64_t k = 0; k < n; k++) {
            wp_task_fn fn;
            void *arg;
            wp__ring_take(&p->ring, first + k, &fn, &arg);
            discard_task(p, fn, arg);
        }
    }
}

static bool stopped(wp_pool *p)
{
    return state_of(p) == WP__STOPPED;
}

static bool no_inline_task(wp_pool *p)
{
    /* seq_cst: after idle_ev's registration (park.h); pairs with
       inline_enter. */
    return atomic_load_explicit(&p->inline_running, memory_order_seq_cst) == 0;
}

int wp_pool_shutdown(wp_pool *p, int how)
{
    if (!p || (how != WP_DRAIN && how != WP_DISCARD)) return EINVAL;
    if (forked(p)) return EOWNERDEAD;
    if (wp__in_pool(p)) return EDEADLK;
    callers_enter(p);
    int expected = WP__RUNNING;
    /* seq_cst: the new state is visible before the ring closes, and pairs
       with inline_enter's check. */
    if (!atomic_compare_exchange_strong_explicit(&p->state, &expected,
                                                 how == WP_DRAIN ? WP__DRAINING : WP__DISCARDING,
                                                 memory_order_seq_cst, memory_order_relaxed)) {
        sleep_until(p, stopped); /* another shutdown is under way: let it finish */
        callers_leave(p);
        return EPIPE;
    }
    /* Shutdown ends a pause; a discarding one makes workers look at the
       state between two tasks. */
    atomic_store_explicit(&p->paused, how == WP_DISCARD ? WP__DISCARD_BIT : 0,
                          memory_order_seq_cst);
    stop_workers(p);
    if (how == WP_DISCARD) discard_rest(p);
    sleep_until(p, no_inline_task); /* caller-runs tasks that started before */
    /* release: what shutdown did is visible to whoever sees WP__STOPPED. */
    atomic_store_explicit(&p->state, WP__STOPPED, memory_order_release);
    atomic_thread_fence(memory_order_seq_cst);
    wp__event_wake_all(&p->idle_ev);
    callers_leave(p);
    return 0;
}

/* ------------------------------------------------------ create/destroy -- */

static void pool_free(wp_pool *p)
{
    /* In a child of fork() the locks may have been held by threads that are
       not there: leave them as they are. */
    if (!forked(p)) {
        pthread_mutex_destroy(&p->discard_lock);
        pthread_mutex_destroy(&p->life_lock);
    }
    pthread_attr_destroy(&p->attr);
    /* The monitor's descriptors of threads that never exited here (a child
       of fork() inherited them); elsewhere each thread closed its own. */
    for (unsigned i = 0; p->workers && i < p->max; i++) {
        if (p->workers[i].statfd >= 0) close(p->workers[i].statfd);
        if (p->workers[i].waitfd >= 0) close(p->workers[i].waitfd);
    }
    wp__ring_free(&p->ring);
    free(p->workers);
    free(p);
}

/* fork.c, in a child process: the workers are not here. Close the ring so
   that every submit fails at once (its slow path then says EOWNERDEAD). */
static void pool_forked(wp__fork_node *node)
{
    wp_pool *p = (wp_pool *)((char *)node - offsetof(wp_pool, fork_node));
    /* relaxed: the child has one thread. */
    atomic_store_explicit(&p->forked, 1, memory_order_relaxed);
    wp__ring_close(&p->ring);
}

int wp_pool_create(wp_pool **out, const wp_config *cfg)
{
    if (!out) return EINVAL;
    wp_config defaults;
    if (!cfg) {
        wp_config_init(&defaults);
        cfg = &defaults;
    }
    if (cfg->full_policy != WP_FULL_BLOCK && cfg->full_policy != WP_FULL_REJECT &&
        cfg->full_policy != WP_FULL_CALLER_RUNS)
        return EINVAL;
    unsigned nworkers = cfg->workers;
    if (nworkers == 0) nworkers = wp__env_workers();
    if (nworkers == 0) nworkers = wp_cpu_count();
    if (nworkers > WP_MAX_WORKERS) return EINVAL;
    unsigned max = cfg->max_workers ? cfg->max_workers : nworkers;
    if (max < nworkers || max > WP_MAX_WORKERS) return EINVAL;
    uint64_t cap = cfg->queue_capacity ? cfg->queue_capacity : WP__DEFAULT_CAPACITY;
    if (cap > WP__RING_MAX_CAP) return EINVAL;

    wp_pool *p = NULL;
    void *mem = NULL;
    if (posix_memalign(&mem, WP__CACHE_LINE, sizeof *p) != 0) return ENOMEM;
    p = mem;
    memset(p, 0, sizeof *p);
    int rc = pthread_attr_init(&p->attr);
    if (rc) {
        free(p);
        return rc;
    }
    if (cfg->stack_size && pthread_attr_setstacksize(&p->attr, cfg->stack_size) != 0) {
        pthread_attr_destroy(&p->attr);
        free(p);
        return EINVAL;
    }
    /* default attributes: cannot fail */
    pthread_mutex_init(&p->discard_lock, NULL);
    pthread_mutex_init(&p->life_lock, NULL);
    if ((rc = wp__ring_init(&p->ring, cap)) != 0) {
        pool_free(p);
        return rc;
    }
    mem = NULL;
    if (posix_memalign(&mem, WP__CACHE_LINE, sizeof(wp__worker) * max) != 0) {
        pool_free(p);
        return ENOMEM;
    }
    p->workers = mem;
    memset(p->workers, 0, sizeof(wp__worker) * max);
    p->max = max;
    p->elastic = max > nworkers;
    p->light = wp__membar_setup();
    p->policy = cfg->full_policy;
    p->idle_timeout_ns = cfg->idle_timeout_ns ? cfg->idle_timeout_ns : WP__IDLE_TIMEOUT_NS;
    p->cfg = *cfg;
    snprintf(p->name, sizeof p->name, "%s", cfg->name ? cfg->name : "wpool");
    p->cfg.name = p->name;
    atomic_init(&p->state, WP__RUNNING);
    atomic_init(&p->paused, 0);
    atomic_init(&p->forked, 0);
    atomic_init(&p->used, 0);
    atomic_init(&p->target, nworkers);
    atomic_init(&p->spinning, 0);
    atomic_init(&p->limit, (int)nworkers);
    atomic_init(&p->holders, 0);
    atomic_init(&p->threads, 0);
    atomic_init(&p->nspare, 0);
    atomic_init(&p->nhint, 0);
    atomic_init(&p->nseen, 0);
    atomic_init(&p->mon_asleep, 0);
    wp__event_init(&p->work_ev);
    wp__event_init(&p->pause_ev);
    wp__event_init(&p->room_ev);
    wp__event_init(&p->idle_ev);
    wp__event_init(&p->spare_ev);
    wp__event_init(&p->back_ev);
    atomic_init(&p->nback, 0);
    wp__event_init(&p->mon_ev);
    atomic_init(&p->inline_started, 0);
    atomic_init(&p->inline_done, 0);
    atomic_init(&p->rejected, 0);
    atomic_init(&p->discarded, 0);
    atomic_init(&p->stolen, 0);
    atomic_init(&p->inline_running, 0);
    atomic_init(&p->callers, 0);
    for (unsigned i = 0; i < max; i++) {
        wp__worker *w = &p->workers[i];
        atomic_init(&w->completed, 0);
        atomic_init(&w->active, 0);
        atomic_init(&w->hinted, 0);
        atomic_init(&w->spare, 1);
        atomic_init(&w->run_next, 0);
        atomic_init(&w->run_end, 0);
        atomic_init(&w->run_lock, 0);
        atomic_init(&w->seen_next, 0);
        atomic_init(&w->seen_at, 0);
        w->claim = 1;
        w->take_ahead = false;
        w->pool = p;
        w->id = i;
        w->life = WP__FREE;
        w->statfd = w->waitfd = -1;
    }
    p->fork_node.child = pool_forked;
    if ((rc = wp__fork_track(&p->fork_node)) != 0) {
        pool_free(p);
        return rc;
    }
    if ((rc = wp__workers_start(p, nworkers)) != 0) {
        atomic_store_explicit(&p->state, WP__DRAINING, memory_order_seq_cst);
        stop_workers(p);
        wp__fork_untrack(&p->fork_node);
        pool_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

void wp_pool_destroy(wp_pool *p)
{
    if (!p) return;
    if (!forked(p)) {
        /* Inside one of p's own tasks the shutdown would be EDEADLK. */
        if (wp__in_pool(p)) return;
        /* Drains a running pool, or waits for a shutdown under way (EPIPE);
           either way it wakes every thread asleep in a call on p. */
        wp_pool_shutdown(p, WP_DRAIN);
        /* acquire: pairs with callers_leave; their last touches come first. */
        while (atomic_load_explicit(&p->callers, memory_order_acquire) != 0) {
            struct timespec ts = {0, 100000}; /* a woken caller is on its way out */
            nanosleep(&ts, NULL);
        }
    }
    wp__fork_untrack(&p->fork_node);
    pool_free(p);
}

/* -------------------------------------------------------------- stats -- */

void wp_pool_stats(wp_pool *p, wp_stats *out)
{
    if (!p || !out) return;
    memset(out, 0, sizeof *out);
    unsigned active = 0;
    uint64_t worker_done = 0;
    for (unsigned i = 0, n = used(p); i < n; i++) {
        /* relaxed: statistics. */
        active += atomic_load_explicit(&p->workers[i].active, memory_order_relaxed);
        worker_done += atomic_load_explicit(&p->workers[i].completed, memory_order_acquire);
    }
    uint64_t inline_done = atomic_load_explicit(&p->inline_done, memory_order_acquire);
    uint64_t discarded = atomic_load_explicit(&p->discarded, memory_order_acquire);
    uint64_t produced = wp__ring_produced(&p->ring);
    uint64_t gone = worker_done + active + discarded;
    out->workers = wp_pool_workers(p);
    out->active = active;
    out->capacity = (size_t)p->ring.cap;
    out->queued = produced > gone ? (size_t)(produced - gone) : 0;
    if (out->queued > out->capacity) out->queued = out->capacity;
    out->submitted = produced + atomic_load_explicit(&p->inline_started, memory_order_acquire);
    out->completed = worker_done + inline_done;
    out->rejected = atomic_load_explicit(&p->rejected, memory_order_relaxed);
    out->discarded = discarded;
    /* relaxed: statistics. */
    out->threads = atomic_load_explicit(&p->threads, memory_order_relaxed);
    unsigned blocked = atomic_load_explicit(&p->nhint, memory_order_relaxed) +
                       atomic_load_explicit(&p->nseen, memory_order_relaxed);
    out->blocked = blocked < out->threads ? blocked : out->threads;
    out->max_workers = p->max;
}
