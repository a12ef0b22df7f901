/* The Vulkan compute device (vulkan.h): loader, instance, device, queues,
 * memory, pipelines and submissions. Nothing here knows about plans. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/vulkan.h"

static const char *const validation_layer = "VK_LAYER_KHRONOS_validation";

fy_status_t fy_vk_check(VkResult r, const char *what) {
  if (r == VK_SUCCESS) return NULL;
  fy_code_t code = r == VK_ERROR_OUT_OF_HOST_MEMORY || r == VK_ERROR_OUT_OF_DEVICE_MEMORY ? FY_RESOURCE_EXHAUSTED
                   : r == VK_ERROR_DEVICE_LOST || r == VK_ERROR_INITIALIZATION_FAILED ||
                           r == VK_ERROR_INCOMPATIBLE_DRIVER || r == VK_ERROR_LAYER_NOT_PRESENT ||
                           r == VK_ERROR_EXTENSION_NOT_PRESENT || r == VK_ERROR_FEATURE_NOT_PRESENT
                       ? FY_UNAVAILABLE
                       : FY_INTERNAL;
  return fy_status_make(code, "vulkan: %s failed (VkResult %d)", what, (int)r);
}

const char *fy_vk_device_type_name(VkPhysicalDeviceType type) {
  switch (type) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "cpu";
    default: return "other";
  }
}

/* ---- validation messages ---- */

static VKAPI_ATTR VkBool32 VKAPI_CALL on_message(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                                 VkDebugUtilsMessageTypeFlagsEXT types,
                                                 const VkDebugUtilsMessengerCallbackDataEXT *data, void *user) {
  (void)types;
  fy_vk_t *vk = user;
  pthread_mutex_lock(&vk->message_lock);
  if (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT) {
    if (!vk->n_errors++ && data && data->pMessage)
      snprintf(vk->first_error, sizeof vk->first_error, "%s", data->pMessage);
  } else if (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT) {
    vk->n_warnings++;
  }
  pthread_mutex_unlock(&vk->message_lock);
  return VK_FALSE;
}

int fy_vk_errors(fy_vk_t *vk, char *out_first, size_t size) {
  pthread_mutex_lock(&vk->message_lock);
  int n = vk->n_errors;
  if (out_first && size) snprintf(out_first, size, "%s", vk->first_error);
  pthread_mutex_unlock(&vk->message_lock);
  return n;
}

/* ---- loader and instance ---- */

