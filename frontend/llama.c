/* Llama-family graph builder: LlamaForCausalLM, MistralForCausalLM and
 * Qwen2ForCausalLM (q/k/v bias). Requires g->config filled by the config
 * reader; produces the weights (bound to the tensor index, or shape-only),
 * the KV cache state, and two stages: prefill over the prompt and decode of
 * one token, each ending in the logits of the last token. */
#include <stdio.h>
#include <string.h>

#include "frontend/llama.h"

bool fy_llama_architecture_supported(const char *architecture) {
  return architecture && (!strcmp(architecture, "LlamaForCausalLM") || !strcmp(architecture, "MistralForCausalLM") ||
                          !strcmp(architecture, "Qwen2ForCausalLM"));
}

typedef struct {
  fy_graph_t *g;
  const fy_tensor_index_t *tensors;
} builder_t;

static fy_status_t add_weight(builder_t *b, const char *name, int layer, int rank, int64_t d0, int64_t d1, int *out_id) {
  fy_value_t v = {.name = name, .kind = FY_VALUE_WEIGHT, .rank = rank, .shape = {d0, d1}, .layer = layer,
                  .stage = -1, .file = -1, .dtype = b->g->config.dtype};
  char expected[64];
  if (b->tensors) {
    const fy_tensor_info_t *t = fy_tensor_index_find(b->tensors, name);
    fy_shape_str(&v, expected, sizeof expected);
    if (!t) return fy_status_make(FY_INVALID_ARGUMENT, "tensor %s: missing (expected %s)", name, expected);
    bool same = t->rank == rank;
    for (int i = 0; same && i < rank; i++) same = t->shape[i] == v.shape[i];
    if (!same) {
      fy_value_t found = {.rank = t->rank};
      memcpy(found.shape, t->shape, sizeof found.shape);
      char got[64];
      return fy_status_make(FY_INVALID_ARGUMENT, "tensor %s: expected %s, found %s", name, expected,
                            fy_shape_str(&found, got, sizeof got));
    }
    if (t->dtype != FY_DTYPE_F32 && t->dtype != FY_DTYPE_F16 && t->dtype != FY_DTYPE_BF16)
      return fy_status_make(FY_INCOMPATIBLE, "tensor %s: dtype %s is not a float type (f32, f16, bf16)", name,
                            fy_dtype_name(t->dtype));
    v.dtype = t->dtype;
    v.file = t->file;
    v.file_offset = t->file_offset;
  }
  return fy_graph_add_value(b->g, &v, out_id);
}

typedef struct {
  int ln1, wq, bq, wk, bk, wv, bv, wo, ln2, wg, wu, wd, kcache, vcache;
} layer_values_t;

typedef struct {
  builder_t *b;
  int stage;
  int64_t rows;
  const char *stage_name;
} stage_ctx_t;

static fy_status_t activation(stage_ctx_t *s, const char *name, int64_t rows, int64_t cols, int layer, int *out_id) {
  fy_value_t v = {.name = name, .kind = FY_VALUE_ACTIVATION, .dtype = FY_DTYPE_F32, .rank = 2, .shape = {rows, cols},
                  .per_token = rows == s->rows, .stage = s->stage, .layer = layer, .file = -1};
  return fy_graph_add_value(s->b->g, &v, out_id);
}

static fy_status_t node(stage_ctx_t *s, fy_op_t op, const char *name, int layer, const int *inputs, int n_inputs,
                        int output, const fy_node_attrs_t *attrs) {
  fy_node_t n = {.op = op, .name = name, .n_inputs = n_inputs, .output = output, .layer = layer};
  memcpy(n.inputs, inputs, sizeof(int) * (size_t)n_inputs);
  if (attrs) n.attrs = *attrs;
  return fy_graph_add_node(s->b->g, &n, NULL);
}

/* One op whose output is a fresh [rows, cols] activation named "<stage>.<layer prefix>.<what>". */
static fy_status_t op(stage_ctx_t *s, fy_op_t kind, int layer, const char *what, const int *inputs, int n_inputs,
                      int64_t cols, const fy_node_attrs_t *attrs, int *out_id) {
  char name[256];
  if (layer >= 0)
    snprintf(name, sizeof name, "%s.layers.%d.%s", s->stage_name, layer, what);
  else
    snprintf(name, sizeof name, "%s.%s", s->stage_name, what);
  FY_TRY(activation(s, name, s->rows, cols, layer, out_id));
  return node(s, kind, name, layer, inputs, n_inputs, *out_id, attrs);
}

static fy_status_t matmul(stage_ctx_t *s, int layer, const char *what, int x, int w, int bias, int *out_id) {
  int in[3] = {x, w, bias};
  return op(s, FY_OP_MATMUL, layer, what, in, bias >= 0 ? 3 : 2, s->b->g->values[w].shape[0], NULL, out_id);
}

