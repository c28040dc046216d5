/* ctest-labels: unit */
/* test_gguf.c: the GGUF reader on tiny v2 and v3 files written by tests/gguf_writer.h: every
 * metadata type, arrays and string arrays, tensor infos and data (zero-copy, from the mapping),
 * general.alignment, and one broken file per check the reader makes, each of whose messages
 * must name the file, the field and the right byte offset.
 * `test_gguf --write-corpus DIR` writes the fuzzer's seed files (tests/fuzz/corpus_gguf). */
#include "cinder/common.h" /* first: _GNU_SOURCE */
#include "test.h"
#include "gguf_writer.h"

#include "cinder/gguf.h"
#include "cinder/status.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- helpers ---- */

static struct gguf_file *open_bytes(const uint8_t *b, size_t n, char *err)
{
    err[0] = 0;
    return gguf_open_memory(b, n, "t.gguf", err);
}

/* Must be rejected with "t.gguf: field '<field...>' at offset <off>: ...<why>". */
#define CHECK_REJECT(bytes, len, field, off, why)                                                  \
    do {                                                                                           \
        char err_[CND_ERR_LEN];                                                                    \
        struct gguf_file *g_ = open_bytes((bytes), (len), err_);                                   \
        CHECK_MSG(g_ == NULL, "accepted, expected error on %s", (field));                          \
        gguf_close(g_);                                                                            \
        char want_[128];                                                                           \
        snprintf(want_, sizeof(want_), "' at offset %" PRIu64 ": ", (uint64_t)(off));              \
        CHECK_MSG(strncmp(err_, "t.gguf: field '", 15) == 0, "message: %s", err_);                 \
        CHECK_MSG(strstr(err_, (field)) != NULL, "no field '%s' in: %s", (field), err_);           \
        CHECK_MSG(strstr(err_, want_) != NULL, "no '%s' in: %s", want_, err_);                     \
        CHECK_MSG(strstr(err_, (why)) != NULL, "no '%s' in: %s", (why), err_);                     \
    } while (0)

static void finish(struct gguf_writer *w, uint8_t **b, size_t *n)
{
    gguf_writer_finish(w, b, n);
}

/* A small valid model-like file: a few kvs and two tensors. */
static void make_small(uint32_t version, uint8_t **b, size_t *n)
{
    struct gguf_writer w;
    gguf_writer_init(&w, version);
    gguf_writer_add_str(&w, "general.architecture", "llama");
    gguf_writer_add_u32(&w, "llama.block_count", 2);
    const char *toks[] = {"<unk>", "a", "bc"};
    gguf_writer_add_arr_str(&w, "tokenizer.ggml.tokens", toks, 3);
    int64_t ne[2] = {32, 2};
    float x[64];
    for (int i = 0; i < 64; i++)
        x[i] = (float)i;
    gguf_writer_add_tensor(&w, "a", CND_DTYPE_F32, 2, ne, x);
    int64_t ne1[1] = {32};
    gguf_writer_add_tensor(&w, "b", CND_DTYPE_Q8_0, 1, ne1, NULL);
    finish(&w, b, n);
}

/* ---- valid files ---- */

