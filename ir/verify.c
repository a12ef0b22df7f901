/* The IR verifier: a graph that passes it is safe to run through every pass
 * and executor. Runs between passes in tests and with --verify-each. */
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

#define FAIL(...) return fy_status_make(FY_INVALID_ARGUMENT, __VA_ARGS__)

static const int op_arity[FY_OP_COUNT][2] = {
    /* min, max inputs */
    [FY_OP_EMBED] = {2, 2},    [FY_OP_RMSNORM] = {2, 2}, [FY_OP_MATMUL] = {2, 3},
    [FY_OP_ROPE] = {1, 1},     [FY_OP_ATTENTION] = {5, 5}, [FY_OP_SILU_MUL] = {2, 2},
    [FY_OP_ADD] = {2, 2},      [FY_OP_LAST_ROW] = {1, 1},
};

static bool is_matrix(const fy_value_t *v) { return v->rank == 2; }

static fy_status_t check_shapes(const fy_graph_t *g, const fy_node_t *n) {
  const fy_value_t *in[FY_MAX_NODE_INPUTS] = {0};
  for (int i = 0; i < n->n_inputs; i++) in[i] = &g->values[n->inputs[i]];
  const fy_value_t *out = &g->values[n->output];
  char a[64], b[64];
  switch (n->op) {
    case FY_OP_EMBED:
      if (in[0]->dtype != FY_DTYPE_I32 || in[0]->rank != 1) FAIL("ids %s must be i32 [T]", in[0]->name);
      if (!is_matrix(in[1]) || !is_matrix(out) || out->shape[0] != in[0]->shape[0] ||
          out->shape[1] != in[1]->shape[1])
        FAIL("table %s %s does not give output %s", in[1]->name, fy_shape_str(in[1], a, 64),
             fy_shape_str(out, b, 64));
      break;
    case FY_OP_RMSNORM:
      if (!is_matrix(in[0]) || in[1]->rank != 1 || in[1]->shape[0] != in[0]->shape[1])
        FAIL("weight %s %s does not match input %s", in[1]->name, fy_shape_str(in[1], a, 64),
             fy_shape_str(in[0], b, 64));
      if (!is_matrix(out) || out->shape[0] != in[0]->shape[0] || out->shape[1] != in[0]->shape[1])
        FAIL("output %s has the wrong shape", out->name);
      break;
    case FY_OP_MATMUL:
      if (!is_matrix(in[0]) || !is_matrix(in[1]) || in[1]->shape[1] != in[0]->shape[1])
        FAIL("weight %s %s does not match input %s %s", in[1]->name, fy_shape_str(in[1], a, 64),
             in[0]->name, fy_shape_str(in[0], b, 64));
      if (n->n_inputs == 3 && (in[2]->rank != 1 || in[2]->shape[0] != in[1]->shape[0]))
        FAIL("bias %s %s does not match weight rows %lld", in[2]->name, fy_shape_str(in[2], a, 64),
             (long long)in[1]->shape[0]);
      if (!is_matrix(out) || out->shape[0] != in[0]->shape[0] || out->shape[1] != in[1]->shape[0])
        FAIL("output %s %s, expected [%lld, %lld]", out->name, fy_shape_str(out, a, 64),
             (long long)in[0]->shape[0], (long long)in[1]->shape[0]);
      break;
    case FY_OP_ROPE:
      if (!is_matrix(in[0]) || n->attrs.n_heads <= 0 || n->attrs.head_dim <= 0 || n->attrs.head_dim % 2 ||
          (int64_t)n->attrs.n_heads * n->attrs.head_dim != in[0]->shape[1])
        FAIL("input %s %s is not %d heads of %d", in[0]->name, fy_shape_str(in[0], a, 64), n->attrs.n_heads,
             n->attrs.head_dim);
      if (!is_matrix(out) || out->shape[0] != in[0]->shape[0] || out->shape[1] != in[0]->shape[1])
        FAIL("output %s has the wrong shape", out->name);
      if (!(n->attrs.rope.theta > 0)) FAIL("rope theta must be positive");
      break;
    case FY_OP_ATTENTION: {
      int64_t d = n->attrs.head_dim, h = n->attrs.n_heads, kv = n->attrs.n_kv_heads;
      if (d <= 0 || h <= 0 || kv <= 0 || h % kv) FAIL("%lld heads over %lld kv heads", (long long)h, (long long)kv);
      for (int i = 0; i < 5; i++)
        if (!is_matrix(in[i])) FAIL("input %s must be a matrix", in[i]->name);
      if (in[0]->shape[1] != h * d) FAIL("query %s is not %lld heads of %lld", in[0]->name, (long long)h, (long long)d);
      for (int i = 1; i < 5; i++)
        if (in[i]->shape[1] != kv * d) FAIL("%s is not %lld kv heads of %lld", in[i]->name, (long long)kv, (long long)d);
      if (in[1]->shape[0] != in[0]->shape[0] || in[2]->shape[0] != in[0]->shape[0])
        FAIL("key/value rows differ from query rows");
      if (in[3]->kind != FY_VALUE_STATE || in[4]->kind != FY_VALUE_STATE || in[3]->dtype != FY_DTYPE_F32 ||
          in[4]->dtype != FY_DTYPE_F32 || in[4]->shape[0] != in[3]->shape[0])
        FAIL("caches %s, %s must be f32 state of equal rows", in[3]->name, in[4]->name);
      if (!is_matrix(out) || out->shape[0] != in[0]->shape[0] || out->shape[1] != h * d)
        FAIL("output %s has the wrong shape", out->name);
      break;
    }
    case FY_OP_SILU_MUL:
    case FY_OP_ADD:
      if (!is_matrix(in[0]) || !is_matrix(in[1]) || !is_matrix(out) || in[0]->shape[0] != in[1]->shape[0] ||
          in[0]->shape[1] != in[1]->shape[1] || out->shape[0] != in[0]->shape[0] || out->shape[1] != in[0]->shape[1])
        FAIL("inputs %s %s and %s %s and output must have one shape", in[0]->name, fy_shape_str(in[0], a, 64),
             in[1]->name, fy_shape_str(in[1], b, 64));
      break;
    case FY_OP_LAST_ROW:
      if (!is_matrix(in[0]) || !is_matrix(out) || out->shape[0] != 1 || out->shape[1] != in[0]->shape[1])
        FAIL("output %s must be one row of %s", out->name, in[0]->name);
      break;
    case FY_OP_COUNT: break;
  }
  for (int i = 0; i < n->n_inputs; i++) {
    bool weight_or_state = in[i]->kind == FY_VALUE_WEIGHT || in[i]->kind == FY_VALUE_STATE;
    bool ids = n->op == FY_OP_EMBED && i == 0;
    if (!weight_or_state && !ids && in[i]->dtype != FY_DTYPE_F32)
      FAIL("activation %s must be f32", in[i]->name);
  }
  if (out->dtype != FY_DTYPE_F32) FAIL("output %s must be f32", out->name);
  return NULL;
}

