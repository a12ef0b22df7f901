/* CUDA code generation and the CUDA driver path, without a GPU:
 *   - kernel names: C identifiers, identical nodes share one, different signatures differ;
 *   - architecture lists parse, sort and refuse what is not an architecture;
 *   - the tiny preset's kernels compile with NVRTC for every supported architecture of
 *     75 80 86 89 90 100 120 (cubins are non-empty ELF files, PTX ends with its NUL) and the
 *     PTX assembles with ptxas for each of them; the small preset's compile for sm_86;
 *   - compile errors carry NVRTC's log, unsupported architectures name the supported ones;
 *   - every distinct kernel of tiny (bf16, f16, f32 weights; with q/k/v bias) run by the CPU
 *     emulator (tests/cuda_emulation.hpp) agrees with fy_cpu_run_node within the tolerances of
 *     tests/cuda_kernel_check.h, for full and partial launches at pos 0 and pos > 0, in place
 *     where allowed, and bit for bit whether weights are 16-byte aligned or not; attention
 *     over more than one key tile too;
 *   - without a driver, the driver loader, the probe and the backend say "libcuda.so.1 not
 *     found" (and the toolkit's stub library is recognised as no driver);
 *   - a plan's kernel tables are chosen by architecture as the backend will;
 *   - the cuda backend replays plans (every policy, streamed and not, host-run layers, poisoned)
 *     through a mock driver (tests/cuda_mock_driver.c) whose kernels are the CPU reference: the
 *     logits equal the reference interpreter's bit for bit, launch geometry and arguments are
 *     checked at every launch, and chunks become CUDA graphs built once, replayed and updated;
 *     a plan with kernels for another GPU only is refused naming both.
 * Skips (with a message) what this machine lacks: NVRTC, ptxas, a C++ compiler, and the mock
 * replay while runtime/backends.c does not list the cuda backend. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "codegen/cuda.h"
#include "codegen/kernel_name.h"
#include "codegen/reference.h"
#include "cuda_kernel_check.h"
#include "ferry.h"
#include "frontend/frontend.h"
#include "frontend/synth.h"
#include "passes/compile.h"
#include "runtime/cuda_driver.h"
#include "runtime/runtime.h"
#include "schedules/plan.h"
#include "schedules/schedule.h"
#include "support/file.h"
#include "tests/check.h"
#include "tests/compiled.h"

/* Expects a failure of code `code` whose message contains `needle`. */
static void expect_error(fy_status_t s, fy_code_t code, const char *needle, const char *what) {
  CHECK(s && fy_status_code(s) == code && strstr(fy_status_message(s), needle), "%s: expected %s with \"%s\", got %s%s",
        what, fy_code_name(code), needle, s ? fy_code_name(fy_status_code(s)) : "success", s ? fy_status_message(s) : "");
  fy_status_free(s);
}

static const char *tmp_dir(void) {
  const char *t = getenv("FERRY_TMP");
  return t && *t ? t : "/tmp/ferry_test_cuda_codegen";
}

static fy_graph_t *load_tiny(const char *name, fy_dtype_t dtype, const char *architecture, int64_t prefill,
                             int64_t context) {
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/%s", tmp_dir(), name);
  fy_synth_options_t so = {.preset = "tiny", .architecture = architecture, .seed = 3, .dtype = dtype,
                           .shape_only = true};
  if (!ok(fy_synth_write(dir, &so), "synth")) return NULL;
  fy_load_options_t lo = {.prefill_tokens = prefill, .generate = 4, .context = context, .shape_only = true};
  fy_graph_t *g = NULL;
  return ok(fy_model_load(dir, &lo, &g), "load") ? g : NULL;
}

static fy_graph_t *load_preset_shapes(const char *preset) {
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/%s-shapes", tmp_dir(), preset);
  fy_synth_options_t so = {.preset = preset, .seed = 3, .dtype = FY_DTYPE_BF16, .shape_only = true};
  if (!ok(fy_synth_write(dir, &so), "synth")) return NULL;
  fy_load_options_t lo = {.prefill_tokens = 64, .generate = 8, .shape_only = true};
  fy_graph_t *g = NULL;
  return ok(fy_model_load(dir, &lo, &g), "load") ? g : NULL;
}

/* ---- names ---- */

static void test_names(const fy_graph_t *g) {
  char a[FY_KERNEL_NAME_MAX], b[FY_KERNEL_NAME_MAX], sa[1024], sb[1024];
  for (int i = 0; i < g->n_nodes; i++) {
    size_t len = fy_kernel_name(g, i, a, sizeof a);
    CHECK(len > 3 && len < FY_KERNEL_NAME_MAX && strlen(a) == len, "node %d: name length %zu", i, len);
    for (size_t k = 0; k < len; k++)
      CHECK((a[k] >= 'a' && a[k] <= 'z') || (a[k] >= '0' && a[k] <= '9') || a[k] == '_' || (a[k] >= 'A' && a[k] <= 'Z'),
            "node %d: name %s is not an identifier", i, a);
    fy_kernel_signature(g, i, sa, sizeof sa);
    for (int j = 0; j < i; j++) {
      fy_kernel_name(g, j, b, sizeof b);
      fy_kernel_signature(g, j, sb, sizeof sb);
      CHECK(!strcmp(a, b) == !strcmp(sa, sb), "nodes %d and %d: names %s / %s for signatures %s / %s", j, i, b, a,
            sb, sa);
    }
  }
  /* The layers of tiny are identical: the first layer's kernels serve them all. */
  char **names = NULL;
  int n = 0;
  if (ok(fy_cuda_entries(g, &names, &n), "entries")) {
    CHECK(n > 8 && n < g->n_nodes / 2, "%d distinct kernels for %d nodes", n, g->n_nodes);
    fy_cuda_entries_free(names, n);
  }
  CHECK(fy_kernel_name(g, g->n_nodes, a, sizeof a) == 0 && a[0] == '\0', "a node out of range has no name");
  CHECK(fy_kernel_name(g, 0, NULL, 0) > 0, "the length comes back without a buffer");
}

