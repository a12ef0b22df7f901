/* GPU target profiles: the machine a plan is compiled for.
 *
 * A target is what the passes decide against: the VRAM budget, the host link
 * and disk bandwidths, the compute rates, the host RAM, and the kernel
 * architecture. Profiles ship as targets/NAME.json (docs/targets.md lists the
 * fields, their units and where the figures come from).
 *
 * fy_target_t is a plain value: every string is a fixed array inside the
 * struct, nothing is on the heap, so it is copied and embedded by value and
 * needs no free. Units are in the field names: bytes are exact integers,
 * gbps = 10^9 bytes per second (not gigabits), tflops = 10^12 FLOP/s,
 * gflops = 10^9 FLOP/s, us = microseconds. A loaded target always satisfies
 * fy_target_validate. */
#ifndef FERRY_PASSES_TARGET_H
#define FERRY_PASSES_TARGET_H

#include <stdbool.h>
#include <stdint.h>

#include "ferry/status.h"
#include "support/dtype.h"

typedef struct fy_target {
  char name[64];          /* "rtx3060-12g"; equals the file stem for shipped profiles */
  char description[256];  /* one line for people */
  char code_target[16];   /* "sm_86", "sm_120", ... or "spirv" */
  char sources[2048];     /* where the figures come from, and which are estimates */
  uint64_t vram_bytes;     /* total device memory */
  uint64_t reserve_bytes;  /* kept free by default (context, allocator slack); < vram_bytes */
  uint64_t host_ram_bytes; /* host memory available for pinned staging and weights */
  double h2d_pinned_gbps;   /* host-to-device copy from pinned memory */
  double h2d_pageable_gbps; /* host-to-device copy from pageable (e.g. mmap'ed) memory; <= pinned */
  double d2h_gbps;          /* device-to-host copy */
  double disk_read_gbps;    /* sequential read from the weight files' disk */
  double fp16_tflops;       /* matmul rate with f16 weights */
  double bf16_tflops;       /* matmul rate with bf16 weights (no tensor-core path: much lower) */
  double fp32_tflops;       /* matmul rate with f32 weights */
  double mem_bw_gbps;       /* device memory bandwidth */
  double launch_overhead_us;/* per kernel launch / dispatch */
  double cpu_gflops;        /* host CPU sustained fp32 GEMM, for CPU-offload baselines */
  double host_mem_bw_gbps;  /* host DRAM read bandwidth: what CPU-computed layers are bound by in decode */
} fy_target_t;

/* Loads a profile. name_or_path containing '/' or ending in ".json" is a path;
 * anything else is a name looked up as targets_dir/NAME.json (and the file's
 * "name" must equal NAME). Every field is checked (present, right JSON type,
 * in range; unknown fields are rejected); errors name the file and the field:
 * "targets/t4-16g.json: field h2d_pinned_gbps: must be a positive number".
 * An unknown name is FY_UNAVAILABLE and lists the available names.
 * out is written only on success. */
fy_status_t fy_target_load(const char *name_or_path, const char *targets_dir, fy_target_t *out);

/* Checks the invariants every target satisfies: sizes and rates positive and
 * finite, reserve_bytes < vram_bytes, h2d_pageable_gbps <= h2d_pinned_gbps,
 * code_target "sm_NN..." or "spirv". Errors name the field. */
fy_status_t fy_target_validate(const fy_target_t *t);

/* Names of the profiles in targets_dir (file stems of *.json), sorted.
 * The caller owns the array: fy_target_list_free(names, count). */
fy_status_t fy_target_list(const char *targets_dir, char ***out_names, int *out_count);
void fy_target_list_free(char **names, int count);

/* Command-line overrides (--vram, --reserve, --h2d-gbps); each applies only
 * when its has_ flag is set. */
typedef struct fy_target_overrides {
  bool has_vram;
  uint64_t vram_bytes;
  bool has_reserve;
  uint64_t reserve_bytes;
  bool has_h2d;
  double h2d_gbps; /* sets h2d_pinned_gbps; h2d_pageable_gbps is scaled by the same
                      factor (the same link, behind a staging copy) */
} fy_target_overrides_t;

/* Applies the overrides and re-validates; on error t is left unchanged. */
fy_status_t fy_target_apply_overrides(fy_target_t *t, const fy_target_overrides_t *o);

/* Matmul rate (TFLOP/s) for weights of this dtype: bf16 -> bf16_tflops,
 * f16 -> fp16_tflops, anything else -> fp32_tflops. */
double fy_target_tflops(const fy_target_t *t, fy_dtype_t weight_dtype);

/* Parses a byte size: "12884901888", "12G", "12GiB", "512M", "512MiB", "1.5G".
 * K/M/G/T and KiB/MiB/GiB/TiB are binary (powers of 1024); KB/MB/GB/TB are
 * decimal (powers of 1000); a trailing "B" alone means bytes. Letters are
 * case-insensitive; fractions round to the nearest byte. Errors quote the text. */
fy_status_t fy_parse_bytes(const char *text, uint64_t *out);

#endif
