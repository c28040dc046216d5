/* gguf.c: the GGUF reader. It owns the mapping of one model file and an index of its metadata
 * and tensors; everything else (values, strings, tensor bytes) stays in the mapping.
 *
 * Layout (v2 and v3 are the same little-endian layout; v1's 32-bit counts are not supported):
 *   "GGUF" u32 version, u64 n_tensors, u64 n_kv,
 *   n_kv x { string key, u32 type, value },   string = u64 len + bytes, array = u32 type, u64 n, n
 * x value n_tensors x { string name, u32 n_dims, u64 ne[n_dims], u32 type, u64 offset }, padding to
 * general.alignment (default 32), then the data section.
 *
 * The file is untrusted: every length is checked against the bytes left before it is used, and
 * every count against the smallest size its items could take, so a lying header can neither
 * read past the mapping nor make us allocate more than a small multiple of the file size. */
#include "cinder/gguf.h"
#include "cinder/mapped_file.h"
#include "cinder/status.h"
#include "cinder/xalloc.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct gguf_kv {
    char *key;
    uint64_t key_off; /* absolute offset of the key's length, for messages */
    enum gguf_type type;
    uint64_t value_off;      /* absolute offset of the value (for arrays: of the first element) */
    enum gguf_type arr_type; /* arrays only */
    uint64_t arr_n;          /* arrays only */
    uint64_t *arr_str_off;   /* string arrays only: absolute offset of each element's length */
};

struct gguf_file {
    struct mapped_file mf;
    uint32_t version;
    uint32_t alignment;
    uint64_t data_off;
    int64_t n_kv;
    struct gguf_kv *kvs;
    int64_t n_tensors;
    struct gguf_tensor_info *tensors;
};

static const size_t gguf_type_size[GGUF_TYPE_COUNT] = {
    [GGUF_TYPE_UINT8] = 1,   [GGUF_TYPE_INT8] = 1,  [GGUF_TYPE_UINT16] = 2,  [GGUF_TYPE_INT16] = 2,
    [GGUF_TYPE_UINT32] = 4,  [GGUF_TYPE_INT32] = 4, [GGUF_TYPE_FLOAT32] = 4, [GGUF_TYPE_BOOL] = 1,
    [GGUF_TYPE_STRING] = 0,  [GGUF_TYPE_ARRAY] = 0, [GGUF_TYPE_UINT64] = 8,  [GGUF_TYPE_INT64] = 8,
    [GGUF_TYPE_FLOAT64] = 8,
};

const char *gguf_type_name(enum gguf_type t)
{
    static const char *names[GGUF_TYPE_COUNT] = {
        "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "arr", "u64", "i64", "f64",
    };
    return (unsigned)t < GGUF_TYPE_COUNT ? names[t] : "?";
}

/* ---- bounded reader ---- */

struct rd {
    const uint8_t *p;
    uint64_t size;
    uint64_t pos;
    const char *path;
    char *err;
    char field[96]; /* what is being read, for messages */
};

#define RD_FIELD(r, ...) snprintf((r)->field, sizeof((r)->field), __VA_ARGS__)

static int rd_fail(struct rd *r, uint64_t off, const char *why)
{
    /* field names carry keys and tensor names from the file: keep control bytes off terminals */
    for (char *c = r->field; *c; c++) {
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
    }
    err_set(r->err, "%s: field '%s' at offset %" PRIu64 ": %s", r->path, r->field, off, why);
    return CND_EFORMAT;
}

static int rd_bytes(struct rd *r, void *dst, uint64_t n)
{
    if (n > r->size - r->pos)
        return rd_fail(r, r->pos, "file truncated");
    memcpy(dst, r->p + r->pos, n);
    r->pos += n;
    return 0;
}

static int rd_u32(struct rd *r, uint32_t *v)
{
    return rd_bytes(r, v, 4);
}

static int rd_u64(struct rd *r, uint64_t *v)
{
    return rd_bytes(r, v, 8);
}

/* A string: u64 length then bytes; returns the offset of the bytes. */
static int rd_str(struct rd *r, uint64_t *off, uint64_t *len)
{
    uint64_t at = r->pos;
    if (rd_u64(r, len) != 0)
        return CND_EFORMAT;
    if (*len > r->size - r->pos) {
        char why[96];
        snprintf(why, sizeof(why), "string length %" PRIu64 " runs past the end of the file", *len);
        return rd_fail(r, at, why);
    }
    *off = r->pos;
    r->pos += *len;
    return 0;
}

