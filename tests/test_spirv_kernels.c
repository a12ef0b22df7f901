/* Every op's SPIR-V kernel against the CPU reference (fy_cpu_run_node), run
 * on a Vulkan device (lavapipe in CI) under the Khronos validation layer:
 *  - shapes that cross workgroup boundaries (columns and reductions not a
 *    multiple of 64, weight rows not a multiple of the matmul's 4, attention
 *    contexts over one 64-key block), n_tokens below the stage's rows, pos > 0,
 *    GQA, llama3 RoPE scaling, nodes after LAST_ROW, bias;
 *  - f32, f16 and bf16 weights, 16-bit weights at offsets that are 2 mod 4
 *    and arguments at offsets the device cannot bind directly;
 *  - a binding split: MATMUL and EMBED with a 2 KiB maxStorageBufferRange;
 *  - token ids outside the vocabulary and a full KV cache raise the error bits.
 * Every module passes the in-process validator and the spirv-val binary
 * (written to $FERRY_TMP); the validation layer must report no error.
 *
 * Tolerances. Weights are widened to f32 exactly on both sides, so the dtype
 * does not change the bound: the only differences are f32 rounding in a
 * different order (the GPU reduces a dot product over 64 invocations in a
 * tree, the CPU in 4 x 8 lanes) and the GPU's exp / cos / sin. A dot of
 * length K in any order is within K * 2^-24 * sum|x_k w_k| of the exact
 * value; we allow 1e-5 * sum|x_k w_k| + 1e-6 (K <= 300 here, so 2x margin
 * at worst and ~100x typically). RMSNORM, ROPE, SILU_MUL and attention:
 * 1e-5 of the magnitude of the terms that make each output (|x|, |x0|+|x1|,
 * |g u|, max |v|) + 1e-6. EMBED, LAST_ROW and ADD must be exact. The largest
 * error seen per op is printed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "codegen/cpu.h"
#include "codegen/kernel_name.h"
#include "codegen/spirv.h"
#include "runtime/vulkan.h"
#include "support/file.h"
#include "tests/check.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float rnd(void) { /* uniform in [-1, 1) */
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* ---- the device ---- */

typedef struct gpu {
  fy_vk_t *vk;
  VkQueryPool stamps; /* VK_NULL_HANDLE without timestamps */
  double kernel_ms;   /* of the last run_gpu */
  VkCommandPool pool;
  VkCommandBuffer cb;
  VkSemaphore done;
  uint64_t ticks;
  fy_vk_buffer_t params;
  const char *tmp;
  bool spirv_val; /* the binary is installed */
} gpu_t;

static gpu_t G;

/* ---- single-node graphs ---- */

static fy_graph_t *graph;
static int n_args;
static int arg_value[FY_SPIRV_MAX_ARGS];

static void graph_begin(int64_t max_tokens, int64_t context) {
  fy_graph_destroy(graph);
  graph = NULL;
  if (!ok(fy_graph_create(&graph), "graph")) exit(1);
  graph->context = context;
  ok(fy_graph_begin_stage(graph, "prefill", max_tokens, 1, NULL), "stage");
  n_args = 0;
}

/* rank 2 [rows, cols]; per_token rank-1 values are [rows] (ids); vectors are rank 1 [cols]. */
static int value(const char *name, fy_dtype_t dtype, fy_value_kind_t kind, int64_t rows, int64_t cols,
                 bool per_token) {
  fy_value_t v = {.name = name, .dtype = dtype, .kind = kind, .per_token = per_token, .stage = 0, .layer = -1,
                  .file = -1};
  if (cols == 0) {
    v.rank = 1, v.shape[0] = rows;
  } else if (rows == 0) {
    v.rank = 1, v.shape[0] = cols;
  } else {
    v.rank = 2, v.shape[0] = rows, v.shape[1] = cols;
  }
  int id = -1;
  ok(fy_graph_add_value(graph, &v, &id), name);
  arg_value[n_args++] = id;
  return id;
}

