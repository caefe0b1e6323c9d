/*
 * serve.c: wp_redis_serve, the consumer side of a handle.
 *
 * Three kinds of threads touch a serve:
 *   - the serve thread (the caller) fetches new entries (XREADGROUP),
 *     reclaims (XCLAIM of its own failed entries once they are due again,
 *     XAUTOCLAIM of entries other consumers left idle), hands entries to the
 *     pool, and at the end drains. It alone uses fc.
 *   - the pool's workers run the handler (run_entry) without any lock held,
 *     then file the entry: on the ok list, on the dead list (it failed its
 *     last delivery) or parked (it failed; delivered again after
 *     visibility_ns).
 *   - the acker thread takes the ok and dead lists whole, acknowledges them
 *     on ac (one XACK per batch; dead ones XADD to <stream>:dead first, then
 *     XACK), then frees their entries. It alone uses ac.
 *
 * Invariants (all fields of struct serve below the lock are protected by
 * s->lock):
 *   - An entry stands for one stream entry this consumer holds: fetched or
 *     claimed, and not yet acknowledged. held counts them. The fetch COUNT
 *     is what is left of workers + prefetch, and an entry leaves held only
 *     once the XACK for it has been answered, so XPENDING never shows this
 *     consumer with more than workers + prefetch (but see the note on lost
 *     replies below).
 *   - Each entry is in exactly one place, named by its state: E_RUN with the
 *     pool (running counts these), E_DONE on ok/dead or in the acker's
 *     batch, E_PARKED on the parked list, E_CLAIM in the serve thread's
 *     hands during a reclaim, E_FREE on the free list (not held).
 *   - Waking: a worker signals acker_cond only when acker_waiting; the acker
 *     and the workers signal serve_cond only when serve_waiting. Nobody runs
 *     a handler or does I/O with the lock held.
 *
 * Stop: once the handle is stopped the serve thread fetches nothing more,
 * waits until running is 0 (every handler it started has returned), then
 * sets acker_exit; the acker empties its lists and exits, and is joined.
 * Parked entries stay pending on the server for a later delivery.
 *
 * Lost replies: a fetch whose connection dies after the server sent its
 * reply leaves entries pending under this consumer that it does not know
 * of; they are not lost (any consumer reclaims them after visibility_ns),
 * but until then XPENDING may show up to one fetch more than the bound.
 */
#include "queue.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RESULT_NONE INT_MIN /* dead without any handler having returned */

enum { E_FREE, E_RUN, E_DONE, E_PARKED, E_CLAIM };
enum { ACK_CHUNK = 1024, BLOCK_MAX_MS = 100, BIG_DATA = 64 * 1024 };

#define MS 1000000u

struct serve;

struct entry {
    struct entry *next; /* on ok, dead, parked, free or a local list */
    struct serve *s;
    uint64_t delivered_ns; /* when this consumer last got it (its own clock) */
    unsigned delivery;     /* 1 the first time */
    int result;            /* the handler's last result, or RESULT_NONE */
    int state;             /* E_* */
    int dead_added;        /* acker only: already XADDed to <stream>:dead */
    size_t len, cap;
    char *data; /* len bytes and a NUL */
    char id[WP_REDIS_ID_MAX];
};

struct serve {
    wp_redis *q;
    wp_pool *pool;
    wp_redis_fn fn;
    void *user;
    redisContext *fc;             /* the serve thread's */
    redisContext *ac;             /* the acker's */
    char cursor[WP_REDIS_ID_MAX]; /* XAUTOCLAIM's; serve thread only */
    char vis_ms[24];              /* visibility_ns in ms, for XCLAIM */
    pthread_t acker;

    pthread_mutex_t lock;
    pthread_cond_t acker_cond, serve_cond; /* CLOCK_MONOTONIC */
    struct entry *ok, *dead, *parked, *free_list;
    struct entry **ents; /* every entry made (to find one by id) */
    size_t nents, ents_cap;
    size_t held, running;
    int acker_waiting, serve_waiting, draining, acker_exit;
    int err; /* first error the acker could not mend */
    uint64_t drain_deadline;
};

static int stopped(const struct serve *s)
{
    /* relaxed: a flag that only grows; see queue.h */
    return atomic_load_explicit(&s->q->stopped, memory_order_relaxed) != 0;
}

