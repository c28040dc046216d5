/* unicode.h: the little Unicode the tokenizer needs: UTF-8 decode/encode and per-codepoint
 * category flags (letter, number, punctuation, whitespace ...) from a generated range table
 * (src/model/unicode_data.c, made by tools/gen_unicode.py). Pure functions, thread-safe. */
#ifndef CINDER_UNICODE_H
#define CINDER_UNICODE_H

#include "cinder/common.h"

enum unicode_flag {
    UNICODE_LETTER = 1 << 0,     /* \p{L} */
    UNICODE_NUMBER = 1 << 1,     /* \p{N} */
    UNICODE_PUNCT = 1 << 2,      /* \p{P} */
    UNICODE_SYMBOL = 1 << 3,     /* \p{S} */
    UNICODE_MARK = 1 << 4,       /* \p{M} */
    UNICODE_SEPARATOR = 1 << 5,  /* \p{Z} */
    UNICODE_CONTROL = 1 << 6,    /* Cc Cf Co Cs */
    UNICODE_WHITESPACE = 1 << 7, /* White_Space: what \s matches */
};

#define UNICODE_REPLACEMENT 0xFFFDu

/* Flags (enum unicode_flag bits) of cp; 0 for unassigned and out-of-range codepoints. */
unsigned unicode_flags(uint32_t cp);

/* Decode the UTF-8 sequence at s[0..n) (n >= 1). Sets *len to the bytes used (>= 1). Invalid,
 * overlong, surrogate or truncated sequences give UNICODE_REPLACEMENT with *len = 1. */
uint32_t unicode_utf8_decode(const char *s, size_t n, size_t *len);
/* Encode cp into out (4 bytes room); returns the byte count (1..4). */
size_t unicode_utf8_encode(uint32_t cp, char *out);
/* Length of the sequence a lead byte announces: 1..4, or 1 for a stray continuation byte. */
size_t unicode_utf8_len(unsigned char lead);

/* The generated table (unicode_data.c). */
extern const uint32_t unicode_range_n;
extern const uint32_t unicode_ranges[];

#endif
