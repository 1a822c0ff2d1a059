#pragma GCC target("avx2,fma,f16c")
// AVX2 integer-activation GEMM for every packed weight format: Y[M, N] = act8(X)[M, K] · W[N, K]^T, the kernels
// behind gemm_w8a8 (kernels.h) for bits 2/3/4/8 and any group size that is a multiple of 32 (or one group a row).
//
// Design (the llama.cpp Q4_0 x Q8 idea, with this project's asymmetric activations and packed layouts):
//  - Activations are quantized once per call to unsigned codes qa in [0, 255] (a8_act) and stored centered, as the
//    int8 qa - 128 (weights of 2-4 bits; 8-bit weights take the codes as int16), rows padded to whole 32-code chunks.
//  - One 32-code weight chunk is unpacked into one ymm of 32 bytes in natural order, without shuffles:
//      4-bit: vbroadcasti128 of the 16 bytes, vpsrlvq by {0, 0, 4, 4}, AND 0x0F  (low lane codes 0-15, high 16-31)
//      2-bit: vpbroadcastq of the 8 bytes, vpsrlvq by {0, 2, 4, 6}, AND 3        (qword i holds codes 8i .. 8i+7)
//      3-bit: the 2-bit part, plus bit j of the high-bit word spread to byte j (vpshufb + compare), times 4.
//    vpmaddubsw(qw, qa - 128) multiplies the unsigned codes by the signed centered activations: a pair sum is at most
//    2 * 15 * 128 = 3840, so 8 chunks (30720) accumulate in int16 before one vpmaddwd with ones widens them to int32.
//    8-bit codes do not fit (2 * 255 * 128 overflows int16): they are widened to int16 and meet int16 activation codes
//    in vpmaddwd.
//  - Zero points: sum_k (qa - za) * (qw - zw) = sum qw * (qa - 128) + (128 - za) * sum qw - zw * sum (qa - za).
//    sum qw comes from byte adds of the unpacked chunks and one vpsadbw per int16 block, shared by every token of a
//    tile; the za and zw terms are applied once per output (exact integers for per-channel weights; fp32 sums of
//    sw_g * (...) over groups otherwise). 8-bit grouped weights keep an exact per-group za correction (their two
//    terms are ~100x their difference).
//  - Per group the int32 lanes become fp32 and are scaled by sw_g (one cvt + one FMA per token and group). With a
//    single group (per output channel) nothing is converted: the row's exact int32 sum is returned and the caller
//    rescales exactly as gemm_w8a8_ref (bit-identical results).
//  - Loop order (prefill): K blocks of kKBlock codes, then tiles of 8 tokens (their codes of the block, 16 KiB, stay
//    in L1), then the block of rows (<= 32 rows of the K block stay in L2 while the token tiles pass over them).
//    Tiles of 8 tokens of grouped 2-4-bit weights run a8_tile (accumulators in registers); the rest a8_row.
//    With M <= 8 (decode) there is one K block and one tile: every weight byte is read from memory exactly once, in
//    order: the kernel is a GEMV bound by the read bandwidth.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <stdexcept>

#include "a8_common.h"
#include "gemm_a8.h"
#include "gemm_common.h"
#include "tls.h"

