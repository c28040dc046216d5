/* cli_perplexity.c: `cinder perplexity -m MODEL -f FILE [--ctx N]`, computed as llama-perplexity
 * does: the whole text tokenized once (BOS added when the vocab says so), cut into
 * non-overlapping chunks of n_ctx tokens whose first token is replaced by BOS, and only the
 * second half of each chunk scored (positions n_ctx/2 .. n_ctx-2 predicting the next token). */
#include "cinder/log.h"
#include "cinder/model.h"
#include "cinder/status.h"
#include "cinder/tokenizer.h"
#include "cinder/xalloc.h"
#include "cli/cli.h"
#include "cli/cli_session.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *read_file(const char *path, size_t *len, char *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        err_set(err, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct buf_local {
        char *p;
        size_t n, cap;
    } b = {NULL, 0, 0};
    char chunk[65536];
    size_t r;
    while ((r = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        xgrow((void **)&b.p, &b.cap, b.n + r + 1, 1);
        memcpy(b.p + b.n, chunk, r);
        b.n += r;
    }
    fclose(f);
    xgrow((void **)&b.p, &b.cap, b.n + 1, 1);
    b.p[b.n] = 0;
    *len = b.n;
    return b.p;
}

int cli_perplexity_main(int argc, char **argv)
{
    struct cli_model_args ma;
    cli_model_args_init(&ma);
    const char *file = NULL;
    for (int i = 1; i < argc; i++) {
        int r = cli_model_args_parse(&ma, argc, argv, &i);
        if (r < 0)
            return 2;
        if (r > 0)
            continue;
        if ((!strcmp(argv[i], "-f") || !strcmp(argv[i], "--file")) && i + 1 < argc) {
            file = argv[++i];
        } else {
            fprintf(stderr, "usage: cinder perplexity -m MODEL -f TEXT_FILE [--ctx N] [-t N]\n");
            return !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") ? 0 : 2;
        }
    }
    if (!file) {
        fprintf(stderr, "cinder perplexity: -f TEXT_FILE is required\n");
        return 2;
    }
    int32_t n_ctx = ma.n_ctx > 0 ? ma.n_ctx : 512;
    ma.n_ctx = n_ctx;
    if (ma.n_batch < n_ctx)
        ma.n_batch = n_ctx;
    if (log_level_current < LL_WARN && !getenv("CINDER_LOG_LEVEL"))
        log_set_level(LL_WARN);
    char err[CND_ERR_LEN];
    size_t len;
    char *text = read_file(file, &len, err);
    if (!text) {
        fprintf(stderr, "cinder perplexity: %s\n", err);
        return 1;
    }
    if (len > 0 && text[len - 1] == '\n')
        text[--len] = 0;
    struct cli_session s;
    if (cli_session_open(&s, &ma, err) != 0) {
        fprintf(stderr, "cinder perplexity: %s\n", err);
        cli_session_close(&s);
        free(text);
        return 1;
    }
    const struct tokenizer *tok = s.model->tok;
    int32_t *ids = NULL;
    size_t n_ids = 0, cap = 0;
    tokenizer_encode(tok, text, len, true, false, &ids, &n_ids, &cap);
    free(text);
    if ((int64_t)n_ids < 2 * (int64_t)n_ctx) {
        fprintf(stderr, "cinder perplexity: need at least %d tokens (2 x ctx), the text has %zu\n",
                2 * n_ctx, n_ids);
        free(ids);
        cli_session_close(&s);
        return 1;
    }
    const int32_t n_chunk = (int32_t)(n_ids / (size_t)n_ctx), first = n_ctx / 2;
    const bool add_bos = tokenizer_add_bos(tok) && tokenizer_bos(tok) >= 0;
    fprintf(stderr, "perplexity: %zu tokens, %d chunks of %d, scoring %d per chunk\n", n_ids,
            n_chunk, n_ctx, n_ctx - first - 1);
    float *logits = xmalloc((size_t)n_ctx * (size_t)s.n_vocab * sizeof(float));
    int32_t *chunk = xmalloc((size_t)n_ctx * sizeof(int32_t));
    double nll = 0, nll2 = 0;
    int64_t count = 0;
    int rc = 0;
    for (int32_t k = 0; k < n_chunk && rc == 0; k++) {
        memcpy(chunk, ids + (size_t)k * n_ctx, (size_t)n_ctx * sizeof(int32_t));
        if (add_bos)
            chunk[0] = tokenizer_bos(tok);
        rc = cli_session_run(&s, chunk, n_ctx, 0, true, logits);
        for (int32_t p = first; p < n_ctx - 1 && rc == 0; p++) {
            const float *l = logits + (size_t)p * s.n_vocab;
            float max = l[0];
            for (int32_t j = 1; j < s.n_vocab; j++)
                max = l[j] > max ? l[j] : max;
            double sum = 0;
            for (int32_t j = 0; j < s.n_vocab; j++)
                sum += (double)expf(l[j] - max);
            double v = -((double)l[chunk[p + 1]] - max - log(sum));
            nll += v;
            nll2 += v * v;
            count++;
        }
        printf("[%d]%.4f,", k + 1, exp(nll / (double)count));
        fflush(stdout);
    }
    printf("\n");
    if (rc == 0) {
        double mean = nll / (double)count, mean2 = nll2 / (double)count;
        double ppl = exp(mean);
        double err_ppl = ppl * sqrt((mean2 - mean * mean) / (double)(count - 1));
        printf("Final estimate: PPL = %.4f +/- %.5f\n", ppl, err_ppl);
        printf("mean NLL = %.6f over %lld tokens\n", mean, (long long)count);
    } else {
        fprintf(stderr, "cinder perplexity: forward failed: %s\n", cnd_status_str(rc));
    }
    free(chunk);
    free(logits);
    free(ids);
    cli_session_close(&s);
    return rc == 0 ? 0 : 1;
}
