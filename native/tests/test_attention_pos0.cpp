// Attention over a cache that holds only positions [pos0, len) (KVView::pos0, the bounded sliding-window cache).
//
// For every K/V element type (f32, f16, int8, int4, int3, int2, and mixed pairs), GQA and MHA, random head dims
// (odd ones where the type allows), random lengths, windows and pos0: a "tail" view whose rows start at position
// pos0 gives exactly (bit for bit) the output of the same kernel over the whole cache (pos0 = 0), for decode
// (batches of sequences with different lengths and pos0s) and causal prefill, on every ISA path, ref and fast. The
// tail lives in its own buffer behind a prefix of poisoned rows (NaN values / NaN scales), so a kernel that reads a
// row below pos0 produces NaN. Fast vs ref on the tail: relative error <= 5e-6 of the norm (fp32 accumulation in
// another order, as in test_attention; 1e-4 for the AVX2 path's 16-bit fixed-point MHA int4 cases, kernels.h). A query whose window reaches below pos0 (and any query of a windowless
// cache with pos0 > 0) throws std::invalid_argument naming pos0; a negative pos0 throws std::out_of_range.
#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "quanteval/cpu_features.h"
#include "quanteval/kernels.h"
#include "quanteval/threadpool.h"
#include "test_common.h"
#include "test_kv_cache.h"

using namespace quanteval;

