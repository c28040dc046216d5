/* cli_tokenize.c: `cinder tokenize` (text -> ids on one line) and `cinder detokenize` (ids ->
 * the bytes of their pieces), over any GGUF with tokenizer metadata, vocab-only ones included.
 * Defaults follow the metadata (BOS for most llama vocabularies); special-token text is plain
 * text unless --special. */
#include "cinder/gguf.h"
#include "cinder/status.h"
#include "cinder/tokenizer.h"
#include "cinder/xalloc.h"
#include "cli/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tok_args {
    const char *model;
    bool no_bos;
    bool special;
    char **rest; /* positional arguments */
    int n_rest;
};

static void tok_usage(const char *cmd)
{
    if (strcmp(cmd, "tokenize") == 0)
        fprintf(stderr, "usage: cinder tokenize [-m MODEL] [--no-bos] [--special] [-t N] TEXT\n"
                        "  prints the token ids of TEXT on one line\n"
                        "  --no-bos   add no BOS/EOS (default: as the model's metadata says)\n"
                        "  --special  text like <|im_start|> becomes the control token\n");
    else
        fprintf(stderr, "usage: cinder detokenize [-m MODEL] [--special] ID...\n"
                        "  prints the text of the ids (no newline added)\n"
                        "  --special  include control tokens such as BOS/EOS\n");
}

/* Returns 0, 1 (bad usage, message printed) or -1 (help printed: exit 0). */
static int tok_parse_args(int argc, char **argv, struct tok_args *a)
{
    memset(a, 0, sizeof(*a));
    a->rest = xcalloc((size_t)argc + 1, sizeof(char *));
    bool only_positional = false;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (only_positional || s[0] != '-' || s[1] == 0 ||
            (s[1] >= '0' && s[1] <= '9')) { /* "-5" is a (bad) id, not a flag */
            a->rest[a->n_rest++] = argv[i];
        } else if (strcmp(s, "--") == 0) {
            only_positional = true;
        } else if (strcmp(s, "-m") == 0 || strcmp(s, "--model") == 0) {
            if (++i >= argc) {
                fprintf(stderr, "cinder %s: %s needs a value\n", argv[0], s);
                return 1;
            }
            a->model = argv[i];
        } else if (strcmp(s, "-t") == 0 || strcmp(s, "--threads") == 0) {
            if (++i >= argc || cli_parse_long(argv[i]) < 0) {
                fprintf(stderr, "cinder %s: %s needs a number\n", argv[0], s);
                return 1;
            }
        } else if (strcmp(s, "--no-bos") == 0) {
            a->no_bos = true;
        } else if (strcmp(s, "--special") == 0) {
            a->special = true;
        } else if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) {
            tok_usage(argv[0]);
            return -1;
        } else {
            fprintf(stderr, "cinder %s: unknown option %s\n", argv[0], s);
            tok_usage(argv[0]);
            return 1;
        }
    }
    if (!a->model)
        a->model = cli_default_model();
    if (!a->model) {
        fprintf(stderr, "cinder %s: no model given (-m MODEL)\n", argv[0]);
        return 1;
    }
    return 0;
}

static struct tokenizer *tok_load(const char *cmd, const char *path)
{
    char err[CND_ERR_LEN] = "";
    struct gguf_file *g = gguf_open(path, err);
    if (!g) {
        fprintf(stderr, "cinder %s: %s\n", cmd, err);
        return NULL;
    }
    struct tokenizer *tok = tokenizer_create(g, err);
    gguf_close(g);
    if (!tok)
        fprintf(stderr, "cinder %s: %s\n", cmd, err);
    return tok;
}

int cli_tokenize_main(int argc, char **argv)
{
    struct tok_args a;
    int rc = tok_parse_args(argc, argv, &a);
    if (rc != 0) {
        free(a.rest);
        return rc < 0 ? 0 : 2;
    }
    if (a.n_rest == 0) {
        fprintf(stderr, "cinder tokenize: no TEXT given\n");
        tok_usage(argv[0]);
        free(a.rest);
        return 2;
    }
    struct buf text; /* several words on the command line: joined by spaces */
    buf_init(&text);
    for (int i = 0; i < a.n_rest; i++) {
        if (i)
            buf_append(&text, " ", 1);
        buf_append_str(&text, a.rest[i]);
    }
    free(a.rest);
    struct tokenizer *tok = tok_load(argv[0], a.model);
    if (!tok) {
        buf_deinit(&text);
        return 1;
    }
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    rc = tokenizer_encode(tok, text.data, text.len, !a.no_bos, a.special, &ids, &n, &cap);
    if (rc < 0) {
        fprintf(stderr, "cinder tokenize: %s\n", cnd_status_str(rc));
    } else {
        struct buf out;
        buf_init(&out);
        for (size_t i = 0; i < n; i++)
            buf_appendf(&out, i ? " %d" : "%d", ids[i]);
        buf_append(&out, "\n", 1);
        fwrite(out.data, 1, out.len, stdout);
        buf_deinit(&out);
    }
    free(ids);
    buf_deinit(&text);
    tokenizer_destroy(tok);
    return rc < 0 ? 1 : 0;
}

int cli_detokenize_main(int argc, char **argv)
{
    struct tok_args a;
    int rc = tok_parse_args(argc, argv, &a);
    if (rc != 0) {
        free(a.rest);
        return rc < 0 ? 0 : 2;
    }
    struct tokenizer *tok = tok_load(argv[0], a.model);
    if (!tok) {
        free(a.rest);
        return 1;
    }
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    for (int i = 0; i < a.n_rest; i++) {
        /* ids may also come as one argument "1 15043 3186" */
        for (char *p = a.rest[i]; *p;) {
            while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n')
                p++;
            if (!*p)
                break;
            char *end;
            errno = 0;
            long v = strtol(p, &end, 10);
            if (end == p || errno || v < 0 || v >= tokenizer_n_vocab(tok) ||
                (*end && *end != ' ' && *end != ',' && *end != '\t' && *end != '\n')) {
                fprintf(stderr, "cinder detokenize: bad token id \"%s\" (vocabulary has %d)\n",
                        a.rest[i], tokenizer_n_vocab(tok));
                free(ids), free(a.rest);
                tokenizer_destroy(tok);
                return 2;
            }
            xgrow((void **)&ids, &cap, n + 1, sizeof(int32_t));
            ids[n++] = (int32_t)v;
            p = end;
        }
    }
    free(a.rest);
    /* llama.cpp's detokenize(remove_special = !special): a leading BOS and trailing EOS that the
     * vocabulary adds are dropped; the SPM space prefix of the first token is stripped unless a
     * BOS was dropped in front of it. */
    const int32_t *p = ids;
    bool strip = tokenizer_add_space_prefix(tok);
    if (!a.special && tokenizer_add_bos(tok) && n > 0 && p[0] == tokenizer_bos(tok)) {
        strip = false;
        p++, n--;
    }
    if (!a.special && tokenizer_add_eos(tok) && n > 0 && p[n - 1] == tokenizer_eos(tok))
        n--;
    struct buf out;
    buf_init(&out);
    tokenizer_decode(tok, p, n, a.special, strip, &out);
    fwrite(out.data, 1, out.len, stdout);
    buf_deinit(&out);
    free(ids);
    tokenizer_destroy(tok);
    return 0;
}
