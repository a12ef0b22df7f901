/* A small SPIR-V assembly builder for the kernels of spirv_kernels.c (not a
 * public interface). A kernel is written as straight C calls that append
 * instructions: every result is an int id printed "%vN"; loops keep their
 * counters in Function variables, so no OpPhi is ever needed; constants and
 * types are declared once. The module is then assembled and validated with
 * SPIRV-Tools (fy_spv_finish).
 *
 * Fixed names every module has: %void %bool %u32 %f32 %v2f32 %v3u32,
 * %ext (GLSL.std.450), bindings as storage buffers of u32 words, the push
 * constant block of fy_spirv_push_t, and the builtins WorkgroupId,
 * LocalInvocationId and NumWorkgroups. Memory failures are sticky: calls
 * after one do nothing and fy_spv_finish reports it. */
#ifndef FERRY_CODEGEN_SPIRV_ASM_H
#define FERRY_CODEGEN_SPIRV_ASM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codegen/spirv.h"

typedef struct fy_strbuf {
  char *data;
  size_t len, cap;
} fy_strbuf_t;

typedef struct fy_spv_const {
  uint32_t bits;
  bool is_float;
  int id;
} fy_spv_const_t;

typedef struct fy_spv {
  fy_strbuf_t annot, decl, vars, body;
  bool failed;
  int next_id;
  fy_spv_const_t *consts;
  int n_consts, cap_consts;
  int binding[FY_SPIRV_N_BINDINGS]; /* variable ids, 0 = not declared */
  /* Values loaded at the top of the function. */
  int lid, wg_x, wg_y, nwg_x;
  /* Subgroups (fy_spv_use_subgroups): size, lane, count and index in the workgroup. */
  bool subgroups;
  int sg_size, sg_lane, sg_count, sg_id;
} fy_spv_t;

/* Emits node's kernel into a fresh builder (spirv_kernels.c); checks the
 * node's shapes and dtypes first. */
fy_status_t fy_spirv_emit_node(const fy_graph_t *g, int node, fy_spv_t *b);

/* Starts a module; n_bindings are declared (binding 0 = params, 1 + k = arg k).
 * aliased: the argument bindings may overlap (in-place ops). */
void fy_spv_init(fy_spv_t *b, int n_bindings, bool aliased);
/* Declares the subgroup builtins (GroupNonUniform, GroupNonUniformArithmetic:
 * the device must support arithmetic subgroup operations in compute) and
 * loads them; call it before any control flow, so the loads dominate every use. */
void fy_spv_use_subgroups(fy_spv_t *b);
/* The sum of v over the subgroup's invocations (all active: call it in
 * subgroup-uniform control flow), in the device's fixed order. */
int fy_spv_subgroup_sum(fy_spv_t *b, int v);

/* Assembles and validates; on success *out_kernel owns the words and a copy
 * of name. Frees the builder either way. out_text (optional) receives the
 * assembly text (malloc'ed). */
fy_status_t fy_spv_finish(fy_spv_t *b, const char *name, fy_spirv_kernel_t *out_kernel, char **out_text);
void fy_spv_free(fy_spv_t *b);

