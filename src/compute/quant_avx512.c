/* quant_avx512.c: AVX-512 kernels. Level AVX512 (F/BW/VL/DQ): the float types (F32, F16, BF16)
 * on 512-bit vectors; level AVX512_VNNI adds the integer kernels of the hot types (Q4_0, Q8_0,
 * Q4_K, Q6_K) built on vpdpbusd / vpdpwssd. Whatever is not here comes from quant_avx2.c.
 * Same structure as quant_avx2.c: one always-inline R x C tile body per type, vec_dot is the
 * 1 x 1 instance, so every tile output is bit-identical to vec_dot at this level.
 *
 * Integer parts are exact for every input: vpdpbusd takes the weights as unsigned (Q4_0's
 * nibbles 0..15; Q8_0 as w + 128) and the offset (8 resp. 128 times the activation sum, also
 * via vpdpbusd) is subtracted per column; K-quants use maddubs (unsigned 0..63 operands, no
 * saturation) then vpdpwssd with the sub-block scales. */
#include "cinder/quant.h"
#include "avx512_reduce.h"
#include "quant_internal.h"
#include "cinder/fp16.h"

#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)

#define TGT_F __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,f16c,fma")))
#define KINL_F                                                                                     \
    static inline                                                                                  \
        __attribute__((always_inline, target("avx512f,avx512bw,avx512vl,avx512dq,f16c,fma")))
