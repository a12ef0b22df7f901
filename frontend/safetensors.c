/* safetensors reader and writer (see safetensors.h). The format is small
 * enough to parse by hand: a length, a JSON header (cJSON), raw data. Only
 * the header is read; the data stays on disk until the runtime maps it. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frontend/safetensors.h"
#include "support/grow.h"
#include "support/file.h"

/* The safetensors specification caps the header at 100 MB. */
#define MAX_HEADER_BYTES (100ull << 20)
/* Offsets and dimensions arrive as JSON numbers (doubles): above 2^53 they are
 * no longer exact, so they are rejected rather than silently rounded. */
#define MAX_EXACT_INTEGER 9007199254740992.0
#define WRITE_CHUNK_BYTES (4u << 20)

static bool json_uint(const cJSON *item, uint64_t *out) {
  if (!cJSON_IsNumber(item)) return false;
  double d = item->valuedouble;
  if (!(d >= 0 && d <= MAX_EXACT_INTEGER) || (double)(uint64_t)d != d) return false;
  *out = (uint64_t)d;
  return true;
}

static fy_status_t pread_all(int fd, void *buf, size_t size, uint64_t offset, const char *path) {
  uint8_t *p = buf;
  while (size > 0) {
    ssize_t r = pread(fd, p, size, (off_t)offset);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return fy_status_make(FY_UNAVAILABLE, "%s: read failed: %s", path, strerror(errno));
    if (r == 0) return fy_status_make(FY_OUT_OF_RANGE, "%s: file shorter than expected", path);
    p += r;
    size -= (size_t)r;
    offset += (uint64_t)r;
  }
  return NULL;
}

/* Reads the header bytes: returns a NUL-terminated malloc'ed buffer. */
static fy_status_t read_header(const char *path, char **out_json, uint64_t *out_header_len,
                               uint64_t *out_file_size) {
  int fd;
  FY_TRY(fy_file_open_read(path, &fd, NULL));
  struct stat st;
  fy_status_t s = NULL;
  char *json = NULL;
  uint64_t n = 0, size = 0;
  uint8_t len_bytes[8];
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    s = fy_status_make(FY_INVALID_ARGUMENT, "%s: not a regular file", path);
    goto done;
  }
  size = (uint64_t)st.st_size;
  if (size < 8) {
    s = fy_status_make(FY_INVALID_ARGUMENT, "%s: file is %llu bytes, too short for a safetensors header length",
                       path, (unsigned long long)size);
    goto done;
  }
  if ((s = pread_all(fd, len_bytes, 8, 0, path))) goto done;
  for (int i = 7; i >= 0; i--) n = n << 8 | len_bytes[i];
  if (n > size - 8) {
    s = fy_status_make(FY_OUT_OF_RANGE, "%s: header length %llu runs past the end of the file (%llu bytes)", path,
                       (unsigned long long)n, (unsigned long long)size);
    goto done;
  }
  if (n > MAX_HEADER_BYTES) {
    s = fy_status_make(FY_INVALID_ARGUMENT, "%s: header length %llu exceeds the format's 100 MB limit", path,
                       (unsigned long long)n);
    goto done;
  }
  json = malloc((size_t)n + 1);
  if (!json) {
    s = fy_status_make(FY_RESOURCE_EXHAUSTED, "%s: out of memory for a %llu-byte header", path,
                       (unsigned long long)n);
    goto done;
  }
  if ((s = pread_all(fd, json, (size_t)n, 8, path))) goto done;
  json[n] = 0;
done:
  close(fd);
  if (s) {
    free(json);
    return s;
  }
  *out_json = json;
  *out_header_len = n;
  *out_file_size = size;
  return NULL;
}

static const char *shape_str(int rank, const int64_t *shape, char *buf, int size) {
  fy_value_t v = {.rank = rank};
  memcpy(v.shape, shape, sizeof v.shape);
  return fy_shape_str(&v, buf, size);
}

/* Parses one tensor entry into *t (name set by the caller); data offsets are
 * returned relative to the data section. */
