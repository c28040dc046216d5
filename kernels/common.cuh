/* common.cuh: error checks and warp reductions shared by the .cu files. */
#pragma once

#include <cuda_runtime.h>
#include <stdio.h>

extern thread_local char cnd_cuda_err_msg[256];

#define CND_CUDA_EDEVICE (-7) /* matches CND_EDEVICE in include/cinder/status.h */

#define CUDA_CHECK(call)                                                                           \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            snprintf(cnd_cuda_err_msg, sizeof(cnd_cuda_err_msg), "%s:%d: %s: %s", __FILE__,        \
                     __LINE__, #call, cudaGetErrorString(e_));                                     \
            return CND_CUDA_EDEVICE;                                                               \
        }                                                                                          \
    } while (0)

static __device__ __forceinline__ float warp_reduce_sum(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

static __device__ __forceinline__ float warp_reduce_max(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

#define LAUNCH_CHECK() CUDA_CHECK(cudaGetLastError())

static inline unsigned cdiv(long long a, long long b)
{
    return (unsigned)((a + b - 1) / b);
}
