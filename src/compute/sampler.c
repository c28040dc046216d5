/* sampler.c: per-request sampling state: logit bias, penalties, temperature, top-k, top-p,
 * min-p and a seeded xorshift64* draw (llama2.c's sampler, with the knobs of the OpenAI API
 * and vLLM). Unseeded requests take their seed from OpenSSL's RNG. */
#include "cinder/sampler.h"
#include "cinder/xalloc.h"

#include <math.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

struct sampler {
    struct sampler_params p;
    int32_t n_vocab;
    uint64_t rng;
    int32_t *count_output; /* per-token occurrences in the output */
    uint8_t *seen;         /* per-token: appeared in prompt or output */
    /* scratch */
    int32_t *idx;
    float *prob;
};

struct sampler_params sampler_default_params(void)
{
    struct sampler_params p = {
        .temperature = 1.0f,
        .top_k = 0,
        .top_p = 1.0f,
        .min_p = 0.0f,
        .repetition_penalty = 1.0f,
        .presence_penalty = 0.0f,
        .frequency_penalty = 0.0f,
        .seed = 0,
        .has_seed = false,
        .logit_bias = NULL,
        .n_logit_bias = 0,
    };
    return p;
}

struct sampler *sampler_create(const struct sampler_params *params, int32_t n_vocab)
{
    struct sampler *s = xcalloc(1, sizeof(*s));
    s->p = *params;
    if (params->n_logit_bias > 0) {
        s->p.logit_bias = xmalloc((size_t)params->n_logit_bias * sizeof(*params->logit_bias));
        memcpy(s->p.logit_bias, params->logit_bias,
               (size_t)params->n_logit_bias * sizeof(*params->logit_bias));
    }
    s->n_vocab = n_vocab;
    uint64_t seed = params->seed;
    if (!params->has_seed && RAND_bytes((unsigned char *)&seed, sizeof(seed)) != 1)
        seed = (uint64_t)(uintptr_t)s ^ 0x9e3779b97f4a7c15ull;
    s->rng = seed ? seed : 0x853c49e6748fea9bull;
    s->count_output = xcalloc((size_t)n_vocab, sizeof(int32_t));
    s->seen = xcalloc((size_t)n_vocab, 1);
    s->idx = xmalloc((size_t)n_vocab * sizeof(int32_t));
    s->prob = xmalloc((size_t)n_vocab * sizeof(float));
    return s;
}

void sampler_destroy(struct sampler *s)
{
    if (!s)
        return;
    free(s->p.logit_bias);
    free(s->count_output);
    free(s->seen);
    free(s->idx);
    free(s->prob);
    free(s);
}

void sampler_accept(struct sampler *s, int32_t token, bool is_prompt)
{
    if (token < 0 || token >= s->n_vocab)
        return;
    s->seen[token] = 1;
    if (!is_prompt)
        s->count_output[token]++;
}

static uint64_t rng_next(uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 0x2545F4914F6CDD1Dull;
}

static float rng_f32(uint64_t *state) /* [0, 1) */
{
    return (float)(rng_next(state) >> 40) / 16777216.0f;
}

static int32_t argmax_scalar(const float *logits, int32_t n_vocab)
{
    int32_t best = 0;
    for (int32_t i = 1; i < n_vocab; i++)
        if (logits[i] > logits[best])
            best = i;
    return best;
}

#if defined(__x86_64__)
/* The same answer in two vector passes: the largest value (NaNs never win: maxps returns its
 * second operand, the running maximum, when the first is NaN), then the first index holding it
 * (the lowest id among ties; -0 and +0 compare equal, as in the scalar loop). Logit 0 being NaN
 * is left to the scalar loop, where it wins by never being beaten. */
__attribute__((target("avx2"))) static int32_t argmax_avx2(const float *logits, int32_t n_vocab)
{
    if (logits[0] != logits[0] || n_vocab < 16)
        return argmax_scalar(logits, n_vocab);
    __m256 m = _mm256_set1_ps(logits[0]);
    int32_t i = 0;
    for (; i + 8 <= n_vocab; i += 8)
        m = _mm256_max_ps(_mm256_loadu_ps(logits + i), m);
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    float max = _mm_cvtss_f32(h);
    for (int32_t j = i; j < n_vocab; j++)
        max = logits[j] > max ? logits[j] : max;
    const __m256 mv = _mm256_set1_ps(max);
    for (i = 0; i + 8 <= n_vocab; i += 8) {
        const int bits =
            _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(logits + i), mv, _CMP_EQ_OQ));
        if (bits)
            return i + __builtin_ctz((unsigned)bits);
    }
    for (; i < n_vocab; i++)
        if (logits[i] == max)
            return i;
    return 0;
}
#endif

