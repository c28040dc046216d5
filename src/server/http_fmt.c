/* http_fmt.c: the pure parts of the HTTP front end: route table, request ids, the max_tokens
 * and context check, logprob views, and the order of a response's chunks. Nothing here touches
 * a socket or the engine, so tests/test_http_fmt.c checks it without a server.
 *
 * Stream shapes (OpenAI's): a chat stream opens with a chunk whose delta carries the role,
 * then content deltas, then one chunk with an empty delta and finish_reason, then (with
 * stream_options.include_usage) a chunk with choices [] and usage, then data: [DONE]. While
 * include_usage is set every other chunk carries "usage": null. Completions streams are the
 * same without the role chunk. */
#include "http_internal.h"

#include "cinder/sse.h"
#include "cinder/tokenizer.h"
#include "cinder/xalloc.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- routes ---- */

enum http_route http_route_match(const char *url)
{
    static const struct {
        const char *path;
        enum http_route route;
    } fixed[] = {
        {"/v1/chat/completions", HTTP_ROUTE_CHAT},
        {"/v1/completions", HTTP_ROUTE_COMPLETIONS},
        {"/v1/models", HTTP_ROUTE_MODELS},
        {"/tokenize", HTTP_ROUTE_TOKENIZE},
        {"/detokenize", HTTP_ROUTE_DETOKENIZE},
        {"/health", HTTP_ROUTE_HEALTH},
        {"/ready", HTTP_ROUTE_READY},
        {"/metrics", HTTP_ROUTE_METRICS},
    };
    if (!url)
        return HTTP_ROUTE_NONE;
    for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
        if (strcmp(url, fixed[i].path) == 0)
            return fixed[i].route;
    /* a model id may itself hold slashes ("org/name"): everything after the prefix is the id */
    if (strncmp(url, "/v1/models/", 11) == 0 && url[11])
        return HTTP_ROUTE_MODEL;
    return HTTP_ROUTE_NONE;
}

const char *http_route_method(enum http_route r)
{
    switch (r) {
    case HTTP_ROUTE_CHAT:
    case HTTP_ROUTE_COMPLETIONS:
    case HTTP_ROUTE_TOKENIZE:
    case HTTP_ROUTE_DETOKENIZE: return "POST";
    case HTTP_ROUTE_MODELS:
    case HTTP_ROUTE_MODEL:
    case HTTP_ROUTE_HEALTH:
    case HTTP_ROUTE_READY:
    case HTTP_ROUTE_METRICS: return "GET";
    case HTTP_ROUTE_NONE: break;
    }
    return NULL;
}

const char *http_route_label(enum http_route r)
{
    switch (r) {
    case HTTP_ROUTE_CHAT: return "/v1/chat/completions";
    case HTTP_ROUTE_COMPLETIONS: return "/v1/completions";
    case HTTP_ROUTE_MODELS: return "/v1/models";
    case HTTP_ROUTE_MODEL: return "/v1/models/{id}";
    case HTTP_ROUTE_TOKENIZE: return "/tokenize";
    case HTTP_ROUTE_DETOKENIZE: return "/detokenize";
    case HTTP_ROUTE_HEALTH: return "/health";
    case HTTP_ROUTE_READY: return "/ready";
    case HTTP_ROUTE_METRICS: return "/metrics";
    case HTTP_ROUTE_NONE: break;
    }
    return "other";
}

/* ---- request ids ---- */

bool http_request_id_valid(const char *s)
{
    if (!s || !*s)
        return false;
    size_t n = 0;
    for (; s[n]; n++)
        if ((unsigned char)s[n] <= 0x20 || (unsigned char)s[n] >= 0x7f)
            return false;
    return n < HTTP_REQUEST_ID_MAX;
}

void http_request_id_make(char *dst)
{
    unsigned char raw[16];
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        /* not a secret: a weaker source is fine if OpenSSL's fails */
        for (size_t i = 0; i < sizeof(raw); i++)
            raw[i] = (unsigned char)rand();
    }
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(dst + 2 * i, 3, "%02x", raw[i]);
}

/* ---- limits ---- */

