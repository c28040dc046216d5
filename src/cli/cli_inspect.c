/* cli_inspect.c: `cinder inspect FILE.gguf [--json]`: version, metadata (long arrays shortened),
 * tensors and a summary, for people or (with --json) as one JSON object for scripts. Keys, names
 * and strings come from an untrusted file: control bytes are escaped for terminals and invalid
 * UTF-8 becomes U+FFFD in JSON, so the output always parses. */
#include "cinder/gguf.h"
#include "cinder/status.h"
#include "cli/cli.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INSPECT_ARRAY_HEAD 8   /* array elements shown before "..." */
#define INSPECT_STRING_MAX 120 /* characters of a string value shown to people */

static void print_escaped(const char *s, uint64_t len, uint64_t max)
{
    putchar('"');
    for (uint64_t i = 0; i < len && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c == '\n')
            fputs("\\n", stdout);
        else if (c == '\t')
            fputs("\\t", stdout);
        else if (c < 0x20 || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
    putchar('"');
    if (len > max)
        printf("... (%" PRIu64 " bytes)", len);
}

/* A key or tensor name, control bytes escaped, padded to width. */
static void print_name(const char *s, int width)
{
    int n = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f)
            n += printf("\\x%02x", c);
        else
            n += (putchar(c), 1);
    }
    for (; n < width; n++)
        putchar(' ');
}

static void print_scalar(const struct gguf_file *g, enum gguf_type t, int64_t iv, double fv)
{
    CND_UNUSED(g);
    if (t == GGUF_TYPE_BOOL)
        fputs(iv ? "true" : "false", stdout);
    else if (t == GGUF_TYPE_FLOAT32 || t == GGUF_TYPE_FLOAT64)
        printf("%g", fv);
    else
        printf("%" PRId64, iv);
}

static void inspect_text(const struct gguf_file *g)
{
    printf("file:      %s\n", gguf_path(g));
    printf("version:   GGUF v%" PRIu32 "\n", gguf_version(g));
    printf("size:      %" PRIu64 " bytes\n", gguf_file_size(g));
    printf("alignment: %" PRIu32 "\n", gguf_alignment(g));
    printf("\nmetadata (%" PRId64 " keys):\n", gguf_n_kv(g));
    for (int64_t i = 0; i < gguf_n_kv(g); i++) {
        enum gguf_type t = gguf_kv_type(g, i);
        fputs("  ", stdout);
        print_name(gguf_kv_key(g, i), 40);
        printf(" %-4s ", t == GGUF_TYPE_ARRAY ? "arr" : gguf_type_name(t));
        if (t == GGUF_TYPE_STRING) {
            struct gguf_str s = gguf_kv_get_str(g, i);
            print_escaped(s.ptr, s.len, INSPECT_STRING_MAX);
        } else if (t == GGUF_TYPE_ARRAY) {
            enum gguf_type at = gguf_kv_arr_type(g, i);
            uint64_t n = gguf_kv_arr_n(g, i);
            printf("[%s x %" PRIu64 "] [", gguf_type_name(at), n);
            for (uint64_t j = 0; j < n && j < INSPECT_ARRAY_HEAD; j++) {
                if (j)
                    fputs(", ", stdout);
                if (at == GGUF_TYPE_STRING) {
                    struct gguf_str s = gguf_arr_get_str(g, i, j);
                    print_escaped(s.ptr, s.len, 40);
                } else {
                    print_scalar(g, at, gguf_arr_get_i64(g, i, j), gguf_arr_get_f64(g, i, j));
                }
            }
            if (n > INSPECT_ARRAY_HEAD)
                printf(", ... %" PRIu64 " more", n - INSPECT_ARRAY_HEAD);
            putchar(']');
        } else {
            int64_t iv = 0;
            double fv = 0;
            gguf_kv_get_i64(g, i, &iv);
            gguf_kv_get_f64(g, i, &fv);
            print_scalar(g, t, iv, fv);
        }
        putchar('\n');
    }
    int64_t n_params = 0;
    uint64_t n_bytes = 0;
    printf("\ntensors (%" PRId64 "):\n", gguf_n_tensors(g));
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const struct gguf_tensor_info *ti = gguf_tensor(g, i);
        char shape[96];
        int n = snprintf(shape, sizeof(shape), "[");
        for (uint32_t d = 0; d < ti->n_dims; d++)
            n += snprintf(shape + n, sizeof(shape) - (size_t)n, "%s%" PRId64, d ? ", " : "",
                          ti->ne[d]);
        snprintf(shape + n, sizeof(shape) - (size_t)n, "]");
        fputs("  ", stdout);
        print_name(ti->name, 40);
        printf(" %-22s %-6s offset %" PRIu64 "\n", shape, dtype_name(ti->type),
               gguf_data_offset(g) + ti->offset);
        n_params += ti->ne[0] * ti->ne[1] * ti->ne[2] * ti->ne[3];
        n_bytes += ti->size_bytes;
    }
    char *arch = gguf_get_str_dup(g, "general.architecture");
    printf("\nsummary:\n");
    printf("  architecture:   %s\n", arch ? arch : "(none)");
    if (gguf_n_tensors(g) == 0) {
        printf("  parameters:     no tensors (vocab-only file)\n");
    } else {
        printf("  parameters:     %" PRId64 " (%.2f M)\n", n_params, (double)n_params / 1e6);
        printf("  tensor data:    %" PRIu64 " bytes\n", n_bytes);
        printf("  bits per weight: %.3f\n",
               (double)n_bytes * 8.0 / (double)(n_params ? n_params : 1));
    }
    printf("  file size:      %" PRIu64 " bytes\n", gguf_file_size(g));
    free(arch);
}

