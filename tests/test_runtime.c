/* The runtime replays schedules exactly, on synthetic models:
 *   (a) bit-exact: for every policy, prefetch depths 0..3 and randomized
 *       budgets from the smallest accepted to everything-fits, with device
 *       memory poisoned, prefill + decode steps give the reference
 *       interpreter's tokens' logits bit for bit (memcmp); also through a plan
 *       file, and once on the small preset;
 *   (b) the check has teeth: a schedule missing one wait, or evicting a slot
 *       before its last reader, run poisoned with a slow bus, gives other logits;
 *   (c) refusals: weight files of another size or header, truncated or
 *       missing, a corrupted plan file, a plan for another code target;
 *   (d) 1000 opens and closes do not grow the process (RSS flat);
 *   plus the trace, statistics and memory figures. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "codegen/reference.h"
#include "ferry.h"
#include "frontend/frontend.h"
#include "frontend/synth.h"
#include "passes/compile.h"
#include "runtime/runtime.h"
#include "schedules/plan.h"
#include "schedules/schedule.h"
#include "support/file.h"
#include "tests/check.h"
#include "tests/compiled.h"
#include "tests/workload.h"


/* The error's message contains every needle (and the status is freed). */
static bool fails_with(fy_status_t s, const char *needle1, const char *needle2) {
  bool good = s && strstr(fy_status_message(s), needle1) && (!needle2 || strstr(fy_status_message(s), needle2));
  if (!good) fprintf(stderr, "  got: %s\n", s ? fy_status_message(s) : "success");
  fy_status_free(s);
  return good;
}

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint64_t next(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return rng;
}

static const char *tmp;

/* The workload: tests/workload.h. */

typedef struct {
  char dir[1024];
  fy_graph_t *g;
  float *expected; /* ROWS x vocab from the reference */
  float *got;
} model_t;

static bool model_open(model_t *m, const char *preset, uint64_t seed, fy_dtype_t dtype) {
  memset(m, 0, sizeof *m);
  snprintf(m->dir, sizeof m->dir, "%s/%s-%llu-%s", tmp, preset, (unsigned long long)seed, fy_dtype_name(dtype));
  fy_synth_options_t so = {.preset = preset, .seed = seed, .dtype = dtype};
  if (!ok(fy_synth_write(m->dir, &so), "synth")) return false;
  fy_load_options_t lo = {.prefill_tokens = PROMPT, .generate = DECODE, .context = PROMPT + DECODE};
  if (!ok(fy_model_load(m->dir, &lo, &m->g), "load")) return false;
  size_t n = (size_t)ROWS * (size_t)m->g->config.vocab;
  m->expected = calloc(n, sizeof(float));
  m->got = calloc(n, sizeof(float));
  fy_reference_t *ref = NULL;
  bool good = m->expected && m->got && ok(fy_reference_create(m->g, 2, &ref), "reference") &&
              ok(run_workload(&by_reference, ref, m->g->config.vocab, m->expected), "reference run");
  fy_reference_destroy(ref);
  for (size_t i = 0; good && i < n; i++) good = isfinite(m->expected[i]);
  CHECK(good, "%s: the reference gives finite logits", preset);
  return good;
}

static void model_close(model_t *m) {
  fy_graph_destroy(m->g);
  free(m->expected);
  free(m->got);
}

static bool same_logits(const model_t *m) {
  return !memcmp(m->expected, m->got, sizeof(float) * (size_t)ROWS * (size_t)m->g->config.vocab);
}

/* ---- compiling in memory ---- */

static fy_status_t compile(const fy_graph_t *g, fy_policy_t policy, int prefetch, uint64_t budget, compiled_t *out) {
  return compile_for(g, "spirv", policy, prefetch, budget, out);
}

/* The budgets a policy accepts, scanned from full/32 to 1.5 x full in steps
 * of full/32 (a scan, not a bisection: a policy may refuse a budget between
 * two it accepts). Returns how many, at most 48. */
static int accepted_budgets(const fy_graph_t *g, fy_policy_t policy, int prefetch, uint64_t full, uint64_t *out) {
  int n = 0;
  for (int i = 1; i <= 48; i++) {
    uint64_t budget = full / 32 * (uint64_t)i;
    compiled_t x;
    fy_status_t s = compile(g, policy, prefetch, budget, &x);
    if (s) {
      fy_status_free(s);
      continue;
    }
    compiled_free(&x);
    out[n++] = budget;
  }
  return n;
}

