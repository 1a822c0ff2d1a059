// Quantization and GEMM kernels against their scalar references (kernels.h), on every ISA path the machine has.
//
// References and tolerances:
//  - quantize_rtn_ref: hand-computed codes (round half to even, zero-point clamp), the pseudo_quantize_tensor scale
//    formulas bit for bit (fp32 scales), and |w - w_hat| <= s/2 (+1e-6 relative slack) except where a code is
//    clamped at 0 or 2^b - 1 (then w lies beyond the clamped value).
//  - gemm_dense / gemm_q (fast) vs gemm_*_ref (double accumulation): ||y - y_ref||_2 <= 1e-5 ||a||_2 with
//    a[m, n] = sum_k |x[m, k] * w[n, k]|, the magnitude an fp32 accumulation's error scales with (||a|| >= ||y_ref||;
//    a lone output whose terms cancel would fail a bound relative to ||y_ref|| without any bug). Operands are
//    identical (bf16 activations and fp16/bf16 scales are converted identically by both).
//  - gemm_w8a8 vs gemm_w8a8_ref (every bit width, per channel and grouped incl. short last groups and sizes that split
//    32-code chunks): per channel bit-exact (integer accumulation, same fp32 rescale); grouped within 1e-5 of the
//    magnitude above (fp32 sum over groups); the ref vs gemm_q_ref(fake_quant_act_ref(X)) within 1e-5 of the norm.
//  - fast unpacking (tiled path) on identity activations reproduces dequantize_ref exactly.
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

#include "quanteval/cpu_features.h"
#include "quanteval/half.h"
#include "quanteval/kernels.h"
#include "quanteval/threadpool.h"

using namespace quanteval;

static int failures = 0, checks = 0;
#define CHECK(cond, ...)                                 \
  do {                                                   \
    checks++;                                            \
    if (!(cond)) {                                       \
      if (failures < 40) {                               \
        std::printf("FAIL %s:%d: ", __FILE__, __LINE__); \
        std::printf(__VA_ARGS__);                        \
        std::printf("\n");                               \
      }                                                  \
      failures++;                                        \
    }                                                    \
  } while (0)

static std::mt19937 rng(20240607);

static std::vector<float> randn(size_t n, float scale = 1.f) {
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}
static int64_t randint(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); }

// ||y - ref||_2 / ||a||_2 with a[m, n] = sum_k |x[m, k] w[n, k]| (x [M, K], w [N, K] as fp32).
static double err_vs_magnitude(const std::vector<float>& y, const std::vector<float>& ref, const std::vector<float>& x,
                               const std::vector<float>& w, int64_t M, int64_t N, int64_t K) {
  double num = 0, den = 0;
  for (int64_t m = 0; m < M; m++)
    for (int64_t n = 0; n < N; n++) {
      double a = 0;
      for (int64_t k = 0; k < K; k++) a += std::fabs((double)x[m * K + k] * w[n * K + k]);
      const double d = (double)y[m * N + n] - ref[m * N + n];
      num += d * d;
      den += a * a;
    }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}
static std::vector<float> as_f32(const void* p, DType t, size_t n) {
  std::vector<float> o(n);
  for (size_t i = 0; i < n; i++)
    o[i] = t == DType::F32 ? static_cast<const float*>(p)[i]
           : t == DType::F16 ? f16_to_f32(static_cast<const uint16_t*>(p)[i])
                             : bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
  return o;
}