int32_t sampler_argmax(const float *logits, int32_t n_vocab)
{
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2"))
        return argmax_avx2(logits, n_vocab);
#endif
    return argmax_scalar(logits, n_vocab);
}

static int cmp_prob_desc(const void *a, const void *b, void *ctx)
{
    const float *prob = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (prob[x] != prob[y])
        return prob[x] > prob[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

int32_t sampler_sample(struct sampler *s, float *logits)
{
    const int32_t n = s->n_vocab;
    const struct sampler_params *p = &s->p;
    for (int32_t i = 0; i < p->n_logit_bias; i++) {
        int32_t t = p->logit_bias[i].token;
        if (t >= 0 && t < n)
            logits[t] += p->logit_bias[i].bias;
    }
    if (p->repetition_penalty != 1.0f || p->presence_penalty != 0.0f ||
        p->frequency_penalty != 0.0f) {
        for (int32_t i = 0; i < n; i++) {
            if (s->seen[i] && p->repetition_penalty != 1.0f)
                logits[i] = logits[i] > 0 ? logits[i] / p->repetition_penalty
                                          : logits[i] * p->repetition_penalty;
            if (s->count_output[i] > 0)
                logits[i] -= p->frequency_penalty * (float)s->count_output[i] + p->presence_penalty;
        }
    }
    if (p->temperature <= 0.0f)
        return sampler_argmax(logits, n);

    /* candidates sorted by logit, cut by top-k */
    float max = logits[sampler_argmax(logits, n)];
    for (int32_t i = 0; i < n; i++) {
        s->idx[i] = i;
        s->prob[i] = expf((logits[i] - max) / p->temperature);
    }
    qsort_r(s->idx, (size_t)n, sizeof(int32_t), cmp_prob_desc, s->prob);
    int32_t k = (p->top_k > 0 && p->top_k < n) ? p->top_k : n;
    double sum = 0;
    for (int32_t i = 0; i < k; i++)
        sum += s->prob[s->idx[i]];
    /* top-p: smallest prefix with mass >= top_p */
    if (p->top_p < 1.0f) {
        double acc = 0;
        for (int32_t i = 0; i < k; i++) {
            acc += s->prob[s->idx[i]] / sum;
            if (acc >= p->top_p) {
                k = i + 1;
                break;
            }
        }
    }
    /* min-p: drop tokens below min_p x the top probability */
    if (p->min_p > 0.0f) {
        float floor_p = p->min_p * s->prob[s->idx[0]];
        int32_t keep = 1;
        while (keep < k && s->prob[s->idx[keep]] >= floor_p)
            keep++;
        k = keep;
    }
    sum = 0;
    for (int32_t i = 0; i < k; i++)
        sum += s->prob[s->idx[i]];
    double r = (double)rng_f32(&s->rng) * sum, acc = 0;
    for (int32_t i = 0; i < k; i++) {
        acc += s->prob[s->idx[i]];
        if (r < acc)
            return s->idx[i];
    }
    return s->idx[k - 1];
}

float sampler_logprobs(const float *logits, int32_t n_vocab, int32_t token, int32_t top_n,
                       struct token_logprob *top)
{
    float max = logits[sampler_argmax(logits, n_vocab)];
    double sum = 0;
    for (int32_t i = 0; i < n_vocab; i++)
        sum += exp((double)(logits[i] - max));
    const double lse = (double)max + log(sum);
    /* top-n by insertion into a small sorted list (n <= 20 in the API, 10 for eval) */
    int32_t filled = 0;
    for (int32_t i = 0; i < n_vocab && top_n > 0; i++) {
        float lp = (float)((double)logits[i] - lse);
        if (filled == top_n && lp <= top[filled - 1].logprob)
            continue;
        int32_t j = filled < top_n ? filled++ : top_n - 1;
        while (j > 0 && top[j - 1].logprob < lp) {
            top[j] = top[j - 1];
            j--;
        }
        top[j].token = i;
        top[j].logprob = lp;
    }
    return token >= 0 && token < n_vocab ? (float)((double)logits[token] - lse) : -INFINITY;
}
