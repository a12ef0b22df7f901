/* Plan files: what is written reads back field for field and re-encodes
 * to the same bytes; fingerprints cover exactly the headers; the
 * FlatBuffers primitives build what they read; truncated, bit-flipped and
 * hand-corrupted plans are rejected with the field named, never a crash
 * (CI runs this under ASan); shared subtrees cannot blow verification up.
 *
 * Also a tool for test_plan_flatc.py and for the fuzz corpus:
 *   test_plan --read FILE...        prints "FILE: ok" or "FILE: error: ..." (exit 1 if any fails)
 *   test_plan --write-seeds DIR     writes small plans (the fuzz seed corpus) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/frontend.h"
#include "frontend/synth.h"
#include "passes/compile.h"
#include "passes/target.h"
#include "schedules/flatbuf.h"
#include "schedules/plan.h"
#include "schedules/plan_schema.h"
#include "schedules/schedule.h"
#include "schedules/simulate.h"
#include "support/file.h"
#include "tests/check.h"



/* A step the rest depends on: stop the test on failure. */
static void must(fy_status_t st, const char *what) {
  if (!st) return;
  fprintf(stderr, "%s: %s\n", what, fy_status_message(st));
  exit(1);
}

/* Expects a failure whose message contains `needle` (and code, unless FY_OK). */
static void check_error(fy_status_t st, fy_code_t code, const char *needle, const char *what) {
  if (!st) {
    fprintf(stderr, "%s: accepted, expected an error containing '%s'\n", what, needle);
    failures++;
    return;
  }
  if (!strstr(fy_status_message(st), needle) || (code != FY_OK && fy_status_code(st) != code)) {
    fprintf(stderr, "%s: got [%s] %s\n  expected [%s] containing '%s'\n", what, fy_code_name(fy_status_code(st)),
            fy_status_message(st), fy_code_name(code), needle);
    failures++;
  }
  fy_status_free(st);
}

static char tmp_dir[2048], targets_dir[2048];

/* ---- plans to test on ------------------------------------------------- */

typedef struct {
  fy_graph_t *graph;
  fy_schedule_t *schedule;
  fy_plan_meta_t meta;
  fy_file_fingerprint_t prints[4];
  fy_plan_option_t extra[2];
  fy_plan_kernel_t kernel;
} source_t;

static const uint8_t kernel_code[] = {0x7f, 'E', 'L', 'F', 0, 1, 2, 3, 0xff};
static const char *const kernel_entries[] = {"fy_matmul_bf16", "fy_rmsnorm"};

/* The tiny model compiled for the demo target with a policy and budget;
 * predicted times from the simulator; fingerprints, options and a kernel
 * table in the meta so that every part of a plan is exercised. */
static void make_source(source_t *src, const char *model_dir, bool shape_only, fy_policy_t policy, uint64_t budget) {
  memset(src, 0, sizeof *src);
  fy_load_options_t lo = {.prefill_tokens = 16, .generate = 4, .shape_only = shape_only};
  must(fy_model_load(model_dir, &lo, &src->graph), "load the tiny model");
  fy_target_t target;
  must(fy_target_load("demo", targets_dir, &target), "load the demo target");
  fy_compile_options_t co = {.policy = policy, .prefetch = -1, .budget = budget};
  fy_compile_t *c;
  must(fy_compile_run(src->graph, &target, &co, &c), "compile");
  must(fy_schedule_build(c, &src->schedule), "build the schedule");
  fy_compile_destroy(c);
  fy_sim_result_t r;
  must(fy_simulate(src->schedule, &(fy_sim_options_t){0}, &r), "simulate");
  for (int i = 0; i < src->schedule->n_stages; i++) {
    src->schedule->stages[i].predicted_first_step_seconds = r.stages[i].first_step_seconds;
    src->schedule->stages[i].predicted_step_seconds = r.stages[i].step_seconds;
    src->schedule->stages[i].predicted_total_seconds = r.stages[i].total_seconds;
  }
  fy_sim_result_free(&r);

  for (int f = 0; f < src->graph->n_files && f < 4; f++)
    must(fy_fingerprint_file(src->graph->files[f].path, &src->prints[f]), "fingerprint");
  char config[4096];
  snprintf(config, sizeof config, "%s/config.json", model_dir);
  src->meta.compiler_version = "test";
  src->meta.options = co;
  src->meta.file_fingerprints = src->graph->n_files ? src->prints : NULL;
  must(fy_fingerprint_file(config, &src->meta.config_fingerprint), "fingerprint config.json");
  src->extra[0] = (fy_plan_option_t){"context", "20"};
  src->extra[1] = (fy_plan_option_t){"prompt_tokens", "16"};
  src->meta.extra = src->extra;
  src->meta.n_extra = 2;
  src->kernel = (fy_plan_kernel_t){"cubin", "sm_86", kernel_code, sizeof kernel_code, kernel_entries, 2};
  src->meta.kernels = &src->kernel;
  src->meta.n_kernels = 1;
}

