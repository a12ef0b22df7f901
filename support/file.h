/* Files: read-only mappings of model files and atomic writes of outputs. */
#ifndef FERRY_SUPPORT_FILE_H
#define FERRY_SUPPORT_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "ferry/status.h"

typedef struct {
  const uint8_t *data; /* NULL for an empty file */
  size_t size;
} fy_mapping_t;

/* Maps a whole file read-only. Errors name the path. */
fy_status_t fy_file_map(const char *path, fy_mapping_t *out_mapping);
void fy_file_unmap(fy_mapping_t *mapping);

/* Reads a whole (small) file into a NUL-terminated malloc'ed buffer. */
fy_status_t fy_file_read(const char *path, char **out_data, size_t *out_size);

/* Writes a file atomically: a temporary file in the same folder, fsync, rename.
 * A failure leaves neither a half-written file nor the temporary behind. */
typedef fy_status_t (*fy_file_writer_fn)(void *ctx, int fd);
fy_status_t fy_file_write_atomic(const char *path, fy_file_writer_fn write, void *ctx);
fy_status_t fy_file_write_atomic_bytes(const char *path, const void *data, size_t size);

/* Writes all bytes to fd, retrying short writes. */
fy_status_t fy_fd_write_all(int fd, const void *data, size_t size, const char *what);

/* Creates a folder (and its parents); an existing folder is fine. */
fy_status_t fy_mkdir_p(const char *path);

#endif
