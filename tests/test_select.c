/*
 * wp_select: Go's select. Rules first (bad arguments, nil channels, poll,
 * closed channels, blocking until a partner or close), then fairness among
 * ready cases, then selects racing with each other, with timeouts and with
 * close on the same channels: no value is ever lost or delivered twice.
 */
#include "chan_helpers.h"
#include "test.h"
#include "wpool.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

/* ------------------------------------------------------------ arguments -- */

TEST(bad_arguments_return_minus_one_and_einval)
{
    wp_chan *c;
    ASSERT_OK(wp_chan_create(&c, sizeof(int), 1));
    int v = 1;
    ASSERT_EQ(wp_select(NULL, 1, 0), -1);
    ASSERT_EQ(wp_select(NULL, 0, 0), -1); /* no case: nothing can complete */

    wp_select_case bad_op[2] = {{c, WP_RECV, &v, 0}, {c, 7, &v, 0}};
    ASSERT_EQ(wp_select(bad_op, 2, 0), -1);
    ASSERT_ERR(bad_op[1].err, EINVAL);

    wp_select_case null_send[1] = {{c, WP_SEND, NULL, 0}};
    ASSERT_EQ(wp_select(null_send, 1, WP_FOREVER), -1);
    ASSERT_ERR(null_send[0].err, EINVAL);
    ASSERT_UEQ(wp_chan_len(c), 0); /* nothing happened */

    wp_select_case many[WP_SELECT_MAX + 1];
    for (size_t i = 0; i < WP_SELECT_MAX + 1; i++) many[i] = (wp_select_case){c, WP_SEND, &v, 0};
    ASSERT_EQ(wp_select(many, WP_SELECT_MAX + 1, 0), -1);
    ASSERT_ERR(many[0].err, EINVAL);
    ASSERT_UEQ(wp_chan_len(c), 0);
    /* exactly WP_SELECT_MAX is fine */
    ASSERT_GE(wp_select(many, WP_SELECT_MAX, 0), 0);
    ASSERT_UEQ(wp_chan_len(c), 1);
    wp_chan_destroy(c);
}

TEST(nil_channels_are_never_ready)
{
    int v = 1;
    wp_select_case cs[2] = {{NULL, WP_RECV, &v, 0}, {NULL, WP_SEND, &v, 0}};
    ASSERT_EQ(wp_select(cs, 2, 0), -1);
    ASSERT_EQ(wp_select(cs, 2, 1000000), -1); /* waits out the timeout */
    ASSERT_EQ(wp_select(cs, 0, 1000), -1);

    wp_chan *c;
    ASSERT_OK(wp_chan_create(&c, sizeof(int), 1));
    ASSERT_OK(wp_chan_send(c, &v));
    wp_select_case mix[3] = {{NULL, WP_RECV, &v, 0}, {c, WP_RECV, &v, -1}, {NULL, WP_SEND, &v, 0}};
    for (int i = 0; i < 20; i++) {
        ASSERT_EQ(wp_select(mix, 3, WP_FOREVER), 1);
        ASSERT_OK(mix[1].err);
        ASSERT_OK(wp_chan_send(c, &v));
    }
    wp_chan_destroy(c);
}

/* --------------------------------------------------------------- single -- */

TEST(poll_completes_ready_cases_and_reports_none_ready)
{
    wp_chan *a, *b;
    ASSERT_OK(wp_chan_create(&a, sizeof(int), 1));
    ASSERT_OK(wp_chan_create(&b, sizeof(int), 1));
    int in = 0, out = 5;
    wp_select_case cs[2] = {{a, WP_RECV, &in, -1}, {b, WP_SEND, &out, -1}};

    ASSERT_EQ(wp_select(cs, 2, 0), 1); /* a empty: only the send is ready */
    ASSERT_OK(cs[1].err);
    ASSERT_UEQ(wp_chan_len(b), 1);
    ASSERT_EQ(wp_select(cs, 2, 0), -1); /* a empty, b full: like Go's default */
    ASSERT_EQ(wp_select(cs, 2, 1000000), -1);

    int v = 9;
    ASSERT_OK(wp_chan_send(a, &v));
    ASSERT_EQ(wp_select(cs, 2, 0), 0);
    ASSERT_OK(cs[0].err);
    ASSERT_EQ(in, 9);

    ASSERT_OK(wp_chan_recv(b, &v));
    ASSERT_EQ(v, 5);
    wp_chan_destroy(a);
    wp_chan_destroy(b);
}

