/*
 * harness.c: the workload, the allocation counter and the child side of a
 * row (see harness.h for the protocol).
 *
 * Counters. Every malloc-family call adds its count and bytes to one of
 * SHARDS cache-line-sized shards, picked once per thread, with relaxed
 * atomic adds: a shared single counter would be a contended cache line in
 * every allocating peer and would slow exactly the rows it measures. Relaxed
 * is enough because the counters are only read by the main thread after the
 * op's own synchronisation (pthread_join, wp_wait, a barrier...) has ordered
 * every job's writes before the read; a read may also see an allocation a
 * worker makes after the op (none of the rows do), never miss one made
 * inside it. The same shards count finished jobs during a flood.
 */
#include "harness.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/sha.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------ allocation count -- */

void *__libc_malloc(size_t size);
void *__libc_calloc(size_t nmemb, size_t size);
void *__libc_realloc(void *ptr, size_t size);
void __libc_free(void *ptr);
void *__libc_memalign(size_t alignment, size_t size);
void *__libc_valloc(size_t size);
void *__libc_pvalloc(size_t size);

/* The definitions below replace glibc's for the whole process (libcrypto,
   libstdc++, libgomp... call them through the PLT), so they must be in the
   executable's dynamic symbol table even under -fvisibility=hidden. */
#define EXPORT __attribute__((visibility("default")))

#define SHARDS 64

struct shard {
    _Alignas(64) _Atomic uint64_t allocs;
    _Atomic uint64_t bytes;
    _Atomic uint64_t frees;
    _Atomic uint64_t jobs; /* jobs finished; only while counting_jobs */
};

static struct shard shards[SHARDS];
static _Atomic unsigned next_shard; /* relaxed: only hands out distinct-ish ids */
static _Thread_local struct shard *my_shard;

static struct shard *shard_get(void)
{
    struct shard *s = my_shard;
    if (s == NULL) {
        s = &shards[atomic_fetch_add_explicit(&next_shard, 1, memory_order_relaxed) % SHARDS];
        my_shard = s;
    }
    return s;
}

static void count_alloc(size_t size)
{
    struct shard *s = shard_get();
    /* relaxed: a statistic read after the op's synchronisation (see top) */
    atomic_fetch_add_explicit(&s->allocs, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->bytes, size, memory_order_relaxed);
}

EXPORT void *malloc(size_t size)
{
    count_alloc(size);
    return __libc_malloc(size);
}

EXPORT void *calloc(size_t nmemb, size_t size)
{
    size_t total;
    count_alloc(__builtin_mul_overflow(nmemb, size, &total) ? 0 : total);
    return __libc_calloc(nmemb, size);
}

EXPORT void *realloc(void *ptr, size_t size)
{
    if (size != 0 || ptr == NULL) count_alloc(size); /* realloc(p, 0) frees */
    return __libc_realloc(ptr, size);
}

EXPORT void free(void *ptr)
{
    if (ptr != NULL)
        atomic_fetch_add_explicit(&shard_get()->frees, 1, memory_order_relaxed); /* relaxed: stat */
    __libc_free(ptr);
}

EXPORT void *memalign(size_t alignment, size_t size)
{
    count_alloc(size);
    return __libc_memalign(alignment, size);
}

EXPORT void *aligned_alloc(size_t alignment, size_t size)
{
    count_alloc(size);
    return __libc_memalign(alignment, size);
}

EXPORT int posix_memalign(void **out, size_t alignment, size_t size)
{
    if (alignment == 0 || alignment % sizeof(void *) != 0 || (alignment & (alignment - 1)) != 0)
        return EINVAL;
    count_alloc(size);
    void *p = __libc_memalign(alignment, size);
    if (p == NULL) return ENOMEM;
    *out = p;
    return 0;
}

EXPORT void *valloc(size_t size)
{
    count_alloc(size);
    return __libc_valloc(size);
}

EXPORT void *pvalloc(size_t size)
{
    count_alloc(size);
    return __libc_pvalloc(size);
}

struct counts {
    uint64_t allocs, bytes, frees, jobs;
};

