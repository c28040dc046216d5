/* model_random.c: seeded random-weight models of real shapes (vLLM's "dummy" load format), so
 * speed can be measured at sizes where weights stream from DRAM without shipping a model file.
 * The vocabulary is a placeholder: special tokens, the 256 byte tokens and synthetic lowercase
 * pieces, built as an in-memory vocab-only GGUF so the ordinary tokenizer reads it. */
#include "cinder/buf.h"
#include "cinder/gguf.h"
#include "cinder/log.h"
#include "cinder/model.h"
#include "cinder/quant.h"
#include "cinder/status.h"
#include "cinder/tokenizer.h"
#include "cinder/xalloc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct random_preset {
    const char *name;
    enum model_arch arch;
    int32_t n_embd, n_ff, n_layer, n_head, n_head_kv, n_vocab, n_ctx;
    float rope_base, rms_eps;
};

static const struct random_preset random_presets[] = {
    {"tiny", MODEL_ARCH_LLAMA, 256, 768, 4, 8, 4, 512, 2048, 10000.0f, 1e-5f},
    {"mid", MODEL_ARCH_LLAMA, 1024, 2816, 12, 16, 8, 32000, 4096, 10000.0f, 1e-5f},
    {"llama3-8b", MODEL_ARCH_LLAMA, 4096, 14336, 32, 32, 8, 128256, 8192, 500000.0f, 1e-5f},
    {"qwen2.5-7b", MODEL_ARCH_QWEN2, 3584, 18944, 28, 28, 4, 152064, 32768, 1000000.0f, 1e-6f},
};

static uint64_t rnd_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [-a, a]. */
static float rnd_uniform(uint64_t *s, float a)
{
    return ((float)(rnd_next(s) >> 40) / 16777216.0f * 2.0f - 1.0f) * a;
}

/* ---- placeholder vocabulary as an in-memory GGUF ---- */

static void gw_u32(struct buf *b, uint32_t v)
{
    buf_append(b, &v, 4);
}

static void gw_u64(struct buf *b, uint64_t v)
{
    buf_append(b, &v, 8);
}

static void gw_str(struct buf *b, const char *s)
{
    gw_u64(b, strlen(s));
    buf_append(b, s, strlen(s));
}

static char **random_vocab(int32_t n_vocab)
{
    char **tok = xcalloc((size_t)n_vocab, sizeof(char *));
    static const char *special[] = {"<unk>", "<s>", "</s>"};
    int32_t i = 0;
    for (; i < 3 && i < n_vocab; i++)
        tok[i] = xstrdup(special[i]);
    for (int b = 0; b < 256 && i < n_vocab; b++, i++) {
        char s[8];
        snprintf(s, sizeof(s), "<0x%02X>", b);
        tok[i] = xstrdup(s);
    }
    /* synthetic pieces: "▁a".."▁z", "a".."z", then longer combinations, all distinct */
    for (uint64_t k = 0; i < n_vocab; k++) {
        char s[32];
        int n = 0;
        bool space = (k % 2) == 0;
        uint64_t v = k / 2;
        if (space) {
            memcpy(s, "\xe2\x96\x81", 3);
            n = 3;
        }
        do {
            s[n++] = (char)('a' + v % 26);
            v /= 26;
        } while (v > 0 && n < 30);
        s[n] = 0;
        tok[i++] = xstrdup(s);
    }
    return tok;
}

