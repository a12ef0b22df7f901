/* A stand-in for libcuda.so.1, for testing the cuda backend's plumbing on a
 * machine without a GPU (tests/test_cuda_codegen.c builds it into
 * FERRY_TMP/libcuda.so.1 with that SONAME and loads it first, so the
 * backend's dlopen("libcuda.so.1") finds it).
 *
 * Device memory is host memory; every call completes before it returns, so
 * streams and events need nothing (the runtime's host timelines order the
 * two threads, and a completed call is as ordered as it can be). Kernels are
 * not run from the image: a launch, direct or from a graph, calls the
 * test's callback with the kernel's name and parameters, and the test runs
 * the CPU reference for the node that kernel serves. Graphs record their
 * kernel nodes with copies of the parameter values; an instantiated graph
 * replays them, with the updates of cuGraphExecKernelNodeSetParams.
 * Counters let the test see that graphs were built, replayed and updated. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
typedef unsigned long long CUdeviceptr;

typedef struct {
  void *func;
  unsigned grid_x, grid_y, grid_z, block_x, block_y, block_z, shared_bytes;
  void **params, **extra;
  void *kern, *ctx;
} kernel_node_params_t;

typedef int (*fymock_launch_fn)(void *user, const char *name, const unsigned *grid, const unsigned *block,
                                void **params);
typedef int (*fymock_arity_fn)(void *user, const char *name); /* parameters of the kernel */

static fymock_launch_fn launch_cb;
static fymock_arity_fn arity_cb;
static void *cb_user;
static long long counts[4]; /* direct launches, graphs built, graph launches, node updates */

void fymock_setup(fymock_launch_fn launch, fymock_arity_fn arity, void *user) {
  launch_cb = launch, arity_cb = arity, cb_user = user;
  memset(counts, 0, sizeof counts);
}
void fymock_counts(long long *out) { memcpy(out, counts, sizeof counts); }

enum { MAX_PARAMS = 16, ERR = 999 };

/* NVRTC asks a loaded driver for its private export tables: this one has none. */
CUresult cuGetExportTable(const void **table, const void *id) {
  (void)id;
  *table = NULL;
  return 801; /* CUDA_ERROR_NOT_SUPPORTED */
}
CUresult cuInit(unsigned flags) { return (CUresult)flags; }
CUresult cuDriverGetVersion(int *v) { *v = 12040; return 0; }
CUresult cuGetErrorName(CUresult r, const char **s) { *s = r == ERR ? "CUDA_ERROR_MOCK" : "CUDA_ERROR_UNKNOWN"; return 0; }
CUresult cuGetErrorString(CUresult r, const char **s) { (void)r; *s = "mock driver"; return 0; }
CUresult cuDeviceGetCount(int *n) { *n = 1; return 0; }
CUresult cuDeviceGet(int *d, int i) { *d = i; return i == 0 ? 0 : ERR; }
CUresult cuDeviceGetName(char *s, int len, int d) { (void)d; snprintf(s, (size_t)len, "ferry mock GPU"); return 0; }
CUresult cuDeviceGetAttribute(int *v, int attr, int d) {
  (void)d;
  *v = attr == 75 ? 8 : attr == 76 ? 6 : 0; /* compute capability 8.6 */
  return 0;
}
CUresult cuDeviceTotalMem_v2(size_t *bytes, int d) { (void)d; *bytes = (size_t)1 << 34; return 0; }
static int context;
CUresult cuDevicePrimaryCtxRetain(void **ctx, int d) { (void)d; *ctx = &context; return 0; }
CUresult cuDevicePrimaryCtxRelease_v2(int d) { (void)d; return 0; }
CUresult cuCtxSetCurrent(void *ctx) { return ctx == &context ? 0 : ERR; }
CUresult cuMemGetInfo_v2(size_t *free_bytes, size_t *total) { *free_bytes = *total = (size_t)1 << 34; return 0; }
CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t n) {
  void *m = aligned_alloc(256, (n + 255) / 256 * 256);
  *p = (CUdeviceptr)(uintptr_t)m;
  return m ? 0 : 2;
}
CUresult cuMemFree_v2(CUdeviceptr p) { free((void *)(uintptr_t)p); return 0; }
CUresult cuMemHostAlloc(void **p, size_t n, unsigned flags) { (void)flags; *p = malloc(n); return *p ? 0 : 2; }
CUresult cuMemFreeHost(void *p) { free(p); return 0; }
CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t n, void *s) {
  (void)s;
  memcpy((void *)(uintptr_t)dst, src, n);
  return 0;
}
CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t n, void *s) {
  (void)s;
  memcpy(dst, (const void *)(uintptr_t)src, n);
  return 0;
}
CUresult cuMemsetD8Async(CUdeviceptr p, unsigned char v, size_t n, void *s) {
  (void)s;
  memset((void *)(uintptr_t)p, v, n);
  return 0;
}
CUresult cuMemsetD16Async(CUdeviceptr p, unsigned short v, size_t n, void *s) {
  (void)s;
  for (size_t i = 0; i < n; i++) memcpy((char *)(uintptr_t)p + 2 * i, &v, 2);
  return 0;
}
CUresult cuMemsetD32Async(CUdeviceptr p, unsigned v, size_t n, void *s) {
  (void)s;
  for (size_t i = 0; i < n; i++) memcpy((char *)(uintptr_t)p + 4 * i, &v, 4);
  return 0;
}
static void *handle(void) { return malloc(1); }
CUresult cuStreamCreate(void **s, unsigned flags) { (void)flags; *s = handle(); return 0; }
CUresult cuStreamDestroy_v2(void *s) { free(s); return 0; }
CUresult cuStreamSynchronize(void *s) { (void)s; return 0; }
CUresult cuStreamWaitEvent(void *s, void *e, unsigned flags) { (void)s, (void)flags; return e ? 0 : ERR; }
CUresult cuEventCreate(void **e, unsigned flags) { (void)flags; *e = handle(); return 0; }
CUresult cuEventDestroy_v2(void *e) { free(e); return 0; }
CUresult cuEventRecord(void *e, void *s) { (void)s; return e ? 0 : ERR; }
CUresult cuEventSynchronize(void *e) { return e ? 0 : ERR; }

