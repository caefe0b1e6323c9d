/*
 * queue.c: the handle's lifecycle (open, stop, close), pushes, requeueing
 * the dead, and the counters. Locks and fields: queue.h. serve.c has the
 * consumer side.
 *
 * Pushes go through push_c under push_lock, pipelined in chunks of
 * PUSH_CHUNK commands (all appended, then all replies read). A connection
 * found lost is remade before sending; a chunk whose connection was lost
 * mid-way is resent once, from its first unanswered entry, on a fresh one.
 */
#include "queue.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { PUSH_CHUNK = 1024, REQUEUE_CHUNK = 256 };

uint64_t wp__redis_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void wp_redis_config_init(wp_redis_config *cfg)
{
    if (cfg) memset(cfg, 0, sizeof *cfg);
}

int wp__redis_xadd_argv(const wp_redis *q, const char *key, const char *field, const void *data,
                        size_t len, const char **argv, size_t *argvlen)
{
    int n = 0;
    argv[n++] = "XADD";
    argv[n++] = key;
    if (q->max_len && key == q->stream) {
        argv[n++] = "MAXLEN";
        argv[n++] = "~";
        argv[n++] = q->max_len_txt;
    }
    argv[n++] = "*";
    argv[n++] = field;
    for (int i = 0; i < n; i++) argvlen[i] = strlen(argv[i]);
    argv[n] = len ? data : "";
    argvlen[n++] = len;
    return n;
}

int wp__redis_make_group(const wp_redis *q, redisContext *c)
{
    const char *argv[] = {"XGROUP", "CREATE", q->stream, q->group, "0", "MKSTREAM"};
    redisReply *r;
    int rc = wp__redis_cmd(c, 6, argv, NULL, &r);
    if (rc == 0 && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) != 0)
        rc = wp__redis_reply_errno(r);
    if (r) freeReplyObject(r);
    return rc;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    return d ? memcpy(d, s, n) : NULL;
}

static void free_handle(wp_redis *q)
{
    if (q->push_c) redisFree(q->push_c);
    wp__redis_url_free(&q->url);
    free(q->stream);
    free(q->dead);
    free(q->group);
    free(q->consumer);
    pthread_mutex_destroy(&q->push_lock);
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->cond);
    free(q);
}

int wp_redis_open(wp_redis **out, const wp_redis_config *cfg)
{
    if (!out || !cfg || !cfg->stream || !cfg->stream[0] || (cfg->group && !cfg->group[0]) ||
        (cfg->consumer && !cfg->consumer[0]))
        return EINVAL;
    wp_redis *q = calloc(1, sizeof *q);
    if (!q) return ENOMEM;
    int rc = wp__redis_url_parse(cfg->url, &q->url);
    if (rc) {
        free(q);
        return rc;
    }
    pthread_mutex_init(&q->push_lock, NULL);
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->cond, NULL);
    atomic_init(&q->stopped, 0);

    char me[300];
    if (cfg->consumer) {
        snprintf(me, sizeof me, "%s", cfg->consumer);
    } else {
        char host[256] = "";
        if (gethostname(host, sizeof host - 1) != 0 || !host[0]) strcpy(host, "localhost");
        snprintf(me, sizeof me, "%s-%ld", host, (long)getpid());
    }
    size_t sn = strlen(cfg->stream);
    q->stream = dup_str(cfg->stream);
    q->dead = malloc(sn + sizeof ":dead");
    if (q->dead) memcpy(q->dead, cfg->stream, sn), memcpy(q->dead + sn, ":dead", sizeof ":dead");
    q->group = dup_str(cfg->group ? cfg->group : "wpool");
    q->consumer = dup_str(me);
    if (!q->stream || !q->dead || !q->group || !q->consumer) {
        free_handle(q);
        return ENOMEM;
    }
    q->prefetch = cfg->prefetch;
    q->max_deliveries = cfg->max_deliveries ? cfg->max_deliveries : 5;
    q->visibility_ns = cfg->visibility_ns ? cfg->visibility_ns : 30000000000u;
    q->timeout_ns = cfg->timeout_ns ? cfg->timeout_ns : 5000000000u;
    q->max_len = cfg->max_len;
    snprintf(q->max_len_txt, sizeof q->max_len_txt, "%llu", (unsigned long long)q->max_len);

    struct wp__sigpipe g;
    wp__sigpipe_block(&g);
    rc = wp__redis_connect(&q->url, q->timeout_ns, &q->push_c);
    if (rc == 0) rc = wp__redis_make_group(q, q->push_c);
    wp__sigpipe_unblock(&g);
    if (rc) {
        free_handle(q);
        return rc == EAGAIN ? EPROTO : rc;
    }
    *out = q;
    return 0;
}

/* The push connection, remade if lost. *fresh: made by this call.
   push_lock held. */
static int push_conn(wp_redis *q, int *fresh)
{
    *fresh = 0;
    if (q->push_c && !q->push_c->err) return 0;
    if (q->push_c) {
        redisFree(q->push_c);
        q->push_c = NULL;
        WP__COUNT(q, reconnects, 1);
    }
    *fresh = 1;
    return wp__redis_connect(&q->url, q->timeout_ns, &q->push_c);
}

