/* batch.h: the flat forward batch of one engine step, built from a sched_output: every scheduled
 * token with its position, the KV slot it is written to (from its request's block table), the
 * per-request block tables attention reads through, and the rows whose logits are sampled.
 * The caller owns struct batch (init/deinit); arrays are reused from step to step. */
#ifndef CINDER_BATCH_H
#define CINDER_BATCH_H

#include "cinder/common.h"
#include "cinder/forward.h"

struct sched_output;

struct batch {
    struct forward_batch fb; /* points into the arrays below; valid until the next build */
    int32_t *tokens, *positions, *seq_idx, *out_rows;
    int64_t *slots;
    uint8_t *prefill;
    const int32_t **block_tables;
    int32_t *out_req; /* [n_out] index into sched_output.reqs of each logits row */
    size_t cap_tokens, cap_seqs;
};

void batch_init(struct batch *b);
void batch_deinit(struct batch *b);
/* Fill b from out. Requests keep their own tokens in order, one row each; the logits rows are
 * the last row of each request that samples this step, in reqs order. */
void batch_build(struct batch *b, const struct sched_output *out, int32_t block_size);

#endif
