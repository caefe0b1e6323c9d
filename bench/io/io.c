/*
 * io.c: wpool_io, the C half of `make bench-io` (bench/io/run.sh): tasks
 * that block in the kernel, then hash.
 *
 * Tasks. Shape A: poll() on the thread's timerfd armed for --wait-us (1 ms:
 * a real kernel sleep, the thread in state S), then --reps seed jobs back to
 * back (SHA-256 of "payload-n" on a stack SHA256_CTX, as harness.c's
 * default; --calibrate prints the reps that make ~50 us). Shape B: one seed
 * job. Shape C: A for --phase-ms, then B, alternating, the kind fixed at
 * submit time. Shape idle: CPU used over 1 s by the idle pool, fresh and
 * after 300 ms of A.
 *
 * Rows (--row): wpool (fixed, --workers N), adaptive (workers = --workers or
 * wp_cpu_count(), max_workers = --max-workers, defaults otherwise, no hints),
 * hints (the same, wp_blocking_begin/end around the poll), thread (a
 * detached pthread per task), glib (GThreadPool, --workers max_threads,
 * shared threads) and uv (uv_queue_work, libuv's default pool) where built.
 *
 * One producer (the main thread; libuv's loop thread for uv) keeps at most
 * --inflight tasks queued: wpool's queue_capacity with WP_FULL_BLOCK; a
 * semaphore for thread and glib; that many requests resubmitted from
 * after_work for uv. It stops at --seconds; what is queued then is
 * discarded (wpool, glib) or drained (thread, uv); C drains and then, for an
 * elastic pool, waits for stats.threads to come back to `workers`.
 *
 * Output (key=value): a SAMPLE line every --sample-ms (cumulative finished
 * tasks, threads: stats.threads for wpool, every thread of the process for
 * the peers), then one RESULT line. bench/io/analyze.awk makes the rates.
 *
 * Threads. Finished tasks count into per-thread shards (relaxed adds, read
 * by the sampler: a statistic; the final counts are read after the row's
 * own join, wp_pool_shutdown or semaphore, which orders them). `running`
 * counts tasks inside their CPU part and `max_running` keeps its peak
 * (relaxed: only the count matters, not what it orders). The sampler owns
 * the sample array until it is joined.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <openssl/sha.h>

#ifdef WPOOL_IO_HAVE_GLIB
#include <glib.h>
#endif
#ifdef WPOOL_IO_HAVE_UV
#include <uv.h>
#endif
#include "wpool.h"

/* --------------------------------------------------------------- options -- */

static const char *row = "adaptive";
static char shape = 'A';
static unsigned workers;           /* 0: the row's default */
static unsigned max_workers = 512; /* adaptive, hints */
static uint64_t idle_timeout_ms;   /* 0: the library's default */
static double seconds = 3;
static uint64_t phase_ms = 2000;
static unsigned reps;
static uint64_t wait_ns = 1000000;
static unsigned inflight = 1024;
static uint64_t sample_ms = 10;

static _Noreturn void fail(const char *what, int e)
{
    fprintf(stderr, "wpool_io: %s: %s\n", what, strerror(e));
    exit(3);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t t)
{
    struct timespec ts = {(time_t)(t / 1000000000u), (long)(t % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static double cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru); /* every thread of the process, the monitor too */
    return ru.ru_utime.tv_sec * 1e3 + ru.ru_utime.tv_usec / 1e3 + ru.ru_stime.tv_sec * 1e3 +
           ru.ru_stime.tv_usec / 1e3;
}

/* -------------------------------------------------------------- counting -- */

#define SHARDS 64

struct shard {
    _Alignas(64) _Atomic uint64_t done; /* tasks finished */
    _Atomic uint64_t sink;              /* digests xor-ed, so nothing is elided */
};

static struct shard shards[SHARDS];
static _Atomic unsigned next_shard; /* relaxed: hands out distinct-ish shards */
static _Thread_local struct shard *my_shard;
static _Alignas(64) _Atomic int running; /* tasks in their CPU part now */
static _Atomic int max_running;          /* its peak */

static uint64_t done_now(void)
{
    uint64_t n = 0;
    for (int i = 0; i < SHARDS; i++)
        n += atomic_load_explicit(&shards[i].done, memory_order_relaxed); /* relaxed: stat */
    return n;
}

/* ---------------------------------------------------------------- a task -- */

/* The seed job: SHA-256 of "payload-n", its first 8 bytes. */
static uint64_t seed_hash(uint64_t n)
{
    char buf[32];
    unsigned char md[SHA256_DIGEST_LENGTH];
    int len = snprintf(buf, sizeof buf, "payload-%llu", (unsigned long long)n);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, buf, (size_t)len);
    SHA256_Final(md, &c);
#pragma GCC diagnostic pop
    uint64_t v;
    memcpy(&v, md, sizeof v);
    return v;
}

