/* bench_tokenizer.c: tokenizer throughput in MB/s on about 1 MB of text (the perplexity story
 * sample plus the vocab test inputs, repeated) for the SPM (llama-spm) and Llama 3 (llama-bpe)
 * vocabularies (and Qwen2; llama3-special also scans for control-token text). Prints
 * "spm 23.4 MB/s" style lines, plus decode speed. */
#include "cinder/gguf.h"
#include "cinder/status.h"
#include "cinder/tokenizer.h"
#include "cinder/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SHARED       CND_SHARED_DIR
#define TARGET_BYTES (1u << 20)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void append_file(struct buf *b, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "bench_tokenizer: cannot read %s\n", path);
        return;
    }
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_append(b, chunk, n);
    fclose(f);
}

static void bench_one(const char *label, const char *path, const struct buf *text,
                      bool parse_special)
{
    char err[CND_ERR_LEN] = "";
    struct gguf_file *g = gguf_open(path, err);
    struct tokenizer *tok = g ? tokenizer_create(g, err) : NULL;
    if (g)
        gguf_close(g);
    if (!tok) {
        fprintf(stderr, "bench_tokenizer: %s: %s\n", path, err);
        return;
    }
    int32_t *ids = NULL;
    size_t n_ids = 0, cap = 0;
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        n_ids = 0;
        double t0 = now_s();
        tokenizer_encode(tok, text->data, text->len, false, parse_special, &ids, &n_ids, &cap);
        double dt = now_s() - t0;
        if (dt < best)
            best = dt;
    }
    struct buf out;
    buf_init(&out);
    double t0 = now_s();
    tokenizer_decode(tok, ids, n_ids, false, false, &out);
    double dec = now_s() - t0;
    printf("%s %.1f MB/s (%zu bytes -> %zu tokens in %.1f ms; decode %.1f MB/s)\n", label,
           (double)text->len / best / 1e6, text->len, n_ids, best * 1e3,
           (double)out.len / dec / 1e6);
    buf_deinit(&out);
    free(ids);
    tokenizer_destroy(tok);
}

int main(void)
{
    struct buf one, text;
    buf_init(&one), buf_init(&text);
    append_file(&one, SHARED "/reference/perplexity/stories-sampled.txt");
    append_file(&one, SHARED "/models/vocab/ggml-vocab-llama-spm.gguf.inp");
    if (one.len == 0)
        return 1;
    while (text.len < TARGET_BYTES)
        buf_append(&text, one.data, one.len);
    bench_one("spm", SHARED "/models/vocab/ggml-vocab-llama-spm.gguf", &text, false);
    bench_one("llama3", SHARED "/models/vocab/ggml-vocab-llama-bpe.gguf", &text, false);
    bench_one("llama3-special", SHARED "/models/vocab/ggml-vocab-llama-bpe.gguf", &text, true);
    bench_one("qwen2", SHARED "/models/vocab/ggml-vocab-qwen2.gguf", &text, false);
    buf_deinit(&one), buf_deinit(&text);
    return 0;
}
