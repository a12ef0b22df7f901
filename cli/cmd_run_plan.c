/* ferry run PLAN: greedy generation by replaying a compiled plan with the
 * runtime (include/ferry.h), the plan-file branch of `ferry run` (the model
 * folder branch is cli/cmd_run.c; its output lines are matched here).
 * --compare-predicted sets the simulator's times beside the measured ones;
 * --check-reference runs the reference interpreter on the plan's graph and
 * demands the same tokens and logits bit for bit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "codegen/reference.h"
#include "ferry.h"
#include "runtime/runtime.h"
#include "schedules/simulate.h"


typedef struct {
  const char *plan, *prompt, *trace;
  int64_t generate;
  fy_rt_options_t rt;
  bool compare_predicted, check_reference;
} run_plan_options_t;

static void usage(FILE *out) {
  fprintf(out,
          "usage: ferry run PLAN --prompt IDS --generate N [options]\n\n"
          "Replays a compiled plan: a prefill of the prompt, then N-1 decode steps,\n"
          "greedy (argmax, ties to the lowest id). Weights are the files the plan\n"
          "records (or --weights DIR), checked against the plan's fingerprints.\n\n"
          "  --prompt 1,2,3        the prompt's token ids\n"
          "  --generate N          tokens to generate (>= 1)\n"
          "  --backend NAME        cpu (default), vulkan, cuda\n"
          "  --device N            the backend's N-th device, as ferry devices lists them (default: its best)\n"
          "  --weights DIR         the weight files, by base name, in DIR\n"
          "  --threads N           compute threads (default: all; results do not depend on it)\n"
          "  --poison              poison device memory at open and every evicted slot\n"
          "  --emulate-h2d GBPS    throttle copies to a host-to-device bus of GBPS (10^9 bytes/s)\n"
          "  --force               replay a plan compiled for a code target the backend does not run\n"
          "  --trace FILE          write the measured timeline as Chrome trace JSON\n"
          "  --compare-predicted   per stage: the simulator's times next to the measured ones\n"
          "  --check-reference     also run the reference interpreter; tokens and logits must\n"
          "                        be identical bit for bit (exit 1 otherwise)\n");
}

static fy_status_t rt_prefill(void *h, const int32_t *t, int64_t n, float *o) { return fy_rt_prefill(h, t, n, o); }
static fy_status_t rt_decode(void *h, int32_t t, float *o) { return fy_rt_decode(h, t, o); }
static const fy_cli_generator_t by_runtime = {rt_prefill, rt_decode};

static void print_tokens_and_rates(fy_rt_t *rt, const int32_t *tokens, int64_t n) {
  printf("tokens: ");
  for (int64_t i = 0; i < n; i++) printf("%s%d", i ? "," : "", tokens[i]);
  printf("\n");
  fy_rt_stage_stats_t p = {0}, d = {0};
  fy_status_free(fy_rt_stage_stats(rt, fy_rt_stage_find(rt, "prefill"), &p));
  fy_status_free(fy_rt_stage_stats(rt, fy_rt_stage_find(rt, "decode"), &d));
  double prefill_ms = p.wall_seconds * 1e3;
  printf("prefill: %lld tokens in %.2f ms (%.1f tokens/s)\n", (long long)p.tokens, prefill_ms,
         prefill_ms > 0 ? 1e3 * (double)p.tokens / prefill_ms : 0.0);
  if (d.steps > 0) {
    double per = d.wall_seconds * 1e3 / (double)d.steps;
    printf("decode: %lld tokens, %.2f ms/token (%.2f tokens/s)\n", (long long)d.steps, per, per > 0 ? 1e3 / per : 0.0);
  }
}

static void print_stages(fy_rt_t *rt) {
  printf("%-8s %6s %11s %11s %11s %11s %11s\n", "stage", "steps", "wall ms", "compute ms", "waited ms", "copy ms",
         "copied MiB");
  for (int i = 0; i < fy_rt_stage_count(rt); i++) {
    fy_rt_stage_stats_t st;
    if (fy_rt_stage_stats(rt, i, &st)) continue;
    printf("%-8s %6lld %11.2f %11.2f %11.2f %11.2f %11.2f\n", st.name, (long long)st.steps, st.wall_seconds * 1e3,
           st.compute_seconds * 1e3, st.wait_seconds * 1e3, st.copy_seconds * 1e3, st.copied_bytes / 1048576.0);
  }
  fy_rt_memory_t mem;
  fy_rt_memory(rt, &mem);
  printf("memory: device arena %.2f MiB, staging ring %.2f MiB, host allocated %.2f MiB\n",
         mem.device_bytes / 1048576.0, mem.staging_bytes / 1048576.0, mem.host_bytes / 1048576.0);
}

/* Predicted (the simulator on the plan's target) next to measured, per stage step. */
static fy_status_t compare_predicted(fy_rt_t *rt) {
  fy_sim_result_t sim;
  FY_TRY(fy_simulate(fy_rt_schedule(rt), NULL, &sim));
  printf("%-8s %18s %18s %9s %18s %18s\n", "stage", "predicted step ms", "measured step ms", "ratio",
         "predicted wait ms", "measured wait ms");
  for (int i = 0; i < fy_rt_stage_count(rt) && i < sim.n_stages; i++) {
    fy_rt_stage_stats_t st;
    if (fy_rt_stage_stats(rt, i, &st) || st.steps == 0) continue;
    const fy_sim_stage_t *p = &sim.stages[i];
    /* A measured step is an average over the steps run; predicted: the first step for a one-step run. */
    double predicted = st.steps == 1 ? p->first_step_seconds : p->step_seconds;
    double measured = st.wall_seconds / (double)st.steps;
    double predicted_wait = p->compute_wait_seconds / (double)(fy_rt_schedule(rt)->stages[i].repeat > 0
                                                                   ? fy_rt_schedule(rt)->stages[i].repeat
                                                                   : 1);
    printf("%-8s %18.3f %18.3f %9.2f %18.3f %18.3f\n", st.name, predicted * 1e3, measured * 1e3,
           predicted > 0 ? measured / predicted : 0.0, predicted_wait * 1e3,
           st.wait_seconds * 1e3 / (double)st.steps);
  }
  fy_sim_result_free(&sim);
  return NULL;
}

