/* fy_model_load: a Hugging Face model folder in, a verified graph out.
 * Reads DIR/config.json, then the weight headers (model.safetensors, or the
 * shards named by model.safetensors.index.json), and hands the tensor index
 * to the architecture builder. Without weight files (or with shape_only) the
 * graph is shape-only. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frontend/frontend.h"
#include "frontend/hf_config.h"
#include "frontend/llama.h"
#include "frontend/safetensors.h"
#include "support/file.h"

static fy_status_t join(const char *dir, const char *name, char *buf, size_t size) {
  int n = snprintf(buf, size, "%s/%s", dir, name);
  if (n < 0 || (size_t)n >= size) return fy_status_make(FY_INVALID_ARGUMENT, "%s/%s: path too long", dir, name);
  return NULL;
}

/* A shard name from the index must be a plain file name inside the folder. */
static bool plain_file_name(const char *name) {
  return *name && !strchr(name, '/') && strcmp(name, ".") && strcmp(name, "..");
}

typedef struct {
  const char *name;
  int file;
} shard_t;

static fy_status_t read_sharded(const char *dir, const char *index_path, fy_graph_t *g, fy_tensor_index_t *index) {
  char *text;
  FY_TRY(fy_file_read(index_path, &text, NULL));
  cJSON *root = cJSON_Parse(text);
  free(text);
  if (!root) return fy_status_make(FY_INVALID_ARGUMENT, "%s: not valid JSON", index_path);
  fy_status_t s = NULL;
  const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
  int n_entries = cJSON_IsObject(map) ? cJSON_GetArraySize(map) : 0;
  shard_t *shards = calloc((size_t)(n_entries > 0 ? n_entries : 1), sizeof *shards);
  int n_shards = 0;
  if (!cJSON_IsObject(map) || n_entries == 0)
    s = fy_status_make(FY_INVALID_ARGUMENT, "%s: field weight_map: missing, empty or not an object", index_path);
  else if (!shards)
    s = fy_status_make(FY_RESOURCE_EXHAUSTED, "%s: out of memory", index_path);
  /* Open every shard once, in order of first mention. */
  for (const cJSON *e = s ? NULL : map->child; e && !s; e = e->next) {
    if (!cJSON_IsString(e) || !plain_file_name(e->valuestring)) {
      s = fy_status_make(FY_INVALID_ARGUMENT, "%s: tensor %s: shard must be a file name in the model folder",
                         index_path, e->string);
      break;
    }
    bool seen = false;
    for (int i = 0; i < n_shards && !seen; i++) seen = !strcmp(shards[i].name, e->valuestring);
    if (seen) continue;
    char path[4096];
    shards[n_shards] = (shard_t){e->valuestring, g->n_files};
    s = join(dir, e->valuestring, path, sizeof path);
    if (!s) s = fy_safetensors_read(path, g, index);
    if (!s) n_shards++;
  }
  /* Every tensor the map lists must be in the shard it names. */
  for (const cJSON *e = s ? NULL : map->child; e && !s; e = e->next) {
    const fy_tensor_info_t *t = fy_tensor_index_find(index, e->string);
    int file = -1;
    for (int i = 0; i < n_shards && file < 0; i++)
      if (!strcmp(shards[i].name, e->valuestring)) file = shards[i].file;
    if (!t || t->file != file)
      s = fy_status_make(FY_INVALID_ARGUMENT, "%s: tensor %s: listed in shard %s but missing from it", index_path,
                         e->string, e->valuestring);
  }
  free(shards);
  cJSON_Delete(root);
  return s;
}

static fy_status_t load(const char *dir, const fy_load_options_t *options, fy_graph_t *g) {
  char path[4096];
  int64_t sliding_window;
  FY_TRY(join(dir, "config.json", path, sizeof path));
  FY_TRY(fy_hf_config_read(path, &g->arena, &g->config, &sliding_window));

  fy_tensor_index_t index = {0};
  bool have_weights = false;
  fy_status_t s = NULL;
  if (!options->shape_only) {
    /* Like transformers: a single model.safetensors wins over an index. */
    char index_path[4096];
    s = join(dir, "model.safetensors", path, sizeof path);
    if (!s) s = join(dir, "model.safetensors.index.json", index_path, sizeof index_path);
    if (!s && access(path, F_OK) == 0) {
      have_weights = true;
      s = fy_safetensors_read(path, g, &index);
    } else if (!s && access(index_path, F_OK) == 0) {
      have_weights = true;
      s = read_sharded(dir, index_path, g, &index);
    }
  }
  if (!s) s = fy_status_annotate(fy_llama_build(g, options, have_weights ? &index : NULL), "%s", dir);
  fy_tensor_index_free(&index);
  if (!s && sliding_window > 0 && g->context > sliding_window)
    s = fy_status_make(FY_INCOMPATIBLE, "%s/config.json: field sliding_window: the context (%lld tokens) is longer "
                       "than the %lld-token window, and sliding-window attention is not supported", dir,
                       (long long)g->context, (long long)sliding_window);
  return s;
}

fy_status_t fy_model_load(const char *dir, const fy_load_options_t *options, fy_graph_t **out_graph) {
  fy_load_options_t defaults = {0};
  fy_graph_t *g;
  FY_TRY(fy_graph_create(&g));
  fy_status_t s = load(dir, options ? options : &defaults, g);
  if (s) {
    fy_graph_destroy(g);
    return s;
  }
  *out_graph = g;
  return NULL;
}
