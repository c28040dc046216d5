/* backend_cpu.c: the CPU implementation of the backend vtable.
 *
 * Memory is plain host memory; weights are used in place from the model's mmap. Every op is
 * split across the thread pool. Matrix multiplies follow llama.cpp's scheme: the activation rows
 * are quantized once to the weight type's vec_dot type, then each output element is one
 * vec_dot of a weight row with an activation row, computed in 4x4 tiles (quant.h guarantees a
 * tile gives the bit-identical result of the single dot, so a row's logits never depend on the
 * rest of the batch). Attention mirrors llama.cpp's non-flash path with an F16 cache: q and the
 * softmax weights are rounded to F16 before their products with K and V. */
#include "cinder/backend.h"
#include "cinder/forward.h"
#include "cinder/fp16.h"
#include "cinder/log.h"
#include "cinder/model.h"
#include "cinder/gguf.h"
#include "cinder/quant.h"
#include "cinder/quant_x16.h"
#include "cinder/status.h"
#include "cinder/threadpool.h"
#include "avx512_reduce.h"
#include "cinder/xalloc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* Below this many multiply-adds an op runs on one thread: the hand-off costs more. */
#define CPU_MIN_WORK_PER_THREAD 32768

/* A weight matrix repacked into the x16 layout (quant_x16.h): t has the host tensor's shape
 * and dtype with data pointing at the packed copy. */
struct cpu_packed {
    const struct tensor *host;
    struct tensor t;
};

struct backend_cpu {
    struct backend base;
    struct threadpool *pool;
    int n_threads;
    int n_active;
    enum quant_simd simd;
    /* activation quantization scratch (+ the x16 kernels' per-column side data) */
    uint8_t *act;
    size_t act_cap;
    int32_t *aux;
    size_t aux_cap;
    /* repacked weights, and an open-addressing map host tensor -> index (-1 empty) */
    struct cpu_packed *packed;
    int n_packed;
    void *packed_arena; /* one allocation holding every packed matrix */
    int *packed_map;
    int packed_map_size;
    /* KV cache */
    struct kv_cache_params kv;
    uint8_t *kv_mem;
    size_t kv_bytes;
    /* K and V of one layer, each n_slots * kv_dim elements, head-major: KV head h's row of slot
     * s at element (h * kv_slots + s) * head_dim, so one head's keys of a block are one
     * contiguous run (2 KiB for 16 x 64 F16) that the hardware prefetcher streams, where a
     * slot-major row would leave them 1 KiB apart */
    size_t kv_layer_bytes;
    size_t kv_slots;
    size_t kv_elem;
    /* current batch */
    const struct forward_batch *batch;
    /* per-thread attention scratch */
    float *scores;
    size_t scores_per_thread;
    /* rope: [n_tokens][n_rot] cos/sin of the current batch's positions, for rope_key */
    float *rope_tab;
    size_t rope_cap;
    bool rope_valid;
    struct rope_params rope_key;
};

static struct backend_cpu *cpu(struct backend *be)
{
    return (struct backend_cpu *)be;
}

static int cpu_threads_for(struct backend_cpu *c, double work)
{
    int n = (int)(work / CPU_MIN_WORK_PER_THREAD);
    if (n < 1)
        n = 1;
    return n < c->n_active ? n : c->n_active;
}

/* Split [0, n) into n_threads contiguous ranges aligned to `align`. */
static void split_range(int64_t n, int i, int n_threads, int64_t align, int64_t *lo, int64_t *hi)
{
    int64_t n_units = (n + align - 1) / align;
    int64_t per = n_units / n_threads, rem = n_units % n_threads;
    int64_t a = i * per + (i < rem ? i : rem);
    int64_t b = a + per + (i < rem ? 1 : 0);
    *lo = CND_MIN(a * align, n);
    *hi = CND_MIN(b * align, n);
}

/* ---- memory ---- */

static void *cpu_alloc(struct backend *be, size_t bytes)
{
    CND_UNUSED(be);
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0)
        return NULL;
    return p;
}

static void cpu_free(struct backend *be, void *p)
{
    CND_UNUSED(be);
    free(p);
}

static int cpu_copy(struct backend *be, void *dst, const void *src, size_t bytes)
{
    CND_UNUSED(be);
    if (bytes)
        memmove(dst, src, bytes);
    return 0;
}

static int cpu_sync(struct backend *be)
{
    CND_UNUSED(be);
    return 0;
}

/* ---- weights ---- */

static void cpu_packed_free(struct backend_cpu *c)
{
    free(c->packed_arena);
    c->packed_arena = NULL;
    free(c->packed);
    free(c->packed_map);
    c->packed = NULL;
    c->packed_map = NULL;
    c->n_packed = c->packed_map_size = 0;
}

static unsigned packed_hash(const struct tensor *t, int size)
{
    return (unsigned)(((uintptr_t)t >> 3) * 0x9E3779B97F4A7C15ull >> 40) & (unsigned)(size - 1);
}

struct pack_task {
    const struct tensor *w;
    void *dst;
};

static void pack_chunk(void *p, int64_t chunk, int i_thread)
{
    struct pack_task *t = p;
    CND_UNUSED(i_thread);
    quant_x16_pack(t->w->dtype, t->w->ne[0], t->w->ne[1], t->w->data, t->w->nb[1], chunk, chunk + 1,
                   t->dst);
}

/* Give the pages of a file-mapped tensor back (they are re-read from the file if touched
 * again), so resident memory holds the packed copy, not both. */
static void drop_mapped_pages(const void *data, size_t bytes)
{
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE),
                    lo = ((uintptr_t)data + page - 1) & ~(page - 1),
                    hi = ((uintptr_t)data + bytes) & ~(page - 1);
    if (hi > lo)
        madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

/* Repack the matrices the x16 kernels handle (AVX-512 VNNI CPUs; CINDER_SIMD below that or
 * CINDER_REPACK=0 keeps the plain layout). The token embedding stays as it is (rows are looked
 * up, not multiplied), and so does a tied output matrix. */
static int cpu_load_model(struct backend *be, const struct model *m, char *err)
{
    struct backend_cpu *c = cpu(be);
    CND_UNUSED(err);
    cpu_packed_free(c);
    const char *env = getenv("CINDER_REPACK");
    if (c->simd < QUANT_SIMD_AVX512_VNNI || (env && strcmp(env, "0") == 0))
        return 0;
    const int per_layer = 7, n_max = m->hp.n_layer * per_layer + 1;
    c->packed = xcalloc((size_t)n_max, sizeof(*c->packed));
    const bool mapped = m->gguf && gguf_is_mapped(m->gguf);
    /* pass 1: which matrices, and where each goes in the arena */
    size_t total = 0;
    for (int i = 0; i < n_max; i++) {
        const struct tensor *w;
        if (i == n_max - 1)
            w = m->output.data != m->tok_embd.data ? &m->output : NULL;
        else {
            const struct model_layer *L = &m->layers[i / per_layer];
            const struct tensor *lw[] = {&L->wq,       &L->wk,     &L->wv,      &L->wo,
                                         &L->ffn_gate, &L->ffn_up, &L->ffn_down};
            w = lw[i % per_layer];
        }
        if (!w || !w->data || !quant_x16_supported(w->dtype) || w->n_dims > 2 ||
            w->ne[0] % dtype_block_size(w->dtype) != 0)
            continue;
        struct cpu_packed *pk = &c->packed[c->n_packed++];
        pk->host = w;
        pk->t = *w;
        pk->t.data = (void *)(uintptr_t)total; /* offset until the arena exists */
        total += (quant_x16_size(w->dtype, w->ne[0], w->ne[1]) + 4095) & ~(size_t)4095;
    }
    /* One 2 MiB-aligned arena, in transparent huge pages where the kernel allows: with one
     * allocation per matrix, those under 2 MiB (Q/K/V/O at dim 1024) and the tails of the others
     * stayed in 4 KiB pages (measured: decode speed the same either way, within this host's
     * noise; one allocation is simpler to own) */
    if (total && posix_memalign(&c->packed_arena, 2u << 20, total) != 0) {
        log_warn("cpu: out of memory repacking weights (%.1f MiB); using the plain layout",
                 (double)total / (1024.0 * 1024.0));
        c->packed_arena = NULL;
        c->n_packed = 0;
    }
#ifdef MADV_HUGEPAGE
    if (c->packed_arena)
        madvise(c->packed_arena, total, MADV_HUGEPAGE);
#endif
    /* pass 2: pack, and let the file's pages of each source matrix go */
    for (int i = 0; i < c->n_packed; i++) {
        struct cpu_packed *pk = &c->packed[i];
        const struct tensor *w = pk->host;
        pk->t.data = (uint8_t *)c->packed_arena + (uintptr_t)pk->t.data;
        struct pack_task t = {w, pk->t.data};
        threadpool_run_chunks(c->pool, c->n_threads, (w->ne[1] + 15) / 16, pack_chunk, &t);
        if (mapped)
            drop_mapped_pages(w->data, (size_t)w->ne[1] * w->nb[1]);
    }
    int size = 16;
    while (size < 2 * c->n_packed)
        size *= 2;
    c->packed_map_size = size;
    c->packed_map = xmalloc((size_t)size * sizeof(int));
    for (int i = 0; i < size; i++)
        c->packed_map[i] = -1;
    for (int i = 0; i < c->n_packed; i++) {
        unsigned h = packed_hash(c->packed[i].host, size);
        while (c->packed_map[h] >= 0)
            h = (h + 1) & (unsigned)(size - 1);
        c->packed_map[h] = i;
    }
    if (c->n_packed)
        log_info("cpu: %d weight matrices repacked for the AVX-512 VNNI kernels (%.1f MiB)",
                 c->n_packed, (double)total / (1024.0 * 1024.0));
    return 0;
}

