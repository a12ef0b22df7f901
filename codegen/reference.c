/* The reference interpreter (see reference.h). Requires a verified graph
 * with weights; reads values, nodes and stages, changes nothing in the graph.
 * Each node runs through fy_cpu_run_node with its values' buffers. */
#include "codegen/reference.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codegen/cpu.h"
#include "support/file.h"
#include "support/threadpool.h"

typedef struct {
  int stage;
  int tokens; /* the stage's input value */
  int logits; /* its output value */
} stage_io_t;

struct fy_reference {
  const fy_graph_t *g;
  fy_threadpool_t *pool;
  fy_mapping_t *mappings; /* one per g->files */
  void **buffers;         /* one per value: into a mapping for weights, else owned */
  stage_io_t prefill, decode;
  int64_t position;
  fy_reference_stats_t stats;
};

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static fy_status_t find_stage(const fy_graph_t *g, const char *name, stage_io_t *out) {
  out->stage = out->tokens = out->logits = -1;
  for (int s = 0; s < g->n_stages; s++)
    if (!strcmp(g->stages[s].name, name)) out->stage = s;
  if (out->stage < 0) return fy_status_make(FY_INVALID_ARGUMENT, "reference: the graph has no %s stage", name);
  for (int i = 0; i < g->n_values; i++) {
    const fy_value_t *v = &g->values[i];
    if (v->stage != out->stage) continue;
    if (v->kind == FY_VALUE_INPUT) out->tokens = i;
    if (v->kind == FY_VALUE_OUTPUT) out->logits = i;
  }
  if (out->tokens < 0 || g->values[out->tokens].dtype != FY_DTYPE_I32 || out->logits < 0 ||
      g->values[out->logits].dtype != FY_DTYPE_F32 || fy_value_elements(&g->values[out->logits]) != g->config.vocab)
    return fy_status_make(FY_INVALID_ARGUMENT, "reference: stage %s needs an i32 token input and f32 logits of %lld",
                          name, (long long)g->config.vocab);
  return NULL;
}

static fy_status_t bind_values(fy_reference_t *r) {
  const fy_graph_t *g = r->g;
  for (int i = 0; i < g->n_values; i++) {
    const fy_value_t *v = &g->values[i];
    if (v->kind == FY_VALUE_WEIGHT) {
      if (v->file < 0 || v->file >= g->n_files)
        return fy_status_make(FY_INVALID_ARGUMENT, "reference: weight %s has no file", v->name);
      const fy_mapping_t *m = &r->mappings[v->file];
      if (v->file_offset > m->size || v->nbytes > m->size - v->file_offset)
        return fy_status_make(FY_OUT_OF_RANGE, "reference: weight %s (%llu bytes at %llu) is past the end of %s "
                              "(%zu bytes)", v->name, (unsigned long long)v->nbytes,
                              (unsigned long long)v->file_offset, g->files[v->file].path, m->size);
      r->buffers[i] = (void *)(m->data + v->file_offset);
      continue;
    }
    size_t bytes = (size_t)fy_value_elements(v) * fy_dtype_size(v->dtype);
    r->buffers[i] = calloc(1, bytes ? bytes : 1);
    if (!r->buffers[i])
      return fy_status_make(FY_RESOURCE_EXHAUSTED, "reference: out of memory for %s (%zu bytes)", v->name, bytes);
  }
  return NULL;
}

static fy_status_t create(fy_reference_t *r, int n_threads) {
  const fy_graph_t *g = r->g;
  if (g->shape_only)
    return fy_status_make(FY_INVALID_ARGUMENT, "reference: the graph is shape-only (no weight files); it cannot "
                          "be run");
  FY_TRY(find_stage(g, "prefill", &r->prefill));
  FY_TRY(find_stage(g, "decode", &r->decode));
  if (g->stages[r->decode.stage].max_tokens != 1)
    return fy_status_make(FY_INVALID_ARGUMENT, "reference: the decode stage must take 1 token");
  r->mappings = calloc((size_t)g->n_files + 1, sizeof *r->mappings);
  r->buffers = calloc((size_t)g->n_values + 1, sizeof *r->buffers);
  if (!r->mappings || !r->buffers) return fy_status_make(FY_RESOURCE_EXHAUSTED, "reference: out of memory");
  for (int f = 0; f < g->n_files; f++) FY_TRY(fy_file_map(g->files[f].path, &r->mappings[f]));
  FY_TRY(bind_values(r));
  return fy_threadpool_create(n_threads, &r->pool);
}

