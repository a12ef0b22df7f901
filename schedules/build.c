/* fy_schedule_build: from the passes' decisions to command streams.
 *
 * Device layout: [resident weights | ring of slots | KV cache | activations],
 * each region 256-aligned. The "load" stage copies the resident weights once.
 * Per graph stage and step:
 *   copy queue:    for each group k: WAIT free(previous user of its slot);
 *                  COPY its ranges; SIGNAL ready(k)
 *   compute queue: for each node: WAIT ready(k) before the first node that
 *                  reads group k; CHUNK_BEGIN/END around fused runs; LAUNCH;
 *                  after the last node reading group k: EVICT slot, SIGNAL free(k)
 * The previous user of group k's slot is group k - n_slots in the same step,
 * or else the last group of the previous step in that slot (step_delta -1),
 * which lets the copy queue run into the next step while compute finishes. */
#include <stdlib.h>
#include <string.h>

#include "schedules/schedule.h"
#include "support/grow.h"

#define REGION_ALIGN 256u

static uint64_t align_up(uint64_t x) { return (x + REGION_ALIGN - 1) / REGION_ALIGN * REGION_ALIGN; }

static fy_status_t push_cmd(fy_stage_schedule_t *st, fy_queue_t q, const fy_cmd_t *cmd) {
  FY_TRY(FY_GROW(st->cmds[q], st->n_cmds[q], st->cap_cmds[q], "schedule"));
  st->cmds[q][st->n_cmds[q]++] = *cmd;
  return NULL;
}

static fy_status_t add_event(fy_schedule_t *s, fy_stage_schedule_t *st, const char *name, int *out_id) {
  FY_TRY(FY_GROW(st->events, st->n_events, st->cap_events, "schedule"));
  st->events[st->n_events].name = fy_arena_strdup(&s->arena, name);
  if (!st->events[st->n_events].name) return fy_status_make(FY_RESOURCE_EXHAUSTED, "schedule: out of memory");
  *out_id = st->n_events++;
  return NULL;
}

static fy_cmd_t cmd_of(fy_cmd_kind_t kind, int layer) {
  return (fy_cmd_t){.kind = kind, .layer = layer, .file = -1, .group = -1, .event = -1, .node = -1, .slot = -1};
}

static const fy_graph_t *sort_graph;
static int by_file_position(const void *a, const void *b) {
  const fy_value_t *x = &sort_graph->values[*(const int *)a], *y = &sort_graph->values[*(const int *)b];
  if (x->file != y->file) return x->file - y->file;
  return x->file_offset < y->file_offset ? -1 : x->file_offset > y->file_offset;
}

/* Lays out resident weights as they lie in their files and emits the load stage. */
static fy_status_t build_load(const fy_compile_t *c, fy_schedule_t *s, fy_stage_schedule_t *st) {
  const fy_graph_t *g = c->graph;
  int *order = malloc(sizeof(int) * ((size_t)g->n_values + 1));
  if (!order) return fy_status_make(FY_RESOURCE_EXHAUSTED, "schedule: out of memory");
  int n = 0;
  for (int v = 0; v < g->n_values; v++)
    if (g->values[v].kind == FY_VALUE_WEIGHT && c->placement[v] == FY_PLACE_RESIDENT) order[n++] = v;
  sort_graph = g;
  qsort(order, (size_t)n, sizeof *order, by_file_position);
  uint64_t at = 0;
  fy_status_t err = NULL;
  fy_cmd_t *open = NULL;
  for (int i = 0; i < n && !err; i++) {
    const fy_value_t *v = &g->values[order[i]];
    if (open && open->file == v->file && open->file_offset + open->bytes == v->file_offset) {
      s->device_offset[order[i]] = open->device_offset + open->bytes;
      open->bytes += v->nbytes;
      open->seconds = (double)open->bytes / (c->target.h2d_pinned_gbps * 1e9);
    } else {
      at = align_up(at);
      s->device_offset[order[i]] = at;
      fy_cmd_t copy = cmd_of(FY_CMD_COPY, v->layer);
      copy.file = v->file;
      copy.file_offset = v->file_offset;
      copy.bytes = v->nbytes;
      copy.device_offset = at;
      copy.seconds = (double)v->nbytes / (c->target.h2d_pinned_gbps * 1e9);
      err = push_cmd(st, FY_QUEUE_COPY, &copy);
      open = err ? NULL : &st->cmds[FY_QUEUE_COPY][st->n_cmds[FY_QUEUE_COPY] - 1];
    }
    at = s->device_offset[order[i]] + v->nbytes;
  }
  free(order);
  FY_TRY(err);
  s->regions[FY_REGION_RESIDENT].bytes = align_up(at);
  int loaded = -1;
  FY_TRY(add_event(s, st, "loaded", &loaded));
  fy_cmd_t signal = cmd_of(FY_CMD_SIGNAL, -1), wait = cmd_of(FY_CMD_WAIT, -1);
  signal.event = wait.event = loaded;
  FY_TRY(push_cmd(st, FY_QUEUE_COPY, &signal));
  return push_cmd(st, FY_QUEUE_COMPUTE, &wait);
}

