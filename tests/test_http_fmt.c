/* ctest-labels: unit */
/* test_http_fmt.c: the HTTP front end's pure parts: routes, request ids, the max_tokens and
 * context check, logprob views, and the exact order and shape of streamed chunks. */
#include "cinder/gguf.h"
#include "cinder/tokenizer.h"
#include "server/http_internal.h"
#include "test.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <unistd.h>

static void test_routes(void)
{
    CHECK_EQ_INT(http_route_match("/v1/chat/completions"), HTTP_ROUTE_CHAT);
    CHECK_EQ_INT(http_route_match("/v1/completions"), HTTP_ROUTE_COMPLETIONS);
    CHECK_EQ_INT(http_route_match("/v1/models"), HTTP_ROUTE_MODELS);
    CHECK_EQ_INT(http_route_match("/v1/models/stories260K"), HTTP_ROUTE_MODEL);
    CHECK_EQ_INT(http_route_match("/v1/models/org/name"), HTTP_ROUTE_MODEL);
    CHECK_EQ_INT(http_route_match("/v1/models/"), HTTP_ROUTE_NONE);
    CHECK_EQ_INT(http_route_match("/tokenize"), HTTP_ROUTE_TOKENIZE);
    CHECK_EQ_INT(http_route_match("/detokenize"), HTTP_ROUTE_DETOKENIZE);
    CHECK_EQ_INT(http_route_match("/health"), HTTP_ROUTE_HEALTH);
    CHECK_EQ_INT(http_route_match("/ready"), HTTP_ROUTE_READY);
    CHECK_EQ_INT(http_route_match("/metrics"), HTTP_ROUTE_METRICS);
    CHECK_EQ_INT(http_route_match("/v1/chat/completions/"), HTTP_ROUTE_NONE);
    CHECK_EQ_INT(http_route_match("/"), HTTP_ROUTE_NONE);
    CHECK_EQ_INT(http_route_match(NULL), HTTP_ROUTE_NONE);
    CHECK_STR(http_route_method(HTTP_ROUTE_CHAT), "POST");
    CHECK_STR(http_route_method(HTTP_ROUTE_TOKENIZE), "POST");
    CHECK_STR(http_route_method(HTTP_ROUTE_MODELS), "GET");
    CHECK_STR(http_route_method(HTTP_ROUTE_METRICS), "GET");
    CHECK(http_route_method(HTTP_ROUTE_NONE) == NULL);
    CHECK_STR(http_route_label(HTTP_ROUTE_MODEL), "/v1/models/{id}");
    CHECK_STR(http_route_label(HTTP_ROUTE_NONE), "other");
}

