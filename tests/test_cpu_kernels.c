/* The CPU reference kernels against naive double-precision versions written
 * here, on small odd shapes, per weight dtype; bad arguments give errors; the
 * outputs are bit for bit the same with 1 and with 4 threads.
 *
 * Tolerances: the kernels compute in f32 from the same (already rounded)
 * weights the naive version reads, so the only error is f32 rounding in the
 * kernel: a dot product of length K is within K * 2^-24 * sum|x_k w_k| of the
 * exact value; we allow 1e-5 * sum|x_k w_k| (K <= 300 here) plus 1e-6.
 * Elementwise ops are within a few ulps (1e-5 relative). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/cpu.h"
#include "tests/check.h"



static fy_code_t code_of(fy_status_t s, const char *want_in_message) {
  fy_code_t c = fy_status_code(s);
  if (s && want_in_message && !strstr(fy_status_message(s), want_in_message)) {
    fprintf(stderr, "message '%s' does not name '%s'\n", fy_status_message(s), want_in_message);
    c = FY_INTERNAL;
  }
  if (s && !want_in_message) fprintf(stderr, "unexpected error: %s\n", fy_status_message(s));
  fy_status_free(s);
  return c;
}
#define OK(expr) CHECK(code_of((expr), NULL) == FY_OK, "%s", #expr)

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float rnd(void) { /* uniform in [-1, 1) */
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* A matrix with its values in dtype and, in exact, the same values widened. */
typedef struct {
  fy_cpu_arg_t arg;
  float *exact;
} mat_t;

static mat_t mat(fy_dtype_t dtype, int64_t rows, int64_t cols, float scale) {
  mat_t m = {{malloc((size_t)(rows * cols) * fy_dtype_size(dtype)), dtype, rows, cols},
             malloc(sizeof(float) * (size_t)(rows * cols))};
  for (int64_t i = 0; i < rows * cols; i++) {
    float f = rnd() * scale;
    if (dtype == FY_DTYPE_F16) {
      uint16_t h = fy_f32_to_f16(f);
      ((uint16_t *)m.arg.data)[i] = h, f = fy_f16_to_f32(h);
    } else if (dtype == FY_DTYPE_BF16) {
      uint16_t h = fy_f32_to_bf16(f);
      ((uint16_t *)m.arg.data)[i] = h, f = fy_bf16_to_f32(h);
    } else {
      ((float *)m.arg.data)[i] = f;
    }
    m.exact[i] = f;
  }
  return m;
}

static void mat_free(mat_t *m) {
  free(m->arg.data);
  free(m->exact);
}

static float *out_data(const mat_t *m) { return m->arg.data; }

static bool close_to(double got, double want, double tol) { return fabs(got - want) <= tol; }

static const fy_dtype_t weight_dtypes[] = {FY_DTYPE_F32, FY_DTYPE_F16, FY_DTYPE_BF16};

/* ---- per-op checks against the naive versions ---- */

static void test_embed(fy_dtype_t dt) {
  mat_t table = mat(dt, 11, 13, 1.0f), out = mat(FY_DTYPE_F32, 5, 13, 0.0f);
  int32_t ids[5] = {3, 0, 10, 7, 7};
  fy_cpu_arg_t in[2] = {{ids, FY_DTYPE_I32, 5, 1}, table.arg};
  OK(fy_cpu_run_node(FY_OP_EMBED, &(fy_node_attrs_t){0}, in, 2, &out.arg, 4, 0, NULL));
  for (int t = 0; t < 4; t++)
    CHECK(!memcmp(out_data(&out) + t * 13, table.exact + ids[t] * 13, 13 * sizeof(float)), "embed row %d", t);
  ids[2] = 11;
  CHECK(code_of(fy_cpu_run_node(FY_OP_EMBED, &(fy_node_attrs_t){0}, in, 2, &out.arg, 4, 0, NULL), "token id 11") ==
            FY_OUT_OF_RANGE, "embed: id 11 of 11");
  ids[2] = -1;
  CHECK(code_of(fy_cpu_run_node(FY_OP_EMBED, &(fy_node_attrs_t){0}, in, 2, &out.arg, 4, 0, NULL), "token id -1") ==
            FY_OUT_OF_RANGE, "embed: id -1");
  mat_free(&table), mat_free(&out);
}