int http_resolve_max_tokens(int32_t n_prompt, int32_t requested, bool given, int32_t n_ctx,
                            int32_t cap, int32_t *out, struct openai_error *e)
{
    if (n_prompt >= n_ctx) {
        openai_error_set(e, 400, "messages",
                         "This model's maximum context length is %d tokens. However, your "
                         "prompt has %d tokens, which leaves no room for output.",
                         n_ctx, n_prompt);
        snprintf(e->code, sizeof(e->code), "context_length_exceeded");
        return CND_ERANGE;
    }
    int32_t room = n_ctx - n_prompt;
    if (given && requested > room) {
        openai_error_set(e, 400, "max_tokens",
                         "This model's maximum context length is %d tokens. However, you "
                         "requested %lld tokens (%d in the prompt, %d for the completion). "
                         "Please reduce the prompt or max_tokens.",
                         n_ctx, (long long)n_prompt + requested, n_prompt, requested);
        snprintf(e->code, sizeof(e->code), "context_length_exceeded");
        return CND_ERANGE;
    }
    int32_t mt = requested < 0 ? room : CND_MIN(requested, room);
    if (cap > 0 && mt > cap)
        mt = cap;
    *out = mt;
    return 0;
}

/* ---- logprobs ---- */

void http_logprobs_init(struct http_logprobs *l)
{
    memset(l, 0, sizeof(*l));
    buf_init(&l->text);
}

void http_logprobs_deinit(struct http_logprobs *l)
{
    free(l->lp);
    free(l->top);
    buf_deinit(&l->text);
    memset(l, 0, sizeof(*l));
}

void http_logprobs_build(struct http_logprobs *l, const struct tokenizer *tok,
                         const struct request_logprob *in, int32_t n, int32_t *text_offset)
{
    free(l->lp);
    free(l->top);
    l->lp = NULL;
    l->top = NULL;
    l->n = 0;
    buf_reset(&l->text);
    if (n <= 0)
        return;
    int32_t n_top = 0;
    for (int32_t i = 0; i < n; i++)
        n_top += CND_MIN(in[i].n_top, (int32_t)ARRAY_SIZE(in[i].top));
    l->lp = xcalloc((size_t)n, sizeof(*l->lp));
    l->top = n_top ? xcalloc((size_t)n_top, sizeof(*l->top)) : NULL;
    /* pieces are appended first and pointed at afterwards: the buffer moves as it grows, so
     * the views hold offsets (smuggled in the pointer fields) until then */
    size_t *off = xcalloc((size_t)(n + n_top), sizeof(size_t));
    int32_t k = 0;
    for (int32_t i = 0; i < n; i++) {
        size_t start = l->text.len;
        tokenizer_token_to_piece(tok, in[i].token, true, &l->text);
        off[i] = start;
        l->lp[i].len = l->text.len - start;
        l->lp[i].logprob = in[i].logprob;
        l->lp[i].text_offset = text_offset ? *text_offset : 0;
        if (text_offset)
            *text_offset += (int32_t)l->lp[i].len;
        int32_t nt = CND_MIN(in[i].n_top, (int32_t)ARRAY_SIZE(in[i].top));
        l->lp[i].n_top = nt;
        for (int32_t j = 0; j < nt; j++, k++) {
            size_t s = l->text.len;
            tokenizer_token_to_piece(tok, in[i].top[j].token, true, &l->text);
            off[n + k] = s;
            l->top[k].len = l->text.len - s;
            l->top[k].logprob = in[i].top[j].logprob;
        }
    }
    static const char empty[] = "";
    const char *base = l->text.data ? l->text.data : empty;
    k = 0;
    for (int32_t i = 0; i < n; i++) {
        l->lp[i].token = base + off[i];
        l->lp[i].top = l->lp[i].n_top ? &l->top[k] : NULL;
        for (int32_t j = 0; j < l->lp[i].n_top; j++, k++)
            l->top[k].token = base + off[n + k];
    }
    l->n = n;
    free(off);
}

/* ---- chunks ---- */

static void http_fmt_chunk(struct http_fmt *f, const struct openai_choice *c,
                           const struct openai_usage *u, struct buf *out)
{
    struct buf json;
    buf_init(&json);
    if (f->kind == OPENAI_KIND_CHAT)
        openai_chat_chunk_json(&json, &f->meta, c, u, f->include_usage);
    else
        openai_completion_chunk_json(&json, &f->meta, c, u, f->include_usage);
    sse_data(out, json.data ? json.data : "", json.len);
    buf_deinit(&json);
}

