/* SPIR-V kernels: one compute shader per distinct node signature, emitted by
 * ferry as SPIR-V assembly, assembled and validated in-process with
 * SPIRV-Tools (environment Vulkan 1.1, SPIR-V 1.3). Every kernel computes in
 * f32 and agrees with the CPU reference (codegen/cpu.h) within the
 * tolerances of docs/vulkan.md; the arithmetic is in docs/vulkan.md.
 *
 * The interface of every kernel, so that a runtime needs nothing but these
 * declarations and the graph:
 *  - descriptor set 0, binding 0: the step parameters (fy_spirv_params_t),
 *    written by the host before a step; bindings 1 + k: node argument k (the
 *    node's inputs in order, then its output). All are storage buffers of
 *    32-bit words. A binding is bound at an offset aligned down to the
 *    device's minStorageBufferOffsetAlignment; the push constant base[k] is
 *    the byte offset of the argument inside its binding (f32 and i32
 *    arguments need base[k] % 4 == 0, 16-bit ones base[k] % 2 == 0).
 *  - push constants (fy_spirv_push_t): base[], and the rows [row_begin,
 *    row_end) of the split argument this dispatch covers (see
 *    fy_spirv_bind_node; all rows when nothing is split).
 *  - n_tokens and pos are read from the parameter buffer, not from push
 *    constants, so that a command buffer recorded once replays every decode
 *    step. A kernel works on min(n_tokens, its rows) rows, its rows being
 *    those of its signature (kernel_name.h): the stage's max_tokens, or 1
 *    after LAST_ROW. A kernel's code depends on nothing but its node's
 *    signature, so nodes with one kernel name share one module.
 *  - grids are sized for the stage's max_tokens; workgroups past n_tokens
 *    do nothing.
 * A kernel that meets a token id outside the vocabulary or a KV cache too
 * short for pos + n_tokens writes NaN / skips the store and raises a bit in
 * params.error (FY_SPIRV_ERROR_*), which the host checks after the step. */
#ifndef FERRY_CODEGEN_SPIRV_H
#define FERRY_CODEGEN_SPIRV_H

#include <stddef.h>
#include <stdint.h>

#include "ferry/status.h"
#include "ir/ir.h"

#define FY_SPIRV_MAX_ARGS (FY_MAX_NODE_INPUTS + 1)
#define FY_SPIRV_N_BINDINGS (1 + FY_SPIRV_MAX_ARGS)
/* Invocations per workgroup (x) of every kernel. */
#define FY_SPIRV_LOCAL_SIZE 64
/* The largest binding range the kernels address: their byte indices are
 * 32-bit. A runtime passes min(maxStorageBufferRange, this) as max_range. */
#define FY_SPIRV_MAX_RANGE (1ull << 30)
/* The most workgroups a grid dimension uses (Vulkan's guaranteed minimum of
 * maxComputeWorkGroupCount). */
#define FY_SPIRV_MAX_GROUPS 65535u

enum {
  FY_SPIRV_ERROR_TOKEN = 1u, /* EMBED: a token id outside [0, vocab) */
  FY_SPIRV_ERROR_KV = 2u,    /* ATTENTION: pos + n_tokens past the KV cache */
};

/* Binding 0. */
typedef struct fy_spirv_params {
  uint32_t n_tokens, pos, error, reserved;
} fy_spirv_params_t;

/* The push constants of one dispatch. */
typedef struct fy_spirv_push {
  uint32_t base[FY_SPIRV_MAX_ARGS];
  uint32_t row_begin, row_end;
} fy_spirv_push_t;

/* One validated module with one entry point. */
typedef struct fy_spirv_kernel {
  char *name;     /* entry point: fy_kernel_name (codegen/kernel_name.h) of its nodes */
  uint32_t *code; /* SPIR-V words */
  size_t n_words;
  uint32_t local_size[3];
} fy_spirv_kernel_t;

/* Emits, assembles and validates node's kernel. Shapes and dtypes are
 * checked as the CPU reference checks them (FY_INVALID_ARGUMENT naming the
 * node). out->name etc. are malloc'ed: fy_spirv_kernel_free. */
