/* unicode.c: UTF-8 helpers and the category lookup over the generated range table; owns the
 * ASCII fast path so that pre-tokenizers pay a binary search only for non-ASCII text. */
#include "cinder/unicode.h"

static unsigned unicode_flags_slow(uint32_t cp)
{
    uint32_t lo = 0, hi = unicode_range_n; /* find the last range starting at or before cp */
    while (hi - lo > 1) {
        uint32_t mid = (lo + hi) / 2;
        if ((unicode_ranges[mid] >> 8) <= cp)
            lo = mid;
        else
            hi = mid;
    }
    return unicode_ranges[lo] & 0xff;
}

unsigned unicode_flags(uint32_t cp)
{
    static const uint8_t ascii[128] = {
#define C UNICODE_CONTROL
#define W (UNICODE_CONTROL | UNICODE_WHITESPACE)
#define S (UNICODE_SEPARATOR | UNICODE_WHITESPACE)
#define P UNICODE_PUNCT
#define Y UNICODE_SYMBOL
#define N UNICODE_NUMBER
#define L UNICODE_LETTER
        C, C, C, C, C, C, C, C, C, W, W, W, W, W, C, C, /* 0x00 */
        C, C, C, C, C, C, C, C, C, C, C, C, C, C, C, C, /* 0x10 */
        S, P, P, P, Y, P, P, P, P, P, P, Y, P, P, P, P, /*  !"#$%&'()*+,-./ */
        N, N, N, N, N, N, N, N, N, N, P, P, Y, Y, Y, P, /* 0-9:;<=>? */
        P, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L, /* @A-O */
        L, L, L, L, L, L, L, L, L, L, L, P, P, P, Y, P, /* P-Z[\]^_ */
        Y, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L, /* `a-o */
        L, L, L, L, L, L, L, L, L, L, L, P, Y, P, Y, C, /* p-z{|}~DEL */
#undef C
#undef W
#undef S
#undef P
#undef Y
#undef N
#undef L
    };
    if (cp < 128)
        return ascii[cp];
    if (cp > 0x10FFFF)
        return 0;
    return unicode_flags_slow(cp);
}

size_t unicode_utf8_len(unsigned char lead)
{
    static const uint8_t lens[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lens[lead >> 4];
}

uint32_t unicode_utf8_decode(const char *s, size_t n, size_t *len)
{
    const unsigned char *u = (const unsigned char *)s;
    unsigned char c = u[0];
    *len = 1;
    if (c < 0x80)
        return c;
    size_t need;
    uint32_t cp, min;
    if ((c & 0xE0) == 0xC0) {
        need = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        need = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        need = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return UNICODE_REPLACEMENT;
    }
    if (n < need)
        return UNICODE_REPLACEMENT;
    for (size_t i = 1; i < need; i++) {
        if ((u[i] & 0xC0) != 0x80)
            return UNICODE_REPLACEMENT;
        cp = (cp << 6) | (u[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return UNICODE_REPLACEMENT;
    *len = need;
    return cp;
}

size_t unicode_utf8_encode(uint32_t cp, char *out)
{
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}
