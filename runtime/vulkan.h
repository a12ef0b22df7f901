/* A Vulkan compute device: the loader opened with dlopen (a machine without
 * one gets FY_UNAVAILABLE, never a link failure), an instance (API 1.2), one
 * physical device picked by type or index, a compute queue and a dedicated
 * transfer queue where the device has one, timeline semaphores, buffers,
 * pipelines from ferry's SPIR-V kernels, and the recording of a node's
 * dispatches. The vulkan backend (vulkan_backend.c) and the kernel tests
 * build on it.
 *
 * Threads: a fy_vk_t may be used from several threads; vkQueueSubmit goes
 * through fy_vk_submit, which serialises submissions to a queue (the compute
 * and transfer queue may be one VkQueue). Everything else is the caller's
 * to order. */
#ifndef FERRY_RUNTIME_VULKAN_H
#define FERRY_RUNTIME_VULKAN_H

#define VK_NO_PROTOTYPES
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <vulkan/vulkan.h>

#include "codegen/spirv.h"
#include "ferry/status.h"
#include "ir/ir.h"
#include "runtime/backend.h"

/* The backend on this device (vulkan_backend.c): runs "spirv" plans. The
 * device is the best by type, or FERRY_VULKAN_DEVICE=N (an index). */
extern const fy_rt_backend_t fy_rt_backend_vulkan;

/* Entry points resolved at run time. */
#define FY_VK_INSTANCE_FNS(X)                 \
  X(vkDestroyInstance)                        \
  X(vkEnumeratePhysicalDevices)               \
  X(vkGetPhysicalDeviceProperties)            \
  X(vkGetPhysicalDeviceProperties2)           \
  X(vkGetPhysicalDeviceFeatures2)             \
  X(vkGetPhysicalDeviceQueueFamilyProperties) \
  X(vkGetPhysicalDeviceMemoryProperties)      \
  X(vkCreateDevice)                           \
  X(vkGetDeviceProcAddr)

#define FY_VK_DEVICE_FNS(X)          \
  X(vkDestroyDevice)                 \
  X(vkGetDeviceQueue)                \
  X(vkDeviceWaitIdle)                \
  X(vkCreateBuffer)                  \
  X(vkDestroyBuffer)                 \
  X(vkGetBufferMemoryRequirements)   \
  X(vkAllocateMemory)                \
  X(vkFreeMemory)                    \
  X(vkBindBufferMemory)              \
  X(vkMapMemory)                     \
  X(vkUnmapMemory)                   \
  X(vkCreateShaderModule)            \
  X(vkDestroyShaderModule)           \
  X(vkCreateDescriptorSetLayout)     \
  X(vkDestroyDescriptorSetLayout)    \
  X(vkCreatePipelineLayout)          \
  X(vkDestroyPipelineLayout)         \
  X(vkCreateComputePipelines)        \
  X(vkDestroyPipeline)               \
  X(vkCreateDescriptorPool)          \
  X(vkDestroyDescriptorPool)         \
  X(vkAllocateDescriptorSets)        \
  X(vkUpdateDescriptorSets)          \
  X(vkCreateCommandPool)             \
  X(vkDestroyCommandPool)            \
  X(vkAllocateCommandBuffers)        \
  X(vkFreeCommandBuffers)            \
  X(vkBeginCommandBuffer)            \
  X(vkEndCommandBuffer)              \
  X(vkCmdBindPipeline)               \
  X(vkCmdBindDescriptorSets)         \
  X(vkCmdPushConstants)              \
  X(vkCmdDispatch)                   \
  X(vkCmdPipelineBarrier)            \
  X(vkCmdCopyBuffer)                 \
  X(vkCmdFillBuffer)                 \
  X(vkCmdWriteTimestamp)             \
  X(vkCmdResetQueryPool)             \
  X(vkQueueSubmit)                   \
  X(vkCreateSemaphore)               \
  X(vkDestroySemaphore)              \
  X(vkWaitSemaphores)                \
  X(vkGetSemaphoreCounterValue)      \
  X(vkCreateQueryPool)               \
  X(vkDestroyQueryPool)              \
  X(vkGetQueryPoolResults)

