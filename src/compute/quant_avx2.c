/* quant_avx2.c: AVX2 + FMA + F16C kernels. Every function carries its own target attribute, so
 * the file builds without -march flags; quant.c only installs them when the CPU has the
 * features.
 *
 * Each kernel is written once as an always-inline body over an R x C tile (R weight rows, C
 * activation columns, constants after inlining): the weights of a block are unpacked once per
 * row, the activations once per column, and every (row, col) pair runs exactly the same
 * instruction sequence into its own accumulator. vec_dot is the 1 x 1 instance, so tiles and
 * single dots are bit-identical.
 *
 * Integer parts are exact for every input (maddubs only ever sees unsigned operands <= 63, so
 * its 16-bit pair sums cannot saturate; Q8_0 x Q8_0 sign-extends to 16 bits). Per block the
 * integer dot is converted to float and scaled; blocks are paired (p = s0*f0 + s1*f1, then
 * acc += p) to halve the accumulator dependency chain. */
#include "cinder/quant.h"
#include "quant_internal.h"
#include "cinder/fp16.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)

#define TGT  __attribute__((target("avx2,fma,f16c")))
#define KINL static inline __attribute__((always_inline, target("avx2,fma,f16c")))

KINL float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

KINL float ldh_f(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

KINL __m256i loadu256(const uint8_t *p)
{
    return _mm256_loadu_si256((const __m256i *)(const void *)p);
}

KINL __m128i loadu128(const uint8_t *p)
{
    return _mm_loadu_si128((const __m128i *)(const void *)p);
}

/* ------------------------------------------------------------------------------------------ */
/* float types */

KINL __m256 load8_f32(const uint8_t *p)
{
    return _mm256_loadu_ps((const float *)(const void *)p);
}

KINL __m256 load8_f16(const uint8_t *p)
{
    return _mm256_cvtph_ps(loadu128(p));
}

KINL __m256 load8_bf16(const uint8_t *p)
{
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(loadu128(p)), 16));
}

/* float dot: 16 elements per step as two FMAs into one accumulator, tail in scalar float */
#define FLOAT_KERNEL(kname, ES, LOAD, SCAL)                                                        \
    KINL void kname(int64_t n, const uint8_t *w, size_t ws, const uint8_t *a, size_t as,           \
                    float *out, size_t os, const int R, const int C)                               \
    {                                                                                              \
        __m256 acc[4][4];                                                                          \
        UNROLL FOR_R UNROLL FOR_C acc[r][c] = _mm256_setzero_ps();                                 \
        int64_t i = 0;                                                                             \
        for (; i + 16 <= n; i += 16) {                                                             \
            __m256 w0[4], w1[4];                                                                   \
            UNROLL FOR_R                                                                           \
            {                                                                                      \
                w0[r] = LOAD(w + r * ws + i * ES);                                                 \
                w1[r] = LOAD(w + r * ws + (i + 8) * ES);                                           \
            }                                                                                      \
            UNROLL FOR_C                                                                           \
            {                                                                                      \
                const __m256 a0 = LOAD(a + c * as + i * ES), a1 = LOAD(a + c * as + (i + 8) * ES); \
                UNROLL FOR_R acc[r][c] = _mm256_add_ps(                                            \
                    acc[r][c], _mm256_fmadd_ps(w1[r], a1, _mm256_mul_ps(w0[r], a0)));              \
            }                                                                                      \
        }                                                                                          \
        UNROLL FOR_R UNROLL FOR_C                                                                  \
        {                                                                                          \
            float s = hsum8(acc[r][c]);                                                            \
            for (int64_t j = i; j < n; j++)                                                        \
                s = fmaf(SCAL(w + r * ws + j * ES), SCAL(a + c * as + j * ES), s);                 \
            out[r * os + c] = s;                                                                   \
        }                                                                                          \
    }

FLOAT_KERNEL(k_f32, 4, load8_f32, quant_ld_f32)
FLOAT_KERNEL(k_f16, 2, load8_f16, quant_ld_f16)
FLOAT_KERNEL(k_bf16, 2, load8_bf16, quant_ld_bf16)
QUANT_DEFINE_DOT_TILE(TGT, f32, k_f32)
QUANT_DEFINE_DOT_TILE(TGT, f16, k_f16)
QUANT_DEFINE_DOT_TILE(TGT, bf16, k_bf16)

/* ------------------------------------------------------------------------------------------ */
/* 32-element blocks against Q8_0 / Q8_1.
 * A "legacy" kernel: per block, the weight gives an unsigned u8 vector (32 values 0..31 in
 * element order) plus an offset o (8 or 16, 0 for types with a min); the activation gives its
 * 32 int8 values; integer dot = maddubs(q, a) - o * sum(a) (exact in 16 bits). */

KINL __m256i nib32(const uint8_t *qs) /* 16 bytes -> 32 nibbles, element order */
{
    const __m128i raw = loadu128(qs);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), _mm256_set1_epi8(0x0F));
}

