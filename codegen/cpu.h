/* CPU reference kernels: the numerical oracle every schedule and backend is
 * checked against. One entry point runs one node's op on raw buffers, so the
 * reference interpreter (codegen/reference.c) and the plan runtime share it.
 *
 * Exactness: every output element is computed by one thread, in a fixed
 * order that depends only on the op's shapes and the element's own inputs —
 * never on the thread count, on n_tokens, or on which rows are next to it.
 * Work is split over output elements (rows of a weight matrix, tokens,
 * (token, head) pairs), never inside a reduction. Hence results are bit for
 * bit identical for any thread count, and a token's logits are the same
 * whether it was processed in a prefill of N tokens or by a decode step.
 * The arithmetic rules of each op are in docs/reference.md. */
#ifndef FERRY_CODEGEN_CPU_H
#define FERRY_CODEGEN_CPU_H

#include <stdint.h>

#include "ferry/status.h"
#include "ir/ir.h"
#include "support/dtype.h"
#include "support/threadpool.h"

/* A buffer as a row-major matrix. A vector of length n (a norm weight, a
 * bias) is rows = 1, cols = n; token ids are rows = T, cols = 1. Activations
 * and caches are f32; weights may be f32, f16 or bf16 and need no alignment. */
typedef struct {
  void *data;
  fy_dtype_t dtype;
  int64_t rows, cols;
} fy_cpu_arg_t;

/* The argument describing value v's buffer at data (the shape rules above). */
fy_cpu_arg_t fy_cpu_arg_for_value(const fy_value_t *v, void *data);

/* Runs op over the first n_tokens rows of its per-token args (their rows are
 * >= n_tokens); pos is the sequence position of row 0 (RoPE, KV cache).
 * Nodes after LAST_ROW work on single-row values: the caller passes
 * n_tokens = 1 for them (LAST_ROW itself gets the step's n_tokens and reads
 * row n_tokens - 1). Every arg's dtype, rows and cols are checked against the
 * op first: FY_INVALID_ARGUMENT naming the op. A token id outside the table
 * and a KV cache too short for pos + n_tokens give FY_OUT_OF_RANGE. The output
 * must not alias an input, except for ADD, SILU_MUL and ROPE, which may run
 * in place.
 * pool may be NULL (runs on the calling thread). */
fy_status_t fy_cpu_run_node(fy_op_t op, const fy_node_attrs_t *attrs, const fy_cpu_arg_t *inputs, int n_inputs,
                            const fy_cpu_arg_t *output, int64_t n_tokens, int64_t pos, fy_threadpool_t *pool);

/* The n_tokens to pass to fy_cpu_run_node for node n of g in a step over
 * n_tokens tokens: the step's count, except for the single-row values after
 * LAST_ROW, whose nodes get their output's row count (1). The reference
 * interpreter and the plan runtime both use it. */
int64_t fy_cpu_node_rows(const fy_graph_t *g, const fy_node_t *n, int64_t n_tokens);

/* RoPE inverse frequencies (head_dim / 2 of them), in double, with the llama3
 * rope_scaling of HF transformers' _compute_llama3_parameters applied. */
void fy_cpu_rope_inv_freq(const fy_rope_t *rope, int head_dim, double *out_inv_freq);

#endif