static void test_rmsnorm(fy_dtype_t dt) {
  const int64_t rows = 5, n = 3, h = 37;
  mat_t x = mat(FY_DTYPE_F32, rows, h, 3.0f), w = mat(dt, 1, h, 1.0f), y = mat(FY_DTYPE_F32, rows, h, 0.0f);
  for (int64_t i = n * h; i < rows * h; i++) out_data(&y)[i] = 42.0f;
  fy_node_attrs_t a = {.eps = 1e-5f};
  OK(fy_cpu_run_node(FY_OP_RMSNORM, &a, (fy_cpu_arg_t[]){x.arg, w.arg}, 2, &y.arg, n, 0, NULL));
  for (int64_t t = 0; t < n; t++) {
    double ss = 0;
    for (int64_t i = 0; i < h; i++) ss += (double)x.exact[t * h + i] * x.exact[t * h + i];
    double r = 1.0 / sqrt(ss / h + 1e-5);
    for (int64_t i = 0; i < h; i++) {
      double want = x.exact[t * h + i] * r * w.exact[i];
      CHECK(close_to(out_data(&y)[t * h + i], want, 1e-5 * fabs(want) + 1e-7), "rmsnorm %s [%lld,%lld]",
            fy_dtype_name(dt), (long long)t, (long long)i);
    }
  }
  CHECK(out_data(&y)[n * h] == 42.0f && out_data(&y)[rows * h - 1] == 42.0f, "rmsnorm wrote past n_tokens");
  mat_free(&x), mat_free(&w), mat_free(&y);
}

static void test_matmul(fy_dtype_t dt, int64_t n, int64_t k, int64_t n_out, bool bias) {
  const int64_t rows = n + 2;
  mat_t x = mat(FY_DTYPE_F32, rows, k, 2.0f), w = mat(dt, n_out, k, 0.5f), b = mat(dt, 1, n_out, 1.0f),
        y = mat(FY_DTYPE_F32, rows, n_out, 0.0f);
  fy_cpu_arg_t in[3] = {x.arg, w.arg, b.arg};
  OK(fy_cpu_run_node(FY_OP_MATMUL, &(fy_node_attrs_t){0}, in, bias ? 3 : 2, &y.arg, n, 0, NULL));
  for (int64_t t = 0; t < n; t++)
    for (int64_t j = 0; j < n_out; j++) {
      double want = bias ? b.exact[j] : 0.0, mag = fabs(want);
      for (int64_t i = 0; i < k; i++) {
        double p = (double)x.exact[t * k + i] * w.exact[j * k + i];
        want += p, mag += fabs(p);
      }
      CHECK(close_to(out_data(&y)[t * n_out + j], want, 1e-5 * mag + 1e-6), "matmul %s K=%lld [%lld,%lld]: %g vs %g",
            fy_dtype_name(dt), (long long)k, (long long)t, (long long)j, out_data(&y)[t * n_out + j], want);
    }
  /* Each row alone gives the same bits as within the batch (prefill vs decode). */
  mat_t y1 = mat(FY_DTYPE_F32, 1, n_out, 0.0f);
  fy_cpu_arg_t in1[3] = {{out_data(&x) + (n - 1) * k, FY_DTYPE_F32, 1, k}, w.arg, b.arg};
  OK(fy_cpu_run_node(FY_OP_MATMUL, &(fy_node_attrs_t){0}, in1, bias ? 3 : 2, &y1.arg, 1, 0, NULL));
  CHECK(!memcmp(out_data(&y1), out_data(&y) + (n - 1) * n_out, sizeof(float) * (size_t)n_out),
        "matmul: a row alone differs from the same row in a batch");
  /* A weight of the wrong width is refused, naming the op. */
  fy_cpu_arg_t bad[2] = {x.arg, {w.arg.data, dt, n_out, k - 1}};
  CHECK(code_of(fy_cpu_run_node(FY_OP_MATMUL, &(fy_node_attrs_t){0}, bad, 2, &y.arg, n, 0, NULL), "matmul") ==
            FY_INVALID_ARGUMENT, "matmul: wrong weight shape");
  mat_free(&x), mat_free(&w), mat_free(&b), mat_free(&y), mat_free(&y1);
}

