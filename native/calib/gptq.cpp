// GPTQ (Frantar et al., "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers"),
// following the IST-DASLab reference `GPTQ.fasterquant` step by step (see calib.h for the contract):
//
//   dead = diag(H) == 0;  H[dead, dead] = 1;  W[:, dead] = 0
//   (static groups: parameters of every group from W now)   (act order: permute W's columns and H by diag(H) desc.)
//   H += percdamp · mean(diag H) · I;  Hinv = cholesky(cholesky_inverse(cholesky(H)), upper=True)
//   for each block [i1, i2) of block_size columns:
//     for i in block:  (new group at i: parameters from W as of the block start)
//       q = quant(w_i);  err = (w_i - q) / Hinv[i, i];  W1[:, i:] -= err · Hinv[i, i:];  Err1[:, i] = err
//     W[:, i2:] -= Err1 · Hinv[i1:i2, i2:]
//
// Rows (output channels) never interact, so the work is split over rows: each thread runs the whole algorithm on
// its rows, which also makes the result independent of the thread count.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "quanteval/calib.h"
#include "quanteval/threadpool.h"

namespace quanteval {

GptqResult gptq_quantize(const float* W, int64_t N, int64_t K, const float* H, const QuantFormat& fmt,
                         const GptqOptions& opt, uint8_t* codes, void* scales, uint8_t* zeros, float* W_hat) {
  check_format(fmt, "gptq_quantize");
  if (N < 1 || K < 1) throw std::invalid_argument("gptq_quantize: N and K must be positive");
  if (!(opt.percdamp > 0) || opt.percdamp > 1)
    throw std::invalid_argument("gptq_quantize: percdamp must be in (0, 1], got " + std::to_string(opt.percdamp));
  if (opt.block_size < 1) throw std::invalid_argument("gptq_quantize: block_size must be >= 1");
  const int64_t G = n_groups(K, fmt.group_size);
  const bool grouped = G > 1;
  if (opt.act_order && grouped && !opt.static_groups)
    throw std::invalid_argument(
        "gptq_quantize: act_order with groups requires static_groups (packed groups are contiguous in input order)");
  const int64_t gs = fmt.group_size, bs = opt.block_size, stride = row_bytes(K, fmt.bits);

  GptqResult res;
  // Per-channel parameters come from the weights as given (the reference calls find_params before zeroing dead
  // columns).
  std::vector<GroupParams> params((size_t)N * G);
  if (!grouped) {
    parallel_for(N, 64, [&](int64_t lo, int64_t hi) {
      for (int64_t n = lo; n < hi; n++) params[n] = group_params(W + n * K, K, fmt);
    });
  }

  // Dead inputs.
  std::vector<float> Hd(H, H + K * K);
  std::vector<char> dead(K, 0);
  for (int64_t j = 0; j < K; j++) {
    const float d = Hd[j * K + j];
    if (!std::isfinite(d)) throw std::invalid_argument("gptq_quantize: H[" + std::to_string(j) + ", " + std::to_string(j) + "] is not finite");
    if (d == 0.f) {
      dead[j] = 1;
      Hd[j * K + j] = 1.f;
      res.dead_columns++;
    }
  }

  // Working copy of W in processing order (columns permuted with act order), dead columns zeroed.
  std::vector<int32_t> perm(K);
  std::iota(perm.begin(), perm.end(), 0);
  if (opt.act_order)
    std::stable_sort(perm.begin(), perm.end(), [&](int32_t a, int32_t b) { return Hd[a * K + a] > Hd[b * K + b]; });
  std::vector<float> Wp((size_t)N * K);
  parallel_for(N, 64, [&](int64_t lo, int64_t hi) {
    for (int64_t n = lo; n < hi; n++)
      for (int64_t i = 0; i < K; i++) Wp[n * K + i] = dead[perm[i]] ? 0.f : W[n * K + perm[i]];
  });
  if (grouped && opt.static_groups) {
    // From the dead-zeroed weights in input order.
    parallel_for(N, 16, [&](int64_t lo, int64_t hi) {
      std::vector<float> g((size_t)gs);
      for (int64_t n = lo; n < hi; n++)
        for (int64_t gi = 0; gi < G; gi++) {
          const int64_t k0 = gi * gs, k1 = std::min(K, k0 + gs);
          for (int64_t k = k0; k < k1; k++) g[k - k0] = dead[k] ? 0.f : W[n * K + k];
          params[n * G + gi] = group_params(g.data(), k1 - k0, fmt);
        }
    });
  }

  // Damped, permuted H and the upper Cholesky factor of its inverse.
  double mean_diag = 0;
  for (int64_t j = 0; j < K; j++) mean_diag += Hd[j * K + j];
  mean_diag /= (double)K;
  const float damp = (float)(opt.percdamp * mean_diag);
  std::vector<float> Hp((size_t)K * K);
  for (int64_t i = 0; i < K; i++)
    for (int64_t j = 0; j < K; j++) Hp[i * K + j] = Hd[(int64_t)perm[i] * K + perm[j]];
  for (int64_t i = 0; i < K; i++) Hp[i * K + i] += damp;
  std::vector<float>().swap(Hd);
  std::vector<float> U((size_t)K * K);
  upper_cholesky_of_inverse(Hp.data(), K, U.data());
  std::vector<float>().swap(Hp);

  // Quantized codes in processing order, then scattered to input order at the end.
  std::vector<uint8_t> Qp((size_t)N * K);
  std::vector<double> row_loss(N, 0.0);
  constexpr int64_t kRowTile = 64;  // rows sharing each L2-resident block of Hinv in the lazy update
  const int64_t tiles = (N + kRowTile - 1) / kRowTile;
  parallel_for(tiles, 1, [&](int64_t tlo, int64_t thi) {
    std::vector<float> err((size_t)kRowTile * bs), snap((size_t)kRowTile * bs);
    for (int64_t tile = tlo; tile < thi; tile++) {
      const int64_t r0 = tile * kRowTile, R = std::min(N, r0 + kRowTile) - r0;
      for (int64_t i1 = 0; i1 < K; i1 += bs) {
        const int64_t i2 = std::min(K, i1 + bs), cnt = i2 - i1;
        for (int64_t r = 0; r < R; r++)
          std::memcpy(&snap[r * bs], &Wp[(r0 + r) * K + i1], (size_t)cnt * sizeof(float));
        for (int64_t i = i1; i < i2; i++) {
          const float d = U[i * K + i];
          const float* hrow = &U[i * K];
          for (int64_t r = 0; r < R; r++) {
            const int64_t n = r0 + r;
            float* wrow = &Wp[n * K];
            if (grouped && !opt.static_groups && i % gs == 0) {
              // The group's values as the reference's outer W holds them: block-start snapshot inside the block,
              // current values beyond it (not yet touched by this block's lazy update).
              const int64_t e = std::min(K, i + gs);
              std::vector<float> g((size_t)(e - i));
              for (int64_t k = i; k < e; k++) g[k - i] = k < i2 ? snap[r * bs + (k - i1)] : wrow[k];
              params[n * G + i / gs] = group_params(g.data(), e - i, fmt);
            }
            const GroupParams& p = params[n * G + (grouped ? perm[i] / gs : 0)];
            const float w = wrow[i];
            const int q = quantize_value(w, p, fmt.bits);
            Qp[n * K + i] = (uint8_t)q;
            const float dq = dequantize_value(q, p);
            const float e1 = (w - dq) / d;
            row_loss[n] += (double)(w - dq) * (w - dq) / ((double)d * d) / 2.0;
            for (int64_t k = i; k < i2; k++) wrow[k] -= e1 * hrow[k];
            err[r * bs + (i - i1)] = e1;
          }
        }
        if (i2 < K)
          calib_gemm_nn_acc(&Wp[r0 * K + i2], K, err.data(), bs, &U[i1 * K + i2], K, R, cnt, K - i2, -1.f);
      }
    }
  });

  // Pack in input order.
  parallel_for(N, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t n = lo; n < hi; n++) {
      uint8_t* row = codes + n * stride;
      std::memset(row, 0, (size_t)stride);
      for (int64_t g = 0; g < G; g++) store_params(params[n * G + g], fmt, scales, zeros, n * G + g);
      for (int64_t i = 0; i < K; i++) {
        const int64_t k = perm[i];
        const int q = Qp[n * K + i];
        put_code(row, k, fmt.bits, q);
        if (W_hat) W_hat[n * K + k] = dequantize_value(q, params[n * G + (grouped ? k / gs : 0)]);
      }
    }
  });
  for (int64_t n = 0; n < N; n++) res.loss += row_loss[n];
  if (opt.act_order) res.perm = perm;
  return res;
}

}  // namespace quanteval