namespace quanteval::impl::avx2 {

using namespace detail;

namespace {

// Codes of one K block (prefill): a tile of 8 tokens' codes of the block (16 KiB) stays in L1 while the rows of the
// block pass over it; the rows' block (<= 32 rows x 1 KiB at 4 bits) stays in L2 while the token tiles pass. Single-
// thread A/B at M = 256, N = 512, K = 5632 (w4g128): 2048 codes 13.1 ms, 4096 codes 13.8 ms; at K = 2048 a block of
// 1024 codes was 1.15x slower than one of 2048 (per-call epilogues).
constexpr int64_t kKBlock = 2048;

// Software prefetch of the weight codes, one line per 64 bytes: into L1 1 KiB ahead and into L2 4 KiB ahead. At
// M = 1 the kernel does enough work per byte that the hardware prefetchers fall behind when both cores stream;
// interleaved A/B runs on the decode linears of tinyllama-1.1b (w4g128, 507 MB, 2 threads) gave 34.2 -> 30.0 ms with
// the L1 prefetch (best distance of 256-4096 tried) and another ~10% with the L2 one (docs/gemv.md).
constexpr int64_t kPfL1 = 1024, kPfL2 = 4096;
inline void prefetch_codes(const uint8_t* p) {
  _mm_prefetch((const char*)(p + kPfL1), _MM_HINT_T0);
  _mm_prefetch((const char*)(p + kPfL2), _MM_HINT_T1);
}
// Row pointers of a tile's T tokens (row stride lda), for the asm blocks' memory operands.
template <int T, class E>
inline std::array<const E*, T> tile_rows(const E* base, int64_t lda) {
  std::array<const E*, T> r;
  for (int i = 0; i < T; i++) r[i] = base + i * lda;
  return r;
}

// prefetch_codes for every 64-byte line that starts in the bytes [b0, b1) of a row.
inline void prefetch_lines(const uint8_t* row, int64_t b0, int64_t b1) {
  for (int64_t b = (b0 + 63) & ~int64_t(63); b < b1; b += 64) prefetch_codes(row + b);
}

inline int32_t hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}
inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// One weight row against MB (<= 8) token rows. pf: prefetch the codes ahead (only the first token tile of a row
// does: the later tiles of a prefill block find the row in L1, and their prefetches would be wasted instructions).
// A8: the tokens' centered codes qa - 128 as int8 (BITS < 8), A16: their codes qa as int16 (BITS == 8); row stride
// lda. za[MB]. sw[G] fp32 scales of this row.
//   PC (one group): I[m] = exact sum (qa - za) * qw
//   else:           F[m] = sum_g sw_g * sum_{k in g} (qa - za) * qw   (the zw term is the caller's)
// The activation zero point is not applied per group: with c = 128 (BITS < 8) or 0 (BITS == 8) the kernel sums
// qw * (qa - c) per token, and qw per group once for all MB tokens, then adds (c - za) * sum_g sw_g * sum qw per token
// at the end (exact integers for PC; in fp32 otherwise, like the zw term).
// SHORT (1, 2, 4 or 8; 0: no): every group spans SHORT chunks (group_size 32 .. 256, bits < 8; the last group may
// be shorter): one int16 sub-block per group, and a fixed trip count the compiler unrolls.
template <int BITS, int MB, bool PC, int SHORT>
inline void a8_row(const uint8_t* row, int64_t chunks, int64_t cpg, int64_t G, const int8_t* A8, const int16_t* A16,
                   int64_t lda, const int32_t* za, const float* sw, int32_t* I, float* F, bool pf) {
  constexpr int64_t cb = (int64_t)chunk_bytes(BITS);
  // int16 pair sums of vpmaddubsw(qw, qa - 128): at most 2 * 15 * 128 = 3840, so 8 chunks (30720) fit in int16.
  constexpr int64_t kI16Chunks = 8;
  constexpr int32_t c0 = BITS == 8 ? 0 : 128;
  const __m256i ones = _mm256_set1_epi16(1), zero = _mm256_setzero_si256();
  // PC: accI (int32 lanes) and wtot (sum qw, 4 qword lanes); grouped: accF and wcorr (sum_g sw_g * sum qw).
  __m256i accI[PC ? MB : 1];
  __m256 accF[PC ? 1 : MB];
  __m256i wtot = zero;
  __m256 wcorr = _mm256_setzero_ps();
  for (int m = 0; m < MB; m++) {
    if constexpr (PC) accI[m] = zero;
    else accF[m] = _mm256_setzero_ps();
  }
  // Closes one group: p32 (8 int32 lanes per token), wsum (4 qword lanes of sum qw).
  auto close = [&](const __m256i* p32, __m256i wsum, int64_t g) {
    if constexpr (PC) {
      for (int m = 0; m < MB; m++) accI[m] = _mm256_add_epi32(accI[m], p32[m]);
      wtot = _mm256_add_epi64(wtot, wsum);
    } else if constexpr (BITS == 8) {
      // 8-bit codes center near 128 on both sides: sum qw * qa and za * sum qw are ~100x their difference, so the
      // zero point is applied exactly per group here (vpmuludq: low dwords of the qword lanes; the high dwords of
      // the products are 0, so the dword subtraction is exact in total).
      const __m256 s = _mm256_set1_ps(sw[g]);
      for (int m = 0; m < MB; m++) {
        const __m256i t = _mm256_sub_epi32(p32[m], _mm256_mul_epu32(wsum, _mm256_set1_epi64x(za[m])));
        accF[m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t), s, accF[m]);
      }
    } else {
      const __m256 s = _mm256_set1_ps(sw[g]);
      for (int m = 0; m < MB; m++) accF[m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p32[m]), s, accF[m]);
      // The qword lanes hold sums below 2^32 (high dwords 0): read as 8 int32 lanes they convert exactly.
      wcorr = _mm256_fmadd_ps(_mm256_cvtepi32_ps(wsum), s, wcorr);
    }
  };
  for (int64_t g = 0; g < G; g++) {
    const int64_t c1 = std::min(chunks, (g + 1) * cpg);
    __m256i p32[MB];
    if constexpr (SHORT > 0) {
      __m256i p16[MB];
      for (int m = 0; m < MB; m++) p16[m] = zero;
      __m256i w8 = zero;
      auto step = [&](int64_t c) {
        const __m256i w = unpack_u8<BITS>(row + c * cb);
        w8 = _mm256_add_epi8(w8, w);
        for (int m = 0; m < MB; m++)
          p16[m] = _mm256_add_epi16(
              p16[m], _mm256_maddubs_epi16(w, _mm256_loadu_si256((const __m256i*)(A8 + m * lda + c * kChunk))));
      };
      const int64_t cs = g * SHORT;
      if (pf) prefetch_lines(row, cs * cb, std::min(c1, cs + SHORT) * cb);
      if (c1 - cs == SHORT)
        for (int i = 0; i < SHORT; i++) step(cs + i);
      else
        for (int64_t c = cs; c < c1; c++) step(c);
      for (int m = 0; m < MB; m++) p32[m] = _mm256_madd_epi16(p16[m], ones);
      close(p32, _mm256_sad_epu8(w8, zero), g);
    } else {
      for (int m = 0; m < MB; m++) p32[m] = zero;
      __m256i wsum = zero;  // 4 qword lanes of sum qw (vpsadbw)
      for (int64_t c = g * cpg; c < c1;) {
        if constexpr (BITS == 8) {
          const uint8_t* p = row + c * cb;
          if (pf && c % 2 == 0) prefetch_codes(p);  // 32-byte chunks: a line every 2
          wsum = _mm256_add_epi64(wsum, _mm256_sad_epu8(_mm256_loadu_si256((const __m256i*)p), zero));
          const __m256i w0 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i*)p));
          const __m256i w1 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i*)(p + 16)));
          for (int m = 0; m < MB; m++) {
            const int16_t* a = A16 + m * lda + c * kChunk;
            p32[m] = _mm256_add_epi32(p32[m], _mm256_madd_epi16(_mm256_loadu_si256((const __m256i*)a), w0));
            p32[m] = _mm256_add_epi32(p32[m], _mm256_madd_epi16(_mm256_loadu_si256((const __m256i*)(a + 16)), w1));
          }
          c++;
        } else {
          const int64_t ce = std::min(c1, c + kI16Chunks);
          __m256i p16[MB];
          for (int m = 0; m < MB; m++) p16[m] = zero;
          __m256i w8 = zero;  // byte sums of up to 8 chunks' codes (<= 8 x 15): one vpsadbw per block
          for (; c < ce; c++) {
            if (pf) prefetch_lines(row, c * cb, (c + 1) * cb);
            const __m256i w = unpack_u8<BITS>(row + c * cb);
            w8 = _mm256_add_epi8(w8, w);
            for (int m = 0; m < MB; m++)
              p16[m] = _mm256_add_epi16(
                  p16[m], _mm256_maddubs_epi16(w, _mm256_loadu_si256((const __m256i*)(A8 + m * lda + c * kChunk))));
          }
          wsum = _mm256_add_epi64(wsum, _mm256_sad_epu8(w8, zero));
          for (int m = 0; m < MB; m++) p32[m] = _mm256_add_epi32(p32[m], _mm256_madd_epi16(p16[m], ones));
        }
      }
      close(p32, wsum, g);
    }
  }
  if constexpr (PC) {  // exact: the true sum fits int32 (kW8A8MaxK), so wrapping uint32 arithmetic gives it
    const uint64_t wt = hsum_u64(wtot);
    for (int m = 0; m < MB; m++)
      I[m] = (int32_t)((uint32_t)hsum_i32(accI[m]) + (uint32_t)((uint64_t)(int64_t)(c0 - za[m]) * wt));
  } else if constexpr (BITS == 8) {
    for (int m = 0; m < MB; m++) F[m] = hsum(accF[m]);
  } else {
    const float wc = hsum(wcorr);
    for (int m = 0; m < MB; m++) F[m] = hsum(accF[m]) + (float)(c0 - za[m]) * wc;
  }
}

