/* The cuda backend (runtime/backend.h) on the driver API loaded at run time
 * (cuda_driver.h): device 0, its primary context, two streams.
 *
 * - Memory: the plan's device arena is one cuMemAlloc; staging buffers are
 *   pinned (cuMemHostAlloc), so copies from them are truly asynchronous.
 * - Queues: the copy queue's COPYs are cuMemcpyHtoDAsync on a copy stream,
 *   each followed by an event per staging buffer that copy_wait synchronises
 *   on; LAUNCHes go to a compute stream. The core orders the host threads by
 *   the plan's timeline events and calls signal before releasing a waiter,
 *   so an event's device side is a ring of CUevents: SIGNAL e with value v
 *   records ring[e][v % RING] on the signalling queue's stream, WAIT e v
 *   makes the other stream wait on it. The ring is deeper than the copy
 *   queue's run-ahead (at most n_slots steps); if it were not, a wait would
 *   bind to a later record: slower, never wrong, since a stream can only
 *   wait on work already submitted.
 * - Chunks: the launches between CHUNK_BEGIN and CHUNK_END are recorded, and
 *   at CHUNK_END built once into a CUDA graph (a chain of kernel nodes,
 *   instantiated) that is replayed from then on. A replay passes this step's
 *   n and pos by updating only the kernel nodes whose arguments changed
 *   (cuGraphExecKernelNodeSetParams); kernels that ignore pos get 0, so a
 *   decode step updates only its RoPE and attention nodes.
 * - Kernels: the plan's cubin for this GPU, else its PTX (compiled by the
 *   driver), else a refusal naming the plan's architectures and the GPU's
 *   (fy_cuda_choose_kernels). A plan without CUDA kernels (a schedule opened
 *   in memory, a plan compiled where NVRTC was missing) has its kernels
 *   compiled here with NVRTC for this GPU.
 * - Host-run nodes (ngl-style placement) run the CPU reference on copies of
 *   their device arguments, read after the compute stream drains.
 * - Everything is sized from the schedule at create (event rings, the chunk
 *   recording, host scratch); running allocates nothing but each chunk's
 *   CUDA graph, once, on its first step.
 * - fill, write and read are synchronous on the compute stream, so poisoning
 *   is ordered with everything around it. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/cpu.h"
#include "codegen/cuda.h"
#include "codegen/kernel_name.h"
#include "runtime/backend.h"
#include "runtime/cuda_driver.h"
#include "support/threadpool.h"

enum { EVENT_RING = 16, MAX_ARGS = FY_MAX_NODE_INPUTS + 1 };

typedef struct {
  fy_cu_event_t ev[EVENT_RING];
  _Atomic int64_t recorded[EVENT_RING];
} event_ring_t;

/* One kernel launch: what cuLaunchKernel or a graph's kernel node gets. */
typedef struct {
  int node;
  fy_cu_function_t func;
  fy_cuda_launch_t dims;
  fy_cu_deviceptr_t ptr[MAX_ARGS];
  int n_ptrs;
  long long n, pos;
  void *args[MAX_ARGS + 2]; /* points into this record: set by bind_args before each use */
} launch_rec_t;

typedef struct {
  int id, first_node, n_launches;
  launch_rec_t *launches; /* the arguments the instantiated graph holds */
  fy_cu_graph_t graph;
  fy_cu_graph_exec_t exec;
  fy_cu_graph_node_t *nodes;
} chunk_t;

typedef struct cuda {
  fy_cuda_driver_t *drv;
  const fy_graph_t *g;
  const fy_mapping_t *files;
  int n_threads;
  fy_cu_device_t dev;
  fy_cu_context_t ctx;
  bool ctx_retained;
  int major, minor;
  char device_name[128];
  fy_cu_stream_t stream[FY_QUEUE_COUNT];
  fy_cu_module_t module;
  fy_cu_function_t *node_func; /* per graph node */
  fy_cuda_launch_t *node_dims; /* per node, for node_rows[node] rows */
  int64_t *node_rows;
  fy_cu_deviceptr_t arena;
  uint64_t arena_bytes;
  void **staging;
  fy_cu_event_t *staging_done;
  int n_staging;
  size_t staging_bytes;
  /* The device side of the plan's events: a ring per event index (the most any stage has). */
  event_ring_t *events;
  int n_events;
  /* Chunks (compute thread only). */
  int recording; /* chunk id being recorded, -1 when none */
  launch_rec_t *rec;
  int n_rec, cap_rec;
  chunk_t *chunks;
  int n_chunks, cap_chunks;
  /* Host-run nodes. */
  fy_threadpool_t *pool;
  uint8_t *host_scratch;
  size_t host_scratch_bytes;
} cuda_t;

static fy_status_t oom(void) { return fy_status_make(FY_RESOURCE_EXHAUSTED, "cuda backend: out of host memory"); }

