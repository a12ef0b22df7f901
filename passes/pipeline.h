/* The layer-level pipeline model the residency search optimises: each stage
 * is a list of units (the embedding prologue, each layer, the head epilogue)
 * with a compute time and the bytes streamed before it; copies run in order
 * on the copy queue into a ring of n_slots slots, each unit waits for its
 * copy, a slot is reused once its previous unit has run. It is the same
 * event order that fy_schedule_build emits and fy_simulate replays, at layer
 * granularity, so the search can afford thousands of evaluations. */
#ifndef FERRY_PASSES_PIPELINE_H
#define FERRY_PASSES_PIPELINE_H

#include <stdint.h>

typedef struct fy_pipeline_unit {
  double compute_seconds; /* all the unit's nodes, on the GPU or on the host */
  double copy_seconds;    /* its streamed group; 0 = nothing streamed */
} fy_pipeline_unit_t;

/* Seconds for `repeat` steps of a stage of n units through n_slots slots.
 * Exact: steps are simulated until the schedule becomes periodic, then the
 * period is extrapolated. Also returns the first step's seconds. */
double fy_pipeline_stage_seconds(const fy_pipeline_unit_t *units, int n, int n_slots, int64_t repeat,
                                 double *out_first_step);

#endif
