/*
 * cpu.c: how many CPUs this process may really use, and $WPOOL_WORKERS.
 *
 * wp_cpu_count() = the CPUs in the affinity mask, capped by the tightest
 * cgroup CPU quota in force, rounded up, at least 1. A quota set on any
 * ancestor of the process's cgroup limits it as much as one on the cgroup
 * itself, so every level is read, from the process's own cgroup up to the
 * highest one this mount namespace can see, and the smallest wins (Go 1.25
 * reads the leaf only).
 *
 * Where the files are:
 *   - /proc/self/cgroup names the cgroup, relative to its hierarchy's root:
 *     "0::/path" for cgroup v2, "N:cpu,cpuacct:/path" (any list holding
 *     "cpu") for the v1 hierarchy of the cpu controller. Both are used when
 *     both exist (hybrid systems); the smaller limit wins.
 *   - /proc/self/mountinfo says where each hierarchy is mounted: fs type
 *     "cgroup2", or "cgroup" with "cpu" among its super options. A mount may
 *     show only a sub-tree of the hierarchy (containers): its root field
 *     (4th) names that sub-tree, so the cgroup's directory is the mount
 *     point plus the cgroup path with the root cut off, and nothing above
 *     the mount point is visible. Of several mounts, the one with the
 *     longest root that contains the cgroup is used.
 *   - per level: v2 "cpu.max" ("max PERIOD" or "QUOTA PERIOD"); v1
 *     "cpu.cfs_quota_us" (-1: none) and "cpu.cfs_period_us".
 *
 * Failure policy: a missing, unreadable or malformed file, a line longer
 * than LINE_CAP, a path with "." or ".." components, or an allocation that
 * fails only means "no quota known there"; the answer then falls back
 * toward the affinity count. Nothing here aborts, prints or keeps memory.
 *
 * No state is shared: every call reads the files anew (a container's quota
 * may change while the program runs), so any thread may call at any time.
 */
#include "cpu.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"

/* Longest line read from /proc; longer ones are skipped whole. A mountinfo
   line holds two escaped paths (up to 4 bytes per character each). */
#define LINE_CAP (64u * 1024u)

/* The longest file name read in a cgroup directory (with its slash). */
#define LONGEST_NAME "/cpu.cfs_period_us"

/* "No limit known", as a CPU count. */
#define NO_LIMIT UINT64_MAX

enum { V1, V2, NVERSIONS };

/* One cgroup hierarchy that may hold a CPU quota. All strings malloc'd. */
struct hierarchy {
    char *path; /* the process's cgroup, relative to the hierarchy's root */
    char *root; /* the sub-tree of the hierarchy the chosen mount shows */
    char *mnt;  /* where that mount is */
};

/* Reads the next line of f that fits in buf[cap] (newline dropped, NUL
   terminated); longer lines are skipped whole. Returns 0 at end of file. */
static int next_line(FILE *f, char *buf, size_t cap)
{
    for (;;) {
        size_t n = 0;
        int too_long = 0, c;
        while ((c = getc_unlocked(f)) != EOF && c != '\n') {
            if (n + 1 < cap)
                buf[n++] = (char)c;
            else
                too_long = 1;
        }
        if (c == EOF && (too_long || n == 0)) return 0;
        if (too_long) continue;
        buf[n] = '\0';
        return 1;
    }
}

/* Whether the comma-separated list holds exactly the item `want`. */
static int has_item(const char *list, const char *want)
{
    size_t len = strlen(want);
    for (const char *s = list; s;) {
        const char *end = strchr(s, ',');
        size_t n = end ? (size_t)(end - s) : strlen(s);
        if (n == len && memcmp(s, want, len) == 0) return 1;
        s = end ? end + 1 : NULL;
    }
    return 0;
}

/* Whether path is absolute and free of "." and ".." components (which could
   lead out of the mount, e.g. "/../.." for a cgroup outside our namespace). */
static int is_clean_path(const char *path)
{
    if (path[0] != '/') return 0;
    for (const char *s = path; *s;) {
        while (*s == '/') s++;
        size_t n = strcspn(s, "/");
        if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.')) return 0;
        s += n;
    }
    return 1;
}

/* Undoes mountinfo's octal escapes ("\040" for a space) in place. */
static void unescape(char *s)
{
    char *out = s;
    while (*s) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
            s[3] >= '0' && s[3] <= '7') {
            *out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
            s += 4;
        } else {
            *out++ = *s++;
        }
    }
    *out = '\0';
}

/* The part of path below root ("" or "/a/b"), or NULL when root does not
   contain path. */
