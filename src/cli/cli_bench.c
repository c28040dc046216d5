/* cli_bench.c: `cinder bench`: prompt-processing (one batch of -p tokens from an empty cache)
 * and generation (-n tokens one at a time) speed like llama-bench's pp512 / tg128: a warm-up,
 * then the median of -r repetitions. Token ids are seeded random, so any model works. */
#include "cinder/backend.h"
#include "cinder/clock.h"
#include "cinder/log.h"
#include "cinder/model.h"
#include "cinder/status.h"
#include "cinder/xalloc.h"
#include "cli/cli.h"
#include "cli/cli_session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int cli_bench_main(int argc, char **argv)
{
    struct cli_model_args ma;
    cli_model_args_init(&ma);
    long n_prompt = 512, n_gen = 128, reps = 3;
    for (int i = 1; i < argc; i++) {
        int r = cli_model_args_parse(&ma, argc, argv, &i);
        if (r < 0)
            return 2;
        if (r > 0)
            continue;
        long *dst = NULL;
        if (!strcmp(argv[i], "-p") || !strcmp(argv[i], "--n-prompt"))
            dst = &n_prompt;
        else if (!strcmp(argv[i], "-n") || !strcmp(argv[i], "--n-gen"))
            dst = &n_gen;
        else if (!strcmp(argv[i], "-r") || !strcmp(argv[i], "--repetitions"))
            dst = &reps;
        if (!dst || i + 1 >= argc || (*dst = cli_parse_long(argv[i + 1])) < 0) {
            fprintf(stderr, "usage: cinder bench [-m MODEL | --random-weights PRESET --weight-type "
                            "TYPE] [-p 512] [-n 128] [-t THREADS] [-r REPS]\n"
                            "       [--device auto|cpu|cuda|cuda:N]\n");
            return !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") ? 0 : 2;
        }
        i++;
    }
    if (reps < 1)
        reps = 1;
    if (ma.n_batch < n_prompt)
        ma.n_batch = (int)n_prompt;
    if (ma.n_ctx <= 0)
        ma.n_ctx = (int)(n_prompt > n_gen ? n_prompt : n_gen) + 16;
    if (log_level_current < LL_WARN && !getenv("CINDER_LOG_LEVEL"))
        log_set_level(LL_WARN);
    char err[CND_ERR_LEN];
    struct cli_session s;
    if (cli_session_open(&s, &ma, err) != 0) {
        fprintf(stderr, "cinder bench: %s\n", err);
        cli_session_close(&s);
        return 1;
    }
    fprintf(stderr, "model %s: %.1f M params, %.1f MiB of weights\n", s.model->name,
            (double)s.model->n_params / 1e6, (double)s.model->weight_bytes / 1048576.0);
    long n_max = n_prompt > n_gen ? n_prompt : n_gen;
    int32_t *tokens = xmalloc((size_t)(n_max + 1) * sizeof(int32_t));
    uint64_t r = 12345;
    for (long i = 0; i < n_max; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        tokens[i] = (int32_t)((r >> 33) % (uint64_t)s.n_vocab);
    }
    float *logits = xmalloc((size_t)s.n_vocab * sizeof(float));
    double *t = xmalloc((size_t)(reps + 1) * sizeof(double));
    int rc = 0;
    if (n_prompt > 0) {
        for (long rep = -1; rep < reps && rc == 0; rep++) { /* rep -1: warm-up */
            int64_t t0 = now_us();
            rc = cli_session_run(&s, tokens, (int32_t)n_prompt, 0, false, logits);
            if (rep >= 0)
                t[rep] = (double)n_prompt * 1e6 / (double)(now_us() - t0);
        }
        qsort(t, (size_t)reps, sizeof(double), cmp_double);
        if (rc == 0)
            printf("pp%ld %.1f tok/s\n", n_prompt, t[reps / 2]);
        fflush(stdout);
    }
    if (n_gen > 0) {
        for (long rep = -1; rep < reps && rc == 0; rep++) {
            int64_t t0 = now_us();
            for (long i = 0; i < n_gen && rc == 0; i++)
                rc = cli_session_run(&s, &tokens[i], 1, (int32_t)i, false, logits);
            if (rep >= 0)
                t[rep] = (double)n_gen * 1e6 / (double)(now_us() - t0);
        }
        qsort(t, (size_t)reps, sizeof(double), cmp_double);
        if (rc == 0)
            printf("tg%ld %.1f tok/s\n", n_gen, t[reps / 2]);
    }
    if (rc != 0)
        fprintf(stderr, "cinder bench: forward failed: %s\n", cnd_status_str(rc));
    free(t);
    free(logits);
    free(tokens);
    cli_session_close(&s);
    return rc == 0 ? 0 : 1;
}
