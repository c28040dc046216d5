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

#include <immintrin.h>
#include <math.h>
#include <string.h>

void quant_avx512_fill(enum cnd_dtype t, struct quant_kernels *k, bool vnni);

#if defined(__x86_64__) || defined(__i386__)

#define TGT_F __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,f16c,fma")))
#define KINL_F                                                                                     \
    static inline __attribute__((always_inline,                                                    \
                                 target("avx512f,avx512bw,avx512vl,avx512dq,f16c,fma")))
#define TGT_V                                                                                      \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,f16c,fma")))
#define KINL_V                                                                                     \
    static inline __attribute__((always_inline,                                                    \
                                 target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,f16c,fma")))

#define TILE_CASE(kern, R, C)                                                                      \
    case (R - 1) * 4 + (C - 1): kern(n, w, ws, a, as, out, os, R, C); break;
#define DEFINE_DOT_TILE(TGT, name, kern)                                                           \
    TGT static float name##_dot(int64_t n, const void *w, const void *a)                          \
    {                                                                                              \
        float o;                                                                                   \
        kern(n, (const uint8_t *)w, 0, (const uint8_t *)a, 0, &o, 0, 1, 1);                        \
        return o;                                                                                  \
    }                                                                                              \
    TGT static void name##_tile(int64_t n, const void *vw, size_t ws, int nr, const void *va,     \
                                size_t as, int nc, float *out, size_t os)                         \
    {                                                                                              \
        const uint8_t *w = vw, *a = va;                                                            \
        switch ((nr - 1) * 4 + (nc - 1)) {                                                         \
            TILE_CASE(kern, 1, 1) TILE_CASE(kern, 1, 2) TILE_CASE(kern, 1, 3)                      \
            TILE_CASE(kern, 1, 4) TILE_CASE(kern, 2, 1) TILE_CASE(kern, 2, 2)                      \
            TILE_CASE(kern, 2, 3) TILE_CASE(kern, 2, 4) TILE_CASE(kern, 3, 1)                      \
            TILE_CASE(kern, 3, 2) TILE_CASE(kern, 3, 3) TILE_CASE(kern, 3, 4)                      \
            TILE_CASE(kern, 4, 1) TILE_CASE(kern, 4, 2) TILE_CASE(kern, 4, 3)                      \
            TILE_CASE(kern, 4, 4)                                                                  \
        default: break;                                                                            \
        }                                                                                          \
    }

#define FOR_R for (int r = 0; r < R; r++)
#define FOR_C for (int c = 0; c < C; c++)
#define UNROLL _Pragma("GCC unroll 4")

/* fixed-order horizontal sum of 16 lanes */
KINL_F float hsum16(__m512 v)
{
    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* ------------------------------------------------------------------------------------------ */
/* float types: 32 elements per step (two FMAs, one accumulator add), masked tail */

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

#define FLOAT_KERNEL(kname, ES, LOAD)                                                              \
    KINL_F void kname(int64_t n, const uint8_t *w, size_t ws, const uint8_t *a, size_t as,        \
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
        UNROLL FOR_R UNROLL FOR_C out[r * os + c] = hsum16(acc[r][c]);                             \
    }

FLOAT_KERNEL(k_f32, 4, ld16_f32)
FLOAT_KERNEL(k_f16, 2, ld16_f16)
FLOAT_KERNEL(k_bf16, 2, ld16_bf16)
DEFINE_DOT_TILE(TGT_F, f32, k_f32)
DEFINE_DOT_TILE(TGT_F, f16, k_f16)
DEFINE_DOT_TILE(TGT_F, bf16, k_bf16)

/* ------------------------------------------------------------------------------------------ */
/* Q4_0 / Q8_0 against Q8_0: two blocks per 512-bit vector (lanes 0..7 block b, 8..15 b+1),
 * four blocks per step. */

/* f16 scales of two blocks -> 16 floats [d0 x8, d1 x8]; a missing block gives 0 */
KINL_V __m512 pair_scale(const uint8_t *b0, const uint8_t *b1)
{
    uint16_t h0, h1 = 0;
    memcpy(&h0, b0, 2);
    if (b1)
        memcpy(&h1, b1, 2);
    const __m256i v = _mm256_mask_set1_epi16(_mm256_set1_epi16((short)h0), 0xFF00, (short)h1);
    return _mm512_cvtph_ps(v);
}

/* Q4_0 weights of two blocks: 64 nibbles in element order */
KINL_V __m512i wq2_q4_0(const uint8_t *b0, const uint8_t *b1)
{
    const __m128i x0 = _mm_loadu_si128((const __m128i *)(const void *)(b0 + 2));
    const __m128i x1 = b1 ? _mm_loadu_si128((const __m128i *)(const void *)(b1 + 2))
                          : _mm_set1_epi8(0);
    const __m256i y0 = _mm256_set_m128i(_mm_srli_epi16(x0, 4), x0);
    const __m256i y1 = _mm256_set_m128i(_mm_srli_epi16(x1, 4), x1);
    return _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(y0), y1, 1),
                            _mm512_set1_epi8(0x0F));
}

