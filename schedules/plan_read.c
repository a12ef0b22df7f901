/* Plan reader: a plan buffer in; an owned graph, schedule and meta out.
 * The buffer is verified in full first (plan_verify.c: structure, then
 * meaning), so decoding below meets only in-range enums and indices; the
 * rebuilt target, graph and schedule are then checked by the same
 * functions that check them at compile time. */
#include <stdlib.h>
#include <string.h>

#include "schedules/plan.h"
#include "schedules/plan_schema.h"
#include "support/file.h"

static fy_status_t oom(void) { return fy_status_make(FY_RESOURCE_EXHAUSTED, "plan: out of memory reading"); }

/* A copy in the arena; "" for an absent string. */
static const char *dup_string(fy_arena_t *arena, const char *s) { return fy_arena_strdup(arena, s ? s : ""); }

static fy_rope_t read_rope(const fy_fb_table_t *t) {
  return (fy_rope_t){
      .theta = fy_fb_get_f64(t, FYP_ROPE_THETA, 0),
      .scaling = (fy_rope_scaling_t)fy_fb_get_u8(t, FYP_ROPE_SCALING, 0),
      .factor = fy_fb_get_f64(t, FYP_ROPE_FACTOR, 0),
      .low_freq_factor = fy_fb_get_f64(t, FYP_ROPE_LOW_FREQ_FACTOR, 0),
      .high_freq_factor = fy_fb_get_f64(t, FYP_ROPE_HIGH_FREQ_FACTOR, 0),
      .original_max_position = fy_fb_get_i64(t, FYP_ROPE_ORIGINAL_MAX_POSITION, 0),
  };
}

static fy_file_fingerprint_t read_fingerprint(const fy_fb_table_t *t) {
  return (fy_file_fingerprint_t){fy_fb_get_u64(t, FYP_FINGERPRINT_SIZE, 0),
                                 fy_fb_get_u64(t, FYP_FINGERPRINT_HASHED_BYTES, 0),
                                 fy_fb_get_u64(t, FYP_FINGERPRINT_DIGEST, 0)};
}

