/* The human summary of a schedule (see summary.h). */
#include "schedules/summary.h"

#include <inttypes.h>
#include <stdlib.h>

static double mib(uint64_t b) { return (double)b / 1048576.0; }

void fy_schedule_print_summary(const fy_schedule_t *s, const fy_sim_result_t *sim, FILE *out) {
  const fy_graph_t *g = s->graph;
  const fy_target_t *t = &s->target;
  fprintf(out, "model     %s, %d layers, %.1f MiB of weights%s\n", g->config.architecture, g->n_layers,
          mib(fy_graph_weight_bytes(g, -2)), g->shape_only ? " (shape-only)" : "");
  fprintf(out, "target    %s: %.2f GiB VRAM, %.2f GiB reserve, %.1f GB/s host-to-device, %s\n", t->name,
          t->vram_bytes / 1073741824.0, t->reserve_bytes / 1073741824.0, t->h2d_pinned_gbps, t->code_target);
  fprintf(out, "policy    %s, prefetch %d, %d slot%s of %.1f MiB\n", fy_policy_name(s->policy), s->prefetch,
          s->n_slots, s->n_slots == 1 ? "" : "s", mib(s->slot_bytes));
  fprintf(out, "\nmemory map (device bytes %" PRIu64 " = %.1f MiB of a %.1f MiB budget)\n", s->device_bytes,
          mib(s->device_bytes), mib(s->budget));
  for (int r = 0; r < FY_REGION_COUNT; r++) {
    fprintf(out, "  %-12s @%-12" PRIu64 " %10.1f MiB", fy_region_name((fy_region_kind_t)r), s->regions[r].offset,
            mib(s->regions[r].bytes));
    if (r == FY_REGION_ACTIVATIONS)
      fprintf(out, "  (max-live lower bound %.1f MiB)", mib(s->activation_lower_bound));
    if (r == FY_REGION_SLOTS && sim) fprintf(out, "  (peak in use %.1f MiB)", mib(sim->peak_bytes[r]));
    fputc('\n', out);
  }

  /* Per layer: bytes resident / streamed, where each stage runs it, predicted compute per stage. */
  int ns = s->n_stages;
  fprintf(out, "\n%-22s %10s %10s", "layer", "resident", "streamed");
  for (int i = 1; i < ns; i++) fprintf(out, " %9s %10s", s->stages[i].name, "ms");
  fprintf(out, "\n");
  for (int l = -1; l < g->n_layers; l++) {
    uint64_t res = 0, str = 0;
    for (int v = 0; v < g->n_values; v++)
      if (g->values[v].kind == FY_VALUE_WEIGHT && g->values[v].layer == l)
        *(s->placement[v] == FY_PLACE_RESIDENT ? &res : &str) += g->values[v].nbytes;
    fprintf(out, "%-22s %9.1fM %9.1fM", l < 0 ? "(embedding, head)" : g->layers[l].name, mib(res), mib(str));
    for (int i = 1; i < ns; i++) {
      const fy_stage_schedule_t *st = &s->stages[i];
      double ms = 0;
      const char *where = str ? "streamed" : "resident";
      for (int k = 0; k < st->n_cmds[FY_QUEUE_COMPUTE]; k++) {
        const fy_cmd_t *cmd = &st->cmds[FY_QUEUE_COMPUTE][k];
        if (cmd->kind != FY_CMD_LAUNCH || g->nodes[cmd->node].layer != l) continue;
        ms += cmd->seconds * 1e3;
        if (cmd->on_host) where = "host";
      }
      fprintf(out, " %9s %10.3f", where, ms);
    }
    fputc('\n', out);
  }

  fprintf(out, "\npredicted (simulated on the target's cost model)\n");
  if (!sim) {
    fprintf(out, "  (not simulated)\n");
    return;
  }
  for (int i = 0; i < ns && i < sim->n_stages; i++) {
    const fy_stage_schedule_t *st = &s->stages[i];
    const fy_sim_stage_t *r = &sim->stages[i];
    fprintf(out, "  %-8s x%-5" PRId64 " first step %10.3f ms  step %10.3f ms  total %10.3f ms  copied %8.1f MiB  "
            "compute waited %8.3f ms\n", st->name, st->repeat, r->first_step_seconds * 1e3, r->step_seconds * 1e3,
            r->total_seconds * 1e3, mib(r->copied_bytes), r->compute_wait_seconds * 1e3);
  }
  fprintf(out, "  request (prefill + decode): %.3f ms, bus busy %.1f%%, load once: %.3f ms\n",
          sim->request_seconds * 1e3, sim->bus_busy_fraction * 100, sim->load_seconds * 1e3);
}
