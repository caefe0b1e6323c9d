/*
 * runner.c: runs benchmark rows in child processes and reports them.
 *
 * Every (row, round) is its own child process, spawned with posix_spawn: the
 * row's pool, threads and heap start from nothing, and the child's VmHWM is
 * that row's peak RSS alone. Rounds are interleaved (round 1 of every row,
 * then round 2, ...) so that a slow drift of the machine hits every row
 * alike; the table shows the median round and the spread. The first round
 * finds N as `go test -bench` does; later rounds start from that N (after one
 * untimed warm-up op) and still grow it if a round came out short.
 *
 * Rows come from this program (seed.c), from each `--bin PROG` (peers built
 * on harness.c, listed with `PROG --list`) and from a Go test binary
 * (`--go PROG`, run with -test.bench, its -benchmem line parsed).
 *
 * Options (environment in brackets; options win):
 *   --rounds N        [WPOOL_BENCH_ROUNDS]  rounds per row, default 5
 *   --time S          [WPOOL_BENCH_TIME]    seconds per round, default 0.2
 *   --rows LIST       [WPOOL_BENCH_ROWS]    comma list of names or globs
 *   --skip LIST                             rows to leave out (globs)
 *   --workers LIST    [WPOOL_BENCH_WORKERS] e.g. 4, or 1,2,4,8 (a sweep)
 *   --flood N         submit N jobs once to each row that has a flood
 *   --flood-max-s S   [WPOOL_FLOOD_MAX_S]   stop a flood after S seconds
 *   --out DIR --tag NAME   writes DIR/NAME.csv, .json and .txt
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "runner.h"

#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <openssl/crypto.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "wpool.h"

extern char **environ;

#define MAX_ENTRIES 256
#define MAX_ROUNDS  64
#define MAX_WORKERS 32

struct source {
    char path[4096];
    int is_go;
};

struct result {
    uint64_t iters, jobs, ns;
    double ns_op, bytes_op, allocs_op;
    double other_cpus; /* CPUs busy outside the child while it ran (see machine_busy_s) */
    long hwm_kb;
    unsigned workers;
};

struct entry {
    char name[128]; /* as shown: "WorkerPool", "Go/WorkerPool", "WorkerPool/w=4" */
    char row[96];   /* as its program knows it */
    const struct source *src;
    unsigned workers; /* passed as --workers; 0: the row's default */
    int uses_workers, has_flood;
    int failed;
    char why[160];
    int nres;
    struct result res[MAX_ROUNDS];
    /* filled by summarise() */
    struct result med;
    double ns_min, ns_max;
    long peak_kb;
};

static struct source sources[16];
static int nsources;
static struct entry entries[MAX_ENTRIES];
static int nentries;

static int rounds = 5;
static double round_time = 0.2;
static const char *rows_filter, *skip_filter;
static unsigned workers_list[MAX_WORKERS];
static int nworkers_list;
static unsigned default_workers;
static uint64_t flood_jobs;
static double flood_max_s = 30;
static const char *out_dir = ".", *tag = "seed";

/* ------------------------------------------------------------- utilities -- */

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("wpool_bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void copy_str(char *dst, size_t n, const char *src)
{
    size_t len = strnlen(src, n - 1);
    memcpy(dst, src, len);
    dst[len] = '\0';
}

/* Nonzero when name matches one of the comma-separated globs in list. */
static int matches(const char *list, const char *name)
{
    char buf[1024];
    copy_str(buf, sizeof buf, list);
    for (char *save = NULL, *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save))
        if (fnmatch(p, name, 0) == 0) return 1;
    return 0;
}

static int parse_workers(const char *s)
{
    char buf[512];
    copy_str(buf, sizeof buf, s);
    nworkers_list = 0;
    for (char *save = NULL, *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        char *end;
        unsigned long v = strtoul(p, &end, 10);
        if (*end != '\0' || v == 0 || v > WP_MAX_WORKERS || nworkers_list == MAX_WORKERS) return -1;
        workers_list[nworkers_list++] = (unsigned)v;
    }
    return nworkers_list > 0 ? 0 : -1;
}

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU-seconds the whole machine has been busy (user, nice, system, irq,
   softirq and steal, all CPUs), from /proc/stat; -1 if unreadable. Minus
   what the child used, over the child's lifetime, it says how much else ran
   meanwhile: the interference a row's number carries. */
