/* The vulkan backend (backend.h) on the device of vulkan.h.
 *
 * Everything is made at open from the schedule: the arena, every launch's
 * descriptor sets and command buffer, every chunk's command buffer, the
 * events' semaphores; running records and allocates nothing.
 *
 * Memory: the plan's arena is device-local memory in blocks of at most
 * maxMemoryAllocationSize, one VkBuffer each, cut where no kernel argument
 * of the schedule spans the cut; a copy or fill over a cut is cut in two.
 * Kernels bind arguments through fy_spirv_bind_node, so no binding exceeds
 * maxStorageBufferRange (a large weight is split into several dispatches).
 * Staging buffers are host-visible (pinned) memory the core fills from the
 * mapped weight files.
 *
 * Queues: the copy queue is the device's transfer-only queue where it has
 * one, else the compute queue itself; each COPY is one submission signalling
 * the copy timeline, which copy_wait waits for. The plan's events are
 * timeline semaphores: SIGNAL submits a signal on its queue, WAIT makes the
 * queue's next submission wait. The core calls wait only after the matching
 * signal was submitted, so even on one VkQueue no submission waits for a
 * later one. A stage's event values restart at 1 on every run; a semaphore
 * cannot go back, so each keeps a base added to the plan's value, moved past
 * the old values when a signal value does not exceed the previous one (the
 * queues drain between stage runs, so no wait of an old run is left).
 *
 * Compute: a LAUNCH submits its command buffer (or, between CHUNK_BEGIN and
 * CHUNK_END, the chunk's one command buffer), in batches at the next event,
 * read or write. n_tokens and pos live in a small host-visible parameter
 * buffer (fy_spirv_params_t), rewritten when a step changes them, so the
 * recorded command buffers replay every step. Launches the plan runs on the
 * host (ngl-style) read their device arguments back, run the CPU reference
 * kernels and write the results, after the queue drained. Kernels are the
 * plan's ("spirv", "vulkan1.1") when it carries them, else compiled from the
 * graph at open. */
#include <stdlib.h>
#include <string.h>

#include "codegen/cpu.h"
#include "codegen/spirv.h"
#include "runtime/backend.h"
#include "runtime/vulkan.h"
#include "support/threadpool.h"

#define TIMEOUT_NS (600ull * 1000000000ull) /* a step that takes 10 minutes is a hang */
enum { MAX_PENDING = 256, N_TRANSIENT = 8, SETS_PER_POOL = 256, PATTERN_BYTES = 64 };
#define IO_MAX_BYTES ((uint64_t)4 << 20)

typedef struct block {
  fy_vk_buffer_t buf;
  uint64_t start; /* device offset of its first byte */
} block_t;

/* A launch bound once: its dispatches and, when run alone, its command buffer. */
typedef struct launch_rec {
  const fy_cmd_t *cmd;
  bool ready; /* bound (a failed binding is tried again) */
  fy_vk_launch_t launch;
  VkCommandBuffer cb;
} launch_rec_t;

/* A chunk recorded once, keyed by its first launch. */
typedef struct chunk_rec {
  const fy_cmd_t *first;
  VkCommandBuffer cb;
  const fy_cmd_t **cmds;
  int n_cmds;
} chunk_rec_t;

typedef struct event {
  VkSemaphore sem;
  int64_t last_value;   /* the plan's value last signalled */
  uint64_t base, top;   /* device value = base + plan value; top = the highest signalled */
} event_t;

typedef struct transient {
  VkCommandBuffer cb;
  uint64_t tick; /* compute timeline value that retires it */
} transient_t;

typedef enum { CHUNK_NONE, CHUNK_OPEN, CHUNK_REPLAYING } chunk_state_t;

typedef struct vkb {
  fy_vk_t *vk;
  const fy_graph_t *g;
  const fy_schedule_t *s;
  const fy_mapping_t *files;
  fy_threadpool_t *pool;
  /* Kernels. */
  fy_spirv_program_t *program;
  fy_vk_kernel_t *kernels;
  /* Device arena. */
  block_t *blocks;
  int n_blocks;
  uint64_t arena_bytes;
  /* Host-visible buffers: parameters, staging ring, io (read / write), fill pattern. */
  fy_vk_buffer_t params, io, pattern;
  fy_vk_buffer_t *staging;
  int n_staging;
  size_t staging_bytes;
  /* Copy queue (copy thread). */
  VkCommandPool copy_pool;
  VkCommandBuffer *copy_cbs;
  uint64_t *copy_done_at; /* per staging buffer: copy timeline value */
  VkSemaphore copy_timeline;
  uint64_t copy_ticks;
  VkSemaphore copy_waits[FY_VK_MAX_WAITS];
  uint64_t copy_wait_values[FY_VK_MAX_WAITS];
  int n_copy_waits;
  /* Compute queue (compute thread). */
  VkCommandPool compute_pool;
  VkSemaphore compute_timeline;
  uint64_t compute_ticks;
  VkCommandBuffer pending[MAX_PENDING];
  int n_pending;
  VkSemaphore waits[FY_VK_MAX_WAITS];
  uint64_t wait_values[FY_VK_MAX_WAITS];
  int n_waits;
  transient_t transient[N_TRANSIENT];
  int next_transient;
  VkDescriptorPool *desc_pools;
  int n_desc_pools;
  uint32_t sets_left;
  launch_rec_t *launches; /* open addressing on cmd */
  int cap_launches, n_launches;
  chunk_rec_t *chunks;
  int n_chunks, cap_chunks;
  chunk_state_t chunk_state;
  const chunk_rec_t *chunk;
  int chunk_at;
  bool params_set;
  uint32_t params_tokens, params_pos;
  /* Events (both threads). */
  pthread_mutex_t event_lock;
  event_t *events;
  int n_events;
  /* Host-run launches: one scratch buffer per argument. */
  uint8_t *scratch[FY_SPIRV_MAX_ARGS];
  uint64_t scratch_bytes;
  int validation_errors_seen;
} vkb_t;

static fy_status_t oom(void) { return fy_status_make(FY_RESOURCE_EXHAUSTED, "vulkan backend: out of memory"); }

/* ---- arena blocks ---- */

