/* The schedule compiler's properties, over randomized shapes, budgets and
 * prefetch depths (shape-only llama graphs):
 *  - every schedule passes the checker and fits its budget;
 *  - more budget never makes ferry's predicted request time worse;
 *  - when everything fits, nothing is streamed (no copies after the load);
 *  - the simulator's timeline respects every dependency;
 *  - ferry is never worse than any baseline policy;
 *  - a budget below the largest layer plus activations is refused, naming
 *    the layer and the bytes missing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/llama.h"
#include "passes/compile.h"
#include "schedules/schedule.h"
#include "schedules/simulate.h"
#include "tests/check.h"


static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return rng;
}
static int64_t pick(int64_t lo, int64_t hi) { return lo + (int64_t)(next() % (uint64_t)(hi - lo + 1)); }

static fy_graph_t *random_graph(int64_t prompt, int64_t generate) {
  fy_graph_t *g;
  if (fy_graph_create(&g)) return NULL;
  fy_model_config_t *c = &g->config;
  int64_t kv = pick(1, 4), group = pick(1, 4), head_dim = 16 * pick(1, 8);
  c->architecture = next() % 2 ? "LlamaForCausalLM" : "Qwen2ForCausalLM";
  c->qkv_bias = !strcmp(c->architecture, "Qwen2ForCausalLM");
  c->n_kv_heads = kv;
  c->n_heads = kv * group;
  c->head_dim = head_dim;
  c->hidden = c->n_heads * head_dim;
  c->ffn = 64 * pick(2, 40);
  c->n_layers = pick(1, 24);
  c->vocab = 256 * pick(1, 64);
  c->rms_eps = 1e-5;
  c->rope.theta = 10000;
  c->tie_embeddings = next() % 2;
  c->dtype = next() % 2 ? FY_DTYPE_BF16 : FY_DTYPE_F32;
  fy_load_options_t o = {.prefill_tokens = prompt, .generate = generate};
  fy_status_t s = fy_llama_build(g, &o, NULL);
  if (s) {
    printf("build: %s\n", fy_status_message(s));
    fy_status_free(s);
    fy_graph_destroy(g);
    return NULL;
  }
  return g;
}

static fy_target_t test_target(void) {
  fy_target_t t = {.name = "test", .code_target = "spirv", .vram_bytes = 1ull << 40, .reserve_bytes = 0,
                   .host_ram_bytes = 1ull << 40, .h2d_pinned_gbps = 1.0 + (double)(next() % 20),
                   .h2d_pageable_gbps = 1.0, .d2h_gbps = 1.0, .disk_read_gbps = 1.0, .fp16_tflops = 1.0,
                   .bf16_tflops = 0.5 + (double)(next() % 10) / 10, .fp32_tflops = 0.3, .mem_bw_gbps = 50.0,
                   .launch_overhead_us = 5, .cpu_gflops = 50, .host_mem_bw_gbps = 4.0 + (double)(next() % 40)};
  return t;
}

typedef struct {
  fy_status_t status;
  double request;
  uint64_t copies_after_load;
} outcome_t;

/* Compiles, builds, checks and simulates; verifies budget and timeline. */
static outcome_t run_one(const fy_graph_t *g, const fy_target_t *t, fy_policy_t policy, int prefetch,
                         uint64_t budget, bool check_timeline) {
  outcome_t out = {0};
  fy_compile_options_t o = {.policy = policy, .prefetch = prefetch, .budget = budget};
  fy_compile_t *c;
  out.status = fy_compile_run(g, t, &o, &c);
  if (out.status) return out;
  fy_schedule_t *s;
  out.status = fy_schedule_build(c, &s);
  if (out.status) {
    fy_compile_destroy(c);
    return out;
  }
  fy_status_t chk = fy_schedule_check(s);
  CHECK(!chk, "checker rejects a compiled schedule (policy %s, budget %llu): %s", fy_policy_name(policy),
        (unsigned long long)budget, fy_status_message(chk));
  fy_status_free(chk);
  CHECK(s->device_bytes <= budget, "device bytes %llu exceed budget %llu", (unsigned long long)s->device_bytes,
        (unsigned long long)budget);
  for (int i = 1; i < s->n_stages; i++)
    for (int k = 0; k < s->stages[i].n_cmds[FY_QUEUE_COPY]; k++)
      out.copies_after_load += s->stages[i].cmds[FY_QUEUE_COPY][k].kind == FY_CMD_COPY;
  fy_sim_result_t r = {0};
  fy_sim_options_t so = {.record_spans = check_timeline, .max_traced_steps = 3};
  fy_status_t sim = fy_simulate(s, &so, &r);
  CHECK(!sim, "simulate: %s", fy_status_message(sim));
  fy_status_free(sim);
  out.request = r.request_seconds;
  for (int rg = 0; rg < FY_REGION_COUNT; rg++)
    CHECK(r.peak_bytes[rg] <= s->regions[rg].bytes, "region %d peak %llu > size %llu", rg,
          (unsigned long long)r.peak_bytes[rg], (unsigned long long)s->regions[rg].bytes);
  if (check_timeline && !sim) {
    /* Every launch that reads a streamed group starts after that group's
     * copies of the same step end; each queue runs its commands in order.
     * (Copies into a slot after the previous user's eviction: the checker's part.) */
    int broken = 0;
    for (int64_t i = 0; i < r.n_spans && !broken; i++) {
      const fy_sim_span_t *a = &r.spans[i];
      const fy_cmd_t *ca = &s->stages[a->stage].cmds[a->queue][a->cmd];
      if (a->end < a->start) broken = printf("span %lld ends before it starts\n", (long long)i);
      for (int64_t j = 0; j < r.n_spans; j++) {
        const fy_sim_span_t *b = &r.spans[j];
        if (b->stage != a->stage) continue;
        const fy_cmd_t *cb = &s->stages[b->stage].cmds[b->queue][b->cmd];
        if (b->queue == a->queue && (b->step < a->step || (b->step == a->step && b->cmd < a->cmd)))
          if (b->end > a->start + 1e-12) broken = printf("queue order broken at span %lld\n", (long long)i);
        if (a->queue == FY_QUEUE_COMPUTE && ca->kind == FY_CMD_LAUNCH && ca->group >= 0 && b->queue == FY_QUEUE_COPY &&
            cb->kind == FY_CMD_COPY && cb->group == ca->group && b->step == a->step)
          if (b->end > a->start + 1e-12) broken = printf("launch of node %d starts before its weights\n", ca->node);
      }
    }
    CHECK(!broken && r.n_spans > 0, "the simulated timeline breaks a dependency");
  }
  fy_sim_result_free(&r);
  fy_schedule_destroy(s);
  fy_compile_destroy(c);
  return out;
}

