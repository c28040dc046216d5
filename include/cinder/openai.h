/* openai.h: the OpenAI wire format as plain structs, with no HTTP and no model.
 * Requests: /v1/chat/completions, /v1/completions, /tokenize, /detokenize bodies are parsed
 * and validated into structs that own their data; an invalid one fills struct openai_error
 * with the HTTP status and the offending "param", as OpenAI does. Responses: builders append
 * JSON to a struct buf from borrowed inputs. Every function is reentrant; nothing is shared. */
#ifndef CINDER_OPENAI_H
#define CINDER_OPENAI_H

#include "cinder/buf.h"
#include "cinder/common.h"
#include "cinder/gen_params.h"

#include <cjson/cJSON.h>

/* ---- errors ---- */

struct openai_error {
    int http_status;  /* 400, 404, 413, 500, 503 ... */
    const char *type; /* static: "invalid_request_error", "not_found_error", "server_error" ... */
    char param[64];   /* "" -> null */
    char code[64];    /* "" -> null */
    char message[512];
};

void openai_error_set(struct openai_error *e, int http_status, const char *param, const char *fmt,
                      ...) __attribute__((format(printf, 4, 5)));
/* From an internal status (CND_EINVAL -> 400, CND_ERANGE -> 400, CND_ENOTFOUND -> 404,
 * CND_EOVERLOAD/CND_ENOSPC -> 503, others -> 500) and a message. */
void openai_error_from_status(struct openai_error *e, int status, const char *message);
/* 404 {"code":"model_not_found"} unless model is NULL or equals served. Returns 0 or
 * CND_ENOTFOUND. */
int openai_check_model(const char *model, const char *served, struct openai_error *e);
/* {"error":{"message","type","param","code"}} */
void openai_error_json(struct buf *out, const struct openai_error *e);

/* ---- generation requests ---- */

enum openai_kind {
    OPENAI_KIND_CHAT,       /* /v1/chat/completions */
    OPENAI_KIND_COMPLETION, /* /v1/completions */
};

enum openai_role {
    OPENAI_ROLE_SYSTEM,
    OPENAI_ROLE_USER,
    OPENAI_ROLE_ASSISTANT,
    OPENAI_ROLE_TOOL,
    OPENAI_ROLE_DEVELOPER,
};

/* One chat message, borrowed from openai_request.messages. An array of text parts is joined
 * with "\n" into content (as vLLM does); content is "" for an assistant turn with null. */
struct openai_message {
    enum openai_role role;
    const char *role_name; /* "user" ... */
    const char *content;
    const char *name; /* optional "name"; NULL if absent */
};

struct openai_request {
    enum openai_kind kind;
    char *model; /* NULL when the body has none */

    /* chat */
    cJSON *messages; /* owned, detached and normalised: content is always a string */
    struct openai_message *msgs;
    int32_t n_msgs;
    bool add_generation_prompt; /* vLLM extension, default true */

    /* completions: exactly one of prompt / prompt_tokens is set */
    char *prompt;
    int32_t *prompt_tokens;
    int32_t n_prompt_tokens;

    struct gen_params params;
    bool stream;
    bool include_usage; /* stream_options.include_usage */
    bool max_tokens_given;
};

/* Parse and validate one body. On failure returns CND_EINVAL (or CND_EUNSUPPORTED for a
 * valid but unimplemented feature) with e filled, and req left empty (deinit is still fine).
 * Defaults: chat max_tokens -1 (until EOS/context); completions 16, as in OpenAI's API. */
int openai_request_parse(const char *body, size_t len, enum openai_kind kind,
                         struct openai_request *req, struct openai_error *e);
void openai_request_deinit(struct openai_request *req);

/* ---- tokenize / detokenize (vLLM's extension endpoints) ---- */

struct openai_tokenize_request {
    char *model;
    char *prompt;    /* either prompt ... */
    cJSON *messages; /* ... or messages (owned, normalised as above) */
    struct openai_message *msgs;
    int32_t n_msgs;
    bool add_special_tokens;    /* default: true for prompt, false for messages */
    bool add_generation_prompt; /* default true (messages only) */
};

int openai_tokenize_parse(const char *body, size_t len, struct openai_tokenize_request *req,
                          struct openai_error *e);