#define CU(c, call, what) fy_cuda_check((c)->drv, (call), (what))

/* The context is current per thread: every entry point makes it current on the thread that calls
 * (the copy and compute threads; a thread-local cache would go stale when a runtime closes and another
 * retains the device's primary context again). */
static fy_status_t enter(cuda_t *c) { return CU(c, c->drv->ctx_set_current(c->ctx), "cuCtxSetCurrent"); }

/* ---- create / destroy ---- */

static void chunk_release(cuda_t *c, chunk_t *k) {
  if (k->exec) c->drv->graph_exec_destroy(k->exec);
  if (k->graph) c->drv->graph_destroy(k->graph);
  free(k->nodes);
  free(k->launches);
  memset(k, 0, sizeof *k);
}

static void cuda_destroy(void *ctx) {
  cuda_t *c = ctx;
  if (!c) return;
  fy_status_t entered = NULL;
  bool ready = c->drv && c->ctx && !(entered = enter(c));
  fy_status_free(entered);
  if (ready) {
    for (int q = 0; q < FY_QUEUE_COUNT; q++)
      if (c->stream[q]) c->drv->stream_synchronize(c->stream[q]);
    for (int i = 0; i < c->n_chunks; i++) chunk_release(c, &c->chunks[i]);
    for (int e = 0; c->events && e < c->n_events; e++)
      for (int r = 0; r < EVENT_RING; r++)
        if (c->events[e].ev[r]) c->drv->event_destroy(c->events[e].ev[r]);
    for (int i = 0; i < c->n_staging; i++) {
      if (c->staging_done && c->staging_done[i]) c->drv->event_destroy(c->staging_done[i]);
      if (c->staging && c->staging[i]) c->drv->mem_free_host(c->staging[i]);
    }
    if (c->arena) c->drv->mem_free(c->arena);
    if (c->module) c->drv->module_unload(c->module);
    for (int q = 0; q < FY_QUEUE_COUNT; q++)
      if (c->stream[q]) c->drv->stream_destroy(c->stream[q]);
  }
  if (c->ctx_retained) c->drv->primary_ctx_release(c->dev);
  fy_cuda_driver_close(c->drv);
  fy_threadpool_destroy(c->pool);
  free(c->chunks);
  free(c->rec);
  free(c->events);
  free(c->staging_done);
  free(c->staging);
  free(c->node_func);
  free(c->node_dims);
  free(c->node_rows);
  free(c->host_scratch);
  free(c);
}

/* An image the driver loads: a cubin, or PTX with its NUL (added when missing). */
static fy_status_t load_image(cuda_t *c, const uint8_t *code, size_t size, bool ptx, const char *arch) {
  uint8_t *copy = NULL;
  if (ptx && (size == 0 || code[size - 1] != '\0')) {
    if (!(copy = malloc(size + 1))) return oom();
    memcpy(copy, code, size);
    copy[size] = '\0';
    code = copy;
  }
  fy_status_t s = CU(c, c->drv->module_load_data(&c->module, code), "cuModuleLoadData");
  free(copy);
  if (s && ptx)
    s = fy_status_annotate(s, "loading the PTX for %s on %s (sm_%d%d, driver %d.%d): a driver older than the "
                              "CUDA that compiled the plan cannot read its PTX; update the driver or compile the "
                              "plan with --arch sm_%d%d",
                           arch, c->device_name, c->major, c->minor, c->drv->version / 1000,
                           c->drv->version % 1000 / 10, c->major, c->minor);
  else if (s)
    s = fy_status_annotate(s, "loading the cubin for %s on %s", arch, c->device_name);
  return s;
}

/* The plan's kernels for this GPU; with none (a schedule opened in memory), NVRTC compiles them here. */
static fy_status_t load_module(cuda_t *c, const fy_plan_kernel_t *kernels, int n_kernels) {
  bool has_cuda = false;
  for (int i = 0; i < n_kernels; i++)
    has_cuda |= kernels[i].format && (!strcmp(kernels[i].format, "cubin") || !strcmp(kernels[i].format, "ptx"));
  if (has_cuda) {
    char why[1024];
    int i = fy_cuda_choose_kernels(kernels, n_kernels, c->major, c->minor, why, sizeof why);
    if (i < 0) return fy_status_make(FY_INCOMPATIBLE, "%s (%s)", why, c->device_name);
    return load_image(c, kernels[i].code, kernels[i].code_size, !strcmp(kernels[i].format, "ptx"),
                      kernels[i].architecture);
  }
  int supported[64], n_supported = 0, best = -1;
  FY_TRY(fy_status_annotate(fy_cuda_supported_archs(supported, 64, &n_supported),
                            "the plan carries no CUDA kernels"));
  for (int i = 0; i < n_supported; i++)
    if (supported[i] <= c->major * 10 + c->minor) best = supported[i];
  if (best < 0)
    return fy_status_make(FY_INCOMPATIBLE, "this NVRTC cannot compile for %s (sm_%d%d)",
                          c->device_name, c->major, c->minor);
  /* A cubin for this GPU when NVRTC knows it, else PTX for the newest it knows. */
  bool exact = best == c->major * 10 + c->minor;
  char arch[32];
  snprintf(arch, sizeof arch, "%s_%d", exact ? "sm" : "compute", best);
  char *source = NULL;
  uint8_t *code = NULL;
  size_t size = 0;
  FY_TRY(fy_cuda_source(c->g, -1, &source));
  fy_status_t s = fy_cuda_compile_source(source, arch, &code, &size);
  free(source);
  if (!s) s = load_image(c, code, size, !exact, arch);
  free(code);
  return s;
}

