/* batch.c: sched_output -> struct forward_batch.
 *
 * The batch is the only place where a request's logical positions meet physical KV slots:
 * position p of a request lives in block block_table[p / block_size] at offset p % block_size,
 * so slot = block_id * block_size + p % block_size. Rows are laid out request by request in the
 * scheduler's order, each request's tokens in position order; the kernels compute every row the
 * same whatever else is in the batch, so this order does not change any request's numbers. */
#include "cinder/batch.h"
#include "cinder/request.h"
#include "cinder/scheduler.h"
#include "cinder/status.h"
#include "cinder/xalloc.h"

#include <stdlib.h>
#include <string.h>

void batch_init(struct batch *b)
{
    memset(b, 0, sizeof(*b));
}

void batch_deinit(struct batch *b)
{
    free(b->tokens);
    free(b->positions);
    free(b->seq_idx);
    free(b->out_rows);
    free(b->slots);
    free(b->prefill);
    free(b->block_tables);
    free(b->out_req);
    memset(b, 0, sizeof(*b));
}

static void batch_reserve(struct batch *b, size_t n_tokens, size_t n_seqs)
{
    if (n_tokens > b->cap_tokens) {
        size_t cap = b->cap_tokens ? b->cap_tokens : 64;
        while (cap < n_tokens)
            cap *= 2;
        b->tokens = xrealloc(b->tokens, cap * sizeof(int32_t));
        b->positions = xrealloc(b->positions, cap * sizeof(int32_t));
        b->seq_idx = xrealloc(b->seq_idx, cap * sizeof(int32_t));
        b->slots = xrealloc(b->slots, cap * sizeof(int64_t));
        b->prefill = xrealloc(b->prefill, cap);
        b->cap_tokens = cap;
    }
    if (n_seqs > b->cap_seqs) {
        size_t cap = b->cap_seqs ? b->cap_seqs : 16;
        while (cap < n_seqs)
            cap *= 2;
        b->block_tables = xrealloc(b->block_tables, cap * sizeof(*b->block_tables));
        b->out_rows = xrealloc(b->out_rows, cap * sizeof(int32_t));
        b->out_req = xrealloc(b->out_req, cap * sizeof(int32_t));
        b->cap_seqs = cap;
    }
}

void batch_build(struct batch *b, const struct sched_output *out, int32_t block_size)
{
    batch_reserve(b, (size_t)out->n_tokens, (size_t)out->n_reqs);
    int32_t n = 0, n_out = 0;
    for (int32_t s = 0; s < out->n_reqs; s++) {
        const struct sched_req *e = &out->reqs[s];
        const struct request *req = e->req;
        CND_ASSERT(e->pos0 + e->n_new <= req->n_tokens);
        CND_ASSERT((e->pos0 + e->n_new + block_size - 1) / block_size <= req->n_blocks);
        b->block_tables[s] = req->block_table;
        for (int32_t j = 0; j < e->n_new; j++) {
            int32_t pos = e->pos0 + j;
            b->tokens[n] = req->tokens[pos];
            b->positions[n] = pos;
            b->seq_idx[n] = s;
            /* by position, so a recomputed (preempted) request gets its first numbers again */
            b->prefill[n] = pos < req->n_prompt && req->n_prompt >= 2;
            b->slots[n] =
                (int64_t)req->block_table[pos / block_size] * block_size + pos % block_size;
            n++;
        }
        if (e->sample) {
            b->out_rows[n_out] = n - 1;
            b->out_req[n_out] = s;
            n_out++;
        }
    }
    CND_ASSERT(n == out->n_tokens);
    b->fb = (struct forward_batch){
        .n_tokens = n,
        .tokens = b->tokens,
        .positions = b->positions,
        .seq_idx = b->seq_idx,
        .slots = b->slots,
        .n_seqs = out->n_reqs,
        .block_tables = (const int32_t *const *)b->block_tables,
        .n_out = n_out,
        .out_rows = b->out_rows,
        .prefill = b->prefill,
    };
}
