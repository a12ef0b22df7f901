/* CPU reference kernels (see cpu.h for the exactness contract and
 * docs/reference.md for each op's arithmetic). Each op first checks its
 * arguments, then splits its outputs over the thread pool. A parallel item
 * that cannot get scratch memory records the failure; the op returns it. */
#include "codegen/cpu.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* ---- argument checks ---- */

typedef enum { ARG_F32, ARG_FLOAT, ARG_I32 } arg_class_t;

/* rows: the exact row count when exact, else the minimum; cols: exact. */
static fy_status_t check_arg(fy_op_t op, const char *what, const fy_cpu_arg_t *a, arg_class_t cls, int64_t rows,
                             bool exact, int64_t cols) {
  bool dtype_ok = cls == ARG_F32   ? a->dtype == FY_DTYPE_F32
                  : cls == ARG_I32 ? a->dtype == FY_DTYPE_I32
                                   : a->dtype == FY_DTYPE_F32 || a->dtype == FY_DTYPE_F16 || a->dtype == FY_DTYPE_BF16;
  const char *want = cls == ARG_F32 ? "f32" : cls == ARG_I32 ? "i32" : "f32, f16 or bf16";
  if (!a->data) return fy_status_make(FY_INVALID_ARGUMENT, "%s: %s has no buffer", fy_op_name(op), what);
  if (a->dtype < 0 || a->dtype >= FY_DTYPE_COUNT || !dtype_ok)
    return fy_status_make(FY_INVALID_ARGUMENT, "%s: %s has dtype %s, expected %s", fy_op_name(op), what,
                          a->dtype >= 0 && a->dtype < FY_DTYPE_COUNT ? fy_dtype_name(a->dtype) : "?", want);
  if (a->cols != cols || (exact ? a->rows != rows : a->rows < rows))
    return fy_status_make(FY_INVALID_ARGUMENT, "%s: %s is [%lld, %lld], expected %s%lld rows of %lld columns",
                          fy_op_name(op), what, (long long)a->rows, (long long)a->cols, exact ? "" : "at least ",
                          (long long)rows, (long long)cols);
  return NULL;
}

static fy_status_t check_arity(fy_op_t op, int n_inputs, int min, int max) {
  if (n_inputs < min || n_inputs > max)
    return fy_status_make(FY_INVALID_ARGUMENT, "%s: %d inputs, expected %d%s%d", fy_op_name(op), n_inputs, min,
                          min == max ? "" : " to ", min == max ? 0 : max);
  return NULL;
}

fy_cpu_arg_t fy_cpu_arg_for_value(const fy_value_t *v, void *data) {
  fy_cpu_arg_t a = {.data = data, .dtype = v->dtype};
  if (v->rank == 1) {
    a.rows = v->per_token ? v->shape[0] : 1;
    a.cols = v->per_token ? 1 : v->shape[0];
  } else {
    a.rows = v->rank >= 1 ? v->shape[0] : 1;
    a.cols = fy_value_elements(v) / (a.rows ? a.rows : 1);
  }
  return a;
}

int64_t fy_cpu_node_rows(const fy_graph_t *g, const fy_node_t *n, int64_t n_tokens) {
  const fy_value_t *out = &g->values[n->output];
  return n->op == FY_OP_LAST_ROW || out->per_token ? n_tokens : out->shape[0];
}

/* Items per chunk, so that a thread is woken only for some 16k multiply-adds
 * of work: waking one costs microseconds. Chunking never changes results. */
static int64_t grain_for(int64_t work_per_item) {
  const int64_t min_work = 16384;
  return work_per_item >= min_work ? 1 : min_work / (work_per_item > 0 ? work_per_item : 1);
}

/* ---- loads: weights may be unaligned inside a mapped file ---- */

static float f16_table[65536];
static pthread_once_t f16_once = PTHREAD_ONCE_INIT;
static void f16_table_init(void) {
  for (uint32_t h = 0; h < 65536; h++) f16_table[h] = fy_f16_to_f32((uint16_t)h);
}

