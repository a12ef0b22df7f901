/* Weight binding and the runtime's memory-safety check of a schedule (see
 * bind.h). Reads the graph's files, values and nodes and the schedule's
 * regions and commands; changes nothing. */
#include "runtime/bind.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool inside(uint64_t offset, uint64_t bytes, uint64_t size) { return offset <= size && bytes <= size - offset; }

static char *resolve_path(const char *recorded, const char *weights_dir) {
  const char *base = strrchr(recorded, '/');
  base = base ? base + 1 : recorded;
  size_t n = weights_dir ? strlen(weights_dir) + 1 + strlen(base) + 1 : strlen(recorded) + 1;
  char *path = malloc(n);
  if (!path) return NULL;
  if (weights_dir)
    snprintf(path, n, "%s/%s", weights_dir, base);
  else
    memcpy(path, recorded, n);
  return path;
}

static bool recorded(const fy_file_fingerprint_t *f) { return f->size || f->hashed_bytes || f->digest; }

static fy_status_t check_file(const char *path, uint64_t size, uint64_t graph_size, const fy_file_fingerprint_t *print) {
  if (graph_size && size != graph_size)
    return fy_status_make(FY_INCOMPATIBLE, "weight file %s: size %llu bytes vs %llu in the plan: not the file it was "
                          "compiled for", path, (unsigned long long)size, (unsigned long long)graph_size);
  if (!print || !recorded(print)) return NULL;
  if (size != print->size)
    return fy_status_make(FY_INCOMPATIBLE, "weight file %s: size %llu bytes vs %llu in the plan's fingerprint: not the "
                          "file it was compiled for", path, (unsigned long long)size, (unsigned long long)print->size);
  fy_file_fingerprint_t now;
  FY_TRY(fy_fingerprint_file(path, &now));
  if (now.hashed_bytes != print->hashed_bytes || now.digest != print->digest)
    return fy_status_make(FY_INCOMPATIBLE, "weight file %s: digest of its header and sampled data differs "
                          "(%016llx over %llu header bytes vs %016llx over %llu in the plan): not the weights it was "
                          "compiled for", path,
                          (unsigned long long)now.digest, (unsigned long long)now.hashed_bytes,
                          (unsigned long long)print->digest, (unsigned long long)print->hashed_bytes);
  return NULL;
}

fy_status_t fy_rt_bind_files(const fy_graph_t *g, const fy_file_fingerprint_t *prints, const char *weights_dir,
                             fy_mapping_t *out_files, char **out_paths) {
  if (g->shape_only || (g->n_files == 0 && fy_graph_weight_bytes(g, -2) > 0))
    return fy_status_make(FY_INVALID_ARGUMENT, "the plan's graph is shape-only (compiled without weight files): "
                          "it cannot run");
  for (int f = 0; f < g->n_files; f++) {
    if (!g->files[f].path) return fy_status_make(FY_INVALID_ARGUMENT, "weight file %d has no path", f);
    out_paths[f] = resolve_path(g->files[f].path, weights_dir);
    if (!out_paths[f]) return fy_status_make(FY_RESOURCE_EXHAUSTED, "runtime: out of memory");
    FY_TRY(fy_status_annotate(fy_file_map(out_paths[f], &out_files[f]), "weight file"));
    FY_TRY(check_file(out_paths[f], out_files[f].size, g->files[f].size, prints ? &prints[f] : NULL));
  }
  for (int i = 0; i < g->n_values; i++) {
    const fy_value_t *v = &g->values[i];
    if (v->kind != FY_VALUE_WEIGHT) continue;
    if (v->file < 0 || v->file >= g->n_files)
      return fy_status_make(FY_INVALID_ARGUMENT, "weight %s: no weight file (file %d)", v->name, v->file);
    if (!inside(v->file_offset, v->nbytes, out_files[v->file].size))
      return fy_status_make(FY_OUT_OF_RANGE, "weight %s: bytes [%llu, +%llu) lie past the end of %s (%zu bytes)",
                            v->name, (unsigned long long)v->file_offset, (unsigned long long)v->nbytes,
                            out_paths[v->file], out_files[v->file].size);
  }
  return NULL;
}

