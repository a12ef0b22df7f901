/* bench/schedule: every policy's predicted request time against the lower
 * bound, for real model shapes (bf16, shape-only) on real GPU profiles:
 * prefill of 512 tokens + 128 decoded tokens. Also the compile time of
 * llama-3.1-70b. Run: build/bench/bench_schedule [SCRATCH_DIR] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "frontend/frontend.h"
#include "frontend/synth.h"
#include "passes/compile.h"
#include "schedules/schedule.h"
#include "schedules/simulate.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static fy_status_t request_seconds(const fy_graph_t *g, const fy_target_t *t, fy_policy_t p, double *out,
                                   double *out_bound, double *out_host_bound) {
  fy_compile_options_t o = {.policy = p, .prefetch = -1};
  fy_compile_t *c;
  FY_TRY(fy_compile_run(g, t, &o, &c));
  fy_schedule_t *s;
  fy_status_t st = fy_schedule_build(c, &s);
  fy_sim_result_t r = {0};
  if (!st) {
    st = fy_simulate(s, &(fy_sim_options_t){0}, &r);
    fy_schedule_destroy(s);
  }
  *out = r.request_seconds;
  if (out_bound) *out_bound = fy_compile_bound_seconds(c, false, NULL);
  if (out_host_bound) *out_host_bound = fy_compile_bound_seconds(c, true, NULL);
  fy_sim_result_free(&r);
  fy_compile_destroy(c);
  return st;
}

int main(int argc, char **argv) {
  const char *scratch = argc > 1 ? argv[1] : "build/bench-models";
  const char *models[] = {"llama-3.1-8b", "qwen2.5-14b", "llama-3.1-70b", "mistral-7b"};
  const char *targets[] = {"rtx3050-4g", "rtx3060-12g", "rtx4090-24g", "a100-40g", "h100-80g-pcie"};
  int n_models = 4, n_targets = 5, misses = 0, streamed_pairs = 0;
  printf("bench/schedule: prefill 512 + decode 128 tokens, bf16, shape-only.\n"
         "Columns per policy: predicted request time / DESIGN.md's bound (GPU compute, bytes that must cross the bus).\n"
         "ferry/best: ferry / the best baseline. ferry/2ch: ferry / the two-channel bound (bus + host memory,\n"
         "which ferry's host placement can use; passes/bound.c).\n");
  printf("%-14s %-14s %9s %10s", "model", "target", "GB", "bound s");
  for (int p = 0; p < FY_POLICY_COUNT; p++) printf(" %10s", fy_policy_name((fy_policy_t)p));
  printf(" %10s %9s\n", "ferry/best", "ferry/2ch");
  double compile_70b[7];
  int n_compile = 0;
  for (int m = 0; m < n_models; m++) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", scratch, models[m]);
    fy_synth_options_t so = {.preset = models[m], .dtype = FY_DTYPE_BF16, .shape_only = true};
    fy_status_t st = fy_synth_write(dir, &so);
    fy_graph_t *g = NULL;
    fy_load_options_t lo = {.prefill_tokens = 512, .generate = 128};
    if (!st) st = fy_model_load(dir, &lo, &g);
    if (st) {
      printf("%s: %s\n", models[m], fy_status_message(st));
      fy_status_free(st);
      return 1;
    }
    uint64_t weights = fy_graph_weight_bytes(g, -2);
    for (int ti = 0; ti < n_targets; ti++) {
      fy_target_t t;
      st = fy_target_load(targets[ti], FERRY_TARGETS_DIR, &t);
      if (st) {
        printf("%s\n", fy_status_message(st));
        fy_status_free(st);
        return 1;
      }
      printf("%-14s %-14s %9.1f", models[m], targets[ti], weights / 1e9);
      if (weights > t.host_ram_bytes) {
        printf("  skipped: %.0f GB of weights do not fit the profile's %.0f GB of host RAM\n", weights / 1e9,
               t.host_ram_bytes / 1e9);
        continue;
      }
      double times[FY_POLICY_COUNT], bound = 0, host_bound = 0;
      for (int p = 0; p < FY_POLICY_COUNT; p++) {
        st = request_seconds(g, &t, (fy_policy_t)p, &times[p], p == 0 ? &bound : NULL, p == 0 ? &host_bound : NULL);
        if (st) {
          times[p] = -1;
          fy_status_free(st);
        }
      }
      printf(" %10.3f", bound);
      double best_baseline = -1;
      for (int p = 0; p < FY_POLICY_COUNT; p++) {
        if (times[p] < 0) printf(" %10s", "no fit");
        else printf(" %10.3f", times[p] / bound);
        if (p > 0 && times[p] >= 0 && (best_baseline < 0 || times[p] < best_baseline)) best_baseline = times[p];
      }
      bool streams = weights > t.vram_bytes - t.reserve_bytes;
      streamed_pairs += streams;
      if (times[0] >= 0 && best_baseline > 0) printf(" %9.3fx %9.3f", times[0] / best_baseline, times[0] / host_bound);
      if (times[0] < 0 || times[0] / bound > 1.05) misses++;
      printf("%s\n", streams ? "  (streams)" : "");
    }
    if (!strcmp(models[m], "llama-3.1-70b")) {
      fy_target_t t;
      fy_status_free(fy_target_load("rtx4090-24g", FERRY_TARGETS_DIR, &t));
      for (int i = 0; i < 7; i++) {
        double t0 = now();
        fy_graph_t *g2 = NULL;
        fy_compile_t *c = NULL;
        fy_schedule_t *s = NULL;
        fy_compile_options_t o = {.policy = FY_POLICY_FERRY, .prefetch = -1};
        fy_status_t e = fy_model_load(dir, &lo, &g2);
        if (!e) e = fy_compile_run(g2, &t, &o, &c);
        if (!e) e = fy_schedule_build(c, &s);
        compile_70b[n_compile++] = now() - t0;
        fy_status_free(e);
        fy_schedule_destroy(s);
        fy_compile_destroy(c);
        fy_graph_destroy(g2);
      }
    }
    fy_graph_destroy(g);
  }
  qsort(compile_70b, (size_t)n_compile, sizeof(double), cmp_double);
  printf("\ncompile llama-3.1-70b shape-only for rtx4090-24g (load + passes + schedule), median of %d: %.1f ms "
         "(target < 200 ms: ratio %.2f)\n", n_compile, compile_70b[n_compile / 2] * 1e3, compile_70b[n_compile / 2] / 0.2);
  printf("pairs where ferry > 1.05 x bound: %d (of %d that stream)\n", misses, streamed_pairs);
  return 0;
}
