/* Placeholder until the command lands. */
#include <stdio.h>

#include "cli/commands.h"

int fy_cmd_targets(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "ferry targets: not built yet\n");
  return 1;
}
