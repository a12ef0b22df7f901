/* One generated CUDA kernel against the CPU reference (fy_cpu_run_node), on
 * seeded random inputs: shared by tests/test_cuda_codegen.c (kernels run by
 * the CPU emulator) and tests/test_cuda_gpu.c (kernels run on a GPU).
 *
 * A runner executes node's kernel on host buffers, in place: it copies every
 * argument to its device, launches, and copies every argument back (the
 * attention kernel writes its caches). Two arguments with the same host
 * pointer are one buffer (in-place ops).
 *
 * Tolerances (docs/cuda.md): MATMUL |d| <= 1e-5 sum|x_k w_k| + 1e-6 (the CPU
 * oracle's own dot bound); ATTENTION |d| <= 2e-5 max|v| + 1e-6; RMSNORM,
 * ROPE, SILU_MUL |d| <= 1e-5 |y| + 1e-6; EMBED, ADD, LAST_ROW exact. The
 * cache rows attention stores must be exact copies. */
#ifndef FERRY_TESTS_CUDA_KERNEL_CHECK_H
#define FERRY_TESTS_CUDA_KERNEL_CHECK_H

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/cpu.h"
#include "codegen/cuda.h"
#include "codegen/kernel_name.h"
#include "ir/ir.h"
#include "schedules/plan.h"
#include "schedules/schedule.h"
#include "support/dtype.h"

typedef struct kc_runner {
  void *ctx;
  fy_status_t (*run)(void *ctx, const fy_graph_t *g, int node, void **args, const size_t *sizes, int n_args,
                     int64_t n, int64_t pos);
} kc_runner_t;

typedef struct kc_options {
  int64_t n, pos;
  uint64_t seed;
  size_t misalign; /* bytes added to every weight's address (a multiple of its dtype size) */
  bool in_place;   /* ADD, SILU_MUL, ROPE: the output is input 0 */
  void *keep;      /* when set: receives the runner's output (all of its rows) */
} kc_options_t;

/* Kernels are shared by every node of one name: true for the first node of
 * each name (recorded in seen, which holds up to 256 names). */
typedef struct {
  char names[256][FY_KERNEL_NAME_MAX];
  int n;
} kc_seen_t;

static bool kc_first_of_kernel(const fy_graph_t *g, int node, kc_seen_t *seen) {
  char name[FY_KERNEL_NAME_MAX];
  fy_kernel_name(g, node, name, sizeof name);
  for (int j = 0; j < seen->n; j++)
    if (!strcmp(seen->names[j], name)) return false;
  if (seen->n == 256) return false;
  memcpy(seen->names[seen->n++], name, sizeof name);
  return true;
}

static uint64_t kc_rand(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return *s >> 11;
}
static float kc_uniform(uint64_t *s) { return (float)((double)kc_rand(s) / (double)(1ull << 53) * 2.0 - 1.0); }

typedef struct {
  int n_args;
  fy_cpu_arg_t cpu[FY_MAX_NODE_INPUTS + 1]; /* the oracle's buffers */
  void *dev[FY_MAX_NODE_INPUTS + 1];        /* the runner's (maybe misaligned) */
  void *dev_block[FY_MAX_NODE_INPUTS + 1];  /* what to free */
  size_t bytes[FY_MAX_NODE_INPUTS + 1];
} kc_bufs_t;

static void kc_free(kc_bufs_t *b) {
  for (int k = 0; k < b->n_args; k++) {
    free(b->cpu[k].data);
    free(b->dev_block[k]);
  }
}