/* Q8_0 weights of two blocks as unsigned w + 128 (a missing block gives 0, not 128) */
KINL_V __m512i wq2_q8_0(const uint8_t *b0, const uint8_t *b1)
{
    const __m256i y0 = _mm256_loadu_si256((const __m256i *)(const void *)(b0 + 2));
    const __m256i s = _mm256_set1_epi8((char)0x80);
    const __m256i y1 = b1 ? _mm256_xor_si256(
                                _mm256_loadu_si256((const __m256i *)(const void *)(b1 + 2)), s)
                          : _mm256_setzero_si256();
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_xor_si256(y0, s)), y1, 1);
}

KINL_V __m512i aq2(const uint8_t *b0, const uint8_t *b1)
{
    const __m256i y0 = _mm256_loadu_si256((const __m256i *)(const void *)(b0 + 2));
    const __m256i y1 = b1 ? _mm256_loadu_si256((const __m256i *)(const void *)(b1 + 2))
                          : _mm256_setzero_si256();
    return _mm512_inserti64x4(_mm512_castsi256_si512(y0), y1, 1);
}

#define PAIR_KERNEL(kname, WQ2, WBYTES, OFF)                                                       \
    KINL_V void kname(int64_t n, const uint8_t *w, size_t ws, const uint8_t *a, size_t as,        \
                      float *out, size_t os, const int R, const int C)                             \
    {                                                                                              \
        const int64_t nb = n / 32;                                                                 \
        __m512 acc[4][4];                                                                          \
        UNROLL FOR_R UNROLL FOR_C acc[r][c] = _mm512_setzero_ps();                                 \
        const __m512i off = _mm512_set1_epi8((char)(OFF));                                         \
        for (int64_t ib = 0; ib < nb; ib += 4) {                                                   \
            const int nv = nb - ib < 4 ? (int)(nb - ib) : 4; /* valid blocks in this step */      \
            __m512i q[4][2];                                                                       \
            __m512 dw[4][2];                                                                       \
            UNROLL FOR_R                                                                           \
            {                                                                                      \
                const uint8_t *wb = w + r * ws + ib * WBYTES;                                      \
                for (int p = 0; p < 2; p++) {                                                      \
                    if (2 * p < nv) {                                                              \
                        const uint8_t *b1 = 2 * p + 1 < nv ? wb + (2 * p + 1) * WBYTES : NULL;     \
                        q[r][p] = WQ2(wb + 2 * p * WBYTES, b1);                                    \
                        dw[r][p] = pair_scale(wb + 2 * p * WBYTES, b1);                            \
                    } else {                                                                       \
                        q[r][p] = _mm512_setzero_si512();                                          \
                        dw[r][p] = _mm512_setzero_ps();                                            \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
            UNROLL FOR_C                                                                           \
            {                                                                                      \
                const uint8_t *ab = a + c * as + ib * 34;                                          \
                __m512i av[2], nc0[2];                                                             \
                __m512 da[2];                                                                      \
                for (int p = 0; p < 2; p++) {                                                      \
                    if (2 * p < nv) {                                                              \
                        const uint8_t *b1 = 2 * p + 1 < nv ? ab + (2 * p + 1) * 34 : NULL;         \
                        av[p] = aq2(ab + 2 * p * 34, b1);                                          \
                        da[p] = pair_scale(ab + 2 * p * 34, b1);                                   \
                    } else {                                                                       \
                        av[p] = _mm512_setzero_si512();                                            \
                        da[p] = _mm512_setzero_ps();                                               \
                    }                                                                              \
                    nc0[p] = _mm512_sub_epi32(_mm512_setzero_si512(),                              \
                                              _mm512_dpbusd_epi32(_mm512_setzero_si512(), off, av[p])); \
                }                                                                                  \
                UNROLL FOR_R                                                                       \
                {                                                                                  \
                    const __m512 f0 = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(nc0[0], q[r][0], av[0])); \
                    const __m512 f1 = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(nc0[1], q[r][1], av[1])); \
                    const __m512 p = _mm512_fmadd_ps(f1, _mm512_mul_ps(dw[r][1], da[1]),           \
                                                     _mm512_mul_ps(f0, _mm512_mul_ps(dw[r][0], da[0]))); \
                    acc[r][c] = _mm512_add_ps(acc[r][c], p);                                       \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        UNROLL FOR_R UNROLL FOR_C out[r * os + c] = hsum16(acc[r][c]);                             \
    }

PAIR_KERNEL(k_q4_0, wq2_q4_0, 18, 8)
PAIR_KERNEL(k_q8_0, wq2_q8_0, 34, 0x80)
DEFINE_DOT_TILE(TGT_V, q4_0, k_q4_0)
DEFINE_DOT_TILE(TGT_V, q8_0, k_q8_0)

/* ------------------------------------------------------------------------------------------ */
/* K-quants against Q8_K {f32 d; i8 qs[256]; i16 bsums[16]}: 64 elements per vector */

KINL_V float ldf32(const uint8_t *p)
{
    float f;
    memcpy(&f, p, 4);
    return f;
}

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
                   size_t os, const int R, const int C)
{
    const int64_t nb = n / 256;
    __m512 acc[4][4];
    UNROLL FOR_R UNROLL FOR_C acc[r][c] = _mm512_setzero_ps();
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    for (int64_t ib = 0; ib < nb; ib++) {
        __m512i sc16[4];
        __m256i mn16[4];
        float dw[4], dmw[4];
        UNROLL FOR_R
        {
            const uint8_t *wb = w + r * ws + ib * 144;
            uint64_t s64, m64;
            k4_scales(wb + 4, &s64, &m64);
            sc16[r] = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)s64)));
            const __m128i m8 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)m64));
            mn16[r] = _mm256_set_m128i(_mm_unpackhi_epi16(m8, m8), _mm_unpacklo_epi16(m8, m8));
            dw[r] = ldh32(wb);
            dmw[r] = ldh32(wb + 2);
        }
        __m512i isum[4][4];
        UNROLL FOR_R UNROLL FOR_C isum[r][c] = _mm512_setzero_si512();
        for (int j = 0; j < 4; j++) {
            /* lanes 0..15: scale of sub-block 2j, 16..31: 2j+1 */
            const __m512i sidx =
                _mm512_mask_set1_epi16(_mm512_set1_epi16((short)(2 * j)), 0xFFFF0000u,
                                       (short)(2 * j + 1));
            __m512i q[4], s[4];
            UNROLL FOR_R
            {
                const uint8_t *wb = w + r * ws + ib * 144 + 16 + 32 * j;
                const __m512i raw = _mm512_broadcast_i64x4(
                    _mm256_loadu_si256((const __m256i *)(const void *)wb));
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
            const float da = ldf32(ab);
            const __m256i bs = _mm256_loadu_si256((const __m256i *)(const void *)(ab + 260));
            UNROLL FOR_R
            {
                const __m512 fm =
                    _mm512_zextps256_ps512(_mm256_cvtepi32_ps(_mm256_madd_epi16(bs, mn16[r])));
                const __m512 fi = _mm512_cvtepi32_ps(isum[r][c]);
                const __m512 p = _mm512_fnmadd_ps(fm, _mm512_set1_ps(dmw[r] * da),
                                                  _mm512_mul_ps(fi, _mm512_set1_ps(dw[r] * da)));
                acc[r][c] = _mm512_add_ps(acc[r][c], p);
            }
        }
    }
    UNROLL FOR_R UNROLL FOR_C out[r * os + c] = hsum16(acc[r][c]);
}
DEFINE_DOT_TILE(TGT_V, q4_k, k_q4_k)