/* dst[i] = element first+i of src, widened to f32 (exact for every dtype). */
static void load_f32(float *dst, const void *src, fy_dtype_t dtype, int64_t first, int64_t n) {
  const uint8_t *p = (const uint8_t *)src + (size_t)first * fy_dtype_size(dtype);
  if (dtype == FY_DTYPE_F32) {
    memcpy(dst, p, (size_t)n * sizeof(float));
    return;
  }
  for (int64_t i = 0; i < n; i++) {
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    dst[i] = dtype == FY_DTYPE_BF16 ? fy_bf16_to_f32(h) : f16_table[h];
  }
}

/* ---- the one dot product ----
 * Lane l of accumulator a sums the products of the indices k with
 * k % 32 == 8a + l over the 32-wide blocks; the rest of the indices go 8 at a
 * time into accumulator 0, then one by one into a scalar; the lanes are then
 * added in the fixed tree below. The order depends on n alone. */
typedef float v8f __attribute__((vector_size(32)));

static float dot_f32(const float *a, const float *b, int64_t n) {
  v8f acc0 = {0}, acc1 = {0}, acc2 = {0}, acc3 = {0}, x, y;
  int64_t k = 0;
  for (; k + 32 <= n; k += 32) {
    memcpy(&x, a + k, 32), memcpy(&y, b + k, 32), acc0 += x * y;
    memcpy(&x, a + k + 8, 32), memcpy(&y, b + k + 8, 32), acc1 += x * y;
    memcpy(&x, a + k + 16, 32), memcpy(&y, b + k + 16, 32), acc2 += x * y;
    memcpy(&x, a + k + 24, 32), memcpy(&y, b + k + 24, 32), acc3 += x * y;
  }
  for (; k + 8 <= n; k += 8) memcpy(&x, a + k, 32), memcpy(&y, b + k, 32), acc0 += x * y;
  float tail = 0.0f;
  for (; k < n; k++) tail += a[k] * b[k];
  v8f s = (acc0 + acc1) + (acc2 + acc3);
  return (((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]))) + tail;
}

/* ---- EMBED ---- */

static fy_status_t run_embed(const fy_cpu_arg_t *in, const fy_cpu_arg_t *out, int64_t n) {
  const fy_cpu_arg_t *ids = &in[0], *table = &in[1];
  FY_TRY(check_arg(FY_OP_EMBED, "ids", ids, ARG_I32, n, false, 1));
  if (table->rows <= 0) return fy_status_make(FY_INVALID_ARGUMENT, "embed: empty table");
  FY_TRY(check_arg(FY_OP_EMBED, "table", table, ARG_FLOAT, table->rows, true, table->cols));
  FY_TRY(check_arg(FY_OP_EMBED, "output", out, ARG_F32, n, false, table->cols));
  const int32_t *id = ids->data;
  for (int64_t t = 0; t < n; t++)
    if (id[t] < 0 || id[t] >= table->rows)
      return fy_status_make(FY_OUT_OF_RANGE, "embed: token id %d (row %lld) is outside the vocabulary of %lld",
                            id[t], (long long)t, (long long)table->rows);
  for (int64_t t = 0; t < n; t++)
    load_f32((float *)out->data + t * out->cols, table->data, table->dtype, (int64_t)id[t] * table->cols,
             table->cols);
  return NULL;
}

/* ---- RMSNORM: sum of squares in double, in index order ---- */

typedef struct {
  const float *x;
  float *y, *w;
  int64_t h;
  float eps;
} rmsnorm_ctx_t;

