/* bench_membw.c: how fast this machine streams memory into the cores, the ceiling of decode.
 *
 * Reads a buffer much larger than the caches (512 MiB, huge pages requested) with 1 and with N
 * threads (default: all CPUs), 64-byte vector loads, each thread over its own slice read as S
 * interleaved streams (S = 1 and 16: more streams let the hardware keep more requests in
 * flight). Prints the best of 5 passes per setting in GB/s. Decode of a memory-bound model can
 * go at most at this rate: tokens/s <= GB/s / weight bytes read per token.
 *
 *   bench_membw [THREADS]   */
#define _GNU_SOURCE
#include "bench_read.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define BUF_BYTES ((size_t)512 << 20)

struct job {
    const uint8_t *base;
    size_t bytes;
    int streams;
    uint64_t sum;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *run(void *p)
{
    struct job *j = p;
    j->sum = bench_read_streams(j->base, j->bytes, j->streams);
    return NULL;
}

static double measure(const uint8_t *buf, int n_threads, int streams)
{
    double best = 0;
    for (int pass = 0; pass < 5; pass++) {
        pthread_t th[256];
        struct job jobs[256];
        const size_t per = BUF_BYTES / (size_t)n_threads & ~(size_t)4095;
        const double t0 = now_s();
        for (int i = 0; i < n_threads; i++) {
            jobs[i] = (struct job){buf + (size_t)i * per, per, streams, 0};
            pthread_create(&th[i], NULL, run, &jobs[i]);
        }
        uint64_t sink = 0;
        for (int i = 0; i < n_threads; i++) {
            pthread_join(th[i], NULL);
            sink += jobs[i].sum;
        }
        const double gbs = (double)per * n_threads / (now_s() - t0) / 1e9;
        if (gbs > best && sink != 1)
            best = gbs;
    }
    return best;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1 || n > 256)
        n = 1;
    uint8_t *buf = aligned_alloc(2u << 20, BUF_BYTES);
    if (!buf) {
        fprintf(stderr, "bench_membw: out of memory\n");
        return 1;
    }
    madvise(buf, BUF_BYTES, MADV_HUGEPAGE);
    memset(buf, 1, BUF_BYTES);
    printf("threads streams  read GB/s (best of 5, %zu MiB)\n", BUF_BYTES >> 20);
    const int streams[] = {1, 16};
    for (int t = 1; t <= n; t = t == n ? n + 1 : (t * 2 > n ? n : t * 2))
        for (int s = 0; s < 2; s++)
            printf("%7d %7d  %9.1f\n", t, streams[s], measure(buf, t, streams[s]));
    free(buf);
    return 0;
}
