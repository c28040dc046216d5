// mmv.cu: matrix x few-vectors for decode (n <= CND_CUDA_MMV_MAX activation rows), reading GGUF
// blocks straight from the weights. One warp per weight row, lanes stride over "units" (a
// 16-byte F16/BF16/F32 vector, a Q4_0/Q8_0 block, or a 64-value chunk of a Q4_K/Q6_K block);
// each unit's weights are loaded once and dotted with every activation row. Quantized weights
// meet activations quantized as the CPU does (Q8_0 or Q8_K) in exact integer dot products
// (dp4a); float types accumulate in float.
#include "common.cuh"
#include "kernels.h"
#include "quant.cuh"

#define MMV_WARPS 4

static __device__ __forceinline__ int ld_i32_2(const uint8_t *p) // 2-byte aligned int load
{
    const uint16_t *h = (const uint16_t *)p;
    return (int)((uint32_t)h[0] | ((uint32_t)h[1] << 16));
}

template <int T> struct unit_of {
    static constexpr int n = T == QT_F32                      ? 4
                             : (T == QT_F16 || T == QT_BF16)  ? 8
                             : (T == QT_Q4_0 || T == QT_Q8_0) ? 32
                                                              : 64;
};

template <int T, int NC>
static __device__ __forceinline__ void mmv_unit(const uint8_t *wrow, const uint8_t *const *act,
                                                int64_t u, float acc[NC])
{
    if (T == QT_F32) {
        const float4 w = ((const float4 *)wrow)[u];
#pragma unroll
        for (int c = 0; c < NC; c++) {
            const float4 a = ((const float4 *)act[c])[u];
            acc[c] += w.x * a.x + w.y * a.y + w.z * a.z + w.w * a.w;
        }
    } else if (T == QT_F16 || T == QT_BF16) {
        const uint4 w = ((const uint4 *)wrow)[u];
        const uint32_t wv[4] = {w.x, w.y, w.z, w.w};
        float2 wf[4];
#pragma unroll
        for (int k = 0; k < 4; k++) {
            if (T == QT_F16)
                wf[k] = __half22float2(*(const __half2 *)&wv[k]);
            else
                wf[k] = __bfloat1622float2(*(const __nv_bfloat162 *)&wv[k]);
        }
#pragma unroll
        for (int c = 0; c < NC; c++) {
            const uint4 a = ((const uint4 *)act[c])[u];
            const uint32_t av[4] = {a.x, a.y, a.z, a.w};
            float s = 0.0f;
#pragma unroll
            for (int k = 0; k < 4; k++) {
                const float2 af = T == QT_F16 ? __half22float2(*(const __half2 *)&av[k])
                                              : __bfloat1622float2(*(const __nv_bfloat162 *)&av[k]);
                s += wf[k].x * af.x + wf[k].y * af.y;
            }
            acc[c] += s;
        }
    } else if (T == QT_Q8_0 || T == QT_Q4_0) {
        const uint8_t *b = wrow + u * (T == QT_Q8_0 ? 34 : 18);
        const float dw = ld_h(b);
        int q[8]; // 32 signed bytes in element order (Q4_0: nibble - 8)
        if (T == QT_Q8_0) {
#pragma unroll
            for (int k = 0; k < 8; k++)
                q[k] = ld_i32_2(b + 2 + 4 * k);
        } else {
#pragma unroll
            for (int k = 0; k < 4; k++) {
                const int v = ld_i32_2(b + 2 + 4 * k);
                q[k] = __vsubss4(v & 0x0F0F0F0F, 0x08080808);
                q[k + 4] = __vsubss4((v >> 4) & 0x0F0F0F0F, 0x08080808);
            }
        }
#pragma unroll
        for (int c = 0; c < NC; c++) {
            const uint8_t *a = act[c] + u * 34;
            int s = 0;
#pragma unroll
            for (int k = 0; k < 8; k++)
                s = __dp4a(q[k], ld_i32_2(a + 2 + 4 * k), s);
            acc[c] += dw * ld_h(a) * (float)s;
        }
    } else if (T == QT_Q4_K) {
        const int64_t blk = u / 4;
        const int ch = (int)(u % 4);
        const uint8_t *b = wrow + blk * 144;
        const uint4 q0 = *(const uint4 *)(b + 16 + ch * 32),
                    q1 = *(const uint4 *)(b + 32 + ch * 32);
        const int qv[8] = {(int)q0.x, (int)q0.y, (int)q0.z, (int)q0.w,
                           (int)q1.x, (int)q1.y, (int)q1.z, (int)q1.w};
        int sc0, m0, sc1, m1;
        q4k_scale_min(2 * ch, b + 4, &sc0, &m0);
        q4k_scale_min(2 * ch + 1, b + 4, &sc1, &m1);
        const float d = ld_h(b), dmin = ld_h(b + 2);
#pragma unroll
        for (int c = 0; c < NC; c++) {
            const uint8_t *a = act[c] + blk * 292;
            const int *aq = (const int *)(a + 4 + ch * 64);
            int slo = 0, shi = 0;
#pragma unroll
            for (int k = 0; k < 8; k++) {
                slo = __dp4a(qv[k] & 0x0F0F0F0F, aq[k], slo);
                shi = __dp4a((qv[k] >> 4) & 0x0F0F0F0F, aq[k + 8], shi);
            }
            const int16_t *bs = (const int16_t *)(a + 260) + 4 * ch;
            const int sumi = sc0 * slo + sc1 * shi;
            const int summ = m0 * (bs[0] + bs[1]) + m1 * (bs[2] + bs[3]);
            const float da = *(const float *)a;
            acc[c] += d * da * (float)sumi - dmin * da * (float)summ;
        }
    } else { // QT_Q6_K
        const int64_t blk = u / 4;
        const int sub = (int)(u % 4), n = sub / 2, l0 = (sub % 2) * 16;
        const uint8_t *b = wrow + blk * 210;
        int qa[4], qb[4], qh[4];
#pragma unroll
        for (int k = 0; k < 4; k++) {
            qa[k] = ld_i32_2(b + n * 64 + l0 + 4 * k);
            qb[k] = ld_i32_2(b + n * 64 + 32 + l0 + 4 * k);
            qh[k] = ld_i32_2(b + 128 + n * 32 + l0 + 4 * k);
        }
        int q[4][4]; // [group][k], values 0..63
#pragma unroll
        for (int k = 0; k < 4; k++) {
            q[0][k] = (qa[k] & 0x0F0F0F0F) | ((qh[k] & 0x03030303) << 4);
            q[1][k] = (qb[k] & 0x0F0F0F0F) | (((qh[k] >> 2) & 0x03030303) << 4);
            q[2][k] = ((qa[k] >> 4) & 0x0F0F0F0F) | (((qh[k] >> 4) & 0x03030303) << 4);
            q[3][k] = ((qb[k] >> 4) & 0x0F0F0F0F) | (((qh[k] >> 6) & 0x03030303) << 4);
        }
        int sc[4];
#pragma unroll
        for (int g = 0; g < 4; g++)
            sc[g] = (int8_t)b[192 + n * 8 + g * 2 + l0 / 16];
        const float d = ld_h(b + 208);
#pragma unroll
        for (int c = 0; c < NC; c++) {
            const uint8_t *a = act[c] + blk * 292;
            int sumi = 0;
#pragma unroll
            for (int g = 0; g < 4; g++) {
                const int *aq = (const int *)(a + 4 + n * 128 + g * 32 + l0);
                int s = 0, sa = 0;
#pragma unroll
                for (int k = 0; k < 4; k++) {
                    s = __dp4a(q[g][k], aq[k], s);
                    sa = __dp4a(0x01010101, aq[k], sa);
                }
                sumi += sc[g] * (s - 32 * sa);
            }
            acc[c] += d * *(const float *)a * (float)sumi;
        }
    }
}