/* The smallest budget the policy accepts: everything streams that can. */
static uint64_t min_budget(const fy_graph_t *g, fy_policy_t policy, int prefetch, uint64_t full) {
  uint64_t budgets[48];
  return accepted_budgets(g, policy, prefetch, full, budgets) ? budgets[0] : full;
}

static uint64_t copies_after_load(const fy_schedule_t *s) {
  uint64_t n = 0;
  for (int i = 1; i < s->n_stages; i++)
    for (int k = 0; k < s->stages[i].n_cmds[FY_QUEUE_COPY]; k++) n += s->stages[i].cmds[FY_QUEUE_COPY][k].kind == FY_CMD_COPY;
  return n;
}

/* Opens a runtime on the schedule, runs the workload into m->got. */
static fy_status_t replay(model_t *m, const fy_schedule_t *s, const fy_rt_options_t *o) {
  fy_rt_t *rt;
  FY_TRY(fy_rt_open_schedule(m->g, s, o, &rt));
  memset(m->got, 0, sizeof(float) * (size_t)ROWS * (size_t)m->g->config.vocab);
  fy_status_t st = run_workload(&by_runtime, rt, m->g->config.vocab, m->got);
  fy_rt_close(rt);
  return st;
}

/* ---- (a) bit-exact ---- */

/* Device bytes of the schedule where everything fits. */
static uint64_t full_budget(const model_t *m) {
  compiled_t all;
  if (!ok(compile(m->g, FY_POLICY_FERRY, -1, 0, &all), "compile everything-fits")) return 0;
  uint64_t full = all.s->device_bytes;
  CHECK(copies_after_load(all.s) == 0, "everything fits: nothing streams");
  compiled_free(&all);
  return full;
}

static void test_bit_exact(model_t *m, uint64_t full) {
  int runs = 0, streamed = 0;
  for (int p = 0; p < FY_POLICY_COUNT; p++) {
    for (int prefetch = 0; prefetch <= 3; prefetch++) {
      uint64_t accepted[48];
      int n = accepted_budgets(m->g, (fy_policy_t)p, prefetch, full, accepted);
      CHECK(n > 0, "%s prefetch %d accepts some budget", fy_policy_name((fy_policy_t)p), prefetch);
      if (n == 0) continue;
      uint64_t lo = accepted[0];
      uint64_t budgets[4] = {lo, accepted[next() % (uint64_t)(n + 1) / 2], accepted[next() % (uint64_t)n],
                             accepted[n - 1]};
      for (int b = 0; b < 4; b++) {
        compiled_t x;
        fy_status_t s = compile(m->g, (fy_policy_t)p, prefetch, budgets[b], &x);
        if (!ok(s, fy_policy_name((fy_policy_t)p))) continue;
        CHECK(!fy_schedule_check(x.s), "the compiled schedule passes its check");
        double gbps[3] = {0, 0.05, 0.5};
        fy_rt_options_t o = {.poison = true, .n_threads = 1 + (int)(next() % 2), .emulate_h2d_gbps = gbps[next() % 3]};
        s = replay(m, x.s, &o);
        char what[160];
        snprintf(what, sizeof what, "%s prefetch %d budget %llu (min %llu, full %llu)", fy_policy_name((fy_policy_t)p),
                 prefetch, (unsigned long long)budgets[b], (unsigned long long)lo, (unsigned long long)full);
        if (ok(s, what)) CHECK(same_logits(m), "%s: logits differ from the reference", what);
        runs++;
        streamed += copies_after_load(x.s) > 0;
        compiled_free(&x);
      }
    }
  }
  CHECK(runs >= 70 && streamed >= 25, "%d runs, %d of them streaming", runs, streamed);
  printf("bit-exact: %d runs (%d streaming), every policy, prefetch 0..3, poisoned\n", runs, streamed);
}

/* ---- (b) mutated schedules give other logits ---- */

static fy_stage_schedule_t *stage_named(fy_schedule_t *s, const char *name) {
  for (int i = 0; i < s->n_stages; i++)
    if (!strcmp(s->stages[i].name, name)) return &s->stages[i];
  return NULL;
}

static bool reads_slot(const fy_schedule_t *s, const fy_cmd_t *c) {
  const fy_region_t *r = &s->regions[FY_REGION_SLOTS];
  const fy_node_t *n = &s->graph->nodes[c->node];
  for (int k = 0; k < n->n_inputs; k++)
    if (c->args[k].kind == FY_LOC_DEVICE && c->args[k].offset >= r->offset && c->args[k].offset - r->offset < r->bytes)
      return true;
  return false;
}

