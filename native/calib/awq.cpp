// AWQ (Lin et al., "AWQ: Activation-aware Weight Quantization"), the two searches of llm-awq:
//   auto_scale: s = mean|x|^α over a grid of α, pick the α whose quantized layer best reproduces the layer output;
//   auto_clip:  per row and group, shrink the max |w| over a grid, pick the shrink with the smallest output error.
// The output error of a weight difference A [N, K] on inputs X [n, K] is ||X Aᵀ||². Two ways to evaluate it:
//   - on a row sample X (what llm-awq does; `*_x` below): n·N·K per candidate, n a few hundred tokens;
//   - with H = Σ xᵀx over every calibration token: Σ_n a_nᵀ H a_n, N·K² per candidate, exact for the whole set.
// On a 1.1B model (K up to 5632) the sample is 10–20× cheaper per α, and it needs no Hessian capture at all, so the
// quantization pipeline uses it; the H versions stay for callers that already hold H.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "quanteval/calib.h"
#include "quanteval/kernels.h"
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

void awq_candidate_scales(const float* x_mean_abs, int64_t K, double ratio, float* s) {
  float smax = 0.f, smin = INFINITY;
  for (int64_t k = 0; k < K; k++) {
    s[k] = std::max((float)std::pow((double)x_mean_abs[k], ratio), 1e-4f);
    smax = std::max(smax, s[k]);
    smin = std::min(smin, s[k]);
  }
  const float norm = std::sqrt(smax * smin);
  for (int64_t k = 0; k < K; k++) s[k] /= norm;
}

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
    awq_candidate_scales(x_mean_abs, K, ratio, s.data());
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

namespace {
void check_samples(const float* X, int64_t n, int64_t K, const char* who) {
  for (int64_t i = 0; i < n * K; i++)
    if (!std::isfinite(X[i]))
      throw std::invalid_argument(std::string(who) + ": sample X[" + std::to_string(i / K) + ", " + std::to_string(i % K) +
                                  "] is not finite");
}
}  // namespace

AwqScaleResult awq_search_scale_x(const float* W, int64_t N, int64_t K, const float* X, int64_t n,
                                  const float* x_mean_abs, const QuantFormat& fmt, int n_grid, float* scales_out) {
  check_format(fmt, "awq_search_scale_x");
  if (N < 1 || K < 1) throw std::invalid_argument("awq_search_scale_x: N and K must be positive");
  if (n < 1) throw std::invalid_argument("awq_search_scale_x: the sample needs at least one row, got n = " + std::to_string(n));
  if (n_grid < 1) throw std::invalid_argument("awq_search_scale_x: n_grid must be >= 1");
  for (int64_t k = 0; k < K; k++)
    if (!(x_mean_abs[k] >= 0) || !std::isfinite(x_mean_abs[k]))
      throw std::invalid_argument("awq_search_scale_x: x_mean_abs[" + std::to_string(k) + "] must be finite and >= 0");
  check_samples(X, n, K, "awq_search_scale_x");
  AwqScaleResult res;
  res.losses.assign(n_grid, 0.0);
  std::vector<float> s((size_t)K), best((size_t)K, 1.f);
  double best_loss = INFINITY;
  // Rows of W per step: their differences A [R, K] and outputs Y [n, R] = X Aᵀ stay a few MiB; Y comes from the
  // runtime's dense GEMM (gemm_dense: AVX2 tiles, parallel over the pool; each output accumulates over K in one
  // fixed order, so the losses do not depend on the thread count).
  constexpr int64_t kRows = 1024;
  const int64_t R = std::min(N, kRows);
  std::vector<float> A((size_t)(R * K)), Y((size_t)(n * R));
  for (int gi = 0; gi < n_grid; gi++) {
    const double ratio = (double)gi / n_grid;
    awq_candidate_scales(x_mean_abs, K, ratio, s.data());
    double loss = 0;
    for (int64_t r0 = 0; r0 < N; r0 += kRows) {
      const int64_t Rc = std::min(N, r0 + kRows) - r0;
      parallel_for(Rc, 8, [&](int64_t lo, int64_t hi) {
        for (int64_t r = lo; r < hi; r++) {
          float* a = &A[r * K];
          const float* w = W + (r0 + r) * K;
          for (int64_t k = 0; k < K; k++) a[k] = w[k] * s[k];
          fake_quant_row(a, K, fmt);
          for (int64_t k = 0; k < K; k++) a[k] = w[k] - a[k] / s[k];
        }
      });
      gemm_dense(X, DType::F32, n, DenseWeight{DType::F32, Rc, K, A.data()}, nullptr, Y.data());
      for (int64_t i = 0; i < n * Rc; i++) loss += (double)Y[i] * Y[i];
    }
    loss /= (double)N * (double)n;
    res.losses[gi] = loss;
    if (loss < best_loss) {
      best_loss = loss;
      res.best = gi;
      res.best_ratio = ratio;
      best = s;
    }
  }
  if (!std::isfinite(best_loss)) throw std::runtime_error("awq_search_scale_x: every candidate gave a non-finite error");
  std::copy(best.begin(), best.end(), scales_out);
  return res;
}

