// AWQ (Lin et al., "AWQ: Activation-aware Weight Quantization"), the two searches of llm-awq:
//   auto_scale: s = mean|x|^α over a grid of α, pick the α whose quantized layer best reproduces the layer output;
//   auto_clip:  per row and group, shrink the max |w| over a grid, pick the shrink with the smallest output error.
// llm-awq measures output errors on (subsampled) calibration activations; with H = Σ xᵀx the squared output
// error of a weight difference A is exactly Σ_n a_nᵀ H a_n, so only H (which the runtime's activation capture
// provides) is needed, and the cost does not depend on the number of calibration tokens.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "quanteval/calib.h"
#include "quanteval/threadpool.h"

namespace quanteval {

namespace {

// Quantize-dequantize one row (groups of fmt.group_size) in place.
void fake_quant_row(float* w, int64_t K, const QuantFormat& fmt) {
  for (int64_t k0 = 0; k0 < K; k0 += fmt.group_size) {
    const int64_t k1 = std::min(K, k0 + (int64_t)fmt.group_size);
    const GroupParams p = group_params(w + k0, k1 - k0, fmt);
    for (int64_t k = k0; k < k1; k++) w[k] = dequantize_value(quantize_value(w[k], p, fmt.bits), p);
  }
}

}  // namespace

AwqScaleResult awq_search_scale(const float* W, int64_t N, int64_t K, const float* H, const float* x_mean_abs,
                                const QuantFormat& fmt, int n_grid, double tokens, float* scales_out) {
  check_format(fmt, "awq_search_scale");
  if (N < 1 || K < 1) throw std::invalid_argument("awq_search_scale: N and K must be positive");
  if (n_grid < 1) throw std::invalid_argument("awq_search_scale: n_grid must be >= 1");
  if (!(tokens > 0)) throw std::invalid_argument("awq_search_scale: tokens must be positive");
  for (int64_t k = 0; k < K; k++)
    if (!(x_mean_abs[k] >= 0) || !std::isfinite(x_mean_abs[k]))
      throw std::invalid_argument("awq_search_scale: x_mean_abs[" + std::to_string(k) + "] must be finite and >= 0");
  AwqScaleResult res;
  res.losses.assign(n_grid, 0.0);
  std::vector<float> s((size_t)K), best((size_t)K, 1.f);
  double best_loss = INFINITY;
  constexpr int64_t kRowTile = 64;  // rows sharing each L2-resident block of H in the A·H product
  const int64_t tiles = (N + kRowTile - 1) / kRowTile;
  std::vector<double> tile_loss(tiles);
  for (int gi = 0; gi < n_grid; gi++) {
    const double ratio = (double)gi / n_grid;
    float smax = 0.f, smin = INFINITY;
    for (int64_t k = 0; k < K; k++) {
      s[k] = std::max((float)std::pow((double)x_mean_abs[k], ratio), 1e-4f);
      smax = std::max(smax, s[k]);
      smin = std::min(smin, s[k]);
    }
    const float norm = std::sqrt(smax * smin);
    for (int64_t k = 0; k < K; k++) s[k] /= norm;
    parallel_for(tiles, 1, [&](int64_t lo, int64_t hi) {
      std::vector<float> A((size_t)kRowTile * K), Y((size_t)kRowTile * K);
      for (int64_t t = lo; t < hi; t++) {
        const int64_t r0 = t * kRowTile, R = std::min(N, r0 + kRowTile) - r0;
        for (int64_t r = 0; r < R; r++) {
          float* a = &A[r * K];
          const float* w = W + (r0 + r) * K;
          for (int64_t k = 0; k < K; k++) a[k] = w[k] * s[k];
          fake_quant_row(a, K, fmt);
          for (int64_t k = 0; k < K; k++) a[k] = w[k] - a[k] / s[k];
        }
        std::fill(Y.begin(), Y.begin() + R * K, 0.f);
        calib_gemm_nn_acc(Y.data(), K, A.data(), K, H, K, R, K, K, 1.f);
        double l = 0;
        for (int64_t i = 0; i < R * K; i++) l += (double)Y[i] * A[i];
        tile_loss[t] = l;
      }
    });
    double loss = 0;
    for (int64_t t = 0; t < tiles; t++) loss += tile_loss[t];
    loss /= (double)N * tokens;
    res.losses[gi] = loss;
    if (loss < best_loss) {
      best_loss = loss;
      res.best = gi;
      res.best_ratio = ratio;
      best = s;
    }
  }
  if (!std::isfinite(best_loss)) throw std::runtime_error("awq_search_scale: every candidate gave a non-finite error (check H)");
  std::copy(best.begin(), best.end(), scales_out);
  return res;
}

void awq_search_clip(const float* W, int64_t N, int64_t K, const float* H, const QuantFormat& fmt, int n_grid,
                     double max_shrink, float* W_out, float* max_val) {
  check_format(fmt, "awq_search_clip");
  if (N < 1 || K < 1) throw std::invalid_argument("awq_search_clip: N and K must be positive");
  if (n_grid < 1) throw std::invalid_argument("awq_search_clip: n_grid must be >= 1");
  if (!(max_shrink >= 0 && max_shrink < 1)) throw std::invalid_argument("awq_search_clip: max_shrink must be in [0, 1)");
  const int64_t gs = std::min<int64_t>(fmt.group_size, K), G = n_groups(K, fmt.group_size);
  const int steps = std::max(1, (int)(max_shrink * n_grid));
  // Diagonal blocks H_gg, contiguous: [G][len][len].
  std::vector<int64_t> off(G + 1, 0);
  for (int64_t g = 0; g < G; g++) {
    const int64_t len = std::min(K, (g + 1) * gs) - g * gs;
    off[g + 1] = off[g] + len * len;
  }
  std::vector<float> Hg((size_t)off[G]);
  for (int64_t g = 0; g < G; g++) {
    const int64_t k0 = g * gs, len = std::min(K, k0 + gs) - k0;
    for (int64_t i = 0; i < len; i++)
      for (int64_t j = 0; j < len; j++) Hg[off[g] + i * len + j] = H[(k0 + i) * K + k0 + j];
  }
  parallel_for(N, 4, [&](int64_t lo, int64_t hi) {
    std::vector<float> c((size_t)gs), e((size_t)gs), y((size_t)gs);
    for (int64_t n = lo; n < hi; n++) {
      for (int64_t g = 0; g < G; g++) {
        const int64_t k0 = g * gs, len = std::min(K, k0 + gs) - k0;
        const float* w = W + n * K + k0;
        const float* hg = &Hg[off[g]];
        float amax = 0.f;
        for (int64_t i = 0; i < len; i++) amax = std::max(amax, std::fabs(w[i]));
        double best_err = INFINITY;
        float best_mv = amax;
        for (int si = 0; si < steps; si++) {
          const float mv = amax * (float)(1.0 - (double)si / n_grid);
          for (int64_t i = 0; i < len; i++) c[i] = std::min(std::max(w[i], -mv), mv);
          fake_quant_row(c.data(), len, fmt);
          for (int64_t i = 0; i < len; i++) e[i] = w[i] - c[i];
          std::fill(y.begin(), y.begin() + len, 0.f);
          calib_gemm_nn_acc(y.data(), len, e.data(), len, hg, len, 1, len, len, 1.f);
          double err = 0;
          for (int64_t i = 0; i < len; i++) err += (double)y[i] * e[i];
          if (err < best_err) {
            best_err = err;
            best_mv = mv;
          }
        }
        max_val[n * G + g] = best_mv;
        for (int64_t i = 0; i < len; i++) W_out[n * K + k0 + i] = std::min(std::max(w[i], -best_mv), best_mv);
      }
    }
  });
}

}  // namespace quanteval