static double rel_err(const std::vector<float>& y, const std::vector<float>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < y.size(); i++) {
    double d = (double)y[i] - ref[i];
    num += d * d;
    den += (double)ref[i] * ref[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// A quantized matrix with its owning buffers.
struct Packed {
  QuantFormat fmt;
  int64_t N, K;
  std::vector<uint8_t> codes, zeros;
  std::vector<uint8_t> scales;  // raw bytes of fmt.scale_dtype
  QuantWeight view() const {
    QuantWeight w;
    w.fmt = fmt; w.N = N; w.K = K; w.codes = codes.data(); w.scales = scales.data();
    w.zeros = fmt.symmetric ? nullptr : zeros.data();
    return w;
  }
};
static Packed quantize(const std::vector<float>& W, int64_t N, int64_t K, QuantFormat fmt) {
  Packed p{fmt, N, K, {}, {}, {}};
  const int64_t G = n_groups(K, fmt.group_size);
  p.codes.assign((size_t)(N * row_bytes(K, fmt.bits)), 0xAB);  // callee must zero it
  p.zeros.assign((size_t)(N * G), 0);
  p.scales.assign((size_t)(N * G) * dtype_size(fmt.scale_dtype), 0);
  quantize_rtn_ref(W.data(), N, K, fmt, p.codes.data(), p.scales.data(), p.zeros.data());
  return p;
}

// The ISA level, and the int8 dot product of gemm_w8a8's per-channel kernels when it is not AVX2's.
static const char* isa_label() {
  static std::string l;
  l = isa_name(cpu_isa());
  if (zmm_kernels() == Zmm::Emulated) l += "/avx512-emulated";
  if (cpu_isa() >= Isa::Avx2 && a8_dot() != A8Dot::Avx2) l += std::string("/") + a8_dot_name(a8_dot());
  return l.c_str();
}

// ── RTN semantics ──────────────────────────────────────────────────────────────────────────────────────────
static void test_rtn_hand_cases() {
  // 2-bit asym group [0, 0.5, 2.5, 3]: s = 3/3 = 1, z = 0; 0.5 and 2.5 round half to even -> 0 and 2.
  {
    std::vector<float> w = {0.f, 0.5f, 2.5f, 3.f};
    Packed p = quantize(w, 1, 4, {2, 4, false, DType::F32});
    float s; std::memcpy(&s, p.scales.data(), 4);
    CHECK(s == 1.f, "2-bit scale %g", s);
    CHECK(p.zeros[0] == 0, "2-bit zero %d", p.zeros[0]);
    int want[4] = {0, 0, 2, 3};
    for (int k = 0; k < 4; k++)
      CHECK(get_code(p.codes.data(), k, 2) == want[k], "half-even code %d: %d want %d", k,
            get_code(p.codes.data(), k, 2), want[k]);
  }
  // All-positive group: z = -round(min/s) < 0 is clamped to 0, then the top codes clamp at 2^b - 1.
  {
    std::vector<float> w = {10.f, 11.f, 12.f, 13.f, 14.f, 15.f, 16.f, 25.f};
    Packed p = quantize(w, 1, 8, {4, 8, false, DType::F32});
    float s; std::memcpy(&s, p.scales.data(), 4);
    CHECK(s == 1.f, "positive group scale %g", s);
    CHECK(p.zeros[0] == 0, "positive group zero %d (clamped)", p.zeros[0]);
    CHECK(get_code(p.codes.data(), 0, 4) == 10, "code of 10: %d", get_code(p.codes.data(), 0, 4));
    CHECK(get_code(p.codes.data(), 7, 4) == 15, "code of 25 clamps to 15: %d", get_code(p.codes.data(), 7, 4));
  }
  // Constant group: the range is clamped to 1e-5.
  {
    std::vector<float> w(5, 0.25f);
    Packed p = quantize(w, 1, 5, {8, 5, false, DType::F32});
    float s; std::memcpy(&s, p.scales.data(), 4);
    CHECK(s == 1e-5f / 255.f, "constant group scale %g", s);
  }
  // Symmetric 4-bit: s = absmax / 7, z = 8; -absmax -> code 1, absmax -> 15.
  {
    std::vector<float> w = {-7.f, 7.f, 0.f, 3.5f};
    Packed p = quantize(w, 1, 4, {4, 4, true, DType::F32});
    float s; std::memcpy(&s, p.scales.data(), 4);
    CHECK(s == 1.f, "sym scale %g", s);
    int want[4] = {1, 15, 8, 12};  // 3.5 -> round half even 4 -> 12
    for (int k = 0; k < 4; k++)
      CHECK(get_code(p.codes.data(), k, 4) == want[k], "sym code %d: %d want %d", k, get_code(p.codes.data(), k, 4), want[k]);
  }
}

static void test_rtn_bounds() {
  for (int bits : {2, 3, 4, 6, 8})
    for (int sym = 0; sym < 2; sym++)
      for (DType sd : {DType::F32, DType::F16, DType::BF16})
        for (int gs : {32, 128, 43, 1, 0}) {
          const int64_t N = randint(1, 9), K = gs == 0 ? randint(1, 300) : randint(1, 400);
          QuantFormat f{bits, gs == 0 ? (int)K : gs, (bool)sym, sd};
          std::vector<float> W = randn((size_t)(N * K));
          for (int64_t n = 0; n < N; n++) W[n * K] += 3.f;  // a skewed group now and then
          Packed p = quantize(W, N, K, f);
          QuantWeight q = p.view();
          std::vector<float> Wh((size_t)(N * K));
          dequantize_ref(q, Wh.data());
          const int64_t G = q.groups();
          const int qmax = (1 << bits) - 1;
          for (int64_t n = 0; n < N; n++)
            for (int64_t g = 0; g < G; g++) {
              const float s = load_scale(q, n, g);
              const int64_t k0 = g * f.group_size, k1 = std::min<int64_t>(K, k0 + f.group_size);
              if (sd == DType::F32) {  // the pseudo_quantize_tensor formula, bit for bit
                float mn = W[n * K + k0], mx = mn, amax = 0;
                for (int64_t k = k0; k < k1; k++) {
                  mn = std::min(mn, W[n * K + k]); mx = std::max(mx, W[n * K + k]);
                  amax = std::max(amax, std::fabs(W[n * K + k]));
                }
                const float want = sym ? std::fmax(amax, 1e-5f) / (float)((1 << (bits - 1)) - 1)
                                       : std::fmax(mx - mn, 1e-5f) / (float)qmax;
                CHECK(s == want, "scale bits=%d sym=%d n=%ld g=%ld: %.9g want %.9g", bits, sym, (long)n, (long)g, s, want);
              }
              for (int64_t k = k0; k < k1; k++) {
                const float w = W[n * K + k], wh = Wh[n * K + k];
                const int c = get_code(p.codes.data() + n * q.stride(), k, bits);
                const bool ok = std::fabs(w - wh) <= 0.5f * s * (1 + 1e-5f) + 1e-6f * std::fabs(w) ||
                                (c == 0 && w < wh) || (c == qmax && w > wh);
                CHECK(ok, "bound bits=%d sym=%d gs=%d dtype=%s n=%ld k=%ld: w=%g w_hat=%g s=%g code=%d", bits, sym,
                      f.group_size, dtype_name(sd), (long)n, (long)k, w, wh, s, c);
              }
            }
          // Codes past K in the last chunk are zero (the callee zeroed the buffer).
          for (int64_t n = 0; n < N; n++)
            for (int64_t k = K; k < chunks_per_row(K) * 32; k++)
              CHECK(get_code(p.codes.data() + n * q.stride(), k, bits) == 0, "padding code at k=%ld", (long)k);
        }
}

static void test_fake_quant_act() {
  for (int bits : {8, 4}) {
    const int64_t M = 7, K = randint(1, 500);
    std::vector<float> X = randn((size_t)(M * K), 2.f), Xh((size_t)(M * K));
    fake_quant_act_ref(X.data(), M, K, bits, Xh.data());
    for (int64_t m = 0; m < M; m++) {
      float mn = X[m * K], mx = mn;
      for (int64_t k = 0; k < K; k++) { mn = std::min(mn, X[m * K + k]); mx = std::max(mx, X[m * K + k]); }
      const float s = std::fmax(mx - mn, 1e-5f) / (float)((1 << bits) - 1);
      for (int64_t k = 0; k < K; k++)
        CHECK(std::fabs(X[m * K + k] - Xh[m * K + k]) <= 0.5f * s * 1.0001f + 1e-6f,
              "fake_quant_act bits=%d: x=%g x_hat=%g s=%g", bits, X[m * K + k], Xh[m * K + k], s);
    }
  }
}

// ── GEMMs ──────────────────────────────────────────────────────────────────────────────────────────────────
static std::vector<uint16_t> to_bf16(const std::vector<float>& x) {
  std::vector<uint16_t> o(x.size());
  for (size_t i = 0; i < x.size(); i++) o[i] = f32_to_bf16(x[i]);
  return o;
}
static std::vector<uint16_t> to_f16(const std::vector<float>& x) {
  std::vector<uint16_t> o(x.size());
  for (size_t i = 0; i < x.size(); i++) o[i] = f32_to_f16(x[i]);
  return o;
}

static void test_dense(int cases) {
  for (int t = 0; t < cases; t++) {
    const int64_t M = t % 5 == 0 ? randint(200, 300) : (t % 3 == 0 ? 1 : randint(1, 12));
    const int64_t N = t % 7 == 0 ? 1 : t % 6 == 1 ? randint(150, 300) : randint(1, 70);
    const int64_t K = t % 4 == 0 ? randint(600, 1100) : randint(1, 200);
    const DType wd = (DType)(t % 3 == 0 ? 0 : t % 3 == 1 ? 1 : 2);
    const DType xd = t % 2 ? DType::BF16 : DType::F32;
    std::vector<float> X = randn((size_t)(M * K)), W = randn((size_t)(N * K), 0.1f), bias = randn((size_t)N);
    std::vector<uint16_t> Xb = to_bf16(X), Wh = wd == DType::F16 ? to_f16(W) : to_bf16(W);
    const void* xp = xd == DType::F32 ? (const void*)X.data() : (const void*)Xb.data();
    DenseWeight dw{wd, N, K, wd == DType::F32 ? (const void*)W.data() : (const void*)Wh.data()};
    const float* b = t % 2 ? bias.data() : nullptr;
    std::vector<float> y((size_t)(M * N), NAN), ref((size_t)(M * N));
    gemm_dense_ref(xp, xd, M, dw, b, ref.data());
    gemm_dense(xp, xd, M, dw, b, y.data());
    const double e = err_vs_magnitude(y, ref, as_f32(xp, xd, (size_t)(M * K)), as_f32(dw.data, wd, (size_t)(N * K)), M, N, K);
    CHECK(e <= 1e-5, "[%s] gemm_dense M=%ld N=%ld K=%ld w=%s x=%s bias=%d: err %.3g of ||a|| > 1e-5", isa_label(), (long)M,
          (long)N, (long)K, dtype_name(wd), dtype_name(xd), b != nullptr, e);
  }
}

static void check_gemm_q_case(int bits, int gs, bool sym, DType sd, DType xd, int64_t M, int64_t N, int64_t K,
                              bool with_bias) {
  QuantFormat f{bits, gs, sym, sd};
  std::vector<float> W = randn((size_t)(N * K), 0.05f), X = randn((size_t)(M * K)), bias = randn((size_t)N);
  Packed p = quantize(W, N, K, f);
  QuantWeight q = p.view();
  std::vector<uint16_t> Xb = to_bf16(X);
  const void* xp = xd == DType::F32 ? (const void*)X.data() : (const void*)Xb.data();
  const float* b = with_bias ? bias.data() : nullptr;
  std::vector<float> y((size_t)(M * N), NAN), ref((size_t)(M * N));
  gemm_q_ref(xp, xd, M, q, b, ref.data());
  gemm_q(xp, xd, M, q, b, y.data());
  std::vector<float> Wh((size_t)(N * K));
  dequantize_ref(q, Wh.data());
  const double e = err_vs_magnitude(y, ref, as_f32(xp, xd, (size_t)(M * K)), Wh, M, N, K);
  CHECK(e <= 1e-5, "[%s] gemm_q bits=%d gs=%d sym=%d scale=%s x=%s M=%ld N=%ld K=%ld bias=%d: err %.3g of ||a|| > 1e-5",
        isa_label(), bits, f.group_size, sym, dtype_name(sd), dtype_name(xd), (long)M, (long)N, (long)K, b != nullptr, e);
}

static void test_gemm_q(int cases) {
  const int bits_list[5] = {2, 3, 4, 6, 8};
  const int gs_list[6] = {32, 64, 128, 43, 0 /* per channel */, 172};
  for (int t = 0; t < cases; t++) {
    const int bits = bits_list[t % 5];
    const int gsel = gs_list[(t / 4) % 6];
    const bool sym = (t / 3) % 2;
    const DType sd = (DType)((t / 5) % 3);
    const DType xd = (t / 2) % 2 ? DType::BF16 : DType::F32;
    int64_t M;
    switch (t % 6) {
      case 0: M = 1; break;
      case 1: M = randint(2, 8); break;
      case 2: M = randint(9, 40); break;
      case 3: M = t % 12 == 3 ? randint(250, 310) : randint(1, 5); break;
      default: M = randint(1, 20); break;
    }
    // Wide cases (N > the kernels' dynamic blocks of 64-96 rows) spread over several threads.
    const int64_t N = t % 9 == 0 ? 1 : t % 11 == 0 ? randint(200, 420) : randint(1, 60);
    const int64_t K = t % 10 == 0 ? 172 : (t % 3 == 0 && N < 100 ? randint(500, 1100) : randint(1, 400));
    check_gemm_q_case(bits, gsel == 0 ? (int)K : gsel, sym, sd, xd, M, N, K, t % 2);
  }
}

// The GEMV shapes (M <= 4, 4- and 8-bit codes, groups of a multiple of 32 or per channel) that the AVX-512 kernels
// take, every combination, K a multiple of 32 or not (a short last group).
static void test_gemv_grid() {
  int t = 0;
  for (int bits : {4, 8})
    for (int gs : {32, 64, 128, 96, 0})
      for (int64_t M = 1; M <= 4; M++, t++) {
        const int64_t K = t % 2 ? 32 * randint(1, 40) : randint(1, 1300), N = t % 7 == 0 ? 1 : randint(2, 90);
        check_gemm_q_case(bits, gs == 0 ? (int)K : gs, t % 3 == 0, (DType)(t % 3), t % 4 == 1 ? DType::BF16 : DType::F32,
                          M, N, K, t % 2 == 0);
      }
}

// The 4- and 2-bit GEMV at M = 1 under both kernels (GemvKernel::Int, GemvKernel::Fp32) against a float64 dot product of X with the
// dequantized weights, on activations that stress the integer one's per-group exponents: Gaussian, one outlier 10^4
// times the rest in every group, groups of magnitudes 10^-3..10^3, all-zero groups, 10^-25 and 10^30 scales (the
// first below 2^-75: the fp32 kernel takes it); K up to 11008 (two rows a pass) and 17000 per channel (integer sums
// flushed every 64 chunks). NaN in X gives NaN, Inf non-finite outputs, as in the reference. Int must differ from Fp32
// somewhere (else it did not run) and stay within 1e-6 of the magnitude (fp32 rounding, 10x inside the suite's 1e-5),
// 2e-6 around outliers (the other x of such a group are off by up to 2^-26 of it). The fp32 kernel pairs whole bytes
// with x_{j+16} - 16 x_j (docs/gemv.md) in fp32, which cancels around outliers: it gets 1e-4, and must be at least
// twice the int kernel's worst error there.
// The integer GEMV at M = 1 (GemvKernel::Int) against float64 and against the fp32 kernels: on ymm (AVX2), and where
// the zmm kernels run (native or emulated) 4-bit groups of an even number of chunks (and per channel) on zmm, the
// rest still on ymm.
static void test_gemv_int() {
  if (cpu_isa() < Isa::Avx2) {
    std::printf("skip: test_gemv_int at %s (no integer GEMV there)\n", isa_label());
    return;
  }
  static std::set<std::string> reported;  // the figures docs/gemv.md quotes, once an ISA level / zmm mode
  const std::string level = std::string(isa_name(cpu_isa())) + "/" + zmm_name(zmm_kernels());
  for (int bits : {4, 2}) {
    double worst_i[6] = {0}, worst_f[6] = {0};
    int t = 0, differ = 0;
    // 2-bit: the integer kernel takes groups of an even number of chunks (64, 128, 192; per channel when K / 32 is);
    // 32 and 96 stay on the fp32 kernel.
    for (int gs : bits == 4 ? std::vector<int>{32, 64, 128, 96, 0} : std::vector<int>{64, 128, 192, 96, 0})
      for (int kind = 0; kind < 6; kind++, t++) {
        // K > 6144 (X beyond 24 KiB): two rows of W a pass; odd N leaves one row to the one-row pass.
        const int64_t K = t % 5 == 4 ? (gs == 0 ? 17000 : 11008) : t % 5 == 3 ? randint(6200, 9000)
                          : t % 2 ? 32 * randint(1, 48) : randint(1, 1500);
        const int64_t N = t % 7 == 0 ? 1 : K > 6144 ? 2 * randint(1, 12) + t % 2 : randint(2, 150);
        const int g = gs == 0 ? (int)K : gs;
        QuantFormat f{bits, g, t % 3 == 0, (DType)(t % 3)};
        Packed p = quantize(randn((size_t)(N * K), 0.05f), N, K, f);
        const QuantWeight q = p.view();
        std::vector<float> X = randn((size_t)K), bias = randn((size_t)N);
        for (int64_t k = 0; k < K; k++) {
          const int64_t grp = k / g;
          if (kind == 1 && k % g == (grp * 7) % g) X[k] *= 1e4f;
          if (kind == 2) X[k] *= std::pow(10.f, (float)(grp % 7) - 3.f);
          if (kind == 3 && grp % 2 == 0) X[k] = 0.f;
          if (kind == 4) X[k] *= 1e-25f;
          if (kind == 5) X[k] *= 1e30f;
        }
        if (kind >= 4)  // a bias of the products' scale
          for (float& b : bias) b *= kind == 4 ? 1e-25f : 1e30f;
        std::vector<float> Wh((size_t)(N * K)), ref((size_t)N);
        dequantize_ref(q, Wh.data());
        for (int64_t n = 0; n < N; n++) {
          double a = bias[n];
          for (int64_t k = 0; k < K; k++) a += (double)X[k] * Wh[n * K + k];
          ref[n] = (float)a;
        }
        std::vector<float> yi((size_t)N, NAN), yf((size_t)N, NAN);
        gemm_q(X.data(), DType::F32, 1, q, bias.data(), yi.data());
        set_gemv_kernel(GemvKernel::Fp32);
        gemm_q(X.data(), DType::F32, 1, q, bias.data(), yf.data());
        set_gemv_kernel(GemvKernel::Int);
        const double ei = err_vs_magnitude(yi, ref, X, Wh, 1, N, K), ef = err_vs_magnitude(yf, ref, X, Wh, 1, N, K);
        // Outliers: every other x of the group is held to 2^-26 (4-bit; 2-bit 2^-28) of the outlier, ~1e4 times
        // itself; when the outlier's own weight dequantizes to 0 (its code is the zero point: 1 in 4 at 2 bits),
        // sum |x w| loses the outlier's term and that representation error is what is left (2-bit, K = 128: 2.3e-5,
        // where the fp32 kernel has 4.6e-6). The same cases on ymm and zmm alike.
        const double bi = kind == 1 ? 5e-5 : 1e-6;
        CHECK(ei <= bi, "gemv w%d int gs=%d kind=%d N=%ld K=%ld: err %.3g of ||a|| > %.0e (fp32 kernel: %.3g)", bits, g,
              kind, (long)N, (long)K, ei, bi, ef);
        CHECK(ef <= 1e-4, "gemv w%d fp32 gs=%d kind=%d N=%ld K=%ld: err %.3g of ||a|| > 1e-4", bits, g, kind, (long)N,
              (long)K, ef);
        worst_i[kind] = std::max(worst_i[kind], ei);
        worst_f[kind] = std::max(worst_f[kind], ef);
        for (int64_t n = 0; n < N; n++) differ += yi[n] != yf[n];
      }
    CHECK(differ > 0, "gemv w%d: the int and fp32 kernels gave bit-identical outputs in every case (did int run?)", bits);
    if (bits == 4)  // (the 2-bit fp32 kernel masks its codes: no cancellation there)
      CHECK(2 * worst_i[1] < worst_f[1], "gemv w4 around outliers: int worst %.3g, not half the fp32 kernel's %.3g",
            worst_i[1], worst_f[1]);
    if (!reported.count(level)) {
      if (bits == 2) reported.insert(level);
      std::printf("[%s] gemv w%d worst error / ||a|| by X kind (gaussian, outlier, 1e-3..1e3 groups, zero groups, 1e-25, "
                  "1e30): int", level.c_str(), bits);
      for (double e : worst_i) std::printf(" %.2g", e);
      std::printf(" | fp32");
      for (double e : worst_f) std::printf(" %.2g", e);
      std::printf("\n");
    }
  }
  // The largest integer sums: every code at its largest (bytes 0xFF) and every l near 2^15 (4-bit: n = 2^24 + 32766;
  // 2-bit: n = 2^26 + 131064): a lane gains ~2^24 a chunk (4-bit) or a pair of chunks (2-bit), so 512 chunks overflow
  // int32 unless the sums are flushed (every 64 chunks, 2-bit every 16 pairs).
  for (int bits : {4, 2}) {
    const int64_t N = 3, K = 16384;
    Packed p{QuantFormat{bits, (int)K, false, DType::F32}, N, K, {}, {}, {}};
    p.codes.assign((size_t)(N * row_bytes(K, bits)), 0xFF);
    p.zeros.assign((size_t)N, 0);
    const float one = 1.f;
    p.scales.resize(sizeof(float) * N);
    for (int64_t n = 0; n < N; n++) std::memcpy(p.scales.data() + sizeof(float) * n, &one, sizeof(float));
    const float xv = 1.f + 16383.f * std::ldexp(1.f, -23);
    std::vector<float> X((size_t)K, xv), y((size_t)N, NAN);
    gemm_q(X.data(), DType::F32, 1, p.view(), nullptr, y.data());
    const double want = (double)((1 << bits) - 1) * (double)K * xv;
    double worst = 0;
    for (float v : y) worst = std::max(worst, std::fabs(v - want) / want);
    CHECK(worst <= 1e-6, "gemv w%d with every code at its largest and x = %.9g, K = %ld per channel: rel err %.3g (int32 "
          "overflow?)", bits, xv, (long)K, worst);
  }
  // Codes that end where readable memory ends (a PROT_NONE page after them): a row of an odd number of chunks ends
  // in a chunk read alone (the zmm kernel takes pairs); a read past it faults.
  {
    const int64_t N = 3, K = 9 * 32;  // 9 chunks, per channel (a multiple of 32: the GEMV path)
    Packed p = quantize(randn((size_t)(N * K), 0.05f), N, K, QuantFormat{4, (int)K, false, DType::F16});
    const size_t page = (size_t)sysconf(_SC_PAGESIZE), bytes = p.codes.size();
    const size_t span = (bytes + page - 1) / page * page + page;
    uint8_t* m = (uint8_t*)mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED, "mmap");
    if (m != MAP_FAILED) {
      mprotect(m + span - page, page, PROT_NONE);
      uint8_t* codes = m + span - page - bytes;
      std::memcpy(codes, p.codes.data(), bytes);
      QuantWeight q = p.view();
      q.codes = codes;
      std::vector<float> X = randn((size_t)K), y((size_t)N), ref((size_t)N);
      gemm_q_ref(X.data(), DType::F32, 1, q, nullptr, ref.data());
      gemm_q(X.data(), DType::F32, 1, q, nullptr, y.data());
      double worst = 0;
      for (int64_t n = 0; n < N; n++) worst = std::max(worst, (double)std::fabs(y[n] - ref[n]));
      CHECK(worst <= 1e-4, "gemv w4 per channel, codes up to a guard page: max err %.3g", worst);
      munmap(m, span);
    }
  }
  // Non-finite X: the reference's NaN / Inf pattern.
  for (float bad : {NAN, INFINITY}) {
    const int64_t N = 9, K = 256;
    Packed p = quantize(randn((size_t)(N * K), 0.05f), N, K, QuantFormat{4, 128, false, DType::F16});
    std::vector<float> X = randn((size_t)K), y((size_t)N, 0.f), ref((size_t)N);
    X[200] = bad;
    gemm_q_ref(X.data(), DType::F32, 1, p.view(), nullptr, ref.data());
    gemm_q(X.data(), DType::F32, 1, p.view(), nullptr, y.data());
    // NaN stays NaN; an Inf may meet its zero-point correction (Inf - Inf): any non-finite value where the reference
    // has one.
    int same = 0;
    for (int64_t n = 0; n < N; n++)
      same += std::isnan(bad) ? std::isnan(y[n]) == std::isnan(ref[n]) : std::isfinite(y[n]) == std::isfinite(ref[n]);
    CHECK(same == N, "gemv w4 with X[200] = %g: %d of %ld outputs match the reference's non-finite pattern", bad, same, (long)N);
  }
}

// Identity activations through the tiled path (M = K > 8) give W_hat^T: the fast unpackers against get_code.
static void test_unpack_identity() {
  for (int bits : {2, 3, 4, 6, 8})
    for (int gs : {32, 43}) {
      const int64_t N = 5, K = 77;
      Packed p = quantize(randn((size_t)(N * K)), N, K, {bits, gs, false, DType::F32});
      QuantWeight q = p.view();
      std::vector<float> I((size_t)(K * K), 0.f), Y((size_t)(K * N)), Wh((size_t)(N * K));
      for (int64_t k = 0; k < K; k++) I[k * K + k] = 1.f;
      gemm_q(I.data(), DType::F32, K, q, nullptr, Y.data());
      dequantize_ref(q, Wh.data());
      int bad = 0;
      for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++) bad += Y[k * N + n] != Wh[n * K + k];
      CHECK(bad == 0, "[%s] identity unpack bits=%d gs=%d: %d mismatches", isa_label(), bits, gs, bad);
    }
}

