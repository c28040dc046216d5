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

#endif
