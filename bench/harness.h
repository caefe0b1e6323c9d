/*
 * harness.h: what every seed-benchmark program shares (wpool's and each
 * peer's): the workload, the allocation counter, and the child side of a row.
 *
 * The workload. One op is SEED_JOBS jobs; job n formats "payload-n" into a
 * stack buffer, SHA-256s it with OpenSSL's libcrypto and stores the first 8
 * digest bytes in result slot n % SEED_JOBS. Two ways to hash, both letting
 * threads run in parallel (OpenSSL 3's one-shot SHA256()/EVP_Digest() look
 * the algorithm up under a shared lock on every call and do not):
 *   default                the low-level SHA256_Init/Update/Final on a stack
 *                          SHA256_CTX: no lock, no allocation
 *   WPOOL_BENCH_HASH=evp   the EVP_MD fetched once per process, and each
 *                          thread hashing with its own EVP_MD_CTX: wpool's
 *                          made in worker_start and found through
 *                          wp_worker_id(), everyone else's thread-local, made
 *                          on first use. OpenSSL 3.0's EVP_DigestInit
 *                          allocates its state on every call, so each job
 *                          then costs one allocation in every row.
 * The default keeps the job itself allocation-free, so B/op and allocs/op
 * show only what each way of running jobs costs (as in the Go original,
 * whose crypto/sha256 allocates nothing).
 *
 * A program built on this file has a table of rows and calls bench_child_main
 * with it. Run as `PROG --list` it prints its row names; run as
 * `PROG --row NAME [--workers N] [--time S] [--iters N]` it runs that row the
 * way `go test -bench` runs a benchmark (N grows until one timed run of N ops
 * takes at least S seconds), checks the results against a serial reference
 * and prints one `RESULT key=value ...` line on stdout that runner.c reads.
 * `--flood N` instead submits N jobs once, as fast as one producer can.
 *
 * Allocations are counted by interposing malloc and its siblings in the
 * program itself (forwarding to glibc's __libc_* entry points), so B/op and
 * allocs/op are what really happened inside the timed region, in the library
 * under test, OpenSSL, libstdc++ or libc alike.
 */
#ifndef WPOOL_BENCH_HARNESS_H
#define WPOOL_BENCH_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SEED_JOBS 10000

/* Nonzero when jobs hash through EVP (WPOOL_BENCH_HASH=evp), 0 when through
   the low-level SHA256_* calls on a stack context (the default). */
int seed_hash_evp(void);
/* One line saying how jobs hash, for the report. */
const char *seed_hash_desc(void);

/* Job n with the given context (one thread at a time per context). */
void seed_job(size_t n, EVP_MD_CTX *ctx);

/* Job n with the calling thread's own context, made on first use and freed
   when the thread exits. */
void seed_job_tls(size_t n);

/* The calling thread's own context (see seed_job_tls). */
EVP_MD_CTX *seed_tls_ctx(void);

/* A new context for the fetched SHA-256 (NULL when hashing without EVP);
   exits the program if OpenSSL fails. */
EVP_MD_CTX *seed_ctx_new(void);
void seed_ctx_free(EVP_MD_CTX *ctx);

/* Prints "bench: <message>" on stderr and exits with status 3: the row fails
   (a submit that returned an error, a pool that could not be made). */
void bench_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* During a flood: nonzero once the time allowed for it (--flood-max-s) has
   run out. A flood checks it every few thousand jobs and stops submitting. */
int bench_flood_expired(void);

/* Nonzero when this process runs a flood (--flood), not timed ops. */
int bench_is_flood(void);

typedef struct bench_row {
    const char *name;
    int uses_workers; /* nonzero: --workers changes it (the sweep varies it) */
    /* Once per process, untimed. workers 0: the row's default. Returns 0, or
       nonzero when the row cannot run. */
    int (*setup)(unsigned workers);
    /* Runs jobs 0..SEED_JOBS-1 and returns once every one of them is done. */
    void (*op)(void);
    /* Submits jobs 0..n-1 one by one as fast as it can, stops early once
       bench_flood_expired(), waits for what it submitted and returns how
       many that was. NULL: the row has no flood. */
    uint64_t (*flood)(uint64_t n);
    /* Worker threads the row really used (after setup), for the report. */
    unsigned (*workers)(void);
    void (*teardown)(void); /* may be NULL */
} bench_row;

/* The child side: --list, --row. Returns the process exit status. */
int bench_child_main(int argc, char **argv, const bench_row *rows, size_t nrows);

/* Nonzero when argv asks for the child side (--list or --row). */
int bench_is_child(int argc, char **argv);

/* CPUs in this process's affinity mask (the peers' default thread count when
   the runner does not pass --workers). */
unsigned bench_affinity_cpus(void);

#ifdef __cplusplus
}
#endif

#endif
