/* On a CUDA GPU (ctest label "gpu"). Without a driver or a device it prints
 * "SKIP: no CUDA device" and passes.
 *   (a) every distinct kernel of the tiny preset (bf16, f16, f32 weights; q/k/v bias) and of
 *       the odd shapes, run on the GPU, agrees with fy_cpu_run_node within the tolerances of
 *       tests/cuda_kernel_check.h (full and partial launches, pos 0 and > 0, in place), and
 *       gives the same bits with 16-byte aligned and unaligned weights;
 *   (b) the tiny model replayed by the cuda backend, prefill + decode, under every policy and
 *       budgets from the smallest accepted to everything-fits, agrees with the reference
 *       interpreter: max|cuda - cpu| <= 1e-4 max|logit| + 1e-5 per step;
 *   (c) on CUDA, every streamed run (poisoned) equals the everything-fits run bit for bit;
 *   (d) a second sequence on the same runtime, whose chunks replay the CUDA graphs built during the
 *       first, gives the same bits. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/cuda.h"
#include "codegen/kernel_name.h"
#include "codegen/reference.h"
#include "cuda_kernel_check.h"
#include "ferry.h"
#include "frontend/frontend.h"
#include "frontend/synth.h"
#include "passes/compile.h"
#include "runtime/cuda_driver.h"
#include "schedules/schedule.h"
#include "support/file.h"
#include "tests/check.h"
#include "tests/compiled.h"

static const char *tmp_dir(void) {
  const char *t = getenv("FERRY_TMP");
  return t && *t ? t : "/tmp/ferry_test_cuda_gpu";
}

/* ---- (a) kernels on the GPU ---- */

typedef struct {
  fy_cuda_driver_t *d;
  fy_cu_device_t dev;
  fy_cu_context_t ctx;
  fy_cu_module_t module;
  int major, minor;
} gpu_t;

static fy_status_t gpu_module(gpu_t *gpu, const fy_graph_t *g) {
  fy_cuda_driver_t *d = gpu->d;
  if (gpu->module) d->module_unload(gpu->module), gpu->module = NULL;
  int supported[64], n = 0, best = -1, cc = gpu->major * 10 + gpu->minor;
  FY_TRY(fy_cuda_supported_archs(supported, 64, &n));
  for (int i = 0; i < n; i++)
    if (supported[i] <= cc) best = supported[i];
  if (best < 0) return fy_status_make(FY_UNAVAILABLE, "NVRTC cannot compile for sm_%d", cc);
  char arch[32];
  snprintf(arch, sizeof arch, "%s_%d", best == cc ? "sm" : "compute", best);
  char *src = NULL;
  uint8_t *code = NULL;
  size_t size = 0;
  FY_TRY(fy_cuda_source(g, -1, &src));
  fy_status_t s = fy_cuda_compile_source(src, arch, &code, &size);
  free(src);
  if (!s) s = fy_cuda_check(d, d->module_load_data(&gpu->module, code), "cuModuleLoadData");
  free(code);
  return s;
}

static fy_status_t gpu_run(void *ctx, const fy_graph_t *g, int node, void **args, const size_t *sizes, int n_args,
                           int64_t n, int64_t pos) {
  gpu_t *gpu = ctx;
  fy_cuda_driver_t *d = gpu->d;
  char name[FY_KERNEL_NAME_MAX];
  fy_kernel_name(g, node, name, sizeof name);
  fy_cu_function_t fn;
  FY_TRY(fy_cuda_check(d, d->module_get_function(&fn, gpu->module, name), name));
  fy_cuda_launch_t l;
  FY_TRY(fy_cuda_launch_dims(g, node, n, &l));
  fy_cu_deviceptr_t base[8] = {0}, ptr[8] = {0};
  fy_status_t s = NULL;
  for (int k = 0; !s && k < n_args; k++) {
    int same = -1;
    for (int j = 0; j < k; j++)
      if (args[j] == args[k]) same = j;
    if (same >= 0) {
      ptr[k] = ptr[same];
      continue;
    }
    /* The device copy keeps the host buffer's offset from 256 bytes: misaligned weights stay misaligned. */
    s = fy_cuda_check(d, d->mem_alloc(&base[k], sizes[k] + 256), "cuMemAlloc");
    ptr[k] = base[k] + ((uintptr_t)args[k] & 255);
    if (!s) s = fy_cuda_check(d, d->memcpy_htod_async(ptr[k], args[k], sizes[k], NULL), "cuMemcpyHtoDAsync");
  }
  long long nn = n, pp = pos;
  void *params[10];
  for (int k = 0; k < n_args; k++) params[k] = &ptr[k];
  params[n_args] = &nn;
  params[n_args + 1] = &pp;
  if (!s)
    s = fy_cuda_check(d, d->launch_kernel(fn, l.grid[0], l.grid[1], l.grid[2], l.block[0], l.block[1], l.block[2],
                                          l.shared_bytes, NULL, params, NULL),
                      name);
  if (!s) s = fy_cuda_check(d, d->stream_synchronize(NULL), name);
  for (int k = 0; !s && k < n_args; k++)
    s = fy_cuda_check(d, d->memcpy_dtoh_async(args[k], ptr[k], sizes[k], NULL), "cuMemcpyDtoHAsync");
  if (!s) s = fy_cuda_check(d, d->stream_synchronize(NULL), "cuStreamSynchronize");
  for (int k = 0; k < n_args; k++)
    if (base[k]) d->mem_free(base[k]);
  return s;
}

