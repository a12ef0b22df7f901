/* GPU target profiles: every shipped profile loads and is sensible, bad
 * profiles are rejected with the file and the field named, overrides
 * re-validate, byte sizes parse. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passes/target.h"
#include "support/file.h"
#include "tests/check.h"



static const char *targets_dir;
static const char *tmp_dir;

static const char *required[] = {
    "gtx1060-6g", "rtx3050-4g",  "rtx3060-12g", "rtx4060-8g",    "rtx4090-24g",   "rtx5090-32g",
    "t4-16g",     "l4-24g",      "a10-24g",     "a100-40g",      "a100-80g",      "h100-80g-pcie",
    "h100-80g-sxm", "rx580-8g",  "rx7900xtx-24g", "demo",
};

static fy_target_t load_ok(const char *name) {
  fy_target_t t;
  memset(&t, 0, sizeof t);
  fy_status_t st = fy_target_load(name, targets_dir, &t);
  if (st) fprintf(stderr, "load %s: %s\n", name, fy_status_message(st));
  CHECK(st == NULL);
  fy_status_free(st);
  return t;
}

static void check_sensible(const fy_target_t *t) {
  const double GiB = 1024.0 * 1024 * 1024;
  CHECK(fy_target_validate(t) == NULL);
  CHECK(t->vram_bytes > t->reserve_bytes);
  CHECK(t->reserve_bytes <= t->vram_bytes / 4);
  CHECK(t->vram_bytes >= 128u << 20 && t->vram_bytes <= 256 * GiB);
  CHECK(t->host_ram_bytes >= t->vram_bytes);
  CHECK(t->h2d_pinned_gbps >= t->h2d_pageable_gbps);
  CHECK(t->h2d_pinned_gbps <= 64);  /* PCIe 5.0 x16 peaks near 56 GB/s */
  CHECK(t->mem_bw_gbps > t->h2d_pinned_gbps);
  CHECK(t->disk_read_gbps <= t->h2d_pinned_gbps);
  CHECK(t->bf16_tflops <= t->fp16_tflops);
  CHECK(t->fp32_tflops <= t->fp16_tflops);
  CHECK(t->cpu_gflops / 1000 < t->fp32_tflops * 2);
  CHECK(t->launch_overhead_us >= 1 && t->launch_overhead_us <= 20);
  bool amd_or_demo = strncmp(t->name, "rx", 2) == 0 || strcmp(t->name, "demo") == 0;
  CHECK(amd_or_demo ? strcmp(t->code_target, "spirv") == 0 : strncmp(t->code_target, "sm_", 3) == 0);
  CHECK(strlen(t->sources) > 40);
}

static void test_shipped_profiles(void) {
  printf("every required profile is listed, loads, and is sensible\n");
  char **names = NULL;
  int count = 0;
  fy_status_t st = fy_target_list(targets_dir, &names, &count);
  CHECK(st == NULL);
  fy_status_free(st);
  for (size_t r = 0; r < sizeof required / sizeof required[0]; r++) {
    bool found = false;
    for (int i = 0; i < count; i++) found |= strcmp(names[i], required[r]) == 0;
    if (!found) fprintf(stderr, "missing profile %s\n", required[r]);
    CHECK(found);
  }
  for (int i = 1; i < count; i++) CHECK(strcmp(names[i - 1], names[i]) < 0);
  for (int i = 0; i < count; i++) {
    fy_target_t t = load_ok(names[i]);
    printf("  %-14s vram %6.1f GiB  h2d %5.1f GB/s  bf16 %6.1f TFLOP/s  %s\n", names[i],
           (double)t.vram_bytes / (1u << 30), t.h2d_pinned_gbps, t.bf16_tflops, t.code_target);
    CHECK(strcmp(t.name, names[i]) == 0);
    check_sensible(&t);
  }
  fy_target_list_free(names, count);

  printf("bf16 on sm_75 and older has no tensor-core path\n");
  fy_target_t t4 = load_ok("t4-16g");
  CHECK(t4.bf16_tflops * 10 < t4.fp16_tflops);
  fy_target_t pascal = load_ok("gtx1060-6g");
  CHECK(pascal.bf16_tflops == pascal.fp32_tflops);

  printf("the matmul rate follows the weight dtype\n");
  CHECK(fy_target_tflops(&t4, FY_DTYPE_BF16) == t4.bf16_tflops);
  CHECK(fy_target_tflops(&t4, FY_DTYPE_F16) == t4.fp16_tflops);
  CHECK(fy_target_tflops(&t4, FY_DTYPE_F32) == t4.fp32_tflops);

  printf("the demo target makes the small preset stream\n");
  fy_target_t demo = load_ok("demo");
  CHECK(demo.vram_bytes == 150u << 20 && demo.reserve_bytes == 16u << 20);
  CHECK(strstr(demo.description, "small") != NULL);

  printf("a path loads too\n");
  char path[4096];
  snprintf(path, sizeof path, "%s/rtx3060-12g.json", targets_dir);
  fy_target_t by_path = load_ok(path);
  CHECK(strcmp(by_path.name, "rtx3060-12g") == 0);
}