static fy_status_t load_loader(fy_vk_t *vk) {
  vk->lib = dlopen("libvulkan.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!vk->lib)
    return fy_status_make(FY_UNAVAILABLE, "vulkan: cannot load the Vulkan loader libvulkan.so.1 (%s); install one "
                          "(Debian: libvulkan1) and a driver (mesa-vulkan-drivers for lavapipe)", dlerror());
  /* ISO C cannot convert void * to a function pointer; POSIX guarantees it works through memcpy. */
  void *sym = dlsym(vk->lib, "vkGetInstanceProcAddr");
  if (!sym) return fy_status_make(FY_UNAVAILABLE, "vulkan: libvulkan.so.1 has no vkGetInstanceProcAddr");
  memcpy(&vk->fn.vkGetInstanceProcAddr, &sym, sizeof sym);
  PFN_vkGetInstanceProcAddr gipa = vk->fn.vkGetInstanceProcAddr;
  vk->fn.vkCreateInstance = (PFN_vkCreateInstance)gipa(NULL, "vkCreateInstance");
  vk->fn.vkEnumerateInstanceExtensionProperties =
      (PFN_vkEnumerateInstanceExtensionProperties)gipa(NULL, "vkEnumerateInstanceExtensionProperties");
  vk->fn.vkEnumerateInstanceLayerProperties =
      (PFN_vkEnumerateInstanceLayerProperties)gipa(NULL, "vkEnumerateInstanceLayerProperties");
  if (!vk->fn.vkCreateInstance || !vk->fn.vkEnumerateInstanceExtensionProperties ||
      !vk->fn.vkEnumerateInstanceLayerProperties)
    return fy_status_make(FY_UNAVAILABLE, "vulkan: the loader lacks the global entry points");
  return NULL;
}

static bool has_layer(fy_vk_t *vk, const char *name) {
  uint32_t n = 0;
  if (vk->fn.vkEnumerateInstanceLayerProperties(&n, NULL) != VK_SUCCESS || !n) return false;
  VkLayerProperties *p = calloc(n, sizeof *p);
  bool found = false;
  if (p && vk->fn.vkEnumerateInstanceLayerProperties(&n, p) == VK_SUCCESS)
    for (uint32_t i = 0; i < n && !found; i++) found = !strcmp(p[i].layerName, name);
  free(p);
  return found;
}

static bool has_instance_extension(fy_vk_t *vk, const char *name) {
  uint32_t n = 0;
  if (vk->fn.vkEnumerateInstanceExtensionProperties(NULL, &n, NULL) != VK_SUCCESS || !n) return false;
  VkExtensionProperties *p = calloc(n, sizeof *p);
  bool found = false;
  if (p && vk->fn.vkEnumerateInstanceExtensionProperties(NULL, &n, p) == VK_SUCCESS)
    for (uint32_t i = 0; i < n && !found; i++) found = !strcmp(p[i].extensionName, name);
  free(p);
  return found;
}

static fy_status_t create_instance(fy_vk_t *vk, const fy_vk_options_t *o) {
  if (o->validation && !has_layer(vk, validation_layer))
    return fy_status_make(FY_UNAVAILABLE, "vulkan: %s is not installed (Debian: vulkan-validationlayers)",
                          validation_layer);
  /* Debug utils whenever the loader has it: a layer enabled from the environment reports through it too. */
  bool debug = has_instance_extension(vk, VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
  const char *ext = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
  VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .pApplicationName = "ferry",
                           .pEngineName = "ferry", .apiVersion = VK_API_VERSION_1_2};
  VkDebugUtilsMessengerCreateInfoEXT mi = {
      .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
      .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT,
      .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                     VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
      .pfnUserCallback = on_message,
      .pUserData = vk};
  VkInstanceCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
                             .pNext = debug ? &mi : NULL, /* also catches messages of instance creation */
                             .pApplicationInfo = &app,
                             .enabledLayerCount = o->validation ? 1 : 0,
                             .ppEnabledLayerNames = &validation_layer,
                             .enabledExtensionCount = debug ? 1 : 0,
                             .ppEnabledExtensionNames = &ext};
  VkResult r = vk->fn.vkCreateInstance(&ci, NULL, &vk->instance);
  if (r == VK_ERROR_INCOMPATIBLE_DRIVER)
    return fy_status_make(FY_UNAVAILABLE, "vulkan: no driver supports Vulkan 1.2 (install one, e.g. "
                          "mesa-vulkan-drivers for lavapipe)");
  FY_TRY(fy_vk_check(r, "vkCreateInstance"));
  PFN_vkGetInstanceProcAddr gipa = vk->fn.vkGetInstanceProcAddr;
#define LOAD_INSTANCE(name)                                                        \
  if (!(vk->fn.name = (PFN_##name)gipa(vk->instance, #name)))                      \
    return fy_status_make(FY_UNAVAILABLE, "vulkan: the instance lacks %s", #name);
  FY_VK_INSTANCE_FNS(LOAD_INSTANCE)
#undef LOAD_INSTANCE
  if (debug) {
    vk->fn.vkCreateDebugUtilsMessengerEXT =
        (PFN_vkCreateDebugUtilsMessengerEXT)gipa(vk->instance, "vkCreateDebugUtilsMessengerEXT");
    vk->fn.vkDestroyDebugUtilsMessengerEXT =
        (PFN_vkDestroyDebugUtilsMessengerEXT)gipa(vk->instance, "vkDestroyDebugUtilsMessengerEXT");
    if (vk->fn.vkCreateDebugUtilsMessengerEXT)
      FY_TRY(fy_vk_check(vk->fn.vkCreateDebugUtilsMessengerEXT(vk->instance, &mi, NULL, &vk->messenger),
                         "vkCreateDebugUtilsMessengerEXT"));
  }
  return NULL;
}

/* ---- device ---- */

static int type_rank(VkPhysicalDeviceType t) {
  switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 4;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 3;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 1;
    default: return 0;
  }
}

static bool timeline_supported(fy_vk_t *vk, VkPhysicalDevice d) {
  VkPhysicalDeviceVulkan12Features f12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
  VkPhysicalDeviceFeatures2 f = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &f12};
  vk->fn.vkGetPhysicalDeviceFeatures2(d, &f);
  return f12.timelineSemaphore;
}

static fy_status_t pick_device(fy_vk_t *vk, int index) {
  uint32_t n = 0;
  FY_TRY(fy_vk_check(vk->fn.vkEnumeratePhysicalDevices(vk->instance, &n, NULL), "vkEnumeratePhysicalDevices"));
  if (!n) return fy_status_make(FY_UNAVAILABLE, "vulkan: no Vulkan device");
  VkPhysicalDevice *all = calloc(n, sizeof *all);
  if (!all) return fy_status_make(FY_RESOURCE_EXHAUSTED, "vulkan: out of memory");
  fy_status_t s = fy_vk_check(vk->fn.vkEnumeratePhysicalDevices(vk->instance, &n, all), "vkEnumeratePhysicalDevices");
  int best = -1, best_rank = -1;
  for (uint32_t i = 0; !s && i < n; i++) {
    VkPhysicalDeviceProperties p;
    vk->fn.vkGetPhysicalDeviceProperties(all[i], &p);
    bool usable = p.apiVersion >= VK_API_VERSION_1_2 && timeline_supported(vk, all[i]);
    if (index >= 0 && (uint32_t)index == i && !usable)
      s = fy_status_make(FY_UNAVAILABLE, "vulkan: device %u (%s) lacks Vulkan 1.2 with timeline semaphores", i,
                         p.deviceName);
    if (usable && (index < 0 ? type_rank(p.deviceType) > best_rank : (uint32_t)index == i))
      best = (int)i, best_rank = type_rank(p.deviceType);
  }
  if (!s && best < 0)
    s = index >= 0 ? fy_status_make(FY_UNAVAILABLE, "vulkan: no device %d (%u devices)", index, n)
                   : fy_status_make(FY_UNAVAILABLE, "vulkan: none of %u devices has Vulkan 1.2 with timeline "
                                    "semaphores", n);
  if (!s) vk->physical = all[best];
  free(all);
  return s;
}

static fy_status_t pick_queues(fy_vk_t *vk) {
  uint32_t n = 0;
  vk->fn.vkGetPhysicalDeviceQueueFamilyProperties(vk->physical, &n, NULL);
  VkQueueFamilyProperties *q = calloc(n ? n : 1, sizeof *q);
  if (!q) return fy_status_make(FY_RESOURCE_EXHAUSTED, "vulkan: out of memory");
  vk->fn.vkGetPhysicalDeviceQueueFamilyProperties(vk->physical, &n, q);
  int compute = -1, transfer = -1;
  for (uint32_t i = 0; i < n; i++) {
    VkQueueFlags f = q[i].queueFlags;
    if (compute < 0 && (f & VK_QUEUE_COMPUTE_BIT)) compute = (int)i;
    /* A copy engine: transfer without graphics or compute. */
    if (transfer < 0 && (f & VK_QUEUE_TRANSFER_BIT) && !(f & (VK_QUEUE_GRAPHICS_BIT | VK_QUEUE_COMPUTE_BIT)))
      transfer = (int)i;
  }
  if (compute >= 0) vk->timestamps = q[compute].timestampValidBits > 0;
  free(q);
  if (compute < 0) return fy_status_make(FY_UNAVAILABLE, "vulkan: the device has no compute queue");
  vk->compute_family = (uint32_t)compute;
  vk->dedicated_transfer = transfer >= 0;
  vk->transfer_family = transfer >= 0 ? (uint32_t)transfer : (uint32_t)compute;
  return NULL;
}

static fy_status_t create_device(fy_vk_t *vk) {
  float priority = 1.0f;
  VkDeviceQueueCreateInfo queues[2] = {
      {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, .queueFamilyIndex = vk->compute_family,
       .queueCount = 1, .pQueuePriorities = &priority},
      {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, .queueFamilyIndex = vk->transfer_family,
       .queueCount = 1, .pQueuePriorities = &priority}};
  VkPhysicalDeviceVulkan12Features f12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
                                          .timelineSemaphore = VK_TRUE};
  VkDeviceCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .pNext = &f12,
                           .queueCreateInfoCount = vk->dedicated_transfer ? 2 : 1, .pQueueCreateInfos = queues};
  FY_TRY(fy_vk_check(vk->fn.vkCreateDevice(vk->physical, &ci, NULL, &vk->device), "vkCreateDevice"));
  PFN_vkGetDeviceProcAddr gdpa = vk->fn.vkGetDeviceProcAddr;
#define LOAD_DEVICE(name)                                                   \
  if (!(vk->fn.name = (PFN_##name)gdpa(vk->device, #name)))                 \
    return fy_status_make(FY_UNAVAILABLE, "vulkan: the device lacks %s", #name);
  FY_VK_DEVICE_FNS(LOAD_DEVICE)
#undef LOAD_DEVICE
  vk->fn.vkGetDeviceQueue(vk->device, vk->compute_family, 0, &vk->compute_queue);
  vk->fn.vkGetDeviceQueue(vk->device, vk->transfer_family, 0, &vk->transfer_queue);
  return NULL;
}

static fy_status_t create_layouts(fy_vk_t *vk) {
  VkDescriptorSetLayoutBinding b[FY_SPIRV_N_BINDINGS];
  for (uint32_t i = 0; i < FY_SPIRV_N_BINDINGS; i++)
    b[i] = (VkDescriptorSetLayoutBinding){.binding = i, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                          .descriptorCount = 1, .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT};
  VkDescriptorSetLayoutCreateInfo li = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                        .bindingCount = FY_SPIRV_N_BINDINGS, .pBindings = b};
  FY_TRY(fy_vk_check(vk->fn.vkCreateDescriptorSetLayout(vk->device, &li, NULL, &vk->set_layout),
                     "vkCreateDescriptorSetLayout"));
  VkPushConstantRange pc = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .size = sizeof(fy_spirv_push_t)};
  VkPipelineLayoutCreateInfo pi = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO, .setLayoutCount = 1,
                                   .pSetLayouts = &vk->set_layout, .pushConstantRangeCount = 1,
                                   .pPushConstantRanges = &pc};
  return fy_vk_check(vk->fn.vkCreatePipelineLayout(vk->device, &pi, NULL, &vk->pipeline_layout),
                     "vkCreatePipelineLayout");
}

static fy_status_t create(fy_vk_t *vk, const fy_vk_options_t *o) {
  FY_TRY(load_loader(vk));
  FY_TRY(create_instance(vk, o));
  FY_TRY(pick_device(vk, o->device));
  vk->fn.vkGetPhysicalDeviceProperties(vk->physical, &vk->props);
  vk->fn.vkGetPhysicalDeviceMemoryProperties(vk->physical, &vk->memory);
  FY_TRY(pick_queues(vk));
  FY_TRY(create_device(vk));
  FY_TRY(create_layouts(vk));
  const VkPhysicalDeviceLimits *l = &vk->props.limits;
  vk->max_range = l->maxStorageBufferRange < FY_SPIRV_MAX_RANGE ? l->maxStorageBufferRange : FY_SPIRV_MAX_RANGE;
  vk->align = l->minStorageBufferOffsetAlignment > 4 ? l->minStorageBufferOffsetAlignment : 4;
  VkPhysicalDeviceSubgroupProperties sg = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
  VkPhysicalDeviceMaintenance3Properties m3 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES,
                                               .pNext = &sg};
  VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &m3};
  vk->fn.vkGetPhysicalDeviceProperties2(vk->physical, &p2);
  vk->max_allocation = m3.maxMemoryAllocationSize;
  vk->subgroup_size = sg.subgroupSize;
  /* MATMUL reduces over a subgroup: arithmetic subgroup operations in compute, whole subgroups in a workgroup. */
  if (!(sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) || !(sg.supportedOperations & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT) ||
      !sg.subgroupSize || FY_SPIRV_LOCAL_SIZE % sg.subgroupSize)
    return fy_status_make(FY_UNAVAILABLE, "vulkan: %s lacks arithmetic subgroup operations in compute shaders with "
                          "a subgroup size dividing %d (size %u)", vk->props.deviceName, FY_SPIRV_LOCAL_SIZE,
                          sg.subgroupSize);
  vk->timestamp_ns = l->timestampPeriod;
  vk->timestamps = vk->timestamps && l->timestampComputeAndGraphics;
  return NULL;
}