static void check_all_types(uint32_t version)
{
    struct gguf_writer w;
    gguf_writer_init(&w, version);
    gguf_writer_add_u8(&w, "t.u8", 200);
    gguf_writer_add_i8(&w, "t.i8", -100);
    gguf_writer_add_u16(&w, "t.u16", 60000);
    gguf_writer_add_i16(&w, "t.i16", -30000);
    gguf_writer_add_u32(&w, "t.u32", 4000000000u);
    gguf_writer_add_i32(&w, "t.i32", -2000000000);
    gguf_writer_add_f32(&w, "t.f32", 1.5f);
    gguf_writer_add_bool(&w, "t.bool", true);
    gguf_writer_add_str(&w, "t.str", "hello");
    gguf_writer_add_u64(&w, "t.u64", UINT64_MAX);
    gguf_writer_add_i64(&w, "t.i64", INT64_MIN);
    gguf_writer_add_f64(&w, "t.f64", -2.25);
    gguf_writer_add_str(&w, "t.empty", "");
    gguf_writer_add_strn(&w, "t.nul", "a\0b", 3);
    float f[3] = {1, 2.5f, -3};
    int32_t iv[4] = {1, -2, 3, INT32_MIN};
    gguf_writer_add_arr_f32(&w, "a.f32", f, 3);
    gguf_writer_add_arr_i32(&w, "a.i32", iv, 4);
    uint8_t u8[2] = {1, 255};
    gguf_writer_add_arr(&w, "a.u8", GGUF_TYPE_UINT8, 2, u8);
    int16_t i16[2] = {-5, 7};
    gguf_writer_add_arr(&w, "a.i16", GGUF_TYPE_INT16, 2, i16);
    uint64_t u64[2] = {0, UINT64_MAX};
    gguf_writer_add_arr(&w, "a.u64", GGUF_TYPE_UINT64, 2, u64);
    double f64[2] = {0.5, 1e300};
    gguf_writer_add_arr(&w, "a.f64", GGUF_TYPE_FLOAT64, 2, f64);
    uint8_t bools[3] = {1, 0, 1};
    gguf_writer_add_arr(&w, "a.bool", GGUF_TYPE_BOOL, 3, bools);
    gguf_writer_add_arr(&w, "a.empty", GGUF_TYPE_INT64, 0, NULL);
    const char *strs[] = {"x", "", "yz"};
    gguf_writer_add_arr_str(&w, "a.str", strs, 3);
    gguf_writer_add_arr_str(&w, "a.str0", strs, 0);
    uint8_t *b;
    size_t n;
    finish(&w, &b, &n);

    char err[CND_ERR_LEN];
    struct gguf_file *g = open_bytes(b, n, err);
    CHECK_MSG(g != NULL, "%s", err);
    if (!g) {
        free(b);
        return;
    }
    CHECK_EQ_INT(gguf_version(g), version);
    CHECK_EQ_INT(gguf_n_kv(g), 24);
    CHECK_EQ_INT(gguf_n_tensors(g), 0);
    CHECK_EQ_INT(gguf_alignment(g), 32);
    CHECK_EQ_INT(gguf_file_size(g), n);
    CHECK_STR(gguf_path(g), "t.gguf");
    CHECK_STR(gguf_kv_key(g, 0), "t.u8");
    CHECK_EQ_INT(gguf_kv_type(g, 0), GGUF_TYPE_UINT8);
    CHECK_EQ_INT(gguf_get_i64_or(g, "t.u8", 0), 200);
    CHECK_EQ_INT(gguf_get_i64_or(g, "t.i8", 0), -100);
    CHECK_EQ_INT(gguf_get_i64_or(g, "t.u16", 0), 60000);
    CHECK_EQ_INT(gguf_get_i64_or(g, "t.i16", 0), -30000);
    CHECK_EQ_INT(gguf_get_i64_or(g, "t.u32", 0), 4000000000LL);
    CHECK_EQ_INT(gguf_get_i64_or(g, "t.i32", 0), -2000000000LL);
    CHECK_NEAR(gguf_get_f64_or(g, "t.f32", 0), 1.5, 0);
    CHECK_EQ_INT(gguf_get_i64_or(g, "t.f32", 0), 1);
    CHECK(gguf_get_bool_or(g, "t.bool", false));
    CHECK_EQ_INT(gguf_get_i64_or(g, "t.u64", 0), INT64_MAX); /* clamped */
    CHECK_EQ_INT(gguf_get_i64_or(g, "t.i64", 0), INT64_MIN);
    CHECK_NEAR(gguf_get_f64_or(g, "t.f64", 0), -2.25, 0);
    CHECK_EQ_INT(gguf_get_i64_or(g, "t.str", 42), 42); /* not numeric: default */
    CHECK_EQ_INT(gguf_get_i64_or(g, "missing", 7), 7);
    CHECK(!gguf_get_bool_or(g, "missing", false));
    char *s = gguf_get_str_dup(g, "t.str");
    CHECK_STR(s, "hello");
    free(s);
    s = gguf_get_str_dup(g, "t.empty");
    CHECK_STR(s, "");
    free(s);
    CHECK(gguf_get_str_dup(g, "t.u8") == NULL);
    CHECK(gguf_get_str_dup(g, "missing") == NULL);
    int64_t k = gguf_find_key(g, "t.nul");
    CHECK(k >= 0);
    struct gguf_str sv = gguf_kv_get_str(g, k);
    CHECK(sv.len == 3 && memcmp(sv.ptr, "a\0b", 3) == 0);
    /* string views point into the buffer: zero-copy */
    CHECK((const uint8_t *)sv.ptr > b && (const uint8_t *)sv.ptr + 3 <= b + n);
    CHECK(gguf_kv_get_str(g, gguf_find_key(g, "t.u8")).ptr == NULL);

    k = gguf_find_key(g, "a.f32");
    CHECK_EQ_INT(gguf_kv_type(g, k), GGUF_TYPE_ARRAY);
    CHECK_EQ_INT(gguf_kv_arr_type(g, k), GGUF_TYPE_FLOAT32);
    CHECK_EQ_INT(gguf_kv_arr_n(g, k), 3);
    CHECK_NEAR(gguf_arr_get_f64(g, k, 1), 2.5, 0);
    CHECK_EQ_INT(gguf_arr_get_i64(g, k, 2), -3);
    CHECK_NEAR(gguf_arr_get_f64(g, k, 3), 0, 0); /* out of range: 0 */
    int64_t dummy;
    CHECK(!gguf_kv_get_i64(g, k, &dummy));
    k = gguf_find_key(g, "a.i32");
    CHECK_EQ_INT(gguf_arr_get_i64(g, k, 3), INT32_MIN);
    CHECK_EQ_INT(gguf_arr_get_i64(g, k, 4), 0);
    k = gguf_find_key(g, "a.u8");
    CHECK_EQ_INT(gguf_arr_get_i64(g, k, 1), 255);
    k = gguf_find_key(g, "a.i16");
    CHECK_EQ_INT(gguf_arr_get_i64(g, k, 0), -5);
    k = gguf_find_key(g, "a.u64");
    CHECK_EQ_INT(gguf_arr_get_i64(g, k, 1), INT64_MAX);
    k = gguf_find_key(g, "a.f64");
    CHECK_NEAR(gguf_arr_get_f64(g, k, 1), 1e300, 0);
    CHECK_EQ_INT(gguf_arr_get_i64(g, k, 1), 0); /* out of int64 range: 0 */
    k = gguf_find_key(g, "a.bool");
    CHECK_EQ_INT(gguf_kv_arr_type(g, k), GGUF_TYPE_BOOL);
    CHECK_EQ_INT(gguf_arr_get_i64(g, k, 2), 1);
    k = gguf_find_key(g, "a.empty");
    CHECK_EQ_INT(gguf_kv_arr_n(g, k), 0);
    CHECK_EQ_INT(gguf_kv_arr_type(g, k), GGUF_TYPE_INT64);
    k = gguf_find_key(g, "a.str");
    CHECK_EQ_INT(gguf_kv_arr_type(g, k), GGUF_TYPE_STRING);
    CHECK_EQ_INT(gguf_kv_arr_n(g, k), 3);
    struct gguf_str e = gguf_arr_get_str(g, k, 2);
    CHECK(e.len == 2 && memcmp(e.ptr, "yz", 2) == 0);
    CHECK_EQ_INT(gguf_arr_get_str(g, k, 1).len, 0);
    CHECK(gguf_arr_get_str(g, k, 3).ptr == NULL);
    CHECK_EQ_INT(gguf_arr_get_i64(g, k, 0), 0); /* string array: no numbers */
    CHECK(gguf_arr_get_str(g, gguf_find_key(g, "a.f32"), 0).ptr == NULL);
    k = gguf_find_key(g, "a.str0");
    CHECK_EQ_INT(gguf_kv_arr_n(g, k), 0);
    CHECK_EQ_INT(gguf_kv_arr_n(g, gguf_find_key(g, "t.u8")), 0);
    gguf_close(g);
    free(b);
}