static const struct tensor *cpu_weight(struct backend *be, const struct tensor *host)
{
    struct backend_cpu *c = cpu(be);
    if (c->n_packed) {
        unsigned h = packed_hash(host, c->packed_map_size);
        for (int i; (i = c->packed_map[h]) >= 0; h = (h + 1) & (unsigned)(c->packed_map_size - 1))
            if (c->packed[i].host == host)
                return &c->packed[i].t;
    }
    return host;
}

static bool cpu_is_packed(const struct backend_cpu *c, const struct tensor *w)
{
    return c->n_packed && (const void *)w >= (const void *)c->packed &&
           (const void *)w < (const void *)(c->packed + c->n_packed);
}

/* The pool is mapped anonymously rather than malloc'd and cleared: the kernel hands out zeroed
 * pages only when a block is first written, so a pool sized generously from kv_cache_memory
 * costs no start-up time and no resident memory until it is used. */
static void cpu_kv_unmap(struct backend_cpu *c)
{
    if (c->kv_mem)
        munmap(c->kv_mem, c->kv_bytes);
    c->kv_mem = NULL;
    c->kv_bytes = 0;
}

static int cpu_kv_init(struct backend *be, const struct kv_cache_params *p, char *err)
{
    struct backend_cpu *c = cpu(be);
    if (p->dtype != CND_DTYPE_F16 && p->dtype != CND_DTYPE_F32) {
        err_set(err, "KV cache type %s is not supported (f16, f32)", dtype_name(p->dtype));
        return CND_EINVAL;
    }
    cpu_kv_unmap(c);
    c->kv = *p;
    c->kv_elem = p->dtype == CND_DTYPE_F16 ? 2 : 4;
    size_t n_slots = (size_t)p->n_blocks * (size_t)p->block_size;
    size_t kv_dim = (size_t)p->n_head_kv * (size_t)p->head_dim;
    c->kv_layer_bytes = n_slots * kv_dim * c->kv_elem;
    c->kv_slots = n_slots;
    size_t total = c->kv_layer_bytes * 2 * (size_t)p->n_layer;
    void *mem = total ? mmap(NULL, total, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
                      : MAP_FAILED;
    if (mem == MAP_FAILED) {
        err_set(err, "cannot allocate %.1f MiB for the KV cache", (double)total / 1048576.0);
        return CND_ENOMEM;
    }
#ifdef MADV_HUGEPAGE
    /* attention reads a short piece of many cache rows spread over every layer's K and V:
     * with 4 KiB pages nearly every block costs a TLB miss */
    if (total)
        madvise(mem, total, MADV_HUGEPAGE);
#endif
    c->kv_mem = mem;
    c->kv_bytes = total;
    return 0;
}

static int cpu_begin_batch(struct backend *be, const struct forward_batch *b)
{
    struct backend_cpu *c = cpu(be);
    c->batch = b;
    c->rope_valid = false; /* new positions */
    int32_t max_pos = 0;
    for (int32_t i = 0; i < b->n_tokens; i++)
        max_pos = CND_MAX(max_pos, b->positions[i]);
    size_t need = (size_t)max_pos + 1;
    if (need > c->scores_per_thread) {
        free(c->scores);
        c->scores_per_thread = need + 256;
        c->scores = xmalloc(c->scores_per_thread * sizeof(float) * (size_t)c->n_threads);
    }
    return 0;
}

/* ---- simple elementwise ops ---- */

struct rows_task {
    struct backend_cpu *c;
    const struct tensor *w;
    const int32_t *ids;
    int32_t n;
    float *out;
};

static void get_rows_task(void *p, int ith, int nth)
{
    struct rows_task *t = p;
    const struct quant_kernels *k = quant_get_kernels(t->w->dtype, t->c->simd);
    int64_t lo, hi;
    split_range(t->n, ith, nth, 1, &lo, &hi);
    int64_t d = t->w->ne[0];
    for (int64_t i = lo; i < hi; i++) {
        const uint8_t *row = (const uint8_t *)t->w->data + (size_t)t->ids[i] * t->w->nb[1];
        k->dequantize(row, t->out + i * d, d);
    }
}

static void cpu_get_rows(struct backend *be, const struct tensor *w, const int32_t *ids, int32_t n,
                         float *out)
{
    struct backend_cpu *c = cpu(be);
    struct rows_task t = {c, w, ids, n, out};
    threadpool_run(c->pool, cpu_threads_for(c, (double)n * (double)w->ne[0] * 4), get_rows_task,
                   &t);
}

/* Elementwise ops run on one thread below this many elements (a hand-off costs ~1-5 us). */
#define CPU_MIN_ELEMS_PER_THREAD 65536

static int cpu_threads_elems(struct backend_cpu *c, int64_t n)
{
    int nt = (int)(n / CPU_MIN_ELEMS_PER_THREAD);
    if (nt < 1)
        nt = 1;
    return nt < c->n_active ? nt : c->n_active;
}

struct rmsnorm_task {
    float *out;
    const float *x, *w;
    int32_t n_rows, n_cols;
    float eps;
};

static void rmsnorm_rows(float *out, const float *x, const float *wd, int32_t r0, int32_t r1,
                         int32_t n_cols, float eps)
{
    for (int32_t r = r0; r < r1; r++) {
        const float *xr = x + (size_t)r * n_cols;
        float *yr = out + (size_t)r * n_cols;
        double sum = 0.0;
        for (int32_t i = 0; i < n_cols; i++)
            sum += (double)(xr[i] * xr[i]);
        const float mean = (float)(sum / n_cols);
        const float scale = 1.0f / sqrtf(mean + eps);
        for (int32_t i = 0; i < n_cols; i++)
            yr[i] = (xr[i] * scale) * wd[i];
    }
}

static void rmsnorm_task(void *p, int ith, int nth)
{
    struct rmsnorm_task *t = p;
    int64_t lo, hi;
    split_range(t->n_rows, ith, nth, 1, &lo, &hi);
    rmsnorm_rows(t->out, t->x, t->w, (int32_t)lo, (int32_t)hi, t->n_cols, t->eps);
}

static void cpu_rmsnorm(struct backend *be, float *out, const float *x, const struct tensor *w,
                        int32_t n_rows, int32_t n_cols, float eps)
{
    struct backend_cpu *c = cpu(be);
    struct rmsnorm_task t = {out, x, w->data, n_rows, n_cols, eps};
    int nt = cpu_threads_elems(c, (int64_t)n_rows * n_cols);
    if (nt > n_rows)
        nt = n_rows;
    if (nt <= 1)
        rmsnorm_rows(out, x, w->data, 0, n_rows, n_cols, eps);
    else
        threadpool_run(c->pool, nt, rmsnorm_task, &t);
}

#if defined(__x86_64__)
#define TGT512 __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,f16c,fma")))
/* e^x as ggml's ggml_v_expf (AVX-512, at the reference commit), operation for operation, so
 * softmax and SiLU give llama.cpp's bits: n = round(x log2 e) by the 1.5 * 2^23 trick,
 * b = x - n ln2 in two parts, a degree-5 polynomial in b evaluated as ggml does (Estrin-like,
 * with fused multiply-adds), scaled by 2^n with vscalefps; |n| > 192 gives 0 or inf. */
TGT512 static inline __m512 expf_ggml(__m512 x)
{
    const __m512 r = _mm512_set1_ps(0x1.8p23f);
    const __m512 z = _mm512_fmadd_ps(x, _mm512_set1_ps(0x1.715476p+0f), r);
    const __m512 n = _mm512_sub_ps(z, r);
    const __m512 b = _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.7f7d1cp-20f),
                                      _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.62e4p-1f), x));
    const __mmask16 d = _mm512_cmp_ps_mask(_mm512_abs_ps(n), _mm512_set1_ps(192), _CMP_GT_OQ);
    const __m512 u = _mm512_mul_ps(b, b);
    const __m512 p45 =
        _mm512_fmadd_ps(_mm512_set1_ps(0x1.0e4020p-7f), b, _mm512_set1_ps(0x1.573e2ep-5f));
    const __m512 p23 =
        _mm512_fmadd_ps(_mm512_set1_ps(0x1.555e66p-3f), b, _mm512_set1_ps(0x1.fffdb6p-2f));
    const __m512 p01 = _mm512_fmadd_ps(_mm512_set1_ps(0x1.ffffecp-1f), b, _mm512_set1_ps(1.0f));
    const __m512 j = _mm512_fmadd_ps(_mm512_fmadd_ps(p45, u, p23), u, p01);
    const __m512 res = _mm512_scalef_ps(j, n);
    if (_mm512_kortestz(d, d))
        return res;
    const __m512 zero = _mm512_setzero_ps();
    const __m512 alt = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(n, zero, _CMP_LE_OQ),
                                            _mm512_set1_ps(INFINITY), zero);
    return _mm512_mask_blend_ps(d, res, alt);
}