fy_status_t fy_vk_create(const fy_vk_options_t *options, fy_vk_t **out_vk) {
  fy_vk_options_t defaults = {.device = -1};
  fy_vk_t *vk = calloc(1, sizeof *vk);
  if (!vk) return fy_status_make(FY_RESOURCE_EXHAUSTED, "vulkan: out of memory");
  pthread_mutex_init(&vk->submit_lock, NULL);
  pthread_mutex_init(&vk->message_lock, NULL);
  fy_status_t s = create(vk, options ? options : &defaults);
  if (s) {
    fy_vk_destroy(vk);
    return s;
  }
  *out_vk = vk;
  return NULL;
}

void fy_vk_destroy(fy_vk_t *vk) {
  if (!vk) return;
  if (vk->device) {
    vk->fn.vkDeviceWaitIdle(vk->device);
    if (vk->pipeline_layout) vk->fn.vkDestroyPipelineLayout(vk->device, vk->pipeline_layout, NULL);
    if (vk->set_layout) vk->fn.vkDestroyDescriptorSetLayout(vk->device, vk->set_layout, NULL);
    vk->fn.vkDestroyDevice(vk->device, NULL);
  }
  if (vk->messenger) vk->fn.vkDestroyDebugUtilsMessengerEXT(vk->instance, vk->messenger, NULL);
  if (vk->instance) vk->fn.vkDestroyInstance(vk->instance, NULL);
  if (vk->lib) dlclose(vk->lib);
  pthread_mutex_destroy(&vk->submit_lock);
  pthread_mutex_destroy(&vk->message_lock);
  free(vk);
}