/* Each thread's timerfd, made on first use and closed when the thread exits
   (an elastic pool's threads come and go). */
static pthread_key_t tfd_key;
static _Thread_local int tfd = -1;

static void tfd_close(void *v)
{
    close((int)(intptr_t)v - 1);
}

static void block_in_kernel(int hint)
{
    if (tfd < 0) {
        tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
        if (tfd < 0) fail("timerfd_create", errno);
        pthread_setspecific(tfd_key, (void *)(intptr_t)(tfd + 1));
    }
    /* Arming it again clears the last expiry, so no read is needed. */
    struct itimerspec its = {{0, 0},
                             {(time_t)(wait_ns / 1000000000u), (long)(wait_ns % 1000000000u)}};
    if (timerfd_settime(tfd, 0, &its, NULL) != 0) fail("timerfd_settime", errno);
    struct pollfd pfd = {tfd, POLLIN, 0};
    if (hint) wp_blocking_begin();
    while (poll(&pfd, 1, -1) < 0 && errno == EINTR) {
    }
    if (hint) wp_blocking_end();
}

/* A task's argument: n << 1 | 1 for A, n << 1 for B; n from 1, never 0
   (GLib queues no NULL). */
static void run_task(uintptr_t arg, int hint)
{
    uint64_t n = arg >> 1, v = 0;
    if (arg & 1) block_in_kernel(hint);
    /* relaxed: a count; its peak is all we read */
    int r = atomic_fetch_add_explicit(&running, 1, memory_order_relaxed) + 1;
    int m = atomic_load_explicit(&max_running, memory_order_relaxed);
    while (r > m && !atomic_compare_exchange_weak_explicit(
                        &max_running, &m, r, memory_order_relaxed, memory_order_relaxed)) {
    }
    if (arg & 1)
        for (unsigned i = 0; i < reps; i++) v ^= seed_hash(n * reps + i);
    else
        v = seed_hash(n);
    atomic_fetch_sub_explicit(&running, 1, memory_order_relaxed);
    struct shard *s = my_shard;
    if (!s) {
        s = &shards[atomic_fetch_add_explicit(&next_shard, 1, memory_order_relaxed) % SHARDS];
        my_shard = s;
    }
    /* relaxed: statistics (see the top) */
    atomic_fetch_xor_explicit(&s->sink, v, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->done, 1, memory_order_relaxed);
}

static uint64_t t0, deadline; /* set before the producer starts */
static uint64_t submitted;    /* producer only */

/* The next task's argument, by the shape and the time. */
static uintptr_t next_arg(uint64_t now)
{
    submitted++;
    int a = shape == 'A' || shape == 'I' ||
            (shape == 'C' && ((now - t0) / (phase_ms * 1000000u)) % 2 == 0);
    return (uintptr_t)(submitted << 1 | (unsigned)a);
}

/* ------------------------------------------------------------------ rows -- */

struct runner {
    const char *name;
    void (*setup)(void);
    void (*produce)(void);               /* until the deadline */
    void (*finish)(uint64_t *discarded); /* stops the row; nothing runs after */
    unsigned (*threads)(void);           /* for the samples */
};

static unsigned os_threads(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[128];
    unsigned n = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %u", &n) == 1) break;
    if (f) fclose(f);
    return n;
}

/* Submits until the deadline, checking the clock every 64 B tasks and
   before every A task. */
static void produce_loop(void (*submit)(uintptr_t))
{
    uint64_t now = now_ns();
    for (unsigned i = 0; now < deadline; i++) {
        uintptr_t a = next_arg(now);
        submit(a);
        if ((a & 1) || i % 64 == 0) now = now_ns();
    }
}

/* ----- wpool */

static wp_pool *pool;
static int elastic, hints;
static _Atomic uint64_t discards; /* relaxed: read after the shutdown */

static void wp_task(void *arg)
{
    run_task((uintptr_t)arg, hints);
}

static void on_discard(wp_task_fn fn, void *arg, void *user)
{
    (void)fn, (void)arg, (void)user;
    atomic_fetch_add_explicit(&discards, 1, memory_order_relaxed);
}

