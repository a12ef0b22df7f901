/* The human summary of a schedule (see summary.h). */
#include "schedules/summary.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static double mib(uint64_t b) { return (double)b / 1048576.0; }

void fy_schedule_layer_bytes(const fy_schedule_t *s, int layer, uint64_t *out_resident, uint64_t *out_streamed) {
  const fy_graph_t *g = s->graph;
  uint64_t res = 0, str = 0;
  for (int v = 0; v < g->n_values; v++)
    if (g->values[v].kind == FY_VALUE_WEIGHT && g->values[v].layer == layer)
      *(s->placement[v] == FY_PLACE_RESIDENT ? &res : &str) += g->values[v].nbytes;
  *out_resident = res;
  *out_streamed = str;
}

const char *fy_schedule_layer_where(const fy_schedule_t *s, int stage, int layer, double *out_seconds) {
  const fy_graph_t *g = s->graph;
  const fy_stage_schedule_t *st = &s->stages[stage];
  uint64_t res, str;
  fy_schedule_layer_bytes(s, layer, &res, &str);
  const char *where = str ? "streamed" : "resident";
  double seconds = 0;
  for (int k = 0; k < st->n_cmds[FY_QUEUE_COMPUTE]; k++) {
    const fy_cmd_t *cmd = &st->cmds[FY_QUEUE_COMPUTE][k];
    if (cmd->kind != FY_CMD_LAUNCH || g->nodes[cmd->node].layer != layer) continue;
    seconds += cmd->seconds;
    if (cmd->on_host) where = "host";
  }
  if (out_seconds) *out_seconds = seconds;
  return where;
}

/* The times a plan recorded at compile time, when there is no simulation. */
static void print_recorded(const fy_schedule_t *s, FILE *out) {
  double request = 0, load = 0;
  bool any = false;
  for (int i = 0; i < s->n_stages; i++) any |= s->stages[i].predicted_total_seconds > 0;
  if (!any) {
    fprintf(out, "  (not simulated)\n");
    return;
  }
  for (int i = 0; i < s->n_stages; i++) {
    const fy_stage_schedule_t *st = &s->stages[i];
    fprintf(out, "  %-8s x%-5" PRId64 " first step %10.3f ms  step %10.3f ms  total %10.3f ms  (recorded)\n", st->name,
            st->repeat, st->predicted_first_step_seconds * 1e3, st->predicted_step_seconds * 1e3,
            st->predicted_total_seconds * 1e3);
    *(st->graph_stage < 0 ? &load : &request) += st->predicted_total_seconds;
  }
  fprintf(out, "  request (prefill + decode): %.3f ms, load once: %.3f ms\n", request * 1e3, load * 1e3);
}

/* Per stage, where the layers run, and why host placement was chosen. */
static void print_decisions(const fy_schedule_t *s, FILE *out) {
  const fy_graph_t *g = s->graph;
  bool any_host = false;
  for (int i = 1; i < s->n_stages; i++) {
    int resident = 0, streamed = 0, host = 0, first_host = -1, last_host = -1;
    for (int l = 0; l < g->n_layers; l++) {
      const char *where = fy_schedule_layer_where(s, i, l, NULL);
      if (!strcmp(where, "host")) {
        host++;
        if (first_host < 0) first_host = l;
        last_host = l;
      } else {
        *(!strcmp(where, "streamed") ? &streamed : &resident) += 1;
      }
    }
    bool embed_on_host = false;
    const fy_stage_schedule_t *st = &s->stages[i];
    for (int k = 0; k < st->n_cmds[FY_QUEUE_COMPUTE]; k++) {
      const fy_cmd_t *c = &st->cmds[FY_QUEUE_COMPUTE][k];
      if (c->kind == FY_CMD_LAUNCH && g->nodes[c->node].op == FY_OP_EMBED) embed_on_host = c->on_host;
    }
    fprintf(out, "%-9s %s: %d layers resident, %d streamed, %d on the host", i == 1 ? "placement" : "", st->name,
            resident, streamed, host);
    if (host) fprintf(out, " (layers %d-%d)", first_host, last_host);
    if (embed_on_host) fprintf(out, "; embedding lookup on the host (its table needs no VRAM)");
    fputc('\n', out);
    any_host |= host > 0;
  }
  if (any_host)
    fprintf(out, "          host-run layers read their weights from host memory at %.0f GB/s while the bus brings "
            "others at %.0f GB/s\n", s->target.host_mem_bw_gbps, s->target.h2d_pinned_gbps);
}

