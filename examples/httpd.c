/*
 * httpd: an HTTP/1.1 server whose work runs on a wpool, on libevent's evhttp
 * (parsing, keep-alive, timeouts) and OpenSSL's SHA-256.
 *
 *   GET /hash/N?work=K&wait=MS
 *     blocks MS ms (default 0: a stand-in for a database call), then answers
 *     the hex SHA-256 of "payload-N" hashed K times, each round hashing the
 *     previous 32-byte digest (default 250 rounds: about 20 us of CPU).
 *
 * One thread runs the event loop and is the only one that touches libevent.
 * It checks each request (untrusted: a malformed number, or a work or wait
 * above the caps set by --max-work / --max-wait, gets 400 with a one-line
 * reason and costs the pool nothing) and hands a job to the pool with
 * wp_try_submit. A full queue answers 503 with Retry-After at once: the
 * pool's bounded queue is the only queue, the loop keeps no list of its own.
 * A worker computes the digest and sends the job back on `done`, a channel
 * whose descriptor (wp_chan_fd) the loop watches like a socket: readable
 * while results wait, drained with wp_chan_try_recv until EAGAIN.
 *
 * --mode inline does the work on the loop thread; --mode thread starts a
 * detached thread per request that sends its result on the same channel:
 * the same server three ways, for comparison.
 *
 * SIGINT / SIGTERM: stop accepting, answer what is in flight, print the
 * sojourn times (request read to reply handed to the connection) per status
 * as p50/p99/p99.9, free everything and exit 0.
 *
 *   httpd --port 0 --workers 2 --queue 64     prints "listening on 127.0.0.1:PORT"
 *   curl 'http://127.0.0.1:PORT/hash/7?work=1000&wait=5'
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <openssl/evp.h>
#include <wpool.h>

#define DEFAULT_WORK 250 /* SHA-256 rounds of 32 bytes, ~80 ns each */

enum { MODE_POOL, MODE_INLINE, MODE_THREAD };

struct job {
    struct evhttp_request *req; /* only the loop thread touches it */
    uint64_t n, start_ns;
    uint64_t work, wait_ms;
    int status;           /* 200, or 500 if hashing failed */
    char hex[2 * 32 + 2]; /* the answer and its "\n" */
};

/* The server: one per process, touched by the loop thread only (the
   workers read the immutable sha256 and send on done). */
static struct {
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *listener;
    struct event *done_ev, *grace;
    wp_pool *pool;
    wp_chan *done; /* struct job *, from the workers back to the loop */
    EVP_MD *sha256;
    pthread_attr_t detached;
    int mode, stopping;
    uint64_t max_work, max_wait;
    size_t inflight; /* jobs handed out, not yet answered */
    size_t room;     /* done's capacity: the most jobs --mode pool keeps out */
    size_t unsent;   /* answers handed to a connection, not yet written */
    char why_work[96], why_wait[96];
} srv;

/* ------------------------------------------------------------ sojourn -- */

/* Per status, a histogram of sojourn times in ns: 16 buckets per power of
   two, so a percentile is within 1/16 of the truth, memory is fixed, and
   recording is O(1). */
#define SUB      16
#define NBUCKETS (64 * SUB)
static const int statuses[] = {200, 400, 404, 405, 500, 503};
#define NSTATUS (sizeof statuses / sizeof statuses[0])
static uint64_t hist[NSTATUS][NBUCKETS], counts[NSTATUS];

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static unsigned bucket(uint64_t v)
{
    if (v < SUB) return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    return (msb - 3) * SUB + (unsigned)((v >> (msb - 4)) & (SUB - 1));
}

static double bucket_mid(unsigned b) /* the middle of bucket b, in ns */
{
    if (b < SUB) return b;
    unsigned k = b / SUB;
    return (double)((uint64_t)(SUB + b % SUB) << (k - 1)) + (double)((uint64_t)1 << (k - 1)) / 2;
}

