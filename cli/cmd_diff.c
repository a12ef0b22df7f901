/* ferry diff: what changed between two plans, the tool for tuning a budget,
 * a prefetch depth or a policy: settings, memory map, the layers whose
 * residency or placement changed, predicted times side by side with their
 * ratio, and the options they were compiled with. Both plans are
 * re-simulated, so the times compare on one simulator. */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "schedules/plan.h"
#include "schedules/simulate.h"
#include "schedules/summary.h"

typedef struct side {
  const char *path;
  fy_plan_t *plan;
  fy_sim_result_t sim;
} side_t;

typedef struct diff {
  side_t a, b;
  bool quiet;
  bool differ;
} diff_t;

static int usage(FILE *out) {
  fprintf(out,
          "usage: ferry diff A.plan B.plan [--quiet]\n\n"
          "Reports what changed from plan A to plan B: target, budget, policy, prefetch\n"
          "and slots; the memory map; the layers whose resident and streamed bytes or\n"
          "placement differ (with totals); predicted times per stage and per request\n"
          "with the ratio B/A (both plans re-simulated); and the compile options.\n"
          "Lines that differ start with '*'. Exits 0: it is a report.\n\n"
          "options:\n"
          "  -q, --quiet   print nothing; exit 1 when the plans differ, 0 when not\n"
          "  -h, --help    this help\n");
  return out == stdout ? 0 : 2;
}

/* Bytes with three or four significant digits, so that small plans differ visibly too. */
static const char *bytes_str(uint64_t b, char *buf, size_t size) {
  if (b >= (1ull << 30))
    snprintf(buf, size, "%.2f GiB", b / 1073741824.0);
  else if (b >= (1ull << 20))
    snprintf(buf, size, "%.1f MiB", b / 1048576.0);
  else if (b >= 1024)
    snprintf(buf, size, "%.1f KiB", b / 1024.0);
  else
    snprintf(buf, size, "%" PRIu64 " B", b);
  return buf;
}

/* One setting: marked when the two texts differ. */
static void setting(diff_t *d, const char *name, const char *a, const char *b) {
  bool changed = strcmp(a, b) != 0;
  d->differ |= changed;
  if (!d->quiet) printf("%c %-20s %-30s %s\n", changed ? '*' : ' ', name, a, b);
}

static void setting_bytes(diff_t *d, const char *name, uint64_t a, uint64_t b) {
  char ta[64], tb[64];
  bytes_str(a, ta, sizeof ta);
  bytes_str(b, tb, sizeof tb);
  if (a != b && !strcmp(ta, tb)) snprintf(tb + strlen(tb), sizeof tb - strlen(tb), " (%+" PRId64 " B)", (int64_t)(b - a));
  setting(d, name, ta, tb);
}

static void settings(diff_t *d) {
  const fy_plan_t *pa = d->a.plan, *pb = d->b.plan;
  const fy_schedule_t *a = pa->schedule, *b = pb->schedule;
  const fy_graph_t *ga = pa->graph, *gb = pb->graph;
  char ta[128], tb[128];
  if (!d->quiet) printf("  %-20s %-30s %s\n", "", "A", "B");
  snprintf(ta, sizeof ta, "%s, %d layers", ga->config.architecture, ga->n_layers);
  snprintf(tb, sizeof tb, "%s, %d layers", gb->config.architecture, gb->n_layers);
  setting(d, "model", ta, tb);
  setting_bytes(d, "weights", fy_graph_weight_bytes(ga, -2), fy_graph_weight_bytes(gb, -2));
  setting(d, "target", a->target.name, b->target.name);
  setting_bytes(d, "VRAM", a->target.vram_bytes, b->target.vram_bytes);
  snprintf(ta, sizeof ta, "%.1f GB/s", a->target.h2d_pinned_gbps);
  snprintf(tb, sizeof tb, "%.1f GB/s", b->target.h2d_pinned_gbps);
  setting(d, "host-to-device", ta, tb);
  setting_bytes(d, "budget", a->budget, b->budget);
  setting_bytes(d, "device bytes", a->device_bytes, b->device_bytes);
  setting(d, "policy", fy_policy_name(a->policy), fy_policy_name(b->policy));
  snprintf(ta, sizeof ta, "%d", a->prefetch);
  snprintf(tb, sizeof tb, "%d", b->prefetch);
  setting(d, "prefetch", ta, tb);
  char sa[32], sb[32];
  snprintf(ta, sizeof ta, "%d x %s", a->n_slots, bytes_str(a->slot_bytes, sa, sizeof sa));
  snprintf(tb, sizeof tb, "%d x %s", b->n_slots, bytes_str(b->slot_bytes, sb, sizeof sb));
  setting(d, "slots", ta, tb);
  for (int r = 0; r < FY_REGION_COUNT; r++) {
    char name[32];
    snprintf(name, sizeof name, "region %s", fy_region_name((fy_region_kind_t)r));
    setting_bytes(d, name, a->regions[r].bytes, b->regions[r].bytes);
  }
  setting_bytes(d, "peak slots", d->a.sim.peak_bytes[FY_REGION_SLOTS], d->b.sim.peak_bytes[FY_REGION_SLOTS]);
}