/* A good profile as JSON, to break one field at a time. */
static cJSON *good_profile(void) {
  char path[4096], *text = NULL;
  size_t size = 0;
  snprintf(path, sizeof path, "%s/demo.json", targets_dir);
  fy_status_t st = fy_file_read(path, &text, &size);
  CHECK(st == NULL);
  fy_status_free(st);
  cJSON *root = cJSON_Parse(text);
  free(text);
  return root;
}

static void write_tmp(const char *file, const char *text, char *out_path, size_t n) {
  snprintf(out_path, n, "%s/%s", tmp_dir, file);
  fy_status_t st = fy_file_write_atomic_bytes(out_path, text, strlen(text));
  CHECK(st == NULL);
  fy_status_free(st);
}

/* Loads text from a temporary file and expects an error naming the file and containing want. */
static void expect_rejected(const char *file, const char *text, const char *want) {
  char path[4096];
  write_tmp(file, text, path, sizeof path);
  fy_target_t t;
  memset(&t, 0x5a, sizeof t);
  unsigned char before[sizeof t];
  memcpy(before, &t, sizeof t);
  fy_status_t st = fy_target_load(path, NULL, &t);
  const char *msg = fy_status_message(st);
  printf("  %-24s -> %s\n", file, st ? msg : "(accepted)");
  CHECK(st != NULL);
  CHECK(strncmp(msg, path, strlen(path)) == 0);
  CHECK(strstr(msg, want) != NULL);
  CHECK(memcmp(before, &t, sizeof t) == 0); /* out written only on success */
  fy_status_free(st);
}

static void expect_rejected_json(const char *file, cJSON *root, const char *want) {
  char *text = cJSON_Print(root);
  expect_rejected(file, text, want);
  free(text);
  cJSON_Delete(root);
}

static cJSON *with_number(const char *field, double v) {
  cJSON *root = good_profile();
  cJSON_ReplaceItemInObject(root, field, cJSON_CreateNumber(v));
  return root;
}

static cJSON *with_string(const char *field, const char *v) {
  cJSON *root = good_profile();
  cJSON_ReplaceItemInObject(root, field, cJSON_CreateString(v));
  return root;
}

