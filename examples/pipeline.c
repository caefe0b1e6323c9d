/*
 * A three-stage pipeline over small bounded channels:
 *
 *   produce --[cap 4]--> square --[cap 4]--> consume (slow: 1 ms per item)
 *
 * The producer could make all its items in microseconds, but each channel
 * holds at most 4, so once they fill, every send waits for room: the slow
 * last stage sets the pace of the first (backpressure), and at no moment are
 * more than 4 + 1 + 4 + 1 items between the producer and the consumer, however
 * many are produced (memory stays flat). Closing a channel is how a stage
 * says "no more": the next stage's recv returns EPIPE once it is drained.
 */
#include <wpool.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

/* In flight at most: a full channel each, one item in square's hands, one in
   consume's. */
enum { ITEMS = 200, CAP = 4, BOUND = CAP + 1 + CAP + 1 };

static wp_chan *raw, *squared;
static atomic_int produced, consumed, max_in_flight;
static double producer_done_ms, consumer_done_ms;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void *produce(void *arg)
{
    (void)arg;
    for (long i = 1; i <= ITEMS; i++) {
        wp_chan_send(raw, &i); /* waits while `raw` is full */
        int in_flight = atomic_fetch_add(&produced, 1) + 1 - atomic_load(&consumed);
        int seen = atomic_load(&max_in_flight);
        while (in_flight > seen &&
               !atomic_compare_exchange_weak(&max_in_flight, &seen, in_flight)) {
        }
    }
    producer_done_ms = now_ms();
    wp_chan_close(raw);
    return NULL;
}

static void *square(void *arg)
{
    (void)arg;
    long i;
    while (wp_chan_recv(raw, &i) == 0) {
        long sq = i * i;
        wp_chan_send(squared, &sq);
    }
    wp_chan_close(squared); /* raw is closed and drained: pass the close on */
    return NULL;
}

static void *consume(void *arg)
{
    long *sum = arg, sq;
    while (wp_chan_recv(squared, &sq) == 0) {
        atomic_fetch_add(&consumed, 1);
        *sum += sq;
        nanosleep(&(struct timespec){0, 1000000}, NULL); /* the slow stage */
    }
    consumer_done_ms = now_ms();
    return NULL;
}

int main(void)
{
    if (wp_chan_create(&raw, sizeof(long), CAP) || wp_chan_create(&squared, sizeof(long), CAP)) {
        fprintf(stderr, "pipeline: cannot create channels\n");
        return 1;
    }
    long sum = 0;
    pthread_t t[3];
    double start = now_ms();
    pthread_create(&t[0], NULL, produce, NULL);
    pthread_create(&t[1], NULL, square, NULL);
    pthread_create(&t[2], NULL, consume, &sum);
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);

    long want = (long)ITEMS * (ITEMS + 1) * (2 * ITEMS + 1) / 6;
    printf("pipeline: %d items, channels of capacity %d, last stage 1 ms per item\n", ITEMS, CAP);
    printf("  producer sent its last item after %6.1f ms (alone it would take well under 1 ms)\n",
           producer_done_ms - start);
    printf("  consumer finished after           %6.1f ms\n", consumer_done_ms - start);
    printf("  most items in flight at once: %d (bound %d, however many items)\n",
           atomic_load(&max_in_flight), BOUND);
    printf("  sum of squares: %ld (%s)\n", sum, sum == want ? "correct" : "WRONG");

    wp_chan_destroy(raw);
    wp_chan_destroy(squared);
    return sum == want && atomic_load(&max_in_flight) <= BOUND ? 0 : 1;
}
