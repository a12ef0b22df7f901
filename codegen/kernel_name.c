/* Kernel names from node signatures (kernel_name.h). The signature is text
 * so that people can read what a kernel was specialized to; floating-point
 * attributes are printed with %a, which is exact, so equal signatures mean
 * equal code. */
#include "codegen/kernel_name.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "codegen/cpu.h"

typedef struct {
  char *buf;
  size_t n, len;
} text_t;

static void put(text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text_t *t, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  size_t room = t->len < t->n ? t->n - t->len : 0;
  int w = vsnprintf(room ? t->buf + t->len : NULL, room, fmt, ap);
  va_end(ap);
  if (w > 0) t->len += (size_t)w;
}

static void put_arg(text_t *t, const fy_value_t *v) {
  fy_cpu_arg_t a = fy_cpu_arg_for_value(v, NULL);
  put(t, "%s[%" PRId64 "x%" PRId64 "]", fy_dtype_name(v->dtype), a.rows, a.cols);
}

static bool node_ok(const fy_graph_t *g, int node) {
  if (!g || node < 0 || node >= g->n_nodes) return false;
  const fy_node_t *nd = &g->nodes[node];
  if (nd->output < 0 || nd->output >= g->n_values || nd->n_inputs < 0 || nd->n_inputs > FY_MAX_NODE_INPUTS)
    return false;
  for (int i = 0; i < nd->n_inputs; i++)
    if (nd->inputs[i] < 0 || nd->inputs[i] >= g->n_values) return false;
  return true;
}

static size_t finish(char *buf, size_t n, size_t len) {
  if (n && buf) buf[len < n ? len : n - 1] = '\0';
  return len;
}

size_t fy_kernel_signature(const fy_graph_t *g, int node, char *buf, size_t n) {
  if (!node_ok(g, node)) return finish(buf, n, 0);
  const fy_node_t *nd = &g->nodes[node];
  const fy_node_attrs_t *a = &nd->attrs;
  text_t t = {buf, n, 0};
  put(&t, "%s", fy_op_name(nd->op));
  for (int i = 0; i < nd->n_inputs; i++) {
    put(&t, " ");
    put_arg(&t, &g->values[nd->inputs[i]]);
  }
  put(&t, " -> ");
  put_arg(&t, &g->values[nd->output]);
  switch (nd->op) {
    case FY_OP_RMSNORM: put(&t, " eps=%a", (double)a->eps); break;
    case FY_OP_ROPE:
      put(&t, " heads=%d head_dim=%d theta=%a", a->n_heads, a->head_dim, a->rope.theta);
      if (a->rope.scaling == FY_ROPE_SCALING_LLAMA3)
        put(&t, " llama3(factor=%a low=%a high=%a original=%" PRId64 ")", a->rope.factor, a->rope.low_freq_factor,
            a->rope.high_freq_factor, a->rope.original_max_position);
      break;
    case FY_OP_ATTENTION: put(&t, " heads=%d kv_heads=%d head_dim=%d", a->n_heads, a->n_kv_heads, a->head_dim); break;
    default: break;
  }
  return finish(buf, n, t.len);
}

/* FNV-1a, 64 bits: stable across machines, enough against accidental collisions among a model's few
 * dozen signatures. */
static uint64_t fnv1a(const char *s, size_t len) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
  return h;
}

size_t fy_kernel_name(const fy_graph_t *g, int node, char *buf, size_t n) {
  if (!node_ok(g, node)) return finish(buf, n, 0);
  char sig[1024];
  size_t len = fy_kernel_signature(g, node, sig, sizeof sig);
  if (len >= sizeof sig) return finish(buf, n, 0); /* cannot happen: six arguments and a few attributes */
  const fy_node_t *nd = &g->nodes[node];
  fy_cpu_arg_t out = fy_cpu_arg_for_value(&g->values[nd->output], NULL);
  text_t t = {buf, n, 0};
  put(&t, "fy_%s_", fy_op_name(nd->op));
  /* The weight's dtype is the one that changes the code most visibly. */
  if ((nd->op == FY_OP_EMBED || nd->op == FY_OP_RMSNORM || nd->op == FY_OP_MATMUL) && nd->n_inputs > 1)
    put(&t, "%s_", fy_dtype_name(g->values[nd->inputs[1]].dtype));
  put(&t, "%" PRId64 "x%" PRId64 "_%016" PRIx64, out.rows, out.cols, fnv1a(sig, len));
  return finish(buf, n, t.len);
}