/* A function per node: identical nodes share one kernel, looked up once. */
static fy_status_t resolve_functions(cuda_t *c) {
  const fy_graph_t *g = c->g;
  size_t n = (size_t)g->n_nodes + 1;
  c->node_func = calloc(n, sizeof *c->node_func);
  c->node_dims = calloc(n, sizeof *c->node_dims);
  c->node_rows = calloc(n, sizeof *c->node_rows);
  char(*names)[FY_KERNEL_NAME_MAX] = malloc(sizeof *names * n);
  int *first = malloc(sizeof *first * n); /* the first node of each distinct kernel */
  fy_status_t s = !c->node_func || !c->node_dims || !c->node_rows || !names || !first ? oom() : NULL;
  int distinct = 0;
  for (int i = 0; !s && i < g->n_nodes; i++) {
    fy_kernel_name(g, i, names[i], sizeof names[i]);
    for (int d = 0; d < distinct && !c->node_func[i]; d++)
      if (!strcmp(names[first[d]], names[i])) c->node_func[i] = c->node_func[first[d]];
    if (c->node_func[i]) continue;
    s = fy_status_annotate(CU(c, c->drv->module_get_function(&c->node_func[i], c->module, names[i]),
                              "cuModuleGetFunction"),
                           "node %s: kernel %s", g->nodes[i].name, names[i]);
    first[distinct++] = i;
  }
  free(names);
  free(first);
  return s;
}

/* Sizes from the schedule: event rings, the longest chunk, the chunks, host-run scratch. */
static fy_status_t size_from_schedule(cuda_t *c, const fy_schedule_t *s) {
  int chunks = 0, longest = 0, max_events = 0;
  bool host_runs = false;
  for (int i = 0; i < s->n_stages; i++) {
    const fy_stage_schedule_t *st = &s->stages[i];
    if (st->n_events > max_events) max_events = st->n_events;
    int open = -1;
    for (int k = 0; k < st->n_cmds[FY_QUEUE_COMPUTE]; k++) {
      const fy_cmd_t *cmd = &st->cmds[FY_QUEUE_COMPUTE][k];
      if (cmd->kind == FY_CMD_CHUNK_BEGIN) chunks++, open = 0;
      if (cmd->kind == FY_CMD_CHUNK_END) open = -1;
      if (cmd->kind != FY_CMD_LAUNCH) continue;
      if (open >= 0 && ++open > longest) longest = open;
      if (!cmd->on_host || cmd->node < 0 || cmd->node >= c->g->n_nodes) continue;
      host_runs = true;
      const fy_node_t *node = &c->g->nodes[cmd->node];
      size_t need = 0;
      for (int a = 0; a <= node->n_inputs; a++)
        if (cmd->args[a].kind == FY_LOC_DEVICE)
          need += (c->g->values[a < node->n_inputs ? node->inputs[a] : node->output].nbytes + 63) / 64 * 64;
      if (need > c->host_scratch_bytes) c->host_scratch_bytes = need;
    }
  }
  c->events = calloc((size_t)max_events + 1, sizeof *c->events);
  c->rec = malloc(sizeof *c->rec * ((size_t)longest + 1));
  c->chunks = calloc((size_t)chunks + 1, sizeof *c->chunks);
  c->host_scratch = c->host_scratch_bytes ? malloc(c->host_scratch_bytes) : NULL;
  if (!c->events || !c->rec || !c->chunks || (c->host_scratch_bytes && !c->host_scratch)) return oom();
  c->n_events = max_events;
  c->cap_rec = longest;
  c->cap_chunks = chunks;
  for (int e = 0; e < max_events; e++)
    for (int r = 0; r < EVENT_RING; r++)
      FY_TRY(CU(c, c->drv->event_create(&c->events[e].ev[r], FY_CU_EVENT_DISABLE_TIMING), "cuEventCreate"));
  if (host_runs) FY_TRY(fy_threadpool_create(c->n_threads, &c->pool));
  return NULL;
}