#define TGT_V __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,f16c,fma")))
#define KINL_V                                                                                     \
    static inline __attribute__((                                                                  \
        always_inline, target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,f16c,fma")))

/* ------------------------------------------------------------------------------------------ */
/* float types */

/* direct R x C tile kernels (no activation preparation) over 4 x 4 blocks */
#define DK_CASE(kern, R, C)                                                                        \
    case (R - 1) * 4 + (C - 1):                                                                    \
        kern(n, w + (size_t)r0 * ws, ws, a + (size_t)c0 * as, as, out + r0 * ors + c0 * ocs, ors,  \
             ocs, R, C);                                                                           \
        break;
/* all 16 shapes up to 4 x 4 (case lists one per line, kept out of clang-format 14, which folds
 * them differently on every pass) */
/* clang-format off */
#define DK_CASES_4X4(kern)                                                                         \
    DK_CASE(kern, 1, 1)                                                                            \
    DK_CASE(kern, 1, 2)                                                                            \
    DK_CASE(kern, 1, 3)                                                                            \
    DK_CASE(kern, 1, 4)                                                                            \
    DK_CASE(kern, 2, 1)                                                                            \
    DK_CASE(kern, 2, 2)                                                                            \
    DK_CASE(kern, 2, 3)                                                                            \
    DK_CASE(kern, 2, 4)                                                                            \
    DK_CASE(kern, 3, 1)                                                                            \
    DK_CASE(kern, 3, 2)                                                                            \
    DK_CASE(kern, 3, 3)                                                                            \
    DK_CASE(kern, 3, 4)                                                                            \
    DK_CASE(kern, 4, 1)                                                                            \
    DK_CASE(kern, 4, 2)                                                                            \
    DK_CASE(kern, 4, 3)                                                                            \
    DK_CASE(kern, 4, 4)
/* clang-format on */
/* gemm over tiles of up to RT x CT (rows in the inner loop), CASES one DK_CASE per shape;
 * plus the vec_dot and vec_dot_tile built on it */
#define DEFINE_TILED_GEMM(TGT, name, RT, CT, CASES)                                                \
    TGT static void name##_gemm(int64_t n, const void *vw, size_t ws, int64_t nr, const void *va,  \
                                size_t as, int64_t nc, float *out, size_t ors, size_t ocs)         \
    {                                                                                              \
        const uint8_t *w = vw, *a = va;                                                            \
        for (int64_t c0 = 0; c0 < nc; c0 += CT)                                                    \
            for (int64_t r0 = 0; r0 < nr; r0 += RT) {                                              \
                const int R = nr - r0 < RT ? (int)(nr - r0) : RT;                                  \
                const int C = nc - c0 < CT ? (int)(nc - c0) : CT;                                  \
                switch ((R - 1) * 4 + (C - 1)) {                                                   \
                    CASES default : break;                                                         \
                }                                                                                  \
            }                                                                                      \
    }                                                                                              \
    QUANT_DOT_TILE_FROM_GEMM(TGT, name)
#define DEFINE_DIRECT_GEMM(TGT, name, kern) DEFINE_TILED_GEMM(TGT, name, 4, 4, DK_CASES_4X4(kern))

/* The float types follow llama.cpp's own summation orders on AVX-512 (ggml-cpu at 2025-02, the
 * reference build), so that our logits agree with its references to the last bit where the
 * inputs do. It has two, and which one a product gets depends on the pass, not on the data:
 *
 * vec_dot order (ggml_vec_dot_f32/_f16, used for single-token steps): 64 elements per step in
 * four 16-lane accumulators (slice j of each step into acc[j], acc = fma(w, a, acc)), reduced
 * as (acc0 + acc2) + (acc1 + acc3) then the 16 lanes as _mm512_reduce_add_ps does (avx512_hsum16);
 * the n % 64 elements left are then added one at a time: F32 into the float sum, F16 as float
 * products into a double. BF16 (ggml_vec_dot_bf16 with AVX512-BF16): two vdpbf16ps
 * accumulators over the halves of each 64-element step, each reduced and added to a double,
 * then the leftover products one at a time.
 *
 * prompt order (llamafile's tinyBLAS, used when a pass has two or more tokens and k is a
 * multiple of its step): one 16-lane accumulator per output, acc = fma(w, a, acc) per 16
 * elements (BF16: acc = vdpbf16ps(acc, w, a) per 32), then avx512_hsum16. See the *_pp kernels.
 *
 * vec_dot, vec_dot_tile and gemm of each order are one tile driver, so every shape is
 * bit-identical to vec_dot. */

KINL_F __m512 ld16_f32(const uint8_t *p, __mmask16 m)
{
    return _mm512_maskz_loadu_ps(m, p);
}
KINL_F __m512 ld16_f16(const uint8_t *p, __mmask16 m)
{
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}
KINL_F __m512 ld16_bf16(const uint8_t *p, __mmask16 m)
{
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}

/* (acc0 + acc2) + (acc1 + acc3), then the lanes: GGML_F32x16_REDUCE */
KINL_F float reduce4x16(__m512 a0, __m512 a1, __m512 a2, __m512 a3)
{
    return avx512_hsum16(_mm512_add_ps(_mm512_add_ps(a0, a2), _mm512_add_ps(a1, a3)));
}

/* vec_dot order for an R x C tile (R, C <= 4): the four accumulator chains of a pair are
 * independent, so they are computed one after the other, slice j of every 64-element step in
 * pass j, with 16 accumulators live (as many FMAs per load as a one-accumulator tile); the
 * partial vectors wait in part[][][] until the reduction. F32's leftovers go into the float sum
 * as fma(w, a, sum) (ggml's `sumf += x[i]*y[i]` as GCC contracts it), F16's as float products
 * into a double. */
#ifndef VD_PF_ROWS
#define VD_PF_ROWS 8 /* prefetch the rows of the tile two tiles ahead */
#endif
#define VD_KERNEL(kname, ES, LOAD, TAIL)                                                           \
    /* pf: how far ahead of a row's current position (bytes) the decode path prefetches */         \
    KINL_F void kname##_pf(int64_t n, const uint8_t *w, size_t ws, size_t pf, const uint8_t *a,    \
                           size_t as, float *out, size_t os, size_t ocs, const int R, const int C) \
    {                                                                                              \
        __m512 part[4][4][4];                                                                      \
        const __mmask16 all = 0xFFFF;                                                              \
        const int64_t np = n & ~(int64_t)63;                                                       \
        if (R * C <= 4) {                                                                          \
            /* few pairs (decode): all chains live in one pass, streaming each row once with       \
             * the next tiles' rows prefetched (the hardware prefetcher alone is slow here) */     \
            UNROLL FOR_R UNROLL FOR_C for (int j = 0; j < 4; j++) part[j][r][c] =                  \
                _mm512_setzero_ps();                                                               \
            for (int64_t i = 0; i < np; i += 64) {                                                 \
                UNROLL FOR_R for (int64_t o = 0; o < 64 * ES; o += 64)                             \
                    _mm_prefetch((const char *)(w + r * ws + pf + i * ES + o), _MM_HINT_T0);       \
                for (int j = 0; j < 4; j++) {                                                      \
                    __m512 wv[4];                                                                  \
                    UNROLL FOR_R wv[r] = LOAD(w + r * ws + (i + 16 * j) * ES, all);                \
                    UNROLL FOR_C                                                                   \
                    {                                                                              \
                        const __m512 av = LOAD(a + c * as + (i + 16 * j) * ES, all);               \
                        UNROLL FOR_R part[j][r][c] = _mm512_fmadd_ps(wv[r], av, part[j][r][c]);    \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        } else                                                                                     \
            for (int j = 0; j < 4; j++) {                                                          \
                __m512 acc[4][4];                                                                  \
                UNROLL FOR_R UNROLL FOR_C acc[r][c] = _mm512_setzero_ps();                         \
                for (int64_t i = 16 * j; i < np; i += 64) {                                        \
                    __m512 wv[4];                                                                  \
                    UNROLL FOR_R wv[r] = LOAD(w + r * ws + i * ES, all);                           \
                    UNROLL FOR_C                                                                   \
                    {                                                                              \
                        const __m512 av = LOAD(a + c * as + i * ES, all);                          \
                        UNROLL FOR_R acc[r][c] = _mm512_fmadd_ps(wv[r], av, acc[r][c]);            \
                    }                                                                              \
                }                                                                                  \
                UNROLL FOR_R UNROLL FOR_C part[j][r][c] = acc[r][c];                               \
            }                                                                                      \
        float h[4][4];                                                                             \
        UNROLL FOR_R UNROLL FOR_C h[r][c] =                                                        \
            reduce4x16(part[0][r][c], part[1][r][c], part[2][r][c], part[3][r][c]);                \
        TAIL                                                                                       \
    }                                                                                              \
    KINL_F void kname(int64_t n, const uint8_t *w, size_t ws, const uint8_t *a, size_t as,         \
                      float *out, size_t os, size_t ocs, const int R, const int C)                 \
    {                                                                                              \
        kname##_pf(n, w, ws, VD_PF_ROWS *ws, a, as, out, os, ocs, R, C);                           \
    }

/* the n % 64 rest, element by element after the vector part: each (r, c) its own scalar
 * chain, the chains interleaved (one after another, n = 172 rows of a tiny model's FFN spent
 * most of their time waiting on one chain's latency) */
#define VD_TAIL_F32                                                                                \
    float s[4][4];                                                                                 \
    UNROLL FOR_R UNROLL FOR_C s[r][c] = h[r][c];                                                   \
    for (int64_t i = np; i < n; i++)                                                               \
        UNROLL FOR_R UNROLL FOR_C s[r][c] =                                                        \
            fmaf(quant_ld_f32(w + r * ws + 4 * i), quant_ld_f32(a + c * as + 4 * i), s[r][c]);     \
    UNROLL FOR_R UNROLL FOR_C out[r * os + c * ocs] = s[r][c];
#define VD_TAIL_F16                                                                                \
    double s[4][4];                                                                                \
    UNROLL FOR_R UNROLL FOR_C s[r][c] = (double)h[r][c];                                           \
    for (int64_t i = np; i < n; i++)                                                               \
        UNROLL FOR_R UNROLL FOR_C s[r][c] +=                                                       \
            (double)(quant_ld_f16(w + r * ws + 2 * i) * quant_ld_f16(a + c * as + 2 * i));         \
    UNROLL FOR_R UNROLL FOR_C out[r * os + c * ocs] = (float)s[r][c];

VD_KERNEL(k_f32_vd, 4, ld16_f32, VD_TAIL_F32)
VD_KERNEL(k_f16_vd, 2, ld16_f16, VD_TAIL_F16)
DEFINE_DIRECT_GEMM(TGT_F, f32, k_f32_vd)
DEFINE_DIRECT_GEMM(TGT_F, f16vd, k_f16_vd)

/* Decode (one activation row): one thread reading its rows front to back is a single memory
 * stream, which this machine serves at about two thirds of what several streams get
 * (bench_membw). So the rows are cut into four contiguous quarters and each 4-row tile takes
 * one row from each: four streams, each prefetched two rows ahead along itself. Every row's
 * arithmetic is the tile kernel's, so the bits are gemm's. */
#ifndef VD_GEMV_PF_ROWS
#define VD_GEMV_PF_ROWS 2
#endif
#define DEFINE_VD_GEMV(TGT, name, kern)                                                            \
    TGT static void name##_gemv(int64_t n, const void *vw, size_t ws, int64_t nr, const void *va,  \
                                float *out)                                                        \
    {                                                                                              \
        const uint8_t *w = vw, *a = va;                                                            \
        const int64_t q = nr / 4;                                                                  \
        for (int64_t t = 0; t < q; t++)                                                            \
            kern##_pf(n, w + (size_t)t * ws, (size_t)q * ws, VD_GEMV_PF_ROWS * ws, a, 0, out + t,  \
                      (size_t)q, 0, 4, 1);                                                         \
        if (nr > 4 * q)                                                                            \
            name##_gemm(n, w + (size_t)(4 * q) * ws, ws, nr - 4 * q, a, 0, 1, out + 4 * q, 1, 0);  \
    }
DEFINE_VD_GEMV(TGT_F, f32, k_f32_vd)
DEFINE_VD_GEMV(TGT_F, f16vd, k_f16_vd)

/* tiles of up to 2 rows x 3 columns (BF16's two accumulators per pair); any nr, nc */
#define DEFINE_VD_GEMM(TGT, name, kern)                                                            \
    DEFINE_TILED_GEMM(TGT, name, 2, 3,                                                             \
                      DK_CASE(kern, 1, 1) DK_CASE(kern, 1, 2) DK_CASE(kern, 1, 3)                  \
                          DK_CASE(kern, 2, 1) DK_CASE(kern, 2, 2) DK_CASE(kern, 2, 3))

/* prompt order, F32 (tinyBLAS<16, __m512>): one accumulator per pair; a partial last step
 * (k % 16 != 0, where llama.cpp would not use this order) is masked */
KINL_F void k_f32_pp(int64_t n, const uint8_t *w, size_t ws, const uint8_t *a, size_t as,
                     float *out, size_t os, size_t ocs, const int R, const int C)
{
    __m512 acc[4][4];
    UNROLL FOR_R UNROLL FOR_C acc[r][c] = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 wv[4];
        UNROLL FOR_R wv[r] = ld16_f32(w + r * ws + i * 4, m);
        UNROLL FOR_C
        {
            const __m512 av = ld16_f32(a + c * as + i * 4, m);
            UNROLL FOR_R acc[r][c] = _mm512_fmadd_ps(wv[r], av, acc[r][c]);
        }
    }
    UNROLL FOR_R UNROLL FOR_C out[r * os + c * ocs] = avx512_hsum16(acc[r][c]);
}
DEFINE_DIRECT_GEMM(TGT_F, f32pp, k_f32_pp)

