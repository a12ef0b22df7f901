/* Plan writer: a schedule, its graph and target, and the meta in; a plan
 * file out (schedules/plan.fbs). Every field of the C structs is written
 * (scalars equal to the schema's default are left out, as FlatBuffers
 * does), so that fy_plan_read gives back exactly what was written.
 * Also the file fingerprints that bind a plan to its weights. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "schedules/plan.h"
#include "schedules/plan_schema.h"
#include "support/file.h"

/* ---- fingerprints ----------------------------------------------------- */

/* safetensors caps its JSON header at 100 MB. */
#define SAFETENSORS_MAX_HEADER (100u * 1000 * 1000)

static fy_status_t read_at(int fd, const char *path, void *buf, size_t n, uint64_t offset) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = pread(fd, (char *)buf + done, n - done, (off_t)(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return fy_status_make(FY_UNAVAILABLE, "%s: read failed: %s", path, r < 0 ? strerror(errno) : "short file");
    done += (size_t)r;
  }
  return NULL;
}

static fy_status_t fingerprint_fd(int fd, const char *path, fy_file_fingerprint_t *out) {
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return fy_status_make(FY_INVALID_ARGUMENT, "%s: not a regular file", path);
  uint64_t size = (uint64_t)st.st_size;
  uint64_t hashed = size < FY_FINGERPRINT_MAX_BYTES ? size : FY_FINGERPRINT_MAX_BYTES;
  if (size >= 9) {
    uint8_t head[9];
    FY_TRY(read_at(fd, path, head, sizeof head, 0));
    uint64_t n = 0;
    for (int i = 0; i < 8; i++) n |= (uint64_t)head[i] << (8 * i);
    if (n <= SAFETENSORS_MAX_HEADER && n <= size - 8 && head[8] == '{') hashed = 8 + n;
  }
  XXH3_state_t *state = XXH3_createState();
  uint8_t *buf = malloc(1u << 20);
  fy_status_t s = NULL;
  if (!state || !buf || XXH3_64bits_reset(state) != XXH_OK)
    s = fy_status_make(FY_RESOURCE_EXHAUSTED, "%s: out of memory fingerprinting", path);
  for (uint64_t at = 0; !s && at < hashed;) {
    size_t n = hashed - at < (1u << 20) ? (size_t)(hashed - at) : (1u << 20);
    s = read_at(fd, path, buf, n, at);
    if (!s && XXH3_64bits_update(state, buf, n) != XXH_OK) s = fy_status_make(FY_INTERNAL, "%s: xxh3 failed", path);
    at += n;
  }
  /* Plus samples of the data after the header, so that weights with the same
   * header (the same shapes, another seed or a fine-tune) are told apart
   * without reading gigabytes. */
  for (uint64_t i = 0; !s && size > hashed && i < FY_FINGERPRINT_SAMPLES; i++) {
    uint64_t span = size - hashed;
    uint64_t n = span < FY_FINGERPRINT_SAMPLE_BYTES ? span : FY_FINGERPRINT_SAMPLE_BYTES;
    uint64_t at = hashed + (span - n) / (FY_FINGERPRINT_SAMPLES - 1) * i;
    s = read_at(fd, path, buf, (size_t)n, at);
    if (!s && XXH3_64bits_update(state, buf, (size_t)n) != XXH_OK) s = fy_status_make(FY_INTERNAL, "%s: xxh3 failed", path);
  }
  if (!s) *out = (fy_file_fingerprint_t){size, hashed, XXH3_64bits_digest(state)};
  free(buf);
  XXH3_freeState(state);
  return s;
}

fy_status_t fy_fingerprint_file(const char *path, fy_file_fingerprint_t *out_fingerprint) {
  int fd;
  FY_TRY(fy_file_open_read(path, &fd, NULL));
  fy_status_t s = fingerprint_fd(fd, path, out_fingerprint);
  close(fd);
  return s;
}

/* ---- encoding --------------------------------------------------------- */

typedef struct {
  fy_fb_builder_t b;
  bool out_of_memory;
} writer_t;

