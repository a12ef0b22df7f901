/* Compilation of a graph's kernels (spirv.h): a kernel's code depends only
 * on its node's signature (codegen/kernel_name.h), so nodes with one kernel
 * name share one module. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/kernel_name.h"
#include "codegen/spirv_asm.h"

static fy_status_t name_of(const fy_graph_t *g, int node, char name[FY_KERNEL_NAME_MAX]) {
  size_t len = fy_kernel_name(g, node, name, FY_KERNEL_NAME_MAX);
  if (len == 0 || len >= FY_KERNEL_NAME_MAX)
    return fy_status_make(FY_INVALID_ARGUMENT, "spirv: node %d has no kernel name", node);
  return NULL;
}

static fy_status_t compile_node(const fy_graph_t *g, int node, fy_spirv_kernel_t *out_kernel, char **out_text) {
  char name[FY_KERNEL_NAME_MAX];
  FY_TRY(name_of(g, node, name));
  fy_spv_t b;
  FY_TRY(fy_spirv_emit_node(g, node, &b));
  return fy_spv_finish(&b, name, out_kernel, out_text);
}

fy_status_t fy_spirv_compile_node(const fy_graph_t *g, int node, fy_spirv_kernel_t *out_kernel) {
  return compile_node(g, node, out_kernel, NULL);
}

fy_status_t fy_spirv_node_source(const fy_graph_t *g, int node, char **out_text) {
  fy_spirv_kernel_t k;
  FY_TRY(compile_node(g, node, &k, out_text));
  fy_spirv_kernel_free(&k);
  return NULL;
}

int fy_spirv_program_find(const fy_spirv_program_t *p, const char *name) {
  for (int i = 0; p && name && i < p->n_kernels; i++)
    if (!strcmp(p->kernels[i].name, name)) return i;
  return -1;
}

void fy_spirv_program_destroy(fy_spirv_program_t *p) {
  if (!p) return;
  for (int i = 0; i < p->n_kernels; i++) fy_spirv_kernel_free(&p->kernels[i]);
  free(p->kernels);
  free(p->node_kernel);
  free(p);
}

static fy_status_t compile_graph(const fy_graph_t *g, fy_spirv_program_t *p) {
  p->kernels = calloc((size_t)g->n_nodes + 1, sizeof *p->kernels);
  p->node_kernel = calloc((size_t)g->n_nodes + 1, sizeof *p->node_kernel);
  if (!p->kernels || !p->node_kernel) return fy_status_make(FY_RESOURCE_EXHAUSTED, "spirv: out of memory");
  for (int i = 0; i < g->n_nodes; i++) {
    char name[FY_KERNEL_NAME_MAX];
    FY_TRY(name_of(g, i, name));
    int k = fy_spirv_program_find(p, name);
    if (k < 0) {
      FY_TRY(fy_spirv_compile_node(g, i, &p->kernels[p->n_kernels]));
      k = p->n_kernels++;
    }
    p->node_kernel[i] = k;
  }
  return NULL;
}

fy_status_t fy_spirv_compile_graph(const fy_graph_t *g, fy_spirv_program_t **out_program) {
  if (!g) return fy_status_make(FY_INVALID_ARGUMENT, "spirv: no graph");
  fy_spirv_program_t *p = calloc(1, sizeof *p);
  if (!p) return fy_status_make(FY_RESOURCE_EXHAUSTED, "spirv: out of memory");
  fy_status_t s = compile_graph(g, p);
  if (s) {
    fy_spirv_program_destroy(p);
    return s;
  }
  *out_program = p;
  return NULL;
}

/* ---- the plan's kernel table ---- */

void fy_spirv_packed_free(fy_spirv_packed_t *k) {
  if (!k) return;
  for (int i = 0; k->entries && i < k->n_entries; i++) free(k->entries[i]);
  free(k->entries);
  free(k->code);
  memset(k, 0, sizeof *k);
}

static void put_word(uint8_t *p, size_t *at, uint32_t w) {
  memcpy(p + *at, &w, 4); /* plans are little-endian, as is every host ferry builds on */
  *at += 4;
}

fy_status_t fy_spirv_pack(const fy_spirv_program_t *p, fy_spirv_packed_t *out) {
  memset(out, 0, sizeof *out);
  size_t words = 2 + (size_t)p->n_kernels;
  for (int i = 0; i < p->n_kernels; i++) words += p->kernels[i].n_words;
  out->code = malloc(words * 4);
  out->entries = calloc((size_t)p->n_kernels + 1, sizeof *out->entries);
  if (!out->code || !out->entries) {
    fy_spirv_packed_free(out);
    return fy_status_make(FY_RESOURCE_EXHAUSTED, "spirv: out of memory packing kernels");
  }
  size_t at = 0;
  put_word(out->code, &at, FY_SPIRV_PACK_MAGIC);
  put_word(out->code, &at, (uint32_t)p->n_kernels);
  for (int i = 0; i < p->n_kernels; i++) put_word(out->code, &at, (uint32_t)p->kernels[i].n_words);
  for (int i = 0; i < p->n_kernels; i++) {
    memcpy(out->code + at, p->kernels[i].code, p->kernels[i].n_words * 4);
    at += p->kernels[i].n_words * 4;
    if (!(out->entries[i] = strdup(p->kernels[i].name))) {
      fy_spirv_packed_free(out);
      return fy_status_make(FY_RESOURCE_EXHAUSTED, "spirv: out of memory packing kernels");
    }
    out->n_entries = i + 1;
  }
  out->code_size = at;
  return NULL;
}