static fy_status_t read_graph(fy_plan_t *p, const fy_fb_table_t *gt) {
  FY_TRY(fy_graph_create(&p->graph));
  fy_graph_t *g = p->graph;
  fy_fb_table_t ct = fy_fb_get_table(gt, FYP_GRAPH_CONFIG);
  fy_fb_table_t rope = fy_fb_get_table(&ct, FYP_CONFIG_ROPE);
  const char *arch = fy_fb_get_string(&ct, FYP_CONFIG_ARCHITECTURE, NULL);
  g->config = (fy_model_config_t){
      .architecture = arch ? fy_arena_strdup(&g->arena, arch) : NULL,
      .hidden = fy_fb_get_i64(&ct, FYP_CONFIG_HIDDEN, 0),
      .ffn = fy_fb_get_i64(&ct, FYP_CONFIG_FFN, 0),
      .n_layers = fy_fb_get_i64(&ct, FYP_CONFIG_N_LAYERS, 0),
      .n_heads = fy_fb_get_i64(&ct, FYP_CONFIG_N_HEADS, 0),
      .n_kv_heads = fy_fb_get_i64(&ct, FYP_CONFIG_N_KV_HEADS, 0),
      .head_dim = fy_fb_get_i64(&ct, FYP_CONFIG_HEAD_DIM, 0),
      .vocab = fy_fb_get_i64(&ct, FYP_CONFIG_VOCAB, 0),
      .max_position = fy_fb_get_i64(&ct, FYP_CONFIG_MAX_POSITION, 0),
      .rms_eps = fy_fb_get_f64(&ct, FYP_CONFIG_RMS_EPS, 0),
      .rope = read_rope(&rope),
      .tie_embeddings = fy_fb_get_bool(&ct, FYP_CONFIG_TIE_EMBEDDINGS, false),
      .qkv_bias = fy_fb_get_bool(&ct, FYP_CONFIG_QKV_BIAS, false),
      .dtype = (fy_dtype_t)fy_fb_get_u8(&ct, FYP_CONFIG_DTYPE, 0),
  };
  if (arch && !g->config.architecture) return oom();
  g->shape_only = fy_fb_get_bool(gt, FYP_GRAPH_SHAPE_ONLY, false);
  g->context = fy_fb_get_i64(gt, FYP_GRAPH_CONTEXT, 0);

  fy_fb_vec_t layers = fy_fb_get_vector(gt, FYP_GRAPH_LAYERS, 4);
  for (size_t i = 0; i < layers.len; i++) {
    fy_fb_table_t t = fy_fb_vec_table(&layers, i);
    FY_TRY(fy_graph_add_layer(g, fy_fb_get_string(&t, FYP_LAYER_NAME, NULL), NULL));
  }
  fy_fb_vec_t files = fy_fb_get_vector(gt, FYP_GRAPH_FILES, 4);
  fy_file_fingerprint_t *prints = files.len ? fy_arena_calloc(&p->arena, files.len, sizeof *prints) : NULL;
  if (files.len && !prints) return oom();
  for (size_t i = 0; i < files.len; i++) {
    fy_fb_table_t t = fy_fb_vec_table(&files, i);
    FY_TRY(fy_graph_add_file(g, fy_fb_get_string(&t, FYP_FILE_PATH, NULL), fy_fb_get_u64(&t, FYP_FILE_SIZE, 0), NULL));
    fy_fb_table_t fp = fy_fb_get_table(&t, FYP_FILE_FINGERPRINT);
    prints[i] = read_fingerprint(&fp);
  }
  p->meta.file_fingerprints = prints;
  fy_fb_table_t config_fp = fy_fb_get_table(gt, FYP_GRAPH_CONFIG_FINGERPRINT);
  p->meta.config_fingerprint = read_fingerprint(&config_fp);

  fy_fb_vec_t values = fy_fb_get_vector(gt, FYP_GRAPH_VALUES, 4);
  for (size_t i = 0; i < values.len; i++) {
    fy_fb_table_t t = fy_fb_vec_table(&values, i);
    fy_fb_vec_t shape = fy_fb_get_vector(&t, FYP_VALUE_SHAPE, 8);
    fy_value_t v = {
        .name = fy_fb_get_string(&t, FYP_VALUE_NAME, NULL),
        .dtype = (fy_dtype_t)fy_fb_get_u8(&t, FYP_VALUE_DTYPE, 0),
        .kind = (fy_value_kind_t)fy_fb_get_u8(&t, FYP_VALUE_KIND, 0),
        .rank = (int)shape.len,
        .per_token = fy_fb_get_bool(&t, FYP_VALUE_PER_TOKEN, false),
        .stage = fy_fb_get_i32(&t, FYP_VALUE_STAGE, -1),
        .layer = fy_fb_get_i32(&t, FYP_VALUE_LAYER, -1),
        .file = fy_fb_get_i32(&t, FYP_VALUE_FILE, -1),
        .file_offset = fy_fb_get_u64(&t, FYP_VALUE_FILE_OFFSET, 0),
        .nbytes = fy_fb_get_u64(&t, FYP_VALUE_NBYTES, 0),
    };
    for (size_t d = 0; d < shape.len && d < FY_MAX_RANK; d++) v.shape[d] = fy_fb_vec_i64(&shape, d);
    FY_TRY(fy_graph_add_value(g, &v, NULL));
  }

  /* Stages own contiguous runs of nodes (checked): open each, then add its nodes. */
  fy_fb_vec_t stages = fy_fb_get_vector(gt, FYP_GRAPH_STAGES, 4);
  fy_fb_vec_t nodes = fy_fb_get_vector(gt, FYP_GRAPH_NODES, 4);
  for (size_t s = 0; s < stages.len; s++) {
    fy_fb_table_t st = fy_fb_vec_table(&stages, s);
    FY_TRY(fy_graph_begin_stage(g, fy_fb_get_string(&st, FYP_GSTAGE_NAME, NULL),
                                fy_fb_get_i64(&st, FYP_GSTAGE_MAX_TOKENS, 0), fy_fb_get_i64(&st, FYP_GSTAGE_REPEAT, 0),
                                NULL));
    size_t first = (size_t)fy_fb_get_i32(&st, FYP_GSTAGE_FIRST_NODE, 0);
    size_t n = (size_t)fy_fb_get_i32(&st, FYP_GSTAGE_N_NODES, 0);
    for (size_t i = first; i < first + n; i++) {
      fy_fb_table_t t = fy_fb_vec_table(&nodes, i);
      fy_fb_table_t at = fy_fb_get_table(&t, FYP_NODE_ATTRS);
      fy_fb_table_t arope = fy_fb_get_table(&at, FYP_ATTRS_ROPE);
      fy_fb_vec_t inputs = fy_fb_get_vector(&t, FYP_NODE_INPUTS, 4);
      fy_node_t node = {
          .op = (fy_op_t)fy_fb_get_u8(&t, FYP_NODE_OP, 0),
          .name = fy_fb_get_string(&t, FYP_NODE_NAME, NULL),
          .n_inputs = (int)inputs.len,
          .output = fy_fb_get_i32(&t, FYP_NODE_OUTPUT, -1),
          .layer = fy_fb_get_i32(&t, FYP_NODE_LAYER, -1),
          .attrs = {.eps = fy_fb_get_f32(&at, FYP_ATTRS_EPS, 0),
                    .n_heads = fy_fb_get_i32(&at, FYP_ATTRS_N_HEADS, 0),
                    .n_kv_heads = fy_fb_get_i32(&at, FYP_ATTRS_N_KV_HEADS, 0),
                    .head_dim = fy_fb_get_i32(&at, FYP_ATTRS_HEAD_DIM, 0),
                    .rope = read_rope(&arope)},
      };
      for (size_t k = 0; k < inputs.len && k < FY_MAX_NODE_INPUTS; k++) node.inputs[k] = fy_fb_vec_i32(&inputs, k);
      FY_TRY(fy_graph_add_node(g, &node, NULL));
    }
  }
  return NULL;
}

