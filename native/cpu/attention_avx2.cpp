#pragma GCC target("avx2,fma,f16c")
// AVX2 inner kernels of attention over a (quantized) KV cache, and of kv_store.
//
// Decode (decode_task_avx2): a task covers a token range and a group of kv heads; it walks the range in blocks of
// up to kTB tokens (decode_block) and per block (1) scores every query head of the task, head by head, with the
// dequantization fused into the dot product, (2) updates the online-softmax state of 8 query heads at a time with
// vectors across heads (scale/zero fix-up, block max, exp, running sum, rescale only where the max moved), and
// (3) accumulates the block's V rows head by head. The next head's rows of this block are prefetched into L1; the
// hardware prefetchers bring the blocks in. (A software prefetch of the block two ahead into L2 helped the slower
// kernels of earlier sessions; now, MHA 32 x 128 at 4k, dropping it makes fp32 3-8% faster on one thread and int4
// the same, and with 2 threads was faster in 5 of 5 alternating runs, by 2-15%, but within the VM's noise.)
// For int8/int4 the scale and zero point are taken out of the inner loops:
//   q·k = s·(Σ q_d c_d − z·Σ q_d)            Σ_t w_t v_t = Σ_t (w_t s_t) (c_t − z_t)
// so each K or V element costs a widen, a convert and one FMA per query head that shares the kv head (V: the
// block's Σ_t w_t z_t comes off each accumulator once, see v_accum).
// int4 rows hold code 2j in the low and 2j+1 in the high nibble of byte j: instead of shuffling codes back into
// order, the query is permuted once into [even dims | odd dims] ("kernel layout") and so is the V accumulator.
// With one query head per kv head (MHA), int4 keys and values run in integer arithmetic on vpmaddubsw: the query
// rounded to 16-bit fixed point per head (dot_i4_fixed), the block's softmax weights to 16-bit fixed point per head
// (v_i4_fixed); kernels.h states the rounding, test_attention its tolerances.
//
// Prefill (prefill_task_avx2): a tile of up to 32 rows (query positions × heads of one kv head) against key blocks
// of kKB tokens dequantized once into fp32 scratch; S = Q·K^T by 2×4 dot-product tiles, O += P·V by 4-row × 16-dim
// register tiles, online softmax per row, causal limit (and sliding-window lower limit) per row.
// K and V may have different element types (KVView::k_type / v_type): decode is instantiated per (K, V) pair,
// prefill dequantizes each side with its own row converter.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "attention_impl.h"
#include "kv_common.h"
#include "simd_avx2.h"
#include "tls.h"

namespace quanteval::detail {
namespace {

using namespace simd;

constexpr int kTB = 64;  // decode: tokens per softmax block
constexpr int kWS = kTB + 2;  // int4 V, MHA: bytes a head for the block's weight bytes (t <= kTB, pairs)
constexpr int kKB = 64;  // prefill: keys per block

// ── Element access per KV type, in kernel layout ────────────────────────────────────────────────────────────────
// A row is consumed in `steps(D)` SIMD steps; step i yields N vectors of 8 fp32 values (codes for int8/int4, the
// values themselves for f32/f16) that pair with kernel-layout positions pos(i, 0..N-1). The last D % 8 (f32, f16,
// int8) or the last (D/2) % 8 bytes (int4) are the scalar tail.
template <KVType T> struct Codec;
template <> struct Codec<KVType::F32> {
  static constexpr int N = 1;
  static int steps(int D) { return D / 8; }
  static int pos(int i, int, int) { return 8 * i; }
  static void load(const uint8_t* row, int i, __m256* v) { v[0] = _mm256_loadu_ps((const float*)row + 8 * i); }
  static float code(const uint8_t* row, int p, int) { return ((const float*)row)[p]; }
  static int tail_begin(int D) { return D / 8 * 8; }
};
template <> struct Codec<KVType::F16> {
  static constexpr int N = 1;
  static int steps(int D) { return D / 8; }
  static int pos(int i, int, int) { return 8 * i; }
  static void load(const uint8_t* row, int i, __m256* v) {
    v[0] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)((const uint16_t*)row + 8 * i)));
  }
  static float code(const uint8_t* row, int p, int) { return f16_to_f32(((const uint16_t*)row)[p]); }
  static int tail_begin(int D) { return D / 8 * 8; }
};
template <> struct Codec<KVType::I8> {
  static constexpr int N = 1;
  static int steps(int D) { return D / 8; }
  static int pos(int i, int, int) { return 8 * i; }
  static void load(const uint8_t* row, int i, __m256* v) {
    v[0] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(row + 8 * i))));
  }
  static float code(const uint8_t* row, int p, int) { return (float)row[p]; }
  static int tail_begin(int D) { return D / 8 * 8; }
};
template <> struct Codec<KVType::I4> {
  static constexpr int N = 2;
  static int steps(int D) { return D / 2 / 8; }
  static int pos(int i, int n, int D) { return 8 * i + n * (D / 2); }
  // 8 bytes broadcast to both lanes, one in-lane byte shuffle puts byte k alone in dword k (lane 0: bytes 0-3,
  // lane 1: bytes 4-7); the low nibble is then an AND and the high nibble a 32-bit shift. 6 uops for 16 codes where
  // two nibble splits and two lane-crossing widenings (vpmovzxbd) took 8.
  static void load(const uint8_t* row, int i, __m256* v) {
    int64_t bits;
    std::memcpy(&bits, row + 8 * i, 8);
    const __m256i b = _mm256_set1_epi64x(bits);
    const __m256i spread = _mm256_setr_epi8(0, -1, -1, -1, 1, -1, -1, -1, 2, -1, -1, -1, 3, -1, -1, -1,
                                            4, -1, -1, -1, 5, -1, -1, -1, 6, -1, -1, -1, 7, -1, -1, -1);
    const __m256i d = _mm256_shuffle_epi8(b, spread);
    v[0] = _mm256_cvtepi32_ps(_mm256_and_si256(d, _mm256_set1_epi32(0x0F)));
    v[1] = _mm256_cvtepi32_ps(_mm256_srli_epi32(d, 4));
  }
  // Kernel-layout position p: p < D/2 is dim 2p (low nibble of byte p), else dim 2(p - D/2) + 1.
  static float code(const uint8_t* row, int p, int D) {
    const int h = D / 2;
    return p < h ? (float)(row[p] & 0xF) : (float)(row[p - h] >> 4);
  }
  static int tail_begin(int D) { return D / 2 / 8 * 8; }  // in bytes; tail covers positions j and j + D/2
};

// Kernel layout of a D-vector (identity except int4: [even dims | odd dims]).
template <KVType T>
inline int kernel_pos(int d, int D) {
  if constexpr (T == KVType::I4) return (d & 1) ? D / 2 + d / 2 : d / 2;
  else return d;
}

// Scalar tail of a dot product row·q (kernel layout).
template <KVType T>
inline float dot_tail(const uint8_t* row, const float* q, int D) {
  float s = 0.f;
  if constexpr (T == KVType::I4) {
    for (int j = Codec<T>::tail_begin(D); j < D / 2; j++)
      s += q[j] * Codec<T>::code(row, j, D) + q[j + D / 2] * Codec<T>::code(row, j + D / 2, D);
  } else {
    for (int d = Codec<T>::tail_begin(D); d < D; d++) s += q[d] * Codec<T>::code(row, d, D);
  }
  return s;
}

// Dot products of TT cached rows with GT query vectors (kernel layout, stride D): out[tt * GT + gt].
// Two accumulators per output (the two int4 nibble vectors, or even/odd steps) so that 8 independent FMA chains
// hide the FMA latency.
template <KVType T, int TT, int GT>
inline void dot_tile(const uint8_t* const* rows, const float* q, int D, float* out) {
  using C = Codec<T>;
  constexpr int A = TT * GT;
  __m256 acc[A][2];
  for (int a = 0; a < A; a++) acc[a][0] = acc[a][1] = _mm256_setzero_ps();
  const int ns = C::steps(D);
  // One "unit" = 2 vectors per row: the two nibble vectors of an int4 step, or two consecutive steps otherwise.
  constexpr int SPU = C::N == 2 ? 1 : 2;  // steps per unit
  int i = 0;
  for (; i + SPU <= ns; i += SPU) {
    // Query vectors of this unit: kept in registers for one head (reused by TT rows), read from L1 as FMA memory
    // operands for several heads (8 accumulators + 2·GT query vectors would not fit in 16 registers).
    const float* qp[2] = {q + (C::N == 2 ? C::pos(i, 0, D) : C::pos(i, 0, D)),
                          q + (C::N == 2 ? C::pos(i, 1, D) : C::pos(i + 1, 0, D))};
    __m256 q0[2] = {_mm256_loadu_ps(qp[0]), _mm256_loadu_ps(qp[1])};
#pragma GCC unroll 4
    for (int tt = 0; tt < TT; tt++) {
      __m256 v[2];
      if constexpr (C::N == 2) C::load(rows[tt], i, v);
      else { C::load(rows[tt], i, v); C::load(rows[tt], i + 1, v + 1); }
#pragma GCC unroll 4
      for (int gt = 0; gt < GT; gt++)
        for (int u = 0; u < 2; u++)
          acc[tt * GT + gt][u] = _mm256_fmadd_ps(GT == 1 ? q0[u] : _mm256_loadu_ps(qp[u] + gt * D), v[u],
                                                 acc[tt * GT + gt][u]);
    }
  }
  for (; i < ns; i++) {  // a last odd step (N == 1)
    for (int tt = 0; tt < TT; tt++) {
      __m256 v[C::N];
      C::load(rows[tt], i, v);
      for (int gt = 0; gt < GT; gt++) acc[tt * GT + gt][0] = _mm256_fmadd_ps(_mm256_loadu_ps(q + gt * D + C::pos(i, 0, D)), v[0], acc[tt * GT + gt][0]);
    }
  }
  __m256 sum[A];
  for (int a = 0; a < A; a++) sum[a] = _mm256_add_ps(acc[a][0], acc[a][1]);
  if constexpr (A == 4) {
    _mm_storeu_ps(out, hsum4x8(sum[0], sum[1], sum[2], sum[3]));
  } else {
    for (int a = 0; a < A; a++) out[a] = hsum8(sum[a]);
  }
  for (int tt = 0; tt < TT; tt++)
    for (int gt = 0; gt < GT; gt++) out[tt * GT + gt] += dot_tail<T>(rows[tt], q + gt * D, D);
}

