/* ferry simulate: every policy on one workload, side by side. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/compile_args.h"
#include "schedules/schedule.h"
#include "schedules/simulate.h"

static int usage(FILE *out) {
  fprintf(out,
          "usage: ferry simulate MODEL [--target NAME|FILE] [OPTIONS] [--compare]\n\n"
          "Compiles MODEL for the target under a policy (or, with --compare, under every\n"
          "policy) and prints one row per policy: prefill time, decode time per token,\n"
          "request time, ratio to the lower bound, bus busy fraction, peak VRAM.\n\n"
          "options:\n%s"
          "  --compare            one row per policy: ferry, first-k, prefetch1, sequential, ngl\n"
          "  -h, --help           this help\n",
          fy_compile_arg_help);
  return out == stdout ? 0 : 2;
}

int fy_cmd_simulate(int argc, char **argv) {
  fy_compile_args_t a = {.compile = {.prefetch = -1}};
  int done = fy_compile_args_parse(&a, argc, argv, "simulate", false, true, usage);
  if (done >= 0) return done;
  fy_graph_t *g = NULL;
  fy_target_t t;
  fy_status_t s = fy_compile_args_load(&a, &g, &t);
  if (s) return fy_cli_fail(s);
  printf("%s on %s: prompt %lld tokens + %lld decoded, context %lld, budget %.2f GiB\n", g->config.architecture,
         t.name, (long long)g->stages[0].max_tokens, (long long)g->stages[1].repeat, (long long)g->context,
         (a.compile.budget ? a.compile.budget : t.vram_bytes - t.reserve_bytes) / 1073741824.0);
  printf("%-11s %12s %14s %12s %9s %9s %10s  %s\n", "policy", "prefill ms", "decode ms/tok", "request s", "/bound",
         "bus busy", "peak GiB", "resident / slots");
  int first = a.compare || !a.policy_given ? 0 : a.compile.policy, last = a.compare ? FY_POLICY_COUNT - 1 : first;
  if (!a.compare && !a.policy_given) last = 0;
  int failures = 0;
  for (int p = first; p <= last; p++) {
    a.compile.policy = (fy_policy_t)p;
    fy_compile_t *c = NULL;
    fy_schedule_t *sched = NULL;
    fy_sim_result_t sim = {0};
    s = fy_cli_compile(&a, g, &t, &c, &sched, &sim);
    if (s) {
      printf("%-11s %s\n", fy_policy_name((fy_policy_t)p), fy_status_message(s));
      fy_status_free(s);
      failures++;
      continue;
    }
    double bound = fy_compile_bound_seconds(c, false, NULL);
    const fy_sim_stage_t *prefill = &sim.stages[1], *decode = &sim.stages[2];
    uint64_t peak = 0;
    for (int r = 0; r < FY_REGION_COUNT; r++) peak += sim.peak_bytes[r];
    printf("%-11s %12.2f %14.3f %12.3f %9.3f %8.1f%% %10.2f  %.2f GiB / %d x %.0f MiB\n",
           fy_policy_name((fy_policy_t)p), prefill->total_seconds * 1e3,
           decode->total_seconds * 1e3 / (double)(sched->stages[2].repeat ? sched->stages[2].repeat : 1),
           sim.request_seconds, sim.request_seconds / bound, sim.bus_busy_fraction * 100, peak / 1073741824.0,
           c->resident_bytes / 1073741824.0, c->n_slots, c->slot_bytes / 1048576.0);
    fy_sim_result_free(&sim);
    fy_schedule_destroy(sched);
    fy_compile_destroy(c);
  }
  {
    fy_compile_options_t o = a.compile;
    o.policy = FY_POLICY_FERRY;
    fy_compile_t *c;
    if (!fy_compile_run(g, &t, &o, &c)) {
      printf("%-11s %12s %14s %12.3f %9.3f\n", "bound", "", "", fy_compile_bound_seconds(c, false, NULL), 1.0);
      fy_compile_destroy(c);
    }
  }
  fy_graph_destroy(g);
  return failures == last - first + 1 ? 1 : 0;
}
