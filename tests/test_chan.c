/*
 * Channels: every rule of the contract (Go's channel semantics, with error
 * codes where Go panics), then MPMC stress with and without timeouts and
 * racing with close. Sizes scale with WPOOL_TEST_SCALE and shrink under
 * WPOOL_TEST_SMALL (valgrind).
 */
#include "chan_helpers.h"
#include "test.h"
#include "wpool.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

/* ------------------------------------------------------------ arguments -- */

TEST(create_rejects_bad_arguments)
{
    wp_chan *c = (wp_chan *)&c;
    ASSERT_ERR(wp_chan_create(NULL, 8, 1), EINVAL);
    ASSERT_ERR(wp_chan_create(&c, 0, 1), EINVAL);
    ASSERT_ERR(wp_chan_create(&c, 0, 0), EINVAL);
    ASSERT_ERR(wp_chan_create(&c, SIZE_MAX / 2 + 1, 2), EINVAL);
    ASSERT_ERR(wp_chan_create(&c, 2, SIZE_MAX / 2 + 1), EINVAL);
    ASSERT_ERR(wp_chan_create(&c, SIZE_MAX, SIZE_MAX), EINVAL);
    ASSERT_ERR(wp_chan_create(&c, SIZE_MAX, 1), EINVAL); /* with the header it overflows */
    /* Fits a size_t, but not with each slot's stamp: too large to allocate. */
    ASSERT_ERR(wp_chan_create(&c, 1, SIZE_MAX / 8), ENOMEM);
    ASSERT(c == (wp_chan *)&c); /* untouched on failure */
    wp_chan_destroy(NULL);      /* accepted */
}

TEST(null_handles_and_elems_are_einval)
{
    int v = 1;
    ASSERT_ERR(wp_chan_send(NULL, &v), EINVAL);
    ASSERT_ERR(wp_chan_recv(NULL, &v), EINVAL);
    ASSERT_ERR(wp_chan_try_send(NULL, &v), EINVAL);
    ASSERT_ERR(wp_chan_try_recv(NULL, &v), EINVAL);
    ASSERT_ERR(wp_chan_send_timeout(NULL, &v, 1000), EINVAL);
    ASSERT_ERR(wp_chan_recv_timeout(NULL, &v, 1000), EINVAL);
    ASSERT_ERR(wp_chan_close(NULL), EINVAL);
    ASSERT_UEQ(wp_chan_len(NULL), 0);
    ASSERT_UEQ(wp_chan_cap(NULL), 0);

    wp_chan *c;
    ASSERT_OK(wp_chan_create(&c, sizeof(int), 1));
    ASSERT_ERR(wp_chan_send(c, NULL), EINVAL);
    ASSERT_ERR(wp_chan_try_send(c, NULL), EINVAL);
    ASSERT_ERR(wp_chan_send_timeout(c, NULL, 1000), EINVAL);
    ASSERT_UEQ(wp_chan_len(c), 0); /* nothing was sent */
    wp_chan_destroy(c);
}

/* ------------------------------------------------------------- buffered -- */

TEST(buffered_is_fifo_and_reports_len_and_cap)
{
    wp_chan *c;
    ASSERT_OK(wp_chan_create(&c, sizeof(int), 4));
    ASSERT_UEQ(wp_chan_cap(c), 4);
    for (int round = 0; round < 3; round++) { /* wraps the ring */
        for (int i = 0; i < 4; i++) {
            int v = round * 10 + i;
            ASSERT_OK(wp_chan_send(c, &v));
            ASSERT_UEQ(wp_chan_len(c), i + 1);
        }
        int v = -1;
        ASSERT_ERR(wp_chan_try_send(c, &v), EAGAIN);
        ASSERT_ERR(wp_chan_send_timeout(c, &v, 0), ETIMEDOUT);
        ASSERT_ERR(wp_chan_send_timeout(c, &v, 1000000), ETIMEDOUT);
        ASSERT_UEQ(wp_chan_len(c), 4);
        for (int i = 0; i < 4; i++) {
            ASSERT_OK(wp_chan_recv(c, &v));
            ASSERT_EQ(v, round * 10 + i);
        }
        ASSERT_UEQ(wp_chan_len(c), 0);
        ASSERT_ERR(wp_chan_try_recv(c, &v), EAGAIN);
        ASSERT_ERR(wp_chan_recv_timeout(c, &v, 0), ETIMEDOUT);
        ASSERT_ERR(wp_chan_recv_timeout(c, &v, 1000000), ETIMEDOUT);
    }
    wp_chan_destroy(c);
}

