// Sessions: per-sequence KV caches and whole decoder steps.
//
// prefill runs each sequence on its own (in chunks of kPrefillChunk tokens), so a sequence's results never depend
// on which other sequences share the call: that is what makes scoring identical whatever the batch size. Small
// models run the sequences of one call in parallel lanes (one thread each, kernels serial inside a lane: the thread
// pool runs nested regions serially); larger models run them one after the other with every kernel parallel.
// decode batches one new token of B sequences through each linear (weights read once per step) and attends with
// attention_decode over the B caches.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "model.h"
#include "quanteval/threadpool.h"

namespace quanteval::rt {

namespace {
// Models with fewer linear weights than this run the sequences of a prefill in parallel lanes.
constexpr int64_t kLaneParams = 16 << 20;

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Adds the time since the last mark to *acc when profiling (one clock read per region otherwise skipped).
struct Marker {
  bool on;
  double t;
  explicit Marker(bool o) : on(o), t(o ? now_s() : 0) {}
  void to(double& acc) {
    if (!on) return;
    double n = now_s();
    acc += n - t;
    t = n;
  }
};

// Full log-softmax of a row (max-subtracted, double-accumulated like log_softmax_gather).
void log_softmax_row(const float* x, int64_t V, float* out) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < V; i++) mx = std::max(mx, x[i]);
  double s = 0;
  for (int64_t i = 0; i < V; i++) s += std::exp((double)x[i] - mx);
  const float lse = mx + (float)std::log(s);
  for (int64_t i = 0; i < V; i++) out[i] = x[i] - lse;
}

int32_t argmax_row(const float* x, int64_t V) {
  int32_t best = 0;
  for (int64_t i = 1; i < V; i++)
    if (x[i] > x[best]) best = (int32_t)i;
  return best;
}
}  // namespace

namespace {
// QUANTEVAL_WINDOW_EVICT=0 keeps every position of sliding-window layers (tests compare against it).
bool window_evict_env() {
  const char* e = std::getenv("QUANTEVAL_WINDOW_EVICT");
  return !(e && std::string(e) == "0");
}
}  // namespace

Session::Session(std::shared_ptr<Model> m, KVType kt, KVType vt, int64_t ml)
    : Session(std::move(m), kt, vt, ml, window_evict_env()) {}

Session::Session(std::shared_ptr<Model> m, KVType kt, KVType vt, int64_t ml, bool evict)
    : model(std::move(m)), k_type(kt), v_type(vt), max_len(ml), window_evict(evict) {
  if (ml <= 0) throw std::out_of_range("session: max_len must be > 0");
  if ((kt == KVType::I4 || vt == KVType::I4) && model->cfg.head_dim % 2)
    throw std::invalid_argument(std::string("session: an int4 ") + (kt == KVType::I4 ? "K" : "V") +
                                " cache needs an even head_dim, got " + std::to_string(model->cfg.head_dim));
}
Session::~Session() = default;

Workspace& Session::lane(size_t i) {
  while (lanes_.size() <= i) lanes_.push_back(std::make_unique<Workspace>());
  return *lanes_[i];
}

int Session::alloc_seq() {
  int best = -1;
  for (size_t i = 0; i < seqs_.size(); i++)
    if (!seqs_[i].in_use && (best < 0 || seqs_[i].bytes() > seqs_[best].bytes())) best = (int)i;
  if (best < 0) {
    seqs_.emplace_back();
    best = (int)seqs_.size() - 1;
  }
  SeqCache& c = seqs_[best];
  c.in_use = true;
  c.len = 0;
  std::fill(c.base.begin(), c.base.end(), 0);
  return best;
}

const SeqCache& Session::seq(int id) const {
  if (id < 0 || id >= (int)seqs_.size() || !seqs_[id].in_use)
    throw std::out_of_range("session: no live sequence with id " + std::to_string(id));
  return seqs_[id];
}
SeqCache& Session::seq(int id) { return const_cast<SeqCache&>(static_cast<const Session*>(this)->seq(id)); }

