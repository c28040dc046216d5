/* model.c: hyper-parameters and weights of the llama family from GGUF metadata and tensors.
 *
 * Missing metadata keys take llama.cpp's defaults (e.g. rope.freq_base 10000 for stories260K,
 * head_dim = n_embd / n_head, n_rot = head_dim). Tensors are checked against the shapes the
 * hyper-parameters imply, so a file with a layout we do not run is refused at load time with a
 * message instead of producing garbage later. Weights stay in the mapping: nothing is copied. */
#include "cinder/model.h"
#include "cinder/buf.h"
#include "cinder/gguf.h"
#include "cinder/log.h"
#include "cinder/quant.h"
#include "cinder/status.h"
#include "cinder/tokenizer.h"
#include "cinder/xalloc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *model_arch_names[] = {"llama", "qwen2", "qwen3"};
#define MODEL_ARCHS_SUPPORTED "llama, qwen2, qwen3"

const char *model_arch_name(enum model_arch arch)
{
    return (unsigned)arch < ARRAY_SIZE(model_arch_names) ? model_arch_names[arch] : "?";
}

static int64_t kv_i64(const struct gguf_file *g, const char *arch, const char *suffix, int64_t dflt)
{
    char key[128];
    snprintf(key, sizeof(key), "%s.%s", arch, suffix);
    return gguf_get_i64_or(g, key, dflt);
}

static double kv_f64(const struct gguf_file *g, const char *arch, const char *suffix, double dflt)
{
    char key[128];
    snprintf(key, sizeof(key), "%s.%s", arch, suffix);
    return gguf_get_f64_or(g, key, dflt);
}

/* Bind tensor `name` and check its shape is [ne0, ne1] (ne1 = 1 for vectors). */
static int bind_tensor(struct model *m, const char *name, int64_t ne0, int64_t ne1, bool required,
                       struct tensor *out, char *err)
{
    const struct gguf_tensor_info *ti = gguf_find_tensor(m->gguf, name);
    memset(out, 0, sizeof(*out));
    if (!ti) {
        if (required) {
            err_set(err, "%s: missing tensor '%s'", gguf_path(m->gguf), name);
            return CND_EFORMAT;
        }
        return 0;
    }
    if (ti->ne[0] != ne0 || ti->ne[1] != ne1 || ti->ne[2] != 1 || ti->ne[3] != 1) {
        err_set(err, "%s: tensor '%s' has shape [%lld, %lld, %lld], expected [%lld, %lld]",
                gguf_path(m->gguf), name, (long long)ti->ne[0], (long long)ti->ne[1],
                (long long)ti->ne[2], (long long)ne0, (long long)ne1);
        return CND_EFORMAT;
    }
    bool is_matrix = ne1 > 1;
    if (is_matrix && !quant_is_supported(ti->type)) {
        err_set(err,
                "%s: tensor '%s' has type %s, which cinder cannot run (supported: f32, f16, bf16, "
                "q8_0, q4_0, q4_1, q5_0, q5_1, q2_K, q3_K, q4_K, q5_K, q6_K)",
                gguf_path(m->gguf), name, dtype_name(ti->type));
        return CND_EUNSUPPORTED;
    }
    if (!is_matrix && ti->type != CND_DTYPE_F32) {
        err_set(err, "%s: tensor '%s' is %s; norm weights and biases must be f32",
                gguf_path(m->gguf), name, dtype_name(ti->type));
        return CND_EUNSUPPORTED;
    }
    out->dtype = ti->type;
    out->n_dims = ne1 > 1 ? 2 : 1;
    out->ne[0] = ne0;
    out->ne[1] = ne1;
    out->ne[2] = out->ne[3] = 1;
    out->nb[0] = (size_t)dtype_type_size(ti->type);
    out->nb[1] = dtype_row_size(ti->type, ne0);
    out->nb[2] = out->nb[3] = out->nb[1] * (size_t)ne1;
    out->data = (void *)(uintptr_t)ti->data;
    out->device = TENSOR_DEVICE_HOST;
    m->weight_bytes += ti->size_bytes;
    m->n_params += ne0 * ne1;
    return 0;
}

