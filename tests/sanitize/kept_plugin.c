/* A library that, like a Vulkan driver, keeps an allocation reachable only
 * from its own globals (tests/sanitize/keep_loaded.c says why this matters). */
#include <stdlib.h>

void *fy_kept_plugin_allocation;

int fy_kept_plugin_init(void);
int fy_kept_plugin_init(void) {
  fy_kept_plugin_allocation = malloc(1792);
  return fy_kept_plugin_allocation != NULL;
}
