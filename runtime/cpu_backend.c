/* The cpu backend: device memory is one host arena of exactly the plan's
 * device_bytes; a launch runs the node with the CPU reference kernels
 * (codegen/cpu.h) on the calling thread and a thread pool; a copy is a memcpy
 * from the staging buffer into the arena, on the copy thread. Each queue is
 * its host thread, so the core's host timelines are the whole
 * synchronisation: signal, wait and the chunk markers do nothing here. */
#include <stdlib.h>
#include <string.h>

#include "codegen/cpu.h"
#include "runtime/backend.h"
#include "support/threadpool.h"

typedef struct cpu {
  const fy_graph_t *g;
  const fy_mapping_t *files;
  fy_threadpool_t *pool;
  uint8_t *arena;
  uint64_t arena_bytes;
  uint8_t **staging;
  int n_staging;
  size_t staging_bytes;
} cpu_t;

static fy_status_t oom(const char *what, uint64_t bytes) {
  return fy_status_make(FY_RESOURCE_EXHAUSTED, "cpu backend: out of memory for the %s (%llu bytes)", what,
                        (unsigned long long)bytes);
}

static void cpu_destroy(void *ctx) {
  cpu_t *c = ctx;
  if (!c) return;
  fy_threadpool_destroy(c->pool);
  for (int i = 0; c->staging && i < c->n_staging; i++) free(c->staging[i]);
  free(c->staging);
  free(c->arena);
  free(c);
}

static fy_status_t cpu_create(const fy_rt_backend_params_t *p, void **out_ctx) {
  cpu_t *c = calloc(1, sizeof *c);
  if (!c) return oom("backend", sizeof *c);
  c->g = p->graph;
  c->files = p->files;
  fy_status_t s = fy_threadpool_create(p->n_threads, &c->pool);
  if (s) {
    cpu_destroy(c);
    return s;
  }
  *out_ctx = c;
  return NULL;
}

static fy_status_t cpu_arena_alloc(void *ctx, uint64_t bytes) {
  cpu_t *c = ctx;
  if (c->arena) return fy_status_make(FY_INTERNAL, "cpu backend: the arena is allocated once");
  if (bytes > SIZE_MAX - 1) return oom("device arena", bytes);
  /* calloc: the same bytes every run when nothing poisons them. */
  c->arena = calloc(1, (size_t)bytes + 1);
  if (!c->arena) return oom("device arena", bytes);
  c->arena_bytes = bytes;
  return NULL;
}

static fy_status_t cpu_staging_alloc(void *ctx, int count, size_t bytes) {
  cpu_t *c = ctx;
  if (c->staging || count < 1) return fy_status_make(FY_INTERNAL, "cpu backend: staging is allocated once");
  c->staging = calloc((size_t)count, sizeof *c->staging);
  if (!c->staging) return oom("staging ring", (uint64_t)count * bytes);
  c->n_staging = count;
  c->staging_bytes = bytes;
  for (int i = 0; i < count; i++)
    if (!(c->staging[i] = malloc(bytes))) return oom("staging ring", (uint64_t)count * bytes);
  return NULL;
}

static void *cpu_staging(void *ctx, int index) {
  cpu_t *c = ctx;
  return index >= 0 && index < c->n_staging ? c->staging[index] : NULL;
}

static uint64_t cpu_host_bytes(void *ctx) {
  const cpu_t *c = ctx;
  return sizeof *c + c->arena_bytes + (uint64_t)c->n_staging * (c->staging_bytes + sizeof *c->staging);
}

/* The core validated every range at open; this guards the interface. */
static fy_status_t in_arena(const cpu_t *c, uint64_t offset, uint64_t bytes, const char *what) {
  if (offset > c->arena_bytes || bytes > c->arena_bytes - offset)
    return fy_status_make(FY_OUT_OF_RANGE, "cpu backend: %s of %llu bytes at %llu is past the arena (%llu bytes)",
                          what, (unsigned long long)bytes, (unsigned long long)offset,
                          (unsigned long long)c->arena_bytes);
  return NULL;
}

