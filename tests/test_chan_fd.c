/*
 * wp_chan_fd: the descriptor polls readable exactly while a receive would
 * not wait (an element buffered, a sender waiting on an unbuffered channel,
 * or closed), whichever path changed the state: send, receive, try and timed
 * variants, close, select. The level is read with poll() and timeout 0; a
 * blocking poll is used only to wait for another thread to arrive (bounded,
 * never timed). The last case counts the write and read system calls each
 * send and receive costs (/proc/thread-self/io).
 */
#include "chan_helpers.h"
#include "test.h"
#include "wpool.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/resource.h>

/* Readable now (poll, timeout 0). */
static int readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* Waits (at most 10 s: a hang, not a timing) until fd is readable. */
static int wait_readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 10000) == 1 && (p.revents & POLLIN);
}

/* One operation run on a thread of its own, with its result. */
struct op {
    wp_chan *c, *d; /* d: a second channel for select */
    int v, rc;
    uint64_t timeout_ns;
    pthread_t t;
};

static void *send_thread(void *arg)
{
    struct op *o = arg;
    o->rc = wp_chan_send_timeout(o->c, &o->v, o->timeout_ns);
    return NULL;
}

static void *recv_thread(void *arg)
{
    struct op *o = arg;
    o->rc = wp_chan_recv(o->c, &o->v);
    return NULL;
}

/* select { case c <- v: ; case v = <-d: }, returns the index in rc. */
static void *select_thread(void *arg)
{
    struct op *o = arg;
    int got = 0;
    wp_select_case cs[2] = {{o->c, WP_SEND, &o->v, 0}, {o->d, WP_RECV, &got, 0}};
    o->rc = wp_select(cs, o->d ? 2 : 1, o->timeout_ns);
    return NULL;
}

TEST(null_arguments_are_einval)
{
    wp_chan *c;
    int fd = -7;
    ASSERT_ERR(wp_chan_fd(NULL, &fd), EINVAL);
    ASSERT_OK(wp_chan_create(&c, sizeof(int), 1));
    ASSERT_ERR(wp_chan_fd(c, NULL), EINVAL);
    ASSERT_EQ(fd, -7);
    wp_chan_destroy(c);
}

TEST(later_calls_return_the_same_descriptor)
{
    wp_chan *c;
    int fd1, fd2;
    ASSERT_OK(wp_chan_create(&c, sizeof(int), 1));
    ASSERT_OK(wp_chan_fd(c, &fd1));
    ASSERT_GE(fd1, 0);
    ASSERT_OK(wp_chan_fd(c, &fd2));
    ASSERT_EQ(fd1, fd2);
    ASSERT(fcntl(fd1, F_GETFD) & FD_CLOEXEC);
    wp_chan_destroy(c);
    ASSERT_EQ(fcntl(fd1, F_GETFD), -1); /* closed by destroy */
    ASSERT_EQ(errno, EBADF);
}

TEST(buffered_readable_while_an_element_is_buffered)
{
    wp_chan *c;
    int fd, v = 1;
    ASSERT_OK(wp_chan_create(&c, sizeof(int), 2));
    ASSERT_OK(wp_chan_fd(c, &fd));
    ASSERT(!readable(fd));
    ASSERT_OK(wp_chan_send(c, &v));
    ASSERT(readable(fd));
    ASSERT(readable(fd)); /* level-triggered: polling does not consume it */
    ASSERT_OK(wp_chan_try_send(c, &v));
    ASSERT(readable(fd));
    ASSERT_OK(wp_chan_recv(c, &v));
    ASSERT(readable(fd)); /* one left */
    ASSERT_OK(wp_chan_try_recv(c, &v));
    ASSERT(!readable(fd)); /* drained */
    ASSERT_ERR(wp_chan_try_recv(c, &v), EAGAIN);
    ASSERT(!readable(fd));
    ASSERT_OK(wp_chan_send_timeout(c, &v, 1000));
    ASSERT(readable(fd));
    ASSERT_OK(wp_chan_recv_timeout(c, &v, 1000));
    ASSERT(!readable(fd));
    wp_chan_destroy(c);
}

