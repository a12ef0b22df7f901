/* FlatBuffers builder, verifier and readers (see flatbuf.h). Every read of
 * the buffer goes through rd_*: byte by byte, little-endian, so neither the
 * host's byte order nor the buffer's alignment in memory matters. */
#include "schedules/flatbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint16_t rd_u16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd_u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd_u64(const uint8_t *p) { return (uint64_t)rd_u32(p) | (uint64_t)rd_u32(p + 4) << 32; }

/* ---- builder ---------------------------------------------------------- */

void fy_fb_builder_init(fy_fb_builder_t *b) {
  memset(b, 0, sizeof *b);
  b->min_align = 1;
}

void fy_fb_builder_free(fy_fb_builder_t *b) {
  free(b->buf);
  free(b->vtables);
  fy_status_free(b->error);
  fy_fb_builder_init(b);
}

static void fail(fy_fb_builder_t *b, fy_code_t code, const char *what) {
  if (!b->error) b->error = fy_status_make(code, "flatbuffer builder: %s", what);
}

/* Makes room for n more bytes in front of what is written. */
static bool reserve(fy_fb_builder_t *b, size_t n) {
  if (b->error) return false;
  if (n > FY_FB_MAX_SIZE - b->used) {
    fail(b, FY_RESOURCE_EXHAUSTED, "buffer would pass 2 GiB");
    return false;
  }
  if (b->cap - b->used >= n) return true;
  size_t cap = b->cap ? b->cap : 1024;
  while (cap - b->used < n) cap *= 2;
  uint8_t *p = malloc(cap);
  if (!p) {
    fail(b, FY_RESOURCE_EXHAUSTED, "out of memory");
    return false;
  }
  if (b->used) memcpy(p + cap - b->used, b->buf + b->cap - b->used, b->used);
  free(b->buf);
  b->buf = p;
  b->cap = cap;
  return true;
}

static void push_bytes(fy_fb_builder_t *b, const void *data, size_t n) {
  if (n == 0 || !reserve(b, n)) return;
  b->used += n;
  memcpy(b->buf + b->cap - b->used, data, n);
}

static void push_le(fy_fb_builder_t *b, uint64_t v, size_t width) {
  uint8_t bytes[8];
  for (size_t i = 0; i < width; i++) bytes[i] = (uint8_t)(v >> (8 * i));
  push_bytes(b, bytes, width);
}

/* Pads so that after `additional` more bytes the written length is a multiple of align. */
static void prep(fy_fb_builder_t *b, size_t align, size_t additional) {
  if (align > b->min_align) b->min_align = align;
  size_t pad = (~(b->used + additional) + 1) & (align - 1);
  static const uint8_t zeros[8];
  push_bytes(b, zeros, pad);
}

static void push_uoffset(fy_fb_builder_t *b, fy_fb_ref_t ref) {
  prep(b, 4, 0);
  if (b->error) return;
  if (ref == 0 || ref > b->used) {
    fail(b, FY_INTERNAL, "offset to an object not yet built");
    return;
  }
  push_le(b, b->used + 4 - ref, 4);
}

static fy_fb_ref_t ref_here(const fy_fb_builder_t *b) { return b->error ? 0 : (fy_fb_ref_t)b->used; }

fy_fb_ref_t fy_fb_string_n(fy_fb_builder_t *b, const char *s, size_t n) {
  if (b->in_table) fail(b, FY_INTERNAL, "string built inside a table");
  if (n >= FY_FB_MAX_SIZE) fail(b, FY_RESOURCE_EXHAUSTED, "string too long");
  if (b->error) return 0;
  prep(b, 4, n + 1);
  push_le(b, 0, 1);
  push_bytes(b, s, n);
  push_le(b, n, 4);
  return ref_here(b);
}

fy_fb_ref_t fy_fb_string(fy_fb_builder_t *b, const char *s) { return s ? fy_fb_string_n(b, s, strlen(s)) : 0; }