TEST(try_and_timed_variants_succeed_when_possible)
{
    wp_chan *c;
    ASSERT_OK(wp_chan_create(&c, sizeof(int), 2));
    int v = 7, out = 0;
    ASSERT_OK(wp_chan_try_send(c, &v));
    v = 8;
    ASSERT_OK(wp_chan_send_timeout(c, &v, 0));
    ASSERT_OK(wp_chan_try_recv(c, &out));
    ASSERT_EQ(out, 7);
    ASSERT_OK(wp_chan_recv_timeout(c, &out, WP_FOREVER));
    ASSERT_EQ(out, 8);
    v = 9;
    ASSERT_OK(wp_chan_send_timeout(c, &v, WP_FOREVER));
    ASSERT_OK(wp_chan_recv_timeout(c, &out, 0));
    ASSERT_EQ(out, 9);
    wp_chan_destroy(c);
}

TEST(elements_of_any_size_are_copied_whole)
{
    static const size_t sizes[] = {1, 3, 8, 17, 256, 4096};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        unsigned char in[4096], out[4096];
        wp_chan *c;
        ASSERT_OK(wp_chan_create(&c, n, 3));
        for (int k = 0; k < 5; k++) {
            for (size_t i = 0; i < n; i++) in[i] = (unsigned char)(i * 31 + (size_t)k + n);
            ASSERT_OK(wp_chan_send(c, in));
            memset(out, 0xAA, sizeof out);
            ASSERT_OK(wp_chan_recv(c, out));
            ASSERT(memcmp(in, out, n) == 0);
            ASSERT_EQ(out[n < 4096 ? n : 4095], n < 4096 ? 0xAA : in[4095]); /* no overrun */
        }
        wp_chan_destroy(c);
    }
}

TEST(recv_with_null_elem_drops_the_value)
{
    wp_chan *c;
    ASSERT_OK(wp_chan_create(&c, sizeof(int), 2));
    int v = 1;
    ASSERT_OK(wp_chan_send(c, &v));
    v = 2;
    ASSERT_OK(wp_chan_send(c, &v));
    ASSERT_OK(wp_chan_recv(c, NULL));
    ASSERT_OK(wp_chan_try_recv(c, &v));
    ASSERT_EQ(v, 2);
    wp_chan_destroy(c);
}

/* ---------------------------------------------------------------- close -- */

TEST(close_rules)
{
    wp_chan *c;
    ASSERT_OK(wp_chan_create(&c, sizeof(int), 3));
    int v = 1;
    ASSERT_OK(wp_chan_send(c, &v));
    v = 2;
    ASSERT_OK(wp_chan_send(c, &v));
    ASSERT_OK(wp_chan_close(c));
    ASSERT_ERR(wp_chan_close(c), EPIPE); /* closing twice */
    ASSERT_ERR(wp_chan_send(c, &v), EPIPE);
    ASSERT_ERR(wp_chan_try_send(c, &v), EPIPE);
    ASSERT_ERR(wp_chan_send_timeout(c, &v, 1000), EPIPE);
    ASSERT_UEQ(wp_chan_len(c), 2);
    /* What was buffered is still delivered, then EPIPE, leaving elem alone. */
    ASSERT_OK(wp_chan_recv(c, &v));
    ASSERT_EQ(v, 1);
    ASSERT_OK(wp_chan_try_recv(c, &v));
    ASSERT_EQ(v, 2);
    v = 42;
    ASSERT_ERR(wp_chan_recv(c, &v), EPIPE);
    ASSERT_ERR(wp_chan_try_recv(c, &v), EPIPE);
    ASSERT_ERR(wp_chan_recv_timeout(c, &v, 1000), EPIPE);
    ASSERT_ERR(wp_chan_recv_timeout(c, &v, 0), EPIPE);
    ASSERT_EQ(v, 42);
    wp_chan_destroy(c);

    ASSERT_OK(wp_chan_create(&c, sizeof(int), 0));
    ASSERT_OK(wp_chan_close(c));
    ASSERT_ERR(wp_chan_send(c, &v), EPIPE);
    ASSERT_ERR(wp_chan_recv(c, &v), EPIPE);
    ASSERT_ERR(wp_chan_close(c), EPIPE);
    wp_chan_destroy(c);
}

