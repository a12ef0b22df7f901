/* The SPIR-V kernel of every op (the interface is in spirv.h, the arithmetic
 * and tolerances in docs/vulkan.md). Each emitter first checks the node's
 * arguments as the CPU reference does, then writes its kernel with the
 * builder of spirv_asm.h. Arguments are read through ld()/st(), which know
 * the argument's dtype and its byte offset inside the binding. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/cpu.h"
#include "codegen/spirv_asm.h"

enum { WG = FY_SPIRV_LOCAL_SIZE };

typedef struct karg {
  fy_dtype_t dtype;
  int base_bytes, base_words; /* ids */
  int64_t rows, cols;         /* as fy_cpu_arg_for_value */
} karg_t;

typedef struct kernel {
  fy_spv_t *b;
  const fy_graph_t *g;
  const fy_node_t *n;
  karg_t a[FY_SPIRV_MAX_ARGS];
  int n_args;
  int rows, pos;       /* ids: the node's row count and the step's position */
  int row_begin, row_end; /* ids: the split argument's rows in this dispatch */
} kernel_t;

/* ---- argument access ---- */

static int shr(fy_spv_t *b, int x, int y) { return fy_spv_op2(b, "OpShiftRightLogical", "u32", x, y); }
static int shl(fy_spv_t *b, int x, int y) { return fy_spv_op2(b, "OpShiftLeftLogical", "u32", x, y); }
static int band(fy_spv_t *b, int x, int y) { return fy_spv_op2(b, "OpBitwiseAnd", "u32", x, y); }
static int umin(fy_spv_t *b, int x, int y) { return fy_spv_res(b, "OpExtInst %%u32 %%ext UMin %%v%d %%v%d", x, y); }
static int uge(fy_spv_t *b, int x, int y) { return fy_spv_op2(b, "OpUGreaterThanEqual", "bool", x, y); }
static int ieq(fy_spv_t *b, int x, int y) { return fy_spv_op2(b, "OpIEqual", "bool", x, y); }
static int fvar(fy_spv_t *b, int init) {
  int v = fy_spv_var(b, "f32");
  fy_spv_store(b, v, init);
  return v;
}
static int fld(fy_spv_t *b, int ptr) { return fy_spv_load(b, "f32", ptr); }
static int cu(kernel_t *k, int64_t v) { return fy_spv_u32(k->b, (uint32_t)v); }

/* Element idx of argument i, widened to f32 (f32, f16, bf16). */
static int ld(kernel_t *k, int i, int idx) {
  fy_spv_t *b = k->b;
  const karg_t *a = &k->a[i];
  if (a->dtype == FY_DTYPE_F32)
    return fy_spv_op1(b, "OpBitcast", "f32", fy_spv_load_word(b, 1 + i, fy_spv_iadd(b, a->base_words, idx)));
  int byte = fy_spv_iadd(b, a->base_bytes, shl(b, idx, cu(k, 1)));
  int word = fy_spv_load_word(b, 1 + i, shr(b, byte, cu(k, 2)));
  int half = band(b, shr(b, word, shl(b, band(b, byte, cu(k, 2)), cu(k, 3))), cu(k, 0xffff));
  if (a->dtype == FY_DTYPE_BF16) return fy_spv_op1(b, "OpBitcast", "f32", shl(b, half, cu(k, 16)));
  int pair = fy_spv_res(b, "OpExtInst %%v2f32 %%ext UnpackHalf2x16 %%v%d", half);
  return fy_spv_res(b, "OpCompositeExtract %%f32 %%v%d 0", pair);
}

/* Word idx of a 32-bit argument (token ids). */
static int ld_u32(kernel_t *k, int i, int idx) {
  return fy_spv_load_word(k->b, 1 + i, fy_spv_iadd(k->b, k->a[i].base_words, idx));
}

static void st(kernel_t *k, int i, int idx, int value) {
  fy_spv_t *b = k->b;
  fy_spv_store_word(b, 1 + i, fy_spv_iadd(b, k->a[i].base_words, idx), fy_spv_op1(b, "OpBitcast", "u32", value));
}

static void st_bits(kernel_t *k, int i, int idx, uint32_t bits) {
  fy_spv_store_word(k->b, 1 + i, fy_spv_iadd(k->b, k->a[i].base_words, idx), cu(k, bits));
}

/* In-bounds predicate "x < bound" for an element index against a constant. */
static int below(kernel_t *k, int x, int64_t bound) { return fy_spv_ult(k->b, x, cu(k, bound)); }

/* The workgroup's sum of v over its WG invocations, in a fixed tree order;
 * every invocation gets it. sh is a shared array of at least WG floats. */
