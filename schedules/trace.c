/* Chrome trace JSON writer (see trace.h). The text is built in memory
 * (open_memstream) and written atomically. */
#include "schedules/trace.h"

#include <stdio.h>
#include <stdlib.h>

#include "support/file.h"

/* A change of a region's bytes in use at a time (slot: which slot, for the slots region). */
typedef struct change {
  double t;
  int region, slot;
  int64_t delta;
} change_t;

static int by_time(const void *a, const void *b) {
  const change_t *x = a, *y = b;
  if (x->t != y->t) return x->t < y->t ? -1 : 1;
  /* At equal times, frees first: a copy may start the moment its slot is evicted. */
  return (x->delta > y->delta) - (x->delta < y->delta);
}

static int region_of(const fy_schedule_t *s, uint64_t offset) {
  for (int r = 0; r < FY_REGION_COUNT; r++)
    if (offset >= s->regions[r].offset && offset - s->regions[r].offset < s->regions[r].bytes) return r;
  return -1;
}

static void put_string(FILE *f, const char *text) {
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)(text ? text : ""); *p; p++) {
    if (*p == '"' || *p == '\\')
      fprintf(f, "\\%c", *p);
    else if (*p < 0x20)
      fprintf(f, "\\u%04x", *p);
    else
      fputc(*p, f);
  }
  fputc('"', f);
}

static void span_name(const fy_schedule_t *s, const fy_stage_schedule_t *st, const fy_cmd_t *cmd, char *buf,
                      size_t size) {
  const fy_graph_t *g = s->graph;
  const char *layer = cmd->layer >= 0 && cmd->layer < g->n_layers ? g->layers[cmd->layer].name : "global";
  const char *event = cmd->event >= 0 && cmd->event < st->n_events ? st->events[cmd->event].name : "?";
  switch (cmd->kind) {
    case FY_CMD_LAUNCH: snprintf(buf, size, "%s", g->nodes[cmd->node].name); break;
    case FY_CMD_COPY: snprintf(buf, size, "copy %s (%llu B)", layer, (unsigned long long)cmd->bytes); break;
    case FY_CMD_WAIT: snprintf(buf, size, "wait %s", event); break;
    case FY_CMD_SIGNAL: snprintf(buf, size, "signal %s", event); break;
    case FY_CMD_EVICT: snprintf(buf, size, "evict slot %d", cmd->slot); break;
    default: snprintf(buf, size, "%s", fy_cmd_kind_name(cmd->kind)); break;
  }
}

static int slot_of(const fy_schedule_t *s, uint64_t offset) {
  uint64_t slot = s->slot_bytes ? (offset - s->regions[FY_REGION_SLOTS].offset) / s->slot_bytes : 0;
  return slot < (uint64_t)s->n_slots ? (int)slot : s->n_slots - 1;
}

/* Counter changes, in time order: resident and slot bytes from copies and
 * evictions; KV and activations held from the first span on. */
static fy_status_t region_changes(const fy_schedule_t *s, const fy_sim_span_t *spans, int64_t n, change_t **out,
                                  int64_t *out_n) {
  change_t *v = malloc(sizeof *v * (size_t)(n + 2));
  if (!v) return fy_status_make(FY_RESOURCE_EXHAUSTED, "trace: out of memory");
  int64_t k = 0;
  double first = 0;
  for (int64_t i = 0; i < n; i++) {
    const fy_sim_span_t *sp = &spans[i];
    if (i == 0 || sp->start < first) first = sp->start;
    const fy_cmd_t *cmd = &s->stages[sp->stage].cmds[sp->queue][sp->cmd];
    int r = region_of(s, cmd->device_offset);
    if (cmd->kind == FY_CMD_COPY && r == FY_REGION_RESIDENT)
      v[k++] = (change_t){sp->start, r, -1, (int64_t)cmd->bytes};
    else if (cmd->kind == FY_CMD_COPY && r == FY_REGION_SLOTS)
      v[k++] = (change_t){sp->start, r, slot_of(s, cmd->device_offset), (int64_t)cmd->bytes};
    else if (cmd->kind == FY_CMD_EVICT && r == FY_REGION_SLOTS)
      v[k++] = (change_t){sp->start, r, slot_of(s, cmd->device_offset), -(int64_t)cmd->bytes};
  }
  v[k++] = (change_t){first, FY_REGION_KV, -1, (int64_t)s->regions[FY_REGION_KV].bytes};
  v[k++] = (change_t){first, FY_REGION_ACTIVATIONS, -1, (int64_t)s->regions[FY_REGION_ACTIVATIONS].bytes};
  qsort(v, (size_t)k, sizeof *v, by_time);
  *out = v;
  *out_n = k;
  return NULL;
}