void Session::free_seq(int id) {
  SeqCache& c = seq(id);
  c.in_use = false;
  c.len = 0;
  std::fill(c.base.begin(), c.base.end(), 0);
}

int64_t Session::seq_len(int id) const { return seq(id).len; }

int Session::blocking_layer(const SeqCache& c, int64_t len) const {
  if (len == 0) return -1;  // an empty sequence needs nothing
  for (size_t l = 0; l < c.base.size(); l++) {
    if (c.base[l] == 0) continue;
    const int64_t W = model->cfg.layer_window((int)l);
    const int64_t need = W > 0 ? std::max<int64_t>(0, len - W + 1) : 0;  // first position the query at len sees
    if (need < c.base[l]) return (int)l;
  }
  return -1;
}

bool Session::can_truncate(int id, int64_t len) const {
  const SeqCache& c = seq(id);
  return len >= 0 && len <= c.len && blocking_layer(c, len) < 0;
}

int64_t Session::first_held(int id, int layer) const {
  const SeqCache& c = seq(id);
  if (layer < 0 || layer >= model->cfg.n_layers)
    throw std::out_of_range("session: layer must be in [0, " + std::to_string(model->cfg.n_layers) + "), got " +
                            std::to_string(layer));
  return (size_t)layer < c.base.size() ? c.base[layer] : 0;
}

void Session::truncate(int id, int64_t len) {
  SeqCache& c = seq(id);
  if (len < 0 || len > c.len)
    throw std::out_of_range("session: truncate length must be in [0, " + std::to_string(c.len) + "], got " + std::to_string(len));
  const int l = blocking_layer(c, len);
  if (l >= 0)
    throw std::out_of_range("session: cannot truncate sequence " + std::to_string(id) + " to " + std::to_string(len) +
                            " tokens: layer " + std::to_string(l) + " (sliding window " +
                            std::to_string(model->cfg.layer_window(l)) + ") holds positions [" +
                            std::to_string(c.base[l]) + ", " + std::to_string(c.len) +
                            ") and dropped earlier ones that the token at position " + std::to_string(len) +
                            " would attend to; truncate to 0 and prefill again (or to >= " +
                            std::to_string(c.base[l] + model->cfg.layer_window(l) - 1) + ")");
  c.len = len;
  if (len == 0) std::fill(c.base.begin(), c.base.end(), 0);
}

void Session::fork_seq(int src, int count, int32_t* out) {
  seq(src);  // validates src before anything is allocated
  if (count < 1) throw std::out_of_range("session: fork count must be >= 1, got " + std::to_string(count));
  for (int i = 0; i < count; i++) {
    const int id = alloc_seq();  // may grow seqs_: take references after
    // The whole cache is copied (its allocation, not just [0, len)), so any per-layer state travels with it.
    seqs_[id] = seqs_[src];
    out[i] = id;
  }
}

void Session::fill_zeros(int id, int64_t len) {
  SeqCache& c = seq(id);
  if (len < c.len) throw std::out_of_range("session: fill length " + std::to_string(len) + " is below the sequence length " + std::to_string(c.len));
  if (len > max_len)
    throw std::out_of_range("session: sequence of " + std::to_string(len) + " tokens exceeds max_len " +
                            std::to_string(max_len));
  if (len == c.len) return;
  make_room(c, len - c.len);
  const int64_t H = model->cfg.n_kv_heads;
  const size_t kbpt = (size_t)H * kv_bytes_per_head(k_type, model->cfg.head_dim);
  const size_t vbpt = (size_t)H * kv_bytes_per_head(v_type, model->cfg.head_dim);
  for (int l = 0; l < model->cfg.n_layers; l++) {
    const int64_t r0 = c.len - c.base[l], r1 = len - c.base[l];  // rows of positions [c.len, len)
    std::memset(c.k[l].data() + r0 * kbpt, 0, (r1 - r0) * kbpt);
    std::memset(c.v[l].data() + r0 * vbpt, 0, (r1 - r0) * vbpt);
    if (kv_quantized(k_type))
      for (auto* vv : {&c.ks, &c.kz}) std::fill((*vv)[l].begin() + r0 * H, (*vv)[l].begin() + r1 * H, 0.f);
    if (kv_quantized(v_type))
      for (auto* vv : {&c.vs, &c.vz}) std::fill((*vv)[l].begin() + r0 * H, (*vv)[l].begin() + r1 * H, 0.f);
  }
  c.len = len;
}

