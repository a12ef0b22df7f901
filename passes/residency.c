/* Pass: residency — what stays in VRAM, what streams, what runs on the CPU.
 * Requires: cost, memplan, kvcache.
 * Produces: placement per weight, prefetch depth, ring size (n_slots) and
 * slot bytes, per stage which layers run on the host, and the predicted
 * request time (prefill once + decode `repeat` times).
 *
 * The objective is the simulated request time under the budget
 *   budget - activations - KV cache >= resident bytes + n_slots * slot bytes,
 * evaluated with the layer-level pipeline model (pipeline.h). Candidates:
 *  - ferry's own: for every ring size and slot size, keep everything resident
 *    except, walking layers from the last to the first, the largest set of a
 *    layer's tensors that fits a slot (the last one trimmed to what is still
 *    missing), so the budget is filled down to single tensors; optionally the
 *    first h layers computed by the host in decode (and in prefill), where
 *    the host reads its weights faster than the bus can bring them; and the
 *    embedding lookup on the host, which takes the table out of VRAM (a
 *    step needs only its tokens' rows);
 *  - the baselines' own decisions (sequential, prefetch1, first-k, ngl), so
 *    that ferry is never worse than the best of them by construction.
 * Baseline policies take only their own candidate. Norms and biases (tensors
 * under 1/64 of their layer, or 64 KiB) always stay resident. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "passes/compile.h"
#include "passes/pipeline.h"

#define MAX_SUBSET_WEIGHTS 16
#define MAX_RING 5
#define SMALL_TENSOR_BYTES 65536u

typedef struct {
  int n_weights;
  int weights[MAX_SUBSET_WEIGHTS]; /* streamable weights owned by the unit */
  uint64_t *sums;                  /* distinct subset sums, ascending */
  uint32_t *masks;
  int n_sums;
} owner_t;

typedef struct {
  fy_compile_t *c;
  int n_units; /* pre, layers..., post */
  int *node_unit;
  int **unit_weights; /* per unit, the weights its nodes read (deduplicated) */
  int *n_unit_weights;
  int *owner_of; /* per value: owning unit, -1 for non-weights */
  owner_t *owners;
  double *unit_gpu, *unit_host; /* [stage][unit] */
  double *crossing;             /* per stage: one activation row-block over the bus */
  uint64_t avail;               /* budget - activations - KV cache */
  uint64_t weight_bytes;
  fy_pipeline_unit_t *scratch;
} model_t;

typedef struct {
  int n_slots;
  int host_layers;
  bool prefill_host;
  bool pre_host; /* the embedding lookup on the host, its table out of VRAM */
  bool *resident; /* per value */
  uint64_t slot_bytes, resident_bytes;
  double seconds;
} candidate_t;

/* Bytes a weight takes in a region: layouts start a new copy range at a
 * 256-byte boundary wherever file adjacency breaks (stream.c, build.c). */
static uint64_t padded(uint64_t bytes) { return bytes + 256; }

static bool host_in_stage(const model_t *m, const candidate_t *k, int s) {
  return k->host_layers > 0 && (k->prefill_host || m->c->graph->stages[s].max_tokens == 1);
}

static bool unit_on_host(const model_t *m, const candidate_t *k, int s, int u) {
  if (u == 0) return k->pre_host;
  return u >= 1 && u <= k->host_layers && host_in_stage(m, k, s);
}

static uint64_t group_bytes(const model_t *m, const candidate_t *k, int u) {
  uint64_t b = 0;
  for (int i = 0; i < m->n_unit_weights[u]; i++) {
    int v = m->unit_weights[u][i];
    if (!k->resident[v]) b += padded(m->c->graph->values[v].nbytes);
  }
  return b;
}

/* Bytes the candidate's resident weights take in the resident region. */
static uint64_t resident_bytes(const model_t *m, const candidate_t *k) {
  const fy_graph_t *g = m->c->graph;
  uint64_t b = 0;
  for (int v = 0; v < g->n_values; v++)
    if (g->values[v].kind == FY_VALUE_WEIGHT && k->resident[v]) b += padded(g->values[v].nbytes);
  return b;
}

