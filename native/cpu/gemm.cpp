// Dispatch of the GEMM kernels (kernels.h): validates the arguments, then picks the implementation for the CPU
// (cpu_isa(): AVX2+FMA+F16C or the portable fallback). The shape-dependent choices (GEMV vs tiled) are made inside
// each implementation.
//
// This file is compiled without any target ISA on purpose: the W8A8 rescale below must round exactly as
// gemm_w8a8_ref does, and without FMA the compiler cannot contract (a * b) * c + bias into a fused multiply-add.
#include <algorithm>
#include <vector>

#include "gemm_common.h"
#include "gemm_impl.h"
#include "quanteval/cpu_features.h"
#include "quanteval/kernels.h"
#include "quanteval/threadpool.h"

namespace quanteval {

using namespace detail;

namespace {
bool use_avx2() { return cpu_isa() >= Isa::Avx2; }

void check_dense(const DenseWeight& W, const char* who) {
  if (!float_dtype(W.dtype))
    throw std::invalid_argument(std::string(who) + ": weight dtype must be f32, f16 or bf16, got " + dtype_name(W.dtype));
  if (W.N < 0 || W.K < 1)
    throw std::invalid_argument(std::string(who) + ": need N >= 0 and K >= 1, got N=" + std::to_string(W.N) +
                                " K=" + std::to_string(W.K));
  if (W.N > 0 && !W.data) throw std::invalid_argument(std::string(who) + ": weight data is null");
}

// Largest K for which the W8A8 int32 accumulation is exact: |sum (qa - za) * qw| <= 255 * 255 * K < 2^31.
constexpr int64_t kW8A8MaxK = 33025;
}  // namespace

void gemm_dense(const void* X, DType x_dtype, int64_t M, const DenseWeight& W, const float* bias, float* Y) {
  check_act(x_dtype, M, "gemm_dense");
  check_dense(W, "gemm_dense");
  if (M == 0 || W.N == 0) return;
  if (use_avx2()) impl::avx2::gemm_dense(X, x_dtype, M, W, bias, Y);
  else impl::scalar::gemm_dense(X, x_dtype, M, W, bias, Y);
}

void gemm_q(const void* X, DType x_dtype, int64_t M, const QuantWeight& W, const float* bias, float* Y) {
  check_act(x_dtype, M, "gemm_q");
  check_weight(W, "gemm_q");
  if (M == 0 || W.N == 0) return;
  if (use_avx2()) impl::avx2::gemm_q(X, x_dtype, M, W, bias, Y);
  else impl::scalar::gemm_q(X, x_dtype, M, W, bias, Y);
}

void gemm_w8a8(const float* X, int64_t M, const QuantWeight& W, const float* bias, float* Y) {
  check_act(DType::F32, M, "gemm_w8a8");
  check_w8a8(W, "gemm_w8a8");
  if (M == 0 || W.N == 0) return;
  if (W.K > kW8A8MaxK) {  // int32 lanes could overflow: the int64 reference is exact
    gemm_w8a8_ref(X, M, W, bias, Y);
    return;
  }
  const bool avx2 = use_avx2();
  // A's rows are skewed by 64 bytes so that 4 KiB-multiple strides do not alias in L1.
  const int64_t N = W.N, K = W.K, lda = chunks_per_row(K) * kChunk + 32;
  // Activation codes minus their zero points, A[M, lda] int16 (zero past K), their row sums, zero points, scales.
  std::vector<int16_t> A((size_t)(M * lda));
  std::vector<float> sa((size_t)M);
  std::vector<int32_t> za((size_t)M), asum((size_t)M), acc((size_t)(M * N));
  parallel_for(M, 4, [&](int64_t m0, int64_t m1) {
    auto f = avx2 ? impl::avx2::act_quant_rows : impl::scalar::act_quant_rows;
    f(X + m0 * K, m1 - m0, K, A.data() + m0 * lda, lda, sa.data() + m0, za.data() + m0, asum.data() + m0);
  });
  // 4-bit weights (AVX2): int8 activations qa - 128 and vpmaddubsw, twice the products per instruction of the int16
  // path. Then acc = sum qw * (qa - 128), and sum qw * (qa - za) = acc + (128 - za) * sum qw.
  const bool w4_i8 = avx2 && W.fmt.bits == 4;
  std::vector<int8_t> A8;
  std::vector<int32_t> sumw;
  if (w4_i8) {
    A8.assign((size_t)(M * lda), 0);
    sumw.assign((size_t)N, 0);
    for (int64_t m = 0; m < M; m++)
      for (int64_t k = 0; k < K; k++) A8[m * lda + k] = (int8_t)(A[m * lda + k] + za[m] - 128);
  }
  dynamic_for(N, M <= 4 ? 64 : 96, [&](int64_t n0, int64_t n1) {
    if (w4_i8) impl::avx2::w4a8_core(A8.data(), lda, M, W, n0, n1, acc.data(), N, sumw.data());
    else (avx2 ? impl::avx2::w8a8_core : impl::scalar::w8a8_core)(A.data(), lda, M, W, n0, n1, acc.data(), N);
    // Y = sa * sw * (sum (qa - za) * qw - zw * sum (qa - za)), i.e. the reference's
    // sum qa*qw - za*sum qw - zw*sum qa + K*za*zw, rounded exactly as gemm_w8a8_ref rounds it.
    for (int64_t n = n0; n < n1; n++) {
      const float sw = load_scale(W, n, 0);
      const int64_t zw = zero_of(W, n, 0);
      for (int64_t m = 0; m < M; m++) {
        int64_t a = (int64_t)acc[m * N + n] - zw * (int64_t)asum[m];
        if (w4_i8) a += (int64_t)(128 - za[m]) * sumw[n];
        float y = (sa[m] * sw) * (float)a;
        if (bias) y += bias[n];
        Y[m * N + n] = y;
      }
    }
  });
}

}  // namespace quanteval
