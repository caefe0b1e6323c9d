/*
 * xcore.c: wpool_xcore (`make bench-xcore`), the hot path in units of the
 * machine's own limit: one cache line's round trip between two cores.
 *
 *   LineRoundTrip  two threads pinned to the first two CPUs of the process's
 *                  affinity mask ping-pong one _Atomic counter alone on its
 *                  line: each spins (with the CPU's pause) until it sees the
 *                  other's value, then stores the next. One round trip = the
 *                  line goes there and back; ns per round trip over --trips.
 *   Empty          tasks that do nothing, from one producer, through
 *                  wp_submit and wp_submit_batch (1024 per call) into pools
 *                  of 1, 2 and 4 workers (made once, before round 1): M
 *                  tasks/s, submit to wp_wait, and line round trips per task.
 *   Chan           PingPong (two unbuffered wp_chans and an echo thread, one
 *                  op = one round trip = two handoffs) and Buffered128_1x1
 *                  (one sender, one receiver, one element per handoff), the
 *                  shapes of bench/chan: ns per op and round trips per handoff.
 *
 * Rounds interleave (round 1 of every row, then round 2, ...) and every
 * other round runs the rows in reverse, so a phase of the machine hits all
 * rows alike. Each ratio is taken within a round (that round's row against
 * that round's line round trip) and the table shows the median over the
 * rounds. Only the two LineRoundTrip threads are pinned; pool workers and
 * channel threads go where the kernel puts them, as a user's would. With
 * fewer than two usable CPUs (or pinning refused) the line row and every
 * round-trip ratio are left out, with a line saying so.
 *
 * Knobs: WPOOL_BENCH_ROUNDS (5) or --rounds N; --trips N (round trips per
 * round, 1000000); --tasks N (Empty tasks per row and round, a multiple of
 * 1024, 2097152); --chan-ops N (PingPong ops per round, 200000; Buffered128
 * moves 4x as many); --out DIR writes DIR/xcore.csv (medians), xcore.json
 * (medians and every round) and xcore.txt (every round in `go test` form).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "wpool.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/stat.h>

#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield")
#else
#define cpu_relax() ((void)0)
#endif

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, int e)
{
    fprintf(stderr, "xcore: %s: error %d\n", what, e);
    exit(3);
}

/* DIR/name opened for writing, or exit with the reason. */
static FILE *out_file(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "xcore: cannot write %s: %s\n", path, strerror(errno));
        exit(3);
    }
    return f;
}

static double median(const double *in, int n)
{
    double v[n];
    memcpy(v, in, sizeof v);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static struct {
    int rounds;
    uint64_t trips, tasks, chan_ops;
    int cpu[2]; /* the pinned pair; cpu[1] < 0: fewer than two usable */
} opt = {5, 1000000, 2097152, 200000, {-1, -1}};

/* -------------------------------------------------------- line round trip -- */

/* The ping-pong line: nothing else lives on it or on its neighbour (the
   adjacent-line prefetcher pulls lines in pairs). */
static struct {
    _Alignas(128) _Atomic uint64_t v;
    char pad[128 - sizeof(uint64_t)];
} line;

static struct {
    _Atomic int ready; /* both threads pinned (or one failed) */
    _Atomic int failed;
    uint64_t ns; /* written by the initiator, read after pthread_join */
} trip;

static int pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

/* Both sides: pin, then wait for the other to be pinned too. */
static int pin_and_meet(int cpu)
{
    if (pin(cpu) != 0)
        atomic_store_explicit(&trip.failed, 1, memory_order_relaxed); /* read after the meet */
    /* acq_rel: the pair's meeting point; publishes `failed` both ways */
    atomic_fetch_add_explicit(&trip.ready, 1, memory_order_acq_rel);
    while (atomic_load_explicit(&trip.ready, memory_order_acquire) < 2) cpu_relax();
    return atomic_load_explicit(&trip.failed, memory_order_relaxed);
}

/* Initiator: stores odd values, waits for the next even one. */
static void *trip_initiator(void *arg)
{
    (void)arg;
    if (pin_and_meet(opt.cpu[0])) return NULL;
    uint64_t n = opt.trips, v = 0;
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        /* release: hands the line over; pairs with the responder's acquire */
        atomic_store_explicit(&line.v, ++v, memory_order_release);
        ++v;
        /* acquire: pairs with the responder's release store of v */
        while (atomic_load_explicit(&line.v, memory_order_acquire) != v) cpu_relax();
    }
    trip.ns = now_ns() - t0;
    return NULL;
}

