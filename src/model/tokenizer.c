/* tokenizer.c: the tokenizer module (include/cinder/tokenizer.h). Owns the vocabulary copied out
 * of GGUF metadata, its hash maps (text -> id, merge pair -> rank), special-token partitioning,
 * the two encoders (SentencePiece-style bigram merging by score with byte fallback; GPT-2
 * byte-level BPE by merge rank after a pre-tokenizer from tokenizer_pre.c), and decoding,
 * whole or streamed. Behaviour follows llama.cpp's so that ids match its test vectors. */
#include "cinder/tokenizer.h"

#include "cinder/gguf.h"
#include "cinder/status.h"
#include "cinder/unicode.h"
#include "cinder/xalloc.h"
#include "tokenizer_pre.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum tok_kind { TOK_KIND_SPM, TOK_KIND_BPE };

struct vocab_slot {
    int32_t id;   /* -1: empty */
    uint32_t tag; /* high hash bits, checked before the text */
    uint32_t len; /* copies of text_len/text_off[id]: one cache line per probe */
    uint32_t off;
};

#define TOK_FLAG_EOG 0x80u /* in tok->attr[id], above the token_type bits */
#define TOK_LSTRIP   1u
#define TOK_RSTRIP   2u

struct tokenizer {
    enum tok_kind kind;
    enum tok_pre pre;
    int32_t n_vocab;
    char *arena;        /* all token texts, NUL-terminated */
    uint32_t *text_off; /* [n_vocab] */
    uint32_t *text_len; /* [n_vocab] */
    float *scores;      /* [n_vocab] */
    uint8_t *attr;      /* [n_vocab]: enum token_type | TOK_FLAG_EOG */

    struct vocab_slot *vocab_slots; /* open addressing */
    size_t vocab_mask;

    uint64_t *merge_keys; /* (left << 32 | right) + 1, 0 = empty */
    uint32_t *merge_rank;
    int32_t *merge_result;
    size_t merge_mask;

    uint64_t *pair_keys; /* SPM: adjacent character pairs found inside some token, 0 = empty */
    size_t pair_mask;

    uint8_t *strip; /* [n_vocab] or NULL: TOK_LSTRIP/TOK_RSTRIP eat whitespace around a special */
    int32_t *specials; /* CONTROL / USER_DEFINED / UNKNOWN ids, longest text first */
    size_t n_specials;

    int32_t bos_id, eos_id, eot_id, eom_id, unk_id, pad_id;
    bool add_bos, add_eos, add_space_prefix, ignore_merges;
    uint32_t max_token_len;
    bool no_cache; /* CND_TOKENIZER_NO_CACHE set at create: no word cache (tests compare) */

    int32_t byte_ids[256];  /* SPM: <0xNN>; BPE: the byte's byte-level character */
    char bpe_chars[256][3]; /* BPE byte -> UTF-8 of its byte-level character */
    uint8_t bpe_char_len[256];
    int16_t bpe_inv[324]; /* byte-level codepoint -> byte, -1 if none */
};

/* ---------------------------------------------------------------- hashing */

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = (uint64_t)n * 0x9E3779B97F4A7C15ull, v;
    for (; n >= 8; s += 8, n -= 8) {
        memcpy(&v, s, 8);
        h = (h ^ v) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    v = 0;
    memcpy(&v, s, n);
    h = (h ^ v) * 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
    h *= 0x9E3779B97F4A7C15ull;
    return h ^ (h >> 32);
}

static uint64_t hash_u64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static size_t table_size_for(size_t n)
{
    size_t c = 16;
    while (c < n * 2)
        c *= 2;
    return c;
}

static int32_t vocab_lookup(const struct tokenizer *tok, const char *s, size_t n)
{
    uint64_t h = hash_bytes(s, n);
    uint32_t tag = (uint32_t)(h >> 32);
    size_t i = h & tok->vocab_mask;
    for (;;) {
        const struct vocab_slot *sl = &tok->vocab_slots[i];
        if (sl->id < 0)
            return -1;
        if (sl->tag == tag && sl->len == n && memcmp(tok->arena + sl->off, s, n) == 0)
            return sl->id;
        i = (i + 1) & tok->vocab_mask;
    }
}

static void vocab_insert(struct tokenizer *tok, int32_t id)
{
    const char *s = tok->arena + tok->text_off[id];
    size_t n = tok->text_len[id];
    if (vocab_lookup(tok, s, n) >= 0)
        return; /* duplicate text: the first id wins */
    uint64_t h = hash_bytes(s, n);
    size_t i = h & tok->vocab_mask;
    while (tok->vocab_slots[i].id >= 0)
        i = (i + 1) & tok->vocab_mask;
    tok->vocab_slots[i].id = id;
    tok->vocab_slots[i].tag = (uint32_t)(h >> 32);
    tok->vocab_slots[i].len = (uint32_t)n;
    tok->vocab_slots[i].off = tok->text_off[id];
}

static inline uint64_t merge_key(int32_t left, int32_t right)
{
    return (((uint64_t)(uint32_t)left << 32) | (uint32_t)right) + 1;
}

/* Rank of merging (left, right), or UINT32_MAX; *result gets the merged id. */
static uint32_t merge_lookup(const struct tokenizer *tok, int32_t left, int32_t right,
                             int32_t *result)
{
    if (!tok->merge_keys || left < 0 || right < 0)
        return UINT32_MAX;
    uint64_t key = merge_key(left, right);
    size_t i = hash_u64(key) & tok->merge_mask;
    for (;;) {
        uint64_t k = tok->merge_keys[i];
        if (k == 0)
            return UINT32_MAX;
        if (k == key) {
            *result = tok->merge_result[i];
            return tok->merge_rank[i];
        }
        i = (i + 1) & tok->merge_mask;
    }
}

static void merge_insert(struct tokenizer *tok, int32_t left, int32_t right, uint32_t rank,
                         int32_t result)
{
    uint64_t key = merge_key(left, right);
    size_t i = hash_u64(key) & tok->merge_mask;
    while (tok->merge_keys[i] != 0) {
        if (tok->merge_keys[i] == key)
            return; /* keep the best (first) rank */
        i = (i + 1) & tok->merge_mask;
    }
    tok->merge_keys[i] = key;
    tok->merge_rank[i] = rank;
    tok->merge_result[i] = result;
}

/* SPM chunking: two adjacent characters can end up in one token only if some token holds them
 * next to each other. Between characters that no token holds together, the bigram merging on
 * either side is independent, so the text is cut there and each chunk merged on its own (same
 * result, much smaller heaps). */