static cJSON *json_scalar(enum gguf_type t, int64_t iv, double fv)
{
    if (t == GGUF_TYPE_BOOL)
        return cJSON_CreateBool(iv != 0);
    if (t == GGUF_TYPE_FLOAT32 || t == GGUF_TYPE_FLOAT64)
        return cJSON_CreateNumber(fv);
    return cJSON_CreateNumber((double)iv);
}

/* Length of the valid UTF-8 sequence at p (n bytes left), or 0 if it is not one. */
static size_t utf8_seq_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, cp = c & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

/* A JSON string from bytes: invalid UTF-8 and NUL become U+FFFD, so the output parses. */
static cJSON *json_bytes(const char *s, uint64_t n)
{
    char *tmp = malloc((size_t)n * 3 + 1);
    if (!tmp)
        return cJSON_CreateNull();
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    for (uint64_t i = 0; i < n;) {
        size_t l = p[i] ? utf8_seq_len(p + i, (size_t)(n - i)) : 0;
        if (l == 0) {
            memcpy(tmp + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        } else {
            memcpy(tmp + o, p + i, l);
            o += l;
            i += l;
        }
    }
    tmp[o] = 0;
    cJSON *j = cJSON_CreateString(tmp);
    free(tmp);
    return j;
}

static cJSON *json_str(struct gguf_str s)
{
    return json_bytes(s.ptr, s.len);
}

/* obj[key] = v, the key made valid UTF-8 first */
static void json_add(cJSON *obj, const char *key, cJSON *v)
{
    cJSON *k = json_bytes(key, strlen(key));
    const char *ks = cJSON_GetStringValue(k);
    cJSON_AddItemToObject(obj, ks ? ks : "?", v);
    cJSON_Delete(k);
}

static void inspect_json(const struct gguf_file *g)
{
    cJSON *root = cJSON_CreateObject();
    json_add(root, "file", json_bytes(gguf_path(g), strlen(gguf_path(g))));
    cJSON_AddNumberToObject(root, "version", gguf_version(g));
    cJSON_AddNumberToObject(root, "file_size", (double)gguf_file_size(g));
    cJSON_AddNumberToObject(root, "alignment", gguf_alignment(g));
    cJSON *meta = cJSON_AddObjectToObject(root, "metadata");
    for (int64_t i = 0; i < gguf_n_kv(g); i++) {
        enum gguf_type t = gguf_kv_type(g, i);
        cJSON *v;
        if (t == GGUF_TYPE_STRING) {
            v = json_str(gguf_kv_get_str(g, i));
        } else if (t == GGUF_TYPE_ARRAY) {
            enum gguf_type at = gguf_kv_arr_type(g, i);
            uint64_t n = gguf_kv_arr_n(g, i);
            v = cJSON_CreateObject();
            cJSON_AddStringToObject(v, "type", "array");
            cJSON_AddStringToObject(v, "element_type", gguf_type_name(at));
            cJSON_AddNumberToObject(v, "n", (double)n);
            cJSON *head = cJSON_AddArrayToObject(v, "head");
            for (uint64_t j = 0; j < n && j < INSPECT_ARRAY_HEAD; j++) {
                cJSON_AddItemToArray(head, at == GGUF_TYPE_STRING
                                               ? json_str(gguf_arr_get_str(g, i, j))
                                               : json_scalar(at, gguf_arr_get_i64(g, i, j),
                                                             gguf_arr_get_f64(g, i, j)));
            }
            cJSON_AddBoolToObject(v, "truncated", n > INSPECT_ARRAY_HEAD);
        } else {
            int64_t iv = 0;
            double fv = 0;
            gguf_kv_get_i64(g, i, &iv);
            gguf_kv_get_f64(g, i, &fv);
            v = json_scalar(t, iv, fv);
        }
        json_add(meta, gguf_kv_key(g, i), v);
    }
    cJSON *tensors = cJSON_AddArrayToObject(root, "tensors");
    double n_params = 0, n_bytes = 0;
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const struct gguf_tensor_info *ti = gguf_tensor(g, i);
        cJSON *t = cJSON_CreateObject();
        json_add(t, "name", json_bytes(ti->name, strlen(ti->name)));
        cJSON *shape = cJSON_AddArrayToObject(t, "shape");
        for (uint32_t d = 0; d < ti->n_dims; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)ti->ne[d]));
        cJSON_AddStringToObject(t, "type", dtype_name(ti->type));
        cJSON_AddNumberToObject(t, "offset", (double)(gguf_data_offset(g) + ti->offset));
        cJSON_AddNumberToObject(t, "size", (double)ti->size_bytes);
        cJSON_AddItemToArray(tensors, t);
        n_params += (double)(ti->ne[0] * ti->ne[1] * ti->ne[2] * ti->ne[3]);
        n_bytes += (double)ti->size_bytes;
    }
    cJSON *sum = cJSON_AddObjectToObject(root, "summary");
    char *arch = gguf_get_str_dup(g, "general.architecture");
    if (arch)
        json_add(sum, "architecture", json_bytes(arch, strlen(arch)));
    else
        cJSON_AddNullToObject(sum, "architecture");
    free(arch);
    cJSON_AddNumberToObject(sum, "n_tensors", (double)gguf_n_tensors(g));
    cJSON_AddNumberToObject(sum, "parameters", n_params);
    cJSON_AddNumberToObject(sum, "file_size", (double)gguf_file_size(g));
    if (gguf_n_tensors(g) > 0)
        cJSON_AddNumberToObject(sum, "bits_per_weight",
                                n_bytes * 8.0 / (n_params > 0 ? n_params : 1));
    else
        cJSON_AddNullToObject(sum, "bits_per_weight");
    char *out = cJSON_PrintUnformatted(root);
    puts(out);
    free(out);
    cJSON_Delete(root);
}

int cli_inspect_main(int argc, char **argv)
{
    const char *path = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: cinder inspect FILE.gguf [--json]\n");
            return 0;
        } else if ((strcmp(argv[i], "-m") == 0 || strcmp(argv[i], "--model") == 0) &&
                   i + 1 < argc) {
            path = argv[++i];
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "cinder inspect: unknown option '%s'\n", argv[i]);
            return 2;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        fprintf(stderr, "usage: cinder inspect FILE.gguf [--json]\n");
        return 2;
    }
    char err[CND_ERR_LEN];
    struct gguf_file *g = gguf_open(path, err);
    if (!g) {
        fprintf(stderr, "cinder inspect: %s\n", err);
        return 1;
    }
    if (json)
        inspect_json(g);
    else
        inspect_text(g);
    gguf_close(g);
    return 0;
}