void http_fmt_stream_start(struct http_fmt *f, struct buf *out)
{
    if (f->started)
        return;
    f->started = true;
    if (f->kind != OPENAI_KIND_CHAT)
        return;
    int32_t n = f->n_choices > 1 ? f->n_choices : 1;
    for (int32_t i = 0; i < n; i++) {
        struct openai_choice c = {.index = i, .text = "", .len = 0, .first = true};
        http_fmt_chunk(f, &c, NULL, out);
    }
}

static void http_fmt_set_logprobs(struct openai_choice *c, bool want,
                                  const struct http_logprobs *lps)
{
    c->has_logprobs = want && lps;
    if (c->has_logprobs) {
        c->logprobs = lps->lp;
        c->n_logprobs = lps->n;
    }
}

void http_fmt_stream_delta(struct http_fmt *f, const char *text, size_t len,
                           const struct http_logprobs *lps, struct buf *out)
{
    http_fmt_stream_delta_i(f, 0, text, len, lps, out);
}

void http_fmt_stream_delta_i(struct http_fmt *f, int32_t index, const char *text, size_t len,
                             const struct http_logprobs *lps, struct buf *out)
{
    if (len == 0 && (!lps || lps->n == 0))
        return;
    http_fmt_stream_start(f, out);
    struct openai_choice c = {.index = index, .text = text, .len = len};
    http_fmt_set_logprobs(&c, f->logprobs, lps);
    http_fmt_chunk(f, &c, NULL, out);
}

void http_fmt_stream_finish(struct http_fmt *f, const char *finish_reason,
                            const struct openai_usage *u, struct buf *out)
{
    http_fmt_stream_finish_choice(f, 0, finish_reason, out);
    http_fmt_stream_end(f, u, out);
}

void http_fmt_stream_finish_choice(struct http_fmt *f, int32_t index, const char *finish_reason,
                                   struct buf *out)
{
    http_fmt_stream_start(f, out);
    struct openai_choice c = {.index = index, .text = "", .len = 0, .finish_reason = finish_reason};
    http_fmt_chunk(f, &c, NULL, out);
}

void http_fmt_stream_end(struct http_fmt *f, const struct openai_usage *u, struct buf *out)
{
    http_fmt_stream_start(f, out);
    if (f->include_usage && u) {
        struct buf json;
        buf_init(&json);
        if (f->kind == OPENAI_KIND_CHAT)
            openai_chat_chunk_json(&json, &f->meta, NULL, u, false);
        else
            openai_completion_chunk_json(&json, &f->meta, NULL, u, false);
        sse_data(out, json.data ? json.data : "", json.len);
        buf_deinit(&json);
    }
    sse_done(out);
}

void http_fmt_stream_error(struct http_fmt *f, const struct openai_error *e, struct buf *out)
{
    CND_UNUSED(f);
    sse_error(out, e);
}

void http_fmt_response(struct http_fmt *f, const char *text, size_t len,
                       const struct http_logprobs *lps, const char *finish_reason,
                       const struct openai_usage *u, struct buf *out)
{
    struct openai_choice c = {.text = text, .len = len, .finish_reason = finish_reason};
    http_fmt_set_logprobs(&c, f->logprobs, lps);
    if (f->logprobs && !lps)
        c.has_logprobs = true; /* an empty logprobs object, not null */
    if (f->kind == OPENAI_KIND_CHAT)
        openai_chat_completion_json(out, &f->meta, &c, u);
    else
        openai_completion_json(out, &f->meta, &c, u);
}

void http_fmt_response_n(struct http_fmt *f, struct openai_choice *cs,
                         const struct http_logprobs *lps, int32_t n, const struct openai_usage *u,
                         struct buf *out)
{
    for (int32_t i = 0; i < n; i++) {
        http_fmt_set_logprobs(&cs[i], f->logprobs, lps ? &lps[i] : NULL);
        if (f->logprobs && !lps)
            cs[i].has_logprobs = true;
    }
    if (f->kind == OPENAI_KIND_CHAT)
        openai_chat_completion_json_n(out, &f->meta, cs, n, u);
    else
        openai_completion_json_n(out, &f->meta, cs, n, u);
}
