/* forward.c: the llama-family forward pass (llama, qwen2, qwen3), written once as calls of
 * backend ops over a batch of tokens (llama2.c's forward, batched):
 *
 *   x = embed(tokens)
 *   for each layer:  h = rmsnorm(x) ; q,k,v = h Wq,Wk,Wv (+bias: qwen2) ; q,k = headnorm (qwen3)
 *                    q,k = rope(q,k) ; attn = paged_attention(q, K/V cache + k,v) ; x += attn Wo
 *                    h = rmsnorm(x) ; x += (silu(h Wgate) * h Wup) Wdown
 *   logits = rmsnorm(x[out_rows]) Woutput
 *
 * The batch may mix prefill chunks and decode tokens of many sequences: each row carries its
 * own position, KV slot and block table. Batches larger than the scratch are run in slices. */
#include "cinder/forward.h"
#include "cinder/backend.h"
#include "cinder/model.h"
#include "cinder/status.h"
#include "cinder/xalloc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct forward_ctx {
    const struct model *m;
    struct backend *be;
    int32_t max_tokens;
    /* backend buffers, [max_tokens, dim] each */
    float *x, *h, *q, *k, *v, *attn, *gate, *up, *out_h, *logits;
    int32_t *tokens_dev;
    uint8_t *out_prefill; /* host: the prefill flags of the logits rows */
    float *rope_freqs;    /* backend copy of the optional frequency factors */
};

static void *fc_alloc(struct forward_ctx *fc, size_t bytes, bool *ok)
{
    void *p = fc->be->ops->alloc(fc->be, bytes ? bytes : 16);
    if (!p)
        *ok = false;
    return p;
}

struct forward_ctx *forward_ctx_create(const struct model *m, struct backend *be,
                                       int32_t max_tokens, char *err)
{
    const struct model_hparams *hp = &m->hp;
    struct forward_ctx *fc = xcalloc(1, sizeof(*fc));
    fc->m = m;
    fc->be = be;
    fc->max_tokens = max_tokens > 0 ? max_tokens : 512;
    size_t T = (size_t)fc->max_tokens, f = sizeof(float);
    size_t n_q = (size_t)hp->n_head * (size_t)hp->head_dim;
    size_t n_kv = (size_t)hp->n_head_kv * (size_t)hp->head_dim;
    bool ok = true;
    fc->x = fc_alloc(fc, T * (size_t)hp->n_embd * f, &ok);
    fc->h = fc_alloc(fc, T * (size_t)hp->n_embd * f, &ok);
    fc->q = fc_alloc(fc, T * n_q * f, &ok);
    fc->k = fc_alloc(fc, T * n_kv * f, &ok);
    fc->v = fc_alloc(fc, T * n_kv * f, &ok);
    fc->attn = fc_alloc(fc, T * n_q * f, &ok);
    fc->gate = fc_alloc(fc, T * (size_t)hp->n_ff * f, &ok);
    fc->up = fc_alloc(fc, T * (size_t)hp->n_ff * f, &ok);
    fc->out_h = fc_alloc(fc, T * (size_t)hp->n_embd * f, &ok);
    fc->logits = fc_alloc(fc, T * (size_t)hp->n_vocab * f, &ok);
    fc->tokens_dev = fc_alloc(fc, T * sizeof(int32_t), &ok);
    fc->out_prefill = xcalloc(T, 1);
    if (ok && m->rope_freqs.data) {
        size_t n = (size_t)m->rope_freqs.ne[0] * f;
        fc->rope_freqs = fc_alloc(fc, n, &ok);
        if (ok && be->ops->upload(be, fc->rope_freqs, m->rope_freqs.data, n) != 0)
            ok = false;
    }
    if (!ok) {
        err_set(err, "out of memory for forward scratch (%d tokens)", fc->max_tokens);
        forward_ctx_destroy(fc);
        return NULL;
    }
    return fc;
}