static void rmsnorm_rows(void *vctx, int64_t begin, int64_t end) {
  const rmsnorm_ctx_t *c = vctx;
  for (int64_t t = begin; t < end; t++) {
    const float *x = c->x + t * c->h;
    float *y = c->y + t * c->h;
    double sum = 0.0;
    for (int64_t i = 0; i < c->h; i++) sum += (double)x[i] * (double)x[i];
    float r = (float)(1.0 / sqrt(sum / (double)c->h + (double)c->eps));
    for (int64_t i = 0; i < c->h; i++) y[i] = (x[i] * r) * c->w[i];
  }
}

static fy_status_t run_rmsnorm(const fy_node_attrs_t *attrs, const fy_cpu_arg_t *in, const fy_cpu_arg_t *out,
                               int64_t n, fy_threadpool_t *pool) {
  int64_t h = in[0].cols;
  FY_TRY(check_arg(FY_OP_RMSNORM, "input", &in[0], ARG_F32, n, false, h));
  FY_TRY(check_arg(FY_OP_RMSNORM, "weight", &in[1], ARG_FLOAT, 1, true, h));
  FY_TRY(check_arg(FY_OP_RMSNORM, "output", out, ARG_F32, n, false, h));
  if (!(attrs->eps >= 0.0f)) return fy_status_make(FY_INVALID_ARGUMENT, "rmsnorm: eps %g is not >= 0", attrs->eps);
  float *w = malloc(sizeof *w * (size_t)h);
  if (!w) return fy_status_make(FY_RESOURCE_EXHAUSTED, "rmsnorm: out of memory");
  load_f32(w, in[1].data, in[1].dtype, 0, h);
  rmsnorm_ctx_t c = {in[0].data, out->data, w, h, attrs->eps};
  fy_parallel_for(pool, n, grain_for(h), rmsnorm_rows, &c);
  free(w);
  return NULL;
}

/* ---- MATMUL: y[t, j] = dot(x[t], w[j]) + bias[j] ----
 * Items are blocks of MATMUL_BLOCK weight rows; a block is widened to f32
 * once and reused for every token. */
enum { MATMUL_BLOCK = 16 };

typedef struct {
  const float *x;
  const void *w, *bias;
  fy_dtype_t w_dtype, bias_dtype;
  float *y;
  int64_t k, n_out, n_tokens, x_stride, y_stride;
  atomic_int out_of_memory;
} matmul_ctx_t;

static void matmul_blocks(void *vctx, int64_t begin, int64_t end) {
  matmul_ctx_t *c = vctx;
  float *wf = malloc(sizeof *wf * MATMUL_BLOCK * (size_t)c->k);
  if (!wf) {
    atomic_store(&c->out_of_memory, 1);
    return;
  }
  for (int64_t b = begin; b < end; b++) {
    int64_t j0 = b * MATMUL_BLOCK, rows = c->n_out - j0 < MATMUL_BLOCK ? c->n_out - j0 : MATMUL_BLOCK;
    load_f32(wf, c->w, c->w_dtype, j0 * c->k, rows * c->k);
    float bias[MATMUL_BLOCK] = {0};
    if (c->bias) load_f32(bias, c->bias, c->bias_dtype, j0, rows);
    for (int64_t t = 0; t < c->n_tokens; t++) {
      const float *x = c->x + t * c->x_stride;
      float *y = c->y + t * c->y_stride + j0;
      for (int64_t r = 0; r < rows; r++) {
        float v = dot_f32(x, wf + r * c->k, c->k);
        y[r] = c->bias ? v + bias[r] : v;
      }
    }
  }
  free(wf);
}

