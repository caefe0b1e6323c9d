/* Built against an installed wpool, through pkg-config and find_package. */
#include <wpool.h>

#include <stdatomic.h>
#include <stdio.h>

static atomic_int done;

static void task(void *arg)
{
    (void)arg;
    atomic_fetch_add(&done, 1);
}

int main(void)
{
    wp_pool *p;
    if (wp_pool_create(&p, NULL) != 0) return 1;
    for (int i = 0; i < 1000; i++)
        if (wp_submit(p, task, NULL) != 0) return 2;
    if (wp_wait(p) != 0 || atomic_load(&done) != 1000) return 3;
    wp_pool_destroy(p);
    printf("consumer: 1000 tasks on %u CPUs\n", wp_cpu_count());
    return 0;
}
