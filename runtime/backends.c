/* The built-in backends, by name. A backend is listed here once its file
 * builds everywhere (a machine without its driver gets FY_UNAVAILABLE from
 * its create, not a link failure). */
#include <stdio.h>
#include <string.h>

#include "runtime/backend.h"
#include "runtime/cuda_driver.h"
#include "runtime/vulkan.h"

static const fy_rt_backend_t *const backends[] = {&fy_rt_backend_cpu, &fy_rt_backend_vulkan, &fy_rt_backend_cuda};
enum { N_BACKENDS = sizeof backends / sizeof *backends };

const fy_rt_backend_t *fy_rt_backend_find(const char *name) {
  if (!name) return &fy_rt_backend_cpu;
  for (int i = 0; i < N_BACKENDS; i++)
    if (!strcmp(backends[i]->name, name)) return backends[i];
  return NULL;
}

void fy_rt_backend_names(char *buf, size_t size) {
  size_t at = 0;
  if (size) buf[0] = 0;
  for (int i = 0; i < N_BACKENDS && at < size; i++)
    at += (size_t)snprintf(buf + at, size - at, "%s%s", i ? ", " : "", backends[i]->name);
}

bool fy_rt_backend_runs(const fy_rt_backend_t *backend, const char *code_target) {
  size_t n = strlen(backend->code_target);
  return n > 0 && !strncmp(code_target, backend->code_target, n);
}
