/* bench_quant.c: single-thread throughput of the weight kernels, one line per type.
 *   gemv GB/s : weight bytes streamed per second over a ~64 MB matrix x 1 column (decode):
 *               one gemm call where the table has gemm, else vec_dot row by row;
 *   dot GOP/s : vec_dot over a 1 MB matrix x 16 activation rows (cache resident);
 *   tile GOP/s: gemm over the same problem where present, else vec_dot_tile 4x4 (prompt
 *               processing);
 *   x16 GB/s, x16 GOP/s: the same two problems through the 16-row interleaved kernels
 *               (quant_x16.h) where the type and CPU have them (what the CPU backend uses);
 * GOP = 2 * rows * cols * n. CINDER_SIMD=scalar|avx2|avx512|avx512_vnni picks the level;
 * argv[1] (optional) restricts to one type name, e.g. "q4_K". */
#include "cinder/quant.h"
#include "cinder/quant_x16.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    /* thread CPU time: on a shared machine, time spent descheduled does not count */
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* random blocks with sane f16 scales (0x2000 ~ 0.0078) at the type's scale offsets */
static void fill(enum cnd_dtype t, uint8_t *p, size_t bytes)
{
    for (size_t i = 0; i + 8 <= bytes; i += 8) {
        uint64_t v = rnd();
        memcpy(p + i, &v, 8);
    }
    static const struct {
        enum cnd_dtype t;
        int o[2];
    } offs[] = {
        {CND_DTYPE_Q4_0, {0, -1}},   {CND_DTYPE_Q5_0, {0, -1}},  {CND_DTYPE_Q8_0, {0, -1}},
        {CND_DTYPE_Q4_1, {0, 2}},    {CND_DTYPE_Q5_1, {0, 2}},   {CND_DTYPE_Q4_K, {0, 2}},
        {CND_DTYPE_Q5_K, {0, 2}},    {CND_DTYPE_Q2_K, {80, 82}}, {CND_DTYPE_Q3_K, {108, -1}},
        {CND_DTYPE_Q6_K, {208, -1}},
    };
    const size_t ts = (size_t)dtype_type_size(t);
    for (size_t k = 0; k < sizeof(offs) / sizeof(offs[0]); k++)
        if (offs[k].t == t)
            for (size_t b = 0; b + ts <= bytes; b += ts)
                for (int j = 0; j < 2; j++)
                    if (offs[k].o[j] >= 0)
                        p[b + (size_t)offs[k].o[j]] = 0x00, p[b + (size_t)offs[k].o[j] + 1] = 0x20;
    if (t == CND_DTYPE_F16 || t == CND_DTYPE_BF16)
        for (size_t i = 1; i < bytes; i += 2)
            p[i] = (uint8_t)(0x30 + (p[i] & 0x7) + (p[i] & 0x80));
    if (t == CND_DTYPE_F32)
        for (size_t i = 3; i < bytes; i += 4)
            p[i] = (uint8_t)(0x3c + (p[i] & 0x80));
}

static volatile float sink;