/* one row of silu(gate) * up as ggml_vec_silu_f32 then ggml_mul: 16-wide blocks with the
 * vector exp, the n % 16 left with the C library's expf (x / (1 + expf(-x))) */
TGT512 static void silu_mul_row_avx512(float *out, const float *gate, const float *up, int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 g = _mm512_loadu_ps(gate + i);
        const __m512 e = expf_ggml(_mm512_sub_ps(_mm512_setzero_ps(), g));
        const __m512 s = _mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
        _mm512_storeu_ps(out + i, _mm512_mul_ps(s, _mm512_loadu_ps(up + i)));
    }
    for (; i < n; i++) {
        const float g = gate[i];
        out[i] = (g / (1.0f + expf(-g))) * up[i];
    }
}
#endif

static bool cpu_has_avx512(const struct backend_cpu *c)
{
    return c->simd >= QUANT_SIMD_AVX512;
}

/* rows [r0, r1) of silu(gate) * up */
static void silu_mul_rows(const struct backend_cpu *c, float *out, const float *gate,
                          const float *up, int64_t r0, int64_t r1, int64_t n_cols)
{
    for (int64_t r = r0; r < r1; r++) {
        const size_t o = (size_t)r * (size_t)n_cols;
#if defined(__x86_64__)
        if (cpu_has_avx512(c)) {
            silu_mul_row_avx512(out + o, gate + o, up + o, n_cols);
            continue;
        }
#else
        CND_UNUSED(c);
#endif
        for (int64_t i = 0; i < n_cols; i++) {
            const float g = gate[o + i];
            out[o + i] = (g / (1.0f + expf(-g))) * up[o + i];
        }
    }
}

struct ew_task {
    struct backend_cpu *c;
    float *out;
    const float *a, *b;
    int64_t n, n_cols;
};

static void silu_mul_task(void *p, int ith, int nth)
{
    struct ew_task *t = p;
    int64_t lo, hi;
    split_range(t->n, ith, nth, 1, &lo, &hi);
    silu_mul_rows(t->c, t->out, t->a, t->b, lo, hi, t->n_cols);
}

static void cpu_silu_mul(struct backend *be, float *out, const float *gate, const float *up,
                         int64_t n_rows, int64_t n_cols)
{
    struct backend_cpu *c = cpu(be);
    struct ew_task t = {c, out, gate, up, n_rows, n_cols};
    int nt = cpu_threads_elems(c, n_rows * n_cols * 4);
    if (nt > n_rows)
        nt = (int)n_rows;
    if (nt <= 1)
        silu_mul_rows(c, out, gate, up, 0, n_rows, n_cols);
    else
        threadpool_run(c->pool, nt, silu_mul_task, &t);
}

static void add_range(float *out, const float *a, const float *b, int64_t lo, int64_t hi)
{
    for (int64_t i = lo; i < hi; i++)
        out[i] = a[i] + b[i];
}

static void add_task(void *p, int ith, int nth)
{
    struct ew_task *t = p;
    int64_t lo, hi;
    split_range(t->n, ith, nth, 16, &lo, &hi);
    add_range(t->out, t->a, t->b, lo, hi);
}

static void cpu_add(struct backend *be, float *out, const float *a, const float *b, int64_t n)
{
    struct backend_cpu *c = cpu(be);
    struct ew_task t = {c, out, a, b, n, 0};
    int nt = cpu_threads_elems(c, n);
    if (nt <= 1)
        add_range(out, a, b, 0, n);
    else
        threadpool_run(c->pool, nt, add_task, &t);
}

static void cpu_gather_rows(struct backend *be, float *out, const float *x, const int32_t *rows,
                            int32_t n, int32_t n_cols)
{
    CND_UNUSED(be);
    for (int32_t i = 0; i < n; i++)
        memmove(out + (size_t)i * n_cols, x + (size_t)rows[i] * n_cols,
                (size_t)n_cols * sizeof(float));
}

/* ---- RoPE (llama.cpp's rope cache: theta multiplied by theta_scale pair by pair, in float;
 * the rotation with ggml's expressions as GCC contracts them with -ffp-contract=fast, its
 * default for ggml's gnu11 C: measured, every F16/F32 prompt row of the references matches
 * bit for bit only so) ---- */

struct rope_task {
    struct backend_cpu *c;
    float *x;
    int32_t n_rows, n_heads;
    const struct rope_params *rp;
    bool fill;
};

/* The rotation of one row's heads by its cos/sin table cs. Both products are fused as the
 * compiler of the reference build contracted ggml's x0*cos - x1*sin (the first product fused,
 * the second rounded): llama.cpp's bits need exactly this. */
#define ROPE_ROTATE_BODY                                                                           \
    for (int32_t h = 0; h < n_heads; h++) {                                                        \
        float *v = x + (size_t)h * hd;                                                             \
        const int32_t off = neox ? n_rot / 2 : 1;                                                  \
        for (int32_t i0 = 0; i0 < n_rot; i0 += 2) {                                                \
            const int32_t ia = neox ? i0 / 2 : i0;                                                 \
            const float x0 = v[ia], x1 = v[ia + off];                                              \
            v[ia] = fmaf(x0, cs[i0], -(x1 * cs[i0 + 1]));                                          \
            v[ia + off] = fmaf(x0, cs[i0 + 1], x1 * cs[i0]);                                       \
        }                                                                                          \
    }
static void rope_rotate(float *x, const float *cs, int32_t n_heads, int32_t hd, int32_t n_rot,
                        bool neox)
{
    ROPE_ROTATE_BODY
}
#if defined(__x86_64__)
/* the same with fmaf as one instruction instead of a libm call */
__attribute__((target("fma"))) static void
rope_rotate_fma(float *x, const float *cs, int32_t n_heads, int32_t hd, int32_t n_rot, bool neox)
{
    ROPE_ROTATE_BODY
}
#endif
#undef ROPE_ROTATE_BODY

/* rows [r0, r1): fill their cos/sin tables first when asked (the first rope call of a batch;
 * every later one, q and k of every layer, reuses them) */
