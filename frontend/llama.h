/* Llama-family configuration and graph builder. */
#ifndef FERRY_FRONTEND_LLAMA_H
#define FERRY_FRONTEND_LLAMA_H

#include "frontend/frontend.h"
#include "frontend/tensor_index.h"

/* Architectures the llama builder accepts: LlamaForCausalLM,
 * MistralForCausalLM, Qwen2ForCausalLM. */
bool fy_llama_architecture_supported(const char *architecture);

/* Builds the prefill and decode stages of a llama-family model into g (whose
 * config is already filled). With tensors == NULL the graph is shape-only;
 * otherwise every weight must be found with the expected shape and a float
 * dtype, and the error names the tensor and the expected shape. */
fy_status_t fy_llama_build(fy_graph_t *g, const fy_load_options_t *options, const fy_tensor_index_t *tensors);

#endif