static void test_all_types_v2(void)
{
    check_all_types(2);
}

static void test_all_types_v3(void)
{
    check_all_types(3);
}

static void check_tensors(uint32_t version, uint32_t alignment)
{
    struct gguf_writer w;
    gguf_writer_init(&w, version);
    gguf_writer_add_str(&w, "general.architecture", "llama");
    if (alignment)
        gguf_writer_add_u32(&w, "general.alignment", alignment);
    float x[6 * 4];
    for (int i = 0; i < 24; i++)
        x[i] = (float)i * 0.5f;
    int64_t ne_a[2] = {6, 4};
    uint64_t off_a = gguf_writer_add_tensor(&w, "a", CND_DTYPE_F32, 2, ne_a, x);
    uint8_t q[2 * 34];
    for (int i = 0; i < 68; i++)
        q[i] = (uint8_t)i;
    int64_t ne_b[2] = {32, 2};
    uint64_t off_b = gguf_writer_add_tensor(&w, "b.q8", CND_DTYPE_Q8_0, 2, ne_b, q);
    int64_t ne_c[4] = {256, 1, 2, 1};
    uint64_t off_c = gguf_writer_add_tensor(&w, "c.q4k", CND_DTYPE_Q4_K, 4, ne_c, NULL);
    int64_t ne_d[1] = {0};
    gguf_writer_add_tensor(&w, "d.empty", CND_DTYPE_F16, 1, ne_d, NULL);
    uint64_t data_off = gguf_writer_data_offset(&w);
    uint8_t *b;
    size_t n;
    finish(&w, &b, &n);

    char err[CND_ERR_LEN];
    struct gguf_file *g = open_bytes(b, n, err);
    CHECK_MSG(g != NULL, "%s", err);
    if (!g) {
        free(b);
        return;
    }
    uint32_t a = alignment ? alignment : 32;
    CHECK_EQ_INT(gguf_alignment(g), a);
    CHECK_EQ_INT(gguf_data_offset(g), data_off);
    CHECK_EQ_INT(gguf_data_offset(g) % a, 0);
    CHECK_EQ_INT(gguf_n_tensors(g), 4);
    const struct gguf_tensor_info *t = gguf_tensor(g, 0);
    CHECK_STR(t->name, "a");
    CHECK_EQ_INT(t->n_dims, 2);
    CHECK(t->ne[0] == 6 && t->ne[1] == 4 && t->ne[2] == 1 && t->ne[3] == 1);
    CHECK_EQ_INT(t->type, CND_DTYPE_F32);
    CHECK_EQ_INT(t->offset, off_a);
    CHECK_EQ_INT(t->size_bytes, 96);
    CHECK(t->data == b + data_off + off_a); /* a view, not a copy */
    float y;
    memcpy(&y, (const uint8_t *)t->data + 4 * 23, 4);
    CHECK_NEAR(y, 11.5, 0);
    t = gguf_find_tensor(g, "b.q8");
    CHECK(t != NULL);
    if (t) {
        CHECK_EQ_INT(t->size_bytes, 68);
        CHECK_EQ_INT(t->offset, off_b);
        CHECK_EQ_INT(t->offset % a, 0);
        CHECK(memcmp(t->data, q, 68) == 0);
    }
    t = gguf_find_tensor(g, "c.q4k");
    CHECK(t != NULL);
    if (t) {
        CHECK_EQ_INT(t->n_dims, 4);
        CHECK_EQ_INT(t->ne[2], 2);
        CHECK_EQ_INT(t->size_bytes, 2 * 144);
        CHECK_EQ_INT(t->offset, off_c);
    }
    t = gguf_find_tensor(g, "d.empty");
    CHECK(t != NULL && t->size_bytes == 0 && t->ne[0] == 0);
    CHECK(gguf_find_tensor(g, "nope") == NULL);
    gguf_close(g);
    free(b);
}

static void test_tensors_v2_default_alignment(void)
{
    check_tensors(2, 0);
}

static void test_tensors_v3_default_alignment(void)
{
    check_tensors(3, 0);
}

static void test_tensors_alignment_64_and_1(void)
{
    check_tensors(3, 64);
    check_tensors(2, 1);
    check_tensors(3, 4096);
}

