/* ferry inspect: a plan file in words (the compile summary and what the plan
 * carries), as JSON, as a Chrome trace of its predicted timeline, as an SVG
 * picture of it, or the kernels it carries. The times are re-simulated from
 * the plan's commands and checked against the ones it recorded. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "schedules/trace.h"
#include "schedules/plan.h"
#include "schedules/plan_json.h"
#include "schedules/simulate.h"
#include "schedules/summary.h"
#include "schedules/svg.h"

typedef struct inspect_args {
  const char *plan, *trace, *svg;
  bool json, kernels;
  int64_t steps, width;
} inspect_args_t;

static int usage(FILE *out) {
  fprintf(out,
          "usage: ferry inspect PLAN [--json] [--kernels] [--trace FILE] [--svg FILE]\n\n"
          "Shows what a plan file holds: model, target, budget, memory map, per-layer\n"
          "residency and bytes, predicted times (re-simulated and checked against the\n"
          "ones the plan recorded), the options it was compiled with, the fingerprints\n"
          "that bind it to its weights, and its kernels. Without a view option it prints\n"
          "that summary.\n\n"
          "options:\n"
          "  --json             the same content as JSON on stdout (docs/inspect.md)\n"
          "  --kernels          the kernels the plan carries: format, architecture, entries\n"
          "  --trace FILE       the predicted timeline as Chrome trace JSON (Perfetto,\n"
          "                     chrome://tracing): one track per queue, bytes per region\n"
          "  --svg FILE         the predicted timeline as a picture: prefill and the first\n"
          "                     decode steps, copy and compute lanes, VRAM in use\n"
          "  --steps N          steps of a repeated stage (decode) in --trace and --svg\n"
          "                     (default %d)\n"
          "  --width PX         width of the --svg picture (default 1400)\n"
          "  -h, --help         this help\n",
          FY_SVG_DEFAULT_STEPS);
  return out == stdout ? 0 : 2;
}

static const char *extra_value(const fy_plan_t *p, const char *key) {
  for (int i = 0; i < p->meta.n_extra; i++)
    if (!strcmp(p->meta.extra[i].key, key)) return p->meta.extra[i].value;
  return NULL;
}

static bool same_time(double a, double b) { return fabs(a - b) <= 1e-9 + 1e-6 * fabs(a); }

/* The times the plan recorded at compile time against the re-simulation: they
 * differ when the plan comes from a compiler whose simulator differed. */
static void print_recorded_check(const fy_schedule_t *s, const fy_sim_result_t *sim) {
  bool any = false, same = true;
  for (int i = 0; i < s->n_stages; i++) {
    const fy_stage_schedule_t *st = &s->stages[i];
    any |= st->predicted_total_seconds > 0;
    same &= same_time(st->predicted_first_step_seconds, sim->stages[i].first_step_seconds) &&
            same_time(st->predicted_step_seconds, sim->stages[i].step_seconds) &&
            same_time(st->predicted_total_seconds, sim->stages[i].total_seconds);
  }
  if (!any) {
    printf("  (the plan recorded no predicted times)\n");
  } else if (same) {
    printf("  (the times recorded in the plan agree)\n");
  } else {
    printf("  recorded in the plan at compile time (differs from the simulation above):\n");
    for (int i = 0; i < s->n_stages; i++)
      printf("  %-8s first step %10.3f ms  step %10.3f ms  total %10.3f ms\n", s->stages[i].name,
             s->stages[i].predicted_first_step_seconds * 1e3, s->stages[i].predicted_step_seconds * 1e3,
             s->stages[i].predicted_total_seconds * 1e3);
  }
}

static void print_kernels(const fy_plan_t *p) {
  const fy_plan_meta_t *m = &p->meta;
  if (!m->n_kernels) {
    printf("no kernels in this plan\n");
    return;
  }
  for (int k = 0; k < m->n_kernels; k++) {
    const fy_plan_kernel_t *kn = &m->kernels[k];
    printf("%s %s: %zu bytes of code, %d entr%s\n", kn->format, kn->architecture, kn->code_size, kn->n_entries,
           kn->n_entries == 1 ? "y" : "ies");
    for (int e = 0; e < kn->n_entries; e++) printf("  %s\n", kn->entries[e]);
  }
}

/* The spans of the first `steps` steps of each stage, on one clock: stages
 * run one after another, each from where the one before ended, as a process
 * replays them. */
