/* backend_cuda.c: the CUDA implementation of the backend vtable (backend.h).
 *
 * Memory: device buffers from cudaMalloc; the weights are copied once, at load_model, into one
 * VRAM arena (progress is logged); the KV block pool is one VRAM allocation laid out as the CPU
 * backend's ([layer][K|V][slot][kv_dim]). One stream and one cuBLAS handle per backend.
 *
 * Ops are not launched when called: each appends a small record (function + arguments) to the
 * step's list, and host data the step needs (uploads, the batch's positions, slots and block
 * tables) is copied into a pinned staging arena. sync() runs the list. For decode steps of a
 * bucketed batch size (1, 2, 4, ... 64 rows, one per sequence) the list is hashed: the first
 * time a list is seen it runs launch by launch, the second time it is captured into a CUDA graph,
 * and from then on the graph is replayed. The list is the graph's key, so a replay is exactly the
 * same launches; what changes between steps lives in device memory or in the staging arena at
 * the same offsets (block table widths and attention splits are rounded up to powers of two so
 * the list stays the same while sequences grow).
 *
 * Errors: failures while creating the backend, loading weights or sizing the KV pool are
 * returned with a message. A failure while running a step is fatal (STYLE 3.6: sticky CUDA
 * errors leave the context unusable): it is logged with the CUDA message, then abort. */
#include "cinder/backend_cuda.h"
#include "cinder/backend.h"
#include "cinder/status.h"

#include <string.h>

#ifndef CND_HAVE_CUDA

struct backend *backend_cuda_create(const struct backend_cuda_params *p, char *err)
{
    CND_UNUSED(p);
    err_set(err, "built without CUDA");
    return NULL;
}

int backend_cuda_device_count(void)
{
    return 0;
}

int backend_cuda_device_info(int device, struct backend_cuda_device_info *info, char *err)
{
    CND_UNUSED(device), CND_UNUSED(info);
    err_set(err, "built without CUDA");
    return CND_EUNSUPPORTED;
}

bool backend_is_cuda(const struct backend *be)
{
    CND_UNUSED(be);
    return false;
}

int backend_cuda_mem_info(struct backend *be, size_t *free_bytes, size_t *total_bytes)
{
    CND_UNUSED(be);
    *free_bytes = *total_bytes = 0;
    return CND_EUNSUPPORTED;
}

void backend_cuda_get_stats(struct backend *be, struct backend_cuda_stats *st)
{
    CND_UNUSED(be);
    memset(st, 0, sizeof(*st));
}

#else /* CND_HAVE_CUDA */

#include "cinder/forward.h"
#include "cinder/log.h"
#include "cinder/model.h"
#include "cinder/xalloc.h"
#include "kernels.h"

#include <math.h>
#include <stdlib.h>

#define CUDA_STAGE_INIT       (4u << 20)
#define CUDA_DIRECT_COPY      (128u << 20) /* larger uploads/downloads bypass the staging arena */
#define CUDA_BLAS_WORKSPACE   (32u << 20)
#define CUDA_DEQ_TILE_ELEMS   (32ll << 20) /* F16 elements per dequantized weight tile (64 MiB) */
#define CUDA_PREFILL_MIN_ROWS 4            /* rows of one sequence that make a step "prefill" */
#define CUDA_GRAPH_SLOTS      16
#define CUDA_GRAPH_MAX_ROWS   64
#define CUDA_WEIGHT_ALIGN     256

struct cuda_be;

/* One recorded launch. Pointers are kept as integers (device and pinned addresses). */
struct op {
    int (*run)(struct cuda_be *c, const struct op *o);
    uintptr_t p[10];
    int64_t i[10];
    float f[4];
};

struct dbuf {
    void *p;
    size_t cap;
};

struct post_copy {
    void *dst;
    const void *src;
    size_t n;
};

struct graph_slot {
    uint64_t hash;
    int n_ops;
    struct op *ops;
    void *exec;
    uint64_t last_used;
};

struct wmap_entry {
    const struct tensor *host;
    struct tensor dev;
};

struct cuda_be {
    struct backend base;
    int device;
    char name[128];
    void *stream, *blas;
    struct dbuf blas_ws;
    /* the step being recorded */
    struct op *ops;
    int n_ops, cap_ops;
    uint8_t *stage;
    size_t stage_cap, stage_used;
    struct post_copy *posts;
    int n_posts, cap_posts;
    /* scratch */
    struct dbuf meta, act, xconv, deq, part_acc, part_ml, tiles, gidx;
    /* weights */
    void *wmem;
    size_t wbytes;
    struct wmap_entry *wmap;
    size_t wmap_cap;
    /* KV pool */
    struct kv_cache_params kv;
    uint8_t *kv_mem;
    size_t kv_layer_bytes;
    /* current batch */
    const struct forward_batch *batch;
    int32_t max_pos, max_rows_per_seq, table_width;
    const int32_t *d_pos, *d_seq, *d_bt;
    const int64_t *d_slots;
    int32_t *seq_rows; /* scratch: rows per sequence */
    int32_t *seq_maxpos;
    int32_t seq_cap;
    int32_t *host_tiles;
    int32_t host_tiles_cap;
    /* graphs */
    bool graphs_enabled, graphable;
    struct graph_slot graphs[CUDA_GRAPH_SLOTS];
    uint64_t tick;
    struct backend_cuda_stats stats;
};

static struct cuda_be *cb(struct backend *be)
{
    return (struct cuda_be *)be;
}

#define PV(o, k) ((void *)(o)->p[k])
#define UP(x)    ((uintptr_t)(x))

static _Noreturn void cuda_fatal(const char *what)
{
    log_error("cuda: %s failed: %s", what, cnd_cuda_last_error());
    CND_PANIC("CUDA error in %s: %s", what, cnd_cuda_last_error());
}