/* Fills in slot_bytes, resident_bytes and seconds; returns false when the candidate does not fit. */
static bool evaluate(model_t *m, candidate_t *k) {
  const fy_graph_t *g = m->c->graph;
  k->resident_bytes = resident_bytes(m, k);
  k->slot_bytes = 0;
  for (int s = 0; s < g->n_stages; s++)
    for (int u = 0; u < m->n_units; u++)
      if (!unit_on_host(m, k, s, u)) {
        uint64_t b = group_bytes(m, k, u);
        if (b > k->slot_bytes) k->slot_bytes = b;
      }
  if (k->slot_bytes == 0) k->n_slots = 0;
  else if (k->n_slots == 0) return false;
  if (k->resident_bytes > m->avail || (uint64_t)k->n_slots * k->slot_bytes > m->avail - k->resident_bytes)
    return false;
  double h2d = m->c->target.h2d_pinned_gbps * 1e9, total = 0;
  for (int s = 0; s < g->n_stages; s++) {
    for (int u = 0; u < m->n_units; u++) {
      bool host = unit_on_host(m, k, s, u);
      fy_pipeline_unit_t *pu = &m->scratch[u];
      pu->compute_seconds = host ? m->unit_host[s * m->n_units + u] : m->unit_gpu[s * m->n_units + u];
      /* Token ids start on the host and logits end there: only a GPU neighbour costs a crossing. */
      if (host && u > 0 && !unit_on_host(m, k, s, u - 1)) pu->compute_seconds += m->crossing[s];
      if (host && u + 1 < m->n_units && !unit_on_host(m, k, s, u + 1)) pu->compute_seconds += m->crossing[s];
      pu->copy_seconds = host ? 0 : (double)group_bytes(m, k, u) / h2d;
    }
    total += fy_pipeline_stage_seconds(m->scratch, m->n_units, k->n_slots, g->stages[s].repeat, NULL);
  }
  k->seconds = total;
  return true;
}