static int node(fy_op_t op, const fy_node_attrs_t *attrs) {
  fy_node_t n = {.op = op, .name = fy_op_name(op), .n_inputs = n_args - 1, .output = arg_value[n_args - 1],
                 .layer = -1};
  for (int i = 0; i < n_args - 1; i++) n.inputs[i] = arg_value[i];
  if (attrs) n.attrs = *attrs;
  int id = -1;
  ok(fy_graph_add_node(graph, &n, &id), "node");
  return id;
}

/* ---- host data ---- */

typedef struct host {
  void *cpu[FY_SPIRV_MAX_ARGS], *gpu[FY_SPIRV_MAX_ARGS];
  uint64_t bytes[FY_SPIRV_MAX_ARGS];
} host_t;

static void fill(void *p, fy_dtype_t dtype, int64_t n, int32_t id_limit) {
  for (int64_t i = 0; i < n; i++) {
    float f = rnd();
    if (dtype == FY_DTYPE_I32) ((int32_t *)p)[i] = (int32_t)((f + 1.0f) * 0.5f * (float)id_limit) % id_limit;
    else if (dtype == FY_DTYPE_F16) ((uint16_t *)p)[i] = fy_f32_to_f16(f);
    else if (dtype == FY_DTYPE_BF16) ((uint16_t *)p)[i] = fy_f32_to_bf16(f);
    else ((float *)p)[i] = f;
  }
}

/* Inputs random (ids below id_limit), outputs poisoned; the same on both sides. */
static void host_init(host_t *h, int32_t id_limit) {
  memset(h, 0, sizeof *h);
  for (int k = 0; k < n_args; k++) {
    const fy_value_t *v = &graph->values[arg_value[k]];
    h->bytes[k] = (uint64_t)fy_value_elements(v) * fy_dtype_size(v->dtype);
    h->cpu[k] = malloc(h->bytes[k]);
    h->gpu[k] = malloc(h->bytes[k]);
    if (k < n_args - 1) fill(h->cpu[k], v->dtype, fy_value_elements(v), id_limit);
    else memset(h->cpu[k], 0x7f, h->bytes[k]);
    memcpy(h->gpu[k], h->cpu[k], h->bytes[k]);
  }
}

static void host_free(host_t *h) {
  for (int k = 0; k < n_args; k++) free(h->cpu[k]), free(h->gpu[k]);
}

static bool run_cpu(int nd, host_t *h, int64_t n, int64_t pos) {
  fy_cpu_arg_t a[FY_SPIRV_MAX_ARGS];
  for (int k = 0; k < n_args; k++) a[k] = fy_cpu_arg_for_value(&graph->values[arg_value[k]], h->cpu[k]);
  const fy_node_t *nn = &graph->nodes[nd];
  return ok(fy_cpu_run_node(nn->op, &nn->attrs, a, n_args - 1, &a[n_args - 1], fy_cpu_node_rows(graph, nn, n), pos,
                            NULL),
            "cpu reference");
}

/* ---- the kernel on the device ---- */

static char validated[256][128];
static int n_validated;

/* Writes the module to $FERRY_TMP and runs spirv-val on it, once per kernel. */
static void spirv_val(const fy_spirv_kernel_t *k) {
  for (int i = 0; i < n_validated; i++)
    if (!strcmp(validated[i], k->name)) return;
  if (n_validated < 256) snprintf(validated[n_validated++], sizeof validated[0], "%s", k->name);
  char path[1024], cmd[1200];
  snprintf(path, sizeof path, "%s/%s.spv", G.tmp, k->name);
  if (!ok(fy_file_write_atomic_bytes(path, k->code, k->n_words * 4), "write .spv") || !G.spirv_val) return;
  snprintf(cmd, sizeof cmd, "spirv-val --target-env vulkan1.1 '%s'", path);
  CHECK(system(cmd) == 0, "spirv-val rejects %s", path);
}

/* Lays the arguments out in one device buffer at awkward offsets: each
 * starts `skew` bytes past a multiple of 64 (2 for 16-bit data, 4 or 12 for
 * 32-bit), so the binder must align down and pass the rest as base. */