static void free_source(source_t *src) {
  fy_schedule_destroy(src->schedule);
  fy_graph_destroy(src->graph);
}

/* ---- round trip ------------------------------------------------------- */

static bool same_str(const char *a, const char *b) { return (!a && !b) || (a && b && !strcmp(a, b)); }
static bool same_f64(double a, double b) { return !memcmp(&a, &b, sizeof a); }

static bool same_rope(const fy_rope_t *a, const fy_rope_t *b) {
  return same_f64(a->theta, b->theta) && a->scaling == b->scaling && same_f64(a->factor, b->factor) &&
         same_f64(a->low_freq_factor, b->low_freq_factor) && same_f64(a->high_freq_factor, b->high_freq_factor) &&
         a->original_max_position == b->original_max_position;
}

static void compare_graph(const fy_graph_t *a, const fy_graph_t *b) {
  const fy_model_config_t *x = &a->config, *y = &b->config;
  CHECK(same_str(x->architecture, y->architecture));
  CHECK(x->hidden == y->hidden && x->ffn == y->ffn && x->n_layers == y->n_layers && x->n_heads == y->n_heads);
  CHECK(x->n_kv_heads == y->n_kv_heads && x->head_dim == y->head_dim && x->vocab == y->vocab);
  CHECK(x->max_position == y->max_position && same_f64(x->rms_eps, y->rms_eps) && same_rope(&x->rope, &y->rope));
  CHECK(x->tie_embeddings == y->tie_embeddings && x->qkv_bias == y->qkv_bias && x->dtype == y->dtype);
  CHECK(a->shape_only == b->shape_only && a->context == b->context);
  CHECK(a->n_values == b->n_values && a->n_nodes == b->n_nodes && a->n_layers == b->n_layers);
  CHECK(a->n_stages == b->n_stages && a->n_files == b->n_files);
  if (failures) return;
  for (int i = 0; i < a->n_values; i++) {
    const fy_value_t *v = &a->values[i], *w = &b->values[i];
    CHECK(!strcmp(v->name, w->name) && v->dtype == w->dtype && v->kind == w->kind && v->rank == w->rank);
    for (int d = 0; d < v->rank; d++) CHECK(v->shape[d] == w->shape[d]);
    CHECK(v->per_token == w->per_token && v->stage == w->stage && v->layer == w->layer && v->file == w->file);
    CHECK(v->file_offset == w->file_offset && v->nbytes == w->nbytes);
  }
  for (int i = 0; i < a->n_nodes; i++) {
    const fy_node_t *n = &a->nodes[i], *m = &b->nodes[i];
    CHECK(n->op == m->op && !strcmp(n->name, m->name) && n->n_inputs == m->n_inputs);
    for (int k = 0; k < n->n_inputs; k++) CHECK(n->inputs[k] == m->inputs[k]);
    CHECK(n->output == m->output && n->layer == m->layer && n->stage == m->stage);
    CHECK(!memcmp(&n->attrs.eps, &m->attrs.eps, sizeof n->attrs.eps) && n->attrs.n_heads == m->attrs.n_heads);
    CHECK(n->attrs.n_kv_heads == m->attrs.n_kv_heads && n->attrs.head_dim == m->attrs.head_dim);
    CHECK(same_rope(&n->attrs.rope, &m->attrs.rope));
  }
  for (int i = 0; i < a->n_layers; i++) CHECK(!strcmp(a->layers[i].name, b->layers[i].name));
  for (int i = 0; i < a->n_stages; i++) {
    const fy_stage_t *s = &a->stages[i], *t = &b->stages[i];
    CHECK(!strcmp(s->name, t->name) && s->first_node == t->first_node && s->n_nodes == t->n_nodes);
    CHECK(s->max_tokens == t->max_tokens && s->repeat == t->repeat);
  }
  for (int i = 0; i < a->n_files; i++)
    CHECK(!strcmp(a->files[i].path, b->files[i].path) && a->files[i].size == b->files[i].size);
}

static void compare_target(const fy_target_t *a, const fy_target_t *b) {
  CHECK(!strcmp(a->name, b->name) && !strcmp(a->description, b->description));
  CHECK(!strcmp(a->code_target, b->code_target) && !strcmp(a->sources, b->sources));
  CHECK(a->vram_bytes == b->vram_bytes && a->reserve_bytes == b->reserve_bytes && a->host_ram_bytes == b->host_ram_bytes);
  CHECK(same_f64(a->h2d_pinned_gbps, b->h2d_pinned_gbps) && same_f64(a->h2d_pageable_gbps, b->h2d_pageable_gbps));
  CHECK(same_f64(a->d2h_gbps, b->d2h_gbps) && same_f64(a->disk_read_gbps, b->disk_read_gbps));
  CHECK(same_f64(a->fp16_tflops, b->fp16_tflops) && same_f64(a->bf16_tflops, b->bf16_tflops));
  CHECK(same_f64(a->fp32_tflops, b->fp32_tflops) && same_f64(a->mem_bw_gbps, b->mem_bw_gbps));
  CHECK(same_f64(a->launch_overhead_us, b->launch_overhead_us) && same_f64(a->cpu_gflops, b->cpu_gflops));
  CHECK(same_f64(a->host_mem_bw_gbps, b->host_mem_bw_gbps));
}