TEST(send_and_recv_on_the_same_channel)
{
    wp_chan *c;
    ASSERT_OK(wp_chan_create(&c, sizeof(int), 1));
    int in = 0, out = 3;
    wp_select_case cs[2] = {{c, WP_SEND, &out, -1}, {c, WP_RECV, &in, -1}};
    for (int i = 0; i < 10; i++) {
        ASSERT_EQ(wp_select(cs, 2, WP_FOREVER), 0); /* empty: only send */
        ASSERT_EQ(wp_select(cs, 2, WP_FOREVER), 1); /* full: only recv */
        ASSERT_EQ(in, 3);
    }
    wp_chan_destroy(c);

    /* Unbuffered: a select cannot meet itself. */
    ASSERT_OK(wp_chan_create(&c, sizeof(int), 0));
    cs[0].chan = cs[1].chan = c;
    ASSERT_EQ(wp_select(cs, 2, 0), -1);
    ASSERT_EQ(wp_select(cs, 2, 1000000), -1);
    ASSERT_UEQ(queued(c, WP_SEND) + queued(c, WP_RECV), 0); /* nothing left behind */
    wp_chan_destroy(c);
}

TEST(closed_channel_cases_complete_with_epipe)
{
    wp_chan *c;
    ASSERT_OK(wp_chan_create(&c, sizeof(int), 2));
    int v = 4, in = -1;
    ASSERT_OK(wp_chan_send(c, &v));
    ASSERT_OK(wp_chan_close(c));

    wp_select_case r[1] = {{c, WP_RECV, &in, -1}};
    ASSERT_EQ(wp_select(r, 1, 0), 0); /* buffered value first */
    ASSERT_OK(r[0].err);
    ASSERT_EQ(in, 4);
    in = -1;
    ASSERT_EQ(wp_select(r, 1, 0), 0); /* then EPIPE, elem untouched */
    ASSERT_ERR(r[0].err, EPIPE);
    ASSERT_EQ(in, -1);

    wp_select_case s[1] = {{c, WP_SEND, &v, -1}};
    ASSERT_EQ(wp_select(s, 1, WP_FOREVER), 0);
    ASSERT_ERR(s[0].err, EPIPE);
    wp_chan_destroy(c);
}

TEST(recv_case_with_null_elem_drops_the_value)
{
    wp_chan *c;
    ASSERT_OK(wp_chan_create(&c, sizeof(int), 2));
    int v = 1;
    ASSERT_OK(wp_chan_send(c, &v));
    v = 2;
    ASSERT_OK(wp_chan_send(c, &v));
    wp_select_case cs[1] = {{c, WP_RECV, NULL, -1}};
    ASSERT_EQ(wp_select(cs, 1, 0), 0);
    ASSERT_OK(cs[0].err);
    ASSERT_OK(wp_chan_recv(c, &v));
    ASSERT_EQ(v, 2);
    wp_chan_destroy(c);
}

/* ------------------------------------------------------------- blocking -- */

struct sel_arg {
    wp_select_case cs[3];
    size_t n;
    uint64_t timeout;
    int result;
};

static void *do_select(void *arg)
{
    struct sel_arg *s = arg;
    s->result = wp_select(s->cs, s->n, s->timeout);
    return NULL;
}

