/* scheduler.c: continuous batching with chunked prefill and preemption by recompute.
 *
 * The scheduler owns two intrusive queues threaded through req->sched_node: running (in
 * admission order, oldest at the head) and waiting (FCFS; preempted requests go back to its
 * front). A step is planned in three passes over a token budget:
 *
 *   1. decodes: every running request with exactly one token to compute gets it. Decodes come
 *      first so a long prompt being prefilled can never stall the streams already flowing.
 *   2. prefill chunks of running requests admitted earlier whose prompt is not yet computed:
 *      as many tokens as the budget still allows (chunked prefill).
 *   3. admissions from the waiting queue, head first, while a sequence slot, budget and KV blocks
 *      remain; a prefix-cache hit at admission skips the cached part of the prompt. The queue is
 *      strictly FCFS: if the head does not fit, nobody behind it is admitted (no starvation).
 *
 * Passes 2 and 3 together compute at most max_num_prefill_tokens prompt tokens (when set), so
 * a step stays short while others decode and a burst of new requests gets its first tokens a
 * few requests per step rather than all at once after one long step. The one exception: in a
 * step with no decodes, the first prompt chunk may use the whole budget (a lone long prompt is
 * not cut into pieces for nothing). With the cap set, a step in which prompts wait while others
 * decode is "prefill-first" (pass 1 skipped: no decodes), at most two such steps in a row.
 *
 * Blocks are allocated per step for exactly the tokens scheduled. When the pool cannot give a
 * running request its blocks, the newest running request is preempted (vLLM's recompute policy):
 * its blocks go back (hashed ones stay cached, so recompute is often a cache hit), it is
 * pushed to the front of the waiting queue, and it is re-admitted before anything newer. The
 * oldest request is thus never preempted while a newer one runs, which is what guarantees
 * progress. A step that preempted admits nobody, so requests do not ping-pong.
 *
 * n > 1: the engine adds the other choices of a request, once its first choice computed the
 * prompt, with scheduler_add_forked: they wait at the front of the queue already holding the
 * prompt's full blocks (shared), and admission only allocates their own tail. If the queue's
 * head cannot be admitted while waiting requests hold such blocks, they give them back first
 * (and recompute later), so held blocks can never block the queue.
 *
 * Cancelled requests (req->cancel_requested or their parent's, set by any thread) are finished
 * ABORTED at the start of each plan, whatever their state, and reported in sched_output.aborted. */
#include "cinder/scheduler.h"
#include "cinder/clock.h"
#include "cinder/kv_manager.h"
#include "cinder/status.h"
#include "cinder/xalloc.h"

#include <stdlib.h>
#include <string.h>

struct scheduler {
    struct scheduler_params p;
    struct kv_manager *kvm;
    struct list_node running, waiting;
    int32_t n_running, n_waiting;
    int n_prefill_only; /* consecutive planned steps that left the decodes out (see below) */
    /* sched_output storage */
    struct sched_req *reqs;
    struct request **preempted, **aborted, **snapshot;
    size_t cap_preempted, cap_aborted, cap_snapshot;
};

struct scheduler *scheduler_create(const struct scheduler_params *params, struct kv_manager *kvm)
{
    struct scheduler *s = xcalloc(1, sizeof(*s));
    s->p = *params;
    if (s->p.max_num_seqs <= 0)
        s->p.max_num_seqs = 1;
    if (s->p.max_num_batched_tokens < s->p.max_num_seqs)
        s->p.max_num_batched_tokens = s->p.max_num_seqs;
    s->kvm = kvm;
    list_init(&s->running);
    list_init(&s->waiting);
    s->reqs = xcalloc((size_t)s->p.max_num_seqs, sizeof(*s->reqs));
    return s;
}

void scheduler_destroy(struct scheduler *s)
{
    if (!s)
        return;
    free(s->reqs);
    free(s->preempted);
    free(s->aborted);
    free(s->snapshot);
    free(s);
}

void scheduler_add_request(struct scheduler *s, struct request *req)
{
    req->status = REQ_STATUS_WAITING;
    list_push_back(&s->waiting, &req->sched_node);
    s->n_waiting++;
}