static int workgroup_sum(kernel_t *k, int sh, int v) {
  fy_spv_t *b = k->b;
  fy_spv_store(b, fy_spv_shared_ptr(b, sh, b->lid), v);
  fy_spv_barrier(b);
  for (int s = WG / 2; s > 0; s /= 2) {
    fy_spv_if_t in = fy_spv_if(b, below(k, b->lid, s));
    int dst = fy_spv_shared_ptr(b, sh, b->lid);
    int other = fld(b, fy_spv_shared_ptr(b, sh, fy_spv_iaddc(b, b->lid, (uint32_t)s)));
    fy_spv_store(b, dst, fy_spv_fadd(b, fld(b, dst), other));
    fy_spv_end_if(b, &in);
    fy_spv_barrier(b);
  }
  return fld(b, fy_spv_shared_ptr(b, sh, cu(k, 0)));
}

/* ---- checks (the CPU reference's, on the graph's values) ---- */

static fy_status_t want(const kernel_t *k, int i, const char *what, bool float_ok, int64_t rows, int64_t cols) {
  const karg_t *a = &k->a[i];
  bool dtype_ok = a->dtype == FY_DTYPE_F32 ||
                  (float_ok && (a->dtype == FY_DTYPE_F16 || a->dtype == FY_DTYPE_BF16));
  if (!dtype_ok)
    return fy_status_make(FY_INVALID_ARGUMENT, "%s has dtype %s, expected %s", what, fy_dtype_name(a->dtype),
                          float_ok ? "f32, f16 or bf16" : "f32");
  if ((rows >= 0 && a->rows < rows) || a->cols != cols || a->cols <= 0 || a->rows <= 0)
    return fy_status_make(FY_INVALID_ARGUMENT, "%s is [%lld, %lld], expected %s%lld rows of %lld columns", what,
                          (long long)a->rows, (long long)a->cols, rows >= 0 ? "at least " : "", (long long)rows,
                          (long long)cols);
  return NULL;
}

static fy_status_t arity(const kernel_t *k, int min, int max) {
  if (k->n->n_inputs < min || k->n->n_inputs > max)
    return fy_status_make(FY_INVALID_ARGUMENT, "%d inputs, expected %d to %d", k->n->n_inputs, min, max);
  return NULL;
}

/* Rows a per-token argument must have: the node's (constant or max). */
static int64_t node_rows(const kernel_t *k) {
  const fy_value_t *out = &k->g->values[k->n->output];
  return out->rank >= 1 ? out->shape[0] : 1;
}

/* ---- EMBED: one invocation per (token, column) ---- */

static fy_status_t emit_embed(kernel_t *k) {
  FY_TRY(arity(k, 2, 2));
  const karg_t *ids = &k->a[0], *table = &k->a[1];
  int64_t vocab = table->rows, h = table->cols;
  if (ids->dtype != FY_DTYPE_I32 || ids->cols != 1)
    return fy_status_make(FY_INVALID_ARGUMENT, "ids must be one i32 column");
  FY_TRY(want(k, 1, "table", true, -1, h));
  FY_TRY(want(k, 2, "output", false, ids->rows, h));
  fy_spv_t *b = k->b;
  int col = fy_spv_iadd(b, fy_spv_imulc(b, b->wg_x, WG), b->lid), t = b->wg_y;
  fy_spv_if_t live = fy_spv_if(b, fy_spv_and(b, fy_spv_ult(b, t, k->rows), below(k, col, h)));
  int id = ld_u32(k, 0, t), out = fy_spv_iadd(b, fy_spv_imulc(b, t, (uint32_t)h), col);
  fy_spv_if_t valid = fy_spv_if(b, below(k, id, vocab)); /* unsigned: negative ids fail too */
  fy_spv_if_t part = fy_spv_if(b, fy_spv_and(b, uge(b, id, k->row_begin), fy_spv_ult(b, id, k->row_end)));
  int src = fy_spv_iadd(b, fy_spv_imulc(b, fy_spv_isub(b, id, k->row_begin), (uint32_t)h), col);
  st(k, 2, out, ld(k, 1, src));
  fy_spv_end_if(b, &part);
  fy_spv_else(b, &valid);
  st_bits(k, 2, out, 0x7fc00000u);
  fy_spv_if_t first = fy_spv_if(b, ieq(b, col, cu(k, 0)));
  fy_spv_raise_error(b, FY_SPIRV_ERROR_TOKEN);
  fy_spv_end_if(b, &first);
  fy_spv_end_if(b, &valid);
  fy_spv_end_if(b, &live);
  return NULL;
}

/* ---- RMSNORM: one workgroup per token ---- */