static void rope_rows(struct backend_cpu *c, float *x, int32_t r0, int32_t r1, int32_t n_heads,
                      const struct rope_params *rp, bool fill)
{
    const int32_t hd = rp->head_dim, n_rot = rp->n_rot;
    if (fill) {
        const float theta_scale = powf(rp->freq_base, -2.0f / (float)n_rot);
        for (int32_t r = r0; r < r1; r++) {
            float *cs = c->rope_tab + (size_t)r * (size_t)n_rot;
            const int32_t pos = c->batch->positions[r];
            if (r > r0 && pos == c->batch->positions[r - 1]) {
                memcpy(cs, cs - n_rot, (size_t)n_rot * sizeof(float));
                continue;
            }
            float theta = (float)pos;
            for (int32_t i0 = 0; i0 < n_rot; i0 += 2) {
                const float ff = rp->freq_factors ? rp->freq_factors[i0 / 2] : 1.0f;
                const float th = rp->freq_scale * (theta / ff);
                cs[i0] = cosf(th);
                cs[i0 + 1] = sinf(th);
                theta *= theta_scale;
            }
        }
    }
    for (int32_t r = r0; r < r1; r++) {
        float *xr = x + (size_t)r * (size_t)n_heads * (size_t)hd;
        const float *cs = c->rope_tab + (size_t)r * (size_t)n_rot;
#if defined(__x86_64__)
        if (c->simd >= QUANT_SIMD_AVX2) {
            rope_rotate_fma(xr, cs, n_heads, hd, n_rot, rp->neox);
            continue;
        }
#endif
        rope_rotate(xr, cs, n_heads, hd, n_rot, rp->neox);
    }
}

static void rope_task(void *p, int ith, int nth)
{
    struct rope_task *t = p;
    int64_t lo, hi;
    split_range(t->n_rows, ith, nth, 1, &lo, &hi);
    rope_rows(t->c, t->x, (int32_t)lo, (int32_t)hi, t->n_heads, t->rp, t->fill);
}

static bool rope_same_table(const struct rope_params *a, const struct rope_params *b)
{
    return a->n_rot == b->n_rot && a->freq_base == b->freq_base && a->freq_scale == b->freq_scale &&
           a->freq_factors == b->freq_factors;
}

static void cpu_rope(struct backend *be, float *x, int32_t n_rows, int32_t n_heads,
                     const struct rope_params *rp)
{
    struct backend_cpu *c = cpu(be);
    const bool fill = !c->rope_valid || !rope_same_table(&c->rope_key, rp);
    if (fill) {
        xgrow((void **)&c->rope_tab, &c->rope_cap, (size_t)n_rows * (size_t)rp->n_rot,
              sizeof(float));
        c->rope_key = *rp;
    }
    /* a row costs n_rot sincos (~40 ns each) when filling, plus the rotation */
    int nt =
        cpu_threads_elems(c, (int64_t)n_rows * ((fill ? rp->n_rot * 16 : 0) + n_heads * rp->n_rot));
    if (nt > n_rows)
        nt = n_rows;
    if (nt <= 1) {
        rope_rows(c, x, 0, n_rows, n_heads, rp, fill);
    } else {
        struct rope_task t = {c, x, n_rows, n_heads, rp, fill};
        threadpool_run(c->pool, nt, rope_task, &t);
    }
    c->rope_valid = true;
}

/* ---- matmul ---- */

#define MM_MAX_BOUNDS 24 /* decode chunks of one product at most */

struct matmul_task {
    struct backend_cpu *c;
    const struct quant_kernels *k;
    const struct tensor *w;
    const float *x;
    int32_t n;
    float *out;
    size_t act_row;
    const float *bias;
    int64_t chunk_rows;
    /* decode: chunk i is rows [bound[i], bound[i + 1]) (n_bounds > 0), else chunk_rows each */
    int n_bounds;
    int64_t bound[MM_MAX_BOUNDS + 1];
    bool x16;               /* w is repacked (quant_x16.h) */
    const uint8_t *prefill; /* [n] row roles, or NULL where the weight has one order only */
};

/* out[col][r0..r1) += bias[r0..r1) for every column */
static void matmul_add_bias(const struct matmul_task *t, int64_t r0, int64_t r1)
{
    const int64_t n_out = t->w->ne[1];
    if (t->bias)
        for (int32_t col = 0; col < t->n; col++)
            for (int64_t i = r0; i < r1; i++)
                t->out[(size_t)col * (size_t)n_out + (size_t)i] += t->bias[i];
}

/* rows [r0, r1) of the output for every column */
static void matmul_rows(struct matmul_task *t, int64_t r0, int64_t r1)
{
    const int64_t n_in = t->w->ne[0], n_out = t->w->ne[1];
    const size_t w_row = t->w->nb[1];
    const uint8_t *wd = t->w->data;
    const uint8_t *act = t->c->act;
    if (t->prefill) {
        /* runs of rows with one role, each in its own order (see forward_batch.prefill) */
        for (int32_t c0 = 0, c1; c0 < t->n; c0 = c1) {
            for (c1 = c0 + 1; c1 < t->n && t->prefill[c1] == t->prefill[c0]; c1++)
                ;
            const quant_gemm_fn g = t->prefill[c0] ? t->k->gemm_pp : t->k->gemm;
            g(n_in, wd + (size_t)r0 * w_row, w_row, r1 - r0, act + (size_t)c0 * t->act_row,
              t->act_row, c1 - c0, t->out + (size_t)c0 * (size_t)n_out + r0, 1, (size_t)n_out);
        }
    } else if (t->n == 1 && t->k->gemv) {
        t->k->gemv(n_in, wd + (size_t)r0 * w_row, w_row, r1 - r0, act, t->out + r0);
    } else if (t->k->gemm) {
        t->k->gemm(n_in, wd + (size_t)r0 * w_row, w_row, r1 - r0, act, t->act_row, t->n,
                   t->out + r0, 1, (size_t)n_out);
    } else {
        for (int64_t r = r0; r < r1; r += QUANT_TILE_MAX) {
            int nr = (int)CND_MIN(QUANT_TILE_MAX, r1 - r);
            for (int32_t col = 0; col < t->n; col += QUANT_TILE_MAX) {
                int nc = (int)CND_MIN(QUANT_TILE_MAX, t->n - col);
                float tile[QUANT_TILE_MAX * QUANT_TILE_MAX];
                t->k->vec_dot_tile(n_in, wd + (size_t)r * w_row, w_row, nr,
                                   act + (size_t)col * t->act_row, t->act_row, nc, tile,
                                   QUANT_TILE_MAX);
                /* the tile is [weight row][token]; out is [token][output row] */
                for (int cc = 0; cc < nc; cc++)
                    for (int rr = 0; rr < nr; rr++)
                        t->out[(size_t)(col + cc) * (size_t)n_out + (size_t)(r + rr)] =
                            tile[rr * QUANT_TILE_MAX + cc];
            }
        }
    }
    matmul_add_bias(t, r0, r1);
}

#define MM_QUANT_ROWS 8 /* activation rows per quantization chunk */

static void matmul_quantize_rows(struct matmul_task *t, int64_t lo, int64_t hi)
{
    const int64_t n_in = t->w->ne[0];
    for (int64_t i = lo; i < hi; i++)
        t->k->quantize_act(t->x + i * n_in, t->c->act + (size_t)i * t->act_row, n_in);
    if (t->x16)
        quant_x16_prepare(t->w->dtype, n_in, t->c->act, t->act_row, lo, hi, t->c->aux);
}

static void matmul_quantize_chunk(void *p, int64_t chunk, int i_thread)
{
    struct matmul_task *t = p;
    CND_UNUSED(i_thread);
    const int64_t lo = chunk * MM_QUANT_ROWS;
    matmul_quantize_rows(t, lo, CND_MIN((int64_t)t->n, lo + MM_QUANT_ROWS));
}

/* rows [*r0, *r1) of chunk `chunk`: whole 16-row groups (the x16 layout needs them) */
static void matmul_chunk_rows(const struct matmul_task *t, int64_t chunk, int64_t *r0, int64_t *r1)
{
    if (t->n_bounds > 0) {
        *r0 = t->bound[chunk], *r1 = t->bound[chunk + 1];
        return;
    }
    *r0 = chunk * t->chunk_rows;
    *r1 = CND_MIN(t->w->ne[1], *r0 + t->chunk_rows);
}

static void matmul_x16_chunk(void *p, int64_t chunk, int i_thread)
{
    struct matmul_task *t = p;
    CND_UNUSED(i_thread);
    const int64_t n_out = t->w->ne[1];
    int64_t r0, r1;
    matmul_chunk_rows(t, chunk, &r0, &r1);
    quant_x16_gemm(t->w->dtype, t->w->ne[0], n_out, t->w->data, r0 / 16, (r1 + 15) / 16, t->c->act,
                   t->act_row, t->c->aux, t->n, t->out, (size_t)n_out);
    matmul_add_bias(t, r0, r1);
}

