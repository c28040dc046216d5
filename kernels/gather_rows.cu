// gather_rows.cu: out[i, :] = x[rows[i], :] (the rows whose logits are wanted).
#include "common.cuh"
#include "kernels.h"

static __global__ void gather_rows_kernel(float *out, const float *x, const int32_t *rows,
                                          int n_cols)
{
    const float *src = x + (size_t)rows[blockIdx.y] * n_cols;
    float *dst = out + (size_t)blockIdx.y * n_cols;
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < n_cols; c += gridDim.x * blockDim.x)
        dst[c] = src[c];
}

extern "C" int cnd_cuda_gather_rows_f32(float *out, const float *x, const int32_t *rows, int n,
                                        int n_cols, void *stream)
{
    if (n <= 0)
        return 0;
    dim3 grid(cdiv(n_cols, 256) < 32 ? cdiv(n_cols, 256) : 32, n);
    gather_rows_kernel<<<grid, 256, 0, (cudaStream_t)stream>>>(out, x, rows, n_cols);
    LAUNCH_CHECK();
    return 0;
}
