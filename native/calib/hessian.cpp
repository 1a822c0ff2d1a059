// Σ xᵀx accumulation for GPTQ / AWQ calibration captures (calib.h, hessian_accumulate_upper): a blocked symmetric
// rank-M update of the upper triangle of H.
//
// Numerics: every product x_i·x_j of two fp32 values is exact in fp64, and the products of one call are summed in
// fp64 in increasing row order (per block of kRows rows), then added to H. So H stays a float64 sum as before (the
// captured statistics keep ≤ 1e-12 relative agreement with a direct float64 computation, and the fp32 H that GPTQ
// receives is in practice unchanged); only the speed changes. fp32 accumulation would be ~2x faster but adds
// ~1e-7 relative rounding per block, which moves GPTQ's results; fp64 keeps them and is already far from the
// bottleneck (~1–2 s per tinyllama layer on 2 cores).
//
// Blocking: a block of ≤ kRows rows of X is packed once into column panels of 8, converted to double, P[p][m][0..8)
// (zero-padded past K). Output tiles of 4 rows × 8 columns of H are then sums over m of panel slices: 8 ymm
// accumulators, 4 broadcasts + 2 loads per 8 FMAs (hessian_avx2.cpp). Only tiles touching the upper triangle run.
// Threads split the column panels in pairs (p, P−1−p) so each share has the same triangle area; every H element
// is computed by one tile in a fixed order, so results do not depend on the thread count.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "quanteval/calib.h"
#include "quanteval/cpu_features.h"
#include "quanteval/threadpool.h"

namespace quanteval {

namespace hessian_avx2 {
void tile_4x8(const double* A, const double* B, int64_t M, double* acc);
}

namespace {

constexpr int64_t kRows = 256;  // rows of X per packed block: P is kRows·8·8 = 16 KiB per panel (L1)

// acc[ii*8 + jj] = Σ_m A[m*8 + ii] · B[m*8 + jj], ii < 4, jj < 8 (A and B are panels with stride 8 per row).
void tile_4x8_portable(const double* A, const double* B, int64_t M, double* acc) {
  double c[4][8] = {};
  for (int64_t m = 0; m < M; m++) {
    const double* a = A + m * 8;
    const double* b = B + m * 8;
    for (int ii = 0; ii < 4; ii++)
      for (int jj = 0; jj < 8; jj++) c[ii][jj] += a[ii] * b[jj];
  }
  std::memcpy(acc, c, sizeof c);
}

}  // namespace

void hessian_accumulate_upper(const float* X, int64_t M, int64_t K, double* H) {
  if (M < 0 || K < 1) throw std::invalid_argument("hessian_accumulate_upper: M must be >= 0 and K >= 1");
  if (M == 0) return;
  auto tile = cpu_isa() >= Isa::Avx2 ? hessian_avx2::tile_4x8 : tile_4x8_portable;
  const int64_t P = (K + 7) / 8;  // column panels
  std::vector<double> pk((size_t)P * kRows * 8);
  for (int64_t m0 = 0; m0 < M; m0 += kRows) {
    const int64_t mb = std::min(kRows, M - m0);
    // Pack rows [m0, m0 + mb) into panels (zero past K).
    parallel_for(P, 8, [&](int64_t lo, int64_t hi) {
      for (int64_t p = lo; p < hi; p++) {
        double* dst = pk.data() + p * kRows * 8;
        const int64_t j0 = p * 8, w = std::min<int64_t>(8, K - j0);
        for (int64_t m = 0; m < mb; m++) {
          const float* x = X + (m0 + m) * K + j0;
          double* d = dst + m * 8;
          for (int64_t j = 0; j < w; j++) d[j] = x[j];
          for (int64_t j = w; j < 8; j++) d[j] = 0.0;
        }
      }
    });
    // Column panel p holds H columns [8p, 8p + 8); its upper-triangle rows are [0, 8p + 8), 4 at a time.
    auto do_panel = [&](int64_t p) {
      const double* B = pk.data() + p * kRows * 8;
      const int64_t j0 = p * 8;
      double acc[32];
      for (int64_t i0 = 0; i0 < j0 + 8 && i0 < K; i0 += 4) {
        const double* A = pk.data() + (i0 / 8) * kRows * 8 + (i0 % 8);
        tile(A, B, mb, acc);
        for (int64_t ii = 0; ii < 4 && i0 + ii < K; ii++) {
          const int64_t i = i0 + ii;
          double* h = H + i * K;
          for (int64_t jj = 0; jj < 8 && j0 + jj < K; jj++)
            if (j0 + jj >= i) h[j0 + jj] += acc[ii * 8 + jj];
        }
      }
    };
    const int64_t pairs = (P + 1) / 2;
    parallel_for(pairs, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t q = lo; q < hi; q++) {
        do_panel(q);
        if (P - 1 - q != q) do_panel(P - 1 - q);
      }
    });
  }
}

}  // namespace quanteval
