/* buf.h: a growable byte buffer, always NUL-terminated, for JSON, SSE and text output.
 * The caller owns struct buf (init/deinit); buf_take hands the bytes over. */
#ifndef CINDER_BUF_H
#define CINDER_BUF_H

#include "cinder/common.h"

struct buf {
    char *data;
    size_t len;
    size_t cap;
};

void buf_init(struct buf *b);
void buf_deinit(struct buf *b);
void buf_reset(struct buf *b);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_append_str(struct buf *b, const char *s);
void buf_appendf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Return the bytes (caller frees) and leave b empty. */
char *buf_take(struct buf *b, size_t *len);

#endif
