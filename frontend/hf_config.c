/* config.json reader and writer (see hf_config.h). Defaults follow Hugging
 * Face transformers' LlamaConfig where a field is optional there. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/hf_config.h"
#include "support/file.h"

/* Dimensions end up in int attributes (heads, head_dim) and in products that
 * must not overflow int64: 2^31 - 1 bounds every integer field. */
#define MAX_FIELD_INT 2147483647.0

static fy_status_t field_error(fy_code_t code, const char *what, const char *field, const char *problem) {
  return fy_status_make(code, "%s: field %s: %s", what, field, problem);
}

static bool absent(const cJSON *item) { return !item || cJSON_IsNull(item); }

/* A positive integer field; when missing, def (or an error when def is 0). */
static fy_status_t get_int(const cJSON *root, const char *what, const char *field, int64_t def, int64_t *out) {
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, field);
  if (absent(item)) {
    if (!def) return field_error(FY_INVALID_ARGUMENT, what, field, "missing");
    *out = def;
    return NULL;
  }
  double d = cJSON_IsNumber(item) ? item->valuedouble : -1;
  if (!(d >= 1 && d <= MAX_FIELD_INT) || (double)(int64_t)d != d)
    return field_error(FY_INVALID_ARGUMENT, what, field, "must be a positive integer");
  *out = (int64_t)d;
  return NULL;
}

static fy_status_t get_positive(const cJSON *obj, const char *what, const char *field, double def, double *out) {
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, field);
  if (absent(item)) {
    if (!def) return field_error(FY_INVALID_ARGUMENT, what, field, "missing");
    *out = def;
    return NULL;
  }
  if (!cJSON_IsNumber(item) || !(item->valuedouble > 0) || item->valuedouble > 1e300)
    return field_error(FY_INVALID_ARGUMENT, what, field, "must be a positive number");
  *out = item->valuedouble;
  return NULL;
}

static fy_status_t get_bool(const cJSON *root, const char *what, const char *field, bool *out) {
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, field);
  if (absent(item)) {
    *out = false;
    return NULL;
  }
  if (!cJSON_IsBool(item)) return field_error(FY_INVALID_ARGUMENT, what, field, "must be true or false");
  *out = cJSON_IsTrue(item);
  return NULL;
}

static fy_status_t parse_rope_scaling(const cJSON *root, const char *what, fy_rope_t *rope) {
  const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
  rope->scaling = FY_ROPE_SCALING_NONE;
  if (absent(rs)) return NULL;
  if (!cJSON_IsObject(rs)) return field_error(FY_INVALID_ARGUMENT, what, "rope_scaling", "must be null or an object");
  /* transformers writes rope_type; configs from before 4.43 write type. */
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
  if (absent(type)) type = cJSON_GetObjectItemCaseSensitive(rs, "type");
  if (!cJSON_IsString(type))
    return field_error(FY_INVALID_ARGUMENT, what, "rope_scaling.rope_type", "missing or not a string");
  if (!strcmp(type->valuestring, "default")) return NULL;
  if (strcmp(type->valuestring, "llama3"))
    return fy_status_make(FY_INCOMPATIBLE, "%s: field rope_scaling.rope_type: %s is not supported (only llama3)",
                          what, type->valuestring);
  rope->scaling = FY_ROPE_SCALING_LLAMA3;
  FY_TRY(get_positive(rs, what, "factor", 0, &rope->factor));
  FY_TRY(get_positive(rs, what, "low_freq_factor", 0, &rope->low_freq_factor));
  FY_TRY(get_positive(rs, what, "high_freq_factor", 0, &rope->high_freq_factor));
  FY_TRY(get_int(rs, what, "original_max_position_embeddings", 0, &rope->original_max_position));
  if (rope->high_freq_factor <= rope->low_freq_factor)
    return field_error(FY_INVALID_ARGUMENT, what, "rope_scaling.high_freq_factor",
                       "must be greater than low_freq_factor");
  return NULL;
}

static fy_status_t parse_dtype(const cJSON *root, const char *what, fy_dtype_t *out) {
  /* transformers 4.56 renamed torch_dtype to dtype. */
  const char *field = "torch_dtype";
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, field);
  if (absent(item)) item = cJSON_GetObjectItemCaseSensitive(root, field = "dtype");
  *out = FY_DTYPE_BF16;
  if (absent(item)) return NULL;
  if (!cJSON_IsString(item)) return field_error(FY_INVALID_ARGUMENT, what, field, "must be a string");
  static const struct { const char *name; fy_dtype_t dtype; } names[] = {
      {"bfloat16", FY_DTYPE_BF16}, {"float16", FY_DTYPE_F16}, {"float32", FY_DTYPE_F32}};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    if (!strcmp(item->valuestring, names[i].name)) {
      *out = names[i].dtype;
      return NULL;
    }
  }
  return fy_status_make(FY_INCOMPATIBLE, "%s: field %s: %s is not supported (bfloat16, float16, float32)", what,
                        field, item->valuestring);
}

