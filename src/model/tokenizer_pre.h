/* tokenizer_pre.h (private to src/model): the hand-written pre-tokenizers that stand in for the
 * split regexes of byte-level BPE vocabularies (tokenizer.ggml.pre). */
#ifndef CINDER_TOKENIZER_PRE_H
#define CINDER_TOKENIZER_PRE_H

#include "cinder/common.h"

enum tok_pre {
    TOK_PRE_DEFAULT,        /* no/unknown pre: llama.cpp's default BPE split */
    TOK_PRE_LLAMA3,         /* llama-bpe: Llama 3 regex, digits in groups of 1-3 */
    TOK_PRE_QWEN2,          /* like Llama 3 but single digits */
    TOK_PRE_GPT2,           /* original GPT-2 regex (gpt-2, mpt, olmo, ...) */
    TOK_PRE_STARCODER,      /* single digits, then GPT-2 (starcoder, refact, ...) */
    TOK_PRE_FALCON,         /* punctuation runs, GPT-2, then digit triples */
    TOK_PRE_DEEPSEEK_CODER, /* newlines, letters, punctuation, CJK, single digits */
    TOK_PRE_DEEPSEEK_LLM,   /* newlines, cased letters, ASCII punct, CJK, digit runs */
};

/* Scratch for one split; reuse across calls (tok_pre_words_deinit frees). */
struct tok_pre_words {
    uint8_t *flags; /* unicode_flags of each codepoint */
    size_t *ends;   /* word i is [ends[i-1], ends[i]) in codepoints (ends[-1] = 0) */
    size_t n_ends;
    size_t cap_flags, cap_ends;
    size_t *tmp; /* second offsets list for multi-stage splits */
    size_t cap_tmp;
};

void tok_pre_words_deinit(struct tok_pre_words *w);
/* Split cps[0..n) into words (stored in w->ends). */
void tok_pre_split(enum tok_pre pre, const uint32_t *cps, size_t n, struct tok_pre_words *w);

#endif
