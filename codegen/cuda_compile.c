/* CUDA C -> cubin / PTX with NVRTC (codegen/cuda.h), without a GPU.
 *
 * NVRTC compiles one architecture per call, so a graph's translation unit is
 * compiled once per requested sm_XX and once more for compute_XX of the
 * lowest of them; the calls are independent and run on a thread pool (NVRTC
 * is thread-safe across programs). Facts this relies on (checked with CUDA
 * 13.0, reference/toolchain.md): NVRTC returns success with a cubin size of
 * 0 when asked for a cubin of a compute_XX target, so sizes are checked;
 * PTX comes with its terminating NUL, which cuModuleLoadData needs.
 * Without NVRTC at build time every entry point says so and nothing else
 * changes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codegen/cuda.h"
#include "support/threadpool.h"

#if defined(FERRY_HAVE_NVRTC)
#include <nvrtc.h>
#endif

/* ---- architectures ---- */

fy_status_t fy_cuda_arch_parse(const char *text, fy_cuda_arch_t *out_arch) {
  if (!text) return fy_status_make(FY_INVALID_ARGUMENT, "cuda: no architecture");
  const char *p = text;
  if (!strncmp(p, "sm_", 3) || !strncmp(p, "sm", 2)) p += p[2] == '_' ? 3 : 2;
  else if (!strncmp(p, "compute_", 8)) p += 8;
  int digits = 0, cc = 0;
  while (p[digits] >= '0' && p[digits] <= '9' && digits < 4) cc = cc * 10 + (p[digits++] - '0');
  char suffix = p[digits];
  bool specific = suffix == 'a' || suffix == 'f';
  if (digits < 2 || (suffix && !specific) || (specific && p[digits + 1]))
    return fy_status_make(FY_INVALID_ARGUMENT,
                          "cuda: \"%s\" is not a CUDA architecture (expected sm_XX such as sm_86, or XX)", text);
  fy_cuda_arch_t a = {.major = cc / 10, .minor = cc % 10, .specific = specific};
  snprintf(a.name, sizeof a.name, "sm_%d%s", cc, specific ? (suffix == 'a' ? "a" : "f") : "");
  *out_arch = a;
  return NULL;
}

static int arch_cc(const fy_cuda_arch_t *a) { return a->major * 10 + a->minor; }

fy_status_t fy_cuda_parse_archs(const char *list, fy_cuda_arch_t *out_archs, int max, int *out_count) {
  if (!list || !*list) return fy_status_make(FY_INVALID_ARGUMENT, "cuda: empty architecture list");
  int count = 0;
  const char *p = list;
  while (*p) {
    size_t len = strcspn(p, ",");
    char one[32];
    if (len == 0 || len >= sizeof one)
      return fy_status_make(FY_INVALID_ARGUMENT, "cuda: architecture list \"%s\": empty or overlong item", list);
    memcpy(one, p, len);
    one[len] = '\0';
    fy_cuda_arch_t a;
    FY_TRY(fy_cuda_arch_parse(one, &a));
    bool dup = false;
    for (int i = 0; i < count && !dup; i++) dup = !strcmp(out_archs[i].name, a.name);
    if (!dup) {
      if (count == max)
        return fy_status_make(FY_OUT_OF_RANGE, "cuda: architecture list \"%s\": more than %d", list, max);
      int at = count++;
      while (at > 0 && arch_cc(&out_archs[at - 1]) > arch_cc(&a)) {
        out_archs[at] = out_archs[at - 1];
        at--;
      }
      out_archs[at] = a;
    }
    p += len;
    if (*p == ',') p++;
  }
  *out_count = count;
  return NULL;
}

/* ---- NVRTC ---- */

#if defined(FERRY_HAVE_NVRTC)

bool fy_cuda_nvrtc_available(void) { return true; }

const char *fy_cuda_nvrtc_describe(char *buf, size_t n) {
  int major = 0, minor = 0;
  if (nvrtcVersion(&major, &minor) != NVRTC_SUCCESS)
    snprintf(buf, n, "NVRTC (version unknown)");
  else
    snprintf(buf, n, "NVRTC %d.%d", major, minor);
  return buf;
}