static fy_status_t bind_args(const fy_compile_t *c, const fy_schedule_t *s, int stage, int node, fy_cmd_t *launch) {
  const fy_graph_t *g = c->graph;
  const fy_node_t *n = &g->nodes[node];
  const fy_compile_stage_t *cs = &c->stages[stage];
  for (int k = 0; k <= n->n_inputs; k++) {
    int v = k < n->n_inputs ? n->inputs[k] : n->output;
    const fy_value_t *val = &g->values[v];
    fy_binding_t *b = &launch->args[k];
    b->kind = FY_LOC_DEVICE;
    b->file = -1;
    switch (val->kind) {
      case FY_VALUE_WEIGHT:
        if (launch->on_host) {
          b->kind = FY_LOC_HOST_FILE;
          b->file = val->file;
          b->offset = val->file_offset;
        } else if (c->placement[v] == FY_PLACE_RESIDENT) {
          b->offset = s->regions[FY_REGION_RESIDENT].offset + s->device_offset[v];
        } else {
          const fy_stream_group_t *grp = cs->node_group[node] >= 0 ? &cs->groups[cs->node_group[node]] : NULL;
          bool found = false;
          for (int j = 0; grp && j < grp->n_members && !found; j++)
            if (c->members[grp->first_member + j].value == v) {
              b->offset = s->regions[FY_REGION_SLOTS].offset + (uint64_t)grp->slot * s->slot_bytes +
                          c->members[grp->first_member + j].slot_offset;
              found = true;
            }
          if (!found)
            return fy_status_make(FY_INTERNAL, "schedule: node %s reads streamed %s outside its group", n->name,
                                  val->name);
        }
        break;
      case FY_VALUE_STATE: b->offset = s->regions[FY_REGION_KV].offset + c->value_offset[v]; break;
      default: b->offset = s->regions[FY_REGION_ACTIVATIONS].offset + c->value_offset[v]; break;
    }
  }
  return NULL;
}

