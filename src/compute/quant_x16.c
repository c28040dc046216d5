/* quant_x16.c: the 16-row interleaved weight layout (packing, activation side data) and its
 * AVX-512 VNNI matrix kernels; see quant_x16.h for the arithmetic contract.
 *
 * Layout of one group (16 rows) and one block, row r always in dword lane r of a vector:
 *   Q4_0 (288 B)  nib[4][64] | d[16] f16. Nibble vector v: byte b of lane r holds the quant of
 *                 element 8v+b in its low and of element 8v+4+b in its high nibble.
 *   Q8_0 (544 B)  q[8][64] | d[16] f16. Vector k: byte b of lane r = quant(4k+b) + 128.
 *   Q4_K (2368 B) d[16] f16 | dmin[16] f16 | sc[8][16] u8 | mins[4][16][2] u8 (sub-block
 *                 pairs 2t, 2t+1 side by side per row) | nib[32][64] (as Q4_0).
 *   Q5_K (2880 B) as Q4_K (nibbles: the low 4 bits) | hi[8][64]: vector h, byte b of lane r:
 *                 bit 2i / 2i+1 = bit 4 of elements 8(4h+i)+b / 8(4h+i)+4+b, i = 0..3.
 *   Q6_K (3360 B) d[16] f16 | sc[16][16] s8 | nib[32][64] (low 4 bits, as Q4_0) | hi[16][64]:
 *                 vector s, byte b of lane r: bits 0-1, 2-3, 4-5, 6-7 = top two bits of
 *                 elements 16s+b, 16s+4+b, 16s+8+b, 16s+12+b.
 * Weights enter vpdpbusd unsigned (0..15, 0..31, 0..63, q+128); the activation side of the offset
 * (8, 32 or 128 times the activation sum of the block or sub-block) is the accumulator's start
 * value, prepared per column with the block's scale as a float. */
#include "cinder/quant_x16.h"
#include "cinder/fp16.h"
#include "cinder/quant.h"
#include "quant_internal.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* bytes per group and block */
static size_t group_block_bytes(enum cnd_dtype t)
{
    switch (t) {
    case CND_DTYPE_Q4_0: return 288;
    case CND_DTYPE_Q8_0: return 544;
    case CND_DTYPE_Q4_K: return 2368;
    case CND_DTYPE_Q5_K: return 2880;
    case CND_DTYPE_Q6_K: return 3360;
    default: return 0;
    }
}

bool quant_x16_supported(enum cnd_dtype t)
{
    return group_block_bytes(t) != 0 && quant_simd_detect() >= QUANT_SIMD_AVX512_VNNI;
}

size_t quant_x16_size(enum cnd_dtype t, int64_t n_in, int64_t n_rows)
{
    const int64_t nb = n_in / dtype_block_size(t), ng = (n_rows + 15) / 16;
    return (size_t)(nb * ng) * group_block_bytes(t);
}

/* ---- packing (scalar: runs once at load time) ---- */

/* llama.cpp's Q4_K 6-bit scale/min unpacking (a fact of the format) */
static void q4k_scale_min(int j, const uint8_t *s, uint8_t *sc, uint8_t *m)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (uint8_t)((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4));
        *m = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

/* nibble vector v, lane r: element 8v+b low, 8v+4+b high */
static void put_nibbles(uint8_t *nib, int r, const uint8_t *q /* n quants 0..15 */, int n)
{
    for (int v = 0; v < n / 8; v++)
        for (int b = 0; b < 4; b++)
            nib[64 * v + 4 * r + b] =
                (uint8_t)((q[8 * v + b] & 0xF) | ((q[8 * v + 4 + b] & 0xF) << 4));
}