KINL __m256i bits32(const uint8_t *qh4) /* 32 bits -> 32 bytes of 0x10 where set */
{
    uint32_t qh;
    memcpy(&qh, qh4, 4);
    const __m256i v = _mm256_set1_epi32((int)qh);
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303ll, 0x0202020202020202ll,
                                           0x0101010101010101ll, 0x0000000000000000ll);
    const __m256i bytes = _mm256_shuffle_epi8(v, shuf);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    const __m256i m = _mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit);
    return _mm256_and_si256(m, _mm256_set1_epi8(0x10));
}

/* weight unpackers: return unsigned quants; *d = scale, *m = min (or 0) */
KINL __m256i wq_q4_0(const uint8_t *b, float *d, float *m)
{
    *d = ldh_f(b), *m = 0;
    return nib32(b + 2);
}
KINL __m256i wq_q5_0(const uint8_t *b, float *d, float *m)
{
    *d = ldh_f(b), *m = 0;
    return _mm256_or_si256(nib32(b + 6), bits32(b + 2));
}
KINL __m256i wq_q4_1(const uint8_t *b, float *d, float *m)
{
    *d = ldh_f(b), *m = ldh_f(b + 2);
    return nib32(b + 4);
}
KINL __m256i wq_q5_1(const uint8_t *b, float *d, float *m)
{
    *d = ldh_f(b), *m = ldh_f(b + 2);
    return _mm256_or_si256(nib32(b + 8), bits32(b + 4));
}

/* OFF: 8/16 (symmetric types with Q8_0 activations, 34-byte blocks) or 0 (min types with Q8_1
 * activations, 36-byte blocks: sum += d*da*isum + m*s) */