/* Drops the compute WAIT right before the first launch of the stage's second streamed group. */
static bool drop_wait(fy_schedule_t *s, const char *stage) {
  fy_stage_schedule_t *st = stage_named(s, stage);
  fy_cmd_t *c = st->cmds[FY_QUEUE_COMPUTE];
  int seen = 0;
  for (int i = 0; i + 1 < st->n_cmds[FY_QUEUE_COMPUTE]; i++) {
    if (c[i].kind != FY_CMD_WAIT || c[i + 1].kind != FY_CMD_LAUNCH || !reads_slot(s, &c[i + 1]) || seen++ < 1) continue;
    memmove(&c[i], &c[i + 1], sizeof *c * (size_t)(st->n_cmds[FY_QUEUE_COMPUTE] - i - 1));
    st->n_cmds[FY_QUEUE_COMPUTE]--;
    return true;
  }
  return false;
}

/* Moves the stage's first EVICT to right after the first launch of its group. */
static bool evict_early(fy_schedule_t *s, const char *stage) {
  fy_stage_schedule_t *st = stage_named(s, stage);
  fy_cmd_t *c = st->cmds[FY_QUEUE_COMPUTE];
  for (int e = 0; e < st->n_cmds[FY_QUEUE_COMPUTE]; e++) {
    if (c[e].kind != FY_CMD_EVICT) continue;
    for (int f = 0; f < e; f++) {
      if (c[f].kind != FY_CMD_LAUNCH || c[f].group != c[e].group) continue;
      if (f + 1 == e) break; /* a group read by one launch only: try the next eviction */
      fy_cmd_t evict = c[e];
      memmove(&c[f + 2], &c[f + 1], sizeof *c * (size_t)(e - f - 1));
      c[f + 1] = evict;
      return true;
    }
  }
  return false;
}

static void test_teeth(model_t *m, uint64_t full) {
  uint64_t budget = min_budget(m->g, FY_POLICY_PREFETCH1, 1, full);
  for (int mutation = 0; mutation < 2; mutation++) {
    for (int q = 0; q < 2; q++) {
      const char *stage = q ? "decode" : "prefill";
      compiled_t x;
      if (!ok(compile(m->g, FY_POLICY_PREFETCH1, 1, budget, &x), "compile prefetch1")) return;
      bool mutated = mutation ? evict_early(x.s, stage) : drop_wait(x.s, stage);
      CHECK(mutated, "%s: the mutation applies", stage);
      fy_status_t chk = fy_schedule_check(x.s);
      CHECK(chk != NULL, "%s: the checker rejects the mutated schedule", stage);
      fy_status_free(chk);
      /* A slow bus: a copy takes milliseconds, so a launch without its wait comes first. */
      fy_rt_options_t o = {.poison = true, .n_threads = 1, .emulate_h2d_gbps = 0.01};
      if (ok(replay(m, x.s, &o), "mutated run"))
        CHECK(!same_logits(m), "%s without %s: logits still equal the reference (the test has no teeth)", stage,
              mutation ? "its eviction in place" : "one wait");
      compiled_free(&x);
    }
  }
  printf("teeth: a dropped wait and an early eviction each change the logits (prefill and decode)\n");
}

/* ---- (c) refusals, and the plan file door ---- */

static fy_status_t write_plan(const model_t *m, const fy_schedule_t *s, const char *path) {
  fy_file_fingerprint_t prints[8] = {{0}};
  for (int f = 0; f < m->g->n_files && f < 8; f++) FY_TRY(fy_fingerprint_file(m->g->files[f].path, &prints[f]));
  fy_plan_meta_t meta = {.compiler_version = "test", .file_fingerprints = prints};
  return fy_plan_write(path, s, &meta);
}

static fy_status_t copy_file(const char *from, const char *to, int64_t truncate_to, long flip_at) {
  fy_mapping_t map;
  FY_TRY(fy_file_map(from, &map));
  size_t n = truncate_to >= 0 && (size_t)truncate_to < map.size ? (size_t)truncate_to : map.size;
  uint8_t *bytes = malloc(n + 1);
  if (!bytes) {
    fy_file_unmap(&map);
    return fy_status_make(FY_RESOURCE_EXHAUSTED, "out of memory");
  }
  memcpy(bytes, map.data, n);
  if (flip_at >= 0 && (size_t)flip_at < n) bytes[flip_at] ^= 0x01;
  fy_file_unmap(&map);
  fy_status_t s = fy_file_write_atomic_bytes(to, bytes, n);
  free(bytes);
  return s;
}

