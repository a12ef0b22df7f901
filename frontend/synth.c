/* Synthetic model folders (see synth.h). The tensor list comes from the
 * llama builder itself (a shape-only graph of the preset), so the files hold
 * exactly the tensors, shapes and order the loader expects. Every element is
 * a pure function of (seed, tensor name, element index): the bytes do not
 * depend on chunking, sharding or the number of threads. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "frontend/frontend.h"
#include "frontend/hf_config.h"
#include "frontend/llama.h"
#include "frontend/safetensors.h"
#include "frontend/synth.h"
#include "support/file.h"
#include "support/threadpool.h"

typedef struct {
  const char *name, *architecture;
  int64_t hidden, n_layers, ffn, n_heads, n_kv_heads, vocab, max_position, sliding_window;
  double rms_eps, rope_theta;
  bool llama3_rope; /* rope_scaling factor 8, low 1, high 4, original original_max */
  int64_t original_max;
  bool real; /* published shapes: shape-only unless with_weights */
} preset_t;

/* Real presets carry the values of the published config.json files
 * (meta-llama/Llama-3.1-8B, -70B; Qwen/Qwen2.5-14B; mistralai/Mistral-7B-v0.1),
 * cross-checked against /work/shared/reference/models.tsv. */
static const preset_t presets[] = {
    /* rope_scaling with a tiny original context, so that scaling changes some of its 8 frequencies */
    {"tiny", "LlamaForCausalLM", 64, 4, 176, 4, 2, 256, 2048, 0, 1e-5, 500000.0, true, 64, false},
    {"small", "LlamaForCausalLM", 768, 12, 2048, 12, 4, 32000, 2048, 0, 1e-5, 10000.0, false, 0, false},
    {"llama-3.1-8b", "LlamaForCausalLM", 4096, 32, 14336, 32, 8, 128256, 131072, 0, 1e-5, 500000.0, true, 8192, true},
    {"llama-3.1-70b", "LlamaForCausalLM", 8192, 80, 28672, 64, 8, 128256, 131072, 0, 1e-5, 500000.0, true, 8192, true},
    {"qwen2.5-14b", "Qwen2ForCausalLM", 5120, 48, 13824, 40, 8, 152064, 131072, 0, 1e-5, 1000000.0, false, 0, true},
    {"mistral-7b", "MistralForCausalLM", 4096, 32, 14336, 32, 8, 32000, 32768, 4096, 1e-5, 10000.0, false, 0, true},
};
#define N_PRESETS ((int)(sizeof presets / sizeof *presets))

const char *const *fy_synth_presets(void) {
  static const char *names[N_PRESETS + 1];
  for (int i = 0; i < N_PRESETS; i++) names[i] = presets[i].name;
  return names;
}

static fy_model_config_t preset_config(const preset_t *p, const fy_synth_options_t *o) {
  fy_model_config_t c = {
      .architecture = o->architecture ? o->architecture : p->architecture,
      .hidden = p->hidden, .ffn = p->ffn, .n_layers = p->n_layers, .n_heads = p->n_heads,
      .n_kv_heads = p->n_kv_heads, .head_dim = p->hidden / p->n_heads, .vocab = p->vocab,
      .max_position = p->max_position, .rms_eps = p->rms_eps, .dtype = o->dtype,
      .rope = {.theta = p->rope_theta}};
  if (p->llama3_rope)
    c.rope = (fy_rope_t){.theta = p->rope_theta, .scaling = FY_ROPE_SCALING_LLAMA3, .factor = 8,
                         .low_freq_factor = 1, .high_freq_factor = 4, .original_max_position = p->original_max};
  c.qkv_bias = !strcmp(c.architecture, "Qwen2ForCausalLM");
  return c;
}

/* ---- seeded values ---- */

static uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static uint64_t name_key(uint64_t seed, const char *name) {
  uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
  for (const char *c = name; *c; c++) h = (h ^ (uint8_t)*c) * 0x100000001b3ull;
  return splitmix64(seed ^ splitmix64(h));
}

/* Roughly standard normal: the sum of four uniform 16-bit draws (Irwin-Hall). */
static float noise(uint64_t key, uint64_t i) {
  uint64_t u = splitmix64(key + i * 0x9e3779b97f4a7c15ull);
  double sum = (double)(u & 0xffff) + (double)(u >> 16 & 0xffff) + (double)(u >> 32 & 0xffff) + (double)(u >> 48);
  return (float)((sum - 2 * 65535.0) * (1.7320508075688772 / 65536.0));
}

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && !strcmp(s + n - m, suffix);
}

typedef struct {
  uint64_t key;
  float mean, scale;
} tensor_law_t;

/* Scales that keep activations finite and varied: unit-variance embeddings;
 * norms near 1; projections 1/sqrt(fan_in), the two that write into the
 * residual stream further by 1/sqrt(2 layers) (as GPT-2 initializes), so the
 * stream grows slowly and the input token still shows in the logits. */
