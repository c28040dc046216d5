/* ctest-labels: cuda */
/* test_cuda_forward.c: whole forward passes on the CUDA backend against the CPU backend, same
 * tokens, same paged layout: a prompt (sliced: it is longer than the scratch), decode steps
 * (repeated, so the CUDA graph path is captured and replayed) and a mixed batch of three
 * sequences (a prefill chunk next to decode rows). Models: stories260K (from
 * $CND_TEST_MODEL_DIR, else CND_SHARED_DIR/models; skipped if absent) and random-weight "tiny"
 * llama models in every weight type the CUDA backend reads. Skips (77) without a GPU.
 * Tolerance: max |gpu - cpu| over max |cpu| of the logits <= 1e-3 for f32, 5e-3 for f16/bf16,
 * 3e-2 for quantized weights (prefill rows go through cuBLAS with F16 activations where the CPU
 * quantizes activations to Q8), plus the same top token wherever the CPU's top two logits are
 * further apart than the tolerance. */
#include "test.h"
#include "cinder/backend.h"
#include "cinder/backend_cuda.h"
#include "cinder/forward.h"
#include "cinder/model.h"
#include "cinder/status.h"

#include <stdlib.h>

#define BS         16
#define NBLK       64
#define MAX_TOKENS 64

struct side {
    struct backend *be;
    struct forward_ctx *fc;
};

static int argmax(const float *x, int n, float *gap)
{
    int best = 0, second = -1;
    for (int i = 1; i < n; i++) {
        if (x[i] > x[best]) {
            second = best;
            best = i;
        } else if (second < 0 || x[i] > x[second]) {
            second = i;
        }
    }
    *gap = second >= 0 ? x[best] - x[second] : INFINITY;
    return best;
}

static void compare(const char *what, const float *got, const float *ref, int n_rows, int n_vocab,
                    double tol)
{
    for (int r = 0; r < n_rows; r++) {
        const float *g = got + (size_t)r * n_vocab, *c = ref + (size_t)r * n_vocab;
        double md = 0, mr = 1e-9;
        for (int i = 0; i < n_vocab; i++) {
            double d = fabs((double)g[i] - c[i]);
            md = isnan(d) ? INFINITY : fmax(md, d);
            mr = fmax(mr, fabs((double)c[i]));
        }
        CHECK_MSG(md / mr <= tol, "%s row %d: relative error %g (tol %g)", what, r, md / mr, tol);
        float gap, gap2;
        int a = argmax(c, n_vocab, &gap), b = argmax(g, n_vocab, &gap2);
        if (gap > tol * mr)
            CHECK_MSG(a == b, "%s row %d: top token %d on the CPU, %d on the GPU", what, r, a, b);
    }
}

static bool side_open(struct side *s, struct backend *be, const struct model *m)
{
    char err[CND_ERR_LEN];
    s->be = be;
    struct kv_cache_params kp = {m->hp.n_layer,   NBLK,           BS,
                                 m->hp.n_head_kv, m->hp.head_dim, CND_DTYPE_F16};
    int rc = be->ops->load_model(be, m, err);
    if (rc == 0)
        rc = be->ops->kv_init(be, &kp, err);
    CHECK_MSG(rc == 0, "%s: %s", be->ops->name, err);
    s->fc = rc == 0 ? forward_ctx_create(m, be, MAX_TOKENS, err) : NULL;
    CHECK(s->fc != NULL);
    return s->fc != NULL;
}

/* Block tables: seq s uses blocks s, s+3, s+6, ... (interleaved). */
static int32_t tables[3][NBLK / 3];

static void fill_batch(struct forward_batch *b, int32_t *tok, int32_t *pos, int32_t *seq,
                       int64_t *slots, int32_t *rows, const int32_t *const *tbl, int n_seqs,
                       const int *seq_of, const int *pos_of, int n, int n_vocab, bool all_out)
{
    for (int i = 0; i < n; i++) {
        tok[i] = (int32_t)((i * 7919 + pos_of[i] * 31 + seq_of[i]) % n_vocab);
        pos[i] = pos_of[i];
        seq[i] = seq_of[i];
        slots[i] = (int64_t)tbl[seq_of[i]][pos_of[i] / BS] * BS + pos_of[i] % BS;
        rows[i] = i;
    }
    *b = (struct forward_batch){.n_tokens = n,
                                .tokens = tok,
                                .positions = pos,
                                .seq_idx = seq,
                                .slots = slots,
                                .n_seqs = n_seqs,
                                .block_tables = tbl,
                                .n_out = all_out ? n : 1,
                                .out_rows = all_out ? rows : rows + n - 1};
}

static void run_model(const char *name, const struct model *m, struct backend *cpu,
                      struct backend *gpu, double tol)
{
    struct side c, g;
    if (!side_open(&c, cpu, m) || !side_open(&g, gpu, m))
        goto out;
    for (int s = 0; s < 3; s++)
        for (int i = 0; i < NBLK / 3; i++)
            tables[s][i] = s + 3 * i;
    const int32_t *tbl[3] = {tables[0], tables[1], tables[2]};
    const int V = m->hp.n_vocab, P = 80; /* prompt longer than MAX_TOKENS: sliced */
    int32_t tok[128], pos[128], seq[128], rows[128];
    int64_t slots[128];
    int seq_of[128], pos_of[128];
    float *lc = malloc((size_t)128 * V * 4), *lg = malloc((size_t)128 * V * 4);
    struct forward_batch b;
    char what[160];

