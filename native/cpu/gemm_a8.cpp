// Dispatch of gemm_w8a8 (kernels.h), the integer-activation GEMM for every packed weight format.
//
// Paths (all compute gemm_w8a8_ref's integers exactly; only the fp32 rescale of grouped weights rounds differently):
//  - AVX2, per-channel 4-bit weights, M > kA8GemvMaxM: the tiled vpmaddubsw core of gemm_avx2.cpp (w4a8_core).
//  - AVX2, 2/3/4/8 bits, group size a multiple of 32 or one group per row: gemm_a8_avx2.cpp (decode GEMV and token-tiled
//    prefill). Per-channel 8-bit weights had a tiled int16 core in gemm_avx2.cpp until the 8-token tile here
//    (a8_tile8_w8) was faster: M = 256, N = 1024, K = 4096, one thread 31.0 -> 22.9 ms; N = 4096 on two threads
//    60.3 -> 55.1 ms.
//  - VNNI (cpu_features.h a8_dot), 2/3/4/8 bits per channel or in groups of a multiple of 32, any M: the vpdpbusd
//    kernels of gemm_a8_vnni.cpp instead of the two AVX2 paths above (QUANTEVAL_VNNI=emulate: the same kernels with
//    the instruction emulated, for tests on CPUs without it).
//  - Otherwise (QUANTEVAL_ISA=scalar, 6-bit weights, group sizes that split 32-code chunks): the reference arithmetic, in parallel
//    over output channels.
//
// This file is compiled without any target ISA on purpose: the per-channel rescale below must round exactly as
// gemm_w8a8_ref does, and without FMA the compiler cannot contract (a * b) * c + bias into a fused multiply-add.
#include <algorithm>
#include <memory>
#include <vector>

#include "gemm_a8.h"
#include "gemm_common.h"
#include "gemm_impl.h"
#include "quanteval/cpu_features.h"
#include "quanteval/kernels.h"
#include "quanteval/threadpool.h"

namespace quanteval {

using namespace detail;

namespace {

// Largest K for which the per-channel int32 accumulation is exact: |sum (qa - za) * qw| <= 255 * 255 * K < 2^31.
// (Grouped weights are rescaled per group; their int32 sums only need group_size below it.)
constexpr int64_t kW8A8MaxK = 33025;
// Rows per task beyond kA8GemvMaxM: each task streams every token's activation codes once per K block, so fewer,
// larger tasks read them less often; the task's rows of a K block (<= 128 KiB at 8 bits) stay in L2.
constexpr int64_t kPrefillRows = 128;

// The reference arithmetic (gemm_common.h w8a8_output), parallel over output channels.
void w8a8_portable(const float* X, int64_t M, const QuantWeight& W, const float* bias, float* Y) {
  const int64_t K = W.K, N = W.N;
  std::vector<int> qa((size_t)(M * K));
  std::vector<ActQuant> p((size_t)M);
  for (int64_t m = 0; m < M; m++) p[m] = act_codes8(X + m * K, K, qa.data() + m * K);
  parallel_for(N, 8, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++)
      for (int64_t m = 0; m < M; m++) {
        float y = w8a8_output(qa.data() + m * K, p[m].s, (int64_t)p[m].z, W, n);
        if (bias) y += bias[n];
        Y[m * N + n] = y;
      }
  });
}