/* ---- architectures ---- */

static void test_archs(void) {
  fy_cuda_arch_t a;
  CHECK(!fy_cuda_arch_parse("sm_86", &a) && !strcmp(a.name, "sm_86") && a.major == 8 && a.minor == 6, "sm_86");
  CHECK(!fy_cuda_arch_parse("120", &a) && !strcmp(a.name, "sm_120") && a.major == 12 && a.minor == 0, "120");
  CHECK(!fy_cuda_arch_parse("sm_90a", &a) && !strcmp(a.name, "sm_90a") && a.specific, "sm_90a");
  CHECK(!fy_cuda_arch_parse("compute_75", &a) && !strcmp(a.name, "sm_75"), "compute_75");
  expect_error(fy_cuda_arch_parse("sm_7", &a), FY_INVALID_ARGUMENT, "sm_7", "one digit");
  expect_error(fy_cuda_arch_parse("gfx90a", &a), FY_INVALID_ARGUMENT, "not a CUDA architecture", "gfx90a");
  fy_cuda_arch_t list[8];
  int n = 0;
  CHECK(!fy_cuda_parse_archs("sm_90,75,sm_86,sm_75", list, 8, &n) && n == 3 && !strcmp(list[0].name, "sm_75") &&
            !strcmp(list[1].name, "sm_86") && !strcmp(list[2].name, "sm_90"),
        "a list is sorted and deduplicated");
  expect_error(fy_cuda_parse_archs("sm_86,,sm_90", list, 8, &n), FY_INVALID_ARGUMENT, "empty", "empty item");
  expect_error(fy_cuda_parse_archs("75,80,86", list, 2, &n), FY_OUT_OF_RANGE, "more than 2", "too many");
}

/* ---- NVRTC ---- */

static bool run_quiet(const char *cmd) {
  int rc = system(cmd);
  return rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0;
}

static const char *ptxas_path(void) {
  static const char *path = "/usr/local/cuda/bin/ptxas";
  return access(path, X_OK) == 0 ? path : NULL;
}

static void test_compile_tiny(const fy_graph_t *g) {
  static const int wanted[] = {75, 80, 86, 89, 90, 100, 120};
  int supported[64], n_supported = 0;
  if (!ok(fy_cuda_supported_archs(supported, 64, &n_supported), "supported archs")) return;
  char arch_names[16][FY_CUDA_ARCH_MAX];
  const char *archs[16];
  int n = 0;
  for (size_t w = 0; w < sizeof wanted / sizeof *wanted; w++)
    for (int s = 0; s < n_supported; s++)
      if (supported[s] == wanted[w]) {
        snprintf(arch_names[n], sizeof arch_names[n], "sm_%d", wanted[w]);
        archs[n] = arch_names[n];
        n++;
      }
  CHECK(n >= 6, "NVRTC supports only %d of 75 80 86 89 90 100 120", n);
  fy_cuda_binaries_t b;
  if (!ok(fy_cuda_compile_graph(g, archs, n, &b), "compile tiny")) return;
  char **entries = NULL;
  int n_entries = 0;
  if (ok(fy_cuda_entries(g, &entries, &n_entries), "entries")) {
    CHECK(b.n_items == n + 1, "%d binaries for %d architectures", b.n_items, n);
    for (int i = 0; i < b.n_items; i++) {
      const fy_cuda_binary_t *it = &b.items[i];
      bool ptx = i == n;
      printf("tiny: %-5s %-10s %8zu bytes, %d kernels, %.2f s\n", it->format, it->architecture, it->code_size,
             it->n_entries, it->compile_seconds);
      CHECK(!strcmp(it->format, ptx ? "ptx" : "cubin"), "item %d is %s", i, it->format);
      CHECK(ptx ? !strcmp(it->architecture, "compute_75") : !strcmp(it->architecture, archs[i]), "item %d is for %s",
            i, it->architecture);
      CHECK(it->code_size > 4, "%s %s is empty", it->format, it->architecture);
      if (ptx)
        CHECK(it->code[it->code_size - 1] == '\0' && strstr((const char *)it->code, ".target sm_75"),
              "the PTX ends with its NUL and targets sm_75");
      else
        CHECK(!memcmp(it->code, "\x7f" "ELF", 4), "the %s cubin is an ELF file", it->architecture);
      CHECK(it->n_entries == n_entries, "%d entries, expected %d", it->n_entries, n_entries);
      for (int e = 0; e < it->n_entries && e < n_entries; e++) {
        CHECK(!strcmp(it->entries[e], entries[e]), "entry %d: %s", e, it->entries[e]);
        if (ptx) CHECK(strstr((const char *)it->code, it->entries[e]) != NULL, "the PTX has no %s", it->entries[e]);
      }
    }
    fy_cuda_entries_free(entries, n_entries);
  }
  /* The PTX is the forward-compatible copy: it must assemble for every architecture. */
  const char *ptxas = ptxas_path();
  if (!ptxas) {
    printf("SKIP: ptxas not found at /usr/local/cuda/bin/ptxas: PTX not assembled\n");
  } else {
    char path[1024];
    snprintf(path, sizeof path, "%s/tiny.ptx", tmp_dir());
    if (ok(fy_file_write_atomic_bytes(path, b.items[n].code, b.items[n].code_size - 1), "write ptx"))
      for (int i = 0; i < n; i++) {
        char cmd[2400];
        snprintf(cmd, sizeof cmd, "%s -arch=%s -o /dev/null %s", ptxas, archs[i], path);
        CHECK(run_quiet(cmd), "ptxas -arch=%s rejects the PTX", archs[i]);
      }
  }
  fy_cuda_binaries_free(&b);
}