static void copy_string(char *dst, size_t cap, const char *s) {
  size_t n = s ? strlen(s) : 0;
  if (n >= cap) n = cap - 1; /* cannot happen: lengths are verified */
  if (n) memcpy(dst, s, n);
  dst[n] = 0;
}

static fy_target_t read_target(const fy_fb_table_t *t) {
  fy_target_t x = {0};
  copy_string(x.name, sizeof x.name, fy_fb_get_string(t, FYP_TARGET_NAME, NULL));
  copy_string(x.description, sizeof x.description, fy_fb_get_string(t, FYP_TARGET_DESCRIPTION, NULL));
  copy_string(x.code_target, sizeof x.code_target, fy_fb_get_string(t, FYP_TARGET_CODE_TARGET, NULL));
  copy_string(x.sources, sizeof x.sources, fy_fb_get_string(t, FYP_TARGET_SOURCES, NULL));
  x.vram_bytes = fy_fb_get_u64(t, FYP_TARGET_VRAM_BYTES, 0);
  x.reserve_bytes = fy_fb_get_u64(t, FYP_TARGET_RESERVE_BYTES, 0);
  x.host_ram_bytes = fy_fb_get_u64(t, FYP_TARGET_HOST_RAM_BYTES, 0);
  x.h2d_pinned_gbps = fy_fb_get_f64(t, FYP_TARGET_H2D_PINNED_GBPS, 0);
  x.h2d_pageable_gbps = fy_fb_get_f64(t, FYP_TARGET_H2D_PAGEABLE_GBPS, 0);
  x.d2h_gbps = fy_fb_get_f64(t, FYP_TARGET_D2H_GBPS, 0);
  x.disk_read_gbps = fy_fb_get_f64(t, FYP_TARGET_DISK_READ_GBPS, 0);
  x.fp16_tflops = fy_fb_get_f64(t, FYP_TARGET_FP16_TFLOPS, 0);
  x.bf16_tflops = fy_fb_get_f64(t, FYP_TARGET_BF16_TFLOPS, 0);
  x.fp32_tflops = fy_fb_get_f64(t, FYP_TARGET_FP32_TFLOPS, 0);
  x.mem_bw_gbps = fy_fb_get_f64(t, FYP_TARGET_MEM_BW_GBPS, 0);
  x.launch_overhead_us = fy_fb_get_f64(t, FYP_TARGET_LAUNCH_OVERHEAD_US, 0);
  x.cpu_gflops = fy_fb_get_f64(t, FYP_TARGET_CPU_GFLOPS, 0);
  x.host_mem_bw_gbps = fy_fb_get_f64(t, FYP_TARGET_HOST_MEM_BW_GBPS, 0);
  return x;
}