/* The schedule stage of s named like stage i of the other plan, or -1. */
static int same_stage(const fy_schedule_t *s, const char *name) {
  for (int i = 0; i < s->n_stages; i++)
    if (!strcmp(s->stages[i].name, name)) return i;
  return -1;
}

/* One layer's placement in both plans: "resident", "streamed -> host", ... per request stage. */
static bool layer_row(const diff_t *d, int l, char *out, size_t size) {
  const fy_schedule_t *a = d->a.plan->schedule, *b = d->b.plan->schedule;
  bool in_a = l < a->graph->n_layers, in_b = l < b->graph->n_layers;
  uint64_t ra = 0, sa = 0, rb = 0, sb = 0;
  if (in_a) fy_schedule_layer_bytes(a, l, &ra, &sa);
  if (in_b) fy_schedule_layer_bytes(b, l, &rb, &sb);
  bool changed = !in_a || !in_b || ra != rb || sa != sb;
  char t[4][32] = {"-", "-", "-", "-"};
  if (in_a) bytes_str(ra, t[0], 32), bytes_str(sa, t[2], 32);
  if (in_b) bytes_str(rb, t[1], 32), bytes_str(sb, t[3], 32);
  int n = snprintf(out, size, "%11s %11s %11s %11s", t[0], t[1], t[2], t[3]);
  for (int i = 0; i < a->n_stages && n < (int)size; i++) {
    if (a->stages[i].graph_stage < 0) continue;
    int j = same_stage(b, a->stages[i].name);
    double seconds;
    const char *wa = in_a ? fy_schedule_layer_where(a, i, l, &seconds) : "-";
    const char *wb = in_b && j >= 0 ? fy_schedule_layer_where(b, j, l, &seconds) : "-";
    changed |= strcmp(wa, wb) != 0;
    char where[40];
    if (strcmp(wa, wb))
      snprintf(where, sizeof where, "%s -> %s", wa, wb);
    else
      snprintf(where, sizeof where, "%s", wa);
    n += snprintf(out + n, size - (size_t)n, "  %s", where);
    if (i + 1 < a->n_stages) n += snprintf(out + n, size - (size_t)n, "%*s", 22 - (int)strlen(where), "");
  }
  return changed;
}

