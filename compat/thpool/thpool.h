/*
 * thpool.h: C-Thread-Pool's API (github.com/Pithikos/C-Thread-Pool), served
 * by wpool. A program written for C-Thread-Pool switches by changing its
 * include path and link flag:
 *
 *     cc prog.c $(pkg-config --cflags --libs wpool-thpool)
 *
 * Same seven functions, same `threadpool` type, same results, with these
 * differences, all on purpose:
 *   - The queue: thpool_add_work never waits, as in C-Thread-Pool. Jobs go
 *     into wpool's preallocated ring of 16384 slots without allocating
 *     (C-Thread-Pool mallocs every job); once it is full, into an overflow
 *     of 4 KiB chunks (255 jobs each), allocated then and freed as the ring
 *     takes them back. Jobs start in the order they were added, across
 *     ring and overflow. The first overflow starts one more thread,
 *     "thpool-feeder", which moves the overflow into the ring.
 *   - Backpressure, opt-in: with WPOOL_THPOOL_BOUND=N in the environment
 *     (a positive decimal number, read by thpool_init; anything else is
 *     ignored) the pool holds at most N queued jobs, and thpool_add_work
 *     waits while it is full instead of growing memory without limit. It
 *     then never allocates; a job adding work to its own full pool does not
 *     wait but runs the new job itself. A program that adds work while
 *     holding a lock its jobs take must not set it: it would wait for room
 *     that only those jobs can make.
 *   - Nothing is global: pausing, resuming or destroying one pool affects no
 *     other (in C-Thread-Pool pause/resume and destroy flip process-wide
 *     flags, and pause installs a process-wide SIGUSR1 handler; this uses
 *     no signals).
 *   - Pause lets each running job finish, then starts no more; it does not
 *     freeze a job midway.
 *   - Calls that would hang do not: destroying a paused pool returns, and
 *     thpool_wait or thpool_destroy called from inside one of the pool's
 *     own jobs returns at once without doing anything.
 *   - thpool_init(n) with n <= 0 sizes the pool as wpool does: $WPOOL_WORKERS
 *     if set, else the CPUs the process may use (C-Thread-Pool makes a pool
 *     with no threads). More than 4096 threads is an error (NULL).
 *   - NULL handles are harmless: thpool_add_work returns -1,
 *     thpool_num_threads_working returns 0, the others do nothing.
 * Every function may be called from any thread.
 */
#ifndef _THPOOL_
#define _THPOOL_

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define THPOOL_API __attribute__((visibility("default")))
#else
#define THPOOL_API
#endif

typedef struct thpool_ *threadpool;

/* Creates a pool of num_threads threads (named "thread-pool-<id>") and
   returns once they are all alive, as C-Thread-Pool does. Returns NULL on
   error (out of memory or threads, more than 4096 threads, a
   WPOOL_THPOOL_BOUND too large to allocate). */
THPOOL_API threadpool thpool_init(int num_threads);

/* Queues function_p(arg_p) and returns; never waits (but with
   WPOOL_THPOOL_BOUND set, waits while the queue is full). Returns 0 on
   success, -1 when the pool or function is NULL, the pool is being
   destroyed, the overflow could not grow (out of memory), or the caller is
   a child process that inherited the pool across fork() (its threads are
   not there to run the job). */
THPOOL_API int thpool_add_work(threadpool, void (*function_p)(void *), void *arg_p);

/* Waits until no job is queued or running, jobs added by jobs included.
   On a paused pool that has queued jobs, waits until it is resumed. */
THPOOL_API void thpool_wait(threadpool);

/* Pauses the pool: each thread finishes the job it runs, then starts no more
   until thpool_resume. Jobs can still be added meanwhile. */
THPOOL_API void thpool_pause(threadpool);

/* Lets a paused pool run jobs again; does nothing on a running pool. */
THPOOL_API void thpool_resume(threadpool);

/* Waits for the jobs that are running to finish, drops the queued ones that
   have not started, overflow included (as C-Thread-Pool does; call
   thpool_wait first to run them), stops the threads and frees the pool and
   its overflow. A paused pool is destroyed too. NULL is ignored. */
THPOOL_API void thpool_destroy(threadpool);

/* The number of threads running a job now. */
THPOOL_API int thpool_num_threads_working(threadpool);

#ifdef __cplusplus
}
#endif

#endif