static void check_kernels(gpu_t *gpu, const fy_graph_t *g, const char *tag) {
  if (!ok(gpu_module(gpu, g), tag)) return;
  kc_runner_t runner = {gpu, gpu_run};
  kc_seen_t seen = {.n = 0};
  double worst = 0;
  for (int i = 0; i < g->n_nodes; i++) {
    const fy_node_t *nd = &g->nodes[i];
    if (!kc_first_of_kernel(g, i, &seen)) continue;
    const char *name = seen.names[seen.n - 1];
    const fy_value_t *out = &g->values[nd->output];
    int64_t max_rows = nd->op == FY_OP_LAST_ROW ? g->values[nd->inputs[0]].shape[0] : out->shape[0];
    int64_t cap = g->context;
    kc_options_t cases[4] = {{.n = max_rows, .pos = 0, .seed = 1},
                             {.n = max_rows > 2 ? max_rows - 2 : 1, .pos = cap - max_rows, .seed = 2, .in_place = true},
                             {.n = 1, .pos = cap - 1, .seed = 3},
                             {.n = max_rows, .pos = 1, .seed = 4}};
    for (int c = 0; c < 4; c++) {
      if (cases[c].pos + cases[c].n > cap) cases[c].pos = cap - cases[c].n;
      char report[512];
      double r = kc_check_node(g, i, &cases[c], &runner, report, sizeof report);
      CHECK(r >= 0 && r <= 1, "%s: %s (n %lld, pos %lld): error %.3g of the tolerance: %s", tag, name,
            (long long)cases[c].n, (long long)cases[c].pos, r, report);
      if (r > worst) worst = r;
    }
    bool has_weight = false;
    for (int k = 0; k < nd->n_inputs; k++) has_weight |= g->values[nd->inputs[k]].kind == FY_VALUE_WEIGHT;
    void *a = malloc((size_t)out->nbytes), *b = malloc((size_t)out->nbytes);
    if (a && b && has_weight) {
      char report[512];
      kc_options_t o = {.n = max_rows, .seed = 5, .keep = a};
      double r1 = kc_check_node(g, i, &o, &runner, report, sizeof report);
      o.keep = b;
      o.misalign = fy_dtype_size(g->values[nd->inputs[1]].dtype) == 4 ? 4 : 2;
      double r2 = kc_check_node(g, i, &o, &runner, report, sizeof report);
      CHECK(r1 >= 0 && r2 >= 0 && !memcmp(a, b, (size_t)max_rows * ((size_t)out->nbytes / (size_t)out->shape[0])),
            "%s: %s: unaligned weights change the bits", tag, name);
    }
    free(a);
    free(b);
  }
  printf("%s: %d kernels on the GPU, worst error %.3g of the tolerance\n", tag, seen.n, worst);
}

static fy_graph_t *load_tiny(const char *tag, fy_dtype_t dtype, const char *arch, bool weights, int64_t prefill,
                             int64_t generate, int64_t context) {
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/%s", tmp_dir(), tag);
  fy_synth_options_t so = {.preset = "tiny", .architecture = arch, .seed = 11, .dtype = dtype, .shape_only = !weights};
  fy_load_options_t lo = {.prefill_tokens = prefill, .generate = generate, .context = context,
                          .shape_only = !weights};
  fy_graph_t *g = NULL;
  if (!ok(fy_synth_write(dir, &so), "synth") || !ok(fy_model_load(dir, &lo, &g), "load")) return NULL;
  return g;
}

/* ---- (b), (c), (d) whole-model runs ---- */

enum { PROMPT = 6, DECODE = 5, ROWS = 1 + DECODE };
static const int32_t prompt[PROMPT] = {1, 200, 37, 5, 255, 17};
static const int32_t follow[DECODE] = {0, 99, 128, 3, 42};

static fy_status_t compile(const fy_graph_t *g, fy_policy_t policy, uint64_t budget, fy_compile_t **out_c,
                           fy_schedule_t **out_s) {
  compiled_t x;
  FY_TRY(compile_for(g, "sm_86", policy, -1, budget, &x));
  *out_c = x.c;
  *out_s = x.s;
  return NULL;
}