static void pack_block(enum cnd_dtype t, const uint8_t *blk /* NULL: zero row */, int r, uint8_t *g)
{
    uint8_t q[256];
    switch (t) {
    case CND_DTYPE_Q4_0: {
        const uint16_t d = blk ? quant_ld_u16(blk) : 0;
        for (int i = 0; i < 16; i++) {
            q[i] = blk ? blk[2 + i] & 0xF : 0;
            q[i + 16] = blk ? blk[2 + i] >> 4 : 0;
        }
        put_nibbles(g, r, q, 32);
        memcpy(g + 256 + 2 * r, &d, 2);
        break;
    }
    case CND_DTYPE_Q8_0: {
        const uint16_t d = blk ? quant_ld_u16(blk) : 0;
        for (int i = 0; i < 32; i++)
            g[64 * (i / 4) + 4 * r + i % 4] = (uint8_t)((blk ? (int8_t)blk[2 + i] : 0) + 128);
        memcpy(g + 512 + 2 * r, &d, 2);
        break;
    }
    case CND_DTYPE_Q4_K:
    case CND_DTYPE_Q5_K: {
        const bool q5 = t == CND_DTYPE_Q5_K;
        const uint16_t d = blk ? quant_ld_u16(blk) : 0, dm = blk ? quant_ld_u16(blk + 2) : 0;
        memcpy(g + 2 * r, &d, 2);
        memcpy(g + 32 + 2 * r, &dm, 2);
        for (int s = 0; s < 8; s++) {
            uint8_t sc = 0, m = 0;
            if (blk)
                q4k_scale_min(s, blk + 4, &sc, &m);
            g[64 + 16 * s + r] = sc;
            g[192 + 32 * (s / 2) + 2 * r + (s & 1)] = m;
        }
        /* nibbles at 16 (Q4_K) or 48 (Q5_K, after qh[32]); Q5_K's bit 4 of element e is bit
         * e / 32 of qh[e % 32] */
        const uint8_t *qs = blk ? blk + (q5 ? 48 : 16) : NULL;
        for (int j = 0; j < 4; j++)
            for (int i = 0; i < 32; i++) {
                const uint8_t b = qs ? qs[32 * j + i] : 0;
                q[64 * j + i] = b & 0xF;
                q[64 * j + 32 + i] = b >> 4;
            }
        if (q5 && blk)
            for (int e = 0; e < 256; e++)
                q[e] = (uint8_t)(q[e] | (((blk[16 + e % 32] >> (e / 32)) & 1) << 4));
        put_nibbles(g + 320, r, q, 256);
        if (q5)
            for (int h = 0; h < 8; h++)
                for (int b = 0; b < 4; b++) {
                    uint8_t v = 0;
                    for (int i = 0; i < 4; i++) {
                        const int e = 8 * (4 * h + i) + b;
                        v = (uint8_t)(v | ((q[e] >> 4) << (2 * i)) |
                                      ((q[e + 4] >> 4) << (2 * i + 1)));
                    }
                    g[2368 + 64 * h + 4 * r + b] = v;
                }
        break;
    }
    case CND_DTYPE_Q6_K: {
        const uint16_t d = blk ? quant_ld_u16(blk + 208) : 0;
        memcpy(g + 2 * r, &d, 2);
        for (int s = 0; s < 16; s++)
            g[32 + 16 * s + r] = blk ? blk[192 + s] : 0;
        for (int h = 0; h < 2; h++)
            for (int l = 0; l < 32; l++) {
                const uint8_t *ql = blk ? blk + 64 * h : NULL,
                              *qh = blk ? blk + 128 + 32 * h : NULL;
                const int e = 128 * h + l;
                q[e] = ql ? (uint8_t)((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) : 32;
                q[e + 32] = ql ? (uint8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) : 32;
                q[e + 64] = ql ? (uint8_t)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) : 32;
                q[e + 96] = ql ? (uint8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) : 32;
            }
        put_nibbles(g + 288, r, q, 256);
        for (int s = 0; s < 16; s++)
            for (int b = 0; b < 4; b++) {
                const int e = 16 * s + b;
                g[2336 + 64 * s + 4 * r + b] =
                    (uint8_t)((q[e] >> 4) | ((q[e + 4] >> 4) << 2) | ((q[e + 8] >> 4) << 4) |
                              ((q[e + 12] >> 4) << 6));
            }
        break;
    }
    default: break;
    }
}

