/* forward.h: one forward pass of the llama family over a batch of tokens from one or more
 * sequences, written once as calls of backend ops (backend.h). K/V of every token are written
 * into the backend's paged KV cache at the token's slot, and attention reads each sequence's
 * K/V through its block table, so a per-sequence contiguous cache and the paged pool are the
 * same code. Logits come back only for the rows asked for. */
#ifndef CINDER_FORWARD_H
#define CINDER_FORWARD_H

#include "cinder/common.h"

struct model;
struct backend;

/* The step's flat batch (built by the engine's batch.c or by the CLI tools). */
struct forward_batch {
    int32_t n_tokens;
    const int32_t *tokens;    /* [n_tokens] */
    const int32_t *positions; /* [n_tokens] position of each token in its sequence */
    const int32_t *seq_idx;   /* [n_tokens] index into block_tables */
    const int64_t *slots;     /* [n_tokens] KV slot = block_id * block_size + pos % block_size */
    int32_t n_seqs;
    const int32_t *const *block_tables; /* [n_seqs] block ids for positions 0, bs, 2bs, ... */
    int32_t n_out;
    const int32_t *out_rows; /* [n_out] rows whose logits are wanted */
    /* [n_tokens] or NULL (all 0): 1 where the row is a token of a prompt of two or more tokens.
     * llama.cpp computes those in its prompt pass with other float summation orders than
     * generated tokens and one-token prompts (1-column products); the CPU backend follows each
     * row's order. A row's role is fixed by its request, not by the rest of the batch, so its
     * numbers stay independent of what it is batched with. */
    const uint8_t *prefill;
};

struct forward_ctx;

/* Scratch for batches of up to max_tokens tokens (larger batches are split internally). */
struct forward_ctx *forward_ctx_create(const struct model *m, struct backend *be,
                                       int32_t max_tokens, char *err);
void forward_ctx_destroy(struct forward_ctx *fc);

/* Run the batch; logits (host memory, n_out x n_vocab floats) receives the rows of
 * out_rows in order. Returns 0 or a negative status. */
int forward_run(struct forward_ctx *fc, const struct forward_batch *b, float *logits);

#endif