static void test_compile_small(void) {
  fy_graph_t *g = load_preset_shapes("small");
  if (!g) return;
  const char *arch = "sm_86";
  fy_cuda_binaries_t b;
  if (ok(fy_cuda_compile_graph(g, &arch, 1, &b), "compile small")) {
    for (int i = 0; i < b.n_items; i++)
      printf("small: %-5s %-10s %8zu bytes, %d kernels, %.2f s\n", b.items[i].format, b.items[i].architecture,
             b.items[i].code_size, b.items[i].n_entries, b.items[i].compile_seconds);
    CHECK(b.n_items == 2 && !memcmp(b.items[0].code, "\x7f" "ELF", 4), "small: a cubin and a PTX");
    fy_cuda_binaries_free(&b);
  }
  fy_graph_destroy(g);
}

/* The odd shapes take the code paths the presets do not (partial chunks, no 16-byte loads). */
static void test_compile_odd(void) {
  fy_graph_t *g = NULL;
  if (!ok(kc_odd_graph(&g), "odd shapes")) return;
  const char *arch = "sm_75";
  fy_cuda_binaries_t b;
  if (ok(fy_cuda_compile_graph(g, &arch, 1, &b), "compile the odd shapes")) fy_cuda_binaries_free(&b);
  fy_graph_destroy(g);
}

static void test_compile_errors(const fy_graph_t *g) {
  const char *old = "sm_70";
  fy_cuda_binaries_t b;
  expect_error(fy_cuda_compile_graph(g, &old, 1, &b), FY_UNAVAILABLE, "sm_75", "sm_70 is refused, naming sm_75");
  uint8_t *code = NULL;
  size_t size = 0;
  expect_error(fy_cuda_compile_source("extern \"C\" __global__ void k() { undefined_thing(); }", "sm_86", &code, &size),
               FY_INVALID_ARGUMENT, "undefined_thing", "the NVRTC log reaches the message");
  expect_error(fy_cuda_compile_graph(g, NULL, 0, &b), FY_INVALID_ARGUMENT, "no architecture", "no architecture");
  fy_cuda_launch_t l;
  expect_error(fy_cuda_launch_dims(g, 0, 0, &l), FY_OUT_OF_RANGE, "0 rows", "a launch of 0 rows");
  char *src = NULL;
  char name[FY_KERNEL_NAME_MAX];
  fy_kernel_name(g, 1, name, sizeof name);
  if (ok(fy_cuda_source(g, 1, &src), "one kernel's source")) {
    int kernels = 0;
    for (const char *p = src; (p = strstr(p, "FY_KERNEL void")); p++) kernels++;
    CHECK(strstr(src, name) && kernels == 1, "the source of node 1 is one kernel, %s (%d kernels)", name, kernels);
    free(src);
  }
}

/* ---- the emulator ---- */

typedef struct {
  void *so;
  const fy_graph_t *g;
  int (*launch)(void *fn, int n_ptrs, void **ptrs, long long n, long long pos, const unsigned *grid,
                const unsigned *block, char *err, size_t errn);
} emu_t;

static fy_status_t emu_run(void *ctx, const fy_graph_t *g, int node, void **args, const size_t *sizes, int n_args,
                           int64_t n, int64_t pos) {
  emu_t *e = ctx;
  (void)sizes;
  char name[FY_KERNEL_NAME_MAX], err[256] = "";
  fy_kernel_name(g, node, name, sizeof name);
  void *fn = dlsym(e->so, name);
  if (!fn) return fy_status_make(FY_INTERNAL, "emulator: no kernel %s", name);
  fy_cuda_launch_t l;
  FY_TRY(fy_cuda_launch_dims(g, node, n, &l));
  if (e->launch(fn, n_args, args, n, pos, l.grid, l.block, err, sizeof err))
    return fy_status_make(FY_INTERNAL, "emulator: %s: %s", name, err);
  return NULL;
}

