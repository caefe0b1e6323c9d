/*
 * openloop.c: wpool_openloop, the open-loop half of `make bench-load`.
 *
 * Jobs arrive at a fixed mean rate whatever the pool does (Poisson arrivals:
 * exponential gaps), as requests reach a server from many independent
 * clients. Each job's sojourn is measured from its *scheduled* arrival, not
 * from when the generator got round to submitting it: a generator held up by
 * a full queue (WP_FULL_BLOCK) or a slow pthread_create charges that delay to
 * the row (no coordinated omission). Arrivals still unsubmitted 100 ms
 * after the phase ends, and jobs still unfinished when the drain time runs
 * out, are counted with a lower bound of their sojourn (`unsent`,
 * `undrained`: the table's "late" jobs).
 *
 *   wpool_openloop --capacity [OPTS]       jobs/s of WorkerPool/block with
 *                                          the generator submitting flat out
 *   wpool_openloop --row NAME --rate R [OPTS]
 *   wpool_openloop --list
 *
 * OPTS: --seconds S (5) --work K (100) --workers N (0: wp_cpu_count())
 *       --queue Q (1024) --window S (1) --drain S (= --seconds)
 *       --max-rss-mb M (4096: the generator stops once VmRSS passes it)
 *
 * Rows: WorkerPool/reject (WP_FULL_REJECT: a full queue sheds the job),
 * WorkerPool/block (WP_FULL_BLOCK: the generator waits), UnboundedThreads
 * (a detached pthread per job) and, when built with Debian's
 * cthreadpool-dev, CThreadPool (an unbounded list). bench/load/go/openloop
 * is the same generator in Go for the Go rows; bench/load/run.sh runs every
 * (row, rate) in its own process, so the peak RSS printed is that row's.
 *
 * A job is K seed jobs (harness.h: SHA-256 of "payload-n") back to back on
 * one thread; K = 100 is 12-20 us here, about the example server's
 * default request.
 *
 * Output: one RESULT line, then one WINDOW line per window of arrival time
 * (the p99 of the jobs that arrived in it and the largest VmRSS sampled
 * during it), key=value fields, times in microseconds.
 *
 * Threads. The generator (main thread) owns the arrival clock, its lag
 * histogram and the counts submitted/shed/unsent. Jobs run on the row's
 * threads and add to sharded histograms with relaxed atomics: statistics,
 * read by the main thread after the drain, which it sees through the same
 * relaxed per-shard `done` counts (a job whose count is not seen yet only
 * counts as undrained). The sampler thread owns the RSS samples; they are read after
 * it is joined. `stop` (relaxed) tells the generator the RSS cap was hit.
 */
#include "harness.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#ifdef WPOOL_LOAD_HAVE_CTHREADPOOL
#include "thpool.h"
#endif
#include "wpool.h"

/* ------------------------------------------------------------ histogram -- */

/* Log-linear buckets: values below 32 ns exact, then 32 per power of two
   (3% wide), up to 2^40 ns (18 minutes). */
#define SUB_BITS 5
#define SUB      (1u << SUB_BITS)
#define MAX_EXP  40
#define NBUCKETS (SUB + (MAX_EXP - SUB_BITS + 1) * SUB)
#define NWIN     64 /* windows of arrival time; later arrivals go to the last */
#define NSHARDS  8

static unsigned bucket_of(uint64_t v)
{
    if (v < SUB) return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);
    if (e > MAX_EXP) return NBUCKETS - 1;
    return SUB + (e - SUB_BITS) * SUB + (unsigned)((v >> (e - SUB_BITS)) - SUB);
}

/* The middle of bucket b, in ns. */
static double bucket_mid(unsigned b)
{
    if (b < SUB) return b;
    unsigned e = (b - SUB) / SUB + SUB_BITS, m = (b - SUB) % SUB;
    double lo = (double)((uint64_t)(SUB + m) << (e - SUB_BITS));
    return lo + (double)((uint64_t)1 << (e - SUB_BITS)) / 2;
}

typedef uint64_t hist[NBUCKETS];