static bool same_cmd(const fy_cmd_t *a, const fy_cmd_t *b) {
  bool same = a->kind == b->kind && a->layer == b->layer && a->file == b->file && a->file_offset == b->file_offset &&
              a->bytes == b->bytes && a->device_offset == b->device_offset && a->group == b->group &&
              a->event == b->event && a->step_delta == b->step_delta && a->node == b->node &&
              a->on_host == b->on_host && a->slot == b->slot && same_f64(a->seconds, b->seconds);
  for (int i = 0; i < FY_MAX_NODE_INPUTS + 1; i++)
    same = same && a->args[i].kind == b->args[i].kind && a->args[i].file == b->args[i].file &&
           a->args[i].offset == b->args[i].offset;
  return same;
}

static void compare_schedule(const fy_schedule_t *a, const fy_schedule_t *b) {
  compare_target(&a->target, &b->target);
  CHECK(a->policy == b->policy && a->prefetch == b->prefetch && a->n_slots == b->n_slots);
  CHECK(a->slot_bytes == b->slot_bytes && a->budget == b->budget && a->device_bytes == b->device_bytes);
  CHECK(a->activation_lower_bound == b->activation_lower_bound);
  for (int i = 0; i < FY_REGION_COUNT; i++)
    CHECK(a->regions[i].offset == b->regions[i].offset && a->regions[i].bytes == b->regions[i].bytes);
  for (int v = 0; v < a->graph->n_values; v++)
    CHECK(a->placement[v] == b->placement[v] && a->device_offset[v] == b->device_offset[v]);
  CHECK(a->n_stages == b->n_stages);
  for (int i = 0; i < a->n_stages && i < b->n_stages; i++) {
    const fy_stage_schedule_t *s = &a->stages[i], *t = &b->stages[i];
    CHECK(!strcmp(s->name, t->name) && s->graph_stage == t->graph_stage);
    CHECK(s->max_tokens == t->max_tokens && s->repeat == t->repeat);
    CHECK(same_f64(s->predicted_first_step_seconds, t->predicted_first_step_seconds));
    CHECK(same_f64(s->predicted_step_seconds, t->predicted_step_seconds));
    CHECK(same_f64(s->predicted_total_seconds, t->predicted_total_seconds));
    for (int q = 0; q < FY_QUEUE_COUNT; q++) {
      CHECK(s->n_cmds[q] == t->n_cmds[q]);
      for (int c = 0; c < s->n_cmds[q] && c < t->n_cmds[q]; c++) {
        if (same_cmd(&s->cmds[q][c], &t->cmds[q][c])) continue;
        fprintf(stderr, "stage %d %s command %d differs\n", i, fy_queue_name((fy_queue_t)q), c);
        failures++;
      }
    }
    CHECK(s->n_events == t->n_events);
    for (int e = 0; e < s->n_events && e < t->n_events; e++) CHECK(!strcmp(s->events[e].name, t->events[e].name));
  }
}

static bool same_print(const fy_file_fingerprint_t *a, const fy_file_fingerprint_t *b) {
  return a->size == b->size && a->hashed_bytes == b->hashed_bytes && a->digest == b->digest;
}

static void compare_meta(const source_t *src, const fy_plan_t *p) {
  const fy_plan_meta_t *a = &src->meta, *b = &p->meta;
  CHECK(p->format_version == FY_PLAN_FORMAT_VERSION);
  CHECK(!strcmp(p->compiler_version, a->compiler_version) && !strcmp(b->compiler_version, a->compiler_version));
  CHECK(a->options.policy == b->options.policy && a->options.prefetch == b->options.prefetch);
  CHECK(a->options.budget == b->options.budget);
  CHECK(a->n_extra == b->n_extra);
  for (int i = 0; i < a->n_extra && i < b->n_extra; i++)
    CHECK(!strcmp(a->extra[i].key, b->extra[i].key) && !strcmp(a->extra[i].value, b->extra[i].value));
  for (int f = 0; f < src->graph->n_files; f++) {
    fy_file_fingerprint_t none = {0};
    CHECK(same_print(a->file_fingerprints ? &a->file_fingerprints[f] : &none, &b->file_fingerprints[f]));
  }
  CHECK(same_print(&a->config_fingerprint, &b->config_fingerprint));
  CHECK(a->n_kernels == b->n_kernels);
  for (int i = 0; i < a->n_kernels && i < b->n_kernels; i++) {
    const fy_plan_kernel_t *k = &a->kernels[i], *l = &b->kernels[i];
    CHECK(!strcmp(k->format, l->format) && !strcmp(k->architecture, l->architecture));
    CHECK(k->code_size == l->code_size && !memcmp(k->code, l->code, k->code_size));
    CHECK(k->n_entries == l->n_entries);
    for (int e = 0; e < k->n_entries && e < l->n_entries; e++) CHECK(!strcmp(k->entries[e], l->entries[e]));
  }
}