/* gguf_open maps the file: tensor data must lie inside a mapping of that file, not a copy. */
static void test_open_file_is_mapped(void)
{
    uint8_t *b;
    size_t n;
    make_small(3, &b, &n);
    char path[] = "/tmp/cinder_test_gguf_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0) {
        free(b);
        return;
    }
    CHECK(write(fd, b, n) == (ssize_t)n);
    close(fd);
    char err[CND_ERR_LEN];
    struct gguf_file *g = gguf_open(path, err);
    CHECK_MSG(g != NULL, "%s", err);
    if (g) {
        CHECK_STR(gguf_path(g), path);
        const struct gguf_tensor_info *t = gguf_find_tensor(g, "a");
        CHECK(t && memcmp(t->data, b + gguf_data_offset(g) + t->offset, t->size_bytes) == 0);
        bool in_mapping = false;
        FILE *maps = fopen("/proc/self/maps", "r");
        char line[512];
        while (maps && t && fgets(line, sizeof(line), maps)) {
            unsigned long lo, hi;
            if (strstr(line, path) && sscanf(line, "%lx-%lx", &lo, &hi) == 2 &&
                (uintptr_t)t->data >= lo && (uintptr_t)t->data + t->size_bytes <= hi)
                in_mapping = true;
        }
        if (maps)
            fclose(maps);
        CHECK_MSG(in_mapping, "tensor data is not in a mapping of %s", path);
        gguf_close(g);
    }
    /* a truncated file on disk: the message names the path */
    CHECK(truncate(path, (off_t)n - 1) == 0);
    g = gguf_open(path, err);
    CHECK(g == NULL);
    CHECK_MSG(g == NULL && strstr(err, path) && strstr(err, "offset"), "%s", err);
    gguf_close(g);
    unlink(path);
    g = gguf_open(path, err);
    CHECK(g == NULL && strstr(err, path) != NULL);
    gguf_close(g);
    g = gguf_open("/tmp", err);
    CHECK(g == NULL);
    free(b);
}

/* ---- broken files: one per check ---- */

static void test_header_errors(void)
{
    uint8_t *b;
    size_t n;
    make_small(3, &b, &n);
    /* every truncation of a valid file is an error (the last tensor ends the file) */
    for (size_t len = 0; len < n; len++) {
        char err[CND_ERR_LEN];
        struct gguf_file *g = open_bytes(b, len, err);
        CHECK_MSG(g == NULL, "truncated at %zu accepted", len);
        CHECK_MSG(strstr(err, "t.gguf: field '") && strstr(err, " offset "), "%zu: %s", len, err);
        gguf_close(g);
    }
    CHECK_REJECT(b, 0, "magic", 0, "truncated");
    CHECK_REJECT(b, 6, "version", 4, "truncated");
    CHECK_REJECT(b, 20, "n_kv", 16, "truncated");
    uint8_t *c = malloc(n);
    memcpy(c, b, n);
    c[0] = 'X';
    CHECK_REJECT(c, n, "magic", 0, "not a GGUF file");
    memcpy(c, b, n);
    gguf_writer_patch_u32(c, 4, 1);
    CHECK_REJECT(c, n, "version", 4, "unsupported GGUF version 1");
    gguf_writer_patch_u32(c, 4, 4);
    CHECK_REJECT(c, n, "version", 4, "unsupported GGUF version 4");
    gguf_writer_patch_u32(c, 4, 0x03000000);
    CHECK_REJECT(c, n, "version", 4, "big-endian");
    memcpy(c, b, n);
    gguf_writer_patch_u64(c, 8, 1ULL << 60);
    CHECK_REJECT(c, n, "n_tensors", 8, "1152921504606846976 tensors cannot fit");
    gguf_writer_patch_u64(c, 8, UINT64_MAX);
    CHECK_REJECT(c, n, "n_tensors", 8, "cannot fit");
    memcpy(c, b, n);
    gguf_writer_patch_u64(c, 16, 1ULL << 60);
    CHECK_REJECT(c, n, "n_kv", 16, "key-value pairs cannot fit");
    /* first key's length: 2^63 */
    memcpy(c, b, n);
    gguf_writer_patch_u64(c, 24, 1ULL << 63);
    CHECK_REJECT(c, n, "kv[0].key", 24, "string length 9223372036854775808 runs past the end");
    gguf_writer_patch_u64(c, 24, 0);
    CHECK_REJECT(c, n, "kv[0].key", 24, "empty key");
    /* first key "general.architecture" (20 bytes) then its type at 24 + 8 + 20 */
    memcpy(c, b, n);
    gguf_writer_patch_u32(c, 52, 13);
    CHECK_REJECT(c, n, "general.architecture.type", 52, "unknown value type 13");
    gguf_writer_patch_u32(c, 52, UINT32_MAX);
    CHECK_REJECT(c, n, "general.architecture.type", 52, "unknown value type 4294967295");
    /* its value: string length 2^63 */
    memcpy(c, b, n);
    gguf_writer_patch_u64(c, 56, 1ULL << 63);
    CHECK_REJECT(c, n, "general.architecture", 56, "string length 9223372036854775808");
    /* more tensors than there are: the second pass runs into the data */
    memcpy(c, b, n);
    gguf_writer_patch_u64(c, 8, 3);
    {
        char err[CND_ERR_LEN];
        struct gguf_file *g = open_bytes(c, n, err);
        CHECK(g == NULL && strstr(err, "t.gguf: field '") && strstr(err, " offset "));
        gguf_close(g);
    }
    free(c);
    free(b);
}