#define LEGACY_KERNEL(kname, WQ, WBYTES, OFF)                                                      \
    KINL void kname(int64_t n, const uint8_t *w, size_t ws, const uint8_t *a, size_t as,           \
                    float *out, size_t os, const int R, const int C)                               \
    {                                                                                              \
        enum { ABYTES = (OFF) ? 34 : 36, AQ = (OFF) ? 2 : 4 };                                     \
        const int64_t nb = n / 32;                                                                 \
        __m256 acc[4][4];                                                                          \
        float accm[4][4];                                                                          \
        UNROLL FOR_R UNROLL FOR_C acc[r][c] = _mm256_setzero_ps(), accm[r][c] = 0.0f;              \
        const __m256i ones = _mm256_set1_epi16(1);                                                 \
        for (int64_t ib = 0; ib < nb; ib += 2) {                                                   \
            const int two = ib + 1 < nb;                                                           \
            __m256i q0[4], q1[4];                                                                  \
            float d0[4], d1[4], m0[4], m1[4];                                                      \
            UNROLL FOR_R                                                                           \
            {                                                                                      \
                const uint8_t *wb = w + r * ws + ib * WBYTES;                                      \
                q0[r] = WQ(wb, &d0[r], &m0[r]);                                                    \
                if (two)                                                                           \
                    q1[r] = WQ(wb + WBYTES, &d1[r], &m1[r]);                                       \
                else                                                                               \
                    q1[r] = _mm256_setzero_si256(), d1[r] = 0, m1[r] = 0;                          \
            }                                                                                      \
            UNROLL FOR_C                                                                           \
            {                                                                                      \
                const uint8_t *ab = a + c * as + ib * ABYTES;                                      \
                const __m256i a0 = loadu256(ab + AQ);                                              \
                const __m256i a1 = two ? loadu256(ab + ABYTES + AQ) : _mm256_setzero_si256();      \
                const float da0 = ldh_f(ab), da1 = two ? ldh_f(ab + ABYTES) : 0.0f;                \
                const float sa0 = (OFF) ? 0.0f : ldh_f(ab + 2);                                    \
                const float sa1 = (OFF) || !two ? 0.0f : ldh_f(ab + ABYTES + 2);                   \
                __m256i o0 = _mm256_setzero_si256(), o1 = _mm256_setzero_si256();                  \
                if (OFF) {                                                                         \
                    o0 = _mm256_maddubs_epi16(_mm256_set1_epi8(OFF), a0);                          \
                    o1 = _mm256_maddubs_epi16(_mm256_set1_epi8(OFF), a1);                          \
                }                                                                                  \
                UNROLL FOR_R                                                                       \
                {                                                                                  \
                    __m256i p0 = _mm256_maddubs_epi16(q0[r], a0);                                  \
                    __m256i p1 = _mm256_maddubs_epi16(q1[r], a1);                                  \
                    if (OFF) {                                                                     \
                        p0 = _mm256_sub_epi16(p0, o0);                                             \
                        p1 = _mm256_sub_epi16(p1, o1);                                             \
                    }                                                                              \
                    const __m256 f0 = _mm256_cvtepi32_ps(_mm256_madd_epi16(p0, ones));             \
                    const __m256 f1 = _mm256_cvtepi32_ps(_mm256_madd_epi16(p1, ones));             \
                    const __m256 p =                                                               \
                        _mm256_fmadd_ps(f1, _mm256_set1_ps(d1[r] * da1),                           \
                                        _mm256_mul_ps(f0, _mm256_set1_ps(d0[r] * da0)));           \
                    acc[r][c] = _mm256_add_ps(acc[r][c], p);                                       \
                    if (!(OFF))                                                                    \
                        accm[r][c] += fmaf(m1[r], sa1, m0[r] * sa0);                               \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        UNROLL FOR_R UNROLL FOR_C out[r * os + c] = hsum8(acc[r][c]) + accm[r][c];                 \
    }

LEGACY_KERNEL(k_q4_0, wq_q4_0, 18, 8)
LEGACY_KERNEL(k_q5_0, wq_q5_0, 22, 16)
LEGACY_KERNEL(k_q4_1, wq_q4_1, 20, 0)
LEGACY_KERNEL(k_q5_1, wq_q5_1, 24, 0)
QUANT_DEFINE_DOT_TILE(TGT, q4_0, k_q4_0)
QUANT_DEFINE_DOT_TILE(TGT, q5_0, k_q5_0)
QUANT_DEFINE_DOT_TILE(TGT, q4_1, k_q4_1)
QUANT_DEFINE_DOT_TILE(TGT, q5_1, k_q5_1)

/* Q8_0 x Q8_0: sign-extend to 16 bits, madd (exact for all int8 values) */
KINL void k_q8_0(int64_t n, const uint8_t *w, size_t ws, const uint8_t *a, size_t as, float *out,
                 size_t os, const int R, const int C)
{
    const int64_t nb = n / 32;
    __m256 acc[4][4];
    UNROLL FOR_R UNROLL FOR_C acc[r][c] = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib += 2) {
        const int two = ib + 1 < nb;
        __m256i wl[4][2], wh[4][2];
        float dw[4][2];
        UNROLL FOR_R
        {
            for (int k = 0; k < 2; k++) {
                const uint8_t *wb = w + r * ws + (ib + k) * 34;
                if (k == 0 || two) {
                    wl[r][k] = _mm256_cvtepi8_epi16(loadu128(wb + 2));
                    wh[r][k] = _mm256_cvtepi8_epi16(loadu128(wb + 18));
                    dw[r][k] = ldh_f(wb);
                } else {
                    wl[r][k] = wh[r][k] = _mm256_setzero_si256();
                    dw[r][k] = 0;
                }
            }
        }
        UNROLL FOR_C
        {
            __m256i al[2], ah[2];
            float da[2];
            for (int k = 0; k < 2; k++) {
                const uint8_t *ab = a + c * as + (ib + k) * 34;
                if (k == 0 || two) {
                    al[k] = _mm256_cvtepi8_epi16(loadu128(ab + 2));
                    ah[k] = _mm256_cvtepi8_epi16(loadu128(ab + 18));
                    da[k] = ldh_f(ab);
                } else {
                    al[k] = ah[k] = _mm256_setzero_si256();
                    da[k] = 0;
                }
            }
            UNROLL FOR_R
            {
                const __m256 f0 = _mm256_cvtepi32_ps(_mm256_add_epi32(
                    _mm256_madd_epi16(wl[r][0], al[0]), _mm256_madd_epi16(wh[r][0], ah[0])));
                const __m256 f1 = _mm256_cvtepi32_ps(_mm256_add_epi32(
                    _mm256_madd_epi16(wl[r][1], al[1]), _mm256_madd_epi16(wh[r][1], ah[1])));
                const __m256 p =
                    _mm256_fmadd_ps(f1, _mm256_set1_ps(dw[r][1] * da[1]),
                                    _mm256_mul_ps(f0, _mm256_set1_ps(dw[r][0] * da[0])));
                acc[r][c] = _mm256_add_ps(acc[r][c], p);
            }
        }
    }
    UNROLL FOR_R UNROLL FOR_C out[r * os + c] = hsum8(acc[r][c]);
}
QUANT_DEFINE_DOT_TILE(TGT, q8_0, k_q8_0)

/* ------------------------------------------------------------------------------------------ */
/* K-quants against Q8_K {f32 d; i8 qs[256]; i16 bsums[16]} */

/* Q4_K/Q5_K 6-bit scales and mins: 8 bytes each */
KINL void k4_scales(const uint8_t *s12, uint8_t sc[8], uint8_t mn[8])
{
    uint32_t u[3], o[4];
    memcpy(u, s12, 12);
    o[0] = u[0] & 0x3f3f3f3fu;
    o[2] = u[1] & 0x3f3f3f3fu;
    o[1] = (u[2] & 0x0f0f0f0fu) | (((u[0] >> 6) & 0x03030303u) << 4);
    o[3] = ((u[2] >> 4) & 0x0f0f0f0fu) | (((u[1] >> 6) & 0x03030303u) << 4);
    memcpy(sc, &o[0], 4);
    memcpy(sc + 4, &o[1], 4);
    memcpy(mn, &o[2], 4);
    memcpy(mn + 4, &o[3], 4);
}

/* Q4_K (Q5 = 0) and Q5_K (Q5 = 1) */
#define K45_KERNEL(kname, Q5, WBYTES)                                                              \
    KINL void kname(int64_t n, const uint8_t *w, size_t ws, const uint8_t *a, size_t as,           \
                    float *out, size_t os, const int R, const int C)                               \
    {                                                                                              \
        const int64_t nb = n / 256;                                                                \
        __m256 acc[4][4];                                                                          \
        UNROLL FOR_R UNROLL FOR_C acc[r][c] = _mm256_setzero_ps();                                 \
        const __m256i m4 = _mm256_set1_epi8(0x0F);                                                 \
        for (int64_t ib = 0; ib < nb; ib++) {                                                      \
            __m256i sc16[4], mn16[4];                                                              \
            float dw[4], dmw[4];                                                                   \
            UNROLL FOR_R                                                                           \
            {                                                                                      \
                const uint8_t *wb = w + r * ws + ib * WBYTES;                                      \
                uint8_t sc[8], mn[8];                                                              \
                k4_scales(wb + 4, sc, mn);                                                         \
                uint64_t s64, m64;                                                                 \
                memcpy(&s64, sc, 8);                                                               \
                memcpy(&m64, mn, 8);                                                               \
                const __m128i s8 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)s64));           \
                sc16[r] = _mm256_set_m128i(s8, s8);                                                \
                const __m128i m8 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)m64));           \
                mn16[r] =                                                                          \
                    _mm256_set_m128i(_mm_unpackhi_epi16(m8, m8), _mm_unpacklo_epi16(m8, m8));      \
                dw[r] = ldh_f(wb);                                                                 \
                dmw[r] = ldh_f(wb + 2);                                                            \
            }                                                                                      \
            __m256i isum[4][4];                                                                    \
            UNROLL FOR_R UNROLL FOR_C isum[r][c] = _mm256_setzero_si256();                         \
            for (int j = 0; j < 4; j++) {                                                          \
                __m256i lo[4], hi[4], slo[4], shi[4];                                              \
                const __m256i ilo = _mm256_set1_epi16((short)(0x0100 + 0x0202 * (2 * j)));         \
                const __m256i ihi = _mm256_set1_epi16((short)(0x0100 + 0x0202 * (2 * j + 1)));     \
                UNROLL FOR_R                                                                       \
                {                                                                                  \
                    const uint8_t *wb = w + r * ws + ib * WBYTES;                                  \
                    const __m256i q = loadu256(wb + (Q5 ? 48 : 16) + 32 * j);                      \
                    lo[r] = _mm256_and_si256(q, m4);                                               \
                    hi[r] = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);                         \
                    if (Q5) {                                                                      \
                        const __m256i h = loadu256(wb + 16);                                       \
                        const __m256i b0 = _mm256_set1_epi8((char)(1 << (2 * j)));                 \
                        const __m256i b1 = _mm256_set1_epi8((char)(1 << (2 * j + 1)));             \
                        lo[r] = _mm256_or_si256(                                                   \
                            lo[r],                                                                 \
                            _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(h, b0), b0),       \
                                             _mm256_set1_epi8(0x10)));                             \
                        hi[r] = _mm256_or_si256(                                                   \
                            hi[r],                                                                 \
                            _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(h, b1), b1),       \
                                             _mm256_set1_epi8(0x10)));                             \
                    }                                                                              \
                    slo[r] = _mm256_shuffle_epi8(sc16[r], ilo);                                    \
                    shi[r] = _mm256_shuffle_epi8(sc16[r], ihi);                                    \
                }                                                                                  \
                UNROLL FOR_C                                                                       \
                {                                                                                  \
                    const uint8_t *ab = a + c * as + ib * 292 + 4 + 64 * j;                        \
                    const __m256i alo = loadu256(ab), ahi = loadu256(ab + 32);                     \
                    UNROLL FOR_R                                                                   \
                    {                                                                              \
                        const __m256i pl =                                                         \
                            _mm256_madd_epi16(_mm256_maddubs_epi16(lo[r], alo), slo[r]);           \
                        const __m256i ph =                                                         \
                            _mm256_madd_epi16(_mm256_maddubs_epi16(hi[r], ahi), shi[r]);           \
                        isum[r][c] = _mm256_add_epi32(isum[r][c], _mm256_add_epi32(pl, ph));       \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
            UNROLL FOR_C                                                                           \
            {                                                                                      \
                const uint8_t *ab = a + c * as + ib * 292;                                         \
                const float da = quant_ld_f32(ab);                                                 \
                const __m256i bs = loadu256(ab + 260);                                             \
                UNROLL FOR_R                                                                       \
                {                                                                                  \
                    const __m256 fm = _mm256_cvtepi32_ps(_mm256_madd_epi16(bs, mn16[r]));          \
                    const __m256 fi = _mm256_cvtepi32_ps(isum[r][c]);                              \
                    const __m256 p =                                                               \
                        _mm256_fnmadd_ps(fm, _mm256_set1_ps(dmw[r] * da),                          \
                                         _mm256_mul_ps(fi, _mm256_set1_ps(dw[r] * da)));           \
                    acc[r][c] = _mm256_add_ps(acc[r][c], p);                                       \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        UNROLL FOR_R UNROLL FOR_C out[r * os + c] = hsum8(acc[r][c]);                              \
    }

K45_KERNEL(k_q4_k, 0, 144)
K45_KERNEL(k_q5_k, 1, 176)
QUANT_DEFINE_DOT_TILE(TGT, q4_k, k_q4_k)
QUANT_DEFINE_DOT_TILE(TGT, q5_k, k_q5_k)

/* [s0 x 8, s0 + 1 x 8] as int16 from 16 per-sub-block byte scales: the scales of the two
 * 16-element sub-blocks one 32-element maddubs/madd step covers (Q2_K, Q3_K, Q6_K) */
KINL __m256i scale_pair16(__m128i sc8, int s0, bool is_signed)
{
    const __m128i idx =
        _mm_set_epi8((char)(s0 + 1), (char)(s0 + 1), (char)(s0 + 1), (char)(s0 + 1), (char)(s0 + 1),
                     (char)(s0 + 1), (char)(s0 + 1), (char)(s0 + 1), (char)s0, (char)s0, (char)s0,
                     (char)s0, (char)s0, (char)s0, (char)s0, (char)s0);
    const __m128i b = _mm_shuffle_epi8(sc8, idx);
    return is_signed ? _mm256_cvtepi8_epi16(b) : _mm256_cvtepu8_epi16(b);
}

/* One 32-element step of a 256-element block for an R x C tile: isum[r][c] += madd(maddubs(q[r],
 * a_c) - maddubs(q4[r], a_c), s[r]), a_c the 32 activation bytes at a + c * as, q4 NULL where
 * there is nothing to take off (Q2_K, Q6_K; Q3_K's 4s). Exact int32 partial sums. */
KINL void isum_step32(__m256i isum[4][4], const __m256i *q, const __m256i *q4, const __m256i *s,
                      const uint8_t *a, size_t as, const int R, const int C)
{
    UNROLL FOR_C
    {
        const __m256i av = loadu256(a + c * as);
        UNROLL FOR_R
        {
            __m256i p = _mm256_maddubs_epi16(q[r], av);
            if (q4)
                p = _mm256_sub_epi16(p, _mm256_maddubs_epi16(q4[r], av));
            isum[r][c] = _mm256_add_epi32(isum[r][c], _mm256_madd_epi16(p, s[r]));
        }
    }
}

/* Q6_K: q (0..63) unsigned via maddubs, x signed 8-bit scales, minus 32 * sum(sc * bsums) */
KINL void k_q6_k(int64_t n, const uint8_t *w, size_t ws, const uint8_t *a, size_t as, float *out,
                 size_t os, const int R, const int C)
{
    const int64_t nb = n / 256;
    __m256 acc[4][4];
    UNROLL FOR_R UNROLL FOR_C acc[r][c] = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(0x30);
    for (int64_t ib = 0; ib < nb; ib++) {
        __m128i s8[4];
        __m256i sc16[4];
        float dw[4];
        UNROLL FOR_R
        {
            const uint8_t *wb = w + r * ws + ib * 210;
            s8[r] = loadu128(wb + 192);
            sc16[r] = _mm256_cvtepi8_epi16(s8[r]);
            dw[r] = ldh_f(wb + 208);
        }
        __m256i isum[4][4];
        UNROLL FOR_R UNROLL FOR_C isum[r][c] = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            for (int i = 0; i < 4; i++) {
                __m256i q[4], s[4];
                /* element group i of half h: 32 values, sub-blocks 8h+2i and 8h+2i+1 */
                const int k0 = 8 * h + 2 * i;
                UNROLL FOR_R
                {
                    const uint8_t *wb = w + r * ws + ib * 210;
                    const __m256i ql = loadu256(wb + 64 * h + 32 * (i & 1));
                    const __m256i qh = loadu256(wb + 128 + 32 * h);
                    const __m256i lo = (i < 2) ? _mm256_and_si256(ql, m4)
                                               : _mm256_and_si256(_mm256_srli_epi16(ql, 4), m4);
                    /* high bits i*2..i*2+1 of qh, moved to bits 4..5 */
                    __m256i hb;
                    switch (i) {
                    case 0: hb = _mm256_slli_epi16(qh, 4); break;
                    case 1: hb = _mm256_slli_epi16(qh, 2); break;
                    case 2: hb = qh; break;
                    default: hb = _mm256_srli_epi16(qh, 2); break;
                    }
                    q[r] = _mm256_or_si256(lo, _mm256_and_si256(hb, m3));
                    s[r] = scale_pair16(s8[r], k0, true);
                }
                isum_step32(isum, q, NULL, s, a + ib * 292 + 4 + 128 * h + 32 * i, as, R, C);
            }
        }
        UNROLL FOR_C
        {
            const uint8_t *ab = a + c * as + ib * 292;
            const float da = quant_ld_f32(ab);
            const __m256i bs = loadu256(ab + 260);
            UNROLL FOR_R
            {
                const __m256i off = _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16[r]), 5);
                const __m256 fi = _mm256_cvtepi32_ps(_mm256_sub_epi32(isum[r][c], off));
                acc[r][c] = _mm256_fmadd_ps(fi, _mm256_set1_ps(dw[r] * da), acc[r][c]);
            }
        }
    }
    UNROLL FOR_R UNROLL FOR_C out[r * os + c] = hsum8(acc[r][c]);
}
QUANT_DEFINE_DOT_TILE(TGT, q6_k, k_q6_k)