static void matmul_chunk(void *p, int64_t chunk, int i_thread)
{
    struct matmul_task *t = p;
    CND_UNUSED(i_thread);
    int64_t r0, r1;
    matmul_chunk_rows(t, chunk, &r0, &r1);
    matmul_rows(t, r0, r1);
}

/* Fill t for out = x * W^T (+ bias) and make room for its prepared activations. */
static void matmul_task_init(struct matmul_task *t, struct backend_cpu *c, float *out,
                             const struct tensor *w, const float *x, int32_t n,
                             const struct tensor *bias, const uint8_t *prefill)
{
    const struct quant_kernels *k = quant_get_kernels(w->dtype, c->simd);
    CND_ASSERT(k != NULL);
    const int64_t n_in = w->ne[0], n_out = w->ne[1];
    *t = (struct matmul_task){
        .c = c,
        .k = k,
        .w = w,
        .x = x,
        .n = n,
        .out = out,
        .act_row = dtype_row_size(k->vec_dot_type, n_in),
        .bias = bias ? bias->data : NULL,
        .x16 = cpu_is_packed(c, w),
    };
    size_t need = t->act_row * (size_t)n + 64; /* + slack: kernels may read a vector past a row */
    if (need > c->act_cap) {
        free(c->act);
        c->act = cpu_alloc(&c->base, need);
        CND_ASSERT(c->act != NULL);
        c->act_cap = need;
    }
    if (t->x16)
        xgrow((void **)&c->aux, &c->aux_cap, quant_x16_aux_words(w->dtype, n_in) * (size_t)n,
              sizeof(int32_t));
    /* llamafile's sgemm takes a prompt pass's product when k is a multiple of its step and the
     * weight's row count of 4 (tinyBLAS::matmul); otherwise llama.cpp uses vec_dot there too */
    if (prefill && k->gemm_pp && k->gemm && n_in % k->pp_align == 0 && n_out % 4 == 0)
        for (int32_t i = 0; i < n && !t->prefill; i++)
            if (prefill[i])
                t->prefill = prefill;
}

/* Quantize the activations: a few rows by the caller, else in parallel chunks. */
static void matmul_quantize(struct matmul_task *t, int nt)
{
    if (nt > 1 && t->n > MM_QUANT_ROWS)
        threadpool_run_chunks(t->c->pool, nt, (t->n + MM_QUANT_ROWS - 1) / MM_QUANT_ROWS,
                              matmul_quantize_chunk, t);
    else
        matmul_quantize_rows(t, 0, t->n);
}

/* Cut the output rows into chunks (whole 16-row groups) for nt threads; returns their count.
 * Decode (one column over x16 groups or gemv's quarters, each chunk read as 4 streams) wants
 * long streams: uniform chunks of 1/16 per thread measured ~25% slower than 1/4. But with
 * 2 chunks per thread the faster thread waits for the slower one's last chunk (5-7% of an F16
 * decode profile). So decode chunks are guided: each takes 1/(2 nt) of what is left, down to
 * MM_MIN_DECODE_GROUPS groups, and the chunks handed out last are small. Batches take about
 * 8 uniform chunks per thread (finer balance when the machine is shared). */
#define MM_MIN_DECODE_GROUPS 4
static int64_t matmul_plan(struct matmul_task *t, int nt)
{
    const int64_t n_out = t->w->ne[1], ng = (n_out + 15) / 16;
    const bool decode = t->n == 1 && (t->x16 || t->k->gemv);
    t->n_bounds = 0;
    if (decode && nt > 1) {
        int64_t g = 0;
        t->bound[0] = 0;
        while (g < ng) {
            const int64_t left = ng - g;
            int64_t take = CND_MAX((left + 2 * nt - 1) / (2 * nt), (int64_t)MM_MIN_DECODE_GROUPS);
            if (t->n_bounds == MM_MAX_BOUNDS - 1)
                take = left; /* the last chunk there is room for takes the rest */
            g += CND_MIN(take, left);
            t->bound[++t->n_bounds] = CND_MIN(16 * g, n_out);
        }
        CND_ASSERT(t->bound[t->n_bounds] == n_out && t->n_bounds <= MM_MAX_BOUNDS);
        return t->n_bounds;
    }
    const int cpt = decode ? 2 : 8;
    const int64_t cg = (ng + cpt * nt - 1) / (cpt * nt);
    t->chunk_rows = 16 * (cg < 1 ? 1 : cg);
    return (n_out + t->chunk_rows - 1) / t->chunk_rows;
}

static void matmul_task_chunk(void *p, int64_t chunk, int i_thread)
{
    struct matmul_task *t = p;
    if (t->x16)
        matmul_x16_chunk(t, chunk, i_thread);
    else
        matmul_chunk(t, chunk, i_thread);
}

/* Row chunks are handed out dynamically: on a shared machine one core is often slower, and a
 * static split would make the other wait. */
static void cpu_matmul(struct backend *be, float *out, const struct tensor *w, const float *x,
                       int32_t n, const struct tensor *bias, const uint8_t *prefill)
{
    struct backend_cpu *c = cpu(be);
    struct matmul_task t;
    matmul_task_init(&t, c, out, w, x, n, bias, prefill);
    const int nt = cpu_threads_for(c, (double)w->ne[0] * (double)w->ne[1] * (double)n);
    matmul_quantize(&t, nt);
    threadpool_run_chunks(c->pool, nt, matmul_plan(&t, nt), matmul_task_chunk, &t);
}

#define MM_GROUP_MAX 4

struct matmul_group_task {
    int n_mats;
    struct matmul_task t[MM_GROUP_MAX];
    int64_t first[MM_GROUP_MAX + 1]; /* chunk ranges: product i owns [first[i], first[i+1]) */
};

static void matmul_group_chunk(void *p, int64_t chunk, int i_thread)
{
    struct matmul_group_task *g = p;
    int i = 0;
    while (chunk >= g->first[i + 1])
        i++;
    matmul_task_chunk(&g->t[i], chunk - g->first[i], i_thread);
}

/* Products of one input with weights of one type and layout (Q, K and V; gate and up): their
 * activations are the same bytes, so they are prepared once, and all their row chunks go out
 * in one job, which saves a hand-off per extra weight (decode: 2 of the 7 per layer gone). */
static void cpu_matmul_group(struct backend *be, int n_mats, float *const *out,
                             const struct tensor *const *w, const float *x, int32_t n,
                             const struct tensor *const *bias, const uint8_t *prefill)
{
    struct backend_cpu *c = cpu(be);
    bool same = n_mats <= MM_GROUP_MAX;
    for (int i = 1; i < n_mats && same; i++)
        same = w[i]->dtype == w[0]->dtype && w[i]->ne[0] == w[0]->ne[0] &&
               cpu_is_packed(c, w[i]) == cpu_is_packed(c, w[0]);
    if (!same) {
        for (int i = 0; i < n_mats; i++)
            cpu_matmul(be, out[i], w[i], x, n, bias[i], prefill);
        return;
    }
    struct matmul_group_task g = {.n_mats = n_mats};
    double work = 0;
    for (int i = 0; i < n_mats; i++) {
        matmul_task_init(&g.t[i], c, out[i], w[i], x, n, bias[i], prefill);
        work += (double)w[i]->ne[0] * (double)w[i]->ne[1] * (double)n;
    }
    const int nt = cpu_threads_for(c, work);
    matmul_quantize(&g.t[0], nt);
    for (int i = 0; i < n_mats; i++)
        g.first[i + 1] = g.first[i] + matmul_plan(&g.t[i], nt);
    threadpool_run_chunks(c->pool, nt, g.first[n_mats], matmul_group_chunk, &g);
}

/* ---- attention ---- */

static inline float kv_get(const struct backend_cpu *c, const uint8_t *base, size_t i)
{
    if (c->kv_elem == 2) {
        uint16_t h;
        memcpy(&h, base + i * 2, 2);
        return fp16_to_fp32(h);
    }
    float f;
    memcpy(&f, base + i * 4, 4);
    return f;
}

static inline float kv_round(const struct backend_cpu *c, float v)
{
    return c->kv_elem == 2 ? fp16_to_fp32(fp32_to_fp16(v)) : v;
}

#if defined(__x86_64__)
/* F16C's conversion rounds to nearest even like fp32_to_fp16: checked equal for every
 * non-NaN float (NaNs differ only in payload) */
__attribute__((target("avx2,f16c"))) static size_t f16_row_f16c(const float *x, uint16_t *y,
                                                                float *back, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h =
            _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        if (y)
            _mm_storeu_si128((__m128i *)(void *)(y + i), h);
        if (back)
            _mm256_storeu_ps(back + i, _mm256_cvtph_ps(h));
    }
    return i;
}
#endif