static void record(int status, uint64_t start_ns)
{
    for (size_t i = 0; i < NSTATUS; i++)
        if (statuses[i] == status) {
            hist[i][bucket(now_ns() - start_ns)]++;
            counts[i]++;
        }
}

static double percentile(size_t i, double q) /* in us */
{
    uint64_t want = (uint64_t)(q * (double)counts[i] + 0.999999), seen = 0;
    for (unsigned b = 0; b < NBUCKETS; b++)
        if ((seen += hist[i][b]) >= want && seen > 0) return bucket_mid(b) / 1000;
    return 0;
}

static void print_sojourn(void)
{
    printf("sojourn (request to reply, us):\n%6s %10s %10s %10s %10s\n", "status", "count", "p50",
           "p99", "p99.9");
    for (size_t i = 0; i < NSTATUS; i++)
        if (counts[i])
            printf("%6d %10" PRIu64 " %10.1f %10.1f %10.1f\n", statuses[i], counts[i],
                   percentile(i, 0.50), percentile(i, 0.99), percentile(i, 0.999));
    fflush(stdout);
}

/* --------------------------------------------------------------- work -- */

/* Each thread that hashes has its own context: the workers make theirs in
   worker_start, a thread of --mode thread its own, the loop one in main. */
static _Thread_local EVP_MD_CTX *ctx;

static void worker_start(unsigned id, void *user)
{
    (void)id, (void)user;
    ctx = EVP_MD_CTX_new();
}

static void worker_stop(unsigned id, void *user)
{
    (void)id, (void)user;
    EVP_MD_CTX_free(ctx);
}

/* The request's work, on whichever thread runs it. */
static void compute(struct job *j)
{
    if (j->wait_ms) { /* the "database call": a thread blocked in the kernel */
        struct timespec ts = {(time_t)(j->wait_ms / 1000), (long)(j->wait_ms % 1000) * 1000000L};
        wp_blocking_begin(); /* --max-workers: another thread takes tasks meanwhile */
        while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
        }
        wp_blocking_end(); /* (both do nothing off a worker: inline, thread) */
    }
    unsigned char d[32];
    char text[32];
    int len = snprintf(text, sizeof text, "payload-%" PRIu64, j->n);
    int ok = ctx && EVP_DigestInit_ex(ctx, srv.sha256, NULL) &&
             EVP_DigestUpdate(ctx, text, (size_t)len) && EVP_DigestFinal_ex(ctx, d, NULL);
    for (uint64_t k = 1; ok && k < j->work; k++)
        ok = EVP_DigestInit_ex(ctx, srv.sha256, NULL) && EVP_DigestUpdate(ctx, d, sizeof d) &&
             EVP_DigestFinal_ex(ctx, d, NULL);
    for (int i = 0; i < 32; i++) snprintf(j->hex + 2 * i, 3, "%02x", d[i]);
    memcpy(j->hex + 64, "\n", 2);
    j->status = ok ? 200 : 500;
}

static void pool_task(void *arg) /* --mode pool, on a worker */
{
    compute(arg);
    /* Never waits: the loop hands out at most as many jobs as done holds. */
    wp_chan_send(srv.done, &arg);
}

static void *thread_main(void *arg) /* --mode thread, a thread of its own */
{
    ctx = EVP_MD_CTX_new();
    compute(arg);
    EVP_MD_CTX_free(ctx);
    wp_chan_send(srv.done, &arg); /* may wait for the loop to drain */
    return NULL;
}

/* --------------------------------------------------------------- loop -- */

static void maybe_stop(void)
{
    if (srv.stopping && srv.inflight == 0 && srv.unsent == 0) event_base_loopbreak(srv.base);
}

static void on_written(struct evhttp_request *req, void *arg)
{
    (void)req, (void)arg;
    if (srv.unsent) srv.unsent--;
    maybe_stop();
}