typedef struct fy_vk_fns {
#define FY_VK_FN_FIELD(name) PFN_##name name;
  PFN_vkGetInstanceProcAddr vkGetInstanceProcAddr;
  PFN_vkCreateInstance vkCreateInstance;
  PFN_vkEnumerateInstanceExtensionProperties vkEnumerateInstanceExtensionProperties;
  PFN_vkEnumerateInstanceLayerProperties vkEnumerateInstanceLayerProperties;
  PFN_vkCreateDebugUtilsMessengerEXT vkCreateDebugUtilsMessengerEXT;
  PFN_vkDestroyDebugUtilsMessengerEXT vkDestroyDebugUtilsMessengerEXT;
  FY_VK_INSTANCE_FNS(FY_VK_FN_FIELD)
  FY_VK_DEVICE_FNS(FY_VK_FN_FIELD)
#undef FY_VK_FN_FIELD
} fy_vk_fns_t;

typedef struct fy_vk_options {
  int device;      /* index among the physical devices; < 0 = the best by type (discrete first) */
  bool validation; /* enable VK_LAYER_KHRONOS_validation (FY_UNAVAILABLE when it is not installed) */
} fy_vk_options_t;

typedef struct fy_vk {
  void *lib;
  fy_vk_fns_t fn;
  VkInstance instance;
  VkDebugUtilsMessengerEXT messenger;
  VkPhysicalDevice physical;
  VkDevice device;
  VkPhysicalDeviceProperties props;
  VkPhysicalDeviceMemoryProperties memory;
  uint32_t compute_family, transfer_family;
  VkQueue compute_queue, transfer_queue; /* the same queue when the device has no transfer-only family */
  bool dedicated_transfer;
  pthread_mutex_t submit_lock;
  /* Limits the kernels are bound under. */
  uint64_t max_range;      /* min(maxStorageBufferRange, FY_SPIRV_MAX_RANGE) */
  uint64_t align;          /* minStorageBufferOffsetAlignment, at least 4 */
  uint64_t max_allocation; /* maxMemoryAllocationSize */
  uint32_t subgroup_size;
  bool timestamps;         /* the compute queue has valid timestamp bits */
  double timestamp_ns;     /* nanoseconds per timestamp tick */
  /* Pipelines: one layout for every kernel (FY_SPIRV_N_BINDINGS storage buffers, fy_spirv_push_t). */
  VkDescriptorSetLayout set_layout;
  VkPipelineLayout pipeline_layout;
  /* Validation messages (debug utils): errors counted, the first kept. */
  pthread_mutex_t message_lock;
  int n_errors, n_warnings;
  char first_error[1024];
} fy_vk_t;

fy_status_t fy_vk_create(const fy_vk_options_t *options, fy_vk_t **out_vk);

/* The physical devices, in the order --device indexes them. */
typedef struct fy_vk_device_info {
  char name[256];
  uint64_t device_local_bytes;
  int type_rank; /* 4 discrete, 3 integrated, 2 virtual, 1 cpu */
  bool usable;   /* Vulkan 1.2 with timeline semaphores */
} fy_vk_device_info_t;
/* The caller frees *out_devices with free(). */
fy_status_t fy_vk_list_devices(fy_vk_device_info_t **out_devices, int *out_count);
void fy_vk_destroy(fy_vk_t *vk);
/* "discrete", "integrated", "virtual", "cpu", "other". */
const char *fy_vk_device_type_name(VkPhysicalDeviceType type);

/* Validation errors reported so far (0 without validation), and the first. */
int fy_vk_errors(fy_vk_t *vk, char *out_first, size_t size);

/* A VkResult as a status: FY_RESOURCE_EXHAUSTED for out of memory,
 * FY_UNAVAILABLE for a lost device, else FY_INTERNAL; the message names what. */
fy_status_t fy_vk_check(VkResult r, const char *what);

/* ---- memory ---- */

typedef struct fy_vk_buffer {
  VkBuffer buffer;
  VkDeviceMemory memory;
  uint64_t bytes;
  void *map; /* host-visible buffers: mapped for their lifetime */
} fy_vk_buffer_t;

/* A buffer of bytes (rounded up to 4) with its own allocation: device-local
 * (storage, transfer source and destination), or host-visible and coherent
 * (staging). Shared by the compute and transfer families when they differ. */
fy_status_t fy_vk_buffer_create(fy_vk_t *vk, uint64_t bytes, bool host_visible, fy_vk_buffer_t *out_buffer);
void fy_vk_buffer_destroy(fy_vk_t *vk, fy_vk_buffer_t *buffer);

/* ---- kernels ---- */

typedef struct fy_vk_kernel {
  VkShaderModule module;
  VkPipeline pipeline;
} fy_vk_kernel_t;

