/*
 * thpool.c: C-Thread-Pool's API on top of wpool's public API.
 *
 * A threadpool is a wp_pool plus an overflow. thpool_add_work puts the job
 * straight into wpool's preallocated ring (no allocation, no lock). When the
 * ring is full it never waits, as C-Thread-Pool never does: the job goes to
 * the overflow, a list of 4 KiB chunks allocated only then, and one thread
 * of ours, the feeder (started the first time the ring is full), moves the
 * chunks into the ring as room comes, waiting for that room itself, then
 * frees them. A thread of our own is needed there: the jobs in the ring are
 * the user's, so nothing of ours runs when a worker frees a slot, and only
 * a thread that is not the submitter may wait for one.
 * WPOOL_THPOOL_BOUND=N (read by thpool_init) makes the pool bounded
 * instead: a ring of N slots that thpool_add_work waits on while it is
 * full (WP_FULL_BLOCK); the overflow and the feeder are never used then.
 *
 * Invariants
 *   - `pending` counts the jobs added to the overflow and not yet in the
 *     ring: those in the chunks and those of the chunk the feeder holds.
 *     While it is nonzero every new job goes to the overflow, behind them,
 *     so that jobs start in the order they were added (FIFO across ring
 *     and overflow, as in C-Thread-Pool's one queue).
 *   - The chunks from `head` to `tail` belong to the pool, under `lock`. A
 *     chunk the feeder took off `head` is its own, `feeding`, until it
 *     frees it (under `lock`, so that a child of fork() can free it too).
 *   - `spilled` only grows: thpool_wait sees by it whether a job went to
 *     the overflow while it waited for the ring (then it waits again).
 *   - `alive` counts the workers that ran worker_start; thpool_init returns
 *     once it reaches their number, as C-Thread-Pool's waits for
 *     num_threads_alive.
 *   - Fields under `lock`: head, tail, feeding, spilled, alive, waiting,
 *     feeder_idle, feeder_started, closing; `pending` is written under it
 *     too and read without it on the add path. `pool` is read-only after
 *     thpool_init, `feeder` after the feeder started.
 *
 * Shutdown: thpool_destroy shuts the wp_pool down with WP_DISCARD (running
 * jobs finish, queued ones are dropped, and the feeder's submit returns
 * EPIPE), then stops and joins the feeder and frees the chunks left, whose
 * jobs never run, as C-Thread-Pool drops its queue.
 *
 * Nothing is global: pausing or destroying one pool touches no other.
 */
#include "thpool.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "wpool.h"

#define CHUNK_JOBS 255 /* a chunk is 4 KiB on 64-bit machines */

/* Kept out of thpool_add_work, so that its fast path stays a load and a
   call (no frame for the overflow's locals). */
#if defined(__GNUC__) || defined(__clang__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE
#endif

struct chunk {
    struct chunk *next;
    size_t n; /* jobs in fn[] and arg[] */
    wp_task_fn fn[CHUNK_JOBS];
    void *arg[CHUNK_JOBS]; /* contiguous: a run of one fn goes in as one batch */
};

struct thpool_ {
    wp_pool *pool;          /* read-only after thpool_init */
    _Atomic size_t pending; /* see the invariants; written under lock */
    pthread_mutex_t lock;
    pthread_cond_t feed; /* the feeder sleeps on it: no chunk, not closing */
    pthread_cond_t cv;   /* thpool_init (alive) and thpool_wait (pending) sleep on it */
    struct chunk *head, *tail;
    struct chunk *feeding; /* the chunk the feeder holds, or NULL */
    uint64_t spilled;
    unsigned alive;   /* worker threads started */
    unsigned waiting; /* threads asleep on cv */
    bool feeder_idle, feeder_started, closing;
    pthread_t feeder;
};

/* ------------------------------------------------------------ feeder -- */

/* Puts chunk c's jobs into the ring, waiting for room (a run of jobs with
   one function goes in as one batch). Stops at EPIPE: the pool was shut
   down, and the jobs left are dropped. */
static void feed_chunk(wp_pool *p, const struct chunk *c)
{
    for (size_t i = 0, j; i < c->n; i = j) {
        j = i + 1;
        while (j < c->n && c->fn[j] == c->fn[i]) j++;
        if (wp_submit_batch(p, c->fn[i], &c->arg[i], j - i) != 0) return;
    }
}

