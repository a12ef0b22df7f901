/* ferry targets: the shipped GPU profiles, one line each. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "passes/target.h"

int fy_cmd_targets(int argc, char **argv) {
  static const struct option options[] = {{"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
  int opt;
  optind = 1;
  while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
    if (opt == 'h') {
      printf("usage: ferry targets\n\nLists the GPU target profiles shipped in %s (use with --target NAME,\n"
             "or --target FILE.json for your own; see docs/targets.md).\n", FERRY_TARGETS_DIR);
      return 0;
    }
    return fy_cli_usage_error("targets", "unknown option");
  }
  if (optind < argc) return fy_cli_usage_error("targets", "unexpected argument '%s'", argv[optind]);
  char **names;
  int n;
  fy_status_t s = fy_target_list(FERRY_TARGETS_DIR, &names, &n);
  if (s) return fy_cli_fail(s);
  printf("%-16s %9s %9s %8s %8s %8s  %s\n", "name", "vram GiB", "reserve", "h2d GB/s", "bf16 TF", "code", "description");
  for (int i = 0; i < n && !s; i++) {
    fy_target_t t;
    s = fy_target_load(names[i], FERRY_TARGETS_DIR, &t);
    if (s) break;
    printf("%-16s %9.2f %8.2fG %8.1f %8.1f %8s  %s\n", t.name, t.vram_bytes / 1073741824.0,
           t.reserve_bytes / 1073741824.0, t.h2d_pinned_gbps, t.bf16_tflops, t.code_target, t.description);
  }
  fy_target_list_free(names, n);
  return s ? fy_cli_fail(s) : 0;
}