/* Scratch for the refs of one vector; NULL (and the writer marked) when out of memory. */
static fy_fb_ref_t *refs_alloc(writer_t *w, size_t n) {
  fy_fb_ref_t *r = malloc((n ? n : 1) * sizeof *r);
  if (!r) w->out_of_memory = true;
  return r;
}

static fy_fb_ref_t put_refs(writer_t *w, fy_fb_ref_t *refs, size_t n) {
  if (!refs) return 0;
  fy_fb_ref_t v = fy_fb_vector_refs(&w->b, refs, n);
  free(refs);
  return v;
}

static bool fingerprint_recorded(const fy_file_fingerprint_t *f) { return f->size || f->hashed_bytes || f->digest; }

static fy_fb_ref_t put_fingerprint(writer_t *w, const fy_file_fingerprint_t *f) {
  if (!f || !fingerprint_recorded(f)) return 0;
  fy_fb_builder_t *b = &w->b;
  fy_fb_table_start(b);
  fy_fb_add_u64(b, FYP_FINGERPRINT_SIZE, f->size, 0);
  fy_fb_add_u64(b, FYP_FINGERPRINT_HASHED_BYTES, f->hashed_bytes, 0);
  fy_fb_add_u64(b, FYP_FINGERPRINT_DIGEST, f->digest, 0);
  return fy_fb_table_end(b);
}

/* An all-default table is left out: it reads back as all defaults. */
static bool rope_is_zero(const fy_rope_t *r) {
  static const fy_rope_t zero;
  return r->theta == 0 && !signbit(r->theta) && r->scaling == zero.scaling && r->factor == 0 && !signbit(r->factor) &&
         r->low_freq_factor == 0 && !signbit(r->low_freq_factor) && r->high_freq_factor == 0 &&
         !signbit(r->high_freq_factor) && r->original_max_position == 0;
}

static fy_fb_ref_t put_rope(writer_t *w, const fy_rope_t *r) {
  fy_fb_builder_t *b = &w->b;
  if (rope_is_zero(r)) return 0;
  fy_fb_table_start(b);
  fy_fb_add_f64(b, FYP_ROPE_THETA, r->theta, 0);
  fy_fb_add_u8(b, FYP_ROPE_SCALING, (uint8_t)r->scaling, 0);
  fy_fb_add_f64(b, FYP_ROPE_FACTOR, r->factor, 0);
  fy_fb_add_f64(b, FYP_ROPE_LOW_FREQ_FACTOR, r->low_freq_factor, 0);
  fy_fb_add_f64(b, FYP_ROPE_HIGH_FREQ_FACTOR, r->high_freq_factor, 0);
  fy_fb_add_i64(b, FYP_ROPE_ORIGINAL_MAX_POSITION, r->original_max_position, 0);
  return fy_fb_table_end(b);
}

static fy_fb_ref_t put_config(writer_t *w, const fy_model_config_t *c) {
  fy_fb_builder_t *b = &w->b;
  fy_fb_ref_t arch = fy_fb_string(b, c->architecture);
  fy_fb_ref_t rope = put_rope(w, &c->rope);
  fy_fb_table_start(b);
  fy_fb_add_ref(b, FYP_CONFIG_ARCHITECTURE, arch);
  fy_fb_add_i64(b, FYP_CONFIG_HIDDEN, c->hidden, 0);
  fy_fb_add_i64(b, FYP_CONFIG_FFN, c->ffn, 0);
  fy_fb_add_i64(b, FYP_CONFIG_N_LAYERS, c->n_layers, 0);
  fy_fb_add_i64(b, FYP_CONFIG_N_HEADS, c->n_heads, 0);
  fy_fb_add_i64(b, FYP_CONFIG_N_KV_HEADS, c->n_kv_heads, 0);
  fy_fb_add_i64(b, FYP_CONFIG_HEAD_DIM, c->head_dim, 0);
  fy_fb_add_i64(b, FYP_CONFIG_VOCAB, c->vocab, 0);
  fy_fb_add_i64(b, FYP_CONFIG_MAX_POSITION, c->max_position, 0);
  fy_fb_add_f64(b, FYP_CONFIG_RMS_EPS, c->rms_eps, 0);
  fy_fb_add_ref(b, FYP_CONFIG_ROPE, rope);
  fy_fb_add_bool(b, FYP_CONFIG_TIE_EMBEDDINGS, c->tie_embeddings, false);
  fy_fb_add_bool(b, FYP_CONFIG_QKV_BIAS, c->qkv_bias, false);
  fy_fb_add_u8(b, FYP_CONFIG_DTYPE, (uint8_t)c->dtype, 0);
  return fy_fb_table_end(b);
}