static double machine_busy_s(void)
{
    unsigned long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    int n = f ? fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                       &v[4], &v[5], &v[6], &v[7])
              : 0;
    if (f) fclose(f);
    if (n < 8) return -1;
    long hz = sysconf(_SC_CLK_TCK);
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)(hz > 0 ? hz : 100);
}

/* Spawns argv (with extra_env added to the environment), returns its stdout
   (malloc'd, NUL-terminated), its wait status and its ru_maxrss. */
static char *spawn_read(char *const argv[], const char *extra_env, int *status, long *maxrss_kb,
                        double *cpu_s)
{
    int fd[2];
    if (pipe(fd) != 0) die("pipe: %s", strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd[1], 1);
    posix_spawn_file_actions_addclose(&fa, fd[0]);
    posix_spawn_file_actions_addclose(&fa, fd[1]);

    size_t nenv = 0;
    while (environ[nenv]) nenv++;
    char **env = calloc(nenv + 2, sizeof *env);
    if (env == NULL) die("out of memory");
    memcpy(env, environ, nenv * sizeof *env);
    if (extra_env) env[nenv++] = (char *)extra_env;

    pid_t pid;
    int e = posix_spawn(&pid, argv[0], &fa, NULL, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    free(env);
    close(fd[1]);
    if (e != 0) {
        close(fd[0]);
        *status = -1;
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *out = malloc(cap);
    for (;;) {
        if (len + 1 >= cap) out = realloc(out, cap *= 2);
        if (out == NULL) die("out of memory");
        ssize_t r = read(fd[0], out + len, cap - len - 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        len += (size_t)r;
    }
    out[len] = '\0';
    close(fd[0]);
    struct rusage ru;
    while (wait4(pid, status, 0, &ru) < 0 && errno == EINTR) {
    }
    *maxrss_kb = ru.ru_maxrss;
    *cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
             (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
    return out;
}

static void describe_status(int status, char *why, size_t n)
{
    if (status == -1)
        snprintf(why, n, "could not start");
    else if (WIFSIGNALED(status))
        snprintf(why, n, "killed by signal %d%s", WTERMSIG(status),
                 WTERMSIG(status) == SIGALRM ? " (timed out)" : "");
    else if (WEXITSTATUS(status) == 4)
        snprintf(why, n, "WRONG RESULTS (exit 4)");
    else
        snprintf(why, n, "exit status %d", WEXITSTATUS(status));
}

static uint64_t field_u64(const char *line, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, " %s=", key);
    const char *p = strstr(line, pat);
    return p ? strtoull(p + strlen(pat), NULL, 10) : 0;
}

/* ----------------------------------------------------------------- rows -- */

static void add_entry(const struct source *src, const char *row, const char *shown, int uses,
                      int flood)
{
    if (rows_filter && !matches(rows_filter, shown)) return;
    if (skip_filter && matches(skip_filter, shown)) return;
    int variants = uses && nworkers_list > 1 ? nworkers_list : 1;
    for (int v = 0; v < variants; v++) {
        if (nentries == MAX_ENTRIES) die("too many rows");
        struct entry *e = &entries[nentries++];
        memset(e, 0, sizeof *e);
        copy_str(e->row, sizeof e->row, row);
        e->src = src;
        e->uses_workers = uses;
        e->has_flood = flood;
        if (uses && nworkers_list > 0) e->workers = workers_list[v];
        if (variants > 1)
            snprintf(e->name, sizeof e->name, "%s/w=%u", shown, e->workers);
        else
            copy_str(e->name, sizeof e->name, shown);
    }
}

static void list_rows(const struct source *src)
{
    int status;
    long rss;
    double cpu;
    char *out;
    if (src->is_go) {
        char *argv[] = {(char *)src->path, "-test.list", "^Benchmark", NULL};
        out = spawn_read(argv, NULL, &status, &rss, &cpu);
    } else {
        char *argv[] = {(char *)src->path, "--list", NULL};
        out = spawn_read(argv, NULL, &status, &rss, &cpu);
    }
    if (out == NULL || status != 0) {
        fprintf(stderr, "wpool_bench: cannot list the rows of %s; left out\n", src->path);
        free(out);
        return;
    }
    for (char *save = NULL, *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (src->is_go) {
            if (strncmp(l, "Benchmark", 9) != 0) continue;
            char shown[128];
            snprintf(shown, sizeof shown, "Go/%s", l + 9);
            add_entry(src, l, shown, 0, 0);
        } else {
            char name[96];
            int uses = 0, flood = 0;
            if (sscanf(l, "%95[^\t]\t%d\t%d", name, &uses, &flood) >= 1)
                add_entry(src, name, name, uses, flood);
        }
    }
    free(out);
}

/* One child: one round of e (or its flood). Returns 0, or -1 with e->why. */
static int run_one(struct entry *e, uint64_t hint)
{
    char *argv[32];
    int a = 0, status;
    long rss_kb;
    char t[64], it[64], w[32], fl[32], fm[32], wenv[64];
    const char *extra_env = NULL;
    unsigned workers = e->workers ? e->workers : (e->uses_workers ? 0 : default_workers);

    argv[a++] = (char *)e->src->path;
    if (e->src->is_go) {
        static char bench_re[128];
        snprintf(bench_re, sizeof bench_re, "^%s$", e->row);
        argv[a++] = "-test.run";
        argv[a++] = "^$";
        argv[a++] = "-test.bench";
        argv[a++] = bench_re;
        argv[a++] = "-test.benchmem";
        argv[a++] = "-test.count";
        argv[a++] = "1";
        argv[a++] = "-test.timeout";
        argv[a++] = "10m";
        argv[a++] = "-test.benchtime";
        if (hint)
            snprintf(t, sizeof t, "%llux", (unsigned long long)hint);
        else
            snprintf(t, sizeof t, "%.3fs", round_time);
        argv[a++] = t;
        snprintf(wenv, sizeof wenv, "WPOOL_WORKERS=%u", default_workers);
        extra_env = wenv;
    } else {
        argv[a++] = "--row";
        argv[a++] = e->row;
        if (flood_jobs) {
            snprintf(fl, sizeof fl, "%llu", (unsigned long long)flood_jobs);
            snprintf(fm, sizeof fm, "%g", flood_max_s);
            argv[a++] = "--flood";
            argv[a++] = fl;
            argv[a++] = "--flood-max-s";
            argv[a++] = fm;
        } else {
            snprintf(t, sizeof t, "%g", round_time);
            argv[a++] = "--time";
            argv[a++] = t;
            if (hint) {
                snprintf(it, sizeof it, "%llu", (unsigned long long)hint);
                argv[a++] = "--iters";
                argv[a++] = it;
            }
        }
        if (workers) {
            snprintf(w, sizeof w, "%u", workers);
            argv[a++] = "--workers";
            argv[a++] = w;
        }
    }
    argv[a] = NULL;

    double busy0 = machine_busy_s(), t0 = wall_s(), cpu_s = 0;
    char *out = spawn_read(argv, extra_env, &status, &rss_kb, &cpu_s);
    struct result r = {0};
    double wall = wall_s() - t0, busy = machine_busy_s() - busy0;
    r.other_cpus = busy0 >= 0 && wall > 0 ? (busy - cpu_s) / wall : 0;
    if (r.other_cpus < 0) r.other_cpus = 0;
    int ok = 0;
    if (out != NULL && status == 0) {
        if (e->src->is_go) {
            size_t len = strlen(e->row);
            for (char *save = NULL, *l = strtok_r(out, "\n", &save); l;
                 l = strtok_r(NULL, "\n", &save)) {
                if (strncmp(l, e->row, len) != 0 ||
                    (l[len] != '-' && l[len] != '\t' && l[len] != ' '))
                    continue;
                /* BenchmarkX-2  N  v ns/op  v B/op  v allocs/op  v peak-RSS-KB */
                char *p = l + len;
                while (*p && *p != ' ' && *p != '\t') p++;
                r.iters = strtoull(p, &p, 10);
                r.hwm_kb = rss_kb; /* replaced by the benchmark's own VmHWM below */
                for (;;) {
                    char *end;
                    double v = strtod(p, &end);
                    if (end == p) break;
                    while (*end == ' ' || *end == '\t') end++;
                    char unit[32] = "";
                    int un = 0;
                    sscanf(end, "%31s%n", unit, &un);
                    if (strcmp(unit, "ns/op") == 0) r.ns_op = v;
                    if (strcmp(unit, "B/op") == 0) r.bytes_op = v;
                    if (strcmp(unit, "allocs/op") == 0) r.allocs_op = v;
                    if (strcmp(unit, "peak-RSS-KB") == 0) r.hwm_kb = (long)v;
                    if (strcmp(unit, "workers") == 0) r.workers = (unsigned)v;
                    p = end + un;
                }
                ok = r.iters > 0 && r.ns_op > 0;
                break;
            }
        } else {
            char *l = strstr(out, "RESULT ");
            if (l != NULL) {
                r.iters = field_u64(l, "iters");
                r.jobs = field_u64(l, "jobs");
                r.ns = field_u64(l, "ns");
                r.workers = (unsigned)field_u64(l, "workers");
                r.hwm_kb = (long)field_u64(l, "hwm_kb");
                uint64_t allocs = field_u64(l, "allocs"), bytes = field_u64(l, "bytes");
                uint64_t per = flood_jobs ? r.jobs : r.iters;
                if (per > 0) {
                    r.ns_op = (double)r.ns / (double)per;
                    r.allocs_op = (double)allocs / (double)per;
                    r.bytes_op = (double)bytes / (double)per;
                    ok = 1;
                }
            }
        }
        if (!ok) snprintf(e->why, sizeof e->why, "no result line in its output");
    } else {
        describe_status(status, e->why, sizeof e->why);
    }
    free(out);
    if (!ok) return -1;
    if (e->nres < MAX_ROUNDS) e->res[e->nres++] = r;
    return 0;
}

/* ---------------------------------------------------------------- report -- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median_of(const struct entry *e, size_t off)
{
    double v[MAX_ROUNDS];
    for (int i = 0; i < e->nres; i++) v[i] = *(const double *)((const char *)&e->res[i] + off);
    qsort(v, (size_t)e->nres, sizeof v[0], cmp_double);
    return e->nres % 2 ? v[e->nres / 2] : (v[e->nres / 2 - 1] + v[e->nres / 2]) / 2;
}

static void summarise(struct entry *e)
{
    if (e->nres == 0) return;
    /* the median round by ns/op gives iters and workers */
    double m = median_of(e, offsetof(struct result, ns_op));
    int best = 0;
    for (int i = 0; i < e->nres; i++)
        if (fabs(e->res[i].ns_op - m) < fabs(e->res[best].ns_op - m)) best = i;
    e->med = e->res[best];
    e->med.ns_op = m;
    e->med.bytes_op = median_of(e, offsetof(struct result, bytes_op));
    e->med.allocs_op = median_of(e, offsetof(struct result, allocs_op));
    e->med.other_cpus = median_of(e, offsetof(struct result, other_cpus));
    e->ns_min = e->ns_max = e->res[0].ns_op;
    e->peak_kb = 0;
    for (int i = 0; i < e->nres; i++) {
        if (e->res[i].ns_op < e->ns_min) e->ns_min = e->res[i].ns_op;
        if (e->res[i].ns_op > e->ns_max) e->ns_max = e->res[i].ns_op;
        if (e->res[i].hwm_kb > e->peak_kb) e->peak_kb = e->res[i].hwm_kb;
    }
}

/* An amount the way a person reads it: integers as integers, else 2 decimals. */
static void fmt_amount(char *buf, size_t n, double v)
{
    if (fabs(v - nearbyint(v)) < 1e-9 || v >= 100)
        snprintf(buf, n, "%.0f", v);
    else
        snprintf(buf, n, "%.2f", v);
}

static char cpu_model[256] = "unknown", compiler[128], osname[256];
static unsigned cpus_online, cpus_affinity, cpus_wpool;
static double loadavg1;

static void machine_info(void)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        char *c = strchr(line, ':');
        if (c && strncmp(line, "model name", 10) == 0) {
            c += 2;
            c[strcspn(c, "\n")] = '\0';
            copy_str(cpu_model, sizeof cpu_model, c);
            break;
        }
    }
    if (f) fclose(f);
    f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &loadavg1) != 1) loadavg1 = -1;
        fclose(f);
    }
    cpus_online = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    cpus_affinity = sched_getaffinity(0, sizeof set, &set) == 0 ? (unsigned)CPU_COUNT(&set) : 0;
    cpus_wpool = wp_cpu_count();
