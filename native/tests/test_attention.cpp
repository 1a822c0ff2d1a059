// KV-cache kernels: kv_store (fast == ref bit for bit; quantization error bounds), attention_decode and
// attention_prefill (fast vs ref on random shapes, every ISA path; ref vs a naive two-pass softmax attention in
// double on the dequantized cache), for every (K type, V type) pair including mixed ones (k8v4 ...), and with
// sliding windows (1, small, crossing blocks and splits, >= the length) under GQA and MHA.
//
// Tolerances (relative to the norm of the reference output):
//   ref vs naive double: 5e-6 (fp32 online softmax over <= ~3k tokens; seen up to ~1.7e-6)
//   fast vs ref:         5e-6 (fp32 accumulation in another order, blockwise softmax, vector exp, and for int8/int4
//                        V the zero-point term taken off once per block of tokens; seen ~2.7e-6 for int8/int4,
//                        ~1.7e-6 otherwise)
//   int4 and int8 keys, MHA and GQA in groups of 4k, AVX2 (the 16-bit fixed-point query of kernels.h): fast vs
//                        ref on the query rounded the same way
//                        5e-6 (so the rounding is the only difference), fast vs ref on q 1e-4 (the rounding's
//                        effect: u/2 = max|q|/65278 per element; seen up to ~2.4e-5)
//   int4 values, MHA, AVX2 (the block's weights in 16-bit fixed point, kernels.h): 1e-4 (seen up to ~3e-5); 8-bit
//                        weights would be ~2e-3
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "quanteval/cpu_features.h"
#include "quanteval/half.h"
#include "quanteval/kernels.h"
#include "quanteval/threadpool.h"
#include "test_common.h"
#include "test_kv_cache.h"

using namespace quanteval;

static const KVType kTypes[] = {KVType::F32, KVType::F16, KVType::I8, KVType::I4};
static const char* tname(KVType t) {
  switch (t) {
    case KVType::F32: return "f32"; case KVType::F16: return "f16"; case KVType::I8: return "i8";
    case KVType::I4: return "i4"; case KVType::I3: return "i3"; case KVType::I2: return "i2";
  }
  return "?";
}
// Every (K, V) type pair; the first four are the equal-type caches.
static std::vector<std::pair<KVType, KVType>> type_pairs() {
  std::vector<std::pair<KVType, KVType>> p;
  for (KVType t : kTypes) p.push_back({t, t});
  for (KVType a : kTypes)
    for (KVType b : kTypes)
      if (a != b) p.push_back({a, b});
  return p;
}
static std::string pname(std::pair<KVType, KVType> p) { return std::string("k:") + tname(p.first) + "/v:" + tname(p.second); }

// Naive two-pass softmax attention in double for one query head at position len - 1: tokens [0, len), or with the
// cache's window W the tokens j with len - 1 - j < W (written out here, independently of kv_window_start).
static void naive_attend(const float* q, const Cache& c, int kvh, int64_t len, float scale, std::vector<double>& out) {
  std::vector<double> s(len, -1e300);
  double mx = -1e300;
  auto visible = [&](int64_t t) { return c.window == 0 || (len - 1) - t < c.window; };
  for (int64_t t = 0; t < len; t++) {
    if (!visible(t)) continue;
    double dot = 0;
    for (int d = 0; d < c.D; d++) dot += (double)q[d] * c.kval(t, kvh, d);
    s[t] = dot * scale;
    mx = std::max(mx, s[t]);
  }
  double sum = 0;
  for (int64_t t = 0; t < len; t++) { s[t] = visible(t) ? std::exp(s[t] - mx) : 0.0; sum += s[t]; }
  out.assign(c.D, 0.0);
  for (int64_t t = 0; t < len; t++)
    if (visible(t))
      for (int d = 0; d < c.D; d++) out[d] += s[t] / sum * c.vval(t, kvh, d);
}