static uint64_t pair_key(const char *a, size_t na, const char *b, size_t nb)
{
    /* each character left-aligned in 32 bits; a collision only makes a cut less likely */
    uint64_t ka = 0, kb = 0;
    for (size_t i = 0; i < 4; i++) {
        ka = (ka << 8) | (i < na ? (unsigned char)a[i] : 0);
        kb = (kb << 8) | (i < nb ? (unsigned char)b[i] : 0);
    }
    return ((ka << 32) | kb) + 1;
}

static bool pair_insert_or_has(uint64_t *keys, size_t mask, uint64_t key, bool insert)
{
    size_t i = hash_u64(key) & mask;
    while (keys[i] != 0) {
        if (keys[i] == key)
            return true;
        i = (i + 1) & mask;
    }
    if (insert)
        keys[i] = key;
    return false;
}

static void init_spm_pairs(struct tokenizer *tok)
{
    size_t n_pairs = 0;
    for (int32_t id = 0; id < tok->n_vocab; id++)
        n_pairs += tok->text_len[id];
    size_t cap = table_size_for(n_pairs);
    tok->pair_mask = cap - 1;
    tok->pair_keys = xcalloc(cap, sizeof(uint64_t));
    for (int32_t id = 0; id < tok->n_vocab; id++) {
        const char *s = tok->arena + tok->text_off[id];
        size_t n = tok->text_len[id];
        size_t prev = 0, prev_len = 0;
        for (size_t off = 0; off < n;) {
            size_t l = CND_MIN(unicode_utf8_len((unsigned char)s[off]), n - off);
            if (prev_len)
                pair_insert_or_has(tok->pair_keys, tok->pair_mask,
                                   pair_key(s + prev, prev_len, s + off, l), true);
            prev = off, prev_len = l;
            off += l;
        }
    }
}

/* ---------------------------------------------------------------- loading */

static const char *tok_text(const struct tokenizer *tok, int32_t id)
{
    return tok->arena + tok->text_off[id];
}

static bool pre_from_name(const char *name, enum tok_pre *pre, bool *ignore_merges,
                          bool *add_bos_default)
{
    static const struct {
        const char *name;
        enum tok_pre pre;
    } names[] = {
        {"default", TOK_PRE_DEFAULT},
        {"llama3", TOK_PRE_LLAMA3},
        {"llama-v3", TOK_PRE_LLAMA3},
        {"llama-bpe", TOK_PRE_LLAMA3},
        {"falcon3", TOK_PRE_LLAMA3},
        {"dbrx", TOK_PRE_LLAMA3},
        {"smaug-bpe", TOK_PRE_LLAMA3},
        {"qwen2", TOK_PRE_QWEN2},
        {"deepseek-r1-qwen", TOK_PRE_QWEN2},
        {"gpt-2", TOK_PRE_GPT2},
        {"phi-2", TOK_PRE_GPT2},
        {"mpt", TOK_PRE_GPT2},
        {"olmo", TOK_PRE_GPT2},
        {"jais", TOK_PRE_GPT2},
        {"jina-es", TOK_PRE_GPT2},
        {"jina-de", TOK_PRE_GPT2},
        {"starcoder", TOK_PRE_STARCODER},
        {"refact", TOK_PRE_STARCODER},
        {"command-r", TOK_PRE_STARCODER},
        {"smollm", TOK_PRE_STARCODER},
        {"codeshell", TOK_PRE_STARCODER},
        {"exaone", TOK_PRE_STARCODER},
        {"minerva-7b", TOK_PRE_STARCODER},
        {"falcon", TOK_PRE_FALCON},
        {"deepseek-llm", TOK_PRE_DEEPSEEK_LLM},
        {"deepseek-coder", TOK_PRE_DEEPSEEK_CODER},
    };
    *ignore_merges = false;
    *add_bos_default = false;
    if (!name) {
        *pre = TOK_PRE_DEFAULT;
        return true;
    }
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        if (strcmp(name, names[i].name) == 0) {
            *pre = names[i].pre;
            if (*pre == TOK_PRE_LLAMA3 && strcmp(name, "dbrx") != 0 &&
                strcmp(name, "smaug-bpe") != 0) {
                *ignore_merges = true;
                *add_bos_default = true;
            }
            return true;
        }
    }
    return false;
}

static int32_t get_id(const struct gguf_file *g, const char *key, int32_t dflt, int32_t n_vocab)
{
    int64_t v = gguf_get_i64_or(g, key, dflt);
    return (v >= 0 && v < n_vocab) ? (int32_t)v : -1;
}

static void init_bpe_bytes(struct tokenizer *tok)
{
    int next = 256;
    memset(tok->bpe_inv, 0xff, sizeof(tok->bpe_inv));
    for (int b = 0; b < 256; b++) {
        bool self = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
        uint32_t cp = self ? (uint32_t)b : (uint32_t)next++;
        tok->bpe_char_len[b] = (uint8_t)unicode_utf8_encode(cp, tok->bpe_chars[b]);
        tok->bpe_inv[cp] = (int16_t)b;
        tok->byte_ids[b] = vocab_lookup(tok, tok->bpe_chars[b], tok->bpe_char_len[b]);
    }
}

static void init_spm_bytes(struct tokenizer *tok)
{
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof(name), "<0x%02X>", b);
        int32_t id = vocab_lookup(tok, name, 6);
        if (id < 0) {
            char c = (char)b;
            id = vocab_lookup(tok, &c, 1);
        }
        tok->byte_ids[b] = id >= 0 ? id : tok->unk_id;
    }
}

