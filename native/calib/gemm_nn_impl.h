// The one dense kernel the calibration code needs: C[R, Nc] += alpha · A[R, T] · B[T, Nc] (all row-major). It is
// the shape of GPTQ's lazy block update (W[:, i2:] -= Err · Hinv[i1:i2, i2:]), of AWQ's A·H error products and of
// the blocked Cholesky / triangular inverse. Included by linalg.cpp: the baseline-ISA path. The AVX2 path
// (linalg_avx2.cpp) is a register-blocked kernel with the same blocks and the same per-element operation sequence
// (bit-identical to these loops compiled with FMA contraction).
//
// Blocking: columns in chunks of 256 floats and the inner dimension in blocks of 128, so a 128 x 256 block of B
// (128 KiB) stays in L2 while every row of A passes over it; rows four at a time so each loaded B element feeds four
// multiply-adds. Every C element still accumulates its T products in increasing t, so the blocking does not change
// results.
#pragma once
// (the includer includes <algorithm> and <cstdint> before its namespace)

inline void gemm_nn_acc_impl(float* C, int64_t ldc, const float* A, int64_t lda, const float* B, int64_t ldb,
                             int64_t R, int64_t T, int64_t Nc, float alpha) {
  constexpr int64_t kCols = 256, kInner = 128;
  for (int64_t c0 = 0; c0 < Nc; c0 += kCols) {
    const int64_t cn = std::min(kCols, Nc - c0);
    for (int64_t t0 = 0; t0 < T; t0 += kInner) {
      const int64_t t1 = std::min(T, t0 + kInner);
      int64_t r = 0;
      for (; r + 4 <= R; r += 4) {
        float* __restrict__ y0 = C + (r + 0) * ldc + c0;
        float* __restrict__ y1 = C + (r + 1) * ldc + c0;
        float* __restrict__ y2 = C + (r + 2) * ldc + c0;
        float* __restrict__ y3 = C + (r + 3) * ldc + c0;
        for (int64_t t = t0; t < t1; t++) {
          const float a0 = alpha * A[(r + 0) * lda + t], a1 = alpha * A[(r + 1) * lda + t];
          const float a2 = alpha * A[(r + 2) * lda + t], a3 = alpha * A[(r + 3) * lda + t];
          if (a0 == 0.f && a1 == 0.f && a2 == 0.f && a3 == 0.f) continue;
          const float* __restrict__ b = B + t * ldb + c0;
          for (int64_t c = 0; c < cn; c++) {
            const float bv = b[c];
            y0[c] += a0 * bv;
            y1[c] += a1 * bv;
            y2[c] += a2 * bv;
            y3[c] += a3 * bv;
          }
        }
      }
      for (; r < R; r++) {
        float* __restrict__ y = C + r * ldc + c0;
        for (int64_t t = t0; t < t1; t++) {
          const float a = alpha * A[r * lda + t];
          if (a == 0.f) continue;
          const float* __restrict__ b = B + t * ldb + c0;
          for (int64_t c = 0; c < cn; c++) y[c] += a * b[c];
        }
      }
    }
  }
}