/* HF's llama3 inverse frequencies, written out independently. */
static double naive_inv_freq(const fy_rope_t *r, int d, int i) {
  double f = 1.0 / pow(r->theta, (double)(2 * i) / d);
  if (r->scaling != FY_ROPE_SCALING_LLAMA3) return f;
  double wavelen = 2 * M_PI / f, orig = (double)r->original_max_position;
  if (wavelen < orig / r->high_freq_factor) return f;
  if (wavelen > orig / r->low_freq_factor) return f / r->factor;
  double s = (orig / wavelen - r->low_freq_factor) / (r->high_freq_factor - r->low_freq_factor);
  return (1 - s) * f / r->factor + s * f;
}

static void test_rope(const fy_rope_t *rope, int64_t pos) {
  const int heads = 3, d = 16;
  const int64_t rows = 4, n = 3, cols = heads * d;
  mat_t x = mat(FY_DTYPE_F32, rows, cols, 1.0f), y = mat(FY_DTYPE_F32, rows, cols, 0.0f);
  fy_node_attrs_t a = {.n_heads = heads, .head_dim = d, .rope = *rope};
  OK(fy_cpu_run_node(FY_OP_ROPE, &a, &x.arg, 1, &y.arg, n, pos, NULL));
  for (int64_t t = 0; t < n; t++)
    for (int h = 0; h < heads; h++)
      for (int i = 0; i < d / 2; i++) {
        double ang = (double)(pos + t) * naive_inv_freq(rope, d, i);
        double x0 = x.exact[t * cols + h * d + i], x1 = x.exact[t * cols + h * d + i + d / 2];
        double w0 = x0 * cos(ang) - x1 * sin(ang), w1 = x1 * cos(ang) + x0 * sin(ang);
        const float *got = out_data(&y) + t * cols + h * d;
        CHECK(close_to(got[i], w0, 1e-5) && close_to(got[i + d / 2], w1, 1e-5), "rope pos %lld t %lld h %d i %d",
              (long long)pos, (long long)t, h, i);
      }
  mat_free(&x), mat_free(&y);
}

static void test_attention(int heads, int kv_heads, int64_t pos, int64_t n) {
  const int d = 12;
  const int64_t cap = 16, rows = n + 1, qc = heads * d, kc = kv_heads * d;
  mat_t q = mat(FY_DTYPE_F32, rows, qc, 1.5f), k = mat(FY_DTYPE_F32, rows, kc, 1.5f), v = mat(FY_DTYPE_F32, rows, kc, 1.0f);
  mat_t kcache = mat(FY_DTYPE_F32, cap, kc, 1.5f), vcache = mat(FY_DTYPE_F32, cap, kc, 1.0f);
  mat_t o = mat(FY_DTYPE_F32, rows, qc, 0.0f);
  fy_node_attrs_t a = {.n_heads = heads, .n_kv_heads = kv_heads, .head_dim = d};
  fy_cpu_arg_t in[5] = {q.arg, k.arg, v.arg, kcache.arg, vcache.arg};
  OK(fy_cpu_run_node(FY_OP_ATTENTION, &a, in, 5, &o.arg, n, pos, NULL));
  /* the naive version sees the cache rows it expects: old rows, then this step's k, v */
  float *kc_want = kcache.exact, *vc_want = vcache.exact;
  memcpy(kc_want + pos * kc, k.exact, sizeof(float) * (size_t)(n * kc));
  memcpy(vc_want + pos * kc, v.exact, sizeof(float) * (size_t)(n * kc));
  CHECK(!memcmp(kcache.arg.data, kc_want, sizeof(float) * (size_t)(cap * kc)) &&
            !memcmp(vcache.arg.data, vc_want, sizeof(float) * (size_t)(cap * kc)),
        "attention: caches hold the wrong rows");
  for (int64_t t = 0; t < n; t++)
    for (int h = 0; h < heads; h++) {
      int g = h / (heads / kv_heads);
      double s[16], m = -INFINITY, sum = 0;
      for (int64_t j = 0; j <= pos + t; j++) {
        s[j] = 0;
        for (int i = 0; i < d; i++) s[j] += (double)q.exact[t * qc + h * d + i] * kc_want[j * kc + g * d + i];
        s[j] /= sqrt((double)d);
        m = fmax(m, s[j]);
      }
      for (int64_t j = 0; j <= pos + t; j++) sum += (s[j] = exp(s[j] - m));
      for (int i = 0; i < d; i++) {
        double want = 0;
        for (int64_t j = 0; j <= pos + t; j++) want += s[j] / sum * vc_want[j * kc + g * d + i];
        CHECK(close_to(out_data(&o)[t * qc + h * d + i], want, 1e-5), "attention %d:%d pos %lld t %lld h %d i %d",
              heads, kv_heads, (long long)pos, (long long)t, h, i);
      }
    }
  CHECK(code_of(fy_cpu_run_node(FY_OP_ATTENTION, &a, in, 5, &o.arg, n, cap - n + 1, NULL), "KV cache") ==
            FY_OUT_OF_RANGE, "attention: capacity overflow");
  mat_free(&q), mat_free(&k), mat_free(&v), mat_free(&kcache), mat_free(&vcache), mat_free(&o);
}

