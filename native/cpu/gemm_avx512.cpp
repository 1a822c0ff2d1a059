#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq")
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
// This CPU (Zen 3) has no AVX-512: the tile is checked by test_gemm under an emulator of an AVX-512 CPU (Bochs'
// tigerlake model, scripts/avx512-emu/) and by test_gemm on any AVX-512 machine; docs/avx512.md.
// GCC 12 warns of an uninitialized temporary inside its own avx512fintrin.h (_mm256_undefined_pd passed as the
// merge source of an unmasked extract); nothing here reads it.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "gemm_common.h"
#include "gemm_impl.h"
#include "tls.h"

namespace quanteval::impl::avx512 {

using namespace detail;

namespace {

constexpr int MR = 4;  // X rows per register tile
constexpr int NR = 6;  // W rows per register tile

inline float hsum16(__m512 v) {
  const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <int mr, int nr>
void micro(const float* X, int64_t ldx, const float* W, int64_t ldw, int64_t kc, float* Y, int64_t ldy) {
  __m512 acc[mr][nr];
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nr; j++) acc[i][j] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= kc; k += 16) {
    __m512 w[nr];
    for (int j = 0; j < nr; j++) w[j] = _mm512_loadu_ps(W + j * ldw + k);
    for (int i = 0; i < mr; i++) {
      const __m512 x = _mm512_loadu_ps(X + i * ldx + k);
      for (int j = 0; j < nr; j++) acc[i][j] = _mm512_fmadd_ps(x, w[j], acc[i][j]);
    }
  }
  if (k < kc) {
    const __mmask16 m = (__mmask16)((1u << (kc - k)) - 1);
    __m512 w[nr];
    for (int j = 0; j < nr; j++) w[j] = _mm512_maskz_loadu_ps(m, W + j * ldw + k);
    for (int i = 0; i < mr; i++) {
      const __m512 x = _mm512_maskz_loadu_ps(m, X + i * ldx + k);
      for (int j = 0; j < nr; j++) acc[i][j] = _mm512_fmadd_ps(x, w[j], acc[i][j]);
    }
  }
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nr; j++) Y[i * ldy + j] += hsum16(acc[i][j]);
}

template <int mr>
void micro_n(int nr, const float* X, int64_t ldx, const float* W, int64_t ldw, int64_t kc, float* Y, int64_t ldy) {
  switch (nr) {
    case 6: micro<mr, 6>(X, ldx, W, ldw, kc, Y, ldy); break;
    case 5: micro<mr, 5>(X, ldx, W, ldw, kc, Y, ldy); break;
    case 4: micro<mr, 4>(X, ldx, W, ldw, kc, Y, ldy); break;
    case 3: micro<mr, 3>(X, ldx, W, ldw, kc, Y, ldy); break;
    case 2: micro<mr, 2>(X, ldx, W, ldw, kc, Y, ldy); break;
    default: micro<mr, 1>(X, ldx, W, ldw, kc, Y, ldy); break;
  }
}


// ── quantized GEMV, 4- and 8-bit codes ────────────────────────────────────────────────────────────────────────
// 32 codes of a chunk -> q[0] (codes 0-15) and q[1] (16-31); 4-bit: the whole bytes and the high nibbles (see above).
template <int BITS>
inline void unpack32(const uint8_t* c, __m512 q[2]) {
  if constexpr (BITS == 4) {
    const __m512i d = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)c));
    q[0] = _mm512_cvtepi32_ps(d);
    q[1] = _mm512_cvtepi32_ps(_mm512_srli_epi32(d, 4));
  } else {
    q[0] = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)c)));
    q[1] = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(c + 16))));
  }
}

