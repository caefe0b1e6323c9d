/*
 * wp_cpu_count and $WPOOL_WORKERS.
 *
 * The cgroup cases build a fake tree in a temporary directory: a file laid
 * out as /proc/self/cgroup, one as /proc/self/mountinfo, and under "fs/" the
 * mounted cgroup directories, then ask wp__cpu_count_from() with "fs" as
 * the prefix of every mount point.
 */
#include <errno.h>
#include <ftw.h>
#include <sched.h>
#include <sys/stat.h>

#include "cpu.h"
#include "test.h"
#include "wpool.h"

static char tree[64]; /* the temporary directory of the current case */
static char cgroup_file[128], mountinfo_file[128], fs_prefix[128];

/* Writes content to tree/rel, making the directories on the way. */
static void put(const char *rel, const char *content)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tree, rel);
    for (char *s = path + strlen(tree) + 1; (s = strchr(s, '/')); s++) {
        *s = '\0';
        mkdir(path, 0755);
        *s = '/';
    }
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "cannot write %s\n", path);
        abort();
    }
    fputs(content, f);
    fclose(f);
}

static void make_tree(void)
{
    strcpy(tree, "/tmp/wpool-cpu-XXXXXX");
    if (!mkdtemp(tree)) abort();
    snprintf(cgroup_file, sizeof cgroup_file, "%s/cgroup", tree);
    snprintf(mountinfo_file, sizeof mountinfo_file, "%s/mountinfo", tree);
    snprintf(fs_prefix, sizeof fs_prefix, "%s/fs", tree);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void drop_tree(void)
{
    nftw(tree, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The count for the current tree with `affinity` CPUs in the mask. */
static unsigned count(unsigned affinity)
{
    return wp__cpu_count_from(cgroup_file, mountinfo_file, fs_prefix, affinity);
}

#define V2_MOUNT "30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
#define OTHER_MOUNTS                                                                               \
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"                                      \
    "23 22 0:5 / /proc rw,nosuid shared:12 - proc proc rw\n"

/* ------------------------------------------------------------ cgroup v2 -- */

TEST(v2_quota_at_the_leaf)
{
    make_tree();
    put("cgroup", "0::/user.slice/app.service\n");
    put("mountinfo", OTHER_MOUNTS V2_MOUNT);
    put("fs/sys/fs/cgroup/user.slice/app.service/cpu.max", "300000 100000\n");
    unsigned n = count(8);
    drop_tree();
    ASSERT_EQ(n, 3);
}

TEST(v2_parent_tighter_than_leaf_wins)
{
    make_tree();
    put("cgroup", "0::/a/b/c\n");
    put("mountinfo", V2_MOUNT);
    put("fs/sys/fs/cgroup/a/b/c/cpu.max", "600000 100000\n");
    put("fs/sys/fs/cgroup/a/b/cpu.max", "max 100000\n");
    put("fs/sys/fs/cgroup/a/cpu.max", "200000 100000\n");
    unsigned n = count(8);
    drop_tree();
    ASSERT_EQ(n, 2);
}

TEST(v2_leaf_tighter_than_parent_wins)
{
    make_tree();
    put("cgroup", "0::/a/b\n");
    put("mountinfo", V2_MOUNT);
    put("fs/sys/fs/cgroup/a/b/cpu.max", "100000 100000\n");
    put("fs/sys/fs/cgroup/a/cpu.max", "400000 100000\n");
    unsigned n = count(8);
    drop_tree();
    ASSERT_EQ(n, 1);
}

TEST(v2_max_everywhere_gives_the_affinity_count)
{
    make_tree();
    put("cgroup", "0::/a/b\n");
    put("mountinfo", V2_MOUNT);
    put("fs/sys/fs/cgroup/a/b/cpu.max", "max 100000\n");
    put("fs/sys/fs/cgroup/a/cpu.max", "max 100000\n");
    unsigned n = count(6);
    drop_tree();
    ASSERT_EQ(n, 6);
}

TEST(v2_quota_is_rounded_up)
{
    make_tree();
    put("cgroup", "0::/a\n");
    put("mountinfo", V2_MOUNT);
    put("fs/sys/fs/cgroup/a/cpu.max", "150000 100000\n");
    unsigned n = count(8);
    drop_tree();
    ASSERT_EQ(n, 2);
}

TEST(v2_quota_below_one_cpu_gives_one)
{
    make_tree();
    put("cgroup", "0::/a\n");
    put("mountinfo", V2_MOUNT);
    put("fs/sys/fs/cgroup/a/cpu.max", "1000 100000\n");
    unsigned n = count(8);
    drop_tree();
    ASSERT_EQ(n, 1);
}

TEST(affinity_smaller_than_quota_wins)
{
    make_tree();
    put("cgroup", "0::/a\n");
    put("mountinfo", V2_MOUNT);
    put("fs/sys/fs/cgroup/a/cpu.max", "400000 100000\n");
    unsigned n = count(2);
    drop_tree();
    ASSERT_EQ(n, 2);
}

TEST(huge_quota_is_capped_by_affinity)
{
    make_tree();
    put("cgroup", "0::/a\n");
    put("mountinfo", V2_MOUNT);
    put("fs/sys/fs/cgroup/a/cpu.max", "18446744073709551615 1\n");
    unsigned n = count(3);
    drop_tree();
    ASSERT_EQ(n, 3);
}

/* A container without a cgroup namespace: /proc/self/cgroup names the full
   path, but only the container's own sub-tree is mounted, at /sys/fs/cgroup.
   The decoy files sit where a reader ignoring the mount root would look. */
TEST(v2_container_mount_of_a_subtree)
{
    make_tree();
    put("cgroup", "0::/kubepods/pod7/ctr\n");
    put("mountinfo", "500 400 0:26 /kubepods/pod7/ctr /sys/fs/cgroup ro,nosuid - cgroup2 cgroup "
                     "rw\n");
    put("fs/sys/fs/cgroup/cpu.max", "300000 100000\n");
    put("fs/sys/fs/cgroup/kubepods/pod7/ctr/cpu.max", "100000 100000\n");
    unsigned n = count(8);
    drop_tree();
    ASSERT_EQ(n, 3);
}

/* The mount shows /kubepods: levels pod7/ctr, pod7 and the mount point
   itself are read; the tightest (at the mount point) wins. */
TEST(v2_subtree_mount_reads_every_visible_level)
{
    make_tree();
    put("cgroup", "0::/kubepods/pod7/ctr\n");
    put("mountinfo", "500 400 0:26 /kubepods /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
    put("fs/sys/fs/cgroup/pod7/ctr/cpu.max", "max 100000\n");
    put("fs/sys/fs/cgroup/pod7/cpu.max", "500000 100000\n");
    put("fs/sys/fs/cgroup/cpu.max", "200000 100000\n");
    unsigned n = count(8);
    drop_tree();
    ASSERT_EQ(n, 2);
}

/* With a cgroup namespace the process sees itself at the root: "0::/". */
TEST(v2_cgroup_namespace_root)
{
    make_tree();
    put("cgroup", "0::/\n");
    put("mountinfo", "500 400 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
    put("fs/sys/fs/cgroup/cpu.max", "250000 100000\n");
    unsigned n = count(8);
    drop_tree();
    ASSERT_EQ(n, 3);
}

TEST(v2_mount_of_another_subtree_is_not_used)
{
    make_tree();
    put("cgroup", "0::/a/b\n");
    put("mountinfo", "500 400 0:26 /other /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
                     "501 400 0:26 /ab /mnt rw - cgroup2 cgroup2 rw\n");
    put("fs/sys/fs/cgroup/cpu.max", "100000 100000\n");
    put("fs/sys/fs/cgroup/a/b/cpu.max", "100000 100000\n");
    put("fs/mnt/cpu.max", "100000 100000\n");
    unsigned n = count(4);
    drop_tree();
    ASSERT_EQ(n, 4);
}

/* Of two mounts that both contain the cgroup, the one showing the deepest
   sub-tree is used (the other may hide levels behind a shorter mount). */
TEST(v2_longest_mount_root_is_used)
{
    make_tree();
    put("cgroup", "0::/a/b\n");
    put("mountinfo", "500 400 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
                     "501 400 0:26 /a/b /inner rw - cgroup2 cgroup2 rw\n");
    put("fs/inner/cpu.max", "200000 100000\n");
    put("fs/sys/fs/cgroup/a/b/cpu.max", "100000 100000\n");
    unsigned n = count(8);
    drop_tree();
    ASSERT_EQ(n, 2);
}

TEST(escaped_mount_point)
{
    make_tree();
    put("cgroup", "0::/a\n");
    put("mountinfo", "30 23 0:26 / /cg\\040root rw - cgroup2 cgroup2 rw\n");
    put("fs/cg root/a/cpu.max", "200000 100000\n");
    unsigned n = count(8);
    drop_tree();
    ASSERT_EQ(n, 2);
}

/* A cgroup outside our namespace shows as "/../x": never followed. */
TEST(dot_dot_cgroup_path_is_ignored)
{
    make_tree();
    put("cgroup", "0::/../outside\n");
    put("mountinfo", "30 23 0:26 / /sys/fs/cgroup/inner rw - cgroup2 cgroup2 rw\n");
    put("fs/sys/fs/cgroup/outside/cpu.max", "100000 100000\n");
    put("fs/sys/fs/cgroup/inner/cpu.max", "max 100000\n");
    unsigned n = count(5);
    drop_tree();
    ASSERT_EQ(n, 5);
}

/* ------------------------------------------------------------ cgroup v1 -- */

#define V1_MOUNTS                                                                                  \
    "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755\n"                                   \
    "34 31 0:31 / /sys/fs/cgroup/cpuset rw - cgroup cgroup rw,cpuset\n"                            \
    "35 31 0:32 / /sys/fs/cgroup/cpu,cpuacct rw shared:9 - cgroup cgroup rw,cpu,cpuacct\n"         \
    "36 31 0:33 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
#define V1_CGROUPS                                                                                 \
    "12:memory:/a/b\n"                                                                             \
    "4:cpuset:/a/b\n"                                                                              \
    "3:cpu,cpuacct:/a/b\n"                                                                         \
    "1:name=systemd:/a/b\n"

TEST(v1_quota_at_the_leaf)
{
    make_tree();
    put("cgroup", V1_CGROUPS);
    put("mountinfo", V1_MOUNTS);
    put("fs/sys/fs/cgroup/cpu,cpuacct/a/b/cpu.cfs_quota_us", "250000\n");
    put("fs/sys/fs/cgroup/cpu,cpuacct/a/b/cpu.cfs_period_us", "100000\n");
    /* the cpuset hierarchy holds no quota; a reader that took it would see this */
    put("fs/sys/fs/cgroup/cpuset/a/b/cpu.cfs_quota_us", "100000\n");
    put("fs/sys/fs/cgroup/cpuset/a/b/cpu.cfs_period_us", "100000\n");
    unsigned n = count(8);
    drop_tree();
    ASSERT_EQ(n, 3);
}

TEST(v1_minus_one_means_no_quota)
{
    make_tree();
    put("cgroup", V1_CGROUPS);
    put("mountinfo", V1_MOUNTS);
    put("fs/sys/fs/cgroup/cpu,cpuacct/a/b/cpu.cfs_quota_us", "-1\n");
    put("fs/sys/fs/cgroup/cpu,cpuacct/a/b/cpu.cfs_period_us", "100000\n");
    put("fs/sys/fs/cgroup/cpu,cpuacct/a/cpu.cfs_quota_us", "-1\n");
    put("fs/sys/fs/cgroup/cpu,cpuacct/a/cpu.cfs_period_us", "100000\n");
    put("fs/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
    put("fs/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
    unsigned n = count(7);
    drop_tree();
    ASSERT_EQ(n, 7);
}

TEST(v1_parent_caps_the_leaf)
{
    make_tree();
    put("cgroup", V1_CGROUPS);
    put("mountinfo", V1_MOUNTS);
    put("fs/sys/fs/cgroup/cpu,cpuacct/a/b/cpu.cfs_quota_us", "-1\n");
    put("fs/sys/fs/cgroup/cpu,cpuacct/a/b/cpu.cfs_period_us", "100000\n");
    put("fs/sys/fs/cgroup/cpu,cpuacct/a/cpu.cfs_quota_us", "50000\n");
    put("fs/sys/fs/cgroup/cpu,cpuacct/a/cpu.cfs_period_us", "20000\n");
    unsigned n = count(8);
    drop_tree();
    ASSERT_EQ(n, 3);
}

/* cpu alone in its hierarchy ("1:cpu:/"), as on some hosts. */
TEST(v1_cpu_controller_alone)
{
    make_tree();
    put("cgroup", "2:cpuacct:/x\n1:cpu:/x\n");
    put("mountinfo", "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"
                     "33 31 0:30 / /sys/fs/cgroup/cpuacct rw - cgroup cgroup rw,cpuacct\n");
    put("fs/sys/fs/cgroup/cpu/x/cpu.cfs_quota_us", "100000\n");
    put("fs/sys/fs/cgroup/cpu/x/cpu.cfs_period_us", "100000\n");
    unsigned n = count(8);
    drop_tree();
    ASSERT_EQ(n, 1);
}

TEST(v1_container_mount_of_a_subtree)
{
    make_tree();
    put("cgroup", "3:cpu,cpuacct:/docker/abc\n");
    put("mountinfo", "35 31 0:32 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro - cgroup cgroup "
                     "rw,cpu,cpuacct\n");
    put("fs/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "200000\n");
    put("fs/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
    unsigned n = count(8);
    drop_tree();
    ASSERT_EQ(n, 2);
}

/* Hybrid: v1 holds the cpu controller, v2 is mounted too; both are read. */
TEST(hybrid_v1_and_v2_smaller_wins)
{
    make_tree();
    put("cgroup", "3:cpu,cpuacct:/a\n0::/a\n");
    put("mountinfo", V1_MOUNTS "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n");
    put("fs/sys/fs/cgroup/cpu,cpuacct/a/cpu.cfs_quota_us", "400000\n");
    put("fs/sys/fs/cgroup/cpu,cpuacct/a/cpu.cfs_period_us", "100000\n");
    put("fs/sys/fs/cgroup/unified/a/cpu.max", "300000 100000\n");
    unsigned n = count(8);
    drop_tree();
    ASSERT_EQ(n, 3);
}

/* ------------------------------------------------- garbage and absence -- */

TEST(garbage_quota_files_give_the_affinity_count)
{
    static const char *const v2[] = {
        "",
        "\n",
        "garbage\n",
        "max\n",
        "100000\n",
        "100000 \n",
        "-5 100000\n",
        "0 100000\n",
        "100000 0\n",
        "1e5 100000\n",
        "100000  100000\n",
        "100000 100000 x\n",
        "18446744073709551616 100000\n",
        "100000 18446744073709551616\n",
        "\xff\xfe\x01\n",
    };
    for (size_t i = 0; i < sizeof v2 / sizeof v2[0]; i++) {
        make_tree();
        put("cgroup", "0::/a\n");
        put("mountinfo", V2_MOUNT);
        put("fs/sys/fs/cgroup/a/cpu.max", v2[i]);
        unsigned n = count(5);
        drop_tree();
        if (n != 5) fprintf(stderr, "  cpu.max \"%s\"\n", v2[i]);
        ASSERT_EQ(n, 5);
    }
    static const char *const v1[][2] = {
        {"", "100000\n"},       {"abc\n", "100000\n"}, {"100000\n", ""},
        {"100000\n", "0\n"},    {"100000\n", "-1\n"},  {"0\n", "100000\n"},
        {"-2\n", "100000\n"},   {"1 2\n", "100000\n"}, {"100000x\n", "100000\n"},
        {"100000\n", "junk\n"},
    };
    for (size_t i = 0; i < sizeof v1 / sizeof v1[0]; i++) {
        make_tree();
        put("cgroup", V1_CGROUPS);
        put("mountinfo", V1_MOUNTS);
        put("fs/sys/fs/cgroup/cpu,cpuacct/a/b/cpu.cfs_quota_us", v1[i][0]);
        put("fs/sys/fs/cgroup/cpu,cpuacct/a/b/cpu.cfs_period_us", v1[i][1]);
        unsigned n = count(5);
        drop_tree();
        if (n != 5) fprintf(stderr, "  quota \"%s\" period \"%s\"\n", v1[i][0], v1[i][1]);
        ASSERT_EQ(n, 5);
    }
}

/* Valid quota files everywhere, but /proc/self/cgroup or mountinfo is
   garbage: no cgroup can be found, so the affinity count stands. */
TEST(garbage_proc_files_give_the_affinity_count)
{
    static const char *const cgroups[] = {
        "",
        "\n\n\n",
        "0:/a\n",
        "0::a\n",
        "no colons at all\n",
        "1::/a\n",        /* v2 lines have hierarchy ID 0 */
        "3:cpuacct:/a\n", /* no cpu controller */
        "3:cpuset:/a\n",  /* "cpu" must be a whole item */
        "0::/a/../b\n",   /* ".." never followed */
        "0::/./a\n",
        "\x01\x02:\x03:\x04\n",
    };
    static const char *const mounts[] = {
        "",
        "30 23 0:26 / /sys/fs/cgroup rw\n",                           /* no separator */
        "30 23 0:26 / /sys/fs/cgroup rw - cgroup2\n",                 /* cut short */
        "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2\n",         /* no super options */
        "30 23 / /sys/fs/cgroup - cgroup2 cgroup2 rw\n",              /* too few fields */
        "30 23 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw,cpu\n",      /* not a cgroup fs */
        "30 23 0:26 / /sys/fs/cgroup rw - cgroup cgroup rw,cpuset\n", /* not the cpu one */
        "30 23 0:26 a /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",      /* relative root */
        "30 23 0:26 / sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",       /* relative mount */
        "- - - - - - - - - -\n",
    };
    for (size_t i = 0; i < sizeof cgroups / sizeof cgroups[0]; i++) {
        make_tree();
        put("cgroup", cgroups[i]);
        put("mountinfo", V1_MOUNTS V2_MOUNT);
        put("fs/sys/fs/cgroup/a/cpu.max", "100000 100000\n");
        put("fs/sys/fs/cgroup/b/cpu.max", "100000 100000\n");
        put("fs/sys/fs/cgroup/cpu,cpuacct/a/cpu.cfs_quota_us", "100000\n");
        put("fs/sys/fs/cgroup/cpu,cpuacct/a/cpu.cfs_period_us", "100000\n");
        unsigned n = count(4);
        drop_tree();
        if (n != 4) fprintf(stderr, "  cgroup file \"%s\"\n", cgroups[i]);
        ASSERT_EQ(n, 4);
    }
    for (size_t i = 0; i < sizeof mounts / sizeof mounts[0]; i++) {
        make_tree();
        put("cgroup", "3:cpu,cpuacct:/a\n0::/a\n");
        put("mountinfo", mounts[i]);
        put("fs/sys/fs/cgroup/a/cpu.max", "100000 100000\n");
        put("fs/sys/fs/cgroup/a/cpu.cfs_quota_us", "100000\n");
        put("fs/sys/fs/cgroup/a/cpu.cfs_period_us", "100000\n");
        unsigned n = count(4);
        drop_tree();
        if (n != 4) fprintf(stderr, "  mountinfo \"%s\"\n", mounts[i]);
        ASSERT_EQ(n, 4);
    }
}

/* A line far longer than any real one is skipped whole; the lines after it
   are still read. Alone (no newline at the end), it yields nothing. */
TEST(unbounded_lines_are_skipped)
{
    size_t big = 1u << 20;
    char *junk = malloc(big + 1);
    ASSERT(junk != NULL);
    memset(junk, '/', big);
    junk[big] = '\0';

    make_tree();
    char *cg = malloc(big + 64), *mi = malloc(big + 256);
    ASSERT(cg != NULL && mi != NULL);
    snprintf(cg, big + 64, "0::%s\n0::/a\n", junk);
    snprintf(mi, big + 256, "30 23 0:26 %s /x rw - cgroup2 cgroup2 rw\n%s", junk, V2_MOUNT);
    put("cgroup", cg);
    put("mountinfo", mi);
    put("fs/sys/fs/cgroup/a/cpu.max", "200000 100000\n");
    unsigned with_valid_lines = count(8);
    put("cgroup", junk);
    unsigned junk_only = count(8);
    put("cgroup", "0::/a\n");
    put("fs/sys/fs/cgroup/a/cpu.max", junk);
    unsigned junk_quota = count(8);
    drop_tree();
    free(cg);
    free(mi);
    free(junk);
    ASSERT_EQ(with_valid_lines, 2);
    ASSERT_EQ(junk_only, 8);
    ASSERT_EQ(junk_quota, 8);
}

TEST(missing_files_give_the_affinity_count)
{
    make_tree();
    unsigned no_files = count(3);
    put("cgroup", "0::/a\n");
    unsigned no_mountinfo = count(3);
    put("mountinfo", V2_MOUNT);
    unsigned no_quota_file = count(3); /* fs/ does not even exist */
    put("fs/sys/fs/cgroup/a/cpu.max", "100000 100000\n");
    unsigned all_there = count(3);
    drop_tree();
    ASSERT_EQ(no_files, 3);
    ASSERT_EQ(no_mountinfo, 3);
    ASSERT_EQ(no_quota_file, 3);
    ASSERT_EQ(all_there, 1);
}

TEST(null_arguments_and_zero_affinity)
{
    ASSERT_EQ(wp__cpu_count_from(NULL, NULL, NULL, 6), 6);
    ASSERT_EQ(wp__cpu_count_from("/nonexistent/cgroup", NULL, "", 6), 6);
    ASSERT_EQ(wp__cpu_count_from(NULL, NULL, NULL, 0), 1);
    make_tree();
    char line[256];
    snprintf(line, sizeof line, "30 23 0:26 / %s/m rw - cgroup2 cgroup2 rw\n", tree);
    put("cgroup", "0::/a\n");
    put("mountinfo", line);
    put("m/a/cpu.max", "200000 100000\n");
    /* a NULL prefix takes mount points as they are */
    unsigned null_prefix = wp__cpu_count_from(cgroup_file, mountinfo_file, NULL, 8);
    drop_tree();
    ASSERT_EQ(null_prefix, 2);
}

/* ------------------------------------------------------ the real machine -- */

TEST(real_count_is_within_the_affinity_mask)
{
    cpu_set_t set;
    ASSERT_OK(sched_getaffinity(0, sizeof set, &set));
    unsigned n = wp_cpu_count();
    ASSERT_GE(n, 1);
    ASSERT_LE(n, CPU_COUNT(&set));
    /* the same answer through the injectable entry point */
    ASSERT_EQ(wp__cpu_count_from("/proc/self/cgroup", "/proc/self/mountinfo", "",
                                 (unsigned)CPU_COUNT(&set)),
              n);
}

/* --------------------------------------------------------- WPOOL_WORKERS -- */

TEST(wpool_workers_valid_values)
{
    static const struct {
        const char *text;
        unsigned want;
    } cases[] = {{"1", 1}, {"8", 8}, {"0016", 16}, {"4096", 4096}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        setenv("WPOOL_WORKERS", cases[i].text, 1);
        unsigned got = wp__env_workers();
        unsetenv("WPOOL_WORKERS");
        ASSERT_EQ(got, cases[i].want);
    }
}

TEST(wpool_workers_invalid_values_are_ignored)
{
    static const char *const bad[] = {
        "",    "0",    "000",   "-1",         "-8",
        "+8",  " 8",   "8 ",    "8x",         "x8",
        "abc", "4097", "10000", "4294967297", "99999999999999999999999999",
        "1e3", "0x10", "8\n",
    };
    unsetenv("WPOOL_WORKERS");
    ASSERT_EQ(wp__env_workers(), 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("WPOOL_WORKERS", bad[i], 1);
        unsigned got = wp__env_workers();
        unsetenv("WPOOL_WORKERS");
        if (got != 0) fprintf(stderr, "  WPOOL_WORKERS=\"%s\"\n", bad[i]);
        ASSERT_EQ(got, 0);
    }
}

TEST_MAIN()
