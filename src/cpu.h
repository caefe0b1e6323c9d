/*
 * cpu.h: the internal side of cpu.c (usable CPU count, $WPOOL_WORKERS).
 */
#ifndef WPOOL_CPU_H
#define WPOOL_CPU_H

/* The worker count $WPOOL_WORKERS asks for: a plain decimal number (digits
   only, no sign or spaces) in 1..WP_MAX_WORKERS. Returns 0, meaning "not
   set", when the variable is unset or holds anything else (empty, 0, too
   big, garbage, trailing junk). Cannot fail otherwise. */
unsigned wp__env_workers(void);

/* wp_cpu_count() with its inputs made explicit, so that tests can build a
   fake tree: proc_self_cgroup and mountinfo are the paths of files laid out
   as /proc/self/cgroup and /proc/self/mountinfo, fs_prefix (NULL: "") is
   put in front of every mount point read from mountinfo, and affinity_cpus
   is the count to cap (0 counts as 1).
   Returns min(affinity_cpus, the smallest cgroup CPU quota rounded up) and
   at least 1. Missing, unreadable or malformed files (NULL paths included)
   only mean "no quota known there"; nothing is left allocated. */
unsigned wp__cpu_count_from(const char *proc_self_cgroup, const char *mountinfo,
                            const char *fs_prefix, unsigned affinity_cpus);

#endif
