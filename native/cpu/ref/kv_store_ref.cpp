// kv_store_ref: the definition of how new K/V tokens enter the cache (formats.h, KV cache section).
//
// Quantized types follow qllm-eval/AWQ pseudo_quantize_tensor, asymmetric, one group per [token, kv_head]
// (group = head_dim values), all in fp32 as torch computes it on fp32 tensors:
//   s = max(max - min, 1e-5) / (2^b - 1);  z = clamp(-round(min / s), 0, 2^b - 1);
//   q = clamp(round(x / s) + z, 0, 2^b - 1)      (round = half to even, torch.round)
// so that dequantization x_hat = (q - z) * s is what attention reads. int3 / int2 rows use the same arithmetic in
// detail::kv_lowbit_store_row (kv_common.h), shared with the fast kv_store.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "../kv_common.h"

namespace quanteval {

void kv_store_ref(const float* x, int64_t T, int n_kv_heads, int head_dim, KVType type, void* dst, float* scale,
                  float* zero) {
  detail::check_kv_type(type, "kv_store");
  detail::check_head_dim(head_dim, type, "kv_store");
  if (n_kv_heads <= 0) throw std::invalid_argument("kv_store: n_kv_heads must be > 0");
  if (T < 0) throw std::invalid_argument("kv_store: T must be >= 0");
  if (kv_quantized(type) && (!scale || !zero))
    throw std::invalid_argument("kv_store: quantized KV needs scale and zero outputs");
  const size_t row_bytes = kv_bytes_per_head(type, head_dim);
  for (int64_t t = 0; t < T; t++) {
    for (int h = 0; h < n_kv_heads; h++) {
      const int64_t r = t * n_kv_heads + h;  // [token, kv_head]
      const float* xs = x + r * head_dim;
      uint8_t* out = static_cast<uint8_t*>(dst) + r * row_bytes;
      switch (type) {
        case KVType::F32: std::memcpy(out, xs, row_bytes); break;
        case KVType::F16:
          for (int d = 0; d < head_dim; d++) reinterpret_cast<uint16_t*>(out)[d] = f32_to_f16(xs[d]);
          break;
        case KVType::I3:
        case KVType::I2: detail::kv_lowbit_store_row(type, xs, head_dim, out, scale + r, zero + r); break;
        case KVType::I8:
        case KVType::I4: {
          const int bits = type == KVType::I8 ? 8 : 4;
          const float qmax = (float)((1 << bits) - 1);
          float mn = xs[0], mx = xs[0];
          for (int d = 1; d < head_dim; d++) { mn = std::min(mn, xs[d]); mx = std::max(mx, xs[d]); }
          const float s = std::max(mx - mn, 1e-5f) / qmax;
          const float z = std::min(std::max(-std::nearbyint(mn / s), 0.f), qmax);
          scale[r] = s;
          zero[r] = z;
          if (bits == 4) std::memset(out, 0, row_bytes);
          for (int d = 0; d < head_dim; d++) {
            const int q = (int)std::min(std::max(std::nearbyint(xs[d] / s) + z, 0.f), qmax);
            if (bits == 8) out[d] = (uint8_t)q;
            else out[d >> 1] |= (uint8_t)(q << ((d & 1) * 4));
          }
          break;
        }
      }
    }
  }
}

}  // namespace quanteval