/* ---- BF16 with AVX512-BF16 (vdpbf16ps: per lane, acc += w[2l+1]a[2l+1] then w[2l]a[2l],
 * products exact, DAZ/FTZ). Without it the older two-FMA kernel below is used. ---- */

#define TGT_B __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,f16c,fma")))
#define KINL_B                                                                                     \
    static inline __attribute__((                                                                  \
        always_inline, target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,f16c,fma")))

KINL_B __m512 dpbf16(__m512 acc, const uint8_t *w, const uint8_t *a, __mmask32 m)
{
    return _mm512_dpbf16_ps(acc, (__m512bh)_mm512_maskz_loadu_epi16(m, w),
                            (__m512bh)_mm512_maskz_loadu_epi16(m, a));
}

/* vec_dot order: c1 over elements [i, i + 32) and c2 over [i + 32, i + 64) of each step */
KINL_B void k_bf16_vd(int64_t n, const uint8_t *w, size_t ws, const uint8_t *a, size_t as,
                      float *out, size_t os, size_t ocs, const int R, const int C)
{
    __m512 c1[2][3], c2[2][3];
    _Pragma("GCC unroll 2") FOR_R _Pragma("GCC unroll 3") FOR_C c1[r][c] = c2[r][c] =
        _mm512_setzero_ps();
    const __mmask32 all = 0xFFFFFFFFu;
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        _Pragma("GCC unroll 2") FOR_R _Pragma("GCC unroll 3") FOR_C
        {
            c1[r][c] = dpbf16(c1[r][c], w + r * ws + i * 2, a + c * as + i * 2, all);
            c2[r][c] = dpbf16(c2[r][c], w + r * ws + i * 2 + 64, a + c * as + i * 2 + 64, all);
        }
    }
    _Pragma("GCC unroll 2") FOR_R _Pragma("GCC unroll 3") FOR_C
    {
        double s = 0.0;
        s += (double)avx512_hsum16(c1[r][c]);
        s += (double)avx512_hsum16(c2[r][c]);
        const uint8_t *wr = w + r * ws, *ac = a + c * as;
        for (int64_t k = i; k < n; k++)
            s += (double)(quant_ld_bf16(wr + 2 * k) * quant_ld_bf16(ac + 2 * k));
        out[r * os + c * ocs] = (float)s;
    }
}
DEFINE_VD_GEMM(TGT_B, bf16vd, k_bf16_vd)

/* prompt order (tinyBLAS<32, __m512, __m512bh>): one accumulator, 32 elements per step; a
 * partial last step is zero-padded */
KINL_B void k_bf16_pp(int64_t n, const uint8_t *w, size_t ws, const uint8_t *a, size_t as,
                      float *out, size_t os, size_t ocs, const int R, const int C)
{
    __m512 acc[4][4];
    UNROLL FOR_R UNROLL FOR_C acc[r][c] = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 32) {
        const __mmask32 m = n - i >= 32 ? 0xFFFFFFFFu : (__mmask32)((1u << (n - i)) - 1);
        __m512i wv[4];
        UNROLL FOR_R wv[r] = _mm512_maskz_loadu_epi16(m, w + r * ws + i * 2);
        UNROLL FOR_C
        {
            const __m512i av = _mm512_maskz_loadu_epi16(m, a + c * as + i * 2);
            UNROLL FOR_R acc[r][c] = _mm512_dpbf16_ps(acc[r][c], (__m512bh)wv[r], (__m512bh)av);
        }
    }
    UNROLL FOR_R UNROLL FOR_C out[r * os + c * ocs] = avx512_hsum16(acc[r][c]);
}
DEFINE_DIRECT_GEMM(TGT_B, bf16pp, k_bf16_pp)

