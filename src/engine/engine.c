/* engine.c: the engine thread (vLLM's EngineCore, llama.cpp's update_slots loop).
 *
 * One thread owns the model's backend, the KV cache manager, the scheduler and every request's
 * sampler, detokenizer and stop matcher, so none of them needs a lock. Other threads reach it
 * only through the inbox (a chan of submit messages) and leave through each request's outbox.
 *
 * The loop, once per step:
 *
 *   drain inbox (block only when idle) -> scheduler_schedule -> batch_build -> forward_run
 *   -> sample each row that needs a token -> scheduler_update -> stop checks, detokenize,
 *   emit to outboxes -> finished requests leave the scheduler with their blocks freed.
 *
 * Sampling happens per request with the request's own sampler (its own seed), on that request's
 * own logits row, so a request's tokens depend only on its own prompt and parameters: the CPU
 * kernels compute every row the same whatever else is in the batch (batch invariance), and
 * nothing here reorders a request's tokens or mixes rows.
 *
 * The engine never blocks on a client: emitting is an append under req->lock and a signal.
 * A cancel is only a flag on the request (any thread); the scheduler sees it at the next plan,
 * whatever state the request is in, and the request is finished ABORTED with its blocks freed.
 *
 * Shutdown: engine_destroy stops admissions, lets the running requests finish until the drain
 * deadline, then aborts whatever is left (queued, running, or still in the inbox). */
#include "cinder/engine.h"
#include "cinder/backend.h"
#include "cinder/batch.h"
#include "cinder/buf.h"
#include "cinder/chan.h"
#include "cinder/clock.h"
#include "cinder/forward.h"
#include "cinder/kv_block_pool.h"
#include "cinder/kv_manager.h"
#include "cinder/log.h"
#include "cinder/model.h"
#include "cinder/request.h"
#include "cinder/sampler.h"
#include "cinder/scheduler.h"
#include "cinder/status.h"
#include "cinder/stop_matcher.h"
#include "cinder/tokenizer.h"
#include "cinder/xalloc.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENGINE_DEFAULT_MAX_CTX 4096
#define ENGINE_IDLE_WAIT_MS    1000

enum engine_msg_kind { ENGINE_MSG_SUBMIT, ENGINE_MSG_WAKE };

struct engine_msg {
    enum engine_msg_kind kind;
    struct request *req; /* SUBMIT: the engine's reference */
};

/* req->engine_data: what generating one request needs besides the sequence state. */
struct req_state {
    struct sampler *sampler;
    struct detokenizer dt;
    struct stop_matcher sm;
    struct buf piece; /* this token's decoded bytes */
    struct buf text;  /* what is safe to emit */
};

/* parent->engine_data for an n > 1 request: the children, one per choice. Child 0 is queued
 * at once and computes the prompt; when its prompt is computed, the others are forked from it
 * (sharing the prompt's full blocks) and queued at the front of the waiting queue. */
struct parent_state {
    struct request **children; /* [n]; NULL once released */
    int32_t n, n_live;
    bool forked;
    int32_t n_generated; /* summed over released children */
    int32_t n_cached;    /* child 0's */
    enum req_status status;
    int error_status;
    char error[CND_ERR_LEN];
};

struct engine {
    struct engine_params p;
    const struct model *model;
    struct backend *be;
    const struct tokenizer *tok;
    int32_t n_vocab, n_ctx, block_size, n_blocks;

    struct forward_ctx *fc;
    struct kv_manager *kvm;
    struct scheduler *sched;
    struct batch batch;
    float *logits;    /* [max_num_seqs, n_vocab] */
    float *raw_row;   /* [n_vocab] copy of a row before sampling (logprobs) */
    int32_t *sampled; /* [max_num_seqs] per sched_output entry */
    int32_t *eog_ids; /* end-of-generation tokens (suppressed before min_tokens) */
    int32_t n_eog;

    struct chan *inbox;
    pthread_t thread;
    bool thread_started;
    atomic_bool draining; /* engine_submit refuses */
    atomic_bool stopping; /* engine thread: finish up and exit */
    atomic_llong stop_deadline_us;
    atomic_int n_pending; /* submitted, not yet admitted or finished */

    pthread_mutex_t stats_lock;
    struct engine_stats stats; /* under stats_lock */
    bool alive;                /* under stats_lock */
    bool busy;                 /* under stats_lock: has work */
};

