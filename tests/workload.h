/* The workload the runtime tests replay on every backend and compare with
 * the reference: sequence A (a prefill of SHORT tokens and SHORT_DECODE
 * decode steps, then abandoned mid-sequence), then sequence B (a prefill of
 * PROMPT tokens and DECODE decode steps) — ROWS rows of logits in all. Token
 * ids stay below 256, the tiny preset's vocabulary. */
#ifndef FERRY_TESTS_WORKLOAD_H
#define FERRY_TESTS_WORKLOAD_H

#include <stdint.h>

#include "codegen/reference.h"
#include "ferry.h"

enum { PROMPT = 6, DECODE = 5, SHORT = 3, SHORT_DECODE = 2, ROWS = 1 + SHORT_DECODE + 1 + DECODE };
static const int32_t prompt[PROMPT] = {1, 200, 37, 5, 255, 17};
static const int32_t follow[DECODE] = {0, 99, 128, 3, 42};

/* Prefill and decode of either executor. */
typedef struct {
  fy_status_t (*prefill)(void *h, const int32_t *t, int64_t n, float *out);
  fy_status_t (*decode)(void *h, int32_t t, float *out);
} runner_t;

static fy_status_t ref_prefill(void *h, const int32_t *t, int64_t n, float *o) { return fy_reference_prefill(h, t, n, o); }
static fy_status_t ref_decode(void *h, int32_t t, float *o) { return fy_reference_decode(h, t, o); }
static fy_status_t rt_prefill(void *h, const int32_t *t, int64_t n, float *o) { return fy_rt_prefill(h, t, n, o); }
static fy_status_t rt_decode(void *h, int32_t t, float *o) { return fy_rt_decode(h, t, o); }
__attribute__((unused)) static const runner_t by_reference = {ref_prefill, ref_decode};
__attribute__((unused)) static const runner_t by_runtime = {rt_prefill, rt_decode};

/* Runs the workload; logits receives ROWS × vocab floats. */
__attribute__((unused)) static fy_status_t run_workload(const runner_t *r, void *h, int64_t vocab, float *logits) {
  float *row = logits;
  FY_TRY(r->prefill(h, prompt, SHORT, row));
  for (int j = 0; j < SHORT_DECODE; j++) FY_TRY(r->decode(h, follow[j], row += vocab));
  FY_TRY(r->prefill(h, prompt, PROMPT, row += vocab));
  for (int j = 0; j < DECODE; j++) FY_TRY(r->decode(h, follow[j], row += vocab));
  return NULL;
}

#endif