/* Q2_K {u8 scales[16] (scale | min << 4); u8 qs[64]; f16 d, dmin} and Q3_K {u8 hmask[32]; u8
 * qs[64]; u8 scales[12]; f16 d}. Both keep 2-bit quants in qs: the 32 bytes of half n hold, at
 * bit pair j, elements 128n + 32j + 0..31, i.e. sub-blocks (16 elements) 8n + 2j and 8n + 2j + 1.
 * One maddubs per (n, j) against those 32 activations, then madd with the two sub-blocks'
 * scales (scale_pair16) gives exact int32 partial sums, as in k_q6_k. */

/* Q2_K: sum_s sc_s * dot(q, a)_s * d * da - sum_s m_s * bsum_s * dmin * da, per block */
KINL void k_q2_k(int64_t n, const uint8_t *w, size_t ws, const uint8_t *a, size_t as, float *out,
                 size_t os, const int R, const int C)
{
    const int64_t nb = n / 256;
    __m256 acc[4][4];
    UNROLL FOR_R UNROLL FOR_C acc[r][c] = _mm256_setzero_ps();
    const __m256i m2 = _mm256_set1_epi8(0x03);
    const __m128i m4 = _mm_set1_epi8(0x0F);
    for (int64_t ib = 0; ib < nb; ib++) {
        __m128i sc8[4];
        __m256i mn16[4];
        float dw[4], dmw[4];
        UNROLL FOR_R
        {
            const uint8_t *wb = w + r * ws + ib * 84;
            const __m128i raw = loadu128(wb);
            sc8[r] = _mm_and_si128(raw, m4);
            mn16[r] = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), m4));
            dw[r] = ldh_f(wb + 80);
            dmw[r] = ldh_f(wb + 82);
        }
        __m256i isum[4][4];
        UNROLL FOR_R UNROLL FOR_C isum[r][c] = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++)
            for (int j = 0; j < 4; j++) {
                __m256i q[4], sp[4];
                UNROLL FOR_R
                {
                    const __m256i qs = loadu256(w + r * ws + ib * 84 + 16 + 32 * h);
                    q[r] = _mm256_and_si256(_mm256_srli_epi16(qs, 2 * j), m2);
                    sp[r] = scale_pair16(sc8[r], 8 * h + 2 * j, false);
                }
                isum_step32(isum, q, NULL, sp, a + ib * 292 + 4 + 128 * h + 32 * j, as, R, C);
            }
        UNROLL FOR_C
        {
            const uint8_t *ab = a + c * as + ib * 292;
            const float da = quant_ld_f32(ab);
            const __m256i bs = loadu256(ab + 260);
            UNROLL FOR_R
            {
                /* llama.cpp's order: the mins' term, then the scaled sums, each one fma */
                const __m256 fm = _mm256_cvtepi32_ps(_mm256_madd_epi16(mn16[r], bs));
                acc[r][c] = _mm256_fmadd_ps(_mm256_set1_ps(-da * dmw[r]), fm, acc[r][c]);
                acc[r][c] = _mm256_fmadd_ps(_mm256_set1_ps(da * dw[r]),
                                            _mm256_cvtepi32_ps(isum[r][c]), acc[r][c]);
            }
        }
    }
    UNROLL FOR_R UNROLL FOR_C out[r * os + c] = hsum8(acc[r][c]);
}
QUANT_DEFINE_DOT_TILE(TGT, q2_k, k_q2_k)

