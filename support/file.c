/* Files (see file.h). */
#include "support/file.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* "a FIFO", "a directory", ...: what a path names that is not a regular file. */
static const char *file_kind(mode_t mode) {
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "a special file";
}

fy_status_t fy_file_open_read(const char *path, int *out_fd, uint64_t *out_size) {
  /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer. */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return fy_status_make(FY_UNAVAILABLE, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    return fy_status_make(FY_UNAVAILABLE, "%s: cannot stat: %s", path, strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return fy_status_make(FY_INVALID_ARGUMENT, "%s: is %s, not a regular file", path, file_kind(st.st_mode));
  }
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
    int err = errno;
    close(fd);
    return fy_status_make(FY_UNAVAILABLE, "%s: cannot set blocking reads: %s", path, strerror(err));
  }
  *out_fd = fd;
  if (out_size) *out_size = (uint64_t)st.st_size;
  return NULL;
}

fy_status_t fy_file_map(const char *path, fy_mapping_t *out_mapping) {
  int fd;
  uint64_t size;
  FY_TRY(fy_file_open_read(path, &fd, &size));
  if (size > SIZE_MAX) {
    close(fd);
    return fy_status_make(FY_RESOURCE_EXHAUSTED, "%s: %llu bytes do not fit in the address space", path,
                          (unsigned long long)size);
  }
  fy_mapping_t m = {NULL, (size_t)size};
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

static fy_status_t too_large(const char *path, uint64_t size, bool at_least, size_t max_bytes) {
  return fy_status_make(FY_OUT_OF_RANGE, "%s: %s%llu bytes, larger than the %llu-byte limit for this file", path,
                        at_least ? "more than " : "", (unsigned long long)size, (unsigned long long)max_bytes);
}

fy_status_t fy_file_read_max(const char *path, size_t max_bytes, char **out_data, size_t *out_size) {
  int fd;
  uint64_t size;
  FY_TRY(fy_file_open_read(path, &fd, &size));
  if (size > max_bytes) {
    close(fd);
    return too_large(path, size, false, max_bytes);
  }
  /* The size is a hint: a file may grow while it is read, and some (in /proc) report 0. */
  size_t cap = (size_t)size + 1 > 4096 ? (size_t)size + 1 : 4096, n = 0;
  char *buf = malloc(cap);
  fy_status_t s = buf ? NULL : fy_status_make(FY_RESOURCE_EXHAUSTED, "%s: out of memory reading", path);
  while (!s) {
    if (n == cap - 1) {
      if (n >= max_bytes + 1) {
        s = too_large(path, max_bytes, true, max_bytes);
        break;
      }
      size_t bigger_cap = cap * 2 > max_bytes + 2 ? max_bytes + 2 : cap * 2;
      char *bigger = realloc(buf, bigger_cap);
      if (!bigger) {
        s = fy_status_make(FY_RESOURCE_EXHAUSTED, "%s: out of memory reading", path);
        break;
      }
      buf = bigger;
      cap = bigger_cap;
    }
    ssize_t r = read(fd, buf + n, cap - 1 - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) s = fy_status_make(FY_UNAVAILABLE, "%s: read error: %s", path, strerror(errno));
    if (r <= 0) break;
    n += (size_t)r;
  }
  close(fd);
  if (!s && n > max_bytes) s = too_large(path, max_bytes, true, max_bytes);
  if (s) {
    free(buf);
    return s;
  }
  buf[n] = 0;
  *out_data = buf;
  if (out_size) *out_size = n;
  return NULL;
}

fy_status_t fy_file_read(const char *path, char **out_data, size_t *out_size) {
  return fy_file_read_max(path, FY_FILE_READ_DEFAULT_MAX, out_data, out_size);
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
