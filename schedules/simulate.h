/* The simulator: replays a schedule on the target's cost model, event by
 * event, honouring queue order and every WAIT, and reports times, bus use,
 * compute time spent waiting on copies, and peak bytes per region.
 * Each command takes its fy_cmd_t.seconds; SIGNAL, WAIT, EVICT and CHUNK
 * markers take none. A stage with repeat R is simulated step by step (all R
 * steps), the copy queue free to run ahead into the next step as events allow. */
#ifndef FERRY_SCHEDULES_SIMULATE_H
#define FERRY_SCHEDULES_SIMULATE_H

#include "schedules/schedule.h"

typedef struct fy_sim_stage {
  double first_step_seconds; /* step 0 */
  double step_seconds;       /* the last step (steady state) */
  double total_seconds;      /* all repeat steps, from the stage's start to its last command */
  double copy_busy_seconds;  /* time the copy queue spent copying */
  double compute_busy_seconds;
  double compute_wait_seconds; /* time the compute queue sat in WAITs on copies */
  uint64_t copied_bytes;
} fy_sim_stage_t;

/* One executed command, for traces: stage, queue, index in its list, step. */
typedef struct fy_sim_span {
  int stage, queue, cmd;
  int64_t step;
  double start, end; /* seconds from the start of the stage */
} fy_sim_span_t;

typedef struct fy_sim_result {
  fy_sim_stage_t *stages; /* one per schedule stage */
  int n_stages;
  double load_seconds;    /* the "load" stage: once per process, not per request */
  double request_seconds; /* every other stage's total: prefill + decode steps */
  double bus_busy_fraction; /* copy busy / request time */
  double compute_wait_seconds;
  uint64_t peak_bytes[FY_REGION_COUNT]; /* most bytes in use at once per region */
  /* With record_spans: every command executed (steps beyond max_traced_steps are left out). */
  fy_sim_span_t *spans;
  int64_t n_spans;
} fy_sim_result_t;

typedef struct fy_sim_options {
  bool record_spans;
  int64_t max_traced_steps; /* spans of steps [0, max_traced_steps) per stage; 0 = 4 */
} fy_sim_options_t;

fy_status_t fy_simulate(const fy_schedule_t *s, const fy_sim_options_t *options, fy_sim_result_t *out_result);
void fy_sim_result_free(fy_sim_result_t *r);

#endif
