// paged_attention.cu: attention of each row's query over its sequence's K/V through the block
// table, flash-decoding style. Grid (row, kv head, split): a block takes CND_CUDA_ATTN_SPLIT
// positions for all query heads of its kv head (GQA shares the K/V loads), writes the
// unnormalized output with its max and sum, and a second kernel combines the splits. Blocks
// past a row's position exit at once, so one grid size serves a whole CUDA graph bucket.
// As the CPU backend with an F16 cache, q is rounded to F16 before the dot products.
#include "common.cuh"
#include "kernels.h"

#include <cuda_fp16.h>
#include <math.h>

#define PA_THREADS 128
#define PA_WARPS   (PA_THREADS / 32)
#define PA_MAX_G   8
#define PA_MAX_HD  256

template <bool F16> static __device__ __forceinline__ float kv_load(const void *base, size_t i)
{
    if (F16)
        return __half2float(((const __half *)base)[i]);
    return ((const float *)base)[i];
}

template <bool F16>
static __global__ void __launch_bounds__(PA_THREADS)
    paged_attention_split(struct cnd_cuda_attn_args a, int n_splits, float *part_acc,
                          float *part_ml)
{
    const int row = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z;
    const int hd = a.head_dim, G = a.n_head / a.n_head_kv;
    const int pos = a.positions[row];
    const int j0 = split * CND_CUDA_ATTN_SPLIT;
    const int j1 = min(j0 + CND_CUDA_ATTN_SPLIT, pos + 1);
    const size_t part = ((size_t)row * a.n_head + (size_t)kvh * G) * n_splits + split;
    if (j0 >= j1) {
        for (int g = threadIdx.x; g < G; g += blockDim.x) {
            part_ml[(part + (size_t)g * n_splits) * 2] = -INFINITY;
            part_ml[(part + (size_t)g * n_splits) * 2 + 1] = 0.0f;
        }
        return;
    }
    __shared__ float q_s[PA_MAX_G * PA_MAX_HD];
    __shared__ float s_s[PA_MAX_G][CND_CUDA_ATTN_SPLIT];
    __shared__ int slot_s[CND_CUDA_ATTN_SPLIT];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const size_t kv_dim = (size_t)a.n_head_kv * hd;
    const float *q = a.q + ((size_t)row * a.n_head + (size_t)kvh * G) * hd;
    for (int i = threadIdx.x; i < G * hd; i += blockDim.x)
        q_s[i] = F16 ? __half2float(__float2half_rn(q[i])) : q[i];
    const int32_t *bt = a.block_tables + (size_t)a.seq_idx[row] * a.table_width;
    for (int j = j0 + threadIdx.x; j < j1; j += blockDim.x)
        slot_s[j - j0] = bt[j / a.block_size] * a.block_size + j % a.block_size;
    __syncthreads();

    // scores: one warp per key, lanes across the head dimension
    for (int j = j0 + warp; j < j1; j += PA_WARPS) {
        const size_t base = (size_t)slot_s[j - j0] * kv_dim + (size_t)kvh * hd;
        float acc[PA_MAX_G];
#pragma unroll
        for (int g = 0; g < PA_MAX_G; g++)
            acc[g] = 0.0f;
        for (int d = lane; d < hd; d += 32) {
            const float kv = kv_load<F16>(a.k_cache, base + d);
#pragma unroll
            for (int g = 0; g < PA_MAX_G; g++)
                if (g < G)
                    acc[g] += q_s[g * hd + d] * kv;
        }
#pragma unroll
        for (int g = 0; g < PA_MAX_G; g++) {
            if (g < G) {
                const float s = warp_reduce_sum(acc[g]);
                if (lane == 0)
                    s_s[g][j - j0] = s * a.scale;
            }
        }
    }
    __syncthreads();

    // softmax pieces per head: one warp per head
    __shared__ float m_s[PA_MAX_G], l_s[PA_MAX_G];
    const int n = j1 - j0;
    for (int g = warp; g < G; g += PA_WARPS) {
        float m = -INFINITY;
        for (int j = lane; j < n; j += 32)
            m = fmaxf(m, s_s[g][j]);
        m = warp_reduce_max(m);
        float l = 0.0f;
        for (int j = lane; j < n; j += 32) {
            const float p = expf(s_s[g][j] - m);
            s_s[g][j] = p;
            l += p;
        }
        l = warp_reduce_sum(l);
        if (lane == 0)
            m_s[g] = m, l_s[g] = l;
    }
    __syncthreads();

    // weighted V: threads across the head dimension, all heads of the group at once
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float acc[PA_MAX_G];
#pragma unroll
        for (int g = 0; g < PA_MAX_G; g++)
            acc[g] = 0.0f;
        for (int j = 0; j < n; j++) {
            const float v =
                kv_load<F16>(a.v_cache, (size_t)slot_s[j] * kv_dim + (size_t)kvh * hd + d);
#pragma unroll
            for (int g = 0; g < PA_MAX_G; g++)
                if (g < G)
                    acc[g] += s_s[g][j] * v;
        }
#pragma unroll
        for (int g = 0; g < PA_MAX_G; g++)
            if (g < G)
                part_acc[(part + (size_t)g * n_splits) * hd + d] = acc[g];
    }
    for (int g = threadIdx.x; g < G; g += blockDim.x) {
        part_ml[(part + (size_t)g * n_splits) * 2] = m_s[g];
        part_ml[(part + (size_t)g * n_splits) * 2 + 1] = l_s[g];
    }
}

