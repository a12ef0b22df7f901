/* GPU target profiles (see target.h).
 *
 * Requires nothing from the graph: a target is read before any pass runs and
 * every pass that decides against a budget or a cost reads it. One table
 * describes the fields; the loader, the validator and the docs follow it. */
#include "passes/target.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "support/file.h"

typedef enum field_kind {
  FIELD_STRING, /* char array of the given size, non-empty */
  FIELD_BYTES,  /* uint64_t, a whole number exactly representable in JSON (<= 2^53) */
  FIELD_RATE,   /* double, positive and finite */
} field_kind_t;

typedef struct field {
  const char *name;
  field_kind_t kind;
  size_t offset;
  size_t size;     /* strings: array size */
  bool may_be_zero; /* bytes: reserve may be 0 */
} field_t;

#define STRING_FIELD(f) {#f, FIELD_STRING, offsetof(fy_target_t, f), sizeof(((fy_target_t *)0)->f), false}
#define BYTES_FIELD(f, zero_ok) {#f, FIELD_BYTES, offsetof(fy_target_t, f), 0, zero_ok}
#define RATE_FIELD(f) {#f, FIELD_RATE, offsetof(fy_target_t, f), 0, false}

static const field_t fields[] = {
    STRING_FIELD(name),
    STRING_FIELD(description),
    BYTES_FIELD(vram_bytes, false),
    BYTES_FIELD(reserve_bytes, true),
    RATE_FIELD(h2d_pinned_gbps),
    RATE_FIELD(h2d_pageable_gbps),
    RATE_FIELD(d2h_gbps),
    RATE_FIELD(disk_read_gbps),
    BYTES_FIELD(host_ram_bytes, false),
    RATE_FIELD(fp16_tflops),
    RATE_FIELD(bf16_tflops),
    RATE_FIELD(fp32_tflops),
    RATE_FIELD(mem_bw_gbps),
    RATE_FIELD(launch_overhead_us),
    RATE_FIELD(cpu_gflops),
    RATE_FIELD(host_mem_bw_gbps),
    STRING_FIELD(code_target),
    STRING_FIELD(sources),
};
#define FIELD_COUNT (sizeof fields / sizeof fields[0])

/* Largest integer a JSON number (an IEEE double in cJSON) holds exactly. */
#define JSON_MAX_EXACT_INT 9007199254740992.0

static fy_status_t field_error(const field_t *f, const char *what) {
  return fy_status_make(FY_INVALID_ARGUMENT, "field %s: %s", f->name, what);
}

static const char *bytes_requirement(const field_t *f) {
  return f->may_be_zero ? "must be a non-negative whole number of bytes"
                        : "must be a positive whole number of bytes";
}

/* The range checks shared by the loader and fy_target_validate. */
static fy_status_t check_field(const fy_target_t *t, const field_t *f) {
  const char *base = (const char *)t + f->offset;
  switch (f->kind) {
    case FIELD_STRING:
      if (!memchr(base, '\0', f->size)) return field_error(f, "is not terminated");
      if (base[0] == '\0') return field_error(f, "must be a non-empty string");
      return NULL;
    case FIELD_BYTES: {
      uint64_t v;
      memcpy(&v, base, sizeof v);
      if (v == 0 && !f->may_be_zero) return field_error(f, bytes_requirement(f));
      return NULL;
    }
    case FIELD_RATE: {
      double v;
      memcpy(&v, base, sizeof v);
      if (!isfinite(v) || v <= 0) return field_error(f, "must be a positive number");
      return NULL;
    }
  }
  return fy_status_make(FY_INTERNAL, "field %s: unknown kind", f->name);
}

static bool is_code_target(const char *s) {
  if (strcmp(s, "spirv") == 0) return true;
  if (strncmp(s, "sm_", 3) != 0) return false;
  const char *p = s + 3;
  int digits = 0;
  while (isdigit((unsigned char)*p)) p++, digits++;
  if (digits < 2 || digits > 3) return false;
  if (islower((unsigned char)*p)) p++; /* sm_90a, sm_100f */
  return *p == '\0';
}

