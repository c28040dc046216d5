/* scheduler.h: which requests run in the next step and how many of their tokens (vLLM v1's
 * Scheduler). Continuous batching with chunked prefill: every step gives each running request
 * its next token(s) - one for a decoding request, a chunk for one still prefilling - within
 * max_num_batched_tokens, then admits waiting requests (FCFS) while sequences, tokens and KV
 * blocks last. When blocks run out, the most recently admitted running request is preempted: its
 * blocks are freed and it goes back to the front of the waiting queue, to be recomputed from its
 * tokens later (the prefix cache usually gives most of them back).
 *
 * There is no prefill/decode mode: a request just has n_computed tokens of K/V out of n_tokens,
 * and a step computes some of the rest. Engine thread only; never touches a backend, so tests
 * drive it with fake sampled tokens. The scheduler holds no references: whoever adds a request
 * keeps it alive until it is finished (scheduler_finish_request or an abort reported in
 * sched_output). */
#ifndef CINDER_SCHEDULER_H
#define CINDER_SCHEDULER_H

#include "cinder/common.h"
#include "cinder/request.h"

struct kv_manager;
struct scheduler;

struct scheduler_params {
    int32_t max_num_seqs;           /* running requests at most */
    int32_t max_num_batched_tokens; /* tokens per step (raised to max_num_seqs if below) */
    /* prompt tokens (prefill chunks and admissions) per step at most while requests are
     * decoding; 0 = only max_num_batched_tokens limits them. Short steps let a burst of new
     * requests get their first tokens a few at a time instead of all after one long step. */
    int32_t max_num_prefill_tokens;
};

/* One request's share of a step. */
struct sched_req {
    struct request *req; /* borrowed */
    int32_t pos0;        /* req->n_computed when scheduled: the step computes positions
                            pos0 .. pos0 + n_new - 1, i.e. req->tokens[pos0 .. pos0 + n_new) */
    int32_t n_new;
    bool sample;          /* pos0 + n_new == n_tokens: the last row's logits give the next token */
    bool first_scheduled; /* admitted for the first time in this step */
    int32_t n_prefix_hit; /* tokens found in the prefix cache when admitted in this step */
};

/* A step's plan: a plain value whose arrays belong to the scheduler, valid until the next
 * scheduler_schedule. */
struct sched_output {
    int32_t n_reqs;
    struct sched_req *reqs;
    int32_t n_tokens; /* sum of n_new */
    /* requests preempted in this step (now PREEMPTED at the front of the waiting queue) */
    int32_t n_preempted;
    struct request **preempted;
    /* requests found with cancel_requested: finished ABORTED, blocks freed, out of every queue;
     * the caller reports them and drops its reference */
    int32_t n_aborted;
    struct request **aborted;
    /* prefix cache effect of this step's admissions */
    int64_t n_prefix_queried_tokens, n_prefix_hit_tokens;
};

/* kvm is borrowed and must outlive the scheduler. */
struct scheduler *scheduler_create(const struct scheduler_params *params, struct kv_manager *kvm);
void scheduler_destroy(struct scheduler *s);

/* Queue req (status WAITING, req->tokens holding the prompt) at the back of the waiting queue. */
void scheduler_add_request(struct scheduler *s, struct request *req);
/* n > 1: queue req (status WAITING) at the FRONT of the waiting queue while it holds blocks
 * shared with its first choice (kv_manager_fork_prefix); admission allocates only the rest. */
void scheduler_add_forked(struct scheduler *s, struct request *req);
bool scheduler_has_work(const struct scheduler *s);
int32_t scheduler_n_running(const struct scheduler *s);
int32_t scheduler_n_waiting(const struct scheduler *s);

/* Plan the next step into *out. Aborts cancelled requests first, then schedules the running
 * requests (decodes before prefill chunks, oldest first), preempting the newest running ones when
 * blocks run out, then admits from the waiting queue (not in a step that preempted). Returns 0. */
int scheduler_schedule(struct scheduler *s, struct sched_output *out);
/* After the step ran: advance n_computed of every scheduled request, append sampled[i] to
 * reqs[i] where reqs[i].sample (n_generated++), and register newly full blocks in the prefix
 * cache. Finishing (stop, length) is the caller's decision: scheduler_finish_request. */
void scheduler_update(struct scheduler *s, const struct sched_output *out, const int32_t *sampled);
/* Take req out of its queue, free its blocks and set its status (a finished one). */
void scheduler_finish_request(struct scheduler *s, struct request *req, enum req_status status);
/* Any request still queued (running first, then waiting), or NULL: for shutdown. */
struct request *scheduler_any_request(const struct scheduler *s);

#endif
