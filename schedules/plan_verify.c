/* Plan verification over the raw buffer, before anything is decoded:
 *   1. structure: the description of every table of plan.fbs below, walked
 *      by fy_fb_verify (offsets, sizes, alignment, strings, nesting);
 *   2. meaning: identifier, format version, enum values in range, every
 *      index (value, node, file, layer, stage, event, slot, group) in range,
 *      shapes positive and byte sizes equal to dtype × shape without
 *      overflow, graph stages contiguous, regions inside the budget.
 * fy_plan_read then rebuilds the graph and the schedule and runs
 * fy_target_validate, fy_graph_verify and fy_schedule_check on them.
 * Errors name the field by its path in the plan. */
#include <limits.h>
#include <math.h>
#include <string.h>
#include <xxhash.h>

#include "schedules/plan.h"
#include "schedules/plan_schema.h"

/* ---- 1. structure ----------------------------------------------------- */

#define SCALAR(id, name, type) [id] = {name, type, false, NULL}
#define STRING(id, name) [id] = {name, FY_FB_STRING, false, NULL}
#define TABLE(id, name, desc) [id] = {name, FY_FB_TABLE, false, &desc}
#define VECTOR(id, name, type) [id] = {name, type, true, NULL}
#define TABLES(id, name, desc) [id] = {name, FY_FB_TABLE, true, &desc}
#define DESC(desc, fields) static const fy_fb_table_desc_t desc = {(int)(sizeof fields / sizeof fields[0]), fields}

static const fy_fb_field_desc_t fingerprint_fields[FYP_FINGERPRINT__COUNT] = {
    SCALAR(FYP_FINGERPRINT_SIZE, "size", FY_FB_U64),
    SCALAR(FYP_FINGERPRINT_HASHED_BYTES, "hashed_bytes", FY_FB_U64),
    SCALAR(FYP_FINGERPRINT_DIGEST, "digest", FY_FB_U64),
};
DESC(fingerprint_desc, fingerprint_fields);

static const fy_fb_field_desc_t rope_fields[FYP_ROPE__COUNT] = {
    SCALAR(FYP_ROPE_THETA, "theta", FY_FB_F64),
    SCALAR(FYP_ROPE_SCALING, "scaling", FY_FB_U8),
    SCALAR(FYP_ROPE_FACTOR, "factor", FY_FB_F64),
    SCALAR(FYP_ROPE_LOW_FREQ_FACTOR, "low_freq_factor", FY_FB_F64),
    SCALAR(FYP_ROPE_HIGH_FREQ_FACTOR, "high_freq_factor", FY_FB_F64),
    SCALAR(FYP_ROPE_ORIGINAL_MAX_POSITION, "original_max_position", FY_FB_I64),
};
DESC(rope_desc, rope_fields);

static const fy_fb_field_desc_t config_fields[FYP_CONFIG__COUNT] = {
    STRING(FYP_CONFIG_ARCHITECTURE, "architecture"),
    SCALAR(FYP_CONFIG_HIDDEN, "hidden", FY_FB_I64),
    SCALAR(FYP_CONFIG_FFN, "ffn", FY_FB_I64),
    SCALAR(FYP_CONFIG_N_LAYERS, "n_layers", FY_FB_I64),
    SCALAR(FYP_CONFIG_N_HEADS, "n_heads", FY_FB_I64),
    SCALAR(FYP_CONFIG_N_KV_HEADS, "n_kv_heads", FY_FB_I64),
    SCALAR(FYP_CONFIG_HEAD_DIM, "head_dim", FY_FB_I64),
    SCALAR(FYP_CONFIG_VOCAB, "vocab", FY_FB_I64),
    SCALAR(FYP_CONFIG_MAX_POSITION, "max_position", FY_FB_I64),
    SCALAR(FYP_CONFIG_RMS_EPS, "rms_eps", FY_FB_F64),
    TABLE(FYP_CONFIG_ROPE, "rope", rope_desc),
    SCALAR(FYP_CONFIG_TIE_EMBEDDINGS, "tie_embeddings", FY_FB_BOOL),
    SCALAR(FYP_CONFIG_QKV_BIAS, "qkv_bias", FY_FB_BOOL),
    SCALAR(FYP_CONFIG_DTYPE, "dtype", FY_FB_U8),
};
DESC(config_desc, config_fields);

static const fy_fb_field_desc_t value_fields[FYP_VALUE__COUNT] = {
    STRING(FYP_VALUE_NAME, "name"),
    SCALAR(FYP_VALUE_DTYPE, "dtype", FY_FB_U8),
    SCALAR(FYP_VALUE_KIND, "kind", FY_FB_U8),
    VECTOR(FYP_VALUE_SHAPE, "shape", FY_FB_I64),
    SCALAR(FYP_VALUE_PER_TOKEN, "per_token", FY_FB_BOOL),
    SCALAR(FYP_VALUE_STAGE, "stage", FY_FB_I32),
    SCALAR(FYP_VALUE_LAYER, "layer", FY_FB_I32),
    SCALAR(FYP_VALUE_FILE, "file", FY_FB_I32),
    SCALAR(FYP_VALUE_FILE_OFFSET, "file_offset", FY_FB_U64),
    SCALAR(FYP_VALUE_NBYTES, "nbytes", FY_FB_U64),
};
DESC(value_desc, value_fields);

static const fy_fb_field_desc_t attrs_fields[FYP_ATTRS__COUNT] = {
    SCALAR(FYP_ATTRS_EPS, "eps", FY_FB_F32),
    SCALAR(FYP_ATTRS_N_HEADS, "n_heads", FY_FB_I32),
    SCALAR(FYP_ATTRS_N_KV_HEADS, "n_kv_heads", FY_FB_I32),
    SCALAR(FYP_ATTRS_HEAD_DIM, "head_dim", FY_FB_I32),
    TABLE(FYP_ATTRS_ROPE, "rope", rope_desc),
};
DESC(attrs_desc, attrs_fields);

