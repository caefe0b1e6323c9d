/*
 * wpool: Go's worker-pool pattern for C11.
 *
 * A fixed set of worker threads pulls tasks from a bounded queue, so a program
 * never runs more work at once than the machine can take, memory stays flat
 * however much is submitted, and a producer that outruns the workers is slowed
 * down (backpressure). Around the pool: Go-style channels (send, receive,
 * close, select) and groups (WaitGroup / errgroup, parallel-for).
 *
 * Conventions:
 *   - Functions that can fail return 0 or an errno value from <errno.h>:
 *       EINVAL     bad argument (NULL handle or function, zero size, ...)
 *       EAGAIN     would block (try variants, WP_FULL_REJECT)
 *       ETIMEDOUT  a timed call ran out
 *       EPIPE      the pool is shut down / the channel is closed
 *       ENOMEM     out of memory (or pthread_create's error)
 *       ECANCELED  the group was cancelled
 *       EDEADLK    the call would wait forever on itself
 *       EOWNERDEAD the pool was inherited across fork(): its workers are not
 *                  in this process
 *     On error nothing is changed and no half-made object is left behind.
 *     The library never aborts, prints or exits.
 *   - Timeouts are relative nanoseconds on CLOCK_MONOTONIC; WP_FOREVER waits
 *     without limit.
 *   - Destroy functions accept NULL.
 *   - Every function may be called from any thread, also from inside a task,
 *     unless its comment says otherwise.
 */
#ifndef WPOOL_H
#define WPOOL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define WP_EXTERN __attribute__((visibility("default")))
#else
#define WP_EXTERN
#endif

#define WPOOL_VERSION_MAJOR 0
#define WPOOL_VERSION_MINOR 1
#define WPOOL_VERSION_PATCH 0

/* ------------------------------------------------------------------ pool -- */

typedef struct wp_pool wp_pool;
typedef void (*wp_task_fn)(void *arg);

/* wp_config.full_policy: what wp_submit does when the queue is full. */
enum {
    WP_FULL_BLOCK,      /* wait until there is room (default) */
    WP_FULL_REJECT,     /* return EAGAIN */
    WP_FULL_CALLER_RUNS /* run the task on the calling thread */
};

/* wp_pool_shutdown's `how`. */
enum {
    WP_DRAIN,  /* run everything queued, then stop */
    WP_DISCARD /* run nothing that has not started; hand it to on_discard */
};

#define WP_FOREVER UINT64_MAX

typedef struct wp_config {
    unsigned workers;      /* 0: $WPOOL_WORKERS if set and valid, else wp_cpu_count() */
    size_t queue_capacity; /* most tasks queued and not yet started; 0: default (4096) */
    int full_policy;       /* WP_FULL_BLOCK, WP_FULL_REJECT or WP_FULL_CALLER_RUNS */
    const char *name;      /* worker thread name prefix: "wpool" -> "wpool-0"; NULL: "wpool" */
    size_t stack_size;     /* worker stack size in bytes; 0: system default */
    /* Called on each worker thread before it runs any task / after its last. */
    void (*worker_start)(unsigned worker_id, void *user);
    void (*worker_stop)(unsigned worker_id, void *user);
    /* Called for each queued task that WP_DISCARD drops, so that its argument
       can be freed: on the thread that calls wp_pool_shutdown, or on a
       worker that was waiting inside a task (a group wait) when the discard
       began; never two calls at once. Not called for group members (the
       group learns of the drop instead). */
    void (*on_discard)(wp_task_fn fn, void *arg, void *user);
    void *user; /* passed to the three callbacks above */
    /* Blocking work (zero keeps a fixed pool of `workers` threads). With
       max_workers > workers the pool is elastic: `workers` is how many tasks
       it keeps running, and a worker that blocks (it says so with
       wp_blocking_begin, or the pool sees it asleep in the kernel inside a
       task) is replaced by another thread, up to max_workers threads. */
    unsigned max_workers;     /* most worker threads; 0: = workers (fixed size) */
    uint64_t idle_timeout_ns; /* a thread beyond `workers` idle this long exits; 0: 5 s */
} wp_config;

/* Limits: wp_pool_create returns EINVAL above these. */
#define WP_MAX_WORKERS 4096u

/* Fills *cfg with the defaults (all zero, full_policy WP_FULL_BLOCK). */
WP_EXTERN void wp_config_init(wp_config *cfg);

