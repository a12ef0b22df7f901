/* Runs ferry's generated CUDA C on the CPU, so that tests check the kernels'
 * arithmetic and indexing on a machine without a GPU (tests/test_cuda_codegen.c).
 *
 * The test writes `#include "cuda_emulation.hpp"` followed by the generated
 * source (which skips its CUDA-only prelude when FY_CUDA_EMULATION is
 * defined) and compiles it as C++17 into a shared object with
 * -ffp-contract=off. Each CUDA thread is a ucontext fiber; the blocks of a
 * grid run one after another on one OS thread, the fibers of a block round
 * robin. __syncthreads waits for every live thread of the block, a warp
 * shuffle for every live lane of the warp (two warp barriers around an
 * exchange array); a barrier nobody can pass is reported as a deadlock.
 * __shared__ variables are function statics: blocks do not overlap in time.
 * What this cannot find: races between blocks, alignment faults, register or
 * shared-memory limits, and the device's own math (expf, cos) — the GPU test
 * (tests/test_cuda_gpu.c) covers those. */
#ifndef FERRY_TESTS_CUDA_EMULATION_HPP
#define FERRY_TESTS_CUDA_EMULATION_HPP

#include <ucontext.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#define FY_CUDA_EMULATION 1
#define FY_KERNEL extern "C"
#define FY_DEVICE static inline
#define FY_CONSTANT static const
#define __launch_bounds__(x)
#define __restrict__ __restrict
#define __shared__ static

typedef long long fy_i64;
typedef unsigned short fy_u16;
struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};
struct fyemu_dim3 {
  unsigned x, y, z;
};

namespace fyemu {

enum state_t { RUNNABLE, AT_BLOCK_BARRIER, AT_WARP_BARRIER, DONE };

struct fiber_t {
  ucontext_t ctx;
  fyemu_dim3 tid;
  unsigned linear;
  state_t state;
  char *stack;
};

enum { STACK_BYTES = 256 * 1024, MAX_THREADS = 1024 };

struct launch_t {
  void *fn;
  int n_ptrs;
  void **ptrs;
  fy_i64 n, pos;
};

static fiber_t fibers[MAX_THREADS];
static unsigned n_fibers;
static fiber_t *cur;
static ucontext_t scheduler;
static launch_t launch;
static double exchange[MAX_THREADS];
static fyemu_dim3 block_idx, block_dim, grid_dim;

static void yield_as(state_t s) {
  cur->state = s;
  swapcontext(&cur->ctx, &scheduler);
}

typedef const void *in_t;
typedef void *out_t;

static void call_kernel() {
  void **a = launch.ptrs;
  fy_i64 n = launch.n, pos = launch.pos;
  switch (launch.n_ptrs) {
    case 2: ((void (*)(in_t, out_t, fy_i64, fy_i64))launch.fn)(a[0], a[1], n, pos); break;
    case 3: ((void (*)(in_t, in_t, out_t, fy_i64, fy_i64))launch.fn)(a[0], a[1], a[2], n, pos); break;
    case 4: ((void (*)(in_t, in_t, in_t, out_t, fy_i64, fy_i64))launch.fn)(a[0], a[1], a[2], a[3], n, pos); break;
    case 6:
      ((void (*)(in_t, in_t, in_t, in_t, in_t, out_t, fy_i64, fy_i64))launch.fn)(a[0], a[1], a[2], a[3], a[4], a[5],
                                                                                n, pos);
      break;
    default: std::fprintf(stderr, "fyemu: %d kernel arguments\n", launch.n_ptrs); std::abort();
  }
}

static void trampoline() {
  call_kernel();
  cur->state = DONE;
  swapcontext(&cur->ctx, &scheduler);
}

/* Runs one block to completion; false on a deadlock. */
static bool run_block(char *err, size_t errn) {
  for (unsigned i = 0; i < n_fibers; i++) {
    fiber_t *f = &fibers[i];
    if (!f->stack && !(f->stack = (char *)std::malloc(STACK_BYTES))) {
      std::snprintf(err, errn, "fyemu: out of memory for fiber stacks");
      return false;
    }
    f->linear = i;
    f->tid = {i % block_dim.x, i / block_dim.x % block_dim.y, i / (block_dim.x * block_dim.y)};
    f->state = RUNNABLE;
    getcontext(&f->ctx);
    f->ctx.uc_stack.ss_sp = f->stack;
    f->ctx.uc_stack.ss_size = STACK_BYTES;
    f->ctx.uc_link = nullptr;
    makecontext(&f->ctx, trampoline, 0);
  }
  for (;;) {
    for (unsigned i = 0; i < n_fibers; i++)
      if (fibers[i].state == RUNNABLE) {
        cur = &fibers[i];
        swapcontext(&scheduler, &cur->ctx);
      }
    bool any_live = false, released = false;
    /* Warp barriers: every live lane of the warp waits. */
    for (unsigned w = 0; w * 32 < n_fibers; w++) {
      bool all = true, some = false;
      for (unsigned l = w * 32; l < n_fibers && l < w * 32 + 32; l++) {
        if (fibers[l].state == DONE) continue;
        some = true;
        all = all && fibers[l].state == AT_WARP_BARRIER;
      }
      if (some && all) {
        for (unsigned l = w * 32; l < n_fibers && l < w * 32 + 32; l++)
          if (fibers[l].state == AT_WARP_BARRIER) fibers[l].state = RUNNABLE;
        released = true;
      }
    }
    if (released) continue;
    bool all_block = true;
    for (unsigned i = 0; i < n_fibers; i++) {
      if (fibers[i].state == DONE) continue;
      any_live = true;
      all_block = all_block && fibers[i].state == AT_BLOCK_BARRIER;
    }
    if (!any_live) return true;
    if (!all_block) {
      std::snprintf(err, errn, "fyemu: deadlock in block (%u, %u, %u): threads wait at different barriers",
                    block_idx.x, block_idx.y, block_idx.z);
      return false;
    }
    for (unsigned i = 0; i < n_fibers; i++)
      if (fibers[i].state == AT_BLOCK_BARRIER) fibers[i].state = RUNNABLE;
  }
}

}  // namespace fyemu