static void test_kv_store(std::mt19937& rng, const std::vector<KVType>& types, const std::vector<int>& dims) {
  for (KVType type : types)
    for (int D : dims)
      for (int64_t T : {1, 3, 17}) {
        const int H = 1 + (int)(rng() % 4);
        const size_t rb = kv_bytes_per_head(type, D);
        // Different row offsets/scales per head so min/max vary; one constant row to hit the 1e-5 floor.
        auto x = randn(rng, (size_t)T * H * D, 2.f, 0.5f);
        for (int d = 0; d < D; d++) x[d] = 0.25f;
        std::vector<uint8_t> a(T * H * rb, 0xAA), b(T * H * rb, 0x55);
        std::vector<float> sa(T * H), za(T * H), sb(T * H), zb(T * H);
        kv_store_ref(x.data(), T, H, D, type, a.data(), sa.data(), za.data());
        for (Isa isa : {Isa::Scalar, Isa::Avx2}) {
          if ((int)isa > (int)cpu_isa()) continue;
          set_isa_cap(isa);
          std::fill(b.begin(), b.end(), 0x55);
          kv_store(x.data(), T, H, D, type, b.data(), sb.data(), zb.data());
          set_isa_cap(Isa::Avx512);
          CHECK(a == b, "kv_store %s D=%d T=%ld isa=%s: codes differ from ref", tname(type), D, (long)T, isa_name(isa));
          if (kv_quantized(type))
            CHECK(sa == sb && za == zb, "kv_store %s D=%d: scales/zeros differ from ref", tname(type), D);
        }
        // Quant -> dequant error: <= s/2 per element (int8/int4), <= 2^-11 relative (f16), exact (f32).
        // The s/2 bound holds for rows whose range contains 0: pseudo_quantize_tensor clamps z to [0, 2^b - 1], so
        // an all-positive row (like the constant row 0) is clipped to [0, (2^b - 1) s] — the golden semantics.
        for (int64_t r = 0; r < T * H; r++) {
          const float mn = *std::min_element(&x[r * D], &x[r * D] + D), mx = *std::max_element(&x[r * D], &x[r * D] + D);
          if (kv_quantized(type) && !(mn <= 0 && mx >= 0)) continue;
          for (int d = 0; d < D; d++) {
            const float xv = x[r * D + d];
            const uint8_t* row = a.data() + r * rb;
            double xh;
            switch (type) {
              case KVType::F32: xh = ((const float*)row)[d]; break;
              case KVType::F16: xh = f16_to_f32(((const uint16_t*)row)[d]); break;
              case KVType::I8: xh = ((double)row[d] - za[r]) * sa[r]; break;
              case KVType::I3: case KVType::I2: xh = ((double)lowbit_code(type, row, d, D) - za[r]) * sa[r]; break;
              default: xh = ((double)((row[d / 2] >> ((d & 1) * 4)) & 0xF) - za[r]) * sa[r]; break;
            }
            double bound = 0;
            if (type == KVType::F16) bound = std::fabs(xv) * (1.0 / 2048) + 1e-7;
            if (kv_quantized(type)) bound = sa[r] * 0.5 * (1 + 1e-4) + 1e-6 * std::fabs(xv);
            CHECK(std::fabs(xh - xv) <= bound, "kv_store %s D=%d row %ld d %d: |x_hat - x| = %g > %g", tname(type), D,
                  (long)r, d, std::fabs(xh - xv), bound);
            if (kv_quantized(type)) {
              const int qmax = (1 << kv_bits(type)) - 1;
              CHECK(za[r] >= 0 && za[r] <= qmax && za[r] == std::nearbyint(za[r]), "zero point %g not an integer code", za[r]);
            }
          }
        }
        if (kv_quantized(type)) {
          // The constant row: s = 1e-5 / (2^b - 1), z = 0, every code saturates at 2^b - 1.
          const int qmax = (1 << kv_bits(type)) - 1;
          CHECK(sa[0] == 1e-5f / (float)qmax && za[0] == 0.f, "constant row: s=%g z=%g", sa[0], za[0]);
          const int c0 = type == KVType::I8 ? a[0] : type == KVType::I4 ? (a[0] & 0xF) : lowbit_code(type, a.data(), 0, D);
          CHECK(c0 == qmax, "constant row %s: code %d", tname(type), c0);
          if (type == KVType::I3 || type == KVType::I2) {
            // Padding bits of a short last byte (codes D .. 4·ceil(D/4) of the 2-bit plane, bits D .. 8·ceil(D/8)
            // of the int3 high plane) stay zero.
            for (int64_t r = 0; r < T * H; r++) {
              const uint8_t* row = a.data() + r * rb;
              for (int d = D; d < 4 * ((D + 3) / 4); d++)
                CHECK(((row[d / 4] >> (2 * (d % 4))) & 3) == 0, "%s D=%d: 2-bit plane padding set", tname(type), D);
              if (type == KVType::I3)
                for (int d = D; d < 8 * ((D + 7) / 8); d++)
                  CHECK(((row[(D + 3) / 4 + d / 8] >> (d % 8)) & 1) == 0, "i3 D=%d: high plane padding set", D);
            }
          }
        }
      }
}