static const char *below_root(const char *root, const char *path)
{
    size_t n = strlen(root);
    while (n > 0 && root[n - 1] == '/') n--;
    if (strncmp(root, path, n) != 0 || (path[n] != '\0' && path[n] != '/')) return NULL;
    return path + n;
}

/* Fills h[V1].path and h[V2].path from a /proc/self/cgroup file. */
static void read_cgroups(const char *file, char *line, struct hierarchy h[NVERSIONS])
{
    FILE *f = fopen(file, "re");
    if (!f) return;
    while (next_line(f, line, LINE_CAP)) {
        /* "ID:CONTROLLERS:PATH"; PATH may itself hold colons. */
        char *ctl = strchr(line, ':');
        if (!ctl) continue;
        *ctl++ = '\0';
        char *path = strchr(ctl, ':');
        if (!path) continue;
        *path++ = '\0';
        int v = strcmp(line, "0") == 0 && ctl[0] == '\0' ? V2 : has_item(ctl, "cpu") ? V1 : -1;
        if (v < 0 || h[v].path || !is_clean_path(path)) continue;
        h[v].path = strdup(path);
    }
    fclose(f);
}

/* Fills h[v].root and h[v].mnt, for each h[v].path known, from a
   /proc/self/mountinfo file:
   "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS" */
static void read_mounts(const char *file, char *line, struct hierarchy h[NVERSIONS])
{
    FILE *f = fopen(file, "re");
    if (!f) return;
    while (next_line(f, line, LINE_CAP)) {
        char *field[6], *save = NULL, *tok = strtok_r(line, " ", &save);
        int n = 0;
        for (; tok && n < 6; tok = strtok_r(NULL, " ", &save)) field[n++] = tok;
        while (tok && strcmp(tok, "-") != 0) tok = strtok_r(NULL, " ", &save);
        char *fstype = tok ? strtok_r(NULL, " ", &save) : NULL;
        char *source = fstype ? strtok_r(NULL, " ", &save) : NULL;
        char *superopts = source ? strtok_r(NULL, " ", &save) : NULL;
        if (n < 6 || !superopts) continue;

        int v = strcmp(fstype, "cgroup2") == 0                                ? V2
                : strcmp(fstype, "cgroup") == 0 && has_item(superopts, "cpu") ? V1
                                                                              : -1;
        if (v < 0 || !h[v].path) continue;
        char *root = field[3], *mnt = field[4];
        unescape(root);
        unescape(mnt);
        if (root[0] != '/' || mnt[0] != '/' || !below_root(root, h[v].path)) continue;
        if (h[v].root && strlen(h[v].root) >= strlen(root)) continue;

        char *root_copy = strdup(root), *mnt_copy = strdup(mnt);
        if (!root_copy || !mnt_copy) {
            free(root_copy);
            free(mnt_copy);
            continue;
        }
        free(h[v].root);
        free(h[v].mnt);
        h[v].root = root_copy;
        h[v].mnt = mnt_copy;
    }
    fclose(f);
}

/* Parses the decimal number (digits only, at most UINT64_MAX) that *s points
   at, and moves the pointer past it. Returns 0 when there is none or it
   overflows. */
static int parse_u64(const char **s, uint64_t *out)
{
    const char *p = *s;
    uint64_t v = 0;
    if (*p < '0' || *p > '9') return 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10) return 0;
        v = v * 10 + d;
    }
    *s = p;
    *out = v;
    return 1;
}

/* quota/period CPUs, rounded up; NO_LIMIT when either is 0 (invalid). */
static uint64_t cpus_of(uint64_t quota, uint64_t period)
{
    if (quota == 0 || period == 0) return NO_LIMIT;
    return quota / period + (quota % period != 0);
}

/* Reads the first line of dir/name (dir is a buffer with room for
   LONGEST_NAME at dir[len]) into line. Returns 0 when the file is missing or empty. */
static int read_first_line(char *dir, size_t len, const char *name, char *line)
{
    strcpy(dir + len, name);
    FILE *f = fopen(dir, "re");
    dir[len] = '\0';
    if (!f) return 0;
    int ok = next_line(f, line, LINE_CAP);
    fclose(f);
    return ok;
}

/* The CPU limit one cgroup directory sets (v2: cpu.max), or NO_LIMIT. */
static uint64_t limit_v2(char *dir, size_t len, char *line)
{
    if (!read_first_line(dir, len, "/cpu.max", line)) return NO_LIMIT;
    const char *s = line;
    uint64_t quota, period;
    if (!parse_u64(&s, &quota) || *s++ != ' ' || !parse_u64(&s, &period) || *s != '\0')
        return NO_LIMIT; /* "max PERIOD", or garbage */
    return cpus_of(quota, period);
}