static uint64_t layout(const host_t *h, uint64_t *offsets) {
  uint64_t at = 0;
  for (int k = 0; k < n_args; k++) {
    size_t es = fy_dtype_size(graph->values[arg_value[k]].dtype);
    at = (at + 63) & ~(uint64_t)63;
    at += es == 2 ? 2 : (k % 2 ? 12 : 4);
    offsets[k] = at;
    at += h->bytes[k];
  }
  return (at + 3) & ~(uint64_t)3;
}

static bool run_gpu(int nd, host_t *h, int64_t n, int64_t pos, uint64_t max_range, uint32_t *out_error,
                    int *out_parts) {
  fy_vk_t *vk = G.vk;
  fy_spirv_kernel_t k = {0};
  if (!ok(fy_spirv_compile_node(graph, nd, &k), "compile")) return false;
  spirv_val(&k);
  fy_spirv_args_t args = {0};
  uint64_t size = layout(h, args.offset);
  for (int i = 0; i < n_args; i++) args.buffer_bytes[i] = size;
  fy_vk_buffer_t dev = {0}, stage = {0};
  fy_vk_kernel_t kern = {0};
  fy_vk_launch_t launch = {0};
  VkDescriptorPool pool = VK_NULL_HANDLE;
  VkBuffer bufs[FY_SPIRV_MAX_ARGS];
  for (int i = 0; i < n_args; i++) bufs[i] = VK_NULL_HANDLE;
  bool good = ok(fy_vk_buffer_create(vk, size, false, &dev), "device buffer") &&
              ok(fy_vk_buffer_create(vk, size, true, &stage), "staging buffer") &&
              ok(fy_vk_kernel_create(vk, &k, &kern), "pipeline") && ok(fy_vk_pool_create(vk, 64, &pool), "pool");
  for (int i = 0; i < n_args; i++) bufs[i] = dev.buffer;
  if (good) {
    /* An artificial maxStorageBufferRange, to split without 128 MiB buffers. */
    uint64_t device_range = vk->max_range;
    if (max_range) vk->max_range = max_range;
    good = ok(fy_vk_launch_prepare(vk, pool, graph, nd, &kern, G.params.buffer, bufs, &args, &launch), "bind");
    vk->max_range = device_range;
    if (good) *out_parts = launch.n_parts;
  }
  if (good) {
    for (int i = 0; i < n_args; i++) memcpy((uint8_t *)stage.map + args.offset[i], h->gpu[i], h->bytes[i]);
    fy_spirv_params_t params = {(uint32_t)n, (uint32_t)pos, 0, 0};
    memcpy(G.params.map, &params, sizeof params);
    VkBufferCopy all = {0, 0, size};
    good = ok(fy_vk_begin(vk, G.cb, true), "begin");
    if (good) {
      if (G.stamps) fy_vk_timestamps_reset(vk, G.cb, G.stamps, 2);
      vk->fn.vkCmdCopyBuffer(G.cb, stage.buffer, dev.buffer, 1, &all);
      fy_vk_barrier_all(vk, G.cb);
      if (G.stamps) fy_vk_timestamp(vk, G.cb, G.stamps, 0);
      fy_vk_launch_record(vk, G.cb, &launch);
      if (G.stamps) fy_vk_timestamp(vk, G.cb, G.stamps, 1);
      fy_vk_barrier_all(vk, G.cb);
      vk->fn.vkCmdCopyBuffer(G.cb, dev.buffer, stage.buffer, 1, &all);
      fy_vk_barrier_all(vk, G.cb);
      good = ok(fy_vk_check(vk->fn.vkEndCommandBuffer(G.cb), "end"), "end") &&
             ok(fy_vk_submit(vk, vk->compute_queue,
                             &(fy_vk_batch_t){.cbs = &G.cb, .n_cbs = 1, .signals = &G.done,
                                              .signal_values = &(uint64_t){++G.ticks}, .n_signals = 1}),
                "submit") &&
             ok(fy_vk_timeline_wait(vk, G.done, G.ticks, 60ull * 1000000000ull), "wait");
    }
    double ns[2] = {0, 0};
    if (good && G.stamps && ok(fy_vk_timestamps_read(vk, G.stamps, 2, ns), "timestamps"))
      G.kernel_ms = (ns[1] - ns[0]) * 1e-6;
    if (good) {
      for (int i = 0; i < n_args; i++) memcpy(h->gpu[i], (uint8_t *)stage.map + args.offset[i], h->bytes[i]);
      memcpy(&params, G.params.map, sizeof params);
      *out_error = params.error;
    }
  }
  fy_vk_launch_free(&launch);
  if (pool) vk->fn.vkDestroyDescriptorPool(vk->device, pool, NULL);
  fy_vk_kernel_destroy(vk, &kern);
  fy_vk_buffer_destroy(vk, &stage);
  fy_vk_buffer_destroy(vk, &dev);
  fy_spirv_kernel_free(&k);
  return good;
}

