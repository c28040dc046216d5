/* http_gen.c: generation and tokenization requests, on the connection's own thread.
 *
 * A generation request goes: parse and validate the body (openai.c) -> check the model name ->
 * prompt tokens (chat: render the chat template, then tokenize; completions: tokenize the
 * prompt, or take its token ids) -> resolve max_tokens against the context -> request_create
 * + engine_submit -> wait for the outbox. Text that comes in over HTTP is tokenized with
 * parse_special, so "<|im_start|>" in a rendered template is that control token; a chat
 * prompt gets no BOS from the tokenizer (the template writes it), a completion prompt does.
 *
 * Waiting: request_outbox_take with a 1 s timeout. A timeout checks for shutdown (cancel, say
 * so, stop) and for a peer that went away (cancel, close), and in a stream sends a keep-alive
 * comment every HTTP_KEEPALIVE_S seconds. Text is coalesced: whatever accumulated since the
 * last take goes out as one chunk. Formatting happens outside the request lock. */
#include "http_internal.h"

#include "cinder/chat_template.h"
#include "cinder/clock.h"
#include "cinder/engine.h"
#include "cinder/log.h"
#include "cinder/metrics.h"
#include "cinder/sse.h"
#include "cinder/status.h"
#include "cinder/tokenizer.h"
#include "cinder/xalloc.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HTTP_WAIT_MS       1000
#define HTTP_KEEPALIVE_S   10
#define HTTP_PEER_CHECK_MS 100
#define HTTP_STREAM_BLOCK  (32u << 10)

/* ---- prompts ---- */

static int http_render_chat(struct http_server *s, const cJSON *messages, bool add_gen,
                            struct buf *out, struct openai_error *e)
{
    const struct tokenizer *tok = s->p.tok;
    int32_t bos = tokenizer_bos(tok), eos = tokenizer_eos(tok);
    struct chat_template_params tp = {
        .add_generation_prompt = add_gen,
        .bos_token = bos >= 0 ? tokenizer_token_text(tok, bos) : "",
        .eos_token = eos >= 0 ? tokenizer_token_text(tok, eos) : "",
    };
    char err[CND_ERR_LEN] = "";
    int rc = s->p.chat_template ? chat_template_render(s->p.chat_template, messages, &tp, out, err)
                                : chat_template_render_fallback(messages, &tp, out, err);
    if (rc != 0) {
        openai_error_set(e, 400, "messages", "%s", err[0] ? err : "the chat template failed");
        return CND_EINVAL;
    }
    return 0;
}

/* Tokenize text as it came over HTTP. Returns 0 or fills e. */
static int http_tokenize_text(struct http_server *s, const char *text, size_t len, bool add_special,
                              int32_t **ids, size_t *n_ids, struct openai_error *e)
{
    size_t cap = 0;
    *ids = NULL;
    *n_ids = 0;
    int rc = tokenizer_encode(s->p.tok, text ? text : "", len, add_special, true, ids, n_ids, &cap);
    if (rc != 0) {
        free(*ids);
        *ids = NULL;
        *n_ids = 0;
        openai_error_set(e, 400, "prompt", "the prompt cannot be tokenized (%s)",
                         cnd_status_str(rc));
        return CND_EINVAL;
    }
    return 0;
}

static int http_check_ids(struct http_server *s, const int32_t *ids, int32_t n, const char *param,
                          struct openai_error *e)
{
    int32_t n_vocab = tokenizer_n_vocab(s->p.tok);
    for (int32_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= n_vocab) {
            openai_error_set(e, 400, param, "token id %d at position %d is out of range [0, %d)",
                             ids[i], i, n_vocab);
            return CND_EINVAL;
        }
    }
    return 0;
}