static fy_status_t emit_rmsnorm(kernel_t *k) {
  FY_TRY(arity(k, 2, 2));
  int64_t h = k->a[0].cols;
  if (!(k->n->attrs.eps >= 0.0f))
    return fy_status_make(FY_INVALID_ARGUMENT, "eps %g is not >= 0", k->n->attrs.eps);
  FY_TRY(want(k, 0, "input", false, node_rows(k), h));
  FY_TRY(want(k, 1, "weight", true, 1, h));
  FY_TRY(want(k, 2, "output", false, node_rows(k), h));
  fy_spv_t *b = k->b;
  int sh = fy_spv_shared(b, WG), t = b->wg_x, row = fy_spv_imulc(b, t, (uint32_t)h);
  fy_spv_if_t live = fy_spv_if(b, fy_spv_ult(b, t, k->rows));
  int acc = fvar(b, fy_spv_f32(b, 0.0f));
  fy_spv_loop_t i = fy_spv_for(b, b->lid, cu(k, h), cu(k, WG));
  int x = ld(k, 0, fy_spv_iadd(b, row, i.i));
  fy_spv_store(b, acc, fy_spv_fadd(b, fld(b, acc), fy_spv_fmul(b, x, x)));
  fy_spv_end_for(b, &i);
  int sum = workgroup_sum(k, sh, fld(b, acc));
  int mean = fy_spv_fadd(b, fy_spv_fdiv(b, sum, fy_spv_f32(b, (float)h)), fy_spv_f32(b, k->n->attrs.eps));
  int r = fy_spv_fdiv(b, fy_spv_f32(b, 1.0f), fy_spv_ext1(b, "Sqrt", mean));
  fy_spv_loop_t j = fy_spv_for(b, b->lid, cu(k, h), cu(k, WG));
  int e = fy_spv_iadd(b, row, j.i);
  st(k, 2, e, fy_spv_fmul(b, fy_spv_fmul(b, ld(k, 0, e), r), ld(k, 1, j.i)));
  fy_spv_end_for(b, &j);
  fy_spv_end_if(b, &live);
  return NULL;
}

/* ---- MATMUL: a subgroup per weight row, no shared memory, no barrier ----
 * The lanes of a subgroup split the row's reduction (lane l takes k = l,
 * l + size, ...: neighbouring lanes read neighbouring weights), and one
 * subgroup sum per (row, token) finishes it. Workgroups take blocks of
 * NumSubgroups rows (grid-stride past 65535 blocks); a row is read once per
 * TB tokens. Every loop bound is uniform in the subgroup, so the sums see
 * all lanes; lanes past K add zero. */

enum { TB = 4 };

static fy_status_t emit_matmul(kernel_t *k) {
  FY_TRY(arity(k, 2, 3));
  bool bias = k->n->n_inputs == 3;
  int y = k->n->n_inputs;
  int64_t kk = k->a[0].cols, n_out = k->a[1].rows;
  FY_TRY(want(k, 0, "input", false, node_rows(k), kk));
  FY_TRY(want(k, 1, "weight", true, n_out, kk));
  if (bias) FY_TRY(want(k, 2, "bias", true, 1, n_out));
  FY_TRY(want(k, y, "output", false, node_rows(k), n_out));
  fy_spv_t *b = k->b;
  fy_spv_use_subgroups(b);
  int part[TB], xrow[TB], live[TB];
  for (int t = 0; t < TB; t++) part[t] = fy_spv_var(b, "f32");
  int zero = fy_spv_f32(b, 0.0f), last_k = cu(k, kk - 1);
  fy_spv_loop_t r = fy_spv_for(b, fy_spv_iadd(b, k->row_begin, fy_spv_iadd(b, fy_spv_imul(b, b->wg_x, b->sg_count), b->sg_id)),
                               k->row_end, fy_spv_imul(b, b->nwg_x, b->sg_count));
  int wrow = fy_spv_imulc(b, fy_spv_isub(b, r.i, k->row_begin), (uint32_t)kk);
  fy_spv_loop_t t0 = fy_spv_for(b, cu(k, 0), k->rows, cu(k, TB));
  for (int t = 0; t < TB; t++) {
    fy_spv_store(b, part[t], zero);
    live[t] = fy_spv_ult(b, fy_spv_iaddc(b, t0.i, (uint32_t)t), k->rows);
    xrow[t] = fy_spv_imulc(b, fy_spv_iaddc(b, t0.i, (uint32_t)t), (uint32_t)kk);
  }
  fy_spv_loop_t k0 = fy_spv_for(b, cu(k, 0), cu(k, kk), b->sg_size);
  int kx = fy_spv_iadd(b, k0.i, b->sg_lane), in = fy_spv_ult(b, kx, cu(k, kk));
  int kc = umin(b, kx, last_k); /* in bounds; the product is dropped past K */
  int w = fy_spv_select(b, "f32", in, ld(k, 1, fy_spv_iadd(b, wrow, kc)), zero);
  for (int t = 0; t < TB; t++) {
    fy_spv_if_t token = fy_spv_if(b, live[t]); /* uniform */
    int x = ld(k, 0, fy_spv_iadd(b, xrow[t], kc));
    fy_spv_store(b, part[t], fy_spv_fadd(b, fld(b, part[t]), fy_spv_fmul(b, x, w)));
    fy_spv_end_if(b, &token);
  }
  fy_spv_end_for(b, &k0);
  for (int t = 0; t < TB; t++) {
    fy_spv_if_t token = fy_spv_if(b, live[t]);
    int sum = fy_spv_subgroup_sum(b, fld(b, part[t]));
    fy_spv_if_t lane0 = fy_spv_if(b, ieq(b, b->sg_lane, cu(k, 0)));
    if (bias) sum = fy_spv_fadd(b, sum, ld(k, 2, r.i));
    st(k, y, fy_spv_iadd(b, fy_spv_imulc(b, fy_spv_iaddc(b, t0.i, (uint32_t)t), (uint32_t)n_out), r.i), sum);
    fy_spv_end_if(b, &lane0);
    fy_spv_end_if(b, &token);
  }
  fy_spv_end_for(b, &t0);
  fy_spv_end_for(b, &r);
  return NULL;
}

