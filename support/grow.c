/* Growable arrays (see grow.h). */
#include "support/grow.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

fy_status_t fy_grow(void **items, int *cap, int n, size_t item_size, const char *what) {
  if (n < *cap) return NULL;
  if (*cap > INT_MAX / 2 || (size_t)(*cap ? *cap * 2 : 16) > SIZE_MAX / item_size)
    return fy_status_make(FY_RESOURCE_EXHAUSTED, "%s: too many items", what);
  int new_cap = *cap ? *cap * 2 : 16;
  void *p = realloc(*items, (size_t)new_cap * item_size);
  if (!p) return fy_status_make(FY_RESOURCE_EXHAUSTED, "%s: out of memory", what);
  *items = p;
  *cap = new_cap;
  return NULL;
}