/* Responder: waits for each odd value, answers with the next even one. */
static void *trip_responder(void *arg)
{
    (void)arg;
    if (pin_and_meet(opt.cpu[1])) return NULL;
    for (uint64_t want = 1; want < 2 * opt.trips; want += 2) {
        /* acquire: pairs with the initiator's release store */
        while (atomic_load_explicit(&line.v, memory_order_acquire) != want) cpu_relax();
        /* release: hands the line back; pairs with the initiator's acquire */
        atomic_store_explicit(&line.v, want + 1, memory_order_release);
    }
    return NULL;
}

/* ns per round trip, or a negative value when pinning was refused. */
static double line_round_trip(void)
{
    atomic_store_explicit(&line.v, 0, memory_order_relaxed);
    atomic_store_explicit(&trip.ready, 0, memory_order_relaxed);
    atomic_store_explicit(&trip.failed, 0, memory_order_relaxed);
    pthread_t a, b; /* pthread_create orders the stores above before both */
    int e = pthread_create(&a, NULL, trip_initiator, NULL);
    if (e) die("pthread_create", e);
    if ((e = pthread_create(&b, NULL, trip_responder, NULL)) != 0) die("pthread_create", e);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    if (atomic_load_explicit(&trip.failed, memory_order_relaxed)) return -1;
    return (double)trip.ns / (double)opt.trips;
}

/* ---------------------------------------------------------------- Empty -- */

#define EMPTY_CHUNK 1024u

static void empty_task(void *arg)
{
    (void)arg;
}

static wp_pool *pools[3]; /* 1, 2 and 4 workers */
static const unsigned pool_workers[3] = {1, 2, 4};

/* ns per task for pools[k], through wp_submit or wp_submit_batch. */
static double empty_row(int k, int batch)
{
    static void *args[EMPTY_CHUNK];
    wp_pool *p = pools[k];
    wp_stats st;
    wp_pool_stats(p, &st);
    uint64_t before = st.completed, n = opt.tasks;
    uint64_t t0 = now_ns();
    int e = 0;
    if (batch)
        for (uint64_t i = 0; i < n && !e; i += EMPTY_CHUNK)
            e = wp_submit_batch(p, empty_task, args, EMPTY_CHUNK);
    else
        for (uint64_t i = 0; i < n && !e; i++) e = wp_submit(p, empty_task, NULL);
    if (e) die(batch ? "wp_submit_batch" : "wp_submit", e);
    wp_wait(p);
    uint64_t dt = now_ns() - t0;
    wp_pool_stats(p, &st);
    if (st.completed - before != n) {
        fprintf(stderr, "xcore: Empty lost tasks: %llu of %llu\n",
                (unsigned long long)(st.completed - before), (unsigned long long)n);
        exit(3);
    }
    return (double)dt / (double)n;
}

/* ----------------------------------------------------------------- Chan -- */

struct pingpong {
    wp_chan *ping, *pong;
};

/* The channels are read once: the struct lives on the main thread's stack,
   on the line its loop counter and result are written to every op (see
   bench/chan/chan_bench.c). */
static void *echo(void *arg)
{
    const struct pingpong *pp = arg;
    wp_chan *ping = pp->ping, *pong = pp->pong;
    int64_t v;
    while (wp_chan_recv(ping, &v) == 0)
        if (wp_chan_send(pong, &v) != 0) break;
    return NULL;
}

