/* Model folders in: config.json parsing, safetensors binding, sharding,
 * synthetic presets at their published sizes, and the errors that name the
 * file, the tensor and the expected shape. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "frontend/frontend.h"
#include "frontend/hf_config.h"
#include "frontend/safetensors.h"
#include "frontend/synth.h"
#include "support/file.h"
#include "tests/check.h"

static char tmp[1024];

/* A step the rest depends on: stop the test on failure. */
static void must(fy_status_t s, const char *what) {
  if (s) {
    fprintf(stderr, "%s: unexpected error: %s\n", what, fy_status_message(s));
    fy_status_free(s);
    exit(1);
  }
}

static const char *dir_of(const char *name) {
  static char bufs[4][1200];
  static int next;
  char *b = bufs[next++ % 4];
  snprintf(b, 1200, "%s/%s", tmp, name);
  return b;
}

static void synth(const char *dir, const char *preset, const char *arch, int shards, fy_dtype_t dtype, uint64_t seed) {
  fy_synth_options_t o = {.preset = preset, .architecture = arch, .seed = seed, .dtype = dtype, .shards = shards};
  must(fy_synth_write(dir, &o), dir);
}

static fy_graph_t *load(const char *dir, bool shape_only) {
  fy_load_options_t o = {.shape_only = shape_only};
  fy_graph_t *g = NULL;
  must(fy_model_load(dir, &o, &g), dir);
  return g;
}

/* Loading dir must fail with code and a message containing every non-NULL needle. */
static void expect_load_error(const char *dir, const fy_load_options_t *o, fy_code_t code, const char *n1,
                              const char *n2, const char *n3) {
  fy_load_options_t defaults = {0};
  fy_graph_t *g = NULL;
  fy_status_t s = fy_model_load(dir, o ? o : &defaults, &g);
  if (!s) {
    fprintf(stderr, "%s: expected an error, got none\n", dir);
    failures++;
    fy_graph_destroy(g);
    return;
  }
  if (fy_status_code(s) != code) {
    fprintf(stderr, "%s: expected %s, got %s: %s\n", dir, fy_code_name(code), fy_code_name(fy_status_code(s)),
            fy_status_message(s));
    failures++;
  }
  const char *needles[] = {n1, n2, n3};
  for (int i = 0; i < 3; i++) {
    if (needles[i] && !strstr(fy_status_message(s), needles[i])) {
      fprintf(stderr, "%s: error \"%s\" does not mention \"%s\"\n", dir, fy_status_message(s), needles[i]);
      failures++;
    }
  }
  fy_status_free(s);
}

static void write_text(const char *path, const char *text) { must(fy_file_write_atomic_bytes(path, text, strlen(text)), path); }

/* Replaces the first occurrence of from with to in the file. */
static void edit(const char *path, const char *from, const char *to) {
  char *text;
  must(fy_file_read(path, &text, NULL), path);
  size_t before = strstr(text, from) ? (size_t)(strstr(text, from) - text) : SIZE_MAX;
  if (before == SIZE_MAX) {
    fprintf(stderr, "%s: no \"%s\" to edit\n", path, from);
    exit(1);
  }
  size_t n = strlen(text) + strlen(to) + 1;
  char *out = malloc(n);
  snprintf(out, n, "%.*s%s%s", (int)before, text, to, text + before + strlen(from));
  write_text(path, out);
  free(out);
  free(text);
}

static uint64_t weight_bytes_checksum(const fy_graph_t *g) {
  uint64_t h = 1469598103934665603ull;
  for (int i = 0; i < g->n_values; i++) {
    const fy_value_t *v = &g->values[i];
    if (v->kind != FY_VALUE_WEIGHT) continue;
    fy_mapping_t m;
    must(fy_file_map(g->files[v->file].path, &m), v->name);
    for (uint64_t j = 0; j < v->nbytes; j++) h = (h ^ m.data[v->file_offset + j]) * 1099511628211ull;
    fy_file_unmap(&m);
  }
  return h;
}

static bool same_values(const fy_graph_t *a, const fy_graph_t *b) {
  if (a->n_values != b->n_values || a->n_nodes != b->n_nodes || a->n_layers != b->n_layers) return false;
  for (int i = 0; i < a->n_values; i++) {
    const fy_value_t *x = &a->values[i], *y = &b->values[i];
    if (strcmp(x->name, y->name) || x->dtype != y->dtype || x->kind != y->kind || x->rank != y->rank ||
        x->nbytes != y->nbytes || x->layer != y->layer || memcmp(x->shape, y->shape, sizeof x->shape))
      return false;
  }
  return true;
}

