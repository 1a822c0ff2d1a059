// Decoder-step ops: each fast kernel vs its reference on random shapes (every ISA path this CPU has), and the
// references vs direct double-precision formulas. RoPE inverse frequencies vs transformers' formulas.
//
// Tolerances:
//   rmsnorm, rope_apply, embedding, kv-free ops with identical arithmetic: bit-exact (fast == ref)
//   silu_mul, softmax (vector exp, ~1-2 ulp):      max relative error per element ≤ 1e-6
//   log_softmax_gather / topk logp (vector exp + double sums): |fast − ref| ≤ 1e-5 absolute (values ~ -10)
//   references vs double formulas:                 relative ≤ 1e-6 (norm; per element for silu), log-probs ≤ 1e-5 absolute
#include <algorithm>
#include <cstring>
#include <numeric>
#include <stdexcept>

#include "quanteval/cpu_features.h"
#include "quanteval/half.h"
#include "quanteval/kernels.h"
#include "test_common.h"

using namespace quanteval;

template <typename F>
static void for_isas(F&& f) {
  for (Isa isa : {Isa::Scalar, Isa::Avx2}) {
    if ((int)isa > (int)cpu_isa()) continue;
    set_isa_cap(isa);
    f(isa);
  }
  set_isa_cap(Isa::Avx512);
}

static void test_rmsnorm(std::mt19937& rng) {
  for (int64_t D : {1, 7, 64, 96, 4096, 4099})
    for (int64_t M : {1, 3, 17}) {
      auto x = randn(rng, M * D, 3.f), w = randn(rng, D, 1.f, 1.f);
      std::vector<float> ref(M * D), fast(M * D);
      rmsnorm_ref(x.data(), w.data(), M, D, 1e-5f, ref.data());
      // vs double formula
      std::vector<double> dbl(M * D);
      for (int64_t m = 0; m < M; m++) {
        double ss = 0;
        for (int64_t d = 0; d < D; d++) ss += (double)x[m * D + d] * x[m * D + d];
        const double r = 1 / std::sqrt(ss / D + 1e-5);
        for (int64_t d = 0; d < D; d++) dbl[m * D + d] = w[d] * x[m * D + d] * r;
      }
      CHECK(rel_err(ref.data(), dbl.data(), M * D) <= 1e-6, "rmsnorm ref vs double D=%ld", (long)D);
      for_isas([&](Isa isa) {
        rmsnorm(x.data(), w.data(), M, D, 1e-5f, fast.data());
        CHECK(fast == ref, "rmsnorm %s M=%ld D=%ld: not bit-exact (max diff %g)", isa_name(isa), (long)M, (long)D,
              max_abs_diff(fast.data(), ref.data(), M * D));
        // in place
        auto y = x;
        rmsnorm(y.data(), w.data(), M, D, 1e-5f, y.data());
        CHECK(y == ref, "rmsnorm in place %s", isa_name(isa));
      });
    }
}