static struct tokenizer *random_tokenizer(int32_t n_vocab, char *err)
{
    char **tok = random_vocab(n_vocab);
    struct buf b;
    buf_init(&b);
    buf_append(&b, "GGUF", 4);
    gw_u32(&b, 3);
    gw_u64(&b, 0); /* tensors */
    gw_u64(&b, 6); /* kv */
    gw_str(&b, "tokenizer.ggml.model");
    gw_u32(&b, GGUF_TYPE_STRING);
    gw_str(&b, "llama");
    gw_str(&b, "tokenizer.ggml.tokens");
    gw_u32(&b, GGUF_TYPE_ARRAY);
    gw_u32(&b, GGUF_TYPE_STRING);
    gw_u64(&b, (uint64_t)n_vocab);
    for (int32_t i = 0; i < n_vocab; i++)
        gw_str(&b, tok[i]);
    gw_str(&b, "tokenizer.ggml.scores");
    gw_u32(&b, GGUF_TYPE_ARRAY);
    gw_u32(&b, GGUF_TYPE_FLOAT32);
    gw_u64(&b, (uint64_t)n_vocab);
    for (int32_t i = 0; i < n_vocab; i++) {
        float sc = i < 259 ? 0.0f : -(float)(i - 259);
        buf_append(&b, &sc, 4);
    }
    gw_str(&b, "tokenizer.ggml.token_type");
    gw_u32(&b, GGUF_TYPE_ARRAY);
    gw_u32(&b, GGUF_TYPE_INT32);
    gw_u64(&b, (uint64_t)n_vocab);
    for (int32_t i = 0; i < n_vocab; i++) {
        int32_t t = i == 0    ? TOKEN_TYPE_UNKNOWN
                    : i < 3   ? TOKEN_TYPE_CONTROL
                    : i < 259 ? TOKEN_TYPE_BYTE
                              : TOKEN_TYPE_NORMAL;
        buf_append(&b, &t, 4);
    }
    gw_str(&b, "tokenizer.ggml.bos_token_id");
    gw_u32(&b, GGUF_TYPE_UINT32);
    gw_u32(&b, 1);
    gw_str(&b, "tokenizer.ggml.eos_token_id");
    gw_u32(&b, GGUF_TYPE_UINT32);
    gw_u32(&b, 2);
    for (int32_t i = 0; i < n_vocab; i++)
        free(tok[i]);
    free(tok);
    struct gguf_file *g = gguf_open_memory(b.data, b.len, "<random vocab>", err);
    struct tokenizer *t = g ? tokenizer_create(g, err) : NULL;
    gguf_close(g);
    buf_deinit(&b);
    return t;
}

/* ---- weights ---- */

struct random_alloc {
    uint8_t *base;
    size_t off;
};

static void random_matrix(struct model *m, struct random_alloc *ra, struct tensor *t,
                          enum cnd_dtype type, int64_t ne0, int64_t ne1, float scale, uint64_t *rng,
                          float *row)
{
    memset(t, 0, sizeof(*t));
    t->dtype = type;
    t->n_dims = ne1 > 1 ? 2 : 1;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->ne[2] = t->ne[3] = 1;
    t->nb[0] = (size_t)dtype_type_size(type);
    t->nb[1] = dtype_row_size(type, ne0);
    t->nb[2] = t->nb[3] = t->nb[1] * (size_t)ne1;
    t->data = ra->base + ra->off;
    for (int64_t r = 0; r < ne1; r++) {
        for (int64_t i = 0; i < ne0; i++)
            row[i] = ne1 == 1 ? 1.0f + rnd_uniform(rng, scale) : rnd_uniform(rng, scale);
        int rc = quant_quantize_weights(type, row, ra->base + ra->off + (size_t)r * t->nb[1], ne0);
        CND_ASSERT(rc == 0);
    }
    ra->off += (t->nb[1] * (size_t)ne1 + 63) & ~(size_t)63;
    m->weight_bytes += t->nb[1] * (size_t)ne1;
    m->n_params += ne0 * ne1;
}

static size_t random_size(enum cnd_dtype type, int64_t ne0, int64_t ne1)
{
    return (dtype_row_size(type, ne0) * (size_t)ne1 + 63) & ~(size_t)63;
}