static fy_status_t run_matmul(const fy_cpu_arg_t *in, int n_inputs, const fy_cpu_arg_t *out, int64_t n,
                              fy_threadpool_t *pool) {
  int64_t k = in[0].cols, n_out = in[1].rows;
  FY_TRY(check_arg(FY_OP_MATMUL, "input", &in[0], ARG_F32, n, false, k));
  if (n_out <= 0) return fy_status_make(FY_INVALID_ARGUMENT, "matmul: weight has no rows");
  FY_TRY(check_arg(FY_OP_MATMUL, "weight", &in[1], ARG_FLOAT, n_out, true, k));
  if (n_inputs == 3) FY_TRY(check_arg(FY_OP_MATMUL, "bias", &in[2], ARG_FLOAT, 1, true, n_out));
  FY_TRY(check_arg(FY_OP_MATMUL, "output", out, ARG_F32, n, false, n_out));
  if (k <= 0) return fy_status_make(FY_INVALID_ARGUMENT, "matmul: reduction length %lld", (long long)k);
  matmul_ctx_t c = {.x = in[0].data, .w = in[1].data, .w_dtype = in[1].dtype, .bias = n_inputs == 3 ? in[2].data : NULL,
                    .bias_dtype = n_inputs == 3 ? in[2].dtype : FY_DTYPE_F32, .y = out->data, .k = k,
                    .n_out = n_out, .n_tokens = n, .x_stride = in[0].cols, .y_stride = out->cols};
  atomic_init(&c.out_of_memory, 0);
  fy_parallel_for(pool, (n_out + MATMUL_BLOCK - 1) / MATMUL_BLOCK, grain_for(MATMUL_BLOCK * k * n), matmul_blocks, &c);
  if (atomic_load(&c.out_of_memory))
    return fy_status_make(FY_RESOURCE_EXHAUSTED, "matmul: out of memory for a %d x %lld weight block",
                          MATMUL_BLOCK, (long long)k);
  return NULL;
}

/* ---- ROPE ---- */

void fy_cpu_rope_inv_freq(const fy_rope_t *rope, int head_dim, double *out_inv_freq) {
  const double pi = 3.14159265358979323846;
  for (int i = 0; i < head_dim / 2; i++) {
    double f = pow(rope->theta, -(double)(2 * i) / (double)head_dim);
    if (rope->scaling == FY_ROPE_SCALING_LLAMA3) {
      double orig = (double)rope->original_max_position;
      double low_wavelen = orig / rope->low_freq_factor, high_wavelen = orig / rope->high_freq_factor;
      double wavelen = 2.0 * pi / f;
      if (wavelen > low_wavelen) {
        f = f / rope->factor;
      } else if (!(wavelen < high_wavelen)) {
        double smooth = (orig / wavelen - rope->low_freq_factor) / (rope->high_freq_factor - rope->low_freq_factor);
        f = (1.0 - smooth) * f / rope->factor + smooth * f;
      }
    }
    out_inv_freq[i] = f;
  }
}

typedef struct {
  const float *x;
  float *y;
  const double *inv_freq;
  int64_t pos, x_stride, y_stride;
  int n_heads, head_dim;
  atomic_int out_of_memory;
} rope_ctx_t;

static void rope_rows(void *vctx, int64_t begin, int64_t end) {
  rope_ctx_t *c = vctx;
  int half = c->head_dim / 2;
  float *cs = malloc(sizeof *cs * 2 * (size_t)half);
  if (!cs) {
    atomic_store(&c->out_of_memory, 1);
    return;
  }
  for (int64_t t = begin; t < end; t++) {
    for (int i = 0; i < half; i++) {
      double angle = (double)(c->pos + t) * c->inv_freq[i];
      cs[i] = (float)cos(angle);
      cs[half + i] = (float)sin(angle);
    }
    for (int h = 0; h < c->n_heads; h++) {
      const float *x = c->x + t * c->x_stride + (int64_t)h * c->head_dim;
      float *y = c->y + t * c->y_stride + (int64_t)h * c->head_dim;
      for (int i = 0; i < half; i++) {
        float x0 = x[i], x1 = x[i + half], co = cs[i], si = cs[half + i];
        y[i] = x0 * co - x1 * si;
        y[i + half] = x1 * co + x0 * si;
      }
    }
  }
  free(cs);
}