fy_status_t fy_reference_create(const fy_graph_t *g, int n_threads, fy_reference_t **out_ref) {
  fy_reference_t *r = calloc(1, sizeof *r);
  if (!r) return fy_status_make(FY_RESOURCE_EXHAUSTED, "reference: out of memory");
  r->g = g;
  fy_status_t s = create(r, n_threads);
  if (s) {
    fy_reference_destroy(r);
    return s;
  }
  *out_ref = r;
  return NULL;
}

void fy_reference_destroy(fy_reference_t *r) {
  if (!r) return;
  const fy_graph_t *g = r->g;
  fy_threadpool_destroy(r->pool);
  for (int i = 0; r->buffers && i < g->n_values; i++)
    if (g->values[i].kind != FY_VALUE_WEIGHT) free(r->buffers[i]);
  for (int f = 0; r->mappings && f < g->n_files; f++) fy_file_unmap(&r->mappings[f]);
  free(r->buffers);
  free(r->mappings);
  free(r);
}

static fy_status_t run_stage(fy_reference_t *r, const stage_io_t *io, const int32_t *tokens, int64_t n,
                             float *out_logits) {
  const fy_graph_t *g = r->g;
  const fy_stage_t *st = &g->stages[io->stage];
  memcpy(r->buffers[io->tokens], tokens, sizeof *tokens * (size_t)n);
  for (int i = st->first_node; i < st->first_node + st->n_nodes; i++) {
    const fy_node_t *node = &g->nodes[i];
    fy_cpu_arg_t in[FY_MAX_NODE_INPUTS];
    for (int k = 0; k < node->n_inputs; k++)
      in[k] = fy_cpu_arg_for_value(&g->values[node->inputs[k]], r->buffers[node->inputs[k]]);
    fy_cpu_arg_t out = fy_cpu_arg_for_value(&g->values[node->output], r->buffers[node->output]);
    FY_TRY(fy_status_annotate(fy_cpu_run_node(node->op, &node->attrs, in, node->n_inputs, &out,
                                              fy_cpu_node_rows(g, node, n), r->position, r->pool),
                              "%s step at position %lld: node %s", st->name, (long long)r->position, node->name));
  }
  memcpy(out_logits, r->buffers[io->logits], sizeof *out_logits * (size_t)g->config.vocab);
  return NULL;
}

fy_status_t fy_reference_prefill(fy_reference_t *r, const int32_t *tokens, int64_t n, float *out_logits) {
  int64_t max = r->g->stages[r->prefill.stage].max_tokens;
  if (n < 1 || n > max || n > r->g->context)
    return fy_status_make(FY_OUT_OF_RANGE, "reference: prefill of %lld tokens; the graph takes 1 to %lld "
                          "(context %lld)", (long long)n, (long long)max, (long long)r->g->context);
  double t0 = now_ms();
  r->position = 0;
  r->stats = (fy_reference_stats_t){0};
  FY_TRY(run_stage(r, &r->prefill, tokens, n, out_logits));
  r->position = n;
  r->stats.prefill_ms = now_ms() - t0;
  r->stats.prefill_tokens = n;
  return NULL;
}

fy_status_t fy_reference_decode(fy_reference_t *r, int32_t token, float *out_logits) {
  if (r->position >= r->g->context)
    return fy_status_make(FY_OUT_OF_RANGE, "reference: the KV cache is full (%lld tokens)",
                          (long long)r->g->context);
  double t0 = now_ms();
  FY_TRY(run_stage(r, &r->decode, &token, 1, out_logits));
  r->position++;
  r->stats.decode_ms += now_ms() - t0;
  r->stats.decode_steps++;
  return NULL;
}

int64_t fy_reference_position(const fy_reference_t *r) { return r->position; }

const fy_reference_stats_t *fy_reference_stats(const fy_reference_t *r) { return &r->stats; }
