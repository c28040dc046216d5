/* ctest-labels: unit model */
/* test_forward_arch.c: the forward pass of each architecture (llama, qwen2, qwen3) on tiny GGUF
 * files this test writes itself, against a plain double-precision forward written here from the
 * architectures' definitions. qwen3 has no llama.cpp reference in ../shared, so this is its
 * check: per-head q/k RMSNorm before NeoX RoPE, no biases. F32 weights and an F32 KV cache keep
 * rounding out of it: ours and the reference differ only by float vs double arithmetic (tolerance
 * 1e-4 of the row's max |logit|). Also checks that unsupported architectures, missing tensors and
 * wrong shapes are refused with clear messages. */
#include "test.h"
#include "gguf_writer.h"
#include "cinder/backend.h"
#include "cinder/forward.h"
#include "cinder/model.h"
#include "cinder/status.h"
#include "cinder/xalloc.h"

#include <stdlib.h>
#include <unistd.h>

enum { DIM = 64, FF = 96, NL = 2, NH = 4, NKV = 2, HD = DIM / NH, VOCAB = 300, NTOK = 21 };

struct tiny {
    const char *arch;
    bool bias, qk_norm, neox;
    float base;
    /* weights */
    float *emb, *out_norm, *out;
    float *attn_norm[NL], *wq[NL], *wk[NL], *wv[NL], *wo[NL], *bq[NL], *bk[NL], *bv[NL];
    float *qn[NL], *kn[NL], *ffn_norm[NL], *wg[NL], *wu[NL], *wd[NL];
};

static uint64_t rng = 88172645463325252ull;
static float frand(float a)
{
    return ((float)(test_xorshift64(&rng) >> 40) / 16777216.0f * 2 - 1) * a;
}

static float *rand_vec(size_t n, float a, float center)
{
    float *v = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        v[i] = center + frand(a);
    return v;
}

static void add_t(struct gguf_writer *w, const char *name, const float *d, int64_t ne0, int64_t ne1)
{
    int64_t ne[2] = {ne0, ne1};
    gguf_writer_add_tensor(w, name, CND_DTYPE_F32, ne1 > 1 ? 2 : 1, ne, d);
}