// a8_row written out so that nothing spills from the inner loop, for T = 8 tokens (prefill) or 4 (decode batches):
// grouped weights of 2-4 bits whose groups span SHORT (1, 2, 4 or 8) chunks. The T int16 accumulators, the chunk and
// its byte sums stay in registers (one asm block a chunk: left to itself GCC hoists the T products into T
// temporaries, runs out of registers and keeps accumulators in memory, a store-to-load chain through every chunk;
// measured 1.5x slower at T = 8, and its 4-token a8_row kept three on the stack); the fp32 accumulators live in
// memory (touched once per group). Also applies the weight zero points (dsT: the tokens' sum (qa - za) per group,
// [G][M] from token 0 of the tile, row stride M; swz: sw * zw per group). out[T]: the tokens' results.
template <int BITS, int SHORT, int T>
inline void a8_tile(const uint8_t* row, int64_t chunks, int64_t G, const int8_t* A8, int64_t lda, const int32_t* za,
                    const float* sw, const float* swz, const float* dsT, int64_t M, bool pf, float* out) {
  static_assert(T == 4 || T == 8, "a8_tile: 4 or 8 tokens");
  constexpr int64_t cb = (int64_t)chunk_bytes(BITS);
  alignas(32) float acc[T][8];
  for (int m = 0; m < T; m++) _mm256_store_ps(acc[m], _mm256_setzero_ps());
  const __m256i ones = _mm256_set1_epi16(1), zero = _mm256_setzero_si256();
  __m256 wcorr = _mm256_setzero_ps();
  __m256 zcorr = _mm256_setzero_ps();  // lanes 0..T-1
  const auto a = tile_rows<T>(A8, lda);
  for (int64_t g = 0; g < G; g++) {
    const int64_t cs = g * SHORT, ce = std::min(chunks, cs + SHORT);
    if (pf) prefetch_lines(row, cs * cb, ce * cb);
    __m256i p0 = zero, p1 = zero, p2 = zero, p3 = zero, p4 = zero, p5 = zero, p6 = zero, p7 = zero, w8 = zero;
#pragma GCC unroll 1
    for (int64_t c = cs; c < ce; c++) {
      const __m256i w = unpack_u8<BITS>(row + c * cb);
      const int64_t o = c * kChunk;
      w8 = _mm256_add_epi8(w8, w);
      __m256i t;
#define QE_A8_STEP(P, M) "vpmaddubsw %[" #M "], %[w], %[t]\n\tvpaddw %[t], %[" #P "], %[" #P "]\n\t"
      if constexpr (T == 8) {
        __asm__(QE_A8_STEP(p0, m0) QE_A8_STEP(p1, m1) QE_A8_STEP(p2, m2) QE_A8_STEP(p3, m3)
                    QE_A8_STEP(p4, m4) QE_A8_STEP(p5, m5) QE_A8_STEP(p6, m6) QE_A8_STEP(p7, m7)
                : [p0] "+x"(p0), [p1] "+x"(p1), [p2] "+x"(p2), [p3] "+x"(p3), [p4] "+x"(p4), [p5] "+x"(p5),
                  [p6] "+x"(p6), [p7] "+x"(p7), [t] "=&x"(t)
                : [w] "x"(w), [m0] "m"(*(const __m256i*)(a[0] + o)), [m1] "m"(*(const __m256i*)(a[1] + o)),
                  [m2] "m"(*(const __m256i*)(a[2] + o)), [m3] "m"(*(const __m256i*)(a[3] + o)),
                  [m4] "m"(*(const __m256i*)(a[4] + o)), [m5] "m"(*(const __m256i*)(a[5] + o)),
                  [m6] "m"(*(const __m256i*)(a[6] + o)), [m7] "m"(*(const __m256i*)(a[7] + o)));
      } else {
        __asm__(QE_A8_STEP(p0, m0) QE_A8_STEP(p1, m1) QE_A8_STEP(p2, m2) QE_A8_STEP(p3, m3)
                : [p0] "+x"(p0), [p1] "+x"(p1), [p2] "+x"(p2), [p3] "+x"(p3), [t] "=&x"(t)
                : [w] "x"(w), [m0] "m"(*(const __m256i*)(a[0] + o)), [m1] "m"(*(const __m256i*)(a[1] + o)),
                  [m2] "m"(*(const __m256i*)(a[2] + o)), [m3] "m"(*(const __m256i*)(a[3] + o)));
      }
#undef QE_A8_STEP
    }
    const __m256 s = _mm256_set1_ps(sw[g]);
    wcorr = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sad_epu8(w8, zero)), s, wcorr);
    const __m256 ds = T == 8 ? _mm256_loadu_ps(dsT + g * M) : _mm256_castps128_ps256(_mm_loadu_ps(dsT + g * M));
    zcorr = _mm256_fmadd_ps(_mm256_set1_ps(swz[g]), ds, zcorr);
    const __m256i p[8] = {p0, p1, p2, p3, p4, p5, p6, p7};
    for (int m = 0; m < T; m++)
      _mm256_store_ps(acc[m], _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(p[m], ones)), s,
                                              _mm256_load_ps(acc[m])));
  }
  // The T horizontal sums as one vector (lane m: token m), then both zero-point terms for all T tokens at once.
  const __m256 h0 = _mm256_hadd_ps(_mm256_load_ps(acc[0]), _mm256_load_ps(acc[1]));
  const __m256 h1 = _mm256_hadd_ps(_mm256_load_ps(acc[2]), _mm256_load_ps(acc[3]));
  const __m256 q0 = _mm256_hadd_ps(h0, h1);  // [s0 s1 s2 s3 | s0' s1' s2' s3'] (lane halves)
  const float wc = hsum(wcorr);
  if constexpr (T == 8) {
    const __m256 h2 = _mm256_hadd_ps(_mm256_load_ps(acc[4]), _mm256_load_ps(acc[5]));
    const __m256 h3 = _mm256_hadd_ps(_mm256_load_ps(acc[6]), _mm256_load_ps(acc[7]));
    const __m256 q1 = _mm256_hadd_ps(h2, h3);
    const __m256 sums = _mm256_add_ps(_mm256_permute2f128_ps(q0, q1, 0x20), _mm256_permute2f128_ps(q0, q1, 0x31));
    const __m256 zav = _mm256_cvtepi32_ps(
        _mm256_sub_epi32(_mm256_set1_epi32(128), _mm256_loadu_si256((const __m256i*)za)));
    _mm256_storeu_ps(out, _mm256_sub_ps(_mm256_fmadd_ps(zav, _mm256_set1_ps(wc), sums), zcorr));
  } else {
    const __m128 sums = _mm_add_ps(_mm256_castps256_ps128(q0), _mm256_extractf128_ps(q0, 1));
    const __m128 zav = _mm_cvtepi32_ps(_mm_sub_epi32(_mm_set1_epi32(128), _mm_loadu_si128((const __m128i*)za)));
    _mm_storeu_ps(out, _mm_sub_ps(_mm_fmadd_ps(zav, _mm_set1_ps(wc), sums), _mm256_castps256_ps128(zcorr)));
  }
}

