/* The runtime's backend interface: what a device must do to replay a plan.
 *
 * The runtime core (runtime.c) owns the queues' host threads, the plan's
 * events as host timelines (sync.h), the mapped weight files and the order of
 * every command; a backend owns device memory and executes one command at a
 * time for the queue that calls it. Offsets are into the device arena of
 * exactly the plan's device_bytes. The copy path is staged: the core copies
 * bytes from the mapped file into staging buffer i (pinned memory on a GPU),
 * then calls copy(i, ...); before it refills buffer i it calls copy_wait(i).
 *
 * signal / wait are the device side of an event: the core has already
 * ordered the host threads through its timeline, so a backend whose queues
 * are asynchronous (CUDA streams, Vulkan queues) records and waits device
 * events here; the cpu backend executes on the calling thread and needs
 * nothing. chunk_begin / chunk_end bracket launches dispatched as one unit
 * (a CUDA graph, a command buffer). */
#ifndef FERRY_RUNTIME_BACKEND_H
#define FERRY_RUNTIME_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/status.h"
#include "ir/ir.h"
#include "schedules/plan.h"
#include "schedules/schedule.h"
#include "support/file.h"

typedef struct fy_rt_backend_params {
  const fy_graph_t *graph;
  const fy_schedule_t *schedule; /* the schedule to be replayed (which launches run on the host, ...) */
  const fy_mapping_t *files;     /* mapped weight files, parallel to graph->files (host-run launches read them) */
  int n_threads;                 /* <= 0 = every online CPU */
  int device;                    /* device index for GPU backends; < 0 = the backend's best */
  /* The plan's compiled kernels (plan meta); none for a schedule opened in memory. */
  const fy_plan_kernel_t *kernels;
  int n_kernels;
} fy_rt_backend_params_t;

/* One LAUNCH: the node, its bindings (cmd->args: inputs then output), the
 * rows of the step and the sequence position of its first row. */
typedef struct fy_rt_launch {
  const fy_cmd_t *cmd;
  int64_t n_tokens, pos;
} fy_rt_launch_t;

typedef struct fy_rt_backend {
  const char *name;
  const char *code_target; /* plans it runs without force: those whose target.code_target starts with it
                              ("spirv"; "sm" for every sm_XX) */
  fy_status_t (*create)(const fy_rt_backend_params_t *params, void **out_ctx);
  void (*destroy)(void *ctx);
  /* Device memory: one arena; staging: count buffers of bytes each. Once each, after create. */
  fy_status_t (*arena_alloc)(void *ctx, uint64_t bytes);
  fy_status_t (*staging_alloc)(void *ctx, int count, size_t bytes);
  void *(*staging)(void *ctx, int index);
  /* Host bytes the backend holds (arena and staging on the cpu backend). */
  uint64_t (*host_bytes)(void *ctx);
  /* Fills [offset, +bytes) with the pattern repeated (poisoning). */
  fy_status_t (*fill)(void *ctx, uint64_t offset, uint64_t bytes, const uint8_t *pattern, size_t pattern_bytes);
  /* Host <-> device for inputs and outputs, synchronous. */
  fy_status_t (*write)(void *ctx, uint64_t offset, const void *src, uint64_t bytes);
  fy_status_t (*read)(void *ctx, uint64_t offset, void *dst, uint64_t bytes);
  /* Copy queue: staging buffer -> device; copy_wait: the buffer may be refilled. */
  fy_status_t (*copy)(void *ctx, int staging, uint64_t offset, uint64_t bytes);
  fy_status_t (*copy_wait)(void *ctx, int staging);
  /* Compute queue. */
  fy_status_t (*launch)(void *ctx, const fy_rt_launch_t *launch);
  fy_status_t (*chunk_begin)(void *ctx, int chunk);
  fy_status_t (*chunk_end)(void *ctx, int chunk);
  /* Either queue: the device side of an event (value as in schedule.h). */
  fy_status_t (*signal)(void *ctx, fy_queue_t queue, int event, int64_t value);
  fy_status_t (*wait)(void *ctx, fy_queue_t queue, int event, int64_t value);
} fy_rt_backend_t;

/* The built-in backends (runtime/backends.c). */
extern const fy_rt_backend_t fy_rt_backend_cpu;
/* The backend with that name (NULL = "cpu"), or NULL when none is built in. */
const fy_rt_backend_t *fy_rt_backend_find(const char *name);
/* Writes the comma-separated names of the built-in backends ("cpu"), for errors. */
void fy_rt_backend_names(char *buf, size_t size);
/* Whether the backend replays plans compiled for code_target without force. */
bool fy_rt_backend_runs(const fy_rt_backend_t *backend, const char *code_target);

#endif
