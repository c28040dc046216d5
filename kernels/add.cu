// add.cu: residual add out = a + b, and the bias add of the cuBLAS matmul path.
#include "common.cuh"
#include "kernels.h"

static __global__ void add_kernel(float *out, const float *a, const float *b, int64_t n)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        out[i] = a[i] + b[i];
}

static __global__ void add_bias_kernel(float *out, const float *bias, int n_cols)
{
    float *row = out + (size_t)blockIdx.y * n_cols;
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < n_cols; c += gridDim.x * blockDim.x)
        row[c] += bias[c];
}

extern "C" int cnd_cuda_add_f32(float *out, const float *a, const float *b, int64_t n, void *stream)
{
    if (n <= 0)
        return 0;
    unsigned blocks = cdiv(n, 256) < 4096 ? cdiv(n, 256) : 4096;
    add_kernel<<<blocks, 256, 0, (cudaStream_t)stream>>>(out, a, b, n);
    LAUNCH_CHECK();
    return 0;
}

extern "C" int cnd_cuda_add_bias_f32(float *out, const float *bias, int n_rows, int n_cols,
                                     void *stream)
{
    if (n_rows <= 0 || n_cols <= 0)
        return 0;
    dim3 grid(cdiv(n_cols, 256) < 64 ? cdiv(n_cols, 256) : 64, n_rows);
    add_bias_kernel<<<grid, 256, 0, (cudaStream_t)stream>>>(out, bias, n_cols);
    LAUNCH_CHECK();
    return 0;
}
