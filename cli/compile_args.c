/* Shared options of compile and simulate (see compile_args.h). */
#include "cli/compile_args.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "schedules/schedule.h"
#include "schedules/simulate.h"

enum {
  OPT_OUTPUT = 'o', OPT_HELP = 'h', OPT_COMPARE = 997, OPT_ARCH, OPT_NO_KERNELS,
  OPT_TARGET = 1000, OPT_BUDGET, OPT_PREFETCH, OPT_POLICY, OPT_CONTEXT, OPT_GENERATE, OPT_PROMPT_LEN,
  OPT_VRAM, OPT_RESERVE, OPT_H2D, OPT_PRINT_AFTER, OPT_VERIFY_EACH, OPT_SHAPE_ONLY,
};

static const struct option options[] = {
    {"output", required_argument, 0, OPT_OUTPUT},       {"compare", no_argument, 0, OPT_COMPARE},
    {"help", no_argument, 0, OPT_HELP},                 {"arch", required_argument, 0, OPT_ARCH},
    {"no-kernels", no_argument, 0, OPT_NO_KERNELS},
    {"target", required_argument, 0, OPT_TARGET},       {"budget", required_argument, 0, OPT_BUDGET},
    {"prefetch", required_argument, 0, OPT_PREFETCH},   {"policy", required_argument, 0, OPT_POLICY},
    {"context", required_argument, 0, OPT_CONTEXT},     {"generate", required_argument, 0, OPT_GENERATE},
    {"prompt-len", required_argument, 0, OPT_PROMPT_LEN}, {"vram", required_argument, 0, OPT_VRAM},
    {"reserve", required_argument, 0, OPT_RESERVE},     {"h2d-gbps", required_argument, 0, OPT_H2D},
    {"print-after", required_argument, 0, OPT_PRINT_AFTER}, {"verify-each", no_argument, 0, OPT_VERIFY_EACH},
    {"shape-only", no_argument, 0, OPT_SHAPE_ONLY},     {0, 0, 0, 0},
};

const char fy_compile_arg_help[] =
    "  --target NAME|FILE   GPU profile (ferry targets lists them; default demo)\n"
    "  --vram BYTES         override the profile's VRAM (e.g. 12G, 512MiB)\n"
    "  --reserve BYTES      override the VRAM kept free\n"
    "  --h2d-gbps GBPS      override the pinned host-to-device bandwidth\n"
    "  --budget BYTES       device bytes the plan may use (default: VRAM - reserve)\n"
    "  --policy NAME        ferry (default), first-k, prefetch1, sequential, ngl\n"
    "  --prefetch N         prefetch depth (default: the policy's; ferry searches 1..4)\n"
    "  --prompt-len N       tokens of the prefill stage (default 512)\n"
    "  --generate N         decode steps per request (default 128)\n"
    "  --context N          KV cache capacity in tokens (default prompt-len + generate)\n"
    "  --shape-only         ignore weight files even where present\n"
    "  --print-after PASS   print the decisions after a pass (cost, memplan, kvcache, residency, stream, fuse)\n"
    "  --verify-each        verify the IR after every pass\n";

/* One option's value; NULL when taken. */
static fy_status_t take(fy_compile_args_t *a, int opt, const char *value) {
  int64_t n;
  switch (opt) {
    case OPT_TARGET: a->target_name = value; return NULL;
    case OPT_BUDGET: return fy_status_annotate(fy_parse_bytes(value, &a->compile.budget), "--budget");
    case OPT_PREFETCH:
      FY_TRY(fy_cli_parse_int("--prefetch", value, 0, 16, &n));
      a->compile.prefetch = (int)n;
      return NULL;
    case OPT_POLICY:
      a->policy_given = true;
      if (!fy_policy_parse(value, &a->compile.policy))
        return fy_status_make(FY_INVALID_ARGUMENT,
                              "--policy: '%s' is not one of ferry, first-k, prefetch1, sequential, ngl", value);
      return NULL;
    case OPT_CONTEXT: return fy_cli_parse_int("--context", value, 1, INT32_MAX, &a->load.context);
    case OPT_GENERATE: return fy_cli_parse_int("--generate", value, 1, INT32_MAX, &a->load.generate);
    case OPT_PROMPT_LEN: return fy_cli_parse_int("--prompt-len", value, 1, INT32_MAX, &a->load.prefill_tokens);
    case OPT_VRAM:
      a->overrides.has_vram = true;
      return fy_status_annotate(fy_parse_bytes(value, &a->overrides.vram_bytes), "--vram");
    case OPT_RESERVE:
      a->overrides.has_reserve = true;
      return fy_status_annotate(fy_parse_bytes(value, &a->overrides.reserve_bytes), "--reserve");
    case OPT_H2D: {
      char *end;
      double v = strtod(value, &end);
      if (end == value || *end || !(v > 0) || v > 1e6)
        return fy_status_make(FY_INVALID_ARGUMENT, "--h2d-gbps: '%s' is not a positive number", value);
      a->overrides.has_h2d = true;
      a->overrides.h2d_gbps = v;
      return NULL;
    }
    case OPT_PRINT_AFTER: a->compile.print_after = value; return NULL;
    case OPT_VERIFY_EACH: a->compile.verify_each = true; return NULL;
    case OPT_SHAPE_ONLY: a->load.shape_only = true; return NULL;
    case OPT_OUTPUT: a->output = value; return NULL;
    case OPT_COMPARE: a->compare = true; return NULL;
    case OPT_ARCH: a->arch = value; return NULL;
    case OPT_NO_KERNELS: a->no_kernels = true; return NULL;
  }
  return fy_status_make(FY_INTERNAL, "option %d has no handler", opt);
}

