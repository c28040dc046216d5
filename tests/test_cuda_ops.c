/* ctest-labels: cuda */
/* test_cuda_ops.c: every op of the CUDA backend against the CPU backend (the oracle) on the same
 * inputs. Skips (77) when the build has no CUDA or no GPU is visible. Tolerances, as max |gpu -
 * cpu| over max |cpu| unless "abs":
 *   get_rows 1e-6 (same float operations), gather_rows 0, add / silu_mul 1e-6, rmsnorm 1e-5,
 *   rope 1e-4 abs (device sinf/cosf vs libm),
 *   matmul n <= 8 (GGUF blocks read directly, activations quantized exactly as the CPU): 1e-4;
 *   matmul n > 8 (cuBLAS, F16/BF16 activations; quantized weights dequantized to F16 where the
 *   CPU uses Q8 activations): 1e-3 for f32/f16/bf16 weights, 2e-2 for quantized ones,
 *   attention (F16 cache) 3e-3 abs: the CPU rounds normalized softmax weights to F16, the GPU
 *   keeps them in float; attention (F32 cache) 1e-4 abs. */
#include "test.h"
#include "cinder/backend.h"
#include "cinder/backend_cuda.h"
#include "cinder/forward.h"
#include "cinder/quant.h"
#include "cinder/status.h"

#include <stdlib.h>

static struct backend *cpu, *gpu;
static uint64_t rng = 0x1234567;

static float frand(void)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}

static float *rand_vec(size_t n, float scale)
{
    float *v = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        v[i] = frand() * scale;
    return v;
}

static void *to_gpu(const void *host, size_t bytes)
{
    void *d = gpu->ops->alloc(gpu, bytes);
    CHECK(d != NULL);
    CHECK_EQ_INT(gpu->ops->upload(gpu, d, host, bytes), 0);
    return d;
}

static float *from_gpu(const void *dev, size_t n)
{
    float *h = malloc(n * sizeof(float));
    CHECK_EQ_INT(gpu->ops->download(gpu, h, dev, n * sizeof(float)), 0);
    CHECK_EQ_INT(gpu->ops->sync(gpu), 0);
    return h;
}

static double rel_err(const float *a, const float *ref, size_t n)
{
    double md = 0, mr = 1e-12;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)ref[i]);
        if (!(d <= md)) /* NaN counts */
            md = isnan(d) ? INFINITY : d;
        mr = fmax(mr, fabs((double)ref[i]));
    }
    return md / mr;
}

static double abs_err(const float *a, const float *ref, size_t n)
{
    double md = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)ref[i]);
        md = isnan(d) ? INFINITY : fmax(md, d);
    }
    return md;
}

/* A weight matrix [rows, cols] of type t (host copy + device copy). */
struct wpair {
    struct tensor h, d;
};

static void make_weight(struct wpair *w, enum cnd_dtype t, int64_t cols, int64_t rows, float scale)
{
    memset(w, 0, sizeof(*w));
    float *f = rand_vec((size_t)(cols * rows), scale);
    size_t rb = dtype_row_size(t, cols);
    void *q = malloc(rb * (size_t)rows);
    CHECK_EQ_INT(quant_quantize_weights(t, f, q, cols * rows), 0);
    free(f);
    w->h.dtype = t;
    w->h.n_dims = 2;
    w->h.ne[0] = cols, w->h.ne[1] = rows, w->h.ne[2] = w->h.ne[3] = 1;
    w->h.nb[0] = (size_t)dtype_type_size(t), w->h.nb[1] = rb;
    w->h.nb[2] = w->h.nb[3] = rb * (size_t)rows;
    w->h.data = q;
    w->d = w->h;
    w->d.data = to_gpu(q, rb * (size_t)rows);
    w->d.device = TENSOR_DEVICE_CUDA;
}

static void free_weight(struct wpair *w)
{
    free(w->h.data);
    gpu->ops->free(gpu, w->d.data);
}

static const enum cnd_dtype types[] = {CND_DTYPE_F32,  CND_DTYPE_F16,  CND_DTYPE_BF16,
                                       CND_DTYPE_Q8_0, CND_DTYPE_Q4_0, CND_DTYPE_Q4_K,
                                       CND_DTYPE_Q6_K};