namespace {
// Rows [off, off + live) of a per-layer array (per_tok elements a token) become rows [0, live): into a fresh array
// of `cap` tokens when `realloc` (exactly that size: the memory accounting counts capacities), else in place.
template <typename Vec>
void move_rows(Vec& a, size_t per_tok, int64_t off, int64_t live, bool realloc, int64_t cap) {
  using E = typename Vec::value_type;
  if (realloc) {
    Vec n((size_t)cap * per_tok);
    if (live > 0) std::memcpy(n.data(), a.data() + off * per_tok, (size_t)live * per_tok * sizeof(E));
    a.swap(n);
  } else if (off > 0 && live > 0) {
    std::memmove(a.data(), a.data() + off * per_tok, (size_t)live * per_tok * sizeof(E));
  }
}
}  // namespace

void Session::make_room(SeqCache& c, int64_t T) {
  const int64_t p = c.len, end = p + T;
  if (end > max_len)
    throw std::out_of_range("session: sequence of " + std::to_string(end) + " tokens exceeds max_len " +
                            std::to_string(max_len));
  const auto& cfg = model->cfg;
  const int L = cfg.n_layers;
  const size_t H = (size_t)cfg.n_kv_heads;
  const size_t kbpt = H * kv_bytes_per_head(k_type, cfg.head_dim), vbpt = H * kv_bytes_per_head(v_type, cfg.head_dim);
  const bool kq = kv_quantized(k_type), vq = kv_quantized(v_type);
  if ((int)c.k.size() != L) {
    c.k.resize(L); c.v.resize(L);
    c.base.assign(L, 0); c.cap.assign(L, 0);
    if (kq) { c.ks.resize(L); c.kz.resize(L); }
    if (vq) { c.vs.resize(L); c.vz.resize(L); }
  }
  for (int l = 0; l < L; l++) {
    const int64_t W = window_evict ? cfg.layer_window(l) : 0;
    int64_t keep = c.base[l];  // first position held after this call
    const bool realloc = end - c.base[l] > c.cap[l];  // no room for the new tokens: copy into larger arrays
    // Full attention: positions = rows, doubling up to max_len.
    int64_t cap = std::min(max_len, std::max<int64_t>({end, 2 * c.cap[l], 64}));
    if (W > 0) {
      // The first new query (position p) sees [p - W + 1, p]; later ones see less of the past. Drop the dead prefix
      // once it reaches the slack (in place), or whenever the arrays are copied anyway to grow. Short of room with
      // less dead than the slack, grow rather than compact, or a cache just under its bound would move W rows on
      // every step.
      const int64_t from = std::max<int64_t>(c.base[l], p - W + 1), slack = window_slack(W);
      if (realloc || from - c.base[l] >= slack) keep = from;
      // Bounded: before this step at most W - 1 + (slack - 1) positions are held, so W - 1 + slack + T rows never
      // run out (growth is geometric up to there, then only in-place compaction).
      const int64_t bound = std::min(max_len, W - 1 + slack + T);
      cap = std::min(max_len, std::max(end - keep, std::min(bound, std::max<int64_t>(2 * c.cap[l], 64))));
    }
    const int64_t off = keep - c.base[l], live = p - keep;
    if (!realloc && off == 0) continue;
    move_rows(c.k[l], kbpt, off, live, realloc, cap);
    move_rows(c.v[l], vbpt, off, live, realloc, cap);
    if (kq) { move_rows(c.ks[l], H, off, live, realloc, cap); move_rows(c.kz[l], H, off, live, realloc, cap); }
    if (vq) { move_rows(c.vs[l], H, off, live, realloc, cap); move_rows(c.vz[l], H, off, live, realloc, cap); }
    if (realloc) c.cap[l] = cap;
    c.base[l] = keep;
  }
}

