/* bench_gpu.c: CUDA speed check (bench/gpu_check.sh runs it).
 *   bench_gpu copy                      card name, device-to-device copy bandwidth, datasheet peak
 *   bench_gpu model --preset llama3-8b --type q4_k|q8_0|f16 [--copy-gbps X] [--peak-gbps Y]
 *                   [--layers N] [--decode 64] [--prefill 512] [--seqs 16,64] [--ctx 128]
 * The model has the preset's real shapes with seeded random weights. To build it in seconds, the
 * host holds one random layer that every layer's tensors point at; the backend still copies each
 * layer to its own VRAM, so every decode step streams all weight bytes. Prints prefill tokens/s,
 * batch-1 decode tokens/s with the bandwidth it implies (weight bytes read per token x tokens/s)
 * against the measured copy bandwidth and the datasheet peak, and aggregate decode tokens/s of
 * several sequences at once. */
#include "cinder/backend.h"
#include "cinder/backend_cuda.h"
#include "cinder/clock.h"
#include "cinder/forward.h"
#include "cinder/log.h"
#include "cinder/model.h"
#include "cinder/quant.h"
#include "cinder/status.h"
#include "cinder/xalloc.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#ifdef CND_HAVE_CUDA
#include "kernels.h"
#endif

#define BS 16

struct shape {
    const char *name;
    enum model_arch arch;
    int32_t n_embd, n_ff, n_layer, n_head, n_head_kv, n_vocab;
    float rope_base, eps;
};

static const struct shape shapes[] = {
    {"tiny", MODEL_ARCH_LLAMA, 256, 768, 4, 8, 4, 512, 10000.0f, 1e-5f},
    {"mid", MODEL_ARCH_LLAMA, 1024, 2816, 12, 16, 8, 32000, 10000.0f, 1e-5f},
    {"llama3-8b", MODEL_ARCH_LLAMA, 4096, 14336, 32, 32, 8, 128256, 500000.0f, 1e-5f},
    {"qwen2.5-7b", MODEL_ARCH_QWEN2, 3584, 18944, 28, 28, 4, 152064, 1000000.0f, 1e-6f},
};

/* ---- a random model, generated on all cores ---- */

struct gen_job {
    struct tensor *t;
    float scale, offset;
    uint64_t seed;
    int64_t r0, r1;
};

struct gen_queue {
    struct gen_job *jobs;
    int n;
    int next;
    pthread_mutex_t mu;
};

static void *gen_worker(void *arg)
{
    struct gen_queue *q = arg;
    float *row = NULL;
    int64_t cap = 0;
    for (;;) {
        pthread_mutex_lock(&q->mu);
        int i = q->next < q->n ? q->next++ : -1;
        pthread_mutex_unlock(&q->mu);
        if (i < 0)
            break;
        struct gen_job *j = &q->jobs[i];
        if (j->t->ne[0] > cap) {
            cap = j->t->ne[0];
            row = xrealloc(row, (size_t)cap * sizeof(float));
        }
        for (int64_t r = j->r0; r < j->r1; r++) {
            uint64_t s = j->seed * 0x9e3779b97f4a7c15ull + (uint64_t)r * 0xbf58476d1ce4e5b9ull + 1;
            for (int64_t e = 0; e < j->t->ne[0]; e++) {
                s ^= s << 13, s ^= s >> 7, s ^= s << 17;
                row[e] = j->offset + ((float)(s >> 40) / 16777216.0f * 2.0f - 1.0f) * j->scale;
            }
            quant_quantize_weights(j->t->dtype, row,
                                   (uint8_t *)j->t->data + (size_t)r * j->t->nb[1], j->t->ne[0]);
        }
    }
    free(row);
    return NULL;
}