/* ---- running the recorded list ---- */

static int run_ops(struct cuda_be *c)
{
    for (int i = 0; i < c->n_ops; i++) {
        int rc = c->ops[i].run(c, &c->ops[i]);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static uint64_t ops_hash(const struct op *ops, int n)
{
    const uint8_t *b = (const uint8_t *)ops;
    size_t len = (size_t)n * sizeof(struct op);
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static int flush_graph(struct cuda_be *c)
{
    uint64_t h = ops_hash(c->ops, c->n_ops);
    c->tick++;
    struct graph_slot *hit = NULL, *lru = &c->graphs[0];
    for (int i = 0; i < CUDA_GRAPH_SLOTS; i++) {
        struct graph_slot *g = &c->graphs[i];
        if (g->ops && g->hash == h && g->n_ops == c->n_ops &&
            memcmp(g->ops, c->ops, (size_t)c->n_ops * sizeof(struct op)) == 0)
            hit = g;
        if (g->last_used < lru->last_used)
            lru = g;
    }
    if (!hit) { /* first sight: remember, run eagerly (warms cuBLAS up too) */
        if (lru->exec)
            cnd_cuda_graph_destroy(lru->exec);
        free(lru->ops);
        lru->ops = xmalloc((size_t)c->n_ops * sizeof(struct op));
        memcpy(lru->ops, c->ops, (size_t)c->n_ops * sizeof(struct op));
        lru->n_ops = c->n_ops;
        lru->hash = h;
        lru->exec = NULL;
        lru->last_used = c->tick;
        c->stats.eager_runs++;
        return run_ops(c);
    }
    hit->last_used = c->tick;
    if (!hit->exec) { /* second sight: capture */
        int rc = cnd_cuda_graph_begin(c->stream);
        if (rc == 0) {
            int rc_run = run_ops(c);
            void *exec = NULL;
            rc = cnd_cuda_graph_end(c->stream, &exec);
            if (rc_run != 0 || rc != 0 || !exec) {
                log_warn("cuda: graph capture failed (%s): running without graphs",
                         cnd_cuda_last_error());
                if (exec)
                    cnd_cuda_graph_destroy(exec);
                c->graphs_enabled = false;
                c->stats.eager_runs++;
                return run_ops(c);
            }
            hit->exec = exec;
            c->stats.graph_captures++;
        } else {
            c->graphs_enabled = false;
            c->stats.eager_runs++;
            return run_ops(c);
        }
    }
    c->stats.graph_launches++;
    return cnd_cuda_graph_launch(hit->exec, c->stream);
}

static void flush(struct cuda_be *c)
{
    if (c->n_ops == 0)
        return;
    int rc;
    if (c->graphable && c->graphs_enabled) {
        rc = flush_graph(c);
    } else {
        c->stats.eager_runs++;
        rc = run_ops(c);
    }
    c->n_ops = 0;
    if (rc != 0)
        cuda_fatal("a step");
}

/* Run everything recorded, wait, and hand downloads to the host. */
static int drain(struct cuda_be *c)
{
    flush(c);
    if (cnd_cuda_stream_synchronize(c->stream) != 0)
        cuda_fatal("stream synchronize");
    for (int i = 0; i < c->n_posts; i++)
        memcpy(c->posts[i].dst, c->posts[i].src, c->posts[i].n);
    c->n_posts = 0;
    c->stage_used = 0;
    return 0;
}

static struct op *push(struct cuda_be *c, int (*run)(struct cuda_be *, const struct op *))
{
    if (c->n_ops == c->cap_ops) {
        c->cap_ops = c->cap_ops ? 2 * c->cap_ops : 512;
        c->ops = xrealloc(c->ops, (size_t)c->cap_ops * sizeof(struct op));
    }
    struct op *o = &c->ops[c->n_ops++];
    memset(o, 0, sizeof(*o));
    o->run = run;
    return o;
}

/* n bytes of pinned staging (valid until the next drain). */
static uint8_t *stage_alloc(struct cuda_be *c, size_t n)
{
    size_t need = ((c->stage_used + 63) & ~(size_t)63) + n;
    if (need > c->stage_cap) {
        drain(c);
        size_t cap = CND_MAX(c->stage_cap * 2, n + 64);
        cnd_cuda_free_host(c->stage);
        c->stage = NULL;
        if (cnd_cuda_malloc_host((void **)&c->stage, cap) != 0)
            cuda_fatal("pinned staging allocation");
        c->stage_cap = cap;
        need = n;
    }
    uint8_t *p = c->stage + (need - n);
    c->stage_used = need;
    return p;
}

/* Grow a scratch buffer (runs what is pending first: recorded launches may point at it). */
static void *ensure(struct cuda_be *c, struct dbuf *b, size_t need)
{
    if (need <= b->cap && b->p)
        return b->p;
    drain(c);
    if (b->p)
        cnd_cuda_free(b->p);
    b->p = NULL;
    size_t cap = CND_MAX(need + need / 4, (size_t)4096);
    if (cnd_cuda_malloc(&b->p, cap) != 0) {
        b->cap = 0;
        cuda_fatal("scratch allocation");
    }
    b->cap = cap;
    return b->p;
}

/* ---- op runners ---- */

static int run_copy(struct cuda_be *c, const struct op *o)
{
    return cnd_cuda_memcpy_async(PV(o, 0), PV(o, 1), (size_t)o->i[0], (int)o->i[1], c->stream);
}

static int run_get_rows(struct cuda_be *c, const struct op *o)
{
    return cnd_cuda_get_rows(PV(o, 0), PV(o, 1), (int)o->i[0], o->i[1], (size_t)o->i[2], PV(o, 2),
                             (int)o->i[3], c->stream);
}

static int run_rmsnorm(struct cuda_be *c, const struct op *o)
{
    return cnd_cuda_rmsnorm_f32(PV(o, 0), PV(o, 1), PV(o, 2), (int)o->i[0], (int)o->i[1], o->f[0],
                                c->stream);
}

static int run_quantize(struct cuda_be *c, const struct op *o)
{
    return cnd_cuda_quantize_act(PV(o, 0), PV(o, 1), (int)o->i[0], (int)o->i[1], o->i[2],
                                 c->stream);
}

static int run_mmv(struct cuda_be *c, const struct op *o)
{
    return cnd_cuda_mmv(PV(o, 0), PV(o, 1), (int)o->i[0], o->i[1], o->i[2], PV(o, 2), (int)o->i[3],
                        PV(o, 3), c->stream);
}

static int run_dequant(struct cuda_be *c, const struct op *o)
{
    return cnd_cuda_dequantize(PV(o, 0), (int)o->i[3], PV(o, 1), (int)o->i[0], o->i[1], o->i[2],
                               c->stream);
}

static int run_gemm(struct cuda_be *c, const struct op *o)
{
    return cnd_cuda_gemm(c->blas, PV(o, 0), o->i[4], PV(o, 1), PV(o, 2), (int)o->i[0], o->i[1],
                         (int)o->i[2], o->i[3]);
}

static int run_add_bias(struct cuda_be *c, const struct op *o)
{
    return cnd_cuda_add_bias_f32(PV(o, 0), PV(o, 1), (int)o->i[0], (int)o->i[1], c->stream);
}

static int run_rope(struct cuda_be *c, const struct op *o)
{
    return cnd_cuda_rope_f32(PV(o, 0), PV(o, 1), (int)o->i[0], (int)o->i[1], (int)o->i[2],
                             (int)o->i[3], o->f[0], o->f[1], PV(o, 2), (int)o->i[4], c->stream);
}

static int run_cache(struct cuda_be *c, const struct op *o)
{
    return cnd_cuda_reshape_and_cache(PV(o, 0), PV(o, 1), PV(o, 2), PV(o, 3), PV(o, 4),
                                      (int)o->i[0], (int)o->i[1], (int)o->i[2], c->stream);
}

static void attn_args(const struct op *o, struct cnd_cuda_attn_args *a)
{
    memset(a, 0, sizeof(*a));
    a->q = PV(o, 0);
    a->out = PV(o, 1);
    a->k_cache = PV(o, 2);
    a->v_cache = PV(o, 3);
    a->positions = PV(o, 4);
    a->seq_idx = PV(o, 5);
    a->block_tables = PV(o, 6);
    a->f16 = (int)o->i[0];
    a->table_width = (int)o->i[1];
    a->block_size = (int)o->i[2];
    a->n_rows = (int)o->i[3];
    a->n_head = (int)o->i[4];
    a->n_head_kv = (int)o->i[5];
    a->head_dim = (int)o->i[6];
    a->scale = o->f[0];
}

static int run_decode_attn(struct cuda_be *c, const struct op *o)
{
    struct cnd_cuda_attn_args a;
    attn_args(o, &a);
    return cnd_cuda_paged_attention(&a, (int)o->i[7], PV(o, 7), PV(o, 8), c->stream);
}

static int run_prefill_attn(struct cuda_be *c, const struct op *o)
{
    struct cnd_cuda_attn_args a;
    attn_args(o, &a);
    return cnd_cuda_prefill_attention(&a, PV(o, 7), (int)o->i[7], c->stream);
}

static int run_silu_mul(struct cuda_be *c, const struct op *o)
{
    return cnd_cuda_silu_mul_f32(PV(o, 0), PV(o, 1), PV(o, 2), o->i[0], c->stream);
}

static int run_add(struct cuda_be *c, const struct op *o)
{
    return cnd_cuda_add_f32(PV(o, 0), PV(o, 1), PV(o, 2), o->i[0], c->stream);
}

static int run_gather(struct cuda_be *c, const struct op *o)
{
    return cnd_cuda_gather_rows_f32(PV(o, 0), PV(o, 1), PV(o, 2), (int)o->i[0], (int)o->i[1],
                                    c->stream);
}

/* ---- memory ---- */

static void *cuda_alloc(struct backend *be, size_t bytes)
{
    CND_UNUSED(be);
    void *p = NULL;
    if (cnd_cuda_malloc(&p, bytes) != 0) {
        log_warn("cuda: cannot allocate %zu bytes: %s", bytes, cnd_cuda_last_error());
        return NULL;
    }
    return p;
}

static void cuda_free(struct backend *be, void *p)
{
    struct cuda_be *c = cb(be);
    if (!p)
        return;
    drain(c); /* recorded launches may still use it */
    cnd_cuda_free(p);
}

static void record_copy(struct cuda_be *c, void *dst, const void *src, size_t n, int kind)
{
    struct op *o = push(c, run_copy);
    o->p[0] = UP(dst), o->p[1] = UP(src);
    o->i[0] = (int64_t)n, o->i[1] = kind;
}

static int cuda_upload(struct backend *be, void *dst, const void *src, size_t bytes)
{
    struct cuda_be *c = cb(be);
    if (bytes == 0)
        return 0;
    if (bytes > CUDA_DIRECT_COPY) {
        drain(c);
        return cnd_cuda_memcpy_h2d(dst, src, bytes) == 0 ? 0 : CND_EDEVICE;
    }
    uint8_t *s = stage_alloc(c, bytes);
    memcpy(s, src, bytes);
    record_copy(c, dst, s, bytes, CND_CUDA_H2D);
    return 0;
}

static int cuda_download(struct backend *be, void *dst, const void *src, size_t bytes)
{
    struct cuda_be *c = cb(be);
    if (bytes == 0)
        return 0;
    if (bytes > CUDA_DIRECT_COPY) {
        drain(c);
        return cnd_cuda_memcpy_d2h(dst, src, bytes) == 0 ? 0 : CND_EDEVICE;
    }
    uint8_t *s = stage_alloc(c, bytes);
    record_copy(c, s, src, bytes, CND_CUDA_D2H);
    if (c->n_posts == c->cap_posts) {
        c->cap_posts = c->cap_posts ? 2 * c->cap_posts : 16;
        c->posts = xrealloc(c->posts, (size_t)c->cap_posts * sizeof(*c->posts));
    }
    c->posts[c->n_posts++] = (struct post_copy){dst, s, bytes};
    return 0;
}

static int cuda_sync(struct backend *be)
{
    struct cuda_be *c = cb(be);
    drain(c);
    c->graphable = false;
    return 0;
}

/* ---- weights ---- */

static bool cuda_weight_type_ok(enum cnd_dtype t)
{
    return cnd_cuda_act_dtype((int)t) >= 0;
}

static size_t tensor_bytes(const struct tensor *t)
{
    return dtype_row_size(t->dtype, t->ne[0]) * (size_t)(t->ne[1] * t->ne[2] * t->ne[3]);
}

static size_t wmap_slot(const struct cuda_be *c, const struct tensor *host)
{
    uint64_t h = (uint64_t)(uintptr_t)host * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 20) & (c->wmap_cap - 1);
}

static struct wmap_entry *wmap_find(struct cuda_be *c, const struct tensor *host, bool insert)
{
    if (!c->wmap_cap)
        return NULL;
    for (size_t i = wmap_slot(c, host);; i = (i + 1) & (c->wmap_cap - 1)) {
        if (c->wmap[i].host == host)
            return &c->wmap[i];
        if (!c->wmap[i].host) {
            if (!insert)
                return NULL;
            c->wmap[i].host = host;
            return &c->wmap[i];
        }
    }
}

static const struct tensor *cuda_weight(struct backend *be, const struct tensor *host)
{
    struct wmap_entry *e = wmap_find(cb(be), host, false);
    if (!e)
        CND_PANIC("cuda: weight tensor %p was not uploaded by load_model", (const void *)host);
    return &e->dev;
}

static int cuda_load_model(struct backend *be, const struct model *m, char *err)
{
    struct cuda_be *c = cb(be);
    const struct model_hparams *hp = &m->hp;
    size_t n_max = 3 + (size_t)hp->n_layer * 13;
    const struct tensor **list = xmalloc(n_max * sizeof(*list));
    bool *is_matrix = xmalloc(n_max * sizeof(bool));
    size_t n = 0;
#define ADD(t, mat)                                                                                \
    do {                                                                                           \
        if ((t)->data) {                                                                           \
            is_matrix[n] = (mat);                                                                  \
            list[n++] = (t);                                                                       \
        }                                                                                          \
    } while (0)
    ADD(&m->tok_embd, true);
    ADD(&m->output_norm, false);
    ADD(&m->output, true);
    for (int32_t l = 0; l < hp->n_layer; l++) {
        const struct model_layer *L = &m->layers[l];
        ADD(&L->attn_norm, false);
        ADD(&L->wq, true);
        ADD(&L->wk, true);
        ADD(&L->wv, true);
        ADD(&L->wo, true);
        ADD(&L->bq, false);
        ADD(&L->bk, false);
        ADD(&L->bv, false);
        ADD(&L->attn_q_norm, false);
        ADD(&L->attn_k_norm, false);
        ADD(&L->ffn_norm, false);
        ADD(&L->ffn_gate, true);
        ADD(&L->ffn_up, true);
        ADD(&L->ffn_down, true);
    }
#undef ADD
    int rc = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const struct tensor *t = list[i];
        bool ok = is_matrix[i] ? cuda_weight_type_ok(t->dtype) : t->dtype == CND_DTYPE_F32;
        if (!ok) {
            err_set(err,
                    "weight type %s is not supported by the CUDA backend (f32 f16 bf16 q4_0 "
                    "q8_0 q4_K q6_K; norms and biases f32)",
                    dtype_name(t->dtype));
            rc = CND_EUNSUPPORTED;
            goto out;
        }
        if (m->output.data == m->tok_embd.data && t == &m->output)
            continue; /* tied: shares the embedding's copy */
        total += (tensor_bytes(t) + CUDA_WEIGHT_ALIGN - 1) & ~(size_t)(CUDA_WEIGHT_ALIGN - 1);
    }
    drain(c);
    if (c->wmem) {
        cnd_cuda_free(c->wmem);
        c->wmem = NULL;
    }
    free(c->wmap);
    c->wmap_cap = 16;
    while (c->wmap_cap < 2 * n)
        c->wmap_cap *= 2;
    c->wmap = xcalloc(c->wmap_cap, sizeof(*c->wmap));
    if (cnd_cuda_malloc(&c->wmem, total) != 0) {
        size_t fr = 0, tot = 0;
        cnd_cuda_mem_info(&fr, &tot);
        err_set(err,
                "cannot allocate %.2f GiB of VRAM for the weights on %s (%.2f GiB free of "
                "%.2f GiB)",
                (double)total / 1073741824.0, c->name, (double)fr / 1073741824.0,
                (double)tot / 1073741824.0);
        c->wmem = NULL;
        rc = CND_ENOMEM;
        goto out;
    }
    log_info("cuda: uploading %zu tensors, %.2f GiB of weights, to %s", n,
             (double)total / 1073741824.0, c->name);
    size_t off = 0, done = 0;
    int last_pct = -1;
    for (size_t i = 0; i < n; i++) {
        const struct tensor *t = list[i];
        struct wmap_entry *e = wmap_find(c, t, true);
        e->dev = *t;
        e->dev.device = TENSOR_DEVICE_CUDA;
        if (m->output.data == m->tok_embd.data && t == &m->output)
            continue; /* filled below */
        size_t bytes = tensor_bytes(t);
        e->dev.data = (uint8_t *)c->wmem + off;
        for (size_t o = 0; o < bytes; o += 256u << 20) {
            size_t len = CND_MIN(bytes - o, (size_t)256u << 20);
            if (cnd_cuda_memcpy_h2d((uint8_t *)e->dev.data + o, (const uint8_t *)t->data + o,
                                    len) != 0) {
                err_set(err, "uploading weights failed: %s", cnd_cuda_last_error());
                rc = CND_EDEVICE;
                goto out;
            }
            done += len;
            int pct = total ? (int)(done * 10 / total) * 10 : 100;
            if (pct != last_pct) {
                log_info("cuda: weights %3d%% (%.2f / %.2f GiB)", pct, (double)done / 1073741824.0,
                         (double)total / 1073741824.0);
                last_pct = pct;
            }
        }
        off += (bytes + CUDA_WEIGHT_ALIGN - 1) & ~(size_t)(CUDA_WEIGHT_ALIGN - 1);
    }
    if (m->output.data && m->output.data == m->tok_embd.data) {
        struct wmap_entry *e = wmap_find(c, &m->output, true);
        e->dev.data = wmap_find(c, &m->tok_embd, false)->dev.data;
    }
    c->wbytes = total;
    c->stats.weight_bytes = total;
out:
    free(list);
    free(is_matrix);
    return rc;
}

/* ---- KV cache ---- */

static int cuda_kv_init(struct backend *be, const struct kv_cache_params *p, char *err)
{
    struct cuda_be *c = cb(be);
    if (p->dtype != CND_DTYPE_F16 && p->dtype != CND_DTYPE_F32) {
        err_set(err, "KV cache type %s is not supported (f16, f32)", dtype_name(p->dtype));
        return CND_EINVAL;
    }
    drain(c);
    if (c->kv_mem)
        cnd_cuda_free(c->kv_mem);
    c->kv_mem = NULL;
    c->kv = *p;
    size_t elem = p->dtype == CND_DTYPE_F16 ? 2 : 4;
    size_t n_slots = (size_t)p->n_blocks * (size_t)p->block_size;
    c->kv_layer_bytes = n_slots * (size_t)p->n_head_kv * (size_t)p->head_dim * elem;
    size_t total = c->kv_layer_bytes * 2 * (size_t)p->n_layer;
    if (total == 0 || cnd_cuda_malloc((void **)&c->kv_mem, total) != 0) {
        size_t fr = 0, tot = 0;
        cnd_cuda_mem_info(&fr, &tot);
        err_set(err, "cannot allocate %.1f MiB of VRAM for the KV cache on %s (%.1f MiB free)",
                (double)total / 1048576.0, c->name, (double)fr / 1048576.0);
        c->kv_mem = NULL;
        return CND_ENOMEM;
    }
    if (cnd_cuda_memset_async(c->kv_mem, 0, total, c->stream) != 0 ||
        cnd_cuda_stream_synchronize(c->stream) != 0) {
        err_set(err, "clearing the KV cache failed: %s", cnd_cuda_last_error());
        return CND_EDEVICE;
    }
    c->stats.kv_bytes = total;
    log_info("cuda: KV pool %d blocks of %d tokens, %.1f MiB", p->n_blocks, p->block_size,
             (double)total / 1048576.0);
    return 0;
}

/* ---- the batch ---- */

static int32_t pow2_at_least(int32_t v, int32_t lo)
{
    int32_t r = lo;
    while (r < v)
        r *= 2;
    return r;
}

static int cuda_begin_batch(struct backend *be, const struct forward_batch *b)
{
    struct cuda_be *c = cb(be);
    if (!c->kv_mem)
        return CND_EINVAL;
    const int32_t n = b->n_tokens, bs = c->kv.block_size;
    c->batch = b;
    if (b->n_seqs > c->seq_cap) {
        c->seq_cap = b->n_seqs + 16;
        c->seq_rows = xrealloc(c->seq_rows, (size_t)c->seq_cap * sizeof(int32_t));
        c->seq_maxpos = xrealloc(c->seq_maxpos, (size_t)c->seq_cap * sizeof(int32_t));
    }
    for (int32_t s = 0; s < b->n_seqs; s++)
        c->seq_rows[s] = 0, c->seq_maxpos[s] = -1;
    c->max_pos = 0;
    c->max_rows_per_seq = 0;
    int32_t max_blocks = 1;
    for (int32_t i = 0; i < n; i++) {
        const int32_t s = b->seq_idx[i], p = b->positions[i];
        CND_ASSERT(s >= 0 && s < b->n_seqs);
        c->max_pos = CND_MAX(c->max_pos, p);
        c->seq_rows[s]++;
        c->seq_maxpos[s] = CND_MAX(c->seq_maxpos[s], p);
        c->max_rows_per_seq = CND_MAX(c->max_rows_per_seq, c->seq_rows[s]);
        max_blocks = CND_MAX(max_blocks, p / bs + 1);
    }
    c->table_width = pow2_at_least(max_blocks, 4);
    const int32_t tw = c->table_width;
    size_t o_pos = 0, o_seq = ((size_t)n * 4 + 15) & ~(size_t)15;
    size_t o_slots = o_seq + (((size_t)n * 4 + 15) & ~(size_t)15);
    size_t o_bt = o_slots + (size_t)n * 8;
    size_t total = o_bt + (size_t)b->n_seqs * (size_t)tw * 4;
    uint8_t *dev = ensure(c, &c->meta, total);
    uint8_t *s = stage_alloc(c, total);
    memcpy(s + o_pos, b->positions, (size_t)n * 4);
    memcpy(s + o_seq, b->seq_idx, (size_t)n * 4);
    memcpy(s + o_slots, b->slots, (size_t)n * 8);
    int32_t *bt = (int32_t *)(void *)(s + o_bt);
    for (int32_t q = 0; q < b->n_seqs; q++) {
        int32_t need = c->seq_maxpos[q] < 0 ? 0 : c->seq_maxpos[q] / bs + 1;
        if (need)
            memcpy(bt + (size_t)q * tw, b->block_tables[q], (size_t)need * 4);
        memset(bt + (size_t)q * tw + need, 0, (size_t)(tw - need) * 4);
    }
    record_copy(c, dev, s, total, CND_CUDA_H2D);
    c->d_pos = (const int32_t *)(const void *)(dev + o_pos);
    c->d_seq = (const int32_t *)(const void *)(dev + o_seq);
    c->d_slots = (const int64_t *)(const void *)(dev + o_slots);
    c->d_bt = (const int32_t *)(const void *)(dev + o_bt);
    c->graphable = c->graphs_enabled && c->max_rows_per_seq == 1 && n <= CUDA_GRAPH_MAX_ROWS &&
                   (n & (n - 1)) == 0;
    return 0;
}

/* ---- ops ---- */

static void cuda_get_rows(struct backend *be, const struct tensor *w, const int32_t *ids, int32_t n,
                          float *out)
{
    struct op *o = push(cb(be), run_get_rows);
    o->p[0] = UP(out), o->p[1] = UP(w->data), o->p[2] = UP(ids);
    o->i[0] = w->dtype, o->i[1] = w->ne[0], o->i[2] = (int64_t)w->nb[1], o->i[3] = n;
}

static void cuda_rmsnorm(struct backend *be, float *out, const float *x, const struct tensor *w,
                         int32_t n_rows, int32_t n_cols, float eps)
{
    struct op *o = push(cb(be), run_rmsnorm);
    o->p[0] = UP(out), o->p[1] = UP(x), o->p[2] = UP(w->data);
    o->i[0] = n_rows, o->i[1] = n_cols;
    o->f[0] = eps;
}

static void cuda_matmul(struct backend *be, float *out, const struct tensor *w, const float *x,
                        int32_t n, const struct tensor *bias, const uint8_t *prefill)
{
    CND_UNUSED(prefill); /* one summation order on the GPU */
    struct cuda_be *c = cb(be);
    const int dt = (int)w->dtype;
    const int64_t K = w->ne[0], N = w->ne[1];
    const int act_t = cnd_cuda_act_dtype(dt);
    if (act_t < 0)
        CND_PANIC("cuda: matmul with %s weights", dtype_name(w->dtype));
    const bool quant = dt != CND_DTYPE_F32 && dt != CND_DTYPE_F16 && dt != CND_DTYPE_BF16;
    const int64_t unit = dt == CND_DTYPE_F32 ? 4 : !quant ? 8 : act_t == CND_DTYPE_Q8_0 ? 32 : 256;
    const bool mmv_ok = K % unit == 0;
    if (n <= CND_CUDA_MMV_MAX && mmv_ok) {
        const void *act = x;
        if (act_t != CND_DTYPE_F32) {
            size_t rb = cnd_cuda_act_row_bytes(act_t, K);
            void *a = ensure(c, &c->act, rb * (size_t)CND_CUDA_MMV_MAX);
            struct op *q = push(c, run_quantize);
            q->p[0] = UP(a), q->p[1] = UP(x);
            q->i[0] = act_t, q->i[1] = n, q->i[2] = K;
            act = a;
        }
        struct op *o = push(c, run_mmv);
        o->p[0] = UP(out), o->p[1] = UP(w->data), o->p[2] = UP(act);
        o->p[3] = UP(bias ? bias->data : NULL);
        o->i[0] = dt, o->i[1] = K, o->i[2] = N, o->i[3] = n;
        return;
    }
    /* cuBLAS: F16/BF16/F32 weights directly, quantized ones through F16 tiles */
    const int gt = dt == CND_DTYPE_BF16  ? CND_DTYPE_BF16
                   : dt == CND_DTYPE_F32 ? CND_DTYPE_F32
                                         : CND_DTYPE_F16;
    const void *xp = x;
    if (gt != CND_DTYPE_F32) {
        void *xc = ensure(c, &c->xconv, (size_t)n * (size_t)K * 2);
        struct op *q = push(c, run_quantize);
        q->p[0] = UP(xc), q->p[1] = UP(x);
        q->i[0] = gt, q->i[1] = n, q->i[2] = K;
        xp = xc;
    }
    if (!quant) {
        struct op *o = push(c, run_gemm);
        o->p[0] = UP(out), o->p[1] = UP(w->data), o->p[2] = UP(xp);
        o->i[0] = gt, o->i[1] = N, o->i[2] = n, o->i[3] = K, o->i[4] = N;
    } else {
        int64_t tile = CND_MAX((int64_t)1, CUDA_DEQ_TILE_ELEMS / K);
        tile = CND_MIN(tile, N);
        void *deq = ensure(c, &c->deq, (size_t)tile * (size_t)K * 2);
        for (int64_t r0 = 0; r0 < N; r0 += tile) {
            const int64_t rows = CND_MIN(tile, N - r0);
            struct op *d = push(c, run_dequant);
            d->p[0] = UP(deq), d->p[1] = UP((const uint8_t *)w->data + (size_t)r0 * w->nb[1]);
            d->i[0] = dt, d->i[1] = rows, d->i[2] = K, d->i[3] = 0;
            struct op *o = push(c, run_gemm);
            o->p[0] = UP(out + r0), o->p[1] = UP(deq), o->p[2] = UP(xp);
            o->i[0] = CND_DTYPE_F16, o->i[1] = rows, o->i[2] = n, o->i[3] = K, o->i[4] = N;
        }
    }
    if (bias) {
        struct op *o = push(c, run_add_bias);
        o->p[0] = UP(out), o->p[1] = UP(bias->data);
        o->i[0] = n, o->i[1] = N;
    }
}

static void cuda_rope(struct backend *be, float *x, int32_t n_rows, int32_t n_heads,
                      const struct rope_params *rp)
{
    struct cuda_be *c = cb(be);
    struct op *o = push(c, run_rope);
    o->p[0] = UP(x), o->p[1] = UP(c->d_pos), o->p[2] = UP(rp->freq_factors);
    o->i[0] = n_rows, o->i[1] = n_heads, o->i[2] = rp->head_dim, o->i[3] = rp->n_rot;
    o->i[4] = rp->neox;
    o->f[0] = powf(rp->freq_base, -2.0f / (float)rp->n_rot);
    o->f[1] = rp->freq_scale;
}

static void cuda_attention(struct backend *be, int32_t layer, const float *q, const float *k,
                           const float *v, float *out, const struct attn_params *ap)
{
    struct cuda_be *c = cb(be);
    const struct forward_batch *b = c->batch;
    const int32_t n = b->n_tokens, hd = ap->head_dim;
    const int f16 = c->kv.dtype == CND_DTYPE_F16;
    uint8_t *kc = c->kv_mem + (size_t)layer * 2 * c->kv_layer_bytes;
    uint8_t *vc = kc + c->kv_layer_bytes;
    struct op *o = push(c, run_cache);
    o->p[0] = UP(kc), o->p[1] = UP(vc), o->p[2] = UP(k), o->p[3] = UP(v), o->p[4] = UP(c->d_slots);
    o->i[0] = n, o->i[1] = (int64_t)ap->n_head_kv * hd, o->i[2] = f16;

    const int tile_rows = cnd_cuda_prefill_tile_rows(hd, ap->n_head, ap->n_head_kv, f16);
    if (tile_rows > 0 && c->max_rows_per_seq >= CUDA_PREFILL_MIN_ROWS) {
        if (2 * n > c->host_tiles_cap) {
            c->host_tiles_cap = 2 * n + 64;
            c->host_tiles = xrealloc(c->host_tiles, (size_t)c->host_tiles_cap * sizeof(int32_t));
        }
        int32_t n_tiles = 0;
        for (int32_t r = 0; r < n;) {
            int32_t len = 1;
            while (r + len < n && len < tile_rows && b->seq_idx[r + len] == b->seq_idx[r])
                len++;
            c->host_tiles[2 * n_tiles] = r;
            c->host_tiles[2 * n_tiles + 1] = len;
            n_tiles++;
            r += len;
        }
        size_t bytes = (size_t)n_tiles * 8;
        void *dt = ensure(c, &c->tiles, bytes);
        uint8_t *s = stage_alloc(c, bytes);
        memcpy(s, c->host_tiles, bytes);
        record_copy(c, dt, s, bytes, CND_CUDA_H2D);
        o = push(c, run_prefill_attn);
        o->p[7] = UP(dt);
        o->i[7] = n_tiles;
    } else {
        const int32_t splits = pow2_at_least(c->max_pos / CND_CUDA_ATTN_SPLIT + 1, 1);
        const size_t parts = (size_t)n * (size_t)ap->n_head * (size_t)splits;
        void *pa = ensure(c, &c->part_acc, parts * (size_t)hd * sizeof(float));
        void *pm = ensure(c, &c->part_ml, parts * 2 * sizeof(float));
        o = push(c, run_decode_attn);
        o->p[7] = UP(pa), o->p[8] = UP(pm);
        o->i[7] = splits;
    }
    o->p[0] = UP(q), o->p[1] = UP(out), o->p[2] = UP(kc), o->p[3] = UP(vc);
    o->p[4] = UP(c->d_pos), o->p[5] = UP(c->d_seq), o->p[6] = UP(c->d_bt);
    o->i[0] = f16, o->i[1] = c->table_width, o->i[2] = c->kv.block_size, o->i[3] = n;
    o->i[4] = ap->n_head, o->i[5] = ap->n_head_kv, o->i[6] = hd;
    o->f[0] = ap->scale;
}

static void cuda_silu_mul(struct backend *be, float *out, const float *gate, const float *up,
                          int64_t n_rows, int64_t n_cols)
{
    struct op *o = push(cb(be), run_silu_mul);
    o->p[0] = UP(out), o->p[1] = UP(gate), o->p[2] = UP(up);
    o->i[0] = n_rows * n_cols;
}

static void cuda_add(struct backend *be, float *out, const float *a, const float *b, int64_t n)
{
    struct op *o = push(cb(be), run_add);
    o->p[0] = UP(out), o->p[1] = UP(a), o->p[2] = UP(b);
    o->i[0] = n;
}

static void cuda_gather_rows(struct backend *be, float *out, const float *x, const int32_t *rows,
                             int32_t n, int32_t n_cols)
{
    struct cuda_be *c = cb(be);
    if (n <= 0)
        return;
    size_t bytes = (size_t)n * sizeof(int32_t);
    void *d = ensure(c, &c->gidx, bytes);
    uint8_t *s = stage_alloc(c, bytes);
    memcpy(s, rows, bytes);
    record_copy(c, d, s, bytes, CND_CUDA_H2D);
    struct op *o = push(c, run_gather);
    o->p[0] = UP(out), o->p[1] = UP(x), o->p[2] = UP(d);
    o->i[0] = n, o->i[1] = n_cols;
}

/* ---- lifetime ---- */

static void cuda_destroy(struct backend *be)
{
    struct cuda_be *c = cb(be);
    if (c->stream) {
        flush(c);
        cnd_cuda_stream_synchronize(c->stream);
    }
    for (int i = 0; i < CUDA_GRAPH_SLOTS; i++) {
        if (c->graphs[i].exec)
            cnd_cuda_graph_destroy(c->graphs[i].exec);
        free(c->graphs[i].ops);
    }
    struct dbuf *bufs[] = {&c->meta,    &c->act,   &c->xconv, &c->deq,    &c->part_acc,
                           &c->part_ml, &c->tiles, &c->gidx,  &c->blas_ws};
    for (size_t i = 0; i < ARRAY_SIZE(bufs); i++)
        if (bufs[i]->p)
            cnd_cuda_free(bufs[i]->p);
    if (c->wmem)
        cnd_cuda_free(c->wmem);
    if (c->kv_mem)
        cnd_cuda_free(c->kv_mem);
    if (c->stage)
        cnd_cuda_free_host(c->stage);
    if (c->blas)
        cnd_cuda_blas_destroy(c->blas);
    if (c->stream)
        cnd_cuda_stream_destroy(c->stream);
    free(c->ops);
    free(c->posts);
    free(c->wmap);
    free(c->seq_rows);
    free(c->seq_maxpos);
    free(c->host_tiles);
    free(c);
}

static const struct backend_ops backend_cuda_ops = {
    .name = "cuda",
    .destroy = cuda_destroy,
    .alloc = cuda_alloc,
    .free = cuda_free,
    .upload = cuda_upload,
    .download = cuda_download,
    .sync = cuda_sync,
    .load_model = cuda_load_model,
    .weight = cuda_weight,
    .kv_init = cuda_kv_init,
    .begin_batch = cuda_begin_batch,
    .get_rows = cuda_get_rows,
    .rmsnorm = cuda_rmsnorm,
    .matmul = cuda_matmul,
    .rope = cuda_rope,
    .attention = cuda_attention,
    .silu_mul = cuda_silu_mul,
    .add = cuda_add,
    .gather_rows = cuda_gather_rows,
};

int backend_cuda_device_count(void)
{
    return cnd_cuda_device_count();
}

int backend_cuda_device_info(int device, struct backend_cuda_device_info *info, char *err)
{
    memset(info, 0, sizeof(*info));
    struct cnd_cuda_device_info di;
    if (cnd_cuda_device_info(device, &di) != 0) {
        err_set(err, "CUDA device %d: %s", device, cnd_cuda_last_error());
        return CND_EDEVICE;
    }
    memcpy(info->name, di.name, sizeof(info->name));
    info->name[sizeof(info->name) - 1] = 0;
    info->free_bytes = di.free_bytes;
    info->total_bytes = di.total_bytes;
    info->cc_major = di.cc_major;
    info->cc_minor = di.cc_minor;
    return 0;
}

bool backend_is_cuda(const struct backend *be)
{
    return be && be->ops == &backend_cuda_ops;
}

int backend_cuda_mem_info(struct backend *be, size_t *free_bytes, size_t *total_bytes)
{
    CND_UNUSED(be);
    return cnd_cuda_mem_info(free_bytes, total_bytes) == 0 ? 0 : CND_EDEVICE;
}

void backend_cuda_get_stats(struct backend *be, struct backend_cuda_stats *st)
{
    *st = cb(be)->stats;
}

struct backend *backend_cuda_create(const struct backend_cuda_params *p, char *err)
{
    const int dev = p ? p->device : 0;
    const int count = cnd_cuda_device_count();
    if (count == 0) {
        const char *vis = getenv("CUDA_VISIBLE_DEVICES");
        err_set(err, "no CUDA device visible%s%s%s", vis ? " (CUDA_VISIBLE_DEVICES=" : "",
                vis ? vis : "", vis ? ")" : "");
        return NULL;
    }
    if (dev < 0 || dev >= count) {
        err_set(err, "CUDA device %d does not exist (%d visible)", dev, count);
        return NULL;
    }
    struct cnd_cuda_device_info di;
    if (cnd_cuda_device_info(dev, &di) != 0 || cnd_cuda_set_device(dev) != 0) {
        err_set(err, "cannot use CUDA device %d: %s", dev, cnd_cuda_last_error());
        return NULL;
    }
    struct cuda_be *c = xcalloc(1, sizeof(*c));
    c->base.ops = &backend_cuda_ops;
    c->device = dev;
    memcpy(c->name, di.name, sizeof(c->name));
    c->name[sizeof(c->name) - 1] = 0;
    const char *g = getenv("CINDER_CUDA_GRAPHS");
    c->graphs_enabled = !(g && strcmp(g, "0") == 0);
    if (cnd_cuda_stream_create(&c->stream) != 0 ||
        cnd_cuda_malloc(&c->blas_ws.p, CUDA_BLAS_WORKSPACE) != 0 ||
        cnd_cuda_blas_create(&c->blas, c->stream, c->blas_ws.p, CUDA_BLAS_WORKSPACE) != 0 ||
        cnd_cuda_malloc_host((void **)&c->stage, CUDA_STAGE_INIT) != 0) {
        err_set(err, "CUDA start-up on device %d (%s) failed: %s", dev, di.name,
                cnd_cuda_last_error());
        cuda_destroy(&c->base);
        return NULL;
    }
    c->blas_ws.cap = CUDA_BLAS_WORKSPACE;
    c->stage_cap = CUDA_STAGE_INIT;
    log_info("cuda: device %d: %s (sm_%d%d), %.1f GiB free of %.1f GiB%s", dev, di.name,
             di.cc_major, di.cc_minor, (double)di.free_bytes / 1073741824.0,
             (double)di.total_bytes / 1073741824.0, c->graphs_enabled ? "" : ", graphs off");
    return &c->base;
}

#endif /* CND_HAVE_CUDA */