#define threadIdx (fyemu::cur->tid)
#define blockIdx (fyemu::block_idx)
#define blockDim (fyemu::block_dim)
#define gridDim (fyemu::grid_dim)

static inline void __syncthreads() { fyemu::yield_as(fyemu::AT_BLOCK_BARRIER); }

template <class T>
static inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask) {
  (void)mask;
  unsigned me = fyemu::cur->linear, other = (me & ~31u) | ((me & 31u) ^ (unsigned)lane_mask);
  std::memcpy(&fyemu::exchange[me], &v, sizeof v);
  fyemu::yield_as(fyemu::AT_WARP_BARRIER);
  T r;
  std::memcpy(&r, &fyemu::exchange[other], sizeof r);
  fyemu::yield_as(fyemu::AT_WARP_BARRIER);
  return r;
}

static inline float __int_as_float(unsigned u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
static inline float __uint_as_float(unsigned u) { return __int_as_float(u); }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float fy_bf16(fy_u16 h) { return __uint_as_float((unsigned)h << 16); }
static inline float fy_f16(fy_u16 h) {
  unsigned e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  float v = e == 0    ? std::ldexp((float)m, -24)
            : e == 31 ? (m ? NAN : INFINITY)
                      : std::ldexp((float)(m | 0x400u), (int)e - 25);
  return h & 0x8000u ? -v : v;
}

/* Runs a kernel over a grid; 0 on success, else a message in err. */
extern "C" int fyemu_launch(void *fn, int n_ptrs, void **ptrs, long long n, long long pos, const unsigned *grid,
                            const unsigned *block, char *err, size_t errn) {
  unsigned threads = block[0] * block[1] * block[2];
  if (threads == 0 || threads > fyemu::MAX_THREADS || threads % 32) {
    std::snprintf(err, errn, "fyemu: block of %u threads", threads);
    return 1;
  }
  fyemu::launch = {fn, n_ptrs, ptrs, n, pos};
  fyemu::n_fibers = threads;
  fyemu::block_dim = {block[0], block[1], block[2]};
  fyemu::grid_dim = {grid[0], grid[1], grid[2]};
  for (unsigned z = 0; z < grid[2]; z++)
    for (unsigned y = 0; y < grid[1]; y++)
      for (unsigned x = 0; x < grid[0]; x++) {
        fyemu::block_idx = {x, y, z};
        if (!fyemu::run_block(err, errn)) return 1;
      }
  return 0;
}

/* Frees the fibers' stacks (before dlclose). */
extern "C" void fyemu_release(void) {
  for (unsigned i = 0; i < fyemu::MAX_THREADS; i++) {
    std::free(fyemu::fibers[i].stack);
    fyemu::fibers[i].stack = nullptr;
  }
}

#endif
