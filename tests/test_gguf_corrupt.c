/* ctest-labels: unit */
/* test_gguf_corrupt.c: corrupted variants of every real GGUF under $CND_SHARED_DIR/models
 * (recursively): truncations at many points (header, each kv, tensor infos, just before the
 * end), huge counts and lengths, bad versions, bad kv/array/tensor types, bad dims and offsets,
 * overlapping tensors, and seeded random byte flips. Each variant is parsed in-process from a
 * buffer that ends at a PROT_NONE page, so any read past the end crashes the test. Structurally
 * invalid variants must be rejected with a message naming the file, a field and the offset;
 * variants that load must keep the reader's promises (every view inside the buffer, tensors
 * aligned and disjoint). The layout of each original is worked out here independently of the
 * reader, to know where its fields are and how short it may get. */
#include "cinder/common.h" /* first: _GNU_SOURCE */
#include "test.h"

#include "cinder/gguf.h"
#include "cinder/status.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_FILES 256

/* ---- a buffer whose last byte sits right before an inaccessible page ---- */

struct guarded {
    uint8_t *map;
    size_t map_len;
    uint8_t *p; /* the bytes: p + n is the guard page */
    size_t n;
};

static size_t page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

static bool guarded_init(struct guarded *g, const uint8_t *src, size_t n)
{
    size_t pg = page_size(), body = (n + pg - 1) / pg * pg;
    g->map_len = body + pg;
    void *m = mmap(NULL, g->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return false;
    g->map = m;
    if (mprotect(g->map + body, pg, PROT_NONE) != 0) {
        munmap(m, g->map_len);
        return false;
    }
    g->p = g->map + body - n;
    g->n = n;
    if (n)
        memcpy(g->p, src, n);
    return true;
}

static void guarded_free(struct guarded *g)
{
    munmap(g->map, g->map_len);
}

/* ---- layout of a valid file, found without the reader ---- */

struct kv_pos {
    uint64_t key;   /* the key's length field */
    uint64_t type;  /* the value type */
    uint64_t value; /* the value (arrays: their element type) */
    uint32_t t;
    uint32_t arr_t;
};

struct ti_pos {
    uint64_t start, n_dims, type, offset_field;
    uint64_t offset, size;
};

struct layout {
    uint32_t version;
    uint64_t n_kv, n_tensors;
    struct kv_pos *kv;
    struct ti_pos *ti;
    uint64_t meta_end; /* end of the tensor infos */
    uint64_t data_off;
    uint32_t alignment;
    uint64_t required_end;  /* shortest valid length */
    uint64_t n_arr_strings; /* parse cost: strings in arrays (vocabularies: ~10^5) */
};

static uint64_t rd64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static uint32_t rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t scalar_size(uint32_t t)
{
    static const uint64_t sz[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < 13 ? sz[t] : 0;
}

/* Trusts the file (it is one of the valid originals); returns false if it is not GGUF v2/3. */
static bool layout_scan(const uint8_t *b, size_t n, struct layout *L)
{
    memset(L, 0, sizeof(*L));
    if (n < 24 || memcmp(b, "GGUF", 4) != 0)
        return false;
    L->version = rd32(b + 4);
    L->n_tensors = rd64(b + 8);
    L->n_kv = rd64(b + 16);
    L->kv = calloc(L->n_kv + 1, sizeof(*L->kv));
    L->ti = calloc(L->n_tensors + 1, sizeof(*L->ti));
    L->alignment = GGUF_DEFAULT_ALIGNMENT;
    uint64_t pos = 24;
    for (uint64_t i = 0; i < L->n_kv; i++) {
        struct kv_pos *k = &L->kv[i];
        k->key = pos;
        uint64_t klen = rd64(b + pos);
        bool is_align = klen == 17 && memcmp(b + pos + 8, "general.alignment", 17) == 0;
        pos += 8 + klen;
        k->type = pos;
        k->t = rd32(b + pos);
        pos += 4;
        k->value = pos;
        if (is_align)
            L->alignment = rd32(b + pos);
        if (k->t == GGUF_TYPE_STRING) {
            pos += 8 + rd64(b + pos);
        } else if (k->t == GGUF_TYPE_ARRAY) {
            k->arr_t = rd32(b + pos);
            uint64_t cnt = rd64(b + pos + 4);
            pos += 12;
            if (k->arr_t == GGUF_TYPE_STRING) {
                L->n_arr_strings += cnt;
                for (uint64_t j = 0; j < cnt; j++)
                    pos += 8 + rd64(b + pos);
            } else {
                pos += cnt * scalar_size(k->arr_t);
            }
        } else {
            pos += scalar_size(k->t);
        }
    }
    for (uint64_t i = 0; i < L->n_tensors; i++) {
        struct ti_pos *t = &L->ti[i];
        t->start = pos;
        pos += 8 + rd64(b + pos);
        t->n_dims = pos;
        uint32_t nd = rd32(b + pos);
        pos += 4;
        uint64_t n_el = 1;
        for (uint32_t d = 0; d < nd; d++, pos += 8)
            n_el *= rd64(b + pos);
        t->type = pos;
        enum cnd_dtype ty = (enum cnd_dtype)rd32(b + pos);
        pos += 4;
        t->offset_field = pos;
        t->offset = rd64(b + pos);
        pos += 8;
        t->size = n_el / (uint64_t)dtype_block_size(ty) * (uint64_t)dtype_type_size(ty);
    }
    L->meta_end = pos;
    L->data_off = (pos + L->alignment - 1) / L->alignment * L->alignment;
    L->required_end = L->meta_end;
    if (L->n_tensors > 0) {
        L->required_end = L->data_off;
        for (uint64_t i = 0; i < L->n_tensors; i++) {
            uint64_t end = L->data_off + L->ti[i].offset + L->ti[i].size;
            if (end > L->required_end)
                L->required_end = end;
        }
    }
    return true;
}

static void layout_free(struct layout *L)
{
    free(L->kv);
    free(L->ti);
}

/* ---- checking one variant ---- */

struct stats {
    long variants, rejected, loaded;
};

static volatile uint64_t sink;

static void touch_ends(const void *p, uint64_t n)
{
    if (n) {
        sink += ((const volatile uint8_t *)p)[0];
        sink += ((const volatile uint8_t *)p)[n - 1];
    }
}

static bool inside(const uint8_t *b, size_t n, const void *p, uint64_t len)
{
    const uint8_t *q = p;
    return len == 0 || (q && q >= b && q <= b + n && len <= (uint64_t)(b + n - q));
}

/* Parse b[0..n); returns true if it loaded. Checks the message or the promises. */
static bool try_variant(const char *path, const uint8_t *b, size_t n, const char *what,
                        struct stats *st)
{
    char err[CND_ERR_LEN];
    err[0] = 0;
    st->variants++;
    struct gguf_file *g = gguf_open_memory(b, n, path, err);
    if (!g) {
        st->rejected++;
        CHECK_MSG(strncmp(err, path, strlen(path)) == 0 && strstr(err, ": field '") &&
                      strstr(err, " at offset "),
                  "%s: bad message: %s", what, err);
        return false;
    }
    st->loaded++;
    bool ok = true;
    for (int64_t i = 0; i < gguf_n_kv(g); i++) {
        enum gguf_type t = gguf_kv_type(g, i);
        if (t == GGUF_TYPE_STRING) {
            struct gguf_str s = gguf_kv_get_str(g, i);
            ok &= inside(b, n, s.ptr, s.len);
            touch_ends(s.ptr, s.len);
        } else if (t == GGUF_TYPE_ARRAY) {
            uint64_t cnt = gguf_kv_arr_n(g, i);
            if (gguf_kv_arr_type(g, i) == GGUF_TYPE_STRING) {
                for (uint64_t j = 0; j < cnt; j++) {
                    struct gguf_str s = gguf_arr_get_str(g, i, j);
                    ok &= inside(b, n, s.ptr, s.len);
                    touch_ends(s.ptr, s.len);
                }
            } else if (cnt > 0) {
                sink +=
                    (uint64_t)gguf_arr_get_i64(g, i, 0) + (uint64_t)gguf_arr_get_i64(g, i, cnt - 1);
                double f = gguf_arr_get_f64(g, i, cnt - 1);
                sink += f == f;
            }
        } else {
            int64_t iv;
            double fv;
            ok &= gguf_kv_get_i64(g, i, &iv) && gguf_kv_get_f64(g, i, &fv);
        }
    }
    uint32_t a = gguf_alignment(g);
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const struct gguf_tensor_info *t = gguf_tensor(g, i);
        ok &= inside(b, n, t->data, t->size_bytes) && t->offset % a == 0;
        ok &= (const uint8_t *)t->data == b + gguf_data_offset(g) + t->offset;
        touch_ends(t->data, t->size_bytes);
    }
    CHECK_MSG(ok, "%s: loaded, but a view is outside the buffer or misaligned", what);
    gguf_close(g);
    return true;
}

static void expect_reject(const char *path, const uint8_t *b, size_t n, const char *what,
                          struct stats *st)
{
    CHECK_MSG(!try_variant(path, b, n, what, st), "%s: %s: accepted", path, what);
}

/* ---- variants ---- */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void truncations(const char *path, const uint8_t *orig, size_t size, const struct layout *L,
                        uint64_t *rng, struct stats *st)
{
    uint64_t cuts[1024];
    size_t nc = 0;
#define CUT(x)                                                                                     \
    do {                                                                                           \
        if (nc < ARRAY_SIZE(cuts))                                                                 \
            cuts[nc++] = (x);                                                                      \
    } while (0)
    for (uint64_t i = 0; i < 40; i++)
        CUT(i);
    bool heavy = L->n_arr_strings > 20000;
    for (uint64_t i = 0; i < L->n_kv; i++) {
        if (i < (heavy ? 12 : 24) || i + 4 > L->n_kv || rng_next(rng) % 4 == 0) {
            CUT(L->kv[i].key + 3);
            CUT(L->kv[i].type);
            CUT(L->kv[i].type + 2);
            CUT(L->kv[i].value + 1);
            if (L->kv[i].t == GGUF_TYPE_ARRAY)
                CUT(L->kv[i].value + 9);
        }
    }
    for (uint64_t i = 0; i < L->n_tensors; i++) {
        if (i < 8 || i + 2 > L->n_tensors || rng_next(rng) % 8 == 0) {
            CUT(L->ti[i].start);
            CUT(L->ti[i].start + 5);
            CUT(L->ti[i].n_dims + 2);
            CUT(L->ti[i].type + 1);
            CUT(L->ti[i].offset_field + 7);
        }
    }
    CUT(L->meta_end - 1);
    if (L->n_tensors > 0) {
        CUT(L->meta_end);
        CUT(L->data_off - 1);
        CUT(L->data_off);
    }
    CUT(L->required_end - 1);
    CUT(L->required_end / 2);
    for (int i = 0; i < 24; i++)
        CUT(rng_next(rng) % L->required_end);
    for (size_t i = 0; i < nc; i++) {
        uint64_t len = cuts[i];
        if (len > size)
            continue;
        struct guarded g;
        if (!guarded_init(&g, orig, (size_t)len)) {
            CHECK_MSG(0, "mmap failed");
            return;
        }
        char what[64];
        snprintf(what, sizeof(what), "truncated to %" PRIu64, len);
        if (len < L->required_end)
            expect_reject(path, g.p, g.n, what, st);
        else
            CHECK_MSG(try_variant(path, g.p, g.n, what, st), "%s: %s: rejected", path, what);
        guarded_free(&g);
    }
    /* the shortest valid length loads */
    struct guarded g;
    if (guarded_init(&g, orig, (size_t)L->required_end)) {
        CHECK_MSG(try_variant(path, g.p, g.n, "at required end", st), "%s: shortest valid rejected",
                  path);
        guarded_free(&g);
    }
#undef CUT
}

/* Patch bytes at off in buf (restored afterwards) and require a rejection. */
static void patch_reject(const char *path, uint8_t *buf, size_t size, uint64_t off, const void *v,
                         size_t vlen, const char *what, struct stats *st)
{
    if (off + vlen > size)
        return;
    uint8_t save[8];
    memcpy(save, buf + off, vlen);
    memcpy(buf + off, v, vlen);
    expect_reject(path, buf, size, what, st);
    memcpy(buf + off, save, vlen);
}

static void patch_u32(const char *path, uint8_t *buf, size_t size, uint64_t off, uint32_t v,
                      const char *what, struct stats *st)
{
    char w[128];
    snprintf(w, sizeof(w), "%s = %" PRIu32 " at %" PRIu64, what, v, off);
    patch_reject(path, buf, size, off, &v, 4, w, st);
}

static void patch_u64(const char *path, uint8_t *buf, size_t size, uint64_t off, uint64_t v,
                      const char *what, struct stats *st)
{
    char w[128];
    snprintf(w, sizeof(w), "%s = %" PRIu64 " at %" PRIu64, what, v, off);
    patch_reject(path, buf, size, off, &v, 8, w, st);
}

static void field_corruptions(const char *path, uint8_t *buf, size_t size, const struct layout *L,
                              uint64_t *rng, struct stats *st)
{
    static const uint32_t bad_versions[] = {0, 1, 4, 0x03000000, 0x02000000, UINT32_MAX};
    for (size_t i = 0; i < ARRAY_SIZE(bad_versions); i++)
        patch_u32(path, buf, size, 4, bad_versions[i], "version", st);
    const uint64_t huge[] = {1ull << 60, 1ull << 63, UINT64_MAX, (uint64_t)size};
    for (size_t i = 0; i < ARRAY_SIZE(huge); i++) {
        patch_u64(path, buf, size, 8, huge[i], "n_tensors", st);
        patch_u64(path, buf, size, 16, huge[i], "n_kv", st);
    }
    patch_reject(path, buf, size, 0, "GGUG", 4, "magic", st);
    bool heavy = L->n_arr_strings > 20000; /* every variant parses a big vocabulary */
    for (uint64_t i = 0; i < L->n_kv; i++) {
        const struct kv_pos *k = &L->kv[i];
        if (heavy && i >= 8 && k->t != GGUF_TYPE_ARRAY && rng_next(rng) % 3 != 0)
            continue;
        patch_u64(path, buf, size, k->key, 1ull << 63, "key length", st);
        patch_u64(path, buf, size, k->key, (uint64_t)size, "key length", st);
        patch_u32(path, buf, size, k->type, GGUF_TYPE_COUNT, "kv type", st);
        patch_u32(path, buf, size, k->type, UINT32_MAX, "kv type", st);
        if (k->t == GGUF_TYPE_STRING)
            patch_u64(path, buf, size, k->value, 1ull << 63, "string length", st);
        if (k->t == GGUF_TYPE_ARRAY) {
            patch_u32(path, buf, size, k->value, GGUF_TYPE_ARRAY, "array element type", st);
            patch_u32(path, buf, size, k->value, 13, "array element type", st);
            patch_u64(path, buf, size, k->value + 4, 1ull << 60, "array count", st);
            patch_u64(path, buf, size, k->value + 4, UINT64_MAX, "array count", st);
            if (k->arr_t == GGUF_TYPE_STRING && rd64(buf + k->value + 4) > 0)
                patch_u64(path, buf, size, k->value + 12, 1ull << 63, "array string length", st);
        }
    }
    if (L->n_kv > 0) /* the key of one kv made equal to another's: only when lengths match */
        for (uint64_t i = 1; i < L->n_kv && i < 64; i++) {
            const struct kv_pos *a = &L->kv[i - 1], *b = &L->kv[i];
            uint64_t la = rd64(buf + a->key), lb = rd64(buf + b->key);
            if (la != lb || la > 256)
                continue;
            uint8_t save[256];
            memcpy(save, buf + b->key + 8, lb);
            memcpy(buf + b->key + 8, buf + a->key + 8, la);
            expect_reject(path, buf, size, "duplicate key", st);
            memcpy(buf + b->key + 8, save, lb);
            break;
        }
    static const uint32_t bad_types[] = {4, 5, 31, 36, 40, 1000, UINT32_MAX};
    for (uint64_t i = 0; i < L->n_tensors; i++) {
        if (!(i < 8 || i + 2 > L->n_tensors || rng_next(rng) % 6 == 0))
            continue;
        const struct ti_pos *t = &L->ti[i];
        for (size_t j = 0; j < ARRAY_SIZE(bad_types); j++)
            patch_u32(path, buf, size, t->type, bad_types[j], "tensor type", st);
        patch_u32(path, buf, size, t->n_dims, 0, "n_dims", st);
        patch_u32(path, buf, size, t->n_dims, 5, "n_dims", st);
        patch_u32(path, buf, size, t->n_dims, UINT32_MAX, "n_dims", st);
        patch_u64(path, buf, size, t->start, 1ull << 63, "tensor name length", st);
        patch_u64(path, buf, size, t->n_dims + 4, 1ull << 62, "ne[0]", st);
        patch_u64(path, buf, size, t->n_dims + 4, UINT64_MAX, "ne[0]", st);
        patch_u64(path, buf, size, t->offset_field, 1ull << 63, "tensor offset", st);
        patch_u64(path, buf, size, t->offset_field, size, "tensor offset", st);
        if (L->alignment > 1)
            patch_u64(path, buf, size, t->offset_field, t->offset + 1, "tensor offset", st);
        if (t->size > 0)
            patch_u64(path, buf, size, t->offset_field,
                      (size - L->data_off - t->size / 2) / L->alignment * L->alignment +
                          L->alignment,
                      "tensor offset past end", st);
        /* overlap: move onto the next tensor with data */
        for (uint64_t k = 1; k < L->n_tensors && t->size > 0; k++) {
            const struct ti_pos *o = &L->ti[(i + k) % L->n_tensors];
            if (o->size > 0) {
                patch_u64(path, buf, size, t->offset_field, o->offset, "tensor offset overlap", st);
                break;
            }
        }
        /* a name equal to the previous one's, when lengths match */
        if (i > 0) {
            const struct ti_pos *p = &L->ti[i - 1];
            uint64_t lp = rd64(buf + p->start), lt = rd64(buf + t->start);
            if (lp == lt && lt <= 256) {
                uint8_t save[256];
                memcpy(save, buf + t->start + 8, lt);
                memcpy(buf + t->start + 8, buf + p->start + 8, lp);
                expect_reject(path, buf, size, "duplicate tensor name", st);
                memcpy(buf + t->start + 8, save, lt);
            }
        }
    }
}

static void flips(const char *path, uint8_t *buf, size_t size, const struct layout *L, int count,
                  uint64_t *rng, struct stats *st)
{
    uint64_t head = L->meta_end < 4096 ? L->meta_end : 4096;
    for (int i = 0; i < count; i++) {
        int nb = 1 + (int)(rng_next(rng) % 3);
        uint64_t pos[3];
        uint8_t save[3];
        bool only_data = true;
        for (int k = 0; k < nb; k++) {
            uint64_t r = rng_next(rng) % 10, p;
            if (r < 5)
                p = rng_next(rng) % head; /* header and first kvs */
            else if (r < 8)
                p = rng_next(rng) % L->meta_end; /* anywhere in the metadata */
            else
                p = rng_next(rng) % size; /* anywhere */
            pos[k] = p;
            save[k] = buf[p];
            uint8_t x = (uint8_t)(rng_next(rng) % 255 + 1);
            if (rng_next(rng) % 2)
                x = (uint8_t)(1u << (rng_next(rng) % 8)); /* single bit */
            buf[p] ^= x;
            if (p < L->data_off)
                only_data = false;
        }
        char what[96];
        snprintf(what, sizeof(what), "flip #%d at %" PRIu64 " (+%d more)", i, pos[0], nb - 1);
        bool loaded = try_variant(path, buf, size, what, st);
        if (only_data)
            CHECK_MSG(loaded, "%s: %s inside tensor data was rejected", path, what);
        for (int k = nb - 1; k >= 0; k--)
            buf[pos[k]] = save[k];
    }
}

/* ---- driver ---- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void find_ggufs(const char *dir, char **out, int *n)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) && *n < MAX_FILES) {
        if (e->d_name[0] == '.')
            continue;
        char p[1024];
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        struct stat s;
        if (stat(p, &s) != 0)
            continue;
        size_t l = strlen(e->d_name);
        if (S_ISDIR(s.st_mode))
            find_ggufs(p, out, n);
        else if (S_ISREG(s.st_mode) && l > 5 && strcmp(e->d_name + l - 5, ".gguf") == 0)
            out[(*n)++] = strdup(p);
    }
    closedir(d);
}

static uint8_t *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = len > 0 ? malloc((size_t)len) : NULL;
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *n = (size_t)len;
    return b;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static char *files[MAX_FILES];
static int n_files;
static struct stats total;

static void run_file(const char *path)
{
    size_t size;
    uint8_t *orig = read_all(path, &size);
    CHECK_MSG(orig != NULL, "cannot read %s", path);
    if (!orig)
        return;
    double t0 = now_s();
    struct stats st = {0};
    /* the original loads, through the mapping and from memory */
    char err[CND_ERR_LEN];
    struct gguf_file *gf = gguf_open(path, err);
    CHECK_MSG(gf != NULL, "%s", err);
    gguf_close(gf);
    struct layout L;
    bool scanned = layout_scan(orig, size, &L);
    CHECK_MSG(scanned, "%s: not GGUF", path);
    struct guarded full;
    if (!scanned || !guarded_init(&full, orig, size)) {
        free(orig);
        return;
    }
    CHECK_MSG(try_variant(path, full.p, full.n, "original", &st), "%s: original rejected", path);
    gf = gguf_open_memory(full.p, full.n, path, err);
    if (gf) { /* our layout agrees with the reader's */
        CHECK_EQ_INT(gguf_data_offset(gf), L.n_tensors ? L.data_off : gguf_data_offset(gf));
        CHECK_EQ_INT(gguf_alignment(gf), L.alignment);
        CHECK_EQ_INT(gguf_n_tensors(gf), L.n_tensors);
        for (uint64_t i = 0; i < L.n_tensors; i++)
            CHECK_EQ_INT(gguf_tensor(gf, (int64_t)i)->size_bytes, L.ti[i].size);
        gguf_close(gf);
    }
    uint64_t rng = 0x5eed;
    for (const char *c = path; *c; c++)
        rng = rng * 131 + (uint8_t)*c;
    truncations(path, orig, size, &L, &rng, &st);
    field_corruptions(path, full.p, full.n, &L, &rng, &st);
    /* a few hundred flips, fewer where each parse walks a big vocabulary */
    int n_flips = L.n_arr_strings < 10000 ? 400 : 250;
    flips(path, full.p, full.n, &L, n_flips, &rng, &st);
    CHECK_MSG(memcmp(full.p, orig, size) == 0, "%s: buffer not restored", path);
    guarded_free(&full);
    layout_free(&L);
    free(orig);
    printf("  %-60s %5ld variants, %5ld rejected, %4ld loaded, %.2f s\n",
           path + strlen(CND_SHARED_DIR "/models/"), st.variants, st.rejected, st.loaded,
           now_s() - t0);
    total.variants += st.variants;
    total.rejected += st.rejected;
    total.loaded += st.loaded;
}

static void test_every_shared_gguf(void)
{
    for (int i = 0; i < n_files; i++)
        run_file(files[i]);
    printf("  total: %d files, %ld variants, %ld rejected, %ld loaded\n", n_files, total.variants,
           total.rejected, total.loaded);
    CHECK(total.rejected > 0 && total.loaded > 0);
}

int main(void)
{
    find_ggufs(CND_SHARED_DIR "/models", files, &n_files);
    if (n_files == 0) {
        printf("no GGUF files under %s/models: skipped\n", CND_SHARED_DIR);
        return TEST_SKIP;
    }
    qsort(files, (size_t)n_files, sizeof(files[0]), cmp_str);
    RUN(test_every_shared_gguf);
    for (int i = 0; i < n_files; i++)
        free(files[i]);
    return test_summary();
}