KVView Session::view(const SeqCache& c, int l) const {
  KVView v;
  v.k_type = k_type;
  v.v_type = v_type;
  v.n_kv_heads = model->cfg.n_kv_heads;
  v.head_dim = model->cfg.head_dim;
  v.window = model->cfg.layer_window(l);
  v.pos0 = c.base[l];  // row 0 holds position base[l]
  v.k = c.k[l].data();
  v.v = c.v[l].data();
  if (kv_quantized(k_type)) { v.k_scale = c.ks[l].data(); v.k_zero = c.kz[l].data(); }
  if (kv_quantized(v_type)) { v.v_scale = c.vs[l].data(); v.v_zero = c.vz[l].data(); }
  return v;
}

void Session::forward_one(Workspace& ws, SeqCache& c, const int32_t* tokens, int64_t T, bool capture) {
  Model& m = *model;
  const auto& cfg = m.cfg;
  const int64_t D = cfg.hidden, Hq = (int64_t)cfg.n_heads * cfg.head_dim, Hkv = (int64_t)cfg.n_kv_heads * cfg.head_dim,
                I = cfg.intermediate;
  const int64_t pos0 = c.len;
  make_room(c, T);
  ws.x.resize(T * D); ws.h.resize(T * D); ws.q.resize(T * Hq); ws.att.resize(T * Hq);
  ws.k.resize(T * Hkv); ws.v.resize(T * Hkv); ws.g.resize(T * I); ws.u.resize(T * I); ws.pos.resize(T);
  for (int64_t t = 0; t < T; t++) ws.pos[t] = (int32_t)(pos0 + t);
  embedding(m.embed.data(), m.embed_dtype, cfg.vocab, D, tokens, T, ws.x.data());
  const size_t kbpt = (size_t)cfg.n_kv_heads * kv_bytes_per_head(k_type, cfg.head_dim);
  const size_t vbpt = (size_t)cfg.n_kv_heads * kv_bytes_per_head(v_type, cfg.head_dim);
  const bool kq = kv_quantized(k_type), vq = kv_quantized(v_type);
  for (int l = 0; l < cfg.n_layers; l++) {
    auto store = [&](const float* k, const float* v) {
      const int64_t row = pos0 - c.base[l], so = row * cfg.n_kv_heads;  // position pos0 is row pos0 - base
      kv_store(k, T, cfg.n_kv_heads, cfg.head_dim, k_type, c.k[l].data() + row * kbpt,
               kq ? c.ks[l].data() + so : nullptr, kq ? c.kz[l].data() + so : nullptr);
      kv_store(v, T, cfg.n_kv_heads, cfg.head_dim, v_type, c.v[l].data() + row * vbpt,
               vq ? c.vs[l].data() + so : nullptr, vq ? c.vz[l].data() + so : nullptr);
      return view(c, l);
    };
    decoder_layer(m, l, ws, ws.x.data(), T, pos0, store, capture);
  }
  c.len = pos0 + T;
  rmsnorm(ws.x.data(), m.final_norm.data(), T, D, cfg.eps, ws.h.data());
}

void Session::logits_rows(Workspace& ws, const float* hrows, int64_t R, float* out) {
  model->lm_head.forward(hrows, R, out, ws.aq, false);
}