static fy_status_t parse_unsupported_features(const cJSON *root, const char *what) {
  const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
  if (!absent(act) && (!cJSON_IsString(act) || strcmp(act->valuestring, "silu")))
    return fy_status_make(FY_INCOMPATIBLE, "%s: field hidden_act: only silu is supported", what);
  static const char *const biases[] = {"attention_bias", "mlp_bias"};
  for (int i = 0; i < 2; i++) {
    bool on = false;
    FY_TRY(get_bool(root, what, biases[i], &on));
    if (on) return fy_status_make(FY_INCOMPATIBLE, "%s: field %s: biases there are not supported", what, biases[i]);
  }
  return NULL;
}

static fy_status_t parse_sliding_window(const cJSON *root, const char *what, int64_t *out) {
  *out = 0;
  const cJSON *use = cJSON_GetObjectItemCaseSensitive(root, "use_sliding_window");
  bool on = true;
  if (!absent(use)) FY_TRY(get_bool(root, what, "use_sliding_window", &on));
  const cJSON *w = cJSON_GetObjectItemCaseSensitive(root, "sliding_window");
  if (!on || absent(w)) return NULL;
  return get_int(root, what, "sliding_window", 0, out);
}

static fy_status_t parse(const cJSON *root, const char *what, fy_arena_t *arena, fy_model_config_t *c,
                         int64_t *sliding_window) {
  if (!cJSON_IsObject(root)) return fy_status_make(FY_INVALID_ARGUMENT, "%s: not a JSON object", what);
  const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
  if (!cJSON_IsArray(archs) || !cJSON_IsString(archs->child))
    return field_error(FY_INVALID_ARGUMENT, what, "architectures", "missing or not an array of names");
  c->architecture = fy_arena_strdup(arena, archs->child->valuestring);
  if (!c->architecture) return fy_status_make(FY_RESOURCE_EXHAUSTED, "%s: out of memory", what);
  FY_TRY(get_int(root, what, "hidden_size", 0, &c->hidden));
  FY_TRY(get_int(root, what, "intermediate_size", 0, &c->ffn));
  FY_TRY(get_int(root, what, "num_hidden_layers", 0, &c->n_layers));
  FY_TRY(get_int(root, what, "num_attention_heads", 0, &c->n_heads));
  FY_TRY(get_int(root, what, "num_key_value_heads", c->n_heads, &c->n_kv_heads));
  if (c->n_heads % c->n_kv_heads)
    return field_error(FY_INVALID_ARGUMENT, what, "num_key_value_heads", "must divide num_attention_heads");
  const cJSON *head_dim = cJSON_GetObjectItemCaseSensitive(root, "head_dim");
  if (absent(head_dim) && c->hidden % c->n_heads)
    return field_error(FY_INVALID_ARGUMENT, what, "head_dim",
                       "missing, and hidden_size is not a multiple of num_attention_heads");
  FY_TRY(get_int(root, what, "head_dim", c->hidden / c->n_heads, &c->head_dim));
  if (c->head_dim % 2) return field_error(FY_INVALID_ARGUMENT, what, "head_dim", "must be even for rotary embeddings");
  FY_TRY(get_int(root, what, "vocab_size", 0, &c->vocab));
  FY_TRY(get_int(root, what, "max_position_embeddings", 2048, &c->max_position));
  FY_TRY(get_positive(root, what, "rms_norm_eps", 1e-6, &c->rms_eps));
  FY_TRY(get_positive(root, what, "rope_theta", 10000.0, &c->rope.theta));
  FY_TRY(parse_rope_scaling(root, what, &c->rope));
  FY_TRY(get_bool(root, what, "tie_word_embeddings", &c->tie_embeddings));
  FY_TRY(parse_dtype(root, what, &c->dtype));
  FY_TRY(parse_unsupported_features(root, what));
  FY_TRY(parse_sliding_window(root, what, sliding_window));
  c->qkv_bias = !strcmp(c->architecture, "Qwen2ForCausalLM");
  return NULL;
}

fy_status_t fy_hf_config_parse(const char *json, const char *what, fy_arena_t *arena, fy_model_config_t *out_config,
                               int64_t *out_sliding_window) {
  cJSON *root = cJSON_Parse(json);
  if (!root) return fy_status_make(FY_INVALID_ARGUMENT, "%s: not valid JSON", what);
  fy_model_config_t c = {0};
  int64_t window = 0;
  fy_status_t s = parse(root, what, arena, &c, &window);
  cJSON_Delete(root);
  if (s) return s;
  *out_config = c;
  if (out_sliding_window) *out_sliding_window = window;
  return NULL;
}

