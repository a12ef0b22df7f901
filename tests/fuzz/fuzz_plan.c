/* libFuzzer entry: any bytes into the plan reader. It must return an error
 * or a plan, never crash, read out of bounds or leak (built with ASan and
 * UBSan by scripts/fuzz.sh; seeds in tests/fuzz/corpus). */
#include <stddef.h>
#include <stdint.h>

#include "schedules/plan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fy_plan_t *plan = NULL;
  fy_status_free(fy_plan_read(data, size, &plan));
  fy_plan_destroy(plan);
  return 0;
}