/* ---- comparison ---- */

typedef struct worst {
  const char *op;
  double err, rel; /* the largest error and its ratio to the tolerance */
} worst_t;

static worst_t worst[16];
static int n_worst;

static void note(const char *op, double err, double tol) {
  int i = 0;
  while (i < n_worst && strcmp(worst[i].op, op)) i++;
  if (i == n_worst) worst[n_worst++] = (worst_t){op, 0, 0};
  if (err > worst[i].err) worst[i].err = err;
  if (tol > 0 && err / tol > worst[i].rel) worst[i].rel = err / tol;
}

/* Output element i: got vs want within tol (NaN compares by presence). */
static bool near(const char *what, int64_t i, float got, float want, double tol) {
  bool good = isnan(want) ? isnan(got) : fabs((double)got - (double)want) <= tol;
  if (!isnan(want)) note(what, fabs((double)got - (double)want), tol);
  if (!good) {
    CHECK(false, "%s element %lld: got %.9g, want %.9g (tolerance %.3g)", what, (long long)i, got, want, tol);
  }
  return good;
}

static float at(const void *p, fy_dtype_t dt, int64_t i) { return fy_load_f32(p, dt, (size_t)i); }

/* ---- cases ---- */

static const fy_dtype_t dtypes[3] = {FY_DTYPE_F32, FY_DTYPE_F16, FY_DTYPE_BF16};

static void run_pair(int nd, host_t *h, int64_t n, int64_t pos, uint64_t max_range, uint32_t *err, int *parts) {
  *err = 0, *parts = 0;
  if (!run_cpu(nd, h, n, pos)) return;
  run_gpu(nd, h, n, pos, max_range, err, parts);
}

static void test_embed(fy_dtype_t dt, int64_t hid, uint64_t max_range) {
  int64_t vocab = 300, rows = 7, n = 5;
  graph_begin(rows, 16);
  value("ids", FY_DTYPE_I32, FY_VALUE_INPUT, rows, 0, true);
  value("table", dt, FY_VALUE_WEIGHT, vocab, hid, false);
  value("x", FY_DTYPE_F32, FY_VALUE_ACTIVATION, rows, hid, true);
  int nd = node(FY_OP_EMBED, NULL);
  host_t h;
  host_init(&h, (int32_t)vocab);
  ((int32_t *)h.cpu[0])[1] = ((int32_t *)h.gpu[0])[1] = (int32_t)vocab - 1;
  uint32_t err;
  int parts;
  run_pair(nd, &h, n, 0, max_range, &err, &parts);
  CHECK(!max_range || parts > 5, "embed: %d parts under a %llu-byte range", parts, (unsigned long long)max_range);
  CHECK(err == 0, "embed: error bits %u", err);
  for (int64_t i = 0; i < n * hid; i++)
    near("embed", i, ((float *)h.gpu[2])[i], ((float *)h.cpu[2])[i], 0.0);
  /* An id outside the vocabulary: NaN and the error bit. */
  ((int32_t *)h.gpu[0])[2] = (int32_t)vocab, ((int32_t *)h.gpu[0])[3] = -1;
  run_gpu(nd, &h, n, 0, max_range, &err, &parts);
  CHECK(err == FY_SPIRV_ERROR_TOKEN, "embed: an id outside the vocabulary gives error bits %u", err);
  CHECK(isnan(((float *)h.gpu[2])[2 * hid]) && isnan(((float *)h.gpu[2])[3 * hid + 7]), "embed: no NaN for a bad id");
  host_free(&h);
}

