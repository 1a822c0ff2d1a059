// Fast attention over a (quantized) KV cache: validation, the split of the work over the thread pool, the merge of
// split-K partial states, and the scalar fallback. The inner loops for AVX2 live in attention_avx2.cpp.
//
// Decode: one task = (sequence b, token range, group of kv heads). Every task serves all G = n_heads / n_kv_heads
// query heads of its kv heads, so each cached K/V row is loaded and dequantized once per step, not G times, and it
// walks its tokens block by block across all its heads, so the cache is read in address order. Sequences are split
// over tokens first (ranges of >= kMinSplit tokens whose online-softmax states are merged afterwards: split-K /
// flash-decoding), then over kv heads, until there are ~4 tasks per thread.
// Prefill: one task = (kv head, tile of query positions); tasks are handed out dynamically, largest (latest
// positions, the longest causal rows) first.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>
#include <vector>

#include "attention_impl.h"
#include "kv_common.h"
#include "quanteval/cpu_features.h"
#include "quanteval/threadpool.h"

namespace quanteval {
namespace detail {

void decode_task_scalar(const DecodeTask& t) {
  const KVView& kv = *t.kv;
  const int D = t.D, H = kv.n_kv_heads;
  const size_t krb = kv_bytes_per_head(kv.k_type, D), vrb = kv_bytes_per_head(kv.v_type, D);
  const bool kq = kv_quantized(kv.k_type), vq = kv_quantized(kv.v_type);
  std::vector<float> k(D), v(D);
  for (int h = t.h0; h < t.h1; h++) {
    const int j0 = (h - t.h0) * t.G;
    for (int g = 0; g < t.G; g++) {
      t.m[j0 + g] = -std::numeric_limits<float>::infinity();
      t.l[j0 + g] = 0.f;
      std::fill(t.acc + (int64_t)(j0 + g) * D, t.acc + (int64_t)(j0 + g + 1) * D, 0.f);
    }
    for (int64_t tok = t.t0; tok < t.t1; tok++) {
      const int64_t r = tok * H + h;
      const void* krow = static_cast<const uint8_t*>(kv.k) + r * krb;
      const void* vrow = static_cast<const uint8_t*>(kv.v) + r * vrb;
      const float ks = kq ? kv.k_scale[r] : 1.f, kz = kq ? kv.k_zero[r] : 0.f;
      const float vs = vq ? kv.v_scale[r] : 1.f, vz = vq ? kv.v_zero[r] : 0.f;
      for (int d = 0; d < D; d++) {
        k[d] = kv_load(kv.k_type, krow, d, D, ks, kz);
        v[d] = kv_load(kv.v_type, vrow, d, D, vs, vz);
      }
      for (int g = 0; g < t.G; g++) {
        const int j = j0 + g;
        const float* q = t.q + (int64_t)j * D;
        float dot = 0.f;
        for (int d = 0; d < D; d++) dot += q[d] * k[d];
        const float s = dot * t.scale, m_new = std::max(t.m[j], s);
        const float alpha = std::exp(t.m[j] - m_new), p = std::exp(s - m_new);
        t.l[j] = t.l[j] * alpha + p;
        float* acc = t.acc + (int64_t)j * D;
        for (int d = 0; d < D; d++) acc[d] = acc[d] * alpha + p * v[d];
        t.m[j] = m_new;
      }
    }
  }
}

namespace {

constexpr int64_t kMinSplit = 256;  // tokens per split-K range: below this the merge costs more than it saves

// Runs body(i) for i in [0, n) on the pool, items handed out one at a time (uneven item sizes balance themselves).
template <typename F>
void run_dynamic(int64_t n, F&& body) {
  std::atomic<int64_t> next{0};
  const int nt = (int)std::min<int64_t>(num_threads(), n);
  parallel_for(nt, 1, [&](int64_t, int64_t) {
    for (int64_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < n;) body(i);
  });
}

bool use_avx2() { return cpu_isa() >= Isa::Avx2; }

}  // namespace
}  // namespace detail

void kv_store(const float* x, int64_t T, int n_kv_heads, int head_dim, KVType type, void* dst, float* scale,
              float* zero) {
  if (!detail::use_avx2()) return kv_store_ref(x, T, n_kv_heads, head_dim, type, dst, scale, zero);
  detail::check_kv_type(type, "kv_store");
  detail::check_head_dim(head_dim, type, "kv_store");
  if (n_kv_heads <= 0) throw std::invalid_argument("kv_store: n_kv_heads must be > 0");
  if (T < 0) throw std::invalid_argument("kv_store: T must be >= 0");
  if (kv_quantized(type) && (!scale || !zero))
    throw std::invalid_argument("kv_store: quantized KV needs scale and zero outputs");
  const int64_t rows = T * n_kv_heads;
  const int64_t grain = std::max<int64_t>(1, 16384 / head_dim);  // ~64 KiB of input per thread at least
  parallel_for(rows, grain, [&](int64_t r0, int64_t r1) {
    detail::kv_store_rows_avx2(x, r0, r1, head_dim, type, dst, scale, zero);
  });
}

void attention_decode(const float* q, int64_t B, int n_heads, const KVView* kv, const int64_t* lens, float scale,
                      float* out) {
  if (B < 0) throw std::invalid_argument("attention_decode: B must be >= 0");
  if (B == 0) return;
  const int D = kv[0].head_dim;
  for (int64_t b = 0; b < B; b++) {
    detail::check_kv_view(kv[b], n_heads, D, "attention_decode");
    if (lens[b] < 1)
      throw std::out_of_range("attention_decode: lens[" + std::to_string(b) + "] must be >= 1, got " +
                              std::to_string(lens[b]));
    detail::check_kv_reach(kv[b], lens[b] - 1, "attention_decode", "the query of sequence " + std::to_string(b));
  }
  // Work items: (sequence b, token split, kv-head group). Every sequence gets enough items for ~4 per thread: first by
  // splitting its tokens (ranges of >= kMinSplit, merged afterwards), then by splitting its kv heads. With a sliding
  // window a sequence's tokens are [lo, lens[b]), lo = kv_window_start(kv[b], lens[b] - 1). The tasks index cache
  // rows: position t is row t - kv[b].pos0 (the check above guarantees lo >= pos0).
  const int64_t want = 4 * (int64_t)num_threads();
  const int64_t per_seq = (want + B - 1) / B;
  struct Item { int64_t b; int h0, h1; int64_t t0, t1; int64_t state; };
  std::vector<Item> items;
  std::vector<int64_t> seq_state(B + 1), seq_splits(B);
  int64_t n_states = 0;  // one state per (b, split, query head)
  for (int64_t b = 0; b < B; b++) {
    const int H = kv[b].n_kv_heads, G = n_heads / H;
    const int64_t lo = kv_window_start(kv[b], lens[b] - 1) - kv[b].pos0, n = lens[b] - kv[b].pos0 - lo;
    const int64_t splits = std::max<int64_t>(1, std::min(per_seq, n / detail::kMinSplit));
    const int64_t hsplits = std::min<int64_t>(H, (per_seq + splits - 1) / splits);
    seq_state[b] = n_states;
    seq_splits[b] = splits;
    for (int64_t s = 0; s < splits; s++)
      for (int64_t hs = 0; hs < hsplits; hs++) {
        const int h0 = (int)(H * hs / hsplits), h1 = (int)(H * (hs + 1) / hsplits);
        items.push_back({b, h0, h1, lo + n * s / splits, lo + n * (s + 1) / splits,
                         n_states + s * (int64_t)n_heads + (int64_t)h0 * G});
      }
    n_states += splits * (int64_t)n_heads;
  }
  std::vector<float> ml(2 * n_states), acc((size_t)n_states * D);
  const bool avx2 = detail::use_avx2();
  detail::run_dynamic((int64_t)items.size(), [&](int64_t i) {
    const Item& it = items[i];
    const int G = n_heads / kv[it.b].n_kv_heads;
    detail::DecodeTask t{q + (it.b * n_heads + (int64_t)it.h0 * G) * D, G, D, &kv[it.b], it.h0, it.h1, it.t0, it.t1,
                         scale, ml.data() + it.state, ml.data() + n_states + it.state, acc.data() + it.state * D};
    if (avx2) detail::decode_task_avx2(t);
    else detail::decode_task_scalar(t);
  });
  // Merge the token splits of each (b, query head) in order and normalize.
  for (int64_t b = 0; b < B; b++)
    for (int j = 0; j < n_heads; j++) {
      const int64_t s0 = seq_state[b] + j;
      detail::SoftmaxState st{ml[s0], ml[n_states + s0], acc.data() + s0 * D};
      for (int64_t s = 1; s < seq_splits[b]; s++) {
        const int64_t si = s0 + s * n_heads;
        detail::merge_state(st, {ml[si], ml[n_states + si], acc.data() + si * D}, D);
      }
      float* o = out + (b * n_heads + j) * D;
      const float inv = 1.f / st.l;
      for (int d = 0; d < D; d++) o[d] = st.acc[d] * inv;
    }
}

void attention_prefill(const float* q, int64_t Tq, int n_heads, const KVView& kv, int64_t pos0, float scale,
                       float* out) {
  if (Tq < 0) throw std::invalid_argument("attention_prefill: Tq must be >= 0");
  if (pos0 < 0) throw std::out_of_range("attention_prefill: pos0 must be >= 0, got " + std::to_string(pos0));
  const int D = kv.head_dim;
  detail::check_kv_view(kv, n_heads, D, "attention_prefill");
  if (Tq == 0) return;
  detail::check_kv_reach(kv, pos0, "attention_prefill", "query 0");  // window starts grow with the position
  // The tasks see positions relative to the first held one: the view `rel` starts at position 0 = kv.pos0 and the
  // queries sit at qpos = pos0 - kv.pos0. Every query's window start is >= kv.pos0 (checked), so
  // kv_window_start(rel, p - kv.pos0) = kv_window_start(kv, p) - kv.pos0: the same keys, rows and block splits.
  KVView rel = kv;
  rel.pos0 = 0;
  const int64_t qpos = pos0 - kv.pos0;
  const int H = kv.n_kv_heads, G = n_heads / H;
  if (!detail::use_avx2()) {
    // Scalar: one decode-style task per (query position, kv head).
    detail::run_dynamic(Tq * H, [&](int64_t i) {
      const int64_t qi = Tq - 1 - i / H;
      const int h = (int)(i % H);
      std::vector<float> ml(2 * G), acc((size_t)G * D);
      detail::DecodeTask t{q + (qi * n_heads + (int64_t)h * G) * D, G, D, &rel, h, h + 1,
                           kv_window_start(rel, qpos + qi), qpos + qi + 1, scale,
                           ml.data(), ml.data() + G, acc.data()};
      detail::decode_task_scalar(t);
      for (int g = 0; g < G; g++) {
        float* o = out + (qi * n_heads + (int64_t)h * G + g) * D;
        for (int d = 0; d < D; d++) o[d] = acc[(size_t)g * D + d] / ml[G + g];
      }
    });
    return;
  }
  // Query tiles of ~32 rows (positions × G heads) share each dequantized K/V block.
  const int64_t qt = std::max<int64_t>(1, 32 / G);
  const int64_t n_tiles = (Tq + qt - 1) / qt;
  detail::run_dynamic(n_tiles * H, [&](int64_t i) {
    const int64_t tile = n_tiles - 1 - i / H;  // latest positions first: they are the longest
    detail::PrefillTask t{q, n_heads, G, D, &rel, (int)(i % H), tile * qt, std::min(Tq, (tile + 1) * qt), qpos, scale,
                          out};
    detail::prefill_task_avx2(t);
  });
}

}  // namespace quanteval
