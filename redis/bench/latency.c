/*
 * wpool_redis_latency URL STREAM RATE COUNT WORKERS: push-to-ack latency of
 * wpool-redis at a fixed rate (make bench-redis).
 *
 * One process: a consumer (wp_redis_serve on a pool of WORKERS, the seed's
 * SHA-256 per job), a producer that pushes COUNT jobs on an open-loop
 * schedule, job i due at start + i/RATE, and a MONITOR connection that sees
 * each XACK with the server's own timestamp. Each time the producer wakes
 * it pushes every job due by then in one pipelined wp_redis_push_batch, so
 * its own round trip per push does not cap the rate (one wp_redis_push per
 * job kept up with 6,000 jobs/s on a 2-vCPU VM, not 10,000, and the latency
 * measured the producer falling behind). The handler records which entry
 * id carries job i (its data is i + 1). A job's latency is its XACK's
 * server time minus its scheduled push time (same machine, same
 * CLOCK_REALTIME), so a producer that falls behind is counted against the
 * queue, not hidden (no coordinated omission). Prints one line:
 *   latency: rate R/s, N jobs, p50 X us, p99 Y us, p99.9 Z us, max W us
 * MONITOR itself slows the server a little: the numbers are an upper bound.
 */
#include <wpool_redis.h>

#include <hiredis.h>

#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct mark {
    unsigned long long ms, seq; /* the entry id */
    double t;                   /* seconds, CLOCK_REALTIME */
};

static struct mark *pushes, *acks; /* pushes[i]: job i's entry id and due time */
static atomic_uchar *seen;         /* seen[i]: job i's id is in pushes[i] */
static size_t count, nack, ack_cap;
static atomic_int monitor_stop;
static const char *stream;

static double now_real(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void parse_id(const char *s, struct mark *m)
{
    m->ms = strtoull(s, (char **)&s, 10);
    m->seq = *s == '-' ? strtoull(s + 1, NULL, 10) : 0;
}

static int seed_fn(const void *data, size_t len, const char *id, unsigned delivery, void *user)
{
    (void)delivery, (void)user;
    char num[24];
    size_t k = len < sizeof num ? len : sizeof num - 1;
    memcpy(num, data, k);
    num[k] = 0;
    size_t i = strtoull(num, NULL, 10) - 1;
    /* The first delivery of job i names its id (a redelivery has the same). */
    if (i < count && !atomic_exchange(&seen[i], 1)) parse_id(id, &pushes[i]);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    return EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) ? 0 : 1;
}

/* MONITOR lines: 1700000000.123456 [0 127.0.0.1:5555] "XACK" "s" "g" "id"... */
static void *monitor_main(void *arg)
{
    redisContext *c = arg;
    while (!atomic_load(&monitor_stop)) {
        void *rv;
        if (redisGetReply(c, &rv) != REDIS_OK) break;
        redisReply *r = rv;
        const char *s = r->str;
        if (r->type == REDIS_REPLY_STATUS && s && strstr(s, "] \"XACK\" \"")) {
            double t = strtod(s, NULL);
            const char *p = strstr(s, "] \"XACK\" ") + 9;
            for (int field = 0; (p = strchr(p, '"')) != NULL; field++) {
                const char *end = strchr(p + 1, '"');
                if (!end) break;
                if (field >= 2) { /* after the stream and the group */
                    if (nack == ack_cap) {
                        ack_cap = ack_cap ? 2 * ack_cap : 4096;
                        acks = realloc(acks, ack_cap * sizeof *acks);
                        if (!acks) exit(3);
                    }
                    parse_id(p + 1, &acks[nack]);
                    acks[nack++].t = t;
                }
                p = end + 1;
            }
        }
        freeReplyObject(r);
    }
    return NULL;
}

struct serve_arg {
    wp_redis *q;
    wp_pool *pool;
    int rc;
};

static void *serve_main(void *arg)
{
    struct serve_arg *a = arg;
    a->rc = wp_redis_serve(a->q, a->pool, seed_fn, NULL);
    return NULL;
}

