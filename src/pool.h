/*
 * pool internals (internal): the pool and worker records, shared by pool.c
 * (the run path: submit, run, wait, shutdown), workers.c (the worker
 * lifecycle: starting threads, spares, the blocking monitor, resize, the
 * blocking hints) and group.c.
 *
 * Slots (who may run tasks)
 *   A worker thread is a holder (it may take and run tasks, or idle on
 *   work_ev waiting for them) or a spare (it sleeps on spare_ev and runs
 *   nothing). `holders` counts the first kind and never exceeds `limit`
 *   except for a moment: limit = target + hint-blocked + extra, where extra
 *   is what the monitor adds for workers it sees asleep in the kernel. A
 *   worker that blocks thus makes room for one more holder, woken from the
 *   spares or started, so that `target` tasks keep running; when it comes
 *   back, limit drops again and the surplus holder gives its slot back at
 *   its next claim and becomes a spare (it finishes the task it runs: tasks
 *   are never interrupted). Spares of an elastic pool that stay idle
 *   idle_timeout_ns exit. A fixed pool (max_workers == workers) has no
 *   monitor and its threads never exit before shutdown.
 *   holders: CAS by the worker threads (take while holders < limit, give
 *   while holders > limit). limit: fetch_add by the hints, the monitor and
 *   resize.
 */
#ifndef WP_POOL_H
#define WP_POOL_H

#include "fork.h"
#include "park.h"
#include "ring.h"
#include "wpool.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#ifndef WP__DEFAULT_CAPACITY
#define WP__DEFAULT_CAPACITY 4096u /* 128 KiB of slots */
#endif
#ifndef WP__CLAIM_MAX
#define WP__CLAIM_MAX 256u /* most tasks a worker claims with one CAS (see claim_adapt) */
#endif
#ifndef WP__TAKE_AHEAD
#define WP__TAKE_AHEAD 16u /* a run's owner prefetches the slot this far on (run_from_) */
#endif
#ifndef WP__TAKE_AHEAD_MIN_NS
#define WP__TAKE_AHEAD_MIN_NS 50u /* ... when the tasks take this long on average (claim_adapt) */
#endif
#ifndef WP__CLAIM_FAIR
#define WP__CLAIM_FAIR 32u /* larger claims take half of what they find (wp__ring_claim_share) */
#endif
#ifndef WP__RUN_NS
#define WP__RUN_NS 50000u /* claims grow while a run takes under half this */
#endif
#ifndef WP__SHORT_TASK_NS
#define WP__SHORT_TASK_NS 20000u /* tasks longer than this bring the claim back to one */
#endif
#ifndef WP__SPIN_PAUSES
#define WP__SPIN_PAUSES 64u /* idle workers poll with pause this often, then yield */
#endif
#ifndef WP__SPIN_NS
#define WP__SPIN_NS 20000u /* idle workers spin this long before sleeping */
#endif
#ifndef WP__STALL_NS
#define WP__STALL_NS 50000u /* a run whose owner made no progress this long is stolen from */
#endif
#define WP__ROOM_POLL_MIN_NS 1000000u    /* a submitter asleep on a full ring rechecks */
#define WP__ROOM_POLL_MAX_NS 64000000u   /* ... after 1 ms, then 2, 4, ... 64 ms */
#define WP__IDLE_TIMEOUT_NS  5000000000u /* idle_timeout_ns 0 */

enum { WP__RUNNING, WP__DRAINING, WP__DISCARDING, WP__STOPPED }; /* wp_pool.state */
/* wp_pool.paused: bit 0 while paused by wp_pool_pause; bit 1 from a
   WP_DISCARD shutdown on. One word that a worker loads between two tasks:
   0 means "carry on", anything else sends it to the slow checks. */
enum { WP__PAUSED = 1, WP__DISCARD_BIT = 2 };
enum { WP__FREE, WP__ALIVE, WP__EXITED }; /* wp__worker.life: no thread, one, one to join */

