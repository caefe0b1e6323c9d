/*
 * runner.h: the side of wpool_bench that runs rows in child processes and
 * prints the table (runner.c).
 */
#ifndef WPOOL_BENCH_RUNNER_H
#define WPOOL_BENCH_RUNNER_H

/* Runs the rows of this program, of every --bin program and of the --go
   test binary, rounds interleaved, and reports them. Returns the exit
   status: 0, or 1 when a row failed (wrong results, a crash, a timeout). */
int runner_main(int argc, char **argv);

#endif