static const fy_fb_field_desc_t node_fields[FYP_NODE__COUNT] = {
    SCALAR(FYP_NODE_OP, "op", FY_FB_U8),
    STRING(FYP_NODE_NAME, "name"),
    VECTOR(FYP_NODE_INPUTS, "inputs", FY_FB_I32),
    SCALAR(FYP_NODE_OUTPUT, "output", FY_FB_I32),
    SCALAR(FYP_NODE_LAYER, "layer", FY_FB_I32),
    SCALAR(FYP_NODE_STAGE, "stage", FY_FB_I32),
    TABLE(FYP_NODE_ATTRS, "attrs", attrs_desc),
};
DESC(node_desc, node_fields);

static const fy_fb_field_desc_t layer_fields[FYP_LAYER__COUNT] = {
    STRING(FYP_LAYER_NAME, "name"),
};
DESC(layer_desc, layer_fields);

static const fy_fb_field_desc_t gstage_fields[FYP_GSTAGE__COUNT] = {
    STRING(FYP_GSTAGE_NAME, "name"),
    SCALAR(FYP_GSTAGE_FIRST_NODE, "first_node", FY_FB_I32),
    SCALAR(FYP_GSTAGE_N_NODES, "n_nodes", FY_FB_I32),
    SCALAR(FYP_GSTAGE_MAX_TOKENS, "max_tokens", FY_FB_I64),
    SCALAR(FYP_GSTAGE_REPEAT, "repeat", FY_FB_I64),
};
DESC(gstage_desc, gstage_fields);

static const fy_fb_field_desc_t file_fields[FYP_FILE__COUNT] = {
    STRING(FYP_FILE_PATH, "path"),
    SCALAR(FYP_FILE_SIZE, "size", FY_FB_U64),
    TABLE(FYP_FILE_FINGERPRINT, "fingerprint", fingerprint_desc),
};
DESC(file_desc, file_fields);

static const fy_fb_field_desc_t graph_fields[FYP_GRAPH__COUNT] = {
    TABLE(FYP_GRAPH_CONFIG, "config", config_desc),
    SCALAR(FYP_GRAPH_SHAPE_ONLY, "shape_only", FY_FB_BOOL),
    SCALAR(FYP_GRAPH_CONTEXT, "context", FY_FB_I64),
    TABLES(FYP_GRAPH_VALUES, "values", value_desc),
    TABLES(FYP_GRAPH_NODES, "nodes", node_desc),
    TABLES(FYP_GRAPH_LAYERS, "layers", layer_desc),
    TABLES(FYP_GRAPH_STAGES, "stages", gstage_desc),
    TABLES(FYP_GRAPH_FILES, "files", file_desc),
    TABLE(FYP_GRAPH_CONFIG_FINGERPRINT, "config_fingerprint", fingerprint_desc),
};
DESC(graph_desc, graph_fields);

static const fy_fb_field_desc_t target_fields[FYP_TARGET__COUNT] = {
    STRING(FYP_TARGET_NAME, "name"),
    STRING(FYP_TARGET_DESCRIPTION, "description"),
    STRING(FYP_TARGET_CODE_TARGET, "code_target"),
    STRING(FYP_TARGET_SOURCES, "sources"),
    SCALAR(FYP_TARGET_VRAM_BYTES, "vram_bytes", FY_FB_U64),
    SCALAR(FYP_TARGET_RESERVE_BYTES, "reserve_bytes", FY_FB_U64),
    SCALAR(FYP_TARGET_HOST_RAM_BYTES, "host_ram_bytes", FY_FB_U64),
    SCALAR(FYP_TARGET_H2D_PINNED_GBPS, "h2d_pinned_gbps", FY_FB_F64),
    SCALAR(FYP_TARGET_H2D_PAGEABLE_GBPS, "h2d_pageable_gbps", FY_FB_F64),
    SCALAR(FYP_TARGET_D2H_GBPS, "d2h_gbps", FY_FB_F64),
    SCALAR(FYP_TARGET_DISK_READ_GBPS, "disk_read_gbps", FY_FB_F64),
    SCALAR(FYP_TARGET_FP16_TFLOPS, "fp16_tflops", FY_FB_F64),
    SCALAR(FYP_TARGET_BF16_TFLOPS, "bf16_tflops", FY_FB_F64),
    SCALAR(FYP_TARGET_FP32_TFLOPS, "fp32_tflops", FY_FB_F64),
    SCALAR(FYP_TARGET_MEM_BW_GBPS, "mem_bw_gbps", FY_FB_F64),
    SCALAR(FYP_TARGET_LAUNCH_OVERHEAD_US, "launch_overhead_us", FY_FB_F64),
    SCALAR(FYP_TARGET_CPU_GFLOPS, "cpu_gflops", FY_FB_F64),
    SCALAR(FYP_TARGET_HOST_MEM_BW_GBPS, "host_mem_bw_gbps", FY_FB_F64),
};
DESC(target_desc, target_fields);

static const fy_fb_field_desc_t option_fields[FYP_OPTION__COUNT] = {
    STRING(FYP_OPTION_KEY, "key"),
    STRING(FYP_OPTION_VALUE, "value"),
};
DESC(option_desc, option_fields);

static const fy_fb_field_desc_t options_fields[FYP_OPTIONS__COUNT] = {
    SCALAR(FYP_OPTIONS_POLICY, "policy", FY_FB_U8),
    SCALAR(FYP_OPTIONS_PREFETCH, "prefetch", FY_FB_I32),
    SCALAR(FYP_OPTIONS_BUDGET, "budget", FY_FB_U64),
    TABLES(FYP_OPTIONS_EXTRA, "extra", option_desc),
};
DESC(options_desc, options_fields);

static const fy_fb_field_desc_t region_fields[FYP_REGION__COUNT] = {
    SCALAR(FYP_REGION_KIND, "kind", FY_FB_U8),
    SCALAR(FYP_REGION_OFFSET, "offset", FY_FB_U64),
    SCALAR(FYP_REGION_BYTES, "bytes", FY_FB_U64),
};
DESC(region_desc, region_fields);

