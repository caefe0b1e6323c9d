/* Built against an installed wpool-redis, through pkg-config and
   find_package. Needs no server: a malformed url fails before connecting. */
#include <wpool_redis.h>

#include <errno.h>
#include <stdio.h>

int main(void)
{
    wp_redis_config cfg;
    wp_redis_config_init(&cfg);
    cfg.url = "http://not-redis";
    cfg.stream = "jobs";
    wp_redis *q = NULL;
    if (wp_redis_open(&q, &cfg) != EINVAL || q != NULL) return 1;
    if (wp_redis_address(NULL)[0] != '\0') return 2;
    printf("redis consumer: malformed url refused, on %u CPUs\n", wp_cpu_count());
    return 0;
}
