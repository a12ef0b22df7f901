/* ferry compile: decide residency and streaming for a model on a target,
 * print the plan summary, and (with -o) write the plan file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/compile_args.h"
#include "schedules/schedule.h"
#include "schedules/simulate.h"
#include "schedules/summary.h"


static int usage(FILE *out) {
  fprintf(out,
          "usage: ferry compile MODEL [--target NAME|FILE] [OPTIONS] [-o PLAN]\n\n"
          "Decides which weights stay in VRAM and which stream, builds the command\n"
          "streams, checks them, simulates them on the target's cost model and prints\n"
          "the plan summary. MODEL is a model folder (config.json alone is enough).\n\n"
          "options:\n%s"
          "  -o, --output PLAN    write the plan file (atomically)\n"
          "  --arch LIST          CUDA architectures the plan carries kernels for, e.g. sm_75,sm_86,sm_90\n"
          "                       (default: the target's; a cubin per architecture plus PTX)\n"
          "  --no-kernels         write no compiled kernels (a backend compiles them at load)\n"
          "  -h, --help           this help\n",
          fy_compile_arg_help);
  return out == stdout ? 0 : 2;
}

int fy_cmd_compile(int argc, char **argv) {
  fy_compile_args_t a = {.compile = {.prefetch = -1}};
  int done = fy_compile_args_parse(&a, argc, argv, "compile", true, false, usage);
  if (done >= 0) return done;

  fy_graph_t *g = NULL;
  fy_target_t t;
  fy_status_t s = fy_compile_args_load(&a, &g, &t);
  fy_compile_t *c = NULL;
  fy_schedule_t *sched = NULL;
  fy_sim_result_t sim = {0};
  if (!s) s = fy_cli_compile(&a, g, &t, &c, &sched, &sim);
  if (!s) {
    fy_schedule_print_summary(sched, &sim, stdout);
    printf("  bound: %.3f ms (ratio %.3f)\n", fy_compile_bound_seconds(c, false, NULL) * 1e3,
           sim.request_seconds / fy_compile_bound_seconds(c, false, NULL));
    if (a.output) s = fy_cli_write_plan(a.output, &a, sched);
    if (!s && a.output) printf("wrote %s\n", a.output);
  }
  fy_sim_result_free(&sim);
  fy_schedule_destroy(sched);
  fy_compile_destroy(c);
  fy_graph_destroy(g);
  return s ? fy_cli_fail(s) : 0;
}
