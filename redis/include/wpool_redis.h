/*
 * wpool-redis: a job queue shared by processes on many machines, on Redis
 * Streams consumer groups (Redis 6.2 or later), with a wpool on every
 * machine running the handlers.
 *
 *   producer:  wp_redis_open -> wp_redis_push / wp_redis_push_batch
 *   consumer:  wp_redis_open -> wp_redis_serve(q, pool, handler, user)
 *              (until wp_redis_stop, from any thread or a signal handler)
 *
 * Guarantees:
 *   - At least once, nothing lost. An entry is acknowledged (XACK) only after
 *     its handler returned 0. A consumer that dies (kill -9, power) leaves its
 *     entries pending in the group; a live consumer takes them over once they
 *     have been idle visibility_ns (XAUTOCLAIM), and the handler's `delivery`
 *     says how often the entry was handed out (1 the first time). A live
 *     consumer renews the lease of the entries it holds and has not finished
 *     (XCLAIM JUSTID, every quarter of visibility_ns), so a slow handler or
 *     a prefetched entry is not taken from it. A failed
 *     entry (handler returned nonzero) stays pending and is delivered again
 *     once visibility_ns has passed since its last delivery; when it fails on
 *     its max_deliveries-th delivery it moves to the stream "<stream>:dead"
 *     and is acknowledged where it was. Handlers must therefore be
 *     idempotent.
 *   - Backpressure across the network. wp_redis_serve fetches (XREADGROUP
 *     COUNT) only as many entries as the pool has free workers, plus
 *     `prefetch`: a consumer never holds more than workers + prefetch
 *     unacknowledged entries, so a slow machine takes less work than a fast
 *     one.
 *   - Stop and reconnect. wp_redis_stop makes serve stop fetching, wait for
 *     the handlers it started, acknowledge them and return 0. A lost
 *     connection is retried with backoff (counted in `reconnects`); serve
 *     returns an error only for what retrying cannot mend (a wrong password,
 *     a key of the wrong type).
 *
 * Layout in Redis (all under the stream's key):
 *   <stream>        the stream; each entry has one field, "data", holding the
 *                   bytes pushed (a consumer takes the first field's value,
 *                   whatever its name, so entries added by other tools work)
 *   group           the consumer group, made at open (XGROUP CREATE <stream>
 *                   <group> 0 MKSTREAM) when missing, so entries pushed
 *                   before any consumer started are served too
 *   <stream>:dead   the dead-letter stream; each entry has the fields
 *                   "id" (the entry's id in <stream>), "deliveries" (how often
 *                   it was handed out), "result" (the handler's last return
 *                   value in decimal, or "none" when no handler ever returned:
 *                   its consumers died every time) and "data"
 *
 * Errors: like the rest of wpool, 0 or an errno value from <errno.h>; on
 * error nothing is changed unless the comment says otherwise, and the
 * library never aborts, prints or exits.
 *   EINVAL        NULL arguments, a malformed url, no stream
 *   ECONNREFUSED, EHOSTUNREACH, ETIMEDOUT, ECONNRESET
 *                 cannot reach the server (refused, no route or name, no
 *                 answer within timeout_ns, connection lost)
 *   EACCES        authentication refused (wrong or missing password)
 *   EPROTO        the server answered with an error (e.g. the key holds a
 *                 string, not a stream)
 *   EMSGSIZE      data over WP_REDIS_MAX_DATA bytes (512 MiB)
 *   EPIPE         after wp_redis_stop or wp_redis_close
 *   ENOMEM        out of memory
 *
 * Secrets: a password in the url is never printed, logged or put in an error
 * message; addresses are shown as redis://host:port/db (wp_redis_address).
 *
 * Thread-safety: wp_redis_push, wp_redis_push_batch, wp_redis_requeue_dead,
 * wp_redis_get_stats and wp_redis_stop may be called from any thread
 * (pushes share one connection, one at a time); wp_redis_serve runs on one
 * thread at a time per handle (a second concurrent call returns EBUSY).
 * wp_redis_stop is async-signal-safe.
 *
 * Signals: a connection the server closed would raise SIGPIPE on a write;
 * every call that may write blocks SIGPIPE on its own thread meanwhile and
 * takes back the one it caused, so the application's disposition is never
 * changed and no SIGPIPE reaches it from here. serve's internal thread
 * blocks all signals (they go to the application's threads).
 *
 * Link: pkg-config --cflags --libs wpool-redis (libwpool-redis, libwpool,
 * hiredis).
 */