fy_status_t fy_target_validate(const fy_target_t *t) {
  for (size_t i = 0; i < FIELD_COUNT; i++) FY_TRY(check_field(t, &fields[i]));
  if (t->reserve_bytes >= t->vram_bytes)
    return fy_status_make(FY_INVALID_ARGUMENT,
                          "field reserve_bytes: must be less than vram_bytes (%llu >= %llu)",
                          (unsigned long long)t->reserve_bytes, (unsigned long long)t->vram_bytes);
  if (t->h2d_pageable_gbps > t->h2d_pinned_gbps)
    return fy_status_make(FY_INVALID_ARGUMENT,
                          "field h2d_pageable_gbps: must not exceed h2d_pinned_gbps (%g > %g)",
                          t->h2d_pageable_gbps, t->h2d_pinned_gbps);
  if (!is_code_target(t->code_target))
    return fy_status_make(FY_INVALID_ARGUMENT,
                          "field code_target: must be \"sm_NN\" (e.g. \"sm_86\") or \"spirv\", found \"%s\"",
                          t->code_target);
  return NULL;
}

/* Copies one JSON member into the struct, checking its JSON type. */
static fy_status_t read_field(const cJSON *item, const field_t *f, fy_target_t *t) {
  char *base = (char *)t + f->offset;
  switch (f->kind) {
    case FIELD_STRING: {
      if (!cJSON_IsString(item)) return field_error(f, "must be a non-empty string");
      size_t n = strlen(item->valuestring);
      if (n >= f->size)
        return fy_status_make(FY_INVALID_ARGUMENT, "field %s: longer than %zu characters", f->name,
                              f->size - 1);
      memcpy(base, item->valuestring, n + 1);
      return NULL;
    }
    case FIELD_BYTES: {
      if (!cJSON_IsNumber(item)) return field_error(f, bytes_requirement(f));
      double d = item->valuedouble;
      if (!isfinite(d) || d < 0 || d != floor(d) || d > JSON_MAX_EXACT_INT)
        return field_error(f, bytes_requirement(f));
      uint64_t v = (uint64_t)d;
      memcpy(base, &v, sizeof v);
      return NULL;
    }
    case FIELD_RATE: {
      if (!cJSON_IsNumber(item)) return field_error(f, "must be a positive number");
      double v = item->valuedouble;
      memcpy(base, &v, sizeof v);
      return NULL;
    }
  }
  return fy_status_make(FY_INTERNAL, "field %s: unknown kind", f->name);
}

static const field_t *find_field(const char *name) {
  for (size_t i = 0; i < FIELD_COUNT; i++)
    if (strcmp(fields[i].name, name) == 0) return &fields[i];
  return NULL;
}

static fy_status_t parse_profile(const cJSON *root, fy_target_t *out) {
  if (!cJSON_IsObject(root)) return fy_status_make(FY_INVALID_ARGUMENT, "must be a JSON object");
  bool seen[FIELD_COUNT] = {false};
  for (const cJSON *item = root->child; item; item = item->next) {
    const field_t *f = find_field(item->string);
    if (!f) return fy_status_make(FY_INVALID_ARGUMENT, "field %s: unknown field", item->string);
    size_t i = (size_t)(f - fields);
    if (seen[i]) return field_error(f, "appears twice");
    seen[i] = true;
    FY_TRY(read_field(item, f, out));
  }
  for (size_t i = 0; i < FIELD_COUNT; i++)
    if (!seen[i]) return field_error(&fields[i], "missing");
  return fy_target_validate(out);
}

static fy_status_t load_file(const char *path, fy_target_t *out) {
  char *text = NULL;
  size_t size = 0;
  FY_TRY(fy_file_read(path, &text, &size));
  cJSON *root = cJSON_ParseWithLength(text, size);
  fy_status_t st = NULL;
  if (!root) {
    const char *at = cJSON_GetErrorPtr();
    long offset = at && at >= text && at <= text + size ? (long)(at - text) : -1;
    st = fy_status_make(FY_INVALID_ARGUMENT, "%s: not valid JSON (near byte %ld)", path, offset);
  } else {
    fy_target_t t;
    memset(&t, 0, sizeof t);
    st = fy_status_annotate(parse_profile(root, &t), "%s", path);
    if (!st) *out = t;
  }
  cJSON_Delete(root);
  free(text);
  return st;
}