struct blocked {
    wp_chan *c;
    int op;
    uint64_t timeout;
    int result;
    int value;
};

static void *blocked_op(void *arg)
{
    struct blocked *b = arg;
    if (b->op == WP_SEND)
        b->result = b->timeout ? wp_chan_send_timeout(b->c, &b->value, b->timeout)
                               : wp_chan_send(b->c, &b->value);
    else
        b->result = b->timeout ? wp_chan_recv_timeout(b->c, &b->value, b->timeout)
                               : wp_chan_recv(b->c, &b->value);
    return NULL;
}

TEST(close_wakes_every_blocked_sender_and_receiver)
{
    enum { N = 4 };
    for (size_t cap = 0; cap <= 2; cap += 2) {
        for (int op = WP_SEND; op <= WP_RECV; op++) {
            wp_chan *c;
            ASSERT_OK(wp_chan_create(&c, sizeof(int), cap));
            int v = 0;
            if (op == WP_SEND)
                for (size_t i = 0; i < cap; i++) ASSERT_OK(wp_chan_send(c, &v)); /* fill */
            struct blocked b[N];
            pthread_t t[N];
            for (int i = 0; i < N; i++) {
                /* half of them with a (long) timeout: close must beat it */
                b[i] = (struct blocked){c, op, i % 2 ? 3600ull * 1000000000 : 0, -1, 100 + i};
                ASSERT_OK(pthread_create(&t[i], NULL, blocked_op, &b[i]));
            }
            wait_queued(c, op, N);
            ASSERT_OK(wp_chan_close(c));
            for (int i = 0; i < N; i++) {
                pthread_join(t[i], NULL);
                ASSERT_ERR(b[i].result, EPIPE);
                if (op == WP_RECV) ASSERT_EQ(b[i].value, 100 + i); /* untouched */
            }
            /* the senders' values did not get in; the fill is still there */
            ASSERT_UEQ(wp_chan_len(c), op == WP_SEND ? cap : 0);
            wp_chan_destroy(c);
        }
    }
}

/* ----------------------------------------------------------- unbuffered -- */

struct unbuf_sender {
    wp_chan *c;
    atomic_int returned;
    int result;
};

static void *unbuf_send(void *arg)
{
    struct unbuf_sender *s = arg;
    int v = 12345;
    s->result = wp_chan_send(s->c, &v);
    atomic_store(&s->returned, 1);
    return NULL;
}

TEST(unbuffered_send_returns_only_after_a_receiver_took_the_value)
{
    wp_chan *c;
    ASSERT_OK(wp_chan_create(&c, sizeof(int), 0));
    ASSERT_UEQ(wp_chan_cap(c), 0);
    int v = 1;
    ASSERT_ERR(wp_chan_try_send(c, &v), EAGAIN); /* no receiver */
    ASSERT_ERR(wp_chan_try_recv(c, &v), EAGAIN); /* no sender */
    ASSERT_ERR(wp_chan_send_timeout(c, &v, 1000000), ETIMEDOUT);
    ASSERT_ERR(wp_chan_recv_timeout(c, &v, 1000000), ETIMEDOUT);

    struct unbuf_sender s = {.c = c};
    pthread_t t;
    ASSERT_OK(pthread_create(&t, NULL, unbuf_send, &s));
    wait_queued(c, WP_SEND, 1);
    test_sleep_ms(20);
    ASSERT_EQ(atomic_load(&s.returned), 0); /* still waiting for a receiver */
    ASSERT_UEQ(wp_chan_len(c), 0);          /* and nothing is buffered */
    ASSERT_OK(wp_chan_recv(c, &v));
    ASSERT_EQ(v, 12345);
    pthread_join(t, NULL);
    ASSERT_OK(s.result);
    ASSERT_EQ(atomic_load(&s.returned), 1);
    wp_chan_destroy(c);
}

TEST(unbuffered_try_ops_meet_a_waiting_partner)
{
    wp_chan *c;
    ASSERT_OK(wp_chan_create(&c, sizeof(int), 0));
    struct blocked r = {c, WP_RECV, 0, -1, 0};
    pthread_t t;
    ASSERT_OK(pthread_create(&t, NULL, blocked_op, &r));
    wait_queued(c, WP_RECV, 1);
    int v = 77;
    ASSERT_OK(wp_chan_try_send(c, &v));
    pthread_join(t, NULL);
    ASSERT_OK(r.result);
    ASSERT_EQ(r.value, 77);

    struct blocked s = {c, WP_SEND, 0, -1, 88};
    ASSERT_OK(pthread_create(&t, NULL, blocked_op, &s));
    wait_queued(c, WP_SEND, 1);
    ASSERT_OK(wp_chan_try_recv(c, &v));
    ASSERT_EQ(v, 88);
    pthread_join(t, NULL);
    ASSERT_OK(s.result);
    wp_chan_destroy(c);
}