static fy_fb_ref_t put_value(writer_t *w, const fy_value_t *v) {
  fy_fb_builder_t *b = &w->b;
  fy_fb_ref_t name = fy_fb_string(b, v->name);
  fy_fb_ref_t shape = fy_fb_vector(b, v->shape, (size_t)(v->rank > 0 ? v->rank : 0), sizeof v->shape[0]);
  fy_fb_table_start(b);
  fy_fb_add_ref(b, FYP_VALUE_NAME, name);
  fy_fb_add_u8(b, FYP_VALUE_DTYPE, (uint8_t)v->dtype, 0);
  fy_fb_add_u8(b, FYP_VALUE_KIND, (uint8_t)v->kind, 0);
  fy_fb_add_ref(b, FYP_VALUE_SHAPE, shape);
  fy_fb_add_bool(b, FYP_VALUE_PER_TOKEN, v->per_token, false);
  fy_fb_add_i32(b, FYP_VALUE_STAGE, v->stage, -1);
  fy_fb_add_i32(b, FYP_VALUE_LAYER, v->layer, -1);
  fy_fb_add_i32(b, FYP_VALUE_FILE, v->file, -1);
  fy_fb_add_u64(b, FYP_VALUE_FILE_OFFSET, v->file_offset, 0);
  fy_fb_add_u64(b, FYP_VALUE_NBYTES, v->nbytes, 0);
  return fy_fb_table_end(b);
}

static fy_fb_ref_t put_node(writer_t *w, const fy_node_t *n) {
  fy_fb_builder_t *b = &w->b;
  fy_fb_ref_t name = fy_fb_string(b, n->name);
  int n_inputs = n->n_inputs < 0 ? 0 : n->n_inputs > FY_MAX_NODE_INPUTS ? FY_MAX_NODE_INPUTS : n->n_inputs;
  fy_fb_ref_t inputs = fy_fb_vector(b, n->inputs, (size_t)n_inputs, sizeof n->inputs[0]);
  fy_fb_ref_t rope = put_rope(w, &n->attrs.rope);
  fy_fb_ref_t attrs = 0;
  if (rope || n->attrs.eps != 0 || signbit(n->attrs.eps) || n->attrs.n_heads || n->attrs.n_kv_heads ||
      n->attrs.head_dim) {
    fy_fb_table_start(b);
    fy_fb_add_f32(b, FYP_ATTRS_EPS, n->attrs.eps, 0);
    fy_fb_add_i32(b, FYP_ATTRS_N_HEADS, n->attrs.n_heads, 0);
    fy_fb_add_i32(b, FYP_ATTRS_N_KV_HEADS, n->attrs.n_kv_heads, 0);
    fy_fb_add_i32(b, FYP_ATTRS_HEAD_DIM, n->attrs.head_dim, 0);
    fy_fb_add_ref(b, FYP_ATTRS_ROPE, rope);
    attrs = fy_fb_table_end(b);
  }
  fy_fb_table_start(b);
  fy_fb_add_u8(b, FYP_NODE_OP, (uint8_t)n->op, 0);
  fy_fb_add_ref(b, FYP_NODE_NAME, name);
  fy_fb_add_ref(b, FYP_NODE_INPUTS, inputs);
  fy_fb_add_i32(b, FYP_NODE_OUTPUT, n->output, -1);
  fy_fb_add_i32(b, FYP_NODE_LAYER, n->layer, -1);
  fy_fb_add_i32(b, FYP_NODE_STAGE, n->stage, 0);
  fy_fb_add_ref(b, FYP_NODE_ATTRS, attrs);
  return fy_fb_table_end(b);
}

