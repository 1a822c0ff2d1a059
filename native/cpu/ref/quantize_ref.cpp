// Reference RTN weight quantization, dequantization and per-token activation fake-quantization: the definitions
// (oracles) of the packed formats' semantics. Exactly AWQ / qllm-eval `pseudo_quantize_tensor`, in fp32 with
// round-half-to-even (torch.round), per group of `group_size` inputs with a short last group:
//   asym: s = max(max - min, 1e-5) / (2^b - 1);  z = clamp(-round(min / s), 0, 2^b - 1)
//   sym:  s = max(absmax, 1e-5) / (2^(b-1) - 1);   z = 2^(b-1)
//   q = clamp(round(w / s) + z, 0, 2^b - 1),  w_hat = (q - z) * s
// The scale is rounded to its storage type first and z and q are computed against the stored value, so that
// dequantization reproduces what the kernels compute (for fp32 scales this is torch's computation verbatim).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "../gemm_common.h"
#include "quanteval/kernels.h"

namespace quanteval {

using namespace detail;

float load_scale(const QuantWeight& w, int64_t n, int64_t g) { return load_elem(w.scales, w.fmt.scale_dtype, n * w.groups() + g); }

void quantize_rtn_ref(const float* W, int64_t N, int64_t K, const QuantFormat& fmt, uint8_t* codes, void* scales,
                      uint8_t* zeros) {
  check_format(fmt, "quantize_rtn_ref");
  if (N < 0 || K < 1) throw std::invalid_argument("quantize_rtn_ref: need N >= 0 and K >= 1");
  if (N > 0 && (!W || !codes || !scales || (!fmt.symmetric && !zeros)))
    throw std::invalid_argument("quantize_rtn_ref: null buffer");
  const int b = fmt.bits;
  const int64_t G = n_groups(K, fmt.group_size), stride = row_bytes(K, b);
  const float qmax = (float)((1 << b) - 1);
  std::memset(codes, 0, (size_t)(N * stride));
  for (int64_t n = 0; n < N; n++) {
    const float* w = W + n * K;
    uint8_t* row = codes + n * stride;
    for (int64_t g = 0; g < G; g++) {
      const int64_t k0 = g * fmt.group_size, k1 = std::min<int64_t>(K, k0 + fmt.group_size);
      float s, z;
      if (fmt.symmetric) {
        float amax = 0.f;
        for (int64_t k = k0; k < k1; k++) amax = std::max(amax, std::fabs(w[k]));
        s = std::fmax(amax, 1e-5f) / (float)((1 << (b - 1)) - 1);
        s = store_elem(scales, fmt.scale_dtype, n * G + g, s);
        z = (float)(1 << (b - 1));
      } else {
        float mn = w[k0], mx = w[k0];
        for (int64_t k = k0; k < k1; k++) { mn = std::min(mn, w[k]); mx = std::max(mx, w[k]); }
        s = std::fmax(mx - mn, 1e-5f) / qmax;
        s = store_elem(scales, fmt.scale_dtype, n * G + g, s);
        // A scale that underflows its storage type (fp16 of a near-constant group) stores 0: every code is then the
        // zero point and the group dequantizes to 0 instead of dividing by zero.
        z = s > 0.f ? clampf(-round_even(mn / s), 0.f, qmax) : 0.f;
        zeros[n * G + g] = (uint8_t)z;
      }
      for (int64_t k = k0; k < k1; k++) {
        float q = s > 0.f ? clampf(round_even(w[k] / s) + z, 0.f, qmax) : z;
        put_code(row, k, b, (int)q);
      }
    }
  }
}

void dequantize_ref(const QuantWeight& w, float* W_hat) {
  check_weight(w, "dequantize_ref");
  const int64_t G = w.groups(), stride = w.stride();
  for (int64_t n = 0; n < w.N; n++) {
    const uint8_t* row = w.codes + n * stride;
    for (int64_t g = 0; g < G; g++) {
      const float s = load_scale(w, n, g), z = (float)zero_of(w, n, g);
      const int64_t k0 = g * w.fmt.group_size, k1 = std::min<int64_t>(w.K, k0 + w.fmt.group_size);
      for (int64_t k = k0; k < k1; k++) W_hat[n * w.K + k] = ((float)get_code(row, k, w.fmt.bits) - z) * s;
    }
  }
}

void fake_quant_act_ref(const float* X, int64_t M, int64_t K, int bits, float* X_hat) {
  if (bits < 2 || bits > 8)
    throw std::invalid_argument("fake_quant_act_ref: bits must be in [2, 8], got " + std::to_string(bits));
  if (M < 0 || K < 1) throw std::invalid_argument("fake_quant_act_ref: need M >= 0 and K >= 1");
  const float qmax = (float)((1 << bits) - 1);
  for (int64_t m = 0; m < M; m++) {
    const float* x = X + m * K;
    float mn = x[0], mx = x[0];
    for (int64_t k = 0; k < K; k++) { mn = std::min(mn, x[k]); mx = std::max(mx, x[k]); }
    ActQuant p = act_params(mn, mx, bits);
    for (int64_t k = 0; k < K; k++) X_hat[m * K + k] = (act_code(x[k], p, qmax) - p.z) * p.s;
  }
}

}  // namespace quanteval