static void test_request_ids(void)
{
    CHECK(http_request_id_valid("abc-123"));
    CHECK(!http_request_id_valid(""));
    CHECK(!http_request_id_valid(NULL));
    CHECK(!http_request_id_valid("a b"));
    CHECK(!http_request_id_valid("a\r\nX-Evil: 1"));
    CHECK(!http_request_id_valid("caf\xc3\xa9"));
    char longid[200];
    memset(longid, 'x', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = 0;
    CHECK(!http_request_id_valid(longid));
    longid[HTTP_REQUEST_ID_MAX - 1] = 0;
    CHECK(http_request_id_valid(longid));
    char a[HTTP_REQUEST_ID_MAX], b[HTTP_REQUEST_ID_MAX];
    http_request_id_make(a);
    http_request_id_make(b);
    CHECK_EQ_INT(strlen(a), 32);
    CHECK(http_request_id_valid(a));
    CHECK(strcmp(a, b) != 0);
}

static void test_max_tokens(void)
{
    struct openai_error e;
    int32_t mt = 0;
    /* not given: what the context leaves */
    CHECK_EQ_INT(http_resolve_max_tokens(10, -1, false, 100, 0, &mt, &e), 0);
    CHECK_EQ_INT(mt, 90);
    /* a default (completions' 16) is capped silently */
    CHECK_EQ_INT(http_resolve_max_tokens(95, 16, false, 100, 0, &mt, &e), 0);
    CHECK_EQ_INT(mt, 5);
    /* given and fitting */
    CHECK_EQ_INT(http_resolve_max_tokens(10, 90, true, 100, 0, &mt, &e), 0);
    CHECK_EQ_INT(mt, 90);
    /* given and over: 400 context_length_exceeded */
    CHECK(http_resolve_max_tokens(10, 91, true, 100, 0, &mt, &e) != 0);
    CHECK_EQ_INT(e.http_status, 400);
    CHECK_STR(e.code, "context_length_exceeded");
    CHECK_STR(e.param, "max_tokens");
    /* the prompt alone fills the context */
    CHECK(http_resolve_max_tokens(100, -1, false, 100, 0, &mt, &e) != 0);
    CHECK_STR(e.code, "context_length_exceeded");
    /* the server's cap */
    CHECK_EQ_INT(http_resolve_max_tokens(10, 50, true, 100, 20, &mt, &e), 0);
    CHECK_EQ_INT(mt, 20);
    CHECK_EQ_INT(http_resolve_max_tokens(10, -1, false, 100, 20, &mt, &e), 0);
    CHECK_EQ_INT(mt, 20);
}

/* Split an SSE body into its data payloads (at most cap). */
static int sse_split(const char *body, char **out, int cap)
{
    int n = 0;
    const char *p = body;
    while (p && *p && n < cap) {
        const char *end = strstr(p, "\n\n");
        if (!end)
            break;
        if (strncmp(p, "data: ", 6) == 0) {
            size_t len = (size_t)(end - p - 6);
            out[n] = malloc(len + 1);
            memcpy(out[n], p + 6, len);
            out[n][len] = 0;
            n++;
        }
        p = end + 2;
    }
    return n;
}

static void test_chat_stream(void)
{
    struct http_fmt f = {
        .kind = OPENAI_KIND_CHAT,
        .meta = {.id = "chatcmpl-x", .model = "m", .created = 1},
        .include_usage = true,
    };
    struct buf out;
    buf_init(&out);
    http_fmt_stream_start(&f, &out);
    http_fmt_stream_start(&f, &out); /* once only */
    http_fmt_stream_delta(&f, "Hel", 3, NULL, &out);
    http_fmt_stream_delta(&f, "", 0, NULL, &out); /* nothing */
    http_fmt_stream_delta(&f, "lo\n", 3, NULL, &out);
    struct openai_usage u = {.prompt_tokens = 5, .completion_tokens = 2, .cached_tokens = 0};
    http_fmt_stream_finish(&f, "length", &u, &out);
    CHECK(strstr(out.data, "event:") == NULL);
    char *ev[16];
    int n = sse_split(out.data, ev, 16);
    CHECK_EQ_INT(n, 6);
    CHECK_STR(ev[n - 1], "[DONE]");
    int n_finish = 0;
    for (int i = 0; i < n - 1; i++) {
        cJSON *j = cJSON_Parse(ev[i]);
        CHECK(j != NULL);
        if (!j)
            continue;
        CHECK_STR(cJSON_GetObjectItem(j, "object")->valuestring, "chat.completion.chunk");
        cJSON *choices = cJSON_GetObjectItem(j, "choices");
        cJSON *usage = cJSON_GetObjectItem(j, "usage");
        if (i == n - 2) {
            CHECK_EQ_INT(cJSON_GetArraySize(choices), 0);
            CHECK_EQ_INT(cJSON_GetObjectItem(usage, "total_tokens")->valueint, 7);
        } else {
            CHECK_EQ_INT(cJSON_GetArraySize(choices), 1);
            CHECK(cJSON_IsNull(usage));
            cJSON *c0 = cJSON_GetArrayItem(choices, 0);
            cJSON *delta = cJSON_GetObjectItem(c0, "delta");
            cJSON *role = cJSON_GetObjectItem(delta, "role");
            CHECK((i == 0) == (role != NULL));
            cJSON *fr = cJSON_GetObjectItem(c0, "finish_reason");
            if (cJSON_IsString(fr)) {
                n_finish++;
                CHECK_STR(fr->valuestring, "length");
                CHECK_EQ_INT(i, n - 3);
            }
            if (i == 2)
                CHECK_STR(cJSON_GetObjectItem(delta, "content")->valuestring, "lo\n");
        }
        cJSON_Delete(j);
    }
    CHECK_EQ_INT(n_finish, 1);
    for (int i = 0; i < n; i++)
        free(ev[i]);
    buf_deinit(&out);
}

static void test_completion_stream_no_usage(void)
{
    struct http_fmt f = {
        .kind = OPENAI_KIND_COMPLETION,
        .meta = {.id = "cmpl-x", .model = "m", .created = 1},
    };
    struct buf out;
    buf_init(&out);
    http_fmt_stream_start(&f, &out);
    CHECK_EQ_INT(out.len, 0); /* no role chunk for completions */
    http_fmt_stream_delta(&f, "a", 1, NULL, &out);
    struct openai_usage u = {1, 1, 0};
    http_fmt_stream_finish(&f, "stop", &u, &out);
    char *ev[8];
    int n = sse_split(out.data, ev, 8);
    CHECK_EQ_INT(n, 3);
    CHECK(strstr(ev[0], "\"object\":\"text_completion\"") != NULL);
    CHECK(strstr(ev[0], "\"usage\"") == NULL);
    CHECK(strstr(ev[1], "\"finish_reason\":\"stop\"") != NULL);
    CHECK_STR(ev[2], "[DONE]");
    for (int i = 0; i < n; i++)
        free(ev[i]);
    buf_deinit(&out);
}

static void test_error_event(void)
{
    struct http_fmt f = {.kind = OPENAI_KIND_CHAT, .meta = {.id = "c", .model = "m"}};
    struct openai_error e;
    openai_error_set(&e, 503, NULL, "bye");
    struct buf out;
    buf_init(&out);
    http_fmt_stream_error(&f, &e, &out);
    CHECK_STR(out.data, "data: {\"error\":{\"message\":\"bye\",\"type\":"
                        "\"service_unavailable_error\",\"param\":null,\"code\":null}}\n\n");
    buf_deinit(&out);
}

static void test_response_and_logprobs(void)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/models/stories260K.gguf", CND_SHARED_DIR);
    if (access(path, R_OK) != 0) {
        printf("skip  logprobs: %s missing\n", path);
        return;
    }
    char err[256];
    struct gguf_file *g = gguf_open(path, err);
    CHECK(g != NULL);
    if (!g)
        return;
    struct tokenizer *tok = tokenizer_create(g, err);
    gguf_close(g);
    CHECK(tok != NULL);
    if (!tok)
        return;
    int32_t *ids = NULL;
    size_t n_ids = 0, cap = 0;
    CHECK_EQ_INT(tokenizer_encode(tok, "Once upon", 9, false, false, &ids, &n_ids, &cap), 0);
    CHECK(n_ids >= 2);
    struct request_logprob in[2];
    memset(in, 0, sizeof(in));
    for (int i = 0; i < 2; i++) {
        in[i].token = ids[i];
        in[i].logprob = -0.5f * (float)(i + 1);
        in[i].n_top = 2;
        in[i].top[0].token = ids[i];
        in[i].top[0].logprob = in[i].logprob;
        in[i].top[1].token = 2; /* </s> */
        in[i].top[1].logprob = -3.0f;
    }
    struct http_logprobs l;
    http_logprobs_init(&l);
    int32_t off = 0;
    http_logprobs_build(&l, tok, in, 2, &off);
    CHECK_EQ_INT(l.n, 2);
    struct buf p0;
    buf_init(&p0);
    tokenizer_token_to_piece(tok, ids[0], true, &p0);
    CHECK_EQ_INT(l.lp[0].len, p0.len);
    CHECK(memcmp(l.lp[0].token, p0.data, p0.len) == 0);
    CHECK_EQ_INT(l.lp[1].text_offset, (int32_t)p0.len);
    CHECK_EQ_INT(l.lp[1].n_top, 2);
    CHECK(l.lp[1].top[1].len == 4 && memcmp(l.lp[1].top[1].token, "</s>", 4) == 0);
    buf_deinit(&p0);

    struct http_fmt f = {
        .kind = OPENAI_KIND_CHAT,
        .meta = {.id = "chatcmpl-x", .model = "m", .created = 1},
        .logprobs = true,
    };
    struct buf out;
    buf_init(&out);
    struct openai_usage u = {3, 2, 0};
    http_fmt_response(&f, "Once upon", 9, &l, "stop", &u, &out);
    cJSON *j = cJSON_Parse(out.data);
    CHECK(j != NULL);
    if (j) {
        cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
        cJSON *content = cJSON_GetObjectItem(cJSON_GetObjectItem(c0, "logprobs"), "content");
        CHECK_EQ_INT(cJSON_GetArraySize(content), 2);
        cJSON *top = cJSON_GetObjectItem(cJSON_GetArrayItem(content, 1), "top_logprobs");
        CHECK_EQ_INT(cJSON_GetArraySize(top), 2);
        CHECK_STR(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "message") ? j : c0, "finish_reason")
                      ->valuestring,
                  "stop");
        CHECK_EQ_INT(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "usage"), "total_tokens")->valueint,
                     5);
        cJSON_Delete(j);
    }
    /* legacy completions: text_offset and top_logprobs as objects */
    buf_reset(&out);
    f.kind = OPENAI_KIND_COMPLETION;
    http_fmt_response(&f, "Once upon", 9, &l, "length", &u, &out);
    j = cJSON_Parse(out.data);
    CHECK(j != NULL);
    if (j) {
        cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
        cJSON *lp = cJSON_GetObjectItem(c0, "logprobs");
        CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(lp, "text_offset")), 2);
        CHECK_STR(cJSON_GetObjectItem(c0, "finish_reason")->valuestring, "length");
        cJSON_Delete(j);
    }
    /* an empty batch clears the views */
    http_logprobs_build(&l, tok, in, 0, NULL);
    CHECK_EQ_INT(l.n, 0);
    buf_deinit(&out);
    http_logprobs_deinit(&l);
    free(ids);
    tokenizer_destroy(tok);
}

int main(void)
{
    RUN(test_routes);
    RUN(test_request_ids);
    RUN(test_max_tokens);
    RUN(test_chat_stream);
    RUN(test_completion_stream_no_usage);
    RUN(test_error_event);
    RUN(test_response_and_logprobs);
    return test_summary();
}
