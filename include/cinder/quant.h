/* quant.h: per-type weight kernels for the CPU backend. For every weight type there is a plain
 * scalar reference (the test oracle) and, where the CPU has them, SIMD versions picked at run
 * time. Dot products follow llama.cpp's scheme so results agree closely with its references:
 * activations are first quantized to the type's "vec_dot type" (Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1
 * for Q4_1/Q5_1, Q8_K for the K-quants, F16 for F16, BF16 for BF16, F32 for F32), then the
 * weight row is dotted with that quantized activation row.
 *
 * Determinism: for a given type, n and SIMD level, quant_vec_dot and quant_vec_dot_tile give
 * bit-identical results for the same (weight row, activation row), whatever the tile shape, so
 * a sequence's logits do not depend on what else is in the batch. */
#ifndef CINDER_QUANT_H
#define CINDER_QUANT_H

#include "cinder/common.h"
#include "cinder/tensor.h"

enum quant_simd {
    QUANT_SIMD_SCALAR = 0,
    QUANT_SIMD_AVX2 = 1,        /* AVX2 + FMA + F16C */
    QUANT_SIMD_AVX512 = 2,      /* AVX-512 F/BW/VL/DQ */
    QUANT_SIMD_AVX512_VNNI = 3, /* + VNNI (and BF16 where present) */
};

/* Best level this CPU supports (cached after the first call); CINDER_SIMD=scalar|avx2|avx512|
 * avx512_vnni in the environment caps it, for tests and comparisons. */
enum quant_simd quant_simd_detect(void);
const char *quant_simd_name(enum quant_simd level);

/* Is t a weight type we can multiply (F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K..Q6_K)? */
bool quant_is_supported(enum cnd_dtype t);
/* The format activations are quantized to before a dot product with weights of type t. */
enum cnd_dtype quant_vec_dot_type(enum cnd_dtype t);

/* Scalar reference: dequantize n (multiple of the block size) values of type t. */
void quant_dequantize_row_ref(enum cnd_dtype t, const void *x, float *y, int64_t n);
/* Scalar reference: quantize n floats into act type (Q8_0, Q8_1, Q8_K, F16, BF16, F32). */
void quant_quantize_row_ref(enum cnd_dtype act, const float *x, void *y, int64_t n);
/* Scalar reference: dot of a weight row of type t with an activation row already quantized to
 * quant_vec_dot_type(t). */
float quant_vec_dot_ref(enum cnd_dtype t, int64_t n, const void *w, const void *a);

/* Function table of one type at one SIMD level (falls back to lower levels per function). */
typedef void (*quant_dequantize_fn)(const void *x, float *y, int64_t n);
typedef void (*quant_quantize_fn)(const float *x, void *y, int64_t n);
typedef float (*quant_vec_dot_fn)(int64_t n, const void *w, const void *a);
/* out[r * out_stride + c] = dot(w + r * w_stride, a + c * a_stride) for r < n_rows, c < n_cols
 * (n_rows, n_cols in 1..QUANT_TILE_MAX); strides in bytes except out_stride (floats). */
typedef void (*quant_vec_dot_tile_fn)(int64_t n, const void *w, size_t w_stride, int n_rows,
                                      const void *a, size_t a_stride, int n_cols, float *out,
                                      size_t out_stride);
#define QUANT_TILE_MAX 4
/* out[r * out_rs + c * out_cs] = dot(w + r * w_stride, a + c * a_stride) for any n_rows,
 * n_cols >= 1 (strides of out in floats): a whole block of a matrix product, with the kernel's
 * own register tiling and cache blocking. Bit-identical to vec_dot of the same table for every
 * (r, c), like vec_dot_tile. */
typedef void (*quant_gemm_fn)(int64_t n, const void *w, size_t w_stride, int64_t n_rows,
                              const void *a, size_t a_stride, int64_t n_cols, float *out,
                              size_t out_rs, size_t out_cs);

/* out[r] = dot(w + r * w_stride, a) for r < n_rows: one activation row (decode), the rows read
 * in an order that keeps several memory streams going. Bit-identical to gemm. */
typedef void (*quant_gemv_fn)(int64_t n, const void *w, size_t w_stride, int64_t n_rows,
                              const void *a, float *out);

struct quant_kernels {
    enum cnd_dtype type;
    enum cnd_dtype vec_dot_type;
    quant_dequantize_fn dequantize;
    quant_quantize_fn quantize_act; /* floats -> vec_dot_type */
    quant_vec_dot_fn vec_dot;
    quant_vec_dot_tile_fn vec_dot_tile;
    quant_gemm_fn gemm; /* NULL: the caller loops over vec_dot_tile */
    quant_gemv_fn gemv; /* NULL: gemm with one column */
    /* The float types at AVX-512 also have llama.cpp's prompt-pass summation order (llamafile's
     * tinyBLAS; vec_dot above is ggml's single-token order), which llama.cpp uses when a
     * product has two or more activation rows and n is a multiple of pp_align. gemm_pp is
     * bit-identical to vec_dot_pp for every (r, c), as gemm is to vec_dot. NULL / 0: none. */
    quant_vec_dot_fn vec_dot_pp;
    quant_gemm_fn gemm_pp;
    int pp_align;
};

/* Kernels of weight type t at the given level (or lower); NULL if t is not supported. The
 * returned table is static. */
const struct quant_kernels *quant_get_kernels(enum cnd_dtype t, enum quant_simd level);

/* Quantize floats into weight type t with the reference quantizer (round to nearest; for
 * random-weight models and tests; K-quants use a simple min/max fit). Returns 0 or
 * -CND_EUNSUPPORTED. */
int quant_quantize_weights(enum cnd_dtype t, const float *x, void *y, int64_t n);

#endif