static fy_status_t cpu_fill(void *ctx, uint64_t offset, uint64_t bytes, const uint8_t *pattern, size_t n) {
  cpu_t *c = ctx;
  FY_TRY(in_arena(c, offset, bytes, "fill"));
  if (n == 0) return fy_status_make(FY_INTERNAL, "cpu backend: empty fill pattern");
  /* The pattern is laid from device offset 0, so an element sees the same bytes wherever a fill began;
   * a first block of whole patterns is doubled. */
  uint8_t *p = c->arena + offset;
  size_t first = 4096 - 4096 % n;
  if (first > bytes) first = (size_t)bytes;
  for (size_t i = 0; i < first; i++) p[i] = pattern[(offset + i) % n];
  for (uint64_t done = first; done < bytes;) {
    uint64_t chunk = done < bytes - done ? done : bytes - done; /* done stays a multiple of n */
    memcpy(p + done, p, (size_t)chunk);
    done += chunk;
  }
  return NULL;
}

static fy_status_t cpu_write(void *ctx, uint64_t offset, const void *src, uint64_t bytes) {
  cpu_t *c = ctx;
  FY_TRY(in_arena(c, offset, bytes, "write"));
  memcpy(c->arena + offset, src, (size_t)bytes);
  return NULL;
}

static fy_status_t cpu_read(void *ctx, uint64_t offset, void *dst, uint64_t bytes) {
  cpu_t *c = ctx;
  FY_TRY(in_arena(c, offset, bytes, "read"));
  memcpy(dst, c->arena + offset, (size_t)bytes);
  return NULL;
}

static fy_status_t cpu_copy(void *ctx, int staging, uint64_t offset, uint64_t bytes) {
  cpu_t *c = ctx;
  if (staging < 0 || staging >= c->n_staging || bytes > c->staging_bytes)
    return fy_status_make(FY_INTERNAL, "cpu backend: copy of %llu bytes from staging buffer %d",
                          (unsigned long long)bytes, staging);
  FY_TRY(in_arena(c, offset, bytes, "copy"));
  memcpy(c->arena + offset, c->staging[staging], (size_t)bytes);
  return NULL;
}

/* Copies are synchronous: a staging buffer is free again when copy returns. */
static fy_status_t cpu_copy_wait(void *ctx, int staging) {
  (void)ctx, (void)staging;
  return NULL;
}

static fy_status_t cpu_launch(void *ctx, const fy_rt_launch_t *l) {
  cpu_t *c = ctx;
  const fy_graph_t *g = c->g;
  const fy_node_t *node = &g->nodes[l->cmd->node];
  fy_cpu_arg_t args[FY_MAX_NODE_INPUTS + 1];
  for (int k = 0; k <= node->n_inputs; k++) {
    int v = k < node->n_inputs ? node->inputs[k] : node->output;
    const fy_binding_t *b = &l->cmd->args[k];
    uint8_t *base = b->kind == FY_LOC_HOST_FILE ? (uint8_t *)c->files[b->file].data : c->arena;
    args[k] = fy_cpu_arg_for_value(&g->values[v], base + b->offset);
  }
  return fy_cpu_run_node(node->op, &node->attrs, args, node->n_inputs, &args[node->n_inputs],
                         fy_cpu_node_rows(g, node, l->n_tokens), l->pos, c->pool);
}

static fy_status_t cpu_nothing(void *ctx, int chunk) {
  (void)ctx, (void)chunk;
  return NULL;
}

static fy_status_t cpu_event(void *ctx, fy_queue_t queue, int event, int64_t value) {
  (void)ctx, (void)queue, (void)event, (void)value;
  return NULL;
}

const fy_rt_backend_t fy_rt_backend_cpu = {
    .name = "cpu",
    /* Portable plans: targets/demo.json says so; CUDA plans (sm_XX) need force. */
    .code_target = "spirv",
    .create = cpu_create,
    .destroy = cpu_destroy,
    .arena_alloc = cpu_arena_alloc,
    .staging_alloc = cpu_staging_alloc,
    .staging = cpu_staging,
    .host_bytes = cpu_host_bytes,
    .fill = cpu_fill,
    .write = cpu_write,
    .read = cpu_read,
    .copy = cpu_copy,
    .copy_wait = cpu_copy_wait,
    .launch = cpu_launch,
    .chunk_begin = cpu_nothing,
    .chunk_end = cpu_nothing,
    .signal = cpu_event,
    .wait = cpu_event,
};
