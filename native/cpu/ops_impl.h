// Internal interface between ops.cpp (validation, threading, dispatch) and the AVX2 row kernels in ops_avx2.cpp.
#pragma once
#include <cstdint>

#include "quanteval/formats.h"

namespace quanteval::detail {

// cos/sin tables [half] of one position (rope.cpp; used by the reference and the fast RoPE alike).
void rope_cos_sin(int32_t position, const float* inv_freq, int half, float* cos, float* sin);

void rmsnorm_row_avx2(const float* x, const float* w, int64_t D, float eps, float* y);
// x[n_heads, head_dim] of one token rotated with the token's cos/sin tables [rotary_dim / 2].
void rope_token_avx2(float* x, int n_heads, int head_dim, int rotary_dim, const float* cos, const float* sin);
void silu_mul_avx2(const float* gate, const float* up, int64_t n, float* out);
void softmax_row_avx2(float* x, int64_t N);
float row_max_avx2(const float* x, int64_t N);
// log Σ exp(x - mx), exps in fp32, sum in double.
float log_sum_exp_avx2(const float* x, int64_t N, float mx);
// Indices of the k largest values of x[N] (value desc, index asc), by a threshold scan.
void topk_row_avx2(const float* x, int64_t N, int k, int32_t* idx);
void embedding_row_avx2(const void* row, DType dtype, int64_t D, float* out);

}  // namespace quanteval::detail