// Per-channel 4-bit weights, M > kA8GemvMaxM: the tiled vpmaddubsw core of gemm_avx2.cpp (w4a8_core).
void w4a8_tiled(const float* X, int64_t M, const QuantWeight& W, const float* bias, float* Y) {
  // A's rows are skewed by 64 bytes so that 4 KiB-multiple strides do not alias in L1.
  const int64_t N = W.N, K = W.K, lda = chunks_per_row(K) * kChunk + 32;
  // Activation codes minus their zero points, A[M, lda] int16 (zero past K), their row sums, zero points, scales.
  std::vector<int16_t> A((size_t)(M * lda));
  std::vector<float> sa((size_t)M);
  std::vector<int32_t> za((size_t)M), asum((size_t)M), acc((size_t)(M * N));
  parallel_for(M, 4, [&](int64_t m0, int64_t m1) {
    impl::avx2::act_quant_rows(X + m0 * K, m1 - m0, K, A.data() + m0 * lda, lda, sa.data() + m0, za.data() + m0,
                               asum.data() + m0);
  });
  // int8 activations qa - 128 meet the codes in vpmaddubsw: acc = sum qw * (qa - 128), and
  // sum qw * (qa - za) = acc + (128 - za) * sum qw.
  std::vector<int8_t> A8((size_t)(M * lda), 0);
  std::vector<int32_t> sumw((size_t)N, 0);
  for (int64_t m = 0; m < M; m++)
    for (int64_t k = 0; k < K; k++) A8[m * lda + k] = (int8_t)(A[m * lda + k] + za[m] - 128);
  dynamic_for(N, 96, [&](int64_t n0, int64_t n1) {
    impl::avx2::w4a8_core(A8.data(), lda, M, W, n0, n1, acc.data(), N, sumw.data());
    // Y = sa * sw * (sum (qa - za) * qw - zw * sum (qa - za)), rounded exactly as gemm_w8a8_ref rounds it.
    for (int64_t n = n0; n < n1; n++) {
      const float sw = load_scale(W, n, 0);
      const int64_t zw = zero_of(W, n, 0);
      for (int64_t m = 0; m < M; m++) {
        const int64_t a = (int64_t)acc[m * N + n] - zw * (int64_t)asum[m] + (int64_t)(128 - za[m]) * sumw[n];
        float y = (sa[m] * sw) * (float)a;
        if (bias) y += bias[n];
        Y[m * N + n] = y;
      }
    }
  });
}

// Any bits, group size a multiple of 32 or one group: gemm_a8_avx2.cpp. The activation codes `a` are prepared once
// (a8_act) for every weight of the same K, bits class and group size; blocks of rows are then independent.
// Uninitialized (a8_rows writes every element of its rows before reading any): no M x N memset per call.
struct A8Out {
  std::unique_ptr<int32_t[]> I;  // [M, N] exact sums (one group)
  std::unique_ptr<float[]> F;    // [M, N] group-rescaled sums
  A8Out(int64_t M, const QuantWeight& W) {
    if (W.groups() == 1) I.reset(new int32_t[(size_t)(M * W.N)]);
    else F.reset(new float[(size_t)(M * W.N)]);
  }
};

// The VNNI kernel for W (the A8 path's weights: 2/3/4/8 bits, per channel or groups of a multiple of 32) when
// a8_dot() has one, else null.
using A8Rows = void (*)(const impl::A8Act&, const QuantWeight&, int64_t, int64_t, int32_t*, float*);
A8Rows vnni_rows(const QuantWeight& W) {
  if (W.fmt.bits == 6 || (W.groups() != 1 && W.fmt.group_size % kChunk != 0)) return nullptr;
  switch (a8_dot()) {
    case A8Dot::Emulated: return impl::a8_vnni_emu::a8_rows;
    case A8Dot::AvxVnni: return impl::a8_avxvnni::a8_rows;
    case A8Dot::Avx512Vnni: return impl::a8_avx512vnni::a8_rows;
    default: return nullptr;
  }
}
// a8_act's int16 copy of the codes: only the AVX2 kernels of 8-bit weights read it.
bool a8_wide16(const QuantWeight& W) { return W.fmt.bits == 8 && !vnni_rows(W); }
// a8_act's reordered copy (q8p): only the AVX2 GEMV of some grouped 4-bit weights reads it.
bool a8_pairs(const QuantWeight& W) { return !vnni_rows(W) && impl::avx2::a8_reads_pairs(W); }

void a8_block(const impl::A8Act& a, int64_t M, const QuantWeight& W, const float* bias, float* Y, A8Out& o,
              int64_t n0, int64_t n1) {
  const int64_t N = W.N;
  if (const A8Rows rows = vnni_rows(W)) rows(a, W, n0, n1, o.I.get(), o.F.get());
  else impl::avx2::a8_rows(a, W, n0, n1, o.I.get(), o.F.get());
  if (W.groups() == 1) {
    for (int64_t m = 0; m < M; m++)
      for (int64_t n = n0; n < n1; n++) {
        // exactly gemm_w8a8_ref: (sa * sw) * (sum (qa - za) * qw - zw * sum (qa - za))
        const int64_t acc = (int64_t)o.I[m * N + n] - (int64_t)zero_of(W, n, 0) * a.dsum[m];
        const float y = (a.sa[m] * load_scale(W, n, 0)) * (float)acc;
        Y[m * N + n] = bias ? y + bias[n] : y;
      }
    return;
  }
  for (int64_t m = 0; m < M; m++) {  // plain loops the compiler vectorizes
    const float sa = a.sa[m];
    const float* f = o.F.get() + m * N;
    float* y = Y + m * N;
    if (bias)
      for (int64_t n = n0; n < n1; n++) y[n] = sa * f[n] + bias[n];
    else
      for (int64_t n = n0; n < n1; n++) y[n] = sa * f[n];
  }
}