static const fy_fb_field_desc_t binding_fields[FYP_BINDING__COUNT] = {
    SCALAR(FYP_BINDING_KIND, "kind", FY_FB_U8),
    SCALAR(FYP_BINDING_FILE, "file", FY_FB_I32),
    SCALAR(FYP_BINDING_OFFSET, "offset", FY_FB_U64),
};
DESC(binding_desc, binding_fields);

static const fy_fb_field_desc_t cmd_fields[FYP_CMD__COUNT] = {
    SCALAR(FYP_CMD_KIND, "kind", FY_FB_U8),
    SCALAR(FYP_CMD_LAYER, "layer", FY_FB_I32),
    SCALAR(FYP_CMD_FILE, "file", FY_FB_I32),
    SCALAR(FYP_CMD_FILE_OFFSET, "file_offset", FY_FB_U64),
    SCALAR(FYP_CMD_BYTES, "bytes", FY_FB_U64),
    SCALAR(FYP_CMD_DEVICE_OFFSET, "device_offset", FY_FB_U64),
    SCALAR(FYP_CMD_GROUP, "group", FY_FB_I32),
    SCALAR(FYP_CMD_EVENT, "event", FY_FB_I32),
    SCALAR(FYP_CMD_STEP_DELTA, "step_delta", FY_FB_I32),
    SCALAR(FYP_CMD_NODE, "node", FY_FB_I32),
    SCALAR(FYP_CMD_ON_HOST, "on_host", FY_FB_BOOL),
    TABLES(FYP_CMD_ARGS, "args", binding_desc),
    SCALAR(FYP_CMD_SLOT, "slot", FY_FB_I32),
    SCALAR(FYP_CMD_SECONDS, "seconds", FY_FB_F64),
};
DESC(cmd_desc, cmd_fields);

static const fy_fb_field_desc_t event_fields[FYP_EVENT__COUNT] = {
    STRING(FYP_EVENT_NAME, "name"),
};
DESC(event_desc, event_fields);

static const fy_fb_field_desc_t sstage_fields[FYP_SSTAGE__COUNT] = {
    STRING(FYP_SSTAGE_NAME, "name"),
    SCALAR(FYP_SSTAGE_GRAPH_STAGE, "graph_stage", FY_FB_I32),
    SCALAR(FYP_SSTAGE_MAX_TOKENS, "max_tokens", FY_FB_I64),
    SCALAR(FYP_SSTAGE_REPEAT, "repeat", FY_FB_I64),
    TABLES(FYP_SSTAGE_COMPUTE, "compute", cmd_desc),
    TABLES(FYP_SSTAGE_COPY, "copy", cmd_desc),
    TABLES(FYP_SSTAGE_EVENTS, "events", event_desc),
    SCALAR(FYP_SSTAGE_PREDICTED_FIRST_STEP_SECONDS, "predicted_first_step_seconds", FY_FB_F64),
    SCALAR(FYP_SSTAGE_PREDICTED_STEP_SECONDS, "predicted_step_seconds", FY_FB_F64),
    SCALAR(FYP_SSTAGE_PREDICTED_TOTAL_SECONDS, "predicted_total_seconds", FY_FB_F64),
};
DESC(sstage_desc, sstage_fields);

static const fy_fb_field_desc_t schedule_fields[FYP_SCHEDULE__COUNT] = {
    SCALAR(FYP_SCHEDULE_POLICY, "policy", FY_FB_U8),
    SCALAR(FYP_SCHEDULE_PREFETCH, "prefetch", FY_FB_I32),
    SCALAR(FYP_SCHEDULE_N_SLOTS, "n_slots", FY_FB_I32),
    SCALAR(FYP_SCHEDULE_SLOT_BYTES, "slot_bytes", FY_FB_U64),
    SCALAR(FYP_SCHEDULE_BUDGET, "budget", FY_FB_U64),
    SCALAR(FYP_SCHEDULE_DEVICE_BYTES, "device_bytes", FY_FB_U64),
    TABLES(FYP_SCHEDULE_REGIONS, "regions", region_desc),
    SCALAR(FYP_SCHEDULE_ACTIVATION_LOWER_BOUND, "activation_lower_bound", FY_FB_U64),
    VECTOR(FYP_SCHEDULE_PLACEMENT, "placement", FY_FB_U8),
    VECTOR(FYP_SCHEDULE_DEVICE_OFFSET, "device_offset", FY_FB_U64),
    TABLES(FYP_SCHEDULE_STAGES, "stages", sstage_desc),
};
DESC(schedule_desc, schedule_fields);

static const fy_fb_field_desc_t kernel_fields[FYP_KERNEL__COUNT] = {
    STRING(FYP_KERNEL_FORMAT, "format"),
    STRING(FYP_KERNEL_ARCHITECTURE, "architecture"),
    VECTOR(FYP_KERNEL_CODE, "code", FY_FB_U8),
    VECTOR(FYP_KERNEL_ENTRIES, "entries", FY_FB_STRING),
    SCALAR(FYP_KERNEL_CODE_DIGEST, "code_digest", FY_FB_U64),
};
DESC(kernel_desc, kernel_fields);

static const fy_fb_field_desc_t plan_fields[FYP_PLAN__COUNT] = {
    SCALAR(FYP_PLAN_FORMAT_VERSION, "format_version", FY_FB_U32),
    STRING(FYP_PLAN_COMPILER_VERSION, "compiler_version"),
    TABLE(FYP_PLAN_GRAPH, "graph", graph_desc),
    TABLE(FYP_PLAN_TARGET, "target", target_desc),
    TABLE(FYP_PLAN_OPTIONS, "options", options_desc),
    TABLE(FYP_PLAN_SCHEDULE, "schedule", schedule_desc),
    TABLES(FYP_PLAN_KERNELS, "kernels", kernel_desc),
};
DESC(plan_desc, plan_fields);