/* y[i] = x[i] as F16 (y may be NULL) and back[i] = that value widened (back may be NULL) */
static void f16_row(const struct backend_cpu *c, const float *x, uint16_t *y, float *back, size_t n)
{
    size_t i = 0;
#if defined(__x86_64__)
    if (c->simd >= QUANT_SIMD_AVX2)
        i = f16_row_f16c(x, y, back, n);
#else
    CND_UNUSED(c);
#endif
    for (; i < n; i++) {
        const uint16_t h = fp32_to_fp16(x[i]);
        if (y)
            y[i] = h;
        if (back)
            back[i] = fp16_to_fp32(h);
    }
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma,f16c"))) static float dot_f16_avx2(const float *q,
                                                                   const uint16_t *k, int n)
{
    __m256 acc = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 kv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + i)));
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), kv, acc);
    }
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    s = _mm_hadd_ps(s, s);
    s = _mm_hadd_ps(s, s);
    float r = _mm_cvtss_f32(s);
    for (; i < n; i++)
        r += q[i] * fp16_to_fp32(k[i]);
    return r;
}

__attribute__((target("avx2,fma,f16c"))) static void axpy_f16_avx2(float *y, float a,
                                                                   const uint16_t *v, int n)
{
    __m256 av = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 vv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v + i)));
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, vv, _mm256_loadu_ps(y + i)));
    }
    for (; i < n; i++)
        y[i] += a * fp16_to_fp32(v[i]);
}
#endif

#if defined(__x86_64__)
/* the same fold applied lane-wise to 16 rows of n floats: out[d] = avx512_hsum16 of (a[0][d] ..
 * a[15][d]) with the additions in avx512_hsum16's order; a is overwritten */
TGT512 static void fold16_rows(float *a, size_t stride, int32_t n, float *out)
{
    for (int32_t d = 0; d < n; d += 16) {
        const __mmask16 m = n - d >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - d)) - 1);
        __m512 v[16];
        for (int l = 0; l < 16; l++)
            v[l] = _mm512_maskz_loadu_ps(m, a + (size_t)l * stride + d);
        for (int l = 0; l < 8; l++)
            v[l] = _mm512_add_ps(v[l], v[l + 8]);
        for (int l = 0; l < 4; l++)
            v[l] = _mm512_add_ps(v[l], v[l + 4]);
        v[0] = _mm512_add_ps(v[0], v[2]);
        v[1] = _mm512_add_ps(v[1], v[3]);
        _mm512_mask_storeu_ps(out + d, m, _mm512_add_ps(v[0], v[1]));
    }
}

#define ATTN_MAX_HD 256

/* One (row, head) of attention over the F16 cache, as llama.cpp's non-flash graph computes it:
 * kq = mul_mat(K, q) (q rounded to F16), softmax_ext(kq * scale + mask), kqv = mul_mat(V^T,
 * softmax rounded to F16), over n_kv = the used cells padded to 32, the padding masked out
 * (weight 0). Each product in the row's order (forward_batch.prefill): a prompt row's products
 * go through tinyBLAS (one 16-lane accumulator, then the lane fold) where it applies (head_dim
 * % 16 for kq; always for kqv, n_kv being a multiple of 32), else ggml's F16 vec_dot: 64 per
 * step in 4 accumulators, then the n % 64 rest added in double. The softmax sums each 16 exps
 * in float (avx512_hsum16) and those sums in double. */
/* 16 F16 values of a K/V row widened (exact) */
TGT512 static inline __m512 ld16_f16(const uint16_t *p)
{
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)p));
}

/* K.q in ggml's vec_dot order over the first np (a multiple of 64) elements: four 16-lane
 * accumulators, one per slice of each 64-element step, folded as (a0 + a2) + (a1 + a3); the
 * caller reduces the lanes (avx512_hsum16 or avx512_hsum16x16) and adds the tail */
TGT512 static inline __m512 kq_lanes_vd(const uint16_t *kr, const float *qr, int32_t np)
{
    __m512 a[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                   _mm512_setzero_ps()};
    for (int32_t i = 0; i < np; i += 64)
        for (int u = 0; u < 4; u++)
            a[u] =
                _mm512_fmadd_ps(ld16_f16(kr + i + 16 * u), _mm512_loadu_ps(qr + i + 16 * u), a[u]);
    return _mm512_add_ps(_mm512_add_ps(a[0], a[2]), _mm512_add_ps(a[1], a[3]));
}

#define ATTN_PREFETCH_V 64

static inline void attn_prefetch_row(const uint16_t *row, int32_t hd)
{
    for (int32_t o = 0; o < hd * 2; o += 64)
        _mm_prefetch((const char *)row + o, _MM_HINT_T0);
}