static fy_status_t build_stage(const fy_compile_t *c, fy_schedule_t *s, int stage, fy_stage_schedule_t *st) {
  const fy_graph_t *g = c->graph;
  const fy_compile_stage_t *cs = &c->stages[stage];
  const fy_stage_t *gs = &g->stages[stage];
  int G = cs->n_groups, S = c->n_slots;
  int *ready = malloc(sizeof(int) * ((size_t)G + 1)), *freed = malloc(sizeof(int) * ((size_t)G + 1));
  fy_status_t err = ready && freed ? NULL : fy_status_make(FY_RESOURCE_EXHAUSTED, "schedule: out of memory");
  char name[128];
  for (int k = 0; k < G && !err; k++) {
    const char *unit = cs->groups[k].layer >= 0 ? g->layers[cs->groups[k].layer].name : "global";
    snprintf(name, sizeof name, "ready.%d.%s", k, unit);
    err = add_event(s, st, name, &ready[k]);
    snprintf(name, sizeof name, "free.%d.%s", k, unit);
    if (!err) err = add_event(s, st, name, &freed[k]);
  }
  /* copy queue */
  for (int k = 0; k < G && !err; k++) {
    const fy_stream_group_t *grp = &cs->groups[k];
    int prev = k - S, delta = 0;
    if (prev < 0) {
      delta = -1;
      for (prev = G - 1; prev % S != k % S; prev--) {}
    }
    fy_cmd_t wait = cmd_of(FY_CMD_WAIT, grp->layer);
    wait.event = freed[prev];
    wait.step_delta = delta;
    wait.group = prev;
    err = push_cmd(st, FY_QUEUE_COPY, &wait);
    for (int r = 0; r < grp->n_ranges && !err; r++) {
      const fy_copy_range_t *range = &c->ranges[grp->first_range + r];
      fy_cmd_t copy = cmd_of(FY_CMD_COPY, grp->layer);
      copy.file = range->file;
      copy.file_offset = range->file_offset;
      copy.bytes = range->bytes;
      copy.device_offset = s->regions[FY_REGION_SLOTS].offset + (uint64_t)grp->slot * s->slot_bytes + range->slot_offset;
      copy.group = k;
      copy.slot = grp->slot;
      copy.seconds = (double)range->bytes / (c->target.h2d_pinned_gbps * 1e9);
      err = push_cmd(st, FY_QUEUE_COPY, &copy);
    }
    fy_cmd_t signal = cmd_of(FY_CMD_SIGNAL, grp->layer);
    signal.event = ready[k];
    signal.group = k;
    if (!err) err = push_cmd(st, FY_QUEUE_COPY, &signal);
  }
  /* compute queue */
  int open_chunk = -1;
  for (int i = gs->first_node; i < gs->first_node + gs->n_nodes && !err; i++) {
    const fy_node_t *n = &g->nodes[i];
    int chunk = cs->node_chunk[i];
    if (open_chunk >= 0 && chunk != open_chunk) {
      err = push_cmd(st, FY_QUEUE_COMPUTE, &(fy_cmd_t){.kind = FY_CMD_CHUNK_END, .layer = n->layer, .file = -1,
                                                      .group = -1, .event = -1, .node = -1, .slot = open_chunk});
      open_chunk = -1;
    }
    int k = cs->node_group[i];
    if (!err && k >= 0 && cs->groups[k].first_node == i) {
      fy_cmd_t wait = cmd_of(FY_CMD_WAIT, n->layer);
      wait.event = ready[k];
      wait.group = k;
      err = push_cmd(st, FY_QUEUE_COMPUTE, &wait);
    }
    if (!err && chunk >= 0 && open_chunk < 0) {
      fy_cmd_t begin = cmd_of(FY_CMD_CHUNK_BEGIN, n->layer);
      begin.slot = chunk;
      err = push_cmd(st, FY_QUEUE_COMPUTE, &begin);
      open_chunk = chunk;
    }
    fy_cmd_t launch = cmd_of(FY_CMD_LAUNCH, n->layer);
    launch.node = i;
    launch.on_host = fy_compile_node_on_host(c, i);
    launch.group = k;
    launch.seconds = fy_compile_node_seconds(c, i);
    if (!err) err = bind_args(c, s, stage, i, &launch);
    if (!err) err = push_cmd(st, FY_QUEUE_COMPUTE, &launch);
    if (!err && k >= 0 && cs->groups[k].last_node == i) {
      fy_cmd_t evict = cmd_of(FY_CMD_EVICT, n->layer);
      evict.group = k;
      evict.slot = cs->groups[k].slot;
      evict.device_offset = s->regions[FY_REGION_SLOTS].offset + (uint64_t)cs->groups[k].slot * s->slot_bytes;
      evict.bytes = s->slot_bytes;
      fy_cmd_t signal = cmd_of(FY_CMD_SIGNAL, n->layer);
      signal.event = freed[k];
      signal.group = k;
      err = push_cmd(st, FY_QUEUE_COMPUTE, &evict);
      if (!err) err = push_cmd(st, FY_QUEUE_COMPUTE, &signal);
    }
  }
  if (!err && open_chunk >= 0)
    err = push_cmd(st, FY_QUEUE_COMPUTE, &(fy_cmd_t){.kind = FY_CMD_CHUNK_END, .layer = -1, .file = -1, .group = -1,
                                                    .event = -1, .node = -1, .slot = open_chunk});
  free(ready);
  free(freed);
  return err;
}

