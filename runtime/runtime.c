/* The runtime: replays a schedule's command streams on a backend.
 *
 * Threads: the copy queue runs on a copy thread, the compute queue on the
 * caller's thread (fy_rt_prefill / fy_rt_decode); they meet only at the
 * plan's events (sync.h). Stages:
 *   - "load" (graph_stage -1) runs once at open: the resident weights;
 *   - prefill runs one step of the "prefill" stage over the prompt;
 *   - right after it, the copy thread starts replaying the "decode" stage's
 *     copy list, step after step up to the stage's repeat, as far ahead as
 *     the events let it; each fy_rt_decode runs one compute step.
 * Both queues drain between stages; a new prefill or close cancels the
 * decode run-ahead first.
 *
 * Copies are staged: from the mapped file into a ring of staging buffers,
 * then to the device, a buffer at a time, so a file is never touched whole;
 * with emulate_h2d_gbps each copy also takes at least bytes / bandwidth.
 * Everything is allocated at open; running allocates nothing but error
 * statuses. */
#include "runtime/runtime.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/backend.h"
#include "runtime/bind.h"
#include "runtime/sync.h"
#include "schedules/trace.h"
#include "schedules/plan.h"

#define COMPUTE FY_QUEUE_COMPUTE
#define COPY FY_QUEUE_COPY

/* Staging ring: 4 buffers of up to 4 MiB, enough to keep a copy engine fed
 * while the next buffer is filled; smaller when the plan's copies are. */
enum { STAGING_COUNT = 4 };
#define STAGING_MAX_BYTES ((size_t)4 << 20)
#define STAGING_MIN_BYTES ((size_t)4 << 10)

enum { DEFAULT_TRACE_STEPS = 8 };

/* A graph stage's token input and logits output, by value and device place. */
typedef struct stage_io {
  int stage; /* schedule stage index */
  int tokens, logits;
  uint64_t tokens_offset, logits_offset;
} stage_io_t;

struct fy_rt {
  fy_plan_t *plan; /* owned when opened from a file */
  const fy_graph_t *g;
  const fy_schedule_t *s;
  fy_rt_options_t options;
  const fy_rt_backend_t *be;
  void *ctx;
  fy_mapping_t *files;
  char **paths;
  fy_sync_t sync;
  bool sync_ready;
  pthread_t copy_thread;
  bool copy_thread_started;
  uint8_t *staging[STAGING_COUNT];
  size_t staging_bytes;
  int staging_next;
  double device_copy_seconds_per_byte; /* the last staging buffer's device copy (copy thread) */
  struct timespec origin;
  stage_io_t prefill, decode;
  fy_rt_stage_stats_t *stats; /* per schedule stage */
  int64_t position, decode_step;
  bool in_sequence;
  /* Trace: spans per queue, preallocated; steps started per stage and queue. */
  fy_sim_span_t *spans[FY_QUEUE_COUNT];
  int64_t cap_spans[FY_QUEUE_COUNT];
  _Atomic int64_t n_spans[FY_QUEUE_COUNT];
  int64_t *steps_started[FY_QUEUE_COUNT];
  int trace_steps;
  uint64_t own_bytes; /* what this file allocated */
};

static const uint8_t poison_pattern[2] = {FY_RT_POISON_BYTE0, FY_RT_POISON_BYTE1};

static double seconds_since(const struct timespec *origin) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)(t.tv_sec - origin->tv_sec) + (double)(t.tv_nsec - origin->tv_nsec) * 1e-9;
}

static void *rt_calloc(fy_rt_t *rt, size_t count, size_t size) {
  void *p = calloc(count ? count : 1, size);
  if (p) rt->own_bytes += (uint64_t)(count ? count : 1) * size;
  return p;
}

static fy_status_t oom(void) { return fy_status_make(FY_RESOURCE_EXHAUSTED, "runtime: out of memory"); }

/* ---- executing commands ---- */

