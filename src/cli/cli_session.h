/* cli_session.h: one model + CPU backend + a single sequence's KV cache, for the one-shot
 * commands (generate, eval, perplexity, bench). The sequence's block table is simply 0..n-1:
 * the same paged attention path the server uses, with a trivial table. */
#ifndef CINDER_CLI_SESSION_H
#define CINDER_CLI_SESSION_H

#include "cinder/common.h"
#include "cinder/tensor.h"

struct model;
struct backend;
struct forward_ctx;

struct cli_model_args {
    const char *model_path;
    const char *random_preset;  /* --random-weights */
    enum cnd_dtype weight_type; /* --weight-type */
    int n_threads;              /* -t */
    int n_ctx;                  /* -c, 0 = model's own (capped) */
    int n_batch;                /* tokens per forward slice */
};

struct cli_session {
    struct model *model;
    struct backend *backend;
    struct forward_ctx *fc;
    int32_t n_ctx;
    int32_t block_size;
    int32_t *block_table;
    int32_t n_vocab;
};

void cli_model_args_init(struct cli_model_args *a);
/* Consume a shared flag at argv[*i] (-m, -t, -c, --random-weights, --weight-type, -b). Returns 1
 * if consumed, 0 if not a shared flag, -1 on a bad value (message printed). */
int cli_model_args_parse(struct cli_model_args *a, int argc, char **argv, int *i);
int cli_session_open(struct cli_session *s, const struct cli_model_args *a, char *err);
void cli_session_close(struct cli_session *s);
/* Run tokens at positions pos0.. of the sequence; logits for the last n_out rows (1 or n)
 * into out (n_out x n_vocab). */
int cli_session_run(struct cli_session *s, const int32_t *tokens, int32_t n, int32_t pos0,
                    bool all_logits, float *out);

#endif