typedef struct {
  char **names;
  int n;
} module_t;

CUresult cuModuleLoadData(void **m, const void *image) {
  *m = image ? calloc(1, sizeof(module_t)) : NULL;
  return *m ? 0 : ERR;
}
CUresult cuModuleUnload(void *m) {
  module_t *mod = m;
  for (int i = 0; i < mod->n; i++) free(mod->names[i]);
  free(mod->names);
  free(mod);
  return 0;
}
CUresult cuModuleGetFunction(void **f, void *m, const char *name) {
  module_t *mod = m;
  if (arity_cb(cb_user, name) < 0) return 500; /* CUDA_ERROR_NOT_FOUND */
  char **grown = realloc(mod->names, sizeof *grown * (size_t)(mod->n + 1));
  if (!grown) return 2;
  mod->names = grown;
  size_t len = strlen(name) + 1;
  if (!(mod->names[mod->n] = malloc(len))) return 2;
  memcpy(mod->names[mod->n], name, len);
  *f = mod->names[mod->n++];
  return 0;
}
CUresult cuLaunchKernel(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                        unsigned shared, void *s, void **params, void **extra) {
  (void)shared, (void)s, (void)extra;
  unsigned grid[3] = {gx, gy, gz}, block[3] = {bx, by, bz};
  counts[0]++;
  return launch_cb(cb_user, f, grid, block, params) ? ERR : 0;
}

typedef struct {
  void *func;
  unsigned grid[3], block[3];
  long long values[MAX_PARAMS];
  int n_values;
} gnode_t;

typedef struct {
  gnode_t **nodes;
  int n;
} graph_t;

typedef struct {
  graph_t *graph;
  gnode_t *nodes; /* copies, in the graph's order */
} exec_t;

static CUresult set_node(gnode_t *n, const kernel_node_params_t *p) {
  int arity = arity_cb(cb_user, p->func);
  if (arity < 0 || arity > MAX_PARAMS) return ERR;
  n->func = p->func;
  n->grid[0] = p->grid_x, n->grid[1] = p->grid_y, n->grid[2] = p->grid_z;
  n->block[0] = p->block_x, n->block[1] = p->block_y, n->block[2] = p->block_z;
  for (int i = 0; i < arity; i++) memcpy(&n->values[i], p->params[i], 8); /* pointers and long longs */
  n->n_values = arity;
  return 0;
}

CUresult cuGraphCreate(void **g, unsigned flags) {
  (void)flags;
  *g = calloc(1, sizeof(graph_t));
  return *g ? 0 : 2;
}
CUresult cuGraphAddKernelNode_v2(void **node, void *g, void *const *deps, size_t n_deps,
                                 const kernel_node_params_t *p) {
  graph_t *graph = g;
  /* The backend chains its nodes: each depends on the one before. */
  if (n_deps != (graph->n ? 1u : 0u) || (n_deps && deps[0] != graph->nodes[graph->n - 1])) return ERR;
  gnode_t *n = calloc(1, sizeof *n);
  gnode_t **grown = n ? realloc(graph->nodes, sizeof *grown * (size_t)(graph->n + 1)) : NULL;
  if (!grown) {
    free(n);
    return 2;
  }
  graph->nodes = grown;
  CUresult r = set_node(n, p);
  if (r) {
    free(n);
    return r;
  }
  graph->nodes[graph->n++] = n;
  *node = n;
  return 0;
}
CUresult cuGraphInstantiateWithFlags(void **e, void *g, unsigned long long flags) {
  (void)flags;
  graph_t *graph = g;
  exec_t *x = calloc(1, sizeof *x);
  if (!x || !(x->nodes = calloc((size_t)graph->n + 1, sizeof *x->nodes))) {
    free(x);
    return 2;
  }
  x->graph = graph;
  for (int i = 0; i < graph->n; i++) x->nodes[i] = *graph->nodes[i];
  counts[1]++;
  *e = x;
  return 0;
}
CUresult cuGraphExecKernelNodeSetParams_v2(void *e, void *node, const kernel_node_params_t *p) {
  exec_t *x = e;
  for (int i = 0; i < x->graph->n; i++)
    if (x->graph->nodes[i] == node) {
      if (p->func != x->nodes[i].func) return ERR; /* a node keeps its function */
      counts[3]++;
      return set_node(&x->nodes[i], p);
    }
  return ERR;
}
CUresult cuGraphLaunch(void *e, void *s) {
  (void)s;
  exec_t *x = e;
  counts[2]++;
  for (int i = 0; i < x->graph->n; i++) {
    gnode_t *n = &x->nodes[i];
    void *params[MAX_PARAMS];
    for (int k = 0; k < n->n_values; k++) params[k] = &n->values[k];
    if (launch_cb(cb_user, n->func, n->grid, n->block, params)) return ERR;
  }
  return 0;
}
CUresult cuGraphExecDestroy(void *e) {
  exec_t *x = e;
  free(x->nodes);
  free(x);
  return 0;
}
CUresult cuGraphDestroy(void *g) {
  graph_t *graph = g;
  for (int i = 0; i < graph->n; i++) free(graph->nodes[i]);
  free(graph->nodes);
  free(graph);
  return 0;
}
