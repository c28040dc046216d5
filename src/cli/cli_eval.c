/* cli_eval.c: `cinder eval -m MODEL --tokens "ID ID ..." [--top K]`: the given ids, nothing
 * added, teacher-forced in one pass; one JSON line per position with the K most likely next
 * tokens and their natural-log probabilities. */
#include "cinder/sampler.h"
#include "cinder/status.h"
#include "cinder/xalloc.h"
#include "cli/cli.h"
#include "cli/cli_session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_eval_main(int argc, char **argv)
{
    struct cli_model_args ma;
    cli_model_args_init(&ma);
    const char *tokens_arg = NULL;
    long top = 10;
    for (int i = 1; i < argc; i++) {
        int r = cli_model_args_parse(&ma, argc, argv, &i);
        if (r < 0)
            return 2;
        if (r > 0)
            continue;
        if (!strcmp(argv[i], "--tokens") && i + 1 < argc) {
            tokens_arg = argv[++i];
        } else if (!strcmp(argv[i], "--top") && i + 1 < argc) {
            top = cli_parse_long(argv[++i]);
            if (top < 1 || top > 1000) {
                fprintf(stderr, "cinder eval: --top must be 1..1000\n");
                return 2;
            }
        } else {
            fprintf(stderr,
                    "usage: cinder eval -m MODEL --tokens \"ID ID ...\" [--top K] [-t N]\n");
            return !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") ? 0 : 2;
        }
    }
    if (!tokens_arg) {
        fprintf(stderr, "cinder eval: --tokens is required\n");
        return 2;
    }
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    const char *p = tokens_arg;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n')
            p++;
        if (!*p)
            break;
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > INT32_MAX) {
            fprintf(stderr, "cinder eval: bad token id near '%.20s'\n", p);
            free(ids);
            return 2;
        }
        xgrow((void **)&ids, &cap, n + 1, sizeof(int32_t));
        ids[n++] = (int32_t)v;
        p = end;
    }
    if (n == 0) {
        fprintf(stderr, "cinder eval: no token ids given\n");
        return 2;
    }
    char err[CND_ERR_LEN];
    struct cli_session s;
    if (cli_session_open(&s, &ma, err) != 0) {
        fprintf(stderr, "cinder eval: %s\n", err);
        cli_session_close(&s);
        free(ids);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        if (ids[i] >= s.n_vocab) {
            fprintf(stderr, "cinder eval: token id %d is outside the vocabulary (%d)\n", ids[i],
                    s.n_vocab);
            free(ids);
            cli_session_close(&s);
            return 2;
        }
    }
    if ((int64_t)n > s.n_ctx) {
        fprintf(stderr, "cinder eval: %zu tokens exceed the context (%d)\n", n, s.n_ctx);
        free(ids);
        cli_session_close(&s);
        return 2;
    }
    if (top > s.n_vocab)
        top = s.n_vocab;
    float *logits = xmalloc(n * (size_t)s.n_vocab * sizeof(float));
    int rc = cli_session_run(&s, ids, (int32_t)n, 0, true, logits);
    struct token_logprob *tl = xmalloc((size_t)top * sizeof(*tl));
    for (size_t i = 0; i < n && rc == 0; i++) {
        sampler_logprobs(logits + i * (size_t)s.n_vocab, s.n_vocab, -1, (int32_t)top, tl);
        printf("{\"pos\":%zu,\"top\":[", i);
        for (long j = 0; j < top; j++)
            printf("%s[%d,%.9g]", j ? "," : "", tl[j].token, (double)tl[j].logprob);
        printf("]}\n");
    }
    if (rc != 0)
        fprintf(stderr, "cinder eval: forward failed: %s\n", cnd_status_str(rc));
    free(tl);
    free(logits);
    free(ids);
    cli_session_close(&s);
    return rc == 0 ? 0 : 1;
}