void quant_x16_pack(enum cnd_dtype t, int64_t n_in, int64_t n_rows, const void *src, size_t src_row,
                    int64_t g0, int64_t g1, void *dst)
{
    const int64_t nb = n_in / dtype_block_size(t);
    const size_t gb = group_block_bytes(t), bb = (size_t)dtype_type_size(t);
    for (int64_t g = g0; g < g1; g++)
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *out = (uint8_t *)dst + ((size_t)g * (size_t)nb + (size_t)b) * gb;
            memset(out, 0, gb);
            for (int r = 0; r < 16; r++) {
                const int64_t row = 16 * g + r;
                const uint8_t *blk =
                    row < n_rows ? (const uint8_t *)src + (size_t)row * src_row + (size_t)b * bb
                                 : NULL;
                pack_block(t, blk, r, out);
            }
        }
}

/* ---- activation side data ---- */

/* words per block: Q8_0 {d, init}; Q4_K, Q5_K {d, 4 sub-block-sum pairs}; Q6_K {d, 16 inits} */
static int aux_block_words(enum cnd_dtype t)
{
    switch (t) {
    case CND_DTYPE_Q4_0:
    case CND_DTYPE_Q8_0: return 2;
    case CND_DTYPE_Q4_K:
    case CND_DTYPE_Q5_K: return 5;
    case CND_DTYPE_Q6_K: return 17;
    default: return 0;
    }
}

size_t quant_x16_aux_words(enum cnd_dtype t, int64_t n_in)
{
    return (size_t)(n_in / dtype_block_size(t) * aux_block_words(t));
}

void quant_x16_prepare(enum cnd_dtype t, int64_t n_in, const void *act, size_t act_row, int64_t c0,
                       int64_t c1, int32_t *aux)
{
    const int64_t nb = n_in / dtype_block_size(t);
    const int w = aux_block_words(t);
    for (int64_t c = c0; c < c1; c++) {
        const uint8_t *a = (const uint8_t *)act + (size_t)c * act_row;
        int32_t *x = aux + (size_t)c * quant_x16_aux_words(t, n_in);
        for (int64_t b = 0; b < nb; b++, x += w) {
            if (t == CND_DTYPE_Q4_0 || t == CND_DTYPE_Q8_0) {
                const uint8_t *ab = a + 34 * b;
                const float d = fp16_to_fp32(quant_ld_u16(ab));
                int32_t s = 0;
                for (int i = 0; i < 32; i++)
                    s += (int8_t)ab[2 + i];
                memcpy(&x[0], &d, 4);
                x[1] = -(t == CND_DTYPE_Q4_0 ? 8 : 128) * s;
            } else {
                const uint8_t *ab = a + 292 * b;
                int16_t bs[16];
                memcpy(x, ab, 4); /* d: f32 already */
                memcpy(bs, ab + 260, 32);
                if (t == CND_DTYPE_Q4_K || t == CND_DTYPE_Q5_K) {
                    for (int p = 0; p < 4; p++) {
                        const int32_t lo = bs[4 * p] + bs[4 * p + 1],
                                      hi = bs[4 * p + 2] + bs[4 * p + 3];
                        x[1 + p] = (int32_t)(((uint32_t)(uint16_t)(int16_t)hi << 16) |
                                             (uint16_t)(int16_t)lo);
                    }
                } else {
                    for (int s = 0; s < 16; s++)
                        x[1 + s] = -32 * bs[s];
                }
            }
        }
    }
}

/* ---- kernels ---- */

#if defined(__x86_64__)