static fy_status_t cuda_create(const fy_rt_backend_params_t *p, void **out_ctx) {
  if (!p || !p->graph || !p->schedule)
    return fy_status_make(FY_INTERNAL, "cuda backend: created without a graph and a schedule");
  cuda_t *c = calloc(1, sizeof *c);
  if (!c) return oom();
  c->g = p->graph;
  c->files = p->files;
  c->n_threads = p->n_threads;
  c->recording = -1;
  fy_status_t s = fy_cuda_driver_open(NULL, &c->drv);
  int count = 0;
  if (!s) s = CU(c, c->drv->device_get_count(&count), "cuDeviceGetCount");
  if (!s && count < 1) s = fy_status_make(FY_UNAVAILABLE, "the NVIDIA driver sees no CUDA device");
  if (!s) s = CU(c, c->drv->device_get(&c->dev, p->device >= 0 ? p->device : 0), "cuDeviceGet");
  if (!s) s = CU(c, c->drv->device_get_name(c->device_name, (int)sizeof c->device_name, c->dev), "cuDeviceGetName");
  if (!s)
    s = CU(c, c->drv->device_get_attribute(&c->major, FY_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, c->dev),
           "cuDeviceGetAttribute");
  if (!s)
    s = CU(c, c->drv->device_get_attribute(&c->minor, FY_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, c->dev),
           "cuDeviceGetAttribute");
  if (!s && !(s = CU(c, c->drv->primary_ctx_retain(&c->ctx, c->dev), "cuDevicePrimaryCtxRetain")))
    c->ctx_retained = true;
  if (!s) s = enter(c);
  for (int q = 0; !s && q < FY_QUEUE_COUNT; q++)
    s = CU(c, c->drv->stream_create(&c->stream[q], FY_CU_STREAM_NON_BLOCKING), "cuStreamCreate");
  if (!s) s = load_module(c, p->kernels, p->n_kernels);
  if (!s) s = resolve_functions(c);
  if (!s) s = size_from_schedule(c, p->schedule);
  if (s) {
    cuda_destroy(c);
    return fy_status_annotate(s, "cuda backend");
  }
  *out_ctx = c;
  return NULL;
}

/* ---- memory ---- */

static fy_status_t cuda_arena_alloc(void *ctx, uint64_t bytes) {
  cuda_t *c = ctx;
  if (c->arena) return fy_status_make(FY_INTERNAL, "cuda backend: the arena is allocated once");
  FY_TRY(enter(c));
  size_t free_bytes = 0, total = 0;
  FY_TRY(CU(c, c->drv->mem_get_info(&free_bytes, &total), "cuMemGetInfo"));
  if (bytes > free_bytes)
    return fy_status_make(FY_RESOURCE_EXHAUSTED,
                          "cuda backend: the plan needs %llu bytes of device memory; %s has %llu free of %llu "
                          "(compile the plan with a smaller --vram or --budget)",
                          (unsigned long long)bytes, c->device_name, (unsigned long long)free_bytes,
                          (unsigned long long)total);
  FY_TRY(fy_status_annotate(CU(c, c->drv->mem_alloc(&c->arena, bytes ? (size_t)bytes : 1), "cuMemAlloc"),
                            "cuda backend: device arena of %llu bytes", (unsigned long long)bytes));
  c->arena_bytes = bytes;
  return NULL;
}

static fy_status_t cuda_staging_alloc(void *ctx, int count, size_t bytes) {
  cuda_t *c = ctx;
  if (c->staging || count < 1) return fy_status_make(FY_INTERNAL, "cuda backend: staging is allocated once");
  FY_TRY(enter(c));
  c->staging = calloc((size_t)count, sizeof *c->staging);
  c->staging_done = calloc((size_t)count, sizeof *c->staging_done);
  if (!c->staging || !c->staging_done) return oom();
  c->n_staging = count;
  c->staging_bytes = bytes;
  for (int i = 0; i < count; i++) {
    FY_TRY(fy_status_annotate(CU(c, c->drv->mem_host_alloc(&c->staging[i], bytes, FY_CU_MEMHOSTALLOC_PORTABLE),
                                 "cuMemHostAlloc"),
                              "cuda backend: pinned staging buffer of %zu bytes", bytes));
    FY_TRY(CU(c, c->drv->event_create(&c->staging_done[i], FY_CU_EVENT_DISABLE_TIMING), "cuEventCreate"));
  }
  return NULL;
}

static void *cuda_staging(void *ctx, int index) {
  cuda_t *c = ctx;
  return index >= 0 && index < c->n_staging ? c->staging[index] : NULL;
}

static uint64_t cuda_host_bytes(void *ctx) {
  const cuda_t *c = ctx;
  return sizeof *c + (uint64_t)c->n_staging * c->staging_bytes + c->host_scratch_bytes +
         (uint64_t)c->g->n_nodes * (sizeof *c->node_func + sizeof *c->node_dims + sizeof *c->node_rows);
}

