/* Bump allocator (see arena.h). Large requests get a block of their own. */
#include "support/arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_BLOCK_BYTES ((size_t)64 * 1024)

struct fy_arena_block {
  fy_arena_block_t *next;
  size_t used, capacity;
  _Alignas(16) unsigned char data[];
};

void *fy_arena_alloc(fy_arena_t *arena, size_t size) {
  if (size > SIZE_MAX - 15) return NULL;
  size = (size + 15) & ~(size_t)15;
  fy_arena_block_t *b = arena->head;
  if (!b || b->capacity - b->used < size) {
    size_t capacity = size > ARENA_BLOCK_BYTES ? size : ARENA_BLOCK_BYTES;
    if (capacity > SIZE_MAX - sizeof *b) return NULL;
    b = malloc(sizeof *b + capacity);
    if (!b) return NULL;
    b->used = 0;
    b->capacity = capacity;
    /* Keep the partly used block first so small allocations continue there. */
    if (arena->head && size == capacity) {
      b->next = arena->head->next;
      arena->head->next = b;
    } else {
      b->next = arena->head;
      arena->head = b;
    }
  }
  void *p = b->data + b->used;
  b->used += size;
  memset(p, 0, size);
  return p;
}

void *fy_arena_calloc(fy_arena_t *arena, size_t count, size_t size) {
  if (size && count > SIZE_MAX / size) return NULL;
  return fy_arena_alloc(arena, count * size);
}

char *fy_arena_strndup(fy_arena_t *arena, const char *s, size_t n) {
  char *d = fy_arena_alloc(arena, n + 1);
  if (d) memcpy(d, s, n);
  return d;
}

char *fy_arena_strdup(fy_arena_t *arena, const char *s) { return fy_arena_strndup(arena, s, strlen(s)); }

char *fy_arena_printf(fy_arena_t *arena, const char *fmt, ...) {
  va_list ap, copy;
  va_start(ap, fmt);
  va_copy(copy, ap);
  int n = vsnprintf(NULL, 0, fmt, copy);
  va_end(copy);
  char *d = n < 0 ? NULL : fy_arena_alloc(arena, (size_t)n + 1);
  if (d) vsnprintf(d, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return d;
}

void fy_arena_destroy(fy_arena_t *arena) {
  fy_arena_block_t *b = arena->head;
  while (b) {
    fy_arena_block_t *next = b->next;
    free(b);
    b = next;
  }
  arena->head = NULL;
}