fy_fb_ref_t fy_fb_vector(fy_fb_builder_t *b, const void *items, size_t count, size_t elem_size) {
  if (b->in_table) fail(b, FY_INTERNAL, "vector built inside a table");
  if (elem_size != 1 && elem_size != 2 && elem_size != 4 && elem_size != 8) fail(b, FY_INTERNAL, "element size");
  if (count > FY_FB_MAX_SIZE / 8) fail(b, FY_RESOURCE_EXHAUSTED, "vector too long");
  if (b->error) return 0;
  prep(b, 4, count * elem_size);
  prep(b, elem_size, count * elem_size);
  if (!reserve(b, count * elem_size)) return 0;
  const uint8_t *p = items;
  for (size_t i = count; i-- > 0;) {
    uint64_t v = 0;
    switch (elem_size) {
      case 1: v = p[i]; break;
      case 2: { uint16_t x; memcpy(&x, p + 2 * i, 2); v = x; } break;
      case 4: { uint32_t x; memcpy(&x, p + 4 * i, 4); v = x; } break;
      default: memcpy(&v, p + 8 * i, 8); break;
    }
    push_le(b, v, elem_size);
  }
  push_le(b, count, 4);
  return ref_here(b);
}

fy_fb_ref_t fy_fb_vector_refs(fy_fb_builder_t *b, const fy_fb_ref_t *refs, size_t count) {
  if (b->in_table) fail(b, FY_INTERNAL, "vector built inside a table");
  if (count > FY_FB_MAX_SIZE / 4) fail(b, FY_RESOURCE_EXHAUSTED, "vector too long");
  if (b->error) return 0;
  prep(b, 4, count * 4);
  if (!reserve(b, count * 4 + 4)) return 0;
  for (size_t i = count; i-- > 0;) push_uoffset(b, refs[i]);
  push_le(b, count, 4);
  return ref_here(b);
}

void fy_fb_table_start(fy_fb_builder_t *b) {
  if (b->in_table) fail(b, FY_INTERNAL, "nested table");
  b->in_table = true;
  b->n_fields = 0;
  memset(b->field_at, 0, sizeof b->field_at);
  prep(b, 4, 0); /* so that tables alike share their vtable */
  b->table_start = b->used;
}

static void add_scalar(fy_fb_builder_t *b, int field, uint64_t v, size_t width) {
  if (!b->in_table || field < 0 || field >= FY_FB_MAX_FIELDS || b->field_at[field]) {
    fail(b, FY_INTERNAL, "field added outside a table, out of range or twice");
    return;
  }
  prep(b, width, 0);
  push_le(b, v, width);
  if (b->error) return;
  b->field_at[field] = (uint32_t)b->used;
  if (field >= b->n_fields) b->n_fields = field + 1;
}

void fy_fb_add_bool(fy_fb_builder_t *b, int field, bool v, bool def) {
  if (v != def) add_scalar(b, field, v, 1);
}
void fy_fb_add_u8(fy_fb_builder_t *b, int field, uint8_t v, uint8_t def) {
  if (v != def) add_scalar(b, field, v, 1);
}
void fy_fb_add_i32(fy_fb_builder_t *b, int field, int32_t v, int32_t def) {
  if (v != def) add_scalar(b, field, (uint32_t)v, 4);
}
void fy_fb_add_u32(fy_fb_builder_t *b, int field, uint32_t v, uint32_t def) {
  if (v != def) add_scalar(b, field, v, 4);
}
void fy_fb_add_i64(fy_fb_builder_t *b, int field, int64_t v, int64_t def) {
  if (v != def) add_scalar(b, field, (uint64_t)v, 8);
}
void fy_fb_add_u64(fy_fb_builder_t *b, int field, uint64_t v, uint64_t def) {
  if (v != def) add_scalar(b, field, v, 8);
}
void fy_fb_add_f32(fy_fb_builder_t *b, int field, float v, float def) {
  uint32_t x, d;
  memcpy(&x, &v, 4);
  memcpy(&d, &def, 4);
  if (x != d) add_scalar(b, field, x, 4);
}
void fy_fb_add_f64(fy_fb_builder_t *b, int field, double v, double def) {
  uint64_t x, d;
  memcpy(&x, &v, 8);
  memcpy(&d, &def, 8);
  if (x != d) add_scalar(b, field, x, 8);
}

