/* cli.h: the `cinder` subcommands. Each takes the arguments after its name (argv[0] is the
 * subcommand) and returns the process exit code; only main() exits. */
#ifndef CINDER_CLI_H
#define CINDER_CLI_H

int cli_inspect_main(int argc, char **argv);
int cli_tokenize_main(int argc, char **argv);
int cli_detokenize_main(int argc, char **argv);
int cli_generate_main(int argc, char **argv);
int cli_eval_main(int argc, char **argv);
int cli_perplexity_main(int argc, char **argv);
int cli_bench_main(int argc, char **argv);
int cli_serve_main(int argc, char **argv);

/* Default model path: ../shared/models/stories260K.gguf relative to the working directory or to
 * the binary's source tree, if it exists; NULL otherwise. Borrowed static string. */
const char *cli_default_model(void);
/* Parse a positive int flag value; returns -1 on garbage. */
long cli_parse_long(const char *s);

#endif
