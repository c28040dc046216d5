/* quant_x16.h: weights repacked 16 rows at a time for the AVX-512 VNNI kernels.
 *
 * A plain GGUF weight matrix stores each row's blocks one after another, so a kernel working
 * on many columns (tokens) at once must unpack every block once per column tile. The x16
 * layout interleaves 16 consecutive rows block by block: one 64-byte vector holds 4 quants
 * (one dword) of each of 16 rows, so a vpdpbusd against one broadcast activation dword
 * advances all 16 rows at once and the result vector is 16 output rows of one column. The
 * per-row float work (scales, block sums) is then done 16 rows per instruction as well.
 *
 * Arithmetic, per (row, column) and block, in this order: the integer dot of the block is
 * exact; then acc = fma(float(isum), d_w * d_a, acc) (K-quants with mins: then
 * acc = fma(-float(minsum), dmin_w * d_a, acc)); the result is acc after the last block. The
 * sequence does not depend on how many columns are computed together, so a token's outputs are
 * the same alone or in a batch of any size (batch invariance), and decode (one column) runs the
 * same code as prompt processing.
 *
 * Types: Q4_0 and Q8_0 (against Q8_0 activations), Q4_K, Q5_K and Q6_K (against Q8_K). The
 * size of a packed matrix equals the plain one except Q4_K and Q5_K (148 / 180 instead of 144 /
 * 176 bytes per row and block: the 6-bit scales are stored unpacked). Rows are padded to a
 * multiple of 16 with zero rows. */
#ifndef CINDER_QUANT_X16_H
#define CINDER_QUANT_X16_H

#include "cinder/common.h"
#include "cinder/tensor.h"

/* Can weights of type t be packed and multiplied this way on this CPU (AVX-512 VNNI)? */
bool quant_x16_supported(enum cnd_dtype t);

/* Bytes of the packed form of an [n_rows, n_in] matrix of type t. */
size_t quant_x16_size(enum cnd_dtype t, int64_t n_in, int64_t n_rows);

/* Pack row groups [g0, g1) (rows 16*g0 .. 16*g1-1, rows past n_rows are zero) of the plain
 * matrix src (row stride src_row bytes) into dst (the whole packed buffer). */
void quant_x16_pack(enum cnd_dtype t, int64_t n_in, int64_t n_rows, const void *src, size_t src_row,
                    int64_t g0, int64_t g1, void *dst);

/* Per-column activation side data (block scales as floats, offset sums) the kernels read:
 * int32 words per column. */
size_t quant_x16_aux_words(enum cnd_dtype t, int64_t n_in);
/* Fill aux for columns [c0, c1) of act (quantized to quant_vec_dot_type(t), row stride
 * act_row bytes); column c's words start at aux + c * quant_x16_aux_words(t, n_in). */
void quant_x16_prepare(enum cnd_dtype t, int64_t n_in, const void *act, size_t act_row, int64_t c0,
                       int64_t c1, int32_t *aux);

/* out[c * out_row + r] = dot(row r, column c) for rows 16*g0 .. min(16*g1, n_rows) - 1 and
 * columns 0 .. n_cols-1 (out_row in floats). */
void quant_x16_gemm(enum cnd_dtype t, int64_t n_in, int64_t n_rows, const void *packed, int64_t g0,
                    int64_t g1, const void *act, size_t act_row, const int32_t *aux, int64_t n_cols,
                    float *out, size_t out_row);

#endif