TGT512 static void attn_head_ggml(const uint8_t *K, const uint8_t *V, const int32_t *bt, int32_t bs,
                                  size_t row_stride, size_t head_off, const float *qr, int32_t hd,
                                  int32_t pos, float scale, bool pp, float *scores, float *o)
{
    const int32_t n_keys = pos + 1;
    const int32_t n_kv = (n_keys + 31) & ~31;
    /* block_size is a power of two (config check): shift and mask, not a division per key */
    const int bs_shift = __builtin_ctz((unsigned)bs);
    CND_ASSERT((bs & (bs - 1)) == 0);
#define KV_ROW(base, j)                                                                            \
    ((const uint16_t *)(const void *)((base) + (((size_t)bt[(j) >> bs_shift] << bs_shift |         \
                                                 (size_t)((j) & (bs - 1))) *                       \
                                                    row_stride +                                   \
                                                head_off) *                                        \
                                                   2))
    /* kq */
    const bool kq_pp = pp && hd % 16 == 0;
    const int32_t kq_np = kq_pp ? hd : (hd & ~63);
    float max = -INFINITY;
    int32_t jk = 0;
    if (kq_pp || kq_np == hd) {
        /* 16 keys at a time: their 16-lane sums reduced together (avx512_hsum16x16), with the same
         * pairwise adds as the one-key reduction */
        for (; jk + 16 <= n_keys; jk += 16) {
            __m512 v[16];
            /* the next 16 keys are the next block of the table, somewhere else in the pool:
             * the hardware prefetcher cannot guess it, so fetch their rows while these are
             * computed */
            for (int l = 0; l < 16 && jk + 16 + l < n_keys; l++)
                attn_prefetch_row(KV_ROW(K, jk + 16 + l), hd);
            /* 16 keys from a multiple of 16 lie in one block when bs is a multiple of 16 */
            const uint16_t *k16 = bs % 16 == 0 ? KV_ROW(K, jk) : NULL;
#define K16(l) (k16 ? k16 + row_stride * (size_t)(l) : KV_ROW(K, jk + (l)))
            if (kq_pp)
                for (int l = 0; l < 16; l += 4) {
                    /* four keys' chains side by side (one fma chain alone waits on latency) */
                    const uint16_t *kr4[4] = {K16(l), K16(l + 1), K16(l + 2), K16(l + 3)};
                    __m512 a4[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                                    _mm512_setzero_ps()};
                    for (int32_t i = 0; i < hd; i += 16) {
                        const __m512 qv = _mm512_loadu_ps(qr + i);
                        for (int u = 0; u < 4; u++)
                            a4[u] = _mm512_fmadd_ps(ld16_f16(kr4[u] + i), qv, a4[u]);
                    }
                    for (int u = 0; u < 4; u++)
                        v[l + u] = a4[u];
                }
            else
                for (int l = 0; l < 16; l++)
                    v[l] = kq_lanes_vd(K16(l), qr, kq_np);
#undef K16
            /* vd: the float sum converted to double and back is the same float */
            const __m512 sc = _mm512_mul_ps(avx512_hsum16x16(v), _mm512_set1_ps(scale));
            _mm512_storeu_ps(scores + jk, sc);
            const float mx = _mm512_reduce_max_ps(sc);
            max = mx > max ? mx : max;
        }
    }
    if (!kq_pp && kq_np < hd) {
        /* vec_dot's double tail (every element when head_dim < 64, as in tiny models), 16 or 8
         * keys at a time: lane l runs key l's scalar sequence sd += (double)(k_i * q_i), so
         * each score has the bits of the one-key loop below, without its serial chain of
         * double adds per key (that loop was half of a tiny model's step) */
        const int32_t nt = hd - kq_np;
        _Alignas(64) float kf[16 * 64]; /* key l's tail at kf[64 l ..], converted */
        const __m256i stride = _mm256_setr_epi32(0, 64, 128, 192, 256, 320, 384, 448);
        while (jk + 8 <= n_keys) {
            const int ng = jk + 16 <= n_keys ? 2 : 1; /* two groups: two independent chains */
            _Alignas(64) double init[16];
            for (int l = 0; l < 8 * ng; l++) {
                const uint16_t *kr = KV_ROW(K, jk + l);
                /* no vector part (head_dim < 64): the lane sum is +0, as avx512_hsum16 of zeros */
                init[l] = kq_np ? (double)avx512_hsum16(kq_lanes_vd(kr, qr, kq_np)) : 0.0;
                for (int32_t i = 0; i < nt; i += 16) {
                    const __mmask16 m =
                        nt - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (nt - i)) - 1);
                    _mm512_mask_storeu_ps(
                        kf + 64 * l + i, m,
                        _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, kr + kq_np + i)));
                }
            }
            __m512d sd0 = _mm512_load_pd(init),
                    sd1 = ng == 2 ? _mm512_load_pd(init + 8) : _mm512_setzero_pd();
            for (int32_t i = 0; i < nt; i++) {
                const __m256 qi = _mm256_set1_ps(qr[kq_np + i]);
                sd0 = _mm512_add_pd(sd0, _mm512_cvtps_pd(_mm256_mul_ps(
                                             _mm256_i32gather_ps(kf + i, stride, 4), qi)));
                if (ng == 2)
                    sd1 =
                        _mm512_add_pd(sd1, _mm512_cvtps_pd(_mm256_mul_ps(
                                               _mm256_i32gather_ps(kf + 512 + i, stride, 4), qi)));
            }
            for (int g = 0; g < ng; g++) {
                const __m256 s8 =
                    _mm256_mul_ps(_mm512_cvtpd_ps(g ? sd1 : sd0), _mm256_set1_ps(scale));
                _mm256_storeu_ps(scores + jk + 8 * g, s8);
                const float mx = _mm512_mask_reduce_max_ps(0xFF, _mm512_castps256_ps512(s8));
                max = mx > max ? mx : max;
            }
            jk += 8 * ng;
        }
    }
    for (int32_t j = jk; j < n_keys; j++) {
        const uint16_t *kr = KV_ROW(K, j);
        float s;
        if (kq_pp) {
            __m512 acc = _mm512_setzero_ps();
            for (int32_t i = 0; i < hd; i += 16)
                acc = _mm512_fmadd_ps(ld16_f16(kr + i), _mm512_loadu_ps(qr + i), acc);
            s = avx512_hsum16(acc);
        } else {
            double sd = (double)avx512_hsum16(kq_lanes_vd(kr, qr, kq_np));
            for (int32_t i = kq_np; i < hd; i++)
                sd += (double)(fp16_to_fp32(kr[i]) * qr[i]);
            s = (float)sd;
        }
        s *= scale;
        scores[j] = s;
        max = s > max ? s : max;
    }
    /* the V rows the products below start with, fetched while the softmax runs */
    for (int32_t j = 0; j < n_keys && j < ATTN_PREFETCH_V; j++)
        attn_prefetch_row(KV_ROW(V, j), hd);
    /* softmax */
    double sum = 0.0;
    for (int32_t j0 = 0; j0 < n_keys; j0 += 16) {
        const int nk = n_keys - j0 < 16 ? n_keys - j0 : 16;
        const __mmask16 m = (__mmask16)((1u << nk) - 1);
        const __m512 e = _mm512_maskz_mov_ps(
            m,
            expf_ggml(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, scores + j0), _mm512_set1_ps(max))));
        _mm512_mask_storeu_ps(scores + j0, m, e);
        sum += (double)avx512_hsum16(e);
    }
    const float inv = (float)(1.0 / sum);
    for (int32_t j0 = 0; j0 < n_keys; j0 += 16) {
        const int nk = n_keys - j0 < 16 ? n_keys - j0 : 16;
        const __mmask16 m = (__mmask16)((1u << nk) - 1);
        const __m512 w = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, scores + j0), _mm512_set1_ps(inv));
        _mm512_mask_storeu_ps(
            scores + j0, m,
            _mm512_cvtph_ps(_mm512_cvtps_ph(w, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)));
    }
    /* kqv: lane accumulators acc[slot][d] (slot = key % 16 for tinyBLAS, key % 64 for vec_dot) */
    _Alignas(64) float acc[64 * ATTN_MAX_HD];
    const bool kv_pp = pp && hd % 4 == 0;
    const int32_t n_slots = kv_pp ? 16 : 64;
    const int32_t kv_np = kv_pp ? n_kv : (n_kv & ~63);
    const size_t st = (size_t)hd;
    const int32_t n_simd = n_keys < kv_np ? n_keys : kv_np;
    /* slot s accumulates keys s, s + n_slots, ... in key order, each lane one output d. Done
     * 16 slots x 16 outputs at a time in registers (the same fma sequence per lane as one
     * accumulator row per slot in memory, without the loads and stores). Slot groups no key
     * reaches stay +0 and are skipped: adding +0 to an accumulator changes no bit (one that
     * starts at +0 never becomes -0 under round-to-nearest), which matters in decode, where
     * a context under 64 keys fills few of the 64 slots and one of at most 32 fills none. */
    const int32_t n_groups = kv_pp ? 1 : ((n_simd < 64 ? n_simd : 64) + 15) / 16;
    if (n_groups == 0)
        memset(acc, 0, 16 * st * sizeof(float));
    for (int32_t p0 = 0; p0 < 16 * n_groups; p0 += 16)
        for (int32_t d = 0; d < hd; d += 16) {
            const __mmask16 m =
                hd - d >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (hd - d)) - 1);
            __m512 a16[16];
            for (int l = 0; l < 16; l++)
                a16[l] = _mm512_setzero_ps();
            for (int32_t j0 = p0; j0 < n_simd; j0 += n_slots) {
                if (j0 + 16 <= n_simd && bs % 16 == 0) {
                    const uint16_t *v16 = KV_ROW(V, j0); /* j0 % 16 == 0: one block */
                    _Pragma("GCC unroll 16") for (int l = 0; l < 16; l++)
                    {
                        const uint16_t *vr = v16 + (size_t)l * row_stride;
                        a16[l] =
                            _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, vr + d)),
                                            _mm512_set1_ps(scores[j0 + l]), a16[l]);
                    }
                } else {
                    for (int l = 0; l < 16 && j0 + l < n_simd; l++) { /* tail, or bs < 16 */
                        const uint16_t *vr = KV_ROW(V, j0 + l);
                        a16[l] =
                            _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, vr + d)),
                                            _mm512_set1_ps(scores[j0 + l]), a16[l]);
                    }
                }
            }
            for (int l = 0; l < 16; l++)
                _mm512_mask_storeu_ps(acc + (size_t)(p0 + l) * st + d, m, a16[l]);
        }
    if (!kv_pp) /* sum0 += sum2, sum1 += sum3, sum0 += sum1 (slots 16u + l), used groups only */
        for (int u = 0; u < 2; u++)
            if (u + 2 < n_groups)
                for (int32_t i = 0; i < 16 * hd; i++)
                    acc[(size_t)u * 16 * st + (size_t)i] +=
                        acc[(size_t)(u + 2) * 16 * st + (size_t)i];
    if (!kv_pp && n_groups > 1)
        for (int32_t i = 0; i < 16 * hd; i++)
            acc[i] += acc[16 * st + (size_t)i];
    fold16_rows(acc, st, hd, o);
    if (!kv_pp && n_keys > kv_np) {
        /* the vec_dot leftovers, key by key into a double per output: 8 outputs per vector,
         * each lane the scalar sequence sd += (double)(w_j * v_jd) (float product) */
        for (int32_t d = 0; d < hd; d += 8) {
            const __mmask8 m = hd - d >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << (hd - d)) - 1);
            __m512d sd = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, o + d));
            for (int32_t j = kv_np; j < n_keys; j++) {
                const __m256 v = _mm256_cvtph_ps(_mm_maskz_loadu_epi16(m, KV_ROW(V, j) + d));
                sd =
                    _mm512_add_pd(sd, _mm512_cvtps_pd(_mm256_mul_ps(v, _mm256_set1_ps(scores[j]))));
            }
            _mm256_mask_storeu_ps(o + d, m, _mm512_cvtpd_ps(sd));
        }
    }