TEST(made_after_sends_it_is_readable_at_once)
{
    wp_chan *c;
    int fd, v = 1;
    ASSERT_OK(wp_chan_create(&c, sizeof(int), 2));
    ASSERT_OK(wp_chan_send(c, &v));
    ASSERT_OK(wp_chan_fd(c, &fd));
    ASSERT(readable(fd));
    ASSERT_OK(wp_chan_recv(c, &v));
    ASSERT(!readable(fd));
    wp_chan_destroy(c);
}

TEST(many_sends_before_one_poll)
{
    enum { N = 100 };
    wp_chan *c;
    int fd;
    ASSERT_OK(wp_chan_create(&c, sizeof(int), N));
    ASSERT_OK(wp_chan_fd(c, &fd));
    for (int i = 0; i < N; i++) ASSERT_OK(wp_chan_try_send(c, &i));
    ASSERT(wait_readable(fd));
    int v, n = 0; /* what a loop does on POLLIN: try_recv until EAGAIN */
    while (wp_chan_try_recv(c, &v) == 0) {
        ASSERT_EQ(v, n);
        n++;
    }
    ASSERT_EQ(n, N);
    ASSERT(!readable(fd));
    wp_chan_destroy(c);
}

TEST(unbuffered_readable_while_a_sender_waits_until_received)
{
    wp_chan *c;
    int fd, v = 0;
    ASSERT_OK(wp_chan_create(&c, sizeof(int), 0));
    ASSERT_OK(wp_chan_fd(c, &fd));
    ASSERT(!readable(fd));
    ASSERT_ERR(wp_chan_try_send(c, &v), EAGAIN); /* no receiver: nothing changes */
    ASSERT(!readable(fd));
    struct op o = {.c = c, .v = 42, .timeout_ns = WP_FOREVER};
    ASSERT_OK(pthread_create(&o.t, NULL, send_thread, &o));
    ASSERT(wait_readable(fd));
    ASSERT_OK(wp_chan_try_recv(c, &v));
    ASSERT_EQ(v, 42);
    ASSERT(!readable(fd));
    pthread_join(o.t, NULL);
    ASSERT_OK(o.rc);
    ASSERT(!readable(fd));
    wp_chan_destroy(c);
}

TEST(unbuffered_readable_while_a_sender_waits_until_it_times_out)
{
    wp_chan *c;
    int fd;
    ASSERT_OK(wp_chan_create(&c, sizeof(int), 0));
    ASSERT_OK(wp_chan_fd(c, &fd));
    /* Long enough that the main thread sees it waiting even under valgrind. */
    struct op o = {.c = c, .v = 42, .timeout_ns = 500000000u};
    ASSERT_OK(pthread_create(&o.t, NULL, send_thread, &o));
    ASSERT(wait_readable(fd));
    pthread_join(o.t, NULL);
    ASSERT_ERR(o.rc, ETIMEDOUT);
    ASSERT(!readable(fd)); /* the sender gave up: a receive would wait again */
    wp_chan_destroy(c);
}

TEST(unbuffered_waiting_receiver_does_not_make_it_readable)
{
    wp_chan *c;
    int fd, v = 7;
    ASSERT_OK(wp_chan_create(&c, sizeof(int), 0));
    ASSERT_OK(wp_chan_fd(c, &fd));
    struct op o = {.c = c};
    ASSERT_OK(pthread_create(&o.t, NULL, recv_thread, &o));
    wait_queued(c, WP_RECV, 1);
    ASSERT(!readable(fd));
    ASSERT_OK(wp_chan_send(c, &v)); /* handed straight to the receiver */
    ASSERT(!readable(fd));
    pthread_join(o.t, NULL);
    ASSERT_OK(o.rc);
    ASSERT_EQ(o.v, 7);
    wp_chan_destroy(c);
}

TEST(full_buffer_with_a_waiting_sender_stays_readable_until_drained)
{
    wp_chan *c;
    int fd, v = 1;
    ASSERT_OK(wp_chan_create(&c, sizeof(int), 1));
    ASSERT_OK(wp_chan_fd(c, &fd));
    ASSERT_OK(wp_chan_send(c, &v));
    struct op o = {.c = c, .v = 2, .timeout_ns = WP_FOREVER};
    ASSERT_OK(pthread_create(&o.t, NULL, send_thread, &o));
    wait_queued(c, WP_SEND, 1);
    ASSERT_OK(wp_chan_try_recv(c, &v)); /* takes 1, moves the sender's 2 in */
    ASSERT_EQ(v, 1);
    ASSERT(readable(fd));
    pthread_join(o.t, NULL);
    ASSERT_OK(o.rc);
    ASSERT_OK(wp_chan_try_recv(c, &v));
    ASSERT_EQ(v, 2);
    ASSERT(!readable(fd));
    wp_chan_destroy(c);
}