void fy_fb_add_ref(fy_fb_builder_t *b, int field, fy_fb_ref_t ref) {
  if (ref == 0) return;
  if (!b->in_table || field < 0 || field >= FY_FB_MAX_FIELDS || b->field_at[field]) {
    fail(b, FY_INTERNAL, "field added outside a table, out of range or twice");
    return;
  }
  push_uoffset(b, ref);
  if (b->error) return;
  b->field_at[field] = (uint32_t)b->used;
  if (field >= b->n_fields) b->n_fields = field + 1;
}

fy_fb_ref_t fy_fb_table_end(fy_fb_builder_t *b) {
  if (!b->in_table) fail(b, FY_INTERNAL, "table ended twice");
  b->in_table = false;
  prep(b, 4, 0);
  push_le(b, 0, 4); /* the soffset, patched below */
  if (b->error) return 0;
  size_t obj = b->used;
  size_t table_size = obj - b->table_start;
  if (table_size > 0xffff) {
    fail(b, FY_RESOURCE_EXHAUSTED, "table larger than 64 KiB");
    return 0;
  }
  /* The vtable, serialized: sizes, then each field's offset from the table start. */
  uint8_t vt[4 + 2 * FY_FB_MAX_FIELDS];
  size_t vt_size = 4 + 2 * (size_t)b->n_fields;
  vt[0] = (uint8_t)vt_size;
  vt[1] = (uint8_t)(vt_size >> 8);
  vt[2] = (uint8_t)table_size;
  vt[3] = (uint8_t)(table_size >> 8);
  for (int i = 0; i < b->n_fields; i++) {
    size_t off = b->field_at[i] ? obj - b->field_at[i] : 0;
    vt[4 + 2 * i] = (uint8_t)off;
    vt[5 + 2 * i] = (uint8_t)(off >> 8);
  }
  fy_fb_ref_t vt_ref = 0;
  for (size_t i = 0; i < b->n_vtables && !vt_ref; i++) {
    const uint8_t *p = b->buf + b->cap - b->vtables[i];
    if (rd_u16(p) == vt_size && !memcmp(p, vt, vt_size)) vt_ref = b->vtables[i];
  }
  if (!vt_ref) {
    push_bytes(b, vt, vt_size);
    if (b->error) return 0;
    vt_ref = (fy_fb_ref_t)b->used;
    if (b->n_vtables == b->cap_vtables) {
      size_t cap = b->cap_vtables ? b->cap_vtables * 2 : 16;
      fy_fb_ref_t *p = realloc(b->vtables, cap * sizeof *p);
      if (!p) {
        fail(b, FY_RESOURCE_EXHAUSTED, "out of memory");
        return 0;
      }
      b->vtables = p;
      b->cap_vtables = cap;
    }
    b->vtables[b->n_vtables++] = vt_ref;
  }
  /* vtable = table - soffset; a shared vtable may lie after the table (negative soffset). */
  int64_t soffset = (int64_t)vt_ref - (int64_t)obj;
  uint32_t s = (uint32_t)(int32_t)soffset;
  uint8_t *p = b->buf + b->cap - obj;
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(s >> (8 * i));
  return (fy_fb_ref_t)obj;
}

fy_status_t fy_fb_finish(fy_fb_builder_t *b, fy_fb_ref_t root, const char identifier[4], uint8_t **out_data,
                         size_t *out_size) {
  if (b->in_table) fail(b, FY_INTERNAL, "finished inside a table");
  prep(b, b->min_align > 4 ? b->min_align : 4, 8);
  push_bytes(b, identifier, 4);
  push_uoffset(b, root);
  if (b->error) {
    fy_status_t s = b->error;
    b->error = NULL;
    return s;
  }
  uint8_t *data = b->buf;
  memmove(data, b->buf + b->cap - b->used, b->used);
  *out_size = b->used;
  *out_data = data;
  b->buf = NULL;
  b->cap = b->used = 0;
  return NULL;
}