struct engine_params engine_default_params(void)
{
    struct engine_params p;
    memset(&p, 0, sizeof(p));
    p.n_ctx = 0; /* the model's training context, at most ENGINE_DEFAULT_MAX_CTX */
    p.block_size = 16;
    p.kv_cache_bytes = 0;
    p.kv_type = CND_DTYPE_F16;
    p.max_num_seqs = 16;
    p.max_num_batched_tokens = 2048;
    p.max_num_prefill_tokens = 0;
    p.max_waiting = 1024;
    p.enable_prefix_caching = true;
    p.stall_timeout_s = 60.0;
    return p;
}

int32_t engine_n_ctx(const struct engine *e)
{
    return e->n_ctx;
}

/* ---- per-request state ---- */

static void req_state_create(struct engine *e, struct request *req)
{
    struct req_state *rs = xcalloc(1, sizeof(*rs));
    rs->sampler = sampler_create(&req->params.sampling, e->n_vocab);
    for (int32_t i = 0; i < req->n_prompt; i++)
        sampler_accept(rs->sampler, req->prompt[i], true);
    detokenizer_init(&rs->dt, e->tok, false);
    stop_matcher_init(&rs->sm, req->params.stop, req->params.n_stop);
    buf_init(&rs->piece);
    buf_init(&rs->text);
    req->engine_data = rs;
}

static void req_state_destroy(struct request *req)
{
    struct req_state *rs = req->engine_data;
    if (!rs)
        return;
    sampler_destroy(rs->sampler);
    detokenizer_deinit(&rs->dt);
    stop_matcher_deinit(&rs->sm);
    buf_deinit(&rs->piece);
    buf_deinit(&rs->text);
    free(rs);
    req->engine_data = NULL;
}

/* The one request of a submit that counts in n_pending, queue time and TTFT: the request
 * itself, or choice 0 of an n > 1 request. */
static bool engine_is_lead(const struct request *req)
{
    return !req->parent || req->choice == 0;
}

static void engine_release(struct engine *e, struct request *req, int error_status,
                           const char *error);

/* A child (choice) of an n > 1 request is out of the scheduler. Its choice is finished in the
 * parent's outbox; when it is child 0 and the others were never forked (it was aborted or failed
 * before its prompt was computed), they end with the same status. The last child to go finishes
 * the parent. */
static void engine_release_child(struct engine *e, struct request *req, int error_status,
                                 const char *error)
{
    struct request *parent = req->parent;
    struct parent_state *ps = parent->engine_data;
    request_outbox_finish_choice(parent, req->choice, req->status, req->n_generated);
    ps->n_generated += req->n_generated;
    if (req->choice == 0) {
        ps->n_cached = req->n_cached;
        ps->status = req->status;
    }
    /* an error wins over an abort, an abort over a normal end */
    if (req->status == REQ_STATUS_FINISHED_ERROR && ps->status != REQ_STATUS_FINISHED_ERROR) {
        ps->status = REQ_STATUS_FINISHED_ERROR;
        ps->error_status = error_status;
        snprintf(ps->error, sizeof(ps->error), "%s", error ? error : "");
    } else if (req->status == REQ_STATUS_FINISHED_ABORTED &&
               ps->status != REQ_STATUS_FINISHED_ERROR) {
        ps->status = REQ_STATUS_FINISHED_ABORTED;
    }
    ps->children[req->choice] = NULL;
    ps->n_live--;
    bool release_unforked = req->choice == 0 && !ps->forked;
    ps->forked = true;
    request_unref(req); /* the child's only reference is the engine's */
    if (release_unforked) {
        /* the last of these finishes the parent (and frees ps): work from copies */
        int32_t n = ps->n;
        struct request **kids = xmalloc(sizeof(*kids) * (size_t)n);
        memcpy(kids, ps->children, sizeof(*kids) * (size_t)n);
        enum req_status st = ps->status == REQ_STATUS_FINISHED_ERROR ? REQ_STATUS_FINISHED_ERROR
                                                                     : REQ_STATUS_FINISHED_ABORTED;
        int err_status = ps->error_status;
        char err[CND_ERR_LEN];
        snprintf(err, sizeof(err), "%s", ps->error);
        for (int32_t i = 1; i < n; i++) {
            if (!kids[i])
                continue;
            kids[i]->status = st;
            engine_release(e, kids[i], err_status, err);
        }
        free(kids);
        return;
    }
    if (ps->n_live > 0)
        return;
    parent->status = ps->status;
    parent->n_generated = ps->n_generated;
    parent->n_cached = ps->n_cached;
    request_outbox_finish(parent, ps->status, ps->error_status, ps->error);
    free(ps->children);
    free(ps);
    parent->engine_data = NULL;
    if (e->p.observer.on_request_finished)
        e->p.observer.on_request_finished(e->p.observer.ud, parent);
    log_debug("req %s: finished %s, %d prompt + %d generated tokens in %d choices (%d cached)",
              parent->id, request_finish_reason(parent->status), parent->n_prompt,
              parent->n_generated, parent->out.n_choices, parent->n_cached);
    request_unref(parent);
}