void Session::prefill(const int32_t* seq_ids, int64_t S, const int32_t* tokens, const int32_t* counts, StepOutputs& out) {
  Model& m = *model;
  m.check_complete();
  const int64_t V = m.cfg.vocab, D = m.cfg.hidden;
  std::vector<SeqCache*> cs(S);
  std::vector<int64_t> tok_off(S + 1, 0);
  for (int64_t s = 0; s < S; s++) {
    cs[s] = &seq(seq_ids[s]);
    for (int64_t r = 0; r < s; r++)
      if (seq_ids[r] == seq_ids[s]) throw std::invalid_argument("prefill: sequence " + std::to_string(seq_ids[s]) + " given twice");
    if (counts[s] < 1) throw std::out_of_range("prefill: counts[" + std::to_string(s) + "] must be >= 1, got " + std::to_string(counts[s]));
    tok_off[s + 1] = tok_off[s] + counts[s];
    if (cs[s]->len + counts[s] > max_len)
      throw std::out_of_range("prefill: sequence " + std::to_string(seq_ids[s]) + " would reach " +
                              std::to_string(cs[s]->len + counts[s]) + " tokens, over max_len " + std::to_string(max_len));
  }
  const int64_t total = tok_off[S];
  for (int64_t i = 0; i < total; i++)
    if (tokens[i] < 0 || tokens[i] >= V)
      throw std::out_of_range("prefill: token " + std::to_string(tokens[i]) + " at index " + std::to_string(i) +
                              " is outside the vocabulary [0, " + std::to_string(V) + ")");
  const int64_t R = out.rows_mode == 2 ? total : out.rows_mode == 1 ? S : 0;
  out.R = R;
  auto row_of = [&](int64_t s, int64_t t) { return out.rows_mode == 2 ? tok_off[s] + t : s; };
  if (R) {
    if (out.want_logits) out.logits.assign(R * V, 0.f);
    if (out.want_log_softmax) out.log_softmax.assign(R * V, 0.f);
    out.argmax.assign(R, -1);
    if (out.targets) out.logprobs.assign(R, std::numeric_limits<float>::quiet_NaN());
    if (out.topk > 0) { out.topk_idx.assign(R * out.topk, -1); out.topk_logp.assign(R * out.topk, 0.f); }
  }
  if (out.capture)
    for (auto& L : m.layers)
      for (auto& l : L.lin)
        if (l.capture && l.capture->K != l.K) throw std::logic_error("capture shape mismatch");

  auto run_seq = [&](Workspace& ws, int64_t s) {
    SeqCache& c = *cs[s];
    const int64_t T = counts[s];
    for (int64_t t0 = 0; t0 < T; t0 += kPrefillChunk) {
      const int64_t Tc = std::min(kPrefillChunk, T - t0);
      forward_one(ws, c, tokens + tok_off[s] + t0, Tc, out.capture);
      if (!R) continue;
      // Rows of this chunk that produce outputs.
      int64_t r0 = 0, nr = Tc;
      if (out.rows_mode == 1) {
        if (t0 + Tc < T) continue;
        r0 = Tc - 1;
        nr = 1;
      }
      ws.logits.resize(nr * V);
      logits_rows(ws, ws.h.data() + r0 * D, nr, ws.logits.data());
      for (int64_t i = 0; i < nr; i++) {
        const int64_t row = row_of(s, t0 + r0 + i);
        const float* lg = ws.logits.data() + i * V;
        if (out.want_logits) std::memcpy(out.logits.data() + row * V, lg, V * 4);
        if (out.want_log_softmax) log_softmax_row(lg, V, out.log_softmax.data() + row * V);
        out.argmax[row] = argmax_row(lg, V);
        if (out.targets) {
          const int32_t tg = out.targets[tok_off[s] + t0 + r0 + i];
          if (tg >= 0) log_softmax_gather(lg, 1, V, &tg, out.logprobs.data() + row);
        }
        if (out.topk > 0) log_softmax_topk(lg, 1, V, out.topk, out.topk_idx.data() + row * out.topk,
                                           out.topk_logp.data() + row * out.topk);
      }
    }
  };

  int64_t params = 0;
  for (auto& L : m.layers)
    for (auto& l : L.lin) params += l.N * l.K;
  const int nl = (int)std::min<int64_t>(S, num_threads());
  if (S > 1 && nl > 1 && !out.capture && params < kLaneParams) {
    for (int i = 0; i < nl; i++) lane(i);
    std::vector<std::string> errs(nl);
    parallel_for(nl, 1, [&](int64_t a, int64_t b) {
      for (int64_t li = a; li < b; li++) {
        try {
          for (int64_t s = li; s < S; s += nl) run_seq(*lanes_[li], s);
        } catch (const std::exception& e) {
          errs[li] = e.what();
        }
      }
    });
    for (auto& e : errs)
      if (!e.empty()) throw std::runtime_error(e);
  } else {
    for (int64_t s = 0; s < S; s++) run_seq(lane(0), s);
  }
}

