/* Timelines as Chrome trace JSON (chrome://tracing, Perfetto): one "X"
 * event per executed command, one thread per queue (tid 0 compute, 1 copy),
 * and "C" counter events of the bytes in use per device region. The spans
 * are the simulator's type, so a predicted timeline (fy_simulate with
 * record_spans) and a measured one (the runtime) are written alike and can
 * be laid side by side. */
#ifndef FERRY_SCHEDULES_TRACE_H
#define FERRY_SCHEDULES_TRACE_H

#include <stdint.h>

#include "ferry/status.h"
#include "schedules/schedule.h"
#include "schedules/simulate.h"

/* Writes spans of schedule s (start and end in seconds from one origin, in
 * any order) to path, atomically. process names the timeline ("measured
 * cpu", "predicted demo"). Slot bytes count from the start of a copy into a
 * slot until the EVICT of that slot, as in the simulator. */
fy_status_t fy_trace_write_chrome(const fy_schedule_t *s, const fy_sim_span_t *spans, int64_t n_spans,
                                  const char *process, const char *path);

#endif