// One row n of W against M rows of X: A accumulators per X row (4 for M = 1: two chunks in flight against the FMA
// latency), reduced and scaled once a group; the zero-point term sum_g s_g z_g gsum[m, g] at the end.
template <int BITS, int M, int CPG>
void gemv_row(const QuantWeight& W, const float* X, int64_t ldx, const float* gsum, const float* bias, float* Y,
              int64_t n, float* sc) {
  constexpr int A = M == 1 ? 4 : 2;
  constexpr int64_t cb = (int64_t)chunk_bytes(BITS);
  constexpr int64_t kPfEvery = 64 / cb;  // one prefetch a 64-byte line of codes
  const int64_t G = W.groups(), stride = W.stride(), chunks = chunks_per_row(W.K);
  const int64_t cpg = CPG ? CPG : W.fmt.group_size / kChunk;
  const uint8_t* row = W.codes + n * stride;
  for (int64_t g = 0; g < G; g++) sc[g] = load_elem(W.scales, W.fmt.scale_dtype, n * G + g);
  __m512 yacc[M];
  for (int m = 0; m < M; m++) yacc[m] = _mm512_setzero_ps();
  for (int64_t g = 0; g < G; g++) {
    const int64_t c0 = g * cpg, c1 = std::min(chunks, c0 + cpg);
    __m512 acc[M][A];
    for (int m = 0; m < M; m++)
      for (int a = 0; a < A; a++) acc[m][a] = _mm512_setzero_ps();
    for (int64_t c = c0; c < c1; c++) {
      if (c % kPfEvery == 0) _mm_prefetch((const char*)(row + c * cb + stride), _MM_HINT_T0);  // the next row
      __m512 q[2];
      unpack32<BITS>(row + c * cb, q);
      const float* xc = X + c * kChunk;
      const int a0 = A == 4 ? (int)(c & 1) * 2 : 0;
      for (int m = 0; m < M; m++)
        for (int s = 0; s < 2; s++)
          acc[m][a0 + s] = _mm512_fmadd_ps(q[s], _mm512_loadu_ps(xc + m * ldx + 16 * s), acc[m][a0 + s]);
    }
    const __m512 sv = _mm512_set1_ps(sc[g]);
    for (int m = 0; m < M; m++) {
      __m512 a = _mm512_add_ps(acc[m][0], acc[m][1]);
      if constexpr (A == 4) a = _mm512_add_ps(a, _mm512_add_ps(acc[m][2], acc[m][3]));
      yacc[m] = _mm512_fmadd_ps(a, sv, yacc[m]);
    }
  }
  const float zsym = (float)(1 << (BITS - 1));
  const uint8_t* z = W.fmt.symmetric ? nullptr : W.zeros + n * G;
  const float b = bias ? bias[n] : 0.f;
  for (int m = 0; m < M; m++) {
    float corr = 0.f;
    for (int64_t g = 0; g < G; g++) corr += sc[g] * (z ? (float)z[g] : zsym) * gsum[m * G + g];
    Y[m * W.N + n] = hsum16(yacc[m]) - corr + b;
  }
}

template <int BITS, int M>
void gemv_rows_m(const QuantWeight& W, const float* X, int64_t ldx, const float* gsum, const float* bias, float* Y,
                 int64_t n0, int64_t n1) {
  thread_local std::vector<float> tls_sc;
  std::vector<float>& sc = detail::tls_once(tls_sc);
  sc.resize((size_t)W.groups());
  for (int64_t n = n0; n < n1; n++) {
    switch (W.fmt.group_size) {
      case 32: gemv_row<BITS, M, 1>(W, X, ldx, gsum, bias, Y, n, sc.data()); break;
      case 64: gemv_row<BITS, M, 2>(W, X, ldx, gsum, bias, Y, n, sc.data()); break;
      case 128: gemv_row<BITS, M, 4>(W, X, ldx, gsum, bias, Y, n, sc.data()); break;
      default: gemv_row<BITS, M, 0>(W, X, ldx, gsum, bias, Y, n, sc.data()); break;
    }
  }
}

template <int BITS>
void gemv_rows_bits(int64_t M, const QuantWeight& W, const float* X, int64_t ldx, const float* gsum,
                    const float* bias, float* Y, int64_t n0, int64_t n1) {
  switch (M) {
    case 1: gemv_rows_m<BITS, 1>(W, X, ldx, gsum, bias, Y, n0, n1); break;
    case 2: gemv_rows_m<BITS, 2>(W, X, ldx, gsum, bias, Y, n0, n1); break;
    case 3: gemv_rows_m<BITS, 3>(W, X, ldx, gsum, bias, Y, n0, n1); break;
    default: gemv_rows_m<BITS, 4>(W, X, ldx, gsum, bias, Y, n0, n1); break;
  }
}


}  // namespace

void tiles_f32(const float* X, int64_t ldx, int64_t M, const float* W, int64_t ldw, int64_t nrows, int64_t kc,
               float* Y, int64_t ldy) {
  for (int64_t m = 0; m < M; m += MR) {
    const int mr = (int)std::min<int64_t>(MR, M - m);
    const float* x = X + m * ldx;
    float* y = Y + m * ldy;
    for (int64_t j = 0; j < nrows; j += NR) {
      const int nr = (int)std::min<int64_t>(NR, nrows - j);
      const float* w = W + j * ldw;
      switch (mr) {
        case 4: micro_n<4>(nr, x, ldx, w, ldw, kc, y + j, ldy); break;
        case 3: micro_n<3>(nr, x, ldx, w, ldw, kc, y + j, ldy); break;
        case 2: micro_n<2>(nr, x, ldx, w, ldw, kc, y + j, ldy); break;
        default: micro_n<1>(nr, x, ldx, w, ldw, kc, y + j, ldy); break;
      }
    }
  }
}

bool gemv_q_takes(int bits, int64_t M) { return (bits == 4 || bits == 8) && M >= 1 && M <= 4; }

void gemv_q_rows(int64_t M, const QuantWeight& W, const float* X, int64_t ldx, const float* gsum, const float* bias,
                 float* Y, int64_t n0, int64_t n1) {
  if (W.fmt.bits == 4) gemv_rows_bits<4>(M, W, X, ldx, gsum, bias, Y, n0, n1);
  else gemv_rows_bits<8>(M, W, X, ldx, gsum, bias, Y, n0, n1);
}

}  // namespace quanteval::impl::avx512
