/* Placeholder until the command lands. */
#include <stdio.h>

#include "cli/commands.h"

int fy_cmd_run(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "ferry run: not built yet\n");
  return 1;
}
