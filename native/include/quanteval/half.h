// Scalar fp16 / bf16 <-> fp32 conversions (round to nearest even), usable from reference kernels and tests.
// SIMD kernels use F16C / shifts directly; these are their oracle.
#pragma once
#include <cstdint>
#include <cstring>

namespace quanteval {

inline float bits_to_f32(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
inline uint32_t f32_to_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }

inline float bf16_to_f32(uint16_t h) { return bits_to_f32((uint32_t)h << 16); }
inline uint16_t f32_to_bf16(float f) {
  uint32_t u = f32_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1);
  return (uint16_t)(u >> 16);
}

inline float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  if (exp == 0) {
    if (mant == 0) return bits_to_f32(sign);
    float f = (float)mant * (1.0f / 16777216.0f);  // subnormal: mant * 2^-24
    return sign ? -f : f;
  }
  if (exp == 31) return bits_to_f32(sign | 0x7f800000u | (mant << 13));
  return bits_to_f32(sign | ((exp + 112) << 23) | (mant << 13));
}
inline uint16_t f32_to_f16(float f) {
  uint32_t u = f32_to_bits(f), sign = (u >> 16) & 0x8000;
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00);            // NaN
  if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);           // overflow -> inf (>= 65520)
  if (a < 0x38800000u) {                                            // subnormal or zero (< 2^-14)
    float v = bits_to_f32(a) * 16777216.0f;                         // units of 2^-24
    uint32_t m = (uint32_t)v; float r = v - (float)m;
    if (r > 0.5f || (r == 0.5f && (m & 1))) m++;
    return (uint16_t)(sign | m);
  }
  uint32_t e = ((a >> 23) - 112) << 10, m = a & 0x7fffff;
  uint32_t h = e | (m >> 13);
  uint32_t rem = m & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
  return (uint16_t)(sign | h);
}

}  // namespace quanteval