static void test_kv_errors(void)
{
    /* raw kvs: key "k" then a broken value */
    static const uint8_t key_k[] = {1, 0, 0, 0, 0, 0, 0, 0, 'k'};
    uint8_t raw[64];
    struct gguf_writer w;
    uint8_t *b;
    size_t n;
    const size_t at_type = 24 + 9, at_val = at_type + 4; /* of the first kv */

    /* array of arrays */
    gguf_writer_init(&w, 3);
    memcpy(raw, key_k, 9);
    uint32_t t = GGUF_TYPE_ARRAY, et = GGUF_TYPE_ARRAY;
    uint64_t cnt = 1;
    memcpy(raw + 9, &t, 4);
    memcpy(raw + 13, &et, 4);
    memcpy(raw + 17, &cnt, 8);
    memset(raw + 25, 0, 16);
    gguf_writer_add_raw_kv(&w, raw, 41);
    finish(&w, &b, &n);
    CHECK_REJECT(b, n, "k", at_val, "unsupported array element type 9");
    /* unknown element type */
    gguf_writer_patch_u32(b, at_val, 13);
    CHECK_REJECT(b, n, "k", at_val, "unsupported array element type 13");
    /* u32 array of 2^60 elements */
    gguf_writer_patch_u32(b, at_val, GGUF_TYPE_UINT32);
    gguf_writer_patch_u64(b, at_val + 4, 1ULL << 60);
    CHECK_REJECT(b, n, "k", at_val + 4, "array of 1152921504606846976 x 4 bytes runs past");
    /* u64 array of 2^61 elements: n * 8 wraps to 0 in 64 bits */
    gguf_writer_patch_u32(b, at_val, GGUF_TYPE_UINT64);
    gguf_writer_patch_u64(b, at_val + 4, 1ULL << 61);
    CHECK_REJECT(b, n, "k", at_val + 4, "runs past");
    /* string array of 2^60 (and of 2^61, whose 8-byte index would wrap) */
    gguf_writer_patch_u32(b, at_val, GGUF_TYPE_STRING);
    gguf_writer_patch_u64(b, at_val + 4, 1ULL << 60);
    CHECK_REJECT(b, n, "k", at_val + 4, "array of 1152921504606846976 strings cannot fit");
    gguf_writer_patch_u64(b, at_val + 4, 1ULL << 61);
    CHECK_REJECT(b, n, "k", at_val + 4, "strings cannot fit");
    /* two strings fit the count check, the second has length 2^63 */
    gguf_writer_patch_u64(b, at_val + 4, 2);
    gguf_writer_patch_u64(b, at_val + 12, 0);
    gguf_writer_patch_u64(b, at_val + 20, 1ULL << 63);
    CHECK_REJECT(b, n, "k[1]", at_val + 20, "string length 9223372036854775808");
    free(b);

    /* a truncated scalar (a long key, so the kv count check still passes) */
    gguf_writer_init(&w, 2);
    gguf_writer_add_u64(&w, "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkk", 5); /* 30 bytes */
    finish(&w, &b, &n);
    CHECK_REJECT(b, n - 1, "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkk", 66, "truncated");
    CHECK_REJECT(b, n - 8, "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkk", 66, "truncated");
    CHECK_REJECT(b, 64, "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkk.type", 62, "truncated");
    CHECK_REJECT(b, 50, "kv[0].key", 24, "string length 30 runs past the end");
    CHECK_REJECT(b, 37, "n_kv", 16, "1 key-value pairs cannot fit");
    free(b);

    /* a key with a NUL */
    gguf_writer_init(&w, 3);
    gguf_writer_add_u8(&w, "ab", 1);
    finish(&w, &b, &n);
    b[33] = 0;
    CHECK_REJECT(b, n, "kv[0].key", 24, "containing NUL");
    free(b);

    /* duplicate key: reported at the second one */
    gguf_writer_init(&w, 3);
    gguf_writer_add_u8(&w, "x", 1);
    gguf_writer_add_u8(&w, "dup", 1);
    gguf_writer_add_str(&w, "dup", "z");
    finish(&w, &b, &n);
    CHECK_REJECT(b, n, "key 'dup'", 24 + 14 + 16, "duplicate key");
    free(b);

    /* a key holding control bytes is escaped in the message */
    gguf_writer_init(&w, 3);
    gguf_writer_add_u8(&w, "a\nb\x1b", 1);
    gguf_writer_add_u8(&w, "a\nb\x1b", 1);
    finish(&w, &b, &n);
    CHECK_REJECT(b, n, "key 'a?b?'", 24 + 17, "duplicate key");
    free(b);
}

static void test_alignment_errors(void)
{
    struct gguf_writer w;
    uint8_t *b;
    size_t n;
    gguf_writer_init(&w, 3);
    gguf_writer_add_u32(&w, "general.alignment", 48);
    finish(&w, &b, &n);
    CHECK_REJECT(b, n, "general.alignment", 24 + 8 + 17 + 4, "power of two");
    gguf_writer_patch_u32(b, 53, 0);
    CHECK_REJECT(b, n, "general.alignment", 53, "power of two");
    free(b);
    gguf_writer_init(&w, 3);
    gguf_writer_add_u64(&w, "general.alignment", 32);
    finish(&w, &b, &n);
    CHECK_REJECT(b, n, "general.alignment", 53, "must be a u32");
    free(b);
}

/* One tensor info "t" with the given type, dims and offset, 'data' bytes of data. */
static void make_tensor_file(uint32_t type, uint32_t n_dims, const int64_t *ne, uint64_t off,
                             size_t data, uint8_t **b, size_t *n)
{
    struct gguf_writer w;
    gguf_writer_init(&w, 3);
    gguf_writer_add_tensor_info(&w, "t", type, n_dims, ne, off);
    gguf_writer_add_data(&w, NULL, data);
    finish(&w, b, n);
}