/* Skip one value of scalar type t (not string/array). */
static int rd_skip_scalar(struct rd *r, enum gguf_type t)
{
    size_t n = gguf_type_size[t];
    if (n > r->size - r->pos)
        return rd_fail(r, r->pos, "file truncated");
    r->pos += n;
    return 0;
}

static int gguf_read_kv(struct gguf_file *g, struct rd *r, int64_t i)
{
    struct gguf_kv *kv = &g->kvs[i];
    uint64_t koff, klen;
    RD_FIELD(r, "kv[%" PRId64 "].key", i);
    kv->key_off = r->pos;
    if (rd_str(r, &koff, &klen) != 0)
        return CND_EFORMAT;
    if (klen == 0 || memchr(r->p + koff, 0, klen))
        return rd_fail(r, koff - 8, "empty key or key containing NUL");
    kv->key = xstrndup((const char *)r->p + koff, klen);
    RD_FIELD(r, "%.80s.type", kv->key);
    uint64_t toff = r->pos;
    uint32_t t;
    if (rd_u32(r, &t) != 0)
        return CND_EFORMAT;
    if (t >= GGUF_TYPE_COUNT) {
        char why[64];
        snprintf(why, sizeof(why), "unknown value type %" PRIu32, t);
        return rd_fail(r, toff, why);
    }
    kv->type = (enum gguf_type)t;
    RD_FIELD(r, "%.80s", kv->key);
    if (t == GGUF_TYPE_STRING) {
        kv->value_off = r->pos;
        uint64_t off, len;
        return rd_str(r, &off, &len);
    }
    if (t != GGUF_TYPE_ARRAY) {
        kv->value_off = r->pos;
        return rd_skip_scalar(r, kv->type);
    }
    uint32_t at;
    uint64_t n;
    uint64_t aoff = r->pos;
    if (rd_u32(r, &at) != 0 || rd_u64(r, &n) != 0)
        return CND_EFORMAT;
    if (at >= GGUF_TYPE_COUNT || at == GGUF_TYPE_ARRAY) {
        char why[80];
        snprintf(why, sizeof(why), "unsupported array element type %" PRIu32, at);
        return rd_fail(r, aoff, why);
    }
    kv->arr_type = (enum gguf_type)at;
    kv->arr_n = n;
    kv->value_off = r->pos;
    uint64_t left = r->size - r->pos;
    if (at == GGUF_TYPE_STRING) {
        /* every string takes at least its 8-byte length, which bounds the index we allocate */
        if (n > left / 8) {
            char why[96];
            snprintf(why, sizeof(why), "array of %" PRIu64 " strings cannot fit in the file", n);
            return rd_fail(r, aoff + 4, why);
        }
        kv->arr_str_off = xmalloc((size_t)(n ? n : 1) * sizeof(uint64_t));
        for (uint64_t j = 0; j < n; j++) {
            /* the fast path formats no field name (vocabularies hold 10^5 strings) */
            uint64_t room = r->size - r->pos, len;
            if (room >= 8) {
                memcpy(&len, r->p + r->pos, 8);
                if (len <= room - 8) {
                    kv->arr_str_off[j] = r->pos;
                    r->pos += 8 + len;
                    continue;
                }
            }
            uint64_t off;
            RD_FIELD(r, "%.80s[%" PRIu64 "]", kv->key, j);
            return rd_str(r, &off, &len) != 0 ? CND_EFORMAT : rd_fail(r, r->pos, "internal");
        }
        return 0;
    }
    size_t es = gguf_type_size[at];
    if (n > left / es) {
        char why[96];
        snprintf(why, sizeof(why), "array of %" PRIu64 " x %zu bytes runs past the end", n, es);
        return rd_fail(r, aoff + 4, why);
    }
    r->pos += n * es;
    return 0;
}