/* The prompt tokens of a generation request (caller frees *ids). */
static int http_prompt_tokens(struct http_server *s, const struct openai_request *r, int32_t **ids,
                              int32_t *n_ids, struct openai_error *e)
{
    size_t n = 0;
    *ids = NULL;
    if (r->kind == OPENAI_KIND_CHAT) {
        struct buf text;
        buf_init(&text);
        int rc = http_render_chat(s, r->messages, r->add_generation_prompt, &text, e);
        if (rc == 0)
            rc = http_tokenize_text(s, text.data, text.len, false, ids, &n, e);
        buf_deinit(&text);
        if (rc != 0)
            return rc;
    } else if (r->prompt_tokens) {
        if (http_check_ids(s, r->prompt_tokens, r->n_prompt_tokens, "prompt", e) != 0)
            return CND_EINVAL;
        n = (size_t)r->n_prompt_tokens;
        *ids = xmalloc((n ? n : 1) * sizeof(int32_t));
        if (n)
            memcpy(*ids, r->prompt_tokens, n * sizeof(int32_t));
    } else {
        const char *p = r->prompt ? r->prompt : "";
        if (http_tokenize_text(s, p, strlen(p), true, ids, &n, e) != 0)
            return CND_EINVAL;
    }
    if (n == 0) {
        free(*ids);
        *ids = NULL;
        openai_error_set(e, 400, r->kind == OPENAI_KIND_CHAT ? "messages" : "prompt",
                         "the prompt is empty (it gives no tokens)");
        return CND_EINVAL;
    }
    if (n > (size_t)INT32_MAX / 2) {
        free(*ids);
        *ids = NULL;
        openai_error_set(e, 400, "prompt", "the prompt is too long");
        return CND_EINVAL;
    }
    *n_ids = (int32_t)n;
    return 0;
}

/* ---- outcome of a finished request ---- */

/* finish_reason for a finished outbox, or NULL with e filled (error, shutdown abort). */
static const char *http_finish_reason(const struct request_outbox *o, struct openai_error *e)
{
    switch (o->finish_status) {
    case REQ_STATUS_FINISHED_STOP: return "stop";
    case REQ_STATUS_FINISHED_LENGTH: return "length";
    case REQ_STATUS_FINISHED_ABORTED:
        openai_error_set(e, 503, NULL, "the request was aborted: the server is shutting down");
        return NULL;
    case REQ_STATUS_FINISHED_ERROR:
    default:
        openai_error_from_status(e, o->error_status ? o->error_status : CND_EINTERNAL,
                                 o->error[0] ? o->error : "generation failed");
        return NULL;
    }
}

static void http_usage_of(const struct request_outbox *o, const struct request *req,
                          struct openai_usage *u)
{
    u->prompt_tokens = o->n_prompt_tokens > 0 ? o->n_prompt_tokens : req->n_prompt;
    u->completion_tokens = o->n_completion_tokens;
    u->cached_tokens = o->n_cached_tokens;
}

/* Drop the connection's request after cancelling it ourselves, so NOTIFY_COMPLETED does not
 * count it twice. */
static void http_cancel_own(struct http_conn *hc, const char *why)
{
    if (!hc->req)
        return;
    log_info("req %s: %s, cancelling", hc->request_id, why);
    engine_cancel(hc->srv->p.engine, hc->req);
    if (hc->srv->p.metrics)
        metrics_inc_requests_cancelled(hc->srv->p.metrics);
    request_unref(hc->req);
    hc->req = NULL;
}

/* Move logprob entries out of taken into the growing array acc. */
static void http_take_logprobs(struct request_outbox *taken, struct request_logprob **acc,
                               int32_t *n_acc, int32_t *cap_acc)
{
    for (int32_t i = 0; i < taken->n_logprobs; i++) {
        if (*n_acc == *cap_acc) {
            *cap_acc = *cap_acc ? *cap_acc * 2 : 16;
            *acc = xrealloc(*acc, (size_t)*cap_acc * sizeof(**acc));
        }
        (*acc)[(*n_acc)++] = taken->logprobs[i];
    }
    taken->n_logprobs = 0;
}