static void test_rmsnorm(fy_dtype_t dt, int64_t hid, bool single_row) {
  int64_t rows = single_row ? 1 : 5, n = single_row ? 1 : 3;
  graph_begin(5, 16);
  value("x", FY_DTYPE_F32, FY_VALUE_ACTIVATION, rows, hid, !single_row);
  value("w", dt, FY_VALUE_WEIGHT, 0, hid, false);
  value("y", FY_DTYPE_F32, FY_VALUE_ACTIVATION, rows, hid, !single_row);
  fy_node_attrs_t a = {.eps = 1e-5f};
  int nd = node(FY_OP_RMSNORM, &a);
  host_t h;
  host_init(&h, 1);
  uint32_t err;
  int parts;
  /* Rows after LAST_ROW ignore n_tokens: pass more to show it. */
  run_pair(nd, &h, single_row ? 4 : n, 0, 0, &err, &parts);
  for (int64_t i = 0; i < n * hid; i++) {
    float want = ((float *)h.cpu[2])[i];
    near("rmsnorm", i, ((float *)h.gpu[2])[i], want, 1e-5 * fabs(want) + 1e-6);
  }
  host_free(&h);
}

static void test_matmul(fy_dtype_t dt, int64_t k, int64_t nout, int bias, uint64_t max_range) {
  int64_t rows = 4, n = 3;
  graph_begin(rows, 16);
  value("x", FY_DTYPE_F32, FY_VALUE_ACTIVATION, rows, k, true);
  value("w", dt, FY_VALUE_WEIGHT, nout, k, false);
  if (bias) value("b", bias == 2 ? FY_DTYPE_BF16 : FY_DTYPE_F32, FY_VALUE_WEIGHT, 0, nout, false);
  value("y", FY_DTYPE_F32, FY_VALUE_ACTIVATION, rows, nout, true);
  int nd = node(FY_OP_MATMUL, NULL);
  host_t h;
  host_init(&h, 1);
  uint32_t err;
  int parts;
  run_pair(nd, &h, n, 0, max_range, &err, &parts);
  CHECK(!max_range || parts > 3, "matmul: %d parts under a %llu-byte range", parts, (unsigned long long)max_range);
  int y = n_args - 1;
  for (int64_t t = 0; t < n; t++)
    for (int64_t j = 0; j < nout; j++) {
      double mag = 0;
      for (int64_t i = 0; i < k; i++) mag += fabs((double)((float *)h.cpu[0])[t * k + i] * at(h.cpu[1], dt, j * k + i));
      int64_t e = t * nout + j;
      near("matmul", e, ((float *)h.gpu[y])[e], ((float *)h.cpu[y])[e], 1e-5 * mag + 1e-6);
    }
  host_free(&h);
}

static void test_rope(int heads, int dim, bool llama3, int64_t pos, int64_t context) {
  int64_t rows = 4, n = 3, cols = (int64_t)heads * dim;
  graph_begin(rows, context);
  value("x", FY_DTYPE_F32, FY_VALUE_ACTIVATION, rows, cols, true);
  value("y", FY_DTYPE_F32, FY_VALUE_ACTIVATION, rows, cols, true);
  fy_node_attrs_t a = {.n_heads = heads, .head_dim = dim, .rope = {.theta = llama3 ? 500000.0 : 10000.0}};
  if (llama3)
    a.rope = (fy_rope_t){.theta = 500000.0, .scaling = FY_ROPE_SCALING_LLAMA3, .factor = 8.0, .low_freq_factor = 1.0,
                         .high_freq_factor = 4.0, .original_max_position = 64};
  int nd = node(FY_OP_ROPE, &a);
  host_t h;
  host_init(&h, 1);
  uint32_t err;
  int parts;
  run_pair(nd, &h, n, pos, 0, &err, &parts);
  const float *x = h.cpu[0];
  for (int64_t t = 0; t < n; t++)
    for (int64_t c = 0; c < cols; c++) {
      int64_t e = t * cols + c, i = c % dim, half = dim / 2;
      int64_t pair = i < half ? e + half : e - half;
      near("rope", e, ((float *)h.gpu[1])[e], ((float *)h.cpu[1])[e], 1e-5 * (fabs(x[e]) + fabs(x[pair])) + 1e-6);
    }
  host_free(&h);
}

