/* sse.h: Server-Sent Events framing for streamed completions, appended to a struct buf.
 * OpenAI's stream is `data: <json>\n\n` per chunk and `data: [DONE]\n\n` at the end; a comment
 * line keeps idle connections open and lets a write notice a dead peer. Reentrant. */
#ifndef CINDER_SSE_H
#define CINDER_SSE_H

#include "cinder/buf.h"
#include "cinder/common.h"

struct openai_error;

/* data: <json>\n\n. json must be one line (the openai builders never emit a raw newline). */
void sse_data(struct buf *out, const char *json, size_t len);
/* data: [DONE]\n\n */
void sse_done(struct buf *out);
/* : keep-alive\n\n */
void sse_keepalive(struct buf *out);
/* data: {"error":{...}}\n\n, for a failure after the stream started (status is already 200). */
void sse_error(struct buf *out, const struct openai_error *e);

#endif