/* A plan nests 4 tables deep (plan.schedule.stages[].compute[].args[]). */
#define MAX_DEPTH 16
/* Kernel tables are few (one per format and architecture); the bound keeps
 * the uniqueness check cheap on hostile input. */
#define MAX_KERNELS 1024

/* ---- 2. meaning ------------------------------------------------------- */

#define FAIL(code, ...) return fy_status_make(code, __VA_ARGS__)

/* lo <= v < hi, else an error naming at.field. */
static fy_status_t in_range(const char *at, const char *field, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v >= hi)
    FAIL(FY_OUT_OF_RANGE, "%s.%s: %lld out of range [%lld, %lld)", at, field, (long long)v, (long long)lo,
         (long long)hi);
  return NULL;
}

static fy_status_t has_string(const fy_fb_table_t *t, int field, const char *at, const char *name) {
  if (!fy_fb_get_string(t, field, NULL)) FAIL(FY_INVALID_ARGUMENT, "%s.%s: missing", at, name);
  return NULL;
}

static fy_status_t count_of(const fy_fb_vec_t *v, const char *at, int *out) {
  if (v->len >= INT_MAX) FAIL(FY_OUT_OF_RANGE, "%s: %zu entries, more than ferry handles", at, v->len);
  *out = (int)v->len;
  return NULL;
}

static fy_status_t seconds_ok(const char *at, const char *field, double s) {
  if (!isfinite(s) || s < 0) FAIL(FY_INVALID_ARGUMENT, "%s.%s: %g is not a duration", at, field, s);
  return NULL;
}

static fy_status_t check_rope(const fy_fb_table_t *rope, const char *at) {
  return in_range(at, "rope.scaling", fy_fb_get_u8(rope, FYP_ROPE_SCALING, 0), 0, FY_ROPE_SCALING_LLAMA3 + 1);
}

/* The counts the schedule's indices are checked against. */
typedef struct {
  int n_values, n_nodes, n_layers, n_stages, n_files;
  fy_fb_vec_t nodes;
} graph_counts_t;

static fy_status_t check_value(const fy_fb_table_t *v, const char *at, const graph_counts_t *g) {
  FY_TRY(has_string(v, FYP_VALUE_NAME, at, "name"));
  uint8_t dtype = fy_fb_get_u8(v, FYP_VALUE_DTYPE, 0);
  FY_TRY(in_range(at, "dtype", dtype, 0, FY_DTYPE_COUNT));
  FY_TRY(in_range(at, "kind", fy_fb_get_u8(v, FYP_VALUE_KIND, 0), 0, FY_VALUE_STATE + 1));
  fy_fb_vec_t shape = fy_fb_get_vector(v, FYP_VALUE_SHAPE, 8);
  if (shape.len > FY_MAX_RANK) FAIL(FY_INVALID_ARGUMENT, "%s.shape: rank %zu, at most %d", at, shape.len, FY_MAX_RANK);
  /* The same bound as fy_graph_add_value: elements × dtype size cannot overflow. */
  uint64_t elements = 1;
  for (size_t i = 0; i < shape.len; i++) {
    int64_t d = fy_fb_vec_i64(&shape, i);
    if (d <= 0 || (uint64_t)d > (UINT64_MAX >> 8) / elements)
      FAIL(FY_INVALID_ARGUMENT, "%s.shape[%zu]: bad dimension %lld", at, i, (long long)d);
    elements *= (uint64_t)d;
  }
  uint64_t nbytes = fy_fb_get_u64(v, FYP_VALUE_NBYTES, 0);
  if (nbytes != elements * fy_dtype_size((fy_dtype_t)dtype))
    FAIL(FY_INVALID_ARGUMENT, "%s.nbytes: %llu, but %s × shape is %llu bytes", at, (unsigned long long)nbytes,
         fy_dtype_name((fy_dtype_t)dtype), (unsigned long long)(elements * fy_dtype_size((fy_dtype_t)dtype)));
  FY_TRY(in_range(at, "stage", fy_fb_get_i32(v, FYP_VALUE_STAGE, -1), -1, g->n_stages));
  FY_TRY(in_range(at, "layer", fy_fb_get_i32(v, FYP_VALUE_LAYER, -1), -1, g->n_layers));
  FY_TRY(in_range(at, "file", fy_fb_get_i32(v, FYP_VALUE_FILE, -1), -1, g->n_files));
  uint64_t offset = fy_fb_get_u64(v, FYP_VALUE_FILE_OFFSET, 0);
  if (offset > UINT64_MAX - nbytes) FAIL(FY_OUT_OF_RANGE, "%s.file_offset: %llu + nbytes overflows", at, (unsigned long long)offset);
  return NULL;
}

static fy_status_t check_node(const fy_fb_table_t *n, const char *at, const graph_counts_t *g) {
  FY_TRY(in_range(at, "op", fy_fb_get_u8(n, FYP_NODE_OP, 0), 0, FY_OP_COUNT));
  fy_fb_vec_t inputs = fy_fb_get_vector(n, FYP_NODE_INPUTS, 4);
  if (inputs.len > FY_MAX_NODE_INPUTS)
    FAIL(FY_INVALID_ARGUMENT, "%s.inputs: %zu inputs, at most %d", at, inputs.len, FY_MAX_NODE_INPUTS);
  for (size_t i = 0; i < inputs.len; i++) {
    char field[32];
    snprintf(field, sizeof field, "inputs[%zu]", i);
    FY_TRY(in_range(at, field, fy_fb_vec_i32(&inputs, i), 0, g->n_values));
  }
  FY_TRY(in_range(at, "output", fy_fb_get_i32(n, FYP_NODE_OUTPUT, -1), 0, g->n_values));
  FY_TRY(in_range(at, "layer", fy_fb_get_i32(n, FYP_NODE_LAYER, -1), -1, g->n_layers));
  FY_TRY(in_range(at, "stage", fy_fb_get_i32(n, FYP_NODE_STAGE, 0), 0, g->n_stages));
  fy_fb_table_t attrs = fy_fb_get_table(n, FYP_NODE_ATTRS);
  fy_fb_table_t rope = fy_fb_get_table(&attrs, FYP_ATTRS_ROPE);
  char attrs_at[192];
  snprintf(attrs_at, sizeof attrs_at, "%s.attrs", at);
  return check_rope(&rope, attrs_at);
}

