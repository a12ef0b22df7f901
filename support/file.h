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

/* Opens a user-named file for reading. The open does not block on a FIFO
 * (O_NONBLOCK), and anything but a regular file is refused by name before a
 * byte is read: "PATH: is a FIFO, not a regular file". On success the caller
 * owns *out_fd (O_CLOEXEC, blocking reads again) and *out_size is the file's
 * size (out_size may be NULL). Every open of a user-named input goes here. */
fy_status_t fy_file_open_read(const char *path, int *out_fd, uint64_t *out_size);

/* Maps a whole regular file read-only (opened as fy_file_open_read). Errors
 * name the path. */
fy_status_t fy_file_map(const char *path, fy_mapping_t *out_mapping);
void fy_file_unmap(fy_mapping_t *mapping);

/* Reads a whole regular file of at most max_bytes into a NUL-terminated
 * malloc'ed buffer (out_size may be NULL). A larger file is refused with
 * FY_OUT_OF_RANGE naming the path, its size and the limit. */
fy_status_t fy_file_read_max(const char *path, size_t max_bytes, char **out_data, size_t *out_size);

/* The limit of fy_file_read: config.json, a shard index, a target profile. */
#define FY_FILE_READ_DEFAULT_MAX ((size_t)64 << 20)
/* fy_file_read_max(path, FY_FILE_READ_DEFAULT_MAX, ...). */
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
