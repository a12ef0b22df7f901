/* The SPIR-V assembly builder (spirv_asm.h) and the SPIRV-Tools calls:
 * assemble, validate, disassemble. The module layout follows the SPIR-V
 * logical order: capabilities, imports, memory model, entry point, execution
 * mode, annotations, types / constants / globals, the one function. */
#include "codegen/spirv_asm.h"

#include <spirv-tools/libspirv.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- text buffers ---- */

static void sb_vappend(fy_spv_t *b, fy_strbuf_t *s, const char *fmt, va_list ap) {
  if (b->failed) return;
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0) {
    b->failed = true;
    return;
  }
  if (s->len + (size_t)n + 2 > s->cap) {
    size_t cap = s->cap ? s->cap : 4096;
    while (cap < s->len + (size_t)n + 2) cap *= 2;
    char *p = realloc(s->data, cap);
    if (!p) {
      b->failed = true;
      return;
    }
    s->data = p, s->cap = cap;
  }
  vsnprintf(s->data + s->len, (size_t)n + 1, fmt, ap);
  s->len += (size_t)n;
  s->data[s->len++] = '\n';
  s->data[s->len] = '\0';
}

static void sb_append(fy_spv_t *b, fy_strbuf_t *s, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void sb_append(fy_spv_t *b, fy_strbuf_t *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  sb_vappend(b, s, fmt, ap);
  va_end(ap);
}

static int new_id(fy_spv_t *b) { return b->next_id++; }

/* ---- module skeleton ---- */

static const char *const prelude_annotations =
    "OpDecorate %gl_wg BuiltIn WorkgroupId\n"
    "OpDecorate %gl_li BuiltIn LocalInvocationId\n"
    "OpDecorate %gl_nwg BuiltIn NumWorkgroups\n"
    "OpDecorate %arr_u32 ArrayStride 4\n"
    "OpMemberDecorate %buf 0 Offset 0\n"
    "OpDecorate %buf Block\n"
    "OpDecorate %pc_t Block\n";

static const char *const prelude_types =
    "%void = OpTypeVoid\n"
    "%fnvoid = OpTypeFunction %void\n"
    "%bool = OpTypeBool\n"
    "%u32 = OpTypeInt 32 0\n"
    "%f32 = OpTypeFloat 32\n"
    "%v2f32 = OpTypeVector %f32 2\n"
    "%v3u32 = OpTypeVector %u32 3\n"
    "%arr_u32 = OpTypeRuntimeArray %u32\n"
    "%buf = OpTypeStruct %arr_u32\n";

/* After %pc_t, whose members fy_spv_finish writes. */
static const char *const prelude_globals =
    "%p_buf = OpTypePointer StorageBuffer %buf\n"
    "%p_sb_u32 = OpTypePointer StorageBuffer %u32\n"
    "%p_pc = OpTypePointer PushConstant %pc_t\n"
    "%p_pc_u32 = OpTypePointer PushConstant %u32\n"
    "%p_in_v3 = OpTypePointer Input %v3u32\n"
    "%p_fn_u32 = OpTypePointer Function %u32\n"
    "%p_fn_f32 = OpTypePointer Function %f32\n"
    "%p_wg_f32 = OpTypePointer Workgroup %f32\n"
    "%p_pr_f32 = OpTypePointer Private %f32\n"
    "%gl_wg = OpVariable %p_in_v3 Input\n"
    "%gl_li = OpVariable %p_in_v3 Input\n"
    "%gl_nwg = OpVariable %p_in_v3 Input\n"
    "%pcv = OpVariable %p_pc PushConstant\n";

enum { N_PUSH_MEMBERS = sizeof(fy_spirv_push_t) / sizeof(uint32_t) };

void fy_spv_init(fy_spv_t *b, int n_bindings, bool aliased) {
  memset(b, 0, sizeof *b);
  b->next_id = 1;
  /* The push constant block: u32 members at 4-byte offsets, as fy_spirv_push_t. */
  for (int m = 0; m < N_PUSH_MEMBERS; m++) sb_append(b, &b->annot, "OpMemberDecorate %%pc_t %d Offset %d", m, 4 * m);
  for (int k = 0; k < n_bindings && k < FY_SPIRV_N_BINDINGS; k++) {
    int id = b->binding[k] = new_id(b);
    sb_append(b, &b->annot, "OpDecorate %%v%d DescriptorSet 0\nOpDecorate %%v%d Binding %d", id, id, k);
    if (aliased && k > 0) sb_append(b, &b->annot, "OpDecorate %%v%d Aliased", id);
    sb_append(b, &b->decl, "%%v%d = OpVariable %%p_buf StorageBuffer", id);
  }
  int li = fy_spv_res(b, "OpLoad %%v3u32 %%gl_li");
  int wg = fy_spv_res(b, "OpLoad %%v3u32 %%gl_wg");
  int nwg = fy_spv_res(b, "OpLoad %%v3u32 %%gl_nwg");
  b->lid = fy_spv_res(b, "OpCompositeExtract %%u32 %%v%d 0", li);
  b->wg_x = fy_spv_res(b, "OpCompositeExtract %%u32 %%v%d 0", wg);
  b->wg_y = fy_spv_res(b, "OpCompositeExtract %%u32 %%v%d 1", wg);
  b->nwg_x = fy_spv_res(b, "OpCompositeExtract %%u32 %%v%d 0", nwg);
}

void fy_spv_use_subgroups(fy_spv_t *b) {
  if (b->subgroups) return;
  b->subgroups = true;
  b->sg_size = fy_spv_res(b, "OpLoad %%u32 %%gl_sg_size");
  b->sg_lane = fy_spv_res(b, "OpLoad %%u32 %%gl_sg_lane");
  b->sg_count = fy_spv_res(b, "OpLoad %%u32 %%gl_sg_count");
  b->sg_id = fy_spv_res(b, "OpLoad %%u32 %%gl_sg_id");
}

int fy_spv_subgroup_sum(fy_spv_t *b, int v) {
  return fy_spv_res(b, "OpGroupNonUniformFAdd %%f32 %%v%d Reduce %%v%d", fy_spv_u32(b, 3) /* Subgroup */, v);
}

void fy_spv_free(fy_spv_t *b) {
  free(b->annot.data);
  free(b->decl.data);
  free(b->vars.data);
  free(b->body.data);
  free(b->consts);
  memset(b, 0, sizeof *b);
}

/* ---- instructions ---- */

void fy_spv_line(fy_spv_t *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  sb_vappend(b, &b->body, fmt, ap);
  va_end(ap);
}

static int vres(fy_spv_t *b, fy_strbuf_t *s, const char *fmt, va_list ap) {
  int id = new_id(b);
  char line[512], *text = line;
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(line, sizeof line, fmt, ap2);
  va_end(ap2);
  if (n < 0) {
    b->failed = true;
    return id;
  }
  if ((size_t)n >= sizeof line) {
    if (!(text = malloc((size_t)n + 1))) {
      b->failed = true;
      return id;
    }
    vsnprintf(text, (size_t)n + 1, fmt, ap);
  }
  sb_append(b, s, "%%v%d = %s", id, text);
  if (text != line) free(text);
  return id;
}

int fy_spv_res(fy_spv_t *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int id = vres(b, &b->body, fmt, ap);
  va_end(ap);
  return id;
}

static int decl_res(fy_spv_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int decl_res(fy_spv_t *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int id = vres(b, &b->decl, fmt, ap);
  va_end(ap);
  return id;
}

static int constant(fy_spv_t *b, uint32_t bits, bool is_float) {
  for (int i = 0; i < b->n_consts; i++)
    if (b->consts[i].bits == bits && b->consts[i].is_float == is_float) return b->consts[i].id;
  if (b->n_consts == b->cap_consts) {
    int cap = b->cap_consts ? 2 * b->cap_consts : 32;
    fy_spv_const_t *p = realloc(b->consts, sizeof *p * (size_t)cap);
    if (!p) {
      b->failed = true;
      return 0;
    }
    b->consts = p, b->cap_consts = cap;
  }
  int id;
  if (is_float) {
    /* A hex float literal is exact; the kernels never need inf or NaN constants. */
    union { uint32_t u; float f; } v = {bits};
    id = decl_res(b, "OpConstant %%f32 %a", (double)v.f);
  } else {
    id = decl_res(b, "OpConstant %%u32 %u", bits);
  }
  b->consts[b->n_consts++] = (fy_spv_const_t){bits, is_float, id};
  return id;
}

int fy_spv_u32(fy_spv_t *b, uint32_t v) { return constant(b, v, false); }

int fy_spv_f32(fy_spv_t *b, float v) {
  union { float f; uint32_t u; } c = {v};
  return constant(b, c.u, true);
}

int fy_spv_op2(fy_spv_t *b, const char *op, const char *type, int x, int y) {
  return fy_spv_res(b, "%s %%%s %%v%d %%v%d", op, type, x, y);
}

int fy_spv_op1(fy_spv_t *b, const char *op, const char *type, int x) {
  return fy_spv_res(b, "%s %%%s %%v%d", op, type, x);
}

int fy_spv_ext1(fy_spv_t *b, const char *fn, int x) { return fy_spv_res(b, "OpExtInst %%f32 %%ext %s %%v%d", fn, x); }

int fy_spv_ext2(fy_spv_t *b, const char *fn, int x, int y) {
  return fy_spv_res(b, "OpExtInst %%f32 %%ext %s %%v%d %%v%d", fn, x, y);
}

int fy_spv_select(fy_spv_t *b, const char *type, int cond, int x, int y) {
  return fy_spv_res(b, "OpSelect %%%s %%v%d %%v%d %%v%d", type, cond, x, y);
}

int fy_spv_iaddc(fy_spv_t *b, int x, uint32_t c) { return c ? fy_spv_iadd(b, x, fy_spv_u32(b, c)) : x; }

int fy_spv_imulc(fy_spv_t *b, int x, uint32_t c) { return c == 1 ? x : fy_spv_imul(b, x, fy_spv_u32(b, c)); }

int fy_spv_var(fy_spv_t *b, const char *type) {
  int id = new_id(b);
  sb_append(b, &b->vars, "%%v%d = OpVariable %%p_fn_%s Function", id, type);
  return id;
}

int fy_spv_load(fy_spv_t *b, const char *type, int ptr) { return fy_spv_res(b, "OpLoad %%%s %%v%d", type, ptr); }

void fy_spv_store(fy_spv_t *b, int ptr, int value) { fy_spv_line(b, "OpStore %%v%d %%v%d", ptr, value); }

int fy_spv_word_ptr(fy_spv_t *b, int binding, int index) {
  if (binding < 0 || binding >= FY_SPIRV_N_BINDINGS || !b->binding[binding]) {
    b->failed = true;
    return 0;
  }
  return fy_spv_res(b, "OpAccessChain %%p_sb_u32 %%v%d %%v%d %%v%d", b->binding[binding], fy_spv_u32(b, 0), index);
}

int fy_spv_load_word(fy_spv_t *b, int binding, int index) {
  return fy_spv_load(b, "u32", fy_spv_word_ptr(b, binding, index));
}

void fy_spv_store_word(fy_spv_t *b, int binding, int index, int value) {
  fy_spv_store(b, fy_spv_word_ptr(b, binding, index), value);
}

void fy_spv_raise_error(fy_spv_t *b, uint32_t bits) {
  int ptr = fy_spv_word_ptr(b, 0, fy_spv_u32(b, offsetof(fy_spirv_params_t, error) / 4));
  /* Scope Device (1), relaxed semantics (0). */
  fy_spv_res(b, "OpAtomicOr %%u32 %%v%d %%v%d %%v%d %%v%d", ptr, fy_spv_u32(b, 1), fy_spv_u32(b, 0),
             fy_spv_u32(b, bits));
}

int fy_spv_push(fy_spv_t *b, int member) {
  int ptr = fy_spv_res(b, "OpAccessChain %%p_pc_u32 %%pcv %%v%d", fy_spv_u32(b, (uint32_t)member));
  return fy_spv_load(b, "u32", ptr);
}

int fy_spv_shared(fy_spv_t *b, int n) {
  int len = fy_spv_u32(b, (uint32_t)n);
  int type = decl_res(b, "OpTypeArray %%f32 %%v%d", len);
  int ptr = decl_res(b, "OpTypePointer Workgroup %%v%d", type);
  return decl_res(b, "OpVariable %%v%d Workgroup", ptr);
}

int fy_spv_shared_ptr(fy_spv_t *b, int array, int index) {
  return fy_spv_res(b, "OpAccessChain %%p_wg_f32 %%v%d %%v%d", array, index);
}

int fy_spv_table(fy_spv_t *b, const float *values, int n) {
  int *ids = malloc(sizeof *ids * (size_t)(n > 0 ? n : 1));
  if (!ids) {
    b->failed = true;
    return 0;
  }
  for (int i = 0; i < n; i++) ids[i] = fy_spv_f32(b, values[i]);
  int type = decl_res(b, "OpTypeArray %%f32 %%v%d", fy_spv_u32(b, (uint32_t)n));
  /* The composite's operand list can be long: build it piece by piece. */
  size_t cap = 16 * (size_t)n + 64, len = 0;
  char *list = malloc(cap);
  if (!list) {
    free(ids);
    b->failed = true;
    return 0;
  }
  list[0] = '\0';
  for (int i = 0; i < n; i++) len += (size_t)snprintf(list + len, cap - len, " %%v%d", ids[i]);
  int init = decl_res(b, "OpConstantComposite %%v%d%s", type, list);
  free(list);
  free(ids);
  int ptr = decl_res(b, "OpTypePointer Private %%v%d", type);
  return decl_res(b, "OpVariable %%v%d Private %%v%d", ptr, init);
}

int fy_spv_table_load(fy_spv_t *b, int table, int index) {
  return fy_spv_load(b, "f32", fy_spv_res(b, "OpAccessChain %%p_pr_f32 %%v%d %%v%d", table, index));
}

void fy_spv_barrier(fy_spv_t *b) {
  /* Execution and memory scope Workgroup (2); AcquireRelease | WorkgroupMemory (0x108). */
  fy_spv_line(b, "OpControlBarrier %%v%d %%v%d %%v%d", fy_spv_u32(b, 2), fy_spv_u32(b, 2), fy_spv_u32(b, 0x108));
}

/* ---- control flow ---- */

static void label(fy_spv_t *b, int id) { fy_spv_line(b, "%%v%d = OpLabel", id); }

fy_spv_loop_t fy_spv_for(fy_spv_t *b, int start, int end, int step) {
  fy_spv_loop_t l = {.var = fy_spv_var(b, "u32"), .header = new_id(b), .cont = new_id(b), .merge = new_id(b),
                     .step = step};
  int cond_label = new_id(b), body_label = new_id(b);
  fy_spv_store(b, l.var, start);
  fy_spv_line(b, "OpBranch %%v%d", l.header);
  label(b, l.header);
  fy_spv_line(b, "OpLoopMerge %%v%d %%v%d None", l.merge, l.cont);
  fy_spv_line(b, "OpBranch %%v%d", cond_label);
  label(b, cond_label);
  l.i = fy_spv_load(b, "u32", l.var);
  fy_spv_line(b, "OpBranchConditional %%v%d %%v%d %%v%d", fy_spv_ult(b, l.i, end), body_label, l.merge);
  label(b, body_label);
  return l;
}

void fy_spv_end_for(fy_spv_t *b, const fy_spv_loop_t *l) {
  fy_spv_line(b, "OpBranch %%v%d", l->cont);
  label(b, l->cont);
  fy_spv_store(b, l->var, fy_spv_iadd(b, fy_spv_load(b, "u32", l->var), l->step));
  fy_spv_line(b, "OpBranch %%v%d", l->header);
  label(b, l->merge);
}

fy_spv_if_t fy_spv_if(fy_spv_t *b, int cond) {
  fy_spv_if_t s = {.merge = new_id(b), .other = new_id(b)};
  int then_label = new_id(b);
  fy_spv_line(b, "OpSelectionMerge %%v%d None", s.merge);
  fy_spv_line(b, "OpBranchConditional %%v%d %%v%d %%v%d", cond, then_label, s.other);
  label(b, then_label);
  return s;
}

void fy_spv_else(fy_spv_t *b, fy_spv_if_t *s) {
  fy_spv_line(b, "OpBranch %%v%d", s->merge);
  label(b, s->other);
  s->has_else = true;
}

void fy_spv_end_if(fy_spv_t *b, const fy_spv_if_t *s) {
  fy_spv_line(b, "OpBranch %%v%d", s->merge);
  if (!s->has_else) {
    label(b, s->other);
    fy_spv_line(b, "OpBranch %%v%d", s->merge);
  }
  label(b, s->merge);
}

/* ---- SPIRV-Tools ---- */

static fy_status_t tools_error(const char *what, spv_result_t r, spv_diagnostic diag) {
  fy_status_t s = fy_status_make(FY_INTERNAL, "spirv: %s failed (%d)%s%s", what, (int)r, diag ? ": " : "",
                                 diag && diag->error ? diag->error : "");
  spvDiagnosticDestroy(diag);
  return s;
}

static fy_status_t validate(spv_context ctx, const uint32_t *code, size_t n_words, fy_code_t code_on_error) {
  spv_const_binary_t bin = {code, n_words};
  spv_diagnostic diag = NULL;
  spv_result_t r = spvValidate(ctx, &bin, &diag);
  if (r != SPV_SUCCESS) {
    fy_status_t s = fy_status_make(code_on_error, "spirv: the module is not valid SPIR-V for Vulkan 1.1: %s",
                                   diag && diag->error ? diag->error : "(no message)");
    spvDiagnosticDestroy(diag);
    return s;
  }
  spvDiagnosticDestroy(diag);
  return NULL;
}

static const char *const subgroup_annotations =
    "OpDecorate %gl_sg_size BuiltIn SubgroupSize\n"
    "OpDecorate %gl_sg_lane BuiltIn SubgroupLocalInvocationId\n"
    "OpDecorate %gl_sg_count BuiltIn NumSubgroups\n"
    "OpDecorate %gl_sg_id BuiltIn SubgroupId\n";

static const char *const subgroup_globals =
    "%p_in_u32 = OpTypePointer Input %u32\n"
    "%gl_sg_size = OpVariable %p_in_u32 Input\n"
    "%gl_sg_lane = OpVariable %p_in_u32 Input\n"
    "%gl_sg_count = OpVariable %p_in_u32 Input\n"
    "%gl_sg_id = OpVariable %p_in_u32 Input\n";

static char *module_text(fy_spv_t *b, const char *name) {
  char pc_t[sizeof(" %u32") * N_PUSH_MEMBERS + 1] = "";
  for (int m = 0; m < N_PUSH_MEMBERS; m++) strcat(pc_t, " %u32");
  bool sg = b->subgroups;
  fy_strbuf_t t = {0};
  sb_append(b, &t,
            "OpCapability Shader\n"
            "%s"
            "%%ext = OpExtInstImport \"GLSL.std.450\"\n"
            "OpMemoryModel Logical GLSL450\n"
            "OpEntryPoint GLCompute %%main \"%s\" %%gl_wg %%gl_li %%gl_nwg%s\n"
            "OpExecutionMode %%main LocalSize %d 1 1\n"
            "%s%s%s%s%%pc_t = OpTypeStruct%s\n%s%s%s"
            "%%main = OpFunction %%void None %%fnvoid\n"
            "%%entry = OpLabel\n"
            "%s%sOpReturn\n"
            "OpFunctionEnd",
            sg ? "OpCapability GroupNonUniform\nOpCapability GroupNonUniformArithmetic\n" : "", name,
            sg ? " %gl_sg_size %gl_sg_lane %gl_sg_count %gl_sg_id" : "", FY_SPIRV_LOCAL_SIZE, prelude_annotations,
            sg ? subgroup_annotations : "", b->annot.data ? b->annot.data : "", prelude_types, pc_t, prelude_globals,
            sg ? subgroup_globals : "", b->decl.data ? b->decl.data : "", b->vars.data ? b->vars.data : "",
            b->body.data ? b->body.data : "");
  if (b->failed) {
    free(t.data);
    return NULL;
  }
  return t.data;
}

fy_status_t fy_spv_finish(fy_spv_t *b, const char *name, fy_spirv_kernel_t *out_kernel, char **out_text) {
  char *text = b->failed ? NULL : module_text(b, name);
  bool failed = b->failed;
  fy_spv_free(b);
  if (failed || !text) {
    free(text);
    return fy_status_make(FY_RESOURCE_EXHAUSTED, "spirv: out of memory emitting %s", name);
  }
  spv_context ctx = spvContextCreate(SPV_ENV_VULKAN_1_1);
  if (!ctx) {
    free(text);
    return fy_status_make(FY_RESOURCE_EXHAUSTED, "spirv: cannot create a SPIRV-Tools context");
  }
  spv_binary bin = NULL;
  spv_diagnostic diag = NULL;
  fy_status_t s = NULL;
  spv_result_t r = spvTextToBinary(ctx, text, strlen(text), &bin, &diag);
  if (r != SPV_SUCCESS) {
    s = fy_status_annotate(tools_error("assembling", r, diag), "kernel %s", name);
  } else {
    spvDiagnosticDestroy(diag);
    s = fy_status_annotate(validate(ctx, bin->code, bin->wordCount, FY_INTERNAL), "kernel %s", name);
  }
  fy_spirv_kernel_t k = {.local_size = {FY_SPIRV_LOCAL_SIZE, 1, 1}};
  if (!s) {
    k.name = strdup(name);
    k.code = malloc(bin->wordCount * sizeof *k.code);
    k.n_words = bin->wordCount;
    if (!k.name || !k.code) {
      fy_spirv_kernel_free(&k);
      s = fy_status_make(FY_RESOURCE_EXHAUSTED, "spirv: out of memory for kernel %s", name);
    } else {
      memcpy(k.code, bin->code, bin->wordCount * sizeof *k.code);
    }
  }
  spvBinaryDestroy(bin);
  spvContextDestroy(ctx);
  if (s || !out_text) {
    free(text);
  } else {
    *out_text = text;
  }
  if (!s) *out_kernel = k;
  return s;
}

void fy_spirv_kernel_free(fy_spirv_kernel_t *k) {
  if (!k) return;
  free(k->name);
  free(k->code);
  memset(k, 0, sizeof *k);
}

fy_status_t fy_spirv_validate(const uint32_t *code, size_t n_words) {
  if (!code || n_words < 5) return fy_status_make(FY_INVALID_ARGUMENT, "spirv: %zu words is not a module", n_words);
  spv_context ctx = spvContextCreate(SPV_ENV_VULKAN_1_1);
  if (!ctx) return fy_status_make(FY_RESOURCE_EXHAUSTED, "spirv: cannot create a SPIRV-Tools context");
  fy_status_t s = validate(ctx, code, n_words, FY_INVALID_ARGUMENT);
  spvContextDestroy(ctx);
  return s;
}

fy_status_t fy_spirv_disassemble(const uint32_t *code, size_t n_words, char **out_text) {
  spv_context ctx = spvContextCreate(SPV_ENV_VULKAN_1_1);
  if (!ctx) return fy_status_make(FY_RESOURCE_EXHAUSTED, "spirv: cannot create a SPIRV-Tools context");
  spv_text text = NULL;
  spv_diagnostic diag = NULL;
  spv_result_t r = spvBinaryToText(ctx, code, n_words,
                                   SPV_BINARY_TO_TEXT_OPTION_INDENT | SPV_BINARY_TO_TEXT_OPTION_FRIENDLY_NAMES,
                                   &text, &diag);
  fy_status_t s = NULL;
  if (r != SPV_SUCCESS) {
    s = tools_error("disassembling", r, diag);
  } else {
    spvDiagnosticDestroy(diag);
    char *copy = malloc(text->length + 1);
    if (!copy) {
      s = fy_status_make(FY_RESOURCE_EXHAUSTED, "spirv: out of memory disassembling");
    } else {
      memcpy(copy, text->str, text->length);
      copy[text->length] = '\0';
      *out_text = copy;
    }
  }
  spvTextDestroy(text);
  spvContextDestroy(ctx);
  return s;
}