static bool is_path(const char *s) {
  size_t n = strlen(s);
  return strchr(s, '/') || (n >= 5 && strcmp(s + n - 5, ".json") == 0);
}

/* "unknown target 'x' (available: a, b, c)". */
static fy_status_t unknown_name(const char *name, const char *targets_dir) {
  char **names = NULL;
  int count = 0;
  fy_status_t st = fy_target_list(targets_dir, &names, &count);
  if (st) return fy_status_annotate(st, "unknown target '%s'", name);
  size_t n = 1;
  for (int i = 0; i < count; i++) n += strlen(names[i]) + 2;
  char *joined = malloc(n);
  if (!joined) {
    fy_target_list_free(names, count);
    return fy_status_make(FY_RESOURCE_EXHAUSTED, "unknown target '%s'", name);
  }
  joined[0] = '\0';
  for (int i = 0; i < count; i++) {
    if (i) strcat(joined, ", ");
    strcat(joined, names[i]);
  }
  st = fy_status_make(FY_UNAVAILABLE, "unknown target '%s' (available in %s: %s)", name, targets_dir,
                      count ? joined : "none");
  free(joined);
  fy_target_list_free(names, count);
  return st;
}

fy_status_t fy_target_load(const char *name_or_path, const char *targets_dir, fy_target_t *out) {
  if (!name_or_path || !*name_or_path)
    return fy_status_make(FY_INVALID_ARGUMENT, "target: empty name");
  if (is_path(name_or_path)) return load_file(name_or_path, out);
  if (!targets_dir)
    return fy_status_make(FY_INVALID_ARGUMENT, "target '%s': no targets folder to look it up in",
                          name_or_path);
  size_t n = strlen(targets_dir) + 1 + strlen(name_or_path) + sizeof ".json";
  char *path = malloc(n);
  if (!path) return fy_status_make(FY_RESOURCE_EXHAUSTED, "target '%s': out of memory", name_or_path);
  snprintf(path, n, "%s/%s.json", targets_dir, name_or_path);
  struct stat st_buf;
  fy_status_t st = NULL;
  if (stat(path, &st_buf) != 0 && errno == ENOENT) {
    st = unknown_name(name_or_path, targets_dir);
  } else {
    fy_target_t t;
    st = load_file(path, &t);
    if (!st && strcmp(t.name, name_or_path) != 0)
      st = fy_status_make(FY_INVALID_ARGUMENT, "%s: field name: must equal the file name \"%s\", found \"%s\"",
                          path, name_or_path, t.name);
    if (!st) *out = t;
  }
  free(path);
  return st;
}

static int compare_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

fy_status_t fy_target_list(const char *targets_dir, char ***out_names, int *out_count) {
  DIR *dir = opendir(targets_dir);
  if (!dir)
    return fy_status_make(FY_UNAVAILABLE, "targets folder %s: cannot open: %s", targets_dir, strerror(errno));
  char **names = NULL;
  int count = 0, cap = 0;
  fy_status_t st = NULL;
  for (struct dirent *e; (e = readdir(dir)) != NULL;) {
    size_t n = strlen(e->d_name);
    if (e->d_name[0] == '.' || n <= 5 || strcmp(e->d_name + n - 5, ".json") != 0) continue;
    if (count == cap) {
      int new_cap = cap ? cap * 2 : 16;
      char **bigger = realloc(names, (size_t)new_cap * sizeof *names);
      if (!bigger) {
        st = fy_status_make(FY_RESOURCE_EXHAUSTED, "targets folder %s: out of memory", targets_dir);
        break;
      }
      names = bigger;
      cap = new_cap;
    }
    names[count] = strndup(e->d_name, n - 5);
    if (!names[count]) {
      st = fy_status_make(FY_RESOURCE_EXHAUSTED, "targets folder %s: out of memory", targets_dir);
      break;
    }
    count++;
  }
  closedir(dir);
  if (st) {
    fy_target_list_free(names, count);
    return st;
  }
  if (count) qsort(names, (size_t)count, sizeof *names, compare_names);
  *out_names = names;
  *out_count = count;
  return NULL;
}

