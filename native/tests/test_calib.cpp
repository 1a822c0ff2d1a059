// Calibration numerics against their oracles: rtn_quantize and GPTQ with H = I against quantize_rtn_ref (bit-exact
// codes, scales and zeros), the upper Cholesky factor of H⁻¹ against Uᵀ U · H = I, and the NN GEMM against a
// naive triple loop (relative 1e-5 of the norm; the AVX2 one bit-identical to an fma loop), the Hessian
// accumulation against a float64 loop (1e-13 relative: M·eps bounds the order difference; bit-identical across
// ISAs and thread counts). Random shapes include odd sizes and short last groups.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include "quanteval/calib.h"
#include "quanteval/cpu_features.h"
#include "quanteval/kernels.h"
#include "quanteval/threadpool.h"
#include "test_common.h"

using namespace quanteval;


int main() {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 1.f);

  // GEMM, on every ISA the machine has (the AVX2 build and the baseline build of gemm_nn_impl.h)
  const Isa top = cpu_isa();
  for (int cap = 0; cap <= (int)top; cap++)
  for (int rep = 0; rep < 6; rep++) {
    set_isa_cap((Isa)cap);
    const int64_t R = 1 + rng() % 37, T = 1 + rng() % 300, Nc = 1 + rng() % 600;
    std::vector<float> A(R * T), B(T * Nc), C(R * Nc), ref(R * Nc);
    for (auto& x : A) x = nd(rng);
    for (auto& x : B) x = nd(rng);
    for (auto& x : C) x = nd(rng);
    ref = C;
    for (int64_t r = 0; r < R; r++)
      for (int64_t t = 0; t < T; t++)
        for (int64_t c = 0; c < Nc; c++) ref[r * Nc + c] += -0.5f * A[r * T + t] * B[t * Nc + c];
    calib_gemm_nn_acc(C.data(), Nc, A.data(), T, B.data(), Nc, R, T, Nc, -0.5f);
    double num = 0, den = 0;
    for (size_t i = 0; i < C.size(); i++) { num += std::pow(C[i] - ref[i], 2); den += std::pow(ref[i], 2); }
    CHECK(std::sqrt(num / den) <= 1e-5, "gemm isa=%s R=%ld T=%ld N=%ld rel err %g", isa_name(cpu_isa()), (long)R, (long)T,
          (long)Nc, std::sqrt(num / den));
  }
  set_isa_cap(top);

  // The AVX2 GEMM keeps gemm_nn_impl.h's numerics exactly: c = fma(alpha·a, b, c) in increasing t, strided operands.
  if (top >= Isa::Avx2)
    for (int rep = 0; rep < 6; rep++) {
      const int64_t R = 1 + rng() % 23, T = 1 + rng() % 290, Nc = 1 + rng() % 530;
      const int64_t lda = T + rng() % 5, ldb = Nc + rng() % 5, ldc = Nc + rng() % 5;
      std::vector<float> A(R * lda), B(T * ldb), C(R * ldc);
      for (auto& x : A) x = nd(rng);
      for (auto& x : B) x = nd(rng);
      for (auto& x : C) x = nd(rng);
      std::vector<float> ref = C;
      for (int64_t r = 0; r < R; r++)
        for (int64_t t = 0; t < T; t++)
          for (int64_t c = 0; c < Nc; c++)
            ref[r * ldc + c] = std::fma(0.75f * A[r * lda + t], B[t * ldb + c], ref[r * ldc + c]);
      calib_gemm_nn_acc(C.data(), ldc, A.data(), lda, B.data(), ldb, R, T, Nc, 0.75f);
      CHECK(std::memcmp(C.data(), ref.data(), C.size() * 4) == 0, "gemm avx2 R=%ld T=%ld N=%ld: not bit-identical to the fma loop",
            (long)R, (long)T, (long)Nc);
    }

  // Hessian accumulation: the upper triangle gets Σ_m x_mi x_mj (fp64; products exact), the lower part is left as
  // it was; the same bits on every ISA and thread count. M crosses the 256-row packing block; K is odd.
  for (int rep = 0; rep < 5; rep++) {
    const int64_t M = 1 + rng() % 600, K = 1 + rng() % 150;
    std::vector<float> X(M * K);
    for (auto& x : X) x = nd(rng);
    for (int64_t m = 0; m < M; m++) X[m * K + rng() % K] = 0.f;  // some exact zeros
    std::vector<double> H0(K * K);
    for (auto& h : H0) h = nd(rng);
    std::vector<std::vector<double>> got;
    const int threads0 = num_threads();
    for (int cap = 0; cap <= (int)top; cap++)
      for (int threads : {1, 2, 3}) {
        set_isa_cap((Isa)cap);
        set_num_threads(threads);
        got.push_back(H0);
        hessian_accumulate_upper(X.data(), M, K, got.back().data());
      }
    set_isa_cap(top);
    set_num_threads(threads0);
    for (size_t v = 1; v < got.size(); v++)
      CHECK(got[v] == got[0], "hessian M=%ld K=%ld: variant %zu (isa/threads) differs from the first", (long)M, (long)K, v);
    double worst = 0;
    for (int64_t i = 0; i < K; i++)
      for (int64_t j = 0; j < K; j++) {
        const double h = got[0][i * K + j];
        if (j < i) {
          CHECK(h == H0[i * K + j], "hessian M=%ld K=%ld: H[%ld,%ld] below the diagonal changed", (long)M, (long)K, (long)i, (long)j);
          continue;
        }
        double s = 0, a = 0;
        for (int64_t m = 0; m < M; m++) {
          s += (double)X[m * K + i] * X[m * K + j];
          a += std::fabs((double)X[m * K + i] * X[m * K + j]);
        }
        worst = std::max(worst, std::fabs(h - (H0[i * K + j] + s)) / (a + std::fabs(H0[i * K + j])));
      }
    CHECK(worst <= 1e-13, "hessian M=%ld K=%ld: relative error %g vs the float64 loop", (long)M, (long)K, worst);
  }

  // Upper Cholesky of H⁻¹: Uᵀ U H = I.
  for (int64_t K : {1, 5, 64, 65, 130, 200}) {
    const int64_t M = 3 * K + 7;
    std::vector<float> X(M * K), H(K * K, 0.f), U(K * K);
    for (auto& x : X) x = nd(rng);
    for (int64_t m = 0; m < M; m++)
      for (int64_t i = 0; i < K; i++)
        for (int64_t j = 0; j < K; j++) H[i * K + j] += X[m * K + i] * X[m * K + j];
    upper_cholesky_of_inverse(H.data(), K, U.data());
    double maxdev = 0, below = 0;
    for (int64_t i = 0; i < K; i++) {
      for (int64_t j = 0; j < i; j++) below = std::max(below, (double)std::fabs(U[i * K + j]));
      CHECK(U[i * K + i] > 0, "K=%ld U[%ld,%ld] = %g not positive", (long)K, (long)i, (long)i, U[i * K + i]);
    }
    // (UᵀU) H
    std::vector<double> Hi(K * K, 0.0);
    for (int64_t i = 0; i < K; i++)
      for (int64_t j = 0; j < K; j++) {
        double s = 0;
        for (int64_t t = 0; t <= std::min(i, j); t++) s += (double)U[t * K + i] * U[t * K + j];
        Hi[i * K + j] = s;
      }
    for (int64_t i = 0; i < K; i++)
      for (int64_t j = 0; j < K; j++) {
        double s = 0;
        for (int64_t t = 0; t < K; t++) s += Hi[i * K + t] * H[t * K + j];
        maxdev = std::max(maxdev, std::fabs(s - (i == j ? 1.0 : 0.0)));
      }
    CHECK(below == 0, "K=%ld: U has non-zeros below the diagonal", (long)K);
    CHECK(maxdev < 1e-3, "K=%ld: |UᵀU H - I|max = %g", (long)K, maxdev);
  }
  {
    std::vector<float> H = {1, 2, 2, 1};  // indefinite
    std::vector<float> U(4);
    bool threw = false;
    try { upper_cholesky_of_inverse(H.data(), 2, U.data()); } catch (const std::runtime_error&) { threw = true; }
    CHECK(threw, "indefinite H must throw");
  }

  // RTN and GPTQ(H = I) vs quantize_rtn_ref.
  for (int rep = 0; rep < 25; rep++) {
    QuantFormat f;
    const int bl[] = {2, 3, 4, 6, 8};
    f.bits = bl[rep % 5];
    const int64_t N = 1 + rng() % 19, K = 1 + rng() % 300;
    const int gsl[] = {16, 32, 64, 128};
    f.group_size = (rep / 4) % 3 == 0 ? (int)K : gsl[rng() % 4];
    f.symmetric = (rep / 2) % 2 == 1;
    f.scale_dtype = rep % 5 == 0 ? DType::F16 : rep % 7 == 0 ? DType::BF16 : DType::F32;
    const int64_t G = n_groups(K, f.group_size), stride = row_bytes(K, f.bits);
    const size_t sb = f.scale_dtype == DType::F32 ? 4 : 2;
    std::vector<float> W(N * K);
    for (auto& x : W) x = nd(rng) * 0.1f;
    std::vector<uint8_t> c0(N * stride), c1(N * stride), c2(N * stride), z0(N * G), z1(N * G), z2(N * G);
    std::vector<uint8_t> s0(N * G * sb), s1(N * G * sb), s2(N * G * sb);
    quantize_rtn_ref(W.data(), N, K, f, c0.data(), s0.data(), z0.data());
    rtn_quantize(W.data(), N, K, f, c1.data(), s1.data(), z1.data(), nullptr);
    std::vector<float> I(K * K, 0.f);
    for (int64_t k = 0; k < K; k++) I[k * K + k] = 1.f;
    GptqOptions opt;
    opt.block_size = 1 + rng() % 128;
    opt.static_groups = rep % 3 == 1;
    gptq_quantize(W.data(), N, K, I.data(), f, opt, c2.data(), s2.data(), z2.data(), nullptr);
    CHECK(c0 == c1 && s0 == s1 && (f.symmetric || z0 == z1), "rtn_quantize != quantize_rtn_ref (bits %d g %d K %ld)", f.bits, f.group_size, (long)K);
    CHECK(c0 == c2 && s0 == s2 && (f.symmetric || z0 == z2), "gptq(H=I) != quantize_rtn_ref (bits %d g %d K %ld sym %d)", f.bits, f.group_size, (long)K, (int)f.symmetric);
  }
  if (g_failures) std::printf("%d failure(s)\n", g_failures);
  else std::printf("test_calib: all checks passed\n");
  return g_failures ? 1 : 0;
}
