// CUDA kernel entry points (host-callable). Pointers are device pointers; layouts are those of formats.h, so a
// packed weight uploaded byte for byte from the CPU backend runs here unchanged. Every function checks its launch
// and throws std::runtime_error (file:line) on a CUDA error.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "quanteval/formats.h"
#include "quanteval/kernels.h"

namespace quanteval::cuda {

// Y[M, N] fp32 = X[M, K] fp16 · dequant(W)^T (+ bias[N]). W.codes/scales/zeros are device pointers.
// Weight-only GEMV for small M (memory-bound: one warp streams one packed row, 16-byte loads); larger M is
// processed in tiles of 8 rows by the same kernel for now (the tensor-core path is future work).
void gemm_q_f16(const uint16_t* X, int64_t M, const QuantWeight& W, const float* bias, float* Y, cudaStream_t stream);

}  // namespace quanteval::cuda

namespace quanteval::cuda {

// Split-K decode attention (flash-decoding) over an fp32/fp16/int8/int4 KV cache, layouts as formats.h / KVView.
// q [B, n_heads, head_dim] fp32 (device), kv: device array of B views whose pointers are device pointers, lens:
// device array of B lengths, max_len: host-side bound on lens (sizes the grid). out [B, n_heads, head_dim] fp32.
// k_type / v_type: the element types of every view's K and V (passed on the host side: the views live on the
// device); each view's `window` (sliding window, 0 = none) and `pos0` (first held position) are read on the device.
// A view whose window needs a position below its pos0 gets NaN outputs (the device cannot throw; the CPU kernels do).
// workspace: device floats, at least attention_decode_workspace(B, n_heads, head_dim, max_len) of them.
size_t attention_decode_workspace(int64_t B, int n_heads, int head_dim, int64_t max_len);
void attention_decode(const float* q, int64_t B, int n_heads, int n_kv_heads, int head_dim, KVType k_type,
                      KVType v_type,
                      const KVView* kv, const int64_t* lens, int64_t max_len, float scale, float* out,
                      float* workspace, cudaStream_t stream);

}  // namespace quanteval::cuda