static void check_w8a8_case(int bits, int gs, bool sym, DType sd, int64_t M, int64_t N, int64_t K, bool with_bias);

static void test_w8a8(int cases) {
  static const int kBits[5] = {2, 3, 4, 6, 8};
  for (int t = 0; t < cases; t++) {
    const int bits = kBits[t % 5];
    const bool sym = (t / 4) % 2;
    const DType sd = (DType)((t / 2) % 3);
    const int64_t M = t % 5 == 0 ? randint(100, 260) : t % 5 == 1 ? 1 : t % 5 == 2 ? 3 : randint(1, 9);
    const int64_t N = t % 7 == 0 ? 1 : t % 4 == 1 ? randint(150, 300) : randint(1, 50);
    const int64_t K = t % 6 == 0 ? 172 : t % 3 == 0 ? randint(700, 1500) : randint(1, 300);
    // Group sizes: per channel (== K or larger), multiples of 32 (the AVX2 kernels; short last group when K is not a
    // multiple), and sizes that split 32-code chunks (the portable path).
    static const int kGroups[8] = {0, 32, 64, 128, 256, 96, 50, 17};
    const int gsel = kGroups[(t / 3) % 8];
    const int gs = gsel == 0 ? (int)K + (t % 2 ? 0 : 13) : gsel;
    check_w8a8_case(bits, gs, sym, sd, M, N, K, t % 3 != 0);
  }
  // Rows longer than the AVX2 kernel's K block (2048 codes) with full tiles of 8 tokens and a remainder: partial sums
  // over K blocks, the 8-token tile and the 4/2/1-token tails.
  for (int bits : {2, 3, 4, 8})
    for (int gs : {32, 128, 256, 0}) {
      const int64_t K = bits == 3 ? 4100 : 5632;
      check_w8a8_case(bits, gs ? gs : (int)K, bits % 2 == 1, DType::F16, 8 + randint(0, 15), randint(1, 40), K, true);
    }
  // Small batches (the GEMV path): tiles of 8 and 4 tokens of grouped 2-4-bit weights, then the 2/1-token tails.
  for (int bits : {2, 3, 4})
    for (int gs : {32, 64, 128, 256})
      for (int64_t M : {4, 7, 8})
        check_w8a8_case(bits, gs, gs == 64, DType::BF16, M, randint(1, 60), randint(200, 1300), M != 7);
}