static void test_plan_and_refusals(model_t *m, uint64_t full) {
  compiled_t x;
  if (!ok(compile(m->g, FY_POLICY_FERRY, 2, min_budget(m->g, FY_POLICY_FERRY, 2, full), &x), "compile")) return;
  char plan[1200], dir[1200], file[1300];
  snprintf(plan, sizeof plan, "%s/tiny.plan", tmp);
  if (!ok(write_plan(m, x.s, plan), "write plan")) return;

  /* The plan door gives the same bits. */
  fy_rt_t *rt = NULL;
  fy_rt_options_t o = {.poison = true, .n_threads = 2};
  if (ok(fy_rt_open(plan, &o, &rt), "open plan")) {
    memset(m->got, 0, sizeof(float) * (size_t)ROWS * (size_t)m->g->config.vocab);
    if (ok(run_workload(&by_runtime, rt, m->g->config.vocab, m->got), "run plan"))
      CHECK(same_logits(m), "through the plan file: logits differ from the reference");
    fy_rt_close(rt);
  }

  /* Weights of the same size with another header. */
  snprintf(dir, sizeof dir, "%s/other-header", tmp);
  snprintf(file, sizeof file, "%s/model.safetensors", dir);
  if (ok(fy_mkdir_p(dir), "mkdir") && ok(copy_file(m->g->files[0].path, file, -1, 20), "copy")) {
    fy_rt_options_t w = {.weights_dir = dir};
    CHECK(fails_with(fy_rt_open(plan, &w, &rt), file, "digest of its header and sampled data differs"),
          "another header is refused");
  }
  /* Another seed: the same header, other weights. */
  snprintf(dir, sizeof dir, "%s/other-seed", tmp);
  fy_synth_options_t seed = {.preset = "tiny", .seed = 12345, .dtype = m->g->config.dtype};
  if (ok(fy_synth_write(dir, &seed), "synth other seed")) {
    fy_rt_options_t w = {.weights_dir = dir};
    CHECK(fails_with(fy_rt_open(plan, &w, &rt), "model.safetensors", "digest of its header and sampled data differs"),
          "another seed's weights are refused");
  }
  /* A truncated weight file: through the plan, and in memory. */
  snprintf(dir, sizeof dir, "%s/truncated", tmp);
  snprintf(file, sizeof file, "%s/model.safetensors", dir);
  if (ok(fy_mkdir_p(dir), "mkdir") && ok(copy_file(m->g->files[0].path, file, 100000, -1), "copy")) {
    fy_rt_options_t w = {.weights_dir = dir};
    CHECK(fails_with(fy_rt_open(plan, &w, &rt), file, "size 100000 bytes vs"), "a truncated file is refused");
    CHECK(fails_with(fy_rt_open_schedule(m->g, x.s, &w, &rt), file, "size 100000 bytes vs"),
          "a truncated file is refused (in memory)");
  }
  /* Weights of another dtype: another size. */
  snprintf(dir, sizeof dir, "%s/tiny-7-f32", tmp);
  fy_synth_options_t so = {.preset = "tiny", .seed = 7, .dtype = FY_DTYPE_F32};
  if (ok(fy_synth_write(dir, &so), "synth f32")) {
    fy_rt_options_t w = {.weights_dir = dir};
    CHECK(fails_with(fy_rt_open(plan, &w, &rt), "model.safetensors: size", "vs"), "f32 weights are refused");
  }
  /* A folder without the file. */
  fy_rt_options_t nowhere = {.weights_dir = tmp};
  CHECK(fails_with(fy_rt_open(plan, &nowhere, &rt), tmp, "cannot open"), "a missing weight file is refused");

  /* Corrupted plan files. */
  char bad[1300];
  snprintf(bad, sizeof bad, "%s/truncated.plan", tmp);
  fy_mapping_t pm = {0};
  if (ok(fy_file_map(plan, &pm), "map plan")) {
    if (ok(copy_file(plan, bad, (int64_t)pm.size / 2, -1), "copy plan"))
      CHECK(fails_with(fy_rt_open(bad, NULL, &rt), bad, NULL), "a truncated plan is refused");
    if (ok(copy_file(plan, bad, -1, 5), "copy plan"))
      CHECK(fails_with(fy_rt_open(bad, NULL, &rt), bad, NULL), "a plan with a broken identifier is refused");
    fy_file_unmap(&pm);
  }

  /* A plan for a CUDA target: refused by the cpu backend unless forced. */
  snprintf(x.s->target.code_target, sizeof x.s->target.code_target, "sm_86");
  CHECK(fails_with(fy_rt_open_schedule(m->g, x.s, NULL, &rt), "sm_86", "force"), "a CUDA plan is refused");
  fy_rt_options_t force = {.force = true};
  if (ok(fy_rt_open_schedule(m->g, x.s, &force, &rt), "forced open")) fy_rt_close(rt);
  snprintf(x.s->target.code_target, sizeof x.s->target.code_target, "spirv");
  fy_rt_options_t nosuch = {.backend = "nosuch"};
  CHECK(fails_with(fy_rt_open_schedule(m->g, x.s, &nosuch, &rt), "nosuch", "available: cpu"), "an unknown backend");
  compiled_free(&x);
  printf("refusals: other header, other seed, truncated, other dtype, missing file, corrupted plans, CUDA target\n");
}

