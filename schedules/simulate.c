/* fy_simulate: replays a schedule on its commands' predicted durations.
 *
 * Reads the stages' command lists (seconds, bytes, events), the slots region,
 * n_slots and slot_bytes; nothing from the compile. It does not prove the
 * schedule safe (fy_schedule_check does) but rejects what it cannot replay:
 * bad command kinds or events, and deadlocks.
 *
 * Each queue is a clock that runs its list once per step, in order: COPY and
 * LAUNCH advance it by their seconds, SIGNAL stamps (event, step) with it, and
 * WAIT moves it to the stamp of the step it waits for. Times are max-plus
 * sums, so the order in which the two queues are advanced does not change
 * them: each queue is advanced until it blocks on a WAIT whose signal has not
 * been replayed yet, then the other. To keep memory independent of repeat, a
 * queue is replayed at most one step ahead of the other; a WAIT needs a
 * signal of its step or the one before, so the signal stamps of four steps
 * per event (a ring) are all that is ever read. Stages run one after another,
 * each from time 0 (both queues drain between them).
 *
 * Slot bytes count from the start of a copy into a slot until the EVICT of
 * that slot; each queue's changes come in time order, so the two streams are
 * merged as they are produced to find the peak without storing the run. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "schedules/simulate.h"

enum { COMPUTE = FY_QUEUE_COMPUTE, COPY = FY_QUEUE_COPY };
enum { RING = 4 };

/* A change of the slot bytes held, at a time of one queue. */
typedef struct change {
  double t;
  int64_t delta;
} change_t;

typedef struct change_fifo {
  change_t *v;
  size_t head, n, cap;
} change_fifo_t;

typedef struct cursor {
  int64_t step;
  int i;
  double t;
  bool done;
  double first_end, previous_end, last_end; /* ends of steps 0, repeat-2, repeat-1 */
} cursor_t;

typedef struct sim {
  const fy_schedule_t *s;
  const fy_sim_options_t *options;
  int64_t max_traced_steps;
  int stage;
  const fy_stage_schedule_t *st;
  fy_sim_stage_t *out;
  /* Per event × RING: the step whose signal is stored, and its time. */
  int64_t *signal_step;
  double *signal_time;
  int cap_events;
  /* Slot bytes held. */
  uint64_t *held; /* per slot */
  int n_held;
  change_fifo_t changes[FY_QUEUE_COUNT];
  int64_t level, peak;
  /* Spans, when recorded. */
  fy_sim_span_t *spans;
  int64_t n_spans, cap_spans;
} sim_t;

static fy_status_t out_of_memory(void) { return fy_status_make(FY_RESOURCE_EXHAUSTED, "simulate: out of memory"); }

static fy_status_t push_change(change_fifo_t *f, double t, int64_t delta) {
  if (f->n == f->cap) {
    if (f->head >= f->n / 2 && f->head > 0) {
      memmove(f->v, f->v + f->head, (f->n - f->head) * sizeof *f->v);
      f->n -= f->head;
      f->head = 0;
    } else {
      size_t cap = f->cap ? f->cap * 2 : 256;
      change_t *v = realloc(f->v, cap * sizeof *v);
      if (!v) return out_of_memory();
      f->v = v;
      f->cap = cap;
    }
  }
  f->v[f->n++] = (change_t){t, delta};
  return NULL;
}

/* Applies the changes whose order is known: a queue's next change may be
 * applied once the other queue has a later one queued or will have none. */
static void merge_changes(sim_t *m, const bool done[FY_QUEUE_COUNT]) {
  change_fifo_t *a = &m->changes[COMPUTE], *b = &m->changes[COPY];
  for (;;) {
    bool has_a = a->head < a->n, has_b = b->head < b->n;
    change_fifo_t *next;
    if (has_a && has_b) {
      const change_t *x = &a->v[a->head], *y = &b->v[b->head];
      /* At equal times, frees first: a copy may start the moment its slot is evicted. */
      next = x->t < y->t || (x->t == y->t && x->delta <= y->delta) ? a : b;
    } else if (has_a && done[COPY]) {
      next = a;
    } else if (has_b && done[COMPUTE]) {
      next = b;
    } else {
      break;
    }
    m->level += next->v[next->head++].delta;
    if (m->level > m->peak) m->peak = m->level;
  }
}