static void record_span(fy_rt_t *rt, int stage, fy_queue_t q, int cmd, int64_t step, double start) {
  int64_t n = atomic_load_explicit(&rt->n_spans[q], memory_order_relaxed);
  if (n >= rt->cap_spans[q]) return;
  rt->spans[q][n] = (fy_sim_span_t){stage, q, cmd, step, start, seconds_since(&rt->origin)};
  atomic_store_explicit(&rt->n_spans[q], n + 1, memory_order_release);
}

/* Copies one COPY command through the staging ring; stops early when the job is cancelled. */
static fy_status_t staged_copy(fy_rt_t *rt, const fy_cmd_t *cmd, bool *out_cancelled) {
  const uint8_t *src = rt->files[cmd->file].data + cmd->file_offset;
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  double rate = rt->options.emulate_h2d_gbps * 1e9;
  for (uint64_t done = 0; done < cmd->bytes;) {
    if (fy_sync_cancelled(&rt->sync)) {
      *out_cancelled = true;
      return NULL;
    }
    size_t n = cmd->bytes - done < rt->staging_bytes ? (size_t)(cmd->bytes - done) : rt->staging_bytes;
    int i = rt->staging_next;
    rt->staging_next = (i + 1) % STAGING_COUNT;
    FY_TRY(rt->be->copy_wait(rt->ctx, i));
    memcpy(rt->staging[i], src + done, n); /* the pinned step: page faults of the mapping land here */
    if (rate > 0) {
      /* An emulated bus delivers a buffer when its bytes have crossed, not before: sleep until then,
       * less the time the device copy itself is expected to take (measured on the previous buffers). */
      double at = (double)(done + n) / rate - rt->device_copy_seconds_per_byte * (double)n;
      struct timespec deadline = t0;
      if (at > 0) {
        deadline.tv_sec += (time_t)at;
        deadline.tv_nsec += (long)((at - (double)(time_t)at) * 1e9);
        if (deadline.tv_nsec >= 1000000000L) deadline.tv_sec++, deadline.tv_nsec -= 1000000000L;
      }
      if (!fy_sync_sleep_until(&rt->sync, &deadline)) {
        *out_cancelled = true;
        return NULL;
      }
    }
    double c0 = seconds_since(&rt->origin);
    FY_TRY(rt->be->copy(rt->ctx, i, cmd->device_offset + done, n));
    rt->device_copy_seconds_per_byte = (seconds_since(&rt->origin) - c0) / (double)n;
    done += n;
  }
  return NULL;
}

/* Runs command i of queue q of schedule stage `stage` in `step`. */
static fy_status_t run_cmd(fy_rt_t *rt, int stage, fy_queue_t q, int i, int64_t step, int64_t n_tokens, bool trace,
                           bool *out_cancelled) {
  const fy_cmd_t *cmd = &rt->s->stages[stage].cmds[q][i];
  fy_rt_stage_stats_t *stats = &rt->stats[stage];
  double start = seconds_since(&rt->origin);
  switch (cmd->kind) {
    case FY_CMD_WAIT: {
      int64_t value = step + 1 + cmd->step_delta;
      if (value <= 0) break;
      FY_TRY(fy_sync_wait(&rt->sync, q, cmd->event, value, out_cancelled));
      if (*out_cancelled) return NULL;
      FY_TRY(rt->be->wait(rt->ctx, q, cmd->event, value));
      if (q == COMPUTE) stats->wait_seconds += seconds_since(&rt->origin) - start;
      break;
    }
    case FY_CMD_SIGNAL:
      FY_TRY(rt->be->signal(rt->ctx, q, cmd->event, step + 1));
      fy_sync_signal(&rt->sync, cmd->event, step + 1);
      break;
    case FY_CMD_COPY: {
      FY_TRY(staged_copy(rt, cmd, out_cancelled));
      double busy = seconds_since(&rt->origin) - start;
      fy_sync_lock(&rt->sync);
      stats->copy_seconds += busy;
      if (!*out_cancelled) stats->copied_bytes += cmd->bytes;
      fy_sync_unlock(&rt->sync);
      if (*out_cancelled) return NULL;
      break;
    }
    case FY_CMD_LAUNCH:
      FY_TRY(fy_status_annotate(rt->be->launch(rt->ctx, &(fy_rt_launch_t){cmd, n_tokens, rt->position}),
                                "stage %s step %lld at position %lld: node %s", rt->s->stages[stage].name,
                                (long long)step, (long long)rt->position, rt->g->nodes[cmd->node].name));
      stats->compute_seconds += seconds_since(&rt->origin) - start;
      break;
    case FY_CMD_EVICT:
      if (rt->options.poison)
        FY_TRY(rt->be->fill(rt->ctx, cmd->device_offset, cmd->bytes, poison_pattern, sizeof poison_pattern));
      break;
    case FY_CMD_CHUNK_BEGIN: FY_TRY(rt->be->chunk_begin(rt->ctx, cmd->slot)); break;
    case FY_CMD_CHUNK_END: FY_TRY(rt->be->chunk_end(rt->ctx, cmd->slot)); break;
    default: return fy_status_make(FY_INTERNAL, "runtime: command kind %d", (int)cmd->kind);
  }
  if (trace) record_span(rt, stage, q, i, step, start);
  return NULL;
}

