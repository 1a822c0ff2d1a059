// Weight-only GEMV over packed 2/3/4/8-bit weights (formats.h) with fused dequantization.
//
// Design: one warp per output channel n. Lane l walks the row's 32-code chunks l, l+32, ... so consecutive lanes
// read consecutive chunks (coalesced 8-16-byte loads of packed codes). Each chunk is decoded in registers and
// multiplied by up to MT activation rows; with group sizes that are a multiple of 32 a chunk lies in one group and
// the zero point is applied once per chunk: s·(Σ x·q − z·Σ x). Other group sizes (43, 172, per channel on odd K)
// take the per-element path. Partial sums are reduced across the warp with shuffles; fp32 accumulation throughout.
#include <cuda_fp16.h>
#include <cuda_bf16.h>

#include <stdexcept>
#include <string>

#include "common.cuh"
#include "quanteval/cuda_kernels.h"

namespace quanteval::cuda {
namespace {

constexpr int kWarpsPerBlock = 4;
constexpr int kMaxRows = 8;  // activation rows per launch tile

__device__ __forceinline__ float load_scale(const void* scales, DType t, int64_t i) {
  switch (t) {
    case DType::F16: return __half2float(reinterpret_cast<const __half*>(scales)[i]);
    case DType::BF16: return __bfloat162float(reinterpret_cast<const __nv_bfloat16*>(scales)[i]);
    default: return reinterpret_cast<const float*>(scales)[i];
  }
}

// Decodes the 32 codes of one chunk (layout: formats.h) into q[32].
template <int BITS>
__device__ __forceinline__ void decode_chunk(const uint8_t* c, int q[32]) {
  if constexpr (BITS == 8) {
    uint4 a = *reinterpret_cast<const uint4*>(c), b = *reinterpret_cast<const uint4*>(c + 16);
    uint32_t w[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
#pragma unroll
    for (int j = 0; j < 32; j++) q[j] = (w[j / 4] >> (8 * (j % 4))) & 0xff;
  } else if constexpr (BITS == 4) {
    uint4 a = *reinterpret_cast<const uint4*>(c);
    uint32_t w[4] = {a.x, a.y, a.z, a.w};
#pragma unroll
    for (int j = 0; j < 16; j++) {
      uint32_t byte = (w[j / 4] >> (8 * (j % 4))) & 0xff;
      q[j] = byte & 0xf;
      q[j + 16] = byte >> 4;
    }
  } else if constexpr (BITS == 2 || BITS == 3) {
    uint2 a = *reinterpret_cast<const uint2*>(c);
    uint32_t w[2] = {a.x, a.y};
    uint32_t hi = 0;
    if constexpr (BITS == 3) hi = *reinterpret_cast<const uint32_t*>(c + 8);
#pragma unroll
    for (int j = 0; j < 32; j++) {
      uint32_t byte = (w[(j & 7) / 4] >> (8 * ((j & 7) % 4))) & 0xff;
      int v = (byte >> (2 * (j >> 3))) & 3;
      if constexpr (BITS == 3) v |= ((hi >> j) & 1) << 2;
      q[j] = v;
    }
  }
}

template <int BITS>
__global__ void gemv_q_kernel(const __half* __restrict__ X,  // [M, K]
                              int M, int64_t K,
                              const uint8_t* __restrict__ codes,  // [N, row_bytes]
                              const void* __restrict__ scales,    // [N, G]
                              DType scale_dtype,
                              const uint8_t* __restrict__ zeros,  // [N, G] or null (symmetric)
                              int64_t N, int group_size, const float* __restrict__ bias,
                              float* __restrict__ Y) {  // [M, N]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t n = (int64_t)blockIdx.x * kWarpsPerBlock + warp;
  if (n >= N) return;
  const int m0 = blockIdx.y * kMaxRows;
  const int rows = min(kMaxRows, M - m0);
  const int64_t chunks = (K + kChunk - 1) / kChunk;
  const int64_t G = (K + group_size - 1) / group_size;
  constexpr int kBytes = BITS == 8 ? 32 : BITS == 4 ? 16 : BITS == 3 ? 12 : 8;
  const uint8_t* row = codes + n * chunks * kBytes;
  const int zsym = 1 << (BITS - 1);
  const bool uniform = group_size % kChunk == 0;

  float acc[kMaxRows];
#pragma unroll
  for (int r = 0; r < kMaxRows; r++) acc[r] = 0.f;

  for (int64_t c = lane; c < chunks; c += 32) {
    int q[32];
    decode_chunk<BITS>(row + c * kBytes, q);
    const int64_t k0 = c * kChunk;
    const int valid = (int)(K - k0 < kChunk ? K - k0 : kChunk);
    if (uniform) {
      const int64_t g = k0 / group_size;
      const float s = load_scale(scales, scale_dtype, n * G + g);
      const float z = zeros ? (float)zeros[n * G + g] : (float)zsym;
#pragma unroll
      for (int r = 0; r < kMaxRows; r++) {
        if (r >= rows) break;
        const __half* x = X + (int64_t)(m0 + r) * K + k0;
        float sxq = 0.f, sx = 0.f;
#pragma unroll
        for (int j = 0; j < kChunk; j++) {
          if (j >= valid) break;
          float xv = __half2float(x[j]);
          sxq = fmaf(xv, (float)q[j], sxq);
          sx += xv;
        }
        acc[r] += s * (sxq - z * sx);
      }
    } else {
#pragma unroll
      for (int j = 0; j < kChunk; j++) {
        if (j >= valid) break;
        const int64_t g = (k0 + j) / group_size;
        const float s = load_scale(scales, scale_dtype, n * G + g);
        const float z = zeros ? (float)zeros[n * G + g] : (float)zsym;
        const float w = ((float)q[j] - z) * s;
#pragma unroll
        for (int r = 0; r < kMaxRows; r++) {
          if (r >= rows) break;
          acc[r] = fmaf(__half2float(X[(int64_t)(m0 + r) * K + k0 + j]), w, acc[r]);
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kMaxRows; r++) {
    float v = acc[r];
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    if (lane == 0 && r < rows) Y[(int64_t)(m0 + r) * N + n] = v + (bias ? bias[n] : 0.f);
  }
}

}  // namespace

void gemm_q_f16(const uint16_t* X, int64_t M, const QuantWeight& W, const float* bias, float* Y, cudaStream_t stream) {
  if (!valid_bits(W.fmt.bits) || W.fmt.bits == 6)
    throw std::invalid_argument("gemm_q_f16: bits must be 2, 3, 4 or 8 (6-bit weights have no CUDA kernel yet), got " +
                                std::to_string(W.fmt.bits));
  if (W.fmt.group_size < 1) throw std::invalid_argument("gemm_q_f16: group_size must be >= 1");
  if (M < 1 || W.N < 1 || W.K < 1) throw std::invalid_argument("gemm_q_f16: M, N and K must be >= 1");
  if (!W.fmt.symmetric && !W.zeros) throw std::invalid_argument("gemm_q_f16: asymmetric weight without zero points");
  dim3 block(32 * kWarpsPerBlock);
  dim3 grid((unsigned)((W.N + kWarpsPerBlock - 1) / kWarpsPerBlock), (unsigned)((M + kMaxRows - 1) / kMaxRows));
  auto x = reinterpret_cast<const __half*>(X);
  const uint8_t* z = W.fmt.symmetric ? nullptr : W.zeros;
#define QE_LAUNCH(B)                                                                                          \
  gemv_q_kernel<B><<<grid, block, 0, stream>>>(x, (int)M, W.K, W.codes, W.scales, W.fmt.scale_dtype, z, W.N, \
                                               W.fmt.group_size, bias, Y)
  switch (W.fmt.bits) {
    case 8: QE_LAUNCH(8); break;
    case 4: QE_LAUNCH(4); break;
    case 3: QE_LAUNCH(3); break;
    case 2: QE_LAUNCH(2); break;
  }
#undef QE_LAUNCH
  QE_CUDA_LAUNCH_CHECK();
}

}  // namespace quanteval::cuda
