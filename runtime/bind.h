/* Binding a schedule to its weights and to a device arena, before anything
 * runs: the weight files are found, mapped and compared with what the plan
 * recorded; every command is checked to stay inside the arena and the files,
 * so that a schedule no checker has proven (an in-memory one, a mutated one
 * in a test) can give wrong answers but never touch memory outside them. */
#ifndef FERRY_RUNTIME_BIND_H
#define FERRY_RUNTIME_BIND_H

#include "ferry/status.h"
#include "ir/ir.h"
#include "schedules/plan.h"
#include "schedules/schedule.h"
#include "support/file.h"

/* Maps each of g's weight files: at its recorded path, or, with weights_dir,
 * the file of the same base name in that folder. Each file's size must equal
 * the graph's record (when not 0) and, when prints is not NULL, the size and
 * header digest of prints[f] (when recorded); every weight's bytes must lie
 * in its file. Errors are FY_INCOMPATIBLE / FY_OUT_OF_RANGE / FY_UNAVAILABLE
 * naming the file and what differs. out_files and out_paths have g->n_files
 * entries, zeroed by the caller; on failure the caller frees what was set
 * with fy_rt_unbind_files. */
fy_status_t fy_rt_bind_files(const fy_graph_t *g, const fy_file_fingerprint_t *prints, const char *weights_dir,
                             fy_mapping_t *out_files, char **out_paths);
void fy_rt_unbind_files(int n_files, fy_mapping_t *files, char **paths);

/* Checks that every command of s stays inside the device arena
 * (s->device_bytes) and the mapped files, is on a queue the runtime runs
 * it on (COPY on the copy queue, LAUNCH on the compute queue), names events
 * of its stage, and launches only nodes of its graph stage, reading host
 * memory only for weights and writing only device memory. Errors name the stage, queue and command. */
fy_status_t fy_rt_validate_schedule(const fy_schedule_t *s, const fy_mapping_t *files);

#endif
