/*
 * White-box helpers shared by the channel and select tests (they may look
 * inside src/chan.h, only to know that a thread really blocks).
 */
#ifndef WPOOL_TEST_CHAN_HELPERS_H
#define WPOOL_TEST_CHAN_HELPERS_H

#include "chan.h"
#include "helpers.h"

/* Live operations waiting on c: queued, or in an unbuffered channel's
   fast waiter. */
static inline size_t queued(wp_chan *c, int op)
{
    size_t n = 0;
    wp__chan_lock(c);
    n += atomic_load(&c->fast_op) == 1 + op && atomic_load(&c->fast.done) == 0;
    for (struct wp__chan_sudog *s = op == WP_SEND ? c->sendq.first : c->recvq.first; s; s = s->next)
        n += atomic_load(&s->w->done) == 0;
    wp__chan_unlock(c);
    return n;
}

/* Waits until at least n operations of kind op are queued on c. */
static inline void wait_queued(wp_chan *c, int op, size_t n)
{
    while (queued(c, op) < n) test_sleep_ms(1);
}

#endif
