/* The IR as text: what `ferry graph --dump` and --print-after show. */
#include <inttypes.h>

#include "ir/ir.h"

static const char *op_names[FY_OP_COUNT] = {
    [FY_OP_EMBED] = "embed",         [FY_OP_RMSNORM] = "rmsnorm",   [FY_OP_MATMUL] = "matmul",
    [FY_OP_ROPE] = "rope",           [FY_OP_ATTENTION] = "attention", [FY_OP_SILU_MUL] = "silu_mul",
    [FY_OP_ADD] = "add",             [FY_OP_LAST_ROW] = "last_row",
};

const char *fy_op_name(fy_op_t op) { return op >= 0 && op < FY_OP_COUNT ? op_names[op] : "?"; }

const char *fy_value_kind_name(fy_value_kind_t kind) {
  switch (kind) {
    case FY_VALUE_INPUT: return "input";
    case FY_VALUE_OUTPUT: return "output";
    case FY_VALUE_WEIGHT: return "weight";
    case FY_VALUE_ACTIVATION: return "activation";
    case FY_VALUE_STATE: return "state";
  }
  return "?";
}

const char *fy_shape_str(const fy_value_t *v, char *buf, int size) {
  int n = snprintf(buf, (size_t)size, "[");
  for (int i = 0; i < v->rank && n < size; i++)
    n += snprintf(buf + n, (size_t)(size - n), "%s%" PRId64, i ? ", " : "", v->shape[i]);
  if (n < size) snprintf(buf + n, (size_t)(size - n), "]");
  return buf;
}

void fy_graph_print(const fy_graph_t *g, FILE *out) {
  const fy_model_config_t *c = &g->config;
  fprintf(out, "graph %s%s: %d layers, %d values, %d nodes, context %" PRId64 "\n",
          c->architecture ? c->architecture : "?", g->shape_only ? " (shape-only)" : "", g->n_layers, g->n_values,
          g->n_nodes, g->context);
  for (int f = 0; f < g->n_files; f++)
    fprintf(out, "file %d: %s (%" PRIu64 " bytes)\n", f, g->files[f].path, g->files[f].size);
  char shape[96];
  for (int i = 0; i < g->n_values; i++) {
    const fy_value_t *v = &g->values[i];
    if (v->kind == FY_VALUE_ACTIVATION) continue; /* shown where nodes define them */
    fprintf(out, "%%%d = %s %s %s %s", i, fy_value_kind_name(v->kind), v->name, fy_dtype_name(v->dtype),
            fy_shape_str(v, shape, sizeof shape));
    if (v->layer >= 0) fprintf(out, " layer %d", v->layer);
    if (v->kind == FY_VALUE_WEIGHT && v->file >= 0)
      fprintf(out, " @file%d+%" PRIu64 " (%" PRIu64 " bytes)", v->file, v->file_offset, v->nbytes);
    fputc('\n', out);
  }
  for (int s = 0; s < g->n_stages; s++) {
    const fy_stage_t *st = &g->stages[s];
    fprintf(out, "stage %s (max_tokens %" PRId64 ", repeat %" PRId64 "):\n", st->name, st->max_tokens, st->repeat);
    for (int ni = st->first_node; ni < st->first_node + st->n_nodes; ni++) {
      const fy_node_t *n = &g->nodes[ni];
      const fy_value_t *o = &g->values[n->output];
      fprintf(out, "  %%%d %s = %s(", n->output, fy_shape_str(o, shape, sizeof shape), fy_op_name(n->op));
      for (int i = 0; i < n->n_inputs; i++) fprintf(out, "%s%%%d", i ? ", " : "", n->inputs[i]);
      fprintf(out, ")  ; %s", n->name);
      if (n->layer >= 0) fprintf(out, " [layer %d]", n->layer);
      fputc('\n', out);
    }
  }
}