/* The request is out of the scheduler (status set, blocks freed): tell the client, drop our
 * reference. */
static void engine_release(struct engine *e, struct request *req, int error_status,
                           const char *error)
{
    if (req->t_admitted_us == 0 && engine_is_lead(req))
        atomic_fetch_sub(&e->n_pending, 1);
    req_state_destroy(req);
    if (req->parent) {
        engine_release_child(e, req, error_status, error);
        return;
    }
    request_outbox_finish(req, req->status, error_status, error);
    if (e->p.observer.on_request_finished)
        e->p.observer.on_request_finished(e->p.observer.ud, req);
    log_debug("req %s: finished %s, %d prompt + %d generated tokens (%d cached)", req->id,
              request_finish_reason(req->status), req->n_prompt, req->n_generated, req->n_cached);
    request_unref(req);
}

static void engine_finish(struct engine *e, struct request *req, enum req_status status,
                          int error_status, const char *error)
{
    scheduler_finish_request(e->sched, req, status);
    engine_release(e, req, error_status, error);
}

/* ---- n > 1 ---- */

/* Split an n > 1 request into n children, one per choice, each an ordinary request with its
 * own sampler (seed + i when seeded), detokenizer and stop matcher. Only child 0 is queued: it
 * computes the prompt, then engine_fork_children queues the others. */
static void engine_add_parent(struct engine *e, struct request *parent)
{
    int32_t n = parent->params.n;
    struct parent_state *ps = xcalloc(1, sizeof(*ps));
    ps->children = xcalloc((size_t)n, sizeof(*ps->children));
    ps->n = ps->n_live = n;
    ps->status = REQ_STATUS_FINISHED_STOP;
    parent->engine_data = ps;
    for (int32_t i = 0; i < n; i++) {
        struct gen_params gp = parent->params; /* request_create deep-copies it */
        gp.n = 1;
        if (gp.sampling.has_seed)
            gp.sampling.seed += (uint64_t)i;
        char id[96];
        snprintf(id, sizeof(id), "%s/%d", parent->id, i);
        struct request *c = request_create(id, parent->prompt, parent->n_prompt, &gp);
        c->max_tokens = parent->max_tokens;
        c->t_arrival_us = parent->t_arrival_us;
        c->parent = parent;
        c->choice = i;
        req_state_create(e, c);
        ps->children[i] = c;
    }
    scheduler_add_request(e->sched, ps->children[0]);
    log_debug("req %s: queued, %d prompt tokens, max_tokens %d, n %d", parent->id, parent->n_prompt,
              parent->max_tokens, n);
}

/* Child 0 has just computed the prompt: the other children share its full prompt blocks
 * (read-only, ref-counted) and recompute the partial last block themselves: copy-on-write
 * without a device copy. Queued at the front of the waiting queue, in choice order. */
static void engine_fork_children(struct engine *e, struct request *lead)
{
    struct request *parent = lead->parent;
    struct parent_state *ps = parent->engine_data;
    if (ps->forked)
        return;
    ps->forked = true;
    int32_t n_shared = (lead->n_prompt - 1) / e->block_size;
    for (int32_t i = ps->n - 1; i >= 1; i--) {
        struct request *c = ps->children[i];
        kv_manager_fork_prefix(e->kvm, lead, c, n_shared);
        scheduler_add_forked(e->sched, c);
    }
    log_debug("req %s: prompt computed, forked %d choices sharing %d blocks", parent->id, ps->n - 1,
              n_shared);
}

