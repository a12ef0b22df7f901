/* The CUDA driver API, loaded at run time: ferry never links libcuda, so a
 * machine without an NVIDIA driver runs every other backend and gets a clear
 * error from this one ("libcuda.so.1 not found: no NVIDIA driver on this
 * machine"), not a link failure.
 *
 * The types below are the driver's ABI as cuda.h declares it (handles are
 * opaque pointers, CUdeviceptr is 64 bits, CUresult an int), written out so
 * that ferry builds without the CUDA toolkit. Entry points are resolved by
 * their versioned names where cuda.h maps the plain name to one
 * (cuMemAlloc -> cuMemAlloc_v2, ...), falling back to the unversioned name
 * on drivers that predate the version. */
#ifndef FERRY_RUNTIME_CUDA_DRIVER_H
#define FERRY_RUNTIME_CUDA_DRIVER_H

#include <stddef.h>
#include <stdint.h>

#include "ferry/status.h"
#include "runtime/backend.h"
#include "schedules/plan.h"

typedef int fy_cu_result_t;
typedef int fy_cu_device_t;
typedef unsigned long long fy_cu_deviceptr_t;
typedef struct fy_cu_context_st *fy_cu_context_t;
typedef struct fy_cu_module_st *fy_cu_module_t;
typedef struct fy_cu_function_st *fy_cu_function_t;
typedef struct fy_cu_stream_st *fy_cu_stream_t;
typedef struct fy_cu_event_st *fy_cu_event_t;
typedef struct fy_cu_graph_st *fy_cu_graph_t;
typedef struct fy_cu_graph_node_st *fy_cu_graph_node_t;
typedef struct fy_cu_graph_exec_st *fy_cu_graph_exec_t;

/* cuda.h's CUDA_KERNEL_NODE_PARAMS_v2; its first fields are _v1's, so the
 * unversioned entry points of older drivers read it correctly. */
typedef struct fy_cu_kernel_node_params {
  fy_cu_function_t func;
  unsigned grid_x, grid_y, grid_z, block_x, block_y, block_z, shared_bytes;
  void **params, **extra;
  void *kern, *ctx; /* _v2: unused (func is set) */
} fy_cu_kernel_node_params_t;

/* Values from cuda.h. */
enum {
  FY_CU_SUCCESS = 0,
  FY_CU_ERROR_STUB_LIBRARY = 34,
  FY_CU_ERROR_NO_DEVICE = 100,
  FY_CU_ERROR_NO_BINARY_FOR_GPU = 209,
  FY_CU_ERROR_INVALID_PTX = 218,
  FY_CU_ERROR_UNSUPPORTED_PTX_VERSION = 222,
  FY_CU_STREAM_NON_BLOCKING = 1,
  FY_CU_EVENT_DISABLE_TIMING = 2,
  FY_CU_MEMHOSTALLOC_PORTABLE = 1,
  FY_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75,
  FY_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76,
};