#if defined(__clang__)
    snprintf(compiler, sizeof compiler, "clang %s", __clang_version__);
#elif defined(__GNUC__)
    snprintf(compiler, sizeof compiler, "gcc %s", __VERSION__);
#else
    snprintf(compiler, sizeof compiler, "unknown C compiler");
#endif
    struct utsname u;
    if (uname(&u) == 0)
        snprintf(osname, sizeof osname, "%s %s %s", u.sysname, u.release, u.machine);
}

static void print_header(FILE *o)
{
    fprintf(o, "wpool seed benchmark: one op = 10000 jobs, job n = SHA-256(\"payload-n\")\n");
    fprintf(o, "machine:  %s; %u CPUs online, %u in affinity, wp_cpu_count() = %u; load %.2f\n",
            cpu_model, cpus_online, cpus_affinity, cpus_wpool, loadavg1);
    fprintf(o, "system:   %s; %s; %s\n", osname, compiler, OpenSSL_version(OPENSSL_VERSION));
    fprintf(o, "hash:     %s\n", seed_hash_desc());
    if (flood_jobs)
        fprintf(o,
                "flood:    %llu jobs per row, one producer, each row in its own process, "
                "stopped after %g s\n",
                (unsigned long long)flood_jobs, flood_max_s);
    else
        fprintf(o,
                "rounds:   %d per row, interleaved, median shown (+- half the spread), >= %g s "
                "each, each in its own process; workers %s%u\n",
                rounds, round_time, nworkers_list > 1 ? "swept, default " : "",
                nworkers_list == 1 ? workers_list[0] : default_workers);
}