static void wpool_setup(void)
{
    elastic = strcmp(row, "wpool") != 0;
    hints = strcmp(row, "hints") == 0;
    wp_config cfg;
    wp_config_init(&cfg);
    cfg.workers = workers ? workers : elastic ? wp_cpu_count() : 1;
    cfg.max_workers = elastic ? max_workers : 0;
    cfg.idle_timeout_ns = idle_timeout_ms * 1000000u;
    cfg.queue_capacity = inflight;
    cfg.name = "io";
    cfg.on_discard = on_discard;
    int e = wp_pool_create(&pool, &cfg);
    if (e) fail("wp_pool_create", e);
    workers = cfg.workers;
}

static void wpool_submit(uintptr_t a)
{
    int e = wp_submit(pool, wp_task, (void *)a);
    if (e) fail("wp_submit", e);
}

static void wpool_produce(void)
{
    produce_loop(wpool_submit);
}

static void wpool_finish(uint64_t *discarded)
{
    int e = wp_pool_shutdown(pool, WP_DISCARD);
    if (e) fail("wp_pool_shutdown", e);
    *discarded = atomic_load_explicit(&discards, memory_order_relaxed);
}

static unsigned wpool_threads(void)
{
    wp_stats st;
    wp_pool_stats(pool, &st);
    return st.threads;
}

/* ----- a thread per task, at most `inflight` at once */

static sem_t slots;
static pthread_attr_t detached;

static void *thread_main(void *arg)
{
    run_task((uintptr_t)arg, 0);
    sem_post(&slots);
    return NULL;
}

static void thread_setup(void)
{
    if (sem_init(&slots, 0, inflight) != 0) fail("sem_init", errno);
    pthread_attr_init(&detached);
    pthread_attr_setdetachstate(&detached, PTHREAD_CREATE_DETACHED);
    workers = 0;
}

static void thread_submit(uintptr_t a)
{
    while (sem_wait(&slots) != 0) {
    }
    pthread_t t;
    int e = pthread_create(&t, &detached, thread_main, (void *)a);
    if (e) fail("pthread_create", e);
}

static void thread_produce(void)
{
    produce_loop(thread_submit);
}

/* Waits for every slot: then every task has run. */
static void slots_drain(void)
{
    for (unsigned i = 0; i < inflight; i++)
        while (sem_wait(&slots) != 0) {
        }
}

static void thread_finish(uint64_t *discarded)
{
    slots_drain();
    *discarded = 0;
}

/* ----- GThreadPool, shared threads, at most `inflight` queued and running */

#ifdef WPOOL_IO_HAVE_GLIB
static GThreadPool *gpool;

static void glib_task(gpointer data, gpointer user)
{
    (void)user;
    run_task((uintptr_t)data, 0);
    sem_post(&slots);
}

static void glib_setup(void)
{
    if (sem_init(&slots, 0, inflight) != 0) fail("sem_init", errno);
    if (!workers) workers = 42;
    GError *err = NULL;
    gpool = g_thread_pool_new(glib_task, NULL, (gint)workers, FALSE, &err);
    if (!gpool) fail(err ? err->message : "g_thread_pool_new", EINVAL);
}

static void glib_submit(uintptr_t a)
{
    while (sem_wait(&slots) != 0) {
    }
    g_thread_pool_push(gpool, (gpointer)a, NULL);
}

static void glib_produce(void)
{
    produce_loop(glib_submit);
}

static void glib_finish(uint64_t *discarded)
{
    g_thread_pool_free(gpool, TRUE, TRUE); /* drops what is queued, waits for the rest */
    gpool = NULL;
    *discarded = submitted - done_now();
}

static unsigned glib_threads(void)
{
    GThreadPool *g = gpool;
    return g ? g_thread_pool_get_num_threads(g) : 0;
}
#endif

/* ----- libuv's uv_queue_work: `inflight` requests, each resubmitted from
   after_work on the loop thread until the deadline */

#ifdef WPOOL_IO_HAVE_UV
static uv_loop_t *loop;
static uv_work_t *reqs;

static void uv_work(uv_work_t *req)
{
    run_task((uintptr_t)req->data, 0);
}

static void uv_after(uv_work_t *req, int status);

static void uv_submit(uv_work_t *req, uint64_t now)
{
    req->data = (void *)next_arg(now);
    int e = uv_queue_work(loop, req, uv_work, uv_after);
    if (e) fail("uv_queue_work", -e);
}

