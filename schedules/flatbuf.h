/* FlatBuffers from C: a builder, bounds-checked readers and a verifier.
 *
 * flatcc (the C implementation) is not packaged in Debian, so ferry carries
 * this small one; this file is the only place that knows the wire format.
 * Format (flatbuffers.dev "internals"): little-endian; a uoffset is a u32
 * pointing forward from its own position; a table starts 4-aligned with an
 * i32 soffset to its vtable (vtable = table - soffset); a vtable is u16
 * vtable size, u16 table size, one u16 offset per field (0 = absent, the
 * default applies); a string is u32 length, bytes, NUL; a vector is u32
 * count then elements aligned to their size; the root uoffset is at byte 0
 * and the file identifier at bytes 4..8.
 *
 * The builder writes back to front like the reference implementation:
 * children are built before the table that refers to them. Scalars equal to
 * their default are omitted; identical vtables are shared. Errors (out of
 * memory, a buffer past 2 GiB, misuse) are sticky and reported once, by
 * fy_fb_finish.
 *
 * The readers never read outside [data, data + size): an absent or out of
 * range field reads as its default. They are meant for buffers that passed
 * fy_fb_verify, which checks every offset, size, alignment and string
 * terminator against the buffer without overflow, bounds nesting depth and
 * the number of objects visited (a buffer whose offsets share subtrees
 * cannot make verification explode), and names the failing field by its
 * path: "plan.schedule.stages[1].compute[57].args[2]: ...". */
#ifndef FERRY_SCHEDULES_FLATBUF_H
#define FERRY_SCHEDULES_FLATBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/status.h"

#define FY_FB_MAX_FIELDS 64 /* per table */
#define FY_FB_MAX_SIZE 0x7fffffffu /* FlatBuffers' 2 GiB limit */

/* ---- builder ---------------------------------------------------------- */

/* An object already built: its distance from the end of the buffer. 0 = none. */
typedef uint32_t fy_fb_ref_t;

typedef struct fy_fb_builder {
  uint8_t *buf; /* the bytes written are the last `used` of `cap` */
  size_t cap, used, min_align;
  bool in_table;
  size_t table_start;
  int n_fields;                          /* highest field id added + 1 */
  uint32_t field_at[FY_FB_MAX_FIELDS];   /* used-position of each field's value; 0 = absent */
  fy_fb_ref_t *vtables;                  /* written so far, for sharing */
  size_t n_vtables, cap_vtables;
  fy_status_t error;                     /* first failure */
} fy_fb_builder_t;

void fy_fb_builder_init(fy_fb_builder_t *b);
/* Frees everything, including a pending error. */
void fy_fb_builder_free(fy_fb_builder_t *b);

/* A string (NULL gives 0, an absent field). */
fy_fb_ref_t fy_fb_string(fy_fb_builder_t *b, const char *s);
fy_fb_ref_t fy_fb_string_n(fy_fb_builder_t *b, const char *s, size_t n);
/* A vector of count scalars of elem_size (1, 2, 4 or 8) bytes, read from a
 * host array of that element size. */
fy_fb_ref_t fy_fb_vector(fy_fb_builder_t *b, const void *items, size_t count, size_t elem_size);
/* A vector of tables or strings. */
fy_fb_ref_t fy_fb_vector_refs(fy_fb_builder_t *b, const fy_fb_ref_t *refs, size_t count);

/* Tables: start, add fields by id (any order, each at most once), end. Not nested. */
void fy_fb_table_start(fy_fb_builder_t *b);
void fy_fb_add_bool(fy_fb_builder_t *b, int field, bool v, bool def);
void fy_fb_add_u8(fy_fb_builder_t *b, int field, uint8_t v, uint8_t def);
void fy_fb_add_i32(fy_fb_builder_t *b, int field, int32_t v, int32_t def);
void fy_fb_add_u32(fy_fb_builder_t *b, int field, uint32_t v, uint32_t def);
void fy_fb_add_i64(fy_fb_builder_t *b, int field, int64_t v, int64_t def);
void fy_fb_add_u64(fy_fb_builder_t *b, int field, uint64_t v, uint64_t def);
/* Floats are compared with their default bit for bit (-0.0 and NaNs survive). */
void fy_fb_add_f32(fy_fb_builder_t *b, int field, float v, float def);
void fy_fb_add_f64(fy_fb_builder_t *b, int field, double v, double def);
void fy_fb_add_ref(fy_fb_builder_t *b, int field, fy_fb_ref_t ref);
fy_fb_ref_t fy_fb_table_end(fy_fb_builder_t *b);

/* Writes the root offset and the 4-byte identifier and hands the finished
 * buffer over (the caller frees *out_data). Returns the first error met. */
