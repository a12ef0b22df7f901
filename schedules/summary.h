/* A schedule in words: what `ferry compile` prints and `ferry inspect` shows
 * for a plan. The per-layer figures are functions so that other views of a
 * plan (plan_json.c, `ferry diff`) report exactly what the summary does. */
#ifndef FERRY_SCHEDULES_SUMMARY_H
#define FERRY_SCHEDULES_SUMMARY_H

#include <stdio.h>

#include "schedules/plan.h"
#include "schedules/schedule.h"
#include "schedules/simulate.h"

/* Target, budget, memory map, per-layer residency and bytes with predicted
 * compute per stage, per-stage predicted times. sim may be NULL: the times
 * recorded in the stages (predicted_*, as a plan carries them) are shown
 * instead, when there are any. */
void fy_schedule_print_summary(const fy_schedule_t *s, const fy_sim_result_t *sim, FILE *out);

/* Weight bytes of layer (-1: the global weights, embedding and head) kept
 * resident, and not resident (streamed, or read from host memory). */
void fy_schedule_layer_bytes(const fy_schedule_t *s, int layer, uint64_t *out_resident, uint64_t *out_streamed);

/* Where layer runs in schedule stage `stage`: "resident" (all its weights
 * resident), "streamed", or "host" (its kernels run on the CPU); and (when
 * out_seconds is not NULL) the sum of its kernels' predicted seconds there. */
const char *fy_schedule_layer_where(const fy_schedule_t *s, int stage, int layer, double *out_seconds);

/* What a plan carries beside its schedule: format and compiler version, the
 * options it was compiled with (as asked, before defaults applied) and the
 * free-form ones, the fingerprints binding it to its weights, and a count of
 * its kernels. */
void fy_plan_print_meta(const fy_plan_t *p, FILE *out);

#endif
