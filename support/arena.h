/* A bump allocator: the compiler allocates a graph's objects from one arena
 * and frees them all with fy_arena_destroy. Memory is zeroed and 16-aligned. */
#ifndef FERRY_SUPPORT_ARENA_H
#define FERRY_SUPPORT_ARENA_H

#include <stddef.h>

typedef struct fy_arena_block fy_arena_block_t;
typedef struct {
  fy_arena_block_t *head;
} fy_arena_t;

/* Returns NULL when memory is exhausted or size overflows. */
void *fy_arena_alloc(fy_arena_t *arena, size_t size);
/* Allocates count*size bytes, NULL on overflow. */
void *fy_arena_calloc(fy_arena_t *arena, size_t count, size_t size);
char *fy_arena_strdup(fy_arena_t *arena, const char *s);
char *fy_arena_strndup(fy_arena_t *arena, const char *s, size_t n);
char *fy_arena_printf(fy_arena_t *arena, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fy_arena_destroy(fy_arena_t *arena);

#endif
