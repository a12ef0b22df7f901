/* Names of regions, queues and command kinds, as dumps, traces and errors
 * print them. */
#include "schedules/schedule.h"

const char *fy_region_name(fy_region_kind_t kind) {
  switch (kind) {
    case FY_REGION_RESIDENT: return "resident";
    case FY_REGION_SLOTS: return "slots";
    case FY_REGION_KV: return "kv";
    case FY_REGION_ACTIVATIONS: return "activations";
    default: return "?";
  }
}

const char *fy_queue_name(fy_queue_t queue) {
  switch (queue) {
    case FY_QUEUE_COMPUTE: return "compute";
    case FY_QUEUE_COPY: return "copy";
    default: return "?";
  }
}

const char *fy_cmd_kind_name(fy_cmd_kind_t kind) {
  switch (kind) {
    case FY_CMD_COPY: return "copy";
    case FY_CMD_SIGNAL: return "signal";
    case FY_CMD_WAIT: return "wait";
    case FY_CMD_LAUNCH: return "launch";
    case FY_CMD_EVICT: return "evict";
    case FY_CMD_CHUNK_BEGIN: return "chunk_begin";
    case FY_CMD_CHUNK_END: return "chunk_end";
    default: return "?";
  }
}
