/* The CUDA driver's symbol table (cuda_driver.h): dlopen, dlsym by the
 * versioned names cuda.h uses, cuInit. Facts (reference/toolchain.md): with
 * no driver installed dlopen fails; the CUDA toolkit ships a stub
 * libcuda.so (lib64/stubs) that exports every symbol and answers cuInit with
 * CUDA_ERROR_STUB_LIBRARY (34), which must not pass for a driver. */
#include "runtime/cuda_driver.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_LIBRARY "libcuda.so.1"

typedef struct {
  size_t offset;
  const char *names[2]; /* tried in order: the versioned name first */
} symbol_t;

#define SYM(field, ...) {offsetof(fy_cuda_driver_t, field), {__VA_ARGS__}}
static const symbol_t symbols[] = {
    SYM(init, "cuInit"),
    SYM(driver_get_version, "cuDriverGetVersion"),
    SYM(get_error_name, "cuGetErrorName"),
    SYM(get_error_string, "cuGetErrorString"),
    SYM(device_get_count, "cuDeviceGetCount"),
    SYM(device_get, "cuDeviceGet"),
    SYM(device_get_name, "cuDeviceGetName"),
    SYM(device_get_attribute, "cuDeviceGetAttribute"),
    SYM(device_total_mem, "cuDeviceTotalMem_v2"),
    SYM(primary_ctx_retain, "cuDevicePrimaryCtxRetain"),
    SYM(primary_ctx_release, "cuDevicePrimaryCtxRelease_v2", "cuDevicePrimaryCtxRelease"),
    SYM(ctx_set_current, "cuCtxSetCurrent"),
    SYM(mem_get_info, "cuMemGetInfo_v2"),
    SYM(mem_alloc, "cuMemAlloc_v2"),
    SYM(mem_free, "cuMemFree_v2"),
    SYM(mem_host_alloc, "cuMemHostAlloc"),
    SYM(mem_free_host, "cuMemFreeHost"),
    SYM(memcpy_htod_async, "cuMemcpyHtoDAsync_v2"),
    SYM(memcpy_dtoh_async, "cuMemcpyDtoHAsync_v2"),
    SYM(memset_d8_async, "cuMemsetD8Async"),
    SYM(memset_d16_async, "cuMemsetD16Async"),
    SYM(memset_d32_async, "cuMemsetD32Async"),
    SYM(stream_create, "cuStreamCreate"),
    SYM(stream_destroy, "cuStreamDestroy_v2"),
    SYM(stream_synchronize, "cuStreamSynchronize"),
    SYM(stream_wait_event, "cuStreamWaitEvent"),
    SYM(event_create, "cuEventCreate"),
    SYM(event_destroy, "cuEventDestroy_v2"),
    SYM(event_record, "cuEventRecord"),
    SYM(event_synchronize, "cuEventSynchronize"),
    SYM(module_load_data, "cuModuleLoadData"),
    SYM(module_unload, "cuModuleUnload"),
    SYM(module_get_function, "cuModuleGetFunction"),
    SYM(launch_kernel, "cuLaunchKernel"),
    SYM(graph_create, "cuGraphCreate"),
    SYM(graph_add_kernel_node, "cuGraphAddKernelNode_v2", "cuGraphAddKernelNode"),
    SYM(graph_instantiate, "cuGraphInstantiateWithFlags"),
    SYM(graph_exec_kernel_node_set_params, "cuGraphExecKernelNodeSetParams_v2", "cuGraphExecKernelNodeSetParams"),
    SYM(graph_launch, "cuGraphLaunch"),
    SYM(graph_exec_destroy, "cuGraphExecDestroy"),
    SYM(graph_destroy, "cuGraphDestroy"),
};

_Static_assert(sizeof(void *) == sizeof(void (*)(void)), "dlsym results are stored as function pointers");

void fy_cuda_driver_close(fy_cuda_driver_t *d) {
  if (!d) return;
  if (d->library) dlclose(d->library);
  free(d);
}