static int load_merges(struct tokenizer *tok, const struct gguf_file *g, char *err)
{
    int64_t ki = gguf_find_key(g, "tokenizer.ggml.merges");
    if (ki < 0) {
        err_set(err, "tokenizer: gpt2 vocabulary without tokenizer.ggml.merges");
        return -CND_EFORMAT;
    }
    if (gguf_kv_type(g, ki) != GGUF_TYPE_ARRAY || gguf_kv_arr_type(g, ki) != GGUF_TYPE_STRING) {
        err_set(err, "tokenizer: tokenizer.ggml.merges is not a string array");
        return -CND_EFORMAT;
    }
    uint64_t n = gguf_kv_arr_n(g, ki);
    size_t cap = table_size_for((size_t)n);
    tok->merge_mask = cap - 1;
    tok->merge_keys = xcalloc(cap, sizeof(uint64_t));
    tok->merge_rank = xmalloc(cap * sizeof(uint32_t));
    tok->merge_result = xmalloc(cap * sizeof(int32_t));
    char *tmp = NULL;
    size_t tmp_cap = 0;
    for (uint64_t j = 0; j < n; j++) {
        struct gguf_str s = gguf_arr_get_str(g, ki, j);
        if (s.len < 3)
            continue;
        const char *sp = memchr(s.ptr + 1, ' ', s.len - 1);
        if (!sp)
            continue;
        size_t nl = (size_t)(sp - s.ptr), nr = s.len - nl - 1;
        int32_t l = vocab_lookup(tok, s.ptr, nl);
        int32_t r = vocab_lookup(tok, sp + 1, nr);
        if (l < 0 || r < 0)
            continue;
        xgrow((void **)&tmp, &tmp_cap, nl + nr, 1);
        memcpy(tmp, s.ptr, nl);
        memcpy(tmp + nl, sp + 1, nr);
        int32_t m = vocab_lookup(tok, tmp, nl + nr);
        if (m < 0)
            continue;
        merge_insert(tok, l, r, (uint32_t)j, m);
    }
    free(tmp);
    return 0;
}

