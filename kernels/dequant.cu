// dequant.cu: dequantize weight rows into an F16 (or BF16) tile for the cuBLAS path of large
// batches. Element-wise, through the same dq_elem as get_rows.
#include "common.cuh"
#include "kernels.h"
#include "quant.cuh"

template <int T, bool BF16>
static __global__ void dequant_kernel(void *dst, const uint8_t *w, int64_t n_cols, size_t row_bytes,
                                      int64_t n)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = i / n_cols, e = i % n_cols;
        const float v = dq_elem<T>(w + r * row_bytes, e);
        if (BF16)
            ((__nv_bfloat16 *)dst)[i] = __float2bfloat16_rn(v);
        else
            ((__half *)dst)[i] = __float2half_rn(v);
    }
}

struct dequant_launch {
    void *dst;
    bool bf16;
    const uint8_t *w;
    int64_t n_rows, n_cols;
    cudaStream_t s;
    template <int T> void operator()()
    {
        const int64_t n = n_rows * n_cols;
        const unsigned blocks = cdiv(n, 256) < 65536 ? cdiv(n, 256) : 65536;
        const size_t rb = q_row_bytes(T, n_cols);
        if (bf16)
            dequant_kernel<T, true><<<blocks, 256, 0, s>>>(dst, w, n_cols, rb, n);
        else
            dequant_kernel<T, false><<<blocks, 256, 0, s>>>(dst, w, n_cols, rb, n);
    }
};

extern "C" int cnd_cuda_dequantize(void *dst, int dst_bf16, const void *w, int dtype,
                                   int64_t n_rows, int64_t n_cols, void *stream)
{
    if (n_rows <= 0)
        return 0;
    dequant_launch l = {dst,    dst_bf16 != 0, (const uint8_t *)w,
                        n_rows, n_cols,        (cudaStream_t)stream};
    if (!dispatch_wtype(dtype, l)) {
        snprintf(cnd_cuda_err_msg, sizeof(cnd_cuda_err_msg), "dequantize: type %d", dtype);
        return CND_CUDA_EDEVICE;
    }
    LAUNCH_CHECK();
    return 0;
}