static void layers(diff_t *d) {
  const fy_schedule_t *a = d->a.plan->schedule, *b = d->b.plan->schedule;
  int n = a->graph->n_layers > b->graph->n_layers ? a->graph->n_layers : b->graph->n_layers;
  int n_changed = 0;
  char row[512];
  for (int l = -1; l < n; l++) n_changed += layer_row(d, l, row, sizeof row);
  d->differ |= n_changed > 0;
  if (d->quiet) return;
  printf("\nlayers: %d of %d rows differ (%d layers, and the embedding and head)\n", n_changed, n + 1, n);
  if (!n_changed) return;
  printf("  %-20s %11s %11s %11s %11s", "layer", "resident A", "resident B", "streamed A", "streamed B");
  for (int i = 0; i < a->n_stages; i++)
    if (a->stages[i].graph_stage >= 0) printf(i + 1 < a->n_stages ? "  %-22s" : "  %s", a->stages[i].name);
  printf("\n");
  for (int l = -1; l < n; l++) {
    if (!layer_row(d, l, row, sizeof row)) continue;
    const fy_graph_t *g = l < a->graph->n_layers ? a->graph : b->graph;
    printf("* %-20s %s\n", l < 0 ? "(embedding, head)" : g->layers[l].name, row);
  }
  uint64_t ra = 0, sa = 0, rb = 0, sb = 0;
  for (int l = -1; l < n; l++) {
    uint64_t r, s;
    if (l < a->graph->n_layers) fy_schedule_layer_bytes(a, l, &r, &s), ra += r, sa += s;
    if (l < b->graph->n_layers) fy_schedule_layer_bytes(b, l, &r, &s), rb += r, sb += s;
  }
  char t[4][32];
  printf("  %-20s %11s %11s %11s %11s\n", "total", bytes_str(ra, t[0], 32), bytes_str(rb, t[1], 32),
         bytes_str(sa, t[2], 32), bytes_str(sb, t[3], 32));
}

static bool same_number(double a, double b) { return fabs(a - b) <= 1e-12 + 1e-9 * fabs(a); }

static void time_row(diff_t *d, const char *name, double a, double b, double scale, const char *unit) {
  bool changed = !same_number(a, b);
  d->differ |= changed;
  if (d->quiet) return;
  printf("%c %-26s %14.3f %14.3f", changed ? '*' : ' ', name, a * scale, b * scale);
  if (a > 0)
    printf(" %9.3f", b / a);
  else
    printf(" %9s", "-");
  printf("  %s\n", unit);
}

static void times(diff_t *d) {
  const fy_schedule_t *a = d->a.plan->schedule, *b = d->b.plan->schedule;
  const fy_sim_result_t *sa = &d->a.sim, *sb = &d->b.sim;
  if (!d->quiet) printf("\npredicted (both re-simulated)\n  %-26s %14s %14s %9s\n", "", "A", "B", "B/A");
  for (int i = 0; i < a->n_stages; i++) {
    int j = same_stage(b, a->stages[i].name);
    if (j < 0) {
      if (!d->quiet) printf("* stage %s: only in A\n", a->stages[i].name);
      d->differ = true;
      continue;
    }
    const fy_sim_stage_t *x = &sa->stages[i], *y = &sb->stages[j];
    char name[64];
    const char *stage = a->stages[i].name;
    if (a->stages[i].repeat > 1 || b->stages[j].repeat > 1) {
      snprintf(name, sizeof name, "%s first step", stage);
      time_row(d, name, x->first_step_seconds, y->first_step_seconds, 1e3, "ms");
      snprintf(name, sizeof name, "%s step", stage);
      time_row(d, name, x->step_seconds, y->step_seconds, 1e3, "ms");
    }
    snprintf(name, sizeof name, "%s total", stage);
    time_row(d, name, x->total_seconds, y->total_seconds, 1e3, "ms");
    snprintf(name, sizeof name, "%s compute waited", stage);
    time_row(d, name, x->compute_wait_seconds, y->compute_wait_seconds, 1e3, "ms");
    snprintf(name, sizeof name, "%s copied", stage);
    time_row(d, name, (double)x->copied_bytes, (double)y->copied_bytes, 1.0 / 1048576.0, "MiB");
  }
  for (int j = 0; j < b->n_stages; j++)
    if (same_stage(a, b->stages[j].name) < 0) {
      if (!d->quiet) printf("* stage %s: only in B\n", b->stages[j].name);
      d->differ = true;
    }
  time_row(d, "request", sa->request_seconds, sb->request_seconds, 1e3, "ms");
  time_row(d, "bus busy", sa->bus_busy_fraction, sb->bus_busy_fraction, 100, "%");
}

static const char *extra_value(const fy_plan_t *p, const char *key) {
  for (int i = 0; i < p->meta.n_extra; i++)
    if (!strcmp(p->meta.extra[i].key, key)) return p->meta.extra[i].value;
  return NULL;
}