static fy_status_t check_graph(const fy_fb_table_t *graph, graph_counts_t *g) {
  fy_fb_vec_t values = fy_fb_get_vector(graph, FYP_GRAPH_VALUES, 4);
  fy_fb_vec_t nodes = fy_fb_get_vector(graph, FYP_GRAPH_NODES, 4);
  fy_fb_vec_t layers = fy_fb_get_vector(graph, FYP_GRAPH_LAYERS, 4);
  fy_fb_vec_t stages = fy_fb_get_vector(graph, FYP_GRAPH_STAGES, 4);
  fy_fb_vec_t files = fy_fb_get_vector(graph, FYP_GRAPH_FILES, 4);
  FY_TRY(count_of(&values, "plan.graph.values", &g->n_values));
  FY_TRY(count_of(&nodes, "plan.graph.nodes", &g->n_nodes));
  FY_TRY(count_of(&layers, "plan.graph.layers", &g->n_layers));
  FY_TRY(count_of(&stages, "plan.graph.stages", &g->n_stages));
  FY_TRY(count_of(&files, "plan.graph.files", &g->n_files));
  g->nodes = nodes;

  fy_fb_table_t config = fy_fb_get_table(graph, FYP_GRAPH_CONFIG);
  FY_TRY(in_range("plan.graph.config", "dtype", fy_fb_get_u8(&config, FYP_CONFIG_DTYPE, 0), 0, FY_DTYPE_COUNT));
  fy_fb_table_t rope = fy_fb_get_table(&config, FYP_CONFIG_ROPE);
  FY_TRY(check_rope(&rope, "plan.graph.config"));
  if (fy_fb_get_i64(graph, FYP_GRAPH_CONTEXT, 0) < 0) FAIL(FY_INVALID_ARGUMENT, "plan.graph.context: negative");

  char at[128];
  for (int i = 0; i < g->n_layers; i++) {
    fy_fb_table_t t = fy_fb_vec_table(&layers, (size_t)i);
    snprintf(at, sizeof at, "plan.graph.layers[%d]", i);
    FY_TRY(has_string(&t, FYP_LAYER_NAME, at, "name"));
  }
  for (int i = 0; i < g->n_files; i++) {
    fy_fb_table_t t = fy_fb_vec_table(&files, (size_t)i);
    snprintf(at, sizeof at, "plan.graph.files[%d]", i);
    FY_TRY(has_string(&t, FYP_FILE_PATH, at, "path"));
  }
  for (int i = 0; i < g->n_values; i++) {
    fy_fb_table_t t = fy_fb_vec_table(&values, (size_t)i);
    snprintf(at, sizeof at, "plan.graph.values[%d]", i);
    FY_TRY(check_value(&t, at, g));
  }
  for (int i = 0; i < g->n_nodes; i++) {
    fy_fb_table_t t = fy_fb_vec_table(&nodes, (size_t)i);
    snprintf(at, sizeof at, "plan.graph.nodes[%d]", i);
    FY_TRY(check_node(&t, at, g));
  }
  /* Stages own contiguous runs of nodes, in order, covering every node:
   * the rebuilt graph adds each stage's nodes after opening it. */
  int64_t expected = 0;
  for (int i = 0; i < g->n_stages; i++) {
    fy_fb_table_t t = fy_fb_vec_table(&stages, (size_t)i);
    snprintf(at, sizeof at, "plan.graph.stages[%d]", i);
    FY_TRY(has_string(&t, FYP_GSTAGE_NAME, at, "name"));
    int32_t first = fy_fb_get_i32(&t, FYP_GSTAGE_FIRST_NODE, 0), n = fy_fb_get_i32(&t, FYP_GSTAGE_N_NODES, 0);
    if (first != expected) FAIL(FY_INVALID_ARGUMENT, "%s.first_node: %d, expected %lld", at, first, (long long)expected);
    FY_TRY(in_range(at, "n_nodes", n, 0, (int64_t)g->n_nodes - first + 1));
    for (int j = first; j < first + n; j++) {
      fy_fb_table_t node = fy_fb_vec_table(&nodes, (size_t)j);
      if (fy_fb_get_i32(&node, FYP_NODE_STAGE, 0) != i)
        FAIL(FY_INVALID_ARGUMENT, "plan.graph.nodes[%d].stage: %d, but the node is in stage %d", j,
             fy_fb_get_i32(&node, FYP_NODE_STAGE, 0), i);
    }
    expected += n;
    if (fy_fb_get_i64(&t, FYP_GSTAGE_MAX_TOKENS, 0) <= 0) FAIL(FY_INVALID_ARGUMENT, "%s.max_tokens: must be positive", at);
    if (fy_fb_get_i64(&t, FYP_GSTAGE_REPEAT, 0) < 0) FAIL(FY_INVALID_ARGUMENT, "%s.repeat: negative", at);
  }
  if (expected != g->n_nodes)
    FAIL(FY_INVALID_ARGUMENT, "plan.graph.stages: cover %lld of %d nodes", (long long)expected, g->n_nodes);
  return NULL;
}

static fy_status_t fits(const fy_fb_table_t *t, int field, size_t cap, const char *at) {
  size_t len = 0;
  if (fy_fb_get_string(t, field, &len) && len >= cap)
    FAIL(FY_INVALID_ARGUMENT, "%s: %zu bytes, longer than %zu", at, len, cap - 1);
  return NULL;
}