// Per-channel weights of every bit width the integer kernels take, across the token tiles (4, 2, 1 and their
// remainders), both weight-row tiles (2, 1), rows longer than one chunk with a short last chunk, and K up to 4100.
static void test_w8a8_pc() {
  for (int bits : {2, 3, 4, 8})
    for (int64_t M : {1, 2, 3, 4, 5, 8, 9, 17, 70}) {
      const int64_t N = randint(1, 45), K = M % 2 ? randint(1, 700) : randint(2000, 4100);
      check_w8a8_case(bits, (int)K, (M + bits) % 3 == 0, DType::F16, M, N, K, M % 3 != 0);
    }
}

static void check_w8a8_case(int bits, int gs, bool sym, DType sd, int64_t M, int64_t N, int64_t K, bool with_bias) {
  QuantFormat f{bits, gs, sym, sd};
  std::vector<float> W = randn((size_t)(N * K), 0.05f), X = randn((size_t)(M * K), 3.f), bias = randn((size_t)N);
  for (int64_t k = 0; k < K; k += 17) X[k] += 20.f;  // an outlier channel or two
  Packed p = quantize(W, N, K, f);
  QuantWeight q = p.view();
  const bool grouped = q.groups() > 1;
  const float* b = with_bias ? bias.data() : nullptr;
  std::vector<float> y((size_t)(M * N), NAN), ref((size_t)(M * N)), Xh((size_t)(M * K)), ref2((size_t)(M * N)),
      Wh((size_t)(N * K));
  gemm_w8a8_ref(X.data(), M, q, b, ref.data());
  gemm_w8a8(X.data(), M, q, b, y.data());
  fake_quant_act_ref(X.data(), M, K, 8, Xh.data());
  dequantize_ref(q, Wh.data());
  if (!grouped) {  // one exact integer per output and the same fp32 rescale: bit-exact
    int bad = 0;
    for (size_t i = 0; i < y.size(); i++) bad += y[i] != ref[i];
    CHECK(bad == 0, "[%s] gemm_w8a8 bits=%d gs=%d sym=%d scale=%s M=%ld N=%ld K=%ld: %d of %zu outputs differ from "
          "the ref", isa_label(), bits, gs, sym, dtype_name(sd), (long)M, (long)N, (long)K, bad, y.size());
  } else {  // exact per-group integers, rescaled and summed over groups in fp32 (the ref sums in double)
    const double e = err_vs_magnitude(y, ref, Xh, Wh, M, N, K);
    CHECK(e <= 1e-5, "[%s] gemm_w8a8 bits=%d gs=%d sym=%d scale=%s M=%ld N=%ld K=%ld: err %.3g of the magnitude",
          isa_label(), bits, gs, sym, dtype_name(sd), (long)M, (long)N, (long)K, e);
  }
  gemm_q_ref(Xh.data(), DType::F32, M, q, b, ref2.data());
  const double e = rel_err(ref, ref2);
  CHECK(e <= 1e-5, "gemm_w8a8_ref vs gemm_q_ref(fake_quant_act_ref) bits=%d gs=%d M=%ld N=%ld K=%ld: rel err %.3g",
        bits, gs, (long)M, (long)N, (long)K, e);
}