fy_status_t fy_vk_list_devices(fy_vk_device_info_t **out_devices, int *out_count) {
  fy_vk_t *vk = calloc(1, sizeof *vk);
  if (!vk) return fy_status_make(FY_RESOURCE_EXHAUSTED, "vulkan: out of memory");
  pthread_mutex_init(&vk->submit_lock, NULL);
  pthread_mutex_init(&vk->message_lock, NULL);
  fy_vk_options_t o = {.device = -1};
  uint32_t n = 0;
  fy_status_t s = load_loader(vk);
  if (!s) s = create_instance(vk, &o);
  if (!s) s = fy_vk_check(vk->fn.vkEnumeratePhysicalDevices(vk->instance, &n, NULL), "vkEnumeratePhysicalDevices");
  VkPhysicalDevice *all = s ? NULL : calloc(n ? n : 1, sizeof *all);
  fy_vk_device_info_t *info = s ? NULL : calloc(n ? n : 1, sizeof *info);
  if (!s && (!all || !info)) s = fy_status_make(FY_RESOURCE_EXHAUSTED, "vulkan: out of memory");
  if (!s) s = fy_vk_check(vk->fn.vkEnumeratePhysicalDevices(vk->instance, &n, all), "vkEnumeratePhysicalDevices");
  for (uint32_t i = 0; !s && i < n; i++) {
    VkPhysicalDeviceProperties p;
    VkPhysicalDeviceMemoryProperties m;
    vk->fn.vkGetPhysicalDeviceProperties(all[i], &p);
    vk->fn.vkGetPhysicalDeviceMemoryProperties(all[i], &m);
    snprintf(info[i].name, sizeof info[i].name, "%s", p.deviceName);
    info[i].type_rank = type_rank(p.deviceType);
    info[i].usable = p.apiVersion >= VK_API_VERSION_1_2 && timeline_supported(vk, all[i]);
    for (uint32_t h = 0; h < m.memoryHeapCount; h++)
      if (m.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) info[i].device_local_bytes += m.memoryHeaps[h].size;
  }
  free(all);
  fy_vk_destroy(vk);
  if (s) {
    free(info);
    return s;
  }
  *out_devices = info;
  *out_count = (int)n;
  return NULL;
}