static int gguf_read_tensor_info(struct gguf_file *g, struct rd *r, int64_t i)
{
    struct gguf_tensor_info *ti = &g->tensors[i];
    uint64_t noff, nlen;
    RD_FIELD(r, "tensor_infos[%" PRId64 "].name", i);
    if (rd_str(r, &noff, &nlen) != 0)
        return CND_EFORMAT;
    if (memchr(r->p + noff, 0, nlen))
        return rd_fail(r, noff - 8, "name contains NUL");
    ti->name = xstrndup((const char *)r->p + noff, nlen);
    RD_FIELD(r, "tensor '%.60s'.n_dims", ti->name);
    uint64_t at = r->pos;
    if (rd_u32(r, &ti->n_dims) != 0)
        return CND_EFORMAT;
    if (ti->n_dims == 0 || ti->n_dims > CND_MAX_DIMS) {
        char why[64];
        snprintf(why, sizeof(why), "n_dims %" PRIu32 " not in 1..%d", ti->n_dims, CND_MAX_DIMS);
        return rd_fail(r, at, why);
    }
    for (int d = 0; d < CND_MAX_DIMS; d++)
        ti->ne[d] = 1;
    /* The product of the non-zero dims must fit in int64, so that callers may multiply the
     * dims in any order (a zero dim must not hide two huge ones). */
    uint64_t n_el = 1, n_nonzero = 1;
    for (uint32_t d = 0; d < ti->n_dims; d++) {
        RD_FIELD(r, "tensor '%.60s'.ne[%" PRIu32 "]", ti->name, d);
        at = r->pos;
        uint64_t ne;
        if (rd_u64(r, &ne) != 0)
            return CND_EFORMAT;
        if (ne > (uint64_t)INT64_MAX || (ne != 0 && n_nonzero > (uint64_t)INT64_MAX / ne)) {
            char why[96];
            snprintf(why, sizeof(why), "dimension %" PRIu64 " overflows the element count", ne);
            return rd_fail(r, at, why);
        }
        ti->ne[d] = (int64_t)ne;
        n_el *= ne;
        if (ne != 0)
            n_nonzero *= ne;
    }
    RD_FIELD(r, "tensor '%.60s'.type", ti->name);
    at = r->pos;
    uint32_t type;
    if (rd_u32(r, &type) != 0)
        return CND_EFORMAT;
    if (!dtype_is_valid(type)) {
        char why[64];
        snprintf(why, sizeof(why), "unknown tensor type %" PRIu32, type);
        return rd_fail(r, at, why);
    }
    ti->type = (enum cnd_dtype)type;
    int64_t bs = dtype_block_size(ti->type);
    if (ti->ne[0] % bs != 0) {
        char why[96];
        snprintf(why, sizeof(why),
                 "row length %" PRId64 " is not a multiple of the %s block (%" PRId64 ")",
                 ti->ne[0], dtype_name(ti->type), bs);
        return rd_fail(r, at, why);
    }
    /* n_el <= INT64_MAX, but 8-byte types (f64, i64) can still overflow 64 bits here; a wrapped
     * size would pass the bounds check below and describe far more data than the file holds */
    uint64_t n_blocks = n_el / (uint64_t)bs, ts = (uint64_t)dtype_type_size(ti->type);
    if (n_blocks > UINT64_MAX / ts) {
        char why[96];
        snprintf(why, sizeof(why), "%" PRIu64 " elements of %s overflow the byte size", n_el,
                 dtype_name(ti->type));
        return rd_fail(r, at, why);
    }
    ti->size_bytes = n_blocks * ts;
    RD_FIELD(r, "tensor '%.60s'.offset", ti->name);
    at = r->pos;
    if (rd_u64(r, &ti->offset) != 0)
        return CND_EFORMAT;
    return 0;
}

static int cmp_tensor_by_offset(const void *a, const void *b)
{
    const struct gguf_tensor_info *x = *(const struct gguf_tensor_info *const *)a;
    const struct gguf_tensor_info *y = *(const struct gguf_tensor_info *const *)b;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return x < y ? -1 : x > y; /* file order among equals: deterministic messages */
}

static int cmp_tensor_by_name(const void *a, const void *b)
{
    const struct gguf_tensor_info *x = *(const struct gguf_tensor_info *const *)a;
    const struct gguf_tensor_info *y = *(const struct gguf_tensor_info *const *)b;
    return strcmp(x->name, y->name);
}

static int cmp_kv_by_key(const void *a, const void *b)
{
    const struct gguf_kv *x = *(const struct gguf_kv *const *)a;
    const struct gguf_kv *y = *(const struct gguf_kv *const *)b;
    return strcmp(x->key, y->key);
}