TEST(blocked_select_is_completed_by_a_partner)
{
    for (size_t cap = 0; cap <= 1; cap++) {
        wp_chan *a, *b;
        ASSERT_OK(wp_chan_create(&a, sizeof(int), cap));
        ASSERT_OK(wp_chan_create(&b, sizeof(int), cap));
        int in_a = -1, in_b = -1;
        struct sel_arg s = {{{a, WP_RECV, &in_a, -1}, {b, WP_RECV, &in_b, -1}}, 2, WP_FOREVER, -2};
        pthread_t t;
        ASSERT_OK(pthread_create(&t, NULL, do_select, &s));
        wait_queued(b, WP_RECV, 1);
        int v = 31;
        ASSERT_OK(wp_chan_send(b, &v));
        pthread_join(t, NULL);
        ASSERT_EQ(s.result, 1);
        ASSERT_OK(s.cs[1].err);
        ASSERT_EQ(in_b, 31);
        ASSERT_EQ(in_a, -1);
        /* The other case left nothing behind: a's queue is empty. */
        ASSERT_UEQ(queued(a, WP_RECV), 0);
        ASSERT_ERR(wp_chan_try_send(a, &v), cap ? 0 : EAGAIN);

        /* A blocked send case, taken by a receiver (timed: the value lands
           before the deadline, which is an hour away). */
        int out = 77;
        struct sel_arg s2 = {
            {{NULL, WP_RECV, NULL, -1}, {b, WP_SEND, &out, -1}}, 2, 3600ull * 1000000000, -2};
        if (cap) ASSERT_OK(wp_chan_send(b, &v)); /* fill b so the send must wait */
        ASSERT_OK(pthread_create(&t, NULL, do_select, &s2));
        wait_queued(b, WP_SEND, 1);
        if (cap) {
            ASSERT_OK(wp_chan_recv(b, &v));
            ASSERT_EQ(v, 31);
        }
        ASSERT_OK(wp_chan_recv(b, &v));
        ASSERT_EQ(v, 77);
        pthread_join(t, NULL);
        ASSERT_EQ(s2.result, 1);
        ASSERT_OK(s2.cs[1].err);
        wp_chan_destroy(a);
        wp_chan_destroy(b);
    }
}

struct plain_op {
    wp_chan *c;
    int op;
    long long value[4]; /* 8 bytes (int64) or 32 (the whole array) */
    int result;
};

static void *plain_op_run(void *arg)
{
    struct plain_op *p = arg;
    p->result = p->op == WP_SEND ? wp_chan_send(p->c, p->value) : wp_chan_recv(p->c, p->value);
    return NULL;
}

/* A plain send or receive waiting on an unbuffered channel is met by a
   select's case as by a plain partner, for elements that travel inside the
   waiter (8 bytes) and for larger ones, and a select that found it ready
   queues nothing. */
TEST(a_waiting_plain_op_is_met_by_a_select)
{
    for (size_t size = sizeof(long long); size <= 4 * sizeof(long long); size *= 4) {
        for (int op = WP_SEND; op <= WP_RECV; op++) {
            wp_chan *c, *other;
            ASSERT_OK(wp_chan_create(&c, size, 0));
            ASSERT_OK(wp_chan_create(&other, size, 0));
            struct plain_op p = {c, op, {0}, -1};
            if (op == WP_SEND)
                for (int i = 0; i < 4; i++) p.value[i] = 100 + i;
            pthread_t t;
            ASSERT_OK(pthread_create(&t, NULL, plain_op_run, &p));
            wait_queued(c, op, 1);
            long long mine[4] = {200, 201, 202, 203}, scratch[4] = {-1, -1, -1, -1};
            int partner = op == WP_SEND ? WP_RECV : WP_SEND;
            wp_select_case cs[2] = {{other, WP_RECV, scratch, -1}, {c, partner, mine, -1}};
            if (op == WP_SEND)
                for (int i = 0; i < 4; i++) mine[i] = -1;
            ASSERT_EQ(wp_select(cs, 2, WP_FOREVER), 1);
            ASSERT_OK(cs[1].err);
            pthread_join(t, NULL);
            ASSERT_OK(p.result);
            long long *got = op == WP_SEND ? mine : p.value;
            for (size_t i = 0; i < size / sizeof(long long); i++)
                ASSERT_EQ(got[i], (op == WP_SEND ? 100 : 200) + (long long)i);
            ASSERT_EQ(scratch[0], -1);
            ASSERT_UEQ(queued(other, WP_RECV) + queued(c, WP_SEND) + queued(c, WP_RECV), 0);
            wp_chan_destroy(c);
            wp_chan_destroy(other);
        }
    }
}

