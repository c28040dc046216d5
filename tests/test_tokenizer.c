/* ctest-labels: unit */
/* test_tokenizer.c: the tokenizer against llama.cpp's vectors (models/vocab/ .inp/.out files and
 * models/hf-tokenizers/), against every reference JSON's prompt tokens, special-token parsing,
 * the end-of-generation set, and streaming decode (pieces concatenate to the whole decode and
 * never split a UTF-8 sequence). Prints per-vocabulary pass counts. */
#include "cinder/gguf.h"
#include "cinder/status.h"
#include "cinder/tokenizer.h"
#include "cinder/xalloc.h"
#include "test.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>

#define SHARED    CND_SHARED_DIR
#define VOCAB_DIR SHARED "/models/vocab/"
#define VOCAB_SEP "\n__ggml_vocab_test__\n"

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *data = xmalloc((size_t)n + 1);
    size_t got = fread(data, 1, (size_t)n, f);
    fclose(f);
    data[got] = 0;
    *len = got;
    return data;
}

static struct tokenizer *load_tok(const char *path)
{
    char err[CND_ERR_LEN] = "";
    struct gguf_file *g = gguf_open(path, err);
    if (!g) {
        fprintf(stderr, "cannot open %s: %s\n", path, err);
        return NULL;
    }
    struct tokenizer *tok = tokenizer_create(g, err);
    gguf_close(g);
    if (!tok)
        fprintf(stderr, "tokenizer_create(%s): %s\n", path, err);
    return tok;
}

static bool utf8_valid(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t need = u[i] < 0x80             ? 1
                      : (u[i] & 0xE0) == 0xC0 ? 2
                      : (u[i] & 0xF0) == 0xE0 ? 3
                      : (u[i] & 0xF8) == 0xF0 ? 4
                                              : 0;
        if (!need || i + need > n)
            return false;
        for (size_t j = 1; j < need; j++)
            if ((u[i + j] & 0xC0) != 0x80)
                return false;
        i += need;
    }
    return true;
}

/* Streamed pieces concatenate to tokenizer_decode and are each whole UTF-8 (when the whole
 * decode is valid UTF-8). Returns true when all holds. */
static bool check_stream(const struct tokenizer *tok, const int32_t *ids, size_t n)
{
    struct buf whole, all, piece;
    buf_init(&whole), buf_init(&all), buf_init(&piece);
    tokenizer_decode(tok, ids, n, false, false, &whole);
    bool valid = utf8_valid(whole.data, whole.len);
    bool ok = true;
    struct detokenizer dt;
    detokenizer_init(&dt, tok, false);
    for (size_t i = 0; i < n; i++) {
        buf_reset(&piece);
        detokenizer_push(&dt, ids[i], &piece);
        if (valid && !utf8_valid(piece.data, piece.len))
            ok = false;
        buf_append(&all, piece.data, piece.len);
    }
    buf_reset(&piece);
    detokenizer_flush(&dt, &piece);
    buf_append(&all, piece.data, piece.len);
    detokenizer_deinit(&dt);
    if (all.len != whole.len || (all.len && memcmp(all.data, whole.data, all.len) != 0))
        ok = false;
    buf_deinit(&whole), buf_deinit(&all), buf_deinit(&piece);
    return ok;
}

static bool ids_eq(const int32_t *a, size_t na, const int32_t *b, size_t nb)
{
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof(int32_t)) == 0);
}

static void print_ids(const char *what, const int32_t *ids, size_t n)
{
    fprintf(stderr, "    %s:", what);
    for (size_t i = 0; i < n && i < 40; i++)
        fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, n > 40 ? " ...\n" : "\n");
}