static void test_get_rows(void)
{
    for (size_t ti = 0; ti < ARRAY_SIZE(types); ti++) {
        struct wpair w;
        make_weight(&w, types[ti], 512, 10, 1.0f);
        int32_t ids[4] = {3, 0, 9, 3};
        float ref[4 * 512];
        cpu->ops->get_rows(cpu, &w.h, ids, 4, ref);
        int32_t *d_ids = to_gpu(ids, sizeof(ids));
        float *d_out = gpu->ops->alloc(gpu, sizeof(ref));
        gpu->ops->get_rows(gpu, &w.d, d_ids, 4, d_out);
        float *got = from_gpu(d_out, 4 * 512);
        double e = rel_err(got, ref, 4 * 512);
        CHECK_MSG(e <= 1e-6, "get_rows %s: %g", dtype_name(types[ti]), e);
        free(got);
        gpu->ops->free(gpu, d_ids), gpu->ops->free(gpu, d_out);
        free_weight(&w);
    }
}

static void test_elementwise(void)
{
    const int rows = 5, cols = 768;
    const size_t n = (size_t)rows * cols;
    float *x = rand_vec(n, 2.0f), *y = rand_vec(n, 3.0f), *wv = rand_vec((size_t)cols, 1.0f);
    float *ref = malloc(n * sizeof(float));
    float *dx = to_gpu(x, n * 4), *dy = to_gpu(y, n * 4), *dw = to_gpu(wv, (size_t)cols * 4);
    float *dout = gpu->ops->alloc(gpu, n * 4);
    struct tensor wh = {.dtype = CND_DTYPE_F32, .n_dims = 1, .ne = {cols, 1, 1, 1}, .data = wv};
    struct tensor wd = wh;
    wd.data = dw;

    cpu->ops->rmsnorm(cpu, ref, x, &wh, rows, cols, 1e-5f);
    gpu->ops->rmsnorm(gpu, dout, dx, &wd, rows, cols, 1e-5f);
    float *got = from_gpu(dout, n);
    CHECK_MSG(rel_err(got, ref, n) <= 1e-5, "rmsnorm %g", rel_err(got, ref, n));
    free(got);

    cpu->ops->silu_mul(cpu, ref, x, y, 1, (int64_t)n);
    gpu->ops->silu_mul(gpu, dout, dx, dy, 1, (int64_t)n);
    got = from_gpu(dout, n);
    CHECK_MSG(rel_err(got, ref, n) <= 1e-6, "silu_mul %g", rel_err(got, ref, n));
    free(got);

    cpu->ops->add(cpu, ref, x, y, (int64_t)n);
    gpu->ops->add(gpu, dout, dx, dy, (int64_t)n);
    got = from_gpu(dout, n);
    CHECK_MSG(rel_err(got, ref, n) <= 1e-6, "add %g", rel_err(got, ref, n));
    free(got);

    int32_t rows_idx[3] = {4, 1, 4};
    cpu->ops->gather_rows(cpu, ref, x, rows_idx, 3, cols);
    gpu->ops->gather_rows(gpu, dout, dx, rows_idx, 3, cols);
    got = from_gpu(dout, 3 * (size_t)cols);
    CHECK_MSG(rel_err(got, ref, 3 * (size_t)cols) == 0, "gather_rows");
    free(got);

    gpu->ops->free(gpu, dx), gpu->ops->free(gpu, dy), gpu->ops->free(gpu, dw);
    gpu->ops->free(gpu, dout);
    free(x), free(y), free(wv), free(ref);
}

static void test_matmul(void)
{
    const int ns[] = {1, 3, 8, 9, 40};
    for (size_t ti = 0; ti < ARRAY_SIZE(types); ti++) {
        const enum cnd_dtype t = types[ti];
        const bool quant = t != CND_DTYPE_F32 && t != CND_DTYPE_F16 && t != CND_DTYPE_BF16;
        struct wpair w;
        const int64_t K = 512, N = 200;
        make_weight(&w, t, K, N, 0.1f);
        float *bias = rand_vec((size_t)N, 0.5f);
        struct tensor bh = {.dtype = CND_DTYPE_F32, .n_dims = 1, .ne = {N, 1, 1, 1}, .data = bias};
        struct tensor bd = bh;
        bd.data = to_gpu(bias, (size_t)N * 4);
        for (size_t ni = 0; ni < ARRAY_SIZE(ns); ni++) {
            const int n = ns[ni];
            float *x = rand_vec((size_t)n * K, 1.0f);
            float *ref = malloc((size_t)n * N * 4);
            const bool with_bias = ni % 2 == 1;
            cpu->ops->matmul(cpu, ref, &w.h, x, n, with_bias ? &bh : NULL, NULL);
            float *dx = to_gpu(x, (size_t)n * K * 4);
            float *dout = gpu->ops->alloc(gpu, (size_t)n * N * 4);
            gpu->ops->matmul(gpu, dout, &w.d, dx, n, with_bias ? &bd : NULL, NULL);
            float *got = from_gpu(dout, (size_t)n * N);
            double e = rel_err(got, ref, (size_t)n * N);
            double tol = n <= 8 ? 1e-4 : quant ? 2e-2 : 1e-3;
            CHECK_MSG(e <= tol, "matmul %s n=%d bias=%d: %g (tol %g)", dtype_name(t), n, with_bias,
                      e, tol);
            free(got), free(x), free(ref);
            gpu->ops->free(gpu, dx), gpu->ops->free(gpu, dout);
        }
        gpu->ops->free(gpu, bd.data);
        free(bias);
        free_weight(&w);
    }
}

