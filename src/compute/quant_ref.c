/* quant_ref.c: the scalar reference (test oracle) of every weight type: dequantization,
 * activation quantization (Q8_0, Q8_1, Q8_K, F16, BF16, F32), dot products and the reference
 * weight quantizers. Blocks are parsed from bytes (memcpy loads), so any alignment is fine.
 *
 * Dot products: per block an exact integer dot of the quantized values, scaled by the float
 * block scales; block results are summed in float, in block order. F32/F16/BF16 dots sum the
 * float products in double (as GGML's scalar code does).
 *
 * Block layouts (GGML):
 *   Q4_0 {f16 d; u8 qs[16]}           Q4_1 {f16 d, m; u8 qs[16]}
 *   Q5_0 {f16 d; u8 qh[4]; u8 qs[16]} Q5_1 {f16 d, m; u8 qh[4]; u8 qs[16]}
 *   Q8_0 {f16 d; i8 qs[32]}           Q8_1 {f16 d, s; i8 qs[32]}
 *   Q2_K {u8 scales[16]; u8 qs[64]; f16 d, dmin}
 *   Q3_K {u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d}
 *   Q4_K {f16 d, dmin; u8 scales[12]; u8 qs[128]}
 *   Q5_K {f16 d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]}
 *   Q6_K {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}
 *   Q8_K {f32 d; i8 qs[256]; i16 bsums[16]} */
#include "cinder/quant.h"
#include "quant_internal.h"
#include "cinder/fp16.h"
#include "cinder/status.h"

#include <math.h>
#include <string.h>

/* Shared with quant.c (no internal header: the prototype is repeated there). */

#define QK  32
#define QKK 256

static inline void sth(uint8_t *p, float f)
{
    uint16_t h = fp32_to_fp16(f);
    memcpy(p, &h, 2);
}

static inline int16_t ld16s(const uint8_t *p)
{
    int16_t v;
    memcpy(&v, p, 2);
    return v;
}

/* round-to-nearest-even of a float known to be well inside int range (GGML's nearest_int) */
static inline int nearest_int(float f)
{
    return (int)lrintf(f);
}