static fy_status_t in_arena(const cuda_t *c, uint64_t offset, uint64_t bytes, const char *what) {
  if (offset > c->arena_bytes || bytes > c->arena_bytes - offset)
    return fy_status_make(FY_OUT_OF_RANGE, "cuda backend: %s of %llu bytes at %llu is past the arena (%llu bytes)",
                          what, (unsigned long long)bytes, (unsigned long long)offset,
                          (unsigned long long)c->arena_bytes);
  return NULL;
}

static fy_status_t sync_compute(cuda_t *c) {
  return CU(c, c->drv->stream_synchronize(c->stream[FY_QUEUE_COMPUTE]), "cuStreamSynchronize");
}

/* The pattern lies from device offset 0, as on the cpu backend. Patterns of 1, 2 or 4 bytes at a matching
 * offset are a memset; others go through a host block (poisoning is a debugging mode). */
static fy_status_t cuda_fill(void *ctx, uint64_t offset, uint64_t bytes, const uint8_t *pattern, size_t n) {
  cuda_t *c = ctx;
  FY_TRY(in_arena(c, offset, bytes, "fill"));
  if (n == 0) return fy_status_make(FY_INTERNAL, "cuda backend: empty fill pattern");
  if (c->recording >= 0) return fy_status_make(FY_INTERNAL, "cuda backend: a fill inside chunk %d", c->recording);
  FY_TRY(enter(c));
  fy_cu_stream_t s = c->stream[FY_QUEUE_COMPUTE];
  fy_cu_deviceptr_t p = c->arena + offset;
  if (n == 1) {
    FY_TRY(CU(c, c->drv->memset_d8_async(p, pattern[0], (size_t)bytes, s), "cuMemsetD8Async"));
  } else if (n == 2 && offset % 2 == 0 && bytes % 2 == 0) {
    unsigned short v = (unsigned short)(pattern[0] | pattern[1] << 8);
    FY_TRY(CU(c, c->drv->memset_d16_async(p, v, (size_t)bytes / 2, s), "cuMemsetD16Async"));
  } else if (n == 4 && offset % 4 == 0 && bytes % 4 == 0) {
    unsigned v = (unsigned)pattern[0] | (unsigned)pattern[1] << 8 | (unsigned)pattern[2] << 16 |
                 (unsigned)pattern[3] << 24;
    FY_TRY(CU(c, c->drv->memset_d32_async(p, v, (size_t)bytes / 4, s), "cuMemsetD32Async"));
  } else {
    size_t block = 1 << 20;
    uint8_t *host = malloc(block + n);
    if (!host) return oom();
    for (size_t i = 0; i < block + n; i++) host[i] = pattern[(offset + i) % n];
    fy_status_t err = NULL;
    for (uint64_t done = 0; !err && done < bytes;) {
      size_t m = bytes - done < block ? (size_t)(bytes - done) : block;
      /* host[k] holds the byte of offset + k; the chunk at offset + done starts at done % n of a period. */
      err = CU(c, c->drv->memcpy_htod_async(p + done, host + done % n, m, s), "cuMemcpyHtoDAsync");
      if (!err) err = sync_compute(c);
      done += m;
    }
    free(host);
    return err;
  }
  return sync_compute(c);
}

static fy_status_t cuda_write(void *ctx, uint64_t offset, const void *src, uint64_t bytes) {
  cuda_t *c = ctx;
  FY_TRY(in_arena(c, offset, bytes, "write"));
  FY_TRY(enter(c));
  FY_TRY(CU(c, c->drv->memcpy_htod_async(c->arena + offset, src, (size_t)bytes, c->stream[FY_QUEUE_COMPUTE]),
            "cuMemcpyHtoDAsync"));
  return sync_compute(c);
}

static fy_status_t cuda_read(void *ctx, uint64_t offset, void *dst, uint64_t bytes) {
  cuda_t *c = ctx;
  FY_TRY(in_arena(c, offset, bytes, "read"));
  FY_TRY(enter(c));
  FY_TRY(CU(c, c->drv->memcpy_dtoh_async(dst, c->arena + offset, (size_t)bytes, c->stream[FY_QUEUE_COMPUTE]),
            "cuMemcpyDtoHAsync"));
  return sync_compute(c);
}

/* ---- the copy queue ---- */

static fy_status_t cuda_copy(void *ctx, int staging, uint64_t offset, uint64_t bytes) {
  cuda_t *c = ctx;
  if (staging < 0 || staging >= c->n_staging || bytes > c->staging_bytes)
    return fy_status_make(FY_INTERNAL, "cuda backend: copy of %llu bytes from staging buffer %d",
                          (unsigned long long)bytes, staging);
  FY_TRY(in_arena(c, offset, bytes, "copy"));
  FY_TRY(enter(c));
  fy_cu_stream_t s = c->stream[FY_QUEUE_COPY];
  FY_TRY(CU(c, c->drv->memcpy_htod_async(c->arena + offset, c->staging[staging], (size_t)bytes, s),
            "cuMemcpyHtoDAsync"));
  return CU(c, c->drv->event_record(c->staging_done[staging], s), "cuEventRecord");
}