void Session::decode(const int32_t* seq_ids, int64_t B, const int32_t* tokens, float* logits) {
  Model& m = *model;
  m.check_complete();
  const auto& cfg = m.cfg;
  const int64_t D = cfg.hidden, Hq = (int64_t)cfg.n_heads * cfg.head_dim, Hkv = (int64_t)cfg.n_kv_heads * cfg.head_dim,
                I = cfg.intermediate, V = cfg.vocab;
  std::vector<SeqCache*> cs(B);
  std::vector<int64_t> lens(B);
  std::vector<KVView> views(B);
  Workspace& ws = lane(0);
  ws.pos.resize(B);
  for (int64_t b = 0; b < B; b++) {
    cs[b] = &seq(seq_ids[b]);
    for (int64_t r = 0; r < b; r++)
      if (seq_ids[r] == seq_ids[b]) throw std::invalid_argument("decode: sequence " + std::to_string(seq_ids[b]) + " given twice");
    if (tokens[b] < 0 || tokens[b] >= V)
      throw std::out_of_range("decode: token " + std::to_string(tokens[b]) + " is outside the vocabulary [0, " + std::to_string(V) + ")");
    if (cs[b]->len + 1 > max_len)
      throw std::out_of_range("decode: sequence " + std::to_string(seq_ids[b]) + " is full (max_len " + std::to_string(max_len) + ")");
  }
  DecodeProfile& P = profile;
  Marker mk(P.on);
  const double t_start = P.on ? now_s() : 0;
  for (int64_t b = 0; b < B; b++) {
    make_room(*cs[b], 1);
    ws.pos[b] = (int32_t)cs[b]->len;
    lens[b] = cs[b]->len + 1;
  }
  ws.x.resize(B * D); ws.h.resize(B * D); ws.q.resize(B * Hq); ws.att.resize(B * Hq);
  ws.k.resize(B * Hkv); ws.v.resize(B * Hkv); ws.g.resize(B * I); ws.u.resize(B * I);
  embedding(m.embed.data(), m.embed_dtype, V, D, tokens, B, ws.x.data());
  const float scale = 1.0f / std::sqrt((float)cfg.head_dim);
  const size_t kbpt = (size_t)cfg.n_kv_heads * kv_bytes_per_head(k_type, cfg.head_dim);
  const size_t vbpt = (size_t)cfg.n_kv_heads * kv_bytes_per_head(v_type, cfg.head_dim);
  const bool kq = kv_quantized(k_type), vq = kv_quantized(v_type);
  for (int l = 0; l < cfg.n_layers; l++) {
    Layer& L = m.layers[l];
    rmsnorm(ws.x.data(), L.attn_norm.data(), B, D, cfg.eps, ws.h.data());
    mk.to(P.other);
    {
      Linear* qkv[3] = {&L.lin[kQ], &L.lin[kK], &L.lin[kV]};
      float* out[3] = {ws.q.data(), ws.k.data(), ws.v.data()};
      forward_group(qkv, 3, ws.h.data(), B, out, ws.aq, false);
    }
    mk.to(P.linear);
    rope_apply(ws.q.data(), B, cfg.n_heads, cfg.head_dim, cfg.rope.rotary_dim, ws.pos.data(), m.inv_freq.data());
    rope_apply(ws.k.data(), B, cfg.n_kv_heads, cfg.head_dim, cfg.rope.rotary_dim, ws.pos.data(), m.inv_freq.data());
    mk.to(P.other);
    for (int64_t b = 0; b < B; b++) {
      SeqCache& c = *cs[b];
      const int64_t row = c.len - c.base[l], so = row * cfg.n_kv_heads;  // the new position's row
      kv_store(ws.k.data() + b * Hkv, 1, cfg.n_kv_heads, cfg.head_dim, k_type, c.k[l].data() + row * kbpt,
               kq ? c.ks[l].data() + so : nullptr, kq ? c.kz[l].data() + so : nullptr);
      kv_store(ws.v.data() + b * Hkv, 1, cfg.n_kv_heads, cfg.head_dim, v_type, c.v[l].data() + row * vbpt,
               vq ? c.vs[l].data() + so : nullptr, vq ? c.vz[l].data() + so : nullptr);
      views[b] = view(c, l);
    }
    mk.to(P.kv_store);
    attention_decode(ws.q.data(), B, cfg.n_heads, views.data(), lens.data(), scale, ws.att.data());
    mk.to(P.attention);
    L.lin[kO].forward(ws.att.data(), B, ws.h.data(), ws.aq, false);
    mk.to(P.linear);
    add_inplace(ws.x.data(), ws.h.data(), B * D);
    rmsnorm(ws.x.data(), L.ffn_norm.data(), B, D, cfg.eps, ws.h.data());
    mk.to(P.other);
    {
      Linear* gu[2] = {&L.lin[kGate], &L.lin[kUp]};
      float* out[2] = {ws.g.data(), ws.u.data()};
      forward_group(gu, 2, ws.h.data(), B, out, ws.aq, false);
    }
    mk.to(P.linear);
    silu_mul(ws.g.data(), ws.u.data(), B * I, ws.g.data());
    mk.to(P.other);
    L.lin[kDown].forward(ws.g.data(), B, ws.h.data(), ws.aq, false);
    mk.to(P.linear);
    add_inplace(ws.x.data(), ws.h.data(), B * D);
  }
  for (int64_t b = 0; b < B; b++) cs[b]->len += 1;
  rmsnorm(ws.x.data(), m.final_norm.data(), B, D, cfg.eps, ws.h.data());
  mk.to(P.other);
  logits_rows(ws, ws.h.data(), B, logits);
  mk.to(P.linear);
  if (P.on) {
    P.total += now_s() - t_start;
    P.steps++;
  }
}

void Session::release() {
  std::vector<SeqCache>().swap(seqs_);
  std::vector<std::unique_ptr<Workspace>>().swap(lanes_);
}

std::map<std::string, size_t> Session::memory() const {
  std::map<std::string, size_t> r;
  size_t kb = 0, vb = 0, ws = 0;
  for (auto& c : seqs_) { kb += c.k_bytes(); vb += c.v_bytes(); }
  for (auto& l : lanes_) ws += l->bytes();
  auto name = [](KVType t) {
    switch (t) {
      case KVType::F32: return "f32"; case KVType::F16: return "f16"; case KVType::I8: return "int8";
      case KVType::I4: return "int4"; case KVType::I3: return "int3"; case KVType::I2: return "int2";
    }
    return "?";
  };
  if (k_type == v_type) {
    r[std::string("kv:") + name(k_type)] = kb + vb;
  } else {
    r[std::string("kv:k:") + name(k_type)] = kb;
    r[std::string("kv:v:") + name(v_type)] = vb;
  }
  r["workspace"] = ws;
  return r;
}

}  // namespace quanteval::rt