#undef KV_ROW
}
#endif

struct attn_task {
    struct backend_cpu *c;
    int32_t layer;
    const float *q;
    float *out;
    const struct attn_params *ap;
    int64_t n_tasks;     /* (row, head) pairs */
    int64_t chunk_tasks; /* per chunk */
};

/* (row, head) tasks [lo, hi) */
static void attn_rows(struct attn_task *t, int ith, int64_t lo, int64_t hi)
{
    struct backend_cpu *c = t->c;
    const struct forward_batch *b = c->batch;
    const struct attn_params *ap = t->ap;
    const int32_t hd = ap->head_dim, n_head = ap->n_head;
    const int32_t group = ap->n_head / ap->n_head_kv;
    const size_t row_stride = (size_t)hd; /* elements from one slot to the next (head-major) */
    const int32_t bs = c->kv.block_size;
    const uint8_t *K = c->kv_mem + (size_t)t->layer * 2 * c->kv_layer_bytes;
    const uint8_t *V = K + c->kv_layer_bytes;
    float *scores = c->scores + (size_t)ith * c->scores_per_thread;
    float qr[1024];
    CND_ASSERT(hd <= 1024);
    bool use_avx2 = c->kv_elem == 2 && c->simd >= QUANT_SIMD_AVX2;
    for (int64_t task = lo; task < hi; task++) {
        const int32_t row = (int32_t)(task / n_head), h = (int32_t)(task % n_head);
        const int32_t kvh = h / group;
        const int32_t pos = b->positions[row];
        const int32_t *bt = b->block_tables[b->seq_idx[row]];
        const float *q = t->q + ((size_t)row * n_head + h) * hd;
        if (c->kv_elem == 2)
            f16_row(c, q, NULL, qr, (size_t)hd);
        else
            memcpy(qr, q, (size_t)hd * sizeof(float));
#if defined(__x86_64__)
        if (c->kv_elem == 2 && cpu_has_avx512(c) && hd <= ATTN_MAX_HD) {
            const bool pp = b->prefill && b->prefill[row];
            attn_head_ggml(K, V, bt, bs, row_stride, (size_t)kvh * c->kv_slots * (size_t)hd, qr, hd,
                           pos, ap->scale, pp, scores, t->out + ((size_t)row * n_head + h) * hd);
            continue;
        }
#endif
        float max = -INFINITY;
        for (int32_t j = 0; j <= pos; j++) {
            size_t slot = (size_t)bt[j / bs] * (size_t)bs + (size_t)(j % bs);
            size_t off = ((size_t)kvh * c->kv_slots + slot) * row_stride;
            float s;
#if defined(__x86_64__)
            if (use_avx2) {
                s = dot_f16_avx2(qr, (const uint16_t *)(const void *)(K + off * 2), hd);
            } else
#endif
            {
                s = 0.0f;
                for (int32_t i = 0; i < hd; i++)
                    s += qr[i] * kv_get(c, K, off + (size_t)i);
            }
            s *= ap->scale;
            scores[j] = s;
            max = s > max ? s : max;
        }
        double sum = 0.0;
        for (int32_t j = 0; j <= pos; j++) {
            float e = expf(scores[j] - max);
            scores[j] = e;
            sum += (double)e;
        }
        const float inv = (float)(1.0 / sum);
        float *o = t->out + ((size_t)row * n_head + h) * hd;
        memset(o, 0, (size_t)hd * sizeof(float));
        for (int32_t j = 0; j <= pos; j++) {
            const float w = kv_round(c, scores[j] * inv);
            size_t slot = (size_t)bt[j / bs] * (size_t)bs + (size_t)(j % bs);
            size_t off = ((size_t)kvh * c->kv_slots + slot) * row_stride;
#if defined(__x86_64__)
            if (use_avx2) {
                axpy_f16_avx2(o, w, (const uint16_t *)(const void *)(V + off * 2), hd);
                continue;
            }
#endif
            for (int32_t i = 0; i < hd; i++)
                o[i] += w * kv_get(c, V, off + (size_t)i);
        }
    }
}

/* Rows' costs grow with their positions, so chunks are handed out dynamically and from the
 * end of the batch (within a sequence the latest rows are the longest): the largest go first
 * and the small ones fill in. A static split gave one thread 3/4 of a prompt's work. */
static void attn_chunk(void *p, int64_t chunk, int i_thread)
{
    struct attn_task *t = p;
    const int64_t hi = t->n_tasks - chunk * t->chunk_tasks;
    attn_rows(t, i_thread, CND_MAX(hi - t->chunk_tasks, (int64_t)0), hi);
}

static void cpu_attention(struct backend *be, int32_t layer, const float *q, const float *k,
                          const float *v, float *out, const struct attn_params *ap)
{
    struct backend_cpu *c = cpu(be);
    const struct forward_batch *b = c->batch;
    const size_t kv_dim = (size_t)ap->n_head_kv * (size_t)ap->head_dim;
    uint8_t *K = c->kv_mem + (size_t)layer * 2 * c->kv_layer_bytes;
    uint8_t *V = K + c->kv_layer_bytes;
    const size_t hd = (size_t)ap->head_dim;
    for (int32_t r = 0; r < b->n_tokens; r++)
        for (int32_t h = 0; h < ap->n_head_kv; h++) {
            /* head-major (see kv_layer_bytes) */
            const size_t base = ((size_t)h * c->kv_slots + (size_t)b->slots[r]) * hd;
            const float *kr = k + (size_t)r * kv_dim + (size_t)h * hd;
            const float *vr = v + (size_t)r * kv_dim + (size_t)h * hd;
            if (c->kv_elem == 2) {
                f16_row(c, kr, (uint16_t *)(void *)(K + base * 2), NULL, hd);
                f16_row(c, vr, (uint16_t *)(void *)(V + base * 2), NULL, hd);
            } else {
                memcpy(K + base * 4, kr, hd * 4);
                memcpy(V + base * 4, vr, hd * 4);
            }
        }
    double work = 0;
    for (int32_t r = 0; r < b->n_tokens; r++)
        work += (double)(b->positions[r] + 1) * ap->head_dim * 2 * ap->n_head;
    struct attn_task t = {c, layer, q, out, ap, 0, 0};
    const int nt = cpu_threads_for(c, work);
    t.n_tasks = (int64_t)b->n_tokens * ap->n_head;
    t.chunk_tasks = (t.n_tasks + 16 * nt - 1) / (16 * nt);
    threadpool_run_chunks(c->pool, nt, (t.n_tasks + t.chunk_tasks - 1) / t.chunk_tasks, attn_chunk,
                          &t);
}

static void cpu_destroy(struct backend *be)
{
    struct backend_cpu *c = cpu(be);
    threadpool_destroy(c->pool);
    free(c->act);
    free(c->aux);
    cpu_packed_free(c);
    cpu_kv_unmap(c);
    free(c->scores);
    free(c->rope_tab);
    free(c);
}

static const struct backend_ops backend_cpu_ops = {
    .name = "cpu",
    .destroy = cpu_destroy,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .sync = cpu_sync,
    .load_model = cpu_load_model,
    .weight = cpu_weight,
    .kv_init = cpu_kv_init,
    .begin_batch = cpu_begin_batch,
    .get_rows = cpu_get_rows,
    .rmsnorm = cpu_rmsnorm,
    .matmul = cpu_matmul,
    .matmul_group = cpu_matmul_group,
    .rope = cpu_rope,
    .attention = cpu_attention,
    .silu_mul = cpu_silu_mul,
    .add = cpu_add,
    .gather_rows = cpu_gather_rows,
};

struct backend *backend_cpu_create(const struct backend_cpu_params *p, char *err)
{
    CND_UNUSED(err);
    struct backend_cpu *c = xcalloc(1, sizeof(*c));
    c->base.ops = &backend_cpu_ops;
    c->pool = threadpool_create(p ? p->n_threads : 0);
    c->n_threads = threadpool_n_threads(c->pool);
    c->n_active = c->n_threads;
    c->simd = quant_simd_detect();
    log_debug("cpu backend: %d threads, %s kernels", c->n_threads, quant_simd_name(c->simd));
    return &c->base;
}

void backend_cpu_set_active_threads(struct backend *be, int n)
{
    struct backend_cpu *c = cpu(be);
    c->n_active = n < 1 ? 1 : (n > c->n_threads ? c->n_threads : n);
}