/* Reads from an exact-size heap copy, so that ASan sees any read past the end. */
static fy_status_t read_copy(const uint8_t *data, size_t size, fy_plan_t **out) {
  uint8_t *copy = malloc(size ? size : 1);
  if (size) memcpy(copy, data, size);
  fy_status_t st = fy_plan_read(copy, size, out);
  free(copy);
  return st;
}

static void test_round_trip(const source_t *src, const char *name, uint8_t **out_data, size_t *out_size) {
  uint8_t *data;
  size_t size;
  must(fy_plan_encode(src->schedule, &src->meta, &data, &size), "encode");
  fy_plan_t *p = NULL;
  fy_status_t st = read_copy(data, size, &p);
  if (st) fprintf(stderr, "%s: %s\n", name, fy_status_message(st));
  CHECK(st == NULL);
  fy_status_free(st);
  if (p) {
    CHECK(p->schedule->graph == p->graph);
    compare_graph(src->graph, p->graph);
    compare_schedule(src->schedule, p->schedule);
    compare_meta(src, p);
    /* Written again, a read plan gives the same bytes. */
    uint8_t *again;
    size_t again_size;
    must(fy_plan_encode(p->schedule, &p->meta, &again, &again_size), "encode again");
    CHECK(again_size == size && !memcmp(again, data, size));
    free(again);
    fy_plan_destroy(p);
  }
  /* Through a file, atomically. */
  char path[4200];
  snprintf(path, sizeof path, "%s/%s.plan", tmp_dir, name);
  must(fy_plan_write(path, src->schedule, &src->meta), "write");
  fy_mapping_t m;
  must(fy_file_map(path, &m), "map");
  CHECK(m.size == size && !memcmp(m.data, data, size));
  fy_file_unmap(&m);
  must(fy_plan_load(path, &p), "load");
  fy_plan_destroy(p);
  printf("round trip %s: %zu bytes\n", name, size);
  *out_data = data;
  *out_size = size;
}

/* ---- fingerprints ----------------------------------------------------- */

static void test_fingerprints(const char *model_dir) {
  char st_path[4400], cfg_path[4400], copy_path[4400];
  snprintf(st_path, sizeof st_path, "%s/model.safetensors", model_dir);
  snprintf(cfg_path, sizeof cfg_path, "%s/config.json", model_dir);
  snprintf(copy_path, sizeof copy_path, "%s/copy.safetensors", tmp_dir);
  fy_mapping_t m;
  must(fy_file_map(st_path, &m), "map weights");
  uint64_t header = 0;
  for (int i = 0; i < 8; i++) header |= (uint64_t)m.data[i] << (8 * i);
  fy_file_fingerprint_t a, b, c;
  must(fy_fingerprint_file(st_path, &a), "fingerprint weights");
  CHECK(a.size == m.size && a.hashed_bytes == 8 + header && a.digest != 0);
  /* A weight byte past the header does not change it; a header byte does. */
  uint8_t *bytes = malloc(m.size);
  memcpy(bytes, m.data, m.size);
  bytes[m.size - 1] ^= 1;
  must(fy_file_write_atomic_bytes(copy_path, bytes, m.size), "write copy");
  must(fy_fingerprint_file(copy_path, &b), "fingerprint copy");
  CHECK(same_print(&a, &b));
  bytes[m.size - 1] ^= 1;
  bytes[8 + header / 2] ^= 1;
  must(fy_file_write_atomic_bytes(copy_path, bytes, m.size), "write copy");
  must(fy_fingerprint_file(copy_path, &b), "fingerprint copy");
  CHECK(b.digest != a.digest && b.hashed_bytes == a.hashed_bytes);
  free(bytes);
  fy_file_unmap(&m);
  must(fy_fingerprint_file(cfg_path, &c), "fingerprint config");
  CHECK(c.hashed_bytes == c.size && c.size > 0);
  check_error(fy_fingerprint_file("/nonexistent/model.safetensors", &c), FY_UNAVAILABLE, "/nonexistent", "missing file");
}

/* ---- flatbuffer primitives -------------------------------------------- */

