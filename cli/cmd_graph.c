/* ferry graph: loads a model folder and summarizes its graph; --dump prints the IR. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "frontend/frontend.h"
#include "ir/ir.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: ferry graph MODEL [OPTIONS]\n\n"
          "Loads a model folder (config.json and safetensors weights, or config.json\n"
          "alone) and prints a summary of its graph: shapes, parameters, weight bytes\n"
          "per layer and per dtype.\n\n"
          "options:\n"
          "      --dump         print the IR instead\n"
          "      --shape-only   ignore the weight files\n"
          "  -h, --help         this help\n");
}

/* 70553706496 -> "70,553,706,496" */
static const char *grouped(uint64_t n, char buf[32]) {
  char digits[24];
  int len = snprintf(digits, sizeof digits, "%llu", (unsigned long long)n), j = 0;
  for (int i = 0; i < len; i++) {
    if (i && (len - i) % 3 == 0) buf[j++] = ',';
    buf[j++] = digits[i];
  }
  buf[j] = 0;
  return buf;
}

static void print_bytes(FILE *out, const char *label, uint64_t bytes) {
  static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
  char buf[32];
  double x = (double)bytes / 1024;
  int u = 0;
  while (x >= 1024 && u < 3) x /= 1024, u++;
  fprintf(out, "%-16s%s bytes (%.2f %s)\n", label, grouped(bytes, buf), x, units[u]);
}

static void summarize(const char *dir, const fy_graph_t *g, FILE *out) {
  const fy_model_config_t *c = &g->config;
  char buf[32];
  fprintf(out, "%-16s%s\n", "model", dir);
  fprintf(out, "%-16s%s\n", "architecture", c->architecture);
  if (g->shape_only) {
    fprintf(out, "%-16sshape only (%s)\n", "weights", fy_dtype_name(c->dtype));
  } else {
    uint64_t size = 0;
    for (int i = 0; i < g->n_files; i++) size += g->files[i].size;
    fprintf(out, "%-16s%d file%s, %s bytes\n", "weights", g->n_files, g->n_files == 1 ? "" : "s",
            grouped(size, buf));
  }
  fprintf(out, "%-16s%d\n", "layers", g->n_layers);
  fprintf(out, "%-16shidden %lld, ffn %lld, heads %lld, kv heads %lld, head_dim %lld, vocab %lld\n", "shape",
          (long long)c->hidden, (long long)c->ffn, (long long)c->n_heads, (long long)c->n_kv_heads,
          (long long)c->head_dim, (long long)c->vocab);
  fprintf(out, "%-16srope theta %g%s, rms eps %g, max position %lld%s%s\n", "config", c->rope.theta,
          c->rope.scaling == FY_ROPE_SCALING_LLAMA3 ? " (llama3 scaling)" : "", c->rms_eps,
          (long long)c->max_position, c->qkv_bias ? ", q/k/v bias" : "", c->tie_embeddings ? ", tied embeddings" : "");
  fprintf(out, "%-16s%s\n", "parameters", grouped(fy_graph_param_count(g, -2), buf));
  print_bytes(out, "weight bytes", fy_graph_weight_bytes(g, -2));
  if (g->n_layers > 0) {
    uint64_t first = fy_graph_weight_bytes(g, 0);
    bool equal = true;
    for (int l = 1; l < g->n_layers && equal; l++) equal = fy_graph_weight_bytes(g, l) == first;
    fprintf(out, "%-16s%s bytes (layer 0; %s)\n", "per layer", grouped(first, buf),
            equal ? "all layers equal" : "layers differ");
  }
  uint64_t by_dtype[FY_DTYPE_COUNT] = {0};
  for (int i = 0; i < g->n_values; i++)
    if (g->values[i].kind == FY_VALUE_WEIGHT && g->values[i].dtype < FY_DTYPE_COUNT)
      by_dtype[g->values[i].dtype] += g->values[i].nbytes;
  for (int d = 0; d < FY_DTYPE_COUNT; d++) {
    if (!by_dtype[d]) continue;
    char label[32];
    snprintf(label, sizeof label, "  %s", fy_dtype_name((fy_dtype_t)d));
    print_bytes(out, label, by_dtype[d]);
  }
  print_bytes(out, "global weights", fy_graph_weight_bytes(g, -1));
  for (int i = 0; i < g->n_values; i++) {
    const fy_value_t *v = &g->values[i];
    if (v->kind != FY_VALUE_WEIGHT || v->layer != -1) continue;
    char shape[64];
    fprintf(out, "  %-32s%-16s%s bytes\n", v->name, fy_shape_str(v, shape, sizeof shape), grouped(v->nbytes, buf));
  }
  if (c->tie_embeddings) fprintf(out, "  %-32s%s\n", "lm_head.weight", "tied to model.embed_tokens.weight");
}

int fy_cmd_graph(int argc, char **argv) {
  enum { OPT_DUMP = 256, OPT_SHAPE_ONLY };
  static const struct option long_options[] = {{"dump", no_argument, NULL, OPT_DUMP},
                                               {"shape-only", no_argument, NULL, OPT_SHAPE_ONLY},
                                               {"help", no_argument, NULL, 'h'},
                                               {NULL, 0, NULL, 0}};
  fy_load_options_t options = {0};
  bool dump = false;
  opterr = 0;
  for (int c; (c = getopt_long(argc, argv, ":h", long_options, NULL)) != -1;) {
    switch (c) {
      case OPT_DUMP: dump = true; break;
      case OPT_SHAPE_ONLY: options.shape_only = true; break;
      case 'h': usage(stdout); return 0;
      case ':': return fy_cli_usage_error("graph", "option %s needs a value", argv[optind - 1]);
      default: return fy_cli_usage_error("graph", "unknown option %s", argv[optind - 1]);
    }
  }
  if (optind != argc - 1)
    return fy_cli_usage_error("graph", optind == argc ? "MODEL folder is required" : "exactly one MODEL folder");
  fy_graph_t *g;
  fy_status_t s = fy_model_load(argv[optind], &options, &g);
  if (s) return fy_cli_fail(s);
  if (dump)
    fy_graph_print(g, stdout);
  else
    summarize(argv[optind], g, stdout);
  fy_graph_destroy(g);
  return 0;
}
