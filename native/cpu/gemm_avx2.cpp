#pragma GCC target("avx2,fma,f16c")
// AVX2 + FMA + F16C GEMM kernels: Y[M, N] = X[M, K] · W[N, K]^T (+ bias), fp32 accumulation.
//
// Design. Every kernel is written in the "dot" form: both operands are read along K (X rows and W rows are both
// K-contiguous), so neither packed weights nor fp16/bf16 weights need a transpose.
//  - Tiled path (any M): a 4 x 3 register tile (4 rows of X, 3 rows of W, 12 ymm accumulators + 3 W vectors + 1 X
//    vector = 16 registers) runs over a K block of KC values; X's 4-row tile (KC floats each) stays in L1 while
//    it meets the NB rows of a W block that stay in L2. The W block is copied (dense; fp16/bf16 converted) or
//    dequantized (packed) into an fp32 panel whose rows are skewed by 64 bytes: rows whose stride is a multiple of
//    4 KiB (K = 4096 fp32) would otherwise all map to the same L1 sets, which halved the GEMM's speed. The whole
//    dequantized matrix is never built. With M <= 4, dense weights are streamed in place instead. On AVX-512 CPUs
//    the fp32 blocks go to a 4 x 6 zmm tile instead (gemm_avx512.cpp).
//  - Quantized GEMV (M <= kGemvMaxM, group size a multiple of 32): memory bound, so each packed row is streamed
//    once: 32 codes are unpacked to 4 fp32 vectors and multiplied by all M activation rows; per group
//    y += s * sum(x * q) and, once per group, y -= s * z * sum_group(x) with the group sums of x precomputed.
//  - W4A8 per channel (4-bit codes, M > 8): vpmaddubsw, 8 pair sums of at most 2 * 15 * 128 accumulate in int16
//    before one vpmaddwd widens them, same 4 x 3 tiling. (W8A8 per channel and every grouped a8 format run on
//    gemm_a8_avx2.cpp.)
//  - Rows of W are handed to the threads in blocks, dynamically (dynamic_for in gemm_common.h).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "gemm_common.h"
#include "gemm_impl.h"
#include "quanteval/cpu_features.h"
#include "quanteval/threadpool.h"
#include "tls.h"

namespace quanteval::impl::avx2 {

using namespace detail;

namespace {

constexpr int MR = 4;              // X rows per register tile
constexpr int NR = 3;              // W rows per register tile
constexpr int64_t kGemvMaxM = 8;   // quantized GEMV path up to this many rows of X

// ── small helpers ───────────────────────────────────────────────────────────────────────────────────────────
inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline int32_t hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

// Weight element types read in place by the tiled kernel.
struct F16 { uint16_t v; };
struct BF16 { uint16_t v; };

inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load8(const F16* p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)p)); }
inline __m256 load8(const BF16* p) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)p)), 16));
}
// The first r (< 8) elements, zeros after: never reads past them.
template <class T>
inline __m256 load_tail(const T* p, int r) {
  alignas(32) T buf[8];
  std::memset(buf, 0, sizeof(buf));
  std::memcpy(buf, p, sizeof(T) * r);
  return load8(buf);
}

// ── tiled fp32 GEMM over one K block ────────────────────────────────────────────────────────────────────────
// Y[m, n] += sum_{k < kc} X[m, k] * W[n, k] for m < mr (<= MR), n < nr (<= NR). X row stride ldx, W row stride ldw,
// Y row stride ldy.
template <int mr, int nr, class WT>
void micro(const float* X, int64_t ldx, const WT* W, int64_t ldw, int64_t kc, float* Y, int64_t ldy) {
  __m256 acc[mr][nr];
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nr; j++) acc[i][j] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= kc; k += 8) {
    __m256 w[nr];
    for (int j = 0; j < nr; j++) w[j] = load8(W + j * ldw + k);
    for (int i = 0; i < mr; i++) {
      __m256 x = _mm256_loadu_ps(X + i * ldx + k);
      for (int j = 0; j < nr; j++) acc[i][j] = _mm256_fmadd_ps(x, w[j], acc[i][j]);
    }
  }
  if (k < kc) {
    const int r = (int)(kc - k);
    __m256 w[nr];
    for (int j = 0; j < nr; j++) w[j] = load_tail(W + j * ldw + k, r);
    for (int i = 0; i < mr; i++) {
      __m256 x = load_tail(X + i * ldx + k, r);
      for (int j = 0; j < nr; j++) acc[i][j] = _mm256_fmadd_ps(x, w[j], acc[i][j]);
    }
  }
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nr; j++) Y[i * ldy + j] += hsum(acc[i][j]);
}

template <int mr, class WT>
void micro_n(int nr, const float* X, int64_t ldx, const WT* W, int64_t ldw, int64_t kc, float* Y, int64_t ldy) {
  if (nr == 3) micro<mr, 3>(X, ldx, W, ldw, kc, Y, ldy);
  else if (nr == 2) micro<mr, 2>(X, ldx, W, ldw, kc, Y, ldy);
  else micro<mr, 1>(X, ldx, W, ldw, kc, Y, ldy);
}

// Y[M, nrows] += X[M, kc] · W[nrows, kc]^T with every register tile.
// fp32 weights (panels, and fp32 rows read in place) take the AVX-512 tile (gemm_avx512.cpp) when zmm_kernels() says.
template <class WT>
void tiles(const float* X, int64_t ldx, int64_t M, const WT* W, int64_t ldw, int64_t nrows, int64_t kc, float* Y,
           int64_t ldy) {
  if constexpr (std::is_same_v<WT, float>) {
    switch (zmm_kernels()) {
      case Zmm::Native: return avx512::tiles_f32(X, ldx, M, W, ldw, nrows, kc, Y, ldy);
      case Zmm::Emulated: return avx512_emu::tiles_f32(X, ldx, M, W, ldw, nrows, kc, Y, ldy);
      default: break;
    }
  }
  for (int64_t m = 0; m < M; m += MR) {
    const int mr = (int)std::min<int64_t>(MR, M - m);
    const float* x = X + m * ldx;
    float* y = Y + m * ldy;
    for (int64_t j = 0; j < nrows; j += NR) {
      const int nr = (int)std::min<int64_t>(NR, nrows - j);
      const WT* w = W + j * ldw;
      switch (mr) {
        case 4: micro_n<4>(nr, x, ldx, w, ldw, kc, y + j, ldy); break;
        case 3: micro_n<3>(nr, x, ldx, w, ldw, kc, y + j, ldy); break;
        case 2: micro_n<2>(nr, x, ldx, w, ldw, kc, y + j, ldy); break;
        default: micro_n<1>(nr, x, ldx, w, ldw, kc, y + j, ldy); break;
      }
    }
  }
}

// Block sizes: NB rows of W (a multiple of NR) x KC inputs. fp32 KC x NB = 512 x 48 x 4 B = 96 KiB sits in L2
// (512 KiB a core here) while X's 4-row tile (8 KiB) sits in L1. Small M reads W once anyway: no K blocking then,
// which saves the horizontal sums.
constexpr int64_t NB = 48;
constexpr int64_t KC = 512;
constexpr int64_t KCP = KC + 16;  // panel row stride (floats): skewed by 64 bytes against L1 set aliasing

inline void init_y(float* Y, int64_t M, int64_t N, const float* bias, int64_t n0, int64_t n1) {
  for (int64_t m = 0; m < M; m++)
    for (int64_t n = n0; n < n1; n++) Y[m * N + n] = bias ? bias[n] : 0.f;
}

// X as fp32 (converted from bf16 when needed) with rows of ld >= K floats, zero past K.
struct XF32 {
  aligned_vector<float> buf;
  const float* p = nullptr;
  int64_t ld = 0;
  // pad_to: row length rounded up to a multiple of it; skew: extra floats a row, so that rows whose length is a
  // multiple of 4 KiB do not all map to the same L1 sets (K = 4096 fp32 rows are 16 KiB apart).
  // copy: always own a copy (a kernel transforms it in place).
  XF32(const void* X, DType t, int64_t M, int64_t K, int64_t pad_to, int64_t skew = 0, bool copy = false) {
    const int64_t Kp = (K + pad_to - 1) / pad_to * pad_to + skew;
    if (t == DType::F32 && Kp == K && !copy) { p = static_cast<const float*>(X); ld = K; return; }
    buf.assign((size_t)(M * Kp), 0.f);
    for (int64_t m = 0; m < M; m++) {
      float* d = buf.data() + m * Kp;
      if (t == DType::F32) std::memcpy(d, static_cast<const float*>(X) + m * K, sizeof(float) * K);
      else {
        const uint16_t* s = static_cast<const uint16_t*>(X) + m * K;
        int64_t k = 0;
        for (; k + 8 <= K; k += 8)
          _mm256_storeu_ps(d + k, _mm256_castsi256_ps(_mm256_slli_epi32(
                                      _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)(s + k))), 16)));
        for (; k < K; k++) d[k] = bf16_to_f32(s[k]);
      }
    }
    p = buf.data();
    ld = Kp;
  }
};

