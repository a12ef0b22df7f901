/* The reference interpreter's exactness, on the tiny synthetic model in each
 * weight dtype:
 *   (a) prefill N + decode j gives, bit for bit, the logits of prefill N + j;
 *   (b) 1 thread and 3 threads give the same bits;
 *   (c) logits are finite.
 * Also: a shape-only graph is refused, and a full KV cache is an error. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/reference.h"
#include "frontend/frontend.h"
#include "frontend/synth.h"
#include "support/file.h"
#include "tests/check.h"



enum { N_PROMPT = 5, N_DECODE = 6, N_ALL = N_PROMPT + N_DECODE };
static const int32_t tokens[N_ALL] = {1, 200, 37, 5, 255, 0, 17, 17, 99, 128, 3};

/* logits[j] = the logits after token N_PROMPT - 1 + j, from prefill + j decode steps. */
static bool run_split(const fy_graph_t *g, int threads, float *logits, int64_t vocab) {
  fy_reference_t *ref = NULL;
  if (!ok(fy_reference_create(g, threads, &ref), "create")) return false;
  bool good = ok(fy_reference_prefill(ref, tokens, N_PROMPT, logits), "prefill");
  for (int j = 1; good && j <= N_DECODE; j++)
    good = ok(fy_reference_decode(ref, tokens[N_PROMPT - 1 + j], logits + j * vocab), "decode");
  CHECK(!good || fy_reference_position(ref) == N_ALL, "position %lld after the sequence",
        (long long)fy_reference_position(ref));
  /* The cache holds exactly context = N_ALL tokens: one more decode is refused. */
  if (good) {
    fy_status_t s = fy_reference_decode(ref, 1, logits + (N_DECODE + 1) * vocab);
    CHECK(fy_status_code(s) == FY_OUT_OF_RANGE, "decode past the KV cache must fail");
    fy_status_free(s);
  }
  fy_reference_destroy(ref);
  return good;
}

static void test_dtype(const char *tmp, fy_dtype_t dtype) {
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/tiny-%s", tmp, fy_dtype_name(dtype));
  fy_synth_options_t so = {.preset = "tiny", .seed = 7, .dtype = dtype};
  if (!ok(fy_synth_write(dir, &so), "synth")) return;
  fy_load_options_t lo = {.prefill_tokens = N_ALL, .generate = N_DECODE, .context = N_ALL};
  fy_graph_t *g = NULL;
  if (!ok(fy_model_load(dir, &lo, &g), "load")) return;
  int64_t vocab = g->config.vocab;
  float *split1 = calloc((size_t)(N_DECODE + 2) * (size_t)vocab, sizeof(float));
  float *split3 = calloc((size_t)(N_DECODE + 2) * (size_t)vocab, sizeof(float));
  float *whole = calloc((size_t)vocab, sizeof(float));
  if (run_split(g, 1, split1, vocab) && run_split(g, 3, split3, vocab)) {
    CHECK(!memcmp(split1, split3, sizeof(float) * (size_t)((N_DECODE + 1) * vocab)), "%s: 1 and 3 threads differ",
          fy_dtype_name(dtype));
    fy_reference_t *ref = NULL;
    if (ok(fy_reference_create(g, 2, &ref), "create")) {
      for (int j = 0; j <= N_DECODE; j++) {
        if (!ok(fy_reference_prefill(ref, tokens, N_PROMPT + j, whole), "prefill")) break;
        CHECK(!memcmp(whole, split1 + j * vocab, sizeof(float) * (size_t)vocab),
              "%s: prefill of %d tokens differs from prefill %d + decode %d", fy_dtype_name(dtype), N_PROMPT + j,
              N_PROMPT, j);
      }
      fy_reference_destroy(ref);
    }
    bool finite = true;
    for (int64_t i = 0; i < (N_DECODE + 1) * vocab; i++) finite = finite && isfinite(split1[i]);
    CHECK(finite, "%s: logits are not all finite", fy_dtype_name(dtype));
  }
  free(split1), free(split3), free(whole);
  fy_graph_destroy(g);
}

int main(void) {
  const char *tmp = getenv("FERRY_TMP");
  if (!tmp) tmp = "/tmp/ferry_test_reference";
  if (!ok(fy_mkdir_p(tmp), "mkdir")) return 1;
  test_dtype(tmp, FY_DTYPE_F32);
  test_dtype(tmp, FY_DTYPE_F16);
  test_dtype(tmp, FY_DTYPE_BF16);

  /* A shape-only graph cannot be run. */
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/tiny-shapes", tmp);
  fy_synth_options_t so = {.preset = "tiny", .seed = 7, .dtype = FY_DTYPE_F32, .shape_only = true};
  fy_graph_t *g = NULL;
  if (ok(fy_synth_write(dir, &so), "synth") && ok(fy_model_load(dir, &(fy_load_options_t){0}, &g), "load")) {
    fy_reference_t *ref = NULL;
    fy_status_t s = fy_reference_create(g, 1, &ref);
    CHECK(s && strstr(fy_status_message(s), "shape-only"), "a shape-only graph must be refused");
    fy_status_free(s);
    fy_graph_destroy(g);
  }
  return check_summary();
}
