/*
 * errgroup: fan out requests, at most LIMIT at once, stop at the first error.
 *
 * Go's errgroup with SetLimit, in C. REQUESTS simulated requests (each a few
 * short sleeps) go to a pool as members of one group. wp_group_go blocks
 * while LIMIT of them are in flight, so the pool's eight workers never run
 * more than LIMIT requests at once. Request FAILING fails: that cancels the
 * group, so the requests not started yet are skipped, the running ones see
 * wp_group_cancelled and stop early, wp_group_go says ECANCELED, and
 * wp_group_wait returns the first error.
 */
#include <wpool.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum { REQUESTS = 40, LIMIT = 4, FAILING = 17 };

typedef struct request {
    int id;
    wp_group *group;
    int completed; /* written by the member, read after wp_group_wait */
} request;

static atomic_int in_flight, most_in_flight;

static void sleep_ms(long ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* One request: five steps of 2 ms, giving up early once the group is cancelled. */
static int fetch(void *arg)
{
    request *r = arg;
    int now = atomic_fetch_add(&in_flight, 1) + 1;
    int most = atomic_load(&most_in_flight);
    while (now > most && !atomic_compare_exchange_weak(&most_in_flight, &most, now)) {
    }
    int rc = 0;
    for (int step = 0; step < 5 && !wp_group_cancelled(r->group); step++) sleep_ms(2);
    if (r->id == FAILING)
        rc = EIO; /* this one's server is down */
    else if (!wp_group_cancelled(r->group))
        r->completed = 1;
    atomic_fetch_sub(&in_flight, 1);
    return rc;
}

int main(void)
{
    wp_config cfg;
    wp_config_init(&cfg);
    cfg.workers = 8;
    wp_pool *pool;
    wp_group *group;
    if (wp_pool_create(&pool, &cfg) != 0 || wp_group_create(&group, pool, LIMIT) != 0) {
        fprintf(stderr, "errgroup: cannot create the pool or the group\n");
        return 1;
    }

    request reqs[REQUESTS];
    int started = 0;
    for (int i = 0; i < REQUESTS; i++) {
        reqs[i] = (request){i, group, 0};
        int rc = wp_group_go(group, fetch, &reqs[i]); /* blocks while LIMIT are in flight */
        if (rc == ECANCELED) break;                   /* a request failed: stop sending */
        started++;
    }
    int err = wp_group_wait(group);

    int completed = 0;
    for (int i = 0; i < started; i++) completed += reqs[i].completed;
    printf("sent %d of %d requests before the failure stopped us\n", started, REQUESTS);
    printf("%d completed, at most %d at once (limit %d)\n", completed, atomic_load(&most_in_flight),
           LIMIT);
    printf("wp_group_wait: %s\n", strerror(err));

    wp_group_destroy(group);
    wp_pool_destroy(pool);
    return err == EIO && atomic_load(&most_in_flight) <= LIMIT ? 0 : 1;
}
