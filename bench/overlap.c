/* bench/overlap: real copy/compute overlap on the cpu backend (DESIGN.md,
 * "How performance is measured").
 *
 * The small synthetic preset (bf16) is first run with every weight resident
 * and no bus, to measure the kernels: one layer's decode and prefill compute
 * time. A target is calibrated from those figures (device memory bandwidth
 * and FLOP rate of this CPU) and the bus is emulated at the rate where one
 * layer's copy takes as long as its compute. Under a budget that streams
 * about half the layers, each policy's plan is then replayed: per decode
 * step, the measured step time against max(compute-only, copy-only) time of
 * the same run (1.0 = perfect overlap; a schedule without overlap, the
 * sequential policy, is near 2), and the measured step time against the one
 * the simulator predicts on the calibrated target. Medians of several runs.
 *
 * Run: build/bench/bench_overlap [--runs N] [--steps N] [--threads N] [--dir SCRATCH]
 *      [--trace-dir DIR] (writes DIR/overlap-POLICY.json: the measured timelines) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ferry.h"
#include "frontend/frontend.h"
#include "frontend/synth.h"
#include "passes/compile.h"
#include "runtime/runtime.h"
#include "schedules/schedule.h"
#include "schedules/simulate.h"

enum { PROMPT = 8, MAX_RUNS = 15 };

typedef struct {
  int runs, steps, threads;
  const char *dir, *trace_dir;
} bench_options_t;

/* Per decode step, seconds. */
typedef struct {
  double step, compute, copy, wait;
} measure_t;

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static fy_status_t compile_schedule(const fy_graph_t *g, const fy_target_t *t, fy_policy_t policy, uint64_t budget,
                                    fy_schedule_t **out) {
  fy_compile_options_t o = {.policy = policy, .prefetch = -1, .budget = budget};
  fy_compile_t *c;
  FY_TRY(fy_compile_run(g, t, &o, &c));
  fy_status_t s = fy_schedule_build(c, out);
  fy_compile_destroy(c);
  return s;
}

static const int32_t prompt[PROMPT] = {1, 2, 3, 4, 5, 6, 7, 8};

/* One sequence: prefill, then every decode step the plan has (greedy). */
static fy_status_t run_sequence(fy_rt_t *rt, float *logits) {
  FY_TRY(fy_rt_prefill(rt, prompt, PROMPT, logits));
  for (int64_t i = 0; i < fy_rt_max_decode(rt); i++) {
    int32_t best = 0;
    for (int64_t j = 1; j < fy_rt_vocab(rt); j++)
      if (logits[j] > logits[best]) best = (int32_t)j;
    FY_TRY(fy_rt_decode(rt, best, logits));
  }
  return NULL;
}

static fy_status_t decode_measure(fy_rt_t *rt, measure_t *out) {
  fy_rt_stage_stats_t d;
  FY_TRY(fy_rt_stage_stats(rt, fy_rt_stage_find(rt, "decode"), &d));
  double n = d.steps > 0 ? (double)d.steps : 1;
  *out = (measure_t){d.wall_seconds / n, d.compute_seconds / n, d.copy_seconds / n, d.wait_seconds / n};
  return NULL;
}

/* Mean launch time of a layer's nodes per step of `stage`, from a traced run. */
static double layer_seconds(fy_rt_t *rt, const char *stage) {
  const fy_schedule_t *s = fy_rt_schedule(rt);
  const fy_sim_span_t *spans;
  int64_t n = fy_rt_spans(rt, FY_QUEUE_COMPUTE, &spans);
  int st = fy_rt_stage_find(rt, stage);
  double total = 0;
  int64_t steps = 0;
  for (int64_t i = 0; i < n; i++) {
    if (spans[i].stage != st) continue;
    const fy_cmd_t *cmd = &s->stages[st].cmds[FY_QUEUE_COMPUTE][spans[i].cmd];
    if (cmd->kind == FY_CMD_LAUNCH && cmd->layer >= 0) total += spans[i].end - spans[i].start;
    if (spans[i].step + 1 > steps) steps = spans[i].step + 1;
  }
  return total / (double)(steps ? steps : 1) / (double)s->graph->config.n_layers;
}

typedef struct {
  double decode_layer, prefill_layer; /* seconds */
} kernel_times_t;

