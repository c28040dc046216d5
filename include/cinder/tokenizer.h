/* tokenizer.h: text <-> token ids from GGUF metadata (tokenizer.ggml.*): SentencePiece-style
 * ("llama": score-ordered merges, byte fallback) and GPT-2 byte-level BPE ("gpt2": ranked merges
 * after a pre-tokenizer chosen by tokenizer.ggml.pre). Read-only after create: every function
 * here is safe to call from many threads at once. */
#ifndef CINDER_TOKENIZER_H
#define CINDER_TOKENIZER_H

#include "cinder/common.h"
#include "cinder/buf.h"

struct gguf_file;
struct tokenizer;

/* Token types as stored in tokenizer.ggml.token_type. */
enum token_type {
    TOKEN_TYPE_UNDEFINED = 0,
    TOKEN_TYPE_NORMAL = 1,
    TOKEN_TYPE_UNKNOWN = 2,
    TOKEN_TYPE_CONTROL = 3,
    TOKEN_TYPE_USER_DEFINED = 4,
    TOKEN_TYPE_UNUSED = 5,
    TOKEN_TYPE_BYTE = 6,
};

/* Build from g's metadata (copies what it needs: g may be closed afterwards). NULL + err when
 * the vocabulary is missing, malformed or of an unsupported model/pre type. */
struct tokenizer *tokenizer_create(const struct gguf_file *g, char *err);
void tokenizer_destroy(struct tokenizer *tok);

int32_t tokenizer_n_vocab(const struct tokenizer *tok);
int32_t tokenizer_bos(const struct tokenizer *tok); /* -1 when the model has none */
int32_t tokenizer_eos(const struct tokenizer *tok);
int32_t tokenizer_eot(const struct tokenizer *tok);
bool tokenizer_add_bos(const struct tokenizer *tok);
bool tokenizer_add_eos(const struct tokenizer *tok);
/* SPM vocabulary that puts "▁" in front of text (tokenizer.ggml.add_space_prefix, default on). */
bool tokenizer_add_space_prefix(const struct tokenizer *tok);
/* End of generation: EOS, EOT and the other end tokens the vocabulary marks (<|im_end|>, ...). */
bool tokenizer_is_eog(const struct tokenizer *tok, int32_t id);
enum token_type tokenizer_token_type(const struct tokenizer *tok, int32_t id);
/* The raw vocabulary string of id (e.g. "▁Hello", "<0x0A>", "Ġworld"); borrowed. */
const char *tokenizer_token_text(const struct tokenizer *tok, int32_t id);
/* Id of an exact vocabulary string, or -1. */
int32_t tokenizer_find(const struct tokenizer *tok, const char *text);

/* Encode text[0..len). add_special: add BOS/EOS as the metadata says. parse_special: text such
 * as "<|im_start|>" that spells a control or user-defined token becomes that token. Appends to
 * *ids (realloc'd; caller frees), updates *n_ids and *cap. Returns 0 or a negative status. */
int tokenizer_encode(const struct tokenizer *tok, const char *text, size_t len, bool add_special,
                     bool parse_special, int32_t **ids, size_t *n_ids, size_t *cap);

/* Bytes a token contributes to decoded text, appended to out: byte tokens give their byte,
 * SPM's "▁" a space, GPT-2's byte-level characters their bytes. Control tokens give nothing
 * unless special. The leading-space rule (dropping the space of the first SPM token) is the
 * caller's business: see tokenizer_decode. */
void tokenizer_token_to_piece(const struct tokenizer *tok, int32_t id, bool special,
                              struct buf *out);

/* Decode a whole sequence into out. special: include control tokens' text. For SPM vocabularies
 * with add_space_prefix the single space that encoding added in front is removed when
 * strip_leading_space is set: one leading space of ids[0]'s piece, like llama.cpp's detokenize
 * (which, when it drops a leading BOS as special, keeps the space: callers that want that quirk
 * pass ids + 1 and strip_leading_space = false, as `cinder detokenize` does). */
void tokenizer_decode(const struct tokenizer *tok, const int32_t *ids, size_t n, bool special,
                      bool strip_leading_space, struct buf *out);

/* Incremental decoding for streaming: push ids one by one; only whole UTF-8 sequences come
 * out, and the concatenation of all outputs (after detokenizer_flush) equals tokenizer_decode
 * of the same ids. The caller owns struct detokenizer (init/deinit). */
struct detokenizer {
    const struct tokenizer *tok;
    bool special;
    struct buf pending; /* bytes of an unfinished UTF-8 sequence */
};
void detokenizer_init(struct detokenizer *dt, const struct tokenizer *tok, bool special);
void detokenizer_deinit(struct detokenizer *dt);
/* Append the complete UTF-8 text that id finishes to out. */
void detokenizer_push(struct detokenizer *dt, int32_t id, struct buf *out);
/* End of stream: flush held bytes (an invalid trailing sequence comes out as U+FFFD). */
void detokenizer_flush(struct detokenizer *dt, struct buf *out);

#endif
