/* Pass: kvcache.
 * Requires: memplan (value_offset allocated). The graph's KV cache state
 * values are sized for its context (--context).
 * Produces: kv_bytes and each state value's offset within the KV region. */
#include "passes/compile.h"

#define KV_ALIGN 256u

fy_status_t fy_pass_kvcache(fy_compile_t *c) {
  const fy_graph_t *g = c->graph;
  uint64_t offset = 0;
  for (int i = 0; i < g->n_values; i++) {
    const fy_value_t *v = &g->values[i];
    if (v->kind != FY_VALUE_STATE) continue;
    c->value_offset[i] = offset;
    offset += (v->nbytes + KV_ALIGN - 1) / KV_ALIGN * KV_ALIGN;
  }
  c->kv_bytes = offset;
  return NULL;
}