static void reply(struct evhttp_request *req, int status, const char *body, uint64_t start_ns)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "text/plain");
    if (status == 503) evhttp_add_header(h, "Retry-After", "1");
    if (srv.stopping) evhttp_add_header(h, "Connection", "close");
    evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));
    if (evhttp_request_get_connection(req)) { /* else the client left: evhttp frees req */
        srv.unsent++;
        evhttp_request_set_on_complete_cb(req, on_written, NULL);
    }
    evhttp_send_reply(req, status, NULL, NULL);
    record(status, start_ns);
}

static void answer(struct job *j)
{
    reply(j->req, j->status, j->status == 200 ? j->hex : "hashing failed\n", j->start_ns);
    free(j);
}

/* The channel's descriptor is readable: answer every finished job. */
static void on_done(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    struct job *j;
    while (wp_chan_try_recv(srv.done, &j) == 0) {
        srv.inflight--;
        answer(j);
    }
    maybe_stop();
}

/* A decimal number 0..max, digits only: 0, else -1. */
static int parse_num(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (!s || !*s) return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return -1;
        unsigned d = (unsigned)(*s - '0');
        if (v > max / 10 || d > max - v * 10) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* Fills j from "N" and the query; NULL, or why the request is refused. */
static const char *parse_request(const char *n, const char *query, struct job *j)
{
    if (parse_num(n, UINT64_MAX, &j->n)) return "N must be a decimal number below 2^64\n";
    if (!query) return NULL;
    struct evkeyvalq q;
    if (evhttp_parse_query_str(query, &q) != 0) return "malformed query string\n";
    const char *why = NULL, *work = evhttp_find_header(&q, "work"),
               *wait = evhttp_find_header(&q, "wait");
    if (work && (parse_num(work, srv.max_work, &j->work) || j->work == 0)) why = srv.why_work;
    if (wait && parse_num(wait, srv.max_wait, &j->wait_ms)) why = srv.why_wait;
    evhttp_clear_headers(&q);
    return why;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    (void)arg;
    uint64_t start = now_ns();
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
        reply(req, 405, "only GET\n", start);
        return;
    }
    if (!path || strncmp(path, "/hash/", 6) != 0) {
        reply(req, 404, "try GET /hash/N?work=K&wait=MS\n", start);
        return;
    }
    if (srv.stopping) {
        reply(req, 503, "shutting down\n", start);
        return;
    }
    struct job j = {.req = req, .start_ns = start, .work = DEFAULT_WORK};
    const char *why =
        parse_request(path + 6, evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req)), &j);
    if (why) {
        reply(req, 400, why, start);
        return;
    }
    struct job *jp = malloc(sizeof *jp);
    if (!jp) {
        reply(req, 503, "out of memory\n", start);
        return;
    }
    *jp = j;
    int rc = 0;
    pthread_t t;
    switch (srv.mode) {
    case MODE_INLINE:
        compute(jp);
        answer(jp);
        return;
    case MODE_POOL: /* EAGAIN: the queue is full */
        rc = srv.inflight < srv.room ? wp_try_submit(srv.pool, pool_task, jp) : EAGAIN;
        break;
    case MODE_THREAD:
        rc = pthread_create(&t, &srv.detached, thread_main, jp);
        break;
    }
    if (rc) { /* shed the load now rather than queue it here */
        free(jp);
        reply(req, 503, "busy, retry later\n", start);
        return;
    }
    srv.inflight++;
}

/* SIGINT / SIGTERM: no new connections; stop once every job is answered
   and the answers are written. The grace timer stops waiting for answers
   whose client never reads them (evhttp frees those). */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig, (void)what, (void)arg;
    if (!srv.stopping) {
        srv.stopping = 1;
        evhttp_del_accept_socket(srv.http, srv.listener);
        struct timeval grace = {(time_t)(srv.max_wait / 1000 + 5), 0};
        evtimer_add(srv.grace, &grace);
    }
    maybe_stop();
}