/* Every weight resident, no bus: the kernels alone. */
static fy_status_t measure_kernels(const fy_graph_t *g, const fy_target_t *t, const bench_options_t *o,
                                   kernel_times_t *out) {
  fy_schedule_t *s;
  FY_TRY(compile_schedule(g, t, FY_POLICY_FERRY, 0, &s));
  fy_rt_options_t ro = {.n_threads = o->threads, .trace = true, .trace_steps = o->steps};
  fy_rt_t *rt = NULL;
  float *logits = malloc(sizeof(float) * (size_t)g->config.vocab);
  fy_status_t st = logits ? fy_rt_open_schedule(g, s, &ro, &rt) : fy_status_make(FY_RESOURCE_EXHAUSTED, "oom");
  if (!st) st = run_sequence(rt, logits);
  if (!st) *out = (kernel_times_t){layer_seconds(rt, "decode"), layer_seconds(rt, "prefill")};
  fy_rt_close(rt);
  free(logits);
  fy_schedule_destroy(s);
  return st;
}

/* A target whose device is this CPU (as measured) behind a bus of h2d_gbps;
 * its host side is 4x slower, so that host placement is what ngl forces. */
static fy_target_t calibrated(const fy_target_t *base, const fy_graph_t *g, const kernel_times_t *k, double h2d_gbps) {
  fy_target_t t = *base;
  snprintf(t.name, sizeof t.name, "cpu-calibrated");
  snprintf(t.description, sizeof t.description, "this CPU as the device, behind an emulated bus");
  t.vram_bytes = 1ull << 40;
  t.reserve_bytes = 0;
  double layer_bytes = (double)fy_graph_weight_bytes(g, 0), layer_params = (double)fy_graph_param_count(g, 0);
  t.mem_bw_gbps = layer_bytes / k->decode_layer / 1e9;
  t.bf16_tflops = t.fp16_tflops = t.fp32_tflops = 2 * layer_params * PROMPT / k->prefill_layer / 1e12;
  t.launch_overhead_us = 1;
  t.h2d_pinned_gbps = h2d_gbps;
  t.h2d_pageable_gbps = h2d_gbps / 2;
  t.host_mem_bw_gbps = t.mem_bw_gbps / 4;
  t.cpu_gflops = t.fp32_tflops * 1e3 / 4;
  return t;
}

typedef struct {
  fy_policy_t policy;
  double predicted, step, compute, copy, wait, ratio;
  uint64_t streamed_bytes; /* per decode step */
  fy_status_t error;
} row_t;

static fy_status_t bench_policy(const fy_graph_t *g, const fy_target_t *t, uint64_t budget, double gbps,
                                const bench_options_t *o, row_t *row) {
  fy_schedule_t *s;
  FY_TRY(compile_schedule(g, t, row->policy, budget, &s));
  fy_sim_result_t sim = {0};
  fy_status_t st = fy_simulate(s, NULL, &sim);
  const fy_stage_schedule_t *decode = NULL;
  for (int i = 0; i < s->n_stages; i++)
    if (!strcmp(s->stages[i].name, "decode")) {
      decode = &s->stages[i];
      if (!st) row->predicted = sim.stages[i].step_seconds;
    }
  for (int k = 0; decode && k < decode->n_cmds[FY_QUEUE_COPY]; k++)
    if (decode->cmds[FY_QUEUE_COPY][k].kind == FY_CMD_COPY) row->streamed_bytes += decode->cmds[FY_QUEUE_COPY][k].bytes;
  fy_sim_result_free(&sim);
  fy_rt_options_t ro = {.n_threads = o->threads, .emulate_h2d_gbps = gbps, .trace = o->trace_dir != NULL};
  fy_rt_t *rt = NULL;
  float *logits = malloc(sizeof(float) * (size_t)g->config.vocab);
  if (!st) st = logits ? fy_rt_open_schedule(g, s, &ro, &rt) : fy_status_make(FY_RESOURCE_EXHAUSTED, "oom");
  double v[5][MAX_RUNS];
  for (int r = 0; !st && r < o->runs; r++) {
    measure_t m;
    st = run_sequence(rt, logits);
    if (!st) st = decode_measure(rt, &m);
    if (st) break;
    double bound = m.compute > m.copy ? m.compute : m.copy;
    v[0][r] = m.step, v[1][r] = m.compute, v[2][r] = m.copy, v[3][r] = m.wait, v[4][r] = m.step / bound;
  }
  if (!st) {
    row->step = median(v[0], o->runs), row->compute = median(v[1], o->runs), row->copy = median(v[2], o->runs);
    row->wait = median(v[3], o->runs), row->ratio = median(v[4], o->runs);
  }
  if (!st && o->trace_dir) {
    char path[1024];
    snprintf(path, sizeof path, "%s/overlap-%s.json", o->trace_dir, fy_policy_name(row->policy));
    st = fy_rt_write_trace(rt, path);
  }
  fy_rt_close(rt);
  free(logits);
  fy_schedule_destroy(s);
  return st;
}