static void nap(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Waits on cv (its lock held) until signalled or ns passed. */
static void timed_wait(pthread_cond_t *cv, pthread_mutex_t *m, uint64_t ns)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t t = (uint64_t)ts.tv_nsec + ns;
    ts.tv_sec += (time_t)(t / 1000000000u);
    ts.tv_nsec = (long)(t % 1000000000u);
    pthread_cond_timedwait(cv, m, &ts);
}

/* ------------------------------------------------------------- entries -- */

/* A free entry, counted in held. NULL: out of memory. s->lock held. */
static struct entry *entry_get(struct serve *s)
{
    struct entry *e = s->free_list;
    if (e) {
        s->free_list = e->next;
    } else {
        if (s->nents == s->ents_cap) {
            size_t cap = s->ents_cap ? 2 * s->ents_cap : 64;
            struct entry **n = realloc(s->ents, cap * sizeof *n);
            if (!n) return NULL;
            s->ents = n;
            s->ents_cap = cap;
        }
        if (!(e = calloc(1, sizeof *e))) return NULL;
        e->s = s;
        s->ents[s->nents++] = e;
    }
    e->next = NULL;
    e->dead_added = 0;
    e->result = RESULT_NONE;
    s->held++;
    return e;
}

/* Gives e up (no longer held). s->lock held. */
static void entry_put(struct serve *s, struct entry *e)
{
    if (e->cap > BIG_DATA) { /* a big entry's buffer does not stay around */
        free(e->data);
        e->data = NULL;
        e->cap = 0;
    }
    e->state = E_FREE;
    e->next = s->free_list;
    s->free_list = e;
    s->held--;
    if (s->serve_waiting) pthread_cond_signal(&s->serve_cond);
}

/* Copies an entry reply's id and first field value into e (not shared yet,
   or in E_CLAIM: no lock needed). ENOMEM. */
static int entry_fill(struct entry *e, const redisReply *id, const redisReply *fields)
{
    const redisReply *v = fields && fields->type == REDIS_REPLY_ARRAY && fields->elements >= 2
                              ? fields->element[1]
                              : NULL;
    size_t len = v && v->type == REDIS_REPLY_STRING ? v->len : 0;
    if (len + 1 > e->cap) {
        char *d = realloc(e->data, len + 1);
        if (!d) return ENOMEM;
        e->data = d;
        e->cap = len + 1;
    }
    if (len) memcpy(e->data, v->str, len);
    e->data[len] = '\0';
    e->len = len;
    snprintf(e->id, sizeof e->id, "%s", id->str);
    return 0;
}

/* The held entry with this id, or NULL. s->lock held. */
static struct entry *entry_find(struct serve *s, const char *id)
{
    for (size_t i = 0; i < s->nents; i++)
        if (s->ents[i]->state != E_FREE && strcmp(s->ents[i]->id, id) == 0) return s->ents[i];
    return NULL;
}

/* ------------------------------------------------------------ handlers -- */

static void run_entry(void *arg)
{
    struct entry *e = arg;
    struct serve *s = e->s;
    int r = s->fn(e->data, e->len, e->id, e->delivery, s->user);
    pthread_mutex_lock(&s->lock);
    e->result = r;
    if (r != 0) WP__COUNT(s->q, failed, 1);
    if (r != 0 && e->delivery < s->q->max_deliveries) {
        e->state = E_PARKED;
        e->next = s->parked;
        s->parked = e;
    } else {
        e->state = E_DONE;
        struct entry **list = r == 0 ? &s->ok : &s->dead;
        e->next = *list;
        *list = e;
        if (s->acker_waiting) pthread_cond_signal(&s->acker_cond);
    }
    if (--s->running == 0 && s->serve_waiting) pthread_cond_signal(&s->serve_cond);
    pthread_mutex_unlock(&s->lock);
}

/* Hands e to the pool. On failure (EPIPE: the pool was shut down) e is
   given up here; it stays pending on the server for another consumer. */
static int start(struct serve *s, struct entry *e)
{
    pthread_mutex_lock(&s->lock);
    e->state = E_RUN;
    s->running++;
    pthread_mutex_unlock(&s->lock);
    int rc = wp_submit(s->pool, run_entry, e);
    if (rc == EAGAIN) rc = wp_submit_timeout(s->pool, run_entry, e, WP_FOREVER);
    if (rc) {
        pthread_mutex_lock(&s->lock);
        s->running--;
        entry_put(s, e);
        pthread_mutex_unlock(&s->lock);
    }
    return rc;
}