static fy_status_t run_rope(const fy_node_attrs_t *a, const fy_cpu_arg_t *in, const fy_cpu_arg_t *out, int64_t n,
                            int64_t pos, fy_threadpool_t *pool) {
  if (a->n_heads <= 0 || a->head_dim <= 0 || a->head_dim % 2 || !(a->rope.theta > 0))
    return fy_status_make(FY_INVALID_ARGUMENT, "rope: %d heads of %d (must be positive and even), theta %g",
                          a->n_heads, a->head_dim, a->rope.theta);
  if (a->rope.scaling == FY_ROPE_SCALING_LLAMA3 &&
      !(a->rope.factor > 0 && a->rope.low_freq_factor > 0 && a->rope.high_freq_factor > a->rope.low_freq_factor &&
        a->rope.original_max_position > 0))
    return fy_status_make(FY_INVALID_ARGUMENT, "rope: llama3 scaling needs factor > 0, 0 < low_freq_factor < "
                          "high_freq_factor and original_max_position > 0");
  int64_t cols = (int64_t)a->n_heads * a->head_dim;
  FY_TRY(check_arg(FY_OP_ROPE, "input", &in[0], ARG_F32, n, false, cols));
  FY_TRY(check_arg(FY_OP_ROPE, "output", out, ARG_F32, n, false, cols));
  double *inv_freq = malloc(sizeof *inv_freq * (size_t)(a->head_dim / 2));
  if (!inv_freq) return fy_status_make(FY_RESOURCE_EXHAUSTED, "rope: out of memory");
  fy_cpu_rope_inv_freq(&a->rope, a->head_dim, inv_freq);
  rope_ctx_t c = {.x = in[0].data, .y = out->data, .inv_freq = inv_freq, .pos = pos, .x_stride = in[0].cols,
                  .y_stride = out->cols, .n_heads = a->n_heads, .head_dim = a->head_dim};
  atomic_init(&c.out_of_memory, 0);
  fy_parallel_for(pool, n, grain_for(cols), rope_rows, &c);
  free(inv_freq);
  if (atomic_load(&c.out_of_memory)) return fy_status_make(FY_RESOURCE_EXHAUSTED, "rope: out of memory");
  return NULL;
}

/* ---- ATTENTION ---- */

typedef struct {
  const float *q, *kcache, *vcache;
  float *o;
  int64_t pos, q_stride, kv_stride, o_stride, capacity;
  int n_heads, group, head_dim;
  float scale;
  atomic_int out_of_memory;
} attention_ctx_t;

/* Items are (token, head) pairs, item = t * n_heads + h. */
static void attention_items(void *vctx, int64_t begin, int64_t end) {
  attention_ctx_t *c = vctx;
  int d = c->head_dim;
  float *scores = malloc(sizeof *scores * (size_t)(c->capacity + d));
  if (!scores) {
    atomic_store(&c->out_of_memory, 1);
    return;
  }
  float *acc = scores + c->capacity;
  for (int64_t item = begin; item < end; item++) {
    int64_t t = item / c->n_heads;
    int h = (int)(item % c->n_heads);
    int64_t kv_off = (int64_t)(h / c->group) * d, n_ctx = c->pos + t + 1;
    const float *q = c->q + t * c->q_stride + (int64_t)h * d;
    float max = -INFINITY;
    for (int64_t j = 0; j < n_ctx; j++) {
      scores[j] = dot_f32(q, c->kcache + j * c->kv_stride + kv_off, d) * c->scale;
      if (scores[j] > max) max = scores[j];
    }
    float sum = 0.0f;
    for (int64_t j = 0; j < n_ctx; j++) {
      scores[j] = expf(scores[j] - max);
      sum += scores[j];
    }
    for (int i = 0; i < d; i++) acc[i] = 0.0f;
    for (int64_t j = 0; j < n_ctx; j++) {
      const float *v = c->vcache + j * c->kv_stride + kv_off;
      for (int i = 0; i < d; i++) acc[i] += scores[j] * v[i];
    }
    float *o = c->o + t * c->o_stride + (int64_t)h * d;
    for (int i = 0; i < d; i++) o[i] = acc[i] / sum;
  }
  free(scores);
}