static void test_attention(int heads, int kv_heads, int dim, int64_t pos, int64_t n, int64_t capacity) {
  int64_t rows = 5, qc = (int64_t)heads * dim, kvc = (int64_t)kv_heads * dim;
  graph_begin(rows, capacity);
  value("q", FY_DTYPE_F32, FY_VALUE_ACTIVATION, rows, qc, true);
  value("k", FY_DTYPE_F32, FY_VALUE_ACTIVATION, rows, kvc, true);
  value("v", FY_DTYPE_F32, FY_VALUE_ACTIVATION, rows, kvc, true);
  value("kc", FY_DTYPE_F32, FY_VALUE_STATE, capacity, kvc, false);
  value("vc", FY_DTYPE_F32, FY_VALUE_STATE, capacity, kvc, false);
  value("o", FY_DTYPE_F32, FY_VALUE_ACTIVATION, rows, qc, true);
  fy_node_attrs_t a = {.n_heads = heads, .n_kv_heads = kv_heads, .head_dim = dim};
  int nd = node(FY_OP_ATTENTION, &a);
  host_t h;
  host_init(&h, 1);
  uint32_t err;
  int parts;
  run_pair(nd, &h, n, pos, 0, &err, &parts);
  CHECK(err == 0, "attention: error bits %u", err);
  for (int c = 3; c <= 4; c++)
    CHECK(!memcmp(h.cpu[c], h.gpu[c], h.bytes[c]), "attention: the %s cache differs", c == 3 ? "k" : "v");
  double vmax = 0;
  for (int64_t i = 0; i < capacity * kvc; i++) vmax = fmax(vmax, fabs(((float *)h.cpu[4])[i]));
  for (int64_t i = 0; i < n * qc; i++) near("attention", i, ((float *)h.gpu[5])[i], ((float *)h.cpu[5])[i], 1e-5 * vmax + 1e-6);
  /* A step past the cache raises the error bit. */
  if (pos + n <= capacity) {
    run_gpu(nd, &h, n, capacity - n + 1, 0, &err, &parts);
    CHECK(err == FY_SPIRV_ERROR_KV, "attention: a full cache gives error bits %u", err);
  }
  host_free(&h);
}

static void test_eltwise(fy_op_t op, int64_t cols) {
  int64_t rows = 4, n = 3;
  graph_begin(rows, 16);
  value("a", FY_DTYPE_F32, FY_VALUE_ACTIVATION, rows, cols, true);
  value("b", FY_DTYPE_F32, FY_VALUE_ACTIVATION, rows, cols, true);
  value("y", FY_DTYPE_F32, FY_VALUE_ACTIVATION, rows, cols, true);
  int nd = node(op, NULL);
  host_t h;
  host_init(&h, 1);
  uint32_t err;
  int parts;
  run_pair(nd, &h, n, 0, 0, &err, &parts);
  for (int64_t i = 0; i < n * cols; i++) {
    float want = ((float *)h.cpu[2])[i];
    double mag = op == FY_OP_ADD ? 0.0 : fabs(((float *)h.cpu[0])[i] * ((float *)h.cpu[1])[i]);
    near(fy_op_name(op), i, ((float *)h.gpu[2])[i], want, op == FY_OP_ADD ? 0.0 : 1e-5 * mag + 1e-6);
  }
  host_free(&h);
}

static void test_last_row(int64_t cols) {
  int64_t rows = 5, n = 3;
  graph_begin(rows, 16);
  value("x", FY_DTYPE_F32, FY_VALUE_ACTIVATION, rows, cols, true);
  value("y", FY_DTYPE_F32, FY_VALUE_ACTIVATION, 1, cols, false);
  int nd = node(FY_OP_LAST_ROW, NULL);
  host_t h;
  host_init(&h, 1);
  uint32_t err;
  int parts;
  run_pair(nd, &h, n, 0, 0, &err, &parts);
  for (int64_t i = 0; i < cols; i++) near("last_row", i, ((float *)h.gpu[1])[i], ((float *)h.cpu[1])[i], 0.0);
  host_free(&h);
}

