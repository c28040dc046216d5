/* cli_perplexity.c: placeholder until the command is written: it says so clearly. */
#include "cli/cli.h"

#include <stdio.h>

int cli_perplexity_main(int argc, char **argv)
{
    (void)argc, (void)argv;
    fprintf(stderr, "cinder perplexity: not implemented yet in this build\n");
    return 2;
}
