/* cli_common.c: small helpers shared by the subcommands. */
#include "cinder/common.h"
#include "cli/cli.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

const char *cli_default_model(void)
{
    static const char *candidates[] = {
        "../shared/models/stories260K.gguf",
        CND_DEFAULT_MODEL_SRC, /* from the source tree the binary was built in */
    };
    for (size_t i = 0; i < ARRAY_SIZE(candidates); i++) {
        if (access(candidates[i], R_OK) == 0)
            return candidates[i];
    }
    return NULL;
}

long cli_parse_long(const char *s)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < 0)
        return -1;
    return v;
}