fy_status_t fy_schedule_build(const fy_compile_t *c, fy_schedule_t **out_schedule) {
  const fy_graph_t *g = c->graph;
  fy_schedule_t *s = calloc(1, sizeof *s);
  if (!s) return fy_status_make(FY_RESOURCE_EXHAUSTED, "schedule: out of memory");
  s->graph = g;
  s->target = c->target;
  s->policy = c->options.policy;
  s->prefetch = c->prefetch;
  s->n_slots = c->n_slots;
  s->slot_bytes = align_up(c->slot_bytes);
  s->budget = c->budget;
  s->activation_lower_bound = c->activation_lower_bound;
  size_t nv = (size_t)g->n_values + 1;
  s->placement = calloc(nv, sizeof *s->placement);
  s->device_offset = malloc(sizeof(uint64_t) * nv);
  s->n_stages = g->n_stages + 1;
  s->stages = calloc((size_t)s->n_stages, sizeof *s->stages);
  fy_status_t err = s->placement && s->device_offset && s->stages
                        ? NULL
                        : fy_status_make(FY_RESOURCE_EXHAUSTED, "schedule: out of memory");
  for (int v = 0; !err && v < g->n_values; v++) {
    s->device_offset[v] = UINT64_MAX;
    s->placement[v] = c->placement[v];
  }
  if (!err) {
    s->stages[0] = (fy_stage_schedule_t){.name = "load", .graph_stage = -1, .max_tokens = 0, .repeat = 1};
    err = build_load(c, s, &s->stages[0]);
  }
  if (!err) {
    uint64_t at = s->regions[FY_REGION_RESIDENT].bytes;
    s->regions[FY_REGION_SLOTS] = (fy_region_t){at, (uint64_t)s->n_slots * s->slot_bytes};
    at = align_up(at + s->regions[FY_REGION_SLOTS].bytes);
    s->regions[FY_REGION_KV] = (fy_region_t){at, align_up(c->kv_bytes)};
    at += s->regions[FY_REGION_KV].bytes;
    s->regions[FY_REGION_ACTIVATIONS] = (fy_region_t){at, align_up(c->activation_bytes)};
    s->device_bytes = at + s->regions[FY_REGION_ACTIVATIONS].bytes;
    for (int v = 0; v < g->n_values; v++) {
      fy_value_kind_t kind = g->values[v].kind;
      if (kind == FY_VALUE_WEIGHT && s->device_offset[v] != UINT64_MAX)
        s->device_offset[v] += s->regions[FY_REGION_RESIDENT].offset;
      else if (kind == FY_VALUE_STATE)
        s->device_offset[v] = s->regions[FY_REGION_KV].offset + c->value_offset[v];
      else if (kind != FY_VALUE_WEIGHT && c->value_offset[v] != UINT64_MAX)
        s->device_offset[v] = s->regions[FY_REGION_ACTIVATIONS].offset + c->value_offset[v];
    }
    if (s->device_bytes > s->budget)
      err = fy_status_make(FY_INTERNAL, "schedule: %llu device bytes exceed the budget of %llu",
                           (unsigned long long)s->device_bytes, (unsigned long long)s->budget);
  }
  for (int st = 0; !err && st < g->n_stages; st++) {
    fy_stage_schedule_t *ss = &s->stages[st + 1];
    ss->name = g->stages[st].name;
    ss->graph_stage = st;
    ss->max_tokens = g->stages[st].max_tokens;
    ss->repeat = g->stages[st].repeat;
    err = build_stage(c, s, st, ss);
  }
  if (err) {
    fy_schedule_destroy(s);
    return err;
  }
  *out_schedule = s;
  return NULL;
}

void fy_schedule_destroy(fy_schedule_t *s) {
  if (!s) return;
  for (int i = 0; s->stages && i < s->n_stages; i++) {
    for (int q = 0; q < FY_QUEUE_COUNT; q++) free(s->stages[i].cmds[q]);
    free(s->stages[i].events);
  }
  free(s->stages);
  free(s->placement);
  free(s->device_offset);
  fy_arena_destroy(&s->arena);
  free(s);
}