static void tensor_init(struct tensor *t, enum cnd_dtype type, int64_t ne0, int64_t ne1)
{
    memset(t, 0, sizeof(*t));
    t->dtype = type;
    t->n_dims = ne1 > 1 ? 2 : 1;
    t->ne[0] = ne0, t->ne[1] = ne1, t->ne[2] = t->ne[3] = 1;
    t->nb[0] = (size_t)dtype_type_size(type);
    t->nb[1] = dtype_row_size(type, ne0);
    t->nb[2] = t->nb[3] = t->nb[1] * (size_t)ne1;
    t->data = xmalloc(t->nb[1] * (size_t)ne1);
}

static size_t tbytes(const struct tensor *t)
{
    return t->data ? t->nb[1] * (size_t)t->ne[1] : 0;
}

static struct model *bench_model(const struct shape *sh, enum cnd_dtype wt, int n_layer)
{
    struct model *m = xcalloc(1, sizeof(*m));
    char name[96];
    snprintf(name, sizeof(name), "%s-%s", sh->name, dtype_name(wt));
    m->name = xstrdup(name);
    struct model_hparams *hp = &m->hp;
    const int32_t hd = sh->n_embd / sh->n_head;
    *hp = (struct model_hparams){.arch = sh->arch,
                                 .n_vocab = sh->n_vocab,
                                 .n_ctx_train = 8192,
                                 .n_embd = sh->n_embd,
                                 .n_ff = sh->n_ff,
                                 .n_layer = n_layer,
                                 .n_head = sh->n_head,
                                 .n_head_kv = sh->n_head_kv,
                                 .head_dim = hd,
                                 .n_rot = hd,
                                 .rope_freq_base = sh->rope_base,
                                 .rope_freq_scale = 1.0f,
                                 .rope_type =
                                     sh->arch == MODEL_ARCH_LLAMA ? ROPE_TYPE_NORM : ROPE_TYPE_NEOX,
                                 .rms_eps = sh->eps};
    const int64_t nq = (int64_t)hd * sh->n_head, nkv = (int64_t)hd * sh->n_head_kv;
    m->layers = xcalloc((size_t)n_layer, sizeof(struct model_layer));
    struct model_layer *L0 = &m->layers[0];
    tensor_init(&m->tok_embd, wt, sh->n_embd, sh->n_vocab);
    tensor_init(&m->output, wt, sh->n_embd, sh->n_vocab);
    tensor_init(&m->output_norm, CND_DTYPE_F32, sh->n_embd, 1);
    tensor_init(&L0->attn_norm, CND_DTYPE_F32, sh->n_embd, 1);
    tensor_init(&L0->ffn_norm, CND_DTYPE_F32, sh->n_embd, 1);
    tensor_init(&L0->wq, wt, sh->n_embd, nq);
    tensor_init(&L0->wk, wt, sh->n_embd, nkv);
    tensor_init(&L0->wv, wt, sh->n_embd, nkv);
    tensor_init(&L0->wo, wt, nq, sh->n_embd);
    tensor_init(&L0->ffn_gate, wt, sh->n_embd, sh->n_ff);
    tensor_init(&L0->ffn_up, wt, sh->n_embd, sh->n_ff);
    tensor_init(&L0->ffn_down, wt, sh->n_ff, sh->n_embd);
    if (sh->arch == MODEL_ARCH_QWEN2) {
        tensor_init(&L0->bq, CND_DTYPE_F32, nq, 1);
        tensor_init(&L0->bk, CND_DTYPE_F32, nkv, 1);
        tensor_init(&L0->bv, CND_DTYPE_F32, nkv, 1);
    }
    struct tensor *all[] = {&m->tok_embd,  &m->output,    &m->output_norm, &L0->attn_norm,
                            &L0->ffn_norm, &L0->wq,       &L0->wk,         &L0->wv,
                            &L0->wo,       &L0->ffn_gate, &L0->ffn_up,     &L0->ffn_down,
                            &L0->bq,       &L0->bk,       &L0->bv};
    struct gen_queue q = {.jobs = NULL, .n = 0, .next = 0};
    pthread_mutex_init(&q.mu, NULL);
    int cap = 0;
    for (size_t i = 0; i < ARRAY_SIZE(all); i++) {
        struct tensor *t = all[i];
        if (!t->data)
            continue;
        bool vec = t->ne[1] == 1;
        for (int64_t r = 0; r < t->ne[1]; r += 256) {
            if (q.n == cap) {
                cap = cap ? 2 * cap : 256;
                q.jobs = xrealloc(q.jobs, (size_t)cap * sizeof(*q.jobs));
            }
            q.jobs[q.n++] = (struct gen_job){t,
                                             vec ? 0.1f : 0.5f / sqrtf((float)t->ne[0]),
                                             vec ? 1.0f : 0.0f,
                                             i,
                                             r,
                                             CND_MIN(r + 256, t->ne[1])};
        }
    }
    int nt = (int)sysconf(_SC_NPROCESSORS_ONLN);
    nt = nt < 1 ? 1 : nt > 64 ? 64 : nt;
    pthread_t th[64];
    for (int i = 0; i < nt; i++)
        pthread_create(&th[i], NULL, gen_worker, &q);
    for (int i = 0; i < nt; i++)
        pthread_join(th[i], NULL);
    free(q.jobs);
    pthread_mutex_destroy(&q.mu);
    for (int l = 1; l < n_layer; l++)
        m->layers[l] = *L0; /* same host bytes, distinct tensors: each gets its own VRAM copy */
    size_t per_layer = 0;
    for (size_t i = 3; i < ARRAY_SIZE(all); i++)
        per_layer += tbytes(all[i]);
    m->weight_bytes = tbytes(&m->tok_embd) + tbytes(&m->output) + tbytes(&m->output_norm) +
                      per_layer * (size_t)n_layer;
    m->n_params =
        (int64_t)sh->n_vocab * sh->n_embd * 2 +
        (int64_t)n_layer * (sh->n_embd * (2 * nq + 2 * nkv) + 3 * (int64_t)sh->n_embd * sh->n_ff);
    return m;
}