/* Whether queue q traces the step it starts now in `stage`. */
static bool trace_step(fy_rt_t *rt, int stage, fy_queue_t q) {
  if (!rt->options.trace) return false;
  int64_t limit = rt->s->stages[stage].graph_stage < 0 ? 1 : rt->trace_steps;
  return rt->steps_started[q][stage]++ < limit;
}

/* One compute-queue step. */
static fy_status_t compute_step(fy_rt_t *rt, int stage, int64_t step, int64_t n_tokens) {
  const fy_stage_schedule_t *st = &rt->s->stages[stage];
  bool trace = trace_step(rt, stage, COMPUTE);
  fy_sync_set_state(&rt->sync, COMPUTE, FY_QSTATE_RUNNING);
  for (int i = 0; i < st->n_cmds[COMPUTE]; i++) {
    bool cancelled = false;
    FY_TRY(run_cmd(rt, stage, COMPUTE, i, step, n_tokens, trace, &cancelled));
  }
  rt->stats[stage].steps++;
  rt->stats[stage].tokens += n_tokens;
  return NULL;
}

static fy_status_t copy_job(fy_rt_t *rt, int stage, int64_t steps) {
  const fy_stage_schedule_t *st = &rt->s->stages[stage];
  for (int64_t step = 0; step < steps; step++) {
    bool trace = trace_step(rt, stage, COPY);
    for (int i = 0; i < st->n_cmds[COPY]; i++) {
      bool cancelled = false;
      FY_TRY(run_cmd(rt, stage, COPY, i, step, 0, trace, &cancelled));
      if (cancelled) return NULL;
    }
    fy_sync_lock(&rt->sync);
    rt->stats[stage].copy_steps++;
    fy_sync_unlock(&rt->sync);
  }
  return NULL;
}

static void *copy_thread_main(void *arg) {
  fy_rt_t *rt = arg;
  int stage;
  int64_t steps;
  while (fy_sync_take_job(&rt->sync, &stage, &steps)) fy_sync_end_job(&rt->sync, copy_job(rt, stage, steps));
  return NULL;
}

/* Runs one step of a stage on both queues and drains them. */
static fy_status_t run_stage_once(fy_rt_t *rt, int stage, int64_t n_tokens) {
  fy_sync_begin_stage(&rt->sync, &rt->s->stages[stage]);
  fy_sync_start_job(&rt->sync, stage, 1);
  fy_status_t s = compute_step(rt, stage, 0, n_tokens);
  if (s) {
    fy_sync_cancel(&rt->sync);
    return s;
  }
  fy_sync_set_state(&rt->sync, COMPUTE, FY_QSTATE_FINISHED);
  fy_sync_drain(&rt->sync);
  return fy_sync_failure(&rt->sync);
}

/* ---- open and close ---- */