// gemm_q_multi / gemm_w8a8_multi give exactly what one call per weight gives: fused (same bits, group size and K),
// and mixed sets that fall back. Shapes of a layer's q/k/v (N 64/16/16) and odd ones; M = 1..9 (GEMV and beyond).
static void test_multi(int cases) {
  static const int kBits[5] = {2, 3, 4, 6, 8};
  for (int t = 0; t < cases; t++) {
    const int n = 1 + t % 3;
    const int64_t M = t % 4 == 0 ? 1 : randint(1, 9);
    const int64_t K = t % 5 == 0 ? 172 : randint(1, 12) * 32;
    const int gs = t % 3 == 0 ? (int)K : t % 3 == 1 ? 32 : 64;
    const bool mixed = t % 5 == 4;  // the last weight gets another bit width: no fused pass
    std::vector<Packed> ps;
    std::vector<std::vector<float>> biases;
    for (int i = 0; i < n; i++) {
      const int64_t N = i == 0 ? randint(1, 80) : randint(1, 20);
      const int bits = mixed && i == n - 1 ? 8 : kBits[t % 5];
      ps.push_back(quantize(randn((size_t)(N * K), 0.05f), N, K, QuantFormat{bits, gs, t % 2 == 1, DType::F16}));
      biases.push_back(randn((size_t)N));
    }
    std::vector<QuantWeight> W;
    std::vector<const float*> b;
    for (int i = 0; i < n; i++) {
      W.push_back(ps[i].view());
      b.push_back(i == 1 ? nullptr : biases[i].data());
    }
    const std::vector<float> X = randn((size_t)(M * K), 2.f);
    for (int a8 = 0; a8 < 2; a8++) {
      std::vector<std::vector<float>> y(n), ref(n);
      std::vector<float*> yp;
      for (int i = 0; i < n; i++) {
        y[i].assign((size_t)(M * W[i].N), NAN);
        ref[i].assign((size_t)(M * W[i].N), 0.f);
        yp.push_back(y[i].data());
        if (a8) gemm_w8a8(X.data(), M, W[i], b[i], ref[i].data());
        else gemm_q(X.data(), DType::F32, M, W[i], b[i], ref[i].data());
      }
      if (a8) gemm_w8a8_multi(X.data(), M, W.data(), n, b.data(), yp.data());
      else gemm_q_multi(X.data(), DType::F32, M, W.data(), n, b.data(), yp.data());
      int bad = 0;
      for (int i = 0; i < n; i++)
        for (size_t j = 0; j < y[i].size(); j++) bad += !(y[i][j] == ref[i][j]);
      CHECK(bad == 0, "[%s] %s n=%d bits=%d gs=%d mixed=%d M=%ld K=%ld: %d outputs differ from separate calls",
            isa_label(), a8 ? "gemm_w8a8_multi" : "gemm_q_multi", n, kBits[t % 5], gs, (int)mixed, (long)M, (long)K, bad);
    }
  }
  // Weights of different K cannot share X.
  std::vector<float> w1 = randn(64 * 4), w2 = randn(32 * 4), x = randn(64), y1(4), y2(4);
  Packed p1 = quantize(w1, 4, 64, QuantFormat{4, 32, false, DType::F16}), p2 = quantize(w2, 4, 32, QuantFormat{4, 32, false, DType::F16});
  QuantWeight ws[2] = {p1.view(), p2.view()};
  float* ys[2] = {y1.data(), y2.data()};
  std::string msg;
  try { gemm_q_multi(x.data(), DType::F32, 1, ws, 2, nullptr, ys); } catch (const std::invalid_argument& e) { msg = e.what(); }
  CHECK(msg.find("weight 1 has 32") != std::string::npos, "gemm_q_multi with K 64 and 32: got '%s'", msg.c_str());
  msg.clear();
  try { gemm_w8a8_multi(x.data(), 1, ws, 2, nullptr, ys); } catch (const std::invalid_argument& e) { msg = e.what(); }
  CHECK(msg.find("weight 1 has 32") != std::string::npos, "gemm_w8a8_multi with K 64 and 32: got '%s'", msg.c_str());
}

