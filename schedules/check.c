/* fy_schedule_check: proves a schedule safe from its commands alone.
 *
 * Reads the regions, n_slots / slot_bytes, budget, the stages' command lists
 * and events, the graph's config, values, nodes and files, and the device
 * places of each graph stage's input and output (device_offset: where the
 * runtime writes the tokens and reads the logits). It reads no other compile
 * decision (placement, the other device offsets), so that a builder bug
 * cannot hide behind the same assumption here.
 *
 * First the graph's contract: every node's attributes are the ones the
 * model config gives its op (eps, heads, kv heads, head_dim, RoPE), and each
 * graph stage has at most one input and one output (what the runtime feeds
 * and reads back).
 *
 * Then structure: every field in range, every command on the queue it
 * belongs to, every event signalled by exactly one command and waited for
 * only on the other queue; a graph stage's launches are its nodes, each
 * exactly once, in graph order; a launch has one binding per input and
 * output and nothing beyond; every binding inside a region of its value's
 * kind (weights: resident or slots; KV cache: kv; the rest: activations) and
 * aligned to its dtype (host-file bindings inside their file: the kernels
 * read mapped files unaligned, as safetensors lays them out); no two
 * activation or KV bindings of a launch overlap (a kernel would read what it
 * writes).
 *
 * Then meaning, by abstract interpretation. Each stage runs min(repeat, 3)
 * steps: step 0, where step_delta -1 waits are met trivially, then two steady
 * steps, which hold every cross-step wait and every overlap of one step with
 * the next (d is 0 or -1, so steps further apart are ordered through the one
 * between them). A greedy scheduler interleaves the queues, advancing the copy
 * queue as far as it can, then the compute queue (copies first, so that a
 * launch missing its wait finds the copy it should have waited for). Events only grow, so a
 * schedule deadlocks in one interleaving iff in all: the greedy order finds
 * every deadlock. Safety is judged by happens-before, never by the chosen
 * interleaving: each queue keeps a vector clock over the two queues, SIGNAL
 * records the signaller's clock per (event, step), WAIT joins the clock of
 * the step it waits for. Device memory is an interval map whose ranges are
 * empty, live (written by a copy: its stamp and the file bytes it holds) or
 * dead (evicted: the evict's stamp).
 *   - a launch reads a weight only from live ranges whose copy happens before
 *     it and that hold the weight's file bytes;
 *   - a copy overwrites only empty ranges, dead ranges whose eviction happens
 *     before it (write after read: the eviction follows the last reader in
 *     compute-queue order), or live ranges left by an earlier stage whose
 *     readers in this stage all happen before it;
 *   - an evict kills only ranges whose copy happens before it (evicted bytes
 *     may be poisoned, which is a write).
 * Activations and the KV cache are written only by launches and the host,
 * both in compute-queue order, so a second interval map records the last
 * write of every byte there: which value, by which command, in which step.
 * The host writes the stage's input before each step and reads its output
 * after it; a launch writes its output (and, attention, the KV cache it is
 * given). Every activation, input or output a launch (or the host) reads
 * must be found whole at its binding: the write of that very value, this
 * step, at exactly that offset and size, not overwritten since. A KV cache
 * value lives where it is first bound, on bytes no other value holds, and
 * every later binding must be that place.
 * Both queues drain between stages: the clocks are joined. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schedules/schedule.h"

enum { CHECK_STEPS = 3 };
enum { COMPUTE = FY_QUEUE_COMPUTE, COPY = FY_QUEUE_COPY };

typedef enum range_state { RANGE_LIVE, RANGE_DEAD } range_state_t;

/* A device range [lo, hi) and what the last copy or evict left there. */
typedef struct range {
  uint64_t lo, hi;
  range_state_t state;
  int stage, cmd; /* the copy (live) or the evict (dead) */
  int64_t step;
  uint64_t stamp; /* its queue's own clock component after it ran */
  uint64_t read;  /* live: compute clock of its last reader, 0 = none */
  int read_cmd;   /* and its command and step */
  int64_t read_step;
  int file;       /* live: the file bytes held, file offset = base + device offset */
  uint64_t base;  /* the value map: the offset of the whole write */
  int value;      /* the value map: whose bytes (an input, activation, output or KV cache value) */
} range_t;

/* Sorted, disjoint ranges; the gaps are empty (never written). */
typedef struct range_map {
  range_t *v;
  int n, cap;
} range_map_t;

typedef struct signal_clock {
  bool set;
  uint64_t clock[FY_QUEUE_COUNT];
} signal_clock_t;

typedef struct checker {
  const fy_schedule_t *s;
  const fy_graph_t *g;
  int stage;
  const fy_stage_schedule_t *st;
  uint64_t clock[FY_QUEUE_COUNT][FY_QUEUE_COUNT]; /* clock[q][r]: what q knows of r */
  range_map_t map;    /* weights: resident and slots */
  range_map_t values; /* KV cache and activations: the last write of every byte */
  uint64_t *state_at; /* per value: where a KV cache value lives (its first binding); UINT64_MAX = not yet */
  int *io;            /* per graph stage: its input and its output value, -1 = none */
  /* Per event of the current stage. */
  int *signal_queue, *signal_cmd;
  signal_clock_t *signals; /* n_events × CHECK_STEPS */
  int cap_events;
} checker_t;

/* ---- describing things in errors ---- */

static const char *event_name(const fy_stage_schedule_t *st, int e) {
  if (e < 0 || e >= st->n_events) return "(bad event)";
  return st->events[e].name ? st->events[e].name : "(unnamed)";
}

/* "launch node 123 layers.3.q", "wait ready.layers.0, step_delta 0", ... */
static const char *describe_cmd(const checker_t *c, const fy_cmd_t *cmd, char *buf, size_t size) {
  switch (cmd->kind) {
    case FY_CMD_COPY:
      snprintf(buf, size, "copy %" PRIu64 " bytes of file %d at %" PRIu64 " to device %" PRIu64, cmd->bytes,
               cmd->file, cmd->file_offset, cmd->device_offset);
      break;
    case FY_CMD_SIGNAL: snprintf(buf, size, "signal %s", event_name(c->st, cmd->event)); break;
    case FY_CMD_WAIT:
      snprintf(buf, size, "wait %s, step_delta %d", event_name(c->st, cmd->event), cmd->step_delta);
      break;
    case FY_CMD_LAUNCH:
      snprintf(buf, size, "launch node %d %s", cmd->node,
               cmd->node >= 0 && cmd->node < c->g->n_nodes ? c->g->nodes[cmd->node].name : "(bad node)");
      break;
    case FY_CMD_EVICT:
      snprintf(buf, size, "evict slot %d [%" PRIu64 ", +%" PRIu64 ")", cmd->slot, cmd->device_offset, cmd->bytes);
      break;
    default: snprintf(buf, size, "%s", fy_cmd_kind_name(cmd->kind)); break;
  }
  return buf;
}

