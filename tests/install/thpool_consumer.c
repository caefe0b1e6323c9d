/* Built against an installed wpool-thpool through pkg-config. */
#include <thpool.h>

#include <stdatomic.h>
#include <stdio.h>

static atomic_int done;

static void job(void *arg)
{
    (void)arg;
    atomic_fetch_add(&done, 1);
}

int main(void)
{
    threadpool tp = thpool_init(2);
    if (!tp) return 1;
    for (int i = 0; i < 100; i++)
        if (thpool_add_work(tp, job, NULL) != 0) return 2;
    thpool_wait(tp);
    thpool_destroy(tp);
    if (atomic_load(&done) != 100) return 3;
    printf("thpool consumer: 100 jobs\n");
    return 0;
}