/* ---- inbox ---- */

static void engine_handle_msg(struct engine *e, const struct engine_msg *m)
{
    if (m->kind != ENGINE_MSG_SUBMIT)
        return;
    struct request *req = m->req;
    if (req->params.n > 1) {
        engine_add_parent(e, req);
        return;
    }
    req_state_create(e, req);
    scheduler_add_request(e->sched, req);
    log_debug("req %s: queued, %d prompt tokens, max_tokens %d", req->id, req->n_prompt,
              req->max_tokens);
}

/* Take everything in the inbox; wait up to timeout_ms for the first message. */
static void engine_drain_inbox(struct engine *e, int timeout_ms)
{
    struct engine_msg m;
    int rc = chan_pop(e->inbox, &m, timeout_ms);
    while (rc == 1) {
        engine_handle_msg(e, &m);
        rc = chan_pop(e->inbox, &m, 0);
    }
}

/* ---- one step ---- */

static void engine_emit_text(struct request *req, struct req_state *rs,
                             const struct request_logprob *lp, bool first)
{
    if (rs->text.len > 0 || lp || first) {
        if (req->parent)
            request_outbox_append_choice(req->parent, req->choice, rs->text.data, rs->text.len, lp);
        else
            request_outbox_append(req, rs->text.data, rs->text.len, lp);
    }
    buf_reset(&rs->text);
}

/* The end without a stop-string match: push out what the detokenizer and matcher hold. */
static void engine_flush_text(struct req_state *rs, bool through_matcher)
{
    buf_reset(&rs->piece);
    detokenizer_flush(&rs->dt, &rs->piece);
    if (through_matcher) {
        stop_matcher_feed(&rs->sm, rs->piece.data, rs->piece.len, &rs->text);
        stop_matcher_flush(&rs->sm, &rs->text);
    } else {
        buf_append(&rs->text, rs->piece.data, rs->piece.len);
    }
}

/* After scheduler_update appended token tok to req: stop checks, text, emit, maybe finish. */
static void engine_process_token(struct engine *e, struct request *req, int32_t tok,
                                 const struct request_logprob *lp, int64_t t_now)
{
    struct req_state *rs = req->engine_data;
    const struct gen_params *gp = &req->params;
    int32_t n_gen = req->n_generated;
    bool first = n_gen == 1 && req->t_last_token_us == 0;

    if (e->p.observer.on_first_token && first && engine_is_lead(req))
        e->p.observer.on_first_token(e->p.observer.ud, req,
                                     (double)(t_now - req->t_arrival_us) / 1e6);
    else if (e->p.observer.on_token && req->t_last_token_us > 0 && !first)
        e->p.observer.on_token(e->p.observer.ud, req, (double)(t_now - req->t_last_token_us) / 1e6);
    req->t_last_token_us = t_now;

    bool stops_here = n_gen > gp->min_tokens; /* EOS and stop strings count from here */
    enum req_status finish = REQ_STATUS_RUNNING;
    if (tokenizer_is_eog(e->tok, tok) && !gp->ignore_eos && stops_here) {
        finish = REQ_STATUS_FINISHED_STOP; /* the end token itself is not text */
        engine_flush_text(rs, true);
        engine_emit_text(req, rs, NULL, first);
    } else {
        buf_reset(&rs->piece);
        detokenizer_push(&rs->dt, tok, &rs->piece);
        if (stops_here || rs->sm.held.len > 0)
            stop_matcher_feed(&rs->sm, rs->piece.data, rs->piece.len, &rs->text);
        else
            buf_append(&rs->text, rs->piece.data, rs->piece.len);
        if (stop_matcher_matched(&rs->sm) >= 0 && stops_here) {
            finish = REQ_STATUS_FINISHED_STOP;
        } else if (n_gen >= req->max_tokens || req->n_tokens >= e->n_ctx) {
            finish = REQ_STATUS_FINISHED_LENGTH;
            engine_flush_text(rs, true);
        }
        engine_emit_text(req, rs, lp, first);
    }
    if (finish != REQ_STATUS_RUNNING)
        engine_finish(e, req, finish, 0, NULL);
}

