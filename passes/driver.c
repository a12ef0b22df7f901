/* The compile driver: every pass in order, in one visible place. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "passes/compile.h"

const char *const fy_pass_names[] = {"cost", "memplan", "kvcache", "residency", "stream", "fuse", NULL};

static const char *policy_names[FY_POLICY_COUNT] = {
    [FY_POLICY_FERRY] = "ferry",         [FY_POLICY_FIRST_K] = "first-k",  [FY_POLICY_PREFETCH1] = "prefetch1",
    [FY_POLICY_SEQUENTIAL] = "sequential", [FY_POLICY_NGL] = "ngl",
};

const char *fy_policy_name(fy_policy_t policy) {
  return policy >= 0 && policy < FY_POLICY_COUNT ? policy_names[policy] : "?";
}

bool fy_policy_parse(const char *name, fy_policy_t *out_policy) {
  for (int i = 0; i < FY_POLICY_COUNT; i++)
    if (!strcmp(name, policy_names[i])) {
      *out_policy = (fy_policy_t)i;
      return true;
    }
  return false;
}

static fy_status_t after_pass(fy_compile_t *c, const char *name) {
  if (c->options.verify_each) FY_TRY(fy_status_annotate(fy_graph_verify(c->graph), "after pass %s", name));
  if (c->options.print_after && !strcmp(c->options.print_after, name))
    fy_compile_print(c, name, c->options.print_to ? c->options.print_to : stdout);
  return NULL;
}

fy_status_t fy_compile_run(const fy_graph_t *graph, const fy_target_t *target, const fy_compile_options_t *options,
                           fy_compile_t **out_compile) {
  if (options->print_after) {
    bool known = false;
    for (int i = 0; fy_pass_names[i] && !known; i++) known = !strcmp(fy_pass_names[i], options->print_after);
    if (!known)
      return fy_status_make(FY_INVALID_ARGUMENT, "--print-after %s: no such pass (cost, memplan, kvcache, residency, "
                            "stream, fuse)", options->print_after);
  }
  fy_compile_t *c = calloc(1, sizeof *c);
  if (!c) return fy_status_make(FY_RESOURCE_EXHAUSTED, "compile: out of memory");
  c->graph = graph;
  c->target = *target;
  c->options = *options;
  c->budget = options->budget ? options->budget : target->vram_bytes - target->reserve_bytes;
  c->stages = calloc((size_t)graph->n_stages + 1, sizeof *c->stages);
  fy_status_t s = c->stages ? NULL : fy_status_make(FY_RESOURCE_EXHAUSTED, "compile: out of memory");
  for (int st = 0; !s && st < graph->n_stages; st++) {
    const fy_stage_t *gs = &graph->stages[st];
    int first = gs->first_node + gs->n_nodes;
    for (int i = gs->first_node; i < first; i++)
      if (graph->nodes[i].layer >= 0) first = i;
    c->stages[st].first_layer_node = first;
  }
  if (!s) s = fy_graph_verify(graph);
  if (!s) s = fy_pass_cost(c);
  if (!s) s = after_pass(c, "cost");
  if (!s) s = fy_pass_memplan(c);
  if (!s) s = after_pass(c, "memplan");
  if (!s) s = fy_pass_kvcache(c);
  if (!s) s = after_pass(c, "kvcache");
  if (!s) s = fy_pass_residency(c);
  if (!s) s = after_pass(c, "residency");
  if (!s) s = fy_pass_stream(c);
  if (!s) s = after_pass(c, "stream");
  if (!s) s = fy_pass_fuse(c);
  if (!s) s = after_pass(c, "fuse");
  if (s) {
    fy_compile_destroy(c);
    return s;
  }
  *out_compile = c;
  return NULL;
}

void fy_compile_destroy(fy_compile_t *c) {
  if (!c) return;
  free(c->node_flops), free(c->node_bytes), free(c->node_seconds), free(c->node_host_seconds);
  free(c->value_offset), free(c->placement), free(c->ranges), free(c->members);
  for (int s = 0; c->stages && s < c->graph->n_stages; s++) {
    free(c->stages[s].layer_on_host);
    free(c->stages[s].groups);
    free(c->stages[s].node_group);
    free(c->stages[s].node_chunk);
  }
  free(c->stages);
  free(c);
}

double fy_compile_crossing_seconds(const fy_compile_t *c, int stage) {
  const fy_graph_t *g = c->graph;
  /* The stage's activation rows over the bus, plus a transfer's fixed cost
   * (taken as one launch overhead: a few microseconds on PCIe). */
  return (double)g->stages[stage].max_tokens * (double)g->config.hidden * 4.0 / (c->target.h2d_pinned_gbps * 1e9) +
         c->target.launch_overhead_us * 1e-6;
}