static fy_status_t write_trace(const fy_plan_t *p, const fy_sim_result_t *sim, int64_t steps, const char *path) {
  const fy_schedule_t *s = p->schedule;
  fy_sim_span_t *spans = malloc(sizeof *spans * (size_t)(sim->n_spans ? sim->n_spans : 1));
  double *origin = calloc((size_t)sim->n_stages + 1, sizeof *origin);
  if (!spans || !origin) {
    free(spans);
    free(origin);
    return fy_status_make(FY_RESOURCE_EXHAUSTED, "trace %s: out of memory", path);
  }
  for (int i = 0; i < sim->n_stages; i++) origin[i + 1] = origin[i] + sim->stages[i].total_seconds;
  int64_t n = 0;
  for (int64_t i = 0; i < sim->n_spans; i++) {
    if (sim->spans[i].step >= steps) continue;
    spans[n] = sim->spans[i];
    spans[n].start += origin[spans[n].stage];
    spans[n].end += origin[spans[n].stage];
    n++;
  }
  char process[128];
  snprintf(process, sizeof process, "predicted %s", s->target.name);
  fy_status_t st = fy_trace_write_chrome(s, spans, n, process, path);
  free(spans);
  free(origin);
  return st;
}

/* The model folder's name, for the picture's title. */
static const char *model_name(const fy_plan_t *p, char *buf, size_t size) {
  const char *model = extra_value(p, "model");
  if (!model || !*model) return NULL;
  snprintf(buf, size, "%s", model);
  size_t n = strlen(buf);
  while (n > 1 && buf[n - 1] == '/') buf[--n] = '\0';
  const char *slash = strrchr(buf, '/');
  return slash && slash[1] ? slash + 1 : buf;
}

static fy_status_t write_svg(const fy_plan_t *p, const fy_sim_result_t *sim, const inspect_args_t *a) {
  char name[256];
  fy_svg_options_t o = {.model_name = model_name(p, name, sizeof name), .steps = a->steps, .width = (int)a->width};
  return fy_svg_write_timeline(p->schedule, sim, &o, a->svg);
}

static fy_status_t inspect(const inspect_args_t *a) {
  fy_plan_t *p = NULL;
  FY_TRY(fy_plan_load(a->plan, &p));
  /* One step more than shown: the copies that run ahead into the next step. */
  bool spans = a->trace || a->svg;
  fy_sim_options_t so = {.record_spans = spans, .max_traced_steps = a->steps + 1};
  fy_sim_result_t sim = {0};
  fy_status_t st = fy_simulate(p->schedule, &so, &sim);
  FILE *notes = a->json ? stderr : stdout;
  if (!st && a->json) {
    char *text = NULL;
    st = fy_plan_to_json(p, &sim, &text);
    if (!st) printf("%s\n", text);
    free(text);
  }
  if (!st && !a->json && !a->kernels && !spans) {
    printf("plan file %s\n", a->plan);
    fy_plan_print_meta(p, stdout);
    printf("\n");
    fy_schedule_print_summary(p->schedule, &sim, stdout);
    print_recorded_check(p->schedule, &sim);
  }
  if (!st && a->kernels && !a->json) print_kernels(p);
  if (!st && a->trace) {
    st = write_trace(p, &sim, a->steps, a->trace);
    if (!st) fprintf(notes, "wrote %s (open it in https://ui.perfetto.dev or chrome://tracing)\n", a->trace);
  }
  if (!st && a->svg) {
    st = write_svg(p, &sim, a);
    if (!st) fprintf(notes, "wrote %s\n", a->svg);
  }
  fy_sim_result_free(&sim);
  fy_plan_destroy(p);
  return st;
}

int fy_cmd_inspect(int argc, char **argv) {
  inspect_args_t a = {.steps = FY_SVG_DEFAULT_STEPS};
  static const struct option options[] = {
      {"json", no_argument, 0, 'j'},           {"kernels", no_argument, 0, 'k'},
      {"trace", required_argument, 0, 't'},    {"svg", required_argument, 0, 's'},
      {"steps", required_argument, 0, 'n'},    {"width", required_argument, 0, 'w'},
      {"help", no_argument, 0, 'h'},           {0, 0, 0, 0},
  };
  optind = 1;
  int opt;
  while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
    fy_status_t s = NULL;
    switch (opt) {
      case 'h': return usage(stdout);
      case 'j': a.json = true; break;
      case 'k': a.kernels = true; break;
      case 't': a.trace = optarg; break;
      case 's': a.svg = optarg; break;
      case 'n': s = fy_cli_parse_int("--steps", optarg, 1, 1000, &a.steps); break;
      case 'w': s = fy_cli_parse_int("--width", optarg, 400, 20000, &a.width); break;
      default: return usage(stderr);
    }
    if (s) return fy_cli_fail(s);
  }
  if (optind != argc - 1) return fy_cli_usage_error("inspect", "expected one PLAN file");
  a.plan = argv[optind];
  fy_status_t s = inspect(&a);
  return s ? fy_cli_fail(s) : 0;
}