static fy_status_t find_io(fy_rt_t *rt, const char *name, stage_io_t *out) {
  const fy_graph_t *g = rt->g;
  const fy_schedule_t *s = rt->s;
  *out = (stage_io_t){-1, -1, -1, 0, 0};
  for (int i = 0; i < s->n_stages; i++)
    if (s->stages[i].graph_stage >= 0 && s->stages[i].name && !strcmp(s->stages[i].name, name)) out->stage = i;
  if (out->stage < 0) return fy_status_make(FY_INVALID_ARGUMENT, "the plan has no %s stage", name);
  int gs = s->stages[out->stage].graph_stage;
  for (int v = 0; v < g->n_values; v++) {
    if (g->values[v].stage != gs) continue;
    if (g->values[v].kind == FY_VALUE_INPUT) out->tokens = v;
    if (g->values[v].kind == FY_VALUE_OUTPUT) out->logits = v;
  }
  if (out->tokens < 0 || out->logits < 0 || g->values[out->tokens].dtype != FY_DTYPE_I32 ||
      g->values[out->logits].dtype != FY_DTYPE_F32 || fy_value_elements(&g->values[out->logits]) != g->config.vocab)
    return fy_status_make(FY_INVALID_ARGUMENT, "stage %s needs an i32 token input and f32 logits of %lld", name,
                          (long long)g->config.vocab);
  out->tokens_offset = s->device_offset[out->tokens];
  out->logits_offset = s->device_offset[out->logits];
  uint64_t in_bytes = (uint64_t)fy_value_elements(&g->values[out->tokens]) * sizeof(int32_t);
  uint64_t out_bytes = (uint64_t)g->config.vocab * sizeof(float);
  if (out->tokens_offset > s->device_bytes || in_bytes > s->device_bytes - out->tokens_offset ||
      out->logits_offset > s->device_bytes || out_bytes > s->device_bytes - out->logits_offset)
    return fy_status_make(FY_OUT_OF_RANGE, "stage %s: the token input or the logits have no place in device memory",
                          name);
  return NULL;
}

static size_t staging_size(const fy_schedule_t *s) {
  uint64_t largest = 0;
  for (int i = 0; i < s->n_stages; i++)
    for (int k = 0; k < s->stages[i].n_cmds[COPY]; k++)
      if (s->stages[i].cmds[COPY][k].kind == FY_CMD_COPY && s->stages[i].cmds[COPY][k].bytes > largest)
        largest = s->stages[i].cmds[COPY][k].bytes;
  if (largest >= STAGING_MAX_BYTES) return STAGING_MAX_BYTES;
  size_t rounded = ((size_t)largest + STAGING_MIN_BYTES - 1) / STAGING_MIN_BYTES * STAGING_MIN_BYTES;
  return rounded > STAGING_MIN_BYTES ? rounded : STAGING_MIN_BYTES;
}

static fy_status_t alloc_tables(fy_rt_t *rt) {
  const fy_schedule_t *s = rt->s;
  int n_files = rt->g->n_files;
  rt->files = rt_calloc(rt, (size_t)n_files, sizeof *rt->files);
  rt->paths = rt_calloc(rt, (size_t)n_files, sizeof *rt->paths);
  rt->stats = rt_calloc(rt, (size_t)s->n_stages, sizeof *rt->stats);
  if (!rt->files || !rt->paths || !rt->stats) return oom();
  for (int i = 0; i < s->n_stages; i++) rt->stats[i].name = s->stages[i].name;
  rt->trace_steps = rt->options.trace_steps > 0 ? rt->options.trace_steps : DEFAULT_TRACE_STEPS;
  if (!rt->options.trace) return NULL;
  for (int q = 0; q < FY_QUEUE_COUNT; q++) {
    int64_t cap = 0;
    for (int i = 0; i < s->n_stages; i++)
      cap += (int64_t)s->stages[i].n_cmds[q] * (s->stages[i].graph_stage < 0 ? 1 : rt->trace_steps);
    rt->cap_spans[q] = cap;
    rt->spans[q] = rt_calloc(rt, (size_t)cap, sizeof *rt->spans[q]);
    rt->steps_started[q] = rt_calloc(rt, (size_t)s->n_stages, sizeof *rt->steps_started[q]);
    if (!rt->spans[q] || !rt->steps_started[q]) return oom();
  }
  return NULL;
}

