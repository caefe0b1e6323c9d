/*
 * mergesort: a recursive parallel merge sort with groups.
 *
 * sort() splits its range in two, hands the left half to the pool as the
 * member of a new group (wp_group_go), sorts the right half itself, waits
 * for the group and merges. The recursion runs inside pool tasks: a
 * wp_group_wait on a worker runs queued tasks while it waits, so the nesting
 * never deadlocks, however deep and whatever the number of workers. Ranges
 * of CUTOFF elements or fewer are sorted on one thread.
 */
#include <wpool.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { CUTOFF = 8192 };

typedef struct range {
    wp_pool *pool;
    int *a, *tmp; /* the elements, and as much scratch space */
    size_t n;
} range;

/* Merges the sorted a[0, mid) and a[mid, n) through tmp. */
static void merge(int *a, int *tmp, size_t mid, size_t n)
{
    size_t i = 0, j = mid, k = 0;
    while (i < mid && j < n) tmp[k++] = a[j] < a[i] ? a[j++] : a[i++];
    while (i < mid) tmp[k++] = a[i++];
    memcpy(a, tmp, k * sizeof *a); /* what is left of the right half is in place */
}

static void sort_serial(int *a, int *tmp, size_t n)
{
    if (n < 2) return;
    sort_serial(a, tmp, n / 2);
    sort_serial(a + n / 2, tmp + n / 2, n - n / 2);
    merge(a, tmp, n / 2, n);
}

static int sort(void *arg)
{
    range *r = arg;
    if (r->n <= CUTOFF) {
        sort_serial(r->a, r->tmp, r->n);
        return 0;
    }
    size_t half = r->n / 2;
    range left = {r->pool, r->a, r->tmp, half};
    range right = {r->pool, r->a + half, r->tmp + half, r->n - half};
    wp_group *g;
    int err = wp_group_create(&g, r->pool, 1); /* one member: one place is enough */
    if (err) return err;
    err = wp_group_go(g, sort, &left); /* the left half on the pool */
    int right_err = sort(&right);      /* the right half here */
    int left_err = wp_group_wait(g);   /* runs queued halves while it waits */
    wp_group_destroy(g);
    if (err == 0) err = left_err;
    if (err == 0) err = right_err;
    if (err) return err;
    merge(r->a, r->tmp, half, r->n);
    return 0;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int sorted(const int *a, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (a[i - 1] > a[i]) return 0;
    return 1;
}

int main(void)
{
    size_t n = getenv("WPOOL_TEST_SMALL") ? 1u << 17 : 1u << 21; /* smaller under valgrind */
    int *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *tmp = malloc(n * sizeof *tmp);
    wp_pool *pool = NULL;
    if (!a || !b || !tmp || wp_pool_create(&pool, NULL) != 0) {
        fprintf(stderr, "mergesort: out of memory\n");
        return 1;
    }
    unsigned x = 2463534242u; /* xorshift32: the same numbers every run */
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        a[i] = b[i] = (int)(x >> 1);
    }

    double t0 = now_ms();
    range all = {pool, a, tmp, n};
    int err = sort(&all);
    double t1 = now_ms();
    sort_serial(b, tmp, n);
    double t2 = now_ms();

    int ok = err == 0 && sorted(a, n) && memcmp(a, b, n * sizeof *a) == 0;
    printf("%zu ints: %.1f ms on %u workers, %.1f ms on one thread (%.2fx): %s\n", n, t1 - t0,
           wp_pool_workers(pool), t2 - t1, (t2 - t1) / (t1 - t0), ok ? "sorted" : "NOT SORTED");
    wp_pool_destroy(pool);
    free(a);
    free(b);
    free(tmp);
    return ok ? 0 : 1;
}
