// CUDA kernel entry points (host-callable). Pointers are device pointers; layouts are those of formats.h, so a
// packed weight uploaded byte for byte from the CPU backend runs here unchanged. Every function checks its launch
// and throws std::runtime_error (file:line) on a CUDA error.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "quanteval/formats.h"

namespace quanteval::cuda {

// Y[M, N] fp32 = X[M, K] fp16 · dequant(W)^T (+ bias[N]). W.codes/scales/zeros are device pointers.
// Weight-only GEMV for small M (memory-bound: one warp streams one packed row, 16-byte loads); larger M is
// processed in tiles of 8 rows by the same kernel for now (the tensor-core path is future work).
void gemm_q_f16(const uint16_t* X, int64_t M, const QuantWeight& W, const float* bias, float* Y, cudaStream_t stream);

}  // namespace quanteval::cuda