static fy_status_t check_target(const fy_fb_table_t *t) {
  fy_target_t *x = NULL;
  FY_TRY(fits(t, FYP_TARGET_NAME, sizeof x->name, "plan.target.name"));
  FY_TRY(fits(t, FYP_TARGET_DESCRIPTION, sizeof x->description, "plan.target.description"));
  FY_TRY(fits(t, FYP_TARGET_CODE_TARGET, sizeof x->code_target, "plan.target.code_target"));
  return fits(t, FYP_TARGET_SOURCES, sizeof x->sources, "plan.target.sources");
}

static fy_status_t check_options(const fy_fb_table_t *t) {
  FY_TRY(in_range("plan.options", "policy", fy_fb_get_u8(t, FYP_OPTIONS_POLICY, 0), 0, FY_POLICY_COUNT));
  fy_fb_vec_t extra = fy_fb_get_vector(t, FYP_OPTIONS_EXTRA, 4);
  int n = 0;
  FY_TRY(count_of(&extra, "plan.options.extra", &n));
  char at[64];
  for (int i = 0; i < n; i++) {
    fy_fb_table_t o = fy_fb_vec_table(&extra, (size_t)i);
    snprintf(at, sizeof at, "plan.options.extra[%d]", i);
    FY_TRY(has_string(&o, FYP_OPTION_KEY, at, "key"));
    FY_TRY(has_string(&o, FYP_OPTION_VALUE, at, "value"));
  }
  return NULL;
}

static fy_status_t no_overflow(const char *at, const char *field, uint64_t offset, uint64_t bytes) {
  if (offset > UINT64_MAX - bytes)
    FAIL(FY_OUT_OF_RANGE, "%s.%s: %llu + %llu bytes overflows", at, field, (unsigned long long)offset,
         (unsigned long long)bytes);
  return NULL;
}

typedef struct {
  const graph_counts_t *g;
  int n_slots, n_events, n_cmds;
} stage_counts_t;

/* Every index in range for every command (-1 = none); the fields a kind
 * uses must be set. A chunk marker's slot is its chunk index, below the
 * stage's command count; so is a group index (a group has a copy). */
static fy_status_t check_cmd(const fy_fb_table_t *c, const char *at, const stage_counts_t *k) {
  const graph_counts_t *g = k->g;
  uint8_t kind = fy_fb_get_u8(c, FYP_CMD_KIND, 0);
  FY_TRY(in_range(at, "kind", kind, 0, FY_CMD_KIND_COUNT));
  bool launch = kind == FY_CMD_LAUNCH, sync = kind == FY_CMD_SIGNAL || kind == FY_CMD_WAIT;
  bool chunk = kind == FY_CMD_CHUNK_BEGIN || kind == FY_CMD_CHUNK_END;
  FY_TRY(in_range(at, "layer", fy_fb_get_i32(c, FYP_CMD_LAYER, -1), -1, g->n_layers));
  FY_TRY(in_range(at, "file", fy_fb_get_i32(c, FYP_CMD_FILE, -1), -1, g->n_files));
  FY_TRY(in_range(at, "group", fy_fb_get_i32(c, FYP_CMD_GROUP, -1), -1, k->n_cmds));
  FY_TRY(in_range(at, "event", fy_fb_get_i32(c, FYP_CMD_EVENT, -1), sync ? 0 : -1, k->n_events));
  FY_TRY(in_range(at, "step_delta", fy_fb_get_i32(c, FYP_CMD_STEP_DELTA, 0), -1, 1));
  int32_t node = fy_fb_get_i32(c, FYP_CMD_NODE, -1);
  FY_TRY(in_range(at, "node", node, launch ? 0 : -1, g->n_nodes));
  FY_TRY(in_range(at, "slot", fy_fb_get_i32(c, FYP_CMD_SLOT, -1), kind == FY_CMD_EVICT ? 0 : -1,
                  chunk ? k->n_cmds : k->n_slots));
  uint64_t bytes = fy_fb_get_u64(c, FYP_CMD_BYTES, 0);
  FY_TRY(no_overflow(at, "file_offset", fy_fb_get_u64(c, FYP_CMD_FILE_OFFSET, 0), bytes));
  FY_TRY(no_overflow(at, "device_offset", fy_fb_get_u64(c, FYP_CMD_DEVICE_OFFSET, 0), bytes));
  FY_TRY(seconds_ok(at, "seconds", fy_fb_get_f64(c, FYP_CMD_SECONDS, 0)));
  fy_fb_vec_t args = fy_fb_get_vector(c, FYP_CMD_ARGS, 4);
  if (args.len > FY_MAX_NODE_INPUTS + 1)
    FAIL(FY_INVALID_ARGUMENT, "%s.args: %zu bindings, at most %d", at, args.len, FY_MAX_NODE_INPUTS + 1);
  if (launch) {
    fy_fb_table_t n = fy_fb_vec_table(&g->nodes, (size_t)node);
    size_t needed = fy_fb_get_vector(&n, FYP_NODE_INPUTS, 4).len + 1;
    if (args.len < needed)
      FAIL(FY_INVALID_ARGUMENT, "%s.args: %zu bindings, node %d needs %zu", at, args.len, node, needed);
  }
  for (size_t i = 0; i < args.len; i++) {
    fy_fb_table_t a = fy_fb_vec_table(&args, i);
    char arg_at[256];
    snprintf(arg_at, sizeof arg_at, "%s.args[%zu]", at, i);
    uint8_t akind = fy_fb_get_u8(&a, FYP_BINDING_KIND, 0);
    FY_TRY(in_range(arg_at, "kind", akind, 0, FY_LOC_HOST_FILE + 1));
    if (akind == FY_LOC_HOST_FILE) /* a device binding's file is not read; -1 in a shape-only graph */
      FY_TRY(in_range(arg_at, "file", fy_fb_get_i32(&a, FYP_BINDING_FILE, -1), -1, g->n_files));
  }
  return NULL;
}

