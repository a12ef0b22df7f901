/* support/file.c on bad inputs, each made here:
 *  - a FIFO, a folder or a device given as an input is refused by name
 *    without blocking (fy_file_open_read, fy_file_read, fy_file_map);
 *  - fy_file_read_max refuses a file over its limit, naming path and limit. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support/file.h"
#include "tests/check.h"

static char dir[2048];

static const char *in_dir(const char *name) {
  static char paths[8][4096];
  static int next;
  char *p = paths[next++ % 8];
  snprintf(p, 4096, "%s/%s", dir, name);
  return p;
}

/* True when s failed and its message holds every one of the (up to two) texts. */
static bool fails_with(fy_status_t s, const char *a, const char *b) {
  bool holds = s && strstr(fy_status_message(s), a) && (!b || strstr(fy_status_message(s), b));
  if (!holds) fprintf(stderr, "  got: %s\n", fy_status_message(s));
  fy_status_free(s);
  return holds;
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (f) fputs(text, f), fclose(f);
}

static void test_special_inputs(void) {
  const char *fifo = in_dir("config.json");
  unlink(fifo);
  CHECK(mkfifo(fifo, 0644) == 0, "mkfifo");
  char *text = NULL;
  fy_mapping_t m;
  int fd;
  /* Each would wait for a writer forever without O_NONBLOCK. */
  CHECK(fails_with(fy_file_read(fifo, &text, NULL), fifo, "is a FIFO, not a regular file"), "read of a FIFO");
  CHECK(fails_with(fy_file_map(fifo, &m), fifo, "is a FIFO, not a regular file"), "map of a FIFO");
  CHECK(fails_with(fy_file_open_read(fifo, &fd, NULL), fifo, "is a FIFO"), "open of a FIFO");
  CHECK(fails_with(fy_file_read(dir, &text, NULL), dir, "is a directory"), "read of a folder");
  CHECK(fails_with(fy_file_map("/dev/zero", &m), "/dev/zero", "is a character device"), "map of /dev/zero");
  /* /dev/zero would grow the buffer without end. */
  CHECK(fails_with(fy_file_read("/dev/zero", &text, NULL), "/dev/zero", "is a character device"), "read of /dev/zero");
  CHECK(fails_with(fy_file_read(in_dir("missing.json"), &text, NULL), "missing.json", "cannot open"), "missing");
  unlink(fifo);
}

static void test_read_limit(void) {
  const char *path = in_dir("big.json");
  write_text(path, "0123456789abcdef");
  char *text = NULL;
  size_t size = 0;
  CHECK(fails_with(fy_file_read_max(path, 15, &text, &size), path, "16 bytes, larger than the 15-byte limit"),
        "a file over the limit is refused");
  if (ok(fy_file_read_max(path, 16, &text, &size), "a file at the limit")) {
    CHECK(size == 16 && !strcmp(text, "0123456789abcdef"));
    free(text);
  }
  /* The default limit of fy_file_read: a sparse file one byte over 64 MiB. */
  int fd = open(path, O_WRONLY | O_TRUNC);
  CHECK(fd >= 0 && ftruncate(fd, (off_t)FY_FILE_READ_DEFAULT_MAX + 1) == 0, "truncate");
  if (fd >= 0) close(fd);
  CHECK(fails_with(fy_file_read(path, &text, &size), path, "larger than the 67108864-byte limit"),
        "fy_file_read caps config-sized reads at 64 MiB");
  unlink(path);
}

int main(void) {
  const char *tmp = getenv("FERRY_TMP");
  snprintf(dir, sizeof dir, "%s", tmp ? tmp : "/tmp/ferry_test_files");
  if (!ok(fy_mkdir_p(dir), "temp folder")) return 1;
  test_special_inputs();
  test_read_limit();
  return check_summary();
}
