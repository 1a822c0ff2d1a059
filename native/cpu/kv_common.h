// Shared by the attention kernels (reference and fast): validation of a KVView and the scalar reads of one cached
// element. Internal to native/cpu.
#pragma once
#include <cmath>
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "quanteval/formats.h"
#include "quanteval/half.h"
#include "quanteval/kernels.h"

namespace quanteval::detail {

inline const char* kv_type_name(KVType t) {
  switch (t) {
    case KVType::F32: return "f32"; case KVType::F16: return "f16";
    case KVType::I8: return "i8"; case KVType::I4: return "i4";
    case KVType::I3: return "i3"; case KVType::I2: return "i2";
  }
  return "?";
}

inline void check_kv_type(KVType t, const char* who) {
  if (t != KVType::F32 && t != KVType::F16 && t != KVType::I8 && t != KVType::I4 && t != KVType::I3 &&
      t != KVType::I2)
    throw std::invalid_argument(std::string(who) + ": unknown KV type " + std::to_string((int)t));
}

// head_dim: > 0 and even for int4 (two codes a byte). int3 / int2 pad their last bytes, so any head_dim works. Rope
// and the SIMD paths need nothing more.
inline void check_head_dim(int head_dim, KVType t, const char* who) {
  if (head_dim <= 0) throw std::invalid_argument(std::string(who) + ": head_dim must be > 0, got " + std::to_string(head_dim));
  if (t == KVType::I4 && head_dim % 2)
    throw std::invalid_argument(std::string(who) + ": int4 KV needs an even head_dim, got " + std::to_string(head_dim));
}

// Validates the view of one sequence's cache for `n_heads` query heads of width `head_dim`.
inline void check_kv_view(const KVView& kv, int n_heads, int head_dim, const char* who) {
  check_kv_type(kv.k_type, who);
  check_kv_type(kv.v_type, who);
  if (kv.n_kv_heads <= 0)
    throw std::invalid_argument(std::string(who) + ": n_kv_heads must be > 0, got " + std::to_string(kv.n_kv_heads));
  if (n_heads <= 0 || n_heads % kv.n_kv_heads)
    throw std::invalid_argument(std::string(who) + ": n_heads (" + std::to_string(n_heads) +
                                ") must be a positive multiple of n_kv_heads (" + std::to_string(kv.n_kv_heads) + ")");
  if (kv.head_dim != head_dim)
    throw std::invalid_argument(std::string(who) + ": KV head_dim " + std::to_string(kv.head_dim) +
                                " differs from the first sequence's " + std::to_string(head_dim));
  check_head_dim(kv.head_dim, kv.k_type, who);
  check_head_dim(kv.head_dim, kv.v_type, who);
  if (kv.window < 0)
    throw std::out_of_range(std::string(who) + ": KV window must be >= 0 (0 = none), got " + std::to_string(kv.window));
  if (kv.pos0 < 0)
    throw std::out_of_range(std::string(who) + ": KV pos0 (first held position) must be >= 0, got " +
                            std::to_string(kv.pos0));
  if (!kv.k || !kv.v) throw std::invalid_argument(std::string(who) + ": KV k/v pointers are null");
  if (kv_quantized(kv.k_type) && (!kv.k_scale || !kv.k_zero))
    throw std::invalid_argument(std::string(who) + ": quantized K (" + kv_type_name(kv.k_type) +
                                ") needs k_scale and k_zero");
  if (kv_quantized(kv.v_type) && (!kv.v_scale || !kv.v_zero))
    throw std::invalid_argument(std::string(who) + ": quantized V (" + kv_type_name(kv.v_type) +
                                ") needs v_scale and v_zero");
}

// The query at position p reads positions [kv_window_start(kv, p), p]: all of them must be held, i.e. at or above
// the cache's first held position kv.pos0. `what` names the query ("sequence 2", "query 5").
inline void check_kv_reach(const KVView& kv, int64_t p, const char* who, const std::string& what) {
  const int64_t need = kv_window_start(kv, p);
  if (need < kv.pos0)
    throw std::invalid_argument(std::string(who) + ": " + what + " at position " + std::to_string(p) +
                                " needs cached positions from " + std::to_string(need) + " (window " +
                                (kv.window > 0 ? std::to_string(kv.window) : std::string("none")) +
                                "), but the cache starts at pos0 = " + std::to_string(kv.pos0));
}

// Code d of an int3 / int2 row of head_dim D (formats.h layout: 2-bit plane, then for int3 the high-bit plane at
// byte ceil(D / 4)).
inline int kv_lowbit_code(KVType t, const uint8_t* row, int d, int D) {
  int c = (row[d >> 2] >> (2 * (d & 3))) & 3;
  if (t == KVType::I3) c |= ((row[(D + 3) / 4 + (d >> 3)] >> (d & 7)) & 1) << 2;
  return c;
}

// Element d of the cached head `row` (bytes of [token, kv_head], head_dim D) dequantized with scale s and zero z:
// x = (q - z) * s, the definition in formats.h.
inline float kv_load(KVType t, const void* row, int d, int D, float s, float z) {
  switch (t) {
    case KVType::F32: return static_cast<const float*>(row)[d];
    case KVType::F16: return f16_to_f32(static_cast<const uint16_t*>(row)[d]);
    case KVType::I8: return ((float)static_cast<const uint8_t*>(row)[d] - z) * s;
    case KVType::I4: {
      uint8_t b = static_cast<const uint8_t*>(row)[d >> 1];
      int c = (d & 1) ? (b >> 4) : (b & 0xF);
      return ((float)c - z) * s;
    }
    case KVType::I3:
    case KVType::I2: return ((float)kv_lowbit_code(t, static_cast<const uint8_t*>(row), d, D) - z) * s;
  }
  return 0.f;
}

// Dequantizes a whole int3 / int2 row (formats.h layout) of D values: out[d] = (q_d - z) * s.
inline void kv_lowbit_dequant_row(KVType t, const uint8_t* row, float s, float z, int D, float* out) {
  const uint8_t* hi = row + (D + 3) / 4;
  for (int d = 0; d < D; d++) {
    int c = (row[d >> 2] >> (2 * (d & 3))) & 3;
    if (t == KVType::I3) c |= ((hi[d >> 3] >> (d & 7)) & 1) << 2;
    out[d] = ((float)c - z) * s;
  }
}

// Quantizes one [token, kv_head] row of D values to int3 / int2 (formats.h layout) with the kv_store_ref
// arithmetic: s = max(max - min, 1e-5) / qmax, z = clamp(-round(min / s), 0, qmax), q = clamp(round(x / s) + z, 0,
// qmax), round half to even. Shared by kv_store_ref and the fast kv_store, so both give identical codes.
inline void kv_lowbit_store_row(KVType t, const float* x, int D, uint8_t* out, float* scale, float* zero) {
  const float qmax = (float)((1 << kv_bits(t)) - 1);
  float mn = x[0], mx = x[0];
  for (int d = 1; d < D; d++) { mn = std::min(mn, x[d]); mx = std::max(mx, x[d]); }
  const float s = std::max(mx - mn, 1e-5f) / qmax;
  const float z = std::min(std::max(-std::nearbyint(mn / s), 0.f), qmax);
  *scale = s;
  *zero = z;
  std::memset(out, 0, kv_bytes_per_head(t, D));
  uint8_t* hi = out + (D + 3) / 4;
  for (int d = 0; d < D; d++) {
    const int q = (int)std::min(std::max(std::nearbyint(x[d] / s) + z, 0.f), qmax);
    out[d >> 2] |= (uint8_t)((q & 3) << (2 * (d & 3)));
    if (t == KVType::I3) hi[d >> 3] |= (uint8_t)(((q >> 2) & 1) << (d & 7));
  }
}

}  // namespace quanteval::detail