template <class WT>
void dense_rows(const float* X, int64_t ldx, int64_t M, const WT* W, int64_t K, int64_t n0, int64_t n1, float* Y,
                int64_t N) {
  if (M <= MR) {  // GEMV-like: memory bound, W streamed once in place
    for (int64_t nb = n0; nb < n1; nb += NB) tiles(X, ldx, M, W + nb * K, K, std::min(NB, n1 - nb), K, Y + nb, N);
    return;
  }
  // Each NB x KC block of W is copied (converted to fp32) into a panel with skewed rows, then meets every row tile of
  // X: in place, rows K floats apart would alias in L1 whenever K is a multiple of 1024.
  thread_local std::vector<float> tls_panel;  // reused across calls: no large allocation (and page faults) per block
  std::vector<float>& panel = detail::tls_once(tls_panel);
  panel.resize((size_t)(NB * KCP));
  for (int64_t nb = n0; nb < n1; nb += NB) {
    const int64_t nrows = std::min(NB, n1 - nb);
    for (int64_t k0 = 0; k0 < K; k0 += KC) {
      const int64_t kc = std::min(KC, K - k0);
      for (int64_t r = 0; r < nrows; r++) {
        const WT* w = W + (nb + r) * K + k0;
        float* p = panel.data() + r * KCP;
        int64_t k = 0;
        for (; k + 8 <= kc; k += 8) _mm256_storeu_ps(p + k, load8(w + k));
        if (k < kc) _mm256_storeu_ps(p + k, load_tail(w + k, (int)(kc - k)));
      }
      tiles(X + k0, ldx, M, panel.data(), KCP, nrows, kc, Y + nb, N);
    }
  }
}

// ── packed-code unpacking: 32 codes of one chunk -> 4 fp32 vectors (codes 0-7, 8-15, 16-23, 24-31) ──────────
template <int BITS>
inline void unpack32(const uint8_t* c, __m256 q[4]) {
  if constexpr (BITS == 8) {
    for (int s = 0; s < 4; s++)
      q[s] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(c + 8 * s))));
  } else if constexpr (BITS == 4) {
    // Byte j holds codes j (low nibble) and j + 16 (high nibble): widen 8 bytes to dwords, then mask / shift.
    const __m256i d0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)c));
    const __m256i d1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(c + 8)));
    const __m256i m4 = _mm256_set1_epi32(0x0F);
    q[0] = _mm256_cvtepi32_ps(_mm256_and_si256(d0, m4));
    q[1] = _mm256_cvtepi32_ps(_mm256_and_si256(d1, m4));
    q[2] = _mm256_cvtepi32_ps(_mm256_srli_epi32(d0, 4));
    q[3] = _mm256_cvtepi32_ps(_mm256_srli_epi32(d1, 4));
  } else if constexpr (BITS == 6) {
    // A 4-bit chunk of the low nibbles (bytes 0..15), then a 2-bit chunk of the high two bits (bytes 16..23), both
    // in the same code order: q = lo + 16 hi, exact in fp32 (codes < 64).
    __m256 hi[4];
    unpack32<4>(c, q);
    unpack32<2>(c + 16, hi);
    const __m256 sixteen = _mm256_set1_ps(16.f);
    for (int s = 0; s < 4; s++) q[s] = _mm256_fmadd_ps(hi[s], sixteen, q[s]);
  } else {
    // 2-bit: byte j (< 8) holds codes j, j+8, j+16, j+24 at bit offsets 0, 2, 4, 6. 3-bit adds bit 2 of code j
    // from bit j of the little-endian uint32 in bytes 8..11.
    const __m256i d = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)c));
    const __m256i m2 = _mm256_set1_epi32(3);
    __m256i lo[4] = {_mm256_and_si256(d, m2), _mm256_and_si256(_mm256_srli_epi32(d, 2), m2),
                     _mm256_and_si256(_mm256_srli_epi32(d, 4), m2), _mm256_srli_epi32(d, 6)};
    if constexpr (BITS == 3) {
      // Lane j of vector s needs bit 8s + j of hb moved to bit 2: shift right by 8s + j - 2 (by j after a left
      // shift of 2 for s = 0).
      int32_t hb;
      std::memcpy(&hb, c + 8, 4);
      const __m256i hv = _mm256_set1_epi32(hb), four = _mm256_set1_epi32(4);
      lo[0] = _mm256_or_si256(lo[0], _mm256_and_si256(_mm256_srlv_epi32(_mm256_slli_epi32(hv, 2),
                                                                         _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)), four));
      lo[1] = _mm256_or_si256(lo[1], _mm256_and_si256(_mm256_srlv_epi32(hv, _mm256_setr_epi32(6, 7, 8, 9, 10, 11, 12, 13)), four));
      lo[2] = _mm256_or_si256(lo[2], _mm256_and_si256(_mm256_srlv_epi32(hv, _mm256_setr_epi32(14, 15, 16, 17, 18, 19, 20, 21)), four));
      lo[3] = _mm256_or_si256(lo[3], _mm256_and_si256(_mm256_srlv_epi32(hv, _mm256_setr_epi32(22, 23, 24, 25, 26, 27, 28, 29)), four));
    }
    for (int s = 0; s < 4; s++) q[s] = _mm256_cvtepi32_ps(lo[s]);
  }
}

inline float scale_at(const void* scales, DType t, int64_t i) {
  switch (t) {
    case DType::F16: return _cvtsh_ss(static_cast<const uint16_t*>(scales)[i]);
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(scales)[i]);
    default: return static_cast<const float*>(scales)[i];
  }
}

// ── quantized GEMV: rows [n0, n1) for M <= kGemvMaxM, group_size % 32 == 0 ────────────────────────────────────
// X[M, ldx] fp32 padded with zeros to whole chunks, in the form unpack32_gemv expects (xform_gemv_x); gsum[M, G]
// the per-group sums of the original X. CPG: chunks per group when known at compile time (1, 2, 4 for groups of
// 32, 64, 128: the inner loop unrolls), else 0.
//
// Cost model (Zen 3 target, single thread, see docs/gemv.md): from cache the 4-bit GEMV is bound by vector
// instructions per code (a chunk of 32 codes costs 2 vpmovzxbd + 2 shifts + 4 vcvtdq2ps + 4 FMAs per X row, ~2 a
// cycle); from DRAM one thread reaches only ~60% of its cache rate. So:
//  - 4-bit codes are not masked: with d = lo + 16 hi (the whole byte), x_j lo_j + x_{j+16} hi_j =
//    x_j d_j + (x_{j+16} - 16 x_j) hi_j, so X is transformed once per call (xform_gemv_x) and the two vpand per
//    chunk go away (-14% instructions).
//  - M = 3, 4: 2 rows of W share a pass and its X loads (GemvShape),
//  - the codes of the next pass (R rows ahead, same offset) are prefetched (+17-40% for w8 from L3/DRAM).
template <int BITS>
inline void unpack32_gemv(const uint8_t* c, __m256 q[4]) {
  if constexpr (BITS == 4) {
    const __m256i d0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)c));
    const __m256i d1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(c + 8)));
    q[0] = _mm256_cvtepi32_ps(d0);  // whole bytes: pair with x[0..15] (untransformed)
    q[1] = _mm256_cvtepi32_ps(d1);
    q[2] = _mm256_cvtepi32_ps(_mm256_srli_epi32(d0, 4));  // high nibbles: pair with x[16..31] - 16 x[0..15]
    q[3] = _mm256_cvtepi32_ps(_mm256_srli_epi32(d1, 4));
  } else {
    unpack32<BITS>(c, q);
  }
}

// In place: the transformed X of unpack32_gemv (4-bit only) over whole chunks of each of M rows (stride ld).
inline void xform_gemv_x(int bits, float* X, int64_t M, int64_t ld, int64_t chunks) {
  if (bits != 4) return;
  const __m256 sixteen = _mm256_set1_ps(16.f);
  for (int64_t m = 0; m < M; m++)
    for (int64_t c = 0; c < chunks; c++) {
      float* x = X + m * ld + c * kChunk;
      for (int h = 0; h < 16; h += 8)
        _mm256_storeu_ps(x + 16 + h, _mm256_fnmadd_ps(sixteen, _mm256_loadu_ps(x + h), _mm256_loadu_ps(x + 16 + h)));
    }
}

// The G scales of row n as fp32 (out[G]): broadcast from memory once per group instead of converted there.
inline void row_scales_f32(const QuantWeight& W, int64_t n, float* out) {
  const int64_t G = W.groups();
  int64_t g = 0;
  if (W.fmt.scale_dtype == DType::F16) {
    const uint16_t* s = static_cast<const uint16_t*>(W.scales) + n * G;
    for (; g + 8 <= G; g += 8) _mm256_storeu_ps(out + g, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(s + g))));
  } else if (W.fmt.scale_dtype == DType::F32) {
    std::memcpy(out, static_cast<const float*>(W.scales) + n * G, sizeof(float) * G);
    return;
  }
  for (; g < G; g++) out[g] = scale_at(W.scales, W.fmt.scale_dtype, n * G + g);
}

