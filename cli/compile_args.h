/* Options shared by the commands that compile a model for a target
 * (compile, simulate): the model folder, the target and its overrides, the
 * request shape, and the compile options. */
#ifndef FERRY_CLI_COMPILE_ARGS_H
#define FERRY_CLI_COMPILE_ARGS_H

#include <getopt.h>

#include "frontend/frontend.h"
#include "passes/compile.h"
#include "passes/target.h"
#include "schedules/schedule.h"
#include "schedules/simulate.h"

typedef struct fy_compile_args {
  const char *model;
  const char *target_name;
  fy_target_overrides_t overrides;
  fy_load_options_t load;
  fy_compile_options_t compile;
  const char *output;
  const char *arch; /* --arch sm_75,sm_86: the CUDA architectures a plan carries kernels for */
  bool no_kernels;  /* --no-kernels: a plan without compiled kernels (backends compile at load) */
  bool compare;
  bool policy_given;
} fy_compile_args_t;

/* Help text for the shared options. */
extern const char fy_compile_arg_help[];

/* Parses the command line of `cmd` (compile or simulate): the shared
 * options, -o/--output where allow_output, --compare where allow_compare,
 * -h/--help (calls usage(stdout)), and one MODEL folder. Returns -1 when the
 * command should go on, else the exit code after printing help or an error. */
int fy_compile_args_parse(fy_compile_args_t *a, int argc, char **argv, const char *cmd, bool allow_output,
                          bool allow_compare, int (*usage)(FILE *out));
/* Loads the model (shape-only is fine) and the target with overrides. */
fy_status_t fy_compile_args_load(const fy_compile_args_t *a, fy_graph_t **out_graph, fy_target_t *out_target);

/* Writes the schedule as a plan file (cli/plan_output.c): fingerprints of the
 * weights and config.json, the options, and the kernels for its target. */
fy_status_t fy_cli_write_plan(const char *path, const fy_compile_args_t *a, const fy_schedule_t *s);

/* Compiles, builds the schedule, checks it and simulates it: what compile
 * and simulate share. On success the caller owns all three outputs. */
fy_status_t fy_cli_compile(const fy_compile_args_t *a, const fy_graph_t *g, const fy_target_t *t,
                           fy_compile_t **out_compile, fy_schedule_t **out_schedule, fy_sim_result_t *out_sim);

#endif
