// silu_mul.cu: SwiGLU's elementwise part, out = silu(gate) * up.
#include "common.cuh"
#include "kernels.h"

static __global__ void silu_mul_kernel(float *out, const float *gate, const float *up, int64_t n)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const float g = gate[i];
        out[i] = __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), up[i]);
    }
}

extern "C" int cnd_cuda_silu_mul_f32(float *out, const float *gate, const float *up, int64_t n,
                                     void *stream)
{
    if (n <= 0)
        return 0;
    unsigned blocks = cdiv(n, 256) < 4096 ? cdiv(n, 256) : 4096;
    silu_mul_kernel<<<blocks, 256, 0, (cudaStream_t)stream>>>(out, gate, up, n);
    LAUNCH_CHECK();
    return 0;
}
