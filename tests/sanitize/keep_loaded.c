/* Linked into every executable of the sanitizer build (FERRY_SANITIZE) only.
 *
 * Why: LeakSanitizer scans the data segments of loaded libraries for pointers
 * at exit. The Vulkan loader dlclose's the ICDs and layers it opened (Mesa's
 * intel, intel_hasvk, radeon, lavapipe; the validation layer) when an
 * instance is destroyed, so memory they still reach from their globals looks
 * leaked "from <unknown module>": false positives that depend on which
 * drivers a machine has installed. Keeping every library loaded until exit
 * (this dlclose does not unload) removes them without a suppression, so
 * ferry's own allocations stay leak-checked — test_sanitize_leak proves a real
 * leak is still reported. The symbol is exported from the executable
 * (--export-dynamic-symbol) so the loader's own calls land here too. */
int dlclose(void *handle);

int dlclose(void *handle) {
  (void)handle;
  return 0;
}