/* Fills both copies of every argument with the same seeded values. */
static bool kc_make(const fy_graph_t *g, int node, const kc_options_t *o, kc_bufs_t *b) {
  const fy_node_t *nd = &g->nodes[node];
  memset(b, 0, sizeof *b);
  b->n_args = nd->n_inputs + 1;
  uint64_t seed = o->seed * 2654435761u + (uint64_t)node;
  for (int k = 0; k < b->n_args; k++) {
    bool out = k == nd->n_inputs;
    const fy_value_t *v = &g->values[out ? nd->output : nd->inputs[k]];
    fy_cpu_arg_t a = fy_cpu_arg_for_value(v, NULL);
    size_t es = fy_dtype_size(a.dtype), count = (size_t)(a.rows * a.cols);
    size_t bytes = count * es, shift = v->kind == FY_VALUE_WEIGHT ? o->misalign : 0;
    b->bytes[k] = bytes;
    a.data = malloc(bytes);
    b->cpu[k] = a;
    b->dev_block[k] = aligned_alloc(256, (bytes + shift + 255) / 256 * 256);
    if (!a.data || !b->dev_block[k]) return false;
    b->dev[k] = (char *)b->dev_block[k] + shift;
    for (size_t i = 0; i < count; i++) {
      if (a.dtype == FY_DTYPE_I32) {
        int64_t vocab = g->values[nd->inputs[1]].shape[0];
        ((int32_t *)a.data)[i] = (int32_t)(kc_rand(&seed) % (uint64_t)vocab);
      } else {
        float f = out ? NAN : kc_uniform(&seed);
        if (a.dtype == FY_DTYPE_F32) ((float *)a.data)[i] = f;
        else if (a.dtype == FY_DTYPE_BF16) ((uint16_t *)a.data)[i] = fy_f32_to_bf16(f);
        else ((uint16_t *)a.data)[i] = fy_f32_to_f16(f);
      }
    }
    memcpy(b->dev[k], a.data, bytes);
  }
  return true;
}

/* Largest of |got - want| / tol over the output's first rows. */
static double kc_compare(const fy_graph_t *g, int node, const kc_options_t *o, const kc_bufs_t *b, const float *want,
                         const float *got, char *where, size_t wn) {
  const fy_node_t *nd = &g->nodes[node];
  int64_t rows = nd->op == FY_OP_LAST_ROW ? 1 : o->n, cols = b->cpu[nd->n_inputs].cols;
  double worst = 0.0;
  for (int64_t t = 0; t < rows; t++)
    for (int64_t j = 0; j < cols; j++) {
      float w = want[t * cols + j], x = got[t * cols + j];
      double tol = 0.0;
      if (nd->op == FY_OP_MATMUL) {
        const fy_cpu_arg_t *xa = &b->cpu[0], *wa = &b->cpu[1];
        double s = 0.0;
        for (int64_t k = 0; k < xa->cols; k++)
          s += fabs((double)((const float *)xa->data)[t * xa->cols + k] *
                    (double)fy_load_f32(wa->data, wa->dtype, (size_t)(j * wa->cols + k)));
        tol = 1e-5 * s + 1e-6 + 1e-6 * fabs(w);
      } else if (nd->op == FY_OP_ATTENTION) {
        tol = 2e-5 + 1e-6; /* values are in [-1, 1] */
      } else if (nd->op == FY_OP_RMSNORM || nd->op == FY_OP_ROPE || nd->op == FY_OP_SILU_MUL) {
        tol = 1e-5 * fabs(w) + 1e-6;
      }
      double d = fabs((double)x - (double)w);
      double r = d == 0.0 ? 0.0 : tol == 0.0 || !isfinite(d) ? INFINITY : d / tol;
      if (!(r <= worst)) {
        worst = r;
        snprintf(where, wn, "row %lld col %lld: got %.9g, want %.9g", (long long)t, (long long)j, x, w);
      }
    }
  return worst;
}

/* Runs node on the runner and on the CPU; returns the worst error / tolerance (> 1 fails), or a negative
 * value when something could not run (the message in report). */