TEST(close_makes_it_readable_for_good)
{
    for (int buffered = 0; buffered < 2; buffered++) {
        wp_chan *c;
        int fd, v = 5;
        ASSERT_OK(wp_chan_create(&c, sizeof(int), 4));
        ASSERT_OK(wp_chan_fd(c, &fd));
        if (buffered) ASSERT_OK(wp_chan_send(c, &v));
        ASSERT_OK(wp_chan_close(c));
        ASSERT(readable(fd));
        if (buffered) {
            ASSERT_OK(wp_chan_try_recv(c, &v)); /* still delivered */
            ASSERT(readable(fd));
        }
        ASSERT_ERR(wp_chan_try_recv(c, &v), EPIPE); /* would not wait: readable */
        ASSERT(readable(fd));
        ASSERT_ERR(wp_chan_close(c), EPIPE);
        ASSERT(readable(fd));
        wp_chan_destroy(c);
    }
}

TEST(close_wakes_a_loop_that_sleeps_on_it)
{
    wp_chan *c;
    int fd;
    ASSERT_OK(wp_chan_create(&c, sizeof(int), 0));
    ASSERT_OK(wp_chan_fd(c, &fd));
    ASSERT(!readable(fd));
    ASSERT_OK(wp_chan_close(c));
    ASSERT(wait_readable(fd));
    wp_chan_destroy(c);
}

TEST(close_and_destroy_while_in_an_epoll_set)
{
    wp_chan *c;
    int fd, v = 3;
    ASSERT_OK(wp_chan_create(&c, sizeof(int), 2));
    ASSERT_OK(wp_chan_fd(c, &fd));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    ASSERT_GE(ep, 0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 77}, got[2];
    ASSERT_OK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev));
    ASSERT_EQ(epoll_wait(ep, got, 2, 0), 0);
    ASSERT_OK(wp_chan_send(c, &v));
    ASSERT_EQ(epoll_wait(ep, got, 2, 0), 1);
    ASSERT_EQ(got[0].data.u32, 77);
    ASSERT_OK(wp_chan_recv(c, &v));
    ASSERT_EQ(epoll_wait(ep, got, 2, 0), 0);
    ASSERT_OK(wp_chan_close(c));
    ASSERT_EQ(epoll_wait(ep, got, 2, 0), 1);
    ASSERT(got[0].events & EPOLLIN);
    ASSERT_EQ(epoll_wait(ep, got, 2, 0), 1); /* level-triggered */
    wp_chan_destroy(c);                      /* closes fd: it leaves the set */
    ASSERT_EQ(epoll_wait(ep, got, 2, 0), 0);
    close(ep);
}

TEST(select_sends_and_receives_keep_the_level)
{
    wp_chan *c, *other;
    int fd, v = 9, w = 0;
    ASSERT_OK(wp_chan_create(&c, sizeof(int), 1));
    ASSERT_OK(wp_chan_create(&other, sizeof(int), 1));
    ASSERT_OK(wp_chan_fd(c, &fd));
    wp_select_case snd[2] = {{c, WP_SEND, &v, 0}, {NULL, WP_RECV, NULL, 0}};
    ASSERT_EQ(wp_select(snd, 2, 0), 0);
    ASSERT(readable(fd));
    ASSERT_EQ(wp_select(snd, 2, 0), -1); /* full: nothing changes */
    ASSERT(readable(fd));
    wp_select_case rcv[2] = {{c, WP_RECV, &w, 0}, {other, WP_RECV, NULL, 0}};
    ASSERT_EQ(wp_select(rcv, 2, 0), 0);
    ASSERT_EQ(w, 9);
    ASSERT(!readable(fd));
    ASSERT_EQ(wp_select(rcv, 2, 0), -1); /* empty: nothing changes */
    ASSERT(!readable(fd));
    ASSERT_EQ(wp_select(rcv, 2, 1000000), -1); /* queued, timed out, unqueued */
    ASSERT(!readable(fd));
    wp_chan_destroy(other);
    wp_chan_destroy(c);
}