struct shard {
    _Alignas(64) _Atomic uint64_t done; /* jobs finished (relaxed: see top) */
    _Atomic uint64_t h[NWIN][NBUCKETS]; /* [arrival window][bucket] */
};

static struct shard shards[NSHARDS]; /* untouched pages cost no RSS */
static _Atomic unsigned next_shard;  /* relaxed: hands out shard numbers */
static _Thread_local struct shard *my_shard;

static struct shard *shard_get(void)
{
    if (my_shard == NULL)
        my_shard =
            &shards[atomic_fetch_add_explicit(&next_shard, 1, memory_order_relaxed) % NSHARDS];
    return my_shard;
}

static unsigned window_of(uint64_t t_ns);

/* Counts one sojourn of sched..now (or a lower bound) in the window of sched. */
static void hist_add(struct shard *s, uint64_t sched, uint64_t sojourn)
{
    /* relaxed: a statistic, read after the drain (see top) */
    atomic_fetch_add_explicit(&s->h[window_of(sched)][bucket_of(sojourn)], 1, memory_order_relaxed);
}

/* Value (ns) at quantile q of h, which holds n values; 0 when empty. */
static double hist_quantile(const hist h, uint64_t n, double q)
{
    if (n == 0) return 0;
    uint64_t rank = (uint64_t)ceil(q * (double)n), seen = 0;
    if (rank < 1) rank = 1;
    for (unsigned b = 0; b < NBUCKETS; b++)
        if ((seen += h[b]) >= rank) return bucket_mid(b);
    return bucket_mid(NBUCKETS - 1);
}

static uint64_t hist_merge(hist out, int w) /* w < 0: every window */
{
    uint64_t n = 0;
    memset(out, 0, sizeof(hist));
    for (int s = 0; s < NSHARDS; s++)
        for (int i = w < 0 ? 0 : w; i < (w < 0 ? NWIN : w + 1); i++)
            for (unsigned b = 0; b < NBUCKETS; b++) {
                uint64_t c = atomic_load_explicit(&shards[s].h[i][b], memory_order_relaxed);
                out[b] += c;
                n += c;
            }
    return n;
}

/* -------------------------------------------------------------- options -- */

static double opt_seconds = 5, opt_window = 1, opt_drain = -1, opt_rate;
static unsigned opt_work = 100, opt_workers, opt_queue = 1024;
static long opt_max_rss_mb = 4096;
static const char *opt_row;
static uint64_t window_ns;