static void *feeder_main(void *arg)
{
    struct thpool_ *tp = arg;
    pthread_mutex_lock(&tp->lock);
    while (!tp->closing) {
        struct chunk *c = tp->head;
        if (!c) {
            tp->feeder_idle = true;
            pthread_cond_wait(&tp->feed, &tp->lock);
            tp->feeder_idle = false;
            continue;
        }
        tp->head = c->next;
        if (!tp->head) tp->tail = NULL; /* adders start a new chunk: c is ours */
        tp->feeding = c;
        pthread_mutex_unlock(&tp->lock);
        feed_chunk(tp->pool, c); /* waits for room, holding no lock */
        pthread_mutex_lock(&tp->lock);
        size_t n = c->n;
        tp->feeding = NULL;
        free(c);
        /* relaxed load: pending is only written under lock. release store:
           the jobs just put into the ring come before an adder's acquire
           load that reads the new count (so a job added after, straight to
           the ring, goes in behind them). */
        size_t left = atomic_load_explicit(&tp->pending, memory_order_relaxed) - n;
        atomic_store_explicit(&tp->pending, left, memory_order_release);
        if (left == 0 && tp->waiting > 0) {
            pthread_mutex_unlock(&tp->lock);
            pthread_cond_broadcast(&tp->cv);
            pthread_mutex_lock(&tp->lock);
        }
    }
    pthread_mutex_unlock(&tp->lock);
    return NULL;
}

/* Starts the feeder, with every signal blocked as wpool's workers have
   them. tp->lock must be held (the feeder's first step waits for it).
   0 or pthread_create's error. */
static int feeder_start(struct thpool_ *tp)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&tp->feeder, NULL, feeder_main, tp);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) return rc;
    tp->feeder_started = true;
#ifdef __linux__
    pthread_setname_np(tp->feeder, "thpool-feeder");
#endif
    return 0;
}

/* The overflow path of thpool_add_work: appends the job behind the others.
   0, or -1 when no memory (or thread) could be had or the pool takes no
   more jobs; the job is not queued then. */