static struct counts counts_now(void)
{
    struct counts c = {0, 0, 0, 0};
    for (int i = 0; i < SHARDS; i++) {
        /* relaxed: see the top of the file */
        c.allocs += atomic_load_explicit(&shards[i].allocs, memory_order_relaxed);
        c.bytes += atomic_load_explicit(&shards[i].bytes, memory_order_relaxed);
        c.frees += atomic_load_explicit(&shards[i].frees, memory_order_relaxed);
        c.jobs += atomic_load_explicit(&shards[i].jobs, memory_order_relaxed);
    }
    return c;
}

/* -------------------------------------------------------------- workload -- */

static EVP_MD *seed_md;                     /* fetched once, before any thread */
static _Atomic uint64_t results[SEED_JOBS]; /* relaxed stores: see seed_job */
static uint64_t reference[SEED_JOBS];       /* the serial answer */
static _Atomic int hash_failed;             /* relaxed: read after the op */
static int counting_jobs;                   /* set before any worker starts */

void bench_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(3);
}

int seed_hash_evp(void)
{
    static int mode = -1; /* first read before any thread starts (seed_init) */
    if (mode < 0) {
        const char *h = getenv("WPOOL_BENCH_HASH");
        mode = h != NULL && strcmp(h, "evp") == 0;
    }
    return mode;
}

const char *seed_hash_desc(void)
{
    return seed_hash_evp()
               ? "EVP: EVP_MD fetched once, one EVP_MD_CTX per thread (wpool: made in "
                 "worker_start, found via wp_worker_id(); others: thread-local, made on first "
                 "use); OpenSSL 3.0's EVP_DigestInit allocates its context state on every call, "
                 "so every row, Serial too, pays 1 alloc per job"
               : "SHA256_Init/Update/Final on a stack SHA256_CTX (no lock, no allocation, the "
                 "same SHA-NI code as EVP; WPOOL_BENCH_HASH=evp for the EVP path)";
}

EVP_MD_CTX *seed_ctx_new(void)
{
    if (!seed_hash_evp()) return NULL; /* the stack SHA256_CTX needs nothing */
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL) bench_fail("EVP_MD_CTX_new failed");
    return ctx;
}

void seed_ctx_free(EVP_MD_CTX *ctx)
{
    EVP_MD_CTX_free(ctx);
}

/* The first 8 bytes of SHA-256(buf[0..len)); 0 and *ok = 0 on failure. */
static uint64_t hash8(const char *buf, size_t len, EVP_MD_CTX *ctx, int *ok)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    uint64_t v = 0;
    if (ctx != NULL) {
        unsigned int mdlen = 0;
        *ok = EVP_DigestInit_ex2(ctx, seed_md, NULL) && EVP_DigestUpdate(ctx, buf, len) &&
              EVP_DigestFinal_ex(ctx, md, &mdlen) && mdlen >= 8;
    } else {
        /* The low-level API is deprecated in OpenSSL 3 but still the
           fastest lock-free, allocation-free SHA-256 it offers. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
        SHA256_CTX c;
        *ok = SHA256_Init(&c) && SHA256_Update(&c, buf, len) && SHA256_Final(md, &c);
#pragma GCC diagnostic pop
    }
    if (*ok) memcpy(&v, md, sizeof v);
    return v;
}

void seed_job(size_t n, EVP_MD_CTX *ctx)
{
    char buf[32];
    int ok, len = snprintf(buf, sizeof buf, "payload-%zu", n);
    uint64_t v = hash8(buf, (size_t)len, ctx, &ok);
    if (!ok) {
        atomic_store_explicit(&hash_failed, 1, memory_order_relaxed); /* read after the op */
        return;
    }
    /* relaxed: within an op each slot has one writer and the op's own wait
       orders it before the check; during a flood several jobs share a slot
       and the atomic only keeps that race defined. A plain mov on x86. */
    atomic_store_explicit(&results[n < SEED_JOBS ? n : n % SEED_JOBS], v, memory_order_relaxed);
    if (counting_jobs)
        atomic_fetch_add_explicit(&shard_get()->jobs, 1, memory_order_relaxed); /* stat */
}

static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static _Thread_local EVP_MD_CTX *tls_ctx;

static void tls_ctx_free(void *ctx)
{
    EVP_MD_CTX_free(ctx);
}

static void tls_key_make(void)
{
    if (pthread_key_create(&tls_key, tls_ctx_free) != 0) bench_fail("pthread_key_create failed");
}

