/* The schedule: what a plan replays. Built from the passes' decisions
 * (passes/compile.h) by fy_schedule_build; checked by fy_schedule_check;
 * replayed on the target's cost model by fy_simulate (simulate.h); written
 * to and read from plan files by plan_*.c.
 *
 * Device memory is one address space of device_bytes, cut into regions.
 * Each stage has one command list per queue. A stage runs `repeat` steps;
 * the queues replay their lists once per step, synchronised only by events.
 *
 * Events are counters (timeline semaphores): SIGNAL e during step s sets
 * e to s+1; WAIT e with step_delta d during step s waits until e >= s+1+d,
 * so d = 0 waits for this step's signal and d = -1 for the previous step's
 * (trivially satisfied in step 0). That lets the copy queue run ahead into
 * the next step (prefetch across decode steps) as far as slots allow.
 * Events are per stage; between stages both queues drain.
 *
 * All arrays are owned by the schedule: fy_schedule_destroy frees them. */
#ifndef FERRY_SCHEDULES_SCHEDULE_H
#define FERRY_SCHEDULES_SCHEDULE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ferry/status.h"
#include "ir/ir.h"
#include "passes/compile.h"

typedef enum fy_region_kind {
  FY_REGION_RESIDENT,    /* weights kept for the plan's lifetime */
  FY_REGION_SLOTS,       /* the streaming ring: n_slots × slot_bytes */
  FY_REGION_KV,          /* KV cache */
  FY_REGION_ACTIVATIONS, /* activation arena, inputs and outputs included */
  FY_REGION_COUNT
} fy_region_kind_t;

typedef struct fy_region {
  uint64_t offset, bytes; /* in device memory */
} fy_region_t;

typedef enum fy_queue {
  FY_QUEUE_COMPUTE,
  FY_QUEUE_COPY,
  FY_QUEUE_COUNT
} fy_queue_t;

typedef enum fy_cmd_kind {
  FY_CMD_COPY,        /* copy bytes of a weight file to device memory (copy queue) */
  FY_CMD_SIGNAL,      /* event = step + 1 */
  FY_CMD_WAIT,        /* until event >= step + 1 + step_delta */
  FY_CMD_LAUNCH,      /* run one node (compute queue) */
  FY_CMD_EVICT,       /* the slot's contents are dead from here on (compute queue); poisoned on request */
  FY_CMD_CHUNK_BEGIN, /* launches up to CHUNK_END form one dispatch unit (CUDA graph, command buffer) */
  FY_CMD_CHUNK_END,
  FY_CMD_KIND_COUNT
} fy_cmd_kind_t;

/* Where one argument of a launched node is. */
typedef enum fy_location_kind {
  FY_LOC_DEVICE,    /* device memory at offset */
  FY_LOC_HOST_FILE, /* a weight read in place from host memory (the mapped file) by a host-run node */
} fy_location_kind_t;

typedef struct fy_binding {
  fy_location_kind_t kind;
  int file;        /* FY_LOC_HOST_FILE */
  uint64_t offset; /* device offset, or file offset */
} fy_binding_t;

typedef struct fy_cmd {
  fy_cmd_kind_t kind;
  int layer;           /* for people and traces; -1 = none */
  /* COPY */
  int file;
  uint64_t file_offset, bytes, device_offset;
  int group;           /* COPY, EVICT: the stream group (per stage), -1 = none */
  /* SIGNAL, WAIT */
  int event;
  int step_delta;      /* WAIT: 0 or -1 */
  /* LAUNCH */
  int node;            /* graph node index */
  bool on_host;        /* runs on the CPU, weights read from host memory */
  fy_binding_t args[FY_MAX_NODE_INPUTS + 1]; /* node inputs, then its output */
  /* EVICT: the slot whose range [device_offset, +bytes) dies */
  int slot;
  double seconds;      /* predicted duration of this command alone */
} fy_cmd_t;

typedef struct fy_event_info {
  const char *name; /* "ready.layers.12", "free.slot.1" */
} fy_event_info_t;

typedef struct fy_stage_schedule {
  const char *name;   /* the graph stage's name, or "load" for the initial copy of resident weights */
  int graph_stage;    /* -1 for "load" */
  int64_t max_tokens, repeat;
  fy_cmd_t *cmds[FY_QUEUE_COUNT];
  int n_cmds[FY_QUEUE_COUNT], cap_cmds[FY_QUEUE_COUNT];
  fy_event_info_t *events;
  int n_events, cap_events;
  /* From the simulator (fy_simulate fills them in when asked to). */
  double predicted_first_step_seconds, predicted_step_seconds, predicted_total_seconds;
} fy_stage_schedule_t;

typedef struct fy_schedule {
  const fy_graph_t *graph; /* borrowed */
  fy_target_t target;
  fy_policy_t policy;
  int prefetch, n_slots;
  uint64_t slot_bytes;
  uint64_t budget;       /* device bytes the plan may use */
  uint64_t device_bytes; /* end of the last region */
  fy_region_t regions[FY_REGION_COUNT];
  uint64_t activation_lower_bound;
  /* Per value: where a weight lives (resident: device offset; else host), and
   * where activations, inputs, outputs and KV cache are (device offsets). */
  fy_placement_t *placement; /* per value (weights), as decided by residency */
  uint64_t *device_offset;   /* per value; UINT64_MAX when it has no fixed device place */
  fy_stage_schedule_t *stages; /* "load" first, then the graph's stages in order */
  int n_stages;
  fy_arena_t arena;            /* names */
} fy_schedule_t;

/* Builds the command streams from a finished compile. */
fy_status_t fy_schedule_build(const fy_compile_t *c, fy_schedule_t **out_schedule);
void fy_schedule_destroy(fy_schedule_t *s);

/* Proves the schedule safe, independently of how it was built: regions inside
 * device_bytes and disjoint, device_bytes <= budget; every node's attributes
 * those the model config gives its op; a graph stage's launches are its
 * nodes, each once per step, in graph order, with one binding per input and
 * output, each inside the region of its value's kind and aligned to its
 * dtype; every weight a launch reads is present — copied into its slot,
 * waited for on the compute queue, and not yet evicted — and no copy
 * overwrites a slot before the eviction of its previous contents has been
 * waited for; every activation, KV cache value, stage input and output read
 * (by a launch, or the runtime reading the output at device_offset) is the
 * write of that value, this step, at exactly that offset and size, not
 * overwritten since; events are signalled on one queue and waited on the
 * other; waits can be satisfied (no deadlock within a step). Errors name the
 * stage, queue and command index. */
fy_status_t fy_schedule_check(const fy_schedule_t *s);

const char *fy_region_name(fy_region_kind_t kind);
const char *fy_queue_name(fy_queue_t queue);
const char *fy_cmd_kind_name(fy_cmd_kind_t kind);

#endif
