// prefill_attention.cu: tiled attention for prefill chunks with online softmax. A block takes a
// tile of consecutive rows of one sequence and all query heads of one kv head (up to 64 query
// vectors), walks the sequence's K/V in chunks of PF_KT positions staged in shared memory
// (F16, as the cache), and keeps a running max, sum and output per query vector. Thread pair
// (2i, 2i+1) owns query vector i: each scores half of a chunk's keys and accumulates half of
// the head dimension. Rows see positions 0..pos (causal by position, as the CPU backend).
#include "common.cuh"
#include "kernels.h"

#include <cuda_fp16.h>
#include <math.h>

#define PF_THREADS 128
#define PF_Q       64 /* query vectors per block */
#define PF_KT      32

template <int HD>
static __global__ void __launch_bounds__(PF_THREADS)
    prefill_attention_kernel(struct cnd_cuda_attn_args a, const int32_t *tiles)
{
    const int kvh = blockIdx.y;
    const int r0 = tiles[2 * blockIdx.x], nr = tiles[2 * blockIdx.x + 1];
    const int G = a.n_head / a.n_head_kv, Q = nr * G;
    const int t = threadIdx.x, qi = t >> 1, hf = t & 1;
    const bool active = qi < Q;
    __shared__ __half2 q_s[PF_Q][HD / 2 + 1];
    __shared__ __half2 k_s[PF_KT][HD / 2 + 1];
    __shared__ __half2 v_s[PF_KT][HD / 2];
    __shared__ float p_s[PF_Q][PF_KT + 1];
    const size_t kv_dim = (size_t)a.n_head_kv * HD;

    for (int i = t; i < Q * (HD / 2); i += PF_THREADS) {
        const int v = i / (HD / 2), d2 = i % (HD / 2);
        const int r = r0 + v / G, h = kvh * G + v % G;
        const float *q = a.q + ((size_t)r * a.n_head + h) * HD + 2 * d2;
        q_s[v][d2] = __floats2half2_rn(q[0], q[1]);
    }
    int max_pos = 0;
    for (int r = 0; r < nr; r++)
        max_pos = max(max_pos, a.positions[r0 + r]);
    const int my_pos = active ? a.positions[r0 + qi / G] : -1;
    const int32_t *bt = a.block_tables + (size_t)a.seq_idx[r0] * a.table_width;
    const __half *K = (const __half *)a.k_cache, *V = (const __half *)a.v_cache;

    float m = -INFINITY, l = 0.0f;
    float acc[HD / 2];
#pragma unroll
    for (int d = 0; d < HD / 2; d++)
        acc[d] = 0.0f;

    for (int kb = 0; kb <= max_pos; kb += PF_KT) {
        __syncthreads();
        for (int i = t; i < PF_KT * (HD / 2); i += PF_THREADS) {
            const int j = i / (HD / 2), d2 = i % (HD / 2), key = kb + j;
            __half2 kv = __floats2half2_rn(0.0f, 0.0f), vv = kv;
            if (key <= max_pos) {
                const size_t slot =
                    (size_t)bt[key / a.block_size] * a.block_size + key % a.block_size;
                const size_t off = slot * kv_dim + (size_t)kvh * HD + 2 * d2;
                kv = *(const __half2 *)(K + off);
                vv = *(const __half2 *)(V + off);
            }
            k_s[j][d2] = kv;
            v_s[j][d2] = vv;
        }
        __syncthreads();
        float s[PF_KT / 2];
#pragma unroll
        for (int jj = 0; jj < PF_KT / 2; jj++)
            s[jj] = 0.0f;
        if (active) {
#pragma unroll 4
            for (int d2 = 0; d2 < HD / 2; d2++) {
                const float2 qf = __half22float2(q_s[qi][d2]);
#pragma unroll
                for (int jj = 0; jj < PF_KT / 2; jj++) {
                    const float2 kf = __half22float2(k_s[hf * (PF_KT / 2) + jj][d2]);
                    s[jj] += qf.x * kf.x + qf.y * kf.y;
                }
            }
        }
        float mc = -INFINITY;
#pragma unroll
        for (int jj = 0; jj < PF_KT / 2; jj++) {
            const int key = kb + hf * (PF_KT / 2) + jj;
            s[jj] = key <= my_pos ? s[jj] * a.scale : -INFINITY;
            mc = fmaxf(mc, s[jj]);
        }
        mc = fmaxf(mc, __shfl_xor_sync(0xffffffffu, mc, 1));
        const float m_new = fmaxf(m, mc);
        const float corr = m_new == -INFINITY ? 1.0f : expf(m - m_new);
        float ps = 0.0f;
#pragma unroll
        for (int jj = 0; jj < PF_KT / 2; jj++) {
            const float p = s[jj] == -INFINITY ? 0.0f : expf(s[jj] - m_new);
            ps += p;
            if (active)
                p_s[qi][hf * (PF_KT / 2) + jj] = p;
        }
        ps += __shfl_xor_sync(0xffffffffu, ps, 1);
        l = l * corr + ps;
        m = m_new;
        __syncwarp();
        if (active) {
#pragma unroll
            for (int d = 0; d < HD / 2; d++)
                acc[d] *= corr;
            for (int j = 0; j < PF_KT; j++) {
                const float p = p_s[qi][j];
                const __half2 *vr = &v_s[j][hf * (HD / 4)];
#pragma unroll
                for (int d2 = 0; d2 < HD / 4; d2++) {
                    const float2 vf = __half22float2(vr[d2]);
                    acc[2 * d2] += p * vf.x;
                    acc[2 * d2 + 1] += p * vf.y;
                }
            }
        }
    }
    if (!active)
        return;
    const int r = r0 + qi / G, h = kvh * G + qi % G;
    float *out = a.out + ((size_t)r * a.n_head + h) * HD + hf * (HD / 2);
    const float inv = 1.0f / l;
#pragma unroll
    for (int d = 0; d < HD / 2; d++)
        out[d] = acc[d] * inv;
}

extern "C" int cnd_cuda_prefill_tile_rows(int head_dim, int n_head, int n_head_kv, int f16)
{
    if (!f16 || n_head_kv <= 0 || n_head % n_head_kv)
        return 0;
    if (head_dim != 32 && head_dim != 64 && head_dim != 128)
        return 0;
    const int G = n_head / n_head_kv;
    return G > PF_Q ? 0 : PF_Q / G;
}

extern "C" int cnd_cuda_prefill_attention(const struct cnd_cuda_attn_args *a, const int32_t *tiles,
                                          int n_tiles, void *stream)
{
    if (n_tiles <= 0)
        return 0;
    if (!cnd_cuda_prefill_tile_rows(a->head_dim, a->n_head, a->n_head_kv, a->f16)) {
        snprintf(cnd_cuda_err_msg, sizeof(cnd_cuda_err_msg),
                 "prefill_attention: shape unsupported (head_dim %d)", a->head_dim);
        return CND_CUDA_EDEVICE;
    }
    dim3 grid(n_tiles, a->n_head_kv);
    cudaStream_t s = (cudaStream_t)stream;
    if (a->head_dim == 32)
        prefill_attention_kernel<32><<<grid, PF_THREADS, 0, s>>>(*a, tiles);
    else if (a->head_dim == 64)
        prefill_attention_kernel<64><<<grid, PF_THREADS, 0, s>>>(*a, tiles);
    else
        prefill_attention_kernel<128><<<grid, PF_THREADS, 0, s>>>(*a, tiles);
    LAUNCH_CHECK();
    return 0;
}