static int model_read_hparams(struct model *m, char *err)
{
    struct gguf_file *g = m->gguf;
    char *arch = gguf_get_str_dup(g, "general.architecture");
    if (!arch) {
        err_set(err, "%s: no general.architecture key", gguf_path(g));
        return CND_EFORMAT;
    }
    int found = -1;
    for (size_t i = 0; i < ARRAY_SIZE(model_arch_names); i++)
        if (strcmp(arch, model_arch_names[i]) == 0)
            found = (int)i;
    if (found < 0) {
        err_set(err, "%s: unsupported architecture '%s' (supported: %s)", gguf_path(g), arch,
                MODEL_ARCHS_SUPPORTED);
        free(arch);
        return CND_EUNSUPPORTED;
    }
    struct model_hparams *hp = &m->hp;
    hp->arch = (enum model_arch)found;
    hp->n_embd = (int32_t)kv_i64(g, arch, "embedding_length", 0);
    hp->n_ff = (int32_t)kv_i64(g, arch, "feed_forward_length", 0);
    hp->n_layer = (int32_t)kv_i64(g, arch, "block_count", 0);
    hp->n_head = (int32_t)kv_i64(g, arch, "attention.head_count", 0);
    hp->n_head_kv = (int32_t)kv_i64(g, arch, "attention.head_count_kv", hp->n_head);
    hp->n_ctx_train = (int32_t)kv_i64(g, arch, "context_length", 2048);
    hp->head_dim = hp->n_head > 0
                       ? (int32_t)kv_i64(g, arch, "attention.key_length", hp->n_embd / hp->n_head)
                       : 0;
    int32_t v_len = (int32_t)kv_i64(g, arch, "attention.value_length", hp->head_dim);
    hp->n_rot = (int32_t)kv_i64(g, arch, "rope.dimension_count", hp->head_dim);
    hp->rope_freq_base = (float)kv_f64(g, arch, "rope.freq_base", 10000.0);
    hp->rms_eps = (float)kv_f64(g, arch, "attention.layer_norm_rms_epsilon", 1e-5);
    hp->rope_freq_scale = 1.0f;
    char key[128];
    snprintf(key, sizeof(key), "%s.rope.scaling.type", arch);
    char *scaling = gguf_get_str_dup(g, key);
    double factor = kv_f64(g, arch, "rope.scaling.factor", 0.0);
    if (scaling && strcmp(scaling, "linear") == 0 && factor > 0)
        hp->rope_freq_scale = (float)(1.0 / factor);
    else if (scaling && strcmp(scaling, "none") != 0 && strcmp(scaling, "linear") != 0) {
        err_set(err, "%s: rope scaling '%s' is not supported (supported: none, linear)",
                gguf_path(g), scaling);
        free(scaling);
        free(arch);
        return CND_EUNSUPPORTED;
    }
    free(scaling);
    double scale_linear = kv_f64(g, arch, "rope.scale_linear", 0.0); /* older files */
    if (scale_linear > 0)
        hp->rope_freq_scale = (float)(1.0 / scale_linear);
    hp->rope_type = hp->arch == MODEL_ARCH_LLAMA ? ROPE_TYPE_NORM : ROPE_TYPE_NEOX;
    free(arch);
    if (hp->n_embd <= 0 || hp->n_layer <= 0 || hp->n_head <= 0 || hp->n_head_kv <= 0 ||
        hp->n_ff <= 0 || hp->head_dim <= 0 || hp->n_head % hp->n_head_kv != 0 || hp->n_rot <= 0 ||
        hp->n_rot > hp->head_dim || hp->n_rot % 2 != 0 || v_len != hp->head_dim ||
        hp->n_layer > 4096 || hp->n_head > 4096) {
        err_set(err,
                "%s: inconsistent hyper-parameters (n_embd %d, n_ff %d, n_layer %d, n_head %d, "
                "n_head_kv %d, head_dim %d, n_rot %d)",
                gguf_path(g), hp->n_embd, hp->n_ff, hp->n_layer, hp->n_head, hp->n_head_kv,
                hp->head_dim, hp->n_rot);
        return CND_EFORMAT;
    }
    return 0;
}