static void tiny_make(struct tiny *t, const char *path)
{
    struct gguf_writer w;
    gguf_writer_init(&w, 3);
    char key[96];
    gguf_writer_add_str(&w, "general.architecture", t->arch);
#define KV_U32(suffix, v)                                                                          \
    snprintf(key, sizeof(key), "%s.%s", t->arch, suffix), gguf_writer_add_u32(&w, key, v)
    KV_U32("context_length", 256);
    KV_U32("embedding_length", DIM);
    KV_U32("feed_forward_length", FF);
    KV_U32("block_count", NL);
    KV_U32("attention.head_count", NH);
    KV_U32("attention.head_count_kv", NKV);
#undef KV_U32
    snprintf(key, sizeof(key), "%s.rope.freq_base", t->arch);
    gguf_writer_add_f32(&w, key, t->base);
    snprintf(key, sizeof(key), "%s.attention.layer_norm_rms_epsilon", t->arch);
    gguf_writer_add_f32(&w, key, 1e-6f);
    /* a vocabulary: 3 specials, 256 bytes, a few pieces */
    static char names[VOCAB][16];
    const char *tokv[VOCAB];
    float scores[VOCAB];
    int32_t types[VOCAB];
    for (int i = 0; i < VOCAB; i++) {
        if (i < 3)
            snprintf(names[i], sizeof(names[i]), "%s", i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>");
        else if (i < 259)
            snprintf(names[i], sizeof(names[i]), "<0x%02X>", i - 3);
        else
            snprintf(names[i], sizeof(names[i]), "\xe2\x96\x81%c%c", 'a' + (i - 259) % 26,
                     'a' + (i - 259) / 26);
        tokv[i] = names[i];
        scores[i] = i < 259 ? 0 : -(float)i;
        types[i] = i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1;
    }
    gguf_writer_add_str(&w, "tokenizer.ggml.model", "llama");
    gguf_writer_add_arr_str(&w, "tokenizer.ggml.tokens", tokv, VOCAB);
    gguf_writer_add_arr_f32(&w, "tokenizer.ggml.scores", scores, VOCAB);
    gguf_writer_add_arr_i32(&w, "tokenizer.ggml.token_type", types, VOCAB);
    gguf_writer_add_u32(&w, "tokenizer.ggml.bos_token_id", 1);
    gguf_writer_add_u32(&w, "tokenizer.ggml.eos_token_id", 2);
    const float ws = 0.25f;
    t->emb = rand_vec((size_t)DIM * VOCAB, 1, 0);
    t->out_norm = rand_vec(DIM, 0.2f, 1);
    t->out = rand_vec((size_t)DIM * VOCAB, ws, 0);
    add_t(&w, "token_embd.weight", t->emb, DIM, VOCAB);
    add_t(&w, "output_norm.weight", t->out_norm, DIM, 1);
    add_t(&w, "output.weight", t->out, DIM, VOCAB);
    for (int l = 0; l < NL; l++) {
        char n[64];
#define T(field, suffix, ne0, ne1, a, c)                                                           \
    t->field[l] = rand_vec((size_t)(ne0) * (ne1), a, c);                                           \
    snprintf(n, sizeof(n), "blk.%d.%s", l, suffix);                                                \
    add_t(&w, n, t->field[l], ne0, ne1)
        T(attn_norm, "attn_norm.weight", DIM, 1, 0.2f, 1);
        T(wq, "attn_q.weight", DIM, NH * HD, ws, 0);
        T(wk, "attn_k.weight", DIM, NKV * HD, ws, 0);
        T(wv, "attn_v.weight", DIM, NKV * HD, ws, 0);
        T(wo, "attn_output.weight", NH * HD, DIM, ws, 0);
        if (t->bias) {
            T(bq, "attn_q.bias", NH * HD, 1, 0.5f, 0);
            T(bk, "attn_k.bias", NKV * HD, 1, 0.5f, 0);
            T(bv, "attn_v.bias", NKV * HD, 1, 0.5f, 0);
        }
        if (t->qk_norm) {
            T(qn, "attn_q_norm.weight", HD, 1, 0.3f, 1);
            T(kn, "attn_k_norm.weight", HD, 1, 0.3f, 1);
        }
        T(ffn_norm, "ffn_norm.weight", DIM, 1, 0.2f, 1);
        T(wg, "ffn_gate.weight", DIM, FF, ws, 0);
        T(wu, "ffn_up.weight", DIM, FF, ws, 0);
        T(wd, "ffn_down.weight", FF, DIM, ws, 0);
#undef T
    }
    CHECK(gguf_writer_write_file(&w, path) == 0);
}

static void tiny_free(struct tiny *t)
{
    free(t->emb), free(t->out_norm), free(t->out);
    for (int l = 0; l < NL; l++) {
        free(t->attn_norm[l]), free(t->wq[l]), free(t->wk[l]), free(t->wv[l]), free(t->wo[l]);
        free(t->bq[l]), free(t->bk[l]), free(t->bv[l]), free(t->qn[l]), free(t->kn[l]);
        free(t->ffn_norm[l]), free(t->wg[l]), free(t->wu[l]), free(t->wd[l]);
    }
}

/* ---- the plain reference, in double ---- */

static void rms(double *y, const double *x, const float *w, int n)
{
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += x[i] * x[i];
    double s = 1.0 / sqrt(ss / n + 1e-6);
    for (int i = 0; i < n; i++)
        y[i] = x[i] * s * w[i];
}

static void mv(double *y, const float *W, const double *x, int n_in, int n_out, const float *b)
{
    for (int r = 0; r < n_out; r++) {
        double s = b ? b[r] : 0;
        for (int i = 0; i < n_in; i++)
            s += (double)W[(size_t)r * n_in + i] * x[i];
        y[r] = s;
    }
}

static void rope(double *v, int pos, float base, bool neox)
{
    for (int i = 0; i < HD / 2; i++) {
        double th = pos * pow(base, -2.0 * i / HD);
        int a = neox ? i : 2 * i, b = neox ? i + HD / 2 : 2 * i + 1;
        double x0 = v[a], x1 = v[b];
        v[a] = x0 * cos(th) - x1 * sin(th);
        v[b] = x0 * sin(th) + x1 * cos(th);
    }
}

static void reference(const struct tiny *t, const int32_t *tok, int n, double *logits)
{
    double(*x)[DIM] = xcalloc((size_t)n, sizeof(*x));
    double(*K)[NKV * HD] = xcalloc((size_t)n, sizeof(*K));
    double(*V)[NKV * HD] = xcalloc((size_t)n, sizeof(*V));
    double h[DIM], q[NH * HD], att[NH * HD], o[DIM], g[FF], u[FF], sc[NTOK];
    for (int p = 0; p < n; p++)
        for (int i = 0; i < DIM; i++)
            x[p][i] = t->emb[(size_t)tok[p] * DIM + i];
    for (int l = 0; l < NL; l++) {
        for (int p = 0; p < n; p++) {
            rms(h, x[p], t->attn_norm[l], DIM);
            mv(K[p], t->wk[l], h, DIM, NKV * HD, t->bk[l]);
            mv(V[p], t->wv[l], h, DIM, NKV * HD, t->bv[l]);
            for (int kh = 0; kh < NKV; kh++) {
                if (t->qk_norm)
                    rms(K[p] + kh * HD, K[p] + kh * HD, t->kn[l], HD);
                rope(K[p] + kh * HD, p, t->base, t->neox);
            }
        }
        for (int p = 0; p < n; p++) {
            rms(h, x[p], t->attn_norm[l], DIM);
            mv(q, t->wq[l], h, DIM, NH * HD, t->bq[l]);
            for (int hh = 0; hh < NH; hh++) {
                double *qh = q + hh * HD;
                if (t->qk_norm)
                    rms(qh, qh, t->qn[l], HD);
                rope(qh, p, t->base, t->neox);
                int kh = hh / (NH / NKV);
                double mx = -1e300, sum = 0;
                for (int j = 0; j <= p; j++) {
                    double s = 0;
                    for (int i = 0; i < HD; i++)
                        s += qh[i] * K[j][kh * HD + i];
                    sc[j] = s / sqrt(HD);
                    mx = fmax(mx, sc[j]);
                }
                for (int j = 0; j <= p; j++)
                    sum += (sc[j] = exp(sc[j] - mx));
                for (int i = 0; i < HD; i++) {
                    double a = 0;
                    for (int j = 0; j <= p; j++)
                        a += sc[j] / sum * V[j][kh * HD + i];
                    att[hh * HD + i] = a;
                }
            }
            mv(o, t->wo[l], att, NH * HD, DIM, NULL);
            for (int i = 0; i < DIM; i++)
                x[p][i] += o[i];
        }
        for (int p = 0; p < n; p++) {
            rms(h, x[p], t->ffn_norm[l], DIM);
            mv(g, t->wg[l], h, DIM, FF, NULL);
            mv(u, t->wu[l], h, DIM, FF, NULL);
            for (int i = 0; i < FF; i++)
                g[i] = g[i] / (1 + exp(-g[i])) * u[i];
            mv(o, t->wd[l], g, FF, DIM, NULL);
            for (int i = 0; i < DIM; i++)
                x[p][i] += o[i];
        }
    }
    for (int p = 0; p < n; p++) {
        rms(h, x[p], t->out_norm, DIM);
        mv(logits + (size_t)p * VOCAB, t->out, h, DIM, VOCAB, NULL);
    }
    free(x), free(K), free(V);
}

static void check_arch(struct tiny *t)
{
    char path[128];
    snprintf(path, sizeof(path), "/tmp/cinder_test_%s_%d.gguf", t->arch, (int)getpid());
    tiny_make(t, path);
    char err[CND_ERR_LEN];
    struct model *m = model_load(path, err);
    CHECK_MSG(m != NULL, "%s", err);
    if (!m) {
        unlink(path);
        return;
    }
    CHECK_STR(model_arch_name(m->hp.arch), t->arch);
    CHECK_EQ_INT(m->hp.rope_type, t->neox ? ROPE_TYPE_NEOX : ROPE_TYPE_NORM);
    struct backend_cpu_params bp = {.n_threads = 2};
    struct backend *be = backend_cpu_create(&bp, err);
    struct kv_cache_params kp = {NL, 4, 16, NKV, HD, CND_DTYPE_F32};
    CHECK(be->ops->kv_init(be, &kp, err) == 0);
    struct forward_ctx *fc = forward_ctx_create(m, be, 8, err); /* forces slicing of 21 tokens */
    int32_t tok[NTOK], pos[NTOK], seq[NTOK], rows[NTOK], table[4] = {2, 0, 3, 1};
    int64_t slots[NTOK];
    for (int i = 0; i < NTOK; i++) {
        tok[i] = (int32_t)((i * 7919 + 3) % VOCAB);
        pos[i] = i, seq[i] = 0, rows[i] = i;
        slots[i] = (int64_t)table[i / 16] * 16 + i % 16;
    }
    const int32_t *tables[1] = {table};
    struct forward_batch b = {NTOK, tok, pos, seq, slots, 1, tables, NTOK, rows, NULL};
    float *ours = xmalloc(sizeof(float) * NTOK * VOCAB);
    double *ref = xmalloc(sizeof(double) * NTOK * VOCAB);
    CHECK(forward_run(fc, &b, ours) == 0);
    reference(t, tok, NTOK, ref);
    double worst = 0;
    for (int p = 0; p < NTOK; p++) {
        double mx = 0, md = 0;
        for (int i = 0; i < VOCAB; i++) {
            mx = fmax(mx, fabs(ref[p * VOCAB + i]));
            md = fmax(md, fabs(ours[p * VOCAB + i] - ref[p * VOCAB + i]));
        }
        worst = fmax(worst, md / mx);
    }
    printf("  %s: worst relative logit error %.2e\n", t->arch, worst);
    CHECK_MSG(worst < 1e-4, "%s: %g", t->arch, worst);
    free(ours), free(ref);
    forward_ctx_destroy(fc);
    backend_destroy(be);
    model_destroy(m);
    unlink(path);
}

static void test_llama(void)
{
    struct tiny t = {.arch = "llama", .base = 10000.0f};
    check_arch(&t);
    tiny_free(&t);
}

static void test_qwen2(void)
{
    struct tiny t = {.arch = "qwen2", .bias = true, .neox = true, .base = 1000000.0f};
    check_arch(&t);
    tiny_free(&t);
}

static void test_qwen3(void)
{
    struct tiny t = {.arch = "qwen3", .qk_norm = true, .neox = true, .base = 1000000.0f};
    check_arch(&t);
    tiny_free(&t);
}

static void expect_refused(struct tiny *t, const char *needle)
{
    char path[128], err[CND_ERR_LEN] = "";
    snprintf(path, sizeof(path), "/tmp/cinder_test_bad_%d.gguf", (int)getpid());
    tiny_make(t, path);
    struct model *m = model_load(path, err);
    CHECK_MSG(m == NULL && strstr(err, needle), "expected '%s' in '%s'", needle, err);
    model_destroy(m);
    unlink(path);
}

static void test_refusals(void)
{
    struct tiny t = {.arch = "gpt2", .base = 10000.0f};
    expect_refused(&t, "supported: llama, qwen2, qwen3");
    tiny_free(&t);
    struct tiny q = {.arch = "qwen2", .base = 10000.0f}; /* qwen2 without its biases */
    expect_refused(&q, "missing tensor 'blk.0.attn_q.bias'");
    tiny_free(&q);
}

int main(void)
{
    RUN(test_llama);
    RUN(test_qwen2);
    RUN(test_qwen3);
    RUN(test_refusals);
    return test_summary();
}