fy_status_t fy_spirv_compile_node(const fy_graph_t *g, int node, fy_spirv_kernel_t *out_kernel);
/* The assembly text of node's kernel as ferry emits it (malloc'ed). */
fy_status_t fy_spirv_node_source(const fy_graph_t *g, int node, char **out_text);
void fy_spirv_kernel_free(fy_spirv_kernel_t *kernel);

/* Every kernel of a graph, once per distinct name, and each node's kernel. */
typedef struct fy_spirv_program {
  fy_spirv_kernel_t *kernels;
  int n_kernels;
  int *node_kernel; /* per graph node: index into kernels */
} fy_spirv_program_t;

fy_status_t fy_spirv_compile_graph(const fy_graph_t *g, fy_spirv_program_t **out_program);
void fy_spirv_program_destroy(fy_spirv_program_t *p);
/* Index of the kernel with that name, or -1. */
int fy_spirv_program_find(const fy_spirv_program_t *p, const char *name);

/* The plan's kernel table entry (schedules/plan.h fy_plan_kernel_t) of a
 * program: format "spirv", architecture "vulkan1.1", one entry per kernel;
 * code is little-endian u32 words: FY_SPIRV_PACK_MAGIC, the count n, n
 * module lengths in words, then the n modules. */
#define FY_SPIRV_FORMAT "spirv"
#define FY_SPIRV_ARCHITECTURE "vulkan1.1"
#define FY_SPIRV_PACK_MAGIC 0x56535946u /* "FYSV" */

typedef struct fy_spirv_packed {
  uint8_t *code;
  size_t code_size;
  char **entries;
  int n_entries;
} fy_spirv_packed_t;

fy_status_t fy_spirv_pack(const fy_spirv_program_t *p, fy_spirv_packed_t *out_packed);
void fy_spirv_packed_free(fy_spirv_packed_t *packed);
/* Reads a packed table (untrusted: from a plan) back as g's program: sizes
 * in bounds, every module valid (fy_spirv_validate) with one GLCompute entry
 * point named as its entry, and a kernel for every node of g (by
 * fy_kernel_name); else FY_INVALID_ARGUMENT / FY_INCOMPATIBLE naming it. */
fy_status_t fy_spirv_unpack(const fy_graph_t *g, const uint8_t *code, size_t code_size, const char *const *entries,
                            int n_entries, fy_spirv_program_t **out_program);

/* Runs the SPIRV-Tools validator (Vulkan 1.1) on untrusted words, e.g.
 * kernels read from a plan. The error carries the validator's message. */
fy_status_t fy_spirv_validate(const uint32_t *code, size_t n_words);
/* Disassembles words to text (malloc'ed), for `ferry inspect --kernels`. */
fy_status_t fy_spirv_disassemble(const uint32_t *code, size_t n_words, char **out_text);

/* ---- launching ---- */

/* One argument's descriptor: bind [offset, +range) of its buffer. */
typedef struct fy_spirv_range {
  uint64_t offset, range;
} fy_spirv_range_t;

/* One dispatch of a node. */
typedef struct fy_spirv_part {
  fy_spirv_range_t args[FY_SPIRV_MAX_ARGS];
  fy_spirv_push_t push;
  uint32_t groups[3];
} fy_spirv_part_t;

/* Where node's arguments are: arg k at byte offset[k] of a buffer of
 * buffer_bytes[k] bytes (a multiple of 4), inputs then output. */
typedef struct fy_spirv_args {
  uint64_t offset[FY_SPIRV_MAX_ARGS];
  uint64_t buffer_bytes[FY_SPIRV_MAX_ARGS];
} fy_spirv_args_t;

/* Cuts a launch of node into dispatches whose every binding starts at a
 * multiple of align (a power of two >= 4) and spans at most max_range bytes
 * (<= FY_SPIRV_MAX_RANGE). Only the weight of MATMUL and the table of EMBED
 * are split, by rows, into as many dispatches as needed; any other argument
 * larger than max_range is FY_RESOURCE_EXHAUSTED naming it, and an f32/i32
 * argument at an offset that is not a multiple of 4 is FY_INCOMPATIBLE.
 * *out_parts is malloc'ed (free). */
fy_status_t fy_spirv_bind_node(const fy_graph_t *g, int node, const fy_spirv_args_t *args, uint64_t align,
                               uint64_t max_range, fy_spirv_part_t **out_parts, int *out_n);

#endif