/* The backend asked for, if it runs the plan's code target (or force). */
static fy_status_t choose_backend(fy_rt_t *rt) {
  const fy_schedule_t *s = rt->s;
  const char *name = rt->options.backend ? rt->options.backend : "cpu";
  rt->be = fy_rt_backend_find(name);
  if (!rt->be) {
    char names[256];
    fy_rt_backend_names(names, sizeof names);
    return fy_status_make(FY_UNAVAILABLE, "backend '%s' is not built into this ferry (available: %s)", name, names);
  }
  if (!fy_rt_backend_runs(rt->be, s->target.code_target) && !rt->options.force)
    return fy_status_make(FY_INCOMPATIBLE, "the plan is compiled for target %s (code %s); the %s backend runs %s "
                          "plans: recompile for such a target, or force (ferry run --force) to replay it anyway",
                          s->target.name, s->target.code_target, rt->be->name, rt->be->code_target);
  return NULL;
}

static fy_status_t start_backend(fy_rt_t *rt) {
  const fy_schedule_t *s = rt->s;
  fy_rt_backend_params_t params = {.graph = rt->g, .schedule = s, .files = rt->files,
                                   .n_threads = rt->options.n_threads,
                                   .device = rt->options.pick_device ? rt->options.device : -1};
  if (rt->plan) params.kernels = rt->plan->meta.kernels, params.n_kernels = rt->plan->meta.n_kernels;
  FY_TRY(rt->be->create(&params, &rt->ctx));
  FY_TRY(rt->be->arena_alloc(rt->ctx, s->device_bytes));
  rt->staging_bytes = staging_size(s);
  FY_TRY(rt->be->staging_alloc(rt->ctx, STAGING_COUNT, rt->staging_bytes));
  for (int i = 0; i < STAGING_COUNT; i++)
    if (!(rt->staging[i] = rt->be->staging(rt->ctx, i)))
      return fy_status_make(FY_INTERNAL, "backend %s: no staging buffer %d", rt->be->name, i);
  if (rt->options.poison) FY_TRY(rt->be->fill(rt->ctx, 0, s->device_bytes, poison_pattern, sizeof poison_pattern));
  return NULL;
}

/* Points the owned graph's file paths at the bound files, for whoever runs the graph next (the reference). */
static fy_status_t adopt_paths(fy_rt_t *rt) {
  fy_graph_t *g = rt->plan->graph;
  for (int f = 0; f < g->n_files; f++) {
    const char *p = fy_arena_strdup(&g->arena, rt->paths[f]);
    if (!p) return oom();
    g->files[f].path = p;
  }
  return NULL;
}

