/* The predicted timeline as SVG (see svg.h). The text is built in memory
 * (open_memstream) and written atomically. Coordinates are pixels; a panel's
 * time runs from its stage's start. */
#include "schedules/svg.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schedules/summary.h"
#include "support/file.h"

/* How a bar is filled: a streamed layer's colour (key = layer), its pale
 * colour (key = n_layers + layer: its kernels that read no streamed weight,
 * fused into chunks), or one of these. */
enum { K_GLOBAL = -1, K_RESIDENT = -2, K_HOST = -3, K_WAIT = -4, K_SLOT_WAIT = -5, K_SPECIALS = 6 };
static const char *const special_class[K_SPECIALS] = {"", "g", "r", "x", "w", "ws"};

/* Layout in pixels. */
enum {
  MARGIN_LEFT = 104, MARGIN_RIGHT = 28, TITLE_H = 66, PANEL_HEAD = 42, LANE_H = 30, GAP = 8, SLOTS_H = 34,
  VRAM_H = 80, AXIS_H = 30, PANEL_GAP = 16
};
#define PANEL_H (PANEL_HEAD + 2 * LANE_H + SLOTS_H + VRAM_H + 3 * GAP + AXIS_H + PANEL_GAP)
#define CHAR_W 6.6 /* average advance of an 11 px sans-serif character, for laying out the legend */

typedef struct svg {
  FILE *f;
  const fy_schedule_t *s;
  const fy_sim_result_t *sim;
  int n_layers;
  double plot_x, plot_w;
  bool *streamed;          /* per layer + 1 (index 0: the global weights): has weights that are not resident */
  bool seen[K_SPECIALS];   /* which special fills were drawn, for the legend: index -key */
  bool seen_layer, seen_pale;
  /* The panel being drawn. */
  int stage;
  int64_t n_steps; /* steps drawn */
  double t0, t1;   /* its window, seconds from the stage's start */
} svg_t;

/* A bar being merged from consecutive spans of one lane. */
typedef struct bar {
  bool open;
  double x0, x1;
  int key;
  int layer_lo, layer_hi; /* layers it covers; layer_lo < 0: none */
} bar_t;

static double mib(uint64_t b) { return (double)b / 1048576.0; }

static const char *bytes_str(uint64_t b, char *buf, size_t size) {
  if (b == 0)
    snprintf(buf, size, "0 B");
  else if (b >= (1ull << 30))
    snprintf(buf, size, "%.1f GiB", b / 1073741824.0);
  else if (b >= (1ull << 20))
    snprintf(buf, size, "%.1f MiB", mib(b));
  else
    snprintf(buf, size, "%.1f KiB", b / 1024.0);
  return buf;
}

static const char *seconds_str(double s, char *buf, size_t size) {
  if (s == 0)
    snprintf(buf, size, "0 ms");
  else if (s >= 10)
    snprintf(buf, size, "%.1f s", s);
  else if (s >= 1)
    snprintf(buf, size, "%.2f s", s);
  else if (s >= 0.01)
    snprintf(buf, size, "%.1f ms", s * 1e3);
  else if (s >= 1e-3)
    snprintf(buf, size, "%.2f ms", s * 1e3);
  else
    snprintf(buf, size, "%.0f \xc2\xb5s", s * 1e6);
  return buf;
}

/* Text content, XML-escaped; control characters are dropped. */
static void put_text(FILE *f, const char *text) {
  for (const char *p = text ? text : ""; *p; p++) {
    switch (*p) {
      case '&': fputs("&amp;", f); break;
      case '<': fputs("&lt;", f); break;
      case '>': fputs("&gt;", f); break;
      case '"': fputs("&quot;", f); break;
      default:
        if ((unsigned char)*p >= 0x20) fputc(*p, f);
    }
  }
}

static void text(svg_t *v, double x, double y, const char *cls, const char *anchor, const char *content) {
  fprintf(v->f, "<text x=\"%.1f\" y=\"%.1f\"", x, y);
  if (cls) fprintf(v->f, " class=\"%s\"", cls);
  if (anchor) fprintf(v->f, " text-anchor=\"%s\"", anchor);
  fputc('>', v->f);
  put_text(v->f, content);
  fputs("</text>\n", v->f);
}

static double text_width(const char *s) { return CHAR_W * (double)strlen(s); }

