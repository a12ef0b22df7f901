/* Kernel identity, shared by every code generator (CUDA, SPIR-V) and every
 * runtime that maps a LAUNCH's node to its kernel.
 *
 * A node's signature is everything its generated code is specialized to: the
 * op, each argument's dtype and its matrix view (rows x cols, as
 * fy_cpu_arg_for_value describes it; for per-token values rows is the stage's
 * max_tokens), and the attributes that change the code (rmsnorm eps; rope
 * heads, head_dim, theta and scaling; attention heads, kv heads, head_dim).
 * Two nodes with equal signatures share one kernel; the kernel's name is a
 * readable prefix plus a 64-bit hash of the signature, e.g.
 * "fy_matmul_bf16_512x176_3f9a0c1d2e4b5a67". Names are C identifiers (and
 * SPIR-V entry point names), deterministic across machines and runs, and at
 * most FY_KERNEL_NAME_MAX - 1 characters. Nothing in a plan changes when a
 * name is derived again from the plan's graph. */
#ifndef FERRY_CODEGEN_KERNEL_NAME_H
#define FERRY_CODEGEN_KERNEL_NAME_H

#include <stddef.h>

#include "ir/ir.h"

#define FY_KERNEL_NAME_MAX 80

/* Writes node's kernel name into buf (NUL-terminated, truncated to n - 1
 * characters; buf may be NULL when n is 0) and returns its length, like
 * snprintf. Returns 0 and writes "" for a node index out of range. */
size_t fy_kernel_name(const fy_graph_t *g, int node, char *buf, size_t n);

/* The signature the name hashes, as text for people ("matmul f32[512x64]
 * bf16[176x64] -> f32[512x176]"), with the same return convention. */
size_t fy_kernel_signature(const fy_graph_t *g, int node, char *buf, size_t n);

#endif