static double kc_check_node(const fy_graph_t *g, int node, const kc_options_t *o, const kc_runner_t *r, char *report,
                            size_t rn) {
  const fy_node_t *nd = &g->nodes[node];
  const int out = nd->n_inputs;
  kc_bufs_t b;
  report[0] = '\0';
  if (!kc_make(g, node, o, &b)) {
    kc_free(&b);
    snprintf(report, rn, "out of memory");
    return -1.0;
  }
  bool in_place = o->in_place && (nd->op == FY_OP_ADD || nd->op == FY_OP_SILU_MUL || nd->op == FY_OP_ROPE);
  void *args[FY_MAX_NODE_INPUTS + 1];
  for (int k = 0; k < b.n_args; k++) args[k] = b.dev[k];
  fy_cpu_arg_t cpu_out = b.cpu[out];
  if (in_place) args[out] = args[0], cpu_out.data = b.cpu[0].data;
  double worst = -1.0;
  fy_status_t s = fy_cpu_run_node(nd->op, &nd->attrs, b.cpu, nd->n_inputs, &cpu_out, o->n, o->pos, NULL);
  if (s) {
    snprintf(report, rn, "cpu: %s", fy_status_message(s));
    fy_status_free(s);
  } else if ((s = r->run(r->ctx, g, node, args, b.bytes, b.n_args, o->n, o->pos))) {
    snprintf(report, rn, "kernel: %s", fy_status_message(s));
    fy_status_free(s);
  } else {
    char where[160] = "";
    worst = kc_compare(g, node, o, &b, cpu_out.data, args[out], where, sizeof where);
    if (nd->op == FY_OP_ATTENTION)
      for (int c = 3; c <= 4; c++) /* every cache row: the stored ones are copies, the others untouched */
        if (memcmp(b.cpu[c].data, b.dev[c], b.bytes[c])) {
          worst = INFINITY;
          snprintf(where, sizeof where, "the %s cache differs from the CPU's", c == 3 ? "k" : "v");
        }
    snprintf(report, rn, "%s", where);
    if (o->keep) memcpy(o->keep, args[out], b.bytes[out]);
  }
  kc_free(&b);
  return worst;
}

/* Shapes the presets do not have: reductions of 67 (a partial last chunk, rows not 16-byte aligned),
 * 37, 60 and 20 weight rows (partial warps and blocks), 5 tokens (a partial token tile), f32, f16 and bf16
 * weights with f16 biases, head_dim 10 (fewer lanes than a warp), GQA 3:1, llama3 RoPE scaling,
 * elementwise rows of 67 (no 16-byte path). */