/* Files e, just claimed, as dead without running it (it was handed out
   max_deliveries times and no handler returned). */
static void bury(struct serve *s, struct entry *e)
{
    pthread_mutex_lock(&s->lock);
    e->state = E_DONE;
    e->result = RESULT_NONE;
    e->delivery--; /* the claim just made was no delivery to a handler */
    e->next = s->dead;
    s->dead = e;
    if (s->acker_waiting) pthread_cond_signal(&s->acker_cond);
    pthread_mutex_unlock(&s->lock);
}

/* ---------------------------------------------------------- connection -- */

/* acker: gives up reconnecting once a stop's drain ran past its deadline;
   serve thread: once stopped. */
static int give_up(struct serve *s, int acker)
{
    if (!acker) return stopped(s);
    pthread_mutex_lock(&s->lock);
    int g = s->draining && wp__redis_now() > s->drain_deadline;
    pthread_mutex_unlock(&s->lock);
    return g;
}

/* (Re)makes *c, waiting 10 ms, 20 ms, ... up to 1 s between tries. 0, an
   error that retrying cannot mend (EACCES, EPROTO, ENOMEM), or the last
   connection error once give_up says so. Replacing a connection counts in
   reconnects. */
static int reconnect(struct serve *s, redisContext **c, int acker)
{
    int had = *c != NULL;
    uint64_t delay = 10 * MS;
    for (;;) {
        if (*c) {
            redisFree(*c);
            *c = NULL;
        }
        int rc = wp__redis_connect(&s->q->url, s->q->timeout_ns, c);
        if (rc == 0) {
            if (had) WP__COUNT(s->q, reconnects, 1);
            return 0;
        }
        if (!wp__redis_conn_lost(rc) || give_up(s, acker)) return rc;
        for (uint64_t slept = 0; slept < delay && !give_up(s, acker); slept += 50 * MS)
            nap(50 * MS < delay ? 50 * MS : delay);
        delay = delay * 2 > 1000 * MS ? 1000 * MS : delay * 2;
    }
}

/* After a command failed with rc: mends what can be mended (a pause for a
   loading server, a new connection for a lost one) and returns 0, or
   returns the error to stop with. */
static int mend(struct serve *s, redisContext **c, int acker, int rc)
{
    if (rc == EAGAIN) {
        nap(50 * MS);
        return give_up(s, acker) ? EAGAIN : 0;
    }
    if (!wp__redis_conn_lost(rc)) return rc;
    return reconnect(s, c, acker);
}

/* The next pipelined reply on c, or NULL once c has failed (its error is
   kept in *rc if that is still 0). Error replies are returned like others,
   so the pipeline stays in step. */
static redisReply *next_reply(redisContext *c, int *rc)
{
    void *rv = NULL;
    if (c->err || redisGetReply(c, &rv) != REDIS_OK) {
        if (!*rc) *rc = wp__redis_ctx_errno(c);
        return NULL;
    }
    return rv;
}

/* --------------------------------------------------------------- acker -- */

/* Acknowledges ok (XACK, in chunks) and moves dead to <stream>:dead (XADD,
   then XACK once added); retries through lost connections. 0, or the error
   it could not mend. */