fy_status_t fy_trace_write_chrome(const fy_schedule_t *s, const fy_sim_span_t *spans, int64_t n_spans,
                                  const char *process, const char *path) {
  change_t *changes = NULL;
  int64_t n_changes = 0;
  FY_TRY(region_changes(s, spans, n_spans, &changes, &n_changes));
  char *text = NULL;
  size_t size = 0;
  FILE *f = open_memstream(&text, &size);
  if (!f) {
    free(changes);
    return fy_status_make(FY_RESOURCE_EXHAUSTED, "trace: out of memory");
  }
  fprintf(f, "{\"traceEvents\":[\n{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":1,\"tid\":0,\"args\":{\"name\":");
  put_string(f, process);
  fprintf(f, "}}");
  for (int q = 0; q < FY_QUEUE_COUNT; q++)
    fprintf(f, ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":%d,\"args\":{\"name\":\"%s queue\"}}", q,
            fy_queue_name((fy_queue_t)q));
  char name[512];
  for (int64_t i = 0; i < n_spans; i++) {
    const fy_sim_span_t *sp = &spans[i];
    const fy_stage_schedule_t *st = &s->stages[sp->stage];
    span_name(s, st, &st->cmds[sp->queue][sp->cmd], name, sizeof name);
    fprintf(f, ",\n{\"name\":");
    put_string(f, name);
    fprintf(f, ",\"cat\":");
    put_string(f, st->name);
    fprintf(f, ",\"ph\":\"X\",\"ts\":%.3f,\"dur\":%.3f,\"pid\":1,\"tid\":%d,\"args\":{\"step\":%lld,\"cmd\":%d}}",
            sp->start * 1e6, (sp->end - sp->start) * 1e6, sp->queue, (long long)sp->step, sp->cmd);
  }
  /* An eviction frees what its slot holds, no more (a traced run may start mid-way). */
  int64_t level[FY_REGION_COUNT] = {0};
  int64_t *held = calloc((size_t)(s->n_slots > 0 ? s->n_slots : 1), sizeof *held);
  for (int64_t i = 0; held && i < n_changes; i++) {
    const change_t *c = &changes[i];
    int64_t delta = c->delta;
    if (c->slot >= 0) {
      if (delta < 0 && -delta > held[c->slot]) delta = -held[c->slot];
      held[c->slot] += delta;
    }
    level[c->region] += delta;
    if (i + 1 < n_changes && changes[i + 1].t == changes[i].t) continue;
    fprintf(f, ",\n{\"name\":\"bytes in use\",\"ph\":\"C\",\"ts\":%.3f,\"pid\":1,\"args\":{", changes[i].t * 1e6);
    for (int r = 0; r < FY_REGION_COUNT; r++)
      fprintf(f, "%s\"%s\":%lld", r ? "," : "", fy_region_name((fy_region_kind_t)r), (long long)level[r]);
    fprintf(f, "}}");
  }
  fprintf(f, "\n]}\n");
  int failed = ferror(f) || !held;
  fclose(f);
  free(held);
  free(changes);
  fy_status_t st = failed ? fy_status_make(FY_RESOURCE_EXHAUSTED, "trace: out of memory")
                          : fy_file_write_atomic_bytes(path, text, size);
  free(text);
  return fy_status_annotate(st, "trace %s", path);
}