/* BF16 without AVX512-BF16: 32 elements per step (two FMAs, one accumulator add), masked tail;
 * no llama.cpp order to follow there (its AVX512F path differs and is not what the reference
 * ran). */
#define FLOAT_KERNEL(kname, ES, LOAD)                                                              \
    KINL_F void kname(int64_t n, const uint8_t *w, size_t ws, const uint8_t *a, size_t as,         \
                      float *out, size_t os, const int R, const int C)                             \
    {                                                                                              \
        __m512 acc[4][4];                                                                          \
        UNROLL FOR_R UNROLL FOR_C acc[r][c] = _mm512_setzero_ps();                                 \
        const __mmask16 all = 0xFFFF;                                                              \
        int64_t i = 0;                                                                             \
        for (; i + 32 <= n; i += 32) {                                                             \
            __m512 w0[4], w1[4];                                                                   \
            UNROLL FOR_R                                                                           \
            {                                                                                      \
                w0[r] = LOAD(w + r * ws + i * ES, all);                                            \
                w1[r] = LOAD(w + r * ws + (i + 16) * ES, all);                                     \
            }                                                                                      \
            UNROLL FOR_C                                                                           \
            {                                                                                      \
                const __m512 a0 = LOAD(a + c * as + i * ES, all);                                  \
                const __m512 a1 = LOAD(a + c * as + (i + 16) * ES, all);                           \
                UNROLL FOR_R acc[r][c] = _mm512_add_ps(                                            \
                    acc[r][c], _mm512_fmadd_ps(w1[r], a1, _mm512_mul_ps(w0[r], a0)));              \
            }                                                                                      \
        }                                                                                          \
        for (; i < n; i += 16) {                                                                   \
            const __mmask16 m = n - i >= 16 ? all : (__mmask16)((1u << (n - i)) - 1);              \
            __m512 w0[4];                                                                          \
            UNROLL FOR_R w0[r] = LOAD(w + r * ws + i * ES, m);                                     \
            UNROLL FOR_C                                                                           \
            {                                                                                      \
                const __m512 a0 = LOAD(a + c * as + i * ES, m);                                    \
                UNROLL FOR_R acc[r][c] = _mm512_fmadd_ps(w0[r], a0, acc[r][c]);                    \
            }                                                                                      \
        }                                                                                          \
        UNROLL FOR_R UNROLL FOR_C out[r * os + c] = avx512_hsum16(acc[r][c]);                      \
    }

FLOAT_KERNEL(k_bf16, 2, ld16_bf16)
QUANT_DEFINE_DOT_TILE(TGT_F, bf16, k_bf16)

/* ------------------------------------------------------------------------------------------ */
/* Prepared-activation kernels (F16, Q4_0, Q8_0). The activation columns of a call are first
 * rewritten into a kernel-friendly layout (exactly: no rounding happens there), then an R x C
 * micro-kernel (R in {1, 4}, C <= CMAX) runs over it. vec_dot, vec_dot_tile and gemm are all
 * this one driver, and every (row, column) pair runs the same instruction sequence into its own
 * accumulator whatever R, C and the pair's place in the tile, so all three agree bit for bit. */

#define PREP_STACK (96 * 1024)
#ifndef FPF_DIST
#define FPF_DIST 8
#endif

/* driver: column blocks of up to CMAX prepared columns, rows in fours then singles */
#define MK_CASE(mk, R, C)                                                                          \
    case C:                                                                                        \
        mk(n, w + (size_t)r0 * ws, ws, prep, pb, out + r0 * ors + c0 * ocs, ors, ocs, R, C);       \
        break;
#define DEFINE_PREP_GEMM(TGT, name, PREP, PREP_BYTES, MK, CMAX, CASES4, CASES1)                    \
    TGT static void name##_gemm(int64_t n, const void *vw, size_t ws, int64_t nr, const void *va,  \
                                size_t as, int64_t nc, float *out, size_t ors, size_t ocs)         \
    {                                                                                              \
        const uint8_t *w = vw, *a = va;                                                            \
        const size_t pb = PREP_BYTES(n);                                                           \
        _Alignas(64) uint8_t stack[PREP_STACK];                                                    \
        uint8_t *prep = stack;                                                                     \
        if (pb * CMAX > sizeof(stack)) {                                                           \
            prep = aligned_alloc(64, pb * CMAX);                                                   \
            if (!prep)                                                                             \
                abort();                                                                           \
        }                                                                                          \
        for (int64_t c0 = 0; c0 < nc; c0 += CMAX) {                                                \
            const int C = nc - c0 < CMAX ? (int)(nc - c0) : CMAX;                                  \
            for (int c = 0; c < C; c++)                                                            \
                PREP(n, a + (size_t)(c0 + c) * as, prep + (size_t)c * pb);                         \
            int64_t r0 = 0;                                                                        \
            for (; r0 + 4 <= nr; r0 += 4)                                                          \
                switch (C) {                                                                       \
                    CASES4 default : break;                                                        \
                }                                                                                  \
            for (; r0 < nr; r0++)                                                                  \
                switch (C) {                                                                       \
                    CASES1 default : break;                                                        \
                }                                                                                  \
        }                                                                                          \
        if (prep != stack)                                                                         \
            free(prep);                                                                            \
    }                                                                                              \
    QUANT_DOT_TILE_FROM_GEMM(TGT, name)

