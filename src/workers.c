/*
 * workers: the worker lifecycle. Starting threads (lowest free id first),
 * spares, the blocking monitor of an elastic pool, resize, and the blocking
 * hints. The run path (what a holder does) is pool.c's; the slots that say
 * how many threads may run tasks are described in pool.h.
 *
 * Threads
 *   A worker record is FREE (no thread), ALIVE, or EXITED (its thread ran
 *   worker_stop and is returning: joined before the record is used again,
 *   or at shutdown). Starting a thread and marking one EXITED take
 *   life_lock, which also guards `statfd` and `no_more_threads`; nothing on
 *   the per-task path takes it. A new thread takes the lowest id that is not
 *   ALIVE, so an id is free again only after its last thread's worker_stop
 *   returned, and per-worker state indexed by id is never shared by two live
 *   threads. `used` (the highest id ever used, plus one) bounds every scan.
 *
 * Spares
 *   A thread that is no holder waits on spare_ev until holders < limit
 *   (then takes a slot), until shutdown (exits), or, in an elastic pool,
 *   until idle_timeout_ns have passed; it then exits if the pool has more
 *   threads than its target (`leaving` counts the threads that decided to,
 *   so two spares never both leave the pool short). grow() runs whenever the
 *   limit rose: it wakes the spares (they race for the free slots) and
 *   starts the threads still missing, up to max_workers.
 *
 * The monitor (elastic pools only)
 *   One thread that looks, every MON_NS on average (jittered) while tasks
 *   run, at the holders that are inside a task and not hinted: for up to
 *   MON_LOOK of them, the kernel's state (a pread of /proc/thread-self/stat,
 *   a descriptor the worker opened for it), the thread's CPU clock and its
 *   wait for a CPU (schedstat). A thread asleep now counts as blocked for
 *   the share of the interval it neither ran, waited for a CPU nor slept in
 *   the pool waiting for work (parked_ns); a runnable thread (state R) is
 *   not looked at. When tasks wait and fewer than `target` run (busy holders
 *   times what is left of the smoothed share), two looks in a row, it raises
 *   `extra` (its share of the limit) so that the running ones would reach
 *   the target at that share (at most doubling the busy holders a look);
 *   when more than the target run, or holders sit idle with nothing queued,
 *   two looks in a row, it lowers it again (by half at most while tasks
 *   wait) and wakes the idle holders so that the surplus gives its slots
 *   back. While nothing runs it looks every MON_IDLE_NS only, and a worker
 *   that wakes from its sleep for work pokes it.
 *
 * Threads back from a block (wp_blocking_end) while holders > limit give
 *   their slot back and wait on back_ev for one (nback): they go before
 *   spares and new threads (slot_room), and idle holders give their slots
 *   to them.
 *
 * Shutdown (wp__workers_join): no_more_threads is set under life_lock, so
 * grow starts nothing more; then the spares and the monitor are woken and
 * every thread that ever ran is joined, blocked ones too (their tasks are
 * waited for).
 */
#include "pool.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MON_NS      1000000u   /* the monitor's look while tasks run */
#define MON_IDLE_NS 100000000u /* ... and while nothing runs */
#define MON_LOOK    8u         /* most threads looked at closely a look */
#define AT_MAX      (-1)       /* start_thread: max_workers threads alive already */

/* ---------------------------------------------------------------- slots -- */

/* The slots a thread may take: below the limit, less those kept for the
   threads coming back from wp_blocking_end (`back`: they go first, so that
   started tasks finish before new ones start). */
static int slot_room(wp_pool *p, bool back)
{
    /* relaxed: a hint; the CAS in slot_take decides. */
    return back ? atomic_load_explicit(&p->limit, memory_order_relaxed) : wp__slot_room(p);
}

/* Takes a slot while there are fewer holders than slot_room. */
static bool slot_take(wp_pool *p, bool back)
{
    /* relaxed: as in wp__slot_give. */
    int h = atomic_load_explicit(&p->holders, memory_order_relaxed);
    while (h < slot_room(p, back))
        if (atomic_compare_exchange_weak_explicit(&p->holders, &h, h + 1, memory_order_relaxed,
                                                  memory_order_relaxed))
            return true;
    return false;
}

