/* A real leak in the program itself: LeakSanitizer must still report it with
 * keep_loaded.c linked in (the sanitizer build's ctest expects the report). */
#include <stdio.h>
#include <stdlib.h>

void *volatile fy_leak_sink;

int main(void) {
  fy_leak_sink = malloc(4096);
  fy_leak_sink = NULL;
  printf("leaked 4096 bytes on purpose\n");
  return 0;
}
