/* Element types of tensors and the exact conversions between them.
 * bf16 and f16 round-to-nearest-even from f32; widening is exact. */
#ifndef FERRY_SUPPORT_DTYPE_H
#define FERRY_SUPPORT_DTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum fy_dtype {
  FY_DTYPE_F32,
  FY_DTYPE_F16,
  FY_DTYPE_BF16,
  FY_DTYPE_I32,
  FY_DTYPE_COUNT
} fy_dtype_t;

/* Bytes per element. */
size_t fy_dtype_size(fy_dtype_t dtype);
/* Lower-case name as ferry prints it: "f32", "f16", "bf16", "i32". */
const char *fy_dtype_name(fy_dtype_t dtype);
/* Parses ferry's names and safetensors' ("F32", "F16", "BF16", "I32"). */
bool fy_dtype_parse(const char *name, fy_dtype_t *out_dtype);
/* safetensors spelling: "F32", "F16", "BF16", "I32". */
const char *fy_dtype_safetensors_name(fy_dtype_t dtype);

static inline float fy_bf16_to_f32(uint16_t h) {
  union { uint32_t u; float f; } v = {(uint32_t)h << 16};
  return v.f;
}

static inline uint16_t fy_f32_to_bf16(float f) {
  union { float f; uint32_t u; } v = {f};
  if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40); /* quiet NaN */
  uint32_t rounding = 0x7fffu + ((v.u >> 16) & 1u);
  return (uint16_t)((v.u + rounding) >> 16);
}

float fy_f16_to_f32(uint16_t h);
uint16_t fy_f32_to_f16(float f);

/* Reads element i of a buffer of the given float dtype as f32. */
static inline float fy_load_f32(const void *data, fy_dtype_t dtype, size_t i) {
  switch (dtype) {
    case FY_DTYPE_F16: return fy_f16_to_f32(((const uint16_t *)data)[i]);
    case FY_DTYPE_BF16: return fy_bf16_to_f32(((const uint16_t *)data)[i]);
    default: return ((const float *)data)[i];
  }
}

#endif
