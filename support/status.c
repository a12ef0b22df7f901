/* Status values (see include/ferry/status.h). */
#include "ferry/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fy_status {
  fy_code_t code;
  int is_static;
  char *message;
};

static struct fy_status out_of_memory_status = {FY_RESOURCE_EXHAUSTED, 1,
                                                "out of memory while reporting an error"};

static char *vformat(const char *fmt, va_list ap) {
  va_list copy;
  va_copy(copy, ap);
  int n = vsnprintf(NULL, 0, fmt, copy);
  va_end(copy);
  if (n < 0) return NULL;
  char *s = malloc((size_t)n + 1);
  if (s) vsnprintf(s, (size_t)n + 1, fmt, ap);
  return s;
}

fy_status_t fy_status_make(fy_code_t code, const char *fmt, ...) {
  struct fy_status *s = malloc(sizeof *s);
  if (!s) return &out_of_memory_status;
  va_list ap;
  va_start(ap, fmt);
  s->message = vformat(fmt, ap);
  va_end(ap);
  if (!s->message) {
    free(s);
    return &out_of_memory_status;
  }
  s->code = code == FY_OK ? FY_INTERNAL : code;
  s->is_static = 0;
  return s;
}

fy_status_t fy_status_annotate(fy_status_t status, const char *fmt, ...) {
  if (!status || status->is_static) return status;
  va_list ap;
  va_start(ap, fmt);
  char *context = vformat(fmt, ap);
  va_end(ap);
  if (!context) return status;
  size_t n = strlen(context) + 2 + strlen(status->message) + 1;
  char *joined = malloc(n);
  if (joined) {
    snprintf(joined, n, "%s: %s", context, status->message);
    free(status->message);
    status->message = joined;
  }
  free(context);
  return status;
}

fy_code_t fy_status_code(fy_status_t status) { return status ? status->code : FY_OK; }

const char *fy_status_message(fy_status_t status) { return status ? status->message : "ok"; }

const char *fy_code_name(fy_code_t code) {
  switch (code) {
    case FY_OK: return "ok";
    case FY_INVALID_ARGUMENT: return "invalid argument";
    case FY_OUT_OF_RANGE: return "out of range";
    case FY_INCOMPATIBLE: return "incompatible";
    case FY_RESOURCE_EXHAUSTED: return "resource exhausted";
    case FY_UNAVAILABLE: return "unavailable";
    case FY_INTERNAL: return "internal error";
  }
  return "unknown";
}

void fy_status_free(fy_status_t status) {
  if (!status || status->is_static) return;
  free(status->message);
  free(status);
}