/* 6-bit scale/min j of Q4_K/Q5_K from the 12 packed bytes */
static inline void scale_min_k4(int j, const uint8_t *q, int *sc, int *m)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* 16 signed scales of Q3_K (6-bit, -32 offset applied) */
static inline void q3k_scales(const uint8_t *s, int out[16])
{
    for (int j = 0; j < 16; j++) {
        int lo = j < 8 ? (s[j] & 0xF) : (s[j - 8] >> 4);
        int hi = (s[8 + (j & 3)] >> (2 * (j / 4))) & 3;
        out[j] = (lo | (hi << 4)) - 32;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* unpack one block into integer quants (element order) */

static inline void unpack_q4_0(const uint8_t *b, int q[32])
{
    for (int j = 0; j < 16; j++) {
        q[j] = (b[2 + j] & 0xF) - 8;
        q[j + 16] = (b[2 + j] >> 4) - 8;
    }
}

static inline void unpack_q4_1(const uint8_t *b, int q[32])
{
    for (int j = 0; j < 16; j++) {
        q[j] = b[4 + j] & 0xF;
        q[j + 16] = b[4 + j] >> 4;
    }
}

static inline void unpack_q5(const uint8_t *qh4, const uint8_t *qs, int off, int q[32])
{
    uint32_t qh;
    memcpy(&qh, qh4, 4);
    for (int j = 0; j < 16; j++) {
        q[j] = ((qs[j] & 0xF) | (int)(((qh >> j) & 1) << 4)) - off;
        q[j + 16] = ((qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4)) - off;
    }
}

static void unpack_q2_k(const uint8_t *b, int q[256])
{
    const uint8_t *qs = b + 16;
    for (int n = 0; n < 2; n++)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++)
                q[n * 128 + j * 32 + l] = (qs[n * 32 + l] >> (2 * j)) & 3;
}

static void unpack_q3_k(const uint8_t *b, int q[256])
{
    const uint8_t *hm = b, *qs = b + 32;
    for (int n = 0; n < 2; n++)
        for (int j = 0; j < 4; j++) {
            const int bit = n * 4 + j;
            for (int l = 0; l < 32; l++)
                q[n * 128 + j * 32 + l] =
                    ((qs[n * 32 + l] >> (2 * j)) & 3) - (((hm[l] >> bit) & 1) ? 0 : 4);
        }
}

static void unpack_q4_k(const uint8_t *b, int q[256])
{
    const uint8_t *qs = b + 16;
    for (int j = 0; j < 4; j++)
        for (int l = 0; l < 32; l++) {
            q[j * 64 + l] = qs[j * 32 + l] & 0xF;
            q[j * 64 + 32 + l] = qs[j * 32 + l] >> 4;
        }
}

static void unpack_q5_k(const uint8_t *b, int q[256])
{
    const uint8_t *qh = b + 16, *qs = b + 48;
    for (int j = 0; j < 4; j++)
        for (int l = 0; l < 32; l++) {
            q[j * 64 + l] = (qs[j * 32 + l] & 0xF) | (((qh[l] >> (2 * j)) & 1) << 4);
            q[j * 64 + 32 + l] = (qs[j * 32 + l] >> 4) | (((qh[l] >> (2 * j + 1)) & 1) << 4);
        }
}

static void unpack_q6_k(const uint8_t *b, int q[256])
{
    for (int n = 0; n < 2; n++) {
        const uint8_t *ql = b + n * 64, *qh = b + 128 + n * 32;
        int *y = q + n * 128;
        for (int l = 0; l < 32; l++) {
            y[l] = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            y[l + 32] = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            y[l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            y[l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* dequantize */

static void deq_f32(const void *vx, float *y, int64_t n)
{
    memcpy(y, vx, (size_t)n * sizeof(float));
}

static void deq_f16(const void *vx, float *y, int64_t n)
{
    const uint8_t *x = vx;
    for (int64_t i = 0; i < n; i++)
        y[i] = quant_ld_f16(x + 2 * i);
}

static void deq_bf16(const void *vx, float *y, int64_t n)
{
    const uint8_t *x = vx;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, x + 2 * i, 2);
        y[i] = bf16_to_fp32(h);
    }
}

static void deq_q8_0(const void *vx, float *y, int64_t n)
{
    const uint8_t *b = vx;
    for (int64_t i = 0; i < n / QK; i++, b += 34, y += QK) {
        const float d = quant_ld_f16(b);
        for (int j = 0; j < QK; j++)
            y[j] = (float)(int8_t)b[2 + j] * d;
    }
}

static void deq_q8_1(const void *vx, float *y, int64_t n)
{
    const uint8_t *b = vx;
    for (int64_t i = 0; i < n / QK; i++, b += 36, y += QK) {
        const float d = quant_ld_f16(b);
        for (int j = 0; j < QK; j++)
            y[j] = (float)(int8_t)b[4 + j] * d;
    }
}

static void deq_q8_k(const void *vx, float *y, int64_t n)
{
    const uint8_t *b = vx;
    for (int64_t i = 0; i < n / QKK; i++, b += 292, y += QKK) {
        const float d = quant_ld_f32(b);
        for (int j = 0; j < QKK; j++)
            y[j] = (float)(int8_t)b[4 + j] * d;
    }
}

static void deq_q4_0(const void *vx, float *y, int64_t n)
{
    const uint8_t *b = vx;
    int q[32];
    for (int64_t i = 0; i < n / QK; i++, b += 18, y += QK) {
        const float d = quant_ld_f16(b);
        unpack_q4_0(b, q);
        for (int j = 0; j < QK; j++)
            y[j] = (float)q[j] * d;
    }
}

static void deq_q4_1(const void *vx, float *y, int64_t n)
{
    const uint8_t *b = vx;
    int q[32];
    for (int64_t i = 0; i < n / QK; i++, b += 20, y += QK) {
        const float d = quant_ld_f16(b), m = quant_ld_f16(b + 2);
        unpack_q4_1(b, q);
        for (int j = 0; j < QK; j++)
            y[j] = (float)q[j] * d + m;
    }
}

static void deq_q5_0(const void *vx, float *y, int64_t n)
{
    const uint8_t *b = vx;
    int q[32];
    for (int64_t i = 0; i < n / QK; i++, b += 22, y += QK) {
        const float d = quant_ld_f16(b);
        unpack_q5(b + 2, b + 6, 16, q);
        for (int j = 0; j < QK; j++)
            y[j] = (float)q[j] * d;
    }
}

static void deq_q5_1(const void *vx, float *y, int64_t n)
{
    const uint8_t *b = vx;
    int q[32];
    for (int64_t i = 0; i < n / QK; i++, b += 24, y += QK) {
        const float d = quant_ld_f16(b), m = quant_ld_f16(b + 2);
        unpack_q5(b + 4, b + 8, 0, q);
        for (int j = 0; j < QK; j++)
            y[j] = (float)q[j] * d + m;
    }
}

static void deq_q2_k(const void *vx, float *y, int64_t n)
{
    const uint8_t *b = vx;
    int q[256];
    for (int64_t i = 0; i < n / QKK; i++, b += 84, y += QKK) {
        const float d = quant_ld_f16(b + 80), dmin = quant_ld_f16(b + 82);
        unpack_q2_k(b, q);
        for (int s = 0; s < 16; s++) {
            const float dl = d * (float)(b[s] & 0xF), ml = dmin * (float)(b[s] >> 4);
            for (int l = 0; l < 16; l++)
                y[s * 16 + l] = dl * (float)q[s * 16 + l] - ml;
        }
    }
}

static void deq_q3_k(const void *vx, float *y, int64_t n)
{
    const uint8_t *b = vx;
    int q[256], sc[16];
    for (int64_t i = 0; i < n / QKK; i++, b += 110, y += QKK) {
        const float d = quant_ld_f16(b + 108);
        unpack_q3_k(b, q);
        q3k_scales(b + 96, sc);
        for (int s = 0; s < 16; s++) {
            const float dl = d * (float)sc[s];
            for (int l = 0; l < 16; l++)
                y[s * 16 + l] = dl * (float)q[s * 16 + l];
        }
    }
}

static void deq_q45_k(const uint8_t *b, const int *q, float *y)
{
    const float d = quant_ld_f16(b), dmin = quant_ld_f16(b + 2);
    for (int s = 0; s < 8; s++) {
        int sc, m;
        scale_min_k4(s, b + 4, &sc, &m);
        const float d1 = d * (float)sc, m1 = dmin * (float)m;
        for (int l = 0; l < 32; l++)
            y[s * 32 + l] = d1 * (float)q[s * 32 + l] - m1;
    }
}

static void deq_q4_k(const void *vx, float *y, int64_t n)
{
    const uint8_t *b = vx;
    int q[256];
    for (int64_t i = 0; i < n / QKK; i++, b += 144, y += QKK) {
        unpack_q4_k(b, q);
        deq_q45_k(b, q, y);
    }
}

static void deq_q5_k(const void *vx, float *y, int64_t n)
{
    const uint8_t *b = vx;
    int q[256];
    for (int64_t i = 0; i < n / QKK; i++, b += 176, y += QKK) {
        unpack_q5_k(b, q);
        deq_q45_k(b, q, y);
    }
}

static void deq_q6_k(const void *vx, float *y, int64_t n)
{
    const uint8_t *b = vx;
    int q[256];
    for (int64_t i = 0; i < n / QKK; i++, b += 210, y += QKK) {
        const float d = quant_ld_f16(b + 208);
        unpack_q6_k(b, q);
        for (int s = 0; s < 16; s++) {
            const float dl = d * (float)(int8_t)b[192 + s];
            for (int l = 0; l < 16; l++)
                y[s * 16 + l] = dl * (float)q[s * 16 + l];
        }
    }
}

void quant_dequantize_row_ref(enum cnd_dtype t, const void *x, float *y, int64_t n)
{
    switch (t) {
    case CND_DTYPE_F32: deq_f32(x, y, n); break;
    case CND_DTYPE_F16: deq_f16(x, y, n); break;
    case CND_DTYPE_BF16: deq_bf16(x, y, n); break;
    case CND_DTYPE_Q8_0: deq_q8_0(x, y, n); break;
    case CND_DTYPE_Q8_1: deq_q8_1(x, y, n); break;
    case CND_DTYPE_Q8_K: deq_q8_k(x, y, n); break;
    case CND_DTYPE_Q4_0: deq_q4_0(x, y, n); break;
    case CND_DTYPE_Q4_1: deq_q4_1(x, y, n); break;
    case CND_DTYPE_Q5_0: deq_q5_0(x, y, n); break;
    case CND_DTYPE_Q5_1: deq_q5_1(x, y, n); break;
    case CND_DTYPE_Q2_K: deq_q2_k(x, y, n); break;
    case CND_DTYPE_Q3_K: deq_q3_k(x, y, n); break;
    case CND_DTYPE_Q4_K: deq_q4_k(x, y, n); break;
    case CND_DTYPE_Q5_K: deq_q5_k(x, y, n); break;
    case CND_DTYPE_Q6_K: deq_q6_k(x, y, n); break;
    default: memset(y, 0, (size_t)n * sizeof(float)); break;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* activation quantization */

static void qa_f32(const float *x, void *y, int64_t n)
{
    memcpy(y, x, (size_t)n * sizeof(float));
}

static void qa_f16(const float *x, void *vy, int64_t n)
{
    uint8_t *y = vy;
    for (int64_t i = 0; i < n; i++)
        sth(y + 2 * i, x[i]);
}

static void qa_bf16(const float *x, void *vy, int64_t n)
{
    uint8_t *y = vy;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = fp32_to_bf16(x[i]);
        memcpy(y + 2 * i, &h, 2);
    }
}

static void qa_q8_0(const float *x, void *vy, int64_t n)
{
    uint8_t *b = vy;
    for (int64_t i = 0; i < n / QK; i++, b += 34, x += QK) {
        float amax = 0.0f;
        for (int j = 0; j < QK; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        sth(b, d);
        for (int j = 0; j < QK; j++)
            b[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
    }
}

static void qa_q8_1(const float *x, void *vy, int64_t n)
{
    uint8_t *b = vy;
    for (int64_t i = 0; i < n / QK; i++, b += 36, x += QK) {
        float amax = 0.0f;
        for (int j = 0; j < QK; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        int sum = 0;
        for (int j = 0; j < QK; j++) {
            const int v = (int)roundf(x[j] * id);
            b[4 + j] = (uint8_t)(int8_t)v;
            sum += v;
        }
        sth(b, d);
        sth(b + 2, (float)sum * d);
    }
}

static void qa_q8_k(const float *x, void *vy, int64_t n)
{
    uint8_t *b = vy;
    for (int64_t i = 0; i < n / QKK; i++, b += 292, x += QKK) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QKK; j++) {
            const float ax = fabsf(x[j]);
            if (ax > amax) {
                amax = ax;
                max = x[j];
            }
        }
        if (amax == 0.0f) {
            memset(b, 0, 292);
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < QKK; j++) {
            const int v = nearest_int(iscale * x[j]);
            b[4 + j] = (uint8_t)(int8_t)(v < 127 ? v : 127);
        }
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int l = 0; l < 16; l++)
                s += (int8_t)b[4 + g * 16 + l];
            const int16_t s16 = (int16_t)s;
            memcpy(b + 260 + 2 * g, &s16, 2);
        }
        const float d = 1.0f / iscale;
        memcpy(b, &d, 4);
    }
}

void quant_quantize_row_ref(enum cnd_dtype act, const float *x, void *y, int64_t n)
{
    switch (act) {
    case CND_DTYPE_F32: qa_f32(x, y, n); break;
    case CND_DTYPE_F16: qa_f16(x, y, n); break;
    case CND_DTYPE_BF16: qa_bf16(x, y, n); break;
    case CND_DTYPE_Q8_0: qa_q8_0(x, y, n); break;
    case CND_DTYPE_Q8_1: qa_q8_1(x, y, n); break;
    case CND_DTYPE_Q8_K: qa_q8_k(x, y, n); break;
    default: break;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* dot products */

static float dot_f32(int64_t n, const void *vw, const void *va)
{
    const float *w = vw, *a = va;
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += (double)(w[i] * a[i]);
    return (float)s;
}

static float dot_f16(int64_t n, const void *vw, const void *va)
{
    const uint8_t *w = vw, *a = va;
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += (double)(quant_ld_f16(w + 2 * i) * quant_ld_f16(a + 2 * i));
    return (float)s;
}

static float dot_bf16(int64_t n, const void *vw, const void *va)
{
    const uint8_t *w = vw, *a = va;
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) {
        uint16_t hw, ha;
        memcpy(&hw, w + 2 * i, 2);
        memcpy(&ha, a + 2 * i, 2);
        s += (double)(bf16_to_fp32(hw) * bf16_to_fp32(ha));
    }
    return (float)s;
}

static inline int idot32(const int *q, const uint8_t *a)
{
    int s = 0;
    for (int j = 0; j < 32; j++)
        s += q[j] * (int8_t)a[j];
    return s;
}

static float dot_q8_0(int64_t n, const void *vw, const void *va)
{
    const uint8_t *w = vw, *a = va;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK; i++, w += 34, a += 34) {
        int s = 0;
        for (int j = 0; j < QK; j++)
            s += (int8_t)w[2 + j] * (int8_t)a[2 + j];
        sum += quant_ld_f16(w) * quant_ld_f16(a) * (float)s;
    }
    return sum;
}

static float dot_q4_0(int64_t n, const void *vw, const void *va)
{
    const uint8_t *w = vw, *a = va;
    float sum = 0.0f;
    int q[32];
    for (int64_t i = 0; i < n / QK; i++, w += 18, a += 34) {
        unpack_q4_0(w, q);
        sum += quant_ld_f16(w) * quant_ld_f16(a) * (float)idot32(q, a + 2);
    }
    return sum;
}

static float dot_q5_0(int64_t n, const void *vw, const void *va)
{
    const uint8_t *w = vw, *a = va;
    float sum = 0.0f;
    int q[32];
    for (int64_t i = 0; i < n / QK; i++, w += 22, a += 34) {
        unpack_q5(w + 2, w + 6, 16, q);
        sum += quant_ld_f16(w) * quant_ld_f16(a) * (float)idot32(q, a + 2);
    }
    return sum;
}

static float dot_q4_1(int64_t n, const void *vw, const void *va)
{
    const uint8_t *w = vw, *a = va;
    float sum = 0.0f;
    int q[32];
    for (int64_t i = 0; i < n / QK; i++, w += 20, a += 36) {
        unpack_q4_1(w, q);
        sum += quant_ld_f16(w) * quant_ld_f16(a) * (float)idot32(q, a + 4) +
               quant_ld_f16(w + 2) * quant_ld_f16(a + 2);
    }
    return sum;
}

static float dot_q5_1(int64_t n, const void *vw, const void *va)
{
    const uint8_t *w = vw, *a = va;
    float sum = 0.0f;
    int q[32];
    for (int64_t i = 0; i < n / QK; i++, w += 24, a += 36) {
        unpack_q5(w + 4, w + 8, 0, q);
        sum += quant_ld_f16(w) * quant_ld_f16(a) * (float)idot32(q, a + 4) +
               quant_ld_f16(w + 2) * quant_ld_f16(a + 2);
    }
    return sum;
}

/* sum of activation quants in 16-groups (from the block's bsums) */
static inline int bsum(const uint8_t *a, int g)
{
    return ld16s(a + 260 + 2 * g);
}

static inline int idot16(const int *q, const uint8_t *a)
{
    int s = 0;
    for (int j = 0; j < 16; j++)
        s += q[j] * (int8_t)a[j];
    return s;
}

static float dot_q2_k(int64_t n, const void *vw, const void *va)
{
    const uint8_t *w = vw, *a = va;
    float sum = 0.0f;
    int q[256];
    for (int64_t i = 0; i < n / QKK; i++, w += 84, a += 292) {
        unpack_q2_k(w, q);
        int sumi = 0, summ = 0;
        for (int s = 0; s < 16; s++) {
            sumi += (w[s] & 0xF) * idot16(q + 16 * s, a + 4 + 16 * s);
            summ += (w[s] >> 4) * bsum(a, s);
        }
        const float da = quant_ld_f32(a);
        sum += quant_ld_f16(w + 80) * da * (float)sumi - quant_ld_f16(w + 82) * da * (float)summ;
    }
    return sum;
}

static float dot_q3_k(int64_t n, const void *vw, const void *va)
{
    const uint8_t *w = vw, *a = va;
    float sum = 0.0f;
    int q[256], sc[16];
    for (int64_t i = 0; i < n / QKK; i++, w += 110, a += 292) {
        unpack_q3_k(w, q);
        q3k_scales(w + 96, sc);
        int sumi = 0;
        for (int s = 0; s < 16; s++)
            sumi += sc[s] * idot16(q + 16 * s, a + 4 + 16 * s);
        sum += quant_ld_f16(w + 108) * quant_ld_f32(a) * (float)sumi;
    }
    return sum;
}

static float dot_q45_k(const uint8_t *w, const int *q, const uint8_t *a)
{
    int sumi = 0, summ = 0;
    for (int s = 0; s < 8; s++) {
        int sc, m;
        scale_min_k4(s, w + 4, &sc, &m);
        sumi += sc * idot32(q + 32 * s, a + 4 + 32 * s);
        summ += m * (bsum(a, 2 * s) + bsum(a, 2 * s + 1));
    }
    const float da = quant_ld_f32(a);
    return quant_ld_f16(w) * da * (float)sumi - quant_ld_f16(w + 2) * da * (float)summ;
}

static float dot_q4_k(int64_t n, const void *vw, const void *va)
{
    const uint8_t *w = vw, *a = va;
    float sum = 0.0f;
    int q[256];
    for (int64_t i = 0; i < n / QKK; i++, w += 144, a += 292) {
        unpack_q4_k(w, q);
        sum += dot_q45_k(w, q, a);
    }
    return sum;
}

static float dot_q5_k(int64_t n, const void *vw, const void *va)
{
    const uint8_t *w = vw, *a = va;
    float sum = 0.0f;
    int q[256];
    for (int64_t i = 0; i < n / QKK; i++, w += 176, a += 292) {
        unpack_q5_k(w, q);
        sum += dot_q45_k(w, q, a);
    }
    return sum;
}

static float dot_q6_k(int64_t n, const void *vw, const void *va)
{
    const uint8_t *w = vw, *a = va;
    float sum = 0.0f;
    int q[256];
    for (int64_t i = 0; i < n / QKK; i++, w += 210, a += 292) {
        unpack_q6_k(w, q);
        int sumi = 0;
        for (int s = 0; s < 16; s++)
            sumi += (int8_t)w[192 + s] * idot16(q + 16 * s, a + 4 + 16 * s);
        sum += quant_ld_f16(w + 208) * quant_ld_f32(a) * (float)sumi;
    }
    return sum;
}

static quant_vec_dot_fn ref_dot_fn(enum cnd_dtype t)
{
    switch (t) {
    case CND_DTYPE_F32: return dot_f32;
    case CND_DTYPE_F16: return dot_f16;
    case CND_DTYPE_BF16: return dot_bf16;
    case CND_DTYPE_Q8_0: return dot_q8_0;
    case CND_DTYPE_Q4_0: return dot_q4_0;
    case CND_DTYPE_Q4_1: return dot_q4_1;
    case CND_DTYPE_Q5_0: return dot_q5_0;
    case CND_DTYPE_Q5_1: return dot_q5_1;
    case CND_DTYPE_Q2_K: return dot_q2_k;
    case CND_DTYPE_Q3_K: return dot_q3_k;
    case CND_DTYPE_Q4_K: return dot_q4_k;
    case CND_DTYPE_Q5_K: return dot_q5_k;
    case CND_DTYPE_Q6_K: return dot_q6_k;
    default: return NULL;
    }
}

float quant_vec_dot_ref(enum cnd_dtype t, int64_t n, const void *w, const void *a)
{
    quant_vec_dot_fn f = ref_dot_fn(t);
    return f ? f(n, w, a) : 0.0f;
}

/* Tiles of the reference: every output is exactly the reference dot of its (row, col). */
#define REF_TILE(name, dot)                                                                        \
    static void name(int64_t n, const void *w, size_t ws, int nr, const void *a, size_t as,        \
                     int nc, float *out, size_t os)                                                \
    {                                                                                              \
        for (int r = 0; r < nr; r++)                                                               \
            for (int c = 0; c < nc; c++)                                                           \
                out[(size_t)r * os + (size_t)c] = dot(n, (const uint8_t *)w + (size_t)r * ws,      \
                                                      (const uint8_t *)a + (size_t)c * as);        \
    }

REF_TILE(tile_f32, dot_f32)
REF_TILE(tile_f16, dot_f16)
REF_TILE(tile_bf16, dot_bf16)
REF_TILE(tile_q8_0, dot_q8_0)
REF_TILE(tile_q4_0, dot_q4_0)
REF_TILE(tile_q4_1, dot_q4_1)
REF_TILE(tile_q5_0, dot_q5_0)
REF_TILE(tile_q5_1, dot_q5_1)
REF_TILE(tile_q2_k, dot_q2_k)
REF_TILE(tile_q3_k, dot_q3_k)
REF_TILE(tile_q4_k, dot_q4_k)
REF_TILE(tile_q5_k, dot_q5_k)
REF_TILE(tile_q6_k, dot_q6_k)

void quant_ref_fill(enum cnd_dtype t, struct quant_kernels *k)
{
    k->type = t;
    k->vec_dot = ref_dot_fn(t);
    switch (t) {
    case CND_DTYPE_F32:
        k->vec_dot_type = CND_DTYPE_F32, k->dequantize = deq_f32, k->quantize_act = qa_f32;
        k->vec_dot_tile = tile_f32;
        break;
    case CND_DTYPE_F16:
        k->vec_dot_type = CND_DTYPE_F16, k->dequantize = deq_f16, k->quantize_act = qa_f16;
        k->vec_dot_tile = tile_f16;
        break;
    case CND_DTYPE_BF16:
        k->vec_dot_type = CND_DTYPE_BF16, k->dequantize = deq_bf16, k->quantize_act = qa_bf16;
        k->vec_dot_tile = tile_bf16;
        break;
    case CND_DTYPE_Q8_0:
        k->vec_dot_type = CND_DTYPE_Q8_0, k->dequantize = deq_q8_0, k->quantize_act = qa_q8_0;
        k->vec_dot_tile = tile_q8_0;
        break;
    case CND_DTYPE_Q4_0:
        k->vec_dot_type = CND_DTYPE_Q8_0, k->dequantize = deq_q4_0, k->quantize_act = qa_q8_0;
        k->vec_dot_tile = tile_q4_0;
        break;
    case CND_DTYPE_Q5_0:
        k->vec_dot_type = CND_DTYPE_Q8_0, k->dequantize = deq_q5_0, k->quantize_act = qa_q8_0;
        k->vec_dot_tile = tile_q5_0;
        break;
    case CND_DTYPE_Q4_1:
        k->vec_dot_type = CND_DTYPE_Q8_1, k->dequantize = deq_q4_1, k->quantize_act = qa_q8_1;
        k->vec_dot_tile = tile_q4_1;
        break;
    case CND_DTYPE_Q5_1:
        k->vec_dot_type = CND_DTYPE_Q8_1, k->dequantize = deq_q5_1, k->quantize_act = qa_q8_1;
        k->vec_dot_tile = tile_q5_1;
        break;
    case CND_DTYPE_Q2_K:
        k->vec_dot_type = CND_DTYPE_Q8_K, k->dequantize = deq_q2_k, k->quantize_act = qa_q8_k;
        k->vec_dot_tile = tile_q2_k;
        break;
    case CND_DTYPE_Q3_K:
        k->vec_dot_type = CND_DTYPE_Q8_K, k->dequantize = deq_q3_k, k->quantize_act = qa_q8_k;
        k->vec_dot_tile = tile_q3_k;
        break;
    case CND_DTYPE_Q4_K:
        k->vec_dot_type = CND_DTYPE_Q8_K, k->dequantize = deq_q4_k, k->quantize_act = qa_q8_k;
        k->vec_dot_tile = tile_q4_k;
        break;
    case CND_DTYPE_Q5_K:
        k->vec_dot_type = CND_DTYPE_Q8_K, k->dequantize = deq_q5_k, k->quantize_act = qa_q8_k;
        k->vec_dot_tile = tile_q5_k;
        break;
    case CND_DTYPE_Q6_K:
        k->vec_dot_type = CND_DTYPE_Q8_K, k->dequantize = deq_q6_k, k->quantize_act = qa_q8_k;
        k->vec_dot_tile = tile_q6_k;
        break;
    default: break;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* reference weight quantizers */

static inline int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* value with the largest magnitude (sign kept) */
static inline float signed_absmax(const float *x, int n)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++)
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    return max;
}

static void qw_q4_0(const float *x, uint8_t *b)
{
    const float max = signed_absmax(x, 32), d = max / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    sth(b, d);
    for (int j = 0; j < 16; j++) {
        const int q0 = clampi((int)(x[j] * id + 8.5f), 0, 15);
        const int q1 = clampi((int)(x[j + 16] * id + 8.5f), 0, 15);
        b[2 + j] = (uint8_t)(q0 | (q1 << 4));
    }
}

static void qw_q5_0(const float *x, uint8_t *b)
{
    const float max = signed_absmax(x, 32), d = max / -16.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    sth(b, d);
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        const int q0 = clampi((int)(x[j] * id + 16.5f), 0, 31);
        const int q1 = clampi((int)(x[j + 16] * id + 16.5f), 0, 31);
        b[6 + j] = (uint8_t)((q0 & 0xF) | ((q1 & 0xF) << 4));
        qh |= (uint32_t)(q0 >> 4) << j;
        qh |= (uint32_t)(q1 >> 4) << (j + 16);
    }
    memcpy(b + 2, &qh, 4);
}

static void minmax(const float *x, int n, float *mn, float *mx)
{
    float lo = x[0], hi = x[0];
    for (int j = 1; j < n; j++) {
        lo = fminf(lo, x[j]);
        hi = fmaxf(hi, x[j]);
    }
    *mn = lo;
    *mx = hi;
}

static void qw_q4_1(const float *x, uint8_t *b)
{
    float mn, mx;
    minmax(x, 32, &mn, &mx);
    const float d = (mx - mn) / 15.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    sth(b, d);
    sth(b + 2, mn);
    for (int j = 0; j < 16; j++) {
        const int q0 = clampi((int)((x[j] - mn) * id + 0.5f), 0, 15);
        const int q1 = clampi((int)((x[j + 16] - mn) * id + 0.5f), 0, 15);
        b[4 + j] = (uint8_t)(q0 | (q1 << 4));
    }
}

static void qw_q5_1(const float *x, uint8_t *b)
{
    float mn, mx;
    minmax(x, 32, &mn, &mx);
    const float d = (mx - mn) / 31.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    sth(b, d);
    sth(b + 2, mn);
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        const int q0 = clampi((int)((x[j] - mn) * id + 0.5f), 0, 31);
        const int q1 = clampi((int)((x[j + 16] - mn) * id + 0.5f), 0, 31);
        b[8 + j] = (uint8_t)((q0 & 0xF) | ((q1 & 0xF) << 4));
        qh |= (uint32_t)(q0 >> 4) << j;
        qh |= (uint32_t)(q1 >> 4) << (j + 16);
    }
    memcpy(b + 4, &qh, 4);
}

static void qw_q8_0(const float *x, uint8_t *b)
{
    qa_q8_0(x, b, 32);
}

/* Min/max fit of nsub sub-blocks of len values into levels 0..nq with scale/min quantized to
 * 0..smax against super-block d/dmin. Fills L (levels), ls, lm and returns d, dmin. */
static void fit_min_k(const float *x, int nsub, int len, int nq, int smax, int *L, int *ls, int *lm,
                      float *pd, float *pdmin)
{
    float scale[16], mins[16], maxs = 0.0f, maxm = 0.0f;
    for (int s = 0; s < nsub; s++) {
        float mn, mx;
        minmax(x + s * len, len, &mn, &mx);
        if (mn > 0.0f)
            mn = 0.0f;
        scale[s] = (mx - mn) / (float)nq;
        mins[s] = -mn;
        maxs = fmaxf(maxs, scale[s]);
        maxm = fmaxf(maxm, mins[s]);
    }
    const float d = maxs / (float)smax, dmin = maxm / (float)smax;
    /* store the super scales as f16 first so the fit uses what dequantization will see */
    const float dq = fp16_to_fp32(fp32_to_fp16(d)), dminq = fp16_to_fp32(fp32_to_fp16(dmin));
    for (int s = 0; s < nsub; s++) {
        ls[s] = dq > 0.0f ? clampi(nearest_int(scale[s] / dq), 0, smax) : 0;
        lm[s] = dminq > 0.0f ? clampi(nearest_int(mins[s] / dminq), 0, smax) : 0;
        const float dl = dq * (float)ls[s], ml = dminq * (float)lm[s];
        for (int l = 0; l < len; l++) {
            const float v = x[s * len + l];
            L[s * len + l] = dl > 0.0f ? clampi(nearest_int((v + ml) / dl), 0, nq) : 0;
        }
    }
    *pd = d;
    *pdmin = dmin;
}

static void qw_q2_k(const float *x, uint8_t *b)
{
    int L[256], ls[16], lm[16];
    float d, dmin;
    fit_min_k(x, 16, 16, 3, 15, L, ls, lm, &d, &dmin);
    for (int s = 0; s < 16; s++)
        b[s] = (uint8_t)(ls[s] | (lm[s] << 4));
    uint8_t *qs = b + 16;
    memset(qs, 0, 64);
    for (int n = 0; n < 2; n++)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++)
                qs[n * 32 + l] |= (uint8_t)(L[n * 128 + j * 32 + l] << (2 * j));
    sth(b + 80, d);
    sth(b + 82, dmin);
}

static void pack_scales_k4(const int *ls, const int *lm, uint8_t *s)
{
    memset(s, 0, 12);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            s[j] = (uint8_t)(ls[j] & 63);
            s[j + 4] = (uint8_t)(lm[j] & 63);
        } else {
            s[j + 4] = (uint8_t)((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
            s[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            s[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
}

static void qw_q4_k(const float *x, uint8_t *b)
{
    int L[256], ls[8], lm[8];
    float d, dmin;
    fit_min_k(x, 8, 32, 15, 63, L, ls, lm, &d, &dmin);
    sth(b, d);
    sth(b + 2, dmin);
    pack_scales_k4(ls, lm, b + 4);
    for (int j = 0; j < 4; j++)
        for (int l = 0; l < 32; l++)
            b[16 + j * 32 + l] = (uint8_t)(L[j * 64 + l] | (L[j * 64 + 32 + l] << 4));
}

static void qw_q5_k(const float *x, uint8_t *b)
{
    int L[256], ls[8], lm[8];
    float d, dmin;
    fit_min_k(x, 8, 32, 31, 63, L, ls, lm, &d, &dmin);
    sth(b, d);
    sth(b + 2, dmin);
    pack_scales_k4(ls, lm, b + 4);
    uint8_t *qh = b + 16, *qs = b + 48;
    memset(qh, 0, 32);
    for (int j = 0; j < 4; j++)
        for (int l = 0; l < 32; l++) {
            const int q0 = L[j * 64 + l], q1 = L[j * 64 + 32 + l];
            qs[j * 32 + l] = (uint8_t)((q0 & 0xF) | ((q1 & 0xF) << 4));
            qh[l] |= (uint8_t)(((q0 >> 4) << (2 * j)) | ((q1 >> 4) << (2 * j + 1)));
        }
}

/* Symmetric fit of 16 sub-blocks of 16 into levels -nq..nq-1, with signed sub-scales in
 * -smax-1..smax (llama.cpp style: the largest scale maps to -(smax+1)). */
static void fit_sym_k(const float *x, int nq, int smax, int *L, int *ls, float *pd)
{
    float scale[16], max = 0.0f, amax = 0.0f;
    for (int s = 0; s < 16; s++) {
        scale[s] = signed_absmax(x + 16 * s, 16) / (float)-nq;
        if (fabsf(scale[s]) > amax) {
            amax = fabsf(scale[s]);
            max = scale[s];
        }
    }
    const float iscale = amax > 0.0f ? (float)-(smax + 1) / max : 0.0f;
    const float d = iscale != 0.0f ? 1.0f / iscale : 0.0f;
    const float dq = fp16_to_fp32(fp32_to_fp16(d));
    for (int s = 0; s < 16; s++) {
        ls[s] = clampi(nearest_int(iscale * scale[s]), -(smax + 1), smax);
        const float dl = dq * (float)ls[s];
        for (int l = 0; l < 16; l++)
            L[16 * s + l] = dl != 0.0f ? clampi(nearest_int(x[16 * s + l] / dl), -nq, nq - 1) : 0;
    }
    *pd = d;
}

static void qw_q3_k(const float *x, uint8_t *b)
{
    int L[256], ls[16];
    float d;
    fit_sym_k(x, 4, 31, L, ls, &d);
    uint8_t *hm = b, *qs = b + 32, *sc = b + 96;
    memset(b, 0, 110);
    for (int j = 0; j < 16; j++) {
        const int l = ls[j] + 32;
        if (j < 8)
            sc[j] = (uint8_t)(l & 0xF);
        else
            sc[j - 8] |= (uint8_t)((l & 0xF) << 4);
        sc[8 + (j & 3)] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
    }
    for (int n = 0; n < 2; n++)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++) {
                const int q = L[n * 128 + j * 32 + l] + 4; /* 0..7 */
                qs[n * 32 + l] |= (uint8_t)((q & 3) << (2 * j));
                if (q & 4)
                    hm[l] |= (uint8_t)(1u << (n * 4 + j));
            }
    sth(b + 108, d);
}

static void qw_q6_k(const float *x, uint8_t *b)
{
    int L[256], ls[16];
    float d;
    fit_sym_k(x, 32, 127, L, ls, &d);
    for (int s = 0; s < 16; s++)
        b[192 + s] = (uint8_t)(int8_t)ls[s];
    for (int n = 0; n < 2; n++) {
        uint8_t *ql = b + n * 64, *qh = b + 128 + n * 32;
        const int *y = L + n * 128;
        for (int l = 0; l < 32; l++) {
            const int q1 = y[l] + 32, q2 = y[l + 32] + 32, q3 = y[l + 64] + 32, q4 = y[l + 96] + 32;
            ql[l] = (uint8_t)((q1 & 0xF) | ((q3 & 0xF) << 4));
            ql[l + 32] = (uint8_t)((q2 & 0xF) | ((q4 & 0xF) << 4));
            qh[l] = (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
        }
    }
    sth(b + 208, d);
}

int quant_quantize_weights(enum cnd_dtype t, const float *x, void *vy, int64_t n)
{
    uint8_t *y = vy;
    void (*blk)(const float *, uint8_t *) = NULL;
    switch (t) {
    case CND_DTYPE_F32: qa_f32(x, y, n); return 0;
    case CND_DTYPE_F16: qa_f16(x, y, n); return 0;
    case CND_DTYPE_BF16: qa_bf16(x, y, n); return 0;
    case CND_DTYPE_Q8_0: blk = qw_q8_0; break;
    case CND_DTYPE_Q4_0: blk = qw_q4_0; break;
    case CND_DTYPE_Q4_1: blk = qw_q4_1; break;
    case CND_DTYPE_Q5_0: blk = qw_q5_0; break;
    case CND_DTYPE_Q5_1: blk = qw_q5_1; break;
    case CND_DTYPE_Q2_K: blk = qw_q2_k; break;
    case CND_DTYPE_Q3_K: blk = qw_q3_k; break;
    case CND_DTYPE_Q4_K: blk = qw_q4_k; break;
    case CND_DTYPE_Q5_K: blk = qw_q5_k; break;
    case CND_DTYPE_Q6_K: blk = qw_q6_k; break;
    default: return CND_EUNSUPPORTED;
    }
    const int64_t bs = dtype_block_size(t), ts = dtype_type_size(t);
    if (n % bs)
        return CND_EUNSUPPORTED;
    for (int64_t i = 0; i < n / bs; i++)
        blk(x + i * bs, y + i * ts);
    return 0;
}