static fy_fb_ref_t put_graph(writer_t *w, const fy_graph_t *g, const fy_plan_meta_t *meta) {
  fy_fb_builder_t *b = &w->b;
  fy_fb_ref_t config = put_config(w, &g->config);

  fy_fb_ref_t *refs = refs_alloc(w, (size_t)g->n_values);
  for (int i = 0; refs && i < g->n_values; i++) refs[i] = put_value(w, &g->values[i]);
  fy_fb_ref_t values = put_refs(w, refs, (size_t)g->n_values);

  refs = refs_alloc(w, (size_t)g->n_nodes);
  for (int i = 0; refs && i < g->n_nodes; i++) refs[i] = put_node(w, &g->nodes[i]);
  fy_fb_ref_t nodes = put_refs(w, refs, (size_t)g->n_nodes);

  refs = refs_alloc(w, (size_t)g->n_layers);
  for (int i = 0; refs && i < g->n_layers; i++) {
    fy_fb_ref_t name = fy_fb_string(b, g->layers[i].name);
    fy_fb_table_start(b);
    fy_fb_add_ref(b, FYP_LAYER_NAME, name);
    refs[i] = fy_fb_table_end(b);
  }
  fy_fb_ref_t layers = put_refs(w, refs, (size_t)g->n_layers);

  refs = refs_alloc(w, (size_t)g->n_stages);
  for (int i = 0; refs && i < g->n_stages; i++) {
    const fy_stage_t *st = &g->stages[i];
    fy_fb_ref_t name = fy_fb_string(b, st->name);
    fy_fb_table_start(b);
    fy_fb_add_ref(b, FYP_GSTAGE_NAME, name);
    fy_fb_add_i32(b, FYP_GSTAGE_FIRST_NODE, st->first_node, 0);
    fy_fb_add_i32(b, FYP_GSTAGE_N_NODES, st->n_nodes, 0);
    fy_fb_add_i64(b, FYP_GSTAGE_MAX_TOKENS, st->max_tokens, 0);
    fy_fb_add_i64(b, FYP_GSTAGE_REPEAT, st->repeat, 0);
    refs[i] = fy_fb_table_end(b);
  }
  fy_fb_ref_t stages = put_refs(w, refs, (size_t)g->n_stages);

  refs = refs_alloc(w, (size_t)g->n_files);
  for (int i = 0; refs && i < g->n_files; i++) {
    fy_fb_ref_t path = fy_fb_string(b, g->files[i].path);
    fy_fb_ref_t fp = meta->file_fingerprints ? put_fingerprint(w, &meta->file_fingerprints[i]) : 0;
    fy_fb_table_start(b);
    fy_fb_add_ref(b, FYP_FILE_PATH, path);
    fy_fb_add_u64(b, FYP_FILE_SIZE, g->files[i].size, 0);
    fy_fb_add_ref(b, FYP_FILE_FINGERPRINT, fp);
    refs[i] = fy_fb_table_end(b);
  }
  fy_fb_ref_t files = put_refs(w, refs, (size_t)g->n_files);
  fy_fb_ref_t config_fp = put_fingerprint(w, &meta->config_fingerprint);

  fy_fb_table_start(b);
  fy_fb_add_ref(b, FYP_GRAPH_CONFIG, config);
  fy_fb_add_bool(b, FYP_GRAPH_SHAPE_ONLY, g->shape_only, false);
  fy_fb_add_i64(b, FYP_GRAPH_CONTEXT, g->context, 0);
  fy_fb_add_ref(b, FYP_GRAPH_VALUES, values);
  fy_fb_add_ref(b, FYP_GRAPH_NODES, nodes);
  fy_fb_add_ref(b, FYP_GRAPH_LAYERS, layers);
  fy_fb_add_ref(b, FYP_GRAPH_STAGES, stages);
  fy_fb_add_ref(b, FYP_GRAPH_FILES, files);
  fy_fb_add_ref(b, FYP_GRAPH_CONFIG_FINGERPRINT, config_fp);
  return fy_fb_table_end(b);
}

static fy_fb_ref_t put_fixed_string(writer_t *w, const char *s, size_t cap) {
  return fy_fb_string_n(&w->b, s, strnlen(s, cap));
}