// Zero-point correction of one row: sum_g s[g] * z[g] * gsum[g] (z = 2^(bits-1) when symmetric).
inline float zero_corr(const float* s, const uint8_t* z, float zsym, const float* gsum, int64_t G) {
  __m256 acc = _mm256_setzero_ps();
  int64_t g = 0;
  if (z) {
    for (; g + 8 <= G; g += 8) {
      const __m256 zv = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(z + g))));
      acc = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(s + g), zv), _mm256_loadu_ps(gsum + g), acc);
    }
  } else {
    const __m256 zv = _mm256_set1_ps(zsym);
    for (; g + 8 <= G; g += 8)
      acc = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(s + g), zv), _mm256_loadu_ps(gsum + g), acc);
  }
  float r = hsum(acc);
  for (; g < G; g++) r += s[g] * (z ? (float)z[g] : zsym) * gsum[g];
  return r;
}

// R rows of W a pass, A accumulators per (row of W, row of X). M = 1, 2: one row a pass (a single sequential stream of
// codes per thread: two interleaved rows were faster from cache but ~30% slower from DRAM, single thread); M = 3, 4:
// two rows share every load of X (+15-35% cache-resident, neutral from DRAM). Up to
// M = 4 the per-group sums are vectors (yacc; the compiler keeps some of them on the stack between groups, once per
// group); beyond, they are reduced to scalars once per group so that the accumulators fit the 16 ymm registers.
template <int BITS, int M>
struct GemvShape {
  static constexpr int R = M >= 3 && M <= 4 ? 2 : 1;
  static constexpr int A = M == 1 ? 4 : M <= 2 ? 2 : 1;
  static constexpr bool kVecY = M <= 4;
};

template <int BITS, int M, int CPG, int R>
void gemv_q_pass(const QuantWeight& W, const float* X, int64_t ldx, const float* gsum, const float* bias, float* Y,
                 int64_t n) {
  using S = GemvShape<BITS, M>;
  constexpr int A = S::A;
  constexpr bool kVecY = S::kVecY;
  const int64_t G = W.groups(), stride = W.stride(), chunks = chunks_per_row(W.K);
  const int64_t cpg = CPG ? CPG : W.fmt.group_size / kChunk;  // chunks per group
  constexpr int64_t cb = (int64_t)chunk_bytes(BITS);
  // A prefetch every 64-byte line of codes (3-bit chunks are 12 bytes: every 4 chunks, a line and a bit).
  constexpr int64_t kPfEvery = BITS == 3 ? 4 : 64 / cb;
  const int64_t pf_ahead = R * stride;  // the same offset in the next pass's rows
  const float zsym = (float)(1 << (BITS - 1));
  const uint8_t* row = W.codes + n * stride;
  thread_local std::vector<float> tls_scale_buf;
  std::vector<float>& scale_buf = detail::tls_once(tls_scale_buf);
  scale_buf.resize((size_t)(R * G));
  float* sc = scale_buf.data();  // [R, G] fp32 scales of the pass's rows
  for (int r = 0; r < R; r++) row_scales_f32(W, n + r, sc + r * G);
  __m256 yacc[R][kVecY ? M : 1];
  float ys[R][M];
  for (int r = 0; r < R; r++) {
    for (int m = 0; m < M; m++) ys[r][m] = 0.f;
    for (int m = 0; m < (kVecY ? M : 1); m++) yacc[r][m] = _mm256_setzero_ps();
  }
  for (int64_t g = 0; g < G; g++) {
    const int64_t c0 = g * cpg, c1 = CPG && g + 1 < G ? c0 + CPG : std::min(chunks, c0 + cpg);
    __m256 acc[R][M][A];
    for (int r = 0; r < R; r++)
      for (int m = 0; m < M; m++)
        for (int a = 0; a < A; a++) acc[r][m][a] = _mm256_setzero_ps();
    auto chunk = [&](int64_t c) {
      const float* xc = X + c * kChunk;
      for (int r = 0; r < R; r++) {
        __m256 q[4];
        unpack32_gemv<BITS>(row + r * stride + c * cb, q);
        for (int m = 0; m < M; m++)
          for (int s = 0; s < 4; s++)
            acc[r][m][s % A] = _mm256_fmadd_ps(q[s], _mm256_loadu_ps(xc + m * ldx + 8 * s), acc[r][m][s % A]);
      }
    };
    auto prefetch = [&](int64_t c) {
      for (int r = 0; r < R; r++) _mm_prefetch((const char*)(row + r * stride + c * cb + pf_ahead), _MM_HINT_T0);
    };
    if (CPG && c1 - c0 == CPG) {
      // A whole group of a compile-time size: fully unrolled, one prefetch a 64-byte line.
      for (int cc = 0; cc < CPG; cc++) {
        if ((cc * cb) % 64 < cb) prefetch(c0 + cc);
        chunk(c0 + cc);
      }
    } else {
      for (int64_t c = c0; c < c1; c++) {
        if (c % kPfEvery == 0) prefetch(c);
        chunk(c);
      }
    }
    for (int r = 0; r < R; r++) {
      const __m256 sv = _mm256_broadcast_ss(sc + r * G + g);
      for (int m = 0; m < M; m++) {
        __m256 a = acc[r][m][0];
        for (int j = 1; j < A; j++) a = _mm256_add_ps(a, acc[r][m][j]);
        if constexpr (kVecY) yacc[r][m] = _mm256_fmadd_ps(a, sv, yacc[r][m]);
        else ys[r][m] += sc[r * G + g] * hsum(a);
      }
    }
  }
  for (int r = 0; r < R; r++) {
    const float b = bias ? bias[n + r] : 0.f;
    const uint8_t* z = W.fmt.symmetric ? nullptr : W.zeros + (n + r) * G;
    for (int m = 0; m < M; m++)
      Y[m * W.N + n + r] = (kVecY ? hsum(yacc[r][m]) : ys[r][m]) - zero_corr(sc + r * G, z, zsym, gsum + m * G, G) + b;
  }
}

template <int BITS, int M, int CPG>
void gemv_q_rows(const QuantWeight& W, const float* X, int64_t ldx, const float* gsum, const float* bias, float* Y,
                 int64_t n0, int64_t n1) {
  constexpr int R = GemvShape<BITS, M>::R;
  int64_t n = n0;
  for (; n + R <= n1; n += R) gemv_q_pass<BITS, M, CPG, R>(W, X, ldx, gsum, bias, Y, n);
  for (; n < n1; n++) gemv_q_pass<BITS, M, CPG, 1>(W, X, ldx, gsum, bias, Y, n);
}

// ── exact 4- and 2-bit GEMV at M = 1 on integer products (GemvKernel::Int, cpu_features.h; docs/gemv.md) ────────
// X is held per group g as integers: x_k ~ 2^E_g n_k, n_k = round(x_k 2^-E_g) with |n_k| < 2^25 (E_g from the group's
// largest |x|). Every x_k within a factor 4 of its group's largest is exact (its 24-bit mantissa fits); the others are
// off by at most 2^-26 of it. Byte j of a chunk holds codes j (low nibble) and j + 16 (high nibble); as in the fp32
// kernel, n_j lo_j + n_{j+16} hi_j = n_j b_j + n'_j hi_j with b_j the whole byte and n'_j = n_{j+16} - 16 n_j (exact in
// integers, |n'| < 17 * 2^25 < 2^30), so no mask is needed. n and n' are split as 2^15 h + l, h in [-2^15, 2^15), l in
// [0, 2^15), and held as int16.
// Per chunk of 32 codes: vpmovzxbw (16 bytes -> 16 words b), vpsrlw (hi), 4 vpmaddwd (16 codes x 16 pieces, pair sums
// in int32 lanes), 4 vpaddd: 10 vector instructions, none a conversion. The fp32 kernel's 12 are 2 vpmovzxbd, 2 shifts,
// 4 vcvtdq2ps and 4 FMAs. From L1, one Zen 3 core: 38.5 vs 25.6 Gcode/s (bench_isa_rates-style loops, docs/gemv.md).
// Lanes: a vpmaddwd lane is at most 2 * 255 * 2^15 < 2^24 in magnitude, two a chunk per accumulator: the integer sums
// are flushed to fp32 every kGemvIntFlushChunks chunks (< 2^31). Per group: y += s_g 2^E_g (2^15 sum(h c) + sum(l c)).
// 2-bit (groups of an even number of chunks): the same with b >> 2s for s = 0..3 and n' = n_{j+8s} - 4 n_{j+8s-8},
// |n| < 2^27 (|n'| < 5 * 2^27), over pairs of chunks (16 bytes -> 16 words): 20 instructions per 64 codes, against
// ~16 per 32 in the fp32 kernel.
constexpr int64_t kGemvIntFlushChunks = 64;
constexpr int64_t kGemvInt2FlushPairs = 16;  // 2-bit: four vpmaddwd lanes below 2^24 a pair of chunks
constexpr int64_t kGemvIntL1Chunks = 192;  // X of up to 24 KiB stays in L1 (32 KiB)