void scheduler_add_forked(struct scheduler *s, struct request *req)
{
    req->status = REQ_STATUS_WAITING;
    list_push_front(&s->waiting, &req->sched_node);
    s->n_waiting++;
}

/* Waiting requests holding forked blocks give them back (they will be recomputed through the
 * prefix cache): so blocks held by the queue can never keep its head from being admitted. */
static int32_t release_waiting_blocks(struct scheduler *s)
{
    int32_t n = 0;
    struct list_node *node;
    list_for_each(node, &s->waiting)
    {
        struct request *req = list_entry(node, struct request, sched_node);
        if (req->n_blocks > 0) {
            kv_manager_free_request(s->kvm, req);
            n++;
        }
    }
    return n;
}

bool scheduler_has_work(const struct scheduler *s)
{
    return s->n_running > 0 || s->n_waiting > 0;
}

int32_t scheduler_n_running(const struct scheduler *s)
{
    return s->n_running;
}

int32_t scheduler_n_waiting(const struct scheduler *s)
{
    return s->n_waiting;
}

static void push_req(struct request ***arr, size_t *cap, int32_t *n, struct request *req)
{
    xgrow((void **)arr, cap, (size_t)*n + 1, sizeof(**arr));
    (*arr)[(*n)++] = req;
}

static void unlink_req(struct scheduler *s, struct request *req)
{
    if (req->status == REQ_STATUS_RUNNING)
        s->n_running--;
    else if (req->status == REQ_STATUS_WAITING || req->status == REQ_STATUS_PREEMPTED)
        s->n_waiting--;
    else
        CND_PANIC("request %s is not queued (status %d)", req->id, (int)req->status);
    list_remove(&req->sched_node);
}

void scheduler_finish_request(struct scheduler *s, struct request *req, enum req_status status)
{
    CND_ASSERT(request_status_is_finished(status));
    unlink_req(s, req);
    kv_manager_free_request(s->kvm, req);
    req->status = status;
}

struct request *scheduler_any_request(const struct scheduler *s)
{
    if (!list_empty(&s->running))
        return list_entry(s->running.next, struct request, sched_node);
    if (!list_empty(&s->waiting))
        return list_entry(s->waiting.next, struct request, sched_node);
    return NULL;
}

static void abort_cancelled(struct scheduler *s, struct list_node *queue, struct sched_output *out)
{
    struct list_node *node, *tmp;
    list_for_each_safe(node, tmp, queue)
    {
        struct request *req = list_entry(node, struct request, sched_node);
        if (!request_cancel_requested(req))
            continue;
        scheduler_finish_request(s, req, REQ_STATUS_FINISHED_ABORTED);
        push_req(&s->aborted, &s->cap_aborted, &out->n_aborted, req);
    }
}

/* Preempt victim (RUNNING): blocks back, to the front of the waiting queue; if it was already
 * scheduled in this step, take its entry (and tokens) back out of out. */
static void preempt(struct scheduler *s, struct request *victim, struct sched_output *out,
                    int32_t *budget)
{
    for (int32_t i = 0; i < out->n_reqs; i++) {
        if (out->reqs[i].req != victim)
            continue;
        *budget += out->reqs[i].n_new;
        out->n_tokens -= out->reqs[i].n_new;
        memmove(&out->reqs[i], &out->reqs[i + 1],
                sizeof(out->reqs[0]) * (size_t)(out->n_reqs - i - 1));
        out->n_reqs--;
        break;
    }
    unlink_req(s, victim);
    kv_manager_free_request(s->kvm, victim);
    victim->status = REQ_STATUS_PREEMPTED;
    victim->n_preemptions++;
    list_push_front(&s->waiting, &victim->sched_node);
    s->n_waiting++;
    push_req(&s->preempted, &s->cap_preempted, &out->n_preempted, victim);
}