/* ---- memory ---- */

static int memory_type(const fy_vk_t *vk, uint32_t allowed, VkMemoryPropertyFlags want, VkMemoryPropertyFlags avoid) {
  for (int pass = 0; pass < 2; pass++)
    for (uint32_t i = 0; i < vk->memory.memoryTypeCount; i++) {
      VkMemoryPropertyFlags f = vk->memory.memoryTypes[i].propertyFlags;
      if ((allowed & (1u << i)) && (f & want) == want && (pass || !(f & avoid))) return (int)i;
    }
  return -1;
}

fy_status_t fy_vk_buffer_create(fy_vk_t *vk, uint64_t bytes, bool host_visible, fy_vk_buffer_t *out) {
  memset(out, 0, sizeof *out);
  bytes = (bytes + 3) & ~(uint64_t)3;
  if (!bytes) bytes = 4;
  uint32_t families[2] = {vk->compute_family, vk->transfer_family};
  bool shared = vk->compute_family != vk->transfer_family;
  VkBufferCreateInfo bi = {
      .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = bytes,
      .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT,
      .sharingMode = shared ? VK_SHARING_MODE_CONCURRENT : VK_SHARING_MODE_EXCLUSIVE,
      .queueFamilyIndexCount = shared ? 2 : 0, .pQueueFamilyIndices = families};
  FY_TRY(fy_vk_check(vk->fn.vkCreateBuffer(vk->device, &bi, NULL, &out->buffer), "vkCreateBuffer"));
  VkMemoryRequirements req;
  vk->fn.vkGetBufferMemoryRequirements(vk->device, out->buffer, &req);
  VkMemoryPropertyFlags want = host_visible ? VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT
                                            : VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
  /* Device memory that is also host-visible is the scarce BAR window on a discrete GPU. */
  int type = memory_type(vk, req.memoryTypeBits, want, host_visible ? 0 : VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT);
  fy_status_t s = NULL;
  if (type < 0) {
    s = fy_status_make(FY_UNAVAILABLE, "vulkan: no %s memory type for a buffer",
                       host_visible ? "host-visible coherent" : "device-local");
  } else {
    VkMemoryAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .allocationSize = req.size,
                               .memoryTypeIndex = (uint32_t)type};
    s = fy_vk_check(vk->fn.vkAllocateMemory(vk->device, &ai, NULL, &out->memory), "vkAllocateMemory");
  }
  if (!s) s = fy_vk_check(vk->fn.vkBindBufferMemory(vk->device, out->buffer, out->memory, 0), "vkBindBufferMemory");
  if (!s && host_visible)
    s = fy_vk_check(vk->fn.vkMapMemory(vk->device, out->memory, 0, VK_WHOLE_SIZE, 0, &out->map), "vkMapMemory");
  if (s) {
    fy_vk_buffer_destroy(vk, out);
    return fy_status_annotate(s, "%llu-byte buffer", (unsigned long long)bytes);
  }
  out->bytes = bytes;
  return NULL;
}