struct GemvXi {
  // 4-bit: [chunks][64]: h of n_0..15, l of n_0..15, h of n'_0..15, l of n'_0..15.
  // 2-bit: [pairs of chunks][4 shifts][h, l][16]: words 0-7 chunk 2p's n'_{8s..8s+7}, words 8-15 chunk 2p + 1's.
  // 4-bit, zmm layout (zmm, for gemm_avx512.cpp's gemv_qi4): [pairs of chunks][h n, l n, h n', l n'][32]: words 0-15
  // chunk 2p's, 16-31 chunk 2p + 1's (0 for a missing last chunk).
  aligned_vector<int16_t> x;
  std::vector<float> f;    // [G] 2^E_g
  Zmm zmm = Zmm::None;  // which zmm kernel takes this X (4-bit; None: the ymm one), fixed when X is built
};

// Rows [n, n + R) of Y: R rows a pass share every load of X. scf: [R][G] scratch.
template <int BITS, int CPG, int R>
void gemv_qi_pass(const QuantWeight& W, const GemvXi& xi, const float* gsum, const float* bias, float* Y, int64_t n,
                  float* scf) {
  static_assert(BITS == 4 || (BITS == 2 && R == 1), "integer GEMV: 4-bit (1, 2 or, on zmm, 4 rows a pass) or 2-bit (1)");
  const int64_t G = W.groups(), stride = W.stride(), chunks = chunks_per_row(W.K);
  const int64_t cpg = CPG ? CPG : W.fmt.group_size / kChunk;
  const int64_t pf_dist = R * stride;  // the next pass's rows
  const __m256 two15 = _mm256_set1_ps(32768.f), zsym = _mm256_set1_ps((float)(1 << (BITS - 1)));
  const int16_t* X = xi.x.data();
  __m256 yacc[R], zc[R];
  for (int r = 0; r < R; r++) {
    // One pass over the row's groups: scf = s 2^E, and the zero-point correction sum_g s_g z_g gsum_g in lanes (what
    // row_scales_f32 + zero_corr compute, fused: those two and a multiply loop ran 5% slower at K = 4096, one thread).
    const int64_t nr = n + r;
    const uint8_t* z = W.fmt.symmetric ? nullptr : W.zeros + nr * G;
    float* sf = scf + r * G;
    zc[r] = yacc[r] = _mm256_setzero_ps();
    for (int64_t j = 0; j < G; j += 8) {
      const int64_t len = std::min<int64_t>(8, G - j);
      alignas(32) float s8[8], z8[8], f8[8], g8[8];
      __m256 sv, zv = zsym, fv, gv;
      if (len == 8) {
        if (W.fmt.scale_dtype == DType::F16)
          sv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(static_cast<const uint16_t*>(W.scales) + nr * G + j)));
        else if (W.fmt.scale_dtype == DType::F32)
          sv = _mm256_loadu_ps(static_cast<const float*>(W.scales) + nr * G + j);
        else {
          for (int i = 0; i < 8; i++) s8[i] = scale_at(W.scales, W.fmt.scale_dtype, nr * G + j + i);
          sv = _mm256_load_ps(s8);
        }
        if (z) zv = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(z + j))));
        fv = _mm256_loadu_ps(xi.f.data() + j);
        gv = _mm256_loadu_ps(gsum + j);
        _mm256_storeu_ps(sf + j, _mm256_mul_ps(sv, fv));
      } else {  // the last groups: lanes past len stay 0
        for (int64_t i = 0; i < 8; i++) {
          s8[i] = i < len ? scale_at(W.scales, W.fmt.scale_dtype, nr * G + j + i) : 0.f;
          z8[i] = i < len ? (z ? (float)z[j + i] : (float)(1 << (BITS - 1))) : 0.f;
          f8[i] = i < len ? xi.f[j + i] : 0.f;
          g8[i] = i < len ? gsum[j + i] : 0.f;
        }
        sv = _mm256_load_ps(s8);
        zv = _mm256_load_ps(z8);
        fv = _mm256_load_ps(f8);
        gv = _mm256_load_ps(g8);
        _mm256_store_ps(s8, _mm256_mul_ps(sv, fv));
        std::memcpy(sf + j, s8, sizeof(float) * len);
      }
      zc[r] = _mm256_fmadd_ps(_mm256_mul_ps(sv, zv), gv, zc[r]);
    }
  }
  const uint8_t* row = W.codes + n * stride;
  if (BITS == 4 && xi.zmm != Zmm::None) {  // the zmm kernel (gemm_avx512.cpp), same prep and zero-point term
    float ys[R];
    if (xi.zmm == Zmm::Native) avx512::gemv_qi4(R, row, stride, chunks, G, cpg, X, scf, ys);
    else avx512_emu::gemv_qi4(R, row, stride, chunks, G, cpg, X, scf, ys);
    for (int r = 0; r < R; r++) Y[n + r] = ys[r] - hsum(zc[r]) + (bias ? bias[n + r] : 0.f);
    return;
  }
  if (R > 2) throw std::logic_error("gemv_qi_pass: four rows a pass only on zmm");
  if constexpr (BITS == 2) {
    // Pairs of chunks (16 bytes): byte j of chunk c holds codes j, j+8, j+16, j+24 at bits 0, 2, 4, 6, so with
    // b = the whole byte, sum_s n_{j+8s} c_{j+8s} = sum_s n'_{j+8s} (b >> 2s), n' = n_{j+8s} - 4 n_{j+8s-8} (GemvXi).
    __m256 y = yacc[0];
    const int64_t npairs = (chunks + 1) / 2;
    for (int64_t g = 0; g < G; g++) {
      const int64_t c0 = g * cpg, c1 = CPG && g + 1 < G ? c0 + CPG : std::min(chunks, c0 + cpg);
      const int64_t p0 = c0 / 2, p1 = (c1 + 1) / 2;
      __m256i ah = _mm256_setzero_si256(), al = ah;
      __m256 t;
      auto pair = [&](int64_t p, bool last) {
        // The row's last chunk alone (odd chunk count): 8 bytes, the other half of the words 0.
        const __m256i w = _mm256_cvtepu8_epi16(last && p + 1 == npairs && chunks % 2
                                                   ? _mm_loadl_epi64((const __m128i*)(row + p * 16))
                                                   : _mm_loadu_si128((const __m128i*)(row + p * 16)));
        const __m256i s1 = _mm256_srli_epi16(w, 2), s2 = _mm256_srli_epi16(w, 4), s3 = _mm256_srli_epi16(w, 6);
        const __m256i* x = (const __m256i*)(X + p * 128);
        ah = _mm256_add_epi32(ah, _mm256_madd_epi16(w, _mm256_load_si256(x)));
        al = _mm256_add_epi32(al, _mm256_madd_epi16(w, _mm256_load_si256(x + 1)));
        ah = _mm256_add_epi32(ah, _mm256_madd_epi16(s1, _mm256_load_si256(x + 2)));
        al = _mm256_add_epi32(al, _mm256_madd_epi16(s1, _mm256_load_si256(x + 3)));
        ah = _mm256_add_epi32(ah, _mm256_madd_epi16(s2, _mm256_load_si256(x + 4)));
        al = _mm256_add_epi32(al, _mm256_madd_epi16(s2, _mm256_load_si256(x + 5)));
        ah = _mm256_add_epi32(ah, _mm256_madd_epi16(s3, _mm256_load_si256(x + 6)));
        al = _mm256_add_epi32(al, _mm256_madd_epi16(s3, _mm256_load_si256(x + 7)));
        asm("" : "+x"(ah), "+x"(al));
      };
      if (CPG && c1 - c0 == CPG) {  // a whole group of a compile-time size (an even number of chunks): unrolled
        for (int pp = 0; pp < CPG / 2; pp++) {
          if ((p0 + pp) % 4 == 0) _mm_prefetch((const char*)(row + (p0 + pp) * 16 + pf_dist), _MM_HINT_T0);
          pair(p0 + pp, false);
        }
        t = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ah), two15, _mm256_cvtepi32_ps(al));
      } else {
        t = _mm256_setzero_ps();
        for (int64_t p = p0; p < p1; p++) {
          if (p % 4 == 0) _mm_prefetch((const char*)(row + p * 16 + pf_dist), _MM_HINT_T0);
          pair(p, true);
          if ((p - p0) % kGemvInt2FlushPairs == kGemvInt2FlushPairs - 1 || p + 1 == p1) {
            t = _mm256_add_ps(t, _mm256_fmadd_ps(_mm256_cvtepi32_ps(ah), two15, _mm256_cvtepi32_ps(al)));
            ah = al = _mm256_setzero_si256();
          }
        }
      }
      y = _mm256_fmadd_ps(t, _mm256_broadcast_ss(scf + g), y);
    }
    Y[n] = hsum(_mm256_sub_ps(y, zc[0])) + (bias ? bias[n] : 0.f);
    return;
  }
  // Named accumulators (rows 0, 1): arrays indexed in the loops below were kept in memory by GCC.
  __m256 y0 = yacc[0], y1 = yacc[R - 1];
  for (int64_t g = 0; g < G; g++) {
    const int64_t c0 = g * cpg, c1 = CPG && g + 1 < G ? c0 + CPG : std::min(chunks, c0 + cpg);
    __m256i ah0 = _mm256_setzero_si256(), al0 = ah0, ah1 = ah0, al1 = ah0;
    auto chunk = [&](int64_t c) {
      const __m256i* x = (const __m256i*)(X + c * 64);
      if constexpr (R == 1) {
        const __m256i w = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i*)(row + c * 16)));
        const __m256i hi = _mm256_srli_epi16(w, 4);
        ah0 = _mm256_add_epi32(ah0, _mm256_madd_epi16(w, _mm256_load_si256(x)));
        al0 = _mm256_add_epi32(al0, _mm256_madd_epi16(w, _mm256_load_si256(x + 1)));
        ah0 = _mm256_add_epi32(ah0, _mm256_madd_epi16(hi, _mm256_load_si256(x + 2)));
        al0 = _mm256_add_epi32(al0, _mm256_madd_epi16(hi, _mm256_load_si256(x + 3)));
        // Keeps the chunk's adds in order: GCC otherwise hoists every load of the group and reassociates the adds
        // into trees that need more than 16 registers (spills).
        asm("" : "+x"(ah0), "+x"(al0));
      } else {
        // Two rows: X in 4 registers, loaded once. Written in asm: GCC kept this body's accumulators in memory.
#define Q4I_LOADX                   \
  "vmovdqa (%[x]), %[x0]\n\t"       \
  "vmovdqa 32(%[x]), %[x1]\n\t"     \
  "vmovdqa 64(%[x]), %[x2]\n\t"     \
  "vmovdqa 96(%[x]), %[x3]\n\t"
#define Q4I_ROW(addr, AH, AL)                 \
  "vpmovzxbw " addr ", %[w]\n\t"              \
  "vpsrlw $4, %[w], %[h]\n\t"                 \
  "vpmaddwd %[x0], %[w], %[t0]\n\t"           \
  "vpmaddwd %[x2], %[h], %[t1]\n\t"           \
  "vpaddd %[t0], %[" AH "], %[" AH "]\n\t"    \
  "vpaddd %[t1], %[" AH "], %[" AH "]\n\t"    \
  "vpmaddwd %[x1], %[w], %[t0]\n\t"           \
  "vpmaddwd %[x3], %[h], %[t1]\n\t"           \
  "vpaddd %[t0], %[" AL "], %[" AL "]\n\t"    \
  "vpaddd %[t1], %[" AL "], %[" AL "]\n\t"
        const uint8_t* cp = row + c * 16;
        __m256i x0, x1, x2, x3, w, h, t0, t1;
        asm(Q4I_LOADX Q4I_ROW("(%[c])", "ah0", "al0") Q4I_ROW("(%[c], %[st])", "ah1", "al1")
            : [ah0] "+x"(ah0), [al0] "+x"(al0), [ah1] "+x"(ah1), [al1] "+x"(al1), [x0] "=&x"(x0), [x1] "=&x"(x1),
              [x2] "=&x"(x2), [x3] "=&x"(x3), [w] "=&x"(w), [h] "=&x"(h), [t0] "=&x"(t0), [t1] "=&x"(t1)
            : [x] "r"(x), [c] "r"(cp), [st] "r"(stride)
            : "memory");
#undef Q4I_ROW
#undef Q4I_LOADX
      }
    };
    // The next pass's codes at the same offset, one prefetch a 64-byte line (4 chunks).
    auto prefetch = [&](int64_t c) {
      for (int r = 0; r < R; r++) _mm_prefetch((const char*)(row + r * stride + c * 16 + pf_dist), _MM_HINT_T0);
    };
    auto sums = [&](__m256i ah, __m256i al) {
      return _mm256_fmadd_ps(_mm256_cvtepi32_ps(ah), two15, _mm256_cvtepi32_ps(al));
    };
    __m256 t0, t1;  // the group's sums in fp32
    if (CPG && c1 - c0 == CPG) {
      for (int cc = 0; cc < CPG; cc++) {
        if ((c0 + cc) % 4 == 0) prefetch(c0 + cc);
        chunk(c0 + cc);
      }
      t0 = sums(ah0, al0);
      t1 = sums(ah1, al1);
    } else {
      t0 = t1 = _mm256_setzero_ps();
      for (int64_t c = c0; c < c1; c++) {
        if (c % 4 == 0) prefetch(c);
        chunk(c);
        if ((c - c0) % kGemvIntFlushChunks == kGemvIntFlushChunks - 1 || c + 1 == c1) {
          t0 = _mm256_add_ps(t0, sums(ah0, al0));
          t1 = _mm256_add_ps(t1, sums(ah1, al1));
          ah0 = al0 = ah1 = al1 = _mm256_setzero_si256();
        }
      }
    }
    y0 = _mm256_fmadd_ps(t0, _mm256_broadcast_ss(scf + g), y0);
    if constexpr (R == 2) y1 = _mm256_fmadd_ps(t1, _mm256_broadcast_ss(scf + G + g), y1);
  }
  yacc[0] = y0;
  yacc[R - 1] = R == 2 ? y1 : y0;
  for (int r = 0; r < R; r++) Y[n + r] = hsum(_mm256_sub_ps(yacc[r], zc[r])) + (bias ? bias[n + r] : 0.f);
}