static void test_flatbuf(void) {
  fy_fb_builder_t b;
  fy_fb_builder_init(&b);
  int64_t longs[] = {1, -2, INT64_MAX};
  fy_fb_ref_t s = fy_fb_string(&b, "hello");
  fy_fb_ref_t v = fy_fb_vector(&b, longs, 3, 8);
  fy_fb_ref_t kids[3];
  for (int i = 0; i < 3; i++) {
    fy_fb_table_start(&b);
    fy_fb_add_i32(&b, 0, i, 0);
    kids[i] = fy_fb_table_end(&b);
  }
  fy_fb_ref_t kv = fy_fb_vector_refs(&b, kids, 3);
  fy_fb_table_start(&b);
  fy_fb_add_ref(&b, 0, s);
  fy_fb_add_ref(&b, 1, v);
  fy_fb_add_ref(&b, 2, kv);
  fy_fb_add_f64(&b, 3, -0.0, 0.0);
  fy_fb_add_u64(&b, 4, 7, 7); /* the default: left out */
  fy_fb_add_u8(&b, 5, 200, 0);
  fy_fb_ref_t root = fy_fb_table_end(&b);
  uint8_t *data;
  size_t size;
  must(fy_fb_finish(&b, root, "TEST", &data, &size), "finish");
  fy_fb_builder_free(&b);

  static const fy_fb_field_desc_t kid_fields[] = {{"n", FY_FB_I32, false, NULL}};
  static const fy_fb_table_desc_t kid = {1, kid_fields};
  const fy_fb_field_desc_t root_fields[] = {
      {"s", FY_FB_STRING, false, NULL}, {"v", FY_FB_I64, true, NULL},   {"kids", FY_FB_TABLE, true, &kid},
      {"d", FY_FB_F64, false, NULL},    {"u", FY_FB_U64, false, NULL},  {"b", FY_FB_U8, false, NULL},
  };
  const fy_fb_table_desc_t root_desc = {6, root_fields};
  fy_fb_limits_t limits = {8, 100};
  CHECK(fy_fb_verify(data, size, &root_desc, "t", &limits) == NULL);
  CHECK(fy_fb_has_identifier(data, size, "TEST") && size % 8 == 0);
  fy_fb_table_t t = fy_fb_root(data, size);
  size_t len = 0;
  CHECK(same_str(fy_fb_get_string(&t, 0, &len), "hello") && len == 5);
  fy_fb_vec_t lv = fy_fb_get_vector(&t, 1, 8);
  CHECK(lv.len == 3 && fy_fb_vec_i64(&lv, 0) == 1 && fy_fb_vec_i64(&lv, 1) == -2 && fy_fb_vec_i64(&lv, 2) == INT64_MAX);
  CHECK(fy_fb_vec_i64(&lv, 3) == 0); /* out of range reads as 0 */
  fy_fb_vec_t kt = fy_fb_get_vector(&t, 2, 4);
  CHECK(kt.len == 3);
  for (size_t i = 0; i < kt.len; i++) {
    fy_fb_table_t k = fy_fb_vec_table(&kt, i);
    CHECK(fy_fb_get_i32(&k, 0, 0) == (int32_t)i);
  }
  /* The kids with a field share one vtable; kid 0 has its field left out. */
  fy_fb_table_t k1 = fy_fb_vec_table(&kt, 1), k2 = fy_fb_vec_table(&kt, 2);
  CHECK(k1.vtable == k2.vtable);
  CHECK(!fy_fb_has_field(&t, 4) && fy_fb_get_u64(&t, 4, 7) == 7);
  double d = fy_fb_get_f64(&t, 3, 1.0);
  CHECK(d == 0.0 && signbit(d));
  CHECK(fy_fb_get_u8(&t, 5, 0) == 200 && fy_fb_get_u8(&t, 9, 3) == 3);
  /* An object count limit below what the buffer holds. */
  fy_fb_limits_t tight = {8, 3};
  check_error(fy_fb_verify(data, size, &root_desc, "t", &tight), FY_RESOURCE_EXHAUSTED, "more than 3 objects", "limit");
  /* A string whose NUL is overwritten. */
  uint8_t *bad = malloc(size);
  memcpy(bad, data, size);
  const char *str = fy_fb_get_string(&t, 0, NULL);
  bad[(size_t)(str - (const char *)data) + 5] = 'x';
  check_error(fy_fb_verify(bad, size, &root_desc, "t", &limits), FY_INVALID_ARGUMENT, "t.s: string not NUL", "nul");
  free(bad);
  free(data);
}

/* A plan whose stages vector names one stage table 4000 times, each with
 * 1000 commands: 4 million tables to visit from a buffer of some 40 KB.
 * The object limit stops it. */