static void test_names(void) {
  graph_begin(4, 16);
  value("x", FY_DTYPE_F32, FY_VALUE_ACTIVATION, 4, 768, true);
  value("w", FY_DTYPE_BF16, FY_VALUE_WEIGHT, 2048, 768, false);
  value("y", FY_DTYPE_F32, FY_VALUE_ACTIVATION, 4, 2048, true);
  int a = node(FY_OP_MATMUL, NULL);
  int b = node(FY_OP_MATMUL, NULL);
  char na[FY_KERNEL_NAME_MAX], nb[FY_KERNEL_NAME_MAX];
  fy_kernel_name(graph, a, na, sizeof na);
  fy_kernel_name(graph, b, nb, sizeof nb);
  CHECK(!strncmp(na, "fy_matmul_bf16_", 15) && !strcmp(na, nb), "kernel names %s, %s", na, nb);
  fy_spirv_program_t *p = NULL;
  if (ok(fy_spirv_compile_graph(graph, &p), "compile graph")) {
    CHECK(p->n_kernels == 1 && p->node_kernel[0] == 0 && p->node_kernel[1] == 0, "identical nodes share a kernel");
    char *text = NULL;
    if (ok(fy_spirv_disassemble(p->kernels[0].code, p->kernels[0].n_words, &text), "disassemble"))
      CHECK(strstr(text, "OpEntryPoint GLCompute") && strstr(text, na), "disassembly names the entry point");
    free(text);
    char *source = NULL;
    if (ok(fy_spirv_node_source(graph, a, &source), "source"))
      CHECK(strstr(source, "OpGroupNonUniformFAdd") && strstr(source, na), "the matmul's source is ferry's assembly");
    free(source);
    uint32_t bad[8] = {0x07230203u, 0x00010300u, 0, 10, 0, 0, 0, 0};
    fy_status_t s = fy_spirv_validate(bad, 8);
    CHECK(fy_status_code(s) == FY_INVALID_ARGUMENT, "a broken module is rejected");
    fy_status_free(s);
  }
  fy_spirv_program_destroy(p);
}

/* Kernel times at the small preset's shapes, for docs/vulkan.md (not checked:
 * lavapipe's speed depends on the machine). */
static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

static void time_matmul(fy_dtype_t dt, int64_t k, int64_t nout, int64_t n) {
  graph_begin(64, 16);
  value("x", FY_DTYPE_F32, FY_VALUE_ACTIVATION, 64, k, true);
  value("w", dt, FY_VALUE_WEIGHT, nout, k, false);
  value("y", FY_DTYPE_F32, FY_VALUE_ACTIVATION, 64, nout, true);
  int nd = node(FY_OP_MATMUL, NULL);
  host_t h;
  host_init(&h, 1);
  /* The fastest of 3: the machine may be shared. */
  double cpu = 1e30, dev = 1e30;
  uint32_t err;
  int parts;
  for (int rep = 0; rep < 3; rep++) {
    double t0 = now_ms();
    run_cpu(nd, &h, n, 0);
    cpu = fmin(cpu, now_ms() - t0);
    G.kernel_ms = 1e30;
    run_gpu(nd, &h, n, 0, 0, &err, &parts);
    dev = fmin(dev, G.kernel_ms);
  }
  printf("matmul %s k%lld n%lld, %lld tokens: %.2f ms on the device, %.2f ms CPU reference (1 thread)\n",
         fy_dtype_name(dt), (long long)k, (long long)nout, (long long)n, dev, cpu);
  host_free(&h);
}

/* ---- setup ---- */