static fy_status_t parse_entry(const cJSON *entry, uint64_t data_size, fy_tensor_info_t *t, uint64_t *out_begin,
                               uint64_t *out_end) {
  if (!cJSON_IsObject(entry)) return fy_status_make(FY_INVALID_ARGUMENT, "not a JSON object");
  const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(entry, "dtype");
  const cJSON *shape = cJSON_GetObjectItemCaseSensitive(entry, "shape");
  const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(entry, "data_offsets");
  if (!cJSON_IsString(dtype)) return fy_status_make(FY_INVALID_ARGUMENT, "field dtype: missing or not a string");
  bool known = false;
  for (int d = 0; d < FY_DTYPE_COUNT && !known; d++) {
    if (!strcmp(dtype->valuestring, fy_dtype_safetensors_name((fy_dtype_t)d))) {
      t->dtype = (fy_dtype_t)d;
      known = true;
    }
  }
  if (!known)
    return fy_status_make(FY_INCOMPATIBLE, "dtype %s is not supported (F32, F16, BF16, I32)", dtype->valuestring);
  if (!cJSON_IsArray(shape)) return fy_status_make(FY_INVALID_ARGUMENT, "field shape: missing or not an array");
  int rank = cJSON_GetArraySize(shape);
  if (rank > FY_MAX_RANK)
    return fy_status_make(FY_INCOMPATIBLE, "shape has rank %d, more than ferry's %d", rank, FY_MAX_RANK);
  t->rank = rank;
  uint64_t elements = 1;
  int i = 0;
  for (const cJSON *dim = shape->child; dim; dim = dim->next, i++) {
    uint64_t d;
    if (!json_uint(dim, &d))
      return fy_status_make(FY_INVALID_ARGUMENT, "shape dimension %d is not a non-negative integer below 2^53", i);
    if (d != 0 && elements > UINT64_MAX / d)
      return fy_status_make(FY_OUT_OF_RANGE, "shape dimension %d (%llu) overflows the element count", i,
                            (unsigned long long)d);
    elements *= d;
    t->shape[i] = (int64_t)d;
  }
  size_t esize = fy_dtype_size(t->dtype);
  if (elements > UINT64_MAX / esize)
    return fy_status_make(FY_OUT_OF_RANGE, "shape overflows the byte size");
  uint64_t expected = elements * esize, begin, end;
  if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2 || !json_uint(offsets->child, &begin) ||
      !json_uint(offsets->child->next, &end) || begin > end)
    return fy_status_make(FY_INVALID_ARGUMENT, "field data_offsets: must be [begin, end] with 0 <= begin <= end");
  if (end > data_size)
    return fy_status_make(FY_OUT_OF_RANGE, "data_offsets [%llu, %llu] run past the end of the data (%llu bytes): "
                          "truncated file?", (unsigned long long)begin, (unsigned long long)end,
                          (unsigned long long)data_size);
  if (end - begin != expected) {
    char buf[96];
    return fy_status_make(FY_INVALID_ARGUMENT, "byte size %llu (data_offsets [%llu, %llu]) disagrees with shape %s "
                          "x %s = %llu bytes", (unsigned long long)(end - begin), (unsigned long long)begin,
                          (unsigned long long)end, shape_str(t->rank, t->shape, buf, sizeof buf),
                          dtype->valuestring, (unsigned long long)expected);
  }
  t->nbytes = expected;
  *out_begin = begin;
  *out_end = end;
  return NULL;
}

static int compare_by_offset(const void *a, const void *b) {
  const fy_tensor_info_t *x = *(fy_tensor_info_t *const *)a, *y = *(fy_tensor_info_t *const *)b;
  return x->file_offset < y->file_offset ? -1 : x->file_offset > y->file_offset;
}

static int compare_by_name(const void *a, const void *b) {
  return strcmp((*(fy_tensor_info_t *const *)a)->name, (*(fy_tensor_info_t *const *)b)->name);
}

/* Sorts pointers to index->tensors[first..] with cmp into a malloc'ed array. */
static fy_status_t sorted(const fy_tensor_index_t *index, int first, int (*cmp)(const void *, const void *),
                          fy_tensor_info_t ***out) {
  int n = index->n_tensors - first;
  fy_tensor_info_t **p = malloc(sizeof *p * (size_t)(n > 0 ? n : 1));
  if (!p) return fy_status_make(FY_RESOURCE_EXHAUSTED, "out of memory");
  for (int i = 0; i < n; i++) p[i] = &index->tensors[first + i];
  qsort(p, (size_t)n, sizeof *p, cmp);
  *out = p;
  return NULL;
}

/* Meaning checks over the whole file: no overlapping data, no name twice
 * (in this file or in one read before). */
