#pragma GCC target("avx2,fma,f16c")
// AVX2 integer-activation GEMM for every packed weight format: Y[M, N] = act8(X)[M, K] · W[N, K]^T, the kernels
// behind gemm_w8a8 (kernels.h) for bits 2/3/4/8 and any group size that is a multiple of 32 (or one group a row).
//
// Design (the llama.cpp Q4_0 x Q8 idea, with this project's asymmetric activations and packed layouts):
//  - Activations are quantized once per call to unsigned codes qa in [0, 255] (a8_act), rows padded to whole
//    32-code chunks.
//  - One 32-code weight chunk is unpacked into one ymm of 32 bytes in natural order, without shuffles:
//      4-bit: vbroadcasti128 of the 16 bytes, vpsrlvq by {0, 0, 4, 4}, AND 0x0F  (low lane codes 0-15, high 16-31)
//      2-bit: vpbroadcastq of the 8 bytes, vpsrlvq by {0, 2, 4, 6}, AND 3        (qword i holds codes 8i .. 8i+7)
//      3-bit: the 2-bit part, plus bit j of the high-bit word spread to byte j (vpshufb + compare), times 4.
//    vpmaddubsw(qa, qw) then multiplies unsigned activation bytes by the codes as signed bytes (qw <= 15 fits):
//    a pair sum is at most 2 * 255 * 15 = 7650, so 4 chunks (30600) accumulate in int16 before one vpmaddwd with
//    ones widens them to int32. 8-bit codes do not fit (2 * 255 * 255 overflows int16): they are widened to int16
//    and meet int16 activation codes in vpmaddwd.
//  - Zero points: per group, sum_k (qa - za) * (qw - zw) = sum qa*qw - za * sum qw - zw * sum (qa - za). sum qw comes
//    from byte adds of the unpacked chunks and one vpsadbw per 4 chunks, za * sum qw from vpmuludq on its qword lanes,
//    both in the int32 lanes before the conversion; zw * sum (qa - za) is applied once per row as a short dot over
//    the groups (sum_g sw_g * zw_g * dsum[m, g]).
//  - Per group the int32 lanes become fp32 and are scaled by sw_g (one cvt + one FMA per token and group). With a
//    single group (per output channel) nothing is converted: the row's exact int32 sum is returned and the caller
//    rescales exactly as gemm_w8a8_ref (bit-identical results).
//  - Loop order: tokens in blocks of TB rows (their codes stay in L2), then each weight row, then 4 tokens at a time
//    (the row's bytes stay in L1 while up to TB / 4 token tiles pass over it). With M <= 4 (decode) every weight byte
//    is read from memory exactly once: the kernel is a GEMV bound by the read bandwidth.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "gemm_a8.h"
#include "gemm_common.h"