static unsigned window_of(uint64_t t_ns)
{
    uint64_t w = t_ns / window_ns;
    return w < NWIN ? (unsigned)w : NWIN - 1;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t t0; /* the phase's start; written before any job exists */

/* ------------------------------------------------------------------ job -- */

/* arg: the scheduled arrival, in ns after t0. */
static void job(void *arg)
{
    uint64_t sched = (uint64_t)(uintptr_t)arg;
    size_t n = (size_t)(sched / 64 % SEED_JOBS);
    for (unsigned i = 0; i < opt_work; i++) seed_job(n + i, NULL);
    uint64_t now = now_ns() - t0;
    struct shard *s = shard_get();
    hist_add(s, sched, now > sched ? now - sched : 0);
    atomic_fetch_add_explicit(&s->done, 1, memory_order_relaxed); /* stat: see top */
}

static uint64_t jobs_done(void)
{
    uint64_t n = 0;
    for (int s = 0; s < NSHARDS; s++)
        n += atomic_load_explicit(&shards[s].done, memory_order_relaxed);
    return n;
}

/* ----------------------------------------------------------------- rows -- */

/* submit: 0 admitted, EAGAIN shed, anything else fails the run. */
struct row {
    const char *name;
    int (*setup)(void);
    int (*submit)(uint64_t sched);
    unsigned (*threads)(void);
    void (*teardown)(void); /* only once every job is done */
};

static wp_pool *pool;

static int pool_setup(int policy)
{
    wp_config cfg;
    wp_config_init(&cfg);
    cfg.workers = opt_workers;
    cfg.queue_capacity = opt_queue;
    cfg.full_policy = policy;
    cfg.name = "load";
    return wp_pool_create(&pool, &cfg);
}

static int reject_setup(void)
{
    return pool_setup(WP_FULL_REJECT);
}

static int block_setup(void)
{
    return pool_setup(WP_FULL_BLOCK);
}

static int pool_submit(uint64_t sched)
{
    return wp_submit(pool, job, (void *)(uintptr_t)sched);
}

static unsigned pool_threads(void)
{
    return wp_pool_workers(pool);
}

static void pool_teardown(void)
{
    wp_pool_destroy(pool);
}

static pthread_attr_t detached;

static void *thread_main(void *arg)
{
    job(arg);
    return NULL;
}

static int threads_setup(void)
{
    pthread_attr_init(&detached);
    return pthread_attr_setdetachstate(&detached, PTHREAD_CREATE_DETACHED);
}

/* A thread that cannot be made (EAGAIN: a limit reached) sheds its job. */
static int threads_submit(uint64_t sched)
{
    pthread_t t;
    int e = pthread_create(&t, &detached, thread_main, (void *)(uintptr_t)sched);
    return e == ENOMEM ? EAGAIN : e;
}

static unsigned one_per_job(void)
{
    return 0; /* shown as "per job" */
}

#ifdef WPOOL_LOAD_HAVE_CTHREADPOOL
static threadpool tp;

static int ctp_setup(void)
{
    tp = thpool_init((int)(opt_workers ? opt_workers : wp_cpu_count()));
    return tp == NULL ? ENOMEM : 0;
}

static int ctp_submit(uint64_t sched)
{
    return thpool_add_work(tp, job, (void *)(uintptr_t)sched) == 0 ? 0 : ENOMEM;
}

static unsigned ctp_threads(void)
{
    return opt_workers ? opt_workers : wp_cpu_count();
}

static void ctp_teardown(void)
{
    thpool_destroy(tp);
}
#endif

static const struct row rows[] = {
    {"WorkerPool/reject", reject_setup, pool_submit, pool_threads, pool_teardown},
    {"WorkerPool/block", block_setup, pool_submit, pool_threads, pool_teardown},
    {"UnboundedThreads", threads_setup, threads_submit, one_per_job, NULL},
#ifdef WPOOL_LOAD_HAVE_CTHREADPOOL
    {"CThreadPool", ctp_setup, ctp_submit, ctp_threads, ctp_teardown},
#endif
};

/* -------------------------------------------------------------- sampler -- */

static _Atomic int stop;         /* relaxed: the RSS cap was hit */
static _Atomic int sampler_done; /* relaxed: polled every sample */
static long win_rss_kb[NWIN];    /* owned by the sampler until joined */

static long rss_kb_now(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL) return 0;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static long hwm_kb(void)
{
    char line[256];
    long kb = 0;
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) kb = strtol(line + 6, NULL, 10);
    if (f) fclose(f);
    return kb;
}

/* Every 100 ms: VmRSS into the window of wall time it falls in. */
static void *sampler(void *arg)
{
    (void)arg;
    for (uint64_t k = 1; !atomic_load_explicit(&sampler_done, memory_order_relaxed); k++) {
        uint64_t at = t0 + k * 100000000u;
        struct timespec ts = {(time_t)(at / 1000000000u), (long)(at % 1000000000u)};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
        }
        long kb = rss_kb_now();
        unsigned w = window_of(now_ns() - t0);
        if (kb > win_rss_kb[w]) win_rss_kb[w] = kb;
        if (kb / 1024 > opt_max_rss_mb) atomic_store_explicit(&stop, 1, memory_order_relaxed);
    }
    return NULL;
}

/* ------------------------------------------------------------ generator -- */

static uint64_t rng = 0x9e3779b97f4a7c15u;

/* An exponential gap of mean `mean` (splitmix64 to a uniform in (0, 1]). */
static double expo(double mean)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    z ^= z >> 31;
    double u = ((double)(z >> 11) + 1.0) * 0x1p-53;
    return -log(u) * mean;
}

struct counts {
    uint64_t scheduled, admitted, shed, unsent, undrained;
    hist lag; /* submit time - scheduled arrival, the generator's own delay */
};