static fy_status_t check_tensors(const char *path, const fy_graph_t *g, const fy_tensor_index_t *index, int first) {
  fy_tensor_info_t **p = NULL;
  FY_TRY(sorted(index, first, compare_by_offset, &p));
  fy_status_t s = NULL;
  const fy_tensor_info_t *last = NULL;
  for (int i = 0; i < index->n_tensors - first && !s; i++) {
    if (p[i]->nbytes == 0) continue;
    if (last && p[i]->file_offset < last->file_offset + last->nbytes)
      s = fy_status_make(FY_INVALID_ARGUMENT, "%s: tensors %s and %s overlap (bytes %llu..%llu and %llu..%llu)", path,
                         last->name, p[i]->name, (unsigned long long)last->file_offset,
                         (unsigned long long)(last->file_offset + last->nbytes), (unsigned long long)p[i]->file_offset,
                         (unsigned long long)(p[i]->file_offset + p[i]->nbytes));
    if (!last || p[i]->file_offset + p[i]->nbytes > last->file_offset + last->nbytes) last = p[i];
  }
  free(p);
  if (s) return s;
  FY_TRY(sorted(index, 0, compare_by_name, &p));
  for (int i = 1; i < index->n_tensors && !s; i++)
    if (!strcmp(p[i - 1]->name, p[i]->name))
      s = fy_status_make(FY_INVALID_ARGUMENT, "%s: tensor %s appears twice (in %s and %s)", path, p[i]->name,
                         g->files[p[i - 1]->file].path, g->files[p[i]->file].path);
  free(p);
  return s;
}

static fy_status_t append(fy_tensor_index_t *index, const fy_tensor_info_t *t) {
  FY_TRY(FY_GROW(index->tensors, index->n_tensors, index->cap_tensors, "tensor index"));
  index->tensors[index->n_tensors++] = *t;
  return NULL;
}

static fy_status_t parse_header(const char *path, const char *json, uint64_t header_len, uint64_t file_size,
                                int file, fy_tensor_index_t *index) {
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(json, (size_t)header_len, &end, false);
  if (!root) {
    size_t at = end && end >= json ? (size_t)(end - json) : 0;
    return fy_status_make(FY_INVALID_ARGUMENT, "%s: header is not valid JSON (near byte %zu of %llu)", path, at,
                          (unsigned long long)header_len);
  }
  fy_status_t s = NULL;
  for (const char *p = end; p < json + header_len && !s; p++)
    if (*p != ' ' && *p != '\n' && *p != '\t' && *p != '\r')
      s = fy_status_make(FY_INVALID_ARGUMENT, "%s: header has bytes after its JSON object", path);
  if (!s && !cJSON_IsObject(root)) s = fy_status_make(FY_INVALID_ARGUMENT, "%s: header is not a JSON object", path);
  uint64_t data_start = 8 + header_len, data_size = file_size - data_start;
  for (const cJSON *e = root->child; e && !s; e = e->next) {
    if (!strcmp(e->string, "__metadata__")) {
      if (!cJSON_IsObject(e)) s = fy_status_make(FY_INVALID_ARGUMENT, "%s: __metadata__ is not an object", path);
      continue;
    }
    fy_tensor_info_t t = {.file = file};
    uint64_t begin = 0, stop = 0;
    s = parse_entry(e, data_size, &t, &begin, &stop);
    if (s) {
      s = fy_status_annotate(s, "%s: tensor %s", path, e->string);
      break;
    }
    t.file_offset = data_start + begin;
    t.name = fy_arena_strdup(&index->arena, e->string);
    if (!t.name) s = fy_status_make(FY_RESOURCE_EXHAUSTED, "%s: out of memory", path);
    if (!s) s = append(index, &t);
  }
  cJSON_Delete(root);
  return s;
}

fy_status_t fy_safetensors_read(const char *path, fy_graph_t *g, fy_tensor_index_t *index) {
  char *json = NULL;
  uint64_t header_len = 0, file_size = 0;
  FY_TRY(read_header(path, &json, &header_len, &file_size));
  int file, first = index->n_tensors;
  fy_status_t s = fy_graph_add_file(g, path, file_size, &file);
  if (!s) s = parse_header(path, json, header_len, file_size, file, index);
  free(json);
  if (!s) s = check_tensors(path, g, index, first);
  return s;
}

fy_status_t fy_safetensors_entry_bytes(const fy_safetensors_entry_t *e, uint64_t *out_bytes) {
  if (e->rank < 0 || e->rank > FY_MAX_RANK || e->dtype >= FY_DTYPE_COUNT)
    return fy_status_make(FY_INVALID_ARGUMENT, "tensor %s: rank %d or dtype out of range", e->name, e->rank);
  uint64_t n = fy_dtype_size(e->dtype);
  for (int i = 0; i < e->rank; i++) {
    uint64_t d = (uint64_t)e->shape[i];
    if (e->shape[i] < 0 || (double)d > MAX_EXACT_INTEGER || (d != 0 && n > UINT64_MAX / d))
      return fy_status_make(FY_OUT_OF_RANGE, "tensor %s: dimension %d (%lld) out of range", e->name, i,
                            (long long)e->shape[i]);
    n *= d;
  }
  *out_bytes = n;
  return NULL;
}