#ifndef WPOOL_REDIS_H
#define WPOOL_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include <wpool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wp_redis wp_redis;

typedef struct wp_redis_config {
    /* "redis://[[user]:password@]host[:port][/db]" (host may be an IPv6
       address in brackets; the password may be %-encoded) or
       "unix:///path/to/socket"; NULL: redis://127.0.0.1:6379 (db 0). */
    const char *url;
    const char *stream;      /* the stream's key; required */
    const char *group;       /* consumer group; NULL: "wpool"; made (MKSTREAM) if missing */
    const char *consumer;    /* this consumer's name; NULL: "<hostname>-<pid>" (at open) */
    unsigned prefetch;       /* entries fetched beyond the pool's free workers; 0: none */
    uint64_t visibility_ns;  /* unacknowledged this long: another consumer may take it; 0: 30 s */
    unsigned max_deliveries; /* failed this often: moved to "<stream>:dead"; 0: 5 */
    uint64_t max_len;        /* approximate cap on the stream's length at push
                                (XADD MAXLEN ~); 0: none. Entries trimmed away
                                before a consumer fetched them are gone: keep it
                                well above the backlog. */
    uint64_t timeout_ns;     /* connect and command timeout; 0: 5 s */
} wp_redis_config;

#define WP_REDIS_ID_MAX   48                     /* an entry id, "1700000000000-0", with its NUL */
#define WP_REDIS_MAX_DATA (512u * 1024u * 1024u) /* most bytes in one entry (Redis' bulk limit) */

/* Handles one entry on a worker of the pool; 0: done (it is acknowledged),
   nonzero: failed (delivered again later; dead after max_deliveries). data
   is the entry's bytes (len of them, followed by a NUL that is not counted,
   so text can be used as a string) and is valid only during the call; id is
   the entry's stream id. delivery is 1 the first time. Handlers must be
   idempotent: delivery is at least once. */
typedef int (*wp_redis_fn)(const void *data, size_t len, const char *id, unsigned delivery,
                           void *user);

/* Counters of one handle since open, each only growing. */
typedef struct wp_redis_stats {
    uint64_t pushed;     /* entries added by push / push_batch */
    uint64_t fetched;    /* new entries read by serve (XREADGROUP) */
    uint64_t acked;      /* entries acknowledged after their handler returned 0 */
    uint64_t failed;     /* handler runs that returned nonzero */
    uint64_t reclaimed;  /* entries taken over after visibility_ns (XAUTOCLAIM) */
    uint64_t dead;       /* entries moved to <stream>:dead */
    uint64_t reconnects; /* connections re-established after one was lost */
} wp_redis_stats;

/* Fills *cfg with the defaults (all zero / NULL). */
WP_EXTERN void wp_redis_config_init(wp_redis_config *cfg);

/* Connects (AUTH and SELECT as the url says), and makes the consumer group
   (and the stream) if missing. cfg's strings are copied. *out is set only on
   success. EINVAL: out or cfg NULL, no stream, an empty group or consumer
   name, a malformed url. ECONNREFUSED / EHOSTUNREACH / ETIMEDOUT /
   ECONNRESET: cannot reach the server. EACCES: authentication refused.
   EPROTO: the server refused a command (the key holds something other than
   a stream, the db does not exist). ENOMEM. */
WP_EXTERN int wp_redis_open(wp_redis **out, const wp_redis_config *cfg);

