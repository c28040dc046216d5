/* bench_stream.c: how close the decode kernels come to the memory ceiling, measured in one
 * process so that the host's bandwidth swings hit both sides alike.
 *
 * For each weight type (default: f16 q8_0 q4_k), a ~384 MiB matrix of dim-1024 rows (far larger
 * than the caches) is multiplied by one activation row with N threads (default 2), each thread
 * taking half of the rows in one call of the kernel the CPU backend uses for decode (F16/F32:
 * the table's gemv; x16 types: quant_x16_gemm with one column). Between kernel passes the same
 * threads read the same buffer with plain 64-byte loads, 16 interleaved streams each (as
 * bench_membw). Passes alternate; the figures are the median and best GB/s of each side and
 * the median over the pairs (each kernel pass against the plain pass just before it, so that
 * slow drifts of the host cancel) of kernel / plain: the share of the memory ceiling the kernel
 * itself reaches, before any forward-pass overhead.
 *
 *   bench_stream [THREADS] [TYPE...]   */
#define _GNU_SOURCE
#include "bench_read.h"
#include "cinder/tensor.h"
#include "cinder/quant.h"
#include "cinder/quant_x16.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define N_IN         1024
#define TARGET_BYTES ((size_t)384 << 20)
#define PASSES       9

struct matrix {
    enum cnd_dtype type;
    bool x16;
    const struct quant_kernels *k;
    uint8_t *w; /* weights, plain rows or x16 groups */
    size_t bytes;
    int64_t n_rows;
    size_t row_bytes;
    uint8_t *act; /* the activation row in the kernel's format */
    int32_t *aux; /* x16 side data */
    float *out;
};

struct job {
    const struct matrix *m;
    int index, n_threads;
    bool plain;
    uint64_t sink;
    pthread_barrier_t *start;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* this thread's share: whole 16-row groups */
static void share(const struct matrix *m, int index, int n, int64_t *r0, int64_t *r1)
{
    const int64_t ng = m->n_rows / 16;
    *r0 = 16 * (ng * index / n);
    *r1 = 16 * (ng * (index + 1) / n);
}

static void *run(void *p)
{
    struct job *j = p;
    const struct matrix *m = j->m;
    int64_t r0, r1;
    share(m, j->index, j->n_threads, &r0, &r1);
    pthread_barrier_wait(j->start);
    if (j->plain) {
        j->sink = bench_read_streams(m->w + (size_t)r0 * m->row_bytes,
                                     (size_t)(r1 - r0) * m->row_bytes, 16);
    } else if (m->x16) {
        quant_x16_gemm(m->type, N_IN, m->n_rows, m->w, r0 / 16, r1 / 16, m->act, 0, m->aux, 1,
                       m->out, (size_t)m->n_rows);
    } else if (m->k->gemv) {
        m->k->gemv(N_IN, m->w + (size_t)r0 * m->row_bytes, m->row_bytes, r1 - r0, m->act,
                   m->out + r0);
    } else {
        m->k->gemm(N_IN, m->w + (size_t)r0 * m->row_bytes, m->row_bytes, r1 - r0, m->act, 0, 1,
                   m->out + r0, 1, 0);
    }
    return NULL;
}

static double pass(const struct matrix *m, int n_threads, bool plain)
{
    pthread_t th[64];
    struct job jobs[64];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)n_threads + 1);
    for (int i = 0; i < n_threads; i++) {
        jobs[i] = (struct job){m, i, n_threads, plain, 0, &start};
        pthread_create(&th[i], NULL, run, &jobs[i]);
    }
    pthread_barrier_wait(&start);
    const double t0 = now_s();
    for (int i = 0; i < n_threads; i++)
        pthread_join(th[i], NULL);
    const double dt = now_s() - t0;
    pthread_barrier_destroy(&start);
    int64_t r0, r1;
    share(m, n_threads - 1, n_threads, &r0, &r1);
    return (double)r1 * (double)m->row_bytes / dt / 1e9;
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float rnd_unit(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)(rng >> 40) / (float)(1u << 24) * 2.0f - 1.0f;
}