void fy_target_list_free(char **names, int count) {
  for (int i = 0; i < count; i++) free(names[i]);
  free(names);
}

fy_status_t fy_target_apply_overrides(fy_target_t *t, const fy_target_overrides_t *o) {
  fy_target_t changed = *t;
  if (o->has_vram) changed.vram_bytes = o->vram_bytes;
  if (o->has_reserve) changed.reserve_bytes = o->reserve_bytes;
  if (o->has_h2d) {
    if (!isfinite(o->h2d_gbps) || o->h2d_gbps <= 0)
      return fy_status_make(FY_INVALID_ARGUMENT, "target %s: --h2d-gbps: must be a positive number", t->name);
    changed.h2d_pageable_gbps *= o->h2d_gbps / t->h2d_pinned_gbps;
    changed.h2d_pinned_gbps = o->h2d_gbps;
  }
  FY_TRY(fy_status_annotate(fy_target_validate(&changed), "target %s with overrides", t->name));
  *t = changed;
  return NULL;
}

double fy_target_tflops(const fy_target_t *t, fy_dtype_t weight_dtype) {
  switch (weight_dtype) {
    case FY_DTYPE_BF16: return t->bf16_tflops;
    case FY_DTYPE_F16: return t->fp16_tflops;
    default: return t->fp32_tflops;
  }
}

typedef struct unit {
  const char *suffix;
  uint64_t multiplier;
} unit_t;

static const unit_t units[] = {
    {"", 1},
    {"b", 1},
    {"k", 1ull << 10}, {"kib", 1ull << 10}, {"kb", 1000ull},
    {"m", 1ull << 20}, {"mib", 1ull << 20}, {"mb", 1000000ull},
    {"g", 1ull << 30}, {"gib", 1ull << 30}, {"gb", 1000000000ull},
    {"t", 1ull << 40}, {"tib", 1ull << 40}, {"tb", 1000000000000ull},
};

fy_status_t fy_parse_bytes(const char *text, uint64_t *out) {
  if (!text) return fy_status_make(FY_INVALID_ARGUMENT, "byte size: missing");
  const char *p = text;
  uint64_t whole = 0;
  int whole_digits = 0;
  for (; isdigit((unsigned char)*p); p++, whole_digits++) {
    uint64_t d = (uint64_t)(*p - '0');
    if (whole > (UINT64_MAX - d) / 10)
      return fy_status_make(FY_OUT_OF_RANGE, "byte size '%s': too large", text);
    whole = whole * 10 + d;
  }
  double frac = 0, scale = 0.1;
  int frac_digits = 0;
  bool has_point = *p == '.';
  if (has_point)
    for (p++; isdigit((unsigned char)*p); p++, frac_digits++, scale /= 10) frac += (*p - '0') * scale;
  if (whole_digits == 0 || (has_point && frac_digits == 0))
    return fy_status_make(FY_INVALID_ARGUMENT,
                          "byte size '%s': expected a number such as 12884901888, 12G, 512MiB or 1.5G",
                          text);
  while (*p == ' ') p++;
  const unit_t *unit = NULL;
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
    if (strcasecmp(p, units[i].suffix) == 0) unit = &units[i];
  if (!unit)
    return fy_status_make(FY_INVALID_ARGUMENT,
                          "byte size '%s': unknown unit '%s' (K, M, G, T or KiB..TiB are powers of "
                          "1024; KB, MB, GB, TB are powers of 1000)",
                          text, p);
  if (has_point && unit->multiplier == 1)
    return fy_status_make(FY_INVALID_ARGUMENT, "byte size '%s': a fraction needs a unit (K, M, G, T)",
                          text);
  if (whole > UINT64_MAX / unit->multiplier)
    return fy_status_make(FY_OUT_OF_RANGE, "byte size '%s': too large", text);
  uint64_t bytes = whole * unit->multiplier;
  uint64_t frac_bytes = (uint64_t)(frac * (double)unit->multiplier + 0.5);
  if (bytes > UINT64_MAX - frac_bytes)
    return fy_status_make(FY_OUT_OF_RANGE, "byte size '%s': too large", text);
  *out = bytes + frac_bytes;
  return NULL;
}