TEST(select_waiting_to_send_is_readable_until_received)
{
    wp_chan *c, *d;
    int fd, v = 0;
    ASSERT_OK(wp_chan_create(&c, sizeof(int), 0));
    ASSERT_OK(wp_chan_create(&d, sizeof(int), 0));
    ASSERT_OK(wp_chan_fd(c, &fd));
    struct op o = {.c = c, .d = d, .v = 11, .timeout_ns = WP_FOREVER};
    ASSERT_OK(pthread_create(&o.t, NULL, select_thread, &o));
    ASSERT(wait_readable(fd));
    ASSERT_OK(wp_chan_try_recv(c, &v));
    ASSERT_EQ(v, 11);
    ASSERT(!readable(fd));
    pthread_join(o.t, NULL);
    ASSERT_EQ(o.rc, 0);
    ASSERT(!readable(fd));
    wp_chan_destroy(d);
    wp_chan_destroy(c);
}

TEST(select_waiting_to_send_that_fires_elsewhere_turns_it_unreadable)
{
    wp_chan *c, *d;
    int fd, v = 1;
    ASSERT_OK(wp_chan_create(&c, sizeof(int), 0));
    ASSERT_OK(wp_chan_create(&d, sizeof(int), 0));
    ASSERT_OK(wp_chan_fd(c, &fd));
    struct op o = {.c = c, .d = d, .v = 11, .timeout_ns = WP_FOREVER};
    ASSERT_OK(pthread_create(&o.t, NULL, select_thread, &o));
    ASSERT(wait_readable(fd));
    ASSERT_OK(wp_chan_send(d, &v)); /* the select takes its receive case */
    pthread_join(o.t, NULL);
    ASSERT_EQ(o.rc, 1);
    ASSERT(!readable(fd)); /* its stale send on c is gone */
    ASSERT_ERR(wp_chan_try_recv(c, &v), EAGAIN);
    wp_chan_destroy(d);
    wp_chan_destroy(c);
}

TEST(select_waiting_to_send_that_times_out_turns_it_unreadable)
{
    wp_chan *c;
    int fd;
    ASSERT_OK(wp_chan_create(&c, sizeof(int), 0));
    ASSERT_OK(wp_chan_fd(c, &fd));
    struct op o = {.c = c, .v = 11, .timeout_ns = 500000000u};
    ASSERT_OK(pthread_create(&o.t, NULL, select_thread, &o));
    ASSERT(wait_readable(fd));
    pthread_join(o.t, NULL);
    ASSERT_EQ(o.rc, -1);
    ASSERT(!readable(fd));
    wp_chan_destroy(c);
}

TEST(select_sending_to_a_waiting_receiver_leaves_it_unreadable)
{
    wp_chan *c;
    int fd, v = 4;
    ASSERT_OK(wp_chan_create(&c, sizeof(int), 0));
    ASSERT_OK(wp_chan_fd(c, &fd));
    struct op o = {.c = c};
    ASSERT_OK(pthread_create(&o.t, NULL, recv_thread, &o));
    wait_queued(c, WP_RECV, 1);
    wp_select_case cs[1] = {{c, WP_SEND, &v, 0}};
    ASSERT_EQ(wp_select(cs, 1, WP_FOREVER), 0);
    ASSERT(!readable(fd));
    pthread_join(o.t, NULL);
    ASSERT_EQ(o.v, 4);
    wp_chan_destroy(c);
}