static double worst_ref_naive = 0, worst_fast[2] = {0, 0}, worst_prefill[2] = {0, 0}, worst_q16 = 0;

struct DecodeCase { int64_t B; int n_heads, n_kv, D; std::vector<int64_t> lens; };
using Pair = std::pair<KVType, KVType>;

// One decode case with K/V types `p` and sliding window `window`: ref vs naive double, fast (every ISA, 1 and 3
// threads) vs ref.
static void check_decode(std::mt19937& rng, const DecodeCase& cs, Pair p, int64_t window) {
  const int n_threads0 = num_threads();
  std::vector<Cache> caches;
  std::vector<KVView> views;
  for (int64_t b = 0; b < cs.B; b++) {
    caches.emplace_back(rng, p.first, p.second, cs.n_kv, cs.D, cs.lens[b] + 3);
    caches.back().window = window;
  }
  for (auto& c : caches) views.push_back(c.view());
  const size_t n_out = (size_t)cs.B * cs.n_heads * cs.D;
  auto q = randn(rng, n_out);
  const float scale = 1.f / std::sqrt((float)cs.D);
  std::vector<float> ref(n_out), fast(n_out);
  attention_decode_ref(q.data(), cs.B, cs.n_heads, views.data(), cs.lens.data(), scale, ref.data());
  // ref vs naive double
  std::vector<double> naive(n_out), o;
  const int G = cs.n_heads / cs.n_kv;
  for (int64_t b = 0; b < cs.B; b++)
    for (int h = 0; h < cs.n_heads; h++) {
      const size_t i = ((size_t)b * cs.n_heads + h) * cs.D;
      naive_attend(q.data() + i, caches[b], h / G, cs.lens[b], scale, o);
      std::copy(o.begin(), o.end(), naive.begin() + i);
    }
  const double e_ref = rel_err(ref.data(), naive.data(), n_out);
  worst_ref_naive = std::max(worst_ref_naive, e_ref);
  CHECK(e_ref <= 5e-6, "decode ref vs naive %s window %ld B=%ld H=%d/%d D=%d: rel %g", pname(p).c_str(), (long)window,
        (long)cs.B, cs.n_heads, cs.n_kv, cs.D, e_ref);
  // The AVX2 path's int4-key MHA query (kernels.h): the scaled query rounded to 16-bit fixed point per head, and the
  // reference run on it.
  const bool q16 = (p.first == KVType::I4 && ((G == 1 && cs.D >= 32 && cs.D <= 2048) ||
                                              (G % 4 == 0 && cs.D % 64 == 0 && cs.D <= 256))) ||
                   (p.first == KVType::I8 && (G == 1 || G % 4 == 0) && cs.D % 16 == 0 && cs.D <= 256);
  // ... and its int4-value MHA weights, rounded to 16 bits per block of tokens (not reproducible here: the blocks and
  // their maxima are the kernel's): 1e-4 against the reference.
  const bool w16 = p.second == KVType::I4 && G == 1 && cs.D % 64 == 0 && cs.D <= 2048;
  std::vector<float> ref16;
  if (q16) {
    std::vector<float> qr(n_out);
    for (size_t i = 0; i < n_out; i += cs.D) {
      float m = 0.f;
      for (int d = 0; d < cs.D; d++) m = std::max(m, std::fabs(q[i + d] * scale));
      const float u = m > 0 ? m / 32639.f : 1.f, inv = m > 0 ? 32639.f / m : 0.f;
      for (int d = 0; d < cs.D; d++) {
        const float f = std::clamp(std::nearbyint(q[i + d] * scale * inv), -32639.f, 32639.f);
        qr[i + d] = f * u / scale;
      }
    }
    ref16.resize(n_out);
    attention_decode_ref(qr.data(), cs.B, cs.n_heads, views.data(), cs.lens.data(), scale, ref16.data());
  }
  // Thread counts change the split (tokens, then kv heads) and so the merge order.
  for (Isa isa : {Isa::Scalar, Isa::Avx2})
    for (int nt : {1, 3}) {
      if ((int)isa > (int)cpu_isa()) continue;
      set_isa_cap(isa);
      set_num_threads(nt);
      std::fill(fast.begin(), fast.end(), NAN);
      attention_decode(q.data(), cs.B, cs.n_heads, views.data(), cs.lens.data(), scale, fast.data());
      set_isa_cap(Isa::Avx512);
      set_num_threads(n_threads0);
      const bool fixed = q16 && isa == Isa::Avx2, wfixed = w16 && isa == Isa::Avx2;
      const double e_q = rel_err(fast.data(), ref.data(), n_out);
      const double e = fixed ? rel_err(fast.data(), ref16.data(), n_out) : e_q;
      if (fixed || wfixed) {
        worst_q16 = std::max(worst_q16, e_q);
        CHECK(e_q <= 1e-4, "decode fast(avx2, %d threads) vs ref (16-bit query / weights) %s B=%ld H=%d/%d D=%d: rel %g",
              nt, pname(p).c_str(), (long)cs.B, cs.n_heads, cs.n_kv, cs.D, e_q);
      }
      if (wfixed) {  // the 16-bit weights: within 1e-4 of the rounded-query reference too
        CHECK(e <= 1e-4, "decode fast(avx2, %d threads) vs ref16 %s B=%ld H=%d/%d D=%d: rel %g", nt, pname(p).c_str(),
              (long)cs.B, cs.n_heads, cs.n_kv, cs.D, e);
        continue;
      }
      worst_fast[(int)isa] = std::max(worst_fast[(int)isa], e);
      if (getenv("VERBOSE"))
        std::printf("decode %s threads %d %s window %ld B=%ld H=%d/%d D=%d len0=%ld: fast-ref %.2e fast-naive %.2e "
                    "ref-naive %.2e\n", isa_name(isa), nt, pname(p).c_str(), (long)window, (long)cs.B, cs.n_heads,
                    cs.n_kv, cs.D, (long)cs.lens[0], e, rel_err(fast.data(), naive.data(), n_out), e_ref);
      CHECK(e <= 5e-6, "decode fast(%s, %d threads) vs ref %s window %ld B=%ld H=%d/%d D=%d len0=%ld: rel %g",
            isa_name(isa), nt, pname(p).c_str(), (long)window, (long)cs.B, cs.n_heads, cs.n_kv, cs.D,
            (long)cs.lens[0], e);
    }
}