fy_status_t fy_cuda_supported_archs(int *out_archs, int max, int *out_count) {
  int n = 0;
  if (nvrtcGetNumSupportedArchs(&n) != NVRTC_SUCCESS || n <= 0)
    return fy_status_make(FY_UNAVAILABLE, "cuda: NVRTC does not list its architectures");
  int *all = malloc(sizeof(int) * (size_t)n);
  if (!all) return fy_status_make(FY_RESOURCE_EXHAUSTED, "cuda: out of memory");
  if (nvrtcGetSupportedArchs(all) != NVRTC_SUCCESS) {
    free(all);
    return fy_status_make(FY_UNAVAILABLE, "cuda: NVRTC does not list its architectures");
  }
  int count = n < max ? n : max;
  memcpy(out_archs, all, sizeof(int) * (size_t)count);
  free(all);
  *out_count = count;
  return NULL;
}

static fy_status_t nvrtc_error(nvrtcResult r, const char *what, const char *arch) {
  return fy_status_make(r == NVRTC_ERROR_OUT_OF_MEMORY ? FY_RESOURCE_EXHAUSTED : FY_INTERNAL, "NVRTC %s for %s: %s",
                        what, arch, nvrtcGetErrorString(r));
}

/* The program's log, NUL-terminated, or NULL; the caller frees it. */
static char *program_log(nvrtcProgram prog) {
  size_t size = 0;
  if (nvrtcGetProgramLogSize(prog, &size) != NVRTC_SUCCESS || size <= 1) return NULL;
  char *log = malloc(size);
  if (log && nvrtcGetProgramLog(prog, log) != NVRTC_SUCCESS) {
    free(log);
    return NULL;
  }
  return log;
}

/* Keeps the error's message bounded: a broken kernel repeats its errors per instantiation. */
enum { LOG_MAX = 16384 };

fy_status_t fy_cuda_compile_source(const char *source, const char *arch, uint8_t **out_code, size_t *out_size) {
  if (!source || !arch) return fy_status_make(FY_INVALID_ARGUMENT, "cuda: no source or architecture");
  bool ptx = !strncmp(arch, "compute_", 8);
  if (!ptx && strncmp(arch, "sm_", 3))
    return fy_status_make(FY_INVALID_ARGUMENT, "cuda: target \"%s\" is neither sm_XX nor compute_XX", arch);
  char opt_arch[48];
  snprintf(opt_arch, sizeof opt_arch, "--gpu-architecture=%s", arch);
  const char *opts[] = {opt_arch, "-std=c++17"};
  nvrtcProgram prog;
  nvrtcResult r = nvrtcCreateProgram(&prog, source, "ferry_kernels.cu", 0, NULL, NULL);
  if (r != NVRTC_SUCCESS) return nvrtc_error(r, "program creation", arch);
  fy_status_t err = NULL;
  r = nvrtcCompileProgram(prog, (int)(sizeof opts / sizeof *opts), opts);
  if (r != NVRTC_SUCCESS) {
    char *log = program_log(prog);
    size_t len = log ? strlen(log) : 0;
    err = fy_status_make(r == NVRTC_ERROR_COMPILATION ? FY_INVALID_ARGUMENT : FY_INTERNAL,
                         "NVRTC could not compile for %s (%s)%s%.*s%s", arch, nvrtcGetErrorString(r),
                         log ? ":\n" : "", (int)(len < LOG_MAX ? len : LOG_MAX), log ? log : "",
                         len > LOG_MAX ? "\n[log truncated]" : "");
    free(log);
  }
  size_t size = 0;
  if (!err) {
    r = ptx ? nvrtcGetPTXSize(prog, &size) : nvrtcGetCUBINSize(prog, &size);
    if (r != NVRTC_SUCCESS) err = nvrtc_error(r, ptx ? "PTX size" : "cubin size", arch);
    else if (size <= 1)
      err = fy_status_make(FY_INTERNAL, "NVRTC produced an empty %s for %s", ptx ? "PTX" : "cubin", arch);
  }
  uint8_t *code = NULL;
  if (!err && !(code = malloc(size))) err = fy_status_make(FY_RESOURCE_EXHAUSTED, "cuda: out of memory");
  if (!err) {
    r = ptx ? nvrtcGetPTX(prog, (char *)code) : nvrtcGetCUBIN(prog, (char *)code);
    if (r != NVRTC_SUCCESS) err = nvrtc_error(r, ptx ? "PTX" : "cubin", arch);
  }
  if (!err && ptx && code[size - 1] != '\0') err = fy_status_make(FY_INTERNAL, "NVRTC's PTX is not NUL-terminated");
  if (!err && !ptx && (size < 4 || memcmp(code, "\x7f" "ELF", 4)))
    err = fy_status_make(FY_INTERNAL, "NVRTC's cubin for %s is not an ELF file", arch);
  nvrtcDestroyProgram(&prog);
  if (err) {
    free(code);
    return err;
  }
  *out_code = code;
  *out_size = size;
  return NULL;
}

