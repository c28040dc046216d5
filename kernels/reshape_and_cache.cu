// reshape_and_cache.cu: write a step's K and V rows into the paged cache at their slots
// (slot = block_id * block_size + pos % block_size), rounding to F16 for an F16 cache.
#include "common.cuh"
#include "kernels.h"

#include <cuda_fp16.h>

template <bool F16>
static __global__ void reshape_and_cache_kernel(void *kc, void *vc, const float *k, const float *v,
                                                const int64_t *slots, int kv_dim)
{
    const int r = blockIdx.y;
    const int64_t slot = slots[r];
    if (slot < 0)
        return;
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < kv_dim; c += gridDim.x * blockDim.x) {
        const size_t src = (size_t)r * kv_dim + c, dst = (size_t)slot * kv_dim + c;
        if (F16) {
            ((__half *)kc)[dst] = __float2half_rn(k[src]);
            ((__half *)vc)[dst] = __float2half_rn(v[src]);
        } else {
            ((float *)kc)[dst] = k[src];
            ((float *)vc)[dst] = v[src];
        }
    }
}

extern "C" int cnd_cuda_reshape_and_cache(void *k_cache, void *v_cache, const float *k,
                                          const float *v, const int64_t *slots, int n_rows,
                                          int kv_dim, int f16, void *stream)
{
    if (n_rows <= 0)
        return 0;
    dim3 grid(cdiv(kv_dim, 256) < 16 ? cdiv(kv_dim, 256) : 16, n_rows);
    if (f16)
        reshape_and_cache_kernel<true>
            <<<grid, 256, 0, (cudaStream_t)stream>>>(k_cache, v_cache, k, v, slots, kv_dim);
    else
        reshape_and_cache_kernel<false>
            <<<grid, 256, 0, (cudaStream_t)stream>>>(k_cache, v_cache, k, v, slots, kv_dim);
    LAUNCH_CHECK();
    return 0;
}