void openai_tokenize_deinit(struct openai_tokenize_request *req);
/* {"tokens":[...],"count":n,"max_model_len":m} */
void openai_tokenize_json(struct buf *out, const int32_t *tokens, int32_t n_tokens,
                          int32_t max_model_len);

struct openai_detokenize_request {
    char *model;
    int32_t *tokens;
    int32_t n_tokens;
};

int openai_detokenize_parse(const char *body, size_t len, struct openai_detokenize_request *req,
                            struct openai_error *e);
void openai_detokenize_deinit(struct openai_detokenize_request *req);
/* {"prompt":"..."} */
void openai_detokenize_json(struct buf *out, const char *text, size_t len);

/* ---- responses ---- */

/* Identity of one response; all borrowed. */
struct openai_meta {
    const char *id;                 /* "chatcmpl-..." / "cmpl-..." from openai_make_id */
    const char *model;              /* served model name */
    int64_t created;                /* unix seconds */
    const char *system_fingerprint; /* NULL: omitted */
};

struct openai_usage {
    int32_t prompt_tokens;
    int32_t completion_tokens;
    int32_t cached_tokens; /* prompt tokens served from the prefix cache */
};

/* Token text is raw bytes (a token may hold part of a UTF-8 character); invalid UTF-8 is
 * shown as U+FFFD in "token" while "bytes" keeps the exact bytes. */
struct openai_top_logprob {
    const char *token;
    size_t len;
    float logprob;
};

struct openai_logprob {
    const char *token;
    size_t len;
    float logprob;
    const struct openai_top_logprob *top;
    int32_t n_top;
    int32_t text_offset; /* legacy completions: byte offset of the token in the output */
};

/* Most choices one request may ask for ("n"). */
#define OPENAI_MAX_N 16

/* One choice, or one streamed delta of it. All borrowed. */
struct openai_choice {
    int32_t index;    /* its place in "choices" (0 unless n > 1) */
    const char *text; /* content delta / whole text; may be NULL when len is 0 */
    size_t len;
    const char *finish_reason; /* "stop" | "length" | NULL while running */
    bool has_logprobs;         /* emit a logprobs object (else null) */
    const struct openai_logprob *logprobs;
    int32_t n_logprobs;
    bool first; /* chat chunk: this delta carries role "assistant" */
};

/* "chatcmpl-" or "cmpl-" + 24 random hex digits into dst (at least 40 bytes). */
void openai_make_id(char *dst, size_t cap, const char *prefix);

/* chat.completion (non-streamed). */
void openai_chat_completion_json(struct buf *out, const struct openai_meta *m,
                                 const struct openai_choice *c, const struct openai_usage *u);
/* The same with n choices (n >= 1), each carrying its own index. */
void openai_chat_completion_json_n(struct buf *out, const struct openai_meta *m,
                                   const struct openai_choice *cs, int32_t n,
                                   const struct openai_usage *u);
/* chat.completion.chunk. With c == NULL: the usage chunk (choices: [], usage u). Otherwise a
 * delta chunk; with_usage_null adds "usage": null, as OpenAI does when include_usage is set. */
void openai_chat_chunk_json(struct buf *out, const struct openai_meta *m,
                            const struct openai_choice *c, const struct openai_usage *u,
                            bool with_usage_null);
/* text_completion (non-streamed) and its streamed chunks (same object name, as OpenAI). */
void openai_completion_json(struct buf *out, const struct openai_meta *m,
                            const struct openai_choice *c, const struct openai_usage *u);
void openai_completion_json_n(struct buf *out, const struct openai_meta *m,
                              const struct openai_choice *cs, int32_t n,
                              const struct openai_usage *u);
void openai_completion_chunk_json(struct buf *out, const struct openai_meta *m,
                                  const struct openai_choice *c, const struct openai_usage *u,
                                  bool with_usage_null);

struct openai_model_info {
    const char *id;
    int64_t created;
    int32_t max_model_len;
};
/* {"object":"list","data":[model...]} and a single model object. */
void openai_models_json(struct buf *out, const struct openai_model_info *models, int32_t n);
void openai_model_json(struct buf *out, const struct openai_model_info *m);

/* Append s[0..len) as a JSON string literal (quotes included), invalid UTF-8 as U+FFFD. */
void openai_json_string(struct buf *out, const char *s, size_t len);

#endif