TEST(blocked_select_is_woken_by_close)
{
    wp_chan *a, *b;
    ASSERT_OK(wp_chan_create(&a, sizeof(int), 0));
    ASSERT_OK(wp_chan_create(&b, sizeof(int), 0));
    int in = -1, out = 1;
    struct sel_arg s = {{{a, WP_RECV, &in, -1}, {b, WP_SEND, &out, -1}}, 2, WP_FOREVER, -2};
    pthread_t t;
    ASSERT_OK(pthread_create(&t, NULL, do_select, &s));
    wait_queued(b, WP_SEND, 1);
    ASSERT_OK(wp_chan_close(b));
    pthread_join(t, NULL);
    ASSERT_EQ(s.result, 1);
    ASSERT_ERR(s.cs[1].err, EPIPE);
    ASSERT_UEQ(queued(a, WP_RECV), 0);

    s = (struct sel_arg){{{a, WP_RECV, &in, -1}, {b, WP_RECV, &in, -1}}, 1, WP_FOREVER, -2};
    ASSERT_OK(pthread_create(&t, NULL, do_select, &s));
    wait_queued(a, WP_RECV, 1);
    ASSERT_OK(wp_chan_close(a));
    pthread_join(t, NULL);
    ASSERT_EQ(s.result, 0);
    ASSERT_ERR(s.cs[0].err, EPIPE);
    ASSERT_EQ(in, -1);
    wp_chan_destroy(a);
    wp_chan_destroy(b);
}

struct wide {
    wp_chan *c[WP_SELECT_MAX];
    wp_select_case cs[WP_SELECT_MAX];
    int in;
    int result;
};

static void *wide_select(void *arg)
{
    struct wide *x = arg;
    x->result = wp_select(x->cs, WP_SELECT_MAX, WP_FOREVER);
    return NULL;
}

TEST(a_select_over_the_most_channels_blocks_and_cleans_up)
{
    struct wide x = {.in = -1};
    for (int i = 0; i < WP_SELECT_MAX; i++) {
        /* every other channel named twice, as a pair of cases */
        if (i % 2 == 1) {
            x.c[i] = x.c[i - 1];
        } else {
            ASSERT_OK(wp_chan_create(&x.c[i], sizeof(int), (size_t)(i % 4 == 0)));
        }
        x.cs[i] = (wp_select_case){x.c[i], WP_RECV, &x.in, -1};
    }
    for (int round = 0; round < 4; round++) {
        int target = (round * 37 + 5) % WP_SELECT_MAX;
        pthread_t t;
        ASSERT_OK(pthread_create(&t, NULL, wide_select, &x));
        wait_queued(x.c[target], WP_RECV, 2); /* both cases of that channel */
        int v = 1000 + round;
        ASSERT_OK(wp_chan_send(x.c[target], &v));
        pthread_join(t, NULL);
        ASSERT_GE(x.result, 0);
        ASSERT(x.c[x.result] == x.c[target]);
        ASSERT_OK(x.cs[x.result].err);
        ASSERT_EQ(x.in, v);
        for (int i = 0; i < WP_SELECT_MAX; i += 2) ASSERT_UEQ(queued(x.c[i], WP_RECV), 0);
    }
    for (int i = 0; i < WP_SELECT_MAX; i += 2) wp_chan_destroy(x.c[i]);
}

/* ------------------------------------------------------------- fairness -- */

TEST(ready_cases_win_a_fair_share)
{
    enum { K = 3 };
    wp_chan *c[K], *never;
    for (int i = 0; i < K; i++) ASSERT_OK(wp_chan_create(&c[i], sizeof(int), 1));
    ASSERT_OK(wp_chan_create(&never, sizeof(int), 0));
    int v = 0, in;
    for (int i = 0; i < K; i++) ASSERT_OK(wp_chan_send(c[i], &v));
    /* Ready: recv on c[0..2]. Never ready: a nil channel, an unbuffered
       channel nobody sends on. */
    wp_select_case cs[K + 2] = {
        {c[0], WP_RECV, &in, 0},  {NULL, WP_RECV, &in, 0}, {c[1], WP_RECV, &in, 0},
        {never, WP_RECV, &in, 0}, {c[2], WP_RECV, &in, 0},
    };
    const int map[K + 2] = {0, -1, 1, -1, 2};
    unsigned wins[K] = {0}, trials = 3000;
    for (unsigned t = 0; t < trials; t++) {
        int i = wp_select(cs, K + 2, 0);
        ASSERT_GE(i, 0);
        ASSERT_GE(map[i], 0);
        wins[map[i]]++;
        ASSERT_OK(wp_chan_send(c[map[i]], &v)); /* make it ready again */
    }
    /* Expected 1000 each, standard deviation ~26: 700 is 11 deviations off. */
    for (int i = 0; i < K; i++) ASSERT_GT(wins[i], trials / K * 7 / 10);
    for (int i = 0; i < K; i++) wp_chan_destroy(c[i]);
    wp_chan_destroy(never);
}