int main(void) {
  for (int trial = 0; trial < 40; trial++) {
    fy_graph_t *g = random_graph(pick(1, 64), pick(1, 16));
    CHECK(g != NULL, "random graph %d", trial);
    if (!g) continue;
    fy_target_t t = test_target();
    uint64_t weights = fy_graph_weight_bytes(g, -2);
    /* the smallest budget any policy accepts, found from the error */
    double prev = INFINITY;
    int prefetch = (int)pick(-1, 3);
    int accepted = 0;
    for (int step = 0; step <= 12; step++) {
      uint64_t budget = weights / 6 + (uint64_t)((double)weights * 1.3 * step / 12.0);
      outcome_t f = run_one(g, &t, FY_POLICY_FERRY, prefetch, budget, trial < 6 && step % 4 == 1);
      if (f.status) {
        CHECK(fy_status_code(f.status) == FY_RESOURCE_EXHAUSTED, "unexpected error: %s",
              fy_status_message(f.status));
        CHECK(accepted == 0, "budget %llu refused after a smaller one was accepted: %s", (unsigned long long)budget,
              fy_status_message(f.status));
        fy_status_free(f.status);
        continue;
      }
      accepted++;
      CHECK(f.request <= prev * (1 + 1e-9), "trial %d: more budget (%llu) made ferry slower: %.9g > %.9g", trial,
            (unsigned long long)budget, f.request, prev);
      prev = f.request;
      if (budget >= weights * 2 + (64u << 20) * 4)
        CHECK(f.copies_after_load == 0, "everything fits but %llu copies remain",
              (unsigned long long)f.copies_after_load);
      for (int p = 1; p < FY_POLICY_COUNT; p++) {
        outcome_t b = run_one(g, &t, (fy_policy_t)p, -1, budget, false);
        if (b.status) {
          fy_status_free(b.status);
          continue;
        }
        CHECK(f.request <= b.request * (1 + 1e-9), "trial %d budget %llu: ferry %.6g slower than %s %.6g", trial,
              (unsigned long long)budget, f.request, fy_policy_name((fy_policy_t)p), b.request);
      }
    }
    CHECK(accepted > 0, "trial %d: no budget accepted", trial);
    fy_graph_destroy(g);
  }

  /* A budget too small names the layer and the bytes missing. */
  fy_graph_t *g = random_graph(16, 4);
  fy_target_t t = test_target();
  outcome_t tiny = run_one(g, &t, FY_POLICY_FERRY, -1, 4096, false);
  CHECK(tiny.status && strstr(fy_status_message(tiny.status), "model.layers.") &&
            strstr(fy_status_message(tiny.status), "bytes missing"),
        "small budget error: %s", fy_status_message(tiny.status));
  fy_status_free(tiny.status);
  fy_graph_destroy(g);

  return check_summary();
}