static int ack(struct serve *s, struct entry *ok, struct entry *dead)
{
    wp_redis *q = s->q;
    const char **argv = NULL;
    size_t argv_cap = 0;
    int rc;
    for (;;) {
        rc = s->ac && !s->ac->err ? 0 : reconnect(s, &s->ac, 1);
        if (rc) break;
        size_t sent = 0, ndead = 0;
        char deliveries[24], result[24];
        for (struct entry *e = dead; e; e = e->next, ndead++) {
            if (e->dead_added) continue;
            snprintf(deliveries, sizeof deliveries, "%u", e->delivery);
            if (e->result == RESULT_NONE)
                snprintf(result, sizeof result, "none");
            else
                snprintf(result, sizeof result, "%d", e->result);
            const char *a[] = {"XADD",     q->dead,  "*",    "id",   e->id,  "deliveries",
                               deliveries, "result", result, "data", e->data};
            size_t al[11];
            for (int i = 0; i < 11; i++) al[i] = strlen(a[i]);
            al[10] = e->len;
            redisAppendCommandArgv(s->ac, 11, a, al);
            sent++;
        }
        /* XACK <stream> <group> id...: the ok entries, then the dead ones
           already added */
        size_t need = 3 + ACK_CHUNK;
        if (argv_cap < need) {
            const char **n = realloc(argv, need * sizeof *n);
            if (!n) {
                rc = ENOMEM;
                break;
            }
            argv = n;
            argv_cap = need;
        }
        argv[0] = "XACK", argv[1] = q->stream, argv[2] = q->group;
        int argc = 3;
        for (struct entry *e = ok; e; e = e->next) {
            argv[argc++] = e->id;
            if (argc == 3 + ACK_CHUNK || !e->next) {
                redisAppendCommandArgv(s->ac, argc, argv, NULL);
                sent++;
                argc = 3;
            }
        }
        rc = 0;
        struct entry *e = dead;
        size_t nacked_dead = 0;
        for (size_t i = 0; i < sent; i++) {
            redisReply *r = next_reply(s->ac, &rc);
            if (!r) break;
            while (e && e->dead_added) e = e->next;
            if (e) { /* the reply of a dead entry's XADD */
                if (r->type == REDIS_REPLY_ERROR)
                    rc = rc ? rc : wp__redis_reply_errno(r);
                else
                    e->dead_added = 1;
                e = e->next;
            } else if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOGROUP", 7) != 0) {
                rc = rc ? rc : wp__redis_reply_errno(r); /* NOGROUP: nothing pending to ack */
            }
            freeReplyObject(r);
        }
        if (rc == 0 && ndead) {
            argc = 3;
            for (e = dead; e; e = e->next) {
                argv[argc++] = e->id;
                if (argc == 3 + ACK_CHUNK || !e->next) {
                    redisAppendCommandArgv(s->ac, argc, argv, NULL);
                    nacked_dead++;
                    argc = 3;
                }
            }
            for (size_t i = 0; i < nacked_dead; i++) {
                redisReply *r = next_reply(s->ac, &rc);
                if (!r) break;
                freeReplyObject(r);
            }
        }
        if (rc == 0) break;
        if ((rc = mend(s, &s->ac, 1, rc)) != 0) break;
    }
    free(argv);
    return rc;
}