/* ---- F16 x F16: activations widened to F32 (exact); acc = fma(w, a, acc) per 16 elements,
 * one accumulator per pair, masked tail; horizontal sum in fixed order ---- */

static inline size_t f16_prep_bytes(int64_t n)
{
    return (size_t)((n + 15) / 16) * 64;
}

TGT_F static void f16_prep(int64_t n, const uint8_t *a, uint8_t *p)
{
    float *o = (float *)(void *)p;
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        _mm512_store_ps(o + i, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, a + 2 * i)));
    }
}

KINL_F void mk_f16(int64_t n, const uint8_t *w, size_t ws, const uint8_t *prep, size_t pb,
                   float *out, size_t ors, size_t ocs, const int R, const int C)
{
    __m512 acc[4][6];
    UNROLL FOR_R _Pragma("GCC unroll 6") FOR_C acc[r][c] = _mm512_setzero_ps();
    const float *ap = (const float *)(const void *)prep;
    const size_t pf = pb / 4;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 wv[4];
        UNROLL FOR_R
        {
            if (FPF_DIST && !(i & 31))
                _mm_prefetch((const char *)(w + (r + FPF_DIST) * ws + i * 2), _MM_HINT_T0);
            wv[r] = _mm512_cvtph_ps(
                _mm256_loadu_si256((const __m256i *)(const void *)(w + r * ws + i * 2)));
        }
        _Pragma("GCC unroll 6") FOR_C
        {
            const __m512 av = _mm512_load_ps(ap + c * pf + i);
            UNROLL FOR_R acc[r][c] = _mm512_fmadd_ps(wv[r], av, acc[r][c]);
        }
    }
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        __m512 wv[4];
        UNROLL FOR_R wv[r] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, w + r * ws + i * 2));
        _Pragma("GCC unroll 6") FOR_C
        {
            const __m512 av = _mm512_load_ps(ap + c * pf + i);
            UNROLL FOR_R acc[r][c] = _mm512_fmadd_ps(wv[r], av, acc[r][c]);
        }
    }
    UNROLL FOR_R _Pragma("GCC unroll 6") FOR_C out[r * ors + c * ocs] = avx512_hsum16(acc[r][c]);
}

/* clang-format off */
#define F16_C4                                                                                     \
    MK_CASE(mk_f16, 4, 1)                                                                          \
    MK_CASE(mk_f16, 4, 2)                                                                          \
    MK_CASE(mk_f16, 4, 3)                                                                          \
    MK_CASE(mk_f16, 4, 4)                                                                          \
    MK_CASE(mk_f16, 4, 5)                                                                          \
    MK_CASE(mk_f16, 4, 6)
#define F16_C1                                                                                     \
    MK_CASE(mk_f16, 1, 1)                                                                          \
    MK_CASE(mk_f16, 1, 2)                                                                          \
    MK_CASE(mk_f16, 1, 3)                                                                          \
    MK_CASE(mk_f16, 1, 4)                                                                          \
    MK_CASE(mk_f16, 1, 5)                                                                          \
    MK_CASE(mk_f16, 1, 6)
/* clang-format on */
DEFINE_PREP_GEMM(TGT_F, f16, f16_prep, f16_prep_bytes, mk_f16, 6, F16_C4, F16_C1)

/* ---- Q4_0 / Q8_0 x Q8_0, four blocks (128 elements) per group: a 512-bit vector holds the
 * first 16 quants of each of the 4 blocks ("lo", 128-bit lane b = block b), another the last
 * 16 ("hi"). Per pair and group: isum = init + dpbusd(w_lo, a_lo) + dpbusd(w_hi, a_hi) (exact
 * int32 per lane), acc = fma(float(isum), d_w * d_a, acc) with d broadcast per lane group. The
 * weights enter vpdpbusd unsigned (Q4_0 nibbles 0..15, Q8_0 as w + 128); init = -8 (-128)
 * times the lane's activation sum, prepared with the activations. Prepared group: a_lo[64],
 * a_hi[64], init i32[16], d f32[16]. A partial last group is zero-padded (weights copied to a
 * zeroed buffer: scale 0). ---- */

#define Q8G_BYTES 256
#ifndef QPF_DIST
#define QPF_DIST 8
#endif

static inline size_t q8g_prep_bytes(int64_t n)
{
    return (size_t)((n / 32 + 3) / 4) * Q8G_BYTES;
}

KINL_V __m512i ld4x16(const uint8_t *p, size_t stride)
{
    __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(const void *)p));
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(const void *)(p + stride)), 1);
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(const void *)(p + 2 * stride)), 2);
    return _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(const void *)(p + 3 * stride)),
                              3);
}

/* the f16 scales at p, p + 34, p + 68, p + 102 -> 16 floats [d0 x4, d1 x4, d2 x4, d3 x4] */
KINL_V __m512 sc4_34(const uint8_t *p)
{
    const __m512i lo = _mm512_loadu_si512(p), hi = _mm512_loadu_si512(p + 64);
    const __m512i idx = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 51, 51, 51,
                                         51, 34, 34, 34, 34, 17, 17, 17, 17, 0, 0, 0, 0);
    return _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutex2var_epi16(lo, idx, hi)));
}

/* the f16 scales at p, p + 18, p + 36, p + 54 */
KINL_V __m512 sc4_18(const uint8_t *p)
{
    const __m512i v = _mm512_loadu_si512(p);
    const __m512i idx = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 27, 27, 27,
                                         27, 18, 18, 18, 18, 9, 9, 9, 9, 0, 0, 0, 0);
    return _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(idx, v)));
}

