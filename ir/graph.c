/* Graph construction and queries (see ir.h). */
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"
#include "support/grow.h"

#define GROW(g, field, n_field, cap_field) FY_GROW((g)->field, (g)->n_field, (g)->cap_field, "graph")

fy_status_t fy_graph_create(fy_graph_t **out_graph) {
  fy_graph_t *g = calloc(1, sizeof *g);
  if (!g) return fy_status_make(FY_RESOURCE_EXHAUSTED, "graph: out of memory");
  *out_graph = g;
  return NULL;
}

void fy_graph_destroy(fy_graph_t *g) {
  if (!g) return;
  free(g->values);
  free(g->nodes);
  free(g->layers);
  free(g->stages);
  free(g->files);
  fy_arena_destroy(&g->arena);
  free(g);
}

int64_t fy_value_elements(const fy_value_t *v) {
  int64_t n = 1;
  for (int i = 0; i < v->rank; i++) n *= v->shape[i];
  return n;
}

uint64_t fy_value_row_bytes(const fy_value_t *v) {
  uint64_t n = fy_dtype_size(v->dtype);
  for (int i = 1; i < v->rank; i++) n *= (uint64_t)v->shape[i];
  return n;
}

fy_status_t fy_graph_add_value(fy_graph_t *g, const fy_value_t *value, int *out_id) {
  if (value->rank < 0 || value->rank > FY_MAX_RANK)
    return fy_status_make(FY_INVALID_ARGUMENT, "value %s: rank %d", value->name, value->rank);
  uint64_t elements = 1;
  for (int i = 0; i < value->rank; i++) {
    if (value->shape[i] <= 0 || (uint64_t)value->shape[i] > (UINT64_MAX >> 8) / elements)
      return fy_status_make(FY_INVALID_ARGUMENT, "value %s: bad dimension %d: %lld", value->name, i,
                            (long long)value->shape[i]);
    elements *= (uint64_t)value->shape[i];
  }
  FY_TRY(GROW(g, values, n_values, cap_values));
  fy_value_t v = *value;
  v.name = fy_arena_strdup(&g->arena, value->name);
  if (!v.name) return fy_status_make(FY_RESOURCE_EXHAUSTED, "graph: out of memory");
  if (v.nbytes == 0) v.nbytes = elements * fy_dtype_size(v.dtype);
  g->values[g->n_values] = v;
  if (out_id) *out_id = g->n_values;
  g->n_values++;
  return NULL;
}

fy_status_t fy_graph_add_node(fy_graph_t *g, const fy_node_t *node, int *out_id) {
  if (g->n_stages == 0) return fy_status_make(FY_INTERNAL, "node %s: added outside a stage", node->name);
  FY_TRY(GROW(g, nodes, n_nodes, cap_nodes));
  fy_node_t n = *node;
  n.name = fy_arena_strdup(&g->arena, node->name ? node->name : fy_op_name(node->op));
  if (!n.name) return fy_status_make(FY_RESOURCE_EXHAUSTED, "graph: out of memory");
  n.stage = g->n_stages - 1;
  g->nodes[g->n_nodes] = n;
  g->stages[n.stage].n_nodes++;
  if (out_id) *out_id = g->n_nodes;
  g->n_nodes++;
  return NULL;
}

fy_status_t fy_graph_add_layer(fy_graph_t *g, const char *name, int *out_id) {
  FY_TRY(GROW(g, layers, n_layers, cap_layers));
  g->layers[g->n_layers].name = fy_arena_strdup(&g->arena, name);
  if (!g->layers[g->n_layers].name) return fy_status_make(FY_RESOURCE_EXHAUSTED, "graph: out of memory");
  if (out_id) *out_id = g->n_layers;
  g->n_layers++;
  return NULL;
}

fy_status_t fy_graph_add_file(fy_graph_t *g, const char *path, uint64_t size, int *out_id) {
  FY_TRY(GROW(g, files, n_files, cap_files));
  g->files[g->n_files].path = fy_arena_strdup(&g->arena, path);
  g->files[g->n_files].size = size;
  if (!g->files[g->n_files].path) return fy_status_make(FY_RESOURCE_EXHAUSTED, "graph: out of memory");
  if (out_id) *out_id = g->n_files;
  g->n_files++;
  return NULL;
}

fy_status_t fy_graph_begin_stage(fy_graph_t *g, const char *name, int64_t max_tokens, int64_t repeat,
                                 int *out_id) {
  if (max_tokens <= 0 || repeat < 0)
    return fy_status_make(FY_INVALID_ARGUMENT, "stage %s: max_tokens %lld, repeat %lld", name,
                          (long long)max_tokens, (long long)repeat);
  FY_TRY(GROW(g, stages, n_stages, cap_stages));
  fy_stage_t *s = &g->stages[g->n_stages];
  s->name = fy_arena_strdup(&g->arena, name);
  if (!s->name) return fy_status_make(FY_RESOURCE_EXHAUSTED, "graph: out of memory");
  s->first_node = g->n_nodes;
  s->n_nodes = 0;
  s->max_tokens = max_tokens;
  s->repeat = repeat;
  if (out_id) *out_id = g->n_stages;
  g->n_stages++;
  return NULL;
}

int fy_graph_find_value(const fy_graph_t *g, const char *name) {
  for (int i = 0; i < g->n_values; i++)
    if (!strcmp(g->values[i].name, name)) return i;
  return -1;
}

uint64_t fy_graph_weight_bytes(const fy_graph_t *g, int layer) {
  uint64_t sum = 0;
  for (int i = 0; i < g->n_values; i++) {
    const fy_value_t *v = &g->values[i];
    if (v->kind == FY_VALUE_WEIGHT && (layer == -2 || v->layer == layer)) sum += v->nbytes;
  }
  return sum;
}

uint64_t fy_graph_param_count(const fy_graph_t *g, int layer) {
  uint64_t sum = 0;
  for (int i = 0; i < g->n_values; i++) {
    const fy_value_t *v = &g->values[i];
    if (v->kind == FY_VALUE_WEIGHT && (layer == -2 || v->layer == layer)) sum += (uint64_t)fy_value_elements(v);
  }
  return sum;
}
