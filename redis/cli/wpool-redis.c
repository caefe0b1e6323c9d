/*
 * wpool-redis: the command-line side of libwpool-redis.
 *
 *   wpool-redis [--url URL] push STREAM [--seed N] [--max-len N]
 *   wpool-redis [--url URL] work STREAM [--workers N] [--prefetch N]
 *               [--visibility MS] [--max-deliveries N] [--group G]
 *               [--consumer NAME] [--drain] (--seed | -- COMMAND [ARG...])
 *   wpool-redis [--url URL] stats STREAM [--group G]
 *   wpool-redis [--url URL] dead STREAM [--requeue] [--max N]
 *
 * push adds a job per line of stdin (without its newline), or with --seed N
 * the seed's jobs: the decimal texts "1" .. "N". work runs COMMAND once per
 * job with the job's data on its stdin, on a pool of --workers threads
 * (default: the usable CPUs); exit status 0 acknowledges the job, anything
 * else fails it (delivered again later, dead after --max-deliveries). With
 * --seed instead of a command, each job is the seed's: SHA-256 of its data,
 * summed, and the count and sum are printed at the end (for the benchmark).
 * --drain makes work return once the group has handed out every entry and
 * none is pending. SIGTERM or SIGINT stops work gracefully: no new job
 * starts, running ones finish and are acknowledged. Commands run in their
 * own process group, so a terminal's ^C reaches wpool-redis only.
 *
 * --url defaults to $WPOOL_REDIS_URL, else redis://127.0.0.1:6379. Errors
 * are one line on stderr naming what failed and the address (never the
 * password); exit status 1, 2 for bad usage.
 */
#include "conn.h"

#include <wpool_redis.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static const char *prog = "wpool-redis";

struct opts {
    const char *url, *cmd, *stream, *group, *consumer;
    unsigned long long seed, max_len, workers, prefetch, visibility_ms, max_deliveries, max;
    int seed_set, drain, requeue;
    char **argv; /* the COMMAND after -- */
};

static void usage(void)
{
    fprintf(stderr,
            "usage: %s [--url URL] push STREAM [--seed N] [--max-len N]\n"
            "       %s [--url URL] work STREAM [--workers N] [--prefetch N] [--visibility MS]\n"
            "                   [--max-deliveries N] [--group G] [--consumer NAME] [--drain]\n"
            "                   (--seed | -- COMMAND [ARG...])\n"
            "       %s [--url URL] stats STREAM [--group G]\n"
            "       %s [--url URL] dead STREAM [--requeue] [--max N]\n",
            prog, prog, prog, prog);
    exit(2);
}

/* What an error means, in words. */
static const char *why(int err)
{
    switch (err) {
    case EACCES:
        return "authentication refused (wrong or missing password)";
    case EPROTO:
        return "the server refused the command (does the key hold something other than a "
               "stream?)";
    case EMSGSIZE:
        return "a job is over 512 MiB";
    case EHOSTUNREACH:
        return "no route to host, or no such host name";
    case EINVAL:
        return "invalid argument";
    default:
        return strerror(err);
    }
}

/* One line: what failed, the address (no password), why. Exits 1. */
static void die(const char *what, const char *addr, int err)
{
    if (err == EINVAL && !addr)
        fprintf(stderr,
                "%s: %s: malformed url (want redis://[[user]:password@]host[:port][/db] or "
                "unix:///path)\n",
                prog, what);
    else
        fprintf(stderr, "%s: %s %s: %s\n", prog, what, addr ? addr : "", why(err));
    exit(1);
}

static unsigned long long number(const char *flag, const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = s && *s >= '0' && *s <= '9' ? strtoull(s, &end, 10) : 0;
    if (!s || *s < '0' || *s > '9' || errno || *end) {
        fprintf(stderr, "%s: %s wants a number, not '%s'\n", prog, flag, s ? s : "");
        exit(2);
    }
    return v;
}

