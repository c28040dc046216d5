/* gen_params.h: what one request asks of generation: sampling, length, stop strings, logprobs.
 * A plain value struct, filled by server/openai.c, copied into the engine's request. It owns
 * its stop strings and sampling.logit_bias (freed by gen_params_deinit), so a copy must go
 * through gen_params_copy. Header-only so the engine layer needs nothing from the server. */
#ifndef CINDER_GEN_PARAMS_H
#define CINDER_GEN_PARAMS_H

#include "cinder/common.h"
#include "cinder/sampler.h"
#include "cinder/xalloc.h"

#include <stdlib.h>
#include <string.h>

#define GEN_MAX_STOP 4 /* OpenAI's limit on "stop" */

struct gen_params {
    struct sampler_params sampling;
    int32_t max_tokens; /* -1 = until EOS or the end of the context */
    int32_t min_tokens; /* EOS and stop strings are ignored before this many */
    bool ignore_eos;
    char *stop[GEN_MAX_STOP]; /* owned, non-empty strings */
    int32_t n_stop;
    bool logprobs;        /* return the sampled token's logprob */
    int32_t top_logprobs; /* and this many alternatives (0..20) */
    int32_t n;            /* choices per request; only 1 for now */
};

static inline struct gen_params gen_params_default(void)
{
    struct gen_params p;
    memset(&p, 0, sizeof(p));
    /* spelled out rather than sampler_default_params(): these are OpenAI's defaults, which
     * the API promises whatever the sampler's own defaults become */
    p.sampling.temperature = 1.0f;
    p.sampling.top_k = 0;
    p.sampling.top_p = 1.0f;
    p.sampling.min_p = 0.0f;
    p.sampling.repetition_penalty = 1.0f;
    p.sampling.presence_penalty = 0.0f;
    p.sampling.frequency_penalty = 0.0f;
    p.sampling.has_seed = false;
    p.sampling.logit_bias = NULL;
    p.sampling.n_logit_bias = 0;
    p.max_tokens = -1;
    p.n = 1;
    return p;
}

static inline void gen_params_deinit(struct gen_params *p)
{
    for (int32_t i = 0; i < p->n_stop; i++)
        free(p->stop[i]);
    p->n_stop = 0;
    free(p->sampling.logit_bias);
    p->sampling.logit_bias = NULL;
    p->sampling.n_logit_bias = 0;
}

/* Deep copy: dst gets its own stop strings and logit_bias. */
static inline void gen_params_copy(struct gen_params *dst, const struct gen_params *src)
{
    *dst = *src;
    for (int32_t i = 0; i < src->n_stop; i++)
        dst->stop[i] = xstrdup(src->stop[i]);
    if (src->sampling.n_logit_bias > 0) {
        size_t sz = sizeof(*src->sampling.logit_bias) * (size_t)src->sampling.n_logit_bias;
        dst->sampling.logit_bias = xmalloc(sz);
        memcpy(dst->sampling.logit_bias, src->sampling.logit_bias, sz);
    } else {
        dst->sampling.logit_bias = NULL;
    }
}

#endif