static fy_status_t open_runtime(fy_rt_t *rt, const fy_file_fingerprint_t *prints) {
  const fy_schedule_t *s = rt->s;
  if (!s || s->graph != rt->g) return fy_status_make(FY_INVALID_ARGUMENT, "runtime: the schedule is not of this graph");
  if (rt->options.emulate_h2d_gbps < 0 || rt->options.emulate_h2d_gbps != rt->options.emulate_h2d_gbps)
    return fy_status_make(FY_INVALID_ARGUMENT, "emulate_h2d_gbps must be positive (or 0 for no throttle)");
  FY_TRY(choose_backend(rt));
  FY_TRY(alloc_tables(rt));
  FY_TRY(fy_rt_bind_files(rt->g, prints, rt->options.weights_dir, rt->files, rt->paths));
  if (rt->plan) FY_TRY(adopt_paths(rt));
  FY_TRY(fy_rt_validate_schedule(s, rt->files));
  FY_TRY(find_io(rt, "prefill", &rt->prefill));
  FY_TRY(find_io(rt, "decode", &rt->decode));
  if (s->stages[rt->decode.stage].max_tokens != 1)
    return fy_status_make(FY_INVALID_ARGUMENT, "the plan's decode stage takes %lld tokens per step, not 1",
                          (long long)s->stages[rt->decode.stage].max_tokens);
  FY_TRY(start_backend(rt));
  int max_events = 1;
  for (int i = 0; i < s->n_stages; i++)
    if (s->stages[i].n_events > max_events) max_events = s->stages[i].n_events;
  FY_TRY(fy_sync_init(&rt->sync, max_events));
  rt->sync_ready = true;
  rt->own_bytes += sizeof(int64_t) * (uint64_t)max_events;
  if (pthread_create(&rt->copy_thread, NULL, copy_thread_main, rt))
    return fy_status_make(FY_RESOURCE_EXHAUSTED, "runtime: cannot start the copy thread");
  rt->copy_thread_started = true;
  for (int i = 0; i < s->n_stages; i++) {
    if (s->stages[i].graph_stage >= 0) continue;
    double t0 = seconds_since(&rt->origin);
    FY_TRY(fy_status_annotate(run_stage_once(rt, i, 0), "stage %s", s->stages[i].name));
    rt->stats[i].wall_seconds += seconds_since(&rt->origin) - t0;
  }
  return NULL;
}

static fy_status_t open_common(fy_rt_t *rt, const fy_rt_options_t *options, const fy_file_fingerprint_t *prints,
                               fy_rt_t **out_rt) {
  rt->options = options ? *options : (fy_rt_options_t){0};
  clock_gettime(CLOCK_MONOTONIC, &rt->origin);
  fy_status_t s = open_runtime(rt, prints);
  if (s) {
    fy_rt_close(rt);
    return s;
  }
  *out_rt = rt;
  return NULL;
}

fy_status_t fy_rt_open_schedule(const fy_graph_t *g, const fy_schedule_t *s, const fy_rt_options_t *options,
                                fy_rt_t **out_rt) {
  if (!g || !s || !out_rt) return fy_status_make(FY_INVALID_ARGUMENT, "runtime: no graph or schedule");
  fy_rt_t *rt = calloc(1, sizeof *rt);
  if (!rt) return oom();
  rt->own_bytes = sizeof *rt;
  rt->g = g;
  rt->s = s;
  return open_common(rt, options, NULL, out_rt);
}

fy_status_t fy_rt_open(const char *plan_path, const fy_rt_options_t *options, fy_rt_t **out_rt) {
  if (!plan_path || !out_rt) return fy_status_make(FY_INVALID_ARGUMENT, "runtime: no plan path");
  fy_rt_t *rt = calloc(1, sizeof *rt);
  if (!rt) return oom();
  rt->own_bytes = sizeof *rt;
  fy_status_t s = fy_plan_load(plan_path, &rt->plan);
  if (s) {
    free(rt);
    return s;
  }
  rt->g = rt->plan->graph;
  rt->s = rt->plan->schedule;
  return fy_status_annotate(open_common(rt, options, rt->plan->meta.file_fingerprints, out_rt), "plan %s",
                            plan_path);
}

void fy_rt_close(fy_rt_t *rt) {
  if (!rt) return;
  if (rt->copy_thread_started) {
    fy_sync_quit(&rt->sync);
    pthread_join(rt->copy_thread, NULL);
  }
  if (rt->sync_ready) fy_sync_destroy(&rt->sync);
  if (rt->ctx) rt->be->destroy(rt->ctx);
  if (rt->files || rt->paths) fy_rt_unbind_files(rt->g->n_files, rt->files, rt->paths);
  free(rt->files);
  free(rt->paths);
  free(rt->stats);
  for (int q = 0; q < FY_QUEUE_COUNT; q++) {
    free(rt->spans[q]);
    free(rt->steps_started[q]);
  }
  fy_plan_destroy(rt->plan);
  free(rt);
}

/* ---- sequences ---- */