/* --------------------------------------------------------------- racing -- */

/* Senders select over {send A, send B}; receivers select over {recv A,
   recv B} (and some use plain calls, some timeouts). When the senders are
   done the main thread closes both channels; receivers drop a channel from
   their select when it reports EPIPE. Every value arrives exactly once. */
struct race {
    wp_chan *a, *b;
    unsigned per_sender;
    atomic_uint next_sender;
    atomic_uchar *got;
    atomic_uint nreceived, bad;
    uint64_t timeout; /* of the receivers' and senders' selects */
};

static void *race_sender(void *arg)
{
    struct race *x = arg;
    unsigned s = atomic_fetch_add(&x->next_sender, 1);
    for (unsigned i = 0; i < x->per_sender; i++) {
        uint32_t id = s * x->per_sender + i;
        int r;
        if (s % 3 == 2) { /* a plain sender among the selects */
            r = wp_chan_send(i % 2 ? x->a : x->b, &id) == 0 ? 0 : -2;
        } else {
            wp_select_case cs[2] = {{x->a, WP_SEND, &id, -1}, {x->b, WP_SEND, &id, -1}};
            while ((r = wp_select(cs, 2, x->timeout)) == -1) sched_yield(); /* polling */
            if (r >= 0 && cs[r].err != 0) r = -2;
        }
        if (r < 0) atomic_fetch_add(&x->bad, 1);
    }
    return NULL;
}

static void *race_receiver(void *arg)
{
    struct race *x = arg;
    uint32_t id;
    wp_select_case cs[2] = {{x->a, WP_RECV, &id, -1}, {x->b, WP_RECV, &id, -1}};
    while (cs[0].chan || cs[1].chan) {
        int r = wp_select(cs, 2, x->timeout);
        if (r < 0) { /* timed out: let the others run (one CPU, valgrind) */
            sched_yield();
            continue;
        }
        if (cs[r].err == EPIPE) {
            cs[r].chan = NULL;
            continue;
        }
        if (cs[r].err != 0 || id >= x->per_sender * 6 || atomic_fetch_add(&x->got[id], 1) != 0)
            atomic_fetch_add(&x->bad, 1);
        atomic_fetch_add(&x->nreceived, 1);
    }
    return NULL;
}

static void run_race(size_t cap, uint64_t timeout)
{
    struct race x = {.per_sender = test_iters(3000), .timeout = timeout};
    unsigned total = x.per_sender * 6;
    x.got = calloc(total, 1);
    ASSERT(x.got != NULL);
    ASSERT_OK(wp_chan_create(&x.a, sizeof(uint32_t), cap));
    ASSERT_OK(wp_chan_create(&x.b, sizeof(uint32_t), cap));
    pthread_t s[6], r[4];
    for (int i = 0; i < 4; i++) ASSERT_OK(pthread_create(&r[i], NULL, race_receiver, &x));
    for (int i = 0; i < 6; i++) ASSERT_OK(pthread_create(&s[i], NULL, race_sender, &x));
    for (int i = 0; i < 6; i++) pthread_join(s[i], NULL);
    ASSERT_OK(wp_chan_close(x.a));
    ASSERT_OK(wp_chan_close(x.b));
    for (int i = 0; i < 4; i++) pthread_join(r[i], NULL);
    ASSERT_EQ(atomic_load(&x.bad), 0);
    ASSERT_EQ(atomic_load(&x.nreceived), total);
    for (unsigned i = 0; i < total; i++) ASSERT_EQ(atomic_load(&x.got[i]), 1);
    wp_chan_destroy(x.a);
    wp_chan_destroy(x.b);
    free(x.got);
}