/* Whether the module's one OpEntryPoint is a GLCompute entry named name. */
static bool entry_point_is(const uint32_t *code, size_t n_words, const char *name) {
  int found = 0;
  bool match = false;
  for (size_t at = 5; at < n_words;) {
    uint32_t count = code[at] >> 16, opcode = code[at] & 0xffffu;
    if (count == 0 || count > n_words - at) return false;
    if (opcode == 15 /* OpEntryPoint */ && count >= 4) {
      found++;
      const char *s = (const char *)&code[at + 3];
      size_t room = (count - 3) * 4;
      match = code[at + 1] == 5 /* GLCompute */ && strnlen(s, room) < room && !strcmp(s, name);
    }
    at += count;
  }
  return found == 1 && match;
}

static fy_status_t unpack(const fy_graph_t *g, const uint8_t *code, size_t size, const char *const *entries, int n,
                          fy_spirv_program_t *p) {
  uint32_t head[2];
  if (size < 8 || size % 4) return fy_status_make(FY_INVALID_ARGUMENT, "%zu bytes is not a packed table", size);
  memcpy(head, code, 8);
  if (head[0] != FY_SPIRV_PACK_MAGIC || head[1] != (uint32_t)n || n < 0 || (size_t)n > size / 4 - 2)
    return fy_status_make(FY_INVALID_ARGUMENT, "bad magic or a count other than the %d entries", n);
  p->kernels = calloc((size_t)n + 1, sizeof *p->kernels);
  p->node_kernel = calloc((size_t)g->n_nodes + 1, sizeof *p->node_kernel);
  if (!p->kernels || !p->node_kernel) return fy_status_make(FY_RESOURCE_EXHAUSTED, "out of memory");
  size_t at = 8 + 4 * (size_t)n;
  for (int i = 0; i < n; i++) {
    uint32_t words;
    memcpy(&words, code + 8 + 4 * (size_t)i, 4);
    if (words > (size - at) / 4) return fy_status_make(FY_INVALID_ARGUMENT, "module %d is past the end", i);
    if (!entries || !entries[i] || strnlen(entries[i], FY_KERNEL_NAME_MAX) >= FY_KERNEL_NAME_MAX)
      return fy_status_make(FY_INVALID_ARGUMENT, "module %d has no entry name", i);
    fy_spirv_kernel_t *k = &p->kernels[i];
    k->name = strdup(entries[i]);
    k->code = malloc((size_t)words * 4 + 4);
    k->n_words = words;
    k->local_size[0] = FY_SPIRV_LOCAL_SIZE, k->local_size[1] = k->local_size[2] = 1;
    p->n_kernels = i + 1;
    if (!k->name || !k->code) return fy_status_make(FY_RESOURCE_EXHAUSTED, "out of memory");
    memcpy(k->code, code + at, (size_t)words * 4);
    at += (size_t)words * 4;
    FY_TRY(fy_status_annotate(fy_spirv_validate(k->code, k->n_words), "module %d (%s)", i, k->name));
    if (!entry_point_is(k->code, k->n_words, k->name))
      return fy_status_make(FY_INVALID_ARGUMENT, "module %d has no single GLCompute entry point %s", i, k->name);
  }
  if (at != size) return fy_status_make(FY_INVALID_ARGUMENT, "%zu bytes after the last module", size - at);
  for (int i = 0; i < g->n_nodes; i++) {
    char name[FY_KERNEL_NAME_MAX];
    FY_TRY(name_of(g, i, name));
    if ((p->node_kernel[i] = fy_spirv_program_find(p, name)) < 0)
      return fy_status_make(FY_INCOMPATIBLE, "no kernel %s for node %s", name, g->nodes[i].name);
  }
  return NULL;
}

fy_status_t fy_spirv_unpack(const fy_graph_t *g, const uint8_t *code, size_t code_size, const char *const *entries,
                            int n_entries, fy_spirv_program_t **out_program) {
  fy_spirv_program_t *p = calloc(1, sizeof *p);
  if (!p) return fy_status_make(FY_RESOURCE_EXHAUSTED, "spirv: out of memory");
  fy_status_t s = unpack(g, code, code_size, entries, n_entries, p);
  if (s) {
    fy_spirv_program_destroy(p);
    return fy_status_annotate(s, "spirv kernels (%s %s)", FY_SPIRV_FORMAT, FY_SPIRV_ARCHITECTURE);
  }
  *out_program = p;
  return NULL;
}