static bool emu_open(emu_t *e, const fy_graph_t *g, const char *tag) {
  memset(e, 0, sizeof *e);
  e->g = g;
  const char *src_dir = getenv("FERRY_SOURCE_DIR");
  char *src = NULL, cpp[1024], so[1024], cmd[4096];
  snprintf(cpp, sizeof cpp, "%s/emu_%s.cpp", tmp_dir(), tag);
  snprintf(so, sizeof so, "%s/emu_%s.so", tmp_dir(), tag);
  if (!ok(fy_cuda_source(g, -1, &src), "source")) return false;
  FILE *f = fopen(cpp, "w");
  if (f) {
    fprintf(f, "#include \"%s/tests/cuda_emulation.hpp\"\n%s", src_dir ? src_dir : ".", src);
    fclose(f);
  }
  free(src);
  CHECK(f != NULL, "cannot write %s", cpp);
  if (!f) return false;
  snprintf(cmd, sizeof cmd, "c++ -std=c++17 -O1 -ffp-contract=off -fPIC -shared -w -o %s %s", so, cpp);
  if (!run_quiet(cmd)) {
    CHECK(false, "the emulated kernels do not compile: %s", cmd);
    return false;
  }
  e->so = dlopen(so, RTLD_NOW | RTLD_LOCAL);
  CHECK(e->so != NULL, "dlopen %s: %s", so, dlerror());
  if (!e->so) return false;
  *(void **)&e->launch = dlsym(e->so, "fyemu_launch");
  return e->launch != NULL;
}

static void emu_close(emu_t *e) {
  if (!e->so) return;
  void (*release)(void);
  *(void **)&release = dlsym(e->so, "fyemu_release");
  if (release) release();
  dlclose(e->so);
}