static NOINLINE int spill(struct thpool_ *tp, wp_task_fn fn, void *arg)
{
    /* An empty batch queues nothing but says whether the pool takes jobs:
       EPIPE once shut down, EOWNERDEAD in a child that inherited it (whose
       feeder is not in this process, and whose lock it may have held). */
    if (wp_submit_batch(tp->pool, fn, &arg, 0) != 0) return -1;
    pthread_mutex_lock(&tp->lock);
    if (tp->closing || (!tp->feeder_started && feeder_start(tp) != 0)) {
        pthread_mutex_unlock(&tp->lock);
        return -1;
    }
    struct chunk *c = tp->tail;
    if (!c || c->n == CHUNK_JOBS) {
        if (!(c = malloc(sizeof *c))) {
            pthread_mutex_unlock(&tp->lock);
            return -1;
        }
        c->next = NULL;
        c->n = 0;
        if (tp->tail)
            tp->tail->next = c;
        else
            tp->head = c;
        tp->tail = c;
    }
    c->fn[c->n] = fn;
    c->arg[c->n] = arg;
    c->n++;
    tp->spilled++;
    /* relaxed: written only under lock; an adder that reads it without the
       lock needs no more than to see it nonzero, and then takes the lock. */
    atomic_store_explicit(&tp->pending,
                          atomic_load_explicit(&tp->pending, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    bool wake = tp->feeder_idle;
    tp->feeder_idle = false;
    pthread_mutex_unlock(&tp->lock);
    if (wake) pthread_cond_signal(&tp->feed);
    return 0;
}

/* ---------------------------------------------------------------- API -- */

static void worker_started(unsigned id, void *user)
{
    (void)id;
    struct thpool_ *tp = user;
    pthread_mutex_lock(&tp->lock);
    tp->alive++;
    bool wake = tp->waiting > 0;
    pthread_mutex_unlock(&tp->lock);
    if (wake) pthread_cond_broadcast(&tp->cv); /* thpool_init */
}

#define THPOOL_RING 16384u /* slots of an unbounded pool's ring (512 KiB) */

/* $WPOOL_THPOOL_BOUND as a positive decimal number, else 0 (unbounded). */
static size_t env_bound(void)
{
    const char *s = getenv("WPOOL_THPOOL_BOUND");
    if (!s || *s < '0' || *s > '9') return 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    return *end == '\0' && v <= SIZE_MAX ? (size_t)v : 0;
}

threadpool thpool_init(int num_threads)
{
    struct thpool_ *tp = calloc(1, sizeof *tp);
    if (!tp) return NULL;
    pthread_mutex_init(&tp->lock, NULL); /* default attributes: cannot fail */
    pthread_cond_init(&tp->feed, NULL);
    pthread_cond_init(&tp->cv, NULL);
    atomic_init(&tp->pending, 0);

    size_t bound = env_bound();
    wp_config cfg;
    wp_config_init(&cfg);
    cfg.workers = num_threads > 0 ? (unsigned)num_threads : 0; /* 0: wpool's default */
    cfg.name = "thread-pool";                                  /* as C-Thread-Pool names them */
    /* Unbounded: a ring of THPOOL_RING slots takes bursts of that many
       without the overflow (the seed's 10,000 jobs an op, say). */
    cfg.queue_capacity = bound ? bound : THPOOL_RING;
    cfg.full_policy = bound ? WP_FULL_BLOCK : WP_FULL_REJECT; /* EAGAIN: to the overflow */
    cfg.worker_start = worker_started;
    cfg.user = tp;
    if (wp_pool_create(&tp->pool, &cfg) != 0) {
        thpool_destroy(tp);
        return NULL;
    }
    /* As C-Thread-Pool: return once every thread is alive. */
    unsigned n = wp_pool_workers(tp->pool);
    pthread_mutex_lock(&tp->lock);
    tp->waiting++;
    while (tp->alive < n) pthread_cond_wait(&tp->cv, &tp->lock);
    tp->waiting--;
    pthread_mutex_unlock(&tp->lock);
    return tp;
}

int thpool_add_work(threadpool tp, void (*function_p)(void *), void *arg_p)
{
    if (!tp || !function_p) return -1;
    /* acquire: pairs with the feeder's release of pending, so that this job
       goes into the ring behind the overflow jobs the feeder put there. */
    if (atomic_load_explicit(&tp->pending, memory_order_acquire) == 0) {
        int rc = wp_submit(tp->pool, function_p, arg_p); /* the fast path */
        if (rc != EAGAIN) return rc == 0 ? 0 : -1;       /* EAGAIN: full, unbounded */
    }
    return spill(tp, function_p, arg_p);
}

void thpool_wait(threadpool tp)
{
    /* EDEADLK from one of its own jobs: return rather than hang (as does
       EOWNERDEAD, a pool inherited across fork()). */
    if (!tp || wp_wait(tp->pool) != 0) return;
    for (;;) {
        /* The overflow empty, then the ring: if no job went to the overflow
           meanwhile, there was a moment with nothing queued anywhere and
           nothing running. */
        pthread_mutex_lock(&tp->lock);
        tp->waiting++;
        /* relaxed: read under lock, where it is written. */
        while (atomic_load_explicit(&tp->pending, memory_order_relaxed) > 0)
            pthread_cond_wait(&tp->cv, &tp->lock);
        tp->waiting--;
        uint64_t spilled = tp->spilled;
        pthread_mutex_unlock(&tp->lock);
        (void)wp_wait(tp->pool);
        pthread_mutex_lock(&tp->lock);
        bool done = tp->spilled == spilled;
        pthread_mutex_unlock(&tp->lock);
        if (done) return;
    }
}

void thpool_pause(threadpool tp)
{
    if (tp) wp_pool_pause(tp->pool);
}

void thpool_resume(threadpool tp)
{
    if (tp) wp_pool_resume(tp->pool);
}

void thpool_destroy(threadpool tp)
{
    if (!tp) return;
    /* C-Thread-Pool lets running jobs finish and drops the queued ones. A
       pool cannot be freed from one of its own jobs: do nothing there. */
    int rc = tp->pool ? wp_pool_shutdown(tp->pool, WP_DISCARD) : 0;
    if (rc == EDEADLK) return;
    /* EOWNERDEAD: a pool inherited across fork(). Its threads, the feeder
       too, are not in this process, and one may have held the lock or sat
       in a wait: only free the memory. */
    bool inherited = rc == EOWNERDEAD;
    if (!inherited) {
        pthread_mutex_lock(&tp->lock);
        tp->closing = true; /* adders get -1; the feeder, out of wp_submit_batch (EPIPE), stops */
        bool feeder = tp->feeder_started;
        pthread_mutex_unlock(&tp->lock);
        if (feeder) {
            pthread_cond_signal(&tp->feed);
            pthread_join(tp->feeder, NULL);
        }
    }
    free(tp->feeding); /* NULL unless the feeder's thread is in the parent */
    for (struct chunk *c = tp->head, *next; c; c = next) {
        next = c->next;
        free(c); /* its jobs are dropped */
    }
    wp_pool_destroy(tp->pool);
    if (!inherited) {
        pthread_cond_destroy(&tp->cv);
        pthread_cond_destroy(&tp->feed);
        pthread_mutex_destroy(&tp->lock);
    }
    free(tp);
}

int thpool_num_threads_working(threadpool tp)
{
    wp_stats st = {0};
    if (tp) wp_pool_stats(tp->pool, &st);
    return (int)st.active;
}
