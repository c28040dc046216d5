/* backend_cuda.h: the CUDA implementation of the backend vtable (backend.h). One device, one
 * stream and one cuBLAS handle per backend; weights are copied to VRAM once by load_model and
 * the KV block pool lives in VRAM. Ops are recorded and run at sync(); decode steps of a few
 * batch sizes are captured once as CUDA graphs and replayed. Built without CUDA, create returns
 * NULL with "built without CUDA" and device_count is 0. */
#ifndef CINDER_BACKEND_CUDA_H
#define CINDER_BACKEND_CUDA_H

#include "cinder/common.h"

struct backend;

struct backend_cuda_params {
    int device; /* index among the visible devices (CUDA_VISIBLE_DEVICES applies) */
};

struct backend_cuda_device_info {
    char name[128];
    size_t free_bytes, total_bytes;
    int cc_major, cc_minor;
};

/* NULL + err (no device, a failing CUDA call, ...): never a crash. */
struct backend *backend_cuda_create(const struct backend_cuda_params *p, char *err);
/* Visible devices; 0 without a driver, without a device or without CUDA in the build. */
int backend_cuda_device_count(void);
/* Name, memory and compute capability of a visible device. 0 or a negative status + err. */
int backend_cuda_device_info(int device, struct backend_cuda_device_info *info, char *err);
/* Is this the CUDA backend? */
bool backend_is_cuda(const struct backend *be);
/* Free and total VRAM of the backend's device, for sizing the KV pool. */
int backend_cuda_mem_info(struct backend *be, size_t *free_bytes, size_t *total_bytes);

struct backend_cuda_stats {
    uint64_t eager_runs;     /* op lists run launch by launch */
    uint64_t graph_captures; /* CUDA graphs captured */
    uint64_t graph_launches; /* steps replayed from a graph */
    size_t weight_bytes;     /* VRAM holding weights */
    size_t kv_bytes;         /* VRAM holding the KV pool */
};
void backend_cuda_get_stats(struct backend *be, struct backend_cuda_stats *st);

#endif