static void tiny_round_trip(void) {
  const char *d = dir_of("tiny");
  synth(d, "tiny", NULL, 0, FY_DTYPE_BF16, 7);
  fy_graph_t *g = load(d, false);
  CHECK(!g->shape_only && g->n_layers == 4 && g->n_files == 1 && g->n_stages == 2);
  CHECK(!strcmp(g->config.architecture, "LlamaForCausalLM") && g->config.rope.scaling == FY_ROPE_SCALING_LLAMA3);
  CHECK(g->config.rope.original_max_position == 64 && g->config.rope.theta == 500000 && g->config.head_dim == 16);
  /* embed + lm_head 2*256*64, norm 64, 4 layers of 2*64 + 64*64 + 2*32*64 + 64*64 + 3*176*64 */
  CHECK(fy_graph_param_count(g, -2) == 2 * 256 * 64 + 64 + 4 * (2 * 64 + 64 * 64 + 2 * 32 * 64 + 64 * 64 + 3 * 176 * 64));
  /* weights lie in the file in the builder's order: a layer's tensors are adjacent */
  uint64_t prev_end = 0;
  for (int i = 0; i < g->n_values; i++) {
    const fy_value_t *v = &g->values[i];
    if (v->kind != FY_VALUE_WEIGHT) continue;
    CHECK(v->file == 0 && v->dtype == FY_DTYPE_BF16 && v->file_offset >= prev_end);
    prev_end = v->file_offset + v->nbytes;
  }
  CHECK(prev_end == g->files[0].size);

  /* The same seed gives the same bytes; another seed other bytes. */
  const char *again = dir_of("tiny_again"), *other = dir_of("tiny_seed8");
  synth(again, "tiny", NULL, 0, FY_DTYPE_BF16, 7);
  synth(other, "tiny", NULL, 0, FY_DTYPE_BF16, 8);
  fy_graph_t *ga = load(again, false), *go = load(other, false);
  CHECK(weight_bytes_checksum(g) == weight_bytes_checksum(ga));
  CHECK(weight_bytes_checksum(g) != weight_bytes_checksum(go));
  fy_graph_destroy(ga);
  fy_graph_destroy(go);

  /* Sharded: the same graph, the same bytes, three files. */
  const char *sharded = dir_of("tiny_sharded");
  synth(sharded, "tiny", NULL, 3, FY_DTYPE_BF16, 7);
  fy_graph_t *gs = load(sharded, false);
  CHECK(gs->n_files == 3 && same_values(g, gs));
  CHECK(weight_bytes_checksum(g) == weight_bytes_checksum(gs));
  fy_graph_destroy(gs);

  /* shape_only ignores the weights that are there. */
  fy_graph_t *shape = load(d, true);
  CHECK(shape->shape_only && shape->n_files == 0 && same_values(g, shape));
  fy_graph_destroy(shape);
  fy_graph_destroy(g);

  const fy_dtype_t dtypes[] = {FY_DTYPE_F16, FY_DTYPE_F32};
  for (int i = 0; i < 2; i++) {
    const char *dd = dir_of(i ? "tiny_f32" : "tiny_f16");
    synth(dd, "tiny", NULL, 0, dtypes[i], 1);
    fy_graph_t *gd = load(dd, false);
    CHECK(gd->config.dtype == dtypes[i] && gd->values[fy_graph_find_value(gd, "lm_head.weight")].dtype == dtypes[i]);
    fy_graph_destroy(gd);
  }
}

static void architectures(void) {
  const char *q = dir_of("tiny_qwen");
  synth(q, "tiny", "Qwen2ForCausalLM", 0, FY_DTYPE_BF16, 1);
  fy_graph_t *g = load(q, false);
  CHECK(g->config.qkv_bias && fy_graph_find_value(g, "model.layers.3.self_attn.k_proj.bias") >= 0);
  fy_graph_destroy(g);
  const char *m = dir_of("tiny_mistral");
  synth(m, "tiny", "MistralForCausalLM", 0, FY_DTYPE_BF16, 1);
  g = load(m, false);
  CHECK(!strcmp(g->config.architecture, "MistralForCausalLM") && !g->config.qkv_bias);
  fy_graph_destroy(g);

  fy_synth_options_t o = {.preset = "tiny", .architecture = "GPT2LMHeadModel", .dtype = FY_DTYPE_BF16};
  fy_status_t s = fy_synth_write(dir_of("tiny_gpt2"), &o);
  CHECK(s && fy_status_code(s) == FY_INCOMPATIBLE && strstr(fy_status_message(s), "GPT2LMHeadModel"));
  fy_status_free(s);
  o = (fy_synth_options_t){.preset = "huge", .dtype = FY_DTYPE_BF16};
  s = fy_synth_write(dir_of("huge"), &o);
  CHECK(s && strstr(fy_status_message(s), "unknown preset huge") && strstr(fy_status_message(s), "llama-3.1-70b"));
  fy_status_free(s);

  const char *d = dir_of("gpt2");
  must(fy_mkdir_p(d), d);
  char path[1300];
  snprintf(path, sizeof path, "%s/config.json", d);
  write_text(path, "{\"architectures\": [\"GPT2LMHeadModel\"], \"hidden_size\": 64, \"intermediate_size\": 128,"
                   "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 100}");
  expect_load_error(d, NULL, FY_INCOMPATIBLE, "GPT2LMHeadModel", "not supported", NULL);
}

