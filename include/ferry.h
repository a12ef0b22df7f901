/* ferry: the embedding API. Open a compiled plan with the weights it was
 * compiled for, run a sequence (one prefill, then decode steps), read the
 * logits, the statistics and the measured timeline, close.
 *
 * A runtime replays the plan's command streams exactly: the copy queue on a
 * copy thread, the compute queue on the calling thread, synchronised only by
 * the plan's events (docs/runtime.md). Everything it needs is allocated at
 * open from the plan's sizes (device arena, staging ring); running allocates
 * nothing. One runtime is used from one thread at a time; several runtimes
 * may run side by side. Errors are values (ferry/status.h): the caller owns
 * and frees a returned status. */
#ifndef FERRY_H
#define FERRY_H

#include <stdbool.h>
#include <stdint.h>

#include "ferry/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fy_rt fy_rt_t;

/* The poison pattern: the bytes a0 7f repeated. As f32 (0x7fa07fa0) and as
 * bf16 (0x7fa0) it is a signalling NaN; as f16 a NaN; as an i32 token id it is
 * out of every vocabulary. Any read of memory the plan did not fill shows. */
#define FY_RT_POISON_BYTE0 0xa0u
#define FY_RT_POISON_BYTE1 0x7fu

typedef struct fy_rt_options {
  const char *backend;     /* "cpu" (NULL = "cpu") */
  const char *weights_dir; /* NULL: the weight files at the paths the plan records; else the files with the
                              same base names in this folder */
  int n_threads;           /* compute threads; <= 0 = every online CPU. Results do not depend on it. */
  bool poison;             /* fill device memory with the poison pattern at open and every evicted slot range */
  double emulate_h2d_gbps; /* > 0: each copy takes at least bytes / (gbps * 1e9) seconds, like the target's bus */
  bool force;              /* replay a plan compiled for a code target the backend does not run */
  bool trace;              /* record every command's start and end for fy_rt_write_trace */
  int trace_steps;         /* steps recorded per stage with trace; <= 0 = 8 */
  bool pick_device;        /* use device (else the backend's best: discrete GPUs first) */
  int device;              /* the device's index among the backend's devices, as ferry devices lists them */
} fy_rt_options_t;

/* Opens a plan file (verified in full by the plan reader) and binds its
 * weights: each weight file must have the size and header fingerprint the plan
 * recorded, else FY_INCOMPATIBLE naming the file and what differs. Runs the
 * plan's load stage (the resident weights are copied in). options may be NULL
 * (defaults). A plan compiled for a code target the backend does not run
 * (the cpu backend runs "spirv" plans) is FY_INCOMPATIBLE unless force. */
fy_status_t fy_rt_open(const char *plan_path, const fy_rt_options_t *options, fy_rt_t **out_rt);
/* Cancels the copy queue's run-ahead, joins the threads, frees everything. */
void fy_rt_close(fy_rt_t *rt);

/* Logits per step (the vocabulary size). */
int64_t fy_rt_vocab(const fy_rt_t *rt);
/* Most tokens one prefill takes (the plan's prompt length). */
int64_t fy_rt_max_prompt(const fy_rt_t *rt);
/* Decode steps one sequence may take (the plan's decode repeat). */
int64_t fy_rt_max_decode(const fy_rt_t *rt);
/* KV cache capacity in tokens. */
int64_t fy_rt_context(const fy_rt_t *rt);
/* Tokens in the KV cache: the position of the next token. */
int64_t fy_rt_position(const fy_rt_t *rt);

/* Starts a new sequence (cancelling the previous one's copy run-ahead): runs
 * the prefill stage over tokens[0..n) at position 0, 1 <= n <= max_prompt,
 * and writes the last token's logits (vocab floats). Afterwards the copy
 * queue starts prefetching the first decode step. */
fy_status_t fy_rt_prefill(fy_rt_t *rt, const int32_t *tokens, int64_t n, float *out_logits);
/* Runs one decode step on token at the current position and writes its
 * logits. FY_OUT_OF_RANGE past max_decode steps or the KV cache. After an
 * error the sequence is over: the next call must be a prefill. */
fy_status_t fy_rt_decode(fy_rt_t *rt, int32_t token, float *out_logits);

/* Measured per plan stage ("load", "prefill", "decode"). Load is measured
 * once at open; the others since the last prefill. */
typedef struct fy_rt_stage_stats {
  const char *name;        /* owned by the runtime */
  int64_t steps;           /* compute-queue steps run */
  int64_t tokens;          /* tokens processed */
  double wall_seconds;     /* time inside open (load), fy_rt_prefill or fy_rt_decode */
  double compute_seconds;  /* compute queue in launches */
  double wait_seconds;     /* compute queue in WAITs: the time compute waited on copies */
  double copy_seconds;     /* copy queue busy copying (the bus, emulated or not) */
  uint64_t copied_bytes;   /* weight bytes copied to the device, the copy run-ahead included */
  int64_t copy_steps;      /* copy-queue steps completed */
} fy_rt_stage_stats_t;

int fy_rt_stage_count(const fy_rt_t *rt);
/* Index of the stage with that name, or -1. */
int fy_rt_stage_find(const fy_rt_t *rt, const char *name);
/* FY_OUT_OF_RANGE for a bad index. */
fy_status_t fy_rt_stage_stats(const fy_rt_t *rt, int stage, fy_rt_stage_stats_t *out_stats);

/* Host memory the runtime holds, all allocated at open: the device arena
 * (on the cpu backend), the staging ring and the rest (tables, trace buffers).
 * The mapped weight files are not counted: they are file-backed pages. */
typedef struct fy_rt_memory {
  uint64_t device_bytes;  /* the plan's device arena */
  uint64_t staging_bytes; /* the staging ring: buffers x bytes */
  uint64_t host_bytes;    /* everything the runtime allocated, arena and staging included */
} fy_rt_memory_t;

void fy_rt_memory(const fy_rt_t *rt, fy_rt_memory_t *out_memory);

/* Writes the recorded timeline (options.trace) as Chrome trace JSON:
 * {"traceEvents":[...]} with one "X" event per command (ts, dur in
 * microseconds since open; tid 0 = compute queue, 1 = copy queue) and "C"
 * counter events of the bytes in use per device region. Written atomically.
 * FY_INVALID_ARGUMENT when the runtime was opened without trace. */
fy_status_t fy_rt_write_trace(const fy_rt_t *rt, const char *path);

#ifdef __cplusplus
}
#endif
#endif
