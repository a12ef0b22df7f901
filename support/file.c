/* Files (see file.h). */
#include "support/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

fy_status_t fy_file_map(const char *path, fy_mapping_t *out_mapping) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fy_status_make(FY_UNAVAILABLE, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return fy_status_make(FY_INVALID_ARGUMENT, "%s: not a regular file", path);
  }
  fy_mapping_t m = {NULL, (size_t)st.st_size};
  if (m.size > 0) {
    void *p = mmap(NULL, m.size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      close(fd);
      return fy_status_make(FY_RESOURCE_EXHAUSTED, "%s: cannot map: %s", path, strerror(err));
    }
    m.data = p;
  }
  close(fd);
  *out_mapping = m;
  return NULL;
}

void fy_file_unmap(fy_mapping_t *mapping) {
  if (mapping->data) munmap((void *)mapping->data, mapping->size);
  mapping->data = NULL;
  mapping->size = 0;
}

fy_status_t fy_file_read(const char *path, char **out_data, size_t *out_size) {
  FILE *f = fopen(path, "rb");
  if (!f) return fy_status_make(FY_UNAVAILABLE, "%s: cannot open: %s", path, strerror(errno));
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  while (buf) {
    n += fread(buf + n, 1, cap - n - 1, f);
    if (n < cap - 1) break;
    char *bigger = realloc(buf, cap * 2);
    if (!bigger) {
      free(buf);
      buf = NULL;
      break;
    }
    buf = bigger;
    cap *= 2;
  }
  int failed = ferror(f);
  fclose(f);
  if (!buf) return fy_status_make(FY_RESOURCE_EXHAUSTED, "%s: out of memory reading", path);
  if (failed) {
    free(buf);
    return fy_status_make(FY_UNAVAILABLE, "%s: read error", path);
  }
  buf[n] = 0;
  *out_data = buf;
  if (out_size) *out_size = n;
  return NULL;
}

fy_status_t fy_fd_write_all(int fd, const void *data, size_t size, const char *what) {
  const unsigned char *p = data;
  while (size > 0) {
    ssize_t w = write(fd, p, size);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return fy_status_make(FY_UNAVAILABLE, "%s: write failed: %s", what, strerror(errno));
    p += w;
    size -= (size_t)w;
  }
  return NULL;
}

fy_status_t fy_file_write_atomic(const char *path, fy_file_writer_fn write_fn, void *ctx) {
  size_t n = strlen(path) + 16;
  char *tmp = malloc(n);
  if (!tmp) return fy_status_make(FY_RESOURCE_EXHAUSTED, "%s: out of memory", path);
  snprintf(tmp, n, "%s.tmpXXXXXX", path);
  int fd = mkstemp(tmp);
  if (fd < 0) {
    fy_status_t s = fy_status_make(FY_UNAVAILABLE, "%s: cannot create: %s", path, strerror(errno));
    free(tmp);
    return s;
  }
  fy_status_t s = write_fn(ctx, fd);
  if (!s && fchmod(fd, 0644) != 0) s = fy_status_make(FY_UNAVAILABLE, "%s: chmod failed", path);
  if (!s && fsync(fd) != 0) s = fy_status_make(FY_UNAVAILABLE, "%s: fsync failed: %s", path, strerror(errno));
  if (close(fd) != 0 && !s) s = fy_status_make(FY_UNAVAILABLE, "%s: close failed", path);
  if (!s && rename(tmp, path) != 0)
    s = fy_status_make(FY_UNAVAILABLE, "%s: rename failed: %s", path, strerror(errno));
  if (s) unlink(tmp);
  free(tmp);
  return s;
}

typedef struct {
  const void *data;
  size_t size;
  const char *path;
} bytes_ctx_t;

static fy_status_t write_bytes(void *ctx, int fd) {
  bytes_ctx_t *b = ctx;
  return fy_fd_write_all(fd, b->data, b->size, b->path);
}

fy_status_t fy_file_write_atomic_bytes(const char *path, const void *data, size_t size) {
  bytes_ctx_t ctx = {data, size, path};
  return fy_file_write_atomic(path, write_bytes, &ctx);
}

fy_status_t fy_mkdir_p(const char *path) {
  char buf[4096];
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof buf) return fy_status_make(FY_INVALID_ARGUMENT, "%s: bad folder path", path);
  memcpy(buf, path, n + 1);
  for (size_t i = 1; i <= n; i++) {
    if (buf[i] == '/' || buf[i] == 0) {
      char c = buf[i];
      buf[i] = 0;
      if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return fy_status_make(FY_UNAVAILABLE, "%s: cannot create folder: %s", buf, strerror(errno));
      buf[i] = c;
    }
  }
  return NULL;
}