#define KINL                                                                                       \
    static inline __attribute__((                                                                  \
        always_inline, target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,f16c,fma")))
#define TGT      __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,f16c,fma")))
#define FOR_COLS _Pragma("GCC unroll 8") for (int c = 0; c < C; c++)

/* Software prefetch this many bytes ahead in the packed stream: the hardware prefetcher alone
 * streams only a fraction of the DRAM bandwidth on the machines we measured. */
#ifndef X16_PF
#define X16_PF 4096
#endif
#define PF(p) _mm_prefetch((const char *)(p) + X16_PF, _MM_HINT_T0)

KINL __m512i bcast32(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* One block of one group for C columns: acc[c] (16 rows of column c) += this block's terms.
 * Every kernel is a loop of these over the blocks, for one group and up to 8 columns
 * (prompts, batches) or up to 4 groups and one column (decode: several memory streams). */

/* Q4_0 / Q8_0 against Q8_0 activations (34-byte blocks) */
KINL void b_q8g(const uint8_t *g, int64_t b, const uint8_t *act, size_t act_row, const int32_t *aux,
                size_t aux_words, __m512 *acc, const int C, const bool is_q4)
{
    const size_t gb = is_q4 ? 288 : 544;
    const __m512i lo4 = _mm512_set1_epi8(0x0F);
    for (size_t o = 0; o < gb; o += 64)
        PF(g + o);
    __m512i s[8];
    FOR_COLS s[c] = _mm512_set1_epi32(aux[(size_t)c * aux_words + 2 * b + 1]);
    if (is_q4) {
        _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++)
        {
            const __m512i W = _mm512_loadu_si512(g + 64 * v);
            const __m512i w0 = _mm512_and_si512(W, lo4);
            const __m512i w1 = _mm512_and_si512(_mm512_srli_epi16(W, 4), lo4);
            FOR_COLS
            {
                const uint8_t *a = act + (size_t)c * act_row + 34 * b + 2 + 8 * v;
                s[c] = _mm512_dpbusd_epi32(s[c], w0, bcast32(a));
                s[c] = _mm512_dpbusd_epi32(s[c], w1, bcast32(a + 4));
            }
        }
    } else {
        _Pragma("GCC unroll 8") for (int k = 0; k < 8; k++)
        {
            const __m512i W = _mm512_loadu_si512(g + 64 * k);
            FOR_COLS s[c] = _mm512_dpbusd_epi32(
                s[c], W, bcast32(act + (size_t)c * act_row + 34 * b + 2 + 4 * k));
        }
    }
    const __m512 D =
        _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(g + gb - 32)));
    FOR_COLS
    {
        const __m512 da = _mm512_set1_ps(quant_ld_f32(&aux[(size_t)c * aux_words + 2 * b]));
        acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[c]), _mm512_mul_ps(D, da), acc[c]);
    }
}

