/* ferry's graph IR.
 *
 * A graph holds one model: its configuration, its values (tensors), its nodes
 * in execution order grouped into stages (prefill, decode), its layers (the
 * unit of streaming) and the weight files its weights live in. All strings
 * and arrays are owned by the graph; fy_graph_destroy frees everything.
 * Values and nodes are referred to by index (int), -1 meaning "none". */
#ifndef FERRY_IR_IR_H
#define FERRY_IR_IR_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ferry/status.h"
#include "support/arena.h"
#include "support/dtype.h"

#define FY_MAX_RANK 4
#define FY_MAX_NODE_INPUTS 6

typedef enum fy_value_kind {
  FY_VALUE_INPUT,      /* fed per step: token ids */
  FY_VALUE_OUTPUT,     /* read back per step: logits */
  FY_VALUE_WEIGHT,     /* read-only bytes in a model file */
  FY_VALUE_ACTIVATION, /* produced and consumed within one stage step */
  FY_VALUE_STATE,      /* persists across steps and stages: the KV cache */
} fy_value_kind_t;

typedef struct fy_value {
  const char *name;
  fy_dtype_t dtype;
  fy_value_kind_t kind;
  int rank;
  int64_t shape[FY_MAX_RANK];
  /* For inputs, outputs and activations, dimension 0 is the token dimension:
   * shape[0] is the stage's max_tokens and a step uses its first n_tokens rows. */
  bool per_token;
  int stage; /* stage that produces it (activations, inputs, outputs), -1 otherwise */
  int layer; /* layer it belongs to, -1 for global values */
  /* Weights: where the bytes are. file is -1 in a shape-only graph. */
  int file;
  uint64_t file_offset; /* from the start of the file */
  uint64_t nbytes;      /* element count × dtype size */
} fy_value_t;

typedef enum fy_op {
  FY_OP_EMBED,     /* ids[T] i32, table[V,H] -> x[T,H] f32 */
  FY_OP_RMSNORM,   /* x[T,H], w[H] -> y[T,H]; attrs.eps */
  FY_OP_MATMUL,    /* x[T,K], w[N,K] (, bias[N]) -> y[T,N] = x wᵀ + bias */
  FY_OP_ROPE,      /* x[T, heads*head_dim] -> rotated; attrs.n_heads, head_dim, rope */
  FY_OP_ATTENTION, /* q[T,H*d], k[T,KV*d], v[T,KV*d], kcache[C,KV*d], vcache[C,KV*d] -> o[T,H*d];
                      stores k, v at rows pos..pos+T of the caches, then attends causally */
  FY_OP_SILU_MUL,  /* gate[T,F], up[T,F] -> silu(gate) * up */
  FY_OP_ADD,       /* a[T,H], b[T,H] -> a + b */
  FY_OP_LAST_ROW,  /* x[T,H] -> x[n_tokens-1] as [1,H] */
  FY_OP_COUNT
} fy_op_t;

typedef enum fy_rope_scaling {
  FY_ROPE_SCALING_NONE,
  FY_ROPE_SCALING_LLAMA3,
} fy_rope_scaling_t;

typedef struct fy_rope {
  double theta;
  fy_rope_scaling_t scaling;
  /* llama3 rope_scaling */
  double factor, low_freq_factor, high_freq_factor;
  int64_t original_max_position;
} fy_rope_t;

typedef struct fy_node_attrs {
  float eps;                           /* rmsnorm */
  int n_heads, n_kv_heads, head_dim;   /* rope (n_heads = heads of x), attention */
  fy_rope_t rope;                      /* rope */
} fy_node_attrs_t;

typedef struct fy_node {
  fy_op_t op;
  const char *name;
  int n_inputs;
  int inputs[FY_MAX_NODE_INPUTS];
  int output;
  int layer; /* -1 for nodes outside any layer (embedding, head) */
  int stage;
  fy_node_attrs_t attrs;
} fy_node_t;

typedef struct fy_layer {
  const char *name; /* the weight-name prefix, e.g. "model.layers.12" */
} fy_layer_t;

typedef struct fy_stage {
  const char *name;   /* "prefill", "decode" */
  int first_node;     /* nodes of a stage are contiguous, stages in order */
  int n_nodes;
  int64_t max_tokens; /* rows of the token dimension */
  int64_t repeat;     /* invocations per request */
} fy_stage_t;

typedef struct fy_weight_file {
  const char *path;
  uint64_t size;
} fy_weight_file_t;

typedef struct fy_model_config {
  const char *architecture; /* "LlamaForCausalLM", ... */
  int64_t hidden, ffn, n_layers, n_heads, n_kv_heads, head_dim, vocab;
  int64_t max_position;
  double rms_eps;
  fy_rope_t rope;
  bool tie_embeddings;
  bool qkv_bias;
  fy_dtype_t dtype; /* of the weights */
} fy_model_config_t;

typedef struct fy_graph {
  fy_arena_t arena;
  fy_model_config_t config;
  bool shape_only;
  int64_t context; /* KV cache capacity in tokens */
  fy_value_t *values;
  int n_values, cap_values;
  fy_node_t *nodes;
  int n_nodes, cap_nodes;
  fy_layer_t *layers;
  int n_layers, cap_layers;
  fy_stage_t *stages;
  int n_stages, cap_stages;
  fy_weight_file_t *files;
  int n_files, cap_files;
} fy_graph_t;

fy_status_t fy_graph_create(fy_graph_t **out_graph);
void fy_graph_destroy(fy_graph_t *graph);

/* Adds a copy of *value (its name is copied into the graph); nbytes is
 * computed from dtype and shape when left 0. */
fy_status_t fy_graph_add_value(fy_graph_t *g, const fy_value_t *value, int *out_id);
/* Adds a node to the open stage (see fy_graph_begin_stage). */
fy_status_t fy_graph_add_node(fy_graph_t *g, const fy_node_t *node, int *out_id);
fy_status_t fy_graph_add_layer(fy_graph_t *g, const char *name, int *out_id);
fy_status_t fy_graph_add_file(fy_graph_t *g, const char *path, uint64_t size, int *out_id);
/* Opens a stage; nodes added after it belong to it until the next one. */
fy_status_t fy_graph_begin_stage(fy_graph_t *g, const char *name, int64_t max_tokens, int64_t repeat,
                                 int *out_id);

/* Returns the index of the value with that name, or -1. */
int fy_graph_find_value(const fy_graph_t *g, const char *name);
int64_t fy_value_elements(const fy_value_t *v);
/* Bytes of one row of the token dimension (per_token values). */
uint64_t fy_value_row_bytes(const fy_value_t *v);

/* Sum of weight bytes, and of parameters, of layer (or of global weights when layer == -1;
 * all weights when layer == -2). */
uint64_t fy_graph_weight_bytes(const fy_graph_t *g, int layer);
uint64_t fy_graph_param_count(const fy_graph_t *g, int layer);

/* Checks that the graph is well-formed: indices in range, shapes consistent
 * with each op, every value defined before use within a stage, weights inside
 * their files, no two weights overlapping in a file. Errors name the node or value. */
fy_status_t fy_graph_verify(const fy_graph_t *g);

/* Prints the IR as text. */
void fy_graph_print(const fy_graph_t *g, FILE *out);
const char *fy_op_name(fy_op_t op);
const char *fy_value_kind_name(fy_value_kind_t kind);
/* Formats a shape as "[a, b]" into buf. */
const char *fy_shape_str(const fy_value_t *v, char *buf, int size);

#endif