/* Pushes data[0..n) (checked by the caller); the first entry's id into id1
   when not NULL. push_lock held. */
static int push_locked(wp_redis *q, const void *const *data, const size_t *len, size_t n, char *id1)
{
    const char *argv[8];
    size_t argvlen[8];
    for (size_t lo = 0; lo < n;) {
        size_t hi = n - lo > PUSH_CHUNK ? lo + PUSH_CHUNK : n;
        int fresh, rc = push_conn(q, &fresh), retried = 0;
    resend:
        if (rc) return rc == EAGAIN ? EPROTO : rc;
        for (size_t i = lo; i < hi; i++) {
            int argc = wp__redis_xadd_argv(q, q->stream, "data", data[i], len[i], argv, argvlen);
            if (redisAppendCommandArgv(q->push_c, argc, argv, argvlen) != REDIS_OK) return ENOMEM;
        }
        int err = 0;
        size_t done = lo;
        for (size_t i = lo; i < hi; i++) {
            void *rv;
            if (redisGetReply(q->push_c, &rv) != REDIS_OK) {
                rc = wp__redis_ctx_errno(q->push_c);
                break;
            }
            redisReply *r = rv;
            if (r->type == REDIS_REPLY_ERROR) {
                if (!err) err = wp__redis_reply_errno(r);
            } else if (!err) {
                WP__COUNT(q, pushed, 1);
                if (i == 0 && id1 && r->type == REDIS_REPLY_STRING)
                    snprintf(id1, WP_REDIS_ID_MAX, "%s", r->str);
                done = i + 1;
            }
            freeReplyObject(r);
        }
        if (err) return err == EAGAIN ? EPROTO : err;
        if (rc) { /* lost mid-chunk: once more, on a new connection, from the first unanswered */
            if (retried || !wp__redis_conn_lost(rc)) return rc;
            retried = 1;
            lo = done;
            rc = push_conn(q, &fresh);
            goto resend;
        }
        lo = hi;
    }
    return 0;
}

int wp_redis_push_batch(wp_redis *q, const void *const *data, const size_t *len, size_t n)
{
    if (!q) return EINVAL;
    if (n == 0) return 0;
    if (!data || !len) return EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!data[i] && len[i]) return EINVAL;
        if (len[i] > WP_REDIS_MAX_DATA) return EMSGSIZE;
    }
    if (atomic_load_explicit(&q->stopped, memory_order_relaxed)) return EPIPE;
    struct wp__sigpipe g;
    wp__sigpipe_block(&g);
    pthread_mutex_lock(&q->push_lock);
    int rc = push_locked(q, data, len, n, NULL);
    pthread_mutex_unlock(&q->push_lock);
    wp__sigpipe_unblock(&g);
    return rc;
}

int wp_redis_push(wp_redis *q, const void *data, size_t len, char id[WP_REDIS_ID_MAX])
{
    if (!q || (!data && len)) return EINVAL;
    if (len > WP_REDIS_MAX_DATA) return EMSGSIZE;
    if (atomic_load_explicit(&q->stopped, memory_order_relaxed)) return EPIPE;
    struct wp__sigpipe g;
    wp__sigpipe_block(&g);
    pthread_mutex_lock(&q->push_lock);
    int rc = push_locked(q, &data, &len, 1, id);
    pthread_mutex_unlock(&q->push_lock);
    wp__sigpipe_unblock(&g);
    return rc;
}

/* The value of field name in a stream entry's field array, or NULL. */
static const redisReply *field(const redisReply *fields, const char *name)
{
    if (!fields || fields->type != REDIS_REPLY_ARRAY) return NULL;
    for (size_t i = 0; i + 1 < fields->elements; i += 2)
        if (fields->element[i]->type == REDIS_REPLY_STRING &&
            !strcmp(fields->element[i]->str, name))
            return fields->element[i + 1];
    return NULL;
}

/* Reads the replies of n pipelined commands, keeping the first error; the
   replies go to out[] (when not NULL) or are freed. */
static int replies(redisContext *c, size_t n, redisReply **out)
{
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        void *rv = NULL;
        if (rc == 0 && redisGetReply(c, &rv) != REDIS_OK) rc = wp__redis_ctx_errno(c);
        if (out)
            out[i] = rv;
        else if (rv)
            freeReplyObject(rv);
    }
    return rc;
}

/* One chunk of requeue: up to want dead entries after *from. push_lock
   held. Adds each one's data to the stream first, then deletes from the dead
   stream those whose add succeeded, so that none is lost (a lost connection
   in between leaves one in both). */