namespace quanteval::impl::avx2 {

using namespace detail;

namespace {

constexpr int64_t TB = 64;  // tokens per outer block: 64 x lda bytes of codes (128 KiB at K = 2048) stay in L2

// Software prefetch of the weight codes, one line per 64 bytes: into L1 1 KiB ahead and into L2 4 KiB ahead. At
// M = 1 the kernel does enough work per byte that the hardware prefetchers fall behind when both cores stream;
// interleaved A/B runs on the decode linears of tinyllama-1.1b (w4g128, 507 MB, 2 threads) gave 34.2 -> 30.0 ms with
// the L1 prefetch (best distance of 256-4096 tried) and another ~10% with the L2 one (docs/gemv.md).
constexpr int64_t kPfL1 = 1024, kPfL2 = 4096;
inline void prefetch_codes(const uint8_t* p) {
  _mm_prefetch((const char*)(p + kPfL1), _MM_HINT_T0);
  _mm_prefetch((const char*)(p + kPfL2), _MM_HINT_T1);
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

// One weight row against MB (<= 4) token rows. pf: prefetch the codes ahead (only the first token tile of a row
// does: the later tiles of a prefill block find the row in L1, and their prefetches would be wasted instructions).
// A8 / A16: the tokens' codes (row stride lda). za[MB]. sw[G] fp32
// scales of this row. PC (one group): I[m] = exact sum (qa - za) * qw; else F[m] = sum_g sw_g * sum (qa - za) * qw
// (the zw term is the caller's).
// SHORT (1, 2 or 4; 0: no): every group spans SHORT chunks (group_size 32, 64 or 128, bits < 8; the last group may
// be shorter): one int16 sub-block per group, no int32 partial sums to keep live (fewer registers for MB = 4), and a
// fixed trip count the compiler unrolls.
template <int BITS, int MB, bool PC, int SHORT>
inline void a8_row(const uint8_t* row, int64_t chunks, int64_t cpg, int64_t G, const uint8_t* A8, const int16_t* A16,
                   int64_t lda, const int32_t* za, const float* sw, int32_t* I, float* F, bool pf) {
  constexpr int64_t cb = (int64_t)chunk_bytes(BITS);
  const __m256i ones = _mm256_set1_epi16(1), zero = _mm256_setzero_si256();
  __m256i accI[MB];
  __m256 accF[MB];
  for (int m = 0; m < MB; m++) { accI[m] = zero; accF[m] = _mm256_setzero_ps(); }
  for (int64_t g = 0; g < G; g++) {
    const int64_t c1 = std::min(chunks, (g + 1) * cpg);
    __m256i p32[MB];
    for (int m = 0; m < MB; m++) p32[m] = zero;
    __m256i wsum = zero;  // 4 qword lanes of sum qw (vpsadbw)
    if constexpr (SHORT > 0) {
      __m256i p16[MB];
      for (int m = 0; m < MB; m++) p16[m] = zero;
      __m256i w8 = zero;
      auto step = [&](int64_t c) {
        const __m256i w = unpack_u8<BITS>(row + c * cb);
        w8 = _mm256_add_epi8(w8, w);
        for (int m = 0; m < MB; m++)
          p16[m] = _mm256_add_epi16(
              p16[m], _mm256_maddubs_epi16(_mm256_loadu_si256((const __m256i*)(A8 + m * lda + c * kChunk)), w));
      };
      const int64_t c0 = g * SHORT;
      // A group (SHORT chunks of 2-4 bits) is at most 64 bytes: prefetch when it starts a new line.
      if (pf && ((c0 * cb) & 63) < SHORT * cb) prefetch_codes(row + c0 * cb);
      if (c1 - c0 == SHORT)
        for (int i = 0; i < SHORT; i++) step(c0 + i);
      else
        for (int64_t c = c0; c < c1; c++) step(c);
      wsum = _mm256_sad_epu8(w8, zero);
      for (int m = 0; m < MB; m++) p32[m] = _mm256_madd_epi16(p16[m], ones);
    } else {
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
          const int64_t ce = std::min(c1, c + 4);  // int16 pair sums: 4 x 7650 < 32768
          if (pf) prefetch_codes(row + c * cb);  // 4 chunks of <= 4 bits: <= 64 bytes
          __m256i p16[MB];
          for (int m = 0; m < MB; m++) p16[m] = zero;
          __m256i w8 = zero;  // byte sums of up to 4 chunks' codes (<= 4 x 15): one vpsadbw per 4 chunks
          for (; c < ce; c++) {
            const __m256i w = unpack_u8<BITS>(row + c * cb);
            w8 = _mm256_add_epi8(w8, w);
            for (int m = 0; m < MB; m++)
              p16[m] = _mm256_add_epi16(
                  p16[m], _mm256_maddubs_epi16(_mm256_loadu_si256((const __m256i*)(A8 + m * lda + c * kChunk)), w));
          }
          wsum = _mm256_add_epi64(wsum, _mm256_sad_epu8(w8, zero));
          for (int m = 0; m < MB; m++) p32[m] = _mm256_add_epi32(p32[m], _mm256_madd_epi16(p16[m], ones));
        }
      }
    }
    // sum (qa - za) * qw = sum qa * qw - za * sum qw: vpmuludq takes the low dword of each qword lane of wsum (the
    // sums fit 32 bits) and leaves products whose high dwords are 0, so a dword subtraction is exact in total.
    for (int m = 0; m < MB; m++) {
      const __m256i t = _mm256_sub_epi32(p32[m], _mm256_mul_epu32(wsum, _mm256_set1_epi64x(za[m])));
      if constexpr (PC) accI[m] = _mm256_add_epi32(accI[m], t);
      else accF[m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t), _mm256_set1_ps(sw[g]), accF[m]);
    }
  }
  for (int m = 0; m < MB; m++) {
    if constexpr (PC) I[m] = hsum_i32(accI[m]);
    else F[m] = hsum(accF[m]);
  }
}