/* ---- batch helpers: two sequences with scattered block tables ---- */

#define BS   16
#define NBLK 40

struct tbatch {
    int32_t n, *tokens, *pos, *seq, *rows;
    int64_t *slots;
    int32_t *tables[2];
    struct forward_batch b;
};

static int32_t table0[NBLK], table1[NBLK];

static void make_tables(void)
{
    /* seq 0 takes odd blocks backwards, seq 1 even ones */
    for (int i = 0; i < NBLK / 2; i++) {
        table0[i] = NBLK - 1 - 2 * i;
        table1[i] = 2 * i;
    }
}

/* rows: seq 0 at positions [p0a, p0b), then seq 1 at [p1a, p1b) */
static void tbatch_init(struct tbatch *t, int p0a, int p0b, int p1a, int p1b)
{
    int n = (p0b - p0a) + (p1b - p1a);
    t->n = n;
    t->tokens = calloc((size_t)n, 4);
    t->pos = malloc((size_t)n * 4);
    t->seq = malloc((size_t)n * 4);
    t->rows = malloc((size_t)n * 4);
    t->slots = malloc((size_t)n * 8);
    t->tables[0] = table0, t->tables[1] = table1;
    int r = 0;
    for (int s = 0; s < 2; s++) {
        int a = s ? p1a : p0a, b = s ? p1b : p0b;
        for (int p = a; p < b; p++, r++) {
            t->pos[r] = p;
            t->seq[r] = s;
            t->rows[r] = r;
            t->slots[r] = (int64_t)t->tables[s][p / BS] * BS + p % BS;
        }
    }
    t->b = (struct forward_batch){.n_tokens = n,
                                  .tokens = t->tokens,
                                  .positions = t->pos,
                                  .seq_idx = t->seq,
                                  .slots = t->slots,
                                  .n_seqs = 2,
                                  .block_tables = (const int32_t *const *)t->tables,
                                  .n_out = n,
                                  .out_rows = t->rows};
}

static void tbatch_free(struct tbatch *t)
{
    free(t->tokens), free(t->pos), free(t->seq), free(t->rows), free(t->slots);
}

static void test_rope(void)
{
    struct kv_cache_params kp = {1, NBLK, BS, 2, 64, CND_DTYPE_F16};
    char err[CND_ERR_LEN];
    CHECK_EQ_INT(cpu->ops->kv_init(cpu, &kp, err), 0);
    CHECK_EQ_INT(gpu->ops->kv_init(gpu, &kp, err), 0);
    struct tbatch t;
    tbatch_init(&t, 0, 7, 500, 505);
    const int n_heads = 4, hd = 64;
    float ff[32];
    for (int i = 0; i < 32; i++)
        ff[i] = 1.0f + (float)i / 8.0f;
    float *dff = to_gpu(ff, sizeof(ff));
    for (int variant = 0; variant < 4; variant++) {
        struct rope_params rp = {.n_rot = variant == 3 ? 32 : 64,
                                 .head_dim = hd,
                                 .freq_base = 10000.0f,
                                 .freq_scale = variant == 2 ? 0.5f : 1.0f,
                                 .neox = variant % 2 == 1,
                                 .freq_factors = NULL};
        size_t n = (size_t)t.n * n_heads * hd;
        float *x = rand_vec(n, 1.0f);
        float *dx = to_gpu(x, n * 4);
        CHECK_EQ_INT(cpu->ops->begin_batch(cpu, &t.b), 0);
        CHECK_EQ_INT(gpu->ops->begin_batch(gpu, &t.b), 0);
        struct rope_params rpc = rp, rpg = rp;
        if (variant == 2) {
            rpc.freq_factors = ff;
            rpg.freq_factors = dff;
        }
        cpu->ops->rope(cpu, x, t.n, n_heads, &rpc);
        gpu->ops->rope(gpu, dx, t.n, n_heads, &rpg);
        float *got = from_gpu(dx, n);
        CHECK_MSG(abs_err(got, x, n) <= 1e-4, "rope variant %d: %g", variant, abs_err(got, x, n));
        free(got), free(x);
        gpu->ops->free(gpu, dx);
    }
    gpu->ops->free(gpu, dff);
    tbatch_free(&t);
}

