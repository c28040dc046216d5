/* engine.h: the engine thread. It owns the scheduler, the KV cache manager, the backend and the
 * per-request samplers; nothing else touches them. Other threads talk to it only through
 * engine_submit / engine_cancel (the inbox) and each request's outbox (request.h).
 *
 * Step loop (STYLE.md 3.9): drain the inbox (block only when idle) -> scheduler_schedule (one
 * decode token per running request + prefill chunks, within the token and sequence budgets;
 * may preempt) -> build the batch -> forward_run -> sample the rows that need a token ->
 * scheduler_update (append, stop/length, free finished) -> emit text to outboxes. */
#ifndef CINDER_ENGINE_H
#define CINDER_ENGINE_H

#include "cinder/common.h"
#include "cinder/tensor.h"

struct model;
struct backend;
struct request;
struct engine;

/* Upward notifications (metrics): called on the engine thread; must not block. */
struct engine_observer {
    void *ud;
    void (*on_request_finished)(void *ud, const struct request *req);
    void (*on_first_token)(void *ud, const struct request *req, double ttft_s);
    void (*on_token)(void *ud, const struct request *req, double inter_token_s);
    void (*on_scheduled)(void *ud, const struct request *req, double queue_s);
    void (*on_preempt)(void *ud, const struct request *req);
    void (*on_prefix_cache)(void *ud, int64_t n_queried_tokens, int64_t n_hit_tokens);
};

struct engine_params {
    const struct model *model;      /* borrowed; outlives the engine */
    struct backend *backend;        /* borrowed; the engine thread drives it exclusively */
    int32_t n_ctx;                  /* max tokens per sequence (prompt + output) */
    int32_t block_size;             /* KV block size in tokens (16) */
    int64_t kv_cache_bytes;         /* KV pool budget; 0 = enough for max_num_seqs x n_ctx */
    enum cnd_dtype kv_type;         /* F16 (default) or F32 */
    int32_t max_num_seqs;           /* running sequences per step */
    int32_t max_num_batched_tokens; /* tokens per step */
    int32_t max_num_prefill_tokens; /* prompt tokens per step while others decode; 0 = no cap */
    int32_t max_waiting;            /* queued requests beyond which submit answers CND_EOVERLOAD */
    bool enable_prefix_caching;
    double stall_timeout_s; /* engine_is_healthy turns false after this long without progress
                             * while there is work (0: never; negative: the default 60) */
    struct engine_observer observer;
};

struct engine_params engine_default_params(void);

/* Sizes the KV pool (logs "N blocks = M tokens"), loads the model into the backend
 * (ops->load_model) and allocates the pool there (ops->kv_init), then starts the engine thread.
 * n_ctx 0 means the model's training context capped at 4096. NULL + err. */
struct engine *engine_create(const struct engine_params *params, char *err);
/* Stop accepting, let running requests finish for up to drain_timeout_s, abort the rest, join
 * the thread and free everything. */
void engine_destroy(struct engine *e, double drain_timeout_s);

/* Hand a request to the engine (takes a reference). Sets req->max_tokens: params.max_tokens, or
 * when that is <= 0 the room left in the context (also bounded by the KV pool's size). Returns
 * 0; CND_EINVAL for an empty prompt or a token id outside the vocabulary; CND_EOVERLOAD when
 * max_waiting requests are queued (HTTP 503 + Retry-After); CND_ERANGE with err when the request
 * can never fit (prompt + max_tokens over n_ctx, or more blocks than the whole pool: HTTP 400);
 * CND_ECANCELLED when the engine is shutting down (503). Never blocks on the engine. */
int engine_submit(struct engine *e, struct request *req, char *err);
/* Ask the engine to abort req (any thread; idempotent). The engine finishes it as
 * REQ_STATUS_FINISHED_ABORTED at its next step and frees its blocks. */
void engine_cancel(struct engine *e, struct request *req);

/* Stop admitting new requests (engine_submit answers CND_ECANCELLED); running ones go on. */
void engine_begin_drain(struct engine *e);

struct engine_stats {
    int32_t n_running;
    int32_t n_waiting;
    int32_t n_blocks_total;
    int32_t n_blocks_used;   /* held by running/preempted requests */
    int32_t n_blocks_cached; /* free but holding a prefix-cache hash */
    double kv_usage;         /* used / total */
    int64_t n_steps;
    int64_t t_last_progress_us;
};
/* A consistent snapshot (any thread). */
void engine_get_stats(struct engine *e, struct engine_stats *out);
/* The engine thread is alive and either idle or made progress within stall_timeout_s. */
bool engine_is_healthy(struct engine *e);
int32_t engine_n_ctx(const struct engine *e);

#endif