/* Adds one entry holding data[0..len) (binary-safe; len 0 is allowed) and,
   when id is not NULL, writes its stream id there. Sent and answered before
   returning. A push whose connection was lost reconnects once and sends
   again, so an entry may (rarely) be added twice: at least once, as for
   delivery. EINVAL: q NULL, or data NULL with len > 0. EMSGSIZE: len over
   WP_REDIS_MAX_DATA (nothing is sent). EPROTO: the key is not a stream.
   EPIPE: after stop. Connection errors as for open. */
WP_EXTERN int wp_redis_push(wp_redis *q, const void *data, size_t len, char id[WP_REDIS_ID_MAX]);

/* Adds n entries, data[i][0..len[i]), pipelined (all sent, then all answers
   read, in chunks), in order. Every argument is checked before anything is
   sent: EINVAL (q, data or len NULL with n > 0, or a data[i] NULL with
   len[i] > 0) and EMSGSIZE (a len[i] over the limit) add nothing. On a
   server or connection error the entries before the failing one may have
   been added. n 0 returns 0. */
WP_EXTERN int wp_redis_push_batch(wp_redis *q, const void *const *data, const size_t *len,
                                  size_t n);

/* Serves the stream on pool until wp_redis_stop: fetches entries (at most
   the pool's workers + prefetch unacknowledged at any time), runs fn on a
   worker for each, acknowledges successes in batches, redelivers failures,
   moves entries that failed max_deliveries times to <stream>:dead, and takes
   over entries left idle visibility_ns by other consumers. Uses two
   connections of its own and one internal thread (acknowledgements), made
   here and gone when it returns. Returns 0 after wp_redis_stop, once every
   handler it started has returned and their results are acknowledged
   (entries that failed stay pending for a later delivery). Lost connections
   are retried with backoff, counted in reconnects. Errors (after the
   started handlers returned): EINVAL (q, pool or fn NULL), EBUSY (serve is
   already running on q), EPIPE (called after stop or close, or pool was shut
   down), EACCES (the password stopped working), EPROTO (the key stopped
   being a stream), ENOMEM; a connection error only when the results of
   finished handlers could not be acknowledged within timeout_ns after a
   stop (they stay pending and will be delivered again). */
WP_EXTERN int wp_redis_serve(wp_redis *q, wp_pool *pool, wp_redis_fn fn, void *user);

/* Makes wp_redis_serve stop fetching and return (see there); afterwards
   serve, push, push_batch and requeue_dead return EPIPE. Async-signal-safe
   (one atomic store); serve notices it within 100 ms. NULL is ignored. */
WP_EXTERN void wp_redis_stop(wp_redis *q);

/* Moves up to max entries of <stream>:dead back into the stream, oldest
   first, each as a new entry (delivery starts at 1 again) holding its data
   (dead entries without a "data" field are left alone). Each is added to
   the stream before it is deleted from the dead one (XADD, then XDEL once
   that was answered), so none is ever lost; a connection lost in between
   may leave one in both. *moved (may be NULL) gets how many moved, also on
   error.
   EINVAL: q NULL. EPIPE: after stop. Connection and server errors as for
   push. */
WP_EXTERN int wp_redis_requeue_dead(wp_redis *q, size_t max, size_t *moved);

/* Copies the handle's counters into *out (a consistent-enough snapshot:
   each counter is read atomically). NULL arguments are ignored. */
WP_EXTERN void wp_redis_get_stats(wp_redis *q, wp_redis_stats *out);

/* The server's address as redis://host:port/db (or unix:///path), never
   with the password, e.g. for error messages; "" for NULL. Valid until
   wp_redis_close. */
WP_EXTERN const char *wp_redis_address(const wp_redis *q);

/* Stops a serve in progress (it returns EPIPE), waits until it and any push
   in progress have returned, closes the connections and frees the handle.
   NULL is ignored. Must not be called from a handler of q's serve. */
WP_EXTERN void wp_redis_close(wp_redis *q);

#ifdef __cplusplus
}
#endif

#endif