static int gguf_parse(struct gguf_file *g, char *err)
{
    struct rd r = {.p = g->mf.data, .size = g->mf.size, .path = g->mf.path, .err = err};
    char magic[4];
    RD_FIELD(&r, "magic");
    if (rd_bytes(&r, magic, 4) != 0)
        return CND_EFORMAT;
    if (memcmp(magic, "GGUF", 4) != 0)
        return rd_fail(&r, 0, "not a GGUF file (magic is not \"GGUF\")");
    RD_FIELD(&r, "version");
    if (rd_u32(&r, &g->version) != 0)
        return CND_EFORMAT;
    if (g->version != 2 && g->version != 3) {
        char why[128];
        uint32_t v = g->version;
        uint32_t swapped = (v >> 24) | ((v >> 8) & 0xff00) | ((v << 8) & 0xff0000) | (v << 24);
        snprintf(why, sizeof(why), "unsupported GGUF version %" PRIu32 " (supported: 2, 3)%s", v,
                 swapped >= 1 && swapped <= 3 ? "; big-endian files are not supported" : "");
        return rd_fail(&r, 4, why);
    }
    uint64_t n_tensors, n_kv;
    RD_FIELD(&r, "n_tensors");
    if (rd_u64(&r, &n_tensors) != 0)
        return CND_EFORMAT;
    RD_FIELD(&r, "n_kv");
    if (rd_u64(&r, &n_kv) != 0)
        return CND_EFORMAT;
    uint64_t left = r.size - r.pos;
    /* smallest kv: 8-byte key length + 1 key byte + 4-byte type + 1-byte value */
    if (n_kv > left / 14) {
        char why[96];
        snprintf(why, sizeof(why), "%" PRIu64 " key-value pairs cannot fit in the file", n_kv);
        RD_FIELD(&r, "n_kv");
        return rd_fail(&r, 16, why);
    }
    /* smallest tensor info: 8 (name len) + 4 (n_dims) + 8 (ne) + 4 (type) + 8 (offset) */
    if (n_tensors > left / 32) {
        char why[96];
        snprintf(why, sizeof(why), "%" PRIu64 " tensors cannot fit in the file", n_tensors);
        RD_FIELD(&r, "n_tensors");
        return rd_fail(&r, 8, why);
    }
    g->n_kv = (int64_t)n_kv;
    g->kvs = xcalloc((size_t)(n_kv ? n_kv : 1), sizeof(struct gguf_kv));
    for (int64_t i = 0; i < g->n_kv; i++) {
        int rc = gguf_read_kv(g, &r, i);
        if (rc != 0)
            return rc;
    }
    /* duplicate keys, found by sorting so a file with many keys cannot make this quadratic */
    if (g->n_kv > 1) {
        const struct gguf_kv **keys = xmalloc((size_t)g->n_kv * sizeof(*keys));
        for (int64_t i = 0; i < g->n_kv; i++)
            keys[i] = &g->kvs[i];
        qsort(keys, (size_t)g->n_kv, sizeof(*keys), cmp_kv_by_key);
        int rc = 0;
        for (int64_t i = 1; i < g->n_kv && rc == 0; i++) {
            if (strcmp(keys[i - 1]->key, keys[i]->key) == 0) {
                /* report the later of the two */
                const struct gguf_kv *dup =
                    keys[i]->key_off > keys[i - 1]->key_off ? keys[i] : keys[i - 1];
                RD_FIELD(&r, "key '%.60s'", dup->key);
                rc = rd_fail(&r, dup->key_off, "duplicate key");
            }
        }
        free(keys);
        if (rc != 0)
            return rc;
    }
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    int64_t ai = gguf_find_key(g, "general.alignment");
    if (ai >= 0) {
        int64_t a;
        snprintf(r.field, sizeof(r.field), "general.alignment");
        if (g->kvs[ai].type != GGUF_TYPE_UINT32 || !gguf_kv_get_i64(g, ai, &a) || a == 0 ||
            (a & (a - 1)) != 0)
            return rd_fail(&r, g->kvs[ai].value_off, "must be a u32 power of two");
        g->alignment = (uint32_t)a;
    }
    if (n_tensors > (r.size - r.pos) / 32) {
        RD_FIELD(&r, "n_tensors");
        return rd_fail(&r, 8, "tensor infos cannot fit in the rest of the file");
    }
    g->n_tensors = (int64_t)n_tensors;
    g->tensors = xcalloc((size_t)(n_tensors ? n_tensors : 1), sizeof(struct gguf_tensor_info));
    /* where each tensor info starts, for messages about duplicates */
    uint64_t *info_off = xmalloc((size_t)(n_tensors ? n_tensors : 1) * sizeof(uint64_t));
    int rc = 0;
    for (int64_t i = 0; i < g->n_tensors && rc == 0; i++) {
        info_off[i] = r.pos;
        rc = gguf_read_tensor_info(g, &r, i);
    }
    uint64_t pad = (g->alignment - r.pos % g->alignment) % g->alignment;
    g->data_off = r.pos + pad;
    if (rc != 0 || g->n_tensors == 0) {
        free(info_off);
        return rc;
    }
    if (g->data_off > r.size) {
        free(info_off);
        RD_FIELD(&r, "data section");
        return rd_fail(&r, r.pos, "file ends before the tensor data section");
    }
    uint64_t data_size = r.size - g->data_off;
    struct gguf_tensor_info **order = xmalloc((size_t)g->n_tensors * sizeof(*order));
    for (int64_t i = 0; i < g->n_tensors; i++)
        order[i] = &g->tensors[i];
    /* duplicate names */
    qsort(order, (size_t)g->n_tensors, sizeof(*order), cmp_tensor_by_name);
    for (int64_t i = 1; i < g->n_tensors && rc == 0; i++) {
        if (strcmp(order[i - 1]->name, order[i]->name) == 0) {
            const struct gguf_tensor_info *dup = order[i] > order[i - 1] ? order[i] : order[i - 1];
            RD_FIELD(&r, "tensor '%.60s'.name", dup->name);
            rc = rd_fail(&r, info_off[dup - g->tensors], "duplicate tensor name");
        }
    }
    /* bounds, alignment and overlap: in offset order, each tensor with data must start at or
     * after the end of every earlier one (empty tensors occupy no bytes and overlap nothing) */
    qsort(order, (size_t)g->n_tensors, sizeof(*order), cmp_tensor_by_offset);
    const struct gguf_tensor_info *last = NULL; /* the one with the furthest end so far */
    uint64_t end_max = 0;
    for (int64_t i = 0; i < g->n_tensors && rc == 0; i++) {
        struct gguf_tensor_info *ti = order[i];
        RD_FIELD(&r, "tensor '%.60s'.offset", ti->name);
        /* messages point at the tensor info's offset field (the name holds no NUL) */
        uint64_t field_at =
            info_off[ti - g->tensors] + 8 + strlen(ti->name) + 4 + 8 * ti->n_dims + 4;
        char why[160];
        if (ti->offset % g->alignment != 0) {
            snprintf(why, sizeof(why),
                     "data offset %" PRIu64 " is not a multiple of the alignment %" PRIu32,
                     ti->offset, g->alignment);
            rc = rd_fail(&r, field_at, why);
        } else if (ti->offset > data_size || ti->size_bytes > data_size - ti->offset) {
            snprintf(why, sizeof(why),
                     "%" PRIu64 " bytes of data at data offset %" PRIu64
                     " run past the end of the file",
                     ti->size_bytes, ti->offset);
            rc = rd_fail(&r, field_at, why);
        } else if (ti->size_bytes > 0 && last && ti->offset < end_max) {
            snprintf(why, sizeof(why), "data at data offset %" PRIu64 " overlaps tensor '%.60s'",
                     ti->offset, last->name);
            rc = rd_fail(&r, field_at, why);
        } else {
            ti->data = g->mf.data + g->data_off + ti->offset;
            if (ti->size_bytes > 0 && ti->offset + ti->size_bytes > end_max) {
                end_max = ti->offset + ti->size_bytes;
                last = ti;
            }
        }
    }
    free(order);
    free(info_off);
    return rc;
}