fy_status_t fy_vk_kernel_create(fy_vk_t *vk, const fy_spirv_kernel_t *kernel, fy_vk_kernel_t *out_kernel);
void fy_vk_kernel_destroy(fy_vk_t *vk, fy_vk_kernel_t *kernel);

/* A node's launch, bound once: its dispatches (fy_spirv_bind_node) with a
 * descriptor set each, taken from pool. */
typedef struct fy_vk_launch {
  const fy_vk_kernel_t *kernel;
  fy_spirv_part_t *parts;
  VkDescriptorSet *sets;
  int n_parts;
} fy_vk_launch_t;

/* A descriptor pool for max_sets launch parts. */
fy_status_t fy_vk_pool_create(fy_vk_t *vk, uint32_t max_sets, VkDescriptorPool *out_pool);
/* Binds node's arguments: argument k in buffers[k] at args->offset[k]
 * (args->buffer_bytes filled by the caller), the step parameters in params. */
fy_status_t fy_vk_launch_prepare(fy_vk_t *vk, VkDescriptorPool pool, const fy_graph_t *g, int node,
                                 const fy_vk_kernel_t *kernel, VkBuffer params, const VkBuffer *buffers,
                                 const fy_spirv_args_t *args, fy_vk_launch_t *out_launch);
void fy_vk_launch_free(fy_vk_launch_t *launch);
/* Records the launch's dispatches, each followed by a compute-to-compute
 * memory barrier (a later dispatch reads what this one wrote). */
void fy_vk_launch_record(fy_vk_t *vk, VkCommandBuffer cb, const fy_vk_launch_t *launch);
/* A barrier after every earlier command of the queue: transfers and host
 * writes visible to compute shaders, shader writes to transfers and the host. */
void fy_vk_barrier_all(fy_vk_t *vk, VkCommandBuffer cb);
/* The same on a queue that may be transfer-only (transfer stages only). */
void fy_vk_barrier_queue(fy_vk_t *vk, VkCommandBuffer cb, bool transfer_only);

/* ---- timestamps ---- */

/* A query pool of n timestamps. FY_UNAVAILABLE when the compute queue has none. */
fy_status_t fy_vk_timestamps_create(fy_vk_t *vk, uint32_t n, VkQueryPool *out_pool);
/* Records a reset of [0, n) (before the first fy_vk_timestamp of a command buffer). */
void fy_vk_timestamps_reset(fy_vk_t *vk, VkCommandBuffer cb, VkQueryPool pool, uint32_t n);
/* Records timestamp `index` once all earlier commands completed. */
void fy_vk_timestamp(fy_vk_t *vk, VkCommandBuffer cb, VkQueryPool pool, uint32_t index);
/* Reads timestamps [0, n) of completed work, in nanoseconds. */
fy_status_t fy_vk_timestamps_read(fy_vk_t *vk, VkQueryPool pool, uint32_t n, double *out_ns);

/* ---- submission ---- */

/* A timeline semaphore starting at 0. */
fy_status_t fy_vk_timeline_create(fy_vk_t *vk, VkSemaphore *out_semaphore);
/* One vkQueueSubmit: command buffers (none for a pure wait / signal),
 * after waits[i] >= wait_values[i], then signals[i] raised to signal_values[i]. */
typedef struct fy_vk_batch {
  const VkCommandBuffer *cbs;
  int n_cbs;
  const VkSemaphore *waits;
  const uint64_t *wait_values;
  int n_waits;
  const VkSemaphore *signals;
  const uint64_t *signal_values;
  int n_signals;
} fy_vk_batch_t;

#define FY_VK_MAX_WAITS 64
fy_status_t fy_vk_submit(fy_vk_t *vk, VkQueue queue, const fy_vk_batch_t *batch);
/* Blocks until the semaphore reaches value (or timeout_ns passes: FY_UNAVAILABLE). */
fy_status_t fy_vk_timeline_wait(fy_vk_t *vk, VkSemaphore semaphore, uint64_t value, uint64_t timeout_ns);

/* A command pool on family and one primary command buffer from it. */
fy_status_t fy_vk_commands_create(fy_vk_t *vk, uint32_t family, VkCommandPool *out_pool);
fy_status_t fy_vk_command_buffer(fy_vk_t *vk, VkCommandPool pool, VkCommandBuffer *out_cb);
fy_status_t fy_vk_begin(fy_vk_t *vk, VkCommandBuffer cb, bool one_time);

#endif