static int cmp_special(const void *a, const void *b, void *ctx)
{
    const struct tokenizer *tok = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (tok->text_len[x] != tok->text_len[y])
        return tok->text_len[x] > tok->text_len[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

static bool is_eog_text(const char *s)
{
    static const char *const names[] = {
        "<|eot_id|>", "<|im_end|>", "<|end|>",     "<end_of_turn>", "<|endoftext|>",
        "<|eom_id|>", "<EOT>",      "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
    };
    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        if (strcmp(s, names[i]) == 0)
            return true;
    return false;
}

static void init_specials(struct tokenizer *tok)
{
    tok->specials = xmalloc((size_t)tok->n_vocab * sizeof(int32_t));
    for (int32_t id = 0; id < tok->n_vocab; id++) {
        unsigned t = tok->attr[id] & 0x7f;
        if ((t == TOKEN_TYPE_CONTROL || t == TOKEN_TYPE_USER_DEFINED || t == TOKEN_TYPE_UNKNOWN) &&
            tok->text_len[id] > 0)
            tok->specials[tok->n_specials++] = id;
    }
    qsort_r(tok->specials, tok->n_specials, sizeof(int32_t), cmp_special, tok);

    /* end of generation */
    if (tok->eot_id < 0)
        for (int32_t id = 0; id < tok->n_vocab && tok->eot_id < 0; id++) {
            const char *s = tok_text(tok, id);
            if (strcmp(s, "<|eot_id|>") == 0 || strcmp(s, "<|im_end|>") == 0 ||
                strcmp(s, "<|end|>") == 0 || strcmp(s, "<end_of_turn>") == 0 ||
                strcmp(s, "<|endoftext|>") == 0 || strcmp(s, "<EOT>") == 0)
                tok->eot_id = id;
        }
    if (tok->eom_id < 0)
        tok->eom_id = tokenizer_find(tok, "<|eom_id|>");
    for (int32_t id = 0; id < tok->n_vocab; id++)
        if (tok->text_len[id] > 2 && tok_text(tok, id)[0] == '<' && is_eog_text(tok_text(tok, id)))
            tok->attr[id] |= TOK_FLAG_EOG;
    int32_t ends[3] = {tok->eos_id, tok->eot_id, tok->eom_id};
    for (int i = 0; i < 3; i++)
        if (ends[i] >= 0)
            tok->attr[ends[i]] |= TOK_FLAG_EOG;
}

/* llama.cpp marks Phi-3's special tokens (but <unk>, <s>, <|endoftext|>) to eat the whitespace
 * that follows them when parsed from text; it goes by the model name. */
static void init_strip(struct tokenizer *tok, const struct gguf_file *g)
{
    char *name = gguf_get_str_dup(g, "general.name");
    bool phi3 = false;
    if (name) {
        for (char *c = name; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c + 32);
        phi3 = strstr(name, "phi-3") || strstr(name, "phi3");
        free(name);
    }
    if (!phi3)
        return;
    tok->strip = xcalloc((size_t)tok->n_vocab, 1);
    for (size_t i = 0; i < tok->n_specials; i++)
        tok->strip[tok->specials[i]] = TOK_RSTRIP;
    int32_t id = tokenizer_find(tok, "</s>");
    if (id >= 0)
        tok->strip[id] = TOK_RSTRIP;
    static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>"};
    for (size_t i = 0; i < ARRAY_SIZE(keep); i++)
        if ((id = tokenizer_find(tok, keep[i])) >= 0)
            tok->strip[id] = 0;
}

struct tokenizer *tokenizer_create(const struct gguf_file *g, char *err)
{
    char *model = gguf_get_str_dup(g, "tokenizer.ggml.model");
    if (!model) {
        err_set(err, "tokenizer: no tokenizer.ggml.model in %s", gguf_path(g));
        return NULL;
    }
    struct tokenizer *tok = xcalloc(1, sizeof(*tok));
    char *pre = NULL;
    bool add_bos_default = true;
    if (strcmp(model, "llama") == 0) {
        tok->kind = TOK_KIND_SPM;
    } else if (strcmp(model, "gpt2") == 0) {
        tok->kind = TOK_KIND_BPE;
        pre = gguf_get_str_dup(g, "tokenizer.ggml.pre");
        if (!pre_from_name(pre, &tok->pre, &tok->ignore_merges, &add_bos_default)) {
            err_set(err, "tokenizer: unsupported tokenizer.ggml.pre \"%s\"", pre);
            goto fail;
        }
    } else {
        err_set(err, "tokenizer: unsupported tokenizer.ggml.model \"%s\"", model);
        goto fail;
    }

    int64_t ti = gguf_find_key(g, "tokenizer.ggml.tokens");
    if (ti < 0 || gguf_kv_type(g, ti) != GGUF_TYPE_ARRAY ||
        gguf_kv_arr_type(g, ti) != GGUF_TYPE_STRING || gguf_kv_arr_n(g, ti) == 0 ||
        gguf_kv_arr_n(g, ti) > INT32_MAX / 2) {
        err_set(err, "tokenizer: missing or malformed tokenizer.ggml.tokens");
        goto fail;
    }
    uint64_t n = gguf_kv_arr_n(g, ti);
    tok->n_vocab = (int32_t)n;
    size_t arena_len = 0;
    for (uint64_t j = 0; j < n; j++)
        arena_len += gguf_arr_get_str(g, ti, j).len + 1;
    if (arena_len > UINT32_MAX) {
        err_set(err, "tokenizer: vocabulary text too large");
        goto fail;
    }
    tok->arena = xmalloc(arena_len);
    tok->text_off = xmalloc(n * sizeof(uint32_t));
    tok->text_len = xmalloc(n * sizeof(uint32_t));
    tok->scores = xcalloc(n, sizeof(float));
    tok->attr = xmalloc(n);
    size_t off = 0;
    for (uint64_t j = 0; j < n; j++) {
        struct gguf_str s = gguf_arr_get_str(g, ti, j);
        memcpy(tok->arena + off, s.ptr, s.len);
        tok->arena[off + s.len] = 0;
        tok->text_off[j] = (uint32_t)off;
        tok->text_len[j] = (uint32_t)s.len;
        off += s.len + 1;
        tok->attr[j] = TOKEN_TYPE_NORMAL;
    }
    int64_t si = gguf_find_key(g, "tokenizer.ggml.scores");
    if (si >= 0 && gguf_kv_type(g, si) == GGUF_TYPE_ARRAY && gguf_kv_arr_n(g, si) == n)
        for (uint64_t j = 0; j < n; j++)
            tok->scores[j] = (float)gguf_arr_get_f64(g, si, j);
    int64_t yi = gguf_find_key(g, "tokenizer.ggml.token_type");
    if (yi >= 0 && gguf_kv_type(g, yi) == GGUF_TYPE_ARRAY && gguf_kv_arr_n(g, yi) == n)
        for (uint64_t j = 0; j < n; j++) {
            int64_t t = gguf_arr_get_i64(g, yi, j);
            tok->attr[j] = (uint8_t)((t >= 0 && t <= TOKEN_TYPE_BYTE) ? t : TOKEN_TYPE_UNDEFINED);
        }

    size_t cap = table_size_for((size_t)n);
    tok->vocab_mask = cap - 1;
    tok->vocab_slots = xmalloc(cap * sizeof(struct vocab_slot));
    memset(tok->vocab_slots, 0xff, cap * sizeof(struct vocab_slot));
    for (int32_t id = 0; id < tok->n_vocab; id++)
        tok->max_token_len = CND_MAX(tok->max_token_len, tok->text_len[id]);
    for (int32_t id = 0; id < tok->n_vocab; id++)
        vocab_insert(tok, id);

    int32_t nv = tok->n_vocab;
    if (tok->kind == TOK_KIND_SPM) {
        tok->bos_id = get_id(g, "tokenizer.ggml.bos_token_id", 1, nv);
        tok->eos_id = get_id(g, "tokenizer.ggml.eos_token_id", 2, nv);
        tok->unk_id = get_id(g, "tokenizer.ggml.unknown_token_id", 0, nv);
        tok->add_space_prefix = gguf_get_bool_or(g, "tokenizer.ggml.add_space_prefix", true);
    } else {
        tok->bos_id = get_id(g, "tokenizer.ggml.bos_token_id", 11, nv);
        tok->eos_id = get_id(g, "tokenizer.ggml.eos_token_id", 11, nv);
        tok->unk_id = get_id(g, "tokenizer.ggml.unknown_token_id", -1, nv);
        tok->add_space_prefix = gguf_get_bool_or(g, "tokenizer.ggml.add_space_prefix", false);
    }
    tok->eot_id = get_id(g, "tokenizer.ggml.eot_token_id", -1, nv);
    tok->eom_id = get_id(g, "tokenizer.ggml.eom_token_id", -1, nv);
    tok->pad_id = get_id(g, "tokenizer.ggml.padding_token_id", -1, nv);
    tok->add_bos = gguf_get_bool_or(g, "tokenizer.ggml.add_bos_token", add_bos_default);
    tok->add_eos = gguf_get_bool_or(g, "tokenizer.ggml.add_eos_token", false);
    if (tok->add_bos && tok->bos_id < 0)
        tok->add_bos = false;
    if (tok->add_eos && tok->eos_id < 0)
        tok->add_eos = false;

    if (tok->kind == TOK_KIND_BPE) {
        init_bpe_bytes(tok);
        if (load_merges(tok, g, err) < 0)
            goto fail;
    } else {
        init_spm_bytes(tok);
        init_spm_pairs(tok);
    }
    init_specials(tok);
    init_strip(tok, g);
    tok->no_cache = getenv("CND_TOKENIZER_NO_CACHE") != NULL;
    free(model);
    free(pre);
    return tok;
fail:
    free(model);
    free(pre);
    tokenizer_destroy(tok);
    return NULL;
}

void tokenizer_destroy(struct tokenizer *tok)
{
    if (!tok)
        return;
    free(tok->arena);
    free(tok->text_off);
    free(tok->text_len);
    free(tok->scores);
    free(tok->attr);
    free(tok->vocab_slots);
    free(tok->merge_keys);
    free(tok->merge_rank);
    free(tok->merge_result);
    free(tok->pair_keys);
    free(tok->strip);
    free(tok->specials);
    free(tok);
}

/* ---------------------------------------------------------------- accessors */

int32_t tokenizer_n_vocab(const struct tokenizer *tok)
{
    return tok->n_vocab;
}

int32_t tokenizer_bos(const struct tokenizer *tok)
{
    return tok->bos_id;
}

int32_t tokenizer_eos(const struct tokenizer *tok)
{
    return tok->eos_id;
}

int32_t tokenizer_eot(const struct tokenizer *tok)
{
    return tok->eot_id;
}

bool tokenizer_add_bos(const struct tokenizer *tok)
{
    return tok->add_bos;
}

bool tokenizer_add_eos(const struct tokenizer *tok)
{
    return tok->add_eos;
}

bool tokenizer_add_space_prefix(const struct tokenizer *tok)
{
    return tok->kind == TOK_KIND_SPM && tok->add_space_prefix;
}

bool tokenizer_is_eog(const struct tokenizer *tok, int32_t id)
{
    return id >= 0 && id < tok->n_vocab && (tok->attr[id] & TOK_FLAG_EOG);
}

enum token_type tokenizer_token_type(const struct tokenizer *tok, int32_t id)
{
    if (id < 0 || id >= tok->n_vocab)
        return TOKEN_TYPE_UNDEFINED;
    return (enum token_type)(tok->attr[id] & 0x7f);
}

const char *tokenizer_token_text(const struct tokenizer *tok, int32_t id)
{
    if (id < 0 || id >= tok->n_vocab)
        return NULL;
    return tok_text(tok, id);
}

int32_t tokenizer_find(const struct tokenizer *tok, const char *text)
{
    return vocab_lookup(tok, text, strlen(text));
}

/* ---------------------------------------------------------------- output ids */

struct id_out {
    int32_t **ids;
    size_t *n, *cap;
};

static inline void out_push(struct id_out *o, int32_t id)
{
    if (*o->n == *o->cap)
        xgrow((void **)o->ids, o->cap, *o->n + 1, sizeof(int32_t));
    (*o->ids)[(*o->n)++] = id;
}

/* ---------------------------------------------------------------- word cache */

/* Per-call memo of word/chunk -> ids. Long texts repeat their words a lot; a cache local to one
 * tokenizer_encode call keeps the tokenizer read-only (thread-safe) and costs nothing until the
 * text has enough words to pay for it. Cleared when half full. */
#define WCACHE_SLOTS     8192
#define WCACHE_MIN_WORDS 64
#define WCACHE_MAX_BYTES 48

struct wcache_entry {
    uint64_t hash; /* 0: empty */
    uint32_t text_off, text_len;
    uint32_t ids_off, n_ids;
};

struct wcache {
    struct wcache_entry *slots;
    size_t n_used, n_seen;
    char *text;
    size_t text_len, text_cap;
    int32_t *ids;
    size_t ids_len, ids_cap;
    bool disabled;
};

static void wcache_deinit(struct wcache *c)
{
    free(c->slots);
    free(c->text);
    free(c->ids);
}

/* Push the cached ids of w and return true, or return false and (when *slot is set) let the
 * caller fill the entry with wcache_put after encoding. */
static bool wcache_get(struct wcache *c, const char *w, size_t n, struct id_out *out,
                       struct wcache_entry **slot, uint64_t *hash)
{
    *slot = NULL;
    if (c->disabled || n > WCACHE_MAX_BYTES || ++c->n_seen < WCACHE_MIN_WORDS)
        return false;
    if (!c->slots || c->n_used * 2 >= WCACHE_SLOTS) {
        if (!c->slots)
            c->slots = xmalloc(WCACHE_SLOTS * sizeof(struct wcache_entry));
        memset(c->slots, 0, WCACHE_SLOTS * sizeof(struct wcache_entry));
        c->n_used = 0, c->text_len = 0, c->ids_len = 0;
    }
    uint64_t h = hash_bytes(w, n) | 1;
    size_t i = h & (WCACHE_SLOTS - 1);
    for (;; i = (i + 1) & (WCACHE_SLOTS - 1)) {
        struct wcache_entry *e = &c->slots[i];
        if (e->hash == 0) {
            *slot = e;
            *hash = h;
            return false;
        }
        if (e->hash == h && e->text_len == n && memcmp(c->text + e->text_off, w, n) == 0) {
            for (uint32_t k = 0; k < e->n_ids; k++)
                out_push(out, c->ids[e->ids_off + k]);
            return true;
        }
    }
}

/* Record that w gave ids[from..*out->n). */
static void wcache_put(struct wcache *c, struct wcache_entry *e, uint64_t hash, const char *w,
                       size_t n, const struct id_out *out, size_t from)
{
    size_t n_ids = *out->n - from;
    xgrow((void **)&c->text, &c->text_cap, c->text_len + n, 1);
    xgrow((void **)&c->ids, &c->ids_cap, c->ids_len + n_ids, sizeof(int32_t));
    memcpy(c->text + c->text_len, w, n);
    if (n_ids) /* a word can give no ids (bytes missing from the vocabulary) */
        memcpy(c->ids + c->ids_len, *out->ids + from, n_ids * sizeof(int32_t));
    e->hash = hash;
    e->text_off = (uint32_t)c->text_len, e->text_len = (uint32_t)n;
    e->ids_off = (uint32_t)c->ids_len, e->n_ids = (uint32_t)n_ids;
    c->text_len += n, c->ids_len += n_ids;
    c->n_used++;
}

/* ---------------------------------------------------------------- SPM */

struct spm_sym {
    int32_t prev, next;
    uint32_t start, n; /* bytes in the escaped text; n = 0 once merged away */
    int32_t id;        /* vocabulary id of the symbol's text, or -1 */
};

struct spm_bigram {
    float score;
    int32_t left, right;
    uint32_t size;
    int32_t id;
};

/* max-heap on score; ties: leftmost first */
static inline bool spm_before(const struct spm_bigram *a, const struct spm_bigram *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

struct spm_heap {
    struct spm_bigram *items;
    size_t n, cap;
};

static void spm_heap_push(struct spm_heap *h, struct spm_bigram b)
{
    xgrow((void **)&h->items, &h->cap, h->n + 1, sizeof(b));
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!spm_before(&b, &h->items[parent]))
            break;
        h->items[i] = h->items[parent];
        i = parent;
    }
    h->items[i] = b;
}

static struct spm_bigram spm_heap_pop(struct spm_heap *h)
{
    struct spm_bigram top = h->items[0];
    struct spm_bigram last = h->items[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && spm_before(&h->items[c + 1], &h->items[c]))
            c++;
        if (!spm_before(&h->items[c], &last))
            break;
        h->items[i] = h->items[c];
        i = c;
    }
    if (h->n)
        h->items[i] = last;
    return top;
}