static int matrix_init(struct matrix *m, enum cnd_dtype t)
{
    memset(m, 0, sizeof(*m));
    m->type = t;
    m->k = quant_get_kernels(t, quant_simd_detect());
    if (!m->k)
        return -1;
    m->x16 = quant_x16_supported(t);
    const size_t plain_row = dtype_row_size(t, N_IN);
    m->n_rows = (int64_t)(TARGET_BYTES / plain_row) & ~(int64_t)15;
    m->bytes = m->x16 ? quant_x16_size(t, N_IN, m->n_rows) : plain_row * (size_t)m->n_rows;
    m->row_bytes = m->bytes / (size_t)m->n_rows;
    if (posix_memalign((void **)&m->w, 2u << 20, m->bytes) != 0)
        return -1;
    madvise(m->w, m->bytes, MADV_HUGEPAGE);
    /* random rows, quantized by the reference quantizer: 16 at a time, packed where x16 */
    float x[16 * N_IN];
    uint8_t *rows = malloc(16 * plain_row);
    for (int64_t g = 0; g < m->n_rows / 16; g++) {
        for (int i = 0; i < 16 * N_IN; i++)
            x[i] = rnd_unit();
        for (int r = 0; r < 16; r++)
            quant_quantize_weights(t, x + r * N_IN, rows + (size_t)r * plain_row, N_IN);
        if (m->x16)
            quant_x16_pack(t, N_IN, 16, rows, plain_row, 0, 1,
                           m->w + (size_t)g * quant_x16_size(t, N_IN, 16));
        else
            memcpy(m->w + (size_t)g * 16 * plain_row, rows, 16 * plain_row);
    }
    free(rows);
    for (int i = 0; i < N_IN; i++)
        x[i] = rnd_unit();
    m->act = malloc(dtype_row_size(m->k->vec_dot_type, N_IN) + 64);
    m->k->quantize_act(x, m->act, N_IN);
    if (m->x16) {
        m->aux = malloc(quant_x16_aux_words(t, N_IN) * sizeof(int32_t));
        quant_x16_prepare(t, N_IN, m->act, 0, 0, 1, m->aux);
    }
    m->out = malloc((size_t)m->n_rows * sizeof(float));
    return 0;
}

static void matrix_deinit(struct matrix *m)
{
    free(m->w);
    free(m->act);
    free(m->aux);
    free(m->out);
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int n_threads = argc > 1 ? atoi(argv[1]) : 2;
    if (n_threads < 1 || n_threads > 64)
        n_threads = 2;
    const char *def[] = {"f16", "q8_0", "q4_k"};
    const char *const *names = argc > 2 ? (const char *const *)argv + 2 : def;
    const int n_names = argc > 2 ? argc - 2 : 3;
    printf("type   kernel        threads  plain GB/s med (best)  kernel GB/s med (best)  "
           "kernel/plain\n");
    for (int i = 0; i < n_names; i++) {
        enum cnd_dtype t;
        if (dtype_from_name(names[i], &t) != 0) {
            fprintf(stderr, "bench_stream: unknown type %s\n", names[i]);
            return 1;
        }
        struct matrix m;
        if (matrix_init(&m, t) != 0) {
            fprintf(stderr, "bench_stream: cannot set up %s\n", names[i]);
            return 1;
        }
        double plain[PASSES], kern[PASSES], ratio[PASSES];
        pass(&m, n_threads, true); /* warm-up: page the buffer in */
        pass(&m, n_threads, false);
        for (int p = 0; p < PASSES; p++) {
            plain[p] = pass(&m, n_threads, true);
            kern[p] = pass(&m, n_threads, false);
            ratio[p] = kern[p] / plain[p];
        }
        qsort(ratio, PASSES, sizeof(double), cmp_double);
        qsort(plain, PASSES, sizeof(double), cmp_double);
        qsort(kern, PASSES, sizeof(double), cmp_double);
        printf("%-6s %-13s %7d  %9.1f (%5.1f)        %9.1f (%5.1f)         %5.1f%%\n", names[i],
               m.x16 ? "x16" : (m.k->gemv ? "gemv" : "gemm"), n_threads, plain[PASSES / 2],
               plain[PASSES - 1], kern[PASSES / 2], kern[PASSES - 1], 100.0 * ratio[PASSES / 2]);
        matrix_deinit(&m);
    }
    return 0;
}