/* ns per PingPong op (two handoffs). */
static double chan_pingpong(void)
{
    struct pingpong pp;
    int e;
    if ((e = wp_chan_create(&pp.ping, sizeof(int64_t), 0)) != 0) die("wp_chan_create", e);
    if ((e = wp_chan_create(&pp.pong, sizeof(int64_t), 0)) != 0) die("wp_chan_create", e);
    pthread_t t;
    if ((e = pthread_create(&t, NULL, echo, &pp)) != 0) die("pthread_create", e);
    uint64_t n = opt.chan_ops, t0 = now_ns();
    for (int64_t i = 0; i < (int64_t)n; i++) {
        int64_t v;
        if (wp_chan_send(pp.ping, &i) != 0 || wp_chan_recv(pp.pong, &v) != 0 || v != i)
            die("PingPong", 0);
    }
    uint64_t dt = now_ns() - t0;
    wp_chan_close(pp.ping);
    pthread_join(t, NULL);
    wp_chan_destroy(pp.ping);
    wp_chan_destroy(pp.pong);
    return (double)dt / (double)n;
}

struct flow {
    wp_chan *c;
    uint64_t n, got;
    pthread_barrier_t start;
};

static void *flow_send(void *arg)
{
    struct flow *f = arg;
    pthread_barrier_wait(&f->start);
    for (int64_t i = 0; i < (int64_t)f->n; i++)
        if (wp_chan_send(f->c, &i) != 0) break;
    return NULL;
}

static void *flow_recv(void *arg)
{
    struct flow *f = arg;
    int64_t v;
    uint64_t got = 0; /* counted here: f's line is read by the sender per element */
    pthread_barrier_wait(&f->start);
    while (wp_chan_recv(f->c, &v) == 0) got++;
    f->got = got;
    return NULL;
}

/* ns per element through a capacity-128 channel, one sender, one receiver. */
static double chan_buffered(void)
{
    struct flow f = {.n = 4 * opt.chan_ops};
    int e;
    if ((e = wp_chan_create(&f.c, sizeof(int64_t), 128)) != 0) die("wp_chan_create", e);
    pthread_barrier_init(&f.start, NULL, 3);
    pthread_t s, r;
    if ((e = pthread_create(&s, NULL, flow_send, &f)) != 0) die("pthread_create", e);
    if ((e = pthread_create(&r, NULL, flow_recv, &f)) != 0) die("pthread_create", e);
    pthread_barrier_wait(&f.start);
    uint64_t t0 = now_ns();
    pthread_join(s, NULL);
    wp_chan_close(f.c);
    pthread_join(r, NULL);
    uint64_t dt = now_ns() - t0;
    pthread_barrier_destroy(&f.start);
    wp_chan_destroy(f.c);
    if (f.got != f.n) die("Buffered128_1x1 lost elements", 0);
    return (double)dt / (double)f.n;
}

/* ----------------------------------------------------------------- rows -- */

enum {
    R_LINE,
    R_SUBMIT1,
    R_SUBMIT2,
    R_SUBMIT4,
    R_BATCH1,
    R_BATCH2,
    R_BATCH4,
    R_PING,
    R_BUF,
    NROWS
};

