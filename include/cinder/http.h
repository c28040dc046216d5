/* http.h: the HTTP front end of `cinder serve` (libmicrohttpd, one thread per connection).
 *
 * Routes: POST /v1/chat/completions, POST /v1/completions (streamed as SSE or not),
 * GET /v1/models, GET /v1/models/{id}, POST /tokenize, POST /detokenize, GET /health,
 * GET /ready, GET /metrics, and OPTIONS preflights for CORS. docs/api.md is the reference.
 *
 * Threads: MHD runs each connection on its own thread; that thread parses, validates, applies
 * the chat template, tokenizes and calls engine_submit, then waits on the request's outbox
 * (1 s timeouts, so shutdown and dead peers are noticed) and writes JSON or SSE. The engine
 * thread never calls into this module. A connection that ends before its request finished
 * cancels it (engine_cancel).
 *
 * Lifetimes: everything in http_params is borrowed and must outlive the server, the engine
 * included: destroy the server first, then the engine. */
#ifndef CINDER_HTTP_H
#define CINDER_HTTP_H

#include "cinder/common.h"

struct auth;
struct chat_template;
struct engine;
struct metrics;
struct tokenizer;
struct http_server;

struct http_params {
    const char *host; /* address to bind ("127.0.0.1", "::1", "0.0.0.0") or a name ("localhost") */
    int32_t port;     /* 0: pick a free one (see http_server_port) */
    int64_t max_body_bytes;       /* 413 above */
    int64_t max_header_bytes;     /* per-connection memory for the request line and headers */
    int32_t max_connections;      /* concurrent connections (each has a thread) */
    int32_t connection_timeout_s; /* idle/read timeout; 0 = none */
    int32_t max_tokens_cap;       /* upper bound on a request's max_tokens; 0 = context only */

    const char *served_model_name; /* copied */
    int64_t model_created;         /* unix seconds for /v1/models */
    int32_t n_ctx;                 /* tokens per sequence (prompt + output) */

    const struct tokenizer *tok;               /* borrowed, read-only */
    const struct chat_template *chat_template; /* NULL: the plain fallback */
    struct engine *engine;                     /* borrowed */
    struct auth *auth;                         /* NULL: no keys, no CORS */
    struct metrics *metrics;                   /* NULL: no /metrics content */
};

struct http_params http_default_params(void);

/* Bind and start serving. NULL + err when the address cannot be bound or is not numeric. */
struct http_server *http_server_create(const struct http_params *p, char *err);
/* The port actually bound (useful with port 0). */
int32_t http_server_port(const struct http_server *s);

/* Stop accepting connections (the listening socket is closed), answer /ready with 503 and new
 * generation requests on open keep-alive connections with 503 + Connection: close. Requests
 * already running go on. Idempotent; any thread. */
void http_server_begin_drain(struct http_server *s);
/* Generation requests in flight (submitted and not yet answered). */
int32_t http_server_n_active(struct http_server *s);
/* Wait until no generation request is in flight, up to timeout_s. Returns true when idle. */
bool http_server_wait_idle(struct http_server *s, double timeout_s);
/* End whatever still runs (cancelling its requests; streams get an error event), close every
 * connection, join the threads and free. The engine must still be alive. NULL: no-op. */
void http_server_destroy(struct http_server *s);

#endif