KINL_V void q8g_prep_group(const uint8_t *a, uint8_t *p, char off)
{
    const __m512i lo = ld4x16(a + 2, 34), hi = ld4x16(a + 18, 34);
    const __m512i o = _mm512_set1_epi8(off);
    const __m512i s =
        _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), o, lo), o, hi);
    _mm512_store_si512(p, lo);
    _mm512_store_si512(p + 64, hi);
    _mm512_store_si512(p + 128, _mm512_sub_epi32(_mm512_setzero_si512(), s));
    _mm512_store_ps(p + 192, sc4_34(a));
}

KINL_V void q8g_prep(int64_t n, const uint8_t *a, uint8_t *p, char off)
{
    const int64_t nb = n / 32, ng = nb / 4;
    for (int64_t g = 0; g < ng; g++)
        q8g_prep_group(a + g * 136, p + g * Q8G_BYTES, off);
    if (nb % 4) {
        uint8_t tmp[4 * 34 + 64] = {0};
        memcpy(tmp, a + ng * 136, (size_t)(nb % 4) * 34);
        q8g_prep_group(tmp, p + ng * Q8G_BYTES, off);
    }
}

TGT_V static void q4_0_prep(int64_t n, const uint8_t *a, uint8_t *p)
{
    q8g_prep(n, a, p, 8);
}

TGT_V static void q8_0_prep(int64_t n, const uint8_t *a, uint8_t *p)
{
    q8g_prep(n, a, p, (char)0x80);
}

/* weights of one group: lo/hi unsigned quants and the scales */
KINL_V void wg_q4_0(const uint8_t *b, __m512i *lo, __m512i *hi, __m512 *d)
{
    const __m512i q = ld4x16(b + 2, 18), m4 = _mm512_set1_epi8(0x0F);
    *lo = _mm512_and_si512(q, m4);
    *hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
    *d = sc4_18(b);
}

KINL_V void wg_q8_0(const uint8_t *b, __m512i *lo, __m512i *hi, __m512 *d)
{
    const __m512i s = _mm512_set1_epi8((char)0x80);
    *lo = _mm512_xor_si512(ld4x16(b + 2, 34), s);
    *hi = _mm512_xor_si512(ld4x16(b + 18, 34), s);
    *d = sc4_34(b);
}

#define Q8G_KERNEL(kname, WG, GB)                                                                  \
    KINL_V void kname(int64_t n, const uint8_t *w, size_t ws, const uint8_t *prep, size_t pb,      \
                      float *out, size_t ors, size_t ocs, const int R, const int C)                \
    {                                                                                              \
        const int64_t nb = n / 32, ng = (nb + 3) / 4;                                              \
        _Alignas(64) uint8_t tail[4][4 * GB + 64];                                                 \
        if (nb % 4) {                                                                              \
            UNROLL FOR_R                                                                           \
            {                                                                                      \
                memset(tail[r], 0, sizeof(tail[r]));                                               \
                memcpy(tail[r], w + r * ws + (nb / 4) * 4 * GB, (size_t)(nb % 4) * GB);            \
            }                                                                                      \
        }                                                                                          \
        __m512 acc[4][4];                                                                          \
        UNROLL FOR_R UNROLL FOR_C acc[r][c] = _mm512_setzero_ps();                                 \
        for (int64_t g = 0; g < ng; g++) {                                                         \
            __m512i wl[4], wh[4];                                                                  \
            __m512 dw[4];                                                                          \
            const bool full = g < nb / 4;                                                          \
            UNROLL FOR_R                                                                           \
            {                                                                                      \
                const uint8_t *wb = full ? w + r * ws + g * 4 * GB : tail[r];                      \
                if (QPF_DIST) {                                                                    \
                    _mm_prefetch((const char *)(wb + QPF_DIST * ws), _MM_HINT_T0);                 \
                    _mm_prefetch((const char *)(wb + QPF_DIST * ws + 64), _MM_HINT_T0);            \
                }                                                                                  \
                WG(wb, &wl[r], &wh[r], &dw[r]);                                                    \
            }                                                                                      \
            UNROLL FOR_C                                                                           \
            {                                                                                      \
                const uint8_t *pg = prep + c * pb + g * Q8G_BYTES;                                 \
                const __m512i al = _mm512_load_si512(pg), ah = _mm512_load_si512(pg + 64);         \
                const __m512i init = _mm512_load_si512(pg + 128);                                  \
                const __m512 da = _mm512_load_ps(pg + 192);                                        \
                UNROLL FOR_R                                                                       \
                {                                                                                  \
                    const __m512i is =                                                             \
                        _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(init, wl[r], al), wh[r], ah);      \
                    acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is), _mm512_mul_ps(dw[r], da),  \
                                                acc[r][c]);                                        \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        UNROLL FOR_R UNROLL FOR_C out[r * ors + c * ocs] = avx512_hsum16(acc[r][c]);               \
    }

Q8G_KERNEL(mk_q4_0, wg_q4_0, 18)
Q8G_KERNEL(mk_q8_0, wg_q8_0, 34)

#define Q40_C4                                                                                     \
    MK_CASE(mk_q4_0, 4, 1) MK_CASE(mk_q4_0, 4, 2) MK_CASE(mk_q4_0, 4, 3) MK_CASE(mk_q4_0, 4, 4)
#define Q40_C1                                                                                     \
    MK_CASE(mk_q4_0, 1, 1) MK_CASE(mk_q4_0, 1, 2) MK_CASE(mk_q4_0, 1, 3) MK_CASE(mk_q4_0, 1, 4)
#define Q80_C4                                                                                     \
    MK_CASE(mk_q8_0, 4, 1) MK_CASE(mk_q8_0, 4, 2) MK_CASE(mk_q8_0, 4, 3) MK_CASE(mk_q8_0, 4, 4)
#define Q80_C1                                                                                     \
    MK_CASE(mk_q8_0, 1, 1) MK_CASE(mk_q8_0, 1, 2) MK_CASE(mk_q8_0, 1, 3) MK_CASE(mk_q8_0, 1, 4)
