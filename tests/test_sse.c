/* ctest-labels: unit */
/* test_sse.c: exact bytes of each SSE frame. */
#include "cinder/openai.h"
#include "cinder/sse.h"
#include "test.h"

static void test_frames(void)
{
    struct buf b;
    buf_init(&b);
    sse_data(&b, "{\"a\":1}", 7);
    CHECK_STR(b.data, "data: {\"a\":1}\n\n");
    buf_reset(&b);
    sse_done(&b);
    CHECK_STR(b.data, "data: [DONE]\n\n");
    buf_reset(&b);
    sse_keepalive(&b);
    CHECK_STR(b.data, ": keep-alive\n\n");
    buf_reset(&b);
    sse_data(&b, "", 0);
    CHECK_STR(b.data, "data: \n\n");
    buf_deinit(&b);
}

static void test_multiline(void)
{
    struct buf b;
    buf_init(&b);
    sse_data(&b, "a\nb\r\nc\rd", 8);
    CHECK_STR(b.data, "data: a\ndata: b\ndata: c\ndata: d\n\n");
    buf_deinit(&b);
}

static void test_sequence(void)
{
    struct buf b;
    buf_init(&b);
    sse_data(&b, "1", 1);
    sse_keepalive(&b);
    sse_data(&b, "2", 1);
    sse_done(&b);
    CHECK_STR(b.data, "data: 1\n\n: keep-alive\n\ndata: 2\n\ndata: [DONE]\n\n");
    buf_deinit(&b);
}

static void test_error(void)
{
    struct buf b;
    buf_init(&b);
    struct openai_error e;
    openai_error_set(&e, 500, NULL, "engine failed: %s", "line1\nline2");
    sse_error(&b, &e);
    CHECK_STR(b.data, "data: {\"error\":{\"message\":\"engine failed: line1\\nline2\","
                      "\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n");
    buf_deinit(&b);
}

int main(void)
{
    RUN(test_frames);
    RUN(test_multiline);
    RUN(test_sequence);
    RUN(test_error);
    return test_summary();
}