// acc[GT][D] (kernel layout) += Σ_t w[t * ws + gt] · (row_t - z_t) (codes minus zero point, or values), t < n.
// The zero-point term of the block, zw[gt] = Σ_t w_t z_t (the caller's, 0 for f32/f16), is taken off each
// accumulator once before the block's tokens add w_t c_t: the partial sums swing by at most n · max w · 15 (int4)
// within a block, so the rounding error stays that of per-token subtraction within a small factor, and no element
// pays a subtract. (One Σ w·z term for the whole context instead grows with it and cancels against Σ w·c: ~10x the
// rounding error at a few thousand tokens.)
// One pass keeps GT × NS × N accumulators in registers across the n tokens, each token adding one independent FMA
// to each of them.
template <KVType T, int GT, int NS>
__attribute__((always_inline)) inline void v_pass(const uint8_t* const* rows, int n, const float* w, int ws,
                                                  const float* zw, int D, int i, float* acc) {
  using C = Codec<T>;
  constexpr bool quant = T == KVType::I8 || T == KVType::I4;
  constexpr int V = NS * C::N;
  __m256 a[GT][V];
  for (int gt = 0; gt < GT; gt++) {
    const __m256 zb = quant ? _mm256_set1_ps(zw[gt]) : _mm256_setzero_ps();
    for (int s = 0; s < NS; s++)
      for (int k = 0; k < C::N; k++) {
        a[gt][s * C::N + k] = _mm256_loadu_ps(acc + gt * D + C::pos(i + s, k, D));
        if constexpr (quant) a[gt][s * C::N + k] = _mm256_sub_ps(a[gt][s * C::N + k], zb);
      }
  }
  for (int t = 0; t < n; t++) {
    __m256 wb[GT];
    for (int gt = 0; gt < GT; gt++) wb[gt] = _mm256_broadcast_ss(w + (size_t)t * ws + gt);
    // Step by step, so that only one step's vectors are live beside the accumulators.
#pragma GCC unroll 8
    for (int s = 0; s < NS; s++) {
      __m256 v[C::N];
      C::load(rows[t], i + s, v);
#pragma GCC unroll 4
      for (int gt = 0; gt < GT; gt++)
        for (int k = 0; k < C::N; k++) a[gt][s * C::N + k] = _mm256_fmadd_ps(wb[gt], v[k], a[gt][s * C::N + k]);
    }
  }
  for (int gt = 0; gt < GT; gt++)
    for (int s = 0; s < NS; s++)
      for (int k = 0; k < C::N; k++) _mm256_storeu_ps(acc + gt * D + C::pos(i + s, k, D), a[gt][s * C::N + k]);
}

template <KVType T, int GT>
inline void v_accum(const uint8_t* const* rows, int n, const float* w, int ws, const float* zw, int D, float* acc) {
  using C = Codec<T>;
  constexpr bool quant = T == KVType::I8 || T == KVType::I4;
  // Steps per pass: 4 accumulators per head group (8 for four int4 heads) — enough independent FMA chains while the
  // widening/convert work dominates, and no spills of the accumulators to the stack.
  constexpr int NS = std::max(1, 4 / (GT * C::N));
  const int ns = C::steps(D);
  int i = 0;
  for (; i + NS <= ns; i += NS) v_pass<T, GT, NS>(rows, n, w, ws, zw, D, i, acc);
  if constexpr (NS >= 4)
    for (; i + NS / 2 <= ns; i += NS / 2) v_pass<T, GT, NS / 2>(rows, n, w, ws, zw, D, i, acc);
  for (; i < ns; i++) v_pass<T, GT, 1>(rows, n, w, ws, zw, D, i, acc);
  // Scalar tail positions.
  const int tb = C::tail_begin(D);
  const int tail_end = T == KVType::I4 ? D / 2 : D;
  for (int j = tb; j < tail_end; j++)
    for (int gt = 0; gt < GT; gt++) {
      // Position j, and for int4 its odd-dim partner j + D/2 (the same byte's high nibble).
      for (int k = 0; k < (T == KVType::I4 ? 2 : 1); k++) {
        const int p = j + k * (D / 2);
        float a = acc[gt * D + p];
        if constexpr (quant) a -= zw[gt];
        for (int t = 0; t < n; t++) a += w[(size_t)t * ws + gt] * C::code(rows[t], p, D);
        acc[gt * D + p] = a;
      }
    }
}

// ── int4 keys against a single query head, in integer arithmetic ──────────────────────────────────────────────
// With one query head per kv head (MHA) the float path spends 6 uops unpacking 16 codes for 2 FMAs. Instead the
// query is rounded once to 16-bit fixed point, q ≈ u·f with f = 256·a1 + a0, |f| <= 32639 and a1, a0 signed bytes,
// and vpmaddubsw multiplies 32 unsigned codes by 32 signed query bytes at once: ~6 uops per 32 codes instead of 12
// for the former two 16-bit limbs (vpmaddwd), and an exact integer sum of codes times f. The rounding is at most
// u/2 = max|q|/65278 per element (a 16-bit query; fp16 operands, the field's usual, keep 11 bits), and the caller
// takes the zero point off with Σ_d u·f_d, the same rounded query, so the score is exactly
// s·Σ_d u·f_d·(c_d − z).
struct QFixed {
  const int8_t* a1;     // [D + 32] kernel layout ([even dims | odd dims]), zero padded: high bytes of f
  const int8_t* a0;     // [D + 32] low bytes of f (signed)
  const int32_t* full;  // [D] f, for the scalar tail
  const int16_t* f16;   // [D] f as int16 (int8 keys), or nullptr
  float u;
  float sum;            // u·Σ_d f_d
};

constexpr int32_t kQFixedMax = 32639;  // 256·127 + 127: a1 = (f − a0) / 256 stays in [-127, 127]

// a1 / a0 (int4 keys) or f16 (int8 keys) may be null: only the form the keys' kernel reads is written.
inline QFixed make_qfixed(const float* qk, int D, int8_t* a1, int8_t* a0, int32_t* full, int16_t* f16) {
  __m256 mv = _mm256_setzero_ps();
  const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  int d = 0;
  for (; d + 8 <= D; d += 8) mv = _mm256_max_ps(mv, _mm256_and_ps(absmask, _mm256_loadu_ps(qk + d)));
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mv), _mm256_extractf128_ps(mv, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  float m = std::max(_mm_cvtss_f32(m4), _mm_cvtss_f32(_mm_movehdup_ps(m4)));
  for (; d < D; d++) m = std::max(m, std::fabs(qk[d]));
  const float u = m > 0 ? m / (float)kQFixedMax : 1.f;
  const float inv = m > 0 ? (float)kQFixedMax / m : 0.f;
  // f = round-to-nearest-even(q / u) (vcvtps2dq and nearbyint alike), clamped; a0 its low byte as signed, a1 the rest.
  auto fix = [&](float x) { return std::clamp((int32_t)std::nearbyint(x * inv), -kQFixedMax, kQFixedMax); };
  __m256i fsum = _mm256_setzero_si256();
  const __m256 vinv = _mm256_set1_ps(inv);
  const __m256i lo = _mm256_set1_epi32(-kQFixedMax), hi = _mm256_set1_epi32(kQFixedMax);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  d = 0;
  for (; d + 32 <= D; d += 32) {
    __m256i f[4], b0[4], b1[4];
    for (int k = 0; k < 4; k++) {
      f[k] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(qk + d + 8 * k), vinv));
      f[k] = _mm256_min_epi32(_mm256_max_epi32(f[k], lo), hi);
      _mm256_storeu_si256((__m256i*)(full + d + 8 * k), f[k]);
      fsum = _mm256_add_epi32(fsum, f[k]);
      b0[k] = _mm256_srai_epi32(_mm256_slli_epi32(f[k], 24), 24);
      b1[k] = _mm256_srai_epi32(_mm256_sub_epi32(f[k], b0[k]), 8);
    }
    if (a0) {
      auto pack = [&](const __m256i* v) {  // 32 int32 in [-128, 127] -> 32 int8 in order
        const __m256i w = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
        return _mm256_permutevar8x32_epi32(w, order);
      };
      _mm256_storeu_si256((__m256i*)(a0 + d), pack(b0));
      _mm256_storeu_si256((__m256i*)(a1 + d), pack(b1));
    }
    if (f16)  // 16 int32 -> 16 int16 in order, twice
      for (int k = 0; k < 4; k += 2)
        _mm256_storeu_si256((__m256i*)(f16 + d + 8 * k),
                            _mm256_permute4x64_epi64(_mm256_packs_epi32(f[k], f[k + 1]), 0xD8));
  }
  alignas(32) int32_t fl[8];
  _mm256_store_si256((__m256i*)fl, fsum);
  int64_t fs = 0;
  for (int i = 0; i < 8; i++) fs += fl[i];
  for (; d < D; d++) {
    const int32_t f = fix(qk[d]);
    full[d] = f;
    if (a0) {
      a0[d] = (int8_t)(uint8_t)(f & 0xFF);  // the low byte, read as signed: [-128, 127]
      a1[d] = (int8_t)((f - a0[d]) / 256);  // exact
    }
    if (f16) f16[d] = (int16_t)f;
    fs += f;
  }
  if (a0) {
    std::memset(a1 + D, 0, 32);
    std::memset(a0 + D, 0, 32);
  }
  return {a1, a0, full, f16, u, (float)((double)u * (double)fs)};
}

// out[t] = u · (the int32 lane sum of acc[t]), t < TT: one hadd tree for TT = 4. The fixed-point dot products'
// epilogue; their sums stay below 2^31 (see each kernel's bound).
template <int TT>
__attribute__((always_inline)) inline void store_scaled_sums(const __m256i* acc, float u, float* out) {
  if constexpr (TT == 4) {
    _mm_storeu_ps(out, _mm_mul_ps(_mm_cvtepi32_ps(hsum4x8_i32(acc[0], acc[1], acc[2], acc[3])), _mm_set1_ps(u)));
  } else {
    for (int t = 0; t < TT; t++) out[t] = u * (float)hsum8_i32(acc[t]);
  }
}

// Σ_d f_d c_d of TT int4 rows (int32 lanes, exact for D <= 2048), and the rows' scalar tails (int64).
// Per 32-byte load (64 codes): the low and high nibbles as bytes (AND; shift, AND), and per limb two vpmaddubsw
// (pair sums |.| <= 2·15·128) added in int16; up to 4 loads add in int16 (|.| <= 4·2·3840 < 2^15) before vpmaddwd
// widens them, the high limb times 256.
template <int TT>
inline void dot_i4_fixed(const uint8_t* const* rows, const QFixed& qf, int D, float* out) {
  const int H2 = D / 2;  // bytes per row; byte j holds dims 2j (low nibble) and 2j + 1 (high)
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i w1 = _mm256_set1_epi16(256), w0 = _mm256_set1_epi16(1);
  __m256i acc[TT];
  for (int t = 0; t < TT; t++) acc[t] = _mm256_setzero_si256();
  auto step = [&](int j, bool half, __m256i* s1, __m256i* s0) {
    const __m256i he = _mm256_loadu_si256((const __m256i*)(qf.a1 + j));
    const __m256i ho = _mm256_loadu_si256((const __m256i*)(qf.a1 + H2 + j));
    const __m256i le = _mm256_loadu_si256((const __m256i*)(qf.a0 + j));
    const __m256i lo = _mm256_loadu_si256((const __m256i*)(qf.a0 + H2 + j));
#pragma GCC unroll 4
    for (int t = 0; t < TT; t++) {
      const __m256i x = half ? _mm256_zextsi128_si256(_mm_loadu_si128((const __m128i*)(rows[t] + j)))
                             : _mm256_loadu_si256((const __m256i*)(rows[t] + j));
      const __m256i ce = _mm256_and_si256(x, m4), co = _mm256_and_si256(_mm256_srli_epi16(x, 4), m4);
      s1[t] = _mm256_add_epi16(s1[t], _mm256_add_epi16(_mm256_maddubs_epi16(ce, he), _mm256_maddubs_epi16(co, ho)));
      s0[t] = _mm256_add_epi16(s0[t], _mm256_add_epi16(_mm256_maddubs_epi16(ce, le), _mm256_maddubs_epi16(co, lo)));
    }
  };
  auto flush = [&](const __m256i* s1, const __m256i* s0) {
    for (int t = 0; t < TT; t++)
      acc[t] = _mm256_add_epi32(acc[t], _mm256_add_epi32(_mm256_madd_epi16(s1[t], w1), _mm256_madd_epi16(s0[t], w0)));
  };
  int j = 0;
  while (j + 32 <= H2) {
    __m256i s1[TT], s0[TT];
    for (int t = 0; t < TT; t++) s1[t] = s0[t] = _mm256_setzero_si256();
    for (int k = 0; k < 4 && j + 32 <= H2; k++, j += 32) step(j, false, s1, s0);
    flush(s1, s0);
  }
  if (j + 16 <= H2) {  // the upper half of x is zero: the query bytes read past this half meet zero codes
    __m256i s1[TT], s0[TT];
    for (int t = 0; t < TT; t++) s1[t] = s0[t] = _mm256_setzero_si256();
    step(j, true, s1, s0);
    flush(s1, s0);
    j += 16;
  }
  store_scaled_sums<TT>(acc, qf.u, out);
  for (int t = 0; t < TT; t++) {  // the scalar tail: bytes j .. H2 - 1
    int64_t s = 0;
    for (int jj = j; jj < H2; jj++)
      s += (int64_t)(rows[t][jj] & 0xF) * qf.full[jj] + (int64_t)(rows[t][jj] >> 4) * qf.full[H2 + jj];
    if (j < H2) out[t] += qf.u * (float)s;
  }
}