static void uv_after(uv_work_t *req, int status)
{
    if (status) fail("uv work", -status);
    uint64_t now = now_ns();
    if (now < deadline) uv_submit(req, now);
}

static void uv_setup(void)
{
    loop = uv_default_loop();
    reqs = calloc(inflight, sizeof *reqs);
    if (!reqs) fail("calloc", ENOMEM);
    workers = 4; /* libuv's default (UV_THREADPOOL_SIZE unset) */
    const char *s = getenv("UV_THREADPOOL_SIZE");
    if (s) workers = (unsigned)atoi(s);
}

static void uv_produce(void)
{
    uint64_t now = now_ns();
    for (unsigned i = 0; i < inflight; i++) uv_submit(&reqs[i], now);
    uv_run(loop, UV_RUN_DEFAULT); /* until every request is done */
}

static void uv_finish(uint64_t *discarded)
{
    *discarded = 0;
}
#endif

static const struct runner runners[] = {
    {"wpool", wpool_setup, wpool_produce, wpool_finish, wpool_threads},
    {"adaptive", wpool_setup, wpool_produce, wpool_finish, wpool_threads},
    {"hints", wpool_setup, wpool_produce, wpool_finish, wpool_threads},
    {"thread", thread_setup, thread_produce, thread_finish, os_threads},
#ifdef WPOOL_IO_HAVE_GLIB
    {"glib", glib_setup, glib_produce, glib_finish, glib_threads},
#endif
#ifdef WPOOL_IO_HAVE_UV
    {"uv", uv_setup, uv_produce, uv_finish, os_threads},
#endif
};

/* --------------------------------------------------------------- sampler -- */

struct sample {
    uint64_t t, done;
    unsigned threads;
};

static struct sample *samples;
static size_t nsamples, maxsamples;
static const struct runner *cur;

static void *sampler(void *arg)
{
    (void)arg;
    for (size_t k = 0; k < maxsamples; k++) {
        uint64_t at = t0 + k * sample_ms * 1000000u;
        if (at > deadline) break;
        sleep_until(at);
        samples[k].t = now_ns() - t0;
        samples[k].done = done_now();
        samples[k].threads = cur->threads();
        nsamples = k + 1;
    }
    return NULL;
}

/* ----------------------------------------------------------- calibration -- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ns per seed job on this thread: the median of 25 rounds of 2000 jobs. */
static double seed_ns(void)
{
    double r[25];
    volatile uint64_t sink = 0;
    for (int k = 0; k < 25; k++) {
        uint64_t a = now_ns();
        for (unsigned i = 0; i < 2000; i++) sink ^= seed_hash(i);
        r[k] = (double)(now_ns() - a) / 2000;
    }
    qsort(r, 25, sizeof r[0], cmp_double);
    return r[12];
}

/* ------------------------------------------------------------------ main -- */

static void usage(void)
{
    fprintf(
        stderr,
        "usage: wpool_io --calibrate [--target-us 50] | --list |\n"
        "       wpool_io --row ROW --shape A|B|C|idle --reps N [--workers N] [--max-workers N]\n"
        "                [--seconds S] [--phase-ms MS] [--wait-us US] [--inflight N]\n"
        "                [--sample-ms MS] [--idle-timeout-ms MS]\n");
    exit(2);
}

/* The idle shape: CPU over 1 s of the fresh pool (200 ms after create), then
   100 ms after 300 ms of A. */
static void run_idle(void)
{
    sleep_until(now_ns() + 200000000u); /* the threads have started */
    double c0 = cpu_ms();
    sleep_until(now_ns() + 1000000000u);
    double fresh = cpu_ms() - c0;
    t0 = now_ns();
    deadline = t0 + 300000000u;
    cur->produce();
    int e = wp_wait(pool);
    if (e) fail("wp_wait", e);
    sleep_until(now_ns() + 100000000u);
    unsigned before = wpool_threads();
    c0 = cpu_ms();
    sleep_until(now_ns() + 1000000000u);
    double after = cpu_ms() - c0;
    uint64_t discarded;
    cur->finish(&discarded);
    printf("RESULT row=%s shape=idle workers=%u max_workers=%u idle_fresh_ms=%.3f "
           "idle_ms=%.3f idle_threads=%u submitted=%llu completed=%llu status=ok\n",
           row, workers, elastic ? max_workers : workers, fresh, after, before,
           (unsigned long long)submitted, (unsigned long long)done_now());
}