static void test_decode(std::mt19937& rng) {
  std::vector<DecodeCase> cases = {
      {1, 1, 1, 8, {1}},          {1, 2, 1, 8, {7}},          {2, 4, 2, 64, {1, 65}},
      {3, 4, 4, 128, {5, 130, 64}}, {1, 8, 2, 64, {1000}},     {2, 6, 2, 16, {33, 200}},
      {1, 4, 1, 128, {2600}},     {4, 2, 2, 40, {3, 1, 70, 129}}, {1, 3, 1, 6, {300}},
      // MHA int4 takes the fixed-point key path for head_dim >= 32: one 32-code step, a step and a tail, 2 dims.
      {2, 3, 3, 32, {9, 300}},    {1, 2, 2, 34, {77}},        {1, 2, 2, 2, {40}},
      // MHA int4 values take the integer V path for head_dim % 64 == 0: odd block tails, several 32-byte chunks,
      // a long context (split-K ranges, blocks of 8 tokens).
      {2, 2, 2, 64, {17, 33}},    {1, 4, 4, 192, {1501}},
      // 8 and 16 query heads per kv head: fp32 / fp16 keys take the transposed-query score path (scores_gqa8), with
      // token counts off the 4-token tile, head_dim 34, 64 and 128.
      {1, 16, 2, 64, {300}},      {2, 32, 2, 34, {7, 150}},  {1, 8, 1, 128, {70}},
  };
  // Random extra cases.
  for (int i = 0; i < 4; i++) {
    DecodeCase c;
    c.B = 1 + rng() % 3;
    c.n_kv = 1 << (rng() % 3);
    c.n_heads = c.n_kv * (1 << (rng() % 3));
    const int Ds[] = {8, 16, 34, 64, 96, 128};
    c.D = Ds[rng() % 6];
    for (int64_t b = 0; b < c.B; b++) c.lens.push_back(1 + rng() % 700);
    cases.push_back(c);
  }
  const auto pairs = type_pairs();  // 4 equal, then 12 mixed
  // Every case with the four equal types and two mixed pairs (each mixed pair meets >= 2 cases), no window; then
  // one type pair with a window (1, 2, 5, 64, 257 — across decode blocks and split-K ranges — or one >= the length).
  const int64_t windows[] = {1, 2, 5, 64, 257, 1 << 20};
  for (size_t i = 0; i < cases.size(); i++) {
    for (int j = 0; j < 4; j++) check_decode(rng, cases[i], pairs[j], 0);
    check_decode(rng, cases[i], pairs[4 + i % 12], 0);
    check_decode(rng, cases[i], pairs[4 + (i + 6) % 12], 0);
    check_decode(rng, cases[i], pairs[i % pairs.size()], windows[i % 6]);
    check_decode(rng, cases[i], pairs[(i + 7) % pairs.size()], windows[(i + 3) % 6]);
  }
  // Long windowed sequences whose visible range [len - W, len) is split over threads (split-K) and starts mid-block.
  for (Pair p : {pairs[2], pairs[3], Pair{KVType::I8, KVType::I4}, Pair{KVType::I4, KVType::I8}})
    check_decode(rng, {2, 8, 2, 64, {2600, 1500}}, p, 700);
}