static void add_entry(struct sched_output *out, struct request *req, int32_t n_new)
{
    struct sched_req *e = &out->reqs[out->n_reqs++];
    memset(e, 0, sizeof(*e));
    e->req = req;
    e->pos0 = req->n_computed;
    e->n_new = n_new;
    e->sample = req->n_computed + n_new == req->n_tokens;
    out->n_tokens += n_new;
}

/* Allocate n_new tokens for running req, preempting the newest running requests until it fits.
 * Returns false when req itself had to be preempted. */
static bool allocate_or_preempt(struct scheduler *s, struct request *req, int32_t n_new,
                                struct sched_output *out, int32_t *budget)
{
    while (kv_manager_allocate_slots(s->kvm, req, n_new) != 0) {
        struct request *victim = list_entry(s->running.prev, struct request, sched_node);
        preempt(s, victim, out, budget);
        if (victim == req)
            return false;
    }
    return true;
}

/* The size of a prompt chunk of up to want tokens under the per-step prompt cap *left (which
 * it consumes): capped, except the first chunk of a step that has nothing else in it. */
static int32_t prefill_chunk(int32_t want, int32_t *left, bool step_has_work)
{
    int32_t n = step_has_work ? CND_MIN(want, *left) : want;
    *left = n >= *left ? 0 : *left - n;
    return n;
}

/* Prefill-first steps in a row at most: two let a group of arrivals that needs two capped
 * steps get both before the streams' next decode (at 16 streams: TTFT p50 72-113 ms with two,
 * 73-106 with one, 136-164 with three, alternating runs). */
#define SCHED_MAX_PREFILL_FIRST 2

/* One pass over the running snapshot: pass 0 the decodes (one token left), pass 1 the prompt
 * chunks of requests admitted earlier (under the per-step prompt cap). */
static void plan_running(struct scheduler *s, struct sched_output *out, int32_t n_snap, int pass,
                         int32_t *budget, int32_t *prefill_left, bool strict)
{
    for (int32_t i = 0; i<n_snap && * budget> 0; i++) {
        struct request *req = s->snapshot[i];
        if (req->status != REQ_STATUS_RUNNING)
            continue; /* preempted earlier in this step */
        int32_t n_left = req->n_tokens - req->n_computed;
        if (n_left <= 0 || (pass == 0) != (n_left == 1))
            continue;
        if (pass == 1 && *prefill_left <= 0)
            break;
        int32_t n_new = CND_MIN(n_left, *budget);
        if (pass == 1)
            n_new = prefill_chunk(n_new, prefill_left, strict || out->n_reqs > 0);
        if (!allocate_or_preempt(s, req, n_new, out, budget))
            continue;
        add_entry(out, req, n_new);
        *budget -= n_new;
    }
}

