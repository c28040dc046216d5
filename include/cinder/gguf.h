/* gguf.h: zero-copy GGUF v2/v3 reader. The file is mmap'd read-only; metadata values, strings and
 * tensor data are views into the mapping, valid until gguf_close(). Every count, length and
 * offset is checked against the file size during gguf_open, so the accessors below never read
 * outside the mapping. Not thread-safe to open/close concurrently; reads are safe from any thread.
 */
#ifndef CINDER_GGUF_H
#define CINDER_GGUF_H

#include "cinder/common.h"
#include "cinder/tensor.h"

enum gguf_type {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT = 13,
};

#define GGUF_DEFAULT_ALIGNMENT 32

struct gguf_str {
    const char *ptr; /* into the mapping; NOT NUL-terminated */
    uint64_t len;
};

struct gguf_tensor_info {
    const char *name; /* NUL-terminated copy owned by the gguf_file */
    uint32_t n_dims;
    int64_t ne[CND_MAX_DIMS]; /* unused dims are 1 */
    enum cnd_dtype type;
    uint64_t offset;     /* relative to the data section */
    uint64_t size_bytes; /* ne product / block size * type size */
    const void *data;    /* into the mapping */
};

struct gguf_file;

/* Open and validate path. Returns NULL with err filled ("FILE: field F at offset N: reason"). */
struct gguf_file *gguf_open(const char *path, char *err);
/* Parse bytes in memory (not copied; must outlive the gguf_file). name appears in errors. */
struct gguf_file *gguf_open_memory(const void *data, size_t size, const char *name, char *err);
void gguf_close(struct gguf_file *g);

uint32_t gguf_version(const struct gguf_file *g);
const char *gguf_path(const struct gguf_file *g);
/* true when the data is an mmap of a file (pages can be dropped and re-read), false when it
 * wraps caller memory */
bool gguf_is_mapped(const struct gguf_file *g);
uint64_t gguf_file_size(const struct gguf_file *g);
uint32_t gguf_alignment(const struct gguf_file *g);
uint64_t gguf_data_offset(const struct gguf_file *g); /* absolute file offset of tensor data */
/* Ask the kernel for huge pages / read-ahead on the mapping (no-op for memory files). */
void gguf_advise_hugepages(const struct gguf_file *g);

/* ---- metadata ---- */
int64_t gguf_n_kv(const struct gguf_file *g);
int64_t gguf_find_key(const struct gguf_file *g, const char *key); /* index or -1 */
const char *gguf_kv_key(const struct gguf_file *g, int64_t i);     /* NUL-terminated */
enum gguf_type gguf_kv_type(const struct gguf_file *g, int64_t i);
enum gguf_type gguf_kv_arr_type(const struct gguf_file *g, int64_t i); /* element type */
uint64_t gguf_kv_arr_n(const struct gguf_file *g, int64_t i);
const char *gguf_type_name(enum gguf_type t);

/* Scalars of any integer/float/bool type, converted. Return false if the kv is not numeric. */
bool gguf_kv_get_i64(const struct gguf_file *g, int64_t i, int64_t *out);
bool gguf_kv_get_f64(const struct gguf_file *g, int64_t i, double *out);
struct gguf_str gguf_kv_get_str(const struct gguf_file *g, int64_t i); /* {NULL,0} if not string */

/* Array elements (i must be an array kv; j < n). Numeric getters convert any numeric type. */
int64_t gguf_arr_get_i64(const struct gguf_file *g, int64_t i, uint64_t j);
double gguf_arr_get_f64(const struct gguf_file *g, int64_t i, uint64_t j);
struct gguf_str gguf_arr_get_str(const struct gguf_file *g, int64_t i, uint64_t j);

/* Lookups by key with a default when absent or of another type. */
int64_t gguf_get_i64_or(const struct gguf_file *g, const char *key, int64_t dflt);
double gguf_get_f64_or(const struct gguf_file *g, const char *key, double dflt);
bool gguf_get_bool_or(const struct gguf_file *g, const char *key, bool dflt);
/* String value as a fresh NUL-terminated copy (caller frees), or NULL if absent/not a string. */
char *gguf_get_str_dup(const struct gguf_file *g, const char *key);

/* ---- tensors ---- */
int64_t gguf_n_tensors(const struct gguf_file *g);
const struct gguf_tensor_info *gguf_tensor(const struct gguf_file *g, int64_t i);
const struct gguf_tensor_info *gguf_find_tensor(const struct gguf_file *g, const char *name);

#endif