static void test_errors() {
  std::vector<uint8_t> c(64, 0), z(4, 0);
  std::vector<float> s(4, 1.f), x(64, 1.f), y(4);
  QuantWeight q;
  q.fmt = {5, 32, false, DType::F32}; q.N = 1; q.K = 32; q.codes = c.data(); q.scales = s.data(); q.zeros = z.data();
  bool threw = false;
  try { gemm_q(x.data(), DType::F32, 1, q, nullptr, y.data()); } catch (const std::invalid_argument&) { threw = true; }
  CHECK(threw, "gemm_q accepts bits=5");
  threw = false;
  try { gemm_w8a8(x.data(), 1, q, nullptr, y.data()); } catch (const std::invalid_argument&) { threw = true; }
  CHECK(threw, "gemm_w8a8 accepts bits=5");
  q.fmt = {4, 16, false, DType::F32};
  threw = false;
  try { gemm_q(x.data(), DType::F16, 1, q, nullptr, y.data()); } catch (const std::invalid_argument&) { threw = true; }
  CHECK(threw, "gemm_q accepts f16 activations");
}

// parallel_for hands an exception thrown on any thread back to the caller, after all ranges ran, and the pool works on.
static void test_parallel_for_exception() {
  set_num_threads(2);
  for (int thrower = 0; thrower < 2; thrower++) {
    std::atomic<int> ran{0};
    std::string msg;
    try {
      parallel_for(2, 1, [&](int64_t b, int64_t) {
        ran++;
        if (b == thrower) throw std::runtime_error("range " + std::to_string(b));
      });
    } catch (const std::runtime_error& e) {
      msg = e.what();
    }
    CHECK(msg == "range " + std::to_string(thrower), "parallel_for: exception of range %d: got '%s'", thrower, msg.c_str());
    CHECK(ran == 2, "parallel_for: %d of 2 ranges ran before the rethrow", ran.load());
  }
  std::atomic<int64_t> sum{0};
  parallel_for(1000, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) sum += i;
  });
  CHECK(sum == 499500, "parallel_for after an exception: sum %ld", (long)sum.load());
}

