/* Writing a compiled schedule as a plan file, with what binds it to its
 * weights (fingerprints of the weight files and of config.json) and the
 * options it was compiled with. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/compile_args.h"
#include "codegen/cuda.h"
#include "codegen/spirv.h"
#include "schedules/plan.h"

/* The CUDA kernels a plan carries: a cubin per architecture (--arch, or the
 * target's sm_XX) and PTX for newer ones. None for other targets unless
 * --arch asks. */
static fy_status_t compile_cuda_kernels(const fy_compile_args_t *a, const fy_schedule_t *s, fy_cuda_binaries_t *out,
                                        fy_plan_kernel_t **out_kernels, int *out_count) {
  *out_kernels = NULL;
  *out_count = 0;
  bool cuda_target = !strncmp(s->target.code_target, "sm_", 3);
  if (a->no_kernels || (!a->arch && !cuda_target)) return NULL;
  fy_cuda_arch_t archs[16];
  int n = 0;
  FY_TRY(fy_cuda_parse_archs(a->arch ? a->arch : s->target.code_target, archs, 16, &n));
  const char *names[16];
  for (int i = 0; i < n; i++) names[i] = archs[i].name;
  FY_TRY(fy_status_annotate(fy_cuda_compile_graph(s->graph, names, n, out), "CUDA kernels"));
  fy_plan_kernel_t *k = calloc((size_t)out->n_items + 1, sizeof *k);
  if (!k) {
    fy_cuda_binaries_free(out);
    return fy_status_make(FY_RESOURCE_EXHAUSTED, "out of memory");
  }
  for (int i = 0; i < out->n_items; i++) {
    const fy_cuda_binary_t *b = &out->items[i];
    k[i] = (fy_plan_kernel_t){b->format, b->architecture, b->code, b->code_size, b->entries, b->n_entries};
  }
  *out_kernels = k;
  *out_count = out->n_items;
  return NULL;
}

/* The SPIR-V kernels a plan for a Vulkan target carries: one validated
 * module per distinct kernel, packed as one table entry. */
static fy_status_t compile_spirv_kernels(const fy_compile_args_t *a, const fy_schedule_t *s, fy_spirv_packed_t *out,
                                         bool *out_present) {
  *out_present = false;
  if (a->no_kernels || strcmp(s->target.code_target, "spirv")) return NULL;
  fy_spirv_program_t *program;
  FY_TRY(fy_status_annotate(fy_spirv_compile_graph(s->graph, &program), "SPIR-V kernels"));
  fy_status_t st = fy_spirv_pack(program, out);
  fy_spirv_program_destroy(program);
  *out_present = !st;
  return st;
}

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
  fy_cuda_binaries_t cuda = {0};
  fy_plan_kernel_t *kernels = NULL;
  if (!st) st = compile_cuda_kernels(a, s, &cuda, &kernels, &meta.n_kernels);
  fy_spirv_packed_t spirv = {0};
  bool has_spirv = false;
  if (!st) st = compile_spirv_kernels(a, s, &spirv, &has_spirv);
  fy_plan_kernel_t spirv_kernel = {FY_SPIRV_FORMAT, FY_SPIRV_ARCHITECTURE, spirv.code, spirv.code_size,
                                   (const char *const *)spirv.entries, spirv.n_entries};
  meta.kernels = has_spirv ? &spirv_kernel : kernels;
  if (has_spirv) meta.n_kernels = 1;
  if (!st) st = fy_plan_write(path, s, &meta);
  if (kernels) fy_cuda_binaries_free(&cuda);
  if (has_spirv) fy_spirv_packed_free(&spirv);
  free(kernels);
  free(prints);
  return st;
}
