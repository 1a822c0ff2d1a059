// Shared helpers of the GEMM / quantization kernels (reference and fast): argument checks and scalar loads.
// Internal to native/cpu; the public contract is kernels.h.
#pragma once
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "quanteval/formats.h"
#include "quanteval/half.h"
#include "quanteval/threadpool.h"

namespace quanteval::detail {

// std::vector storage aligned to a cache line: the kernels' 32-byte loads of activations never split a line (16-byte
// aligned buffers cost the 4-bit GEMV ~10%: a quarter of its X loads crossed a line).
template <class T, size_t A = 64>
struct AlignedAlloc {
  using value_type = T;
  AlignedAlloc() = default;
  template <class U>
  AlignedAlloc(const AlignedAlloc<U, A>&) {}
  template <class U>
  struct rebind { using other = AlignedAlloc<U, A>; };
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(A))); }
  void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t(A)); }
  bool operator==(const AlignedAlloc&) const { return true; }
  bool operator!=(const AlignedAlloc&) const { return false; }
};
template <class T>
using aligned_vector = std::vector<T, AlignedAlloc<T>>;

// Round half to even, as torch.round (the default FE_TONEAREST mode).
inline float round_even(float v) { return std::nearbyintf(v); }

inline float clampf(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }

// Element i of a dense fp32 / fp16 / bf16 tensor as fp32.
inline float load_elem(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::F32: return static_cast<const float*>(p)[i];
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
    default: throw std::invalid_argument(std::string("unsupported element type ") + dtype_name(t));
  }
}

// Store fp32 v as dtype t (round to nearest even) and return the value actually stored, as fp32.
inline float store_elem(void* p, DType t, int64_t i, float v) {
  switch (t) {
    case DType::F32: static_cast<float*>(p)[i] = v; return v;
    case DType::F16: { uint16_t h = f32_to_f16(v); static_cast<uint16_t*>(p)[i] = h; return f16_to_f32(h); }
    case DType::BF16: { uint16_t h = f32_to_bf16(v); static_cast<uint16_t*>(p)[i] = h; return bf16_to_f32(h); }
    default: throw std::invalid_argument(std::string("unsupported scale type ") + dtype_name(t));
  }
}