static fy_fb_ref_t put_target(writer_t *w, const fy_target_t *t) {
  fy_fb_builder_t *b = &w->b;
  fy_fb_ref_t name = put_fixed_string(w, t->name, sizeof t->name);
  fy_fb_ref_t description = put_fixed_string(w, t->description, sizeof t->description);
  fy_fb_ref_t code_target = put_fixed_string(w, t->code_target, sizeof t->code_target);
  fy_fb_ref_t sources = put_fixed_string(w, t->sources, sizeof t->sources);
  fy_fb_table_start(b);
  fy_fb_add_ref(b, FYP_TARGET_NAME, name);
  fy_fb_add_ref(b, FYP_TARGET_DESCRIPTION, description);
  fy_fb_add_ref(b, FYP_TARGET_CODE_TARGET, code_target);
  fy_fb_add_ref(b, FYP_TARGET_SOURCES, sources);
  fy_fb_add_u64(b, FYP_TARGET_VRAM_BYTES, t->vram_bytes, 0);
  fy_fb_add_u64(b, FYP_TARGET_RESERVE_BYTES, t->reserve_bytes, 0);
  fy_fb_add_u64(b, FYP_TARGET_HOST_RAM_BYTES, t->host_ram_bytes, 0);
  fy_fb_add_f64(b, FYP_TARGET_H2D_PINNED_GBPS, t->h2d_pinned_gbps, 0);
  fy_fb_add_f64(b, FYP_TARGET_H2D_PAGEABLE_GBPS, t->h2d_pageable_gbps, 0);
  fy_fb_add_f64(b, FYP_TARGET_D2H_GBPS, t->d2h_gbps, 0);
  fy_fb_add_f64(b, FYP_TARGET_DISK_READ_GBPS, t->disk_read_gbps, 0);
  fy_fb_add_f64(b, FYP_TARGET_FP16_TFLOPS, t->fp16_tflops, 0);
  fy_fb_add_f64(b, FYP_TARGET_BF16_TFLOPS, t->bf16_tflops, 0);
  fy_fb_add_f64(b, FYP_TARGET_FP32_TFLOPS, t->fp32_tflops, 0);
  fy_fb_add_f64(b, FYP_TARGET_MEM_BW_GBPS, t->mem_bw_gbps, 0);
  fy_fb_add_f64(b, FYP_TARGET_LAUNCH_OVERHEAD_US, t->launch_overhead_us, 0);
  fy_fb_add_f64(b, FYP_TARGET_CPU_GFLOPS, t->cpu_gflops, 0);
  fy_fb_add_f64(b, FYP_TARGET_HOST_MEM_BW_GBPS, t->host_mem_bw_gbps, 0);
  return fy_fb_table_end(b);
}

static fy_fb_ref_t put_options(writer_t *w, const fy_plan_meta_t *meta) {
  fy_fb_builder_t *b = &w->b;
  fy_fb_ref_t *refs = refs_alloc(w, (size_t)meta->n_extra);
  for (int i = 0; refs && i < meta->n_extra; i++) {
    fy_fb_ref_t key = fy_fb_string(b, meta->extra[i].key);
    fy_fb_ref_t value = fy_fb_string(b, meta->extra[i].value);
    fy_fb_table_start(b);
    fy_fb_add_ref(b, FYP_OPTION_KEY, key);
    fy_fb_add_ref(b, FYP_OPTION_VALUE, value);
    refs[i] = fy_fb_table_end(b);
  }
  fy_fb_ref_t extra = put_refs(w, refs, (size_t)meta->n_extra);
  fy_fb_table_start(b);
  fy_fb_add_u8(b, FYP_OPTIONS_POLICY, (uint8_t)meta->options.policy, 0);
  fy_fb_add_i32(b, FYP_OPTIONS_PREFETCH, meta->options.prefetch, -1);
  fy_fb_add_u64(b, FYP_OPTIONS_BUDGET, meta->options.budget, 0);
  fy_fb_add_ref(b, FYP_OPTIONS_EXTRA, extra);
  return fy_fb_table_end(b);
}

static bool binding_is_zero(const fy_binding_t *a) { return a->kind == 0 && a->file == 0 && a->offset == 0; }

/* How many of a command's bindings to write: a launch's node inputs and
 * output at least, and never a trailing run of all-zero bindings beyond. */