// A window >= the length sees every token: the same result as no window, bit for bit (same token ranges).
static void test_window_noop(std::mt19937& rng) {
  for (Pair p : type_pairs()) {
    Cache c(rng, p.first, p.second, 2, 64, 300);
    const int64_t len = 300;
    auto q = randn(rng, 4 * 64);
    std::vector<float> a(q.size()), b(q.size());
    for (bool fast : {false, true}) {
      c.window = 0;
      KVView v0 = c.view();
      c.window = 300;
      KVView v1 = c.view();
      (fast ? attention_decode : attention_decode_ref)(q.data(), 1, 4, &v0, &len, 0.125f, a.data());
      (fast ? attention_decode : attention_decode_ref)(q.data(), 1, 4, &v1, &len, 0.125f, b.data());
      CHECK(a == b, "decode %s %s: window = len differs from no window", fast ? "fast" : "ref", pname(p).c_str());
      c.window = 299;  // one token fewer: must differ
      KVView v2 = c.view();
      (fast ? attention_decode : attention_decode_ref)(q.data(), 1, 4, &v2, &len, 0.125f, b.data());
      CHECK(a != b, "decode %s %s: window = len - 1 equals no window", fast ? "fast" : "ref", pname(p).c_str());
    }
  }
}

struct PrefillCase { int64_t Tq, pos0; int n_heads, n_kv, D; };
struct PrefillRun { Pair p; int64_t window; };