inline bool float_dtype(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

inline void check_format(const QuantFormat& f, const char* who) {
  if (!valid_bits(f.bits))
    throw std::invalid_argument(std::string(who) + ": bits must be 2, 3, 4, 6 or 8, got " + std::to_string(f.bits));
  if (f.group_size < 1)
    throw std::invalid_argument(std::string(who) + ": group_size must be >= 1, got " + std::to_string(f.group_size));
  if (!float_dtype(f.scale_dtype))
    throw std::invalid_argument(std::string(who) + ": scale dtype must be f32, f16 or bf16, got " +
                                dtype_name(f.scale_dtype));
}

inline void check_weight(const QuantWeight& w, const char* who) {
  check_format(w.fmt, who);
  if (w.N < 0 || w.K < 1)
    throw std::invalid_argument(std::string(who) + ": need N >= 0 and K >= 1, got N=" + std::to_string(w.N) +
                                " K=" + std::to_string(w.K));
  if (w.N > 0 && (!w.codes || !w.scales))
    throw std::invalid_argument(std::string(who) + ": codes and scales must not be null");
  if (w.N > 0 && !w.fmt.symmetric && !w.zeros)
    throw std::invalid_argument(std::string(who) + ": asymmetric format needs zero points");
}

inline void check_act(DType x_dtype, int64_t M, const char* who) {
  if (x_dtype != DType::F32 && x_dtype != DType::BF16)
    throw std::invalid_argument(std::string(who) + ": activations must be f32 or bf16, got " + dtype_name(x_dtype));
  if (M < 0) throw std::invalid_argument(std::string(who) + ": M must be >= 0, got " + std::to_string(M));
}

// Integer-activation GEMM (gemm_w8a8): any packed weight format (bits 2/3/4/8, any group size).
inline void check_w8a8(const QuantWeight& w, const char* who) { check_weight(w, who); }

// Zero point of group g of row n (the constant 2^(bits-1) when symmetric).
inline int zero_of(const QuantWeight& w, int64_t n, int64_t g) {
  return w.fmt.symmetric ? (1 << (w.fmt.bits - 1)) : (int)w.zeros[n * w.groups() + g];
}

// Per-token asymmetric quantization parameters of one row x[K] with `bits` bits (pseudo_quantize_tensor):
// s = max(max - min, 1e-5) / (2^b - 1), z = clamp(-round(min / s), 0, 2^b - 1). Computed in fp32 exactly as torch.
struct ActQuant { float s; float z; };
inline ActQuant act_params(float mn, float mx, int bits) {
  float maxq = (float)((1 << bits) - 1);
  float s = std::fmax(mx - mn, 1e-5f) / maxq;
  float z = clampf(-round_even(mn / s), 0.f, maxq);
  return {s, z};
}
// Code of x: clamp(round(x / s) + z, 0, 2^b - 1).
inline float act_code(float x, ActQuant p, float maxq) { return clampf(round_even(x / p.s) + p.z, 0.f, maxq); }

// One output of the integer-activation GEMM, the definition gemm_w8a8_ref and the portable path share.
// qa[K] activation codes (scale sa, zero point za) against row n of W: per group g (k in [k0, k1))
//   acc_g = sum (qa - za) * (qw - zw_g) = sum qa*qw - za * sum qw - zw_g * sum qa + len * za * zw_g  (exact int64)
// then y = (sa * sw) * acc with one group (per output channel; the order the integer kernels use, bit-exact), else
// sa * sum_g sw_g * acc_g with the group sum in double. Bias not included.
inline float w8a8_output(const int* qa, float sa, int64_t za, const QuantWeight& W, int64_t n) {
  const int64_t K = W.K, G = W.groups(), gs = W.fmt.group_size;
  const uint8_t* row = W.codes + n * W.stride();
  double t = 0;
  int64_t acc0 = 0;
  for (int64_t g = 0; g < G; g++) {
    const int64_t k0 = g * gs, k1 = std::min(K, k0 + gs);
    int64_t dot = 0, sum_w = 0, sum_a = 0;
    for (int64_t k = k0; k < k1; k++) {
      const int q = get_code(row, k, W.fmt.bits);
      dot += (int64_t)qa[k] * q;
      sum_w += q;
      sum_a += qa[k];
    }
    const int64_t zw = zero_of(W, n, g);
    acc0 = dot - za * sum_w - zw * sum_a + (k1 - k0) * za * zw;
    t += (double)load_elem(W.scales, W.fmt.scale_dtype, n * G + g) * (double)acc0;
  }
  return G == 1 ? (sa * load_elem(W.scales, W.fmt.scale_dtype, n)) * (float)acc0 : (float)((double)sa * t);
}

// Activation codes of one row x[K] (8-bit asymmetric, exactly fake_quant_act_ref): qa[K], returns {sa, za}.
inline ActQuant act_codes8(const float* x, int64_t K, int* qa) {
  float mn = x[0], mx = x[0];
  for (int64_t k = 0; k < K; k++) { mn = std::min(mn, x[k]); mx = std::max(mx, x[k]); }
  const ActQuant p = act_params(mn, mx, 8);
  for (int64_t k = 0; k < K; k++) qa[k] = (int)act_code(x[k], p, 255.f);
  return p;
}

// Runs fn(b, e) over [0, n) in blocks of `block` items handed out dynamically to the pool's threads. On a shared
// machine a descheduled thread's remaining blocks are taken by the others instead of stalling the whole call, which
// a static split into num_threads() halves cannot do.
template <class F>
void dynamic_for(int64_t n, int64_t block, F&& fn) {
  if (n <= 0) return;
  const int64_t nblocks = (n + block - 1) / block;
  const int nt = (int)std::min<int64_t>(num_threads(), nblocks);
  if (nt <= 1) { fn((int64_t)0, n); return; }
  std::atomic<int64_t> next{0};
  parallel_for(nt, 1, [&](int64_t, int64_t) {
    for (;;) {
      const int64_t b = next.fetch_add(block, std::memory_order_relaxed);
      if (b >= n) break;
      fn(b, std::min(n, b + block));
    }
  });
}

// Row block of a GEMV (M <= 8) pass over N weight rows: 4 blocks per thread (at least `min_rows`). A GEMV streams
// the weights once; each block is one contiguous stream that the hardware prefetchers must pick up again, so few
// long blocks beat many short ones, while 4 a thread still let a delayed thread's share be taken over. Decode of
// tinyllama-1.1b w4g128a8 (2 threads, interleaved rounds in one process): 32-row blocks 45.2 ms a step, N/8-row
// blocks 34.1 ms; N/4 to N/12 alike; N/2 (a static split) erratic (docs/gemv.md, fourth session).
inline int64_t gemv_block_rows(int64_t N, int64_t min_rows) {
  const int64_t parts = 4 * (int64_t)num_threads();
  return std::max(min_rows, (N + parts - 1) / parts);
}

// The weights of a *_multi call (kernels.h): each valid for the kernel (check), all of one K.
template <class Check>
void check_multi(const QuantWeight* W, int n, const char* who, Check&& check) {
  if (n < 0) throw std::invalid_argument(std::string(who) + ": n must be >= 0, got " + std::to_string(n));
  for (int i = 0; i < n; i++) {
    check(W[i], who);
    if (W[i].K != W[0].K)
      throw std::invalid_argument(std::string(who) + ": every weight must have the K of weight 0 (" +
                                  std::to_string(W[0].K) + "), weight " + std::to_string(i) + " has " +
                                  std::to_string(W[i].K));
  }
}

// The rows of several weights as blocks of at most `blk` rows, (weight i, rows [n0, n1)), for one parallel pass.
struct RowBlock {
  int i;
  int64_t n0, n1;
};
inline std::vector<RowBlock> row_blocks(const QuantWeight* W, int n, int64_t blk) {
  std::vector<RowBlock> b;
  for (int i = 0; i < n; i++)
    for (int64_t n0 = 0; n0 < W[i].N; n0 += blk) b.push_back({i, n0, std::min(W[i].N, n0 + blk)});
  return b;
}
inline int64_t total_rows(const QuantWeight* W, int n) {
  int64_t t = 0;
  for (int i = 0; i < n; i++) t += W[i].N;
  return t;
}

}  // namespace quanteval::detail