static void bench_model_free(struct model *m)
{
    struct model_layer *L0 = &m->layers[0];
    struct tensor *all[] = {&m->tok_embd,  &m->output,    &m->output_norm, &L0->attn_norm,
                            &L0->ffn_norm, &L0->wq,       &L0->wk,         &L0->wv,
                            &L0->wo,       &L0->ffn_gate, &L0->ffn_up,     &L0->ffn_down,
                            &L0->bq,       &L0->bk,       &L0->bv};
    for (size_t i = 0; i < ARRAY_SIZE(all); i++)
        free(all[i]->data);
    free(m->layers);
    free(m->name);
    free(m);
}

/* ---- copy bandwidth ---- */

static double peak_gbps_for(const char *name)
{
    if (strstr(name, "H200"))
        return 4800.0;
    if (strstr(name, "H100")) {
        if (strstr(name, "PCIe"))
            return 2000.0;
        if (strstr(name, "NVL"))
            return 3900.0;
        return 3350.0; /* SXM */
    }
    if (strstr(name, "A100"))
        return strstr(name, "80GB") ? 2039.0 : 1555.0;
    return 0.0;
}

static int cmd_copy(void)
{
#ifdef CND_HAVE_CUDA
    struct cnd_cuda_device_info di;
    if (cnd_cuda_device_count() == 0 || cnd_cuda_device_info(0, &di) != 0) {
        printf("no CUDA device: %s\n", cnd_cuda_last_error());
        return 1;
    }
    const size_t bytes = (size_t)1 << 30;
    void *a = NULL, *b = NULL, *s = NULL, *e0 = NULL, *e1 = NULL;
    if (cnd_cuda_set_device(0) || cnd_cuda_malloc(&a, bytes) || cnd_cuda_malloc(&b, bytes) ||
        cnd_cuda_stream_create(&s) || cnd_cuda_event_create(&e0) || cnd_cuda_event_create(&e1)) {
        printf("cuda: %s\n", cnd_cuda_last_error());
        return 1;
    }
    cnd_cuda_memset_async(a, 1, bytes, s);
    for (int i = 0; i < 3; i++)
        cnd_cuda_memcpy_async(b, a, bytes, CND_CUDA_D2D, s);
    const int iters = 20;
    cnd_cuda_event_record(e0, s);
    for (int i = 0; i < iters; i++)
        cnd_cuda_memcpy_async(i % 2 ? a : b, i % 2 ? b : a, bytes, CND_CUDA_D2D, s);
    cnd_cuda_event_record(e1, s);
    float ms = 0;
    if (cnd_cuda_event_elapsed_ms(&ms, e0, e1) != 0) {
        printf("cuda: %s\n", cnd_cuda_last_error());
        return 1;
    }
    const double gbps = 2.0 * (double)bytes * iters / (ms / 1e3) / 1e9;
    printf("card %s (sm_%d%d, %.1f GiB)\n", di.name, di.cc_major, di.cc_minor,
           (double)di.total_bytes / 1073741824.0);
    printf("copy_gbps %.0f\n", gbps);
    printf("peak_gbps %.0f\n", peak_gbps_for(di.name));
    cnd_cuda_free(a), cnd_cuda_free(b);
    return 0;
#else
    printf("built without CUDA (peak of this card unknown: %.0f)\n", peak_gbps_for(""));
    return 1;
#endif
}