/* Creates a pool and starts its workers; cfg NULL means all defaults.
   Everything the pool will ever need is allocated here.
   EINVAL: out NULL, unknown full_policy, more than WP_MAX_WORKERS workers,
   a queue_capacity whose memory would overflow, or a stack_size below the
   system minimum. ENOMEM or pthread_create's error: resources ran out, and
   everything already made has been undone. *out is set only on success. */
WP_EXTERN int wp_pool_create(wp_pool **out, const wp_config *cfg);

/* Queues fn(arg). On a full queue does what full_policy says: waits for room
   (WP_FULL_BLOCK), returns EAGAIN (WP_FULL_REJECT, counted in stats.rejected),
   or runs fn(arg) on the calling thread before returning
   (WP_FULL_CALLER_RUNS). A thread inside a task of p (on a worker of p, or
   running a task of p inline, at any depth) never waits for room in p: it
   runs the new task itself (under WP_FULL_REJECT it gets EAGAIN, as anyone
   would). EINVAL: p or fn NULL. EPIPE: shut down. EOWNERDEAD: inherited
   across fork(). */
WP_EXTERN int wp_submit(wp_pool *p, wp_task_fn fn, void *arg);

/* Like wp_submit but never waits and never runs the task on the caller:
   EAGAIN when the queue is full (counted in stats.rejected). */
WP_EXTERN int wp_try_submit(wp_pool *p, wp_task_fn fn, void *arg);

/* Like wp_submit but waits at most timeout_ns for room, whatever the policy:
   ETIMEDOUT when none came (counted in stats.rejected). 0 never waits
   (returns ETIMEDOUT on a full queue). From inside a task of p it does what
   wp_submit does there: runs the task itself rather than wait for room that
   only p's workers could make. */
WP_EXTERN int wp_submit_timeout(wp_pool *p, wp_task_fn fn, void *arg, uint64_t timeout_ns);

/* Queues fn(args[i]) for i in [0, n), waiting for room whatever the policy
   (WP_FULL_CALLER_RUNS: runs the overflow on the caller). Submits all n, or
   fails with EPIPE when the pool was shut down meanwhile (the tasks already
   queued stay queued). n 0 submits nothing and says whether the pool takes
   tasks: 0, EPIPE (shut down) or EOWNERDEAD (inherited across fork()).
   EINVAL: p, fn or (n > 0) args NULL. */
WP_EXTERN int wp_submit_batch(wp_pool *p, wp_task_fn fn, void *const *args, size_t n);

/* Waits until no task is queued or running, tasks submitted by tasks
   included. Returns 0 at once on a shut-down pool; during another thread's
   shutdown it waits until that is done, then returns 0. EINVAL: p NULL.
   EDEADLK: called from inside one of p's tasks (at any depth: also from a
   task of another pool that runs inline inside one of p's tasks).
   EOWNERDEAD: inherited across fork(). */
WP_EXTERN int wp_wait(wp_pool *p);

/* After pause, workers finish the task they run and start no more until
   wp_pool_resume (or shutdown, which ends a pause). Submits still queue.
   NULL is ignored. */
WP_EXTERN void wp_pool_pause(wp_pool *p);
WP_EXTERN void wp_pool_resume(wp_pool *p);

/* Stops the pool: from now on every submit returns EPIPE. WP_DRAIN runs
   everything queued; WP_DISCARD runs nothing more that has not started and
   hands each dropped task to on_discard. Both wait for running tasks, run
   worker_stop on each worker and join all threads; tasks that callers run
   inline (WP_FULL_CALLER_RUNS) and that started before are waited for too.
   Afterwards stats.submitted == completed + discarded.
   EINVAL: p NULL or how unknown. EPIPE: already shut down (a second
   shutdown that comes while the first is under way waits for it to finish,
   then says EPIPE). EDEADLK: called from inside one of p's tasks, at any
   depth. EOWNERDEAD: inherited across fork(). */
WP_EXTERN int wp_pool_shutdown(wp_pool *p, int how);

/* Shuts down with WP_DRAIN if still running (or waits for a shutdown under
   way), then frees the pool. Threads blocked in a call on p (a submit
   waiting for room, wp_wait) are woken and return EPIPE (wp_wait: 0);
   nothing is freed until they have left. Called from inside one of p's own
   tasks it does nothing. In a child of fork() it frees the inherited pool's
   memory and calls no hook. NULL is ignored. No call on p may start once
   destroy has begun. */
WP_EXTERN void wp_pool_destroy(wp_pool *p);

