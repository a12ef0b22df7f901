/* The tensors found in a model's weight files: what the safetensors reader
 * produces and the architecture builders (llama.c) consume. */
#ifndef FERRY_FRONTEND_TENSOR_INDEX_H
#define FERRY_FRONTEND_TENSOR_INDEX_H

#include <stdint.h>

#include "ferry/status.h"
#include "ir/ir.h"

typedef struct fy_tensor_info {
  const char *name;
  fy_dtype_t dtype;
  int rank;
  int64_t shape[FY_MAX_RANK];
  int file;             /* index into the graph's files */
  uint64_t file_offset; /* absolute, from the start of the file */
  uint64_t nbytes;
} fy_tensor_info_t;

typedef struct fy_tensor_index {
  fy_tensor_info_t *tensors; /* strings owned by the index's arena */
  int n_tensors, cap_tensors;
  fy_arena_t arena;
} fy_tensor_index_t;

void fy_tensor_index_free(fy_tensor_index_t *index);
/* Returns the tensor with that name or NULL. */
const fy_tensor_info_t *fy_tensor_index_find(const fy_tensor_index_t *index, const char *name);

#endif
