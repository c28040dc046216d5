/* test_sampler.c: token selection.
 *
 *  - sampler_argmax (greedy decoding, vectorized) against a plain loop on random logits of
 *    every length up to 40 and the vocabulary sizes we serve, with ties (lowest id wins), NaNs
 *    (never win; a NaN at id 0 wins as in the plain loop), infinities and signed zeros;
 *  - sampler_sample: temperature 0 and top_k 1 are argmax; logit_bias moves the choice; a seed
 *    makes sampling reproducible, and it only ever picks tokens inside top_k. */
#include "test.h"

#include "cinder/sampler.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint32_t rng(void)
{
    return (uint32_t)(test_xorshift64(&rng_state) >> 16);
}

/* logits of kind k: 0 spread, 1 few distinct values (many ties), 2 with NaNs and infinities,
 * 3 signed zeros and negatives */
static void fill(float *x, int32_t n, int k)
{
    for (int32_t i = 0; i < n; i++) {
        switch (k) {
        case 0: x[i] = (float)(rng() % 100000) / 1000.0f - 50.0f; break;
        case 1: x[i] = (float)(rng() % 4); break;
        case 2: {
            const uint32_t r = rng() % 10;
            x[i] = r == 0 ? NAN : r == 1 ? INFINITY : r == 2 ? -INFINITY : (float)(rng() % 7);
            break;
        }
        default: x[i] = rng() % 3 == 0 ? -0.0f : rng() % 2 ? 0.0f : -(float)(rng() % 5); break;
        }
    }
}

static void test_argmax(void)
{
    const int32_t big[] = {32000, 32001, 151936, 128256};
    float *x = malloc(sizeof(float) * 151936 * 2);
    int bad = 0, runs = 0;
    for (int k = 0; k < 4; k++) {
        for (int32_t n = 1; n <= 40; n++)
            for (int rep = 0; rep < 50; rep++, runs++) {
                fill(x, n, k);
                bad += sampler_argmax(x, n) != test_plain_argmax(x, n);
            }
        for (size_t b = 0; b < sizeof(big) / sizeof(big[0]); b++)
            for (int rep = 0; rep < 5; rep++, runs++) {
                fill(x, big[b], k);
                bad += sampler_argmax(x, big[b]) != test_plain_argmax(x, big[b]);
            }
    }
    CHECK_MSG(bad == 0, "%d of %d argmax results differ from the plain loop", bad, runs);

    /* the maximum only in the scalar tail, and a tie between the body and the tail */
    for (int32_t i = 0; i < 37; i++)
        x[i] = 1.0f;
    x[36] = 2.0f;
    CHECK(sampler_argmax(x, 37) == 36);
    x[36] = 1.0f;
    CHECK(sampler_argmax(x, 37) == 0);
    /* NaN at id 0 wins (nothing compares greater), elsewhere it never does */
    for (int32_t i = 0; i < 64; i++)
        x[i] = (float)i;
    x[0] = NAN;
    CHECK(sampler_argmax(x, 64) == 0);
    x[0] = 0.0f;
    x[63] = NAN;
    CHECK(sampler_argmax(x, 64) == 62);
    free(x);
}

static void test_sample(void)
{
    enum { N = 1000 };
    float logits[N], work[N];
    fill(logits, N, 0);
    const int32_t best = test_plain_argmax(logits, N);

    struct sampler_params p = sampler_default_params();
    p.temperature = 0.0f;
    struct sampler *s = sampler_create(&p, N);
    memcpy(work, logits, sizeof(work));
    CHECK(sampler_sample(s, work) == best);
    sampler_destroy(s);

    p.temperature = 1.0f;
    p.top_k = 1;
    p.has_seed = true;
    p.seed = 7;
    s = sampler_create(&p, N);
    memcpy(work, logits, sizeof(work));
    CHECK(sampler_sample(s, work) == best);
    sampler_destroy(s);

    /* a large logit bias on another token makes it the greedy choice */
    struct sampler_logit_bias lb = {.token = (best + 1) % N, .bias = 1000.0f};
    p = sampler_default_params();
    p.temperature = 0.0f;
    p.logit_bias = &lb;
    p.n_logit_bias = 1;
    s = sampler_create(&p, N);
    memcpy(work, logits, sizeof(work));
    CHECK(sampler_sample(s, work) == (best + 1) % N);
    sampler_destroy(s);

    /* seeded sampling: the same seed gives the same sequence, and picks stay in the top 5 */
    int32_t top5[5];
    memcpy(work, logits, sizeof(work));
    for (int t = 0; t < 5; t++) {
        top5[t] = test_plain_argmax(work, N);
        work[top5[t]] = -INFINITY;
    }
    int32_t seq[2][32];
    int outside = 0;
    for (int run = 0; run < 2; run++) {
        p = sampler_default_params();
        p.temperature = 1.5f;
        p.top_k = 5;
        p.has_seed = true;
        p.seed = 1234;
        s = sampler_create(&p, N);
        for (int t = 0; t < 32; t++) {
            memcpy(work, logits, sizeof(work));
            seq[run][t] = sampler_sample(s, work);
            bool in = false;
            for (int j = 0; j < 5; j++)
                in = in || seq[run][t] == top5[j];
            outside += !in;
        }
        sampler_destroy(s);
    }
    CHECK(memcmp(seq[0], seq[1], sizeof(seq[0])) == 0);
    CHECK_MSG(outside == 0, "%d picks outside top_k", outside);
}

int main(void)
{
    RUN(test_argmax);
    RUN(test_sample);
    return test_summary();
}
