/* tokenizer_pre.c: pre-tokenizers for byte-level BPE. Each tokenizer.ggml.pre type is a list of
 * "regexes" applied in turn (as llama.cpp does): every stage splits each current fragment into
 * its matches and the unmatched gaps between them. There is no regex engine here: every pattern
 * is a hand-written matcher over codepoints with category flags from unicode.h, following the
 * leftmost, first-alternative-wins semantics of the original patterns. */
#include "tokenizer_pre.h"

#include "cinder/unicode.h"
#include "cinder/xalloc.h"

#include <stdlib.h>

/* Length of a match starting at p inside [p, end), or 0 for none. */
typedef size_t (*pre_match_fn)(const uint32_t *cp, const uint8_t *fl, size_t p, size_t end);

#define IS_L(i)  (fl[i] & UNICODE_LETTER)
#define IS_N(i)  (fl[i] & UNICODE_NUMBER)
#define IS_P(i)  (fl[i] & UNICODE_PUNCT)
#define IS_WS(i) (fl[i] & UNICODE_WHITESPACE)
#define IS_NL(c) ((c) == '\r' || (c) == '\n')
/* [^\s\p{L}\p{N}] */
#define IS_OTHER(i) (!(fl[i] & (UNICODE_WHITESPACE | UNICODE_LETTER | UNICODE_NUMBER)))

