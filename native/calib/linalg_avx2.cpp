// AVX2+FMA build of the calibration GEMM C[R, Nc] += alpha · A[R, T] · B[T, Nc] (calib.h), chosen at run time by
// calib_gemm_nn_acc. gemm_nn_impl.h's loops, compiled here, re-read and re-write each C row chunk for every t
// (L1 load/store bound, ~1 FMA per cycle); this kernel keeps a 4 × 16 tile of C in 8 ymm registers over a block of
// t (4 broadcasts + 2 loads per 8 FMAs, FMA bound), reading a packed copy of the block of B. Bit-identical to gemm_nn_impl.h compiled with FMA: every C
// element still receives c = fma(alpha·A[r, t], B[t, c], c) in increasing t (same blocks, same zero skipping is
// irrelevant: a zero product leaves c unchanged), which keeps GPTQ's results as they were.
#pragma GCC target("avx2,fma,f16c")
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace quanteval::calib_avx2 {

namespace {

// C rows r0..r0+3 (4 = kR, or fewer: nr), columns [c0, c0 + 16), t in [t0, t1).
// ap [t1 - t0][4]: alpha · A[i, t] for the tile's rows, rounded to fp32 as gemm_nn_impl.h rounds them.
// bp [t1 - t0][16]: the 16 columns of B, packed (contiguous rows: B's own rows are ldb apart, and with ldb a
// multiple of 1 KiB the 128 rows of a block would all fall into one L1 set).
template <int NR>
inline void tile16(float* C, int64_t ldc, const float* ap, const float* bp, int64_t t0, int64_t t1) {
  __m256 c[NR][2];
  for (int i = 0; i < NR; i++) {
    c[i][0] = _mm256_loadu_ps(C + i * ldc);
    c[i][1] = _mm256_loadu_ps(C + i * ldc + 8);
  }
  for (int64_t t = t0; t < t1; t++) {
    const float* b = bp + (t - t0) * 16;
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
    for (int i = 0; i < NR; i++) {
      const __m256 a = _mm256_broadcast_ss(ap + (t - t0) * 4 + i);
      c[i][0] = _mm256_fmadd_ps(a, b0, c[i][0]);
      c[i][1] = _mm256_fmadd_ps(a, b1, c[i][1]);
    }
  }
  for (int i = 0; i < NR; i++) {
    _mm256_storeu_ps(C + i * ldc, c[i][0]);
    _mm256_storeu_ps(C + i * ldc + 8, c[i][1]);
  }
}

// Columns [c0, c0 + w), w < 16: 8-wide then scalar fma (the same fused operation).
inline void tile_tail(float* C, int64_t ldc, const float* A, int64_t lda, const float* B, int64_t ldb, int64_t nr,
                      int64_t t0, int64_t t1, int64_t w, float alpha) {
  for (int64_t i = 0; i < nr; i++) {
    float* y = C + i * ldc;
    for (int64_t t = t0; t < t1; t++) {
      const float a = alpha * A[i * lda + t];
      const float* b = B + t * ldb;
      int64_t c = 0;
      if (w >= 8) {
        _mm256_storeu_ps(y, _mm256_fmadd_ps(_mm256_set1_ps(a), _mm256_loadu_ps(b), _mm256_loadu_ps(y)));
        c = 8;
      }
      for (; c < w; c++) y[c] = std::fma(a, b[c], y[c]);
    }
  }
}

}  // namespace

void gemm_nn_acc(float* C, int64_t ldc, const float* A, int64_t lda, const float* B, int64_t ldb, int64_t R, int64_t T,
                 int64_t Nc, float alpha) {
  // Blocks as gemm_nn_impl.h: 256 columns × 128 t (a 128 KiB block of B stays in L2 while the rows pass over it).
  constexpr int64_t kCols = 256, kInner = 128;
  thread_local std::vector<float> packed((size_t)kCols * kInner);  // [kCols / 16][kInner][16]
  for (int64_t c0 = 0; c0 < Nc; c0 += kCols) {
    const int64_t cn = std::min(kCols, Nc - c0), strips = cn / 16;
    for (int64_t t0 = 0; t0 < T; t0 += kInner) {
      const int64_t t1 = std::min(T, t0 + kInner);
      for (int64_t st = 0; st < strips; st++)
        for (int64_t t = t0; t < t1; t++) {
          const float* b = B + t * ldb + c0 + st * 16;
          float* d = packed.data() + (st * kInner + (t - t0)) * 16;
          _mm256_storeu_ps(d, _mm256_loadu_ps(b));
          _mm256_storeu_ps(d + 8, _mm256_loadu_ps(b + 8));
        }
      for (int64_t r = 0; r < R; r += 4) {
        const int64_t nr = std::min<int64_t>(4, R - r);
        float* Cr = C + r * ldc + c0;
        const float* Ar = A + r * lda;
        const float* Bc = B + c0;
        float ap[kInner * 4];
        for (int64_t t = t0; t < t1; t++)
          for (int64_t i = 0; i < nr; i++) ap[(t - t0) * 4 + i] = alpha * Ar[i * lda + t];
        int64_t c = 0;
        for (; c + 16 <= cn; c += 16) {
          const float* bp = packed.data() + (c / 16) * kInner * 16;
          switch (nr) {
            case 4: tile16<4>(Cr + c, ldc, ap, bp, t0, t1); break;
            case 3: tile16<3>(Cr + c, ldc, ap, bp, t0, t1); break;
            case 2: tile16<2>(Cr + c, ldc, ap, bp, t0, t1); break;
            default: tile16<1>(Cr + c, ldc, ap, bp, t0, t1); break;
          }
        }
        if (c < cn) tile_tail(Cr + c, ldc, Ar, lda, Bc + c, ldb, nr, t0, t1, cn - c, alpha);
      }
    }
  }
}

}  // namespace quanteval::calib_avx2