static bool slot_free(wp_pool *p, bool back)
{
    /* relaxed: a hint; slot_take decides. */
    return atomic_load_explicit(&p->holders, memory_order_relaxed) < slot_room(p, back);
}

/* ------------------------------------------------------------- threads -- */

/* Starts one more thread, as a spare that takes a slot at once if it can.
   life_lock held. 0, AT_MAX, or pthread_create's error (nothing changed). */
static int start_thread(wp_pool *p)
{
    if (p->no_more_threads) return AT_MAX;
    /* relaxed: written under life_lock, which we hold. */
    if (atomic_load_explicit(&p->threads, memory_order_relaxed) >= p->max) return AT_MAX;
    wp__worker *w = NULL;
    for (unsigned i = 0; i < p->max && !w; i++)
        if (p->workers[i].life != WP__ALIVE) w = &p->workers[i];
    if (!w) return AT_MAX;
    if (w->life == WP__EXITED) pthread_join(w->thread, NULL); /* it is past worker_stop */
    w->life = WP__FREE;
    w->mon_at = 0; /* the monitor's last look was at another thread */
    /* relaxed: the new thread reads them after pthread_create (which
       synchronises); others only count. */
    atomic_store_explicit(&w->spare, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->nspare, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->threads, 1, memory_order_relaxed);
    /* release: the record's fields before scans that read up to `used`
       (acquire in pool.c's used()). */
    if (w->id + 1 > atomic_load_explicit(&p->used, memory_order_relaxed))
        atomic_store_explicit(&p->used, w->id + 1, memory_order_release);
    /* Workers start with every signal blocked: signals go to the
       application's own threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&w->thread, &p->attr, wp__worker_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        atomic_fetch_sub_explicit(&p->nspare, 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(&p->threads, 1, memory_order_relaxed);
        return rc;
    }
    w->life = WP__ALIVE;
    return 0;
}

/* The limit may have risen: wakes the threads coming back from a block
   first, then spares for the free slots left, and starts the threads still
   missing. 0 or pthread_create's error. */
static int grow(wp_pool *p)
{
    if (!slot_free(p, true)) return 0;
    /* relaxed: a count; those threads recheck after their registration. */
    if (atomic_load_explicit(&p->nback, memory_order_relaxed) > 0) {
        /* seq_cst fence: the raised limit before the check of back_ev's
           waiters (park.h). */
        atomic_thread_fence(memory_order_seq_cst);
        if (wp__event_has_waiters(&p->back_ev)) wp__event_wake_all(&p->back_ev);
    }
    if (!slot_free(p, false)) return 0;
    int rc = 0;
    pthread_mutex_lock(&p->life_lock);
    /* relaxed: counts; the spares recheck after their registration. */
    int missing = slot_room(p, false) - atomic_load_explicit(&p->holders, memory_order_relaxed);
    int spares = (int)atomic_load_explicit(&p->nspare, memory_order_relaxed);
    if (missing > 0 && spares > 0) {
        /* seq_cst fence: the raised limit before the check of spare_ev's
           waiters (park.h). */
        atomic_thread_fence(memory_order_seq_cst);
        if (wp__event_has_waiters(&p->spare_ev)) wp__event_wake_all(&p->spare_ev);
    }
    for (int k = missing - spares; k > 0 && rc == 0; k--) rc = start_thread(p);
    pthread_mutex_unlock(&p->life_lock);
    return rc == AT_MAX ? 0 : rc;
}

/* Holders sit idle on work_ev while there are more of them than the limit:
   wake them, so that the surplus gives its slots back. */
static void shed(wp_pool *p)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (wp__event_has_waiters(&p->work_ev)) wp__event_wake_all(&p->work_ev);
}