static void spm_try_bigram(const struct tokenizer *tok, const char *text, struct spm_sym *syms,
                           struct spm_heap *h, int32_t left, int32_t right)
{
    if (left < 0 || right < 0)
        return;
    uint32_t size = syms[left].n + syms[right].n;
    if (size > tok->max_token_len)
        return;
    int32_t id = vocab_lookup(tok, text + syms[left].start, size);
    if (id < 0)
        return;
    struct spm_bigram b = {tok->scores[id], left, right, size, id};
    spm_heap_push(h, b);
}

struct spm_scratch {
    struct wcache cache;
    struct buf text;
    struct spm_sym *syms;
    size_t cap_syms;
    struct spm_heap heap;
};

/* Merge the characters of text[start..end) and append the resulting ids. */
static void spm_encode_chunk(const struct tokenizer *tok, struct spm_scratch *sc, size_t start,
                             size_t end, struct id_out *out)
{
    const char *text = sc->text.data;
    xgrow((void **)&sc->syms, &sc->cap_syms, end - start, sizeof(struct spm_sym));
    struct spm_sym *syms = sc->syms;
    size_t n_syms = 0;
    for (size_t off = start; off < end;) {
        size_t n = CND_MIN(unicode_utf8_len((unsigned char)text[off]), end - off);
        struct spm_sym s = {(int32_t)n_syms - 1, (int32_t)n_syms + 1, (uint32_t)off, (uint32_t)n,
                            vocab_lookup(tok, text + off, n)};
        syms[n_syms++] = s;
        off += n;
    }
    syms[n_syms - 1].next = -1;

    struct spm_heap *h = &sc->heap;
    h->n = 0;
    for (size_t i = 1; i < n_syms; i++)
        spm_try_bigram(tok, text, syms, h, (int32_t)i - 1, (int32_t)i);
    while (h->n) {
        struct spm_bigram b = spm_heap_pop(h);
        struct spm_sym *l = &syms[b.left], *r = &syms[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size || l->next != b.right)
            continue;
        l->n += r->n;
        l->id = b.id;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            syms[r->next].prev = b.left;
        spm_try_bigram(tok, text, syms, h, l->prev, b.left);
        spm_try_bigram(tok, text, syms, h, b.left, l->next);
    }
    for (int32_t i = 0; i >= 0; i = syms[i].next) {
        const struct spm_sym *s = &syms[i];
        if (s->id >= 0) {
            out_push(out, s->id);
            continue;
        }
        for (uint32_t j = 0; j < s->n; j++) {
            int32_t bid = tok->byte_ids[(unsigned char)text[s->start + j]];
            if (bid >= 0)
                out_push(out, bid);
        }
    }
}