static int by_id(const void *a, const void *b)
{
    const struct mark *x = a, *y = b;
    if (x->ms != y->ms) return x->ms < y->ms ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s URL STREAM RATE COUNT WORKERS\n", argv[0]);
        return 2;
    }
    const char *url = argv[1];
    stream = argv[2];
    double rate = atof(argv[3]);
    count = strtoull(argv[4], NULL, 10);
    unsigned workers = (unsigned)atoi(argv[5]);
    if (rate <= 0 || count == 0) return 2;

    wp_redis_config cfg;
    wp_redis_config_init(&cfg);
    cfg.url = url;
    cfg.stream = stream;
    cfg.prefetch = 16;
    wp_redis *q;
    int rc = wp_redis_open(&q, &cfg);
    if (rc) {
        fprintf(stderr, "latency: open: %s\n", strerror(rc));
        return 1;
    }
    /* MONITOR on a connection of its own (url: redis://host:port only) */
    char host[256] = "127.0.0.1";
    int port = 6379;
    if (sscanf(url, "redis://%255[^:/]:%d", host, &port) < 1) return 2;
    redisContext *mc = redisConnect(host, port);
    if (!mc || mc->err) return fprintf(stderr, "latency: monitor connect failed\n"), 1;
    redisReply *ok = redisCommand(mc, "MONITOR");
    if (!ok) return 1;
    freeReplyObject(ok);
    pthread_t mt, st;
    pthread_create(&mt, NULL, monitor_main, mc);

    wp_config pc;
    wp_config_init(&pc);
    pc.workers = workers;
    wp_pool *pool;
    if (wp_pool_create(&pool, &pc)) return 1;
    struct serve_arg sa = {q, pool, -1};
    pthread_create(&st, NULL, serve_main, &sa);

    pushes = calloc(count, sizeof *pushes);
    seen = calloc(count, sizeof *seen);
    char(*body)[24] = malloc(count * sizeof *body);
    const void **data = malloc(count * sizeof *data);
    size_t *len = malloc(count * sizeof *len);
    if (!pushes || !seen || !body || !data || !len) return 3;
    for (size_t i = 0; i < count; i++) {
        len[i] = (size_t)snprintf(body[i], sizeof body[i], "%zu", i + 1);
        data[i] = body[i];
    }
    double start = now_real() + 0.2; /* the consumer is fetching by then */
    for (size_t pushed = 0; pushed < count;) {
        double now = now_real();
        size_t due = now < start ? 0 : (size_t)((now - start) * rate) + 1;
        if (due > count) due = count;
        if (due > pushed) {
            if ((rc = wp_redis_push_batch(q, data + pushed, len + pushed, due - pushed)) != 0) {
                fprintf(stderr, "latency: push: %s\n", strerror(rc));
                return 1;
            }
            pushed = due;
            continue;
        }
        double wait = start + (double)pushed / rate - now;
        struct timespec ts = {(time_t)wait, (long)((wait - (time_t)wait) * 1e9)};
        nanosleep(&ts, NULL);
    }
    free(body);
    free(data);
    free(len);
    wp_redis_stats rs = {0};
    for (int i = 0; i < 3000; i++) { /* at most 30 s for the tail */
        wp_redis_get_stats(q, &rs);
        if (rs.acked >= count) break;
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    wp_redis_stop(q);
    pthread_join(st, NULL);
    /* one more XACK-free command so the monitor thread reads past the last XACK */
    struct timespec ts = {0, 200000000};
    nanosleep(&ts, NULL);
    atomic_store(&monitor_stop, 1);
    redisContext *poke = redisConnect(host, port);
    if (poke) {
        redisReply *r = redisCommand(poke, "PING");
        if (r) freeReplyObject(r);
        redisFree(poke);
    }
    pthread_join(mt, NULL);
    redisFree(mc);

    /* Jobs whose id the handler never saw were not served: they count as
       lost (the exit status below). */
    size_t npush = 0;
    for (size_t i = 0; i < count; i++)
        if (atomic_load(&seen[i])) {
            pushes[npush] = pushes[i];
            pushes[npush++].t = start + (double)i / rate;
        }
    qsort(pushes, npush, sizeof *pushes, by_id);
    qsort(acks, nack, sizeof *acks, by_id);
    double *lat = malloc((npush ? npush : 1) * sizeof *lat);
    size_t n = 0, j = 0;
    for (size_t i = 0; i < npush; i++) {
        while (j < nack && by_id(&acks[j], &pushes[i]) < 0) j++;
        if (j < nack && by_id(&acks[j], &pushes[i]) == 0)
            lat[n++] = (acks[j].t - pushes[i].t) * 1e6;
    }
    qsort(lat, n, sizeof *lat, by_value);
#define PCT(p) (n ? lat[(size_t)((p) * (double)(n - 1))] : 0.0)
    printf("latency: rate %.0f/s, %zu jobs, %zu acked, p50 %.0f us, p99 %.0f us, p99.9 %.0f us, "
           "max %.0f us\n",
           rate, count, n, PCT(0.5), PCT(0.99), PCT(0.999), n ? lat[n - 1] : 0.0);
    wp_pool_destroy(pool);
    wp_redis_close(q);
    free(lat);
    free(pushes);
    free((void *)seen);
    free(acks);
    return n == count && sa.rc == 0 ? 0 : 1;
}
