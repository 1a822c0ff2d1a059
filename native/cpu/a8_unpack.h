// unpack_u8: one packed chunk of 2-, 3- or 4-bit codes as 32 bytes in natural order, shared by the integer-
// activation kernels (gemm_a8_avx2.cpp, gemm_a8_vnni.cpp). Include only from files compiled with
// #pragma GCC target("avx2,fma,f16c") (inline: it inherits that target, and the VNNI targets are supersets of it).
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "quanteval/formats.h"

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

}  // namespace quanteval::impl::avx2
