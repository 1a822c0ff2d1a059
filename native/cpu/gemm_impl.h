// Internal interface between the GEMM dispatcher (gemm.cpp) and its per-ISA implementations (gemm_avx2.cpp,
// gemm_scalar.cpp). Arguments are already validated by the dispatcher.
#pragma once
#include <cstdint>
#include <vector>

#include "quanteval/kernels.h"

namespace quanteval::impl {

namespace scalar {
void gemm_dense(const void* X, DType x_dtype, int64_t M, const DenseWeight& W, const float* bias, float* Y);
void gemm_q(const void* X, DType x_dtype, int64_t M, const QuantWeight& W, const float* bias, float* Y);
}  // namespace scalar

namespace avx2 {
// One GEMV pass over several weights of one bit width, group size and K (kernels.h gemm_q_multi); false (nothing
// done) when they do not qualify.
bool gemm_q_multi(const void* X, DType x_dtype, int64_t M, const QuantWeight* W, int n, const float* const* bias,
                  float* const* Y);
void gemm_dense(const void* X, DType x_dtype, int64_t M, const DenseWeight& W, const float* bias, float* Y);
void gemm_q(const void* X, DType x_dtype, int64_t M, const QuantWeight& W, const float* bias, float* Y);
// Per-token activation codes of X[M, K] (8-bit asymmetric, exactly as gemm_w8a8_ref): A[m, k] = qa - za (zero past K,
// row stride lda), scale[m], zero[m] (za) and asum[m] = sum_k A[m, k].
void act_quant_rows(const float* X, int64_t M, int64_t K, int16_t* A, int64_t lda, float* scale, int32_t* zero,
                    int32_t* asum);
// W4A8 core with vpmaddubsw (4-bit codes x int8 fit its int16 pair sums): A8[M, lda8] int8 = qa - 128 (zero past K).
// Writes acc[m, n] = sum_k qw[n, k] * A8[m, k] and sumw[n] = sum_k qw[n, k] for the rows [n0, n1) of W (bits 4).
void w4a8_core(const int8_t* A8, int64_t lda8, int64_t M, const QuantWeight& W, int64_t n0, int64_t n1, int32_t* acc,
               int64_t ldc, int32_t* sumw);
// Reads bytes [b, e) of p (32-byte aligned) once with read strategy 0, 1 or 2 (membw_avx2.cpp); returns a fold of
// the data so that the reads are not optimized away.
uint64_t read_stream(const uint8_t* p, int64_t b, int64_t e, int strategy);
}  // namespace avx2

// gemm_avx512.cpp, two instances of one kernel text: avx512 (zmm registers) and avx512_emu (the same text with the
// zmm primitives emulated in scalar code, for tests). zmm_kernels() picks one.
namespace avx512 {
// Y[M, nrows] += X[M, kc] · W[nrows, kc]^T (row strides ldx, ldw, ldy), fp32, with AVX-512 register tiles
// (gemm_avx512.cpp). Called by the AVX2 implementation's tiled path when zmm_kernels() is Native.
void tiles_f32(const float* X, int64_t ldx, int64_t M, const float* W, int64_t ldw, int64_t nrows, int64_t kc,
               float* Y, int64_t ldy);
// The quantized GEMV (gemm_avx2.cpp's path for M <= 8, groups of a multiple of 32) for the cases gemv_q_takes:
// 4- and 8-bit codes, M <= 4. X, ldx and gsum as the AVX2 GEMV's (GemvX: fp32, zero-padded to whole chunks,
// 4-bit transformed; per-group sums of the original X). Rows [n0, n1) of Y[M, N].
bool gemv_q_takes(int bits, int64_t M);
void gemv_q_rows(int64_t M, const QuantWeight& W, const float* X, int64_t ldx, const float* gsum, const float* bias,
                 float* Y, int64_t n0, int64_t n1);
// The exact 4-bit GEMV at M = 1 on integer products (gemm_avx2.cpp's GemvKernel::Int) for R = 1 or 2 rows of codes
// (row, row + stride): y[r] = sum_g scf[r * G + g] * sum_{k in g} n_k code_k, X the per-group integers n in GemvXi's
// zmm layout. Groups of cpg chunks, cpg even unless G == 1.
void gemv_qi4(int R, const uint8_t* row, int64_t stride, int64_t chunks, int64_t G, int64_t cpg, const int16_t* X,
              const float* scf, float* y);
}  // namespace avx512
namespace avx512_emu {  // the same functions (gemv_q_takes: ask avx512's, it is the same)
void tiles_f32(const float* X, int64_t ldx, int64_t M, const float* W, int64_t ldw, int64_t nrows, int64_t kc,
               float* Y, int64_t ldy);
void gemv_q_rows(int64_t M, const QuantWeight& W, const float* X, int64_t ldx, const float* gsum, const float* bias,
                 float* Y, int64_t n0, int64_t n1);
void gemv_qi4(int R, const uint8_t* row, int64_t stride, int64_t chunks, int64_t G, int64_t cpg, const int16_t* X,
              const float* scf, float* y);
}  // namespace avx512_emu

// Memory read bandwidth probe for the benchmarks: the threads stream a `bytes`-byte buffer (fresh, huge-page advised,
// faulted in beforehand) in 4 MiB blocks handed out dynamically; `reps` rounds, each timing every read strategy;
// returns each round's fastest pass in seconds.
std::vector<double> read_bandwidth_seconds(int64_t bytes, int reps);

}  // namespace quanteval::impl
