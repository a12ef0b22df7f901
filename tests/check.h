/* What every C test shares: CHECK (on failure it prints the condition, or a
 * printf-style message when one follows it), ok() for statuses, and the
 * closing "N passed, M failed" line. Header-only: each test is one program. */
#ifndef FERRY_TESTS_CHECK_H
#define FERRY_TESTS_CHECK_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#include "ferry/status.h"

static int failures, checks;

__attribute__((format(printf, 5, 6), unused)) static void check_report(bool holds, const char *file, int line,
                                                                      const char *condition, const char *fmt, ...) {
  checks++;
  if (holds) return;
  failures++;
  fprintf(stderr, "FAIL %s:%d: ", file, line);
  if (fmt[1]) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt + 1, ap);
    va_end(ap);
  } else {
    fputs(condition, stderr);
  }
  fputc('\n', stderr);
}

/* CHECK(cond) or CHECK(cond, "format", args...): the message must be a
 * literal; "@" keeps the format non-empty when there is none. */
#define CHECK(cond, ...) check_report((cond) ? true : false, __FILE__, __LINE__, #cond, "@" __VA_ARGS__)

/* True for success; otherwise counts a failure naming `what` and frees s. */
__attribute__((unused)) static bool ok(fy_status_t s, const char *what) {
  checks++;
  if (!s) return true;
  failures++;
  fprintf(stderr, "FAIL %s: %s\n", what, fy_status_message(s));
  fy_status_free(s);
  return false;
}

/* Prints the closing line; returns the exit code. */
__attribute__((unused)) static int check_summary(void) {
  printf("%d passed, %d failed\n", checks - failures, failures);
  return failures != 0;
}

#endif