static int model_bind_weights(struct model *m, char *err)
{
    const struct model_hparams *hp = &m->hp;
    int64_t n_embd = hp->n_embd, n_ff = hp->n_ff, hd = hp->head_dim;
    int64_t n_q = hd * hp->n_head, n_kv = hd * hp->n_head_kv;
    const struct gguf_tensor_info *emb = gguf_find_tensor(m->gguf, "token_embd.weight");
    if (!emb) {
        err_set(err, "%s: missing tensor 'token_embd.weight'", gguf_path(m->gguf));
        return CND_EFORMAT;
    }
    m->hp.n_vocab = (int32_t)emb->ne[1];
    int rc = bind_tensor(m, "token_embd.weight", n_embd, hp->n_vocab, true, &m->tok_embd, err);
    if (rc == 0)
        rc = bind_tensor(m, "output_norm.weight", n_embd, 1, true, &m->output_norm, err);
    if (rc == 0)
        rc = bind_tensor(m, "output.weight", n_embd, hp->n_vocab, false, &m->output, err);
    if (rc == 0 && !m->output.data) {
        m->hp.tied_output = true;
        m->output = m->tok_embd;
    }
    if (rc == 0)
        rc = bind_tensor(m, "rope_freqs.weight", hp->n_rot / 2, 1, false, &m->rope_freqs, err);
    m->layers = xcalloc((size_t)hp->n_layer, sizeof(struct model_layer));
    bool qwen2 = hp->arch == MODEL_ARCH_QWEN2, qwen3 = hp->arch == MODEL_ARCH_QWEN3;
    for (int32_t l = 0; l < hp->n_layer && rc == 0; l++) {
        struct model_layer *L = &m->layers[l];
        char name[96];
#define BIND(field, suffix, ne0, ne1, req)                                                         \
    if (rc == 0) {                                                                                 \
        snprintf(name, sizeof(name), "blk.%d.%s", l, suffix);                                      \
        rc = bind_tensor(m, name, ne0, ne1, req, &L->field, err);                                  \
    }
        BIND(attn_norm, "attn_norm.weight", n_embd, 1, true);
        BIND(wq, "attn_q.weight", n_embd, n_q, true);
        BIND(wk, "attn_k.weight", n_embd, n_kv, true);
        BIND(wv, "attn_v.weight", n_embd, n_kv, true);
        BIND(wo, "attn_output.weight", n_q, n_embd, true);
        BIND(bq, "attn_q.bias", n_q, 1, qwen2);
        BIND(bk, "attn_k.bias", n_kv, 1, qwen2);
        BIND(bv, "attn_v.bias", n_kv, 1, qwen2);
        BIND(attn_q_norm, "attn_q_norm.weight", hd, 1, qwen3);
        BIND(attn_k_norm, "attn_k_norm.weight", hd, 1, qwen3);
        BIND(ffn_norm, "ffn_norm.weight", n_embd, 1, true);
        BIND(ffn_gate, "ffn_gate.weight", n_embd, n_ff, true);
        BIND(ffn_up, "ffn_up.weight", n_embd, n_ff, true);
        BIND(ffn_down, "ffn_down.weight", n_ff, n_embd, true);
#undef BIND
        /* blk.N.attn_output.bias etc. would be silently ignored: refuse them instead */
        snprintf(name, sizeof(name), "blk.%d.attn_output.bias", l);
        if (rc == 0 && gguf_find_tensor(m->gguf, name)) {
            err_set(err, "%s: tensor '%s' is not supported by the %s layout", gguf_path(m->gguf),
                    name, model_arch_name(hp->arch));
            rc = CND_EUNSUPPORTED;
        }
    }
    return rc;
}

static char *model_name_from_path(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n > 5 && strcmp(base + n - 5, ".gguf") == 0)
        n -= 5;
    return xstrndup(base, n);
}

struct model *model_load(const char *path, char *err)
{
    struct model *m = xcalloc(1, sizeof(*m));
    m->gguf = gguf_open(path, err);
    if (!m->gguf) {
        free(m);
        return NULL;
    }
    m->name = model_name_from_path(path);
    if (gguf_n_tensors(m->gguf) == 0) {
        err_set(err, "%s: vocab-only file (no tensors): cannot run it", path);
        model_destroy(m);
        return NULL;
    }
    if (model_read_hparams(m, err) != 0 || model_bind_weights(m, err) != 0) {
        model_destroy(m);
        return NULL;
    }
    m->tok = tokenizer_create(m->gguf, err);
    if (!m->tok) {
        model_destroy(m);
        return NULL;
    }
    if (tokenizer_n_vocab(m->tok) > m->hp.n_vocab) {
        err_set(err, "%s: vocabulary has %d tokens but token_embd has %d rows", path,
                tokenizer_n_vocab(m->tok), m->hp.n_vocab);
        model_destroy(m);
        return NULL;
    }
    gguf_advise_hugepages(m->gguf);
    log_info("loaded %s: %s, %d layers, dim %d, %d/%d heads, vocab %d, %.1f M params, %.1f MiB",
             path, model_arch_name(m->hp.arch), m->hp.n_layer, m->hp.n_embd, m->hp.n_head,
             m->hp.n_head_kv, m->hp.n_vocab, (double)m->n_params / 1e6,
             (double)m->weight_bytes / (1024.0 * 1024.0));
    return m;
}

void model_destroy(struct model *m)
{
    if (!m)
        return;
    tokenizer_destroy(m->tok);
    gguf_close(m->gguf);
    free(m->layers);
    free(m->owned_weights);
    free(m->name);
    free(m);
}