static fy_status_t build_model(fy_compile_t *c, model_t *m) {
  const fy_graph_t *g = c->graph;
  int L = g->n_layers;
  m->c = c;
  m->n_units = L + 2;
  size_t nu = (size_t)m->n_units, ns = (size_t)g->n_stages;
  m->node_unit = calloc((size_t)g->n_nodes + 1, sizeof(int));
  m->unit_weights = calloc(nu, sizeof(int *));
  m->n_unit_weights = calloc(nu, sizeof(int));
  m->owner_of = malloc(sizeof(int) * ((size_t)g->n_values + 1));
  m->owners = calloc(nu, sizeof(owner_t));
  m->unit_gpu = calloc(nu * ns, sizeof(double));
  m->unit_host = calloc(nu * ns, sizeof(double));
  m->crossing = calloc(ns, sizeof(double));
  m->scratch = calloc(nu, sizeof(fy_pipeline_unit_t));
  if (!m->node_unit || !m->unit_weights || !m->n_unit_weights || !m->owner_of || !m->owners || !m->unit_gpu ||
      !m->unit_host || !m->crossing || !m->scratch)
    return fy_status_make(FY_RESOURCE_EXHAUSTED, "residency: out of memory");
  for (int v = 0; v < g->n_values; v++) m->owner_of[v] = -1;

  for (int s = 0; s < g->n_stages; s++) {
    const fy_stage_t *st = &g->stages[s];
    m->crossing[s] = fy_compile_crossing_seconds(c, s);
    bool seen_layer = false;
    for (int i = st->first_node; i < st->first_node + st->n_nodes; i++) {
      const fy_node_t *n = &g->nodes[i];
      int u = n->layer >= 0 ? n->layer + 1 : seen_layer ? L + 1 : 0;
      seen_layer |= n->layer >= 0;
      m->node_unit[i] = u;
      m->unit_gpu[s * m->n_units + u] += c->node_seconds[i];
      m->unit_host[s * m->n_units + u] += c->node_host_seconds[i];
      for (int k = 0; k < n->n_inputs; k++) {
        int v = n->inputs[k];
        if (g->values[v].kind != FY_VALUE_WEIGHT) continue;
        bool have = false;
        for (int j = 0; j < m->n_unit_weights[u] && !have; j++) have = m->unit_weights[u][j] == v;
        if (have) continue;
        int *grown = realloc(m->unit_weights[u], sizeof(int) * (size_t)(m->n_unit_weights[u] + 1));
        if (!grown) return fy_status_make(FY_RESOURCE_EXHAUSTED, "residency: out of memory");
        m->unit_weights[u] = grown;
        grown[m->n_unit_weights[u]++] = v;
        if (m->owner_of[v] < 0) m->owner_of[v] = g->values[v].layer >= 0 ? g->values[v].layer + 1 : u;
      }
    }
  }
  /* Streamable weights per owner, largest first, and their distinct subset sums. */
  for (int u = 0; u < m->n_units; u++) {
    owner_t *o = &m->owners[u];
    uint64_t unit_bytes = 0;
    for (int v = 0; v < g->n_values; v++)
      if (m->owner_of[v] == u) unit_bytes += g->values[v].nbytes;
    /* the largest streamable weights, at most MAX_SUBSET_WEIGHTS of them */
    for (int v = 0; v < g->n_values; v++) {
      if (m->owner_of[v] != u) continue;
      uint64_t b = g->values[v].nbytes;
      if (b < SMALL_TENSOR_BYTES || b < unit_bytes / 64) continue;
      int pos = o->n_weights;
      if (pos == MAX_SUBSET_WEIGHTS) {
        if (g->values[o->weights[pos - 1]].nbytes >= b) continue;
        pos--;
      } else {
        o->n_weights++;
      }
      for (; pos > 0 && g->values[o->weights[pos - 1]].nbytes < b; pos--) o->weights[pos] = o->weights[pos - 1];
      o->weights[pos] = v;
    }
    uint32_t n_sub = 1u << o->n_weights;
    o->sums = malloc(sizeof(uint64_t) * n_sub);
    o->masks = malloc(sizeof(uint32_t) * n_sub);
    if (!o->sums || !o->masks) return fy_status_make(FY_RESOURCE_EXHAUSTED, "residency: out of memory");
    for (uint32_t mask = 1; mask < n_sub; mask++) {
      uint64_t sum = 0;
      for (int j = 0; j < o->n_weights; j++)
        if (mask & (1u << j)) sum += g->values[o->weights[j]].nbytes;
      /* insertion into the sorted distinct list */
      int lo = 0, hi = o->n_sums;
      while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (o->sums[mid] < sum) lo = mid + 1;
        else hi = mid;
      }
      if (lo < o->n_sums && o->sums[lo] == sum) continue;
      memmove(o->sums + lo + 1, o->sums + lo, sizeof(uint64_t) * (size_t)(o->n_sums - lo));
      memmove(o->masks + lo + 1, o->masks + lo, sizeof(uint32_t) * (size_t)(o->n_sums - lo));
      o->sums[lo] = sum;
      o->masks[lo] = mask;
      o->n_sums++;
    }
  }
  for (int v = 0; v < g->n_values; v++)
    if (g->values[v].kind == FY_VALUE_WEIGHT) m->weight_bytes += padded(g->values[v].nbytes);
  return NULL;
}

static void free_model(model_t *m) {
  for (int u = 0; m->unit_weights && u < m->n_units; u++) free(m->unit_weights[u]);
  for (int u = 0; m->owners && u < m->n_units; u++) {
    free(m->owners[u].sums);
    free(m->owners[u].masks);
  }
  free(m->unit_weights), free(m->n_unit_weights), free(m->node_unit), free(m->owner_of), free(m->owners);
  free(m->unit_gpu), free(m->unit_host), free(m->crossing), free(m->scratch);
}

static void set_all_resident(const model_t *m, candidate_t *k, bool resident) {
  const fy_graph_t *g = m->c->graph;
  for (int v = 0; v < g->n_values; v++) k->resident[v] = g->values[v].kind == FY_VALUE_WEIGHT && resident;
}