/* Q3_K's 16 signed 6-bit scales (the -32 offset applied), as bytes */
KINL __m128i k3_scales(const uint8_t *s)
{
    /* low 4 bits: scale j < 8 in the low nibble of byte j, j >= 8 in the high nibble of j - 8;
     * top 2 bits: scale j at bits 2 * (j / 4) of byte 8 + j % 4 */
    uint64_t lo8;
    uint32_t hb;
    memcpy(&lo8, s, 8);
    memcpy(&hb, s + 8, 4);
    const __m128i v = _mm_cvtsi64_si128((long long)lo8), m4 = _mm_set1_epi8(0x0F);
    const __m128i lo =
        _mm_unpacklo_epi64(_mm_and_si128(v, m4), _mm_and_si128(_mm_srli_epi16(v, 4), m4));
    const uint32_t m2 = 0x03030303u;
    const __m128i hi = _mm_set_epi32((int)((hb >> 6) & m2), (int)((hb >> 4) & m2),
                                     (int)((hb >> 2) & m2), (int)(hb & m2));
    return _mm_sub_epi8(_mm_or_si128(lo, _mm_slli_epi16(hi, 4)), _mm_set1_epi8(32));
}

/* Q3_K: q = low2 - (hmask bit ? 0 : 4) in -4..3, as two unsigned maddubs (low2 and the 4 to
 * take off) subtracted in 16 bits: every int32 lane then holds the same exact sum as in
 * llama.cpp's AVX2 kernel, whose float steps per block (one fma) follow */