TEST(no_descriptors_left_is_emfile_and_changes_nothing)
{
    wp_chan *c;
    int fd = -7, v = 1;
    ASSERT_OK(wp_chan_create(&c, sizeof(int), 1));
    ASSERT_OK(wp_chan_send(c, &v));
    struct rlimit old;
    ASSERT_OK(getrlimit(RLIMIT_NOFILE, &old));
    int lowest = dup(0); /* the next descriptor the process would get */
    ASSERT_GE(lowest, 0);
    close(lowest);
    struct rlimit low = {(rlim_t)lowest, old.rlim_max};
    int r = EINVAL, limited = 0;
    if (setrlimit(RLIMIT_NOFILE, &low) == 0) {
        int probe = dup(0);
        if (probe < 0 && errno == EMFILE) {
            limited = 1;
            r = wp_chan_fd(c, &fd);
        }
        if (probe >= 0) close(probe);
        setrlimit(RLIMIT_NOFILE, &old);
    }
    if (!limited) {
        fprintf(stderr, "  (cannot lower RLIMIT_NOFILE here, e.g. valgrind: skipped)\n");
    } else {
        ASSERT_ERR(r, EMFILE);
        ASSERT_EQ(fd, -7);
    }
    ASSERT_OK(wp_chan_try_recv(c, &v)); /* the channel still works */
    ASSERT_OK(wp_chan_fd(c, &fd));
    ASSERT(!readable(fd));
    wp_chan_destroy(c);
}

/* --------------------------------------------------------------- races -- */

/* Senders racing with each other and with a loop that sleeps in poll:
   plain, timed and select sends (the select also names a channel nobody
   reads, so its sudogs go stale), and the last sender to finish sends -1. */
struct race {
    wp_chan *c, *never;
    unsigned per;
    atomic_int sent, finished;
};

#define RACE_SENDERS 3

static void *race_sender(void *arg)
{
    struct race *r = arg;
    int v = 1, sent = 0;
    for (unsigned i = 0; i < r->per; i++) {
        wp_select_case cs[2] = {{r->never, WP_SEND, &v, 0}, {r->c, WP_SEND, &v, 0}};
        switch (i % 3) {
        case 0:
            sent += wp_chan_send(r->c, &v) == 0;
            break;
        case 1:
            sent += wp_chan_send_timeout(r->c, &v, 1000) == 0;
            break;
        case 2:
            sent += wp_select(cs, 2, 1000) == 1;
            break;
        }
    }
    atomic_fetch_add(&r->sent, sent);
    if (atomic_fetch_add(&r->finished, 1) == RACE_SENDERS - 1) {
        v = -1; /* every other send has completed: this one comes last */
        EXPECT(wp_chan_send(r->c, &v) == 0);
    }
    return NULL;
}

TEST(racing_senders_never_leave_a_sleeping_loop_behind)
{
    for (size_t cap = 0; cap <= 4; cap += 4) {
        struct race r = {.per = test_iters(3000)};
        int fd, got = 0, done = 0, lost = 0;
        ASSERT_OK(wp_chan_create(&r.c, sizeof(int), cap));
        ASSERT_OK(wp_chan_create(&r.never, sizeof(int), 0));
        ASSERT_OK(wp_chan_fd(r.c, &fd));
        pthread_t t[RACE_SENDERS];
        for (int i = 0; i < RACE_SENDERS; i++)
            ASSERT_OK(pthread_create(&t[i], NULL, race_sender, &r));
        while (!done) {
            if (!wait_readable(fd)) { /* a lost wake-up: free the senders */
                lost = 1;
                wp_chan_close(r.c);
                break;
            }
            int v;
            while (wp_chan_try_recv(r.c, &v) == 0) {
                if (v < 0)
                    done = 1;
                else
                    got++;
            }
        }
        for (int i = 0; i < RACE_SENDERS; i++) pthread_join(t[i], NULL);
        ASSERT(!lost);
        ASSERT_EQ(got, atomic_load(&r.sent));
        ASSERT(!readable(fd)); /* drained, and no sender left waiting */
        wp_chan_destroy(r.never);
        wp_chan_destroy(r.c);
    }
}

/* ----------------------------------------------------- system calls -- */

/* This thread's read and write system calls so far; 0 if not known. The
   read of the file itself counts in the next snapshot, a constant the
   caller measures with two snapshots back to back. */
static int io_counts(uint64_t *reads, uint64_t *writes)
{
    char buf[512];
    int f = open("/proc/thread-self/io", O_RDONLY | O_CLOEXEC);
    if (f < 0) return 0;
    ssize_t n = read(f, buf, sizeof buf - 1);
    close(f);
    if (n <= 0) return 0;
    buf[n] = 0;
    const char *r = strstr(buf, "syscr: "), *w = strstr(buf, "syscw: ");
    if (!r || !w) return 0;
    *reads = strtoull(r + 7, NULL, 10);
    *writes = strtoull(w + 7, NULL, 10);
    return 1;
}