/* One .inp/.out pair against a vocab. Returns the number of failing cases (-1: files missing). */
static int run_vectors(const char *label, const char *gguf, const char *inp, const char *outp)
{
    size_t inp_len, out_len;
    char *in = read_all(inp, &inp_len);
    char *out = read_all(outp, &out_len);
    struct tokenizer *tok = in && out ? load_tok(gguf) : NULL;
    if (!tok) {
        printf("  %-34s SKIP (missing files)\n", label);
        free(in), free(out);
        return -1;
    }
    int n_cases = 0, n_pass = 0, n_stream_ok = 0, n_roundtrip = 0;
    char *p = in, *line = out;
    int32_t *ids = NULL;
    size_t n_ids = 0, cap = 0;
    for (;;) {
        char *sep = strstr(p, VOCAB_SEP);
        if (!sep || !line || !*line)
            break;
        size_t len = (size_t)(sep - p);
        char *eol = strchr(line, '\n');
        if (eol)
            *eol = 0;
        int32_t expect[4096];
        size_t n_expect = 0;
        for (char *q = line; *q && n_expect < ARRAY_SIZE(expect);) {
            char *end;
            long v = strtol(q, &end, 10);
            if (end == q)
                break;
            expect[n_expect++] = (int32_t)v;
            q = end;
        }
        n_ids = 0;
        int rc = tokenizer_encode(tok, p, len, false, false, &ids, &n_ids, &cap);
        bool ok = rc == 0 && ids_eq(ids, n_ids, expect, n_expect);
        if (ok)
            n_pass++;
        else {
            fprintf(stderr, "  %s case %d (\"%.*s\") mismatch\n", label, n_cases,
                    (int)CND_MIN(len, 60), p);
            print_ids("expected", expect, n_expect);
            print_ids("got     ", ids, n_ids);
        }
        if (check_stream(tok, ids, n_ids))
            n_stream_ok++;
        struct buf dec;
        buf_init(&dec);
        tokenizer_decode(tok, ids, n_ids, false, true, &dec);
        if (dec.len == len && (len == 0 || memcmp(dec.data, p, len) == 0))
            n_roundtrip++;
        buf_deinit(&dec);
        n_cases++;
        p = sep + strlen(VOCAB_SEP);
        line = eol ? eol + 1 : NULL;
    }
    printf("  %-34s %d/%d cases pass, stream %d/%d, decode round-trip %d/%d\n", label, n_pass,
           n_cases, n_stream_ok, n_cases, n_roundtrip, n_cases);
    CHECK_MSG(n_pass == n_cases && n_cases > 0, "%s: %d/%d", label, n_pass, n_cases);
    CHECK_MSG(n_stream_ok == n_cases, "%s stream: %d/%d", label, n_stream_ok, n_cases);
    free(ids);
    free(in), free(out);
    tokenizer_destroy(tok);
    return n_cases - n_pass;
}

static void test_llamacpp_vectors(void)
{
    static const char *const names[] = {
        "llama-spm", "phi-3",  "llama-bpe", "qwen2",  "qwen3",          "gpt-2",
        "mpt",       "falcon", "starcoder", "refact", "deepseek-coder", "deepseek-llm",
    };
    char gguf[512], inp[512], outp[512];
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        snprintf(gguf, sizeof(gguf), VOCAB_DIR "ggml-vocab-%s.gguf", names[i]);
        snprintf(inp, sizeof(inp), "%s.inp", gguf);
        snprintf(outp, sizeof(outp), "%s.out", gguf);
        run_vectors(names[i], gguf, inp, outp);
    }
}

static void test_hf_vectors(void)
{
    run_vectors("hf llama3 / llama-bpe", VOCAB_DIR "ggml-vocab-llama-bpe.gguf",
                SHARED "/models/hf-tokenizers/llama3/ggml-vocab-llama-bpe.gguf.inp",
                SHARED "/models/hf-tokenizers/llama3/ggml-vocab-llama-bpe.gguf.out");
    run_vectors("hf qwen3 / qwen2", VOCAB_DIR "ggml-vocab-qwen2.gguf",
                SHARED "/models/hf-tokenizers/qwen3/ggml-vocab-qwen2.gguf.inp",
                SHARED "/models/hf-tokenizers/qwen3/ggml-vocab-qwen2.gguf.out");
    run_vectors("hf qwen3 / qwen3", VOCAB_DIR "ggml-vocab-qwen3.gguf",
                SHARED "/models/hf-tokenizers/qwen3/ggml-vocab-qwen2.gguf.inp",
                SHARED "/models/hf-tokenizers/qwen3/ggml-vocab-qwen2.gguf.out");
}

