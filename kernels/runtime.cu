// runtime.cu: device discovery, memory and copies for tests and the backend's start-up.
#include "common.cuh"
#include "kernels.h"

thread_local char cnd_cuda_err_msg[256];

extern "C" int cnd_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); // clear "no driver" so later calls start clean
        return 0;
    }
    return n;
}

extern "C" int cnd_cuda_malloc(void **p, size_t n)
{
    CUDA_CHECK(cudaMalloc(p, n));
    return 0;
}

extern "C" int cnd_cuda_free(void *p)
{
    CUDA_CHECK(cudaFree(p));
    return 0;
}

extern "C" int cnd_cuda_memcpy_h2d(void *dst, const void *src, size_t n)
{
    CUDA_CHECK(cudaMemcpy(dst, src, n, cudaMemcpyHostToDevice));
    return 0;
}

extern "C" int cnd_cuda_memcpy_d2h(void *dst, const void *src, size_t n)
{
    CUDA_CHECK(cudaMemcpy(dst, src, n, cudaMemcpyDeviceToHost));
    return 0;
}

extern "C" int cnd_cuda_synchronize(void)
{
    CUDA_CHECK(cudaDeviceSynchronize());
    return 0;
}

extern "C" const char *cnd_cuda_last_error(void)
{
    return cnd_cuda_err_msg;
}