int main(int argc, char **argv)
{
    const enum cnd_dtype types[] = {CND_DTYPE_F32,  CND_DTYPE_F16,  CND_DTYPE_BF16, CND_DTYPE_Q8_0,
                                    CND_DTYPE_Q4_0, CND_DTYPE_Q4_1, CND_DTYPE_Q5_0, CND_DTYPE_Q5_1,
                                    CND_DTYPE_Q2_K, CND_DTYPE_Q3_K, CND_DTYPE_Q4_K, CND_DTYPE_Q5_K,
                                    CND_DTYPE_Q6_K};
    const enum quant_simd lv = quant_simd_detect();
    const int64_t n = 4096;
    printf("level %s, n = %lld\n", quant_simd_name(lv), (long long)n);
    printf("%-6s %12s %12s %12s %12s %12s\n", "type", "gemv GB/s", "dot GOP/s", "tile GOP/s",
           "x16 GB/s", "x16 GOP/s");
    for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
        const enum cnd_dtype t = types[ti];
        if (argc > 1 && strcmp(argv[1], dtype_name(t)) != 0)
            continue;
        const struct quant_kernels *k = quant_get_kernels(t, lv);
        const enum cnd_dtype at = k->vec_dot_type;
        const size_t rs = dtype_row_size(t, n), ars = dtype_row_size(at, n);
        const int64_t rows = (int64_t)((64u << 20) / rs);
        uint8_t *w = malloc(rs * (size_t)rows);
        fill(t, w, rs * (size_t)rows);
        const int ncols = 16;
        float *x = malloc(sizeof(float) * (size_t)(n * ncols));
        for (int64_t i = 0; i < n * ncols; i++)
            x[i] = (float)((int64_t)(rnd() % 2001) - 1000) * 1e-3f;
        uint8_t *a = malloc(ars * ncols);
        for (int c = 0; c < ncols; c++)
            k->quantize_act(x + c * n, a + c * ars, n);

        /* gemv over the big matrix: best of a few passes, <= ~1 s */
        double best = 1e9, t0 = now_s();
        for (int rep = 0; rep < 8 && now_s() - t0 < 1.0; rep++) {
            const double s = now_s();
            float acc = 0;
            if (k->gemm) {
                float *o = malloc(sizeof(float) * (size_t)rows);
                k->gemm(n, w, rs, rows, a, 0, 1, o, 1, 1);
                acc = o[rows - 1];
                free(o);
            } else {
                for (int64_t r = 0; r < rows; r++)
                    acc += k->vec_dot(n, w + (size_t)r * rs, a);
            }
            sink = acc;
            const double e = now_s() - s;
            if (e < best)
                best = e;
        }
        const double gbs = (double)rs * (double)rows / best / 1e9;

        /* cache-resident: 1 MB of weights x 16 columns */
        const int64_t srows = (int64_t)((1u << 20) / rs) & ~3ll;
        const double ops = 2.0 * (double)srows * ncols * (double)n;
        float *out = malloc(sizeof(float) * (size_t)(srows * ncols));
        double bdot = 1e9, btile = 1e9;
        t0 = now_s();
        for (int rep = 0; rep < 20 && now_s() - t0 < 0.5; rep++) {
            double s = now_s();
            for (int64_t r = 0; r < srows; r++)
                for (int c = 0; c < ncols; c++)
                    out[r * ncols + c] = k->vec_dot(n, w + (size_t)r * rs, a + (size_t)c * ars);
            double e = now_s() - s;
            if (e < bdot)
                bdot = e;
            s = now_s();
            if (k->gemm)
                k->gemm(n, w, rs, srows, a, ars, ncols, out, (size_t)ncols, 1);
            else
                for (int64_t r = 0; r < srows; r += 4)
                    for (int c = 0; c < ncols; c += 4)
                        k->vec_dot_tile(n, w + (size_t)r * rs, rs, 4, a + (size_t)c * ars, ars, 4,
                                        out + r * ncols + c, (size_t)ncols);
            e = now_s() - s;
            if (e < btile)
                btile = e;
        }
        sink = out[0];
        printf("%-6s %12.2f %12.2f %12.2f", dtype_name(t), gbs, ops / bdot / 1e9,
               ops / btile / 1e9);
        if (quant_x16_supported(t)) {
            /* the x16 layout: the big matrix x 1 column, then the small one x 16 columns */
            const size_t pb = quant_x16_size(t, n, rows), aw = quant_x16_aux_words(t, n);
            uint8_t *pk = aligned_alloc(64, (pb + 63) & ~(size_t)63);
            int32_t *aux = malloc(sizeof(int32_t) * aw * ncols);
            quant_x16_pack(t, n, rows, w, rs, 0, (rows + 15) / 16, pk);
            quant_x16_prepare(t, n, a, ars, 0, ncols, aux);
            float *o = malloc(sizeof(float) * (size_t)(rows * ncols));
            double bx = 1e9, bg = 1e9;
            t0 = now_s();
            for (int rep = 0; rep < 8 && now_s() - t0 < 1.0; rep++) {
                const double s = now_s();
                quant_x16_gemm(t, n, rows, pk, 0, (rows + 15) / 16, a, ars, aux, 1, o,
                               (size_t)rows);
                const double e = now_s() - s;
                if (e < bx)
                    bx = e;
            }
            const int64_t sr16 = srows & ~15ll;
            t0 = now_s();
            for (int rep = 0; rep < 20 && now_s() - t0 < 0.5; rep++) {
                const double s = now_s();
                quant_x16_gemm(t, n, sr16, pk, 0, sr16 / 16, a, ars, aux, ncols, o, (size_t)sr16);
                const double e = now_s() - s;
                if (e < bg)
                    bg = e;
            }
            sink = o[0];
            printf(" %12.2f %12.2f", (double)rs * (double)rows / bx / 1e9,
                   2.0 * (double)sr16 * ncols * (double)n / bg / 1e9);
            free(o);
            free(aux);
            free(pk);
        }
        printf("\n");
        fflush(stdout);
        free(out);
        free(w);
        free(x);
        free(a);
    }
    return 0;
}
