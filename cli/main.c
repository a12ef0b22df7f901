/* ferry: the command line. Dispatches to one function per subcommand. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

typedef struct {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *summary;
} command_t;

static const command_t commands[] = {
    {"synth", fy_cmd_synth, "write a synthetic model folder (seeded weights or shapes only)"},
    {"graph", fy_cmd_graph, "summarize a model's graph; --dump prints the IR"},
    {"run", fy_cmd_run, "generate tokens: a model folder on the CPU reference, or a plan on a backend"},
    {"compile", fy_cmd_compile, "decide residency and streaming for a target; write a plan"},
    {"simulate", fy_cmd_simulate, "simulate a model on a target; --compare runs every policy"},
    {"inspect", fy_cmd_inspect, "show a plan: summary, --json, --trace, --svg, --kernels"},
    {"diff", fy_cmd_diff, "what changed between two plans (budget, residency, times)"},
    {"targets", fy_cmd_targets, "list the GPU target profiles"},
    {"devices", fy_cmd_devices, "list this machine's Vulkan and CUDA devices"},
};

static void usage(FILE *out) {
  fprintf(out,
          "usage: ferry COMMAND [OPTIONS]\n\n"
          "ferry compiles models that do not fit in GPU memory into streaming plans.\n\n"
          "commands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
    fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
  fprintf(out, "\nRun 'ferry COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
    usage(stdout);
    return 0;
  }
  if (!strcmp(argv[1], "--version")) {
    printf("ferry %s\n", FERRY_VERSION);
    return 0;
  }
  for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
    if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
  fprintf(stderr, "ferry: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}
