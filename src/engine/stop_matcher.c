/* stop_matcher.c: incremental stop strings (OpenAI "stop").
 *
 * The held buffer never contains a complete stop string, because every feed searches the
 * whole of held+delta and stops at the first completed match. So the first match found in the
 * joined text is the one a byte-by-byte feed would have found: the one that ends earliest.
 * Anything not held is emitted, and a suffix is held only when it is a proper prefix of some
 * stop string; it is at most max_len - 1 bytes, so a feed costs O(n_stops * (held + delta)).
 * The emit boundary is then moved back to the start of a UTF-8 character, so a client never
 * sees half a character even if the tokenizer handed us one. */
#include "cinder/stop_matcher.h"
#include "cinder/xalloc.h"

#include <stdlib.h>
#include <string.h>

void stop_matcher_init(struct stop_matcher *m, char *const *stops, int32_t n_stops)
{
    memset(m, 0, sizeof(*m));
    buf_init(&m->held);
    m->matched = -1;
    if (n_stops > 0) {
        m->stops = xcalloc((size_t)n_stops, sizeof(char *));
        m->stop_lens = xcalloc((size_t)n_stops, sizeof(size_t));
    }
    for (int32_t i = 0; i < n_stops; i++) {
        if (!stops[i] || !stops[i][0])
            continue;
        m->stops[m->n_stops] = xstrdup(stops[i]);
        m->stop_lens[m->n_stops] = strlen(stops[i]);
        m->max_len = CND_MAX(m->max_len, m->stop_lens[m->n_stops]);
        m->n_stops++;
    }
}

void stop_matcher_deinit(struct stop_matcher *m)
{
    for (int32_t i = 0; i < m->n_stops; i++)
        free(m->stops[i]);
    free(m->stops);
    free(m->stop_lens);
    buf_deinit(&m->held);
    memset(m, 0, sizeof(*m));
    m->matched = -1;
}

/* Start of the incomplete UTF-8 sequence ending s[0..len), or len if it ends complete. */
static size_t stop_matcher_utf8_cut(const unsigned char *s, size_t len)
{
    size_t i = len;
    int back = 0;
    while (i > 0 && back < 4 && (s[i - 1] & 0xC0) == 0x80)
        i--, back++;
    if (i == 0)
        return len; /* only continuation bytes: garbage, nothing to wait for */
    unsigned char lead = s[i - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (need > 1 && (size_t)back + 1 < need && lead < 0xF8)
        return i - 1;
    return len;
}

/* Length of the longest suffix of s[0..len) that is a proper prefix of a stop string. */
static size_t stop_matcher_partial(const struct stop_matcher *m, const char *s, size_t len)
{
    size_t k = CND_MIN(len, m->max_len ? m->max_len - 1 : 0);
    for (; k > 0; k--)
        for (int32_t i = 0; i < m->n_stops; i++)
            if (m->stop_lens[i] > k && memcmp(s + len - k, m->stops[i], k) == 0)
                return k;
    return 0;
}

size_t stop_matcher_feed(struct stop_matcher *m, const char *text, size_t len, struct buf *out)
{
    if (m->matched >= 0)
        return 0;
    buf_append(&m->held, text, len);
    const char *s = m->held.data;
    size_t n = m->held.len;
    if (n == 0)
        return 0;

    /* the match that ends first; on equal ends the longer (earlier-starting) one */
    size_t best_end = SIZE_MAX, best_start = 0;
    for (int32_t i = 0; i < m->n_stops; i++) {
        const char *p = memmem(s, n, m->stops[i], m->stop_lens[i]);
        if (!p)
            continue;
        size_t start = (size_t)(p - s), end = start + m->stop_lens[i];
        if (end < best_end || (end == best_end && start < best_start)) {
            best_end = end;
            best_start = start;
            m->matched = i;
        }
    }
    if (m->matched >= 0) {
        buf_append(out, s, best_start);
        buf_reset(&m->held);
        return best_start;
    }

    size_t emit = n - stop_matcher_partial(m, s, n);
    emit = stop_matcher_utf8_cut((const unsigned char *)s, emit);
    if (emit == 0)
        return 0;
    buf_append(out, s, emit);
    memmove(m->held.data, s + emit, n - emit);
    m->held.len = n - emit;
    m->held.data[m->held.len] = 0;
    return emit;
}

int32_t stop_matcher_matched(const struct stop_matcher *m)
{
    return m->matched;
}

size_t stop_matcher_held(const struct stop_matcher *m)
{
    return m->held.len;
}

size_t stop_matcher_flush(struct stop_matcher *m, struct buf *out)
{
    if (m->matched >= 0)
        return 0;
    size_t n = m->held.len;
    buf_append(out, m->held.data, n);
    buf_reset(&m->held);
    return n;
}