fy_status_t fy_cuda_check(const fy_cuda_driver_t *d, fy_cu_result_t r, const char *what) {
  if (r == FY_CU_SUCCESS) return NULL;
  const char *name = NULL, *text = NULL;
  if (d && d->get_error_name) d->get_error_name(r, &name);
  if (d && d->get_error_string) d->get_error_string(r, &text);
  fy_code_t code = r == 2 /* CUDA_ERROR_OUT_OF_MEMORY */ ? FY_RESOURCE_EXHAUSTED
                   : r == FY_CU_ERROR_NO_DEVICE || r == FY_CU_ERROR_STUB_LIBRARY ? FY_UNAVAILABLE
                   : r == FY_CU_ERROR_NO_BINARY_FOR_GPU || r == FY_CU_ERROR_INVALID_PTX ||
                           r == FY_CU_ERROR_UNSUPPORTED_PTX_VERSION
                       ? FY_INCOMPATIBLE
                       : FY_INTERNAL;
  return fy_status_make(code, "%s: %s (%d)%s%s", what, name ? name : "CUDA error", r, text ? ": " : "",
                        text ? text : "");
}

fy_status_t fy_cuda_driver_open(const char *path, fy_cuda_driver_t **out_driver) {
  const char *lib = path ? path : DEFAULT_LIBRARY;
  fy_cuda_driver_t *d = calloc(1, sizeof *d);
  if (!d) return fy_status_make(FY_RESOURCE_EXHAUSTED, "cuda: out of memory");
  d->library = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
  if (!d->library) {
    const char *why = dlerror();
    fy_status_t s = fy_status_make(FY_UNAVAILABLE, "%s not found: no NVIDIA driver on this machine (%s)", lib,
                                   why ? why : "dlopen failed");
    fy_cuda_driver_close(d);
    return s;
  }
  for (size_t i = 0; i < sizeof symbols / sizeof *symbols; i++) {
    void *fn = NULL;
    for (int k = 0; k < 2 && !fn && symbols[i].names[k]; k++) fn = dlsym(d->library, symbols[i].names[k]);
    if (!fn) {
      fy_status_t s = fy_status_make(FY_INCOMPATIBLE, "%s has no %s: the NVIDIA driver is too old for ferry", lib,
                                     symbols[i].names[0]);
      fy_cuda_driver_close(d);
      return s;
    }
    memcpy((char *)d + symbols[i].offset, &fn, sizeof fn);
  }
  fy_cu_result_t r = d->init(0);
  fy_status_t s = NULL;
  if (r == FY_CU_ERROR_STUB_LIBRARY)
    s = fy_status_make(FY_UNAVAILABLE, "%s is the CUDA toolkit's stub library, not an NVIDIA driver "
                                       "(no driver on this machine, or the stubs folder is on the library path)", lib);
  else if (r == FY_CU_ERROR_NO_DEVICE)
    s = fy_status_make(FY_UNAVAILABLE, "%s: no CUDA device on this machine", lib);
  else if (r != FY_CU_SUCCESS)
    s = fy_status_annotate(fy_cuda_check(d, r, "cuInit"), "%s", lib);
  if (!s) s = fy_cuda_check(d, d->driver_get_version(&d->version), "cuDriverGetVersion");
  if (s) {
    fy_cuda_driver_close(d);
    return s;
  }
  *out_driver = d;
  return NULL;
}