static bool ids_equal_json(const cJSON *arr, const int32_t *ids, size_t n)
{
    if (!cJSON_IsArray(arr) || (size_t)cJSON_GetArraySize(arr) != n)
        return false;
    size_t i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        if (!cJSON_IsNumber(it) || (int32_t)it->valuedouble != ids[i++])
            return false;
    }
    return true;
}

static void test_reference_json(void)
{
    DIR *d = opendir(SHARED "/reference");
    CHECK(d != NULL);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t nl = strlen(e->d_name);
        if (nl < 6 || strcmp(e->d_name + nl - 5, ".json") != 0)
            continue;
        char path[1024];
        snprintf(path, sizeof(path), SHARED "/reference/%s", e->d_name);
        size_t len;
        char *text = read_all(path, &len);
        cJSON *root = text ? cJSON_Parse(text) : NULL;
        free(text);
        const cJSON *mf = cJSON_GetObjectItemCaseSensitive(root, "model_file");
        if (!cJSON_IsString(mf)) {
            cJSON_Delete(root);
            continue;
        }
        char model[1024];
        struct stat st;
        snprintf(model, sizeof(model), SHARED "/models/%s", mf->valuestring);
        if (stat(model, &st) != 0)
            snprintf(model, sizeof(model), SHARED "/models/random/%s", mf->valuestring);
        struct tokenizer *tok = load_tok(model);
        CHECK_MSG(tok != NULL, "%s", model);
        if (!tok) {
            cJSON_Delete(root);
            continue;
        }
        int n_cases = 0, n_pass = 0, n_pass_ns = 0, n_gen = 0;
        int32_t *ids = NULL;
        size_t n_ids = 0, cap = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(root, "cases"))
        {
            const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(c, "prompt");
            if (!cJSON_IsString(prompt))
                continue;
            const char *pr = prompt->valuestring;
            n_ids = 0;
            tokenizer_encode(tok, pr, strlen(pr), true, true, &ids, &n_ids, &cap);
            bool ok =
                ids_equal_json(cJSON_GetObjectItemCaseSensitive(c, "prompt_tokens"), ids, n_ids);
            n_pass += ok;
            if (!ok)
                fprintf(stderr, "  %s case %s: prompt_tokens mismatch\n", e->d_name,
                        cJSON_GetObjectItemCaseSensitive(c, "id")->valuestring);
            n_ids = 0;
            tokenizer_encode(tok, pr, strlen(pr), false, true, &ids, &n_ids, &cap);
            ok = ids_equal_json(cJSON_GetObjectItemCaseSensitive(c, "prompt_tokens_no_special"),
                                ids, n_ids);
            n_pass_ns += ok;
            if (!ok)
                fprintf(stderr, "  %s case %s: prompt_tokens_no_special mismatch\n", e->d_name,
                        cJSON_GetObjectItemCaseSensitive(c, "id")->valuestring);
            /* generated_bytes_hex: pieces of the generated tokens (special=false) */
            const cJSON *gen = cJSON_GetObjectItemCaseSensitive(c, "generated_tokens");
            const cJSON *hex = cJSON_GetObjectItemCaseSensitive(c, "generated_bytes_hex");
            if (cJSON_IsArray(gen) && cJSON_IsString(hex)) {
                struct buf b;
                buf_init(&b);
                const cJSON *it;
                cJSON_ArrayForEach(it, gen)
                    tokenizer_token_to_piece(tok, (int32_t)it->valuedouble, false, &b);
                struct buf h;
                buf_init(&h);
                for (size_t i = 0; i < b.len; i++)
                    buf_appendf(&h, "%02x", (unsigned char)b.data[i]);
                bool gok = strcmp(h.data ? h.data : "", hex->valuestring) == 0;
                n_gen += gok;
                if (!gok)
                    fprintf(stderr, "  %s: generated_bytes_hex mismatch\n", e->d_name);
                buf_deinit(&b), buf_deinit(&h);
            }
            n_cases++;
        }
        printf("  %-34s prompt_tokens %d/%d, no_special %d/%d, generated bytes %d/%d\n", e->d_name,
               n_pass, n_cases, n_pass_ns, n_cases, n_gen, n_cases);
        CHECK(n_cases > 0 && n_pass == n_cases && n_pass_ns == n_cases && n_gen == n_cases);
        free(ids);
        tokenizer_destroy(tok);
        cJSON_Delete(root);
    }
    closedir(d);
}