static tensor_law_t tensor_law(const fy_value_t *v, const fy_model_config_t *c, uint64_t seed) {
  tensor_law_t law = {name_key(seed, v->name), 0, 1};
  if (ends_with(v->name, "norm.weight")) {
    law.mean = 1;
    law.scale = 0.1f;
  } else if (ends_with(v->name, ".bias")) {
    law.scale = 0.05f;
  } else if (!strcmp(v->name, "model.embed_tokens.weight")) {
    law.scale = 1;
  } else if (v->rank == 2) {
    law.scale = (float)(1 / sqrt((double)v->shape[1]));
    if (ends_with(v->name, "o_proj.weight") || ends_with(v->name, "down_proj.weight"))
      law.scale /= (float)sqrt(2.0 * (double)c->n_layers);
    if (!strcmp(v->name, "lm_head.weight")) law.scale *= 2;
  }
  return law;
}

typedef struct {
  const tensor_law_t *laws;
  const fy_safetensors_entry_t *entries;
  const int *value_of; /* entry -> index into laws */
  fy_threadpool_t *pool;
  /* the chunk being filled */
  const tensor_law_t *law;
  fy_dtype_t dtype;
  uint64_t first;
  void *buf;
} fill_ctx_t;

static void fill_range(void *ctx, int64_t begin, int64_t end) {
  fill_ctx_t *f = ctx;
  for (int64_t i = begin; i < end; i++) {
    float x = f->law->mean + f->law->scale * noise(f->law->key, f->first + (uint64_t)i);
    switch (f->dtype) {
      case FY_DTYPE_BF16: ((uint16_t *)f->buf)[i] = fy_f32_to_bf16(x); break;
      case FY_DTYPE_F16: ((uint16_t *)f->buf)[i] = fy_f32_to_f16(x); break;
      default: ((float *)f->buf)[i] = x; break;
    }
  }
}

static fy_status_t fill(void *ctx, int tensor, uint64_t offset, void *buf, size_t size) {
  fill_ctx_t *f = ctx;
  f->law = &f->laws[f->value_of[tensor]];
  f->dtype = f->entries[tensor].dtype;
  size_t esize = fy_dtype_size(f->dtype);
  f->first = offset / esize;
  f->buf = buf;
  fy_parallel_for(f->pool, (int64_t)(size / esize), 1 << 16, fill_range, f);
  return NULL;
}

/* ---- files ---- */

typedef struct {
  const char *dir;
  const fy_graph_t *g;
  fy_safetensors_entry_t *entries; /* one per weight, in graph order */
  int *value_of;
  tensor_law_t *laws;
  int n;
  fy_threadpool_t *pool;
} weights_t;

static fy_status_t path_in(const char *dir, const char *name, char *buf, size_t size) {
  int n = snprintf(buf, size, "%s/%s", dir, name);
  if (n < 0 || (size_t)n >= size) return fy_status_make(FY_INVALID_ARGUMENT, "%s/%s: path too long", dir, name);
  return NULL;
}

static fy_status_t write_shard(const weights_t *w, const char *name, int first, int count) {
  char path[4096];
  FY_TRY(path_in(w->dir, name, path, sizeof path));
  fill_ctx_t f = {.laws = w->laws, .entries = w->entries + first, .value_of = w->value_of + first, .pool = w->pool};
  return fy_safetensors_write(path, w->entries + first, count, fill, &f);
}

/* Splits at tensor boundaries into shards of about equal bytes, none empty,
 * and writes model-0000i-of-0000N.safetensors plus the index. */
static fy_status_t write_sharded(const weights_t *w, int shards) {
  if (shards > w->n)
    return fy_status_make(FY_INVALID_ARGUMENT, "synth: %d shards for %d tensors: at most one shard per tensor", shards,
                          w->n);
  uint64_t total = 0;
  for (int i = 0; i < w->n; i++) total += w->g->values[w->value_of[i]].nbytes;
  int *shard_of = malloc(sizeof *shard_of * (size_t)w->n);
  cJSON *root = cJSON_CreateObject();
  cJSON *meta = cJSON_AddObjectToObject(root, "metadata");
  cJSON *map = cJSON_AddObjectToObject(root, "weight_map");
  fy_status_t s = NULL;
  if (!shard_of || !meta || !map || !cJSON_AddNumberToObject(meta, "total_size", (double)total))
    s = fy_status_make(FY_RESOURCE_EXHAUSTED, "synth: out of memory");
  uint64_t before = 0;
  for (int i = 0; i < w->n && !s; i++) {
    /* The shard where the tensor's first byte falls, but never skipping a
     * shard and leaving enough shards for one tensor each after it. */
    int target = (int)((long double)before * shards / (total ? total : 1));
    int shard = i == 0 ? 0 : shard_of[i - 1] + (target > shard_of[i - 1]);
    if (shard < shards - (w->n - i)) shard = shards - (w->n - i);
    if (shard > shards - 1) shard = shards - 1;
    shard_of[i] = shard;
    before += w->g->values[w->value_of[i]].nbytes;
  }
  char name[64];
  for (int first = 0, k = 0; first < w->n && !s; k++) {
    int count = 0;
    while (first + count < w->n && shard_of[first + count] == k) count++;
    snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", k + 1, shards);
    for (int i = first; i < first + count && !s; i++)
      if (!cJSON_AddStringToObject(map, w->entries[i].name, name))
        s = fy_status_make(FY_RESOURCE_EXHAUSTED, "synth: out of memory");
    if (!s) s = write_shard(w, name, first, count);
    first += count;
  }
  char *text = s ? NULL : cJSON_Print(root);
  if (!s && !text) s = fy_status_make(FY_RESOURCE_EXHAUSTED, "synth: out of memory");
  char path[4096];
  if (!s) s = path_in(w->dir, "model.safetensors.index.json", path, sizeof path);
  if (!s) s = fy_file_write_atomic_bytes(path, text, strlen(text));
  free(text);
  cJSON_Delete(root);
  free(shard_of);
  return s;
}