static uint32_t ascii_lower(uint32_t c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

/* 's|'t|'re|'ve|'m|'ll|'d, optionally case-insensitive. */
static size_t match_contraction(const uint32_t *cp, size_t p, size_t end, bool icase)
{
    if (cp[p] != '\'' || p + 1 >= end)
        return 0;
    uint32_t a = icase ? ascii_lower(cp[p + 1]) : cp[p + 1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd')
        return 2;
    if (p + 2 < end) {
        uint32_t b = icase ? ascii_lower(cp[p + 2]) : cp[p + 2];
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
            return 3;
    }
    return 0;
}

/* \s+(?!\S)|\s+ starting at a whitespace p. */
static size_t match_spaces(const uint8_t *fl, size_t p, size_t end)
{
    size_t q = p;
    while (q < end && IS_WS(q))
        q++;
    if (q == end || q - p == 1)
        return q - p;
    return q - p - 1; /* leave the last one to go with the next word */
}

/* GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static size_t match_gpt2(const uint32_t *cp, const uint8_t *fl, size_t p, size_t end)
{
    size_t m = match_contraction(cp, p, end, false);
    if (m)
        return m;
    size_t q = (cp[p] == ' ' && p + 1 < end) ? p + 1 : p;
    if (IS_L(q)) {
        while (q < end && IS_L(q))
            q++;
        return q - p;
    }
    if (IS_N(q)) {
        while (q < end && IS_N(q))
            q++;
        return q - p;
    }
    if (IS_OTHER(q)) {
        while (q < end && IS_OTHER(q))
            q++;
        return q - p;
    }
    if (IS_WS(p))
        return match_spaces(fl, p, end);
    return 0;
}

/* Llama 3 / Qwen2:
 * (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}
 * | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
static size_t match_llama3_n(const uint32_t *cp, const uint8_t *fl, size_t p, size_t end,
                             size_t max_digits)
{
    size_t m = match_contraction(cp, p, end, true);
    if (m)
        return m;
    size_t q;
    if (!IS_NL(cp[p]) && !IS_L(p) && !IS_N(p) && p + 1 < end && IS_L(p + 1)) {
        q = p + 2;
        while (q < end && IS_L(q))
            q++;
        return q - p;
    }
    if (IS_L(p)) {
        q = p + 1;
        while (q < end && IS_L(q))
            q++;
        return q - p;
    }
    if (IS_N(p)) {
        q = p + 1;
        while (q < end && IS_N(q) && q - p < max_digits)
            q++;
        return q - p;
    }
    q = (cp[p] == ' ' && p + 1 < end) ? p + 1 : p;
    if (IS_OTHER(q)) {
        while (q < end && IS_OTHER(q))
            q++;
        while (q < end && IS_NL(cp[q]))
            q++;
        return q - p;
    }
    if (IS_WS(p)) {
        size_t after_nl = 0;
        for (q = p; q < end && IS_WS(q); q++)
            if (IS_NL(cp[q]))
                after_nl = q + 1;
        if (after_nl)
            return after_nl - p;
        return match_spaces(fl, p, end);
    }
    return 0;
}

static size_t match_llama3(const uint32_t *cp, const uint8_t *fl, size_t p, size_t end)
{
    return match_llama3_n(cp, fl, p, end, 3);
}

static size_t match_qwen2(const uint32_t *cp, const uint8_t *fl, size_t p, size_t end)
{
    return match_llama3_n(cp, fl, p, end, 1);
}

/* [\r\n] */
static size_t match_newline(const uint32_t *cp, const uint8_t *fl, size_t p, size_t end)
{
    CND_UNUSED(fl), CND_UNUSED(end);
    return IS_NL(cp[p]) ? 1 : 0;
}

/* \p{N} */
static size_t match_digit1(const uint32_t *cp, const uint8_t *fl, size_t p, size_t end)
{
    CND_UNUSED(cp), CND_UNUSED(end);
    return IS_N(p) ? 1 : 0;
}

/* \p{N}+ */
static size_t match_digits(const uint32_t *cp, const uint8_t *fl, size_t p, size_t end)
{
    CND_UNUSED(cp);
    size_t q = p;
    while (q < end && IS_N(q))
        q++;
    return q - p;
}

/* [0-9][0-9][0-9] */
static size_t match_ascii_digit3(const uint32_t *cp, const uint8_t *fl, size_t p, size_t end)
{
    CND_UNUSED(fl);
    if (end - p < 3)
        return 0;
    for (size_t i = 0; i < 3; i++)
        if (cp[p + i] < '0' || cp[p + i] > '9')
            return 0;
    return 3;
}

static bool is_falcon_punct(uint32_t c, uint8_t f)
{
    return (f & UNICODE_PUNCT) || c == '$' || c == '+' || c == '<' || c == '=' || c == '>' ||
           c == '^' || c == '~' || c == '|' || c == '`';
}

/* [\p{P}\$\+<=>\^~\|`]+ */
static size_t match_falcon_punct(const uint32_t *cp, const uint8_t *fl, size_t p, size_t end)
{
    size_t q = p;
    while (q < end && is_falcon_punct(cp[q], fl[q]))
        q++;
    return q - p;
}

/* [\p{P}\$\+<=>\^~\|]+ (llama.cpp's default: no backtick) */
static size_t match_default_punct(const uint32_t *cp, const uint8_t *fl, size_t p, size_t end)
{
    size_t q = p;
    while (q < end && cp[q] != '`' && is_falcon_punct(cp[q], fl[q]))
        q++;
    return q - p;
}

/* \s?X+ for a category mask X */
static size_t match_opt_space_run(const uint8_t *fl, size_t p, size_t end, unsigned mask)
{
    size_t q = p;
    if (IS_WS(q) && q + 1 < end && (fl[q + 1] & mask))
        q++;
    if (!(fl[q] & mask))
        return 0;
    while (q < end && (fl[q] & mask))
        q++;
    return q - p;
}

static size_t match_space_letters(const uint32_t *cp, const uint8_t *fl, size_t p, size_t end)
{
    CND_UNUSED(cp);
    return match_opt_space_run(fl, p, end, UNICODE_LETTER);
}

static size_t match_space_punct(const uint32_t *cp, const uint8_t *fl, size_t p, size_t end)
{
    CND_UNUSED(cp);
    return match_opt_space_run(fl, p, end, UNICODE_PUNCT);
}

static bool is_cjk_hangul(uint32_t c)
{
    /* [一-龥ࠀ-一가-퟿] */
    return (c >= 0x4E00 && c <= 0x9FA5) || (c >= 0x0800 && c <= 0x4E00) ||
           (c >= 0xAC00 && c <= 0xD7FF);
}

/* [一-龥ࠀ-一가-퟿]+ */
static size_t match_cjk(const uint32_t *cp, const uint8_t *fl, size_t p, size_t end)
{
    CND_UNUSED(fl);
    size_t q = p;
    while (q < end && is_cjk_hangul(cp[q]))
        q++;
    return q - p;
}

/* DeepSeek LLM's "cased letter" class: Latin, Greek, Cyrillic, Armenian, Georgian, Cherokee ...
 * (the ranges of its tokenizer.json split regex). */
static bool is_deepseek_cased(uint32_t c)
{
    static const uint32_t ranges[][2] = {
        {0x41, 0x5A},       {0x61, 0x7A},       {0xB5, 0xB5},       {0xC0, 0xD6},
        {0xD8, 0xF6},       {0xF8, 0x1BA},      {0x1BC, 0x1BF},     {0x1C4, 0x293},
        {0x295, 0x2AF},     {0x370, 0x373},     {0x376, 0x377},     {0x37B, 0x37D},
        {0x37F, 0x37F},     {0x386, 0x386},     {0x388, 0x38A},     {0x38C, 0x38C},
        {0x38E, 0x3A1},     {0x3A3, 0x3F5},     {0x3F7, 0x481},     {0x48A, 0x52F},
        {0x531, 0x556},     {0x10A0, 0x10C5},   {0x13A0, 0x13F5},   {0x13F8, 0x13FD},
        {0x1C90, 0x1CBA},   {0x1CBD, 0x1CBF},   {0x1D00, 0x1D2B},   {0x1D6B, 0x1D77},
        {0x1D79, 0x1D9A},   {0x1E00, 0x1F15},   {0x1F18, 0x1F1D},   {0x1F20, 0x1F45},
        {0x1F48, 0x1F4D},   {0x1F50, 0x1F57},   {0x1F59, 0x1F59},   {0x1F5B, 0x1F5B},
        {0x1F5D, 0x1F5D},   {0x1F5F, 0x1F7D},   {0x1F80, 0x1FB4},   {0x1FB6, 0x1FBC},
        {0x1FBE, 0x1FBE},   {0x1FC2, 0x1FC4},   {0x1FC6, 0x1FCC},   {0x1FD0, 0x1FD3},
        {0x1FD6, 0x1FDB},   {0x1FE0, 0x1FEC},   {0x1FF2, 0x1FF4},   {0x1FF6, 0x1FFC},
        {0x2102, 0x2102},   {0x2107, 0x2107},   {0x210A, 0x2113},   {0x2115, 0x2115},
        {0x2119, 0x211D},   {0x2124, 0x2124},   {0x2126, 0x2126},   {0x2128, 0x2128},
        {0x212A, 0x212D},   {0x212F, 0x2134},   {0x2139, 0x2139},   {0x213C, 0x213F},
        {0x2145, 0x2149},   {0x214E, 0x214E},   {0x2183, 0x2184},   {0x2C00, 0x2C7B},
        {0x2C7E, 0x2CE4},   {0x2CEB, 0x2CEE},   {0x2CF2, 0x2CF3},   {0xA640, 0xA66D},
        {0xA680, 0xA69B},   {0xA722, 0xA76F},   {0xA771, 0xA787},   {0xA78B, 0xA78E},
        {0xAB70, 0xABBF},   {0xFB00, 0xFB06},   {0xFB13, 0xFB17},   {0xFF21, 0xFF3A},
        {0xFF41, 0xFF5A},   {0x10400, 0x1044F}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB},
        {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF}, {0x1E900, 0x1E943},
    };
    for (size_t i = 0; i < ARRAY_SIZE(ranges); i++)
        if (c >= ranges[i][0] && c <= ranges[i][1])
            return true;
    return false;
}

/* \s?[cased letters]+ */
static size_t match_deepseek_letters(const uint32_t *cp, const uint8_t *fl, size_t p, size_t end)
{
    size_t q = p;
    if (IS_WS(q) && q + 1 < end && is_deepseek_cased(cp[q + 1]))
        q++;
    if (!is_deepseek_cased(cp[q]))
        return 0;
    while (q < end && is_deepseek_cased(cp[q]))
        q++;
    return q - p;
}

static bool is_deepseek_punct(uint32_t c)
{
    /* [!-/:-~！-／：-～‘-‟　-。] */
    return (c >= '!' && c <= '/') || (c >= ':' && c <= '~') || (c >= 0xFF01 && c <= 0xFF0F) ||
           (c >= 0xFF1A && c <= 0xFF5E) || (c >= 0x2018 && c <= 0x201F) ||
           (c >= 0x3000 && c <= 0x3002);
}

/* \s?[!-/:-~！-／：-～‘-‟　-。]+ */
static size_t match_deepseek_punct(const uint32_t *cp, const uint8_t *fl, size_t p, size_t end)
{
    size_t q = p;
    if (IS_WS(q) && q + 1 < end && is_deepseek_punct(cp[q + 1]))
        q++;
    if (!is_deepseek_punct(cp[q]))
        return 0;
    while (q < end && is_deepseek_punct(cp[q]))
        q++;
    return q - p;
}

/* \s+$ */
static size_t match_trailing_spaces(const uint32_t *cp, const uint8_t *fl, size_t p, size_t end)
{
    CND_UNUSED(cp);
    size_t q = p;
    while (q < end && IS_WS(q))
        q++;
    return q == end ? q - p : 0;
}

/* Split every fragment in w->ends by fn into w->tmp, then swap the lists. */
static void pre_stage(struct tok_pre_words *w, const uint32_t *cp, pre_match_fn fn)
{
    size_t n_out = 0, start = 0;
    for (size_t i = 0; i < w->n_ends; i++) {
        size_t end = w->ends[i];
        /* worst case every codepoint its own fragment */
        xgrow((void **)&w->tmp, &w->cap_tmp, n_out + (end - start) + 1, sizeof(size_t));
        size_t pos = start, gap = start;
        while (pos < end) {
            size_t m = fn(cp, w->flags, pos, end);
            if (m == 0) {
                pos++;
                continue;
            }
            if (gap < pos)
                w->tmp[n_out++] = pos;
            pos += m;
            w->tmp[n_out++] = pos;
            gap = pos;
        }
        if (gap < end)
            w->tmp[n_out++] = end;
        start = end;
    }
    size_t *t = w->ends;
    size_t tcap = w->cap_ends;
    w->ends = w->tmp, w->cap_ends = w->cap_tmp, w->n_ends = n_out;
    w->tmp = t, w->cap_tmp = tcap;
}

void tok_pre_words_deinit(struct tok_pre_words *w)
{
    free(w->flags);
    free(w->ends);
    free(w->tmp);
}

void tok_pre_split(enum tok_pre pre, const uint32_t *cps, size_t n, struct tok_pre_words *w)
{
    xgrow((void **)&w->flags, &w->cap_flags, n + 1, 1);
    for (size_t i = 0; i < n; i++)
        w->flags[i] = (uint8_t)unicode_flags(cps[i]);
    w->flags[n] = 0;
    w->n_ends = 0;
    if (n == 0)
        return;
    xgrow((void **)&w->ends, &w->cap_ends, 1, sizeof(size_t));
    w->ends[0] = n;
    w->n_ends = 1;

    switch (pre) {
    case TOK_PRE_LLAMA3: pre_stage(w, cps, match_llama3); break;
    case TOK_PRE_QWEN2: pre_stage(w, cps, match_qwen2); break;
    case TOK_PRE_GPT2: pre_stage(w, cps, match_gpt2); break;
    case TOK_PRE_STARCODER:
        pre_stage(w, cps, match_digit1);
        pre_stage(w, cps, match_gpt2);
        break;
    case TOK_PRE_FALCON:
        pre_stage(w, cps, match_falcon_punct);
        pre_stage(w, cps, match_gpt2);
        pre_stage(w, cps, match_ascii_digit3);
        break;
    case TOK_PRE_DEEPSEEK_CODER:
        pre_stage(w, cps, match_newline);
        pre_stage(w, cps, match_space_letters);
        pre_stage(w, cps, match_space_punct);
        pre_stage(w, cps, match_cjk);
        pre_stage(w, cps, match_digit1);
        break;
    case TOK_PRE_DEEPSEEK_LLM:
        pre_stage(w, cps, match_newline);
        pre_stage(w, cps, match_deepseek_letters);
        pre_stage(w, cps, match_deepseek_punct);
        pre_stage(w, cps, match_trailing_spaces);
        pre_stage(w, cps, match_cjk);
        pre_stage(w, cps, match_digits);
        break;
    case TOK_PRE_DEFAULT:
        pre_stage(w, cps, match_default_punct);
        pre_stage(w, cps, match_gpt2);
        pre_stage(w, cps, match_digits);
        pre_stage(w, cps, match_ascii_digit3);
        break;
    }
}