static void test_bad_profiles(void) {
  printf("bad profiles are rejected, naming the file and the field\n");
  expect_rejected_json("zero-h2d.json", with_number("h2d_pinned_gbps", 0),
                       "field h2d_pinned_gbps: must be a positive number");
  expect_rejected_json("negative-fp16.json", with_number("fp16_tflops", -1),
                       "field fp16_tflops: must be a positive number");
  expect_rejected_json("string-rate.json", with_string("h2d_pinned_gbps", "fast"),
                       "field h2d_pinned_gbps: must be a positive number");
  expect_rejected_json("fraction-bytes.json", with_number("vram_bytes", 1.5),
                       "field vram_bytes: must be a positive whole number of bytes");
  expect_rejected_json("zero-vram.json", with_number("vram_bytes", 0), "field vram_bytes");
  expect_rejected_json("string-bytes.json", with_string("host_ram_bytes", "32G"),
                       "field host_ram_bytes");
  expect_rejected_json("huge-reserve.json", with_number("reserve_bytes", 256 << 20),
                       "field reserve_bytes: must be less than vram_bytes");
  expect_rejected_json("pageable-fast.json", with_number("h2d_pageable_gbps", 3),
                       "field h2d_pageable_gbps: must not exceed h2d_pinned_gbps");
  expect_rejected_json("bad-code-target.json", with_string("code_target", "sm86"),
                       "field code_target");
  expect_rejected_json("empty-name.json", with_string("name", ""), "field name: must be a non-empty string");
  char long_name[200];
  memset(long_name, 'x', sizeof long_name - 1);
  long_name[sizeof long_name - 1] = '\0';
  expect_rejected_json("long-name.json", with_string("name", long_name), "field name: longer than");

  cJSON *missing = good_profile();
  cJSON_DeleteItemFromObject(missing, "vram_bytes");
  expect_rejected_json("missing-vram.json", missing, "field vram_bytes: missing");
  cJSON *unknown = good_profile();
  cJSON_AddNumberToObject(unknown, "vram_gb", 12);
  expect_rejected_json("unknown-field.json", unknown, "field vram_gb: unknown field");
  cJSON *twice = good_profile();
  cJSON_AddNumberToObject(twice, "d2h_gbps", 1);
  expect_rejected_json("twice.json", twice, "field d2h_gbps: appears twice");

  expect_rejected("not-json.json", "{\"name\": \"x\",", "not valid JSON");
  expect_rejected("array.json", "[1, 2]", "must be a JSON object");

  printf("an unknown name lists the available ones\n");
  fy_target_t t;
  fy_status_t st = fy_target_load("rtx9999", targets_dir, &t);
  printf("  rtx9999 -> %s\n", fy_status_message(st));
  CHECK(fy_status_code(st) == FY_UNAVAILABLE);
  CHECK(strstr(fy_status_message(st), "unknown target 'rtx9999'") != NULL);
  CHECK(strstr(fy_status_message(st), "t4-16g") != NULL && strstr(fy_status_message(st), "demo") != NULL);
  fy_status_free(st);

  printf("a profile found by name must carry that name\n");
  char named_dir[4096], path[4200];
  snprintf(named_dir, sizeof named_dir, "%s/named", tmp_dir);
  st = fy_mkdir_p(named_dir);
  CHECK(st == NULL);
  fy_status_free(st);
  cJSON *root = good_profile();
  char *text = cJSON_Print(root);
  snprintf(path, sizeof path, "%s/other.json", named_dir);
  st = fy_file_write_atomic_bytes(path, text, strlen(text));
  CHECK(st == NULL);
  fy_status_free(st);
  free(text);
  cJSON_Delete(root);
  st = fy_target_load("other", named_dir, &t);
  printf("  other -> %s\n", fy_status_message(st));
  CHECK(st != NULL && strstr(fy_status_message(st), "field name") != NULL);
  fy_status_free(st);
}