int64_t fy_rt_vocab(const fy_rt_t *rt) { return rt->g->config.vocab; }
int64_t fy_rt_max_prompt(const fy_rt_t *rt) { return rt->s->stages[rt->prefill.stage].max_tokens; }
int64_t fy_rt_max_decode(const fy_rt_t *rt) { return rt->s->stages[rt->decode.stage].repeat; }
int64_t fy_rt_context(const fy_rt_t *rt) { return rt->g->context; }
int64_t fy_rt_position(const fy_rt_t *rt) { return rt->position; }
const fy_graph_t *fy_rt_graph(const fy_rt_t *rt) { return rt->g; }
const fy_schedule_t *fy_rt_schedule(const fy_rt_t *rt) { return rt->s; }

/* Ends the sequence: no copy runs ahead any more, the next call must be a prefill. */
static void end_sequence(fy_rt_t *rt) {
  fy_sync_cancel(&rt->sync);
  rt->in_sequence = false;
}

/* Token ids are checked here, before any backend sees them: a GPU kernel
 * cannot report an id outside the table. */
static fy_status_t check_token(const fy_rt_t *rt, int32_t token, const char *what) {
  if (token < 0 || token >= rt->g->config.vocab)
    return fy_status_make(FY_OUT_OF_RANGE, "%s: token id %d is outside the vocabulary (0..%lld)", what, (int)token,
                          (long long)rt->g->config.vocab - 1);
  return NULL;
}

fy_status_t fy_rt_prefill(fy_rt_t *rt, const int32_t *tokens, int64_t n, float *out_logits) {
  int64_t max = fy_rt_max_prompt(rt);
  if (!tokens || !out_logits) return fy_status_make(FY_INVALID_ARGUMENT, "prefill: no tokens or no logits buffer");
  if (n < 1 || n > max || n > rt->g->context)
    return fy_status_make(FY_OUT_OF_RANGE, "prefill of %lld tokens: the plan takes 1 to %lld (context %lld)",
                          (long long)n, (long long)max, (long long)rt->g->context);
  for (int64_t i = 0; i < n; i++)
    FY_TRY(check_token(rt, tokens[i], "prefill"));
  double t0 = seconds_since(&rt->origin);
  end_sequence(rt);
  rt->position = 0;
  fy_sync_lock(&rt->sync);
  for (int i = 0; i < rt->s->n_stages; i++)
    if (rt->s->stages[i].graph_stage >= 0) rt->stats[i] = (fy_rt_stage_stats_t){.name = rt->s->stages[i].name};
  fy_sync_unlock(&rt->sync);
  const stage_io_t *io = &rt->prefill;
  FY_TRY(rt->be->write(rt->ctx, io->tokens_offset, tokens, sizeof *tokens * (uint64_t)n));
  FY_TRY(fy_status_annotate(run_stage_once(rt, io->stage, n), "prefill"));
  FY_TRY(rt->be->read(rt->ctx, io->logits_offset, out_logits, sizeof *out_logits * (uint64_t)rt->g->config.vocab));
  rt->position = n;
  rt->stats[io->stage].wall_seconds += seconds_since(&rt->origin) - t0;
  /* The decode stage starts now: its copies run ahead while the caller picks the next token. */
  fy_sync_begin_stage(&rt->sync, &rt->s->stages[rt->decode.stage]);
  fy_sync_start_job(&rt->sync, rt->decode.stage, fy_rt_max_decode(rt));
  rt->decode_step = 0;
  rt->in_sequence = true;
  return NULL;
}

