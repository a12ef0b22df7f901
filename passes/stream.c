/* Pass: stream.
 * Requires: residency (placement, n_slots, layer_on_host).
 * Produces, per stage: the streamed groups in execution order (one per layer
 * or global unit with non-resident weights, not on the host), each in ring
 * slot (index mod n_slots), with its weights laid out in the slot as they lie
 * in their file so that adjacent tensors form one copy range; node_group for
 * every node that reads a streamed weight. Coalescing: consecutive weights of
 * a group that are adjacent in the same file become one range. */
#include <stdlib.h>
#include <string.h>

#include "passes/compile.h"
#include "support/grow.h"

#define SLOT_ALIGN 256u

static fy_status_t push_range(fy_compile_t *c, const fy_copy_range_t *r) {
  FY_TRY(FY_GROW(c->ranges, c->n_ranges, c->cap_ranges, "stream"));
  c->ranges[c->n_ranges++] = *r;
  return NULL;
}

static fy_status_t push_member(fy_compile_t *c, int value) {
  FY_TRY(FY_GROW(c->members, c->n_members, c->cap_members, "stream"));
  c->members[c->n_members++] = (fy_group_member_t){value, 0};
  return NULL;
}

static const fy_graph_t *sort_graph;
static int by_file_position(const void *a, const void *b) {
  const fy_value_t *x = &sort_graph->values[((const fy_group_member_t *)a)->value];
  const fy_value_t *y = &sort_graph->values[((const fy_group_member_t *)b)->value];
  if (x->file != y->file) return x->file - y->file;
  return x->file_offset < y->file_offset ? -1 : x->file_offset > y->file_offset;
}

bool fy_compile_node_on_host(const fy_compile_t *c, int node) {
  const fy_node_t *n = &c->graph->nodes[node];
  const fy_compile_stage_t *cs = c->stages ? &c->stages[n->stage] : NULL;
  if (!cs) return false;
  if (n->layer < 0) return cs->pre_on_host && node < cs->first_layer_node;
  return cs->layer_on_host && cs->layer_on_host[n->layer];
}

/* Lays out one group's members (already appended) and appends its ranges. */
static fy_status_t layout_group(fy_compile_t *c, fy_stream_group_t *grp) {
  const fy_graph_t *g = c->graph;
  fy_group_member_t *mem = &c->members[grp->first_member];
  sort_graph = g;
  qsort(mem, (size_t)grp->n_members, sizeof *mem, by_file_position);
  grp->first_range = c->n_ranges;
  uint64_t at = 0;
  for (int i = 0; i < grp->n_members; i++) {
    const fy_value_t *v = &g->values[mem[i].value];
    fy_copy_range_t *last = c->n_ranges > grp->first_range ? &c->ranges[c->n_ranges - 1] : NULL;
    if (last && last->file == v->file && last->file_offset + last->bytes == v->file_offset) {
      mem[i].slot_offset = last->slot_offset + last->bytes;
      last->bytes += v->nbytes;
    } else {
      at = (at + SLOT_ALIGN - 1) / SLOT_ALIGN * SLOT_ALIGN;
      mem[i].slot_offset = at;
      FY_TRY(push_range(c, &(fy_copy_range_t){v->file, v->file_offset, v->nbytes, at}));
    }
    at = mem[i].slot_offset + v->nbytes;
  }
  grp->n_ranges = c->n_ranges - grp->first_range;
  grp->bytes = at;
  return NULL;
}

fy_status_t fy_pass_stream(fy_compile_t *c) {
  const fy_graph_t *g = c->graph;
  for (int s = 0; s < g->n_stages; s++) {
    fy_compile_stage_t *cs = &c->stages[s];
    const fy_stage_t *st = &g->stages[s];
    cs->node_group = malloc(sizeof(int) * ((size_t)g->n_nodes + 1));
    cs->groups = calloc((size_t)st->n_nodes + 1, sizeof *cs->groups);
    if (!cs->node_group || !cs->groups) return fy_status_make(FY_RESOURCE_EXHAUSTED, "stream: out of memory");
    for (int i = 0; i < g->n_nodes; i++) cs->node_group[i] = -1;
    /* A group per unit: a layer, or a run of global nodes (embedding before
     * the layers, the head after them). */
    int current_unit_layer = -2, current = -1;
    bool seen_layer = false;
    for (int i = st->first_node; i < st->first_node + st->n_nodes; i++) {
      const fy_node_t *n = &g->nodes[i];
      int unit_layer = n->layer >= 0 ? n->layer : seen_layer ? -3 : -1; /* -1 pre, -3 post */
      seen_layer |= n->layer >= 0;
      if (fy_compile_node_on_host(c, i)) continue;
      if (unit_layer != current_unit_layer) {
        if (current >= 0 && cs->groups[current].n_members > 0) FY_TRY(layout_group(c, &cs->groups[current]));
        if (current < 0 || cs->groups[current].n_members > 0) current = cs->n_groups++;
        cs->groups[current] = (fy_stream_group_t){.layer = n->layer, .first_member = c->n_members,
                                                  .first_node = -1, .last_node = -1};
        current_unit_layer = unit_layer;
      }
      fy_stream_group_t *grp = &cs->groups[current];
      for (int k = 0; k < n->n_inputs; k++) {
        int v = n->inputs[k];
        if (g->values[v].kind != FY_VALUE_WEIGHT || c->placement[v] == FY_PLACE_RESIDENT) continue;
        bool have = false;
        for (int j = 0; j < grp->n_members && !have; j++) have = c->members[grp->first_member + j].value == v;
        if (!have) {
          FY_TRY(push_member(c, v));
          grp->n_members++;
        }
        if (grp->first_node < 0) grp->first_node = i;
        grp->last_node = i;
        cs->node_group[i] = current;
      }
    }
    if (current >= 0 && cs->groups[current].n_members > 0) FY_TRY(layout_group(c, &cs->groups[current]));
    else if (current >= 0) cs->n_groups--;
    for (int k = 0; k < cs->n_groups; k++) {
      cs->groups[k].slot = c->n_slots > 0 ? k % c->n_slots : 0;
      if (cs->groups[k].bytes > c->slot_bytes)
        return fy_status_make(FY_INTERNAL, "stream: stage %s group %d needs %llu bytes, slots hold %llu", st->name, k,
                              (unsigned long long)cs->groups[k].bytes, (unsigned long long)c->slot_bytes);
    }
  }
  return NULL;
}