/* The slot a device offset falls in, or -1 outside the slots region. */
static int slot_of(const fy_schedule_t *s, uint64_t off) {
  const fy_region_t *r = &s->regions[FY_REGION_SLOTS];
  if (off < r->offset || off - r->offset >= r->bytes) return -1;
  if (s->slot_bytes == 0) return 0;
  uint64_t slot = (off - r->offset) / s->slot_bytes;
  return slot < (uint64_t)s->n_slots ? (int)slot : s->n_slots - 1;
}

static fy_status_t record_span(sim_t *m, int q, int i, int64_t step, double start, double end) {
  if (m->n_spans == m->cap_spans) {
    int64_t cap = m->cap_spans ? m->cap_spans * 2 : 1024;
    fy_sim_span_t *v = realloc(m->spans, (size_t)cap * sizeof *v);
    if (!v) return out_of_memory();
    m->spans = v;
    m->cap_spans = cap;
  }
  m->spans[m->n_spans++] = (fy_sim_span_t){m->stage, q, i, step, start, end};
  return NULL;
}

/* Replays queue q's next command unless it is a WAIT for a signal not yet
 * replayed; *out_ran says whether it ran. */
static fy_status_t advance(sim_t *m, int q, cursor_t *at, bool *out_ran) {
  const fy_stage_schedule_t *st = m->st;
  const fy_cmd_t *cmd = &st->cmds[q][at->i];
  double start = at->t;
  *out_ran = false;
  switch (cmd->kind) {
    case FY_CMD_WAIT: {
      int64_t k = at->step + cmd->step_delta;
      if (k < 0) break;
      size_t slot = (size_t)cmd->event * RING + (size_t)(k % RING);
      if (m->signal_step[slot] != k) return NULL;
      if (m->signal_time[slot] > at->t) {
        if (q == COMPUTE) m->out->compute_wait_seconds += m->signal_time[slot] - at->t;
        at->t = m->signal_time[slot];
      }
      break;
    }
    case FY_CMD_SIGNAL: {
      size_t slot = (size_t)cmd->event * RING + (size_t)(at->step % RING);
      if (m->signal_step[slot] != at->step) { /* the first signal of a step sets the value */
        m->signal_step[slot] = at->step;
        m->signal_time[slot] = at->t;
      }
      break;
    }
    case FY_CMD_COPY: {
      int slot = slot_of(m->s, cmd->device_offset);
      if (slot >= 0) {
        m->held[slot] += cmd->bytes;
        FY_TRY(push_change(&m->changes[q], at->t, (int64_t)cmd->bytes));
      }
      m->out->copy_busy_seconds += cmd->seconds;
      m->out->copied_bytes += cmd->bytes;
      at->t += cmd->seconds;
      break;
    }
    case FY_CMD_LAUNCH:
      m->out->compute_busy_seconds += cmd->seconds;
      at->t += cmd->seconds;
      break;
    case FY_CMD_EVICT: {
      int slot = cmd->slot >= 0 && cmd->slot < m->n_held ? cmd->slot : slot_of(m->s, cmd->device_offset);
      if (slot >= 0) {
        uint64_t freed = m->held[slot] < cmd->bytes ? m->held[slot] : cmd->bytes;
        m->held[slot] -= freed;
        FY_TRY(push_change(&m->changes[q], at->t, -(int64_t)freed));
      }
      break;
    }
    default: break;
  }
  if (m->options->record_spans && at->step < m->max_traced_steps)
    FY_TRY(record_span(m, q, at->i, at->step, start, at->t));
  *out_ran = true;
  if (++at->i == st->n_cmds[q]) {
    if (at->step == 0) at->first_end = at->t;
    if (at->step == st->repeat - 2) at->previous_end = at->t;
    if (at->step == st->repeat - 1) {
      at->last_end = at->t;
      at->done = true;
    }
    at->i = 0;
    at->step++;
  }
  return NULL;
}

