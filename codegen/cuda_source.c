/* CUDA C for every op (codegen/cuda.h), specialized to a node's shapes,
 * dtypes and attributes. A kernel's constants (block size, tile sizes) are
 * chosen once per node by kernel_shape, which both the source and the launch
 * geometry read, so the two cannot disagree.
 *
 * Numerics follow docs/reference.md where it costs nothing: elementwise
 * arithmetic and RoPE use the same f32 operations in the same order as the
 * CPU reference with FMA contraction ruled out (__fmul_rn, __fadd_rn), RoPE
 * angles and RMSNORM's sum of squares are in double, RoPE frequencies are
 * computed on the host by fy_cpu_rope_inv_freq and written exactly (%a).
 * Reductions (MATMUL, attention) use a fixed order of their own: lane l of a
 * warp takes the chunks l, l+32, ... of the reduction, then a xor-butterfly
 * combines the lanes (every lane ends with the same bits: float addition is
 * commutative). See docs/cuda.md for the design and its limits. */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/cpu.h"
#include "codegen/cuda.h"
#include "codegen/kernel_name.h"

/* ---- a growing string ---- */

typedef struct {
  char *s;
  size_t len, cap;
  bool oom;
} sb_t;

static void sb_printf(sb_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sb_t *b, const char *fmt, ...) {
  if (b->oom) return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    size_t room = b->cap - b->len;
    int w = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? room : 0, fmt, ap);
    va_end(ap);
    if (w < 0) {
      b->oom = true;
      return;
    }
    if (b->s && (size_t)w < room) {
      b->len += (size_t)w;
      return;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len <= (size_t)w) cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) {
      b->oom = true;
      return;
    }
    b->s = s;
    b->cap = cap;
  }
}

/* ---- what a kernel is specialized to ---- */

enum { MAX_ARGS = FY_MAX_NODE_INPUTS + 1, MATMUL_WARPS = 4, ATTN_TILE_MAX = 1024, MAX_GRID_Y = 65535 };

typedef struct {
  const fy_node_t *node;
  char name[FY_KERNEL_NAME_MAX];
  int n_in;
  fy_dtype_t dt[MAX_ARGS]; /* inputs, then the output at [n_in] */
  int64_t rows[MAX_ARGS], cols[MAX_ARGS];
  int64_t max_rows; /* the most rows a launch may have */
  unsigned block;   /* threads per block */
  /* MATMUL */
  int vec, rows_per_warp, tokens_per_warp;
  /* ATTENTION */
  int tile, groups;
} kshape_t;