static fy_status_t run_attention(const fy_node_attrs_t *a, const fy_cpu_arg_t *in, const fy_cpu_arg_t *out, int64_t n,
                                 int64_t pos, fy_threadpool_t *pool) {
  if (a->n_heads <= 0 || a->n_kv_heads <= 0 || a->head_dim <= 0 || a->n_heads % a->n_kv_heads)
    return fy_status_make(FY_INVALID_ARGUMENT, "attention: %d heads over %d kv heads of %d", a->n_heads,
                          a->n_kv_heads, a->head_dim);
  int64_t q_cols = (int64_t)a->n_heads * a->head_dim, kv_cols = (int64_t)a->n_kv_heads * a->head_dim;
  int64_t capacity = in[3].rows;
  FY_TRY(check_arg(FY_OP_ATTENTION, "q", &in[0], ARG_F32, n, false, q_cols));
  FY_TRY(check_arg(FY_OP_ATTENTION, "k", &in[1], ARG_F32, n, false, kv_cols));
  FY_TRY(check_arg(FY_OP_ATTENTION, "v", &in[2], ARG_F32, n, false, kv_cols));
  FY_TRY(check_arg(FY_OP_ATTENTION, "k cache", &in[3], ARG_F32, capacity, true, kv_cols));
  FY_TRY(check_arg(FY_OP_ATTENTION, "v cache", &in[4], ARG_F32, capacity, true, kv_cols));
  FY_TRY(check_arg(FY_OP_ATTENTION, "output", out, ARG_F32, n, false, q_cols));
  if (pos + n > capacity)
    return fy_status_make(FY_OUT_OF_RANGE, "attention: positions %lld..%lld do not fit the KV cache of %lld tokens",
                          (long long)pos, (long long)(pos + n - 1), (long long)capacity);
  float *kcache = in[3].data, *vcache = in[4].data;
  for (int64_t t = 0; t < n; t++) {
    memcpy(kcache + (pos + t) * kv_cols, (const float *)in[1].data + t * in[1].cols, sizeof(float) * (size_t)kv_cols);
    memcpy(vcache + (pos + t) * kv_cols, (const float *)in[2].data + t * in[2].cols, sizeof(float) * (size_t)kv_cols);
  }
  attention_ctx_t c = {.q = in[0].data, .kcache = kcache, .vcache = vcache, .o = out->data, .pos = pos,
                       .q_stride = in[0].cols, .kv_stride = kv_cols, .o_stride = out->cols, .capacity = capacity,
                       .n_heads = a->n_heads, .group = a->n_heads / a->n_kv_heads, .head_dim = a->head_dim,
                       .scale = (float)(1.0 / sqrt((double)a->head_dim))};
  atomic_init(&c.out_of_memory, 0);
  fy_parallel_for(pool, n * a->n_heads, grain_for(2 * (pos + 1) * a->head_dim), attention_items, &c);
  if (atomic_load(&c.out_of_memory)) return fy_status_make(FY_RESOURCE_EXHAUSTED, "attention: out of memory");
  return NULL;
}

/* ---- elementwise: SILU_MUL, ADD ---- */

typedef struct {
  fy_op_t op;
  const float *a, *b;
  float *y;
  int64_t cols, a_stride, b_stride, y_stride;
} eltwise_ctx_t;

static void eltwise_rows(void *vctx, int64_t begin, int64_t end) {
  const eltwise_ctx_t *c = vctx;
  for (int64_t t = begin; t < end; t++) {
    const float *a = c->a + t * c->a_stride, *b = c->b + t * c->b_stride;
    float *y = c->y + t * c->y_stride;
    if (c->op == FY_OP_ADD)
      for (int64_t i = 0; i < c->cols; i++) y[i] = a[i] + b[i];
    else
      for (int64_t i = 0; i < c->cols; i++) y[i] = a[i] / (1.0f + expf(-a[i])) * b[i];
  }
}