static void test_eltwise(void) {
  const int64_t rows = 4, n = 3, c = 29;
  mat_t a = mat(FY_DTYPE_F32, rows, c, 6.0f), b = mat(FY_DTYPE_F32, rows, c, 2.0f), y = mat(FY_DTYPE_F32, rows, c, 0.0f);
  fy_cpu_arg_t in[2] = {a.arg, b.arg};
  OK(fy_cpu_run_node(FY_OP_SILU_MUL, &(fy_node_attrs_t){0}, in, 2, &y.arg, n, 0, NULL));
  for (int64_t i = 0; i < n * c; i++) {
    double want = a.exact[i] / (1 + exp(-(double)a.exact[i])) * b.exact[i];
    CHECK(close_to(out_data(&y)[i], want, 1e-5 * fabs(want) + 1e-7), "silu_mul %lld", (long long)i);
  }
  OK(fy_cpu_run_node(FY_OP_ADD, &(fy_node_attrs_t){0}, in, 2, &y.arg, n, 0, NULL));
  for (int64_t i = 0; i < n * c; i++) CHECK(out_data(&y)[i] == a.exact[i] + b.exact[i], "add %lld", (long long)i);
  mat_t last = mat(FY_DTYPE_F32, 1, c, 0.0f);
  OK(fy_cpu_run_node(FY_OP_LAST_ROW, &(fy_node_attrs_t){0}, in, 1, &last.arg, n, 0, NULL));
  CHECK(!memcmp(out_data(&last), a.exact + (n - 1) * c, sizeof(float) * (size_t)c), "last_row");
  fy_cpu_arg_t short_b = {b.arg.data, FY_DTYPE_F32, 2, c};
  CHECK(code_of(fy_cpu_run_node(FY_OP_ADD, &(fy_node_attrs_t){0}, (fy_cpu_arg_t[]){a.arg, short_b}, 2, &y.arg, n, 0,
                                NULL), "add") == FY_INVALID_ARGUMENT, "add: an input with too few rows");
  mat_free(&a), mat_free(&b), mat_free(&y), mat_free(&last);
}

/* ---- thread-count independence: every op with a reduction, 1 thread vs 4 ---- */