namespace {

const char* tname(KVType t) {
  switch (t) {
    case KVType::F32: return "f32"; case KVType::F16: return "f16"; case KVType::I8: return "i8";
    case KVType::I4: return "i4"; case KVType::I3: return "i3"; case KVType::I2: return "i2";
  }
  return "?";
}

using Pair = std::pair<KVType, KVType>;
const Pair kPairs[] = {{KVType::F32, KVType::F32}, {KVType::F16, KVType::F16}, {KVType::I8, KVType::I8},
                       {KVType::I4, KVType::I4},   {KVType::I3, KVType::I3},   {KVType::I2, KVType::I2},
                       {KVType::I8, KVType::I4},   {KVType::F16, KVType::I3},  {KVType::I4, KVType::I2}};

// A whole cache of T tokens (positions 0 .. T-1): the shared test cache (test_kv_cache.h) with a window.
static Cache make_cache(std::mt19937& rng, Pair p, int H, int D, int64_t T, int64_t W) {
  Cache c(rng, p.first, p.second, H, D, T);
  c.window = W;
  return c;
}

// Positions [pos0, T) of a cache copied into fresh buffers behind kPad poisoned rows: f32/f16 values NaN (0xFF
// bytes), quantized rows with NaN scales, so any read below pos0 turns the output into NaN.
struct Tail {
  static constexpr int64_t kPad = 8;
  std::vector<uint8_t> k, v;
  std::vector<float> ks, kz, vs, vz;
  KVView view;
  Tail(const Cache& c, int64_t pos0) {
    const size_t kpt = (size_t)c.H * kv_bytes_per_head(c.kt, c.D), vpt = (size_t)c.H * kv_bytes_per_head(c.vt, c.D);
    const int64_t n = c.T - pos0;
    k.assign((kPad + n) * kpt, 0xFF);
    v.assign((kPad + n) * vpt, 0xFF);
    std::memcpy(k.data() + kPad * kpt, c.k.data() + pos0 * kpt, n * kpt);
    std::memcpy(v.data() + kPad * vpt, c.v.data() + pos0 * vpt, n * vpt);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    auto tail = [&](std::vector<float>& dst, const std::vector<float>& src) {
      dst.assign((kPad + n) * c.H, nan);
      std::copy(src.begin() + pos0 * c.H, src.end(), dst.begin() + kPad * c.H);
    };
    tail(ks, c.ks); tail(kz, c.kz); tail(vs, c.vs); tail(vz, c.vz);
    const int64_t o = kPad * c.H;
    view = c.view_at(k.data() + kPad * kpt, v.data() + kPad * vpt, ks.data() + o, kz.data() + o, vs.data() + o,
                  vz.data() + o, pos0);
  }
};

double worst_fast = 0;
int n_decode = 0, n_prefill = 0, n_throw = 0;

bool has_nan(const std::vector<float>& x) {
  for (float f : x)
    if (std::isnan(f)) return true;
  return false;
}

// head_dim for a pair: int4 needs an even one; others also get odd ones.
int pick_dim(std::mt19937& rng, Pair p) {
  static const int dims[] = {8, 13, 24, 64, 72, 5};
  for (;;) {
    const int D = dims[rng() % 6];
    if ((p.first == KVType::I4 || p.second == KVType::I4) && D % 2) continue;
    return D;
  }
}

template <typename F>
void each_isa(F&& f) {
  for (Isa isa : {Isa::Scalar, Isa::Avx2}) {
    if ((int)isa > (int)cpu_isa()) continue;
    set_isa_cap(isa);
    f(isa);
    set_isa_cap(Isa::Avx512);
  }
}

void test_decode(std::mt19937& rng) {
  for (Pair p : kPairs)
    for (int rep = 0; rep < 3; rep++) {
      const int n_kv = 1 + (int)(rng() % 3), G = rep == 0 ? 1 : 1 + (int)(rng() % 4), n_heads = n_kv * G;
      const int D = pick_dim(rng, p);
      const int64_t B = 1 + rng() % 3;
      std::vector<Cache> caches;
      std::vector<Tail> tails;
      std::vector<int64_t> lens(B);
      std::vector<KVView> fullv(B), tailv(B);
      caches.reserve(B);
      tails.reserve(B);
      for (int64_t b = 0; b < B; b++) {
        // Lengths up to ~1.3k so that split-K (ranges of >= 256 tokens) kicks in over the window.
        const int64_t T = 1 + rng() % (b == 0 ? 1300 : 300), W = 1 + rng() % T;
        caches.push_back(make_cache(rng, p, n_kv, D, T, W));
        lens[b] = T;
        const int64_t lo = T - 1 - W + 1 > 0 ? T - W : 0;    // the query at T - 1 reads [lo, T)
        const int64_t pos0 = b == 1 ? lo : rng() % (lo + 1);  // right at the window start, or anywhere below it
        tails.emplace_back(caches.back(), pos0);
        fullv[b] = caches.back().view();
        tailv[b] = tails.back().view;
      }
      auto q = randn(rng, (size_t)B * n_heads * D);
      const float scale = 1.f / std::sqrt((float)D);
      std::vector<float> ref_full(q.size()), ref_tail(q.size());
      attention_decode_ref(q.data(), B, n_heads, fullv.data(), lens.data(), scale, ref_full.data());
      attention_decode_ref(q.data(), B, n_heads, tailv.data(), lens.data(), scale, ref_tail.data());
      CHECK(!has_nan(ref_tail) && ref_tail == ref_full, "decode ref %s/%s D=%d G=%d: tail view differs from full (max %g)",
            tname(p.first), tname(p.second), D, G, max_abs_diff(ref_tail.data(), ref_full.data(), q.size()));
      each_isa([&](Isa isa) {
        std::vector<float> f_full(q.size()), f_tail(q.size());
        attention_decode(q.data(), B, n_heads, fullv.data(), lens.data(), scale, f_full.data());
        attention_decode(q.data(), B, n_heads, tailv.data(), lens.data(), scale, f_tail.data());
        CHECK(!has_nan(f_tail) && f_tail == f_full, "decode fast %s %s/%s D=%d G=%d B=%ld: tail differs from full (max %g)",
              isa_name(isa), tname(p.first), tname(p.second), D, G, (long)B,
              max_abs_diff(f_tail.data(), f_full.data(), q.size()));
        const double e = rel_err(f_tail.data(), ref_tail.data(), q.size());
        // int4 / int8 keys (MHA, or GQA in groups of 4k) or int4 values (MHA): the AVX2 path's 16-bit fixed-point query / weights (kernels.h), 1e-4 as in
        // test_attention.
        const bool fixed16 = isa == Isa::Avx2 &&
                             ((p.first == KVType::I4 && ((G == 1 && D >= 32 && D <= 2048) ||
                                                         (G % 4 == 0 && D % 64 == 0 && D <= 256))) ||
                              (p.first == KVType::I8 && (G == 1 || G % 4 == 0) && D % 16 == 0 && D <= 256) ||
                              (p.second == KVType::I4 && G == 1 && D % 64 == 0 && D <= 2048));
        if (!fixed16) worst_fast = std::max(worst_fast, e);
        CHECK(e <= (fixed16 ? 1e-4 : 5e-6), "decode fast %s %s/%s D=%d: rel err vs ref %g", isa_name(isa),
              tname(p.first), tname(p.second), D, e);
      });
      n_decode++;
    }
}

void test_prefill(std::mt19937& rng) {
  for (Pair p : kPairs)
    for (int rep = 0; rep < 2; rep++) {
      const int n_kv = 1 + (int)(rng() % 2), G = rep == 0 ? 1 : 2 + (int)(rng() % 3), n_heads = n_kv * G;
      const int D = pick_dim(rng, p);
      // Cache of T tokens; the queries are the last Tq positions [qp, T) (a prefill chunk), window W; pos0 at most
      // the first query's window start.
      const int64_t T = 20 + rng() % 300, W = 1 + rng() % (T / 2), Tq = 1 + rng() % (T / 2), qp = T - Tq;
      const int64_t lo = qp - W + 1 > 0 ? qp - W + 1 : 0;
      const int64_t pos0 = rep == 0 ? lo : rng() % (lo + 1);
      Cache c = make_cache(rng, p, n_kv, D, T, W);
      Tail tail(c, pos0);
      auto q = randn(rng, (size_t)Tq * n_heads * D);
      const float scale = 1.f / std::sqrt((float)D);
      std::vector<float> ref_full(q.size()), ref_tail(q.size());
      attention_prefill_ref(q.data(), Tq, n_heads, c.view(), qp, scale, ref_full.data());
      attention_prefill_ref(q.data(), Tq, n_heads, tail.view, qp, scale, ref_tail.data());
      CHECK(!has_nan(ref_tail) && ref_tail == ref_full, "prefill ref %s/%s D=%d: tail differs from full",
            tname(p.first), tname(p.second), D);
      each_isa([&](Isa isa) {
        std::vector<float> f_full(q.size()), f_tail(q.size());
        attention_prefill(q.data(), Tq, n_heads, c.view(), qp, scale, f_full.data());
        attention_prefill(q.data(), Tq, n_heads, tail.view, qp, scale, f_tail.data());
        CHECK(!has_nan(f_tail) && f_tail == f_full,
              "prefill fast %s %s/%s D=%d G=%d T=%ld W=%ld Tq=%ld pos0=%ld: tail differs from full (max %g)",
              isa_name(isa), tname(p.first), tname(p.second), D, G, (long)T, (long)W, (long)Tq, (long)pos0,
              max_abs_diff(f_tail.data(), f_full.data(), q.size()));
        const double e = rel_err(f_tail.data(), ref_tail.data(), q.size());
        worst_fast = std::max(worst_fast, e);
        CHECK(e <= 5e-6, "prefill fast %s %s/%s D=%d: rel err vs ref %g", isa_name(isa), tname(p.first),
              tname(p.second), D, e);
      });
      n_prefill++;
    }
}

// f() must throw E with every word of `needles` in its message.
template <typename E, typename F>
void expect_throw(const char* what, F&& f, std::initializer_list<const char*> needles) {
  try {
    f();
    CHECK(false, "%s: no exception", what);
  } catch (const E& e) {
    const std::string m = e.what();
    for (const char* n : needles) CHECK(m.find(n) != std::string::npos, "%s: message '%s' lacks '%s'", what, m.c_str(), n);
  } catch (const std::exception& e) {
    CHECK(false, "%s: wrong exception type: %s", what, e.what());
  }
  n_throw++;
}

void test_errors(std::mt19937& rng) {
  const Pair p{KVType::I8, KVType::I4};
  const int D = 16, n_kv = 2, n_heads = 4;
  const int64_t T = 100, W = 10;
  Cache c = make_cache(rng, p, n_kv, D, T, W);
  auto q = randn(rng, (size_t)T * n_heads * D);
  std::vector<float> out(q.size());
  const float scale = 0.25f;
  // Decode at len T: the window starts at T - W = 90; pos0 = 91 misses position 90.
  Tail bad(c, T - W + 1), ok(c, T - W);
  const int64_t lens[2] = {T, T};
  each_isa([&](Isa) {
    for (auto fn : {attention_decode_ref, attention_decode}) {
      KVView v2[2] = {ok.view, bad.view};
      expect_throw<std::invalid_argument>("decode below pos0", [&] { fn(q.data(), 2, n_heads, v2, lens, scale, out.data()); },
                                          {"pos0 = 91", "sequence 1", "position 99", "from 90", "window 10"});
      // The same view is fine for a query one position later (len T + 1 would read [91, T]): exercised by the
      // prefill case below. Windowless cache with pos0 > 0: every query needs position 0.
      KVView nw = ok.view;
      nw.window = 0;
      expect_throw<std::invalid_argument>("decode, no window, pos0 > 0",
                                          [&] { fn(q.data(), 1, n_heads, &nw, lens, scale, out.data()); },
                                          {"pos0 = 90", "window none"});
      KVView neg = c.view();
      neg.pos0 = -1;
      expect_throw<std::out_of_range>("decode, negative pos0", [&] { fn(q.data(), 1, n_heads, &neg, lens, scale, out.data()); },
                                      {"pos0", "-1"});
    }
    for (auto fn : {attention_prefill_ref, attention_prefill}) {
      // Queries at positions [80, 100): the first needs position 71; pos0 = 72 is one too far, pos0 = 71 works.
      Tail t72(c, 72), t71(c, 71);
      expect_throw<std::invalid_argument>("prefill below pos0",
                                          [&] { fn(q.data(), 20, n_heads, t72.view, 80, scale, out.data()); },
                                          {"pos0 = 72", "position 80", "from 71"});
      fn(q.data(), 20, n_heads, t71.view, 80, scale, out.data());
      std::vector<float> full(20 * n_heads * D);
      fn(q.data(), 20, n_heads, c.view(), 80, scale, full.data());
      CHECK(std::equal(full.begin(), full.end(), out.begin()), "prefill at the exact window start differs from full");
      // Tq = 0 reads nothing and accepts any pos0.
      fn(q.data(), 0, n_heads, t72.view, 100, scale, out.data());
    }
  });
}

}  // namespace

int main() {
  std::mt19937 rng(5150);
  std::printf("isa %s, threads %d\n", isa_name(cpu_isa()), num_threads());
  test_decode(rng);
  test_prefill(rng);
  test_errors(rng);
  std::printf("%d decode batches, %d prefill cases, %d error checks; worst fast vs ref %.2e\n", n_decode, n_prefill,
              n_throw, worst_fast);
  std::printf("%s: %d failures\n", g_failures ? "FAIL" : "ok", g_failures);
  return g_failures ? 1 : 0;
}