static void *acker_main(void *arg)
{
    struct serve *s = arg;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        if (!s->ok && !s->dead) {
            if (s->acker_exit) break;
            s->acker_waiting = 1;
            pthread_cond_wait(&s->acker_cond, &s->lock);
            s->acker_waiting = 0;
            continue;
        }
        struct entry *ok = s->ok, *dead = s->dead;
        s->ok = s->dead = NULL;
        pthread_mutex_unlock(&s->lock);
        int rc = ack(s, ok, dead);
        uint64_t nok = 0, ndead = 0;
        pthread_mutex_lock(&s->lock);
        if (rc && !s->err) s->err = rc; /* the entries stay pending on the server */
        for (struct entry *e = ok, *next; e; e = next, nok++) {
            next = e->next;
            entry_put(s, e);
        }
        for (struct entry *e = dead, *next; e; e = next, ndead++) {
            next = e->next;
            entry_put(s, e);
        }
        if (rc == 0) {
            WP__COUNT(s->q, acked, nok);
            WP__COUNT(s->q, dead, ndead);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* ------------------------------------------------------------ fetching -- */

/* The entries array of an XREADGROUP reply ([[key, entries]]), or NULL. */
static const redisReply *read_entries(const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1) return NULL;
    const redisReply *k = r->element[0];
    if (k->type != REDIS_REPLY_ARRAY || k->elements < 2) return NULL;
    return k->element[1]->type == REDIS_REPLY_ARRAY ? k->element[1] : NULL;
}

/* One XREADGROUP of up to budget new entries, blocking at most block_ms;
   each entry is handed to the pool. */
static int fetch(struct serve *s, size_t budget, unsigned block_ms)
{
    wp_redis *q = s->q;
    char count[24], block[24];
    snprintf(count, sizeof count, "%zu", budget);
    snprintf(block, sizeof block, "%u", block_ms);
    const char *argv[] = {"XREADGROUP", "GROUP", q->group,  q->consumer, "COUNT", count,
                          "BLOCK",      block,   "STREAMS", q->stream,   ">"};
    redisReply *r;
    int rc = wp__redis_cmd(s->fc, 11, argv, NULL, &r);
    if (rc) return rc;
    if (r->type == REDIS_REPLY_ERROR) {
        rc = strncmp(r->str, "NOGROUP", 7) == 0 ? wp__redis_make_group(q, s->fc)
                                                : wp__redis_reply_errno(r);
        freeReplyObject(r);
        return rc;
    }
    const redisReply *list = read_entries(r);
    uint64_t now = wp__redis_now();
    for (size_t i = 0; list && i < list->elements && rc == 0; i++) {
        const redisReply *er = list->element[i];
        if (er->type != REDIS_REPLY_ARRAY || er->elements < 2) continue;
        pthread_mutex_lock(&s->lock);
        struct entry *e = entry_get(s);
        pthread_mutex_unlock(&s->lock);
        if (!e || entry_fill(e, er->element[0], er->element[1])) {
            rc = ENOMEM; /* the entry stays pending: reclaimed after visibility_ns */
            if (e) {
                pthread_mutex_lock(&s->lock);
                entry_put(s, e);
                pthread_mutex_unlock(&s->lock);
            }
            break;
        }
        e->delivery = 1;
        e->delivered_ns = now;
        WP__COUNT(q, fetched, 1);
        rc = start(s, e);
    }
    freeReplyObject(r);
    return rc;
}

/* XCLAIM of this consumer's parked entries that are due (visibility_ns
   since their last delivery): each one still ours comes back with its
   delivery count one higher and runs again; one that another consumer took
   meanwhile (or that was trimmed away) is given up. */
static int retry_parked(struct serve *s)
{
    wp_redis *q = s->q;
    uint64_t now = wp__redis_now();
    struct entry *due = NULL;
    size_t n = 0;
    pthread_mutex_lock(&s->lock);
    for (struct entry **p = &s->parked; *p;) {
        struct entry *e = *p;
        if (now - e->delivered_ns >= q->visibility_ns) {
            *p = e->next;
            e->state = E_CLAIM;
            e->next = due;
            due = e;
            n++;
        } else {
            p = &e->next;
        }
    }
    pthread_mutex_unlock(&s->lock);
    if (!n) return 0;
    const char **argv = malloc((n + 5) * sizeof *argv);
    redisReply *r = NULL;
    int rc = argv ? 0 : ENOMEM;
    if (argv) {
        argv[0] = "XCLAIM", argv[1] = q->stream, argv[2] = q->group, argv[3] = q->consumer;
        argv[4] = s->vis_ms;
        size_t i = 5;
        for (struct entry *e = due; e; e = e->next) argv[i++] = e->id;
        rc = wp__redis_cmd(s->fc, (int)(n + 5), argv, NULL, &r);
        free(argv);
    }
    if (rc == 0 && r->type == REDIS_REPLY_ERROR) rc = wp__redis_reply_errno(r);
    if (rc) { /* back to parked, to be tried at the next tick */
        pthread_mutex_lock(&s->lock);
        while (due) {
            struct entry *e = due;
            due = e->next;
            e->state = E_PARKED;
            e->next = s->parked;
            s->parked = e;
        }
        pthread_mutex_unlock(&s->lock);
        if (r) freeReplyObject(r);
        return rc;
    }
    while (due) {
        struct entry *e = due;
        due = e->next;
        int ours = 0;
        for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
            const redisReply *er = r->element[i];
            if (er->type == REDIS_REPLY_ARRAY && er->elements >= 2 &&
                er->element[1]->type == REDIS_REPLY_ARRAY && !strcmp(er->element[0]->str, e->id))
                ours = 1;
        }
        if (ours) {
            e->delivery++;
            e->delivered_ns = wp__redis_now();
            if ((rc = start(s, e)) != 0) break;
        } else {
            pthread_mutex_lock(&s->lock);
            entry_put(s, e);
            pthread_mutex_unlock(&s->lock);
        }
    }
    while (due) { /* after a failed start: the rest stay pending */
        struct entry *e = due;
        due = e->next;
        pthread_mutex_lock(&s->lock);
        entry_put(s, e);
        pthread_mutex_unlock(&s->lock);
    }
    freeReplyObject(r);
    return rc;
}