static bool same_fingerprints(const fy_plan_t *a, const fy_plan_t *b) {
  if (a->graph->n_files != b->graph->n_files ||
      memcmp(&a->meta.config_fingerprint, &b->meta.config_fingerprint, sizeof a->meta.config_fingerprint))
    return false;
  for (int f = 0; f < a->graph->n_files; f++) {
    bool recorded = a->meta.file_fingerprints && b->meta.file_fingerprints;
    if (strcmp(a->graph->files[f].path, b->graph->files[f].path) ||
        (recorded && memcmp(&a->meta.file_fingerprints[f], &b->meta.file_fingerprints[f], sizeof(fy_file_fingerprint_t))))
      return false;
  }
  return true;
}

static void options(diff_t *d) {
  const fy_plan_t *a = d->a.plan, *b = d->b.plan;
  if (!d->quiet) printf("\ncompiled with\n");
  setting(d, "compiler", a->compiler_version, b->compiler_version);
  setting(d, "--policy", fy_policy_name(a->meta.options.policy), fy_policy_name(b->meta.options.policy));
  char ta[64] = "(default)", tb[64] = "(default)";
  if (a->meta.options.prefetch >= 0) snprintf(ta, sizeof ta, "%d", a->meta.options.prefetch);
  if (b->meta.options.prefetch >= 0) snprintf(tb, sizeof tb, "%d", b->meta.options.prefetch);
  setting(d, "--prefetch", ta, tb);
  snprintf(ta, sizeof ta, "(default)");
  snprintf(tb, sizeof tb, "(default)");
  if (a->meta.options.budget) snprintf(ta, sizeof ta, "%" PRIu64, a->meta.options.budget);
  if (b->meta.options.budget) snprintf(tb, sizeof tb, "%" PRIu64, b->meta.options.budget);
  setting(d, "--budget", ta, tb);
  /* The free-form options of either plan, each once. */
  for (int side = 0; side < 2; side++) {
    const fy_plan_t *p = side ? b : a, *other = side ? a : b;
    for (int i = 0; i < p->meta.n_extra; i++) {
      const char *key = p->meta.extra[i].key;
      if (side && extra_value(other, key)) continue;
      const char *va = extra_value(a, key), *vb = extra_value(b, key);
      setting(d, key, va ? va : "(none)", vb ? vb : "(none)");
    }
  }
  bool same = same_fingerprints(a, b);
  d->differ |= !same;
  if (!d->quiet)
    printf("%c %-20s %s\n", same ? ' ' : '*', "weights",
           same ? "the same files and fingerprints" : "other files, or other fingerprints");
}

static fy_status_t load(side_t *side) {
  FY_TRY(fy_plan_load(side->path, &side->plan));
  return fy_simulate(side->plan->schedule, NULL, &side->sim);
}

int fy_cmd_diff(int argc, char **argv) {
  diff_t d = {0};
  static const struct option opts[] = {
      {"quiet", no_argument, 0, 'q'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
  optind = 1;
  int opt;
  while ((opt = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
    if (opt == 'h') return usage(stdout);
    if (opt != 'q') return usage(stderr);
    d.quiet = true;
  }
  if (optind != argc - 2) return fy_cli_usage_error("diff", "expected two PLAN files");
  d.a.path = argv[optind];
  d.b.path = argv[optind + 1];
  fy_status_t s = load(&d.a);
  if (!s) s = load(&d.b);
  if (!s) {
    if (!d.quiet) printf("A  %s\nB  %s\n\n", d.a.path, d.b.path);
    settings(&d);
    layers(&d);
    times(&d);
    options(&d);
    if (!d.quiet) printf("\n%s\n", d.differ ? "the plans differ (lines marked *)" : "no differences");
  }
  for (int i = 0; i < 2; i++) {
    side_t *side = i ? &d.b : &d.a;
    fy_sim_result_free(&side->sim);
    fy_plan_destroy(side->plan);
  }
  if (s) return fy_cli_fail(s);
  return d.quiet && d.differ ? 1 : 0;
}
