/* The tensor index (see tensor_index.h). */
#include <stdlib.h>
#include <string.h>

#include "frontend/tensor_index.h"

void fy_tensor_index_free(fy_tensor_index_t *index) {
  free(index->tensors);
  fy_arena_destroy(&index->arena);
  memset(index, 0, sizeof *index);
}

/* A linear scan: a llama-family checkpoint has a few hundred to a thousand
 * tensors, and the builder looks each up once. */
const fy_tensor_info_t *fy_tensor_index_find(const fy_tensor_index_t *index, const char *name) {
  for (int i = 0; i < index->n_tensors; i++)
    if (!strcmp(index->tensors[i].name, name)) return &index->tensors[i];
  return NULL;
}