/* XAUTOCLAIM of up to budget entries idle visibility_ns (another consumer
   died or stalled), then their delivery counts (XPENDING per entry, one
   round trip), then each runs, or is buried if it has been handed out
   max_deliveries times already. The cursor walks the pending list across
   calls. */
static int take_over(struct serve *s, size_t budget)
{
    wp_redis *q = s->q;
    char count[24];
    snprintf(count, sizeof count, "%zu", budget);
    const char *argv[] = {"XAUTOCLAIM", q->stream, q->group, q->consumer,
                          s->vis_ms,    s->cursor, "COUNT",  count};
    redisReply *r;
    int rc = wp__redis_cmd(s->fc, 8, argv, NULL, &r);
    if (rc) return rc;
    if (r->type == REDIS_REPLY_ERROR || r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[1]->type != REDIS_REPLY_ARRAY) {
        rc = r->type == REDIS_REPLY_ERROR ? wp__redis_reply_errno(r) : EPROTO;
        if (rc == EPROTO && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOGROUP", 7) == 0)
            rc = wp__redis_make_group(q, s->fc);
        freeReplyObject(r);
        return rc;
    }
    if (r->element[0]->type == REDIS_REPLY_STRING)
        snprintf(s->cursor, sizeof s->cursor, "%s", r->element[0]->str);
    const redisReply *list = r->element[1];
    struct entry *claimed = NULL;
    size_t n = 0, gone = 0;
    for (size_t i = 0; i < list->elements && rc == 0; i++) {
        const redisReply *er = list->element[i];
        if (er->type != REDIS_REPLY_ARRAY || er->elements < 2) continue;
        if (er->element[1]->type != REDIS_REPLY_ARRAY) { /* deleted (Redis 6.2): ack it */
            const char *a[] = {"XACK", q->stream, q->group, er->element[0]->str};
            redisAppendCommandArgv(s->fc, 4, a, NULL);
            gone++;
            continue;
        }
        pthread_mutex_lock(&s->lock);
        struct entry *e = entry_find(s, er->element[0]->str);
        if (e && e->state == E_PARKED) { /* ours, failed: runs again like a due one */
            for (struct entry **p = &s->parked; *p; p = &(*p)->next)
                if (*p == e) {
                    *p = e->next;
                    break;
                }
        } else if (e) {
            e = NULL; /* ours and running: it just got its idle time reset */
        } else if ((e = entry_get(s)) != NULL) {
            WP__COUNT(q, reclaimed, 1);
        } else {
            rc = ENOMEM;
        }
        if (e) {
            e->state = E_CLAIM;
            e->next = claimed;
            claimed = e;
            n++;
        }
        pthread_mutex_unlock(&s->lock);
        if (e && entry_fill(e, er->element[0], er->element[1])) rc = ENOMEM;
    }
    freeReplyObject(r);
    for (struct entry *e = claimed; e; e = e->next) {
        const char *a[] = {"XPENDING", q->stream, q->group, e->id, e->id, "1"};
        redisAppendCommandArgv(s->fc, 6, a, NULL);
    }
    for (size_t i = 0; i < gone; i++) {
        redisReply *a = next_reply(s->fc, &rc);
        if (a) freeReplyObject(a);
    }
    uint64_t now = wp__redis_now();
    while (claimed) {
        struct entry *e = claimed;
        claimed = e->next;
        long long count_now = 0;
        redisReply *p = next_reply(s->fc, &rc);
        if (p && p->type == REDIS_REPLY_ARRAY && p->elements == 1 &&
            p->element[0]->type == REDIS_REPLY_ARRAY && p->element[0]->elements >= 4)
            count_now = p->element[0]->element[3]->integer;
        if (p) freeReplyObject(p);
        if (rc || count_now <= 0) { /* acked meanwhile, or we could not tell: not ours */
            pthread_mutex_lock(&s->lock);
            entry_put(s, e);
            pthread_mutex_unlock(&s->lock);
            continue;
        }
        e->delivery = count_now > UINT_MAX ? UINT_MAX : (unsigned)count_now;
        e->delivered_ns = now;
        if (e->delivery > q->max_deliveries) {
            bury(s, e);
        } else if ((rc = start(s, e)) != 0) {
            while (claimed) { /* the pool is gone: the rest stay pending */
                e = claimed;
                claimed = e->next;
                pthread_mutex_lock(&s->lock);
                entry_put(s, e);
                pthread_mutex_unlock(&s->lock);
            }
        }
    }
    return rc;
}

/* How often the serve thread reclaims and renews: a quarter of
   visibility_ns (10 ms to 5 s), so that a lease is renewed when it is a
   quarter to half of visibility_ns old, well before it runs out. */
static uint64_t tick(const wp_redis *q)
{
    uint64_t t = q->visibility_ns / 4;
    return t < 10 * MS ? 10 * MS : t > 5000 * MS ? 5000 * MS : t;
}

/* Keeps the lease of entries this consumer is still working on (queued in
   the pool or running for a tick already): XCLAIM ... JUSTID
   resets their idle time without counting a delivery, so a live consumer's
   slow or prefetched entries are not taken over; a dead consumer renews
   nothing. min-idle is one tick: each of ours has been idle at
   least that long on the server (its idle time runs ahead of our clock),
   while one that another consumer took over recently has not, and is left
   with it. */
static int renew(struct serve *s)
{
    wp_redis *q = s->q;
    uint64_t now = wp__redis_now(), age = tick(q);
    size_t n = 0;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->nents; i++)
        if (s->ents[i]->state == E_RUN && now - s->ents[i]->delivered_ns >= age) n++;
    char(*ids)[WP_REDIS_ID_MAX] = n ? malloc(n * sizeof *ids) : NULL;
    const char **argv = n ? malloc((n + 7) * sizeof *argv) : NULL;
    size_t k = 0;
    for (size_t i = 0; ids && argv && i < s->nents && k < n; i++) {
        struct entry *e = s->ents[i];
        if (e->state == E_RUN && now - e->delivered_ns >= age)
            memcpy(ids[k++], e->id, WP_REDIS_ID_MAX);
    }
    pthread_mutex_unlock(&s->lock);
    int rc = n && (!ids || !argv) ? ENOMEM : 0;
    if (k) {
        char idle[24];
        snprintf(idle, sizeof idle, "%llu", (unsigned long long)(age / MS));
        argv[0] = "XCLAIM", argv[1] = q->stream, argv[2] = q->group, argv[3] = q->consumer;
        argv[4] = idle;
        for (size_t i = 0; i < k; i++) argv[5 + i] = ids[i];
        argv[5 + k] = "JUSTID";
        redisReply *r;
        rc = wp__redis_cmd(s->fc, (int)(k + 6), argv, NULL, &r);
        if (rc == 0) {
            if (r->type == REDIS_REPLY_ERROR) rc = wp__redis_reply_errno(r);
            uint64_t t = wp__redis_now();
            pthread_mutex_lock(&s->lock);
            for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
                struct entry *e = r->element[i]->type == REDIS_REPLY_STRING
                                      ? entry_find(s, r->element[i]->str)
                                      : NULL;
                if (e && e->state == E_RUN) e->delivered_ns = t;
            }
            pthread_mutex_unlock(&s->lock);
            freeReplyObject(r);
        }
    }
    free(ids);
    free(argv);
    return rc;
}