static void test_tensor_info_errors(void)
{
    uint8_t *b;
    size_t n;
    int64_t ne[5] = {32, 2, 1, 1, 1};
    /* name at 24 (len 8 + 1 byte), n_dims at 33, ne[0] at 37 */
    const size_t at_ndims = 33, at_ne0 = 37;
    static const uint32_t bad_types[] = {4, 5, 31, 32, 33, 36, 37, 38, 40, 1000, UINT32_MAX};
    for (size_t i = 0; i < ARRAY_SIZE(bad_types); i++) {
        make_tensor_file(bad_types[i], 2, ne, 0, 256, &b, &n);
        char why[64];
        snprintf(why, sizeof(why), "unknown tensor type %" PRIu32, bad_types[i]);
        CHECK_REJECT(b, n, "tensor 't'.type", at_ne0 + 16, why);
        free(b);
    }
    make_tensor_file(CND_DTYPE_F32, 0, ne, 0, 256, &b, &n);
    CHECK_REJECT(b, n, "tensor 't'.n_dims", at_ndims, "n_dims 0 not in 1..4");
    free(b);
    make_tensor_file(CND_DTYPE_F32, 5, ne, 0, 256, &b, &n);
    CHECK_REJECT(b, n, "tensor 't'.n_dims", at_ndims, "n_dims 5 not in 1..4");
    free(b);
    /* dims: negative, overflowing, overflowing behind a zero */
    int64_t neg[2] = {-1, 1};
    make_tensor_file(CND_DTYPE_F32, 2, neg, 0, 256, &b, &n);
    CHECK_REJECT(b, n, "tensor 't'.ne[0]", at_ne0, "overflows");
    free(b);
    int64_t big[2] = {1LL << 32, 1LL << 32};
    make_tensor_file(CND_DTYPE_F32, 2, big, 0, 256, &b, &n);
    CHECK_REJECT(b, n, "tensor 't'.ne[1]", at_ne0 + 8, "overflows");
    free(b);
    int64_t zbig[3] = {0, 1LL << 40, 1LL << 40};
    make_tensor_file(CND_DTYPE_F32, 3, zbig, 0, 256, &b, &n);
    CHECK_REJECT(b, n, "tensor 't'.ne[2]", at_ne0 + 16, "overflows");
    free(b);
    /* f64 with 2^61 elements: 2^64 bytes, which wraps to 0 in 64 bits */
    int64_t wrap[2] = {1LL << 31, 1LL << 30};
    make_tensor_file(CND_DTYPE_F64, 2, wrap, 0, 256, &b, &n);
    CHECK_REJECT(b, n, "tensor 't'.type", at_ne0 + 16, "overflow the byte size");
    free(b);
    int64_t wrap2[1] = {1LL << 62};
    make_tensor_file(CND_DTYPE_F32, 1, wrap2, 0, 256, &b, &n);
    CHECK_REJECT(b, n, "tensor 't'.type", at_ne0 + 8, "overflow the byte size");
    free(b);
    /* huge but not overflowing: runs past the end */
    int64_t huge[2] = {1LL << 30, 1LL << 30};
    make_tensor_file(CND_DTYPE_Q4_0, 2, huge, 0, 256, &b, &n);
    CHECK_REJECT(b, n, "tensor 't'.offset", at_ne0 + 20, "run past the end of the file");
    free(b);
    /* row not a multiple of the block */
    int64_t odd[2] = {33, 1};
    make_tensor_file(CND_DTYPE_Q8_0, 2, odd, 0, 256, &b, &n);
    CHECK_REJECT(b, n, "tensor 't'.type", at_ne0 + 16, "not a multiple of the q8_0 block");
    free(b);
    /* data: misaligned, one byte short, offset past the end, offset 2^63 */
    make_tensor_file(CND_DTYPE_F32, 2, ne, 8, 512, &b, &n);
    CHECK_REJECT(b, n, "tensor 't'.offset", at_ne0 + 20, "not a multiple of the alignment 32");
    free(b);
    make_tensor_file(CND_DTYPE_F32, 2, ne, 0, 255, &b, &n);
    CHECK_REJECT(b, n, "tensor 't'.offset", at_ne0 + 20,
                 "256 bytes of data at data offset 0 run past");
    free(b);
    make_tensor_file(CND_DTYPE_F32, 2, ne, 1 << 20, 256, &b, &n);
    CHECK_REJECT(b, n, "tensor 't'.offset", at_ne0 + 20, "run past the end");
    free(b);
    make_tensor_file(CND_DTYPE_F32, 2, ne, 1ULL << 63, 256, &b, &n);
    CHECK_REJECT(b, n, "tensor 't'.offset", at_ne0 + 20, "run past the end");
    free(b);
    /* exactly fitting is fine */
    make_tensor_file(CND_DTYPE_F32, 2, ne, 0, 256, &b, &n);
    {
        char err[CND_ERR_LEN];
        struct gguf_file *g = open_bytes(b, n, err);
        CHECK_MSG(g != NULL, "%s", err);
        gguf_close(g);
        /* no room even for the data section */
        CHECK_REJECT(b, 60, "tensor 't'.offset", 57, "truncated");
        CHECK_REJECT(b, 65, "data section", 65, "ends before the tensor data");
    }
    free(b);
    /* a name with a NUL; a name of length 2^63 */
    make_tensor_file(CND_DTYPE_F32, 2, ne, 0, 256, &b, &n);
    b[32] = 0;
    CHECK_REJECT(b, n, "tensor_infos[0].name", 24, "contains NUL");
    gguf_writer_patch_u64(b, 24, 1ULL << 63);
    CHECK_REJECT(b, n, "tensor_infos[0].name", 24, "string length 9223372036854775808");
    free(b);
}