#else

bool fy_cuda_nvrtc_available(void) { return false; }

const char *fy_cuda_nvrtc_describe(char *buf, size_t n) {
  snprintf(buf, n, "NVRTC not available (ferry was built without the CUDA toolkit)");
  return buf;
}

static fy_status_t no_nvrtc(void) {
  return fy_status_make(FY_UNAVAILABLE, "NVRTC not available: ferry was built without the CUDA toolkit "
                                        "(install it, e.g. /usr/local/cuda, and rebuild) so CUDA kernels cannot be compiled");
}

fy_status_t fy_cuda_supported_archs(int *out_archs, int max, int *out_count) {
  (void)out_archs, (void)max, (void)out_count;
  return no_nvrtc();
}

fy_status_t fy_cuda_compile_source(const char *source, const char *arch, uint8_t **out_code, size_t *out_size) {
  (void)source, (void)arch, (void)out_code, (void)out_size;
  return no_nvrtc();
}

#endif

/* ---- a graph: every architecture, then the PTX ---- */

typedef struct {
  const char *source;
  char target[FY_CUDA_ARCH_MAX + 8]; /* "sm_86" or "compute_75" */
  uint8_t *code;
  size_t size;
  double seconds;
  fy_status_t status;
} job_t;

typedef struct {
  job_t *jobs;
} jobs_ctx_t;

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void run_jobs(void *vctx, int64_t begin, int64_t end) {
  jobs_ctx_t *c = vctx;
  for (int64_t i = begin; i < end; i++) {
    job_t *j = &c->jobs[i];
    double t0 = now_seconds();
    j->status = fy_cuda_compile_source(j->source, j->target, &j->code, &j->size);
    j->seconds = now_seconds() - t0;
  }
}