static void spm_encode_chunk_cached(const struct tokenizer *tok, struct spm_scratch *sc,
                                    size_t start, size_t end, struct id_out *out)
{
    struct wcache_entry *slot;
    uint64_t hash;
    const char *w = sc->text.data + start;
    if (wcache_get(&sc->cache, w, end - start, out, &slot, &hash))
        return;
    size_t from = *out->n;
    spm_encode_chunk(tok, sc, start, end, out);
    if (slot)
        wcache_put(&sc->cache, slot, hash, w, end - start, out, from);
}

static void spm_encode(const struct tokenizer *tok, struct spm_scratch *sc, const char *raw,
                       size_t len, bool prefix, struct id_out *out)
{
    /* escape: optional leading "▁", every ' ' -> "▁" */
    struct buf *text = &sc->text;
    buf_reset(text);
    if (prefix)
        buf_append(text, "\xe2\x96\x81", 3);
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        if (raw[i] == ' ') {
            buf_append(text, raw + run, i - run);
            buf_append(text, "\xe2\x96\x81", 3);
            run = i + 1;
        }
    }
    buf_append(text, raw + run, len - run);
    if (text->len == 0)
        return;

    const char *t = text->data;
    size_t chunk = 0, prev = 0,
           prev_len = CND_MIN(unicode_utf8_len((unsigned char)t[0]), text->len);
    for (size_t off = prev_len; off < text->len;) {
        size_t l = CND_MIN(unicode_utf8_len((unsigned char)t[off]), text->len - off);
        if (!pair_insert_or_has(tok->pair_keys, tok->pair_mask,
                                pair_key(t + prev, prev_len, t + off, l), false)) {
            spm_encode_chunk_cached(tok, sc, chunk, off, out);
            chunk = off;
        }
        prev = off, prev_len = l;
        off += l;
    }
    spm_encode_chunk_cached(tok, sc, chunk, text->len, out);
}

static void spm_scratch_deinit(struct spm_scratch *sc)
{
    wcache_deinit(&sc->cache);
    buf_deinit(&sc->text);
    free(sc->syms);
    free(sc->heap.items);
}

/* ---------------------------------------------------------------- BPE */

struct bpe_sym {
    int32_t prev, next;
    int32_t id; /* -2 once merged away */
};

struct bpe_bigram {
    uint32_t rank;
    int32_t left, right;
    int32_t lid, rid, result;
};

static inline bool bpe_before(const struct bpe_bigram *a, const struct bpe_bigram *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

struct bpe_heap {
    struct bpe_bigram *items;
    size_t n, cap;
};

static void bpe_heap_push(struct bpe_heap *h, struct bpe_bigram b)
{
    xgrow((void **)&h->items, &h->cap, h->n + 1, sizeof(b));
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!bpe_before(&b, &h->items[parent]))
            break;
        h->items[i] = h->items[parent];
        i = parent;
    }
    h->items[i] = b;
}

static struct bpe_bigram bpe_heap_pop(struct bpe_heap *h)
{
    struct bpe_bigram top = h->items[0];
    struct bpe_bigram last = h->items[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && bpe_before(&h->items[c + 1], &h->items[c]))
            c++;
        if (!bpe_before(&h->items[c], &last))
            break;
        h->items[i] = h->items[c];
        i = c;
    }
    if (h->n)
        h->items[i] = last;
    return top;
}

struct bpe_scratch {
    struct wcache cache;
    uint32_t *cps;
    size_t cap_cps;
    struct tok_pre_words words;
    char *bytes; /* one word's UTF-8 */
    size_t cap_bytes;
    char *mapped; /* one word in byte-level characters */
    size_t cap_mapped;
    struct bpe_sym *syms;
    size_t cap_syms;
    struct bpe_heap heap;
};

static void bpe_try_bigram(const struct tokenizer *tok, const struct bpe_sym *syms,
                           struct bpe_heap *h, int32_t left, int32_t right)
{
    if (left < 0 || right < 0)
        return;
    int32_t result;
    uint32_t rank = merge_lookup(tok, syms[left].id, syms[right].id, &result);
    if (rank == UINT32_MAX)
        return;
    struct bpe_bigram b = {rank, left, right, syms[left].id, syms[right].id, result};
    bpe_heap_push(h, b);
}

