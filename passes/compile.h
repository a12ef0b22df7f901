/* The compile context: a graph, a target and options in; every pass's
 * decisions out. Passes run in the order of fy_compile_run (passes/driver.c),
 * each filling its part of fy_compile_t; schedules/ then turns the result into
 * command streams. The context owns all its arrays; fy_compile_destroy frees
 * them. The graph is borrowed and must outlive the context. */
#ifndef FERRY_PASSES_COMPILE_H
#define FERRY_PASSES_COMPILE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ferry/status.h"
#include "ir/ir.h"
#include "passes/target.h"

typedef enum fy_policy {
  FY_POLICY_FERRY,      /* residency and placement chosen by simulated request time */
  FY_POLICY_FIRST_K,    /* stable-diffusion.cpp layer streaming: resident prefix after a fixed reserve, rest one ahead */
  FY_POLICY_PREFETCH1,  /* diffusers group offloading: every layer streamed, one ahead on a side stream */
  FY_POLICY_SEQUENTIAL, /* accelerate cpu offload: copy a layer, run it, drop it; no overlap */
  FY_POLICY_NGL,        /* llama.cpp -ngl: the last N layers and the head on the GPU, the rest computed by the CPU */
  FY_POLICY_COUNT
} fy_policy_t;

const char *fy_policy_name(fy_policy_t policy);
bool fy_policy_parse(const char *name, fy_policy_t *out_policy);

typedef struct fy_compile_options {
  fy_policy_t policy;
  int prefetch;            /* prefetch depth; < 0 = the policy's default (ferry: searched 1..4) */
  uint64_t budget;         /* device bytes the plan may use; 0 = vram - reserve */
  bool verify_each;        /* run the IR verifier and the pass checks after every pass */
  const char *print_after; /* pass name, or NULL; prints the state after that pass */
  FILE *print_to;          /* where --print-after writes; NULL = stdout */
} fy_compile_options_t;

/* Where a weight lives during a stage. */
typedef enum fy_placement {
  FY_PLACE_RESIDENT, /* in the resident region for the plan's lifetime */
  FY_PLACE_STREAMED, /* copied into a streaming slot before its layer, evicted after */
  FY_PLACE_HOST,     /* stays in host memory; its layer runs on the CPU (ngl-style) */
} fy_placement_t;

/* A layer's streamed weights in one stage: copied as one group into one slot. */
typedef struct fy_stream_group {
  int layer;          /* -1 for global weights (embedding, head) */
  int slot;           /* ring slot it is copied into: its index in the stage's step modulo n_slots */
  uint64_t bytes;     /* bytes of the slot it occupies (its weights, laid out as in the file) */
  int first_range, n_ranges;   /* its coalesced copy ranges in fy_compile_t.ranges */
  int first_member, n_members; /* its weights in fy_compile_t.members */
  int first_node, last_node;   /* the first and the last node of the stage that read it */
} fy_stream_group_t;

/* A streamed weight's place inside its group's slot. */
typedef struct fy_group_member {
  int value;
  uint64_t slot_offset;
} fy_group_member_t;

/* One contiguous copy: bytes of a weight file to a place in a slot. */
typedef struct fy_copy_range {
  int file;
  uint64_t file_offset, bytes;
  uint64_t slot_offset; /* from the start of the slot */
} fy_copy_range_t;

typedef struct fy_compile_stage {
  /* Per layer (graph layer index): true when the layer's nodes run on the CPU. */
  bool *layer_on_host;
  /* The nodes before the first layer (the embedding lookup) run on the CPU,
   * reading the table from host memory: it then needs no VRAM. */
  bool pre_on_host;
  int first_layer_node; /* graph index of the stage's first node inside a layer */
  /* Streamed groups in execution order. */
  fy_stream_group_t *groups;
  int n_groups;
  /* Per node: index of the group its weights wait for (the group of its layer), or -1. */
  int *node_group;
  /* Chunk fusion: per node, the chunk it belongs to (-1 = dispatched alone).
   * A chunk is a maximal run of nodes of fully resident layers. */
  int *node_chunk;
  int n_chunks;
} fy_compile_stage_t;