void forward_ctx_destroy(struct forward_ctx *fc)
{
    if (!fc)
        return;
    struct backend *be = fc->be;
    void *bufs[] = {fc->x,    fc->h,  fc->q,     fc->k,      fc->v,          fc->attn,
                    fc->gate, fc->up, fc->out_h, fc->logits, fc->tokens_dev, fc->rope_freqs};
    for (size_t i = 0; i < ARRAY_SIZE(bufs); i++)
        if (bufs[i])
            be->ops->free(be, bufs[i]);
    free(fc->out_prefill);
    free(fc);
}

static const struct tensor *W(struct forward_ctx *fc, const struct tensor *t)
{
    return t->data ? fc->be->ops->weight(fc->be, t) : NULL;
}

/* Products of one input with several weights: one backend pass where it has one */
static void matmul_group(struct forward_ctx *fc, int n_mats, float *const *out,
                         const struct tensor *const *w, const float *x, int32_t n,
                         const struct tensor *const *bias, const uint8_t *prefill)
{
    const struct backend_ops *ops = fc->be->ops;
    if (ops->matmul_group) {
        ops->matmul_group(fc->be, n_mats, out, w, x, n, bias, prefill);
        return;
    }
    for (int i = 0; i < n_mats; i++)
        ops->matmul(fc->be, out[i], w[i], x, n, bias[i], prefill);
}

/* One slice of at most max_tokens rows. */
static int forward_slice(struct forward_ctx *fc, const struct forward_batch *b, float *logits)
{
    const struct model *m = fc->m;
    const struct model_hparams *hp = &m->hp;
    const struct backend_ops *ops = fc->be->ops;
    struct backend *be = fc->be;
    const int32_t n = b->n_tokens;
    const int32_t n_embd = hp->n_embd, hd = hp->head_dim;
    const int32_t n_q = hp->n_head * hd, n_kv = hp->n_head_kv * hd;

    int rc = ops->begin_batch(be, b);
    if (rc != 0)
        return rc;
    rc = ops->upload(be, fc->tokens_dev, b->tokens, (size_t)n * sizeof(int32_t));
    if (rc != 0)
        return rc;
    ops->get_rows(be, W(fc, &m->tok_embd), fc->tokens_dev, n, fc->x);

    struct rope_params rp = {
        .n_rot = hp->n_rot,
        .head_dim = hd,
        .freq_base = hp->rope_freq_base,
        .freq_scale = hp->rope_freq_scale,
        .neox = hp->rope_type == ROPE_TYPE_NEOX,
        .freq_factors = fc->rope_freqs,
    };
    struct attn_params ap = {
        .n_head = hp->n_head,
        .n_head_kv = hp->n_head_kv,
        .head_dim = hd,
        .scale = 1.0f / sqrtf((float)hd),
    };
    /* the prefill flags of the logits rows */
    const uint8_t *out_prefill = NULL;
    if (b->prefill) {
        for (int32_t i = 0; i < b->n_out; i++)
            fc->out_prefill[i] = b->prefill[b->out_rows[i]];
        out_prefill = fc->out_prefill;
    }
    bool pruned = false; /* the last layer ran on the logits rows only, into out_h */
    for (int32_t l = 0; l < hp->n_layer; l++) {
        const struct model_layer *L = &m->layers[l];
        ops->rmsnorm(be, fc->h, fc->x, W(fc, &L->attn_norm), n, n_embd, hp->rms_eps);
        float *const qkv_out[3] = {fc->q, fc->k, fc->v};
        const struct tensor *const qkv_w[3] = {W(fc, &L->wq), W(fc, &L->wk), W(fc, &L->wv)};
        const struct tensor *const qkv_b[3] = {W(fc, &L->bq), W(fc, &L->bk), W(fc, &L->bv)};
        matmul_group(fc, 3, qkv_out, qkv_w, fc->h, n, qkv_b, b->prefill);
        if (L->attn_q_norm.data) {
            ops->rmsnorm(be, fc->q, fc->q, W(fc, &L->attn_q_norm), n * hp->n_head, hd, hp->rms_eps);
            ops->rmsnorm(be, fc->k, fc->k, W(fc, &L->attn_k_norm), n * hp->n_head_kv, hd,
                         hp->rms_eps);
        }
        ops->rope(be, fc->q, n, hp->n_head, &rp);
        ops->rope(be, fc->k, n, hp->n_head_kv, &rp);
        ops->attention(be, l, fc->q, fc->k, fc->v, fc->attn, &ap);
        /* The last layer's output projection and FFN matter only for the rows whose logits
         * are asked for (the cache needed every row's K and V, now written): a prompt's other
         * rows, or a whole non-final prompt chunk, stop here. Each kept row's arithmetic is
         * unchanged, its role flag going with it. */
        int32_t nr = n;
        float *xr = fc->x, *ar = fc->attn;
        const uint8_t *pf = b->prefill;
        if (l == hp->n_layer - 1 && b->n_out < n) {
            if (b->n_out == 0)
                break;
            nr = b->n_out;
            ops->gather_rows(be, fc->q, fc->attn, b->out_rows, nr, n_q); /* q is spent */
            ops->gather_rows(be, fc->out_h, fc->x, b->out_rows, nr, n_embd);
            xr = fc->out_h, ar = fc->q, pf = out_prefill;
        }
        ops->matmul(be, fc->h, W(fc, &L->wo), ar, nr, NULL, pf);
        ops->add(be, xr, xr, fc->h, (int64_t)nr * n_embd);

        ops->rmsnorm(be, fc->h, xr, W(fc, &L->ffn_norm), nr, n_embd, hp->rms_eps);
        float *const gu_out[2] = {fc->gate, fc->up};
        const struct tensor *const gu_w[2] = {W(fc, &L->ffn_gate), W(fc, &L->ffn_up)};
        const struct tensor *const gu_b[2] = {NULL, NULL};
        matmul_group(fc, 2, gu_out, gu_w, fc->h, nr, gu_b, pf);
        ops->silu_mul(be, fc->gate, fc->gate, fc->up, nr, hp->n_ff);
        ops->matmul(be, fc->h, W(fc, &L->ffn_down), fc->gate, nr, NULL, pf);
        ops->add(be, xr, xr, fc->h, (int64_t)nr * n_embd);
        pruned = xr == fc->out_h;
    }
    (void)n_kv;
    if (b->n_out == 0)
        return ops->sync(be);
    if (!pruned)
        ops->gather_rows(be, fc->out_h, fc->x, b->out_rows, b->n_out, n_embd);
    ops->rmsnorm(be, fc->out_h, fc->out_h, W(fc, &m->output_norm), b->n_out, n_embd, hp->rms_eps);
    ops->matmul(be, fc->logits, W(fc, &m->output), fc->out_h, b->n_out, NULL, out_prefill);
    rc = ops->download(be, logits, fc->logits,
                       (size_t)b->n_out * (size_t)hp->n_vocab * sizeof(float));
    if (rc != 0)
        return rc;
    return ops->sync(be);
}

