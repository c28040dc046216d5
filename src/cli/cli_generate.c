/* cli_generate.c: `cinder generate`: tokenize a prompt, run it in one batch, then decode one
 * token at a time, printing text as it completes (whole UTF-8 sequences only). */
#include "cinder/buf.h"
#include "cinder/log.h"
#include "cinder/model.h"
#include "cinder/sampler.h"
#include "cinder/status.h"
#include "cinder/tokenizer.h"
#include "cinder/xalloc.h"
#include "cli/cli.h"
#include "cli/cli_session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void generate_usage(FILE *f)
{
    fprintf(f,
            "usage: cinder generate -m MODEL -p PROMPT [-n N] [-t THREADS] [-c CTX]\n"
            "         [--temperature T] [--top-k K] [--top-p P] [--min-p P] [--seed S] [--ids]\n"
            "         [--random-weights PRESET --weight-type TYPE]\n"
            "Prints only the generated text (or, with --ids, the generated token ids).\n"
            "Temperature 0 is greedy (ties to the lowest id). Default: -n 128, temperature 0.8.\n");
}

static int parse_float(const char *s, float *out)
{
    char *end;
    float v = strtof(s, &end);
    if (!*s || *end)
        return -1;
    *out = v;
    return 0;
}

int cli_generate_main(int argc, char **argv)
{
    struct cli_model_args ma;
    cli_model_args_init(&ma);
    const char *prompt = NULL;
    long n_predict = 128;
    bool print_ids = false;
    struct sampler_params sp = sampler_default_params();
    sp.temperature = 0.8f;
    for (int i = 1; i < argc; i++) {
        int r = cli_model_args_parse(&ma, argc, argv, &i);
        if (r < 0)
            return 2;
        if (r > 0)
            continue;
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(f, "-h") || !strcmp(f, "--help")) {
            generate_usage(stdout);
            return 0;
        } else if (!strcmp(f, "--ids")) {
            print_ids = true;
            continue;
        } else if (!v) {
            fprintf(stderr, "cinder generate: unknown option or missing value '%s'\n", f);
            generate_usage(stderr);
            return 2;
        }
        bool bad = false;
        if (!strcmp(f, "-p") || !strcmp(f, "--prompt"))
            prompt = v;
        else if (!strcmp(f, "-n") || !strcmp(f, "--n-predict"))
            bad = (n_predict = cli_parse_long(v)) < 0;
        else if (!strcmp(f, "--temperature") || !strcmp(f, "--temp"))
            bad = parse_float(v, &sp.temperature) != 0 || sp.temperature < 0;
        else if (!strcmp(f, "--top-k")) {
            long k = cli_parse_long(v);
            bad = k < 0;
            sp.top_k = (int32_t)k;
        } else if (!strcmp(f, "--top-p"))
            bad = parse_float(v, &sp.top_p) != 0 || sp.top_p <= 0 || sp.top_p > 1;
        else if (!strcmp(f, "--min-p"))
            bad = parse_float(v, &sp.min_p) != 0 || sp.min_p < 0 || sp.min_p > 1;
        else if (!strcmp(f, "--seed")) {
            char *end;
            sp.seed = strtoull(v, &end, 10);
            sp.has_seed = true;
            bad = !*v || *end;
        } else {
            fprintf(stderr, "cinder generate: unknown option '%s'\n", f);
            generate_usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "cinder generate: bad value '%s' for %s\n", v, f);
            return 2;
        }
        i++;
    }
    if (!prompt) {
        fprintf(stderr, "cinder generate: -p PROMPT is required\n");
        generate_usage(stderr);
        return 2;
    }
    if (log_level_current < LL_WARN && !getenv("CINDER_LOG_LEVEL"))
        log_set_level(LL_WARN);
    char err[CND_ERR_LEN];
    struct cli_session s;
    if (cli_session_open(&s, &ma, err) != 0) {
        fprintf(stderr, "cinder generate: %s\n", err);
        cli_session_close(&s);
        return 1;
    }
    const struct tokenizer *tok = s.model->tok;
    int32_t *ids = NULL;
    size_t n_ids = 0, cap = 0;
    if (tokenizer_encode(tok, prompt, strlen(prompt), true, false, &ids, &n_ids, &cap) != 0) {
        fprintf(stderr, "cinder generate: cannot tokenize the prompt\n");
        cli_session_close(&s);
        return 1;
    }
    if (n_ids == 0) {
        if (tokenizer_bos(tok) < 0) {
            fprintf(stderr, "cinder generate: empty prompt and the model has no BOS token\n");
            free(ids);
            cli_session_close(&s);
            return 1;
        }
        xgrow((void **)&ids, &cap, 1, sizeof(int32_t));
        ids[n_ids++] = tokenizer_bos(tok);
    }
    if ((int64_t)n_ids + n_predict > s.n_ctx)
        n_predict = s.n_ctx - (long)n_ids;
    if (n_predict < 0) {
        fprintf(stderr, "cinder generate: prompt of %zu tokens exceeds the context (%d)\n", n_ids,
                s.n_ctx);
        free(ids);
        cli_session_close(&s);
        return 1;
    }
    struct sampler *smp = sampler_create(&sp, s.n_vocab);
    for (size_t i = 0; i < n_ids; i++)
        sampler_accept(smp, ids[i], true);
    float *logits = xmalloc((size_t)s.n_vocab * sizeof(float));
    struct detokenizer dt;
    detokenizer_init(&dt, tok, false);
    struct buf text;
    buf_init(&text);
    int rc = cli_session_run(&s, ids, (int32_t)n_ids, 0, false, logits);
    int32_t pos = (int32_t)n_ids;
    bool first_id = true;
    for (long i = 0; i < n_predict && rc == 0; i++) {
        int32_t t = sampler_sample(smp, logits);
        sampler_accept(smp, t, false);
        if (print_ids) {
            printf(first_id ? "%d" : " %d", t);
            first_id = false;
        }
        if (tokenizer_is_eog(tok, t))
            break;
        if (!print_ids) {
            buf_reset(&text);
            detokenizer_push(&dt, t, &text);
            fwrite(text.data ? text.data : "", 1, text.len, stdout);
            fflush(stdout);
        }
        if (i + 1 < n_predict)
            rc = cli_session_run(&s, &t, 1, pos++, false, logits);
    }
    if (!print_ids) {
        buf_reset(&text);
        detokenizer_flush(&dt, &text);
        fwrite(text.data ? text.data : "", 1, text.len, stdout);
    }
    putchar('\n');
    if (rc != 0)
        fprintf(stderr, "cinder generate: forward failed: %s\n", cnd_status_str(rc));
    buf_deinit(&text);
    detokenizer_deinit(&dt);
    free(logits);
    free(ids);
    sampler_destroy(smp);
    cli_session_close(&s);
    return rc == 0 ? 0 : 1;
}