bool wp__worker_spare(wp__worker *w)
{
    wp_pool *p = w->pool;
    /* relaxed: written by this thread only; read by the monitor as a hint. */
    if (!atomic_load_explicit(&w->spare, memory_order_relaxed)) {
        atomic_store_explicit(&w->spare, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&p->nspare, 1, memory_order_relaxed);
        /* The slot just given back may be what a thread back from a block
           waits for. */
        if (atomic_load_explicit(&p->nback, memory_order_relaxed) > 0) grow(p);
    }
    uint64_t deadline = p->elastic ? wp__deadline(p->idle_timeout_ns) : WP__NO_DEADLINE;
    bool holder = false;
    for (;;) {
        /* Also while draining: the holders there may be gone. */
        if (slot_take(p, false)) {
            holder = true;
            break;
        }
        if (wp__state(p) != WP__RUNNING) break;
        uint32_t key = wp__event_prepare(&p->spare_ev);
        /* after prepare's fence (park.h); pairs with grow's. */
        if (slot_free(p, false) || wp__state(p) != WP__RUNNING) {
            wp__event_cancel(&p->spare_ev);
            continue;
        }
        if (wp__event_wait(&p->spare_ev, key, deadline) != ETIMEDOUT) continue;
        /* Idle for idle_timeout_ns: leave if the pool has more threads than
           its target (and others are not leaving already). */
        pthread_mutex_lock(&p->life_lock);
        /* relaxed: under life_lock, which every change of these takes
           (threads) or is ordered by (target: resize holds it). */
        unsigned alive = atomic_load_explicit(&p->threads, memory_order_relaxed);
        bool leave = alive - p->leaving > atomic_load_explicit(&p->target, memory_order_relaxed);
        if (leave) {
            p->leaving++;
            w->leaving = true;
        }
        pthread_mutex_unlock(&p->life_lock);
        if (leave) break;
        deadline = wp__deadline(p->idle_timeout_ns);
    }
    atomic_fetch_sub_explicit(&p->nspare, 1, memory_order_relaxed);
    atomic_store_explicit(&w->spare, holder ? 0 : 1, memory_order_relaxed);
    return holder;
}

void wp__worker_began(wp__worker *w)
{
    wp_pool *p = w->pool;
    if (!p->elastic) return;
    /* The monitor's view of this thread's kernel state; without it (no
       /proc, no descriptor left) the monitor skips the thread and only the
       hints replace it. */
    int fd = open("/proc/thread-self/stat", O_RDONLY | O_CLOEXEC);
    int wfd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || wfd < 0) {
        if (fd >= 0) close(fd);
        if (wfd >= 0) close(wfd);
        fd = wfd = -1;
    }
    pthread_mutex_lock(&p->life_lock);
    w->statfd = fd;
    w->waitfd = wfd;
    pthread_mutex_unlock(&p->life_lock);
}

void wp__worker_exited(wp__worker *w)
{
    wp_pool *p = w->pool;
    pthread_mutex_lock(&p->life_lock);
    if (w->statfd >= 0) close(w->statfd);
    if (w->waitfd >= 0) close(w->waitfd);
    w->statfd = w->waitfd = -1;
    if (w->leaving) p->leaving--;
    w->leaving = false;
    /* relaxed: under life_lock; stats read it as a hint. */
    atomic_fetch_sub_explicit(&p->threads, 1, memory_order_relaxed);
    w->life = WP__EXITED; /* its id is free from now on */
    pthread_mutex_unlock(&p->life_lock);
}

/* ------------------------------------------------------------- monitor -- */

/* Whether the thread whose stat file fd is sleeps in the kernel (state S
   or D). The state follows the command name, which is in parentheses and may
   hold any character: look after the last ')'. */
static bool kernel_sleeps(int fd)
{
    char buf[512];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return false;
    buf[n] = '\0';
    char *close_paren = strrchr(buf, ')');
    if (!close_paren || close_paren[1] != ' ') return false;
    return close_paren[2] == 'S' || close_paren[2] == 'D';
}

/* Reads /proc/thread-self/schedstat's second number: the time the thread
   waited for a CPU while runnable, in ns (added when it gets the CPU). */
static bool read_waited(int fd, uint64_t *wait)
{
    char buf[128];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return false;
    buf[n] = '\0';
    char *end;
    strtoull(buf, &end, 10); /* run time: stale while the thread runs; the CPU clock is exact */
    if (end == buf) return false;
    char *end2;
    *wait = strtoull(end, &end2, 10);
    return end2 != end;
}