static int binding_count(const fy_graph_t *g, const fy_cmd_t *c) {
  int n = FY_MAX_NODE_INPUTS + 1;
  while (n > 0 && binding_is_zero(&c->args[n - 1])) n--;
  if (c->kind == FY_CMD_LAUNCH && c->node >= 0 && c->node < g->n_nodes) {
    int needed = g->nodes[c->node].n_inputs + 1;
    if (needed > n && needed <= FY_MAX_NODE_INPUTS + 1) n = needed;
  }
  return n;
}

static fy_fb_ref_t put_cmd(writer_t *w, const fy_graph_t *g, const fy_cmd_t *c) {
  fy_fb_builder_t *b = &w->b;
  fy_fb_ref_t arg_refs[FY_MAX_NODE_INPUTS + 1];
  int n_args = binding_count(g, c);
  for (int i = 0; i < n_args; i++) {
    fy_fb_table_start(b);
    fy_fb_add_u8(b, FYP_BINDING_KIND, (uint8_t)c->args[i].kind, 0);
    fy_fb_add_i32(b, FYP_BINDING_FILE, c->args[i].file, -1);
    fy_fb_add_u64(b, FYP_BINDING_OFFSET, c->args[i].offset, 0);
    arg_refs[i] = fy_fb_table_end(b);
  }
  fy_fb_ref_t args = n_args ? fy_fb_vector_refs(b, arg_refs, (size_t)n_args) : 0;
  fy_fb_table_start(b);
  fy_fb_add_u8(b, FYP_CMD_KIND, (uint8_t)c->kind, 0);
  fy_fb_add_i32(b, FYP_CMD_LAYER, c->layer, -1);
  fy_fb_add_i32(b, FYP_CMD_FILE, c->file, -1);
  fy_fb_add_u64(b, FYP_CMD_FILE_OFFSET, c->file_offset, 0);
  fy_fb_add_u64(b, FYP_CMD_BYTES, c->bytes, 0);
  fy_fb_add_u64(b, FYP_CMD_DEVICE_OFFSET, c->device_offset, 0);
  fy_fb_add_i32(b, FYP_CMD_GROUP, c->group, -1);
  fy_fb_add_i32(b, FYP_CMD_EVENT, c->event, -1);
  fy_fb_add_i32(b, FYP_CMD_STEP_DELTA, c->step_delta, 0);
  fy_fb_add_i32(b, FYP_CMD_NODE, c->node, -1);
  fy_fb_add_bool(b, FYP_CMD_ON_HOST, c->on_host, false);
  fy_fb_add_ref(b, FYP_CMD_ARGS, args);
  fy_fb_add_i32(b, FYP_CMD_SLOT, c->slot, -1);
  fy_fb_add_f64(b, FYP_CMD_SECONDS, c->seconds, 0);
  return fy_fb_table_end(b);
}

static fy_fb_ref_t put_stage(writer_t *w, const fy_graph_t *g, const fy_stage_schedule_t *st) {
  fy_fb_builder_t *b = &w->b;
  fy_fb_ref_t name = fy_fb_string(b, st->name);
  fy_fb_ref_t queues[FY_QUEUE_COUNT];
  for (int q = 0; q < FY_QUEUE_COUNT; q++) {
    fy_fb_ref_t *refs = refs_alloc(w, (size_t)st->n_cmds[q]);
    for (int i = 0; refs && i < st->n_cmds[q]; i++) refs[i] = put_cmd(w, g, &st->cmds[q][i]);
    queues[q] = put_refs(w, refs, (size_t)st->n_cmds[q]);
  }
  fy_fb_ref_t *refs = refs_alloc(w, (size_t)st->n_events);
  for (int i = 0; refs && i < st->n_events; i++) {
    fy_fb_ref_t ename = fy_fb_string(b, st->events[i].name);
    fy_fb_table_start(b);
    fy_fb_add_ref(b, FYP_EVENT_NAME, ename);
    refs[i] = fy_fb_table_end(b);
  }
  fy_fb_ref_t events = put_refs(w, refs, (size_t)st->n_events);
  fy_fb_table_start(b);
  fy_fb_add_ref(b, FYP_SSTAGE_NAME, name);
  fy_fb_add_i32(b, FYP_SSTAGE_GRAPH_STAGE, st->graph_stage, -1);
  fy_fb_add_i64(b, FYP_SSTAGE_MAX_TOKENS, st->max_tokens, 0);
  fy_fb_add_i64(b, FYP_SSTAGE_REPEAT, st->repeat, 0);
  fy_fb_add_ref(b, FYP_SSTAGE_COMPUTE, queues[FY_QUEUE_COMPUTE]);
  fy_fb_add_ref(b, FYP_SSTAGE_COPY, queues[FY_QUEUE_COPY]);
  fy_fb_add_ref(b, FYP_SSTAGE_EVENTS, events);
  fy_fb_add_f64(b, FYP_SSTAGE_PREDICTED_FIRST_STEP_SECONDS, st->predicted_first_step_seconds, 0);
  fy_fb_add_f64(b, FYP_SSTAGE_PREDICTED_STEP_SECONDS, st->predicted_step_seconds, 0);
  fy_fb_add_f64(b, FYP_SSTAGE_PREDICTED_TOTAL_SECONDS, st->predicted_total_seconds, 0);
  return fy_fb_table_end(b);
}