static void bpe_encode_word(const struct tokenizer *tok, struct bpe_scratch *s, const char *w,
                            size_t n, struct id_out *out)
{
    if (n == 1) {
        if (tok->byte_ids[(unsigned char)w[0]] >= 0)
            out_push(out, tok->byte_ids[(unsigned char)w[0]]);
        return;
    }
    if (tok->ignore_merges) {
        xgrow((void **)&s->mapped, &s->cap_mapped, 2 * n, 1);
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            unsigned char b = (unsigned char)w[i];
            memcpy(s->mapped + m, tok->bpe_chars[b], tok->bpe_char_len[b]);
            m += tok->bpe_char_len[b];
        }
        int32_t id = vocab_lookup(tok, s->mapped, m);
        if (id >= 0) {
            out_push(out, id);
            return;
        }
    }
    xgrow((void **)&s->syms, &s->cap_syms, n, sizeof(struct bpe_sym));
    struct bpe_sym *syms = s->syms;
    for (size_t i = 0; i < n; i++) {
        syms[i].prev = (int32_t)i - 1;
        syms[i].next = i + 1 < n ? (int32_t)i + 1 : -1;
        syms[i].id = tok->byte_ids[(unsigned char)w[i]];
    }
    struct bpe_heap *h = &s->heap;
    h->n = 0;
    for (size_t i = 1; i < n; i++)
        bpe_try_bigram(tok, syms, h, (int32_t)i - 1, (int32_t)i);
    while (h->n) {
        struct bpe_bigram b = bpe_heap_pop(h);
        struct bpe_sym *l = &syms[b.left], *r = &syms[b.right];
        if (l->id != b.lid || r->id != b.rid || l->next != b.right)
            continue;
        l->id = b.result;
        l->next = r->next;
        if (r->next >= 0)
            syms[r->next].prev = b.left;
        r->id = -2;
        bpe_try_bigram(tok, syms, h, l->prev, b.left);
        bpe_try_bigram(tok, syms, h, b.left, l->next);
    }
    for (int32_t i = 0; i >= 0; i = syms[i].next)
        if (syms[i].id >= 0)
            out_push(out, syms[i].id);
}

static void bpe_encode(const struct tokenizer *tok, struct bpe_scratch *s, const char *text,
                       size_t len, struct id_out *out)
{
    xgrow((void **)&s->cps, &s->cap_cps, len + 1, sizeof(uint32_t));
    size_t n_cps = 0;
    for (size_t off = 0; off < len;) {
        size_t l;
        s->cps[n_cps++] = unicode_utf8_decode(text + off, len - off, &l);
        off += l;
    }
    tok_pre_split(tok->pre, s->cps, n_cps, &s->words);
    size_t start = 0;
    for (size_t i = 0; i < s->words.n_ends; i++) {
        size_t end = s->words.ends[i];
        xgrow((void **)&s->bytes, &s->cap_bytes, 4 * (end - start), 1);
        size_t nb = 0;
        for (size_t j = start; j < end; j++)
            nb += unicode_utf8_encode(s->cps[j], s->bytes + nb);
        struct wcache_entry *slot;
        uint64_t hash;
        if (!wcache_get(&s->cache, s->bytes, nb, out, &slot, &hash)) {
            size_t from = *out->n;
            bpe_encode_word(tok, s, s->bytes, nb, out);
            if (slot)
                wcache_put(&s->cache, slot, hash, s->bytes, nb, out, from);
        }
        start = end;
    }
}

static void bpe_scratch_deinit(struct bpe_scratch *s)
{
    wcache_deinit(&s->cache);
    free(s->cps);
    tok_pre_words_deinit(&s->words);
    free(s->bytes);
    free(s->mapped);
    free(s->syms);
    free(s->heap.items);
}

/* ---------------------------------------------------------------- special tokens */

struct frag {
    int32_t id; /* -1: raw text */
    size_t off, len;
};