/* c: a capacity-2 channel holding 1 and 2, and a sender of 3 (*s, on *t)
   waiting for room. */
static void full_with_a_waiting_sender(wp_chan **c, struct blocked *s, pthread_t *t)
{
    ASSERT_OK(wp_chan_create(c, sizeof(int), 2));
    for (int v = 1; v <= 2; v++) ASSERT_OK(wp_chan_send(*c, &v));
    *s = (struct blocked){*c, WP_SEND, 0, -1, 3};
    ASSERT_OK(pthread_create(t, NULL, blocked_op, s));
    wait_queued(*c, WP_SEND, 1);
}

TEST(full_buffer_sender_waits_and_keeps_order)
{
    wp_chan *c;
    struct blocked s;
    pthread_t t;
    full_with_a_waiting_sender(&c, &s, &t);
    if (test_failed_now) return;
    int v;
    for (int want = 1; want <= 3; want++) {
        ASSERT_OK(wp_chan_recv(c, &v));
        ASSERT_EQ(v, want);
    }
    pthread_join(t, NULL);
    ASSERT_OK(s.result);
    ASSERT_UEQ(wp_chan_len(c), 0);
    wp_chan_destroy(c);
}

/* As in Go: a receive that makes room in a full buffer moves a waiting
   sender's value in before it returns, and a send into an empty buffer
   hands its value to a waiting receiver before it returns. */
TEST(a_waiting_partner_is_completed_before_the_call_returns)
{
    wp_chan *c;
    struct blocked s;
    pthread_t t;
    full_with_a_waiting_sender(&c, &s, &t);
    if (test_failed_now) return;
    int v;
    ASSERT_OK(wp_chan_try_recv(c, &v));
    ASSERT_EQ(v, 1);
    ASSERT_UEQ(wp_chan_len(c), 2); /* 2 and the sender's 3 */
    ASSERT_ERR(wp_chan_try_send(c, &v), EAGAIN);
    pthread_join(t, NULL);
    ASSERT_OK(s.result);
    for (int want = 2; want <= 3; want++) {
        ASSERT_OK(wp_chan_try_recv(c, &v));
        ASSERT_EQ(v, want);
    }

    struct blocked r = {c, WP_RECV, 0, -1, 0};
    ASSERT_OK(pthread_create(&t, NULL, blocked_op, &r));
    wait_queued(c, WP_RECV, 1);
    v = 9;
    ASSERT_OK(wp_chan_send(c, &v));
    ASSERT_UEQ(wp_chan_len(c), 0); /* already the receiver's */
    ASSERT_ERR(wp_chan_try_recv(c, &v), EAGAIN);
    pthread_join(t, NULL);
    ASSERT_OK(r.result);
    ASSERT_EQ(r.value, 9);
    wp_chan_destroy(c);
}

/* One thread, every fill level of a 3-slot ring over many laps: FIFO order,
   len, and full and empty exactly at cap and 0. */
TEST(buffered_ring_keeps_order_and_len_over_many_laps)
{
    wp_chan *c;
    ASSERT_OK(wp_chan_create(&c, sizeof(unsigned), 3));
    unsigned next_in = 0, next_out = 0, v;
    for (unsigned round = 0; round < 1000; round++) {
        unsigned fill = round % 4, drain = (round / 4) % 4; /* 0..3 each */
        for (unsigned i = 0; i < fill; i++) {
            int r = wp_chan_try_send(c, &next_in);
            if (next_in - next_out == 3) {
                ASSERT_ERR(r, EAGAIN);
                break;
            }
            ASSERT_OK(r);
            next_in++;
            ASSERT_UEQ(wp_chan_len(c), next_in - next_out);
        }
        for (unsigned i = 0; i < drain; i++) {
            int r = wp_chan_try_recv(c, &v);
            if (next_in == next_out) {
                ASSERT_ERR(r, EAGAIN);
                break;
            }
            ASSERT_OK(r);
            ASSERT_EQ(v, next_out);
            next_out++;
            ASSERT_UEQ(wp_chan_len(c), next_in - next_out);
        }
    }
    ASSERT_OK(wp_chan_close(c));
    ASSERT_ERR(wp_chan_try_send(c, &v), EPIPE);
    while (next_out < next_in) {
        ASSERT_OK(wp_chan_recv(c, &v));
        ASSERT_EQ(v, next_out);
        next_out++;
    }
    ASSERT_ERR(wp_chan_recv(c, &v), EPIPE);
    ASSERT_UEQ(wp_chan_len(c), 0);
    wp_chan_destroy(c);
}