static void test_rope(std::mt19937& rng) {
  // inv_freq: default, linear, llama3 vs the formulas written out here in double.
  {
    RopeConfig c;
    c.head_dim = 64; c.rotary_dim = 64; c.theta = 10000;
    std::vector<float> f(32);
    rope_inv_freq(c, f.data());
    for (int i = 0; i < 32; i++)
      CHECK(f[i] == (float)(1.0 / std::pow(10000.0, 2.0 * i / 64)), "default inv_freq[%d]", i);
    c.scaling = 2; c.factor = 4;
    rope_inv_freq(c, f.data());
    for (int i = 0; i < 32; i++)
      CHECK(f[i] == (float)(1.0 / std::pow(10000.0, 2.0 * i / 64) / 4), "linear inv_freq[%d]", i);
    // llama3 (Llama-3.1-8B's parameters): high-frequency dims unchanged, low ones divided by 8, smooth between.
    c.head_dim = 128; c.rotary_dim = 128; c.theta = 500000; c.scaling = 1; c.factor = 8;
    c.low_freq_factor = 1; c.high_freq_factor = 4; c.original_max_position = 8192;
    std::vector<float> g(64);
    rope_inv_freq(c, g.data());
    int n_keep = 0, n_div = 0, n_mid = 0;
    for (int i = 0; i < 64; i++) {
      const double base = 1.0 / std::pow(500000.0, 2.0 * i / 128), wl = 2 * M_PI / base;
      double want;
      if (wl < 8192.0 / 4) { want = base; n_keep++; }
      else if (wl > 8192.0) { want = base / 8; n_div++; }
      else {
        const double sm = (8192.0 / wl - 1) / (4 - 1);
        want = (1 - sm) * base / 8 + sm * base;
        n_mid++;
      }
      CHECK(g[i] == (float)want, "llama3 inv_freq[%d] %g vs %g", i, g[i], want);
    }
    CHECK(n_keep > 0 && n_div > 0 && n_mid > 0, "llama3 case covers all three bands (%d %d %d)", n_keep, n_div, n_mid);
    c.rotary_dim = 7;
    bool threw = false;
    try { rope_inv_freq(c, g.data()); } catch (const std::invalid_argument&) { threw = true; }
    CHECK(threw, "odd rotary_dim must throw");
  }
  struct C { int64_t T; int H, D, R; };
  for (const C& c : {C{1, 1, 8, 8}, C{5, 3, 64, 64}, C{17, 4, 128, 128}, C{9, 2, 64, 32}, C{3, 6, 16, 16},
                     C{4, 2, 80, 20}}) {
    RopeConfig rc;
    rc.head_dim = c.D; rc.rotary_dim = c.R; rc.theta = 10000;
    std::vector<float> f(c.R / 2);
    rope_inv_freq(rc, f.data());
    std::vector<int32_t> pos(c.T);
    for (auto& p : pos) p = (int32_t)(rng() % 5000);
    auto x = randn(rng, c.T * c.H * c.D);
    auto ref = x, fast = x;
    rope_apply_ref(ref.data(), c.T, c.H, c.D, c.R, pos.data(), f.data());
    // vs double rotation: pairs (i, i + R/2) rotated by pos * inv_freq[i]; dims >= R untouched.
    std::vector<double> dbl(x.begin(), x.end());
    for (int64_t t = 0; t < c.T; t++)
      for (int h = 0; h < c.H; h++)
        for (int i = 0; i < c.R / 2; i++) {
          const size_t o = (t * c.H + h) * c.D;
          const double a = x[o + i], b = x[o + i + c.R / 2], th = (double)(float)(pos[t] * f[i]);
          dbl[o + i] = a * std::cos(th) - b * std::sin(th);
          dbl[o + i + c.R / 2] = b * std::cos(th) + a * std::sin(th);
        }
    CHECK(rel_err(ref.data(), dbl.data(), x.size()) <= 1e-6, "rope ref vs double T=%ld D=%d R=%d: %g", (long)c.T, c.D,
          c.R, rel_err(ref.data(), dbl.data(), x.size()));
    for (int64_t t = 0; t < c.T; t++)
      for (int h = 0; h < c.H; h++)
        for (int d = c.R; d < c.D; d++) {
          const size_t o = (t * c.H + h) * c.D + d;
          CHECK(ref[o] == x[o], "rope touched a non-rotary dim");
        }
    for_isas([&](Isa isa) {
      auto y = x;
      rope_apply(y.data(), c.T, c.H, c.D, c.R, pos.data(), f.data());
      CHECK(y == ref, "rope %s T=%ld H=%d D=%d R=%d: not bit-exact (max diff %g)", isa_name(isa), (long)c.T, c.H, c.D,
            c.R, max_abs_diff(y.data(), ref.data(), y.size()));
    });
  }
}