static void engine_fail_step(struct engine *e, const struct sched_output *out, int rc)
{
    log_error("forward pass failed (%s): failing the %d requests of this step", cnd_status_str(rc),
              out->n_reqs);
    for (int32_t i = 0; i < out->n_reqs; i++) {
        struct request *req = out->reqs[i].req;
        if (req->status == REQ_STATUS_RUNNING)
            engine_finish(e, req, REQ_STATUS_FINISHED_ERROR, rc,
                          "internal error: forward pass failed");
    }
}

static void engine_update_stats(struct engine *e, bool progressed)
{
    struct kv_block_pool *pool = kv_manager_pool(e->kvm);
    pthread_mutex_lock(&e->stats_lock);
    struct engine_stats *st = &e->stats;
    st->n_running = scheduler_n_running(e->sched);
    st->n_waiting = scheduler_n_waiting(e->sched);
    st->n_blocks_total = kv_block_pool_n_total(pool);
    st->n_blocks_used = kv_block_pool_n_used(pool);
    st->n_blocks_cached = kv_block_pool_n_cached(pool);
    st->kv_usage = st->n_blocks_total ? (double)st->n_blocks_used / st->n_blocks_total : 0.0;
    if (progressed)
        st->n_steps++;
    st->t_last_progress_us = now_us();
    e->busy = scheduler_has_work(e->sched);
    pthread_mutex_unlock(&e->stats_lock);
}

static void engine_step(struct engine *e)
{
    struct sched_output out;
    scheduler_schedule(e->sched, &out);
    const struct engine_observer *ob = &e->p.observer;
    for (int32_t i = 0; i < out.n_aborted; i++)
        engine_release(e, out.aborted[i], 0, NULL);
    for (int32_t i = 0; i < out.n_preempted; i++) {
        log_debug("req %s: preempted (%d tokens to recompute)", out.preempted[i]->id,
                  out.preempted[i]->n_tokens);
        if (ob->on_preempt)
            ob->on_preempt(ob->ud, out.preempted[i]);
    }
    if (out.n_prefix_queried_tokens > 0 && ob->on_prefix_cache)
        ob->on_prefix_cache(ob->ud, out.n_prefix_queried_tokens, out.n_prefix_hit_tokens);
    if (out.n_reqs == 0)
        return;
    int64_t t0 = now_us();
    for (int32_t i = 0; i < out.n_reqs; i++) {
        if (!out.reqs[i].first_scheduled || !engine_is_lead(out.reqs[i].req))
            continue;
        struct request *req = out.reqs[i].req;
        atomic_fetch_sub(&e->n_pending, 1);
        if (ob->on_scheduled)
            ob->on_scheduled(ob->ud, req, (double)(req->t_admitted_us - req->t_arrival_us) / 1e6);
    }

    batch_build(&e->batch, &out, e->block_size);
    int rc = forward_run(e->fc, &e->batch.fb, e->logits);
    if (rc != 0) {
        engine_fail_step(e, &out, rc);
        return;
    }

    /* sample: one row per request that completes its prompt or decodes */
    int32_t n_out = e->batch.fb.n_out;
    struct request_logprob *lps = NULL;
    bool *has_lp = NULL;
    for (int32_t r = 0; r < n_out; r++) {
        int32_t s = e->batch.out_req[r];
        struct request *req = out.reqs[s].req;
        struct req_state *rs = req->engine_data;
        float *row = e->logits + (size_t)r * (size_t)e->n_vocab;
        bool want_lp = req->params.logprobs;
        if (want_lp)
            memcpy(e->raw_row, row, sizeof(float) * (size_t)e->n_vocab);
        if (req->n_generated < req->params.min_tokens && !req->params.ignore_eos) {
            for (int32_t k = 0; k < e->n_eog; k++)
                row[e->eog_ids[k]] = -INFINITY;
        }
        int32_t tok = sampler_sample(rs->sampler, row);
        sampler_accept(rs->sampler, tok, false);
        e->sampled[s] = tok;
        if (want_lp) {
            if (!lps) {
                lps = xcalloc((size_t)out.n_reqs, sizeof(*lps));
                has_lp = xcalloc((size_t)out.n_reqs, sizeof(*has_lp));
            }
            struct request_logprob *lp = &lps[s];
            lp->token = tok;
            lp->n_top = CND_MAX(0, CND_MIN(req->params.top_logprobs, 20));
            lp->logprob = sampler_logprobs(e->raw_row, e->n_vocab, tok, lp->n_top, lp->top);
            has_lp[s] = true;
        }
    }

    scheduler_update(e->sched, &out, e->sampled);

    /* n > 1: a first choice whose prompt is now computed forks the others (before it may
     * finish below and give its blocks back) */
    for (int32_t r = 0; r < n_out; r++) {
        struct request *req = out.reqs[e->batch.out_req[r]].req;
        if (req->parent && req->choice == 0 && req->status == REQ_STATUS_RUNNING &&
            req->n_computed >= req->n_prompt)
            engine_fork_children(e, req);
    }

    int64_t t_now = now_us();
    for (int32_t r = 0; r < n_out; r++) {
        int32_t s = e->batch.out_req[r];
        struct request *req = out.reqs[s].req;
        if (req->status != REQ_STATUS_RUNNING)
            continue;
        engine_process_token(e, req, e->sampled[s], has_lp && has_lp[s] ? &lps[s] : NULL, t_now);
    }
    free(lps);
    free(has_lp);
    log_debug("step: %d reqs, %d tokens, %d sampled, %.2f ms", out.n_reqs, out.n_tokens, n_out,
              (double)(now_us() - t0) / 1e3);
}