fy_status_t fy_fb_finish(fy_fb_builder_t *b, fy_fb_ref_t root, const char identifier[4], uint8_t **out_data,
                         size_t *out_size);

/* ---- verifier --------------------------------------------------------- */

typedef enum fy_fb_type {
  FY_FB_BOOL,
  FY_FB_U8,
  FY_FB_I32,
  FY_FB_U32,
  FY_FB_F32,
  FY_FB_I64,
  FY_FB_U64,
  FY_FB_F64,
  FY_FB_STRING,
  FY_FB_TABLE,
} fy_fb_type_t;

typedef struct fy_fb_table_desc fy_fb_table_desc_t;

/* One field of a table, at the index of its id. A NULL name marks an id the
 * reader does not look at (deprecated); it is not checked. */
typedef struct fy_fb_field_desc {
  const char *name;
  fy_fb_type_t type;
  bool vector;                     /* a vector of `type` */
  const fy_fb_table_desc_t *table; /* FY_FB_TABLE */
} fy_fb_field_desc_t;

struct fy_fb_table_desc {
  int n_fields;
  const fy_fb_field_desc_t *fields;
};

typedef struct fy_fb_limits {
  int max_depth;        /* tables nested in tables (vectors do not count) */
  uint64_t max_objects; /* tables, vectors and strings visited in all */
} fy_fb_limits_t;

/* Checks that data[0, size) is a buffer of the given root table: every
 * offset and size in bounds, every object aligned relative to data, every
 * string NUL-terminated. Fields past the description (written by a newer
 * schema) are ignored. Errors are FY_INVALID_ARGUMENT (FY_RESOURCE_EXHAUSTED
 * for the limits) and start with the path of the object, root_name first. */
fy_status_t fy_fb_verify(const void *data, size_t size, const fy_fb_table_desc_t *root, const char *root_name,
                         const fy_fb_limits_t *limits);

/* True when size >= 8 and bytes 4..8 are the identifier. */
bool fy_fb_has_identifier(const void *data, size_t size, const char identifier[4]);

/* ---- readers ---------------------------------------------------------- */

typedef struct fy_fb_table {
  const uint8_t *buf; /* NULL: absent */
  size_t size;
  size_t pos;         /* of the table */
  size_t vtable;
  size_t vtable_size, table_size;
} fy_fb_table_t;

typedef struct fy_fb_vec {
  const uint8_t *buf; /* NULL: absent */
  size_t size;
  size_t pos;         /* of the first element */
  size_t len;
} fy_fb_vec_t;

/* The root table; an absent table when the buffer is malformed. */
fy_fb_table_t fy_fb_root(const void *data, size_t size);
bool fy_fb_table_present(const fy_fb_table_t *t);
bool fy_fb_has_field(const fy_fb_table_t *t, int field);

bool fy_fb_get_bool(const fy_fb_table_t *t, int field, bool def);
uint8_t fy_fb_get_u8(const fy_fb_table_t *t, int field, uint8_t def);
int32_t fy_fb_get_i32(const fy_fb_table_t *t, int field, int32_t def);
uint32_t fy_fb_get_u32(const fy_fb_table_t *t, int field, uint32_t def);
int64_t fy_fb_get_i64(const fy_fb_table_t *t, int field, int64_t def);
uint64_t fy_fb_get_u64(const fy_fb_table_t *t, int field, uint64_t def);
float fy_fb_get_f32(const fy_fb_table_t *t, int field, float def);
double fy_fb_get_f64(const fy_fb_table_t *t, int field, double def);
/* NUL-terminated bytes inside the buffer, or NULL when absent; *out_len (may be NULL) gets the length. */
const char *fy_fb_get_string(const fy_fb_table_t *t, int field, size_t *out_len);
fy_fb_table_t fy_fb_get_table(const fy_fb_table_t *t, int field);
/* A vector of elements of elem_size bytes (4 for tables and strings); absent reads as empty. */
fy_fb_vec_t fy_fb_get_vector(const fy_fb_table_t *t, int field, size_t elem_size);

uint8_t fy_fb_vec_u8(const fy_fb_vec_t *v, size_t i);
int32_t fy_fb_vec_i32(const fy_fb_vec_t *v, size_t i);
int64_t fy_fb_vec_i64(const fy_fb_vec_t *v, size_t i);
uint64_t fy_fb_vec_u64(const fy_fb_vec_t *v, size_t i);
fy_fb_table_t fy_fb_vec_table(const fy_fb_vec_t *v, size_t i);
const char *fy_fb_vec_string(const fy_fb_vec_t *v, size_t i, size_t *out_len);

#endif