static int parse_args(int argc, char **argv, bench_options_t *o) {
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  /* One core stays with the copy thread, as a DMA engine would. */
  *o = (bench_options_t){.runs = 5, .steps = 16, .threads = cpus > 1 ? (int)cpus - 1 : 1};
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--runs")) o->runs = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--steps")) o->steps = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--threads")) o->threads = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--dir")) o->dir = argv[i + 1];
    else if (!strcmp(argv[i], "--trace-dir")) o->trace_dir = argv[i + 1];
    else return 2;
  }
  if ((argc - 1) % 2 || o->runs < 1 || o->runs > MAX_RUNS || o->steps < 1 || o->threads < 1) return 2;
  return 0;
}

int main(int argc, char **argv) {
  bench_options_t o;
  if (parse_args(argc, argv, &o)) {
    fprintf(stderr, "usage: bench_overlap [--runs N (1..%d)] [--steps N] [--threads N] [--dir SCRATCH] "
                    "[--trace-dir DIR]\n", MAX_RUNS);
    return 2;
  }
  char dir[1024];
  const char *scratch = o.dir ? o.dir : getenv("FERRY_TMP") ? getenv("FERRY_TMP") : "/tmp";
  snprintf(dir, sizeof dir, "%s/bench-overlap-small", scratch);
  fy_synth_options_t so = {.preset = "small", .seed = 1, .dtype = FY_DTYPE_BF16};
  fy_load_options_t lo = {.prefill_tokens = PROMPT, .generate = o.steps, .context = PROMPT + o.steps};
  fy_graph_t *g = NULL;
  fy_target_t demo;
  fy_status_t st = fy_synth_write(dir, &so);
  if (!st) st = fy_model_load(dir, &lo, &g);
  if (!st) st = fy_target_load("demo", FERRY_TARGETS_DIR, &demo);
  kernel_times_t k;
  demo.vram_bytes = 1ull << 40;
  if (!st) st = measure_kernels(g, &demo, &o, &k);
  if (st) {
    fprintf(stderr, "bench_overlap: %s\n", fy_status_message(st));
    fy_status_free(st);
    fy_graph_destroy(g);
    return 1;
  }
  double layer_bytes = (double)fy_graph_weight_bytes(g, 0);
  double gbps = layer_bytes / k.decode_layer / 1e9;
  fy_target_t t = calibrated(&demo, g, &k, gbps);
  /* Everything fits, less half the layers: about half of them stream. */
  fy_schedule_t *all = NULL;
  st = compile_schedule(g, &t, FY_POLICY_FERRY, 0, &all);
  uint64_t budget = all ? all->device_bytes - (uint64_t)(g->config.n_layers / 2) * (uint64_t)layer_bytes : 0;
  fy_schedule_destroy(all);

  printf("bench/overlap: small preset (bf16, %lld layers of %.1f MiB), prompt %d + %d decode steps,\n"
         "%d compute thread(s) + the copy thread, median of %d runs.\n",
         (long long)g->config.n_layers, layer_bytes / 1048576.0, PROMPT, o.steps, o.threads, o.runs);
  printf("compute only (all resident, no bus): %.2f ms per layer in decode, %.2f ms in prefill of %d tokens.\n",
         k.decode_layer * 1e3, k.prefill_layer * 1e3, PROMPT);
  printf("bus emulated at %.2f GB/s: one layer's copy takes its decode compute time. Budget %.1f MiB.\n", gbps,
         budget / 1048576.0);
  printf("Per decode step: step = wall time, compute/copy = the queues' busy time, overlap = step / max(compute, "
         "copy)\n(1.00 = copies hidden entirely), predicted = the simulator on the calibrated target.\n\n");
  printf("%-11s %12s %9s %11s %9s %10s %9s %13s %10s\n", "policy", "streamed MiB", "step ms", "compute ms", "copy ms",
         "waited ms", "overlap", "predicted ms", "meas/pred");
  for (int p = 0; p < FY_POLICY_COUNT && !st; p++) {
    row_t row = {.policy = (fy_policy_t)p};
    fy_status_t e = bench_policy(g, &t, budget, gbps, &o, &row);
    if (e) {
      printf("%-11s %s\n", fy_policy_name(row.policy), fy_status_message(e));
      fy_status_free(e);
      continue;
    }
    printf("%-11s %12.1f %9.2f %11.2f %9.2f %10.2f %9.2f %13.2f %10.2f\n", fy_policy_name(row.policy),
           row.streamed_bytes / 1048576.0, row.step * 1e3, row.compute * 1e3, row.copy * 1e3, row.wait * 1e3,
           row.ratio, row.predicted * 1e3, row.predicted > 0 ? row.step / row.predicted : 0.0);
  }
  if (st) {
    fprintf(stderr, "bench_overlap: %s\n", fy_status_message(st));
    fy_status_free(st);
  }
  fy_graph_destroy(g);
  return st ? 1 : 0;
}