TEST(timed_wait_completes_when_a_partner_arrives)
{
    wp_chan *c;
    ASSERT_OK(wp_chan_create(&c, sizeof(int), 0));
    struct blocked r = {c, WP_RECV, 3600ull * 1000000000, -1, 0};
    pthread_t t;
    ASSERT_OK(pthread_create(&t, NULL, blocked_op, &r));
    wait_queued(c, WP_RECV, 1);
    int v = 5;
    ASSERT_OK(wp_chan_send(c, &v));
    pthread_join(t, NULL);
    ASSERT_OK(r.result);
    ASSERT_EQ(r.value, 5);

    /* A timed-out receiver leaves nothing behind: the next send waits. */
    ASSERT_ERR(wp_chan_recv_timeout(c, &v, 1000), ETIMEDOUT);
    ASSERT_UEQ(queued(c, WP_RECV), 0);
    ASSERT_ERR(wp_chan_try_send(c, &v), EAGAIN);
    wp_chan_destroy(c);
}

/* The first plain op to wait on an unbuffered channel waits in the
   channel itself, later ones queue behind it: partners still meet them in
   the order they came, also one that comes while the first is being
   completed and others are queued. */
TEST(unbuffered_waiters_are_met_in_arrival_order)
{
    for (int op = WP_SEND; op <= WP_RECV; op++) {
        wp_chan *c;
        ASSERT_OK(wp_chan_create(&c, sizeof(int), 0));
        struct blocked b[4];
        pthread_t t[4];
        for (int i = 0; i < 3; i++) {
            b[i] = (struct blocked){c, op, i == 1 ? 3600ull * 1000000000 : 0, -1, 10 + i};
            ASSERT_OK(pthread_create(&t[i], NULL, blocked_op, &b[i]));
            wait_queued(c, op, (size_t)i + 1);
        }
        int v = 20;
        /* The first waiter is met; then a fourth comes while two wait. */
        ASSERT_OK(op == WP_SEND ? wp_chan_recv(c, &v) : wp_chan_send(c, &v));
        if (op == WP_SEND) ASSERT_EQ(v, 10);
        pthread_join(t[0], NULL);
        b[3] = (struct blocked){c, op, 0, -1, 13};
        ASSERT_OK(pthread_create(&t[3], NULL, blocked_op, &b[3]));
        wait_queued(c, op, 3);
        for (int i = 1; i < 4; i++) {
            v = 20 + i;
            ASSERT_OK(op == WP_SEND ? wp_chan_try_recv(c, &v) : wp_chan_try_send(c, &v));
            if (op == WP_SEND) ASSERT_EQ(v, 10 + i); /* the i-th sender's value */
            pthread_join(t[i], NULL);
        }
        for (int i = 0; i < 4; i++) {
            ASSERT_OK(b[i].result);
            if (op == WP_RECV) ASSERT_EQ(b[i].value, 20 + i); /* the i-th value sent */
        }
        ASSERT_UEQ(queued(c, WP_SEND) + queued(c, WP_RECV), 0);
        ASSERT_ERR(op == WP_SEND ? wp_chan_try_recv(c, &v) : wp_chan_try_send(c, &v), EAGAIN);
        wp_chan_destroy(c);
    }
}

struct big_op {
    wp_chan *c;
    int op;
    unsigned char *elem; /* NULL: a receive that drops the value */
    int result;
};

static void *big_op_run(void *arg)
{
    struct big_op *b = arg;
    b->result = b->op == WP_SEND ? wp_chan_send(b->c, b->elem) : wp_chan_recv(b->c, b->elem);
    return NULL;
}

/* Elements of every size pass whole between a waiting op and its partner,
   each way: up to 8 bytes inside the waiter, larger ones copied from or to
   the waiting op's own buffer. A receive with NULL drops the value. */
