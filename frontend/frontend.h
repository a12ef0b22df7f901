/* frontend/: models in. Builds the graph IR from a Hugging Face model folder
 * (config.json + *.safetensors, sharded or not) or from config.json alone
 * (a shape-only graph), and writes synthetic model folders. */
#ifndef FERRY_FRONTEND_FRONTEND_H
#define FERRY_FRONTEND_FRONTEND_H

#include <stdbool.h>
#include <stdint.h>

#include "ferry/status.h"
#include "ir/ir.h"

typedef struct fy_load_options {
  int64_t prefill_tokens; /* rows of the prefill stage; 0 = 512 */
  int64_t generate;       /* decode steps per request (the decode stage's repeat); 0 = 128 */
  int64_t context;        /* KV cache capacity in tokens; 0 = prefill_tokens + generate */
  bool shape_only;        /* ignore weight files even where present */
} fy_load_options_t;

/* Loads a model folder into a new graph (verified). Errors name the file and
 * tensor. The graph records where every weight's bytes are; nothing is read
 * from the weight files but their headers. */
fy_status_t fy_model_load(const char *dir, const fy_load_options_t *options, fy_graph_t **out_graph);

#endif