int forward_run(struct forward_ctx *fc, const struct forward_batch *b, float *logits)
{
    if (b->n_tokens <= fc->max_tokens)
        return forward_slice(fc, b, logits);
    /* Split into slices; out_rows are re-based per slice (they are ascending by contract). */
    int32_t *rows = xmalloc((size_t)b->n_out * sizeof(int32_t) + 1);
    int32_t i_out = 0;
    int rc = 0;
    for (int32_t start = 0; start < b->n_tokens && rc == 0; start += fc->max_tokens) {
        int32_t len = CND_MIN(fc->max_tokens, b->n_tokens - start);
        int32_t first_out = i_out, n_out = 0;
        while (i_out < b->n_out && b->out_rows[i_out] < start + len) {
            rows[n_out++] = b->out_rows[i_out] - start;
            i_out++;
        }
        struct forward_batch s = {
            .n_tokens = len,
            .tokens = b->tokens + start,
            .positions = b->positions + start,
            .seq_idx = b->seq_idx + start,
            .slots = b->slots + start,
            .n_seqs = b->n_seqs,
            .block_tables = b->block_tables,
            .n_out = n_out,
            .out_rows = rows,
            .prefill = b->prefill ? b->prefill + start : NULL,
        };
        rc = forward_slice(fc, &s, logits + (size_t)first_out * (size_t)fc->m->hp.n_vocab);
    }
    free(rows);
    return rc;
}