static fy_status_t read_meta(fy_plan_t *p, const fy_fb_table_t *plan) {
  fy_arena_t *a = &p->arena;
  p->format_version = fy_fb_get_u32(plan, FYP_PLAN_FORMAT_VERSION, 0);
  p->compiler_version = p->meta.compiler_version =
      dup_string(a, fy_fb_get_string(plan, FYP_PLAN_COMPILER_VERSION, NULL));
  if (!p->compiler_version) return oom();

  fy_fb_table_t ot = fy_fb_get_table(plan, FYP_PLAN_OPTIONS);
  p->meta.options.policy = (fy_policy_t)fy_fb_get_u8(&ot, FYP_OPTIONS_POLICY, 0);
  p->meta.options.prefetch = fy_fb_get_i32(&ot, FYP_OPTIONS_PREFETCH, -1);
  p->meta.options.budget = fy_fb_get_u64(&ot, FYP_OPTIONS_BUDGET, 0);
  fy_fb_vec_t extra = fy_fb_get_vector(&ot, FYP_OPTIONS_EXTRA, 4);
  fy_plan_option_t *opts = extra.len ? fy_arena_calloc(a, extra.len, sizeof *opts) : NULL;
  if (extra.len && !opts) return oom();
  for (size_t i = 0; i < extra.len; i++) {
    fy_fb_table_t t = fy_fb_vec_table(&extra, i);
    opts[i].key = dup_string(a, fy_fb_get_string(&t, FYP_OPTION_KEY, NULL));
    opts[i].value = dup_string(a, fy_fb_get_string(&t, FYP_OPTION_VALUE, NULL));
    if (!opts[i].key || !opts[i].value) return oom();
  }
  p->meta.extra = opts;
  p->meta.n_extra = (int)extra.len;

  fy_fb_vec_t kernels = fy_fb_get_vector(plan, FYP_PLAN_KERNELS, 4);
  fy_plan_kernel_t *ks = kernels.len ? fy_arena_calloc(a, kernels.len, sizeof *ks) : NULL;
  if (kernels.len && !ks) return oom();
  for (size_t i = 0; i < kernels.len; i++) {
    fy_fb_table_t t = fy_fb_vec_table(&kernels, i);
    fy_fb_vec_t code = fy_fb_get_vector(&t, FYP_KERNEL_CODE, 1);
    fy_fb_vec_t entries = fy_fb_get_vector(&t, FYP_KERNEL_ENTRIES, 4);
    uint8_t *bytes = code.len ? fy_arena_alloc(a, code.len) : NULL;
    const char **names = entries.len ? fy_arena_calloc(a, entries.len, sizeof *names) : NULL;
    if ((code.len && !bytes) || (entries.len && !names)) return oom();
    if (code.len) memcpy(bytes, code.buf + code.pos, code.len);
    for (size_t e = 0; e < entries.len; e++)
      if (!(names[e] = dup_string(a, fy_fb_vec_string(&entries, e, NULL)))) return oom();
    ks[i] = (fy_plan_kernel_t){dup_string(a, fy_fb_get_string(&t, FYP_KERNEL_FORMAT, NULL)),
                               dup_string(a, fy_fb_get_string(&t, FYP_KERNEL_ARCHITECTURE, NULL)),
                               bytes, code.len, names, (int)entries.len};
    if (!ks[i].format || !ks[i].architecture) return oom();
  }
  p->meta.kernels = ks;
  p->meta.n_kernels = (int)kernels.len;
  return NULL;
}