/* ---- ROPE: one invocation per (token, head, pair) ----
 * The angle p * inv_freq, p = pos + t < 2^24, is reduced to turns in f32
 * without losing the position's bits: with g = inv_freq / 2pi and
 * p = ph 2^12 + pl (ph, pl < 2^12), p g = pl g + ph (2^12 g). The host splits
 * g and 2^12 g into three floats each, the first two of 12 significant bits,
 * so that pl g1, pl g2, ph G1, ph G2 are exact in f32 and so are their
 * distances to the nearest integer; only the two small third terms round.
 * The sum of the six reduced terms, reduced again, is the angle in turns
 * within a few 2^-24; cos and sin then see an angle in [-pi, pi]. */

enum { ROPE_SPLIT_BITS = 12, ROPE_TERMS = 6 };

/* x rounded to `bits` significant bits. */
static double round_bits(double x, int bits) {
  if (x == 0.0) return 0.0;
  int e;
  frexp(x, &e); /* x = m 2^e, 0.5 <= |m| < 1 */
  double scale = ldexp(1.0, bits - e);
  return nearbyint(x * scale) / scale;
}

/* terms[q * half + i]: g1, g2, g3 of g, then of 2^12 g, for frequency i. */
static void rope_terms(const double *inv_freq, int half, float *terms) {
  for (int i = 0; i < half; i++) {
    double g = inv_freq[i] / (2.0 * 3.14159265358979323846);
    for (int s = 0; s < 2; s++) {
      double x = s ? ldexp(g, ROPE_SPLIT_BITS) : g;
      double x1 = round_bits(x, ROPE_SPLIT_BITS), x2 = round_bits(x - x1, ROPE_SPLIT_BITS);
      terms[(3 * s + 0) * half + i] = (float)x1;
      terms[(3 * s + 1) * half + i] = (float)x2;
      terms[(3 * s + 2) * half + i] = (float)(x - x1 - x2);
    }
  }
}

