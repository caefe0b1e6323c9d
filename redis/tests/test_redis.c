/*
 * test_redis: wpool-redis against a real redis-server (server.h starts a
 * private one). Each case says what the contract promises and checks it with
 * exact counts read back from the server; none asserts a timing. Sizes
 * shrink under WPOOL_TEST_SMALL=1 (valgrind) and under sanitizers.
 *
 * Run with --skip-code=77 (CTest does): where redis-server is missing the
 * program says so in one line and exits with that code (0 without it).
 */
#include "server.h"
#include "test.h"

#include <wpool_redis.h>

#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>

static struct server srv; /* the shared server */
static redisContext *adm; /* checks, on srv */
static int small;
static char self[4096]; /* this program, for consumer_spawn */

/* ------------------------------------------------------------ helpers -- */

static long long cmd_int(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r) freeReplyObject(r);
    return v;
}

/* The reply's string (copied into buf), or "" (nil / error: "ERR..."). */
static const char *cmd_str(redisContext *c, char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    buf[0] = '\0';
    if (r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS))
        snprintf(buf, n, "%s", r->str);
    else if (r && r->type == REDIS_REPLY_ERROR)
        snprintf(buf, n, "ERR");
    if (r) freeReplyObject(r);
    return buf;
}

/* Entries pending in the group (XPENDING summary), of one consumer when
   consumer is not NULL. */
static long long pending(redisContext *c, const char *stream, const char *consumer)
{
    redisReply *r = redisCommand(c, "XPENDING %s wpool", stream);
    long long n = -1;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 4) {
        n = r->element[0]->integer;
        if (consumer) {
            n = 0;
            const redisReply *per = r->element[3];
            for (size_t i = 0; per->type == REDIS_REPLY_ARRAY && i < per->elements; i++)
                if (!strcmp(per->element[i]->element[0]->str, consumer))
                    n = atoll(per->element[i]->element[1]->str);
        }
    }
    if (r) freeReplyObject(r);
    return n;
}

/* The group has delivered everything in the stream and nothing is pending. */
static int drained(redisContext *c, const char *stream)
{
    char last[64], delivered[64] = "?";
    redisReply *r = redisCommand(c, "XINFO STREAM %s", stream);
    last[0] = '\0';
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
        if (!strcmp(r->element[i]->str, "last-generated-id"))
            snprintf(last, sizeof last, "%s", r->element[i + 1]->str);
    if (r) freeReplyObject(r);
    r = redisCommand(c, "XINFO GROUPS %s", stream);
    for (size_t g = 0; r && r->type == REDIS_REPLY_ARRAY && g < r->elements; g++) {
        const redisReply *f = r->element[g];
        for (size_t i = 0; i + 1 < f->elements; i += 2)
            if (!strcmp(f->element[i]->str, "last-delivered-id"))
                snprintf(delivered, sizeof delivered, "%s", f->element[i + 1]->str);
    }
    if (r) freeReplyObject(r);
    return last[0] && !strcmp(last, delivered) && pending(c, stream, NULL) == 0;
}

/* Polls cond every 10 ms, at most limit_ms; its last value. */
#define WAIT_FOR(cond, limit_ms)                                                                   \
    ({                                                                                             \
        int ok_ = 0;                                                                               \
        for (unsigned w_ = 0; w_ <= (limit_ms) / 10 && !(ok_ = (cond)); w_++) test_sleep_ms(10);   \
        ok_;                                                                                       \
    })

static wp_redis_config config(const char *stream)
{
    wp_redis_config cfg;
    wp_redis_config_init(&cfg);
    cfg.url = srv.url;
    cfg.stream = stream;
    cfg.visibility_ns = 200000000u; /* 200 ms */
    return cfg;
}

static wp_pool *pool_of(unsigned workers)
{
    wp_config pc;
    wp_config_init(&pc);
    pc.workers = workers;
    pc.name = "redis";
    wp_pool *p = NULL;
    if (wp_pool_create(&p, &pc) != 0) return NULL;
    return p;
}

/* serve on a thread of its own */
struct server_thread {
    pthread_t t;
    wp_redis *q;
    wp_pool *pool;
    wp_redis_fn fn;
    void *user;
    int rc;
};

static void *serve_main(void *arg)
{
    struct server_thread *st = arg;
    st->rc = wp_redis_serve(st->q, st->pool, st->fn, st->user);
    return NULL;
}

static void serve_bg(struct server_thread *st, wp_redis *q, wp_pool *pool, wp_redis_fn fn,
                     void *user)
{
    st->q = q, st->pool = pool, st->fn = fn, st->user = user, st->rc = -1;
    pthread_create(&st->t, NULL, serve_main, st);
}

static int serve_join(struct server_thread *st)
{
    wp_redis_stop(st->q);
    pthread_join(st->t, NULL);
    return st->rc;
}

