/* bench_read.h: the plain read that bench_membw reports and bench_stream measures the kernels
 * against: a buffer read as `streams` interleaved streams, 64-byte vector loads where the CPU
 * has AVX-512 (checked at run time), else one 8-byte load per 64-byte line, summed so that the
 * loads cannot be dropped. Header-only, as each bench is one program. */
#ifndef CINDER_BENCH_READ_H
#define CINDER_BENCH_READ_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static uint64_t bench_read_avx512(const uint8_t *b, size_t bytes,
                                                                     int streams)
{
    const size_t slice = bytes / (size_t)streams & ~(size_t)255;
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < slice; i += 256)
        for (int s = 0; s < streams; s++) {
            const uint8_t *p = b + (size_t)s * slice + i;
            a0 = _mm512_add_epi64(a0, _mm512_loadu_si512(p));
            a1 = _mm512_add_epi64(a1, _mm512_loadu_si512(p + 64));
            a2 = _mm512_add_epi64(a2, _mm512_loadu_si512(p + 128));
            a3 = _mm512_add_epi64(a3, _mm512_loadu_si512(p + 192));
        }
    return (uint64_t)_mm512_reduce_add_epi64(
        _mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)));
}
#endif

static uint64_t bench_read_streams(const uint8_t *b, size_t bytes, int streams)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return bench_read_avx512(b, bytes, streams);
#endif
    const size_t slice = bytes / (size_t)streams & ~(size_t)63;
    uint64_t sum = 0;
    for (size_t i = 0; i < slice; i += 64)
        for (int s = 0; s < streams; s++) {
            uint64_t v;
            memcpy(&v, b + (size_t)s * slice + i, 8);
            sum += v;
        }
    return sum;
}

#endif