/* Opens the plan on the cuda backend and runs the workload twice: the second sequence replays the
 * chunks' CUDA graphs built during the first, and must give the same bits. */
static fy_status_t run_plan(const fy_graph_t *g, const char *plan, float *logits) {
  fy_rt_options_t o = {.backend = "cuda", .poison = true};
  fy_rt_t *rt = NULL;
  FY_TRY(fy_rt_open(plan, &o, &rt));
  int64_t vocab = g->config.vocab;
  size_t n = (size_t)ROWS * (size_t)vocab;
  float *again = calloc(n, sizeof(float));
  fy_status_t st = again ? NULL : fy_status_make(FY_RESOURCE_EXHAUSTED, "out of memory");
  for (int round = 0; round < 2 && !st; round++) {
    float *out = round ? again : logits;
    st = fy_rt_prefill(rt, prompt, PROMPT, out);
    for (int j = 0; !st && j < DECODE; j++) st = fy_rt_decode(rt, follow[j], out + (j + 1) * vocab);
  }
  if (!st && memcmp(logits, again, n * sizeof(float)))
    st = fy_status_make(FY_INTERNAL, "a second sequence (replayed CUDA graphs) gives other logits");
  free(again);
  fy_rt_close(rt);
  return st;
}

static fy_status_t run_reference(const fy_graph_t *g, float *logits) {
  fy_reference_t *ref = NULL;
  FY_TRY(fy_reference_create(g, 0, &ref));
  int64_t vocab = g->config.vocab;
  fy_status_t st = fy_reference_prefill(ref, prompt, PROMPT, logits);
  for (int j = 0; !st && j < DECODE; j++) st = fy_reference_decode(ref, follow[j], logits + (j + 1) * vocab);
  fy_reference_destroy(ref);
  return st;
}

/* The plan's kernels: a cubin for this GPU (PTX where NVRTC does not know it), compiled once. */
static fy_status_t gpu_binaries(const gpu_t *gpu, const fy_graph_t *g, fy_cuda_binaries_t *out) {
  int supported[64], n = 0, best = -1, cc = gpu->major * 10 + gpu->minor;
  FY_TRY(fy_cuda_supported_archs(supported, 64, &n));
  for (int i = 0; i < n; i++)
    if (supported[i] <= cc) best = supported[i];
  char arch[32];
  snprintf(arch, sizeof arch, "sm_%d", best);
  const char *archs[] = {arch};
  return fy_cuda_compile_graph(g, archs, 1, out);
}

static void test_model(const gpu_t *gpu, fy_dtype_t dtype) {
  fy_graph_t *g = load_tiny(dtype == FY_DTYPE_BF16 ? "model-bf16" : "model-f16", dtype, NULL, true, PROMPT, DECODE,
                            PROMPT + DECODE);
  if (!g) return;
  if (!fy_rt_backend_find("cuda")) {
    CHECK(false, "the runtime does not list the cuda backend (runtime/backends.c)");
    fy_graph_destroy(g);
    return;
  }
  int64_t vocab = g->config.vocab;
  size_t n = (size_t)ROWS * (size_t)vocab;
  float *want = calloc(n, sizeof(float)), *fits = calloc(n, sizeof(float)), *got = calloc(n, sizeof(float));
  fy_cuda_binaries_t bins = {0};
  fy_plan_kernel_t kernels[2];
  fy_compile_t *c = NULL;
  fy_schedule_t *s = NULL;
  char plan[1024];
  snprintf(plan, sizeof plan, "%s/model.plan", tmp_dir());
  if (want && fits && got && ok(run_reference(g, want), "reference") && ok(gpu_binaries(gpu, g, &bins), "NVRTC") &&
      ok(compile(g, FY_POLICY_FERRY, 0, &c, &s), "compile everything-fits")) {
    for (int i = 0; i < bins.n_items && i < 2; i++)
      kernels[i] = (fy_plan_kernel_t){bins.items[i].format, bins.items[i].architecture, bins.items[i].code,
                                      bins.items[i].code_size, NULL, 0};
    uint64_t full = s->device_bytes;
    bool have_fits = ok(kc_write_plan(g, s, kernels, bins.n_items, plan), "write plan") &&
                     ok(run_plan(g, plan, fits), "everything fits");
    fy_schedule_destroy(s);
    fy_compile_destroy(c);
    double max_logit = 0, err = 0;
    for (size_t i = 0; i < n; i++) {
      max_logit = fmax(max_logit, fabs(want[i]));
      err = fmax(err, fabs((double)fits[i] - want[i]));
    }
    CHECK(have_fits && err <= 1e-4 * max_logit + 1e-5, "%s: cuda vs cpu: %.3g (max logit %.3g)", fy_dtype_name(dtype),
          err, max_logit);
    printf("%s: everything resident: max|cuda - cpu| = %.3g, max|logit| %.3g\n", fy_dtype_name(dtype), err,
           max_logit);
    int runs = 0, streamed = 0;
    for (int p = 0; have_fits && p < FY_POLICY_COUNT; p++)
      for (int i = 1; i <= 32; i += 5) {
        fy_status_t st = compile(g, (fy_policy_t)p, full / 32 * (uint64_t)i, &c, &s);
        if (st) { /* a budget this policy refuses */
          fy_status_free(st);
          continue;
        }
        char what[128];
        snprintf(what, sizeof what, "%s budget %d/32", fy_policy_name((fy_policy_t)p), i);
        bool streams = s->regions[FY_REGION_SLOTS].bytes > 0;
        if (ok(kc_write_plan(g, s, kernels, bins.n_items, plan), "write plan") && ok(run_plan(g, plan, got), what))
          CHECK(!memcmp(got, fits, n * sizeof(float)), "%s: differs from the everything-fits run on CUDA", what);
        runs++;
        streamed += streams;
        fy_schedule_destroy(s);
        fy_compile_destroy(c);
      }
    CHECK(runs >= 10 && streamed >= 5, "%d runs, %d streaming", runs, streamed);
    printf("%s: %d runs (%d streaming, poisoned) bit-identical to the everything-fits run\n", fy_dtype_name(dtype),
           runs, streamed);
  }
  fy_cuda_binaries_free(&bins);
  free(want);
  free(fits);
  free(got);
  fy_graph_destroy(g);
}

