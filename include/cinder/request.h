/* request.h: one generation request as it travels between the HTTP side and the engine.
 *
 * Ownership: ref-counted. The HTTP connection holds one reference and the engine another (taken
 * by engine_submit); the last request_unref frees it, so a client disconnect and a finish can
 * happen in either order. Fields are grouped by who may touch them:
 *   - input: written before engine_submit, read-only afterwards (any thread);
 *   - sequence state: engine thread only (scheduler, kv_manager, engine), no lock;
 *   - outbox: under req->lock; the engine appends events and signals req->cond, the HTTP reader
 *     waits on req->cond and takes them (request_outbox_take);
 *   - cancel_requested: any thread, atomically. */
#ifndef CINDER_REQUEST_H
#define CINDER_REQUEST_H

#include "cinder/common.h"
#include "cinder/buf.h"
#include "cinder/gen_params.h"
#include "cinder/list.h"
#include "cinder/sampler.h"
#include "cinder/status.h"

#include <pthread.h>
#include <stdatomic.h>

/* Ordered so that request_status_is_finished(s) is s > REQ_STATUS_PREEMPTED (vLLM). */
enum req_status {
    REQ_STATUS_WAITING = 0,
    REQ_STATUS_RUNNING,
    REQ_STATUS_PREEMPTED,
    REQ_STATUS_FINISHED_STOP,    /* EOS/EOT or a stop string: finish_reason "stop" */
    REQ_STATUS_FINISHED_LENGTH,  /* max_tokens or the context end: "length" */
    REQ_STATUS_FINISHED_ABORTED, /* cancelled (client went away, shutdown) */
    REQ_STATUS_FINISHED_ERROR,   /* engine error: see outbox error fields */
};

static inline bool request_status_is_finished(enum req_status s)
{
    return s > REQ_STATUS_PREEMPTED;
}

/* "stop", "length", "abort", "error" */
const char *request_finish_reason(enum req_status s);

/* Logprobs of one emitted token (when params.logprobs). */
struct request_logprob {
    int32_t token;
    float logprob;
    int32_t n_top;
    struct token_logprob top[20];
};

/* One choice of an n > 1 request (request_outbox.choices). */
struct request_choice {
    struct buf text;                  /* text not yet taken */
    struct request_logprob *logprobs; /* entries not yet taken */
    int32_t n_logprobs, cap_logprobs;
    bool finished;
    enum req_status finish_status;
    int32_t n_completion_tokens; /* final when finished */
    bool reported;               /* the finish was taken (request_outbox_take) */
};

/* What the engine hands the HTTP side; text is what is safe to send now (whole UTF-8
 * sequences, stop strings held back and cut). For n = 1 the text, logprobs and finish fields
 * are the one choice's; for n > 1 (params.n) each choice's text, logprobs and finish are in
 * choices[0..n_choices), and the top-level fields say when the whole request is finished (all
 * choices), with the usage summed over the choices (prompt counted once). */
struct request_outbox {
    struct buf text;                  /* text not yet taken */
    struct request_logprob *logprobs; /* entries not yet taken */
    int32_t n_logprobs, cap_logprobs;
    bool finished;
    enum req_status finish_status;
    int error_status;        /* negative cnd_status when FINISHED_ERROR */
    char error[CND_ERR_LEN]; /* message when FINISHED_ERROR */
    /* usage, final when finished */
    int32_t n_prompt_tokens;
    int32_t n_completion_tokens;
    int32_t n_cached_tokens;  /* prompt tokens served from the prefix cache */
    int64_t t_first_token_us; /* 0 until the first token */
    int32_t n_choices;        /* 0 for n = 1; else params.n */
    struct request_choice *choices;
};

struct request {
    atomic_int refcount;

    /* ---- input (read-only after engine_submit) ---- */
    char id[64];
    int32_t *prompt; /* owned */
    int32_t n_prompt;
    struct gen_params params; /* owned (stop strings, logit bias) */
    int32_t max_tokens;       /* resolved: params.max_tokens capped at the context */
    int64_t t_arrival_us;

    /* ---- sequence state (engine thread only) ---- */
    enum req_status status;
    int32_t *tokens; /* prompt + generated; owned */
    int32_t n_tokens, cap_tokens;
    int32_t n_computed; /* tokens whose K/V are in the cache */
    int32_t n_generated;
    int32_t n_cached;     /* prompt tokens found in the prefix cache at admission */
    int32_t *block_table; /* block ids, managed by kv_manager */
    int32_t n_blocks, cap_blocks;
    int32_t n_blocks_hashed; /* leading blocks of block_table registered in the prefix cache */
    uint64_t hash_last;      /* prefix hash of block n_blocks_hashed - 1 (chain seed when 0) */
    int32_t n_preemptions;
    struct list_node sched_node; /* in the scheduler's waiting or running queue */
    int64_t t_admitted_us;
    int64_t t_last_token_us;
    void *engine_data; /* engine.c's per-request state (sampler, detokenizer, stop matcher) */
    /* n > 1: the engine runs one child request per choice; a child's parent is the request the
     * HTTP side holds (borrowed: the engine keeps the parent alive while children exist), and
     * choice is its index. NULL / 0 for an ordinary request. */
    struct request *parent;
    int32_t choice;

    /* ---- cancellation (any thread) ---- */
    atomic_bool cancel_requested;

    /* ---- outbox (under lock) ---- */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct request_outbox out;
};

/* A new request with refcount 1, owning a copy of prompt and params. */
struct request *request_create(const char *id, const int32_t *prompt, int32_t n_prompt,
                               const struct gen_params *params);
void request_ref(struct request *req);
void request_unref(struct request *req); /* frees at zero */

/* Engine side: append text/logprobs or finish, then signal (takes req->lock). */
void request_outbox_append(struct request *req, const char *text, size_t len,
                           const struct request_logprob *lp);
void request_outbox_finish(struct request *req, enum req_status status, int error_status,
                           const char *error);
/* n > 1: the same for choice i of req's outbox; finishing a choice records its status and
 * n_completion_tokens (the whole request is finished by request_outbox_finish). */
void request_outbox_append_choice(struct request *req, int32_t i, const char *text, size_t len,
                                  const struct request_logprob *lp);
void request_outbox_finish_choice(struct request *req, int32_t i, enum req_status status,
                                  int32_t n_completion_tokens);

/* cancel_requested of req or of its parent (n > 1 children). */
static inline bool request_cancel_requested(struct request *req)
{
    if (atomic_load_explicit(&req->cancel_requested, memory_order_acquire))
        return true;
    return req->parent &&
           atomic_load_explicit(&req->parent->cancel_requested, memory_order_acquire);
}

/* HTTP side: wait up to timeout_ms for news (text, logprobs or finish); moves what is there into
 * *taken (caller-owned, initialised with request_outbox_init, freed with _deinit). Returns true
 * if anything was taken or the request is finished. taken's text and logprobs are replaced
 * (not appended to) by what was new (for n > 1 per choice too: taken->choices is sized on the
 * first take); finish, error and usage fields are copied. timeout_ms < 0
 * waits for ever, 0 does not wait. */
void request_outbox_init(struct request_outbox *o);
void request_outbox_deinit(struct request_outbox *o);
bool request_outbox_take(struct request *req, struct request_outbox *taken, int timeout_ms);

#endif