static void expect_encode(const struct tokenizer *tok, const char *text, bool add_special,
                          bool parse_special, const int32_t *expect, size_t n_expect)
{
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    CHECK_EQ_INT(
        tokenizer_encode(tok, text, strlen(text), add_special, parse_special, &ids, &n, &cap), 0);
    bool ok = ids_eq(ids, n, expect, n_expect);
    CHECK_MSG(ok, "encode(\"%s\", add_special=%d, parse_special=%d)", text, add_special,
              parse_special);
    if (!ok) {
        print_ids("expected", expect, n_expect);
        print_ids("got     ", ids, n);
    }
    free(ids);
}

static void test_special_tokens(void)
{
    struct tokenizer *tok = load_tok(VOCAB_DIR "ggml-vocab-llama-bpe.gguf");
    CHECK(tok != NULL);
    if (tok) {
        static const int32_t want[] = {128000, 128006, 882, 128007, 271, 9906, 1917, 128009};
        expect_encode(tok, "<|start_header_id|>user<|end_header_id|>\n\nHello world<|eot_id|>",
                      true, true, want, ARRAY_SIZE(want));
        static const int32_t hw[] = {128000, 9906, 1917};
        expect_encode(tok, "Hello world", true, false, hw, ARRAY_SIZE(hw));
        CHECK(tokenizer_add_bos(tok));
        CHECK_EQ_INT(tokenizer_bos(tok), 128000);
        CHECK_EQ_INT(tokenizer_eos(tok), 128009);
        CHECK(tokenizer_is_eog(tok, 128008));
        CHECK(tokenizer_is_eog(tok, 128009));
        CHECK(!tokenizer_is_eog(tok, 128001));
        CHECK(!tokenizer_is_eog(tok, 9906));
        CHECK_EQ_INT(tokenizer_find(tok, "<|eot_id|>"), 128009);
        CHECK_EQ_INT(tokenizer_token_type(tok, 128009), TOKEN_TYPE_CONTROL);
        /* without parse_special, control text is plain text */
        int32_t *ids = NULL;
        size_t n = 0, cap = 0;
        tokenizer_encode(tok, "<|eot_id|>", 10, false, false, &ids, &n, &cap);
        CHECK(n > 1);
        for (size_t i = 0; i < n; i++)
            CHECK(ids[i] != 128009);
        struct buf b;
        buf_init(&b);
        tokenizer_decode(tok, ids, n, false, false, &b);
        CHECK_STR(b.data, "<|eot_id|>");
        buf_reset(&b);
        int32_t ctl[] = {128000, 9906, 128009};
        tokenizer_decode(tok, ctl, 3, false, false, &b);
        CHECK_STR(b.data, "Hello");
        buf_reset(&b);
        tokenizer_decode(tok, ctl, 3, true, false, &b);
        CHECK_STR(b.data, "<|begin_of_text|>Hello<|eot_id|>");
        buf_deinit(&b);
        free(ids);
        tokenizer_destroy(tok);
    }

    const char *qwens[] = {VOCAB_DIR "ggml-vocab-qwen2.gguf", VOCAB_DIR "ggml-vocab-qwen3.gguf"};
    for (int q = 0; q < 2; q++) {
        tok = load_tok(qwens[q]);
        CHECK(tok != NULL);
        if (!tok)
            continue;
        static const int32_t want[] = {151644, 872, 198,    9707, 1879,
                                       151645, 198, 151657, 6257, 151658};
        expect_encode(tok, "<|im_start|>user\nHello world<|im_end|>\n<tool_call>{}</tool_call>",
                      true, true, want, ARRAY_SIZE(want));
        CHECK(!tokenizer_add_bos(tok));
        static const int32_t ud[] = {151657};
        expect_encode(tok, "<tool_call>", false, false, ud, 1); /* user-defined: always */
        int32_t *ids = NULL;
        size_t n = 0, cap = 0;
        tokenizer_encode(tok, "<|im_start|>", 12, true, false, &ids, &n, &cap);
        CHECK(n > 1 && ids[0] != 151644);
        free(ids);
        CHECK(tokenizer_is_eog(tok, 151643));
        CHECK(tokenizer_is_eog(tok, 151645));
        CHECK(tokenizer_is_eog(tok, 151662));
        CHECK(tokenizer_is_eog(tok, 151663));
        CHECK(tokenizer_is_eog(tok, 151664));
        CHECK(!tokenizer_is_eog(tok, 151644));
        if (q == 1) {
            static const int32_t think[] = {151667, 151668};
            expect_encode(tok, "<think></think>", false, true, think, 2);
        }
        tokenizer_destroy(tok);
    }

    tok = load_tok(VOCAB_DIR "ggml-vocab-llama-spm.gguf");
    CHECK(tok != NULL);
    if (tok) {
        static const int32_t hw[] = {1, 15043, 3186};
        expect_encode(tok, "Hello world", true, false, hw, 3);
        static const int32_t bos_text[] = {1, 1, 15043}; /* "<s>" parsed, then "▁Hello" */
        expect_encode(tok, "<s>Hello", true, true, bos_text, 3);
        static const int32_t empty[] = {1};
        expect_encode(tok, "", true, false, empty, 1);
        expect_encode(tok, "", false, false, empty, 0);
        CHECK(tokenizer_is_eog(tok, 2));
        CHECK(tokenizer_add_space_prefix(tok));
        struct buf b;
        buf_init(&b);
        tokenizer_decode(tok, hw + 1, 2, false, true, &b);
        CHECK_STR(b.data, "Hello world");
        buf_reset(&b);
        tokenizer_decode(tok, hw + 1, 2, false, false, &b);
        CHECK_STR(b.data, " Hello world");
        buf_deinit(&b);
        tokenizer_destroy(tok);
    }
}