/* Move n entries of src into the growing array acc. */
static void http_take_lp_arr(struct request_logprob *src, int32_t *n_src,
                             struct request_logprob **acc, int32_t *n_acc, int32_t *cap_acc)
{
    for (int32_t i = 0; i < *n_src; i++) {
        if (*n_acc == *cap_acc) {
            *cap_acc = *cap_acc ? *cap_acc * 2 : 16;
            *acc = xrealloc(*acc, (size_t)*cap_acc * sizeof(**acc));
        }
        (*acc)[(*n_acc)++] = src[i];
    }
    *n_src = 0;
}

/* finish_reason of a finished choice (n > 1): "stop" or "length" (an error or an abort ends
 * the whole request and is reported by http_finish_reason). */
static const char *http_choice_finish_reason(const struct request_choice *c)
{
    return c->finish_status == REQ_STATUS_FINISHED_LENGTH ? "length" : "stop";
}

/* ---- non-streamed ---- */

/* Between two outbox takes of a non-streamed request: on shutdown answer 503, and when the
 * client has left cancel. Tokens keep coming while a client that left waits for nothing, so
 * the socket is looked at on every timeout and at least every HTTP_PEER_CHECK_MS while
 * generating. True (with *rc, the handler's result) when the wait must end. */
static bool http_wait_should_end(struct http_conn *hc, bool got, int64_t *t_peer_check_us, int *rc)
{
    if (atomic_load(&hc->srv->stopping)) {
        struct openai_error e;
        http_cancel_own(hc, "server stopping");
        openai_error_set(&e, 503, NULL, "the server is shutting down");
        *rc = http_send_error(hc, &e);
        return true;
    }
    int64_t now = now_us();
    if (got && now - *t_peer_check_us < HTTP_PEER_CHECK_MS * 1000)
        return false;
    *t_peer_check_us = now;
    if (http_peer_closed(hc)) {
        http_cancel_own(hc, "client went away");
        *rc = MHD_NO;
        return true;
    }
    return false;
}

/* n > 1: every choice's text and logprobs, then one body with choices[0..n). */
static int http_wait_full_n(struct http_conn *hc, struct http_fmt *fmt)
{
    struct http_server *s = hc->srv;
    struct request *req = hc->req;
    int32_t nc = req->out.n_choices; /* set at request_create, read-only since */
    struct request_outbox taken;
    request_outbox_init(&taken);
    struct buf *texts = xcalloc((size_t)nc, sizeof(*texts));
    struct request_logprob **acc = xcalloc((size_t)nc, sizeof(*acc));
    int32_t *n_acc = xcalloc((size_t)nc, sizeof(*n_acc));
    int32_t *cap_acc = xcalloc((size_t)nc, sizeof(*cap_acc));
    for (int32_t i = 0; i < nc; i++)
        buf_init(&texts[i]);
    struct openai_error e;
    int rc;
    int64_t t_peer_check_us = now_us();
    for (;;) {
        bool got = request_outbox_take(req, &taken, HTTP_WAIT_MS);
        for (int32_t i = 0; i < taken.n_choices; i++) {
            struct request_choice *c = &taken.choices[i];
            if (c->text.len) {
                buf_append(&texts[i], c->text.data, c->text.len);
                buf_reset(&c->text);
            }
            http_take_lp_arr(c->logprobs, &c->n_logprobs, &acc[i], &n_acc[i], &cap_acc[i]);
        }
        if (taken.finished)
            break;
        if (http_wait_should_end(hc, got, &t_peer_check_us, &rc))
            goto out;
    }
    if (!http_finish_reason(&taken, &e)) {
        rc = http_send_error(hc, &e);
        goto out;
    }
    struct openai_usage u;
    http_usage_of(&taken, req, &u);
    struct http_logprobs *lps = xcalloc((size_t)nc, sizeof(*lps));
    struct openai_choice *cs = xcalloc((size_t)nc, sizeof(*cs));
    for (int32_t i = 0; i < nc; i++) {
        http_logprobs_init(&lps[i]);
        int32_t offset = 0;
        http_logprobs_build(&lps[i], s->p.tok, acc[i], n_acc[i], &offset);
        cs[i].index = i;
        cs[i].text = texts[i].data;
        cs[i].len = texts[i].len;
        cs[i].finish_reason =
            i < taken.n_choices ? http_choice_finish_reason(&taken.choices[i]) : "stop";
    }
    struct buf body;
    buf_init(&body);
    http_fmt_response_n(fmt, cs, fmt->logprobs ? lps : NULL, nc, &u, &body);
    rc = http_send(hc, 200, "application/json", &body);
    buf_deinit(&body);
    for (int32_t i = 0; i < nc; i++)
        http_logprobs_deinit(&lps[i]);
    free(lps);
    free(cs);
out:
    for (int32_t i = 0; i < nc; i++) {
        buf_deinit(&texts[i]);
        free(acc[i]);
    }
    free(texts);
    free(acc);
    free(n_acc);
    free(cap_acc);
    request_outbox_deinit(&taken);
    return rc;
}

