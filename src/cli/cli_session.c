/* cli_session.c: model + CPU backend + one sequence, for the one-shot commands. */
#include "cli/cli_session.h"
#include "cinder/backend.h"
#include "cinder/device.h"
#include "cinder/forward.h"
#include "cinder/model.h"
#include "cinder/status.h"
#include "cinder/xalloc.h"
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLI_DEFAULT_MAX_CTX 4096
#define CLI_BLOCK_SIZE      16

/* --device (auto|cpu|cuda|cuda:N); kept here so cli_model_args stays as it is. The default is
 * $CINDER_DEVICE, else auto. */
static const char *cli_device;

void cli_model_args_init(struct cli_model_args *a)
{
    memset(a, 0, sizeof(*a));
    a->weight_type = CND_DTYPE_Q4_K;
    a->n_batch = 512;
}

int cli_model_args_parse(struct cli_model_args *a, int argc, char **argv, int *i)
{
    const char *f = argv[*i];
    const char *val = *i + 1 < argc ? argv[*i + 1] : NULL;
#define NEED_VAL                                                                                   \
    if (!val) {                                                                                    \
        fprintf(stderr, "option %s needs a value\n", f);                                           \
        return -1;                                                                                 \
    }
    if (!strcmp(f, "-m") || !strcmp(f, "--model")) {
        NEED_VAL;
        a->model_path = val;
    } else if (!strcmp(f, "-t") || !strcmp(f, "--threads")) {
        NEED_VAL;
        long v = cli_parse_long(val);
        if (v < 0 || v > 1024) {
            fprintf(stderr, "bad thread count '%s'\n", val);
            return -1;
        }
        a->n_threads = (int)v;
    } else if (!strcmp(f, "-c") || !strcmp(f, "--ctx-size") || !strcmp(f, "--ctx")) {
        NEED_VAL;
        long v = cli_parse_long(val);
        if (v < 0 || v > (1 << 24)) {
            fprintf(stderr, "bad context size '%s'\n", val);
            return -1;
        }
        a->n_ctx = (int)v;
    } else if (!strcmp(f, "-b") || !strcmp(f, "--batch-size")) {
        NEED_VAL;
        long v = cli_parse_long(val);
        if (v < 1 || v > 65536) {
            fprintf(stderr, "bad batch size '%s'\n", val);
            return -1;
        }
        a->n_batch = (int)v;
    } else if (!strcmp(f, "--device")) {
        NEED_VAL;
        struct device_spec spec;
        char err[CND_ERR_LEN];
        if (device_parse(val, &spec, err) != 0) {
            fprintf(stderr, "%s\n", err);
            return -1;
        }
        cli_device = val;
    } else if (!strcmp(f, "--random-weights")) {
        NEED_VAL;
        a->random_preset = val;
    } else if (!strcmp(f, "--weight-type")) {
        NEED_VAL;
        if (dtype_from_name(val, &a->weight_type) != 0) {
            fprintf(stderr,
                    "unknown weight type '%s' (f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_k "
                    "q3_k q4_k q5_k q6_k)\n",
                    val);
            return -1;
        }
    } else {
        return 0;
    }
#undef NEED_VAL
    (*i)++;
    return 1;
}

int cli_session_open(struct cli_session *s, const struct cli_model_args *a, char *err)
{
    memset(s, 0, sizeof(*s));
    if (a->random_preset) {
        s->model = model_create_random(a->random_preset, a->weight_type, 42, err);
    } else {
        const char *path = a->model_path ? a->model_path : cli_default_model();
        if (!path) {
            err_set(err, "no model given: pass -m MODEL.gguf (the default "
                         "../shared/models/stories260K.gguf does not exist here)");
            return CND_EINVAL;
        }
        s->model = model_load(path, err);
    }
    if (!s->model)
        return CND_EINVAL;
    struct device_spec spec;
    struct device_choice ch;
    const char *dev = cli_device ? cli_device : getenv("CINDER_DEVICE");
    if (device_parse(dev, &spec, err) != 0 ||
        device_select(&spec, s->model->weight_bytes, &ch, err) != 0)
        return CND_EINVAL;
    s->backend = device_create_backend(&ch, a->n_threads, err);
    if (!s->backend)
        return ch.kind == DEVICE_CUDA ? CND_EDEVICE : CND_ENOMEM;
    int32_t n_ctx =
        a->n_ctx > 0 ? a->n_ctx : CND_MIN(s->model->hp.n_ctx_train, CLI_DEFAULT_MAX_CTX);
    s->n_ctx = n_ctx;
    s->block_size = CLI_BLOCK_SIZE;
    int32_t n_blocks = (n_ctx + s->block_size - 1) / s->block_size;
    s->block_table = xmalloc((size_t)n_blocks * sizeof(int32_t));
    for (int32_t i = 0; i < n_blocks; i++)
        s->block_table[i] = i;
    struct kv_cache_params kp = {
        .n_layer = s->model->hp.n_layer,
        .n_blocks = n_blocks,
        .block_size = s->block_size,
        .n_head_kv = s->model->hp.n_head_kv,
        .head_dim = s->model->hp.head_dim,
        .dtype = CND_DTYPE_F16,
    };
    int rc = s->backend->ops->load_model(s->backend, s->model, err);
    if (rc == 0)
        rc = s->backend->ops->kv_init(s->backend, &kp, err);
    if (rc != 0)
        return rc;
    s->fc = forward_ctx_create(s->model, s->backend, a->n_batch, err);
    if (!s->fc)
        return CND_ENOMEM;
    s->n_vocab = s->model->hp.n_vocab;
    return 0;
}

void cli_session_close(struct cli_session *s)
{
    forward_ctx_destroy(s->fc);
    backend_destroy(s->backend);
    model_destroy(s->model);
    free(s->block_table);
    memset(s, 0, sizeof(*s));
}

int cli_session_run(struct cli_session *s, const int32_t *tokens, int32_t n, int32_t pos0,
                    bool all_logits, float *out)
{
    if (n <= 0)
        return 0;
    if (pos0 + n > s->n_ctx)
        return CND_ERANGE;
    int32_t *pos = xmalloc((size_t)n * sizeof(int32_t));
    int32_t *seq = xcalloc((size_t)n, sizeof(int32_t));
    int64_t *slots = xmalloc((size_t)n * sizeof(int64_t));
    int32_t *rows = xmalloc((size_t)n * sizeof(int32_t));
    /* a call of two or more tokens is a prompt pass (llama.cpp's prompt summation order) */
    uint8_t *prefill = xmalloc((size_t)n);
    memset(prefill, n >= 2, (size_t)n);
    for (int32_t i = 0; i < n; i++) {
        pos[i] = pos0 + i;
        slots[i] = pos0 + i; /* block table is the identity */
        rows[i] = i;
    }
    const int32_t *tables[1] = {s->block_table};
    struct forward_batch b = {
        .n_tokens = n,
        .tokens = tokens,
        .positions = pos,
        .seq_idx = seq,
        .slots = slots,
        .n_seqs = 1,
        .block_tables = tables,
        .n_out = all_logits ? n : 1,
        .out_rows = all_logits ? rows : rows + n - 1,
        .prefill = prefill,
    };
    int rc = forward_run(s->fc, &b, out);
    free(pos), free(seq), free(slots), free(rows), free(prefill);
    return rc;
}