/* Rewrites dir's model.safetensors with the same tensors except that `drop`
 * is left out and `transpose` has its two dimensions swapped. */
static void rewrite_weights(const char *dir, const char *drop, const char *transpose) {
  char path[1300];
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  fy_graph_t *scratch;
  fy_tensor_index_t index = {0};
  must(fy_graph_create(&scratch), "graph");
  must(fy_safetensors_read(path, scratch, &index), path);
  fy_safetensors_entry_t *e = calloc((size_t)index.n_tensors, sizeof *e);
  int n = 0;
  for (int i = 0; i < index.n_tensors; i++) {
    const fy_tensor_info_t *t = &index.tensors[i];
    if (drop && !strcmp(t->name, drop)) continue;
    e[n] = (fy_safetensors_entry_t){t->name, t->dtype, t->rank, {0}};
    memcpy(e[n].shape, t->shape, sizeof e[n].shape);
    if (transpose && !strcmp(t->name, transpose)) {
      e[n].shape[0] = t->shape[1];
      e[n].shape[1] = t->shape[0];
    }
    n++;
  }
  must(fy_safetensors_write(path, e, n, NULL, NULL), path);
  free(e);
  fy_tensor_index_free(&index);
  fy_graph_destroy(scratch);
}

static void weight_errors(void) {
  const char *d = dir_of("tiny_missing");
  synth(d, "tiny", NULL, 0, FY_DTYPE_BF16, 1);
  rewrite_weights(d, "model.layers.2.mlp.up_proj.weight", NULL);
  expect_load_error(d, NULL, FY_INVALID_ARGUMENT, "tensor model.layers.2.mlp.up_proj.weight", "missing",
                    "expected [176, 64]");

  d = dir_of("tiny_transposed");
  synth(d, "tiny", NULL, 0, FY_DTYPE_BF16, 1);
  rewrite_weights(d, NULL, "model.layers.1.mlp.down_proj.weight");
  expect_load_error(d, NULL, FY_INVALID_ARGUMENT, "tensor model.layers.1.mlp.down_proj.weight", "expected [64, 176]",
                    "found [176, 64]");

  /* A tensor the index lists but its shard lacks names both. */
  d = dir_of("tiny_bad_index");
  synth(d, "tiny", NULL, 2, FY_DTYPE_BF16, 1);
  char path[1300];
  snprintf(path, sizeof path, "%s/model.safetensors.index.json", d);
  edit(path, "\"weight_map\":\t{", "\"weight_map\": {\"model.extra.weight\": \"model-00002-of-00002.safetensors\",");
  expect_load_error(d, NULL, FY_INVALID_ARGUMENT, "tensor model.extra.weight",
                    "model-00002-of-00002.safetensors", "missing");
  /* ... and one listed in the wrong shard */
  synth(d, "tiny", NULL, 2, FY_DTYPE_BF16, 1);
  edit(path, "\"model.embed_tokens.weight\":\t\"model-00001-of-00002.safetensors\"",
       "\"model.embed_tokens.weight\": \"model-00002-of-00002.safetensors\"");
  expect_load_error(d, NULL, FY_INVALID_ARGUMENT, "tensor model.embed_tokens.weight", "model-00002-of-00002", NULL);
  /* shard names stay inside the folder */
  synth(d, "tiny", NULL, 2, FY_DTYPE_BF16, 1);
  edit(path, "\"model.embed_tokens.weight\":\t\"model-00001-of-00002.safetensors\"",
       "\"model.embed_tokens.weight\": \"../model-00001-of-00002.safetensors\"");
  expect_load_error(d, NULL, FY_INVALID_ARGUMENT, "tensor model.embed_tokens.weight", "file name in the model folder",
                    NULL);
  /* a malformed shard names its path */
  synth(d, "tiny", NULL, 2, FY_DTYPE_BF16, 1);
  snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", d);
  write_text(path, "xx");
  expect_load_error(d, NULL, FY_INVALID_ARGUMENT, "model-00002-of-00002.safetensors", "too short", NULL);
}