// One prefill case: ref rows == decode ref rows, ref vs naive double (with a window), fast (every ISA) vs ref.
static void check_prefill(std::mt19937& rng, const PrefillCase& c, const PrefillRun& run) {
  Cache cache(rng, run.p.first, run.p.second, c.n_kv, c.D, c.pos0 + c.Tq + 2);
  cache.window = run.window;
  const KVView view = cache.view();
  const size_t n_out = (size_t)c.Tq * c.n_heads * c.D;
  auto q = randn(rng, n_out);
  const float scale = 1.f / std::sqrt((float)c.D);
  std::vector<float> ref(n_out), fast(n_out), dec(c.n_heads * c.D);
  attention_prefill_ref(q.data(), c.Tq, c.n_heads, view, c.pos0, scale, ref.data());
  // Row i of the prefill is the decode of the same query with len = pos0 + i + 1 (bit for bit: same reference).
  for (int64_t i : {(int64_t)0, c.Tq / 2, c.Tq - 1}) {
    const int64_t len = c.pos0 + i + 1;
    attention_decode_ref(q.data() + i * c.n_heads * c.D, 1, c.n_heads, &view, &len, scale, dec.data());
    CHECK(std::memcmp(dec.data(), ref.data() + i * c.n_heads * c.D, dec.size() * 4) == 0,
          "prefill ref row %ld != decode ref (%s window %ld)", (long)i, pname(run.p).c_str(), (long)run.window);
  }
  // Ref vs naive double on every row (windowed rows see their own ranges).
  if (run.window) {
    std::vector<double> naive(n_out), o;
    const int G = c.n_heads / c.n_kv;
    for (int64_t i = 0; i < c.Tq; i++)
      for (int h = 0; h < c.n_heads; h++) {
        const size_t off = ((size_t)i * c.n_heads + h) * c.D;
        naive_attend(q.data() + off, cache, h / G, c.pos0 + i + 1, scale, o);
        std::copy(o.begin(), o.end(), naive.begin() + off);
      }
    const double e = rel_err(ref.data(), naive.data(), n_out);
    CHECK(e <= 5e-6, "prefill ref vs naive %s window %ld Tq=%ld: rel %g", pname(run.p).c_str(), (long)run.window,
          (long)c.Tq, e);
  }
  for (Isa isa : {Isa::Scalar, Isa::Avx2}) {
    if ((int)isa > (int)cpu_isa()) continue;
    set_isa_cap(isa);
    std::fill(fast.begin(), fast.end(), NAN);
    attention_prefill(q.data(), c.Tq, c.n_heads, view, c.pos0, scale, fast.data());
    set_isa_cap(Isa::Avx512);
    const double e = rel_err(fast.data(), ref.data(), n_out);
    worst_prefill[(int)isa] = std::max(worst_prefill[(int)isa], e);
    CHECK(e <= 5e-6, "prefill fast(%s) vs ref %s window %ld Tq=%ld pos0=%ld H=%d/%d D=%d: rel %g", isa_name(isa),
          pname(run.p).c_str(), (long)run.window, (long)c.Tq, (long)c.pos0, c.n_heads, c.n_kv, c.D, e);
  }
}

