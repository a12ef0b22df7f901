/* Pass: cost.
 * Requires: a verified graph and a target.
 * Produces: per node, FLOPs and bytes moved at the stage's max_tokens, and
 * the seconds it takes on the GPU (roofline: the slower of compute at the
 * weight dtype's matmul rate and memory traffic at the device bandwidth, plus
 * the launch overhead) and on the host CPU (the same roofline against the CPU
 * rate and host memory bandwidth, plus a thread-pool dispatch), for
 * host-placed layers. */
#include <stdlib.h>

#include "passes/compile.h"

/* Waking a thread pool for one node on the host: about a microsecond. */
#define HOST_DISPATCH_SECONDS 1e-6

static double max2(double a, double b) { return a > b ? a : b; }

fy_status_t fy_pass_cost(fy_compile_t *c) {
  const fy_graph_t *g = c->graph;
  const fy_target_t *t = &c->target;
  size_t n = (size_t)(g->n_nodes ? g->n_nodes : 1);
  c->node_flops = calloc(n, sizeof(double));
  c->node_bytes = calloc(n, sizeof(double));
  c->node_seconds = calloc(n, sizeof(double));
  c->node_host_seconds = calloc(n, sizeof(double));
  if (!c->node_flops || !c->node_bytes || !c->node_seconds || !c->node_host_seconds)
    return fy_status_make(FY_RESOURCE_EXHAUSTED, "cost: out of memory");
  for (int i = 0; i < g->n_nodes; i++) {
    const fy_node_t *node = &g->nodes[i];
    const fy_stage_t *stage = &g->stages[node->stage];
    double rows = (double)stage->max_tokens;
    const fy_value_t *out = &g->values[node->output];
    double out_cols = (double)out->shape[out->rank - 1];
    double out_bytes = (double)out->nbytes;
    double in_bytes = 0;
    for (int k = 0; k < node->n_inputs; k++) in_bytes += (double)g->values[node->inputs[k]].nbytes;
    double flops = 0, bytes = in_bytes + out_bytes;
    double tflops = t->fp32_tflops;
    switch (node->op) {
      case FY_OP_MATMUL: {
        const fy_value_t *w = &g->values[node->inputs[1]];
        flops = 2.0 * rows * (double)w->shape[0] * (double)w->shape[1];
        tflops = fy_target_tflops(t, w->dtype);
        break;
      }
      case FY_OP_ATTENTION: {
        /* Prefill attends causally over its own rows; decode over the whole cache. */
        double keys = stage->max_tokens > 1 ? (rows + 1) / 2 : (double)g->context;
        double kv_row = (double)g->values[node->inputs[3]].shape[1] * 4.0;
        flops = 4.0 * rows * keys * (double)node->attrs.n_heads * (double)node->attrs.head_dim;
        bytes = in_bytes - (double)g->values[node->inputs[3]].nbytes - (double)g->values[node->inputs[4]].nbytes +
                2.0 * keys * kv_row + out_bytes;
        break;
      }
      case FY_OP_EMBED: {
        const fy_value_t *table = &g->values[node->inputs[1]];
        bytes = out_bytes + rows * (double)fy_value_row_bytes(table) + rows * 4;
        break;
      }
      case FY_OP_LAST_ROW: bytes = 2 * out_bytes; break;
      default: flops = 4.0 * rows * out_cols; break;
    }
    c->node_flops[i] = flops;
    c->node_bytes[i] = bytes;
    c->node_seconds[i] = max2(flops / (tflops * 1e12), bytes / (t->mem_bw_gbps * 1e9)) + t->launch_overhead_us * 1e-6;
    c->node_host_seconds[i] =
        max2(flops / (t->cpu_gflops * 1e9), bytes / (t->host_mem_bw_gbps * 1e9)) + HOST_DISPATCH_SECONDS;
  }
  return NULL;
}