// R = 2 when X (128 bytes a chunk) does not fit in L1 beside the codes: each row of W then costs half the X traffic
// from L2 (K = 11008: 39 vs 33 Gcode/s streaming, two threads); with X in L1 one stream of codes a thread is faster
// (K = 4096: 44 vs 40).
template <int BITS, int CPG>
void gemv_qi_rows(const QuantWeight& W, const GemvXi& xi, const float* gsum, const float* bias, float* Y, int64_t n0,
                  int64_t n1) {
  const int64_t G = W.groups();
  thread_local std::vector<float> tls_buf;
  std::vector<float>& scf = detail::tls_once(tls_buf);
  scf.resize((size_t)(4 * G));
  int64_t n = n0;
  if constexpr (BITS == 4)
    if (chunks_per_row(W.K) > kGemvIntL1Chunks) {
      // zmm (32 registers): four rows a pass (K = 11008, two threads, Zen 5: 47 vs 36-40 Gcode/s with two; equal
      // at K = 4096, where one row a pass stays)
      if (xi.zmm != Zmm::None)
        for (; n + 4 <= n1; n += 4) gemv_qi_pass<BITS, CPG, 4>(W, xi, gsum, bias, Y, n, scf.data());
      for (; n + 2 <= n1; n += 2) gemv_qi_pass<BITS, CPG, 2>(W, xi, gsum, bias, Y, n, scf.data());
    }
  for (; n < n1; n++) gemv_qi_pass<BITS, CPG, 1>(W, xi, gsum, bias, Y, n, scf.data());
}

template <int BITS, int CPG>
void gemv_q_dispatch_m(int64_t M, const QuantWeight& W, const float* X, int64_t ldx, const float* gsum,
                       const float* bias, float* Y, int64_t n0, int64_t n1) {
  switch (M) {
    case 1: gemv_q_rows<BITS, 1, CPG>(W, X, ldx, gsum, bias, Y, n0, n1); break;
    case 2: gemv_q_rows<BITS, 2, CPG>(W, X, ldx, gsum, bias, Y, n0, n1); break;
    case 3: gemv_q_rows<BITS, 3, CPG>(W, X, ldx, gsum, bias, Y, n0, n1); break;
    case 4: gemv_q_rows<BITS, 4, CPG>(W, X, ldx, gsum, bias, Y, n0, n1); break;
    case 5: gemv_q_rows<BITS, 5, CPG>(W, X, ldx, gsum, bias, Y, n0, n1); break;
    case 6: gemv_q_rows<BITS, 6, CPG>(W, X, ldx, gsum, bias, Y, n0, n1); break;
    case 7: gemv_q_rows<BITS, 7, CPG>(W, X, ldx, gsum, bias, Y, n0, n1); break;
    default: gemv_q_rows<BITS, 8, CPG>(W, X, ldx, gsum, bias, Y, n0, n1); break;
  }
}

