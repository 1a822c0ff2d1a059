// Scalar references for the rest of a decoder step: RMSNorm, RoPE, SiLU·up, softmax, log-softmax gather / top-k,
// embedding lookup. Each follows what transformers computes in fp32 (Llama modules); sums that feed a
// normalization are accumulated in double so the reference is the better-rounded side of every comparison.
// Products are rounded one by one as torch does (no FMA contraction even where the target allows it).
#pragma GCC optimize("fp-contract=off")
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "../ops_impl.h"
#include "quanteval/half.h"
#include "quanteval/kernels.h"

namespace quanteval {

void rmsnorm_ref(const float* x, const float* w, int64_t M, int64_t D, float eps, float* y) {
  if (M < 0 || D <= 0) throw std::invalid_argument("rmsnorm: need M >= 0 and D > 0");
  for (int64_t m = 0; m < M; m++) {
    const float* xr = x + m * D;
    float* yr = y + m * D;
    double ss = 0;
    for (int64_t d = 0; d < D; d++) ss += (double)xr[d] * xr[d];
    // LlamaRMSNorm: hs * rsqrt(mean(hs^2) + eps), then weight * hs, in fp32.
    const float r = 1.f / std::sqrt((float)(ss / (double)D) + eps);
    for (int64_t d = 0; d < D; d++) yr[d] = w[d] * (xr[d] * r);
  }
}

void rope_apply_ref(float* x, int64_t T, int n_heads, int head_dim, int rotary_dim, const int32_t* positions,
                    const float* inv_freq) {
  if (T < 0 || n_heads <= 0 || head_dim <= 0) throw std::invalid_argument("rope_apply: need T >= 0, n_heads > 0, head_dim > 0");
  if (rotary_dim <= 0 || rotary_dim > head_dim || rotary_dim % 2)
    throw std::invalid_argument("rope_apply: rotary_dim must be even and in (0, head_dim], got " + std::to_string(rotary_dim));
  const int half = rotary_dim / 2;
  std::vector<float> cs(half), sn(half);
  for (int64_t t = 0; t < T; t++) {
    detail::rope_cos_sin(positions[t], inv_freq, half, cs.data(), sn.data());
    for (int i = 0; i < half; i++) {
      const float c = cs[i], s = sn[i];
      for (int h = 0; h < n_heads; h++) {
        float* xh = x + (t * n_heads + h) * (int64_t)head_dim;
        const float a = xh[i], b = xh[i + half];
        // q*cos + rotate_half(q)*sin with rotate_half(q) = cat(-q2, q1): two rounded products, one rounded sum.
        const float ac = a * c, bs = b * s, bc = b * c, as = a * s;
        xh[i] = ac - bs;
        xh[i + half] = bc + as;
      }
    }
  }
}

void silu_mul_ref(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; i++) {
    const float g = gate[i];
    out[i] = g / (1.f + std::exp(-g)) * up[i];
  }
}

void softmax_ref(float* x, int64_t M, int64_t N) {
  if (M < 0 || N <= 0) throw std::invalid_argument("softmax: need M >= 0 and N > 0");
  for (int64_t m = 0; m < M; m++) {
    float* r = x + m * N;
    const float mx = *std::max_element(r, r + N);
    double sum = 0;
    for (int64_t j = 0; j < N; j++) { r[j] = std::exp(r[j] - mx); sum += r[j]; }
    const float inv = (float)(1.0 / sum);
    for (int64_t j = 0; j < N; j++) r[j] *= inv;
  }
}

namespace {
// log(sum_j exp(row[j] - mx)) with the exps in fp32 and the sum in double.
float log_sum_exp_shifted(const float* row, int64_t V, float mx) {
  double sum = 0;
  for (int64_t j = 0; j < V; j++) sum += std::exp(row[j] - mx);
  return (float)std::log(sum);
}
}  // namespace

void log_softmax_gather_ref(const float* logits, int64_t M, int64_t V, const int32_t* targets, float* logp) {
  if (M < 0 || V <= 0) throw std::invalid_argument("log_softmax_gather: need M >= 0 and V > 0");
  for (int64_t m = 0; m < M; m++)
    if (targets[m] < 0 || targets[m] >= V)
      throw std::out_of_range("log_softmax_gather: targets[" + std::to_string(m) + "] = " + std::to_string(targets[m]) +
                              " outside [0, " + std::to_string(V) + ")");
  for (int64_t m = 0; m < M; m++) {
    const float* r = logits + m * V;
    const float mx = *std::max_element(r, r + V);
    logp[m] = (r[targets[m]] - mx) - log_sum_exp_shifted(r, V, mx);
  }
}

void log_softmax_topk_ref(const float* logits, int64_t M, int64_t V, int k, int32_t* idx, float* logp) {
  if (M < 0 || V <= 0) throw std::invalid_argument("log_softmax_topk: need M >= 0 and V > 0");
  if (k < 1 || k > V)
    throw std::out_of_range("log_softmax_topk: k must be in [1, V=" + std::to_string(V) + "], got " + std::to_string(k));
  std::vector<int32_t> order(V);
  for (int64_t m = 0; m < M; m++) {
    const float* r = logits + m * V;
    const float mx = *std::max_element(r, r + V);
    const float lse = log_sum_exp_shifted(r, V, mx);
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [r](int32_t a, int32_t b) { return r[a] > r[b] || (r[a] == r[b] && a < b); });
    for (int i = 0; i < k; i++) {
      idx[m * k + i] = order[i];
      logp[m * k + i] = (r[order[i]] - mx) - lse;
    }
  }
}

void embedding_ref(const void* table, DType dtype, int64_t V, int64_t D, const int32_t* ids, int64_t n, float* out) {
  if (dtype != DType::F32 && dtype != DType::F16 && dtype != DType::BF16)
    throw std::invalid_argument(std::string("embedding: table dtype must be f32, f16 or bf16, got ") + dtype_name(dtype));
  if (V <= 0 || D <= 0 || n < 0) throw std::invalid_argument("embedding: need V > 0, D > 0, n >= 0");
  for (int64_t i = 0; i < n; i++)
    if (ids[i] < 0 || ids[i] >= V)
      throw std::out_of_range("embedding: ids[" + std::to_string(i) + "] = " + std::to_string(ids[i]) + " outside [0, " +
                              std::to_string(V) + ")");
  for (int64_t i = 0; i < n; i++) {
    float* o = out + i * D;
    const int64_t row = ids[i];
    switch (dtype) {
      case DType::F32: std::memcpy(o, static_cast<const float*>(table) + row * D, D * 4); break;
      case DType::F16:
        for (int64_t d = 0; d < D; d++) o[d] = f16_to_f32(static_cast<const uint16_t*>(table)[row * D + d]);
        break;
      default:
        for (int64_t d = 0; d < D; d++) o[d] = bf16_to_f32(static_cast<const uint16_t*>(table)[row * D + d]);
        break;
    }
  }
}

}  // namespace quanteval