KINL_V void k_q6_k(int64_t n, const uint8_t *w, size_t ws, const uint8_t *a, size_t as, float *out,
                   size_t os, const int R, const int C)
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
            scb[r] = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(wb + 192)));
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
            const float da = ldf32(ab);
            const __m256i bs = _mm256_loadu_si256((const __m256i *)(const void *)(ab + 260));
            UNROLL FOR_R
            {
                const __m512i off = _mm512_zextsi256_si512(
                    _mm256_slli_epi32(_mm256_madd_epi16(bs, scb[r]), 5));
                const __m512 fi = _mm512_cvtepi32_ps(_mm512_sub_epi32(isum[r][c], off));
                acc[r][c] = _mm512_fmadd_ps(fi, _mm512_set1_ps(dw[r] * da), acc[r][c]);
            }
        }
    }
    UNROLL FOR_R UNROLL FOR_C out[r * os + c] = hsum16(acc[r][c]);
}
DEFINE_DOT_TILE(TGT_V, q6_k, k_q6_k)

void quant_avx512_fill(enum cnd_dtype t, struct quant_kernels *k, bool vnni)
{
#define SET(name)                                                                                  \
    do {                                                                                           \
        k->vec_dot = name##_dot;                                                                   \
        k->vec_dot_tile = name##_tile;                                                             \
    } while (0)
    switch (t) {
    case CND_DTYPE_F32: SET(f32); break;
    case CND_DTYPE_F16: SET(f16); break;
    case CND_DTYPE_BF16: SET(bf16); break;
    default: break;
    }
    if (!vnni)
        return;
    switch (t) {
    case CND_DTYPE_Q4_0: SET(q4_0); break;
    case CND_DTYPE_Q8_0: SET(q8_0); break;
    case CND_DTYPE_Q4_K: SET(q4_k); break;
    case CND_DTYPE_Q6_K: SET(q6_k); break;
    default: break;
    }
#undef SET
}

#else

void quant_avx512_fill(enum cnd_dtype t, struct quant_kernels *k, bool vnni)
{
    CND_UNUSED(t);
    CND_UNUSED(k);
    CND_UNUSED(vnni);
}

#endif