static void on_grace(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    srv.unsent = 0;
    maybe_stop();
}

/* --------------------------------------------------------------- main -- */

static int usage(const char *why) /* why NULL: --help */
{
    if (why) fprintf(stderr, "httpd: %s\n", why);
    fprintf(why ? stderr : stdout,
            "usage: httpd [--addr 127.0.0.1 (numeric)] [--port 8080 (0: any free one)]\n"
            "             [--mode pool|inline|thread] [--workers 0 (one per CPU)] [--queue 1024]\n"
            "             [--max-workers 0 (= workers; more: threads that replace blocked ones)]\n"
            "             [--max-work 100000 (rounds)] [--max-wait 1000 (ms)]\n");
    return why ? 2 : 0;
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1";
    uint64_t port = 8080, workers = 0, max_workers = 0, queue = 1024;
    srv.max_work = 100000;
    srv.max_wait = 1000;
    static const struct option opts[] = {{"addr", 1, 0, 'a'},        {"port", 1, 0, 'p'},
                                         {"mode", 1, 0, 'm'},        {"workers", 1, 0, 'w'},
                                         {"max-workers", 1, 0, 'x'}, {"queue", 1, 0, 'q'},
                                         {"max-work", 1, 0, 'k'},    {"max-wait", 1, 0, 's'},
                                         {"help", 0, 0, 'h'},        {0, 0, 0, 0}};
    for (int o; (o = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        int bad = 0;
        switch (o) {
        case 'a':
            addr = optarg;
            break;
        case 'p':
            bad = parse_num(optarg, 65535, &port);
            break;
        case 'w':
            bad = parse_num(optarg, 4096, &workers);
            break;
        case 'x':
            bad = parse_num(optarg, 4096, &max_workers);
            break;
        case 'q':
            bad = parse_num(optarg, 1 << 24, &queue) || queue == 0;
            break;
        case 'k':
            bad = parse_num(optarg, UINT32_MAX, &srv.max_work) || srv.max_work == 0;
            break;
        case 's':
            bad = parse_num(optarg, 3600000, &srv.max_wait);
            break;
        case 'm':
            if (strcmp(optarg, "pool") == 0)
                srv.mode = MODE_POOL;
            else if (strcmp(optarg, "inline") == 0)
                srv.mode = MODE_INLINE;
            else if (strcmp(optarg, "thread") == 0)
                srv.mode = MODE_THREAD;
            else
                bad = 1;
            break;
        case 'h':
            return usage(NULL);
        default:
            return usage("unknown option");
        }
        if (bad) return usage("bad value for an option");
    }
    if (optind < argc) return usage("unexpected argument");
    snprintf(srv.why_work, sizeof srv.why_work,
             "work must be a number from 1 to %" PRIu64 " (--max-work)\n", srv.max_work);
    snprintf(srv.why_wait, sizeof srv.why_wait,
             "wait must be a number of ms from 0 to %" PRIu64 " (--max-wait)\n", srv.max_wait);
    signal(SIGPIPE, SIG_IGN); /* a client that hangs up must not kill us */

    /* The pool, and the channel its results come back on: room for as many
       jobs as the queue and the workers hold, the most the loop hands out. */
    wp_config cfg;
    wp_config_init(&cfg);
    cfg.workers = (unsigned)workers;         /* 0: one per usable CPU */
    cfg.max_workers = (unsigned)max_workers; /* > workers: blocked ones are replaced */
    cfg.queue_capacity = (size_t)queue;
    cfg.name = "httpd";
    cfg.worker_start = worker_start;
    cfg.worker_stop = worker_stop;
    int rc = srv.mode == MODE_POOL ? wp_pool_create(&srv.pool, &cfg) : 0, fd = -1;
    wp_stats st = {0};
    if (srv.pool) wp_pool_stats(srv.pool, &st); /* at most max_workers tasks run at once */
    srv.room = (size_t)queue + st.max_workers;
    if (rc == 0) rc = wp_chan_create(&srv.done, sizeof(struct job *), srv.room);
    if (rc == 0) rc = wp_chan_fd(srv.done, &fd);
    srv.sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    ctx = EVP_MD_CTX_new(); /* the loop's, for --mode inline */
    pthread_attr_init(&srv.detached);
    pthread_attr_setdetachstate(&srv.detached, PTHREAD_CREATE_DETACHED);

    /* The loop: the channel's descriptor, two signals, the HTTP server. */
    srv.base = event_base_new();
    struct event *sigint = NULL, *sigterm = NULL;
    if (srv.base && rc == 0 && srv.sha256 && ctx) {
        srv.done_ev = event_new(srv.base, fd, EV_READ | EV_PERSIST, on_done, NULL);
        srv.grace = evtimer_new(srv.base, on_grace, NULL);
        sigint = evsignal_new(srv.base, SIGINT, on_signal, NULL);
        sigterm = evsignal_new(srv.base, SIGTERM, on_signal, NULL);
        srv.http = evhttp_new(srv.base);
    }
    int ok = srv.http && srv.done_ev && srv.grace && sigint && sigterm &&
             event_add(srv.done_ev, NULL) == 0 && evsignal_add(sigint, NULL) == 0 &&
             evsignal_add(sigterm, NULL) == 0;
    if (ok) {
        evhttp_set_gencb(srv.http, on_request, NULL);
        evhttp_set_max_headers_size(srv.http, 8192);
        evhttp_set_max_body_size(srv.http, 4096);
        evhttp_set_timeout(srv.http, 60);
        /* Our own listener for a long accept backlog (evhttp's is 128): a
           burst of thousands of connects must not wait for SYN retries. */
        struct sockaddr_storage sa;
        int salen = sizeof sa;
        struct evconnlistener *lev = NULL;
        if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&sa, &salen) == 0) {
            if (sa.ss_family == AF_INET6)
                ((struct sockaddr_in6 *)&sa)->sin6_port = htons((uint16_t)port);
            else
                ((struct sockaddr_in *)&sa)->sin_port = htons((uint16_t)port);
            lev = evconnlistener_new_bind(srv.base, NULL, NULL,
                                          LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE |
                                              LEV_OPT_CLOSE_ON_EXEC,
                                          4096, (struct sockaddr *)&sa, salen);
        }
        srv.listener = lev ? evhttp_bind_listener(srv.http, lev) : NULL;
        if (lev && !srv.listener) evconnlistener_free(lev);
        if (!srv.listener) fprintf(stderr, "httpd: cannot listen on %s:%" PRIu64 "\n", addr, port);
        ok = srv.listener != NULL;
    } else {
        fprintf(stderr, "httpd: setting up failed (%s)\n", rc ? strerror(rc) : "libevent/OpenSSL");
    }
    if (ok) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        getsockname(evhttp_bound_socket_get_fd(srv.listener), (struct sockaddr *)&ss, &len);
        port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                              : ((struct sockaddr_in *)&ss)->sin_port);
        printf("listening on %s:%" PRIu64 "\n", addr, port);
        fflush(stdout);
        event_base_dispatch(srv.base);
        print_sojourn();
    }

    /* Nothing is in flight any more: stop the workers, free everything. */
    wp_pool_destroy(srv.pool);
    if (srv.http) evhttp_free(srv.http);
    if (srv.done_ev) event_free(srv.done_ev);
    if (srv.grace) event_free(srv.grace);
    if (sigint) event_free(sigint);
    if (sigterm) event_free(sigterm);
    if (srv.base) event_base_free(srv.base);
    libevent_global_shutdown();
    wp_chan_destroy(srv.done);
    pthread_attr_destroy(&srv.detached);
    EVP_MD_CTX_free(ctx);
    EVP_MD_free(srv.sha256);
    return ok ? 0 : 1;
}