/* Every requested architecture must be one this NVRTC compiles for. */
static fy_status_t check_supported(const fy_cuda_arch_t *archs, int n) {
  int supported[64], count = 0;
  FY_TRY(fy_cuda_supported_archs(supported, 64, &count));
  for (int i = 0; i < n; i++) {
    bool ok = false;
    for (int s = 0; s < count && !ok; s++) ok = supported[s] == arch_cc(&archs[i]);
    if (!ok) {
      char list[512] = "", ver[64];
      size_t len = 0;
      for (int s = 0; s < count && len < sizeof list - 8; s++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%ssm_%d", s ? " " : "", supported[s]);
      return fy_status_make(FY_UNAVAILABLE, "cuda: %s does not compile for %s (it supports %s)",
                            fy_cuda_nvrtc_describe(ver, sizeof ver), archs[i].name, list);
    }
  }
  return NULL;
}

fy_status_t fy_cuda_compile_graph(const fy_graph_t *g, const char *const *archs, int n_archs,
                                  fy_cuda_binaries_t *out_binaries) {
  if (!g || !out_binaries) return fy_status_make(FY_INVALID_ARGUMENT, "cuda: no graph");
  if (!archs || n_archs < 1) return fy_status_make(FY_INVALID_ARGUMENT, "cuda: no architecture to compile for");
  fy_cuda_arch_t parsed[32];
  int n_parsed = 0;
  for (int i = 0; i < n_archs; i++) {
    fy_cuda_arch_t a;
    FY_TRY(fy_cuda_arch_parse(archs[i], &a));
    bool dup = false;
    for (int j = 0; j < n_parsed && !dup; j++) dup = !strcmp(parsed[j].name, a.name);
    if (dup) continue;
    if (n_parsed == 32) return fy_status_make(FY_OUT_OF_RANGE, "cuda: more than 32 architectures");
    parsed[n_parsed++] = a;
  }
  FY_TRY(check_supported(parsed, n_parsed));

  char *source = NULL, **entries = NULL;
  int n_entries = 0;
  FY_TRY(fy_cuda_source(g, -1, &source));
  fy_status_t err = fy_cuda_entries(g, &entries, &n_entries);
  job_t jobs[33];
  int n_jobs = n_parsed + 1, lowest = 0;
  memset(jobs, 0, sizeof jobs);
  for (int i = 0; i < n_parsed; i++) {
    jobs[i].source = source;
    memcpy(jobs[i].target, parsed[i].name, sizeof parsed[i].name);
    if (arch_cc(&parsed[i]) < arch_cc(&parsed[lowest])) lowest = i;
  }
  jobs[n_parsed].source = source;
  snprintf(jobs[n_parsed].target, sizeof jobs[n_parsed].target, "compute_%d", arch_cc(&parsed[lowest]));

  fy_threadpool_t *pool = NULL;
  if (!err) err = fy_threadpool_create(n_jobs, &pool);
  if (!err) {
    jobs_ctx_t ctx = {jobs};
    fy_parallel_for(pool, n_jobs, 1, run_jobs, &ctx);
    fy_threadpool_destroy(pool);
    for (int i = 0; i < n_jobs; i++) {
      if (!err && jobs[i].status)
        err = fy_status_annotate(jobs[i].status, "cuda: compiling the kernels of %d nodes", g->n_nodes);
      else
        fy_status_free(jobs[i].status);
      jobs[i].status = NULL;
    }
  }

  fy_cuda_binaries_t b = {0};
  if (!err) {
    b.items = fy_arena_calloc(&b.arena, (size_t)n_jobs, sizeof *b.items);
    const char **names = fy_arena_calloc(&b.arena, (size_t)n_entries + 1, sizeof *names);
    bool oom = !b.items || !names;
    for (int e = 0; !oom && e < n_entries; e++) oom = !(names[e] = fy_arena_strdup(&b.arena, entries[e]));
    for (int i = 0; !oom && i < n_jobs; i++) {
      fy_cuda_binary_t *it = &b.items[i];
      bool ptx = i == n_parsed;
      uint8_t *code = fy_arena_alloc(&b.arena, jobs[i].size);
      it->format = ptx ? "ptx" : "cubin";
      it->architecture = fy_arena_strdup(&b.arena, jobs[i].target);
      oom = !code || !it->architecture;
      if (!oom) memcpy(code, jobs[i].code, jobs[i].size);
      it->code = code;
      it->code_size = jobs[i].size;
      it->entries = names;
      it->n_entries = n_entries;
      it->compile_seconds = jobs[i].seconds;
    }
    b.n_items = n_jobs;
    if (oom) {
      fy_arena_destroy(&b.arena);
      err = fy_status_make(FY_RESOURCE_EXHAUSTED, "cuda: out of memory for the binaries");
    }
  }
  for (int i = 0; i < n_jobs; i++) free(jobs[i].code);
  fy_cuda_entries_free(entries, n_entries);
  free(source);
  if (err) return err;
  *out_binaries = b;
  return NULL;
}

void fy_cuda_binaries_free(fy_cuda_binaries_t *binaries) {
  if (!binaries) return;
  fy_arena_destroy(&binaries->arena);
  memset(binaries, 0, sizeof *binaries);
}