static void test_stream_bytes(void)
{
    /* byte-fallback tokens of an emoji come out only once complete */
    struct tokenizer *tok = load_tok(VOCAB_DIR "ggml-vocab-llama-spm.gguf");
    CHECK(tok != NULL);
    if (!tok)
        return;
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    const char *text = "a \xf0\x9f\x90\xb1 b"; /* a 🐱 b */
    tokenizer_encode(tok, text, strlen(text), false, false, &ids, &n, &cap);
    struct detokenizer dt;
    detokenizer_init(&dt, tok, false);
    struct buf all, piece;
    buf_init(&all), buf_init(&piece);
    size_t n_empty = 0;
    for (size_t i = 0; i < n; i++) {
        buf_reset(&piece);
        detokenizer_push(&dt, ids[i], &piece);
        CHECK(utf8_valid(piece.data, piece.len));
        n_empty += piece.len == 0;
        buf_append(&all, piece.data, piece.len);
    }
    CHECK(n_empty >= 3); /* the first three byte tokens of the emoji give nothing yet */
    CHECK_STR(all.data, " a \xf0\x9f\x90\xb1 b");
    /* a dangling lead byte is flushed as U+FFFD */
    buf_reset(&piece);
    detokenizer_push(&dt, tokenizer_find(tok, "<0xF0>"), &piece);
    CHECK_EQ_INT(piece.len, 0);
    detokenizer_flush(&dt, &piece);
    CHECK_STR(piece.data, "\xef\xbf\xbd");
    detokenizer_deinit(&dt);
    buf_deinit(&all), buf_deinit(&piece);
    free(ids);
    tokenizer_destroy(tok);
}