static void engine_abort_everything(struct engine *e)
{
    struct request *req;
    while ((req = scheduler_any_request(e->sched)))
        engine_finish(e, req, REQ_STATUS_FINISHED_ABORTED, 0, NULL);
}

static void *engine_thread_main(void *arg)
{
    struct engine *e = arg;
    log_set_thread_name("engine");
    for (;;) {
        bool has_work = scheduler_has_work(e->sched);
        engine_drain_inbox(e, has_work ? 0 : ENGINE_IDLE_WAIT_MS);
        if (atomic_load(&e->stopping)) {
            if (!scheduler_has_work(e->sched) && chan_len(e->inbox) == 0)
                break;
            if (now_us() >= atomic_load(&e->stop_deadline_us)) {
                log_warn("drain timeout: aborting %d running and %d waiting requests",
                         scheduler_n_running(e->sched), scheduler_n_waiting(e->sched));
                break;
            }
        }
        if (!scheduler_has_work(e->sched)) {
            engine_update_stats(e, false);
            continue;
        }
        engine_step(e);
        engine_update_stats(e, true);
    }
    /* nothing new gets in after the close; what is still queued is aborted */
    chan_close(e->inbox);
    engine_drain_inbox(e, 0);
    engine_abort_everything(e);
    engine_update_stats(e, false);
    pthread_mutex_lock(&e->stats_lock);
    e->alive = false;
    pthread_mutex_unlock(&e->stats_lock);
    return NULL;
}

/* ---- public API ---- */

static void engine_free(struct engine *e)
{
    if (!e)
        return;
    chan_destroy(e->inbox);
    scheduler_destroy(e->sched);
    kv_manager_destroy(e->kvm);
    forward_ctx_destroy(e->fc);
    batch_deinit(&e->batch);
    free(e->logits);
    free(e->raw_row);
    free(e->sampled);
    free(e->eog_ids);
    pthread_mutex_destroy(&e->stats_lock);
    free(e);
}

struct engine *engine_create(const struct engine_params *params, char *err)
{
    if (!params || !params->model || !params->backend) {
        err_set(err, "engine needs a model and a backend");
        return NULL;
    }
    const struct model *m = params->model;
    const struct model_hparams *hp = &m->hp;
    if (!m->tok) {
        err_set(err, "model %s has no tokenizer", m->name ? m->name : "?");
        return NULL;
    }
    struct engine *e = xcalloc(1, sizeof(*e));
    e->p = *params;
    e->model = m;
    e->be = params->backend;
    e->tok = m->tok;
    e->n_vocab = hp->n_vocab;
    pthread_mutex_init(&e->stats_lock, NULL);
    batch_init(&e->batch);
    if (e->p.block_size <= 0)
        e->p.block_size = 16;
    if (e->p.max_num_seqs <= 0)
        e->p.max_num_seqs = 16;
    if (e->p.max_num_batched_tokens < e->p.max_num_seqs)
        e->p.max_num_batched_tokens = CND_MAX(e->p.max_num_seqs, 2048);
    if (e->p.max_waiting <= 0)
        e->p.max_waiting = 1024;
    if (e->p.stall_timeout_s < 0) /* 0: never report a stall (the documented setting) */
        e->p.stall_timeout_s = 60.0;
    e->block_size = e->p.block_size;
    e->n_ctx = e->p.n_ctx > 0
                   ? e->p.n_ctx
                   : CND_MIN(hp->n_ctx_train > 0 ? hp->n_ctx_train : 2048, ENGINE_DEFAULT_MAX_CTX);
    if (e->p.kv_type != CND_DTYPE_F16 && e->p.kv_type != CND_DTYPE_F32) {
        err_set(err, "KV cache type %s is not supported (f16, f32)", dtype_name(e->p.kv_type));
        engine_free(e);
        return NULL;
    }