void fy_vk_buffer_destroy(fy_vk_t *vk, fy_vk_buffer_t *b) {
  if (!b) return;
  if (b->buffer) vk->fn.vkDestroyBuffer(vk->device, b->buffer, NULL);
  if (b->memory) vk->fn.vkFreeMemory(vk->device, b->memory, NULL); /* unmaps too */
  memset(b, 0, sizeof *b);
}

/* ---- kernels ---- */

fy_status_t fy_vk_kernel_create(fy_vk_t *vk, const fy_spirv_kernel_t *k, fy_vk_kernel_t *out) {
  memset(out, 0, sizeof *out);
  VkShaderModuleCreateInfo mi = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                 .codeSize = k->n_words * sizeof(uint32_t), .pCode = k->code};
  FY_TRY(fy_status_annotate(fy_vk_check(vk->fn.vkCreateShaderModule(vk->device, &mi, NULL, &out->module),
                                        "vkCreateShaderModule"), "kernel %s", k->name));
  VkComputePipelineCreateInfo pi = {
      .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
      .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO, .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                .module = out->module, .pName = k->name},
      .layout = vk->pipeline_layout};
  fy_status_t s = fy_vk_check(vk->fn.vkCreateComputePipelines(vk->device, VK_NULL_HANDLE, 1, &pi, NULL,
                                                              &out->pipeline), "vkCreateComputePipelines");
  if (s) {
    fy_vk_kernel_destroy(vk, out);
    return fy_status_annotate(s, "kernel %s", k->name);
  }
  return NULL;
}

void fy_vk_kernel_destroy(fy_vk_t *vk, fy_vk_kernel_t *k) {
  if (!k) return;
  if (k->pipeline) vk->fn.vkDestroyPipeline(vk->device, k->pipeline, NULL);
  if (k->module) vk->fn.vkDestroyShaderModule(vk->device, k->module, NULL);
  memset(k, 0, sizeof *k);
}

fy_status_t fy_vk_pool_create(fy_vk_t *vk, uint32_t max_sets, VkDescriptorPool *out_pool) {
  if (!max_sets) max_sets = 1;
  VkDescriptorPoolSize size = {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, max_sets * FY_SPIRV_N_BINDINGS};
  VkDescriptorPoolCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO, .maxSets = max_sets,
                                   .poolSizeCount = 1, .pPoolSizes = &size};
  return fy_vk_check(vk->fn.vkCreateDescriptorPool(vk->device, &ci, NULL, out_pool), "vkCreateDescriptorPool");
}

fy_status_t fy_vk_launch_prepare(fy_vk_t *vk, VkDescriptorPool pool, const fy_graph_t *g, int node,
                                 const fy_vk_kernel_t *kernel, VkBuffer params, const VkBuffer *buffers,
                                 const fy_spirv_args_t *args, fy_vk_launch_t *out) {
  memset(out, 0, sizeof *out);
  out->kernel = kernel;
  FY_TRY(fy_spirv_bind_node(g, node, args, vk->align, vk->max_range, &out->parts, &out->n_parts));
  out->sets = calloc((size_t)out->n_parts, sizeof *out->sets);
  VkDescriptorSetLayout *layouts = calloc((size_t)out->n_parts, sizeof *layouts);
  fy_status_t s = NULL;
  if (!out->sets || !layouts) s = fy_status_make(FY_RESOURCE_EXHAUSTED, "vulkan: out of memory");
  for (int i = 0; !s && i < out->n_parts; i++) layouts[i] = vk->set_layout;
  if (!s) {
    VkDescriptorSetAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO, .descriptorPool = pool,
                                      .descriptorSetCount = (uint32_t)out->n_parts, .pSetLayouts = layouts};
    s = fy_vk_check(vk->fn.vkAllocateDescriptorSets(vk->device, &ai, out->sets), "vkAllocateDescriptorSets");
  }
  free(layouts);
  int n_args = g->nodes[node].n_inputs + 1;
  for (int i = 0; !s && i < out->n_parts; i++) {
    /* Bindings the kernel does not use still need a valid buffer: the parameters. */
    VkDescriptorBufferInfo info[FY_SPIRV_N_BINDINGS];
    VkWriteDescriptorSet w[FY_SPIRV_N_BINDINGS];
    for (int b = 0; b < FY_SPIRV_N_BINDINGS; b++) {
      int k = b - 1;
      info[b] = k >= 0 && k < n_args
                    ? (VkDescriptorBufferInfo){buffers[k], out->parts[i].args[k].offset, out->parts[i].args[k].range}
                    : (VkDescriptorBufferInfo){params, 0, sizeof(fy_spirv_params_t)};
      w[b] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = out->sets[i],
                                    .dstBinding = (uint32_t)b, .descriptorCount = 1,
                                    .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, .pBufferInfo = &info[b]};
    }
    vk->fn.vkUpdateDescriptorSets(vk->device, FY_SPIRV_N_BINDINGS, w, 0, NULL);
  }
  if (s) fy_vk_launch_free(out);
  return s;
}

