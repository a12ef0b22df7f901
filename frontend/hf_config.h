/* Hugging Face config.json: the reader that fills a graph's model
 * configuration, and the writer synth uses. */
#ifndef FERRY_FRONTEND_HF_CONFIG_H
#define FERRY_FRONTEND_HF_CONFIG_H

#include <stdint.h>

#include "ferry/status.h"
#include "ir/ir.h"

/* Parses the config.json at path into *out_config; strings (architecture)
 * are allocated from arena. *out_sliding_window (may be NULL) receives the
 * sliding-window attention span, 0 when the model attends to all positions.
 * Reads architectures[0], hidden_size, intermediate_size, num_hidden_layers,
 * num_attention_heads, num_key_value_heads (default: heads), head_dim
 * (default: hidden / heads), vocab_size, max_position_embeddings,
 * rms_norm_eps, rope_theta (default 10000), rope_scaling (null or llama3),
 * tie_word_embeddings (default false), torch_dtype (or dtype; default
 * bfloat16). Qwen2ForCausalLM implies q/k/v biases. Errors name the file and
 * the field; a feature ferry cannot run (another rope type, attention or MLP
 * biases, an activation other than silu) is FY_INCOMPATIBLE. The
 * architecture itself is checked by the builder. */
fy_status_t fy_hf_config_read(const char *path, fy_arena_t *arena, fy_model_config_t *out_config,
                              int64_t *out_sliding_window);

/* Parses config.json text; `what` names it in errors. */
fy_status_t fy_hf_config_parse(const char *json, const char *what, fy_arena_t *arena, fy_model_config_t *out_config,
                               int64_t *out_sliding_window);

/* Writes config (atomically) as a config.json the reader and Hugging Face
 * transformers accept; sliding_window 0 = none. */
fy_status_t fy_hf_config_write(const char *path, const fy_model_config_t *config, int64_t sliding_window);

#endif