/* Prefill both sequences, then one decode row each; compare every output. */
static void attention_case(int n_head, int n_head_kv, int hd, enum cnd_dtype kv_type, int len0,
                           int len1, double tol)
{
    struct kv_cache_params kp = {2, NBLK, BS, n_head_kv, hd, kv_type};
    char err[CND_ERR_LEN];
    CHECK_EQ_INT(cpu->ops->kv_init(cpu, &kp, err), 0);
    CHECK_EQ_INT(gpu->ops->kv_init(gpu, &kp, err), 0);
    struct attn_params ap = {n_head, n_head_kv, hd, 1.0f / sqrtf((float)hd)};
    for (int step = 0; step < 2; step++) {
        struct tbatch t;
        if (step == 0)
            tbatch_init(&t, 0, len0, 0, len1);
        else
            tbatch_init(&t, len0, len0 + 1, len1, len1 + 1);
        size_t nq = (size_t)t.n * n_head * hd, nk = (size_t)t.n * n_head_kv * hd;
        float *q = rand_vec(nq, 1.0f), *k = rand_vec(nk, 1.0f), *v = rand_vec(nk, 1.0f);
        float *ref = malloc(nq * 4);
        float *dq = to_gpu(q, nq * 4), *dk = to_gpu(k, nk * 4), *dv = to_gpu(v, nk * 4);
        float *dout = gpu->ops->alloc(gpu, nq * 4);
        for (int layer = 0; layer < 2; layer++) {
            CHECK_EQ_INT(cpu->ops->begin_batch(cpu, &t.b), 0);
            CHECK_EQ_INT(gpu->ops->begin_batch(gpu, &t.b), 0);
            cpu->ops->attention(cpu, layer, q, k, v, ref, &ap);
            gpu->ops->attention(gpu, layer, dq, dk, dv, dout, &ap);
            float *got = from_gpu(dout, nq);
            double e = abs_err(got, ref, nq);
            CHECK_MSG(e <= tol, "attention h=%d kv=%d hd=%d %s lens %d/%d step %d layer %d: %g",
                      n_head, n_head_kv, hd, dtype_name(kv_type), len0, len1, step, layer, e);
            free(got);
        }
        free(q), free(k), free(v), free(ref);
        gpu->ops->free(gpu, dq), gpu->ops->free(gpu, dk), gpu->ops->free(gpu, dv);
        gpu->ops->free(gpu, dout);
        tbatch_free(&t);
    }
}

static void test_attention(void)
{
    make_tables();
    /* tiled prefill kernel (head_dim 32/64/128, F16), then flash-decoding with 3 splits */
    attention_case(8, 2, 64, CND_DTYPE_F16, 40, 300, 3e-3);
    attention_case(8, 8, 128, CND_DTYPE_F16, 5, 70, 3e-3);
    attention_case(7, 1, 32, CND_DTYPE_F16, 33, 20, 3e-3);
    /* flash-decoding kernel for every row: odd head_dim, F32 cache */
    attention_case(4, 2, 48, CND_DTYPE_F16, 40, 150, 3e-3);
    attention_case(4, 4, 8, CND_DTYPE_F32, 17, 260, 1e-4);
}

int main(void)
{
    if (backend_cuda_device_count() == 0) {
        printf("no CUDA device visible (or built without CUDA): skipped\n");
        return TEST_SKIP;
    }
    char err[CND_ERR_LEN];
    struct backend_cpu_params cp = {.n_threads = 0};
    cpu = backend_cpu_create(&cp, err);
    struct backend_cuda_params gp = {.device = 0};
    gpu = backend_cuda_create(&gp, err);
    if (!gpu) {
        fprintf(stderr, "cuda backend: %s\n", err);
        return 1;
    }
    RUN(test_get_rows);
    RUN(test_elementwise);
    RUN(test_matmul);
    RUN(test_rope);
    RUN(test_attention);
    backend_destroy(gpu);
    backend_destroy(cpu);
    return test_summary();
}