int scheduler_schedule(struct scheduler *s, struct sched_output *out)
{
    memset(out, 0, sizeof(*out));
    out->reqs = s->reqs;
    abort_cancelled(s, &s->running, out);
    abort_cancelled(s, &s->waiting, out);
    out->aborted = s->aborted;

    int32_t budget = s->p.max_num_batched_tokens;
    /* snapshot the running queue: preemption unlinks requests while we walk */
    xgrow((void **)&s->snapshot, &s->cap_snapshot, (size_t)s->n_running + 1, sizeof(*s->snapshot));
    int32_t n_snap = 0;
    struct list_node *node;
    list_for_each(node, &s->running) s->snapshot[n_snap++] =
        list_entry(node, struct request, sched_node);

    /* prompt tokens this step may still compute (INT32_MAX: no cap); see the file comment */
    int32_t prefill_left =
        s->p.max_num_prefill_tokens > 0 ? s->p.max_num_prefill_tokens : INT32_MAX;
    /* Prefill-first steps (with the cap only): when prompt work is pending and requests are
     * decoding, a step leaves the decodes out, so a new request's first token waits for a
     * short step of prompts alone rather than one that also carries every stream's decode. The
     * streams sit out at most SCHED_MAX_PREFILL_FIRST such steps in a row. */
    int32_t n_decoding = 0, n_prefilling = 0;
    for (int32_t i = 0; i < n_snap; i++) {
        const int32_t n_left = s->snapshot[i]->n_tokens - s->snapshot[i]->n_computed;
        n_decoding += n_left == 1;
        n_prefilling += n_left > 1;
    }
    const bool admissible = !list_empty(&s->waiting) && s->n_running < s->p.max_num_seqs;
    bool prefill_only = s->p.max_num_prefill_tokens > 0 &&
                        s->n_prefill_only < SCHED_MAX_PREFILL_FIRST && n_decoding > 0 &&
                        (n_prefilling > 0 || admissible);
    /* with streams waiting on this step, even its first prompt chunk keeps to the cap */
    const bool strict = n_decoding > 0;
    for (int pass = prefill_only ? 1 : 0; pass < 2; pass++)
        plan_running(s, out, n_snap, pass, &budget, &prefill_left, strict);

    while (out->n_preempted == 0 && !list_empty(&s->waiting) && s->n_running < s->p.max_num_seqs &&
           budget > 0 && prefill_left > 0) {
        struct request *req = list_entry(s->waiting.next, struct request, sched_node);
        const int32_t *hit = NULL;
        bool forked = req->n_blocks > 0; /* n > 1: holds the prompt blocks it shares */
        int32_t n_hit = forked ? 0 : kv_manager_get_computed_blocks(s->kvm, req, &hit);
        int32_t n_hit_tokens = forked ? req->n_computed : n_hit * kv_manager_block_size(s->kvm);
        int32_t want = CND_MIN(req->n_tokens - n_hit_tokens, budget);
        int32_t cap_left = prefill_left;
        int32_t n_new = prefill_chunk(want, &cap_left, strict || out->n_reqs > 0);
        if (kv_manager_allocate_slots_prefix(s->kvm, req, n_new, hit, n_hit) != 0) {
            if (release_waiting_blocks(s) > 0)
                continue;
            break; /* FCFS: nobody overtakes the head */
        }
        prefill_left = cap_left;
        bool first = req->status == REQ_STATUS_WAITING && req->n_preemptions == 0;
        unlink_req(s, req);
        req->status = REQ_STATUS_RUNNING;
        list_push_back(&s->running, &req->sched_node);
        s->n_running++;
        if (first) {
            req->n_cached = CND_MIN(n_hit_tokens, req->n_prompt);
            req->t_admitted_us = now_us();
        }
        /* the prefix stats count what each admission asked for and got (not forks) */
        if (!forked) {
            out->n_prefix_queried_tokens += req->n_tokens;
            out->n_prefix_hit_tokens += n_hit_tokens;
        }
        add_entry(out, req, n_new);
        out->reqs[out->n_reqs - 1].first_scheduled = first;
        out->reqs[out->n_reqs - 1].n_prefix_hit = n_hit_tokens;
        budget -= n_new;
    }
    if (prefill_only && out->n_reqs == 0) { /* nothing could be admitted: decode after all */
        plan_running(s, out, n_snap, 0, &budget, &prefill_left, strict);
        prefill_only = false;
    }
    s->n_prefill_only = prefill_only && out->n_reqs > 0 ? s->n_prefill_only + 1 : 0;
    out->preempted = s->preempted;
    out->aborted = s->aborted;
    return 0;
}

void scheduler_update(struct scheduler *s, const struct sched_output *out, const int32_t *sampled)
{
    for (int32_t i = 0; i < out->n_reqs; i++) {
        const struct sched_req *e = &out->reqs[i];
        struct request *req = e->req;
        if (req->status != REQ_STATUS_RUNNING)
            continue;
        CND_ASSERT(req->n_computed == e->pos0);
        req->n_computed += e->n_new;
        if (e->sample) {
            if (req->n_tokens == req->cap_tokens) {
                req->cap_tokens = req->cap_tokens ? req->cap_tokens * 2 : 16;
                req->tokens = xrealloc(req->tokens, sizeof(int32_t) * (size_t)req->cap_tokens);
            }
            req->tokens[req->n_tokens++] = sampled[i];
            req->n_generated++;
        }
        kv_manager_cache_blocks(s->kvm, req);
    }
}