// The common head dims (H2 = D/2 bytes a multiple of 32, up to 128 bytes: D = 64, 128, 192, 256): NL whole loads a
// row, no tail, nothing kept across calls but the query bytes (memory operands).
// One 32-byte step of the fixed-point int4 scores: the low / high nibble vectors ce, co of bytes j..j+31 of a row
// against the query f, added (or, first, written) to the high- and low-limb int16 sums s1, s0. The empty asm keeps
// GCC from reassociating the sums (it computed every product first and spilled them).
__attribute__((always_inline)) inline void q16_step(__m256i ce, __m256i co, const QFixed& f, int j, int H2, bool first,
                                                    __m256i& s1, __m256i& s0) {
  const __m256i p1 = _mm256_add_epi16(_mm256_maddubs_epi16(ce, _mm256_loadu_si256((const __m256i*)(f.a1 + j))),
                                      _mm256_maddubs_epi16(co, _mm256_loadu_si256((const __m256i*)(f.a1 + H2 + j))));
  const __m256i p0 = _mm256_add_epi16(_mm256_maddubs_epi16(ce, _mm256_loadu_si256((const __m256i*)(f.a0 + j))),
                                      _mm256_maddubs_epi16(co, _mm256_loadu_si256((const __m256i*)(f.a0 + H2 + j))));
  s1 = first ? p1 : _mm256_add_epi16(s1, p1);
  s0 = first ? p0 : _mm256_add_epi16(s0, p0);
  asm("" : "+x"(s1), "+x"(s0));
}
// The int32 sums of a row (or head): s0 + 256·s1, pairwise.
__attribute__((always_inline)) inline __m256i q16_widen(__m256i s1, __m256i s0) {
  return _mm256_add_epi32(_mm256_madd_epi16(s1, _mm256_set1_epi16(256)), _mm256_madd_epi16(s0, _mm256_set1_epi16(1)));
}

template <int TT, int NL>
__attribute__((always_inline)) inline void dot_i4_fixed_nl(const uint8_t* const* rows, const QFixed& qf, int H2, float* out) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  __m256i s1[TT], s0[TT];
#pragma GCC unroll 4
  for (int k = 0; k < NL; k++) {
    const int j = 32 * k;
#pragma GCC unroll 4
    for (int t = 0; t < TT; t++) {
      const __m256i x = _mm256_loadu_si256((const __m256i*)(rows[t] + j));
      q16_step(_mm256_and_si256(x, m4), _mm256_and_si256(_mm256_srli_epi16(x, 4), m4), qf, j, H2, k == 0, s1[t], s0[t]);
    }
  }
  __m256i acc[TT];
  for (int t = 0; t < TT; t++) acc[t] = q16_widen(s1[t], s0[t]);
  store_scaled_sums<TT>(acc, qf.u, out);
}

// Grouped-query attention: one int4 row against 4 query heads' fixed-point queries (qf[0..3]), NL whole loads: the
// row is unpacked once for the 4 heads. out[0..3] = u_g · Σ_d f_gd c_d.
template <int NL>
__attribute__((always_inline)) inline void dot_i4_fixed_g4(const uint8_t* row, const QFixed* qf, int H2, float* out) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  __m256i s1[4], s0[4];
#pragma GCC unroll 4
  for (int k = 0; k < NL; k++) {
    const int j = 32 * k;
    const __m256i x = _mm256_loadu_si256((const __m256i*)(row + j));
    const __m256i ce = _mm256_and_si256(x, m4), co = _mm256_and_si256(_mm256_srli_epi16(x, 4), m4);
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) q16_step(ce, co, qf[g], j, H2, k == 0, s1[g], s0[g]);
  }
  __m256i acc[4];
  for (int g = 0; g < 4; g++) acc[g] = q16_widen(s1[g], s0[g]);
  const __m128 v = _mm_cvtepi32_ps(hsum4x8_i32(acc[0], acc[1], acc[2], acc[3]));
  _mm_storeu_ps(out, _mm_mul_ps(v, _mm_setr_ps(qf[0].u, qf[1].u, qf[2].u, qf[3].u)));
}

template <int NL>
__attribute__((noinline)) void scores_i4_fixed_g(const uint8_t* const* rows, int n, const QFixed* qf, int G, int H2, float* S, int ts) {
  for (int t = 0; t < n; t++)
    for (int g = 0; g < G; g += 4) dot_i4_fixed_g4<NL>(rows[t], qf + g, H2, S + (size_t)t * ts + g);
}

template <int NL>
__attribute__((noinline)) void scores_i4_fixed_nl(const uint8_t* const* rows, int n, const QFixed& qf, int H2, float* S,
                                                  int ts) {
  alignas(16) float o[4];
  int t = 0;
  for (; t + 4 <= n; t += 4) {
    dot_i4_fixed_nl<4, NL>(rows + t, qf, H2, o);
    for (int k = 0; k < 4; k++) S[(size_t)(t + k) * ts] = o[k];
  }
  for (; t < n; t++) dot_i4_fixed_nl<1, NL>(rows + t, qf, H2, S + (size_t)t * ts);
}

// ── int4 values against one head's weights, in integer arithmetic ─────────────────────────────────────────────
// With one query head per kv head (MHA) each V row meets one weight a token, and the float path spends 8 uops per
// 16 codes (unpack, 2 converts, 2 FMAs). Instead the block's weights w_t = p_t·s_t (>= 0) are rounded to 16-bit fixed
// point, w_t ≈ uw·f_t, f_t = 256·b1_t + b0_t in [0, 65535] with uw = max_t w_t / 65535 (so a weight is off by at
// most uw/2, 2^-17 of the block's largest), and two tokens' codes, interleaved byte by byte, meet the two tokens'
// weight bytes in vpmaddubsw (unsigned weight bytes x codes 0..15 as signed bytes: pair sums <= 2·255·15), summed in
// int16 over 4 token pairs (<= 30600), then widened, combined (s0 + 256·s1 < 2^23, exact in fp32) and added as
// acc += uw·x. The block's zero-point term zw = uw·Σ_t f_t z_t uses the same rounded weights, so the result is
// exactly that of the rounded weights. A token pair's 32-byte column (64 codes each) costs ~30 uops, ~4 per 16 codes
// of a token where the float path spends 8, plus a per-block flush (widen, convert, one FMA per 8 dims).
// acc: kernel layout ([even dims | odd dims]); H2 = D/2 bytes a row, a multiple of 32; n tokens (rows[n] is read
// when n is odd, and must be a row of zeros, with b1[n] = b0[n] = 0).
//
// One 32-byte column (bytes j..j+31: 32 even dims from the low nibbles, 32 odd dims from the high ones) of NP
// token pairs into acc (kernel layout: even dims at acc[j..], odd dims at acc[H2 + j..]).
template <int NP>
__attribute__((always_inline)) inline void v_i4_fixed_col(const uint8_t* const* rows, int j, int H2,
                                                          const uint8_t* b1, const uint8_t* b0, __m256 vu,
                                                          const __m256* vz, float* acc) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i m01 = _mm256_set1_epi32(0x01000001);  // int16 pairs (1, 256): s0 + 256·s1
  __m256i s1[2][2], s0[2][2];  // [half][unpack lo / hi]
#pragma GCC unroll 4
  for (int q = 0; q < NP; q++) {
    const int t = 2 * q;
    const __m256i x0 = _mm256_loadu_si256((const __m256i*)(rows[t] + j));
    const __m256i x1 = _mm256_loadu_si256((const __m256i*)(rows[t + 1] + j));
    int16_t p1, p0;
    std::memcpy(&p1, b1 + t, 2);
    std::memcpy(&p0, b0 + t, 2);
    const __m256i w1 = _mm256_set1_epi16(p1), w0 = _mm256_set1_epi16(p0);
#pragma GCC unroll 2
    for (int half = 0; half < 2; half++) {
      const __m256i c0 = _mm256_and_si256(half ? _mm256_srli_epi16(x0, 4) : x0, m4);
      const __m256i c1 = _mm256_and_si256(half ? _mm256_srli_epi16(x1, 4) : x1, m4);
      const __m256i ul = _mm256_unpacklo_epi8(c0, c1), uh = _mm256_unpackhi_epi8(c0, c1);
      const __m256i a1l = _mm256_maddubs_epi16(w1, ul), a0l = _mm256_maddubs_epi16(w0, ul);
      const __m256i a1h = _mm256_maddubs_epi16(w1, uh), a0h = _mm256_maddubs_epi16(w0, uh);
      s1[half][0] = q ? _mm256_add_epi16(s1[half][0], a1l) : a1l;
      s0[half][0] = q ? _mm256_add_epi16(s0[half][0], a0l) : a0l;
      s1[half][1] = q ? _mm256_add_epi16(s1[half][1], a1h) : a1h;
      s0[half][1] = q ? _mm256_add_epi16(s0[half][1], a0h) : a0h;
    }
  }
  for (int half = 0; half < 2; half++) {
    float* a = acc + half * H2 + j;
    // s[0]: bytes 0-7 | 16-23 of the 32, s[1]: 8-15 | 24-31; unpacking the int16 pairs splits each in 4 | 4.
    const __m256 A = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_unpacklo_epi16(s0[half][0], s1[half][0]), m01));
    const __m256 B = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_unpackhi_epi16(s0[half][0], s1[half][0]), m01));
    const __m256 C = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_unpacklo_epi16(s0[half][1], s1[half][1]), m01));
    const __m256 E = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_unpackhi_epi16(s0[half][1], s1[half][1]), m01));
    // A: 0-3 | 16-19, B: 4-7 | 20-23, C: 8-11 | 24-27, E: 12-15 | 28-31
    const __m256 x[4] = {_mm256_permute2f128_ps(A, B, 0x20), _mm256_permute2f128_ps(C, E, 0x20),
                         _mm256_permute2f128_ps(A, B, 0x31), _mm256_permute2f128_ps(C, E, 0x31)};
    for (int k = 0; k < 4; k++) {
      __m256 v = _mm256_loadu_ps(a + 8 * k);
      if (vz) v = _mm256_sub_ps(v, *vz);
      _mm256_storeu_ps(a + 8 * k, _mm256_fmadd_ps(x[k], vu, v));
    }
  }
}