// xi: X as integers (GemvX::xi) when the integer GEMV (4- or 2-bit) takes this call, else null.
template <int BITS>
void gemv_q_dispatch(int64_t M, const QuantWeight& W, const float* X, int64_t ldx, const float* gsum,
                     const GemvXi* xi, const float* bias, float* Y, int64_t n0, int64_t n1) {
  if (avx512::gemv_q_takes(BITS, M) && !xi) {  // same X / gsum, zmm kernel (gemm_avx512.cpp)
    switch (zmm_kernels()) {
      case Zmm::Native: return avx512::gemv_q_rows(M, W, X, ldx, gsum, bias, Y, n0, n1);
      case Zmm::Emulated: return avx512_emu::gemv_q_rows(M, W, X, ldx, gsum, bias, Y, n0, n1);
      default: break;
    }
  }
  if constexpr (BITS == 2 || BITS == 4) {
    if (xi) {
      switch (W.fmt.group_size) {
        case 32: return gemv_qi_rows<BITS, BITS == 4 ? 1 : 0>(W, *xi, gsum, bias, Y, n0, n1);
        case 64: return gemv_qi_rows<BITS, 2>(W, *xi, gsum, bias, Y, n0, n1);
        case 128: return gemv_qi_rows<BITS, 4>(W, *xi, gsum, bias, Y, n0, n1);
        default: return gemv_qi_rows<BITS, 0>(W, *xi, gsum, bias, Y, n0, n1);
      }
    }
  }
  switch (W.fmt.group_size) {
    case 32: gemv_q_dispatch_m<BITS, 1>(M, W, X, ldx, gsum, bias, Y, n0, n1); break;
    case 64: gemv_q_dispatch_m<BITS, 2>(M, W, X, ldx, gsum, bias, Y, n0, n1); break;
    case 128: gemv_q_dispatch_m<BITS, 4>(M, W, X, ldx, gsum, bias, Y, n0, n1); break;
    default: gemv_q_dispatch_m<BITS, 0>(M, W, X, ldx, gsum, bias, Y, n0, n1); break;
  }
}

// ── dequantization of a block of rows into an fp32 panel ───────────────────────────────────────────────────
// P[r, k - k0] = (q[n0 + r, k] - z) * s for r < nrows, k in [k0, k1); k0 is a multiple of 32. Exactly
// dequantize_ref's values.
template <int BITS>
void dequant_block(const QuantWeight& W, int64_t n0, int64_t nrows, int64_t k0, int64_t k1, float* P, int64_t ldp) {
  const int64_t G = W.groups(), stride = W.stride(), gs = W.fmt.group_size;
  const int64_t cb = (int64_t)chunk_bytes(BITS);
  const float zsym = (float)(1 << (BITS - 1));
  const bool aligned = gs % kChunk == 0;
  alignas(32) float tmp[kChunk];
  for (int64_t r = 0; r < nrows; r++) {
    const int64_t n = n0 + r;
    const uint8_t* row = W.codes + n * stride;
    float* p = P + r * ldp;
    for (int64_t k = k0; k < k1; k += kChunk) {
      __m256 q[4];
      unpack32<BITS>(row + (k / kChunk) * cb, q);
      const int64_t kend = std::min(k1, k + kChunk);
      if (aligned) {
        // One group covers the whole chunk.
        const int64_t g = k / gs;
        const __m256 sv = _mm256_set1_ps(scale_at(W.scales, W.fmt.scale_dtype, n * G + g));
        const __m256 zv = _mm256_set1_ps(W.fmt.symmetric ? zsym : (float)W.zeros[n * G + g]);
        for (int s = 0; s < 4; s++) _mm256_store_ps(tmp + 8 * s, _mm256_mul_ps(_mm256_sub_ps(q[s], zv), sv));
      } else {
        for (int s = 0; s < 4; s++) _mm256_store_ps(tmp + 8 * s, q[s]);
        int64_t g = k / gs;
        float sc = scale_at(W.scales, W.fmt.scale_dtype, n * G + g);
        float z = W.fmt.symmetric ? zsym : (float)W.zeros[n * G + g];
        int64_t gend = (g + 1) * gs;
        for (int64_t kk = k; kk < kend; kk++) {
          if (kk == gend) {
            g++;
            gend += gs;
            sc = scale_at(W.scales, W.fmt.scale_dtype, n * G + g);
            z = W.fmt.symmetric ? zsym : (float)W.zeros[n * G + g];
          }
          tmp[kk - k] = (tmp[kk - k] - z) * sc;
        }
      }
      std::memcpy(p + (k - k0), tmp, sizeof(float) * (kend - k));
    }
  }
}

template <int BITS>
void gemm_q_tiled_rows(const QuantWeight& W, const float* X, int64_t ldx, int64_t M, int64_t n0, int64_t n1,
                       float* Y) {
  const int64_t K = W.K;
  thread_local std::vector<float> tls_panel;
  std::vector<float>& panel = detail::tls_once(tls_panel);
  panel.resize((size_t)(NB * KCP));
  for (int64_t nb = n0; nb < n1; nb += NB) {
    const int64_t nrows = std::min(NB, n1 - nb);
    for (int64_t k0 = 0; k0 < K; k0 += KC) {
      const int64_t kc = std::min(KC, K - k0);
      dequant_block<BITS>(W, nb, nrows, k0, k0 + kc, panel.data(), KCP);
      tiles(X + k0, ldx, M, panel.data(), KCP, nrows, kc, Y + nb, W.N);
    }
  }
}

// General GEMV (group sizes that are not multiples of 32): one row is dequantized into fp32 at a time.
template <int BITS>
void gemv_q_general_rows(const QuantWeight& W, const float* X, int64_t ldx, int64_t M, const float* bias, float* Y,
                         int64_t n0, int64_t n1) {
  const int64_t K = W.K;
  thread_local std::vector<float> tls_wrow;
  std::vector<float>& wrow = detail::tls_once(tls_wrow);
  wrow.resize((size_t)(chunks_per_row(K) * kChunk));
  for (int64_t n = n0; n < n1; n++) {
    dequant_block<BITS>(W, n, 1, 0, K, wrow.data(), 0);
    for (int64_t m = 0; m < M; m++) {
      float y = 0.f;
      micro<1, 1>(X + m * ldx, ldx, wrow.data(), 0, K, &y, 1);
      Y[m * W.N + n] = y + (bias ? bias[n] : 0.f);
    }
  }
}

// The GEMV's view of X (M <= kGemvMaxM, group size a multiple of 32): X in fp32, zero-padded to whole chunks and
// transformed for the BITS kernels, and its group sums. Shared by every weight of that bit width and group size.
template <int BITS>
struct GemvX {
  XF32 x;
  std::vector<float> gsum;  // [M, G]
  GemvX(const void* X, DType x_dtype, int64_t M, int64_t K, int64_t gs)
      : x(X, x_dtype, M, K, kChunk, 0, BITS == 4) {  // padded codes meet x = 0
    const int64_t chunks = chunks_per_row(K), cpg = gs / kChunk, G = (K + gs - 1) / gs;
    gsum.assign((size_t)(M * G), 0.f);
    // Group sums of X over whole chunks (X is zero past K), 8 lanes at a time.
    for (int64_t m = 0; m < M; m++)
      for (int64_t g = 0; g < G; g++) {
        __m256 a = _mm256_setzero_ps(), b = _mm256_setzero_ps();
        for (int64_t c = g * cpg; c < std::min(chunks, (g + 1) * cpg); c++) {
          const float* xc = x.p + m * x.ld + c * kChunk;
          a = _mm256_add_ps(a, _mm256_add_ps(_mm256_loadu_ps(xc), _mm256_loadu_ps(xc + 8)));
          b = _mm256_add_ps(b, _mm256_add_ps(_mm256_loadu_ps(xc + 16), _mm256_loadu_ps(xc + 24)));
        }
        gsum[m * G + g] = hsum(_mm256_add_ps(a, b));
      }
    // The integer GEMV: 4-bit on zmm (gemm_avx512.cpp) when the zmm kernels run and groups start on even chunks,
    // else on ymm; 2-bit (groups of an even number of chunks) on ymm.
    if ((BITS == 4 || (BITS == 2 && cpg % 2 == 0)) && M == 1 && gemv_kernel() == GemvKernel::Int) {
      xi.zmm = BITS == 4 && (cpg % 2 == 0 || G == 1) ? zmm_kernels() : Zmm::None;
      build_xi(cpg, G, chunks);
    }
    // The fp32 kernel's form of X, after the group sums of the original X; not needed when the integer one runs.
    if (!has_xi) xform_gemv_x(BITS, x.buf.data(), M, x.ld, chunks);
  }
  // The integer GEMV's X (GemvXi) for this call, null when it does not take it.
  const GemvXi* int_x() const { return has_xi ? &xi : nullptr; }

 private:
  GemvXi xi;
  bool has_xi = false;

