// Dispatch of the GEMM kernels (kernels.h): picks the fast path for the CPU (cpu_isa()) and the shape.
#include "gemm_common.h"
#include "quanteval/cpu_features.h"
#include "quanteval/kernels.h"

namespace quanteval {

void gemm_dense(const void* X, DType x_dtype, int64_t M, const DenseWeight& W, const float* bias, float* Y) {
  gemm_dense_ref(X, x_dtype, M, W, bias, Y);
}

void gemm_q(const void* X, DType x_dtype, int64_t M, const QuantWeight& W, const float* bias, float* Y) {
  gemm_q_ref(X, x_dtype, M, W, bias, Y);
}

void gemm_w8a8(const float* X, int64_t M, const QuantWeight& W, const float* bias, float* Y) {
  gemm_w8a8_ref(X, M, W, bias, Y);
}

}  // namespace quanteval