inline void v_i4_fixed(const uint8_t* const* rows, int n, const uint8_t* b1, const uint8_t* b0, float uw, float zw,
                       int H2, float* acc) {
  const __m256 vu = _mm256_set1_ps(uw), vz = _mm256_set1_ps(zw);
  // int16 sums over at most 4 pairs (8 tokens) at a time; the zero-point term with the first.
  for (int t0 = 0; t0 < n; t0 += 8) {
    const int np = (std::min(n, t0 + 8) - t0 + 1) / 2;
    const __m256* z = t0 == 0 ? &vz : nullptr;
    for (int j = 0; j < H2; j += 32) {
      switch (np) {
        case 1: v_i4_fixed_col<1>(rows + t0, j, H2, b1 + t0, b0 + t0, vu, z, acc); break;
        case 2: v_i4_fixed_col<2>(rows + t0, j, H2, b1 + t0, b0 + t0, vu, z, acc); break;
        case 3: v_i4_fixed_col<3>(rows + t0, j, H2, b1 + t0, b0 + t0, vu, z, acc); break;
        default: v_i4_fixed_col<4>(rows + t0, j, H2, b1 + t0, b0 + t0, vu, z, acc); break;
      }
    }
  }
}

// The block's weights of 8 query heads (MHA, lanes of one chunk) as v_i4_fixed wants them: w[t] (t < n, 8 heads a
// vector, row stride ws; zero points vzero[t * zs + lane]) -> b1/b0[head * bs + t], uw[8], zw[8] = uw·Σ_t f_t z_t;
// zeros at t = n.
inline void quantize_weights8(const float* w, int n, int ws, __m256 wmax, const float* vzero, int zs, int bs,
                              uint8_t* b1, uint8_t* b0, float* uw, float* zw) {
  const __m256 pos = _mm256_cmp_ps(wmax, _mm256_setzero_ps(), _CMP_GT_OQ);
  const __m256 inv = _mm256_and_ps(pos, _mm256_div_ps(_mm256_set1_ps(65535.f), wmax));
  const __m256 u = _mm256_mul_ps(wmax, _mm256_set1_ps(1.f / 65535.f));
  const __m256i fmax = _mm256_set1_epi32(65535);
  __m256 zf = _mm256_setzero_ps();
  if (n == 8) {  // the usual block: an 8 x 8 transpose of the 16-bit f in registers (the scalar loop below: ~4x the uops)
    __m256i p[4];  // per 128-bit lane (heads 0-3 | 4-7): [token 2k: 4 heads, token 2k+1: 4 heads] as uint16
    for (int k = 0; k < 4; k++) {
      __m256i fi[2];
      for (int i = 0; i < 2; i++) {
        const int t = 2 * k + i;
        fi[i] = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(w + (size_t)t * ws), inv)), fmax);
        zf = _mm256_fmadd_ps(_mm256_cvtepi32_ps(fi[i]), _mm256_loadu_ps(vzero + (size_t)t * zs), zf);
      }
      p[k] = _mm256_packus_epi32(fi[0], fi[1]);
    }
    const __m256i a0 = _mm256_unpacklo_epi16(p[0], p[1]), a1 = _mm256_unpackhi_epi16(p[0], p[1]);
    const __m256i c0 = _mm256_unpacklo_epi16(p[2], p[3]), c1 = _mm256_unpackhi_epi16(p[2], p[3]);
    const __m256i al = _mm256_unpacklo_epi16(a0, a1), ah = _mm256_unpackhi_epi16(a0, a1);  // tokens 0-3: heads 0,1 | 2,3
    const __m256i cl = _mm256_unpacklo_epi16(c0, c1), ch = _mm256_unpackhi_epi16(c0, c1);  // tokens 4-7
    // r[h]: lane-local head h (heads h and 4 + h), tokens 0-7
    const __m256i r[4] = {_mm256_unpacklo_epi64(al, cl), _mm256_unpackhi_epi64(al, cl),
                          _mm256_unpacklo_epi64(ah, ch), _mm256_unpackhi_epi64(ah, ch)};
    const __m256i lo8 = _mm256_set1_epi16(0xFF);
    auto store = [&](__m256i v, uint8_t* b, int h) {  // lanes [head h | head h + 1] x [head 4 + h | head 5 + h]
      const __m128i l0 = _mm256_castsi256_si128(v), l1 = _mm256_extracti128_si256(v, 1);
      _mm_storel_epi64((__m128i*)(b + h * bs), l0);
      _mm_storeh_pd((double*)(b + (h + 1) * bs), _mm_castsi128_pd(l0));
      _mm_storel_epi64((__m128i*)(b + (h + 4) * bs), l1);
      _mm_storeh_pd((double*)(b + (h + 5) * bs), _mm_castsi128_pd(l1));
    };
    for (int h = 0; h < 4; h += 2) {
      store(_mm256_packus_epi16(_mm256_and_si256(r[h], lo8), _mm256_and_si256(r[h + 1], lo8)), b0, h);
      store(_mm256_packus_epi16(_mm256_srli_epi16(r[h], 8), _mm256_srli_epi16(r[h + 1], 8)), b1, h);
    }
  }
  alignas(32) int32_t f[8];
  for (int t = n == 8 ? 8 : 0; t < n; t++) {
    const __m256i fi = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(w + (size_t)t * ws), inv)), fmax);
    zf = _mm256_fmadd_ps(_mm256_cvtepi32_ps(fi), _mm256_loadu_ps(vzero + (size_t)t * zs), zf);
    _mm256_store_si256((__m256i*)f, fi);
    for (int l = 0; l < 8; l++) {
      b1[l * bs + t] = (uint8_t)(f[l] >> 8);
      b0[l * bs + t] = (uint8_t)f[l];
    }
  }
  for (int l = 0; l < 8; l++) b1[l * bs + n] = b0[l * bs + n] = 0;
  _mm256_storeu_ps(uw, u);
  _mm256_storeu_ps(zw, _mm256_mul_ps(zf, u));
}

// ── int8 keys against the same 16-bit fixed-point query ───────────────────────────────────────────────────────
// Codes widened to int16 (vpmovzxbw) meet f (|f| <= 32639, one int16) in vpmaddwd: 3 uops per 16 codes and head
// where the float path spends 6 (widen to dwords, convert, FMA, per 8). Sums stay below 2^31 for head_dim <= 256
// (255 · 32639 · 256 < 2^31). MHA: 4 rows a pass; GQA: a row's codes widened once for 4 heads.
template <int TT>
__attribute__((always_inline)) inline void dot_i8_fixed(const uint8_t* const* rows, const QFixed& qf, int D, float* out) {
  __m256i acc[TT];
  for (int t = 0; t < TT; t++) acc[t] = _mm256_setzero_si256();
  for (int d = 0; d < D; d += 16) {
    const __m256i qv = _mm256_loadu_si256((const __m256i*)(qf.f16 + d));
#pragma GCC unroll 4
    for (int t = 0; t < TT; t++)
      acc[t] = _mm256_add_epi32(acc[t], _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i*)(rows[t] + d))), qv));
  }
  store_scaled_sums<TT>(acc, qf.u, out);
}

__attribute__((always_inline)) inline void dot_i8_fixed_g4(const uint8_t* row, const QFixed* qf, int D, float* out) {
  __m256i acc[4];
  for (int g = 0; g < 4; g++) acc[g] = _mm256_setzero_si256();
  for (int d = 0; d < D; d += 16) {
    const __m256i x = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i*)(row + d)));
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++)
      acc[g] = _mm256_add_epi32(acc[g], _mm256_madd_epi16(x, _mm256_loadu_si256((const __m256i*)(qf[g].f16 + d))));
  }
  const __m128 v = _mm_cvtepi32_ps(hsum4x8_i32(acc[0], acc[1], acc[2], acc[3]));
  _mm_storeu_ps(out, _mm_mul_ps(v, _mm_setr_ps(qf[0].u, qf[1].u, qf[2].u, qf[3].u)));
}

__attribute__((noinline)) void scores_i8_fixed(const uint8_t* const* rows, int n, const QFixed* qf, int G, int D,
                                               float* S, int ts) {
  if (G > 1) {  // G % 4 == 0 (decode_task_t's condition)
    for (int t = 0; t < n; t++)
      for (int g = 0; g < G; g += 4) dot_i8_fixed_g4(rows[t], qf + g, D, S + (size_t)t * ts + g);
    return;
  }
  alignas(16) float o[4];
  int t = 0;
  for (; t + 4 <= n; t += 4) {
    dot_i8_fixed<4>(rows + t, *qf, D, o);
    for (int k = 0; k < 4; k++) S[(size_t)(t + k) * ts] = o[k];
  }
  for (; t < n; t++) dot_i8_fixed<1>(rows + t, *qf, D, S + (size_t)t * ts);
}

// Scores S[t * ts + g] (raw dot products) for n tokens and G heads; tiles keep 4 accumulators live.
// `qf` (int4 with G == 1 only) switches to the fixed-point integer path.
template <KVType T>
void block_scores(const uint8_t* const* rows, int n, const float* q, int G, int D, float* S, int ts, const QFixed* qf) {
  float o[4];
  if constexpr (T == KVType::I8) {
    if (qf) {
      scores_i8_fixed(rows, n, qf, G, D, S, ts);
      return;
    }
  }
  if constexpr (T == KVType::I4) {
    if (qf) {
      const int H2 = D / 2;
      if (G > 1) {  // G % 4 == 0 and whole loads (decode_task_t's condition)
        switch (H2 / 32) {
          case 1: scores_i4_fixed_g<1>(rows, n, qf, G, H2, S, ts); return;
          case 2: scores_i4_fixed_g<2>(rows, n, qf, G, H2, S, ts); return;
          case 3: scores_i4_fixed_g<3>(rows, n, qf, G, H2, S, ts); return;
          default: scores_i4_fixed_g<4>(rows, n, qf, G, H2, S, ts); return;
        }
      }
      if (H2 % 32 == 0 && H2 <= 128) {
        switch (H2 / 32) {
          case 1: scores_i4_fixed_nl<1>(rows, n, *qf, H2, S, ts); return;
          case 2: scores_i4_fixed_nl<2>(rows, n, *qf, H2, S, ts); return;
          case 3: scores_i4_fixed_nl<3>(rows, n, *qf, H2, S, ts); return;
          default: scores_i4_fixed_nl<4>(rows, n, *qf, H2, S, ts); return;
        }
      }
      int t = 0;
      for (; t + 4 <= n; t += 4) {
        dot_i4_fixed<4>(rows + t, *qf, D, o);
        for (int k = 0; k < 4; k++) S[(size_t)(t + k) * ts] = o[k];
      }
      for (; t < n; t++) dot_i4_fixed<1>(rows + t, *qf, D, S + (size_t)t * ts);
      return;
    }
  }
  int g = 0;
  for (; g < G;) {
    const int rem = G - g;
    if (rem >= 4) {
      for (int t = 0; t < n; t++) {
        dot_tile<T, 1, 4>(rows + t, q + g * D, D, o);
        for (int k = 0; k < 4; k++) S[(size_t)t * ts + g + k] = o[k];
      }
      g += 4;
    } else if (rem >= 2) {
      int t = 0;
      for (; t + 2 <= n; t += 2) {
        dot_tile<T, 2, 2>(rows + t, q + g * D, D, o);
        S[(size_t)t * ts + g] = o[0]; S[(size_t)t * ts + g + 1] = o[1];
        S[(size_t)(t + 1) * ts + g] = o[2]; S[(size_t)(t + 1) * ts + g + 1] = o[3];
      }
      for (; t < n; t++) {
        dot_tile<T, 1, 2>(rows + t, q + g * D, D, o);
        S[(size_t)t * ts + g] = o[0]; S[(size_t)t * ts + g + 1] = o[1];
      }
      g += 2;
    } else {
      int t = 0;
      for (; t + 4 <= n; t += 4) {
        dot_tile<T, 4, 1>(rows + t, q + g * D, D, o);
        for (int k = 0; k < 4; k++) S[(size_t)(t + k) * ts + g] = o[k];
      }
      for (; t < n; t++) dot_tile<T, 1, 1>(rows + t, q + g * D, D, S + (size_t)t * ts + g);
      g += 1;
    }
  }
}