typedef struct fy_compile {
  const fy_graph_t *graph;
  fy_target_t target;
  fy_compile_options_t options;
  uint64_t budget; /* device bytes available to the plan */

  /* cost.c: per node, per stage's max_tokens. */
  double *node_flops, *node_bytes;
  double *node_seconds;      /* on the GPU: roofline + launch overhead */
  double *node_host_seconds; /* on the CPU (ngl-style placement) */

  /* memplan.c: activation arena (shared by all stages; one stage runs at a time). */
  uint64_t *value_offset;    /* per value: offset in its region (activations, KV cache, resident, or slot) */
  uint64_t activation_bytes; /* arena size */
  uint64_t activation_lower_bound; /* max over time of the bytes live at once */

  /* kvcache.c */
  uint64_t kv_bytes;

  /* residency.c */
  fy_placement_t *placement; /* per value (weights only); STREAMED/HOST may differ per stage via layer_on_host */
  uint64_t resident_bytes;
  int prefetch;              /* depth chosen */
  int n_slots;               /* ring size: prefetch + 1 */
  uint64_t slot_bytes;       /* size of one slot: the largest group */
  double predicted_request_seconds; /* the residency search's estimate */

  /* stream.c, fuse.c: per graph stage. */
  fy_compile_stage_t *stages;
  fy_copy_range_t *ranges;
  int n_ranges, cap_ranges;
  fy_group_member_t *members;
  int n_members, cap_members;
} fy_compile_t;

/* Seconds for a stage's activations to cross the bus between a host-run and
 * a GPU-run node (both ways cost the same). */
double fy_compile_crossing_seconds(const fy_compile_t *c, int stage);
/* Seconds node i takes where the compile placed it: on the GPU, or on the
 * host plus the activations crossing the bus where a host run begins or ends. */
double fy_compile_node_seconds(const fy_compile_t *c, int node);
/* True when node i runs on the host in its stage. */
bool fy_compile_node_on_host(const fy_compile_t *c, int node);

/* Runs every pass in order: cost, memplan, kvcache, residency, stream, fuse.
 * A budget that cannot hold the largest layer plus activations and the KV
 * cache is FY_RESOURCE_EXHAUSTED naming the layer and the bytes missing. */
fy_status_t fy_compile_run(const fy_graph_t *graph, const fy_target_t *target, const fy_compile_options_t *options,
                           fy_compile_t **out_compile);
void fy_compile_destroy(fy_compile_t *c);

/* The passes, in order (each file's header comment says what it needs). */
fy_status_t fy_pass_cost(fy_compile_t *c);
fy_status_t fy_pass_memplan(fy_compile_t *c);
fy_status_t fy_pass_kvcache(fy_compile_t *c);
fy_status_t fy_pass_residency(fy_compile_t *c);
fy_status_t fy_pass_stream(fy_compile_t *c);
fy_status_t fy_pass_fuse(fy_compile_t *c);

/* Lower bound for a request (bound.c): per stage step, the larger of the
 * compute time and the weight bytes that do not fit (weights minus the VRAM
 * left after activations and KV cache) over the bus bandwidth; times each
 * stage's repeat, summed. Without with_host it is DESIGN.md's bound (GPU
 * compute only); with_host, the host is a second channel: per node the faster
 * of GPU and host, bytes over bus plus host-memory bandwidth.
 * out_stage_seconds (optional) receives one step's bound per graph stage. */
double fy_compile_bound_seconds(const fy_compile_t *c, bool with_host, double *out_stage_seconds);

/* Names for --print-after, in order. */
extern const char *const fy_pass_names[];
/* Prints what the passes up to and including `pass` decided. */
void fy_compile_print(const fy_compile_t *c, const char *pass, FILE *out);

#endif
