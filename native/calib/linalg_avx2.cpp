// AVX2+FMA build of the calibration GEMM (gemm_nn_impl.h); chosen at run time by calib_gemm_nn_acc.
#pragma GCC target("avx2,fma,f16c")
#include <algorithm>
#include <cstdint>

namespace quanteval::calib_avx2 {
#include "gemm_nn_impl.h"
void gemm_nn_acc(float* C, int64_t ldc, const float* A, int64_t lda, const float* B, int64_t ldb, int64_t R, int64_t T,
                 int64_t Nc, float alpha) {
  gemm_nn_acc_impl(C, ldc, A, lda, B, ldb, R, T, Nc, alpha);
}
}  // namespace quanteval::calib_avx2