KINL void k_q3_k(int64_t n, const uint8_t *w, size_t ws, const uint8_t *a, size_t as, float *out,
                 size_t os, const int R, const int C)
{
    const int64_t nb = n / 256;
    __m256 acc[4][4];
    UNROLL FOR_R UNROLL FOR_C acc[r][c] = _mm256_setzero_ps();
    const __m256i m2 = _mm256_set1_epi8(0x03), four = _mm256_set1_epi8(0x04);
    for (int64_t ib = 0; ib < nb; ib++) {
        __m128i sc8[4];
        float dw[4];
        UNROLL FOR_R
        {
            const uint8_t *wb = w + r * ws + ib * 110;
            sc8[r] = k3_scales(wb + 96);
            dw[r] = ldh_f(wb + 108);
        }
        __m256i isum[4][4];
        UNROLL FOR_R UNROLL FOR_C isum[r][c] = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++)
            for (int j = 0; j < 4; j++) {
                __m256i q[4], q4[4], sp[4];
                const __m256i bit = _mm256_set1_epi8((char)(1 << (4 * h + j)));
                UNROLL FOR_R
                {
                    const uint8_t *wb = w + r * ws + ib * 110;
                    const __m256i qs = loadu256(wb + 32 + 32 * h);
                    const __m256i hm = loadu256(wb);
                    /* 4 where the high bit is clear */
                    q4[r] = _mm256_andnot_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hm, bit), bit),
                                                four);
                    q[r] = _mm256_and_si256(_mm256_srli_epi16(qs, 2 * j), m2);
                    sp[r] = scale_pair16(sc8[r], 8 * h + 2 * j, true);
                }
                isum_step32(isum, q, q4, sp, a + ib * 292 + 4 + 128 * h + 32 * j, as, R, C);
            }
        UNROLL FOR_C
        {
            const float da = quant_ld_f32(a + c * as + ib * 292);
            UNROLL FOR_R acc[r][c] = _mm256_fmadd_ps(_mm256_set1_ps(da * dw[r]),
                                                     _mm256_cvtepi32_ps(isum[r][c]), acc[r][c]);
        }
    }
    UNROLL FOR_R UNROLL FOR_C out[r * os + c] = hsum8(acc[r][c]);
}
QUANT_DEFINE_DOT_TILE(TGT, q3_k, k_q3_k)

