/* ferry devices: the Vulkan and CUDA devices this machine has, with their
 * memory, in the order ferry run --device N counts them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "runtime/cuda_driver.h"
#include "runtime/vulkan.h"

static const char *kind_name(int rank) {
  static const char *const names[] = {"other", "cpu", "virtual", "integrated", "discrete"};
  return rank >= 0 && rank <= 4 ? names[rank] : "other";
}

int fy_cmd_devices(int argc, char **argv) {
  if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    printf("usage: ferry devices\n\nLists the Vulkan and CUDA devices with their memory; ferry run PLAN --backend\n"
           "vulkan|cuda --device N picks one by its number here.\n");
    return 0;
  }
  if (argc > 1) return fy_cli_usage_error("devices", "unexpected argument '%s'", argv[1]);
  printf("vulkan:\n");
  fy_vk_device_info_t *devices = NULL;
  int n = 0;
  fy_status_t s = fy_vk_list_devices(&devices, &n);
  if (s) {
    printf("  none: %s\n", fy_status_message(s));
    fy_status_free(s);
  }
  for (int i = 0; i < n; i++)
    printf("  %d: %-40s %-10s %8.2f GiB device-local%s\n", i, devices[i].name, kind_name(devices[i].type_rank),
           devices[i].device_local_bytes / 1073741824.0, devices[i].usable ? "" : "  (lacks Vulkan 1.2 timelines)");
  free(devices);
  char msg[512];
  printf("cuda:\n");
  s = fy_cuda_probe(msg, sizeof msg);
  printf("  %s\n", s ? fy_status_message(s) : msg);
  fy_status_free(s);
  return 0;
}
