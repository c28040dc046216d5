/* kernels.h: the C ABI of cinder's CUDA kernels. Streams are passed as void * so host C code
 * never includes CUDA headers; every launcher returns 0 or a negative cnd_status and fills err. */
#ifndef CINDER_KERNELS_H
#define CINDER_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Number of visible CUDA devices (0 when there is no driver or no device). */
int cnd_cuda_device_count(void);

/* y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * w[:] for n_rows rows of n_cols floats.
 * All pointers are device memory. */
int cnd_cuda_rmsnorm_f32(float *y, const float *x, const float *w, int n_rows, int n_cols,
                         float eps, void *stream);

/* Small host<->device helpers for tests and the backend's start-up. */
int cnd_cuda_malloc(void **p, size_t n);
int cnd_cuda_free(void *p);
int cnd_cuda_memcpy_h2d(void *dst, const void *src, size_t n);
int cnd_cuda_memcpy_d2h(void *dst, const void *src, size_t n);
int cnd_cuda_synchronize(void);
/* Message of the last failure of a function above (thread-local, borrowed). */
const char *cnd_cuda_last_error(void);

#ifdef __cplusplus
}
#endif

#endif