/* ------------------------------------------------------------------------------------------ */
/* activation quantization (bit-identical with quant_ref.c) */

/* roundf (half away from zero), exactly: trunc, then step away if the remainder is >= 0.5 */
KINL __m256i round_away_epi32(__m256 v)
{
    const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 sgn = _mm256_set1_ps(-0.0f);
    const __m256 rem = _mm256_andnot_ps(sgn, _mm256_sub_ps(v, t));
    const __m256 ge = _mm256_cmp_ps(rem, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    const __m256 one = _mm256_or_ps(_mm256_set1_ps(1.0f), _mm256_and_ps(v, sgn));
    return _mm256_cvttps_epi32(_mm256_add_ps(t, _mm256_and_ps(ge, one)));
}

/* 4 x 8 int32 -> 32 int8 in order */
KINL __m256i pack32(__m256i a, __m256i b, __m256i c, __m256i d)
{
    const __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
    const __m256i x = _mm256_packs_epi16(ab, cd);
    return _mm256_permutevar8x32_epi32(x, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

KINL float hmax8(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

KINL void q8_block(const float *x, uint8_t *qs, float *pd, int *psum)
{
    const __m256 sgn = _mm256_set1_ps(-0.0f);
    __m256 v[4];
    __m256 am = _mm256_setzero_ps();
    for (int k = 0; k < 4; k++) {
        v[k] = _mm256_loadu_ps(x + 8 * k);
        am = _mm256_max_ps(am, _mm256_andnot_ps(sgn, v[k]));
    }
    const float amax = hmax8(am);
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    const __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    for (int k = 0; k < 4; k++)
        q[k] = round_away_epi32(_mm256_mul_ps(v[k], vid));
    _mm256_storeu_si256((__m256i *)(void *)qs, pack32(q[0], q[1], q[2], q[3]));
    if (psum) {
        __m256i s = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        __m128i t = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4E));
        t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xB1));
        *psum = _mm_cvtsi128_si32(t);
    }
    *pd = d;
}

TGT static void qa_q8_0(const float *x, void *vy, int64_t n)
{
    uint8_t *b = vy;
    for (int64_t i = 0; i < n / 32; i++, b += 34, x += 32) {
        float d;
        q8_block(x, b + 2, &d, NULL);
        const uint16_t h = fp32_to_fp16(d);
        memcpy(b, &h, 2);
    }
}

