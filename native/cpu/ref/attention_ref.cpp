// attention_decode_ref / attention_prefill_ref: the definition of attention over a (quantized) KV cache.
//
// One query row at a time, one cached token at a time, in fp32: each K/V element is dequantized on the fly
// (x = (q - z) * s), the score is scale * q·k, and the softmax is the online (streaming) form: a running max m, a
// running sum l of exp(score - m) and an accumulator rescaled by exp(m_old - m_new) when the max grows.
#include <cmath>
#include <limits>
#include <vector>

#include "../kv_common.h"

namespace quanteval {
namespace {

// out[head_dim] = softmax_t(scale * q·k_t) · v_t over tokens [kv_window_start(kv, len - 1), len) of kv head `kvh`
// (the query sits at position len - 1).
void attend_one_ref(const float* q, const KVView& kv, int kvh, int64_t len, float scale, float* out) {
  const int D = kv.head_dim, H = kv.n_kv_heads;
  const size_t krb = kv_bytes_per_head(kv.k_type, D), vrb = kv_bytes_per_head(kv.v_type, D);
  const bool kq = kv_quantized(kv.k_type), vq = kv_quantized(kv.v_type);
  std::vector<float> acc(D, 0.f);
  float m = -std::numeric_limits<float>::infinity(), l = 0.f;
  for (int64_t t = kv_window_start(kv, len - 1); t < len; t++) {
    const int64_t r = (t - kv.pos0) * H + kvh;  // position t is row t - pos0 (callers checked t >= pos0)
    const void* krow = static_cast<const uint8_t*>(kv.k) + r * krb;
    const void* vrow = static_cast<const uint8_t*>(kv.v) + r * vrb;
    const float ks = kq ? kv.k_scale[r] : 1.f, kz = kq ? kv.k_zero[r] : 0.f;
    const float vs = vq ? kv.v_scale[r] : 1.f, vz = vq ? kv.v_zero[r] : 0.f;
    float dot = 0.f;
    for (int d = 0; d < D; d++) dot += q[d] * detail::kv_load(kv.k_type, krow, d, D, ks, kz);
    const float s = dot * scale;
    const float m_new = std::max(m, s);
    const float alpha = std::exp(m - m_new);  // exp(-inf) = 0 on the first token
    const float p = std::exp(s - m_new);
    l = l * alpha + p;
    for (int d = 0; d < D; d++) acc[d] = acc[d] * alpha + p * detail::kv_load(kv.v_type, vrow, d, D, vs, vz);
    m = m_new;
  }
  for (int d = 0; d < D; d++) out[d] = acc[d] / l;
}

}  // namespace

void attention_decode_ref(const float* q, int64_t B, int n_heads, const KVView* kv, const int64_t* lens, float scale,
                          float* out) {
  if (B < 0) throw std::invalid_argument("attention_decode: B must be >= 0");
  if (B == 0) return;
  const int D = kv[0].head_dim;
  for (int64_t b = 0; b < B; b++) {
    detail::check_kv_view(kv[b], n_heads, D, "attention_decode");
    if (lens[b] < 1)
      throw std::out_of_range("attention_decode: lens[" + std::to_string(b) + "] must be >= 1, got " +
                              std::to_string(lens[b]));
    detail::check_kv_reach(kv[b], lens[b] - 1, "attention_decode", "the query of sequence " + std::to_string(b));
  }
  for (int64_t b = 0; b < B; b++) {
    const int group = n_heads / kv[b].n_kv_heads;
    for (int h = 0; h < n_heads; h++) {
      const int64_t i = b * n_heads + h;
      attend_one_ref(q + i * D, kv[b], h / group, lens[b], scale, out + i * D);
    }
  }
}

void attention_prefill_ref(const float* q, int64_t Tq, int n_heads, const KVView& kv, int64_t pos0, float scale,
                           float* out) {
  if (Tq < 0) throw std::invalid_argument("attention_prefill: Tq must be >= 0");
  if (pos0 < 0) throw std::out_of_range("attention_prefill: pos0 must be >= 0, got " + std::to_string(pos0));
  const int D = kv.head_dim;
  detail::check_kv_view(kv, n_heads, D, "attention_prefill");
  // Window starts grow with the position: the first query needs the lowest one.
  if (Tq > 0) detail::check_kv_reach(kv, pos0, "attention_prefill", "query 0");
  const int group = n_heads / kv.n_kv_heads;
  for (int64_t i = 0; i < Tq; i++)
    for (int h = 0; h < n_heads; h++) {
      const int64_t r = i * n_heads + h;
      attend_one_ref(q + r * D, kv, h / group, pos0 + i + 1, scale, out + r * D);
    }
}

}  // namespace quanteval