void fy_schedule_print_summary(const fy_schedule_t *s, const fy_sim_result_t *sim, FILE *out) {
  const fy_graph_t *g = s->graph;
  const fy_target_t *t = &s->target;
  fprintf(out, "model     %s, %d layers, %.1f MiB of weights%s\n", g->config.architecture, g->n_layers,
          mib(fy_graph_weight_bytes(g, -2)), g->shape_only ? " (shape-only)" : "");
  fprintf(out, "target    %s: %.2f GiB VRAM, %.2f GiB reserve, %.1f GB/s host-to-device, %s\n", t->name,
          t->vram_bytes / 1073741824.0, t->reserve_bytes / 1073741824.0, t->h2d_pinned_gbps, t->code_target);
  fprintf(out, "policy    %s, prefetch %d, %d slot%s of %.1f MiB\n", fy_policy_name(s->policy), s->prefetch,
          s->n_slots, s->n_slots == 1 ? "" : "s", mib(s->slot_bytes));
  print_decisions(s, out);
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
    uint64_t res, str;
    fy_schedule_layer_bytes(s, l, &res, &str);
    fprintf(out, "%-22s %9.1fM %9.1fM", l < 0 ? "(embedding, head)" : g->layers[l].name, mib(res), mib(str));
    for (int i = 1; i < ns; i++) {
      double seconds;
      const char *where = fy_schedule_layer_where(s, i, l, &seconds);
      fprintf(out, " %9s %10.3f", where, seconds * 1e3);
    }
    fputc('\n', out);
  }

  fprintf(out, "\npredicted (simulated on the target's cost model)\n");
  if (!sim) {
    print_recorded(s, out);
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

static void print_fingerprint(const char *what, const fy_file_fingerprint_t *f, FILE *out) {
  if (!f->size && !f->hashed_bytes && !f->digest) {
    fprintf(out, "  %s: not recorded\n", what);
    return;
  }
  fprintf(out, "  %s: %" PRIu64 " bytes, xxh3 %016" PRIx64 " of the first %" PRIu64 " bytes\n", what, f->size,
          f->digest, f->hashed_bytes);
}

void fy_plan_print_meta(const fy_plan_t *p, FILE *out) {
  const fy_plan_meta_t *m = &p->meta;
  const fy_graph_t *g = p->graph;
  fprintf(out, "plan      format %u, compiled by ferry %s\n", p->format_version,
          p->compiler_version && *p->compiler_version ? p->compiler_version : "(unknown)");
  fprintf(out, "options   policy %s, prefetch ", fy_policy_name(m->options.policy));
  if (m->options.prefetch < 0)
    fprintf(out, "(policy default)");
  else
    fprintf(out, "%d", m->options.prefetch);
  if (m->options.budget)
    fprintf(out, ", budget %" PRIu64 " (%.1f MiB)\n", m->options.budget, mib(m->options.budget));
  else
    fprintf(out, ", budget (VRAM - reserve)\n");
  for (int i = 0; i < m->n_extra; i++) fprintf(out, "          %s = %s\n", m->extra[i].key, m->extra[i].value);
  fprintf(out, "weights   %d file%s%s\n", g->n_files, g->n_files == 1 ? "" : "s",
          g->shape_only ? " (shape-only: nothing to bind)" : "");
  for (int f = 0; f < g->n_files; f++) {
    fprintf(out, "  %s\n", g->files[f].path);
    if (m->file_fingerprints) print_fingerprint("  fingerprint", &m->file_fingerprints[f], out);
  }
  print_fingerprint("config.json", &m->config_fingerprint, out);
  if (!m->n_kernels) {
    fprintf(out, "kernels   none\n");
    return;
  }
  fprintf(out, "kernels  ");
  for (int k = 0; k < m->n_kernels; k++)
    fprintf(out, "%s %s %s (%d entries, %zu bytes)", k ? "," : "", m->kernels[k].format, m->kernels[k].architecture,
            m->kernels[k].n_entries, m->kernels[k].code_size);
  fputc('\n', out);
}