static const char *const queue_fields[FY_QUEUE_COUNT] = {"compute", "copy"};
static const int queue_ids[FY_QUEUE_COUNT] = {FYP_SSTAGE_COMPUTE, FYP_SSTAGE_COPY};

static fy_status_t check_stage(const fy_fb_table_t *st, const char *at, const graph_counts_t *g, int n_slots) {
  FY_TRY(has_string(st, FYP_SSTAGE_NAME, at, "name"));
  FY_TRY(in_range(at, "graph_stage", fy_fb_get_i32(st, FYP_SSTAGE_GRAPH_STAGE, -1), -1, g->n_stages));
  if (fy_fb_get_i64(st, FYP_SSTAGE_MAX_TOKENS, 0) < 0) FAIL(FY_INVALID_ARGUMENT, "%s.max_tokens: negative", at);
  if (fy_fb_get_i64(st, FYP_SSTAGE_REPEAT, 0) < 0) FAIL(FY_INVALID_ARGUMENT, "%s.repeat: negative", at);
  FY_TRY(seconds_ok(at, "predicted_first_step_seconds", fy_fb_get_f64(st, FYP_SSTAGE_PREDICTED_FIRST_STEP_SECONDS, 0)));
  FY_TRY(seconds_ok(at, "predicted_step_seconds", fy_fb_get_f64(st, FYP_SSTAGE_PREDICTED_STEP_SECONDS, 0)));
  FY_TRY(seconds_ok(at, "predicted_total_seconds", fy_fb_get_f64(st, FYP_SSTAGE_PREDICTED_TOTAL_SECONDS, 0)));
  char sub[192];
  fy_fb_vec_t events = fy_fb_get_vector(st, FYP_SSTAGE_EVENTS, 4);
  stage_counts_t k = {g, n_slots, 0, 0};
  snprintf(sub, sizeof sub, "%s.events", at);
  FY_TRY(count_of(&events, sub, &k.n_events));
  for (int i = 0; i < k.n_events; i++) {
    fy_fb_table_t e = fy_fb_vec_table(&events, (size_t)i);
    snprintf(sub, sizeof sub, "%s.events[%d]", at, i);
    FY_TRY(has_string(&e, FYP_EVENT_NAME, sub, "name"));
  }
  fy_fb_vec_t queues[FY_QUEUE_COUNT];
  for (int q = 0; q < FY_QUEUE_COUNT; q++) {
    queues[q] = fy_fb_get_vector(st, queue_ids[q], 4);
    int n = 0;
    snprintf(sub, sizeof sub, "%s.%s", at, queue_fields[q]);
    FY_TRY(count_of(&queues[q], sub, &n));
    if (n > INT_MAX - k.n_cmds) FAIL(FY_OUT_OF_RANGE, "%s: too many commands", at);
    k.n_cmds += n;
  }
  for (int q = 0; q < FY_QUEUE_COUNT; q++)
    for (size_t i = 0; i < queues[q].len; i++) {
      fy_fb_table_t c = fy_fb_vec_table(&queues[q], i);
      snprintf(sub, sizeof sub, "%s.%s[%zu]", at, queue_fields[q], i);
      FY_TRY(check_cmd(&c, sub, &k));
    }
  return NULL;
}

static fy_status_t check_schedule(const fy_fb_table_t *s, const graph_counts_t *g) {
  FY_TRY(in_range("plan.schedule", "policy", fy_fb_get_u8(s, FYP_SCHEDULE_POLICY, 0), 0, FY_POLICY_COUNT));
  int32_t n_slots = fy_fb_get_i32(s, FYP_SCHEDULE_N_SLOTS, 0);
  if (n_slots < 0) FAIL(FY_INVALID_ARGUMENT, "plan.schedule.n_slots: negative");
  if (fy_fb_get_i32(s, FYP_SCHEDULE_PREFETCH, 0) < 0) FAIL(FY_INVALID_ARGUMENT, "plan.schedule.prefetch: negative");
  uint64_t budget = fy_fb_get_u64(s, FYP_SCHEDULE_BUDGET, 0);
  uint64_t device_bytes = fy_fb_get_u64(s, FYP_SCHEDULE_DEVICE_BYTES, 0);
  if (device_bytes > budget)
    FAIL(FY_OUT_OF_RANGE, "plan.schedule.device_bytes: %llu, past the budget %llu", (unsigned long long)device_bytes,
         (unsigned long long)budget);
  fy_fb_vec_t regions = fy_fb_get_vector(s, FYP_SCHEDULE_REGIONS, 4);
  if (regions.len != FY_REGION_COUNT)
    FAIL(FY_INVALID_ARGUMENT, "plan.schedule.regions: %zu regions, expected %d", regions.len, FY_REGION_COUNT);
  char at[128];
  for (int i = 0; i < FY_REGION_COUNT; i++) {
    fy_fb_table_t r = fy_fb_vec_table(&regions, (size_t)i);
    snprintf(at, sizeof at, "plan.schedule.regions[%d]", i);
    FY_TRY(in_range(at, "kind", fy_fb_get_u8(&r, FYP_REGION_KIND, 0), i, i + 1));
    uint64_t offset = fy_fb_get_u64(&r, FYP_REGION_OFFSET, 0), bytes = fy_fb_get_u64(&r, FYP_REGION_BYTES, 0);
    FY_TRY(no_overflow(at, "offset", offset, bytes));
    if (offset + bytes > budget)
      FAIL(FY_OUT_OF_RANGE, "%s (%s): [%llu, +%llu) past the budget %llu", at, fy_region_name((fy_region_kind_t)i),
           (unsigned long long)offset, (unsigned long long)bytes, (unsigned long long)budget);
  }
  fy_fb_vec_t placement = fy_fb_get_vector(s, FYP_SCHEDULE_PLACEMENT, 1);
  fy_fb_vec_t device_offset = fy_fb_get_vector(s, FYP_SCHEDULE_DEVICE_OFFSET, 8);
  if (placement.len != (size_t)g->n_values)
    FAIL(FY_INVALID_ARGUMENT, "plan.schedule.placement: %zu entries for %d values", placement.len, g->n_values);
  if (device_offset.len != (size_t)g->n_values)
    FAIL(FY_INVALID_ARGUMENT, "plan.schedule.device_offset: %zu entries for %d values", device_offset.len, g->n_values);
  for (size_t i = 0; i < placement.len; i++) {
    snprintf(at, sizeof at, "placement[%zu]", i);
    FY_TRY(in_range("plan.schedule", at, fy_fb_vec_u8(&placement, i), 0, FY_PLACE_HOST + 1));
  }
  fy_fb_vec_t stages = fy_fb_get_vector(s, FYP_SCHEDULE_STAGES, 4);
  int n_stages = 0;
  FY_TRY(count_of(&stages, "plan.schedule.stages", &n_stages));
  for (int i = 0; i < n_stages; i++) {
    fy_fb_table_t st = fy_fb_vec_table(&stages, (size_t)i);
    snprintf(at, sizeof at, "plan.schedule.stages[%d]", i);
    FY_TRY(check_stage(&st, at, g, n_slots));
  }
  return NULL;
}