static int start(void) {
  /* lavapipe, for the same answers on every machine (a GPU run sets its own VK_DRIVER_FILES). */
  const char *lvp = "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json";
  if (access(lvp, R_OK) == 0) setenv("VK_DRIVER_FILES", lvp, 0);
  G.tmp = getenv("FERRY_TMP") ? getenv("FERRY_TMP") : "/tmp/ferry_test_spirv_kernels";
  if (!ok(fy_mkdir_p(G.tmp), "tmp")) return 1;
  G.spirv_val = system("spirv-val --version > /dev/null 2>&1") == 0;
  if (!G.spirv_val) printf("note: spirv-val not installed; only the in-process validator runs\n");
  fy_vk_options_t o = {.device = -1, .validation = true};
  fy_status_t s = fy_vk_create(&o, &G.vk);
  if (s && fy_status_code(s) == FY_UNAVAILABLE && strstr(fy_status_message(s), "VK_LAYER_KHRONOS_validation")) {
    printf("note: %s; running without validation\n", fy_status_message(s));
    fy_status_free(s);
    o.validation = false;
    s = fy_vk_create(&o, &G.vk);
  }
  if (s) {
    printf("SKIP: no Vulkan device (%s)\n", fy_status_message(s));
    fy_status_free(s);
    return -1;
  }
  printf("device: %s (%s), maxStorageBufferRange %u, offset alignment %llu, validation %s\n",
         G.vk->props.deviceName, fy_vk_device_type_name(G.vk->props.deviceType),
         G.vk->props.limits.maxStorageBufferRange, (unsigned long long)G.vk->align, o.validation ? "on" : "off");
  return ok(fy_vk_commands_create(G.vk, G.vk->compute_family, &G.pool), "pool") &&
                 ok(fy_vk_command_buffer(G.vk, G.pool, &G.cb), "cb") && ok(fy_vk_timeline_create(G.vk, &G.done), "sem") &&
                 ok(fy_vk_buffer_create(G.vk, sizeof(fy_spirv_params_t), true, &G.params), "params")
             ? (G.vk->timestamps && ok(fy_vk_timestamps_create(G.vk, 2, &G.stamps), "timestamps") ? 0 : 0)
             : 1;
}

static void stop(void) {
  if (!G.vk) return;
  fy_vk_t *vk = G.vk;
  vk->fn.vkDeviceWaitIdle(vk->device);
  fy_vk_buffer_destroy(vk, &G.params);
  if (G.stamps) vk->fn.vkDestroyQueryPool(vk->device, G.stamps, NULL);
  if (G.done) vk->fn.vkDestroySemaphore(vk->device, G.done, NULL);
  if (G.pool) vk->fn.vkDestroyCommandPool(vk->device, G.pool, NULL);
  char first[1024];
  int errors = fy_vk_errors(vk, first, sizeof first);
  CHECK(errors == 0, "the validation layer reported %d errors; the first: %s", errors, first);
  fy_vk_destroy(vk);
}

int main(void) {
  int started = start();
  if (started < 0) return 0;
  if (started > 0) return 1;
  test_names();
  for (int d = 0; d < 3; d++) {
    test_embed(dtypes[d], 100, 0);
    test_rmsnorm(dtypes[d], 67, false);
    test_rmsnorm(dtypes[d], 200, true);
    test_matmul(dtypes[d], 67, 37, 0, 0);
    test_matmul(dtypes[d], 300, 70, 1, 0);
    test_matmul(dtypes[d], 130, 9, 2, 0);
  }
  /* Binding splits: a 2 KiB range cuts the weights into many dispatches. */
  test_matmul(FY_DTYPE_BF16, 67, 70, 1, 2048);
  test_matmul(FY_DTYPE_F32, 67, 37, 0, 2048);
  test_embed(FY_DTYPE_F16, 20, 2048);
  test_rope(3, 16, false, 0, 16);
  test_rope(2, 128, true, 1000, 2048);
  test_rope(5, 64, false, 100000, 131072);
  test_attention(8, 2, 16, 0, 5, 16);
  test_attention(4, 2, 80, 70, 3, 80);
  test_attention(2, 2, 128, 130, 1, 140);
  test_eltwise(FY_OP_SILU_MUL, 100);
  test_eltwise(FY_OP_SILU_MUL, 300);
  test_eltwise(FY_OP_ADD, 130);
  test_last_row(100);
  time_matmul(FY_DTYPE_BF16, 1024, 2816, 1);
  time_matmul(FY_DTYPE_BF16, 1024, 2816, 64);
  for (int i = 0; i < n_worst; i++)
    printf("%-10s largest error %.3g (%.2f of the tolerance)\n", worst[i].op, worst[i].err, worst[i].rel);
  fy_graph_destroy(graph);
  stop();
  printf("%d kernels validated\n", n_validated);
  return check_summary();
}
