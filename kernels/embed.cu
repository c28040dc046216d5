// embed.cu: embedding gather (get_rows): dequantize the rows of token ids into floats.
#include "common.cuh"
#include "kernels.h"
#include "quant.cuh"

template <int T>
static __global__ void get_rows_kernel(float *out, const uint8_t *w, int64_t n_cols,
                                       size_t row_bytes, const int32_t *ids)
{
    const int r = blockIdx.y;
    const uint8_t *row = w + (size_t)ids[r] * row_bytes;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n_cols;
         e += (int64_t)gridDim.x * blockDim.x)
        out[(size_t)r * n_cols + e] = dq_elem<T>(row, e);
}

struct get_rows_launch {
    float *out;
    const uint8_t *w;
    int64_t n_cols;
    size_t row_bytes;
    const int32_t *ids;
    int n;
    cudaStream_t s;
    template <int T> void operator()()
    {
        dim3 grid(cdiv(n_cols, 256) < 64 ? cdiv(n_cols, 256) : 64, n);
        get_rows_kernel<T><<<grid, 256, 0, s>>>(out, w, n_cols, row_bytes, ids);
    }
};

extern "C" int cnd_cuda_get_rows(float *out, const void *w, int dtype, int64_t n_cols,
                                 size_t row_bytes, const int32_t *ids, int n, void *stream)
{
    if (n <= 0)
        return 0;
    get_rows_launch l = {out, (const uint8_t *)w, n_cols, row_bytes, ids, n, (cudaStream_t)stream};
    if (!dispatch_wtype(dtype, l)) {
        snprintf(cnd_cuda_err_msg, sizeof(cnd_cuda_err_msg), "get_rows: type %d unsupported",
                 dtype);
        return CND_CUDA_EDEVICE;
    }
    LAUNCH_CHECK();
    return 0;
}