/* The number of tasks the pool runs at once, its target (0 for NULL): the
   `workers` it was made with, or what wp_pool_resize set. A fixed pool has
   that many threads; an elastic one may have more while some are blocked
   (stats.threads). */
WP_EXTERN unsigned wp_pool_workers(const wp_pool *p);

/* Sets the target to `workers`, in 1..max_workers. Growing starts or wakes
   threads now; shrinking lets workers finish their current task first (the
   threads beyond the target then wait, and those of an elastic pool exit
   after idle_timeout_ns). EINVAL: p NULL, workers 0 or above max_workers.
   EPIPE: shut down. EOWNERDEAD: inherited across fork(). pthread_create's
   error: the threads needed now could not all be started (the pool keeps
   those it has, and still works; the target is set). */
WP_EXTERN int wp_pool_resize(wp_pool *p, unsigned workers);

/*
 * Blocking work. Inside a task, wp_blocking_begin says the task is about to
 * block (I/O, sleep, a lock held elsewhere) and wp_blocking_end that it is
 * back. On a worker of an elastic pool the first wakes a spare thread, or
 * starts one (up to max_workers), so that `workers` tasks keep running; the
 * second lets the surplus thread go idle once it has finished its task.
 * They nest (a count), cost two atomic additions and no system call unless
 * a replacement must be woken or started, and do nothing on a thread that
 * is no worker. A fixed pool counts them in stats.blocked only.
 *
 * On an elastic pool a thread that comes back (wp_blocking_end) while the
 * pool already runs `workers` tasks gives its slot back and waits for one,
 * before the spares: at most `workers` threads run outside their blocks.
 *
 * Without hints an elastic pool still notices blocked workers: a monitor
 * thread (named "<name>-mon"), while tasks run, looks about every
 * millisecond (jittered) at up to 8 of the workers that are inside a task:
 * the kernel's state of the thread (one pread of /proc/thread-self/stat),
 * its CPU clock and its time waiting for a CPU (/proc/thread-self/schedstat;
 * each worker of an elastic pool keeps those two descriptors open). A thread
 * asleep now counts as blocked for the share of the time it neither ran,
 * waited for a CPU nor slept in the pool for work; a runnable thread never
 * does. When tasks wait while fewer than `workers` run, two looks in a row,
 * the pool grows so that at the share seen blocked `workers` would run (at
 * most doubling a look); when more run, or holders sit idle with nothing
 * queued, it shrinks back. Nothing of this is on the per-task path; while
 * nothing runs the monitor looks every 100 ms, and a worker that wakes for
 * work wakes it. Under valgrind, which lets one thread run at a time and
 * puts the others to sleep in the kernel, the monitor sees them blocked.
 */
WP_EXTERN void wp_blocking_begin(void);
WP_EXTERN void wp_blocking_end(void);

/* 0..max_workers-1 on a worker thread of any pool, -1 on any other thread.
   A new thread takes the lowest free id, and an id is free again only
   after its thread's worker_stop has returned. A
   worker keeps its id while it runs another pool's task inline
   (caller-runs); a caller-runs task on a thread that is no worker sees -1. */
WP_EXTERN int wp_worker_id(void);

/* CPUs this process may really use: the CPUs in its affinity mask, capped by
   the smallest cgroup CPU quota (v2 cpu.max, v1 cfs quota/period) from its
   own cgroup up to the root, rounded up; at least 1. */
WP_EXTERN unsigned wp_cpu_count(void);

typedef struct wp_stats {
    unsigned workers, active; /* the target (wp_pool_workers); threads running a task now */
    size_t queued, capacity;  /* tasks waiting now; the bound */
    uint64_t submitted, completed, rejected, discarded;
    unsigned threads;     /* worker threads alive: running, idle or blocked */
    unsigned blocked;     /* of them, blocked: inside wp_blocking_begin/end, or seen asleep in
                             the kernel inside a task (the monitor's last look) */
    unsigned max_workers; /* the cap */
} wp_stats;

/* A snapshot of the counters (not atomic as a whole while tasks run; exact
   once the pool is idle or shut down). Both arguments must be non-NULL;
   with either NULL nothing happens. */
WP_EXTERN void wp_pool_stats(wp_pool *p, wp_stats *out);

/* -------------------------------------------------------------- channels -- */

typedef struct wp_chan wp_chan;

/* A channel of elements of elem_size bytes, buffering up to capacity of them
   (0: unbuffered: a send completes only when a receiver takes the value).
   EINVAL: out NULL, elem_size 0, or elem_size * capacity overflows.
   ENOMEM: out of memory. */