static fy_status_t run_eltwise(fy_op_t op, const fy_cpu_arg_t *in, const fy_cpu_arg_t *out, int64_t n,
                               fy_threadpool_t *pool) {
  int64_t cols = in[0].cols;
  FY_TRY(check_arg(op, "first input", &in[0], ARG_F32, n, false, cols));
  FY_TRY(check_arg(op, "second input", &in[1], ARG_F32, n, false, cols));
  FY_TRY(check_arg(op, "output", out, ARG_F32, n, false, cols));
  eltwise_ctx_t c = {op, in[0].data, in[1].data, out->data, cols, in[0].cols, in[1].cols, out->cols};
  fy_parallel_for(pool, n, grain_for(cols), eltwise_rows, &c);
  return NULL;
}

/* ---- LAST_ROW ---- */

static fy_status_t run_last_row(const fy_cpu_arg_t *in, const fy_cpu_arg_t *out, int64_t n) {
  FY_TRY(check_arg(FY_OP_LAST_ROW, "input", &in[0], ARG_F32, n, false, in[0].cols));
  FY_TRY(check_arg(FY_OP_LAST_ROW, "output", out, ARG_F32, 1, false, in[0].cols));
  memmove(out->data, (const float *)in[0].data + (n - 1) * in[0].cols, sizeof(float) * (size_t)in[0].cols);
  return NULL;
}

fy_status_t fy_cpu_run_node(fy_op_t op, const fy_node_attrs_t *attrs, const fy_cpu_arg_t *inputs, int n_inputs,
                            const fy_cpu_arg_t *output, int64_t n_tokens, int64_t pos, fy_threadpool_t *pool) {
  if (op < 0 || op >= FY_OP_COUNT) return fy_status_make(FY_INVALID_ARGUMENT, "cpu: unknown op %d", (int)op);
  if (!attrs || !inputs || !output)
    return fy_status_make(FY_INVALID_ARGUMENT, "%s: missing attributes, inputs or output", fy_op_name(op));
  if (n_tokens < 1 || pos < 0)
    return fy_status_make(FY_INVALID_ARGUMENT, "%s: %lld tokens at position %lld", fy_op_name(op),
                          (long long)n_tokens, (long long)pos);
  pthread_once(&f16_once, f16_table_init);
  switch (op) {
    case FY_OP_EMBED:
      FY_TRY(check_arity(op, n_inputs, 2, 2));
      return run_embed(inputs, output, n_tokens);
    case FY_OP_RMSNORM:
      FY_TRY(check_arity(op, n_inputs, 2, 2));
      return run_rmsnorm(attrs, inputs, output, n_tokens, pool);
    case FY_OP_MATMUL:
      FY_TRY(check_arity(op, n_inputs, 2, 3));
      return run_matmul(inputs, n_inputs, output, n_tokens, pool);
    case FY_OP_ROPE:
      FY_TRY(check_arity(op, n_inputs, 1, 1));
      return run_rope(attrs, inputs, output, n_tokens, pos, pool);
    case FY_OP_ATTENTION:
      FY_TRY(check_arity(op, n_inputs, 5, 5));
      return run_attention(attrs, inputs, output, n_tokens, pos, pool);
    case FY_OP_SILU_MUL:
    case FY_OP_ADD:
      FY_TRY(check_arity(op, n_inputs, 2, 2));
      return run_eltwise(op, inputs, output, n_tokens, pool);
    case FY_OP_LAST_ROW:
      FY_TRY(check_arity(op, n_inputs, 1, 1));
      return run_last_row(inputs, output, n_tokens);
    case FY_OP_COUNT:
      break;
  }
  return fy_status_make(FY_INTERNAL, "cpu: unhandled op %d", (int)op);
}
