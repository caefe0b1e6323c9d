/*
 * wpool channels against themselves, the same three shapes as chan_test.go:
 *
 *   PingPong        two unbuffered channels, one round trip per op
 *   Buffered128_1x1 capacity 128, 1 sender and 1 receiver, one element per op
 *   Buffered128_4x4 capacity 128, 4 senders and 4 receivers, idem
 *
 * Elements are 8 bytes (Go's chan int). Each benchmark is sized, like Go's
 * testing.B, by doubling the op count until a run lasts target_ms, then run
 * `runs` times; each run prints "name ns_per_op" (run.sh takes the median).
 *
 * usage: chan_bench [runs (5)] [target_ms (300)]
 */
#include <wpool.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------ ping-pong -- */

struct pingpong {
    wp_chan *ping, *pong;
};

/* The channels are read once: the struct lives on the main thread's stack,
   on the line its loop counter and result are written to every op, and
   reading it per op would measure that false sharing too (Go's goroutine
   has them in its closure). */
static void *echo(void *arg)
{
    const struct pingpong *pp = arg;
    wp_chan *ping = pp->ping, *pong = pp->pong;
    int64_t v;
    while (wp_chan_recv(ping, &v) == 0) wp_chan_send(pong, &v);
    return NULL;
}

static double pingpong(uint64_t n)
{
    struct pingpong pp;
    wp_chan_create(&pp.ping, sizeof(int64_t), 0);
    wp_chan_create(&pp.pong, sizeof(int64_t), 0);
    pthread_t t;
    pthread_create(&t, NULL, echo, &pp);
    uint64_t t0 = now_ns();
    for (int64_t i = 0; i < (int64_t)n; i++) {
        int64_t v;
        wp_chan_send(pp.ping, &i);
        wp_chan_recv(pp.pong, &v);
    }
    uint64_t dt = now_ns() - t0;
    wp_chan_close(pp.ping);
    pthread_join(t, NULL);
    wp_chan_destroy(pp.ping);
    wp_chan_destroy(pp.pong);
    return (double)dt / (double)n;
}

/* ------------------------------------------------------------- buffered -- */

struct flow {
    wp_chan *c;
    uint64_t per_sender;
    pthread_barrier_t start;
};

static void *sender(void *arg)
{
    struct flow *f = arg;
    pthread_barrier_wait(&f->start);
    for (int64_t i = 0; i < (int64_t)f->per_sender; i++) wp_chan_send(f->c, &i);
    return NULL;
}

static void *receiver(void *arg)
{
    struct flow *f = arg;
    int64_t v;
    pthread_barrier_wait(&f->start);
    while (wp_chan_recv(f->c, &v) == 0) {
    }
    return NULL;
}

static double buffered(uint64_t n, int senders, int receivers)
{
    struct flow f = {.per_sender = n / (uint64_t)senders};
    wp_chan_create(&f.c, sizeof(int64_t), 128);
    pthread_barrier_init(&f.start, NULL, (unsigned)(senders + receivers + 1));
    pthread_t s[8], r[8];
    for (int i = 0; i < senders; i++) pthread_create(&s[i], NULL, sender, &f);
    for (int i = 0; i < receivers; i++) pthread_create(&r[i], NULL, receiver, &f);
    pthread_barrier_wait(&f.start);
    uint64_t t0 = now_ns();
    for (int i = 0; i < senders; i++) pthread_join(s[i], NULL);
    wp_chan_close(f.c);
    for (int i = 0; i < receivers; i++) pthread_join(r[i], NULL);
    uint64_t dt = now_ns() - t0;
    pthread_barrier_destroy(&f.start);
    wp_chan_destroy(f.c);
    return (double)dt / (double)(f.per_sender * (uint64_t)senders);
}

static double buffered_1x1(uint64_t n)
{
    return buffered(n, 1, 1);
}

static double buffered_4x4(uint64_t n)
{
    return buffered(n, 4, 4);
}

/* --------------------------------------------------------------- driver -- */

static void run(const char *name, double (*fn)(uint64_t), int runs, double target_ms)
{
    uint64_t n = 1000;
    for (;;) { /* grow n until one run takes target_ms, as testing.B does */
        double ns = fn(n) * (double)n;
        if (ns >= target_ms * 1e6 || n >= (uint64_t)1 << 32) break;
        double want = target_ms * 1e6 / (ns > 1 ? ns : 1) * (double)n * 1.2;
        n = want > (double)(n * 100) ? n * 100 : want < (double)(n * 2) ? n * 2 : (uint64_t)want;
    }
    for (int i = 0; i < runs; i++) {
        printf("%s %.1f\n", name, fn(n));
        fflush(stdout);
    }
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 5;
    double target_ms = argc > 2 ? atof(argv[2]) : 300;
    if (runs < 1) runs = 1;
    run("PingPong", pingpong, runs, target_ms);
    run("Buffered128_1x1", buffered_1x1, runs, target_ms);
    run("Buffered128_4x4", buffered_4x4, runs, target_ms);
    return 0;
}