/* ---- verifier --------------------------------------------------------- */

typedef struct {
  const uint8_t *buf;
  size_t size;
  fy_fb_limits_t limits;
  uint64_t objects;
  char path[1024];
  size_t path_len;
} verifier_t;

static size_t path_push(verifier_t *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static size_t path_push(verifier_t *v, const char *fmt, ...) {
  size_t old = v->path_len;
  if (old < sizeof v->path - 1) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(v->path + old, sizeof v->path - old, fmt, ap);
    va_end(ap);
    if (n > 0) v->path_len = old + (size_t)n < sizeof v->path ? old + (size_t)n : sizeof v->path - 1;
  }
  return old;
}

static void path_pop(verifier_t *v, size_t old) {
  v->path_len = old;
  v->path[old] = 0;
}

static fy_status_t vfail(verifier_t *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static fy_status_t vfail(verifier_t *v, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return fy_status_make(FY_INVALID_ARGUMENT, "%s: %s", v->path, msg);
}

static fy_status_t count_object(verifier_t *v) {
  if (++v->objects > v->limits.max_objects)
    return fy_status_make(FY_RESOURCE_EXHAUSTED, "%s: more than %llu objects: the buffer shares or nests too much",
                          v->path, (unsigned long long)v->limits.max_objects);
  return NULL;
}

/* The object a uoffset at pos refers to. */
static fy_status_t follow(verifier_t *v, size_t pos, size_t *out_target) {
  uint32_t off = rd_u32(v->buf + pos);
  /* As the reference verifier: an offset is nonzero and fits a signed 32-bit value. */
  if (off == 0 || off > FY_FB_MAX_SIZE) return vfail(v, "offset %u is not a forward offset", off);
  uint64_t target = (uint64_t)pos + off;
  if (target >= v->size) return vfail(v, "offset past the end of the buffer");
  *out_target = (size_t)target;
  return NULL;
}

/* FlatBuffers strings are UTF-8: names reach terminals, JSON and SVG. No
 * overlong forms, no surrogates, nothing past U+10FFFF; NUL is refused too. */
static bool utf8_valid(const uint8_t *s, size_t n) {
  for (size_t i = 0; i < n;) {
    uint8_t c = s[i];
    size_t extra = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : 4;
    if (c == 0 || extra == 4 || n - i <= extra) return false;
    uint32_t cp = extra == 0 ? c : c & (0x3fu >> extra);
    for (size_t k = 1; k <= extra; k++) {
      if ((s[i + k] & 0xc0) != 0x80) return false;
      cp = cp << 6 | (s[i + k] & 0x3fu);
    }
    static const uint32_t min_cp[4] = {0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[extra] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += extra + 1;
  }
  return true;
}

static fy_status_t verify_string(verifier_t *v, size_t pos) {
  FY_TRY(count_object(v));
  if (pos % 4) return vfail(v, "misaligned string");
  if (v->size - pos < 4) return vfail(v, "string length past the end of the buffer");
  uint32_t len = rd_u32(v->buf + pos);
  if ((uint64_t)len >= v->size - pos - 4) return vfail(v, "string of %u bytes past the end of the buffer", len);
  if (v->buf[pos + 4 + len] != 0) return vfail(v, "string not NUL-terminated");
  if (!utf8_valid(v->buf + pos + 4, len)) return vfail(v, "string is not valid UTF-8");
  return NULL;
}

static fy_status_t verify_vector(verifier_t *v, size_t pos, size_t elem_size, size_t *out_len) {
  FY_TRY(count_object(v));
  if (pos % 4 || (pos + 4) % elem_size) return vfail(v, "misaligned vector");
  if (v->size - pos < 4) return vfail(v, "vector length past the end of the buffer");
  uint32_t len = rd_u32(v->buf + pos);
  if ((uint64_t)len > (v->size - pos - 4) / elem_size)
    return vfail(v, "vector of %u elements of %zu bytes past the end of the buffer", len, elem_size);
  *out_len = len;
  return NULL;
}

static size_t scalar_size(fy_fb_type_t type) {
  switch (type) {
    case FY_FB_BOOL:
    case FY_FB_U8: return 1;
    case FY_FB_I32:
    case FY_FB_U32:
    case FY_FB_F32: return 4;
    case FY_FB_I64:
    case FY_FB_U64:
    case FY_FB_F64: return 8;
    case FY_FB_STRING:
    case FY_FB_TABLE: break;
  }
  return 4; /* a uoffset */
}

static fy_status_t verify_table(verifier_t *v, size_t pos, const fy_fb_table_desc_t *desc, int depth);

/* An object (string or table) a uoffset at pos refers to. */
static fy_status_t verify_ref(verifier_t *v, size_t pos, const fy_fb_field_desc_t *f, int depth) {
  size_t target = 0;
  FY_TRY(follow(v, pos, &target));
  return f->type == FY_FB_STRING ? verify_string(v, target) : verify_table(v, target, f->table, depth + 1);
}

static fy_status_t verify_field(verifier_t *v, size_t pos, size_t table_size, size_t foff,
                                const fy_fb_field_desc_t *f, int depth) {
  size_t width = f->vector ? 4 : scalar_size(f->type);
  if (foff < 4 || foff + width > table_size) return vfail(v, "field outside its table");
  size_t fpos = pos + foff;
  if (fpos % width) return vfail(v, "misaligned field");
  if (!f->vector) return f->type == FY_FB_STRING || f->type == FY_FB_TABLE ? verify_ref(v, fpos, f, depth) : NULL;
  size_t target = 0, len = 0;
  FY_TRY(follow(v, fpos, &target));
  FY_TRY(verify_vector(v, target, scalar_size(f->type), &len));
  if (f->type != FY_FB_STRING && f->type != FY_FB_TABLE) return NULL;
  for (size_t i = 0; i < len; i++) {
    size_t old = path_push(v, "[%zu]", i);
    FY_TRY(verify_ref(v, target + 4 + 4 * i, f, depth));
    path_pop(v, old);
  }
  return NULL;
}

static fy_status_t verify_table(verifier_t *v, size_t pos, const fy_fb_table_desc_t *desc, int depth) {
  FY_TRY(count_object(v));
  if (depth > v->limits.max_depth)
    return fy_status_make(FY_RESOURCE_EXHAUSTED, "%s: tables nested deeper than %d", v->path, v->limits.max_depth);
  if (pos % 4) return vfail(v, "misaligned table");
  if (v->size - pos < 4) return vfail(v, "table past the end of the buffer");
  int64_t vt = (int64_t)pos - (int32_t)rd_u32(v->buf + pos);
  if (vt < 0 || (uint64_t)vt > v->size - 4) return vfail(v, "vtable outside the buffer");
  if (vt % 2) return vfail(v, "misaligned vtable");
  size_t vt_size = rd_u16(v->buf + vt), table_size = rd_u16(v->buf + vt + 2);
  if (vt_size < 4 || vt_size % 2 || vt_size > v->size - (size_t)vt) return vfail(v, "bad vtable size %zu", vt_size);
  if (table_size < 4 || table_size > v->size - pos) return vfail(v, "table of %zu bytes past the end of the buffer", table_size);
  size_t n = (vt_size - 4) / 2;
  for (int i = 0; i < desc->n_fields && (size_t)i < n; i++) {
    const fy_fb_field_desc_t *f = &desc->fields[i];
    size_t foff = rd_u16(v->buf + vt + 4 + 2 * i);
    if (!f->name || !foff) continue;
    size_t old = path_push(v, ".%s", f->name);
    FY_TRY(verify_field(v, pos, table_size, foff, f, depth));
    path_pop(v, old);
  }
  return NULL;
}

fy_status_t fy_fb_verify(const void *data, size_t size, const fy_fb_table_desc_t *root, const char *root_name,
                         const fy_fb_limits_t *limits) {
  verifier_t *v = calloc(1, sizeof *v);
  if (!v) return fy_status_make(FY_RESOURCE_EXHAUSTED, "%s: out of memory verifying", root_name);
  v->buf = data;
  v->size = size;
  v->limits = *limits;
  path_push(v, "%s", root_name);
  fy_status_t s = NULL;
  if (size < 8 || !data) s = vfail(v, "%zu bytes are too few for a flatbuffer", size);
  else if (size > FY_FB_MAX_SIZE) s = vfail(v, "%zu bytes: larger than 2 GiB", size);
  else {
    size_t root_pos = 0;
    s = follow(v, 0, &root_pos);
    if (!s) s = verify_table(v, root_pos, root, 0);
  }
  free(v);
  return s;
}

bool fy_fb_has_identifier(const void *data, size_t size, const char identifier[4]) {
  return data && size >= 8 && !memcmp((const uint8_t *)data + 4, identifier, 4);
}

/* ---- readers ---------------------------------------------------------- */

static fy_fb_table_t table_at(const uint8_t *buf, size_t size, uint64_t pos) {
  fy_fb_table_t t = {0};
  if (pos >= size || size - pos < 4 || pos % 4) return t;
  int64_t vt = (int64_t)pos - (int32_t)rd_u32(buf + pos);
  if (vt < 0 || (uint64_t)vt > size - 4 || vt % 2) return t;
  size_t vt_size = rd_u16(buf + vt), table_size = rd_u16(buf + vt + 2);
  if (vt_size < 4 || vt_size > size - (size_t)vt || table_size < 4 || table_size > size - pos) return t;
  t = (fy_fb_table_t){buf, size, (size_t)pos, (size_t)vt, vt_size, table_size};
  return t;
}

fy_fb_table_t fy_fb_root(const void *data, size_t size) {
  if (!data || size < 4) return (fy_fb_table_t){0};
  return table_at(data, size, rd_u32(data));
}

bool fy_fb_table_present(const fy_fb_table_t *t) { return t->buf != NULL; }

/* Position of a field's value of `width` bytes, 0 when absent. */
static size_t field_pos(const fy_fb_table_t *t, int field, size_t width) {
  if (!t->buf || field < 0 || (size_t)field >= (t->vtable_size - 4) / 2) return 0;
  size_t foff = rd_u16(t->buf + t->vtable + 4 + 2 * (size_t)field);
  if (foff < 4 || foff + width > t->table_size) return 0;
  return t->pos + foff;
}

bool fy_fb_has_field(const fy_fb_table_t *t, int field) { return field_pos(t, field, 1) != 0; }

bool fy_fb_get_bool(const fy_fb_table_t *t, int field, bool def) {
  size_t p = field_pos(t, field, 1);
  return p ? t->buf[p] != 0 : def;
}
uint8_t fy_fb_get_u8(const fy_fb_table_t *t, int field, uint8_t def) {
  size_t p = field_pos(t, field, 1);
  return p ? t->buf[p] : def;
}
int32_t fy_fb_get_i32(const fy_fb_table_t *t, int field, int32_t def) {
  size_t p = field_pos(t, field, 4);
  return p ? (int32_t)rd_u32(t->buf + p) : def;
}
uint32_t fy_fb_get_u32(const fy_fb_table_t *t, int field, uint32_t def) {
  size_t p = field_pos(t, field, 4);
  return p ? rd_u32(t->buf + p) : def;
}
int64_t fy_fb_get_i64(const fy_fb_table_t *t, int field, int64_t def) {
  size_t p = field_pos(t, field, 8);
  return p ? (int64_t)rd_u64(t->buf + p) : def;
}
uint64_t fy_fb_get_u64(const fy_fb_table_t *t, int field, uint64_t def) {
  size_t p = field_pos(t, field, 8);
  return p ? rd_u64(t->buf + p) : def;
}
float fy_fb_get_f32(const fy_fb_table_t *t, int field, float def) {
  size_t p = field_pos(t, field, 4);
  if (!p) return def;
  uint32_t x = rd_u32(t->buf + p);
  float f;
  memcpy(&f, &x, 4);
  return f;
}
double fy_fb_get_f64(const fy_fb_table_t *t, int field, double def) {
  size_t p = field_pos(t, field, 8);
  if (!p) return def;
  uint64_t x = rd_u64(t->buf + p);
  double d;
  memcpy(&d, &x, 8);
  return d;
}

/* The target of the uoffset at pos, or 0 when it leaves the buffer (0 is never an object). */
static size_t deref(const uint8_t *buf, size_t size, size_t pos) {
  if (!pos || pos > size - 4) return 0;
  uint32_t off = rd_u32(buf + pos);
  if (off == 0 || off > FY_FB_MAX_SIZE) return 0;
  uint64_t target = (uint64_t)pos + off;
  return target < size ? (size_t)target : 0;
}

static const char *string_at(const uint8_t *buf, size_t size, size_t pos, size_t *out_len) {
  if (!pos || pos % 4 || size - pos < 4) return NULL;
  uint32_t len = rd_u32(buf + pos);
  if ((uint64_t)len >= size - pos - 4 || buf[pos + 4 + len]) return NULL;
  if (out_len) *out_len = len;
  return (const char *)buf + pos + 4;
}

const char *fy_fb_get_string(const fy_fb_table_t *t, int field, size_t *out_len) {
  size_t p = field_pos(t, field, 4);
  return p ? string_at(t->buf, t->size, deref(t->buf, t->size, p), out_len) : NULL;
}

fy_fb_table_t fy_fb_get_table(const fy_fb_table_t *t, int field) {
  size_t p = field_pos(t, field, 4);
  size_t target = p ? deref(t->buf, t->size, p) : 0;
  return target ? table_at(t->buf, t->size, target) : (fy_fb_table_t){0};
}

fy_fb_vec_t fy_fb_get_vector(const fy_fb_table_t *t, int field, size_t elem_size) {
  fy_fb_vec_t v = {0};
  size_t p = field_pos(t, field, 4);
  size_t target = p ? deref(t->buf, t->size, p) : 0;
  if (!target || target % 4 || t->size - target < 4) return v;
  uint32_t len = rd_u32(t->buf + target);
  if ((uint64_t)len > (t->size - target - 4) / elem_size) return v;
  v = (fy_fb_vec_t){t->buf, t->size, target + 4, len};
  return v;
}

/* Position of element i of `width` bytes, 0 when out of range. */
static size_t elem_pos(const fy_fb_vec_t *v, size_t i, size_t width) {
  if (!v->buf || i >= v->len || i >= (v->size - v->pos) / width) return 0;
  return v->pos + i * width;
}

uint8_t fy_fb_vec_u8(const fy_fb_vec_t *v, size_t i) {
  size_t p = elem_pos(v, i, 1);
  return p ? v->buf[p] : 0;
}
int32_t fy_fb_vec_i32(const fy_fb_vec_t *v, size_t i) {
  size_t p = elem_pos(v, i, 4);
  return p ? (int32_t)rd_u32(v->buf + p) : 0;
}
int64_t fy_fb_vec_i64(const fy_fb_vec_t *v, size_t i) {
  size_t p = elem_pos(v, i, 8);
  return p ? (int64_t)rd_u64(v->buf + p) : 0;
}
uint64_t fy_fb_vec_u64(const fy_fb_vec_t *v, size_t i) {
  size_t p = elem_pos(v, i, 8);
  return p ? rd_u64(v->buf + p) : 0;
}
fy_fb_table_t fy_fb_vec_table(const fy_fb_vec_t *v, size_t i) {
  size_t p = elem_pos(v, i, 4);
  size_t target = p ? deref(v->buf, v->size, p) : 0;
  return target ? table_at(v->buf, v->size, target) : (fy_fb_table_t){0};
}
const char *fy_fb_vec_string(const fy_fb_vec_t *v, size_t i, size_t *out_len) {
  size_t p = elem_pos(v, i, 4);
  return p ? string_at(v->buf, v->size, deref(v->buf, v->size, p), out_len) : NULL;
}