TEST(unbuffered_elements_of_any_size_pass_to_and_from_a_waiting_op)
{
    static const size_t sizes[] = {1, 3, 8, 9, 17, 256, 4096};
    static unsigned char in[4097], out[4097];
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        wp_chan *c;
        ASSERT_OK(wp_chan_create(&c, n, 0));
        for (int waiting = WP_SEND; waiting <= WP_RECV; waiting++) {
            for (int drop = 0; drop <= 1; drop++) {
                for (size_t i = 0; i < n; i++) in[i] = (unsigned char)(i * 7 + n + (size_t)drop);
                memset(out, 0xAA, sizeof out);
                struct big_op b = {c, waiting, waiting == WP_SEND ? in : drop ? NULL : out, -1};
                pthread_t t;
                ASSERT_OK(pthread_create(&t, NULL, big_op_run, &b));
                wait_queued(c, waiting, 1);
                if (waiting == WP_SEND)
                    ASSERT_OK(wp_chan_try_recv(c, drop ? NULL : out));
                else
                    ASSERT_OK(wp_chan_try_send(c, in));
                pthread_join(t, NULL);
                ASSERT_OK(b.result);
                if (!drop) ASSERT(memcmp(in, out, n) == 0);
                ASSERT_EQ(out[drop ? 0 : n], 0xAA); /* no overrun; nothing written when dropped */
            }
        }
        wp_chan_destroy(c);
    }
}

/* --------------------------------------------------------------- stress -- */

enum { MAX_ELEM = 256 };

struct mpmc {
    wp_chan *c;
    size_t elem_size;
    unsigned per_sender;
    int timed; /* use the timed variants with short timeouts, retrying */
    atomic_uint next_sender;
    atomic_uchar *seen;
    atomic_uint received, bad;
};

static void fill(unsigned char *e, size_t n, uint32_t id)
{
    memcpy(e, &id, sizeof id);
    for (size_t i = sizeof id; i < n; i++) e[i] = (unsigned char)(id * 7 + i);
}

static int check(const unsigned char *e, size_t n, uint32_t *id)
{
    memcpy(id, e, sizeof *id);
    for (size_t i = sizeof *id; i < n; i++)
        if (e[i] != (unsigned char)(*id * 7 + i)) return 0;
    return 1;
}

static void *mpmc_sender(void *arg)
{
    struct mpmc *m = arg;
    unsigned s = atomic_fetch_add(&m->next_sender, 1);
    unsigned char e[MAX_ELEM];
    for (unsigned i = 0; i < m->per_sender; i++) {
        fill(e, m->elem_size, s * m->per_sender + i);
        int r;
        if (m->timed)
            while ((r = wp_chan_send_timeout(m->c, e, 20000)) == ETIMEDOUT) {
            }
        else
            r = wp_chan_send(m->c, e);
        if (r != 0) atomic_fetch_add(&m->bad, 1);
    }
    return NULL;
}

static void *mpmc_receiver(void *arg)
{
    struct mpmc *m = arg;
    unsigned char e[MAX_ELEM];
    for (;;) {
        int r = m->timed ? wp_chan_recv_timeout(m->c, e, 20000) : wp_chan_recv(m->c, e);
        if (r == ETIMEDOUT) continue;
        if (r == EPIPE) return NULL;
        uint32_t id;
        if (r != 0 || !check(e, m->elem_size, &id) || atomic_fetch_add(&m->seen[id], 1) != 0)
            atomic_fetch_add(&m->bad, 1);
        atomic_fetch_add(&m->received, 1);
    }
}

static void run_mpmc(size_t cap, size_t elem_size, int senders, int receivers, int timed)
{
    struct mpmc m = {
        .elem_size = elem_size, .per_sender = test_iters(timed ? 2000 : 5000), .timed = timed};
    unsigned total = m.per_sender * (unsigned)senders;
    m.seen = calloc(total, 1);
    ASSERT(m.seen != NULL);
    ASSERT_OK(wp_chan_create(&m.c, elem_size, cap));
    pthread_t s[8], r[8];
    for (int i = 0; i < receivers; i++) ASSERT_OK(pthread_create(&r[i], NULL, mpmc_receiver, &m));
    for (int i = 0; i < senders; i++) ASSERT_OK(pthread_create(&s[i], NULL, mpmc_sender, &m));
    for (int i = 0; i < senders; i++) pthread_join(s[i], NULL);
    ASSERT_OK(wp_chan_close(m.c));
    for (int i = 0; i < receivers; i++) pthread_join(r[i], NULL);
    ASSERT_EQ(atomic_load(&m.bad), 0);
    ASSERT_EQ(atomic_load(&m.received), total);
    for (unsigned i = 0; i < total; i++) ASSERT_EQ(atomic_load(&m.seen[i]), 1);
    ASSERT_UEQ(wp_chan_len(m.c), 0);
    wp_chan_destroy(m.c);
    free(m.seen);
}

