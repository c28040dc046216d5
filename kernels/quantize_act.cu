// quantize_act.cu: activation rows into the format the weights are multiplied with, with the
// CPU backend's reference rounding (quant_ref.c qa_*), so integer dot products agree exactly:
// Q8_0 (d = amax / 127, round half away from zero), Q8_K (iscale = -127 / signed max, round to
// nearest even, bsums of 16), F16 and BF16 (round to nearest even).
#include "common.cuh"
#include "kernels.h"
#include "quant.cuh"

#include <math.h>

// One warp per Q8_0 block of 32.
static __global__ void quantize_q8_0_kernel(uint8_t *dst, const float *x, int64_t n_cols,
                                            size_t row_bytes, int64_t n_blocks)
{
    const int64_t blk = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x % 32;
    if (blk >= n_blocks)
        return;
    const int64_t per_row = n_cols / 32, r = blk / per_row, b = blk % per_row;
    const float v = x[r * n_cols + b * 32 + lane];
    const float amax = warp_reduce_max(fabsf(v));
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    uint8_t *out = dst + r * row_bytes + b * 34;
    out[2 + lane] = (uint8_t)(int8_t)roundf(v * id);
    if (lane == 0)
        *(__half *)out = __float2half_rn(d);
}

// One warp per Q8_K block of 256, 8 consecutive values per lane.
static __global__ void quantize_q8_k_kernel(uint8_t *dst, const float *x, int64_t n_cols,
                                            size_t row_bytes, int64_t n_blocks)
{
    const int64_t blk = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x % 32;
    if (blk >= n_blocks)
        return;
    const int64_t per_row = n_cols / 256, r = blk / per_row, b = blk % per_row;
    const float *xb = x + r * n_cols + b * 256 + lane * 8;
    float v[8];
    float amax = 0.0f, mx = 0.0f;
    int idx = 1 << 30;
    for (int j = 0; j < 8; j++) {
        v[j] = xb[j];
        if (fabsf(v[j]) > amax) {
            amax = fabsf(v[j]);
            mx = v[j];
            idx = lane * 8 + j;
        }
    }
    // first index of the largest magnitude, as the CPU's strict '>' scan
    for (int o = 16; o > 0; o >>= 1) {
        const float a2 = __shfl_xor_sync(0xffffffffu, amax, o);
        const float m2 = __shfl_xor_sync(0xffffffffu, mx, o);
        const int i2 = __shfl_xor_sync(0xffffffffu, idx, o);
        if (a2 > amax || (a2 == amax && i2 < idx))
            amax = a2, mx = m2, idx = i2;
    }
    uint8_t *out = dst + r * row_bytes + b * 292;
    if (amax == 0.0f) {
        for (int j = 0; j < 8; j++)
            out[4 + lane * 8 + j] = 0;
        if (lane < 16)
            ((int16_t *)(out + 260))[lane] = 0;
        if (lane == 0)
            *(float *)out = 0.0f;
        return;
    }
    const float iscale = -127.0f / mx;
    int sum = 0;
    for (int j = 0; j < 8; j++) {
        const int q = min(__float2int_rn(__fmul_rn(iscale, v[j])), 127);
        out[4 + lane * 8 + j] = (uint8_t)(int8_t)q;
        sum += q;
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    if ((lane & 1) == 0)
        ((int16_t *)(out + 260))[lane / 2] = (int16_t)sum;
    if (lane == 0)
        *(float *)out = 1.0f / iscale;
}

template <bool BF16> static __global__ void convert_kernel(void *dst, const float *x, int64_t n)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        if (BF16)
            ((__nv_bfloat16 *)dst)[i] = __float2bfloat16_rn(x[i]);
        else
            ((__half *)dst)[i] = __float2half_rn(x[i]);
    }
}

extern "C" size_t cnd_cuda_act_row_bytes(int act_dtype, int64_t n_cols)
{
    return q_row_bytes(act_dtype, n_cols);
}

extern "C" int cnd_cuda_act_dtype(int dtype)
{
    switch (dtype) {
    case QT_F32: return QT_F32;
    case QT_F16: return QT_F16;
    case QT_BF16: return QT_BF16;
    case QT_Q4_0:
    case QT_Q8_0: return QT_Q8_0;
    case QT_Q4_K:
    case QT_Q6_K: return QT_Q8_K;
    default: return -1;
    }
}

extern "C" int cnd_cuda_quantize_act(void *dst, const float *x, int act_dtype, int n_rows,
                                     int64_t n_cols, void *stream)
{
    if (n_rows <= 0)
        return 0;
    cudaStream_t s = (cudaStream_t)stream;
    const int64_t n = (int64_t)n_rows * n_cols;
    const size_t rb = q_row_bytes(act_dtype, n_cols);
    const int64_t convert_blocks = cdiv(n, 256) < 4096 ? cdiv(n, 256) : 4096; /* grid-stride */
    switch (act_dtype) {
    case QT_Q8_0:
        quantize_q8_0_kernel<<<cdiv(n, 256), 256, 0, s>>>((uint8_t *)dst, x, n_cols, rb, n / 32);
        break;
    case QT_Q8_K:
        quantize_q8_k_kernel<<<cdiv(n / 256 * 32, 256), 256, 0, s>>>((uint8_t *)dst, x, n_cols, rb,
                                                                     n / 256);
        break;
    case QT_F16: convert_kernel<false><<<convert_blocks, 256, 0, s>>>(dst, x, n); break;
    case QT_BF16: convert_kernel<true><<<convert_blocks, 256, 0, s>>>(dst, x, n); break;
    case QT_F32:
        CUDA_CHECK(cudaMemcpyAsync(dst, x, (size_t)n * 4, cudaMemcpyDeviceToDevice, s));
        break;
    default:
        snprintf(cnd_cuda_err_msg, sizeof(cnd_cuda_err_msg), "quantize_act: type %d", act_dtype);
        return CND_CUDA_EDEVICE;
    }
    LAUNCH_CHECK();
    return 0;
}