static fy_status_t emit_rope(kernel_t *k) {
  FY_TRY(arity(k, 1, 1));
  const fy_node_attrs_t *at = &k->n->attrs;
  if (at->n_heads <= 0 || at->head_dim <= 0 || at->head_dim % 2 || !(at->rope.theta > 0))
    return fy_status_make(FY_INVALID_ARGUMENT, "%d heads of %d (must be positive and even), theta %g", at->n_heads,
                          at->head_dim, at->rope.theta);
  int64_t cols = (int64_t)at->n_heads * at->head_dim;
  int half = at->head_dim / 2;
  FY_TRY(want(k, 0, "input", false, node_rows(k), cols));
  FY_TRY(want(k, 1, "output", false, node_rows(k), cols));
  double *inv_freq = malloc(sizeof *inv_freq * (size_t)half);
  float *terms = malloc(sizeof *terms * ROPE_TERMS * (size_t)half);
  if (!inv_freq || !terms) {
    free(inv_freq), free(terms);
    return fy_status_make(FY_RESOURCE_EXHAUSTED, "out of memory");
  }
  fy_cpu_rope_inv_freq(&at->rope, at->head_dim, inv_freq);
  rope_terms(inv_freq, half, terms);
  free(inv_freq);
  fy_spv_t *b = k->b;
  int table[ROPE_TERMS];
  for (int q = 0; q < ROPE_TERMS; q++) table[q] = fy_spv_table(b, terms + q * half, half);
  free(terms);
  int e = fy_spv_iadd(b, fy_spv_imulc(b, b->wg_x, WG), b->lid), t = b->wg_y;
  fy_spv_if_t live =
      fy_spv_if(b, fy_spv_and(b, fy_spv_ult(b, t, k->rows), below(k, e, (int64_t)at->n_heads * half)));
  int head = fy_spv_op2(b, "OpUDiv", "u32", e, cu(k, half)), i = fy_spv_op2(b, "OpUMod", "u32", e, cu(k, half));
  int p = fy_spv_iadd(b, k->pos, t);
  int pl = fy_spv_op1(b, "OpConvertUToF", "f32", band(b, p, cu(k, (1u << ROPE_SPLIT_BITS) - 1)));
  int ph = fy_spv_op1(b, "OpConvertUToF", "f32", shr(b, p, cu(k, ROPE_SPLIT_BITS)));
  int turns = 0;
  for (int q = 0; q < ROPE_TERMS; q++) {
    int a = fy_spv_fmul(b, q < 3 ? pl : ph, fy_spv_table_load(b, table[q], i));
    if (q % 3 < 2) a = fy_spv_fsub(b, a, fy_spv_ext1(b, "RoundEven", a)); /* exact: a is exact */
    turns = q ? fy_spv_fadd(b, turns, a) : a;
  }
  turns = fy_spv_fsub(b, turns, fy_spv_ext1(b, "RoundEven", turns)); /* in [-1/2, 1/2] */
  int angle = fy_spv_fmul(b, turns, fy_spv_f32(b, (float)(2.0 * 3.14159265358979323846)));
  int c = fy_spv_ext1(b, "Cos", angle), s = fy_spv_ext1(b, "Sin", angle);
  int row = fy_spv_iadd(b, fy_spv_imulc(b, t, (uint32_t)cols), fy_spv_imulc(b, head, (uint32_t)at->head_dim));
  int at0 = fy_spv_iadd(b, row, i), at1 = fy_spv_iaddc(b, at0, (uint32_t)half);
  int x0 = ld(k, 0, at0), x1 = ld(k, 0, at1);
  st(k, 1, at0, fy_spv_fsub(b, fy_spv_fmul(b, x0, c), fy_spv_fmul(b, x1, s)));
  st(k, 1, at1, fy_spv_fadd(b, fy_spv_fmul(b, x1, c), fy_spv_fmul(b, x0, s)));
  fy_spv_end_if(b, &live);
  return NULL;
}

/* ---- ATTENTION: one workgroup per (token, head) ----
 * Keys in blocks of WG: invocation l scores key jb + l; then every
 * invocation folds the block into an online softmax (running max m, sum l)
 * and accumulates the output dimensions it owns (lid + WG u). Keys before
 * pos come from the cache, the step's own keys straight from k and v; the
 * step's rows are written to the cache by the first head of each kv group,
 * and no workgroup reads them, so one dispatch suffices. */

static void kv_row(kernel_t *k, int j, int kv_off, int kv_cols, int *out_cache_row, int *out_step_row) {
  fy_spv_t *b = k->b;
  *out_cache_row = fy_spv_iadd(b, fy_spv_imulc(b, j, (uint32_t)kv_cols), kv_off);
  *out_step_row = fy_spv_iadd(b, fy_spv_imulc(b, fy_spv_isub(b, j, k->pos), (uint32_t)kv_cols), kv_off);
}

