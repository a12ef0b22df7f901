/* Writing a compiled schedule as a plan file, with what binds it to its
 * weights (fingerprints of the weight files and of config.json) and the
 * options it was compiled with. */
#include <stdio.h>
#include <stdlib.h>

#include "cli/compile_args.h"
#include "schedules/plan.h"

fy_status_t fy_cli_write_plan(const char *path, const fy_compile_args_t *a, const fy_schedule_t *s) {
  const fy_graph_t *g = s->graph;
  fy_file_fingerprint_t *prints = calloc((size_t)g->n_files + 1, sizeof *prints);
  if (!prints) return fy_status_make(FY_RESOURCE_EXHAUSTED, "out of memory");
  fy_status_t st = NULL;
  for (int f = 0; f < g->n_files && !st; f++) st = fy_fingerprint_file(g->files[f].path, &prints[f]);
  fy_plan_meta_t meta = {.compiler_version = FERRY_VERSION, .options = a->compile, .file_fingerprints = prints};
  char config[4096];
  snprintf(config, sizeof config, "%s/config.json", a->model);
  if (!st) st = fy_fingerprint_file(config, &meta.config_fingerprint);
  char context[32], generate[32], prompt[32];
  snprintf(context, sizeof context, "%lld", (long long)g->context);
  snprintf(generate, sizeof generate, "%lld", (long long)g->stages[g->n_stages - 1].repeat);
  snprintf(prompt, sizeof prompt, "%lld", (long long)g->stages[0].max_tokens);
  fy_plan_option_t extra[] = {{"model", a->model}, {"context", context}, {"generate", generate},
                              {"prompt_tokens", prompt}};
  meta.extra = extra;
  meta.n_extra = sizeof extra / sizeof *extra;
  if (!st) st = fy_plan_write(path, s, &meta);
  free(prints);
  return st;
}
