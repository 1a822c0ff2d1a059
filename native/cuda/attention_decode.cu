// Split-K decode attention ("flash-decoding") over a quantized KV cache.
//
// Work split: grid (B * n_heads, n_splits); each block of 4 warps takes one (sequence, head) and a contiguous slice
// of kSplitTokens tokens; warp w handles tokens w, w+4, ... of the slice, its lanes splitting head_dim (lane owns
// dims lane, lane+32, ...). K and V are dequantized in registers: x = (code - z) * s per [token, kv_head]. Each
// warp keeps an online-softmax state (running max m, sum l, acc[dims]); the 4 warps merge in shared memory and the
// block writes its partial state to the workspace; a second kernel merges the splits:
//   M = max m_i,  L = Σ l_i e^(m_i − M),  out = Σ acc_i e^(m_i − M) / L.
#include <cuda_fp16.h>

#include <stdexcept>
#include <string>

#include "common.cuh"
#include "quanteval/cuda_kernels.h"

namespace quanteval::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kSplitTokens = 256;
constexpr int kMaxDimsPerLane = 8;  // head_dim <= 256

__device__ __forceinline__ float load_kv(const void* base, KVType t, int64_t elem_row, int head_dim, int d) {
  switch (t) {
    case KVType::F32: return reinterpret_cast<const float*>(base)[elem_row * head_dim + d];
    case KVType::F16: return __half2float(reinterpret_cast<const __half*>(base)[elem_row * head_dim + d]);
    case KVType::I8: return (float)reinterpret_cast<const uint8_t*>(base)[elem_row * head_dim + d];
    case KVType::I4: {
      uint8_t b = reinterpret_cast<const uint8_t*>(base)[elem_row * (head_dim / 2) + d / 2];
      return (float)((d & 1) ? (b >> 4) : (b & 0xf));
    }
  }
  return 0.f;
}

__global__ void decode_partial(const float* __restrict__ q, int n_heads, int n_kv_heads, int head_dim, KVType k_type,
                               KVType v_type, const KVView* __restrict__ kv, const int64_t* __restrict__ lens, float scale,
                               int n_splits, float* __restrict__ ws) {
  const int bh = blockIdx.x, split = blockIdx.y;
  const int b = bh / n_heads, h = bh % n_heads;
  const int hk = h / (n_heads / n_kv_heads);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t len = lens[b];
  const KVView v = kv[b];
  // Sliding window: the query at len - 1 sees tokens [len - window, len); splits below that are empty (m = -inf).
  // The view holds positions [pos0, len) (row t - pos0); a window reaching below pos0 is a caller bug that the
  // device cannot throw for: decode_merge writes NaN for that sequence, and nothing below pos0 is read.
  const int64_t lo = v.window > 0 && len - v.window > 0 ? len - v.window : 0;
  const int64_t s0 = (int64_t)split * kSplitTokens;
  const int64_t t0 = max(max(lo, v.pos0), s0), t1 = min(len, s0 + kSplitTokens);
  const bool kq = k_type == KVType::I8 || k_type == KVType::I4;
  const bool vq = v_type == KVType::I8 || v_type == KVType::I4;

  float qd[kMaxDimsPerLane], acc[kMaxDimsPerLane];
#pragma unroll
  for (int i = 0; i < kMaxDimsPerLane; i++) {
    int d = lane + 32 * i;
    qd[i] = d < head_dim ? q[(int64_t)bh * head_dim + d] * scale : 0.f;
    acc[i] = 0.f;
  }
  float m = -INFINITY, l = 0.f;
  for (int64_t t = t0 + warp; t < t1; t += kWarps) {
    const int64_t row = (t - v.pos0) * n_kv_heads + hk;
    float ks = 1.f, kz = 0.f, vs = 1.f, vz = 0.f;
    if (kq) { ks = v.k_scale[row]; kz = v.k_zero[row]; }
    if (vq) { vs = v.v_scale[row]; vz = v.v_zero[row]; }
    float s = 0.f;
#pragma unroll
    for (int i = 0; i < kMaxDimsPerLane; i++) {
      int d = lane + 32 * i;
      if (d < head_dim) s += qd[i] * (load_kv(v.k, k_type, row, head_dim, d) - kz) * ks;
    }
    for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
    const float m_new = fmaxf(m, s);
    const float corr = __expf(m - m_new), p = __expf(s - m_new);
    l = l * corr + p;
#pragma unroll
    for (int i = 0; i < kMaxDimsPerLane; i++) {
      int d = lane + 32 * i;
      if (d < head_dim) acc[i] = acc[i] * corr + p * (load_kv(v.v, v_type, row, head_dim, d) - vz) * vs;
    }
    m = m_new;
  }
  // Merge the warps' states in shared memory.
  __shared__ float sm_m[kWarps], sm_l[kWarps];
  __shared__ float sm_acc[kWarps][32 * kMaxDimsPerLane];
  if (lane == 0) { sm_m[warp] = m; sm_l[warp] = l; }
#pragma unroll
  for (int i = 0; i < kMaxDimsPerLane; i++) sm_acc[warp][lane + 32 * i] = acc[i];
  __syncthreads();
  if (warp == 0) {
    float M = -INFINITY;
    for (int w = 0; w < kWarps; w++) M = fmaxf(M, sm_m[w]);
    float L = 0.f;
    for (int w = 0; w < kWarps; w++) L += sm_m[w] == -INFINITY ? 0.f : sm_l[w] * __expf(sm_m[w] - M);
    float* out = ws + ((int64_t)bh * n_splits + split) * (head_dim + 2);
    for (int d = lane; d < head_dim; d += 32) {
      float a = 0.f;
      for (int w = 0; w < kWarps; w++)
        if (sm_m[w] != -INFINITY) a += sm_acc[w][d] * __expf(sm_m[w] - M);
      out[2 + d] = a;
    }
    if (lane == 0) { out[0] = M; out[1] = L; }
  }
}