static struct gguf_file *gguf_finish_open(struct gguf_file *g, char *err)
{
    if (gguf_parse(g, err) != 0) {
        gguf_close(g);
        return NULL;
    }
    return g;
}

struct gguf_file *gguf_open(const char *path, char *err)
{
    struct gguf_file *g = xcalloc(1, sizeof(*g));
    if (mapped_file_init(&g->mf, path, err) != 0) {
        free(g);
        return NULL;
    }
    return gguf_finish_open(g, err);
}

struct gguf_file *gguf_open_memory(const void *data, size_t size, const char *name, char *err)
{
    struct gguf_file *g = xcalloc(1, sizeof(*g));
    mapped_file_init_memory(&g->mf, data, size, name);
    return gguf_finish_open(g, err);
}

void gguf_close(struct gguf_file *g)
{
    if (!g)
        return;
    for (int64_t i = 0; i < g->n_kv; i++) {
        free(g->kvs[i].key);
        free(g->kvs[i].arr_str_off);
    }
    free(g->kvs);
    for (int64_t i = 0; i < g->n_tensors; i++)
        free((void *)(uintptr_t)g->tensors[i].name);
    free(g->tensors);
    mapped_file_deinit(&g->mf);
    free(g);
}

uint32_t gguf_version(const struct gguf_file *g)
{
    return g->version;
}

