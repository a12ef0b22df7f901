/* The safetensors reader rejects every malformed header with a message naming
 * the file and the tensor, and reads back what the writer wrote. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/safetensors.h"
#include "support/file.h"
#include "tests/check.h"

static char tmp[1024];


/* Writes a safetensors file: header length (or `declared` when nonzero), the
 * header text, then data_bytes zero bytes. */
static const char *write_raw(const char *name, const char *header, uint64_t declared, size_t data_bytes) {
  static char path[1200];
  snprintf(path, sizeof path, "%s/%s", tmp, name);
  size_t n = strlen(header);
  uint64_t len = declared ? declared : n;
  size_t total = 8 + n + data_bytes;
  unsigned char *buf = calloc(1, total);
  for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(len >> (8 * i));
  memcpy(buf + 8, header, n);
  fy_status_t s = fy_file_write_atomic_bytes(path, buf, total);
  free(buf);
  if (s) {
    fprintf(stderr, "setup: %s\n", fy_status_message(s));
    exit(1);
  }
  return path;
}

/* Reading path must fail with a message containing every non-NULL needle. */
static void expect_error(const char *path, const char *needle1, const char *needle2, const char *needle3) {
  fy_graph_t *g;
  fy_tensor_index_t index = {0};
  if (fy_graph_create(&g)) exit(1);
  fy_status_t s = fy_safetensors_read(path, g, &index);
  if (!s) {
    fprintf(stderr, "%s: expected an error, got none\n", path);
    failures++;
  } else {
    const char *needles[] = {path, needle1, needle2, needle3};
    for (int i = 0; i < 4; i++) {
      if (needles[i] && !strstr(fy_status_message(s), needles[i])) {
        fprintf(stderr, "%s: error \"%s\" does not mention \"%s\"\n", path, fy_status_message(s), needles[i]);
        failures++;
      }
    }
  }
  fy_status_free(s);
  fy_tensor_index_free(&index);
  fy_graph_destroy(g);
}