static void same_bits_with_threads(fy_threadpool_t *pool4) {
  fy_rope_t rope = {.theta = 10000.0};
  fy_node_attrs_t a = {.eps = 1e-6f, .n_heads = 8, .n_kv_heads = 2, .head_dim = 16, .rope = rope};
  const int64_t n = 600, h = 128, ffn = 300, cap = 640, pos = 9; /* big enough that every op is split */
  mat_t x = mat(FY_DTYPE_F32, n, h, 2.0f), nw = mat(FY_DTYPE_BF16, 1, h, 1.0f);
  mat_t wq = mat(FY_DTYPE_F16, h, h, 0.2f), wu = mat(FY_DTYPE_BF16, ffn, h, 0.2f), bias = mat(FY_DTYPE_F32, 1, ffn, 1.0f);
  mat_t k = mat(FY_DTYPE_F32, n, 32, 1.0f), v = mat(FY_DTYPE_F32, n, 32, 1.0f);
  mat_t kc = mat(FY_DTYPE_F32, cap, 32, 1.0f), vc = mat(FY_DTYPE_F32, cap, 32, 1.0f);
  fy_threadpool_t *pools[2] = {NULL, pool4};
  float *results[2][5];
  for (int p = 0; p < 2; p++) {
    mat_t ys[5] = {mat(FY_DTYPE_F32, n, h, 0), mat(FY_DTYPE_F32, n, h, 0), mat(FY_DTYPE_F32, n, ffn, 0),
                   mat(FY_DTYPE_F32, n, h, 0), mat(FY_DTYPE_F32, n, h, 0)};
    OK(fy_cpu_run_node(FY_OP_RMSNORM, &a, (fy_cpu_arg_t[]){x.arg, nw.arg}, 2, &ys[0].arg, n, pos, pools[p]));
    OK(fy_cpu_run_node(FY_OP_MATMUL, &a, (fy_cpu_arg_t[]){ys[0].arg, wq.arg}, 2, &ys[1].arg, n, pos, pools[p]));
    OK(fy_cpu_run_node(FY_OP_MATMUL, &a, (fy_cpu_arg_t[]){ys[0].arg, wu.arg, bias.arg}, 3, &ys[2].arg, n, pos,
                       pools[p]));
    OK(fy_cpu_run_node(FY_OP_ROPE, &a, &ys[1].arg, 1, &ys[3].arg, n, pos, pools[p]));
    OK(fy_cpu_run_node(FY_OP_ATTENTION, &a, (fy_cpu_arg_t[]){ys[3].arg, k.arg, v.arg, kc.arg, vc.arg}, 5, &ys[4].arg,
                       n, pos, pools[p]));
    for (int i = 0; i < 5; i++) results[p][i] = out_data(&ys[i]), free(ys[i].exact);
  }
  const int64_t sizes[5] = {n * h, n * h, n * ffn, n * h, n * h};
  const char *names[5] = {"rmsnorm", "matmul f16", "matmul bf16 + bias", "rope", "attention"};
  for (int i = 0; i < 5; i++) {
    CHECK(!memcmp(results[0][i], results[1][i], sizeof(float) * (size_t)sizes[i]), "%s: 1 and 4 threads differ",
          names[i]);
    free(results[0][i]), free(results[1][i]);
  }
  mat_free(&x), mat_free(&nw), mat_free(&wq), mat_free(&wu), mat_free(&bias);
  mat_free(&k), mat_free(&v), mat_free(&kc), mat_free(&vc);
}

int main(void) {
  for (size_t i = 0; i < sizeof weight_dtypes / sizeof *weight_dtypes; i++) {
    fy_dtype_t dt = weight_dtypes[i];
    test_embed(dt);
    test_rmsnorm(dt);
    test_matmul(dt, 3, 67, 37, false);
    test_matmul(dt, 5, 300, 40, true);
    test_matmul(dt, 1, 5, 1, true);
  }
  fy_rope_t plain = {.theta = 10000.0};
  fy_rope_t llama3 = {.theta = 500000.0, .scaling = FY_ROPE_SCALING_LLAMA3, .factor = 8.0, .low_freq_factor = 1.0,
                      .high_freq_factor = 4.0, .original_max_position = 64};
  test_rope(&plain, 0);
  test_rope(&plain, 5);
  test_rope(&llama3, 0);
  test_rope(&llama3, 1000);
  test_attention(8, 2, 5, 3); /* GQA 4:1 */
  test_attention(4, 2, 0, 4); /* GQA 2:1, from position 0 */
  test_attention(3, 3, 9, 1); /* MHA, one decode row */
  test_eltwise();
  fy_threadpool_t *pool4 = NULL;
  OK(fy_threadpool_create(4, &pool4));
  if (pool4) same_bits_with_threads(pool4);
  fy_threadpool_destroy(pool4);
  return check_summary();
}
