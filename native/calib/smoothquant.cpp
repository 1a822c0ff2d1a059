// SmoothQuant (Xiao et al., "SmoothQuant: Accurate and Efficient Post-Training Quantization for LLMs"), the
// smoothing factors of the reference `smooth_ln_fcs`: s_j = max|x_j|^α / max|w_j|^(1-α), which migrates activation
// outliers into the weights (x / s, W ∘ s) so that both quantize well.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "quanteval/calib.h"

namespace quanteval {

void smoothquant_scales(const float* act_max, const float* W, int64_t N, int64_t K, double alpha, float* scales_out) {
  if (N < 1 || K < 1) throw std::invalid_argument("smoothquant_scales: N and K must be positive");
  if (!(alpha >= 0 && alpha <= 1)) throw std::invalid_argument("smoothquant_scales: alpha must be in [0, 1]");
  std::vector<float> wmax((size_t)K, 0.f);
  for (int64_t n = 0; n < N; n++)
    for (int64_t k = 0; k < K; k++) wmax[k] = std::max(wmax[k], std::fabs(W[n * K + k]));
  for (int64_t k = 0; k < K; k++) {
    if (!(act_max[k] >= 0) || !std::isfinite(act_max[k]))
      throw std::invalid_argument("smoothquant_scales: act_max[" + std::to_string(k) + "] must be finite and >= 0");
    const double s = std::pow((double)act_max[k], alpha) / std::pow((double)std::max(wmax[k], 1e-5f), 1.0 - alpha);
    scales_out[k] = (float)std::max(s, 1e-5);
  }
}

}  // namespace quanteval