static fy_fb_ref_t put_schedule(writer_t *w, const fy_schedule_t *s) {
  fy_fb_builder_t *b = &w->b;
  const fy_graph_t *g = s->graph;
  fy_fb_ref_t regions[FY_REGION_COUNT];
  for (int i = 0; i < FY_REGION_COUNT; i++) {
    fy_fb_table_start(b);
    fy_fb_add_u8(b, FYP_REGION_KIND, (uint8_t)i, 0);
    fy_fb_add_u64(b, FYP_REGION_OFFSET, s->regions[i].offset, 0);
    fy_fb_add_u64(b, FYP_REGION_BYTES, s->regions[i].bytes, 0);
    regions[i] = fy_fb_table_end(b);
  }
  fy_fb_ref_t region_vec = fy_fb_vector_refs(b, regions, FY_REGION_COUNT);

  fy_fb_ref_t placement = 0, device_offset = 0;
  if (s->placement) {
    uint8_t *p = malloc((size_t)(g->n_values ? g->n_values : 1));
    if (!p) w->out_of_memory = true;
    for (int i = 0; p && i < g->n_values; i++) p[i] = (uint8_t)s->placement[i];
    if (p) placement = fy_fb_vector(b, p, (size_t)g->n_values, 1);
    free(p);
  }
  if (s->device_offset) device_offset = fy_fb_vector(b, s->device_offset, (size_t)g->n_values, 8);

  fy_fb_ref_t *refs = refs_alloc(w, (size_t)s->n_stages);
  for (int i = 0; refs && i < s->n_stages; i++) refs[i] = put_stage(w, g, &s->stages[i]);
  fy_fb_ref_t stages = put_refs(w, refs, (size_t)s->n_stages);

  fy_fb_table_start(b);
  fy_fb_add_u8(b, FYP_SCHEDULE_POLICY, (uint8_t)s->policy, 0);
  fy_fb_add_i32(b, FYP_SCHEDULE_PREFETCH, s->prefetch, 0);
  fy_fb_add_i32(b, FYP_SCHEDULE_N_SLOTS, s->n_slots, 0);
  fy_fb_add_u64(b, FYP_SCHEDULE_SLOT_BYTES, s->slot_bytes, 0);
  fy_fb_add_u64(b, FYP_SCHEDULE_BUDGET, s->budget, 0);
  fy_fb_add_u64(b, FYP_SCHEDULE_DEVICE_BYTES, s->device_bytes, 0);
  fy_fb_add_ref(b, FYP_SCHEDULE_REGIONS, region_vec);
  fy_fb_add_u64(b, FYP_SCHEDULE_ACTIVATION_LOWER_BOUND, s->activation_lower_bound, 0);
  fy_fb_add_ref(b, FYP_SCHEDULE_PLACEMENT, placement);
  fy_fb_add_ref(b, FYP_SCHEDULE_DEVICE_OFFSET, device_offset);
  fy_fb_add_ref(b, FYP_SCHEDULE_STAGES, stages);
  return fy_fb_table_end(b);
}

