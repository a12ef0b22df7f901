/* A schedule in words: what `ferry compile` prints and `ferry inspect` shows
 * for a plan. */
#ifndef FERRY_SCHEDULES_SUMMARY_H
#define FERRY_SCHEDULES_SUMMARY_H

#include <stdio.h>

#include "schedules/schedule.h"
#include "schedules/simulate.h"

/* Target, budget, memory map, per-layer residency and bytes with predicted
 * compute per stage, per-stage predicted times (sim may be NULL). */
void fy_schedule_print_summary(const fy_schedule_t *s, const fy_sim_result_t *sim, FILE *out);

#endif
