// The VNNI integer-activation kernels (gemm_a8_vnni.cpp), per-channel and grouped weights, written once against one
// primitive,
//   __m256i dpbusd(__m256i acc, __m256i u8, __m256i s8)   (vpdpbusd: acc[i] += sum_{j<4} u8[4i+j] * s8[4i+j]),
// which the including namespace defines before including this file (real VNNI, or the exact AVX2 emulation). No
// include guard on purpose: gemm_a8_vnni.cpp includes it once per target namespace.
//
// Arithmetic (as the AVX2 kernels, gemm_a8_avx2.cpp): the activations are the centered codes qa - 128 (int8, the
// signed operand), the weights their unsigned codes qw (the unsigned operand), so
//   sum_k (qa - za) * qw = sum_k qw * (qa - 128) + (128 - za) * sum_k qw,
// with sum qw from vpsadbw. vpdpbusd sums four products into int32 without saturation, so unlike vpmaddubsw (int16
// pair sums) 8-bit codes need no int16 widening and no int16 partial-sum bounds; the int32 lanes stay exact while
// |sum| < 2^31 (kW8A8MaxK in gemm_a8.cpp). Padded codes past K are 0 (formats.h) and so are the activations there.
//
// Dot form, as every other kernel here: weight rows and token rows are both read along K, MR tokens x NR rows a tile
// (MR x NR int32 accumulators, reduced once at the end of the row, or converted once a group for grouped weights),
// the weights straight from the packed layout (no repacking: 8-bit chunks are loaded as they are, 2/3/4-bit chunks
// unpacked by unpack_u8).