/* Q4_K, and Q5_K (Q5: bit 4 of each quant from the hi vectors, as Q6_K's top bits) */
KINL void b_q4k(const uint8_t *g, int64_t b, const uint8_t *act, size_t act_row, const int32_t *aux,
                size_t aux_words, __m512 *acc, const int C, const bool Q5)
{
    const __m512i lo4 = _mm512_set1_epi8(0x0F), b4 = _mm512_set1_epi8(0x10);
    for (int o = 0; o < 320; o += 64)
        PF(g + o);
    __m512i isum[8];
    FOR_COLS isum[c] = _mm512_setzero_si512();
    for (int s = 0; s < 8; s++) {
        __m512i sub[8];
        FOR_COLS sub[c] = _mm512_setzero_si512();
        __m512i H = _mm512_setzero_si512();
        if (Q5) {
            PF(g + 2368 + 64 * s);
            H = _mm512_loadu_si512(g + 2368 + 64 * s);
        }
        _Pragma("GCC unroll 4") for (int v = 4 * s; v < 4 * s + 4; v++)
        {
            PF(g + 320 + 64 * v);
            const __m512i W = _mm512_loadu_si512(g + 320 + 64 * v);
            __m512i w0 = _mm512_and_si512(W, lo4);
            __m512i w1 = _mm512_and_si512(_mm512_srli_epi16(W, 4), lo4);
            if (Q5) {
                /* bits 2i and 2i+1 of each byte (i = v - 4s) to bit 4 */
                const int i = v - 4 * s;
                const __m512i h0 = i == 0   ? _mm512_slli_epi16(H, 4)
                                   : i == 1 ? _mm512_slli_epi16(H, 2)
                                   : i == 2 ? H
                                            : _mm512_srli_epi16(H, 2);
                const __m512i h1 = i == 0   ? _mm512_slli_epi16(H, 3)
                                   : i == 1 ? _mm512_slli_epi16(H, 1)
                                   : i == 2 ? _mm512_srli_epi16(H, 1)
                                            : _mm512_srli_epi16(H, 3);
                w0 = _mm512_or_si512(w0, _mm512_and_si512(h0, b4));
                w1 = _mm512_or_si512(w1, _mm512_and_si512(h1, b4));
            }
            FOR_COLS
            {
                const uint8_t *a = act + (size_t)c * act_row + 292 * b + 4 + 8 * v;
                sub[c] = _mm512_dpbusd_epi32(sub[c], w0, bcast32(a));
                sub[c] = _mm512_dpbusd_epi32(sub[c], w1, bcast32(a + 4));
            }
        }
        const __m512i S =
            _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(g + 64 + 16 * s)));
        FOR_COLS isum[c] = _mm512_add_epi32(isum[c], _mm512_mullo_epi32(sub[c], S));
    }
    __m512i mp[4];
    _Pragma("GCC unroll 4") for (int t = 0; t < 4; t++) mp[t] =
        _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(const void *)(g + 192 + 32 * t)));
    const __m512 D = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)g));
    const __m512 DM = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(g + 32)));
    FOR_COLS
    {
        const int32_t *x = aux + (size_t)c * aux_words + 5 * b;
        __m512i ms = _mm512_setzero_si512();
        _Pragma("GCC unroll 4") for (int t = 0; t < 4; t++) ms =
            _mm512_dpwssd_epi32(ms, mp[t], _mm512_set1_epi32(x[1 + t]));
        const __m512 da = _mm512_set1_ps(quant_ld_f32(x));
        acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[c]), _mm512_mul_ps(D, da), acc[c]);
        acc[c] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(ms), _mm512_mul_ps(DM, da), acc[c]);
    }
}

KINL void b_q6k(const uint8_t *g, int64_t b, const uint8_t *act, size_t act_row, const int32_t *aux,
                size_t aux_words, __m512 *acc, const int C)
{
    const __m512i lo4 = _mm512_set1_epi8(0x0F), hi2 = _mm512_set1_epi8(0x30);
    for (int o = 0; o < 288; o += 64)
        PF(g + o);
    __m512i isum[8];
    FOR_COLS isum[c] = _mm512_setzero_si512();
    for (int s = 0; s < 16; s++) {
        PF(g + 2336 + 64 * s);
        const __m512i H = _mm512_loadu_si512(g + 2336 + 64 * s);
        __m512i sub[8];
        FOR_COLS sub[c] = _mm512_set1_epi32(aux[(size_t)c * aux_words + 17 * b + 1 + s]);
        _Pragma("GCC unroll 2") for (int half = 0; half < 2; half++)
        {
            const int v = 2 * s + half;
            PF(g + 288 + 64 * v);
            const __m512i N = _mm512_loadu_si512(g + 288 + 64 * v);
            const __m512i h0 = half ? H : _mm512_slli_epi16(H, 4);
            const __m512i h1 = half ? _mm512_srli_epi16(H, 2) : _mm512_slli_epi16(H, 2);
            /* (low nibble) | (two high bits moved to bits 4-5) */
            const __m512i w0 = _mm512_or_si512(_mm512_and_si512(N, lo4), _mm512_and_si512(h0, hi2));
            const __m512i w1 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(N, 4), lo4),
                                               _mm512_and_si512(h1, hi2));
            FOR_COLS
            {
                const uint8_t *a = act + (size_t)c * act_row + 292 * b + 4 + 8 * v;
                sub[c] = _mm512_dpbusd_epi32(sub[c], w0, bcast32(a));
                sub[c] = _mm512_dpbusd_epi32(sub[c], w1, bcast32(a + 4));
            }
        }
        const __m512i S =
            _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(g + 32 + 16 * s)));
        FOR_COLS isum[c] = _mm512_add_epi32(isum[c], _mm512_mullo_epi32(sub[c], S));
    }
    const __m512 D = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)g));
    FOR_COLS
    {
        const __m512 da = _mm512_set1_ps(quant_ld_f32(&aux[(size_t)c * aux_words + 17 * b]));
        acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[c]), _mm512_mul_ps(D, da), acc[c]);
    }
}