static void sleep_until(uint64_t at)
{
    struct timespec ts = {(time_t)(at / 1000000000u), (long)(at % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

/* Submits Poisson arrivals of mean rate `rate` (per s; 0: flat out, each
   job due at once) for `seconds`, then counts what was never submitted.
   Arrivals due before the end may still be submitted up to GRACE_NS after
   it, so that a sleep that overshoots the end does not count as late. */
#define GRACE_NS 100000000u
static void generate(const struct row *r, double rate, double seconds, struct counts *c)
{
    double mean = rate > 0 ? 1e9 / rate : 0, sched = expo(mean);
    uint64_t end = (uint64_t)(seconds * 1e9), now = 0;
    uint64_t stop_at = end + (rate > 0 ? GRACE_NS : 0);
    while (sched < (double)end && now < stop_at &&
           !atomic_load_explicit(&stop, memory_order_relaxed)) {
        now = now_ns() - t0;
        if (sched > (double)now) {
            /* Sleep to 1 us before the next arrival (the timer slack is
               1 ns); spin when it is under 2 us away, less than a sleep. */
            if (sched - (double)now > 2000) sleep_until(t0 + (uint64_t)sched - 1000);
            continue;
        }
        /* Every arrival due by now, the clock read before each submit: the
           lag is exact, and a generator far behind stops at stop_at. */
        while (sched <= (double)now && sched < (double)end) {
            uint64_t s = (uint64_t)sched;
            now = now_ns() - t0;
            if (now >= stop_at || atomic_load_explicit(&stop, memory_order_relaxed)) break;
            c->lag[bucket_of(now - s)]++;
            c->scheduled++;
            int e = r->submit(s);
            if (e == 0)
                c->admitted++;
            else if (e == EAGAIN)
                c->shed++;
            else
                bench_fail("%s: submit: error %d", r->name, e);
            sched += expo(mean);
        }
    }
    /* Arrivals due before the end that the generator never got to: each has
       waited at least from its arrival until the generator stopped. */
    uint64_t stopped = now_ns() - t0;
    if (stopped < end) stopped = end;
    struct shard *s = shard_get();
    while (rate > 0 && sched < (double)end) {
        hist_add(s, (uint64_t)sched, stopped - (uint64_t)sched);
        c->scheduled++;
        c->unsent++;
        sched += expo(mean);
    }
}

/* Waits up to drain_s for the admitted jobs; counts the rest with the lower
   bound of their sojourn. Returns nonzero when all were done. */
static int drain(struct counts *c, double drain_s, uint64_t end)
{
    uint64_t deadline = now_ns() + (uint64_t)(drain_s * 1e9);
    while (jobs_done() < c->admitted && now_ns() < deadline) usleep(1000);
    uint64_t done = jobs_done();
    if (done >= c->admitted) return 1;
    c->undrained = c->admitted - done;
    uint64_t waited = now_ns() - t0 - end;
    struct shard *s = shard_get();
    atomic_fetch_add_explicit(&s->h[window_of(end - 1)][bucket_of(waited)], c->undrained,
                              memory_order_relaxed); /* main thread's own shard */
    return 0;
}

static const struct row *find_row(const char *name)
{
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (strcmp(rows[i].name, name) == 0) return &rows[i];
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: wpool_openloop --list | --capacity [OPTS] | --row NAME --rate R "
                    "[OPTS]\n(see the top of bench/load/openloop.c)\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int capacity = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--list") == 0) {
            for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) puts(rows[k].name);
            return 0;
        }
        if (strcmp(a, "--capacity") == 0) {
            capacity = 1;
            continue;
        }
        if (v == NULL) usage();
        i++;
        if (strcmp(a, "--row") == 0)
            opt_row = v;
        else if (strcmp(a, "--rate") == 0)
            opt_rate = strtod(v, NULL);
        else if (strcmp(a, "--seconds") == 0)
            opt_seconds = strtod(v, NULL);
        else if (strcmp(a, "--work") == 0)
            opt_work = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--workers") == 0)
            opt_workers = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--queue") == 0)
            opt_queue = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--window") == 0)
            opt_window = strtod(v, NULL);
        else if (strcmp(a, "--drain") == 0)
            opt_drain = strtod(v, NULL);
        else if (strcmp(a, "--max-rss-mb") == 0)
            opt_max_rss_mb = strtol(v, NULL, 10);
        else
            usage();
    }
    if (!(opt_seconds > 0) || !(opt_window > 0) || opt_work == 0 || opt_queue == 0) usage();
    if (opt_drain < 0) opt_drain = opt_seconds;
    window_ns = (uint64_t)(opt_window * 1e9);
    const struct row *r =
        capacity ? find_row("WorkerPool/block") : find_row(opt_row ? opt_row : "");
    if (r == NULL) {
        fprintf(stderr, "wpool_openloop: no row %s (--list)\n", opt_row ? opt_row : "");
        return 2;
    }
    if (!capacity && !(opt_rate > 0)) usage();
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL); /* sleeps end on time */
    int e = r->setup();
    if (e != 0) bench_fail("%s: setup: error %d", r->name, e);

    static struct counts c;
    pthread_t smp;
    t0 = now_ns();
    if (pthread_create(&smp, NULL, sampler, NULL) != 0) bench_fail("pthread_create failed");
    uint64_t end = (uint64_t)(opt_seconds * 1e9);
    generate(r, capacity ? 0 : opt_rate, opt_seconds, &c);
    int drained = drain(&c, opt_drain, end);
    double elapsed = (double)(now_ns() - t0) * 1e-9;
    atomic_store_explicit(&sampler_done, 1, memory_order_relaxed);
    pthread_join(smp, NULL);
    long peak_kb = hwm_kb(); /* before the report reads every histogram page */

    if (capacity) {
        printf("CAPACITY jobs_per_s=%.0f jobs=%llu seconds=%.3f work=%u workers=%u "
               "drained=%d\n",
               (double)jobs_done() / elapsed, (unsigned long long)jobs_done(), elapsed, opt_work,
               r->threads(), drained);
    } else {
        static hist h;
        uint64_t n = hist_merge(h, -1);
        uint64_t lag_n = c.scheduled - c.unsent;
        printf("RESULT row=%s rate=%.0f work=%u threads=%u queue=%u seconds=%g "
               "scheduled=%llu admitted=%llu shed=%llu unsent=%llu undrained=%llu "
               "p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f lag_p99_us=%.1f "
               "hwm_kb=%ld stopped=%s\n",
               r->name, opt_rate, opt_work, r->threads(), opt_queue, opt_seconds,
               (unsigned long long)c.scheduled, (unsigned long long)c.admitted,
               (unsigned long long)c.shed, (unsigned long long)c.unsent,
               (unsigned long long)c.undrained, hist_quantile(h, n, 0.50) / 1e3,
               hist_quantile(h, n, 0.99) / 1e3, hist_quantile(h, n, 0.999) / 1e3,
               hist_quantile(h, n, 1.0) / 1e3, hist_quantile(c.lag, lag_n, 0.99) / 1e3, peak_kb,
               atomic_load_explicit(&stop, memory_order_relaxed) ? "rss-cap" : "no");
        unsigned nwin = (unsigned)ceil(opt_seconds / opt_window);
        if (nwin > NWIN) nwin = NWIN;
        for (unsigned w = 0; w < nwin; w++) {
            uint64_t wn = hist_merge(h, (int)w);
            printf("WINDOW row=%s rate=%.0f i=%u t_s=%g count=%llu p50_us=%.1f p99_us=%.1f "
                   "rss_kb=%ld\n",
                   r->name, opt_rate, w, (w + 1) * opt_window, (unsigned long long)wn,
                   hist_quantile(h, wn, 0.50) / 1e3, hist_quantile(h, wn, 0.99) / 1e3,
                   win_rss_kb[w]);
        }
    }
    fflush(stdout);
    /* Jobs still queued or running: leave without waiting for them. */
    if (!drained) _exit(0);
    if (r->teardown) r->teardown();
    return 0;
}