/* The block holding device offset `offset` (< arena_bytes). */
static int block_of(const vkb_t *b, uint64_t offset) {
  int lo = 0, hi = b->n_blocks - 1;
  while (lo < hi) {
    int mid = (lo + hi + 1) / 2;
    if (b->blocks[mid].start <= offset) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

static fy_status_t in_arena(const vkb_t *b, uint64_t offset, uint64_t bytes) {
  if (offset > b->arena_bytes || bytes > b->arena_bytes - offset)
    return fy_status_make(FY_OUT_OF_RANGE, "vulkan backend: %llu bytes at %llu are past the arena (%llu bytes)",
                          (unsigned long long)bytes, (unsigned long long)offset, (unsigned long long)b->arena_bytes);
  return NULL;
}

/* [offset, +bytes) in one block: a kernel argument. */
static fy_status_t locate(const vkb_t *b, uint64_t offset, uint64_t bytes, int *out_block, uint64_t *out_local) {
  FY_TRY(in_arena(b, offset, bytes));
  int k = block_of(b, offset);
  uint64_t local = offset - b->blocks[k].start;
  if (bytes > b->blocks[k].buf.bytes - local)
    return fy_status_make(FY_INTERNAL, "vulkan backend: %llu bytes at %llu cross a device allocation boundary",
                          (unsigned long long)bytes, (unsigned long long)offset);
  *out_block = k;
  *out_local = local;
  return NULL;
}

/* Calls fn for each piece of [offset, +bytes) inside one block: copies and fills. */
typedef void (*piece_fn)(vkb_t *b, VkCommandBuffer cb, void *ctx, int block, uint64_t local, uint64_t done,
                         uint64_t n);

static fy_status_t for_pieces(vkb_t *b, VkCommandBuffer cb, uint64_t offset, uint64_t bytes, piece_fn fn, void *ctx) {
  FY_TRY(in_arena(b, offset, bytes));
  for (uint64_t done = 0; done < bytes;) {
    int k = block_of(b, offset + done);
    uint64_t local = offset + done - b->blocks[k].start, n = b->blocks[k].buf.bytes - local;
    if (n > bytes - done) n = bytes - done;
    fn(b, cb, ctx, k, local, done, n);
    done += n;
  }
  return NULL;
}

/* ---- submissions ----
 * A batch's semaphore waits hold back only that batch. Every command buffer
 * starts with a barrier on all earlier commands of its queue, so a batch
 * with command buffers holds back all later ones too; a batch with waits but
 * no command buffers instead signals its queue's timeline, and the next
 * batch waits for that. */

static fy_status_t flush_signal(vkb_t *b, VkSemaphore extra, uint64_t extra_value) {
  VkSemaphore signals[2] = {b->compute_timeline, extra};
  uint64_t values[2] = {++b->compute_ticks, extra_value};
  bool waits_only = !b->n_pending && b->n_waits;
  fy_vk_batch_t batch = {.cbs = b->pending, .n_cbs = b->n_pending, .waits = b->waits, .wait_values = b->wait_values,
                         .n_waits = b->n_waits, .signals = signals, .signal_values = values,
                         .n_signals = extra ? 2 : 1};
  b->n_pending = b->n_waits = 0;
  FY_TRY(fy_vk_submit(b->vk, b->vk->compute_queue, &batch));
  if (waits_only) b->waits[0] = b->compute_timeline, b->wait_values[0] = b->compute_ticks, b->n_waits = 1;
  return NULL;
}

static fy_status_t flush(vkb_t *b) {
  if (!b->n_pending && !b->n_waits) return NULL;
  return flush_signal(b, VK_NULL_HANDLE, 0);
}

static fy_status_t enqueue(vkb_t *b, VkCommandBuffer cb) {
  if (b->n_pending == MAX_PENDING) FY_TRY(flush(b));
  b->pending[b->n_pending++] = cb;
  return NULL;
}

/* Everything submitted to the compute queue has completed. */
static fy_status_t drain(vkb_t *b) {
  FY_TRY(flush(b));
  FY_TRY(fy_vk_timeline_wait(b->vk, b->compute_timeline, b->compute_ticks, TIMEOUT_NS));
  b->n_waits = 0; /* at most the chained wait, now met */
  return NULL;
}

/* The copy queue's submissions: cb (or none) after the pending copy waits, then the copy
 * timeline and extra (optional) signalled; returns the timeline value. */
static fy_status_t copy_submit(vkb_t *b, VkCommandBuffer cb, VkSemaphore extra, uint64_t extra_value,
                               uint64_t *out_tick) {
  VkSemaphore signals[2] = {b->copy_timeline, extra};
  uint64_t values[2] = {++b->copy_ticks, extra_value};
  bool waits_only = !cb && b->n_copy_waits;
  fy_vk_batch_t batch = {.cbs = &cb, .n_cbs = cb ? 1 : 0, .waits = b->copy_waits,
                         .wait_values = b->copy_wait_values, .n_waits = b->n_copy_waits, .signals = signals,
                         .signal_values = values, .n_signals = extra ? 2 : 1};
  b->n_copy_waits = 0;
  FY_TRY(fy_vk_submit(b->vk, b->vk->transfer_queue, &batch));
  if (waits_only)
    b->copy_waits[0] = b->copy_timeline, b->copy_wait_values[0] = b->copy_ticks, b->n_copy_waits = 1;
  if (out_tick) *out_tick = b->copy_ticks;
  return NULL;
}

/* A one-shot command buffer on the compute queue; transient_end enqueues it. */
static fy_status_t transient_begin(vkb_t *b, transient_t **out) {
  transient_t *t = &b->transient[b->next_transient];
  b->next_transient = (b->next_transient + 1) % N_TRANSIENT;
  if (t->tick > b->compute_ticks) FY_TRY(flush(b));
  if (t->tick) FY_TRY(fy_vk_timeline_wait(b->vk, b->compute_timeline, t->tick, TIMEOUT_NS));
  FY_TRY(fy_vk_begin(b->vk, t->cb, true));
  fy_vk_barrier_all(b->vk, t->cb);
  *out = t;
  return NULL;
}

static fy_status_t transient_end(vkb_t *b, transient_t *t) {
  fy_vk_barrier_all(b->vk, t->cb);
  FY_TRY(fy_vk_check(b->vk->fn.vkEndCommandBuffer(t->cb), "vkEndCommandBuffer"));
  FY_TRY(enqueue(b, t->cb));
  t->tick = b->compute_ticks + 1; /* the next flush carries it */
  return NULL;
}

/* ---- lifecycle ---- */

static void vk_destroy(void *ctx) {
  vkb_t *b = ctx;
  if (!b) return;
  fy_vk_t *vk = b->vk;
  if (vk) {
    vk->fn.vkDeviceWaitIdle(vk->device);
    for (int i = 0; i < b->cap_launches; i++) fy_vk_launch_free(&b->launches[i].launch);
    for (int i = 0; i < b->n_chunks; i++) free(b->chunks[i].cmds);
    for (int i = 0; i < b->n_desc_pools; i++) vk->fn.vkDestroyDescriptorPool(vk->device, b->desc_pools[i], NULL);
    if (b->compute_pool) vk->fn.vkDestroyCommandPool(vk->device, b->compute_pool, NULL);
    if (b->copy_pool) vk->fn.vkDestroyCommandPool(vk->device, b->copy_pool, NULL);
    if (b->compute_timeline) vk->fn.vkDestroySemaphore(vk->device, b->compute_timeline, NULL);
    if (b->copy_timeline) vk->fn.vkDestroySemaphore(vk->device, b->copy_timeline, NULL);
    for (int i = 0; i < b->n_events; i++)
      if (b->events[i].sem) vk->fn.vkDestroySemaphore(vk->device, b->events[i].sem, NULL);
    for (int i = 0; b->kernels && b->program && i < b->program->n_kernels; i++) fy_vk_kernel_destroy(vk, &b->kernels[i]);
    for (int i = 0; i < b->n_blocks; i++) fy_vk_buffer_destroy(vk, &b->blocks[i].buf);
    for (int i = 0; i < b->n_staging; i++) fy_vk_buffer_destroy(vk, &b->staging[i]);
    fy_vk_buffer_destroy(vk, &b->params);
    fy_vk_buffer_destroy(vk, &b->io);
    fy_vk_buffer_destroy(vk, &b->pattern);
    fy_vk_destroy(vk);
  }
  free(b->launches);
  free(b->chunks);
  free(b->desc_pools);
  free(b->events);
  free(b->kernels);
  free(b->blocks);
  free(b->staging);
  free(b->copy_cbs);
  free(b->copy_done_at);
  for (int k = 0; k < FY_SPIRV_MAX_ARGS; k++) free(b->scratch[k]);
  fy_spirv_program_destroy(b->program);
  fy_threadpool_destroy(b->pool);
  pthread_mutex_destroy(&b->event_lock);
  free(b);
}

/* The largest input, output, activation or KV cache value: sizes the io buffer and the host-run scratch. */
static uint64_t largest_value(const fy_graph_t *g) {
  uint64_t m = 4;
  for (int i = 0; i < g->n_values; i++) {
    const fy_value_t *v = &g->values[i];
    uint64_t bytes = (uint64_t)fy_value_elements(v) * fy_dtype_size(v->dtype);
    if (v->kind != FY_VALUE_WEIGHT && bytes > m) m = bytes;
  }
  return m;
}

/* The plan's SPIR-V kernels when it carries them, else compiled from the graph now. */
static fy_status_t load_kernels(vkb_t *b, const fy_plan_kernel_t *kernels, int n_kernels) {
  const fy_plan_kernel_t *k = NULL;
  for (int i = 0; i < n_kernels && !k; i++)
    if (!strcmp(kernels[i].format, FY_SPIRV_FORMAT) && !strcmp(kernels[i].architecture, FY_SPIRV_ARCHITECTURE))
      k = &kernels[i];
  if (k) return fy_spirv_unpack(b->g, k->code, k->code_size, k->entries, k->n_entries, &b->program);
  return fy_spirv_compile_graph(b->g, &b->program);
}

static bool host_launches(const fy_schedule_t *s) {
  for (int i = 0; s && i < s->n_stages; i++)
    for (int c = 0; c < s->stages[i].n_cmds[FY_QUEUE_COMPUTE]; c++)
      if (s->stages[i].cmds[FY_QUEUE_COMPUTE][c].kind == FY_CMD_LAUNCH && s->stages[i].cmds[FY_QUEUE_COMPUTE][c].on_host)
        return true;
  return false;
}

static fy_status_t create(vkb_t *b, const fy_rt_backend_params_t *p) {
  fy_vk_options_t o = {.device = p->device};
  FY_TRY(fy_vk_create(&o, &b->vk));
  fy_vk_t *vk = b->vk;
  /* A smaller binding range than the device's, to exercise the splitter (tests). */
  const char *range = getenv("FERRY_VULKAN_MAX_RANGE");
  if (range && *range && strtoull(range, NULL, 10) >= 4 && strtoull(range, NULL, 10) < vk->max_range)
    vk->max_range = strtoull(range, NULL, 10);
  FY_TRY(fy_threadpool_create(p->n_threads, &b->pool));
  FY_TRY(load_kernels(b, p->kernels, p->n_kernels));
  if (!(b->kernels = calloc((size_t)b->program->n_kernels + 1, sizeof *b->kernels))) return oom();
  for (int i = 0; i < b->program->n_kernels; i++) FY_TRY(fy_vk_kernel_create(vk, &b->program->kernels[i], &b->kernels[i]));
  uint64_t largest = largest_value(b->g);
  FY_TRY(fy_vk_buffer_create(vk, sizeof(fy_spirv_params_t), true, &b->params));
  memset(b->params.map, 0, sizeof(fy_spirv_params_t));
  FY_TRY(fy_vk_buffer_create(vk, largest < IO_MAX_BYTES ? largest : IO_MAX_BYTES, true, &b->io));
  FY_TRY(fy_vk_buffer_create(vk, PATTERN_BYTES, true, &b->pattern));
  b->scratch_bytes = largest;
  if (host_launches(b->s))
    for (int k = 0; k < FY_SPIRV_MAX_ARGS; k++)
      if (!(b->scratch[k] = malloc((size_t)largest))) return oom();
  FY_TRY(fy_vk_commands_create(vk, vk->compute_family, &b->compute_pool));
  FY_TRY(fy_vk_commands_create(vk, vk->transfer_family, &b->copy_pool));
  FY_TRY(fy_vk_timeline_create(vk, &b->compute_timeline));
  FY_TRY(fy_vk_timeline_create(vk, &b->copy_timeline));
  for (int i = 0; i < N_TRANSIENT; i++) FY_TRY(fy_vk_command_buffer(vk, b->compute_pool, &b->transient[i].cb));
  /* One semaphore per event index, shared by the stages (one runs at a time). */
  int n_events = 0;
  for (int i = 0; b->s && i < b->s->n_stages; i++)
    if (b->s->stages[i].n_events > n_events) n_events = b->s->stages[i].n_events;
  if (!(b->events = calloc((size_t)n_events + 1, sizeof *b->events))) return oom();
  for (; b->n_events < n_events; b->n_events++) FY_TRY(fy_vk_timeline_create(vk, &b->events[b->n_events].sem));
  return NULL;
}

static fy_status_t vk_create(const fy_rt_backend_params_t *p, void **out_ctx) {
  vkb_t *b = calloc(1, sizeof *b);
  if (!b) return oom();
  pthread_mutex_init(&b->event_lock, NULL);
  b->g = p->graph;
  b->s = p->schedule;
  b->files = p->files;
  fy_status_t s = create(b, p);
  if (s) {
    vk_destroy(b);
    return fy_status_annotate(s, "vulkan backend");
  }
  *out_ctx = b;
  return NULL;
}

static fy_status_t prepare_all(vkb_t *b);

/* ---- the arena ----
 * Blocks of at most maxMemoryAllocationSize (FERRY_VULKAN_MAX_ALLOCATION
 * lowers it, for tests), cut where no kernel argument of the schedule
 * spans the cut: at multiples of 4, so an argument keeps its alignment. */

typedef struct span {
  uint64_t begin, end;
} span_t;

static int span_cmp(const void *x, const void *y) {
  const span_t *a = x, *b = y;
  return a->begin < b->begin ? -1 : a->begin > b->begin;
}

/* The device ranges kernels bind, sorted and merged where they overlap. */
static fy_status_t bound_spans(const vkb_t *b, span_t **out, int *out_n) {
  const fy_schedule_t *s = b->s;
  int n = 0, cap = 0;
  span_t *v = NULL;
  for (int i = 0; s && i < s->n_stages; i++)
    for (int c = 0; c < s->stages[i].n_cmds[FY_QUEUE_COMPUTE]; c++) {
      const fy_cmd_t *cmd = &s->stages[i].cmds[FY_QUEUE_COMPUTE][c];
      if (cmd->kind != FY_CMD_LAUNCH || cmd->on_host || cmd->node < 0 || cmd->node >= b->g->n_nodes) continue;
      const fy_node_t *nd = &b->g->nodes[cmd->node];
      for (int k = 0; k <= nd->n_inputs; k++) {
        const fy_value_t *val = &b->g->values[k < nd->n_inputs ? nd->inputs[k] : nd->output];
        if (n == cap) {
          span_t *grown = realloc(v, sizeof *v * (size_t)(cap = cap ? 2 * cap : 256));
          if (!grown) return free(v), oom();
          v = grown;
        }
        uint64_t bytes = (uint64_t)fy_value_elements(val) * fy_dtype_size(val->dtype);
        v[n++] = (span_t){cmd->args[k].offset, cmd->args[k].offset + bytes};
      }
    }
  if (n) qsort(v, (size_t)n, sizeof *v, span_cmp);
  int m = 0;
  for (int i = 0; i < n; i++) {
    if (m && v[i].begin < v[m - 1].end) {
      if (v[i].end > v[m - 1].end) v[m - 1].end = v[i].end;
    } else {
      v[m++] = v[i];
    }
  }
  *out = v;
  *out_n = m;
  return NULL;
}

/* The last cut in (start, limit]: a multiple of 4 inside no span; 0 when none. */
static uint64_t last_cut(const span_t *v, int n, uint64_t start, uint64_t limit) {
  uint64_t c = limit & ~(uint64_t)3;
  for (int i = n - 1; i >= 0 && c > start; i--) {
    if (v[i].begin >= c) continue;
    if (v[i].end <= c) return c; /* between spans */
    c = v[i].begin & ~(uint64_t)3; /* inside span i: try its start */
  }
  return c > start ? c : 0;
}

static fy_status_t vk_arena_alloc(void *ctx, uint64_t bytes) {
  vkb_t *b = ctx;
  if (b->blocks) return fy_status_make(FY_INTERNAL, "vulkan backend: the arena is allocated once");
  uint64_t limit = b->vk->max_allocation;
  const char *env = getenv("FERRY_VULKAN_MAX_ALLOCATION");
  if (env && *env && strtoull(env, NULL, 10) >= 4 && strtoull(env, NULL, 10) < limit) limit = strtoull(env, NULL, 10);
  b->arena_bytes = bytes;
  span_t *spans = NULL;
  int n_spans = 0, cap = 0;
  FY_TRY(bound_spans(b, &spans, &n_spans));
  fy_status_t s = NULL;
  for (uint64_t start = 0; !s && (start < bytes || !b->n_blocks);) {
    uint64_t end = bytes - start <= limit ? bytes : last_cut(spans, n_spans, start, start + limit);
    if (end <= start) {
      s = fy_status_make(FY_RESOURCE_EXHAUSTED, "vulkan backend: the kernel arguments at device offset %llu span more "
                         "than one allocation can hold (%llu bytes, the device's maxMemoryAllocationSize)",
                         (unsigned long long)start, (unsigned long long)limit);
      break;
    }
    if (b->n_blocks == cap) {
      block_t *grown = realloc(b->blocks, sizeof *grown * (size_t)(cap = cap ? 2 * cap : 4));
      if (!grown) {
        s = oom();
        break;
      }
      b->blocks = grown;
    }
    block_t *blk = &b->blocks[b->n_blocks];
    *blk = (block_t){.start = start};
    s = fy_status_annotate(fy_vk_buffer_create(b->vk, end > start ? end - start : 4, false, &blk->buf),
                           "vulkan backend: device arena of %llu bytes, allocation %d (at %llu)",
                           (unsigned long long)bytes, b->n_blocks + 1, (unsigned long long)start);
    if (!s) b->n_blocks++;
    start = end > start ? end : start + 4;
  }
  free(spans);
  FY_TRY(s);
  return prepare_all(b);
}

static fy_status_t vk_staging_alloc(void *ctx, int count, size_t bytes) {
  vkb_t *b = ctx;
  if (b->staging || count < 1) return fy_status_make(FY_INTERNAL, "vulkan backend: staging is allocated once");
  b->staging = calloc((size_t)count, sizeof *b->staging);
  b->copy_cbs = calloc((size_t)count, sizeof *b->copy_cbs);
  b->copy_done_at = calloc((size_t)count, sizeof *b->copy_done_at);
  if (!b->staging || !b->copy_cbs || !b->copy_done_at) return oom();
  b->staging_bytes = bytes;
  for (int i = 0; i < count; i++) {
    FY_TRY(fy_vk_buffer_create(b->vk, bytes, true, &b->staging[i]));
    b->n_staging = i + 1;
    FY_TRY(fy_vk_command_buffer(b->vk, b->copy_pool, &b->copy_cbs[i]));
  }
  return NULL;
}

static void *vk_staging(void *ctx, int index) {
  vkb_t *b = ctx;
  return index >= 0 && index < b->n_staging ? b->staging[index].map : NULL;
}

static uint64_t vk_host_bytes(void *ctx) {
  const vkb_t *b = ctx;
  uint64_t n = sizeof *b + b->params.bytes + b->io.bytes + b->pattern.bytes;
  for (int i = 0; i < b->n_staging; i++) n += b->staging[i].bytes;
  for (int k = 0; k < FY_SPIRV_MAX_ARGS; k++) n += b->scratch[k] ? b->scratch_bytes : 0;
  return n;
}

/* ---- fill, write, read ---- */

typedef struct fill_ctx {
  uint64_t offset;
  uint32_t word;
  size_t period;
} fill_ctx_t;

static void fill_piece(vkb_t *b, VkCommandBuffer cb, void *vctx, int block, uint64_t local, uint64_t done,
                       uint64_t n) {
  const fill_ctx_t *f = vctx;
  fy_vk_t *vk = b->vk;
  VkBuffer dst = b->blocks[block].buf.buffer;
  /* Unaligned head and tail bytes come from the pattern buffer, laid out from device offset 0. */
  uint64_t head = (4 - local % 4) % 4;
  if (head > n) head = n;
  uint64_t body = (n - head) & ~(uint64_t)3, tail = n - head - body;
  uint64_t at = f->offset + done;
  if (head) vk->fn.vkCmdCopyBuffer(cb, b->pattern.buffer, dst, 1, &(VkBufferCopy){at % f->period, local, head});
  if (body) vk->fn.vkCmdFillBuffer(cb, dst, local + head, body, f->word);
  if (tail)
    vk->fn.vkCmdCopyBuffer(cb, b->pattern.buffer, dst, 1,
                           &(VkBufferCopy){(at + head + body) % f->period, local + head + body, tail});
}

static fy_status_t vk_fill(void *ctx, uint64_t offset, uint64_t bytes, const uint8_t *pattern, size_t n) {
  vkb_t *b = ctx;
  if (n == 0 || 4 % n)
    return fy_status_make(FY_INVALID_ARGUMENT, "vulkan backend: a fill pattern of %zu bytes (1, 2 or 4)", n);
  uint8_t *p = b->pattern.map;
  for (size_t i = 0; i < PATTERN_BYTES; i++) p[i] = pattern[i % n];
  fill_ctx_t f = {offset, 0, n};
  memcpy(&f.word, p, 4); /* a 4-aligned device offset starts a period */
  transient_t *t;
  FY_TRY(transient_begin(b, &t));
  FY_TRY(for_pieces(b, t->cb, offset, bytes, fill_piece, &f));
  FY_TRY(transient_end(b, t));
  /* The pattern buffer is shared by every fill: this one must be done before the next rewrites it. */
  return drain(b);
}

typedef struct io_ctx {
  bool to_device;
  uint64_t io_offset;
} io_ctx_t;

static void io_piece(vkb_t *b, VkCommandBuffer cb, void *vctx, int block, uint64_t local, uint64_t done,
                     uint64_t n) {
  const io_ctx_t *io = vctx;
  VkBuffer dev = b->blocks[block].buf.buffer;
  if (io->to_device)
    b->vk->fn.vkCmdCopyBuffer(cb, b->io.buffer, dev, 1, &(VkBufferCopy){io->io_offset + done, local, n});
  else
    b->vk->fn.vkCmdCopyBuffer(cb, dev, b->io.buffer, 1, &(VkBufferCopy){local, io->io_offset + done, n});
}

/* Host <-> arena through the io buffer, synchronously, after the compute queue drained. */
static fy_status_t transfer(vkb_t *b, uint64_t offset, void *host, uint64_t bytes, bool to_device) {
  FY_TRY(drain(b));
  for (uint64_t done = 0; done < bytes;) {
    uint64_t n = bytes - done < b->io.bytes ? bytes - done : b->io.bytes;
    if (to_device) memcpy(b->io.map, (uint8_t *)host + done, (size_t)n);
    transient_t *t;
    FY_TRY(transient_begin(b, &t));
    FY_TRY(for_pieces(b, t->cb, offset + done, n, io_piece, &(io_ctx_t){to_device, 0}));
    FY_TRY(transient_end(b, t));
    FY_TRY(drain(b));
    if (!to_device) memcpy((uint8_t *)host + done, b->io.map, (size_t)n);
    done += n;
  }
  return NULL;
}

static fy_status_t vk_write(void *ctx, uint64_t offset, const void *src, uint64_t bytes) {
  return transfer(ctx, offset, (void *)src, bytes, true);
}

/* Errors the kernels raised in the step, and the validation layer's. */
static fy_status_t step_errors(vkb_t *b) {
  fy_spirv_params_t *p = b->params.map;
  uint32_t e = p->error;
  p->error = 0;
  if (e & FY_SPIRV_ERROR_TOKEN)
    return fy_status_make(FY_OUT_OF_RANGE, "vulkan backend: a token id is outside the vocabulary of %lld",
                          (long long)b->g->config.vocab);
  if (e & FY_SPIRV_ERROR_KV)
    return fy_status_make(FY_OUT_OF_RANGE, "vulkan backend: positions past the KV cache of %lld tokens",
                          (long long)b->g->context);
  char first[1024];
  int n = fy_vk_errors(b->vk, first, sizeof first);
  if (n > b->validation_errors_seen) {
    b->validation_errors_seen = n;
    return fy_status_make(FY_INTERNAL, "vulkan backend: the validation layer reports %d errors; the first: %s", n,
                          first);
  }
  return NULL;
}

static fy_status_t vk_read(void *ctx, uint64_t offset, void *dst, uint64_t bytes) {
  vkb_t *b = ctx;
  FY_TRY(transfer(b, offset, dst, bytes, false));
  return step_errors(b);
}

/* ---- copy queue ---- */

typedef struct copy_ctx {
  VkBuffer src;
} copy_ctx_t;

static void copy_piece(vkb_t *b, VkCommandBuffer cb, void *vctx, int block, uint64_t local, uint64_t done,
                       uint64_t n) {
  const copy_ctx_t *c = vctx;
  b->vk->fn.vkCmdCopyBuffer(cb, c->src, b->blocks[block].buf.buffer, 1, &(VkBufferCopy){done, local, n});
}

static fy_status_t vk_copy_wait(void *ctx, int staging) {
  vkb_t *b = ctx;
  if (staging < 0 || staging >= b->n_staging)
    return fy_status_make(FY_INTERNAL, "vulkan backend: staging buffer %d", staging);
  if (!b->copy_done_at[staging]) return NULL;
  return fy_vk_timeline_wait(b->vk, b->copy_timeline, b->copy_done_at[staging], TIMEOUT_NS);
}

static fy_status_t vk_copy(void *ctx, int staging, uint64_t offset, uint64_t bytes) {
  vkb_t *b = ctx;
  fy_vk_t *vk = b->vk;
  if (staging < 0 || staging >= b->n_staging || bytes > b->staging_bytes)
    return fy_status_make(FY_INTERNAL, "vulkan backend: copy of %llu bytes from staging buffer %d",
                          (unsigned long long)bytes, staging);
  FY_TRY(vk_copy_wait(b, staging)); /* its command buffer is free again */
  VkCommandBuffer cb = b->copy_cbs[staging];
  FY_TRY(fy_vk_begin(vk, cb, true));
  fy_vk_barrier_queue(vk, cb, vk->dedicated_transfer);
  FY_TRY(for_pieces(b, cb, offset, bytes, copy_piece, &(copy_ctx_t){b->staging[staging].buffer}));
  FY_TRY(fy_vk_check(vk->fn.vkEndCommandBuffer(cb), "vkEndCommandBuffer"));
  return copy_submit(b, cb, VK_NULL_HANDLE, 0, &b->copy_done_at[staging]);
}

/* ---- events ---- */

static fy_status_t event_at(vkb_t *b, int e, event_t **out) {
  if (e < 0 || e >= b->n_events)
    return fy_status_make(FY_INTERNAL, "vulkan backend: event %d of %d", e, b->n_events);
  *out = &b->events[e];
  return NULL;
}

static fy_status_t vk_signal(void *ctx, fy_queue_t queue, int e, int64_t value) {
  vkb_t *b = ctx;
  pthread_mutex_lock(&b->event_lock);
  event_t *ev = NULL;
  fy_status_t s = event_at(b, e, &ev);
  VkSemaphore sem = VK_NULL_HANDLE;
  uint64_t dev = 0;
  if (!s) {
    if (value <= ev->last_value) ev->base = ev->top; /* a new run of the stage */
    ev->last_value = value;
    dev = ev->top = ev->base + (uint64_t)value;
    sem = ev->sem;
  }
  pthread_mutex_unlock(&b->event_lock);
  FY_TRY(s);
  if (queue == FY_QUEUE_COMPUTE) return flush_signal(b, sem, dev);
  return copy_submit(b, VK_NULL_HANDLE, sem, dev, NULL);
}

static fy_status_t vk_wait(void *ctx, fy_queue_t queue, int e, int64_t value) {
  vkb_t *b = ctx;
  pthread_mutex_lock(&b->event_lock);
  event_t *ev = NULL;
  fy_status_t s = event_at(b, e, &ev);
  VkSemaphore sem = s ? VK_NULL_HANDLE : ev->sem;
  uint64_t dev = s ? 0 : ev->base + (uint64_t)value;
  pthread_mutex_unlock(&b->event_lock);
  FY_TRY(s);
  if (queue == FY_QUEUE_COMPUTE) {
    if (b->n_pending) FY_TRY(flush(b)); /* what came before the WAIT does not wait */
    if (b->n_waits == FY_VK_MAX_WAITS) FY_TRY(flush(b));
    b->waits[b->n_waits] = sem, b->wait_values[b->n_waits++] = dev;
    return NULL;
  }
  if (b->n_copy_waits == FY_VK_MAX_WAITS) FY_TRY(copy_submit(b, VK_NULL_HANDLE, VK_NULL_HANDLE, 0, NULL));
  b->copy_waits[b->n_copy_waits] = sem, b->copy_wait_values[b->n_copy_waits++] = dev;
  return NULL;
}

/* ---- launches ---- */

static size_t ptr_hash(const void *p, int cap) { return (size_t)(((uintptr_t)p >> 3) * 0x9e3779b97f4a7c15ull) % (size_t)cap; }

static fy_status_t launch_slot(vkb_t *b, const fy_cmd_t *cmd, launch_rec_t **out) {
  if (2 * (b->n_launches + 1) > b->cap_launches) {
    int cap = b->cap_launches ? 2 * b->cap_launches : 256;
    launch_rec_t *t = calloc((size_t)cap, sizeof *t);
    if (!t) return oom();
    for (int i = 0; i < b->cap_launches; i++) {
      if (!b->launches[i].cmd) continue;
      size_t h = ptr_hash(b->launches[i].cmd, cap);
      while (t[h].cmd) h = (h + 1) % (size_t)cap;
      t[h] = b->launches[i];
    }
    free(b->launches);
    b->launches = t;
    b->cap_launches = cap;
  }
  size_t h = ptr_hash(cmd, b->cap_launches);
  while (b->launches[h].cmd && b->launches[h].cmd != cmd) h = (h + 1) % (size_t)b->cap_launches;
  if (!b->launches[h].cmd) b->launches[h].cmd = cmd, b->n_launches++;
  *out = &b->launches[h];
  return NULL;
}

/* Binds cmd's arguments once. */
static fy_status_t prepare(vkb_t *b, const fy_cmd_t *cmd, launch_rec_t **out) {
  FY_TRY(launch_slot(b, cmd, out));
  if ((*out)->ready) return NULL;
  const fy_graph_t *g = b->g;
  if (cmd->node < 0 || cmd->node >= g->n_nodes) return fy_status_make(FY_INTERNAL, "launch of node %d", cmd->node);
  const fy_node_t *n = &g->nodes[cmd->node];
  fy_spirv_args_t args = {0};
  VkBuffer buffers[FY_SPIRV_MAX_ARGS];
  for (int k = 0; k <= n->n_inputs; k++) {
    const fy_value_t *v = &g->values[k < n->n_inputs ? n->inputs[k] : n->output];
    if (cmd->args[k].kind != FY_LOC_DEVICE)
      return fy_status_make(FY_INTERNAL, "argument %d (%s) of a device launch is in host memory", k, v->name);
    int block = 0;
    uint64_t local = 0;
    FY_TRY(fy_status_annotate(locate(b, cmd->args[k].offset, (uint64_t)fy_value_elements(v) * fy_dtype_size(v->dtype),
                                     &block, &local),
                              "argument %d (%s)", k, v->name));
    buffers[k] = b->blocks[block].buf.buffer;
    args.offset[k] = local;
    args.buffer_bytes[k] = b->blocks[block].buf.bytes;
  }
  const fy_vk_kernel_t *kernel = &b->kernels[b->program->node_kernel[cmd->node]];
  /* Dispatch parts need one descriptor set each: a pool is replaced when it cannot hold them. */
  fy_spirv_part_t *parts;
  int n_parts;
  FY_TRY(fy_spirv_bind_node(g, cmd->node, &args, b->vk->align, b->vk->max_range, &parts, &n_parts));
  free(parts);
  if ((uint32_t)n_parts > b->sets_left) {
    VkDescriptorPool *grown = realloc(b->desc_pools, sizeof *grown * (size_t)(b->n_desc_pools + 1));
    if (!grown) return oom();
    b->desc_pools = grown;
    uint32_t sets = (uint32_t)n_parts > SETS_PER_POOL ? (uint32_t)n_parts : SETS_PER_POOL;
    FY_TRY(fy_vk_pool_create(b->vk, sets, &b->desc_pools[b->n_desc_pools]));
    b->n_desc_pools++;
    b->sets_left = sets;
  }
  FY_TRY(fy_vk_launch_prepare(b->vk, b->desc_pools[b->n_desc_pools - 1], g, cmd->node, kernel, b->params.buffer,
                              buffers, &args, &(*out)->launch));
  b->sets_left -= (uint32_t)n_parts;
  (*out)->ready = true;
  return NULL;
}

static fy_status_t record_alone(vkb_t *b, launch_rec_t *r) {
  FY_TRY(fy_vk_command_buffer(b->vk, b->compute_pool, &r->cb));
  FY_TRY(fy_vk_begin(b->vk, r->cb, false));
  fy_vk_barrier_all(b->vk, r->cb);
  fy_vk_launch_record(b->vk, r->cb, &r->launch);
  return fy_vk_check(b->vk->fn.vkEndCommandBuffer(r->cb), "vkEndCommandBuffer");
}

/* The step's n_tokens and pos, in the parameter buffer. */
static fy_status_t set_params(vkb_t *b, int64_t n_tokens, int64_t pos) {
  if (b->params_set && b->params_tokens == (uint32_t)n_tokens && b->params_pos == (uint32_t)pos) return NULL;
  if (n_tokens < 1 || pos < 0 || n_tokens > UINT32_MAX || pos > UINT32_MAX)
    return fy_status_make(FY_INVALID_ARGUMENT, "vulkan backend: %lld tokens at position %lld",
                          (long long)n_tokens, (long long)pos);
  FY_TRY(drain(b)); /* no submitted dispatch reads the old values any more */
  fy_spirv_params_t *p = b->params.map;
  p->n_tokens = (uint32_t)n_tokens;
  p->pos = (uint32_t)pos;
  b->params_tokens = (uint32_t)n_tokens, b->params_pos = (uint32_t)pos, b->params_set = true;
  return NULL;
}

/* A launch the plan runs on the host: device arguments through scratch memory. */
static fy_status_t launch_on_host(vkb_t *b, const fy_rt_launch_t *l) {
  const fy_graph_t *g = b->g;
  const fy_node_t *n = &g->nodes[l->cmd->node];
  fy_cpu_arg_t args[FY_SPIRV_MAX_ARGS];
  uint64_t bytes[FY_SPIRV_MAX_ARGS];
  for (int k = 0; k <= n->n_inputs; k++) {
    const fy_value_t *v = &g->values[k < n->n_inputs ? n->inputs[k] : n->output];
    const fy_binding_t *bd = &l->cmd->args[k];
    bytes[k] = (uint64_t)fy_value_elements(v) * fy_dtype_size(v->dtype);
    if (bd->kind == FY_LOC_HOST_FILE) {
      args[k] = fy_cpu_arg_for_value(v, (uint8_t *)b->files[bd->file].data + bd->offset);
      continue;
    }
    if (bytes[k] > b->scratch_bytes)
      return fy_status_make(FY_INTERNAL, "vulkan backend: %s exceeds the host scratch", v->name);
    if (!b->scratch[k]) return fy_status_make(FY_INTERNAL, "vulkan backend: a host launch the schedule did not show");
    if (k < n->n_inputs) FY_TRY(transfer(b, bd->offset, b->scratch[k], bytes[k], false));
    args[k] = fy_cpu_arg_for_value(v, b->scratch[k]);
  }
  FY_TRY(fy_cpu_run_node(n->op, &n->attrs, args, n->n_inputs, &args[n->n_inputs],
                         fy_cpu_node_rows(g, n, l->n_tokens), l->pos, b->pool));
  /* The output, and the KV caches attention wrote. */
  for (int k = 0; k <= n->n_inputs; k++) {
    bool written = k == n->n_inputs || (n->op == FY_OP_ATTENTION && (k == 3 || k == 4));
    if (written && l->cmd->args[k].kind == FY_LOC_DEVICE)
      FY_TRY(transfer(b, l->cmd->args[k].offset, b->scratch[k], bytes[k], true));
  }
  return NULL;
}

static fy_status_t vk_launch(void *ctx, const fy_rt_launch_t *l) {
  vkb_t *b = ctx;
  if (l->cmd->on_host) return launch_on_host(b, l);
  FY_TRY(set_params(b, l->n_tokens, l->pos));
  if (b->chunk_state == CHUNK_OPEN) {
    /* A chunk is known by its first launch; one that was not recorded runs launch by launch. */
    b->chunk = NULL;
    for (int i = 0; i < b->n_chunks && !b->chunk; i++)
      if (b->chunks[i].first == l->cmd) b->chunk = &b->chunks[i];
    b->chunk_state = b->chunk ? CHUNK_REPLAYING : CHUNK_NONE;
    b->chunk_at = 0;
  }
  if (b->chunk_state == CHUNK_REPLAYING) {
    const chunk_rec_t *c = b->chunk;
    if (b->chunk_at >= c->n_cmds || c->cmds[b->chunk_at] != l->cmd)
      return fy_status_make(FY_INTERNAL, "vulkan backend: a chunk replays other launches than it recorded");
    b->chunk_at++;
    return NULL;
  }
  launch_rec_t *r = NULL;
  FY_TRY(prepare(b, l->cmd, &r));
  if (!r->cb) FY_TRY(record_alone(b, r));
  return enqueue(b, r->cb);
}

static fy_status_t vk_chunk_begin(void *ctx, int chunk) {
  vkb_t *b = ctx;
  (void)chunk;
  if (b->chunk_state != CHUNK_NONE) return fy_status_make(FY_INTERNAL, "vulkan backend: nested chunks");
  b->chunk_state = CHUNK_OPEN;
  return NULL;
}

static fy_status_t vk_chunk_end(void *ctx, int chunk) {
  vkb_t *b = ctx;
  (void)chunk;
  chunk_state_t state = b->chunk_state;
  const chunk_rec_t *c = b->chunk;
  b->chunk_state = CHUNK_NONE;
  b->chunk = NULL;
  if (state != CHUNK_REPLAYING) return NULL;
  if (b->chunk_at != c->n_cmds)
    return fy_status_make(FY_INTERNAL, "vulkan backend: a chunk replays fewer launches than it recorded");
  return enqueue(b, c->cb);
}

/* ---- preparation at open: every launch bound, every chunk recorded ---- */

/* Records the launches of cmds[begin, end) (a chunk's) into one command buffer. */
static fy_status_t record_chunk(vkb_t *b, const fy_cmd_t *cmds, int begin, int end) {
  /* Launches on the device only; anything else (a host launch, an event, an
   * eviction) must keep its place between them: such a chunk runs launch by launch. */
  for (int c = begin; c < end; c++)
    if (cmds[c].kind != FY_CMD_LAUNCH || cmds[c].on_host) return NULL;
  int n = end - begin;
  if (!n) return NULL;
  if (b->n_chunks == b->cap_chunks) {
    int cap = b->cap_chunks ? 2 * b->cap_chunks : 16;
    chunk_rec_t *grown = realloc(b->chunks, sizeof *grown * (size_t)cap);
    if (!grown) return oom();
    b->chunks = grown, b->cap_chunks = cap;
  }
  chunk_rec_t *ch = &b->chunks[b->n_chunks];
  *ch = (chunk_rec_t){.cmds = calloc((size_t)n, sizeof *ch->cmds)};
  if (!ch->cmds) return oom();
  b->n_chunks++;
  FY_TRY(fy_vk_command_buffer(b->vk, b->compute_pool, &ch->cb));
  FY_TRY(fy_vk_begin(b->vk, ch->cb, false));
  fy_vk_barrier_all(b->vk, ch->cb);
  for (int c = begin; c < end; c++) {
    launch_rec_t *r = NULL;
    FY_TRY(prepare(b, &cmds[c], &r));
    fy_vk_launch_record(b->vk, ch->cb, &r->launch);
    if (!ch->n_cmds) ch->first = &cmds[c];
    ch->cmds[ch->n_cmds++] = &cmds[c];
  }
  return fy_vk_check(b->vk->fn.vkEndCommandBuffer(ch->cb), "vkEndCommandBuffer");
}

static fy_status_t prepare_all(vkb_t *b) {
  for (int i = 0; b->s && i < b->s->n_stages; i++) {
    const fy_cmd_t *cmds = b->s->stages[i].cmds[FY_QUEUE_COMPUTE];
    int n = b->s->stages[i].n_cmds[FY_QUEUE_COMPUTE];
    for (int c = 0; c < n; c++) {
      if (cmds[c].kind == FY_CMD_CHUNK_BEGIN) {
        int end = c + 1;
        while (end < n && cmds[end].kind != FY_CMD_CHUNK_END) end++;
        FY_TRY(fy_status_annotate(record_chunk(b, cmds, c + 1, end), "stage %s: chunk at command %d",
                                  b->s->stages[i].name, c));
        c = end;
        continue;
      }
      if (cmds[c].kind != FY_CMD_LAUNCH || cmds[c].on_host) continue;
      launch_rec_t *r = NULL;
      FY_TRY(fy_status_annotate(prepare(b, &cmds[c], &r), "stage %s: command %d (node %s)", b->s->stages[i].name, c,
                                b->g->nodes[cmds[c].node].name));
      if (!r->cb) FY_TRY(record_alone(b, r));
    }
  }
  return NULL;
}

const fy_rt_backend_t fy_rt_backend_vulkan = {
    .name = "vulkan",
    .code_target = "spirv",
    .create = vk_create,
    .destroy = vk_destroy,
    .arena_alloc = vk_arena_alloc,
    .staging_alloc = vk_staging_alloc,
    .staging = vk_staging,
    .host_bytes = vk_host_bytes,
    .fill = vk_fill,
    .write = vk_write,
    .read = vk_read,
    .copy = vk_copy,
    .copy_wait = vk_copy_wait,
    .launch = vk_launch,
    .chunk_begin = vk_chunk_begin,
    .chunk_end = vk_chunk_end,
    .signal = vk_signal,
    .wait = vk_wait,
};