static size_t budget_left(struct serve *s)
{
    size_t cap = (size_t)wp_pool_workers(s->pool) + s->q->prefetch;
    return s->held < cap ? cap - s->held : 0;
}

static int reclaim(struct serve *s)
{
    int rc = retry_parked(s);
    if (rc == 0) rc = renew(s);
    if (rc) return rc;
    pthread_mutex_lock(&s->lock);
    size_t budget = budget_left(s);
    pthread_mutex_unlock(&s->lock);
    return budget ? take_over(s, budget) : 0;
}

/* The fetch loop, until stopped or an error it cannot mend. */
static int loop(struct serve *s)
{
    wp_redis *q = s->q;
    uint64_t period = tick(q);
    uint64_t block_cap = q->timeout_ns / 2 / MS;
    if (block_cap > BLOCK_MAX_MS) block_cap = BLOCK_MAX_MS;
    if (block_cap < 1) block_cap = 1;
    uint64_t next_reclaim = 0;
    int rc = 0;
    while (!stopped(s)) {
        pthread_mutex_lock(&s->lock);
        rc = s->err;
        pthread_mutex_unlock(&s->lock);
        if (rc) break;
        uint64_t now = wp__redis_now();
        if (now >= next_reclaim) {
            next_reclaim = now + period;
            rc = reclaim(s);
        } else {
            pthread_mutex_lock(&s->lock);
            size_t budget = budget_left(s);
            if (budget == 0) { /* all held: wait for acks */
                s->serve_waiting = 1;
                uint64_t w = next_reclaim - now;
                timed_wait(&s->serve_cond, &s->lock, w < BLOCK_MAX_MS * MS ? w : BLOCK_MAX_MS * MS);
                s->serve_waiting = 0;
                pthread_mutex_unlock(&s->lock);
                continue;
            }
            pthread_mutex_unlock(&s->lock);
            uint64_t block = (next_reclaim - now) / MS;
            if (block > block_cap) block = block_cap;
            rc = fetch(s, budget, block < 1 ? 1 : (unsigned)block);
        }
        if (rc && (rc = mend(s, &s->fc, 0, rc)) != 0) break;
    }
    /* a connection error seen only because of the stop is no error */
    return stopped(s) && wp__redis_conn_lost(rc) ? 0 : rc;
}