static bool is_c_space(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* Split text into raw fragments and special tokens, longest special first (llama.cpp's
 * tokenizer_st_partition). Control and unknown tokens only when parse_special; user-defined
 * ones always. Returns the fragment count; *frags is malloc'd. */
static size_t partition_specials(const struct tokenizer *tok, const char *text, size_t len,
                                 bool parse_special, struct frag **frags_out)
{
    size_t cap = 16, n = 0;
    struct frag *frags = xmalloc(cap * sizeof(*frags));
    if (len > 0)
        frags[n++] = (struct frag){-1, 0, len};
    struct frag *next = NULL;
    size_t next_cap = 0;
    /* Pre-filter: positions whose byte starts some applicable special token. A special is
     * searched for properly only if it matches at one of them. */
    bool first[256] = {false};
    bool any_first = false;
    for (size_t si = 0; si < tok->n_specials; si++) {
        int32_t id = tok->specials[si];
        if (parse_special || (tok->attr[id] & 0x7f) == TOKEN_TYPE_USER_DEFINED)
            first[(unsigned char)tok_text(tok, id)[0]] = any_first = true;
    }
    size_t *cand = NULL, n_cand = 0, cap_cand = 0;
    for (size_t i = 0; any_first && i < len; i++) {
        if (first[(unsigned char)text[i]]) {
            xgrow((void **)&cand, &cap_cand, n_cand + 1, sizeof(size_t));
            cand[n_cand++] = i;
        }
    }
    for (size_t si = 0; si < tok->n_specials && n > 0 && n_cand > 0; si++) {
        int32_t id = tok->specials[si];
        unsigned t = tok->attr[id] & 0x7f;
        if (!parse_special && t != TOKEN_TYPE_USER_DEFINED)
            continue;
        const char *sp = tok_text(tok, id);
        size_t sl = tok->text_len[id];
        bool any = false;
        for (size_t c = 0; c < n_cand && !any; c++)
            any = cand[c] + sl <= len && memcmp(text + cand[c], sp, sl) == 0;
        if (!any)
            continue;
        size_t n_next = 0;
        for (size_t i = 0; i < n; i++) {
            struct frag f = frags[i];
            if (f.id >= 0) {
                xgrow((void **)&next, &next_cap, n_next + 1, sizeof(*next));
                next[n_next++] = f;
                continue;
            }
            size_t pos = f.off, end = f.off + f.len;
            while (pos < end) {
                const char *hit = end - pos >= sl ? memmem(text + pos, end - pos, sp, sl) : NULL;
                xgrow((void **)&next, &next_cap, n_next + 2, sizeof(*next));
                if (!hit) {
                    next[n_next++] = (struct frag){-1, pos, end - pos};
                    break;
                }
                size_t at = (size_t)(hit - text), left = at;
                unsigned strip = tok->strip ? tok->strip[id] : 0;
                if (strip & TOK_LSTRIP)
                    while (left > pos && is_c_space(text[left - 1]))
                        left--;
                if (left > pos)
                    next[n_next++] = (struct frag){-1, pos, left - pos};
                next[n_next++] = (struct frag){id, at, sl};
                pos = at + sl;
                if (strip & TOK_RSTRIP)
                    while (pos < end && is_c_space(text[pos]))
                        pos++;
            }
        }
        struct frag *t2 = frags;
        frags = next, next = t2;
        size_t c2 = cap;
        cap = next_cap, next_cap = c2;
        n = n_next;
    }
    free(next);
    free(cand);
    *frags_out = frags;
    return n;
}

/* ---------------------------------------------------------------- encode */

int tokenizer_encode(const struct tokenizer *tok, const char *text, size_t len, bool add_special,
                     bool parse_special, int32_t **ids, size_t *n_ids, size_t *cap)
{
    if (!tok || !ids || !n_ids || !cap || (!text && len))
        return -CND_EINVAL;
    struct id_out out = {ids, n_ids, cap};
    struct frag *frags;
    size_t n_frags = partition_specials(tok, text, len, parse_special, &frags);

    if (add_special && tok->add_bos)
        out_push(&out, tok->bos_id);
    if (tok->kind == TOK_KIND_SPM) {
        bool prev_special = true; /* a space prefix goes at the start and after specials */
        struct spm_scratch sc;
        memset(&sc, 0, sizeof(sc));
        sc.cache.disabled = tok->no_cache;
        for (size_t i = 0; i < n_frags; i++) {
            if (frags[i].id >= 0) {
                out_push(&out, frags[i].id);
                prev_special = true;
                continue;
            }
            spm_encode(tok, &sc, text + frags[i].off, frags[i].len,
                       tok->add_space_prefix && prev_special, &out);
            prev_special = false;
        }
        spm_scratch_deinit(&sc);
    } else {
        struct bpe_scratch s;
        memset(&s, 0, sizeof(s));
        s.cache.disabled = tok->no_cache;
        for (size_t i = 0; i < n_frags; i++) {
            if (frags[i].id >= 0)
                out_push(&out, frags[i].id);
            else
                bpe_encode(tok, &s, text + frags[i].off, frags[i].len, &out);
        }
        bpe_scratch_deinit(&s);
    }
    if (add_special && tok->add_eos)
        out_push(&out, tok->eos_id);
    free(frags);
    return 0;
}

/* ---------------------------------------------------------------- decode */

static void append_bpe_text(const struct tokenizer *tok, const char *s, size_t n, struct buf *out)
{
    for (size_t off = 0; off < n;) {
        size_t l;
        uint32_t cp = unicode_utf8_decode(s + off, n - off, &l);
        if (cp < ARRAY_SIZE(tok->bpe_inv) && tok->bpe_inv[cp] >= 0) {
            char b = (char)tok->bpe_inv[cp];
            buf_append(out, &b, 1);
        } else {
            buf_append(out, s + off, l);
        }
        off += l;
    }
}

static void append_spm_text(const char *s, size_t n, struct buf *out)
{
    size_t run = 0;
    for (size_t i = 0; i + 2 < n; i++) {
        if ((unsigned char)s[i] == 0xe2 && (unsigned char)s[i + 1] == 0x96 &&
            (unsigned char)s[i + 2] == 0x81) {
            buf_append(out, s + run, i - run);
            buf_append(out, " ", 1);
            run = i + 3;
            i += 2;
        }
    }
    buf_append(out, s + run, n - run);
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

void tokenizer_token_to_piece(const struct tokenizer *tok, int32_t id, bool special,
                              struct buf *out)
{
    if (id < 0 || id >= tok->n_vocab)
        return;
    unsigned t = tok->attr[id] & 0x7f;
    const char *s = tok_text(tok, id);
    size_t n = tok->text_len[id];
    switch (t) {
    case TOKEN_TYPE_CONTROL:
    case TOKEN_TYPE_UNKNOWN:
        if (special)
            buf_append(out, s, n);
        return;
    case TOKEN_TYPE_USER_DEFINED: buf_append(out, s, n); return;
    case TOKEN_TYPE_NORMAL:
        if (tok->kind == TOK_KIND_SPM)
            append_spm_text(s, n, out);
        else
            append_bpe_text(tok, s, n, out);
        return;
    case TOKEN_TYPE_BYTE:
        if (tok->kind == TOK_KIND_SPM && n == 6 && hex_digit(s[3]) >= 0 && hex_digit(s[4]) >= 0) {
            char b = (char)(hex_digit(s[3]) * 16 + hex_digit(s[4]));
            buf_append(out, &b, 1);
        }
        return;
    default: return;
    }
}

void tokenizer_decode(const struct tokenizer *tok, const int32_t *ids, size_t n, bool special,
                      bool strip_leading_space, struct buf *out)
{
    for (size_t i = 0; i < n; i++) {
        size_t before = out->len;
        tokenizer_token_to_piece(tok, ids[i], special, out);
        if (i == 0 && strip_leading_space && tokenizer_add_space_prefix(tok) && out->len > before &&
            out->data[before] == ' ') {
            memmove(out->data + before, out->data + before + 1, out->len - before - 1);
            out->len--;
            out->data[out->len] = 0;
        }
    }
    if (!out->data)
        buf_append(out, "", 0);
}

/* ---------------------------------------------------------------- streaming */

void detokenizer_init(struct detokenizer *dt, const struct tokenizer *tok, bool special)
{
    dt->tok = tok;
    dt->special = special;
    buf_init(&dt->pending);
}

void detokenizer_deinit(struct detokenizer *dt)
{
    buf_deinit(&dt->pending);
}

/* How many bytes of s[0..n) can go out now: everything except a final sequence that is
 * still incomplete (and could yet be completed). Invalid bytes go out as they are. */
static size_t utf8_complete_prefix(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t need = 0;
        if (c < 0x80)
            need = 1;
        else if ((c & 0xE0) == 0xC0)
            need = 2;
        else if ((c & 0xF0) == 0xE0)
            need = 3;
        else if ((c & 0xF8) == 0xF0)
            need = 4;
        if (need <= 1) { /* ASCII or an invalid lead byte */
            i++;
            continue;
        }
        size_t j = 1;
        while (j < need && i + j < n && ((unsigned char)s[i + j] & 0xC0) == 0x80)
            j++;
        if (j == need || i + j < n) { /* complete, or broken by a non-continuation byte */
            i += j;
            continue;
        }
        return i; /* truncated at the end: wait for more */
    }
    return n;
}

void detokenizer_push(struct detokenizer *dt, int32_t id, struct buf *out)
{
    tokenizer_token_to_piece(dt->tok, id, dt->special, &dt->pending);
    size_t k = utf8_complete_prefix(dt->pending.data ? dt->pending.data : "", dt->pending.len);
    if (k == 0)
        return;
    buf_append(out, dt->pending.data, k);
    memmove(dt->pending.data, dt->pending.data + k, dt->pending.len - k);
    dt->pending.len -= k;
    dt->pending.data[dt->pending.len] = 0;
}

void detokenizer_flush(struct detokenizer *dt, struct buf *out)
{
    if (dt->pending.len)
        buf_append(out, "\xef\xbf\xbd", 3);
    buf_reset(&dt->pending);
}