// G scales of row n as fp32 (sw) and sw * zw (swz).
void row_scales(const QuantWeight& W, int64_t n, float* sw, float* swz) {
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
  float s = hsum(acc);
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

template <int BITS, bool PC, int SHORT>
void rows_bits(const A8Act& a, const QuantWeight& W, int64_t n0, int64_t n1, int32_t* I, float* F) {
  const int64_t N = W.N, G = W.groups(), chunks = chunks_per_row(W.K), stride = W.stride();
  const int64_t cpg = PC ? chunks : W.fmt.group_size / kChunk;
  thread_local std::vector<float> scratch;
  scratch.resize((size_t)(2 * G));
  float *sw = scratch.data(), *swz = sw + G;
  int32_t Ib[4];
  float Fb[4];
  for (int64_t t0 = 0; t0 < a.M; t0 += TB) {
    const int64_t t1 = std::min(a.M, t0 + TB);
    for (int64_t n = n0; n < n1; n++) {
      const uint8_t* row = W.codes + n * stride;
      if (!PC) row_scales(W, n, sw, swz);
      for (int64_t m = t0; m < t1; m += 4) {
        const int mb = (int)std::min<int64_t>(4, t1 - m);
        const uint8_t* A8 = a.q8.empty() ? nullptr : a.q8.data() + m * a.lda;
        const int16_t* A16 = a.q16.empty() ? nullptr : a.q16.data() + m * a.lda;
        const int32_t* za = a.za.data() + m;
        switch (mb) {
          case 4: a8_row<BITS, 4, PC, SHORT>(row, chunks, cpg, G, A8, A16, a.lda, za, sw, Ib, Fb, m == t0); break;
          case 3: a8_row<BITS, 3, PC, SHORT>(row, chunks, cpg, G, A8, A16, a.lda, za, sw, Ib, Fb, m == t0); break;
          case 2: a8_row<BITS, 2, PC, SHORT>(row, chunks, cpg, G, A8, A16, a.lda, za, sw, Ib, Fb, m == t0); break;
          default: a8_row<BITS, 1, PC, SHORT>(row, chunks, cpg, G, A8, A16, a.lda, za, sw, Ib, Fb, m == t0); break;
        }
        for (int i = 0; i < mb; i++) {
          if constexpr (PC) I[(m + i) * N + n] = Ib[i];
          else F[(m + i) * N + n] = Fb[i] - dot_f32(swz, a.dsumf.data() + (m + i) * G, G);
        }
      }
    }
  }
}

template <int BITS>
void rows_dispatch(const A8Act& a, const QuantWeight& W, int64_t n0, int64_t n1, int32_t* I, float* F) {
  const int64_t cpg = W.fmt.group_size / kChunk;
  if (W.groups() == 1) rows_bits<BITS, true, 0>(a, W, n0, n1, I, F);
  else if (BITS == 8 || cpg > 4) rows_bits<BITS, false, 0>(a, W, n0, n1, I, F);
  else if (cpg == 4) rows_bits<BITS, false, BITS == 8 ? 0 : 4>(a, W, n0, n1, I, F);
  else if (cpg == 2) rows_bits<BITS, false, BITS == 8 ? 0 : 2>(a, W, n0, n1, I, F);
  else if (cpg == 1) rows_bits<BITS, false, BITS == 8 ? 0 : 1>(a, W, n0, n1, I, F);
  else rows_bits<BITS, false, 0>(a, W, n0, n1, I, F);  // 3 chunks a group
}

}  // namespace

void a8_act(const float* X, int64_t M, int64_t K, int64_t gs, bool wide16, A8Act& a) {
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
    uint8_t* d = a.q8.data() + m * a.lda;
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
    }
    if (wide16) {
      int16_t* d16 = a.q16.data() + m * a.lda;
      for (int64_t kk = 0; kk < K; kk++) d16[kk] = d[kk];
    }
  }
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
