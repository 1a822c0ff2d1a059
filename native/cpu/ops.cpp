// Dispatching entry points of the decoder-step ops: validation (as the references), threading over rows, and the
// choice between the AVX2 row kernels (ops_avx2.cpp) and the references (scalar ISA or QUANTEVAL_ISA=scalar).
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "ops_impl.h"
#include "quanteval/cpu_features.h"
#include "quanteval/kernels.h"
#include "quanteval/threadpool.h"

namespace quanteval {
namespace {
bool use_avx2() { return cpu_isa() >= Isa::Avx2; }
// Rows per thread chunk so that each chunk has at least ~32K elements of work.
int64_t row_grain(int64_t row_len) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, row_len)); }
}  // namespace

void rmsnorm(const float* x, const float* w, int64_t M, int64_t D, float eps, float* y) {
  if (!use_avx2()) return rmsnorm_ref(x, w, M, D, eps, y);
  if (M < 0 || D <= 0) throw std::invalid_argument("rmsnorm: need M >= 0 and D > 0");
  parallel_for(M, row_grain(D), [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; m++) detail::rmsnorm_row_avx2(x + m * D, w, D, eps, y + m * D);
  });
}

void rope_apply(float* x, int64_t T, int n_heads, int head_dim, int rotary_dim, const int32_t* positions,
                const float* inv_freq) {
  if (!use_avx2()) return rope_apply_ref(x, T, n_heads, head_dim, rotary_dim, positions, inv_freq);
  if (T < 0 || n_heads <= 0 || head_dim <= 0) throw std::invalid_argument("rope_apply: need T >= 0, n_heads > 0, head_dim > 0");
  if (rotary_dim <= 0 || rotary_dim > head_dim || rotary_dim % 2)
    throw std::invalid_argument("rope_apply: rotary_dim must be even and in (0, head_dim], got " + std::to_string(rotary_dim));
  const int half = rotary_dim / 2;
  parallel_for(T, row_grain((int64_t)n_heads * head_dim), [&](int64_t t0, int64_t t1) {
    // cos/sin once per token, shared by every head (the reference computes the same fp32 values per head).
    std::vector<float> cs(half), sn(half);
    for (int64_t t = t0; t < t1; t++) {
      detail::rope_cos_sin(positions[t], inv_freq, half, cs.data(), sn.data());
      detail::rope_token_avx2(x + t * n_heads * (int64_t)head_dim, n_heads, head_dim, rotary_dim, cs.data(), sn.data());
    }
  });
}

void silu_mul(const float* gate, const float* up, int64_t n, float* out) {
  if (!use_avx2()) return silu_mul_ref(gate, up, n, out);
  // Chunks of multiples of 8 elements.
  const int64_t chunks = (n + 4095) / 4096;
  parallel_for(chunks, 8, [&](int64_t c0, int64_t c1) {
    const int64_t b = c0 * 4096, e = std::min(n, c1 * 4096);
    detail::silu_mul_avx2(gate + b, up + b, e - b, out + b);
  });
}

void softmax(float* x, int64_t M, int64_t N) {
  if (!use_avx2()) return softmax_ref(x, M, N);
  if (M < 0 || N <= 0) throw std::invalid_argument("softmax: need M >= 0 and N > 0");
  parallel_for(M, row_grain(N), [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; m++) detail::softmax_row_avx2(x + m * N, N);
  });
}

void log_softmax_gather(const float* logits, int64_t M, int64_t V, const int32_t* targets, float* logp) {
  if (!use_avx2()) return log_softmax_gather_ref(logits, M, V, targets, logp);
  if (M < 0 || V <= 0) throw std::invalid_argument("log_softmax_gather: need M >= 0 and V > 0");
  for (int64_t m = 0; m < M; m++)
    if (targets[m] < 0 || targets[m] >= V)
      throw std::out_of_range("log_softmax_gather: targets[" + std::to_string(m) + "] = " + std::to_string(targets[m]) +
                              " outside [0, " + std::to_string(V) + ")");
  parallel_for(M, row_grain(V), [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; m++) {
      const float* r = logits + m * V;
      const float mx = detail::row_max_avx2(r, V);
      logp[m] = (r[targets[m]] - mx) - detail::log_sum_exp_avx2(r, V, mx);
    }
  });
}

void log_softmax_topk(const float* logits, int64_t M, int64_t V, int k, int32_t* idx, float* logp) {
  if (!use_avx2()) return log_softmax_topk_ref(logits, M, V, k, idx, logp);
  if (M < 0 || V <= 0) throw std::invalid_argument("log_softmax_topk: need M >= 0 and V > 0");
  if (k < 1 || k > V)
    throw std::out_of_range("log_softmax_topk: k must be in [1, V=" + std::to_string(V) + "], got " + std::to_string(k));
  parallel_for(M, row_grain(V), [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; m++) {
      const float* r = logits + m * V;
      const float mx = detail::row_max_avx2(r, V);
      const float lse = detail::log_sum_exp_avx2(r, V, mx);
      detail::topk_row_avx2(r, V, k, idx + m * k);
      for (int j = 0; j < k; j++) logp[m * k + j] = (r[idx[m * k + j]] - mx) - lse;
    }
  });
}

void embedding(const void* table, DType dtype, int64_t V, int64_t D, const int32_t* ids, int64_t n, float* out) {
  if (!use_avx2()) return embedding_ref(table, dtype, V, D, ids, n, out);
  if (dtype != DType::F32 && dtype != DType::F16 && dtype != DType::BF16)
    throw std::invalid_argument(std::string("embedding: table dtype must be f32, f16 or bf16, got ") + dtype_name(dtype));
  if (V <= 0 || D <= 0 || n < 0) throw std::invalid_argument("embedding: need V > 0, D > 0, n >= 0");
  for (int64_t i = 0; i < n; i++)
    if (ids[i] < 0 || ids[i] >= V)
      throw std::out_of_range("embedding: ids[" + std::to_string(i) + "] = " + std::to_string(ids[i]) + " outside [0, " +
                              std::to_string(V) + ")");
  const size_t es = dtype_size(dtype);
  parallel_for(n, row_grain(D), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++)
      detail::embedding_row_avx2(static_cast<const uint8_t*>(table) + (size_t)ids[i] * D * es, dtype, D, out + i * D);
  });
}

}  // namespace quanteval
