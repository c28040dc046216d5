/* model.h: a loaded model: hyper-parameters and the weight table by role (llama2.c's
 * TransformerWeights), for the llama family (llama, qwen2, qwen3). Weights are views into the
 * mmap'd GGUF (or into an owned buffer for --random-weights); the model owns both and the
 * tokenizer. Read-only after load: safe to share between threads. */
#ifndef CINDER_MODEL_H
#define CINDER_MODEL_H

#include "cinder/common.h"
#include "cinder/tensor.h"

struct gguf_file;
struct tokenizer;

enum model_arch { MODEL_ARCH_LLAMA = 0, MODEL_ARCH_QWEN2 = 1, MODEL_ARCH_QWEN3 = 2 };

enum rope_type {
    ROPE_TYPE_NORM = 0, /* rotate adjacent pairs (x[2i], x[2i+1]): llama */
    ROPE_TYPE_NEOX = 2, /* rotate halves (x[i], x[i + n_rot/2]): qwen2, qwen3 */
};

struct model_hparams {
    enum model_arch arch;
    int32_t n_vocab;
    int32_t n_ctx_train;
    int32_t n_embd;
    int32_t n_ff;
    int32_t n_layer;
    int32_t n_head;
    int32_t n_head_kv;
    int32_t head_dim; /* n_embd_head_k (== v) */
    int32_t n_rot;
    float rope_freq_base;
    float rope_freq_scale; /* 1 / linear scaling factor */
    enum rope_type rope_type;
    float rms_eps;
    bool tied_output; /* output.weight absent: reuse token_embd */
};

struct model_layer {
    struct tensor attn_norm, wq, wk, wv, wo;
    struct tensor bq, bk, bv;               /* qwen2 only (data NULL otherwise) */
    struct tensor attn_q_norm, attn_k_norm; /* qwen3 only */
    struct tensor ffn_norm, ffn_gate, ffn_up, ffn_down;
};

struct model {
    char *name; /* file name without .gguf, or the preset name */
    struct model_hparams hp;
    struct tensor tok_embd, output_norm, output;
    struct tensor rope_freqs; /* optional per-dimension frequency factors (Llama 3.1) */
    struct model_layer *layers;
    struct tokenizer *tok;
    struct gguf_file *gguf; /* NULL for random weights */
    void *owned_weights;    /* random weights storage */
    size_t weight_bytes;    /* bytes of all weight tensors */
    int64_t n_params;
};

/* Load a GGUF model. NULL + err naming the file and the problem (unsupported architecture or
 * tensor layout lists what is supported). */
struct model *model_load(const char *path, char *err);

/* A seeded random-weight model of a named shape ("mid", "tiny", "llama3-8b", "qwen2.5-7b") with
 * every weight matrix of type wtype and a placeholder vocabulary (256 byte tokens + synthetic
 * pieces) so text can still be decoded. */
struct model *model_create_random(const char *preset, enum cnd_dtype wtype, uint64_t seed,
                                  char *err);
void model_destroy(struct model *m);

const char *model_arch_name(enum model_arch arch);

#endif