struct io_delta {
    uint64_t r0, w0, base_r, base_w;
};

static int io_begin(struct io_delta *d)
{
    uint64_t r1, w1;
    if (!io_counts(&d->r0, &d->w0) || !io_counts(&r1, &w1)) return 0;
    d->base_r = r1 - d->r0; /* what one snapshot itself costs */
    d->base_w = w1 - d->w0;
    d->r0 = r1;
    d->w0 = w1;
    return 1;
}

static void io_end(struct io_delta *d, uint64_t *reads, uint64_t *writes)
{
    uint64_t r1 = 0, w1 = 0;
    io_counts(&r1, &w1);
    *reads = r1 - d->r0 - d->base_r;
    *writes = w1 - d->w0 - d->base_w;
}

/* The loop: sleeps in poll, then drains with try_recv until EAGAIN, until
   it has n elements. */
struct loop {
    wp_chan *c;
    int fd, n, got, wakeups;
};

static void *loop_thread(void *arg)
{
    struct loop *l = arg;
    while (l->got < l->n) {
        if (!wait_readable(l->fd)) break;
        l->wakeups++;
        int v;
        while (wp_chan_try_recv(l->c, &v) == 0) l->got++;
    }
    return NULL;
}

TEST(a_send_into_a_drained_channel_costs_one_write)
{
    enum { N = 1000 };
    struct io_delta d;
    if (!io_begin(&d)) {
        fprintf(stderr, "  (/proc/thread-self/io not readable: skipped)\n");
        return;
    }
    uint64_t reads, writes;
    wp_chan *c;
    int fd;

    /* Without a descriptor: no read or write system call at all. */
    ASSERT_OK(wp_chan_create(&c, sizeof(int), N));
    io_begin(&d);
    for (int i = 0; i < N; i++) ASSERT_OK(wp_chan_send(c, &i));
    for (int i = 0; i < N; i++) ASSERT_OK(wp_chan_recv(c, NULL));
    io_end(&d, &reads, &writes);
    ASSERT_UEQ(reads, 0);
    ASSERT_UEQ(writes, 0);

    /* With one: N sends into the drained channel cost one write (the
       rising edge), N receives one read (the falling edge). */
    ASSERT_OK(wp_chan_fd(c, &fd));
    io_begin(&d);
    for (int i = 0; i < N; i++) ASSERT_OK(wp_chan_try_send(c, &i));
    io_end(&d, &reads, &writes);
    ASSERT_UEQ(writes, 1);
    ASSERT_UEQ(reads, 0);
    io_begin(&d);
    for (int i = 0; i < N; i++) ASSERT_OK(wp_chan_try_recv(c, NULL));
    ASSERT_ERR(wp_chan_try_recv(c, NULL), EAGAIN);
    io_end(&d, &reads, &writes);
    ASSERT_UEQ(writes, 0);
    ASSERT_UEQ(reads, 1);
    fprintf(stderr, "  %d sends into a drained channel: 1 write; %d receives: 1 read\n", N, N);

    /* A loop thread sleeping in poll: each send costs at most one write,
       whenever the loop happens to drain. */
    struct loop l = {.c = c, .fd = fd, .n = N};
    pthread_t t;
    ASSERT_OK(pthread_create(&t, NULL, loop_thread, &l));
    uint64_t total = 0, most = 0;
    for (int i = 0; i < N; i++) {
        io_begin(&d);
        EXPECT(wp_chan_send(c, &i) == 0);
        io_end(&d, &reads, &writes);
        total += writes;
        if (writes > most) most = writes;
    }
    pthread_join(t, NULL);
    ASSERT_EQ(l.got, N);
    ASSERT_UEQ(most, 1);
    ASSERT_GE(total, 1);
    fprintf(stderr, "  %d sends to a polling loop: %" PRIu64 " writes, %d loop wake-ups\n", N,
            total, l.wakeups);
    ASSERT(!readable(fd));
    wp_chan_destroy(c);
}

TEST_MAIN()