static fy_status_t validate_stage(const sim_t *m) {
  const fy_stage_schedule_t *st = m->st;
  if (st->repeat < 0 || st->n_events < 0)
    return fy_status_make(FY_INVALID_ARGUMENT, "simulate: stage %s: repeat %" PRId64 ", %d events", st->name,
                          st->repeat, st->n_events);
  for (int q = 0; q < FY_QUEUE_COUNT; q++) {
    if (st->n_cmds[q] < 0 || (st->n_cmds[q] > 0 && !st->cmds[q]))
      return fy_status_make(FY_INVALID_ARGUMENT, "simulate: stage %s: %s queue: %d commands", st->name,
                            fy_queue_name(q), st->n_cmds[q]);
    for (int i = 0; i < st->n_cmds[q]; i++) {
      const fy_cmd_t *cmd = &st->cmds[q][i];
      bool event = cmd->kind == FY_CMD_WAIT || cmd->kind == FY_CMD_SIGNAL;
      if ((int)cmd->kind < 0 || cmd->kind >= FY_CMD_KIND_COUNT ||
          (event && (cmd->event < 0 || cmd->event >= st->n_events)) ||
          (cmd->kind == FY_CMD_WAIT && cmd->step_delta != 0 && cmd->step_delta != -1) ||
          ((cmd->kind == FY_CMD_COPY || cmd->kind == FY_CMD_LAUNCH) && !(cmd->seconds >= 0)))
        return fy_status_make(FY_INVALID_ARGUMENT,
                              "simulate: stage %s, %s cmd %d: kind %d, event %d, step_delta %d, seconds %g", st->name,
                              fy_queue_name(q), i, (int)cmd->kind, cmd->event, cmd->step_delta, cmd->seconds);
    }
  }
  return NULL;
}

static fy_status_t deadlock_error(const sim_t *m, const cursor_t at[FY_QUEUE_COUNT]) {
  char blocked[FY_QUEUE_COUNT][300];
  for (int q = 0; q < FY_QUEUE_COUNT; q++) {
    if (at[q].done) {
      snprintf(blocked[q], sizeof blocked[q], "the %s queue has finished", fy_queue_name(q));
    } else {
      const fy_cmd_t *cmd = &m->st->cmds[q][at[q].i];
      const char *event = cmd->kind == FY_CMD_WAIT && m->st->events && m->st->events[cmd->event].name
                              ? m->st->events[cmd->event].name
                              : "?";
      snprintf(blocked[q], sizeof blocked[q], "%s cmd %d (%s %s, step_delta %d) blocks in step %" PRId64,
               fy_queue_name(q), at[q].i, fy_cmd_kind_name(cmd->kind), event, cmd->step_delta, at[q].step);
    }
  }
  return fy_status_make(FY_INTERNAL, "simulate: stage %s: deadlock: %s; %s", m->st->name, blocked[COMPUTE],
                        blocked[COPY]);
}