namespace {

// The clipping search given each group's Gram block Hg [G][len][len] (offsets off[g]); see calib.h. Rows go in
// blocks of kRowBlock so that each candidate's errors E [rows, len] meet Hg in one gemm (4 rows share each load of
// Hg) instead of one matrix-vector product per row; every row's error still sums in the same order.
void clip_search_blocks(const float* W, int64_t N, int64_t K, const std::vector<float>& Hg,
                        const std::vector<int64_t>& off, const QuantFormat& fmt, int n_grid, double max_shrink,
                        float* W_out, float* max_val) {
  const int64_t gs = std::min<int64_t>(fmt.group_size, K), G = n_groups(K, fmt.group_size);
  const int steps = std::max(1, (int)(max_shrink * n_grid));
  constexpr int64_t kRowBlock = 32;
  const int64_t blocks = (N + kRowBlock - 1) / kRowBlock;
  parallel_for(blocks, 1, [&](int64_t lo, int64_t hi) {
    std::vector<float> E((size_t)(kRowBlock * gs)), Y((size_t)(kRowBlock * gs)), amax(kRowBlock), best_mv(kRowBlock);
    std::vector<double> best_err(kRowBlock);
    for (int64_t b = lo; b < hi; b++) {
      const int64_t n0 = b * kRowBlock, R = std::min(N, n0 + kRowBlock) - n0;
      for (int64_t g = 0; g < G; g++) {
        const int64_t k0 = g * gs, len = std::min(K, k0 + gs) - k0;
        const float* hg = &Hg[off[g]];
        for (int64_t r = 0; r < R; r++) {
          const float* w = W + (n0 + r) * K + k0;
          float m = 0.f;
          for (int64_t i = 0; i < len; i++) m = std::max(m, std::fabs(w[i]));
          amax[r] = best_mv[r] = m;
          best_err[r] = INFINITY;
        }
        for (int si = 0; si < steps; si++) {
          for (int64_t r = 0; r < R; r++) {
            const float* w = W + (n0 + r) * K + k0;
            const float mv = amax[r] * (float)(1.0 - (double)si / n_grid);
            float* c = &E[r * len];
            for (int64_t i = 0; i < len; i++) c[i] = std::min(std::max(w[i], -mv), mv);
            fake_quant_row(c, len, fmt);
            for (int64_t i = 0; i < len; i++) c[i] = w[i] - c[i];
          }
          std::fill(Y.begin(), Y.begin() + R * len, 0.f);
          calib_gemm_nn_acc(Y.data(), len, E.data(), len, hg, len, R, len, len, 1.f);
          for (int64_t r = 0; r < R; r++) {
            double err = 0;
            for (int64_t i = 0; i < len; i++) err += (double)Y[r * len + i] * E[r * len + i];
            if (err < best_err[r]) {
              best_err[r] = err;
              best_mv[r] = amax[r] * (float)(1.0 - (double)si / n_grid);
            }
          }
        }
        for (int64_t r = 0; r < R; r++) {
          const float* w = W + (n0 + r) * K + k0;
          max_val[(n0 + r) * G + g] = best_mv[r];
          for (int64_t i = 0; i < len; i++) W_out[(n0 + r) * K + k0 + i] = std::min(std::max(w[i], -best_mv[r]), best_mv[r]);
        }
      }
    }
  });
}

void check_clip_args(int64_t N, int64_t K, const QuantFormat& fmt, int n_grid, double max_shrink, const char* who) {
  check_format(fmt, who);
  const std::string w = who;
  if (N < 1 || K < 1) throw std::invalid_argument(w + ": N and K must be positive");
  if (n_grid < 1) throw std::invalid_argument(w + ": n_grid must be >= 1");
  if (!(max_shrink >= 0 && max_shrink < 1)) throw std::invalid_argument(w + ": max_shrink must be in [0, 1)");
}

// Offsets of the contiguous diagonal blocks [G][len][len] of a K-input format.
std::vector<int64_t> block_offsets(int64_t K, const QuantFormat& fmt) {
  const int64_t gs = std::min<int64_t>(fmt.group_size, K), G = n_groups(K, fmt.group_size);
  std::vector<int64_t> off(G + 1, 0);
  for (int64_t g = 0; g < G; g++) {
    const int64_t len = std::min(K, (g + 1) * gs) - g * gs;
    off[g + 1] = off[g] + len * len;
  }
  return off;
}

}  // namespace

