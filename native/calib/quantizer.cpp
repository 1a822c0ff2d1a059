// The group quantizer with the formats.h semantics (pseudo_quantize_tensor), shared by RTN, GPTQ and AWQ.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "quanteval/calib.h"
#include "quanteval/half.h"
#include "quanteval/threadpool.h"

namespace quanteval {

void check_format(const QuantFormat& fmt, const char* who) {
  if (!valid_bits(fmt.bits))
    throw std::invalid_argument(std::string(who) + ": fmt.bits must be 2, 3, 4, 6 or 8, got " + std::to_string(fmt.bits));
  if (fmt.group_size < 1)
    throw std::invalid_argument(std::string(who) + ": fmt.group_size must be >= 1, got " +
                                std::to_string(fmt.group_size));
  if (fmt.scale_dtype != DType::F32 && fmt.scale_dtype != DType::F16 && fmt.scale_dtype != DType::BF16)
    throw std::invalid_argument(std::string(who) + ": fmt.scale_dtype must be f32, f16 or bf16, got " +
                                dtype_name(fmt.scale_dtype));
}

static float stored_scale(float s, DType t) {
  switch (t) {
    case DType::F16: return f16_to_f32(f32_to_f16(s));
    case DType::BF16: return bf16_to_f32(f32_to_bf16(s));
    default: return s;
  }
}

GroupParams group_params(const float* w, int64_t n, const QuantFormat& fmt) {
  GroupParams p;
  const int maxq = (1 << fmt.bits) - 1;
  if (fmt.symmetric) {
    float amax = 0.f;
    for (int64_t i = 0; i < n; i++) amax = std::max(amax, std::fabs(w[i]));
    p.scale = stored_scale(std::max(amax, 1e-5f) / (float)((1 << (fmt.bits - 1)) - 1), fmt.scale_dtype);
    p.zero = 1 << (fmt.bits - 1);
  } else {
    float mn = w[0], mx = w[0];
    for (int64_t i = 1; i < n; i++) {
      mn = std::min(mn, w[i]);
      mx = std::max(mx, w[i]);
    }
    p.scale = stored_scale(std::max(mx - mn, 1e-5f) / (float)maxq, fmt.scale_dtype);
    // A scale that underflows its storage type (fp16 of a near-constant group) is stored as 0: the zero point is
    // then 0 and every code is the zero point (as quantize_rtn_ref does).
    const float z = p.scale > 0.f ? -std::nearbyint(mn / p.scale) : 0.f;
    p.zero = (int)std::min(std::max(z, 0.f), (float)maxq);
  }
  return p;
}

int quantize_value(float w, const GroupParams& p, int bits) {
  if (!(p.scale > 0.f)) return p.zero;
  const float q = std::nearbyint(w / p.scale) + (float)p.zero;
  const float maxq = (float)((1 << bits) - 1);
  return (int)std::min(std::max(q, 0.f), maxq);
}

void store_params(const GroupParams& p, const QuantFormat& fmt, void* scales, uint8_t* zeros, int64_t idx) {
  switch (fmt.scale_dtype) {
    case DType::F16: static_cast<uint16_t*>(scales)[idx] = f32_to_f16(p.scale); break;
    case DType::BF16: static_cast<uint16_t*>(scales)[idx] = f32_to_bf16(p.scale); break;
    default: static_cast<float*>(scales)[idx] = p.scale; break;
  }
  if (!fmt.symmetric && zeros) zeros[idx] = (uint8_t)p.zero;
}

void rtn_quantize(const float* W, int64_t N, int64_t K, const QuantFormat& fmt, uint8_t* codes, void* scales,
                  uint8_t* zeros, float* W_hat) {
  check_format(fmt, "rtn_quantize");
  if (N < 1 || K < 1) throw std::invalid_argument("rtn_quantize: N and K must be positive");
  const int64_t G = n_groups(K, fmt.group_size), stride = row_bytes(K, fmt.bits);
  parallel_for(N, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t n = lo; n < hi; n++) {
      uint8_t* row = codes + n * stride;
      std::memset(row, 0, (size_t)stride);
      for (int64_t g = 0; g < G; g++) {
        const int64_t k0 = g * fmt.group_size, k1 = std::min(K, k0 + fmt.group_size);
        const GroupParams p = group_params(W + n * K + k0, k1 - k0, fmt);
        store_params(p, fmt, scales, zeros, n * G + g);
        for (int64_t k = k0; k < k1; k++) {
          const int q = quantize_value(W[n * K + k], p, fmt.bits);
          put_code(row, k, fmt.bits, q);
          if (W_hat) W_hat[n * K + k] = dequantize_value(q, p);
        }
      }
    }
  });
}

}  // namespace quanteval
