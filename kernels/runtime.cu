// runtime.cu: device discovery, memory, copies, streams, events, graphs and the cuBLAS handle.
#include "common.cuh"
#include "kernels.h"

#include <cublas_v2.h>
#include <string.h>

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

extern "C" int cnd_cuda_device_info(int device, struct cnd_cuda_device_info *info)
{
    memset(info, 0, sizeof(*info));
    cudaDeviceProp p;
    CUDA_CHECK(cudaGetDeviceProperties(&p, device));
    size_t nl = strlen(p.name) < sizeof(info->name) - 1 ? strlen(p.name) : sizeof(info->name) - 1;
    memcpy(info->name, p.name, nl);
    info->name[nl] = 0;
    info->cc_major = p.major;
    info->cc_minor = p.minor;
    info->sm_count = p.multiProcessorCount;
    int v = 0;
    if (cudaDeviceGetAttribute(&v, cudaDevAttrGlobalMemoryBusWidth, device) == cudaSuccess)
        info->mem_bus_bits = v;
    if (cudaDeviceGetAttribute(&v, cudaDevAttrMemoryClockRate, device) == cudaSuccess)
        info->mem_clock_khz = v;
    cudaGetLastError();
    int cur = 0;
    CUDA_CHECK(cudaGetDevice(&cur));
    CUDA_CHECK(cudaSetDevice(device));
    cudaError_t e = cudaMemGetInfo(&info->free_bytes, &info->total_bytes);
    cudaSetDevice(cur);
    CUDA_CHECK(e);
    return 0;
}

extern "C" int cnd_cuda_set_device(int device)
{
    CUDA_CHECK(cudaSetDevice(device));
    CUDA_CHECK(cudaFree(0)); // create the context now, so a broken device fails here
    return 0;
}

extern "C" int cnd_cuda_mem_info(size_t *free_bytes, size_t *total_bytes)
{
    CUDA_CHECK(cudaMemGetInfo(free_bytes, total_bytes));
    return 0;
}

extern "C" const char *cnd_cuda_last_error(void)
{
    return cnd_cuda_err_msg;
}

extern "C" int cnd_cuda_malloc(void **p, size_t n)
{
    *p = NULL;
    CUDA_CHECK(cudaMalloc(p, n ? n : 256));
    return 0;
}

extern "C" int cnd_cuda_free(void *p)
{
    CUDA_CHECK(cudaFree(p));
    return 0;
}

extern "C" int cnd_cuda_malloc_host(void **p, size_t n)
{
    *p = NULL;
    CUDA_CHECK(cudaMallocHost(p, n ? n : 256));
    return 0;
}