/* Runs the reference on the plan's graph; *out_same says whether tokens and logits match. */
static fy_status_t check_reference(fy_rt_t *rt, const run_plan_options_t *o, const int32_t *prompt, int64_t n_prompt,
                                   const int32_t *tokens, const float *logits, bool *out_same) {
  int64_t vocab = fy_rt_vocab(rt);
  size_t n = (size_t)o->generate * (size_t)vocab;
  float *ref_logits = malloc(sizeof *ref_logits * n);
  int32_t *ref_tokens = malloc(sizeof *ref_tokens * (size_t)o->generate);
  fy_reference_t *ref = NULL;
  fy_status_t s = ref_logits && ref_tokens ? NULL : fy_status_make(FY_RESOURCE_EXHAUSTED, "out of memory");
  if (!s) s = fy_reference_create(fy_rt_graph(rt), o->rt.n_threads, &ref);
  if (!s) s = fy_cli_generate(&fy_cli_by_reference, ref, prompt, n_prompt, o->generate, vocab, ref_logits, ref_tokens);
  if (!s) {
    *out_same = true;
    for (int64_t i = 0; i < o->generate && *out_same; i++) {
      const float *a = logits + (size_t)i * (size_t)vocab, *b = ref_logits + (size_t)i * (size_t)vocab;
      for (int64_t j = 0; j < vocab && *out_same; j++) {
        if (!memcmp(&a[j], &b[j], sizeof *a)) continue;
        printf("reference check: step %lld: logit %lld differs: %.9g (plan) vs %.9g (reference)\n", (long long)i,
               (long long)j, a[j], b[j]);
        *out_same = false;
      }
      if (*out_same && tokens[i] != ref_tokens[i]) {
        printf("reference check: step %lld: token %d (plan) vs %d (reference)\n", (long long)i, tokens[i],
               ref_tokens[i]);
        *out_same = false;
      }
    }
    if (*out_same) printf("reference check: tokens and logits identical (bit for bit)\n");
  }
  fy_reference_destroy(ref);
  free(ref_tokens);
  free(ref_logits);
  return fy_status_annotate(s, "reference check");
}

