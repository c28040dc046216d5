/* sse.c: Server-Sent Events framing. A payload with a newline would end the event early, so
 * any line break in it is split into further "data:" lines, as the SSE spec defines them to be
 * joined back with "\n" — the openai builders escape newlines, so this is only a safety net. */
#include "cinder/sse.h"
#include "cinder/openai.h"

#include <string.h>

void sse_data(struct buf *out, const char *json, size_t len)
{
    buf_append(out, "data: ", 6);
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (json[i] != '\n' && json[i] != '\r')
            continue;
        buf_append(out, json + start, i - start);
        buf_append(out, "\ndata: ", 7);
        if (json[i] == '\r' && i + 1 < len && json[i + 1] == '\n')
            i++;
        start = i + 1;
    }
    buf_append(out, json + start, len - start);
    buf_append(out, "\n\n", 2);
}

void sse_done(struct buf *out)
{
    buf_append_str(out, "data: [DONE]\n\n");
}

void sse_keepalive(struct buf *out)
{
    buf_append_str(out, ": keep-alive\n\n");
}

void sse_error(struct buf *out, const struct openai_error *e)
{
    struct buf json;
    buf_init(&json);
    openai_error_json(&json, e);
    sse_data(out, json.data, json.len);
    buf_deinit(&json);
}