static fy_status_t kc_odd_graph(fy_graph_t **out_graph) {
  fy_graph_t *g = NULL;
  FY_TRY(fy_graph_create(&g));
  g->context = 9;
  enum { T = 5, H = 67 };
  int stage, ids, table, x, xn, nw, wq, bq, wk, wv, q, k, v, qr, kr, kc, vc, o, sm, a, last, emb;
  fy_status_t s = fy_graph_begin_stage(g, "prefill", T, 1, &stage);
#define VAL(id, nm, kind_, dt, pt, rows, cols)                                                                   \
  if (!s) {                                                                                                       \
    fy_value_t val = {.name = nm, .kind = kind_, .dtype = dt, .rank = (cols) ? 2 : 1, .shape = {rows, cols},   \
                      .per_token = pt, .stage = pt ? stage : -1, .layer = -1, .file = -1};                       \
    s = fy_graph_add_value(g, &val, &id);                                                                        \
  }
  VAL(ids, "ids", FY_VALUE_INPUT, FY_DTYPE_I32, true, T, 0);
  VAL(table, "table", FY_VALUE_WEIGHT, FY_DTYPE_BF16, false, 37, H);
  VAL(emb, "emb", FY_VALUE_ACTIVATION, FY_DTYPE_F32, true, T, H);
  VAL(x, "x", FY_VALUE_ACTIVATION, FY_DTYPE_F32, true, T, H);
  VAL(nw, "norm", FY_VALUE_WEIGHT, FY_DTYPE_F16, false, H, 0);
  VAL(xn, "xn", FY_VALUE_ACTIVATION, FY_DTYPE_F32, true, T, H);
  VAL(wq, "wq", FY_VALUE_WEIGHT, FY_DTYPE_BF16, false, 60, H);
  VAL(bq, "bq", FY_VALUE_WEIGHT, FY_DTYPE_F16, false, 60, 0);
  VAL(wk, "wk", FY_VALUE_WEIGHT, FY_DTYPE_F32, false, 20, H);
  VAL(wv, "wv", FY_VALUE_WEIGHT, FY_DTYPE_F16, false, 20, H);
  VAL(q, "q", FY_VALUE_ACTIVATION, FY_DTYPE_F32, true, T, 60);
  VAL(k, "k", FY_VALUE_ACTIVATION, FY_DTYPE_F32, true, T, 20);
  VAL(v, "v", FY_VALUE_ACTIVATION, FY_DTYPE_F32, true, T, 20);
  VAL(qr, "qr", FY_VALUE_ACTIVATION, FY_DTYPE_F32, true, T, 60);
  VAL(kr, "kr", FY_VALUE_ACTIVATION, FY_DTYPE_F32, true, T, 20);
  VAL(kc, "kc", FY_VALUE_STATE, FY_DTYPE_F32, false, 9, 20);
  VAL(vc, "vc", FY_VALUE_STATE, FY_DTYPE_F32, false, 9, 20);
  VAL(o, "o", FY_VALUE_ACTIVATION, FY_DTYPE_F32, true, T, 60);
  VAL(sm, "sm", FY_VALUE_ACTIVATION, FY_DTYPE_F32, true, T, 60);
  VAL(a, "a", FY_VALUE_ACTIVATION, FY_DTYPE_F32, true, T, H);
  VAL(last, "last", FY_VALUE_ACTIVATION, FY_DTYPE_F32, false, 1, H);
#undef VAL
  fy_rope_t rope = {.theta = 10000.0, .scaling = FY_ROPE_SCALING_LLAMA3, .factor = 8.0, .low_freq_factor = 1.0,
                    .high_freq_factor = 4.0, .original_max_position = 16};
  struct {
    fy_op_t op;
    int in[5], n_in, out;
    fy_node_attrs_t attrs;
  } nodes[] = {
      {FY_OP_EMBED, {ids, table}, 2, emb, {.eps = 0}},
      {FY_OP_ADD, {emb, emb}, 2, x, {.eps = 0}},
      {FY_OP_RMSNORM, {x, nw}, 2, xn, {.eps = 1e-5f}},
      {FY_OP_MATMUL, {xn, wq, bq}, 3, q, {.eps = 0}},
      {FY_OP_MATMUL, {xn, wk}, 2, k, {.eps = 0}},
      {FY_OP_MATMUL, {xn, wv}, 2, v, {.eps = 0}},
      {FY_OP_ROPE, {q}, 1, qr, {.n_heads = 6, .head_dim = 10, .rope = rope}},
      {FY_OP_ROPE, {k}, 1, kr, {.n_heads = 2, .head_dim = 10, .rope = rope}},
      {FY_OP_ATTENTION, {qr, kr, v, kc, vc}, 5, o, {.n_heads = 6, .n_kv_heads = 2, .head_dim = 10}},
      {FY_OP_SILU_MUL, {o, qr}, 2, sm, {.eps = 0}},
      {FY_OP_ADD, {x, xn}, 2, a, {.eps = 0}},
      {FY_OP_LAST_ROW, {a}, 1, last, {.eps = 0}},
  };
  for (size_t i = 0; !s && i < sizeof nodes / sizeof *nodes; i++) {
    fy_node_t n = {.op = nodes[i].op, .name = fy_op_name(nodes[i].op), .n_inputs = nodes[i].n_in,
                   .output = nodes[i].out, .layer = -1, .attrs = nodes[i].attrs};
    memcpy(n.inputs, nodes[i].in, sizeof n.inputs[0] * (size_t)nodes[i].n_in);
    s = fy_graph_add_node(g, &n, NULL);
  }
  if (s) {
    fy_graph_destroy(g);
    return s;
  }
  *out_graph = g;
  return NULL;
}

/* Writes schedule s of g as a plan file carrying the given kernel tables (entries: g's kernel names),
 * with the weight files' fingerprints. */
static fy_status_t kc_write_plan(const fy_graph_t *g, const fy_schedule_t *s, const fy_plan_kernel_t *kernels,
                                 int n_kernels, const char *path) {
  fy_file_fingerprint_t prints[8] = {{0}};
  for (int f = 0; f < g->n_files && f < 8; f++) FY_TRY(fy_fingerprint_file(g->files[f].path, &prints[f]));
  char **entries = NULL;
  int n_entries = 0;
  FY_TRY(fy_cuda_entries(g, &entries, &n_entries));
  fy_plan_kernel_t k[8];
  for (int i = 0; i < n_kernels && i < 8; i++) {
    k[i] = kernels[i];
    k[i].entries = (const char *const *)entries;
    k[i].n_entries = n_entries;
  }
  fy_plan_meta_t meta = {.compiler_version = "test", .file_fingerprints = prints, .kernels = k,
                         .n_kernels = n_kernels < 8 ? n_kernels : 8};
  fy_status_t st = fy_plan_write(path, s, &meta);
  fy_cuda_entries_free(entries, n_entries);
  return st;
}

#endif