// 8-bit per-channel weights against 8 tokens: I[m] = exact sum (qa - za) * qw over the chunks given. The codes
// are widened to int16 (vpmovzxbw) and meet the tokens' int16 codes in vpmaddwd (16 products per instruction, twice
// the fp32 FMA's 8); the 8 int32 accumulators stay in registers (one asm block, as in a8_tile). Lanes stay exact:
// each sums K / 16 pairs of products <= 255 * 255 (gemm_w8a8 routes K > kW8A8MaxK to the reference).
inline void a8_tile8_w8(const uint8_t* row, int64_t chunks, const int16_t* A16, int64_t lda, const int32_t* za,
                        int32_t* I) {
  const __m256i zero = _mm256_setzero_si256();
  __m256i p0 = zero, p1 = zero, p2 = zero, p3 = zero, p4 = zero, p5 = zero, p6 = zero, p7 = zero, wsum = zero;
  const auto a = tile_rows<8>(A16, lda);
#pragma GCC unroll 1
  for (int64_t c = 0; c < chunks; c++) {
    const uint8_t* p = row + c * kChunk;
    wsum = _mm256_add_epi64(wsum, _mm256_sad_epu8(_mm256_loadu_si256((const __m256i*)p), zero));
    const __m256i w0 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i*)p));
    const __m256i w1 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i*)(p + 16)));
    const int64_t o = c * kChunk;
    __m256i t;
#define QE_W8_STEP(P, A)                                                                     \
  "vpmaddwd %[" #A "l], %[w0], %[t]\n\tvpaddd %[t], %[" #P "], %[" #P "]\n\t"                 \
  "vpmaddwd %[" #A "h], %[w1], %[t]\n\tvpaddd %[t], %[" #P "], %[" #P "]\n\t"