TGT static void qa_q8_1(const float *x, void *vy, int64_t n)
{
    uint8_t *b = vy;
    for (int64_t i = 0; i < n / 32; i++, b += 36, x += 32) {
        float d;
        int sum;
        q8_block(x, b + 4, &d, &sum);
        const uint16_t h[2] = {fp32_to_fp16(d), fp32_to_fp16((float)sum * d)};
        memcpy(b, h, 4);
    }
}

TGT static void qa_q8_k(const float *x, void *vy, int64_t n)
{
    uint8_t *b = vy;
    const __m256 sgn = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < n / 256; i++, b += 292, x += 256) {
        __m256 am = _mm256_setzero_ps();
        for (int k = 0; k < 32; k++)
            am = _mm256_max_ps(am, _mm256_andnot_ps(sgn, _mm256_loadu_ps(x + 8 * k)));
        const float amax = hmax8(am);
        if (amax == 0.0f) { /* also catches -0.0 blocks: same as the reference */
            memset(b, 0, 292);
            continue;
        }
        /* the first element with the largest magnitude, with its sign */
        float max = 0.0f;
        const __m256 vam = _mm256_set1_ps(amax);
        for (int k = 0; k < 32; k++) {
            const __m256 e =
                _mm256_cmp_ps(_mm256_andnot_ps(sgn, _mm256_loadu_ps(x + 8 * k)), vam, _CMP_EQ_OQ);
            const int msk = _mm256_movemask_ps(e);
            if (msk) {
                max = x[8 * k + __builtin_ctz((unsigned)msk)];
                break;
            }
        }
        const float iscale = -127.0f / max;
        const __m256 vis = _mm256_set1_ps(iscale);
        const __m256i lim = _mm256_set1_epi32(127);
        for (int k = 0; k < 8; k++) {
            __m256i q[4];
            for (int l = 0; l < 4; l++)
                q[l] = _mm256_min_epi32(
                    _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 32 * k + 8 * l), vis)),
                    lim);
            _mm256_storeu_si256((__m256i *)(void *)(b + 4 + 32 * k),
                                pack32(q[0], q[1], q[2], q[3]));
            /* bsums of the two 16-groups */
            for (int g = 0; g < 2; g++) {
                __m256i s = _mm256_add_epi32(q[2 * g], q[2 * g + 1]);
                __m128i t =
                    _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
                t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4E));
                t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xB1));
                const int16_t s16 = (int16_t)_mm_cvtsi128_si32(t);
                memcpy(b + 260 + 2 * (2 * k + g), &s16, 2);
            }
        }
        const float d = 1.0f / iscale;
        memcpy(b, &d, 4);
    }
}

TGT static void qa_f16(const float *x, void *vy, int64_t n)
{
    uint8_t *y = vy;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(void *)(y + 2 * i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) {
        const uint16_t h = fp32_to_fp16(x[i]);
        memcpy(y + 2 * i, &h, 2);
    }
}

void quant_avx2_fill(enum cnd_dtype t, struct quant_kernels *k)
{
#define SET(name)                                                                                  \
    do {                                                                                           \
        k->vec_dot = name##_dot;                                                                   \
        k->vec_dot_tile = name##_tile;                                                             \
    } while (0)
    switch (t) {
    case CND_DTYPE_F32: SET(f32); break;
    case CND_DTYPE_F16:
        SET(f16);
        k->quantize_act = qa_f16;
        break;
    case CND_DTYPE_BF16: SET(bf16); break;
    case CND_DTYPE_Q8_0:
        SET(q8_0);
        k->quantize_act = qa_q8_0;
        break;
    case CND_DTYPE_Q4_0:
        SET(q4_0);
        k->quantize_act = qa_q8_0;
        break;
    case CND_DTYPE_Q5_0:
        SET(q5_0);
        k->quantize_act = qa_q8_0;
        break;
    case CND_DTYPE_Q4_1:
        SET(q4_1);
        k->quantize_act = qa_q8_1;
        break;
    case CND_DTYPE_Q5_1:
        SET(q5_1);
        k->quantize_act = qa_q8_1;
        break;
    case CND_DTYPE_Q4_K:
        SET(q4_k);
        k->quantize_act = qa_q8_k;
        break;
    case CND_DTYPE_Q5_K:
        SET(q5_k);
        k->quantize_act = qa_q8_k;
        break;
    case CND_DTYPE_Q6_K:
        SET(q6_k);
        k->quantize_act = qa_q8_k;
        break;
    case CND_DTYPE_Q2_K:
        SET(q2_k);
        k->quantize_act = qa_q8_k;
        break;
    case CND_DTYPE_Q3_K:
        SET(q3_k);
        k->quantize_act = qa_q8_k;
        break;
    default: break;
    }
#undef SET
}

#else

void quant_avx2_fill(enum cnd_dtype t, struct quant_kernels *k)
{
    CND_UNUSED(t);
    CND_UNUSED(k);
}

#endif