void awq_search_clip(const float* W, int64_t N, int64_t K, const float* H, const QuantFormat& fmt, int n_grid,
                     double max_shrink, float* W_out, float* max_val) {
  check_clip_args(N, K, fmt, n_grid, max_shrink, "awq_search_clip");
  const int64_t gs = std::min<int64_t>(fmt.group_size, K), G = n_groups(K, fmt.group_size);
  const auto off = block_offsets(K, fmt);
  std::vector<float> Hg((size_t)off[G]);
  for (int64_t g = 0; g < G; g++) {
    const int64_t k0 = g * gs, len = std::min(K, k0 + gs) - k0;
    for (int64_t i = 0; i < len; i++)
      for (int64_t j = 0; j < len; j++) Hg[off[g] + i * len + j] = H[(k0 + i) * K + k0 + j];
  }
  clip_search_blocks(W, N, K, Hg, off, fmt, n_grid, max_shrink, W_out, max_val);
}

void awq_search_clip_x(const float* W, int64_t N, int64_t K, const float* X, int64_t n, const QuantFormat& fmt,
                       int n_grid, double max_shrink, float* W_out, float* max_val) {
  check_clip_args(N, K, fmt, n_grid, max_shrink, "awq_search_clip_x");
  if (n < 1) throw std::invalid_argument("awq_search_clip_x: the sample needs at least one row, got n = " + std::to_string(n));
  check_samples(X, n, K, "awq_search_clip_x");
  // Gram blocks of the sample (Σ_t x_t,g x_t,gᵀ, fp64 accumulation in row order): n·K·gs, small next to the search.
  const int64_t gs = std::min<int64_t>(fmt.group_size, K), G = n_groups(K, fmt.group_size);
  const auto off = block_offsets(K, fmt);
  std::vector<float> Hg((size_t)off[G]);
  parallel_for(G, 1, [&](int64_t g0, int64_t g1) {
    for (int64_t g = g0; g < g1; g++) {
      const int64_t k0 = g * gs, len = std::min(K, k0 + gs) - k0;
      std::vector<double> acc((size_t)(len * len), 0.0);
      for (int64_t t = 0; t < n; t++) {
        const float* x = X + t * K + k0;
        for (int64_t i = 0; i < len; i++) {
          const double xi = x[i];
          if (xi == 0) continue;
          double* a = &acc[i * len];
          for (int64_t j = 0; j < len; j++) a[j] += xi * x[j];
        }
      }
      for (int64_t i = 0; i < len * len; i++) Hg[off[g] + i] = (float)acc[i];
    }
  });
  clip_search_blocks(W, N, K, Hg, off, fmt, n_grid, max_shrink, W_out, max_val);
}

}  // namespace quanteval