/* Raw lines and results. */
void fy_spv_line(fy_spv_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends "%vN = <text>" and returns N. */
int fy_spv_res(fy_spv_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

int fy_spv_u32(fy_spv_t *b, uint32_t v);
int fy_spv_f32(fy_spv_t *b, float v);

/* Binary and unary ops: fy_spv_op2(b, "OpIAdd", "u32", x, y). */
int fy_spv_op2(fy_spv_t *b, const char *op, const char *type, int x, int y);
int fy_spv_op1(fy_spv_t *b, const char *op, const char *type, int x);
/* GLSL.std.450 on f32: fy_spv_ext(b, "Exp", x). */
int fy_spv_ext1(fy_spv_t *b, const char *fn, int x);
int fy_spv_ext2(fy_spv_t *b, const char *fn, int x, int y);
int fy_spv_select(fy_spv_t *b, const char *type, int cond, int x, int y);

static inline int fy_spv_iadd(fy_spv_t *b, int x, int y) { return fy_spv_op2(b, "OpIAdd", "u32", x, y); }
static inline int fy_spv_isub(fy_spv_t *b, int x, int y) { return fy_spv_op2(b, "OpISub", "u32", x, y); }
static inline int fy_spv_imul(fy_spv_t *b, int x, int y) { return fy_spv_op2(b, "OpIMul", "u32", x, y); }
static inline int fy_spv_fadd(fy_spv_t *b, int x, int y) { return fy_spv_op2(b, "OpFAdd", "f32", x, y); }
static inline int fy_spv_fsub(fy_spv_t *b, int x, int y) { return fy_spv_op2(b, "OpFSub", "f32", x, y); }
static inline int fy_spv_fmul(fy_spv_t *b, int x, int y) { return fy_spv_op2(b, "OpFMul", "f32", x, y); }
static inline int fy_spv_fdiv(fy_spv_t *b, int x, int y) { return fy_spv_op2(b, "OpFDiv", "f32", x, y); }
static inline int fy_spv_ult(fy_spv_t *b, int x, int y) { return fy_spv_op2(b, "OpULessThan", "bool", x, y); }
static inline int fy_spv_and(fy_spv_t *b, int x, int y) { return fy_spv_op2(b, "OpLogicalAnd", "bool", x, y); }
/* x + c, x * c with a constant c. */
int fy_spv_iaddc(fy_spv_t *b, int x, uint32_t c);
int fy_spv_imulc(fy_spv_t *b, int x, uint32_t c);

/* Variables (Function storage) and memory. type: "u32" or "f32". */
int fy_spv_var(fy_spv_t *b, const char *type);
int fy_spv_load(fy_spv_t *b, const char *type, int ptr);
void fy_spv_store(fy_spv_t *b, int ptr, int value);

/* Words of binding `binding` (0 = params). */
int fy_spv_word_ptr(fy_spv_t *b, int binding, int index);
int fy_spv_load_word(fy_spv_t *b, int binding, int index);
void fy_spv_store_word(fy_spv_t *b, int binding, int index, int value);
/* params.error |= bits, atomically. */
void fy_spv_raise_error(fy_spv_t *b, uint32_t bits);
/* Push constant member m (u32). */
int fy_spv_push(fy_spv_t *b, int member);

/* A Workgroup array of n floats, and a pointer to element index. */
int fy_spv_shared(fy_spv_t *b, int n);
int fy_spv_shared_ptr(fy_spv_t *b, int array, int index);
/* A Private array initialised with n constant floats, and element index. */
int fy_spv_table(fy_spv_t *b, const float *values, int n);
int fy_spv_table_load(fy_spv_t *b, int table, int index);
/* Workgroup execution and memory barrier. */
void fy_spv_barrier(fy_spv_t *b);

/* Structured control flow. A for loop over i = start; i < end; i += step
 * (ids): fy_spv_for returns it with loop.i loaded for the body. */
typedef struct fy_spv_loop {
  int var, header, cont, merge, i, step;
} fy_spv_loop_t;
fy_spv_loop_t fy_spv_for(fy_spv_t *b, int start, int end, int step);
void fy_spv_end_for(fy_spv_t *b, const fy_spv_loop_t *loop);

typedef struct fy_spv_if {
  int merge, other;
  bool has_else;
} fy_spv_if_t;
fy_spv_if_t fy_spv_if(fy_spv_t *b, int cond);
/* Starts the else branch (call at most once, before fy_spv_end_if). */
void fy_spv_else(fy_spv_t *b, fy_spv_if_t *s);
void fy_spv_end_if(fy_spv_t *b, const fy_spv_if_t *s);

#endif
