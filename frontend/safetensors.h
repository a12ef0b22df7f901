/* safetensors files: the header reader that fills a tensor index, and a
 * streaming writer.
 *
 * Layout: a u64 little-endian header length N, N bytes of JSON
 *   {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {"key": "value"}}
 * then the data; offsets are relative to byte 8 + N. */
#ifndef FERRY_FRONTEND_SAFETENSORS_H
#define FERRY_FRONTEND_SAFETENSORS_H

#include <stdint.h>

#include "frontend/tensor_index.h"

/* Reads the header of the file at path (never its data), registers the file
 * in g (fy_graph_add_file, path stored as given) and appends its tensors to
 * index with absolute offsets. Checks: header inside the file, valid JSON
 * object, supported dtype (F32, F16, BF16, I32), rank <= FY_MAX_RANK, byte
 * size = shape x dtype (overflow-checked), data inside the file, no two
 * tensors overlapping, no name seen before in index. Errors name the file and
 * the tensor. On failure index may hold some of the file's tensors. */
fy_status_t fy_safetensors_read(const char *path, fy_graph_t *g, fy_tensor_index_t *index);

/* One tensor to write. */
typedef struct fy_safetensors_entry {
  const char *name; /* printable ASCII without '"' or '\\' */
  fy_dtype_t dtype;
  int rank;
  int64_t shape[FY_MAX_RANK];
} fy_safetensors_entry_t;

/* Produces bytes [offset, offset + size) of tensor `tensor`'s data into buf;
 * offset and size are multiples of the dtype size. */
typedef fy_status_t (*fy_safetensors_fill_fn)(void *ctx, int tensor, uint64_t offset, void *buf, size_t size);

/* Bytes of an entry's data; 0 with an error for a bad shape or overflow. */
fy_status_t fy_safetensors_entry_bytes(const fy_safetensors_entry_t *entry, uint64_t *out_bytes);

/* Writes tensors in the given order, contiguous, after a header padded with
 * spaces to a multiple of 8 bytes, through fy_file_write_atomic. The data is
 * streamed in chunks from fill (NULL writes zeros): memory use does not grow
 * with the file. */
fy_status_t fy_safetensors_write(const char *path, const fy_safetensors_entry_t *tensors, int n_tensors,
                                 fy_safetensors_fill_fn fill, void *ctx);

#endif