TEST(mpmc_every_value_exactly_once)
{
    /* 3: a ring whose size is no power of two; 12: a slot of 8 + 16 bytes,
       the element not a multiple of 8. */
    static const size_t caps[] = {0, 1, 3, 64}, sizes[] = {8, 12, 256};
    for (size_t ci = 0; ci < 4; ci++)
        for (size_t si = 0; si < 3; si++) {
            run_mpmc(caps[ci], sizes[si], 4, 4, 0);
            if (test_failed_now) return;
            run_mpmc(caps[ci], sizes[si], 1, 3, 0);
            if (test_failed_now) return;
            run_mpmc(caps[ci], sizes[si], 3, 1, 0);
            if (test_failed_now) return;
        }
}

TEST(mpmc_with_timeouts_loses_and_duplicates_nothing)
{
    static const size_t caps[] = {0, 1, 3, 64};
    for (size_t ci = 0; ci < 4; ci++) {
        run_mpmc(caps[ci], 8, 3, 3, 1);
        if (test_failed_now) return;
    }
}

/* Close while senders and receivers are busy: every value a send reported
   as sent is received exactly once, no other value is. */
struct race {
    wp_chan *c;
    atomic_uint next_id;
    atomic_uchar *sent, *got;
    atomic_uint nreceived, bad;
    unsigned max;
};

static void *race_sender(void *arg)
{
    struct race *x = arg;
    for (;;) {
        uint32_t id = atomic_fetch_add(&x->next_id, 1);
        if (id >= x->max) return NULL;
        int r = wp_chan_send(x->c, &id);
        if (r == EPIPE) return NULL;
        if (r != 0) atomic_fetch_add(&x->bad, 1);
        atomic_store(&x->sent[id], 1);
    }
}

static void *race_receiver(void *arg)
{
    struct race *x = arg;
    uint32_t id;
    int r;
    while ((r = wp_chan_recv(x->c, &id)) == 0) {
        if (id >= x->max || atomic_fetch_add(&x->got[id], 1) != 0) atomic_fetch_add(&x->bad, 1);
        atomic_fetch_add(&x->nreceived, 1);
    }
    if (r != EPIPE) atomic_fetch_add(&x->bad, 1);
    return NULL;
}

TEST(close_racing_with_senders_and_receivers)
{
    unsigned rounds = test_iters(40);
    for (unsigned round = 0; round < rounds; round++) {
        struct race x = {.max = 1u << 16};
        x.sent = calloc(x.max, 1);
        x.got = calloc(x.max, 1);
        ASSERT(x.sent && x.got);
        ASSERT_OK(wp_chan_create(&x.c, sizeof(uint32_t),
                                 round % 3 == 0   ? 0
                                 : round % 3 == 1 ? 1
                                                  : 16));
        pthread_t t[6];
        for (int i = 0; i < 3; i++) ASSERT_OK(pthread_create(&t[i], NULL, race_sender, &x));
        for (int i = 3; i < 6; i++) ASSERT_OK(pthread_create(&t[i], NULL, race_receiver, &x));
        while (atomic_load(&x.nreceived) < 200 + round * 10) sched_yield();
        ASSERT_OK(wp_chan_close(x.c));
        for (int i = 0; i < 6; i++) pthread_join(t[i], NULL);
        ASSERT_EQ(atomic_load(&x.bad), 0);
        unsigned nsent = 0;
        for (unsigned i = 0; i < x.max; i++) {
            ASSERT_EQ(atomic_load(&x.sent[i]), atomic_load(&x.got[i]));
            nsent += atomic_load(&x.sent[i]);
        }
        ASSERT_EQ(nsent, atomic_load(&x.nreceived));
        wp_chan_destroy(x.c);
        free(x.sent);
        free(x.got);
    }
}

TEST_MAIN()