static __global__ void paged_attention_combine(struct cnd_cuda_attn_args a, int n_splits,
                                               const float *part_acc, const float *part_ml)
{
    const int row = blockIdx.x, h = blockIdx.y, hd = a.head_dim;
    const int n_valid = min(n_splits, a.positions[row] / CND_CUDA_ATTN_SPLIT + 1);
    const size_t part = ((size_t)row * a.n_head + h) * n_splits;
    float m = -INFINITY;
    for (int s = 0; s < n_valid; s++)
        m = fmaxf(m, part_ml[(part + s) * 2]);
    float l = 0.0f;
    for (int s = 0; s < n_valid; s++)
        l += part_ml[(part + s) * 2 + 1] * expf(part_ml[(part + s) * 2] - m);
    const float inv = 1.0f / l;
    float *out = a.out + ((size_t)row * a.n_head + h) * hd;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float o = 0.0f;
        for (int s = 0; s < n_valid; s++)
            o += part_acc[(part + s) * hd + d] * expf(part_ml[(part + s) * 2] - m);
        out[d] = o * inv;
    }
}

extern "C" int cnd_cuda_paged_attention(const struct cnd_cuda_attn_args *a, int n_splits,
                                        float *part_acc, float *part_ml, void *stream)
{
    if (a->n_rows <= 0)
        return 0;
    const int G = a->n_head / a->n_head_kv;
    if (G > PA_MAX_G || a->head_dim > PA_MAX_HD || a->n_head % a->n_head_kv) {
        snprintf(cnd_cuda_err_msg, sizeof(cnd_cuda_err_msg),
                 "paged_attention: %d heads over %d kv heads of dim %d unsupported", a->n_head,
                 a->n_head_kv, a->head_dim);
        return CND_CUDA_EDEVICE;
    }
    cudaStream_t s = (cudaStream_t)stream;
    dim3 grid(a->n_rows, a->n_head_kv, n_splits);
    if (a->f16)
        paged_attention_split<true><<<grid, PA_THREADS, 0, s>>>(*a, n_splits, part_acc, part_ml);
    else
        paged_attention_split<false><<<grid, PA_THREADS, 0, s>>>(*a, n_splits, part_acc, part_ml);
    LAUNCH_CHECK();
    dim3 grid2(a->n_rows, a->n_head);
    const int combine_threads = a->head_dim < 128 ? 32 : 128;
    paged_attention_combine<<<grid2, combine_threads, 0, s>>>(*a, n_splits, part_acc, part_ml);
    LAUNCH_CHECK();
    return 0;
}
