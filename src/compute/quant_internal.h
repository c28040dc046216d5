/* quant_internal.h: what quant.c and the per-ISA kernel files share and nothing else sees: the
 * fill functions that put each level's kernels into a table, and the scaffolding that turns one
 * always-inline R x C tile body into a vec_dot (the 1 x 1 instance) and a vec_dot_tile (all 16
 * shapes), which is what makes a tile bit-identical to the single dot. */
#ifndef CINDER_QUANT_INTERNAL_H
#define CINDER_QUANT_INTERNAL_H

#include "cinder/fp16.h"
#include "cinder/quant.h"

#include <string.h>

/* Block fields at any byte offset (scales sit at odd offsets in several formats). */
static inline float quant_ld_f32(const void *p)
{
    float f;
    memcpy(&f, p, 4);
    return f;
}
static inline uint16_t quant_ld_u16(const void *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return h;
}
static inline float quant_ld_f16(const void *p)
{
    return fp16_to_fp32(quant_ld_u16(p));
}
static inline float quant_ld_bf16(const void *p)
{
    return bf16_to_fp32(quant_ld_u16(p));
}

void quant_ref_fill(enum cnd_dtype t, struct quant_kernels *k);
void quant_avx2_fill(enum cnd_dtype t, struct quant_kernels *k);
/* bf16: the CPU has AVX512-BF16 (vdpbf16ps), which llama.cpp's BF16 kernels use */
void quant_avx512_fill(enum cnd_dtype t, struct quant_kernels *k, bool vnni, bool bf16);

/* kern(n, w, w_stride, a, a_stride, out, out_stride, R, C) with R, C compile-time constants */
#define QUANT_TILE_CASE(kern, R, C)                                                                \
    case (R - 1) * 4 + (C - 1): kern(n, w, ws, a, as, out, os, R, C); break;
/* the case list one per line (clang-format 14 folds it differently on every pass) */
/* clang-format off */
#define QUANT_DEFINE_DOT_TILE(TGT, name, kern)                                                     \
    TGT static float name##_dot(int64_t n, const void *w, const void *a)                           \
    {                                                                                              \
        float o;                                                                                   \
        kern(n, (const uint8_t *)w, 0, (const uint8_t *)a, 0, &o, 0, 1, 1);                        \
        return o;                                                                                  \
    }                                                                                              \
    TGT static void name##_tile(int64_t n, const void *vw, size_t ws, int nr, const void *va,      \
                                size_t as, int nc, float *out, size_t os)                          \
    {                                                                                              \
        const uint8_t *w = vw, *a = va;                                                            \
        switch ((nr - 1) * 4 + (nc - 1)) {                                                         \
            QUANT_TILE_CASE(kern, 1, 1)                                                            \
            QUANT_TILE_CASE(kern, 1, 2)                                                            \
            QUANT_TILE_CASE(kern, 1, 3)                                                            \
            QUANT_TILE_CASE(kern, 1, 4)                                                            \
            QUANT_TILE_CASE(kern, 2, 1)                                                            \
            QUANT_TILE_CASE(kern, 2, 2)                                                            \
            QUANT_TILE_CASE(kern, 2, 3)                                                            \
            QUANT_TILE_CASE(kern, 2, 4)                                                            \
            QUANT_TILE_CASE(kern, 3, 1)                                                            \
            QUANT_TILE_CASE(kern, 3, 2)                                                            \
            QUANT_TILE_CASE(kern, 3, 3)                                                            \
            QUANT_TILE_CASE(kern, 3, 4)                                                            \
            QUANT_TILE_CASE(kern, 4, 1)                                                            \
            QUANT_TILE_CASE(kern, 4, 2)                                                            \
            QUANT_TILE_CASE(kern, 4, 3)                                                            \
            QUANT_TILE_CASE(kern, 4, 4)                                                            \
        default: break;                                                                            \
        }                                                                                          \
    }
/* clang-format on */

/* vec_dot (1 x 1) and vec_dot_tile of a kernel file's name##_gemm (quant_gemm_fn): both the
 * gemm itself, so the three agree bit for bit */
#define QUANT_DOT_TILE_FROM_GEMM(TGT, name)                                                        \
    TGT static float name##_dot(int64_t n, const void *w, const void *a)                           \
    {                                                                                              \
        float o;                                                                                   \
        name##_gemm(n, w, 0, 1, a, 0, 1, &o, 0, 0);                                                \
        return o;                                                                                  \
    }                                                                                              \
    TGT static CND_MAYBE_UNUSED void name##_tile(int64_t n, const void *w, size_t ws, int nr,      \
                                                 const void *a, size_t as, int nc, float *out,     \
                                                 size_t os)                                        \
    {                                                                                              \
        name##_gemm(n, w, ws, nr, a, as, nc, out, os, 1);                                          \
    }

#define FOR_R  for (int r = 0; r < R; r++)
#define FOR_C  for (int c = 0; c < C; c++)
#define UNROLL _Pragma("GCC unroll 4")

#endif