static int requeue_chunk(wp_redis *q, size_t want, char *from, size_t *moved, int *empty)
{
    char count[24];
    snprintf(count, sizeof count, "%zu", want);
    const char *rargv[] = {"XRANGE", q->dead, from, "+", "COUNT", count};
    redisReply *range;
    int rc = wp__redis_cmd(q->push_c, 6, rargv, NULL, &range);
    if (rc) return rc;
    if (range->type != REDIS_REPLY_ARRAY) {
        rc = range->type == REDIS_REPLY_ERROR ? wp__redis_reply_errno(range) : EPROTO;
        freeReplyObject(range);
        return rc;
    }
    size_t n = range->elements, sent = 0, ndel = 0;
    *empty = n == 0;
    size_t *idx = malloc((n ? n : 1) * sizeof *idx); /* range entries sent */
    redisReply **r = calloc(n ? n : 1, sizeof *r);   /* their XADD replies */
    if (!idx || !r) rc = ENOMEM;
    for (size_t i = 0; i < n && !rc; i++) {
        const redisReply *e = range->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 2) continue;
        snprintf(from, WP_REDIS_ID_MAX + 1, "(%s", e->element[0]->str);
        const redisReply *d = field(e->element[1], "data");
        if (!d || d->type != REDIS_REPLY_STRING) continue; /* not ours: left alone */
        const char *argv[8];
        size_t argvlen[8];
        int argc = wp__redis_xadd_argv(q, q->stream, "data", d->str, d->len, argv, argvlen);
        if (redisAppendCommandArgv(q->push_c, argc, argv, argvlen) != REDIS_OK)
            rc = ENOMEM;
        else
            idx[sent++] = i;
    }
    int rrc = replies(q->push_c, sent, r);
    if (!rc) rc = rrc;
    for (size_t k = 0; k < sent; k++) {
        if (r[k] && r[k]->type == REDIS_REPLY_STRING && !rrc) {
            const char *argv[] = {"XDEL", q->dead, range->element[idx[k]]->element[0]->str};
            if (redisAppendCommandArgv(q->push_c, 3, argv, NULL) == REDIS_OK) ndel++;
        } else if (r[k] && r[k]->type == REDIS_REPLY_ERROR && !rc) {
            rc = wp__redis_reply_errno(r[k]);
        }
        if (r[k]) freeReplyObject(r[k]);
    }
    if (ndel) {
        int drc = replies(q->push_c, ndel, NULL);
        if (!rc) rc = drc;
        if (!drc) *moved += ndel;
    }
    free(r);
    free(idx);
    freeReplyObject(range);
    return rc == EAGAIN ? EPROTO : rc;
}

int wp_redis_requeue_dead(wp_redis *q, size_t max, size_t *moved)
{
    size_t dummy;
    if (!moved) moved = &dummy;
    *moved = 0;
    if (!q) return EINVAL;
    if (atomic_load_explicit(&q->stopped, memory_order_relaxed)) return EPIPE;
    char from[WP_REDIS_ID_MAX + 2] = "-";
    int rc = 0, fresh, empty = 0;
    struct wp__sigpipe g;
    wp__sigpipe_block(&g);
    pthread_mutex_lock(&q->push_lock);
    while (rc == 0 && *moved < max && !empty) {
        rc = push_conn(q, &fresh);
        if (rc == 0) {
            size_t want = max - *moved > REQUEUE_CHUNK ? REQUEUE_CHUNK : max - *moved;
            rc = requeue_chunk(q, want, from, moved, &empty);
        }
    }
    pthread_mutex_unlock(&q->push_lock);
    wp__sigpipe_unblock(&g);
    return rc == EAGAIN ? EPROTO : rc;
}

void wp_redis_stop(wp_redis *q)
{
    /* relaxed: a flag polled by serve and the pushes, which publish nothing
       through it; a plain store on a lock-free atomic_int, safe in a
       signal handler */
    if (q && atomic_load_explicit(&q->stopped, memory_order_relaxed) == 0)
        atomic_store_explicit(&q->stopped, 1, memory_order_relaxed);
}

void wp_redis_get_stats(wp_redis *q, wp_redis_stats *out)
{
    if (!q || !out) return;
    out->pushed = atomic_load_explicit(&q->st.pushed, memory_order_relaxed);
    out->fetched = atomic_load_explicit(&q->st.fetched, memory_order_relaxed);
    out->acked = atomic_load_explicit(&q->st.acked, memory_order_relaxed);
    out->failed = atomic_load_explicit(&q->st.failed, memory_order_relaxed);
    out->reclaimed = atomic_load_explicit(&q->st.reclaimed, memory_order_relaxed);
    out->dead = atomic_load_explicit(&q->st.dead, memory_order_relaxed);
    out->reconnects = atomic_load_explicit(&q->st.reconnects, memory_order_relaxed);
}

const char *wp_redis_address(const wp_redis *q)
{
    return q ? q->url.addr : "";
}

void wp_redis_close(wp_redis *q)
{
    if (!q) return;
    atomic_store_explicit(&q->stopped, 2, memory_order_relaxed); /* polled; see stop */
    pthread_mutex_lock(&q->lock);
    while (q->serving) pthread_cond_wait(&q->cond, &q->lock);
    pthread_mutex_unlock(&q->lock);
    pthread_mutex_lock(&q->push_lock); /* a push in progress finishes first */
    pthread_mutex_unlock(&q->push_lock);
    free_handle(q);
}