/* Every weight whose owning unit is u (0: the embedding, L+1: the head). */
static void set_owner(const model_t *m, candidate_t *k, int u, bool resident) {
  for (int v = 0; v < m->c->graph->n_values; v++)
    if (m->owner_of[v] == u) k->resident[v] = resident;
}

static void set_layer(const model_t *m, candidate_t *k, int layer, bool resident) {
  const fy_graph_t *g = m->c->graph;
  for (int v = 0; v < g->n_values; v++)
    if (g->values[v].kind == FY_VALUE_WEIGHT && g->values[v].layer == layer) k->resident[v] = resident;
}

/* Whole layers streamed after a resident prefix of `prefix` layers; global
 * weights resident when that fits, else streamed too. Returns whether the
 * candidate fits (it is then evaluated). */
static bool whole_layer_candidate(model_t *m, candidate_t *k, int n_slots, int prefix) {
  int L = m->c->graph->n_layers;
  set_all_resident(m, k, true);
  for (int l = prefix; l < L; l++) set_layer(m, k, l, false);
  k->n_slots = n_slots;
  k->host_layers = 0;
  k->prefill_host = false;
  k->pre_host = false;
  if (evaluate(m, k)) return true;
  set_layer(m, k, -1, false);
  k->n_slots = n_slots;
  return evaluate(m, k);
}

static bool better(const candidate_t *a, const candidate_t *best) {
  if (best->seconds < 0) return true;
  if (a->seconds < best->seconds * (1 - 1e-12)) return true;
  if (a->seconds > best->seconds * (1 + 1e-12)) return false;
  return a->resident_bytes + (uint64_t)a->n_slots * a->slot_bytes <
         best->resident_bytes + (uint64_t)best->n_slots * best->slot_bytes;
}

static void consider(model_t *m, candidate_t *k, candidate_t *best) {
  if (!evaluate(m, k)) return;
  if (better(k, best)) {
    bool *keep = best->resident;
    memcpy(keep, k->resident, sizeof(bool) * (size_t)m->c->graph->n_values);
    *best = *k;
    best->resident = keep;
  }
}

/* ferry's fill: stream from the last layer backwards the largest tensor set
 * that fits a slot of slot_bytes, until the resident rest fits. */
static bool fill_candidate(model_t *m, candidate_t *k, int n_slots, uint64_t slot_bytes, int host_layers,
                           bool prefill_host, bool pre_host) {
  int L = m->c->graph->n_layers;
  set_all_resident(m, k, true);
  k->n_slots = n_slots;
  k->host_layers = host_layers;
  k->prefill_host = prefill_host;
  k->pre_host = pre_host;
  if (pre_host) set_owner(m, k, 0, false);
  for (int l = 0; l < host_layers; l++) {
    const owner_t *o = &m->owners[l + 1];
    for (int j = 0; j < o->n_weights; j++) k->resident[o->weights[j]] = false;
  }
  uint64_t room = (uint64_t)n_slots * slot_bytes;
  if (room > m->avail) return false;
  uint64_t resident = resident_bytes(m, k), limit = m->avail - room;
  /* owners in fill order: layers last to first, then the head, then the embedding */
  for (int i = 0; i < m->n_units && resident > limit; i++) {
    int u = i < L ? L - i : i == L ? L + 1 : 0;
    if ((u >= 1 && u <= host_layers) || (u == 0 && pre_host)) continue;
    const owner_t *o = &m->owners[u];
    uint64_t excess = resident - limit;
    int pick = -1;
    for (int j = 0; j < o->n_sums && o->sums[j] <= slot_bytes; j++) {
      pick = j;
      if (o->sums[j] >= excess) break;
    }
    if (pick < 0) continue;
    for (int j = 0; j < o->n_weights; j++)
      if (o->masks[pick] & (1u << j)) k->resident[o->weights[j]] = false;
    resident -= o->sums[pick];
  }
  return resident <= limit;
}

static int default_prefetch(fy_policy_t policy) {
  return policy == FY_POLICY_SEQUENTIAL ? 0 : 1;
}