static const struct row {
    const char *name, *go; /* table name; `go test` name */
    unsigned workers;      /* 0: not a pool row */
    double per;            /* handoffs per op: ns per op / per = ns per handoff */
    const char *unit;      /* of the round-trip ratio */
    double target;         /* most round trips per unit; 0: none */
} rows[NROWS] = {
    [R_LINE] = {"LineRoundTrip (pinned)", "LineRoundTrip", 0, 1, "RT", 0},
    [R_SUBMIT1] = {"Empty wp_submit", "Empty/submit/workers=1", 1, 1, "RT/task", 0.25},
    [R_SUBMIT2] = {"Empty wp_submit", "Empty/submit/workers=2", 2, 1, "RT/task", 0},
    [R_SUBMIT4] = {"Empty wp_submit", "Empty/submit/workers=4", 4, 1, "RT/task", 0},
    [R_BATCH1] = {"Empty wp_submit_batch", "Empty/batch/workers=1", 1, 1, "RT/task", 0.1},
    [R_BATCH2] = {"Empty wp_submit_batch", "Empty/batch/workers=2", 2, 1, "RT/task", 0.1},
    [R_BATCH4] = {"Empty wp_submit_batch", "Empty/batch/workers=4", 4, 1, "RT/task", 0.1},
    [R_PING] = {"Chan PingPong", "Chan/PingPong", 0, 2, "RT/handoff", 0},
    [R_BUF] = {"Chan Buffered128_1x1", "Chan/Buffered128_1x1", 0, 1, "RT/handoff", 0},
};

/* ns per op of row i, one measurement. */
static double run_row(int i)
{
    switch (i) {
    case R_LINE:
        return opt.cpu[1] < 0 ? -1 : line_round_trip();
    case R_PING:
        return chan_pingpong();
    case R_BUF:
        return chan_buffered();
    default:
        return empty_row(i <= R_SUBMIT4 ? i - R_SUBMIT1 : i - R_BATCH1, i >= R_BATCH1);
    }
}

static void first_two_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return;
    for (int c = 0, k = 0; c < CPU_SETSIZE && k < 2; c++)
        if (CPU_ISSET(c, &set)) opt.cpu[k++] = c;
}