DEFINE_PREP_GEMM(TGT_V, q4_0, q4_0_prep, q8g_prep_bytes, mk_q4_0, 4, Q40_C4, Q40_C1)
DEFINE_PREP_GEMM(TGT_V, q8_0, q8_0_prep, q8g_prep_bytes, mk_q8_0, 4, Q80_C4, Q80_C1)

/* K-quants use the activations in place: the driver runs R x C tiles (R, C in 1..4) with
 * out[r * ors + c * ocs]; every pair's instruction sequence is independent of R, C */
#ifndef KPF_DIST
#define KPF_DIST 8 /* prefetch the same block 8 rows (two row tiles) ahead */
#endif

/* ------------------------------------------------------------------------------------------ */
/* K-quants against Q8_K {f32 d; i8 qs[256]; i16 bsums[16]}: 64 elements per vector */

KINL_V float ldh32(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

KINL_V void k4_scales(const uint8_t *s12, uint64_t *sc, uint64_t *mn)
{
    uint32_t u[3], o[4];
    memcpy(u, s12, 12);
    o[0] = u[0] & 0x3f3f3f3fu;
    o[2] = u[1] & 0x3f3f3f3fu;
    o[1] = (u[2] & 0x0f0f0f0fu) | (((u[0] >> 6) & 0x03030303u) << 4);
    o[3] = ((u[2] >> 4) & 0x0f0f0f0fu) | (((u[1] >> 6) & 0x03030303u) << 4);
    *sc = (uint64_t)o[0] | ((uint64_t)o[1] << 32);
    *mn = (uint64_t)o[2] | ((uint64_t)o[3] << 32);
}

KINL_V void k_q4_k(int64_t n, const uint8_t *w, size_t ws, const uint8_t *a, size_t as, float *out,
                   size_t os, size_t ocs, const int R, const int C)
{
    const int64_t nb = n / 256;
    __m512 acc[4][4];
    UNROLL FOR_R UNROLL FOR_C acc[r][c] = _mm512_setzero_ps();
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    for (int64_t ib = 0; ib < nb; ib++) {
        __m512i sc16[4];
        __m256i mn16[4];
        __m512 dwv[4], dmv[4];
        UNROLL FOR_R
        {
            const uint8_t *wb = w + r * ws + ib * 144;
            _mm_prefetch((const char *)(wb + KPF_DIST * ws + 0), _MM_HINT_T0);
            _mm_prefetch((const char *)(wb + KPF_DIST * ws + 64), _MM_HINT_T0);
            _mm_prefetch((const char *)(wb + KPF_DIST * ws + 128), _MM_HINT_T0);
            uint64_t s64, m64;
            k4_scales(wb + 4, &s64, &m64);
            sc16[r] = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)s64)));
            const __m128i m8 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)m64));
            mn16[r] = _mm256_set_m128i(_mm_unpackhi_epi16(m8, m8), _mm_unpacklo_epi16(m8, m8));
            dwv[r] = _mm512_set1_ps(ldh32(wb));
            dmv[r] = _mm512_set1_ps(ldh32(wb + 2));
        }
        __m512i isum[4][4];
        UNROLL FOR_R UNROLL FOR_C isum[r][c] = _mm512_setzero_si512();
        for (int j = 0; j < 4; j++) {
            /* lanes 0..15: scale of sub-block 2j, 16..31: 2j+1 */
            const __m512i sidx = _mm512_mask_set1_epi16(_mm512_set1_epi16((short)(2 * j)),
                                                        0xFFFF0000u, (short)(2 * j + 1));
            __m512i q[4], s[4];
            UNROLL FOR_R
            {
                const uint8_t *wb = w + r * ws + ib * 144 + 16 + 32 * j;
                const __m512i raw =
                    _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(const void *)wb));
                q[r] = _mm512_and_si512(_mm512_mask_srli_epi16(raw, 0xFFFF0000u, raw, 4), m4);
                s[r] = _mm512_permutexvar_epi16(sidx, sc16[r]);
            }
            UNROLL FOR_C
            {
                const __m512i av = _mm512_loadu_si512(a + c * as + ib * 292 + 4 + 64 * j);
                UNROLL FOR_R isum[r][c] =
                    _mm512_dpwssd_epi32(isum[r][c], _mm512_maddubs_epi16(q[r], av), s[r]);
            }
        }
        UNROLL FOR_C
        {
            const uint8_t *ab = a + c * as + ib * 292;
            const __m512 da = _mm512_set1_ps(quant_ld_f32(ab));
            const __m256i bs = _mm256_loadu_si256((const __m256i *)(const void *)(ab + 260));
            UNROLL FOR_R
            {
                /* acc += isum * (d_w d_a) - minsum * (dmin_w d_a); minsum fills lanes 0..7 */
                const __m512 fm =
                    _mm512_zextps256_ps512(_mm256_cvtepi32_ps(_mm256_madd_epi16(bs, mn16[r])));
                const __m512 fi = _mm512_cvtepi32_ps(isum[r][c]);
                acc[r][c] = _mm512_fmadd_ps(fi, _mm512_mul_ps(dwv[r], da), acc[r][c]);
                acc[r][c] = _mm512_fnmadd_ps(fm, _mm512_mul_ps(dmv[r], da), acc[r][c]);
            }
        }
    }
    UNROLL FOR_R UNROLL FOR_C out[r * os + c * ocs] = avx512_hsum16(acc[r][c]);
}
DEFINE_DIRECT_GEMM(TGT_V, q4_k, k_q4_k)