    /* KV pool: what the budget buys, or enough for max_num_seqs full contexts */
    size_t elem = e->p.kv_type == CND_DTYPE_F16 ? 2 : 4;
    int64_t block_bytes =
        (int64_t)hp->n_layer * 2 * e->block_size * hp->n_head_kv * hp->head_dim * (int64_t)elem;
    int64_t n_blocks =
        e->p.kv_cache_bytes > 0
            ? e->p.kv_cache_bytes / block_bytes
            : (int64_t)e->p.max_num_seqs * ((e->n_ctx + e->block_size - 1) / e->block_size);
    if (n_blocks < 1) {
        err_set(err,
                "KV cache budget of %lld bytes holds no block (one block of %d tokens is "
                "%lld bytes)",
                (long long)e->p.kv_cache_bytes, e->block_size, (long long)block_bytes);
        engine_free(e);
        return NULL;
    }
    if (n_blocks > INT32_MAX / e->block_size)
        n_blocks = INT32_MAX / e->block_size;
    e->n_blocks = (int32_t)n_blocks;
    log_info("KV cache: %d blocks = %lld tokens (%d per block, %s, %.1f MiB); context %d, "
             "max %d sequences, %d tokens per step",
             e->n_blocks, (long long)e->n_blocks * e->block_size, e->block_size,
             dtype_name(e->p.kv_type), (double)n_blocks * (double)block_bytes / 1048576.0, e->n_ctx,
             e->p.max_num_seqs, e->p.max_num_batched_tokens);

    int rc = e->be->ops->load_model(e->be, m, err);
    if (rc == 0) {
        struct kv_cache_params kp = {
            .n_layer = hp->n_layer,
            .n_blocks = e->n_blocks,
            .block_size = e->block_size,
            .n_head_kv = hp->n_head_kv,
            .head_dim = hp->head_dim,
            .dtype = e->p.kv_type,
        };
        rc = e->be->ops->kv_init(e->be, &kp, err);
    }
    if (rc != 0) {
        engine_free(e);
        return NULL;
    }
    e->fc = forward_ctx_create(m, e->be, e->p.max_num_batched_tokens, err);
    if (!e->fc) {
        engine_free(e);
        return NULL;
    }
    struct kv_manager_params kvp = {
        .n_blocks = e->n_blocks,
        .block_size = e->block_size,
        .enable_prefix_caching = e->p.enable_prefix_caching,
    };
    e->kvm = kv_manager_create(&kvp, err);
    if (!e->kvm) {
        engine_free(e);
        return NULL;
    }
    struct scheduler_params sp = {
        .max_num_seqs = e->p.max_num_seqs,
        .max_num_batched_tokens = e->p.max_num_batched_tokens,
        .max_num_prefill_tokens = e->p.max_num_prefill_tokens,
    };
    e->sched = scheduler_create(&sp, e->kvm);
    e->logits = xmalloc(sizeof(float) * (size_t)e->p.max_num_seqs * (size_t)e->n_vocab);
    e->raw_row = xmalloc(sizeof(float) * (size_t)e->n_vocab);
    e->sampled = xcalloc((size_t)e->p.max_num_seqs, sizeof(int32_t));
    for (int32_t t = 0; t < e->n_vocab; t++) {
        if (tokenizer_is_eog(e->tok, t)) {
            e->eog_ids = xrealloc(e->eog_ids, sizeof(int32_t) * (size_t)(e->n_eog + 1));
            e->eog_ids[e->n_eog++] = t;
        }
    }
    e->inbox = chan_create(sizeof(struct engine_msg));
    atomic_init(&e->draining, false);
    atomic_init(&e->stopping, false);
    atomic_init(&e->stop_deadline_us, 0);
    atomic_init(&e->n_pending, 0);
    e->alive = true;
    e->stats.t_last_progress_us = now_us();
    engine_update_stats(e, false);
    if (pthread_create(&e->thread, NULL, engine_thread_main, e) != 0) {
        err_set(err, "cannot start the engine thread");
        engine_free(e);
        return NULL;
    }
    e->thread_started = true;
    return e;
}