// `test_gemm avx512 [cases]`: only the kernels that differ at the Avx512 level (the fp32 tiles of dense and packed
// weights, the 4- and 8-bit GEMV, single and fused), with fewer random cases when asked (emulators); fails on a CPU without AVX-512.
static int avx512_only(int cases) {
  std::printf("cpu: isa %s\n", isa_name(cpu_isa()));
  if (cpu_isa() < Isa::Avx512) {
    std::printf("FAIL: this CPU has no AVX512F/BW/VL (isa %s)\n", isa_name(cpu_isa()));
    return 1;
  }
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    test_dense(cases);
    test_gemm_q(cases);
    test_gemv_grid();
    test_multi(cases);
  }
  std::printf("%s: %d checks, %d failures (isa %s)\n", failures ? "FAIL" : "ok", checks, failures,
              isa_name(cpu_isa()));
  return failures ? 1 : 0;
}

// `test_gemm vnni [cases]`: only gemm_w8a8 on this CPU's own VNNI instruction (fails when it has none), with fewer
// random cases when asked: for emulators of VNNI CPUs (scripts/avx512-emu, Bochs' tigerlake model), ~100x slower.
static int vnni_only(int cases) {
  set_a8_dot_mode(A8DotMode::Auto);
  std::printf("cpu: isa %s, a8 dot %s\n", isa_name(cpu_isa()), a8_dot_name(a8_dot()));
  if (a8_dot() != A8Dot::AvxVnni && a8_dot() != A8Dot::Avx512Vnni) {
    std::printf("FAIL: this CPU has neither AVX-VNNI nor AVX512-VNNI/VL (a8 dot %s)\n", a8_dot_name(a8_dot()));
    return 1;
  }
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    test_w8a8_pc();
    test_w8a8(cases);
    test_multi(cases);
  }
  std::printf("%s: %d checks, %d failures (gemm_w8a8 on %s)\n", failures ? "FAIL" : "ok", checks, failures,
              a8_dot_name(a8_dot()));
  return failures ? 1 : 0;
}