#define QE_W8_MEM(A, PTR) \
  [A##l] "m"(*(const __m256i*)(PTR + o)), [A##h] "m"(*(const __m256i*)(PTR + o + 16))
    // Two blocks of 4 tokens (one block of 8 would pass GCC's limit of 30 asm operands).
    __asm__(QE_W8_STEP(p0, m0) QE_W8_STEP(p1, m1) QE_W8_STEP(p2, m2) QE_W8_STEP(p3, m3)
            : [p0] "+x"(p0), [p1] "+x"(p1), [p2] "+x"(p2), [p3] "+x"(p3), [t] "=&x"(t)
            : [w0] "x"(w0), [w1] "x"(w1), QE_W8_MEM(m0, a[0]), QE_W8_MEM(m1, a[1]), QE_W8_MEM(m2, a[2]),
              QE_W8_MEM(m3, a[3]));
    __asm__(QE_W8_STEP(p4, m4) QE_W8_STEP(p5, m5) QE_W8_STEP(p6, m6) QE_W8_STEP(p7, m7)
            : [p4] "+x"(p4), [p5] "+x"(p5), [p6] "+x"(p6), [p7] "+x"(p7), [t] "=&x"(t)
            : [w0] "x"(w0), [w1] "x"(w1), QE_W8_MEM(m4, a[4]), QE_W8_MEM(m5, a[5]), QE_W8_MEM(m6, a[6]),
              QE_W8_MEM(m7, a[7]));
#undef QE_W8_STEP
#undef QE_W8_MEM
  }
  const uint64_t wt = hsum_u64(wsum);
  const __m256i p[8] = {p0, p1, p2, p3, p4, p5, p6, p7};
  for (int m = 0; m < 8; m++)  // the true sum fits int32: wrapping uint32 arithmetic gives it
    I[m] = (int32_t)((uint32_t)hsum_i32(p[m]) - (uint32_t)((uint64_t)(int64_t)za[m] * wt));
}

// The GEMV row of a8_row for grouped 4-bit weights whose groups span an even number of chunks (SHORT = 2, 4, 8):
// one 32-byte load holds two chunks, and its low and high nibbles are two 32-code vectors (an AND, and a shift and an
// AND: 3 uops per 64 codes where unpack_u8 spends 2 per 32 on top of a broadcast load). The nibbles' order is the
// activations' problem instead: A8p (A8Act::q8p) holds each pair of chunks' codes as
// [c0 0-15 | c1 0-15 | c0 16-31 | c1 16-31], written once per call by a8_act. A last odd chunk keeps the natural order.
// A separate function rather than a flag of a8_row: as a branch of a8_row's SHORT path (inlined into rows_bits with
// a8_row's other state live) GCC reloaded the scale pointer and the row stride from the stack every group, and the
// one-thread 4096 x 4096 GEMV ran at 0.634-0.641 ms against 0.561-0.570 ms for this function (3 alternating rounds).
// F[m] = sum_g sw_g * sum_{k in g} (qa - za) * qw, as a8_row (the zw term is the caller's).
template <int MB, int SHORT>
inline void a8_row4_pairs(const uint8_t* row, int64_t chunks, int64_t G, const int8_t* A8p, int64_t lda,
                          const int32_t* za, const float* sw, float* F, bool pf) {
  static_assert(SHORT == 2 || SHORT == 4 || SHORT == 8, "a8_row4_pairs: groups of an even number of chunks");
  constexpr int64_t cb = (int64_t)chunk_bytes(4);
  const __m256i m4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1), zero = _mm256_setzero_si256();
  __m256 accF[MB];
  for (int m = 0; m < MB; m++) accF[m] = _mm256_setzero_ps();
  __m256 wcorr = _mm256_setzero_ps();
  for (int64_t g = 0; g < G; g++) {
    const int64_t cs = g * SHORT, ce = std::min(chunks, cs + SHORT);
    if (pf) prefetch_lines(row, cs * cb, ce * cb);
    // int16 lanes: one pair sum (<= 2 * 15 * 128) per chunk, at most 8 chunks; bytes of w8: <= 8 * 15.
    __m256i p16[MB], w8 = zero;
    for (int m = 0; m < MB; m++) p16[m] = zero;
    auto pair = [&](int64_t c) {
      const __m256i v = _mm256_loadu_si256((const __m256i*)(row + c * cb));
      const __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
      w8 = _mm256_add_epi8(w8, _mm256_add_epi8(lo, hi));
      for (int m = 0; m < MB; m++) {
        const int8_t* a = A8p + m * lda + c * kChunk;
        p16[m] = _mm256_add_epi16(p16[m], _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i*)a)));
        p16[m] = _mm256_add_epi16(p16[m], _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i*)(a + kChunk))));
      }
    };
    int64_t c = cs;
    if (ce - cs == SHORT) {  // a whole group: a fixed trip count
#pragma GCC unroll 4
      for (int i = 0; i < SHORT / 2; i++) pair(cs + 2 * i);
      c = ce;
    } else {
      for (; c + 2 <= ce; c += 2) pair(c);
    }
    if (c < ce) {  // the row's last chunk, alone
      const __m256i w = unpack_u8<4>(row + c * cb);
      w8 = _mm256_add_epi8(w8, w);
      for (int m = 0; m < MB; m++)
        p16[m] = _mm256_add_epi16(
            p16[m], _mm256_maddubs_epi16(w, _mm256_loadu_si256((const __m256i*)(A8p + m * lda + c * kChunk))));
    }
    const __m256 s = _mm256_set1_ps(sw[g]);
    for (int m = 0; m < MB; m++)
      accF[m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(p16[m], ones)), s, accF[m]);
    wcorr = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sad_epu8(w8, zero)), s, wcorr);
  }
  const float wc = hsum(wcorr);
  for (int m = 0; m < MB; m++) F[m] = hsum(accF[m]) + (float)(128 - za[m]) * wc;
}