static void test_overrides(void) {
  printf("overrides replace vram, reserve and link bandwidth, and re-validate\n");
  fy_target_t t = load_ok("rtx3060-12g");
  fy_target_overrides_t o = {.has_vram = true, .vram_bytes = 8ull << 30,
                             .has_reserve = true, .reserve_bytes = 1ull << 30,
                             .has_h2d = true, .h2d_gbps = t.h2d_pinned_gbps / 2};
  double pageable = t.h2d_pageable_gbps, pinned = t.h2d_pinned_gbps;
  fy_status_t st = fy_target_apply_overrides(&t, &o);
  CHECK(st == NULL);
  fy_status_free(st);
  CHECK(t.vram_bytes == 8ull << 30 && t.reserve_bytes == 1ull << 30);
  CHECK(t.h2d_pinned_gbps == pinned / 2 && t.h2d_pageable_gbps == pageable / 2);

  fy_target_overrides_t none = {0};
  fy_target_t same = t;
  st = fy_target_apply_overrides(&t, &none);
  CHECK(st == NULL && memcmp(&same, &t, sizeof t) == 0);
  fy_status_free(st);

  fy_target_overrides_t too_big = {.has_reserve = true, .reserve_bytes = 8ull << 30};
  st = fy_target_apply_overrides(&t, &too_big);
  printf("  reserve 8G on 8G -> %s\n", fy_status_message(st));
  CHECK(st != NULL && strstr(fy_status_message(st), "field reserve_bytes") != NULL);
  CHECK(memcmp(&same, &t, sizeof t) == 0);
  fy_status_free(st);

  fy_target_overrides_t zero_link = {.has_h2d = true, .h2d_gbps = 0};
  st = fy_target_apply_overrides(&t, &zero_link);
  printf("  h2d 0 -> %s\n", fy_status_message(st));
  CHECK(st != NULL && strstr(fy_status_message(st), "h2d") != NULL);
  CHECK(memcmp(&same, &t, sizeof t) == 0);
  fy_status_free(st);
}

static void expect_bytes(const char *text, uint64_t want) {
  uint64_t got = 0;
  fy_status_t st = fy_parse_bytes(text, &got);
  if (st || got != want)
    fprintf(stderr, "fy_parse_bytes(\"%s\"): %s, got %llu want %llu\n", text, fy_status_message(st),
            (unsigned long long)got, (unsigned long long)want);
  CHECK(st == NULL && got == want);
  fy_status_free(st);
}

static void expect_bad_bytes(const char *text, const char *want) {
  uint64_t got = 12345;
  fy_status_t st = fy_parse_bytes(text, &got);
  printf("  '%s' -> %s\n", text ? text : "(null)", fy_status_message(st));
  CHECK(st != NULL && strstr(fy_status_message(st), want) != NULL);
  CHECK(got == 12345);
  fy_status_free(st);
}

static void test_parse_bytes(void) {
  printf("byte sizes: binary K/M/G/T and KiB..TiB, decimal KB..TB\n");
  expect_bytes("12884901888", 12884901888ull);
  expect_bytes("0", 0);
  expect_bytes("12G", 12ull << 30);
  expect_bytes("12GiB", 12ull << 30);
  expect_bytes("12gib", 12ull << 30);
  expect_bytes("512M", 512ull << 20);
  expect_bytes("512MiB", 512ull << 20);
  expect_bytes("1.5G", 3ull << 29);
  expect_bytes("12GB", 12000000000ull);
  expect_bytes("512MB", 512000000ull);
  expect_bytes("64K", 65536);
  expect_bytes("2T", 2ull << 40);
  expect_bytes("100B", 100);
  expect_bytes("12 GiB", 12ull << 30);
  expect_bytes("18446744073709551615", UINT64_MAX);
  expect_bad_bytes("", "expected a number");
  expect_bad_bytes("G", "expected a number");
  expect_bad_bytes("-1G", "expected a number");
  expect_bad_bytes("1.G", "expected a number");
  expect_bad_bytes("12X", "unknown unit 'X'");
  expect_bad_bytes("12Gi", "unknown unit");
  expect_bad_bytes("1.5", "a fraction needs a unit");
  expect_bad_bytes("18446744073709551616", "too large");
  expect_bad_bytes("17179869184G", "too large");
  expect_bad_bytes(NULL, "missing");
}

int main(void) {
  static char dir[4096];
  const char *source_dir = getenv("FERRY_SOURCE_DIR");
  snprintf(dir, sizeof dir, "%s/targets", source_dir ? source_dir : ".");
  targets_dir = dir;
  tmp_dir = getenv("FERRY_TMP") ? getenv("FERRY_TMP") : "tmp_test_targets";
  fy_status_t st = fy_mkdir_p(tmp_dir);
  if (st) {
    fprintf(stderr, "%s\n", fy_status_message(st));
    fy_status_free(st);
    return 1;
  }
  test_shipped_profiles();
  test_bad_profiles();
  test_overrides();
  test_parse_bytes();
  return check_summary();
}
