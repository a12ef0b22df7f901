/* ferry status values: errors are values, never exits.
 *
 * A status is NULL on success. A failure is a heap object carrying a code and
 * a message; context is prepended on the way up ("layer 12: tensor X: ...").
 * Whoever receives a non-NULL status owns it and must fy_status_free() it
 * (or return it further up). Out-of-memory while building a status yields a
 * static status that fy_status_free() ignores. */
#ifndef FERRY_STATUS_H
#define FERRY_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum fy_code {
  FY_OK = 0,
  FY_INVALID_ARGUMENT,  /* bad input: a malformed file, a wrong option */
  FY_OUT_OF_RANGE,      /* an index, offset or size past its bound */
  FY_INCOMPATIBLE,      /* well-formed but not for this (target, weights, version) */
  FY_RESOURCE_EXHAUSTED,/* memory or budget does not suffice */
  FY_UNAVAILABLE,       /* a device, driver or file that is not there */
  FY_INTERNAL,          /* a bug in ferry */
} fy_code_t;

typedef struct fy_status *fy_status_t;

fy_status_t fy_status_make(fy_code_t code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prepends "context: " to the message; returns the same status (NULL stays NULL). */
fy_status_t fy_status_annotate(fy_status_t status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
fy_code_t fy_status_code(fy_status_t status);
const char *fy_status_message(fy_status_t status);
const char *fy_code_name(fy_code_t code);
void fy_status_free(fy_status_t status);

#define FY_TRY(expr)                        \
  do {                                      \
    fy_status_t fy_try_status_ = (expr);    \
    if (fy_try_status_) return fy_try_status_; \
  } while (0)

#ifdef __cplusplus
}
#endif
#endif