TEST(selects_racing_on_the_same_channels_lose_nothing)
{
    static const size_t caps[] = {0, 1, 64};
    for (int i = 0; i < 3; i++) {
        run_race(caps[i], WP_FOREVER);
        if (test_failed_now) return;
    }
}

TEST(timed_selects_racing_lose_nothing)
{
    static const size_t caps[] = {0, 1, 64};
    for (int i = 0; i < 3; i++) {
        run_race(caps[i], 20000); /* 20 us: many time out mid-race */
        if (test_failed_now) return;
        /* Pure polling on both sides: unbuffered, a polling sender and a
           polling receiver never meet (as in Go), so buffered only. */
        if (caps[i] == 0) continue;
        run_race(caps[i], 0);
        if (test_failed_now) return;
    }
}

/* Close while selects block on both sides: every send reported as done is
   received exactly once, no send reported EPIPE is. */
struct close_race {
    wp_chan *a, *b;
    atomic_uint next_id, nreceived, bad;
    atomic_uchar *sent, *got;
    unsigned max;
};

static void *close_sender(void *arg)
{
    struct close_race *x = arg;
    for (;;) {
        uint32_t id = atomic_fetch_add(&x->next_id, 1);
        if (id >= x->max) return NULL;
        wp_select_case cs[2] = {{x->a, WP_SEND, &id, -1}, {x->b, WP_SEND, &id, -1}};
        int r = wp_select(cs, 2, WP_FOREVER);
        if (r < 0) {
            atomic_fetch_add(&x->bad, 1);
            return NULL;
        }
        if (cs[r].err == EPIPE) return NULL;
        atomic_store(&x->sent[id], 1);
    }
}

static void *close_receiver(void *arg)
{
    struct close_race *x = arg;
    uint32_t id;
    wp_select_case cs[2] = {{x->a, WP_RECV, &id, -1}, {x->b, WP_RECV, &id, -1}};
    while (cs[0].chan || cs[1].chan) {
        int r = wp_select(cs, 2, WP_FOREVER);
        if (r < 0) {
            atomic_fetch_add(&x->bad, 1);
            return NULL;
        }
        if (cs[r].err == EPIPE) {
            cs[r].chan = NULL;
            continue;
        }
        if (id >= x->max || atomic_fetch_add(&x->got[id], 1) != 0) atomic_fetch_add(&x->bad, 1);
        atomic_fetch_add(&x->nreceived, 1);
    }
    return NULL;
}

TEST(selects_racing_with_close_lose_nothing)
{
    unsigned rounds = test_iters(30);
    for (unsigned round = 0; round < rounds; round++) {
        struct close_race x = {.max = 1u << 16};
        x.sent = calloc(x.max, 1);
        x.got = calloc(x.max, 1);
        ASSERT(x.sent && x.got);
        size_t cap = round % 3 == 0 ? 0 : round % 3 == 1 ? 1 : 8;
        ASSERT_OK(wp_chan_create(&x.a, sizeof(uint32_t), cap));
        ASSERT_OK(wp_chan_create(&x.b, sizeof(uint32_t), cap));
        pthread_t t[6];
        for (int i = 0; i < 3; i++) ASSERT_OK(pthread_create(&t[i], NULL, close_sender, &x));
        for (int i = 3; i < 6; i++) ASSERT_OK(pthread_create(&t[i], NULL, close_receiver, &x));
        while (atomic_load(&x.nreceived) < 100 + round * 10) sched_yield();
        /* Close the two in either order; senders keep going on the other. */
        ASSERT_OK(wp_chan_close(round % 2 ? x.a : x.b));
        sched_yield();
        ASSERT_OK(wp_chan_close(round % 2 ? x.b : x.a));
        for (int i = 0; i < 6; i++) pthread_join(t[i], NULL);
        ASSERT_EQ(atomic_load(&x.bad), 0);
        unsigned nsent = 0;
        for (unsigned i = 0; i < x.max; i++) {
            ASSERT_EQ(atomic_load(&x.sent[i]), atomic_load(&x.got[i]));
            nsent += atomic_load(&x.sent[i]);
        }
        ASSERT_EQ(nsent, atomic_load(&x.nreceived));
        wp_chan_destroy(x.a);
        wp_chan_destroy(x.b);
        free(x.sent);
        free(x.got);
    }
}

TEST_MAIN()