static fy_status_t bad(const fy_graph_t *g, int node, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static fy_status_t bad(const fy_graph_t *g, int node, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  const fy_node_t *n = &g->nodes[node];
  return fy_status_make(FY_INVALID_ARGUMENT, "cuda: node %d (%s, %s): %s", node, n->name ? n->name : "?",
                        fy_op_name(n->op), msg);
}

static bool is_float(fy_dtype_t d) { return d == FY_DTYPE_F32 || d == FY_DTYPE_F16 || d == FY_DTYPE_BF16; }

static unsigned round_up32(int64_t x) { return (unsigned)((x + 31) / 32 * 32); }

/* Arity, dtypes and shapes as codegen/cpu.c checks them, then the constants. */
static fy_status_t kernel_shape(const fy_graph_t *g, int node, kshape_t *k) {
  if (!g || node < 0 || node >= g->n_nodes)
    return fy_status_make(FY_OUT_OF_RANGE, "cuda: node %d is not in the graph", node);
  const fy_node_t *n = &g->nodes[node];
  static const int arity_min[FY_OP_COUNT] = {2, 2, 2, 1, 5, 2, 2, 1};
  static const int arity_max[FY_OP_COUNT] = {2, 2, 3, 1, 5, 2, 2, 1};
  if (n->op < 0 || n->op >= FY_OP_COUNT) return bad(g, node, "unknown op %d", (int)n->op);
  if (n->n_inputs < arity_min[n->op] || n->n_inputs > arity_max[n->op])
    return bad(g, node, "%d inputs", n->n_inputs);
  memset(k, 0, sizeof *k);
  k->node = n;
  k->n_in = n->n_inputs;
  for (int i = 0; i <= n->n_inputs; i++) {
    int v = i < n->n_inputs ? n->inputs[i] : n->output;
    if (v < 0 || v >= g->n_values) return bad(g, node, "argument %d names value %d", i, v);
    fy_cpu_arg_t a = fy_cpu_arg_for_value(&g->values[v], NULL);
    k->dt[i] = a.dtype;
    k->rows[i] = a.rows;
    k->cols[i] = a.cols;
    if (a.rows < 1 || a.cols < 1) return bad(g, node, "argument %d is empty", i);
  }
  fy_kernel_name(g, node, k->name, sizeof k->name);
  const int o = k->n_in;
  const fy_node_attrs_t *at = &n->attrs;
  k->max_rows = n->op == FY_OP_LAST_ROW ? k->rows[0] : k->rows[o];
  /* Every per-token argument has at least max_rows rows. */
  if (k->dt[o] != FY_DTYPE_F32) return bad(g, node, "output is %s, expected f32", fy_dtype_name(k->dt[o]));
  switch (n->op) {
    case FY_OP_EMBED:
      if (k->dt[0] != FY_DTYPE_I32 || k->cols[0] != 1 || k->rows[0] < k->max_rows)
        return bad(g, node, "token ids must be i32 with a row per output row");
      if (!is_float(k->dt[1]) || k->cols[1] != k->cols[o]) return bad(g, node, "table does not match the output");
      k->block = k->cols[o] >= 256 ? 256 : round_up32(k->cols[o]);
      break;
    case FY_OP_RMSNORM:
      if (k->dt[0] != FY_DTYPE_F32 || k->cols[0] != k->cols[o] || k->rows[0] < k->max_rows)
        return bad(g, node, "input must be f32 like the output");
      if (!is_float(k->dt[1]) || k->rows[1] != 1 || k->cols[1] != k->cols[o])
        return bad(g, node, "weight must be a float vector of %" PRId64, k->cols[o]);
      if (!(at->eps >= 0.0f) || isinf(at->eps)) return bad(g, node, "eps %g", at->eps);
      k->block = k->cols[o] >= 2048 ? 256 : k->cols[o] >= 256 ? 128 : round_up32(k->cols[o]);
      break;
    case FY_OP_MATMUL: {
      if (k->dt[0] != FY_DTYPE_F32 || k->rows[0] < k->max_rows) return bad(g, node, "input must be f32");
      if (!is_float(k->dt[1]) || k->cols[1] != k->cols[0] || k->rows[1] != k->cols[o])
        return bad(g, node, "weight is [%" PRId64 ", %" PRId64 "], expected [%" PRId64 ", %" PRId64 "]", k->rows[1],
                   k->cols[1], k->cols[o], k->cols[0]);
      if (k->n_in == 3 && (!is_float(k->dt[2]) || k->rows[2] != 1 || k->cols[2] != k->cols[o]))
        return bad(g, node, "bias must be a float vector of %" PRId64, k->cols[o]);
      k->block = 32 * MATMUL_WARPS;
      k->vec = k->dt[1] == FY_DTYPE_F32 ? 4 : 8; /* 16 bytes of weights per lane per chunk */
      k->rows_per_warp = 4;
      k->tokens_per_warp = k->max_rows < 8 ? (int)k->max_rows : 8;
      break;
    }
    case FY_OP_ROPE: {
      int64_t cols = (int64_t)at->n_heads * at->head_dim;
      if (at->n_heads <= 0 || at->head_dim <= 0 || at->head_dim % 2 || !(at->rope.theta > 0))
        return bad(g, node, "%d heads of %d, theta %g", at->n_heads, at->head_dim, at->rope.theta);
      if (at->rope.scaling == FY_ROPE_SCALING_LLAMA3 &&
          !(at->rope.factor > 0 && at->rope.low_freq_factor > 0 &&
            at->rope.high_freq_factor > at->rope.low_freq_factor && at->rope.original_max_position > 0))
        return bad(g, node, "llama3 scaling parameters out of range");
      if (k->dt[0] != FY_DTYPE_F32 || k->cols[0] != cols || k->cols[o] != cols || k->rows[0] < k->max_rows)
        return bad(g, node, "input and output must be f32 with %" PRId64 " columns", cols);
      k->block = at->head_dim / 2 >= 256 ? 256 : round_up32(at->head_dim / 2);
      break;
    }
    case FY_OP_ATTENTION: {
      if (at->n_heads <= 0 || at->n_kv_heads <= 0 || at->head_dim <= 0 || at->n_heads % at->n_kv_heads ||
          at->head_dim > 1024)
        return bad(g, node, "%d heads over %d kv heads of %d", at->n_heads, at->n_kv_heads, at->head_dim);
      int64_t qc = (int64_t)at->n_heads * at->head_dim, kvc = (int64_t)at->n_kv_heads * at->head_dim;
      int64_t expect_cols[5] = {qc, kvc, kvc, kvc, kvc};
      for (int i = 0; i < 5; i++)
        if (k->dt[i] != FY_DTYPE_F32 || k->cols[i] != expect_cols[i])
          return bad(g, node, "argument %d must be f32 with %" PRId64 " columns", i, expect_cols[i]);
      if (k->rows[3] != k->rows[4] || k->cols[o] != qc || k->rows[0] < k->max_rows || k->rows[1] < k->max_rows ||
          k->rows[2] < k->max_rows)
        return bad(g, node, "caches or output do not match");
      if (at->n_heads > MAX_GRID_Y * 1024) return bad(g, node, "too many heads");
      k->block = at->head_dim <= 128 ? 128 : round_up32(at->head_dim);
      k->groups = (int)(k->block / (unsigned)at->head_dim);
      k->tile = k->rows[3] < ATTN_TILE_MAX ? (int)k->rows[3] : ATTN_TILE_MAX;
      break;
    }
    case FY_OP_SILU_MUL:
    case FY_OP_ADD:
      for (int i = 0; i < 2; i++)
        if (k->dt[i] != FY_DTYPE_F32 || k->cols[i] != k->cols[o] || k->rows[i] < k->max_rows)
          return bad(g, node, "inputs must be f32 like the output");
      k->block = 256;
      break;
    case FY_OP_LAST_ROW:
      if (k->dt[0] != FY_DTYPE_F32 || k->cols[0] != k->cols[o]) return bad(g, node, "input must be f32");
      k->block = 256;
      break;
    case FY_OP_COUNT: break;
  }
  return NULL;
}

/* ---- launch geometry ---- */

static unsigned ceil_div(int64_t a, int64_t b) { return (unsigned)((a + b - 1) / b); }
static unsigned cap(unsigned x, unsigned max) { return x < max ? x : max; }

fy_status_t fy_cuda_launch_dims(const fy_graph_t *g, int node, int64_t n_rows, fy_cuda_launch_t *out_launch) {
  kshape_t k;
  FY_TRY(kernel_shape(g, node, &k));
  if (n_rows < 1 || n_rows > k.max_rows)
    return fy_status_make(FY_OUT_OF_RANGE, "cuda: node %d (%s): a launch of %" PRId64 " rows, at most %" PRId64,
                          node, k.node->name ? k.node->name : "?", n_rows, k.max_rows);
  fy_cuda_launch_t l = {{1, 1, 1}, {k.block, 1, 1}, 0};
  int64_t cols = k.cols[k.n_in];
  switch (k.node->op) {
    case FY_OP_EMBED:
      l.grid[0] = ceil_div(cols, k.block);
      l.grid[1] = cap((unsigned)n_rows, MAX_GRID_Y);
      break;
    case FY_OP_RMSNORM:
    case FY_OP_ROPE: l.grid[0] = cap((unsigned)n_rows, 1u << 20); break;
    case FY_OP_MATMUL:
      l.grid[0] = ceil_div(cols, (int64_t)MATMUL_WARPS * k.rows_per_warp);
      l.grid[1] = cap(ceil_div(n_rows, k.tokens_per_warp), MAX_GRID_Y);
      break;
    case FY_OP_ATTENTION:
      l.grid[0] = (unsigned)k.node->attrs.n_heads;
      l.grid[1] = cap((unsigned)n_rows, MAX_GRID_Y);
      break;
    case FY_OP_SILU_MUL:
    case FY_OP_ADD: {
      int64_t items = n_rows * (cols % 4 ? cols : cols / 4);
      l.grid[0] = cap(ceil_div(items, k.block), 1u << 16);
      break;
    }
    case FY_OP_LAST_ROW: l.grid[0] = ceil_div(cols, k.block); break;
    case FY_OP_COUNT: break;
  }
  *out_launch = l;
  return NULL;
}

/* ---- source ---- */

static const char prelude[] =
    "/* ferry: generated CUDA C (codegen/cuda_source.c). One kernel per node signature; every kernel takes\n"
    " * (inputs..., output, n = rows of this launch, pos = sequence position of row 0). */\n"
    "#ifndef FY_CUDA_EMULATION\n"
    "#define FY_KERNEL extern \"C\" __global__\n"
    "#define FY_DEVICE __device__ __forceinline__\n"
    "#define FY_CONSTANT static __constant__\n"
    "typedef long long fy_i64;\n"
    "typedef unsigned short fy_u16;\n"
    "FY_DEVICE float fy_bf16(fy_u16 h) { return __uint_as_float((unsigned)h << 16); }\n"
    "FY_DEVICE float fy_f16(fy_u16 h) {\n"
    "  float f;\n"
    "  asm(\"cvt.f32.f16 %0, %1;\" : \"=f\"(f) : \"h\"(h));\n"
    "  return f;\n"
    "}\n"
    "#endif\n"
    "\n"
    "/* Every lane ends with the same bits (float addition is commutative). */\n"
    "FY_DEVICE float fy_warp_sum(float v) {\n"
    "  for (int m = 16; m > 0; m >>= 1) v += __shfl_xor_sync(0xffffffffu, v, m);\n"
    "  return v;\n"
    "}\n"
    "FY_DEVICE double fy_warp_sum_d(double v) {\n"
    "  for (int m = 16; m > 0; m >>= 1) v += __shfl_xor_sync(0xffffffffu, v, m);\n"
    "  return v;\n"
    "}\n"
    "FY_DEVICE float fy_warp_max(float v) {\n"
    "  for (int m = 16; m > 0; m >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, m));\n"
    "  return v;\n"
    "}\n"
    "/* Block reductions: blockDim.x is a multiple of 32; red holds 32 floats. Every thread gets the result. */\n"
    "FY_DEVICE float fy_block_sum(float v, float *red) {\n"
    "  v = fy_warp_sum(v);\n"
    "  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;\n"
    "  __syncthreads();\n"
    "  float s = red[0];\n"
    "  for (unsigned w = 1; w < (blockDim.x >> 5); w++) s += red[w];\n"
    "  __syncthreads();\n"
    "  return s;\n"
    "}\n"
    "FY_DEVICE float fy_block_max(float v, float *red) {\n"
    "  v = fy_warp_max(v);\n"
    "  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;\n"
    "  __syncthreads();\n"
    "  float s = red[0];\n"
    "  for (unsigned w = 1; w < (blockDim.x >> 5); w++) s = fmaxf(s, red[w]);\n"
    "  __syncthreads();\n"
    "  return s;\n"
    "}\n"
    "/* Eight 16-bit floats from one 16-byte load, element 0 in the low half of u.x. */\n"
    "FY_DEVICE void fy_unpack_bf16(uint4 u, float *f) {\n"
    "  f[0] = __uint_as_float(u.x << 16); f[1] = __uint_as_float(u.x & 0xffff0000u);\n"
    "  f[2] = __uint_as_float(u.y << 16); f[3] = __uint_as_float(u.y & 0xffff0000u);\n"
    "  f[4] = __uint_as_float(u.z << 16); f[5] = __uint_as_float(u.z & 0xffff0000u);\n"
    "  f[6] = __uint_as_float(u.w << 16); f[7] = __uint_as_float(u.w & 0xffff0000u);\n"
    "}\n"
    "FY_DEVICE void fy_unpack_f16(uint4 u, float *f) {\n"
    "  f[0] = fy_f16((fy_u16)(u.x & 0xffffu)); f[1] = fy_f16((fy_u16)(u.x >> 16));\n"
    "  f[2] = fy_f16((fy_u16)(u.y & 0xffffu)); f[3] = fy_f16((fy_u16)(u.y >> 16));\n"
    "  f[4] = fy_f16((fy_u16)(u.z & 0xffffu)); f[5] = fy_f16((fy_u16)(u.z >> 16));\n"
    "  f[6] = fy_f16((fy_u16)(u.w & 0xffffu)); f[7] = fy_f16((fy_u16)(u.w >> 16));\n"
    "}\n";

/* An element of a float buffer as f32: writes the expression into buf. */
static const char *load(char *buf, size_t n, fy_dtype_t d, const char *ptr, const char *idx) {
  if (d == FY_DTYPE_F32)
    snprintf(buf, n, "((const float *)%s)[%s]", ptr, idx);
  else
    snprintf(buf, n, "%s(((const fy_u16 *)%s)[%s])", d == FY_DTYPE_BF16 ? "fy_bf16" : "fy_f16", ptr, idx);
  return buf;
}

/* An f32 constant, exactly. */
static const char *fconst(char *buf, size_t n, float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  snprintf(buf, n, "__int_as_float(0x%08" PRIx32 ")", u);
  return buf;
}

static void params(sb_t *b, const kshape_t *k, bool restrict_) {
  const char *r = restrict_ ? "__restrict__ " : "";
  sb_printf(b, "FY_KERNEL void __launch_bounds__(%u) %s(", k->block, k->name);
  for (int i = 0; i < k->n_in; i++) sb_printf(b, "const void *%sin%d, ", r, i);
  sb_printf(b, "void *%sout, fy_i64 n, fy_i64 pos) {\n", r);
}



static void gen_embed(sb_t *b, const kshape_t *k) {
  int64_t h = k->cols[2], v = k->rows[1];
  char idx[64], ld[160];
  snprintf(idx, sizeof idx, "(fy_i64)id * %" PRId64 " + i", h);
  sb_printf(b, "/* embed: y[t] = table[ids[t]], widened; an id outside the table gives a NaN row (the\n"
               " * runtime checks ids before a step). */\n");
  params(b, k, false);
  sb_printf(b,
            "  const int *ids = (const int *)in0;\n"
            "  float *y = (float *)out;\n"
            "  const fy_i64 i = (fy_i64)blockIdx.x * blockDim.x + threadIdx.x;\n"
            "  (void)pos;\n"
            "  if (i >= %" PRId64 ") return;\n"
            "  for (fy_i64 t = blockIdx.y; t < n; t += gridDim.y) {\n"
            "    const int id = ids[t];\n"
            "    y[t * %" PRId64 " + i] = id >= 0 && id < %" PRId64 " ? %s : __int_as_float(0x7fc00000);\n"
            "  }\n"
            "}\n\n",
            h, h, v, load(ld, sizeof ld, k->dt[1], "in1", idx));
}

static void gen_rmsnorm(sb_t *b, const kshape_t *k) {
  int64_t h = k->cols[2];
  char ld[160], eps[48];
  sb_printf(b, "/* rmsnorm: a block per row; the sum of squares in double, r = 1 / sqrt(s / H + eps) in double,\n"
               " * y = (x r) w in f32 as the CPU reference does. */\n");
  params(b, k, false);
  sb_printf(b,
            "  const float *x = (const float *)in0;\n"
            "  float *y = (float *)out;\n"
            "  __shared__ double red[32];\n"
            "  (void)pos;\n"
            "  for (fy_i64 t = blockIdx.x; t < n; t += gridDim.x) {\n"
            "    const float *xr = x + t * %" PRId64 ";\n"
            "    float *yr = y + t * %" PRId64 ";\n"
            "    double s = 0.0;\n"
            "    for (fy_i64 i = threadIdx.x; i < %" PRId64 "; i += blockDim.x) s += (double)xr[i] * (double)xr[i];\n"
            "    s = fy_warp_sum_d(s);\n"
            "    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = s;\n"
            "    __syncthreads();\n"
            "    double sum = red[0];\n"
            "    for (unsigned w = 1; w < (blockDim.x >> 5); w++) sum += red[w];\n"
            "    const float r = (float)(1.0 / sqrt(sum / %" PRId64 ".0 + (double)%s));\n"
            "    for (fy_i64 i = threadIdx.x; i < %" PRId64 "; i += blockDim.x) yr[i] = __fmul_rn(__fmul_rn(xr[i], r), %s);\n"
            "    __syncthreads();\n"
            "  }\n"
            "}\n\n",
            h, h, h, h, fconst(eps, sizeof eps, k->node->attrs.eps), h, load(ld, sizeof ld, k->dt[1], "in1", "i"));
}

static void gen_matmul(sb_t *b, const kshape_t *k) {
  const int64_t kk = k->cols[0], n_out = k->cols[k->n_in];
  const int vec = k->vec, rpw = k->rows_per_warp, tpw = k->tokens_per_warp;
  const fy_dtype_t wd = k->dt[1];
  const bool w_vec_ok = kk * (int64_t)fy_dtype_size(wd) % 16 == 0, x_vec_ok = kk % 4 == 0;
  char ld[160], store[200];
  sb_printf(b, "/* matmul: y[t, j] = dot(x[t], w[j])%s. A warp computes %d rows x %d tokens; lane l reduces the\n"
               " * %d-wide chunks l, l+32, ... of K in order (16-byte loads where aligned, the same order either\n"
               " * way), then a butterfly sums the lanes. */\n",
            k->n_in == 3 ? " + bias[j]" : "", rpw, tpw, vec);
  params(b, k, true);
  sb_printf(b,
            "  const float *x = (const float *)in0;\n"
            "  float *y = (float *)out;\n"
            "  const int lane = threadIdx.x & 31;\n"
            "  const fy_i64 j0 = ((fy_i64)blockIdx.x * %d + (threadIdx.x >> 5)) * %d;\n"
            "  (void)pos;\n"
            "  if (j0 >= %" PRId64 ") return;\n"
            "  const bool wvec = %s;\n"
            "  const bool xvec = %s;\n"
            "  for (fy_i64 t0 = (fy_i64)blockIdx.y * %d; t0 < n; t0 += (fy_i64)gridDim.y * %d) {\n"
            "    float acc[%d][%d];\n"
            "#pragma unroll\n"
            "    for (int r = 0; r < %d; r++)\n"
            "#pragma unroll\n"
            "      for (int u = 0; u < %d; u++) acc[r][u] = 0.0f;\n"
            "    for (fy_i64 k0 = (fy_i64)lane * %d; k0 < %" PRId64 "; k0 += %d) {\n"
            "      const bool full = k0 + %d <= %" PRId64 ";\n"
            "      float wv[%d][%d];\n"
            "#pragma unroll\n"
            "      for (int r = 0; r < %d; r++) {\n"
            "        const fy_i64 at = (j0 + r) * %" PRId64 " + k0;\n"
            "        if (j0 + r >= %" PRId64 ") {\n"
            "#pragma unroll\n"
            "          for (int e = 0; e < %d; e++) wv[r][e] = 0.0f;\n"
            "        } else if (wvec && full) {\n",
            MATMUL_WARPS, rpw, n_out, w_vec_ok ? "((unsigned long long)in1 & 15) == 0" : "false",
            x_vec_ok ? "((unsigned long long)in0 & 15) == 0" : "false", tpw, tpw, rpw, tpw, rpw, tpw, vec, kk,
            32 * vec, vec, kk, rpw, vec, rpw, kk, n_out, vec);
  if (wd == FY_DTYPE_F32)
    sb_printf(b, "          const float4 a = *(const float4 *)((const float *)in1 + at);\n"
                 "          wv[r][0] = a.x; wv[r][1] = a.y; wv[r][2] = a.z; wv[r][3] = a.w;\n");
  else
    sb_printf(b, "          %s(*(const uint4 *)((const fy_u16 *)in1 + at), wv[r]);\n",
              wd == FY_DTYPE_BF16 ? "fy_unpack_bf16" : "fy_unpack_f16");
  sb_printf(b,
            "        } else {\n"
            "#pragma unroll\n"
            "          for (int e = 0; e < %d; e++) wv[r][e] = k0 + e < %" PRId64 " ? %s : 0.0f;\n"
            "        }\n"
            "      }\n"
            "#pragma unroll\n"
            "      for (int u = 0; u < %d; u++) {\n"
            "        if (t0 + u < n) {\n"
            "          const float *xr = x + (t0 + u) * %" PRId64 " + k0;\n"
            "          float xv[%d];\n"
            "          if (xvec && full) {\n"
            "            const float4 a = *(const float4 *)xr;\n"
            "            xv[0] = a.x; xv[1] = a.y; xv[2] = a.z; xv[3] = a.w;\n",
            vec, kk, load(ld, sizeof ld, wd, "in1", "at + e"), tpw, kk, vec);
  if (vec == 8)
    sb_printf(b, "            const float4 c = *(const float4 *)(xr + 4);\n"
                 "            xv[4] = c.x; xv[5] = c.y; xv[6] = c.z; xv[7] = c.w;\n");
  if (k->n_in == 3) {
    char bias[160];
    snprintf(store, sizeof store, "__fadd_rn(s, %s)", load(bias, sizeof bias, k->dt[2], "in2", "j0 + r"));
  } else {
    snprintf(store, sizeof store, "s");
  }
  sb_printf(b,
            "          } else {\n"
            "#pragma unroll\n"
            "            for (int e = 0; e < %d; e++) xv[e] = k0 + e < %" PRId64 " ? xr[e] : 0.0f;\n"
            "          }\n"
            "#pragma unroll\n"
            "          for (int r = 0; r < %d; r++)\n"
            "#pragma unroll\n"
            "            for (int e = 0; e < %d; e++) acc[r][u] = fmaf(xv[e], wv[r][e], acc[r][u]);\n"
            "        }\n"
            "      }\n"
            "    }\n"
            "#pragma unroll\n"
            "    for (int r = 0; r < %d; r++)\n"
            "#pragma unroll\n"
            "      for (int u = 0; u < %d; u++) {\n"
            "        const float s = fy_warp_sum(acc[r][u]);\n"
            "        if (lane == ((r * %d + u) & 31) && j0 + r < %" PRId64 " && t0 + u < n)\n"
            "          y[(t0 + u) * %" PRId64 " + j0 + r] = %s;\n"
            "      }\n"
            "  }\n"
            "}\n\n",
            vec, kk, rpw, vec, rpw, tpw, tpw, n_out, n_out, store);
}

static void gen_rope(sb_t *b, const kshape_t *k) {
  const fy_node_attrs_t *a = &k->node->attrs;
  const int d = a->head_dim, half = d / 2;
  const int64_t cols = (int64_t)a->n_heads * d;
  sb_printf(b, "/* rope: rotate_half per head; inv_freq from fy_cpu_rope_inv_freq (llama3 scaling applied),\n"
               " * angle and cos/sin in double, the rotation in f32 as the CPU reference does. */\n");
  double *inv_freq = malloc(sizeof(double) * (size_t)half);
  if (!inv_freq) {
    b->oom = true;
    return;
  }
  fy_cpu_rope_inv_freq(&a->rope, d, inv_freq);
  sb_printf(b, "FY_CONSTANT double %s_inv_freq[%d] = {", k->name, half);
  for (int i = 0; i < half; i++) sb_printf(b, "%s%a", i ? ", " : "", inv_freq[i]);
  free(inv_freq);
  sb_printf(b, "};\n");
  params(b, k, false);
  sb_printf(b,
            "  const float *x = (const float *)in0;\n"
            "  float *y = (float *)out;\n"
            "  for (fy_i64 t = blockIdx.x; t < n; t += gridDim.x)\n"
            "    for (int i = threadIdx.x; i < %d; i += blockDim.x) {\n"
            "      const double angle = (double)(pos + t) * %s_inv_freq[i];\n"
            "      const float co = (float)cos(angle), si = (float)sin(angle);\n"
            "      for (int h = 0; h < %d; h++) {\n"
            "        const fy_i64 at = t * %" PRId64 " + h * %d + i;\n"
            "        const float x0 = x[at], x1 = x[at + %d];\n"
            "        y[at] = __fsub_rn(__fmul_rn(x0, co), __fmul_rn(x1, si));\n"
            "        y[at + %d] = __fadd_rn(__fmul_rn(x1, co), __fmul_rn(x0, si));\n"
            "      }\n"
            "    }\n"
            "}\n\n",
            half, k->name, a->n_heads, cols, d, half, half);
}

static void gen_attention(sb_t *b, const kshape_t *k) {
  const fy_node_attrs_t *a = &k->node->attrs;
  const int d = a->head_dim, group = a->n_heads / a->n_kv_heads, warps = (int)k->block / 32;
  const int64_t qc = (int64_t)a->n_heads * d, kvc = (int64_t)a->n_kv_heads * d;
  char scale[48];
  sb_printf(b,
            "/* attention: a block per (token, head). The step's k, v rows are stored at cache rows pos.. (by the\n"
            " * blocks of each kv head's first query head); keys at positions >= pos are read from k, v\n"
            " * themselves, so no block reads a cache row another block of this launch writes. Keys go in\n"
            " * tiles of %d with a running max (one tile when the cache holds at most %d rows); a warp per key\n"
            " * for the scores, %d group(s) of %d threads over the keys for p v, combined in group order. */\n",
            k->tile, k->tile, k->groups, d);
  params(b, k, false);
  sb_printf(b,
            "  const float *q = (const float *)in0, *k = (const float *)in1, *v = (const float *)in2;\n"
            "  float *kc = (float *)in3, *vc = (float *)in4, *o = (float *)out;\n"
            "  __shared__ float qs[%d];\n"
            "  __shared__ float ps[%d];\n"
            "  __shared__ float part[%d];\n"
            "  __shared__ float red[32];\n"
            "  const int h = blockIdx.x, kvh = h / %d;\n"
            "  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;\n"
            "  const int g = tid / %d, i = tid %% %d;\n"
            "  for (fy_i64 t = blockIdx.y; t < n; t += gridDim.y) {\n"
            "    const fy_i64 p = pos + t;\n"
            "    if (h %% %d == 0)\n"
            "      for (int c = tid; c < %d; c += %u) {\n"
            "        kc[p * %" PRId64 " + kvh * %d + c] = k[t * %" PRId64 " + kvh * %d + c];\n"
            "        vc[p * %" PRId64 " + kvh * %d + c] = v[t * %" PRId64 " + kvh * %d + c];\n"
            "      }\n"
            "    for (int c = tid; c < %d; c += %u) qs[c] = q[t * %" PRId64 " + h * %d + c];\n"
            "    __syncthreads();\n"
            "    float m = __int_as_float(0xff800000), l = 0.0f, acc = 0.0f;\n"
            "    for (fy_i64 j0 = 0; j0 <= p; j0 += %d) {\n"
            "      const int nt = (int)(p + 1 - j0 < %d ? p + 1 - j0 : %d);\n"
            "      for (int jj = warp; jj < nt; jj += %d) {\n"
            "        const fy_i64 j = j0 + jj;\n"
            "        const float *kr = j < pos ? kc + j * %" PRId64 " + kvh * %d : k + (j - pos) * %" PRId64 " + kvh * %d;\n"
            "        float s = 0.0f;\n"
            "        for (int c = lane; c < %d; c += 32) s = fmaf(qs[c], kr[c], s);\n"
            "        s = fy_warp_sum(s);\n"
            "        if (lane == 0) ps[jj] = __fmul_rn(s, %s);\n"
            "      }\n"
            "      __syncthreads();\n"
            "      float tm = __int_as_float(0xff800000);\n"
            "      for (int jj = tid; jj < nt; jj += %u) tm = fmaxf(tm, ps[jj]);\n"
            "      tm = fy_block_max(tm, red);\n"
            "      const float mn = fmaxf(m, tm), corr = expf(m - mn);\n"
            "      for (int jj = tid; jj < nt; jj += %u) ps[jj] = expf(ps[jj] - mn);\n"
            "      __syncthreads();\n"
            "      float ts = 0.0f;\n"
            "      for (int jj = tid; jj < nt; jj += %u) ts += ps[jj];\n"
            "      l = __fadd_rn(__fmul_rn(l, corr), fy_block_sum(ts, red));\n"
            "      if (tid < %d) {\n"
            "        float s = __fmul_rn(acc, corr);\n"
            "        for (int jj = g; jj < nt; jj += %d) {\n"
            "          const fy_i64 j = j0 + jj;\n"
            "          const float *vr = j < pos ? vc + j * %" PRId64 " + kvh * %d : v + (j - pos) * %" PRId64 " + kvh * %d;\n"
            "          s = fmaf(ps[jj], vr[i], s);\n"
            "        }\n"
            "        acc = s;\n"
            "      }\n"
            "      m = mn;\n"
            "      __syncthreads();\n"
            "    }\n"
            "    if (tid < %d) part[tid] = acc;\n"
            "    __syncthreads();\n"
            "    for (int c = tid; c < %d; c += %u) {\n"
            "      float s = part[c];\n"
            "      for (int gg = 1; gg < %d; gg++) s += part[gg * %d + c];\n"
            "      o[t * %" PRId64 " + h * %d + c] = __fdiv_rn(s, l);\n"
            "    }\n"
            "    __syncthreads();\n"
            "  }\n"
            "}\n\n",
            d, k->tile, k->groups * d, group, d, d, group, d, k->block, kvc, d, kvc, d, kvc, d, kvc, d, d, k->block, qc,
            d, k->tile, k->tile, k->tile, warps, kvc, d, kvc, d, d,
            fconst(scale, sizeof scale, (float)(1.0 / sqrt((double)d))), k->block, k->block, k->block,
            k->groups * d, k->groups, kvc, d, kvc, d, k->groups * d, d, k->block, k->groups, d, qc, d);
}

/* The same f32 operations, in the same order, as the CPU reference. */
static void eltwise_expr(char *buf, size_t n, bool silu, const char *a, const char *b) {
  if (silu)
    snprintf(buf, n, "__fmul_rn(__fdiv_rn(%s, __fadd_rn(1.0f, expf(-%s))), %s)", a, a, b);
  else
    snprintf(buf, n, "__fadd_rn(%s, %s)", a, b);
}

static void gen_eltwise(sb_t *b, const kshape_t *k) {
  const bool silu = k->node->op == FY_OP_SILU_MUL;
  const int64_t cols = k->cols[2];
  const bool v4 = cols % 4 == 0;
  char e1[128], ex[4][128];
  const char *lanes[4] = {"x", "y", "z", "w"};
  for (int l = 0; l < 4; l++) {
    char a[8], bb[8];
    snprintf(a, sizeof a, "a.%s", lanes[l]);
    snprintf(bb, sizeof bb, "b.%s", lanes[l]);
    eltwise_expr(ex[l], sizeof ex[l], silu, a, bb);
  }
  eltwise_expr(e1, sizeof e1, silu, "a", "b");
  sb_printf(b, "/* %s: y = %s, element by element (in place allowed). */\n", fy_op_name(k->node->op),
            silu ? "a / (1 + exp(-a)) * b" : "a + b");
  params(b, k, false);
  sb_printf(b,
            "  const fy_i64 stride = (fy_i64)gridDim.x * blockDim.x;\n"
            "  (void)pos;\n");
  if (v4)
    sb_printf(b,
              "  if (!(((unsigned long long)in0 | (unsigned long long)in1 | (unsigned long long)out) & 15)) {\n"
              "    for (fy_i64 e = (fy_i64)blockIdx.x * blockDim.x + threadIdx.x; e < n * %" PRId64 "; e += stride) {\n"
              "      const float4 a = ((const float4 *)in0)[e], b = ((const float4 *)in1)[e];\n"
              "      float4 r;\n"
              "      r.x = %s;\n"
              "      r.y = %s;\n"
              "      r.z = %s;\n"
              "      r.w = %s;\n"
              "      ((float4 *)out)[e] = r;\n"
              "    }\n"
              "    return;\n"
              "  }\n",
              cols / 4, ex[0], ex[1], ex[2], ex[3]);
  sb_printf(b,
            "  for (fy_i64 e = (fy_i64)blockIdx.x * blockDim.x + threadIdx.x; e < n * %" PRId64 "; e += stride) {\n"
            "    const float a = ((const float *)in0)[e], b = ((const float *)in1)[e];\n"
            "    ((float *)out)[e] = %s;\n"
            "  }\n"
            "}\n\n",
            cols, e1);
}

static void gen_last_row(sb_t *b, const kshape_t *k) {
  const int64_t cols = k->cols[1];
  sb_printf(b, "/* last_row: y[0] = x[n - 1]. */\n");
  params(b, k, false);
  sb_printf(b,
            "  const fy_i64 i = (fy_i64)blockIdx.x * blockDim.x + threadIdx.x;\n"
            "  (void)pos;\n"
            "  if (i < %" PRId64 ") ((float *)out)[i] = ((const float *)in0)[(n - 1) * %" PRId64 " + i];\n"
            "}\n\n",
            cols, cols);
}

static fy_status_t gen_kernel(sb_t *b, const fy_graph_t *g, int node) {
  kshape_t k;
  FY_TRY(kernel_shape(g, node, &k));
  switch (k.node->op) {
    case FY_OP_EMBED: gen_embed(b, &k); break;
    case FY_OP_RMSNORM: gen_rmsnorm(b, &k); break;
    case FY_OP_MATMUL: gen_matmul(b, &k); break;
    case FY_OP_ROPE: gen_rope(b, &k); break;
    case FY_OP_ATTENTION: gen_attention(b, &k); break;
    case FY_OP_SILU_MUL:
    case FY_OP_ADD: gen_eltwise(b, &k); break;
    case FY_OP_LAST_ROW: gen_last_row(b, &k); break;
    case FY_OP_COUNT: break;
  }
  return NULL;
}

/* The first node of each distinct kernel, in node order. */
static fy_status_t distinct_nodes(const fy_graph_t *g, int **out_nodes, int *out_count) {
  int *nodes = malloc(sizeof(int) * ((size_t)g->n_nodes + 1));
  char(*names)[FY_KERNEL_NAME_MAX] = malloc(sizeof *names * ((size_t)g->n_nodes + 1));
  if (!nodes || !names) {
    free(nodes);
    free(names);
    return fy_status_make(FY_RESOURCE_EXHAUSTED, "cuda: out of memory");
  }
  int count = 0;
  for (int i = 0; i < g->n_nodes; i++) {
    fy_kernel_name(g, i, names[count], sizeof names[count]);
    bool seen = false;
    for (int j = 0; j < count && !seen; j++) seen = !strcmp(names[j], names[count]);
    if (!seen) nodes[count++] = i;
  }
  free(names);
  *out_nodes = nodes;
  *out_count = count;
  return NULL;
}

fy_status_t fy_cuda_source(const fy_graph_t *g, int node, char **out_source) {
  if (!g || !out_source) return fy_status_make(FY_INVALID_ARGUMENT, "cuda: no graph");
  sb_t b = {0};
  sb_printf(&b, "%s\n", prelude);
  fy_status_t err = NULL;
  if (node >= 0) {
    err = gen_kernel(&b, g, node);
  } else {
    int *nodes = NULL, count = 0;
    err = distinct_nodes(g, &nodes, &count);
    for (int i = 0; !err && i < count; i++) err = gen_kernel(&b, g, nodes[i]);
    free(nodes);
  }
  if (!err && b.oom) err = fy_status_make(FY_RESOURCE_EXHAUSTED, "cuda: out of memory for the source");
  if (err) {
    free(b.s);
    return err;
  }
  *out_source = b.s;
  return NULL;
}

fy_status_t fy_cuda_entries(const fy_graph_t *g, char ***out_names, int *out_count) {
  if (!g || !out_names || !out_count) return fy_status_make(FY_INVALID_ARGUMENT, "cuda: no graph");
  int *nodes = NULL, count = 0;
  FY_TRY(distinct_nodes(g, &nodes, &count));
  char **names = calloc((size_t)count + 1, sizeof *names);
  fy_status_t err = names ? NULL : fy_status_make(FY_RESOURCE_EXHAUSTED, "cuda: out of memory");
  for (int i = 0; !err && i < count; i++) {
    kshape_t k;
    err = kernel_shape(g, nodes[i], &k);
    if (!err && !(names[i] = strdup(k.name))) err = fy_status_make(FY_RESOURCE_EXHAUSTED, "cuda: out of memory");
  }
  free(nodes);
  if (err) {
    fy_cuda_entries_free(names, count);
    return err;
  }
  *out_names = names;
  *out_count = count;
  return NULL;
}

void fy_cuda_entries_free(char **names, int count) {
  for (int i = 0; names && i < count; i++) free(names[i]);
  free(names);
}
