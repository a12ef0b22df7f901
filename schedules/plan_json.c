/* A plan as JSON (see plan_json.h). Built as a cJSON tree; every add goes
 * through one helper that remembers an allocation failure, reported once at
 * the end. */
#include "schedules/plan_json.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "schedules/summary.h"

typedef struct json {
  bool failed;
} json_t;

static cJSON *add(json_t *j, cJSON *parent, const char *key, cJSON *item) {
  if (!item || !parent) {
    cJSON_Delete(item);
    j->failed = true;
    return NULL;
  }
  if (cJSON_IsArray(parent) ? !cJSON_AddItemToArray(parent, item) : !cJSON_AddItemToObject(parent, key, item)) {
    cJSON_Delete(item);
    j->failed = true;
    return NULL;
  }
  return item;
}

static void num(json_t *j, cJSON *o, const char *key, double v) { add(j, o, key, cJSON_CreateNumber(v)); }
static void str(json_t *j, cJSON *o, const char *key, const char *v) {
  add(j, o, key, v ? cJSON_CreateString(v) : cJSON_CreateNull());
}
static void flag(json_t *j, cJSON *o, const char *key, bool v) { add(j, o, key, cJSON_CreateBool(v)); }
static cJSON *object(json_t *j, cJSON *o, const char *key) { return add(j, o, key, cJSON_CreateObject()); }
static cJSON *array(json_t *j, cJSON *o, const char *key) { return add(j, o, key, cJSON_CreateArray()); }

static void fingerprint(json_t *j, cJSON *o, const char *key, const fy_file_fingerprint_t *f) {
  if (!f->size && !f->hashed_bytes && !f->digest) {
    add(j, o, key, cJSON_CreateNull());
    return;
  }
  cJSON *fp = object(j, o, key);
  char hex[17];
  snprintf(hex, sizeof hex, "%016" PRIx64, f->digest);
  num(j, fp, "size", (double)f->size);
  num(j, fp, "hashed_bytes", (double)f->hashed_bytes);
  str(j, fp, "xxh3", hex);
}

static void model(json_t *j, cJSON *root, const fy_graph_t *g) {
  cJSON *m = object(j, root, "model");
  const fy_model_config_t *c = &g->config;
  str(j, m, "architecture", c->architecture);
  num(j, m, "n_layers", g->n_layers);
  num(j, m, "weight_bytes", (double)fy_graph_weight_bytes(g, -2));
  num(j, m, "parameters", (double)fy_graph_param_count(g, -2));
  str(j, m, "dtype", fy_dtype_name(c->dtype));
  flag(j, m, "shape_only", g->shape_only);
  num(j, m, "context", (double)g->context);
  num(j, m, "hidden", (double)c->hidden);
  num(j, m, "ffn", (double)c->ffn);
  num(j, m, "n_heads", (double)c->n_heads);
  num(j, m, "n_kv_heads", (double)c->n_kv_heads);
  num(j, m, "head_dim", (double)c->head_dim);
  num(j, m, "vocab", (double)c->vocab);
}

static void target(json_t *j, cJSON *root, const fy_target_t *t) {
  cJSON *o = object(j, root, "target");
  str(j, o, "name", t->name);
  str(j, o, "description", t->description);
  str(j, o, "code_target", t->code_target);
  num(j, o, "vram_bytes", (double)t->vram_bytes);
  num(j, o, "reserve_bytes", (double)t->reserve_bytes);
  num(j, o, "host_ram_bytes", (double)t->host_ram_bytes);
  num(j, o, "h2d_pinned_gbps", t->h2d_pinned_gbps);
  num(j, o, "h2d_pageable_gbps", t->h2d_pageable_gbps);
  num(j, o, "d2h_gbps", t->d2h_gbps);
  num(j, o, "disk_read_gbps", t->disk_read_gbps);
  num(j, o, "fp16_tflops", t->fp16_tflops);
  num(j, o, "bf16_tflops", t->bf16_tflops);
  num(j, o, "fp32_tflops", t->fp32_tflops);
  num(j, o, "mem_bw_gbps", t->mem_bw_gbps);
  num(j, o, "launch_overhead_us", t->launch_overhead_us);
  num(j, o, "cpu_gflops", t->cpu_gflops);
  num(j, o, "host_mem_bw_gbps", t->host_mem_bw_gbps);
}

