/* gguf_writer.h: a small header-only GGUF v2/v3 writer for tests. It builds a whole file in
 * memory: metadata of any type (scalars, strings, arrays, string arrays), tensor infos with
 * their data placed at aligned offsets, or raw bytes for deliberately broken files.
 *
 *   struct gguf_writer w;
 *   gguf_writer_init(&w, 3);
 *   gguf_writer_add_str(&w, "general.architecture", "llama");
 *   gguf_writer_add_u32(&w, "general.alignment", 64);      // also sets the data alignment
 *   int64_t ne[2] = {64, 4};
 *   gguf_writer_add_tensor(&w, "w", CND_DTYPE_F32, 2, ne, floats);   // NULL data: zeros
 *   uint8_t *bytes; size_t len;
 *   gguf_writer_finish(&w, &bytes, &len);  // bytes: malloc'd, caller frees; w is freed
 *
 * Layout written: "GGUF", u32 version, u64 n_tensors, u64 n_kv, the kvs, the tensor infos,
 * zero padding to the alignment, then the data section (each tensor at an aligned offset).
 * Allocation failures abort: this is test code. Everything is static inline, so including it
 * costs nothing unused. */
#ifndef CINDER_TESTS_GGUF_WRITER_H
#define CINDER_TESTS_GGUF_WRITER_H

#include "cinder/gguf.h"
#include "cinder/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct gguf_wbuf {
    uint8_t *p;
    size_t len, cap;
};

struct gguf_writer {
    uint32_t version;   /* written as is (tests may write bad versions) */
    uint32_t alignment; /* data alignment; general.alignment (u32) updates it */
    uint64_t n_kv, n_tensors;
    struct gguf_wbuf kv, ti, data;
};

static inline void gguf_wbuf_put(struct gguf_wbuf *b, const void *src, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *p = (uint8_t *)realloc(b->p, cap);
        if (!p) {
            fprintf(stderr, "gguf_writer: out of memory\n");
            abort();
        }
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, src, n);
    b->len += n;
}

static inline void gguf_wbuf_zeros(struct gguf_wbuf *b, size_t n)
{
    static const uint8_t z[64];
    while (n > 0) {
        size_t k = n < sizeof(z) ? n : sizeof(z);
        gguf_wbuf_put(b, z, k);
        n -= k;
    }
}

static inline void gguf_wbuf_u32(struct gguf_wbuf *b, uint32_t v)
{
    gguf_wbuf_put(b, &v, 4);
}

static inline void gguf_wbuf_u64(struct gguf_wbuf *b, uint64_t v)
{
    gguf_wbuf_put(b, &v, 8);
}

static inline void gguf_wbuf_strn(struct gguf_wbuf *b, const char *s, size_t n)
{
    gguf_wbuf_u64(b, n);
    gguf_wbuf_put(b, s, n);
}

static inline void gguf_writer_init(struct gguf_writer *w, uint32_t version)
{
    memset(w, 0, sizeof(*w));
    w->version = version;
    w->alignment = GGUF_DEFAULT_ALIGNMENT;
}

static inline void gguf_writer_free(struct gguf_writer *w)
{
    free(w->kv.p);
    free(w->ti.p);
    free(w->data.p);
    memset(w, 0, sizeof(*w));
}

/* Bytes per element of a scalar gguf_type (0 for string/array/unknown). */
static inline size_t gguf_writer_type_size(enum gguf_type t)
{
    switch (t) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_INT16: return 2;
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_FLOAT32: return 4;
    case GGUF_TYPE_UINT64:
    case GGUF_TYPE_INT64:
    case GGUF_TYPE_FLOAT64: return 8;
    default: return 0;
    }
}

/* ---- metadata ---- */

/* Any scalar: value points at gguf_writer_type_size(type) bytes. */
static inline void gguf_writer_add_scalar(struct gguf_writer *w, const char *key,
                                          enum gguf_type type, const void *value)
{
    gguf_wbuf_strn(&w->kv, key, strlen(key));
    gguf_wbuf_u32(&w->kv, (uint32_t)type);
    gguf_wbuf_put(&w->kv, value, gguf_writer_type_size(type));
    w->n_kv++;
}

#define GGUF_WRITER_SCALAR(fn, ctype, gtype)                                                       \
    static inline void gguf_writer_add_##fn(struct gguf_writer *w, const char *key, ctype v)       \
    {                                                                                              \
        gguf_writer_add_scalar(w, key, gtype, &v);                                                 \
    }
