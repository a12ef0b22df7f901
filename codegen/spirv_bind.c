/* Dispatch geometry and bindings of a node's kernel (fy_spirv_bind_node in
 * spirv.h). A device binds a storage buffer only at a multiple of
 * minStorageBufferOffsetAlignment and only up to maxStorageBufferRange
 * bytes (128 MiB on lavapipe, less than one lm_head of a real model), so a
 * binding starts at the argument's offset aligned down and the kernel is
 * told the rest in push constants; a weight larger than the range is cut by
 * rows into several dispatches of the same kernel. */
#include <stdlib.h>
#include <string.h>

#include "codegen/cpu.h"
#include "codegen/spirv_asm.h"

enum { WG = FY_SPIRV_LOCAL_SIZE };

static uint64_t round4(uint64_t x) { return (x + 3) & ~(uint64_t)3; }

static uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

/* The grid of node for a dispatch covering `rows` rows of its split argument. */
static fy_status_t node_grid(const fy_graph_t *g, const fy_node_t *n, uint64_t rows, uint32_t out_groups[3]) {
  const fy_value_t *out = &g->values[n->output];
  fy_cpu_arg_t o = fy_cpu_arg_for_value(out, NULL);
  uint64_t tokens = (uint64_t)o.rows, x = 1, y = 1;
  switch (n->op) {
    case FY_OP_EMBED:
    case FY_OP_SILU_MUL:
    case FY_OP_ADD: x = ceil_div((uint64_t)o.cols, WG), y = tokens; break;
    case FY_OP_RMSNORM: x = tokens; break;
    case FY_OP_MATMUL:
      /* A weight row per subgroup: 8 rows per workgroup at a subgroup size of 8, fewer with larger ones
       * (the kernel strides over what the grid does not cover). */
      x = ceil_div(rows, WG / 8);
      if (x > FY_SPIRV_MAX_GROUPS) x = FY_SPIRV_MAX_GROUPS; /* the kernel strides over the rest */
      break;
    case FY_OP_ROPE: x = ceil_div((uint64_t)n->attrs.n_heads * (uint64_t)(n->attrs.head_dim / 2), WG), y = tokens; break;
    case FY_OP_ATTENTION: x = (uint64_t)n->attrs.n_heads, y = tokens; break;
    case FY_OP_LAST_ROW: x = ceil_div((uint64_t)o.cols, WG); break;
    case FY_OP_COUNT: break;
  }
  if (x < 1 || y < 1 || x > FY_SPIRV_MAX_GROUPS || y > FY_SPIRV_MAX_GROUPS)
    return fy_status_make(FY_RESOURCE_EXHAUSTED, "node %s needs a grid of %llu x %llu workgroups; at most %u each",
                          n->name, (unsigned long long)x, (unsigned long long)y, FY_SPIRV_MAX_GROUPS);
  out_groups[0] = (uint32_t)x, out_groups[1] = (uint32_t)y, out_groups[2] = 1;
  return NULL;
}

static fy_status_t check_arg(const fy_value_t *v, int k, const fy_spirv_args_t *args, uint64_t bytes) {
  uint64_t off = args->offset[k], size = args->buffer_bytes[k];
  if (size % 4 || off > size || bytes > size - off)
    return fy_status_make(FY_OUT_OF_RANGE, "argument %d (%s, %llu bytes at %llu) is past its buffer of %llu bytes "
                          "(a multiple of 4)", k, v->name, (unsigned long long)bytes, (unsigned long long)off,
                          (unsigned long long)size);
  size_t esize = fy_dtype_size(v->dtype);
  if (off % (esize < 4 ? esize : 4))
    return fy_status_make(FY_INCOMPATIBLE, "argument %d (%s, %s) is at offset %llu, not a multiple of %zu", k,
                          v->name, fy_dtype_name(v->dtype), (unsigned long long)off, esize < 4 ? esize : 4);
  return NULL;
}

/* Binds [off, +bytes) at off aligned down; base is where it starts inside. */
static void bind(uint64_t off, uint64_t bytes, uint64_t align, fy_spirv_range_t *out, uint32_t *out_base) {
  uint64_t aligned = off & ~(align - 1);
  *out_base = (uint32_t)(off - aligned);
  out->offset = aligned;
  out->range = round4(off - aligned + bytes);
}

