// The kernel text of gemm_avx512.cpp, included twice there: in quanteval::impl::avx512 with the primitives on zmm
// registers (AVX512F intrinsics), and in quanteval::impl::avx512_emu with the same primitives emulated lane by
// lane in scalar code (the tests' way of running this text on CPUs without AVX-512). The including namespace defines:
//   F, I              16 floats / 16 int32 lanes
//   vzero, vset1      all lanes 0 / v
//   vload(p)          16 floats; vload_first(r, p): the first r (< 16) floats, zeros after, reading nothing past them
//   vfma(a, b, c)     a * b + c, one rounding; vadd(a, b)
//   vhsum(v)          the sum of the lanes ((lo 8 + hi 8), then 4, 2, 1, as the ymm kernels)
//   widen_u8(p)       16 bytes zero-extended to int32; srli4(v): v >> 4 (logical); to_f32(v): int32 -> float
//   I16               32 int16 lanes; izero(), vaddi(a, b) (int32 lanes, wrapping)
//   widen_u8_w(p)     32 bytes zero-extended to int16; widen_u8_w_half(p): 16 bytes, then 16 zero lanes
//   srli16<S>(v)      int16 lanes >> S (logical); vload_w(p): 32 int16 (64-byte aligned)
//   madd16(a, b)      vpmaddwd: int32 lane i = a[2i] b[2i] + a[2i+1] b[2i+1] (wrapping)
// Besides the primitives the text uses only _mm_prefetch (SSE).
namespace {

constexpr int MR = 4;  // X rows per register tile
constexpr int NR = 6;  // W rows per register tile

template <int mr, int nr>
void micro(const float* X, int64_t ldx, const float* W, int64_t ldw, int64_t kc, float* Y, int64_t ldy) {
  F acc[mr][nr];
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nr; j++) acc[i][j] = vzero();
  int64_t k = 0;
  for (; k + 16 <= kc; k += 16) {
    F w[nr];
    for (int j = 0; j < nr; j++) w[j] = vload(W + j * ldw + k);
    for (int i = 0; i < mr; i++) {
      const F x = vload(X + i * ldx + k);
      for (int j = 0; j < nr; j++) acc[i][j] = vfma(x, w[j], acc[i][j]);
    }
  }
  if (k < kc) {
    const int r = (int)(kc - k);
    F w[nr];
    for (int j = 0; j < nr; j++) w[j] = vload_first(r, W + j * ldw + k);
    for (int i = 0; i < mr; i++) {
      const F x = vload_first(r, X + i * ldx + k);
      for (int j = 0; j < nr; j++) acc[i][j] = vfma(x, w[j], acc[i][j]);
    }
  }
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nr; j++) Y[i * ldy + j] += vhsum(acc[i][j]);
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
inline void unpack32(const uint8_t* c, F q[2]) {
  if constexpr (BITS == 4) {
    const I d = widen_u8(c);
    q[0] = to_f32(d);
    q[1] = to_f32(srli4(d));
  } else {
    q[0] = to_f32(widen_u8(c));
    q[1] = to_f32(widen_u8(c + 16));
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
  F yacc[M];
  for (int m = 0; m < M; m++) yacc[m] = vzero();
  for (int64_t g = 0; g < G; g++) {
    const int64_t c0 = g * cpg, c1 = std::min(chunks, c0 + cpg);
    F acc[M][A];
    for (int m = 0; m < M; m++)
      for (int a = 0; a < A; a++) acc[m][a] = vzero();
    // A0: the accumulator pair of this chunk, a compile-time index (a runtime one, (c & 1) * 2, made GCC keep acc on
    // the stack: a store and a reload around every FMA, 2.4x slower on Zen 5).
    auto chunk = [&](int64_t c, auto a0c) {
      constexpr int A0 = decltype(a0c)::value;
      if (c % kPfEvery == 0) _mm_prefetch((const char*)(row + c * cb + stride), _MM_HINT_T0);  // the next row
      F q[2];
      unpack32<BITS>(row + c * cb, q);
      const float* xc = X + c * kChunk;
      for (int m = 0; m < M; m++)
        for (int s = 0; s < 2; s++) acc[m][A0 + s] = vfma(q[s], vload(xc + m * ldx + 16 * s), acc[m][A0 + s]);
    };
    using P0 = std::integral_constant<int, 0>;
    using P1 = std::integral_constant<int, A == 4 ? 2 : 0>;
    int64_t c = c0;
    for (; c + 2 <= c1; c += 2) {
      chunk(c, P0{});
      chunk(c + 1, P1{});
    }
    if (c < c1) chunk(c, P0{});
    const F sv = vset1(sc[g]);
    for (int m = 0; m < M; m++) {
      F a = vadd(acc[m][0], acc[m][1]);
      if constexpr (A == 4) a = vadd(a, vadd(acc[m][2], acc[m][3]));
      yacc[m] = vfma(a, sv, yacc[m]);
    }
  }
  const float zsym = (float)(1 << (BITS - 1));
  const uint8_t* z = W.fmt.symmetric ? nullptr : W.zeros + n * G;
  const float b = bias ? bias[n] : 0.f;
  for (int m = 0; m < M; m++) {
    float corr = 0.f;
    for (int64_t g = 0; g < G; g++) corr += sc[g] * (z ? (float)z[g] : zsym) * gsum[m * G + g];
    Y[m * W.N + n] = vhsum(yacc[m]) - corr + b;
  }
}

template <int BITS, int M, int CPG>
void gemv_rows_g(const QuantWeight& W, const float* X, int64_t ldx, const float* gsum, const float* bias, float* Y,
                 int64_t n0, int64_t n1) {
  thread_local std::vector<float> tls_sc;
  std::vector<float>& sc = detail::tls_once(tls_sc);
  sc.resize((size_t)W.groups());
  for (int64_t n = n0; n < n1; n++) gemv_row<BITS, M, CPG>(W, X, ldx, gsum, bias, Y, n, sc.data());
}

template <int BITS, int M>
void gemv_rows_m(const QuantWeight& W, const float* X, int64_t ldx, const float* gsum, const float* bias, float* Y,
                 int64_t n0, int64_t n1) {
  switch (W.fmt.group_size) {  // chunks per group known at compile time for groups of 32, 64, 128
    case 32: return gemv_rows_g<BITS, M, 1>(W, X, ldx, gsum, bias, Y, n0, n1);
    case 64: return gemv_rows_g<BITS, M, 2>(W, X, ldx, gsum, bias, Y, n0, n1);
    case 128: return gemv_rows_g<BITS, M, 4>(W, X, ldx, gsum, bias, Y, n0, n1);
    default: return gemv_rows_g<BITS, M, 0>(W, X, ldx, gsum, bias, Y, n0, n1);
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

// ── exact 4-bit GEMV at M = 1 on integer products (GemvKernel::Int; gemm_avx2.cpp's gemv_qi_pass on zmm) ─────────
// X as GemvXi in its zmm layout: per pair of chunks p, 128 int16 words: h of n (words 0-15 chunk 2p's n_0..15, 16-31
// chunk 2p + 1's), l of n, h of n', l of n' (n' = n_{j+16} - 16 n_j: it pairs with the high nibble when the low one
// is taken as the whole byte b). One vpmovzxbw of the pair's 32 bytes gives 32 whole bytes, one vpsrlw their high
// nibbles, then 4 vpmaddwd and 4 vpaddd: 10 instructions per 64 codes, the AVX2 kernel's count per 32. Groups start
// on an even chunk (an even number of chunks a group, or one group a row); a row's odd last chunk is read alone.
// A lane gains < 2^25 a pair (two vpmaddwd lanes < 2^24): the integer sums go to fp32 every kQiFlushPairs pairs.
constexpr int64_t kQiFlushPairs = 32;

template <int CPG, int R>
void gemv_qi4_pass(const uint8_t* row, int64_t stride, int64_t chunks, int64_t G, int64_t cpg, const int16_t* X,
                   const float* scf, float* y) {
  static_assert(CPG % 2 == 0, "compile-time groups of an even number of chunks");
  const int64_t pf = R * stride, npairs = (chunks + 1) / 2;  // prefetch: the next pass's rows, same offset
  // y = 2^15 sum_g s_g sum(h c) + sum_g s_g sum(l c): the h and l sums scaled and accumulated apart (2 conversions
  // and 2 FMAs a group and row; forming 2^15 h + l per group first costs one more).
  F yh[R], yl[R];
  for (int r = 0; r < R; r++) yh[r] = yl[r] = vzero();
  for (int64_t g = 0; g < G; g++) {
    const int64_t c0 = g * cpg, c1 = std::min(chunks, c0 + cpg), p0 = c0 / 2, p1 = (c1 + 1) / 2;
    I ah[R], al[R];
    for (int r = 0; r < R; r++) ah[r] = al[r] = izero();
    auto pair = [&](int64_t p, bool may_be_last) {
      const int16_t* x = X + p * 128;
      const I16 xh = vload_w(x), xl = vload_w(x + 32), xh2 = vload_w(x + 64), xl2 = vload_w(x + 96);
      const bool half = may_be_last && p + 1 == npairs && (chunks & 1);
      for (int r = 0; r < R; r++) {
        const uint8_t* cp = row + r * stride + p * 32;
        if (p % 2 == 0) _mm_prefetch((const char*)(cp + pf), _MM_HINT_T0);  // one a 64-byte line
        const I16 w = half ? widen_u8_w_half(cp) : widen_u8_w(cp), hi = srli16<4>(w);
        ah[r] = vaddi(ah[r], vaddi(madd16(w, xh), madd16(hi, xh2)));
        al[r] = vaddi(al[r], vaddi(madd16(w, xl), madd16(hi, xl2)));
      }
    };
    auto flush = [&]() {
      for (int r = 0; r < R; r++) {
        const F sv = vset1(scf[r * G + g]);
        yh[r] = vfma(to_f32(ah[r]), sv, yh[r]);
        yl[r] = vfma(to_f32(al[r]), sv, yl[r]);
        ah[r] = al[r] = izero();
      }
    };
    if (CPG && c1 - c0 == CPG) {  // a whole group of a compile-time size: unrolled, no flush needed
      for (int64_t pp = 0; pp < CPG / 2; pp++) pair(p0 + pp, false);
      flush();
    } else {
      for (int64_t p = p0; p < p1; p++) {
        pair(p, true);
        if ((p - p0) % kQiFlushPairs == kQiFlushPairs - 1 || p + 1 == p1) flush();
      }
    }
  }
  for (int r = 0; r < R; r++) y[r] = vhsum(vfma(yh[r], vset1(32768.f), yl[r]));
}

template <int R>
void gemv_qi4_r(const uint8_t* row, int64_t stride, int64_t chunks, int64_t G, int64_t cpg, const int16_t* X,
                const float* scf, float* y) {
  switch (cpg) {
    case 2: return gemv_qi4_pass<2, R>(row, stride, chunks, G, cpg, X, scf, y);
    case 4: return gemv_qi4_pass<4, R>(row, stride, chunks, G, cpg, X, scf, y);
    default: return gemv_qi4_pass<0, R>(row, stride, chunks, G, cpg, X, scf, y);
  }
}

}  // namespace

void gemv_qi4(int R, const uint8_t* row, int64_t stride, int64_t chunks, int64_t G, int64_t cpg, const int16_t* X,
              const float* scf, float* y) {
  if (R == 4) gemv_qi4_r<4>(row, stride, chunks, G, cpg, X, scf, y);
  else if (R == 2) gemv_qi4_r<2>(row, stride, chunks, G, cpg, X, scf, y);
  else gemv_qi4_r<1>(row, stride, chunks, G, cpg, X, scf, y);
}

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

