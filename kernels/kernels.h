/* kernels.h: the C ABI of cinder's CUDA kernels. Streams, events, graphs and the cuBLAS handle
 * are passed as void * so host C code never includes CUDA headers; every function returns 0 or
 * a negative cnd_status (-7, CND_EDEVICE) and leaves a message for cnd_cuda_last_error().
 * Type ids are GGUF's (enum cnd_dtype). All data pointers are device memory unless named host. */
#ifndef CINDER_KERNELS_H
#define CINDER_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- runtime (runtime.cu) ---- */

/* Number of visible CUDA devices (0 when there is no driver or no device). */
int cnd_cuda_device_count(void);

struct cnd_cuda_device_info {
    char name[128];
    size_t free_bytes, total_bytes;
    int cc_major, cc_minor;
    int sm_count;
    double mem_bus_bits, mem_clock_khz; /* for a theoretical bandwidth, if the driver says */
};
int cnd_cuda_device_info(int device, struct cnd_cuda_device_info *info);
int cnd_cuda_set_device(int device);
int cnd_cuda_mem_info(size_t *free_bytes, size_t *total_bytes);

/* Message of the last failure of a function here (thread-local, borrowed). */
const char *cnd_cuda_last_error(void);

int cnd_cuda_malloc(void **p, size_t n);
int cnd_cuda_free(void *p);
int cnd_cuda_malloc_host(void **p, size_t n); /* pinned */
int cnd_cuda_free_host(void *p);
int cnd_cuda_memcpy_h2d(void *dst, const void *src, size_t n);
int cnd_cuda_memcpy_d2h(void *dst, const void *src, size_t n);
int cnd_cuda_synchronize(void);

enum cnd_cuda_copy { CND_CUDA_H2D = 1, CND_CUDA_D2H = 2, CND_CUDA_D2D = 3 };
int cnd_cuda_memcpy_async(void *dst, const void *src, size_t n, int kind, void *stream);
int cnd_cuda_memset_async(void *p, int value, size_t n, void *stream);

int cnd_cuda_stream_create(void **stream);
int cnd_cuda_stream_destroy(void *stream);
int cnd_cuda_stream_synchronize(void *stream);

int cnd_cuda_event_create(void **event);
int cnd_cuda_event_destroy(void *event);
int cnd_cuda_event_record(void *event, void *stream);
int cnd_cuda_event_elapsed_ms(float *ms, void *start, void *end);

/* Stream capture into a graph (thread-local capture mode), instantiate, launch. */
int cnd_cuda_graph_begin(void *stream);
/* Ends the capture; *exec receives the instantiated graph (NULL if fail). */
int cnd_cuda_graph_end(void *stream, void **exec);
int cnd_cuda_graph_launch(void *exec, void *stream);
int cnd_cuda_graph_destroy(void *exec);

/* cuBLAS handle bound to stream, with a caller-owned workspace (so capture never allocates). */
int cnd_cuda_blas_create(void **handle, void *stream, void *workspace, size_t workspace_bytes);
int cnd_cuda_blas_destroy(void *handle);

/* ---- elementwise and row ops (one file each) ---- */

/* out[i, :] = dequantize(w row ids[i]) for i < n; rows of n_cols elements, row_bytes apart. */
int cnd_cuda_get_rows(float *out, const void *w, int dtype, int64_t n_cols, size_t row_bytes,
                      const int32_t *ids, int n, void *stream);

/* y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * w[:] for n_rows rows of n_cols floats. */
int cnd_cuda_rmsnorm_f32(float *y, const float *x, const float *w, int n_rows, int n_cols,
                         float eps, void *stream);

/* In-place RoPE of x[n_rows, n_heads, head_dim] at positions pos[n_rows] (llama.cpp's theta
 * recurrence: theta_j = pos * theta_scale^j, multiplied pair by pair in float). */
int cnd_cuda_rope_f32(float *x, const int32_t *pos, int n_rows, int n_heads, int head_dim,
                      int n_rot, float theta_scale, float freq_scale, const float *freq_factors,
                      int neox, void *stream);

int cnd_cuda_silu_mul_f32(float *out, const float *gate, const float *up, int64_t n, void *stream);
int cnd_cuda_add_f32(float *out, const float *a, const float *b, int64_t n, void *stream);
/* out[r, c] += bias[c] */
int cnd_cuda_add_bias_f32(float *out, const float *bias, int n_rows, int n_cols, void *stream);
/* out[i, :] = x[rows[i], :] (rows in device memory) */
int cnd_cuda_gather_rows_f32(float *out, const float *x, const int32_t *rows, int n, int n_cols,
                             void *stream);

