#pragma GCC target("avx2,fma,f16c")
// AVX2 read kernels of the bandwidth probe (membw.cpp). Each reads bytes [b, e) of p (4 KiB aligned) once with
// 256-bit loads and one cheap integer op a load (vpor: any of the 4 vector pipes), so that only the memory system
// bounds the rate. The strategies differ in how they ask memory for lines; the probe keeps the fastest, since the
// roofline is the highest read rate this machine sustains, not that of one access pattern:
//   0: one sequential stream, 8 loads (256 B) an iteration (the hardware prefetchers alone);
//   1: four sequential streams over the quarters of the range, 2 lines each an iteration (more misses in flight);
//   2: one stream with a software prefetch 2 KiB ahead of the loads.
#include <immintrin.h>

#include <cstdint>

#include "gemm_impl.h"

namespace quanteval::impl::avx2 {

namespace {
inline uint64_t fold(__m256i a0, __m256i a1, __m256i a2, __m256i a3) {
  const __m256i t = _mm256_or_si256(_mm256_or_si256(a0, a1), _mm256_or_si256(a2, a3));
  alignas(32) uint64_t o[4];
  _mm256_store_si256((__m256i*)o, t);
  return o[0] ^ o[1] ^ o[2] ^ o[3];
}
}  // namespace

uint64_t read_stream(const uint8_t* p, int64_t b, int64_t e, int strategy) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  if (strategy == 1) {
    // Quarters of [b, e), rounded down to 128 B; the remainder is read by stream 0's tail loop.
    const int64_t q = (e - b) / 4 / 128 * 128;
    const __m256i* s0 = (const __m256i*)(p + b);
    const __m256i* s1 = (const __m256i*)(p + b + q);
    const __m256i* s2 = (const __m256i*)(p + b + 2 * q);
    const __m256i* s3 = (const __m256i*)(p + b + 3 * q);
    for (int64_t i = 0; i < q / 32; i += 4) {
      a0 = _mm256_or_si256(a0, _mm256_or_si256(_mm256_load_si256(s0 + i), _mm256_load_si256(s0 + i + 1)));
      a1 = _mm256_or_si256(a1, _mm256_or_si256(_mm256_load_si256(s1 + i), _mm256_load_si256(s1 + i + 1)));
      a2 = _mm256_or_si256(a2, _mm256_or_si256(_mm256_load_si256(s2 + i), _mm256_load_si256(s2 + i + 1)));
      a3 = _mm256_or_si256(a3, _mm256_or_si256(_mm256_load_si256(s3 + i), _mm256_load_si256(s3 + i + 1)));
      a0 = _mm256_or_si256(a0, _mm256_or_si256(_mm256_load_si256(s0 + i + 2), _mm256_load_si256(s0 + i + 3)));
      a1 = _mm256_or_si256(a1, _mm256_or_si256(_mm256_load_si256(s1 + i + 2), _mm256_load_si256(s1 + i + 3)));
      a2 = _mm256_or_si256(a2, _mm256_or_si256(_mm256_load_si256(s2 + i + 2), _mm256_load_si256(s2 + i + 3)));
      a3 = _mm256_or_si256(a3, _mm256_or_si256(_mm256_load_si256(s3 + i + 2), _mm256_load_si256(s3 + i + 3)));
    }
    for (int64_t o = b + 4 * q; o + 32 <= e; o += 32) a0 = _mm256_or_si256(a0, _mm256_load_si256((const __m256i*)(p + o)));
    return fold(a0, a1, a2, a3);
  }
  int64_t o = b;
  for (; o + 256 <= e; o += 256) {
    const __m256i* s = (const __m256i*)(p + o);
    if (strategy == 2) {
      _mm_prefetch((const char*)(p + o + 2048), _MM_HINT_T0);
      _mm_prefetch((const char*)(p + o + 2048 + 64), _MM_HINT_T0);
      _mm_prefetch((const char*)(p + o + 2048 + 128), _MM_HINT_T0);
      _mm_prefetch((const char*)(p + o + 2048 + 192), _MM_HINT_T0);
    }
    a0 = _mm256_or_si256(a0, _mm256_or_si256(_mm256_load_si256(s + 0), _mm256_load_si256(s + 1)));
    a1 = _mm256_or_si256(a1, _mm256_or_si256(_mm256_load_si256(s + 2), _mm256_load_si256(s + 3)));
    a2 = _mm256_or_si256(a2, _mm256_or_si256(_mm256_load_si256(s + 4), _mm256_load_si256(s + 5)));
    a3 = _mm256_or_si256(a3, _mm256_or_si256(_mm256_load_si256(s + 6), _mm256_load_si256(s + 7)));
  }
  for (; o + 32 <= e; o += 32) a0 = _mm256_or_si256(a0, _mm256_load_si256((const __m256i*)(p + o)));
  return fold(a0, a1, a2, a3);
}

}  // namespace quanteval::impl::avx2