static fy_status_t run_plan(const run_plan_options_t *o, const int32_t *prompt, int64_t n_prompt, bool *out_same) {
  fy_rt_t *rt;
  FY_TRY(fy_rt_open(o->plan, &o->rt, &rt));
  int64_t vocab = fy_rt_vocab(rt);
  fy_status_t s = NULL;
  if (n_prompt > fy_rt_max_prompt(rt) || o->generate - 1 > fy_rt_max_decode(rt) ||
      n_prompt + o->generate - 1 > fy_rt_context(rt))
    s = fy_status_make(FY_OUT_OF_RANGE, "the plan takes prompts of up to %lld tokens and %lld decode steps within a "
                       "context of %lld (recompile with --prompt-len, --generate, --context): asked for %lld + %lld",
                       (long long)fy_rt_max_prompt(rt), (long long)fy_rt_max_decode(rt), (long long)fy_rt_context(rt),
                       (long long)n_prompt, (long long)o->generate - 1);
  float *logits = malloc(sizeof *logits * (size_t)o->generate * (size_t)vocab);
  int32_t *tokens = malloc(sizeof *tokens * (size_t)o->generate);
  if (!s && (!logits || !tokens)) s = fy_status_make(FY_RESOURCE_EXHAUSTED, "run: out of memory for the logits");
  if (!s) s = fy_cli_generate(&by_runtime, rt, prompt, n_prompt, o->generate, vocab, logits, tokens);
  if (!s) {
    print_tokens_and_rates(rt, tokens, o->generate);
    print_stages(rt);
  }
  if (!s && o->compare_predicted) s = compare_predicted(rt);
  if (!s && o->trace) {
    s = fy_rt_write_trace(rt, o->trace);
    if (!s) printf("trace: %s\n", o->trace);
  }
  if (!s && o->check_reference) s = check_reference(rt, o, prompt, n_prompt, tokens, logits, out_same);
  free(tokens);
  free(logits);
  fy_rt_close(rt);
  return s;
}

int fy_run_plan_main(int argc, char **argv) {
  run_plan_options_t o = {0};
  const char *generate = NULL, *threads = NULL, *gbps = NULL, *device = NULL;
  const fy_cli_arg_t args[] = {
      {"--poison", &o.rt.poison, NULL},      {"--force", &o.rt.force, NULL},
      {"--compare-predicted", &o.compare_predicted, NULL}, {"--check-reference", &o.check_reference, NULL},
      {"--prompt", NULL, &o.prompt},         {"--generate", NULL, &generate},
      {"--backend", NULL, &o.rt.backend},    {"--weights", NULL, &o.rt.weights_dir},
      {"--threads", NULL, &threads},         {"--emulate-h2d", NULL, &gbps},
      {"--trace", NULL, &o.trace},           {"--device", NULL, &device},
      {NULL, NULL, NULL}};
  int done = fy_cli_parse_args("run", argc, argv, args, "PLAN", &o.plan, usage);
  if (done >= 0) return done;
  if (!o.prompt) return fy_cli_usage_error("run", "--prompt is required");
  if (!generate) return fy_cli_usage_error("run", "--generate is required");
  int64_t n_threads = 0;
  fy_status_t s = fy_cli_parse_int("--generate", generate, 1, 1 << 24, &o.generate);
  if (!s && threads) s = fy_cli_parse_int("--threads", threads, 1, 256, &n_threads);
  int64_t device_index = 0;
  if (!s && device) s = fy_cli_parse_int("--device", device, 0, 1024, &device_index);
  o.rt.pick_device = device != NULL;
  o.rt.device = (int)device_index;
  if (!s && gbps) {
    char *end;
    o.rt.emulate_h2d_gbps = strtod(gbps, &end);
    if (end == gbps || *end || !(o.rt.emulate_h2d_gbps > 0) || o.rt.emulate_h2d_gbps > 1e6)
      s = fy_status_make(FY_INVALID_ARGUMENT, "--emulate-h2d: '%s' is not a positive number of GB/s", gbps);
  }
  if (s) {
    fprintf(stderr, "ferry run: %s\nTry 'ferry run --help'.\n", fy_status_message(s));
    fy_status_free(s);
    return 2;
  }
  o.rt.n_threads = (int)n_threads;
  o.rt.trace = o.trace != NULL;
  int32_t *prompt = NULL;
  int64_t n_prompt = 0;
  bool same = true;
  s = fy_cli_parse_tokens(o.prompt, &prompt, &n_prompt);
  if (!s) s = run_plan(&o, prompt, n_prompt, &same);
  free(prompt);
  if (s) return fy_cli_fail(s);
  return same ? 0 : 1;
}