WP_EXTERN int wp_chan_create(wp_chan **out, size_t elem_size, size_t capacity);

/* Frees the channel. No thread may be in a call on it or start one (it is
   fine to destroy it as soon as the last value has been received, even if
   its sender has not yet returned). NULL is ignored. */
WP_EXTERN void wp_chan_destroy(wp_chan *c);

/* Copies elem_size bytes from elem into the channel, waiting for room (or,
   unbuffered, until a receiver has taken the value). EPIPE: closed (also
   when closed while waiting; the value was not sent). EINVAL: c or elem
   NULL. */
WP_EXTERN int wp_chan_send(wp_chan *c, const void *elem);

/* Takes the next element into elem (elem NULL drops it), waiting for one.
   EPIPE: closed and drained (elem is left untouched). EINVAL: c NULL. */
WP_EXTERN int wp_chan_recv(wp_chan *c, void *elem);

/* Never wait: EAGAIN when the operation cannot complete now (EPIPE and
   EINVAL as above). An unbuffered try_send succeeds only if a receiver is
   already waiting, an unbuffered try_recv only if a sender is. */
WP_EXTERN int wp_chan_try_send(wp_chan *c, const void *elem);
WP_EXTERN int wp_chan_try_recv(wp_chan *c, void *elem);

/* Wait at most timeout_ns: ETIMEDOUT when the operation could not complete
   (nothing was sent or received). 0: do not wait; WP_FOREVER: like the
   blocking call. */
WP_EXTERN int wp_chan_send_timeout(wp_chan *c, const void *elem, uint64_t timeout_ns);
WP_EXTERN int wp_chan_recv_timeout(wp_chan *c, void *elem, uint64_t timeout_ns);

/* Closes the channel: wakes every blocked sender (EPIPE) and receiver
   (buffered values are still delivered). EPIPE: already closed.
   EINVAL: c NULL. */
WP_EXTERN int wp_chan_close(wp_chan *c);

/* Elements buffered now; the capacity (0 for NULL). */
WP_EXTERN size_t wp_chan_len(wp_chan *c);
WP_EXTERN size_t wp_chan_cap(wp_chan *c);

/* A descriptor for an event loop (poll, epoll, libevent, libuv): *fd polls
   readable (POLLIN) exactly while a receive would not wait: an element is
   buffered, a sender waits on an unbuffered channel, or the channel is
   closed. Level-triggered: on POLLIN call wp_chan_try_recv until EAGAIN (or
   EPIPE: closed and drained), then poll again. Only the library reads or
   closes it; wp_chan_destroy closes it. The first call makes it (an
   eventfd), later calls return the same one. Cost: a channel that never
   asked pays one branch per operation; one that has takes its lock once per
   operation (a buffered channel's sends and receives are lock-free
   otherwise) and pays a system call only on each edge, under that lock: a
   write when it goes from nothing to receive to something, a read when it
   goes back. So a send into a drained
   channel whose loop sleeps costs one write, and the sends that follow until
   the loop drains it cost none. After fork() the descriptor is shared with
   the other process: use it in one of them only. EINVAL: c or fd NULL.
   EMFILE, ENFILE, ENOMEM: no descriptor could be made (nothing changed). */
WP_EXTERN int wp_chan_fd(wp_chan *c, int *fd);

enum { WP_SEND, WP_RECV };

typedef struct wp_select_case {
    wp_chan *chan; /* NULL: never ready (Go's nil channel) */
    int op;        /* WP_SEND or WP_RECV */
    void *elem;    /* value to send / where to receive (NULL: drop) */
    int err;       /* out: 0, or EPIPE for a closed channel */
} wp_select_case;

/* Most cases one wp_select takes (its bookkeeping lives on the stack). */
#define WP_SELECT_MAX 64

/* Completes one ready case, chosen at random among the ready ones, and
   returns its index (its err: 0, or EPIPE for a closed channel; no other
   case is touched); -1 when none could complete within timeout_ns (0: poll
   once, like Go's default case), or on bad arguments (cases NULL with n > 0,
   an unknown op, a send case with a NULL elem: that case's err is set to
   EINVAL; n > WP_SELECT_MAX: every err is set to EINVAL). With no case that
   names a channel it just waits out timeout_ns (WP_FOREVER: forever, like
   Go's empty select). Several cases may name the same channel. Never
   allocates. */
