/* sampler.h: turns one row of logits into the next token: logit bias, repetition/presence/
 * frequency penalties, temperature, top-k, top-p, min-p, then a seeded draw (or argmax at
 * temperature 0, ties to the lowest id). Per-request state; engine thread only. */
#ifndef CINDER_SAMPLER_H
#define CINDER_SAMPLER_H

#include "cinder/common.h"

struct sampler_logit_bias {
    int32_t token;
    float bias;
};

struct sampler_params {
    float temperature;        /* 0 = greedy */
    int32_t top_k;            /* <= 0: off */
    float top_p;              /* 1: off */
    float min_p;              /* 0: off */
    float repetition_penalty; /* 1: off (llama.cpp/vLLM style, over prompt + output) */
    float presence_penalty;   /* 0: off (OpenAI, over output) */
    float frequency_penalty;  /* 0: off (OpenAI, over output) */
    uint64_t seed;            /* used when has_seed */
    bool has_seed;
    struct sampler_logit_bias *logit_bias; /* owned by whoever owns the params */
    int32_t n_logit_bias;
};

struct sampler_params sampler_default_params(void);

struct sampler;

/* Copies params (including the logit bias list). n_vocab: logits per row. */
struct sampler *sampler_create(const struct sampler_params *params, int32_t n_vocab);
void sampler_destroy(struct sampler *s);
/* Record a token for the penalties: prompt tokens count for repetition_penalty only. */
void sampler_accept(struct sampler *s, int32_t token, bool is_prompt);
/* Pick the next token from logits (modified in place). */
int32_t sampler_sample(struct sampler *s, float *logits);

/* Natural-log probabilities from raw logits (log-softmax, float max and double sum as
 * llama.cpp): the logprob of `token` and the top n (most likely first, ties by lowest id). */
struct token_logprob {
    int32_t token;
    float logprob;
};
float sampler_logprobs(const float *logits, int32_t n_vocab, int32_t token, int32_t top_n,
                       struct token_logprob *top);
/* Greedy choice: highest logit, lowest id on ties. */
int32_t sampler_argmax(const float *logits, int32_t n_vocab);
#endif
