/*
 * The seed program, in C: Go's worker-pool example with wpool.
 *
 *   jobs := make(chan int, 100); results := make(chan result, 100)
 *   for w := 1; w <= 5; w++ { go worker(jobs, results) }
 *   for j := 1; j <= 100; j++ { jobs <- j }; close(jobs)
 *   for a := 1; a <= 100; a++ { <-results }
 *
 * Each worker ranges over jobs (recv until EPIPE: closed and drained) and
 * sends the SHA-256 of the job number's decimal text to results. The five
 * worker loops run as tasks on a pool of five threads. The digest is fetched
 * once; each worker has its own EVP_MD_CTX.
 */
#include <wpool.h>

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

enum { JOBS = 100, WORKERS = 5 };

struct result {
    int job;
    unsigned char digest[32];
};

static wp_chan *jobs, *results;
static EVP_MD *sha256;

static void worker(void *arg)
{
    (void)arg;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int j;
    while (wp_chan_recv(jobs, &j) == 0) { /* for j := range jobs */
        struct result r = {.job = j};
        char text[16];
        int n = snprintf(text, sizeof text, "%d", j);
        EVP_DigestInit_ex(ctx, sha256, NULL);
        EVP_DigestUpdate(ctx, text, (size_t)n);
        EVP_DigestFinal_ex(ctx, r.digest, NULL);
        wp_chan_send(results, &r);
    }
    EVP_MD_CTX_free(ctx);
}

int main(void)
{
    wp_pool *pool;
    wp_config cfg;
    wp_config_init(&cfg);
    cfg.workers = WORKERS;
    sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!sha256 || wp_chan_create(&jobs, sizeof(int), JOBS) ||
        wp_chan_create(&results, sizeof(struct result), JOBS) || wp_pool_create(&pool, &cfg)) {
        fprintf(stderr, "seed: setup failed\n");
        return 1;
    }
    for (int w = 0; w < WORKERS; w++) wp_submit(pool, worker, NULL);

    for (int j = 1; j <= JOBS; j++) wp_chan_send(jobs, &j);
    wp_chan_close(jobs);

    int seen[JOBS + 1] = {0}, ok = 1;
    for (int a = 0; a < JOBS; a++) {
        struct result r;
        wp_chan_recv(results, &r);
        ok &= r.job >= 1 && r.job <= JOBS && !seen[r.job]++;
        if (r.job == 1 || r.job == JOBS) {
            printf("sha256(\"%d\") = ", r.job);
            for (int i = 0; i < 32; i++) printf("%02x", r.digest[i]);
            printf("\n");
        }
    }
    printf("%d results from %d workers: %s\n", JOBS, WORKERS, ok ? "each job once" : "WRONG");

    wp_pool_destroy(pool); /* the worker loops have returned: jobs is closed */
    wp_chan_destroy(jobs);
    wp_chan_destroy(results);
    EVP_MD_free(sha256);
    return ok ? 0 : 1;
}
