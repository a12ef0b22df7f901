/* Plan files: the compiled artifact (docs/plan-format.md, schema in
 * schedules/plan.fbs). A plan records everything needed to run a model but
 * its weights: the graph, the target, the compile options, the schedule,
 * the kernels, and fingerprints that bind it to the weights it was compiled
 * for. A plan is untrusted input: fy_plan_read verifies its structure
 * (every offset and size in bounds) and then its meaning (identifier,
 * version, enums, indices, sizes; fy_graph_verify; fy_schedule_check)
 * before anything is used. */
#ifndef FERRY_SCHEDULES_PLAN_H
#define FERRY_SCHEDULES_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "ferry/status.h"
#include "ir/ir.h"
#include "passes/compile.h"
#include "schedules/schedule.h"

/* Readers accept exactly this version; it changes when a plan's meaning
 * changes in a way an older reader would get wrong. New optional fields do
 * not change it. */
#define FY_PLAN_FORMAT_VERSION 1u

/* What a file looked like at compile time. All zero: not recorded. */
typedef struct fy_file_fingerprint {
  uint64_t size;         /* of the whole file */
  uint64_t hashed_bytes; /* the digest covers bytes [0, hashed_bytes) and the samples after them */
  uint64_t digest;       /* XXH3-64 */
} fy_file_fingerprint_t;

/* Fingerprints a file by reading only its head — a safetensors file's header
 * (the 8-byte length and the N bytes of JSON), or the first
 * FY_FINGERPRINT_MAX_BYTES of any other file (all of a config.json) — and
 * FY_FINGERPRINT_SAMPLES blocks of FY_FINGERPRINT_SAMPLE_BYTES spread evenly
 * over the rest, so that another seed or a fine-tune with the same header
 * does not pass for the weights a plan was compiled for. */
#define FY_FINGERPRINT_MAX_BYTES (16u << 20)
#define FY_FINGERPRINT_SAMPLES 16u
#define FY_FINGERPRINT_SAMPLE_BYTES 4096u
fy_status_t fy_fingerprint_file(const char *path, fy_file_fingerprint_t *out_fingerprint);

typedef struct fy_plan_option {
  const char *key, *value;
} fy_plan_option_t;

/* Compiled kernels for one (format, architecture), e.g. ("cubin", "sm_86"). */
typedef struct fy_plan_kernel {
  const char *format, *architecture;
  const uint8_t *code;
  size_t code_size;
  const char *const *entries; /* entry point names */
  int n_entries;
} fy_plan_kernel_t;

/* What a plan carries beside the graph and the schedule. Borrowed by
 * fy_plan_write; owned by the plan in a read plan. */
typedef struct fy_plan_meta {
  const char *compiler_version;  /* NULL writes "" */
  /* Recorded: policy, prefetch, budget (as asked, before defaults apply). */
  fy_compile_options_t options;
  const fy_plan_option_t *extra; /* free-form, for the CLI: "context", "generate", "prompt_tokens" */
  int n_extra;
  /* Parallel to graph->files, or NULL when none are recorded. */
  const fy_file_fingerprint_t *file_fingerprints;
  fy_file_fingerprint_t config_fingerprint; /* of config.json; all zero = none */
  const fy_plan_kernel_t *kernels;
  int n_kernels;
} fy_plan_meta_t;

/* Encodes a schedule (and its graph and target) as a plan in memory; the
 * caller frees *out_data. meta may be NULL (nothing beside the schedule). */
fy_status_t fy_plan_encode(const fy_schedule_t *s, const fy_plan_meta_t *meta, uint8_t **out_data,
                           size_t *out_size);
/* Encodes and writes atomically (no half-written file on failure). */
fy_status_t fy_plan_write(const char *path, const fy_schedule_t *s, const fy_plan_meta_t *meta);

typedef struct fy_plan {
  uint32_t format_version;
  const char *compiler_version;
  fy_graph_t *graph;       /* owned */
  fy_schedule_t *schedule; /* owned; schedule->graph == graph; schedule->target is the plan's target */
  fy_plan_meta_t meta;     /* arrays owned by the plan; file_fingerprints has graph->n_files entries */
  fy_arena_t arena;        /* meta's strings and arrays */
} fy_plan_t;

/* Verifies and decodes. Verification runs in full before anything is
 * used: structure (every offset, size, alignment and string in bounds),
 * then meaning (identifier, format version, enums, every index, shapes and
 * byte sizes), then fy_target_validate, fy_graph_verify and
 * fy_schedule_check on what was rebuilt. Errors name the field:
 * "plan.schedule.stages[1].compute[57].args[2]: offset past the end of the
 * buffer". The plan does not refer to data afterwards. */
fy_status_t fy_plan_read(const void *data, size_t size, fy_plan_t **out_plan);
/* Maps the file and reads it; errors start with the path. */
fy_status_t fy_plan_load(const char *path, fy_plan_t **out_plan);
void fy_plan_destroy(fy_plan_t *plan);

#endif