static void write_config(const char *dir, const char *json) {
  must(fy_mkdir_p(dir), dir);
  char path[1300];
  snprintf(path, sizeof path, "%s/config.json", dir);
  write_text(path, json);
}

#define BASE_CONFIG                                                                                            \
  "\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64, \"intermediate_size\": 128, "               \
  "\"num_hidden_layers\": 2, \"vocab_size\": 100"

static void config_files(void) {
  /* config.json alone: a shape-only graph, with the transformers defaults */
  const char *d = dir_of("config_only");
  write_config(d, "{" BASE_CONFIG ", \"num_attention_heads\": 4}");
  fy_graph_t *g = load(d, false);
  CHECK(g->shape_only && g->n_files == 0 && g->n_layers == 2);
  CHECK(g->config.n_kv_heads == 4 && g->config.head_dim == 16 && g->config.rope.theta == 10000 &&
        !g->config.tie_embeddings && g->config.dtype == FY_DTYPE_BF16 && g->config.rope.scaling == FY_ROPE_SCALING_NONE);
  CHECK(fy_graph_find_value(g, "lm_head.weight") >= 0);
  fy_graph_destroy(g);

  write_config(d, "{" BASE_CONFIG ", \"num_attention_heads\": 4, \"tie_word_embeddings\": true, "
                  "\"torch_dtype\": \"float16\", \"head_dim\": 32, \"num_key_value_heads\": 2}");
  g = load(d, false);
  CHECK(g->config.tie_embeddings && fy_graph_find_value(g, "lm_head.weight") < 0 && g->config.head_dim == 32 &&
        g->config.dtype == FY_DTYPE_F16);
  fy_graph_destroy(g);

  static const struct {
    const char *json;
    fy_code_t code;
    const char *needle;
  } bad[] = {
      {"{" BASE_CONFIG ", \"num_attention_heads\": 0}", FY_INVALID_ARGUMENT,
       "config.json: field num_attention_heads: must be a positive integer"},
      {"{" BASE_CONFIG ", \"num_attention_heads\": \"4\"}", FY_INVALID_ARGUMENT, "field num_attention_heads"},
      {"{" BASE_CONFIG "}", FY_INVALID_ARGUMENT, "field num_attention_heads: missing"},
      {"{" BASE_CONFIG ", \"num_attention_heads\": 4, \"num_key_value_heads\": 3}", FY_INVALID_ARGUMENT,
       "field num_key_value_heads"},
      {"{" BASE_CONFIG ", \"num_attention_heads\": 3}", FY_INVALID_ARGUMENT, "field head_dim"},
      {"{" BASE_CONFIG ", \"num_attention_heads\": 4, \"rms_norm_eps\": -1}", FY_INVALID_ARGUMENT,
       "field rms_norm_eps"},
      {"{" BASE_CONFIG ", \"num_attention_heads\": 4, \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4}}",
       FY_INCOMPATIBLE, "field rope_scaling.rope_type: yarn is not supported"},
      {"{" BASE_CONFIG ", \"num_attention_heads\": 4, \"rope_scaling\": {\"type\": \"linear\", \"factor\": 4}}",
       FY_INCOMPATIBLE, "linear is not supported"},
      {"{" BASE_CONFIG ", \"num_attention_heads\": 4, \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8}}",
       FY_INVALID_ARGUMENT, "field low_freq_factor: missing"},
      {"{" BASE_CONFIG ", \"num_attention_heads\": 4, \"torch_dtype\": \"float64\"}", FY_INCOMPATIBLE,
       "field torch_dtype: float64"},
      {"{" BASE_CONFIG ", \"num_attention_heads\": 4, \"hidden_act\": \"gelu\"}", FY_INCOMPATIBLE, "hidden_act"},
      {"{" BASE_CONFIG ", \"num_attention_heads\": 4, \"attention_bias\": true}", FY_INCOMPATIBLE,
       "attention_bias"},
      {"{\"hidden_size\": 64}", FY_INVALID_ARGUMENT, "field architectures"},
      {"[1]", FY_INVALID_ARGUMENT, "config.json: not a JSON object"},
      {"{\"a\": ", FY_INVALID_ARGUMENT, "config.json: not valid JSON"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    write_config(d, bad[i].json);
    expect_load_error(d, NULL, bad[i].code, bad[i].needle, NULL, NULL);
  }
  expect_load_error(dir_of("no_such_model"), NULL, FY_UNAVAILABLE, "no_such_model/config.json", NULL, NULL);
}

static double seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static void real_presets(void) {
  static const struct {
    const char *preset;
    int layers;
    uint64_t params;
  } real[] = {
      {"llama-3.1-70b", 80, 70553706496ull},
      {"llama-3.1-8b", 32, 8030261248ull},
      {"qwen2.5-14b", 48, 14770033664ull},
      {"mistral-7b", 32, 7241732096ull},
  };
  for (size_t i = 0; i < sizeof real / sizeof *real; i++) {
    const char *d = dir_of(real[i].preset);
    synth(d, real[i].preset, NULL, 0, FY_DTYPE_BF16, 0);
    struct stat st;
    char path[1300];
    snprintf(path, sizeof path, "%s/model.safetensors", d);
    CHECK(stat(path, &st) != 0); /* shape-only unless with_weights */
    double t0 = seconds();
    fy_graph_t *g = load(d, false);
    double dt = seconds() - t0;
    printf("%-14s %2d layers %15llu parameters, loaded in %.4f s\n", real[i].preset, g->n_layers,
           (unsigned long long)fy_graph_param_count(g, -2), dt);
    CHECK(g->shape_only && g->n_layers == real[i].layers && fy_graph_param_count(g, -2) == real[i].params);
    CHECK(dt < 1.0);
    fy_graph_destroy(g);
  }
  fy_graph_t *g = load(dir_of("qwen2.5-14b"), false);
  CHECK(g->config.qkv_bias && g->config.rope.theta == 1e6 && g->config.rms_eps == 1e-5 && g->config.vocab == 152064);
  fy_graph_destroy(g);
  g = load(dir_of("llama-3.1-70b"), false);
  CHECK(g->config.rope.scaling == FY_ROPE_SCALING_LLAMA3 && g->config.rope.factor == 8 &&
        g->config.rope.original_max_position == 8192 && g->config.max_position == 131072);
  fy_graph_destroy(g);
  /* Mistral v0.1 attends within 4096 tokens: a longer context is refused. */
  fy_load_options_t longer = {.prefill_tokens = 4096, .generate = 128};
  expect_load_error(dir_of("mistral-7b"), &longer, FY_INCOMPATIBLE, "sliding_window", "4096", NULL);
}

/* The command line, when the ferry binary is there (ctest sets FERRY). */
static void cli(void) {
  const char *ferry = getenv("FERRY");
  if (!ferry || access(ferry, X_OK) != 0) {
    printf("skipping the command-line checks: no ferry binary at %s\n", ferry ? ferry : "$FERRY");
    return;
  }
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "%s synth --help >/dev/null", ferry);
  CHECK(system(cmd) == 0);
  snprintf(cmd, sizeof cmd, "%s synth --preset tiny >/dev/null 2>&1", ferry);
  CHECK(WEXITSTATUS(system(cmd)) == 2);
  snprintf(cmd, sizeof cmd, "%s graph >/dev/null 2>&1", ferry);
  CHECK(WEXITSTATUS(system(cmd)) == 2);
  snprintf(cmd, sizeof cmd, "%s synth --preset tiny --shards 2 --seed 3 -o %s && %s graph %s | grep -q '^parameters *217,664$'",
           ferry, dir_of("cli_tiny"), ferry, dir_of("cli_tiny"));
  CHECK(system(cmd) == 0);
  snprintf(cmd, sizeof cmd, "%s graph %s | grep -q '^parameters *70,553,706,496$'", ferry, dir_of("llama-3.1-70b"));
  CHECK(system(cmd) == 0);
  snprintf(cmd, sizeof cmd, "%s graph --dump %s >/dev/null", ferry, dir_of("cli_tiny"));
  CHECK(system(cmd) == 0);
  snprintf(cmd, sizeof cmd, "%s graph %s >/dev/null 2>&1", ferry, dir_of("no_such_model"));
  CHECK(WEXITSTATUS(system(cmd)) == 1);
}

int main(void) {
  const char *t = getenv("FERRY_TMP");
  snprintf(tmp, sizeof tmp, "%s", t ? t : "/tmp/ferry_test_frontend");
  must(fy_mkdir_p(tmp), tmp);
  tiny_round_trip();
  architectures();
  weight_errors();
  config_files();
  real_presets();
  cli();
  return check_summary();
}