static fy_status_t emit_attention(kernel_t *k) {
  FY_TRY(arity(k, 5, 5));
  const fy_node_attrs_t *at = &k->n->attrs;
  if (at->n_heads <= 0 || at->n_kv_heads <= 0 || at->head_dim <= 0 || at->n_heads % at->n_kv_heads)
    return fy_status_make(FY_INVALID_ARGUMENT, "%d heads over %d kv heads of %d", at->n_heads, at->n_kv_heads,
                          at->head_dim);
  int d = at->head_dim, group = at->n_heads / at->n_kv_heads, units = (d + WG - 1) / WG;
  int64_t q_cols = (int64_t)at->n_heads * d, kv_cols = (int64_t)at->n_kv_heads * d, capacity = k->a[3].rows;
  FY_TRY(want(k, 0, "q", false, node_rows(k), q_cols));
  FY_TRY(want(k, 1, "k", false, node_rows(k), kv_cols));
  FY_TRY(want(k, 2, "v", false, node_rows(k), kv_cols));
  FY_TRY(want(k, 3, "k cache", false, capacity, kv_cols));
  FY_TRY(want(k, 4, "v cache", false, capacity, kv_cols));
  FY_TRY(want(k, 5, "output", false, node_rows(k), q_cols));
  if (d > 4096) return fy_status_make(FY_INVALID_ARGUMENT, "head_dim %d is past the 4096 the kernel holds", d);
  fy_spv_t *b = k->b;
  int qs = fy_spv_shared(b, d), ss = fy_spv_shared(b, WG);
  int h = b->wg_x, t = b->wg_y, zero = fy_spv_f32(b, 0.0f), lowest = fy_spv_f32(b, -3.40282347e38f);
  int m = fy_spv_var(b, "f32"), l = fy_spv_var(b, "f32"), score = fy_spv_var(b, "f32"), dot = fy_spv_var(b, "f32");
  int bm = fy_spv_var(b, "f32"), acc[64];
  for (int u = 0; u < units; u++) acc[u] = fy_spv_var(b, "f32");
  fy_spv_if_t live = fy_spv_if(b, fy_spv_ult(b, t, k->rows));
  int pos_t = fy_spv_iadd(b, k->pos, t), n_ctx = fy_spv_iaddc(b, pos_t, 1);
  int kv_off = fy_spv_imulc(b, fy_spv_op2(b, "OpUDiv", "u32", h, cu(k, group)), (uint32_t)d);
  int step_row = fy_spv_iadd(b, fy_spv_imulc(b, t, (uint32_t)kv_cols), kv_off);
  int cache_row = fy_spv_iadd(b, fy_spv_imulc(b, pos_t, (uint32_t)kv_cols), kv_off);
  /* Store this step's k, v rows (the first head of the group does). */
  fy_spv_if_t fits = fy_spv_if(b, below(k, pos_t, capacity));
  fy_spv_if_t first = fy_spv_if(b, ieq(b, fy_spv_op2(b, "OpUMod", "u32", h, cu(k, group)), cu(k, 0)));
  fy_spv_loop_t c = fy_spv_for(b, b->lid, cu(k, d), cu(k, WG));
  st(k, 3, fy_spv_iadd(b, cache_row, c.i), ld(k, 1, fy_spv_iadd(b, step_row, c.i)));
  st(k, 4, fy_spv_iadd(b, cache_row, c.i), ld(k, 2, fy_spv_iadd(b, step_row, c.i)));
  fy_spv_end_for(b, &c);
  fy_spv_end_if(b, &first);
  fy_spv_else(b, &fits);
  fy_spv_if_t once = fy_spv_if(b, fy_spv_and(b, ieq(b, h, cu(k, 0)), ieq(b, b->lid, cu(k, 0))));
  fy_spv_raise_error(b, FY_SPIRV_ERROR_KV);
  fy_spv_end_if(b, &once);
  fy_spv_end_if(b, &fits);
  /* q into shared memory. */
  int q_row = fy_spv_iadd(b, fy_spv_imulc(b, t, (uint32_t)q_cols), fy_spv_imulc(b, h, (uint32_t)d));
  fy_spv_loop_t qi = fy_spv_for(b, b->lid, cu(k, d), cu(k, WG));
  fy_spv_store(b, fy_spv_shared_ptr(b, qs, qi.i), ld(k, 0, fy_spv_iadd(b, q_row, qi.i)));
  fy_spv_end_for(b, &qi);
  fy_spv_barrier(b);
  fy_spv_store(b, m, lowest);
  fy_spv_store(b, l, zero);
  for (int u = 0; u < units; u++) fy_spv_store(b, acc[u], zero);
  fy_spv_loop_t jb = fy_spv_for(b, cu(k, 0), n_ctx, cu(k, WG));
  /* Score key j = jb + lid. */
  int j = fy_spv_iadd(b, jb.i, b->lid);
  fy_spv_store(b, score, lowest);
  fy_spv_if_t valid = fy_spv_if(b, fy_spv_ult(b, j, n_ctx));
  int krow_cache, krow_step;
  kv_row(k, j, kv_off, (int)kv_cols, &krow_cache, &krow_step);
  fy_spv_store(b, dot, zero);
  fy_spv_if_t cached = fy_spv_if(b, fy_spv_ult(b, j, k->pos));
  for (int src = 0; src < 2; src++) {
    if (src) fy_spv_else(b, &cached);
    fy_spv_loop_t i = fy_spv_for(b, cu(k, 0), cu(k, d), cu(k, 1));
    int key = src ? ld(k, 1, fy_spv_iadd(b, krow_step, i.i)) : ld(k, 3, fy_spv_iadd(b, krow_cache, i.i));
    int q = fld(b, fy_spv_shared_ptr(b, qs, i.i));
    fy_spv_store(b, dot, fy_spv_fadd(b, fld(b, dot), fy_spv_fmul(b, q, key)));
    fy_spv_end_for(b, &i);
  }
  fy_spv_end_if(b, &cached);
  fy_spv_store(b, score, fy_spv_fmul(b, fld(b, dot), fy_spv_f32(b, (float)(1.0 / sqrt((double)d)))));
  fy_spv_end_if(b, &valid);
  fy_spv_store(b, fy_spv_shared_ptr(b, ss, b->lid), fld(b, score));
  fy_spv_barrier(b);
  /* Fold the block: new max, rescale, accumulate. */
  int count = umin(b, fy_spv_isub(b, n_ctx, jb.i), cu(k, WG));
  fy_spv_store(b, bm, fld(b, m));
  fy_spv_loop_t mj = fy_spv_for(b, cu(k, 0), count, cu(k, 1));
  fy_spv_store(b, bm, fy_spv_ext2(b, "FMax", fld(b, bm), fld(b, fy_spv_shared_ptr(b, ss, mj.i))));
  fy_spv_end_for(b, &mj);
  int new_max = fld(b, bm), alpha = fy_spv_ext1(b, "Exp", fy_spv_fsub(b, fld(b, m), new_max));
  fy_spv_store(b, l, fy_spv_fmul(b, fld(b, l), alpha));
  for (int u = 0; u < units; u++) fy_spv_store(b, acc[u], fy_spv_fmul(b, fld(b, acc[u]), alpha));
  fy_spv_loop_t vj = fy_spv_for(b, cu(k, 0), count, cu(k, 1));
  int pj = fy_spv_ext1(b, "Exp", fy_spv_fsub(b, fld(b, fy_spv_shared_ptr(b, ss, vj.i)), new_max));
  fy_spv_store(b, l, fy_spv_fadd(b, fld(b, l), pj));
  int key = fy_spv_iadd(b, jb.i, vj.i), vrow_cache, vrow_step;
  kv_row(k, key, kv_off, (int)kv_cols, &vrow_cache, &vrow_step);
  fy_spv_if_t vcached = fy_spv_if(b, fy_spv_ult(b, key, k->pos));
  for (int src = 0; src < 2; src++) {
    if (src) fy_spv_else(b, &vcached);
    for (int u = 0; u < units; u++) {
      int dim = fy_spv_iaddc(b, b->lid, (uint32_t)(u * WG));
      fy_spv_if_t own = {0};
      bool partial = (u + 1) * WG > d;
      if (partial) own = fy_spv_if(b, below(k, dim, d));
      int val = src ? ld(k, 2, fy_spv_iadd(b, vrow_step, dim)) : ld(k, 4, fy_spv_iadd(b, vrow_cache, dim));
      fy_spv_store(b, acc[u], fy_spv_fadd(b, fld(b, acc[u]), fy_spv_fmul(b, pj, val)));
      if (partial) fy_spv_end_if(b, &own);
    }
  }
  fy_spv_end_if(b, &vcached);
  fy_spv_end_for(b, &vj);
  fy_spv_store(b, m, new_max);
  fy_spv_barrier(b); /* the next block overwrites ss */
  fy_spv_end_for(b, &jb);
  for (int u = 0; u < units; u++) {
    int dim = fy_spv_iaddc(b, b->lid, (uint32_t)(u * WG));
    fy_spv_if_t own = fy_spv_if(b, below(k, dim, d));
    st(k, 5, fy_spv_iadd(b, q_row, dim), fy_spv_fdiv(b, fld(b, acc[u]), fld(b, l)));
    fy_spv_end_if(b, &own);
  }
  fy_spv_end_if(b, &live);
  return NULL;
}

