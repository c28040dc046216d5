/* avx512_reduce.h: horizontal sums of 16 floats in one fixed order, _mm512_reduce_add_ps as GCC
 * expands it (lanes i + i+8, then i + i+4, i + i+2, 0 + 1), which is how ggml reduces its
 * AVX-512 accumulators. One vector at a time, or 16 vectors at once (a transposing tree of
 * the same adds, for 16 rows or keys side by side). The quant kernels and attention share
 * them so that both keep llama.cpp's bits. x86-64 only. */
#ifndef CINDER_AVX512_REDUCE_H
#define CINDER_AVX512_REDUCE_H

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX512_REDUCE_INL                                                                          \
    static inline __attribute__((always_inline, target("avx512f,avx512dq,avx512vl")))

AVX512_REDUCE_INL float avx512_hsum16(__m512 v)
{
    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* lane k of the result = avx512_hsum16(v[k]), bit for bit */
AVX512_REDUCE_INL __m512 avx512_hsum16x16(const __m512 *v)
{
    __m512 b[8], c[4], d[2];
    for (int k = 0; k < 8; k++)
        b[k] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * k], v[2 * k + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_f32x4(v[2 * k], v[2 * k + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    for (int k = 0; k < 4; k++)
        c[k] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * k], b[2 * k + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_f32x4(b[2 * k], b[2 * k + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    for (int k = 0; k < 2; k++)
        d[k] = _mm512_add_ps(_mm512_shuffle_ps(c[2 * k], c[2 * k + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(c[2 * k], c[2 * k + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    const __m512 r = _mm512_add_ps(_mm512_shuffle_ps(d[0], d[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm512_shuffle_ps(d[0], d[1], _MM_SHUFFLE(3, 1, 3, 1)));
    /* element 4L + m holds vector L + 4m */
    const __m512i idx = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
    return _mm512_permutexvar_ps(idx, r);
}

#endif
#endif
