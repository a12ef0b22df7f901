/* ferry run: greedy generation with the CPU reference interpreter.
 * Today it runs a model folder directly; a compiled plan will be a second
 * source of the same loop (run_model_folder is the folder branch). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "codegen/reference.h"
#include "frontend/frontend.h"
#include "support/file.h"

typedef struct {
  const char *model;
  const char *prompt;
  int64_t generate;
  int64_t threads;
  int64_t context; /* 0 = prompt + generate */
  const char *logits_out;
} run_options_t;

static void usage(FILE *out) {
  fprintf(out,
          "usage: ferry run MODEL --prompt IDS --generate N [options]\n"
          "       ferry run PLAN --prompt IDS --generate N [plan options; see ferry run PLAN --help]\n\n"
          "Generates N tokens greedily (argmax, ties to the lowest id) with the CPU\n"
          "reference: a prefill of the prompt, then N-1 decode steps. Given a plan file\n"
          "instead of a model folder, replays the plan on a backend (cpu by default).\n\n"
          "  MODEL                a model folder (config.json + *.safetensors)\n"
          "  --prompt 1,2,3       the prompt's token ids\n"
          "  --generate N         tokens to generate (>= 1)\n"
          "  --threads N          CPU threads (default: all; results do not depend on it)\n"
          "  --context C          KV cache capacity in tokens (default: prompt + N)\n"
          "  --logits-out FILE    write every step's logits: N x vocab little-endian f32\n");
}


typedef struct {
  const float *logits;
  size_t count;
} logits_file_t;

static fy_status_t write_logits(void *ctx, int fd) {
  const logits_file_t *f = ctx;
  uint8_t buf[4096];
  size_t used = 0;
  for (size_t i = 0; i < f->count; i++) {
    uint32_t u;
    memcpy(&u, &f->logits[i], 4);
    for (int b = 0; b < 4; b++) buf[used++] = (uint8_t)(u >> (8 * b));
    if (used == sizeof buf || i + 1 == f->count) {
      FY_TRY(fy_fd_write_all(fd, buf, used, "logits"));
      used = 0;
    }
  }
  return NULL;
}

static void print_report(const int32_t *generated, int64_t n, const fy_reference_stats_t *st) {
  printf("tokens: ");
  for (int64_t i = 0; i < n; i++) printf("%s%d", i ? "," : "", generated[i]);
  printf("\n");
  printf("prefill: %lld tokens in %.2f ms (%.1f tokens/s)\n", (long long)st->prefill_tokens, st->prefill_ms,
         st->prefill_ms > 0 ? 1e3 * (double)st->prefill_tokens / st->prefill_ms : 0.0);
  if (st->decode_steps > 0) {
    double per = st->decode_ms / (double)st->decode_steps;
    printf("decode: %lld tokens, %.2f ms/token (%.2f tokens/s)\n", (long long)st->decode_steps, per,
           per > 0 ? 1e3 / per : 0.0);
  }
}

static fy_status_t run_model_folder(const run_options_t *o, const int32_t *prompt, int64_t n_prompt) {
  fy_load_options_t lo = {.prefill_tokens = n_prompt, .generate = o->generate,
                          .context = o->context ? o->context : n_prompt + o->generate};
  fy_graph_t *g = NULL;
  FY_TRY(fy_model_load(o->model, &lo, &g));
  fy_reference_t *ref = NULL;
  float *logits = NULL;
  int32_t *generated = NULL;
  int64_t vocab = g->config.vocab;
  fy_status_t s = fy_reference_create(g, (int)o->threads, &ref);
  if (!s) {
    logits = malloc(sizeof *logits * (size_t)o->generate * (size_t)vocab);
    generated = malloc(sizeof *generated * (size_t)o->generate);
    if (!logits || !generated) s = fy_status_make(FY_RESOURCE_EXHAUSTED, "run: out of memory for the logits");
  }
  if (!s) s = fy_cli_generate(&fy_cli_by_reference, ref, prompt, n_prompt, o->generate, vocab, logits, generated);
  if (!s && o->logits_out) {
    logits_file_t f = {logits, (size_t)o->generate * (size_t)vocab};
    s = fy_status_annotate(fy_file_write_atomic(o->logits_out, write_logits, &f), "--logits-out");
  }
  if (!s) print_report(generated, o->generate, fy_reference_stats(ref));
  free(generated);
  free(logits);
  fy_reference_destroy(ref);
  fy_graph_destroy(g);
  return s;
}

/* A plan is a file; a model is a folder. The positional argument is the
 * first that is neither an option nor the value of one (the options of both
 * forms that take values are listed here). */
static bool names_a_plan(int argc, char **argv) {
  static const char *const takes_value[] = {"--prompt", "--generate", "--threads", "--context", "--logits-out",
                                            "--backend", "--weights", "--emulate-h2d", "--trace", "--device", NULL};
  for (int i = 1; i < argc; i++) {
    bool value_follows = false;
    for (int k = 0; takes_value[k] && !value_follows; k++) value_follows = !strcmp(argv[i], takes_value[k]);
    if (value_follows) {
      i++;
      continue;
    }
    if (argv[i][0] == '-') continue;
    struct stat st;
    return stat(argv[i], &st) == 0 && S_ISREG(st.st_mode);
  }
  return false;
}

int fy_cmd_run(int argc, char **argv) {
  if (names_a_plan(argc, argv)) return fy_run_plan_main(argc, argv);
  run_options_t o = {0};
  const char *generate = NULL, *threads = NULL, *context = NULL;
  const fy_cli_arg_t args[] = {{"--prompt", NULL, &o.prompt},   {"--generate", NULL, &generate},
                               {"--threads", NULL, &threads},   {"--context", NULL, &context},
                               {"--logits-out", NULL, &o.logits_out}, {NULL, NULL, NULL}};
  int done = fy_cli_parse_args("run", argc, argv, args, "MODEL", &o.model, usage);
  if (done >= 0) return done;
  if (!o.prompt) return fy_cli_usage_error("run", "--prompt is required");
  if (!generate) return fy_cli_usage_error("run", "--generate is required");
  fy_status_t s = fy_cli_parse_int("--generate", generate, 1, 1 << 24, &o.generate);
  if (!s && threads) s = fy_cli_parse_int("--threads", threads, 1, 256, &o.threads);
  if (!s && context) s = fy_cli_parse_int("--context", context, 1, INT32_MAX, &o.context);
  if (s) {
    fprintf(stderr, "ferry run: %s\nTry 'ferry run --help'.\n", fy_status_message(s));
    fy_status_free(s);
    return 2;
  }
  int32_t *prompt = NULL;
  int64_t n_prompt = 0;
  s = fy_cli_parse_tokens(o.prompt, &prompt, &n_prompt);
  if (!s && o.context && o.context < n_prompt + o.generate - 1)
    s = fy_status_make(FY_INVALID_ARGUMENT, "--context %lld cannot hold the prompt (%lld) and %lld generated "
                       "tokens", (long long)o.context, (long long)n_prompt, (long long)o.generate - 1);
  if (!s) s = run_model_folder(&o, prompt, n_prompt);
  free(prompt);
  return s ? fy_cli_fail(s) : 0;
}
