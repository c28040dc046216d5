/* main.c: `cinder <command> ...`: dispatch to the subcommands in src/cli/. */
#include "cinder/common.h"
#include "cinder/log.h"
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
};

static const struct command commands[] = {
    {"serve", cli_serve_main, "run the OpenAI-compatible HTTP server"},
    {"generate", cli_generate_main, "generate text from a prompt (no HTTP)"},
    {"inspect", cli_inspect_main, "print what a GGUF file holds (--json for scripts)"},
    {"tokenize", cli_tokenize_main, "print the token ids of a text"},
    {"detokenize", cli_detokenize_main, "print the text of token ids"},
    {"eval", cli_eval_main, "teacher-forced top-k log-probabilities of given ids"},
    {"perplexity", cli_perplexity_main, "perplexity of a text file, like llama-perplexity"},
    {"bench", cli_bench_main, "prompt-processing and generation speed, like llama-bench"},
};

static void usage(FILE *f)
{
    fprintf(f, "cinder %s: a small, fast, OpenAI-compatible LLM inference server\n\n", CND_VERSION);
    fprintf(f, "usage: cinder <command> [options]   (cinder <command> --help for its options)\n\n");
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("cinder %s\n", CND_VERSION);
        return 0;
    }
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
        if (strcmp(argv[1], commands[i].name) == 0) {
            log_set_thread_name(commands[i].name);
            return commands[i].fn(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "cinder: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