  // Row 0 of the (untransformed) X as per-group integers. Not built (the fp32 kernel takes the call) when X holds an
  // Inf or a NaN (the fp32 kernel propagates them as the reference does) or a group of tiny nonzero values.
  void build_xi(int64_t cpg, int64_t G, int64_t chunks) {
    const float* X = x.p;
    const bool pairs = BITS == 2 || xi.zmm != Zmm::None;  // the layouts of pairs of chunks
    xi.x.resize((size_t)(pairs ? (chunks + 1) / 2 * 128 : chunks * 64));
    xi.f.resize((size_t)G);
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    const __m256i exp_mask = _mm256_set1_epi32(0x7F800000), low15 = _mm256_set1_epi32(0x7FFF);
    for (int64_t g = 0; g < G; g++) {
      const int64_t c0 = g * cpg, c1 = std::min(chunks, c0 + cpg);
      __m256 mx = _mm256_setzero_ps();
      __m256i nonfinite = _mm256_setzero_si256();
      for (int64_t k = c0 * kChunk; k < c1 * kChunk; k += 8) {
        const __m256 v = _mm256_loadu_ps(X + k);
        mx = _mm256_max_ps(mx, _mm256_and_ps(v, abs_mask));
        nonfinite = _mm256_or_si256(nonfinite, _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_castps_si256(v), exp_mask), exp_mask));
      }
      if (!_mm256_testz_si256(nonfinite, nonfinite)) return;  // has_xi stays false
      alignas(32) float m8[8];
      _mm256_store_ps(m8, mx);
      const float m = *std::max_element(m8, m8 + 8);
      int e = 0;
      std::frexp(m, &e);  // m < 2^e
      const int E = m > 0.f ? e - (BITS == 4 ? 25 : 27) : 0;  // |n'| < 17 * 2^25 (4-bit), 5 * 2^27 (2-bit)
      // 2^-E a float and s_g 2^E a normal one: a group whose largest |x| is below 2^-75 (2-bit: 2^-73), but not 0,
      // sends the call to the fp32 kernel.
      if (E < -100) return;
      xi.f[g] = std::ldexp(1.f, E);
      const __m256 inv = _mm256_set1_ps(std::ldexp(1.f, -E));
      // |x 2^-E| < 2^25: an exact scaling, rounded to the nearest integer.
      auto n8 = [&](const float* p) { return _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(p), inv)); };
      // packs interleaves 128-bit lanes (a0-3 b0-3 a4-7 b4-7): permute restores the order. No saturation: h is in
      // [-2^15, 2^15), l in [0, 2^15).
      // h at d, l at d + dl (16 words; zmm layout: 32).
      const int64_t dl = xi.zmm != Zmm::None ? 32 : 16;
      auto store_pieces = [&](__m256i a, __m256i b, int16_t* d) {
        _mm256_store_si256((__m256i*)d, _mm256_permute4x64_epi64(
                                            _mm256_packs_epi32(_mm256_srai_epi32(a, 15), _mm256_srai_epi32(b, 15)), 0xD8));
        _mm256_store_si256((__m256i*)(d + dl), _mm256_permute4x64_epi64(
                                                   _mm256_packs_epi32(_mm256_and_si256(a, low15), _mm256_and_si256(b, low15)), 0xD8));
      };
      if (BITS == 2) {
        // Pair p (chunks 2p, 2p + 1; the group starts on an even chunk), shift s: words 0-7 are chunk 2p's codes
        // 8s..8s+7, words 8-15 chunk 2p + 1's; n' = n_{8s + j} - 4 n_{8s - 8 + j}. A missing chunk 2p + 1 (the row's
        // last, odd) reads as 0.
        for (int64_t c = c0; c < c1; c += 2) {
          __m256i np[2][4];  // [chunk 2p, 2p + 1][shift]
          for (int h = 0; h < 2; h++) {
            if (c + h == c1) {
              for (__m256i& v : np[h]) v = _mm256_setzero_si256();
              continue;
            }
            const float* xs = X + (c + h) * kChunk;
            const __m256i v[4] = {n8(xs), n8(xs + 8), n8(xs + 16), n8(xs + 24)};
            for (int sh = 0; sh < 4; sh++)
              np[h][sh] = sh ? _mm256_sub_epi32(v[sh], _mm256_slli_epi32(v[sh - 1], 2)) : v[0];
          }
          for (int sh = 0; sh < 4; sh++) store_pieces(np[0][sh], np[1][sh], xi.x.data() + (c / 2) * 128 + sh * 32);
        }
        continue;
      }
      for (int64_t c = c0; c < c1; c++) {
        const float* xs = X + c * kChunk;
        const __m256i a0 = n8(xs), a1 = n8(xs + 8), b0 = n8(xs + 16), b1 = n8(xs + 24);
        int16_t* d = xi.zmm != Zmm::None ? xi.x.data() + (c / 2) * 128 + (c % 2) * 16 : xi.x.data() + c * 64;
        store_pieces(a0, a1, d);  // n_j, j < 16: pairs with the whole bytes
        store_pieces(_mm256_sub_epi32(b0, _mm256_slli_epi32(a0, 4)), _mm256_sub_epi32(b1, _mm256_slli_epi32(a1, 4)),
                     d + 2 * dl);  // n'_j = n_{j+16} - 16 n_j: pairs with the high nibbles
      }
      if (xi.zmm != Zmm::None && c1 == chunks && chunks % 2)  // the missing chunk of the row's last pair
        for (int64_t i = 0; i < 4; i++) std::fill_n(xi.x.data() + (chunks / 2) * 128 + i * 32 + 16, 16, int16_t{0});
    }
    has_xi = true;
  }
};

template <int BITS>
void gemm_q_bits(const void* X, DType x_dtype, int64_t M, const QuantWeight& W, const float* bias, float* Y) {
  const int64_t N = W.N, K = W.K;
  const bool aligned = W.fmt.group_size % kChunk == 0;
  if (M <= kGemvMaxM) {
    if (aligned) {
      GemvX<BITS> gx(X, x_dtype, M, K, W.fmt.group_size);
      dynamic_for(N, gemv_block_rows(N, 64), [&](int64_t n0, int64_t n1) {
        gemv_q_dispatch<BITS>(M, W, gx.x.p, gx.x.ld, gx.gsum.data(), gx.int_x(), bias, Y, n0, n1);
      });
    } else {
      XF32 x(X, x_dtype, M, K, kChunk, 0, false);
      dynamic_for(N, 64, [&](int64_t n0, int64_t n1) {
        gemv_q_general_rows<BITS>(W, x.p, x.ld, M, bias, Y, n0, n1);
      });
    }
    return;
  }
  XF32 x(X, x_dtype, M, K, 8, 16);
  dynamic_for(N, 2 * NB, [&](int64_t n0, int64_t n1) {
    init_y(Y, M, N, bias, n0, n1);
    gemm_q_tiled_rows<BITS>(W, x.p, x.ld, M, n0, n1, Y);
  });
}

// ── W4A8 integer core ──────────────────────────────────────────────────────────────────────────────────────
// 4-bit chunks -> plain bytes (one code a byte), for rows [n0, n0 + nrows) and chunks covering [k0, k0 + kc).
void unpack4_block(const QuantWeight& W, int64_t n0, int64_t nrows, int64_t k0, int64_t kc, uint8_t* P, int64_t ldp) {
  const int64_t stride = W.stride();
  const __m128i m4 = _mm_set1_epi8(0x0F);
  for (int64_t r = 0; r < nrows; r++) {
    const uint8_t* row = W.codes + (n0 + r) * stride;
    for (int64_t k = k0; k < k0 + kc; k += kChunk) {
      const __m128i v = _mm_loadu_si128((const __m128i*)(row + (k / kChunk) * 16));
      _mm_storeu_si128((__m128i*)(P + r * ldp + (k - k0)), _mm_and_si128(v, m4));
      _mm_storeu_si128((__m128i*)(P + r * ldp + (k - k0) + 16), _mm_and_si128(_mm_srli_epi16(v, 4), m4));
    }
  }
}


// ── W4A8 with vpmaddubsw ───────────────────────────────────────────────────────────────────────────────────
// acc[m, n] += sum_{k < kc} B[n, k] * A[m, k]; B uint8 codes in [0, 15], A int8. One vpmaddubsw pair sum is at most
// 2 * 15 * 128 = 3840, so 8 of them (30720) accumulate in int16 before one vpmaddwd widens them to int32.
template <int mr, int nr>
void micro_i8(const int8_t* A, int64_t lda, const uint8_t* B, int64_t ldb, int64_t kc, int32_t* C, int64_t ldc) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc32[mr][nr];
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nr; j++) acc32[i][j] = _mm256_setzero_si256();
  for (int64_t k = 0; k < kc;) {
    const int64_t kend = std::min(kc, k + 8 * 32);
    __m256i acc16[mr][nr];
    for (int i = 0; i < mr; i++)
      for (int j = 0; j < nr; j++) acc16[i][j] = _mm256_setzero_si256();
    for (; k < kend; k += 32) {
      __m256i b[nr];
      for (int j = 0; j < nr; j++) b[j] = _mm256_loadu_si256((const __m256i*)(B + j * ldb + k));
      for (int i = 0; i < mr; i++) {
        const __m256i a = _mm256_loadu_si256((const __m256i*)(A + i * lda + k));
        for (int j = 0; j < nr; j++) acc16[i][j] = _mm256_add_epi16(acc16[i][j], _mm256_maddubs_epi16(b[j], a));
      }
    }
    for (int i = 0; i < mr; i++)
      for (int j = 0; j < nr; j++) acc32[i][j] = _mm256_add_epi32(acc32[i][j], _mm256_madd_epi16(acc16[i][j], ones));
  }
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nr; j++) C[i * ldc + j] += hsum_i32(acc32[i][j]);
}

template <int mr>
void micro_i8_n(int nr, const int8_t* A, int64_t lda, const uint8_t* B, int64_t ldb, int64_t kc, int32_t* C,
                int64_t ldc) {
  if (nr == 3) micro_i8<mr, 3>(A, lda, B, ldb, kc, C, ldc);
  else if (nr == 2) micro_i8<mr, 2>(A, lda, B, ldb, kc, C, ldc);
  else micro_i8<mr, 1>(A, lda, B, ldb, kc, C, ldc);
}