namespace {

// Tokens and rows a tile: 8 int32 accumulators, 2 weight vectors and their vpsadbw sums, the activation vector.
constexpr int kMR = 4, kNR = 2;
// Rows a block: the block's rows (<= 32 x K bytes) stay in L2 while the token tiles pass over them.
constexpr int64_t kRowBlock = 32;
// Software prefetch distance of the first tile's weight stream (bytes; a line every 64).
constexpr int64_t kPf = 1024;

template <int BITS>
inline __m256i load_codes(const uint8_t* row, int64_t c) {
  if constexpr (BITS == 8) return _mm256_loadu_si256((const __m256i*)(row + c * kChunk));
  else return avx2::unpack_u8<BITS>(row + c * (int64_t)chunk_bytes(BITS));
}

// acc[m * NR + r] = sum_{c < chunks} qw_r * (qa_m - 128) for MR token rows A + m * lda and NR weight rows rows[r].
// FIRST (the first token tile over these rows): also wsum[r] = sum qw_r, and the rows are prefetched ahead.
template <int BITS, int MR, int NR, bool FIRST>
void tile(const uint8_t* const* rows, int64_t chunks, const int8_t* A, int64_t lda, int32_t* acc, uint32_t* wsum) {
  constexpr int64_t cb = (int64_t)chunk_bytes(BITS);
  const __m256i zero = _mm256_setzero_si256();
  __m256i s[MR][NR], ws[NR];
  for (int r = 0; r < NR; r++) {
    ws[r] = zero;
    for (int m = 0; m < MR; m++) s[m][r] = zero;
  }
  for (int64_t c = 0; c < chunks; c++) {
    __m256i w[NR];
    for (int r = 0; r < NR; r++) {
      if (FIRST && (c * cb) % 64 < cb) _mm_prefetch((const char*)(rows[r] + c * cb + kPf), _MM_HINT_T0);
      w[r] = load_codes<BITS>(rows[r], c);
      if (FIRST) ws[r] = _mm256_add_epi64(ws[r], _mm256_sad_epu8(w[r], zero));
    }
    for (int m = 0; m < MR; m++) {
      const __m256i x = _mm256_loadu_si256((const __m256i*)(A + m * lda + c * kChunk));
      for (int r = 0; r < NR; r++) s[m][r] = dpbusd(s[m][r], w[r], x);
    }
  }
  for (int m = 0; m < MR; m++)
    for (int r = 0; r < NR; r++) acc[m * NR + r] = simd::hsum8_i32(s[m][r]);
  if (FIRST)
    for (int r = 0; r < NR; r++) wsum[r] = (uint32_t)avx2::hsum_u64(ws[r]);  // sum qw <= 255 K < 2^32
}

template <int BITS, int MR, int NR>
inline void tile_first(bool first, const uint8_t* const* rows, int64_t chunks, const int8_t* A, int64_t lda,
                       int32_t* acc, uint32_t* wsum) {
  if (first) tile<BITS, MR, NR, true>(rows, chunks, A, lda, acc, wsum);
  else tile<BITS, MR, NR, false>(rows, chunks, A, lda, acc, wsum);
}

template <int BITS, int MR>
inline void tile_nr(int nr, bool first, const uint8_t* const* rows, int64_t chunks, const int8_t* A, int64_t lda,
                    int32_t* acc, uint32_t* wsum) {
  if (nr == kNR) tile_first<BITS, MR, kNR>(first, rows, chunks, A, lda, acc, wsum);
  else tile_first<BITS, MR, 1>(first, rows, chunks, A, lda, acc, wsum);
}

template <int BITS>
void rows_bits(const A8Act& a, const QuantWeight& W, int64_t n0, int64_t n1, int32_t* I) {
  const int64_t N = W.N, M = a.M, chunks = chunks_per_row(W.K), stride = W.stride(), lda = a.lda;
  const int8_t* A = a.q8.data();
  uint32_t wsum[kRowBlock];
  for (int64_t nb = n0; nb < n1; nb += kRowBlock) {
    const int64_t ne = std::min(n1, nb + kRowBlock);
    for (int64_t m0 = 0; m0 < M;) {
      const int mr = M - m0 >= kMR ? kMR : M - m0 >= 2 ? 2 : 1;
      const bool first = m0 == 0;  // brings the block's rows in (and sums their codes); later tiles find them in L2
      for (int64_t n = nb; n < ne;) {
        const int nr = ne - n >= kNR ? kNR : 1;
        const uint8_t* rows[kNR];
        for (int r = 0; r < nr; r++) rows[r] = W.codes + (n + r) * stride;
        int32_t acc[kMR * kNR];
        uint32_t* ws = wsum + (n - nb);
        const int8_t* At = A + m0 * lda;
        switch (mr) {
          case kMR: tile_nr<BITS, kMR>(nr, first, rows, chunks, At, lda, acc, ws); break;
          case 2: tile_nr<BITS, 2>(nr, first, rows, chunks, At, lda, acc, ws); break;
          default: tile_nr<BITS, 1>(nr, first, rows, chunks, At, lda, acc, ws); break;
        }
        // exact: the true sum fits int32 (kW8A8MaxK), so wrapping uint32 arithmetic gives it
        for (int i = 0; i < mr; i++)
          for (int r = 0; r < nr; r++)
            I[(m0 + i) * N + n + r] =
                (int32_t)((uint32_t)acc[i * nr + r] + (uint32_t)(int64_t)(128 - a.za[m0 + i]) * ws[r]);
        n += nr;
      }
      m0 += mr;
    }
  }
}

// Grouped weights (group_size a multiple of 32: cpg chunks a group, G groups, the last one possibly shorter): MR tokens
// x NR rows, the int32 lanes of each group converted and scaled by the row's sw_g once per group. Returns
//   out[m * NR + r] = sum_g sw_g * sum_{k in g} (qa - za) * qw   (the weight zero points are the caller's).
// The activation zero point: 2-4-bit codes accumulate sum_g sw_g * sum qw per row in fp32 (wc) and add (128 - za) * wc
// at the end, as the AVX2 kernels; 8-bit codes apply it exactly per group in int32 (sum qw * (qa - 128) and
// (128 - za) * sum qw can be ~100x their sum when the activations sit far from 128), through vpmuldq on the qword
// lanes of vpsadbw, whose products fit int32 (masked to their low dwords).
template <int BITS, int MR, int NR, bool FIRST>
void tile_g(const uint8_t* const* rows, int64_t chunks, int64_t cpg, int64_t G, const int8_t* A, int64_t lda,
            const float* const* sw, const int32_t* za, float* out) {
  constexpr int64_t cb = (int64_t)chunk_bytes(BITS);
  const __m256i zero = _mm256_setzero_si256(), lo32 = _mm256_set1_epi64x(0xFFFFFFFFLL);
  __m256 accF[MR][NR], wc[NR];
  __m256i cza[MR];
  for (int m = 0; m < MR; m++) {
    cza[m] = _mm256_set1_epi64x(128 - za[m]);
    for (int r = 0; r < NR; r++) accF[m][r] = _mm256_setzero_ps();
  }
  for (int r = 0; r < NR; r++) wc[r] = _mm256_setzero_ps();
  for (int64_t g = 0; g < G; g++) {
    const int64_t c0 = g * cpg, c1 = std::min(chunks, c0 + cpg);
    __m256i s[MR][NR], ws[NR];
    for (int r = 0; r < NR; r++) {
      ws[r] = zero;
      for (int m = 0; m < MR; m++) s[m][r] = zero;
    }
    for (int64_t c = c0; c < c1; c++) {
      __m256i w[NR];
      for (int r = 0; r < NR; r++) {
        if (FIRST && (c * cb) % 64 < cb) _mm_prefetch((const char*)(rows[r] + c * cb + kPf), _MM_HINT_T0);
        w[r] = load_codes<BITS>(rows[r], c);
        ws[r] = _mm256_add_epi64(ws[r], _mm256_sad_epu8(w[r], zero));
      }
      for (int m = 0; m < MR; m++) {
        const __m256i x = _mm256_loadu_si256((const __m256i*)(A + m * lda + c * kChunk));
        for (int r = 0; r < NR; r++) s[m][r] = dpbusd(s[m][r], w[r], x);
      }
    }
    for (int r = 0; r < NR; r++) {
      const __m256 sv = _mm256_set1_ps(sw[r][g]);
      for (int m = 0; m < MR; m++) {
        __m256i t = s[m][r];
        if constexpr (BITS == 8) t = _mm256_add_epi32(t, _mm256_and_si256(_mm256_mul_epi32(ws[r], cza[m]), lo32));
        accF[m][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t), sv, accF[m][r]);
      }
      // the qword lanes hold sums below 2^31 (high dwords 0): read as 8 int32 lanes they convert exactly
      if constexpr (BITS != 8) wc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ws[r]), sv, wc[r]);
    }
  }
  for (int r = 0; r < NR; r++) {
    const float w = BITS == 8 ? 0.f : simd::hsum8(wc[r]);
    for (int m = 0; m < MR; m++) out[m * NR + r] = simd::hsum8(accF[m][r]) + (float)(128 - za[m]) * w;
  }
}