static void parse(int argc, char **argv, struct opts *o)
{
    const char *env = getenv("WPOOL_REDIS_URL");
    o->url = env && *env ? env : NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--")) {
            o->argv = argv + i + 1;
            if (!o->argv[0]) usage();
            break;
        }
        if (!strcmp(a, "--url") && v)
            o->url = v, i++;
        else if (!strcmp(a, "--seed") && !strcmp(o->cmd ? o->cmd : "", "work"))
            o->seed_set = 1;
        else if (!strcmp(a, "--seed") && v)
            o->seed = number(a, v), o->seed_set = 1, i++;
        else if (!strcmp(a, "--max-len") && v)
            o->max_len = number(a, v), i++;
        else if (!strcmp(a, "--workers") && v)
            o->workers = number(a, v), i++;
        else if (!strcmp(a, "--prefetch") && v)
            o->prefetch = number(a, v), i++;
        else if (!strcmp(a, "--visibility") && v)
            o->visibility_ms = number(a, v), i++;
        else if (!strcmp(a, "--max-deliveries") && v)
            o->max_deliveries = number(a, v), i++;
        else if (!strcmp(a, "--max") && v)
            o->max = number(a, v), i++;
        else if (!strcmp(a, "--group") && v)
            o->group = v, i++;
        else if (!strcmp(a, "--consumer") && v)
            o->consumer = v, i++;
        else if (!strcmp(a, "--drain"))
            o->drain = 1;
        else if (!strcmp(a, "--requeue"))
            o->requeue = 1;
        else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "%s: unknown option or missing value: %s\n", prog, a);
            usage();
        } else if (!o->cmd)
            o->cmd = a;
        else if (!o->stream)
            o->stream = a;
        else
            usage();
    }
    if (!o->cmd || !o->stream || !o->stream[0]) usage();
    if (o->workers > WP_MAX_WORKERS || o->prefetch > 1000000 || o->max_deliveries > UINT_MAX)
        usage();
}

/* The address for messages; exits on a malformed url. */
static void address(const struct opts *o, const char *what, char *out, size_t n)
{
    struct wp__redis_url u;
    int rc = wp__redis_url_parse(o->url, &u);
    if (rc) die(what, NULL, rc);
    snprintf(out, n, "%s", u.addr);
    wp__redis_url_free(&u);
}

static wp_redis *open_q(const struct opts *o)
{
    char addr[WP__REDIS_ADDR_MAX], what[200];
    snprintf(what, sizeof what, "%s: open %.100s at", o->cmd, o->stream);
    address(o, what, addr, sizeof addr);
    wp_redis_config cfg;
    wp_redis_config_init(&cfg);
    cfg.url = o->url;
    cfg.stream = o->stream;
    cfg.group = o->group;
    cfg.consumer = o->consumer;
    cfg.prefetch = (unsigned)o->prefetch;
    cfg.visibility_ns = o->visibility_ms * 1000000ull;
    cfg.max_deliveries = (unsigned)o->max_deliveries;
    cfg.max_len = o->max_len;
    wp_redis *q;
    int rc = wp_redis_open(&q, &cfg);
    if (rc) die(what, addr, rc);
    return q;
}

/* ------------------------------------------------------------------ push -- */

enum { BATCH = 1024 };

static int push_cmd(const struct opts *o)
{
    wp_redis *q = open_q(o);
    char *bufs[BATCH] = {0};
    size_t caps[BATCH] = {0}, lens[BATCH];
    const void *data[BATCH];
    unsigned long long total = 0, next = 1;
    int rc = 0;
    for (;;) {
        size_t n = 0;
        while (n < BATCH) {
            if (o->seed_set) {
                if (next > o->seed) break;
                if (!bufs[n] && !(bufs[n] = malloc(caps[n] = 24))) die("push", "", ENOMEM);
                lens[n] = (size_t)snprintf(bufs[n], caps[n], "%llu", next++);
            } else {
                ssize_t len = getline(&bufs[n], &caps[n], stdin);
                if (len < 0) break;
                if (len > 0 && bufs[n][len - 1] == '\n') len--;
                lens[n] = (size_t)len;
            }
            data[n] = bufs[n];
            n++;
        }
        if (n == 0) break;
        if ((rc = wp_redis_push_batch(q, data, lens, n)) != 0) break;
        total += n;
    }
    for (size_t i = 0; i < BATCH; i++) free(bufs[i]);
    if (rc) {
        char what[96];
        snprintf(what, sizeof what, "push: %llu pushed, then XADD to %s at", total, o->stream);
        char addr[WP__REDIS_ADDR_MAX];
        snprintf(addr, sizeof addr, "%s", wp_redis_address(q));
        wp_redis_close(q);
        die(what, addr, rc);
    }
    wp_redis_close(q);
    return 0;
}

