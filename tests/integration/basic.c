/*
 * Integration: the installed header and the shared library only, as a user
 * program sees them. The seed's shape: submit jobs, wait, read results.
 */
#include <wpool.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#define JOBS 10000

static unsigned long results[JOBS];

static void job(void *arg)
{
    size_t n = (size_t)(uintptr_t)arg;
    unsigned long h = 1469598103934665603ul;
    for (int i = 0; i < 64; i++) h = (h ^ (n + (size_t)i)) * 1099511628211ul;
    results[n] = h | 1;
}

int main(void)
{
    wp_pool *pool;
    int rc = wp_pool_create(&pool, NULL);
    if (rc) {
        fprintf(stderr, "wp_pool_create: %d\n", rc);
        return 1;
    }
    for (size_t n = 0; n < JOBS; n++)
        if ((rc = wp_submit(pool, job, (void *)(uintptr_t)n)) != 0) return 2;
    if (wp_wait(pool) != 0) return 3;
    for (size_t n = 0; n < JOBS; n++)
        if (results[n] == 0) return 4;
    wp_stats st;
    wp_pool_stats(pool, &st);
    if (st.completed != JOBS || st.submitted != JOBS) return 5;
    if (wp_pool_shutdown(pool, WP_DRAIN) != 0) return 6;
    if (wp_submit(pool, job, NULL) != EPIPE) return 7;
    wp_pool_destroy(pool);
    printf("1 passed, 0 failed\n");
    return 0;
}