static int http_wait_full(struct http_conn *hc, struct http_fmt *fmt)
{
    struct http_server *s = hc->srv;
    struct request *req = hc->req;
    struct request_outbox taken;
    request_outbox_init(&taken);
    struct buf text;
    buf_init(&text);
    struct request_logprob *acc = NULL;
    int32_t n_acc = 0, cap_acc = 0;
    struct openai_error e;
    int rc;
    int64_t t_peer_check_us = now_us();
    for (;;) {
        bool got = request_outbox_take(req, &taken, HTTP_WAIT_MS);
        if (taken.text.len) {
            buf_append(&text, taken.text.data, taken.text.len);
            buf_reset(&taken.text);
        }
        http_take_logprobs(&taken, &acc, &n_acc, &cap_acc);
        if (taken.finished)
            break;
        if (http_wait_should_end(hc, got, &t_peer_check_us, &rc))
            goto out;
    }
    const char *finish = http_finish_reason(&taken, &e);
    if (!finish) {
        rc = http_send_error(hc, &e);
        goto out;
    }
    struct openai_usage u;
    http_usage_of(&taken, req, &u);
    struct http_logprobs lps;
    http_logprobs_init(&lps);
    int32_t offset = 0;
    http_logprobs_build(&lps, s->p.tok, acc, n_acc, &offset);
    struct buf body;
    buf_init(&body);
    http_fmt_response(fmt, text.data, text.len, fmt->logprobs ? &lps : NULL, finish, &u, &body);
    rc = http_send(hc, 200, "application/json", &body);
    buf_deinit(&body);
    http_logprobs_deinit(&lps);
out:
    free(acc);
    buf_deinit(&text);
    request_outbox_deinit(&taken);
    return rc;
}

/* ---- streamed ---- */

struct http_stream {
    struct http_server *srv;
    struct request *req; /* own reference */
    struct http_fmt fmt;
    char id[64];
    char request_id[HTTP_REQUEST_ID_MAX];
    int fd; /* the client's socket, only peeked at */
    struct buf pending;
    size_t pending_off;
    struct request_outbox taken;
    struct http_logprobs lps;
    int32_t text_offset;
    bool done;               /* all events formatted: end once pending is written */
    int32_t n_choices;       /* n > 1; else 0 */
    int32_t *choice_offsets; /* [n_choices] text_offset of each choice's next token */
    bool *choice_done;       /* [n_choices] its finish chunk went out */
    int64_t t_last_write_us;
    int64_t keepalive_us; /* a comment after this long without a write */
};

static void http_stream_free(void *cls)
{
    struct http_stream *st = cls;
    request_unref(st->req);
    buf_deinit(&st->pending);
    request_outbox_deinit(&st->taken);
    http_logprobs_deinit(&st->lps);
    free(st->choice_offsets);
    free(st->choice_done);
    free(st);
}