template <int BITS, int MR>
inline void tile_g_nr(int nr, bool first, const uint8_t* const* rows, int64_t chunks, int64_t cpg, int64_t G,
                      const int8_t* A, int64_t lda, const float* const* sw, const int32_t* za, float* out) {
  if (nr == kNR) {
    if (first) tile_g<BITS, MR, kNR, true>(rows, chunks, cpg, G, A, lda, sw, za, out);
    else tile_g<BITS, MR, kNR, false>(rows, chunks, cpg, G, A, lda, sw, za, out);
  } else {
    if (first) tile_g<BITS, MR, 1, true>(rows, chunks, cpg, G, A, lda, sw, za, out);
    else tile_g<BITS, MR, 1, false>(rows, chunks, cpg, G, A, lda, sw, za, out);
  }
}

// Grouped rows: tiles of 2 tokens (the fp32 accumulators double the registers a tile needs), then 1.
template <int BITS>
void rows_bits_g(const A8Act& a, const QuantWeight& W, int64_t n0, int64_t n1, float* F) {
  const int64_t N = W.N, M = a.M, G = W.groups(), chunks = chunks_per_row(W.K), stride = W.stride(), lda = a.lda;
  const int64_t cpg = W.fmt.group_size / kChunk;
  const int8_t* A = a.q8.data();
  thread_local std::vector<float> tls_scales;
  std::vector<float>& scales = detail::tls_once(tls_scales);
  scales.resize((size_t)(2 * kRowBlock * G));
  for (int64_t nb = n0; nb < n1; nb += kRowBlock) {
    const int64_t ne = std::min(n1, nb + kRowBlock);
    float *sws = scales.data(), *swzs = sws + kRowBlock * G;  // [row of the block, G] sw and sw * zw
    for (int64_t n = nb; n < ne; n++) avx2::row_scales(W, n, sws + (n - nb) * G, swzs + (n - nb) * G);
    for (int64_t m0 = 0; m0 < M;) {
      const int mr = M - m0 >= 2 ? 2 : 1;
      for (int64_t n = nb; n < ne;) {
        const int nr = ne - n >= kNR ? kNR : 1;
        const uint8_t* rows[kNR];
        const float* sw[kNR];
        for (int r = 0; r < nr; r++) {
          rows[r] = W.codes + (n + r) * stride;
          sw[r] = sws + (n + r - nb) * G;
        }
        float out[2 * kNR];
        const int8_t* At = A + m0 * lda;
        if (mr == 2) tile_g_nr<BITS, 2>(nr, m0 == 0, rows, chunks, cpg, G, At, lda, sw, a.za.data() + m0, out);
        else tile_g_nr<BITS, 1>(nr, m0 == 0, rows, chunks, cpg, G, At, lda, sw, a.za.data() + m0, out);
        for (int i = 0; i < mr; i++)
          for (int r = 0; r < nr; r++)
            F[(m0 + i) * N + n + r] =
                out[i * nr + r] - avx2::dot_f32(swzs + (n + r - nb) * G, a.dsumf.data() + (m0 + i) * G, G);
        n += nr;
      }
      m0 += mr;
    }
  }
}

// gemm_a8.h's a8_rows (defined by gemm_a8_vnni.cpp outside the target pragma: a function declared under one
// target and defined under another would become a GCC function version instead of the declared symbol).
void rows(const A8Act& a, const QuantWeight& W, int64_t n0, int64_t n1, int32_t* I, float* F) {
  const bool pc = W.groups() == 1;
  if (!pc && W.fmt.group_size % kChunk != 0)
    throw std::invalid_argument("a8_rows (VNNI): group size " + std::to_string(W.fmt.group_size) +
                                " is not a multiple of 32");
  switch (W.fmt.bits) {
    case 2: return pc ? rows_bits<2>(a, W, n0, n1, I) : rows_bits_g<2>(a, W, n0, n1, F);
    case 3: return pc ? rows_bits<3>(a, W, n0, n1, I) : rows_bits_g<3>(a, W, n0, n1, F);
    case 4: return pc ? rows_bits<4>(a, W, n0, n1, I) : rows_bits_g<4>(a, W, n0, n1, F);
    case 8: return pc ? rows_bits<8>(a, W, n0, n1, I) : rows_bits_g<8>(a, W, n0, n1, F);
    default:
      throw std::invalid_argument("a8_rows (VNNI): no kernel for " + std::to_string(W.fmt.bits) + "-bit weights");
  }
}

}  // namespace