/* ---- statistics, memory, trace ---- */

static void test_stats_and_trace(model_t *m, uint64_t full) {
  compiled_t x;
  if (!ok(compile(m->g, FY_POLICY_PREFETCH1, 1, min_budget(m->g, FY_POLICY_PREFETCH1, 1, full), &x), "compile"))
    return;
  char path[1200];
  snprintf(path, sizeof path, "%s/run.trace.json", tmp);
  fy_rt_t *rt;
  fy_rt_options_t o = {.trace = true, .emulate_h2d_gbps = 1, .n_threads = 1};
  if (!ok(fy_rt_open_schedule(m->g, x.s, &o, &rt), "open")) return;
  if (ok(run_workload(&by_runtime, rt, m->g->config.vocab, m->got), "run")) CHECK(same_logits(m), "traced run");
  int decode = fy_rt_stage_find(rt, "decode");
  fy_rt_stage_stats_t st;
  if (ok(fy_rt_stage_stats(rt, decode, &st), "stats")) {
    CHECK(st.steps == DECODE && st.tokens == DECODE, "decode steps %lld", (long long)st.steps);
    CHECK(st.copied_bytes > 0 && st.copy_seconds > 0 && st.wall_seconds > 0 && st.compute_seconds > 0,
          "decode stats: %llu bytes, copy %g s, wall %g s", (unsigned long long)st.copied_bytes, st.copy_seconds,
          st.wall_seconds);
    CHECK(st.copy_steps == DECODE, "the copy queue stops at the stage's repeat: %lld steps", (long long)st.copy_steps);
  }
  fy_rt_memory_t mem;
  fy_rt_memory(rt, &mem);
  CHECK(mem.device_bytes == x.s->device_bytes, "device arena of exactly the plan's size");
  CHECK(mem.host_bytes >= mem.device_bytes + mem.staging_bytes &&
            mem.host_bytes <= mem.device_bytes + mem.staging_bytes + (1u << 20),
        "host bytes %llu: arena %llu + staging %llu + small", (unsigned long long)mem.host_bytes,
        (unsigned long long)mem.device_bytes, (unsigned long long)mem.staging_bytes);
  fy_status_t extra = fy_rt_decode(rt, 1, m->got);
  CHECK(extra && fy_status_code(extra) == FY_OUT_OF_RANGE, "a decode past the plan's steps is refused");
  fy_status_free(extra);
  if (ok(fy_rt_write_trace(rt, path), "write trace")) {
    char *text = NULL;
    size_t size;
    cJSON *root = NULL;
    if (ok(fy_file_read(path, &text, &size), "read trace")) root = cJSON_Parse(text);
    cJSON *events = cJSON_GetObjectItem(root, "traceEvents");
    int spans[2] = {0}, counters = 0, launches = 0;
    cJSON *e;
    cJSON_ArrayForEach(e, events) {
      const char *ph = cJSON_GetStringValue(cJSON_GetObjectItem(e, "ph"));
      cJSON *tid = cJSON_GetObjectItem(e, "tid");
      if (ph && !strcmp(ph, "X") && cJSON_IsNumber(tid) && tid->valueint >= 0 && tid->valueint < 2 &&
          cJSON_IsNumber(cJSON_GetObjectItem(e, "ts")) && cJSON_IsNumber(cJSON_GetObjectItem(e, "dur")))
        spans[tid->valueint]++, launches += strstr(cJSON_GetStringValue(cJSON_GetObjectItem(e, "name")), "layers") != 0;
      if (ph && !strcmp(ph, "C") && cJSON_GetObjectItem(cJSON_GetObjectItem(e, "args"), "slots")) counters++;
    }
    CHECK(root && spans[0] > 0 && spans[1] > 0 && counters > 0 && launches > 0,
          "trace: %d compute spans, %d copy spans, %d counters", spans[0], spans[1], counters);
    cJSON_Delete(root);
    free(text);
  }
  fy_rt_close(rt);
  compiled_free(&x);
}