typedef struct fy_cuda_driver {
  void *library;
  int version; /* cuDriverGetVersion: 12040 = CUDA 12.4 */
  fy_cu_result_t (*init)(unsigned flags);
  fy_cu_result_t (*driver_get_version)(int *version);
  fy_cu_result_t (*get_error_name)(fy_cu_result_t r, const char **name);
  fy_cu_result_t (*get_error_string)(fy_cu_result_t r, const char **text);
  fy_cu_result_t (*device_get_count)(int *count);
  fy_cu_result_t (*device_get)(fy_cu_device_t *dev, int ordinal);
  fy_cu_result_t (*device_get_name)(char *name, int len, fy_cu_device_t dev);
  fy_cu_result_t (*device_get_attribute)(int *value, int attribute, fy_cu_device_t dev);
  fy_cu_result_t (*device_total_mem)(size_t *bytes, fy_cu_device_t dev);
  fy_cu_result_t (*primary_ctx_retain)(fy_cu_context_t *ctx, fy_cu_device_t dev);
  fy_cu_result_t (*primary_ctx_release)(fy_cu_device_t dev);
  fy_cu_result_t (*ctx_set_current)(fy_cu_context_t ctx);
  fy_cu_result_t (*mem_get_info)(size_t *free_bytes, size_t *total_bytes);
  fy_cu_result_t (*mem_alloc)(fy_cu_deviceptr_t *ptr, size_t bytes);
  fy_cu_result_t (*mem_free)(fy_cu_deviceptr_t ptr);
  fy_cu_result_t (*mem_host_alloc)(void **ptr, size_t bytes, unsigned flags);
  fy_cu_result_t (*mem_free_host)(void *ptr);
  fy_cu_result_t (*memcpy_htod_async)(fy_cu_deviceptr_t dst, const void *src, size_t bytes, fy_cu_stream_t s);
  fy_cu_result_t (*memcpy_dtoh_async)(void *dst, fy_cu_deviceptr_t src, size_t bytes, fy_cu_stream_t s);
  fy_cu_result_t (*memset_d8_async)(fy_cu_deviceptr_t dst, unsigned char value, size_t count, fy_cu_stream_t s);
  fy_cu_result_t (*memset_d16_async)(fy_cu_deviceptr_t dst, unsigned short value, size_t count, fy_cu_stream_t s);
  fy_cu_result_t (*memset_d32_async)(fy_cu_deviceptr_t dst, unsigned value, size_t count, fy_cu_stream_t s);
  fy_cu_result_t (*stream_create)(fy_cu_stream_t *s, unsigned flags);
  fy_cu_result_t (*stream_destroy)(fy_cu_stream_t s);
  fy_cu_result_t (*stream_synchronize)(fy_cu_stream_t s);
  fy_cu_result_t (*stream_wait_event)(fy_cu_stream_t s, fy_cu_event_t e, unsigned flags);
  fy_cu_result_t (*event_create)(fy_cu_event_t *e, unsigned flags);
  fy_cu_result_t (*event_destroy)(fy_cu_event_t e);
  fy_cu_result_t (*event_record)(fy_cu_event_t e, fy_cu_stream_t s);
  fy_cu_result_t (*event_synchronize)(fy_cu_event_t e);
  fy_cu_result_t (*module_load_data)(fy_cu_module_t *m, const void *image);
  fy_cu_result_t (*module_unload)(fy_cu_module_t m);
  fy_cu_result_t (*module_get_function)(fy_cu_function_t *f, fy_cu_module_t m, const char *name);
  fy_cu_result_t (*launch_kernel)(fy_cu_function_t f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                                  unsigned by, unsigned bz, unsigned shared_bytes, fy_cu_stream_t s, void **params,
                                  void **extra);
  fy_cu_result_t (*graph_create)(fy_cu_graph_t *g, unsigned flags);
  fy_cu_result_t (*graph_add_kernel_node)(fy_cu_graph_node_t *node, fy_cu_graph_t g, const fy_cu_graph_node_t *deps,
                                          size_t n_deps, const fy_cu_kernel_node_params_t *params);
  fy_cu_result_t (*graph_instantiate)(fy_cu_graph_exec_t *exec, fy_cu_graph_t g, unsigned long long flags);
  fy_cu_result_t (*graph_exec_kernel_node_set_params)(fy_cu_graph_exec_t exec, fy_cu_graph_node_t node,
                                                      const fy_cu_kernel_node_params_t *params);
  fy_cu_result_t (*graph_launch)(fy_cu_graph_exec_t exec, fy_cu_stream_t s);
  fy_cu_result_t (*graph_exec_destroy)(fy_cu_graph_exec_t exec);
  fy_cu_result_t (*graph_destroy)(fy_cu_graph_t g);
} fy_cuda_driver_t;

/* Loads the driver library (path NULL: "libcuda.so.1", found by the dynamic
 * loader), resolves every entry point and runs cuInit(0). Errors:
 * FY_UNAVAILABLE "libcuda.so.1 not found: no NVIDIA driver on this machine"
 * (with dlerror), or the CUDA toolkit's stub library was found instead of
 * a driver, or cuInit failed (no device, driver/kernel-module mismatch);
 * FY_INCOMPATIBLE naming an entry point the driver lacks (too old).
 * Free with fy_cuda_driver_close. */
fy_status_t fy_cuda_driver_open(const char *path, fy_cuda_driver_t **out_driver);
void fy_cuda_driver_close(fy_cuda_driver_t *driver);

/* NULL for FY_CU_SUCCESS, else a status "what: CUDA_ERROR_X (text)". */
fy_status_t fy_cuda_check(const fy_cuda_driver_t *driver, fy_cu_result_t result, const char *what);

/* Describes the CUDA devices for `ferry devices`: "CUDA driver 12.4: 1
 * device\n  0: NVIDIA GeForce RTX 3060, sm_86, 12.0 GiB\n" into msg. On a
 * machine without a driver or a device, returns the error fy_cuda_driver_open
 * or cuDeviceGetCount gives (and msg is left empty). */
fy_status_t fy_cuda_probe(char *msg, size_t n);

/* Which of a plan's kernel tables a device of compute capability
 * major.minor loads: the cubin for its exact architecture; else a cubin of
 * the same major version and the highest lower minor (cubins run on later
 * minors of their major, except arch-specific ones such as sm_90a); else the
 * PTX of the highest compute_XX at or below the device (the driver compiles
 * it at load). Returns the index, or -1 with why naming the architectures
 * the plan has and the device's. */
int fy_cuda_choose_kernels(const fy_plan_kernel_t *kernels, int n_kernels, int major, int minor, char *why,
                           size_t why_n);

/* The cuda backend (runtime/cuda_backend.c). */
extern const fy_rt_backend_t fy_rt_backend_cuda;

#endif