/* Long text: the per-call word cache and SPM chunking must not change the ids. Compared with a
 * tokenizer made with CND_TOKENIZER_NO_CACHE set; also checks the streaming invariant. */
static void test_long_text(void)
{
    size_t len1, len2;
    char *stories = read_all(SHARED "/reference/perplexity/stories-sampled.txt", &len1);
    char *inp = read_all(VOCAB_DIR "ggml-vocab-llama-spm.gguf.inp", &len2);
    if (!stories || !inp) {
        free(stories), free(inp);
        return;
    }
    struct buf text;
    buf_init(&text);
    for (int i = 0; i < 3; i++) {
        buf_append(&text, stories, len1);
        buf_append(&text, inp, len2);
    }
    static const char *const names[] = {"llama-spm", "llama-bpe", "qwen2", "gpt-2", "falcon"};
    for (size_t v = 0; v < ARRAY_SIZE(names); v++) {
        char path[512];
        snprintf(path, sizeof(path), VOCAB_DIR "ggml-vocab-%s.gguf", names[v]);
        unsetenv("CND_TOKENIZER_NO_CACHE");
        struct tokenizer *fast = load_tok(path);
        setenv("CND_TOKENIZER_NO_CACHE", "1", 1);
        struct tokenizer *slow = load_tok(path);
        unsetenv("CND_TOKENIZER_NO_CACHE");
        CHECK(fast && slow);
        if (fast && slow) {
            int32_t *a = NULL, *b = NULL;
            size_t na = 0, nb = 0, ca = 0, cb = 0;
            tokenizer_encode(fast, text.data, text.len, false, false, &a, &na, &ca);
            tokenizer_encode(slow, text.data, text.len, false, false, &b, &nb, &cb);
            bool same = ids_eq(a, na, b, nb);
            CHECK_MSG(same, "%s: cached %zu ids vs uncached %zu", names[v], na, nb);
            CHECK(check_stream(fast, a, na));
            struct buf dec;
            buf_init(&dec);
            tokenizer_decode(fast, a, na, false, true, &dec);
            CHECK_MSG(dec.len == text.len && memcmp(dec.data, text.data, text.len) == 0,
                      "%s: long text does not round-trip", names[v]);
            printf("  %-34s long text %zu bytes -> %zu ids, cached == uncached: %s\n", names[v],
                   text.len, na, same ? "yes" : "NO");
            buf_deinit(&dec);
            free(a), free(b);
        }
        tokenizer_destroy(fast);
        tokenizer_destroy(slow);
    }
    buf_deinit(&text);
    free(stories), free(inp);
}

static void test_errors(void)
{
    char err[CND_ERR_LEN] = "";
    struct gguf_file *g = gguf_open(VOCAB_DIR "ggml-vocab-bert-bge.gguf", err);
    if (!g)
        return;
    struct tokenizer *tok = tokenizer_create(g, err);
    CHECK(tok == NULL);
    CHECK(strstr(err, "bert") != NULL);
    gguf_close(g);
    tokenizer_destroy(NULL);
}

int main(void)
{
    struct stat st;
    if (stat(VOCAB_DIR, &st) != 0) {
        printf("skip: %s missing\n", VOCAB_DIR);
        return TEST_SKIP;
    }
    RUN(test_llamacpp_vectors);
    RUN(test_hf_vectors);
    RUN(test_reference_json);
    RUN(test_special_tokens);
    RUN(test_stream_bytes);
    RUN(test_long_text);
    RUN(test_errors);
    return test_summary();
}