/* ------------------------------------------------------------------ work -- */

static wp_redis *work_q;
static atomic_int monitor_stop;

static void on_signal(int sig)
{
    (void)sig;
    wp_redis_stop(work_q); /* async-signal-safe */
}

/* The seed job: SHA-256 of the data; the first 8 bytes summed. */
static _Atomic unsigned long long seed_count, seed_sum;

static int seed_fn(const void *data, size_t len, const char *id, unsigned delivery, void *user)
{
    (void)id, (void)delivery, (void)user;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) || n < 8) return 1;
    unsigned long long v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | md[i];
    atomic_fetch_add_explicit(&seed_sum, v, memory_order_relaxed);   /* read after serve */
    atomic_fetch_add_explicit(&seed_count, 1, memory_order_relaxed); /* read after serve */
    return 0;
}

/* COMMAND with data on its stdin, in a process group of its own; its exit
   status (128 + signal when killed; 127 when it could not start). */
static int exec_fn(const void *data, size_t len, const char *id, unsigned delivery, void *user)
{
    (void)id, (void)delivery;
    char **argv = user;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return 127;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[0], 0); /* dup2 clears CLOEXEC on fd 0 */
    posix_spawnattr_init(&at);
    posix_spawnattr_setpgroup(&at, 0);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&at,
                               &none); /* the worker blocks all signals; the child should not */
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(fds[0]);
    if (rc != 0) {
        close(fds[1]);
        return 127;
    }
    const char *p = data;
    while (len > 0) { /* EPIPE if the command does not read it all: fine */
        ssize_t w = write(fds[1], p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        p += w, len -= (size_t)w;
    }
    close(fds[1]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return 127;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* --drain: stops work once the group has delivered every entry and nothing
   is pending (polled every 20 ms on a connection of its own). */
struct monitor {
    const struct opts *o;
    pthread_t t;
};

static int group_drained(redisContext *c, const struct opts *o)
{
    const char *group = o->group ? o->group : "wpool";
    char last[64] = "", delivered[64] = "?";
    long long pend = -1;
    redisReply *r = redisCommand(c, "XINFO STREAM %s", o->stream);
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
        if (!strcmp(r->element[i]->str, "last-generated-id"))
            snprintf(last, sizeof last, "%s", r->element[i + 1]->str);
    if (r) freeReplyObject(r);
    r = redisCommand(c, "XINFO GROUPS %s", o->stream);
    for (size_t g = 0; r && r->type == REDIS_REPLY_ARRAY && g < r->elements; g++) {
        const redisReply *f = r->element[g];
        int mine = 0;
        for (size_t i = 0; i + 1 < f->elements; i += 2)
            if (!strcmp(f->element[i]->str, "name")) mine = !strcmp(f->element[i + 1]->str, group);
        for (size_t i = 0; mine && i + 1 < f->elements; i += 2) {
            if (!strcmp(f->element[i]->str, "last-delivered-id"))
                snprintf(delivered, sizeof delivered, "%s", f->element[i + 1]->str);
            if (!strcmp(f->element[i]->str, "pending")) pend = f->element[i + 1]->integer;
        }
    }
    if (r) freeReplyObject(r);
    return last[0] && !strcmp(last, delivered) && pend == 0;
}

static void *monitor_main(void *arg)
{
    struct monitor *m = arg;
    struct wp__redis_url u;
    redisContext *c = NULL;
    if (wp__redis_url_parse(m->o->url, &u) == 0) {
        wp__redis_connect(&u, 5000000000u, &c);
        wp__redis_url_free(&u);
    }
    while (c && !c->err && !atomic_load_explicit(&monitor_stop, memory_order_relaxed)) {
        if (group_drained(c, m->o)) {
            wp_redis_stop(work_q);
            break;
        }
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
    if (c) redisFree(c);
    return NULL;
}

static int work_cmd(const struct opts *o)
{
    if (!o->seed_set && !o->argv) {
        fprintf(stderr, "%s: work wants --seed or -- COMMAND\n", prog);
        usage();
    }
    work_q = open_q(o);
    wp_config pc;
    wp_config_init(&pc);
    pc.workers = (unsigned)o->workers;
    pc.name = "wpool-redis";
    wp_pool *pool;
    int rc = wp_pool_create(&pool, &pc);
    if (rc) die("work: wp_pool_create for", wp_redis_address(work_q), rc);
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    struct monitor m = {.o = o};
    if (o->drain) {
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        pthread_create(&m.t, NULL, monitor_main, &m);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    rc = o->seed_set ? wp_redis_serve(work_q, pool, seed_fn, NULL)
                     : wp_redis_serve(work_q, pool, exec_fn, o->argv);
    if (o->drain) {
        atomic_store_explicit(&monitor_stop, 1, memory_order_relaxed);
        pthread_join(m.t, NULL);
    }
    wp_pool_destroy(pool);
    wp_redis_stats st;
    wp_redis_get_stats(work_q, &st);
    fprintf(stderr,
            "%s: work %s: fetched %llu, acked %llu, failed %llu, reclaimed %llu, dead %llu, "
            "reconnects %llu\n",
            prog, o->stream, (unsigned long long)st.fetched, (unsigned long long)st.acked,
            (unsigned long long)st.failed, (unsigned long long)st.reclaimed,
            (unsigned long long)st.dead, (unsigned long long)st.reconnects);
    if (o->seed_set)
        printf("seed: %llu jobs, sum %016llx\n", (unsigned long long)atomic_load(&seed_count),
               (unsigned long long)atomic_load(&seed_sum));
    char addr[WP__REDIS_ADDR_MAX];
    snprintf(addr, sizeof addr, "%s", wp_redis_address(work_q));
    wp_redis_close(work_q);
    if (rc) die("work: serving", addr, rc);
    return 0;
}

/* ------------------------------------------------------- stats and dead -- */

static redisContext *connect_raw(const struct opts *o, const char *what, char *addr, size_t n)
{
    struct wp__redis_url u;
    int rc = wp__redis_url_parse(o->url, &u);
    if (rc) die(what, NULL, rc);
    snprintf(addr, n, "%s", u.addr);
    redisContext *c;
    rc = wp__redis_connect(&u, 5000000000u, &c);
    wp__redis_url_free(&u);
    if (rc) die(what, addr, rc);
    return c;
}

/* A command's reply; dies on a lost connection or an error reply. */
static redisReply *must(redisContext *c, const char *what, const char *addr, redisReply *r)
{
    if (!r) die(what, addr, wp__redis_ctx_errno(c));
    if (r->type == REDIS_REPLY_ERROR) {
        int e = wp__redis_reply_errno(r);
        freeReplyObject(r);
        die(what, addr, e == EAGAIN ? EPROTO : e);
    }
    return r;
}

static const redisReply *field(const redisReply *map, const char *name)
{
    for (size_t i = 0; map && map->type == REDIS_REPLY_ARRAY && i + 1 < map->elements; i += 2)
        if (map->element[i]->type == REDIS_REPLY_STRING && !strcmp(map->element[i]->str, name))
            return map->element[i + 1];
    return NULL;
}

static void print_value(const redisReply *v)
{
    if (!v || v->type == REDIS_REPLY_NIL)
        printf("-");
    else if (v->type == REDIS_REPLY_INTEGER)
        printf("%lld", v->integer);
    else if (v->str)
        printf("%s", v->str);
    else
        printf("?");
}

static int stats_cmd(const struct opts *o)
{
    char addr[WP__REDIS_ADDR_MAX];
    redisContext *c = connect_raw(o, "stats: connect to", addr, sizeof addr);
    redisReply *t = must(c, "stats: TYPE at", addr, redisCommand(c, "TYPE %s", o->stream));
    if (strcmp(t->str, "stream") != 0 && strcmp(t->str, "none") != 0) {
        freeReplyObject(t);
        die("stats: the key is no stream at", addr, EPROTO);
    }
    int exists = !strcmp(t->str, "stream");
    freeReplyObject(t);
    redisReply *len = must(c, "stats: XLEN at", addr, redisCommand(c, "XLEN %s", o->stream));
    redisReply *dead = must(c, "stats: XLEN at", addr, redisCommand(c, "XLEN %s:dead", o->stream));
    printf("stream %s: length %lld, dead %lld\n", o->stream, len->integer, dead->integer);
    freeReplyObject(len);
    freeReplyObject(dead);
    if (exists) {
        redisReply *gs =
            must(c, "stats: XINFO GROUPS at", addr, redisCommand(c, "XINFO GROUPS %s", o->stream));
        for (size_t g = 0; gs->type == REDIS_REPLY_ARRAY && g < gs->elements; g++) {
            const redisReply *f = gs->element[g];
            const redisReply *name = field(f, "name");
            if (!name || (o->group && strcmp(name->str, o->group) != 0)) continue;
            printf("group %s: pending ", name->str);
            print_value(field(f, "pending"));
            printf(", lag ");
            print_value(field(f, "lag"));
            printf(", consumers ");
            print_value(field(f, "consumers"));
            printf(", last-delivered ");
            print_value(field(f, "last-delivered-id"));
            printf("\n");
            redisReply *cs = must(c, "stats: XINFO CONSUMERS at", addr,
                                  redisCommand(c, "XINFO CONSUMERS %s %s", o->stream, name->str));
            for (size_t i = 0; cs->type == REDIS_REPLY_ARRAY && i < cs->elements; i++) {
                printf("  consumer ");
                print_value(field(cs->element[i], "name"));
                printf(": pending ");
                print_value(field(cs->element[i], "pending"));
                printf(", idle ");
                print_value(field(cs->element[i], "idle"));
                printf(" ms\n");
            }
            freeReplyObject(cs);
        }
        freeReplyObject(gs);
    }
    redisFree(c);
    return 0;
}

/* Prints data with anything unprintable as \xNN. */
static void print_data(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '\\')
            putchar(ch);
        else
            printf("\\x%02x", ch);
    }
}

static int dead_cmd(const struct opts *o)
{
    if (o->requeue) {
        wp_redis *q = open_q(o);
        size_t moved = 0;
        int rc = wp_redis_requeue_dead(q, o->max ? (size_t)o->max : SIZE_MAX, &moved);
        printf("requeued %zu\n", moved);
        char addr[WP__REDIS_ADDR_MAX];
        snprintf(addr, sizeof addr, "%s", wp_redis_address(q));
        wp_redis_close(q);
        if (rc) die("dead: requeue at", addr, rc);
        return 0;
    }
    char addr[WP__REDIS_ADDR_MAX], from[WP_REDIS_ID_MAX + 2] = "-";
    redisContext *c = connect_raw(o, "dead: connect to", addr, sizeof addr);
    unsigned long long shown = 0;
    for (;;) {
        redisReply *r = must(c, "dead: XRANGE at", addr,
                             redisCommand(c, "XRANGE %s:dead %s + COUNT 256", o->stream, from));
        size_t n = r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
        for (size_t i = 0; i < n && (!o->max || shown < o->max); i++, shown++) {
            const redisReply *e = r->element[i];
            snprintf(from, sizeof from, "(%s", e->element[0]->str);
            printf("%s id=", e->element[0]->str);
            print_value(field(e->element[1], "id"));
            printf(" deliveries=");
            print_value(field(e->element[1], "deliveries"));
            printf(" result=");
            print_value(field(e->element[1], "result"));
            printf(" data=");
            const redisReply *d = field(e->element[1], "data");
            if (d && d->type == REDIS_REPLY_STRING) print_data(d->str, d->len);
            printf("\n");
        }
        freeReplyObject(r);
        if (n == 0 || (o->max && shown >= o->max)) break;
    }
    redisFree(c);
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o = {0};
    parse(argc, argv, &o);
    if (!strcmp(o.cmd, "push")) return push_cmd(&o);
    if (!strcmp(o.cmd, "work")) return work_cmd(&o);
    if (!strcmp(o.cmd, "stats")) return stats_cmd(&o);
    if (!strcmp(o.cmd, "dead")) return dead_cmd(&o);
    fprintf(stderr, "%s: unknown command %s\n", prog, o.cmd);
    usage();
}