static void test_tensor_overlap_and_duplicates(void)
{
    struct gguf_writer w;
    uint8_t *b;
    size_t n;
    int64_t ne[1] = {64}; /* 256 bytes of f32 */
    int64_t zero[1] = {0};
    /* b starts inside a; reported at b's offset field */
    gguf_writer_init(&w, 3);
    gguf_writer_add_tensor_info(&w, "a", CND_DTYPE_F32, 1, ne, 0);
    gguf_writer_add_tensor_info(&w, "b", CND_DTYPE_F32, 1, ne, 224);
    gguf_writer_add_data(&w, NULL, 1024);
    finish(&w, &b, &n);
    /* infos: "a" at 24 (8+1+4+8+4+8 = 33 bytes), "b" at 57, its offset field at 57 + 25 */
    CHECK_REJECT(b, n, "tensor 'b'.offset", 57 + 25, "data at data offset 224 overlaps tensor 'a'");
    free(b);
    /* same offset, in either order; and a tensor inside a bigger earlier one */
    gguf_writer_init(&w, 3);
    gguf_writer_add_tensor_info(&w, "a", CND_DTYPE_F32, 1, ne, 256);
    gguf_writer_add_tensor_info(&w, "b", CND_DTYPE_F32, 1, ne, 256);
    gguf_writer_add_data(&w, NULL, 1024);
    finish(&w, &b, &n);
    CHECK_REJECT(b, n, "tensor 'b'.offset", 57 + 25, "overlaps tensor 'a'");
    free(b);
    int64_t ne_big[1] = {256};
    gguf_writer_init(&w, 3);
    gguf_writer_add_tensor_info(&w, "a", CND_DTYPE_F32, 1, ne_big, 0); /* 0..1024 */
    gguf_writer_add_tensor_info(&w, "b", CND_DTYPE_F32, 1, ne, 32);    /* inside a */
    gguf_writer_add_tensor_info(&w, "c", CND_DTYPE_F32, 1, ne, 512);   /* inside a */
    gguf_writer_add_data(&w, NULL, 2048);
    finish(&w, &b, &n);
    CHECK_REJECT(b, n, "tensor 'b'.offset", 57 + 25, "overlaps tensor 'a'");
    free(b);
    /* adjacent tensors and empty tensors anywhere are fine */
    gguf_writer_init(&w, 2);
    gguf_writer_add_tensor_info(&w, "a", CND_DTYPE_F32, 1, ne, 0);
    gguf_writer_add_tensor_info(&w, "b", CND_DTYPE_F32, 1, ne, 256);
    gguf_writer_add_tensor_info(&w, "e1", CND_DTYPE_F32, 1, zero, 0);
    gguf_writer_add_tensor_info(&w, "e2", CND_DTYPE_F32, 1, zero, 64);
    gguf_writer_add_tensor_info(&w, "e3", CND_DTYPE_F32, 1, zero, 512);
    gguf_writer_add_data(&w, NULL, 512);
    finish(&w, &b, &n);
    {
        char err[CND_ERR_LEN];
        struct gguf_file *g = open_bytes(b, n, err);
        CHECK_MSG(g != NULL, "%s", err);
        if (g)
            CHECK(gguf_find_tensor(g, "e3")->data == b + gguf_data_offset(g) + 512);
        gguf_close(g);
    }
    free(b);
    /* duplicate names: reported at the second info */
    gguf_writer_init(&w, 3);
    gguf_writer_add_tensor_info(&w, "a", CND_DTYPE_F32, 1, ne, 0);
    gguf_writer_add_tensor_info(&w, "a", CND_DTYPE_F32, 1, ne, 256);
    gguf_writer_add_data(&w, NULL, 512);
    finish(&w, &b, &n);
    CHECK_REJECT(b, n, "tensor 'a'.name", 57, "duplicate tensor name");
    free(b);
}

/* A vocab-only file (no tensors) may end right after its metadata. */
static void test_no_tensors(void)
{
    struct gguf_writer w;
    gguf_writer_init(&w, 3);
    const char *toks[] = {"a", "b"};
    gguf_writer_add_arr_str(&w, "tokenizer.ggml.tokens", toks, 2);
    uint8_t *b;
    size_t n;
    finish(&w, &b, &n);
    CHECK_EQ_INT(n % 32 != 0, 1);
    char err[CND_ERR_LEN];
    struct gguf_file *g = open_bytes(b, n, err);
    CHECK_MSG(g != NULL, "%s", err);
    if (g)
        CHECK_EQ_INT(gguf_n_tensors(g), 0);
    gguf_close(g);
    CHECK_REJECT(b, n - 1, "tokenizer.ggml.tokens[1]", n - 9, "runs past the end");
    free(b);
    /* an empty file, the magic alone, the header alone */
    gguf_writer_init(&w, 2);
    finish(&w, &b, &n);
    CHECK_EQ_INT(n, 24);
    g = open_bytes(b, n, err);
    CHECK_MSG(g != NULL, "%s", err);
    gguf_close(g);
    CHECK_REJECT(b, 4, "version", 4, "truncated");
    free(b);
}