static fy_status_t build_stage(builder_t *b, const char *name, int64_t rows, int64_t repeat, int embed, int norm,
                               int head, const layer_values_t *lv) {
  fy_graph_t *g = b->g;
  const fy_model_config_t *c = &g->config;
  stage_ctx_t s = {b, 0, rows, name};
  FY_TRY(fy_graph_begin_stage(g, name, rows, repeat, &s.stage));
  char vname[256];
  snprintf(vname, sizeof vname, "%s.tokens", name);
  fy_value_t ids_v = {.name = vname, .kind = FY_VALUE_INPUT, .dtype = FY_DTYPE_I32, .rank = 1, .shape = {rows},
                      .per_token = true, .stage = s.stage, .layer = -1, .file = -1};
  int ids, x;
  FY_TRY(fy_graph_add_value(g, &ids_v, &ids));
  FY_TRY(op(&s, FY_OP_EMBED, -1, "embed", (int[]){ids, embed}, 2, c->hidden, NULL, &x));

  int64_t q_cols = c->n_heads * c->head_dim, kv_cols = c->n_kv_heads * c->head_dim;
  fy_node_attrs_t norm_attrs = {.eps = (float)c->rms_eps};
  fy_node_attrs_t q_rope = {.n_heads = (int)c->n_heads, .n_kv_heads = (int)c->n_kv_heads,
                            .head_dim = (int)c->head_dim, .rope = c->rope};
  fy_node_attrs_t k_rope = q_rope;
  k_rope.n_heads = (int)c->n_kv_heads;
  for (int l = 0; l < g->n_layers; l++) {
    const layer_values_t *w = &lv[l];
    int h, q, k, v, qr, kr, a, o, x1, h2, gt, up, m, d;
    FY_TRY(op(&s, FY_OP_RMSNORM, l, "attn_norm", (int[]){x, w->ln1}, 2, c->hidden, &norm_attrs, &h));
    FY_TRY(matmul(&s, l, "q", h, w->wq, w->bq, &q));
    FY_TRY(matmul(&s, l, "k", h, w->wk, w->bk, &k));
    FY_TRY(matmul(&s, l, "v", h, w->wv, w->bv, &v));
    FY_TRY(op(&s, FY_OP_ROPE, l, "q_rope", (int[]){q}, 1, q_cols, &q_rope, &qr));
    FY_TRY(op(&s, FY_OP_ROPE, l, "k_rope", (int[]){k}, 1, kv_cols, &k_rope, &kr));
    FY_TRY(op(&s, FY_OP_ATTENTION, l, "attention", (int[]){qr, kr, v, w->kcache, w->vcache}, 5, q_cols, &q_rope, &a));
    FY_TRY(matmul(&s, l, "attn_out", a, w->wo, -1, &o));
    FY_TRY(op(&s, FY_OP_ADD, l, "attn_residual", (int[]){x, o}, 2, c->hidden, NULL, &x1));
    FY_TRY(op(&s, FY_OP_RMSNORM, l, "ffn_norm", (int[]){x1, w->ln2}, 2, c->hidden, &norm_attrs, &h2));
    FY_TRY(matmul(&s, l, "gate", h2, w->wg, -1, &gt));
    FY_TRY(matmul(&s, l, "up", h2, w->wu, -1, &up));
    FY_TRY(op(&s, FY_OP_SILU_MUL, l, "ffn_act", (int[]){gt, up}, 2, c->ffn, NULL, &m));
    FY_TRY(matmul(&s, l, "down", m, w->wd, -1, &d));
    FY_TRY(op(&s, FY_OP_ADD, l, "ffn_residual", (int[]){x1, d}, 2, c->hidden, NULL, &x));
  }
  /* Only the last token's logits are computed: generation needs no more, and
   * a prefill of N+M tokens must then agree with prefill N + decode M. */
  int last, normed, logits;
  snprintf(vname, sizeof vname, "%s.last", name);
  FY_TRY(activation(&s, vname, 1, c->hidden, -1, &last));
  FY_TRY(node(&s, FY_OP_LAST_ROW, vname, -1, (int[]){x}, 1, last, NULL));
  snprintf(vname, sizeof vname, "%s.final_norm", name);
  FY_TRY(activation(&s, vname, 1, c->hidden, -1, &normed));
  FY_TRY(node(&s, FY_OP_RMSNORM, vname, -1, (int[]){last, norm}, 2, normed, &norm_attrs));
  snprintf(vname, sizeof vname, "%s.logits", name);
  fy_value_t out_v = {.name = vname, .kind = FY_VALUE_OUTPUT, .dtype = FY_DTYPE_F32, .rank = 2,
                      .shape = {1, c->vocab}, .stage = s.stage, .layer = -1, .file = -1};
  FY_TRY(fy_graph_add_value(g, &out_v, &logits));
  return node(&s, FY_OP_MATMUL, vname, -1, (int[]){normed, head}, 2, logits, NULL);
}

