// Dense linear algebra for the calibration numerics: the NN GEMM (dispatching to AVX2), a blocked fp32 Cholesky,
// a blocked lower-triangular inverse, and from them the upper Cholesky factor of H⁻¹ that GPTQ needs.
// fp32 throughout, like the GPTQ reference (torch.linalg.cholesky on float32 H); diagonal blocks accumulate in
// double.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "quanteval/calib.h"
#include "quanteval/cpu_features.h"
#include "quanteval/threadpool.h"

namespace quanteval {
namespace calib_base {
#include "gemm_nn_impl.h"
}
namespace calib_avx2 {
void gemm_nn_acc(float* C, int64_t ldc, const float* A, int64_t lda, const float* B, int64_t ldb, int64_t R, int64_t T,
                 int64_t Nc, float alpha);
}

void calib_gemm_nn_acc(float* C, int64_t ldc, const float* A, int64_t lda, const float* B, int64_t ldb, int64_t R,
                       int64_t T, int64_t Nc, float alpha) {
  if (R <= 0 || T <= 0 || Nc <= 0) return;
  if (cpu_isa() >= Isa::Avx2) calib_avx2::gemm_nn_acc(C, ldc, A, lda, B, ldb, R, T, Nc, alpha);
  else calib_base::gemm_nn_acc_impl(C, ldc, A, lda, B, ldb, R, T, Nc, alpha);
}

namespace {

constexpr int64_t kBlock = 64;  // Cholesky / inverse block (64 x 64 fp32 = 16 KiB, an L1-sized diagonal block)

// In-place lower Cholesky of the n x n block at A (leading dimension lda); accumulates in double. Columns are
// named in errors as the caller's H numbers them: `name_col(j)` maps block column j.
template <typename NameCol>
void chol_unblocked(float* A, int64_t lda, int64_t n, NameCol name_col) {
  for (int64_t j = 0; j < n; j++) {
    double d = A[j * lda + j];
    for (int64_t t = 0; t < j; t++) d -= (double)A[j * lda + t] * A[j * lda + t];
    if (!(d > 0) || !std::isfinite(d))
      throw std::runtime_error("Cholesky: H is not positive definite at column " + std::to_string(name_col(j)) +
                               " (pivot " + std::to_string(d) + "); increase the damping or check the Hessian");
    const double l = std::sqrt(d);
    A[j * lda + j] = (float)l;
    for (int64_t i = j + 1; i < n; i++) {
      double s = A[i * lda + j];
      for (int64_t t = 0; t < j; t++) s -= (double)A[i * lda + t] * A[j * lda + t];
      A[i * lda + j] = (float)(s / l);
    }
  }
}

// Lower Cholesky in place of A [K, K] (upper triangle left as garbage; caller zeroes it). A is J H J, so column c
// of A is column K-1-c of H (what errors report).
void cholesky_lower(float* A, int64_t K) {
  std::vector<float> panelT;  // [b, rows below] transpose of the panel, the B operand of the trailing update
  for (int64_t k0 = 0; k0 < K; k0 += kBlock) {
    const int64_t b = std::min(kBlock, K - k0);
    chol_unblocked(A + k0 * K + k0, K, b, [&](int64_t j) { return K - 1 - (k0 + j); });
    const int64_t r0 = k0 + b, rows = K - r0;
    if (rows == 0) break;
    const float* Lkk = A + k0 * K + k0;
    // Panel: A[i, k0:k0+b] <- A[i, k0:k0+b] · Lkk^{-T} (forward substitution per row).
    parallel_for(rows, 16, [&](int64_t lo, int64_t hi) {
      for (int64_t i = r0 + lo; i < r0 + hi; i++) {
        float* x = A + i * K + k0;
        for (int64_t j = 0; j < b; j++) {
          double s = x[j];
          for (int64_t t = 0; t < j; t++) s -= (double)x[t] * Lkk[j * K + t];
          x[j] = (float)(s / Lkk[j * K + j]);
        }
      }
    });
    // Trailing update of the lower part: A[i, r0:i+1] -= P[i, :] · P[r0:i+1, :]^T, P = the panel.
    panelT.assign((size_t)b * rows, 0.f);
    for (int64_t i = 0; i < rows; i++)
      for (int64_t t = 0; t < b; t++) panelT[t * rows + i] = A[(r0 + i) * K + k0 + t];
    constexpr int64_t kRowTile = 16;
    const int64_t tiles = (rows + kRowTile - 1) / kRowTile;
    auto do_tile = [&](int64_t tile) {
      const int64_t i0 = tile * kRowTile, i1 = std::min(rows, i0 + kRowTile);
      // columns [0, i1) of the trailing block cover the lower triangle of these rows
      calib_gemm_nn_acc(A + (r0 + i0) * K + r0, K, A + (r0 + i0) * K + k0, K, panelT.data(), rows, i1 - i0, b, i1,
                        -1.f);
    };
    // Row tile t costs ∝ t (triangle): threads take tiles in pairs (t, tiles−1−t) so their shares are equal.
    parallel_for((tiles + 1) / 2, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t q = lo; q < hi; q++) {
        do_tile(q);
        if (tiles - 1 - q != q) do_tile(tiles - 1 - q);
      }
    });
  }
}