// One vector of W query heads: __m256 (8 heads) or __m128 (4 heads, G = 4: Llama-3-8B, Mistral-7B).
template <int W> struct HeadVec;
template <> struct HeadVec<8> {
  using V = __m256;
  static V zero() { return _mm256_setzero_ps(); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static V bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static void store_sum(float* p, V a, V b) { _mm256_storeu_ps(p, _mm256_add_ps(a, b)); }
};
template <> struct HeadVec<4> {
  using V = __m128;
  static V zero() { return _mm_setzero_ps(); }
  static V load(const float* p) { return _mm_loadu_ps(p); }
  static V bcast(const float* p) { return _mm_broadcast_ss(p); }
  static V fma(V a, V b, V c) { return _mm_fmadd_ps(a, b, c); }
  static void store_sum(float* p, V a, V b) { _mm_storeu_ps(p, _mm_add_ps(a, b)); }
};

// Scores of n fp32 rows against W = 8 (or 4) query heads at a time (grouped-query attention, G a multiple of W, D
// even): the queries transposed, qT[g][d][W], so that one FMA multiplies a broadcast key element by the W heads'
// query elements and a token's scores for W heads come out as one vector, S[t * ts + W g .. + W - 1], without
// horizontal sums. 4 tokens a pass share each query vector load; even and odd dims go to separate accumulators (8
// FMA chains). The dot_tile path spent ~40% of its time stalled on the key rows' first load, one row at a time; this
// keeps 4 rows in flight. tinyllama-1.1b decode at context 512 (32 heads over 4 kv heads, D = 64): attention 4.95 ->
// 3.35 ms a step.
template <int W>
inline void scores_gqa(const float* const* rows, int n, const float* qT, int G, int D, float* S, int ts) {
  using H = HeadVec<W>;
  using V = typename H::V;
  for (int gw = 0; gw < G / W; gw++) {
    const float* qt = qT + (size_t)gw * D * W;
    float* s = S + W * gw;
    int t = 0;
    for (; t + 4 <= n; t += 4) {
      const float *r0 = rows[t], *r1 = rows[t + 1], *r2 = rows[t + 2], *r3 = rows[t + 3];
      V e0 = H::zero(), e1 = e0, e2 = e0, e3 = e0, o0 = e0, o1 = e0, o2 = e0, o3 = e0;
      for (int d = 0; d < D; d += 2) {
        const V qe = H::load(qt + d * W), qo = H::load(qt + (d + 1) * W);
        e0 = H::fma(H::bcast(r0 + d), qe, e0);
        e1 = H::fma(H::bcast(r1 + d), qe, e1);
        e2 = H::fma(H::bcast(r2 + d), qe, e2);
        e3 = H::fma(H::bcast(r3 + d), qe, e3);
        o0 = H::fma(H::bcast(r0 + d + 1), qo, o0);
        o1 = H::fma(H::bcast(r1 + d + 1), qo, o1);
        o2 = H::fma(H::bcast(r2 + d + 1), qo, o2);
        o3 = H::fma(H::bcast(r3 + d + 1), qo, o3);
      }
      H::store_sum(s + (size_t)t * ts, e0, o0);
      H::store_sum(s + (size_t)(t + 1) * ts, e1, o1);
      H::store_sum(s + (size_t)(t + 2) * ts, e2, o2);
      H::store_sum(s + (size_t)(t + 3) * ts, e3, o3);
    }
    for (; t < n; t++) {
      V e = H::zero(), o = e;
      for (int d = 0; d < D; d += 2) {
        e = H::fma(H::bcast(rows[t] + d), H::load(qt + d * W), e);
        o = H::fma(H::bcast(rows[t] + d + 1), H::load(qt + (d + 1) * W), o);
      }
      H::store_sum(s + (size_t)t * ts, e, o);
    }
  }
}

template <KVType T>
// Weights of head g for token t at w[t * ws + g], its block's zero-point term Σ_t w z at zw[g].
void block_v(const uint8_t* const* rows, int n, const float* w, int ws, const float* zw, int G, int D, float* acc) {
  int g = 0;
  for (; g + 4 <= G; g += 4) v_accum<T, 4>(rows, n, w + g, ws, zw + g, D, acc + (int64_t)g * D);
  for (; g + 2 <= G; g += 2) v_accum<T, 2>(rows, n, w + g, ws, zw + g, D, acc + (int64_t)g * D);
  for (; g < G; g++) v_accum<T, 1>(rows, n, w + g, ws, zw + g, D, acc + (int64_t)g * D);
}

// p[t] = exp(x[t] - m) in place for t < n; returns Σ p.
inline float exp_shift_sum(float* x, int n, float m) {
  const __m256 mv = _mm256_set1_ps(m);
  __m256 s = _mm256_setzero_ps();
  int t = 0;
  for (; t + 8 <= n; t += 8) {
    const __m256 p = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + t), mv));
    _mm256_storeu_ps(x + t, p);
    s = _mm256_add_ps(s, p);
  }
  float sum = hsum8(s);
  for (; t < n; t++) { x[t] = std::exp(x[t] - m); sum += x[t]; }
  return sum;
}

inline float max_of(const float* x, int n) {
  __m256 m = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  int t = 0;
  for (; t + 8 <= n; t += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + t));
  float r = hmax8(m);
  for (; t < n; t++) r = std::max(r, x[t]);
  return r;
}

inline void scale_vec(float* x, int n, float a) {
  const __m256 av = _mm256_set1_ps(a);
  int i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), av));
  for (; i < n; i++) x[i] *= a;
}

// Prefetch the K and V rows of tokens [t0, t1) of kv head `kvh`. A head's rows are n_kv_heads · row_bytes apart
// (2 KiB for 32 int4 heads of 128): the hardware prefetchers stop at every 4 KiB page, so without this the decode
// loop waits on DRAM latency for nearly every row.
inline void prefetch_rows(const uint8_t* kb, const uint8_t* vb, int64_t t0, int64_t t1, int H, int kvh, size_t krb,
                          size_t vrb) {
  for (int64_t t = t0; t < t1; t++) {
    const uint8_t* k = kb + (t * H + kvh) * (int64_t)krb;
    const uint8_t* v = vb + (t * H + kvh) * (int64_t)vrb;
    for (size_t b = 0; b < krb; b += 64) _mm_prefetch((const char*)(k + b), _MM_HINT_T0);
    for (size_t b = 0; b < vrb; b += 64) _mm_prefetch((const char*)(v + b), _MM_HINT_T0);
  }
}

// The next kv head's rows of the block (n rows of rb bytes, n_kv_heads · rb apart) into L1 while this head is
// computed: the rows' stride hides them from the L1 prefetcher (measured: int4 MHA decode 1.2x faster; fp32
// unchanged; without it, 2 threads at 4k, ~10% slower).
inline void prefetch_head_l1(const uint8_t* base, int64_t t0, int n, int H, int h, size_t rb) {
  for (int t = 0; t < n; t++) {
    const uint8_t* row = base + ((t0 + t) * H + h) * rb;
    for (size_t b = 0; b < rb; b += 64) _mm_prefetch((const char*)(row + b), _MM_HINT_T0);
  }
}

struct DecodeScratch {
  std::vector<float> q, qsum, S;
  std::vector<float> qT;               // GQA fp32/fp16 keys: queries transposed per W = 8 or 4 heads [NQ / W][D][W]
  std::vector<float> kf;               // fp16 keys of a block converted to fp32 [kTB][D]
  std::vector<const float*> kfrows;
  std::vector<const uint8_t*> krows, vrows;
  std::vector<int8_t> qa1, qa0;  // int4 / int8 keys: the fixed-point query's bytes [NQ, D + 32]
  std::vector<int32_t> qfull;
  std::vector<int16_t> qf16;  // int8 keys: f as int16 [NQ, D]
  std::vector<QFixed> qf;
  std::vector<float> m, l, tmp;
  std::vector<uint8_t> wb1, wb0, zrow;  // int4 V, MHA: the block's weight bytes [NQP][kTB + 1], a row of zeros
  std::vector<float> uw, vz8;           // ... their units [NQP]; the block's zero points of 8 heads [kTB][8]
  std::vector<float> zw;  // Σ_t w_t z_t of the block per query head (quantized V)
  std::vector<int32_t> chunk_h, chunk_idx, chunk_mask;  // per 8-query-head chunk: first kv head, lane map, mask
};

// Tokens per block. A kv head's rows are `stride` = n_kv_heads · row_bytes apart, usually a power of two, so the
// TB rows a head reads per block fall into few L1 sets (L1: 64 sets × 8 ways, one set per 64 B of every 4 KiB):
// TB · stride / 4 KiB rows share a set, for K and again for V. Keeping TB · stride <= 16 KiB leaves 4 K + 4 V rows per
// set, within the 8 ways; at twice that the V passes missed L1 on every row (int4 MHA decode ran 1.5x slower).
// At least 8 tokens to amortize the per-block softmax work (measured: int8 MHA is faster at 8 than at 4), but 4 for
// strides of 8 KiB and more (fp16/fp32 MHA rows), 64 at most.
inline int decode_block(int64_t stride) {
  const int64_t t = 16384 / std::max<int64_t>(1, stride);
  return (int)std::clamp<int64_t>(t / 4 * 4, stride >= 8192 ? 4 : 8, kTB);
}