static fy_status_t check_kernels(const fy_fb_vec_t *kernels) {
  if (kernels->len > MAX_KERNELS)
    FAIL(FY_OUT_OF_RANGE, "plan.kernels: %zu kernel tables, at most %d", kernels->len, MAX_KERNELS);
  char at[64];
  for (size_t i = 0; i < kernels->len; i++) {
    fy_fb_table_t k = fy_fb_vec_table(kernels, i);
    snprintf(at, sizeof at, "plan.kernels[%zu]", i);
    FY_TRY(has_string(&k, FYP_KERNEL_FORMAT, at, "format"));
    FY_TRY(has_string(&k, FYP_KERNEL_ARCHITECTURE, at, "architecture"));
    fy_fb_vec_t entries = fy_fb_get_vector(&k, FYP_KERNEL_ENTRIES, 4);
    int n = 0;
    FY_TRY(count_of(&entries, at, &n));
    for (int e = 0; e < n; e++)
      if (!fy_fb_vec_string(&entries, (size_t)e, NULL))
        FAIL(FY_INVALID_ARGUMENT, "%s.entries[%d]: missing", at, e);
    fy_fb_vec_t code = fy_fb_get_vector(&k, FYP_KERNEL_CODE, 1);
    uint64_t digest = code.buf ? XXH3_64bits(code.buf + code.pos, code.len) : XXH3_64bits(NULL, 0);
    if (digest != fy_fb_get_u64(&k, FYP_KERNEL_CODE_DIGEST, 0))
      FAIL(FY_INVALID_ARGUMENT, "%s.code: %zu bytes whose digest %016llx is not code_digest %016llx: corrupted", at,
           code.len, (unsigned long long)digest, (unsigned long long)fy_fb_get_u64(&k, FYP_KERNEL_CODE_DIGEST, 0));
    const char *format = fy_fb_get_string(&k, FYP_KERNEL_FORMAT, NULL);
    const char *arch = fy_fb_get_string(&k, FYP_KERNEL_ARCHITECTURE, NULL);
    for (size_t j = 0; j < i; j++) {
      fy_fb_table_t o = fy_fb_vec_table(kernels, j);
      if (!strcmp(format, fy_fb_get_string(&o, FYP_KERNEL_FORMAT, NULL)) &&
          !strcmp(arch, fy_fb_get_string(&o, FYP_KERNEL_ARCHITECTURE, NULL)))
        FAIL(FY_INVALID_ARGUMENT, "%s: a second table for (%s, %s), after plan.kernels[%zu]", at, format, arch, j);
    }
  }
  return NULL;
}

fy_status_t fy_plan_verify_buffer(const void *data, size_t size) {
  if (!fy_fb_has_identifier(data, size, FY_PLAN_IDENTIFIER))
    FAIL(FY_INVALID_ARGUMENT, "plan: not a ferry plan (file identifier is not \"%s\")", FY_PLAN_IDENTIFIER);
  fy_fb_limits_t limits = {MAX_DEPTH, size / 4 + 64};
  FY_TRY(fy_fb_verify(data, size, &plan_desc, "plan", &limits));

  fy_fb_table_t plan = fy_fb_root(data, size);
  uint32_t version = fy_fb_get_u32(&plan, FYP_PLAN_FORMAT_VERSION, 0);
  if (version != FY_PLAN_FORMAT_VERSION)
    FAIL(FY_INCOMPATIBLE, "plan.format_version: %u; this ferry reads version %u", version, FY_PLAN_FORMAT_VERSION);
  fy_fb_table_t graph = fy_fb_get_table(&plan, FYP_PLAN_GRAPH);
  fy_fb_table_t target = fy_fb_get_table(&plan, FYP_PLAN_TARGET);
  fy_fb_table_t options = fy_fb_get_table(&plan, FYP_PLAN_OPTIONS);
  fy_fb_table_t schedule = fy_fb_get_table(&plan, FYP_PLAN_SCHEDULE);
  if (!fy_fb_table_present(&graph)) FAIL(FY_INVALID_ARGUMENT, "plan.graph: missing");
  if (!fy_fb_table_present(&target)) FAIL(FY_INVALID_ARGUMENT, "plan.target: missing");
  if (!fy_fb_table_present(&schedule)) FAIL(FY_INVALID_ARGUMENT, "plan.schedule: missing");
  graph_counts_t g = {0};
  FY_TRY(check_graph(&graph, &g));
  FY_TRY(check_target(&target));
  FY_TRY(check_options(&options));
  FY_TRY(check_schedule(&schedule, &g));
  fy_fb_vec_t kernels = fy_fb_get_vector(&plan, FYP_PLAN_KERNELS, 4);
  return check_kernels(&kernels);
}
