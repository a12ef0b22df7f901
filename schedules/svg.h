/* A plan's predicted timeline as a picture (SVG): what `ferry inspect --svg`
 * writes. One panel per stage a request runs (prefill, decode): a copy lane
 * and a compute lane with copies and kernels as bars, coloured by layer
 * where a layer streams (its copy and its kernels share a colour), grey for
 * resident layers (runs dispatched as one chunk are bracketed), slate for
 * the embedding and head, amber for kernels run on the CPU; time spent
 * waiting (compute on a copy, a copy on a free slot) is shaded; under the
 * lanes, the device bytes in use per region, stacked, against the budget.
 * A stage run once is drawn whole; a repeated stage shows its first steps.
 * Bars narrower than a pixel are merged with their neighbours, so the size
 * of the file depends on its width, not on the number of commands. */
#ifndef FERRY_SCHEDULES_SVG_H
#define FERRY_SCHEDULES_SVG_H

#include <stdint.h>

#include "ferry/status.h"
#include "schedules/schedule.h"
#include "schedules/simulate.h"

#define FY_SVG_DEFAULT_STEPS 3

typedef struct fy_svg_options {
  const char *model_name; /* shown first in the title (e.g. the model folder); NULL = none */
  int64_t steps;          /* steps shown of a repeated stage; 0 = FY_SVG_DEFAULT_STEPS */
  int width;              /* pixels; 0 = 1400 */
} fy_svg_options_t;

/* Draws schedule s as simulated in sim, which must hold the spans
 * (fy_simulate with record_spans and max_traced_steps > steps: the copies
 * run ahead into the step after the window). Writes path atomically. */
fy_status_t fy_svg_write_timeline(const fy_schedule_t *s, const fy_sim_result_t *sim, const fy_svg_options_t *options,
                                  const char *path);

#endif