/* The CPU limit one cgroup directory sets (v1: cfs quota/period), or
   NO_LIMIT. A negative quota (-1) means none. */
static uint64_t limit_v1(char *dir, size_t len, char *line)
{
    if (!read_first_line(dir, len, "/cpu.cfs_quota_us", line)) return NO_LIMIT;
    const char *s = line;
    uint64_t quota, period;
    if (!parse_u64(&s, &quota) || *s != '\0') return NO_LIMIT;
    if (!read_first_line(dir, len, "/cpu.cfs_period_us", line)) return NO_LIMIT;
    s = line;
    if (!parse_u64(&s, &period) || *s != '\0') return NO_LIMIT;
    return cpus_of(quota, period);
}

/* The smallest limit set from h's cgroup directory up to its mount point. */
static uint64_t hierarchy_limit(const struct hierarchy *h, int v, const char *prefix, char *line)
{
    const char *rel = below_root(h->root, h->path);
    size_t np = strlen(prefix), nm = strlen(h->mnt), nr = strlen(rel);
    char *dir = malloc(np + nm + nr + sizeof LONGEST_NAME);
    if (!dir) return NO_LIMIT;
    memcpy(dir, prefix, np);
    memcpy(dir + np, h->mnt, nm);
    memcpy(dir + np + nm, rel, nr + 1);

    /* dir[0, top) is the mount point; each round drops one component. */
    size_t top = np + nm, len = top + nr;
    uint64_t best = NO_LIMIT;
    for (;;) {
        while (len > top && dir[len - 1] == '/') len--;
        dir[len] = '\0';
        uint64_t lim = v == V2 ? limit_v2(dir, len, line) : limit_v1(dir, len, line);
        if (lim < best) best = lim;
        if (len == top) break;
        while (len > top && dir[len - 1] != '/') len--;
    }
    free(dir);
    return best;
}

unsigned wp__cpu_count_from(const char *proc_self_cgroup, const char *mountinfo,
                            const char *fs_prefix, unsigned affinity_cpus)
{
    unsigned n = affinity_cpus ? affinity_cpus : 1;
    char *line = proc_self_cgroup && mountinfo ? malloc(LINE_CAP) : NULL;
    if (!line) return n;

    struct hierarchy h[NVERSIONS] = {{0}};
    read_cgroups(proc_self_cgroup, line, h);
    read_mounts(mountinfo, line, h);
    uint64_t limit = NO_LIMIT;
    for (int v = 0; v < NVERSIONS; v++) {
        if (h[v].mnt) {
            uint64_t lim = hierarchy_limit(&h[v], v, fs_prefix ? fs_prefix : "", line);
            if (lim < limit) limit = lim;
        }
        free(h[v].path);
        free(h[v].root);
        free(h[v].mnt);
    }
    free(line);
    return limit < n ? (unsigned)limit : n; /* limit >= 1: cpus_of rounds up */
}

/* CPUs in the affinity mask; the online count if that cannot be read. */
static unsigned affinity_cpus(void)
{
    /* The kernel answers EINVAL while the set is smaller than its own CPU
       mask: grow until it fits. */
    for (int ncpu = CPU_SETSIZE; ncpu <= (1 << 22); ncpu *= 2) {
        cpu_set_t *set = CPU_ALLOC(ncpu);
        if (!set) break;
        size_t size = CPU_ALLOC_SIZE(ncpu);
        int rc = sched_getaffinity(0, size, set);
        int err = errno;
        int count = rc == 0 ? CPU_COUNT_S(size, set) : 0;
        CPU_FREE(set);
        if (rc == 0) return count > 0 ? (unsigned)count : 1;
        if (err != EINVAL) break;
    }
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    return online < 1 ? 1 : online > (long)UINT_MAX ? UINT_MAX : (unsigned)online;
}

unsigned wp_cpu_count(void)
{
    return wp__cpu_count_from("/proc/self/cgroup", "/proc/self/mountinfo", "", affinity_cpus());
}

unsigned wp__env_workers(void)
{
    const char *s = getenv("WPOOL_WORKERS");
    unsigned v = 0;
    if (!s || !*s) return 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return 0;
        v = v * 10 + (unsigned)(*s - '0');
        if (v > WP_MAX_WORKERS) return 0; /* also stops before any overflow */
    }
    return v;
}