EVP_MD_CTX *seed_tls_ctx(void)
{
    EVP_MD_CTX *ctx = tls_ctx;
    if (ctx == NULL && seed_hash_evp()) {
        ctx = seed_ctx_new();
        pthread_once(&tls_once, tls_key_make);
        pthread_setspecific(tls_key, ctx); /* freed when the thread exits */
        tls_ctx = ctx;
    }
    return ctx;
}

void seed_job_tls(size_t n)
{
    seed_job(n, seed_tls_ctx());
}

static void seed_init(void)
{
    seed_hash_evp();
    seed_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (seed_md == NULL) bench_fail("EVP_MD_fetch(SHA256) failed");
    EVP_MD_CTX *ctx = seed_ctx_new();
    for (size_t i = 0; i < SEED_JOBS; i++) {
        seed_job(i, ctx);
        reference[i] = atomic_load_explicit(&results[i], memory_order_relaxed);
    }
    seed_ctx_free(ctx);
    if (atomic_load_explicit(&hash_failed, memory_order_relaxed)) bench_fail("SHA-256 failed");
}

static void results_clear(void)
{
    for (size_t i = 0; i < SEED_JOBS; i++)
        atomic_store_explicit(&results[i], 0, memory_order_relaxed); /* before the op starts */
}

/* Exits with status 4 unless every slot holds the serial answer. */
static void results_check(const char *row, const char *when)
{
    if (atomic_load_explicit(&hash_failed, memory_order_relaxed))
        bench_fail("%s: SHA-256 failed inside a job (%s)", row, when);
    for (size_t i = 0; i < SEED_JOBS; i++) {
        uint64_t got = atomic_load_explicit(&results[i], memory_order_relaxed);
        if (got != reference[i]) {
            fprintf(stderr,
                    "bench: %s: WRONG RESULT %s: job %zu gave %016llx, serial gave %016llx\n", row,
                    when, i, (unsigned long long)got, (unsigned long long)reference[i]);
            exit(4);
        }
    }
}

/* ------------------------------------------------------------ child side -- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t flood_deadline_ns;

int bench_flood_expired(void)
{
    return now_ns() >= flood_deadline_ns;
}

int bench_is_flood(void)
{
    return counting_jobs;
}

unsigned bench_affinity_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
    int n = CPU_COUNT(&set);
    return n > 0 ? (unsigned)n : 1;
}

/* Peak resident set of this process in KiB: VmHWM, else ru_maxrss. */
static long peak_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    if (f != NULL) {
        while (fgets(line, sizeof line, f) != NULL)
            if (sscanf(line, "VmHWM: %ld kB", &kb) == 1) break;
        fclose(f);
    }
    if (kb < 0) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        kb = ru.ru_maxrss;
    }
    return kb;
}

struct run {
    uint64_t n, ns;
    struct counts delta;
};

static struct run run_n(const bench_row *row, uint64_t n)
{
    struct run r = {.n = n};
    struct counts a = counts_now();
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) row->op();
    uint64_t t1 = now_ns();
    struct counts b = counts_now();
    r.ns = t1 - t0;
    r.delta.allocs = b.allocs - a.allocs;
    r.delta.bytes = b.bytes - a.bytes;
    r.delta.frees = b.frees - a.frees;
    return r;
}

/* Go's testing.predictN: aim 20% over the goal, grow at most 100x, at least 1. */
static uint64_t predict_n(uint64_t goal_ns, uint64_t prev_n, uint64_t prev_ns, uint64_t last)
{
    if (prev_ns == 0) prev_ns = 1;
    double n = (double)goal_ns * (double)prev_n / (double)prev_ns;
    n += n / 5;
    if (n > 100.0 * (double)last) n = 100.0 * (double)last;
    if (n < (double)last + 1) n = (double)last + 1;
    if (n > 1e9) n = 1e9;
    return (uint64_t)n;
}

int bench_is_child(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--list") == 0 || strcmp(argv[i], "--row") == 0) return 1;
    return 0;
}

static void usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s --list\n"
            "       %s --row NAME [--workers N] [--time SECONDS] [--iters N]\n"
            "       %s --row NAME --flood JOBS [--workers N] [--flood-max-s SECONDS]\n",
            prog, prog, prog);
}