/* f32/f64 values that do not fit an int64 (NaN, inf, 1e30) convert to 0, not to UB. */
static void test_float_conversion(void)
{
    struct gguf_writer w;
    gguf_writer_init(&w, 3);
    gguf_writer_add_f32(&w, "nan", NAN);
    gguf_writer_add_f32(&w, "inf", INFINITY);
    gguf_writer_add_f32(&w, "big", 1e30f);
    gguf_writer_add_f64(&w, "dnan", NAN);
    float arr[3] = {NAN, -INFINITY, 3.75f};
    gguf_writer_add_arr_f32(&w, "arr", arr, 3);
    uint8_t *b;
    size_t n;
    finish(&w, &b, &n);
    char err[CND_ERR_LEN];
    struct gguf_file *g = open_bytes(b, n, err);
    CHECK_MSG(g != NULL, "%s", err);
    if (g) {
        CHECK_EQ_INT(gguf_get_i64_or(g, "nan", 5), 0);
        CHECK_EQ_INT(gguf_get_i64_or(g, "inf", 5), 0);
        CHECK_EQ_INT(gguf_get_i64_or(g, "big", 5), 0);
        CHECK_EQ_INT(gguf_get_i64_or(g, "dnan", 5), 0);
        CHECK(isnan(gguf_get_f64_or(g, "nan", 0)));
        int64_t k = gguf_find_key(g, "arr");
        CHECK_EQ_INT(gguf_arr_get_i64(g, k, 0), 0);
        CHECK_EQ_INT(gguf_arr_get_i64(g, k, 1), 0);
        CHECK_EQ_INT(gguf_arr_get_i64(g, k, 2), 3);
        CHECK(isinf(gguf_arr_get_f64(g, k, 1)));
        CHECK(!gguf_get_bool_or(g, "nan", true));
    }
    gguf_close(g);
    free(b);
}

/* ---- fuzzer seeds ---- */

static int write_seed(const char *dir, const char *name, uint8_t *b, size_t n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    int rc = f && fwrite(b, 1, n, f) == n ? 0 : 1;
    if (f && fclose(f) != 0)
        rc = 1;
    free(b);
    if (rc)
        fprintf(stderr, "cannot write %s\n", path);
    return rc;
}

static int write_corpus(const char *dir)
{
    int rc = 0;
    uint8_t *b;
    size_t n;
    struct gguf_writer w;
    make_small(3, &b, &n);
    rc |= write_seed(dir, "small-v3.gguf", b, n);
    make_small(2, &b, &n);
    rc |= write_seed(dir, "small-v2.gguf", b, n);
    /* every kv type */
    gguf_writer_init(&w, 3);
    gguf_writer_add_u8(&w, "u8", 1);
    gguf_writer_add_i8(&w, "i8", -1);
    gguf_writer_add_u16(&w, "u16", 2);
    gguf_writer_add_i16(&w, "i16", -2);
    gguf_writer_add_u32(&w, "u32", 3);
    gguf_writer_add_i32(&w, "i32", -3);
    gguf_writer_add_f32(&w, "f32", 0.5f);
    gguf_writer_add_bool(&w, "bool", true);
    gguf_writer_add_str(&w, "str", "s");
    gguf_writer_add_u64(&w, "u64", 4);
    gguf_writer_add_i64(&w, "i64", -4);
    gguf_writer_add_f64(&w, "f64", 0.25);
    float f[2] = {1, 2};
    int32_t iv[2] = {1, 2};
    gguf_writer_add_arr_f32(&w, "af32", f, 2);
    gguf_writer_add_arr_i32(&w, "ai32", iv, 2);
    const char *strs[] = {"a", "bb", ""};
    gguf_writer_add_arr_str(&w, "astr", strs, 3);
    finish(&w, &b, &n);
    rc |= write_seed(dir, "all-types.gguf", b, n);
    /* a tiny llama-like model: alignment 64, quantized tensors */
    gguf_writer_init(&w, 3);
    gguf_writer_add_str(&w, "general.architecture", "llama");
    gguf_writer_add_u32(&w, "general.alignment", 64);
    gguf_writer_add_u32(&w, "llama.embedding_length", 32);
    gguf_writer_add_f32(&w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    gguf_writer_add_arr_str(&w, "tokenizer.ggml.tokens", strs, 3);
    float sc[3] = {0, -1, -2};
    gguf_writer_add_arr_f32(&w, "tokenizer.ggml.scores", sc, 3);
    int64_t ne_e[2] = {32, 3}, ne_n[1] = {32}, ne_k[2] = {256, 1};
    gguf_writer_add_tensor(&w, "token_embd.weight", CND_DTYPE_Q8_0, 2, ne_e, NULL);
    gguf_writer_add_tensor(&w, "output_norm.weight", CND_DTYPE_F32, 1, ne_n, NULL);
    gguf_writer_add_tensor(&w, "blk.0.attn_q.weight", CND_DTYPE_Q4_K, 2, ne_k, NULL);
    gguf_writer_add_tensor(&w, "blk.0.ffn_up.weight", CND_DTYPE_F16, 2, ne_e, NULL);
    finish(&w, &b, &n);
    rc |= write_seed(dir, "tiny-llama.gguf", b, n);
    /* vocab-only */
    gguf_writer_init(&w, 3);
    gguf_writer_add_str(&w, "tokenizer.ggml.model", "gpt2");
    const char *merges[] = {"a b", "ab c"};
    gguf_writer_add_arr_str(&w, "tokenizer.ggml.merges", merges, 2);
    finish(&w, &b, &n);
    rc |= write_seed(dir, "vocab-only.gguf", b, n);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--write-corpus") == 0)
        return write_corpus(argv[2]);
    RUN(test_all_types_v2);
    RUN(test_all_types_v3);
    RUN(test_tensors_v2_default_alignment);
    RUN(test_tensors_v3_default_alignment);
    RUN(test_tensors_alignment_64_and_1);
    RUN(test_open_file_is_mapped);
    RUN(test_header_errors);
    RUN(test_kv_errors);
    RUN(test_alignment_errors);
    RUN(test_tensor_info_errors);
    RUN(test_tensor_overlap_and_duplicates);
    RUN(test_no_tensors);
    RUN(test_float_conversion);
    return test_summary();
}
