/* The compile the runtime and backend tests share: a test target with a slow
 * host CPU (so layers run on the device unless a policy says otherwise) and
 * compile → schedule build into one owned pair. */
#ifndef FERRY_TESTS_COMPILED_H
#define FERRY_TESTS_COMPILED_H

#include <stdio.h>

#include "passes/compile.h"
#include "schedules/schedule.h"

__attribute__((unused)) static fy_target_t test_target(const char *code_target) {
  fy_target_t t = {.name = "test", .description = "test target", .sources = "chosen for tests",
                   .vram_bytes = 1ull << 40, .reserve_bytes = 0, .host_ram_bytes = 1ull << 40,
                   .h2d_pinned_gbps = 8, .h2d_pageable_gbps = 4, .d2h_gbps = 8, .disk_read_gbps = 2,
                   .fp16_tflops = 1, .bf16_tflops = 0.5, .fp32_tflops = 0.3, .mem_bw_gbps = 50,
                   .launch_overhead_us = 5, .cpu_gflops = 0.5, .host_mem_bw_gbps = 0.5};
  snprintf(t.code_target, sizeof t.code_target, "%s", code_target);
  return t;
}

typedef struct {
  fy_compile_t *c;
  fy_schedule_t *s;
} compiled_t;

/* Compiles g for test_target(code_target); budget 0 = everything fits. */
__attribute__((unused)) static fy_status_t compile_for(const fy_graph_t *g, const char *code_target,
                                                       fy_policy_t policy, int prefetch, uint64_t budget,
                                                       compiled_t *out) {
  fy_target_t t = test_target(code_target);
  fy_compile_options_t o = {.policy = policy, .prefetch = prefetch, .budget = budget};
  *out = (compiled_t){0};
  FY_TRY(fy_compile_run(g, &t, &o, &out->c));
  fy_status_t s = fy_schedule_build(out->c, &out->s);
  if (s) fy_compile_destroy(out->c), out->c = NULL;
  return s;
}

__attribute__((unused)) static void compiled_free(compiled_t *x) {
  fy_schedule_destroy(x->s);
  fy_compile_destroy(x->c);
}

#endif