/* sha256(data) in hex */
static void sha_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
    for (unsigned i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* --------------------------------------------------------------- cases -- */

/* Every bad input gives its documented error and changes nothing. */
TEST(bad_input)
{
    wp_redis *q = (wp_redis *)0x1;
    wp_redis_config cfg = config("bad");
    const char *urls[] = {"",
                          "http://127.0.0.1:6379",
                          "redis://",
                          "redis://:6379",
                          "redis://h:0",
                          "redis://h:65536",
                          "redis://h:12x",
                          "redis://h/abc",
                          "redis://h:1/2/3",
                          "redis://nocolon@h",
                          "redis://[::1",
                          "unix://",
                          "unix://relative",
                          "redis://h:1?x=1",
                          "redis://:%zz@h"};
    for (size_t i = 0; i < sizeof urls / sizeof *urls; i++) {
        cfg.url = urls[i];
        ASSERT_ERR(wp_redis_open(&q, &cfg), EINVAL);
        ASSERT_PTR_EQ(q, (wp_redis *)0x1); /* *out untouched */
    }
    cfg = config("bad");
    ASSERT_ERR(wp_redis_open(NULL, &cfg), EINVAL);
    ASSERT_ERR(wp_redis_open(&q, NULL), EINVAL);
    cfg.stream = NULL;
    ASSERT_ERR(wp_redis_open(&q, &cfg), EINVAL);
    cfg.stream = "";
    ASSERT_ERR(wp_redis_open(&q, &cfg), EINVAL);

    /* refused port: nothing listens there */
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", free_port());
    cfg = config("bad");
    cfg.url = url;
    ASSERT_ERR(wp_redis_open(&q, &cfg), ECONNREFUSED);

    /* a server that accepts and never answers: ETIMEDOUT after timeout_ns */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in la = {.sin_family = AF_INET};
    la.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t llen = sizeof la;
    ASSERT(lfd >= 0 && bind(lfd, (struct sockaddr *)&la, sizeof la) == 0 && listen(lfd, 4) == 0 &&
           getsockname(lfd, (struct sockaddr *)&la, &llen) == 0);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", ntohs(la.sin_port));
    cfg.timeout_ns = 200000000u;
    int rc_silent = wp_redis_open(&q, &cfg);
    close(lfd);
    ASSERT_ERR(rc_silent, ETIMEDOUT);
    cfg.timeout_ns = 0;

    /* the key holds a string: EPROTO, and it still holds it */
    cmd_int(adm, "DEL bad:str");
    freeReplyObject(redisCommand(adm, "SET bad:str hello"));
    cfg = config("bad:str");
    ASSERT_ERR(wp_redis_open(&q, &cfg), EPROTO);
    char buf[64];
    ASSERT_STR_EQ(cmd_str(adm, buf, sizeof buf, "GET bad:str"), "hello");

    /* data over the limit: EMSGSIZE, nothing added (the bytes are never read) */
    cfg = config("bad:big");
    ASSERT_OK(wp_redis_open(&q, &cfg));
    long long before = cmd_int(adm, "XLEN bad:big");
    char one = 'x';
    ASSERT_ERR(wp_redis_push(q, &one, (size_t)WP_REDIS_MAX_DATA + 1, NULL), EMSGSIZE);
    const void *data[2] = {&one, &one};
    size_t lens[2] = {1, (size_t)WP_REDIS_MAX_DATA + 1};
    ASSERT_ERR(wp_redis_push_batch(q, data, lens, 2), EMSGSIZE);
    ASSERT_EQ(cmd_int(adm, "XLEN bad:big"), before);
    ASSERT_ERR(wp_redis_push(q, NULL, 1, NULL), EINVAL);
    ASSERT_ERR(wp_redis_push(NULL, &one, 1, NULL), EINVAL);
    ASSERT_ERR(wp_redis_push_batch(q, NULL, lens, 1), EINVAL);
    ASSERT_OK(wp_redis_push_batch(q, NULL, NULL, 0));
    ASSERT_ERR(wp_redis_serve(q, NULL, NULL, NULL), EINVAL);
    ASSERT_EQ(cmd_int(adm, "XLEN bad:big"), before);
    wp_redis_stats st;
    wp_redis_get_stats(q, &st);
    ASSERT_UEQ(st.pushed, 0);
    wp_redis_close(q);
    wp_redis_close(NULL);
}

/* A password server: a wrong or missing password is EACCES and makes nothing;
   the right one works; the address never shows the password. */
TEST(password)
{
    static struct server ps; /* static: the atexit stop may see it */
    ASSERT_OK(server_start(&ps, "s3cret"));
    char url[128];
    wp_redis *q = NULL;
    wp_redis_config cfg = config("pw");
    snprintf(url, sizeof url, "redis://:wrong@127.0.0.1:%d/0", ps.port);
    cfg.url = url;
    int rc_wrong = wp_redis_open(&q, &cfg);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", ps.port);
    int rc_none = wp_redis_open(&q, &cfg);
    cfg.url = ps.url;
    int rc_right = wp_redis_open(&q, &cfg);
    redisContext *c = server_connect(&ps);
    long long exists = c ? cmd_int(c, "EXISTS pw") : -1;
    if (c) redisFree(c);
    char addr[128];
    snprintf(addr, sizeof addr, "%s", rc_right == 0 ? wp_redis_address(q) : "");
    if (rc_right == 0) wp_redis_close(q);
    server_stop(&ps);
    ASSERT_ERR(rc_wrong, EACCES);
    ASSERT_ERR(rc_none, EACCES);
    ASSERT_OK(rc_right);
    ASSERT_EQ(exists, 1); /* made by the right open only */
    char want[64];
    snprintf(want, sizeof want, "redis://127.0.0.1:%d/0", ps.port);
    ASSERT_STR_EQ(addr, want);
}

struct seen {
    _Atomic unsigned runs[4096];
    _Atomic unsigned last_delivery[4096];
    _Atomic unsigned total;
    atomic_int gate; /* 0: handlers of gated jobs wait */
    unsigned gate_from;
    _Atomic unsigned gated;
    unsigned sleep_ms;
    unsigned fail_job; /* this job number fails every time (0: none) */
    int fail_result;
    char data_of_1[64];
    size_t len_of_1;
};

static int seen_fn(const void *data, size_t len, const char *id, unsigned delivery, void *user)
{
    struct seen *s = user;
    (void)id;
    unsigned n = (unsigned)strtoul(data, NULL, 10);
    if (n >= 4096) return 1;
    if (n == 1 && len < sizeof s->data_of_1) {
        memcpy(s->data_of_1, data, len);
        s->len_of_1 = len;
    }
    atomic_fetch_add(&s->runs[n], 1);
    atomic_store(&s->last_delivery[n], delivery);
    if (s->sleep_ms) test_sleep_ms(s->sleep_ms);
    if (s->gate_from && n >= s->gate_from) {
        atomic_fetch_add(&s->gated, 1);
        for (int i = 0; i < 3000 && !atomic_load(&s->gate); i++) test_sleep_ms(10);
    }
    atomic_fetch_add(&s->total, 1);
    return n == s->fail_job ? s->fail_result : 0;
}

static void push_numbers(wp_redis *q, unsigned from, unsigned to)
{
    char(*txt)[16] = malloc((to - from + 1) * sizeof *txt);
    const void **d = malloc((to - from + 1) * sizeof *d);
    size_t *l = malloc((to - from + 1) * sizeof *l);
    for (unsigned n = from; n <= to; n++) {
        l[n - from] = (size_t)snprintf(txt[n - from], 16, "%u", n);
        d[n - from] = txt[n - from];
    }
    EXPECT(wp_redis_push_batch(q, d, l, to - from + 1) == 0);
    free(txt);
    free(d);
    free(l);
}

/* Binary data goes through as pushed; ids come back; each job is run once and
   acknowledged; the counters add up. */
TEST(push_and_serve)
{
    cmd_int(adm, "DEL basic");
    wp_redis_config cfg = config("basic");
    cfg.consumer = "c1";
    wp_redis *q;
    ASSERT_OK(wp_redis_open(&q, &cfg));
    char id[WP_REDIS_ID_MAX] = "";
    const char bin[] = {'1', '\0', 'x', '\n', '\xff'};
    ASSERT_OK(wp_redis_push(q, bin, sizeof bin, id));
    ASSERT(strchr(id, '-') != NULL);
    push_numbers(q, 2, 50);
    struct seen *s = calloc(1, sizeof *s);
    wp_pool *pool = pool_of(2);
    struct server_thread st;
    serve_bg(&st, q, pool, seen_fn, s);
    ASSERT(WAIT_FOR(atomic_load(&s->total) == 50 && drained(adm, "basic"), 20000));
    ASSERT_OK(serve_join(&st));
    for (unsigned n = 1; n <= 50; n++) ASSERT_EQ(atomic_load(&s->runs[n]), 1);
    ASSERT_EQ(s->len_of_1, sizeof bin);
    ASSERT(memcmp(s->data_of_1, bin, sizeof bin) == 0);
    wp_redis_stats rs;
    wp_redis_get_stats(q, &rs);
    ASSERT_UEQ(rs.pushed, 50);
    ASSERT_UEQ(rs.fetched, 50);
    ASSERT_UEQ(rs.acked, 50);
    ASSERT_UEQ(rs.failed + rs.dead + rs.reclaimed, 0);
    ASSERT_EQ(pending(adm, "basic", NULL), 0);
    /* stopped: everything else is EPIPE */
    ASSERT_ERR(wp_redis_serve(q, pool, seen_fn, s), EPIPE);
    ASSERT_ERR(wp_redis_push(q, "x", 1, NULL), EPIPE);
    size_t moved = 9;
    ASSERT_ERR(wp_redis_requeue_dead(q, 10, &moved), EPIPE);
    ASSERT_EQ(moved, 0);
    wp_redis_close(q);
    wp_pool_destroy(pool);
    free(s);
}

struct pusher {
    pthread_t t;
    wp_redis *q;
    unsigned from, to;
    int rc;
};

static void *pusher_main(void *arg)
{
    struct pusher *p = arg;
    for (unsigned n = p->from; n <= p->to && p->rc == 0; n++) {
        char txt[16];
        int len = snprintf(txt, sizeof txt, "%u", n);
        p->rc = wp_redis_push(p->q, txt, (size_t)len, NULL);
    }
    return NULL;
}

/* Pushes from several threads at once, while the same handle serves: every
   entry arrives once and runs once. */
TEST(concurrent_push)
{
    const char *stream = "cp";
    cmd_int(adm, "DEL cp");
    wp_redis_config cfg = config(stream);
    wp_redis *q;
    ASSERT_OK(wp_redis_open(&q, &cfg));
    struct seen *s = calloc(1, sizeof *s);
    wp_pool *pool = pool_of(2);
    struct server_thread st;
    serve_bg(&st, q, pool, seen_fn, s);
    unsigned per = small ? 50 : 500;
    struct pusher p[4];
    for (unsigned i = 0; i < 4; i++) {
        p[i] = (struct pusher){.q = q, .from = 1 + i * per, .to = (i + 1) * per};
        pthread_create(&p[i].t, NULL, pusher_main, &p[i]);
    }
    for (unsigned i = 0; i < 4; i++) pthread_join(p[i].t, NULL);
    int done = WAIT_FOR(atomic_load(&s->total) >= 4 * per && drained(adm, stream), 30000);
    ASSERT_OK(serve_join(&st));
    for (unsigned i = 0; i < 4; i++) ASSERT_OK(p[i].rc);
    ASSERT(done);
    ASSERT_EQ(cmd_int(adm, "XLEN cp"), 4 * per);
    for (unsigned n = 1; n <= 4 * per; n++) ASSERT_EQ(atomic_load(&s->runs[n]), 1);
    wp_redis_stats rs;
    wp_redis_get_stats(q, &rs);
    ASSERT_UEQ(rs.pushed, 4 * per);
    ASSERT_UEQ(rs.acked, 4 * per);
    wp_redis_close(q);
    wp_pool_destroy(pool);
    free(s);
}

/* What retrying cannot mend ends serve: the stream replaced by a string
   while serving makes serve return EPROTO by itself (no stop). */
TEST(wrong_type_ends_serve)
{
    const char *stream = "wt";
    cmd_int(adm, "DEL wt");
    wp_redis_config cfg = config(stream);
    wp_redis *q;
    ASSERT_OK(wp_redis_open(&q, &cfg));
    struct seen *s = calloc(1, sizeof *s);
    wp_pool *pool = pool_of(1);
    struct server_thread st;
    serve_bg(&st, q, pool, seen_fn, s);
    push_numbers(q, 1, 3);
    ASSERT(WAIT_FOR(atomic_load(&s->total) == 3 && drained(adm, stream), 10000));
    cmd_int(adm, "DEL wt");
    freeReplyObject(redisCommand(adm, "SET wt text"));
    int ended = 0;
    for (int i = 0; i < 1000 && !ended; i++) { /* serve returns by itself: 10 s at most */
        ended = pthread_tryjoin_np(st.t, NULL) == 0;
        if (!ended) test_sleep_ms(10);
    }
    if (!ended) serve_join(&st);
    ASSERT(ended);
    ASSERT_ERR(st.rc, EPROTO);
    char buf[16];
    ASSERT_STR_EQ(cmd_str(adm, buf, sizeof buf, "GET wt"), "text");
    wp_redis_close(q);
    wp_pool_destroy(pool);
    free(s);
}

/* ------------------------------------------------ consumer processes -- */

static wp_redis *child_q;

static void child_on_term(int sig)
{
    (void)sig;
    wp_redis_stop(child_q);
}

struct results {
    redisContext *c[64]; /* per worker, made by the worker that uses it */
    int port;
};

/* The seed job: sha256 of the job's text, recorded once, idempotently. */
static int record_fn(const void *data, size_t len, const char *id, unsigned delivery, void *user)
{
    struct results *r = user;
    (void)id, (void)delivery;
    int w = wp_worker_id();
    if (w < 0 || w >= 64) return 1;
    if (!r->c[w]) {
        struct server tmp = {.port = r->port};
        if (!(r->c[w] = server_connect(&tmp))) return 1;
    }
    char hex[65];
    sha_hex(data, len, hex);
    redisReply *rep = redisCommand(r->c[w], "SET result:%b %s", data, len, hex);
    int ok = rep && rep->type == REDIS_REPLY_STATUS;
    if (rep) freeReplyObject(rep);
    if (!ok && r->c[w]->err) {
        redisFree(r->c[w]);
        r->c[w] = NULL;
    }
    return ok ? 0 : 1;
}

/* A consumer process: serves stream with record_fn until SIGTERM; writes
   its counters to stats:<stream>:<name>; exits with serve's result. It is
   this program again (exec, so that it starts clean: nothing of the
   parent's heap to leak), run as: --consumer URL PORT STREAM NAME WORKERS
   PREFETCH VISIBILITY_NS. */
static int consumer_main(char **argv)
{
    signal(SIGALRM, SIG_DFL);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    const char *stream = argv[3], *name = argv[4];
    wp_redis_config cfg;
    wp_redis_config_init(&cfg);
    cfg.url = argv[1];
    cfg.stream = stream;
    cfg.consumer = name;
    cfg.prefetch = (unsigned)atoi(argv[6]);
    cfg.visibility_ns = strtoull(argv[7], NULL, 10);
    if (wp_redis_open(&child_q, &cfg) != 0) return 101;
    struct sigaction sa = {.sa_handler = child_on_term};
    sigaction(SIGTERM, &sa, NULL);
    struct results *r = calloc(1, sizeof *r);
    r->port = atoi(argv[2]);
    wp_pool *pool = pool_of((unsigned)atoi(argv[5]));
    int rc = wp_redis_serve(child_q, pool, record_fn, r);
    wp_pool_destroy(pool);
    wp_redis_stats st;
    wp_redis_get_stats(child_q, &st);
    struct server tmp = {.port = r->port};
    redisContext *c = server_connect(&tmp);
    if (c) {
        redisReply *rep = redisCommand(c, "SET stats:%s:%s %llu:%llu:%llu", stream, name,
                                       (unsigned long long)st.fetched, (unsigned long long)st.acked,
                                       (unsigned long long)st.reclaimed);
        if (rep) freeReplyObject(rep);
        redisFree(c);
    }
    for (int i = 0; i < 64; i++)
        if (r->c[i]) redisFree(r->c[i]);
    free(r);
    wp_redis_close(child_q);
    return rc;
}

static pid_t consumer_spawn(const char *stream, const char *name, unsigned workers,
                            unsigned prefetch, uint64_t visibility_ns)
{
    char port[16], w[16], p[16], v[24];
    snprintf(port, sizeof port, "%d", srv.port);
    snprintf(w, sizeof w, "%u", workers);
    snprintf(p, sizeof p, "%u", prefetch);
    snprintf(v, sizeof v, "%llu", (unsigned long long)visibility_ns);
    fflush(NULL);
    pid_t pid = fork();
    if (pid != 0) return pid;
    execl(self, "test_redis", "--consumer", srv.url, port, stream, name, w, p, v, (char *)NULL);
    _exit(127);
}

static int stop_child(pid_t pid)
{
    int status = -1;
    kill(pid, SIGTERM);
    if (waitpid(pid, &status, 0) != pid) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* 100,000 seed jobs through 3 consumer processes: every result recorded,
   each equal to the serial computation, each job acknowledged exactly once
   (no fault: nothing is delivered twice). */
TEST(seed_three_consumers)
{
    unsigned n = small ? 600 : 100000;
    const char *stream = "seed";
    freeReplyObject(redisCommand(adm, "FLUSHDB"));
    wp_redis_config cfg = config(stream);
    wp_redis *q;
    ASSERT_OK(wp_redis_open(&q, &cfg));
    pid_t kids[3];
    char names[3][8];
    for (int i = 0; i < 3; i++) {
        snprintf(names[i], sizeof names[i], "k%d", i);
        kids[i] = consumer_spawn(stream, names[i], 2, 64, 0); /* 30 s: none is due twice */
        ASSERT(kids[i] > 0);
    }
    const unsigned chunk = 10000;
    for (unsigned lo = 0; lo < n; lo += chunk)
        push_numbers(q, lo, lo + chunk > n ? n - 1 : lo + chunk - 1);
    int done = WAIT_FOR(drained(adm, stream), 120000);
    int rcs[3];
    for (int i = 0; i < 3; i++) rcs[i] = stop_child(kids[i]);
    ASSERT(done);
    for (int i = 0; i < 3; i++) ASSERT_EQ(rcs[i], 0);
    unsigned long long fetched = 0, acked = 0;
    for (int i = 0; i < 3; i++) {
        char buf[128];
        unsigned long long f = 0, a = 0, r = 0;
        cmd_str(adm, buf, sizeof buf, "GET stats:%s:%s", stream, names[i]);
        ASSERT_EQ(sscanf(buf, "%llu:%llu:%llu", &f, &a, &r), 3);
        fetched += f, acked += a;
    }
    ASSERT_UEQ(fetched, n);
    ASSERT_UEQ(acked, n);
    ASSERT_EQ(pending(adm, stream, NULL), 0);
    /* every result equals the serial computation (MGET in chunks) */
    unsigned bad = 0, missing = 0;
    for (unsigned lo = 0; lo < n; lo += 1000) {
        unsigned hi = lo + 1000 > n ? n : lo + 1000;
        const char *argv[1001];
        char keys[1000][24];
        argv[0] = "MGET";
        for (unsigned k = lo; k < hi; k++) {
            snprintf(keys[k - lo], sizeof keys[0], "result:%u", k);
            argv[1 + k - lo] = keys[k - lo];
        }
        redisReply *r = redisCommandArgv(adm, (int)(hi - lo + 1), argv, NULL);
        ASSERT(r && r->type == REDIS_REPLY_ARRAY && r->elements == hi - lo);
        for (unsigned k = lo; k < hi; k++) {
            char txt[16], want[65];
            int len = snprintf(txt, sizeof txt, "%u", k);
            sha_hex(txt, (size_t)len, want);
            const redisReply *e = r->element[k - lo];
            if (e->type != REDIS_REPLY_STRING)
                missing++;
            else if (strcmp(e->str, want) != 0)
                bad++;
        }
        freeReplyObject(r);
    }
    ASSERT_EQ(missing, 0);
    ASSERT_EQ(bad, 0);
    wp_redis_close(q);
}

/* kill -9 of a consumer mid-job: the entries it held (running and
   prefetched) are taken over by another after visibility_ns and done with
   delivery 2; none is lost; the rest were delivered once. */
TEST(kill9_reclaimed)
{
    const char *stream = "k9";
    cmd_int(adm, "DEL k9");
    wp_redis_config cfg = config(stream);
    wp_redis *q;
    ASSERT_OK(wp_redis_open(&q, &cfg));
    push_numbers(q, 1, 40);
    /* A: 2 workers + 2 prefetch, every handler hangs */
    fflush(NULL);
    pid_t a = fork();
    if (a == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        wp_redis *qa;
        wp_redis_config ca = config(stream);
        ca.consumer = "A";
        ca.prefetch = 2;
        if (wp_redis_open(&qa, &ca)) _exit(101);
        struct seen *s = calloc(1, sizeof *s);
        s->gate_from = 1; /* every job waits (for a kill) */
        wp_pool *pool = pool_of(2);
        _exit(wp_redis_serve(qa, pool, seen_fn, s));
    }
    ASSERT(a > 0);
    int held = WAIT_FOR(pending(adm, stream, "A") == 4, 20000);
    redisReply *ids = redisCommand(adm, "XPENDING %s wpool - + 10 A", stream);
    kill(a, SIGKILL);
    waitpid(a, NULL, 0);
    ASSERT(held);
    ASSERT(ids && ids->type == REDIS_REPLY_ARRAY && ids->elements == 4);
    /* B takes over */
    cfg.consumer = "B";
    wp_redis *qb;
    ASSERT_OK(wp_redis_open(&qb, &cfg));
    struct seen *s = calloc(1, sizeof *s);
    wp_pool *pool = pool_of(2);
    struct server_thread st;
    serve_bg(&st, qb, pool, seen_fn, s);
    int done = WAIT_FOR(atomic_load(&s->total) >= 40 && drained(adm, stream), 20000);
    ASSERT_OK(serve_join(&st));
    ASSERT(done);
    unsigned twice = 0;
    for (unsigned n = 1; n <= 40; n++) {
        ASSERT_EQ(atomic_load(&s->runs[n]), 1); /* B ran each exactly once */
        twice += atomic_load(&s->last_delivery[n]) == 2;
        ASSERT(atomic_load(&s->last_delivery[n]) == 1 || atomic_load(&s->last_delivery[n]) == 2);
    }
    ASSERT_EQ(twice, 4);
    /* the four A held are the ones B saw at delivery 2 */
    for (size_t i = 0; i < ids->elements; i++) {
        redisReply *e =
            redisCommand(adm, "XRANGE %s %s %s", stream, ids->element[i]->element[0]->str,
                         ids->element[i]->element[0]->str);
        ASSERT(e && e->elements == 1);
        unsigned n = (unsigned)atoi(e->element[0]->element[1]->element[1]->str);
        ASSERT_EQ(atomic_load(&s->last_delivery[n]), 2);
        freeReplyObject(e);
    }
    freeReplyObject(ids);
    wp_redis_stats rs;
    wp_redis_get_stats(qb, &rs);
    ASSERT_UEQ(rs.reclaimed, 4);
    ASSERT_UEQ(rs.fetched, 36);
    ASSERT_UEQ(rs.acked, 40);
    ASSERT_EQ(pending(adm, stream, NULL), 0);
    wp_redis_close(qb);
    wp_redis_close(q);
    wp_pool_destroy(pool);
    free(s);
}

/* The server killed and restarted mid-run (its AOF fsynced per write):
   the consumer reconnects and finishes; no acknowledged entry comes back;
   reconnects counts it. A push on a connection that a restart broke
   reconnects and succeeds. */
TEST(server_restart)
{
    static struct server rs_srv; /* static: the atexit stop may see it */
    ASSERT_OK(server_start(&rs_srv, NULL));
    unsigned n = small ? 200 : 2000;
    wp_redis_config cfg = config("rs");
    cfg.url = rs_srv.url;
    cfg.prefetch = 4;
    cfg.timeout_ns = 1000000000u;
    wp_redis *q;
    ASSERT_OK(wp_redis_open(&q, &cfg));
    push_numbers(q, 1, n);
    struct seen *s = calloc(1, sizeof *s);
    s->gate_from = n / 2; /* these wait until the server is back */
    wp_pool *pool = pool_of(2);
    struct server_thread st;
    serve_bg(&st, q, pool, seen_fn, s);
    int reached = WAIT_FOR(atomic_load(&s->gated) >= 1, 30000);
    int restarted = server_restart(&rs_srv);
    atomic_store(&s->gate, 1);
    redisContext *c = server_connect(&rs_srv);
    int done = c && WAIT_FOR(atomic_load(&s->total) >= n && drained(c, "rs"), 60000);
    int rc = serve_join(&st);
    long long left = c ? pending(c, "rs", NULL) : -1;
    if (c) redisFree(c);
    wp_redis_stats rst;
    wp_redis_get_stats(q, &rst);
    wp_redis_close(q); /* a fresh handle: the old one is stopped */
    q = NULL;
    int reopened = wp_redis_open(&q, &cfg);
    int pushed_after = -1;
    if (reopened == 0) { /* its push connection survives another restart */
        server_restart(&rs_srv);
        pushed_after = wp_redis_push(q, "again", 5, NULL);
        server_restart(&rs_srv); /* and a batch of many writes: no SIGPIPE kills us */
        push_numbers(q, 1, 2000);
    }
    wp_redis_stats after = {0};
    if (q) wp_redis_get_stats(q, &after);
    unsigned runs = 0, missing = 0;
    for (unsigned k = 1; k <= n; k++) {
        runs += atomic_load(&s->runs[k]);
        missing += atomic_load(&s->runs[k]) == 0;
    }
    wp_redis_close(q);
    wp_pool_destroy(pool);
    free(s);
    server_stop(&rs_srv);
    ASSERT(reached);
    ASSERT_OK(restarted);
    ASSERT(done);
    ASSERT_OK(rc);
    ASSERT_EQ(missing, 0);
    ASSERT_EQ(left, 0);
    ASSERT_GE(rst.reconnects, 1);
    ASSERT_OK(reopened);
    ASSERT_OK(pushed_after);
    ASSERT_UEQ(after.reconnects, 2);
    ASSERT_UEQ(after.pushed, 2001);
    /* at most what the consumer held at the crash (and one fetch whose reply
       was lost) ran twice: everything acknowledged stayed acknowledged */
    ASSERT_LE(runs, n + 2 * (2 + 4));
}

/* A poison job fails every time: after max_deliveries it is in the dead
   stream with its data, id, count and last result, acknowledged where it
   was; requeue_dead brings it back as a new entry. */
TEST(poison_dead_requeue)
{
    const char *stream = "poison";
    cmd_int(adm, "DEL poison poison:dead");
    wp_redis_config cfg = config(stream);
    cfg.max_deliveries = 3;
    wp_redis *q;
    ASSERT_OK(wp_redis_open(&q, &cfg));
    push_numbers(q, 1, 4);
    char pid_txt[WP_REDIS_ID_MAX];
    ASSERT_OK(wp_redis_push(q, "7", 1, pid_txt));
    push_numbers(q, 5, 6);
    struct seen *s = calloc(1, sizeof *s);
    s->fail_job = 7;
    s->fail_result = 42;
    wp_pool *pool = pool_of(2);
    struct server_thread st;
    serve_bg(&st, q, pool, seen_fn, s);
    wp_redis_stats rs = {0};
    int dead = WAIT_FOR((wp_redis_get_stats(q, &rs), rs.dead == 1) && drained(adm, stream), 20000);
    ASSERT_OK(serve_join(&st));
    ASSERT(dead);
    ASSERT_EQ(atomic_load(&s->runs[7]), 3);
    ASSERT_EQ(atomic_load(&s->last_delivery[7]), 3);
    for (unsigned k = 1; k <= 6; k++) ASSERT_EQ(atomic_load(&s->runs[k]), 1);
    wp_redis_get_stats(q, &rs);
    ASSERT_UEQ(rs.failed, 3);
    ASSERT_UEQ(rs.dead, 1);
    ASSERT_UEQ(rs.acked, 6);
    ASSERT_EQ(pending(adm, stream, NULL), 0);
    ASSERT_EQ(cmd_int(adm, "XLEN poison:dead"), 1);
    redisReply *d = redisCommand(adm, "XRANGE poison:dead - +");
    ASSERT(d && d->elements == 1);
    const redisReply *f = d->element[0]->element[1];
    char got[4][64] = {{0}};
    const char *names[4] = {"id", "deliveries", "result", "data"};
    for (size_t i = 0; i + 1 < f->elements; i += 2)
        for (int k = 0; k < 4; k++)
            if (!strcmp(f->element[i]->str, names[k]))
                snprintf(got[k], sizeof got[k], "%s", f->element[i + 1]->str);
    freeReplyObject(d);
    ASSERT_STR_EQ(got[0], pid_txt);
    ASSERT_STR_EQ(got[1], "3");
    ASSERT_STR_EQ(got[2], "42");
    ASSERT_STR_EQ(got[3], "7");
    wp_redis_close(q);

    /* requeue: back in the stream, gone from the dead one */
    ASSERT_OK(wp_redis_open(&q, &cfg));
    long long len = cmd_int(adm, "XLEN poison");
    size_t moved = 0;
    ASSERT_OK(wp_redis_requeue_dead(q, 10, &moved));
    ASSERT_EQ(moved, 1);
    ASSERT_EQ(cmd_int(adm, "XLEN poison:dead"), 0);
    ASSERT_EQ(cmd_int(adm, "XLEN poison"), len + 1);
    redisReply *last = redisCommand(adm, "XREVRANGE poison + - COUNT 1");
    ASSERT(last && last->elements == 1);
    ASSERT_STR_EQ(last->element[0]->element[1]->element[1]->str, "7");
    freeReplyObject(last);
    ASSERT_OK(wp_redis_requeue_dead(q, 10, &moved));
    ASSERT_EQ(moved, 0);
    /* served again, it starts over at delivery 1 */
    s->fail_job = 0;
    serve_bg(&st, q, pool, seen_fn, s);
    ASSERT(WAIT_FOR(atomic_load(&s->runs[7]) == 4 && drained(adm, stream), 20000));
    ASSERT_OK(serve_join(&st));
    ASSERT_EQ(atomic_load(&s->last_delivery[7]), 1);
    wp_redis_close(q);
    wp_pool_destroy(pool);
    free(s);
}

/* A live consumer keeps what it works on: a job running for several times
   visibility_ns, and those prefetched behind it, are not taken over by an
   idle second consumer; each runs once, at delivery 1. */
TEST(slow_job_kept)
{
    const char *stream = "slow";
    cmd_int(adm, "DEL slow");
    wp_redis_config cfg = config(stream);
    cfg.consumer = "busy";
    cfg.visibility_ns = 400000000u; /* renewed every 100 ms: room for a loaded machine */
    cfg.prefetch = 1;
    wp_redis *qa, *qb;
    ASSERT_OK(wp_redis_open(&qa, &cfg));
    push_numbers(qa, 1, 2);
    struct seen *sa = calloc(1, sizeof *sa), *sb = calloc(1, sizeof *sb);
    sa->sleep_ms = 1000; /* one worker: the 2 jobs take 2 s, 5 visibilities */
    wp_pool *pa = pool_of(1), *pb = pool_of(1);
    struct server_thread ta, tb;
    serve_bg(&ta, qa, pa, seen_fn, sa);
    ASSERT(WAIT_FOR(pending(adm, stream, "busy") == 2, 10000));
    cfg.consumer = "idle";
    ASSERT_OK(wp_redis_open(&qb, &cfg));
    serve_bg(&tb, qb, pb, seen_fn, sb);
    int done = WAIT_FOR(
        atomic_load(&sa->total) + atomic_load(&sb->total) >= 2 && drained(adm, stream), 20000);
    ASSERT_OK(serve_join(&ta));
    ASSERT_OK(serve_join(&tb));
    ASSERT(done);
    for (unsigned n = 1; n <= 2; n++) {
        ASSERT_EQ(atomic_load(&sa->runs[n]), 1);
        ASSERT_EQ(atomic_load(&sa->last_delivery[n]), 1);
    }
    ASSERT_EQ(atomic_load(&sb->total), 0);
    wp_redis_stats rs;
    wp_redis_get_stats(qb, &rs);
    ASSERT_UEQ(rs.reclaimed, 0);
    wp_redis_close(qa);
    wp_redis_close(qb);
    wp_pool_destroy(pa);
    wp_pool_destroy(pb);
    free(sa);
    free(sb);
}

struct sampler {
    const char *stream, *consumer;
    atomic_int stop;
    long long max_seen;
    unsigned samples;
};

static void *sample_main(void *arg)
{
    struct sampler *sm = arg;
    redisContext *c = server_connect(&srv);
    for (unsigned i = 0; c && i < 20000 && !atomic_load(&sm->stop); i++) {
        long long p = pending(c, sm->stream, sm->consumer);
        if (p > sm->max_seen) sm->max_seen = p;
        sm->samples++;
        test_sleep_ms(1);
    }
    if (c) redisFree(c);
    return NULL;
}

/* Backpressure: a consumer never holds more pending entries than workers +
   prefetch (XPENDING read throughout the run), and does hold that many when
   work waits. */
TEST(backpressure)
{
    const char *stream = "bp";
    cmd_int(adm, "DEL bp");
    wp_redis_config cfg = config(stream);
    cfg.consumer = "bp1";
    cfg.prefetch = 3;
    wp_redis *q;
    ASSERT_OK(wp_redis_open(&q, &cfg));
    unsigned n = small ? 40 : 200;
    push_numbers(q, 1, n);
    struct seen *s = calloc(1, sizeof *s);
    s->sleep_ms = 2;
    wp_pool *pool = pool_of(2);
    struct sampler sm = {.stream = stream, .consumer = "bp1"};
    pthread_t t;
    pthread_create(&t, NULL, sample_main, &sm);
    struct server_thread st;
    serve_bg(&st, q, pool, seen_fn, s);
    int done = WAIT_FOR(atomic_load(&s->total) == n && drained(adm, stream), 30000);
    atomic_store(&sm.stop, 1);
    pthread_join(t, NULL);
    ASSERT_OK(serve_join(&st));
    ASSERT(done);
    ASSERT_GT(sm.samples, 0);
    ASSERT_LE(sm.max_seen, 2 + 3);
    ASSERT_GE(sm.max_seen, 1);
    wp_redis_close(q);
    wp_pool_destroy(pool);
    free(s);
}

/* Graceful stop: serve returns 0 once the handlers it started have returned,
   and every one of them is acknowledged: nothing is left pending. */
TEST(graceful_stop)
{
    const char *stream = "gs";
    cmd_int(adm, "DEL gs");
    wp_redis_config cfg = config(stream);
    cfg.consumer = "g1";
    cfg.prefetch = 2;
    wp_redis *q;
    ASSERT_OK(wp_redis_open(&q, &cfg));
    push_numbers(q, 1, 100);
    struct seen *s = calloc(1, sizeof *s);
    s->sleep_ms = 20;
    wp_pool *pool = pool_of(2);
    struct server_thread st;
    serve_bg(&st, q, pool, seen_fn, s);
    ASSERT(WAIT_FOR(atomic_load(&s->total) >= 3, 20000));
    ASSERT_OK(serve_join(&st));
    unsigned started = 0;
    for (unsigned k = 1; k <= 100; k++) started += atomic_load(&s->runs[k]);
    ASSERT_EQ(started, atomic_load(&s->total)); /* none left running */
    ASSERT_LT(started, 100);                    /* it stopped early */
    ASSERT_EQ(pending(adm, stream, NULL), 0);   /* none left unacknowledged */
    wp_redis_stats rs;
    wp_redis_get_stats(q, &rs);
    ASSERT_UEQ(rs.acked, started);
    ASSERT_UEQ(rs.fetched, started);
    wp_redis_close(q);

    /* close while serving: serve returns EPIPE */
    ASSERT_OK(wp_redis_open(&q, &cfg));
    s->sleep_ms = 0;
    st.q = q;
    serve_bg(&st, q, pool, seen_fn, s);
    ASSERT(WAIT_FOR(atomic_load(&s->total) >= 100, 20000));
    wp_redis_close(q);
    pthread_join(st.t, NULL);
    ASSERT_ERR(st.rc, EPIPE);
    ASSERT_EQ(pending(adm, stream, NULL), 0);
    wp_pool_destroy(pool);
    free(s);
}

int main(int argc, char **argv)
{
    if (argc == 9 && strcmp(argv[1], "--consumer") == 0) return consumer_main(argv + 1);
    if (!realpath(argv[0], self)) snprintf(self, sizeof self, "%s", argv[0]);
    int skip = 0;
    if (argc > 1 && strncmp(argv[1], "--skip-code=", 12) == 0) {
        skip = atoi(argv[1] + 12);
        argv[1] = argv[0];
        argv++, argc--;
    }
    if (!server_available()) {
        printf("test_redis: skipped: redis-server not found (apt-get install redis-server)\n");
        return skip;
    }
    const char *sm = getenv("WPOOL_TEST_SMALL");
    small = (sm && *sm && *sm != '0');
#ifdef WPOOL_TEST_SANITIZED
    small = 1;
#endif
    if (server_start(&srv, NULL) != 0 || !(adm = server_connect(&srv))) {
        printf("test_redis: could not start redis-server\n");
        servers_kill_all();
        return 1;
    }
    int rc = test_main_(argc, argv);
    redisFree(adm);
    server_stop(&srv);
    return rc;
}