static void test_prefill(std::mt19937& rng) {
  using P = PrefillCase;
  using Run = PrefillRun;
  std::vector<P> cases = {{1, 0, 1, 1, 8}, {5, 0, 2, 1, 8}, {67, 0, 4, 2, 64}, {33, 13, 4, 4, 128},
                          {130, 0, 6, 2, 16}, {3, 200, 8, 2, 64}, {70, 5, 2, 2, 40}, {9, 0, 3, 1, 6}};
  const auto pairs = type_pairs();
  const int64_t windows[] = {1, 3, 17, 64, 65, 1 << 20};
  for (size_t ci = 0; ci < cases.size(); ci++) {
    const P& c = cases[ci];
    std::vector<Run> runs;
    for (int j = 0; j < 4; j++) runs.push_back({pairs[j], 0});
    runs.push_back({pairs[4 + ci % 12], 0});
    runs.push_back({pairs[4 + (ci + 6) % 12], 0});
    runs.push_back({pairs[ci % pairs.size()], windows[ci % 6]});
    runs.push_back({pairs[(ci + 5) % pairs.size()], windows[(ci + 2) % 6]});
    runs.push_back({pairs[(ci + 11) % pairs.size()], windows[(ci + 4) % 6]});
    for (const Run& run : runs) check_prefill(rng, c, run);
  }
}

static void test_errors(std::mt19937& rng) {
  Cache c(rng, KVType::I4, 2, 8, 4);
  KVView v = c.view();
  std::vector<float> q(3 * 8), out(3 * 8);
  int64_t len = 2;
  bool threw = false;
  try { attention_decode(q.data(), 1, 3, &v, &len, 1.f, out.data()); } catch (const std::invalid_argument&) { threw = true; }
  CHECK(threw, "n_heads %% n_kv_heads != 0 must throw invalid_argument");
  threw = false;
  len = 0;
  try { attention_decode(q.data(), 1, 2, &v, &len, 1.f, out.data()); } catch (const std::out_of_range&) { threw = true; }
  CHECK(threw, "lens[b] = 0 must throw out_of_range");
  threw = false;
  std::vector<float> x(7);
  std::vector<uint8_t> dst(8);
  float s, z;
  try { kv_store(x.data(), 1, 1, 7, KVType::I4, dst.data(), &s, &z); } catch (const std::invalid_argument&) { threw = true; }
  CHECK(threw, "odd head_dim with int4 must throw");
  // A negative window, and a quantized V without its scales, are rejected.
  threw = false;
  v.window = -1;
  len = 2;
  try { attention_decode_ref(q.data(), 1, 2, &v, &len, 1.f, out.data()); } catch (const std::out_of_range&) { threw = true; }
  CHECK(threw, "window < 0 must throw out_of_range");
  v.window = 0;
  v.v_scale = nullptr;  // K keeps its scales
  threw = false;
  try { attention_decode(q.data(), 1, 2, &v, &len, 1.f, out.data()); } catch (const std::invalid_argument& e) {
    threw = std::string(e.what()).find("V (i4)") != std::string::npos;
  }
  CHECK(threw, "int4 V without v_scale must throw invalid_argument naming V");
}