const char *gguf_path(const struct gguf_file *g)
{
    return g->mf.path;
}

bool gguf_is_mapped(const struct gguf_file *g)
{
    return g->mf.mapped;
}

uint64_t gguf_file_size(const struct gguf_file *g)
{
    return g->mf.size;
}

uint32_t gguf_alignment(const struct gguf_file *g)
{
    return g->alignment;
}

uint64_t gguf_data_offset(const struct gguf_file *g)
{
    return g->data_off;
}

void gguf_advise_hugepages(const struct gguf_file *g)
{
    mapped_file_advise_hugepages(&g->mf);
}

/* ---- metadata access ---- */

int64_t gguf_n_kv(const struct gguf_file *g)
{
    return g->n_kv;
}

int64_t gguf_find_key(const struct gguf_file *g, const char *key)
{
    for (int64_t i = 0; i < g->n_kv; i++) {
        if (g->kvs[i].key && strcmp(g->kvs[i].key, key) == 0)
            return i;
    }
    return -1;
}

const char *gguf_kv_key(const struct gguf_file *g, int64_t i)
{
    return g->kvs[i].key;
}

enum gguf_type gguf_kv_type(const struct gguf_file *g, int64_t i)
{
    return g->kvs[i].type;
}

enum gguf_type gguf_kv_arr_type(const struct gguf_file *g, int64_t i)
{
    return g->kvs[i].arr_type;
}

uint64_t gguf_kv_arr_n(const struct gguf_file *g, int64_t i)
{
    return g->kvs[i].type == GGUF_TYPE_ARRAY ? g->kvs[i].arr_n : 0;
}

/* Read a scalar of type t at absolute offset off (already bounds-checked at open). */
static bool gguf_scalar_at(const struct gguf_file *g, enum gguf_type t, uint64_t off, int64_t *iv,
                           double *fv)
{
    const uint8_t *p = g->mf.data + off;
    union {
        uint8_t u8;
        int8_t i8;
        uint16_t u16;
        int16_t i16;
        uint32_t u32;
        int32_t i32;
        float f32;
        uint64_t u64;
        int64_t i64;
        double f64;
    } v;
    switch (t) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_BOOL:
        memcpy(&v.u8, p, 1);
        *iv = v.u8;
        *fv = v.u8;
        return true;
    case GGUF_TYPE_INT8:
        memcpy(&v.i8, p, 1);
        *iv = v.i8;
        *fv = v.i8;
        return true;
    case GGUF_TYPE_UINT16:
        memcpy(&v.u16, p, 2);
        *iv = v.u16;
        *fv = v.u16;
        return true;
    case GGUF_TYPE_INT16:
        memcpy(&v.i16, p, 2);
        *iv = v.i16;
        *fv = v.i16;
        return true;
    case GGUF_TYPE_UINT32:
        memcpy(&v.u32, p, 4);
        *iv = v.u32;
        *fv = v.u32;
        return true;
    case GGUF_TYPE_INT32:
        memcpy(&v.i32, p, 4);
        *iv = v.i32;
        *fv = v.i32;
        return true;
    case GGUF_TYPE_FLOAT32: /* NaN or out of range converts to 0, not to undefined behaviour */
        memcpy(&v.f32, p, 4);
        *fv = v.f32;
        *iv = (*fv > -9.2e18 && *fv < 9.2e18) ? (int64_t)*fv : 0;
        return true;
    case GGUF_TYPE_UINT64:
        memcpy(&v.u64, p, 8);
        *iv = v.u64 > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v.u64;
        *fv = (double)v.u64;
        return true;
    case GGUF_TYPE_INT64:
        memcpy(&v.i64, p, 8);
        *iv = v.i64;
        *fv = (double)v.i64;
        return true;
    case GGUF_TYPE_FLOAT64:
        memcpy(&v.f64, p, 8);
        *fv = v.f64;
        *iv = (v.f64 > -9.2e18 && v.f64 < 9.2e18) ? (int64_t)v.f64 : 0;
        return true;
    default: return false;
    }
}