double fy_compile_node_seconds(const fy_compile_t *c, int node) {
  if (!fy_compile_node_on_host(c, node)) return c->node_seconds[node];
  /* Where a run of host layers begins or ends, the activations cross the bus. */
  const fy_graph_t *g = c->graph;
  const fy_node_t *n = &g->nodes[node];
  const fy_stage_t *st = &g->stages[n->stage];
  double crossing = fy_compile_crossing_seconds(c, n->stage);
  double seconds = c->node_host_seconds[node];
  /* Token ids start on the host and logits end there: only a GPU neighbour costs a crossing. */
  if (node > st->first_node && !fy_compile_node_on_host(c, node - 1)) seconds += crossing;
  if (node + 1 < st->first_node + st->n_nodes && !fy_compile_node_on_host(c, node + 1)) seconds += crossing;
  return seconds;
}

static void print_bytes(FILE *out, const char *what, uint64_t bytes) {
  fprintf(out, "  %-26s %14" PRIu64 " bytes (%.1f MiB)\n", what, bytes, bytes / 1048576.0);
}

void fy_compile_print(const fy_compile_t *c, const char *pass, FILE *out) {
  const fy_graph_t *g = c->graph;
  fprintf(out, "; after pass %s (target %s, policy %s, budget %" PRIu64 " bytes)\n", pass, c->target.name,
          fy_policy_name(c->options.policy), c->budget);
  if (!strcmp(pass, "cost")) {
    for (int i = 0; i < g->n_nodes; i++)
      fprintf(out, "  node %d %-28s %-9s flops %.3g bytes %.3g gpu %.3g us host %.3g us\n", i, g->nodes[i].name,
              fy_op_name(g->nodes[i].op), c->node_flops[i], c->node_bytes[i], c->node_seconds[i] * 1e6,
              c->node_host_seconds[i] * 1e6);
    return;
  }
  if (!strcmp(pass, "memplan")) {
    print_bytes(out, "activation arena", c->activation_bytes);
    print_bytes(out, "max-live lower bound", c->activation_lower_bound);
    for (int i = 0; i < g->n_values; i++)
      if (c->value_offset[i] != UINT64_MAX && g->values[i].kind != FY_VALUE_STATE)
        fprintf(out, "  %-36s @%" PRIu64 " +%" PRIu64 "\n", g->values[i].name, c->value_offset[i], g->values[i].nbytes);
    return;
  }
  if (!strcmp(pass, "kvcache")) {
    print_bytes(out, "KV cache", c->kv_bytes);
    return;
  }
  if (!strcmp(pass, "residency")) {
    print_bytes(out, "resident weights", c->resident_bytes);
    fprintf(out, "  ring: %d slots of %" PRIu64 " bytes (prefetch %d)\n", c->n_slots, c->slot_bytes, c->prefetch);
    fprintf(out, "  predicted request: %.6f s\n", c->predicted_request_seconds);
    for (int l = -1; l < g->n_layers; l++) {
      uint64_t res = 0, streamed = 0;
      for (int v = 0; v < g->n_values; v++)
        if (g->values[v].kind == FY_VALUE_WEIGHT && g->values[v].layer == l)
          *(c->placement[v] == FY_PLACE_RESIDENT ? &res : &streamed) += g->values[v].nbytes;
      fprintf(out, "  %-20s resident %12" PRIu64 " streamed %12" PRIu64, l < 0 ? "(global)" : g->layers[l].name, res,
              streamed);
      for (int s = 0; s < g->n_stages; s++)
        if (l >= 0 ? c->stages[s].layer_on_host[l] : c->stages[s].pre_on_host)
          fprintf(out, " %s on the host in %s", l >= 0 ? "" : "embedding", g->stages[s].name);
      fputc('\n', out);
    }
    return;
  }
  for (int s = 0; s < g->n_stages; s++) {
    const fy_compile_stage_t *cs = &c->stages[s];
    fprintf(out, "  stage %s: %d groups, %d chunks\n", g->stages[s].name, cs->n_groups, cs->n_chunks);
    for (int k = 0; !strcmp(pass, "stream") && k < cs->n_groups; k++) {
      const fy_stream_group_t *grp = &cs->groups[k];
      fprintf(out, "    group %d layer %d slot %d: %" PRIu64 " bytes, %d tensors in %d ranges\n", k, grp->layer,
              grp->slot, grp->bytes, grp->n_members, grp->n_ranges);
    }
  }
}