/* the block function of type t (Q4_0 / Q8_0 / Q4_K / Q5_K / Q6_K) on acc for C columns */
KINL void blk(enum cnd_dtype t, const uint8_t *g, int64_t b, const uint8_t *act, size_t act_row,
              const int32_t *aux, size_t aw, __m512 *acc, const int C)
{
    switch (t) {
    case CND_DTYPE_Q4_0: b_q8g(g, b, act, act_row, aux, aw, acc, C, true); break;
    case CND_DTYPE_Q8_0: b_q8g(g, b, act, act_row, aux, aw, acc, C, false); break;
    case CND_DTYPE_Q4_K: b_q4k(g, b, act, act_row, aux, aw, acc, C, false); break;
    case CND_DTYPE_Q5_K: b_q4k(g, b, act, act_row, aux, aw, acc, C, true); break;
    default: b_q6k(g, b, act, act_row, aux, aw, acc, C); break;
    }
}

static __mmask16 group_mask(int64_t n_rows, int64_t g)
{
    const int64_t left = n_rows - 16 * g;
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
}

/* one group, C columns */
KINL void k_cols(enum cnd_dtype t, const uint8_t *G, size_t gb, int64_t nb, const uint8_t *act,
                 size_t act_row, const int32_t *aux, size_t aw, float *out, size_t out_row,
                 __mmask16 m, const int C)
{
    __m512 acc[8];
    FOR_COLS acc[c] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++)
        blk(t, G + (size_t)b * gb, b, act, act_row, aux, aw, acc, C);
    FOR_COLS _mm512_mask_storeu_ps(out + (size_t)c * out_row, m, acc[c]);
}

#define X16_STREAMS 4 /* decode: groups (memory streams) worked on together (8: no gain) */

/* NG groups g[0..NG) of one column, block by block: NG memory streams at once */
KINL void k_groups(enum cnd_dtype t, const uint8_t *packed, size_t gbytes, size_t gb, int64_t nb,
                   int64_t n_rows, const int64_t *g, const uint8_t *act, const int32_t *aux,
                   float *out, const int NG)
{
    __m512 acc[X16_STREAMS];
    _Pragma("GCC unroll 4") for (int j = 0; j < NG; j++) acc[j] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++)
        _Pragma("GCC unroll 4") for (int j = 0; j < NG; j++)
            blk(t, packed + (size_t)g[j] * gbytes + (size_t)b * gb, b, act, 0, aux, 0, &acc[j], 1);
    _Pragma("GCC unroll 4") for (int j = 0; j < NG; j++)
        _mm512_mask_storeu_ps(out + 16 * g[j], group_mask(n_rows, g[j]), acc[j]);
}

/* body once per x16 type, with T that type as a constant (so each instance is specialized) */
#define TYPE_CASE(TT, ...)                                                                         \
    case TT: {                                                                                     \
        const enum cnd_dtype T = TT;                                                               \
        __VA_ARGS__;                                                                               \
    } break;
#define TYPE_SWITCH(t, ...)                                                                        \
    switch (t) {                                                                                   \
        TYPE_CASE(CND_DTYPE_Q4_0, __VA_ARGS__)                                                     \
        TYPE_CASE(CND_DTYPE_Q8_0, __VA_ARGS__)                                                     \
        TYPE_CASE(CND_DTYPE_Q4_K, __VA_ARGS__)                                                     \
        TYPE_CASE(CND_DTYPE_Q5_K, __VA_ARGS__)                                                     \
        TYPE_CASE(CND_DTYPE_Q6_K, __VA_ARGS__)                                                     \
    default: break;                                                                                \
    }