bool gguf_kv_get_i64(const struct gguf_file *g, int64_t i, int64_t *out)
{
    double f;
    return gguf_scalar_at(g, g->kvs[i].type, g->kvs[i].value_off, out, &f);
}

bool gguf_kv_get_f64(const struct gguf_file *g, int64_t i, double *out)
{
    int64_t v;
    return gguf_scalar_at(g, g->kvs[i].type, g->kvs[i].value_off, &v, out);
}

static struct gguf_str gguf_str_at(const struct gguf_file *g, uint64_t off)
{
    struct gguf_str s;
    memcpy(&s.len, g->mf.data + off, 8);
    s.ptr = (const char *)g->mf.data + off + 8;
    return s;
}

struct gguf_str gguf_kv_get_str(const struct gguf_file *g, int64_t i)
{
    if (g->kvs[i].type != GGUF_TYPE_STRING)
        return (struct gguf_str){NULL, 0};
    return gguf_str_at(g, g->kvs[i].value_off);
}

int64_t gguf_arr_get_i64(const struct gguf_file *g, int64_t i, uint64_t j)
{
    const struct gguf_kv *kv = &g->kvs[i];
    int64_t v = 0;
    double f;
    if (kv->type == GGUF_TYPE_ARRAY && j < kv->arr_n && gguf_type_size[kv->arr_type])
        gguf_scalar_at(g, kv->arr_type, kv->value_off + j * gguf_type_size[kv->arr_type], &v, &f);
    return v;
}

double gguf_arr_get_f64(const struct gguf_file *g, int64_t i, uint64_t j)
{
    const struct gguf_kv *kv = &g->kvs[i];
    int64_t v;
    double f = 0;
    if (kv->type == GGUF_TYPE_ARRAY && j < kv->arr_n && gguf_type_size[kv->arr_type])
        gguf_scalar_at(g, kv->arr_type, kv->value_off + j * gguf_type_size[kv->arr_type], &v, &f);
    return f;
}

struct gguf_str gguf_arr_get_str(const struct gguf_file *g, int64_t i, uint64_t j)
{
    const struct gguf_kv *kv = &g->kvs[i];
    if (kv->type != GGUF_TYPE_ARRAY || kv->arr_type != GGUF_TYPE_STRING || j >= kv->arr_n)
        return (struct gguf_str){NULL, 0};
    return gguf_str_at(g, kv->arr_str_off[j]);
}

int64_t gguf_get_i64_or(const struct gguf_file *g, const char *key, int64_t dflt)
{
    int64_t i = gguf_find_key(g, key), v;
    return (i >= 0 && gguf_kv_get_i64(g, i, &v)) ? v : dflt;
}

double gguf_get_f64_or(const struct gguf_file *g, const char *key, double dflt)
{
    int64_t i = gguf_find_key(g, key);
    double v;
    return (i >= 0 && gguf_kv_get_f64(g, i, &v)) ? v : dflt;
}

bool gguf_get_bool_or(const struct gguf_file *g, const char *key, bool dflt)
{
    int64_t i = gguf_find_key(g, key), v;
    return (i >= 0 && gguf_kv_get_i64(g, i, &v)) ? v != 0 : dflt;
}

char *gguf_get_str_dup(const struct gguf_file *g, const char *key)
{
    int64_t i = gguf_find_key(g, key);
    if (i < 0)
        return NULL;
    struct gguf_str s = gguf_kv_get_str(g, i);
    return s.ptr ? xstrndup(s.ptr, (size_t)s.len) : NULL;
}

int64_t gguf_n_tensors(const struct gguf_file *g)
{
    return g->n_tensors;
}

const struct gguf_tensor_info *gguf_tensor(const struct gguf_file *g, int64_t i)
{
    return &g->tensors[i];
}

const struct gguf_tensor_info *gguf_find_tensor(const struct gguf_file *g, const char *name)
{
    for (int64_t i = 0; i < g->n_tensors; i++) {
        if (strcmp(g->tensors[i].name, name) == 0)
            return &g->tensors[i];
    }
    return NULL;
}