static fy_status_t bind_node(const fy_graph_t *g, const fy_node_t *n, const fy_spirv_args_t *args, uint64_t align,
                             uint64_t max_range, fy_spirv_part_t **out_parts, int *out_n) {
  if (align < 4 || (align & (align - 1)) || max_range < 4 || max_range > FY_SPIRV_MAX_RANGE)
    return fy_status_make(FY_INVALID_ARGUMENT, "alignment %llu (a power of two >= 4) or range %llu (4 to %llu)",
                          (unsigned long long)align, (unsigned long long)max_range,
                          (unsigned long long)FY_SPIRV_MAX_RANGE);
  max_range &= ~(uint64_t)3;
  int n_args = n->n_inputs + 1, split = n->op == FY_OP_MATMUL || n->op == FY_OP_EMBED ? 1 : -1;
  fy_spirv_part_t first = {0};
  const fy_value_t *vals[FY_SPIRV_MAX_ARGS];
  uint64_t bytes[FY_SPIRV_MAX_ARGS];
  for (int k = 0; k < n_args; k++) {
    const fy_value_t *v = vals[k] = &g->values[k < n->n_inputs ? n->inputs[k] : n->output];
    bytes[k] = (uint64_t)fy_value_elements(v) * fy_dtype_size(v->dtype);
    FY_TRY(check_arg(v, k, args, bytes[k]));
    bind(args->offset[k], bytes[k], align, &first.args[k], &first.push.base[k]);
    if (k != split && first.args[k].range > max_range)
      return fy_status_make(FY_RESOURCE_EXHAUSTED, "argument %d (%s) spans %llu bytes; a binding holds at most %llu",
                            k, v->name, (unsigned long long)first.args[k].range, (unsigned long long)max_range);
  }
  int64_t rows = 1;
  uint64_t row_bytes = 0;
  if (split >= 0) {
    fy_cpu_arg_t w = fy_cpu_arg_for_value(vals[split], NULL);
    rows = w.rows, row_bytes = (uint64_t)w.cols * fy_dtype_size(vals[split]->dtype);
  }
  /* Parts: rows [r0, r1) of the split argument each. */
  fy_spirv_part_t *parts = NULL;
  int count = 0, cap = 0;
  for (int64_t r0 = 0; r0 < rows;) {
    if (count == cap) {
      fy_spirv_part_t *grown = realloc(parts, sizeof *parts * (size_t)(cap = cap ? 2 * cap : 4));
      if (!grown) {
        free(parts);
        return fy_status_make(FY_RESOURCE_EXHAUSTED, "out of memory");
      }
      parts = grown;
    }
    fy_spirv_part_t *p = &parts[count];
    *p = first;
    int64_t r1 = rows;
    if (split >= 0) {
      bind(args->offset[split] + (uint64_t)r0 * row_bytes, 0, align, &p->args[split], &p->push.base[split]);
      uint64_t fit = (max_range - p->push.base[split]) / row_bytes;
      if (fit < 1) {
        free(parts);
        return fy_status_make(FY_RESOURCE_EXHAUSTED, "a row of %s (%llu bytes) does not fit a binding of %llu bytes",
                              vals[split]->name, (unsigned long long)row_bytes, (unsigned long long)max_range);
      }
      if ((uint64_t)(rows - r0) > fit) r1 = r0 + (int64_t)fit;
      p->args[split].range = round4(p->push.base[split] + (uint64_t)(r1 - r0) * row_bytes);
    }
    p->push.row_begin = (uint32_t)r0;
    p->push.row_end = (uint32_t)(split >= 0 ? r1 : rows);
    fy_status_t s = node_grid(g, n, (uint64_t)(r1 - r0), p->groups);
    if (s) {
      free(parts);
      return s;
    }
    count++;
    r0 = r1;
  }
  *out_parts = parts;
  *out_n = count;
  return NULL;
}

fy_status_t fy_spirv_bind_node(const fy_graph_t *g, int node, const fy_spirv_args_t *args, uint64_t align,
                               uint64_t max_range, fy_spirv_part_t **out_parts, int *out_n) {
  if (!g || node < 0 || node >= g->n_nodes || !args)
    return fy_status_make(FY_INVALID_ARGUMENT, "spirv bind: node %d is not in the graph", node);
  const fy_node_t *n = &g->nodes[node];
  return fy_status_annotate(bind_node(g, n, args, align, max_range, out_parts, out_n), "spirv bind: node %s",
                            n->name);
}