typedef struct wp__worker {
    alignas(WP__CACHE_LINE) _Atomic uint64_t completed; /* written only by this worker */
    _Atomic unsigned active;                            /* written only by this worker */
    _Atomic uint64_t run_next; /* see run_end below: on this line, written per task */
    /* Private to the worker thread. */
    uint64_t done;       /* its own copy of completed (kept across threads of this id) */
    unsigned depth;      /* runs under way on this thread (help-while-waiting nests) */
    unsigned claim;      /* tasks to claim next time */
    unsigned runs;       /* claimed runs so far (which ones to time) */
    bool take_ahead;     /* its runs prefetch slots (the CPU can; tasks not too short) */
    unsigned hint_depth; /* wp_blocking_begin nesting */
    /* Written by the worker before it exits, read by shutdown after join:
       what WP_DISCARD stopped it from starting. */
    uint64_t left_first, left_n; /* its run's positions not started, none taken */
    bool left_held;              /* and the one task it had taken: */
    wp_task_fn left_fn;
    void *left_arg;
    /* Read-only after create. */
    wp_pool *pool;
    unsigned id;
    /* Protected by pool->life_lock. */
    unsigned life;      /* WP__FREE, WP__ALIVE, WP__EXITED */
    pthread_t thread;   /* valid unless FREE */
    int statfd, waitfd; /* its /proc/thread-self/stat and schedstat, for the monitor; -1: none */
    bool leaving;       /* its thread decided to exit (idle timeout) */
    /* The monitor's last look at the thread: its CPU clock, its wait for a
       CPU, parked_ns, and when. */
    uint64_t mon_cpu, mon_wait, mon_parked, mon_at;
    /* Written by the worker, read by the monitor and stats (relaxed). */
    _Atomic unsigned hinted;    /* inside wp_blocking_begin/end */
    _Atomic unsigned spare;     /* a spare now (not a holder) */
    _Atomic uint64_t parked_ns; /* elastic pools: time slept waiting for work or a resume */
    /* The run others may take from, [run_next, run_end): positions claimed
       by this worker and not started. run_next is written by the worker as
       it takes each task (it owns every position below it), on its first
       line with its counts; run_end is lowered by thieves. Both are written by
       the worker under run_lock when it publishes a run; thieves change
       run_end only under run_lock. run_end and run_lock are on a line of
       their own, read by idle workers as they spin. */
    alignas(WP__CACHE_LINE) _Atomic uint64_t run_end;
    _Atomic unsigned run_lock; /* 1: held (a thief, or the worker publishing) */
    /* Thieves' last look at the run (pool.c's run_stuck): run_next then, and
       since when it has been so. Written by thieves (relaxed), only when it
       changed: hints. */
    _Atomic uint64_t seen_next, seen_at;
} wp__worker;

struct wp_pool {
    wp__ring ring;
    /* Read-only after create. */
    alignas(WP__CACHE_LINE) wp__worker *workers; /* max of them */
    unsigned max;                                /* max_workers */
    bool elastic;                                /* max > workers: the monitor runs */
    bool light;                                  /* membar.h: light fences are free */
    int policy;
    uint64_t idle_timeout_ns;
    wp_config cfg;
    char name[16];
    /* Written rarely: by pause/resume and shutdown. */
    alignas(WP__CACHE_LINE) _Atomic int state; /* WP__RUNNING ... WP__STOPPED */
    _Atomic int paused;                        /* WP__PAUSED | WP__DISCARD_BIT: see below */
    _Atomic int forked;                        /* 1 in a child process that inherited the pool */
    _Atomic unsigned used;   /* worker records ever used: ids below it (scans stop there) */
    _Atomic unsigned target; /* wp_pool_workers: tasks to keep running */
    wp__event work_ev, pause_ev, room_ev, idle_ev, spare_ev, back_ev; /* each on its own line */
    /* Written by workers as they start and stop spinning for work. */
    alignas(WP__CACHE_LINE) _Atomic unsigned spinning;
    /* Slots (see the top): written when a worker blocks, comes back, or
       moves between holder and spare. */
    alignas(WP__CACHE_LINE) _Atomic int limit;
    _Atomic int holders;
    _Atomic unsigned threads; /* worker threads alive */
    _Atomic unsigned nspare;  /* of them spares, or started and not yet holders */
    _Atomic unsigned nhint;   /* workers inside wp_blocking_begin/end */
    _Atomic unsigned nback;   /* workers back from a block, waiting for a slot */
    _Atomic unsigned nseen;   /* workers the monitor last saw asleep in a task */
    /* Off the hot path: caller-runs tasks, rejections, discards. */
    alignas(WP__CACHE_LINE) _Atomic uint64_t inline_started;
    _Atomic uint64_t inline_done;
    _Atomic uint64_t rejected;
    _Atomic uint64_t discarded;
    _Atomic uint64_t stolen;         /* tasks thieves took from others' runs (tests, statistics) */
    _Atomic unsigned inline_running; /* caller-runs tasks started, not finished */
    _Atomic unsigned callers;        /* threads that may sleep in a call on p */
    pthread_mutex_t discard_lock;    /* serialises on_discard calls */
    wp__fork_node fork_node;         /* fork.c's list; read-only between track/untrack */
    /* The worker lifecycle (workers.c). */
    pthread_mutex_t life_lock; /* thread start and exit, ids, statfd */
    bool no_more_threads;      /* shutdown began; protected by life_lock */
    unsigned leaving;          /* threads that decided to exit, not yet exited; life_lock */
    pthread_attr_t attr;       /* for new threads; read-only after create */
    bool have_monitor;         /* protected by life_lock */
    pthread_t monitor;
    wp__event mon_ev;            /* the monitor's long sleeps */
    _Atomic unsigned mon_asleep; /* the monitor sleeps long: wake it on activity */
};