// In-place inverse of the lower-triangular n x n matrix at L (leading dimension ld), recursively:
// [L11 0; L21 L22]⁻¹ = [L11⁻¹ 0; -L22⁻¹ L21 L11⁻¹  L22⁻¹]. Entries above the diagonal must be zero.
void tri_inverse_lower(float* L, int64_t ld, int64_t n) {
  if (n <= kBlock) {
    // Column by column: X = L⁻¹, X[i][j] = (δij - Σ_{j<=t<i} L[i][t] X[t][j]) / L[i][i]; double accumulation.
    std::vector<double> X((size_t)n * n, 0.0);
    for (int64_t j = 0; j < n; j++) {
      for (int64_t i = j; i < n; i++) {
        double s = i == j ? 1.0 : 0.0;
        for (int64_t t = j; t < i; t++) s -= (double)L[i * ld + t] * X[t * n + j];
        X[i * n + j] = s / L[i * ld + i];
      }
    }
    for (int64_t i = 0; i < n; i++)
      for (int64_t j = 0; j <= i; j++) L[i * ld + j] = (float)X[i * n + j];
    return;
  }
  const int64_t n1 = (n / 2 + kBlock - 1) / kBlock * kBlock, n2 = n - n1;
  float* L11 = L;
  float* L21 = L + n1 * ld;
  float* L22 = L + n1 * ld + n1;
  tri_inverse_lower(L11, ld, n1);
  tri_inverse_lower(L22, ld, n2);
  // tmp = L21 · L11⁻¹  [n2, n1]; then L21 = -L22⁻¹ · tmp. L11⁻¹ is lower triangular, so the columns [c0, c0 + cb)
  // of tmp take only t >= c0 (the skipped terms are zero products, which leave the sums unchanged).
  std::vector<float> tmp((size_t)n2 * n1, 0.f);
  parallel_for(n2, 8, [&](int64_t lo, int64_t hi) {
    constexpr int64_t kColBlock = 256;
    for (int64_t c0 = 0; c0 < n1; c0 += kColBlock) {
      const int64_t cb = std::min(kColBlock, n1 - c0);
      calib_gemm_nn_acc(tmp.data() + lo * n1 + c0, n1, L21 + lo * ld + c0, ld, L11 + c0 * ld + c0, ld, hi - lo,
                        n1 - c0, cb, 1.f);
    }
  });
  // Rows in tiles of 16 (a GEMM, not 16 GEMVs re-reading tmp): row i of L22⁻¹ is zero beyond column i, so the
  // tile needs T = i1 terms; the zeros past a row's diagonal leave its sums unchanged (same values as T = i + 1).
  // Tile t costs ∝ t: threads take tiles in pairs (t, tiles−1−t).
  constexpr int64_t kRowTile = 16;
  const int64_t tiles = (n2 + kRowTile - 1) / kRowTile;
  auto do_tile = [&](int64_t tile) {
    const int64_t i0 = tile * kRowTile, i1 = std::min(n2, i0 + kRowTile);
    for (int64_t i = i0; i < i1; i++) std::fill(L21 + i * ld, L21 + i * ld + n1, 0.f);
    calib_gemm_nn_acc(L21 + i0 * ld, ld, L22 + i0 * ld, ld, tmp.data(), n1, i1 - i0, i1, n1, -1.f);
  };
  parallel_for((tiles + 1) / 2, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t q = lo; q < hi; q++) {
      do_tile(q);
      if (tiles - 1 - q != q) do_tile(tiles - 1 - q);
    }
  });
}

}  // namespace

void upper_cholesky_of_inverse(const float* H, int64_t K, float* U) {
  if (K <= 0) throw std::invalid_argument("upper_cholesky_of_inverse: K must be positive");
  // U <- J H J
  parallel_for(K, 64, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++)
      for (int64_t j = 0; j < K; j++) U[i * K + j] = H[(K - 1 - i) * K + (K - 1 - j)];
  });
  cholesky_lower(U, K);  // M
  for (int64_t i = 0; i < K; i++) std::fill(U + i * K + i + 1, U + (i + 1) * K, 0.f);
  tri_inverse_lower(U, K, K);  // M⁻¹
  // U <- J M⁻¹ J: element (i, j) swaps with (K-1-i, K-1-j); lower becomes upper.
  for (int64_t i = 0; i < K; i++)
    for (int64_t j = 0; j < K; j++) {
      const int64_t a = i * K + j, b = (K - 1 - i) * K + (K - 1 - j);
      if (a < b) std::swap(U[a], U[b]);
    }
}

}  // namespace quanteval