// TK / TV: the K and V element types (K only feeds block_scores and the query layout, V only block_v and the
// accumulator layout, so the two are independent).
template <KVType TK, KVType TV>
void decode_task_t(const DecodeTask& task) {
  const KVView& kv = *task.kv;
  const int G = task.G, D = task.D, H = kv.n_kv_heads, nh = task.h1 - task.h0;
  const size_t krb = kv_bytes_per_head(TK, D), vrb = kv_bytes_per_head(TV, D);
  constexpr bool kquant = TK == KVType::I8 || TK == KVType::I4;
  constexpr bool vquant = TV == KVType::I8 || TV == KVType::I4;
  const int TB = decode_block((int64_t)H * (int64_t)std::max(krb, vrb));
  thread_local DecodeScratch tls_sc;
  DecodeScratch& sc = detail::tls_once(tls_sc);
  const int NQ = nh * G;  // query heads of this task
  sc.q.resize((size_t)NQ * D);
  const int NQP = (NQ + 7) / 8 * 8;  // padded to whole vectors (lanes >= NQ are never read back)
  sc.qsum.assign(NQP, 0.f);
  sc.krows.resize(kTB);
  sc.vrows.resize(kTB + 1);
  // q scaled by `scale` once, permuted into kernel layout; Σq for the zero-point term.
  const __m256 vscale = _mm256_set1_ps(task.scale);
  for (int j = 0; j < NQ; j++) {
    const float* src = task.q + (int64_t)j * D;
    float* dst = sc.q.data() + (size_t)j * D;
    __m256d qs4 = _mm256_setzero_pd();
    int d = 0;
    if constexpr (TK == KVType::I4) {
      // 16 dims -> 8 even ones to dst[d/2 ..], 8 odd ones to dst[D/2 + d/2 ..]
      for (; d + 16 <= D; d += 16) {
        const __m256 x0 = _mm256_mul_ps(_mm256_loadu_ps(src + d), vscale);
        const __m256 x1 = _mm256_mul_ps(_mm256_loadu_ps(src + d + 8), vscale);
        const __m256 ev = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(x0, x1, 0x88)), 0xD8));
        const __m256 od = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(x0, x1, 0xDD)), 0xD8));
        _mm256_storeu_ps(dst + d / 2, ev);
        _mm256_storeu_ps(dst + D / 2 + d / 2, od);
        qs4 = _mm256_add_pd(qs4, _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(x0)),
                                               _mm256_cvtps_pd(_mm256_extractf128_ps(x0, 1))));
        qs4 = _mm256_add_pd(qs4, _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(x1)),
                                               _mm256_cvtps_pd(_mm256_extractf128_ps(x1, 1))));
      }
    } else {
      for (; d + 8 <= D; d += 8) {
        const __m256 x = _mm256_mul_ps(_mm256_loadu_ps(src + d), vscale);
        _mm256_storeu_ps(dst + d, x);
        qs4 = _mm256_add_pd(qs4, _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(x)),
                                               _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1))));
      }
    }
    alignas(32) double q4[4];
    _mm256_store_pd(q4, qs4);
    double qs = (q4[0] + q4[1]) + (q4[2] + q4[3]);
    for (; d < D; d++) {
      const float v = src[d] * task.scale;
      dst[kernel_pos<TK>(d, D)] = v;
      qs += v;
    }
    sc.qsum[j] = (float)qs;
  }
  // int4 with one query head per kv head and a head_dim the integer path covers: fixed-point queries.
  // GQA: groups of 4k query heads and head dims of whole 32-byte loads (64 to 256).
  // int8 keys: MHA or groups of 4k, head_dim a multiple of 16 up to 256 (int32 sums).
  const bool fixed = (TK == KVType::I4 &&
                      ((G == 1 && D >= 32 && D <= 2048) || (G % 4 == 0 && D % 64 == 0 && D <= 256))) ||
                     (TK == KVType::I8 && (G == 1 || G % 4 == 0) && D % 16 == 0 && D <= 256);
  if (fixed) {
    const size_t st = (size_t)D + 32;
    const bool i4 = TK == KVType::I4;
    if (i4) {
      sc.qa1.resize((size_t)NQ * st);
      sc.qa0.resize((size_t)NQ * st);
    } else {
      sc.qf16.resize((size_t)NQ * D);
    }
    sc.qfull.resize((size_t)NQ * D);
    sc.qf.resize(NQ);
    for (int j = 0; j < NQ; j++) {
      sc.qf[j] = make_qfixed(sc.q.data() + (size_t)j * D, D, i4 ? sc.qa1.data() + j * st : nullptr,
                             i4 ? sc.qa0.data() + j * st : nullptr, sc.qfull.data() + (size_t)j * D,
                             i4 ? nullptr : sc.qf16.data() + (size_t)j * D);
      sc.qsum[j] = sc.qf[j].sum;  // the zero-point term with the same rounded query
    }
  }
  // int4 values with one query head per kv head and whole 32-byte columns: integer P·V (v_i4_fixed).
  const bool vfixed = TV == KVType::I4 && G == 1 && D % 64 == 0 && D <= 2048;
  if (vfixed) {
    sc.wb1.assign((size_t)NQP * kWS, 0);
    sc.wb0.assign((size_t)NQP * kWS, 0);
    sc.uw.assign(NQP, 0.f);
    sc.vz8.resize((size_t)8 * kTB);
    sc.zrow.assign((size_t)D / 2, 0);
  }
  // fp32/fp16 keys with query heads in groups of 8 (or 4) per kv head: transposed queries for scores_gqa.
  const int gqa = (TK == KVType::F32 || TK == KVType::F16) && D % 2 == 0 ? (G % 8 == 0 ? 8 : G % 4 == 0 ? 4 : 0) : 0;
  if (gqa) {
    sc.qT.resize((size_t)NQ * D);
    for (int j = 0; j < NQ; j++)
      for (int d = 0; d < D; d++) sc.qT[((size_t)(j / gqa) * D + d) * gqa + j % gqa] = sc.q[(size_t)j * D + d];
    sc.kfrows.resize(kTB);
    if (TK == KVType::F16) sc.kf.resize((size_t)kTB * D);
  }
  // Running softmax state of the task's query heads.
  sc.zw.assign(NQP, 0.f);
  sc.m.assign(NQP, -std::numeric_limits<float>::infinity());
  sc.l.assign(NQP, 0.f);
  sc.S.assign((size_t)kTB * NQP, 0.f);  // [token, query head] of one block: scores, then weights
  std::fill(task.acc, task.acc + (size_t)NQ * D, 0.f);
  // Query lane l of the 8-head chunk starting at query head jc reads the per-row arrays ([token, kv head]) of kv
  // head h0 + hc + idx[l]: one masked load of the chunk's kv heads and a lane permute (identity for MHA).
  const int nchunks = NQP / 8;
  sc.chunk_h.resize(nchunks);
  sc.chunk_idx.resize((size_t)8 * nchunks);
  sc.chunk_mask.resize((size_t)8 * nchunks);
  for (int c = 0; c < nchunks; c++) {
    const int jc = 8 * c, hc = jc / G;
    int32_t* idx = sc.chunk_idx.data() + 8 * c;
    for (int l = 0; l < 8; l++) idx[l] = std::min(jc + l, NQ - 1) / G - hc;
    for (int l = 0; l < 8; l++) sc.chunk_mask[8 * c + l] = l <= idx[7] ? -1 : 0;
    sc.chunk_h[c] = hc;
  }
  const uint8_t* kb = static_cast<const uint8_t*>(kv.k);
  const uint8_t* vb = static_cast<const uint8_t*>(kv.v);
  float* S = sc.S.data();
  // Token blocks outermost, heads inside: a block of tokens × heads is contiguous in the cache, so the reads stream
  // through memory (a head-at-a-time walk would stride n_kv_heads · row_bytes and miss the TLB on every other row).
  // Per block: (1) the scores of every query head of the task, (2) the online-softmax update for 8 query heads at a
  // time (vectors across heads: the per-token scales and zero points of MHA heads are contiguous), (3) the values.
  for (int64_t t0 = task.t0; t0 < task.t1; t0 += TB) {
    const int n = (int)std::min<int64_t>(TB, task.t1 - t0);
    for (int h = task.h0; h < task.h1; h++) {
      const int j0 = (h - task.h0) * G;  // first query head of kv head h in this task
      for (int t = 0; t < n; t++) sc.krows[t] = kb + ((t0 + t) * H + h) * krb;
      if (h + 1 < task.h1) prefetch_head_l1(kb, t0, n, H, h + 1, krb);
      if (gqa) {
        if constexpr (TK == KVType::F32) {
          for (int t = 0; t < n; t++) sc.kfrows[t] = (const float*)sc.krows[t];
        } else {
          for (int t = 0; t < n; t++) {
            float* dst = sc.kf.data() + (size_t)t * D;
            const uint16_t* src = (const uint16_t*)sc.krows[t];
            int d = 0;
            for (; d + 8 <= D; d += 8)
              _mm256_storeu_ps(dst + d, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(src + d))));
            for (; d < D; d++) dst[d] = f16_to_f32(src[d]);
            sc.kfrows[t] = dst;
          }
        }
        if (gqa == 8) scores_gqa<8>(sc.kfrows.data(), n, sc.qT.data() + (size_t)j0 * D, G, D, S + j0, NQP);
        else scores_gqa<4>(sc.kfrows.data(), n, sc.qT.data() + (size_t)j0 * D, G, D, S + j0, NQP);
      } else {
        block_scores<TK>(sc.krows.data(), n, sc.q.data() + (size_t)j0 * D, G, D, S + j0, NQP,
                         fixed ? &sc.qf[j0] : nullptr);
      }
    }
    for (int c = 0; c < nchunks; c++) {
      const int jc = 8 * c;
      const __m256i idx = _mm256_loadu_si256((const __m256i*)(sc.chunk_idx.data() + 8 * c));
      const __m256i mask = _mm256_loadu_si256((const __m256i*)(sc.chunk_mask.data() + 8 * c));
      const int64_t row0 = t0 * H + task.h0 + sc.chunk_h[c];  // [token t0, first kv head of the chunk]
      const bool direct = G == 1 && jc + 8 <= NQ;  // MHA: 8 consecutive kv heads, a plain load
      auto heads = [&](const float* a, int t) {
        const float* p = a + row0 + (int64_t)t * H;
        return direct ? _mm256_loadu_ps(p) : _mm256_permutevar8x32_ps(_mm256_maskload_ps(p, mask), idx);
      };
      __m256 mx = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
      if constexpr (kquant) {
        const __m256 qs = _mm256_loadu_ps(sc.qsum.data() + jc);
        for (int t = 0; t < n; t++) {  // s = k_scale · (q·c - k_zero · Σq)
          float* st = S + (size_t)t * NQP + jc;
          const __m256 v = _mm256_mul_ps(heads(kv.k_scale, t), _mm256_fnmadd_ps(heads(kv.k_zero, t), qs, _mm256_loadu_ps(st)));
          _mm256_storeu_ps(st, v);
          mx = _mm256_max_ps(mx, v);
        }
      } else {
        for (int t = 0; t < n; t++) mx = _mm256_max_ps(mx, _mm256_loadu_ps(S + (size_t)t * NQP + jc));
      }
      const __m256 m_old = _mm256_loadu_ps(sc.m.data() + jc), m_new = _mm256_max_ps(m_old, mx);
      const __m256 alpha = exp8(_mm256_sub_ps(m_old, m_new));  // exp(-inf) = 0 on the first block
      __m256 psum = _mm256_setzero_ps(), zw = _mm256_setzero_ps(), wmax = _mm256_setzero_ps();
      for (int t = 0; t < n; t++) {
        float* st = S + (size_t)t * NQP + jc;
        __m256 p = exp8(_mm256_sub_ps(_mm256_loadu_ps(st), m_new));
        psum = _mm256_add_ps(psum, p);
        if constexpr (vquant) {  // w_t = p_t · s_t multiplies (c_t - z_t); block_v takes Σ_t w_t z_t off at once
          p = _mm256_mul_ps(p, heads(kv.v_scale, t));
          const __m256 z = heads(kv.v_zero, t);
          if (vfixed) {
            wmax = _mm256_max_ps(wmax, p);
            _mm256_storeu_ps(sc.vz8.data() + 8 * t, z);
          } else {
            zw = _mm256_fmadd_ps(p, z, zw);
          }
        }
        _mm256_storeu_ps(st, p);
      }
      if (vfixed)
        quantize_weights8(S + jc, n, NQP, wmax, sc.vz8.data(), 8, kWS, sc.wb1.data() + (size_t)jc * kWS,
                          sc.wb0.data() + (size_t)jc * kWS, sc.uw.data() + jc, sc.zw.data() + jc);
      else
        _mm256_storeu_ps(sc.zw.data() + jc, zw);
      _mm256_storeu_ps(sc.m.data() + jc, m_new);
      _mm256_storeu_ps(sc.l.data() + jc, _mm256_fmadd_ps(_mm256_loadu_ps(sc.l.data() + jc), alpha, psum));
      // Rescale the accumulators of the heads whose maximum moved (rare after the first blocks).
      int moved = _mm256_movemask_ps(_mm256_cmp_ps(alpha, _mm256_set1_ps(1.f), _CMP_NEQ_UQ));
      if (moved) {
        alignas(32) float al[8];
        _mm256_store_ps(al, alpha);
        for (; moved; moved &= moved - 1) {
          const int lane = __builtin_ctz(moved);
          if (jc + lane < NQ) scale_vec(task.acc + (size_t)(jc + lane) * D, D, al[lane]);
        }
      }
    }
    for (int h = task.h0; h < task.h1; h++) {
      const int j0 = (h - task.h0) * G;
      float* acc = task.acc + (size_t)j0 * D;  // kernel layout while running
      for (int t = 0; t < n; t++) sc.vrows[t] = vb + ((t0 + t) * H + h) * vrb;
      if (h + 1 < task.h1) prefetch_head_l1(vb, t0, n, H, h + 1, vrb);
      if (vfixed) {
        if (n % 2) sc.vrows[n] = sc.zrow.data();
        v_i4_fixed(sc.vrows.data(), n, sc.wb1.data() + (size_t)j0 * kWS, sc.wb0.data() + (size_t)j0 * kWS, sc.uw[j0],
                   sc.zw[j0], D / 2, acc);
      } else {
        block_v<TV>(sc.vrows.data(), n, S + j0, NQP, sc.zw.data() + j0, G, D, acc);
      }
    }
  }
  for (int j = 0; j < NQ; j++) { task.m[j] = sc.m[j]; task.l[j] = sc.l[j]; }
  if constexpr (TV == KVType::I4) {  // back to natural layout: interleave [even dims | odd dims]
    sc.tmp.resize(D);
    float* tmp = sc.tmp.data();
    const int h = D / 2;
    for (int j = 0; j < NQ; j++) {
      float* a = task.acc + (size_t)j * D;
      int i = 0;
      for (; i + 8 <= h; i += 8) {
        const __m256 ev = _mm256_loadu_ps(a + i), od = _mm256_loadu_ps(a + h + i);
        const __m256 l = _mm256_unpacklo_ps(ev, od), u = _mm256_unpackhi_ps(ev, od);  // per lane: e0 o0 e1 o1 | ...
        _mm256_storeu_ps(tmp + 2 * i, _mm256_permute2f128_ps(l, u, 0x20));
        _mm256_storeu_ps(tmp + 2 * i + 8, _mm256_permute2f128_ps(l, u, 0x31));
      }
      for (int d = 2 * i; d < D; d++) tmp[d] = a[kernel_pos<TV>(d, D)];
      std::memcpy(a, tmp, D * sizeof(float));
    }
  }
}