void w8a8_a8(const float* X, int64_t M, const QuantWeight& W, const float* bias, float* Y) {
  impl::A8Act a;
  impl::avx2::a8_act(X, M, W.K, W.fmt.group_size, a8_wide16(W), a8_pairs(W), a);
  A8Out o(M, W);
  dynamic_for(W.N, M <= impl::kA8GemvMaxM ? gemv_block_rows(W.N, 32) : kPrefillRows,
              [&](int64_t n0, int64_t n1) { a8_block(a, M, W, bias, Y, o, n0, n1); });
}

// Which path gemm_w8a8 takes (the branches of gemm_w8a8 below, in order).
enum class A8Path { Ref, Portable, Tiled, A8 };
A8Path a8_path(int64_t M, const QuantWeight& W) {
  const int64_t G = W.groups(), span = std::min<int64_t>(W.K, W.fmt.group_size);
  if (span > kW8A8MaxK) return A8Path::Ref;  // int32 lanes could overflow: the int64 reference is exact
  // 6-bit weights: the portable path (the AVX2 a8 cores assume codes of 2/3/4 bits (vpmaddubsw int16 bounds) or 8).
  if (cpu_isa() < Isa::Avx2 || W.fmt.bits == 6) return A8Path::Portable;
  if (G == 1 && W.fmt.bits == 4 && M > impl::kA8GemvMaxM && !vnni_rows(W)) return A8Path::Tiled;
  if (G == 1 || W.fmt.group_size % kChunk == 0) return A8Path::A8;
  return A8Path::Portable;
}

}  // namespace

void gemm_w8a8(const float* X, int64_t M, const QuantWeight& W, const float* bias, float* Y) {
  check_act(DType::F32, M, "gemm_w8a8");
  check_w8a8(W, "gemm_w8a8");
  if (M == 0 || W.N == 0) return;
  switch (a8_path(M, W)) {
    case A8Path::Ref: return gemm_w8a8_ref(X, M, W, bias, Y);
    case A8Path::Portable: return w8a8_portable(X, M, W, bias, Y);
    case A8Path::Tiled: return w4a8_tiled(X, M, W, bias, Y);
    case A8Path::A8: return w8a8_a8(X, M, W, bias, Y);
  }
}

void gemm_w8a8_multi(const float* X, int64_t M, const QuantWeight* W, int n, const float* const* bias, float* const* Y) {
  check_act(DType::F32, M, "gemm_w8a8_multi");
  check_multi(W, n, "gemm_w8a8_multi", check_w8a8);
  if (M == 0 || n == 0) return;
  // One pass needs one activation quantization: the same A8 path, activation layout (a8_wide16) and group size.
  bool fused = n > 1;
  for (int i = 0; i < n && fused; i++)
    fused = a8_path(M, W[i]) == A8Path::A8 && a8_wide16(W[i]) == a8_wide16(W[0]) &&
            W[i].groups() == W[0].groups() && (W[i].groups() == 1 || W[i].fmt.group_size == W[0].fmt.group_size);
  if (!fused) {
    for (int i = 0; i < n; i++)
      if (W[i].N) gemm_w8a8(X, M, W[i], bias ? bias[i] : nullptr, Y[i]);
    return;
  }
  impl::A8Act a;
  bool pairs = false;  // one reordered copy serves every weight that reads it
  for (int i = 0; i < n; i++) pairs = pairs || a8_pairs(W[i]);
  impl::avx2::a8_act(X, M, W[0].K, W[0].fmt.group_size, a8_wide16(W[0]), pairs, a);
  std::vector<A8Out> outs;
  for (int i = 0; i < n; i++) outs.emplace_back(M, W[i]);
  const auto blocks = row_blocks(W, n, M <= impl::kA8GemvMaxM ? gemv_block_rows(total_rows(W, n), 32) : kPrefillRows);
  dynamic_for((int64_t)blocks.size(), 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; b++) {
      const RowBlock& k = blocks[b];
      a8_block(a, M, W[k.i], bias ? bias[k.i] : nullptr, Y[k.i], outs[k.i], k.n0, k.n1);
    }
  });
}

}  // namespace quanteval
