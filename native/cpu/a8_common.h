// Helpers shared by the integer-activation kernels (gemm_a8_avx2.cpp, gemm_a8_vnni.cpp): unpack_u8 (one packed chunk
// of 2-, 3- or 4-bit codes as 32 bytes in natural order), hsum_u64, row_scales, dot_f32. Include only from files compiled with
// #pragma GCC target("avx2,fma,f16c") (inline: it inherits that target, and the VNNI targets are supersets of it).
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "quanteval/formats.h"
#include "quanteval/half.h"
#include "quanteval/kernels.h"
#include "simd_avx2.h"

namespace quanteval::impl::avx2 {

// 32 codes of one packed chunk (formats.h) as 32 bytes in natural order (BITS 2, 3, 4).
template <int BITS>
inline __m256i unpack_u8(const uint8_t* c) {
  if constexpr (BITS == 4) {
    const __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)c));
    return _mm256_and_si256(_mm256_srlv_epi64(v, _mm256_setr_epi64x(0, 0, 4, 4)), _mm256_set1_epi8(0x0F));
  } else {
    int64_t lo8;
    std::memcpy(&lo8, c, 8);
    __m256i q = _mm256_and_si256(_mm256_srlv_epi64(_mm256_set1_epi64x(lo8), _mm256_setr_epi64x(0, 2, 4, 6)),
                                 _mm256_set1_epi8(3));
    if constexpr (BITS == 3) {
      int32_t hb;
      std::memcpy(&hb, c + 8, 4);
      // Byte j takes byte j / 8 of the high-bit word, then keeps bit j % 8 of it: 0xFF where set -> 4.
      const __m256i spread = _mm256_shuffle_epi8(
          _mm256_set1_epi32(hb), _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,  //
                                                  2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
      const __m256i bit = _mm256_set1_epi64x(0x8040201008040201LL);
      const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
      q = _mm256_or_si256(q, _mm256_and_si256(set, _mm256_set1_epi8(4)));
    }
    return q;
  }
}

// Sum of the 4 qword lanes (vpsadbw sums).
inline uint64_t hsum_u64(__m256i v) {
  alignas(32) uint64_t l[4];
  _mm256_store_si256((__m256i*)l, v);
  return l[0] + l[1] + l[2] + l[3];
}

// G scales of row n as fp32 (sw) and sw * zw (swz).
inline void row_scales(const QuantWeight& W, int64_t n, float* sw, float* swz) {
  const int64_t G = W.groups();
  const int64_t i0 = n * G;
  int64_t g = 0;
  switch (W.fmt.scale_dtype) {
    case DType::F16: {
      const uint16_t* s = static_cast<const uint16_t*>(W.scales) + i0;
      for (; g + 8 <= G; g += 8) _mm256_storeu_ps(sw + g, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(s + g))));
      for (; g < G; g++) sw[g] = _cvtsh_ss(s[g]);
      break;
    }
    case DType::BF16: {
      const uint16_t* s = static_cast<const uint16_t*>(W.scales) + i0;
      for (; g < G; g++) sw[g] = bf16_to_f32(s[g]);
      break;
    }
    default: std::memcpy(sw, static_cast<const float*>(W.scales) + i0, sizeof(float) * G); break;
  }
  if (W.fmt.symmetric) {
    const float zs = (float)(1 << (W.fmt.bits - 1));
    for (g = 0; g < G; g++) swz[g] = sw[g] * zs;
    return;
  }
  const uint8_t* z = W.zeros + i0;
  for (g = 0; g + 8 <= G; g += 8) {
    const __m256 zf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(z + g))));
    _mm256_storeu_ps(swz + g, _mm256_mul_ps(_mm256_loadu_ps(sw + g), zf));
  }
  for (; g < G; g++) swz[g] = sw[g] * (float)z[g];
}

// sum_g a[g] * b[g] in fp32 (8 lanes).
inline float dot_f32(const float* a, const float* b, int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
  float s = simd::hsum8(acc);
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

}  // namespace quanteval::impl::avx2