static double serial_ns(void)
{
    for (int i = 0; i < nentries; i++)
        if (strcmp(entries[i].name, "Serial") == 0 && entries[i].nres > 0)
            return entries[i].med.ns_op;
    return 0;
}

static void print_table(FILE *o)
{
    double base = serial_ns();
    if (flood_jobs) {
        fprintf(o, "\n%-28s %7s %10s %8s %10s %9s %8s %10s %6s\n", "name", "threads", "jobs",
                "time s", "ns/job", "allocs/j", "B/job", "peak RSS", "other");
        for (int i = 0; i < nentries; i++) {
            const struct entry *e = &entries[i];
            if (e->nres == 0) {
                fprintf(o, "%-28s FAILED: %s\n", e->name, e->why);
                continue;
            }
            const struct result *r = &e->res[0];
            char al[32], by[32];
            fmt_amount(al, sizeof al, r->allocs_op);
            fmt_amount(by, sizeof by, r->bytes_op);
            fprintf(o, "%-28s %7u %10llu %8.2f %10.1f %9s %8s %7.1f MB %6.2f%s\n", e->name,
                    r->workers, (unsigned long long)r->jobs, (double)r->ns / 1e9, r->ns_op, al, by,
                    (double)r->hwm_kb / 1024.0, r->other_cpus,
                    r->jobs < flood_jobs ? "  (stopped early)" : "");
        }
        return;
    }
    fprintf(o, "\n%-30s %7s %8s %12s %6s %8s %10s %9s %10s %9s\n", "name", "workers", "iters",
            "ns/op", "+-", "ns/job", "B/op", "allocs/op", "peak RSS", "vs Serial");
    for (int i = 0; i < nentries; i++) {
        const struct entry *e = &entries[i];
        if (e->nres == 0) {
            fprintf(o, "%-30s FAILED: %s\n", e->name, e->why);
            continue;
        }
        char al[32], by[32], rel[32] = "-";
        fmt_amount(al, sizeof al, e->med.allocs_op);
        fmt_amount(by, sizeof by, e->med.bytes_op);
        if (base > 0) snprintf(rel, sizeof rel, "%.2fx", e->med.ns_op / base);
        double spread = e->med.ns_op > 0 ? 50.0 * (e->ns_max - e->ns_min) / e->med.ns_op : 0;
        fprintf(o, "%-30s %7u %8llu %12.0f %5.1f%% %8.1f %10s %9s %7.1f MB %9s %6.2f%s\n", e->name,
                e->med.workers, (unsigned long long)e->med.iters, e->med.ns_op, spread,
                e->med.ns_op / 10000.0, by, al, (double)e->peak_kb / 1024.0, rel, e->med.other_cpus,
                e->failed ? "  (a round failed)" : "");
    }
}

