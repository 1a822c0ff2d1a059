#pragma GCC target("avx2,fma,f16c")
// No FMA contraction of a*b - c*d: GCC fuses even intrinsics otherwise, and the references round every product.
#pragma GCC optimize("fp-contract=off")
// AVX2 row kernels for the decoder-step ops. Each matches its reference's arithmetic where that is cheap
// (RMSNorm's sum of squares in double, RoPE's separately rounded products, softmax sums in double) and otherwise
// differs only by the vector exp (simd::exp8, ~1-2 ulp).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "ops_impl.h"
#include "quanteval/half.h"
#include "simd_avx2.h"

namespace quanteval::detail {

using namespace simd;

void rmsnorm_row_avx2(const float* x, const float* w, int64_t D, float eps, float* y) {
  __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
  int64_t d = 0;
  for (; d + 8 <= D; d += 8) {
    const __m256 v = _mm256_loadu_ps(x + d);
    const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v)), hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
    a0 = _mm256_fmadd_pd(lo, lo, a0);
    a1 = _mm256_fmadd_pd(hi, hi, a1);
  }
  double ss = hsum4d(_mm256_add_pd(a0, a1));
  for (; d < D; d++) ss += (double)x[d] * x[d];
  const float r = 1.f / std::sqrt((float)(ss / (double)D) + eps);
  const __m256 rv = _mm256_set1_ps(r);
  for (d = 0; d + 8 <= D; d += 8)
    _mm256_storeu_ps(y + d, _mm256_mul_ps(_mm256_loadu_ps(w + d), _mm256_mul_ps(_mm256_loadu_ps(x + d), rv)));
  for (; d < D; d++) y[d] = w[d] * (x[d] * r);
}

void rope_token_avx2(float* x, int n_heads, int head_dim, int rotary_dim, const float* cs, const float* sn) {
  const int half = rotary_dim / 2;
  for (int h = 0; h < n_heads; h++) {
    float* a = x + (int64_t)h * head_dim;
    float* b = a + half;
    int i = 0;
    for (; i + 8 <= half; i += 8) {
      const __m256 av = _mm256_loadu_ps(a + i), bv = _mm256_loadu_ps(b + i);
      const __m256 c = _mm256_loadu_ps(cs + i), s = _mm256_loadu_ps(sn + i);
      // No FMA: the reference rounds each product (as torch's q*cos + rotate_half(q)*sin does).
      _mm256_storeu_ps(a + i, _mm256_sub_ps(_mm256_mul_ps(av, c), _mm256_mul_ps(bv, s)));
      _mm256_storeu_ps(b + i, _mm256_add_ps(_mm256_mul_ps(bv, c), _mm256_mul_ps(av, s)));
    }
    for (; i < half; i++) {
      const float av = a[i], bv = b[i];
      const float ac = av * cs[i], bs = bv * sn[i], bc = bv * cs[i], as = av * sn[i];
      a[i] = ac - bs;
      b[i] = bc + as;
    }
  }
}

void silu_mul_avx2(const float* gate, const float* up, int64_t n, float* out) {
  const __m256 one = _mm256_set1_ps(1.f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_loadu_ps(up + i)));
  }
  for (; i < n; i++) out[i] = gate[i] / (1.f + std::exp(-gate[i])) * up[i];
}

float row_max_avx2(const float* x, int64_t N) {
  __m256 m0 = _mm256_set1_ps(-std::numeric_limits<float>::infinity()), m1 = m0;
  int64_t i = 0;
  for (; i + 16 <= N; i += 16) {
    m0 = _mm256_max_ps(m0, _mm256_loadu_ps(x + i));
    m1 = _mm256_max_ps(m1, _mm256_loadu_ps(x + i + 8));
  }
  float m = hmax8(_mm256_max_ps(m0, m1));
  for (; i < N; i++) m = std::max(m, x[i]);
  return m;
}