__global__ void decode_merge(int head_dim, int n_splits, const KVView* __restrict__ kv, const int64_t* __restrict__ lens,
                             int n_heads, const float* __restrict__ ws, float* __restrict__ out) {
  const int bh = blockIdx.x;
  const int64_t len = lens[bh / n_heads];
  const KVView v = kv[bh / n_heads];
  const int64_t lo = v.window > 0 && len - v.window > 0 ? len - v.window : 0;
  if (lo < v.pos0) {  // the window needs positions the view no longer holds
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x) out[(int64_t)bh * head_dim + d] = __int_as_float(0x7fc00000);
    return;
  }
  const int64_t need = (len + kSplitTokens - 1) / kSplitTokens;
  const int used = need < n_splits ? (int)need : n_splits;
  const float* p = ws + (int64_t)bh * n_splits * (head_dim + 2);
  float M = -INFINITY;
  for (int s = 0; s < used; s++) M = fmaxf(M, p[s * (head_dim + 2)]);
  float L = 0.f;
  for (int s = 0; s < used; s++) {
    float ms = p[s * (head_dim + 2)];
    if (ms != -INFINITY) L += p[s * (head_dim + 2) + 1] * __expf(ms - M);
  }
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float a = 0.f;
    for (int s = 0; s < used; s++) {
      float ms = p[s * (head_dim + 2)];
      if (ms != -INFINITY) a += p[s * (head_dim + 2) + 2 + d] * __expf(ms - M);
    }
    out[(int64_t)bh * head_dim + d] = L > 0.f ? a / L : 0.f;
  }
}

}  // namespace

size_t attention_decode_workspace(int64_t B, int n_heads, int head_dim, int64_t max_len) {
  int64_t splits = (max_len + kSplitTokens - 1) / kSplitTokens;
  return (size_t)(B * n_heads * (splits < 1 ? 1 : splits) * (head_dim + 2));
}

void attention_decode(const float* q, int64_t B, int n_heads, int n_kv_heads, int head_dim, KVType k_type,
                      KVType v_type, const KVView* kv, const int64_t* lens, int64_t max_len, float scale, float* out,
                      float* workspace, cudaStream_t stream) {
  if (B < 1 || n_heads < 1 || n_kv_heads < 1 || n_heads % n_kv_heads != 0)
    throw std::invalid_argument("cuda attention_decode: need B >= 1 and n_heads a multiple of n_kv_heads");
  if (head_dim < 1 || head_dim > 32 * kMaxDimsPerLane ||
      ((k_type == KVType::I4 || v_type == KVType::I4) && head_dim % 2))
    throw std::invalid_argument("cuda attention_decode: head_dim must be in [1, 256] (even for int4)");
  // int3 / int2 caches (formats.h bit planes) have no CUDA reader yet: refuse rather than misread them.
  if (k_type == KVType::I3 || k_type == KVType::I2 || v_type == KVType::I3 || v_type == KVType::I2)
    throw std::invalid_argument(std::string("cuda attention_decode: int3 / int2 KV caches are CPU-only, got K ") +
                                (k_type == KVType::I3 ? "int3" : k_type == KVType::I2 ? "int2" : "f32/f16/int8/int4") +
                                ", V " + (v_type == KVType::I3 ? "int3" : v_type == KVType::I2 ? "int2" : "f32/f16/int8/int4"));
  if (max_len < 1) throw std::invalid_argument("cuda attention_decode: max_len must be >= 1");
  int splits = (int)((max_len + kSplitTokens - 1) / kSplitTokens);
  dim3 grid((unsigned)(B * n_heads), (unsigned)splits);
  decode_partial<<<grid, 32 * kWarps, 0, stream>>>(q, n_heads, n_kv_heads, head_dim, k_type, v_type, kv, lens, scale, splits,
                                                   workspace);
  QE_CUDA_LAUNCH_CHECK();
  decode_merge<<<(unsigned)(B * n_heads), 128, 0, stream>>>(head_dim, splits, kv, lens, n_heads, workspace, out);
  QE_CUDA_LAUNCH_CHECK();
}

}  // namespace quanteval::cuda