fy_status_t fy_cuda_probe(char *msg, size_t n) {
  if (n) msg[0] = '\0';
  fy_cuda_driver_t *d = NULL;
  FY_TRY(fy_cuda_driver_open(NULL, &d));
  int count = 0;
  fy_status_t s = fy_cuda_check(d, d->device_get_count(&count), "cuDeviceGetCount");
  if (!s && count == 0) s = fy_status_make(FY_UNAVAILABLE, "CUDA driver loaded, but no CUDA device found");
  size_t len = 0;
  if (!s)
    len += (size_t)snprintf(msg, n, "CUDA driver %d.%d: %d device%s\n", d->version / 1000, d->version % 1000 / 10,
                            count, count == 1 ? "" : "s");
  for (int i = 0; !s && i < count; i++) {
    fy_cu_device_t dev;
    char name[256] = "?";
    int major = 0, minor = 0;
    size_t mem = 0;
    s = fy_cuda_check(d, d->device_get(&dev, i), "cuDeviceGet");
    if (!s) s = fy_cuda_check(d, d->device_get_name(name, (int)sizeof name, dev), "cuDeviceGetName");
    if (!s)
      s = fy_cuda_check(d, d->device_get_attribute(&major, FY_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev),
                        "cuDeviceGetAttribute");
    if (!s)
      s = fy_cuda_check(d, d->device_get_attribute(&minor, FY_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev),
                        "cuDeviceGetAttribute");
    if (!s) s = fy_cuda_check(d, d->device_total_mem(&mem, dev), "cuDeviceTotalMem");
    if (!s && len < n)
      len += (size_t)snprintf(msg + len, n - len, "  %d: %s, sm_%d%d, %.1f GiB\n", i, name, major, minor,
                              (double)mem / (double)(1ull << 30));
  }
  fy_cuda_driver_close(d);
  if (s && n) msg[0] = '\0';
  return s;
}

/* "sm_86" -> 86 and "compute_75" -> 75, with a flag for arch-specific variants ("sm_90a"); -1 otherwise. */
static int arch_of(const char *arch, const char *prefix, int *out_specific) {
  size_t p = strlen(prefix);
  if (!arch || strncmp(arch, prefix, p)) return -1;
  char *end;
  long cc = strtol(arch + p, &end, 10);
  if (end == arch + p || cc < 10 || cc > 9999) return -1;
  *out_specific = *end != '\0';
  return (int)cc;
}

int fy_cuda_choose_kernels(const fy_plan_kernel_t *kernels, int n_kernels, int major, int minor, char *why,
                           size_t why_n) {
  int dev = major * 10 + minor, best = -1, best_cc = -1, best_rank = 0;
  for (int i = 0; i < n_kernels; i++) {
    const fy_plan_kernel_t *k = &kernels[i];
    int specific = 0, cc, rank; /* rank: 3 exact cubin, 2 same-major cubin, 1 ptx */
    if (!k->format || !k->code || !k->code_size) continue;
    if (!strcmp(k->format, "cubin") && (cc = arch_of(k->architecture, "sm_", &specific)) >= 0) {
      if (cc == dev) rank = 3;
      else if (!specific && cc / 10 == major && cc < dev) rank = 2;
      else continue;
    } else if (!strcmp(k->format, "ptx") && (cc = arch_of(k->architecture, "compute_", &specific)) >= 0 &&
               !specific && cc <= dev) {
      rank = 1;
    } else {
      continue;
    }
    if (rank > best_rank || (rank == best_rank && cc > best_cc)) best = i, best_rank = rank, best_cc = cc;
  }
  if (best < 0 && why_n) {
    size_t len = 0;
    int listed = 0;
    for (int i = 0; i < n_kernels && len < why_n; i++)
      if (kernels[i].format && (!strcmp(kernels[i].format, "cubin") || !strcmp(kernels[i].format, "ptx")))
        len += (size_t)snprintf(why + len, why_n - len, "%s%s (%s)", listed++ ? ", " : "the plan has CUDA kernels for ",
                                kernels[i].architecture ? kernels[i].architecture : "?", kernels[i].format);
    if (!listed) len = (size_t)snprintf(why, why_n, "the plan has no CUDA kernels");
    if (len < why_n)
      snprintf(why + len, why_n - len, "; this GPU is sm_%d%d: compile the plan with --arch sm_%d%d", major, minor,
               major, minor);
  }
  return best;
}