int fy_compile_args_parse(fy_compile_args_t *a, int argc, char **argv, const char *cmd, bool allow_output,
                          bool allow_compare, int (*usage)(FILE *out)) {
  optind = 1;
  int opt;
  while ((opt = getopt_long(argc, argv, allow_output ? "o:h" : "h", options, NULL)) != -1) {
    if (opt == OPT_HELP) return usage(stdout);
    if (opt == '?') {
      fprintf(stderr, "Try 'ferry %s --help'.\n", cmd);
      return 2;
    }
    bool plan_only = opt == OPT_OUTPUT || opt == OPT_ARCH || opt == OPT_NO_KERNELS;
    if ((plan_only && !allow_output) || (opt == OPT_COMPARE && !allow_compare))
      return fy_cli_usage_error(cmd, "%s does not take %s", cmd, argv[optind - 1]);
    fy_status_t s = take(a, opt, optarg);
    if (s) return fy_cli_fail(s);
  }
  if (optind != argc - 1) return fy_cli_usage_error(cmd, "expected one MODEL folder");
  a->model = argv[optind];
  return -1;
}

fy_status_t fy_compile_args_load(const fy_compile_args_t *a, fy_graph_t **out_graph, fy_target_t *out_target) {
  fy_target_t t;
  FY_TRY(fy_target_load(a->target_name ? a->target_name : "demo", FERRY_TARGETS_DIR, &t));
  FY_TRY(fy_target_apply_overrides(&t, &a->overrides));
  if (a->compile.budget > t.vram_bytes)
    return fy_status_make(FY_INVALID_ARGUMENT, "--budget %llu exceeds the target's VRAM (%llu bytes)",
                          (unsigned long long)a->compile.budget, (unsigned long long)t.vram_bytes);
  FY_TRY(fy_model_load(a->model, &a->load, out_graph));
  *out_target = t;
  return NULL;
}

/* Compiles, builds, checks and simulates: what compile and simulate share. */
fy_status_t fy_cli_compile(const fy_compile_args_t *a, const fy_graph_t *g, const fy_target_t *t,
                           fy_compile_t **out_compile, fy_schedule_t **out_schedule, fy_sim_result_t *out_sim) {
  fy_compile_t *c;
  FY_TRY(fy_compile_run(g, t, &a->compile, &c));
  fy_schedule_t *s;
  fy_status_t st = fy_schedule_build(c, &s);
  if (st) {
    fy_compile_destroy(c);
    return st;
  }
  st = fy_status_annotate(fy_schedule_check(s), "the compiled schedule failed its check");
  if (!st) st = fy_simulate(s, &(fy_sim_options_t){0}, out_sim);
  for (int i = 0; !st && i < s->n_stages && i < out_sim->n_stages; i++) {
    /* The plan records what was predicted for each stage. */
    s->stages[i].predicted_first_step_seconds = out_sim->stages[i].first_step_seconds;
    s->stages[i].predicted_step_seconds = out_sim->stages[i].step_seconds;
    s->stages[i].predicted_total_seconds = out_sim->stages[i].total_seconds;
  }
  if (st) {
    fy_schedule_destroy(s);
    fy_compile_destroy(c);
    return st;
  }
  *out_compile = c;
  *out_schedule = s;
  return NULL;
}