GGUF_WRITER_SCALAR(u8, uint8_t, GGUF_TYPE_UINT8)
GGUF_WRITER_SCALAR(i8, int8_t, GGUF_TYPE_INT8)
GGUF_WRITER_SCALAR(u16, uint16_t, GGUF_TYPE_UINT16)
GGUF_WRITER_SCALAR(i16, int16_t, GGUF_TYPE_INT16)
GGUF_WRITER_SCALAR(i32, int32_t, GGUF_TYPE_INT32)
GGUF_WRITER_SCALAR(f32, float, GGUF_TYPE_FLOAT32)
GGUF_WRITER_SCALAR(u64, uint64_t, GGUF_TYPE_UINT64)
GGUF_WRITER_SCALAR(i64, int64_t, GGUF_TYPE_INT64)
GGUF_WRITER_SCALAR(f64, double, GGUF_TYPE_FLOAT64)
#undef GGUF_WRITER_SCALAR

/* "general.alignment" as a u32 also sets the alignment the data section is written with. */
static inline void gguf_writer_add_u32(struct gguf_writer *w, const char *key, uint32_t v)
{
    gguf_writer_add_scalar(w, key, GGUF_TYPE_UINT32, &v);
    if (strcmp(key, "general.alignment") == 0 && v != 0 && (v & (v - 1)) == 0)
        w->alignment = v;
}

static inline void gguf_writer_add_bool(struct gguf_writer *w, const char *key, bool v)
{
    uint8_t b = v ? 1 : 0;
    gguf_writer_add_scalar(w, key, GGUF_TYPE_BOOL, &b);
}

/* A string of n bytes (may hold NULs or invalid UTF-8). */
static inline void gguf_writer_add_strn(struct gguf_writer *w, const char *key, const char *s,
                                        size_t n)
{
    gguf_wbuf_strn(&w->kv, key, strlen(key));
    gguf_wbuf_u32(&w->kv, GGUF_TYPE_STRING);
    gguf_wbuf_strn(&w->kv, s, n);
    w->n_kv++;
}

static inline void gguf_writer_add_str(struct gguf_writer *w, const char *key, const char *s)
{
    gguf_writer_add_strn(w, key, s, strlen(s));
}

/* An array of n scalars of elem_type (elems: n packed values, little-endian host layout). */
static inline void gguf_writer_add_arr(struct gguf_writer *w, const char *key,
                                       enum gguf_type elem_type, uint64_t n, const void *elems)
{
    gguf_wbuf_strn(&w->kv, key, strlen(key));
    gguf_wbuf_u32(&w->kv, GGUF_TYPE_ARRAY);
    gguf_wbuf_u32(&w->kv, (uint32_t)elem_type);
    gguf_wbuf_u64(&w->kv, n);
    gguf_wbuf_put(&w->kv, elems, (size_t)n * gguf_writer_type_size(elem_type));
    w->n_kv++;
}

static inline void gguf_writer_add_arr_f32(struct gguf_writer *w, const char *key, const float *v,
                                           uint64_t n)
{
    gguf_writer_add_arr(w, key, GGUF_TYPE_FLOAT32, n, v);
}

static inline void gguf_writer_add_arr_i32(struct gguf_writer *w, const char *key, const int32_t *v,
                                           uint64_t n)
{
    gguf_writer_add_arr(w, key, GGUF_TYPE_INT32, n, v);
}

/* An array of n NUL-terminated strings. */
static inline void gguf_writer_add_arr_str(struct gguf_writer *w, const char *key,
                                           const char *const *strs, uint64_t n)
{
    gguf_wbuf_strn(&w->kv, key, strlen(key));
    gguf_wbuf_u32(&w->kv, GGUF_TYPE_ARRAY);
    gguf_wbuf_u32(&w->kv, GGUF_TYPE_STRING);
    gguf_wbuf_u64(&w->kv, n);
    for (uint64_t i = 0; i < n; i++)
        gguf_wbuf_strn(&w->kv, strs[i], strlen(strs[i]));
    w->n_kv++;
}

/* Raw bytes counted as one kv (for broken files: unknown types, nested arrays, lies). */
static inline void gguf_writer_add_raw_kv(struct gguf_writer *w, const void *bytes, size_t n)
{
    gguf_wbuf_put(&w->kv, bytes, n);
    w->n_kv++;
}

/* ---- tensors ---- */

