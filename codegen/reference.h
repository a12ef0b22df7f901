/* The reference interpreter: runs a graph's stages node by node with the CPU
 * reference kernels (codegen/cpu.h), with every value in its own buffer and
 * weights read straight from the mapped model files. It is the oracle that
 * schedules and backends are compared against bit for bit; it makes no
 * attempt to save memory (each activation holds its stage's max_tokens rows). */
#ifndef FERRY_CODEGEN_REFERENCE_H
#define FERRY_CODEGEN_REFERENCE_H

#include <stdint.h>

#include "ferry/status.h"
#include "ir/ir.h"

typedef struct fy_reference fy_reference_t;

/* Wall time per stage, since the last prefill. */
typedef struct fy_reference_stats {
  double prefill_ms;
  int64_t prefill_tokens;
  double decode_ms;     /* all decode steps together */
  int64_t decode_steps;
} fy_reference_stats_t;

/* Maps g's weight files and allocates every non-weight value once. g must
 * have weights (not shape-only), stages named "prefill" and "decode", and
 * outlive the interpreter. n_threads <= 0 uses every online CPU; results do
 * not depend on it. */
fy_status_t fy_reference_create(const fy_graph_t *g, int n_threads, fy_reference_t **out_ref);
void fy_reference_destroy(fy_reference_t *ref);

/* Starts a new sequence: runs the prefill stage on tokens[0..n) at position 0
 * (1 <= n <= the stage's max_tokens) and writes the last token's logits
 * (config.vocab floats). Afterwards the position is n. */
fy_status_t fy_reference_prefill(fy_reference_t *ref, const int32_t *tokens, int64_t n, float *out_logits);
/* Runs the decode stage on one token at the current position, then advances
 * it. FY_OUT_OF_RANGE when the KV cache (g->context tokens) is full. */
fy_status_t fy_reference_decode(fy_reference_t *ref, int32_t token, float *out_logits);
/* Tokens in the KV cache: the position of the next token. */
int64_t fy_reference_position(const fy_reference_t *ref);
const fy_reference_stats_t *fy_reference_stats(const fy_reference_t *ref);

#endif