static fy_status_t simulate_stage(sim_t *m) {
  const fy_stage_schedule_t *st = m->st;
  FY_TRY(validate_stage(m));
  if (st->n_events > m->cap_events) {
    int64_t *steps = realloc(m->signal_step, (size_t)st->n_events * RING * sizeof *steps);
    if (steps) m->signal_step = steps;
    double *times = realloc(m->signal_time, (size_t)st->n_events * RING * sizeof *times);
    if (times) m->signal_time = times;
    if (!steps || !times) return out_of_memory();
    m->cap_events = st->n_events;
  }
  for (size_t k = 0; k < (size_t)st->n_events * RING; k++) m->signal_step[k] = -1;
  cursor_t at[FY_QUEUE_COUNT] = {{0}};
  bool done[FY_QUEUE_COUNT];
  for (int q = 0; q < FY_QUEUE_COUNT; q++) at[q].done = done[q] = st->repeat == 0 || st->n_cmds[q] == 0;
  for (;;) {
    bool progress = false;
    for (int q = 0; q < FY_QUEUE_COUNT; q++) {
      const cursor_t *other = &at[1 - q];
      bool ran = true;
      while (ran && !at[q].done && (other->done || at[q].step <= other->step + 1)) {
        FY_TRY(advance(m, q, &at[q], &ran));
        progress |= ran;
      }
      done[q] = at[q].done;
    }
    merge_changes(m, done);
    if (done[COMPUTE] && done[COPY]) break;
    if (!progress) return deadlock_error(m, at);
  }
  fy_sim_stage_t *out = m->out;
  double first = at[COMPUTE].first_end > at[COPY].first_end ? at[COMPUTE].first_end : at[COPY].first_end;
  double previous = at[COMPUTE].previous_end > at[COPY].previous_end ? at[COMPUTE].previous_end : at[COPY].previous_end;
  out->first_step_seconds = first;
  out->total_seconds = at[COMPUTE].last_end > at[COPY].last_end ? at[COMPUTE].last_end : at[COPY].last_end;
  out->step_seconds = st->repeat >= 2 ? out->total_seconds - previous : first;
  return NULL;
}

static bool is_load_stage(const fy_stage_schedule_t *st) {
  return st->graph_stage < 0 || (st->name && !strcmp(st->name, "load"));
}

fy_status_t fy_simulate(const fy_schedule_t *s, const fy_sim_options_t *options, fy_sim_result_t *out_result) {
  static const fy_sim_options_t no_options = {0};
  if (!s || s->n_stages < 0 || (s->n_stages > 0 && !s->stages) || s->n_slots < 0)
    return fy_status_make(FY_INVALID_ARGUMENT, "simulate: no schedule, or a bad stage or slot count");
  sim_t m = {.s = s, .options = options ? options : &no_options};
  m.max_traced_steps = m.options->max_traced_steps > 0 ? m.options->max_traced_steps : 4;
  m.n_held = s->n_slots > 0 ? s->n_slots : 1;
  m.held = calloc((size_t)m.n_held, sizeof *m.held);
  fy_sim_stage_t *stages = calloc(s->n_stages > 0 ? (size_t)s->n_stages : 1, sizeof *stages);
  fy_status_t status = m.held && stages ? NULL : out_of_memory();
  for (int i = 0; i < s->n_stages && !status; i++) {
    m.stage = i;
    m.st = &s->stages[i];
    m.out = &stages[i];
    status = simulate_stage(&m);
  }
  free(m.signal_step);
  free(m.signal_time);
  free(m.held);
  for (int q = 0; q < FY_QUEUE_COUNT; q++) free(m.changes[q].v);
  if (status) {
    free(stages);
    free(m.spans);
    return status;
  }
  fy_sim_result_t r = {.stages = stages, .n_stages = s->n_stages, .spans = m.spans, .n_spans = m.n_spans};
  double request_copy_busy = 0;
  for (int i = 0; i < s->n_stages; i++) {
    if (is_load_stage(&s->stages[i])) {
      r.load_seconds += stages[i].total_seconds;
    } else {
      r.request_seconds += stages[i].total_seconds;
      request_copy_busy += stages[i].copy_busy_seconds;
      r.compute_wait_seconds += stages[i].compute_wait_seconds;
    }
  }
  r.bus_busy_fraction = r.request_seconds > 0 ? request_copy_busy / r.request_seconds : 0;
  for (int k = 0; k < FY_REGION_COUNT; k++) r.peak_bytes[k] = s->regions[k].bytes;
  r.peak_bytes[FY_REGION_SLOTS] = (uint64_t)m.peak;
  *out_result = r;
  return NULL;
}

void fy_sim_result_free(fy_sim_result_t *r) {
  if (!r) return;
  free(r->stages);
  free(r->spans);
  memset(r, 0, sizeof *r);
}