template <int BITS, bool PC, int SHORT>
void rows_bits(const A8Act& a, const QuantWeight& W, int64_t n0, int64_t n1, int32_t* I, float* F) {
  const int64_t N = W.N, G = W.groups(), chunks = chunks_per_row(W.K), stride = W.stride(), R = n1 - n0;
  const int64_t cpg = PC ? chunks : W.fmt.group_size / kChunk;
  constexpr int64_t cb = (int64_t)chunk_bytes(BITS);
  int32_t Ib[8];
  float Fb[8];
  constexpr bool kTileT = SHORT > 0 && !PC;  // tiles of 8 or 4 tokens go to a8_tile
  if (a.M <= kA8GemvMaxM) {  // GEMV (decode): one tile, each row read once, in order, its scales converted just before it
    thread_local std::vector<float> tls_rs;
    std::vector<float>& rs = detail::tls_once(tls_rs);
    rs.resize((size_t)(2 * G));
    float *sw = rs.data(), *swz = sw + G;
    const int mb = (int)a.M;
    const int8_t* A8 = a.q8.empty() ? nullptr : a.q8.data();
    // Grouped 4-bit weights, groups of 2, 4 or 8 chunks: the 1- and 2-token rows read the codes two chunks a load
    // (a8_row4_pairs, on the reordered codes q8p).
    constexpr bool kPairs = BITS == 4 && !PC && (SHORT == 2 || SHORT == 4 || SHORT == 8);
    if (kPairs && a.q8p.empty()) throw std::logic_error("a8_rows: the paired activation codes (q8p) were not filled");
    const int8_t* A8p = kPairs ? a.q8p.data() : nullptr;
    const int16_t* A16 = a.q16.empty() ? nullptr : a.q16.data();
    const int64_t sb = (int64_t)dtype_size(W.fmt.scale_dtype);
    for (int64_t n = n0; n < n1; n++) {
      const uint8_t* row = W.codes + n * stride;
      if (!PC) {
        // The scales and zero points of a row 16 ahead (streams of their own beside the codes'): their first use in
        // row_scales otherwise waits on memory (~3% of a decode step in row_scales).
        if (n + 16 < n1) {
          _mm_prefetch((const char*)W.scales + (n + 16) * G * sb, _MM_HINT_T0);
          if (W.zeros) _mm_prefetch((const char*)(W.zeros + (n + 16) * G), _MM_HINT_T0);
        }
        row_scales(W, n, sw, swz);
      }
      const int32_t* za = a.za.data();
      // Tiles of the tokens of a small batch: 8 or 4 (a8_tile for grouped 2-4-bit weights), then 2 and 1.
      for (int m = 0; m < mb;) {
        const int t = mb - m >= 8 && kTileT ? 8 : mb - m >= 4 ? 4 : mb - m >= 2 ? 2 : 1;
        const int8_t* a8 = A8 ? A8 + m * a.lda : nullptr;
        const int16_t* a16 = A16 ? A16 + m * a.lda : nullptr;
        if constexpr (kTileT) {
          if (t >= 4) {
            float r[8];
            if (t == 8)
              a8_tile<BITS, SHORT, 8>(row, chunks, G, a8, a.lda, za + m, sw, swz, a.dsumT.data() + m, a.M, m == 0, r);
            else
              a8_tile<BITS, SHORT, 4>(row, chunks, G, a8, a.lda, za + m, sw, swz, a.dsumT.data() + m, a.M, m == 0, r);
            for (int i = 0; i < t; i++) F[(m + i) * N + n] = r[i];
            m += t;
            continue;
          }
        }
        if constexpr (kPairs) {
          if (t <= 2) {
            const int8_t* a8p = A8p + m * a.lda;
            if (t == 2) a8_row4_pairs<2, SHORT>(row, chunks, G, a8p, a.lda, za + m, sw, Fb, m == 0);
            else a8_row4_pairs<1, SHORT>(row, chunks, G, a8p, a.lda, za + m, sw, Fb, m == 0);
            for (int i = 0; i < t; i++) F[(m + i) * N + n] = Fb[i] - dot_f32(swz, a.dsumf.data() + (m + i) * G, G);
            m += t;
            continue;
          }
        }
        switch (t) {
          case 4: a8_row<BITS, 4, PC, SHORT>(row, chunks, cpg, G, a8, a16, a.lda, za + m, sw, Ib, Fb, m == 0); break;
          case 2: a8_row<BITS, 2, PC, SHORT>(row, chunks, cpg, G, a8, a16, a.lda, za + m, sw, Ib, Fb, m == 0); break;
          default: a8_row<BITS, 1, PC, SHORT>(row, chunks, cpg, G, a8, a16, a.lda, za + m, sw, Ib, Fb, m == 0); break;
        }
        for (int i = 0; i < t; i++) {
          if constexpr (PC) I[(m + i) * N + n] = Ib[i];
          else F[(m + i) * N + n] = Fb[i] - dot_f32(swz, a.dsumf.data() + (m + i) * G, G);
        }
        m += t;
      }
    }
    return;
  }
  // Prefill: K blocks of whole groups, about kKBlock codes (half as many for 8-bit weights: their tokens' codes are
  // int16).
  const int64_t kb = BITS == 8 ? kKBlock / 2 : kKBlock;
  const int64_t bc = PC ? kb / kChunk : std::max<int64_t>(1, kb / kChunk / cpg) * cpg;
  thread_local std::vector<float> tls_scratch;
  std::vector<float>& scratch = detail::tls_once(tls_scratch);
  scratch.resize((size_t)(2 * G * R));
  float *sws = scratch.data(), *swzs = sws + G * R;  // [R, G] scales and scale * zero point of the rows
  if (!PC)
    for (int64_t n = n0; n < n1; n++) row_scales(W, n, sws + (n - n0) * G, swzs + (n - n0) * G);
  for (int64_t c0 = 0; c0 < chunks; c0 += bc) {
    const int64_t c1 = std::min(chunks, c0 + bc), g0 = PC ? 0 : c0 / cpg, gn = PC ? 1 : (c1 - 1) / cpg + 1 - g0;
    const int64_t bcpg = PC ? c1 - c0 : cpg;
    // Tiles of 8 tokens (then 4, 2, 1 for the rest); each tile's codes stay in L1 while the rows pass over them.
    for (int64_t m = 0; m < a.M;) {
      const int64_t left = a.M - m;
      // (grouped 8-bit weights: tiles of 4; with 8 their int32 and fp32 accumulators spill and run 1.1x slower)
      const int mb = left >= 8 && (BITS < 8 || PC) ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
      const int8_t* A8 = a.q8.empty() ? nullptr : a.q8.data() + m * a.lda + c0 * kChunk;
      const int16_t* A16 = a.q16.empty() ? nullptr : a.q16.data() + m * a.lda + c0 * kChunk;
      const int32_t* za = a.za.data() + m;
      for (int64_t n = n0; n < n1; n++) {
        const uint8_t* row = W.codes + n * stride + c0 * cb;
        const float* sw = sws + (n - n0) * G + g0;
        const bool pf = m == 0;  // the first tile brings the block's rows in; the later ones find them in cache
        if constexpr (PC && BITS == 8) {
          if (mb == 8) {
            int32_t r[8];
            a8_tile8_w8(row, c1 - c0, A16, a.lda, za, r);
            for (int i = 0; i < 8; i++) {
              int32_t* ip = I + (m + i) * N + n;
              *ip = c0 == 0 ? r[i] : (int32_t)((uint32_t)*ip + (uint32_t)r[i]);
            }
            continue;
          }
        }
        if constexpr (kTileT) {
          if (mb == 8) {
            float r[8];
            a8_tile<BITS, SHORT, 8>(row, c1 - c0, gn, A8, a.lda, za, sw, swzs + (n - n0) * G + g0,
                                    a.dsumT.data() + g0 * a.M + m, a.M, pf, r);
            for (int i = 0; i < 8; i++) {
              float* fp = F + (m + i) * N + n;
              *fp = c0 == 0 ? r[i] : *fp + r[i];
            }
            continue;
          }
        }
        switch (mb) {
          case 8: a8_row<BITS, 8, PC, SHORT>(row, c1 - c0, bcpg, gn, A8, A16, a.lda, za, sw, Ib, Fb, pf); break;
          case 4: a8_row<BITS, 4, PC, SHORT>(row, c1 - c0, bcpg, gn, A8, A16, a.lda, za, sw, Ib, Fb, pf); break;
          case 2: a8_row<BITS, 2, PC, SHORT>(row, c1 - c0, bcpg, gn, A8, A16, a.lda, za, sw, Ib, Fb, pf); break;
          default: a8_row<BITS, 1, PC, SHORT>(row, c1 - c0, bcpg, gn, A8, A16, a.lda, za, sw, Ib, Fb, pf); break;
        }
        for (int i = 0; i < mb; i++) {
          // Partial sums over K blocks: exact int32 (wrapping) for PC, fp32 otherwise.
          int32_t* ip = I + (m + i) * N + n;
          float* fp = F + (m + i) * N + n;
          if constexpr (PC) *ip = c0 == 0 ? Ib[i] : (int32_t)((uint32_t)*ip + (uint32_t)Ib[i]);
          else *fp = c0 == 0 ? Fb[i] : *fp + Fb[i];
        }
      }
      m += mb;
    }
  }
  if constexpr (!PC)  // the weight zero points: - sum_g sw_g * zw_g * sum_{k in g} (qa - za) (a8_tile did its own)
    for (int64_t m = kTileT ? a.M / 8 * 8 : 0; m < a.M; m++)
      for (int64_t n = n0; n < n1; n++) F[m * N + n] -= dot_f32(swzs + (n - n0) * G, a.dsumf.data() + m * G, G);
}