/* ---- KV cache and attention ---- */

/* K/V rows [n_rows, kv_dim] (float) into the caches at slots[r] (slot < 0: skipped); the
 * caches hold F16 (f16 != 0) or F32 elements, [n_slots, kv_dim]. */
int cnd_cuda_reshape_and_cache(void *k_cache, void *v_cache, const float *k, const float *v,
                               const int64_t *slots, int n_rows, int kv_dim, int f16, void *stream);

struct cnd_cuda_attn_args {
    const float *q;                /* [n_rows, n_head, head_dim] */
    float *out;                    /* [n_rows, n_head, head_dim] */
    const void *k_cache, *v_cache; /* one layer, [n_slots, n_head_kv * head_dim] */
    int f16;                       /* cache element type */
    const int32_t *positions;      /* [n_rows] */
    const int32_t *seq_idx;        /* [n_rows] */
    const int32_t *block_tables;   /* [n_seqs, table_width] */
    int table_width;
    int block_size;
    int n_rows, n_head, n_head_kv, head_dim;
    float scale;
};

/* Positions per split of the decode kernel. */
#define CND_CUDA_ATTN_SPLIT 128
/* Flash-decoding: every (row, kv head, split) block attends over its CND_CUDA_ATTN_SPLIT
 * positions into part_acc [n_rows, n_head, n_splits, head_dim] and part_ml [.., n_splits, 2];
 * a second kernel combines the splits. Works for any row (prefill rows too), head_dim <= 256,
 * n_head / n_head_kv <= 8. */
int cnd_cuda_paged_attention(const struct cnd_cuda_attn_args *a, int n_splits, float *part_acc,
                             float *part_ml, void *stream);
/* Rows per query tile of the prefill kernel for this shape, or 0 if it does not apply (it needs
 * an F16 cache, head_dim 32, 64 or 128, and n_head / n_head_kv <= 64). */
int cnd_cuda_prefill_tile_rows(int head_dim, int n_head, int n_head_kv, int f16);
/* Tiled prefill attention with online softmax: tiles[2 * t] = first row, tiles[2 * t + 1] =
 * rows (all of one sequence, at most tile_rows). */
int cnd_cuda_prefill_attention(const struct cnd_cuda_attn_args *a, const int32_t *tiles,
                               int n_tiles, void *stream);

/* ---- matrix multiply ---- */

/* Activation row bytes for act_dtype (Q8_0, Q8_K, F16, BF16, F32) of n_cols values. */
size_t cnd_cuda_act_row_bytes(int act_dtype, int64_t n_cols);
/* The activation format weights of dtype are multiplied with (as the CPU backend): Q8_0 for
 * Q4_0/Q8_0, Q8_K for Q4_K/Q6_K, F16, BF16, F32; -1 if dtype is not supported. */
int cnd_cuda_act_dtype(int dtype);
/* x[n_rows, n_cols] floats -> act rows (the CPU's reference rounding). */
int cnd_cuda_quantize_act(void *dst, const float *x, int act_dtype, int n_rows, int64_t n_cols,
                          void *stream);

#define CND_CUDA_MMV_MAX 8
/* out[c, r] = dot(w row r, act row c) (+ bias[r]) for r < n_out, c < n (n <= MMV_MAX), reading
 * GGUF blocks directly. w rows are n_in elements of dtype; act rows as cnd_cuda_quantize_act. */
int cnd_cuda_mmv(float *out, const void *w, int dtype, int64_t n_in, int64_t n_out, const void *act,
                 int n, const float *bias, void *stream);

/* dst[n_rows, n_cols] F16 (or BF16 if dst_bf16) = dequantize(w rows), for the cuBLAS path. */
int cnd_cuda_dequantize(void *dst, int dst_bf16, const void *w, int dtype, int64_t n_rows,
                        int64_t n_cols, void *stream);

/* out[c, r] (ld ldo) = sum_k w[r, k] x[c, k] for r < m, c < n: w and x both F16, both BF16 or
 * both F32 (type), F32 accumulate, cublasGemmEx. */
int cnd_cuda_gemm(void *blas, float *out, int64_t ldo, const void *w, const void *x, int type,
                  int64_t m, int n, int64_t k);

#ifdef __cplusplus
}
#endif

#endif
