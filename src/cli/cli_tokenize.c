/* cli_tokenize.c: placeholder until the command is written: it says so clearly. */
#include "cli/cli.h"

#include <stdio.h>

int cli_tokenize_main(int argc, char **argv)
{
    (void)argc, (void)argv;
    fprintf(stderr, "cinder tokenize: not implemented yet in this build\n");
    return 2;
}

int cli_detokenize_main(int argc, char **argv)
{
    (void)argc, (void)argv;
    fprintf(stderr, "cinder detokenize: not implemented yet in this build\n");
    return 2;
}