int bench_child_main(int argc, char **argv, const bench_row *rows, size_t nrows)
{
    const char *name = NULL;
    unsigned workers = 0;
    double time_s = 1.0, flood_max_s = 30.0;
    uint64_t hint = 0, flood = 0;
    int list = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--list") == 0) {
            list = 1;
            continue;
        }
        if (v == NULL) {
            usage(argv[0]);
            return 2;
        }
        if (strcmp(a, "--row") == 0)
            name = v;
        else if (strcmp(a, "--workers") == 0)
            workers = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--time") == 0)
            time_s = strtod(v, NULL);
        else if (strcmp(a, "--iters") == 0)
            hint = strtoull(v, NULL, 10);
        else if (strcmp(a, "--flood") == 0)
            flood = strtoull(v, NULL, 10);
        else if (strcmp(a, "--flood-max-s") == 0)
            flood_max_s = strtod(v, NULL);
        else {
            usage(argv[0]);
            return 2;
        }
        i++;
    }
    if (list) {
        for (size_t i = 0; i < nrows; i++)
            printf("%s\t%d\t%d\n", rows[i].name, rows[i].uses_workers, rows[i].flood != NULL);
        return 0;
    }
    const bench_row *row = NULL;
    for (size_t i = 0; name != NULL && i < nrows; i++)
        if (strcmp(rows[i].name, name) == 0) row = &rows[i];
    if (row == NULL) {
        fprintf(stderr, "bench: no row named %s in %s\n", name ? name : "(none)", argv[0]);
        return 2;
    }
    if (flood > 0 && row->flood == NULL) {
        fprintf(stderr, "bench: row %s has no flood\n", row->name);
        return 2;
    }
    /* A hung pool must not hang the benchmark: SIGALRM kills the child and
       the runner reports the row as failed. */
    alarm((unsigned)(flood > 0 ? flood_max_s * 2 + 60 : time_s * 20 + 60));

    seed_init();
    counting_jobs = flood > 0; /* before setup starts any thread */
    if (row->setup != NULL && row->setup(workers) != 0) bench_fail("%s: setup failed", row->name);
    unsigned used = row->workers ? row->workers() : 0;

    if (flood > 0) {
        struct counts a = counts_now();
        uint64_t t0 = now_ns();
        flood_deadline_ns = t0 + (uint64_t)(flood_max_s * 1e9);
        uint64_t done = row->flood(flood);
        uint64_t t1 = now_ns();
        struct counts b = counts_now();
        if (b.jobs - a.jobs != done)
            bench_fail("%s: flood submitted %llu jobs but %llu ran", row->name,
                       (unsigned long long)done, (unsigned long long)(b.jobs - a.jobs));
        if (atomic_load_explicit(&hash_failed, memory_order_relaxed))
            bench_fail("%s: SHA-256 failed inside a job", row->name);
        printf("RESULT name=%s workers=%u jobs=%llu ns=%llu allocs=%llu bytes=%llu "
               "frees=%llu hwm_kb=%ld\n",
               row->name, used, (unsigned long long)done, (unsigned long long)(t1 - t0),
               (unsigned long long)(b.allocs - a.allocs), (unsigned long long)(b.bytes - a.bytes),
               (unsigned long long)(b.frees - a.frees), peak_rss_kb());
    } else {
        uint64_t goal = (uint64_t)(time_s * 1e9);
        uint64_t n = hint > 0 ? hint : 1;
        if (hint > 0) row->op(); /* warm-up, as the ramp's first runs are */
        results_clear();
        struct run r = run_n(row, n);
        while (r.ns < goal && n < 1000000000u) {
            n = predict_n(goal, r.n, r.ns, n);
            r = run_n(row, n);
        }
        results_check(row->name, "after the timed runs");
        results_clear(); /* one more op, checked on its own: a pool that */
        row->op();       /* skipped jobs cannot hide behind an earlier op */
        results_check(row->name, "in the checked op");
        printf("RESULT name=%s workers=%u iters=%llu ns=%llu allocs=%llu bytes=%llu frees=%llu "
               "hwm_kb=%ld\n",
               row->name, used, (unsigned long long)r.n, (unsigned long long)r.ns,
               (unsigned long long)r.delta.allocs, (unsigned long long)r.delta.bytes,
               (unsigned long long)r.delta.frees, peak_rss_kb());
    }
    fflush(stdout);
    if (row->teardown != NULL) row->teardown();
    return 0;
}