void fy_vk_launch_free(fy_vk_launch_t *l) {
  if (!l) return;
  free(l->parts);
  free(l->sets); /* the sets themselves go with their pool */
  memset(l, 0, sizeof *l);
}

static void memory_barrier(fy_vk_t *vk, VkCommandBuffer cb, VkPipelineStageFlags src, VkAccessFlags src_access,
                           VkPipelineStageFlags dst, VkAccessFlags dst_access) {
  VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = src_access,
                        .dstAccessMask = dst_access};
  vk->fn.vkCmdPipelineBarrier(cb, src, dst, 0, 1, &mb, 0, NULL, 0, NULL);
}

void fy_vk_launch_record(fy_vk_t *vk, VkCommandBuffer cb, const fy_vk_launch_t *l) {
  vk->fn.vkCmdBindPipeline(cb, VK_PIPELINE_BIND_POINT_COMPUTE, l->kernel->pipeline);
  for (int i = 0; i < l->n_parts; i++) {
    const fy_spirv_part_t *p = &l->parts[i];
    vk->fn.vkCmdBindDescriptorSets(cb, VK_PIPELINE_BIND_POINT_COMPUTE, vk->pipeline_layout, 0, 1, &l->sets[i], 0,
                                   NULL);
    vk->fn.vkCmdPushConstants(cb, vk->pipeline_layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof p->push, &p->push);
    vk->fn.vkCmdDispatch(cb, p->groups[0], p->groups[1], p->groups[2]);
  }
  memory_barrier(vk, cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_WRITE_BIT,
                 VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT);
}

void fy_vk_barrier_queue(fy_vk_t *vk, VkCommandBuffer cb, bool transfer_only) {
  VkAccessFlags all = VK_ACCESS_TRANSFER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_HOST_WRITE_BIT |
                      VK_ACCESS_HOST_READ_BIT;
  VkPipelineStageFlags stages = VK_PIPELINE_STAGE_TRANSFER_BIT | VK_PIPELINE_STAGE_HOST_BIT;
  if (!transfer_only) {
    all |= VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_SHADER_READ_BIT;
    stages |= VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT;
  }
  memory_barrier(vk, cb, stages, all, stages, all);
}

void fy_vk_barrier_all(fy_vk_t *vk, VkCommandBuffer cb) { fy_vk_barrier_queue(vk, cb, false); }

/* ---- timestamps ---- */

fy_status_t fy_vk_timestamps_create(fy_vk_t *vk, uint32_t n, VkQueryPool *out_pool) {
  if (!vk->timestamps) return fy_status_make(FY_UNAVAILABLE, "vulkan: the compute queue has no timestamps");
  VkQueryPoolCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO, .queryType = VK_QUERY_TYPE_TIMESTAMP,
                              .queryCount = n};
  return fy_vk_check(vk->fn.vkCreateQueryPool(vk->device, &ci, NULL, out_pool), "vkCreateQueryPool");
}

void fy_vk_timestamps_reset(fy_vk_t *vk, VkCommandBuffer cb, VkQueryPool pool, uint32_t n) {
  vk->fn.vkCmdResetQueryPool(cb, pool, 0, n);
}

void fy_vk_timestamp(fy_vk_t *vk, VkCommandBuffer cb, VkQueryPool pool, uint32_t index) {
  vk->fn.vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, pool, index);
}