typedef struct {
  char *data;
  size_t len, cap;
} strbuf_t;

static bool strbuf_printf(strbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool strbuf_printf(strbuf_t *b, const char *fmt, ...) {
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->data ? b->data + b->len : NULL, b->data ? b->cap - b->len : 0, fmt, ap);
    va_end(ap);
    if (n < 0) return false;
    if (b->data && (size_t)n < b->cap - b->len) {
      b->len += (size_t)n;
      return true;
    }
    size_t cap = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
    char *p = realloc(b->data, cap);
    if (!p) return false;
    b->data = p;
    b->cap = cap;
  }
}

typedef struct {
  const char *path;
  const fy_safetensors_entry_t *tensors;
  const uint64_t *bytes;
  int n_tensors;
  const strbuf_t *header;
  fy_safetensors_fill_fn fill;
  void *ctx;
} write_ctx_t;

static fy_status_t write_file(void *ctx, int fd) {
  write_ctx_t *w = ctx;
  uint8_t len_bytes[8];
  for (int i = 0; i < 8; i++) len_bytes[i] = (uint8_t)((uint64_t)w->header->len >> (8 * i));
  FY_TRY(fy_fd_write_all(fd, len_bytes, 8, w->path));
  FY_TRY(fy_fd_write_all(fd, w->header->data, w->header->len, w->path));
  uint8_t *chunk = calloc(1, WRITE_CHUNK_BYTES);
  if (!chunk) return fy_status_make(FY_RESOURCE_EXHAUSTED, "%s: out of memory", w->path);
  fy_status_t s = NULL;
  for (int i = 0; i < w->n_tensors && !s; i++) {
    for (uint64_t off = 0; off < w->bytes[i] && !s;) {
      size_t n = w->bytes[i] - off < WRITE_CHUNK_BYTES ? (size_t)(w->bytes[i] - off) : WRITE_CHUNK_BYTES;
      if (w->fill) s = w->fill(w->ctx, i, off, chunk, n);
      if (!s) s = fy_fd_write_all(fd, chunk, n, w->path);
      off += n;
    }
  }
  free(chunk);
  return s;
}

fy_status_t fy_safetensors_write(const char *path, const fy_safetensors_entry_t *tensors, int n_tensors,
                                 fy_safetensors_fill_fn fill, void *ctx) {
  uint64_t *bytes = calloc((size_t)(n_tensors > 0 ? n_tensors : 1), sizeof *bytes);
  strbuf_t h = {0};
  fy_status_t s = NULL;
  bool ok = bytes && strbuf_printf(&h, "{\"__metadata__\":{\"format\":\"pt\"}");
  uint64_t offset = 0;
  for (int i = 0; i < n_tensors && ok && !s; i++) {
    const fy_safetensors_entry_t *e = &tensors[i];
    for (const char *c = e->name; *c && !s; c++)
      if (*c < 0x20 || *c > 0x7e || *c == '"' || *c == '\\')
        s = fy_status_make(FY_INVALID_ARGUMENT, "%s: tensor name %s: only printable ASCII without quotes", path,
                           e->name);
    if (!s) s = fy_safetensors_entry_bytes(e, &bytes[i]);
    if (s) break;
    ok = strbuf_printf(&h, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", e->name, fy_dtype_safetensors_name(e->dtype));
    for (int d = 0; d < e->rank && ok; d++) ok = strbuf_printf(&h, "%s%lld", d ? "," : "", (long long)e->shape[d]);
    ok = ok && strbuf_printf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)offset,
                             (unsigned long long)(offset + bytes[i]));
    offset += bytes[i];
  }
  ok = ok && strbuf_printf(&h, "}");
  /* Pad with spaces so that the data starts 8-byte aligned, as the format recommends. */
  while (ok && h.len % 8) ok = strbuf_printf(&h, " ");
  if (!s && !ok) s = fy_status_make(FY_RESOURCE_EXHAUSTED, "%s: out of memory building the header", path);
  if (!s) {
    write_ctx_t w = {path, tensors, bytes, n_tensors, &h, fill, ctx};
    s = fy_file_write_atomic(path, write_file, &w);
  }
  free(h.data);
  free(bytes);
  return s;
}