#define XCASE(call, N)                                                                             \
    case N: call(N); break;
/* (a case list: kept out of clang-format, which folds it differently on every pass) */
/* clang-format off */
#define XSWITCH(C, call)                                                                           \
    switch (C) {                                                                                   \
        XCASE(call, 1)                                                                             \
        XCASE(call, 2)                                                                             \
        XCASE(call, 3)                                                                             \
        XCASE(call, 4)                                                                             \
        XCASE(call, 5)                                                                             \
        XCASE(call, 6)                                                                             \
        XCASE(call, 7)                                                                             \
        XCASE(call, 8)                                                                             \
    default: break;                                                                                \
    }
/* clang-format on */

TGT static void gemm_avx512(enum cnd_dtype t, int64_t n_in, int64_t n_rows, const uint8_t *packed,
                            int64_t g0, int64_t g1, const uint8_t *act, size_t act_row,
                            const int32_t *aux, int64_t n_cols, float *out, size_t out_row)
{
    const int64_t nb = n_in / dtype_block_size(t);
    const size_t gb = group_block_bytes(t), gbytes = (size_t)nb * gb,
                 aw = quant_x16_aux_words(t, n_in);
    if (n_cols == 1) {
        /* the range as X16_STREAMS interleaved parts: groups g0+i, g0+i+s, g0+i+2s, ... */
        const int64_t n = g1 - g0, s = (n + X16_STREAMS - 1) / X16_STREAMS;
        for (int64_t i = 0; i < s; i++) {
            int64_t g[X16_STREAMS] = {0};
            int NG = 0;
            for (int j = 0; j < X16_STREAMS; j++)
                if (i + j * s < n)
                    g[NG++] = g0 + i + j * s;
#define GRP(N) k_groups(T, packed, gbytes, gb, nb, n_rows, g, act, aux, out, N)
            TYPE_SWITCH(
                t, switch (NG) {
                    case 1: GRP(1); break;
                    case 2: GRP(2); break;
                    case 3: GRP(3); break;
                    default: GRP(4); break;
                })
#undef GRP
        }
        return;
    }
    for (int64_t g = g0; g < g1; g++) {
        const uint8_t *G = packed + (size_t)g * gbytes;
        const __mmask16 m = group_mask(n_rows, g);
        for (int64_t c0 = 0; c0 < n_cols; c0 += 8) {
            const int C = n_cols - c0 < 8 ? (int)(n_cols - c0) : 8;
            const uint8_t *a = act + (size_t)c0 * act_row;
            const int32_t *x = aux + (size_t)c0 * aw;
            float *o = out + (size_t)c0 * out_row + 16 * g;
#define COLS(N) k_cols(T, G, gb, nb, a, act_row, x, aw, o, out_row, m, N)
            TYPE_SWITCH(t, XSWITCH(C, COLS))
#undef COLS
        }
    }
}

#endif

void quant_x16_gemm(enum cnd_dtype t, int64_t n_in, int64_t n_rows, const void *packed, int64_t g0,
                    int64_t g1, const void *act, size_t act_row, const int32_t *aux, int64_t n_cols,
                    float *out, size_t out_row)
{
#if defined(__x86_64__)
    gemm_avx512(t, n_in, n_rows, packed, g0, g1, act, act_row, aux, n_cols, out, out_row);
#else
    CND_UNUSED(t), CND_UNUSED(n_in), CND_UNUSED(n_rows), CND_UNUSED(packed), CND_UNUSED(g0);
    CND_UNUSED(g1), CND_UNUSED(act), CND_UNUSED(act_row), CND_UNUSED(aux), CND_UNUSED(n_cols);
    CND_UNUSED(out), CND_UNUSED(out_row);
#endif
}
