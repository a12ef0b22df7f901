#include "ferry/status.h"
#include <stdio.h>
#include <string.h>
int main(void) {
  fy_status_t s = fy_status_annotate(fy_status_make(FY_OUT_OF_RANGE, "offset %d", 7), "tensor %s", "w");
  if (strcmp(fy_status_message(s), "tensor w: offset 7") || fy_status_code(s) != FY_OUT_OF_RANGE) return 1;
  fy_status_free(s);
  puts("ok");
  return 0;
}