template <int BITS>
void rows_dispatch(const A8Act& a, const QuantWeight& W, int64_t n0, int64_t n1, int32_t* I, float* F) {
  const int64_t cpg = W.fmt.group_size / kChunk;
  constexpr bool B8 = BITS == 8;
  if (W.groups() == 1) rows_bits<BITS, true, 0>(a, W, n0, n1, I, F);
  else if (B8 || cpg > 8) rows_bits<BITS, false, 0>(a, W, n0, n1, I, F);
  else if (cpg == 8) rows_bits<BITS, false, B8 ? 0 : 8>(a, W, n0, n1, I, F);
  else if (cpg == 4) rows_bits<BITS, false, B8 ? 0 : 4>(a, W, n0, n1, I, F);
  else if (cpg == 2) rows_bits<BITS, false, B8 ? 0 : 2>(a, W, n0, n1, I, F);
  else if (cpg == 1) rows_bits<BITS, false, B8 ? 0 : 1>(a, W, n0, n1, I, F);
  else rows_bits<BITS, false, 0>(a, W, n0, n1, I, F);  // 3, 5, 6 or 7 chunks a group
}

}  // namespace

// The centered codes of M tokens (row stride lda, `chunks` chunks) in a8_row4_pairs' order: the middle two 16-byte
// quarters of every 64 bytes swapped.
inline void pair_activations(const int8_t* A8, int64_t M, int64_t lda, int64_t chunks, int8_t* out) {
  for (int64_t m = 0; m < M; m++) {
    const int8_t* src = A8 + m * lda;
    int8_t* dst = out + m * lda;
    int64_t c = 0;
    for (; c + 2 <= chunks; c += 2) {
      const __m256i a = _mm256_loadu_si256((const __m256i*)(src + c * kChunk));
      const __m256i b = _mm256_loadu_si256((const __m256i*)(src + c * kChunk + kChunk));
      _mm256_storeu_si256((__m256i*)(dst + c * kChunk), _mm256_permute2x128_si256(a, b, 0x20));
      _mm256_storeu_si256((__m256i*)(dst + c * kChunk + kChunk), _mm256_permute2x128_si256(a, b, 0x31));
    }
    if (c < chunks) std::memcpy(dst + c * kChunk, src + c * kChunk, kChunk);
  }
}