static void layer(json_t *j, cJSON *o, const fy_schedule_t *s, int l) {
  uint64_t res, streamed;
  fy_schedule_layer_bytes(s, l, &res, &streamed);
  num(j, o, "resident_bytes", (double)res);
  num(j, o, "streamed_bytes", (double)streamed);
  cJSON *stages = object(j, o, "stages");
  for (int i = 0; i < s->n_stages; i++) {
    if (s->stages[i].graph_stage < 0) continue;
    double seconds;
    const char *where = fy_schedule_layer_where(s, i, l, &seconds);
    cJSON *st = object(j, stages, s->stages[i].name);
    str(j, st, "where", where);
    num(j, st, "compute_seconds", seconds);
  }
}

static void layers(json_t *j, cJSON *root, const fy_schedule_t *s) {
  const fy_graph_t *g = s->graph;
  layer(j, object(j, root, "global_weights"), s, -1);
  cJSON *v = array(j, root, "layers");
  for (int l = 0; l < g->n_layers; l++) {
    cJSON *o = add(j, v, NULL, cJSON_CreateObject());
    num(j, o, "index", l);
    str(j, o, "name", g->layers[l].name);
    layer(j, o, s, l);
  }
}

static void stages(json_t *j, cJSON *root, const fy_schedule_t *s, const fy_sim_result_t *sim) {
  cJSON *v = array(j, root, "stages");
  double request = 0, load = 0;
  for (int i = 0; i < s->n_stages; i++) {
    const fy_stage_schedule_t *st = &s->stages[i];
    cJSON *o = add(j, v, NULL, cJSON_CreateObject());
    str(j, o, "name", st->name);
    num(j, o, "repeat", (double)st->repeat);
    num(j, o, "max_tokens", (double)st->max_tokens);
    cJSON *cmds = object(j, o, "commands");
    uint64_t copy_bytes = 0;
    for (int q = 0; q < FY_QUEUE_COUNT; q++) {
      num(j, cmds, fy_queue_name((fy_queue_t)q), st->n_cmds[q]);
      for (int k = 0; k < st->n_cmds[q]; k++)
        if (st->cmds[q][k].kind == FY_CMD_COPY) copy_bytes += st->cmds[q][k].bytes;
    }
    num(j, o, "copy_bytes_per_step", (double)copy_bytes);
    cJSON *rec = object(j, o, "recorded");
    num(j, rec, "first_step_seconds", st->predicted_first_step_seconds);
    num(j, rec, "step_seconds", st->predicted_step_seconds);
    num(j, rec, "total_seconds", st->predicted_total_seconds);
    *(st->graph_stage < 0 ? &load : &request) += st->predicted_total_seconds;
    if (!sim || i >= sim->n_stages) continue;
    const fy_sim_stage_t *r = &sim->stages[i];
    cJSON *simulated = object(j, o, "simulated");
    num(j, simulated, "first_step_seconds", r->first_step_seconds);
    num(j, simulated, "step_seconds", r->step_seconds);
    num(j, simulated, "total_seconds", r->total_seconds);
    num(j, simulated, "copy_busy_seconds", r->copy_busy_seconds);
    num(j, simulated, "compute_busy_seconds", r->compute_busy_seconds);
    num(j, simulated, "compute_wait_seconds", r->compute_wait_seconds);
    num(j, simulated, "copied_bytes", (double)r->copied_bytes);
  }
  cJSON *p = object(j, root, "predicted");
  str(j, p, "source", sim ? "simulated" : "recorded");
  num(j, p, "request_seconds", sim ? sim->request_seconds : request);
  num(j, p, "load_seconds", sim ? sim->load_seconds : load);
  if (!sim) return;
  num(j, p, "bus_busy_fraction", sim->bus_busy_fraction);
  num(j, p, "compute_wait_seconds", sim->compute_wait_seconds);
}