void engine_destroy(struct engine *e, double drain_timeout_s)
{
    if (!e)
        return;
    engine_begin_drain(e);
    if (e->thread_started) {
        int64_t deadline = now_us() + (int64_t)(CND_MAX(drain_timeout_s, 0.0) * 1e6);
        atomic_store(&e->stop_deadline_us, deadline);
        atomic_store(&e->stopping, true);
        struct engine_msg wake = {.kind = ENGINE_MSG_WAKE, .req = NULL};
        chan_push(e->inbox, &wake);
        pthread_join(e->thread, NULL);
    }
    engine_free(e);
}

void engine_begin_drain(struct engine *e)
{
    atomic_store(&e->draining, true);
}

int engine_submit(struct engine *e, struct request *req, char *err)
{
    if (atomic_load(&e->draining)) {
        err_set(err, "the server is shutting down");
        return CND_ECANCELLED;
    }
    if (req->n_prompt < 1) {
        err_set(err, "the prompt is empty");
        return CND_EINVAL;
    }
    for (int32_t i = 0; i < req->n_prompt; i++) {
        if (req->prompt[i] < 0 || req->prompt[i] >= e->n_vocab) {
            err_set(err, "prompt token %d at %d is out of the vocabulary (%d)", req->prompt[i], i,
                    e->n_vocab);
            return CND_EINVAL;
        }
    }
    /* the pool's size is a context limit of its own */
    int64_t limit = CND_MIN((int64_t)e->n_ctx, (int64_t)e->n_blocks * e->block_size);
    if (req->n_prompt >= limit) {
        err_set(err,
                "the prompt (%d tokens) leaves no room to generate in the context (%lld "
                "tokens)",
                req->n_prompt, (long long)limit);
        return CND_ERANGE;
    }
    if (req->params.max_tokens > 0) {
        if ((int64_t)req->n_prompt + req->params.max_tokens > limit) {
            err_set(err,
                    "the prompt (%d tokens) plus max_tokens (%d) exceeds the context (%lld "
                    "tokens)",
                    req->n_prompt, req->params.max_tokens, (long long)limit);
            return CND_ERANGE;
        }
        req->max_tokens = req->params.max_tokens;
    } else {
        req->max_tokens = (int32_t)(limit - req->n_prompt);
    }
    if (atomic_load(&e->n_pending) >= e->p.max_waiting) {
        err_set(err, "too many requests waiting (%d)", e->p.max_waiting);
        return CND_EOVERLOAD;
    }
    request_ref(req);
    atomic_fetch_add(&e->n_pending, 1);
    struct engine_msg m = {.kind = ENGINE_MSG_SUBMIT, .req = req};
    if (chan_push(e->inbox, &m) != 0) {
        atomic_fetch_sub(&e->n_pending, 1);
        request_unref(req);
        err_set(err, "the server is shutting down");
        return CND_ECANCELLED;
    }
    return 0;
}

void engine_cancel(struct engine *e, struct request *req)
{
    atomic_store_explicit(&req->cancel_requested, true, memory_order_release);
    /* a running engine sees the flag at its next plan; wake it in case it is idle-waiting */
    struct engine_msg wake = {.kind = ENGINE_MSG_WAKE, .req = NULL};
    chan_push(e->inbox, &wake);
}

void engine_get_stats(struct engine *e, struct engine_stats *out)
{
    pthread_mutex_lock(&e->stats_lock);
    *out = e->stats;
    pthread_mutex_unlock(&e->stats_lock);
}

bool engine_is_healthy(struct engine *e)
{
    pthread_mutex_lock(&e->stats_lock);
    bool ok = e->alive;
    if (ok && e->busy && e->p.stall_timeout_s > 0) {
        double since = (double)(now_us() - e->stats.t_last_progress_us) / 1e6;
        ok = since <= e->p.stall_timeout_s;
    }
    pthread_mutex_unlock(&e->stats_lock);
    return ok;
}