static double max_rel_elem(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); i++)
    m = std::max(m, std::fabs((double)a[i] - b[i]) / std::max(std::fabs((double)b[i]), 1e-30));
  return m;
}

static void test_elementwise(std::mt19937& rng) {
  for (int64_t n : {1, 7, 8, 100, 11008, 70001}) {
    auto g = randn(rng, n, 4.f), u = randn(rng, n);
    std::vector<float> ref(n), fast(n);
    silu_mul_ref(g.data(), u.data(), n, ref.data());
    for (int64_t i = 0; i < n; i++) {
      const double want = g[i] / (1 + std::exp(-(double)g[i])) * u[i];
      CHECK(std::fabs(ref[i] - want) <= 1e-6 * std::fabs(want) + 1e-30, "silu ref [%ld]", (long)i);
    }
    for_isas([&](Isa isa) {
      silu_mul(g.data(), u.data(), n, fast.data());
      CHECK(max_rel_elem(fast, ref) <= 1e-6, "silu_mul %s n=%ld: max rel %g", isa_name(isa), (long)n, max_rel_elem(fast, ref));
    });
  }
  for (int64_t N : {1, 5, 32, 1000, 32000})
    for (int64_t M : {1, 4}) {
      auto x = randn(rng, M * N, 3.f);
      auto ref = x;
      softmax_ref(ref.data(), M, N);
      std::vector<double> want(M * N);
      for (int64_t m = 0; m < M; m++) {
        double mx = -1e300, s = 0;
        for (int64_t j = 0; j < N; j++) mx = std::max(mx, (double)x[m * N + j]);
        for (int64_t j = 0; j < N; j++) s += std::exp(x[m * N + j] - mx);
        for (int64_t j = 0; j < N; j++) want[m * N + j] = std::exp(x[m * N + j] - mx) / s;
      }
      // Norm-relative: tiny probabilities carry exp's input rounding (|x - max| · 2^-24 relative).
      CHECK(rel_err(ref.data(), want.data(), M * N) <= 1e-6, "softmax ref N=%ld: %g", (long)N,
            rel_err(ref.data(), want.data(), M * N));
      for_isas([&](Isa isa) {
        auto y = x;
        softmax(y.data(), M, N);
        CHECK(max_rel_elem(y, ref) <= 1e-6, "softmax %s M=%ld N=%ld: max rel %g", isa_name(isa), (long)M, (long)N,
              max_rel_elem(y, ref));
        CHECK(rel_err(y.data(), ref.data(), M * N) <= 1e-6, "softmax %s norm", isa_name(isa));
      });
    }
}