static void test_shared_subtrees(void) {
  fy_fb_builder_t b;
  fy_fb_builder_init(&b);
  fy_fb_table_start(&b);
  fy_fb_add_u8(&b, FYP_CMD_KIND, FY_CMD_CHUNK_BEGIN, 0);
  fy_fb_ref_t cmd = fy_fb_table_end(&b);
  fy_fb_ref_t *refs = malloc(4000 * sizeof *refs);
  for (int i = 0; i < 1000; i++) refs[i] = cmd;
  fy_fb_ref_t cmds = fy_fb_vector_refs(&b, refs, 1000);
  fy_fb_table_start(&b);
  fy_fb_add_ref(&b, FYP_SSTAGE_COMPUTE, cmds);
  fy_fb_ref_t stage = fy_fb_table_end(&b);
  for (int i = 0; i < 4000; i++) refs[i] = stage;
  fy_fb_ref_t stages = fy_fb_vector_refs(&b, refs, 4000);
  free(refs);
  fy_fb_table_start(&b);
  fy_fb_add_ref(&b, FYP_SCHEDULE_STAGES, stages);
  fy_fb_ref_t schedule = fy_fb_table_end(&b);
  fy_fb_table_start(&b);
  fy_fb_add_u32(&b, FYP_PLAN_FORMAT_VERSION, FY_PLAN_FORMAT_VERSION, 0);
  fy_fb_add_ref(&b, FYP_PLAN_SCHEDULE, schedule);
  fy_fb_ref_t root = fy_fb_table_end(&b);
  uint8_t *data;
  size_t size;
  must(fy_fb_finish(&b, root, FY_PLAN_IDENTIFIER, &data, &size), "finish");
  fy_fb_builder_free(&b);
  fy_plan_t *p = NULL;
  check_error(read_copy(data, size, &p), FY_RESOURCE_EXHAUSTED, "objects", "shared subtrees");
  free(data);
}

/* ---- corruption ------------------------------------------------------- */

/* Where field `field` of table t lies in the buffer (0 when absent). */
static size_t field_at(const fy_fb_table_t *t, int field) {
  size_t vt = t->vtable + 4 + 2 * (size_t)field;
  if (vt + 2 > t->vtable + t->vtable_size) return 0;
  size_t off = (size_t)t->buf[vt] | (size_t)t->buf[vt + 1] << 8;
  return off ? t->pos + off : 0;
}

static void put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Not inlined: GCC 12 at -O3 splits the caller and then sees the copy as a
 * zero-sized object (a false -Wstringop-overflow under -Werror). */
__attribute__((noinline)) static uint8_t *dup_bytes(const uint8_t *data, size_t size) {
  uint8_t *p = malloc(size);
  if (!p) abort();
  memcpy(p, data, size);
  return p;
}

/* Returns what reading a corrupted copy gave (destroying a plan that passed). */
static fy_status_t read_corrupt(uint8_t *bad, size_t size) {
  fy_plan_t *p = NULL;
  fy_status_t st = read_copy(bad, size, &p);
  fy_plan_destroy(p);
  free(bad);
  return st;
}

