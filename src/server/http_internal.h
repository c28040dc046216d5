/* http_internal.h: what http.c (daemon, routing, small endpoints), http_gen.c (generation
 * requests) and http_fmt.c (pure formatting and checks, unit-tested without a server) share.
 * Not a public header: only src/server and the tests include it. */
#ifndef CINDER_HTTP_INTERNAL_H
#define CINDER_HTTP_INTERNAL_H

#include "cinder/buf.h"
#include "cinder/common.h"
#include "cinder/http.h"
#include "cinder/openai.h"
#include "cinder/request.h"

#include <pthread.h>
#include <stdatomic.h>

struct MHD_Connection;
struct MHD_Daemon;
struct tokenizer;

/* ---- routes ---- */

enum http_route {
    HTTP_ROUTE_NONE = 0, /* unknown path: 404 */
    HTTP_ROUTE_CHAT,
    HTTP_ROUTE_COMPLETIONS,
    HTTP_ROUTE_MODELS,
    HTTP_ROUTE_MODEL, /* /v1/models/{id} */
    HTTP_ROUTE_TOKENIZE,
    HTTP_ROUTE_DETOKENIZE,
    HTTP_ROUTE_HEALTH,
    HTTP_ROUTE_READY,
    HTTP_ROUTE_METRICS,
};

/* Route of a URL path (query string already stripped by MHD). */
enum http_route http_route_match(const char *url);
/* The one method a route answers ("GET" or "POST"); NULL for HTTP_ROUTE_NONE. */
const char *http_route_method(enum http_route r);
/* Fixed label for metrics ("/v1/chat/completions", "/v1/models/{id}", "other"). */
const char *http_route_label(enum http_route r);

/* ---- request ids ---- */

#define HTTP_REQUEST_ID_MAX 128
/* A client's x-request-id is echoed when it is 1..127 visible ASCII characters. */
bool http_request_id_valid(const char *s);
/* 32 random hex digits. dst has HTTP_REQUEST_ID_MAX bytes. */
void http_request_id_make(char *dst);

/* ---- limits ---- */

/* The max_tokens a request runs with: requested (when given) capped by cap (> 0), or what the
 * context leaves after the prompt. Fills e with 400 context_length_exceeded when the prompt
 * alone fills the context, or when a requested max_tokens does not fit next to it. */
int http_resolve_max_tokens(int32_t n_prompt, int32_t requested, bool given, int32_t n_ctx,
                            int32_t cap, int32_t *out, struct openai_error *e);

/* ---- response formatting (pure) ---- */

/* Token strings of a batch of request_logprob entries, as openai_logprob views. */
struct http_logprobs {
    struct openai_logprob *lp;
    struct openai_top_logprob *top;
    int32_t n;
    struct buf text; /* the pieces; lp/top point into it */
};
void http_logprobs_init(struct http_logprobs *l);
void http_logprobs_deinit(struct http_logprobs *l);
/* Replace l's contents with in[0..n). text_offset (in/out) is the byte offset of the next token
 * in the generated text (legacy completions' text_offset). */
void http_logprobs_build(struct http_logprobs *l, const struct tokenizer *tok,
                         const struct request_logprob *in, int32_t n, int32_t *text_offset);

/* The state of one response as it is written. */
struct http_fmt {
    enum openai_kind kind;
    struct openai_meta meta; /* borrowed strings */
    bool include_usage;      /* stream_options.include_usage */
    bool logprobs;           /* the request asked for logprobs */
    bool started;            /* stream: the role chunk went out */
    int32_t n_choices;       /* n > 1: choices 0..n-1 (each its own role chunk); else 0 */
};

/* Chat: the first chunk (role "assistant", content ""); completions: nothing. */
void http_fmt_stream_start(struct http_fmt *f, struct buf *out);
/* One chunk for a text delta and its logprobs; nothing when both are empty. */
void http_fmt_stream_delta(struct http_fmt *f, const char *text, size_t len,
                           const struct http_logprobs *lps, struct buf *out);
/* The chunk carrying finish_reason, the usage chunk when asked for, then data: [DONE]. */
void http_fmt_stream_finish(struct http_fmt *f, const char *finish_reason,
                            const struct openai_usage *u, struct buf *out);
/* n > 1: a delta of choice index; the chunk with choice index's finish_reason; the end of the
 * stream (the usage chunk when asked for, then data: [DONE]). */
void http_fmt_stream_delta_i(struct http_fmt *f, int32_t index, const char *text, size_t len,
                             const struct http_logprobs *lps, struct buf *out);
void http_fmt_stream_finish_choice(struct http_fmt *f, int32_t index, const char *finish_reason,
                                   struct buf *out);
void http_fmt_stream_end(struct http_fmt *f, const struct openai_usage *u, struct buf *out);
/* A failure after the stream started: one data: {"error":...} event (the stream then ends). */
void http_fmt_stream_error(struct http_fmt *f, const struct openai_error *e, struct buf *out);
/* The whole non-streamed body. */
void http_fmt_response(struct http_fmt *f, const char *text, size_t len,
                       const struct http_logprobs *lps, const char *finish_reason,
                       const struct openai_usage *u, struct buf *out);

/* n > 1: the whole body with choices cs[0..n) (texts set by the caller; lps[i] or NULL). */
void http_fmt_response_n(struct http_fmt *f, struct openai_choice *cs,
                         const struct http_logprobs *lps, int32_t n, const struct openai_usage *u,
                         struct buf *out);

/* ---- the server (http.c) ---- */

struct http_server {
    struct http_params p;
    char *served_model_name; /* owned copy */
    struct MHD_Daemon *daemon;
    int listen_fd_quiesced; /* closed after MHD_stop_daemon; -1 if none */
    int32_t port;

    atomic_bool draining; /* no new connections; /ready 503 */
    atomic_bool stopping; /* destroy began: waits end now */

    pthread_mutex_t lock; /* n_active */
    pthread_cond_t idle;
    int32_t n_active;
};

/* Per-connection (per-request) state, MHD's con_cls. */
struct http_conn {
    struct http_server *srv;
    struct MHD_Connection *mhd;
    enum http_route route;
    char request_id[HTTP_REQUEST_ID_MAX];
    struct buf body;
    bool body_too_large;
    int64_t t_start_us;
    struct request *req; /* a generation in flight (a reference), or NULL */
    bool active;         /* counted in srv->n_active */
};

/* Queue a response with body (taken over; may be NULL for none) and the common headers
 * (x-request-id, CORS, and for 503 Retry-After). Returns MHD's result. */
int http_send(struct http_conn *hc, unsigned status, const char *content_type, struct buf *body);
int http_send_error(struct http_conn *hc, const struct openai_error *e);
/* Add the headers every response carries to a response built elsewhere (streams). */
void http_add_common_headers(struct http_conn *hc, void *mhd_response, unsigned status);

void http_active_begin(struct http_conn *hc);
void http_active_end(struct http_conn *hc);

/* Whether the client closed its end (EOF or reset seen without consuming anything). */
bool http_peer_closed(struct http_conn *hc);

/* ---- generation and tokenization (http_gen.c) ---- */

int http_handle_generation(struct http_conn *hc, enum openai_kind kind);
int http_handle_tokenize(struct http_conn *hc);
int http_handle_detokenize(struct http_conn *hc);

#endif
