/* A plan as JSON: what `ferry inspect --json` prints, for scripts and
 * dashboards. The same content as the human summary (summary.h) and the
 * plan's meta: model, target, policy and slots, regions, per-layer residency
 * and bytes, per-stage command counts and predicted times, the options the
 * plan was compiled with, fingerprints and kernels (entry names and sizes,
 * not code). Byte counts are JSON numbers (exact below 2^53); digests are
 * 16-digit hex strings. Layout: docs/inspect.md. */
#ifndef FERRY_SCHEDULES_PLAN_JSON_H
#define FERRY_SCHEDULES_PLAN_JSON_H

#include "ferry/status.h"
#include "schedules/plan.h"
#include "schedules/simulate.h"

/* Builds the JSON text (indented, NUL-terminated). sim may be NULL: then
 * only the times recorded in the plan are given, and no peaks. The caller
 * frees *out_text with free(). */
fy_status_t fy_plan_to_json(const fy_plan_t *p, const fy_sim_result_t *sim, char **out_text);

#endif