static void test_log_softmax(std::mt19937& rng) {
  for (int64_t V : {1, 3, 17, 512, 32000, 128256})
    for (int64_t M : {1, 5}) {
      auto x = randn(rng, M * V, 3.f);
      if (V > 8) { x[3] = x[5]; x[7] = x[5]; }  // ties for top-k
      std::vector<int32_t> tg(M);
      for (auto& t : tg) t = (int32_t)(rng() % V);
      std::vector<float> ref(M), fast(M);
      log_softmax_gather_ref(x.data(), M, V, tg.data(), ref.data());
      for (int64_t m = 0; m < M; m++) {
        double mx = -1e300, s = 0;
        for (int64_t j = 0; j < V; j++) mx = std::max(mx, (double)x[m * V + j]);
        for (int64_t j = 0; j < V; j++) s += std::exp(x[m * V + j] - mx);
        const double want = x[m * V + tg[m]] - mx - std::log(s);
        CHECK(std::fabs(ref[m] - want) <= 1e-5, "log_softmax_gather ref V=%ld: %g vs %g", (long)V, ref[m], want);
      }
      const int k = (int)std::min<int64_t>(V, 10);
      std::vector<int32_t> ri(M * k), fi(M * k);
      std::vector<float> rl(M * k), fl(M * k);
      log_softmax_topk_ref(x.data(), M, V, k, ri.data(), rl.data());
      // top-k ref: sorted descending, ties by lower index, and it is the true top-k.
      for (int64_t m = 0; m < M; m++) {
        for (int j = 1; j < k; j++) {
          const float a = x[m * V + ri[m * k + j - 1]], b = x[m * V + ri[m * k + j]];
          CHECK(a > b || (a == b && ri[m * k + j - 1] < ri[m * k + j]), "topk ref order");
        }
        const float kth = x[m * V + ri[m * k + k - 1]];
        int64_t above = 0;
        for (int64_t j = 0; j < V; j++) above += x[m * V + j] > kth;
        CHECK(above <= k - 1, "topk ref misses a larger value");
      }
      for_isas([&](Isa isa) {
        log_softmax_gather(x.data(), M, V, tg.data(), fast.data());
        CHECK(max_abs_diff(fast.data(), ref.data(), M) <= 1e-5, "log_softmax_gather %s V=%ld: %g", isa_name(isa),
              (long)V, max_abs_diff(fast.data(), ref.data(), M));
        log_softmax_topk(x.data(), M, V, k, fi.data(), fl.data());
        CHECK(fi == ri, "log_softmax_topk %s V=%ld: indices differ", isa_name(isa), (long)V);
        CHECK(max_abs_diff(fl.data(), rl.data(), M * k) <= 1e-5, "log_softmax_topk %s logp", isa_name(isa));
      });
      bool threw = false;
      tg[0] = (int32_t)V;
      try { log_softmax_gather(x.data(), M, V, tg.data(), fast.data()); } catch (const std::out_of_range&) { threw = true; }
      CHECK(threw, "target == V must throw out_of_range");
    }
}

static void test_embedding(std::mt19937& rng) {
  for (DType dt : {DType::F32, DType::F16, DType::BF16})
    for (int64_t D : {1, 8, 13, 288}) {
      const int64_t V = 50, n = 9;
      auto w = randn(rng, V * D);
      std::vector<uint16_t> h(V * D);
      for (int64_t i = 0; i < V * D; i++) h[i] = dt == DType::F16 ? f32_to_f16(w[i]) : f32_to_bf16(w[i]);
      const void* table = dt == DType::F32 ? (const void*)w.data() : (const void*)h.data();
      std::vector<int32_t> ids(n);
      for (auto& i : ids) i = (int32_t)(rng() % V);
      ids[0] = 0; ids[1] = (int32_t)V - 1;
      std::vector<float> ref(n * D), fast(n * D);
      embedding_ref(table, dt, V, D, ids.data(), n, ref.data());
      for (int64_t i = 0; i < n; i++)
        for (int64_t d = 0; d < D; d++) {
          const float want = dt == DType::F32 ? w[ids[i] * D + d]
                             : dt == DType::F16 ? f16_to_f32(h[ids[i] * D + d]) : bf16_to_f32(h[ids[i] * D + d]);
          CHECK(ref[i * D + d] == want, "embedding ref");
        }
      for_isas([&](Isa isa) {
        embedding(table, dt, V, D, ids.data(), n, fast.data());
        CHECK(fast == ref, "embedding %s %s D=%ld: not exact", isa_name(isa), dtype_name(dt), (long)D);
        bool threw = false;
        ids[2] = -1;
        try { embedding(table, dt, V, D, ids.data(), n, fast.data()); } catch (const std::out_of_range&) { threw = true; }
        CHECK(threw, "embedding id -1 must throw out_of_range");
        ids[2] = 0;
      });
    }
}

int main() {
  std::mt19937 rng(77);
  test_rmsnorm(rng);
  test_rope(rng);
  test_elementwise(rng);
  test_log_softmax(rng);
  test_embedding(rng);
  std::printf("%s: %d failures\n", g_failures ? "FAIL" : "ok", g_failures);
  return g_failures ? 1 : 0;
}
