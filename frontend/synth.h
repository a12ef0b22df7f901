/* Synthetic model folders: a config.json and (unless shape-only) one
 * model.safetensors with seeded random weights scaled so that activations
 * stay finite through every layer. The same preset, seed and dtype always
 * give the same bytes. */
#ifndef FERRY_FRONTEND_SYNTH_H
#define FERRY_FRONTEND_SYNTH_H

#include <stdbool.h>
#include <stdint.h>

#include "ferry/status.h"
#include "ir/ir.h"

typedef struct fy_synth_options {
  const char *preset;       /* "tiny", "small", "llama-3.1-8b", "llama-3.1-70b", "qwen2.5-14b", "mistral-7b" */
  const char *architecture; /* NULL = the preset's; else override, e.g. "Qwen2ForCausalLM" (tests) */
  uint64_t seed;
  fy_dtype_t dtype;         /* f32, f16 or bf16 */
  bool shape_only;          /* config.json only */
  bool with_weights;        /* write weights even for the real-size presets */
  int shards;               /* 0/1 = one model.safetensors; N = model-0000i-of-0000N + index.json */
} fy_synth_options_t;

/* Writes the model folder (created if needed). Files are written atomically. */
fy_status_t fy_synth_write(const char *dir, const fy_synth_options_t *options);
/* The preset names, NULL-terminated. */
const char *const *fy_synth_presets(void);

#endif