// Σ exp(x - mx) in double, the exps in fp32. If `store`, x is overwritten with the exps.
static double sum_exp(float* x_store, const float* x, int64_t N, float mx) {
  const __m256 mv = _mm256_set1_ps(mx);
  __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 16 <= N; i += 16) {
    const __m256 e0 = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv));
    const __m256 e1 = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), mv));
    if (x_store) { _mm256_storeu_ps(x_store + i, e0); _mm256_storeu_ps(x_store + i + 8, e1); }
    a0 = add_pd8(a0, e0);
    a1 = add_pd8(a1, e1);
  }
  double s = hsum4d(_mm256_add_pd(a0, a1));
  for (; i < N; i++) {
    const float e = std::exp(x[i] - mx);
    if (x_store) x_store[i] = e;
    s += e;
  }
  return s;
}

void softmax_row_avx2(float* x, int64_t N) {
  const float mx = row_max_avx2(x, N);
  const double s = sum_exp(x, x, N, mx);
  const __m256 inv = _mm256_set1_ps((float)(1.0 / s));
  int64_t i = 0;
  for (; i + 8 <= N; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
  for (; i < N; i++) x[i] *= (float)(1.0 / s);
}

float log_sum_exp_avx2(const float* x, int64_t N, float mx) { return (float)std::log(sum_exp(nullptr, x, N, mx)); }

void topk_row_avx2(const float* x, int64_t N, int k, int32_t* idx) {
  // A min-heap of the best k (worst on top) under "a better than b" = a.v > b.v || (a.v == b.v && a.i < b.i).
  // Scanning in index order, a later equal value is never better, so a candidate must be strictly greater than the
  // current worst: 8 values are tested against it at once and only hits go to the heap.
  struct E { float v; int32_t i; };
  auto better = [](const E& a, const E& b) { return a.v > b.v || (a.v == b.v && a.i < b.i); };
  std::vector<E> heap;
  heap.reserve(k);
  int64_t i = 0;
  for (; i < N && (int64_t)heap.size() < k; i++) {
    heap.push_back({x[i], (int32_t)i});
    std::push_heap(heap.begin(), heap.end(), better);
  }
  auto offer = [&](int64_t j) {
    const E e{x[j], (int32_t)j};
    if (better(e, heap.front())) {
      std::pop_heap(heap.begin(), heap.end(), better);
      heap.back() = e;
      std::push_heap(heap.begin(), heap.end(), better);
    }
  };
  // NaNs never pass the > test (as in the reference comparator they are never "better").
  for (; i < N && (i & 7); i++) offer(i);
  for (; i + 8 <= N; i += 8) {
    const __m256 thr = _mm256_set1_ps(heap.front().v);
    int mask = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), thr, _CMP_GT_OQ));
    while (mask) {
      const int b = __builtin_ctz(mask);
      mask &= mask - 1;
      offer(i + b);
    }
  }
  for (; i < N; i++) offer(i);
  std::sort_heap(heap.begin(), heap.end(), better);  // ascending under `better` = best first
  for (int j = 0; j < k; j++) idx[j] = heap[j].i;
}

void embedding_row_avx2(const void* row, DType dtype, int64_t D, float* out) {
  int64_t d = 0;
  if (dtype == DType::F32) { std::memcpy(out, row, D * sizeof(float)); return; }
  const uint16_t* r = static_cast<const uint16_t*>(row);
  if (dtype == DType::F16) {
    for (; d + 8 <= D; d += 8) _mm256_storeu_ps(out + d, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(r + d))));
    for (; d < D; d++) out[d] = f16_to_f32(r[d]);
  } else {
    for (; d + 8 <= D; d += 8)
      _mm256_storeu_ps(out + d, _mm256_castsi256_ps(_mm256_slli_epi32(
                                    _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)(r + d))), 16)));
    for (; d < D; d++) out[d] = bf16_to_f32(r[d]);
  }
}

}  // namespace quanteval::detail