int main(int argc, char **argv)
{
    const char *shape_arg = "A";
    double target_us = 50;
    int calibrate = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--calibrate")) {
            calibrate = 1;
            continue;
        }
        if (!strcmp(a, "--list")) {
            for (size_t k = 0; k < sizeof runners / sizeof runners[0]; k++) puts(runners[k].name);
            return 0;
        }
        if (!v) usage();
        i++;
        if (!strcmp(a, "--row"))
            row = v;
        else if (!strcmp(a, "--shape"))
            shape_arg = v;
        else if (!strcmp(a, "--workers"))
            workers = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--max-workers"))
            max_workers = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--idle-timeout-ms"))
            idle_timeout_ms = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--seconds"))
            seconds = atof(v);
        else if (!strcmp(a, "--phase-ms"))
            phase_ms = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--reps"))
            reps = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--wait-us"))
            wait_ns = strtoull(v, NULL, 10) * 1000u;
        else if (!strcmp(a, "--inflight"))
            inflight = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--sample-ms"))
            sample_ms = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--target-us"))
            target_us = atof(v);
        else
            usage();
    }
    if (calibrate) {
        double ns = seed_ns();
        unsigned r = (unsigned)(target_us * 1000 / ns + 0.5);
        printf("CALIBRATE reps=%u ns_per_job=%.1f target_us=%.0f\n", r ? r : 1, ns, target_us);
        return 0;
    }
    shape = !strcmp(shape_arg, "idle") ? 'I' : shape_arg[0];
    if (!strchr("ABCI", shape) || !reps || !inflight || !sample_ms || !phase_ms || seconds <= 0)
        usage();
    for (size_t k = 0; k < sizeof runners / sizeof runners[0]; k++)
        if (!strcmp(runners[k].name, row)) cur = &runners[k];
    if (!cur) {
        fprintf(stderr, "wpool_io: no row %s in this build\n", row);
        return 2;
    }
    if (shape == 'I' && cur->threads != wpool_threads) usage();
    int e = pthread_key_create(&tfd_key, tfd_close);
    if (e) fail("pthread_key_create", e);
    cur->setup();
    if (shape == 'I') {
        run_idle();
        return 0;
    }
    maxsamples = (size_t)(seconds * 1000 / (double)sample_ms) + 2;
    samples = calloc(maxsamples, sizeof *samples);
    if (!samples) fail("calloc", ENOMEM);

    t0 = now_ns();
    deadline = t0 + (uint64_t)(seconds * 1e9);
    pthread_t smp;
    e = pthread_create(&smp, NULL, sampler, NULL);
    if (e) fail("pthread_create", e);
    cur->produce();
    pthread_join(smp, NULL);

    /* C, elastic: from the end of load until stats.threads is `workers`. */
    double back_ms = -1;
    if (shape == 'C' && elastic) {
        e = wp_wait(pool);
        if (e) fail("wp_wait", e);
        uint64_t limit = (idle_timeout_ms ? idle_timeout_ms : 5000) * 2 + 1000;
        for (;;) {
            uint64_t t = now_ns();
            if (wpool_threads() <= workers) {
                back_ms = (double)(t - deadline) / 1e6;
                break;
            }
            if (t - deadline > limit * 1000000u) break;
            sleep_until(t + 10000000u);
        }
    }
    unsigned threads_end = cur->threads();
    uint64_t discarded = 0;
    cur->finish(&discarded);
    uint64_t completed = done_now(), sink = 0;
    for (int i = 0; i < SHARDS; i++)
        sink ^= atomic_load_explicit(&shards[i].sink, memory_order_relaxed);

    for (size_t k = 0; k < nsamples; k++)
        printf("SAMPLE t_ms=%.3f jobs=%llu threads=%u\n", samples[k].t / 1e6,
               (unsigned long long)samples[k].done, samples[k].threads);
    const char *status = completed + discarded == submitted ? "ok" : "FAILED:lost-tasks";
    printf("RESULT row=%s shape=%c workers=%u max_workers=%u seconds=%g reps=%u submitted=%llu "
           "completed=%llu discarded=%llu max_cpu=%d threads_end=%u back_ms=%.1f sink=%llx "
           "status=%s\n",
           row, shape, workers, elastic ? max_workers : workers, seconds, reps,
           (unsigned long long)submitted, (unsigned long long)completed,
           (unsigned long long)discarded, atomic_load_explicit(&max_running, memory_order_relaxed),
           threads_end, back_ms, (unsigned long long)(sink & 0xffff), status);
    return status[0] == 'o' ? 0 : 4;
}