/* Layer l of n as a colour: hues around the wheel in layer order, lightness
 * alternating so that neighbours stay apart when there are many; pale mixes
 * it with white. *out_light: dark text reads better on it. */
static void layer_colour(int l, int n, bool pale, char out[8], bool *out_light) {
  double h = 300.0 * l / (n > 1 ? n - 1 : 1), sat = 0.62, li = l % 2 ? 0.58 : 0.45;
  double c = (1 - fabs(2 * li - 1)) * sat, hp = h / 60, x = c * (1 - fabs(fmod(hp, 2) - 1)), m = li - c / 2;
  /* Which of (c, x, 0) each of r, g, b takes, per 60-degree sector. */
  static const int pick[6][3] = {{0, 1, 2}, {1, 0, 2}, {2, 0, 1}, {2, 1, 0}, {1, 2, 0}, {0, 2, 1}};
  double val[3] = {c, x, 0};
  int sector = (int)hp % 6, rgb[3];
  for (int k = 0; k < 3; k++) {
    double u = val[pick[sector][k]] + m;
    if (pale) u = u + (1 - u) * 0.6;
    rgb[k] = (int)lround(u * 255);
  }
  snprintf(out, 8, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
  *out_light = pale || li > 0.5 || (h > 40 && h < 200);
}

static double x_of(const svg_t *v, double t) {
  double x = v->plot_x + (t - v->t0) / (v->t1 - v->t0) * v->plot_w;
  return x < v->plot_x ? v->plot_x : x > v->plot_x + v->plot_w ? v->plot_x + v->plot_w : x;
}

static void bar_flush(svg_t *v, bar_t *b, double y, double h) {
  if (!b->open) return;
  b->open = false;
  double w = b->x1 - b->x0 < 0.6 ? 0.6 : b->x1 - b->x0;
  fprintf(v->f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" class=\"", b->x0, y, w, h);
  if (b->key >= v->n_layers)
    fprintf(v->f, "p%d\"/>\n", b->key - v->n_layers);
  else if (b->key >= 0)
    fprintf(v->f, "c%d\"/>\n", b->key);
  else
    fprintf(v->f, "%s\"/>\n", special_class[-b->key]);
  if (b->layer_lo < 0 || b->key == K_GLOBAL) return;
  char label[32];
  if (b->layer_lo == b->layer_hi)
    snprintf(label, sizeof label, "L%d", b->layer_lo);
  else
    snprintf(label, sizeof label, "L%d\xe2\x80\x93%d", b->layer_lo, b->layer_hi);
  if (w < 6.5 * (double)strlen(label) + 8) return;
  bool light = true;
  if (b->key >= 0 && b->key < v->n_layers) {
    char colour[8];
    layer_colour(b->key, v->n_layers, false, colour, &light);
  }
  text(v, b->x0 + w / 2, y + h / 2 + 3.5, light ? "bd" : "bl", "middle", label);
}

/* Adds [x0, x1) filled as key to the lane: merged into the open bar when it
 * continues it (same fill) or is too narrow to be seen on its own. */
static void bar_add(svg_t *v, bar_t *b, double x0, double x1, int key, int layer, double y, double h) {
  if (b->open && x0 <= b->x1 + 0.75 && (key == b->key || x1 - x0 < 0.75)) {
    if (x1 > b->x1) b->x1 = x1;
    if (key == b->key && layer >= 0 && (b->layer_lo < 0 || layer < b->layer_lo)) b->layer_lo = layer;
    if (key == b->key && layer > b->layer_hi) b->layer_hi = layer;
    return;
  }
  bar_flush(v, b, y, h);
  *b = (bar_t){true, x0, x1, key, layer, layer};
}

/* How a command is drawn; false when it is not a bar in this pass (waits
 * are drawn first, as the lane's background). */
static bool span_key(svg_t *v, int queue, const fy_cmd_t *cmd, bool in_chunk, bool waits, int *out_key,
                     int *out_layer) {
  const fy_graph_t *g = v->s->graph;
  int layer = -1, key;
  if (waits) {
    if (cmd->kind != FY_CMD_WAIT) return false;
    key = queue == FY_QUEUE_COMPUTE ? K_WAIT : K_SLOT_WAIT;
  } else if (cmd->kind == FY_CMD_COPY) {
    layer = cmd->layer >= 0 && cmd->layer < g->n_layers ? cmd->layer : -1;
    key = layer >= 0 ? layer : K_GLOBAL;
  } else if (cmd->kind == FY_CMD_LAUNCH) {
    layer = g->nodes[cmd->node].layer;
    if (cmd->on_host)
      key = K_HOST;
    else if (layer < 0)
      key = K_GLOBAL;
    else if (!v->streamed[layer + 1])
      key = K_RESIDENT;
    else
      key = in_chunk ? v->n_layers + layer : layer;
  } else {
    return false;
  }
  *out_key = key;
  *out_layer = layer;
  return true;
}

/* One lane: waits as a shaded background, then the bars. */
static void lane(svg_t *v, int queue, double y) {
  const fy_stage_schedule_t *st = &v->s->stages[v->stage];
  fprintf(v->f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%d\" class=\"lane\"/>\n", v->plot_x, y,
          v->plot_w, LANE_H);
  for (int pass = 0; pass < 2; pass++) {
    bar_t b = {0};
    bool in_chunk = false;
    double by = pass ? y + 3 : y, bh = pass ? LANE_H - 6 : LANE_H;
    for (int64_t i = 0; i < v->sim->n_spans; i++) {
      const fy_sim_span_t *sp = &v->sim->spans[i];
      if (sp->stage != v->stage || sp->queue != queue || sp->start >= v->t1) continue;
      const fy_cmd_t *cmd = &st->cmds[queue][sp->cmd];
      if (cmd->kind == FY_CMD_CHUNK_BEGIN || cmd->kind == FY_CMD_CHUNK_END) in_chunk = cmd->kind == FY_CMD_CHUNK_BEGIN;
      int key, layer;
      if (sp->end <= sp->start || !span_key(v, queue, cmd, in_chunk, pass == 0, &key, &layer)) continue;
      if (key < 0)
        v->seen[-key] = true;
      else
        *(key >= v->n_layers ? &v->seen_pale : &v->seen_layer) = true;
      bar_add(v, &b, x_of(v, sp->start), x_of(v, sp->end), key, layer, by, bh);
    }
    bar_flush(v, &b, by, bh);
  }
}

typedef struct change {
  double t;
  int slot;
  int64_t delta; /* a copy's bytes, or minus an eviction's */
} change_t;

static int by_time(const void *a, const void *b) {
  const change_t *x = a, *y = b;
  if (x->t != y->t) return x->t < y->t ? -1 : 1;
  return (x->delta > y->delta) - (x->delta < y->delta); /* frees first */
}

/* Slot bytes in use over the window, as the most in use per pixel column.
 * As in the simulator, a copy holds its bytes from its start, and an
 * eviction frees what its slot holds. */
static fy_status_t slot_levels(svg_t *v, int64_t *cols, int n_cols) {
  const fy_schedule_t *s = v->s;
  const fy_stage_schedule_t *st = &s->stages[v->stage];
  const fy_region_t *slots = &s->regions[FY_REGION_SLOTS];
  int n_slots = s->n_slots > 0 ? s->n_slots : 1;
  int64_t n = 0;
  for (int64_t i = 0; i < v->sim->n_spans; i++) n += v->sim->spans[i].stage == v->stage;
  change_t *ch = malloc(sizeof *ch * (size_t)(n + 1));
  int64_t *held = calloc((size_t)n_slots, sizeof *held);
  if (!ch || !held) {
    free(ch);
    free(held);
    return fy_status_make(FY_RESOURCE_EXHAUSTED, "svg: out of memory");
  }
  int64_t k = 0;
  for (int64_t i = 0; i < v->sim->n_spans; i++) {
    const fy_sim_span_t *sp = &v->sim->spans[i];
    if (sp->stage != v->stage) continue;
    const fy_cmd_t *cmd = &st->cmds[sp->queue][sp->cmd];
    if ((cmd->kind != FY_CMD_COPY && cmd->kind != FY_CMD_EVICT) || cmd->device_offset < slots->offset ||
        cmd->device_offset - slots->offset >= slots->bytes)
      continue;
    uint64_t slot = s->slot_bytes ? (cmd->device_offset - slots->offset) / s->slot_bytes : 0;
    ch[k++] = (change_t){sp->start, slot < (uint64_t)n_slots ? (int)slot : n_slots - 1,
                         cmd->kind == FY_CMD_COPY ? (int64_t)cmd->bytes : -(int64_t)cmd->bytes};
  }
  qsort(ch, (size_t)k, sizeof *ch, by_time);
  for (int c = 0; c < n_cols; c++) cols[c] = 0;
  int64_t level = 0;
  double prev = v->t0;
  for (int64_t i = 0; i <= k; i++) {
    double t = i < k && ch[i].t < v->t1 ? ch[i].t : v->t1;
    int c0 = (int)((prev - v->t0) / (v->t1 - v->t0) * n_cols), c1 = (int)((t - v->t0) / (v->t1 - v->t0) * n_cols);
    if (c0 < 0) c0 = 0;
    if (c1 >= n_cols) c1 = n_cols - 1;
    for (int c = c0; c <= c1; c++)
      if (level > cols[c]) cols[c] = level;
    if (t >= v->t1) break;
    int64_t delta = ch[i].delta < -held[ch[i].slot] ? -held[ch[i].slot] : ch[i].delta;
    held[ch[i].slot] += delta;
    level += delta;
    prev = t;
  }
  free(held);
  free(ch);
  return NULL;
}


/* A step path over n_cols columns of the area under level[c] (scaled so
 * that top_bytes is height h), from base y. */
static void area(svg_t *v, const int64_t *level, int n_cols, double base, double h, double top_bytes,
                 const char *cls) {
  fprintf(v->f, "<path class=\"%s\" d=\"M%.1f %.2f", cls, v->plot_x, base);
  double last = -1;
  for (int c = 0; c < n_cols; c++) {
    double yc = base - (double)level[c] / top_bytes * h;
    if (yc != last) fprintf(v->f, "H%.1fV%.2f", v->plot_x + c, yc);
    last = yc;
  }
  fprintf(v->f, "H%.1fV%.2fZ\"/>\n", v->plot_x + v->plot_w, base);
}

/* The streaming ring: slot bytes in use against the slots region. */
static void slots_strip(svg_t *v, const int64_t *level, int n_cols, double y) {
  const fy_schedule_t *s = v->s;
  fprintf(v->f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%d\" class=\"lane\"/>\n", v->plot_x, y,
          v->plot_w, SLOTS_H);
  uint64_t cap = s->regions[FY_REGION_SLOTS].bytes;
  char a[32], label[64];
  if (cap) area(v, level, n_cols, y + SLOTS_H, SLOTS_H - 4, (double)cap, "o1");
  text(v, v->plot_x - 8, y + 14, "ln", "end", "slots");
  snprintf(label, sizeof label, "of %s", bytes_str(cap, a, sizeof a));
  text(v, v->plot_x - 8, y + 27, "ax", "end", label);
  fprintf(v->f, "<path d=\"M%.1f %.1fh%.1f\" class=\"full\"/>\n", v->plot_x, y + 4.0, v->plot_w);
}

/* Device bytes in use, stacked: resident, KV cache, activations (held for
 * the whole stage), then the slots in use; against the budget. */
static void vram(svg_t *v, int64_t *level, int n_cols, double y) {
  const fy_schedule_t *s = v->s;
  double top = (double)(s->budget > s->device_bytes ? s->budget : s->device_bytes);
#define Y(b) (y + VRAM_H - (double)(b) / top * VRAM_H)
  fprintf(v->f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%d\" class=\"lane\"/>\n", v->plot_x, y,
          v->plot_w, VRAM_H);
  static const int order[] = {FY_REGION_RESIDENT, FY_REGION_KV, FY_REGION_ACTIVATIONS};
  uint64_t base = 0;
  for (int i = 0; i < 3; i++) {
    uint64_t b = s->regions[order[i]].bytes;
    if (b)
      fprintf(v->f, "<rect x=\"%.1f\" y=\"%.2f\" width=\"%.1f\" height=\"%.2f\" class=\"o%d\"/>\n", v->plot_x,
              Y(base + b), v->plot_w, Y(base) - Y(base + b), order[i]);
    base += b;
  }
  area(v, level, n_cols, Y(base), Y(0) - Y(base) < 0 ? 0 : (double)VRAM_H, top, "o1");
  fprintf(v->f, "<path d=\"M%.1f %.2fh%.1f\" class=\"full\"/>\n", v->plot_x, Y(s->device_bytes), v->plot_w);
  fprintf(v->f, "<path d=\"M%.1f %.2fh%.1f\" class=\"budget\"/>\n", v->plot_x, Y(s->budget), v->plot_w);
  char a[32];
  text(v, v->plot_x - 8, y + VRAM_H / 2.0 + 4, "ln", "end", "VRAM");
  text(v, v->plot_x - 6, Y(s->budget) + 7, "ax", "end", bytes_str(s->budget, a, sizeof a));
  text(v, v->plot_x - 6, y + VRAM_H + 1, "ax", "end", "0");
#undef Y
}

/* A time axis under the panel with 1-2-5 ticks, and faint grid lines over it. */
static void axis(svg_t *v, double y_top, double y) {
  double span = v->t1 - v->t0;
  double unit = span < 2e-3 ? 1e-6 : span < 2 ? 1e-3 : 1;
  const char *unit_name = unit == 1e-6 ? "\xc2\xb5s" : unit == 1e-3 ? "ms" : "s";
  double raw = span / unit / 8, p = pow(10, floor(log10(raw))), m = raw / p;
  double step = (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
  int decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
  fprintf(v->f, "<path d=\"M%.1f %.1fh%.1f\" class=\"axis\"/>\n", v->plot_x, y, v->plot_w);
  for (int i = 0;; i++) {
    double t = i * step;
    if (t * unit > span * (1 + 1e-9)) break;
    double x = x_of(v, v->t0 + t * unit);
    fprintf(v->f, "<path d=\"M%.1f %.1fV%.1f\" class=\"grid\"/><path d=\"M%.1f %.1fv4\" class=\"axis\"/>\n", x,
            y_top, y, x, y);
    char label[32];
    snprintf(label, sizeof label, "%.*f", decimals, t);
    text(v, x, y + 15, "ax", "middle", label);
  }
  text(v, v->plot_x - 24, y + 15, "ax", "end", unit_name);
}

/* The end of the window: the last command of step n_steps-1 on either queue. */
static double window_end(const svg_t *v) {
  double end = 0;
  for (int64_t i = 0; i < v->sim->n_spans; i++) {
    const fy_sim_span_t *sp = &v->sim->spans[i];
    if (sp->stage == v->stage && sp->step < v->n_steps && sp->end > end) end = sp->end;
  }
  return end > 0 ? end : 1e-9;
}

static double step_start(const svg_t *v, int64_t step) {
  for (int64_t i = 0; i < v->sim->n_spans; i++) {
    const fy_sim_span_t *sp = &v->sim->spans[i];
    if (sp->stage == v->stage && sp->queue == FY_QUEUE_COMPUTE && sp->step == step && sp->cmd == 0) return sp->start;
  }
  return -1;
}

static void panel_head(svg_t *v, double y) {
  const fy_stage_schedule_t *st = &v->s->stages[v->stage];
  const fy_sim_stage_t *r = &v->sim->stages[v->stage];
  char a[32], b[32], c[32], head[320], info[160];
  if (st->repeat <= 1)
    snprintf(head, sizeof head, "%s \xe2\x80\x94 %" PRId64 " tokens, the whole stage: %s", st->name, st->max_tokens,
             seconds_str(r->total_seconds, a, sizeof a));
  else
    snprintf(head, sizeof head,
             "%s \xe2\x80\x94 the first %" PRId64 " of %" PRId64 " steps: %s per step (step 0: %s), %s in all",
             st->name, v->n_steps, st->repeat, seconds_str(r->step_seconds, a, sizeof a),
             seconds_str(r->first_step_seconds, b, sizeof b), seconds_str(r->total_seconds, c, sizeof c));
  text(v, v->plot_x, y + 16, "h", NULL, head);
  snprintf(info, sizeof info, "%s copied, compute waited %s%s", bytes_str(r->copied_bytes, a, sizeof a),
           seconds_str(r->compute_wait_seconds, b, sizeof b), st->repeat <= 1 ? "" : " (all steps)");
  text(v, v->plot_x + v->plot_w, y + 16, "st", "end", info);
}

static fy_status_t panel(svg_t *v, int stage, int64_t steps, double y) {
  const fy_stage_schedule_t *st = &v->s->stages[stage];
  v->stage = stage;
  v->n_steps = st->repeat < steps ? st->repeat : steps;
  v->t0 = 0;
  v->t1 = window_end(v);
  int n_cols = (int)v->plot_w;
  int64_t *level = malloc(sizeof *level * (size_t)n_cols);
  if (!level) return fy_status_make(FY_RESOURCE_EXHAUSTED, "svg: out of memory");
  fy_status_t status = slot_levels(v, level, n_cols);
  if (status) {
    free(level);
    return status;
  }
  panel_head(v, y);
  double copy_y = y + PANEL_HEAD, compute_y = copy_y + LANE_H + GAP, slots_y = compute_y + LANE_H + GAP;
  double vram_y = slots_y + SLOTS_H + GAP, axis_y = vram_y + VRAM_H + 4;
  text(v, v->plot_x - 8, copy_y + LANE_H / 2.0 + 4, "ln", "end", "copy");
  text(v, v->plot_x - 8, compute_y + LANE_H / 2.0 + 4, "ln", "end", "compute");
  lane(v, FY_QUEUE_COPY, copy_y);
  lane(v, FY_QUEUE_COMPUTE, compute_y);
  slots_strip(v, level, n_cols, slots_y);
  vram(v, level, n_cols, vram_y);
  free(level);
  axis(v, copy_y, axis_y);
  for (int64_t k = 0; st->repeat > 1 && k < v->n_steps; k++) {
    double t = step_start(v, k);
    if (t < 0) continue;
    double x = x_of(v, t);
    if (k > 0) fprintf(v->f, "<path d=\"M%.1f %.1fV%.1f\" class=\"stepl\"/>\n", x, copy_y - 12, axis_y);
    char label[32];
    snprintf(label, sizeof label, "step %" PRId64, k);
    text(v, x + 4, copy_y - 4, "ax", NULL, label);
  }
  return NULL;
}

/* Where the next legend entry goes: entries flow left to right and wrap. */
typedef struct flow {
  double x, y;
} flow_t;

static void flow_place(const svg_t *v, flow_t *at, double width) {
  if (at->x > v->plot_x && at->x + width > v->plot_x + v->plot_w) at->x = v->plot_x, at->y += 22;
}

static void flow_label(svg_t *v, flow_t *at, double swatch, const char *label) {
  text(v, at->x + swatch + 5, at->y, NULL, NULL, label);
  at->x += swatch + 5 + text_width(label) + 22;
}

/* A swatch filled as cls, or a line drawn as cls, and its label. */
static void legend_item(svg_t *v, flow_t *at, const char *cls, bool line, const char *label) {
  flow_place(v, at, 19 + text_width(label));
  if (line)
    fprintf(v->f, "<path d=\"M%.1f %.1fh14\" class=\"%s\"/>\n", at->x, at->y - 4, cls);
  else
    fprintf(v->f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"12\" class=\"%s\"/>\n", at->x, at->y - 10, cls);
  flow_label(v, at, 14, label);
}

/* A strip of the layers' colours (at most 24 of them, spread over the layers) and its label. */
static void legend_layers(svg_t *v, flow_t *at, char prefix, const char *label) {
  int n = v->n_layers, shown = n < 24 ? n : 24;
  flow_place(v, at, 4.0 * shown + 5 + text_width(label));
  for (int i = 0; i < shown; i++) {
    int l = shown > 1 ? (int)((long)i * (n - 1) / (shown - 1)) : 0;
    fprintf(v->f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"4\" height=\"12\" class=\"%c%d\"/>\n", at->x + 4.0 * i,
            at->y - 10, prefix, l);
  }
  flow_label(v, at, 4.0 * shown, label);
}

/* The legend from y on; returns the y under it. Only what was drawn is explained. */
static double legend(svg_t *v, double y) {
  const fy_schedule_t *s = v->s;
  flow_t at = {v->plot_x, y};
  char label[160], a[32], b[32];
  if (v->seen_layer) {
    snprintf(label, sizeof label, "streamed layers L0\xe2\x80\x93L%d: a copy and the kernels that wait for it",
             v->n_layers - 1);
    legend_layers(v, &at, 'c', label);
  }
  if (v->seen_pale) legend_layers(v, &at, 'p', "their kernels that read no streamed weight (fused chunks)");
  if (v->seen[-K_RESIDENT]) legend_item(v, &at, "r", false, "resident layers (fused chunks)");
  if (v->seen[-K_GLOBAL]) legend_item(v, &at, "g", false, "embedding, head");
  if (v->seen[-K_HOST]) legend_item(v, &at, "x", false, "layers run on the CPU");
  if (v->seen[-K_WAIT]) legend_item(v, &at, "w", false, "compute waiting for a copy");
  if (v->seen[-K_SLOT_WAIT]) legend_item(v, &at, "ws", false, "copy waiting for a free slot");
  legend_item(v, &at, "stepl", true, "step boundary");
  at.x = v->plot_x;
  at.y += 22;
  static const char *const names[] = {"resident weights", "streaming slots in use", "KV cache", "activations"};
  static const int order[] = {FY_REGION_RESIDENT, FY_REGION_KV, FY_REGION_ACTIVATIONS, FY_REGION_SLOTS};
  for (int i = 0; i < 4; i++) {
    int r = order[i];
    char cls[8];
    snprintf(cls, sizeof cls, "o%d", r);
    if (r == FY_REGION_SLOTS)
      snprintf(label, sizeof label, "%s (peak %s, ring of %d \xc3\x97 %s)", names[r],
               bytes_str(v->sim->peak_bytes[r], a, sizeof a), s->n_slots, bytes_str(s->slot_bytes, b, sizeof b));
    else
      snprintf(label, sizeof label, "%s %s", names[r], bytes_str(s->regions[r].bytes, a, sizeof a));
    legend_item(v, &at, cls, false, label);
  }
  legend_item(v, &at, "budget", true, "budget");
  legend_item(v, &at, "full", true, "every region full");
  return at.y + 14;
}

static void style(svg_t *v) {
  FILE *f = v->f;
  fprintf(f, "<defs><pattern id=\"hatch\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" "
             "patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#f2f3f5\"/>"
             "<path d=\"M0 0V6\" stroke=\"#c5cbd3\" stroke-width=\"2.5\"/></pattern></defs>\n");
  fprintf(f, "<style>\n"
             "text{font-family:'DejaVu Sans',Helvetica,Arial,sans-serif;font-size:11px;fill:#222}\n"
             ".t{font-size:17px;font-weight:bold}.st{font-size:12px;fill:#444}.h{font-size:13px;font-weight:bold}\n"
             ".ln{font-size:12px;font-weight:bold;fill:#333}.ax{font-size:10px;fill:#555}\n"
             ".bl{font-size:10px;fill:#fff}.bd{font-size:10px;fill:#111}\n"
             ".lane{fill:#fbfbfc;stroke:#d5d9de}.w{fill:#f6b8b8}.ws{fill:url(#hatch)}\n"
             ".r{fill:#9aa6b4}.g{fill:#3d4a5c}.x{fill:#d69e2e}\n"
             ".grid{stroke:#e6e8eb}.axis{stroke:#777}.stepl{stroke:#333;stroke-dasharray:5 3}\n"
             ".budget{stroke:#c53030;stroke-width:1.5}.full{stroke:#555;stroke-dasharray:3 3}\n"
             ".o%d{fill:#c9d1da}.o%d{fill:#2b6cb0;fill-opacity:.8}.o%d{fill:#b794f4}.o%d{fill:#68d391}\n",
          FY_REGION_RESIDENT, FY_REGION_SLOTS, FY_REGION_KV, FY_REGION_ACTIVATIONS);
  for (int pale = 0; pale < 2; pale++)
    for (int l = 0; l < v->n_layers; l++) {
      char colour[8];
      bool light;
      layer_colour(l, v->n_layers, pale, colour, &light);
      fprintf(f, ".%c%d{fill:%s}", pale ? 'p' : 'c', l, colour);
      if (l % 8 == 7 || l == v->n_layers - 1) fputc('\n', f);
    }
  fprintf(f, "</style>\n");
}

static void title(svg_t *v, const fy_svg_options_t *o) {
  const fy_schedule_t *s = v->s;
  const fy_graph_t *g = s->graph;
  const fy_sim_result_t *sim = v->sim;
  char a[32], b[32], c[32], d[32], line[512];
  snprintf(line, sizeof line, "%s%s%s, %d layers, %s of weights%s on %s (%s VRAM, %.1f GB/s host-to-device)",
           o->model_name ? o->model_name : "", o->model_name ? ": " : "", g->config.architecture, g->n_layers,
           bytes_str(fy_graph_weight_bytes(g, -2), a, sizeof a), g->shape_only ? " (shape-only)" : "", s->target.name,
           bytes_str(s->target.vram_bytes, b, sizeof b), s->target.h2d_pinned_gbps);
  text(v, 16, 26, "t", NULL, line);
  int n = snprintf(line, sizeof line, "policy %s, prefetch %d, %d slot%s of %s \xe2\x80\x94 predicted:",
                   fy_policy_name(s->policy), s->prefetch, s->n_slots, s->n_slots == 1 ? "" : "s",
                   bytes_str(s->slot_bytes, a, sizeof a));
  for (int i = 0; i < s->n_stages && i < sim->n_stages && n < (int)sizeof line; i++) {
    if (s->stages[i].graph_stage < 0) continue;
    bool once = s->stages[i].repeat <= 1;
    n += snprintf(line + n, sizeof line - (size_t)n, " %s%s %s,", s->stages[i].name, once ? "" : " step",
                  seconds_str(once ? sim->stages[i].total_seconds : sim->stages[i].step_seconds, b, sizeof b));
  }
  if (n < (int)sizeof line)
    snprintf(line + n, sizeof line - (size_t)n, " request %s, bus busy %.0f%% (loading the resident weights: %s, "
             "once, not drawn)", seconds_str(sim->request_seconds, c, sizeof c), sim->bus_busy_fraction * 100,
             seconds_str(sim->load_seconds, d, sizeof d));
  text(v, 16, 48, "st", NULL, line);
}

/* Draws the picture's body (everything inside <svg>); *out_height: how tall it came out. */
static fy_status_t draw(svg_t *v, const fy_svg_options_t *o, int64_t steps, double *out_height) {
  const fy_schedule_t *s = v->s;
  style(v);
  fprintf(v->f, "<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n");
  title(v, o);
  double y = TITLE_H;
  for (int i = 0; i < s->n_stages && i < v->sim->n_stages; i++) {
    if (s->stages[i].graph_stage < 0) continue;
    FY_TRY(panel(v, i, steps, y));
    y += PANEL_H;
  }
  *out_height = legend(v, y + 12);
  return NULL;
}

typedef struct picture {
  int width, height;
  const char *body;
  size_t size;
} picture_t;

static fy_status_t write_picture(void *ctx, int fd) {
  const picture_t *p = ctx;
  char head[256];
  int n = snprintf(head, sizeof head,
                   "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                   "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">\n",
                   p->width, p->height, p->width, p->height);
  FY_TRY(fy_fd_write_all(fd, head, (size_t)n, "svg"));
  FY_TRY(fy_fd_write_all(fd, p->body, p->size, "svg"));
  return fy_fd_write_all(fd, "</svg>\n", 7, "svg");
}

fy_status_t fy_svg_write_timeline(const fy_schedule_t *s, const fy_sim_result_t *sim, const fy_svg_options_t *options,
                                  const char *path) {
  static const fy_svg_options_t defaults = {0};
  const fy_svg_options_t *o = options ? options : &defaults;
  int width = o->width > 0 ? o->width : 1400;
  int64_t steps = o->steps > 0 ? o->steps : FY_SVG_DEFAULT_STEPS;
  if (width < MARGIN_LEFT + MARGIN_RIGHT + 200)
    return fy_status_make(FY_INVALID_ARGUMENT, "svg %s: width %d is too narrow", path, width);
  if (!sim->n_spans) return fy_status_make(FY_INVALID_ARGUMENT, "svg %s: the simulation recorded no spans", path);
  svg_t v = {.s = s, .sim = sim, .n_layers = s->graph->n_layers, .plot_x = MARGIN_LEFT,
             .plot_w = width - MARGIN_LEFT - MARGIN_RIGHT};
  v.streamed = calloc((size_t)v.n_layers + 1, sizeof *v.streamed);
  char *body = NULL;
  size_t size = 0;
  v.f = v.streamed ? open_memstream(&body, &size) : NULL;
  if (!v.f) {
    free(v.streamed);
    return fy_status_make(FY_RESOURCE_EXHAUSTED, "svg %s: out of memory", path);
  }
  for (int l = -1; l < v.n_layers; l++) {
    uint64_t res, str;
    fy_schedule_layer_bytes(s, l, &res, &str);
    v.streamed[l + 1] = str > 0;
  }
  double height = 0;
  fy_status_t st = draw(&v, o, steps, &height);
  bool failed = ferror(v.f);
  fclose(v.f);
  free(v.streamed);
  if (!st && failed) st = fy_status_make(FY_RESOURCE_EXHAUSTED, "svg %s: out of memory", path);
  picture_t picture = {width, (int)ceil(height), body, size};
  if (!st) st = fy_status_annotate(fy_file_write_atomic(path, write_picture, &picture), "svg");
  free(body);
  return st;
}
