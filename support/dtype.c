/* Element types (see dtype.h). */
#include "support/dtype.h"

#include <string.h>

static const struct {
  const char *name, *safetensors;
  size_t size;
} dtype_info[FY_DTYPE_COUNT] = {
    [FY_DTYPE_F32] = {"f32", "F32", 4},
    [FY_DTYPE_F16] = {"f16", "F16", 2},
    [FY_DTYPE_BF16] = {"bf16", "BF16", 2},
    [FY_DTYPE_I32] = {"i32", "I32", 4},
};

size_t fy_dtype_size(fy_dtype_t dtype) { return dtype < FY_DTYPE_COUNT ? dtype_info[dtype].size : 0; }

const char *fy_dtype_name(fy_dtype_t dtype) {
  return dtype < FY_DTYPE_COUNT ? dtype_info[dtype].name : "?";
}

const char *fy_dtype_safetensors_name(fy_dtype_t dtype) {
  return dtype < FY_DTYPE_COUNT ? dtype_info[dtype].safetensors : "?";
}

bool fy_dtype_parse(const char *name, fy_dtype_t *out_dtype) {
  for (int i = 0; i < FY_DTYPE_COUNT; i++) {
    if (!strcmp(name, dtype_info[i].name) || !strcmp(name, dtype_info[i].safetensors)) {
      *out_dtype = (fy_dtype_t)i;
      return true;
    }
  }
  return false;
}

float fy_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else { /* subnormal: normalize */
    int e = -1;
    do {
      e++;
      mant <<= 1;
    } while (!(mant & 0x400u));
    bits = sign | ((uint32_t)(112 - e) << 23) | ((mant & 0x3ffu) << 13);
  }
  union { uint32_t u; float f; } v = {bits};
  return v.f;
}

uint16_t fy_f32_to_f16(float f) {
  union { float f; uint32_t u; } v = {f};
  uint32_t sign = (v.u >> 16) & 0x8000u;
  uint32_t abs = v.u & 0x7fffffffu;
  if (abs > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);
  if (abs >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to inf */
  if (abs < 0x38800000u) {                                   /* f16 subnormal or zero */
    if (abs < 0x33000000u) return (uint16_t)sign;
    uint32_t exp = abs >> 23, mant = (abs & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - exp; /* 14..24 */
    uint32_t half = mant >> shift, rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1u))) half++;
    return (uint16_t)(sign | half);
  }
  uint32_t rounded = abs + 0xfffu + ((abs >> 13) & 1u);
  return (uint16_t)(sign | ((rounded - 0x38000000u) >> 13));
}