// ── Prefill ───────────────────────────────────────────────────────────────────────────────────────────────────
// Row t of the block, dequantized to fp32 in natural order: x = (c - z) * s.
template <KVType T>
inline void dequant_row(const uint8_t* row, float s, float z, int D, float* out) {
  int d = 0;
  if constexpr (T == KVType::F32) {
    std::memcpy(out, row, D * sizeof(float));
    return;
  } else if constexpr (T == KVType::F16) {
    for (; d + 8 <= D; d += 8)
      _mm256_storeu_ps(out + d, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)((const uint16_t*)row + d))));
    for (; d < D; d++) out[d] = f16_to_f32(((const uint16_t*)row)[d]);
  } else if constexpr (T == KVType::I8) {
    const __m256 sv = _mm256_set1_ps(s), zv = _mm256_set1_ps(z);
    for (; d + 8 <= D; d += 8) {
      const __m256 c = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(row + d))));
      _mm256_storeu_ps(out + d, _mm256_mul_ps(_mm256_sub_ps(c, zv), sv));
    }
    for (; d < D; d++) out[d] = ((float)row[d] - z) * s;
  } else {
    const __m256 sv = _mm256_set1_ps(s), zv = _mm256_set1_ps(z);
    const __m128i mk = _mm_set1_epi8(0x0F);
    for (; d + 16 <= D; d += 16) {
      const __m128i b = _mm_loadl_epi64((const __m128i*)(row + d / 2));
      const __m128i lo = _mm_and_si128(b, mk), hi = _mm_and_si128(_mm_srli_epi16(b, 4), mk);
      const __m128i c = _mm_unpacklo_epi8(lo, hi);  // 16 codes in dim order
      const __m256 c0 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(c));
      const __m256 c1 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(c, 8)));
      _mm256_storeu_ps(out + d, _mm256_mul_ps(_mm256_sub_ps(c0, zv), sv));
      _mm256_storeu_ps(out + d + 8, _mm256_mul_ps(_mm256_sub_ps(c1, zv), sv));
    }
    for (; d < D; d++) out[d] = ((float)((row[d >> 1] >> ((d & 1) * 4)) & 0xF) - z) * s;
  }
}

inline float dot_f32(const float* a, const float* b, int D) {
  __m256 s = _mm256_setzero_ps();
  int d = 0;
  for (; d + 8 <= D; d += 8) s = _mm256_fmadd_ps(_mm256_loadu_ps(a + d), _mm256_loadu_ps(b + d), s);
  float r = hsum8(s);
  for (; d < D; d++) r += a[d] * b[d];
  return r;
}

// S[r][j] for 2 query rows × 4 keys (fp32 rows).
inline void dot_2x4(const float* q0, const float* q1, const float* const* k, int D, float* s0, float* s1) {
  __m256 a[8];
  for (int i = 0; i < 8; i++) a[i] = _mm256_setzero_ps();
  int d = 0;
  for (; d + 8 <= D; d += 8) {
    const __m256 x0 = _mm256_loadu_ps(q0 + d), x1 = _mm256_loadu_ps(q1 + d);
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
      const __m256 kv = _mm256_loadu_ps(k[j] + d);
      a[j] = _mm256_fmadd_ps(x0, kv, a[j]);
      a[4 + j] = _mm256_fmadd_ps(x1, kv, a[4 + j]);
    }
  }
  _mm_storeu_ps(s0, hsum4x8(a[0], a[1], a[2], a[3]));
  _mm_storeu_ps(s1, hsum4x8(a[4], a[5], a[6], a[7]));
  for (; d < D; d++)
    for (int j = 0; j < 4; j++) { s0[j] += q0[d] * k[j][d]; s1[j] += q1[d] * k[j][d]; }
}

struct PrefillScratch {
  std::vector<float> Q, K, V, S, O, m, l;
  std::vector<const float*> krows, vrows;
};

using DequantRow = void (*)(const uint8_t* row, float s, float z, int D, float* out);
// int3 / int2 rows: the scalar converter of kv_common.h (the prefill scores and P·V then run on fp32 scratch).
template <KVType T>
void dequant_lowbit(const uint8_t* row, float s, float z, int D, float* out) {
  kv_lowbit_dequant_row(T, row, s, z, D, out);
}
DequantRow dequant_for(KVType t) {
  switch (t) {
    case KVType::F32: return dequant_row<KVType::F32>;
    case KVType::F16: return dequant_row<KVType::F16>;
    case KVType::I8: return dequant_row<KVType::I8>;
    case KVType::I4: return dequant_row<KVType::I4>;
    case KVType::I3: return dequant_lowbit<KVType::I3>;
    case KVType::I2: return dequant_lowbit<KVType::I2>;
  }
  return nullptr;
}

