/* backend.h: the compute backend vtable (ggml_backend_i in spirit). A backend owns its memory
 * (activation buffers, the KV cache, device copies of weights) and implements the ops the
 * forward pass is written in. Pointers passed to ops are backend memory (host memory for the
 * CPU backend, device memory for CUDA); ops may run asynchronously until sync(). One engine
 * thread drives a backend; it is not thread-safe. */
#ifndef CINDER_BACKEND_H
#define CINDER_BACKEND_H

#include "cinder/common.h"
#include "cinder/tensor.h"

struct model;
struct forward_batch;
struct backend;

struct kv_cache_params {
    int32_t n_layer;
    int32_t n_blocks;
    int32_t block_size; /* tokens per block */
    int32_t n_head_kv;
    int32_t head_dim;
    enum cnd_dtype dtype; /* CND_DTYPE_F16 (default, as llama.cpp) or CND_DTYPE_F32 */
};

struct rope_params {
    int32_t n_rot;
    int32_t head_dim;
    float freq_base;
    float freq_scale;
    bool neox;
    const float *freq_factors; /* backend memory, n_rot/2 floats, or NULL */
};

struct attn_params {
    int32_t n_head;
    int32_t n_head_kv;
    int32_t head_dim;
    float scale;
};

struct backend_ops {
    const char *name;
    void (*destroy)(struct backend *be);

    /* memory */
    void *(*alloc)(struct backend *be, size_t bytes); /* NULL when out of memory */
    void (*free)(struct backend *be, void *p);
    int (*upload)(struct backend *be, void *dst, const void *src, size_t bytes);
    int (*download)(struct backend *be, void *dst, const void *src, size_t bytes);
    int (*sync)(struct backend *be);

    /* weights: the backend's view of a model tensor (CPU: the tensor itself; CUDA: a device
     * copy made by load_model). Valid until the backend is destroyed. */
    int (*load_model)(struct backend *be, const struct model *m, char *err);
    const struct tensor *(*weight)(struct backend *be, const struct tensor *host);

    /* KV cache: (re)allocate the pool; contents undefined. */
    int (*kv_init)(struct backend *be, const struct kv_cache_params *p, char *err);
    /* Per-step metadata (positions, slots, block tables) to where the ops can read it. */
    int (*begin_batch)(struct backend *be, const struct forward_batch *b);

    /* ops (row-major activations: row i of an [n, d] buffer starts at i*d) */
    void (*get_rows)(struct backend *be, const struct tensor *w, const int32_t *ids, int32_t n,
                     float *out);
    void (*rmsnorm)(struct backend *be, float *out, const float *x, const struct tensor *w,
                    int32_t n_rows, int32_t n_cols, float eps);
    /* out[n, w->ne[1]] = x[n, w->ne[0]] * W^T (+ bias); prefill: [n] host flags or NULL, the
     * role of each activation row (forward_batch.prefill) */
    void (*matmul)(struct backend *be, float *out, const struct tensor *w, const float *x,
                   int32_t n, const struct tensor *bias, const uint8_t *prefill);
    /* Optional (NULL: the forward calls matmul per weight): several products of one input,
     * e.g. Q, K and V, in one pass, so that the input is prepared once and the threads meet
     * once. Same results as the separate matmul calls. */
    void (*matmul_group)(struct backend *be, int n_mats, float *const *out,
                         const struct tensor *const *w, const float *x, int32_t n,
                         const struct tensor *const *bias, const uint8_t *prefill);
    void (*rope)(struct backend *be, float *x, int32_t n_rows, int32_t n_heads,
                 const struct rope_params *rp);
    /* Write k, v rows into layer's cache at the batch's slots, then attend q over each row's
     * sequence (positions 0..pos) through its block table; out is [n, n_head * head_dim]. */
    void (*attention)(struct backend *be, int32_t layer, const float *q, const float *k,
                      const float *v, float *out, const struct attn_params *ap);
    /* out = silu(gate) * up over [n_rows, n_cols] (rows: the CPU follows ggml's per-row
     * vector / scalar split) */
    void (*silu_mul)(struct backend *be, float *out, const float *gate, const float *up,
                     int64_t n_rows, int64_t n_cols);
    void (*add)(struct backend *be, float *out, const float *a, const float *b, int64_t n);
    /* out[i, :] = x[rows[i], :] for i < n (host row indices) */
    void (*gather_rows)(struct backend *be, float *out, const float *x, const int32_t *rows,
                        int32_t n, int32_t n_cols);
};

struct backend {
    const struct backend_ops *ops;
};

struct backend_cpu_params {
    int n_threads; /* <= 0: all cores */
};

struct backend *backend_cpu_create(const struct backend_cpu_params *p, char *err);
/* Threads the CPU backend uses for the next ops (1..n_threads); small models run faster on one. */
void backend_cpu_set_active_threads(struct backend *be, int n);

static inline void backend_destroy(struct backend *be)
{
    if (be)
        be->ops->destroy(be);
}

#endif