void a8_act(const float* X, int64_t M, int64_t K, int64_t gs, bool wide16, bool pairs, A8Act& a) {
  a.M = M;
  a.K = K;
  a.gs = std::min(gs, K);
  a.G = n_groups(K, (int)a.gs);
  a.lda = chunks_per_row(K) * kChunk + 64;  // skew: rows 4 KiB apart would share L1 sets
  a.q8.assign((size_t)(M * a.lda), 0);
  if (wide16) a.q16.assign((size_t)(M * a.lda), 0);
  else a.q16.clear();
  a.sa.resize((size_t)M);
  a.za.resize((size_t)M);
  a.dsum.assign((size_t)(M * a.G), 0);
  a.dsumf.resize((size_t)(M * a.G));
  a.dsumT.resize((size_t)(M * a.G));
  for (int64_t m = 0; m < M; m++) {
    const float* x = X + m * K;
    __m256 vmn = _mm256_set1_ps(x[0]), vmx = vmn;
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
      const __m256 v = _mm256_loadu_ps(x + k);
      vmn = _mm256_min_ps(vmn, v);
      vmx = _mm256_max_ps(vmx, v);
    }
    alignas(32) float lo8[8], hi8[8];
    _mm256_store_ps(lo8, vmn);
    _mm256_store_ps(hi8, vmx);
    float mn = lo8[0], mx = hi8[0];
    for (int i = 1; i < 8; i++) { mn = std::min(mn, lo8[i]); mx = std::max(mx, hi8[i]); }
    for (; k < K; k++) { mn = std::min(mn, x[k]); mx = std::max(mx, x[k]); }
    const ActQuant p = act_params(mn, mx, 8);
    a.sa[m] = p.s;
    a.za[m] = (int32_t)p.z;
    // clamp(round(x / s) + z, 0, 255): a true division and round-half-even, as act_code, so the codes are identical.
    const __m256 sv = _mm256_set1_ps(p.s), zv = _mm256_set1_ps(p.z), lo = _mm256_setzero_ps(),
                 hi = _mm256_set1_ps(255.f);
    uint8_t* d = reinterpret_cast<uint8_t*>(a.q8.data()) + m * a.lda;
    k = 0;
    for (; k + 8 <= K; k += 8) {
      __m256 q = _mm256_round_ps(_mm256_div_ps(_mm256_loadu_ps(x + k), sv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      q = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(q, zv), lo), hi);
      const __m256i qi = _mm256_cvtps_epi32(q);
      const __m128i w16 = _mm_packus_epi32(_mm256_castsi256_si128(qi), _mm256_extracti128_si256(qi, 1));
      _mm_storel_epi64((__m128i*)(d + k), _mm_packus_epi16(w16, w16));
    }
    for (; k < K; k++) d[k] = (uint8_t)act_code(x[k], p, 255.f);
    int32_t* ds = a.dsum.data() + m * a.G;
    for (int64_t g = 0; g < a.G; g++) {
      const int64_t k0 = g * a.gs, k1 = std::min(K, k0 + a.gs);
      int32_t s = 0;
      for (int64_t kk = k0; kk < k1; kk++) s += d[kk];
      ds[g] = s - (int32_t)(k1 - k0) * a.za[m];
      a.dsumf[m * a.G + g] = (float)ds[g];
      a.dsumT[g * M + m] = (float)ds[g];
    }
    if (wide16) {
      int16_t* d16 = a.q16.data() + m * a.lda;
      for (int64_t kk = 0; kk < K; kk++) d16[kk] = d[kk];
    } else {
      for (int64_t kk = 0; kk < K; kk++) d[kk] ^= 0x80;  // qa - 128 as int8 (padding past K stays 0)
    }
  }
  // The GEMV's paired 4-bit steps read the codes reordered (once here, for every weight the call multiplies).
  if (pairs && !wide16 && M <= kA8GemvMaxM) {
    a.q8p.resize((size_t)(M * a.lda));
    pair_activations(a.q8.data(), M, a.lda, chunks_per_row(K), a.q8p.data());
  } else {
    a.q8p.clear();
  }
}

// rows_bits' kPairs, as rows_dispatch instantiates it (PC: one group; SHORT: the chunks a group when 1, 2, 4 or 8).
bool a8_reads_pairs(const QuantWeight& W) {
  const int64_t cpg = W.fmt.group_size / kChunk;
  return W.fmt.bits == 4 && W.groups() > 1 && W.fmt.group_size % kChunk == 0 && (cpg == 2 || cpg == 4 || cpg == 8);
}

void a8_rows(const A8Act& a, const QuantWeight& W, int64_t n0, int64_t n1, int32_t* I, float* F) {
  switch (W.fmt.bits) {
    case 2: rows_dispatch<2>(a, W, n0, n1, I, F); break;
    case 3: rows_dispatch<3>(a, W, n0, n1, I, F); break;
    case 4: rows_dispatch<4>(a, W, n0, n1, I, F); break;
    case 8: rows_dispatch<8>(a, W, n0, n1, I, F); break;
    // 6-bit codes (up to 63) would break the int16 partial-sum bounds of a8_row: gemm_w8a8 sends them to the
    // portable path.
    default: throw std::invalid_argument("a8_rows: no AVX2 a8 kernel for " + std::to_string(W.fmt.bits) + "-bit weights");
  }
}

}  // namespace quanteval::impl::avx2