WP_EXTERN int wp_select(wp_select_case *cases, size_t n, uint64_t timeout_ns);

/* ---------------------------------------------------------------- groups -- */

typedef struct wp_group wp_group;
typedef int (*wp_group_fn)(void *arg); /* nonzero: failed */

/*
 * Groups are Go's errgroup (and WaitGroup): wp_group_go runs members on the
 * group's pool, wp_group_wait waits for them (not for the rest of the pool),
 * and the first member to fail cancels the others. Everything a group needs
 * is allocated by wp_group_create; no go(), run or wait allocates.
 *
 * A group can be used again after a wait that returned 0 (go(), wait again,
 * like a WaitGroup). Cancellation is sticky: once cancelled, by
 * wp_group_cancel or by a failing member, a group stays cancelled and its
 * wait keeps returning the same result. A go() must not race with the wait
 * that would see the group empty (as with WaitGroup.Add), nor with destroy.
 */

/* A group of tasks run on pool p, at most `limit` of them at once (0: no
   limit). A member counts against the limit from wp_group_go until it has
   finished, as with errgroup's SetLimit. Limit 0 makes room for as many
   members as the pool can hold queued and running (queue_capacity, at most
   65536, plus max_workers); beyond that go() waits, or runs the member itself
   when called from inside a task of p. EINVAL: out or p NULL. ENOMEM. */
WP_EXTERN int wp_group_create(wp_group **out, wp_pool *p, unsigned limit);

/* Runs fn(arg) on the group's pool as a member of g. Blocks while the group
   is at its limit; inside a task of the pool it runs queued tasks
   meanwhile, so nested groups never deadlock, even on one worker. Waits
   for room in the pool's queue whatever its full_policy (inside a task of
   the pool it runs the member itself instead, as wp_submit would). The
   first member to return nonzero cancels the group. Returns 0 once fn(arg)
   is queued (or has run). ECANCELED: the group is cancelled (also while
   go() waited at the limit; fn will not run). EPIPE: the pool is shut down.
   EOWNERDEAD: the pool was inherited across fork() (fn will not run).
   EDEADLK: at the limit, and every member holding a place is running on
   the calling thread (a member calling go() on its own full group).
   EINVAL: g or fn NULL. */
WP_EXTERN int wp_group_go(wp_group *g, wp_group_fn fn, void *arg);

/* Waits for every member (running queued tasks of the pool meanwhile when
   called on one of its workers). Returns the first nonzero result, else
   ECANCELED if the group was cancelled or a member was dropped by
   WP_DISCARD, else 0. Once it returns no member touches g: it may be
   destroyed at once. EINVAL: g NULL. EDEADLK: called from inside one of g's
   own members (it could never return). */
WP_EXTERN int wp_group_wait(wp_group *g);

/* Cancels the group: members not yet started are skipped (they never run),
   and go() returns ECANCELED from now on, also in a go() waiting at the
   limit. Running members are not interrupted: they may poll
   wp_group_cancelled. NULL is ignored. */
WP_EXTERN void wp_group_cancel(wp_group *g);

/* Nonzero once the group is cancelled (0 for NULL). */
WP_EXTERN int wp_group_cancelled(const wp_group *g);

/* Waits for the members, then frees the group. NULL is ignored. Called from
   inside one of g's own members it does nothing (the wait could never end). */
WP_EXTERN void wp_group_destroy(wp_group *g);

/* Calls body(lo, hi, arg) on chunks covering [begin, end) of at most grain
   indices, and returns when all are done. grain 0 lets wpool choose: each
   chunk is what is left divided by twice the pool's workers, but at least
   1/64 of one worker's share (large chunks first, small ones last, like
   OpenMP's schedule(guided)), so the threads finish together. The loop runs
   on as many threads as the pool has workers, the calling thread being one
   of them: it claims chunks too, and submits helper tasks for the others (a
   helper that finds the queue full is counted in stats.rejected, and the
   threads already at work do its share). It returns once every helper task
   has run, so on a paused pool it returns after the pause. Works from
   inside a task (nested loops); never allocates. begin == end returns 0
   without calling body. EINVAL: p or body NULL, or begin > end. EPIPE: shut
   down (body was not called). EOWNERDEAD: p was inherited across fork(). */
WP_EXTERN int wp_parallel_for(wp_pool *p, size_t begin, size_t end, size_t grain,
                              void (*body)(size_t lo, size_t hi, void *arg), void *arg);

#ifdef __cplusplus
}
#endif

#endif /* WPOOL_H */