struct model *model_create_random(const char *preset, enum cnd_dtype wtype, uint64_t seed,
                                  char *err)
{
    const struct random_preset *p = NULL;
    for (size_t i = 0; i < ARRAY_SIZE(random_presets); i++)
        if (strcmp(random_presets[i].name, preset) == 0)
            p = &random_presets[i];
    if (!p) {
        err_set(err, "unknown random-weights preset '%s' (tiny, mid, llama3-8b, qwen2.5-7b)",
                preset);
        return NULL;
    }
    if (!quant_is_supported(wtype)) {
        err_set(err, "weight type %s is not supported", dtype_name(wtype));
        return NULL;
    }
    int64_t bs = dtype_block_size(wtype);
    int64_t hd = p->n_embd / p->n_head;
    if (p->n_embd % bs || p->n_ff % bs || (hd * p->n_head) % bs) {
        err_set(err, "preset %s rows are not a multiple of the %s block", preset,
                dtype_name(wtype));
        return NULL;
    }
    struct model *m = xcalloc(1, sizeof(*m));
    char name[96];
    snprintf(name, sizeof(name), "random-%s-%s", preset, dtype_name(wtype));
    m->name = xstrdup(name);
    struct model_hparams *hp = &m->hp;
    hp->arch = p->arch;
    hp->n_vocab = p->n_vocab;
    hp->n_ctx_train = p->n_ctx;
    hp->n_embd = p->n_embd;
    hp->n_ff = p->n_ff;
    hp->n_layer = p->n_layer;
    hp->n_head = p->n_head;
    hp->n_head_kv = p->n_head_kv;
    hp->head_dim = (int32_t)hd;
    hp->n_rot = (int32_t)hd;
    hp->rope_freq_base = p->rope_base;
    hp->rope_freq_scale = 1.0f;
    hp->rope_type = p->arch == MODEL_ARCH_LLAMA ? ROPE_TYPE_NORM : ROPE_TYPE_NEOX;
    hp->rms_eps = p->rms_eps;
    int64_t n_q = hd * p->n_head, n_kv = hd * p->n_head_kv;
    bool bias = p->arch == MODEL_ARCH_QWEN2;
    size_t per_layer =
        random_size(CND_DTYPE_F32, p->n_embd, 1) * 2 + random_size(wtype, p->n_embd, n_q) * 2 +
        random_size(wtype, p->n_embd, n_kv) * 2 + random_size(wtype, p->n_embd, p->n_ff) * 2 +
        random_size(wtype, p->n_ff, p->n_embd) +
        (bias ? random_size(CND_DTYPE_F32, n_q, 1) + 2 * random_size(CND_DTYPE_F32, n_kv, 1) : 0);
    size_t total = per_layer * (size_t)p->n_layer + random_size(wtype, p->n_embd, p->n_vocab) * 2 +
                   random_size(CND_DTYPE_F32, p->n_embd, 1);
    struct random_alloc ra = {0};
    if (posix_memalign((void **)&ra.base, 64, total) != 0) {
        err_set(err, "cannot allocate %.1f MiB for random weights", (double)total / 1048576.0);
        free(m->name);
        free(m);
        return NULL;
    }
    m->owned_weights = ra.base;
    uint64_t rng = seed;
    float *row = xmalloc((size_t)CND_MAX(p->n_embd, p->n_ff) * sizeof(float));
    float ws = 1.0f / sqrtf((float)p->n_embd), fs = 1.0f / sqrtf((float)p->n_ff);
    random_matrix(m, &ra, &m->tok_embd, wtype, p->n_embd, p->n_vocab, 1.0f, &rng, row);
    random_matrix(m, &ra, &m->output_norm, CND_DTYPE_F32, p->n_embd, 1, 0.1f, &rng, row);
    random_matrix(m, &ra, &m->output, wtype, p->n_embd, p->n_vocab, ws, &rng, row);
    m->layers = xcalloc((size_t)p->n_layer, sizeof(struct model_layer));
    for (int32_t l = 0; l < p->n_layer; l++) {
        struct model_layer *L = &m->layers[l];
        random_matrix(m, &ra, &L->attn_norm, CND_DTYPE_F32, p->n_embd, 1, 0.1f, &rng, row);
        random_matrix(m, &ra, &L->wq, wtype, p->n_embd, n_q, ws, &rng, row);
        random_matrix(m, &ra, &L->wk, wtype, p->n_embd, n_kv, ws, &rng, row);
        random_matrix(m, &ra, &L->wv, wtype, p->n_embd, n_kv, ws, &rng, row);
        random_matrix(m, &ra, &L->wo, wtype, n_q, p->n_embd, ws, &rng, row);
        if (bias) {
            random_matrix(m, &ra, &L->bq, CND_DTYPE_F32, n_q, 1, 0.1f, &rng, row);
            random_matrix(m, &ra, &L->bk, CND_DTYPE_F32, n_kv, 1, 0.1f, &rng, row);
            random_matrix(m, &ra, &L->bv, CND_DTYPE_F32, n_kv, 1, 0.1f, &rng, row);
        }
        random_matrix(m, &ra, &L->ffn_norm, CND_DTYPE_F32, p->n_embd, 1, 0.1f, &rng, row);
        random_matrix(m, &ra, &L->ffn_gate, wtype, p->n_embd, p->n_ff, ws, &rng, row);
        random_matrix(m, &ra, &L->ffn_up, wtype, p->n_embd, p->n_ff, ws, &rng, row);
        random_matrix(m, &ra, &L->ffn_down, wtype, p->n_ff, p->n_embd, fs, &rng, row);
    }
    free(row);
    CND_ASSERT(ra.off <= total);
    m->tok = random_tokenizer(p->n_vocab, err);
    if (!m->tok) {
        model_destroy(m);
        return NULL;
    }
    log_info("random weights: preset %s, %s, %.1f M params, %.1f MiB", preset, dtype_name(wtype),
             (double)m->n_params / 1e6, (double)m->weight_bytes / 1048576.0);
    return m;
}