// int3 / int2 caches (kv3 / kv2): kv_store fast == ref and the s/2 error bound (odd head dims too: the bit planes
// pad their last byte), decode and prefill fast vs ref vs naive double for equal and mixed pairs (with int8, int4,
// f16, f32 on the other side), with and without sliding windows, GQA and MHA.
static void test_lowbit(std::mt19937& rng) {
  test_kv_store(rng, {KVType::I3, KVType::I2}, {1, 3, 7, 8, 9, 24, 64, 128, 130});
  const Pair I3{KVType::I3, KVType::I3}, I2{KVType::I2, KVType::I2}, I32{KVType::I3, KVType::I2},
      I23{KVType::I2, KVType::I3}, K8V3{KVType::I8, KVType::I3}, K4V2{KVType::I4, KVType::I2},
      K3V4{KVType::I3, KVType::I4}, K3F16{KVType::I3, KVType::F16}, F32V2{KVType::F32, KVType::I2};
  // Even head dims: every pair; odd ones: pairs without int4.
  const std::vector<Pair> even = {I3, I2, I32, I23, K8V3, K4V2, K3V4, K3F16, F32V2};
  const std::vector<Pair> odd = {I3, I2, I32, I23, K8V3, K3F16, F32V2};
  const std::vector<DecodeCase> dcases = {
      {1, 8, 8, 8, {300}},  // stories260K's shape: head_dim 8, MHA
      {2, 4, 2, 64, {1, 130}}, {1, 6, 2, 128, {700}}, {1, 2, 1, 7, {45}}, {2, 3, 3, 13, {9, 260}}};
  const int64_t windows[] = {0, 1, 5, 64};
  size_t n = 0;
  for (const auto& c : dcases) {
    const auto& ps = c.D % 2 ? odd : even;
    for (size_t i = 0; i < ps.size(); i++) check_decode(rng, c, ps[i], windows[(n++) % 4]);
  }
  const std::vector<PrefillCase> pcases = {{64, 0, 8, 8, 8}, {67, 0, 4, 2, 64}, {33, 13, 4, 4, 128}, {20, 3, 2, 1, 9},
                                           {40, 0, 3, 3, 7}};
  const int64_t pwindows[] = {0, 3, 17, 65};
  for (const auto& c : pcases) {
    const auto& ps = c.D % 2 ? odd : even;
    for (size_t i = 0; i < ps.size(); i++) check_prefill(rng, c, {ps[i], pwindows[(n++) % 4]});
  }
  // int3 uses its third bit: on the same data an int3 cache is closer to the input than an int2 one.
  {
    const int H = 2, D = 64, T = 16;
    auto x = randn(rng, (size_t)T * H * D);
    double err[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
      const KVType t = i ? KVType::I2 : KVType::I3;
      std::vector<uint8_t> c(T * H * kv_bytes_per_head(t, D));
      std::vector<float> sc(T * H), zc(T * H);
      kv_store(x.data(), T, H, D, t, c.data(), sc.data(), zc.data());
      for (int r = 0; r < T * H; r++)
        for (int d = 0; d < D; d++) {
          const double xh = (lowbit_code(t, c.data() + r * kv_bytes_per_head(t, D), d, D) - zc[r]) * (double)sc[r];
          err[i] += (xh - x[r * D + d]) * (xh - x[r * D + d]);
        }
    }
    CHECK(err[0] < 0.5 * err[1], "int3 squared error %g should be well below int2's %g", err[0], err[1]);
    std::printf("kv quant squared error, N(0,1) rows of 64: int3 %.4g int2 %.4g\n", err[0] / (T * H * D), err[1] / (T * H * D));
  }
}

int main() {
  std::mt19937 rng(20240611);
  std::printf("isa %s, threads %d\n", isa_name(cpu_isa()), num_threads());
  test_kv_store(rng, {KVType::F32, KVType::F16, KVType::I8, KVType::I4}, {2, 8, 24, 64, 128, 130});
  test_decode(rng);
  test_window_noop(rng);
  test_prefill(rng);
  test_errors(rng);
  test_lowbit(rng);
  std::printf("worst relative errors: decode ref vs naive %.2e; decode fast vs ref scalar %.2e avx2 %.2e (16-bit query / "
              "weights vs ref on q: %.2e); prefill fast vs ref scalar %.2e avx2 %.2e\n", worst_ref_naive, worst_fast[0],
              worst_fast[1], worst_q16, worst_prefill[0], worst_prefill[1]);
  std::printf("%s: %d failures\n", g_failures ? "FAIL" : "ok", g_failures);
  return g_failures ? 1 : 0;
}