static fy_status_t cuda_copy_wait(void *ctx, int staging) {
  cuda_t *c = ctx;
  if (staging < 0 || staging >= c->n_staging)
    return fy_status_make(FY_INTERNAL, "cuda backend: staging buffer %d", staging);
  FY_TRY(enter(c));
  return CU(c, c->drv->event_synchronize(c->staging_done[staging]), "cuEventSynchronize");
}

/* ---- events ---- */

static fy_status_t no_event(const cuda_t *c, int event) {
  return fy_status_make(FY_INTERNAL, "cuda backend: event %d (the schedule has %d)", event, c->n_events);
}

static fy_status_t cuda_signal(void *ctx, fy_queue_t queue, int event, int64_t value) {
  cuda_t *c = ctx;
  if (queue < 0 || queue >= FY_QUEUE_COUNT || value < 1)
    return fy_status_make(FY_INTERNAL, "cuda backend: signal of event %d to %lld", event, (long long)value);
  if (queue == FY_QUEUE_COMPUTE && c->recording >= 0)
    return fy_status_make(FY_INTERNAL, "cuda backend: an event signalled inside chunk %d", c->recording);
  FY_TRY(enter(c));
  if (event < 0 || event >= c->n_events) return no_event(c, event);
  event_ring_t *r = &c->events[event];
  int slot = (int)(value % EVENT_RING);
  FY_TRY(CU(c, c->drv->event_record(r->ev[slot], c->stream[queue]), "cuEventRecord"));
  atomic_store(&r->recorded[slot], value);
  return NULL;
}

static fy_status_t cuda_wait(void *ctx, fy_queue_t queue, int event, int64_t value) {
  cuda_t *c = ctx;
  if (queue < 0 || queue >= FY_QUEUE_COUNT)
    return fy_status_make(FY_INTERNAL, "cuda backend: wait on queue %d", (int)queue);
  if (value <= 0) return NULL;
  if (queue == FY_QUEUE_COMPUTE && c->recording >= 0)
    return fy_status_make(FY_INTERNAL, "cuda backend: an event waited inside chunk %d", c->recording);
  FY_TRY(enter(c));
  if (event < 0 || event >= c->n_events) return no_event(c, event);
  event_ring_t *r = &c->events[event];
  int slot = (int)(value % EVENT_RING);
  /* The core releases a waiter only after the signal's backend call: a smaller value means it did not. */
  if (atomic_load(&r->recorded[slot]) < value)
    return fy_status_make(FY_INTERNAL, "cuda backend: wait for event %d to reach %lld before its signal", event,
                          (long long)value);
  return CU(c, c->drv->stream_wait_event(c->stream[queue], r->ev[slot], 0), "cuStreamWaitEvent");
}

/* ---- launches ---- */

static void bind_args(launch_rec_t *l) {
  for (int k = 0; k < l->n_ptrs; k++) l->args[k] = &l->ptr[k];
  l->args[l->n_ptrs] = &l->n;
  l->args[l->n_ptrs + 1] = &l->pos;
}

static fy_cu_kernel_node_params_t node_params(launch_rec_t *l) {
  bind_args(l);
  return (fy_cu_kernel_node_params_t){
      .func = l->func, .grid_x = l->dims.grid[0], .grid_y = l->dims.grid[1], .grid_z = l->dims.grid[2],
      .block_x = l->dims.block[0], .block_y = l->dims.block[1], .block_z = l->dims.block[2],
      .shared_bytes = l->dims.shared_bytes, .params = l->args};
}

static bool same_args(const launch_rec_t *a, const launch_rec_t *b) {
  return a->n == b->n && a->pos == b->pos && !memcmp(&a->dims, &b->dims, sizeof a->dims) &&
         !memcmp(a->ptr, b->ptr, sizeof a->ptr[0] * (size_t)a->n_ptrs);
}

