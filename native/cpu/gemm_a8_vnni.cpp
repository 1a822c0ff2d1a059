#pragma GCC target("avx2,fma,f16c")
// VNNI kernels of the integer-activation GEMM (gemm_w8a8) for weights of 2, 3, 4 and 8 bits, per channel or in groups
// of a multiple of 32: the kernels of gemm_a8_vnni_impl.h compiled three times, each with its own vpdpbusd:
//   a8_vnni_emu   AVX2 only: vpdpbusd emulated exactly (vpmaddwd on the even and odd bytes widened to int16). Slow;
//                 it lets the kernels' tiling and arithmetic be tested against gemm_w8a8_ref on CPUs without VNNI.
//   a8_avxvnni    AVX-VNNI (VEX, Alder Lake and later, Zen 5): _mm256_dpbusd_avx_epi32.
//   a8_avx512vnni AVX512-VNNI with AVX512VL (Cascade Lake, Ice Lake, Sapphire Rapids, Zen 4): the EVEX form on ymm,
//                 _mm256_dpbusd_epi32.
// The kernel code is the same text in all three; only the one instruction differs. The whole file is compiled for
// AVX2 (so the shared AVX2 helpers inline everywhere); the two VNNI namespaces add their extensions on top.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "a8_common.h"
#include "gemm_a8.h"
#include "gemm_common.h"
#include "simd_avx2.h"
#include "tls.h"

namespace quanteval::impl::a8_vnni_emu {
// acc[i] += sum_{j<4} u[4i+j] * s[4i+j], exactly: each product fits int16 x int16 -> int32 (|u * s| <= 255 * 128).
inline __m256i dpbusd(__m256i acc, __m256i u, __m256i s) {
  const __m256i ue = _mm256_and_si256(u, _mm256_set1_epi16(0x00FF)), uo = _mm256_srli_epi16(u, 8);
  const __m256i se = _mm256_srai_epi16(_mm256_slli_epi16(s, 8), 8), so = _mm256_srai_epi16(s, 8);
  return _mm256_add_epi32(acc, _mm256_add_epi32(_mm256_madd_epi16(ue, se), _mm256_madd_epi16(uo, so)));
}
#include "gemm_a8_vnni_impl.h"
}  // namespace quanteval::impl::a8_vnni_emu

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avxvnni")
namespace quanteval::impl::a8_avxvnni {
inline __m256i dpbusd(__m256i acc, __m256i u, __m256i s) { return _mm256_dpbusd_avx_epi32(acc, u, s); }
#include "gemm_a8_vnni_impl.h"
}  // namespace quanteval::impl::a8_avxvnni
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")
namespace quanteval::impl::a8_avx512vnni {
inline __m256i dpbusd(__m256i acc, __m256i u, __m256i s) { return _mm256_dpbusd_epi32(acc, u, s); }
#include "gemm_a8_vnni_impl.h"
}  // namespace quanteval::impl::a8_avx512vnni
#pragma GCC pop_options

namespace quanteval::impl {
void a8_vnni_emu::a8_rows(const A8Act& a, const QuantWeight& W, int64_t n0, int64_t n1, int32_t* I, float* F) {
  rows(a, W, n0, n1, I, F);
}
void a8_avxvnni::a8_rows(const A8Act& a, const QuantWeight& W, int64_t n0, int64_t n1, int32_t* I, float* F) {
  rows(a, W, n0, n1, I, F);
}
void a8_avx512vnni::a8_rows(const A8Act& a, const QuantWeight& W, int64_t n0, int64_t n1, int32_t* I, float* F) {
  rows(a, W, n0, n1, I, F);
}
}  // namespace quanteval::impl