/* How much of the time since the monitor last looked at w's thread it spent
   blocked, in thousandths; -1: not known (no earlier look to compare with,
   or the thread is runnable now, when the kernel may not have added its
   latest wait for a CPU yet). For a thread the kernel has asleep now (state
   S or D) the share is the wall time it did not run (its CPU clock), wait
   for a CPU (schedstat: preempted is not blocked) or sleep in the pool for
   work (parked_ns). So a CPU-bound thread caught in a short sleep on a lock
   counts only that sleep, and one that never sleeps is never looked at. */
static long blocked_share(wp__worker *w, uint64_t now)
{
    clockid_t cid;
    struct timespec ts;
    uint64_t wait;
    if (pthread_getcpuclockid(w->thread, &cid) != 0 || clock_gettime(cid, &ts) != 0 ||
        !read_waited(w->waitfd, &wait))
        return -1;
    uint64_t cpu = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    /* relaxed: a statistic the worker adds to after each sleep. */
    uint64_t parked = atomic_load_explicit(&w->parked_ns, memory_order_relaxed);
    uint64_t dt = now - w->mon_at;
    long share = -1;
    if (w->mon_at != 0 && dt > 0 && dt < 20u * MON_NS) {
        uint64_t busy = (cpu - w->mon_cpu) + (wait - w->mon_wait) + (parked - w->mon_parked);
        if (kernel_sleeps(w->statfd)) share = busy >= dt ? 0 : (long)((dt - busy) * 1000 / dt);
    }
    w->mon_cpu = cpu;
    w->mon_wait = wait;
    w->mon_parked = parked;
    w->mon_at = now;
    return share;
}

/* One look: adjusts extra (the monitor's share of the limit). Returns
   whether anything ran or waited (the next look comes soon). */
static bool monitor_look(wp_pool *p, int *extra, long *smooth, unsigned *low, unsigned *high,
                         unsigned *next)
{
    unsigned in_task = 0, looked = 0, idle = 0;
    long shares = 0; /* sum of the looked-at threads' blocked shares, thousandths */
    uint64_t now = wp__now_ns();
    pthread_mutex_lock(&p->life_lock);
    unsigned n = atomic_load_explicit(&p->used, memory_order_relaxed); /* under life_lock */
    for (unsigned k = 0; k < n; k++) {
        wp__worker *w = &p->workers[(*next + k) % n];
        /* relaxed: hints about other threads. */
        if (w->life != WP__ALIVE || atomic_load_explicit(&w->spare, memory_order_relaxed) ||
            atomic_load_explicit(&w->hinted, memory_order_relaxed))
            continue;
        if (!atomic_load_explicit(&w->active, memory_order_relaxed)) {
            idle++;
            continue;
        }
        in_task++;
        if (looked < MON_LOOK && w->statfd >= 0) {
            long s = blocked_share(w, now);
            if (s >= 0) {
                shares += s;
                looked++;
            }
        }
    }
    pthread_mutex_unlock(&p->life_lock);
    if (n) *next = (*next + MON_LOOK) % n;

    /* b: the blocked share of a busy holder, in thousandths (the mean of
       those looked at); running: the busy holders times what is left, in
       thousandths of a thread. */
    long b = looked ? shares / looked : 0;
    /* Smoothed over looks (a quarter of the new one each time): the share
       comes from a few threads caught at one moment. */
    *smooth = looked ? (3 * *smooth + b) / 4 : *smooth;
    b = *smooth;
    long running = (long)in_task * (1000 - b);
    /* relaxed: statistics. */
    atomic_store_explicit(&p->nseen, (unsigned)(((long)in_task * b + 500) / 1000),
                          memory_order_relaxed);
    bool waiting = wp__pool_has_work(p);
    long target = (long)atomic_load_explicit(&p->target, memory_order_relaxed);
    *low = waiting && looked && running < 1000 * target - 500 ? *low + 1 : 0;
    *high = running > 1000 * target + 500 || (!waiting && idle > 0) ? *high + 1 : 0;
    long want = *extra, doubled = 2L * in_task + 1;
    /* The busy holders that would keep `target` running at that share. */
    long busy = b >= 990 ? doubled : (1000 * target + (1000 - b) - 1) / (1000 - b);
    if (*low >= 2) {
        if (busy > doubled) busy = doubled;
        if (busy - target > want) want = busy - target;
    } else if (*high >= 2) {
        /* Down by half the extra at most a look: the share seen blocked
           is a sample. */
        long floor_ = *extra / 2;
        if (!waiting)
            want = *extra - (long)idle;
        else if (busy - target < want)
            want = busy - target;
        if (want < floor_ && waiting) want = floor_;
    }
    if (want < 0) want = 0;
    if (want > (long)p->max - target) want = (long)p->max - target;
    if (want != *extra) {
        /* seq_cst: the limit before grow's reads and the spares' recheck. */
        atomic_fetch_add_explicit(&p->limit, (int)(want - *extra), memory_order_seq_cst);
        if (want < *extra) shed(p);
        *extra = (int)want;
        *low = *high = 0;
    }
    if (waiting) grow(p); /* also when spares timed out since */
    return in_task > 0 || waiting;
}

