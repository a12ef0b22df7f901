/* Pass: fuse (chunk fusion).
 * Requires: stream (node_group), residency (layer_on_host).
 * Produces, per stage: node_chunk — maximal runs of GPU nodes that wait for
 * no streamed group form one chunk, dispatched as one unit (one CUDA graph,
 * one Vulkan command buffer), recorded once and replayed every step. A run
 * of a single node is not a chunk. */
#include <stdlib.h>

#include "passes/compile.h"

fy_status_t fy_pass_fuse(fy_compile_t *c) {
  const fy_graph_t *g = c->graph;
  for (int s = 0; s < g->n_stages; s++) {
    fy_compile_stage_t *cs = &c->stages[s];
    const fy_stage_t *st = &g->stages[s];
    cs->node_chunk = malloc(sizeof(int) * ((size_t)g->n_nodes + 1));
    if (!cs->node_chunk) return fy_status_make(FY_RESOURCE_EXHAUSTED, "fuse: out of memory");
    for (int i = 0; i < g->n_nodes; i++) cs->node_chunk[i] = -1;
    int run_start = -1;
    for (int i = st->first_node; i <= st->first_node + st->n_nodes; i++) {
      bool fusable = i < st->first_node + st->n_nodes && cs->node_group[i] < 0 && !fy_compile_node_on_host(c, i);
      if (fusable && run_start < 0) run_start = i;
      if (!fusable && run_start >= 0) {
        if (i - run_start > 1) {
          for (int j = run_start; j < i; j++) cs->node_chunk[j] = cs->n_chunks;
          cs->n_chunks++;
        }
        run_start = -1;
      }
    }
  }
  return NULL;
}
