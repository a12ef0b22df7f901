/* Pass: memplan (liveness and the activation memory plan).
 * Requires: a verified graph.
 * Produces: value_offset for every activation, input and output (offsets in
 * one arena shared by the stages, which never run at once), the arena size,
 * and the max-live lower bound it is judged against. Values live from the
 * node that writes them (inputs: from the stage's start) to their last
 * reader (outputs: to the stage's end). Placement is greedy by size,
 * largest first, at the lowest offset free for the whole lifetime. */
#include <stdlib.h>

#include "passes/compile.h"

#define ARENA_ALIGN 256u

typedef struct {
  int value;
  int begin, end; /* node positions within the stage, inclusive */
  uint64_t bytes, offset;
} live_t;

static int by_size_desc(const void *a, const void *b) {
  const live_t *x = a, *y = b;
  if (x->bytes != y->bytes) return x->bytes < y->bytes ? 1 : -1;
  return x->value - y->value;
}

static int by_offset(const void *a, const void *b) {
  const live_t *const *x = a, *const *y = b;
  return (*x)->offset < (*y)->offset ? -1 : (*x)->offset > (*y)->offset;
}

static fy_status_t plan_stage(fy_compile_t *c, int s, uint64_t *out_size, uint64_t *out_lower_bound) {
  const fy_graph_t *g = c->graph;
  const fy_stage_t *st = &g->stages[s];
  int n = 0;
  live_t *lv = calloc((size_t)g->n_values + 1, sizeof *lv);
  int *index = malloc(sizeof(int) * ((size_t)g->n_values + 1));
  const live_t **placed = calloc((size_t)g->n_values + 1, sizeof *placed);
  if (!lv || !index || !placed) {
    free(lv), free(index), free(placed);
    return fy_status_make(FY_RESOURCE_EXHAUSTED, "memplan: out of memory");
  }
  for (int i = 0; i < g->n_values; i++) {
    const fy_value_t *v = &g->values[i];
    index[i] = -1;
    bool arena = v->kind == FY_VALUE_ACTIVATION || v->kind == FY_VALUE_INPUT || v->kind == FY_VALUE_OUTPUT;
    if (!arena || v->stage != s) continue;
    index[i] = n;
    lv[n++] = (live_t){.value = i, .begin = v->kind == FY_VALUE_INPUT ? 0 : st->n_nodes,
                       .end = v->kind == FY_VALUE_OUTPUT ? st->n_nodes - 1 : -1,
                       .bytes = (v->nbytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN};
  }
  for (int p = 0; p < st->n_nodes; p++) {
    const fy_node_t *node = &g->nodes[st->first_node + p];
    int o = index[node->output];
    if (o >= 0 && lv[o].begin > p) lv[o].begin = p;
    for (int k = 0; k < node->n_inputs; k++) {
      int u = index[node->inputs[k]];
      if (u >= 0 && lv[u].end < p) lv[u].end = p;
    }
  }
  /* A value nobody reads still occupies its bytes while it is written. */
  for (int i = 0; i < n; i++)
    if (lv[i].end < lv[i].begin) lv[i].end = lv[i].begin;

  uint64_t lower = 0;
  for (int p = 0; p < st->n_nodes; p++) {
    uint64_t live = 0;
    for (int i = 0; i < n; i++)
      if (lv[i].begin <= p && p <= lv[i].end) live += lv[i].bytes;
    if (live > lower) lower = live;
  }

  qsort(lv, (size_t)n, sizeof *lv, by_size_desc);
  uint64_t size = 0;
  int n_placed = 0;
  for (int i = 0; i < n; i++) {
    /* Conflicting placed values sorted by offset; take the first gap that fits. */
    int m = 0;
    for (int j = 0; j < n_placed; j++)
      if (placed[j]->begin <= lv[i].end && lv[i].begin <= placed[j]->end) placed[n_placed + m++] = placed[j];
    qsort(placed + n_placed, (size_t)m, sizeof *placed, by_offset);
    uint64_t offset = 0;
    for (int j = 0; j < m; j++) {
      const live_t *q = placed[n_placed + j];
      if (q->offset >= offset + lv[i].bytes) break;
      if (q->offset + q->bytes > offset) offset = q->offset + q->bytes;
    }
    lv[i].offset = offset;
    placed[n_placed++] = &lv[i];
    c->value_offset[lv[i].value] = offset;
    if (offset + lv[i].bytes > size) size = offset + lv[i].bytes;
  }
  free(lv), free(index), free(placed);
  *out_size = size;
  *out_lower_bound = lower;
  return NULL;
}

fy_status_t fy_pass_memplan(fy_compile_t *c) {
  const fy_graph_t *g = c->graph;
  c->value_offset = malloc(sizeof(uint64_t) * ((size_t)g->n_values + 1));
  if (!c->value_offset) return fy_status_make(FY_RESOURCE_EXHAUSTED, "memplan: out of memory");
  for (int i = 0; i < g->n_values; i++) c->value_offset[i] = UINT64_MAX;
  for (int s = 0; s < g->n_stages; s++) {
    uint64_t size = 0, lower = 0;
    FY_TRY(plan_stage(c, s, &size, &lower));
    if (size > c->activation_bytes) c->activation_bytes = size;
    if (lower > c->activation_lower_bound) c->activation_lower_bound = lower;
  }
  return NULL;
}