/* ---- SILU_MUL, ADD: one invocation per element ---- */

static fy_status_t emit_eltwise(kernel_t *k) {
  FY_TRY(arity(k, 2, 2));
  int64_t cols = k->a[0].cols;
  FY_TRY(want(k, 0, "first input", false, node_rows(k), cols));
  FY_TRY(want(k, 1, "second input", false, node_rows(k), cols));
  FY_TRY(want(k, 2, "output", false, node_rows(k), cols));
  fy_spv_t *b = k->b;
  int col = fy_spv_iadd(b, fy_spv_imulc(b, b->wg_x, WG), b->lid), t = b->wg_y;
  fy_spv_if_t live = fy_spv_if(b, fy_spv_and(b, fy_spv_ult(b, t, k->rows), below(k, col, cols)));
  int e = fy_spv_iadd(b, fy_spv_imulc(b, t, (uint32_t)cols), col);
  int x = ld(k, 0, e), y = ld(k, 1, e), r;
  if (k->n->op == FY_OP_ADD) {
    r = fy_spv_fadd(b, x, y);
  } else {
    int e_neg = fy_spv_ext1(b, "Exp", fy_spv_op1(b, "OpFNegate", "f32", x));
    r = fy_spv_fmul(b, fy_spv_fdiv(b, x, fy_spv_fadd(b, fy_spv_f32(b, 1.0f), e_neg)), y);
  }
  st(k, 2, e, r);
  fy_spv_end_if(b, &live);
  return NULL;
}