static fy_status_t write_weights(const char *dir, const fy_graph_t *g, const fy_synth_options_t *o) {
  weights_t w = {.dir = dir, .g = g};
  int n = 0;
  for (int i = 0; i < g->n_values; i++) n += g->values[i].kind == FY_VALUE_WEIGHT;
  size_t n_values = (size_t)(g->n_values > 0 ? g->n_values : 1), n_weights = (size_t)(n > 0 ? n : 1);
  w.entries = calloc(n_weights, sizeof *w.entries);
  w.value_of = calloc(n_weights, sizeof *w.value_of);
  w.laws = calloc(n_values, sizeof *w.laws);
  fy_status_t s = NULL;
  if (!w.entries || !w.value_of || !w.laws) s = fy_status_make(FY_RESOURCE_EXHAUSTED, "synth: out of memory");
  for (int i = 0; i < g->n_values && !s; i++) {
    const fy_value_t *v = &g->values[i];
    if (v->kind != FY_VALUE_WEIGHT) continue;
    fy_safetensors_entry_t *e = &w.entries[w.n];
    *e = (fy_safetensors_entry_t){.name = v->name, .dtype = v->dtype, .rank = v->rank};
    memcpy(e->shape, v->shape, sizeof e->shape);
    w.value_of[w.n++] = i;
    w.laws[i] = tensor_law(v, &g->config, o->seed);
  }
  if (!s) s = fy_threadpool_create(0, &w.pool);
  if (!s) s = o->shards > 1 ? write_sharded(&w, o->shards) : write_shard(&w, "model.safetensors", 0, w.n);
  fy_threadpool_destroy(w.pool);
  free(w.laws);
  free(w.value_of);
  free(w.entries);
  return s;
}

fy_status_t fy_synth_write(const char *dir, const fy_synth_options_t *o) {
  const preset_t *p = NULL;
  for (int i = 0; i < N_PRESETS && !p; i++)
    if (o->preset && !strcmp(o->preset, presets[i].name)) p = &presets[i];
  if (!p) {
    char names[256] = "";
    for (int i = 0; i < N_PRESETS; i++)
      snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", presets[i].name);
    return fy_status_make(FY_INVALID_ARGUMENT, "synth: unknown preset %s (%s)", o->preset ? o->preset : "(none)",
                          names);
  }
  if (o->dtype != FY_DTYPE_F32 && o->dtype != FY_DTYPE_F16 && o->dtype != FY_DTYPE_BF16)
    return fy_status_make(FY_INVALID_ARGUMENT, "synth: dtype %s: weights must be f32, f16 or bf16",
                          fy_dtype_name(o->dtype));
  if (o->shards < 0) return fy_status_make(FY_INVALID_ARGUMENT, "synth: shards %d", o->shards);

  /* The builder checks the configuration and lists the weights. */
  fy_graph_t *g;
  FY_TRY(fy_graph_create(&g));
  g->config = preset_config(p, o);
  fy_load_options_t minimal = {.prefill_tokens = 1, .generate = 1};
  fy_status_t s = fy_status_annotate(fy_llama_build(g, &minimal, NULL), "synth %s", p->name);
  if (!s) s = fy_mkdir_p(dir);
  bool weights = !o->shape_only && (!p->real || o->with_weights);
  /* The folder's previous model files go, so that the loader cannot pick up
   * a stale layout (it prefers model.safetensors over an index). */
  char path[4096];
  static const char *const layouts[] = {"model.safetensors", "model.safetensors.index.json"};
  for (int i = 0; i < 2 && !s; i++) {
    s = path_in(dir, layouts[i], path, sizeof path);
    if (!s && (!weights || (i == 0) == (o->shards > 1))) unlink(path);
  }
  if (!s && weights) s = write_weights(dir, g, o);
  if (!s) s = path_in(dir, "config.json", path, sizeof path);
  /* config.json last: a folder with one is complete. */
  if (!s) s = fy_hf_config_write(path, &g->config, p->sliding_window);
  fy_graph_destroy(g);
  return s;
}