static void malformed_files(void) {
  expect_error(write_raw("empty.safetensors", "", 0, 0), "not valid JSON", NULL, NULL);
  { /* fewer than 8 bytes: a bare length prefix, cut */
    char path[1200];
    snprintf(path, sizeof path, "%s/cut.safetensors", tmp);
    fy_status_free(fy_file_write_atomic_bytes(path, "\x10\0\0", 3));
    expect_error(path, "too short", NULL, NULL);
  }
  expect_error(write_raw("len.safetensors", "{}", 1000, 0), "header length 1000", "past the end", NULL);
  expect_error(write_raw("hugelen.safetensors", "{}", UINT64_MAX, 0), "past the end", NULL, NULL);
  expect_error(write_raw("json.safetensors", "{\"a\": {\"dtype\": ", 0, 0), "not valid JSON", NULL, NULL);
  expect_error(write_raw("array.safetensors", "[1, 2]", 0, 0), "not a JSON object", NULL, NULL);
  expect_error(write_raw("trailing.safetensors", "{} x", 0, 0), "after its JSON", NULL, NULL);
  expect_error(write_raw("entry.safetensors", "{\"w\": 3}", 0, 0), "tensor w", "not a JSON object", NULL);
  expect_error(write_raw("meta.safetensors", "{\"__metadata__\": 1}", 0, 0), "__metadata__", NULL, NULL);
  expect_error(write_raw("overlap.safetensors",
                         "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 0, 12),
               "tensors a and b overlap", NULL, NULL);
  expect_error(write_raw("range.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 0, 8),
               "tensor w", "past the end of the data (8 bytes)", "truncated");
  expect_error(write_raw("order.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 0, 8),
               "tensor w", "data_offsets", NULL);
  expect_error(write_raw("f64.safetensors", "{\"w\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 0, 8),
               "tensor w", "dtype F64 is not supported", NULL);
  expect_error(write_raw("i8.safetensors", "{\"w\":{\"dtype\":\"I8\",\"shape\":[8],\"data_offsets\":[0,8]}}", 0, 8),
               "tensor w", "dtype I8 is not supported", NULL);
  expect_error(write_raw("lower.safetensors", "{\"w\":{\"dtype\":\"bf16\",\"shape\":[4],\"data_offsets\":[0,8]}}", 0, 8),
               "tensor w", "dtype bf16 is not supported", NULL);
  expect_error(write_raw("size.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 0, 8),
               "tensor w", "byte size 8", "disagrees with shape [3]");
  expect_error(write_raw("neg.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 0, 8),
               "tensor w", "shape dimension 0", NULL);
  expect_error(write_raw("frac.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]}}", 0, 8),
               "tensor w", "shape dimension 0", NULL);
  expect_error(write_raw("big.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1e30],\"data_offsets\":[0,8]}}", 0, 8),
               "tensor w", "shape dimension 0", NULL);
  expect_error(write_raw("overflow.safetensors",
                         "{\"w\":{\"dtype\":\"BF16\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,8]}}", 0, 8),
               "tensor w", "overflow", NULL);
  expect_error(write_raw("rank.safetensors",
                         "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,4]}}", 0, 4),
               "tensor w", "rank 5", NULL);
  expect_error(write_raw("nodtype.safetensors", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 0, 4),
               "tensor w", "dtype", NULL);
  expect_error(write_raw("dup.safetensors",
                         "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                         "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 0, 8),
               "tensor w appears twice", NULL, NULL);
}

/* Byte j of tensor t: a pattern the reader's offsets must find again. */
static uint8_t pattern(int t, uint64_t j) { return (uint8_t)(t * 37 + j * 11 + (j >> 20)); }

static fy_status_t fill_pattern(void *ctx, int tensor, uint64_t offset, void *buf, size_t size) {
  (void)ctx;
  for (size_t i = 0; i < size; i++) ((uint8_t *)buf)[i] = pattern(tensor, offset + i);
  return NULL;
}

static void round_trip(void) {
  fy_safetensors_entry_t t[] = {
      {"a.weight", FY_DTYPE_F32, 2, {2, 3}},
      {"b.bias", FY_DTYPE_BF16, 1, {5}},
      {"c.ids", FY_DTYPE_I32, 1, {4}},
      {"d.big", FY_DTYPE_F16, 2, {1024, 3000}}, /* 6 MB: more than one write chunk */
      {"e.scalar", FY_DTYPE_F32, 0, {0}},
  };
  int n = (int)(sizeof t / sizeof *t);
  char path[1200];
  snprintf(path, sizeof path, "%s/good.safetensors", tmp);
  fy_status_t s = fy_safetensors_write(path, t, n, fill_pattern, NULL);
  CHECK(!s);
  fy_status_free(s);

  fy_graph_t *g;
  fy_tensor_index_t index = {0};
  if (fy_graph_create(&g)) exit(1);
  s = fy_safetensors_read(path, g, &index);
  if (s) fprintf(stderr, "read: %s\n", fy_status_message(s));
  CHECK(!s);
  fy_status_free(s);
  CHECK(index.n_tensors == n && g->n_files == 1 && !strcmp(g->files[0].path, path));
  fy_mapping_t m;
  if (fy_file_map(path, &m)) exit(1);
  uint64_t header = 0;
  for (int i = 7; i >= 0; i--) header = header << 8 | m.data[i];
  CHECK(header % 8 == 0);
  uint64_t data_end = 8 + header;
  for (int i = 0; i < n; i++) {
    const fy_tensor_info_t *info = fy_tensor_index_find(&index, t[i].name);
    CHECK(info && info->dtype == t[i].dtype && info->rank == t[i].rank && info->file == 0);
    if (!info) continue;
    uint64_t bytes;
    fy_status_free(fy_safetensors_entry_bytes(&t[i], &bytes));
    CHECK(info->nbytes == bytes);
    for (int d = 0; d < t[i].rank; d++) CHECK(info->shape[d] == t[i].shape[d]);
    bool same = info->file_offset + info->nbytes <= m.size;
    for (uint64_t j = 0; same && j < info->nbytes; j++) same = m.data[info->file_offset + j] == pattern(i, j);
    CHECK(same);
    if (info->file_offset + info->nbytes > data_end) data_end = info->file_offset + info->nbytes;
  }
  CHECK(data_end == m.size && g->files[0].size == m.size);
  CHECK(!fy_tensor_index_find(&index, "nope"));
  fy_file_unmap(&m);

  /* The same tensors in a second file: a name may appear only once. */
  char other[1200];
  snprintf(other, sizeof other, "%s/good2.safetensors", tmp);
  fy_status_free(fy_safetensors_write(other, t, 1, NULL, NULL));
  s = fy_safetensors_read(other, g, &index);
  CHECK(s && strstr(fy_status_message(s), "tensor a.weight appears twice") && strstr(fy_status_message(s), path));
  fy_status_free(s);
  fy_tensor_index_free(&index);
  fy_graph_destroy(g);

  /* Names the writer cannot put in a JSON string unescaped are refused. */
  fy_safetensors_entry_t bad = {"a\"b", FY_DTYPE_F32, 1, {1}};
  s = fy_safetensors_write(path, &bad, 1, NULL, NULL);
  CHECK(s && strstr(fy_status_message(s), "a\"b"));
  fy_status_free(s);
}

int main(void) {
  const char *t = getenv("FERRY_TMP");
  snprintf(tmp, sizeof tmp, "%s", t ? t : "/tmp/ferry_test_safetensors");
  fy_status_t s = fy_mkdir_p(tmp);
  if (s) {
    fprintf(stderr, "%s\n", fy_status_message(s));
    return 1;
  }
  malformed_files();
  round_trip();
  return check_summary();
}
