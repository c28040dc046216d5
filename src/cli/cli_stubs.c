/* cli_stubs.c: subcommands that do not exist yet say so clearly (each moves to its own file
 * when it is written). */
#include "cli/cli.h"

#include <stdio.h>

static int cli_not_yet(const char *name)
{
    fprintf(stderr, "cinder %s: not implemented yet in this build\n", name);
    return 2;
}

int cli_tokenize_main(int argc, char **argv)
{
    (void)argc, (void)argv;
    return cli_not_yet("tokenize");
}

int cli_detokenize_main(int argc, char **argv)
{
    (void)argc, (void)argv;
    return cli_not_yet("detokenize");
}

int cli_generate_main(int argc, char **argv)
{
    (void)argc, (void)argv;
    return cli_not_yet("generate");
}

int cli_eval_main(int argc, char **argv)
{
    (void)argc, (void)argv;
    return cli_not_yet("eval");
}

int cli_perplexity_main(int argc, char **argv)
{
    (void)argc, (void)argv;
    return cli_not_yet("perplexity");
}

int cli_bench_main(int argc, char **argv)
{
    (void)argc, (void)argv;
    return cli_not_yet("bench");
}

int cli_serve_main(int argc, char **argv)
{
    (void)argc, (void)argv;
    return cli_not_yet("serve");
}