static void *monitor_main(void *arg)
{
    wp_pool *p = arg;
    char name[16];
    snprintf(name, sizeof name, "%.11s-mon", p->name);
    pthread_setname_np(pthread_self(), name);
    int extra = 0;
    long smooth = 0;
    unsigned low = 0, high = 0, next = 0;
    uint64_t rnd = (uint64_t)(uintptr_t)p ^ wp__now_ns();
    bool busy = true;
    while (wp__state(p) == WP__RUNNING) {
        if (busy) {
            /* MON_NS on average, but never the same twice: tasks that sleep
               on timers of the same period would otherwise always be seen
               at the same phase (the kernel fires nearby timers together). */
            rnd = rnd * 6364136223846793005u + 1442695040888963407u;
            struct timespec ts = {0, (long)(MON_NS / 2 + (rnd >> 33) % MON_NS)};
            nanosleep(&ts, NULL);
        } else {
            /* relaxed store, then the event's seq_cst registration: a worker
               that pokes after reading 1 wakes us (park.h). */
            atomic_store_explicit(&p->mon_asleep, 1, memory_order_relaxed);
            uint32_t key = wp__event_prepare(&p->mon_ev);
            if (wp__state(p) == WP__RUNNING)
                wp__event_wait(&p->mon_ev, key, wp__deadline(MON_IDLE_NS));
            else
                wp__event_cancel(&p->mon_ev);
            atomic_store_explicit(&p->mon_asleep, 0, memory_order_relaxed);
        }
        if (wp__state(p) != WP__RUNNING) break;
        busy = monitor_look(p, &extra, &smooth, &low, &high, &next);
    }
    return NULL;
}

void wp__monitor_poke(wp_pool *p)
{
    /* relaxed: a hint; a missed poke costs one long look's delay. */
    if (atomic_load_explicit(&p->mon_asleep, memory_order_relaxed)) {
        atomic_store_explicit(&p->mon_asleep, 0, memory_order_relaxed);
        wp__event_wake_one(&p->mon_ev);
    }
}

/* ------------------------------------------------------ start and join -- */

int wp__workers_start(wp_pool *p, unsigned n)
{
    int rc = 0;
    pthread_mutex_lock(&p->life_lock);
    for (unsigned i = 0; i < n && rc == 0; i++) rc = start_thread(p);
    if (rc == 0 && p->elastic) {
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        rc = pthread_create(&p->monitor, NULL, monitor_main, p);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        p->have_monitor = rc == 0;
    }
    pthread_mutex_unlock(&p->life_lock);
    return rc;
}

void wp__workers_join(wp_pool *p)
{
    pthread_mutex_lock(&p->life_lock);
    p->no_more_threads = true;
    pthread_mutex_unlock(&p->life_lock);
    /* The state changed before (seq_cst): spares and monitor see it. */
    atomic_thread_fence(memory_order_seq_cst);
    wp__event_wake_all(&p->spare_ev);
    wp__event_wake_all(&p->back_ev);
    wp__event_wake_all(&p->mon_ev);
    if (p->have_monitor) pthread_join(p->monitor, NULL);
    p->have_monitor = false;
    /* No thread is started any more, and life only goes ALIVE -> EXITED:
       reading it without the lock is safe once each thread is joined, but
       take the lock for each look anyway (a thread marks EXITED under it). */
    for (unsigned i = 0; i < p->max; i++) {
        wp__worker *w = &p->workers[i];
        pthread_mutex_lock(&p->life_lock);
        bool join = w->life != WP__FREE;
        pthread_mutex_unlock(&p->life_lock);
        if (join) pthread_join(w->thread, NULL);
        w->life = WP__FREE;
    }
}