typedef struct {
  uint64_t offset, end;
  int value;
} extent_t;

static int cmp_extent(const void *a, const void *b) {
  const extent_t *x = a, *y = b;
  return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static fy_status_t verify_weights(const fy_graph_t *g) {
  extent_t *ext = malloc(sizeof *ext * (size_t)(g->n_values ? g->n_values : 1));
  if (!ext) return fy_status_make(FY_RESOURCE_EXHAUSTED, "verify: out of memory");
  fy_status_t s = NULL;
  for (int f = -1; f < g->n_files && !s; f++) {
    int n = 0;
    for (int i = 0; i < g->n_values && !s; i++) {
      const fy_value_t *v = &g->values[i];
      if (v->kind != FY_VALUE_WEIGHT || v->file != f) continue;
      if (f < 0) {
        if (!g->shape_only) s = fy_status_make(FY_INVALID_ARGUMENT, "weight %s has no file", v->name);
        continue;
      }
      if (g->shape_only) {
        s = fy_status_make(FY_INVALID_ARGUMENT, "weight %s has a file in a shape-only graph", v->name);
        continue;
      }
      uint64_t size = g->files[f].size;
      if (v->file_offset > size || v->nbytes > size - v->file_offset)
        s = fy_status_make(FY_OUT_OF_RANGE, "weight %s: bytes [%llu, +%llu) past the end of %s (%llu bytes)",
                           v->name, (unsigned long long)v->file_offset, (unsigned long long)v->nbytes,
                           g->files[f].path, (unsigned long long)size);
      ext[n++] = (extent_t){v->file_offset, v->file_offset + v->nbytes, i};
    }
    qsort(ext, (size_t)n, sizeof *ext, cmp_extent);
    for (int i = 1; i < n && !s; i++)
      if (ext[i].offset < ext[i - 1].end)
        s = fy_status_make(FY_INVALID_ARGUMENT, "weights %s and %s overlap in %s", g->values[ext[i - 1].value].name,
                           g->values[ext[i].value].name, g->files[f].path);
  }
  free(ext);
  return s;
}

fy_status_t fy_graph_verify(const fy_graph_t *g) {
  for (int i = 0; i < g->n_values; i++) {
    const fy_value_t *v = &g->values[i];
    if (v->layer < -1 || v->layer >= g->n_layers) FAIL("value %s: layer %d out of range", v->name, v->layer);
    if (v->kind == FY_VALUE_WEIGHT && (v->file < -1 || v->file >= g->n_files))
      FAIL("weight %s: file %d out of range", v->name, v->file);
    if (v->nbytes != (uint64_t)fy_value_elements(v) * fy_dtype_size(v->dtype))
      FAIL("value %s: %llu bytes disagree with its shape", v->name, (unsigned long long)v->nbytes);
    if (v->per_token) {
      if (v->stage < 0 || v->stage >= g->n_stages || v->rank < 1)
        FAIL("value %s: per-token value without a stage", v->name);
      if (v->shape[0] != g->stages[v->stage].max_tokens)
        FAIL("value %s: %lld rows, stage %s has %lld tokens", v->name, (long long)v->shape[0],
             g->stages[v->stage].name, (long long)g->stages[v->stage].max_tokens);
    }
  }
  FY_TRY(verify_weights(g));

  int expected_first = 0;
  for (int s = 0; s < g->n_stages; s++) {
    if (g->stages[s].first_node != expected_first || g->stages[s].n_nodes < 0)
      FAIL("stage %s: nodes are not contiguous", g->stages[s].name);
    expected_first += g->stages[s].n_nodes;
  }
  if (expected_first != g->n_nodes) FAIL("%d nodes belong to no stage", g->n_nodes - expected_first);

  /* Def before use: an activation or output is written by exactly one node,
   * before any node of its stage reads it. */
  int *defined_by = malloc(sizeof(int) * (size_t)(g->n_values ? g->n_values : 1));
  if (!defined_by) return fy_status_make(FY_RESOURCE_EXHAUSTED, "verify: out of memory");
  for (int i = 0; i < g->n_values; i++) defined_by[i] = -1;
  fy_status_t st = NULL;
  for (int ni = 0; ni < g->n_nodes && !st; ni++) {
    const fy_node_t *n = &g->nodes[ni];
    const fy_stage_t *stage = n->stage >= 0 && n->stage < g->n_stages ? &g->stages[n->stage] : NULL;
    if (!stage || ni < stage->first_node || ni >= stage->first_node + stage->n_nodes) {
      st = fy_status_make(FY_INVALID_ARGUMENT, "node %d (%s): stage %d out of order", ni, n->name, n->stage);
      break;
    }
    if (n->op < 0 || n->op >= FY_OP_COUNT) {
      st = fy_status_make(FY_INVALID_ARGUMENT, "node %d (%s): unknown op %d", ni, n->name, (int)n->op);
      break;
    }
    if (n->n_inputs < op_arity[n->op][0] || n->n_inputs > op_arity[n->op][1]) {
      st = fy_status_make(FY_INVALID_ARGUMENT, "node %d (%s): %s takes %d..%d inputs, has %d", ni, n->name,
                          fy_op_name(n->op), op_arity[n->op][0], op_arity[n->op][1], n->n_inputs);
      break;
    }
    if (n->layer < -1 || n->layer >= g->n_layers) {
      st = fy_status_make(FY_INVALID_ARGUMENT, "node %d (%s): layer %d out of range", ni, n->name, n->layer);
      break;
    }
    for (int i = 0; i < n->n_inputs && !st; i++) {
      int id = n->inputs[i];
      if (id < 0 || id >= g->n_values) {
        st = fy_status_make(FY_INVALID_ARGUMENT, "node %d (%s): input %d is a dangling value %d", ni, n->name, i, id);
        break;
      }
      const fy_value_t *v = &g->values[id];
      bool needs_def = v->kind == FY_VALUE_ACTIVATION || v->kind == FY_VALUE_OUTPUT;
      if (needs_def && (defined_by[id] < 0 || g->nodes[defined_by[id]].stage != n->stage))
        st = fy_status_make(FY_INVALID_ARGUMENT, "node %d (%s): reads %s before any node of stage %s writes it", ni,
                            n->name, v->name, stage->name);
      if (v->kind == FY_VALUE_INPUT && v->stage != n->stage)
        st = fy_status_make(FY_INVALID_ARGUMENT, "node %d (%s): reads input %s of another stage", ni, n->name, v->name);
    }
    if (st) break;
    if (n->output < 0 || n->output >= g->n_values) {
      st = fy_status_make(FY_INVALID_ARGUMENT, "node %d (%s): output is a dangling value %d", ni, n->name, n->output);
      break;
    }
    const fy_value_t *out = &g->values[n->output];
    if (out->kind != FY_VALUE_ACTIVATION && out->kind != FY_VALUE_OUTPUT) {
      st = fy_status_make(FY_INVALID_ARGUMENT, "node %d (%s): writes %s value %s", ni, n->name,
                          fy_value_kind_name(out->kind), out->name);
      break;
    }
    if (defined_by[n->output] >= 0) {
      st = fy_status_make(FY_INVALID_ARGUMENT, "node %d (%s): %s is already written by node %d", ni, n->name,
                          out->name, defined_by[n->output]);
      break;
    }
    if (out->stage != n->stage) {
      st = fy_status_make(FY_INVALID_ARGUMENT, "node %d (%s): writes %s of another stage", ni, n->name, out->name);
      break;
    }
    defined_by[n->output] = ni;
    st = check_shapes(g, n);
    if (st) st = fy_status_annotate(st, "node %d (%s, %s)", ni, n->name, fy_op_name(n->op));
  }
  free(defined_by);
  return st;
}
