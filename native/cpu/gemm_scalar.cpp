// Portable fallbacks of the fast GEMM kernels (QUANTEVAL_ISA=scalar or a CPU without AVX2+FMA+F16C): the
// reference arithmetic in fp32, parallel over output channels. Correct everywhere, fast nowhere.
#include <algorithm>
#include <vector>

#include "gemm_common.h"
#include "gemm_impl.h"
#include "quanteval/threadpool.h"

namespace quanteval::impl::scalar {

using namespace detail;

namespace {
std::vector<float> x_f32(const void* X, DType t, int64_t M, int64_t K) {
  std::vector<float> x((size_t)(M * K));
  for (int64_t i = 0; i < M * K; i++) x[i] = load_elem(X, t, i);
  return x;
}
}  // namespace

void gemm_dense(const void* X, DType x_dtype, int64_t M, const DenseWeight& W, const float* bias, float* Y) {
  const std::vector<float> x = x_f32(X, x_dtype, M, W.K);
  parallel_for(W.N, 16, [&](int64_t n0, int64_t n1) {
    std::vector<float> w((size_t)W.K);
    for (int64_t n = n0; n < n1; n++) {
      for (int64_t k = 0; k < W.K; k++) w[k] = load_elem(W.data, W.dtype, n * W.K + k);
      for (int64_t m = 0; m < M; m++) {
        float acc = 0.f;
        for (int64_t k = 0; k < W.K; k++) acc += x[m * W.K + k] * w[k];
        Y[m * W.N + n] = acc + (bias ? bias[n] : 0.f);
      }
    }
  });
}

void gemm_q(const void* X, DType x_dtype, int64_t M, const QuantWeight& W, const float* bias, float* Y) {
  const std::vector<float> x = x_f32(X, x_dtype, M, W.K);
  const int64_t G = W.groups(), K = W.K;
  parallel_for(W.N, 16, [&](int64_t n0, int64_t n1) {
    std::vector<float> w((size_t)K);
    for (int64_t n = n0; n < n1; n++) {
      const uint8_t* row = W.codes + n * W.stride();
      for (int64_t g = 0; g < G; g++) {
        const float s = load_elem(W.scales, W.fmt.scale_dtype, n * G + g), z = (float)zero_of(W, n, g);
        const int64_t k0 = g * W.fmt.group_size, k1 = std::min<int64_t>(K, k0 + W.fmt.group_size);
        for (int64_t k = k0; k < k1; k++) w[k] = ((float)get_code(row, k, W.fmt.bits) - z) * s;
      }
      for (int64_t m = 0; m < M; m++) {
        float acc = 0.f;
        for (int64_t k = 0; k < K; k++) acc += x[m * K + k] * w[k];
        Y[m * W.N + n] = acc + (bias ? bias[n] : 0.f);
      }
    }
  });
}

}  // namespace quanteval::impl::scalar
