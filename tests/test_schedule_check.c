/* fy_schedule_check and fy_simulate on schedules built by hand.
 *
 * The graph: n_layers layers of one matmul each, x[1,4] -> h0 -> h1 ...,
 * each with a [4,4] f32 weight (64 bytes) at 64·l in one weight file. The
 * first n_resident layers are resident (copied once by the "load" stage);
 * the others stream through n_slots slots of 64 bytes, one group per layer:
 *   copy queue, per streamed layer j:  WAIT free[prev user of the slot]; COPY; SIGNAL ready[j]
 *   compute queue, per layer:          (WAIT ready[j];) LAUNCH (; EVICT; SIGNAL free[j])
 * where the previous user of a slot is layer j - n_slots of this step
 * (step_delta 0) or the slot's last user in the previous step (step_delta -1). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "schedules/schedule.h"
#include "schedules/simulate.h"

#define WEIGHT_BYTES 64u /* [4, 4] f32 */
#define ROW_BYTES 16u    /* [1, 4] f32 */

static int failures;

static void report(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(bool ok, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("%s ", ok ? "ok  " : "FAIL");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  if (!ok) failures++;
}

static void must(fy_status_t status, const char *what) {
  if (!status) return;
  fprintf(stderr, "FAIL %s: %s\n", what, fy_status_message(status));
  exit(1);
}

typedef struct shape {
  int n_layers, n_slots, n_resident;
  int64_t repeat;
  double copy_seconds, compute_seconds;
} shape_t;

typedef struct plan {
  shape_t shape;
  fy_graph_t *g;
  int x, w[512], h[512];
  fy_schedule_t s;
  fy_stage_schedule_t stages[2]; /* load, decode */
  uint64_t device_offset[1 + 2 * 512]; /* where the runtime writes x and reads the last h */
} plan_t;

static fy_graph_t *make_graph(plan_t *p) {
  const shape_t *sh = &p->shape;
  fy_graph_t *g;
  must(fy_graph_create(&g), "graph");
  must(fy_graph_add_file(g, "weights.bin", (uint64_t)sh->n_layers * WEIGHT_BYTES, NULL), "file");
  must(fy_graph_begin_stage(g, "decode", 1, sh->repeat, NULL), "stage");
  fy_value_t x = {.name = "x", .dtype = FY_DTYPE_F32, .kind = FY_VALUE_INPUT, .rank = 2, .shape = {1, 4},
                  .per_token = true, .stage = 0, .layer = -1, .file = -1};
  must(fy_graph_add_value(g, &x, &p->x), "x");
  int prev = p->x;
  for (int l = 0; l < sh->n_layers; l++) {
    char name[64];
    snprintf(name, sizeof name, "layers.%d", l);
    must(fy_graph_add_layer(g, name, NULL), "layer");
    snprintf(name, sizeof name, "layers.%d.w", l);
    fy_value_t w = {.name = name, .dtype = FY_DTYPE_F32, .kind = FY_VALUE_WEIGHT, .rank = 2, .shape = {4, 4},
                    .stage = -1, .layer = l, .file = 0, .file_offset = (uint64_t)l * WEIGHT_BYTES};
    must(fy_graph_add_value(g, &w, &p->w[l]), "w");
    snprintf(name, sizeof name, "layers.%d.h", l);
    fy_value_t h = {.name = name, .dtype = FY_DTYPE_F32,
                    .kind = l == sh->n_layers - 1 ? FY_VALUE_OUTPUT : FY_VALUE_ACTIVATION, .rank = 2,
                    .shape = {1, 4}, .per_token = true, .stage = 0, .layer = l, .file = -1};
    must(fy_graph_add_value(g, &h, &p->h[l]), "h");
    snprintf(name, sizeof name, "layers.%d.mm", l);
    fy_node_t n = {.op = FY_OP_MATMUL, .name = name, .n_inputs = 2, .inputs = {prev, p->w[l]}, .output = p->h[l],
                   .layer = l};
    must(fy_graph_add_node(g, &n, NULL), "node");
    prev = p->h[l];
  }
  must(fy_graph_verify(g), "graph verify");
  return g;
}

static void push(fy_stage_schedule_t *st, int q, fy_cmd_t cmd) {
  if (st->n_cmds[q] == st->cap_cmds[q]) {
    st->cap_cmds[q] = st->cap_cmds[q] ? st->cap_cmds[q] * 2 : 16;
    st->cmds[q] = realloc(st->cmds[q], (size_t)st->cap_cmds[q] * sizeof(fy_cmd_t));
    if (!st->cmds[q]) exit(1);
  }
  st->cmds[q][st->n_cmds[q]++] = cmd;
}

static int add_event(fy_schedule_t *s, fy_stage_schedule_t *st, const char *fmt, int l) {
  if (st->n_events == st->cap_events) {
    st->cap_events = st->cap_events ? st->cap_events * 2 : 16;
    st->events = realloc(st->events, (size_t)st->cap_events * sizeof *st->events);
    if (!st->events) exit(1);
  }
  st->events[st->n_events].name = fy_arena_printf(&s->arena, fmt, l);
  return st->n_events++;
}

static fy_cmd_t cmd_of(fy_cmd_kind_t kind, int layer) {
  return (fy_cmd_t){.kind = kind, .layer = layer, .file = -1, .group = -1, .event = -1, .node = -1, .slot = -1};
}

static fy_cmd_t copy_cmd(const plan_t *p, int l, uint64_t device_offset) {
  fy_cmd_t c = cmd_of(FY_CMD_COPY, l);
  c.file = 0;
  c.file_offset = (uint64_t)l * WEIGHT_BYTES;
  c.bytes = WEIGHT_BYTES;
  c.device_offset = device_offset;
  c.seconds = p->shape.copy_seconds;
  return c;
}

static fy_cmd_t event_cmd(fy_cmd_kind_t kind, int layer, int event, int step_delta) {
  fy_cmd_t c = cmd_of(kind, layer);
  c.event = event;
  c.step_delta = step_delta;
  return c;
}

/* Device layout: slots, activations (x, h0, h1, ...), resident weights, an empty KV region. */
static void build(plan_t *p, shape_t shape) {
  memset(p, 0, sizeof *p);
  p->shape = shape;
  p->g = make_graph(p);
  fy_schedule_t *s = &p->s;
  int L = shape.n_layers, S = L - shape.n_resident;
  s->graph = p->g;
  s->n_slots = shape.n_slots;
  s->prefetch = shape.n_slots - 1;
  s->slot_bytes = WEIGHT_BYTES;
  s->regions[FY_REGION_SLOTS] = (fy_region_t){0, (uint64_t)shape.n_slots * WEIGHT_BYTES};
  s->regions[FY_REGION_ACTIVATIONS] = (fy_region_t){s->regions[FY_REGION_SLOTS].bytes, (uint64_t)(L + 1) * ROW_BYTES};
  uint64_t resident = s->regions[FY_REGION_ACTIVATIONS].offset + s->regions[FY_REGION_ACTIVATIONS].bytes;
  s->regions[FY_REGION_RESIDENT] = (fy_region_t){resident, (uint64_t)shape.n_resident * WEIGHT_BYTES};
  s->regions[FY_REGION_KV] = (fy_region_t){resident + s->regions[FY_REGION_RESIDENT].bytes, 0};
  s->device_bytes = s->regions[FY_REGION_KV].offset;
  s->budget = s->device_bytes + 1024;
  s->stages = p->stages;
  s->n_stages = 2;
  for (int v = 0; v < p->g->n_values; v++) p->device_offset[v] = UINT64_MAX;
  p->device_offset[p->x] = s->regions[FY_REGION_ACTIVATIONS].offset;
  p->device_offset[p->h[L - 1]] = s->regions[FY_REGION_ACTIVATIONS].offset + (uint64_t)L * ROW_BYTES;
  s->device_offset = p->device_offset;

  fy_stage_schedule_t *load = &p->stages[0], *decode = &p->stages[1];
  *load = (fy_stage_schedule_t){.name = "load", .graph_stage = -1, .max_tokens = 1, .repeat = 1};
  *decode = (fy_stage_schedule_t){.name = "decode", .graph_stage = 0, .max_tokens = 1, .repeat = shape.repeat};
  for (int l = 0; l < shape.n_resident; l++)
    push(load, FY_QUEUE_COPY, copy_cmd(p, l, resident + (uint64_t)l * WEIGHT_BYTES));

  for (int j = 0; j < S; j++) {
    add_event(s, decode, "ready.layers.%d", shape.n_resident + j);
    add_event(s, decode, "free.layers.%d", shape.n_resident + j);
  }
  for (int j = 0; j < S; j++) {
    int l = shape.n_resident + j, prev = j - shape.n_slots, delta = 0;
    if (prev < 0) { /* the slot's last user in the previous step */
      prev = j + shape.n_slots * ((S - 1 - j) / shape.n_slots);
      delta = -1;
    }
    push(decode, FY_QUEUE_COPY, event_cmd(FY_CMD_WAIT, l, 2 * prev + 1, delta));
    push(decode, FY_QUEUE_COPY, copy_cmd(p, l, (uint64_t)(j % shape.n_slots) * WEIGHT_BYTES));
    push(decode, FY_QUEUE_COPY, event_cmd(FY_CMD_SIGNAL, l, 2 * j, 0));
  }
  uint64_t act = s->regions[FY_REGION_ACTIVATIONS].offset;
  for (int l = 0; l < L; l++) {
    int j = l - shape.n_resident;
    uint64_t slot = (uint64_t)(j % shape.n_slots) * WEIGHT_BYTES;
    if (j >= 0) push(decode, FY_QUEUE_COMPUTE, event_cmd(FY_CMD_WAIT, l, 2 * j, 0));
    fy_cmd_t launch = cmd_of(FY_CMD_LAUNCH, l);
    launch.node = l;
    launch.seconds = shape.compute_seconds;
    launch.args[0] = (fy_binding_t){FY_LOC_DEVICE, -1, act + (uint64_t)l * ROW_BYTES};
    launch.args[1] = (fy_binding_t){FY_LOC_DEVICE, -1, j >= 0 ? slot : resident + (uint64_t)l * WEIGHT_BYTES};
    launch.args[2] = (fy_binding_t){FY_LOC_DEVICE, -1, act + (uint64_t)(l + 1) * ROW_BYTES};
    push(decode, FY_QUEUE_COMPUTE, launch);
    if (j < 0) continue;
    fy_cmd_t evict = cmd_of(FY_CMD_EVICT, l);
    evict.slot = j % shape.n_slots;
    evict.device_offset = slot;
    evict.bytes = WEIGHT_BYTES;
    push(decode, FY_QUEUE_COMPUTE, evict);
    push(decode, FY_QUEUE_COMPUTE, event_cmd(FY_CMD_SIGNAL, l, 2 * j + 1, 0));
  }
}

static void release(plan_t *p) {
  for (int i = 0; i < 2; i++) {
    for (int q = 0; q < FY_QUEUE_COUNT; q++) free(p->stages[i].cmds[q]);
    free(p->stages[i].events);
  }
  fy_arena_destroy(&p->s.arena);
  fy_graph_destroy(p->g);
}

static fy_cmd_t *decode_cmd(plan_t *p, int q, int i) { return &p->stages[1].cmds[q][i]; }

static void drop(plan_t *p, int q, int i) {
  fy_stage_schedule_t *st = &p->stages[1];
  memmove(&st->cmds[q][i], &st->cmds[q][i + 1], (size_t)(st->n_cmds[q] - i - 1) * sizeof(fy_cmd_t));
  st->n_cmds[q]--;
}

static void insert(plan_t *p, int q, int i, fy_cmd_t cmd) {
  fy_stage_schedule_t *st = &p->stages[1];
  push(st, q, cmd);
  memmove(&st->cmds[q][i + 1], &st->cmds[q][i], (size_t)(st->n_cmds[q] - i - 1) * sizeof(fy_cmd_t));
  st->cmds[q][i] = cmd;
}

static void swap(plan_t *p, int q, int i, int j) {
  fy_cmd_t t = *decode_cmd(p, q, i);
  *decode_cmd(p, q, i) = *decode_cmd(p, q, j);
  *decode_cmd(p, q, j) = t;
}

static void expect_ok(plan_t *p, const char *what) {
  fy_status_t st = fy_schedule_check(&p->s);
  report(!st, "check accepts %s%s%s", what, st ? ": " : "", st ? fy_status_message(st) : "");
  fy_status_free(st);
}

/* Rejected, with a message holding each of the NULL-terminated fragments. */
static void expect_error(plan_t *p, const char *what, ...) {
  fy_status_t st = fy_schedule_check(&p->s);
  bool ok = st != NULL;
  va_list ap;
  va_start(ap, what);
  for (const char *part; ok && (part = va_arg(ap, const char *));) ok = strstr(fy_status_message(st), part) != NULL;
  va_end(ap);
  report(ok, "check rejects %s: %s", what, st ? fy_status_message(st) : "(accepted)");
  fy_status_free(st);
}

static bool near(double a, double b) { return a - b < 1e-9 && b - a < 1e-9; }

static void activation_cases(void);

static void check_cases(void) {
  plan_t p;
  static const shape_t valid[] = {
      {.n_layers = 2, .n_slots = 2, .repeat = 3},
      {.n_layers = 2, .n_slots = 1, .repeat = 3},
      {.n_layers = 2, .n_slots = 2, .repeat = 1},
      {.n_layers = 3, .n_slots = 2, .repeat = 5},
      {.n_layers = 3, .n_slots = 1, .n_resident = 1, .repeat = 3},
  };
  for (size_t k = 0; k < sizeof valid / sizeof valid[0]; k++) {
    char what[128];
    snprintf(what, sizeof what, "%d layers (%d resident) through %d slots, repeat %lld", valid[k].n_layers,
             valid[k].n_resident, valid[k].n_slots, (long long)valid[k].repeat);
    build(&p, valid[k]);
    expect_ok(&p, what);
    release(&p);
  }

  /* Compute: 0 WAIT ready0, 1 LAUNCH 0, 2 EVICT, 3 SIGNAL free0, 4 WAIT ready1, ...
   * Copy:    0 WAIT free(prev), 1 COPY w0, 2 SIGNAL ready0, 3 WAIT, 4 COPY w1, 5 SIGNAL ready1. */
  shape_t two = {.n_layers = 2, .n_slots = 2, .repeat = 3}, one = {.n_layers = 2, .n_slots = 1, .repeat = 3};
  build(&p, two);
  drop(&p, FY_QUEUE_COMPUTE, 0);
  expect_error(&p, "a launch without the wait for its weights",
               "stage decode, compute cmd 0 (launch node 0 layers.0.mm)", "layers.0.w", "not present", "copy cmd 1",
               "no wait", NULL);
  release(&p);

  build(&p, two);
  swap(&p, FY_QUEUE_COMPUTE, 1, 2);
  expect_error(&p, "a launch after the eviction of its weights", "compute cmd 2 (launch node 0",
               "evicted by compute cmd 1", NULL);
  release(&p);

  build(&p, one);
  drop(&p, FY_QUEUE_COPY, 3);
  expect_error(&p, "a copy into the slot before the previous user's eviction is waited for (same step)",
               "copy cmd 3 (copy 64 bytes", "slot 0 offset 0", "copy cmd 1", NULL);
  release(&p);

  build(&p, two);
  drop(&p, FY_QUEUE_COPY, 0);
  expect_error(&p, "a copy into the slot before the previous step's eviction is waited for", "copy cmd 0", "step 1",
               "slot 0", NULL);
  release(&p);

  build(&p, one);
  swap(&p, FY_QUEUE_COMPUTE, 2, 3); /* free0 signalled before the EVICT it should announce */
  expect_error(&p, "a copy waiting for a signal that precedes the eviction", "copy cmd 4", "compute cmd 3",
               "write-after-read", NULL);
  release(&p);

  build(&p, two);
  decode_cmd(&p, FY_QUEUE_COPY, 4)->file_offset = 0;
  expect_error(&p, "a slot holding the wrong bytes", "launch node 1", "layers.1.w", "file 0 bytes from offset 0",
               NULL);
  release(&p);

  build(&p, two);
  p.s.regions[FY_REGION_ACTIVATIONS].offset = 96;
  expect_error(&p, "overlapping regions", "slots", "activations", "overlap", NULL);
  release(&p);

  build(&p, two);
  p.s.budget = p.s.device_bytes - 1;
  expect_error(&p, "device_bytes over the budget", "exceed the budget", NULL);
  release(&p);

  build(&p, two);
  decode_cmd(&p, FY_QUEUE_COMPUTE, 1)->args[2].offset = p.s.device_bytes;
  expect_error(&p, "an output outside every region", "compute cmd 1", "argument 2", "not inside", NULL);
  release(&p);

  build(&p, two);
  decode_cmd(&p, FY_QUEUE_COMPUTE, 0)->event = add_event(&p.s, &p.stages[1], "never.%d", 0);
  expect_error(&p, "a wait on an event never signalled", "compute cmd 0 (wait never.0", "no command signals", NULL);
  release(&p);

  build(&p, two);
  decode_cmd(&p, FY_QUEUE_COPY, 0)->step_delta = 0; /* copy w0 waits for its own launch's free0 */
  expect_error(&p, "a wait cycle", "deadlock", "compute cmd 0 (wait ready.layers.0, step_delta 0) blocks in step 0",
               "copy cmd 0 (wait free.layers.0, step_delta 0) blocks in step 0", NULL);
  release(&p);

  build(&p, two);
  fy_cmd_t *launch1 = decode_cmd(&p, FY_QUEUE_COMPUTE, 5);
  launch1->on_host = true;
  launch1->args[1] = (fy_binding_t){FY_LOC_HOST_FILE, 0, WEIGHT_BYTES};
  expect_ok(&p, "a host-run launch reading its weight from the file");
  launch1->args[1].offset = 96;
  expect_error(&p, "a host-file read past the file's end", "compute cmd 5", "end past the end of weights.bin", NULL);
  launch1->on_host = false;
  launch1->args[1].offset = WEIGHT_BYTES;
  expect_error(&p, "a host-file binding on a device launch", "compute cmd 5", "host file", NULL);
  release(&p);

  /* Layer 0 resident: decode's copy queue rewrites its bytes (with the same content)
   * after waiting for an event the compute queue signals before or after launch 0. */
  shape_t resident = {.n_layers = 3, .n_slots = 1, .n_resident = 1, .repeat = 1};
  for (int after_launch = 0; after_launch < 2; after_launch++) {
    build(&p, resident);
    int e = add_event(&p.s, &p.stages[1], "rewrite.%d", 0);
    insert(&p, FY_QUEUE_COMPUTE, after_launch, event_cmd(FY_CMD_SIGNAL, 0, e, 0));
    insert(&p, FY_QUEUE_COPY, 3, event_cmd(FY_CMD_WAIT, 0, e, 0));
    insert(&p, FY_QUEUE_COPY, 4, copy_cmd(&p, 0, p.s.regions[FY_REGION_RESIDENT].offset));
    if (after_launch)
      expect_ok(&p, "a rewrite of a resident weight after its reader");
    else
      expect_error(&p, "a rewrite of a resident weight while a launch reads it", "copy cmd 4",
                   "left there by stage load", "compute cmd 1", "write-after-read", NULL);
    release(&p);
  }

  build(&p, (shape_t){.n_layers = 3, .n_slots = 1, .n_resident = 1, .repeat = 3});
  p.stages[0].n_cmds[FY_QUEUE_COPY] = 0;
  expect_error(&p, "a resident weight never loaded", "compute cmd 0 (launch node 0", "resident offset 0",
               "never copied", NULL);
  release(&p);

  activation_cases();
}

/* Activations: every read finds its producer's write, whole, at its binding. Layout:
 * x at activations offset 0, h0 at 16, h1 at 32, h2 at 48; compute cmd 4l + 1 launches layer l. */
static void activation_cases(void) {
  plan_t p;
  shape_t three = {.n_layers = 3, .n_slots = 2, .repeat = 3};
  uint64_t act;
#define LAUNCH(l) decode_cmd(&p, FY_QUEUE_COMPUTE, 4 * (l) + 1)

  build(&p, three);
  act = p.s.regions[FY_REGION_ACTIVATIONS].offset;
  LAUNCH(1)->args[0].offset = act + 12;
  expect_error(&p, "a read of another value", "compute cmd 5 (launch node 1", "step 0",
               "reads activation layers.0.h at activations offset 12", "it holds x, written by the host", NULL);
  release(&p);

  build(&p, three);
  act = p.s.regions[FY_REGION_ACTIVATIONS].offset;
  LAUNCH(0)->args[0].offset = act + 4;
  LAUNCH(0)->args[2].offset = act + 48; /* h0 where h2 goes later, so that nothing overlaps */
  LAUNCH(1)->args[0].offset = act + 48;
  expect_error(&p, "a read 4 bytes into its value", "compute cmd 1 (launch node 0", "step 0",
               "reads input x at activations offset 4", "x was written at activations offset 0, by the host", NULL);
  release(&p);

  build(&p, three);
  LAUNCH(1)->args[0].offset += 2;
  expect_error(&p, "a misaligned f32 read", "compute cmd 5", "argument 0", "not aligned to its f32 elements", NULL);
  release(&p);

  build(&p, three);
  act = p.s.regions[FY_REGION_ACTIVATIONS].offset;
  LAUNCH(0)->args[2].offset = act + 32; /* h0 written where h1 goes: launch 1 finds nothing at 16 */
  expect_error(&p, "an output written elsewhere", "compute cmd 5 (launch node 1", "reads activation layers.0.h",
               "activations offset 16", "nothing was written there", NULL);
  release(&p);

  build(&p, three);
  act = p.s.regions[FY_REGION_ACTIVATIONS].offset;
  LAUNCH(1)->args[2].offset = act + 48; /* h1 written over the final output's place, read from 32 */
  LAUNCH(2)->args[0].offset = act + 48;
  LAUNCH(2)->args[2].offset = act + 32;
  p.device_offset[p.h[2]] = act + 32;
  expect_ok(&p, "activations at other places, consistently");
  p.device_offset[p.h[2]] = act + 48;
  expect_error(&p, "the output read where it is not", "stage decode, step 0",
               "the runtime reads output layers.2.h at activations offset 48", "it holds layers.1.h", NULL);
  release(&p);

  build(&p, three);
  act = p.s.regions[FY_REGION_ACTIVATIONS].offset;
  LAUNCH(0)->args[2].offset = act + 8;
  expect_error(&p, "an output over its own input", "compute cmd 1", "arguments 0 (x", "and 2 (layers.0.h",
               "read what it writes", NULL);
  release(&p);

  build(&p, three);
  p.device_offset[p.x] = p.s.regions[FY_REGION_ACTIVATIONS].offset + 4;
  expect_error(&p, "the input written where the first launch does not read it", "compute cmd 1 (launch node 0",
               "reads input x at activations offset 0", "nothing was written there", NULL);
  release(&p);

  build(&p, three);
  LAUNCH(0)->args[2].offset = p.s.regions[FY_REGION_KV].offset;
  expect_error(&p, "an activation bound outside the activations region", "compute cmd 1", "argument 2",
               "is not inside the activations region", NULL);
  release(&p);

  build(&p, three);
  swap(&p, FY_QUEUE_COMPUTE, 5, 9);
  expect_error(&p, "launches out of graph order", "compute cmd 5 (launch node 2", "out of graph order",
               "node 1 (layers.1.mm) is next", NULL);
  release(&p);

  build(&p, three);
  insert(&p, FY_QUEUE_COMPUTE, p.stages[1].n_cmds[FY_QUEUE_COMPUTE], *LAUNCH(2));
  expect_error(&p, "a node launched twice", "compute cmd 12 (launch node 2", "a second launch", NULL);
  release(&p);

  build(&p, three);
  drop(&p, FY_QUEUE_COMPUTE, 9);
  expect_error(&p, "a node never launched", "stage decode: node 2 (layers.2.mm) is never launched", NULL);
  release(&p);

  build(&p, three);
  LAUNCH(1)->args[3] = (fy_binding_t){FY_LOC_DEVICE, -1, 0};
  expect_error(&p, "a binding past the node's arguments", "compute cmd 5", "binding 3 is set",
               "the node has 3 arguments", NULL);
  release(&p);

  build(&p, three);
  p.g->nodes[1].attrs.eps = 1e-5f;
  expect_error(&p, "attributes on an op that takes none", "node 1 (layers.1.mm, matmul): attrs.eps",
               "the model config gives 0", NULL);
  release(&p);

  build(&p, three);
  fy_value_t x2 = p.g->values[p.x];
  x2.name = "x2";
  must(fy_graph_add_value(p.g, &x2, NULL), "x2");
  expect_error(&p, "two inputs to a stage", "graph stage decode has two input values, x and x2", NULL);
  release(&p);
#undef LAUNCH
}

/* Every WAIT ends no earlier than the signal it waits for; each queue runs in order. */
static bool spans_consistent(const plan_t *p, const fy_sim_result_t *r) {
  for (int64_t a = 0; a < r->n_spans; a++) {
    const fy_sim_span_t *x = &r->spans[a];
    const fy_stage_schedule_t *st = &p->stages[x->stage];
    const fy_cmd_t *cmd = &st->cmds[x->queue][x->cmd];
    if (x->end < x->start) return false;
    for (int64_t b = a + 1; b < r->n_spans; b++) {
      const fy_sim_span_t *y = &r->spans[b];
      if (y->stage == x->stage && y->queue == x->queue && y->step == x->step && y->cmd == x->cmd + 1 &&
          y->start < x->end)
        return false;
    }
    if (cmd->kind != FY_CMD_WAIT || x->step + cmd->step_delta < 0) continue;
    bool found = false;
    for (int64_t b = 0; b < r->n_spans; b++) {
      const fy_sim_span_t *y = &r->spans[b];
      const fy_cmd_t *other = &p->stages[y->stage].cmds[y->queue][y->cmd];
      if (y->stage == x->stage && other->kind == FY_CMD_SIGNAL && other->event == cmd->event &&
          y->step == x->step + cmd->step_delta) {
        found = true;
        if (x->end < y->end) return false;
      }
    }
    if (!found) return false;
  }
  return true;
}

static const fy_sim_span_t *find_span(const fy_sim_result_t *r, int queue, int cmd, int64_t step) {
  for (int64_t i = 0; i < r->n_spans; i++)
    if (r->spans[i].stage == 1 && r->spans[i].queue == queue && r->spans[i].cmd == cmd && r->spans[i].step == step)
      return &r->spans[i];
  return NULL;
}

static void simulate_cases(void) {
  plan_t p;
  fy_sim_result_t r;

  /* Copy 2 s, compute 1 s, 2 layers, 2 slots, 1 step: copy w0 [0,2], w1 [2,4];
   * launch 0 [2,3], launch 1 [4,5]: 5 s. */
  build(&p, (shape_t){.n_layers = 2, .n_slots = 2, .repeat = 1, .copy_seconds = 2, .compute_seconds = 1});
  must(fy_simulate(&p.s, NULL, &r), "simulate");
  report(near(r.stages[1].first_step_seconds, 5) && near(r.stages[1].total_seconds, 5) && near(r.request_seconds, 5),
         "2 slots, copy 2 s, compute 1 s: first step 5 s (got %g, total %g)", r.stages[1].first_step_seconds,
         r.stages[1].total_seconds);
  fy_sim_result_free(&r);
  release(&p);

  /* Repeat 3, copy-bound. Step 1: copy w0 waits free0 of step 0 (3), starts at 4 when the
   * queue is free: [4,6], w1 waits free1 (5): [6,8]; launches [6,7], [8,9]. Step 2: w0
   * [8,10], w1 [10,12], launches [10,11], [12,13]. Steady step 4 = copy time per step;
   * total 13. Compute waits: step 0: 2 + 1, steps 1, 2: 1 + 1 each = 7. */
  build(&p, (shape_t){.n_layers = 2, .n_slots = 2, .repeat = 3, .copy_seconds = 2, .compute_seconds = 1});
  fy_sim_options_t trace = {.record_spans = true};
  must(fy_simulate(&p.s, &trace, &r), "simulate");
  const fy_sim_stage_t *d = &r.stages[1];
  report(near(d->first_step_seconds, 5) && near(d->step_seconds, 4) && near(d->total_seconds, 13),
         "cross-step prefetch, copy-bound: first 5 s, steady step 4 s = copy sum, total 13 s (got %g, %g, %g)",
         d->first_step_seconds, d->step_seconds, d->total_seconds);
  report(near(d->copy_busy_seconds, 12) && near(d->compute_busy_seconds, 6) && near(d->compute_wait_seconds, 7) &&
             d->copied_bytes == 6 * WEIGHT_BYTES,
         "busy copy 12 s, compute 6 s, compute waits 7 s, 384 bytes copied (got %g, %g, %g, %llu)",
         d->copy_busy_seconds, d->compute_busy_seconds, d->compute_wait_seconds, (unsigned long long)d->copied_bytes);
  report(near(r.request_seconds, 13) && near(r.load_seconds, 0) && near(r.bus_busy_fraction, 12.0 / 13) &&
             near(r.compute_wait_seconds, 7),
         "request 13 s, load 0 s, bus busy 12/13 (got %g, %g, %g)", r.request_seconds, r.load_seconds,
         r.bus_busy_fraction);
  report(r.peak_bytes[FY_REGION_SLOTS] == 2 * WEIGHT_BYTES &&
             r.peak_bytes[FY_REGION_ACTIVATIONS] == p.s.regions[FY_REGION_ACTIVATIONS].bytes,
         "peak slot bytes 128 (both slots held from t=2 to 3), activations = region (got %llu, %llu)",
         (unsigned long long)r.peak_bytes[FY_REGION_SLOTS], (unsigned long long)r.peak_bytes[FY_REGION_ACTIVATIONS]);
  report(r.n_spans == 3 * (6 + 8) && spans_consistent(&p, &r),
         "42 spans (3 steps × 14 commands), waits end after their signals, queues in order (got %lld)",
         (long long)r.n_spans);
  bool after = true;
  for (int64_t step = 0; step < 3; step++)
    for (int l = 0; l < 2; l++) {
      const fy_sim_span_t *copy = find_span(&r, FY_QUEUE_COPY, 3 * l + 1, step);
      const fy_sim_span_t *launch = find_span(&r, FY_QUEUE_COMPUTE, 4 * l + 1, step);
      after &= copy && launch && launch->start >= copy->end;
    }
  const fy_sim_span_t *w0_step1 = find_span(&r, FY_QUEUE_COPY, 1, 1);
  report(after && w0_step1 && near(w0_step1->start, 4) && near(w0_step1->end, 6),
         "every launch starts after its copy ends; step 1 copies w0 at [4, 6] (got [%g, %g])",
         w0_step1 ? w0_step1->start : -1, w0_step1 ? w0_step1->end : -1);
  fy_sim_result_free(&r);
  trace.max_traced_steps = 1;
  must(fy_simulate(&p.s, &trace, &r), "simulate");
  report(r.n_spans == 14, "max_traced_steps 1 keeps step 0's 14 spans (got %lld)", (long long)r.n_spans);
  fy_sim_result_free(&r);
  release(&p);

  /* Compute-bound: copy 1 s, compute 2 s. Step 0: w0 [0,1], w1 [1,2], launches [1,3], [3,5].
   * Step 1: w0 waits free0 (3): [3,4]; w1 waits free1 (5): [5,6]; launches [5,7], [7,9].
   * Step 2: w0 [7,8], w1 [9,10], launches [9,11], [11,13]. Steady step 4 = compute sum. */
  build(&p, (shape_t){.n_layers = 2, .n_slots = 2, .repeat = 3, .copy_seconds = 1, .compute_seconds = 2});
  must(fy_simulate(&p.s, NULL, &r), "simulate");
  d = &r.stages[1];
  report(near(d->first_step_seconds, 5) && near(d->step_seconds, 4) && near(d->total_seconds, 13) &&
             near(d->compute_wait_seconds, 1),
         "cross-step prefetch, compute-bound: first 5 s, steady 4 s = compute sum, total 13 s, waits 1 s "
         "(got %g, %g, %g, %g)",
         d->first_step_seconds, d->step_seconds, d->total_seconds, d->compute_wait_seconds);
  fy_sim_result_free(&r);
  release(&p);

  /* One slot: nothing overlaps. Step 0: w0 [0,2], launch [2,3], w1 [3,5], launch [5,6];
   * step 1 waits for free1 of step 0 (6): w0 [6,8], [8,9], w1 [9,11], [11,12]. */
  build(&p, (shape_t){.n_layers = 2, .n_slots = 1, .repeat = 2, .copy_seconds = 2, .compute_seconds = 1});
  must(fy_simulate(&p.s, NULL, &r), "simulate");
  d = &r.stages[1];
  report(near(d->first_step_seconds, 6) && near(d->step_seconds, 6) && near(d->total_seconds, 12) &&
             r.peak_bytes[FY_REGION_SLOTS] == WEIGHT_BYTES,
         "1 slot: sequential, step 6 s = copy + compute, total 12 s, peak 64 slot bytes (got %g, %g, %g, %llu)",
         d->first_step_seconds, d->step_seconds, d->total_seconds, (unsigned long long)r.peak_bytes[FY_REGION_SLOTS]);
  fy_sim_result_free(&r);
  release(&p);

  /* Layer 0 resident: load copies it (2 s); decode streams layers 1, 2 through 1 slot:
   * launch 0 [0,1], w1 [0,2], launch 1 [2,3], w2 [3,5], launch 2 [5,6]: 6 s. */
  build(&p, (shape_t){.n_layers = 3, .n_slots = 1, .n_resident = 1, .repeat = 1, .copy_seconds = 2,
                      .compute_seconds = 1});
  must(fy_simulate(&p.s, NULL, &r), "simulate");
  report(near(r.load_seconds, 2) && near(r.request_seconds, 6) && near(r.bus_busy_fraction, 4.0 / 6) &&
             r.peak_bytes[FY_REGION_RESIDENT] == WEIGHT_BYTES,
         "resident layer: load 2 s kept out of the request's 6 s, bus busy 4/6 (got %g, %g, %g)", r.load_seconds,
         r.request_seconds, r.bus_busy_fraction);
  fy_sim_result_free(&r);
  release(&p);

  build(&p, (shape_t){.n_layers = 2, .n_slots = 2, .repeat = 3, .copy_seconds = 2, .compute_seconds = 1});
  decode_cmd(&p, FY_QUEUE_COPY, 0)->step_delta = 0;
  fy_status_t st = fy_simulate(&p.s, NULL, &r);
  report(st && fy_status_code(st) == FY_INTERNAL && strstr(fy_status_message(st), "deadlock"),
         "simulate reports a deadlock: %s", st ? fy_status_message(st) : "(none)");
  fy_status_free(st);
  release(&p);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* 240 layers × 7 commands ≈ 80 real layers × 20 commands, repeat 128. */
static void scale_case(void) {
  plan_t *p = malloc(sizeof *p);
  if (!p) exit(1);
  build(p, (shape_t){.n_layers = 240, .n_slots = 3, .n_resident = 40, .repeat = 128, .copy_seconds = 0.02,
                     .compute_seconds = 0.01});
  double t0 = now();
  fy_status_t st = fy_schedule_check(&p->s);
  double t1 = now();
  fy_sim_result_t r;
  fy_status_t sim = fy_simulate(&p->s, NULL, &r);
  double t2 = now();
  report(!st, "check of %d commands per step: %.2f ms", p->stages[1].n_cmds[0] + p->stages[1].n_cmds[1],
         1e3 * (t1 - t0));
  report(!st && t1 - t0 < 0.1, "check takes under 100 ms");
  /* Copy-bound, but the ring cannot cover the resident prefix. With a step's compute
   * starting at T: the copies of streamed layers 0..2 wait only for the last launches of
   * the step before and are done by T + 0.05; the copy of layer 3 waits for free[0], at
   * T + 0.4 (40 resident launches) + 0.01; from there the copy queue is the bottleneck:
   * 197 copies end at T + 0.41 + 197 × 0.02 and the last launch at T + 4.36. */
  double step = sim ? -1 : r.stages[1].step_seconds;
  report(!sim && step > 4.36 - 1e-6 && step < 4.36 + 1e-6 && t2 - t1 < 0.05,
         "simulate of 128 steps: %.2f ms, steady step %g s (4.36 s by hand)", 1e3 * (t2 - t1), step);
  fy_status_free(st);
  fy_status_free(sim);
  if (!sim) fy_sim_result_free(&r);
  release(p);
  free(p);
}

int main(void) {
  report(!strcmp(fy_region_name(FY_REGION_SLOTS), "slots") && !strcmp(fy_queue_name(FY_QUEUE_COPY), "copy") &&
             !strcmp(fy_cmd_kind_name(FY_CMD_CHUNK_END), "chunk_end"),
         "names of regions, queues and command kinds");
  check_cases();
  simulate_cases();
  scale_case();
  printf("%s\n", failures ? "FAILED" : "all passed");
  return failures ? 1 : 0;
}