/* ---- (d) open and close many times ---- */

static long resident_pages(void) {
  long size = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f) {
    if (fscanf(f, "%ld %ld", &size, &resident) != 2) resident = 0;
    fclose(f);
  }
  return resident;
}

static void test_open_close(model_t *m, uint64_t full) {
  compiled_t x;
  if (!ok(compile(m->g, FY_POLICY_PREFETCH1, 1, min_budget(m->g, FY_POLICY_PREFETCH1, 1, full), &x), "compile"))
    return;
  fy_rt_options_t o = {.n_threads = 1, .poison = true};
  long before = 0;
  int opened = 0;
  for (int i = 0; i < 1000; i++) {
    if (i == 100) before = resident_pages();
    fy_rt_t *rt;
    if (!ok(fy_rt_open_schedule(m->g, x.s, &o, &rt), "open")) break;
    if (i % 100 == 0) ok(fy_rt_prefill(rt, prompt, SHORT, m->got), "prefill"); /* leaves a run-ahead to cancel */
    fy_rt_close(rt);
    opened++;
  }
  long after = resident_pages(), page = sysconf(_SC_PAGESIZE);
  /* Token ids outside the vocabulary are refused before any backend sees them. */
  fy_rt_t *rt;
  if (ok(fy_rt_open_schedule(m->g, x.s, &o, &rt), "open")) {
    int32_t bad[2] = {1, (int32_t)m->g->config.vocab};
    CHECK(fails_with(fy_rt_prefill(rt, bad, 2, m->got), "prefill", "outside the vocabulary"), "a bad prompt id");
    if (ok(fy_rt_prefill(rt, prompt, SHORT, m->got), "prefill"))
      CHECK(fails_with(fy_rt_decode(rt, -1, m->got), "decode", "outside the vocabulary"), "a bad decode id");
    fy_rt_close(rt);
  }
  CHECK(opened == 1000, "opened %d times", opened);
#ifndef __SANITIZE_ADDRESS__ /* AddressSanitizer holds freed memory in quarantine; LeakSanitizer checks instead */
  CHECK((after - before) * page < (2l << 20), "RSS grew by %ld KiB over 900 opens", (after - before) * page / 1024);
#endif
  printf("open/close: 1000 times, RSS %+ld KiB over the last 900\n", (after - before) * page / 1024);
  compiled_free(&x);
}

/* ---- the small preset, once ---- */

static void test_small(void) {
  model_t m;
  if (!model_open(&m, "small", 3, FY_DTYPE_BF16)) {
    model_close(&m);
    return;
  }
  compiled_t all;
  if (ok(compile(m.g, FY_POLICY_FERRY, -1, 0, &all), "compile small")) {
    uint64_t half = all.s->device_bytes / 2 + (all.s->device_bytes >> 3);
    compiled_free(&all);
    compiled_t x;
    if (ok(compile(m.g, FY_POLICY_FERRY, -1, half, &x), "compile small at a budget that streams")) {
      CHECK(copies_after_load(x.s) > 0, "small: about half the layers stream");
      fy_rt_options_t o = {.poison = true, .n_threads = 2};
      if (ok(replay(&m, x.s, &o), "small")) CHECK(same_logits(&m), "small preset: logits differ from the reference");
      compiled_free(&x);
    }
  }
  printf("small preset: bit-exact under a budget that streams\n");
  model_close(&m);
}

int main(void) {
  tmp = getenv("FERRY_TMP");
  if (!tmp) tmp = "/tmp/ferry_test_runtime";
  if (!ok(fy_mkdir_p(tmp), "mkdir")) return 1;
  model_t m;
  if (model_open(&m, "tiny", 7, FY_DTYPE_BF16)) {
    uint64_t full = full_budget(&m);
    test_bit_exact(&m, full);
    test_teeth(&m, full);
    test_plan_and_refusals(&m, full);
    test_stats_and_trace(&m, full);
    test_open_close(&m, full);
  }
  model_close(&m);
  test_small();
  return check_summary();
}