/* The record of one device launch: function, geometry, argument pointers, rows and position. */
static fy_status_t make_launch(cuda_t *c, const fy_rt_launch_t *l, launch_rec_t *out) {
  const fy_graph_t *g = c->g;
  const fy_cmd_t *cmd = l->cmd;
  if (cmd->node < 0 || cmd->node >= g->n_nodes) return fy_status_make(FY_INTERNAL, "cuda backend: node %d", cmd->node);
  const fy_node_t *node = &g->nodes[cmd->node];
  int64_t rows = fy_cpu_node_rows(g, node, l->n_tokens);
  memset(out, 0, sizeof *out);
  out->node = cmd->node;
  out->func = c->node_func[cmd->node];
  out->n_ptrs = node->n_inputs + 1;
  out->n = rows;
  /* Only RoPE and attention read pos; the others get 0 so that a chunk's graph keeps their nodes as built. */
  out->pos = node->op == FY_OP_ROPE || node->op == FY_OP_ATTENTION ? l->pos : 0;
  for (int k = 0; k < out->n_ptrs; k++) {
    const fy_binding_t *b = &cmd->args[k];
    const fy_value_t *v = &g->values[k < node->n_inputs ? node->inputs[k] : node->output];
    if (b->kind != FY_LOC_DEVICE)
      return fy_status_make(FY_INTERNAL, "cuda backend: argument %d of a device launch is in host memory", k);
    FY_TRY(in_arena(c, b->offset, v->nbytes, "argument"));
    if (b->offset % fy_dtype_size(v->dtype))
      return fy_status_make(FY_INCOMPATIBLE, "cuda backend: %s at device offset %llu is not aligned for %s",
                            v->name, (unsigned long long)b->offset, fy_dtype_name(v->dtype));
    out->ptr[k] = c->arena + b->offset;
  }
  if (c->node_rows[cmd->node] != rows) {
    FY_TRY(fy_cuda_launch_dims(g, cmd->node, rows, &c->node_dims[cmd->node]));
    c->node_rows[cmd->node] = rows;
  }
  out->dims = c->node_dims[cmd->node];
  return NULL;
}

static fy_status_t launch_now(cuda_t *c, launch_rec_t *l) {
  bind_args(l);
  return CU(c, c->drv->launch_kernel(l->func, l->dims.grid[0], l->dims.grid[1], l->dims.grid[2], l->dims.block[0],
                                     l->dims.block[1], l->dims.block[2], l->dims.shared_bytes,
                                     c->stream[FY_QUEUE_COMPUTE], l->args, NULL),
            "cuLaunchKernel");
}

/* A host-run node: the CPU reference on host copies of its device arguments. */
static fy_status_t launch_on_host(cuda_t *c, const fy_rt_launch_t *l) {
  const fy_graph_t *g = c->g;
  const fy_node_t *node = &g->nodes[l->cmd->node];
  size_t need = 0;
  for (int k = 0; k <= node->n_inputs; k++)
    if (l->cmd->args[k].kind == FY_LOC_DEVICE)
      need += (g->values[k < node->n_inputs ? node->inputs[k] : node->output].nbytes + 63) / 64 * 64;
  if (need > c->host_scratch_bytes || !c->pool)
    return fy_status_make(FY_INTERNAL, "cuda backend: a host-run launch the schedule did not announce");
  FY_TRY(sync_compute(c));
  fy_cpu_arg_t args[MAX_ARGS];
  size_t at = 0;
  for (int k = 0; k <= node->n_inputs; k++) {
    const fy_binding_t *b = &l->cmd->args[k];
    const fy_value_t *v = &g->values[k < node->n_inputs ? node->inputs[k] : node->output];
    if (b->kind == FY_LOC_HOST_FILE) {
      args[k] = fy_cpu_arg_for_value(v, (uint8_t *)c->files[b->file].data + b->offset);
      continue;
    }
    FY_TRY(in_arena(c, b->offset, v->nbytes, "argument"));
    args[k] = fy_cpu_arg_for_value(v, c->host_scratch + at);
    FY_TRY(CU(c, c->drv->memcpy_dtoh_async(c->host_scratch + at, c->arena + b->offset, (size_t)v->nbytes,
                                           c->stream[FY_QUEUE_COMPUTE]),
              "cuMemcpyDtoHAsync"));
    at += (v->nbytes + 63) / 64 * 64;
  }
  FY_TRY(sync_compute(c));
  FY_TRY(fy_cpu_run_node(node->op, &node->attrs, args, node->n_inputs, &args[node->n_inputs],
                         fy_cpu_node_rows(g, node, l->n_tokens), l->pos, c->pool));
  /* What the op writes: its output, and attention's caches. */
  for (int k = 0; k <= node->n_inputs; k++) {
    bool written = k == node->n_inputs || (node->op == FY_OP_ATTENTION && (k == 3 || k == 4));
    const fy_binding_t *b = &l->cmd->args[k];
    const fy_value_t *v = &g->values[k < node->n_inputs ? node->inputs[k] : node->output];
    if (written && b->kind == FY_LOC_DEVICE)
      FY_TRY(CU(c, c->drv->memcpy_htod_async(c->arena + b->offset, args[k].data, (size_t)v->nbytes,
                                             c->stream[FY_QUEUE_COMPUTE]),
                "cuMemcpyHtoDAsync"));
  }
  return sync_compute(c);
}