/* ---- LAST_ROW ---- */

static fy_status_t emit_last_row(kernel_t *k) {
  FY_TRY(arity(k, 1, 1));
  int64_t cols = k->a[0].cols;
  FY_TRY(want(k, 0, "input", false, 1, cols));
  FY_TRY(want(k, 1, "output", false, 1, cols));
  fy_spv_t *b = k->b;
  int col = fy_spv_iadd(b, fy_spv_imulc(b, b->wg_x, WG), b->lid);
  fy_spv_if_t live = fy_spv_if(b, below(k, col, cols));
  int src = fy_spv_iadd(b, fy_spv_imulc(b, fy_spv_isub(b, k->rows, cu(k, 1)), (uint32_t)cols), col);
  st(k, 1, col, ld(k, 0, src));
  fy_spv_end_if(b, &live);
  return NULL;
}

/* ---- the node ---- */

static fy_status_t emit(kernel_t *k) {
  switch (k->n->op) {
    case FY_OP_EMBED: return emit_embed(k);
    case FY_OP_RMSNORM: return emit_rmsnorm(k);
    case FY_OP_MATMUL: return emit_matmul(k);
    case FY_OP_ROPE: return emit_rope(k);
    case FY_OP_ATTENTION: return emit_attention(k);
    case FY_OP_SILU_MUL:
    case FY_OP_ADD: return emit_eltwise(k);
    case FY_OP_LAST_ROW: return emit_last_row(k);
    case FY_OP_COUNT: break;
  }
  return fy_status_make(FY_INVALID_ARGUMENT, "unknown op %d", (int)k->n->op);
}

fy_status_t fy_spirv_emit_node(const fy_graph_t *g, int node, fy_spv_t *b) {
  if (!g || node < 0 || node >= g->n_nodes)
    return fy_status_make(FY_INVALID_ARGUMENT, "spirv: node %d is not in the graph", node);
  const fy_node_t *n = &g->nodes[node];
  kernel_t k = {.b = b, .g = g, .n = n, .n_args = n->n_inputs + 1};
  if (n->n_inputs < 0 || n->n_inputs > FY_MAX_NODE_INPUTS)
    return fy_status_make(FY_INVALID_ARGUMENT, "spirv: node %s has %d inputs", n->name, n->n_inputs);
  bool in_place = n->op == FY_OP_ADD || n->op == FY_OP_SILU_MUL || n->op == FY_OP_ROPE;
  fy_spv_init(b, 1 + k.n_args, in_place);
  for (int i = 0; i < k.n_args; i++) {
    int v = i < n->n_inputs ? n->inputs[i] : n->output;
    if (v < 0 || v >= g->n_values) {
      fy_spv_free(b);
      return fy_status_make(FY_INVALID_ARGUMENT, "spirv: node %s: argument %d is not a value", n->name, i);
    }
    fy_cpu_arg_t shape = fy_cpu_arg_for_value(&g->values[v], NULL);
    karg_t *a = &k.a[i];
    a->dtype = g->values[v].dtype, a->rows = shape.rows, a->cols = shape.cols;
    a->base_bytes = fy_spv_push(b, i);
    a->base_words = fy_spv_op2(b, "OpShiftRightLogical", "u32", a->base_bytes, fy_spv_u32(b, 2));
  }
  /* min(n_tokens, the rows of the signature): 1 after LAST_ROW whatever the step's count. */
  const fy_value_t *rows_of = &g->values[n->op == FY_OP_LAST_ROW ? n->inputs[0] : n->output];
  k.rows = fy_spv_res(b, "OpExtInst %%u32 %%ext UMin %%v%d %%v%d", fy_spv_load_word(b, 0, fy_spv_u32(b, 0)),
                      fy_spv_u32(b, (uint32_t)(rows_of->rank >= 1 ? rows_of->shape[0] : 1)));
  k.pos = fy_spv_load_word(b, 0, fy_spv_u32(b, 1));
  k.row_begin = fy_spv_push(b, FY_SPIRV_MAX_ARGS);
  k.row_end = fy_spv_push(b, FY_SPIRV_MAX_ARGS + 1);
  fy_status_t s = emit(&k);
  if (s) {
    fy_spv_free(b);
    return fy_status_annotate(s, "spirv: node %s (%s)", n->name, fy_op_name(n->op));
  }
  return NULL;
}
