// AVX-512 register tiles of the fp32 GEMM (cpu_isa() == Isa::Avx512: AVX512F/BW/VL). gemm_avx2.cpp builds the same
// panels (dense weights copied, packed weights dequantized, rows skewed against L1 aliasing) and hands each fp32
// block to tiles_f32 here instead of its own 4 x 3 ymm tile.
//
// The tile is 4 rows of X x 6 rows of W in the same "dot" form (both operands read along K): 24 zmm accumulators of
// 16 products each, 6 W vectors and one X vector = 31 of the 32 zmm registers; 10 loads per 24 FMAs (the ymm tile:
// 7 per 12). The K tail is a masked load (no reads past the row, no scalar loop). Each accumulator is reduced once per
// K block, as in the AVX2 tile; the summation order differs from it (16 partial sums instead of 8), within the tests'
// tolerance of the reference.
//
// The quantized GEMV of 4- and 8-bit codes (M <= 4, groups of a multiple of 32: gemv_q_rows) takes a 32-code chunk
// as two zmm vectors: one vpmovzxbd of 16 bytes, then (4-bit) the whole bytes and a shift for the high nibbles against
// gemm_avx2.cpp's transformed X (x_j d_j + (x_{j+16} - 16 x_j) hi_j), i.e. 1 widen + 1 shift + 2 converts + 2 FMAs
// per chunk and X row, half the AVX2 kernel's 12 vector ops; 8-bit: 2 widens + 2 converts + 2 FMAs.
//
// The exact 4-bit GEMV at M = 1 (GemvKernel::Int, gemm_avx2.cpp's integer kernel) on zmm: gemv_qi4, one vpmovzxbw of a
// pair of chunks (32 bytes), one vpsrlw, 4 vpmaddwd and 4 vpaddd per 64 codes.
//
// One kernel text (gemm_avx512_impl.h), compiled twice: on zmm registers (avx512, cpu_isa() == Avx512) and with every
// primitive emulated lane by lane in scalar code (avx512_emu: QUANTEVAL_AVX512=emulate or set_zmm_mode, so that
// test_gemm runs the text on any CPU; slow). zmm_kernels() (cpu_features.h) picks one. docs/avx512.md.
// GCC 12 warns of an uninitialized temporary inside its own avx512fintrin.h (_mm256_undefined_pd passed as the
// merge source of an unmasked extract); nothing here reads it.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "gemm_common.h"
#include "gemm_impl.h"
#include "tls.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl")  // the Avx512 level: F + BW + VL, nothing else
namespace quanteval::impl::avx512 {
using namespace detail;
namespace {
using F = __m512;
using I = __m512i;
inline F vzero() { return _mm512_setzero_ps(); }
inline F vset1(float v) { return _mm512_set1_ps(v); }
inline F vload(const float* p) { return _mm512_loadu_ps(p); }
inline F vload_first(int r, const float* p) { return _mm512_maskz_loadu_ps((__mmask16)((1u << r) - 1), p); }
inline F vfma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
inline F vadd(F a, F b) { return _mm512_add_ps(a, b); }
inline float vhsum(F v) {
  const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline I widen_u8(const uint8_t* p) { return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)p)); }
inline I srli4(I v) { return _mm512_srli_epi32(v, 4); }
inline F to_f32(I v) { return _mm512_cvtepi32_ps(v); }
using I16 = __m512i;  // 32 int16 lanes
inline I izero() { return _mm512_setzero_si512(); }
inline I vaddi(I a, I b) { return _mm512_add_epi32(a, b); }
inline I16 widen_u8_w(const uint8_t* p) { return _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i*)p)); }
inline I16 widen_u8_w_half(const uint8_t* p) {
  return _mm512_cvtepu8_epi16(_mm256_zextsi128_si256(_mm_loadu_si128((const __m128i*)p)));
}
template <int S>
inline I16 srli16(I16 v) { return _mm512_srli_epi16(v, S); }
inline I16 vload_w(const int16_t* p) { return _mm512_load_si512(p); }
inline I madd16(I16 a, I16 b) { return _mm512_madd_epi16(a, b); }
}  // namespace
#include "gemm_avx512_impl.h"
}  // namespace quanteval::impl::avx512
#pragma GCC pop_options

namespace quanteval::impl::avx512_emu {
using namespace detail;
namespace {
struct F {
  float v[16];
};
struct I {
  int32_t v[16];
};
inline F vset1(float x) {
  F r;
  for (int i = 0; i < 16; i++) r.v[i] = x;
  return r;
}
inline F vzero() { return vset1(0.f); }
inline F vload(const float* p) {
  F r;
  std::memcpy(r.v, p, sizeof(r.v));
  return r;
}
inline F vload_first(int n, const float* p) {
  F r = vzero();
  std::memcpy(r.v, p, sizeof(float) * n);
  return r;
}
inline F vfma(F a, F b, F c) {
  for (int i = 0; i < 16; i++) c.v[i] = std::fma(a.v[i], b.v[i], c.v[i]);
  return c;
}
inline F vadd(F a, F b) {
  for (int i = 0; i < 16; i++) a.v[i] += b.v[i];
  return a;
}
inline float vhsum(F v) {
  float h[8], s[4];
  for (int i = 0; i < 8; i++) h[i] = v.v[i] + v.v[i + 8];
  for (int i = 0; i < 4; i++) s[i] = h[i] + h[i + 4];
  return (s[0] + s[2]) + (s[1] + s[3]);
}
inline I widen_u8(const uint8_t* p) {
  I r;
  for (int i = 0; i < 16; i++) r.v[i] = p[i];
  return r;
}
inline I srli4(I v) {
  for (int i = 0; i < 16; i++) v.v[i] = (int32_t)((uint32_t)v.v[i] >> 4);
  return v;
}
inline F to_f32(I v) {
  F r;
  for (int i = 0; i < 16; i++) r.v[i] = (float)v.v[i];
  return r;
}
struct I16 {
  int16_t v[32];
};
inline I izero() { return I{}; }
inline I vaddi(I a, I b) {  // wrapping, as vpaddd
  for (int i = 0; i < 16; i++) a.v[i] = (int32_t)((uint32_t)a.v[i] + (uint32_t)b.v[i]);
  return a;
}
inline I16 widen_u8_w(const uint8_t* p) {
  I16 r;
  for (int i = 0; i < 32; i++) r.v[i] = p[i];
  return r;
}
inline I16 widen_u8_w_half(const uint8_t* p) {
  I16 r{};
  for (int i = 0; i < 16; i++) r.v[i] = p[i];
  return r;
}
template <int S>
inline I16 srli16(I16 v) {
  for (int i = 0; i < 32; i++) v.v[i] = (int16_t)((uint16_t)v.v[i] >> S);
  return v;
}
inline I16 vload_w(const int16_t* p) {
  I16 r;
  std::memcpy(r.v, p, sizeof(r.v));
  return r;
}
inline I madd16(I16 a, I16 b) {  // vpmaddwd: pair sums, wrapping (only -2^15 * -2^15 twice leaves int32)
  I r;
  for (int i = 0; i < 16; i++)
    r.v[i] = (int32_t)(uint32_t)((int64_t)a.v[2 * i] * b.v[2 * i] + (int64_t)a.v[2 * i + 1] * b.v[2 * i + 1]);
  return r;
}
}  // namespace
#include "gemm_avx512_impl.h"
}  // namespace quanteval::impl::avx512_emu