static FILE *open_out(const char *ext, char *path, size_t n)
{
    snprintf(path, n, "%s/%s.%s", out_dir, tag, ext);
    FILE *f = fopen(path, "w");
    if (f == NULL) fprintf(stderr, "wpool_bench: cannot write %s: %s\n", path, strerror(errno));
    return f;
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", *s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

static void write_files(void)
{
    char path[4200];
    double base = serial_ns();
    FILE *f = open_out("csv", path, sizeof path);
    if (f) {
        fprintf(f, "name,family,workers,rounds,iters,ns_op,ns_op_min,ns_op_max,ns_job,bytes_op,"
                   "allocs_op,peak_rss_kb,vs_serial,jobs,status,other_cpus\n");
        for (int i = 0; i < nentries; i++) {
            const struct entry *e = &entries[i];
            char family[128];
            copy_str(family, sizeof family, e->name);
            char *slash = strstr(family, "/w=");
            if (slash) *slash = '\0';
            if (e->nres == 0) {
                fprintf(f, "%s,%s,%u,0,,,,,,,,,,,FAILED: %s\n", e->name, family, e->workers,
                        e->why);
                continue;
            }
            fprintf(f, "%s,%s,%u,%d,%llu,%.1f,%.1f,%.1f,%.2f,%.2f,%.4f,%ld,%.4f,%llu,%s,%.2f\n",
                    e->name, family, e->med.workers, e->nres, (unsigned long long)e->med.iters,
                    e->med.ns_op, e->ns_min, e->ns_max,
                    flood_jobs ? e->med.ns_op : e->med.ns_op / 10000.0, e->med.bytes_op,
                    e->med.allocs_op, e->peak_kb, base > 0 ? e->med.ns_op / base : 0,
                    (unsigned long long)e->med.jobs, e->failed ? "round failed" : "ok",
                    e->med.other_cpus);
        }
        fclose(f);
        fprintf(stderr, "wrote %s\n", path);
    }
    f = open_out("json", path, sizeof path);
    if (f) {
        fprintf(f, "{\n  \"machine\": {\"cpu\": ");
        json_str(f, cpu_model);
        fprintf(f,
                ", \"cpus_online\": %u, \"cpus_affinity\": %u, \"wp_cpu_count\": %u, "
                "\"loadavg1\": %.2f, \"os\": ",
                cpus_online, cpus_affinity, cpus_wpool, loadavg1);
        json_str(f, osname);
        fprintf(f, ", \"compiler\": ");
        json_str(f, compiler);
        fprintf(f, ", \"openssl\": ");
        json_str(f, OpenSSL_version(OPENSSL_VERSION));
        fprintf(f,
                "},\n  \"config\": {\"jobs_per_op\": 10000, \"rounds\": %d, "
                "\"round_time_s\": %g, \"flood_jobs\": %llu, \"default_workers\": %u},\n"
                "  \"rows\": [",
                rounds, round_time, (unsigned long long)flood_jobs, default_workers);
        for (int i = 0; i < nentries; i++) {
            const struct entry *e = &entries[i];
            fprintf(f, "%s\n    {\"name\": ", i ? "," : "");
            json_str(f, e->name);
            fprintf(f, ", \"ok\": %s", e->nres > 0 && !e->failed ? "true" : "false");
            if (e->nres == 0) {
                fprintf(f, ", \"error\": ");
                json_str(f, e->why);
                fprintf(f, "}");
                continue;
            }
            fprintf(
                f,
                ", \"workers\": %u, \"ns_op\": %.1f, \"ns_op_min\": %.1f, "
                "\"ns_op_max\": %.1f, \"bytes_op\": %.2f, \"allocs_op\": %.4f, "
                "\"peak_rss_kb\": %ld, \"vs_serial\": %.4f, \"other_cpus\": %.2f, \"rounds\": [",
                e->med.workers, e->med.ns_op, e->ns_min, e->ns_max, e->med.bytes_op,
                e->med.allocs_op, e->peak_kb, base > 0 ? e->med.ns_op / base : 0,
                e->med.other_cpus);
            for (int k = 0; k < e->nres; k++)
                fprintf(f,
                        "%s{\"iters\": %llu, \"jobs\": %llu, \"ns_op\": %.1f, \"bytes_op\": "
                        "%.2f, \"allocs_op\": %.4f, \"peak_rss_kb\": %ld, \"other_cpus\": %.2f}",
                        k ? ", " : "", (unsigned long long)e->res[k].iters,
                        (unsigned long long)e->res[k].jobs, e->res[k].ns_op, e->res[k].bytes_op,
                        e->res[k].allocs_op, e->res[k].hwm_kb, e->res[k].other_cpus);
            fprintf(f, "]}");
        }
        fprintf(f, "\n  ]\n}\n");
        fclose(f);
        fprintf(stderr, "wrote %s\n", path);
    }
    if (flood_jobs) return;
    /* Every round in `go test -bench -benchmem` form, for benchstat. */
    f = open_out("txt", path, sizeof path);
    if (f) {
        fprintf(f, "goos: linux\ngoarch: %s\npkg: wpool/bench\ncpu: %s\n",
                strstr(osname, "x86_64") ? "amd64" : "unknown", cpu_model);
        for (int i = 0; i < nentries; i++)
            for (int k = 0; k < entries[i].nres; k++) {
                const struct result *r = &entries[i].res[k];
                char name[160];
                copy_str(name, sizeof name, entries[i].name);
                for (char *p = name; *p; p++)
                    if (*p == ' ') *p = '_';
                fprintf(f,
                        "Benchmark%s-%u\t%llu\t%.0f ns/op\t%.2f ns/job\t%.0f B/op\t%.2f "
                        "allocs/op\t%ld peak-RSS-KB\n",
                        name, cpus_wpool, (unsigned long long)r->iters, r->ns_op,
                        r->ns_op / 10000.0, r->bytes_op, r->allocs_op, r->hwm_kb);
            }
        fclose(f);
        fprintf(stderr, "wrote %s\n", path);
    }
}

/* ------------------------------------------------------------------ main -- */

static void progress(int round, const struct entry *e)
{
    static int tty = -1;
    if (tty < 0) tty = isatty(2);
    if (e == NULL) {
        if (tty) fprintf(stderr, "\r%-70s\r", "");
        return;
    }
    if (flood_jobs)
        fprintf(stderr, tty ? "\r  flood: %-40s" : "  flood: %s\n", e->name);
    else if (tty)
        fprintf(stderr, "\r  round %d/%d: %-40s", round, rounds, e->name);
    else if (e == &entries[0])
        fprintf(stderr, "  round %d/%d ...\n", round, rounds);
}

int runner_main(int argc, char **argv)
{
    const char *env;
    if ((env = getenv("WPOOL_BENCH_ROUNDS")) && *env) rounds = atoi(env);
    if ((env = getenv("WPOOL_BENCH_TIME")) && *env) round_time = strtod(env, NULL);
    if ((env = getenv("WPOOL_BENCH_ROWS")) && *env) rows_filter = env;
    if ((env = getenv("WPOOL_FLOOD_MAX_S")) && *env) flood_max_s = strtod(env, NULL);
    if ((env = getenv("WPOOL_BENCH_WORKERS")) && *env && parse_workers(env) != 0)
        die("bad WPOOL_BENCH_WORKERS=%s", env);

    nsources = 1;
    if (readlink("/proc/self/exe", sources[0].path, sizeof sources[0].path - 1) < 0)
        copy_str(sources[0].path, sizeof sources[0].path, argv[0]);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) die("%s needs a value (see the top of bench/runner.c)", a);
        i++;
        if (strcmp(a, "--bin") == 0 || strcmp(a, "--go") == 0) {
            if (nsources == (int)(sizeof sources / sizeof sources[0])) die("too many programs");
            if (access(v, X_OK) != 0) {
                fprintf(stderr, "wpool_bench: %s not built; its rows are left out\n", v);
                continue;
            }
            copy_str(sources[nsources].path, sizeof sources[0].path, v);
            sources[nsources++].is_go = strcmp(a, "--go") == 0;
        } else if (strcmp(a, "--rounds") == 0)
            rounds = atoi(v);
        else if (strcmp(a, "--time") == 0)
            round_time = strtod(v, NULL);
        else if (strcmp(a, "--rows") == 0)
            rows_filter = v;
        else if (strcmp(a, "--skip") == 0)
            skip_filter = v;
        else if (strcmp(a, "--workers") == 0) {
            if (parse_workers(v) != 0) die("bad --workers %s", v);
        } else if (strcmp(a, "--flood") == 0)
            flood_jobs = strtoull(v, NULL, 10);
        else if (strcmp(a, "--flood-max-s") == 0)
            flood_max_s = strtod(v, NULL);
        else if (strcmp(a, "--out") == 0)
            out_dir = v;
        else if (strcmp(a, "--tag") == 0)
            tag = v;
        else
            die("unknown option %s (see the top of bench/runner.c)", a);
    }
    if (rounds < 1 || rounds > MAX_ROUNDS) die("rounds must be 1..%d", MAX_ROUNDS);
    if (!(round_time > 0)) die("the time per round must be > 0");

    machine_info();
    env = getenv("WPOOL_WORKERS");
    unsigned long ew = env ? strtoul(env, NULL, 10) : 0;
    default_workers = nworkers_list == 1               ? workers_list[0]
                      : ew > 0 && ew <= WP_MAX_WORKERS ? (unsigned)ew
                                                       : cpus_wpool;

    for (int s = 0; s < nsources; s++) list_rows(&sources[s]);
    if (flood_jobs) {
        int kept = 0;
        for (int i = 0; i < nentries; i++)
            if (entries[i].has_flood) entries[kept++] = entries[i];
        nentries = kept;
    }
    if (nentries == 0) die("no rows to run (WPOOL_BENCH_ROWS=%s)", rows_filter ? rows_filter : "");
    mkdir(out_dir, 0777);

    print_header(stdout);
    fflush(stdout);
    int nrounds = flood_jobs ? 1 : rounds;
    for (int r = 1; r <= nrounds; r++)
        for (int i = 0; i < nentries; i++) {
            struct entry *e = &entries[i];
            if (e->nres == 0 && r > 1) continue; /* failed its first round */
            progress(r, e);
            uint64_t hint = e->nres > 0 ? e->res[0].iters : 0;
            if (run_one(e, hint) != 0) {
                e->failed = 1;
                progress(r, NULL);
                fprintf(stderr, "wpool_bench: %s round %d: %s\n", e->name, r, e->why);
            }
        }
    progress(0, NULL);
    int failed = 0;
    for (int i = 0; i < nentries; i++) {
        summarise(&entries[i]);
        failed |= entries[i].failed;
    }
    print_table(stdout);
    fflush(stdout);
    write_files();
    return failed;
}