int main(void) {
  fy_mkdir_p(tmp_dir());
  gpu_t gpu = {0};
  fy_status_t s = fy_cuda_driver_open(NULL, &gpu.d);
  int count = 0;
  if (!s) s = fy_cuda_check(gpu.d, gpu.d->device_get_count(&count), "cuDeviceGetCount");
  if (s || count == 0) {
    printf("SKIP: no CUDA device (%s)\n", s ? fy_status_message(s) : "the driver sees none");
    fy_status_free(s);
    fy_cuda_driver_close(gpu.d);
    return 0;
  }
  fy_cuda_driver_t *d = gpu.d;
  bool up = ok(fy_cuda_check(d, d->device_get(&gpu.dev, 0), "cuDeviceGet"), "device") &&
            ok(fy_cuda_check(d, d->device_get_attribute(&gpu.major, FY_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                                                        gpu.dev), "attribute"), "major") &&
            ok(fy_cuda_check(d, d->device_get_attribute(&gpu.minor, FY_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                                                        gpu.dev), "attribute"), "minor") &&
            ok(fy_cuda_check(d, d->primary_ctx_retain(&gpu.ctx, gpu.dev), "cuDevicePrimaryCtxRetain"), "context") &&
            ok(fy_cuda_check(d, d->ctx_set_current(gpu.ctx), "cuCtxSetCurrent"), "context");
  char probe[1024];
  if (up && ok(fy_cuda_probe(probe, sizeof probe), "probe")) printf("%s", probe);
  if (up) {
    static const struct {
      const char *tag;
      fy_dtype_t dtype;
      const char *arch;
    } variants[] = {{"tiny-bf16", FY_DTYPE_BF16, NULL},
                    {"tiny-f16", FY_DTYPE_F16, NULL},
                    {"tiny-f32", FY_DTYPE_F32, NULL},
                    {"tiny-qwen2-bf16", FY_DTYPE_BF16, "Qwen2ForCausalLM"}};
    for (size_t v = 0; v < sizeof variants / sizeof *variants; v++) {
      fy_graph_t *g = load_tiny(variants[v].tag, variants[v].dtype, variants[v].arch, false, 6, 4, 12);
      if (g) check_kernels(&gpu, g, variants[v].tag);
      fy_graph_destroy(g);
    }
    fy_graph_t *g = load_tiny("tiny-long", FY_DTYPE_BF16, NULL, false, 3, 4, 1100);
    if (g) check_kernels(&gpu, g, "tiny-long-context");
    fy_graph_destroy(g);
    g = NULL;
    if (ok(kc_odd_graph(&g), "odd shapes")) check_kernels(&gpu, g, "odd-shapes");
    fy_graph_destroy(g);
    if (gpu.module) d->module_unload(gpu.module);
    test_model(&gpu, FY_DTYPE_BF16);
    test_model(&gpu, FY_DTYPE_F16);
  }
  if (gpu.ctx) d->primary_ctx_release(gpu.dev);
  fy_cuda_driver_close(d);
  return check_summary();
}
