/* Opens a library that keeps memory in its globals, then closes it, as the
 * Vulkan loader does with its drivers. Under LeakSanitizer this exits clean
 * only while libraries stay loaded until exit (keep_loaded.c). */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    fprintf(stderr, "dlopen %s: %s\n", argv[1], dlerror());
    return 1;
  }
  int (*init)(void) = (int (*)(void))dlsym(lib, "fy_kept_plugin_init");
  if (!init || !init()) return 1;
  dlclose(lib);
  printf("opened and closed %s\n", argv[1]);
  return 0;
}