fy_status_t fy_llama_build(fy_graph_t *g, const fy_load_options_t *options, const fy_tensor_index_t *tensors) {
  const fy_model_config_t *c = &g->config;
  if (!fy_llama_architecture_supported(c->architecture))
    return fy_status_make(FY_INCOMPATIBLE, "architecture %s is not supported (LlamaForCausalLM, MistralForCausalLM, "
                          "Qwen2ForCausalLM)", c->architecture ? c->architecture : "(none)");
  if (c->hidden <= 0 || c->ffn <= 0 || c->n_layers <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 ||
      c->head_dim <= 0 || c->vocab <= 0 || c->n_heads % c->n_kv_heads || c->head_dim % 2)
    return fy_status_make(FY_INVALID_ARGUMENT, "config: inconsistent dimensions (hidden %lld, heads %lld, kv heads "
                          "%lld, head_dim %lld)", (long long)c->hidden, (long long)c->n_heads,
                          (long long)c->n_kv_heads, (long long)c->head_dim);
  fy_load_options_t o = *options;
  if (o.prefill_tokens <= 0) o.prefill_tokens = 512;
  if (o.generate <= 0) o.generate = 128;
  if (o.context <= 0) o.context = o.prefill_tokens + o.generate;
  if (o.context < o.prefill_tokens)
    return fy_status_make(FY_INVALID_ARGUMENT, "context %lld is shorter than the prompt (%lld tokens)",
                          (long long)o.context, (long long)o.prefill_tokens);
  g->context = o.context;
  g->shape_only = tensors == NULL;

  builder_t b = {g, tensors};
  int64_t q_cols = c->n_heads * c->head_dim, kv_cols = c->n_kv_heads * c->head_dim;
  char name[256];
  int embed, norm, head;
  /* Weights are created in the order HF checkpoints store them, so that a
   * layer's tensors are adjacent and streaming can coalesce their copies. */
  FY_TRY(add_weight(&b, "model.embed_tokens.weight", -1, 2, c->vocab, c->hidden, &embed));
  layer_values_t *lv = fy_arena_calloc(&g->arena, (size_t)c->n_layers, sizeof *lv);
  if (!lv) return fy_status_make(FY_RESOURCE_EXHAUSTED, "graph: out of memory");
  for (int l = 0; l < c->n_layers; l++) {
    layer_values_t *w = &lv[l];
    snprintf(name, sizeof name, "model.layers.%d", l);
    FY_TRY(fy_graph_add_layer(g, name, NULL));
#define W(field, suffix, rank, d0, d1)                                                      \
  do {                                                                                      \
    snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix);                           \
    FY_TRY(fy_status_annotate(add_weight(&b, name, l, rank, d0, d1, &w->field), "layer %d", l)); \
  } while (0)
    W(ln1, "input_layernorm.weight", 1, c->hidden, 0);
    W(wq, "self_attn.q_proj.weight", 2, q_cols, c->hidden);
    W(wk, "self_attn.k_proj.weight", 2, kv_cols, c->hidden);
    W(wv, "self_attn.v_proj.weight", 2, kv_cols, c->hidden);
    w->bq = w->bk = w->bv = -1;
    if (c->qkv_bias) {
      W(bq, "self_attn.q_proj.bias", 1, q_cols, 0);
      W(bk, "self_attn.k_proj.bias", 1, kv_cols, 0);
      W(bv, "self_attn.v_proj.bias", 1, kv_cols, 0);
    }
    W(wo, "self_attn.o_proj.weight", 2, c->hidden, q_cols);
    W(ln2, "post_attention_layernorm.weight", 1, c->hidden, 0);
    W(wg, "mlp.gate_proj.weight", 2, c->ffn, c->hidden);
    W(wu, "mlp.up_proj.weight", 2, c->ffn, c->hidden);
    W(wd, "mlp.down_proj.weight", 2, c->hidden, c->ffn);
#undef W
    for (int kv = 0; kv < 2; kv++) {
      snprintf(name, sizeof name, "kv_cache.layers.%d.%s", l, kv ? "v" : "k");
      fy_value_t cache = {.name = name, .kind = FY_VALUE_STATE, .dtype = FY_DTYPE_F32, .rank = 2,
                          .shape = {o.context, kv_cols}, .layer = l, .stage = -1, .file = -1};
      FY_TRY(fy_graph_add_value(g, &cache, kv ? &w->vcache : &w->kcache));
    }
  }
  FY_TRY(add_weight(&b, "model.norm.weight", -1, 1, c->hidden, 0, &norm));
  head = embed;
  if (!c->tie_embeddings) FY_TRY(add_weight(&b, "lm_head.weight", -1, 2, c->vocab, c->hidden, &head));

  FY_TRY(build_stage(&b, "prefill", o.prefill_tokens, 1, embed, norm, head, lv));
  FY_TRY(build_stage(&b, "decode", 1, o.generate, embed, norm, head, lv));
  return fy_graph_verify(g);
}