/* Every distinct kernel of g against the CPU reference. */
static void check_all_kernels(const fy_graph_t *g, const char *tag, bool attention_only) {
  emu_t e;
  if (!emu_open(&e, g, tag)) {
    emu_close(&e);
    return;
  }
  kc_runner_t runner = {&e, emu_run};
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  kc_seen_t seen = {.n = 0};
  int checked = 0;
  double worst = 0.0;
  for (int i = 0; i < g->n_nodes; i++) {
    const fy_node_t *nd = &g->nodes[i];
    if (attention_only && nd->op != FY_OP_ATTENTION) continue;
    if (!kc_first_of_kernel(g, i, &seen)) continue;
    const char *name = seen.names[seen.n - 1];
    const fy_value_t *out = &g->values[nd->output];
    int64_t max_rows = nd->op == FY_OP_LAST_ROW ? g->values[nd->inputs[0]].shape[0] : out->shape[0];
    int64_t capacity = g->context;
    /* Full and partial launches, at the start of a sequence and further on. */
    kc_options_t cases[4] = {
        {.n = max_rows, .pos = 0, .seed = 1},
        {.n = max_rows > 2 ? max_rows - 2 : 1, .pos = capacity - max_rows, .seed = 2, .in_place = true},
        {.n = 1, .pos = capacity - 1, .seed = 3},
        {.n = max_rows, .pos = 1, .seed = 4},
    };
    for (int c = 0; c < 4; c++) {
      if (cases[c].pos + cases[c].n > capacity) cases[c].pos = capacity - cases[c].n;
      char report[512];
      double r = kc_check_node(g, i, &cases[c], &runner, report, sizeof report);
      CHECK(r >= 0.0 && r <= 1.0, "%s: %s (node %s, n %lld, pos %lld): error %.3g of the tolerance%s%s", tag, name,
            nd->name, (long long)cases[c].n, (long long)cases[c].pos, r, report[0] ? ": " : "", report);
      if (r > worst) worst = r;
      checked++;
    }
    /* Weights at any address give the same bits. */
    size_t out_bytes = (size_t)out->nbytes;
    void *aligned = malloc(out_bytes), *shifted = malloc(out_bytes);
    bool has_weight = false;
    for (int k = 0; k < nd->n_inputs; k++) has_weight |= g->values[nd->inputs[k]].kind == FY_VALUE_WEIGHT;
    if (aligned && shifted && has_weight) {
      char report[512];
      kc_options_t o = {.n = max_rows, .pos = 0, .seed = 5, .keep = aligned};
      double r1 = kc_check_node(g, i, &o, &runner, report, sizeof report);
      o.keep = shifted;
      o.misalign = fy_dtype_size(g->values[nd->inputs[1]].dtype) == 4 ? 4 : 2;
      double r2 = kc_check_node(g, i, &o, &runner, report, sizeof report);
      CHECK(r1 >= 0 && r2 >= 0 && !memcmp(aligned, shifted, (size_t)max_rows * (out_bytes / (size_t)out->shape[0])),
            "%s: %s: results differ when the weights are not 16-byte aligned", tag, name);
    }
    free(aligned);
    free(shifted);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  printf("%s: %d kernels, %d launches emulated in %.1f s, worst error %.3g of the tolerance\n", tag, seen.n, checked,
         (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec), worst);
  emu_close(&e);
}

static bool have_cxx(void) { return run_quiet("c++ --version > /dev/null 2>&1"); }

/* ---- the driver ---- */

/* A schedule of g for an sm_86 target, all resident. */
static fy_status_t schedule_for(const fy_graph_t *g, fy_compile_t **out_c, fy_schedule_t **out_s) {
  fy_target_t t = {.name = "test", .description = "test target", .sources = "chosen for tests",
                   .code_target = "sm_86", .vram_bytes = 1ull << 34, .host_ram_bytes = 1ull << 34,
                   .h2d_pinned_gbps = 8, .h2d_pageable_gbps = 4, .d2h_gbps = 8, .disk_read_gbps = 2,
                   .fp16_tflops = 1, .bf16_tflops = 0.5, .fp32_tflops = 0.3, .mem_bw_gbps = 50,
                   .launch_overhead_us = 5, .cpu_gflops = 0.5, .host_mem_bw_gbps = 0.5};
  fy_compile_options_t o = {.policy = FY_POLICY_FERRY, .prefetch = -1};
  FY_TRY(fy_compile_run(g, &t, &o, out_c));
  fy_status_t s = fy_schedule_build(*out_c, out_s);
  if (s) fy_compile_destroy(*out_c);
  return s;
}

static void test_driver(const fy_graph_t *g) {
  fy_cuda_driver_t *d = NULL;
  fy_status_t s = fy_cuda_driver_open(NULL, &d);
  if (!s) {
    printf("SKIP: a CUDA driver is installed here: the no-driver messages are not checked\n");
    fy_cuda_driver_close(d);
  } else {
    CHECK(fy_status_code(s) == FY_UNAVAILABLE && strstr(fy_status_message(s), "libcuda.so.1"),
          "no driver: %s", fy_status_message(s));
    printf("no driver: %s\n", fy_status_message(s));
    fy_status_free(s);
    char msg[512] = "x";
    s = fy_cuda_probe(msg, sizeof msg);
    CHECK(s && strstr(fy_status_message(s), "libcuda") && msg[0] == '\0', "the probe names libcuda");
    fy_status_free(s);
    fy_compile_t *c = NULL;
    fy_schedule_t *sched = NULL;
    if (ok(schedule_for(g, &c, &sched), "schedule")) {
      fy_rt_backend_params_t p = {.graph = g, .schedule = sched};
      void *ctx = NULL;
      s = fy_rt_backend_cuda.create(&p, &ctx);
      CHECK(s && ctx == NULL && fy_status_code(s) == FY_UNAVAILABLE &&
                strstr(fy_status_message(s), "libcuda.so.1 not found: no NVIDIA driver on this machine"),
            "the backend: %s", s ? fy_status_message(s) : "created");
      if (s) printf("backend: %s\n", fy_status_message(s));
      fy_status_free(s);
      fy_schedule_destroy(sched);
      fy_compile_destroy(c);
    }
  }
  const char *stub = "/usr/local/cuda/lib64/stubs/libcuda.so";
  if (access(stub, R_OK)) {
    printf("SKIP: no CUDA stub library at %s\n", stub);
  } else {
    /* The stub exports every entry point the table resolves, and is not taken for a driver. */
    expect_error(fy_cuda_driver_open(stub, &d), FY_UNAVAILABLE, "stub library", "the toolkit's stub");
  }
  expect_error(fy_cuda_driver_open("/nonexistent/libcuda.so.1", &d), FY_UNAVAILABLE, "not found", "a missing file");
}

/* ---- the backend on a mock driver (tests/cuda_mock_driver.c) ---- */

typedef struct {
  const fy_graph_t *g;
  char (*names)[FY_KERNEL_NAME_MAX]; /* per node */
  char failure[512];
} mock_t;

static int mock_node(const mock_t *m, const char *name) {
  for (int i = 0; i < m->g->n_nodes; i++)
    if (!strcmp(m->names[i], name)) return i;
  return -1;
}

static int mock_arity(void *user, const char *name) {
  const mock_t *m = user;
  int node = mock_node(m, name);
  return node < 0 ? -1 : m->g->nodes[node].n_inputs + 3;
}

/* A kernel launch on the mock: the CPU reference for the node the kernel serves, after checking the
 * geometry against fy_cuda_launch_dims. */
static int mock_launch(void *user, const char *name, const unsigned *grid, const unsigned *block, void **params) {
  mock_t *m = user;
  const fy_graph_t *g = m->g;
  int node = mock_node(m, name);
  if (node < 0) return snprintf(m->failure, sizeof m->failure, "no node for kernel %s", name), 1;
  const fy_node_t *nd = &g->nodes[node];
  fy_cpu_arg_t args[FY_MAX_NODE_INPUTS + 1];
  for (int k = 0; k <= nd->n_inputs; k++) {
    unsigned long long p;
    memcpy(&p, params[k], sizeof p);
    args[k] = fy_cpu_arg_for_value(&g->values[k < nd->n_inputs ? nd->inputs[k] : nd->output], (void *)(uintptr_t)p);
  }
  long long n, pos;
  memcpy(&n, params[nd->n_inputs + 1], sizeof n);
  memcpy(&pos, params[nd->n_inputs + 2], sizeof pos);
  fy_cuda_launch_t l;
  fy_status_t s = fy_cuda_launch_dims(g, node, n, &l);
  if (!s && memcmp(l.grid, grid, sizeof l.grid) + memcmp(l.block, block, sizeof l.block))
    s = fy_status_make(FY_INTERNAL, "launched as (%u,%u,%u)x(%u,%u,%u), expected (%u,%u,%u)x(%u,%u,%u)", grid[0],
                       grid[1], grid[2], block[0], block[1], block[2], l.grid[0], l.grid[1], l.grid[2], l.block[0],
                       l.block[1], l.block[2]);
  if (!s && nd->op != FY_OP_ROPE && nd->op != FY_OP_ATTENTION && pos != 0)
    s = fy_status_make(FY_INTERNAL, "pos %lld for an op that ignores it", pos);
  if (!s) s = fy_cpu_run_node(nd->op, &nd->attrs, args, nd->n_inputs, &args[nd->n_inputs], n, pos, NULL);
  if (!s) return 0;
  snprintf(m->failure, sizeof m->failure, "%s: %s", name, fy_status_message(s));
  fy_status_free(s);
  return 1;
}

enum { MOCK_PROMPT = 6, MOCK_DECODE = 5 };

/* Prefill + decode on a runtime; logits has (1 + MOCK_DECODE) x vocab floats. */
static fy_status_t mock_workload(fy_rt_t *rt, int64_t vocab, float *logits) {
  static const int32_t prompt[MOCK_PROMPT] = {1, 200, 37, 5, 255, 17}, follow[MOCK_DECODE] = {0, 99, 128, 3, 42};
  FY_TRY(fy_rt_prefill(rt, prompt, MOCK_PROMPT, logits));
  for (int j = 0; j < MOCK_DECODE; j++) FY_TRY(fy_rt_decode(rt, follow[j], logits + (j + 1) * vocab));
  return NULL;
}

static fy_status_t reference_workload(const fy_graph_t *g, float *logits) {
  static const int32_t prompt[MOCK_PROMPT] = {1, 200, 37, 5, 255, 17}, follow[MOCK_DECODE] = {0, 99, 128, 3, 42};
  fy_reference_t *ref = NULL;
  FY_TRY(fy_reference_create(g, 1, &ref));
  fy_status_t s = fy_reference_prefill(ref, prompt, MOCK_PROMPT, logits);
  for (int j = 0; !s && j < MOCK_DECODE; j++)
    s = fy_reference_decode(ref, follow[j], logits + (j + 1) * g->config.vocab);
  fy_reference_destroy(ref);
  return s;
}

/* Writes s as a plan file whose kernel table is one (fake) cubin for `arch`: the mock loads any image. */
static fy_status_t write_plan(const fy_graph_t *g, const fy_schedule_t *s, const char *arch, const char *path) {
  static const uint8_t cubin[] = {0x7f, 'E', 'L', 'F', 2, 1, 1};
  fy_plan_kernel_t k = {.format = "cubin", .architecture = arch, .code = cubin, .code_size = sizeof cubin};
  return kc_write_plan(g, s, &k, 1, path);
}

static fy_status_t compile_schedule(const fy_graph_t *g, fy_policy_t policy, uint64_t budget, fy_compile_t **out_c,
                                    fy_schedule_t **out_s) {
  compiled_t x;
  FY_TRY(compile_for(g, "sm_86", policy, -1, budget, &x));
  *out_c = x.c;
  *out_s = x.s;
  return NULL;
}

/* The cuda backend replays plans through the mock driver: with the CPU reference behind every kernel,
 * each run must give the reference interpreter's logits bit for bit, whatever streams, with device
 * memory poisoned; chunks must become CUDA graphs that are replayed and updated. */
static void test_backend_on_mock(void) {
  if (!fy_rt_backend_find("cuda")) {
    printf("SKIP: the runtime does not list the cuda backend (runtime/backends.c): no replay on the mock driver\n");
    return;
  }
  if (!run_quiet("cc --version > /dev/null 2>&1")) {
    printf("SKIP: no C compiler (cc): no replay on the mock driver\n");
    return;
  }
  const char *src_dir = getenv("FERRY_SOURCE_DIR");
  char so[1200], cmd[4096], dir[1024];
  snprintf(dir, sizeof dir, "%s/mock", tmp_dir());
  snprintf(so, sizeof so, "%s/libcuda.so.1", dir);
  fy_mkdir_p(dir);
  snprintf(cmd, sizeof cmd, "cc -std=c11 -O1 -Wall -Wextra -Werror -fPIC -shared -Wl,-soname,libcuda.so.1 -o %s %s/tests/cuda_mock_driver.c",
           so, src_dir ? src_dir : ".");
  if (!run_quiet(cmd)) {
    CHECK(false, "the mock driver does not build: %s", cmd);
    return;
  }
  /* Loaded first, it is what dlopen("libcuda.so.1") finds (by its SONAME). */
  void *lib = dlopen(so, RTLD_NOW | RTLD_GLOBAL);
  CHECK(lib != NULL, "dlopen %s: %s", so, dlerror());
  if (!lib) return;
  void (*setup)(void *, void *, void *);
  void (*counts)(long long *);
  *(void **)&setup = dlsym(lib, "fymock_setup");
  *(void **)&counts = dlsym(lib, "fymock_counts");

  char model[1024];
  snprintf(model, sizeof model, "%s/mock-model", tmp_dir());
  fy_synth_options_t so_opts = {.preset = "tiny", .seed = 9, .dtype = FY_DTYPE_BF16};
  fy_load_options_t lo = {.prefill_tokens = MOCK_PROMPT, .generate = MOCK_DECODE, .context = MOCK_PROMPT + MOCK_DECODE};
  fy_graph_t *g = NULL;
  mock_t m = {0};
  float *want = NULL, *got = NULL;
  size_t rows = 1 + MOCK_DECODE;
  if (!ok(fy_synth_write(model, &so_opts), "synth") || !ok(fy_model_load(model, &lo, &g), "load")) goto done;
  m.g = g;
  m.names = malloc(sizeof *m.names * (size_t)g->n_nodes);
  want = calloc(rows * (size_t)g->config.vocab, sizeof(float));
  got = calloc(rows * (size_t)g->config.vocab, sizeof(float));
  if (!m.names || !want || !got || !ok(reference_workload(g, want), "reference")) goto done;
  for (int i = 0; i < g->n_nodes; i++) fy_kernel_name(g, i, m.names[i], sizeof m.names[i]);
  setup((void *)mock_launch, (void *)mock_arity, &m);

  fy_compile_t *c = NULL;
  fy_schedule_t *s = NULL;
  if (!ok(compile_schedule(g, FY_POLICY_FERRY, 0, &c, &s), "compile")) goto done;
  uint64_t full = s->device_bytes;
  fy_schedule_destroy(s);
  fy_compile_destroy(c);
  static const fy_policy_t policies[] = {FY_POLICY_FERRY, FY_POLICY_PREFETCH1, FY_POLICY_SEQUENTIAL,
                                         FY_POLICY_FIRST_K, FY_POLICY_NGL};
  static const int sixteenths[] = {16, 8, 4, 2};
  int runs = 0, streamed = 0, host_runs = 0;
  long long before[4], after[4];
  for (size_t p = 0; p < sizeof policies / sizeof *policies; p++)
    for (size_t b = 0; b < sizeof sixteenths / sizeof *sixteenths; b++) {
      fy_status_t st = compile_schedule(g, policies[p], full / 16 * (uint64_t)sixteenths[b], &c, &s);
      if (st) { /* a budget the policy refuses */
        fy_status_free(st);
        continue;
      }
      char plan[1024], what[128];
      snprintf(plan, sizeof plan, "%s/mock-%zu-%zu.plan", tmp_dir(), p, b);
      snprintf(what, sizeof what, "%s at %d/16 of everything-fits", fy_policy_name(policies[p]), sixteenths[b]);
      bool streams = s->regions[FY_REGION_SLOTS].bytes > 0, host = false;
      for (int st = 0; st < s->n_stages; st++)
        for (int k = 0; k < s->stages[st].n_cmds[FY_QUEUE_COMPUTE]; k++) host |= s->stages[st].cmds[FY_QUEUE_COMPUTE][k].on_host;
      fy_rt_t *rt = NULL;
      fy_rt_options_t o = {.backend = "cuda", .poison = true, .n_threads = 1};
      counts(before);
      m.failure[0] = '\0';
      if (ok(write_plan(g, s, "sm_86", plan), "write plan") && ok(fy_rt_open(plan, &o, &rt), what)) {
        memset(got, 0, rows * (size_t)g->config.vocab * sizeof(float));
        fy_status_t run = mock_workload(rt, g->config.vocab, got);
        CHECK(!run && !m.failure[0], "%s: %s %s", what, run ? fy_status_message(run) : "", m.failure);
        fy_status_free(run);
        CHECK(!memcmp(got, want, rows * (size_t)g->config.vocab * sizeof(float)),
              "%s: logits differ from the reference interpreter's", what);
        fy_rt_close(rt);
        counts(after);
        if (p == 0 && b == 0) /* the resident layers run as chunks: graphs built once, replayed, updated */
          CHECK(after[1] > before[1] && after[2] - before[2] > after[1] - before[1] && after[3] > before[3],
                "%s: graphs built %lld, launched %lld, nodes updated %lld", what, after[1] - before[1],
                after[2] - before[2], after[3] - before[3]);
        runs++;
        streamed += streams;
        host_runs += host;
      }
      fy_schedule_destroy(s);
      fy_compile_destroy(c);
    }
  CHECK(runs >= 8 && streamed >= 4 && host_runs >= 1, "%d runs on the mock driver, %d streaming, %d with host-run "
        "layers", runs, streamed, host_runs);
  printf("mock driver: %d plans replayed by the cuda backend (%d streaming, %d with host-run layers; poisoned), "
         "bit-identical to the reference\n", runs, streamed, host_runs);

  /* A plan with kernels for another GPU only is refused, naming both sides. */
  if (ok(compile_schedule(g, FY_POLICY_FERRY, 0, &c, &s), "compile")) {
    char plan[1024];
    snprintf(plan, sizeof plan, "%s/mock-sm90.plan", tmp_dir());
    fy_rt_t *rt = NULL;
    fy_rt_options_t o = {.backend = "cuda"};
    if (ok(write_plan(g, s, "sm_90", plan), "write plan"))
      expect_error(fy_rt_open(plan, &o, &rt), FY_INCOMPATIBLE, "sm_90 (cubin); this GPU is sm_86", "a plan for sm_90");
    /* A schedule without kernel tables: NVRTC compiles them for the GPU at open. */
    if (fy_cuda_nvrtc_available() && ok(fy_rt_open_schedule(g, s, &o, &rt), "in-memory schedule")) {
      fy_status_t run = mock_workload(rt, g->config.vocab, got);
      CHECK(!run && !memcmp(got, want, rows * (size_t)g->config.vocab * sizeof(float)),
            "in-memory schedule: %s", run ? fy_status_message(run) : "logits differ");
      fy_status_free(run);
      fy_rt_close(rt);
    }
    fy_schedule_destroy(s);
    fy_compile_destroy(c);
  }
done:
  free(m.names);
  free(want);
  free(got);
  fy_graph_destroy(g);
  dlclose(lib);
}

static void test_choose(void) {
  static const uint8_t code[] = {1};
  const fy_plan_kernel_t k[] = {
      {"cubin", "sm_75", code, 1, NULL, 0}, {"cubin", "sm_86", code, 1, NULL, 0},
      {"cubin", "sm_90a", code, 1, NULL, 0}, {"ptx", "compute_75", code, 1, NULL, 0},
      {"spirv", "vulkan", code, 1, NULL, 0},
  };
  char why[512];
  CHECK(fy_cuda_choose_kernels(k, 5, 8, 6, why, sizeof why) == 1, "sm_86 takes its own cubin");
  CHECK(fy_cuda_choose_kernels(k, 5, 8, 9, why, sizeof why) == 1, "sm_89 takes the sm_86 cubin");
  CHECK(fy_cuda_choose_kernels(k, 5, 8, 0, why, sizeof why) == 3, "sm_80 has no 8.x cubin at or below: the PTX");
  CHECK(fy_cuda_choose_kernels(k, 5, 9, 0, why, sizeof why) == 2, "sm_90 takes sm_90a");
  CHECK(fy_cuda_choose_kernels(k, 5, 12, 0, why, sizeof why) == 3, "sm_120 JIT-compiles the PTX");
  CHECK(fy_cuda_choose_kernels(k, 2, 12, 0, why, sizeof why) == -1 && strstr(why, "sm_75 (cubin), sm_86 (cubin)") &&
            strstr(why, "this GPU is sm_120"),
        "no fit names both sides: %s", why);
  CHECK(fy_cuda_choose_kernels(k, 4, 7, 0, why, sizeof why) == -1, "sm_70 runs none of them");
  CHECK(fy_cuda_choose_kernels(NULL, 0, 8, 6, why, sizeof why) == -1 && strstr(why, "no CUDA kernels"), "%s", why);
}

int main(void) {
  fy_mkdir_p(tmp_dir());
  test_archs();
  test_choose();
  fy_graph_t *tiny = load_tiny("tiny-bf16", FY_DTYPE_BF16, NULL, 6, 12);
  if (!tiny) return 1;
  test_driver(tiny);
  test_names(tiny);
  char ver[96];
  if (!fy_cuda_nvrtc_available()) {
    printf("SKIP: %s\n", fy_cuda_nvrtc_describe(ver, sizeof ver));
    const char *arch = "sm_86";
    fy_cuda_binaries_t b;
    expect_error(fy_cuda_compile_graph(tiny, &arch, 1, &b), FY_UNAVAILABLE, "NVRTC not available", "no NVRTC");
  } else {
    printf("%s\n", fy_cuda_nvrtc_describe(ver, sizeof ver));
    test_compile_tiny(tiny);
    test_compile_small();
    test_compile_odd();
    test_compile_errors(tiny);
  }
  if (!have_cxx()) {
    printf("SKIP: no C++ compiler (c++): the kernels are not emulated\n");
  } else {
    check_all_kernels(tiny, "tiny-bf16", false);
    static const struct {
      const char *tag;
      fy_dtype_t dtype;
      const char *arch;
    } variants[] = {{"tiny-f16", FY_DTYPE_F16, NULL}, {"tiny-f32", FY_DTYPE_F32, NULL},
                    {"tiny-qwen2-bf16", FY_DTYPE_BF16, "Qwen2ForCausalLM"}};
    for (size_t v = 0; v < sizeof variants / sizeof *variants; v++) {
      fy_graph_t *g = load_tiny(variants[v].tag, variants[v].dtype, variants[v].arch, 6, 12);
      if (g) check_all_kernels(g, variants[v].tag, false);
      fy_graph_destroy(g);
    }
    fy_graph_t *odd = NULL;
    if (ok(kc_odd_graph(&odd), "odd shapes")) check_all_kernels(odd, "odd-shapes", false);
    fy_graph_destroy(odd);
    /* A cache longer than one key tile (1024 rows). */
    fy_graph_t *long_ctx = load_tiny("tiny-long", FY_DTYPE_BF16, NULL, 3, 1100);
    if (long_ctx) check_all_kernels(long_ctx, "tiny-long-context", true);
    fy_graph_destroy(long_ctx);
  }
  fy_graph_destroy(tiny);
  test_backend_on_mock();
  return check_summary();
}