static void test_corruptions(const uint8_t *data, size_t size) {
  fy_plan_t *p = NULL;
  /* A truncation loses an object that something refers to, unless it cuts
   * only the padding after the last object: then the plan must be whole. */
  int truncations = 0;
  for (size_t n = 0; n < size; n += n < 64 || size - n < 64 ? 1 : size / 700 + 1) {
    fy_status_t st = read_copy(data, n, &p);
    if (!st) {
      uint8_t *again;
      size_t again_size;
      must(fy_plan_encode(p->schedule, &p->meta, &again, &again_size), "encode a truncated plan");
      if (again_size != size || memcmp(again, data, size)) {
        fprintf(stderr, "truncation to %zu of %zu bytes accepted and lost something\n", n, size);
        failures++;
      }
      free(again);
      fy_plan_destroy(p);
    }
    fy_status_free(st);
    truncations++;
  }
  /* Bit flips spread over the file: rejected, or (rarely) still a valid plan. */
  int flips = 2000, rejected = 0;
  for (int i = 0; i < flips; i++) {
    uint8_t *bad = dup_bytes(data, size);
    bad[(size_t)i * size / (size_t)flips] ^= (uint8_t)(1u << (i % 8));
    fy_status_t st = read_corrupt(bad, size);
    if (st) rejected++;
    fy_status_free(st);
  }
  printf("corruption: %d truncations rejected (or cut only padding); %d of %d bit flips rejected, the rest still valid plans\n",
         truncations, rejected, flips);
  CHECK(rejected > flips / 4);

  /* Named corruptions. */
  uint8_t *bad = dup_bytes(data, size);
  bad[5] = 'X';
  check_error(read_corrupt(bad, size), FY_INVALID_ARGUMENT, "file identifier", "bad identifier");

  fy_fb_table_t plan = fy_fb_root(data, size);
  bad = dup_bytes(data, size);
  put_u32(bad + field_at(&plan, FYP_PLAN_FORMAT_VERSION), FY_PLAN_FORMAT_VERSION + 1);
  check_error(read_corrupt(bad, size), FY_INCOMPATIBLE, "plan.format_version: 2", "format version");

  fy_fb_table_t graph = fy_fb_get_table(&plan, FYP_PLAN_GRAPH);
  fy_fb_vec_t values = fy_fb_get_vector(&graph, FYP_GRAPH_VALUES, 4);
  fy_fb_table_t v0 = fy_fb_vec_table(&values, 0);
  bad = dup_bytes(data, size);
  put_u64(bad + field_at(&v0, FYP_VALUE_NBYTES), fy_fb_get_u64(&v0, FYP_VALUE_NBYTES, 0) + 2);
  check_error(read_corrupt(bad, size), FY_INVALID_ARGUMENT, "plan.graph.values[0].nbytes", "nbytes");

  /* A launch of stage 1 (prefill): its node index, then an offset of its third binding. */
  fy_fb_table_t sched = fy_fb_get_table(&plan, FYP_PLAN_SCHEDULE);
  fy_fb_vec_t stages = fy_fb_get_vector(&sched, FYP_SCHEDULE_STAGES, 4);
  fy_fb_table_t stage1 = fy_fb_vec_table(&stages, 1);
  fy_fb_vec_t compute = fy_fb_get_vector(&stage1, FYP_SSTAGE_COMPUTE, 4);
  size_t launch = 0;
  while (launch < compute.len) {
    fy_fb_table_t c = fy_fb_vec_table(&compute, launch);
    if (fy_fb_get_u8(&c, FYP_CMD_KIND, 0) == FY_CMD_LAUNCH && fy_fb_get_vector(&c, FYP_CMD_ARGS, 4).len >= 3 &&
        field_at(&c, FYP_CMD_NODE))
      break;
    launch++;
  }
  CHECK(launch < compute.len);
  if (launch < compute.len) {
    fy_fb_table_t c = fy_fb_vec_table(&compute, launch);
    char want[256];
    bad = dup_bytes(data, size);
    put_u32(bad + field_at(&c, FYP_CMD_NODE), 1000000);
    snprintf(want, sizeof want, "plan.schedule.stages[1].compute[%zu].node: 1000000 out of range", launch);
    check_error(read_corrupt(bad, size), FY_OUT_OF_RANGE, want, "node index");

    fy_fb_vec_t args = fy_fb_get_vector(&c, FYP_CMD_ARGS, 4);
    bad = dup_bytes(data, size);
    put_u32(bad + args.pos + 2 * 4, 0x7ffffff0u);
    snprintf(want, sizeof want, "plan.schedule.stages[1].compute[%zu].args[2]: offset past the end of the buffer",
             launch);
    check_error(read_corrupt(bad, size), FY_INVALID_ARGUMENT, want, "binding offset");
  }

  /* The activation region grown past the budget. */
  fy_fb_vec_t regions = fy_fb_get_vector(&sched, FYP_SCHEDULE_REGIONS, 4);
  fy_fb_table_t act = fy_fb_vec_table(&regions, FY_REGION_ACTIVATIONS);
  bad = dup_bytes(data, size);
  put_u64(bad + field_at(&act, FYP_REGION_BYTES), fy_fb_get_u64(&sched, FYP_SCHEDULE_BUDGET, 0));
  check_error(read_corrupt(bad, size), FY_OUT_OF_RANGE, "plan.schedule.regions[3] (activations)", "region past budget");

  /* A vtable pointer out of the buffer, on the schedule table. */
  bad = dup_bytes(data, size);
  put_u32(bad + sched.pos, 0x80000000u);
  check_error(read_corrupt(bad, size), FY_INVALID_ARGUMENT, "plan.schedule: vtable outside the buffer", "vtable");
}

/* A plan that passes the buffer checks but not the schedule proof: the
 * compute queue waits for the previous step's copy of a group instead of
 * this step's, so a launch may read a slot before its copy lands. */
static void test_meaning_after_rebuild(const source_t *src) {
  fy_schedule_t *s = src->schedule;
  for (int i = 1; i < s->n_stages; i++) {
    fy_stage_schedule_t *st = &s->stages[i];
    for (int c = 0; c < st->n_cmds[FY_QUEUE_COMPUTE]; c++) {
      fy_cmd_t *cmd = &st->cmds[FY_QUEUE_COMPUTE][c];
      if (cmd->kind != FY_CMD_WAIT || cmd->group < 0 || cmd->step_delta != 0) continue;
      fy_cmd_t saved = *cmd;
      cmd->step_delta = -1;
      uint8_t *data;
      size_t size;
      must(fy_plan_encode(s, &src->meta, &data, &size), "encode");
      fy_plan_t *p = NULL;
      fy_status_t st = read_copy(data, size, &p);
      if (st) printf("a wait for the previous step's copy: %s\n", fy_status_message(st));
      check_error(st, FY_OK, "plan.schedule", "wait for the previous step");
      fy_plan_destroy(p);
      free(data);
      *cmd = saved;
      return;
    }
  }
  fprintf(stderr, "no streamed group to test a missing wait on\n");
  failures++;
}