/* Bytes of a tensor of type and shape (ne[0] must be a multiple of the block size). */
static inline uint64_t gguf_writer_tensor_size(enum cnd_dtype type, uint32_t n_dims,
                                               const int64_t *ne)
{
    uint64_t n = 1;
    for (uint32_t d = 0; d < n_dims; d++)
        n *= (uint64_t)ne[d];
    return n / (uint64_t)dtype_block_size(type) * (uint64_t)dtype_type_size(type);
}

/* A tensor info with an explicit data offset and no data written (for overlap/bounds tests;
 * use gguf_writer_add_data to place bytes). type is written as given, valid or not. */
static inline void gguf_writer_add_tensor_info(struct gguf_writer *w, const char *name,
                                               uint32_t type, uint32_t n_dims, const int64_t *ne,
                                               uint64_t offset)
{
    gguf_wbuf_strn(&w->ti, name, strlen(name));
    gguf_wbuf_u32(&w->ti, n_dims);
    for (uint32_t d = 0; d < n_dims; d++)
        gguf_wbuf_u64(&w->ti, (uint64_t)ne[d]);
    gguf_wbuf_u32(&w->ti, type);
    gguf_wbuf_u64(&w->ti, offset);
    w->n_tensors++;
}

/* Append n raw bytes to the data section (after padding it to the alignment); returns their
 * data offset. */
static inline uint64_t gguf_writer_add_data(struct gguf_writer *w, const void *bytes, size_t n)
{
    size_t a = w->alignment ? w->alignment : 1;
    gguf_wbuf_zeros(&w->data, (a - w->data.len % a) % a);
    uint64_t off = w->data.len;
    if (bytes)
        gguf_wbuf_put(&w->data, bytes, n);
    else
        gguf_wbuf_zeros(&w->data, n);
    return off;
}

/* A tensor with its data (NULL: zeros) at the next aligned offset. Returns the data offset. */
static inline uint64_t gguf_writer_add_tensor(struct gguf_writer *w, const char *name,
                                              enum cnd_dtype type, uint32_t n_dims,
                                              const int64_t *ne, const void *data)
{
    uint64_t size = gguf_writer_tensor_size(type, n_dims, ne);
    uint64_t off = gguf_writer_add_data(w, data, (size_t)size);
    gguf_writer_add_tensor_info(w, name, (uint32_t)type, n_dims, ne, off);
    return off;
}

/* ---- output ---- */

/* Byte offset of the data section in the finished file. */
static inline uint64_t gguf_writer_data_offset(const struct gguf_writer *w)
{
    uint64_t pos = 24 + w->kv.len + w->ti.len;
    uint64_t a = w->alignment ? w->alignment : 1;
    return pos + (a - pos % a) % a;
}

/* Assemble the file into a fresh malloc'd buffer (*bytes, *len) and free the writer. A file
 * without tensors ends right after its metadata (no padding), as llama.cpp writes vocab files. */
static inline void gguf_writer_finish(struct gguf_writer *w, uint8_t **bytes, size_t *len)
{
    struct gguf_wbuf out = {0};
    gguf_wbuf_put(&out, "GGUF", 4);
    gguf_wbuf_u32(&out, w->version);
    gguf_wbuf_u64(&out, w->n_tensors);
    gguf_wbuf_u64(&out, w->n_kv);
    gguf_wbuf_put(&out, w->kv.p, w->kv.len);
    gguf_wbuf_put(&out, w->ti.p, w->ti.len);
    if (w->n_tensors > 0 || w->data.len > 0) {
        gguf_wbuf_zeros(&out, (size_t)(gguf_writer_data_offset(w) - out.len));
        gguf_wbuf_put(&out, w->data.p, w->data.len);
    }
    *bytes = out.p;
    *len = out.len;
    gguf_writer_free(w);
}

/* Finish into a file. Returns 0, or -1 if it could not be written. */
static inline int gguf_writer_write_file(struct gguf_writer *w, const char *path)
{
    uint8_t *bytes;
    size_t len;
    gguf_writer_finish(w, &bytes, &len);
    FILE *f = fopen(path, "wb");
    int rc = -1;
    if (f) {
        rc = fwrite(bytes, 1, len, f) == len ? 0 : -1;
        if (fclose(f) != 0)
            rc = -1;
    }
    free(bytes);
    return rc;
}

/* Overwrite a little-endian u32/u64 at off in a finished file (to corrupt headers). */
static inline void gguf_writer_patch_u32(uint8_t *bytes, size_t off, uint32_t v)
{
    memcpy(bytes + off, &v, 4);
}

static inline void gguf_writer_patch_u64(uint8_t *bytes, size_t off, uint64_t v)
{
    memcpy(bytes + off, &v, 8);
}

#endif
