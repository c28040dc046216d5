/* fuzz_gguf.c: libFuzzer target for the GGUF reader. Parses the input with gguf_open_memory,
 * then walks every kv, every array element and every tensor through the public accessors and
 * touches every byte they hand out, so ASan sees any view that points outside the input. An
 * opened file must also satisfy the reader's promises (tensor data inside the input, aligned,
 * non-overlapping); a broken promise traps. A rejected input must come with a message that
 * names the file, a field and an offset. Build: see tests/fuzz/README.md. */
#include "cinder/gguf.h"
#include "cinder/status.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t sink;

static void touch(const void *p, uint64_t n)
{
    const uint8_t *b = p;
    uint64_t s = 0;
    for (uint64_t i = 0; i < n; i++)
        s += b[i];
    sink += s;
}

static void check_in(const uint8_t *data, size_t size, const void *p, uint64_t n)
{
    const uint8_t *b = p;
    if (n == 0)
        return;
    if (!b || b < data || b > data + size || n > (uint64_t)(data + size - b))
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a private copy of exactly size bytes, so reads past the end hit ASan's redzone */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    char err[CND_ERR_LEN];
    err[0] = 0;
    struct gguf_file *g = gguf_open_memory(buf, size, "fuzz.gguf", err);
    if (!g) {
        if (!strstr(err, "fuzz.gguf") || !strstr(err, "field '") || !strstr(err, " offset "))
            __builtin_trap();
        free(buf);
        return 0;
    }
    if (gguf_version(g) != 2 && gguf_version(g) != 3)
        __builtin_trap();
    uint32_t align = gguf_alignment(g);
    if (align == 0 || (align & (align - 1)) != 0)
        __builtin_trap();
    for (int64_t i = 0; i < gguf_n_kv(g); i++) {
        const char *key = gguf_kv_key(g, i);
        touch(key, strlen(key));
        enum gguf_type t = gguf_kv_type(g, i);
        int64_t iv = 0;
        double fv = 0;
        sink += (uint64_t)gguf_kv_get_i64(g, i, &iv) + (uint64_t)gguf_kv_get_f64(g, i, &fv);
        sink += (uint64_t)iv + (uint64_t)(fv == fv);
        struct gguf_str s = gguf_kv_get_str(g, i);
        if (t == GGUF_TYPE_STRING) {
            check_in(buf, size, s.ptr, s.len);
            touch(s.ptr, s.len);
        }
        if (t == GGUF_TYPE_ARRAY) {
            uint64_t n = gguf_kv_arr_n(g, i);
            enum gguf_type at = gguf_kv_arr_type(g, i);
            sink += (uint64_t)at;
            for (uint64_t j = 0; j < n; j++) {
                if (at == GGUF_TYPE_STRING) {
                    struct gguf_str e = gguf_arr_get_str(g, i, j);
                    check_in(buf, size, e.ptr, e.len);
                    touch(e.ptr, e.len);
                } else {
                    sink += (uint64_t)gguf_arr_get_i64(g, i, j);
                    double f = gguf_arr_get_f64(g, i, j);
                    sink += (uint64_t)(f == f);
                }
            }
            /* one past the end must be refused quietly */
            sink += (uint64_t)gguf_arr_get_i64(g, i, n) + gguf_arr_get_str(g, i, n).len;
        }
        if (i < 8 && gguf_find_key(g, key) < 0)
            __builtin_trap();
    }
    sink += (uint64_t)gguf_get_i64_or(g, "general.alignment", 0);
    sink += (uint64_t)gguf_get_bool_or(g, "general.x", false);
    sink += (uint64_t)gguf_get_f64_or(g, "general.y", 1.0);
    char *arch = gguf_get_str_dup(g, "general.architecture");
    if (arch)
        touch(arch, strlen(arch));
    free(arch);
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const struct gguf_tensor_info *ti = gguf_tensor(g, i);
        touch(ti->name, strlen(ti->name));
        if (ti->n_dims < 1 || ti->n_dims > CND_MAX_DIMS || ti->offset % align != 0)
            __builtin_trap();
        uint64_t n_el = 1;
        for (int d = 0; d < CND_MAX_DIMS; d++) {
            if (ti->ne[d] < 0)
                __builtin_trap();
            n_el *= (uint64_t)ti->ne[d];
        }
        if (n_el / (uint64_t)dtype_block_size(ti->type) * (uint64_t)dtype_type_size(ti->type) !=
            ti->size_bytes)
            __builtin_trap();
        if ((const uint8_t *)ti->data != buf + gguf_data_offset(g) + ti->offset)
            __builtin_trap();
        check_in(buf, size, ti->data, ti->size_bytes);
        touch(ti->data, ti->size_bytes);
        /* no two tensors with bytes may share any */
        for (int64_t k = 0; k < i && k < 64; k++) {
            const struct gguf_tensor_info *o = gguf_tensor(g, k);
            if (ti->size_bytes && o->size_bytes && ti->offset < o->offset + o->size_bytes &&
                o->offset < ti->offset + ti->size_bytes)
                __builtin_trap();
        }
        if (i < 8 && gguf_find_tensor(g, ti->name) != ti)
            __builtin_trap();
    }
    gguf_close(g);
    free(buf);
    return 0;
}