template <int T, int NC>
static __global__ void __launch_bounds__(MMV_WARPS * 32)
    mmv_kernel(float *out, const uint8_t *w, int64_t n_in, int64_t n_out, const uint8_t *act,
               size_t act_row, int n, const float *bias)
{
    const int lane = threadIdx.x % 32;
    const int64_t row = (int64_t)blockIdx.x * MMV_WARPS + threadIdx.x / 32;
    if (row >= n_out)
        return;
    const uint8_t *wrow = w + row * q_row_bytes(T, n_in);
    const uint8_t *a[NC];
#pragma unroll
    for (int c = 0; c < NC; c++)
        a[c] = act + (size_t)min(c, n - 1) * act_row;
    float acc[NC];
#pragma unroll
    for (int c = 0; c < NC; c++)
        acc[c] = 0.0f;
    const int64_t n_units = n_in / unit_of<T>::n;
#pragma unroll 2
    for (int64_t u = lane; u < n_units; u += 32)
        mmv_unit<T, NC>(wrow, a, u, acc);
#pragma unroll
    for (int c = 0; c < NC; c++) {
        const float s = warp_reduce_sum(acc[c]);
        if (lane == 0 && c < n)
            out[(size_t)c * n_out + row] = s + (bias ? bias[row] : 0.0f);
    }
}

struct mmv_launch {
    float *out;
    const uint8_t *w;
    int64_t n_in, n_out;
    const uint8_t *act;
    int n;
    const float *bias;
    cudaStream_t s;
    template <int T, int NC> void go()
    {
        const int act_t = T == QT_Q4_0 ? QT_Q8_0 : (T == QT_Q4_K || T == QT_Q6_K) ? QT_Q8_K : T;
        mmv_kernel<T, NC><<<cdiv(n_out, MMV_WARPS), MMV_WARPS * 32, 0, s>>>(
            out, w, n_in, n_out, act, q_row_bytes(act_t, n_in), n, bias);
    }
    template <int T> void operator()()
    {
        if (n == 1)
            go<T, 1>();
        else if (n == 2)
            go<T, 2>();
        else if (n <= 4)
            go<T, 4>();
        else
            go<T, 8>();
    }
};

extern "C" int cnd_cuda_mmv(float *out, const void *w, int dtype, int64_t n_in, int64_t n_out,
                            const void *act, int n, const float *bias, void *stream)
{
    if (n <= 0 || n_out <= 0)
        return 0;
    int unit = dtype == QT_F32                          ? 4
               : (dtype == QT_F16 || dtype == QT_BF16)  ? 8
               : (dtype == QT_Q4_0 || dtype == QT_Q8_0) ? 32
                                                        : 256;
    if (n > CND_CUDA_MMV_MAX || n_in % unit) {
        snprintf(cnd_cuda_err_msg, sizeof(cnd_cuda_err_msg), "mmv: n %d, n_in %lld unsupported", n,
                 (long long)n_in);
        return CND_CUDA_EDEVICE;
    }
    mmv_launch l = {out,  (const uint8_t *)w,  n_in, n_out, (const uint8_t *)act, n,
                    bias, (cudaStream_t)stream};
    if (!dispatch_wtype(dtype, l)) {
        snprintf(cnd_cuda_err_msg, sizeof(cnd_cuda_err_msg), "mmv: type %d unsupported", dtype);
        return CND_CUDA_EDEVICE;
    }
    LAUNCH_CHECK();
    return 0;
}