// Every K and V row is dequantized to fp32 scratch first, so the element types only pick the row converters.
// Causal limit per row (key <= pos0 + qi) and, with a sliding window, a lower limit per row
// (key >= kv_window_start(pos0 + qi)); rows are in position order, so the tile's first row has the lowest limit.
void prefill_task(const PrefillTask& task) {
  const KVView& kv = *task.kv;
  const int G = task.G, D = task.D, H = kv.n_kv_heads;
  const int R = (int)(task.i1 - task.i0) * G;  // rows: (position, head) pairs
  const size_t krb = kv_bytes_per_head(kv.k_type, D), vrb = kv_bytes_per_head(kv.v_type, D);
  const bool kq = kv_quantized(kv.k_type), vq = kv_quantized(kv.v_type);
  const DequantRow kdq = dequant_for(kv.k_type), vdq = dequant_for(kv.v_type);
  thread_local PrefillScratch tls_sc;
  PrefillScratch& sc = detail::tls_once(tls_sc);
  sc.Q.resize((size_t)R * D);
  sc.S.resize((size_t)R * kKB);
  sc.O.assign((size_t)R * D, 0.f);
  sc.m.assign(R, -std::numeric_limits<float>::infinity());
  sc.l.assign(R, 0.f);
  sc.krows.resize(kKB);
  sc.vrows.resize(kKB);
  // Every type, fp32 included, is copied into contiguous scratch: read in place, a block's rows sit at a power-of-two
  // stride (n_kv_heads · row_bytes) in a handful of L1 sets and evict each other during the S and P·V tiles.
  sc.K.resize((size_t)kKB * D);
  sc.V.resize((size_t)kKB * D);
  for (int r = 0; r < R; r++) {
    const int64_t qi = task.i0 + r / G;
    const float* src = task.q + (qi * task.n_heads + (int64_t)task.kvh * G + r % G) * D;
    for (int d = 0; d < D; d++) sc.Q[(size_t)r * D + d] = src[d] * task.scale;
  }
  const uint8_t* kb = static_cast<const uint8_t*>(kv.k);
  const uint8_t* vb = static_cast<const uint8_t*>(kv.v);
  const int64_t t_end = task.pos0 + task.i1;  // the last row sees tokens up to pos0 + i1 - 1
  const int64_t t_begin = kv_window_start(kv, task.pos0 + task.i0);  // the first row sees tokens from here
  for (int64_t t0 = t_begin; t0 < t_end; t0 += kKB) {
    const int n = (int)std::min<int64_t>(kKB, t_end - t0);
    prefetch_rows(kb, vb, t0 + kKB, std::min(t_end, t0 + 2 * kKB), H, task.kvh, krb, vrb);
    for (int t = 0; t < n; t++) {
      const int64_t r = (t0 + t) * H + task.kvh;
      float* kd = sc.K.data() + (size_t)t * D;
      float* vd = sc.V.data() + (size_t)t * D;
      kdq(kb + r * krb, kq ? kv.k_scale[r] : 1.f, kq ? kv.k_zero[r] : 0.f, D, kd);
      vdq(vb + r * vrb, vq ? kv.v_scale[r] : 1.f, vq ? kv.v_zero[r] : 0.f, D, vd);
      sc.krows[t] = kd;
      sc.vrows[t] = vd;
    }
    // Valid keys of row r in this block: [lo_valid(r), n_valid(r)), i.e. tokens in
    // [kv_window_start(pos0 + qi), pos0 + qi].
    auto n_valid = [&](int r) {
      return (int)std::clamp<int64_t>(task.pos0 + task.i0 + r / G - t0 + 1, 0, n);
    };
    auto lo_valid = [&](int r) {
      return (int)std::clamp<int64_t>(kv_window_start(kv, task.pos0 + task.i0 + r / G) - t0, 0, n);
    };
    // S = Q K^T over the valid prefix of each row pair (2 × 4 tiles), masked entries are never read.
    int r = 0;
    for (; r < R; r += 2) {
      const bool two = r + 1 < R;
      const int nv = n_valid(two ? r + 1 : r);  // the later row sees at least as many keys
      float* s0 = sc.S.data() + (size_t)r * kKB;
      float* s1 = two ? s0 + kKB : nullptr;
      const float* q0 = sc.Q.data() + (size_t)r * D;
      const float* q1 = two ? q0 + D : nullptr;
      int j = lo_valid(r);  // the earlier row starts at least as early; entries below a row's limit are masked next
      if (two) {
        for (; j + 4 <= nv; j += 4) dot_2x4(q0, q1, sc.krows.data() + j, D, s0 + j, s1 + j);
        for (; j < nv; j++) { s0[j] = dot_f32(q0, sc.krows[j], D); s1[j] = dot_f32(q1, sc.krows[j], D); }
      } else {
        for (; j < nv; j++) s0[j] = dot_f32(q0, sc.krows[j], D);
      }
    }
    // Online softmax per row; P overwrites S (zeros outside [lo, nv): below the window, past the causal limit).
    for (r = 0; r < R; r++) {
      const int nv = n_valid(r), lo = lo_valid(r);
      float* s = sc.S.data() + (size_t)r * kKB;
      if (nv <= lo) { std::fill(s, s + n, 0.f); continue; }
      const float m_new = std::max(sc.m[r], max_of(s + lo, nv - lo));
      const float alpha = std::exp(sc.m[r] - m_new);
      sc.l[r] = sc.l[r] * alpha + exp_shift_sum(s + lo, nv - lo, m_new);
      std::fill(s, s + lo, 0.f);
      std::fill(s + nv, s + n, 0.f);
      if (alpha != 1.f) scale_vec(sc.O.data() + (size_t)r * D, D, alpha);
      sc.m[r] = m_new;
    }
    // O += P V: 4 rows × 16 dims of accumulators, each V row loaded once per tile.
    for (r = 0; r < R; r += 4) {
      const int rr = std::min(4, R - r);
      int nmax = 0;
      for (int k = 0; k < rr; k++) nmax = std::max(nmax, n_valid(r + k));
      const int tlo = std::min(lo_valid(r), nmax);  // P is zero below the first row's window start
      const float* P = sc.S.data() + (size_t)r * kKB;
      float* O = sc.O.data() + (size_t)r * D;
      int d = 0;
      for (; d + 16 <= D; d += 16) {
        __m256 a[4][2];
        for (int k = 0; k < 4; k++)
          for (int h = 0; h < 2; h++) a[k][h] = k < rr ? _mm256_loadu_ps(O + k * D + d + 8 * h) : _mm256_setzero_ps();
        for (int t = tlo; t < nmax; t++) {
          const __m256 v0 = _mm256_loadu_ps(sc.vrows[t] + d), v1 = _mm256_loadu_ps(sc.vrows[t] + d + 8);
#pragma GCC unroll 4
          for (int k = 0; k < 4; k++) {
            const __m256 p = _mm256_broadcast_ss(P + (k < rr ? k : 0) * kKB + t);
            a[k][0] = _mm256_fmadd_ps(p, v0, a[k][0]);
            a[k][1] = _mm256_fmadd_ps(p, v1, a[k][1]);
          }
        }
        for (int k = 0; k < rr; k++)
          for (int h = 0; h < 2; h++) _mm256_storeu_ps(O + k * D + d + 8 * h, a[k][h]);
      }
      for (; d + 8 <= D; d += 8)
        for (int k = 0; k < rr; k++) {
          __m256 a = _mm256_loadu_ps(O + k * D + d);
          for (int t = tlo; t < nmax; t++)
            a = _mm256_fmadd_ps(_mm256_broadcast_ss(P + k * kKB + t), _mm256_loadu_ps(sc.vrows[t] + d), a);
          _mm256_storeu_ps(O + k * D + d, a);
        }
      for (; d < D; d++)
        for (int k = 0; k < rr; k++) {
          float a = O[k * D + d];
          for (int t = tlo; t < nmax; t++) a += P[k * kKB + t] * sc.vrows[t][d];
          O[k * D + d] = a;
        }
    }
  }
  for (int r = 0; r < R; r++) {
    const int64_t qi = task.i0 + r / G;
    float* dst = task.out + (qi * task.n_heads + (int64_t)task.kvh * G + r % G) * D;
    const float inv = 1.f / sc.l[r];
    for (int d = 0; d < D; d++) dst[d] = sc.O[(size_t)r * D + d] * inv;
  }
}

// ── kv_store ──────────────────────────────────────────────────────────────────────────────────────────────────
// Same arithmetic as kv_store_ref lane by lane (IEEE division, round half to even), so the codes are identical.
void store_row(const float* x, int D, KVType type, uint8_t* out, float* scale, float* zero) {
  if (type == KVType::F32) { std::memcpy(out, x, D * sizeof(float)); return; }
  if (type == KVType::I3 || type == KVType::I2) return kv_lowbit_store_row(type, x, D, out, scale, zero);
  int d = 0;
  if (type == KVType::F16) {
    uint16_t* o = (uint16_t*)out;
    for (; d + 8 <= D; d += 8)
      _mm_storeu_si128((__m128i*)(o + d), _mm256_cvtps_ph(_mm256_loadu_ps(x + d), _MM_FROUND_TO_NEAREST_INT));
    for (; d < D; d++) o[d] = f32_to_f16(x[d]);
    return;
  }
  const int bits = type == KVType::I8 ? 8 : 4;
  const float qmax = (float)((1 << bits) - 1);
  __m256 vmn = _mm256_set1_ps(x[0]), vmx = vmn;
  for (; d + 8 <= D; d += 8) {
    const __m256 v = _mm256_loadu_ps(x + d);
    vmn = _mm256_min_ps(vmn, v);
    vmx = _mm256_max_ps(vmx, v);
  }
  float mn = hmin8(vmn), mx = hmax8(vmx);
  for (; d < D; d++) { mn = std::min(mn, x[d]); mx = std::max(mx, x[d]); }
  const float s = std::max(mx - mn, 1e-5f) / qmax;
  const float z = std::min(std::max(-std::nearbyint(mn / s), 0.f), qmax);
  *scale = s;
  *zero = z;
  const __m256 sv = _mm256_set1_ps(s), zv = _mm256_set1_ps(z), hi = _mm256_set1_ps(qmax), lo = _mm256_setzero_ps();
  auto codes8 = [&](const float* p) {  // 8 codes as int32
    __m256 c = _mm256_round_ps(_mm256_div_ps(_mm256_loadu_ps(p), sv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    c = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(c, zv), lo), hi);
    return _mm256_cvttps_epi32(c);
  };
  // 8 int32 codes -> 8 bytes in order.
  auto pack8 = [](__m256i c) {
    const __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));
    return _mm_packus_epi16(w, w);
  };
  d = 0;
  if (bits == 8) {
    for (; d + 8 <= D; d += 8) _mm_storel_epi64((__m128i*)(out + d), pack8(codes8(x + d)));
  } else {
    for (; d + 16 <= D; d += 16) {
      // bytes c0..c15 -> 16-bit lanes (c[2j] | c[2j+1] << 8) -> c[2j] | c[2j+1] << 4 -> 8 bytes.
      const __m128i b = _mm_unpacklo_epi64(pack8(codes8(x + d)), pack8(codes8(x + d + 8)));
      const __m128i nib = _mm_or_si128(_mm_and_si128(b, _mm_set1_epi16(0x000F)),
                                       _mm_and_si128(_mm_srli_epi16(b, 4), _mm_set1_epi16(0x00F0)));
      _mm_storel_epi64((__m128i*)(out + d / 2), _mm_packus_epi16(nib, nib));
    }
    for (int j = d / 2; j < D / 2; j++) out[j] = 0;
  }
  for (; d < D; d++) {
    const int q = (int)std::min(std::max(std::nearbyint(x[d] / s) + z, 0.f), qmax);
    if (bits == 8) out[d] = (uint8_t)q;
    else out[d >> 1] |= (uint8_t)(q << ((d & 1) * 4));
  }
}

}  // namespace

namespace {
// Dispatch on the (K, V) type pair: the V type, given the K type TK.
template <KVType TK>
void decode_v(const DecodeTask& t) {
  switch (t.kv->v_type) {
    case KVType::F32: return decode_task_t<TK, KVType::F32>(t);
    case KVType::F16: return decode_task_t<TK, KVType::F16>(t);
    case KVType::I8: return decode_task_t<TK, KVType::I8>(t);
    case KVType::I4: return decode_task_t<TK, KVType::I4>(t);
    case KVType::I3: case KVType::I2: break;  // handled in decode_task_avx2
  }
}
}  // namespace

void decode_task_avx2(const DecodeTask& t) {
  // int3 / int2 K or V: the scalar task (kv_load reads any type pair). Decode of one token is memory-bound on the
  // cache, which these types make 2.7-4x smaller than int8; a SIMD codec is future work.
  const KVType kt = t.kv->k_type, vt = t.kv->v_type;
  if (kt == KVType::I3 || kt == KVType::I2 || vt == KVType::I3 || vt == KVType::I2) return decode_task_scalar(t);
  switch (t.kv->k_type) {
    case KVType::F32: return decode_v<KVType::F32>(t);
    case KVType::F16: return decode_v<KVType::F16>(t);
    case KVType::I8: return decode_v<KVType::I8>(t);
    case KVType::I4: return decode_v<KVType::I4>(t);
    case KVType::I3: case KVType::I2: break;  // above
  }
}

void prefill_task_avx2(const PrefillTask& t) { prefill_task(t); }

void kv_store_rows_avx2(const float* x, int64_t r0, int64_t r1, int head_dim, KVType type, void* dst, float* scale,
                        float* zero) {
  const size_t rb = kv_bytes_per_head(type, head_dim);
  const bool quant = kv_quantized(type);
  for (int64_t r = r0; r < r1; r++)
    store_row(x + r * head_dim, head_dim, type, static_cast<uint8_t*>(dst) + r * rb, quant ? scale + r : nullptr,
              quant ? zero + r : nullptr);
}

}  // namespace quanteval::detail