fy_status_t fy_pass_residency(fy_compile_t *c) {
  const fy_graph_t *g = c->graph;
  int L = g->n_layers;
  uint64_t fixed = c->activation_bytes + c->kv_bytes;
  /* The least any schedule needs: one slot holding the largest layer. */
  uint64_t largest = 0;
  int largest_layer = 0;
  for (int l = 0; l < L; l++) {
    uint64_t b = fy_graph_weight_bytes(g, l);
    if (b > largest) largest = b, largest_layer = l;
  }
  if (c->budget < fixed || c->budget - fixed < largest)
    return fy_status_make(FY_RESOURCE_EXHAUSTED,
                          "budget %llu bytes is too small: layer %s needs %llu bytes of streaming slot on top of "
                          "%llu bytes of activations and %llu bytes of KV cache; %llu bytes missing",
                          (unsigned long long)c->budget, g->layers[largest_layer].name, (unsigned long long)largest,
                          (unsigned long long)c->activation_bytes, (unsigned long long)c->kv_bytes,
                          (unsigned long long)(fixed + largest - c->budget));

  model_t m = {0};
  fy_status_t st = build_model(c, &m);
  size_t nv = (size_t)g->n_values + 1;
  candidate_t best = {.seconds = -1, .resident = calloc(nv, sizeof(bool))};
  candidate_t k = {.resident = calloc(nv, sizeof(bool))};
  if (!st && (!best.resident || !k.resident)) st = fy_status_make(FY_RESOURCE_EXHAUSTED, "residency: out of memory");
  m.avail = c->budget - fixed;
  fy_policy_t policy = c->options.policy;
  int prefetch = c->options.prefetch >= 0 ? c->options.prefetch : default_prefetch(policy);

  if (!st && m.weight_bytes <= m.avail) {
    /* Everything fits: nothing streams, no copies at all. */
    set_all_resident(&m, &k, true);
    k.n_slots = 0;
    k.host_layers = 0;
    k.prefill_host = k.pre_host = false;
    consider(&m, &k, &best);
  }
  if (!st && best.seconds < 0 && (policy == FY_POLICY_SEQUENTIAL || policy == FY_POLICY_FERRY)) {
    if (whole_layer_candidate(&m, &k, 1, 0)) consider(&m, &k, &best);
  }
  if (!st && best.seconds < 0 && (policy == FY_POLICY_PREFETCH1 || policy == FY_POLICY_FERRY)) {
    if (whole_layer_candidate(&m, &k, policy == FY_POLICY_FERRY ? 2 : prefetch + 1, 0)) consider(&m, &k, &best);
  }
  if (!st && (policy == FY_POLICY_FIRST_K || policy == FY_POLICY_FERRY)) {
    /* stable-diffusion.cpp: K = (free - (prefetch+1)*block - max(min_free, 512 MB) - 768 MB) / block,
     * with the block size measured on layer 0 and free = VRAM less the KV cache. */
    int depth = policy == FY_POLICY_FIRST_K ? prefetch : 1;
    double block = (double)fy_graph_weight_bytes(g, 0);
    double reserve = fmax((double)c->target.reserve_bytes, 512.0 * 1024 * 1024);
    double free_bytes = (double)c->target.vram_bytes - (double)c->kv_bytes;
    double kk = floor((free_bytes - (depth + 1) * block - reserve - 768.0 * 1024 * 1024) / block);
    int K = kk < 0 ? 0 : kk > L ? L : (int)kk;
    for (; K >= 0; K--) {
      if (whole_layer_candidate(&m, &k, depth + 1, K)) break;
    }
    if (K >= 0) consider(&m, &k, &best);
  }
  if (!st && (policy == FY_POLICY_NGL || policy == FY_POLICY_FERRY)) {
    /* llama.cpp -ngl: the last N layers (and the output) on the GPU, the first L-N on the CPU,
     * no streaming; -ngl takes the largest N that fits, ferry weighs every N. */
    for (int h = 0; h <= L; h++) {
      set_all_resident(&m, &k, true);
      for (int l = 0; l < h; l++) set_layer(&m, &k, l, false);
      k.n_slots = 0;
      k.host_layers = h;
      k.prefill_host = true;
      /* llama.cpp keeps token_embd in host memory and looks tokens up on the CPU
       * (a tied table is needed on the GPU by the head anyway). */
      k.pre_host = !g->config.tie_embeddings;
      if (k.pre_host) set_owner(&m, &k, 0, false);
      if (!evaluate(&m, &k)) continue;
      consider(&m, &k, &best);
      if (policy == FY_POLICY_NGL) break;
    }
  }
  if (!st && policy == FY_POLICY_FERRY) {
    int ring_lo = c->options.prefetch >= 0 ? c->options.prefetch + 1 : 2;
    int ring_hi = c->options.prefetch >= 0 ? c->options.prefetch + 1 : MAX_RING;
    /* slot sizes: the distinct subset sums of every owner, merged */
    int n_slot_sizes = 0;
    uint64_t *slot_sizes = NULL;
    for (int u = 0; u < m.n_units; u++) {
      uint64_t *grown = realloc(slot_sizes, sizeof(uint64_t) * (size_t)(n_slot_sizes + m.owners[u].n_sums + 1));
      if (!grown) {
        free(slot_sizes);
        slot_sizes = NULL;
        break;
      }
      slot_sizes = grown;
      for (int j = 0; j < m.owners[u].n_sums; j++) {
        bool have = false;
        for (int i = 0; i < n_slot_sizes && !have; i++) have = slot_sizes[i] == m.owners[u].sums[j];
        if (!have) slot_sizes[n_slot_sizes++] = m.owners[u].sums[j];
      }
    }
    if (!slot_sizes) st = fy_status_make(FY_RESOURCE_EXHAUSTED, "residency: out of memory");
    for (int ring = ring_lo; !st && ring <= ring_hi; ring++) {
      int host_step = L > 16 ? L / 16 : 1;
      for (int h = 0; h <= L; h = h == L ? L + 1 : h + host_step > L ? L : h + host_step) {
        for (int ph = 0; ph <= (h > 0); ph++) {
          for (int pre = 0; pre <= 1; pre++) {
            for (int j = 0; j < n_slot_sizes; j++)
              if (fill_candidate(&m, &k, ring, slot_sizes[j], h, ph, pre)) consider(&m, &k, &best);
            if ((h > 0 || pre) && fill_candidate(&m, &k, 0, 0, h, ph, pre)) consider(&m, &k, &best);
          }
        }
      }
    }
    free(slot_sizes);
  }
  if (!st && best.seconds < 0)
    st = fy_status_make(FY_RESOURCE_EXHAUSTED, "budget %llu bytes: policy %s finds no schedule that fits",
                        (unsigned long long)c->budget, fy_policy_name(policy));
  if (!st) {
    c->placement = calloc(nv, sizeof(fy_placement_t));
    for (int s = 0; c->stages && s < g->n_stages; s++) {
      c->stages[s].layer_on_host = calloc((size_t)L + 1, sizeof(bool));
      if (!c->stages[s].layer_on_host) st = fy_status_make(FY_RESOURCE_EXHAUSTED, "residency: out of memory");
      for (int l = 0; !st && l < L; l++) c->stages[s].layer_on_host[l] = unit_on_host(&m, &best, s, l + 1);
      c->stages[s].pre_on_host = best.pre_host;
    }
    if (!c->placement) st = fy_status_make(FY_RESOURCE_EXHAUSTED, "residency: out of memory");
  }
  if (!st) {
    for (int v = 0; v < g->n_values; v++)
      c->placement[v] = best.resident[v] ? FY_PLACE_RESIDENT : FY_PLACE_STREAMED;
    c->resident_bytes = best.resident_bytes;
    c->n_slots = best.n_slots;
    c->slot_bytes = best.slot_bytes;
    c->prefetch = best.n_slots > 0 ? best.n_slots - 1 : 0;
    c->predicted_request_seconds = best.seconds;
  }
  free(best.resident);
  free(k.resident);
  free_model(&m);
  return st;
}