fy_status_t fy_vk_timestamps_read(fy_vk_t *vk, VkQueryPool pool, uint32_t n, double *out_ns) {
  enum { MAX = 64 };
  uint64_t ticks[MAX];
  if (n > MAX) return fy_status_make(FY_INTERNAL, "vulkan: %u timestamps at once", n);
  FY_TRY(fy_vk_check(vk->fn.vkGetQueryPoolResults(vk->device, pool, 0, n, sizeof ticks, ticks, sizeof *ticks,
                                                  VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT),
                     "vkGetQueryPoolResults"));
  for (uint32_t i = 0; i < n; i++) out_ns[i] = (double)ticks[i] * vk->timestamp_ns;
  return NULL;
}

/* ---- submission ---- */

fy_status_t fy_vk_timeline_create(fy_vk_t *vk, VkSemaphore *out) {
  VkSemaphoreTypeCreateInfo ti = {.sType = VK_STRUCTURE_TYPE_SEMAPHORE_TYPE_CREATE_INFO,
                                  .semaphoreType = VK_SEMAPHORE_TYPE_TIMELINE};
  VkSemaphoreCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_SEMAPHORE_CREATE_INFO, .pNext = &ti};
  return fy_vk_check(vk->fn.vkCreateSemaphore(vk->device, &ci, NULL, out), "vkCreateSemaphore (timeline)");
}

fy_status_t fy_vk_submit(fy_vk_t *vk, VkQueue queue, const fy_vk_batch_t *b) {
  if (b->n_waits > FY_VK_MAX_WAITS)
    return fy_status_make(FY_INTERNAL, "vulkan: %d semaphore waits in one submit", b->n_waits);
  VkPipelineStageFlags stages[FY_VK_MAX_WAITS];
  for (int i = 0; i < b->n_waits; i++) stages[i] = VK_PIPELINE_STAGE_ALL_COMMANDS_BIT;
  VkTimelineSemaphoreSubmitInfo ti = {.sType = VK_STRUCTURE_TYPE_TIMELINE_SEMAPHORE_SUBMIT_INFO,
                                      .waitSemaphoreValueCount = (uint32_t)b->n_waits,
                                      .pWaitSemaphoreValues = b->wait_values,
                                      .signalSemaphoreValueCount = (uint32_t)b->n_signals,
                                      .pSignalSemaphoreValues = b->signal_values};
  VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .pNext = &ti,
                     .waitSemaphoreCount = (uint32_t)b->n_waits, .pWaitSemaphores = b->waits,
                     .pWaitDstStageMask = stages, .commandBufferCount = (uint32_t)b->n_cbs,
                     .pCommandBuffers = b->cbs, .signalSemaphoreCount = (uint32_t)b->n_signals,
                     .pSignalSemaphores = b->signals};
  pthread_mutex_lock(&vk->submit_lock);
  VkResult r = vk->fn.vkQueueSubmit(queue, 1, &si, VK_NULL_HANDLE);
  pthread_mutex_unlock(&vk->submit_lock);
  return fy_vk_check(r, "vkQueueSubmit");
}

fy_status_t fy_vk_timeline_wait(fy_vk_t *vk, VkSemaphore semaphore, uint64_t value, uint64_t timeout_ns) {
  VkSemaphoreWaitInfo wi = {.sType = VK_STRUCTURE_TYPE_SEMAPHORE_WAIT_INFO, .semaphoreCount = 1,
                            .pSemaphores = &semaphore, .pValues = &value};
  VkResult r = vk->fn.vkWaitSemaphores(vk->device, &wi, timeout_ns);
  if (r == VK_TIMEOUT)
    return fy_status_make(FY_UNAVAILABLE, "vulkan: the device did not reach a timeline value in %.1f s",
                          (double)timeout_ns / 1e9);
  return fy_vk_check(r, "vkWaitSemaphores");
}

fy_status_t fy_vk_commands_create(fy_vk_t *vk, uint32_t family, VkCommandPool *out_pool) {
  VkCommandPoolCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT, .queueFamilyIndex = family};
  return fy_vk_check(vk->fn.vkCreateCommandPool(vk->device, &ci, NULL, out_pool), "vkCreateCommandPool");
}

fy_status_t fy_vk_command_buffer(fy_vk_t *vk, VkCommandPool pool, VkCommandBuffer *out_cb) {
  VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO, .commandPool = pool,
                                    .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, .commandBufferCount = 1};
  return fy_vk_check(vk->fn.vkAllocateCommandBuffers(vk->device, &ai, out_cb), "vkAllocateCommandBuffers");
}

fy_status_t fy_vk_begin(fy_vk_t *vk, VkCommandBuffer cb, bool one_time) {
  VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                 .flags = one_time ? VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT : 0};
  return fy_vk_check(vk->fn.vkBeginCommandBuffer(cb, &bi), "vkBeginCommandBuffer");
}
