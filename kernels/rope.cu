// rope.cu: rotary embedding, normal (adjacent pairs) and NeoX (halves), in place. One thread per
// (row, head, pair); theta follows llama.cpp's recurrence (pos * theta_scale^j by repeated
// float multiplication) so angles match the CPU backend exactly.
#include "common.cuh"
#include "kernels.h"

static __global__ void rope_kernel(float *x, const int32_t *pos, int n_heads, int head_dim,
                                   int n_rot, float theta_scale, float freq_scale, const float *ff,
                                   int neox)
{
    const int r = blockIdx.y;
    const int half = n_rot / 2;
    const int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= n_heads * half)
        return;
    const int h = idx / half, ic = idx % half;
    float theta = (float)pos[r];
    for (int j = 0; j < ic; j++)
        theta = __fmul_rn(theta, theta_scale);
    const float f = ff ? ff[ic] : 1.0f;
    const float th = __fmul_rn(freq_scale, __fdiv_rn(theta, f));
    const float c = cosf(th), s = sinf(th);
    float *v = x + ((size_t)r * n_heads + h) * head_dim;
    const int i0 = neox ? ic : 2 * ic, i1 = neox ? ic + half : 2 * ic + 1;
    const float x0 = v[i0], x1 = v[i1];
    v[i0] = __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, s));
    v[i1] = __fadd_rn(__fmul_rn(x0, s), __fmul_rn(x1, c));
}

extern "C" int cnd_cuda_rope_f32(float *x, const int32_t *pos, int n_rows, int n_heads,
                                 int head_dim, int n_rot, float theta_scale, float freq_scale,
                                 const float *freq_factors, int neox, void *stream)
{
    if (n_rows <= 0)
        return 0;
    const int n = n_heads * (n_rot / 2);
    dim3 grid(cdiv(n, 128), n_rows);
    rope_kernel<<<grid, 128, 0, (cudaStream_t)stream>>>(
        x, pos, n_heads, head_dim, n_rot, theta_scale, freq_scale, freq_factors, neox);
    LAUNCH_CHECK();
    return 0;
}
