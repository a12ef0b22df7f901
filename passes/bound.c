/* The lower bound a schedule is judged against (see compile.h). */
#include "passes/compile.h"

double fy_compile_bound_seconds(const fy_compile_t *c, double *out_stage_seconds) {
  const fy_graph_t *g = c->graph;
  uint64_t weights = fy_graph_weight_bytes(g, -2);
  uint64_t fixed = c->activation_bytes + c->kv_bytes;
  uint64_t room = c->budget > fixed ? c->budget - fixed : 0;
  double must_cross = weights > room ? (double)(weights - room) : 0;
  double bus = must_cross / (c->target.h2d_pinned_gbps * 1e9), total = 0;
  for (int s = 0; s < g->n_stages; s++) {
    const fy_stage_t *st = &g->stages[s];
    double compute = 0;
    for (int i = st->first_node; i < st->first_node + st->n_nodes; i++) compute += c->node_seconds[i];
    double step = compute > bus ? compute : bus;
    if (out_stage_seconds) out_stage_seconds[s] = step;
    total += step * (double)st->repeat;
  }
  return total;
}