static inline int wp__state(wp_pool *p)
{
    /* acquire: a thread that sees the pool stopped sees what shutdown did. */
    return atomic_load_explicit(&p->state, memory_order_acquire);
}

/* ------------------------------------------------------------ pool.c -- */

/* Whether the calling thread runs a task of p, at any depth: on one of p's
   workers, or inline (caller-runs) inside a task of another pool. */
bool wp__in_pool(const wp_pool *p);

/* Whether the calling thread is one of p's workers. */
bool wp__worker_of(const wp_pool *p);

/* The worker record of the calling thread, or NULL on a thread that is no
   worker. */
wp__worker *wp__self(void);

/* Whether p was inherited across fork(): its workers are not here. */
bool wp__pool_forked(wp_pool *p);

/* On a worker of p: takes one queued task, or one that another worker
   claimed and has not started, and runs it here, as the worker would.
   Returns false when none was ready. Used by waits that must not sleep on
   a worker (help while waiting). */
bool wp__pool_run_one(wp_pool *p);

/* Tasks that workers took from other workers' runs so far. */
uint64_t wp__pool_stolen(wp_pool *p);

/* Whether a task waits to be started: queued, or claimed by a busy worker
   and not started (a hint). */
bool wp__pool_has_work(wp_pool *p);

/* The body of every worker thread (passed to pthread_create). */
void *wp__worker_main(void *arg);

/* group.c: for a task WP_DISCARD drops. A group member or parallel-for
   helper is finished as dropped (it never runs) and true is returned: the
   user's on_discard is not called for it. Any other task: false. */
bool wp__group_discard(wp_task_fn fn, void *arg);

/* --------------------------------------------------------- workers.c -- */

/* At create, after the pool is initialised: starts the first `n` threads
   (and the monitor of an elastic pool). 0 or pthread_create's error, with
   whatever was started stopped again by wp__workers_join. */
int wp__workers_start(wp_pool *p, unsigned n);

/* At shutdown, after the state change and the ring's close: no thread is
   started any more; wakes the spares and the monitor and joins every
   thread. */
void wp__workers_join(wp_pool *p);

/* On a worker, at the top of its loop: gives the worker's slot back if
   there are more holders than the limit leaves room for. true: it is a
   spare now. */
static inline int wp__slot_room(wp_pool *p)
{
    /* relaxed: hints; the CAS in wp__slot_give decides. Threads back from a
       block (nback) go before the others: their slots are kept. */
    return atomic_load_explicit(&p->limit, memory_order_relaxed) -
           (int)atomic_load_explicit(&p->nback, memory_order_relaxed);
}

static inline bool wp__slot_give(wp_pool *p)
{
    /* relaxed: a hint first, so the common case costs three plain loads;
       the CAS decides. */
    int h = atomic_load_explicit(&p->holders, memory_order_relaxed);
    while (h > wp__slot_room(p))
        /* relaxed: the count is all that is shared; what a spare does next
           is synchronised through spare_ev. */
        if (atomic_compare_exchange_weak_explicit(&p->holders, &h, h - 1, memory_order_relaxed,
                                                  memory_order_relaxed))
            return true;
    return false;
}

/* On a worker that is not a holder (new, or after wp__slot_give): waits as
   a spare until it may hold a slot again (true), or until it should exit
   (false: shutdown, or an elastic pool's idle timeout). */
bool wp__worker_spare(wp__worker *w);

/* On a new worker thread, first thing: sets up what the monitor reads. */
void wp__worker_began(wp__worker *w);

/* On a worker whose thread is about to return (after worker_stop): its id
   may be taken by a new thread from now on. */
void wp__worker_exited(wp__worker *w);

/* On a worker that just woke from a sleep for work: tells the monitor
   (elastic pools), which sleeps long while nothing runs. */
void wp__monitor_poke(wp_pool *p);

#endif