/* ---- tools ------------------------------------------------------------ */

static int read_files(int argc, char **argv) {
  int bad = 0;
  for (int i = 0; i < argc; i++) {
    fy_plan_t *p = NULL;
    fy_status_t st = fy_plan_load(argv[i], &p);
    if (st) {
      printf("%s: error: %s\n", argv[i], fy_status_message(st));
      bad++;
    } else {
      printf("%s: ok\n", argv[i]);
    }
    fy_status_free(st);
    fy_plan_destroy(p);
  }
  return bad ? 1 : 0;
}

static void setup_dirs(void) {
  const char *tmp = getenv("FERRY_TMP"), *src = getenv("FERRY_SOURCE_DIR");
  snprintf(tmp_dir, sizeof tmp_dir, "%s", tmp ? tmp : "/tmp/ferry_test_plan");
  snprintf(targets_dir, sizeof targets_dir, "%s/targets", src ? src : ".");
  must(fy_mkdir_p(tmp_dir), "make FERRY_TMP");
}

static void write_model(char *dir, size_t size, bool shape_only) {
  snprintf(dir, size, "%s/%s", tmp_dir, shape_only ? "tiny-shapes" : "tiny");
  fy_synth_options_t so = {.preset = "tiny", .seed = 1, .dtype = FY_DTYPE_BF16, .shape_only = shape_only};
  must(fy_synth_write(dir, &so), "write the tiny model");
}

static int write_seeds(const char *out_dir) {
  must(fy_mkdir_p(out_dir), "make the seed folder");
  char model[4200], shapes[4200];
  write_model(model, sizeof model, false);
  write_model(shapes, sizeof shapes, true);
  struct {
    const char *name, *model;
    fy_policy_t policy;
    uint64_t budget;
  } seeds[] = {
      {"resident", model, FY_POLICY_FERRY, 0},
      {"first-k", model, FY_POLICY_FIRST_K, 300000},
      {"ngl", model, FY_POLICY_NGL, 300000},
      {"ferry-shapes", shapes, FY_POLICY_FERRY, 300000},
  };
  for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
    source_t src;
    make_source(&src, seeds[i].model, seeds[i].model == shapes, seeds[i].policy, seeds[i].budget);
    char path[4300];
    snprintf(path, sizeof path, "%s/%s.seed", out_dir, seeds[i].name); /* *.plan is git-ignored */
    must(fy_plan_write(path, src.schedule, &src.meta), path);
    free_source(&src);
  }
  return 0;
}

int main(int argc, char **argv) {
  setup_dirs();
  if (argc > 1 && !strcmp(argv[1], "--read")) return read_files(argc - 2, argv + 2);
  if (argc == 3 && !strcmp(argv[1], "--write-seeds")) return write_seeds(argv[2]);

  char model[4200], shapes[4200];
  write_model(model, sizeof model, false);
  write_model(shapes, sizeof shapes, true);
  test_flatbuf();
  test_fingerprints(model);

  struct {
    const char *name;
    bool shape_only;
    fy_policy_t policy;
    uint64_t budget;
  } cases[] = {
      {"ferry", false, FY_POLICY_FERRY, 0},
      {"first-k", false, FY_POLICY_FIRST_K, 300000},
      {"prefetch1", false, FY_POLICY_PREFETCH1, 300000},
      {"sequential", false, FY_POLICY_SEQUENTIAL, 300000},
      {"ngl", false, FY_POLICY_NGL, 300000},
      {"ferry-shapes", true, FY_POLICY_FERRY, 300000},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    source_t src;
    make_source(&src, cases[i].shape_only ? shapes : model, cases[i].shape_only, cases[i].policy, cases[i].budget);
    uint8_t *data;
    size_t size;
    test_round_trip(&src, cases[i].name, &data, &size);
    if (cases[i].policy == FY_POLICY_FIRST_K) {
      test_corruptions(data, size);
      test_meaning_after_rebuild(&src);
    }
    if (cases[i].policy == FY_POLICY_NGL) test_corruptions(data, size);
    free(data);
    free_source(&src);
  }
  test_shared_subtrees();

  /* Not a plan at all. */
  fy_plan_t *p = NULL;
  check_error(fy_plan_read("", 0, &p), FY_INVALID_ARGUMENT, "not a ferry plan", "empty");
  check_error(fy_plan_load("/nonexistent.plan", &p), FY_UNAVAILABLE, "/nonexistent.plan", "missing file");

  return check_summary();
}
