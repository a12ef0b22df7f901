/* The layer-level pipeline model (see pipeline.h). */
#include "passes/pipeline.h"

#include <math.h>
#include <string.h>

#define MAX_SLOTS 64

static double max2(double a, double b) { return a > b ? a : b; }

double fy_pipeline_stage_seconds(const fy_pipeline_unit_t *units, int n, int n_slots, int64_t repeat,
                                 double *out_first_step) {
  if (n_slots < 1) n_slots = 1;
  if (n_slots > MAX_SLOTS) n_slots = MAX_SLOTS;
  double copy_free = 0, compute_free = 0, slot_free[MAX_SLOTS] = {0};
  double prev_state[MAX_SLOTS + 1], prev_step = -1, first = 0;
  int k = 0; /* group counter within the ring */
  for (int64_t step = 0; step < repeat; step++) {
    double step_start = compute_free;
    k = 0;
    for (int u = 0; u < n; u++) {
      double ready = 0;
      int slot = -1;
      if (units[u].copy_seconds > 0) {
        slot = k++ % n_slots;
        double start = max2(copy_free, slot_free[slot]);
        copy_free = start + units[u].copy_seconds;
        ready = copy_free;
      }
      double start = max2(compute_free, ready);
      compute_free = start + units[u].compute_seconds;
      if (slot >= 0) slot_free[slot] = compute_free;
    }
    double step_seconds = compute_free - step_start;
    if (step == 0) first = step_seconds;
    /* The state relative to the end of the step; when it repeats with the
     * same step length, every later step repeats too (the model is max-plus
     * linear and deterministic). The ring restarts at slot 0 each step, so
     * slot identities line up across steps. */
    double state[MAX_SLOTS + 1];
    state[0] = copy_free - compute_free;
    for (int s = 0; s < n_slots; s++) state[s + 1] = slot_free[s] - compute_free;
    if (step > 0 && fabs(step_seconds - prev_step) <= 1e-12 * max2(1.0, step_seconds) &&
        !memcmp(state, prev_state, sizeof(double) * (size_t)(n_slots + 1))) {
      compute_free += (double)(repeat - 1 - step) * step_seconds;
      break;
    }
    memcpy(prev_state, state, sizeof(double) * (size_t)(n_slots + 1));
    prev_step = step_seconds;
  }
  if (out_first_step) *out_first_step = first;
  return compute_free;
}