/* ---- model speed ---- */

struct seqs {
    int n;
    int32_t **tables;
    int32_t *tok, *pos, *seq, *rows;
    int64_t *slots;
};

/* n sequences, each with its own blocks [s * per, (s + 1) * per) */
static void seqs_init(struct seqs *S, int n, int per, int max_rows)
{
    S->n = n;
    S->tables = xmalloc((size_t)n * sizeof(int32_t *));
    for (int s = 0; s < n; s++) {
        S->tables[s] = xmalloc((size_t)per * sizeof(int32_t));
        for (int i = 0; i < per; i++)
            S->tables[s][i] = s * per + i;
    }
    S->tok = xcalloc((size_t)max_rows, 4);
    S->pos = xmalloc((size_t)max_rows * 4);
    S->seq = xmalloc((size_t)max_rows * 4);
    S->rows = xmalloc((size_t)max_rows * 4);
    S->slots = xmalloc((size_t)max_rows * 8);
}

static void seqs_free(struct seqs *S)
{
    for (int s = 0; s < S->n; s++)
        free(S->tables[s]);
    free(S->tables), free(S->tok), free(S->pos), free(S->seq), free(S->rows), free(S->slots);
}

static int run_rows(struct forward_ctx *fc, struct seqs *S, int n, const int *seq_of,
                    const int *pos_of, int n_vocab, float *logits, bool out_all_seqs)
{
    for (int i = 0; i < n; i++) {
        S->seq[i] = seq_of[i];
        S->pos[i] = pos_of[i];
        S->tok[i] = (int32_t)((pos_of[i] * 131 + seq_of[i] * 7 + 3) % n_vocab);
        S->slots[i] = (int64_t)S->tables[seq_of[i]][pos_of[i] / BS] * BS + pos_of[i] % BS;
        S->rows[i] = i;
    }
    struct forward_batch b = {.n_tokens = n,
                              .tokens = S->tok,
                              .positions = S->pos,
                              .seq_idx = S->seq,
                              .slots = S->slots,
                              .n_seqs = S->n,
                              .block_tables = (const int32_t *const *)S->tables,
                              .n_out = out_all_seqs ? n : 1,
                              .out_rows = out_all_seqs ? S->rows : S->rows + n - 1};
    return forward_run(fc, &b, logits);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmd_model(int argc, char **argv)
{
    const char *preset = "llama3-8b", *type = "q4_k", *seqs_arg = "16,64";
    double copy_gbps = 0, peak_gbps = 0;
    int layers = 0, n_decode = 64, n_prefill = 512, ctx = 128, device = 0;
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *f = argv[i], *v = argv[i + 1];
        if (!strcmp(f, "--preset"))
            preset = v;
        else if (!strcmp(f, "--type"))
            type = v;
        else if (!strcmp(f, "--seqs"))
            seqs_arg = v;
        else if (!strcmp(f, "--copy-gbps"))
            copy_gbps = atof(v);
        else if (!strcmp(f, "--peak-gbps"))
            peak_gbps = atof(v);
        else if (!strcmp(f, "--layers"))
            layers = atoi(v);
        else if (!strcmp(f, "--decode"))
            n_decode = atoi(v);
        else if (!strcmp(f, "--prefill"))
            n_prefill = atoi(v);
        else if (!strcmp(f, "--ctx"))
            ctx = atoi(v);
        else if (!strcmp(f, "--device"))
            device = atoi(v);
        else {
            fprintf(stderr, "bench_gpu model: unknown option %s\n", f);
            return 2;
        }
    }
    const struct shape *sh = NULL;
    for (size_t i = 0; i < ARRAY_SIZE(shapes); i++)
        if (!strcmp(shapes[i].name, preset))
            sh = &shapes[i];
    enum cnd_dtype wt = !strcasecmp(type, "f16")    ? CND_DTYPE_F16
                        : !strcasecmp(type, "q8_0") ? CND_DTYPE_Q8_0
                        : !strcasecmp(type, "bf16") ? CND_DTYPE_BF16
                        : !strcasecmp(type, "q4_0") ? CND_DTYPE_Q4_0
                        : !strcasecmp(type, "q6_k") ? CND_DTYPE_Q6_K
                                                    : CND_DTYPE_Q4_K;
    if (!sh) {
        fprintf(stderr, "unknown preset %s\n", preset);
        return 2;
    }
    int64_t t0 = now_us();
    struct model *m = bench_model(sh, wt, layers > 0 ? layers : sh->n_layer);
    const double gen_s = (double)(now_us() - t0) / 1e6;
    const size_t read_per_token = m->weight_bytes - tbytes(&m->tok_embd);
    printf("model %s: %.2f B params, %.2f GiB of weights, %.2f GiB read per token "
           "(generated in %.1f s)\n",
           m->name, (double)m->n_params / 1e9, (double)m->weight_bytes / 1073741824.0,
           (double)read_per_token / 1073741824.0, gen_s);
    fflush(stdout);

    char err[CND_ERR_LEN];
    struct backend_cuda_params bp = {.device = device};
    struct backend *be = backend_cuda_create(&bp, err);
    if (!be) {
        printf("cuda backend: %s\n", err);
        bench_model_free(m);
        return 1;
    }
    int max_seqs = 1;
    for (const char *p = seqs_arg; *p;) {
        int v = atoi(p);
        max_seqs = CND_MAX(max_seqs, v);
        p = strchr(p, ',');
        if (!p)
            break;
        p++;
    }
    const int max_len = CND_MAX(n_prefill, ctx) + n_decode + 4;
    const int per = (max_len + BS - 1) / BS;
    struct kv_cache_params kp = {m->hp.n_layer,   per * max_seqs, BS,
                                 m->hp.n_head_kv, m->hp.head_dim, CND_DTYPE_F16};
    t0 = now_us();
    int rc = be->ops->load_model(be, m, err);
    const double up_s = (double)(now_us() - t0) / 1e6;
    if (rc == 0)
        rc = be->ops->kv_init(be, &kp, err);
    struct forward_ctx *fc =
        rc == 0 ? forward_ctx_create(m, be, CND_MAX(n_prefill, max_seqs), err) : NULL;
    if (!fc) {
        printf("set-up failed: %s\n", err);
        backend_destroy(be);
        bench_model_free(m);
        return 1;
    }
    printf("upload %.1f s (%.1f GB/s)\n", up_s, (double)m->weight_bytes / up_s / 1e9);
    const int V = m->hp.n_vocab;
    float *logits = xmalloc((size_t)max_seqs * V * sizeof(float));
    struct seqs S;
    seqs_init(&S, max_seqs, per, CND_MAX(n_prefill, max_seqs));
    int *seq_of = xmalloc((size_t)CND_MAX(n_prefill, max_seqs) * sizeof(int));
    int *pos_of = xmalloc((size_t)CND_MAX(n_prefill, max_seqs) * sizeof(int));

    /* prefill: n_prefill tokens of sequence 0 in one batch; warm-up + median of 3 */
    double t[3];
    for (int i = 0; i < n_prefill; i++)
        seq_of[i] = 0, pos_of[i] = i;
    for (int rep = -1; rep < 3 && rc == 0; rep++) {
        int64_t a = now_us();
        rc = run_rows(fc, &S, n_prefill, seq_of, pos_of, V, logits, false);
        if (rep >= 0)
            t[rep] = (double)n_prefill * 1e6 / (double)(now_us() - a);
    }
    qsort(t, 3, sizeof(double), cmp_d);
    if (rc == 0)
        printf("prefill%d %.1f tok/s\n", n_prefill, t[1]);
    fflush(stdout);

    /* batch-1 decode after the prompt (2 warm-up steps: eager run, graph capture) */
    double tok_s = 0;
    if (rc == 0) {
        int64_t a = 0;
        for (int i = 0; i < n_decode + 2 && rc == 0; i++) {
            if (i == 2)
                a = now_us();
            seq_of[0] = 0, pos_of[0] = n_prefill + i;
            rc = run_rows(fc, &S, 1, seq_of, pos_of, V, logits, true);
        }
        tok_s = (double)n_decode * 1e6 / (double)(now_us() - a);
    }
    if (rc == 0) {
        const double gbps = (double)read_per_token * tok_s / 1e9;
        printf("decode1 %.1f tok/s, %.0f GB/s of weights", tok_s, gbps);
        if (copy_gbps > 0)
            printf(", %.0f%% of copy bandwidth (%.0f GB/s)", 100.0 * gbps / copy_gbps, copy_gbps);
        if (peak_gbps > 0)
            printf(", %.0f%% of peak (%.0f GB/s)", 100.0 * gbps / peak_gbps, peak_gbps);
        printf("\n");
        printf("decode1_frac_copy %.3f\n", copy_gbps > 0 ? gbps / copy_gbps : 0.0);
    }
    fflush(stdout);

    /* concurrent decode: n sequences at positions ctx.., one row each per step */
    for (const char *p = seqs_arg; rc == 0 && p && *p;) {
        const int n = atoi(p);
        p = strchr(p, ',');
        if (p)
            p++;
        if (n <= 0 || n > max_seqs)
            continue;
        int64_t a = 0;
        for (int step = 0; step < n_decode / 2 + 2 && rc == 0; step++) {
            if (step == 2)
                a = now_us();
            for (int s = 0; s < n; s++)
                seq_of[s] = s, pos_of[s] = ctx + step;
            rc = run_rows(fc, &S, n, seq_of, pos_of, V, logits, true);
        }
        if (rc == 0)
            printf("decode%d %.1f tok/s aggregate\n", n,
                   (double)n * (n_decode / 2) * 1e6 / (double)(now_us() - a));
        fflush(stdout);
    }
    struct backend_cuda_stats st;
    backend_cuda_get_stats(be, &st);
    printf("graphs: %llu captured, %llu launches, %llu eager steps\n",
           (unsigned long long)st.graph_captures, (unsigned long long)st.graph_launches,
           (unsigned long long)st.eager_runs);
    if (rc != 0)
        printf("forward failed: %s\n", cnd_status_str(rc));
    free(seq_of), free(pos_of), free(logits);
    seqs_free(&S);
    forward_ctx_destroy(fc);
    backend_destroy(be);
    bench_model_free(m);
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "copy"))
        return cmd_copy();
    if (argc >= 2 && !strcmp(argv[1], "model"))
        return cmd_model(argc, argv);
    fprintf(stderr, "usage: bench_gpu copy | bench_gpu model --preset P --type T [--copy-gbps X] "
                    "[--peak-gbps Y] [--layers N] [--decode 64] [--prefill 512] [--seqs 16,64] "
                    "[--ctx 128]\n");
    return 2;
}
