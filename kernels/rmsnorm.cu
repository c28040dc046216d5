// rmsnorm.cu: RMSNorm over rows, one block per row. Sum of squares is reduced in float per
// thread, then across warps, so the order is fixed for a given n_cols (batch invariant).
#include "common.cuh"
#include "kernels.h"

#define RMSNORM_THREADS 256

static __global__ void rmsnorm_f32_kernel(float *y, const float *x, const float *w, int n_cols,
                                          float eps)
{
    const int row = blockIdx.x;
    const float *xr = x + (size_t)row * n_cols;
    float *yr = y + (size_t)row * n_cols;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < n_cols; i += blockDim.x)
        ss += xr[i] * xr[i];
    ss = warp_reduce_sum(ss);
    __shared__ float partial[RMSNORM_THREADS / 32];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0)
        partial[warp] = ss;
    __syncthreads();
    if (warp == 0) {
        ss = lane < (int)(blockDim.x / 32) ? partial[lane] : 0.0f;
        ss = warp_reduce_sum(ss);
        if (lane == 0)
            partial[0] = ss;
    }
    __syncthreads();
    const float scale = rsqrtf(partial[0] / n_cols + eps);
    for (int i = threadIdx.x; i < n_cols; i += blockDim.x)
        yr[i] = xr[i] * scale * w[i];
}

extern "C" int cnd_cuda_rmsnorm_f32(float *y, const float *x, const float *w, int n_rows,
                                    int n_cols, float eps, void *stream)
{
    if (n_rows <= 0 || n_cols <= 0)
        return 0;
    rmsnorm_f32_kernel<<<n_rows, RMSNORM_THREADS, 0, (cudaStream_t)stream>>>(y, x, w, n_cols, eps);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}