void fy_rt_unbind_files(int n_files, fy_mapping_t *files, char **paths) {
  for (int f = 0; f < n_files; f++) {
    if (files) fy_file_unmap(&files[f]);
    if (paths) free(paths[f]);
  }
}

/* Bytes of value v's whole buffer; false on overflow. */
static bool value_bytes(const fy_value_t *v, uint64_t *out) {
  if (v->kind == FY_VALUE_WEIGHT) {
    *out = v->nbytes;
    return true;
  }
  int64_t n = fy_value_elements(v);
  return n >= 0 && !__builtin_mul_overflow((uint64_t)n, (uint64_t)fy_dtype_size(v->dtype), out);
}

static fy_status_t check_launch(const fy_schedule_t *s, const fy_stage_schedule_t *st, const fy_cmd_t *c,
                                const fy_mapping_t *files, const char *where) {
  const fy_graph_t *g = s->graph;
  if (st->graph_stage < 0 || st->graph_stage >= g->n_stages)
    return fy_status_make(FY_INVALID_ARGUMENT, "%s: a launch in a stage without graph nodes", where);
  const fy_stage_t *gs = &g->stages[st->graph_stage];
  if (c->node < gs->first_node || c->node >= gs->first_node + gs->n_nodes)
    return fy_status_make(FY_OUT_OF_RANGE, "%s: node %d is not a node of graph stage %s", where, c->node, gs->name);
  const fy_node_t *n = &g->nodes[c->node];
  if (n->n_inputs < 0 || n->n_inputs > FY_MAX_NODE_INPUTS)
    return fy_status_make(FY_INVALID_ARGUMENT, "%s: node %s has %d inputs", where, n->name, n->n_inputs);
  for (int k = 0; k <= n->n_inputs; k++) {
    int vi = k < n->n_inputs ? n->inputs[k] : n->output;
    if (vi < 0 || vi >= g->n_values)
      return fy_status_make(FY_OUT_OF_RANGE, "%s: node %s: value %d out of range", where, n->name, vi);
    const fy_value_t *v = &g->values[vi];
    const fy_binding_t *b = &c->args[k];
    uint64_t bytes;
    if (!value_bytes(v, &bytes)) return fy_status_make(FY_OUT_OF_RANGE, "%s: value %s: size overflows", where, v->name);
    if (b->kind == FY_LOC_DEVICE) {
      if (!inside(b->offset, bytes, s->device_bytes))
        return fy_status_make(FY_OUT_OF_RANGE, "%s: node %s: %s (%llu bytes at %llu) lies past device memory "
                              "(%llu bytes)", where, n->name, v->name, (unsigned long long)bytes,
                              (unsigned long long)b->offset, (unsigned long long)s->device_bytes);
    } else if (b->kind == FY_LOC_HOST_FILE) {
      if (k == n->n_inputs || v->kind != FY_VALUE_WEIGHT)
        return fy_status_make(FY_INVALID_ARGUMENT, "%s: node %s: %s is bound to a weight file but is not a weight "
                              "it reads", where, n->name, v->name);
      if (b->file < 0 || b->file >= g->n_files || !inside(b->offset, bytes, files[b->file].size))
        return fy_status_make(FY_OUT_OF_RANGE, "%s: node %s: %s (%llu bytes at %llu of file %d) lies outside its "
                              "file", where, n->name, v->name, (unsigned long long)bytes,
                              (unsigned long long)b->offset, b->file);
    } else {
      return fy_status_make(FY_INVALID_ARGUMENT, "%s: node %s: binding kind %d", where, n->name, (int)b->kind);
    }
  }
  return NULL;
}

