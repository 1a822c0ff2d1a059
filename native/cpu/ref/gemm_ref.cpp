// Reference GEMMs: Y[M, N] = X[M, K] · W[N, K]^T (+ bias[N]). The oracles of the fast kernels (gemm_*.cpp).
// Weights are turned into fp32 exactly as dequantize_ref does ((q - z) * s in fp32); products and sums are taken in
// double so the oracle is more accurate than any fp32 kernel it judges. W8A8 is exact integer arithmetic followed by
// one fp32 rescale, written in the same order as the fast kernel so the two agree bit for bit.
#include <algorithm>
#include <vector>

#include "../gemm_common.h"
#include "quanteval/kernels.h"

namespace quanteval {

using namespace detail;

namespace {
// Row m of X as fp32.
void load_row(const void* X, DType t, int64_t m, int64_t K, float* out) {
  for (int64_t k = 0; k < K; k++) out[k] = load_elem(X, t, m * K + k);
}
}  // namespace

void gemm_dense_ref(const void* X, DType x_dtype, int64_t M, const DenseWeight& W, const float* bias, float* Y) {
  check_act(x_dtype, M, "gemm_dense_ref");
  if (!float_dtype(W.dtype)) throw std::invalid_argument(std::string("gemm_dense_ref: weight dtype must be f32, f16 or bf16, got ") + dtype_name(W.dtype));
  std::vector<float> x(W.K);
  for (int64_t m = 0; m < M; m++) {
    load_row(X, x_dtype, m, W.K, x.data());
    for (int64_t n = 0; n < W.N; n++) {
      double acc = 0;
      for (int64_t k = 0; k < W.K; k++) acc += (double)x[k] * (double)load_elem(W.data, W.dtype, n * W.K + k);
      Y[m * W.N + n] = (float)(acc + (bias ? (double)bias[n] : 0.0));
    }
  }
}

void gemm_q_ref(const void* X, DType x_dtype, int64_t M, const QuantWeight& W, const float* bias, float* Y) {
  check_act(x_dtype, M, "gemm_q_ref");
  check_weight(W, "gemm_q_ref");
  std::vector<float> w(W.K), x(W.K * std::max<int64_t>(M, 1));
  for (int64_t m = 0; m < M; m++) load_row(X, x_dtype, m, W.K, x.data() + m * W.K);
  const int64_t G = W.groups();
  for (int64_t n = 0; n < W.N; n++) {
    const uint8_t* row = W.codes + n * W.stride();
    for (int64_t g = 0; g < G; g++) {
      const float s = load_scale(W, n, g), z = (float)zero_of(W, n, g);
      const int64_t k0 = g * W.fmt.group_size, k1 = std::min<int64_t>(W.K, k0 + W.fmt.group_size);
      for (int64_t k = k0; k < k1; k++) w[k] = ((float)get_code(row, k, W.fmt.bits) - z) * s;
    }
    for (int64_t m = 0; m < M; m++) {
      double acc = 0;
      for (int64_t k = 0; k < W.K; k++) acc += (double)x[m * W.K + k] * (double)w[k];
      Y[m * W.N + n] = (float)(acc + (bias ? (double)bias[n] : 0.0));
    }
  }
}

void gemm_w8a8_ref(const float* X, int64_t M, const QuantWeight& W, const float* bias, float* Y) {
  check_act(DType::F32, M, "gemm_w8a8_ref");
  check_w8a8(W, "gemm_w8a8_ref");
  std::vector<int> qa(W.K);
  for (int64_t m = 0; m < M; m++) {
    const ActQuant p = act_codes8(X + m * W.K, W.K, qa.data());
    for (int64_t n = 0; n < W.N; n++) {
      float y = w8a8_output(qa.data(), p.s, (int64_t)p.z, W, n);
      if (bias) y += bias[n];
      Y[m * W.N + n] = y;
    }
  }
}

}  // namespace quanteval