KINL_V void k_q6_k(int64_t n, const uint8_t *w, size_t ws, const uint8_t *a, size_t as, float *out,
                   size_t os, size_t ocs, const int R, const int C)
{
    const int64_t nb = n / 256;
    __m512 acc[4][4];
    UNROLL FOR_R UNROLL FOR_C acc[r][c] = _mm512_setzero_ps();
    const __m512i m4 = _mm512_set1_epi8(0x0F), m3 = _mm512_set1_epi8(0x30);
    /* qh shifts: elements 0..31 use bits 0-1 (<<4), 32..63 bits 2-3 (<<2); 64..95 bits 4-5,
     * 96..127 bits 6-7 (>>2) */
    const __m512i shl = _mm512_mask_set1_epi16(_mm512_set1_epi16(4), 0xFFFF0000u, 2);
    const __m512i shr = _mm512_mask_set1_epi16(_mm512_setzero_si512(), 0xFFFF0000u, 2);
    for (int64_t ib = 0; ib < nb; ib++) {
        __m512i sc16[4];
        __m256i scb[4];
        float dw[4];
        UNROLL FOR_R
        {
            const uint8_t *wb = w + r * ws + ib * 210;
            _mm_prefetch((const char *)(wb + KPF_DIST * ws + 0), _MM_HINT_T0);
            _mm_prefetch((const char *)(wb + KPF_DIST * ws + 64), _MM_HINT_T0);
            _mm_prefetch((const char *)(wb + KPF_DIST * ws + 128), _MM_HINT_T0);
            _mm_prefetch((const char *)(wb + KPF_DIST * ws + 192), _MM_HINT_T0);
            scb[r] =
                _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(wb + 192)));
            sc16[r] = _mm512_castsi256_si512(scb[r]);
            dw[r] = ldh32(wb + 208);
        }
        __m512i isum[4][4];
        UNROLL FOR_R UNROLL FOR_C isum[r][c] = _mm512_setzero_si512();
        for (int g = 0; g < 4; g++) { /* 64-element groups: half g/2, low (g even) or high */
            const int h = g >> 1, hi = g & 1;
            /* int16 lane L -> scale of sub-block 4g + L/8 */
            const __m512i sidx = _mm512_add_epi16(
                _mm512_set1_epi16((short)(4 * g)),
                _mm512_srli_epi16(_mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20,
                                                   19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7,
                                                   6, 5, 4, 3, 2, 1, 0),
                                  3));
            __m512i q[4], s[4];
            UNROLL FOR_R
            {
                const uint8_t *wb = w + r * ws + ib * 210;
                const __m512i ql = _mm512_loadu_si512(wb + 64 * h);
                const __m512i qh = _mm512_broadcast_i64x4(
                    _mm256_loadu_si256((const __m256i *)(const void *)(wb + 128 + 32 * h)));
                const __m512i lo =
                    hi ? _mm512_and_si512(_mm512_srli_epi16(ql, 4), m4) : _mm512_and_si512(ql, m4);
                const __m512i hb = hi ? _mm512_srlv_epi16(qh, shr) : _mm512_sllv_epi16(qh, shl);
                q[r] = _mm512_or_si512(lo, _mm512_and_si512(hb, m3));
                s[r] = _mm512_permutexvar_epi16(sidx, sc16[r]);
            }
            UNROLL FOR_C
            {
                const __m512i av = _mm512_loadu_si512(a + c * as + ib * 292 + 4 + 64 * g);
                UNROLL FOR_R isum[r][c] =
                    _mm512_dpwssd_epi32(isum[r][c], _mm512_maddubs_epi16(q[r], av), s[r]);
            }
        }
        UNROLL FOR_C
        {
            const uint8_t *ab = a + c * as + ib * 292;
            const float da = quant_ld_f32(ab);
            const __m256i bs = _mm256_loadu_si256((const __m256i *)(const void *)(ab + 260));
            UNROLL FOR_R
            {
                const __m512i off =
                    _mm512_zextsi256_si512(_mm256_slli_epi32(_mm256_madd_epi16(bs, scb[r]), 5));
                const __m512 fi = _mm512_cvtepi32_ps(_mm512_sub_epi32(isum[r][c], off));
                acc[r][c] = _mm512_fmadd_ps(fi, _mm512_set1_ps(dw[r] * da), acc[r][c]);
            }
        }
    }
    UNROLL FOR_R UNROLL FOR_C out[r * os + c * ocs] = avx512_hsum16(acc[r][c]);
}
DEFINE_DIRECT_GEMM(TGT_V, q6_k, k_q6_k)

void quant_avx512_fill(enum cnd_dtype t, struct quant_kernels *k, bool vnni, bool bf16)
{
#define SET(name)                                                                                  \
    do {                                                                                           \
        k->vec_dot = name##_dot;                                                                   \
        k->vec_dot_tile = name##_tile;                                                             \
        k->gemm = NULL;                                                                            \
        k->gemv = NULL;                                                                            \
    } while (0)
#define SETG(name)                                                                                 \
    do {                                                                                           \
        k->vec_dot = name##_dot;                                                                   \
        k->vec_dot_tile = name##_tile;                                                             \
        k->gemm = name##_gemm;                                                                     \
        k->gemv = NULL;                                                                            \
    } while (0)
    switch (t) {
    case CND_DTYPE_F32:
        SETG(f32);
        k->gemv = f32_gemv;
        k->vec_dot_pp = f32pp_dot, k->gemm_pp = f32pp_gemm, k->pp_align = 16;
        break;
    case CND_DTYPE_F16:
        SETG(f16vd);
        k->gemv = f16vd_gemv;
        k->vec_dot_pp = f16_dot, k->gemm_pp = f16_gemm, k->pp_align = 16;
        break;
    case CND_DTYPE_BF16:
        if (bf16) {
            SETG(bf16vd);
            k->vec_dot_pp = bf16pp_dot, k->gemm_pp = bf16pp_gemm, k->pp_align = 32;
        } else {
            SET(bf16);
        }
        break;
    default: break;
    }
    if (!vnni)
        return;
    switch (t) {
    case CND_DTYPE_Q4_0: SETG(q4_0); break;
    case CND_DTYPE_Q8_0: SETG(q8_0); break;
    case CND_DTYPE_Q4_K: SETG(q4_k); break;
    case CND_DTYPE_Q6_K: SETG(q6_k); break;
    default: break;
    }
#undef SET
#undef SETG
}

#else

void quant_avx512_fill(enum cnd_dtype t, struct quant_kernels *k, bool vnni, bool bf16)
{
    CND_UNUSED(t);
    CND_UNUSED(k);
    CND_UNUSED(vnni);
    CND_UNUSED(bf16);
}

#endif
