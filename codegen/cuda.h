/* CUDA kernels, ahead of time: CUDA C source specialized to each node's
 * shapes and dtypes, compiled with NVRTC to cubin for each requested
 * architecture and to PTX for forward compatibility, without a GPU.
 *
 * One translation unit per graph holds one kernel per distinct node
 * signature (codegen/kernel_name.h names them; identical nodes share one).
 * Every kernel has the same parameter list, so a runtime launches any node
 * the same way:
 *     (const void *in0, ..., const void *in{k-1}, void *out, long long n, long long pos)
 * one device pointer per node input in node order, then the output, then n =
 * the rows of this launch (fy_cpu_node_rows: the step's n_tokens, or 1 after
 * LAST_ROW) and pos = the sequence position of row 0. Weights may be f32,
 * f16 or bf16 (widened exactly to f32); activations and the KV cache are
 * f32; every sum accumulates in f32 (RMSNORM's in double, like the CPU
 * reference). A weight needs only its dtype's alignment; wider loads are
 * used where the address allows, without changing any result.
 *
 * Determinism: each output element is reduced in an order that depends only
 * on the kernel's constants, never on the launch's n, on pos or on a
 * buffer's address; so a replay is bit for bit the same wherever the weights
 * sit (streamed or resident), and a token's logits are the same in a prefill
 * and in a decode step. Results agree with codegen/cpu.h within the
 * tolerances of docs/cuda.md, not bit for bit. See docs/cuda.md. */
#ifndef FERRY_CODEGEN_CUDA_H
#define FERRY_CODEGEN_CUDA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/status.h"
#include "ir/ir.h"
#include "support/arena.h"

/* The launch geometry of node's kernel for a launch of n_rows rows
 * (1 <= n_rows <= the node's max rows). Static shared memory only:
 * shared_bytes is 0 today and is passed as given. */
typedef struct fy_cuda_launch {
  unsigned grid[3], block[3];
  unsigned shared_bytes;
} fy_cuda_launch_t;

fy_status_t fy_cuda_launch_dims(const fy_graph_t *g, int node, int64_t n_rows, fy_cuda_launch_t *out_launch);

/* The CUDA C source: with node < 0, the whole translation unit of g (every
 * distinct kernel, in first-use order); with node >= 0, the prelude and that
 * node's kernel alone (`ferry inspect --kernels`). NUL-terminated; the
 * caller free()s *out_source. Errors name the node for an op, dtype or
 * shape no kernel is written for. */
fy_status_t fy_cuda_source(const fy_graph_t *g, int node, char **out_source);

/* The distinct kernel names of g, in first-use order (the entries of every
 * binary fy_cuda_compile_graph produces). The caller frees with
 * fy_cuda_entries_free. */
fy_status_t fy_cuda_entries(const fy_graph_t *g, char ***out_names, int *out_count);
void fy_cuda_entries_free(char **names, int count);

/* Architectures: "sm_75", "sm_86", "sm_90a", ... Written by fy_cuda_parse_archs
 * as "sm_" + compute capability digits (+ "a" for arch-specific variants). */
#define FY_CUDA_ARCH_MAX 16
typedef struct fy_cuda_arch {
  char name[FY_CUDA_ARCH_MAX]; /* "sm_86" */
  int major, minor;            /* 8, 6 */
  bool specific;               /* "sm_90a": runs only on that exact architecture */
} fy_cuda_arch_t;

/* Parses one architecture: "sm_86", "86", "sm86", "compute_86" (the sm_
 * of it). FY_INVALID_ARGUMENT quoting the text otherwise. */
fy_status_t fy_cuda_arch_parse(const char *text, fy_cuda_arch_t *out_arch);
/* Parses a comma-separated list ("sm_75,sm_86,89") into at most max
 * architectures, sorted by compute capability, duplicates removed. */
fy_status_t fy_cuda_parse_archs(const char *list, fy_cuda_arch_t *out_archs, int max, int *out_count);

/* True when this build compiles CUDA (NVRTC was found at build time). */
bool fy_cuda_nvrtc_available(void);
/* "NVRTC 13.0", or a sentence saying why there is none. */
const char *fy_cuda_nvrtc_describe(char *buf, size_t n);
/* Architectures this NVRTC compiles for, as compute capabilities
 * (75, 80, 86, ...), ascending; at most max written. FY_UNAVAILABLE without NVRTC. */
fy_status_t fy_cuda_supported_archs(int *out_archs, int max, int *out_count);

/* One compiled blob, in the shape of a plan's kernel table
 * (schedules/plan.h fy_plan_kernel_t): format "cubin" (an ELF, for
 * architecture "sm_86") or "ptx" (text including its terminating NUL, for
 * "compute_75", which the driver compiles for its GPU at load). */
typedef struct fy_cuda_binary {
  const char *format, *architecture;
  const uint8_t *code;
  size_t code_size;
  const char *const *entries; /* kernel names, shared by all binaries of a graph */
  int n_entries;
  double compile_seconds;     /* NVRTC's wall time for this blob */
} fy_cuda_binary_t;

typedef struct fy_cuda_binaries {
  fy_cuda_binary_t *items; /* a cubin per architecture (in the order given), then the ptx */
  int n_items;
  fy_arena_t arena;        /* everything above */
} fy_cuda_binaries_t;

/* Compiles g's translation unit with NVRTC: to a cubin for each of archs
 * (names as fy_cuda_arch_parse reads them; NULL/0 is an error, the caller
 * supplies the target's code_target as the default) and to PTX for
 * compute_XX of the lowest one. Compiles run in parallel. A compile error
 * carries NVRTC's log in its message; an architecture this NVRTC does not
 * support is FY_UNAVAILABLE naming the supported ones; without NVRTC,
 * FY_UNAVAILABLE "NVRTC not available". out is written only on success;
 * free it with fy_cuda_binaries_free. */
fy_status_t fy_cuda_compile_graph(const fy_graph_t *g, const char *const *archs, int n_archs,
                                  fy_cuda_binaries_t *out_binaries);
void fy_cuda_binaries_free(fy_cuda_binaries_t *binaries);

/* Compiles CUDA C source (one translation unit) for one target: arch
 * "sm_86" gives a cubin, "compute_75" gives PTX (with its NUL). The caller
 * free()s *out_code. The runtime uses it to compile a plan's kernels for the
 * GPU it finds when the plan carries none. */
fy_status_t fy_cuda_compile_source(const char *source, const char *arch, uint8_t **out_code, size_t *out_size);

#endif
