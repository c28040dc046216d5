/* request.c: the request object shared by an HTTP connection and the engine thread.
 *
 * Two threads hold it at once, so it is ref-counted: whichever of "client went away" and
 * "engine finished" comes last frees it. Everything the engine changes while generating lives
 * in plain fields only the engine thread touches; what crosses back to the HTTP side goes
 * through the outbox under req->lock, which is held only for a memcpy or a buffer swap, so a
 * slow client can never stall the engine (the engine appends, the reader swaps the buffer
 * out and formats JSON outside the lock). */
#include "cinder/request.h"
#include "cinder/clock.h"
#include "cinder/xalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *request_finish_reason(enum req_status s)
{
    switch (s) {
    case REQ_STATUS_FINISHED_STOP: return "stop";
    case REQ_STATUS_FINISHED_LENGTH: return "length";
    case REQ_STATUS_FINISHED_ABORTED: return "abort";
    case REQ_STATUS_FINISHED_ERROR: return "error";
    default: return NULL;
    }
}

struct request *request_create(const char *id, const int32_t *prompt, int32_t n_prompt,
                               const struct gen_params *params)
{
    CND_ASSERT(n_prompt >= 0);
    struct request *req = xcalloc(1, sizeof(*req));
    atomic_init(&req->refcount, 1);
    snprintf(req->id, sizeof(req->id), "%s", id ? id : "");
    req->n_prompt = n_prompt;
    req->prompt = xmalloc(sizeof(int32_t) * (size_t)(n_prompt > 0 ? n_prompt : 1));
    if (n_prompt > 0)
        memcpy(req->prompt, prompt, sizeof(int32_t) * (size_t)n_prompt);
    if (params) {
        gen_params_copy(&req->params, params);
    } else {
        req->params = gen_params_default();
    }
    req->max_tokens = req->params.max_tokens;
    req->t_arrival_us = now_us();

    req->status = REQ_STATUS_WAITING;
    req->cap_tokens = n_prompt + 16;
    req->tokens = xmalloc(sizeof(int32_t) * (size_t)req->cap_tokens);
    if (n_prompt > 0)
        memcpy(req->tokens, prompt, sizeof(int32_t) * (size_t)n_prompt);
    req->n_tokens = n_prompt;
    list_init(&req->sched_node);
    atomic_init(&req->cancel_requested, false);

    pthread_mutex_init(&req->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&req->cond, &ca);
    pthread_condattr_destroy(&ca);
    request_outbox_init(&req->out);
    req->out.n_prompt_tokens = n_prompt;
    if (req->params.n > 1) {
        req->out.n_choices = req->params.n;
        req->out.choices = xcalloc((size_t)req->params.n, sizeof(*req->out.choices));
        for (int32_t i = 0; i < req->params.n; i++)
            buf_init(&req->out.choices[i].text);
    }
    return req;
}

void request_ref(struct request *req)
{
    atomic_fetch_add_explicit(&req->refcount, 1, memory_order_relaxed);
}

void request_unref(struct request *req)
{
    if (!req)
        return;
    if (atomic_fetch_sub_explicit(&req->refcount, 1, memory_order_acq_rel) != 1)
        return;
    /* the engine frees engine_data and returns the blocks before dropping its reference */
    CND_ASSERT(req->engine_data == NULL);
    free(req->prompt);
    free(req->tokens);
    free(req->block_table);
    gen_params_deinit(&req->params);
    request_outbox_deinit(&req->out);
    pthread_mutex_destroy(&req->lock);
    pthread_cond_destroy(&req->cond);
    free(req);
}

void request_outbox_init(struct request_outbox *o)
{
    memset(o, 0, sizeof(*o));
    buf_init(&o->text);
}

void request_outbox_deinit(struct request_outbox *o)
{
    buf_deinit(&o->text);
    free(o->logprobs);
    o->logprobs = NULL;
    o->n_logprobs = o->cap_logprobs = 0;
    for (int32_t i = 0; i < o->n_choices; i++) {
        buf_deinit(&o->choices[i].text);
        free(o->choices[i].logprobs);
    }
    free(o->choices);
    o->choices = NULL;
    o->n_choices = 0;
}

static void outbox_push_logprob(struct request_logprob **arr, int32_t *n, int32_t *cap,
                                const struct request_logprob *lp)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *arr = xrealloc(*arr, sizeof(**arr) * (size_t)*cap);
    }
    (*arr)[(*n)++] = *lp;
}

void request_outbox_append_choice(struct request *req, int32_t i, const char *text, size_t len,
                                  const struct request_logprob *lp)
{
    pthread_mutex_lock(&req->lock);
    struct request_outbox *o = &req->out;
    CND_ASSERT(i >= 0 && i < o->n_choices);
    struct request_choice *c = &o->choices[i];
    if (len > 0)
        buf_append(&c->text, text, len);
    if (lp)
        outbox_push_logprob(&c->logprobs, &c->n_logprobs, &c->cap_logprobs, lp);
    if (o->t_first_token_us == 0)
        o->t_first_token_us = now_us();
    pthread_cond_broadcast(&req->cond);
    pthread_mutex_unlock(&req->lock);
}