extern "C" int cnd_cuda_free_host(void *p)
{
    CUDA_CHECK(cudaFreeHost(p));
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

extern "C" int cnd_cuda_memcpy_async(void *dst, const void *src, size_t n, int kind, void *stream)
{
    cudaMemcpyKind k = kind == CND_CUDA_H2D   ? cudaMemcpyHostToDevice
                       : kind == CND_CUDA_D2H ? cudaMemcpyDeviceToHost
                                              : cudaMemcpyDeviceToDevice;
    if (n)
        CUDA_CHECK(cudaMemcpyAsync(dst, src, n, k, (cudaStream_t)stream));
    return 0;
}

extern "C" int cnd_cuda_memset_async(void *p, int value, size_t n, void *stream)
{
    if (n)
        CUDA_CHECK(cudaMemsetAsync(p, value, n, (cudaStream_t)stream));
    return 0;
}

extern "C" int cnd_cuda_stream_create(void **stream)
{
    cudaStream_t s = NULL;
    CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    *stream = s;
    return 0;
}

extern "C" int cnd_cuda_stream_destroy(void *stream)
{
    CUDA_CHECK(cudaStreamDestroy((cudaStream_t)stream));
    return 0;
}

extern "C" int cnd_cuda_stream_synchronize(void *stream)
{
    CUDA_CHECK(cudaStreamSynchronize((cudaStream_t)stream));
    return 0;
}

extern "C" int cnd_cuda_event_create(void **event)
{
    cudaEvent_t e = NULL;
    CUDA_CHECK(cudaEventCreate(&e));
    *event = e;
    return 0;
}

extern "C" int cnd_cuda_event_destroy(void *event)
{
    CUDA_CHECK(cudaEventDestroy((cudaEvent_t)event));
    return 0;
}

extern "C" int cnd_cuda_event_record(void *event, void *stream)
{
    CUDA_CHECK(cudaEventRecord((cudaEvent_t)event, (cudaStream_t)stream));
    return 0;
}

extern "C" int cnd_cuda_event_elapsed_ms(float *ms, void *start, void *end)
{
    CUDA_CHECK(cudaEventSynchronize((cudaEvent_t)end));
    CUDA_CHECK(cudaEventElapsedTime(ms, (cudaEvent_t)start, (cudaEvent_t)end));
    return 0;
}

extern "C" int cnd_cuda_graph_begin(void *stream)
{
    CUDA_CHECK(cudaStreamBeginCapture((cudaStream_t)stream, cudaStreamCaptureModeThreadLocal));
    return 0;
}

extern "C" int cnd_cuda_graph_end(void *stream, void **exec)
{
    *exec = NULL;
    cudaGraph_t g = NULL;
    CUDA_CHECK(cudaStreamEndCapture((cudaStream_t)stream, &g));
    cudaGraphExec_t ge = NULL;
    cudaError_t e = cudaGraphInstantiate(&ge, g, 0);
    cudaGraphDestroy(g);
    CUDA_CHECK(e);
    *exec = ge;
    return 0;
}

extern "C" int cnd_cuda_graph_launch(void *exec, void *stream)
{
    CUDA_CHECK(cudaGraphLaunch((cudaGraphExec_t)exec, (cudaStream_t)stream));
    return 0;
}

extern "C" int cnd_cuda_graph_destroy(void *exec)
{
    CUDA_CHECK(cudaGraphExecDestroy((cudaGraphExec_t)exec));
    return 0;
}

#define CUBLAS_CHECK(call)                                                                         \
    do {                                                                                           \
        cublasStatus_t s_ = (call);                                                                \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                         \
            snprintf(cnd_cuda_err_msg, sizeof(cnd_cuda_err_msg), "%s:%d: %s: cuBLAS status %d",    \
                     __FILE__, __LINE__, #call, (int)s_);                                          \
            return CND_CUDA_EDEVICE;                                                               \
        }                                                                                          \
    } while (0)

extern "C" int cnd_cuda_blas_create(void **handle, void *stream, void *workspace,
                                    size_t workspace_bytes)
{
    cublasHandle_t h = NULL;
    CUBLAS_CHECK(cublasCreate(&h));
    *handle = h;
    CUBLAS_CHECK(cublasSetStream(h, (cudaStream_t)stream));
    if (workspace)
        CUBLAS_CHECK(cublasSetWorkspace(h, workspace, workspace_bytes));
    CUBLAS_CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
    return 0;
}

extern "C" int cnd_cuda_blas_destroy(void *handle)
{
    CUBLAS_CHECK(cublasDestroy((cublasHandle_t)handle));
    return 0;
}

extern "C" int cnd_cuda_gemm(void *blas, float *out, int64_t ldo, const void *w, const void *x,
                             int type, int64_t m, int n, int64_t k)
{
    const float one = 1.0f, zero = 0.0f;
    cudaDataType_t t = type == 1 ? CUDA_R_16F : type == 30 ? CUDA_R_16BF : CUDA_R_32F;
    // Column-major view: W (row-major [m, k]) is a k x m matrix, so C[m, n] = W^T(k x m)^T * X.
    CUBLAS_CHECK(cublasGemmEx((cublasHandle_t)blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)m, n, (int)k,
                              &one, w, t, (int)k, x, t, (int)k, &zero, out, CUDA_R_32F, (int)ldo,
                              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return 0;
}
