/* The ferry command: one function per subcommand, each in cli/cmd_NAME.c.
 * Each takes argv with argv[0] = the subcommand name, prints its own --help,
 * and returns the process exit code (0 ok, 1 failure, 2 usage error). */
#ifndef FERRY_CLI_COMMANDS_H
#define FERRY_CLI_COMMANDS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ferry/status.h"

int fy_cmd_synth(int argc, char **argv);
int fy_cmd_graph(int argc, char **argv);
int fy_cmd_run(int argc, char **argv);
/* ferry run PLAN: replays a plan file on a backend (cli/cmd_run_plan.c). */
int fy_run_plan_main(int argc, char **argv);
int fy_cmd_targets(int argc, char **argv);
int fy_cmd_devices(int argc, char **argv);
int fy_cmd_compile(int argc, char **argv);
int fy_cmd_simulate(int argc, char **argv);
int fy_cmd_inspect(int argc, char **argv);
int fy_cmd_diff(int argc, char **argv);

/* Prints "ferry: error: MESSAGE" to stderr, frees the status, returns 1. */
int fy_cli_fail(fy_status_t status);
/* Prints "ferry CMD: MESSAGE\nTry 'ferry CMD --help'." and returns 2. */
int fy_cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parses "1,2,3" into a malloc'ed array of token ids. */
fy_status_t fy_cli_parse_tokens(const char *text, int32_t **out_tokens, int64_t *out_count);
/* One option of a simple command line: a flag (sets *flag) or an option
 * with a value (sets *value). Tables end with a NULL name. */
typedef struct fy_cli_arg {
  const char *name;
  bool *flag;
  const char **value;
} fy_cli_arg_t;
/* Parses argv[1..] against args plus -h/--help (calls usage(stdout)) and one
 * positional argument (its name for errors: "MODEL", "PLAN"). Returns -1 to
 * go on, else the exit code (usage errors name the option). */
int fy_cli_parse_args(const char *cmd, int argc, char **argv, const fy_cli_arg_t *args, const char *positional_name,
                      const char **out_positional, void (*usage)(FILE *out));

/* Greedy decoding: the index of the largest logit, ties to the lowest id. */
int32_t fy_cli_argmax(const float *logits, int64_t n);

/* Prefill and decode of an executor (the reference interpreter, a runtime). */
typedef struct fy_cli_generator {
  fy_status_t (*prefill)(void *h, const int32_t *tokens, int64_t n, float *out_logits);
  fy_status_t (*decode)(void *h, int32_t token, float *out_logits);
} fy_cli_generator_t;
extern const fy_cli_generator_t fy_cli_by_reference; /* h is a fy_reference_t */

/* Prefill, then decode greedily: n_generate tokens; logits receives
 * n_generate x vocab floats (one row per step). */
fy_status_t fy_cli_generate(const fy_cli_generator_t *g, void *h, const int32_t *prompt, int64_t n_prompt,
                            int64_t n_generate, int64_t vocab, float *logits, int32_t *out_tokens);

/* Parses a non-negative integer option value, naming the option on error. */
fy_status_t fy_cli_parse_int(const char *option, const char *text, int64_t min, int64_t max, int64_t *out_value);

#endif
