/* Lower bounds a schedule is judged against (see compile.h).
 *
 * DESIGN.md's bound is max(total GPU compute, bytes that must cross the bus /
 * bus bandwidth): the bound of every schedule that computes on the GPU. ferry
 * may also run layers on the host, which reads their weights from host
 * memory instead of moving them over the bus; with_host gives the bound with
 * both channels: every weight byte that does not fit in VRAM is either copied
 * over the bus or read by the host, the two at most at once (bytes / (h2d +
 * host memory bandwidth)), and every node takes at least the faster of its
 * GPU and host time. */
#include "passes/compile.h"

double fy_compile_bound_seconds(const fy_compile_t *c, bool with_host, double *out_stage_seconds) {
  const fy_graph_t *g = c->graph;
  uint64_t weights = fy_graph_weight_bytes(g, -2);
  uint64_t fixed = c->activation_bytes + c->kv_bytes;
  uint64_t room = c->budget > fixed ? c->budget - fixed : 0;
  double must_move = weights > room ? (double)(weights - room) : 0;
  double channels = (c->target.h2d_pinned_gbps + (with_host ? c->target.host_mem_bw_gbps : 0)) * 1e9;
  double bus = must_move / channels, total = 0;
  for (int s = 0; s < g->n_stages; s++) {
    const fy_stage_t *st = &g->stages[s];
    double compute = 0;
    for (int i = st->first_node; i < st->first_node + st->n_nodes; i++) {
      double gpu = c->node_seconds[i], host = c->node_host_seconds[i];
      compute += with_host && host < gpu ? host : gpu;
    }
    double step = compute > bus ? compute : bus;
    if (out_stage_seconds) out_stage_seconds[s] = step;
    total += step * (double)st->repeat;
  }
  return total;
}
