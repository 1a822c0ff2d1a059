// Dispatch of the GEMM kernels (kernels.h): validates the arguments, then picks the implementation for the CPU
// (cpu_isa(): AVX2+FMA+F16C, whose tiled path
// takes AVX-512 register tiles at the Avx512 level, or the portable fallback). The shape-dependent choices (GEMV vs tiled) are made inside
// each implementation.
// gemm_w8a8 is dispatched in gemm_a8.cpp.
#include <algorithm>
#include <string>
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

void gemm_q_multi(const void* X, DType x_dtype, int64_t M, const QuantWeight* W, int n, const float* const* bias,
                  float* const* Y) {
  check_act(x_dtype, M, "gemm_q_multi");
  check_multi(W, n, "gemm_q_multi", check_weight);
  if (M == 0 || n == 0) return;
  if (use_avx2() && impl::avx2::gemm_q_multi(X, x_dtype, M, W, n, bias, Y)) return;
  for (int i = 0; i < n; i++)
    if (W[i].N) gemm_q(X, x_dtype, M, W[i], bias ? bias[i] : nullptr, Y[i]);
}

}  // namespace quanteval