static void cpu_model(char *buf, size_t size)
{
    snprintf(buf, size, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char l[512];
    while (fgets(l, sizeof l, f))
        if (!strncmp(l, "model name", 10) && strchr(l, ':')) {
            char *s = strchr(l, ':') + 1;
            while (*s == ' ' || *s == '\t') s++;
            s[strcspn(s, "\n")] = 0;
            snprintf(buf, size, "%s", s);
            break;
        }
    fclose(f);
}

static uint64_t arg_u64(const char *s, uint64_t lo)
{
    uint64_t v = strtoull(s, NULL, 10);
    return v < lo ? lo : v;
}

int main(int argc, char **argv)
{
    const char *out = NULL, *env = getenv("WPOOL_BENCH_ROUNDS");
    if (env && atoi(env) > 0) opt.rounds = atoi(env);
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--rounds"))
            opt.rounds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--trips"))
            opt.trips = arg_u64(argv[i + 1], 1000);
        else if (!strcmp(argv[i], "--tasks"))
            opt.tasks = arg_u64(argv[i + 1], EMPTY_CHUNK) / EMPTY_CHUNK * EMPTY_CHUNK;
        else if (!strcmp(argv[i], "--chan-ops"))
            opt.chan_ops = arg_u64(argv[i + 1], 1000);
        else if (!strcmp(argv[i], "--out"))
            out = argv[i + 1];
        else {
            fprintf(stderr,
                    "usage: %s [--rounds N] [--trips N] [--tasks N] [--chan-ops N] "
                    "[--out DIR]\n",
                    argv[0]);
            return 2;
        }
    }
    if (opt.rounds < 1 || opt.rounds > 1000) opt.rounds = 5;
    int rounds = opt.rounds;

    char model[256];
    cpu_model(model, sizeof model);
    first_two_cpus();
    for (int k = 0; k < 3; k++) {
        wp_config cfg;
        wp_config_init(&cfg);
        cfg.workers = pool_workers[k];
        cfg.name = "xcore";
        int e = wp_pool_create(&pools[k], &cfg);
        if (e) die("wp_pool_create", e);
    }

    /* Warm-up, untimed: threads started, queues and stacks touched. */
    uint64_t tasks = opt.tasks;
    opt.tasks = EMPTY_CHUNK * 16;
    for (int i = R_SUBMIT1; i <= R_BATCH4; i++) run_row(i);
    opt.tasks = tasks;
    int pinned = opt.cpu[1] >= 0;
    if (pinned) {
        uint64_t trips = opt.trips;
        opt.trips = 1000;
        pinned = line_round_trip() > 0;
        opt.trips = trips;
    }

    double(*ns)[NROWS] = calloc((size_t)rounds, sizeof *ns);
    if (!ns) die("calloc", 0);
    for (int r = 0; r < rounds; r++)
        for (int j = 0; j < NROWS; j++) {
            int i = r % 2 ? NROWS - 1 - j : j;
            ns[r][i] = i == R_LINE && !pinned ? -1 : run_row(i);
        }
    for (int r = 0; r < rounds; r++)
        if (ns[r][R_LINE] <= 0) pinned = 0; /* refused later on: no ratios at all */

    /* Per round: ns per handoff, round trips per handoff, M ops/s. */
    double rt[NROWS], mops[NROWS], nsop[NROWS];
    for (int i = 0; i < NROWS; i++) {
        double a[rounds], b[rounds], c[rounds];
        for (int r = 0; r < rounds; r++) {
            a[r] = ns[r][i];
            b[r] = pinned ? ns[r][i] / rows[i].per / ns[r][R_LINE] : -1;
            c[r] = 1e3 / ns[r][i];
        }
        nsop[i] = median(a, rounds);
        rt[i] = median(b, rounds);
        mops[i] = median(c, rounds);
    }
    /* Throughput 4 workers against 1, per round. */
    double scale[2];
    for (int k = 0; k < 2; k++) {
        int one = k ? R_BATCH1 : R_SUBMIT1, four = k ? R_BATCH4 : R_SUBMIT4;
        double a[rounds];
        for (int r = 0; r < rounds; r++) a[r] = ns[r][one] / ns[r][four];
        scale[k] = median(a, rounds);
    }

    printf("\nwpool cross-core (median of %d rounds, rows alternating)\n", rounds);
    printf("CPU: %s; %u CPUs usable\n", model, wp_cpu_count());
    if (pinned)
        printf("CPUs used: line pinned to CPUs %d and %d (the first two of the affinity mask); "
               "pool and channel threads unpinned\n",
               opt.cpu[0], opt.cpu[1]);
    else
        printf("CPUs used: %s: no pinned line round trip, no RT ratios\n",
               opt.cpu[1] < 0 ? "only one CPU usable" : "pinning refused");
    printf("%-24s %7s %12s %-10s %9s %-11s %s\n", "row", "workers", "value", "unit", "RT", "per",
           "target");
    for (int i = 0; i < NROWS; i++) {
        char w[16] = "-", val[32], r[32] = "-", tgt[64] = "";
        if (rows[i].workers) snprintf(w, sizeof w, "%u", rows[i].workers);
        if (i == R_LINE) {
            if (!pinned) continue;
            snprintf(val, sizeof val, "%.1f", nsop[i]);
            snprintf(tgt, sizeof tgt, "(the machine's limit)");
        } else if (rows[i].workers) {
            snprintf(val, sizeof val, "%.2f", mops[i]);
        } else {
            snprintf(val, sizeof val, "%.1f", nsop[i]);
        }
        if (pinned && i != R_LINE) snprintf(r, sizeof r, "%.3f", rt[i]);
        if (rows[i].target > 0)
            snprintf(tgt, sizeof tgt, "<= %.2f %s%s", rows[i].target, rows[i].unit,
                     !pinned                   ? ""
                     : rt[i] <= rows[i].target ? "  ok"
                                               : "  MISSED");
        else if (i == R_SUBMIT2 || i == R_SUBMIT4)
            snprintf(tgt, sizeof tgt, "M/s not below 1 worker's");
        else if (i == R_PING || i == R_BUF)
            snprintf(tgt, sizeof tgt, "<= Go's time (bench/chan/run.sh)");
        printf("%-24s %7s %12s %-10s %9s %-11s %s\n", rows[i].name, w, val,
               i == R_LINE       ? "ns"
               : rows[i].workers ? "M tasks/s"
                                 : "ns/op",
               r, rows[i].unit, tgt);
    }
    for (int k = 0; k < 2; k++)
        printf("%-24s %7s %12.2f %-10s %9s %-11s >= 1.00%s\n",
               k ? "Scaling wp_submit_batch" : "Scaling wp_submit", "4 / 1", scale[k], "x", "", "",
               scale[k] >= 1 ? "  ok" : "  MISSED");
    printf("(RT = one pinned line round trip of the same round; ratios are medians of per-round\n"
           " ratios. PingPong: one op = two handoffs; Empty: %llu tasks, Chan: %llu PingPong ops\n"
           " and %llu elements, line: %llu round trips per row and round)\n",
           (unsigned long long)opt.tasks, (unsigned long long)opt.chan_ops, 4ull * opt.chan_ops,
           (unsigned long long)opt.trips);

    if (out) {
        /* As runner.c: --out may name a directory not made yet. */
        mkdir(out, 0777);
        FILE *csv = out_file(out, "xcore.csv"), *js = out_file(out, "xcore.json"),
             *txt = out_file(out, "xcore.txt");
        fprintf(csv, "row,workers,ns_per_op,m_ops_per_s,rt,rt_unit,target_rt\n");
        fprintf(js,
                "{\"cpu\": \"%s\", \"cpus_usable\": %u, \"pinned\": [%d, %d], \"rounds\": %d, "
                "\"rows\": [",
                model, wp_cpu_count(), pinned ? opt.cpu[0] : -1, pinned ? opt.cpu[1] : -1, rounds);
        fprintf(txt, "cpu: %s\n", model);
        for (int i = 0; i < NROWS; i++) {
            if (i == R_LINE && !pinned) continue;
            fprintf(csv, "%s,%u,%.3f,%.3f,%.4f,%s,%.2f\n", rows[i].go, rows[i].workers, nsop[i],
                    mops[i], pinned ? rt[i] : -1, rows[i].unit, rows[i].target);
            fprintf(
                js,
                "%s\n  {\"row\": \"%s\", \"workers\": %u, \"ns_per_op\": %.3f, "
                "\"m_ops_per_s\": %.3f, \"rt\": %.4f, \"rt_unit\": \"%s\", \"target_rt\": %.2f, "
                "\"rounds_ns_per_op\": [",
                i ? "," : "", rows[i].go, rows[i].workers, nsop[i], mops[i], pinned ? rt[i] : -1,
                rows[i].unit, rows[i].target);
            for (int r = 0; r < rounds; r++) {
                fprintf(js, "%s%.3f", r ? ", " : "", ns[r][i]);
                uint64_t n = i == R_LINE   ? opt.trips
                             : i == R_PING ? opt.chan_ops
                             : i == R_BUF  ? 4 * opt.chan_ops
                                           : opt.tasks;
                fprintf(txt, "BenchmarkXcore/%s %llu %.3f ns/op", rows[i].go, (unsigned long long)n,
                        ns[r][i]);
                if (pinned && i != R_LINE)
                    fprintf(txt, " %.4f rt/%s", ns[r][i] / rows[i].per / ns[r][R_LINE],
                            rows[i].workers ? "task" : "handoff");
                fprintf(txt, "\n");
            }
            fprintf(js, "]}");
        }
        fprintf(js, "\n], \"scaling_4_over_1\": {\"submit\": %.3f, \"batch\": %.3f}}\n", scale[0],
                scale[1]);
        fclose(csv);
        fclose(js);
        fclose(txt);
        printf("wrote %s/xcore.{csv,json,txt}\n", out);
    }
    free(ns);
    for (int k = 0; k < 3; k++) wp_pool_destroy(pools[k]);
    return 0;
}
