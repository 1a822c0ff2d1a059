// Internal interface of the integer-activation GEMM for every packed weight format (gemm_w8a8 in kernels.h):
// the dispatcher (gemm_a8.cpp, compiled without a target ISA) and its AVX2 kernels (gemm_a8_avx2.cpp).
#pragma once
#include <cstdint>
#include <vector>

#include "quanteval/kernels.h"

namespace quanteval::impl {

// Per-token 8-bit asymmetric activation codes of X[M, K] (exactly fake_quant_act_ref's codes), laid out for the
// integer kernels. lda = whole 32-code chunks (+ a skew against L1 set aliasing); codes past K are 0.
// Up to this many tokens the a8 kernels run as a GEMV (each weight row read once); beyond, the token-tiled paths.
constexpr int64_t kA8GemvMaxM = 8;

struct A8Act {
  int64_t M = 0, K = 0, G = 0, gs = 0, lda = 0;
  std::vector<int8_t> q8;     // [M, lda] centered codes qa - 128 (weights of 2/3/4 bits: vpmaddubsw operand); 0 past K
  std::vector<int8_t> q8p;    // [M, lda] q8 in the order of the paired 4-bit GEMV steps (a8_act's `pairs`); else empty
  std::vector<int16_t> q16;   // [M, lda] the same codes as int16 (8-bit weights: vpmaddwd operand); else empty
  std::vector<float> sa;      // [M] activation scale
  std::vector<int32_t> za;    // [M] activation zero point
  std::vector<int32_t> dsum;  // [M, G] sum over group g of (qa - za), real k only
  std::vector<float> dsumf;   // [M, G] the same as fp32 (exact: |dsum| <= 255 * group size < 2^24)
  std::vector<float> dsumT;   // [G, M] the same, transposed (8 tokens' sums of a group in one load)
};

namespace avx2 {
// Fills `a` for X[M, K] with groups of gs (G groups); wide16: also fill q16; pairs: also fill q8p (M <= kA8GemvMaxM,
// not wide16).
void a8_act(const float* X, int64_t M, int64_t K, int64_t gs, bool wide16, bool pairs, A8Act& a);
// Whether a8_rows reads q8p for W at M <= kA8GemvMaxM: grouped 4-bit weights in groups of 2, 4 or 8 chunks.
bool a8_reads_pairs(const QuantWeight& W);
// Integer dot products for the W rows [n0, n1) (group_size % 32 == 0 or a single group):
//   single group (per channel): I[m, n] = sum_k (qa - za) * qw   (int32, exact)
//   grouped: F[m, n] = sum_g sw[n, g] * sum_{k in g} (qa - za) * (qw - zw[n, g])   (fp32 accumulation)
// Row stride of I and F is W.N. The caller rescales: Y = sa * (...) (+ bias).
void a8_rows(const A8Act& a, const QuantWeight& W, int64_t n0, int64_t n1, int32_t* I, float* F);
}  // namespace avx2

// The VNNI kernels (gemm_a8_vnni.cpp), one namespace per dot-product instruction (cpu_features.h A8Dot), for weights
// of 2, 3, 4 or 8 bits: the contract of avx2::a8_rows above (I per channel, F grouped, group_size % 32 == 0), from
// `a` filled by avx2::a8_act with wide16 = false.
namespace a8_vnni_emu {
void a8_rows(const A8Act& a, const QuantWeight& W, int64_t n0, int64_t n1, int32_t* I, float* F);
}
namespace a8_avxvnni {
void a8_rows(const A8Act& a, const QuantWeight& W, int64_t n0, int64_t n1, int32_t* I, float* F);
}
namespace a8_avx512vnni {
void a8_rows(const A8Act& a, const QuantWeight& W, int64_t n0, int64_t n1, int32_t* I, float* F);
}

}  // namespace quanteval::impl
