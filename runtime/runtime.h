/* The runtime's internal entry points, beside the public include/ferry.h:
 * open a schedule held in memory (tests, the CLI, benchmarks) and reach the
 * graph and schedule a runtime replays. */
#ifndef FERRY_RUNTIME_RUNTIME_H
#define FERRY_RUNTIME_RUNTIME_H

#include "ferry.h"
#include "ir/ir.h"
#include "schedules/schedule.h"
#include "schedules/simulate.h"

/* Opens a runtime on an in-memory schedule of graph g (s->graph == g). Both
 * are borrowed and must outlive the runtime. The schedule is NOT proven safe
 * here (fy_schedule_check does that; plan files are checked when read): it
 * is only checked to stay inside device memory and the weight files, so a
 * wrong schedule gives wrong answers, never a crash. Weight files are bound
 * as in fy_rt_open, against the sizes the graph records (no fingerprints). */
fy_status_t fy_rt_open_schedule(const fy_graph_t *g, const fy_schedule_t *s, const fy_rt_options_t *options,
                                fy_rt_t **out_rt);

/* The graph and schedule being replayed. A runtime opened from a plan file
 * owns them, and its graph's file paths are those of the bound weight files
 * (after the weights_dir option), so the reference interpreter can run it. */
const fy_graph_t *fy_rt_graph(const fy_rt_t *rt);
const fy_schedule_t *fy_rt_schedule(const fy_rt_t *rt);

/* The spans queue q has recorded so far (options.trace): the simulator's
 * span type, times in seconds since open. Valid until close. */
int64_t fy_rt_spans(const fy_rt_t *rt, fy_queue_t queue, const fy_sim_span_t **out_spans);

#endif