    /* 1. prompt of seq 0, logits of every row */
    for (int i = 0; i < P; i++)
        seq_of[i] = 0, pos_of[i] = i;
    fill_batch(&b, tok, pos, seq, slots, rows, tbl, 3, seq_of, pos_of, P, V, true);
    CHECK_EQ_INT(forward_run(c.fc, &b, lc), 0);
    CHECK_EQ_INT(forward_run(g.fc, &b, lg), 0);
    snprintf(what, sizeof(what), "%s prompt", name);
    compare(what, lg, lc, P, V, tol);

    /* 2. decode steps of seq 0 (the graph path from the third step on) */
    for (int step = 0; step < 6; step++) {
        seq_of[0] = 0, pos_of[0] = P + step;
        fill_batch(&b, tok, pos, seq, slots, rows, tbl, 3, seq_of, pos_of, 1, V, true);
        CHECK_EQ_INT(forward_run(c.fc, &b, lc), 0);
        CHECK_EQ_INT(forward_run(g.fc, &b, lg), 0);
        snprintf(what, sizeof(what), "%s decode %d", name, step);
        compare(what, lg, lc, 1, V, tol);
    }

    /* 3. mixed: seq 1 prefills 20 tokens while seq 0 decodes and seq 2 starts with 1 token */
    int n = 0;
    seq_of[n] = 0, pos_of[n++] = P + 6;
    for (int i = 0; i < 20; i++)
        seq_of[n] = 1, pos_of[n++] = i;
    seq_of[n] = 2, pos_of[n++] = 0;
    fill_batch(&b, tok, pos, seq, slots, rows, tbl, 3, seq_of, pos_of, n, V, true);
    CHECK_EQ_INT(forward_run(c.fc, &b, lc), 0);
    CHECK_EQ_INT(forward_run(g.fc, &b, lg), 0);
    snprintf(what, sizeof(what), "%s mixed", name);
    compare(what, lg, lc, n, V, tol);

    /* 4. batched decode of the three sequences, 2 rows wanted */
    for (int step = 0; step < 4; step++) {
        seq_of[0] = 0, pos_of[0] = P + 7 + step;
        seq_of[1] = 1, pos_of[1] = 20 + step;
        seq_of[2] = 2, pos_of[2] = 1 + step;
        fill_batch(&b, tok, pos, seq, slots, rows, tbl, 3, seq_of, pos_of, 3, V, true);
        b.n_out = 2;
        b.out_rows = rows + 1;
        CHECK_EQ_INT(forward_run(c.fc, &b, lc), 0);
        CHECK_EQ_INT(forward_run(g.fc, &b, lg), 0);
        snprintf(what, sizeof(what), "%s batched decode %d", name, step);
        compare(what, lg, lc, 2, V, tol);
    }
    struct backend_cuda_stats st;
    backend_cuda_get_stats(gpu, &st);
    printf("  %s: %llu eager runs, %llu graph captures, %llu graph launches\n", name,
           (unsigned long long)st.eager_runs, (unsigned long long)st.graph_captures,
           (unsigned long long)st.graph_launches);
    if (!getenv("CINDER_CUDA_GRAPHS"))
        CHECK(st.graph_launches > 0);
    free(lc), free(lg);
out:
    forward_ctx_destroy(c.fc);
    forward_ctx_destroy(g.fc);
}

static struct backend *new_cpu(void)
{
    struct backend_cpu_params cp = {.n_threads = 0};
    return backend_cpu_create(&cp, NULL);
}

static struct backend *new_gpu(void)
{
    char err[CND_ERR_LEN];
    struct backend_cuda_params gp = {.device = 0};
    struct backend *be = backend_cuda_create(&gp, err);
    CHECK_MSG(be != NULL, "%s", err);
    return be;
}

static void test_random_models(void)
{
    static const struct {
        enum cnd_dtype t;
        double tol;
    } cases[] = {
        {CND_DTYPE_F32, 1e-3},  {CND_DTYPE_F16, 5e-3},  {CND_DTYPE_BF16, 5e-3},
        {CND_DTYPE_Q8_0, 3e-2}, {CND_DTYPE_Q4_0, 3e-2}, {CND_DTYPE_Q4_K, 3e-2},
        {CND_DTYPE_Q6_K, 3e-2},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        char err[CND_ERR_LEN];
        struct model *m = model_create_random("tiny", cases[i].t, 7, err);
        CHECK_MSG(m != NULL, "%s", err);
        if (!m)
            continue;
        struct backend *cpu = new_cpu(), *gpu = new_gpu();
        if (gpu)
            run_model(m->name, m, cpu, gpu, cases[i].tol);
        backend_destroy(gpu);
        backend_destroy(cpu);
        model_destroy(m);
    }
}

static void test_stories(void)
{
    char path[1024];
    const char *dir = getenv("CND_TEST_MODEL_DIR");
    if (dir)
        snprintf(path, sizeof(path), "%s/stories260K.gguf", dir);
    else
        snprintf(path, sizeof(path), "%s/models/stories260K.gguf", CND_SHARED_DIR);
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("  %s missing: stories260K case skipped\n", path);
        return;
    }
    fclose(f);
    char err[CND_ERR_LEN];
    struct model *m = model_load(path, err);
    CHECK_MSG(m != NULL, "%s", err);
    if (!m)
        return;
    struct backend *cpu = new_cpu(), *gpu = new_gpu();
    if (gpu)
        run_model("stories260K", m, cpu, gpu, 1e-3);
    backend_destroy(gpu);
    backend_destroy(cpu);
    model_destroy(m);
}

int main(void)
{
    if (backend_cuda_device_count() == 0) {
        printf("no CUDA device visible (or built without CUDA): skipped\n");
        return TEST_SKIP;
    }
    RUN(test_stories);
    RUN(test_random_models);
    return test_summary();
}