/* "stage decode, compute cmd 57 (launch node 123 layers.3.q), step 1: ..." */
static fy_status_t cmd_error(const checker_t *c, fy_code_t code, int q, int i, int64_t step, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static fy_status_t cmd_error(const checker_t *c, fy_code_t code, int q, int i, int64_t step, const char *fmt, ...) {
  char what[512], cmd[256], when[32] = "";
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  if (step >= 0) snprintf(when, sizeof when, ", step %" PRId64, step);
  return fy_status_make(code, "stage %s, %s cmd %d (%s)%s: %s", c->st->name ? c->st->name : "?",
                        fy_queue_name((fy_queue_t)q), i, describe_cmd(c, &c->st->cmds[q][i], cmd, sizeof cmd),
                        when, what);
}

/* Names a device offset by its region: "slot 1 offset 4096", "resident offset 0". */
static const char *describe_offset(const checker_t *c, uint64_t off, char *buf, size_t size) {
  const fy_schedule_t *s = c->s;
  for (int k = 0; k < FY_REGION_COUNT; k++) {
    const fy_region_t *r = &s->regions[k];
    if (off < r->offset || off - r->offset >= r->bytes) continue;
    uint64_t rel = off - r->offset;
    if (k == FY_REGION_SLOTS && s->slot_bytes > 0)
      snprintf(buf, size, "slot %" PRIu64 " offset %" PRIu64, rel / s->slot_bytes, rel % s->slot_bytes);
    else
      snprintf(buf, size, "%s offset %" PRIu64, fy_region_name((fy_region_kind_t)k), rel);
    return buf;
  }
  snprintf(buf, size, "device offset %" PRIu64, off);
  return buf;
}

/* ---- the graph's contract ---- */

static bool same_f64(double a, double b) { return !memcmp(&a, &b, sizeof a); }

/* The first field where RoPE a differs from b (bit for bit), or NULL; the two values in got and want. */
static const char *rope_differs(const fy_rope_t *a, const fy_rope_t *b, char *got, char *want, size_t size) {
  const double ad[] = {a->theta, a->factor, a->low_freq_factor, a->high_freq_factor};
  const double bd[] = {b->theta, b->factor, b->low_freq_factor, b->high_freq_factor};
  static const char *const names[] = {"rope.theta", "rope.factor", "rope.low_freq_factor", "rope.high_freq_factor"};
  for (int k = 0; k < 4; k++)
    if (!same_f64(ad[k], bd[k])) {
      snprintf(got, size, "%.17g", ad[k]);
      snprintf(want, size, "%.17g", bd[k]);
      return names[k];
    }
  if (a->scaling != b->scaling || a->original_max_position != b->original_max_position) {
    bool scaling = a->scaling != b->scaling;
    snprintf(got, size, "%lld", scaling ? (long long)a->scaling : (long long)a->original_max_position);
    snprintf(want, size, "%lld", scaling ? (long long)b->scaling : (long long)b->original_max_position);
    return scaling ? "rope.scaling" : "rope.original_max_position";
  }
  return NULL;
}

/* The attributes the model config gives a node (as frontend/llama.c builds
 * them): rmsnorm its eps; rope the heads of its input (the query's or the
 * key's), the kv heads, head_dim and RoPE; attention the heads, kv heads,
 * head_dim and RoPE; the other ops none. */
_Static_assert(FY_OP_COUNT == 8, "a new op needs its attributes here");
static fy_status_t check_node_attrs(const fy_model_config_t *cfg, int i, const fy_node_t *n) {
  const fy_node_attrs_t *a = &n->attrs;
  float eps = 0;
  int64_t heads = 0, kv_heads = 0, head_dim = 0;
  fy_rope_t rope = {0};
  switch (n->op) {
    case FY_OP_RMSNORM: eps = (float)cfg->rms_eps; break;
    case FY_OP_ROPE:
    case FY_OP_ATTENTION:
      heads = n->op == FY_OP_ROPE && a->n_heads == cfg->n_kv_heads ? cfg->n_kv_heads : cfg->n_heads;
      kv_heads = cfg->n_kv_heads;
      head_dim = cfg->head_dim;
      rope = cfg->rope;
      break;
    case FY_OP_EMBED:
    case FY_OP_MATMUL:
    case FY_OP_SILU_MUL:
    case FY_OP_ADD:
    case FY_OP_LAST_ROW: break;
    case FY_OP_COUNT:
      return fy_status_make(FY_INVALID_ARGUMENT, "node %d (%s): unknown op %d", i, n->name, (int)n->op);
  }
  char got[64] = "", want[64] = "";
  const char *field = NULL;
  if (memcmp(&a->eps, &eps, sizeof eps))
    field = "eps", snprintf(got, sizeof got, "%.9g", (double)a->eps), snprintf(want, sizeof want, "%.9g", (double)eps);
  else if (a->n_heads != heads)
    field = "n_heads", snprintf(got, sizeof got, "%d", a->n_heads), snprintf(want, sizeof want, "%lld", (long long)heads);
  else if (a->n_kv_heads != kv_heads)
    field = "n_kv_heads", snprintf(got, sizeof got, "%d", a->n_kv_heads),
    snprintf(want, sizeof want, "%lld", (long long)kv_heads);
  else if (a->head_dim != head_dim)
    field = "head_dim", snprintf(got, sizeof got, "%d", a->head_dim),
    snprintf(want, sizeof want, "%lld", (long long)head_dim);
  else
    field = rope_differs(&a->rope, &rope, got, want, sizeof got);
  if (!field) return NULL;
  return fy_status_make(FY_INVALID_ARGUMENT, "node %d (%s, %s): attrs.%s %s, but the model config gives %s", i,
                        n->name, fy_op_name(n->op), field, got, want);
}

static fy_status_t check_attrs(const fy_graph_t *g) {
  for (int i = 0; i < g->n_nodes; i++) FY_TRY(check_node_attrs(&g->config, i, &g->nodes[i]));
  return NULL;
}

/* Each graph stage's input and output: what the runtime writes before a
 * step (the tokens) and reads after it (the logits), at most one of each. */
static fy_status_t find_io(checker_t *c) {
  const fy_graph_t *g = c->g;
  for (int i = 0; i < 2 * g->n_stages; i++) c->io[i] = -1;
  for (int v = 0; v < g->n_values; v++) {
    const fy_value_t *val = &g->values[v];
    if (val->kind != FY_VALUE_INPUT && val->kind != FY_VALUE_OUTPUT) continue;
    if (val->stage < 0 || val->stage >= g->n_stages)
      return fy_status_make(FY_INVALID_ARGUMENT, "%s %s: stage %d of %d", fy_value_kind_name(val->kind), val->name,
                            val->stage, g->n_stages);
    int *slot = &c->io[2 * val->stage + (val->kind == FY_VALUE_OUTPUT)];
    if (*slot >= 0)
      return fy_status_make(FY_INVALID_ARGUMENT,
                            "graph stage %s has two %s values, %s and %s: the runtime feeds one input and reads one "
                            "output per step", g->stages[val->stage].name, fy_value_kind_name(val->kind),
                            g->values[*slot].name, val->name);
    *slot = v;
    if (!c->s->device_offset)
      return fy_status_make(FY_INVALID_ARGUMENT, "%s %s has no device place: the schedule has no device_offset",
                            fy_value_kind_name(val->kind), val->name);
  }
  return NULL;
}

/* ---- regions ---- */

static bool range_end(uint64_t off, uint64_t bytes, uint64_t *out_end) {
  if (bytes > UINT64_MAX - off) return false;
  *out_end = off + bytes;
  return true;
}

/* The region that holds all of [off, off + bytes), or -1. */
static int region_of(const fy_schedule_t *s, uint64_t off, uint64_t bytes) {
  uint64_t end;
  if (bytes == 0 || !range_end(off, bytes, &end)) return -1;
  for (int k = 0; k < FY_REGION_COUNT; k++) {
    const fy_region_t *r = &s->regions[k];
    if (off >= r->offset && end <= r->offset + r->bytes) return k;
  }
  return -1;
}

static fy_status_t check_regions(const fy_schedule_t *s) {
  for (int k = 0; k < FY_REGION_COUNT; k++) {
    const fy_region_t *r = &s->regions[k];
    uint64_t end;
    if (!range_end(r->offset, r->bytes, &end) || end > s->device_bytes)
      return fy_status_make(FY_OUT_OF_RANGE,
                            "region %s [%" PRIu64 ", +%" PRIu64 ") ends past device_bytes %" PRIu64,
                            fy_region_name((fy_region_kind_t)k), r->offset, r->bytes, s->device_bytes);
  }
  for (int a = 0; a < FY_REGION_COUNT; a++)
    for (int b = a + 1; b < FY_REGION_COUNT; b++) {
      const fy_region_t *ra = &s->regions[a], *rb = &s->regions[b];
      if (ra->bytes && rb->bytes && ra->offset < rb->offset + rb->bytes && rb->offset < ra->offset + ra->bytes)
        return fy_status_make(FY_INVALID_ARGUMENT,
                              "regions %s [%" PRIu64 ", +%" PRIu64 ") and %s [%" PRIu64 ", +%" PRIu64 ") overlap",
                              fy_region_name((fy_region_kind_t)a), ra->offset, ra->bytes,
                              fy_region_name((fy_region_kind_t)b), rb->offset, rb->bytes);
    }
  if (s->device_bytes > s->budget)
    return fy_status_make(FY_RESOURCE_EXHAUSTED, "device_bytes %" PRIu64 " exceed the budget %" PRIu64 " by %" PRIu64,
                          s->device_bytes, s->budget, s->device_bytes - s->budget);
  if (s->n_slots < 0 || (s->n_slots > 0 && s->slot_bytes > s->regions[FY_REGION_SLOTS].bytes / (uint64_t)s->n_slots))
    return fy_status_make(FY_OUT_OF_RANGE, "%d slots of %" PRIu64 " bytes do not fit the slots region of %" PRIu64,
                          s->n_slots, s->slot_bytes, s->regions[FY_REGION_SLOTS].bytes);
  return NULL;
}

/* ---- structure ---- */

static bool is_weight_region(int k) { return k == FY_REGION_RESIDENT || k == FY_REGION_SLOTS; }

static fy_status_t check_file_range(const checker_t *c, int q, int i, int file, uint64_t off, uint64_t bytes,
                                    const char *what) {
  const fy_graph_t *g = c->g;
  if (file < 0 || file >= g->n_files)
    return cmd_error(c, FY_OUT_OF_RANGE, q, i, -1, "%s: file %d of %d", what, file, g->n_files);
  uint64_t end;
  if (!range_end(off, bytes, &end) || end > g->files[file].size)
    return cmd_error(c, FY_OUT_OF_RANGE, q, i, -1,
                     "%s: bytes [%" PRIu64 ", +%" PRIu64 ") end past the end of %s (%" PRIu64 " bytes)", what, off,
                     bytes, g->files[file].path, g->files[file].size);
  return NULL;
}

/* The region a device binding of a value of this kind must lie in (-1: resident or slots). */
static int region_for(fy_value_kind_t kind) {
  return kind == FY_VALUE_WEIGHT ? -1 : kind == FY_VALUE_STATE ? FY_REGION_KV : FY_REGION_ACTIVATIONS;
}

static bool binding_is_zero(const fy_binding_t *b) { return b->kind == FY_LOC_DEVICE && b->file == 0 && b->offset == 0; }

static fy_status_t check_launch_args(const checker_t *c, int i) {
  const fy_cmd_t *cmd = &c->st->cmds[COMPUTE][i];
  const fy_graph_t *g = c->g;
  const fy_node_t *node = &g->nodes[cmd->node];
  if (node->n_inputs < 0 || node->n_inputs > FY_MAX_NODE_INPUTS)
    return cmd_error(c, FY_INVALID_ARGUMENT, COMPUTE, i, -1, "node has %d inputs", node->n_inputs);
  for (int a = 0; a <= node->n_inputs; a++) {
    int id = a < node->n_inputs ? node->inputs[a] : node->output;
    if (id < 0 || id >= g->n_values)
      return cmd_error(c, FY_INVALID_ARGUMENT, COMPUTE, i, -1, "argument %d: value %d of %d", a, id, g->n_values);
    const fy_value_t *v = &g->values[id];
    const fy_binding_t *b = &cmd->args[a];
    bool weight = v->kind == FY_VALUE_WEIGHT;
    if (b->kind == FY_LOC_HOST_FILE) {
      if (!cmd->on_host || !weight || a == node->n_inputs)
        return cmd_error(c, FY_INVALID_ARGUMENT, COMPUTE, i, -1,
                         "argument %d (%s) is read from a host file, which only weights of host-run nodes may be", a,
                         v->name);
      char what[300];
      snprintf(what, sizeof what, "argument %d (weight %s)", a, v->name);
      if (!(g->shape_only && b->file < 0)) FY_TRY(check_file_range(c, COMPUTE, i, b->file, b->offset, v->nbytes, what));
      if (v->file >= 0 && (b->file != v->file || b->offset != v->file_offset))
        return cmd_error(c, FY_INVALID_ARGUMENT, COMPUTE, i, -1,
                         "argument %d reads file %d at %" PRIu64 ", but weight %s is in file %d at %" PRIu64, a,
                         b->file, b->offset, v->name, v->file, v->file_offset);
    } else if (b->kind == FY_LOC_DEVICE) {
      int k = region_of(c->s, b->offset, v->nbytes), want = region_for(v->kind);
      if (k < 0 || (weight ? !is_weight_region(k) : k != want))
        return cmd_error(c, FY_OUT_OF_RANGE, COMPUTE, i, -1,
                         "argument %d (%s %s, %" PRIu64 " bytes) at device offset %" PRIu64
                         " is not inside the %s region",
                         a, fy_value_kind_name(v->kind), v->name, v->nbytes, b->offset,
                         weight ? "resident or slots" : fy_region_name((fy_region_kind_t)want));
      size_t align = fy_dtype_size(v->dtype);
      if (b->offset % align)
        return cmd_error(c, FY_INVALID_ARGUMENT, COMPUTE, i, -1,
                         "argument %d (%s %s) at device offset %" PRIu64 " is not aligned to its %s elements (%zu bytes)",
                         a, fy_value_kind_name(v->kind), v->name, b->offset, fy_dtype_name(v->dtype), align);
    } else {
      return cmd_error(c, FY_INVALID_ARGUMENT, COMPUTE, i, -1, "argument %d: bad location kind %d", a, (int)b->kind);
    }
  }
  for (int a = node->n_inputs + 1; a <= FY_MAX_NODE_INPUTS; a++)
    if (!binding_is_zero(&cmd->args[a]))
      return cmd_error(c, FY_INVALID_ARGUMENT, COMPUTE, i, -1, "binding %d is set, but the node has %d arguments", a,
                       node->n_inputs + 1);
  /* A kernel must not read what it writes: activation and KV bindings are
   * disjoint, but for one value given twice at one place (add(x, x)). */
  for (int a = 0; a <= node->n_inputs; a++)
    for (int b = a + 1; b <= node->n_inputs; b++) {
      int va = a < node->n_inputs ? node->inputs[a] : node->output, vb = b < node->n_inputs ? node->inputs[b] : node->output;
      const fy_value_t *x = &g->values[va], *y = &g->values[vb];
      uint64_t xo = cmd->args[a].offset, yo = cmd->args[b].offset;
      if (x->kind == FY_VALUE_WEIGHT || y->kind == FY_VALUE_WEIGHT || (va == vb && xo == yo)) continue;
      if (xo < yo + y->nbytes && yo < xo + x->nbytes)
        return cmd_error(c, FY_INVALID_ARGUMENT, COMPUTE, i, -1,
                         "arguments %d (%s at %" PRIu64 ", +%" PRIu64 ") and %d (%s at %" PRIu64 ", +%" PRIu64
                         ") overlap: the kernel would read what it writes",
                         a, x->name, xo, x->nbytes, b, y->name, yo, y->nbytes);
    }
  return NULL;
}

static fy_status_t check_cmd(checker_t *c, int q, int i, bool *in_chunk) {
  const fy_stage_schedule_t *st = c->st;
  const fy_cmd_t *cmd = &st->cmds[q][i];
  if ((int)cmd->kind < 0 || cmd->kind >= FY_CMD_KIND_COUNT)
    return fy_status_make(FY_INVALID_ARGUMENT, "stage %s, %s cmd %d: bad kind %d", st->name, fy_queue_name(q), i,
                          (int)cmd->kind);
  bool compute_only = cmd->kind == FY_CMD_LAUNCH || cmd->kind == FY_CMD_EVICT || cmd->kind == FY_CMD_CHUNK_BEGIN ||
                      cmd->kind == FY_CMD_CHUNK_END;
  if ((compute_only && q != COMPUTE) || (cmd->kind == FY_CMD_COPY && q != COPY))
    return cmd_error(c, FY_INVALID_ARGUMENT, q, i, -1, "belongs on the %s queue",
                     fy_queue_name(q == COMPUTE ? FY_QUEUE_COPY : FY_QUEUE_COMPUTE));
  switch (cmd->kind) {
    case FY_CMD_COPY: {
      /* A shape-only graph has no files: its copies name none. */
      if (!(c->g->shape_only && cmd->file < 0))
        FY_TRY(check_file_range(c, q, i, cmd->file, cmd->file_offset, cmd->bytes, "source"));
      if (!is_weight_region(region_of(c->s, cmd->device_offset, cmd->bytes)))
        return cmd_error(c, FY_OUT_OF_RANGE, q, i, -1, "destination is not inside the resident or slots region");
      break;
    }
    case FY_CMD_SIGNAL:
    case FY_CMD_WAIT:
      if (cmd->event < 0 || cmd->event >= st->n_events)
        return cmd_error(c, FY_INVALID_ARGUMENT, q, i, -1, "event %d of %d", cmd->event, st->n_events);
      if (cmd->kind == FY_CMD_WAIT && cmd->step_delta != 0 && cmd->step_delta != -1)
        return cmd_error(c, FY_INVALID_ARGUMENT, q, i, -1, "step_delta must be 0 or -1");
      if (cmd->kind == FY_CMD_SIGNAL) {
        int e = cmd->event;
        if (c->signal_queue[e] >= 0)
          return cmd_error(c, FY_INVALID_ARGUMENT, q, i, -1, "event already signalled by %s cmd %d",
                           fy_queue_name(c->signal_queue[e]), c->signal_cmd[e]);
        c->signal_queue[e] = q;
        c->signal_cmd[e] = i;
      }
      break;
    case FY_CMD_LAUNCH: {
      const fy_graph_t *g = c->g;
      if (cmd->node < 0 || cmd->node >= g->n_nodes)
        return cmd_error(c, FY_INVALID_ARGUMENT, q, i, -1, "node %d of %d", cmd->node, g->n_nodes);
      if (g->nodes[cmd->node].stage != st->graph_stage)
        return cmd_error(c, FY_INVALID_ARGUMENT, q, i, -1, "node belongs to graph stage %d, not %d",
                         g->nodes[cmd->node].stage, st->graph_stage);
      FY_TRY(check_launch_args(c, i));
      break;
    }
    case FY_CMD_EVICT: {
      if (!is_weight_region(region_of(c->s, cmd->device_offset, cmd->bytes)))
        return cmd_error(c, FY_OUT_OF_RANGE, q, i, -1, "range is not inside the resident or slots region");
      if (cmd->slot >= 0) {
        const fy_schedule_t *s = c->s;
        uint64_t start = s->regions[FY_REGION_SLOTS].offset + (uint64_t)cmd->slot * s->slot_bytes;
        if (cmd->slot >= s->n_slots || cmd->device_offset < start || cmd->device_offset - start > s->slot_bytes ||
            cmd->bytes > s->slot_bytes - (cmd->device_offset - start))
          return cmd_error(c, FY_OUT_OF_RANGE, q, i, -1, "range is not inside slot %d of %d", cmd->slot, s->n_slots);
      }
      break;
    }
    case FY_CMD_CHUNK_BEGIN:
    case FY_CMD_CHUNK_END:
      if (*in_chunk == (cmd->kind == FY_CMD_CHUNK_BEGIN))
        return cmd_error(c, FY_INVALID_ARGUMENT, q, i, -1, *in_chunk ? "nested chunk" : "no chunk is open");
      *in_chunk = !*in_chunk;
      break;
    default: break;
  }
  return NULL;
}

/* A graph stage's launches are its nodes, each once, in graph order. */
static fy_status_t check_launch_order(const checker_t *c) {
  const fy_stage_schedule_t *st = c->st;
  if (st->graph_stage < 0) return NULL; /* a launch here names a node of no stage: refused by check_cmd */
  const fy_stage_t *gs = &c->g->stages[st->graph_stage];
  int next = gs->first_node, end = gs->first_node + gs->n_nodes;
  for (int i = 0; i < st->n_cmds[COMPUTE]; i++) {
    const fy_cmd_t *cmd = &st->cmds[COMPUTE][i];
    if (cmd->kind != FY_CMD_LAUNCH) continue;
    if (cmd->node != next && next < end)
      return cmd_error(c, FY_INVALID_ARGUMENT, COMPUTE, i, -1, "out of graph order: node %d (%s) is next", next,
                       c->g->nodes[next].name);
    if (cmd->node != next)
      return cmd_error(c, FY_INVALID_ARGUMENT, COMPUTE, i, -1, "a second launch: every node of the stage ran already");
    next++;
  }
  if (next != end)
    return fy_status_make(FY_INVALID_ARGUMENT, "stage %s: node %d (%s) is never launched (%d of the graph stage's %d "
                          "nodes are)", st->name, next, c->g->nodes[next].name, next - gs->first_node, gs->n_nodes);
  return NULL;
}

/* The stage's input and output where the runtime writes and reads them:
 * inside the activations region, aligned to their dtype. */
static fy_status_t check_io_places(const checker_t *c) {
  const fy_stage_schedule_t *st = c->st;
  if (st->graph_stage < 0) return NULL;
  for (int k = 0; k < 2; k++) {
    int id = c->io[2 * st->graph_stage + k];
    if (id < 0) continue;
    const fy_value_t *v = &c->g->values[id];
    uint64_t off = c->s->device_offset[id];
    if (region_of(c->s, off, v->nbytes) != FY_REGION_ACTIVATIONS || off % fy_dtype_size(v->dtype))
      return fy_status_make(FY_OUT_OF_RANGE,
                            "stage %s: %s %s (%" PRIu64 " bytes of %s) at device offset %" PRIu64
                            ", where the runtime %s it, is not %s-aligned inside the activations region",
                            st->name, fy_value_kind_name(v->kind), v->name, v->nbytes, fy_dtype_name(v->dtype), off,
                            k ? "reads" : "writes", fy_dtype_name(v->dtype));
    if (st->n_cmds[COMPUTE] == 0 && k == 1)
      return fy_status_make(FY_INVALID_ARGUMENT, "stage %s: no command writes its output %s", st->name, v->name);
  }
  return NULL;
}

static fy_status_t check_structure(checker_t *c) {
  const fy_stage_schedule_t *st = c->st;
  if (st->graph_stage < -1 || st->graph_stage >= c->g->n_stages || st->repeat < 0 || st->n_events < 0)
    return fy_status_make(FY_INVALID_ARGUMENT, "stage %s: graph stage %d of %d, repeat %" PRId64 ", %d events",
                          st->name ? st->name : "?", st->graph_stage, c->g->n_stages, st->repeat, st->n_events);
  if (st->n_events > c->cap_events) {
    int cap = st->n_events;
    int *sq = realloc(c->signal_queue, (size_t)cap * sizeof *sq);
    if (sq) c->signal_queue = sq;
    int *sc = realloc(c->signal_cmd, (size_t)cap * sizeof *sc);
    if (sc) c->signal_cmd = sc;
    signal_clock_t *sig = realloc(c->signals, (size_t)cap * CHECK_STEPS * sizeof *sig);
    if (sig) c->signals = sig;
    if (!sq || !sc || !sig) return fy_status_make(FY_RESOURCE_EXHAUSTED, "schedule check: out of memory");
    c->cap_events = cap;
  }
  for (int e = 0; e < st->n_events; e++) c->signal_queue[e] = c->signal_cmd[e] = -1;
  for (int q = 0; q < FY_QUEUE_COUNT; q++) {
    if (st->n_cmds[q] < 0 || (st->n_cmds[q] > 0 && !st->cmds[q]))
      return fy_status_make(FY_INVALID_ARGUMENT, "stage %s: %s queue: %d commands", st->name, fy_queue_name(q),
                            st->n_cmds[q]);
    bool in_chunk = false;
    for (int i = 0; i < st->n_cmds[q]; i++) FY_TRY(check_cmd(c, q, i, &in_chunk));
    if (in_chunk)
      return fy_status_make(FY_INVALID_ARGUMENT, "stage %s: %s queue: a chunk is still open at the end", st->name,
                            fy_queue_name(q));
  }
  FY_TRY(check_launch_order(c));
  FY_TRY(check_io_places(c));
  for (int q = 0; q < FY_QUEUE_COUNT; q++)
    for (int i = 0; i < st->n_cmds[q]; i++) {
      const fy_cmd_t *cmd = &st->cmds[q][i];
      if (cmd->kind != FY_CMD_WAIT) continue;
      if (c->signal_queue[cmd->event] < 0)
        return cmd_error(c, FY_INVALID_ARGUMENT, q, i, -1, "deadlock: no command signals the event");
      if (c->signal_queue[cmd->event] == q)
        return cmd_error(c, FY_INVALID_ARGUMENT, q, i, -1, "the event is signalled on the same queue (cmd %d)",
                         c->signal_cmd[cmd->event]);
    }
  return NULL;
}

/* ---- the interval map ---- */

/* Index of the first range that ends after lo. */
static int map_first(const range_map_t *m, uint64_t lo) {
  int a = 0, b = m->n;
  while (a < b) {
    int mid = a + (b - a) / 2;
    if (m->v[mid].hi <= lo)
      a = mid + 1;
    else
      b = mid;
  }
  return a;
}

/* Makes [r->lo, r->hi) hold *r, trimming what was there. */
static fy_status_t map_assign(range_map_t *m, const range_t *r) {
  int i = map_first(m, r->lo), j = i;
  while (j < m->n && m->v[j].lo < r->hi) j++;
  bool left = i < j && m->v[i].lo < r->lo, right = i < j && m->v[j - 1].hi > r->hi;
  range_t left_part = left ? m->v[i] : *r, right_part = right ? m->v[j - 1] : *r;
  left_part.hi = r->lo;
  right_part.lo = r->hi;
  int add = 1 + left + right, n = m->n - (j - i) + add;
  if (n > m->cap) {
    int cap = m->cap ? m->cap : 256;
    while (cap < n) cap *= 2;
    range_t *v = realloc(m->v, (size_t)cap * sizeof *v);
    if (!v) return fy_status_make(FY_RESOURCE_EXHAUSTED, "schedule check: out of memory");
    m->v = v;
    m->cap = cap;
  }
  memmove(&m->v[i + add], &m->v[j], (size_t)(m->n - j) * sizeof *m->v);
  if (left) m->v[i++] = left_part;
  m->v[i++] = *r;
  if (right) m->v[i] = right_part;
  m->n = n;
  return NULL;
}

/* ---- interpretation ---- */

static bool copy_seen_by(const checker_t *c, int q, const range_t *r) { return r->stamp <= c->clock[q][COPY]; }
static bool evict_seen_by(const checker_t *c, int q, const range_t *r) { return r->stamp <= c->clock[q][COMPUTE]; }

static fy_status_t exec_copy(checker_t *c, int i, int64_t step) {
  const fy_cmd_t *cmd = &c->st->cmds[COPY][i];
  uint64_t hi = cmd->device_offset + cmd->bytes;
  char where[96];
  for (int k = map_first(&c->map, cmd->device_offset); k < c->map.n && c->map.v[k].lo < hi; k++) {
    const range_t *r = &c->map.v[k];
    if (r->state == RANGE_LIVE && r->stage < c->stage) {
      if (r->read <= c->clock[COPY][COMPUTE]) continue; /* drained, and its readers in this stage are done */
      return cmd_error(c, FY_INVALID_ARGUMENT, COPY, i, step,
                       "overwrites %s, left there by stage %s, while compute cmd %d (step %" PRId64
                       ") that reads it is not waited for: write-after-read hazard",
                       describe_offset(c, r->lo > cmd->device_offset ? r->lo : cmd->device_offset, where, sizeof where),
                       c->s->stages[r->stage].name, r->read_cmd, r->read_step);
    }
    if (r->state == RANGE_LIVE)
      return cmd_error(c, FY_INVALID_ARGUMENT, COPY, i, step,
                       "overwrites %s, which still holds what copy cmd %d copied in step %" PRId64
                       ", before an eviction of it is waited for",
                       describe_offset(c, r->lo > cmd->device_offset ? r->lo : cmd->device_offset, where, sizeof where),
                       r->cmd, r->step);
    if (!evict_seen_by(c, COPY, r))
      return cmd_error(c, FY_INVALID_ARGUMENT, COPY, i, step,
                       "overwrites %s before its eviction (compute cmd %d, step %" PRId64
                       ") is waited for: write-after-read hazard",
                       describe_offset(c, r->lo > cmd->device_offset ? r->lo : cmd->device_offset, where, sizeof where),
                       r->cmd, r->step);
  }
  range_t r = {.lo = cmd->device_offset, .hi = hi, .state = RANGE_LIVE, .stage = c->stage, .cmd = i, .step = step,
               .stamp = c->clock[COPY][COPY], .file = cmd->file, .base = cmd->file_offset - cmd->device_offset};
  return map_assign(&c->map, &r);
}

static fy_status_t exec_evict(checker_t *c, int i, int64_t step) {
  const fy_cmd_t *cmd = &c->st->cmds[COMPUTE][i];
  uint64_t hi = cmd->device_offset + cmd->bytes;
  char where[96];
  for (int k = map_first(&c->map, cmd->device_offset); k < c->map.n && c->map.v[k].lo < hi; k++) {
    const range_t *r = &c->map.v[k];
    if (r->state == RANGE_LIVE && !copy_seen_by(c, COMPUTE, r))
      return cmd_error(c, FY_INVALID_ARGUMENT, COMPUTE, i, step,
                       "evicts %s while copy cmd %d (step %" PRId64 ") may still be writing it: no wait for its event",
                       describe_offset(c, r->lo > cmd->device_offset ? r->lo : cmd->device_offset, where, sizeof where),
                       r->cmd, r->step);
  }
  range_t r = {.lo = cmd->device_offset, .hi = hi, .state = RANGE_DEAD, .stage = c->stage, .cmd = i, .step = step,
               .stamp = c->clock[COMPUTE][COMPUTE], .file = -1};
  return map_assign(&c->map, &r);
}

/* Every byte of weight v at device offset off is live, copied before the
 * launch, and holds the weight's file bytes. */
static fy_status_t check_present(checker_t *c, int i, int64_t step, const fy_value_t *v, uint64_t off) {
  uint64_t hi = off + v->nbytes, at = off;
  char where[96];
  for (int k = map_first(&c->map, off); at < hi; k++) {
    range_t *r = k < c->map.n && c->map.v[k].lo < hi ? &c->map.v[k] : NULL;
    const char *missing = NULL;
    char why[160];
    if (!r || r->lo > at) {
      missing = "never copied there";
    } else if (r->state == RANGE_DEAD) {
      snprintf(why, sizeof why, "evicted by compute cmd %d in step %" PRId64, r->cmd, r->step);
      missing = why;
    } else if (!copy_seen_by(c, COMPUTE, r)) {
      snprintf(why, sizeof why, "copied by copy cmd %d in step %" PRId64 " but no wait for its event", r->cmd,
               r->step);
      missing = why;
    } else if (v->file >= 0 && r->file >= 0 && (r->file != v->file || r->base != v->file_offset - off)) {
      return cmd_error(c, FY_INVALID_ARGUMENT, COMPUTE, i, step,
                       "reads weight %s at %s, which holds file %d bytes from offset %" PRIu64
                       " (copy cmd %d), not the weight's (file %d at %" PRIu64 ")",
                       v->name, describe_offset(c, at, where, sizeof where), r->file, r->base + at, r->cmd, v->file,
                       v->file_offset + (at - off));
    }
    if (missing)
      return cmd_error(c, FY_INVALID_ARGUMENT, COMPUTE, i, step, "reads weight %s at %s that is not present (%s)",
                       v->name, describe_offset(c, at, where, sizeof where), missing);
    r->read = c->clock[COMPUTE][COMPUTE];
    r->read_cmd = i;
    r->read_step = step;
    at = r->hi;
  }
  return NULL;
}

/* ---- activations and the KV cache ---- */

/* Who made a value-map record, for errors. */
static const char *writer_of(const checker_t *c, const range_t *r, char *buf, size_t size) {
  if (r->cmd < 0)
    snprintf(buf, size, "the host before step %" PRId64 " of stage %s", r->step, c->s->stages[r->stage].name);
  else
    snprintf(buf, size, "compute cmd %d in step %" PRId64 " of stage %s", r->cmd, r->step, c->s->stages[r->stage].name);
  return buf;
}

static fy_status_t write_value(checker_t *c, int cmd, int64_t step, int id, uint64_t off) {
  range_t r = {.lo = off, .hi = off + c->g->values[id].nbytes, .state = RANGE_LIVE, .stage = c->stage, .cmd = cmd,
               .step = step, .file = -1, .base = off, .value = id};
  return map_assign(&c->values, &r);
}

/* Whether value id can be read at off in this step: its own write is there,
 * whole (at exactly this offset and size, nothing written over it since)
 * and, but for the KV cache, from this step of this stage. A KV cache value
 * read for the first time takes the place, which must be unwritten. When
 * not, says why. cmd is the reading launch (-1 = the host). */
static bool value_present(checker_t *c, int cmd, int64_t step, int id, uint64_t off, char *why, size_t size) {
  const fy_value_t *v = &c->g->values[id];
  uint64_t hi = off + v->nbytes;
  bool state = v->kind == FY_VALUE_STATE;
  int k = map_first(&c->values, off);
  range_t *r = k < c->values.n && c->values.v[k].lo < hi ? &c->values.v[k] : NULL;
  char who[160], where[96];
  if (state && c->state_at[id] == UINT64_MAX) {
    if (r) {
      snprintf(why, size, "its first place overlaps %s at %s, written by %s", c->g->values[r->value].name,
               describe_offset(c, r->lo > off ? r->lo : off, where, sizeof where), writer_of(c, r, who, sizeof who));
      return false;
    }
    c->state_at[id] = off;
    fy_status_t s = write_value(c, cmd, step, id, off);
    if (s) {
      snprintf(why, size, "%s", fy_status_message(s));
      fy_status_free(s);
      return false;
    }
    return true;
  }
  if (state && c->state_at[id] != off) {
    snprintf(why, size, "it lives at %s, where it was bound first",
             describe_offset(c, c->state_at[id], where, sizeof where));
    return false;
  }
  if (!r || r->lo > off) {
    snprintf(why, size, "nothing was written there");
  } else if (r->value != id) {
    snprintf(why, size, "it holds %s, written by %s", c->g->values[r->value].name, writer_of(c, r, who, sizeof who));
  } else if (r->base != off) {
    snprintf(why, size, "%s was written at %s, by %s", v->name, describe_offset(c, r->base, where, sizeof where),
             writer_of(c, r, who, sizeof who));
  } else if (r->hi < hi) {
    const range_t *next = k + 1 < c->values.n && c->values.v[k + 1].lo == r->hi ? &c->values.v[k + 1] : NULL;
    if (next)
      snprintf(why, size, "its bytes from %s on were overwritten with %s by %s",
               describe_offset(c, r->hi, where, sizeof where), c->g->values[next->value].name,
               writer_of(c, next, who, sizeof who));
    else
      snprintf(why, size, "its bytes from %s on were never written", describe_offset(c, r->hi, where, sizeof where));
  } else if (!state && (r->stage != c->stage || r->step != step)) {
    snprintf(why, size, "what is there was written by %s, not in this step: its producer has not run",
             writer_of(c, r, who, sizeof who));
  } else {
    if (state) r->stage = c->stage, r->cmd = cmd, r->step = step; /* attention writes its caches in place */
    return true;
  }
  return false;
}

static fy_status_t exec_launch(checker_t *c, int i, int64_t step) {
  const fy_cmd_t *cmd = &c->st->cmds[COMPUTE][i];
  const fy_node_t *node = &c->g->nodes[cmd->node];
  for (int a = 0; a < node->n_inputs; a++) {
    const fy_value_t *v = &c->g->values[node->inputs[a]];
    if (v->kind == FY_VALUE_WEIGHT) {
      if (cmd->args[a].kind == FY_LOC_DEVICE) FY_TRY(check_present(c, i, step, v, cmd->args[a].offset));
      continue;
    }
    char why[512], where[96];
    if (!value_present(c, i, step, node->inputs[a], cmd->args[a].offset, why, sizeof why))
      return cmd_error(c, FY_INVALID_ARGUMENT, COMPUTE, i, step, "argument %d reads %s %s at %s, but %s", a,
                       fy_value_kind_name(v->kind), v->name,
                       describe_offset(c, cmd->args[a].offset, where, sizeof where), why);
  }
  return write_value(c, i, step, node->output, cmd->args[node->n_inputs].offset);
}

/* The runtime writes the stage's input before a compute step and reads its output after it. */
static fy_status_t host_io(checker_t *c, bool after, int64_t step) {
  if (c->st->graph_stage < 0) return NULL;
  int id = c->io[2 * c->st->graph_stage + after];
  if (id < 0) return NULL;
  uint64_t off = c->s->device_offset[id];
  if (!after) return write_value(c, -1, step, id, off);
  char why[512], where[96];
  if (value_present(c, -1, step, id, off, why, sizeof why)) return NULL;
  return fy_status_make(FY_INVALID_ARGUMENT, "stage %s, step %" PRId64 ": the runtime reads output %s at %s, but %s",
                        c->st->name, step, c->g->values[id].name, describe_offset(c, off, where, sizeof where), why);
}

typedef struct cursor {
  int64_t step;
  int i;
} cursor_t;

/* Runs queue q's next command if it is not a blocked WAIT; *out_ran says whether it did. */
static fy_status_t step_queue(checker_t *c, int q, cursor_t *at, bool *out_ran) {
  const fy_cmd_t *cmd = &c->st->cmds[q][at->i];
  *out_ran = false;
  if (cmd->kind == FY_CMD_WAIT) {
    int64_t k = at->step + cmd->step_delta;
    if (k >= 0) {
      const signal_clock_t *sig = &c->signals[(size_t)cmd->event * CHECK_STEPS + (size_t)k];
      if (!sig->set) return NULL;
      for (int r = 0; r < FY_QUEUE_COUNT; r++)
        if (sig->clock[r] > c->clock[q][r]) c->clock[q][r] = sig->clock[r];
    }
  }
  c->clock[q][q]++;
  if (q == COMPUTE && at->i == 0) FY_TRY(host_io(c, false, at->step));
  switch (cmd->kind) {
    case FY_CMD_COPY: FY_TRY(exec_copy(c, at->i, at->step)); break;
    case FY_CMD_LAUNCH: FY_TRY(exec_launch(c, at->i, at->step)); break;
    case FY_CMD_EVICT: FY_TRY(exec_evict(c, at->i, at->step)); break;
    case FY_CMD_SIGNAL: {
      signal_clock_t *sig = &c->signals[(size_t)cmd->event * CHECK_STEPS + (size_t)at->step];
      sig->set = true;
      memcpy(sig->clock, c->clock[q], sizeof sig->clock);
      break;
    }
    default: break;
  }
  *out_ran = true;
  if (++at->i == c->st->n_cmds[q]) {
    if (q == COMPUTE) FY_TRY(host_io(c, true, at->step));
    at->i = 0;
    at->step++;
  }
  return NULL;
}

static fy_status_t deadlock_error(const checker_t *c, const cursor_t at[FY_QUEUE_COUNT], int64_t steps) {
  char blocked[2][400];
  for (int q = 0; q < FY_QUEUE_COUNT; q++) {
    if (at[q].step >= steps) {
      snprintf(blocked[q], sizeof blocked[q], "the %s queue has finished", fy_queue_name(q));
    } else {
      char cmd[256];
      snprintf(blocked[q], sizeof blocked[q], "%s cmd %d (%s) blocks in step %" PRId64, fy_queue_name(q), at[q].i,
               describe_cmd(c, &c->st->cmds[q][at[q].i], cmd, sizeof cmd), at[q].step);
    }
  }
  return fy_status_make(FY_INVALID_ARGUMENT, "stage %s: deadlock: %s; %s", c->st->name, blocked[COMPUTE],
                        blocked[COPY]);
}

static fy_status_t interpret_stage(checker_t *c) {
  const fy_stage_schedule_t *st = c->st;
  int64_t steps = st->repeat < CHECK_STEPS ? st->repeat : CHECK_STEPS;
  if (st->n_events) memset(c->signals, 0, (size_t)st->n_events * CHECK_STEPS * sizeof *c->signals);
  cursor_t at[FY_QUEUE_COUNT];
  for (int q = 0; q < FY_QUEUE_COUNT; q++) at[q] = (cursor_t){st->n_cmds[q] ? 0 : steps, 0};
  static const int order[FY_QUEUE_COUNT] = {COPY, COMPUTE};
  for (;;) {
    bool progress = false, done = true;
    for (int o = 0; o < FY_QUEUE_COUNT; o++) {
      int q = order[o];
      bool ran = true;
      while (at[q].step < steps && ran) {
        FY_TRY(step_queue(c, q, &at[q], &ran));
        progress |= ran;
      }
      done &= at[q].step >= steps;
    }
    if (done) break;
    if (!progress) return deadlock_error(c, at, steps);
  }
  /* Drain: everything so far happens before the next stage. */
  for (int r = 0; r < FY_QUEUE_COUNT; r++) {
    uint64_t m = c->clock[COMPUTE][r] > c->clock[COPY][r] ? c->clock[COMPUTE][r] : c->clock[COPY][r];
    c->clock[COMPUTE][r] = c->clock[COPY][r] = m;
  }
  return NULL;
}

fy_status_t fy_schedule_check(const fy_schedule_t *s) {
  if (!s || !s->graph) return fy_status_make(FY_INVALID_ARGUMENT, "schedule check: no schedule or no graph");
  if (s->n_stages < 0 || (s->n_stages > 0 && !s->stages))
    return fy_status_make(FY_INVALID_ARGUMENT, "schedule check: %d stages", s->n_stages);
  FY_TRY(check_regions(s));
  FY_TRY(check_attrs(s->graph));
  checker_t c = {.s = s, .g = s->graph};
  const fy_graph_t *g = s->graph;
  c.state_at = malloc(sizeof *c.state_at * ((size_t)g->n_values + 1));
  c.io = malloc(sizeof *c.io * (2 * (size_t)g->n_stages + 1));
  fy_status_t status = c.state_at && c.io ? NULL : fy_status_make(FY_RESOURCE_EXHAUSTED, "schedule check: out of memory");
  for (int v = 0; !status && v < g->n_values; v++) c.state_at[v] = UINT64_MAX;
  if (!status) status = find_io(&c);
  for (int i = 0; i < s->n_stages && !status; i++) {
    c.stage = i;
    c.st = &s->stages[i];
    status = check_structure(&c);
    if (!status) status = interpret_stage(&c);
  }
  free(c.map.v);
  free(c.values.v);
  free(c.state_at);
  free(c.io);
  free(c.signal_queue);
  free(c.signal_cmd);
  free(c.signals);
  return status;
}