void tiles_i8(const int8_t* A, int64_t lda, int64_t M, const uint8_t* B, int64_t ldb, int64_t nrows, int64_t kc,
              int32_t* C, int64_t ldc) {
  for (int64_t m = 0; m < M; m += MR) {
    const int mr = (int)std::min<int64_t>(MR, M - m);
    for (int64_t j = 0; j < nrows; j += NR) {
      const int nr = (int)std::min<int64_t>(NR, nrows - j);
      const int8_t* a = A + m * lda;
      const uint8_t* b = B + j * ldb;
      int32_t* c = C + m * ldc + j;
      switch (mr) {
        case 4: micro_i8_n<4>(nr, a, lda, b, ldb, kc, c, ldc); break;
        case 3: micro_i8_n<3>(nr, a, lda, b, ldb, kc, c, ldc); break;
        case 2: micro_i8_n<2>(nr, a, lda, b, ldb, kc, c, ldc); break;
        default: micro_i8_n<1>(nr, a, lda, b, ldb, kc, c, ldc); break;
      }
    }
  }
}

}  // namespace

// ── entry points ───────────────────────────────────────────────────────────────────────────────────────────
void gemm_dense(const void* X, DType x_dtype, int64_t M, const DenseWeight& W, const float* bias, float* Y) {
  const int64_t N = W.N, K = W.K;
  XF32 x(X, x_dtype, M, K, M <= MR ? 1 : 8, M <= MR ? 0 : 16);
  dynamic_for(N, M <= MR ? gemv_block_rows(N, 64) : 2 * NB, [&](int64_t n0, int64_t n1) {
    init_y(Y, M, N, bias, n0, n1);
    switch (W.dtype) {
      case DType::F16: dense_rows(x.p, x.ld, M, static_cast<const F16*>(W.data), K, n0, n1, Y, N); break;
      case DType::BF16: dense_rows(x.p, x.ld, M, static_cast<const BF16*>(W.data), K, n0, n1, Y, N); break;
      default: dense_rows(x.p, x.ld, M, static_cast<const float*>(W.data), K, n0, n1, Y, N); break;
    }
  });
}

void gemm_q(const void* X, DType x_dtype, int64_t M, const QuantWeight& W, const float* bias, float* Y) {
  switch (W.fmt.bits) {
    case 2: gemm_q_bits<2>(X, x_dtype, M, W, bias, Y); break;
    case 3: gemm_q_bits<3>(X, x_dtype, M, W, bias, Y); break;
    case 4: gemm_q_bits<4>(X, x_dtype, M, W, bias, Y); break;
    case 6: gemm_q_bits<6>(X, x_dtype, M, W, bias, Y); break;
    case 8: gemm_q_bits<8>(X, x_dtype, M, W, bias, Y); break;
    default: throw std::invalid_argument("gemm_q: no AVX2 kernel for " + std::to_string(W.fmt.bits) + "-bit weights");
  }
}

template <int BITS>
void gemm_q_multi_bits(const void* X, DType x_dtype, int64_t M, const QuantWeight* W, int n, const float* const* bias,
                       float* const* Y) {
  GemvX<BITS> gx(X, x_dtype, M, W[0].K, W[0].fmt.group_size);
  const auto blocks = row_blocks(W, n, gemv_block_rows(total_rows(W, n), 64));
  dynamic_for((int64_t)blocks.size(), 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; b++) {
      const RowBlock& k = blocks[b];
      gemv_q_dispatch<BITS>(M, W[k.i], gx.x.p, gx.x.ld, gx.gsum.data(), gx.int_x(), bias ? bias[k.i] : nullptr, Y[k.i],
                            k.n0, k.n1);
    }
  });
}

bool gemm_q_multi(const void* X, DType x_dtype, int64_t M, const QuantWeight* W, int n, const float* const* bias,
                  float* const* Y) {
  if (n < 2 || M > kGemvMaxM || W[0].fmt.group_size % kChunk != 0) return false;
  for (int i = 1; i < n; i++)
    if (W[i].fmt.bits != W[0].fmt.bits || W[i].fmt.group_size != W[0].fmt.group_size || W[i].K != W[0].K) return false;
  switch (W[0].fmt.bits) {
    case 2: gemm_q_multi_bits<2>(X, x_dtype, M, W, n, bias, Y); return true;
    case 3: gemm_q_multi_bits<3>(X, x_dtype, M, W, n, bias, Y); return true;
    case 4: gemm_q_multi_bits<4>(X, x_dtype, M, W, n, bias, Y); return true;
    case 6: gemm_q_multi_bits<6>(X, x_dtype, M, W, n, bias, Y); return true;
    case 8: gemm_q_multi_bits<8>(X, x_dtype, M, W, n, bias, Y); return true;
    default: return false;
  }
}

void w4a8_core(const int8_t* A8, int64_t lda8, int64_t M, const QuantWeight& W, int64_t n0, int64_t n1, int32_t* acc,
               int64_t ldc, int32_t* sumw) {
  constexpr int64_t KCI = 1024, LDB = KCI + 64;
  const int64_t Kp = chunks_per_row(W.K) * kChunk;
  for (int64_t m = 0; m < M; m++) std::fill(acc + m * ldc + n0, acc + m * ldc + n1, 0);
  std::fill(sumw + n0, sumw + n1, 0);
  thread_local std::vector<uint8_t> tls_panel;
  std::vector<uint8_t>& panel = detail::tls_once(tls_panel);
  panel.resize((size_t)(NB * LDB));
  for (int64_t nb = n0; nb < n1; nb += NB) {
    const int64_t nrows = std::min(NB, n1 - nb);
    for (int64_t k0 = 0; k0 < Kp; k0 += KCI) {
      const int64_t kc = std::min(KCI, Kp - k0);
      unpack4_block(W, nb, nrows, k0, kc, panel.data(), LDB);
      for (int64_t r = 0; r < nrows; r++) {  // row sums of the codes (padding codes are 0)
        __m256i s = _mm256_setzero_si256();
        for (int64_t k = 0; k < kc; k += 32)
          s = _mm256_add_epi64(s, _mm256_sad_epu8(_mm256_loadu_si256((const __m256i*)(panel.data() + r * LDB + k)),
                                                  _mm256_setzero_si256()));
        alignas(32) int64_t o[4];
        _mm256_store_si256((__m256i*)o, s);
        sumw[nb + r] += (int32_t)(o[0] + o[1] + o[2] + o[3]);
      }
      tiles_i8(A8 + k0, lda8, M, panel.data(), LDB, nrows, kc, acc + nb, ldc);
    }
  }
}

void act_quant_rows(const float* X, int64_t M, int64_t K, int16_t* A, int64_t lda, float* scale, int32_t* zero,
                    int32_t* asum) {
  for (int64_t m = 0; m < M; m++) {
    const float* x = X + m * K;
    __m256 vmn = _mm256_set1_ps(x[0]), vmx = vmn;
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
      const __m256 v = _mm256_loadu_ps(x + k);
      vmn = _mm256_min_ps(vmn, v);
      vmx = _mm256_max_ps(vmx, v);
    }
    alignas(32) float a[8], b[8];
    _mm256_store_ps(a, vmn);
    _mm256_store_ps(b, vmx);
    float mn = a[0], mx = b[0];
    for (int i = 1; i < 8; i++) { mn = std::min(mn, a[i]); mx = std::max(mx, b[i]); }
    for (; k < K; k++) { mn = std::min(mn, x[k]); mx = std::max(mx, x[k]); }
    const ActQuant p = act_params(mn, mx, 8);
    scale[m] = p.s;
    zero[m] = (int32_t)p.z;
    // A = clamp(round(x / s) + z, 0, 255) - z: division and round-half-even as the scalar reference, so the codes
    // are identical.
    const __m256 sv = _mm256_set1_ps(p.s), zv = _mm256_set1_ps(p.z), lo = _mm256_setzero_ps(),
                 hi = _mm256_set1_ps(255.f);
    int16_t* d = A + m * lda;
    __m256i sum = _mm256_setzero_si256();
    k = 0;
    for (; k + 8 <= K; k += 8) {
      __m256 q = _mm256_round_ps(_mm256_div_ps(_mm256_loadu_ps(x + k), sv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      q = _mm256_sub_ps(_mm256_min_ps(_mm256_max_ps(_mm256_add_ps(q, zv), lo), hi), zv);
      const __m256i qi = _mm256_cvtps_epi32(q);
      sum = _mm256_add_epi32(sum, qi);
      const __m128i packed = _mm_packs_epi32(_mm256_castsi256_si128(qi), _mm256_extracti128_si256(qi, 1));
      _mm_storeu_si128((__m128i*)(d + k), packed);
    }
    int32_t s = hsum_i32(sum);
    for (; k < K; k++) {
      const int v = (int)act_code(x[k], p, 255.f) - (int)p.z;
      d[k] = (int16_t)v;
      s += v;
    }
    for (; k < lda; k++) d[k] = 0;
    asum[m] = s;
  }
}

}  // namespace quanteval::impl::avx2