int wp_redis_serve(wp_redis *q, wp_pool *pool, wp_redis_fn fn, void *user)
{
    if (!q || !pool || !fn) return EINVAL;
    pthread_mutex_lock(&q->lock);
    int rc = atomic_load_explicit(&q->stopped, memory_order_relaxed) ? EPIPE
             : q->serving                                            ? EBUSY
                                                                     : 0;
    if (rc == 0) q->serving = 1;
    pthread_mutex_unlock(&q->lock);
    if (rc) return rc;

    struct wp__sigpipe g; /* for the serve thread's writes; the acker blocks all signals */
    wp__sigpipe_block(&g);
    struct serve *s = calloc(1, sizeof *s);
    if (!s) {
        rc = ENOMEM;
        goto out;
    }
    s->q = q, s->pool = pool, s->fn = fn, s->user = user;
    snprintf(s->cursor, sizeof s->cursor, "0-0");
    snprintf(s->vis_ms, sizeof s->vis_ms, "%llu",
             (unsigned long long)(q->visibility_ns / MS ? q->visibility_ns / MS : 1));
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->acker_cond, &ca);
    pthread_cond_init(&s->serve_cond, &ca);
    pthread_condattr_destroy(&ca);

    rc = reconnect(s, &s->fc, 0);
    if (rc == 0) rc = reconnect(s, &s->ac, 0);
    if (rc == 0) { /* the acker takes no signals: they go to the application's threads */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        rc = pthread_create(&s->acker, NULL, acker_main, s);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc == 0) {
            rc = loop(s);
            pthread_mutex_lock(&s->lock); /* drain */
            s->draining = 1;
            s->drain_deadline = wp__redis_now() + q->timeout_ns;
            while (s->running) {
                s->serve_waiting = 1;
                pthread_cond_wait(&s->serve_cond, &s->lock);
                s->serve_waiting = 0;
            }
            s->acker_exit = 1;
            if (s->acker_waiting) pthread_cond_signal(&s->acker_cond);
            pthread_mutex_unlock(&s->lock);
            pthread_join(s->acker, NULL);
            if (!rc) rc = s->err;
        }
    } else if (stopped(s) && wp__redis_conn_lost(rc)) {
        rc = 0; /* stopped before the server could be reached */
    }
    if (s->fc) redisFree(s->fc);
    if (s->ac) redisFree(s->ac);
    for (size_t i = 0; i < s->nents; i++) {
        free(s->ents[i]->data);
        free(s->ents[i]);
    }
    free(s->ents);
    pthread_cond_destroy(&s->acker_cond);
    pthread_cond_destroy(&s->serve_cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
    if (atomic_load_explicit(&q->stopped, memory_order_relaxed) == 2) rc = EPIPE; /* closed */
out:
    wp__sigpipe_unblock(&g);
    pthread_mutex_lock(&q->lock);
    q->serving = 0;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
    return rc;
}
