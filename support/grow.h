/* Growable arrays: (items, n used, capacity) triples that grow by doubling. */
#ifndef FERRY_SUPPORT_GROW_H
#define FERRY_SUPPORT_GROW_H

#include <stddef.h>

#include "ferry/status.h"

/* Makes room for one more item: when n == *cap, doubles the capacity
 * (from 16) and reallocates *items. On failure *items is unchanged and the
 * error names `what`. */
fy_status_t fy_grow(void **items, int *cap, int n, size_t item_size, const char *what);

#define FY_GROW(array, n, cap, what) fy_grow((void **)&(array), &(cap), (n), sizeof *(array), (what))

#endif