static fy_status_t check_cmd(const fy_schedule_t *s, const fy_stage_schedule_t *st, fy_queue_t q, const fy_cmd_t *c,
                             const fy_mapping_t *files, const char *where) {
  const fy_graph_t *g = s->graph;
  switch (c->kind) {
    case FY_CMD_COPY:
      if (q != FY_QUEUE_COPY) return fy_status_make(FY_INVALID_ARGUMENT, "%s: a copy on the %s queue", where,
                                                    fy_queue_name(q));
      if (c->file < 0 || c->file >= g->n_files || !inside(c->file_offset, c->bytes, files[c->file].size))
        return fy_status_make(FY_OUT_OF_RANGE, "%s: copy source (%llu bytes at %llu of file %d) lies outside its "
                              "file", where, (unsigned long long)c->bytes, (unsigned long long)c->file_offset,
                              c->file);
      if (!inside(c->device_offset, c->bytes, s->device_bytes))
        return fy_status_make(FY_OUT_OF_RANGE, "%s: copy of %llu bytes to %llu lies past device memory (%llu bytes)",
                              where, (unsigned long long)c->bytes, (unsigned long long)c->device_offset,
                              (unsigned long long)s->device_bytes);
      return NULL;
    case FY_CMD_SIGNAL:
    case FY_CMD_WAIT:
      if (c->event < 0 || c->event >= st->n_events)
        return fy_status_make(FY_OUT_OF_RANGE, "%s: event %d of %d", where, c->event, st->n_events);
      if (c->kind == FY_CMD_WAIT && c->step_delta != 0 && c->step_delta != -1)
        return fy_status_make(FY_INVALID_ARGUMENT, "%s: step_delta %d (0 or -1)", where, c->step_delta);
      return NULL;
    case FY_CMD_LAUNCH:
      if (q != FY_QUEUE_COMPUTE) return fy_status_make(FY_INVALID_ARGUMENT, "%s: a launch on the %s queue", where,
                                                       fy_queue_name(q));
      return check_launch(s, st, c, files, where);
    case FY_CMD_EVICT:
      if (!inside(c->device_offset, c->bytes, s->device_bytes))
        return fy_status_make(FY_OUT_OF_RANGE, "%s: evicted range (%llu bytes at %llu) lies past device memory",
                              where, (unsigned long long)c->bytes, (unsigned long long)c->device_offset);
      return NULL;
    case FY_CMD_CHUNK_BEGIN:
    case FY_CMD_CHUNK_END:
      return NULL;
    default:
      return fy_status_make(FY_INVALID_ARGUMENT, "%s: command kind %d", where, (int)c->kind);
  }
}

fy_status_t fy_rt_validate_schedule(const fy_schedule_t *s, const fy_mapping_t *files) {
  if (!s->graph || s->n_stages < 1 || !s->stages)
    return fy_status_make(FY_INVALID_ARGUMENT, "schedule: no graph or no stages");
  for (int r = 0; r < FY_REGION_COUNT; r++)
    if (!inside(s->regions[r].offset, s->regions[r].bytes, s->device_bytes))
      return fy_status_make(FY_OUT_OF_RANGE, "schedule: region %s lies past device memory", fy_region_name(r));
  for (int i = 0; i < s->n_stages; i++) {
    const fy_stage_schedule_t *st = &s->stages[i];
    if (st->graph_stage < -1 || st->graph_stage >= s->graph->n_stages || st->n_events < 0 || st->repeat < 0)
      return fy_status_make(FY_INVALID_ARGUMENT, "schedule: stage %d (%s): graph stage %d, %d events, repeat %lld", i,
                            st->name ? st->name : "?", st->graph_stage, st->n_events, (long long)st->repeat);
    for (int q = 0; q < FY_QUEUE_COUNT; q++) {
      if (st->n_cmds[q] < 0 || (st->n_cmds[q] > 0 && !st->cmds[q]))
        return fy_status_make(FY_INVALID_ARGUMENT, "schedule: stage %s: %s queue: %d commands", st->name,
                              fy_queue_name(q), st->n_cmds[q]);
      for (int k = 0; k < st->n_cmds[q]; k++) {
        char where[160];
        snprintf(where, sizeof where, "schedule: stage %s, %s queue, command %d", st->name, fy_queue_name(q), k);
        FY_TRY(check_cmd(s, st, (fy_queue_t)q, &st->cmds[q][k], files, where));
      }
    }
  }
  return NULL;
}
