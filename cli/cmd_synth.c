/* ferry synth: writes a synthetic model folder from a preset. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "frontend/synth.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: ferry synth --preset NAME -o DIR [OPTIONS]\n\n"
          "Writes a Hugging Face style model folder: config.json and, unless shapes\n"
          "only, model.safetensors with seeded random weights.\n\n"
          "options:\n"
          "  -p, --preset NAME    model shape (see below)\n"
          "  -o, --output DIR     folder to write (created if needed)\n"
          "      --seed N         seed of the weights (default 0)\n"
          "      --dtype T        bf16 (default), f16 or f32\n"
          "      --shape-only     config.json only\n"
          "      --with-weights   write weights for the real-size presets too (large)\n"
          "      --arch NAME      override the architecture (LlamaForCausalLM,\n"
          "                       MistralForCausalLM, Qwen2ForCausalLM)\n"
          "      --shards N       split the weights into N files plus an index\n"
          "  -h, --help           this help\n\n"
          "presets:");
  for (const char *const *p = fy_synth_presets(); *p; p++) fprintf(out, " %s", *p);
  fprintf(out, "\n(the real-size presets are shape-only unless --with-weights)\n");
}

static int bad_value(fy_status_t s) {
  int rc = fy_cli_usage_error("synth", "%s", fy_status_message(s));
  fy_status_free(s);
  return rc;
}

int fy_cmd_synth(int argc, char **argv) {
  enum { OPT_SEED = 256, OPT_DTYPE, OPT_SHAPE_ONLY, OPT_WITH_WEIGHTS, OPT_ARCH, OPT_SHARDS };
  static const struct option long_options[] = {
      {"preset", required_argument, NULL, 'p'},   {"output", required_argument, NULL, 'o'},
      {"seed", required_argument, NULL, OPT_SEED}, {"dtype", required_argument, NULL, OPT_DTYPE},
      {"shape-only", no_argument, NULL, OPT_SHAPE_ONLY}, {"with-weights", no_argument, NULL, OPT_WITH_WEIGHTS},
      {"arch", required_argument, NULL, OPT_ARCH}, {"shards", required_argument, NULL, OPT_SHARDS},
      {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};
  fy_synth_options_t o = {.dtype = FY_DTYPE_BF16};
  const char *dir = NULL;
  int64_t value;
  fy_status_t s;
  opterr = 0;
  for (int c; (c = getopt_long(argc, argv, ":p:o:h", long_options, NULL)) != -1;) {
    switch (c) {
      case 'p': o.preset = optarg; break;
      case 'o': dir = optarg; break;
      case OPT_SEED:
        if ((s = fy_cli_parse_int("--seed", optarg, 0, INT64_MAX, &value))) return bad_value(s);
        o.seed = (uint64_t)value;
        break;
      case OPT_DTYPE:
        if (!fy_dtype_parse(optarg, &o.dtype) || o.dtype == FY_DTYPE_I32)
          return fy_cli_usage_error("synth", "--dtype: '%s' is not bf16, f16 or f32", optarg);
        break;
      case OPT_SHAPE_ONLY: o.shape_only = true; break;
      case OPT_WITH_WEIGHTS: o.with_weights = true; break;
      case OPT_ARCH: o.architecture = optarg; break;
      case OPT_SHARDS:
        if ((s = fy_cli_parse_int("--shards", optarg, 1, 99999, &value))) return bad_value(s);
        o.shards = (int)value;
        break;
      case 'h': usage(stdout); return 0;
      case ':': return fy_cli_usage_error("synth", "option %s needs a value", argv[optind - 1]);
      default: return fy_cli_usage_error("synth", "unknown option %s", argv[optind - 1]);
    }
  }
  if (optind < argc) return fy_cli_usage_error("synth", "unexpected argument '%s'", argv[optind]);
  if (!o.preset) return fy_cli_usage_error("synth", "--preset is required");
  if (!dir) return fy_cli_usage_error("synth", "-o DIR is required");
  if ((s = fy_synth_write(dir, &o))) return fy_cli_fail(s);
  return 0;
}