static bool http_fd_closed(int fd)
{
    if (fd < 0)
        return false;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* n > 1: each choice's delta and, once it ended, its finish chunk; at the end usage + [DONE]. */
static void http_stream_format_n(struct http_stream *st)
{
    struct request_outbox *t = &st->taken;
    for (int32_t i = 0; i < t->n_choices && i < st->n_choices; i++) {
        struct request_choice *c = &t->choices[i];
        bool has_lp = st->fmt.logprobs && c->n_logprobs > 0;
        if (has_lp)
            http_logprobs_build(&st->lps, st->srv->p.tok, c->logprobs, c->n_logprobs,
                                &st->choice_offsets[i]);
        http_fmt_stream_delta_i(&st->fmt, i, c->text.data, c->text.len, has_lp ? &st->lps : NULL,
                                &st->pending);
        buf_reset(&c->text);
        c->n_logprobs = 0;
        if (c->finished && !st->choice_done[i] &&
            (c->finish_status == REQ_STATUS_FINISHED_STOP ||
             c->finish_status == REQ_STATUS_FINISHED_LENGTH)) {
            http_fmt_stream_finish_choice(&st->fmt, i, http_choice_finish_reason(c), &st->pending);
            st->choice_done[i] = true;
        }
    }
    if (!t->finished)
        return;
    struct openai_error e;
    if (http_finish_reason(t, &e)) {
        struct openai_usage u;
        http_usage_of(t, st->req, &u);
        http_fmt_stream_end(&st->fmt, &u, &st->pending);
    } else {
        http_fmt_stream_error(&st->fmt, &e, &st->pending);
    }
    st->done = true;
}

/* Format what the last take brought. */
static void http_stream_format(struct http_stream *st)
{
    if (st->n_choices > 0) {
        http_stream_format_n(st);
        return;
    }
    struct request_outbox *t = &st->taken;
    bool has_lp = st->fmt.logprobs && t->n_logprobs > 0;
    if (has_lp)
        http_logprobs_build(&st->lps, st->srv->p.tok, t->logprobs, t->n_logprobs, &st->text_offset);
    http_fmt_stream_delta(&st->fmt, t->text.data, t->text.len, has_lp ? &st->lps : NULL,
                          &st->pending);
    buf_reset(&t->text);
    t->n_logprobs = 0;
    if (!t->finished)
        return;
    struct openai_error e;
    const char *finish = http_finish_reason(t, &e);
    if (finish) {
        struct openai_usage u;
        http_usage_of(t, st->req, &u);
        http_fmt_stream_finish(&st->fmt, finish, &u, &st->pending);
    } else {
        http_fmt_stream_error(&st->fmt, &e, &st->pending);
    }
    st->done = true;
}

static ssize_t http_stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
    CND_UNUSED(pos);
    struct http_stream *st = cls;
    while (st->pending_off >= st->pending.len) {
        buf_reset(&st->pending);
        st->pending_off = 0;
        if (st->done)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (!st->fmt.started) {
            http_fmt_stream_start(&st->fmt, &st->pending);
            if (st->pending.len)
                break;
        }
        if (atomic_load(&st->srv->stopping)) {
            /* past the drain timeout: end the stream with an error event */
            log_info("req %s: server stopping, ending the stream", st->request_id);
            engine_cancel(st->srv->p.engine, st->req);
            struct openai_error e;
            openai_error_set(&e, 503, NULL, "the server is shutting down");
            http_fmt_stream_error(&st->fmt, &e, &st->pending);
            st->done = true;
            continue;
        }
        if (request_outbox_take(st->req, &st->taken, HTTP_WAIT_MS)) {
            http_stream_format(st);
            continue;
        }
        if (http_fd_closed(st->fd))
            return MHD_CONTENT_READER_END_WITH_ERROR; /* NOTIFY_COMPLETED cancels */
        if (now_us() - st->t_last_write_us >= st->keepalive_us)
            sse_keepalive(&st->pending);
    }
    size_t n = CND_MIN(max, st->pending.len - st->pending_off);
    memcpy(out, st->pending.data + st->pending_off, n);
    st->pending_off += n;
    st->t_last_write_us = now_us();
    return (ssize_t)n;
}