static fy_cmd_t read_cmd(const fy_fb_table_t *t) {
  fy_cmd_t c = {
      .kind = (fy_cmd_kind_t)fy_fb_get_u8(t, FYP_CMD_KIND, 0),
      .layer = fy_fb_get_i32(t, FYP_CMD_LAYER, -1),
      .file = fy_fb_get_i32(t, FYP_CMD_FILE, -1),
      .file_offset = fy_fb_get_u64(t, FYP_CMD_FILE_OFFSET, 0),
      .bytes = fy_fb_get_u64(t, FYP_CMD_BYTES, 0),
      .device_offset = fy_fb_get_u64(t, FYP_CMD_DEVICE_OFFSET, 0),
      .group = fy_fb_get_i32(t, FYP_CMD_GROUP, -1),
      .event = fy_fb_get_i32(t, FYP_CMD_EVENT, -1),
      .step_delta = fy_fb_get_i32(t, FYP_CMD_STEP_DELTA, 0),
      .node = fy_fb_get_i32(t, FYP_CMD_NODE, -1),
      .on_host = fy_fb_get_bool(t, FYP_CMD_ON_HOST, false),
      .slot = fy_fb_get_i32(t, FYP_CMD_SLOT, -1),
      .seconds = fy_fb_get_f64(t, FYP_CMD_SECONDS, 0),
  };
  fy_fb_vec_t args = fy_fb_get_vector(t, FYP_CMD_ARGS, 4);
  for (size_t i = 0; i < args.len && i < FY_MAX_NODE_INPUTS + 1; i++) {
    fy_fb_table_t a = fy_fb_vec_table(&args, i);
    c.args[i] = (fy_binding_t){(fy_location_kind_t)fy_fb_get_u8(&a, FYP_BINDING_KIND, 0),
                               fy_fb_get_i32(&a, FYP_BINDING_FILE, -1), fy_fb_get_u64(&a, FYP_BINDING_OFFSET, 0)};
  }
  return c;
}

static const int queue_ids[FY_QUEUE_COUNT] = {FYP_SSTAGE_COMPUTE, FYP_SSTAGE_COPY};

static fy_status_t read_stage(fy_schedule_t *s, fy_stage_schedule_t *st, const fy_fb_table_t *t) {
  st->name = dup_string(&s->arena, fy_fb_get_string(t, FYP_SSTAGE_NAME, NULL));
  if (!st->name) return oom();
  st->graph_stage = fy_fb_get_i32(t, FYP_SSTAGE_GRAPH_STAGE, -1);
  st->max_tokens = fy_fb_get_i64(t, FYP_SSTAGE_MAX_TOKENS, 0);
  st->repeat = fy_fb_get_i64(t, FYP_SSTAGE_REPEAT, 0);
  st->predicted_first_step_seconds = fy_fb_get_f64(t, FYP_SSTAGE_PREDICTED_FIRST_STEP_SECONDS, 0);
  st->predicted_step_seconds = fy_fb_get_f64(t, FYP_SSTAGE_PREDICTED_STEP_SECONDS, 0);
  st->predicted_total_seconds = fy_fb_get_f64(t, FYP_SSTAGE_PREDICTED_TOTAL_SECONDS, 0);
  for (int q = 0; q < FY_QUEUE_COUNT; q++) {
    fy_fb_vec_t cmds = fy_fb_get_vector(t, queue_ids[q], 4);
    st->cmds[q] = malloc((cmds.len ? cmds.len : 1) * sizeof *st->cmds[q]);
    if (!st->cmds[q]) return oom();
    st->n_cmds[q] = st->cap_cmds[q] = (int)cmds.len;
    for (size_t i = 0; i < cmds.len; i++) {
      fy_fb_table_t c = fy_fb_vec_table(&cmds, i);
      st->cmds[q][i] = read_cmd(&c);
    }
  }
  fy_fb_vec_t events = fy_fb_get_vector(t, FYP_SSTAGE_EVENTS, 4);
  st->events = malloc((events.len ? events.len : 1) * sizeof *st->events);
  if (!st->events) return oom();
  st->n_events = st->cap_events = (int)events.len;
  for (size_t i = 0; i < events.len; i++) {
    fy_fb_table_t e = fy_fb_vec_table(&events, i);
    st->events[i].name = dup_string(&s->arena, fy_fb_get_string(&e, FYP_EVENT_NAME, NULL));
    if (!st->events[i].name) return oom();
  }
  return NULL;
}