/* -------------------------------------------------------------- resize -- */

int wp_pool_resize(wp_pool *p, unsigned workers)
{
    if (!p || workers == 0 || workers > p->max) return EINVAL;
    if (wp__pool_forked(p)) return EOWNERDEAD;
    pthread_mutex_lock(&p->life_lock);
    if (wp__state(p) != WP__RUNNING || p->no_more_threads) {
        pthread_mutex_unlock(&p->life_lock);
        return EPIPE;
    }
    /* relaxed: resizes are serialised by life_lock; readers take it as a
       number that may change. */
    unsigned old = atomic_load_explicit(&p->target, memory_order_relaxed);
    atomic_store_explicit(&p->target, workers, memory_order_relaxed);
    /* seq_cst: the limit before grow's reads and the spares' recheck. */
    atomic_fetch_add_explicit(&p->limit, (int)workers - (int)old, memory_order_seq_cst);
    pthread_mutex_unlock(&p->life_lock);
    if (workers < old) shed(p);
    return workers > old ? grow(p) : 0;
}

/* -------------------------------------------------------------- hints -- */

void wp_blocking_begin(void)
{
    wp__worker *w = wp__self();
    if (!w || w->hint_depth++ > 0) return;
    wp_pool *p = w->pool;
    /* relaxed: hints for the monitor and stats. */
    atomic_store_explicit(&w->hinted, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->nhint, 1, memory_order_relaxed);
    if (!p->elastic) return; /* a fixed pool only counts */
    /* seq_cst: the raised limit before grow's reads (and a waiter's recheck
       after its registration). */
    atomic_fetch_add_explicit(&p->limit, 1, memory_order_seq_cst);
    /* No system call unless someone can be woken or started. */
    if (slot_free(p, true) && (atomic_load_explicit(&p->nspare, memory_order_relaxed) > 0 ||
                               atomic_load_explicit(&p->nback, memory_order_relaxed) > 0 ||
                               atomic_load_explicit(&p->threads, memory_order_relaxed) < p->max))
        grow(p);
}

/* Back from a block with more holders than the limit: gives the slot back
   and waits for one before running more of the task, so that at most
   `target` threads run outside their blocks (Go's rule: a thread back from
   a system call needs a P). Threads coming back go before spares. */
static void wait_back(wp_pool *p)
{
    /* seq_cst: counted before the idle holders' recheck (they give their
       slots to us: wp__slot_room) and before our own wait's. */
    atomic_fetch_add_explicit(&p->nback, 1, memory_order_seq_cst);
    shed(p);
    if (wp__slot_give(p)) {
        while (!slot_take(p, true) && wp__state(p) == WP__RUNNING) {
            uint32_t key = wp__event_prepare(&p->back_ev);
            /* after prepare's fence (park.h); pairs with grow's. */
            if (slot_free(p, true) || wp__state(p) != WP__RUNNING) {
                wp__event_cancel(&p->back_ev);
                continue;
            }
            wp__event_wait(&p->back_ev, key, WP__NO_DEADLINE);
        }
        /* Shutting down: the task finishes whatever the count says (the
           slots no longer matter). */
    }
    atomic_fetch_sub_explicit(&p->nback, 1, memory_order_seq_cst);
    /* Slots may be left that spares were kept from. */
    if (slot_free(p, false)) grow(p);
}

void wp_blocking_end(void)
{
    wp__worker *w = wp__self();
    if (!w || w->hint_depth == 0 || --w->hint_depth > 0) return;
    wp_pool *p = w->pool;
    atomic_fetch_sub_explicit(&p->nhint, 1, memory_order_relaxed);
    if (p->elastic) {
        /* seq_cst: ordered before the check of holders below. */
        atomic_fetch_sub_explicit(&p->limit, 1, memory_order_seq_cst);
        /* Still `hinted` while it waits, so the monitor leaves it alone. */
        if (atomic_load_explicit(&p->holders, memory_order_seq_cst) >
            atomic_load_explicit(&p->limit, memory_order_seq_cst))
            wait_back(p);
    }
    atomic_store_explicit(&w->hinted, 0, memory_order_relaxed);
}
