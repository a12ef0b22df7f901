/* Helpers shared by the subcommands: error reporting and option values. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "codegen/reference.h"

int fy_cli_fail(fy_status_t status) {
  fprintf(stderr, "ferry: error: %s\n", fy_status_message(status));
  fy_status_free(status);
  return 1;
}

int fy_cli_usage_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "ferry %s: ", cmd);
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\nTry 'ferry %s --help'.\n", cmd);
  va_end(ap);
  return 2;
}

int fy_cli_parse_args(const char *cmd, int argc, char **argv, const fy_cli_arg_t *args, const char *positional_name,
                      const char **out_positional, void (*usage)(FILE *out)) {
  *out_positional = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 0;
    }
    const fy_cli_arg_t *match = NULL;
    for (const fy_cli_arg_t *arg = args; arg->name && !match; arg++)
      if (!strcmp(a, arg->name)) match = arg;
    if (match && match->flag) {
      *match->flag = true;
    } else if (match) {
      if (i + 1 >= argc) return fy_cli_usage_error(cmd, "%s needs a value", a);
      *match->value = argv[++i];
    } else if (a[0] == '-') {
      return fy_cli_usage_error(cmd, "unknown option '%s'", a);
    } else if (*out_positional) {
      return fy_cli_usage_error(cmd, "more than one %s ('%s', '%s')", positional_name, *out_positional, a);
    } else {
      *out_positional = a;
    }
  }
  if (!*out_positional) return fy_cli_usage_error(cmd, "no %s given", positional_name);
  return -1;
}

int32_t fy_cli_argmax(const float *logits, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; i++)
    if (logits[i] > logits[best]) best = i;
  return (int32_t)best;
}

static fy_status_t ref_prefill(void *h, const int32_t *t, int64_t n, float *o) { return fy_reference_prefill(h, t, n, o); }
static fy_status_t ref_decode(void *h, int32_t t, float *o) { return fy_reference_decode(h, t, o); }
const fy_cli_generator_t fy_cli_by_reference = {ref_prefill, ref_decode};

fy_status_t fy_cli_generate(const fy_cli_generator_t *g, void *h, const int32_t *prompt, int64_t n_prompt,
                            int64_t n_generate, int64_t vocab, float *logits, int32_t *out_tokens) {
  FY_TRY(g->prefill(h, prompt, n_prompt, logits));
  out_tokens[0] = fy_cli_argmax(logits, vocab);
  for (int64_t i = 1; i < n_generate; i++) {
    float *step = logits + (size_t)i * (size_t)vocab;
    FY_TRY(fy_status_annotate(g->decode(h, out_tokens[i - 1], step), "decode step %lld", (long long)i));
    out_tokens[i] = fy_cli_argmax(step, vocab);
  }
  return NULL;
}

fy_status_t fy_cli_parse_int(const char *option, const char *text, int64_t min, int64_t max, int64_t *out_value) {
  char *end;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if (errno || end == text || *end || v < min || v > max)
    return fy_status_make(FY_INVALID_ARGUMENT, "%s: '%s' is not an integer in [%lld, %lld]", option, text,
                          (long long)min, (long long)max);
  *out_value = v;
  return NULL;
}

fy_status_t fy_cli_parse_tokens(const char *text, int32_t **out_tokens, int64_t *out_count) {
  int64_t cap = 16, n = 0;
  int32_t *tokens = malloc(sizeof *tokens * (size_t)cap);
  const char *p = text;
  while (tokens && *p) {
    char *end;
    errno = 0;
    long long v = strtoll(p, &end, 10);
    if (errno || end == p || v < 0 || v > INT32_MAX || (*end && *end != ',')) {
      free(tokens);
      return fy_status_make(FY_INVALID_ARGUMENT, "--prompt: '%s' is not a comma-separated list of token ids", text);
    }
    if (n == cap) {
      int32_t *bigger = realloc(tokens, sizeof *tokens * (size_t)(cap *= 2));
      if (!bigger) {
        free(tokens);
        tokens = NULL;
        break;
      }
      tokens = bigger;
    }
    tokens[n++] = (int32_t)v;
    p = *end ? end + 1 : end;
  }
  if (!tokens) return fy_status_make(FY_RESOURCE_EXHAUSTED, "--prompt: out of memory");
  if (n == 0) {
    free(tokens);
    return fy_status_make(FY_INVALID_ARGUMENT, "--prompt: no token ids given");
  }
  *out_tokens = tokens;
  *out_count = n;
  return NULL;
}