static int http_start_stream(struct http_conn *hc, const struct http_fmt *fmt)
{
    struct http_server *s = hc->srv;
    struct http_stream *st = xcalloc(1, sizeof(*st));
    st->srv = s;
    request_ref(hc->req);
    st->req = hc->req;
    st->fmt = *fmt;
    snprintf(st->id, sizeof(st->id), "%s", fmt->meta.id);
    st->fmt.meta.id = st->id;
    snprintf(st->request_id, sizeof(st->request_id), "%s", hc->request_id);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(hc->mhd, MHD_CONNECTION_INFO_CONNECTION_FD);
    st->fd = ci ? ci->connect_fd : -1;
    buf_init(&st->pending);
    request_outbox_init(&st->taken);
    http_logprobs_init(&st->lps);
    st->n_choices = hc->req->out.n_choices;
    st->fmt.n_choices = st->n_choices;
    if (st->n_choices > 0) {
        st->choice_offsets = xcalloc((size_t)st->n_choices, sizeof(*st->choice_offsets));
        st->choice_done = xcalloc((size_t)st->n_choices, sizeof(*st->choice_done));
    }
    st->t_last_write_us = now_us();
    /* every HTTP_KEEPALIVE_S, or sooner when the idle timeout is shorter, so a queued stream
     * is not taken for an idle connection */
    st->keepalive_us = (int64_t)HTTP_KEEPALIVE_S * 1000000;
    if (s->p.connection_timeout_s > 0)
        st->keepalive_us = CND_MIN(st->keepalive_us, (int64_t)s->p.connection_timeout_s * 500000);
    struct MHD_Response *r = MHD_create_response_from_callback(
        MHD_SIZE_UNKNOWN, HTTP_STREAM_BLOCK, http_stream_read, st, http_stream_free);
    if (!r) {
        http_stream_free(st);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    http_add_common_headers(hc, r, 200);
    int rc = MHD_queue_response(hc->mhd, 200, r);
    MHD_destroy_response(r);
    if (s->p.metrics)
        metrics_inc_http_request(s->p.metrics, http_route_label(hc->route), 200);
    return rc;
}

/* ---- the handler ---- */

int http_handle_generation(struct http_conn *hc, enum openai_kind kind)
{
    struct http_server *s = hc->srv;
    struct openai_request r;
    struct openai_error e;
    int32_t *ids = NULL;
    int32_t n_ids = 0;
    int rc;
    if (openai_request_parse(hc->body.data ? hc->body.data : "", hc->body.len, kind, &r, &e) != 0)
        return http_send_error(hc, &e);
    if (openai_check_model(r.model, s->served_model_name, &e) != 0 ||
        http_prompt_tokens(s, &r, &ids, &n_ids, &e) != 0)
        goto fail;
    int32_t max_tokens;
    int32_t requested = r.params.max_tokens;
    if (http_resolve_max_tokens(n_ids, requested, r.max_tokens_given, s->p.n_ctx,
                                s->p.max_tokens_cap, &max_tokens, &e) != 0)
        goto fail;
    if (atomic_load(&s->draining)) {
        openai_error_set(&e, 503, NULL, "the server is shutting down");
        goto fail;
    }
    char id[64];
    openai_make_id(id, sizeof(id), kind == OPENAI_KIND_CHAT ? "chatcmpl-" : "cmpl-");
    r.params.max_tokens = max_tokens;
    struct request *req = request_create(id, ids, n_ids, &r.params);
    req->max_tokens = max_tokens;
    req->t_arrival_us = hc->t_start_us;
    char err[CND_ERR_LEN] = "";
    rc = engine_submit(s->p.engine, req, err);
    if (rc != 0) {
        request_unref(req);
        switch (rc) {
        case CND_EOVERLOAD:
            openai_error_set(&e, 503, NULL,
                             "the server is busy: too many requests are queued; "
                             "retry later");
            snprintf(e.code, sizeof(e.code), "server_overloaded");
            break;
        case CND_ECANCELLED: openai_error_set(&e, 503, NULL, "the server is shutting down"); break;
        case CND_ERANGE:
            openai_error_set(&e, 400, "max_tokens", "%s",
                             err[0] ? err : "the request does not fit in the context");
            snprintf(e.code, sizeof(e.code), "context_length_exceeded");
            break;
        default: openai_error_from_status(&e, rc, err[0] ? err : NULL); break;
        }
        goto fail;
    }
    hc->req = req; /* the connection's reference; the engine took its own */
    http_active_begin(hc);
    log_info("req %s: %s %s, %d prompt tokens, max_tokens %d%s%s", hc->request_id, id,
             http_route_label(hc->route), n_ids, max_tokens, r.stream ? ", streamed" : "",
             r.params.n > 1 ? ", n > 1" : "");

    struct http_fmt fmt = {
        .kind = kind,
        .meta = {.id = id, .model = s->served_model_name, .created = (int64_t)time(NULL)},
        .include_usage = r.include_usage,
        .logprobs = r.params.logprobs,
    };
    rc = r.stream                 ? http_start_stream(hc, &fmt)
         : req->out.n_choices > 0 ? http_wait_full_n(hc, &fmt)
                                  : http_wait_full(hc, &fmt);
    free(ids);
    openai_request_deinit(&r);
    return rc;
fail:
    free(ids);
    openai_request_deinit(&r);
    return http_send_error(hc, &e);
}

/* ---- tokenize / detokenize ---- */

int http_handle_tokenize(struct http_conn *hc)
{
    struct http_server *s = hc->srv;
    struct openai_tokenize_request r;
    struct openai_error e;
    if (openai_tokenize_parse(hc->body.data ? hc->body.data : "", hc->body.len, &r, &e) != 0)
        return http_send_error(hc, &e);
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = openai_check_model(r.model, s->served_model_name, &e);
    if (rc == 0) {
        if (r.messages) {
            struct buf text;
            buf_init(&text);
            rc = http_render_chat(s, r.messages, r.add_generation_prompt, &text, &e);
            if (rc == 0)
                rc = http_tokenize_text(s, text.data, text.len, r.add_special_tokens, &ids, &n, &e);
            buf_deinit(&text);
        } else {
            rc = http_tokenize_text(s, r.prompt, strlen(r.prompt ? r.prompt : ""),
                                    r.add_special_tokens, &ids, &n, &e);
        }
    }
    openai_tokenize_deinit(&r);
    if (rc != 0) {
        free(ids);
        return http_send_error(hc, &e);
    }
    struct buf b;
    buf_init(&b);
    openai_tokenize_json(&b, ids, (int32_t)n, s->p.n_ctx);
    free(ids);
    rc = http_send(hc, 200, "application/json", &b);
    buf_deinit(&b);
    return rc;
}

int http_handle_detokenize(struct http_conn *hc)
{
    struct http_server *s = hc->srv;
    struct openai_detokenize_request r;
    struct openai_error e;
    if (openai_detokenize_parse(hc->body.data ? hc->body.data : "", hc->body.len, &r, &e) != 0)
        return http_send_error(hc, &e);
    if (openai_check_model(r.model, s->served_model_name, &e) != 0 ||
        http_check_ids(s, r.tokens, r.n_tokens, "tokens", &e) != 0) {
        openai_detokenize_deinit(&r);
        return http_send_error(hc, &e);
    }
    /* a leading BOS that tokenize added is dropped, and with it the space the SPM encoder put
     * in front, so detokenize(tokenize(text)) gives text back; other control tokens keep their
     * text, so a rendered chat prompt round-trips too */
    const int32_t *ids = r.tokens;
    size_t n = (size_t)r.n_tokens;
    int32_t bos = tokenizer_bos(s->p.tok);
    if (n > 0 && bos >= 0 && ids[0] == bos) {
        ids++;
        n--;
    }
    struct buf text;
    buf_init(&text);
    tokenizer_decode(s->p.tok, ids, n, true, true, &text);
    struct buf b;
    buf_init(&b);
    openai_detokenize_json(&b, text.data ? text.data : "", text.len);
    buf_deinit(&text);
    openai_detokenize_deinit(&r);
    int rc = http_send(hc, 200, "application/json", &b);
    buf_deinit(&b);
    return rc;
}