void request_outbox_finish_choice(struct request *req, int32_t i, enum req_status status,
                                  int32_t n_completion_tokens)
{
    pthread_mutex_lock(&req->lock);
    struct request_outbox *o = &req->out;
    CND_ASSERT(i >= 0 && i < o->n_choices);
    struct request_choice *c = &o->choices[i];
    if (!c->finished) {
        c->finished = true;
        c->finish_status = status;
        c->n_completion_tokens = n_completion_tokens;
    }
    pthread_cond_broadcast(&req->cond);
    pthread_mutex_unlock(&req->lock);
}

void request_outbox_append(struct request *req, const char *text, size_t len,
                           const struct request_logprob *lp)
{
    pthread_mutex_lock(&req->lock);
    struct request_outbox *o = &req->out;
    if (len > 0)
        buf_append(&o->text, text, len);
    if (lp) {
        if (o->n_logprobs == o->cap_logprobs) {
            o->cap_logprobs = o->cap_logprobs ? o->cap_logprobs * 2 : 16;
            o->logprobs = xrealloc(o->logprobs, sizeof(*o->logprobs) * (size_t)o->cap_logprobs);
        }
        o->logprobs[o->n_logprobs++] = *lp;
    }
    if (o->t_first_token_us == 0)
        o->t_first_token_us = now_us();
    pthread_cond_broadcast(&req->cond);
    pthread_mutex_unlock(&req->lock);
}

void request_outbox_finish(struct request *req, enum req_status status, int error_status,
                           const char *error)
{
    pthread_mutex_lock(&req->lock);
    struct request_outbox *o = &req->out;
    if (!o->finished) {
        o->finished = true;
        o->finish_status = status;
        o->error_status = error_status;
        snprintf(o->error, sizeof(o->error), "%s", error ? error : "");
        /* usage: the engine thread is the caller, so the sequence state is ours to read */
        o->n_prompt_tokens = req->n_prompt;
        o->n_completion_tokens = req->n_generated;
        o->n_cached_tokens = req->n_cached;
    }
    pthread_cond_broadcast(&req->cond);
    pthread_mutex_unlock(&req->lock);
}

static bool outbox_has_news(const struct request_outbox *o)
{
    if (o->text.len > 0 || o->n_logprobs > 0 || o->finished)
        return true;
    for (int32_t i = 0; i < o->n_choices; i++) {
        const struct request_choice *c = &o->choices[i];
        if (c->text.len > 0 || c->n_logprobs > 0 || c->finished != c->reported)
            return true;
    }
    return false;
}

/* Move one stream's pending text and logprobs (the request's, or one choice's) to the reader
 * by swapping buffers: the reader formats outside the lock and the engine appends to the
 * emptied old buffers, so no bytes are copied under the lock. */
static void outbox_swap_stream(struct buf *o_text, struct request_logprob **o_lp, int32_t *o_n,
                               int32_t *o_cap, struct buf *t_text, struct request_logprob **t_lp,
                               int32_t *t_n, int32_t *t_cap)
{
    struct buf t = *t_text;
    buf_reset(&t);
    *t_text = *o_text;
    *o_text = t;
    struct request_logprob *lp = *t_lp;
    int32_t cap = *t_cap;
    *t_lp = *o_lp;
    *t_n = *o_n;
    *t_cap = *o_cap;
    *o_lp = lp;
    *o_n = 0;
    *o_cap = cap;
}

bool request_outbox_take(struct request *req, struct request_outbox *taken, int timeout_ms)
{
    struct timespec deadline;
    if (timeout_ms > 0) {
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&req->lock);
    struct request_outbox *o = &req->out;
    while (!outbox_has_news(o) && timeout_ms != 0) {
        if (timeout_ms < 0)
            pthread_cond_wait(&req->cond, &req->lock);
        else if (pthread_cond_timedwait(&req->cond, &req->lock, &deadline) == ETIMEDOUT)
            break;
    }
    bool news = outbox_has_news(o);
    outbox_swap_stream(&o->text, &o->logprobs, &o->n_logprobs, &o->cap_logprobs, &taken->text,
                       &taken->logprobs, &taken->n_logprobs, &taken->cap_logprobs);
    taken->finished = o->finished;
    taken->finish_status = o->finish_status;
    taken->error_status = o->error_status;
    memcpy(taken->error, o->error, sizeof(taken->error));
    taken->n_prompt_tokens = o->n_prompt_tokens;
    taken->n_completion_tokens = o->n_completion_tokens;
    taken->n_cached_tokens = o->n_cached_tokens;
    taken->t_first_token_us = o->t_first_token_us;
    if (o->n_choices > 0 && !taken->choices) {
        taken->n_choices = o->n_choices;
        taken->choices = xcalloc((size_t)o->n_choices, sizeof(*taken->choices));
        for (int32_t i = 0; i < o->n_choices; i++)
            buf_init(&taken->choices[i].text);
    }
    for (int32_t i = 0; i < o->n_choices && i < taken->n_choices; i++) {
        struct request_choice *oc = &o->choices[i], *tc = &taken->choices[i];
        outbox_swap_stream(&oc->text, &oc->logprobs, &oc->n_logprobs, &oc->cap_logprobs, &tc->text,
                           &tc->logprobs, &tc->n_logprobs, &tc->cap_logprobs);
        tc->finished = oc->finished;
        tc->finish_status = oc->finish_status;
        tc->n_completion_tokens = oc->n_completion_tokens;
        oc->reported = oc->finished;
    }
    pthread_mutex_unlock(&req->lock);
    return news;
}
