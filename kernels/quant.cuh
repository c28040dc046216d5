// quant.cuh: GGUF block layouts on the device (see src/compute/quant_ref.c), element-wise
// dequantization shared by get_rows and the cuBLAS tile dequantizer. The float operations are
// written with __fmul_rn/__fsub_rn so nvcc does not fuse them: values match the CPU bit for bit.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

enum {
    QT_F32 = 0,
    QT_F16 = 1,
    QT_Q4_0 = 2,
    QT_Q8_0 = 8,
    QT_Q4_K = 12,
    QT_Q6_K = 14,
    QT_Q8_K = 15,
    QT_BF16 = 30,
};

static __device__ __forceinline__ float ld_h(const uint8_t *p)
{
    return __half2float(*(const __half *)p); // every f16 field sits at an even offset
}

// 6-bit scale and min of sub-block j of Q4_K from the 12 packed bytes
static __device__ __forceinline__ void q4k_scale_min(int j, const uint8_t *q, int *sc, int *m)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

// Element e of a row of type T.
template <int T> static __device__ __forceinline__ float dq_elem(const uint8_t *row, int64_t e)
{
    if (T == QT_F32) {
        return ((const float *)row)[e];
    } else if (T == QT_F16) {
        return __half2float(((const __half *)row)[e]);
    } else if (T == QT_BF16) {
        return __bfloat162float(((const __nv_bfloat16 *)row)[e]);
    } else if (T == QT_Q8_0) {
        const uint8_t *b = row + (e / 32) * 34;
        return __fmul_rn((float)(int8_t)b[2 + e % 32], ld_h(b));
    } else if (T == QT_Q4_0) {
        const uint8_t *b = row + (e / 32) * 18;
        const int j = (int)(e % 32);
        const int q = j < 16 ? (b[2 + j] & 0xF) : (b[2 + j - 16] >> 4);
        return __fmul_rn((float)(q - 8), ld_h(b));
    } else if (T == QT_Q4_K) {
        const uint8_t *b = row + (e / 256) * 144;
        const int i = (int)(e % 256), s = i / 32, c = i / 64, l = i % 32;
        const uint8_t byte = b[16 + c * 32 + l];
        const int q = (i % 64) < 32 ? (byte & 0xF) : (byte >> 4);
        int sc, m;
        q4k_scale_min(s, b + 4, &sc, &m);
        const float d1 = __fmul_rn(ld_h(b), (float)sc), m1 = __fmul_rn(ld_h(b + 2), (float)m);
        return __fsub_rn(__fmul_rn(d1, (float)q), m1);
    } else { // QT_Q6_K
        const uint8_t *b = row + (e / 256) * 210;
        const int i = (int)(e % 256), n = i / 128, r = i % 128, g = r / 32, l = r % 32;
        const uint8_t lo = b[n * 64 + l + (g & 1) * 32];
        const int nib = g < 2 ? (lo & 0xF) : (lo >> 4);
        const int h = (b[128 + n * 32 + l] >> (2 * g)) & 3;
        const int q = (nib | (h << 4)) - 32;
        const float dl = __fmul_rn(ld_h(b + 208), (float)(int8_t)b[192 + i / 16]);
        return __fmul_rn(dl, (float)q);
    }
}

// Calls F.template operator()<T>() for a supported weight type; returns false otherwise.
template <typename F> static inline bool dispatch_wtype(int t, F f)
{
    switch (t) {
    case QT_F32: f.template operator()<QT_F32>(); return true;
    case QT_F16: f.template operator()<QT_F16>(); return true;
    case QT_BF16: f.template operator()<QT_BF16>(); return true;
    case QT_Q8_0: f.template operator()<QT_Q8_0>(); return true;
    case QT_Q4_0: f.template operator()<QT_Q4_0>(); return true;
    case QT_Q4_K: f.template operator()<QT_Q4_K>(); return true;
    case QT_Q6_K: f.template operator()<QT_Q6_K>(); return true;
    default: return false;
    }
}

static __host__ __device__ __forceinline__ size_t q_row_bytes(int t, int64_t n)
{
    switch (t) {
    case QT_F32: return (size_t)n * 4;
    case QT_F16:
    case QT_BF16: return (size_t)n * 2;
    case QT_Q8_0: return (size_t)(n / 32) * 34;
    case QT_Q4_0: return (size_t)(n / 32) * 18;
    case QT_Q4_K: return (size_t)(n / 256) * 144;
    case QT_Q6_K: return (size_t)(n / 256) * 210;
    case QT_Q8_K: return (size_t)(n / 256) * 292;
    default: return 0;
    }
}