fy_status_t fy_rt_decode(fy_rt_t *rt, int32_t token, float *out_logits) {
  if (!out_logits) return fy_status_make(FY_INVALID_ARGUMENT, "decode: no logits buffer");
  if (!rt->in_sequence)
    return fy_status_make(FY_INVALID_ARGUMENT, "decode: no sequence: call prefill first (and again after an error)");
  if (rt->decode_step >= fy_rt_max_decode(rt))
    return fy_status_make(FY_OUT_OF_RANGE, "decode: the plan's decode stage has %lld steps per sequence; start a "
                          "new one with prefill", (long long)fy_rt_max_decode(rt));
  if (rt->position >= rt->g->context)
    return fy_status_make(FY_OUT_OF_RANGE, "decode: the KV cache is full (%lld tokens)", (long long)rt->g->context);
  FY_TRY(check_token(rt, token, "decode"));
  double t0 = seconds_since(&rt->origin);
  const stage_io_t *io = &rt->decode;
  fy_status_t s = rt->be->write(rt->ctx, io->tokens_offset, &token, sizeof token);
  if (!s) s = compute_step(rt, io->stage, rt->decode_step, 1);
  if (!s) {
    rt->decode_step++;
    bool last = rt->decode_step == fy_rt_max_decode(rt);
    fy_sync_set_state(&rt->sync, COMPUTE, last ? FY_QSTATE_FINISHED : FY_QSTATE_IDLE);
    if (last) fy_sync_drain(&rt->sync); /* the stage is over: both queues drain */
    s = rt->be->read(rt->ctx, io->logits_offset, out_logits, sizeof *out_logits * (uint64_t)rt->g->config.vocab);
  }
  if (s) {
    end_sequence(rt);
    return fy_status_annotate(s, "decode step %lld", (long long)rt->decode_step);
  }
  rt->position++;
  rt->stats[io->stage].wall_seconds += seconds_since(&rt->origin) - t0;
  return NULL;
}

/* ---- statistics and trace ---- */

int fy_rt_stage_count(const fy_rt_t *rt) { return rt->s->n_stages; }

int fy_rt_stage_find(const fy_rt_t *rt, const char *name) {
  for (int i = 0; name && i < rt->s->n_stages; i++)
    if (rt->s->stages[i].name && !strcmp(rt->s->stages[i].name, name)) return i;
  return -1;
}

fy_status_t fy_rt_stage_stats(const fy_rt_t *rt, int stage, fy_rt_stage_stats_t *out_stats) {
  if (stage < 0 || stage >= rt->s->n_stages)
    return fy_status_make(FY_OUT_OF_RANGE, "stage %d: the plan has %d stages", stage, rt->s->n_stages);
  fy_sync_t *sync = (fy_sync_t *)&rt->sync; /* the lock, not the value, changes */
  fy_sync_lock(sync);
  *out_stats = rt->stats[stage];
  fy_sync_unlock(sync);
  return NULL;
}

void fy_rt_memory(const fy_rt_t *rt, fy_rt_memory_t *out_memory) {
  *out_memory = (fy_rt_memory_t){
      .device_bytes = rt->s->device_bytes,
      .staging_bytes = (uint64_t)STAGING_COUNT * rt->staging_bytes,
      .host_bytes = rt->own_bytes + rt->be->host_bytes(rt->ctx),
  };
}

int64_t fy_rt_spans(const fy_rt_t *rt, fy_queue_t queue, const fy_sim_span_t **out_spans) {
  *out_spans = rt->spans[queue];
  return atomic_load_explicit((_Atomic int64_t *)&rt->n_spans[queue], memory_order_acquire);
}

fy_status_t fy_rt_write_trace(const fy_rt_t *rt, const char *path) {
  if (!rt->options.trace)
    return fy_status_make(FY_INVALID_ARGUMENT, "trace %s: the runtime was opened without the trace option", path);
  const fy_sim_span_t *spans[FY_QUEUE_COUNT];
  int64_t n[FY_QUEUE_COUNT];
  for (int q = 0; q < FY_QUEUE_COUNT; q++) n[q] = fy_rt_spans(rt, (fy_queue_t)q, &spans[q]);
  fy_sim_span_t *all = malloc(sizeof *all * (size_t)(n[0] + n[1] + 1));
  if (!all) return oom();
  memcpy(all, spans[0], sizeof *all * (size_t)n[0]);
  memcpy(all + n[0], spans[1], sizeof *all * (size_t)n[1]);
  char process[64];
  snprintf(process, sizeof process, "ferry %s backend (measured)", rt->be->name);
  fy_status_t s = fy_trace_write_chrome(rt->s, all, n[0] + n[1], process, path);
  free(all);
  return s;
}