static fy_status_t cuda_launch(void *ctx, const fy_rt_launch_t *l) {
  cuda_t *c = ctx;
  FY_TRY(enter(c));
  if (l->cmd->on_host) {
    if (c->recording >= 0)
      return fy_status_make(FY_INTERNAL, "cuda backend: a host-run node inside chunk %d", c->recording);
    return launch_on_host(c, l);
  }
  launch_rec_t rec;
  FY_TRY(make_launch(c, l, &rec));
  if (c->recording < 0) return launch_now(c, &rec);
  if (c->n_rec == c->cap_rec)
    return fy_status_make(FY_INTERNAL, "cuda backend: chunk %d is longer than the schedule's chunks", c->recording);
  c->rec[c->n_rec++] = rec;
  return NULL;
}

/* ---- chunks: CUDA graphs ---- */

static fy_status_t cuda_chunk_begin(void *ctx, int chunk) {
  cuda_t *c = ctx;
  if (c->recording >= 0)
    return fy_status_make(FY_INTERNAL, "cuda backend: chunk %d begins inside chunk %d", chunk, c->recording);
  c->recording = chunk;
  c->n_rec = 0;
  return NULL;
}

static fy_status_t build_chunk(cuda_t *c, chunk_t *k) {
  k->launches = malloc(sizeof *k->launches * (size_t)c->n_rec);
  k->nodes = calloc((size_t)c->n_rec, sizeof *k->nodes);
  if (!k->launches || !k->nodes) return oom();
  memcpy(k->launches, c->rec, sizeof *k->launches * (size_t)c->n_rec);
  k->n_launches = c->n_rec;
  FY_TRY(CU(c, c->drv->graph_create(&k->graph, 0), "cuGraphCreate"));
  for (int i = 0; i < k->n_launches; i++) {
    fy_cu_kernel_node_params_t p = node_params(&k->launches[i]);
    FY_TRY(CU(c, c->drv->graph_add_kernel_node(&k->nodes[i], k->graph, i ? &k->nodes[i - 1] : NULL, i ? 1 : 0, &p),
              "cuGraphAddKernelNode"));
  }
  return CU(c, c->drv->graph_instantiate(&k->exec, k->graph, 0), "cuGraphInstantiateWithFlags");
}

static fy_status_t cuda_chunk_end(void *ctx, int chunk) {
  cuda_t *c = ctx;
  if (c->recording != chunk)
    return fy_status_make(FY_INTERNAL, "cuda backend: chunk %d ends while chunk %d is open", chunk, c->recording);
  c->recording = -1;
  if (c->n_rec == 0) return NULL;
  FY_TRY(enter(c));
  /* Chunk ids repeat across stages: a graph is keyed by the id and its first node. */
  chunk_t *k = NULL;
  for (int i = 0; i < c->n_chunks && !k; i++)
    if (c->chunks[i].id == chunk && c->chunks[i].first_node == c->rec[0].node) k = &c->chunks[i];
  bool same = k && k->n_launches == c->n_rec;
  for (int i = 0; same && i < c->n_rec; i++) same = k->launches[i].node == c->rec[i].node;
  if (k && !same) chunk_release(c, k); /* a different sequence under the same key: rebuild */
  if (!k) {
    if (c->n_chunks == c->cap_chunks)
      return fy_status_make(FY_INTERNAL, "cuda backend: more chunks than the schedule has");
    k = &c->chunks[c->n_chunks++];
    memset(k, 0, sizeof *k);
  }
  if (!same) {
    k->id = chunk;
    k->first_node = c->rec[0].node;
    fy_status_t s = build_chunk(c, k);
    if (s) {
      chunk_release(c, k);
      k->id = -1;
      return fy_status_annotate(s, "cuda backend: building the CUDA graph of chunk %d", chunk);
    }
  } else {
    for (int i = 0; i < c->n_rec; i++) {
      if (same_args(&k->launches[i], &c->rec[i])) continue;
      k->launches[i] = c->rec[i];
      fy_cu_kernel_node_params_t p = node_params(&k->launches[i]);
      FY_TRY(CU(c, c->drv->graph_exec_kernel_node_set_params(k->exec, k->nodes[i], &p),
                "cuGraphExecKernelNodeSetParams"));
    }
  }
  return CU(c, c->drv->graph_launch(k->exec, c->stream[FY_QUEUE_COMPUTE]), "cuGraphLaunch");
}

const fy_rt_backend_t fy_rt_backend_cuda = {
    .name = "cuda",
    /* Any sm_XX plan: whether its kernels fit this GPU is decided at create (fy_cuda_choose_kernels). */
    .code_target = "sm",
    .create = cuda_create,
    .destroy = cuda_destroy,
    .arena_alloc = cuda_arena_alloc,
    .staging_alloc = cuda_staging_alloc,
    .staging = cuda_staging,
    .host_bytes = cuda_host_bytes,
    .fill = cuda_fill,
    .write = cuda_write,
    .read = cuda_read,
    .copy = cuda_copy,
    .copy_wait = cuda_copy_wait,
    .launch = cuda_launch,
    .chunk_begin = cuda_chunk_begin,
    .chunk_end = cuda_chunk_end,
    .signal = cuda_signal,
    .wait = cuda_wait,
};
