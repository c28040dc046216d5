/* stop_matcher.h: incremental stop-string matching over streamed text.
 * Feed each text delta as it is decoded; the matcher appends to out only the bytes that can
 * no longer be part of a stop string, holds back a suffix that may begin one (and any
 * incomplete UTF-8 sequence), and reports a match once one completes. On a match the text
 * before the stop string is emitted and the stop string and everything after it are dropped.
 * Matches span token boundaries. Which match wins does not depend on how the text was cut into
 * deltas: the stop string that completes first (ends earliest) wins, the longer on a tie.
 * The caller owns the struct (init/deinit); one request, one thread. */
#ifndef CINDER_STOP_MATCHER_H
#define CINDER_STOP_MATCHER_H

#include "cinder/buf.h"
#include "cinder/common.h"

struct stop_matcher {
    char **stops; /* owned copies */
    size_t *stop_lens;
    int32_t n_stops;
    size_t max_len;
    struct buf held; /* fed but not yet emitted */
    int32_t matched; /* index of the stop that matched, or -1 */
};

/* Copies the strings; empty ones are skipped. n_stops may be 0 (then it only guards UTF-8). */
void stop_matcher_init(struct stop_matcher *m, char *const *stops, int32_t n_stops);
void stop_matcher_deinit(struct stop_matcher *m);

/* Feed one delta; append what is safe to emit to out. Returns the number of bytes appended.
 * After a match, further feeds append nothing. */
size_t stop_matcher_feed(struct stop_matcher *m, const char *text, size_t len, struct buf *out);
/* Index of the matched stop string, or -1. */
int32_t stop_matcher_matched(const struct stop_matcher *m);
/* Bytes held back now. */
size_t stop_matcher_held(const struct stop_matcher *m);
/* The generation ended without a match (EOS, length): emit what is held. Returns bytes
 * appended (0 after a match). */
size_t stop_matcher_flush(struct stop_matcher *m, struct buf *out);

#endif