static void meta(json_t *j, cJSON *root, const fy_plan_t *p) {
  const fy_plan_meta_t *m = &p->meta;
  cJSON *o = object(j, root, "options");
  str(j, o, "policy", fy_policy_name(m->options.policy));
  num(j, o, "prefetch", m->options.prefetch);
  num(j, o, "budget", (double)m->options.budget);
  cJSON *extra = object(j, o, "extra");
  for (int i = 0; i < m->n_extra; i++) str(j, extra, m->extra[i].key, m->extra[i].value);

  cJSON *w = object(j, root, "weights");
  cJSON *files = array(j, w, "files");
  for (int f = 0; f < p->graph->n_files; f++) {
    cJSON *file = add(j, files, NULL, cJSON_CreateObject());
    str(j, file, "path", p->graph->files[f].path);
    num(j, file, "size", (double)p->graph->files[f].size);
    static const fy_file_fingerprint_t none = {0};
    fingerprint(j, file, "fingerprint", m->file_fingerprints ? &m->file_fingerprints[f] : &none);
  }
  fingerprint(j, w, "config_fingerprint", &m->config_fingerprint);

  cJSON *kernels = array(j, root, "kernels");
  for (int k = 0; k < m->n_kernels; k++) {
    const fy_plan_kernel_t *kn = &m->kernels[k];
    cJSON *ko = add(j, kernels, NULL, cJSON_CreateObject());
    str(j, ko, "format", kn->format);
    str(j, ko, "architecture", kn->architecture);
    num(j, ko, "code_bytes", (double)kn->code_size);
    cJSON *entries = array(j, ko, "entries");
    for (int e = 0; e < kn->n_entries; e++) str(j, entries, NULL, kn->entries[e]);
  }
}

fy_status_t fy_plan_to_json(const fy_plan_t *p, const fy_sim_result_t *sim, char **out_text) {
  const fy_schedule_t *s = p->schedule;
  json_t j = {0};
  cJSON *root = cJSON_CreateObject();
  num(&j, root, "format_version", p->format_version);
  str(&j, root, "compiler_version", p->compiler_version);
  model(&j, root, p->graph);
  target(&j, root, &s->target);
  str(&j, root, "policy", fy_policy_name(s->policy));
  num(&j, root, "prefetch", s->prefetch);
  num(&j, root, "n_slots", s->n_slots);
  num(&j, root, "slot_bytes", (double)s->slot_bytes);
  num(&j, root, "budget", (double)s->budget);
  num(&j, root, "device_bytes", (double)s->device_bytes);
  num(&j, root, "activation_lower_bound", (double)s->activation_lower_bound);
  cJSON *regions = array(&j, root, "regions");
  for (int r = 0; r < FY_REGION_COUNT; r++) {
    cJSON *o = add(&j, regions, NULL, cJSON_CreateObject());
    str(&j, o, "name", fy_region_name((fy_region_kind_t)r));
    num(&j, o, "offset", (double)s->regions[r].offset);
    num(&j, o, "bytes", (double)s->regions[r].bytes);
    if (sim) num(&j, o, "peak_bytes", (double)sim->peak_bytes[r]);
  }
  layers(&j, root, s);
  stages(&j, root, s, sim);
  meta(&j, root, p);
  char *text = j.failed || !root ? NULL : cJSON_Print(root);
  cJSON_Delete(root);
  if (!text) return fy_status_make(FY_RESOURCE_EXHAUSTED, "plan as JSON: out of memory");
  *out_text = text;
  return NULL;
}