static fy_fb_ref_t put_kernels(writer_t *w, const fy_plan_meta_t *meta) {
  fy_fb_builder_t *b = &w->b;
  fy_fb_ref_t *refs = refs_alloc(w, (size_t)meta->n_kernels);
  for (int i = 0; refs && i < meta->n_kernels; i++) {
    const fy_plan_kernel_t *k = &meta->kernels[i];
    fy_fb_ref_t format = fy_fb_string(b, k->format);
    fy_fb_ref_t arch = fy_fb_string(b, k->architecture);
    fy_fb_ref_t code = fy_fb_vector(b, k->code, k->code_size, 1);
    fy_fb_ref_t *names = refs_alloc(w, (size_t)k->n_entries);
    for (int e = 0; names && e < k->n_entries; e++) names[e] = fy_fb_string(b, k->entries[e]);
    fy_fb_ref_t entries = put_refs(w, names, (size_t)k->n_entries);
    fy_fb_table_start(b);
    fy_fb_add_ref(b, FYP_KERNEL_FORMAT, format);
    fy_fb_add_ref(b, FYP_KERNEL_ARCHITECTURE, arch);
    fy_fb_add_ref(b, FYP_KERNEL_CODE, code);
    fy_fb_add_ref(b, FYP_KERNEL_ENTRIES, entries);
    fy_fb_add_u64(b, FYP_KERNEL_CODE_DIGEST, XXH3_64bits(k->code, k->code_size), 0);
    refs[i] = fy_fb_table_end(b);
  }
  return put_refs(w, refs, (size_t)meta->n_kernels);
}

fy_status_t fy_plan_encode(const fy_schedule_t *s, const fy_plan_meta_t *meta, uint8_t **out_data,
                           size_t *out_size) {
  if (!s || !s->graph) return fy_status_make(FY_INVALID_ARGUMENT, "plan: no schedule or graph to write");
  fy_plan_meta_t none = {.options = {.policy = s->policy, .prefetch = -1}};
  if (!meta) meta = &none;
  writer_t w = {0};
  fy_fb_builder_init(&w.b);
  fy_fb_ref_t version = fy_fb_string(&w.b, meta->compiler_version ? meta->compiler_version : "");
  fy_fb_ref_t graph = put_graph(&w, s->graph, meta);
  fy_fb_ref_t target = put_target(&w, &s->target);
  fy_fb_ref_t options = put_options(&w, meta);
  fy_fb_ref_t schedule = put_schedule(&w, s);
  fy_fb_ref_t kernels = put_kernels(&w, meta);
  fy_fb_table_start(&w.b);
  fy_fb_add_u32(&w.b, FYP_PLAN_FORMAT_VERSION, FY_PLAN_FORMAT_VERSION, 0);
  fy_fb_add_ref(&w.b, FYP_PLAN_COMPILER_VERSION, version);
  fy_fb_add_ref(&w.b, FYP_PLAN_GRAPH, graph);
  fy_fb_add_ref(&w.b, FYP_PLAN_TARGET, target);
  fy_fb_add_ref(&w.b, FYP_PLAN_OPTIONS, options);
  fy_fb_add_ref(&w.b, FYP_PLAN_SCHEDULE, schedule);
  fy_fb_add_ref(&w.b, FYP_PLAN_KERNELS, kernels);
  fy_fb_ref_t root = fy_fb_table_end(&w.b);
  fy_status_t st = w.out_of_memory ? fy_status_make(FY_RESOURCE_EXHAUSTED, "plan: out of memory encoding")
                                   : fy_fb_finish(&w.b, root, FY_PLAN_IDENTIFIER, out_data, out_size);
  fy_fb_builder_free(&w.b);
  return st;
}

fy_status_t fy_plan_write(const char *path, const fy_schedule_t *s, const fy_plan_meta_t *meta) {
  uint8_t *data;
  size_t size;
  FY_TRY(fy_status_annotate(fy_plan_encode(s, meta, &data, &size), "%s", path));
  fy_status_t st = fy_file_write_atomic_bytes(path, data, size);
  free(data);
  return st;
}