fy_status_t fy_hf_config_read(const char *path, fy_arena_t *arena, fy_model_config_t *out_config,
                              int64_t *out_sliding_window) {
  char *json;
  FY_TRY(fy_file_read(path, &json, NULL));
  fy_status_t s = fy_hf_config_parse(json, path, arena, out_config, out_sliding_window);
  free(json);
  return s;
}

static const char *model_type(const char *architecture) {
  if (!strcmp(architecture, "MistralForCausalLM")) return "mistral";
  if (!strcmp(architecture, "Qwen2ForCausalLM")) return "qwen2";
  return "llama";
}

static const char *torch_dtype(fy_dtype_t dtype) {
  return dtype == FY_DTYPE_F32 ? "float32" : dtype == FY_DTYPE_F16 ? "float16" : "bfloat16";
}

fy_status_t fy_hf_config_write(const char *path, const fy_model_config_t *c, int64_t sliding_window) {
  cJSON *root = cJSON_CreateObject();
  cJSON *archs = cJSON_AddArrayToObject(root, "architectures");
  bool ok = archs && cJSON_AddItemToArray(archs, cJSON_CreateString(c->architecture));
  ok = ok && cJSON_AddStringToObject(root, "model_type", model_type(c->architecture));
  ok = ok && cJSON_AddStringToObject(root, "hidden_act", "silu");
  ok = ok && cJSON_AddNumberToObject(root, "hidden_size", (double)c->hidden);
  ok = ok && cJSON_AddNumberToObject(root, "intermediate_size", (double)c->ffn);
  ok = ok && cJSON_AddNumberToObject(root, "num_hidden_layers", (double)c->n_layers);
  ok = ok && cJSON_AddNumberToObject(root, "num_attention_heads", (double)c->n_heads);
  ok = ok && cJSON_AddNumberToObject(root, "num_key_value_heads", (double)c->n_kv_heads);
  if (c->head_dim * c->n_heads != c->hidden)
    ok = ok && cJSON_AddNumberToObject(root, "head_dim", (double)c->head_dim);
  ok = ok && cJSON_AddNumberToObject(root, "vocab_size", (double)c->vocab);
  ok = ok && cJSON_AddNumberToObject(root, "max_position_embeddings", (double)c->max_position);
  ok = ok && cJSON_AddNumberToObject(root, "rms_norm_eps", c->rms_eps);
  ok = ok && cJSON_AddNumberToObject(root, "rope_theta", c->rope.theta);
  if (c->rope.scaling == FY_ROPE_SCALING_LLAMA3) {
    cJSON *rs = cJSON_AddObjectToObject(root, "rope_scaling");
    ok = ok && rs && cJSON_AddNumberToObject(rs, "factor", c->rope.factor);
    ok = ok && cJSON_AddNumberToObject(rs, "low_freq_factor", c->rope.low_freq_factor);
    ok = ok && cJSON_AddNumberToObject(rs, "high_freq_factor", c->rope.high_freq_factor);
    ok = ok && cJSON_AddNumberToObject(rs, "original_max_position_embeddings", (double)c->rope.original_max_position);
    ok = ok && cJSON_AddStringToObject(rs, "rope_type", "llama3");
  } else {
    ok = ok && cJSON_AddNullToObject(root, "rope_scaling");
  }
  /* Mistral's transformers default is a 4096-token window: say "none" explicitly. */
  if (sliding_window > 0)
    ok = ok && cJSON_AddNumberToObject(root, "sliding_window", (double)sliding_window);
  else
    ok = ok && cJSON_AddNullToObject(root, "sliding_window");
  if (!strcmp(c->architecture, "Qwen2ForCausalLM"))
    ok = ok && cJSON_AddBoolToObject(root, "use_sliding_window", sliding_window > 0);
  ok = ok && cJSON_AddBoolToObject(root, "tie_word_embeddings", c->tie_embeddings);
  ok = ok && cJSON_AddStringToObject(root, "torch_dtype", torch_dtype(c->dtype));
  char *text = ok ? cJSON_Print(root) : NULL;
  cJSON_Delete(root);
  if (!text) return fy_status_make(FY_RESOURCE_EXHAUSTED, "%s: out of memory", path);
  size_t n = strlen(text);
  text[n] = '\n'; /* replaces the NUL: the file ends with a newline */
  fy_status_t s = fy_file_write_atomic_bytes(path, text, n + 1);
  free(text);
  return s;
}
