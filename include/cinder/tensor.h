/* tensor.h: element types (GGML/GGUF numbering) with their block layout, and a plain tensor view.
 * No graph: a tensor is a typed, shaped pointer into memory someone else owns. */
#ifndef CINDER_TENSOR_H
#define CINDER_TENSOR_H

#include "cinder/common.h"

/* Values are the GGUF on-disk type ids; gaps are ids GGML retired. */
enum cnd_dtype {
    CND_DTYPE_F32 = 0,
    CND_DTYPE_F16 = 1,
    CND_DTYPE_Q4_0 = 2,
    CND_DTYPE_Q4_1 = 3,
    CND_DTYPE_Q5_0 = 6,
    CND_DTYPE_Q5_1 = 7,
    CND_DTYPE_Q8_0 = 8,
    CND_DTYPE_Q8_1 = 9,
    CND_DTYPE_Q2_K = 10,
    CND_DTYPE_Q3_K = 11,
    CND_DTYPE_Q4_K = 12,
    CND_DTYPE_Q5_K = 13,
    CND_DTYPE_Q6_K = 14,
    CND_DTYPE_Q8_K = 15,
    CND_DTYPE_IQ2_XXS = 16,
    CND_DTYPE_IQ2_XS = 17,
    CND_DTYPE_IQ3_XXS = 18,
    CND_DTYPE_IQ1_S = 19,
    CND_DTYPE_IQ4_NL = 20,
    CND_DTYPE_IQ3_S = 21,
    CND_DTYPE_IQ2_S = 22,
    CND_DTYPE_IQ4_XS = 23,
    CND_DTYPE_I8 = 24,
    CND_DTYPE_I16 = 25,
    CND_DTYPE_I32 = 26,
    CND_DTYPE_I64 = 27,
    CND_DTYPE_F64 = 28,
    CND_DTYPE_IQ1_M = 29,
    CND_DTYPE_BF16 = 30,
    CND_DTYPE_TQ1_0 = 34,
    CND_DTYPE_TQ2_0 = 35,
    CND_DTYPE_MXFP4 = 39,
    CND_DTYPE_COUNT = 40,
};

/* Known type? (ids inside the range that GGML never used or retired are not.) */
bool dtype_is_valid(uint32_t type);
const char *dtype_name(enum cnd_dtype type); /* "q4_K"-style names as GGML prints them */
/* Type by name, case-insensitive ("q4_k", "Q4_K", "f16"); CND_EINVAL if there is none. */
int dtype_from_name(const char *name, enum cnd_dtype *out);
int64_t dtype_block_size(enum cnd_dtype type); /* elements per block */
int64_t dtype_type_size(enum cnd_dtype type);  /* bytes per block */
/* Bytes of a row of n elements (n must be a multiple of the block size). */
static inline size_t dtype_row_size(enum cnd_dtype type, int64_t n)
{
    return (size_t)(n / dtype_block_size(type) * dtype_type_size(type));
}

#define CND_MAX_DIMS 4

enum tensor_device { TENSOR_DEVICE_HOST = 0, TENSOR_DEVICE_CUDA = 1 };

/* ne[0] is the contiguous (row) dimension, as in GGML; nb[] are byte strides. */
struct tensor {
    enum cnd_dtype dtype;
    int n_dims;
    int64_t ne[CND_MAX_DIMS];
    size_t nb[CND_MAX_DIMS];
    void *data; /* borrowed */
    enum tensor_device device;
};

static inline int64_t tensor_n_elements(const struct tensor *t)
{
    return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
}

#endif