static fy_status_t read_schedule(fy_plan_t *p, const fy_fb_table_t *t, const fy_target_t *target) {
  fy_schedule_t *s = p->schedule = calloc(1, sizeof *s);
  if (!s) return oom();
  const fy_graph_t *g = p->graph;
  s->graph = g;
  s->target = *target;
  s->policy = (fy_policy_t)fy_fb_get_u8(t, FYP_SCHEDULE_POLICY, 0);
  s->prefetch = fy_fb_get_i32(t, FYP_SCHEDULE_PREFETCH, 0);
  s->n_slots = fy_fb_get_i32(t, FYP_SCHEDULE_N_SLOTS, 0);
  s->slot_bytes = fy_fb_get_u64(t, FYP_SCHEDULE_SLOT_BYTES, 0);
  s->budget = fy_fb_get_u64(t, FYP_SCHEDULE_BUDGET, 0);
  s->device_bytes = fy_fb_get_u64(t, FYP_SCHEDULE_DEVICE_BYTES, 0);
  s->activation_lower_bound = fy_fb_get_u64(t, FYP_SCHEDULE_ACTIVATION_LOWER_BOUND, 0);
  fy_fb_vec_t regions = fy_fb_get_vector(t, FYP_SCHEDULE_REGIONS, 4);
  for (int i = 0; i < FY_REGION_COUNT; i++) {
    fy_fb_table_t r = fy_fb_vec_table(&regions, (size_t)i);
    s->regions[i] = (fy_region_t){fy_fb_get_u64(&r, FYP_REGION_OFFSET, 0), fy_fb_get_u64(&r, FYP_REGION_BYTES, 0)};
  }
  size_t n_values = (size_t)g->n_values;
  s->placement = malloc((n_values ? n_values : 1) * sizeof *s->placement);
  s->device_offset = malloc((n_values ? n_values : 1) * sizeof *s->device_offset);
  if (!s->placement || !s->device_offset) return oom();
  fy_fb_vec_t placement = fy_fb_get_vector(t, FYP_SCHEDULE_PLACEMENT, 1);
  fy_fb_vec_t offsets = fy_fb_get_vector(t, FYP_SCHEDULE_DEVICE_OFFSET, 8);
  for (size_t i = 0; i < n_values; i++) {
    s->placement[i] = (fy_placement_t)fy_fb_vec_u8(&placement, i);
    s->device_offset[i] = fy_fb_vec_u64(&offsets, i);
  }
  fy_fb_vec_t stages = fy_fb_get_vector(t, FYP_SCHEDULE_STAGES, 4);
  s->stages = calloc(stages.len ? stages.len : 1, sizeof *s->stages);
  if (!s->stages) return oom();
  s->n_stages = (int)stages.len;
  for (size_t i = 0; i < stages.len; i++) {
    fy_fb_table_t st = fy_fb_vec_table(&stages, i);
    FY_TRY(read_stage(s, &s->stages[i], &st));
  }
  return NULL;
}

static fy_status_t decode(fy_plan_t *p, const void *data, size_t size) {
  fy_fb_table_t plan = fy_fb_root(data, size);
  fy_fb_table_t graph = fy_fb_get_table(&plan, FYP_PLAN_GRAPH);
  fy_fb_table_t target = fy_fb_get_table(&plan, FYP_PLAN_TARGET);
  fy_fb_table_t schedule = fy_fb_get_table(&plan, FYP_PLAN_SCHEDULE);
  FY_TRY(read_meta(p, &plan));
  FY_TRY(fy_status_annotate(read_graph(p, &graph), "plan.graph"));
  fy_target_t t = read_target(&target);
  FY_TRY(fy_status_annotate(fy_target_validate(&t), "plan.target"));
  FY_TRY(read_schedule(p, &schedule, &t));
  FY_TRY(fy_status_annotate(fy_graph_verify(p->graph), "plan.graph"));
  return fy_status_annotate(fy_schedule_check(p->schedule), "plan.schedule");
}

fy_status_t fy_plan_read(const void *data, size_t size, fy_plan_t **out_plan) {
  FY_TRY(fy_plan_verify_buffer(data, size));
  fy_plan_t *p = calloc(1, sizeof *p);
  if (!p) return oom();
  fy_status_t s = decode(p, data, size);
  if (s) {
    fy_plan_destroy(p);
    return s;
  }
  *out_plan = p;
  return NULL;
}

fy_status_t fy_plan_load(const char *path, fy_plan_t **out_plan) {
  fy_mapping_t m;
  FY_TRY(fy_file_map(path, &m));
  fy_status_t s = fy_status_annotate(fy_plan_read(m.data, m.size, out_plan), "%s", path);
  fy_file_unmap(&m);
  return s;
}

void fy_plan_destroy(fy_plan_t *plan) {
  if (!plan) return;
  fy_schedule_destroy(plan->schedule);
  fy_graph_destroy(plan->graph);
  fy_arena_destroy(&plan->arena);
  free(plan);
}