int main(int argc, char** argv) {
  if (argc > 1 && !std::strcmp(argv[1], "avx512")) return avx512_only(argc > 2 ? std::atoi(argv[2]) : 40);
  if (argc > 1 && !std::strcmp(argv[1], "vnni")) return vnni_only(argc > 2 ? std::atoi(argv[2]) : 56);
  test_parallel_for_exception();
  test_rtn_hand_cases();
  test_rtn_bounds();
  test_fake_quant_act();
  test_errors();
  std::vector<Isa> isas = {Isa::Scalar};
  if (cpu_isa() >= Isa::Avx2) isas.push_back(Isa::Avx2);
  if (cpu_isa() >= Isa::Avx512) isas.push_back(Isa::Avx512);
  else std::printf("skip: the AVX-512 kernels on zmm registers (this CPU has no AVX512F/BW/VL; emulated below)\n");
  const Isa hw = cpu_isa();
  for (Isa isa : isas) {
    set_isa_cap(isa);
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      test_dense(isa == Isa::Scalar ? 15 : 40);
      test_gemm_q(isa == Isa::Scalar ? 30 : 150);
      test_gemv_grid();
      test_unpack_identity();
      test_w8a8_pc();
      test_w8a8(isa == Isa::Scalar ? 16 : 56);
      test_multi(isa == Isa::Scalar ? 10 : 40);
      test_gemv_int();
    }
  }
  set_isa_cap(hw);
  // The fp32 4-bit GEMV (GemvKernel::Fp32; the integer one is the default and ran above).
  if (hw >= Isa::Avx2) {
    set_gemv_kernel(GemvKernel::Fp32);
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      test_gemm_q(60);
      test_gemv_grid();
      test_multi(20);
    }
    set_gemv_kernel(GemvKernel::Int);
  }
  // gemm_w8a8's VNNI kernels: always with the instruction emulated (their tiling and arithmetic on any AVX2 CPU),
  // and with the real one when this CPU has it. Without VNNI the second pass is skipped (reported below).
  int dot_modes = 0;
  if (hw >= Isa::Avx2) {
    std::vector<A8DotMode> modes = {A8DotMode::Emulate};
    set_a8_dot_mode(A8DotMode::Auto);
    if (a8_dot() == A8Dot::AvxVnni || a8_dot() == A8Dot::Avx512Vnni) modes.push_back(A8DotMode::Auto);
    else std::printf("skip: gemm_w8a8 on real VNNI (this CPU has neither AVX-VNNI nor AVX512-VNNI/VL)\n");
    for (A8DotMode mode : modes) {
      set_a8_dot_mode(mode);
      dot_modes++;
      for (int threads : {1, 2}) {
        set_num_threads(threads);
        test_w8a8_pc();
        test_w8a8(56);
        test_multi(40);
      }
    }
    set_a8_dot_mode(A8DotMode::Auto);
  }
  // The AVX-512 kernel text with its zmm primitives emulated in scalar code: on every AVX2 CPU.
  if (hw >= Isa::Avx2) {
    set_zmm_mode(ZmmMode::Emulate);
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      test_dense(20);
      test_gemm_q(60);
      test_gemv_grid();
      test_multi(20);
      test_gemv_int();
    }
    set_zmm_mode(ZmmMode::Auto);
  }
  std::printf("%s: %d checks, %d failures (ISAs tested: %zu, VNNI dot modes: %d, AVX-512 emulated: %s)\n",
              failures ? "FAIL" : "ok", checks, failures, isas.size(), dot_modes, hw >= Isa::Avx2 ? "yes" : "no");
  return failures ? 1 : 0;
}
